"""What of the host's system the sandbox shows (:func:`.confine.argv`): its system
directories read-only, with what of ``/etc`` is secret shown empty, and the kernel's
machine-wide settings under the sandbox's fresh ``/proc`` read-only.

The secrets of ``/etc`` are those named (:data:`ETC_SECRETS`, :data:`ETC_SECRET_DIRS`) and,
since the thirty-third round (NAME=attack24), whatever there another user cannot read
(:func:`unreadable`): a root command is those files' owner, and read every one the list
did not name."""

from __future__ import annotations

import functools
import glob
import os
import stat

__all__ = ["ETC_SECRETS", "ETC_SECRET_DIRS", "PROC_HOST_WIDE", "SYSTEM_DIRS", "system_args", "unreadable"]

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


def system_args() -> tuple[str, ...]:
    """The system directories and the masked secrets (looked up once per process and state
    of ``/etc``'s own entries: a mount daemon serves many commands, and the layout of
    /etc seldom changes under it)."""
    try:
        st = os.stat("/etc")
    except OSError:
        return _system_at((0, 0))
    key = (st.st_ino, st.st_mtime_ns)
    args = _system_at(key)
    if not _still_there(args):
        # a masked file or directory deeper in /etc went since (its own directory changed,
        # not /etc's): bubblewrap cannot make its mount point in a read-only /etc, and every
        # command of this process failed (the round's review: a cluster's dropped config)
        _system_at.cache_clear()
        args = _system_at(key)
    return args


def _still_there(args: tuple[str, ...]) -> bool:
    """Whether every path ``args`` shows empty is still there, of the same kind."""
    for i, arg in enumerate(args):
        if arg == "--ro-bind" and args[i + 1] == "/dev/null":
            path, want = args[i + 2], stat.S_ISREG
        elif arg == "--tmpfs":
            path, want = args[i + 1], stat.S_ISDIR
        else:
            continue
        try:
            if not want(os.lstat(path).st_mode):
                return False
        except OSError:
            return False
    return True


@functools.lru_cache(maxsize=2)
def _system_at(_etc: tuple[int, int]) -> tuple[str, ...]:
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
    for path, is_dir in unreadable("/etc", skip=(*ETC_SECRET_DIRS, *named)):
        args += (
            ["--perms", "0755", "--tmpfs", path, "--remount-ro", path]
            if is_dir
            else ["--ro-bind", "/dev/null", path]
        )
    return tuple(args)


# how many entries of /etc :func:`unreadable` looks at, at most (a host's holds ~2,000)
ETC_WALK_MAX = 50_000


def unreadable(top: str, skip: tuple[str, ...] = ()) -> list[tuple[str, bool]]:
    """What under ``top`` another user cannot read, as (path, is a directory): a regular
    file without the others' read bit, a directory without their read and search bits
    (nothing below it is looked at). A root command (uid 0, the owner of such files) read
    them all where they were not named in :data:`ETC_SECRETS` (the thirty-third round,
    NAME=attack24: a database's root password in ``/etc/mysql/debian.cnf``, an apt
    repository's credentials in ``/etc/apt/auth.conf.d/``, a cluster's ``admin.conf``);
    now the sandbox shows them empty, as a command of any other user finds them. No link
    is followed; ``skip`` (masked already) is not entered."""
    out: list[tuple[str, bool]] = []
    todo, seen = [top], 0
    while todo and seen < ETC_WALK_MAX:
        d = todo.pop()
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError:
            continue
        for e in entries:
            seen += 1
            if e.path in skip:
                continue
            try:
                mode = e.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode):
                if mode & 0o005 != 0o005:
                    out.append((e.path, True))
                else:
                    todo.append(e.path)
            elif stat.S_ISREG(mode) and not mode & 0o004:
                out.append((e.path, False))
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
