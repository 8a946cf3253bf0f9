"""git's automatic housekeeping in a fork's mount runs before git returns (mount/worktree.py
``NO_DETACH``): a `git commit` there past git's thresholds started `git gc --auto` in the
background, a process whose working directory was the mount (its parent 1 once the commit
had returned), and an `avfs unmount` right after it was refused busy, "git (pid ...: cwd)",
until that repack ended (race6). Real mounts, real git; git's own threshold forced low
(``gc.autoPackLimit=1`` with three packs), never a timing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import run_in_process
from .gitmount import _git, _require, mount_fork, warm_daemons


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_unmount_right_after_a_commit_that_ran_auto_gc(cli_proc: Any, tmp_path: Path, backend: str) -> None:
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, _):
        for i in range(3):  # three packs of the mount's commits in the vault
            (mp / f"n{i}.txt").write_text(f"{i}\n")
            _git(mp, "add", "--", f"n{i}.txt")
            _git(mp, "-c", "gc.auto=0", "commit", "-q", "-m", f"n{i}")
            _git(mp, "-c", "gc.auto=0", "repack", "-q")
        (mp / "a.txt").write_text("changed\n")
        # the commit's `git maintenance run --auto` runs `git gc --auto`: past the limit
        done = _git(mp, "-c", "gc.autoPackLimit=1", "commit", "-a", "-m", "past the pack limit")
        with warm_daemons():  # at once, from outside the mount
            res = run_in_process(["--json", "--vault", "v:f", "unmount", str(mp)], cwd=tmp_path)
        assert res.code == 0, res.out + res.err
        # (git's own word that it packed before it returned: on a machine fast enough that
        # a detached repack ended before the unmount looked, this still tells the two apart)
        assert "Auto packing the repository for optimum performance" in done.stderr, done.stderr
        assert json.loads(res.out)["mount"]["state"] == "gone", res.out
        assert not mp.joinpath("a.txt").exists()  # (the mount point empty again)
