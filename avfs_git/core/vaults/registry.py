"""The mount registry: which mounts exist, where their records live, whether they live.

A mount daemon (``python -m avfs_git.fuse.daemon``) writes one JSON record per mounted fork
(or read-only revision), ``<vault>/avfs/mounts/<key>.json`` (the key is the fork, or
``FORK@REV12``; as a file name, :func:`.names.fs_name`), with its states ``mounting ->
mounted -> unmounting`` (``failed`` when the overlay could not be stacked); the file is gone
when the mount is. Beside it, ``<key>.exec`` names the daemon's exec socket and pid (plain
text: the CLI's fast path reads it without json), and ``<key>.log`` is the daemon's log.
``<key>.d/`` (:func:`mount_dir`) holds the files of the mount avfs's host side reads or runs
(the index stamp and its lock, the wake FIFO, the ack file, the merge marker, git's fsmonitor
hook and its socket, temp files): never the worktree's git dir, which a confined command can
write (docs/security.md). The record is the one source of a mount's owner data (daemon pid,
uid, gid, backend, mount point, hook kind).

Everything that reads or writes those files goes through here: the mount lifecycle
(``ops/mounts.py``), the daemon (``fuse/daemon.py``), ``doctor``/``stats``
(``ops/maintenance/``), the agent hooks (``hooks/events.py``), ``proxy exec``'s fast path
(``cli/execopts.py``); the vault's git ``pre-receive`` hook, a shell script, is built from
:data:`RECORDS` and :data:`.names.SHELL_FS_NAME`. Liveness, which differs by purpose, is
here too, each rule with its reason: :func:`serving` (a hook: is this mount answering now),
:func:`registered` (the lifecycle: mounted or on its way), :func:`daemon_alive` (doctor:
never remove what a live daemon may still own).

Standard library only (and :mod:`.locks`, :mod:`.names`): the hooks and ``proxy exec``'s
fast path read the registry on every call, so nothing here loads git, and what only some
callers need (``dataclasses`` is 7 ms, ``json`` 1.4 ms, ``threading``, ``calendar``, ``re``) is
imported where it is used; records are plain slotted classes (a named tuple costs 0.2 ms to define).
"""

from __future__ import annotations

import errno
import os
import stat

from ..store.names import from_fs_name, fs_name
from .daemonproc import daemon_alive as daemon_alive  # (moved out, re-exported: callers ask here)
from .daemonproc import is_mount_daemon as is_mount_daemon
from .daemonproc import process_start as process_start

TYPE_CHECKING = False  # not from typing: see avfs_git/__init__.py

if TYPE_CHECKING:  # typing's names and collections.abc cost ~6 ms to import: annotations only
    from collections.abc import Iterator
    from typing import Any

__all__ = [
    "ACTIVITY_FILE",
    "RECORDS",
    "MountedFork",
    "Record",
    "activity_path",
    "daemon_alive",
    "dead_mountpoint",
    "exec_path",
    "home_records",
    "is_mount_daemon",
    "last_activity",
    "live_mountpoints",
    "log_path",
    "mount_containing",
    "mount_dir",
    "mount_key",
    "mounted_as",
    "mounted_at",
    "origin_vault",
    "place",
    "process_start",
    "read_exec",
    "read_exec_at",
    "read_record",
    "record_path",
    "records",
    "registered",
    "serving",
    "started_at",
    "touch_activity",
    "unpin_dead",
    "write_exec",
    "write_record",
]

# the registry's directory in a vault's state dir (``<vault>/avfs``)
RECORDS = "mounts"


def mount_key(fork: str, revision: str | None) -> str:
    """The registry key of a mount: the fork, or ``FORK@REV12`` for a read-only revision."""
    return fork if revision is None else f"{fork}@{revision[:12]}"


def record_path(state_dir: str, key: str) -> str:
    """``<state_dir>/mounts/<key>.json``: the record of mount ``key`` of a vault."""
    return os.path.join(state_dir, RECORDS, fs_name(key) + ".json")


def mount_dir(state_dir: str, key: str) -> str:
    """``<state_dir>/mounts/<key>.d``: the directory of mount ``key``'s own files, made by
    its daemon at mount and removed at unmount (doctor and prune remove a dead one's).
    Inside ``<vault>/avfs``, which a confined command never sees (masked)."""
    return os.path.join(state_dir, RECORDS, fs_name(key) + ".d")


GIT_KEPT = "gitkept"  # git's state of a fork's mount, from its unmount to its next mount


def gitkept_dir(state_dir: str, key: str) -> str:
    """``<state_dir>/gitkept/<key>``: git's state of mount ``key``'s worktree git dir, kept
    from its unmount to the fork's next mount (mount/gitkeep.py; ``<key>.set-aside``: what
    a mount did not bring back). Masked in the sandbox, as all of ``<vault>/avfs``."""
    return os.path.join(state_dir, GIT_KEPT, fs_name(key))


# in a mount's own directory: its modification time is the last activity of a mount kept
# warm (a proxy exec served or reused it, the daemon saw calls or writes): see fuse/idle.py
ACTIVITY_FILE = "activity"


def activity_path(state_dir: str, key: str) -> str:
    """``<state_dir>/mounts/<key>.d/activity``: touched at each use of a mount kept warm."""
    return os.path.join(mount_dir(state_dir, key), ACTIVITY_FILE)


def touch_activity(state_dir: str, key: str) -> None:
    """Mark mount ``key`` as used now (a mount kept warm is released only after its idle
    timeout without use). Nothing when the mount's own directory is gone (unmounted)."""
    path = activity_path(state_dir, key)
    try:
        os.utime(path)
    except FileNotFoundError:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        os.close(fd)
    except OSError:
        pass


def last_activity(state_dir: str, key: str) -> float | None:
    """When mount ``key`` was last used (epoch seconds); None when unknown."""
    try:
        return os.stat(activity_path(state_dir, key)).st_mtime
    except OSError:
        return None


def exec_path(record: str) -> str:
    """The exec file beside a record: the daemon's exec socket name and its pid."""
    return record[: -len(".json")] + ".exec"


def log_path(state_dir: str, key: str) -> str:
    """The mount daemon's log: ``<state_dir>/mounts/<key>.log``."""
    return os.path.join(state_dir, RECORDS, fs_name(key) + ".log")


def write_record(path: str, data: dict[str, Any]) -> None:
    """Replace the record at ``path`` whole (a reader never sees half of one)."""
    import json

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def read_record(path: str) -> dict[str, Any] | None:
    """The record at ``path``; None when there is none or it is not a JSON object."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class Record:
    """One record as found on disk: its ``key``, file ``path`` and JSON ``data``."""

    __slots__ = ("data", "key", "path")

    def __init__(self, key: str, path: str, data: dict[str, Any]) -> None:
        self.key = key
        self.path = path
        self.data = data

    def __repr__(self) -> str:
        return f"Record({self.key!r}, {self.path!r}, {self.data!r})"

    @property
    def pid(self) -> int:
        try:
            return int(self.data.get("pid", 0) or 0)
        except (TypeError, ValueError):
            return 0

    @property
    def mountpoint(self) -> str:
        return str(self.data.get("mountpoint", ""))

    @property
    def state(self) -> str:
        return str(self.data.get("state", "mounted"))


def records(state_dir: str) -> list[Record]:
    """Every readable record of a vault (by key), live or not; changes nothing."""
    root = os.path.join(state_dir, RECORDS)
    try:
        files = sorted(os.listdir(root))
    except OSError:
        return []
    out = []
    for fn in files:
        if fn.endswith(".json"):
            path = os.path.join(root, fn)
            data = read_record(path)
            if data is not None:
                out.append(Record(from_fs_name(fn[: -len(".json")]), path, data))
    return out


def _vault_path(home_path: str, vault: str) -> str:
    # a home's layout (core/vaults/home.py): <home>/vaults/<name>.git, its state in <vault>/avfs;
    # spelled out here so that a hook reads the registry without loading the vault code
    return os.path.join(home_path, "vaults", vault + ".git")


def home_records(home_path: str) -> Iterator[tuple[str, str, Record]]:
    """(vault name, vault path, record) for every record of every vault of a home, read
    from the files alone (no vault is opened)."""
    try:
        names = sorted(
            d[: -len(".git")] for d in os.listdir(os.path.join(home_path, "vaults")) if d.endswith(".git")
        )
    except OSError:
        return
    for name in names:
        if name.startswith("."):
            continue
        path = _vault_path(home_path, name)
        for rec in records(os.path.join(path, "avfs")):
            yield name, path, rec


def write_exec(record: str, name: str, pid: int, mountpoint: str) -> None:
    """The exec file beside ``record``: the daemon's exec socket ``name``, its ``pid`` (the
    client checks its peer is that process) and its ``mountpoint`` (a client whose current
    directory is inside runs its command there). Written whole (rename)."""
    path = exec_path(record)
    with open(path + ".tmp", "w", encoding="utf-8", errors="surrogateescape") as fh:
        fh.write(f"{name}\n{pid}\n{mountpoint}\n")
    os.replace(path + ".tmp", path)


def read_exec(home_path: str, vault: str, key: str) -> tuple[str, int, str] | None:
    """(exec socket name, daemon pid, mount point: '' when the file predates it) of mount
    ``key`` of ``vault`` from its exec file; None when there is none (read as plain text,
    without json)."""
    return read_exec_at(record_path(os.path.join(_vault_path(home_path, vault), "avfs"), key))


def read_exec_at(record: str) -> tuple[str, int, str] | None:
    """:func:`read_exec` of the exec file beside registry record ``record``."""
    path = exec_path(record)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            text = fh.read()
    except OSError:
        return None
    name, _, rest = text.partition("\n")
    pid, _, mountpoint = rest.partition("\n")
    if not name or not pid.isdigit():
        return None
    return name, int(pid), mountpoint[:-1] if mountpoint.endswith("\n") else mountpoint


class MountedFork:
    """A live mount of a fork whose mount point holds a path (:func:`mount_containing`)."""

    __slots__ = ("fork", "mountpoint", "read_only", "vault", "vault_path")

    def __init__(self, vault: str, vault_path: str, fork: str, mountpoint: str, read_only: bool) -> None:
        self.vault = vault
        self.vault_path = vault_path
        self.fork = fork
        self.mountpoint = mountpoint
        self.read_only = read_only

    def __repr__(self) -> str:
        return f"MountedFork({self.vault!r}, {self.fork!r}, {self.mountpoint!r})"

    @property
    def spec(self) -> str:
        """``VAULT:FORK``, as ``--vault`` takes it."""
        return f"{self.vault}:{self.fork}"

    def relpath(self, path: str) -> str:
        """``path`` (inside the mount point) as a path in the fork: '' at its root."""
        rel = os.path.relpath(os.path.realpath(path), self.mountpoint)
        return "" if rel == "." else rel


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def mount_containing(
    home_path: str, path: str, *, revisions: bool = True, as_written: bool = False
) -> MountedFork | None:
    """The live mount of the home whose mount point contains ``path`` (the innermost one),
    or None. ``revisions=False``: a read-only revision mount (``VAULT@REV``) does not
    count. ``as_written``: ``path`` as a shell reaches it (an agent's working directory),
    each directory above it resolved on its own too: when one of them is in a mount that
    does not hold the whole path (a link in a fork leads out of it, or into another
    mount), that mount, whose caller then finds ``path`` resolving outside it.

    What the CLI asks when no vault is selected (a command run inside a mounted fork acts
    on that fork, as git acts on the repository it runs in) and what the agent hooks ask on
    every tool call: the records are read from the files alone, no vault is opened. A
    record counts only while its mount is :func:`serving`."""
    listed = [
        (vault, vault_path, rec, resolved_mountpoint(rec.mountpoint))
        for vault, vault_path, rec in home_records(home_path)
        if {"mountpoint", "pid", "fork"} <= rec.data.keys()
    ]
    _abort_dead_around(os.path.abspath(path), listed)  # (before a stat of anything in them)
    wheres = [os.path.realpath(path)]
    while as_written and os.path.dirname(path) != path:
        path = os.path.dirname(path)
        wheres.append(os.path.realpath(path))
    found: list[MountedFork | None] = [None] * len(wheres)
    for vault, vault_path, rec, mp in listed:
        revision = rec.data.get("revision") is not None
        if revision and not revisions:
            continue
        hits = [
            i
            for i, w in enumerate(wheres)
            if _inside(w, mp) and len(mp) > len(getattr(found[i], "mountpoint", ""))
        ]
        if not hits or not serving(rec):
            continue
        read_only = bool(rec.data.get("read_only")) or revision
        for i in hits:
            found[i] = MountedFork(vault, vault_path, str(rec.data["fork"]), mp, read_only)
    best = found[0]
    return next((f for f in found[1:] if f and not (best and _inside(best.mountpoint, f.mountpoint))), best)


def _abort_dead_around(path: str, listed: list[tuple[str, str, Record, str]]) -> None:
    """Abort the FUSE connection of each mount (of ``listed``: vault, its path, record,
    resolved mount point) that holds ``path`` and whose daemon is gone, before anything
    there is looked at: a daemon killed while a thread of its own waited in its own mount
    leaves a connection that answers nothing, and a ``realpath`` of a directory in it would
    wait for ever (ops/detaching.py ``abort_dead``; docs/fuse.md "A killed daemon's
    connection"). A live daemon's mount, or one ``path`` is not in, costs nothing more."""
    from ..store.locks import judged_here, pid_alive
    from .mountinfo import abort_connection

    for vault, _vault_path, rec, mp in listed:
        if _inside(path, mp) and rec.pid > 0 and judged_here(rec.data) and not pid_alive(rec.pid):
            for at in (rec.mountpoint, rec.data.get("lower")):
                if isinstance(at, str) and at:
                    abort_connection(resolved_mountpoint(at), f"avfs:{vault}:{rec.key}")


_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC


def origin_vault(home_path: str, directory: str, *, above: bool = False) -> str | None:
    """The vault ``avfs up`` made from ``directory`` (a real path): its config's
    ``origin.dir``; with ``above``, from ``directory`` or the nearest directory above it
    that a vault was made from. Read from the files alone (a config is parsed only when the
    directory's name is in it: ``json`` is not loaded for a home whose vaults came from
    elsewhere)."""
    try:
        entries = sorted(d for d in os.listdir(os.path.join(home_path, "vaults")) if d.endswith(".git"))
    except OSError:
        return None
    wanted = [directory]
    if above:
        d = directory
        while os.path.dirname(d) != d:
            d = os.path.dirname(d)
            wanted.append(d)
    found: dict[str, str] = {}
    for fn in entries:
        if fn.startswith("."):
            continue
        # (a FIFO there held every command run outside a mount without --vault: no wait
        # on one; a directory, a FIFO or a socket names no origin)
        try:
            fd = os.open(os.path.join(home_path, "vaults", fn, "avfs", "config.json"), _READ_FLAGS)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            with open(fd, encoding="utf-8", closefd=False) as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError):
            continue
        finally:
            os.close(fd)
        if '"origin"' not in text:
            continue
        import json

        try:
            cfg = json.loads(text)
        except ValueError:
            continue
        origin = cfg.get("origin") if isinstance(cfg, dict) else None
        where = origin.get("dir") if isinstance(origin, dict) else None
        if isinstance(where, str) and where in wanted and where not in found:
            found[where] = fn[: -len(".git")]
    return next((found[d] for d in wanted if d in found), None)


def place(home_path: str, cwd: str) -> str | None:
    """What a command run in ``cwd`` acts on when it names no vault (no ``--vault``, no
    ``AVFS_VAULT``): the one rule every command follows, as git finds the repository it runs
    in. Inside a live mount of a fork (read-write), that fork (``VAULT:FORK``); else in a
    directory a vault was made from by ``avfs up`` (or below one), that vault (``VAULT``:
    its default fork); else None (the home's default vault, ``avfs vault use``)."""
    try:
        where = os.path.realpath(cwd)
    except OSError:
        return None
    here = mount_containing(home_path, where, revisions=False)
    if here is not None:
        return here.spec
    return origin_vault(home_path, where, above=True)


# -- liveness --------------------------------------------------------------------------------


# a table kept open by a process that asks often (:func:`.mounttable.keep`: a mount's daemon)
_KEPT: list[Any] = [None]


def keep_table(table: Any) -> None:
    """Answer :func:`mounted_at` from ``table.read()`` in this process from now on."""
    _KEPT[0] = table


def kept_table() -> Any:
    return _KEPT[0]


def resolved_mountpoint(mountpoint: str, _links: int = 40) -> str:
    """``mountpoint`` made absolute with its directories' links resolved, without a
    ``stat`` of the mount point itself: ``os.path.realpath`` calls ``lstat`` on every component,
    the last one too, which on a live FUSE mount is a request to its daemon whenever the
    kernel's attributes of the root have expired or were invalidated (a write, a commit
    that moved the view): the mount is busy for ``umount`` while it is answered, and a
    daemon that does not answer hangs the caller. The last component is asked only
    ``readlink`` (answered by the kernel alone: never a request to the file system), so
    a link to a mount point is still followed."""
    path = mountpoint if os.path.isabs(mountpoint) else os.path.join(os.getcwd(), mountpoint)
    path = path.rstrip("/")  # (not normalised: a ".." is realpath's, after the links before it)
    head, tail = os.path.split(path)
    if tail in ("", ".", ".."):  # "/", or a name realpath resolves without a stat of it
        return os.path.realpath(mountpoint)
    path = os.path.join(os.path.realpath(head), tail)
    try:
        link = os.readlink(path)
    except OSError:  # not a link (EINVAL), or not there
        return path
    if _links <= 0:  # a loop (ELOOP): as realpath leaves it
        return path
    return resolved_mountpoint(os.path.join(os.path.dirname(path), link), _links - 1)


def mounted_at(mountpoint: str) -> bool:
    """Whether something is mounted at ``mountpoint`` now (/proc/self/mounts, searched as
    bytes for the mount point as the kernel escapes it, as a line's second field; the mount
    point itself is never given to ``stat`` (:func:`resolved_mountpoint`), so a dead or slow FUSE
    mount cannot hang the question, nor a live one be made busy by it). Read again only
    when it changed where this process keeps it open (:mod:`.mounttable`)."""
    target = os.fsencode(resolved_mountpoint(mountpoint))
    for raw, esc in ((b"\\", b"\\134"), (b" ", b"\\040"), (b"\t", b"\\011"), (b"\n", b"\\012")):
        target = target.replace(raw, esc)
    try:
        kept = _KEPT[0]
        if kept is not None:
            table = kept.read()
        else:
            with open("/proc/self/mounts", "rb") as fh:
                table = fh.read()
    except OSError:
        return False
    at = table.find(needle := b" " + target + b" ")
    while at >= 0:
        if b" " not in table[table.rfind(b"\n", 0, at) + 1 : at]:  # the second field
            return True
        at = table.find(needle, at + 1)
    return False


def mounted_as(mountpoint: str, source: str) -> bool:
    """Whether the kernel lists a mount of ``source`` (``avfs:VAULT:KEY``) at exactly
    ``mountpoint`` (a resolved path) in this mount namespace: what a record's mount point
    is checked against before anything is written through it. Cheaper than
    :func:`.mountinfo.kernel_mounts` (only the lines naming the mount point are parsed): it is asked
    on every change the CLI makes to a fork with an overlay mount."""

    def esc(text: str) -> bytes:  # mountinfo's octal escapes
        out = text.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011")
        return out.replace("\n", "\\012").encode("utf-8", "surrogateescape")

    want_mp, want_src = esc(mountpoint), esc(source)
    try:
        with open("/proc/self/mountinfo", "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    for line in data.split(b"\n"):
        if want_mp not in line:
            continue
        head, sep, tail = line.partition(b" - ")
        parts, rest = head.split(b" "), tail.split(b" ")
        if sep and len(parts) > 4 and parts[4] == want_mp and len(rest) > 1 and rest[1] == want_src:
            return True
    return False


# what a FUSE mount whose daemon is gone answers: ENOTCONN, or ECONNABORTED (Linux 6.18 for
# a daemon forked from a zygote and killed with its auto-unmount helper: ci16,
# tests/test_maintenance.py's killed-daemon test)
DEAD_ERRNOS = (errno.ENOTCONN, errno.ECONNABORTED)


def dead_mountpoint(mountpoint: str) -> bool:
    """Whether the FUSE mount at ``mountpoint`` has lost its daemon (:data:`DEAD_ERRNOS`).
    Asked with ``statvfs``, which always reaches the daemon: a ``stat`` of the root is
    answered from the kernel's attribute cache for as long as the mount's attr_timeout (60 s)."""
    try:
        os.statvfs(mountpoint)
    except OSError as exc:
        return exc.errno in DEAD_ERRNOS
    return False


def serving(rec: Record) -> bool:
    """Whether a mount answers now: mounted (not on its way up or down), its daemon runs
    and its mount point is a mount point. What a hook asks on every tool call: cheap, and
    wrong only towards "no" (then the hook does what it does outside a mount)."""
    from ..store.locks import pid_alive

    if rec.data.get("state") not in (None, "mounted") or rec.pid <= 0 or not pid_alive(rec.pid):
        return False
    return os.path.ismount(os.path.realpath(rec.mountpoint))


def registered(rec: Record) -> bool:
    """Whether a record stands for a mount that exists or is being made: its daemon runs
    and the mount point is mounted, or it runs and is still ``mounting``. What the mount
    lifecycle asks before it reuses, replaces or cleans up a record."""
    from ..store.locks import pid_alive

    if rec.pid <= 0 or not pid_alive(rec.pid):
        return False
    # (the record first: a mount being made needs no read of the mount table, which a
    # first `proxy exec` asks while its daemon comes up)
    return rec.data.get("state") == "mounting" or mounted_at(rec.mountpoint)


def live_mountpoints(state_dir: str, key: str | None = None) -> dict[str, str]:
    """``{key: mount point}`` of a vault's mounts that exist or are being made (see
    :func:`registered`) and whose daemon is a mount daemon: of ``key`` alone when given
    (revision mounts ``FORK@REV`` are other keys), else every one. What the vault and the
    home ask before they delete what a live mount serves; a daemon killed with -9 left a
    record that is not live."""
    out = {}
    for rec in records(state_dir):
        if (key is None or rec.key == key) and registered(rec) and is_mount_daemon(rec.pid):
            out[rec.key] = rec.mountpoint
    return out


def started_at(data: dict[str, Any]) -> float | None:
    """When a record's daemon wrote that it started (its ``started``, whole seconds)."""
    import calendar
    import time

    try:
        return float(calendar.timegm(time.strptime(str(data.get("started", "")), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def unpin_dead(state_dir: str, fork: str, record: str, data: dict[str, Any]) -> None:
    """Take away the worktree link a killed overlay daemon (its ``record``'s ``data``) left
    pinned immutable in its upper layer, once its overlay is off (nothing in a mount can
    reach it then): ``rm -rf`` of the home would fail on it. Under the fork's mount lock
    taken without waiting, while the record is still the dead daemon's (a new mount's
    daemon has pinned its own by the time its record is written)."""
    from ..errors import AvfsError
    from ..store.locks import file_lock, mount_lock_path
    from ..workspace.upper import drop_gitfile

    try:
        with file_lock(mount_lock_path(state_dir, fork), what="a mount", wait_s=0):
            now = read_record(record)
            if now is not None and now.get("pid") == data.get("pid"):
                drop_gitfile(os.path.join(os.path.dirname(str(data["lower"])), "upper"))
    except AvfsError:
        pass  # a mount being started (busy): the next check
