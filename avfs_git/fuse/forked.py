"""A mount daemon that starts in a fork of a warm process instead of a new interpreter.

``python -m avfs_git.fuse.daemon`` costs ~0.1 s of CPU in Python's start and the daemon's
imports (mfusepy, libfuse through ctypes, the workspace, pygit2) before it can mount, on
the path of every ``avfs mount`` and of the first ``proxy exec`` on a fork. The warm CLI
server has all of that imported already (cli/prewarm.py); a mount started by a command it
serves asks it for a daemon (cli/warmdaemon.py), and the server forks twice: the first
child starts a session of its own and forks the daemon, which runs :func:`become` and
never returns into the server's code.

What the daemon is then is what an exec'd one is, but for its command line (the server's)
and its imports (made before): its process named :data:`..core.vaults.daemonproc.DAEMON_NAME`
(what says it is a mount daemon, :func:`.libs.name_process`; the exec'd one names itself too),
not a session leader but in a session of its own, fd 0 on ``/dev/null``, 1 and 2 on its
log, 3 its readiness pipe and nothing else open, the signal dispositions and mask of a new
Python process, the environment the starter made (``ops/daemonstart._daemon_env``), cwd
``/`` and the starter's umask.

Nothing of the server's is freed here: its objects (sockets, its watch of the code, its
pipes) stay referenced by the frames below this one, which never return (the process ends
with ``os._exit``), so no finaliser closes a descriptor number the daemon has since reused.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from .libs import name_process

READY_FD = 3  # where the forked daemon has its readiness pipe


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


def become(argv: list[str], env: dict[str, str], umask: int, ready: int, log: int, report: int) -> Any:
    """In the fork that is to be the daemon: name it, tell the server its pid on ``report``
    (a pipe), become a clean process (above) and run the daemon's ``main`` with ``argv``
    (its arguments, without ``--ready-fd``: :data:`READY_FD` is added); never returns."""
    code = 70
    try:
        name_process()  # before the pid is out: a starter may ask what it is at once
        os.write(report, b"%d\n" % os.getpid())
        _signals_as_new()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # what the server's own left buffered goes where the server's went
        _descriptors(ready, log)
        os.chdir("/")
        os.umask(umask)
        os.environ.clear()
        os.environ.update(env)
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
