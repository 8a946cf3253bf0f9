"""What a vault uses of its quota, and how it is measured and shared between processes.

:class:`QuotaUsage` is the count (git objects on disk, each fork's overlay, the caches and
worktree git dirs; with a kernel-enforced quota, what the vault's qgroup holds). The
numbers behind it are measured on disk (:func:`tree_bytes`) and published in
``<vault>/avfs/usage/``: one small file per fork's totals, replaced whole
(:func:`publish`), or per signal, changed in place (:func:`signal`), and a counter, ``usage/gen``, one more per publication (:func:`bump`),
which every process's tracker (:class:`.quota.QuotaTracker`) maps in memory to know when
to read the files again. A pack written by any process is such a signal (the store's
``packwriter.FINISH_HOOKS``).
"""

from __future__ import annotations

import os
import struct
import threading
import time

from ..records import dataclass
from ..store import packwriter

GEN = "gen"  # a counter, one more per publication (see publish)
GEN_FMT = struct.Struct("<Q")


@dataclass(frozen=True, slots=True)
class ForkUsage:
    fork: str
    overlay_bytes: int  # bytes of the fork's uncheckpointed (materialized) files
    overlay_files: int  # number of those files
    layered: bool = False  # its state is in the vault's qgroup (counted in layers_bytes)


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """A vault's use of its quota (:meth:`.vault.Vault.quota_usage`)."""

    vault: str
    quota_bytes: int | None  # None: no limit
    quota_files: int | None
    objects_bytes: int  # git objects on disk: packs (.pack, .idx, ...) and loose objects
    forks: tuple[ForkUsage, ...]
    # with a kernel-enforced quota: what the vault's qgroup counts in the layers file system
    # (every layered fork's whole state: overlay files, a mount's upper layer, shared once)
    layers_bytes: int | None = None
    # what else a confined command can fill: the vault's caches (<vault>/avfs/caches/*,
    # read-write in the sandbox) and its mounts' worktree git dirs (<vault>/worktrees/*, and
    # git's state taken out of them after a run: <vault>/avfs/gitstate/*)
    caches_bytes: int = 0
    git_dirs_bytes: int = 0

    @property
    def overlay_bytes(self) -> int:
        return sum(f.overlay_bytes for f in self.forks)

    @property
    def used_bytes(self) -> int:
        other = self.objects_bytes + self.caches_bytes + self.git_dirs_bytes
        if self.layers_bytes is None or not any(f.layered for f in self.forks):
            return other + self.overlay_bytes
        plain = sum(f.overlay_bytes for f in self.forks if not f.layered)
        layered = sum(f.overlay_bytes for f in self.forks if f.layered)
        return other + plain + max(layered, self.layers_bytes)

    @property
    def used_files(self) -> int:
        return sum(f.overlay_files for f in self.forks)

    @property
    def over(self) -> list[str]:
        """The limits the vault is past ("bytes", "files")."""
        out = []
        if self.quota_bytes is not None and self.used_bytes > self.quota_bytes:
            out.append("bytes")
        if self.quota_files is not None and self.used_files > self.quota_files:
            out.append("files")
        return out


def tree_bytes(path: str) -> int:
    """Bytes of the files under directory ``path`` (sizes; symlinks not followed; 0 when
    it is missing)."""
    total = 0
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        with it:
            for e in it:
                try:
                    if not e.is_dir(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
                    elif len(os.fsencode(e.path)) < _DEEP:
                        stack.append(e.path)
                    else:
                        total += _deep_bytes(d, e.name)
                except FileNotFoundError:
                    pass
    return total


# a directory whose path is this long is counted from its parent's descriptor: what is
# below it may be past PATH_MAX (a confined command can make such a tree in a worktree's
# git dir, one directory at a time; found in the eighteenth round, NAME=attack9: every
# later exec and `avfs quota show` of the vault failed, ENAMETOOLONG)
_DEEP = 3072


def _deep_bytes(parent: str, name: str) -> int:
    """Bytes of the files under ``parent/name``, however deep (GNU ``du``, which walks
    by descriptors, run in ``parent``; its directories' own sizes count too)."""
    import subprocess

    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        out = subprocess.run(
            ["du", "-s", "-b", "-P", "--", name],
            cwd=f"/proc/self/fd/{fd}",
            pass_fds=(fd,),
            capture_output=True,
            check=False,
        ).stdout
    finally:
        os.close(fd)
    head = out.split(b"\t", 1)[0]
    return int(head) if head.isdigit() else 0


def read_small(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 256)
    except OSError:
        return None
    finally:
        os.close(fd)


def size_of(e: os.DirEntry[str]) -> int:
    try:
        return e.stat(follow_symlinks=False).st_size
    except FileNotFoundError:
        return 0


def publish(usage_dir: str, name: str, text: str) -> None:
    """Replace ``usage/<name>`` with ``text``, then count one more in ``usage/gen``.

    Readers map ``gen`` in memory and read the directory again only when its counter
    changed (a counter, unlike a directory's mtime from the kernel's coarse clock, cannot
    miss a change made within the same tick; and reading it costs no system call).
    """
    tmp = os.path.join(usage_dir, f".{name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(usage_dir, name))
    bump(os.path.join(usage_dir, GEN))


def signal(usage_dir: str, name: str) -> None:
    """Change ``usage/<name>`` (a signal: readers compare its bytes with what they last
    read, nothing parses it), then count one more in ``usage/gen``.

    Written in place, not replaced as :func:`publish` does: ext4 (``auto_da_alloc``) writes
    a file's data out when a rename replaces another file with it, and every pack written
    (a checkpoint, a fork of a changed workspace) signals: 7-30 ms a call on a busy disk
    against ~30 µs for this. A reader may see a torn value; it differs from the old one as
    the whole new one does (the objects are stale either way), and the new one comes with
    the counter.
    """
    fd = os.open(os.path.join(usage_dir, name), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.pwrite(fd, b"%020d %10d\n" % (time.time_ns(), os.getpid()), 0)
    finally:
        os.close(fd)
    bump(os.path.join(usage_dir, GEN))


def bump(gen_path: str) -> None:
    import fcntl

    fd = os.open(gen_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, GEN_FMT.size, 0)
        n = GEN_FMT.unpack(raw)[0] if len(raw) == GEN_FMT.size else 0
        os.pwrite(fd, GEN_FMT.pack(n + 1), 0)
    finally:
        os.close(fd)  # drops the lock


def _pack_written(pack_dir: str) -> None:
    """PackWriter.finish's hook: tell every process' QuotaTracker of this vault that the
    objects grew (they rescan on their next check)."""
    usage = os.path.join(os.path.dirname(os.path.dirname(pack_dir)), "avfs", "usage")
    if not os.path.isdir(usage):
        return  # not set up yet: the first check scans the objects anyway
    try:
        signal(usage, "objects")
    except OSError:
        pass


packwriter.FINISH_HOOKS.append(_pack_written)
