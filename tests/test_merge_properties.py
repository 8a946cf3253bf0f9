"""Laws of merging, checked by hypothesis on real vaults: disjoint edits never conflict and
the result holds both; the same edit on both sides merges to itself; merging is
deterministic (same trees from the same histories); abort gives back byte-identical state."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, example, given, settings

from avfs_git.core.errors import AvfsError
from avfs_git.core.operations import checkpoint, merge
from avfs_git.core.store import trivialmerge
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE

from .conftest import libgit2_repo, remove_home, scratch_home

FILES = ["a", "b", "c", "d/x", "d/y", "e/f/g"]  # no path is a prefix directory of another
DATA = st.binary(max_size=60)
SETTINGS = settings(
    max_examples=int(os.environ.get("AVFS_PROP_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@contextmanager
def fresh_vault() -> Iterator[object]:
    d = scratch_home("avfs-mprop-")
    home = Home(d, author=("p", "p@x"), mounts=MOUNT_SIDE)
    v = home.create_vault("v")
    try:
        yield v
    finally:
        v.close()
        remove_home(d)


def files(ws) -> dict[str, bytes]:
    return {e.path: ws.read(e.path) for e in ws.walk("") if e.kind.value == "file"}


def apply(ws, edits: dict[str, bytes | None]) -> None:
    for p, data in edits.items():
        if data is None:
            if ws.exists(p):
                ws.remove(p)
        else:
            ws.write(p, data)


def expected(base: dict[str, bytes], *edits: dict[str, bytes | None]) -> dict[str, bytes]:
    out = dict(base)
    for e in edits:
        for p, data in e.items():
            if data is None:
                out.pop(p, None)
            else:
                out[p] = data
    return out


@st.composite
def disjoint_scenario(
    draw: st.DrawFn,
) -> tuple[dict[str, bytes], dict[str, bytes | None], dict[str, bytes | None]]:
    base = draw(st.dictionaries(st.sampled_from(FILES), DATA, max_size=len(FILES)))
    side = draw(st.lists(st.booleans(), min_size=len(FILES), max_size=len(FILES)))
    a_paths = [p for p, s in zip(FILES, side, strict=True) if s]
    b_paths = [p for p, s in zip(FILES, side, strict=True) if not s]
    edit = st.one_of(st.none(), DATA)
    ea = draw(st.dictionaries(st.sampled_from(a_paths), edit) if a_paths else st.just({}))
    eb = draw(st.dictionaries(st.sampled_from(b_paths), edit) if b_paths else st.just({}))
    return base, ea, eb


def _setup(v, base: dict[str, bytes], ea: dict[str, bytes | None], eb: dict[str, bytes | None]) -> None:
    main = v.workspace("main")
    apply(main, base)
    checkpoint.save(v)
    v.create_fork("main", "a")
    v.create_fork("main", "b")
    apply(v.workspace("a"), ea)
    apply(v.workspace("b"), eb)


@SETTINGS
@given(disjoint_scenario())
def test_disjoint_edits_never_conflict_and_both_survive(scenario) -> None:
    base, ea, eb = scenario
    with fresh_vault() as v:
        _setup(v, base, ea, eb)
        r1 = merge.merge(v, "a", "main")
        r2 = merge.merge(v, "b", "main")
        assert not r1.conflicts and not r2.conflicts
        assert r2.status in ("merged", "fast_forward", "up_to_date")
        assert files(v.workspace("main")) == expected(base, ea, eb)


@SETTINGS
@given(disjoint_scenario())
def test_the_same_edit_on_both_sides_merges_to_itself(scenario) -> None:
    base, ea, _ = scenario
    with fresh_vault() as v:
        _setup(v, base, ea, ea)
        merge.merge(v, "a", "main")
        res = merge.merge(v, "b", "main")
        assert not res.conflicts
        assert files(v.workspace("main")) == expected(base, ea)
        assert merge.merge(v, "b", "main").status == "up_to_date"  # merge(b, b) == b


@SETTINGS
@given(disjoint_scenario())
def test_merging_is_deterministic(scenario) -> None:
    base, ea, eb = scenario
    trees = []
    for _ in range(2):
        with fresh_vault() as v:
            _setup(v, base, ea, eb)
            merge.merge(v, "a", "main", no_ff=True)
            merge.merge(v, "b", "main", no_ff=True)
            trees.append(v.store.commit_tree(v.workspace("main").tip()))
    assert trees[0] == trees[1]


@SETTINGS
@given(st.dictionaries(st.sampled_from(FILES), DATA, min_size=1), DATA, DATA)
def test_abort_gives_back_byte_identical_state(base, ours, theirs) -> None:
    path = sorted(base)[0]
    if ours == theirs or base[path] in (ours, theirs):
        return  # not a conflict
    with fresh_vault() as v:
        _setup(v, base, {path: theirs}, {})
        main = v.workspace("main")
        main.write(path, ours)
        checkpoint.save(v)
        before = (files(main), main.tip(), main.is_dirty())
        res = merge.merge(v, "a", "main", write_conflicts=True)
        assert res.status == "conflicts_written"
        main.write("scratch-while-resolving", b"x")
        merge.merge_abort(v, "main")
        assert (files(main), main.tip(), main.is_dirty()) == before


def _both_merges(v):
    """Checkpoint forks a and b, then merge them into main's tree both ways: avfs's trivial
    merge (None: it leaves the merge to libgit2) and libgit2's merge_trees."""
    checkpoint.save(v, "a")
    checkpoint.save(v, "b")
    store, repo = v.store, libgit2_repo(v)
    t_base, t_a, t_b = (store.commit_tree(v.workspace(f).tip()) for f in ("main", "a", "b"))
    return trivialmerge._trivial_merge(store, t_base, t_a, t_b), repo.merge_trees(t_base, t_a, t_b), repo


@SETTINGS
@given(disjoint_scenario())
# one side adds to a directory the other side empties (deletes): merged entry by entry
@example(({"a": b"", "d/y": b""}, {"d/x": b""}, {"a": None, "d/y": None}))
def test_the_fast_disjoint_merge_agrees_with_libgit2(scenario) -> None:
    """avfs merges disjoint changes itself (O(directories both touched)); libgit2's merge_trees must give
    the very same tree."""
    base, ea, eb = scenario
    with fresh_vault() as v:
        _setup(v, base, ea, eb)
        fast, index, repo = _both_merges(v)
        assert index.conflicts is None
        want = str(index.write_tree(repo))
        assert fast is not None and fast[0] == want


OVERLAP_DATA = st.sampled_from([b"one\n", b"two\n", b"three\n"])  # equal edits happen often
# names that sort differently as a file and as a directory ("a" < "a-b" < "a.txt" < "a/"),
# and files that become directories and back
CLASHING = ["a", "a-b", "a.txt", "a/x", "a/y", "b", "d/x", "d/x/z", "d/y"]


def apply_some(ws, edits: dict[str, bytes | None]) -> None:
    """Apply what can be applied (a file where a directory is, or the reverse, is skipped)."""
    for p, data in edits.items():
        try:
            apply(ws, {p: data})
        except AvfsError:
            pass


@SETTINGS
@given(
    st.dictionaries(st.sampled_from(CLASHING), OVERLAP_DATA),
    st.dictionaries(st.sampled_from(CLASHING), st.one_of(st.none(), OVERLAP_DATA)),
    st.dictionaries(st.sampled_from(CLASHING), st.one_of(st.none(), OVERLAP_DATA)),
)
# a file become a directory beside "a.txt" moves in git's order (found by review)
@example({"a": b"one\n", "a.txt": b"one\n", "b": b"one\n"}, {"b": b"two\n"}, {"a": None, "a/x": b"one\n"})
@example({"a": b"one\n", "a-b": b"one\n"}, {"a-b": b"two\n"}, {"a": None, "a/x": b"one\n"})
# a file both sides replaced by a directory: git sees rename/rename (found by review)
@example({"a": b"one\n"}, {"a": None, "a/x": b"one\n"}, {"a": None, "a/y": b"one\n"})
def test_the_trivial_merge_never_disagrees_with_libgit2(base, ea, eb) -> None:
    """Overlapping edits: whenever avfs's own tree-level merge answers, libgit2 merges to
    the very same tree (or, where libgit2 is stricter than git, git's merge does); where a
    real merge is needed avfs leaves it to libgit2."""
    with fresh_vault() as v:
        apply_some(v.workspace("main"), base)
        checkpoint.save(v)
        v.create_fork("main", "a")
        v.create_fork("main", "b")
        apply_some(v.workspace("a"), ea)
        apply_some(v.workspace("b"), eb)
        fast, index, repo = _both_merges(v)
        store, t_a = v.store, v.store.commit_tree(v.workspace("a").tip())
        if fast is None:
            return
        assert fast[1] == merge._changed(store, t_a, fast[0])
        subprocess.run(
            ["git", "--git-dir", v.path, "fsck", "--strict", "--no-dangling"], check=True, capture_output=True
        )
        if index.conflicts is None:
            assert fast[0] == str(index.write_tree(repo))
        else:
            # libgit2 sees a rename on one side meeting the very same file added on the
            # other (rename/add); git's own merge (ort) merges that cleanly, as avfs does
            tips = [v.workspace(f).tip() for f in ("a", "b")]
            proc = subprocess.run(
                ["git", "--git-dir", v.path, "merge-tree", "--write-tree", *tips],
                capture_output=True,
                text=True,
            )
            assert proc.returncode == 0, proc.stdout
            assert proc.stdout.split()[0] == fast[0]


def _trivial_both_ways(v) -> tuple[object, object, int]:
    """The trivial merge of forks a and b into main's tree as it runs, and again with the
    walk by position (``_Merger.aligned``) turned off, so that every directory goes through
    the general walk by names; and how many directories the walk by position merged."""
    checkpoint.save(v, "a")
    checkpoint.save(v, "b")
    store = v.store
    trees = [store.commit_tree(v.workspace(f).tip()) for f in ("main", "a", "b")]
    took = 0
    real = trivialmerge._Merger.aligned

    def counted(self, *args):
        nonlocal took
        out = real(self, *args)
        took += out is not trivialmerge._UNALIGNED
        return out

    with pytest.MonkeyPatch.context() as m:
        m.setattr(trivialmerge._Merger, "aligned", counted)
        fast = trivialmerge._trivial_merge(store, *trees)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(trivialmerge._Merger, "aligned", lambda self, *args: trivialmerge._UNALIGNED)
        general = trivialmerge._trivial_merge(store, *trees)
    return fast, general, took


@SETTINGS
@given(
    st.dictionaries(st.sampled_from(CLASHING), OVERLAP_DATA),
    st.dictionaries(st.sampled_from(CLASHING), st.one_of(st.none(), OVERLAP_DATA)),
    st.dictionaries(st.sampled_from(CLASHING), st.one_of(st.none(), OVERLAP_DATA)),
)
# the same names on all three sides: the walk by position merges every directory
@example({"a": b"one\n", "b": b"one\n", "d/x": b"one\n"}, {"a": b"two\n"}, {"b": b"two\n", "d/x": b"two\n"})
# the same change on both sides to a file beside ones each side changed alone
@example({"a": b"one\n", "b": b"one\n", "a.txt": b"one\n"}, {"a": b"two\n", "b": b"two\n"}, {"b": b"two\n"})
# the same deletion inside a directory on both sides (libgit2 may see a rename): refused
@example({"a": b"one\n", "d/x": b"one\n", "d/y": b"one\n"}, {"a": b"two\n", "d/y": None}, {"d/y": None})
# as many names on each side, not the same ones: one side deleted a name and added another
@example({"a": b"one\n", "a-b": b"one\n", "b": b"one\n"}, {"a": None, "a.txt": b"one\n"}, {"a-b": b"two\n"})
# a file become a directory at the same place in both sides' names
@example({"a": b"one\n", "b": b"one\n"}, {"b": b"two\n"}, {"a": None, "a/x": b"one\n"})
def test_the_walk_by_position_agrees_with_the_walk_by_name(base, ea, eb) -> None:
    """A directory whose three trees hold the same names is merged entry by position; the
    very same tree, changed paths and refusals (None) come from the walk by names."""
    with fresh_vault() as v:
        apply_some(v.workspace("main"), base)
        checkpoint.save(v)
        v.create_fork("main", "a")
        v.create_fork("main", "b")
        apply_some(v.workspace("a"), ea)
        apply_some(v.workspace("b"), eb)
        fast, general, _ = _trivial_both_ways(v)
        assert fast == general


def test_the_walk_by_position_merges_a_directory_both_sides_changed_files_in() -> None:
    with fresh_vault() as v:
        _setup(v, {"d/x": b"1", "d/y": b"1", "d/z": b"1", "e": b"1"}, {"d/x": b"2"}, {"d/y": b"3", "e": b"3"})
        fast, general, took = _trivial_both_ways(v)
        assert took == 2  # the root and d
        assert fast == general and fast is not None
        assert fast[1] == ("d/y", "e")
        files_ = v.store.files_of(fast[0])
        assert {p: v.store.blob_data(oid) for p, (oid, _) in files_.items()} == {
            "d/x": b"2",
            "d/y": b"3",
            "d/z": b"1",
            "e": b"3",
        }
