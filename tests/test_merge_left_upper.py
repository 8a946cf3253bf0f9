"""A merge into a fork whose overlay mount is gone but left its upper layer behind: an
installed ``node_modules`` (here lodash 4.17.21's released files, copied in through the
mount as an install writes them) and a file checkpointed through the mount.

The first merge after the mount went folded the whole upper layer into the overlay's
entries first (a question "is the target mounted?" did it): on minimist's installed tree
12,212 hard links and 28,043 statements, 1.5 s of CPU for a one-file fast-forward
(docs/benchmarks.md, h-merge2's section). A new directory git ignores at the top of that
layer now stays where it is, shown over the new base (as a live mount's upper layer shows
it); the rest of the layer is folded as before. These tests count what the fold reads,
hold the merged tree to ``git merge-tree --write-tree``'s, and read the kept tree back
through the API, a remount, a later write (which folds it) and a checkpoint; and where
the source brings something at the kept directory's place, the layer is folded first, as
before."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint, merge
from avfs_git.core.workspace import upper as upper_mod
from avfs_git.ops import mounts

from . import realdata
from .conftest import git
from .test_overlay import _tree, require_overlay


@pytest.fixture(scope="module")
def lodash(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return realdata.extract(realdata.npm_tarball("lodash", "4.17.21"), tmp_path_factory.mktemp("lodash"))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def left(home: Any, vault: Any, tmp_path: Path, lodash: Path) -> Path:
    """Fork ``main`` (``d/a.txt``; ``node_modules/`` ignored) mounted on the overlay
    backend; lodash copied into ``node_modules/lodash`` and ``CHANGELOG.md`` written
    through the mount, the latter checkpointed; then unmounted (the upper layer stays).
    Returns the mount point (empty now)."""
    require_overlay()
    ws = vault.workspace("main")
    ws.write(".gitignore", b"node_modules/\n")
    ws.write("d/a.txt", b"a\n", parents=True)
    checkpoint.save(vault)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend="overlay")
    try:
        (mp / "node_modules").mkdir()
        subprocess.run(["cp", "-a", str(lodash), str(mp / "node_modules" / "lodash")], check=True)
        (mp / "CHANGELOG.md").write_bytes(b"through the mount\n")
        checkpoint.save(vault, "main")
    finally:
        mounts.unmount(home, vault, "main")
    assert os.listdir(ws.overlay.upper_dir)  # what the mount wrote is still there
    return mp


def _folded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the upper layer each fold reads from now on (it still folds them)."""
    read: list[str] = []
    real = upper_mod.entries

    def entries(*a: Any, **k: Any) -> Any:
        for got in real(*a, **k):
            read.append(got[0])
            yield got

    monkeypatch.setattr(upper_mod, "entries", entries)
    return read


def _fork(vault: Any, name: str, path: str, data: bytes) -> str:
    vault.create_fork("main", name)
    vault.workspace(name).write(path, data, parents=True)
    return checkpoint.save(vault, name).checkpoint.commit


@pytest.mark.parametrize("kind", ["fast_forward", "merged"])
def test_the_first_merge_after_a_mount_leaves_the_ignored_tree_where_it_is(
    home: Any, vault: Any, left: Path, lodash: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    theirs = _fork(vault, "a", "d/from-a.txt", b"from a\n")
    main = vault.workspace("main")
    if kind == "merged":  # main moved on too, through its mount again: a merge commit
        mounts.mount(home, vault, "main", str(left), backend="overlay")
        try:
            (left / "e").mkdir()
            (left / "e" / "from-main.txt").write_bytes(b"from main\n")
            checkpoint.save(vault, "main")
        finally:
            mounts.unmount(home, vault, "main")
    ours = main.tip()
    folded = _folded(monkeypatch)
    res = merge.merge(vault, "a", "main")
    assert res.status == kind
    # nothing below node_modules is read to fold it (main's code: lodash's 1,050-odd files)
    assert [p for p in folded if p.startswith("node_modules")] == []
    # git's tree (the differential check: the same tree git's merge makes of the same commits)
    want = git("--git-dir", vault.path, "merge-tree", "--write-tree", ours, theirs).split()[0]
    assert git("--git-dir", vault.path, "rev-parse", f"{res.commit}^{{tree}}").strip() == want
    main = vault.workspace("main")
    assert main.status() == [] and main.changes.ignored().tops == frozenset({"node_modules"})
    assert main.read("d/from-a.txt") == b"from a\n"
    assert main.read("CHANGELOG.md") == b"through the mount\n"
    modules = {f"node_modules/lodash/{p}": b for p, b in _files(lodash).items()}
    some = sorted(modules)[:: max(1, len(modules) // 40)]
    assert {p: main.read(p) for p in some} == {p: modules[p] for p in some}
    # a remount shows the merge and the installed tree
    mounts.mount(home, vault, "main", str(left), backend="overlay")
    try:
        shown = _tree(str(left))
        assert shown["d/from-a.txt"] == ("file", b"from a\n", False)
        assert {p: v[1] for p, v in shown.items() if p.startswith("node_modules/")} == modules
        assert git("-C", str(left), "status", "--porcelain") == ""
    finally:
        mounts.unmount(home, vault, "main")
    # a write through the API folds the layer (one layer for the change), nothing lost
    main = vault.workspace("main")
    main.write("later.txt", b"later\n")
    assert not main.overlay.upper_active()
    assert {p: main.read(p) for p in some} == {p: modules[p] for p in some}
    cp = checkpoint.save(vault, "main").checkpoint.commit
    assert git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", cp).split() == sorted(
        [".gitignore", "CHANGELOG.md", "d/a.txt", "d/from-a.txt", "later.txt"]
        + (["e/from-main.txt"] if kind == "merged" else [])
    )


def test_a_source_with_something_at_the_kept_place_folds_first(
    vault: Any, left: Path, lodash: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source's tree holds ``node_modules/x`` (committed with git: avfs records no
    ignored path): the merged view has something where the upper layer keeps its
    directory, so the layer is folded before the merge holds the target's writers, as
    on main's code; the merge is git's, the view shows the source's file over the
    ignored tree."""
    vault.create_fork("main", "a")
    env = {**os.environ, "GIT_INDEX_FILE": str(left.parent / "idx")}
    gd = ["--git-dir", vault.path]
    subprocess.run(["git", *gd, "read-tree", "a"], env=env, check=True)
    blob = (
        subprocess.run(
            ["git", *gd, "hash-object", "-w", "--stdin"], input=b"tracked\n", capture_output=True, check=True
        )
        .stdout.decode()
        .strip()
    )
    subprocess.run(["git", *gd, "update-index", "--add", "--cacheinfo", f"100644,{blob},node_modules/x"],
                   env=env, check=True)  # fmt: skip
    tree = subprocess.run(
        ["git", *gd, "write-tree"], env=env, capture_output=True, check=True
    ).stdout.decode()
    theirs = git(*gd, "commit-tree", tree.strip(), "-p", "a", "-m", "node_modules/x").strip()
    git(*gd, "update-ref", "refs/heads/a", theirs)
    folded = _folded(monkeypatch)
    res = merge.merge(vault, "a", "main")
    assert res.status == "fast_forward"
    assert any(p.startswith("node_modules/lodash/") for p in folded)  # folded first
    main = vault.workspace("main")
    assert not main.overlay.upper_active()
    assert main.read("node_modules/x") == b"tracked\n"
    assert main.read("node_modules/lodash/package.json") == (lodash / "package.json").read_bytes()
    assert main.status() == []


def test_a_merge_into_an_unmounted_fork_checks_the_target_twice(
    vault: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The target's uncheckpointed changes are looked for at its capture; from then on the
    merge holds its writers off (the overlay's transaction, :func:`.mergeguard.writers_held`),
    so the move does not look again (main's code did: a third status of the merge, a
    quarter of a warm merge's CPU). A write that comes meanwhile waits and lands on the
    merged view (tests/test_merge_races.py)."""
    from avfs_git.core.workspace.workspace import Workspace

    vault.workspace("main").write("m.txt", b"m\n")
    checkpoint.save(vault, "main")
    _fork(vault, "a", "a.txt", b"a\n")
    asked: list[str] = []
    real = Workspace.is_dirty

    def is_dirty(self: Workspace) -> bool:
        asked.append(self.fork)
        return real(self)

    monkeypatch.setattr(Workspace, "is_dirty", is_dirty)
    assert merge.merge(vault, "a", "main").status == "fast_forward"
    assert asked.count("main") == 1 and asked.count("a") == 1
    assert vault.workspace("main").read("a.txt") == b"a\n"


def test_an_undo_and_a_restore_after_it_keep_the_ignored_tree(
    vault: Any, left: Path, lodash: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The moves of the base that share the merge's (`set_base`): the merge undone, then
    the fork restored to the merge's commit; a merge commit, then a conflicted merge
    written and aborted. Each leaves the ignored tree in the upper layer (none of it read
    to fold; main's code folded it at the first), the view the commit's."""
    before = vault.workspace("main").tip()
    _fork(vault, "a", "CHANGELOG.md", b"from a\n")  # conflicts with c's, once c is merged
    _fork(vault, "c", "CHANGELOG.md", b"from c\n")
    _fork(vault, "b", "b.txt", b"b\n")
    folded = _folded(monkeypatch)
    res = merge.merge(vault, "b", "main")
    assert res.status == "fast_forward"
    checkpoint.undo(vault, res.op_id)
    main = vault.workspace("main")
    assert main.tip() == before and not main.exists("b.txt")
    checkpoint.restore(vault, "main", res.commit)
    assert vault.workspace("main").read("b.txt") == b"b\n"
    assert merge.merge(vault, "c", "main").status == "merged"
    got = merge.merge(vault, "a", "main", write_conflicts=True)
    assert got.status == "conflicts_written" and b"<<<<<<<" in vault.workspace("main").read("CHANGELOG.md")
    merge.merge_abort(vault, "main")
    main = vault.workspace("main")
    assert main.read("CHANGELOG.md") == b"from c\n" and main.status() == []
    assert [p for p in folded if p.startswith("node_modules")] == []
    assert main.overlay.upper_active()
    assert main.read("node_modules/lodash/package.json") == (lodash / "package.json").read_bytes()
    assert main.changes.ignored().tops == frozenset({"node_modules"})


def test_a_merge_asks_which_top_directories_stay_in_the_upper_layer_twice(
    vault: Any, left: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which of the upper layer's top directories stay where they are is asked when the
    merge holds the target's writers (:func:`.mergeguard.writers_held`), and once more
    at the move: the move's own two questions (the fold before it, what it leaves) are
    one (h-merge4: three, each an ignore question, ~12 % of a served fast-forward's
    CPU on minimist). The ignored tree stays, as before."""
    from avfs_git.core.workspace import wsfold

    _fork(vault, "a", "d/from-a.txt", b"from a\n")
    asked: list[frozenset[str]] = []
    real = wsfold.kept_tops

    def kept_tops(*a: Any, **k: Any) -> frozenset[str]:
        got = real(*a, **k)
        asked.append(got)
        return got

    monkeypatch.setattr(wsfold, "kept_tops", kept_tops)
    folded = _folded(monkeypatch)
    assert merge.merge(vault, "a", "main").status == "fast_forward"
    assert asked == [frozenset({"node_modules"})] * 2, asked
    assert [p for p in folded if p.startswith("node_modules")] == []
    main = vault.workspace("main")
    assert main.overlay.upper_active() and main.status() == []
    assert main.read("d/from-a.txt") == b"from a\n"
    assert main.changes.ignored().tops == frozenset({"node_modules"})


def test_a_merge_asks_the_ignore_rules_for_the_kept_top_directories_once(
    vault: Any, left: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Of the two questions above, the second finds the upper layer, the database and the
    base as the first left them (the writers held): it is answered from the first
    (:func:`.wsfold.tops_kept`), the ignore rules not asked again (h-merge7: each ask
    ~0.6 ms of a served fast-forward's ~8 on minimist; main's code asked twice)."""
    from avfs_git.core.workspace import wsfold

    _fork(vault, "a", "d/from-a.txt", b"from a\n")
    _fork(vault, "b", "d/from-b.txt", b"from b\n")
    # (the first merge folds the checkpointed CHANGELOG.md, so its second question finds
    # the layer changed and asks again; the next one finds node_modules alone)
    assert merge.merge(vault, "a", "main").status == "fast_forward"
    asked: list[frozenset[str]] = []
    ignore_asks: list[list[str]] = []
    real = wsfold.kept_tops

    def kept_tops(overlay: Any, ignored: Any) -> frozenset[str]:
        def counted(tops: list[str]) -> set[str]:
            ignore_asks.append(list(tops))
            return ignored(tops)

        got = real(overlay, counted)
        asked.append(got)
        return got

    monkeypatch.setattr(wsfold, "kept_tops", kept_tops)
    assert merge.merge(vault, "b", "main").status == "merged"
    assert asked == [frozenset({"node_modules"})] * 2, asked
    assert ignore_asks == [["node_modules"]], ignore_asks  # (main's code: two)
    main = vault.workspace("main")
    assert main.overlay.upper_active() and main.status() == []
    assert main.read("d/from-a.txt") == b"from a\n" and main.read("d/from-b.txt") == b"from b\n"
    assert main.changes.ignored().tops == frozenset({"node_modules"})


def test_the_kept_top_directories_are_asked_again_when_what_decides_them_changed(
    vault: Any, left: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """:func:`.wsfold.tops_kept` answers again only for the same state: a ``.gitignore``
    written into the upper layer (as a mount writes it), a write through the API (which
    folds the layer: the database's journal moves) and the end of the scope each ask
    anew; outside it every question is asked."""
    from avfs_git.core.workspace import wsfold
    from avfs_git.core.workspace.wsstatus import Changes

    ws = vault.workspace("main")
    asks: list[list[str]] = []
    real = Changes.prune_ignored

    def counted(self: Changes, tops: list[str], found: list[Any]) -> set[str]:
        asks.append(list(tops))
        return real(self, tops, found)

    monkeypatch.setattr(Changes, "prune_ignored", counted)
    assert ws.upper_kept_tops() == ws.upper_kept_tops() == frozenset({"node_modules"})
    assert len(asks) == 2, asks  # (outside the scope: each asked)
    asks.clear()
    with wsfold.tops_kept():
        assert ws.upper_kept_tops() == frozenset({"node_modules"})
        assert ws.upper_kept_tops() == frozenset({"node_modules"})
        assert len(asks) == 1, asks
        Path(ws.overlay.upper_dir, ".gitignore").write_bytes(b"other/\n")  # (in place)
        assert ws.upper_kept_tops() == frozenset()  # not ignored any more
        assert len(asks) == 2, asks
        Path(ws.overlay.upper_dir, ".gitignore").write_bytes(b"node_modules/\n")
        assert ws.upper_kept_tops() == frozenset({"node_modules"})
        assert len(asks) == 3, asks
        ws.write("d/b.txt", b"b\n")  # (folds the layer first)
        assert ws.upper_kept_tops() == frozenset()
        assert ws.read("node_modules/lodash/package.json")  # (folded, still shown)
    assert wsfold._kept_answers.get() is None


def test_a_merge_reads_each_commit_s_tree_once(vault: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A merge asks the same few commits' trees through every layer it calls (the tips,
    the base, the view, the ignore rules, the move): each is read from the vault once a
    merge (h-merge4: 14 reads of 3-4 commits a fast-forward), and only while it runs (an
    existence check after it reads the vault again)."""
    from avfs_git.core.store.gitstore import GitStore

    vault.workspace("main").write("m.txt", b"m\n")
    checkpoint.save(vault, "main")
    _fork(vault, "a", "a.txt", b"a\n")
    _fork(vault, "b", "b.txt", b"b\n")
    reads: list[str] = []
    real = GitStore._commit_bytes

    def counted(self: GitStore, oid: str) -> bytes:
        if sys._getframe(1).f_code.co_name == "commit_tree":  # (for its tree)
            reads.append(oid)
        return real(self, oid)

    monkeypatch.setattr(GitStore, "_commit_bytes", counted)
    for source, status in (("a", "fast_forward"), ("b", "merged")):
        reads.clear()
        tip = vault.workspace("main").tip()
        assert merge.merge(vault, source, "main").status == status
        assert reads and len(reads) == len(set(reads)), (status, reads)
        vault.store.commit_tree(tip)  # (after the merge: read again)
        assert reads[-1] == tip
    main = vault.workspace("main")
    assert main.read("a.txt") == b"a\n" and main.read("b.txt") == b"b\n" and main.status() == []


def test_conflicts_written_into_an_unmounted_fork_check_the_target_once(
    vault: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a clean merge's move (above): the target's changes are looked for at its
    capture, and the merge holds its writers from then on, so writing the conflicts into
    it does not look again (h-merge4: a second status of the target, ~1.5 ms of a served
    conflict on minimist). What is written is the conflict, the merge open."""
    from avfs_git.core.workspace.workspace import Workspace

    ws = vault.workspace("main")
    ws.write("c.txt", b"base\n")
    checkpoint.save(vault, "main")
    _fork(vault, "a", "c.txt", b"theirs\n")
    ws.write("c.txt", b"ours\n")
    checkpoint.save(vault, "main")
    asked: list[str] = []
    real = Workspace.is_dirty

    def is_dirty(self: Workspace) -> bool:
        asked.append(self.fork)
        return real(self)

    monkeypatch.setattr(Workspace, "is_dirty", is_dirty)
    res = merge.merge(vault, "a", "main", write_conflicts=True)
    assert res.status == "conflicts_written" and [c.path for c in res.conflicts] == ["c.txt"]
    assert asked.count("main") == 1 and asked.count("a") == 1, asked
    main = vault.workspace("main")
    assert b"<<<<<<< " in main.read("c.txt") and merge.merge_state(main) is not None
    assert merge.merge_abort(vault, "main").status == "aborted"
    assert vault.workspace("main").read("c.txt") == b"ours\n"


def test_the_target_s_capture_walks_no_upper_layer_holding_only_the_kept_tree(
    vault: Any, left: Path, lodash: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the target's upper layer holds nothing but the top directories the merge
    found it keeps there (:func:`.wsfold.tops_kept`: new, ignored, nothing of the database
    or the lower layer below), the capture's look for uncheckpointed changes reads the
    database alone (:func:`.wsfold.holds_only_kept`): main's code walked the layer with a
    status every merge (~0.5 ms of a served fast-forward's CPU on minimist, h-merge8). A
    file written beside that tree (as the mount's kernel writes one) is still found and
    captured first."""
    from avfs_git.core.workspace.wsstatus import Changes

    _fork(vault, "a", "d/from-a.txt", b"from a\n")
    # (the first merge folds the checkpointed CHANGELOG.md: the layer then holds node_modules alone)
    assert merge.merge(vault, "a", "main").status == "fast_forward"
    _fork(vault, "b", "d/from-b.txt", b"from b\n")
    _fork(vault, "c", "d/from-c.txt", b"from c\n")
    statuses: list[str] = []
    real = Changes.status_ignored

    def counted(self: Changes, *a: Any, **k: Any) -> Any:  # (h-merge15's ``files=``)
        statuses.append(self.overlay.upper_dir)
        return real(self, *a, **k)

    monkeypatch.setattr(Changes, "status_ignored", counted)
    res = merge.merge(vault, "b", "main")
    assert res.status == "fast_forward" and res.captured == ()
    assert statuses == []  # (main's code: one, the target's capture)
    main = vault.workspace("main")
    Path(main.overlay.upper_dir, "late.txt").write_bytes(b"late\n")  # beside node_modules
    res = merge.merge(vault, "c", "main")
    assert res.status == "merged" and [c["fork"] for c in res.captured] == ["main"], res
    assert statuses  # (looked for, with a status)
    main = vault.workspace("main")
    assert main.read("late.txt") == b"late\n" and main.read("d/from-c.txt") == b"from c\n"
    assert main.status() == [] and main.overlay.upper_active()
    assert main.read("node_modules/lodash/package.json") == (lodash / "package.json").read_bytes()
    assert main.changes.ignored().tops == frozenset({"node_modules"})
