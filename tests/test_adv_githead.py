"""The worktree files avfs reads to follow git in the mount (its ``HEAD``, ``logs/HEAD``,
git's ``rebase-merge``...) are written by whatever runs in the mount. Planted from inside a
real confined `proxy exec` (or, where the sandbox keeps the worktree's git dir read-only, by
the agent running in the mount unconfined): ``HEAD`` a symlink to a host file, ``logs/HEAD``
a FIFO. The person's `avfs status` (human and JSON) and `checkpoint save`
then show nothing of the host file, never block on the FIFO, and the fork loses nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .test_fuse import require_fuse
from .test_overlay import require_overlay

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
        (mp / "plant.sh").write_text(
            "gd=$(git rev-parse --absolute-git-dir) || exit 1\n"
            f'ln -sf {canary} "$gd/HEAD.new" && mv -f "$gd/HEAD.new" "$gd/HEAD"\n'
            'mkdir -p "$gd/logs"; rm -f "$gd/logs/HEAD"; mkfifo "$gd/logs/HEAD"\n'
            'mkdir -p "$gd/rebase-merge"\n'
        )
        res = _avfs(mp, "--json", "proxy", "exec", "--", "sh", "plant.sh")
        assert res.returncode == 0, res.stdout
        vault = cli_proc("--vault", "v", "vault", "path").out.strip()
        wt = Path(vault) / "worktrees" / "avfs-f"
        if not ((wt / "logs" / "HEAD").is_fifo() and (wt / "rebase-merge").is_dir()):
            # the sandbox keeps the worktree's git dir read-only (docs/security.md, "Sealing the
            # vault's git dir"): an agent that runs in the mount unconfined plants them
            subprocess.run(["sh", "plant.sh"], cwd=mp, check=False, capture_output=True)
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
