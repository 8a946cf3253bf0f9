"""A fork's own config (gitmodel26): ``[includeIf "onbranch:f"]`` in the vault's config
names a file that sets ``core.autocrlf``, ``core.attributesFile``, ``core.excludesFile``
and ``user.name``/``user.email`` for fork ``f`` alone. git in f's mount reads them (its HEAD is f's
branch), and so does a plain worktree on branch f; the vault's own reading (HEAD on
``main``) does not. What avfs records and reports for f (a checkpoint, an exec's commit,
``avfs status``) must be git's answer in the mount, and the plain worktree's.

Found by gitmodel25: avfs's readers (``wsattrs.autocrlf``, libgit2's filters, the global
attribute file, the status's excludes file) matched ``onbranch:`` against the vault's HEAD:
a checkpoint stored CRLF where ``git add`` in the mount stores LF, ``$Id: ...$`` where it
stores ``$Id$``, the status listed a file git ignores, and a checkpoint's author was the
vault's person, not the fork's.

Real data: attrs 24.2.0's README.md, written with CRLF line ends as a Windows editor
leaves it (no cached sdist holds a CRLF text file).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from . import realdata
from .gitmount import _git, _require, mount_fork


@pytest.fixture(scope="module")
def readme_crlf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    src = realdata.extract(realdata.pypi_sdist("attrs", "24.2.0"), tmp_path_factory.mktemp("attrs"))
    data = (src / "README.md").read_bytes()
    assert b"\r" not in data and data.count(b"\n") > 20
    return data.replace(b"\n", b"\r\n")


def _included(tmp_path: Path) -> Path:
    """The file f's config includes: autocrlf, a global attribute file naming ``ident``
    for ``*.ver``, a global excludes file naming ``*.log``."""
    attrs = tmp_path / "person-attributes"
    attrs.write_text("*.ver ident\n")
    ignore = tmp_path / "person-ignore"
    ignore.write_text("*.log\n")
    inc = tmp_path / "f-only.gitconfig"
    inc.write_text(
        f"[core]\n\tautocrlf = true\n\tattributesFile = {attrs}\n\texcludesFile = {ignore}\n"
        "[user]\n\tname = Fork Person\n\temail = fork.person@example.org\n"
    )
    return inc


def _write(root: Path, readme: bytes) -> None:
    (root / "win").mkdir(exist_ok=True)
    (root / "win" / "README.md").write_bytes(readme)
    (root / "release.ver").write_bytes(b"$Id: 0123456789abcdef $\r\nattrs 24.2.0\r\n")
    (root / "a.txt").write_bytes(b"one\r\n")  # (tracked as "one\n": `git add` stores it so)
    (root / "build.log").write_bytes(b"ignored by f's excludes file\n")


PATHS = ("win/README.md", "release.ver")


def _plain(tmp_path: Path, vault: str, inc: Path, readme: bytes) -> dict[str, str]:
    """A plain clone on branch f with the same include: the blobs ``git add -A`` stores,
    and that it leaves build.log out and a.txt unchanged."""
    plain = tmp_path / "plain"
    subprocess.run(["git", "clone", "-q", "-b", "f", vault, str(plain)], check=True)
    subprocess.run(["git", "-C", str(plain), "config", "includeIf.onbranch:f.path", str(inc)], check=True)
    _write(plain, readme)
    subprocess.run(["git", "-C", str(plain), "add", "-A"], check=True)
    staged = subprocess.run(
        ["git", "-C", str(plain), "diff", "--cached", "--name-only"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(staged) == sorted(PATHS), staged  # (no a.txt, no build.log)
    return {p: _rev(str(plain / ".git"), f":{p}") for p in PATHS}


def _rev(git_dir: str, spec: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", git_dir, "rev-parse", spec], capture_output=True, text=True, check=True
    ).stdout.strip()


def _status_paths(avfs: Any) -> set[str]:
    res = avfs("--json", "status")
    assert res.code == 0, res.err
    doc = res.json()
    return {c["path"] for c in doc["changes"]}


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_forks_onbranch_settings_are_read_as_git_in_its_mount_reads_them(
    cli_proc: Any, tmp_path: Path, backend: str, readme_crlf: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require(backend)
    for role in ("AUTHOR", "COMMITTER"):  # (the suite's identity: config's is what is asked)
        for what in ("NAME", "EMAIL"):
            monkeypatch.delenv(f"GIT_{role}_{what}", raising=False)
    inc = _included(tmp_path)
    with mount_fork(cli_proc, tmp_path, backend) as (mp, avfs):
        vault = _git(mp, "rev-parse", "--path-format=absolute", "--git-common-dir").stdout.strip()
        _git(mp, "config", "includeIf.onbranch:f.path", str(inc))  # (the vault's config)
        # the fork's own: the vault's HEAD is another branch, whose reading has none of them
        assert _git(mp, "config", "core.autocrlf").stdout.strip() == "true"
        head = subprocess.run(
            ["git", "--git-dir", vault, "symbolic-ref", "HEAD"], capture_output=True, text=True
        )
        assert head.stdout.strip() != "refs/heads/f"
        bare = subprocess.run(["git", "--git-dir", vault, "config", "core.autocrlf"], capture_output=True)
        assert bare.returncode == 1
        _write(mp, readme_crlf)

        # git in the mount: what `git add` stores, what it ignores, what it calls unchanged
        said = {p: _git(mp, "hash-object", p).stdout.strip() for p in PATHS}
        assert said == _plain(tmp_path, vault, inc, readme_crlf)
        assert _git(mp, "check-ignore", "-q", "build.log", check=False).returncode == 0
        porcelain = _git(mp, "status", "--porcelain", "-uall").stdout
        assert "?? win/README.md" in porcelain and "build.log" not in porcelain, porcelain
        assert _git(mp, "diff", "--name-only").stdout == ""  # (a.txt: git's status says M by its size)

        # avfs status: git's answer (a.txt is listed by git's status for its size alone:
        # left out of the comparison, as its diff is empty)
        assert _status_paths(avfs) - {"a.txt"} == {"win/README.md", "release.ver"}

        # avfs diff: a.txt unchanged (`git diff` is empty), build.log ignored (the patch's
        # bytes are the workspace's as they are, with or without a fork's config: left)
        diff = avfs("--json", "diff").json()
        assert {c["path"] for c in diff["changes"]} == {"win/README.md", "release.ver"}, diff["changes"]

        # avfs grep skips what git grep --untracked skips: build.log, by f's excludes file
        assert _git(mp, "grep", "--untracked", "-l", "ignored by", check=False).returncode == 1
        res = avfs("--json", "grep", "ignored by")
        assert res.code == 1 and res.json()["files"] == [], res.out
        assert avfs("--json", "grep", "--ignored", "-l", "ignored by").json()["files_matched"] == 1

        # a checkpoint: the blobs git stores
        res = avfs("--json", "checkpoint", "save", "-m", "fork's config")
        assert res.code == 0, res.err
        got = {p: _rev(vault, f"refs/heads/f:{p}") for p in PATHS}
        assert got == said
        # by the person git in the mount names (its user.name and user.email)
        ident = _git(mp, "var", "GIT_AUTHOR_IDENT").stdout.rsplit(">", 1)[0] + ">"
        assert ident == "Fork Person <fork.person@example.org>"
        assert (
            _git(mp, "log", "-1", "--format=%an <%ae>|%cn <%ce>", "refs/heads/f").stdout.strip()
            == f"{ident}|{ident}"
        )
        assert _rev(vault, "refs/heads/f:a.txt") == _rev(vault, "refs/heads/main:a.txt")
        listed = subprocess.run(
            ["git", "--git-dir", vault, "ls-tree", "-r", "--name-only", "refs/heads/f"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert "build.log" not in listed

        # proxy exec's commit: a file a command writes with CRLF, stored as git stores it
        res = avfs("--json", "proxy", "exec", "--", "sh", "-c", "printf 'x\\r\\ny\\r\\n' > win/exec.md")
        assert res.code == 0, res.err
        assert res.json()["commit"]
        assert (
            _rev(vault, "refs/heads/f:win/exec.md") == _git(mp, "hash-object", "win/exec.md").stdout.strip()
        )
        stored = subprocess.run(
            ["git", "--git-dir", vault, "cat-file", "blob", "refs/heads/f:win/exec.md"],
            capture_output=True,
            check=True,
        ).stdout
        assert stored == b"x\ny\n"
        assert _git(mp, "log", "-1", "--format=%an <%ae>", "refs/heads/f").stdout.strip() == ident

        # a merge into f (another fork's checkpoint): by the same person
        assert avfs("vault", "fork", "v:main", "g").code == 0
        assert avfs("--vault", "v:g", "write", "g.txt", "from g\n").code == 0
        assert avfs("--vault", "v:g", "checkpoint", "save").code == 0
        res = avfs("--json", "merge", "g")
        assert res.code == 0, res.err
        merged = _git(mp, "log", "-1", "--format=%p|%an <%ae>|%cn <%ce>", "refs/heads/f").stdout.strip()
        assert len(merged.split("|")[0].split()) == 2 and merged.endswith(f"|{ident}|{ident}"), merged
    assert os.path.exists(inc)


def test_a_deleted_forks_own_git_dir_goes_with_it(cli: Any, tmp_path: Path) -> None:
    """The fork's own git dir (``<vault>/avfs/forkconfig/worktrees/avfs-<fork>``, where its
    settings are read while it is not mounted: gitmodel27) is removed with the fork
    (gitmodel27 left it; gitmodel28), and made again alike when the fork comes back."""
    inc = _included(tmp_path)
    assert cli("vault", "create", "v").code == 0
    assert cli("vault", "fork", "v:main", "f").code == 0
    vault = cli("--vault", "v", "vault", "path").out.strip()
    subprocess.run(["git", "--git-dir", vault, "config", "includeIf.onbranch:f.path", str(inc)], check=True)
    assert cli("--vault", "v:f", "write", "a.txt", "one\r\n").code == 0
    res = cli("--json", "--vault", "v:f", "checkpoint", "save", "-m", "unmounted")
    assert res.code == 0, res.err
    own = Path(vault, "avfs", "forkconfig", "worktrees", "avfs-f")
    assert (own / "HEAD").read_text() == "ref: refs/heads/f\n"
    stored = subprocess.run(
        ["git", "--git-dir", vault, "cat-file", "blob", "refs/heads/f:a.txt"], capture_output=True, check=True
    ).stdout
    assert stored == b"one\n"  # (the fork's own reading: its autocrlf)
    res = cli("--json", "vault", "delete", "--force", "v:f")
    assert res.code == 0, res.err
    assert not own.exists() and os.listdir(own.parent) == []
    res = cli("--json", "undo")  # (the fork back: its settings read as before)
    assert res.code == 0, res.err
    assert cli("--vault", "v:f", "write", "b.txt", "two\r\n").code == 0
    assert cli("--vault", "v:f", "checkpoint", "save", "-m", "again").code == 0
    assert (own / "HEAD").read_text() == "ref: refs/heads/f\n"
    stored = subprocess.run(
        ["git", "--git-dir", vault, "cat-file", "blob", "refs/heads/f:b.txt"], capture_output=True, check=True
    ).stdout
    assert stored == b"two\n"


_READ_AND_DIE = """
import os, signal, sys
from avfs_git.core.store import lineconfig
got = lineconfig.fork_settings(sys.argv[1], "f") or {}
print(got.get("core.autocrlf"), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # (a killed daemon: no exit handler runs)
"""


def test_processes_killed_where_the_vault_is_not_writable_leave_one_forkconfig_dir(tmp_path: Path) -> None:
    """Where ``<vault>/avfs/forkconfig`` cannot be made, a fork's settings are read through
    a git dir under the temp dir: one for the user, vault and fork, which every process
    uses (gitmodel28); each process made its own before and removed it at its exit, so a
    killed one (a daemon's ``kill -9``) left it behind, one more at every kill. A directory
    there that is not this user's alone (open to others) is not used."""
    vault = tmp_path / "v.git"
    subprocess.run(["git", "init", "-q", "--bare", str(vault)], check=True)
    inc = tmp_path / "f-only.gitconfig"
    inc.write_text("[core]\n\tautocrlf = input\n")
    subprocess.run(
        ["git", "--git-dir", str(vault), "config", "includeIf.onbranch:f.path", str(inc)], check=True
    )
    (vault / "avfs").mkdir()
    (vault / "avfs" / "forkconfig").write_text("not a directory\n")  # (the vault's cannot be made)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}

    def read_and_die() -> str:
        got = subprocess.run(
            [sys.executable, "-c", _READ_AND_DIE, str(vault)], env=env, capture_output=True, text=True
        )
        assert got.returncode == -signal.SIGKILL, got.stderr
        return got.stdout.strip()

    for _ in range(3):
        assert read_and_die() == "input"  # (the fork's own reading)
    left = sorted(p.name for p in tmp.iterdir())
    assert len(left) == 1 and left[0].startswith(f"avfs-forkconfig-{os.getuid()}-"), left
    shared = tmp / left[0]
    assert (shared.stat().st_mode & 0o777) == 0o700
    assert (shared / "HEAD").read_text() == "ref: refs/heads/f\n"
    shared.chmod(0o755)  # (open to others: not trusted, a directory of the process's own)
    assert read_and_die() == "input"
    assert len(list(tmp.iterdir())) == 2


def test_a_forkconfig_temp_dir_made_again_by_another_is_not_trusted_on_a_later_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fork's git dir under the temp dir (the vault not writable) is checked (this
    user's, 0700, not a link) at every use, not only at the process's first (review41):
    removed (a fork's delete, a tmp cleaner) and made again by another (here open to
    others, its ``commondir`` a repository of theirs), a long-lived process read that
    repository's config as the fork's settings (the author of its commits, its excludes)."""
    import shutil
    import tempfile

    from avfs_git.core.store import lineconfig

    vault = tmp_path / "v.git"
    subprocess.run(["git", "init", "-q", "--bare", str(vault)], check=True)
    inc = tmp_path / "f-only.gitconfig"
    inc.write_text("[user]\n\tname = the owner\n")
    subprocess.run(
        ["git", "--git-dir", str(vault), "config", "includeIf.onbranch:f.path", str(inc)], check=True
    )
    (vault / "avfs").mkdir()
    (vault / "avfs" / "forkconfig").write_text("not a directory\n")  # (the vault's cannot be made)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    assert (lineconfig.fork_settings(str(vault), "f") or {}).get("user.name") == "the owner"
    (shared,) = tmp.iterdir()
    theirs = tmp_path / "theirs.git"
    subprocess.run(["git", "init", "-q", "--bare", str(theirs)], check=True)
    subprocess.run(["git", "--git-dir", str(theirs), "config", "user.name", "ATTACKER"], check=True)
    shutil.rmtree(shared)
    shared.mkdir(0o755)
    shared.chmod(0o755)
    (shared / "HEAD").write_text("ref: refs/heads/f\n")
    (shared / "commondir").write_text(f"{theirs}\n")
    inc.write_text("[user]\n\tname = the owner, again\n")  # (a new stamp: read again)
    got = lineconfig.fork_settings(str(vault), "f") or {}
    assert got.get("user.name") == "the owner, again", got.get("user.name")
    assert (shared / "commondir").read_text() == f"{theirs}\n"  # (theirs left as it is)
