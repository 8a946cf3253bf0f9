"""The overlay daemon lists, before it says the mount is ready, the directories where the
upper layer merges with a lower one (fuse/stacking.py ``_list_merged``): git's first status
after mounting lists exactly those, and cold each cost a lookup per lower entry in the
daemon. Here on a real kernel overlay of plain directories."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from avfs_git.fuse.stacking import _list_merged

from .conftest import skip_outside_ci


def _overlay(tmp_path: Path) -> tuple[Path, Path, Path]:
    if os.geteuid() != 0:
        skip_outside_ci("mounting overlayfs needs root here", "CI runs as root: overlayfs must be mountable")
    lower, upper, work, mnt = (tmp_path / n for n in ("lower", "upper", "work", "mnt"))
    for d in (lower, upper, work, mnt):
        d.mkdir()
    for d in ("a", "a/deep", "b", "c"):
        (lower / d).mkdir()
        for i in range(5):
            (lower / d / f"f{i}").write_text(f"{d} {i}\n")
    # a change in a/deep and in c; a directory new in the upper layer, with one below it
    (upper / "a" / "deep").mkdir(parents=True)
    (upper / "a" / "deep" / "f1").write_text("changed\n")
    (upper / "c").mkdir()
    (upper / "c" / "new").write_text("new\n")
    (upper / "node_modules" / "pkg").mkdir(parents=True)
    (upper / ".git").write_text("gitdir: elsewhere\n")
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(mnt)], check=True)
    return lower, upper, mnt


def _kind(lower: Path) -> Callable[[str], str | None]:
    def kind(rel: str) -> str | None:
        p = lower / rel
        return None if not os.path.lexists(p) else "dir" if p.is_dir() else "other"

    return kind


def test_the_merged_directories_are_listed_and_nothing_else(tmp_path):
    lower, upper, mnt = _overlay(tmp_path)
    try:
        listed = _list_merged(str(upper), str(mnt), _kind(lower))
        # the root, and the directories holding a change with what leads to them; not b
        # (unchanged), nor node_modules (no lower half: nothing of the base below it)
        assert sorted(listed) == ["", "a", "a/deep", "c"]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_listing_stops_at_its_budget(tmp_path):
    lower, upper, mnt = _overlay(tmp_path)
    try:
        assert _list_merged(str(upper), str(mnt), _kind(lower), budget_s=0.0) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
