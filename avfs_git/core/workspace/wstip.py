"""Taking the fork's ref as the base while the workspace keeps showing what it shows
(:func:`take_tip`: a ``git commit``, reset or rebase in the mount followed, a moved ref
adopted), and making the directories above entries kept over a new base exist
(:func:`_keep_parents`, also used by :mod:`.wsbase` for a reset or a followed ref).

Moved out of :mod:`.wsbase` (which imports them back) to keep it under the shape's module
size; the workspace is taken as a :class:`Based` (what base tracking needs of it), which
:mod:`.wsbase` imports from here.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from ..store import names
from ..store.gitstore import EMPTY_TREE
from ..store.treediff import diff_trees
from ..types import MODE_COMMIT, MODE_TREE, Change, Refused
from . import wsretire
from .livedir import LiveDir
from .overlayentry import DELETED, FILE, OBJECT, Entry
from .wscapture import Fork


class Based(Fork, Protocol):
    """What base tracking needs of a workspace (:class:`.workspace.Workspace` is one)."""

    state_dir: str
    pinned: str | None
    unadopted: Refused | None  # another hand's commit last refused for paths both changed

    def fork_lock(self, *, wait_s: float | None = None) -> AbstractContextManager[None]: ...
    def live_dir(self) -> LiveDir | None: ...
    def live_dir_for_move(self, avoid: frozenset[str] = ...) -> LiveDir | None: ...
    def live_dir_and_kept_tops(
        self, avoid: frozenset[str] = ...
    ) -> tuple[LiveDir | None, frozenset[str] | None]: ...
    def upper_kept_tops(self) -> frozenset[str]: ...
    def stamp_index(self, *, held: bool = False) -> None: ...
    def index_guard(self, *, git: bool = False) -> AbstractContextManager[None]: ...
    def moved_here(self, commit: str, *, off_branch: bool = False) -> bool: ...


def take_tip(ws: Based, db: Any, base: str, tip: str, *, follow: frozenset[str] = frozenset()) -> None:
    """In the overlay's transaction ``db``: make ``tip`` the base while the workspace
    keeps showing what it shows. Where the two commits differ and no entry (the
    database's or the upper layer's) covers the path, the view showed the old base
    there: an entry now holds that (a blob or tree of the old base, or a deletion), so
    the new base changes nothing anyone sees, the lower layer of an overlay mount
    included. Entries that now show exactly the new base go. Nothing of the old base
    is put back as a whole: the entries are what the view differs from the new base.
    ``follow``: paths that show the new base from now on (another hand's commit's, which
    the person did not touch: :mod:`.wsadopt`), held by no entry."""
    store = ws.store
    old_tree = store.commit_tree(base)
    new_tree = store.commit_tree(tip)
    changed: list[Change] = []
    diff_trees(store, old_tree, new_tree, "", changed)
    paths = sorted({p for c in changed for p in (c.path, c.old_path) if p})
    held: list[str] = []
    for p in paths:
        chain = [*names.ancestors(p), p]
        # the database's entries only: on an overlay mount the kernel caches the lower layer
        # (the database's view), which must not change under it where the upper layer covers
        # a path either (a file the upper layer held, new in git's commit, appeared below it:
        # the next rename onto it failed with ESTALE)
        with ws.overlay.without_upper():
            got, _, _ = ws.overlay.lookup(chain)
        if p in follow:
            if p in got:  # (the person's entry there shows the old base's: it goes)
                ws.overlay.remove(db, p, "git")
            continue
        if got:
            continue  # an entry at or above it shows what the view has there
        was = store.tree_lookup(old_tree, p)
        if (was is None or was[1] == MODE_COMMIT) and _gitlink_in(store, new_tree, p):
            # a submodule git moved to another commit (`git add sub` of its checkout, then a
            # commit), or added (`git submodule add`, then a commit: its checkout is in the
            # view already; masked, the gitlink was recorded removed and its files added,
            # gitmodel9): no file of the view shows its id, the view follows the new base
            continue
        if was is None:
            ws.overlay.put(db, Entry(p, DELETED, 0), "git")
        elif was[1] == MODE_COMMIT:
            # a submodule git dropped or replaced (`git rm --cached sub`, files of its own
            # there, a commit): the view showed its directory, which stays, but no longer as
            # a submodule (held as the gitlink, the next checkpoint put it back over git's
            # commit, and the files below it stayed out of the fork, review10)
            ws.overlay.put(db, Entry(p, OBJECT, MODE_TREE, EMPTY_TREE), "git")
        else:
            ws.overlay.put(db, Entry(p, OBJECT, was[1], was[0]), "git")
        held.append(p)
    with ws.overlay.pruning(ws.changes.prune_ignored):
        seen = ws.changes.entries()  # (on an overlay mount: O(changes), as a capture reads)
    wsretire.retire_onto(ws, db, [], tip, seen=seen)
    _keep_parents(ws, db, held)
    # the database's entries at the paths git changed that now show the new base
    with ws.overlay.without_upper():
        mine = ws.overlay.get_many(paths)
    same: list[Entry] = []
    for p, e in mine.items():
        now = store.tree_lookup(new_tree, p)
        if e.kind == DELETED:
            if now is None and not e.origin:
                same.append(e)
        elif now is not None and e.kind == OBJECT and (e.oid, e.mode) == now:
            same.append(e)
        elif now is not None and e.kind == FILE and e.mode == now[1]:
            node = ws.view.lookup(p)
            if node is not None and node.entry == e and ws.view.entry_oid(node) == now[0]:
                same.append(e)
    same = [e for e in same if _shown_without(ws, e.path, new_tree) == store.tree_lookup(new_tree, e.path)]
    kept = _converted(ws, same)
    if kept:
        same = [e for e in same if e.path not in kept]
    if same:
        ws.overlay.retire(db, same, wsretire.oid_in(ws.store, new_tree))


def _converted(ws: Based, same: list[Entry]) -> frozenset[str]:
    """The files of ``same`` (entries git's commit holds as they are) whose checkout under
    the new base writes other bytes (an LF file git committed with `* text=auto eol=crlf`,
    a CRLF one under `text=auto`): they stay, recorded converted, as a checkpoint keeps
    them (:func:`.wsretire.retirable`), and the file keeps its bytes, as in git's work tree.
    Retired, a pure-FUSE mount showed the new base's form (gitmodel19: the
    `.gitattributes` git committed read `* text=auto eol=crlf\\r\\n`)."""
    from .wsattrs import converted_paths
    from .wsforms import add_converted

    kept = converted_paths(ws.view, [e for e in same if e.kind == FILE])
    if kept:
        add_converted(ws, kept)
    return kept


def _shown_without(ws: Based, path: str, new_tree: str) -> Any:
    """What the view shows at ``path`` once its own entry goes: the new base's, unless a
    database entry above it says otherwise (a tree: what that tree holds there; anything
    else: False). A directory git made while the old base had none (`git reset --hard` to
    a commit that has it) is an entry of an empty tree: when the files git wrote in it,
    each the new base's, went, the new base's files there went with them (the git model,
    gitmodel2: `git rm -r DIR`, a commit, `git reset --hard HEAD~1` on pure FUSE)."""
    chain = names.ancestors(path)
    with ws.overlay.without_upper():
        above = ws.overlay.get_many(chain)
    for a in reversed(chain):
        e = above.get(a)
        if e is None:
            continue
        if e.kind != OBJECT or e.mode != MODE_TREE or e.oid is None:
            return False
        return ws.store.tree_lookup(e.oid, path[len(a) + 1 :] if a else path)
    return ws.store.tree_lookup(new_tree, path)


def _gitlink_in(store: Any, tree: str, path: str) -> bool:
    now = store.tree_lookup(tree, path)
    return now is not None and now[1] == MODE_COMMIT


def _keep_parents(ws: Based, db: Any, paths: list[str]) -> None:
    """Make the directories above each of ``paths`` (entries kept over a new base)
    exist; where one is a file or symlink there, the kept entries go."""
    for p in sorted(paths):
        if ws.overlay.get(p) is None:
            continue  # gone with an entry above it
        for a in names.ancestors(p)[1:]:
            node = ws.view.lookup(a)
            if node is None:
                ws.overlay.put(db, Entry(a, OBJECT, MODE_TREE, EMPTY_TREE), "keep")
            elif not node.is_dir:
                ws.overlay.remove_under(db, a, "keep")
                ws.overlay.remove(db, a, "keep")
                break
