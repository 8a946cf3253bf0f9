"""The warm CLI server: every command at about Python's own start-up.

An agent calls the CLI once per step, and most of a call is Python importing avfs (click,
pygit2, the command modules: ~100 ms here against ~11 ms for ``python -S -c pass``). So a
per-home server process imports all of that once and serves each later call by forking
itself: the child takes the caller's working directory, environment, arguments and its
standard input, output and error (passed as file descriptors, ``SCM_RIGHTS``), runs the
same click CLI a direct call runs, and exits with its code, which the caller exits with.
The caller (:func:`.execopts.served`) imports nothing beyond what Python loads at
start-up. Everything a command does is as in a direct call, in a process of its own (a push
or fetch: the one kept for them, :mod:`.callproc`); only the imports are shared.

- **Where**: a Unix socket ``<home>/run/cli.sock`` (the directory 0700, the socket 0600,
  and the peer's uid checked with ``SO_PEERCRED``). A confined ``proxy exec`` command never
  sees the avfs home; one in a view showing it read-only (``--readonly-host``) is answered
  "fall back" (another PID or mount namespace, asked as it is accepted: attack28, review39).
- **Which code**: the caller sends a stamp of the avfs it would run (the interpreter and
  the package's directory); a server whose own differs, or whose package files changed
  since it started watching them (inotify, set up before it imports them:
  ops/codewatch.py), answers "fall back" and exits, so an upgrade or an edit is never
  served by old code.
- **When**: a call that finds no server runs directly, then starts one in the background
  (:func:`.client.start`; ``AVFS_SERVER=off``: never; ``avfs server stop`` ends one); a
  server ends after ``AVFS_SERVER_IDLE`` s (900) without a call, when its socket is not its
  own or its home gone, or at a call it must give way to (:func:`~..ops.framed.gives_way_to`).
- **Signals**: Ctrl-C, SIGTERM and SIGHUP of the caller are relayed to the command's
  process (``S`` and the signal's number on the socket); a caller that goes away has its
  command stopped (SIGHUP, as a terminal's hang-up would).

The protocol (one connection per call): the request is a ``marshal``-encoded dict preceded
by its length as 8 ASCII digits, with the caller's fds 0, 1, 2: ``{"v": 1, "stamp": ...,
"argv": [...], "cwd": ..., "umask": N, "env": {bytes: bytes}}`` (the environment as
``posix.environ`` holds it: the caller, :mod:`.client`, imports no :mod:`os`). Both ends are
the same code (the stamp). The server answers length-prefixed marshal dicts:
``{"fallback": REASON}`` (nothing ran: the caller runs the call itself), or
``{"started": PID}`` and, when the command ended, ``{"code": N}`` (from the command's
process as it ends, and again from the server when it has reaped it: the caller takes the
first, which may come before ``started``). Nothing ran only when the connection ends before
any byte of an answer (the server starts a command once it has read the whole request, and
the command's process holds the connection until it has answered) or the first answer is a
whole ``fallback``: any other first answer (cut short, not a length, not one of these) may
follow a start, and the caller exits 70 rather than run the call a second time. The command's process then reports to the
server on a socket pair of their own (fd 4 in that process): that it has answered, and the
pages it wrote (:class:`.spare.Report`); the next spare is forked then, not when the
process has ended (closing its databases and tearing down its memory take a few ms more).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import marshal
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

from ..ops.codewatch import CodeWatch
from ..ops.framed import gives_way_to, peer_shares_namespaces, recv_framed
from . import adopted, callproc, prewarm, serverprobes, spare
from .callproc import RELAYED
from .codestamp import stamp

RUN_DIR = "run"
SOCKET = "cli.sock"
PID_FILE = "cli.pid"
LOCK_FILE = "cli.lock"  # held while a server binds
LOG_FILE = "cli.log"
IDLE_S = 900.0


def socket_path(home: str) -> str:
    return os.path.join(home, RUN_DIR, SOCKET)


def _send(conn: socket.socket, msg: dict[str, Any]) -> None:
    data = marshal.dumps(msg)
    conn.sendall(b"%08d" % len(data) + data)


def _recv_request(conn: socket.socket, fds: list[int]) -> dict[str, Any]:
    end = time.monotonic() + 10  # the whole request's: one server serves every call (review39)
    got = recv_framed(conn, 16, until=lambda: end - time.monotonic())
    if got is None:
        raise ConnectionError("the caller went away, or its request is too large")
    fds.extend(got[1])  # (the caller's to close, a request that is not one's too: review40 F2)
    if not isinstance(msg := marshal.loads(got[0]), dict):
        raise ConnectionError("not a request")
    return msg


class Server:
    """One home's warm server (run by :func:`main`)."""

    def __init__(self, home: str, idle_s: float) -> None:
        self.home = home
        self.idle_s = idle_s
        self.stamp = stamp()
        self.code = CodeWatch()  # before anything of avfs beyond this module is imported
        self.path = socket_path(home)
        self.children: dict[int, _Call] = {}  # pidfd -> the call its process runs
        self.served = 0
        self.last = time.monotonic()
        self.spare: spare.Spare | None = None  # a child forked ahead, for the next call
        self.kept: callproc.Kept | None = None  # a push's or fetch's process, kept for the next
        self.written = spare.Written([])  # the pages calls write, which a spare copies ahead
        self.layout = spare.Layout()  # this process's memory's runs, for its spares
        self.fuse: Any = None  # the libfuse the mount daemons it forks have (warmdaemon.load)

    def bind(self) -> socket.socket | None:
        """Listen at the home's socket, unless another server does; None then.

        Under a lock on ``run/cli.lock`` (two servers started at once, as a direct call's
        next-call server and `avfs server start` can be: one binds, the other finds it), and
        the pid file written before the socket is in place: a socket that answers always has
        its server's pid beside it."""
        d = os.path.dirname(self.path)
        os.makedirs(d, mode=0o700, exist_ok=True)
        os.chmod(d, 0o700)
        lock = os.open(os.path.join(d, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.path)
                return None  # one answers already
            except OSError:
                pass
            finally:
                probe.close()
            tmp = f"{self.path}.{os.getpid()}"
            lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            old = os.umask(0o177)
            try:
                lsock.bind(tmp)
            finally:
                os.umask(old)
            lsock.listen(64)
            pid_tmp = os.path.join(d, f"{PID_FILE}.{os.getpid()}")
            with open(pid_tmp, "w", encoding="ascii") as fh:
                fh.write(f"{os.getpid()}\n")
            os.replace(pid_tmp, os.path.join(d, PID_FILE))
            os.replace(tmp, self.path)
            self._ino = os.stat(self.path).st_ino
            return lsock
        finally:
            os.close(lock)  # never held by the children it forks (a mount daemon outlives it)

    def still_mine(self) -> bool:
        try:
            return os.stat(self.path).st_ino == self._ino and os.path.isdir(self.home)
        except OSError:
            return False

    def serve(self, lsock: socket.socket) -> None:
        w = _Watch(lsock)
        drop, conns, reports = w.drop, w.conns, w.reports
        while True:
            # never while a command runs: once every call has answered (reported)
            if self.spare is None and not reports:
                self.spare = spare.fork(callproc.child, RELAYED, self.written, self.layout)
            events = w.poller.poll(1000)
            done = w.done = set()  # fds closed or reused in this round: their events are stale
            for fd, _ev in events:
                if fd in done:
                    continue
                try:
                    if fd == lsock.fileno():
                        conn, _ = lsock.accept()
                        done.add(conn.fileno())  # a number an event of this round may name
                        pidfd = self._start(conn)
                        if pidfd is None:
                            conn.close()
                        elif pidfd != callproc.DEFERRED:
                            w.register(pidfd, self.children[pidfd])
                    elif fd in reports:  # the call has answered
                        call = self.children[reports[fd]]
                        if call.kept and self.kept is not None:
                            self.kept.read()
                            if self.kept.done is not None:
                                self._kept_done(w, call)
                            elif self.kept.eof:
                                drop(fd)  # it ends: its pidfd says how
                            continue
                        drop(fd)
                        done.add(fd)
                        del reports[fd]
                        self._reported(call)
                    elif self.kept is not None and fd == self.kept.proc.pidfd and fd not in self.children:
                        drop(fd)  # the kept process ended between calls
                        done.add(fd)
                        self._end_kept()
                    elif fd in self.children:
                        call = self.children.pop(fd)
                        conn, pid = call.conn, call.pid
                        drop(fd)
                        drop(conn.fileno())
                        conns.pop(conn.fileno(), None)
                        done.update((fd, conn.fileno()))
                        waiting = None
                        if call.kept and self.kept is not None:  # (it died in its call)
                            waiting = self.kept.take_waiting()
                            self.kept = None
                        if call.ctl.fileno() >= 0:  # ended without a report (as it read)
                            drop(call.ctl.fileno())
                            reports.pop(call.ctl.fileno(), None)
                            done.add(call.ctl.fileno())
                            if call.kept:
                                call.ctl.close()
                            else:
                                self._reported(call)
                        _, status = os.waitpid(pid, 0)
                        try:
                            _send(conn, {"code": os.waitstatus_to_exitcode(status)})
                        except OSError:
                            pass
                        conn.close()
                        os.close(fd)
                        self.last = time.monotonic()
                        self._resume(w, waiting)
                    elif fd in conns:
                        call = self.children[conns[fd]]
                        conn, pid = call.conn, call.pid
                        try:
                            data = conn.recv(64)
                        except OSError:
                            data = b""
                        # a kept process's call that has answered is over for its signals:
                        # the process blocks them once it has cleaned up, for its next call
                        over = call.kept and self.kept is not None and self.kept.answered_now()
                        if not data:  # the caller went away: hang up its command
                            drop(fd)
                            conns.pop(fd, None)
                            if not over:
                                _kill(pid, signal.SIGHUP)
                            continue
                        for i in range(0, len(data) - 1, 2):
                            if data[i : i + 1] == b"S" and data[i + 1] in RELAYED and not over:
                                _kill(pid, data[i + 1])
                    else:
                        drop(fd)
                except Exception as exc:  # one call's trouble never ends the server
                    self.log(f"fd {fd}: {type(exc).__name__}: {exc}")
            k = self.kept  # (a push or fetch that waited for it may have read its word)
            if k is not None and k.done is not None and k.proc.pidfd in self.children:
                self._kept_done(w, self.children[k.proc.pidfd])
            adopted.collect(self._own())  # (the daemons it forked, once handed to it, ended)
            if not self.children and (time.monotonic() - self.last > self.idle_s or not self.still_mine()):
                break
        self.leave(lsock)

    def _own(self) -> set[int]:
        """The children this server waits for itself: the calls', the spare, the kept process."""
        own = {call.pid for call in self.children.values()}
        own.update(p.pid for p in (self.spare, self.kept.proc if self.kept else None) if p is not None)
        return own

    def leave(self, lsock: socket.socket) -> None:
        """End the spare, let the calls' processes finish (what a command does after its
        answer included: a fork's next snapshot, a WAL written back; at most 30 s; a call
        made meanwhile is told to run itself), then remove the socket and the pid file, when
        they are still this server's (`avfs server stop` returns once nothing of the server
        holds the home), and close ``lsock``."""
        if self.spare is not None:
            self.spare.discard()
            self.spare = None
        if self.kept is not None:
            waiting = self.kept.take_waiting()
            if waiting is not None:  # its caller sees the end before any answer: it runs the call
                waiting[0].close()
                for fd in waiting[2]:
                    os.close(fd)
            if self.kept.proc.pidfd not in self.children:
                self.kept.proc.discard()  # between calls: nothing of a call's is left in it
                self.kept = None
            else:
                self.kept.proc.ctl.close()  # its call's report then fails: it ends (waited for below)
        # their pidfds, readable once the process has ended (not `avfs server stop`'s own,
        # which waits for this server to be gone); a call made meanwhile is run by its caller
        pending = {pidfd for pidfd, call in self.children.items() if not call.server}
        leaving = marshal.dumps({"fallback": "leaving"})
        adopted.wait_turning_away(pending, lsock, b"%08d" % len(leaving) + leaving, 30.0)
        self.code.close()
        if self.still_mine():
            for name in (self.path, os.path.join(os.path.dirname(self.path), PID_FILE)):
                try:
                    os.unlink(name)
                except OSError:
                    pass
        lsock.close()  # (a caller still queued is reset: nothing ran, it runs the call itself)

    def log(self, line: str) -> None:
        """A line in ``<home>/run/cli.log`` (kept under 1 MiB: the old half dropped)."""
        path = os.path.join(os.path.dirname(self.path), LOG_FILE)
        try:
            if os.path.getsize(path) > 1 << 20:
                os.replace(path, path + ".1")
        except OSError:
            pass
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {os.getpid()} {line}\n")
        except OSError:
            pass

    def _reported(self, call: _Call) -> None:
        """Take what a call's process reported (its end of the pair closed): the next
        call's process looks for new pages again while the last found some, else one in
        ``spare.SCAN_EVERY``."""
        learned = spare.read_report(call.ctl)
        if learned is not None:
            self.written = learned
        else:
            self.written.scan = self.served % spare.SCAN_EVERY == 0

    def _kept_done(self, w: _Watch, call: _Call) -> None:
        """The kept process's call is over (it has cleaned up and waits for the next, or
        ends): the server's own answer to the caller (who took the process's, as from any
        call), its connection closed; the push or fetch that waited for it handed on."""
        assert self.kept is not None
        w.forget(call.ctl.fileno(), call.conn.fileno())
        del self.children[self.kept.proc.pidfd]
        code = self.kept.finish()
        try:
            if code is not None:
                _send(call.conn, {"code": code})
        except OSError:
            pass
        call.conn.close()
        self.last = time.monotonic()
        self._resume(w, self.kept.take_waiting())

    def _end_kept(self) -> None:
        """Reap the kept process, ended between calls."""
        assert self.kept is not None
        try:
            os.waitpid(self.kept.proc.pid, 0)
        except ChildProcessError:
            pass
        self.kept.proc.ctl.close()
        os.close(self.kept.proc.pidfd)
        self.kept = None

    def _start(self, conn: socket.socket) -> int | None:
        """Read a call and fork its command; the child's pidfd, None, or
        :data:`.callproc.DEFERRED` (the call waits for the kept process)."""
        fds: list[int] = []
        try:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            if uid != os.getuid():
                return None
            if not peer_shares_namespaces(conn):  # (a view's command: its call runs there, not here)
                _send(conn, {"fallback": "another namespace"})
                if not self.children and gives_way_to(_pid, self.served, time.monotonic() - self.last):
                    self.idle_s = 0
                return None
            req = _recv_request(conn, fds)
            conn.settimeout(None)
            if "daemon" in req and req.get("v") == 1:  # a mount daemon to fork (warmdaemon.py)
                self._daemon(conn, req, fds)
                return None
            if req.get("v") != 1 or len(fds) != 3:
                _send(conn, {"fallback": "protocol"})
                self.idle_s = 0  # another avfs's caller: end (as for another stamp, below)
                return None
            if req.get("stamp") != self.stamp or self.code.changed():
                _send(conn, {"fallback": "another avfs"})
                self.idle_s = 0  # an upgrade or an edit: end, the next call starts a new one
                return None
            got = self._dispatch(conn, req, fds)
            if got == callproc.DEFERRED:
                fds = []  # (the waiting call's, closed when it is handed)
            return got
        except (OSError, ValueError, EOFError, ConnectionError):
            return None
        finally:
            for fd in fds:
                os.close(fd)

    def _dispatch(self, conn: socket.socket, req: dict[str, Any], fds: list[int]) -> int | None:
        """Hand a call to its process: the kept one for a push or fetch (when it is free,
        or waited for when it has answered its call), else the spare (or a fork now)."""
        if _gave_up(conn):
            return None  # interrupted while it waited (this server was still loading, or a kept call ran)
        argv = req.get("argv")
        argv = argv if isinstance(argv, list) else []
        kept = callproc.kept_call(argv)
        k = self.kept
        if kept and k is not None and not k.leaving:
            if k.proc.pidfd in self.children:
                if k.defer(conn, req, fds):
                    return callproc.DEFERRED
            elif k.proc.hand(conn, req, fds):
                return self._started(conn, k.proc.pid, k.proc.pidfd, k.proc.ctl)
            else:
                k.leaving = True  # it died: its pidfd says so
        ready, self.spare = self.spare, None
        if kept and self.kept is None:
            req = {**req, "kept": True}
        if ready is not None and ready.hand(conn, req, fds):
            pid, pidfd, ctl = ready.pid, ready.pidfd, ready.ctl
        else:
            if ready is not None:
                ready.discard()  # it died
            pid, ctl = _fork(conn, req, fds, self.written)
            pidfd = os.pidfd_open(pid)
        if req.get("kept"):
            self.kept = callproc.Kept(spare.Spare(pid, pidfd, ctl))
        return self._started(conn, pid, pidfd, ctl, _server_call(argv))

    def _resume(self, w: _Watch, waiting: tuple[socket.socket, dict[str, Any], list[int]] | None) -> None:
        """Hand the call that waited for the kept process (to it, or to the spare)."""
        if waiting is None:
            return
        conn, req, fds = waiting
        got = None
        try:
            got = self._dispatch(conn, req, fds)
        except (OSError, ValueError, EOFError, ConnectionError):
            pass
        finally:
            for fd in fds if got != callproc.DEFERRED else ():
                os.close(fd)
        if got is None or got == callproc.DEFERRED:
            conn.close()
        else:
            w.register(got, self.children[got])

    def _started(
        self, conn: socket.socket, pid: int, pidfd: int, ctl: socket.socket, server: bool = False
    ) -> int:
        """A call handed to its process: ``started`` answered (with no pid for the kept
        process: the caller relays signals through this server, which sends them only to
        the call in progress, as the process outlives it) and the call noted."""
        kept = self.kept is not None and pidfd == self.kept.proc.pidfd
        self.served += 1
        self.children[pidfd] = _Call(conn, pid, ctl, server, kept)
        try:
            _send(conn, {"started": 0 if kept else pid})
        except OSError:
            # the caller went away since its call was read (a Ctrl-C before any answer:
            # it said "interrupted" and ended): its command is hung up as any vanished
            # caller's. The call stays noted, so that its end is reaped and answered as
            # every call's; forgotten (this raised into _start), the command ran on with
            # nobody to stop it, reading the caller's stdin for ever (a fresh-clone run's
            # hang, the twenty-fourth round, flaky1). Not the kept process once it has
            # answered: its answer may beat ``started`` (the caller takes the first and
            # ends), and a SIGHUP sent then waits, blocked, for its next call and kills
            # that one: the next merge, push or fetch exited 255 with no output (1 in 3 of
            # `merge nope` after a fast merge, the twenty-eighth round, newcomer1)
            if not (kept and self.kept is not None and self.kept.answered_now()):
                _kill(pid, signal.SIGHUP)
        return pidfd

    def _daemon(self, conn: socket.socket, req: dict[str, Any], fds: list[int]) -> None:
        """Fork the mount daemon a served command asks for (:mod:`.warmdaemon`), unless this
        server's code is not the asker's or changed on disk (then it ends, as for a call)."""
        from . import warmdaemon

        why_not = None
        if req.get("stamp") != self.stamp or self.code.changed():
            why_not = "another avfs"
            self.idle_s = 0
        _send(conn, warmdaemon.serve(req, fds, why_not, self.fuse))
        self.last = time.monotonic()


class _Watch:
    """The server's poll set: the listening socket, and for each call in progress its
    caller's connection, its process's pidfd and report pair (what each descriptor is),
    and the descriptors closed or reused in this round (their events are stale)."""

    def __init__(self, lsock: socket.socket) -> None:
        self.poller = select.poll()
        self.poller.register(lsock, select.POLLIN)
        self.conns: dict[int, int] = {}  # conn fd -> pidfd of its child, while its caller listens
        self.reports: dict[int, int] = {}  # report fd -> pidfd of its child, until it reported
        self.done: set[int] = set()

    def drop(self, fd: int) -> None:
        try:
            self.poller.unregister(fd)
        except KeyError:
            pass

    def register(self, pidfd: int, call: _Call) -> None:
        """A call handed to its process."""
        self.done.update((pidfd, call.conn.fileno(), call.ctl.fileno()))
        self.poller.register(pidfd, select.POLLIN)
        self.poller.register(call.conn, select.POLLIN)
        self.poller.register(call.ctl, select.POLLIN)
        self.conns[call.conn.fileno()] = pidfd
        self.reports[call.ctl.fileno()] = pidfd

    def forget(self, *fds: int) -> None:
        for fd in fds:
            self.drop(fd)
            self.done.add(fd)
            self.reports.pop(fd, None)
            self.conns.pop(fd, None)


class _Call:
    """A call being served: the caller's connection, the pid of the process that runs it,
    and the server's end of the pair that process reports on once it has answered (closed
    then)."""

    __slots__ = ("conn", "ctl", "kept", "pid", "server")

    def __init__(
        self, conn: socket.socket, pid: int, ctl: socket.socket, server: bool = False, kept: bool = False
    ) -> None:
        self.conn = conn
        self.pid = pid
        self.ctl = ctl
        self.server = server  # `avfs server ...`: its stop waits for this server to go
        self.kept = kept  # run by the kept process (callproc.keep), which outlives it


def _server_call(argv: list[str]) -> bool:
    """Whether a call's arguments are `avfs [global options] server ...`."""
    from .client import _rest

    return _rest([str(a) for a in argv])[1][:1] == ["server"]


def _fork(
    conn: socket.socket, req: dict[str, Any], fds: list[int], known: spare.Written
) -> tuple[int, socket.socket]:
    """Fork the call's process now (no spare ready); its pid and the server's end of the
    pair it reports on."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # a signal the caller relays at once must wait for the child's own handlers
    # (blocked, not ignored as in this process: the kernel keeps it pending)
    signal.pthread_sigmask(signal.SIG_BLOCK, RELAYED)
    try:
        pid = os.fork()
        if pid == 0:
            mine.close()
            callproc.child(conn, req, fds, spare.Report(theirs, known))  # never returns
    except OSError:
        mine.close()
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, RELAYED)
        theirs.close()
    return pid, mine


def _gave_up(conn: socket.socket) -> bool:
    """The caller went away, or was interrupted, before its command started (it waits for
    ``started``; a call that came while the server was loading may have waited long)."""
    poller = select.poll()
    poller.register(conn, select.POLLIN | select.POLLRDHUP)
    return bool(poller.poll(0))


def _kill(pid: int, sig: int) -> None:
    """(A call's process: our child, not collected while its call is noted, so its pid is
    not another's: ``os.kill`` is safe.)"""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    """``python -m avfs_git.cli.resident --home HOME [--idle S] [--foreground]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    home = args[args.index("--home") + 1] if "--home" in args else None
    if home is None:
        print("usage: python -m avfs_git.cli.resident --home HOME", file=sys.stderr)
        return 2
    idle = float(os.environ.get("AVFS_SERVER_IDLE") or IDLE_S)
    if "--idle" in args:
        idle = float(args[args.index("--idle") + 1])
    os.chdir("/")  # never keep the caller's directory (a mount) busy
    adopted.become_reaper()
    # before the server is there to find: its children are then its calls' and spares' alone
    serverprobes.probe_sandbox(os.path.abspath(home))
    serverprobes.probe_git(os.path.abspath(home))
    server = Server(os.path.abspath(home), idle)
    lsock = server.bind()
    if lsock is None:
        return 0
    prewarm.load()
    from . import warmdaemon

    server.fuse = warmdaemon.load()  # the mount daemon's modules, for the daemons it forks
    if server.fuse is not None:
        warmdaemon.install(server.path)  # in the calls' processes: their mounts ask this one
    # the imported objects stay where they are: a collection in a child would otherwise
    # walk (and so copy, page by page) the whole heap it shares with this process
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        server.serve(lsock)
    except SystemExit:  # SIGTERM (avfs server stop): it leaves, and stays as when idle
        server.leave(lsock)
    with contextlib.suppress(SystemExit):  # (SIGTERM ends the wait)
        adopted.linger()  # left: its daemons and `server stop`'s own process end first
    return 0


if __name__ == "__main__":
    sys.exit(main())
