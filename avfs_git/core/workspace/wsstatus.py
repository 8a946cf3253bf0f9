"""What changed in a workspace since its base commit, and which of its new paths git ignores.

:class:`Changes` reads a workspace's merged view (:mod:`.wsview`): ``status`` costs the
changes (the overlay's entries), never the tree; git's own ignore rules (:mod:`.ignore`)
decide what is ignored, asked once for a new directory that git ignores whole (a venv).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping

from ..errors import AvfsError
from ..store import gitnames, names
from ..store.filemode import recorded_mode, trusts_exec_bit, trusts_symlinks
from ..store.gitlib import libgit2_loaded
from ..store.gitnames import NotRecorded
from ..store.gitstore import EMPTY_TREE
from ..store.lineconfig import fork_settings
from ..store.treediff import diff_entry, diff_trees, pair_renames, paths_between, type_changed
from ..types import MODE_COMMIT, MODE_TREE, Change, ChangeStatus
from . import overlayentry, upperjournal
from .ignore import GITIGNORE, MAX_PATTERN_FILE, IgnoreRules, bounded_pattern_file
from .ignorekept import NAME as KEPT_NAME
from .overlay import Overlay
from .overlayentry import (
    DELETED,
    EMPTY_TREE_ID,
    FILE,
    NO_IGNORED,
    OBJECT,
    SPECIAL_ORIGIN,
    Entry,
    Ignored,
    covered,
    outside,
)
from .wsattrs import compared
from .wsgitrules import content_check, fsck_read, staged_submodules
from .wsview import RACE_TRIES, Node, Raced, View, dirty_dirs

# what a status reports of a materialized file before reading it (its id then found)
_UNHASHED = (ChangeStatus.ADDED, ChangeStatus.MODIFIED, ChangeStatus.TYPE_CHANGED)


class Changes:
    """Status and ignored paths of the workspace that ``view`` shows (over ``overlay``)."""

    def __init__(
        self,
        view: View,
        overlay: Overlay,
        *,
        view_time: Callable[[], float] | None = None,
        mount_git_dir: Callable[[], str | None] | None = None,
        staged_gitlinks: Callable[[list[str]], dict[str, str]] | None = None,
        worktree_git_dir: Callable[[], str | None] | None = None,
    ) -> None:
        """``view_time`` and ``mount_git_dir`` (the git dir of the fork's overlay mount,
        where its daemon answers for the upper layer's journal): a live fork's, for a
        status that reads only what changed (:mod:`.upperjournal`). ``staged_gitlinks``:
        of the directories it is given, those git's index in the fork's mount holds as
        gitlinks (:func:`staged_submodules`). ``worktree_git_dir``: the worktree git dir
        of the fork's mount, whose ``config.worktree`` may set ``core.fileMode``
        (:meth:`modes_trusted`)."""
        self.view = view
        self.store = view.store
        self.overlay = overlay
        self.view_time = view_time
        self.mount_git_dir = mount_git_dir
        self._staged_gitlinks = staged_gitlinks
        self._worktree_git_dir = worktree_git_dir
        self._ignore_rules: IgnoreRules | None = None
        self.last_read: list[Entry] | None = None  # the entries the last status read
        self.last_pending: upperjournal.Pending | None = None  # (its journal's position)
        self._modes = (True, True)  # git's core.fileMode and core.symlinks, read at each status

    def modes_trusted(self) -> tuple[bool, bool]:
        """git's ``core.fileMode`` and (gitmodel27) ``core.symlinks`` for this fork
        (core/store/filemode.py): the person's config, and its mount's ``config.worktree``
        where the fork has a mount's worktree."""
        wt, branch = None if self._worktree_git_dir is None else self._worktree_git_dir(), self.view.branch
        return trusts_exec_bit(self.store.path, wt, branch), trusts_symlinks(self.store.path, wt, branch)

    def is_dirty(self) -> bool:
        """True when there are uncheckpointed changes: empty new directories and paths git
        ignores (a venv, caches) don't count. Content is not compared: a file rewritten with
        the same bytes counts."""
        if self.overlay.upper_active():
            from .wsfold import holds_only_kept

            if holds_only_kept(self.overlay):  # (new directories git ignores: never changes)
                with self.overlay.without_upper():
                    return self.is_dirty()
            # the upper layer keeps what checkpoints recorded while it was mounted (a status
            # walks it once; has_changes would walk it first for nothing)
            return bool(self.status())
        if not self.overlay.has_changes():
            return False
        # below a new directory git ignores (a node_modules) nothing is read, as git's status
        # never looks there (a merge asks this 3 times: it read 15,000 entries each time)
        rest, frozen = self.pruned()
        added, tracked = self._added_paths(rest)
        if tracked:  # a deletion, or a change of a tracked path (an exec bit alone: core.fileMode)
            return all(self.modes_trusted()) or bool(self.status())
        if added is None:
            changes = self._changes(rest, hash_files=False, skip=frozen)
            if any(c.status is not ChangeStatus.ADDED for c in changes):
                return True
            added = [c.path for c in changes if not covered(c.path, frozen)]
        if not added:
            return False
        ignored = set(self._ignored_among(added, rest, frozen).files)
        return any(p not in ignored for p in added)

    def status(self) -> list[Change]:
        """What changed since the base commit (O(changes)), paths git ignores left out."""
        return self.status_ignored(files=False)[0]

    def status_ignored(self, files: bool = True) -> tuple[list[Change], Ignored]:
        """(what changed since the base commit, the new paths git ignores), O(changes); in a
        merge, the last one's where nothing changed since it (:func:`.upperjournal.status_again`). ``files``
        False: the ignored files below a new directory git ignores neither listed nor read."""
        kept, state = upperjournal.status_again(self)
        if kept is not None:
            return kept
        for tries_left in range(RACE_TRIES - 1, -1, -1):
            try:
                with self.overlay.rows_pruned(not files):
                    return upperjournal.status_keep(self, state, self._status_ignored())
            except Raced:
                if not tries_left:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def not_recorded(self, entries: list[Entry] | None = None) -> list[NotRecorded]:
        """What the workspace shows that a checkpoint leaves out: names git refuses,
        ``.gitmodules`` and ``.gitattributes`` files whose contents it refuses, and the fifos, sockets and device
        nodes of an overlay mount's live tree (paths git ignores aside: they are never
        recorded anyway). ``entries``: those a status just read (:attr:`last_read`)."""
        if entries is None:
            with self.overlay.pruning(self.prune_ignored):
                # on an overlay mount, what may differ from the base (its upper layer keeps what
                # checkpoints recorded: a name git refuses, a refused .gitmodules or a fifo is
                # never recorded, so it stays among them): O(changes), not O(upper layer)
                entries = self._entries()[0]
        left = gitnames.not_recorded((e.path, e.mode) for e in entries if e.kind != DELETED)
        refused = frozenset(n.path for n in left)
        for e in entries:
            rule = fsck_read(names.basename(e.path), e)
            if rule is not None and not (refused and covered(e.path, refused)):
                under = self.view.lookup(e.path, skip_self=True)
                try:
                    got = content_check(
                        self.store, self.overlay, e, under.oid if under is not None else None, rule
                    )[1]
                except FileNotFoundError:
                    continue  # replaced since read: what replaced it is checked next time
                if got is not None:
                    left.append(NotRecorded(e.path, *got))
        specials = [
            NotRecorded(
                e.path,
                e.origin[len(SPECIAL_ORIGIN) :],
                overlayentry.special_why(e.origin[len(SPECIAL_ORIGIN) :]),
            )
            for e in entries
            if e.kind == DELETED and e.origin and e.origin.startswith(SPECIAL_ORIGIN)
        ]
        return sorted(left + specials, key=lambda n: n.path)

    def prune_ignored(self, tops: list[str], found: list[Entry]) -> set[str]:
        """Which of the upper layer's new top directories ``tops`` git ignores (``found``:
        the upper layer's entries read so far, whose .gitignore files count)."""
        from .wsshown import Shown  # (a path with new top directories only: not every command's)

        by_path = Shown(self.overlay, found)
        base = self.view.base
        skip = self.ignore_rules.ignored(
            (), lambda d: self._gitignore_source(by_path, base, d), dirs=set(tops)
        )
        # git ignores untracked paths only: a directory of the base is walked (a restore writes
        # one anew below an opaque one; pruned, its tracked files showed as deleted)
        tree = self.store.commit_tree(base) if skip else ""
        return {d for d in skip if (hit := self.store.tree_lookup(tree, d)) is None or hit[1] != MODE_TREE}

    def entries(self) -> list[Entry]:
        """The overlay's entries as a status reads them (a checkpoint's capture too): on an
        overlay mount, those that may differ from the base (:mod:`.upperjournal`), else all
        of them. Call it with the overlay's pruning of ignored directories on, as a status."""
        return self._entries()[0]

    def read_entries(self) -> tuple[list[Entry], upperjournal.Pending | None, bool]:
        """(:meth:`entries`, the journal's position they were read at: None when none answered,
        whether only those that may differ), for a capture (upperjournal.remember_commit)."""
        return self._entries()

    def _entries(self) -> tuple[list[Entry], upperjournal.Pending | None, bool]:
        """The overlay's entries a status reads (see :func:`.upperjournal.entries`)."""
        if self.view_time is None or self.mount_git_dir is None or not self.overlay.upper_active():
            return self.overlay.all(), None, False
        rec = self.overlay.recording  # (a record's: its status's read taken again by its capture)
        got = upperjournal.entries(
            self.overlay,
            base=self.view.base,
            view_time=self.view_time(),
            git_dir=self.mount_git_dir(),
            base_diff=self.base_diff,
            pin_diff=self.pin_diff,
            trusted=all(self.modes_trusted()),
            last=getattr(rec, "read", None),
        )
        if getattr(rec, "sink", None) is not None:
            rec.read = got
        return got

    def base_diff(self, old: str, new: str) -> list[str] | None:
        """The paths where two commits' trees differ (None when one is not there)."""
        try:
            a, b = self.store.commit_tree(old), self.store.commit_tree(new)
        except AvfsError:
            return None
        return paths_between(self.store, a, b)

    def pin_diff(self, tree: str, base: str) -> list[str] | None:
        """The paths where ``tree`` differs from commit ``base``'s tree (None: unknown)."""
        try:
            b = self.store.commit_tree(base)
        except AvfsError:
            return None
        return [] if tree == b else paths_between(self.store, tree, b)

    def _status_ignored(self) -> tuple[list[Change], Ignored]:
        with self.overlay.pruning(self.prune_ignored):
            # on an overlay mount, the upper layer is read only where it can differ from
            # the base (core/workspace/upperjournal.py): O(what changed since the last status)
            entries, pending, settled = self._entries()
        self.last_read, self.last_pending = entries, pending  # (`avfs status`'s not_recorded)
        if not entries:
            upperjournal.remember(self.overlay, pending, ())
            return [], NO_IGNORED
        # which paths are new needs no file read; ignored ones (a venv's thousands) are then
        # never hashed: only the rest are, to compare and to pair renames
        skip = self._ignored_dirs(entries)  # not walked at all: a venv costs one question
        with self.overlay.remembering():  # each upper directory's marks read once, not per level below it
            raw = self._changes(entries, hash_files=False, skip=skip, settled=settled)
        ignored = self._ignored_among([c.path for c in raw if c.status is ChangeStatus.ADDED], entries, skip)
        gone = set(ignored.files)
        by_path = {e.path: e for e in entries}
        out: list[Change] = []
        todo: list[tuple[Change, Entry | None]] = []
        for c in raw:
            if c.path in gone:
                continue
            e = by_path.get(c.path) if c.new_oid is None else None
            if e is None and c.new_oid is None and c.status in _UNHASHED:
                # a file of the upper layer the entries read left out (unchanged since the
                # last status, beside one that changed): compared as any other
                n = self.view.lookup(c.path)
                e = n.entry if n is not None else None
            todo.append((c, e if e is not None and e.kind == FILE and c.status in _UNHASHED else None))
        compared(self.view, todo, by_path, out)  # (each file hashed as `git add` would store it)
        hints: dict[str, str] = {}
        # each added path's origin: its own entry's, read above (View.origin_in: record3), else
        # its ancestors' upper entries, read once for all of them (trial1: 7 of 22 s)
        with self.overlay.remembering():
            for c in out:
                if c.status is ChangeStatus.ADDED:
                    own = by_path.get(c.path)
                    o = own.origin if own is not None and own.kind != DELETED else self.view.origin(c.path)
                    if o is not None and o != c.path:
                        hints[c.path] = o
        found = [p for c in out for p in (c.path, c.old_path) if p]  # compared: what differs
        found += upperjournal.held_deletions(self.overlay, entries, self.store, self.view.base)  # fifos, pins
        # renamed directories (their tree is the lower layer's at their source): kept in
        # view, so that a base move changing a source is looked at with them
        found += [e.path for e in entries if e.kind == OBJECT and e.oid != EMPTY_TREE_ID]
        upperjournal.remember(self.overlay, pending, [*found, *ignored.tops, *skip])
        return pair_renames(self._with_staged_links(out), hints), ignored

    def _with_staged_links(self, out: list[Change]) -> list[Change]:
        """``out`` with a submodule's checkout git staged as a gitlink (the base holds
        nothing there) named as that gitlink, added, not as its files:
        :func:`staged_submodules`. The index is searched only where a new path lies in a
        directory the base does not hold."""
        if self._staged_gitlinks is None:
            return out
        new = [c.path for c in out if c.status is ChangeStatus.ADDED and "/" in c.path]
        if not new:
            return out
        took = staged_submodules(self.store, self.view.base_tree, self._staged_gitlinks, new)
        if not took:
            return out
        tops = frozenset(took)
        kept: list[Change] = []
        for c in out:  # (in the order found: the gitlink where its first path was)
            top = overlayentry.cover_of(c.path, tops)
            if top is None:
                kept.append(c)
            elif top in took:
                kept.append(Change(top, ChangeStatus.ADDED, new_mode=MODE_COMMIT, new_oid=took.pop(top)))
        return kept

    def pruned(self) -> tuple[list[Entry], frozenset[str]]:
        """(the database's entries in path order but those at or below a new directory git
        ignores, those directories): nothing below one is read (no upper layer: the
        caller checked). Imported here: a status, a capture, a diff never ask (~0.25 ms of a
        cold call)."""
        from .wsignored import ignored_top

        skip: set[str] = set()
        base = self.view.base
        source = lambda es, d: self._gitignore_source(es, base, d)  # noqa: E731
        rest = self.overlay.pruned(
            ignored_top(self.store, base, self.overlay, skip, self.ignore_rules, source)
        )
        return rest, frozenset(skip)

    def ignored(self) -> Ignored:
        """The new paths git ignores (without comparing contents: cheaper than a status)."""
        return self.ignored_in(self.overlay.all())

    def ignored_in(
        self, entries: list[Entry], *, settled: bool = False, skip: frozenset[str] = frozenset()
    ) -> Ignored:
        """The new paths of the workspace made of ``entries`` that git ignores
        (``settled``: as :meth:`read_entries` read them, only those that may differ;
        ``skip``: new directories git ignores whose entries are left out, :meth:`pruned`)."""
        if not entries and not skip:
            return NO_IGNORED
        skip = skip | self._ignored_dirs(entries)
        added = self._added_paths(outside(entries, skip))[0]
        if added is None:
            added = [
                c.path
                for c in self._changes(entries, hash_files=False, skip=skip, settled=settled)
                if c.status is ChangeStatus.ADDED
            ]
        return self._ignored_among(added, entries, skip)

    def _added_paths(self, entries: list[Entry]) -> tuple[list[str] | None, bool]:
        """(the new paths, absent from the base tree, that ``entries`` show; whether an
        entry deletes or changes a tracked path), from the entries alone: O(entries), no
        listing. The paths are None when an entry names a git tree other than the base's
        there (a renamed or restored directory, a fork's view): only a tree diff tells."""
        base_tree = self.view.base_tree
        out: list[str] | None = []
        tracked = False
        for e in entries:
            if e.kind == DELETED:
                tracked = True
                continue
            hit = self.store.tree_lookup(base_tree, e.path)
            if e.mode == MODE_TREE:
                if hit == (e.oid, MODE_TREE) or (hit is None and e.oid == EMPTY_TREE):
                    continue  # the base's own tree, or a new empty directory
                out = None
            elif hit is None or hit[1] == MODE_TREE:
                if out is not None:
                    out.append(e.path)
            else:
                tracked = True
        return out, tracked

    def _changes(
        self,
        entries: list[Entry],
        *,
        hash_files: bool = True,
        skip: frozenset[str] = frozenset(),
        settled: bool = False,
    ) -> list[Change]:
        """The changes since the base made by ``entries`` (the overlay), renames unpaired.
        Without ``hash_files`` a materialized file over a base file counts as modified
        unread (what ignore rules and :meth:`is_dirty` need: which paths are new). The new
        directories ``skip`` (ignored ones) are not walked. ``settled``: ``entries`` are
        only those that may differ from the base (:mod:`.upperjournal`), so an upper-layer
        directory or file none of them is at or in is as the base has it: a directory's
        children are its base tree's with the entries on top, nothing else is listed."""
        dirty = dirty_dirs([e for e in entries if not covered(e.path, skip)] if skip else entries)
        out: list[Change] = []
        root = self.view.lookup("")
        assert root is not None
        kids: dict[str, list[Entry]] | None = None
        if settled:
            # a directory's children are its base tree's with these entries on top: an
            # upper-layer entry not among them shows the base unchanged (a file an earlier
            # checkpoint recorded), so the directory's upper half is not listed (O(changes),
            # not O(what the upper layer holds there))
            kids = {}
            for e in entries:
                if e.path:
                    kids.setdefault(names.parent_of(e.path), []).append(e)
        self._modes = self.modes_trusted()
        self._status_dir("", self.view.base_tree, root, dirty, out, hash_files, skip, kids)
        return out

    def _status_dir(
        self,
        p: str,
        base_oid: str | None,
        w: Node,
        dirty: set[str],
        out: list[Change],
        hash_files: bool = True,
        skip: frozenset[str] = frozenset(),
        settled: dict[str, list[Entry]] | None = None,
    ) -> None:
        """What changed at and below directory ``p`` into ``out``: each directory read by
        :meth:`_status_one`, which yields its subdirectories to read before it goes on, one
        stack of directories deep, not by recursion (a confined command's directory 1,000
        levels deep raised ``RecursionError`` here: the fourteenth round, NAME=attack5)."""
        frames = [self._status_one(p, base_oid, w, dirty, out, hash_files, skip, settled)]
        while frames:
            try:
                child, bo, n = next(frames[-1])
            except StopIteration:
                frames.pop()
                continue
            frames.append(self._status_one(child, bo, n, dirty, out, hash_files, skip, settled))

    def _status_one(
        self,
        p: str,
        base_oid: str | None,
        w: Node,
        dirty: set[str],
        out: list[Change],
        hash_files: bool,
        skip: frozenset[str],
        settled: dict[str, list[Entry]] | None,
    ) -> Iterator[tuple[str, str | None, Node]]:
        if p not in dirty:
            diff_trees(self.store, base_oid, w.oid, p, out)
            return
        b = self.store.tree_items(base_oid)
        # settled: the children are the base tree's with the entries read on top (an
        # upper-layer directory or file they left out showed the base unchanged at the last
        # status or checkpoint, and nothing in it changed since)
        ws = self.view.children(w) if settled is None else self.view.children_of(w, settled.get(p, ()))
        for name in sorted(b.keys() | ws.keys()):
            child = names.join(p, name)
            bo = b.get(name)
            n = ws.get(name)
            if child in skip:
                if bo is not None and bo[1] != MODE_TREE:
                    diff_entry(self.store, child, bo, None, out)  # a tracked file it replaced
                continue
            if n is None:
                diff_entry(self.store, child, bo, None, out)
            elif n.is_dir:
                if bo is not None and bo[1] == MODE_TREE:
                    yield child, bo[0], n
                elif bo is not None and bo[1] == MODE_COMMIT:
                    # a directory where the base has a gitlink is that submodule, as to git
                    # (its checkout, which `git add -A` does not look into): the gitlink
                    # stays, nothing below is the fork's (pure FUSE: `git submodule add`
                    # and a commit made the fork's own entries its checkout, gitmodel10)
                    continue
                else:
                    if bo is not None:
                        diff_entry(self.store, child, bo, None, out)
                    yield child, None, n
            elif n.materialized:
                if hash_files:
                    self._status_file(child, bo, n, out)
                elif bo is None or bo[1] == MODE_TREE:
                    if bo is not None:
                        diff_entry(self.store, child, bo, None, out)
                    out.append(
                        Change(
                            child,
                            ChangeStatus.ADDED,
                            new_mode=recorded_mode(n.mode, None, *self._modes),
                        )
                    )
                else:  # a new path's content is not needed to know it is new
                    mode = recorded_mode(n.mode, bo, *self._modes)
                    how = ChangeStatus.TYPE_CHANGED if type_changed(bo[1], mode) else ChangeStatus.MODIFIED
                    out.append(Change(child, how, old_mode=bo[1], new_mode=mode, old_oid=bo[0]))
            else:
                assert n.oid is not None
                diff_entry(self.store, child, bo, (n.oid, recorded_mode(n.mode, bo, *self._modes)), out)

    def _status_file(self, child: str, bo: tuple[str, int] | None, n: Node, out: list[Change]) -> None:
        oid = self.view.entry_oid(n)  # (the mode as git records it: core.fileMode)
        diff_entry(self.store, child, bo, (oid, recorded_mode(n.mode, bo, *self._modes)), out)

    @property
    def ignore_rules(self) -> IgnoreRules:
        rules = self._ignore_rules
        if rules is None:
            kept = os.path.join(self.store.path, "avfs", KEPT_NAME)  # (the vault's state dir)
            rules = IgnoreRules(self.store.path, self._excludes_setting, kept, self.view.branch)
            self._ignore_rules = rules
        return rules

    def _excludes_setting(self) -> str | None:
        fork = fork_settings(self.store.path, self.view.branch)  # (an includeIf: the fork's reading)
        if fork is not None:
            return fork.get("core.excludesfile") or None
        if not libgit2_loaded():
            # read-only commands (status, ls, cat) never import pygit2 (~85 ms): git itself
            # answers, with its own config rules (vault, global, includes), in ~2 ms
            from .ignore import config_value

            return config_value(self.store.path, "core.excludesFile")
        return self.store.config_value("core.excludesFile")

    def _gitignore_source(
        self, entries: Mapping[str, Entry], base: str, d: str
    ) -> tuple[str, Callable[[], bytes]] | None:
        """The ``.gitignore`` of directory ``d`` as the workspace made of ``entries`` (every
        overlay entry, by path) on ``base`` shows it (see :data:`.ignore.Source`)."""
        path = names.join(d, GITIGNORE)
        node = self.view.lookup_in(path, [*names.ancestors(path), path], entries, base=base)
        if node is None or node.is_dir or node.is_link:
            return None
        e = node.entry
        if e is not None and e.kind == FILE:
            assert e.fileid is not None
            try:
                st = self.overlay.file_stat(e.fileid)
            except OSError:
                return None

            fileid, overlay = e.fileid, self.overlay

            def load() -> bytes:
                with os.fdopen(overlay.open_regular(fileid), "rb") as fh:
                    return bounded_pattern_file(fh)

            return f"f:{e.fileid}:{st.st_size}:{st.st_mtime_ns}", load
        oid = node.oid
        assert oid is not None
        store = self.store
        return oid, lambda: b"" if store.blob_size(oid) >= MAX_PATTERN_FILE else store.blob_data(oid)

    def _ignored_dirs(self, entries: list[Entry]) -> frozenset[str]:
        """The new directories (absent from the base tree, their parent not) holding the
        entries' new content that git ignores as directories: everything below them is
        ignored, so nothing below needs walking or asking about (one question for a venv)."""
        base_tree = self.view.base_tree
        is_tree: dict[str, bool] = {"": True}
        tops: set[str] = set()
        below = "\0"  # the last top found, "/": the entries in path order below it are passed by
        for e in entries:
            if e.kind == DELETED or not e.path or e.path.startswith(below):
                continue
            parts = e.path.split("/")
            d = ""
            for i, comp in enumerate(parts):
                d = f"{d}/{comp}" if d else comp
                if i == len(parts) - 1 and e.mode != MODE_TREE:
                    break
                got = is_tree.get(d)
                if got is None:
                    hit = self.store.tree_lookup(base_tree, d)
                    got = is_tree[d] = hit is not None and hit[1] == MODE_TREE
                if not got:
                    tops.add(d)
                    below = d + "/"
                    break
        if not tops:
            return frozenset()
        by_path = {e.path: e for e in entries}
        base = self.view.base
        return frozenset(
            self.ignore_rules.ignored((), lambda d: self._gitignore_source(by_path, base, d), dirs=tops)
        )

    def _ignored_among(
        self, added: list[str], entries: list[Entry], skip: frozenset[str] | None = None
    ) -> Ignored:
        """Which of the new paths ``added`` (absent from the base tree: tracked paths never
        are) of the workspace made of ``entries`` git ignores; ``skip``: the ignored new
        directories (:meth:`_ignored_dirs`, found here when None)."""
        if skip is None:
            skip = self._ignored_dirs(entries)
        under = (
            [e.path for e in entries if e.kind != DELETED and e.mode != MODE_TREE and covered(e.path, skip)]
            if skip
            else []
        )
        # an ignored new directory a walk of the upper layer left unread (a node_modules)
        # counts as one path: what is in it was never looked at
        under += [d for d in skip if not any(covered(p, frozenset((d,))) for p in under)]
        added = [p for p in added if not covered(p, skip)] if skip else added
        if not added:
            return Ignored(tuple(sorted(under)), skip) if under or skip else NO_IGNORED
        base_tree = self.view.base_tree
        is_tree: dict[str, bool] = {"": True}

        def tracked_dir(d: str) -> bool:
            got = is_tree.get(d)
            if got is None:
                hit = self.store.tree_lookup(base_tree, d) if tracked_dir(names.parent_of(d)) else None
                got = is_tree[d] = hit is not None and hit[1] == MODE_TREE
            return got

        by_path = {e.path: e for e in entries}
        base = self.view.base
        hit = self.ignore_rules.ignored(added, lambda d: self._gitignore_source(by_path, base, d))
        if not hit:
            return Ignored(tuple(sorted(under)), skip) if under or skip else NO_IGNORED
        # a new directory whose new paths are all ignored goes as one unit (git answers for
        # files; below an ignored directory every file is ignored)
        total: dict[str, int] = {}
        ignored: dict[str, int] = {}
        for p in added:
            for a in names.ancestors(p):
                if a and not tracked_dir(a):
                    total[a] = total.get(a, 0) + 1
                    if p in hit:
                        ignored[a] = ignored.get(a, 0) + 1
        ign_dirs = {d for d, n in ignored.items() if n == total[d]}
        tops = {d for d in ign_dirs if not any(a in ign_dirs for a in names.ancestors(d))}
        files = [p for p in added if p in hit]
        tops |= {p for p in files if not any(a in ign_dirs for a in names.ancestors(p))}
        return Ignored(tuple(sorted(files + under)), frozenset(tops | skip))
