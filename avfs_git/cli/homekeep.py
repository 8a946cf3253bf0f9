"""The home a kept process (:func:`.callproc.keep`) keeps open from one push or fetch to
the next: :class:`KeptHome`.

A push or fetch opens the home and its vault (the vault's libgit2 repository, its op log's
SQLite database, the quota's files), reads what it needs, runs git, records the operation
and closes them all again (the databases' WALs written back, a sync each): ~3 ms of a
push's ~5.5 ms of avfs's own CPU in a kept process (load ~13), against git's ~17.
Kept open, the next call finds them ready. What a call must still read as it is now,
written by any other process between two calls, and how it does:

- the refs and packed refs: read from their files at each use (:mod:`..core.store.refs`,
  and libgit2, which reads a loose ref at each lookup and the packed refs again when
  their file changed);
- the vault's git config (a remote's URL, credentials stored in it, ``user.name``):
  libgit2 reads the file again when it has changed since its last read;
- the vault's avfs config (``config.json``): forgotten after every call
  (:meth:`.Vault.forget_config`), and so is its promisor remote, which the vault's
  handle reads from its git config once (whether it is lazy, where its missing blobs
  come from: :meth:`.Promisor.forget`);
- the forks' workspaces (their overlay databases, in the layers file system where it
  is on): the :data:`KEEP_WORKSPACES` used last stay open, the others are closed and
  forgotten after every call (:meth:`.Vault.close_workspaces`); a kept one is what a
  process of its own finds in the fork's state dir (each read there at every use: its
  base against the fork's ref, its entries, its merge state, the mount's records),
  and before each call its overlay database is checked to be the file its fork's state
  dir holds now (a fork deleted, or deleted and made again, by another process: closed
  and forgotten, the next call opens the one there now). A merge opened and closed its
  target's and its source's every call: ~2 ms to open, ~2-4 ms after the answer to
  close them (the last connection writes its WAL back, a sync);
- the settings (the git token among them), the identity (``GIT_AUTHOR_*``...) and the
  home's path: the home is kept only for a call whose own are equal, and only while the
  home's directory and its ``config.json`` are the ones it was opened on (a home deleted
  and made again, or its default identity changed, opens anew);
- a vault deleted, or deleted and made again under its name, or another vault's files
  moved into its directory: its handle is dropped before the next call
  (:meth:`.Home.drop_replaced`: its directory, or its op log's database, not the one it
  opened; a directory's inode number alone is not enough, ext4 gives a new directory the
  lowest free one, often the deleted vault's);
- a failed mount of the layers file system is tried again, as a fresh process would;
- locks: none is held from one call to the next (:meth:`holds`: the kept process checks
  every descriptor it has left, :func:`.callproc._clean`).

``tests/test_keptcall.py`` changes each of these through another process between two
calls of one kept process and requires the second call to see it (the kept workspaces:
``tests/test_keptws.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core.settings import Settings
    from ..core.store.identity import Identity
    from ..core.vaults.home import Home

Stamp = tuple[tuple[int, int], tuple[int, int, int] | None]
KEEP_WORKSPACES = 4  # a vault's workspaces kept open from one call to the next (the last used)


def _stamp(home: str) -> Stamp | None:
    """The home directory's (device, inode) and its ``config.json``'s (inode, size,
    mtime in ns); None when the home is not there."""
    try:
        st = os.stat(home)
    except OSError:
        return None
    try:
        cfg = os.stat(os.path.join(home, "config.json"))
        conf: tuple[int, int, int] | None = (cfg.st_ino, cfg.st_size, cfg.st_mtime_ns)
    except OSError:
        conf = None
    return (st.st_dev, st.st_ino), conf


class KeptHome:
    """One home kept open between the calls of a kept process (see the module's text)."""

    def __init__(self) -> None:
        self._home: Home | None = None
        self._key: tuple[str, Settings, Identity] | None = None
        self._stamp: Stamp | None = None
        self._root = ""  # the home's real path (what its descriptors are under)

    def open(self, path: str | None, settings: Settings) -> Home:
        """The home a call opens (``--home``, its settings): the kept one when the call's
        path, settings and identity are the kept one's and the home is the same directory
        with the same config, else a new one (the kept one closed)."""
        from ..core.store.identity import from_environ
        from ..mount.side import open_home

        where = os.path.abspath(path or settings.home)
        key = (where, settings, from_environ())
        stamp = _stamp(where)
        home = self._home
        if home is not None and stamp is not None and self._key == key and self._stamp == stamp:
            home.drop_replaced()
            for vault in home.open_vaults():  # (a fork deleted or made again meanwhile)
                vault.close_workspaces(keep=KEEP_WORKSPACES)
            return home
        self.close()
        home = open_home(path, settings=settings)
        self._home, self._key, self._stamp = home, key, stamp
        self._root = os.path.realpath(home.path)
        return home

    def release(self) -> None:
        """After a call: close the workspaces it opened but the :data:`KEEP_WORKSPACES`
        used last, and forget what each open vault read of its avfs config and of its
        promisor remote; a failed layers mount is tried again next time."""
        home = self._home
        if home is None:
            return
        for vault in home.open_vaults():
            # (the kept ones' files are checked before the next call, :meth:`open`: here
            # only the others closed, h-merge11)
            vault.close_workspaces(keep=KEEP_WORKSPACES, check=False)
            vault.forget_config()
            vault.store.promisor.forget()  # (read from the git config once per handle)
        home.layers_attempts.failed = None

    def close(self) -> None:
        """Close the kept home (its databases' WALs written back), if any."""
        home, self._home, self._key, self._stamp, self._root = self._home, None, None, None, ""
        if home is not None:
            home.close()

    def holds(self, fd: int, paths: Mapping[int, str] | None = None) -> bool:
        """Whether descriptor ``fd`` is one the kept home may hold between calls: a file
        under the home's directory with no lock but the ones an idle SQLite connection
        keeps (a shared lock on its database, the "DMS" byte 128 of its ``-shm``): never
        a lock of avfs's (``flock``), a write lock or a read transaction's (a shared lock
        on a database with no ``-shm`` open here: a rollback journal's). ``paths``: what
        each descriptor of this process names, read once by a caller that asks of them
        all (:func:`open_paths`; else each is read here, and every descriptor's for each
        database: 26 descriptors and ~100 ``readlink`` a served merge's check, h-merge7)."""
        from ..core.store.names import is_within

        if not self._root:
            return False
        try:
            path = paths[fd] if paths is not None and fd in paths else os.readlink(f"/proc/self/fd/{fd}")
            info = _fdinfo(fd)
        except OSError:
            return False
        if not is_within(path, self._root):
            return False
        for line in info.splitlines():
            if not line.startswith("lock:"):
                continue
            f = line.split()
            # lock:  1: POSIX  ADVISORY  READ  PID  MAJ:MIN:INODE  START  END
            if len(f) < 8 or f[2] != "POSIX" or f[4] != "READ":
                return False
            if path.endswith("-shm"):
                if f[-2:] != ["128", "128"]:
                    return False
            elif not (path + "-shm" in paths.values() if paths is not None else _open_here(path + "-shm")):
                # a shared lock on a database with a rollback journal: an open read
                # transaction's (an idle connection to one holds none), which keeps
                # every writer out; on a WAL database (its -shm open), the idle one's
                return False
        return True


def open_paths(fds: Iterable[int]) -> dict[int, str]:
    """What each of ``fds`` names (``/proc/self/fd``'s links; one closed meanwhile left
    out)."""
    out: dict[int, str] = {}
    for fd in fds:
        try:
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return out


def _fdinfo(fd: int) -> str:
    """``/proc/self/fdinfo/FD``'s text, read through the descriptor itself (an open, a read
    or two and a close: a text file object was nine system calls and a wrapper a
    descriptor, ~30 descriptors after every kept call; h-merge11)."""
    info = os.open(f"/proc/self/fdinfo/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(info, 1 << 16)]
        while len(chunks[-1]) == 1 << 16:
            chunks.append(os.read(info, 1 << 16))
    finally:
        os.close(info)
    return b"".join(chunks).decode("ascii", "replace")


def _open_here(path: str) -> bool:
    """Whether this process has ``path`` open."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == path:
                return True
        except OSError:
            pass
    return False
