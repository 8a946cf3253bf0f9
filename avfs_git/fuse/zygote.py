"""A process's zygote: ``python -P -m avfs_git.fuse.zygote --room ...``, the warm starter of
that process's mount daemons (ops/warmstart.py says who starts it, where its socket is,
when it ends, and how it is turned off).

It watches its code (ops/codewatch.py) from before it imports the daemon's modules
(fuse/forked.py :func:`~.forked.load`), then holds no home, no database, no lock and no
thread, and says it is ready on its socket (fd 3). It is the reaper of the daemons it
forks (:func:`_reaper`), as the process that started it is of those it spawns. Each request there is answered as the
resident CLI server answers one (:func:`.forked.serve`: the daemon forked twice, its
command line written into the room this process keeps in its own), but declined when the
asker's code is not its own or its code changed on disk, or the asker is in other
control groups (it ends then: the next mount starts a new one), or when the request's environment would start Python or its libraries
otherwise than this process's started (ops/warmstart.py :func:`~..ops.warmstart.start_vars`:
it stays, for the requests that fit). It ends at the end of file on its socket: the
process that started it has ended.
"""

from __future__ import annotations

import gc
import marshal
import os
import socket
import sys
from typing import Any

from ..ops.codewatch import CodeWatch
from ..ops.framed import recv_framed, send_framed
from ..ops.warmstart import ENDS_ON, READY, ZYGOTE_FD, code_stamp, start_vars
from . import forked

ZYGOTE_NAME = "avfs-zygote"  # its process's name (``/proc/PID/comm``)
# what it imports besides this package, each module of each (avfs_git.NAME): the daemon
# imports most of them as it sets up (the vault, the registry, the exec server's policy
# and envelope: ~90 modules a daemon the fuse package alone left it to import, ~0.1 s of
# CPU each time); no front end, and nothing that opens, reads or starts anything on import
# (as cli/prewarm.py loads them for the CLI server)
BELOW = ("core", "mount", "policy", "ops", "proxy")


def _name() -> None:
    """Name this process :data:`ZYGOTE_NAME`, and its command line what it runs (the room
    after it zeroed: ``ps`` shows no padding)."""
    import ctypes

    try:
        ctypes.CDLL(None).prctl(15, ZYGOTE_NAME.encode(), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass
    area = forked._args_area()
    if area is None or not sys.orig_argv:
        return
    words = [os.fsencode(w) + b"\0" for w in sys.orig_argv]
    keep = b"".join(words[:4])  # the interpreter, -P, -m, this module
    size = area[1] - area[0]
    if len(keep) <= size:
        ctypes.memmove(area[0], keep + b"\0" * (size - len(keep)), size)


def _reaper() -> None:
    """Make this process the reaper of the daemons it forks (``PR_SET_CHILD_SUBREAPER``:
    each is handed to it, not to PID 1, as its first fork exits) and collect each as it
    ends (SIGCHLD), as the caller collects a daemon it spawned: where PID 1 collects no
    one's (a container's shell, ``tail -f /dev/null`` or Python), each forked daemon that
    ended stayed a zombie for good, one per mount, in a long-lived caller's container."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return
    signal.signal(signal.SIGCHLD, _collect)


def _collect(signum: int = 0, frame: object = None) -> None:
    """Collect every child of this process that has ended (its daemons, once handed to it)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _why_not(req: dict[str, Any], start: dict[str, str], code: CodeWatch) -> str | None:
    """Why this zygote declines request ``req``, or None."""
    if req.get("v") != 1:
        return "protocol"
    if req.get("stamp") != code_stamp() or code.changed():
        return "another avfs"
    env = req.get("env")
    if isinstance(env, dict) and start_vars({str(k): str(v) for k, v in env.items()}) != start:
        return "start environment"
    return None


def _shipped_policy() -> None:
    """The shipped policy's layer made here, from the package's own file, and its
    programs' patterns compiled, as the resident CLI server makes them (cli/prewarm.py):
    every daemon's exec server loads the default policy as it warms up (proxy/server.py
    ``warm_up``), and each forked daemon validated the shipped file anew (~2-3 ms of its
    CPU, of a small fork's ~90 ms life: docs/benchmarks.md, h-mountcost1's section). A daemon whose shipped file differs from
    this one's makes its own (policy/config.py keys the layer by the file's text)."""
    from ..policy.config import load_shipped

    try:
        for rule in load_shipped().rules:
            rule.matches_program("")
    except Exception:  # (the daemon's own warm-up says what is wrong, as without a zygote)
        pass


def main() -> int:
    """Load, say so, serve requests until the end of file (or a change of code)."""
    os.chdir("/")  # never keep the starter's directory (a mount) busy
    os.closerange(ZYGOTE_FD + 1, 1 << 20)  # what the starter left inheritable is not ours
    _name()
    _reaper()
    code = CodeWatch()  # before the imports: an edit made while they run is seen
    start = start_vars(dict(os.environ))
    fuse = forked.load(BELOW)
    sock = socket.socket(fileno=ZYGOTE_FD)
    if fuse is None:
        return 1  # (its end of file, before READY: the starter spawns, and starts none again)
    _shipped_policy()
    # the imported objects stay where they are: a collection in a daemon would otherwise
    # walk (and so copy, page by page) the whole heap it shares with this process
    gc.collect()
    gc.freeze()
    sock.sendall(READY)
    while True:
        try:
            got = recv_framed(sock, 2)
        except (OSError, ValueError):
            got = None
        if got is None:
            return 0  # the process that started it has ended
        data, fds = got
        try:
            req = marshal.loads(data)
            req = req if isinstance(req, dict) else {}
            why_not = _why_not(req, start, code)
            answer = forked.serve(req, fds, why_not, fuse, retitle=True)
        except (ValueError, EOFError, TypeError):
            answer = {"fallback": "protocol"}
        finally:
            for fd in fds:
                os.close(fd)
        try:
            send_framed(sock, answer)
        except OSError:
            return 0
        if answer.get("fallback") in ENDS_ON:
            return 0


if __name__ == "__main__":
    # (no interpreter shutdown: what it imported is never torn down module by module; the
    # process that let go of it may be waiting for it to end: ops/daemonstart.end_zygote)
    os._exit(main())
