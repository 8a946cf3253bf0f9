"""Real projects through avfs, sixth round (bench/realproj6.py; docs/testing.md, "Real
projects' own tools"): what the trials found, each on a real release.

``avfs stats PATH...`` counts, for a lazy vault, what of each fork is local under the
PATHs. Setting up the trials, ``avfs stats ml`` (the name of a lazy vault, msgpack's
history cloned from ``git daemon``, where ``--vault ml`` was meant) printed the stats of
the home's default vault, a whole one, with no word that ``ml`` had been read as a path
and ignored: the numbers of another vault, as if they were asked for.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from . import realdata
from .test_realprojects import Project, Spec, make_env

pytestmark = pytest.mark.slow


def _project(tmp_path: Path, name: str) -> Project:
    """msgpack 1.1.0's sdist (a C extension) as a git checkout, imported as vault ``name``."""
    spec = Spec(name, lambda: realdata.pypi_sdist("msgpack", "1.1.0"), "a released C extension")
    env = make_env(tmp_path)
    src = tmp_path / "src"  # a copy: the sdist's owner is not this user, git refuses its files
    realdata.owned_copy(spec.fetch(), src)
    (src / ".gitignore").write_text("build/\n*.so\n__pycache__/\n.venv/\n*.egg-info/\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A", "-f"], ["commit", "-q", "-m", "msgpack 1.1.0"]):
        subprocess.run(["git", *args], cwd=src, env=env, check=True, capture_output=True)
    proj = Project(spec, tmp_path, src, env, {}, "", {}, tmp_path)
    proj.avfs("vault", "create", name, "--from", str(src))
    return proj


def test_stats_paths_of_a_whole_vault_are_refused_not_ignored(tmp_path: Path) -> None:
    """``avfs stats NAME`` on a whole vault, NAME another vault's name: a usage error that
    says PATHs are a lazy vault's and names ``--vault NAME`` (exit 2, one JSON error
    document); a path of the fork is refused the same way; without PATHs the stats are
    there, and nothing of the vault changed."""
    proj = _project(tmp_path, "mp")
    proj.avfs("vault", "create", "other")
    vault = Path(proj.vault_path)

    def refs() -> str:
        return subprocess.run(
            ["git", "--git-dir", str(vault), "for-each-ref"],
            env=proj.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    before = refs()
    proc = proj.avfs("--json", "--vault", "mp", "stats", "other", check=False)
    assert proc.returncode == 2, proc.stdout
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "error" and doc["error"]["code"] == "usage", doc
    assert "lazy" in doc["error"]["message"], doc
    assert "--vault other" in (doc["error"]["hint"] or ""), doc
    human = proj.avfs("--vault", "mp", "stats", "other", check=False)
    assert human.returncode == 2 and b"--vault other" in human.stderr, human.stderr
    inside = proj.avfs("--json", "--vault", "mp", "stats", "msgpack", check=False)
    assert inside.returncode == 2, inside.stdout
    assert json.loads(inside.stdout)["error"]["code"] == "usage"
    whole = json.loads(proj.avfs("--json", "--vault", "mp", "stats").stdout)
    assert whole["kind"] == "stats" and whole["vault"] == "mp" and whole["lazy"] is None
    assert refs() == before


def test_a_bare_repository_imports_its_history_not_its_git_directory(tmp_path: Path) -> None:
    """``vault create --from`` a bare repository (msgpack's releases 1.0.6 … 1.1.0 as a
    history with tags, ``git clone --bare``): the vault holds its branches and tags, fork
    ``main`` at its HEAD with the same log, and the tree of 1.1.0, as a checkout's import
    does. It made one commit of the git directory's own files (``HEAD``, ``config``,
    ``objects/…``) as a project's."""
    env = make_env(tmp_path)
    work = realdata.history("msgpack", ["1.0.6", "1.0.7", "1.0.8", "1.1.0"], tmp_path / "h", window=10)
    bare = tmp_path / "msgpack.git"
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(work), str(bare)], env=env, check=True, capture_output=True
    )

    def git(*args: str, where: Path = bare) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(where), *args], env=env, capture_output=True, text=True, check=True
        ).stdout

    proj = Project(Spec("hist", lambda: bare, "a bare history"), tmp_path, bare, env, {}, "", {}, tmp_path)
    proc = proj.avfs("--json", "vault", "create", "hist", "--from", str(bare), check=False)
    assert proc.returncode == 0, proc.stderr
    vault = Path(proj.vault_path)
    assert git("log", "--format=%H %T %s", "main", where=vault) == git("log", "--format=%H %T %s", "main")
    assert git("tag", where=vault).split() == ["v1.0.6", "v1.0.7", "v1.0.8", "v1.1.0"]
    listed = json.loads(proj.avfs("--json", "--vault", "hist", "ls").stdout)
    names = sorted(e["name"] for e in listed["entries"])
    assert "msgpack" in names and "HEAD" not in names and "objects" not in names, names
    assert git("fsck", "--no-progress", where=vault) == ""
    assert json.loads(proj.avfs("--json", "--vault", "hist", "status").stdout)["changes"] == []


def test_an_empty_bare_repository_is_refused_and_no_vault_is_made(tmp_path: Path) -> None:
    """A bare repository without commits: a usage error naming `avfs vault create NAME`
    (an empty vault) or ``vault clone``; no vault is left behind."""
    env = make_env(tmp_path)
    bare = tmp_path / "empty.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], env=env, check=True)
    proj = Project(
        Spec("e", lambda: bare, "an empty bare repository"), tmp_path, bare, env, {}, "", {}, tmp_path
    )
    proc = proj.avfs("--json", "vault", "create", "e", "--from", str(bare), check=False)
    assert proc.returncode == 2, proc.stdout
    doc = json.loads(proc.stdout)
    assert doc["error"]["code"] == "usage" and "bare" in doc["error"]["message"], doc
    assert not Path(proj.vault_path).exists()
    listed = json.loads(proj.avfs("--json", "vault", "list").stdout)
    assert listed["vaults"] == [], listed


def test_up_of_a_bare_repository_is_refused_and_leaves_it_as_it_was(tmp_path: Path) -> None:
    """``avfs up`` works on a directory's files and brings the work back into them
    (``apply``); a bare repository has none. With ``vault create --from`` taking a bare
    repository's history, ``up`` of one would have recorded its git directory's files as
    the origin and ``apply`` written the project over them: it is refused (``usage``,
    naming ``vault create --from``), no vault is made, the repository is as it was."""
    env = make_env(tmp_path)
    work = realdata.history("msgpack", ["1.0.8", "1.1.0"], tmp_path / "h", window=10)
    bare = tmp_path / "msgpack.git"
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(work), str(bare)], env=env, check=True, capture_output=True
    )

    def snapshot() -> list[tuple[str, int]]:
        return sorted((str(p.relative_to(bare)), p.stat().st_size) for p in bare.rglob("*") if p.is_file())

    before = snapshot()
    proj = Project(Spec("up", lambda: bare, "a bare history"), tmp_path, bare, env, {}, "", {}, tmp_path)
    proc = proj.avfs("--json", "up", str(bare), check=False)
    doc = json.loads(proc.stdout)
    if doc["kind"] == "up":  # (before the fix) it mounted a fork: unmount it, then fail
        proj.avfs("unmount", "--lazy", f"{doc['vault']}:{doc['fork']}", check=False)
    assert proc.returncode == 2, proc.stdout
    assert doc["error"]["code"] == "usage" and "bare" in doc["error"]["message"], doc
    assert "vault create" in (doc["error"]["hint"] or ""), doc
    assert json.loads(proj.avfs("--json", "vault", "list").stdout)["vaults"] == []
    assert snapshot() == before
