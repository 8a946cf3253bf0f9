"""A merge into a fork mounted on the overlay backend whose upper layer holds a big ignored
tree (an installed ``node_modules``, here lodash 4.17.21's released files, written through
the mount as an install writes them): what the merge reads of the upper layer, counted.

The merge's move of the mounted target's base (``set_base``'s live branch, shared with a
restore and an undo) looked for the upper layer's renamed directories in every entry of
it: 13,963 entries of minimist's ``node_modules``, ~0.2 s of CPU a fast-forward where git
takes 4 ms (docs/benchmarks.md, mergereal's section). It now looks where the status before
it read (as a checkpoint does) and where the move rewrote; these tests hold it to that, and
a directory renamed in the mount to the content it showed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint, merge
from avfs_git.core.workspace.overlayupper import UpperEntries
from avfs_git.ops import mounts

from . import realdata
from .conftest import git
from .test_overlay import _tree, require_overlay


@pytest.fixture(scope="module")
def lodash(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return realdata.extract(realdata.npm_tarball("lodash", "4.17.21"), tmp_path_factory.mktemp("lodash"))


@pytest.fixture
def mounted(home: Any, vault: Any, tmp_path: Path, lodash: Path) -> Iterator[Path]:
    """Fork ``main`` (``d/`` a directory of two files, ``node_modules/`` ignored) mounted
    on the overlay backend, lodash's files copied into ``node_modules/lodash`` through the
    mount (the upper layer holds them); yields the mount point, unmounts after."""
    require_overlay()
    ws = vault.workspace("main")
    ws.write(".gitignore", b"node_modules/\n")
    ws.write("d/a.txt", b"a\n", parents=True)
    ws.write("d/sub/b.txt", b"b\n", parents=True)
    checkpoint.save(vault)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend="overlay")
    try:
        (mp / "node_modules").mkdir()
        subprocess.run(["cp", "-a", str(lodash), str(mp / "node_modules" / "lodash")], check=True)
        assert len(list((mp / "node_modules" / "lodash").rglob("*"))) > 1000
        yield mp
    finally:
        mounts.unmount(home, vault, "main")


def _upper_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the upper layer's entries each walk of it found from now on (the walk
    still runs)."""
    read: list[str] = []
    real = UpperEntries._u_walk

    def walk(self: UpperEntries, prefix: str) -> Any:
        got = real(self, prefix)
        read.extend(e.path for e in got[0])
        return got

    monkeypatch.setattr(UpperEntries, "_u_walk", walk)
    return read


@pytest.mark.parametrize("kind", ["fast_forward", "merged"])
def test_a_merge_into_a_mount_reads_nothing_of_its_ignored_tree(
    vault: Any, mounted: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    before = {p: v for p, v in _tree(str(mounted)).items() if p.startswith("node_modules/")}
    vault.create_fork("main", "a")
    a = vault.workspace("a")
    a.write("README.md", b"from a\n")
    checkpoint.save(vault, "a")
    if kind == "merged":  # main moved on too: a merge commit
        (mounted / "CHANGELOG.md").write_bytes(b"from main\n")
        checkpoint.save(vault, "main")
    read = _upper_reads(monkeypatch)
    res = merge.merge(vault, "a", "main")
    assert res.status == kind
    # below node_modules nothing is read (main's code read the 1,000-odd entries of the
    # upper layer at the base's move: every entry, to find its renamed directories)
    assert [p for p in read if p.startswith("node_modules/")] == []
    shown = _tree(str(mounted))
    assert shown["README.md"] == ("file", b"from a\n", False)
    assert {p: v for p, v in shown.items() if p.startswith("node_modules/")} == before
    main = vault.workspace("main")
    assert main.status() == [] and len(main.changes.ignored().tops) == 1
    assert git("-C", str(mounted), "status", "--porcelain") == ""


@pytest.mark.parametrize("recorded", [True, False], ids=["checkpointed", "captured-by-the-merge"])
def test_a_directory_renamed_in_the_mount_keeps_its_content_across_a_merge(
    vault: Any, mounted: Path, recorded: bool
) -> None:
    """``mv d e`` in the mount makes ``upper/e`` redirect to the lower layer's ``d``; the
    merge moves the base to a commit without ``d`` (the rename recorded by a checkpoint,
    or by the merge's capture of the target) while the source changed ``d``'s sibling:
    ``e`` still shows ``d``'s content, its source pinned where the new base lacks it."""
    vault.create_fork("main", "a")
    os.rename(mounted / "d", mounted / "e")
    if recorded:
        checkpoint.save(vault, "main")
    a = vault.workspace("a")
    a.write("f.txt", b"from a\n")
    checkpoint.save(vault, "a")
    res = merge.merge(vault, "a", "main")
    assert res.status == "merged"
    want = {"e/a.txt": ("file", b"a\n", False), "e/sub/b.txt": ("file", b"b\n", False)}
    shown = _tree(str(mounted))
    assert {p: v for p, v in shown.items() if p.startswith(("d/", "e/"))} == want
    assert shown["f.txt"] == ("file", b"from a\n", False)
    assert vault.workspace("main").status() == []
    assert git("-C", str(mounted), "status", "--porcelain") == ""
    files = git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main").split()
    assert {"e/a.txt", "e/sub/b.txt", "f.txt"} <= set(files) and "d/a.txt" not in files
