"""What of the host's system the sandbox shows (:func:`.confine.argv`): its system
directories read-only, with what of ``/etc`` is secret shown empty, and the kernel's
machine-wide settings under the sandbox's fresh ``/proc`` read-only.

The secrets of ``/etc`` are those named (:data:`ETC_SECRETS`, :data:`ETC_SECRET_DIRS`) and,
since the thirty-third round (NAME=attack24), whatever there another user cannot read
(:func:`unreadable`): a root command is those files' owner, and read every one the list
did not name. The view is made once and kept (in the process and in the avfs home), and
checked before every sandbox against the stamp of every directory of ``/etc``
(:class:`View`; the thirty-fourth round, NAME=first9: a root-only file made later deeper
in ``/etc`` was shown by a process that kept its view)."""

from __future__ import annotations

import contextlib
import glob
import os
import stat

from ..core.records import dataclass

__all__ = [
    "ETC_SECRETS", "ETC_SECRET_DIRS", "PROC_HOST_WIDE", "SYSTEM_DIRS", "View",
    "keep_in", "kept_in", "system_args", "token", "unreadable", "view",
]  # fmt: skip

# kept read-only (those that exist; a symlink is recreated as a symlink)
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")
# in /etc: files shown empty, directories shown empty (globs)
ETC_SECRETS = (
    "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers",
    "/etc/ssh/*_key", "/etc/security/opasswd", "/etc/krb5.keytab", "/etc/ppp/*-secrets",
)  # fmt: skip
ETC_SECRET_DIRS = (
    "/etc/sudoers.d", "/etc/ssl/private", "/etc/NetworkManager/system-connections",
    "/etc/wireguard", "/etc/docker", "/etc/containers/auth.json",
)  # fmt: skip


def keep_in(directory: str | None) -> None:
    """Where this process keeps, between processes, what every sandbox needs made once:
    the view of ``/etc`` (:func:`system_args`) and the seccomp filter (:mod:`.seccomp`):
    the avfs home's ``run/`` (``<home>/run``, 0700), which no sandbox shows. None: nowhere
    (each process makes its own). Set by :func:`.execute.execute`, the mount's exec server
    and the resident CLI server (the caller's home)."""
    _where[:] = [] if directory is None else [directory]


def kept_in() -> str | None:
    """The directory of :func:`keep_in` (None: none)."""
    return _where[0] if _where else None


_where: list[str] = []


@dataclass(frozen=True, slots=True)
class View:
    """The host's system as every sandbox shows it (:func:`system_args`): ``args``, and the
    directories of ``/etc`` it was made from (and ``/``) with their stamp as the walk
    found them: each one's inode and change time (``ctime``: an entry made, removed or
    renamed in it, or its own mode or owner changed, moves it), so that any change below
    ``/etc`` that could make a file root-only, or show one again, is seen by one
    ``lstat`` of each directory (~150 here, ~0.3 ms), not a walk of every entry
    (~1,200: 3-20 ms). And ``files``, each regular file it shows in full, with its
    ``modes`` as the walk found them: a file's own mode changed in place (``chmod 600``
    of one every user read, its secret written in it after) moves no directory's ctime
    (the thirty-fourth round, NAME=attack26), so each is ``lstat``-ed too (~310 here,
    ~0.5 ms; its ctime is not compared: a write of its content, which shows nothing
    new, would make the view again)."""

    dirs: tuple[str, ...]
    stamp: tuple[int, ...]
    args: tuple[str, ...]
    keep: bool  # False: a directory changed as the walk read it (its next change may keep its ctime)
    files: tuple[str, ...] = ()
    modes: tuple[int, ...] = ()

    def current(self) -> bool:
        """Every directory's stamp and every shown file's mode as the walk found them."""
        return _stamp(self.dirs) == self.stamp and _modes(self.files) == self.modes


# the last view this process made or read (a forked process checks it as its parent would)
_last: list[View] = []
VIEW_FILE = "etc-view"
_FORMAT = 2
# a directory changed less than this before the walk read it may change again within the
# same tick of the kernel's coarse clock and keep its ctime (git's "racy" index entries):
# such a view serves its own call but is neither kept nor written
_RACY_NS = 1_000_000_000


def system_args() -> tuple[str, ...]:
    """The system directories and the masked secrets, as bubblewrap arguments. Made once
    and kept (in this process, and in :func:`kept_in`'s file for the next process), and
    checked before every sandbox against the stamp of every directory of ``/etc``: a
    root-only file made anywhere below ``/etc`` since, a directory made root-only, a masked
    file replaced or gone, each makes it again (the thirty-fourth round, NAME=first9:
    the view was kept while ``/etc``'s own entries stayed, and a command read a root-only
    file made later in a directory of it)."""
    return view().args


def view() -> View:
    """The current :class:`View` (see :func:`system_args`)."""
    for got in (*_last, _read()):
        if got is not None and got.keep and got.current():
            if not _last or _last[0] is not got:
                _last[:] = [got]
            return got
    made = _make()
    _last[:] = [made] if made.keep else []
    if made.keep:
        _write(made)
    return made


def token(*, fresh: bool = False) -> str:
    """What tells one view from another (:func:`.standby._key`): a sandbox made ready
    before ``/etc`` changed is not taken, even where the arguments are the same (a masked
    file replaced by a rename loses its mask in a sandbox made before). The view the last
    :func:`system_args` checked (the key's arguments are that view's), else (or
    ``fresh``) checked now."""
    v = _last[0] if _last and not fresh else view()
    return f"etc-view:{hash((v.stamp, v.modes))}" if v.keep else f"etc-view:racy:{id(v)}"


def _stamp(dirs: tuple[str, ...]) -> tuple[int, ...]:
    out: list[int] = []
    for d in dirs:
        try:
            st = os.lstat(d)
        except OSError:
            out += (-1, -1)
            continue
        out += (st.st_ino, st.st_ctime_ns)
    return tuple(out)


def _modes(files: tuple[str, ...]) -> tuple[int, ...]:
    out: list[int] = []
    for f in files:
        try:
            out.append(os.lstat(f).st_mode)
        except OSError:
            out.append(-1)
    return tuple(out)


def _make() -> View:
    import time

    t0 = time.time_ns()
    dirs: list[str] = ["/"]
    stamp = list(_stamp(("/",)))
    args: list[str] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    named: set[str] = set()
    for pattern in ETC_SECRETS:
        for f in sorted(glob.glob(pattern)):
            if os.path.isfile(f) and not os.path.islink(f):
                args += ["--ro-bind", "/dev/null", f]
                named.add(f)
    for d in ETC_SECRET_DIRS:
        if os.path.isdir(d) and not os.path.islink(d):
            args += ["--perms", "0755", "--tmpfs", d, "--remount-ro", d]
        elif os.path.isfile(d) and not os.path.islink(d):
            args += ["--ro-bind", "/dev/null", d]
    seen: list[tuple[str, int, int]] = []
    shown: list[tuple[str, int]] = []
    for path, is_dir in unreadable("/etc", skip=(*ETC_SECRET_DIRS, *named), seen=seen, shown=shown):
        args += (
            ["--perms", "0755", "--tmpfs", path, "--remount-ro", path]
            if is_dir
            else ["--ro-bind", "/dev/null", path]
        )
    for d, ino, ctime in seen:
        dirs.append(d)
        stamp += (ino, ctime)
    racy = any(c >= t0 - _RACY_NS for c in stamp[1::2])
    files = tuple(f for f, _ in shown)
    return View(tuple(dirs), tuple(stamp), tuple(args), not racy, files, tuple(m for _, m in shown))


def _read() -> View | None:
    """The view :func:`_write` left in :func:`kept_in` (None: none, or not one of this
    format and this module's code). The file is in the avfs home, which no sandbox shows: trusted as avfs's own
    records there are; it is used only where every directory's stamp still matches."""
    where = kept_in()
    if where is None or _last:
        return None
    import marshal

    try:
        with open(os.path.join(where, VIEW_FILE), "rb") as fh:
            got = marshal.load(fh)
        fmt, code, dirs, stamp, args, files, modes = got
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if (fmt, code) != (_FORMAT, _code()) or not all(
        isinstance(x, tuple) for x in (dirs, stamp, args, files, modes)
    ):
        return None
    return View(dirs, stamp, args, True, files, modes)


def _code() -> tuple[int, int]:
    """This module's file as it is on disk (size, mtime): a kept view made by other code
    (another list of named secrets) is not used."""
    try:
        st = os.stat(__file__)
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def _write(v: View) -> None:
    where = kept_in()
    if where is None:
        return
    import marshal

    try:
        os.makedirs(where, mode=0o700, exist_ok=True)
        path = os.path.join(where, VIEW_FILE)
        tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                marshal.dump((_FORMAT, _code(), v.dirs, v.stamp, v.args, v.files, v.modes), fh)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        pass  # not kept: the next process walks /etc itself


# how many entries of /etc :func:`unreadable` looks at, at most (a host's holds ~2,000)
ETC_WALK_MAX = 50_000


def unreadable(
    top: str,
    skip: tuple[str, ...] = (),
    seen: list[tuple[str, int, int]] | None = None,
    shown: list[tuple[str, int]] | None = None,
) -> list[tuple[str, bool]]:
    """What under ``top`` another user cannot read, as (path, is a directory): a regular
    file without the others' read bit, a directory without their read and search bits
    (nothing below it is looked at). A root command (uid 0, the owner of such files) read
    them all where they were not named in :data:`ETC_SECRETS` (the thirty-third round,
    NAME=attack24: a database's root password in ``/etc/mysql/debian.cnf``, an apt
    repository's credentials in ``/etc/apt/auth.conf.d/``, a cluster's ``admin.conf``);
    now the sandbox shows them empty, as a command of any other user finds them. No link
    is followed; ``skip`` (masked already) is not entered. ``seen``: each directory looked
    into, and each one found unreadable, is added to it with its inode and change time as
    they were before it was read (:class:`View`'s stamp); ``shown``: each regular file
    another user can read, with its mode."""
    out: list[tuple[str, bool]] = []
    todo, looked = [top], 0
    while todo and looked < ETC_WALK_MAX:
        d = todo.pop()
        if seen is not None:
            try:
                st = os.lstat(d)
            except OSError:
                continue
            seen.append((d, st.st_ino, st.st_ctime_ns))
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError:
            continue
        for e in entries:
            looked += 1
            if e.path in skip:
                continue
            try:
                mode = e.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode):
                if mode & 0o005 != 0o005:
                    out.append((e.path, True))
                    if seen is not None:  # (its own mode made readable again shows it)
                        st = e.stat(follow_symlinks=False)
                        seen.append((e.path, st.st_ino, st.st_ctime_ns))
                else:
                    todo.append(e.path)
            elif stat.S_ISREG(mode):
                if not mode & 0o004:
                    out.append((e.path, False))
                elif shown is not None:
                    shown.append((e.path, mode))
    return sorted(out)


# The kernel's machine-wide settings under a fresh /proc: bwrap covers them itself only
# when its own write check fails, and as root with CAP_DAC_OVERRIDE dropped that check says
# "already read-only" while the command, uid 0 with the file's own mode, can write them
# (`echo '|/fork/x' > /proc/sys/kernel/core_pattern` ran a fork's file as the host's root at
# the next crash). Shown from the host's /proc, read-only (`--ro-bind-try`: absent ones, as
# /proc/sysrq-trigger without CONFIG_MAGIC_SYSRQ, are skipped).
PROC_HOST_WIDE = (
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/irq",
    "/proc/bus",
    "/proc/fs",
    "/proc/scsi",
    "/proc/acpi",
)
