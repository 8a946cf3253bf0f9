"""The change log's side of an overlay mount's journal (:mod:`.upperwatch`): each kernel
event as a change a person would name (created, modified, deleted, renamed, mode),
coalesced into batches for the durable log (:mod:`.changelog`), which feeds the change
stream (``avfs watch``, ``changes_since``). ``overflow``: what happened meanwhile is not in
the log (its readers get ``resync_required``). And the lower layer's kinds the journal
keeps (``lower_paths``), forgotten as events make them wrong."""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..types import SWAP_SIDE_PREFIX, is_swap_side
from . import sidekey
from . import upper as up

if TYPE_CHECKING:
    from .upperlinks import LinkedNames

log = logging.getLogger("avfs.upperwatch")

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ISDIR = 0x40000000
_CAME = IN_CREATE | IN_MOVED_TO
_WRITTEN = (IN_MODIFY, IN_CLOSE_WRITE)  # (a file's: no other bit set)
_MADE_OR_WRITTEN = (IN_CREATE, *_WRITTEN)
MAX_LOWER_PATHS = 200_000  # lower paths kept (UpperWatch.lower_paths) before they are all forgotten
# the change log's rows held while a flood goes on (record6): a transaction of the log (its
# rollback journal's fsyncs) written for each read of the kernel's queue cost a command
# writing thousands of files ~15 us a row in batches of ~80; held, rows go in one
# transaction per LOG_ROWS or LOG_WAIT_S, whichever comes first, and at once when the flood
# stops (an idle poll), before any answer (the exec's span, git's fsmonitor) and at close.
# A batch smaller than FLOOD_ROWS with none held (a person's write) is written at once.
LOG_ROWS = 2000
LOG_WAIT_S = 0.1
FLOOD_ROWS = 32


class ChangeClassifier:
    """What :class:`.upperwatch.UpperWatch` hands its ``on_events`` (its attributes, set there)."""

    upper_dir: str
    _lower_kind: Callable[[str], str | None]
    lower_mode: Callable[[str], int | None] | None
    lower_file_kind: Callable[[str], str | None] | None
    on_events: Callable[[list[tuple[float, str, str, str | None]]], None] | None
    _wds: dict[int, str]
    _batch: list[tuple[float, str, str, str | None]]
    _unlogged: bool
    _moved: dict[int, str]
    _modes: dict[str, int]
    came: tuple[str, os.stat_result | None] | None
    lower_paths: dict[str, str | None]
    also: list[str]
    _swapped_in: dict[str, int]  # a path a swap's side file moved to -> its event's index in _batch
    _held: list[tuple[float, str, str, str | None]]  # coalesced rows not written yet (LOG_ROWS)
    _held_since: float  # (monotonic) when the oldest of them was held
    side_key: bytes | None  # the workspace's (:mod:`.sidekey`), else read at the first side-shaped name
    _owned: dict[str, bool]  # side-shaped name -> avfs's (a swap's side file has several events)
    _links: LinkedNames
    _broken: str

    def _again(self, prev: Any, ev: Any) -> str | None:
        """The path of event ``ev`` when it writes (``IN_MODIFY``, ``IN_CLOSE_WRITE``)
        a file that ``prev``, the event before it in the read, made or wrote, and
        changes nothing its handling would: the journal names the path already, the file
        has no other name, and the change log's row for it (``created``, ``modified``)
        absorbs the write (:meth:`_flush`). None: handle it. (h-record7: a command writing
        50,000 new files queues three events for each; two are these.)"""
        if (
            ev.mask not in _WRITTEN
            or prev.wd != ev.wd
            or prev.name != ev.name
            or prev.mask not in _MADE_OR_WRITTEN
        ):
            return None
        if self._broken:
            return None
        parent = self._wds.get(ev.wd)
        if parent is None or not ev.name or ev.name.startswith(SWAP_SIDE_PREFIX) or ev.name == ".git":
            return None
        path = f"{parent}/{ev.name}" if parent else ev.name
        last = self._batch[-1] if self._batch else None
        if self.on_events is not None and (
            last is None or last[2] != path or last[1] not in ("created", "modified")
        ):
            return None
        if self._links.linked(path):
            return None
        self.lower_paths.pop(path, None)  # (as _forget_lower)
        if len(self._modes) > 100_000:
            self._modes.clear()  # (as _written)
        return path

    def _own_side(self, name: str) -> bool:
        """Whether ``name`` (a file name) is a side file avfs made (:mod:`.sidekey`: its
        check holds under the workspace's key), not one shaped like it (review43: anyone's
        ``.avfs-adopt-0123456789ab`` was passed over)."""
        if not (name.startswith(SWAP_SIDE_PREFIX) and is_swap_side(name)):
            return False
        if self.side_key is None:
            self.side_key = sidekey.load(self.upper_dir)  # (made at the mount: maybe later)
            if self.side_key is not None:
                self._owned.clear()
        owned = self._owned.get(name)
        if owned is None:
            if len(self._owned) >= 1024:
                self._owned.clear()
            owned = self._owned[name] = sidekey.owns(self.side_key, name)
        return owned

    def _forget_lower(self, wd: int, mask: int, name: str) -> None:
        """Forget the lower paths kept that the event may make wrong. A directory's marks
        (``overlay.redirect``, ``overlay.opaque``) are set as it is made, renamed (before
        the rename: the kernel sets the redirect first) or later (``IN_ATTRIB``: overlayfs
        marks a directory made in a merged one opaque after the ``mkdir``), and a path
        holds another directory only after a removal or a rename: so all of them go at a
        directory's rename, removal or change of attributes, an overflow, a lost watch;
        a path's own at anything else that happens to it (a new name keeps no other's)."""
        if not self.lower_paths:
            return
        if mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_UNMOUNT) or (mask & IN_ISDIR and not mask & IN_CREATE):
            self.lower_paths.clear()
            return
        parent = self._wds.get(wd)
        if parent is None:
            return
        if not name:
            if mask & IN_ATTRIB:
                self.lower_paths.clear()  # the directory's own attributes (its marks)
            return
        self.lower_paths.pop(f"{parent}/{name}" if parent else name, None)
        if len(self.lower_paths) > MAX_LOWER_PATHS:
            self.lower_paths.clear()

    def _classify(self, wd: int, mask: int, name: str, cookie: int, final: bool) -> None:
        """One kernel event as a change a person would name (created, modified, deleted,
        renamed, mode), added to the batch. overlayfs's own steps are not changes: a copy-up
        (the lower file moved in from the work directory, unchanged) is followed by the
        write or chmod that caused it, and a whiteout is a deletion. Nor are avfs's own
        swaps through the mount (:meth:`_swap`). ``final``: the path's newest event in this
        read (what the upper layer holds now is its doing)."""
        now = time.time()
        if mask & IN_Q_OVERFLOW:
            self._batch.append((now, "overflow", "", None))
            return
        parent = self._wds.get(wd)
        if parent is None or not name or (not parent and name == ".git"):
            return
        path = f"{parent}/{name}" if parent else name
        is_dir = bool(mask & IN_ISDIR)
        if mask & IN_MOVED_FROM:
            self._moved[cookie] = path
            return
        if not is_dir and self._swap(path, name, mask, cookie, now):
            return
        if mask & _CAME:
            real = os.path.join(self.upper_dir, path)
            came = self.came  # (the journal's lstat of this event's file, just taken: UpperWatch._event)
            st = None if not final else came[1] if came is not None and came[0] == path else up.lstat(real)
            if st is not None and up.classify(real, st) == up.GONE:
                self._batch.append((now, "deleted", path, None))
                return
            if st is not None:
                self._modes[path] = st.st_mode
            asked = not is_dir and self.lower_mode is not None  # (then once: a new file's twice, record5)
            kind_of = self._lower_kind
            if not is_dir and self.lower_file_kind is not None:
                kind_of = self.lower_file_kind
            lower = kind_of(path) if asked else None
            if asked and lower is not None and self.lower_mode is not None:
                was = self.lower_mode(path)  # a copy-up: the mode before any chmod that caused it
                if was is not None:
                    self._modes[path] = was
            old = self._moved.pop(cookie, None) if mask & IN_MOVED_TO and cookie else None
            if old is not None:
                self._batch.append((now, "renamed", path, old))
            elif (lower if asked else kind_of(path)) is None:
                self._batch.append((now, "created", path, None))
            elif not is_dir:
                self._batch.append((now, "copied_up", path, None))  # settled in _flush
            return
        if is_dir:
            if mask & IN_DELETE:
                self._batch.append((now, "deleted", path, None))
            return
        if mask & IN_DELETE:
            self._batch.append((now, "deleted", path, None))
            self._modes.pop(path, None)
        else:
            # a hard-linked file's other names changed with it: overlayfs names the one it
            # looked up first, whichever the program wrote (``Makefile`` through ``cache.o``)
            self._written((path, *self.also), mask, now)

    def _written(self, paths: tuple[str, ...], mask: int, now: float) -> None:
        """``paths`` (a file's names) written (``modified``) or their attributes changed
        (``mode``, where the mode did)."""
        if mask & (IN_MODIFY | IN_CLOSE_WRITE):
            self._batch.extend((now, "modified", p, None) for p in paths)
        elif mask & IN_ATTRIB:
            for p in paths:
                st = up.lstat(os.path.join(self.upper_dir, p))
                if st is None:
                    continue
                was = self._modes.get(p)
                self._modes[p] = st.st_mode
                if was is None or stat.S_IMODE(was) != stat.S_IMODE(st.st_mode):
                    self._batch.append((now, "mode", p, None))
        if len(self._modes) > 100_000:
            self._modes.clear()

    def _swap(self, path: str, name: str, mask: int, cookie: int, now: float) -> bool:
        """Whether the event is one of a swap's through the mount (:mod:`.liveswap`: a
        restore's, an undo's, a merge's or an adoption's write), told by its side file's
        name (checked under the workspace's key: :mod:`.sidekey`), and if so what it changed:
        nothing at the side file itself (made, written, linked, unlinked: avfs's own, for an
        instant; a linked file's other names written through it are, review43); the path
        it moved to is ``created`` (a ``RENAME_NOREPLACE`` into an empty place), or
        ``modified`` where what was there moved out to the side file in the same exchange
        (``RENAME_EXCHANGE``: the kernel reports it as two renames); a path moved out to a
        side file and not replaced is ``deleted``. Found in the thirty-eighth round (flaky4):
        every restore through an overlay mount listed one ``.avfs-adopt-*`` file a path in
        ``avfs watch`` and ``changes_since``, created then deleted."""
        side = self._own_side(name)
        if not side and not (mask & IN_MOVED_TO and cookie):
            return False  # (every other event: one look at its name)
        old = self._moved.get(cookie)
        old_side = old is not None and self._own_side(old.rsplit("/", 1)[-1])
        if not side and not old_side:
            return False
        if side and self.also:
            # a linked file's other names changed with it (review43; a swap's side file has
            # one link, or is linked to the path it replaces, unlinked at once)
            self._written(tuple(p for p in self.also if not self._own_side(p.rsplit("/", 1)[-1])), mask, now)
        if old is not None:
            del self._moved[cookie]
        if side and old is not None and not old_side:  # the path's file moved out to the side
            i = self._swapped_in.pop(old, None)
            if i is not None and i < len(self._batch) and self._batch[i][2] == old:
                self._batch[i] = (self._batch[i][0], "modified", old, None)  # (an exchange)
            else:
                there = up.lstat(os.path.join(self.upper_dir, old))
                gone = there is None or up.classify(os.path.join(self.upper_dir, old), there) == up.GONE
                self._batch.append((now, "deleted" if gone else "modified", old, None))
        elif not side:  # a side file moved in at the path
            was = path in self._modes or self._lower_kind(path) is not None  # (something was there)
            st = up.lstat(os.path.join(self.upper_dir, path))
            if st is not None:
                self._modes[path] = st.st_mode
            self._swapped_in[path] = len(self._batch)
            self._batch.append((now, "modified" if was else "created", path, None))
        return True

    def _found(self, path: str, real: str, st: os.stat_result) -> None:
        """A file found in a directory that appeared in the upper layer (copied up, or
        made, before its watch existed): what it is, against the lower layer."""
        if self._own_side(path.rsplit("/", 1)[-1]):
            return  # (avfs's own: :meth:`_swap`)
        now = time.time()
        if up.classify(real, st) == up.GONE:
            self._batch.append((now, "deleted", path, None))
            return
        self._modes[path] = st.st_mode
        if self._lower_kind(path) is None:
            self._batch.append((now, "created", path, None))
            return
        was = self.lower_mode(path) if self.lower_mode is not None else None
        changed_mode = was is not None and stat.S_IMODE(was) != stat.S_IMODE(st.st_mode)
        self._batch.append((now, "mode" if changed_mode else "copied_up", path, None))

    def _flush(self, hold: bool = False) -> None:
        """Hand the batch to ``on_events``, coalesced: per path, a run of one kind is one
        event, a creation absorbs the writes after it, a rename absorbs the whiteout left
        where it came from, and a copy-up is a modification only when nothing else
        happened to the path in the batch. ``hold`` (the watcher's own drain during a
        flood): the rows may wait for more (:data:`LOG_ROWS`, :meth:`write_held`)."""
        for cookie, gone in self._moved.items():  # left the tree: a removal
            del cookie
            if self._own_side(gone.rsplit("/", 1)[-1]):
                continue
            i = self._swapped_in.get(gone)
            if i is not None and self._batch[i][2] == gone:
                # an exchange's second half, its move to the side file in the next read (the
                # kernel queues the four events one by one: a read may come between them)
                self._batch[i] = (self._batch[i][0], "modified", gone, None)
                continue
            self._batch.append((time.time(), "deleted", gone, None))
        self._moved.clear()
        self._swapped_in.clear()  # (indexes into this batch)
        if not self._batch or self.on_events is None:
            self._batch = []
            if not hold:
                self.write_held()
            return
        out: list[tuple[float, str, str, str | None]] = []
        last: dict[str, int] = {}  # path -> index in out of its newest event
        renamed_from: set[str] = set()
        for ev in self._batch:
            t, kind, path, old = ev
            if kind == "overflow":
                out.append(ev)
                last.clear()
                continue
            if kind == "renamed" and old is not None:
                renamed_from.add(old)
            if kind == "deleted" and path in renamed_from:
                renamed_from.discard(path)
                continue  # the whiteout overlayfs leaves where a renamed file was
            if kind != "deleted":
                renamed_from.discard(path)  # made again: a removal after this is one
            i = last.get(path)
            prev = out[i][1] if i is not None else None
            if prev is not None and (
                prev == kind
                or (prev in ("created", "renamed") and kind in ("modified", "copied_up", "mode"))
                or (prev == "copied_up" and kind in ("modified", "mode"))
            ):
                if prev == "copied_up":
                    out[i] = (t, kind, path, old)  # type: ignore[index]
                continue
            last[path] = len(out)
            out.append(ev)
        self._batch = []
        if not self._held:
            if hold and len(out) < FLOOD_ROWS:
                hold = False  # (no flood: a person's write is in the log at once)
            self._held_since = time.monotonic()
        self._held += [(t, "modified" if k == "copied_up" else k, p, o) for t, k, p, o in out]
        if not hold or len(self._held) >= LOG_ROWS or time.monotonic() - self._held_since >= LOG_WAIT_S:
            self.write_held()

    def held_for(self) -> float | None:
        """How long the rows held may wait still (None: none held), for the watcher's poll."""
        if not self._held:
            return None
        return max(0.0, LOG_WAIT_S - (time.monotonic() - self._held_since))

    def write_held(self) -> None:
        """Write the rows held to the change log, in one transaction."""
        batch, self._held = self._held, []
        if not batch or self.on_events is None:
            return
        if self._unlogged:  # a batch before was lost (its write failed): readers must resync
            batch.insert(0, (time.time(), "overflow", "", None))
        try:
            self.on_events(batch)
        except Exception:
            # a full quota (the rollback journal cannot grow) or a damaged log: the batch is
            # lost, and the next one that lands says so (an overflow: `resync_required`)
            log.exception("writing the change log")
            self._unlogged = True
        else:
            self._unlogged = False
