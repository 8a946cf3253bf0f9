"""The kept index of a lazy vault's default fork (mount/keptindex.py), made by a process of
its own once `vault clone --lazy` has answered (``python -m avfs_git.mount.keptmake``), so
that the first mount of the fresh clone patches it instead of making it.

The clone takes the lock that says it is being made (:func:`.keptindex.making`) before it
answers and hands it to this process (its descriptor, inherited), so a mount started the
moment the clone answers finds it taken and waits for the kept index rather than doing the
same work beside it (:func:`.keptindex.await_maker`). What is made here is what a mount
makes (mount/index.py), with no mount: the tree's sizes asked of the server in one request
(kept in the size cache, where the mount finds them), the entries with times 0 (a mount
writes its own), git's untracked cache made on a skeleton of the tree with the vault as
``GIT_DIR``. No blob is fetched but the tree's ``.gitignore`` files, which a mount fetches
anyway. A failure leaves nothing: the mount then makes its index as before.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import TYPE_CHECKING

from . import keptindex

if TYPE_CHECKING:
    from ..core.vaults.vault import Vault

TOKEN = "avfs-kept"  # the fsmonitor token of a kept index (a mount writes its own)


def make(vault: Vault, commit: str) -> bool:
    """Make and keep the index of ``commit``'s tree in lazy ``vault`` (the caller holds
    :func:`.keptindex.making`'s lock); True when one is kept. As a mount's settling does
    (fuse/settle.py), the sizes are asked on a thread of their own while the entries and
    the untracked cache are made with the sizes not known yet left 0, filled in after."""
    from . import untracked
    from .index import index_bytes, inode_of, sizes_of
    from .indexpatch import with_sizes

    store = vault.store
    promisor = store.promisor
    if promisor.remote() is None:
        return False
    tree = store.commit_tree(commit)
    state = vault.state_dir
    if keptindex.load(state, tree) is not None:
        return True
    asked = threading.Event()

    def ask() -> None:
        with promisor.asking():  # (the .gitignore files' sizes: asked apart, untracked.py)
            asked.set()
            try:
                store.ensure_sizes(tree, fetch=False)  # one request; never the blobs
            except Exception:
                pass  # (not sized: nothing is kept)

    sizes = threading.Thread(target=ask, name="avfs-kept-sizes", daemon=True)
    sizes.start()
    asked.wait()
    uid, gid = os.getuid(), os.getgid()
    known = promisor.size

    def stat_of(path: str, mode: int, oid: str) -> tuple[int, int, int, int, int, int]:
        return 0, 0, inode_of(path), uid, gid, n if (n := known(oid)) is not None else 0

    skeleton: list[tuple[str, str | None]] = []
    try:
        data = index_bytes(vault, commit, stat_of, TOKEN, skeleton=skeleton, sized=False)
        ext = untracked.extension(store, skeleton, data, vault.path, vault.path, None, scratch=state)
    finally:
        sizes.join()
        store.listed.drop()
    if ext is None or not promisor.sized(tree):
        return False  # (a server that cannot say sizes: a mount fetches them its own way)
    data = with_sizes(untracked.with_extension(data, ext), sizes_of(store))
    return keptindex.keep(state, tree, data)


# the maker's first statement, before its imports: the idle scheduling class (it runs only
# on a CPU nothing else wants), then the module's main
BOOT = (
    "import os\n"
    "try:\n"
    "    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
    "except (OSError, AttributeError):\n"
    "    os.nice(19)\n"
    "from avfs_git.mount.keptmake import main\n"
    "raise SystemExit(main())\n"
)


def spawn(home: str, vault: Vault, commit: str, env: dict[str, str]) -> int | None:
    """Start :func:`main` detached for ``commit`` (the default fork's tip) of ``vault`` in
    home ``home``, with environment ``env`` (the caller's: its settings), holding the lock
    that says its kept index is being made (taken here, before the caller answers; the
    child's pid written in it); its pid, or None (made already, being made, or no process
    could start).

    It runs in Linux's idle scheduling class: the mount started as the clone answers (a
    daemon's start, FUSE's handshake, overlayfs's stacking) is on the CPU first, and `avfs
    mount` + `ls` did not get slower, where the maker at normal priority took the CPU
    from it on a loaded machine (docs/benchmarks.md). A mount whose index then needs the
    kept one moves the maker back to the normal class (:func:`.keptindex.boost`)."""
    tree = vault.store.commit_tree(commit)
    if keptindex.load(vault.state_dir, tree) is not None:
        return None
    fd = keptindex.making(vault.state_dir, tree)
    if fd is None:
        return None
    cmd = [
        sys.executable,
        "-c",
        BOOT,
        "--home",
        home,
        "--vault",
        vault.name,
        "--commit",
        commit,
        "--lock-fd",
        "3",
    ]
    try:
        pid = os.posix_spawn(
            cmd[0],
            cmd,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, fd, 3),
            ],
            setsid=True,
        )
    except OSError:
        keptindex.made(vault.state_dir, tree, fd)
        return None
    try:
        os.ftruncate(fd, 0)  # (a killed maker's file may hold its pid)
        os.pwrite(fd, b"%d\n" % pid, 0)  # (for a mount that waits for it: keptindex.boost)
    finally:
        os.close(fd)  # (the child's copy holds the lock)
    return pid


def main(argv: list[str] | None = None) -> int:
    """``python -c BOOT --home H --vault V --commit C --lock-fd N`` (:data:`BOOT`)."""
    ap = argparse.ArgumentParser(prog="avfs_git.mount.keptmake")
    ap.add_argument("--home", required=True)
    ap.add_argument("--vault", required=True)
    ap.add_argument("--commit", required=True)
    ap.add_argument("--lock-fd", type=int, required=True)
    args = ap.parse_args(argv)
    from .side import open_home

    vault = open_home(args.home).vault(args.vault)
    tree = vault.store.commit_tree(args.commit)
    try:
        return 0 if make(vault, args.commit) else 1
    finally:
        keptindex.made(vault.state_dir, tree, args.lock_fd)
