"""A merge into a fork whose overlay holds a big ignored tree (an installed ``node_modules``,
here lodash 4.17.21's released files): what the merge reads of the overlays, counted.

realproj6 found a fast-forward of a one-file fork into such a fork took 7.3 s where git
takes 0.06 s: the target's whole overlay was read eight or nine times (its capture, the
check for open files, the check that nothing changed meanwhile, the move of its base), its
files probed one by one for a mount holding them open, and each ignored entry asked about
in each step (docs/benchmarks.md, realproj7's section). git never looks into an ignored
directory; these tests hold the merge to one read of each overlay, no probe without a
mount, and the ignored tree kept as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint, merge
from avfs_git.core.workspace.overlay import Overlay
from avfs_git.core.workspace.overlaydb import OverlayDB
from avfs_git.core.workspace.overlayentry import Entry

from . import realdata
from .conftest import git


@pytest.fixture
def installed(vault: Any, tmp_path: Path) -> tuple[Any, dict[str, bytes]]:
    """Fork ``main`` of a project ignoring ``node_modules/``, lodash's files written there
    (as an install does, through the workspace: the overlay's database holds them)."""
    pkg = realdata.extract(realdata.npm_tarball("lodash", "4.17.21"), tmp_path / "lodash")
    ws = vault.workspace("main")
    ws.write(".gitignore", b"node_modules/\n")
    ws.write("index.js", b"module.exports = require('lodash');\n")
    checkpoint.save(vault)
    files = {
        f"node_modules/lodash/{f.relative_to(pkg)}": f.read_bytes()
        for f in sorted(pkg.rglob("*"))
        if f.is_file() and not f.is_symlink()
    }
    assert len(files) > 1000  # what makes a read of the whole overlay cost something
    for path, data in files.items():
        ws.write(path, data, parents=True)
    return vault, files


def _whole_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The state dirs of the overlays whose every row is asked for from now on, once per
    ask: the SQL's own read, or its rows kept from this thread's last read (the rows are
    made into entries and handed out either way; the real read still runs)."""
    asked: list[str] = []
    real = Overlay._db_all

    def db_all(self: Overlay) -> list[Entry]:
        asked.append(self.dir)
        return real(self)

    monkeypatch.setattr(Overlay, "_db_all", db_all)
    return asked


def _probes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The file ids asked whether a mount holds them open (the real question still asked)."""
    asked: list[str] = []
    real = OverlayDB.in_use

    def in_use(self: OverlayDB, fileid: str) -> bool:
        asked.append(fileid)
        return real(self, fileid)

    monkeypatch.setattr(OverlayDB, "in_use", in_use)
    return asked


@pytest.mark.parametrize("kind", ["fast_forward", "merged"])
def test_a_merge_reads_each_overlay_once_and_keeps_the_ignored_tree(
    installed: tuple[Any, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    vault, files = installed
    vault.create_fork("main", "a")
    a = vault.workspace("a")
    a.write("README.md", b"from a\n")
    checkpoint.save(vault, "a")
    main = vault.workspace("main")
    if kind == "merged":  # main moved on too: a merge commit, not a fast-forward
        main.write("CHANGELOG.md", b"from main\n")
        checkpoint.save(vault, "main")
    ignored_before = len(main.changes.ignored().tops)
    reads = _whole_reads(monkeypatch)
    asked = _probes(monkeypatch)
    res = merge.merge(vault, "a", "main")
    assert res.status == kind
    # neither overlay read whole: the target's base move keeps its ignored tree without
    # reading below node_modules, as git's merge never looks into an ignored directory
    # (realproj6's code read it 8 times, realproj7's once), nor the source's whether it
    # has changes to capture (3 reads before realproj7); and no file probed for a mount
    # holding it open (none is)
    assert reads == [], (reads.count(main.overlay.dir), reads.count(a.overlay.dir))
    assert asked == []
    # the ignored tree is kept, byte for byte, and still ignored; the merge is git's
    assert main.read("README.md") == b"from a\n"
    some = sorted(files)[:: max(1, len(files) // 50)]
    assert all(main.read(p) == files[p] for p in some)
    assert main.status() == [] and not main.is_dirty()
    assert len(main.changes.ignored().tops) == ignored_before == 1
    tree = git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main").split()
    assert "README.md" in tree and not any(p.startswith("node_modules") for p in tree)


def test_a_change_beside_the_ignored_tree_is_still_captured(
    installed: tuple[Any, dict[str, bytes]],
) -> None:
    """The ignored tree is passed by as a whole, not what is beside it: a tracked file
    changed and a new file not ignored are still seen and checkpointed before the merge,
    and a file written inside ``node_modules`` still is not."""
    vault, files = installed
    vault.create_fork("main", "a")
    a = vault.workspace("a")
    a.write("README.md", b"from a\n")
    checkpoint.save(vault, "a")
    main = vault.workspace("main")
    main.write("node_modules/.package-lock.json", b"{}\n")
    assert not main.is_dirty()  # only ignored paths so far
    main.write("index.js", b"module.exports = 2;\n")
    main.write("lib/new.js", b"x\n", parents=True)
    assert main.is_dirty()
    res = merge.merge(vault, "a", "main")
    assert res.status == "merged" and [c["fork"] for c in res.captured] == ["main"]
    shown = git("--git-dir", vault.path, "show", "main:index.js")
    assert shown == "module.exports = 2;\n"
    tree = git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main").split()
    assert {"lib/new.js", "README.md"} <= set(tree) and not any(p.startswith("node_modules") for p in tree)
    assert main.read("node_modules/.package-lock.json") == b"{}\n"
    assert main.read("node_modules/lodash/package.json") == files["node_modules/lodash/package.json"]
    assert not main.is_dirty()


def test_a_tracked_file_in_an_ignored_directory_is_still_a_change(home: Any, tmp_path: Path) -> None:
    """A directory git ignores whose files are tracked (an sdist's ``*.egg-info``, added
    with ``add -f``) is in the base: it is not passed by. A change to its tracked file is
    a change, a new file there is ignored, as in git's status."""
    src = tmp_path / "src"
    (src / "pkg.egg-info").mkdir(parents=True)
    (src / ".gitignore").write_text("*.egg-info/\nnode_modules/\n")
    (src / "pkg.egg-info" / "PKG-INFO").write_text("Name: pkg\n")
    git("init", "-q", "-b", "main", cwd=src)
    git("add", "-A", cwd=src)
    git("add", "-f", "pkg.egg-info/PKG-INFO", cwd=src)
    git("commit", "-q", "-m", "sdist", cwd=src)
    vault = home.create_vault("eggs", from_dir=str(src))
    ws = vault.workspace("main")
    ws.write("node_modules/x/index.js", b"x\n", parents=True)
    ws.write("pkg.egg-info/SOURCES.txt", b"new, ignored\n")
    assert not ws.is_dirty()
    ws.write("pkg.egg-info/PKG-INFO", b"Name: pkg\nVersion: 2\n")
    assert ws.is_dirty()
    assert [c.path for c in ws.status()] == ["pkg.egg-info/PKG-INFO"]
