"""A move of the fork's branch git makes in the mount is the fork's, even when the mount goes
right after it (docs/fuse.md, "git inside the mount"): avfs takes such a move when it next
looks (a status, a checkpoint) by the worktree's HEAD log, which goes with the mount; an
unmount before any avfs command left the fork's state on the old base ("the fork moved
since", git's deletions as changes). Found by hand in gitmodel6: `git reset --hard HEAD~1`,
`avfs unmount`, `avfs mount`: `avfs status` said `D other.txt`, git said `AD other.txt`.
Both backends, real mounts, real git."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..gitmount import _git, _status, mount_fork
from .backends import MOUNTS

pytestmark = pytest.mark.backends(*MOUNTS)


@pytest.fixture
def mounted(backend: str, cli_proc: Any, tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as m:
        yield m


@pytest.mark.parametrize("how", ["reset --hard", "commit"])
def test_git_s_move_just_before_an_unmount_is_the_fork_s(
    mounted: Any, backend: str, cli_proc: Any, how: str
) -> None:
    mp, avfs = mounted
    (mp / "n.txt").write_text("n\n")
    assert avfs("checkpoint", "save", "-m", "c1").code == 0
    (mp / "other.txt").write_text("x\n")
    assert avfs("checkpoint", "save", "-m", "c2").code == 0
    if how == "reset --hard":
        _git(mp, "reset", "-q", "--hard", "HEAD~1")
    else:
        (mp / "n.txt").write_text("by git\n")
        _git(mp, "commit", "-qam", "by git")
    moved = _git(mp, "rev-parse", "HEAD").stdout.strip()
    files = sorted(p.name for p in mp.iterdir() if p.name != ".git")
    # (no avfs command in between: the unmount is the first to see the fork again)
    assert cli_proc("--vault", "v:f", "unmount", str(mp)).code == 0
    assert cli_proc("--vault", "v:f", "mount", "--backend", backend, str(mp)).code == 0
    doc = _status(avfs)
    assert doc["head"] == moved and doc["base"] == moved and not doc["stale"], doc
    assert doc["changes"] == [], doc
    assert _git(mp, "status", "--porcelain").stdout == ""
    assert sorted(p.name for p in mp.iterdir() if p.name != ".git") == files
