"""libgit2's merge machinery: three-way merges of trees and reverts of commits, each an
index that holds the merged entries and the conflicts (git's unmerged stages).

What a merge does with the result (a merge commit, conflicts as data, markers written into
the workspace, a rebase of a workspace's changes) is the caller's; this module is where its
libgit2 lives, so pygit2's index, entries and errors stay in the store. What libgit2 raises
becomes an :class:`~.errors.AvfsError` here (:func:`.gitlib.git_error`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

from ..errors import InternalError, ObjectUnreadableError, UsageError
from ..types import MODE_TREE
from .gitlib import git_error, git_errors
from .gitstore import GitStore

if TYPE_CHECKING:
    import pygit2

    from ..types import Change
    from .mergeattrs import MergeAttributes


class IndexSide(NamedTuple):
    """One side (stage) of a conflicted path: its path on that side, blob id and mode."""

    path: str
    oid: str
    mode: int


# (ancestor, ours, theirs): git's stages 1, 2 and 3; None where that side has no entry
ConflictSides = tuple[IndexSide | None, IndexSide | None, IndexSide | None]


def _side(e: pygit2.IndexEntry | None) -> IndexSide | None:
    return None if e is None else IndexSide(str(e.path), str(e.id), int(e.mode))


class MergedIndex:
    """libgit2's in-memory index of a merge: the merged entries and the conflicts. Belongs
    to the thread that made it (its store's repository is that thread's)."""

    def __init__(self, store: GitStore, index: pygit2.Index) -> None:
        self._store = store
        self._index = index

    @property
    def conflicts(self) -> list[ConflictSides]:
        """The conflicted paths' (ancestor, ours, theirs), in libgit2's order (none: empty)."""
        found = self._index.conflicts
        if found is None:
            return []
        try:
            return [(_side(a), _side(o), _side(t)) for a, o, t in found]
        except git_errors() as exc:
            raise git_error(exc, "cannot read the merge's conflicts") from exc

    def clear_conflicts(self) -> None:
        """Drop every conflict (its stages) from the index."""
        found = self._index.conflicts
        entries = list(found) if found is not None else []
        try:
            for anc_e, ours_e, theirs_e in entries:
                path = (ours_e or theirs_e or anc_e).path
                del self._index.conflicts[path]  # type: ignore[index]
        except git_errors() as exc:
            raise git_error(exc, "cannot drop the merge's conflicts") from exc

    def discard(self, path: str) -> None:
        """Remove ``path``'s entry, if there is one."""
        try:
            self._index.remove(path)
        except git_errors(OSError):
            pass

    def add(self, path: str, oid: str, mode: int) -> None:
        """Set ``path``'s entry to blob ``oid`` with ``mode``."""
        import pygit2

        try:
            self._index.add(pygit2.IndexEntry(path, pygit2.Oid(hex=oid), pygit2.enums.FileMode(mode)))
        except git_errors() as exc:
            raise git_error(exc, f"cannot add {path} to the merge's index") from exc

    def write_tree(self) -> str:
        """Write the index's entries as trees into the vault; the root tree's id."""
        try:
            return str(self._index.write_tree(self._store._repo))
        except git_errors(OSError) as exc:
            raise git_error(exc, "cannot write the merged tree") from exc


_FAVOR = {None: "NORMAL", "ours": "OURS", "theirs": "THEIRS"}


def merge_trees(
    store: GitStore,
    ancestor: str,
    ours: str,
    theirs: str,
    favor: str | None = None,
    attrs: MergeAttributes | None = None,
) -> MergedIndex:
    """libgit2's three-way merge of trees ``ours`` and ``theirs`` over ``ancestor``
    (renames found; nothing checked out). ``favor``: None (conflicts are kept), ``ours`` or
    ``theirs`` (a conflicting hunk is taken from that side). ``attrs``: the attribute files
    that say how paths merge (:func:`.mergeattrs.merge_attributes`), honoured as git does.

    Raises:
        InternalError: libgit2 cannot merge them (an id missing or malformed).
    """
    import pygit2

    if store.promisor.remote() is not None:  # a lazy vault: what libgit2 will read, in one fetch
        store.prefetch(merge_blobs(store, ancestor, ours, theirs))
    fv = getattr(pygit2.enums.MergeFavor, _FAVOR[favor])
    try:
        with _merging_repo(store, attrs) as repo:
            index = repo.merge_trees(ancestor, ours, theirs, favor=fv)
            _by_attributes(store, repo, index, attrs, favor)
    except git_errors(OSError) as exc:
        named = unreadable_in_merge(store, ancestor, ours, theirs)  # (libgit2 may not name it)
        raise named or git_error(exc, f"cannot merge tree {theirs} into {ours}", InternalError) from exc
    return MergedIndex(store, index)


@contextlib.contextmanager
def _merging_repo(store: GitStore, attrs: MergeAttributes | None) -> Iterator[pygit2.Repository]:
    """The vault's handle, or where ``attrs`` has attribute files, a handle whose work tree
    holds them (libgit2 reads a path's ``merge`` attribute there), freed after."""
    if attrs is None:
        yield store._repo
        return
    import shutil

    from .gitsmudge import attributes_handle

    repo, scratch = attributes_handle(store.path, attrs.files)
    try:
        yield repo
    finally:
        repo.free()
        shutil.rmtree(scratch, ignore_errors=True)


def _by_attributes(
    store: GitStore,
    repo: pygit2.Repository,
    index: pygit2.Index,
    attrs: MergeAttributes | None,
    favor: str | None,
) -> None:
    """Where libgit2's merge of a path both sides changed is not git's by its ``merge``
    attribute: a driver git's config defines (git runs its program:
    :func:`.mergeattrs.runs_driver`) makes the path a conflict of its three sides (libgit2
    merged it as text); with a favoured side, a path git does not merge (``-merge``,
    ``binary``) takes that side's version, as git's binary merge with ``-X ours`` does
    (libgit2 merges it as text then, the favour deciding only the conflicting hunks)."""
    if attrs is None:
        return
    import pygit2

    from .mergeattrs import runs_driver

    def config(key: str) -> str | None:
        try:
            return str(repo.config[key])
        except git_errors():
            return None

    found = index.conflicts
    held = set() if found is None else {str((o or t or a).path) for a, o, t in found}
    for path in sorted(attrs.both - held):
        value = repo.get_attr(path, "merge")
        driven = runs_driver(value, config)
        if not driven and (favor is None or value not in (False, "binary")):
            continue
        sides = [store.tree_lookup(tree, path) for tree in attrs.trees]
        anc, ours, theirs = (
            None
            if s is None or s[1] == MODE_TREE
            else pygit2.IndexEntry(path, pygit2.Oid(hex=s[0]), pygit2.enums.FileMode(s[1]))
            for s in sides
        )
        if ours is None or theirs is None:
            continue
        if driven:  # (its stage 0, libgit2's text merge, goes)
            index.add_conflict(anc, ours, theirs)  # type: ignore[arg-type]  # (pygit2 takes None)
        else:
            index.add(ours if favor == "ours" else theirs)


def criss_cross(store: GitStore, ours: str, theirs: str, base: str) -> bool:
    """Whether commits ``ours`` and ``theirs`` have a common ancestor that ``base`` (libgit2's
    one merge base) does not reach: another merge base (a criss-cross history, each side
    having merged the other). git then merges over a virtual ancestor (the merge of the
    merge bases), not over one of them. Walks the commits ``ours`` has since ``base``, and
    those of ``theirs`` only when one of the first is a merge (without one, a common
    ancestor among them would be a better merge base than ``base``): 2,000 commits on
    each side since their base, 26-54 ms, ``merge_base`` itself 34-60 ms (load ~26)."""
    mine: set[str] = set()
    merges = False
    for c in store.walk([ours], [base]):
        mine.add(str(c.id))
        merges = merges or len(c.parent_ids) > 1
    return merges and any(str(c.id) in mine for c in store.walk([theirs], [base]))


def merge_commits(
    store: GitStore, ours: str, theirs: str, favor: str | None = None, attrs: MergeAttributes | None = None
) -> MergedIndex:
    """libgit2's merge of commits ``ours`` and ``theirs`` over all their merge bases (several:
    their merge first, recursively, as git's ``ort`` makes its virtual ancestor): the merge
    of a criss-cross history (:func:`criss_cross`), where :func:`merge_trees` over one base
    conflicts where git does not (libgit2's ``testrepo.git``: ``br2`` and ``master`` each
    merged the other; a line added on ``master`` conflicted with the base's first line).
    In a lazy vault what it reads is fetched first, in one batch (:func:`commits_merge_blobs`).
    ``attrs``: as :func:`merge_trees`'s (the bases' own merge follows them too, as git's)."""
    import pygit2

    if store.promisor.remote() is not None:  # a lazy vault: what libgit2 will read, in one fetch
        store.prefetch(commits_merge_blobs(store, ours, theirs))
    fv = getattr(pygit2.enums.MergeFavor, _FAVOR[favor])
    try:
        with _merging_repo(store, attrs) as repo:
            index = repo.merge_commits(ours, theirs, favor=fv)
            _by_attributes(store, repo, index, attrs, favor)
    except git_errors(OSError) as exc:
        raise git_error(exc, f"cannot merge commit {theirs} into {ours}", InternalError) from exc
    return MergedIndex(store, index)


def merge_bases(store: GitStore, a: str, b: str) -> list[str]:
    """Every merge base of commits ``a`` and ``b`` (``git merge-base --all``; libgit2's
    ``git_merge_bases``, which pygit2 does not offer): several in a criss-cross history."""
    from .gitrun import run

    proc = run(["merge-base", "--all", a, b], git_dir=store.path, ok=(0, 1), text=True)
    return proc.stdout.split()


def commits_merge_blobs(store: GitStore, ours: str, theirs: str) -> dict[str, str]:
    """The blobs :func:`merge_commits` reads, each with a path of it: over each merge base,
    what a merge of the trees over it reads (:func:`merge_blobs`), and where there are
    several, the same for each two of them (libgit2 merges the bases into a virtual
    ancestor first, recursively). A superset: a path of the virtual ancestor is a base's
    blob or a merged one (made locally), and a path both tips changed against it was
    changed by both against a base whose blob it holds there, or its sides are the
    bases' own (fetched for their merge). Found on ``merge-recursive``: in a lazy vault
    such a merge went over one base, 14 of 26 conflicting where git's are clean."""
    want: dict[str, str] = {}
    todo, seen = [(ours, theirs)], set()
    while todo:
        pair = todo.pop()
        if pair in seen:
            continue
        seen.add(pair)
        a_tree, b_tree = store.commit_tree(pair[0]), store.commit_tree(pair[1])
        bases = merge_bases(store, *pair)
        for base in bases:
            for oid, path in merge_blobs(store, store.commit_tree(base), a_tree, b_tree).items():
                want.setdefault(oid, path)
        todo += [(x, y) for i, x in enumerate(bases) for y in bases[i + 1 :]]
    return want


def unreadable_in_merge(
    store: GitStore, ancestor: str, ours: str, theirs: str
) -> ObjectUnreadableError | None:
    """The error naming an object a three-way merge of the trees reads that cannot be read
    (a tree, or a blob of :func:`merge_blobs`, each read whole and checked against its id),
    or None: after libgit2 failed, whose message says "failed to inflate" and no more."""
    try:
        for oid in merge_blobs(store, ancestor, ours, theirs):
            store.check_object(oid)
    except ObjectUnreadableError as exc:
        return exc
    from .unreadable import first_unreadable  # (libgit2 took a pack as unusable whole: the damage)

    return first_unreadable(store, [ancestor, ours, theirs])


def merge_blobs(store: GitStore, ancestor: str, ours: str, theirs: str) -> dict[str, str]:
    """The blobs a three-way merge of trees reads, each with a path of it: those of every
    path both sides changed (on all three sides), and where a side both deleted and added
    files, those (libgit2 compares them to find renames). A path only one side changed is
    taken whole, by id."""
    from .treediff import diff_trees

    sides: list[list[Change]] = [[], []]
    diff_trees(store, ancestor, ours, "", sides[0])
    diff_trees(store, ancestor, theirs, "", sides[1])
    by_path = [{c.path: c for c in side} for side in sides]
    both = by_path[0].keys() & by_path[1].keys()
    want: dict[str, str] = {}
    for side in by_path:
        for path in sorted(both):
            c = side[path]
            want.update((o, path) for o in (c.old_oid, c.new_oid) if o is not None and o not in want)
        added = [(c.new_oid, c.path) for c in side.values() if c.old_oid is None and c.new_oid is not None]
        deleted = [(c.old_oid, c.path) for c in side.values() if c.new_oid is None and c.old_oid is not None]
        if added and deleted:
            want.update((o, p) for o, p in added + deleted if o not in want)
    # only blobs (a tree or submodule id in a change is never fetched); modes tell
    kinds = {c.old_oid: c.old_mode for side in sides for c in side} | {
        c.new_oid: c.new_mode for side in sides for c in side
    }
    return {o: p for o, p in want.items() if kinds.get(o) not in (None, 0o040000, 0o160000)}


def revert_commit(
    store: GitStore, commit: str, ours: str, mainline: int, label: str, attrs: MergeAttributes | None = None
) -> MergedIndex:
    """libgit2's revert of commit ``commit`` onto commit ``ours`` (``mainline``: the parent,
    from 1, a merge commit is reverted against; 0 for another commit). ``label`` names the
    reverted revision in the error. ``attrs``: the attribute files that say how its paths
    merge (:func:`.mergeattrs.merge_attributes` of :func:`revert_trees`), honoured as `git
    revert` in a checkout of ``ours`` does: the revert is then libgit2's merge of those
    trees (what ``git_revert_commit`` merges) in a handle that reads them.

    Raises:
        UsageError: libgit2 cannot revert it (``cannot revert LABEL: ...``).
    """
    if attrs is not None:
        return merge_trees(store, *attrs.trees, None, attrs)
    target, onto = store.commit(commit), store.commit(ours)
    try:
        index = store._repo.revert_commit(target, onto, mainline)
    except git_errors() as exc:
        raise git_error(exc, f"cannot revert {label}", UsageError) from exc
    return MergedIndex(store, index)


def revert_trees(store: GitStore, commit: str, ours: str, mainline: int) -> tuple[str, str, str]:
    """The trees a revert of ``commit`` onto ``ours`` merges (``git_revert_commit``'s):
    (``commit``'s, ``ours``', its parent's: ``mainline``'s, else its one parent's, git's
    empty tree for a root commit)."""
    from .gitstore import EMPTY_TREE

    parents = store.commit(commit).parent_ids
    parent = str(parents[mainline - 1]) if mainline else (str(parents[0]) if parents else None)
    return (
        store.commit_tree(commit),
        store.commit_tree(ours),
        store.commit_tree(parent) if parent else EMPTY_TREE,
    )


# a side this large (or larger) goes to git: libgit2 takes it for binary (and merges it
# to nothing), git refuses it (both stop at 1,023 MiB: ``GIT_XDIFF_MAX_SIZE``, ``MAX_XDIFF_SIZE``)
MERGE_FILE_MAX = 1 << 29


def merge_file(
    store: GitStore,
    sides: tuple[tuple[str, bytes] | None, tuple[str, bytes], tuple[str, bytes]],
    mode: int,
    labels: tuple[str, str, str],
    marker_size: int = 7,
) -> bytes | None:
    """libgit2's three-way merge of one file's blobs (``git_merge_file_from_index``), in
    process: the file with diff3-style conflict markers, labelled ``labels`` (ours, base,
    theirs), as ``git merge-file -p --diff3 -L OURS -L BASE -L THEIRS`` prints it (the
    same xdiff merge at the same level, ``XDL_MERGE_ZEALOUS_ALNUM``, capped by diff3 to
    eager; held to git's output on real files by ``tests/test_mergefile.py``). ``sides``:
    (ancestor or None, ours, theirs), each (blob id, its bytes), the blobs in the vault,
    none with a NUL in its first 8,000 bytes (a binary conflict is not merged: libgit2's
    test of it and git's are that one).

    The bytes are taken as they come (pygit2's ``merge_file_from_index`` decodes them as
    UTF-8, which breaks any other encoding). None, for the caller to ask git, where the two
    differ: no ancestor, or an empty side (libgit2 leaves that side's label off its marker
    line then: ``|||||||``, ``<<<<<<<``, where git writes ``||||||| base``), a side of :data:`MERGE_FILE_MAX` bytes or more, a mode that is
    not a regular file's."""
    anc = sides[0]
    if mode not in (0o100644, 0o100755) or anc is None or not all(s[1] for s in (anc, *sides[1:])):
        return None
    if any(s is not None and len(s[1]) >= MERGE_FILE_MAX for s in sides):
        return None
    import pygit2
    from pygit2.errors import check_error
    from pygit2.ffi import C, ffi

    repo = store._repo
    keep: list[object] = []  # (the C strings the entries and options point into)

    def entry(side: tuple[str, bytes]) -> object:
        c, ref = pygit2.IndexEntry("f", pygit2.Oid(hex=side[0]), pygit2.enums.FileMode(mode))._to_c()
        keep.append(ref)
        return c

    opts = ffi.new("git_merge_file_options *")
    opts.version = 1
    for field, label in zip(("our_label", "ancestor_label", "their_label"), labels, strict=True):
        text = ffi.new("char[]", label.encode("utf-8", "surrogateescape"))
        keep.append(text)
        setattr(opts, field, text)
    opts.flags = C.GIT_MERGE_FILE_STYLE_DIFF3 | C.GIT_MERGE_FILE_SIMPLIFY_ALNUM
    opts.marker_size = marker_size  # (git's ``--marker-size``: the ``conflict-marker-size`` attribute)
    out = ffi.new("git_merge_file_result *")
    c_anc, c_ours, c_theirs = entry(anc), entry(sides[1]), entry(sides[2])
    try:
        check_error(C.git_merge_file_from_index(out, repo._repo, c_anc, c_ours, c_theirs, opts))
    except git_errors(OSError) as exc:
        raise git_error(exc, "cannot merge a conflicted file's sides", InternalError) from exc
    try:
        return bytes(ffi.buffer(out.ptr, out.len)) if out.len else b""
    finally:
        C.git_merge_file_result_free(out)
