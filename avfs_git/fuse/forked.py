"""A mount daemon that starts in a fork of a warm process instead of a new interpreter.

``python -m avfs_git.fuse.daemon`` costs ~0.25-0.3 s of CPU in Python's start and the
daemon's imports (mfusepy, libfuse through ctypes, the workspace, pygit2) before it can
mount, on the path of every ``avfs mount``, every first ``proxy exec`` or ``exec_in`` on
a fork. Two kinds of process have all of that imported already: the warm CLI server
(cli/prewarm.py, :func:`load`), for the commands it serves (cli/warmdaemon.py), and a
process's zygote (fuse/zygote.py, ops/warmstart.py), for that process's mounts. A mount
asks the one it has, which forks twice (:func:`serve`): the first child starts a session
of its own and forks the daemon, which runs :func:`become` and never returns into the
warm process's code.

What the daemon is then is what an exec'd one is, but for its imports (made before) and,
forked from the server, its command line (the server's): its process named
:data:`..core.vaults.daemonproc.DAEMON_NAME` (what says it is a mount daemon,
:func:`.libs.name_process`; the exec'd one names itself too), not a session leader but in a
session of its own, fd 0 on ``/dev/null``, 1 and 2 on its log, 3 its readiness pipe and
nothing else open, the signal dispositions and mask of a new Python process, the
environment the starter made (``ops/daemonstart._daemon_env``; libgit2's config search
found anew from it), cwd ``/``, and the asking thread's umask, resource limits, nice, CPU
affinity and ``oom_score_adj``, as a spawn inherits them (one this process may not give:
spawned); a warm process in other control groups than the asker's declines. Forked from a zygote, whose command
line keeps room for it (``ops/warmstart.ROOM``), its command line is a spawned daemon's
(``python -P -m avfs_git.fuse.daemon --home H --vault V ...``) with ``--forked`` after
(:func:`_retitle`): ``ps``, the registry and ``doctor`` see its home and vault as they see
a spawned one's.

Nothing of the warm process's is freed here: its objects (sockets, its watch of the code,
its pipes) stay referenced by the frames below this one, which never return (the process
ends with ``os._exit``), so no finaliser closes a descriptor number the daemon has since
reused.
"""

from __future__ import annotations

import os
import select
import signal
import sys
from typing import Any

from .libs import name_process

READY_FD = 3  # where the forked daemon has its readiness pipe
FORK_WAIT_S = 10.0  # how long the warm process waits for a forked daemon to name itself
FORKED = "--forked"  # after a zygote's daemon's arguments in its command line


def fuse_choice(environ: dict[str, str]) -> tuple[str | None, str | None]:
    """The libfuse a daemon with environment ``environ`` loads (as fuse/libs.py's
    ``preset`` makes it out): (``FUSE_LIBRARY_NAME``, ``FUSE_LIBRARY_PATH``)."""
    from .libs import preset

    env: dict[str, str] = {k: environ[k] for k in ("FUSE_LIBRARY_NAME", "FUSE_LIBRARY_PATH") if k in environ}
    preset(env)
    return env.get("FUSE_LIBRARY_NAME"), env.get("FUSE_LIBRARY_PATH")


def load(below: tuple[str, ...] = ()) -> tuple[str | None, str | None] | None:
    """In a warm process: import the mount daemon's modules (each of avfs's packages
    ``below``, ``avfs_git.NAME``, then each of this package's), with libfuse chosen as a
    daemon started with this environment chooses it (restored after: the process's
    environment stays as it was). The choice; None when they do not import (no libfuse
    here: the daemons are spawned, and say why)."""
    import importlib
    import pkgutil

    choice = fuse_choice(dict(os.environ))
    saved = {k: os.environ.get(k) for k in ("FUSE_LIBRARY_NAME", "FUSE_LIBRARY_PATH")}
    try:
        for key, value in zip(saved, choice, strict=True):
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        import mfusepy  # noqa: F401  (libfuse, loaded now through ctypes)

        from . import daemon  # noqa: F401

        for name in (*(f"avfs_git.{b}" for b in below), __package__ or "avfs_git.fuse"):
            pkg = importlib.import_module(name)
            for mod in pkgutil.walk_packages(pkg.__path__, name + "."):
                importlib.import_module(mod.name)
    except Exception:
        return None
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
    return choice


def serve(
    req: dict[str, Any], fds: list[int], why_not: str | None, fuse: Any, retitle: bool = False
) -> dict[str, Any]:
    """The answer to a daemon request ``req`` (ops/warmstart.py; its fds ``fds``, closed by
    the caller): the daemon forked, unless ``why_not`` (the warm process's reason to
    decline: its code changed) or the request does not fit this process (``fuse``: the
    libfuse :func:`load` chose, None when it did not load). ``retitle``: the daemon writes
    its arguments into its command line (a zygote's, which has room for them)."""
    args, env, umask = req.get("daemon"), req.get("env"), req.get("umask")
    if why_not is None and not (
        isinstance(args, list)
        and all(isinstance(a, str) for a in args)
        and isinstance(env, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        and isinstance(umask, int)
        and len(fds) == 2
    ):
        why_not = "protocol"
    if why_not is None and (fuse is None or fuse_choice(env) != tuple(fuse)):  # type: ignore[arg-type]
        why_not = "libfuse"
    if why_not is None and retitle and _title(list(args)) is None:  # type: ignore[arg-type]
        why_not = "room"
    limits = _limits(req.get("limits"))
    if why_not is None and limits is None:
        why_not = "limits"
    cgroup = req.get("cgroup")
    if why_not is None and cgroup is not None and cgroup != own_cgroup():
        why_not = "cgroup"
    state = _state(req)
    if why_not is None and state is None:
        why_not = "protocol"
    pid = None
    if why_not is None:
        pid = _fork(list(args), dict(env), int(umask), fds[0], fds[1], retitle, limits, state)  # type: ignore[arg-type]
        if pid is None:
            why_not = "fork"
    return {"pid": pid} if pid is not None else {"fallback": why_not}


def _fork(
    args: list[str],
    env: dict[str, str],
    umask: int,
    ready: int,
    log: int,
    retitle: bool,
    limits: dict[int, tuple[int, int]] | None = None,
    state: dict[str, Any] | None = None,
) -> int | None:
    """Fork the daemon (twice: the first child starts a session and exits); its pid once it
    has named itself, or None."""
    import gc

    r, w = os.pipe()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # (not written twice, by a child too)
    try:
        first = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    if first == 0:
        try:
            os.close(r)
            os.setsid()
            gc.collect()  # what the warm process dropped, freed here, not in the daemon
            if os.fork() == 0:
                become(args, env, umask, ready, log, w, retitle, limits, state)  # never returns
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    try:
        poller = select.poll()
        poller.register(r, select.POLLIN)
        if poller.poll(FORK_WAIT_S * 1000):
            data = os.read(r, 32)
    finally:
        os.close(r)
        try:
            os.waitpid(first, 0)
        except ChildProcessError:
            pass  # (collected already: a zygote reaps its children as they end, fuse/zygote.py)
    try:
        return int(data) if data.endswith(b"\n") else None
    except ValueError:
        return None


def _limits(given: Any) -> dict[int, tuple[int, int]] | None:
    """The asker's resource limits (``RLIMIT_*`` -> soft, hard: ops/warmstart.py ``limits``)
    when this process can give them to a daemon (none asked: {}), else None: a hard limit
    above this process's own, which only a privileged process may raise, or not limits."""
    import resource

    if given is None:
        return {}
    if not isinstance(given, dict):
        return None
    out: dict[int, tuple[int, int]] = {}
    for res, pair in given.items():
        if not (isinstance(res, int) and isinstance(pair, tuple) and len(pair) == 2):
            return None
        soft, hard = pair
        if not (isinstance(soft, int) and isinstance(hard, int)):
            return None
        try:
            own = resource.getrlimit(res)[1]
        except (ValueError, OSError):
            return None
        inf = resource.RLIM_INFINITY
        if own != inf and (hard == inf or hard > own):
            return None
        out[res] = (soft, hard)
    return out


def own_cgroup() -> str | None:
    """The control groups of the calling thread (``/proc/thread-self/cgroup``, as a spawn
    from it inherits them), or None where there are none to read."""
    try:
        with open("/proc/thread-self/cgroup", encoding="utf-8", errors="surrogateescape") as fh:
            return fh.read()
    except OSError:
        return None


def _state(req: dict[str, Any]) -> dict[str, Any] | None:
    """What else of the asker's a spawned daemon inherits and a forked one is given
    (ops/warmstart.py ``process_state``): ``nice`` (the asking thread's), ``cpus`` (its
    CPU affinity), ``oom`` (its process's ``oom_score_adj``), each as given when it is of
    its kind (absent: this process's stays); None when one is not."""
    out: dict[str, Any] = {}
    for key in ("nice", "oom", "cpus"):
        value = req.get(key)
        if value is None:
            continue
        if isinstance(value, list) and key == "cpus":
            if not all(isinstance(c, int) for c in value):
                return None
        elif not isinstance(value, int) or key == "cpus":
            return None
        out[key] = value
    return out


def _take(state: dict[str, Any]) -> None:
    """Take the asker's ``state`` (:func:`_state`) on: raises OSError where this process may
    not (a nice below its own, unprivileged: the asker then spawns its daemon)."""
    nice = state.get("nice")
    if nice is not None and nice != os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    cpus = state.get("cpus")
    if cpus and set(cpus) != os.sched_getaffinity(0):
        os.sched_setaffinity(0, cpus)
    oom = state.get("oom")
    if oom is not None:
        with open("/proc/self/oom_score_adj", "r+b", buffering=0) as fh:
            if int(fh.read()) != oom:
                fh.write(b"%d" % oom)


def _args_area() -> tuple[int, int] | None:
    """Where this process's command line is in its memory (``/proc/self/stat``'s
    ``arg_start`` and ``arg_end``, fields 48 and 49), or None."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return int(fields[45]), int(fields[46])
    except (OSError, IndexError, ValueError):
        return None


def _title(args: list[str]) -> bytes | None:
    """The command line a zygote's daemon with arguments ``args`` shows after its first
    word (the interpreter, left as it is: libc's name for the program points there), or
    None when it does not fit in this process's."""
    area = _args_area()
    if area is None:
        return None
    words = ["-P", "-m", "avfs_git.fuse.daemon", *args, "--ready-fd", str(READY_FD), FORKED]
    title = b"".join(os.fsencode(w) + b"\0" for w in words)
    start, end = area
    first = os.fsencode(sys.orig_argv[0]) + b"\0" if sys.orig_argv else b""
    room = end - start - len(first)
    return title + b"\0" * (room - len(title)) if 0 < len(title) <= room else None


def _retitle(args: list[str]) -> None:
    """Write the daemon's command line (:func:`_title`) over this process's, in place: what
    ``/proc/PID/cmdline`` reads (the words after the first; the rest of the room zeroes)."""
    import ctypes

    title, area = _title(args), _args_area()
    if title is None or area is None:
        return
    first = os.fsencode(sys.orig_argv[0]) + b"\0"
    ctypes.memmove(area[0] + len(first), title, len(title))


def _signals_as_new() -> None:
    """The signal dispositions and mask of a new Python process (the server ignores some
    and handles others; an ignored signal would stay ignored in every command the daemon
    runs): default, but SIGINT (KeyboardInterrupt) and SIGPIPE, SIGXFSZ (ignored)."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            continue
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _descriptors(ready: int, log: int) -> None:
    """fd 0 on /dev/null, 1 and 2 on the log, :data:`READY_FD` the readiness pipe, and
    nothing else open."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    if ready != READY_FD:
        os.dup2(ready, READY_FD)
    os.set_inheritable(READY_FD, False)
    os.closerange(READY_FD + 1, 1 << 20)


def _ending() -> None:
    """What an interpreter's own exit does for the daemon once its ``main`` has returned:
    wait for the threads that are not daemon threads (a removal in the background,
    mount/untracked.py), then free what the daemon left in reference cycles (its
    databases' connections close, and with the last, their WALs are written back). Not the
    rest of the interpreter's finalisation, which would free the server's objects too."""
    import gc
    import threading

    for t in threading.enumerate():
        if t is not threading.current_thread() and not t.daemon:
            t.join()
    gc.collect()


def become(
    argv: list[str],
    env: dict[str, str],
    umask: int,
    ready: int,
    log: int,
    report: int,
    retitle: bool = False,
    limits: dict[int, tuple[int, int]] | None = None,
    state: dict[str, Any] | None = None,
) -> Any:
    """In the fork that is to be the daemon: name it (and ``retitle``: its command line
    too, :func:`_retitle`), tell the warm process its pid on ``report`` (a pipe), become a
    clean process (above: with the asker's resource ``limits``, as a spawned daemon
    inherits them) and run the daemon's ``main`` with ``argv`` (its arguments, without
    ``--ready-fd``: :data:`READY_FD` is added); never returns."""
    code = 70
    try:
        if state:
            _take(state)  # (before the pid is out: one that cannot is no daemon, it is spawned)
        name_process()  # before the pid is out: a starter may ask what it is at once
        if retitle:
            _retitle(argv)
        os.write(report, b"%d\n" % os.getpid())
        _signals_as_new()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # what the server's own left buffered goes where the server's went
        _descriptors(ready, log)
        os.chdir("/")
        os.umask(umask)
        if limits:
            import resource

            for res, pair in limits.items():
                resource.setrlimit(res, pair)  # (lower or equal hard limits: _limits)
        os.environ.clear()
        os.environ.update(env)
        from ..core.store.gitlib import config_search_from_environ

        config_search_from_environ()  # (libgit2 found them from the warm process's)
        sys.argv = ["avfs-mountd", *argv, "--ready-fd", str(READY_FD)]
        import logging

        logging.root.handlers.clear()  # (none in the server; the daemon's go to its log)
        from .daemon import main

        code = main(sys.argv[1:])
        _ending()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
