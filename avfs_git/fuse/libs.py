"""The native libraries the mount daemon loads through ctypes, found by their sonames.

mfusepy looks libfuse up with ``ctypes.util.find_library("fuse3")`` when it is imported, and
inotify_simple looks libc up the same way when the daemon starts the upper layer's watch
(core/workspace/upperwatch.py). On Linux each is a run of ``/sbin/ldconfig -p`` and a parse
of its whole output: two processes, ~10-20 ms each under load, on every mount's start-up,
before it is ready (what ``avfs mount`` and a first ``proxy exec`` wait for). The dynamic
loader finds the same libraries by their sonames from the same cache (``ld.so.cache``)
without a process: libfuse 3's soname has been ``libfuse3.so.3`` since 3.0, and libc is in
this process already (``CDLL(None)``).

And the daemon's name for its process (:func:`name_process`, through libc's ``prctl``), and
its crashes without a core dump (:func:`no_core_dumps`).

Nothing changes where the soname does not load (libfuse 3 missing, another libfuse asked
for): mfusepy looks it up its own way and reports what it cannot find, as before.
"""

from __future__ import annotations

import ctypes
from collections.abc import MutableMapping

from ..core.vaults.daemonproc import DAEMON_NAME

LIBFUSE3 = "libfuse3.so.3"
PR_SET_NAME = 15  # linux/prctl.h


def preset(environ: MutableMapping[str, str]) -> None:
    """Before mfusepy is imported: libfuse 3 by its soname (``FUSE_LIBRARY_PATH``, which
    mfusepy loads as it is), unless ``environ`` names a library itself; and libc for
    inotify_simple. ``environ``: the daemon's environment, which mfusepy reads."""
    environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")  # mfusepy picks libfuse 2 when both exist
    if not environ.get("FUSE_LIBRARY_PATH") and environ["FUSE_LIBRARY_NAME"] == "fuse3":
        try:
            ctypes.CDLL(LIBFUSE3)
        except OSError:
            pass  # mfusepy's own lookup says what is missing
        else:
            environ["FUSE_LIBRARY_PATH"] = LIBFUSE3
    try:
        import inotify_simple
    except ImportError:
        return
    if getattr(inotify_simple, "_libc", ()) is None:  # (its name for libc, loaded on first use)
        inotify_simple._libc = ctypes.CDLL(None, use_errno=True)  # type: ignore[attr-defined]


def name_process() -> None:
    """Name this process :data:`DAEMON_NAME` (its main thread's name, ``/proc/PID/comm``,
    which the threads it starts after inherit): how the registry, ``doctor`` and
    ``mount_holders`` tell a mount daemon whatever its command line."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        prctl.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        prctl(PR_SET_NAME, DAEMON_NAME.encode(), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # no prctl: an exec'd daemon is still known by its command line


def no_core_dumps() -> bool:
    """Make a crash of this daemon end it at once, without a core dump; returns whether the
    kernel would still dump its core (False once this worked).

    A daemon's thread may be waiting on a request to its own mount (the kernel's overlay
    over its lower layer, a walk of the tree): a core dump of the crashed daemon then waits on
    that request forever, which no thread is left to answer, so the process never ends, its
    clients hang and only aborting the FUSE connection frees them (seen: a daemon in ``D`` in
    the dump for hours). Without a dump the kernel kills every thread, the FUSE connection
    closes, and the mount answers ``ENOTCONN`` at once; ``doctor`` then cleans it up. What a
    crash leaves instead: Python's traceback of the crashing thread in the mount's log
    (faulthandler). Commands the daemon starts get their own dump setting back at exec.

    Only that thread's: faulthandler reads the other threads' frames while they run, and a
    daemon serving requests faulted inside that dump (about 1 crash in 10 under a walk of the
    mount): its traceback cut short and a second, real ``segfault`` line in the kernel log,
    which is what avfs's crash checks look for."""
    import faulthandler

    faulthandler.enable(all_threads=False)  # stderr: the mount's log file
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        return bool(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))
    except (OSError, AttributeError):
        return True


PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4  # linux/prctl.h
