"""The worktree files avfs reads to follow git in the mount (its ``HEAD``, ``logs/HEAD``,
git's ``rebase-merge``...) are written by whatever runs in the mount. Planted from inside a
real confined `proxy exec` (or, where the sandbox keeps the worktree's git dir read-only, by
the agent running in the mount unconfined): ``HEAD`` a symlink to a host file, ``logs/HEAD``
a FIFO. The person's `avfs status` (human and JSON) and `checkpoint save`
then show nothing of the host file, never block on the FIFO, and the fork loses nothing.
What a confined command leaves in ``HEAD`` itself is put back (or kept detached only at a
commit the vault holds and accepts), and its commits' objects reach the vault."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .gitmount import _git, _require, _status, mount_fork
from .test_confine import _need_bwrap
from .test_fuse import require_fuse
from .test_overlay import require_overlay


@pytest.fixture
def mounted(cli_proc: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, Any]]:
    """tests/gitmount.py's fork `f` mounted on the test's ``backend``, the avfs it gives run
    in the test's process (``in_process``: the mount, the person's checkpoint, status and
    `vault path`, the unmount; the daemon is a process either way). What the tests are
    about, the command that plants, runs as a real confined `proxy exec` process
    (:func:`_exec_file`). Six cold CLI processes a test fewer (suitetime25: ~0.15-0.2 s
    of CPU each; the file's "waited" was 9.4 s of its 13.8 in ci26)."""
    backend = request.node.callspec.params["backend"]
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as m:
        yield m


SECRET = "HOST-SECRET-6f1d"


def _avfs(mp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avfs_git", *args], cwd=mp, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_planted_head_symlink_and_fifo_leak_nothing_and_block_nothing(
    cli_proc: Any, tmp_path: Path, backend: str
) -> None:
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()
    canary = tmp_path / "canary"
    canary.write_text(SECRET + "\n")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("one\n")
    assert cli_proc("vault", "create", "v", "--from", str(src)).code == 0
    assert cli_proc("vault", "fork", "v:main", "f").code == 0
    mp = tmp_path / "m"
    mp.mkdir()
    assert cli_proc("--vault", "v:f", "mount", "--backend", backend, str(mp)).code == 0
    try:
        (mp / "b.txt").write_text("kept\n")
        # (a script of the workspace: the policy refuses a link to outside on the command line)
        plant = [
            "gd=$(git rev-parse --absolute-git-dir) || exit 1",
            f'ln -sf {canary} "$gd/HEAD.new" && mv -f "$gd/HEAD.new" "$gd/HEAD"',
            'mkdir -p "$gd/logs"; rm -f "$gd/logs/HEAD"; mkfifo "$gd/logs/HEAD"',
            'mkdir -p "$gd/rebase-merge"',
        ]
        (mp / "plant.sh").write_text("\n".join(plant) + "\n")
        res = _avfs(mp, "--json", "proxy", "exec", "--", "sh", "plant.sh")
        assert res.returncode == 0, res.stdout
        vault = cli_proc("--vault", "v", "vault", "path").out.strip()
        wt = Path(vault) / "worktrees" / "avfs-f"
        if not ((wt / "logs" / "HEAD").is_fifo() and (wt / "rebase-merge").is_dir()):
            # the sandbox keeps the worktree's git dir read-only (docs/security.md, "Sealing the
            # vault's git dir"): an agent that runs in the mount unconfined plants them
            # (no HEAD link: nothing after it would scrub it; Landlock refused the FIFO)
            subprocess.run(
                ["sh", "-c", "; ".join([plant[0], *plant[2:]])], cwd=mp, check=False, capture_output=True
            )
        assert (wt / "logs" / "HEAD").is_fifo() and (wt / "rebase-merge").is_dir()  # planted
        # another hand moves the fork (a push): avfs then asks the worktree's HEAD log
        # whether git in the mount moved it
        tip = subprocess.run(
            ["git", "--git-dir", vault, "rev-parse", "refs/heads/f"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        pushed = subprocess.run(
            ["git", "--git-dir", vault, "commit-tree", f"{tip}^{{tree}}", "-p", tip, "-m", "pushed"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        subprocess.run(["git", "--git-dir", vault, "update-ref", "refs/heads/f", pushed, tip], check=True)
        # the person, afterwards
        for args in (("status",), ("--json", "status"), ("--json", "checkpoint", "save", "-m", "after")):
            res = _avfs(mp, *args)  # (a FIFO read would block: the timeout fails the test)
            assert SECRET not in res.stdout + res.stderr, (args, res.stdout, res.stderr)
        assert res.returncode != 0 and "git_in_progress" in res.stdout  # the planted rebase: refused
        assert canary.read_text() == SECRET + "\n"
        assert (mp / "b.txt").read_text() == "kept\n" and (mp / "a.txt").read_text() == "one\n"
        # what the fork holds: the checkpoint recorded it, or it is still uncheckpointed
        tip = subprocess.run(
            ["git", "--git-dir", vault, "show", "refs/heads/f:b.txt"], capture_output=True, text=True
        )
        if tip.returncode != 0:
            doc = cli_proc("--vault", "v:f", "--json", "status").json()
            assert {"path": "b.txt", "status": "added"} in doc["changes"], doc
        else:
            assert tip.stdout == "kept\n"
    finally:
        cli_proc("--vault", "v:f", "unmount", str(mp))
        assert not os.path.islink(canary)


# -- what a confined command leaves in HEAD (writable in there since rebases and detached
# checkouts work inside proxy exec): put back, or a detached HEAD kept only at a commit the
# vault holds and accepts; a HEAD naming another fork's branch would make the person's next
# `git commit` move that fork


def _exec_file(mp: Path, script: str) -> dict[str, Any]:
    """``script`` run by a confined `proxy exec` in the mount, from a file in the fork (as an
    agent hides what the policy would refuse on its command line)."""
    (mp / "attack.sh").write_text(script + "\n")
    r = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "proxy", "exec", "--", "sh", "attack.sh"],
        cwd=mp,
        capture_output=True,
        text=True,
        timeout=180,
    )
    doc: dict[str, Any] = json.loads(r.stdout)
    assert doc["result"] is not None, doc
    assert doc["confinement"]["kind"] == "bwrap", doc["confinement"]
    return doc


def _head_file(avfs: Any) -> Path:
    return Path(avfs("vault", "path").out.strip()) / "worktrees" / "avfs-f" / "HEAD"


def _fsck(avfs: Any) -> None:
    vault = avfs("vault", "path").out.strip()
    fsck = subprocess.run(["git", "--git-dir", vault, "fsck", "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


FORK_HEAD = "ref: refs/heads/f\n"


PLANTS = {
    # another fork's branch: the person's next `git commit` would land on main
    "other-branch": 'printf "ref: refs/heads/main\\n" > "$(git rev-parse --git-dir)/HEAD"',
    # a link to a host file: git (and avfs) would read or write through it
    "symlink": 'gd=$(git rev-parse --git-dir); rm -f "$gd/HEAD"; ln -s /etc/hostname "$gd/HEAD"',
    "garbage": 'printf "ref: ../../../../etc/passwd\\n" > "$(git rev-parse --git-dir)/HEAD"',
    "not-a-commit": 'printf "%s\\n" "$(git rev-parse HEAD^{tree})" > "$(git rev-parse --git-dir)/HEAD"',
    "missing": 'rm -f "$(git rev-parse --git-dir)/HEAD"',
    # a detached HEAD at a commit that adds a nested repository (its core.fsmonitor would
    # run on the person's `git status`): not carried, HEAD put back
    "gitlink-commit": (
        "git checkout -q --detach && oid=$(git rev-parse HEAD) &&"
        " git update-index --add --cacheinfo 160000,$oid,sub && git commit -qm sub"
    ),
}


@pytest.mark.parametrize("backend", ["overlay"])
@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_a_planted_head_is_put_back(mounted: Any, backend: str, plant: str) -> None:
    _need_bwrap()
    mp, avfs = mounted
    (mp / "b.txt").write_text("b\n")
    assert avfs("checkpoint", "save", "-m", "b").code == 0
    tip = _git(mp, "rev-parse", "HEAD").stdout.strip()
    main = _git(mp, "rev-parse", "main").stdout.strip()
    (mp / "work.txt").write_text("uncheckpointed\n")
    doc = _exec_file(mp, PLANTS[plant])
    head = _head_file(avfs)
    assert head.is_file() and not head.is_symlink()
    assert head.read_text() == FORK_HEAD
    assert [r for r in doc["refs_refused"] if r["ref"] == "HEAD"], doc["refs_refused"]
    # the person's git in the mount: on f, main untouched, the work there
    assert _git(mp, "symbolic-ref", "HEAD").stdout.strip() == "refs/heads/f"
    (mp / "c.txt").write_text("c\n")
    _git(mp, "add", "c.txt")
    _git(mp, "commit", "-qm", "c")
    assert _git(mp, "rev-parse", "main").stdout.strip() == main
    assert (
        _git(mp, "rev-parse", "HEAD~1").stdout.strip() != ""
        and (mp / "work.txt").read_text() == "uncheckpointed\n"
    )
    assert _status(avfs)["git"] is None
    assert tip in _git(mp, "rev-list", "HEAD").stdout
    _fsck(avfs)


@pytest.mark.parametrize("backend", ["overlay"])
def test_a_commit_then_a_detach_at_it_carries_its_objects(mounted: Any, backend: str) -> None:
    """The fork's branch moved to a new commit and HEAD detached at it: both name a commit
    only the sandbox's quarantine holds. Its objects reach the vault (git's `--all` counts
    the worktree's HEAD as reached: read before the run's HEAD is set)."""
    _need_bwrap()
    mp, avfs = mounted
    doc = _exec_file(mp, "echo new > n.txt && git add n.txt && git commit -qm n && git checkout -q --detach")
    assert doc["exit_code"] == 0, doc["result"]
    new = _git(mp, "rev-parse", "refs/heads/f").stdout.strip()
    assert _head_file(avfs).read_text() == new + "\n"
    assert _git(mp, "show", f"{new}:n.txt").stdout == "new\n"
    _fsck(avfs)
    _git(mp, "switch", "-q", "f")
    assert avfs("checkpoint", "save", "-m", "after").code == 0
    _fsck(avfs)
