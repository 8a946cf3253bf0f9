"""The upper layer of an overlay mount read as overlay entries (over the database's):
what it holds at a path (a file, a link, a whiteout, a new or renamed directory, or a
directory that merges with the lower one), the walks of it, the lower layer's paths under
its redirects, and the cache of its files' git ids. :class:`UpperEntries` is the base of
:class:`.overlaykept.KeptTimes` and so of :class:`.overlay.Overlay`, whose reads put it over
the database's entries.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..store.safeopen import PATH_MAX, beneath, open_regular_at
from ..types import MODE_COMMIT, MODE_TREE
from . import upper as up
from .overlaydb import OverlayDB, sql_text
from .overlayentry import DELETED, EMPTY_TREE_ID, FILE, LINK_FILE, OBJECT, SPECIAL_ORIGIN, UPPER_FILE, Entry

if TYPE_CHECKING:
    from .upperwatch import UpperWatch

MERGED = "merged"  # the upper layer's directory at a path merges with the lower one
# the upper layer's directory at a path where the lower layer has a submodule (a gitlink,
# shown as an empty directory): git keeps the gitlink, and what is below is not the fork's
# (a plain directory at a submodule's path is a submodule not checked out, to git)
SUBMODULE = "submodule"


class UpperEntries(OverlayDB):
    """The upper layer of an overlay mount, read as entries."""

    def upper_active(self) -> bool:
        """Whether the upper layer holds anything this view reads."""
        if not self.with_upper or int(getattr(self._no_upper, "depth", 0)):
            return False
        memo = getattr(self._no_upper, "memo", None)
        if memo is None:
            return not up.is_empty(self.upper_dir)
        # once a block (:meth:`remembering`): each path's read asked it, a listing of the
        # layer's root per file recorded (record2: a fifth of an exec's record of 2,480 new files)
        if "" not in memo[5]:
            memo[5][""] = not up.is_empty(self.upper_dir)
        return bool(memo[5][""])

    @contextmanager
    def without_upper(self) -> Iterator[None]:
        """Reads in this thread see the database's entries only (the lower view)."""
        self._no_upper.depth = int(getattr(self._no_upper, "depth", 0)) + 1
        try:
            yield
        finally:
            self._no_upper.depth -= 1

    def _lower_mode(self, path: str) -> int | None:
        """The git mode of what the lower layer shows at ``path`` (None: nothing)."""
        if self.lower_mode is None:
            return None
        memo = getattr(self._no_upper, "memo", None)
        if memo is not None:
            if path in memo[2]:
                return memo[2][path]  # type: ignore[no-any-return]
            parent = path.rpartition("/")[0]
            if path and memo[2].get(parent, MODE_TREE) != MODE_TREE:
                # nothing below what is no directory (a walk down a new tree 1,200 levels
                # deep looked each level up from the root: O(depth^2))
                memo[2][path] = None
                return None
        with self.without_upper():
            got = self.lower_mode(path)
        if memo is not None:
            memo[2][path] = got
        return got

    def _lower_dir(self, path: str) -> bool:
        return self._lower_mode(path) == MODE_TREE

    @contextmanager
    def remembering(self) -> Iterator[None]:
        """Reads of the upper layer in this thread, until the block ends, keep what they
        found at each path (:meth:`_u_entry`, :meth:`lower_path`) and read it once: a read
        of a path goes through each of its ancestors, and the lower path of each goes
        through the ancestors again. Found in the fourteenth round (NAME=attack5): a
        confined command's ``mkdir`` 400 levels deep (0.7 s) held its exec's record of
        what changed for 275 s, the whole chain read again for each level of each of its
        paths (O(depth^3) ``listxattr`` calls); 1,000 levels, hours. Kept only for a
        block: the upper layer is the mount's, and changes between calls."""
        if getattr(self._no_upper, "memo", None) is not None:
            yield
            return
        # _u_entry, lower_path, _lower_mode, _looks_through, _u_chain_read, upper_active, change_top
        self._no_upper.memo = ({}, {}, {}, {}, {}, {}, {})
        try:
            yield
        finally:
            self._no_upper.memo = None

    def lower_path(self, path: str, known: dict[str, str | None] | None = None) -> str | None:
        """The lower layer's path under ``path`` once the upper layer's redirects (renamed
        directories) are followed; ``path`` itself when none is on the way; None when an
        opaque directory of the upper layer (one made where a removed one was) at or above
        ``path`` hides the lower layer there. ``known``: the lower paths found so far,
        kept by a caller that forgets them as the upper layer's directories change (its
        watch, :class:`.upperwatch.UpperWatch`); without it, those of a :meth:`remembering`
        block."""
        if known is None:
            memo = getattr(self._no_upper, "memo", None)
            known = memo[1] if memo is not None else {}
        if path in known:
            return known[path]
        parent, _, comp = path.rpartition("/")
        if parent and parent in known:  # (a read of the chain: its parent read just before)
            return self._lower_step(known, known[parent], path, comp)
        lp: str | None = ""
        q = ""
        for comp in path.split("/"):
            q = f"{q}/{comp}" if q else comp
            lp = known[q] if q in known else self._lower_step(known, lp, q, comp)
        return lp

    def _lower_step(self, known: dict[str, str | None], lp: str | None, q: str, comp: str) -> str | None:
        """The lower path of ``q`` (its last name ``comp``) from its parent's, ``lp``."""
        r, opaque = up.dir_marks(os.path.join(self.upper_dir, q))
        if r is not None and r.startswith("/"):
            lp = r.strip("/")  # from the layer's root, whatever is above
        elif lp is not None:
            # a name in the same directory (a rename that kept the parent), or the same
            # name: below the parent's lower path
            name = r if r is not None else comp
            lp = f"{lp}/{name}" if lp else name
        if opaque:
            lp = None  # it hides the lower layer below it (a redirect below starts over)
        known[q] = lp
        return lp

    def _lower_tree(self, path: str) -> str | None:
        """The git tree the lower layer shows at ``path`` (None: no directory there)."""
        if self.lower_tree is None:
            return None
        with self.without_upper():
            return self.lower_tree(path)

    def _u_entry(self, path: str) -> Entry | str | None:
        """What the upper layer holds at ``path``: an entry, :data:`MERGED` (a directory
        merging with the lower one), :data:`SUBMODULE` (a directory at a submodule's path:
        the lower layer's gitlink shows, nothing below counts) or None (nothing: the lower
        layer shows through)."""
        memo = getattr(self._no_upper, "memo", None)
        if memo is not None and path in memo[0]:
            return memo[0][path]  # type: ignore[no-any-return]
        got: Entry | str | None = None
        if not path:
            st = up.lstat(self.upper_dir)
            if st is not None:
                got = self._u_classified(path, self.upper_dir, st)
        elif len(os.fsencode(self.upper_dir)) + 1 + len(os.fsencode(path)) < PATH_MAX:  # (else TOO_LONG)
            # from the layer's root one directory at a time: a directory of it a running
            # command swaps for a link makes no host file an entry (:func:`.safeopen.beneath`)
            try:
                with beneath(self.upper_dir, path) as real:
                    st = up.lstat(real)
                    if st is not None:
                        got = self._u_classified(path, real, st)
            except (FileNotFoundError, NotADirectoryError):  # (a link on the way: as gone)
                got = None
            except OSError as exc:
                if exc.errno != errno.ENAMETOOLONG:  # (a name past NAME_MAX: none there)
                    raise
        if memo is not None:
            memo[0][path] = got
        return got

    def upper_dir_entry(self, path: str, real: str, st: os.stat_result) -> Entry | None:
        """The entry the upper layer's directory at ``path`` makes (None: it merges with the
        lower one)."""
        got = self._u_classified(path, real, st)
        return got if isinstance(got, Entry) else None

    def _u_classified(self, path: str, real: str, st: os.stat_result, in_new: bool = False) -> Entry | str:
        """What the upper layer's ``path`` (``real``, ``st``) is (:meth:`_u_entry`);
        ``in_new``: its parent is a new directory or below one (no submodule there)."""
        kind = up.classify(real, st)
        if kind == up.REG:
            mode = 0o100755 if st.st_mode & 0o100 else 0o100644
            return Entry(path, FILE, mode, None, UPPER_FILE + path, None, st.st_size, 0)
        if kind == up.LINK:
            try:
                target = os.fsencode(os.readlink(real))
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # no longer a link: replaced since its lstat (a command renaming in the
                # mount while avfs reads the upper layer), as if gone (its caller looks again)
                raise FileNotFoundError(errno.ENOENT, "replaced while being read", real) from None
            return Entry(
                path,
                FILE,
                0o120000,
                None,
                LINK_FILE + up.link_file(self.links_dir, target),
                None,
                len(target),
                0,
            )
        if kind == up.OPAQUE:
            if not in_new and self._at_submodule(path):
                return SUBMODULE
            return Entry(path, OBJECT, 0o040000, EMPTY_TREE_ID)
        if kind == up.DIR:
            if not path:
                return MERGED
            lower = self.lower_path(path)
            if lower is None:  # below an opaque directory: nothing of the lower layer
                return Entry(path, OBJECT, 0o040000, EMPTY_TREE_ID)
            if up.redirect(real) is not None:
                oid = self._lower_tree(lower)
                if oid is not None:
                    return Entry(path, OBJECT, 0o040000, oid)
            lower_mode = self._lower_mode(lower)
            if lower_mode == MODE_COMMIT and lower == path:
                return SUBMODULE
            if lower_mode == MODE_TREE:
                if lower != path:  # below a renamed directory: its lower content moved too
                    oid = self._lower_tree(lower)
                    return Entry(path, OBJECT, 0o040000, oid or EMPTY_TREE_ID)
                return MERGED
            return Entry(path, OBJECT, 0o040000, EMPTY_TREE_ID)
        if kind == up.SPECIAL:  # a fifo, socket, device: git has none (origin says which)
            return Entry(path, DELETED, 0, None, None, SPECIAL_ORIGIN + up.special_kind(st))
        return Entry(path, DELETED, 0)  # a whiteout

    def _at_submodule(self, path: str) -> bool:
        """Whether the lower layer has a submodule at ``path`` itself (a directory made there
        in the mount, opaque: overlayfs marks one made where the lower had no directory
        so, and so does ``rm -r sub; mkdir sub``): git sees the submodule, not checked out."""
        if not path:
            return False
        parent, _, name = path.rpartition("/")
        lp = self.lower_path(parent) if parent else ""
        return lp is not None and self._lower_mode(f"{lp}/{name}" if lp else name) == MODE_COMMIT

    def _u_chain(self, path: str) -> tuple[Entry | None, bool, bool]:
        """(the upper layer's entry at ``path``, whether the upper layer hides the database's
        entries at and below ``path``: an entry of its own there or above, whether what the
        upper layer holds at and below ``path`` does not count: a submodule's directory
        there or above, :data:`SUBMODULE`)."""
        with self.remembering():
            return self._u_chain_read(path)

    def _u_chain_read(self, path: str) -> tuple[Entry | None, bool, bool]:
        # where the chain stood after each path read in this block: the answer for every
        # path below it, or whether the upper layer hides the database's entries so far. A
        # path whose parent was read (a status reads a directory, then its children) is one
        # step, not the whole chain again: O(depth) steps, each building paths O(depth)
        # long, were most of a status of a tree 1,200 levels deep (sixteenth round)
        memo = getattr(self._no_upper, "memo", None)
        states: dict[str, tuple[Entry | None, bool, bool] | bool] = memo[4] if memo is not None else {}
        parent = path.rpartition("/")[0]
        if path and parent in states:
            was = states[parent]
            if not isinstance(was, bool):
                return was
            hidden, steps = was, [path]
        else:
            hidden, steps, q = False, [""], ""
            for comp in path.split("/") if path else []:
                q = f"{q}/{comp}" if q else comp
                steps.append(q)
        for p in steps:
            got = self._u_entry(p)
            if got is None or got == SUBMODULE:
                # nothing deeper in the upper layer either; or a submodule's: not the fork's
                out = states[p] = (None, hidden, got == SUBMODULE)
                return out
            if got == MERGED:
                states[p] = hidden
                continue
            assert isinstance(got, Entry)
            if got.kind != OBJECT:
                states[p] = (None, True, False)  # a file or whiteout: nothing below it
                return (got, True, False) if p == path else (None, True, False)
            hidden = states[p] = True
            if p == path:
                return got, True, False
        return None, hidden, False

    @contextmanager
    def pruning(self, prune: Callable[[list[str], list[Entry]], set[str]]) -> Iterator[None]:
        """Walks of the upper layer in this thread leave out the new directories ``prune``
        names (given the new top directories and the entries found so far): the ones git
        ignores, whose thousands of files (a node_modules, a venv) a status or checkpoint
        never reads. Such a directory shows as a new empty one."""
        self._no_upper.prune = prune
        try:
            yield
        finally:
            self._no_upper.prune = None

    def _u_walk(self, prefix: str, seen: Sequence[Entry] = ()) -> tuple[list[Entry], list[str]]:
        """(the upper layer's entries strictly below directory ``prefix``, the paths whose
        database entries it hides: those of its own entries that are not merging dirs).
        ``seen``: the upper layer's entries read before elsewhere (for the pruning of
        ignored directories: a whiteout of the root's ``.gitignore`` there hides the
        database's entry of it, which would still ignore a directory below ``prefix``)."""
        with self.remembering():
            return self._u_walk_read(prefix, seen)

    def _u_walk_read(self, prefix: str, seen: Sequence[Entry] = ()) -> tuple[list[Entry], list[str]]:
        out: list[Entry] = []
        hides: list[str] = []
        prune = getattr(self._no_upper, "prune", None)
        deferred: list[tuple[str, str, up.Ident]] = []  # new top directories, walked once asked about
        top = os.path.join(self.upper_dir, prefix) if prefix else self.upper_dir
        # each directory is listed through a descriptor that is the very directory its
        # parent's listing named (:func:`.upper.open_listed`), and what is in it is asked of that
        # descriptor: a directory a running command swaps for a link to a host directory
        # is never listed (found in the twenty-third round, NAME=attack14: its names were
        # the host's in the agent's listing, and a walk went on into the host's tree)
        stack: list[tuple[str, str, bool, up.Ident | None]] = [(prefix, top, False, None)]
        pid = os.getpid()
        while True:
            while stack:
                p, real, inside_new, ident = stack.pop()
                fd = up.open_listed(self.upper_dir, p, ident)
                if fd is None:
                    continue
                room = PATH_MAX - len(os.fsencode(real)) - 1  # (bytes left for a name below it)
                try:
                    with os.scandir(fd) as it:
                        for de in it:
                            name = de.name
                            if name == ".git":
                                continue  # a nested repository's own (never part of the fork)
                            child = f"{p}/{name}" if p else name
                            at = f"/proc/{pid}/fd/{fd}/{name}"
                            try:
                                if 4 * len(name) >= room and len(os.fsencode(name)) >= room:
                                    raise OSError(errno.ENAMETOOLONG, "past PATH_MAX", child)
                                st = de.stat(follow_symlinks=False)
                                got = self._u_classified(child, at, st, inside_new)
                            except FileNotFoundError:
                                continue  # gone since it was listed: the kernel's writes go on
                            except OSError as exc:
                                if exc.errno != errno.ENAMETOOLONG:
                                    raise
                                # a tree deeper than the host's paths reach (found in the
                                # eighteenth round, NAME=attack9: every status and checkpoint of
                                # the fork failed, exit 70): not recorded, said as a fifo is
                                out.append(Entry(child, DELETED, 0, None, None, SPECIAL_ORIGIN + up.TOO_LONG))
                                hides.append(child)
                                continue
                            if got == SUBMODULE:
                                continue  # the gitlink stays; nothing below is the fork's
                            if got != MERGED:
                                assert isinstance(got, Entry)
                                out.append(got)
                                hides.append(child)
                            if stat.S_ISDIR(st.st_mode):
                                new = isinstance(got, Entry) and self._new_dir(child, at, st, got)
                                here = (st.st_dev, st.st_ino)
                                dreal = f"{real}/{name}"
                                if prune is not None and new and not inside_new:
                                    deferred.append((child, dreal, here))
                                else:
                                    stack.append((child, dreal, inside_new or new, here))
                finally:
                    os.close(fd)
            if not deferred:
                break
            assert prune is not None
            skip = prune([d for d, _, _ in deferred], [*seen, *out] if seen else out)
            stack = [(d, real, True, here) for d, real, here in deferred if d not in skip]
            deferred = []
        return out, hides

    def upper_top(self, path: str) -> str | None:
        """The shallowest of ``path`` and its ancestors that the upper layer holds as an
        entry of its own (a file, whiteout, or a directory that does not merge with the
        lower layer's); None when it holds nothing there but merging directories (the
        lower layer shows through at ``path``)."""
        parts = path.split("/") if path else []
        with self.remembering():
            for i in range(1, len(parts) + 1):
                got = self._u_entry("/".join(parts[:i]))
                if got is None or got == SUBMODULE:
                    return None
                if got != MERGED:
                    return "/".join(parts[:i])
        return None

    def change_top(self, path: str) -> tuple[str, bool] | None:
        """Where the upper layer decides what ``path`` shows, for a read of what changed
        (:meth:`.overlay.Overlay.changed_entries`, :func:`.upperjournal.remember`): as
        :meth:`upper_top`, but an *opaque* directory above ``path`` (overlayfs marks every
        directory made in the mount where none was so) that the lower layer now holds as a
        directory is looked through (:meth:`_looks_through`): once a checkpoint recorded it,
        or a status found it the base's, it shows the base there, and what changed below it
        is read where it changed, not as the whole directory (which an agent's session
        keeps adding to). (the top, whether it is a path the upper layer holds nothing at
        below such a directory: gone, a deletion); None when the lower layer shows through.
        Each directory's walk is kept for the block (h-record7: a record asks for 50,000)."""
        memo = getattr(self._no_upper, "memo", None)
        if memo is None or not path:
            with self.remembering():
                return self.change_top(path) if path else None
        walked = memo[6]  # a directory's walk as an ancestor: (stopped, its top, through)
        q = parent = path.rpartition("/")[0]
        while q and q not in walked:
            q = q.rpartition("/")[0]
        stopped, top, through = walked[q] if q else (False, None, False)
        for name in [*filter(None, (parent[len(q) + 1 :] if q else parent).split("/")), None]:
            if stopped:
                return top
            q = path if name is None else f"{q}/{name}" if q else name
            got = self._u_entry(q)
            if got is None or got == SUBMODULE:
                stopped, top = True, (q, True) if through else None
            elif got != MERGED:
                assert isinstance(got, Entry)
                if name is not None and self._looks_through(q, got):
                    through = True
                else:
                    stopped, top = True, (q, False)
            if name is not None:
                walked[q] = (stopped, top, through)
        return top

    def _looks_through(self, path: str, got: Entry) -> bool:
        """Whether the upper layer's directory ``path`` (its entry ``got``), opaque or
        below an opaque one, stands for the lower layer's directory there: the lower layer
        holds one, and no entry of the overlay database is at or below it (those the
        opaque directory hides). What it holds differs from the lower directory only where
        a change since the last status or checkpoint made it differ (the journal names
        it); a directory made anew there (``rm -r d; mkdir d``) names each removal too."""
        if got.kind != OBJECT or got.mode != 0o040000 or got.oid != EMPTY_TREE_ID:
            return False
        memo = getattr(self._no_upper, "memo", None)
        if memo is not None and path in memo[3]:
            return memo[3][path]  # type: ignore[no-any-return]
        row = self.db.execute(
            "SELECT 1 FROM entries WHERE path = ? OR (path >= ? AND path < ?) LIMIT 1",
            (path, path + "/", path + "0"),
        ).fetchone()
        through = row is None and self._lower_dir(path)
        if memo is not None:
            memo[3][path] = through
        return through

    def upper_holds_only(self, names: frozenset[str]) -> bool:
        """Whether the names at the top of the upper layer (the mount's ``.git`` left out)
        are all among ``names``."""
        return up.root_names(self.upper_dir) <= names

    def new_upper_dir(self, path: str) -> bool:
        """Whether the upper layer holds a new directory at ``path`` (:meth:`_new_dir`)."""
        real = os.path.join(self.upper_dir, path)
        st = up.lstat(real)
        if st is None or not stat.S_ISDIR(st.st_mode):
            return False
        got = self._u_entry(path)
        return isinstance(got, Entry) and self._new_dir(path, real, st, got)

    def _new_dir(self, path: str, real: str, st: os.stat_result, got: Entry) -> bool:
        """Whether the upper layer's directory ``path`` (its entry ``got``) is new: nothing
        of the lower layer under it, where the lower layer has no directory either (an
        opaque one made where none was: overlayfs marks some so, and so does a remount's
        tidying, core/workspace/upper.py). One that replaced a lower directory is not: what it hides
        of the base is a change."""
        if got.kind != OBJECT or got.oid != EMPTY_TREE_ID:
            return False
        kind = up.classify(real, st)
        if kind == up.DIR:
            return True
        if kind != up.OPAQUE:
            return False
        parent, _, name = path.rpartition("/")
        lp = self.lower_path(parent) if parent else ""
        return lp is None or not self._lower_dir(f"{lp}/{name}" if lp else name)

    def _merge(self, db: list[Entry], upper: list[Entry], hides: list[str]) -> list[Entry]:
        if not upper and not hides:
            return db
        hidden = set(hides)

        def shown(path: str) -> bool:
            if path in hidden:
                return False
            i = path.rfind("/")
            while i > 0:
                if path[:i] in hidden:
                    return False
                i = path.rfind("/", 0, i)
            return True

        out = [e for e in db if shown(e.path)] + upper
        out.sort(key=lambda e: e.path)
        return out

    def upper_journal(self) -> UpperWatch | None:
        """The journal of this overlay's upper layer when this process keeps it (the mount
        daemon, and ``proxy exec``'s warm server in it): what changed there, O(changes).
        A process that never loaded :mod:`.upperwatch` keeps none (and loads nothing)."""
        watches = sys.modules.get(f"{__package__}.upperwatch")
        if watches is None or not self.upper_active():
            return None
        got: UpperWatch | None = watches.live(self.upper_dir)
        return got

    def upper_changed_since(self, t_ns: int) -> list[str]:
        """The paths of the upper layer whose inode changed at or after ``t_ns`` (what a
        command run in an overlay mount wrote, deleted or renamed: the kernel keeps no
        journal of ours)."""
        if not self.upper_active():
            return []
        return [p for p, _real, st in up.entries(self.upper_dir) if st.st_ctime_ns >= t_ns]

    def upper_root_names(self) -> frozenset[str]:
        """The names in the upper layer's root directory (``.git``, the mount's own, left
        out). A removal there that leaves no whiteout (the lower view has no such name)
        changes no entry's inode, only the root's own times, which the mount moves too
        (it writes ``.git``); so :class:`.since.Since` compares these names instead.
        Such a removal is a deletion where the overlay's entries delete a path of the base
        that the upper layer made again (``avfs rm`` while not mounted, then the file
        written in an overlay mount)."""
        return up.root_names(self.upper_dir) if self.with_upper else frozenset()

    def upper_oid(self, fileid: str, hash_file: Callable[[str], str]) -> str:
        """The git blob id of an upper-layer file, from the cache when its stat data match
        (``hash_file`` computes it otherwise, of a ``/proc/PID/fd/N`` path it must follow,
        and the cache keeps it). :class:`.safeopen.NotRegular` (a FileNotFoundError) when a
        link, a FIFO or a directory is there now, or on the way."""
        rel = fileid[len(UPPER_FILE) :]
        # the file opened from the layer's root, no link followed (a directory above it a
        # running command swaps for a link to a host directory: the host's file was
        # hashed, and its id shown as the fork's in a status; twenty-third round,
        # NAME=attack14), its stat and bytes of that descriptor; in a record via held directories
        # (its one stat, record5)
        fd, st = open_regular_at(self.upper_dir, rel, getattr(self.recording, "dirs", None))
        try:
            return self._upper_oid(rel, fd, st, hash_file)
        finally:
            os.close(fd)

    def _upper_oid(self, rel: str, fd: int, st: os.stat_result, hash_file: Callable[[str], str]) -> str:
        path = f"/proc/{os.getpid()}/fd/{fd}"  # (what ``hash_file`` reads: this very file)
        sig = f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_mode}"
        memo = self._oid_memo.get(rel)
        if memo is not None and memo[0] == sig:
            return memo[1]
        if not sql_text(rel):
            # a name not UTF-8 (a confined command's, in a directory it made: the fifteenth round,
            # it failed every later status, checkpoint and exec) is hashed each time: SQLite's is
            oid = hash_file(path)
            self._oid_memo[rel] = (sig, oid)
            return oid
        r = None  # (a path keeping_oids' query found no row of: not asked again)
        if rel not in (getattr(self._no_upper, "absent", None) or ()):
            r = self.db.execute("SELECT oid FROM upper_oids WHERE path=? AND sig=?", (rel, sig)).fetchone()
        if r is not None:
            self._oid_memo[rel] = (sig, str(r[0]))
            return str(r[0])
        oid = hash_file(path)
        if time.time_ns() - st.st_mtime_ns > 2_000_000_000:
            # not while the file may still be written within its timestamp's granularity
            pending = getattr(self._no_upper, "oids", None)
            if pending is not None:
                pending.append((rel, sig, oid))  # (kept at the block's end: :meth:`keeping_oids`)
            elif not self.in_read_snapshot():
                self._keep_oids([(rel, sig, oid)])
            self._oid_memo[rel] = (sig, oid)
        return oid

    @contextmanager
    def keeping_oids(self, asking: Sequence[str] = ()) -> Iterator[None]:
        """The blob ids :meth:`upper_oid` hashes in this thread, until the block ends, kept in the
        database in one transaction at its end, not one each (a write transaction a new file was 40 %
        of an exec's status: record2); not kept when it fails. ``asking``: the file ids it
        hashes, their kept rows read 400 a query, not one each (record4)."""
        if getattr(self._no_upper, "oids", None) is not None:
            yield
            return
        pending: list[tuple[str, str, str]] = []
        self._no_upper.oids, self._no_upper.absent = pending, self._kept_oids(asking)
        try:
            yield
        finally:
            self._no_upper.oids = self._no_upper.absent = None
        if pending and not self.in_read_snapshot():
            self._keep_oids(pending)

    def _kept_oids(self, fileids: Sequence[str]) -> set[str]:
        """The kept rows of the upper files of ``fileids`` into the memo; the paths with none."""
        absent = set(todo := [r for f in fileids if (r := f[len(UPPER_FILE) :]) not in self._oid_memo
                              and f.startswith(UPPER_FILE) and sql_text(r)])  # fmt: skip
        ask = "SELECT path, sig, oid FROM upper_oids WHERE path IN ({})"
        for part in (todo[i : i + 400] for i in range(0, len(todo), 400)):
            for path, sig, oid in self.db.execute(ask.format(",".join("?" * len(part))), part):
                self._oid_memo[path] = (sig, oid)
                absent.discard(path)
        return absent

    def _keep_oids(self, rows: list[tuple[str, str, str]]) -> None:
        # not from inside a read snapshot of the caller's (mount.index.read_view: no write
        # transaction can start in one), only here; nor where the state dir has no room for
        # it (a status of a full fork answers, and the next one hashes the file again:
        # :mod:`.noroom`)
        try:
            with self.txn() as db:
                db.executemany("INSERT OR REPLACE INTO upper_oids(path, sig, oid) VALUES(?, ?, ?)", rows)
        except Exception as exc:
            from .noroom import cannot_write

            if not cannot_write(exc):
                raise
