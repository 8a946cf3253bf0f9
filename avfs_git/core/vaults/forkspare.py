"""Spare snapshots: a fork's btrfs snapshot made ahead, off the fork's path.

A fork of a workspace whose state dir is a subvolume of the home's layers file system
(:mod:`.layers`) snapshots it: ``BTRFS_IOC_SNAP_CREATE_V2`` always commits a btrfs
transaction (3-57 ms under load, more than the rest of a fork). A snapshot cannot be made
before the fork's instant, but one made earlier is as good when the source has not changed
since. So after a fork (the CLI's command served by the resident server, once its answer
is out: ``App.ahead``) the source gets a
*spare*: a snapshot of its state dir, named by a link ``<vault>/avfs/spares/<fork>`` into the
layers file system, as a fork's state dir is by ``<vault>/avfs/ws/<fork>``. What the spare
needs of its own is made in the source just before the snapshot and removed from it just
after, as a fork's carried log is (:func:`.changelog.carry_claim`): the next fork's change
log, claimed for whichever fork takes it (:data:`.changelog.SPARE_FORK`, its history
starting at the source's journal end), and a record of what the source was (:data:`RECORD`,
named for the spare); the snapshot's own transaction commit makes them durable, and nothing
is written into the spare after it (no sync at all). The next fork of that source, holding
the source's fork lock and its overlay still (``OverlayDB.still``: no write lands
meanwhile), reads the key again and, when it is unchanged, takes the spare by renaming its
link to the new fork's: no snapshot, no sync.

**The key** (:func:`state_key`) is what a snapshot of the source would copy that matters to
a fork: the overlay's entries, its materialized files by their ``stat`` data and the base
(:func:`.forkcapture.source_key`), the journal's end, the overlay's ``meta`` rows, and the
``stat`` data of every other file and directory at the top of the state dir (an open merge,
a seed, the change log a mount's daemon writes to when it starts). As for a kept capture, a
spare is only made when each of those timestamps is older than a file made before the key
was read: a write in the same clock tick as the snapshot would leave its ``stat`` data as
it was. No spare is made or taken for a source that is mounted (the kernel writes its upper
layer without the database: a mount's record, ``<vault>/avfs/mounts/<fork>.json``, is there
from before the mount until after it), nor one whose upper layer holds anything, nor one with
a ``proxy exec`` open, nor one with more than :data:`MAX_ENTRIES` overlay entries (its key
would cost a fork as much as the snapshot), nor in a vault with a bytes quota (a qgroup: a
spare's blocks the source has since rewritten would count against it).

**Not under the source's lock.** The snapshot's transaction commit (9-77 ms under load)
is not waited for with the source's fork lock held, or a fork that comes back to back with
the one before would wait for it: the maker reads the key and makes the carried log and the
record under the lock, leaves a mark (``spares/.making/<fork>``, its pid and start time), snapshots without
the lock, then, under the lock again, names the snapshot the source's spare only when the
journal's end and the key did not move (every write moves one of them) and the snapshot
holds its carried log and record (a fork that snapshotted meanwhile removes carried logs it
finds). A fork that finds a live maker's mark copies the source's changes, as a home without
layers does (:func:`making_why`), rather than snapshot behind the maker's commit in the
kernel; a second maker makes nothing.

**Crashes**: a spare is named by its link only once its snapshot is taken (and with it,
durable), so a maker killed half-way leaves a subvolume no link names (doctor's
``orphan_subvolume``, after an hour), or its carried files in the source (removed by the
next maker or fork there; never in a key) and its mark, whose process is gone (a fork
ignores it, the next maker replaces it); a fork killed after the rename and before its ref leaves a state dir that the next
fork of that name removes, as after a snapshot. The rename and the ref are on one file
system, the rename first. Two forks of one source take its fork lock in turn, and a rename
has one winner; the loser snapshots. A spare whose source was deleted, made again under its
name or changed is never taken (its record names the source's state dir, and the key); it
is replaced by the next spare, removed with the fork, by ``gc`` and by doctor's repair.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import from_oserror
from ..store import names
from ..store.digests import sha256
from ..store.locks import pid_alive
from ..workspace import changelog
from ..workspace.forkcapture import CACHE_FILE, source_key
from . import layers, registry

if TYPE_CHECKING:
    from ..workspace.workspace import Workspace


class SpareVault(Protocol):
    """What this module needs of a vault (:class:`.vault.Vault` is one; it imports this
    module, so this one knows it by these names only)."""

    state_dir: str

    @property
    def home_dir(self) -> str: ...
    @property
    def config(self) -> dict[str, Any]: ...
    def has_fork(self, fork: str) -> bool: ...
    def lock(self, *forks: str, wait_s: float | None = None) -> AbstractContextManager[None]: ...
    def workspace(self, fork: str | None = None) -> Workspace[Any]: ...
    def snapshot_why_not(self, src: Workspace[Any]) -> str | None: ...
    def qgroup(self) -> int | None: ...


SPARES = "spares"  # <vault>/avfs/spares/<fork>: the spare of a fork's state dir (a link)
RECORD = ".avfs-spare"  # in a spare: what its source was when it was taken (JSON)
# at the top of a state dir, not in the key: the overlay database's files (its rows are),
# derived caches, the owner file, a spare's own record, the fork capture's temporaries
_NOT_KEYED = ("overlay.db", "overlay.db-wal", "overlay.db-shm", layers.OWNER)
_NOT_KEYED_PREFIX = (CACHE_FILE, changelog.CARRIED, RECORD)
_TICK_S = 0.02  # how long a maker waits for the clock to pass a file's timestamps, once
# past this many overlay entries a source gets no spare: its key is read on the fork's path,
# ~5.5 us an entry (an entry's row and its file's stat data), 2.8 ms here, as much as a
# snapshot on a quiet disk
MAX_ENTRIES = 512
MAKING = ".making"  # <vault>/avfs/spares/.making/<fork>: a maker's mark, its pid and start time (making_why)
_COPY_BYTES = 8 << 20  # a fork copies a source whose spare is being made up to this many bytes
_RECHECK_WAIT_S = 2.0  # a maker's wait for the source's lock after its snapshot
# the marks this process's makers hold (one maker a source in a process as in the machine:
# a mark of this process's own pid says nothing of which thread holds it)
_making_here: dict[str, int] = {}  # mark -> the thread making
_here_lock = threading.Lock()


def spare_link(vault: SpareVault, fork: str) -> str:
    return os.path.join(vault.state_dir, SPARES, names.fs_name(fork))


def state_key(ws: Workspace, journal: int) -> tuple[str, int] | None:
    """(the digest of what a fork of ``ws`` would copy, the newest timestamp among the
    files it names), read while ``ws``'s overlay is held still with its journal ending at
    ``journal``; None when it cannot be told or a spare must not be used (see the module,
    and :data:`MAX_ENTRIES`)."""
    if ws.overlay.db.execute("SELECT COUNT(*) FROM entries").fetchone()[0] > MAX_ENTRIES:
        return None
    got = source_key(ws)
    if got is None:
        return None
    digest, newest = got
    h = sha256(f"{digest} {journal} {ws.state_dir}".encode())
    for row in ws.overlay.db.execute("SELECT key, value FROM meta ORDER BY key"):
        h.update(repr(tuple(row)).encode())
    try:
        with os.scandir(ws.state_dir) as it:
            tops = sorted((e.name, e) for e in it)
    except OSError:
        return None
    for name, e in tops:
        if name in _NOT_KEYED or name.startswith(_NOT_KEYED_PREFIX):
            continue
        if name == "upper" and _holds_anything(e.path):
            return None
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            return None
        h.update(repr((name, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)).encode())
        newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
    return h.hexdigest(), newest


def _holds_anything(upper: str) -> bool:
    """Whether an upper layer holds more than the mount's pinned ``.git``."""
    try:
        with os.scandir(upper) as it:
            return any(e.name != ".git" for e in it)
    except OSError:
        return True


def _mounted(vault: SpareVault, fork: str) -> bool:
    """Whether ``fork`` has a mount record (live, on its way, or left by a killed daemon)."""
    return os.path.lexists(registry.record_path(vault.state_dir, fork))


def usable(vault: SpareVault) -> bool:
    """Whether this vault keeps spares at all: not with a bytes quota (see the module)."""
    return vault.config.get("layers_qgroup") is None


def claim(vault: SpareVault, src: Workspace, link: str, journal: int) -> str | None:
    """Take ``src``'s spare as the new state dir named ``link`` when the source is what it
    was when the spare was taken (the caller holds both forks' locks and ``src``'s overlay
    still, with its journal ending at ``journal``); the spare's path, else None (the
    caller snapshots)."""
    slink = spare_link(vault, src.fork)
    sub = layers.link_target(vault.home_dir, slink)
    if sub is None or not usable(vault) or _mounted(vault, src.fork):
        return None
    record = _read_record(sub)
    if record is None or record.get("journal") != journal:
        return None
    key = state_key(src, journal)
    if key is None or record.get("key") != key[0]:
        return None
    try:
        os.rename(slink, link)
    except OSError:
        return None
    return sub


def _read_record(sub: str) -> dict[str, object] | None:
    try:
        with open(_record_path(sub, sub), encoding="utf-8") as fh:
            got = json.loads(fh.read(4096))
    except (OSError, ValueError):
        return None
    return got if isinstance(got, dict) else None


def make(vault: SpareVault, fork: str) -> str | None:
    """Give ``fork`` a spare (see the module), replacing one it no longer matches; its path,
    or None when none can be made now (the next fork of ``fork`` then snapshots). Meant for
    after a fork's answer: it costs a snapshot's transaction commit, which it waits for
    without the source's fork lock (see :func:`making_why`): it holds the lock (not waiting
    for it: a busy source gets no spare) to read the key and again to check it after the
    snapshot, keeping the spare only when the source is still what the key said."""
    from ..errors import AvfsError

    if not usable(vault) or not vault.has_fork(fork):
        return None
    mark = _mark_path(vault, fork)
    with _here_lock:  # a maker of this process (another thread) is at it: as another process's
        if mark in _making_here:
            return None
        _making_here[mark] = threading.get_ident()
    got: str | None = None
    try:
        for attempt in (0, 1):
            with vault.lock(fork, wait_s=0):
                src = vault.workspace(fork)
                if _maker(mark) or vault.snapshot_why_not(src) is not None or _mounted(vault, fork):
                    return None
                plan = _plan(vault, src, mark)
            if plan == "tick" and not attempt:
                time.sleep(_TICK_S)
                continue
            if not isinstance(plan, _Plan):
                return plan if plan != "tick" else None
            got, old = _take(vault, fork, plan, mark)
            if old is not None and old != got:
                _delete(old)
            break
    except (AvfsError, OSError, sqlite3.Error, layers.LayersUnavailable):
        return None
    finally:
        with contextlib.suppress(OSError):
            if _mark_pid(mark) == os.getpid():
                os.unlink(mark)
        with _here_lock:
            _making_here.pop(mark, None)
    return got


class _Plan:
    """What :func:`_plan` read and made under the source's lock for the snapshot after it."""

    def __init__(self, sub: str, key: str, journal: int, carried: str, record: str, old: str | None):
        self.sub, self.key, self.journal, self.old = sub, key, journal, old
        self.carried, self.record = carried, record


def _plan(vault: SpareVault, src: Workspace, mark: str) -> _Plan | str | None:
    """Under the source's lock: its key read with the overlay held still, the spare's
    carried log and record made in it, and the maker's mark left (:func:`making_why`);
    else the spare it has when that is still the source's, None (no spare now) or "tick"
    (a file of the source is as new as the clock: try again a tick later)."""
    slink = spare_link(vault, src.fork)
    old = layers.link_target(vault.home_dir, slink)
    _sweep(src.state_dir)
    stamp = _clock(src.state_dir)
    with src.overlay.still() as journal:
        if journal is None:
            return None
        key = state_key(src, journal)
        if key is None:
            return None
        if old is not None:
            rec = _read_record(old)
            if rec is not None and rec.get("key") == key[0] and rec.get("journal") == journal:
                return old  # still the source's
        if key[1] >= stamp:
            return "tick"
        sub = layers.new_subvol_path(vault.home_dir)
        carried = changelog.carry_claim(src.state_dir, sub, changelog.SPARE_FORK, journal)
        if carried is None:
            return None
        record = _record_path(src.state_dir, sub)
        try:
            with open(record, "w", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": key[0], "journal": journal}))
            os.makedirs(os.path.dirname(mark), exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(mark)  # (a killed maker's: a live one's made snapshot_why_not refuse)
            fd = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, b"%d %s" % (os.getpid(), _started(os.getpid()) or b""))
            finally:
                os.close(fd)
        except BaseException:
            for p in (carried, record):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)
            raise
    return _Plan(sub, key[0], journal, carried, record, old)


def _take(vault: SpareVault, fork: str, plan: _Plan, mark: str) -> tuple[str | None, str | None]:
    """The snapshot of ``plan``, taken without the source's lock, then named as its spare
    if, under the lock again, the source's journal and key did not move meanwhile (every
    write moves one of them) and the snapshot holds its carried log and record (a fork that
    snapshotted meanwhile removes a carried log it finds: :func:`.changelog.carry_claim`);
    (the spare or None, the spare it replaced)."""
    try:
        try:
            layers.snapshot(vault.workspace(fork).state_dir, plan.sub)
        finally:
            for p in (plan.carried, plan.record):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)
        with vault.lock(fork, wait_s=_RECHECK_WAIT_S):
            src = vault.workspace(fork)
            with src.overlay.still() as journal:
                key = state_key(src, journal) if journal == plan.journal else None
            whole = os.path.exists(os.path.join(plan.sub, os.path.basename(plan.carried)))
            if key is None or key[0] != plan.key or not whole or _read_record(plan.sub) is None:
                raise layers.LayersUnavailable("the source moved while its spare was taken")
            if _mounted(vault, fork):  # a mount started meanwhile: its writes may be in it
                raise layers.LayersUnavailable("mounted")
            slink = spare_link(vault, fork)
            tmp = f"{slink}.{os.getpid()}.tmp"
            try:
                os.makedirs(os.path.dirname(slink), exist_ok=True)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                os.symlink(os.path.relpath(plan.sub, os.path.dirname(slink)), tmp)
                os.replace(tmp, slink)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            if _mark_pid(mark) == os.getpid():
                os.unlink(mark)  # (under the lock: a fork after this finds the spare)
    except BaseException:
        _delete(plan.sub)
        raise
    return plan.sub, plan.old


def making_why(vault: SpareVault, src: Workspace) -> str | None:
    """Why a fork of ``src`` copies its changes rather than snapshot it now, else None: a
    spare of it is being snapshotted (its maker's mark is there, its process alive), and
    the copy is cheap (a spare's source has at most :data:`MAX_ENTRIES` entries; their
    files' bytes are bounded here). A snapshot of its own would queue in the kernel behind
    the maker's transaction commit; the copy is what a home without layers does."""
    mark = _mark_path(vault, src.fork)
    if not _maker(mark) and _making_here.get(mark, threading.get_ident()) == threading.get_ident():
        return None  # (no maker of another process, nor of another thread of this one)
    n, size = src.overlay.db.execute(
        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries WHERE fileid IS NOT NULL"
    ).fetchone()
    if n > MAX_ENTRIES or size > _COPY_BYTES:
        return None
    return f"a snapshot of fork {src.fork} was being taken for its next fork: its changes were copied"


def _mark_path(vault: SpareVault, fork: str) -> str:
    return os.path.join(vault.state_dir, SPARES, MAKING, names.fs_name(fork))


def _mark(mark: str) -> tuple[int, bytes | None] | None:
    """(the maker's pid, its process's start time or None) a mark names, else None."""
    try:
        with open(mark, "rb") as fh:
            got = fh.read(64).split()
    except OSError:
        return None
    if not got or not got[0].isdigit() or len(got) > 2:
        return None
    return int(got[0]), got[1] if len(got) == 2 else None


def _mark_pid(mark: str) -> int | None:
    got = _mark(mark)
    return None if got is None else got[0]


def _started(pid: int) -> bytes | None:
    """When process ``pid`` started (``/proc/<pid>/stat``'s 22nd field, clock ticks since
    boot), None when it cannot be read (no such process; no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()  # (its name may hold spaces and parentheses)
    return fields[19] if len(fields) > 19 else None


def _maker(mark: str) -> bool:
    """Whether another process's maker is taking a spare: its mark names a live process
    started when the maker did (a killed maker's pid handed to another process stopped
    every spare of the source while that one lived, review10)."""
    got = _mark(mark)
    if got is None or got[0] == os.getpid():
        return False
    pid, started = got
    if not pid_alive(pid):
        return False  # (a zombie too: a maker that ended, not collected yet)
    if started is not None:
        now = _started(pid)
        if now is not None and now != started:
            return False  # the pid is another process's now
    return True


def _record_path(state_dir: str, sub: str) -> str:
    """Where spare ``sub``'s record is, in ``state_dir`` (the source's, then the spare's):
    named for the spare, so that a fork of a fork that took one is no spare itself."""
    return os.path.join(state_dir, f"{RECORD}.{os.path.basename(sub)}")


def _sweep(state_dir: str) -> None:
    """Remove the records a killed maker left in a source (the killed one's carried log
    goes with the next carry: :func:`.changelog.carry_claim`)."""
    with contextlib.suppress(OSError), os.scandir(state_dir) as it:
        for e in it:
            if e.name.startswith(RECORD + "."):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(e.path)


def _clock(d: str) -> int:
    """The file system's clock now: the timestamp of a new file in ``d`` (removed again)."""
    path = os.path.join(d, f"{RECORD}-clock.{os.getpid()}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
        os.unlink(path)
    return min(st.st_mtime_ns, st.st_ctime_ns)


def _delete(sub: str) -> None:
    with contextlib.suppress(OSError):
        if layers.is_subvolume(sub):
            layers.delete_subvolume(sub)


def drop(vault: SpareVault, fork: str) -> bool:
    """Remove ``fork``'s spare, if it has one (the fork is deleted, or ``gc``); True if so."""
    slink = spare_link(vault, fork)
    sub = layers.link_target(vault.home_dir, slink)
    if sub is None:
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(slink)
    if layers.mounted(vault.home_dir):
        _delete(sub)
    return True


def spares(vault: SpareVault) -> dict[str, str]:
    """fork name -> its spare's state dir, for every spare link of the vault."""
    root = os.path.join(vault.state_dir, SPARES)
    try:
        listed = sorted(os.listdir(root))
    except OSError:
        return {}
    out = {}
    for n in listed:
        target = layers.link_target(vault.home_dir, os.path.join(root, n))
        if target is not None:
            out[names.from_fs_name(n)] = target
    return out


def snapshot_for_fork(
    vault: SpareVault, src: Workspace[Any], link: str, new: str
) -> tuple[str, int | None, bool | None]:
    """Snapshot ``src``'s state dir as fork ``new``'s, named by ``link`` (see :meth:`.Vault.fork`):
    the new state dir, the overlay journal's end read while the source was held still
    (None: the copy must be read), and whether the snapshot carried the new fork's
    claimed change log (None: a spare made ahead was taken, its log made in it:
    :func:`claim`). Raises :class:`.layers.LayersUnavailable`."""
    # the whole state (entries, journal, a live mount's upper layer, an open merge) at
    # this instant; the fork lock keeps a checkpoint of the source from being half-way,
    # the overlay held still a write from landing between the journal's end and the copy
    with src.overlay.still() as journal:
        if journal is not None and (spare := claim(vault, src, link, journal)) is not None:
            return spare, journal, None
        sub = layers.new_subvol_path(vault.home_dir)
        carried = None if journal is None else changelog.carry_claim(src.state_dir, sub, new, journal)
        try:
            layers.snapshot_state_dir(vault.home_dir, src.state_dir, link, vault.qgroup(), sub)
        finally:
            if carried is not None:  # the source's copy: the fork's went with the snapshot
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(carried)
    return sub, journal, carried is not None


def write_seed(ws_dir: str, base: str, tree: str) -> None:
    """Record the state a new workspace starts from (applied by Workspace on first use)."""
    try:
        os.makedirs(ws_dir, exist_ok=True)
        tmp = os.path.join(ws_dir, "seed.tmp")
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(f"{base} {tree}\n")
        os.replace(tmp, os.path.join(ws_dir, "seed"))
    except OSError as exc:
        raise from_oserror(exc, ws_dir) from exc
