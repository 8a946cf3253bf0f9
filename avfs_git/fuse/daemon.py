"""The mount daemon: ``python -m avfs_git.fuse.daemon --home H --vault V --fork F
--mountpoint DIR [--revision COMMIT] [--backend fuse|overlay] [--ready-fd N] [--foreground]``.

Started by :func:`avfs_git.ops.mounts.mount`, which waits on ``--ready-fd`` for ``R``, written
once the mount serves (``O``: overlayfs refused to stack, the caller may fall back). Runs
libfuse 3 through mfusepy, multi-threaded (one slow handler must not stall every caller),
with ``auto_unmount`` so that even ``kill -9`` leaves no dead FUSE mount behind.

Backends (docs/fuse.md):

- ``fuse``: the writable workspace view at the mount point. Attributes and entries are
  cached for 60 s and negative lookups not at all; a watcher thread invalidates what other
  processes change (invalidate.py). git's fsmonitor hook is answered from the
  workspace's journal (mount/journalhook.py).
- ``overlay``: the read-only view of the fork's lower layer (base + the overlay's entries)
  at ``<ws>/lower``, cached by the kernel for good (ops.fuse_options); from FUSE's ``init``
  a thread stacks kernel overlayfs (``<ws>/upper``, ``<ws>/work``) at the mount point
  (stacking.py), then watches the mount table: when the overlay goes (``umount`` by hand),
  the lower goes too and the daemon ends. The worktree's ``.git`` is pinned immutable in the upper layer
  (a lazy fork's once its git index is written: settle.py).
  git's fsmonitor hook is answered from the kernel's record of the upper layer's changes
  (core/workspace/upperwatch.py).
- a revision (``--revision``): the read-only view of a commit, cached for good.

A lazy fork's mount (any backend) serves before its files' sizes and its git index exist,
and makes them right after (settle.py).

Teardown order (each step after the previous has finished): the request loop ends (unmount,
SIGTERM/SIGINT); the watcher is stopped with no ``fuse_invalidate_path`` call left inside
libfuse (libfuse.FastFUSE runs libfuse's main steps itself to get this moment: libfuse's own
``fuse_main_real`` frees its state before it tells the file system); libfuse unmounts and
frees its state; an overlay still stacked on it is detached; index writers are waited for;
the exec server, the worktree link and the registry entry go.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from types import SimpleNamespace
from typing import Any

from .daemonargs import arguments
from .mountindex import MountIndex
from .stacking import (
    _escape,
    _forget,
    _list_merged,
    _lower_kind,
    _pin_gitfile,
    _start_upper_watch,
    _tune_layers,
    _upper_on,
    _watch_unmount,
    list_root,
    mount_overlay,
    protect_read_only,
    unprotect,
)

INDEX_JOIN_S = 5.0  # an index write in flight at unmount (mounts.STOP_TIMEOUT_S bounds the whole)


def main(argv: list[str] | None = None) -> int:
    """The daemon: its arguments, one :class:`Mount` set up, served, torn down (1: never ready)."""
    args = arguments(argv)
    if args.ready_fd is not None and not args.foreground:
        _detach(args)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .libs import name_process, no_core_dumps, preset

    core_dumps = no_core_dumps()
    name_process()  # what says it is a mount daemon, whatever its command line
    from ..proxy.reaping import become_reaper

    become_reaper()  # its sandboxes' first processes: collected here (proxy/reaping.py)
    preset(os.environ)  # libfuse and libc by their sonames, before mfusepy loads (fuse/ops.py)
    # no libgit2 here (~90-110 ms of CPU before the mount could answer): what needs it imports
    # it, objects read as fast without it (docs/benchmarks.md, "The cold CLI's imports and the
    # mount daemon's start"); a lazy fork's mount loads it on its settle thread, after git ran
    mount = Mount(args, core_dumps)  # the workspace, its layers, the registry record
    mount.link_worktree()  # the mount a linked worktree of the vault; git's fsmonitor answers
    _say(args.ready_fd, b"L", last=False)  # linked (ops/daemonstart.py LINKED): see proxy/ahead.py
    return mount.serve()  # the index, libfuse's loop; then the teardown


def _detach(args: SimpleNamespace) -> None:
    """What a daemon started with exec makes itself before it opens anything, as a forked
    one is made (fuse/forked.py): its working directory ``/``, where its starter's (a mount,
    maybe) would stay busy for as long as it serves (that mount's unmount refused), and no
    descriptor open but 0-2 and its readiness pipe (what the starter left inheritable: a
    pipe whose reader waited for this daemon's end, another mount's file held open)."""
    args.home, args.mountpoint = os.path.abspath(args.home), os.path.abspath(args.mountpoint)
    os.chdir("/")
    keep = args.ready_fd
    if keep > 2:
        os.closerange(3, keep)
        os.closerange(keep + 1, 1 << 20)


class Mount(MountIndex):
    """One mount's life in its daemon: set up (:meth:`__init__` in its steps, :meth:`link_worktree`),
    served (:meth:`serve`: libfuse's loop; :meth:`ready` when the kernel's handshake is done,
    :meth:`stack` and :meth:`announce`), torn down (:meth:`close`, in the order the module
    docstring gives)."""

    def __init__(self, args: SimpleNamespace, core_dumps: bool) -> None:
        from ..core.settings import Settings
        from ..core.vaults.home import Home
        from ..mount.side import MOUNT_SIDE
        from ..policy.pathsource import POLICY_PATHS
        from .warm import Warm

        self.args = args
        # the daemon's entry is a front end: its settings are its environment's (ops/mounts.py
        # starts it with the home's $AVFS_LAYERS and $AVFS_FUSE_TRACE)
        self.home = Home(
            args.home, mounts=MOUNT_SIDE, settings=Settings.from_environ(None, args.home), paths=POLICY_PATHS
        )
        self.vault = self.home.vault(args.vault)
        self.read_only = args.revision is not None
        self.overlay = args.backend == "overlay" and not self.read_only
        self.open_views()  # the workspace, what FUSE serves of it, and where
        self.warm = Warm(self.fuse_at)  # an overlay's lower layer, walked once it is ready (fuse/warm.py)
        if not self.home.settings.mount_walk:
            # no walk ($AVFS_MOUNT_WALK=off): the walk is O(tree) of this daemon's CPU on every
            # mount (10k files ~0.45 s; a later `find`'s cold listings cost as much without it,
            # in its wall); nothing pauses or starts it now
            self.warm.close()
        self.register(core_dumps)  # the registry record: "mounting"
        self.exec_server()  # proxy exec served warm by this daemon (a fork's mount)
        # index writers running when the mount goes: waited for before their worktree goes
        self.closing = threading.Event()
        self.index_threads: list[threading.Thread] = []
        self.hook_server: Any = None
        self.wake_fd: int | None = None
        self.ops: Any = None
        self.idle: Any = None  # a mount kept warm: its idle timer (started when announced)
        self.filler: Any = None  # a lazy fork's background prefetch (ops/prefetching.py)
        self.settle = _settle(self) if self.vault.lazy else None  # sizes and index after ready
        self.walk_after_call = False  # an overlay's walk of its lower layer (fuse/warm.py), by _after_call
        self.list_after_call: Any = None  # the merged directories' listing, by _after_call

    def open_views(self) -> None:
        """The workspace (a fork's, or a revision's in a temporary state dir), what FUSE
        serves of it (for the overlay backend, the lower layer only) and where (the mount
        point, or the overlay's ``lower`` directory)."""
        from ..ops.mounts import detach

        args, vault = self.args, self.vault
        self.tmp_state: str | None = None
        if self.read_only:
            import tempfile  # (a revision's only: with random, ~3 ms of every daemon's start)

            self.tmp_state = tempfile.mkdtemp(prefix="avfs-rev-")
            ws = vault.revision_view(args.fork, args.revision, self.tmp_state)
        else:
            ws = vault.workspace(args.fork)
        self.ws = ws
        self.served = ws  # what FUSE serves: for the overlay backend, the lower layer only
        self.fuse_at = args.mountpoint
        self.layers: dict[str, str] = {}
        if self.overlay:
            from ..core.workspace.workspace import Workspace

            self.served = Workspace(vault, args.fork, vault.ws_dir(args.fork))
            self.served.overlay.with_upper = False
            self.layers = {name: os.path.join(ws.state_dir, name) for name in ("lower", "upper", "work")}
            self.fuse_at = self.layers["lower"]
            detach(self.fuse_at)  # a killed daemon's (dead: ENOTCONN, before anything looks at it)
            for d in self.layers.values():
                os.makedirs(d, exist_ok=True)
            # the upper layer is a host directory holding what the sandbox wrote, modes kept: a
            # setuid copy made there (nosuid only on the mount) is reachable by no other user
            os.chmod(ws.state_dir, 0o700)
            _tune_layers(vault.home_dir, self.layers)
        elif not self.read_only:
            ws.live_dir()  # an upper layer an overlay mount left: folded into the entries
            # nested repositories' files are host files in it, modes kept (fuse/nested.py):
            # as the overlay's upper layer above, reachable by no other user
            os.chmod(ws.state_dir, 0o700)

    def register(self, core_dumps: bool) -> None:
        """The mount's registry record, written with the state "mounting"."""
        from ..core.vaults.registry import mount_key
        from ..core.vaults.registry import write_record as write_registry
        from ..ops.mounts import registry_path

        args, vault, overlay = self.args, self.vault, self.overlay
        self.key = mount_key(args.fork, args.revision)
        self.reg = registry_path(vault, self.key)
        self.record: dict[str, Any] = {
            "vault": vault.name,
            "fork": args.fork,
            "mountpoint": args.mountpoint,
            "pid": os.getpid(),
            "pid_ns": _pid_ns(),  # (its pid means something in this namespace alone)
            # the mount's owner data lives here alone (never in the worktree's git dir, which a
            # confined command can write): what mount/worktree.py writes the index with
            "uid": os.getuid(),
            "gid": os.getgid(),
            "state": "mounting",
            "read_only": self.read_only,
            "revision": args.revision,
            "backend": "overlay" if overlay else "fuse",
            "lower": self.layers.get("lower"),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "core_dumps": core_dumps,
            "upper_on": _upper_on(vault.home_dir, self.layers["upper"]) if overlay else None,
        }
        if args.idle_timeout is not None and not self.read_only:
            self.record.update(kept_warm=True, idle_timeout_s=args.idle_timeout, mounted_by="proxy exec")
        write_registry(self.reg, self.record)

    def exec_server(self) -> None:
        """A fork's mount serves ``proxy exec`` requests from the CLI's fast path here, warm
        (avfs_git/proxy/server.py); started when the mount is announced."""
        self.server: Any = None
        self.exec_file = ""
        self.real_mountpoint = ""
        if self.read_only:
            return
        from ..core.vaults import registry
        from ..proxy.server import ExecServer

        self.server = ExecServer(self.home, self.vault, self.args.fork)
        self.record["exec_socket"] = self.server.name
        self.exec_file = registry.exec_path(self.reg)
        # resolved now: once mounted, a lookup of the mount point is a request to this
        # process, which announce() (on the FUSE thread for the pure-FUSE backend) would wait on
        self.real_mountpoint = os.path.realpath(self.args.mountpoint)

    def link_worktree(self) -> None:
        """The mount is a linked worktree of the vault (git works inside it); git's fsmonitor
        hook is answered from the workspace's journal (pure FUSE) or the kernel's record of
        the upper layer's changes (overlay)."""
        from ..core.store import refs
        from ..mount.journalhook import start_journal_hook
        from ..mount.worktree import register

        args, ws = self.args, self.ws
        head = args.revision if self.read_only else refs.fork_ref(args.fork)
        if not self.read_only:
            from ..mount.gitkeep import keep_leftover
            from ..mount.ownfiles import files_dir, worktree_dir

            # a killed daemon's worktree (nothing unmounted it): git's state there kept as an
            # unmount keeps it, brought back below (register would remove it)
            keep_leftover(ws, worktree_dir(self.vault, self.key), files_dir(self.vault, self.key))
            # the commit the mount's lower layer shows, kept from git's gc in the mount while
            # it lives (core/store/heldref.py: the held base ref; unregister lets it go)
            ws.hold_base(mounted=True)
        self.made = made = register(
            self.vault,
            self.key,
            args.mountpoint,
            head,
            # no `git read-tree` ahead: the index is written before the mount answers
            # (first_index, which falls back on it), a lazy fork's once it answers (settle.py)
            None,
            backend="overlay" if self.overlay else "fuse",
            fsmonitor=not self.read_only,
        )
        self.wt, self.own = made.git_dir, made.files  # git's dir, and the mount's own (out of the sandbox)
        self.record["fsmonitor_hook"] = made.hook  # written when the mount is announced
        self.gitfile = f"gitdir: {self.wt}\n".encode()
        self.changelog: Any = None
        if not self.read_only:
            self.changelog = _start_changelog(ws.state_dir)
        if not self.read_only and not self.overlay:
            # git's fsmonitor hook is answered from the workspace's journal, where every change
            # the mount serves is written before the call that made it returns
            self.hook_server = start_journal_hook(ws, self.own)
        if self.overlay:
            from ..core.workspace.upper import drop_origins, tidy_for_mount

            upper, served = self.layers["upper"], self.served
            drop_origins(upper)  # the last mount's lower inodes are gone
            tidy_for_mount(upper, lambda p: _lower_kind(ws, served, p), lambda p: _forget(ws, served, p))
            _pin_gitfile(upper, None if self.settle else self.gitfile)  # a lazy fork's: settle.py
            # git's fsmonitor hook is answered from the kernel's record of the upper layer's
            # changes: every directory there is watched before the overlay is stacked on it
            self.hook_server = _start_upper_watch(
                ws, served, upper, self.own, self.warm.pause, self.changelog
            )
        if not self.read_only:
            from ..mount.gitkeep import bring_back

            # git's own state the last unmount kept (its index...); an index kept for the
            # commit a checkpoint made while unmounted moved from: patched at its first write
            self.patch_first = bring_back(ws, made, journal=not self.overlay).patch

    def serve(self) -> int:
        """The git index written, libfuse's loop run until the mount goes, then :meth:`close`."""
        from ..mount.live import open_wake
        from .libfuse import FastFUSE
        from .ops import WorkspaceFS, fuse_options

        # SIGTERM: unmount cleanly (libfuse's own handlers end the loop; mfusepy then raises)
        # not SIG_IGN: an ignored signal stays ignored across exec, in every command run here
        signal.signal(signal.SIGHUP, lambda signum, frame: None)
        read_only, overlay = self.read_only, self.overlay
        self.wake_fd = None if read_only or overlay else open_wake(self.own)
        self.ops = WorkspaceFS(
            self.served,
            read_only=read_only or overlay,
            on_ready=self.ready,
            gitfile=self.gitfile,
            on_view=None if overlay else self.on_view,
            wake_fd=self.wake_fd,
        )
        self.ops.count_calls = bool(self.record.get("kept_warm"))  # its use: the calls served
        self.ops.lower = overlay  # (an overlay's lower layer: read by overlayfs, not by a person)
        self.ops.walk = self.warm if overlay else None  # stands aside for others' calls (warm.py)
        # before it is ready: git on read-tree's index (zeroed stat data) reads every file once
        self.ops.git_gate = self.settle  # a lazy fork's: written once it answers (settle.py)
        self.ops.settling = self.settle  # which waits while others use the mount (settle.py)
        if not overlay and self.hook_server is not None:  # a merge asks which files it holds open
            self.hook_server.answerer.writers = self.ops.open_writers  # (mount/journalhook.py)
        # a mount a proxy exec call made: its index once the overlay is stacked, before the R,
        # while the call's sandbox is set up on the stacked overlay (proxy/ahead.py)
        self.index_at_stack = overlay and self.settle is None and bool(self.record.get("kept_warm"))
        if self.settle is None and not self.index_at_stack:
            self.first_index()
        code = 0
        try:
            FastFUSE(
                self.ops,
                self.fuse_at,
                foreground=True,
                nothreads=False,
                # not for an overlay's lower layer: libfuse's helper cannot unmount it while the
                # overlay uses it and then lingers holding the FUSE connection, so requests there
                # hang instead of failing; a killed daemon's lower is detached by the next mount,
                # `mount --list` or doctor (mounts.detach)
                auto_unmount=not overlay,
                fsname=f"avfs:{self.vault.name}:{self.key}",
                subtype="avfs",
                # kernel caching: 60 s + the watcher's invalidations, or forever when read-only
                # (a revision, or an overlay's lower layer: its content never changes visibly)
                **fuse_options(read_only or overlay, lower=overlay),
            )
        except RuntimeError as exc:
            # a SIGTERM-ed loop ends this way too; anything before readiness is a failure
            if self.record["state"] != "mounted":
                print(f"avfs mount daemon: {exc}", file=sys.stderr)
                code = 1
        finally:
            self.close()
        return code

    def ready(self) -> None:
        """The kernel's handshake is done (FUSE's ``init``)."""
        if self.settle is not None:
            self.index_threads.append(self.settle.start())
        if self.overlay:
            # the lower layer answers now: stack the kernel's overlay on it, off the FUSE
            # thread (mounting looks up the lower root, which this process serves)
            threading.Thread(target=self.stack, name="avfs-overlay", daemon=True).start()
            return
        self.announce()

    def stack(self) -> None:
        """Stack kernel overlayfs on the lower layer at the mount point, then announce."""
        from ..core.vaults.registry import write_record as write_registry

        args, layers = self.args, self.layers
        opts = (
            f"lowerdir={_escape(layers['lower'])},upperdir={_escape(layers['upper'])},"
            f"workdir={_escape(layers['work'])},xino=auto,redirect_dir=on,index=off,metacopy=off"
        )
        # nosuid: a setuid file a confined command makes in the fork (`chmod 4755` of a copy
        # of /bin/sh) must not run with its owner's rights: not in the mount, for anyone
        refused = mount_overlay(f"avfs:{self.vault.name}:{self.key}", args.mountpoint, opts)
        if refused is not None:
            print(f"avfs mount daemon: overlayfs refused: {refused}", file=sys.stderr)
            self.record["state"] = "failed"
            self.record["overlay_error"] = refused
            write_registry(self.reg, self.record)
            _say(args.ready_fd, b"O")  # no overlay: the caller may fall back
            os.kill(os.getpid(), signal.SIGTERM)
            return
        ws, served = self.ws, self.served
        try:
            self.protect()
        except Exception as exc:  # the rules cannot be held: no mount rather than one without them
            logging.getLogger("avfs.fuse").exception("read-only binds of the path policy")
            print(f"avfs mount daemon: the path policy's read-only binds failed: {exc}", file=sys.stderr)
            self.record["state"] = "failed"
            write_registry(self.reg, self.record)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        _say(args.ready_fd, b"S", last=False)  # stacked (ops/daemonstart.py STACKED): see proxy/ahead.py
        if self.index_at_stack:
            self.first_index()

        def listed() -> None:
            try:
                # the directories git's first status will list, listed once before it can come
                _list_merged(layers["upper"], args.mountpoint, lambda p: _lower_kind(ws, served, p))
            except Exception:
                logging.getLogger("avfs.fuse").exception("listing the merged directories")

        if self.settle is None and self.record.get("kept_warm"):
            # mounted by a proxy exec call, whose command runs next: listed once the call
            # ends (a `git status` of its own lists what it needs through the kernel)
            self.list_after_call = listed
            self.walk_after_call = True
        elif self.settle is None:  # a lazy fork's waits for its index: listed after it answers
            listed()  # (overlayfs looks up the root's files as it lists it: their sizes)
            self.walk_after_call = True  # in the background, after the lower layer's listings
        else:  # but its root now, before the settling takes the interpreter (stacking.list_root)
            list_root(args.mountpoint, self.ops.root_answers_now)
        self.announce()
        if self.settle is not None:
            listed()
            # a lazy fork's walk waits for its sizes and index: the walk's listings are this
            # daemon's Python as much as the index is, and before the sizes it would only
            # wait on them (20,538 files: git's gate opened 1.4-2.0 s later with the walk on)
            threading.Thread(target=self._warm_after_settle, name="avfs-warm-wait", daemon=True).start()
        _watch_unmount(args.mountpoint, layers["lower"])

    def _warm_after_settle(self) -> None:
        assert self.settle is not None
        self.settle.settled()
        self.warm.start()

    def protect(self) -> None:
        """The overlay backend's kernel mechanism for the fork's ``read_only`` path rules
        (stacking.protect_read_only); the record says where avfs's own writes go then."""
        from ..policy.pathsource import POLICY_PATHS

        rules = POLICY_PATHS.rules(self.home.path, self.vault.path, self.args.fork)
        writes, bound = protect_read_only(self.ws, rules, self.args.mountpoint)
        if writes is not None:
            self.record["writes_at"] = writes
            self.record["read_only_binds"] = bound

    def announce(self) -> None:
        """The mount serves: its registry record says so, the exec server starts, the
        caller waiting on ``--ready-fd`` gets ``R``."""
        from ..core.vaults import registry
        from ..ops import prefetching

        self.record["state"] = "mounted"
        registry.write_record(self.reg, self.record)
        self.filler = prefetching.start(self.vault, lambda: self.served.base, self.key)
        if self.record.get("kept_warm"):
            self.start_idle()
        if self.server is not None:
            self.server.mountpoint = self.real_mountpoint
            self.server.on_request = self.warm.pause
            self.server.start(warm=False)  # warmed after the call (_after_call)
            registry.write_exec(self.reg, self.server.name, os.getpid(), self.real_mountpoint)
        _say(self.args.ready_fd, b"R")
        if self.settle is not None:  # (its work on the interpreter waited for the R)
            self.settle.stacked.set()
        if self.server is not None or self.walk_after_call:
            threading.Thread(target=self._after_call, name="avfs-after-call", daemon=True).start()

    def _after_call(self) -> None:
        """The listing of the merged directories (of a mount a proxy exec call made), the exec
        server's warm-up and the walk of the lower layer, once no call holds the fork (a call
        that started this mount holds its exec lock to its end: docs/fuse.md). A lazy fork's
        warm-up waits for its index as the walk does: once the mount has been quiet, or git
        asked (fuse/settle.py); its imports (~0.1-0.2 s of this interpreter) otherwise ran
        beside a program started the moment ``ls`` answered. A request that comes first is
        served cold, as one that comes before any warm-up is."""
        from ..core.store.locks import exec_lock_path, wait_free

        wait_free(exec_lock_path(self.vault.state_dir, self.args.fork))
        if self.list_after_call is not None:
            self.list_after_call()
        if self.settle is not None:
            self.settle.settled()
            # (nor beside the git commands that waited for the index: settle.py, after_git)
            self.settle.after_gits()
            if self.settle.closing:
                return  # (unmounted before its index: nothing left to warm)
        if self.server is not None:
            try:
                self.server.warm_up()
            except Exception:
                logging.getLogger("avfs.fuse").exception("warming up the exec server")
        if self.walk_after_call:
            self.warm.start()

    def start_idle(self) -> None:
        """The idle timer of a mount kept warm for proxy exec (fuse/idle.py): its use is the
        exec requests served, the FUSE calls served and an overlay's upper-layer changes."""
        from .idle import IdleRelease

        counters = [lambda: int(getattr(self.ops, "calls", 0))]
        watch = getattr(self.hook_server, "answerer", None) if self.overlay else None
        if watch is not None and hasattr(watch, "seq"):
            counters.append(lambda: int(watch.seq))
        server = self.server

        def released() -> None:
            if server is not None and server.standbys is not None:
                server.standbys.close()  # a ready sandbox's bind of the mount would keep it

        self.idle = IdleRelease(
            self.vault.state_dir,
            self.key,
            self.args.fork,
            self.reg,
            self.real_mountpoint or os.path.realpath(self.args.mountpoint),
            "overlay" if self.overlay else "fuse",
            float(self.args.idle_timeout),
            counters,
            released,
        )
        if server is not None:
            server.gate = self.idle
        self.idle.start()

    def close(self) -> None:
        """The teardown, after libfuse's loop is over and the watcher stopped (FastFUSE):
        nothing starts new writers."""
        from ..mount.worktree import unregister
        from ..ops.mounts import detach

        self.closing.set()
        if self.settle is not None:
            self.settle.close()  # (its index made now, if it was waiting for quiet)
        if self.filler is not None:
            self.filler.close()
        if self.idle is not None:
            self.idle.close()
        self.warm.close()
        if self.overlay:
            unprotect(self.ws)
            detach(self.args.mountpoint, fs_type="overlay")  # its lower layer is gone
            if self.hook_server is not None:
                self.hook_server.close()
                self.hook_server.answerer.close()  # the upper layer's watch
            _pin_gitfile(self.layers["upper"], None)
        elif self.hook_server is not None:
            self.hook_server.close()
        for t in self.index_threads:
            t.join(INDEX_JOIN_S)
        if self.server is not None:
            self.server.close()
            try:
                os.unlink(self.exec_file)
            except FileNotFoundError:
                pass
        if self.wake_fd is not None:
            os.close(self.wake_fd)
        if getattr(self, "changelog", None) is not None:
            try:
                self.changelog.daemon_ended(os.getpid())
            except Exception:
                logging.getLogger("avfs.fuse").exception("writing the change log")
        unregister(self.made, None if self.read_only else self.ws)
        try:
            os.unlink(self.reg)
        except FileNotFoundError:
            pass
        if self.tmp_state is not None:
            import shutil

            shutil.rmtree(self.tmp_state, ignore_errors=True)


def _settle(m: Mount) -> Any:
    """A lazy fork's mount: sizes and index after it answers (fuse/settle.py)."""
    from .settle import Settle, pin_through

    settle = Settle(m.served, m.write_index, beside=not m.read_only)
    if m.overlay:  # (through the bind of avfs's own writes, where the path policy made one)
        settle.pin = lambda: pin_through(str(m.record.get("writes_at") or m.args.mountpoint), m.gitfile)
    return settle


def _say(fd: int | None, what: bytes, last: bool = True) -> None:
    """Write ``what`` on the starter's readiness pipe ``fd`` (closed after the ``last``)."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.write(fd, what)
            if last:
                os.close(fd)


def _pid_ns() -> str | None:
    from ..core.store.locks import pid_ns

    return pid_ns()


def _start_changelog(state_dir: str) -> Any:
    """The fork's change log (core/workspace/changelog.py) with this daemon named in it (its
    pure-FUSE writes are the mount's in `avfs watch`); None when it cannot be written."""
    from ..core.workspace.changelog import ChangeLog

    try:
        log = ChangeLog(state_dir)
        log.daemon_started(os.getpid())
        return log
    except Exception:
        logging.getLogger("avfs.fuse").exception("opening the change log")
        return None


if __name__ == "__main__":
    sys.exit(main())
