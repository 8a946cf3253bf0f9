"""A merge's conflicts: what each conflicted path is (``Conflict``, classified from
libgit2's conflict entries: content, add_add, modify_delete, rename_rename, rename_delete,
file_directory, mode, binary) and the merged tree with them written in (diff3-style markers
by libgit2's merge of the file, or `git merge-file`, in text files; both versions kept as ``PATH~ours`` and ``PATH~theirs``
otherwise), and that tree shown in the target's workspace with the merge's state and
operation recorded (:func:`show_conflicts`, :mod:`.merge`'s).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import InternalError
from ..records import dataclass
from ..store.gitstore import GitStore
from ..store.mergetrees import IndexSide, MergedIndex, merge_file
from ..store.treediff import diff_trees
from ..types import MODE_LINK, MODE_TREE, VIEW_RESETS, Change
from ..vaults.oplog import kept_detail
from ..workspace.mergestate import write_state
from . import mergeguard

if TYPE_CHECKING:
    from ..vaults.vault import Vault
    from ..workspace.viewattrs import ViewAttributes
    from ..workspace.workspace import Workspace


@dataclass(frozen=True, slots=True)
class ConflictSide:
    path: str
    oid: str
    mode: int


@dataclass(frozen=True, slots=True)
class Conflict:
    """One conflicted path. ``kind``: content, add_add, modify_delete, rename_rename,
    rename_delete, file_directory, mode, binary."""

    path: str
    kind: str
    ancestor: ConflictSide | None
    ours: ConflictSide | None
    theirs: ConflictSide | None


def _changed(store: GitStore, old_tree: str, new_tree: str) -> tuple[str, ...]:
    """The paths ``new_tree`` changes in ``old_tree``, sorted (a merge result's ``changed``)."""
    out: list[Change] = []
    diff_trees(store, old_tree, new_tree, "", out)
    return tuple(sorted(c.path for c in out))


def _side(e: IndexSide | None) -> ConflictSide | None:
    return None if e is None else ConflictSide(e.path, e.oid, e.mode)


def _is_binary(store: GitStore, side: ConflictSide | None) -> bool:
    if side is None or side.mode == MODE_LINK:
        return False
    return b"\0" in store.blob_data(side.oid)[:8000]


def _tree_has_dir(store: GitStore, tree: str, path: str) -> bool:
    hit = store.tree_lookup(tree, path)
    return hit is not None and hit[1] == MODE_TREE


def _classify(
    store: GitStore, index: MergedIndex, ours_tree: str, theirs_tree: str, ours_commit: str | None = None
) -> list[Conflict]:
    """Each conflicted path's kind; a text file the ``merge`` attribute of ``ours_commit``'s
    tree says git does not merge (``-merge``, ``binary``, ``merge=binary``: git 2.39.5's
    own ``t/t0110/url-*``) is a binary conflict, as `git merge` in its checkout keeps
    the target's version and writes no markers."""
    from ..workspace.viewattrs import ViewAttributes
    from ..workspace.wsview import View

    attrs = None
    if ours_commit is not None and index.conflicts:
        attrs = ViewAttributes(store.path, View.of_commit(store, ours_commit), (b"merge", b"binary"))
    try:
        return _kinds(store, index, ours_tree, theirs_tree, attrs)
    finally:
        if attrs is not None:
            attrs.close()


def _unmerged(attrs: ViewAttributes | None, path: str) -> bool:
    """Whether git's merge takes ``path`` for binary by its ``merge`` attribute."""
    if attrs is None:
        return False
    value = attrs.get(path, "merge")
    return value is False or value == "binary"


def _kinds(
    store: GitStore, index: MergedIndex, ours_tree: str, theirs_tree: str, attrs: ViewAttributes | None
) -> list[Conflict]:
    out: dict[str, Conflict] = {}
    for anc_e, ours_e, theirs_e in index.conflicts:
        anc, ours, theirs = _side(anc_e), _side(ours_e), _side(theirs_e)
        path = (ours or theirs or anc).path  # type: ignore[union-attr]
        paths = {s.path for s in (anc, ours, theirs) if s is not None}
        if ours is not None and theirs is not None and ours.path != theirs.path:
            kind = "rename_rename"
        elif anc is not None and (ours is None or theirs is None) and len(paths) > 1:
            kind = "rename_delete"
        elif (ours is None and _tree_has_dir(store, ours_tree, path)) or (
            theirs is None and _tree_has_dir(store, theirs_tree, path)
        ):
            kind = "file_directory"
        elif anc is None and ours is not None and theirs is not None:
            binary = _is_binary(store, ours) or _is_binary(store, theirs) or _unmerged(attrs, path)
            kind = "binary" if binary else "add_add"
        elif ours is None or theirs is None:
            kind = "modify_delete"
        elif ours.oid == theirs.oid and ours.mode != theirs.mode:
            kind = "mode"
        elif (
            _is_binary(store, ours)
            or _is_binary(store, theirs)
            or _is_binary(store, anc)
            or _unmerged(attrs, path)
        ):
            kind = "binary"
        else:
            kind = "content"
        out.setdefault(path, Conflict(path, kind, anc, ours, theirs))
    return [out[p] for p in sorted(out)]


# git writes a conflict's markers of the length its ``conflict-marker-size`` attribute
# names (git's own Documentation/git-merge.txt and t/t????-*.sh: 32); libgit2 takes an
# unsigned short, and markers longer than this are no one's (a confined command writes
# the attributes): a larger size is this one
MAX_MARKER_SIZE = 1024


def marker_size(value: object) -> int:
    """The marker length git takes from a ``conflict-marker-size`` value (``atoi`` of it,
    7 where that is not positive: ``ll_merge_marker_size``), at most :data:`MAX_MARKER_SIZE`."""
    import re

    m = re.match(r"\s*([+-]?\d+)", value) if isinstance(value, str) else None
    n = int(m.group(1)) if m else 0
    return min(n, MAX_MARKER_SIZE) if n > 0 else 7


def _conflict_tree(
    store: GitStore, index: MergedIndex, conflicts: list[Conflict], source: str, ours: str | None = None
) -> tuple[str, list[str], dict[str, int]]:
    """The merged tree with conflicts resolved into markers (or both versions), the paths
    written, and the marker length of each file whose markers are not 7 long: as long as
    the ``conflict-marker-size`` attribute of ``ours``'s tree says (what `git merge` in a
    checkout of ``ours`` reads)."""
    from ..workspace.viewattrs import ViewAttributes
    from ..workspace.wsview import View

    index.clear_conflicts()
    sizes: dict[str, int] = {}
    attrs = None if ours is None else ViewAttributes(store.path, View.of_commit(store, ours), (b"marker",))
    try:
        written = _write_conflicts(store, index, conflicts, source, attrs, sizes)
    finally:
        if attrs is not None:
            attrs.close()
    return index.write_tree(), written, sizes


def _write_conflicts(
    store: GitStore,
    index: MergedIndex,
    conflicts: list[Conflict],
    source: str,
    attrs: ViewAttributes | None,
    sizes: dict[str, int],
) -> list[str]:
    written: list[str] = []
    for c in conflicts:
        for p in {s.path for s in (c.ancestor, c.ours, c.theirs) if s is not None}:
            index.discard(p)
        if c.kind in ("content", "add_add") and c.ours is not None and c.theirs is not None:
            size = 7 if attrs is None else marker_size(attrs.get(c.path, "conflict-marker-size"))
            if size != 7:
                sizes[c.path] = size
            data = _diff3(store, c, source, size)
            index.add(c.path, store.blob_from_bytes(data), c.ours.mode)
            written.append(c.path)
        elif c.kind in ("binary", "mode", "rename_rename") and c.ours is not None and c.theirs is not None:
            index.add(c.ours.path, c.ours.oid, c.ours.mode)
            index.add(c.path + "~ours", c.ours.oid, c.ours.mode)
            index.add(c.path + "~theirs", c.theirs.oid, c.theirs.mode)
            written += [c.path + "~ours", c.path + "~theirs"]
        else:
            # one side deleted (or a file met a directory): keep the side that has content
            keep = c.ours or c.theirs
            if keep is not None:
                index.add(keep.path, keep.oid, keep.mode)
    return written


def _diff3(store: GitStore, c: Conflict, source: str, size: int = 7) -> bytes:
    """The conflicted file with diff3-style markers, as bytes: libgit2's merge of the file
    in process (:func:`..store.mergetrees.merge_file`, its bytes as they are), or `git
    merge-file --diff3` where libgit2 would take a side for binary and git would not.
    (A `git merge-file` process was ~2-3 ms of the kept process's CPU a conflicted file,
    and git's own beside it; h-merge6.)"""
    read = [None if s is None else (s.oid, store.blob_data(s.oid)) for s in (c.ancestor, c.ours, c.theirs)]
    anc, ours, theirs = read
    assert ours is not None and theirs is not None  # (a content or add/add conflict)
    regular = all(s is None or s.mode in (0o100644, 0o100755) for s in (c.ancestor, c.ours, c.theirs))
    assert c.ours is not None
    got = merge_file(
        store, (anc, ours, theirs), c.ours.mode if regular else 0, ("ours", "base", source), size
    )
    if got is not None:
        return got
    return _diff3_git(c.path, [b"" if s is None else s[1] for s in (ours, anc, theirs)], source, size)


def _diff3_git(path: str, data: list[bytes], source: str, size: int = 7) -> bytes:
    """`git merge-file -p --diff3` of ``data`` (ours, base, theirs): libgit2's merge_file
    result comes back decoded as UTF-8 through pygit2, which any other encoding breaks
    (hypothesis found it), and libgit2 takes some text for binary that git merges."""
    import tempfile

    from ..store.gitrun import run

    with tempfile.TemporaryDirectory(prefix="avfs-merge-") as d:
        files = []
        for name, text in zip(("ours", "base", "theirs"), data, strict=True):
            file = os.path.join(d, name)
            with open(file, "wb") as fh:
                fh.write(text)
            files.append(file)
        # its exit status is the number of conflicts (up to 127): not a failure
        proc = run(
            [
                "merge-file",
                "-p",
                "--diff3",
                f"--marker-size={size}",
                "-L",
                "ours",
                "-L",
                "base",
                "-L",
                source,
                *files,
            ],
            check=False,
        )
    if proc.returncode < 0 or proc.returncode > 127:
        raise InternalError(f"git merge-file failed on {path}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def show_conflicts(
    vault: Vault,
    ws: Workspace,
    index: MergedIndex,
    conflicts: list[Conflict],
    source: str,
    sides: tuple[str, str, str | None],
    msg: str,
    release: Callable[[], None],
    held: bool = False,
) -> tuple[tuple[str, ...], int]:
    """Show the merge in the target's workspace with the conflicts written into it
    (:func:`_conflict_tree`), record the merge state and the operation. ``sides``: (ours,
    theirs, base). ``release`` lets the target's writers go (commits the transaction that
    held them, :func:`.mergeguard.writers_held`) once the view is set and before the state
    is written: a reader of another thread or process that found the state with the view
    not yet committed took it for one an undone merge left, and dropped it (two agents
    merging into one main: the second merge went ahead over the first's open one).
    ``held``: the merge has held the target's writers off since its capture, so nothing
    changed it: not checked again (as :func:`.mergeguard.move_target`'s; a status of
    the target, ~1.5 ms of a served conflict's ~28 on minimist; h-merge4).
    The tree is looked at first where it brings a name of git's own state
    (:func:`.mergeplanted.refuse_shown`). Returns (the paths the tree the workspace shows
    changes in ours', operation id)."""
    ours, theirs, base = sides
    target = ws.fork
    # git's unmerged index entries (stage 1 ancestor, 2 ours, 3 theirs), for the mount
    stages = [
        [e.path, n, e.oid, e.mode]
        for sides in index.conflicts
        for n, e in enumerate(sides, 1)
        if e is not None
    ]
    view_tree, written, sizes = _conflict_tree(vault.store, index, conflicts, source, ours)
    changed = _changed(vault.store, vault.store.commit_tree(ours), view_tree)
    from .mergeplanted import refuse_shown  # (loaded only by a merge whose conflicts are written)

    refuse_shown(vault, view_tree, changed, (source, target))
    with vault.oplog.held("merge"):  # (before the view changes, as a merge's)
        if not held:
            mergeguard.refuse_changed(ws)
        # (the mount's index written once, by the state's write: whole with the stages)
        ws.set_base(ours, keep_view=False, view_tree=view_tree, same_view=True, index_after=True)
        release()  # (the fork lock stays held: no checkpoint comes between the view and the state)
        write_state(
            ws,
            {
                "source": source,
                "ours": ours,
                "theirs": theirs,
                "base": base,
                "message": msg,
                "conflicts": [c.path for c in conflicts],
                "written": written,
                "marker_sizes": sizes,  # (the markers not 7 long: `unresolved` looks for these)
                "started": time.time(),
                "view_tree": view_tree,
                "stages": stages,
                VIEW_RESETS: ws.overlay.get_meta(VIEW_RESETS),  # (the merge's own, just set)
            },
        )
        op = vault.oplog.record(
            "merge",
            f"merge {source} into {target}: {len(conflicts)} conflict(s) written",
            fork=target,
            refs=[],
            workspaces=[
                {
                    "fork": target,
                    "before": {"base": ours, "tree": None},
                    "after": {"base": ours, "tree": view_tree},
                    "view_changed": True,
                }
            ],
            details={"source": source, "conflicts": [c.path for c in conflicts]},
        )
    return changed, op


def _record(
    vault: Vault,
    kind: str,
    summary: str,
    fork: str,
    old: str,
    new: str,
    ref: str,
    rec: tuple[str, str] | None = None,
    kept_open: tuple[str, ...] = (),
) -> int:
    """The merge's operation; ``rec``: the recovery ref of what was written through the
    mount as the target moved (its undo brings that back too, as a restore's does);
    ``kept_open``: files its move left, open for writing (in its details)."""
    kept = [] if rec is None else [{"ref": rec[0], "old": None, "new": rec[1]}]
    return vault.oplog.record(
        kind,
        summary,
        fork=fork,
        refs=[{"ref": ref, "old": old, "new": new}, *kept],
        workspaces=[
            {
                "fork": fork,
                "before": {"base": old, "tree": None if rec is None else vault.store.commit_tree(rec[1])},
                "after": {"base": new, "tree": None},
                "view_changed": True,
            }
        ],
        details=kept_detail(kept_open),
    )
