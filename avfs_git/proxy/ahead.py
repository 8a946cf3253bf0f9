"""The first ``proxy exec`` on a fork that is not mounted: its sandbox set up ahead.

The call starts the fork's mount daemon before its plan (:mod:`.premount`) and waits for
the mount to be announced (the daemon's ``R``); what it did after that was its own work:
the record of the fork (``before``), the placement, then bubblewrap's set-up of the
sandbox (namespaces, ~40 mounts, ``pivot_root``: ~7 ms of a confined ``true``'s ~9 here)
and the command, the record. ``avfs mount`` of the same fork only answers after that
``R``, so that work was what the first call cost over the mount.

A sandbox binds the fork's mount, so it cannot be made before the mount exists (the host's
mounts are private: a mount made after the sandbox would not reach into it). But the daemon
says how far it got on its readiness pipe before its ``R`` (ops/daemonstart.py): ``L``
once the mount is a linked worktree of the vault with its own files (git's fsmonitor hook
and socket, which the sandbox shows), ``S`` once the overlay is stacked on the mount point
and the path policy's read-only binds are made (then it writes its records and answers).
At ``L``, while the daemon writes the index and mounts, :func:`planned` works out the
sandbox, the command line, working directory and environment the command will get
(:func:`.placement.place`'s own function, for the mount point the daemon was started on);
at ``S``, :class:`Blocked` starts bubblewrap with all of it and a pipe to wait on:
bubblewrap sets the whole sandbox up (its last mount, ``pivot_root``, the drop of its
privileges), starts the command's program, the Perl program that applies the sandbox's
Landlock domain and the command's environment (:mod:`.landlock`), and that program waits on
the pipe before it ``exec``\\ s the command, while the daemon answers and the call takes its
record of the fork (``before``: the command must not run before it). So bubblewrap's
namespace init, its child and Perl's start are done ahead too, not after the byte (where
there is no Perl, bubblewrap waits itself, ``--block-fd``, before it ``exec``\\ s the
command). The command then goes on (one byte on the pipe) when what the call works out
again after ``before`` is the same: bubblewrap's whole command line (:func:`.standby._key`),
the command, its working directory and environment; any difference, and the blocked one is
killed (its command never ran) and the command's own sandbox is set up as before. So the
command runs in exactly the sandbox it would have had, with no process added (a ready
sandbox of :mod:`.standby` has a waiter: its ~2 ms of CPU cost more than it saved under
load).

Not for a command with its own stdin, a filtered network (its proxy's socket is bound),
an isolated view or no sandbox: those set theirs up after the ``R`` as before. The pure
FUSE backend says no ``S``: there the sandbox is started at ``R`` (overlapped with
``before``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any, cast

from ..core.records import dataclass

if TYPE_CHECKING:
    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault
    from .confine import Sandbox
    from .stages import Plan

log = logging.getLogger("avfs.proxy")


@dataclass(frozen=True, slots=True)
class Planned:
    """What :func:`.placement.place` will run a first call's command in: the sandbox, the
    command line, its working directory (the sandbox's) and its environment."""

    sandbox: Sandbox
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]


def planned(home: Home, vault: Vault, fork: str, plan: Plan, root: str) -> Planned | None:
    """What ``plan``'s command will run in once the fork is mounted at ``root``; None when
    it is not a sandbox that can be set up ahead, or cannot be worked out (the call's own
    placement meets the same error, and says so)."""
    req, conf = plan.req, plan.confinement
    if (
        plan.mode != "fuse"
        or plan.isolation is not None
        or conf.kind != "bwrap"
        or conf.network == "filtered"
    ):
        return None
    if req.stdin != subprocess.DEVNULL:
        return None
    from . import confine
    from .placement import _in_sandbox

    at = confine.stable_path(vault.name)
    at_cwd = os.path.join(at, plan.cwd) if plan.cwd else at
    argv = tuple(req.argv) if req.argv is not None else ("/bin/sh", "-c", req.shell or "")

    def planned_of(**kw: Any) -> Any:  # (in place of the Placed that ``place`` makes)
        return Planned(sandbox=kw["sandbox"], argv=argv, env=kw["env"])

    try:
        # the seal's layout alone: its contents and the fork's state before the command are
        # the call's own placement's, once it has taken its record of the fork
        got = cast(
            "Planned", _in_sandbox(home, vault, fork, plan, planned_of, root, at, at_cwd, refresh=False)
        )
    except Exception:
        log.debug("the sandbox of a first call, ahead", exc_info=True)
        return None
    return got


class Blocked:
    """A first call's command in its sandbox, set up by bubblewrap and blocked before the
    command is ``exec``\\ ed (in the Landlock program once its domain is applied, else by
    ``--block-fd``); :meth:`start` lets it go. Used by
    :func:`.runner.run` as a ready sandbox of :mod:`.standby` is.

    Bubblewrap is started by a thread of its own (a process start from this one takes 4-10
    ms here, which the call spends on its record of the fork meanwhile), which lives on
    until :meth:`discard` (the call's end): the sandbox dies with the thread that started
    it (``--die-with-parent``)."""

    def __init__(self, p: Planned) -> None:
        from . import confine, landlock
        from .standby import _key

        self.key = _key(p.sandbox)
        self.planned = p
        self.made = time.monotonic()
        self.started = False
        self.went = False  # its command let go (:meth:`start`)
        self.table = -1  # (no mount table kept: see :meth:`unmoved`)
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned = threading.Event()
        self.over = threading.Event()
        self.block_w = self.status_r = -1
        block_r, self.block_w = _gate(guarded=landlock.available())
        opened = [block_r, self.block_w]
        try:
            env_r = confine.env_fd(dict(p.env))
            opened.append(env_r)
            sc = confine.seccomp_fd()
            opened += [sc] if sc >= 0 else []
            status_r, status_w = confine.status_pipe()
            opened += [status_r, status_w]
            self.status_r = status_r
            outer = confine.outer_fd(status_r)
            argv = confine.argv(
                p.sandbox, list(p.argv), env_from=env_r, block_fd=block_r, outer_fd=outer, seccomp_from=sc
            )
            argv[1:1] = ["--json-status-fd", str(status_w)]
            fds = (status_w, env_r, block_r, *([sc] if sc >= 0 else []))
            passed = (*fds, outer) if outer >= 0 else fds  # (status_r: kept here too)
            threading.Thread(
                target=self._spawn, args=(argv, fds, passed), name="avfs-exec-ahead", daemon=True
            ).start()
        except BaseException:
            # nothing started: every descriptor made here closed (a call's first exec that
            # falls back to its own sandbox must leave none behind in a long-lived process)
            for fd in opened:
                os.close(fd)
            self.block_w = self.status_r = -1
            raise

    def _spawn(self, argv: list[str], fds: tuple[int, ...], passed: tuple[int, ...]) -> None:
        """bubblewrap started with ``passed``; ``fds``, bubblewrap's alone, closed here."""
        from . import confine, keeper
        from .reaping import reaper_if_wanted
        from .runner import _spawn

        reaper_if_wanted()  # (a CLI call's own process: proxy/reaping.py)
        try:
            env = keeper.bwrap_env(dict(confine.BWRAP_ENV))  # (marked: proxy/keeper.py)
            self.proc = _spawn(argv, "/", env, subprocess.DEVNULL, None, passed)
        except OSError:
            log.debug("a first call's sandbox, ahead", exc_info=True)
        finally:
            for fd in fds:
                os.close(fd)
            self.spawned.set()
        self.over.wait()

    def fits(self, sb: Sandbox) -> bool:
        """Whether it is ``sb`` (bubblewrap's whole command line) and still waiting."""
        self.spawned.wait()
        return (
            not self.started
            and self.proc is not None
            and self.proc.poll() is None
            and _key_of(sb) == self.key
        )

    def start(self, argv: list[str], cwd: str, env: dict[str, str]) -> None:
        """Let the command go, when it is ``argv`` in ``cwd`` with ``env`` (raises OSError
        when it is not, or bubblewrap is gone: the caller ends it and sets up its own)."""
        p = self.planned
        if (tuple(argv), cwd, tuple(env.items())) != (p.argv, p.sandbox.cwd, p.env):
            raise OSError("not the command it was set up for")
        os.write(self.block_w, b"g")
        self.started = self.went = True
        os.close(self.block_w)
        self.block_w = -1

    def failure(self) -> tuple[str, int, str] | None:
        return None  # (bubblewrap says it on its status pipe, as for a sandbox of its own)

    def unmoved(self) -> bool:
        return False

    def close_table(self) -> None:
        pass

    def discard(self) -> None:
        """End it: when the command never went, its process group killed and reaped; its
        thread let go (once the command has ended, when it went)."""
        self.spawned.wait()
        if not self.started:
            from .reaping import end_sandbox

            self.started = True
            proc = self.proc
            if proc is not None:
                end_sandbox(proc)  # (its inner bubblewrap too: collected, not PID 1's)
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
            for fd in (self.block_w, self.status_r):
                if fd >= 0:
                    os.close(fd)
            self.block_w = self.status_r = -1
        self.over.set()


def _gate(guarded: bool) -> tuple[int, int]:
    """The pipe the command waits on in its sandbox: (its end for the sandbox, the end this
    process writes the byte to). It is closed before the command starts.

    ``guarded``: the Landlock program waits there (:mod:`.landlock`), which runs nothing at
    the end of the file. The sandbox gets the plain read end: when this process ends
    before its byte (killed: the kernel closes its end), the sandbox ends at once. Its
    own ``--die-with-parent`` cannot be relied on for that: bubblewrap arms the outer's
    only after its clone, and the init's only after the set-up (bubblewrap.c,
    ``handle_die_with_parent``), so a call killed in the first milliseconds after it
    started bubblewrap left it unarmed, parent 1, waiting for its byte for good (a
    writer of its own pipe: one ``bwrap --die-with-parent`` with parent 1 after a suite
    run). Where there is no such program, bubblewrap's ``--block-fd`` waits, and goes on
    at the end of the file too (it would run the command): there the sandbox's end is the
    pipe opened anew for reading and writing, a writer of its own pipe, so that the pipe
    never ends. The sandbox's first process waits there armed to die with no one
    (bubblewrap arms the init only after its fork, past the gate): a call killed
    meanwhile left it waiting for good, parent 1 (flaky4); the call's keeper ends it
    (:mod:`.keeper`). (OSError where the pipe cannot be opened so: nothing is set up
    ahead.)"""
    r, w = os.pipe()
    if guarded:
        return r, w
    try:
        rw = os.open(f"/proc/self/fd/{r}", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        os.close(w)
        raise
    finally:
        os.close(r)
    return rw, w


def _key_of(sb: Sandbox) -> tuple[str, ...]:
    from .standby import _key

    return _key(sb)


def set_up(p: Planned) -> Blocked | None:
    """Start ``p``'s command blocked in its sandbox (None when bubblewrap could not be
    started, or anything else failed on the way: the command's own placement sets one up
    as before, and nothing of this one is left open)."""
    try:
        return Blocked(p)
    except Exception:  # (an OSError, or a thread that cannot be started: set up as before)
        log.debug("a first call's sandbox, ahead", exc_info=True)
        return None
