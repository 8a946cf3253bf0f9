"""The mount daemon: ``python -m avfs_git.fuse.daemon --home H --vault V --fork F
--mountpoint DIR [--revision COMMIT] [--ready-fd N] [--foreground]``.

Started by :func:`avfs_git.ops.mounts.mount`, which waits on ``--ready-fd`` for the byte
``R`` written from the FUSE ``init`` callback (after the kernel handshake). Runs libfuse 3
through mfusepy, multi-threaded (one slow handler must not stall every caller), with
``auto_unmount`` so that even ``kill -9`` leaves no dead mount point behind.

Kernel caching: attributes and entries are cached for 60 s (metadata is the expensive part
of a FUSE file system: an uncached stat is ~20x native) and negative lookups not at all; a
watcher thread invalidates what other processes change (see ops.WorkspaceFS._watch), so
CLI changes show in the mount within a poll interval (20 ms).

Teardown order (each step after the previous has finished): the request loop ends (unmount,
SIGTERM/SIGINT); the watcher is stopped with no ``fuse_invalidate_path`` call left inside
libfuse (ops.FastFUSE runs libfuse's main steps itself to get this moment: libfuse's own
``fuse_main_real`` frees its state before it tells the file system); libfuse unmounts and
frees its state; index writers are waited for; the exec server, the worktree link and the
registry entry go.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
import time

ATTR_TIMEOUT = 60.0
ENTRY_TIMEOUT = 60.0
INDEX_JOIN_S = 5.0  # an index write in flight at unmount (mounts.STOP_TIMEOUT_S bounds the whole)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="avfs-mount-daemon")
    ap.add_argument("--home", required=True)
    ap.add_argument("--vault", required=True)
    ap.add_argument("--fork", required=True)
    ap.add_argument("--mountpoint", required=True)
    ap.add_argument("--revision")
    ap.add_argument("--ready-fd", type=int)
    ap.add_argument("--foreground", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    import pygit2  # noqa: F401 - the daemon is long-lived: libgit2 reads faster than pure Python

    from ..core.home import Home
    from ..ops.mounts import mount_key, registry_path, write_registry
    from .ops import FastFUSE, WorkspaceFS, fuse_options

    home = Home(args.home)
    vault = home.vault(args.vault)
    read_only = args.revision is not None
    tmp_state: str | None = None
    if read_only:
        tmp_state = tempfile.mkdtemp(prefix="avfs-rev-")
        ws = vault.revision_view(args.fork, args.revision, tmp_state)
    else:
        ws = vault.workspace(args.fork)
    key = mount_key(args.fork, args.revision)
    reg = registry_path(vault, key)
    record = {
        "vault": vault.name,
        "fork": args.fork,
        "mountpoint": args.mountpoint,
        "pid": os.getpid(),
        "state": "mounting",
        "read_only": read_only,
        "revision": args.revision,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_registry(reg, record)

    server = None
    if not read_only:
        # proxy exec requests from the CLI's fast path run here, warm (avfs_git/proxy/server.py)
        from ..proxy.server import ExecServer

        server = ExecServer(home, vault, args.fork)
        record["exec_socket"] = server.name
        exec_file = reg[: -len(".json")] + ".exec"

    def ready() -> None:
        record["state"] = "mounted"
        write_registry(reg, record)
        if server is not None:
            server.start()
            with open(exec_file + ".tmp", "w") as fh:
                fh.write(f"{server.name}\n{os.getpid()}\n")  # the client checks the peer is us
            os.replace(exec_file + ".tmp", exec_file)
        if args.ready_fd is not None:
            try:
                os.write(args.ready_fd, b"R")
                os.close(args.ready_fd)
            except OSError:
                pass

    # the mount is a linked worktree of the vault: git works inside it
    from ..core import refs, worktree

    head = args.revision if read_only else refs.fork_ref(args.fork)
    wt = worktree.register(
        vault, key, args.mountpoint, head, ws.base, journal_db=None if read_only else ws.overlay.db_path
    )
    gitfile = f"gitdir: {wt}\n".encode()

    def write_index() -> bool:
        # the index git starts from: the base tree with the stat data the mount reports,
        # so a first `git status` reads no file. A fork's: written under avfs's index lock
        # and left alone when whoever moved the base already wrote it (core/worktree.py)
        if read_only:
            return worktree.write_index(vault, wt, ws.base, ops.index_stat, None)
        return worktree.sync_index(ws, wt, os.getuid(), os.getgid())

    def on_view(view: tuple[str | None, str | None], moved: bool) -> None:
        # tell a process that moved the base that the mount shows the new view now (it
        # waits for this before it returns: core/worktree.py), then see to the index
        worktree.acknowledge(wt, view)
        if moved:
            refresh_index()

    # index writers still running when the mount goes are waited for before the worktree
    # they write into is unregistered
    closing = threading.Event()
    index_threads: list[threading.Thread] = []

    def refresh_index() -> None:
        # the base moved under the mount (by another process: it wrote the index already,
        # unless it was a push or a commit made elsewhere): in the background
        def run() -> None:
            try:
                if closing.is_set():
                    return  # unmounting: the worktree goes away
                if not write_index():
                    logging.getLogger("avfs.fuse").warning("index.lock stayed taken: index not refreshed")
            except Exception:
                logging.getLogger("avfs.fuse").exception("writing the worktree index")

        index_threads[:] = [t for t in index_threads if t.is_alive()]
        t = threading.Thread(target=run, name="avfs-index", daemon=True)
        index_threads.append(t)
        t.start()

    def ready_and_index() -> None:
        ready()

    # SIGTERM: unmount cleanly (libfuse's own handlers end the loop; mfusepy then raises)
    # not SIG_IGN: an ignored signal stays ignored across exec, in every command run here
    signal.signal(signal.SIGHUP, lambda signum, frame: None)
    wake_fd = None if read_only else worktree.open_wake(wt)
    ops = WorkspaceFS(
        ws, read_only=read_only, on_ready=ready_and_index, gitfile=gitfile, on_view=on_view, wake_fd=wake_fd
    )
    # before the mount is ready: a `git status` run against read-tree's index (zeroed stat
    # data) would read every file through FUSE once (minutes at 100k files)
    try:
        write_index()
    except Exception:
        logging.getLogger("avfs.fuse").exception("writing the worktree index")
    code = 0
    try:
        FastFUSE(
            ops,
            args.mountpoint,
            foreground=True,
            nothreads=False,
            auto_unmount=True,
            fsname=f"avfs:{vault.name}:{key}",
            subtype="avfs",
            # kernel caching: 60 s + the watcher's invalidations, or forever when read-only
            **fuse_options(read_only),
        )
    except RuntimeError as exc:
        # a SIGTERM-ed loop ends this way too; anything before readiness is a failure
        if record["state"] != "mounted":
            print(f"avfs mount daemon: {exc}", file=sys.stderr)
            code = 1
    finally:
        # FUSE's loop is over and the watcher stopped (FastFUSE): nothing starts new writers
        closing.set()
        for t in index_threads:
            t.join(INDEX_JOIN_S)
        if server is not None:
            server.close()
            try:
                os.unlink(exec_file)
            except FileNotFoundError:
                pass
        if wake_fd is not None:
            os.close(wake_fd)
        worktree.unregister(wt)
        try:
            os.unlink(reg)
        except FileNotFoundError:
            pass
        if tmp_state is not None:
            import shutil

            shutil.rmtree(tmp_state, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
