"""Real projects' tools, fifth round (bench/realproj5.py; docs/testing.md, "Real projects'
own tools"): what the trials found, each on a real release, in a real mount of each backend
where a mount is in it.

A directory git ignores that still holds tracked files (docutils' sdists ship generated
test output under ``test/functional/output/``, which a ``.gitignore`` names, as projects
often have after the fact): removed, made again, and the fork restored to a checkpoint from
before. On the overlay backend the restore writes the directory's subdirectories anew
below an opaque one, new to the upper layer; a status left out the new directories git
ignores, those too, and listed their tracked files as deleted, while they were there and
``git status`` was clean. On the pure-FUSE backend the restore dropped an ignored file the
directory held, which ``git reset --hard`` leaves beside the files it writes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from . import realdata
from .test_realprojects import Project, Spec, make_env
from .test_realtools import _require, _unmount

pytestmark = pytest.mark.slow

BACKENDS = ["overlay", "fuse"]
OUT = "test/functional/output"
UI = f"{OUT}/ui/default/outline.css"


def _project(tmp_path: Path, name: str) -> Project:
    """docutils 0.16's sdist as a git repository (everything tracked, ``git add -f``) with a
    ``.gitignore`` of the test output directory, imported with its history."""
    spec = Spec(name, lambda: realdata.pypi_sdist("docutils", "0.16"), "a released project")
    env = make_env(tmp_path)
    src = tmp_path / "src"  # a copy: the sdist's owner is not this user, git refuses its files
    realdata.owned_copy(spec.fetch(), src)
    (src / ".gitignore").write_text(f"__pycache__/\n{OUT}/\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A", "-f"], ["commit", "-q", "-m", "docutils 0.16"]):
        subprocess.run(["git", *args], cwd=src, env=env, check=True, capture_output=True)
    proj = Project(spec, tmp_path, src, env, {}, "", {}, tmp_path)
    proj.avfs("vault", "create", name, "--from", str(src))
    return proj


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_restore_into_an_ignored_directory_of_tracked_files_leaves_status_clean(
    backend: str, tmp_path: Path
) -> None:
    """docutils 0.16 in a mount: the test output directory (tracked, and ignored) removed
    and checkpointed, made again with one new file and checkpointed, then the fork restored
    to the release: ``avfs status`` and ``git status`` are clean and every tracked file is
    there (on the overlay backend the status listed the 20 files of ``ui/`` as deleted);
    then an edit of one of them is a modification to both."""
    _require(backend)
    proj = _project(tmp_path, "duout")
    vf = "duout:main"
    mp = tmp_path / "mnt"
    mp.mkdir()
    proj.avfs("mount", "--backend", backend, vf, str(mp))

    def git_status() -> str:
        return subprocess.run(
            ["git", "status", "--porcelain"], cwd=mp, env=proj.env, capture_output=True, text=True, check=True
        ).stdout

    def avfs_changes() -> list[tuple[str, str]]:
        doc = json.loads(proj.avfs("--json", "--vault", vf, "status").stdout)
        return [(c["status"], c["path"]) for c in doc["changes"]]

    try:
        release = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=mp, env=proj.env, capture_output=True, text=True, check=True
        ).stdout.strip()
        tracked = sorted(p.relative_to(mp).as_posix() for p in (mp / OUT).rglob("*") if p.is_file())
        subprocess.run(["rm", "-rf", OUT], cwd=mp, check=True)
        proj.avfs("--vault", vf, "checkpoint", "save", "gone")
        (mp / OUT).mkdir()
        (mp / OUT / "new.html").write_text("made by a test run\n")
        proj.avfs("--vault", vf, "checkpoint", "save", "back")
        proj.avfs("--vault", vf, "checkpoint", "restore", release)
        there = sorted(p.relative_to(mp).as_posix() for p in (mp / OUT).rglob("*") if p.is_file())
        after = (avfs_changes(), git_status())
        with (mp / UI).open("a") as fh:
            fh.write("/* edited */\n")
        edited = (avfs_changes(), git_status())
    finally:
        _unmount(proj, "main")
    assert len(tracked) > 50 and UI in tracked
    # the new file is ignored and kept, as `git reset --hard` keeps it
    assert there == sorted([*tracked, f"{OUT}/new.html"]), sorted(set(tracked) ^ set(there))
    assert after == ([], ""), after
    assert edited == ([("modified", UI)], f" M {UI}\n"), edited


def test_a_checkout_on_a_detached_head_imports_its_commits(tmp_path: Path) -> None:
    """Found setting up the fleet trial: a git checkout of docutils 0.16 whose HEAD is
    detached at a commit on no branch (a release checked out by tag, then a fix committed
    there) failed ``vault create --from`` (``nonexistent object``: only branches and tags
    were fetched). The vault has the commit, as fork ``imported-worktree``, and ``main``."""
    proj = _project(tmp_path, "dudetached")
    src = proj.src
    env = proj.env

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=src, env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    git("checkout", "-q", "--detach")
    with (src / "README.txt").open("a") as fh:
        fh.write("a fix made on a detached HEAD\n")
    git("commit", "-q", "-am", "a fix")
    head, branch = git("rev-parse", "HEAD"), git("rev-parse", "main")
    proc = proj.avfs("vault", "create", "dudetached2", "--from", str(src), check=False)
    assert proc.returncode == 0, proc.stderr
    vault = Path(env["AVFS_HOME"]) / "vaults" / "dudetached2.git"
    got = subprocess.run(
        ["git", "--git-dir", str(vault), "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    assert sorted(filter(None, got)) == sorted([f"imported-worktree {head}", f"main {branch}"]), got
    fsck = subprocess.run(
        ["git", "--git-dir", str(vault), "fsck", "--no-progress"], env=env, capture_output=True
    )
    assert fsck.returncode == 0, fsck.stderr
