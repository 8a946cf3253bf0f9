"""A served call's process: the caller's process for one call (:func:`child`), and for a
push, a fetch or a merge, the process kept for the next ones (:func:`keep`).

The resident server (:mod:`.resident`) runs each call in a process forked from itself (or
from its spare, :mod:`.spare`): that process takes the caller's standard streams,
working directory, umask, environment and arguments, runs the same click CLI a direct call runs,
answers with its code and exits. The fork is what isolates one call from the next: every
call starts from the server's state after its imports, never from what an earlier call
left (its environment, its open databases and locks, its threads, module caches). Its
price is the pages a call writes, each a copy of the server's (~1,500-2,000 a call here,
~3.5 µs each, ahead in a spare or on the call's way): ~10-15 ms of CPU a call, against a
push's or a fetch's ~12-18 ms of git.

**The kept process.** A push or a fetch is mostly git (``git push``/``git fetch`` and
the processes git starts), and avfs's own Python around it (the vault, its config, the
op log). So the process of a push or fetch call is kept for the next one: once it has
answered, it closes what the command opened and checks that the call left nothing behind
(:func:`_clean`: no file descriptor beyond the ones it held before the command, no thread,
the same umask, an ordinary exit code), and only then tells the server it can take
another push or fetch (anything else, or a call that left something, ends it as every
call's process ends). The pages it copied are its own from then on: the next call copies
none, and no spare is forked for it. A merge is kept the same way (:data:`KEPT_COMMANDS`):
its own work on a real project is ~10-20 ms of CPU, against ~30 ms of the fork per call
and the next call's spare (docs/benchmarks.md, h-merge3's section); the workspaces it
used last stay open for the next call, the others are closed after each call
(:meth:`.homekeep.KeptHome.release`), and its locks, threads and descriptors are checked as theirs are. What it isolates, it
checks rather than assumes:

- the environment, working directory, umask, arguments and standard streams are each call's
  own, set from the request as in a fresh process (the environment back to the server's
  between calls, so no caller's secret outlives its call there);
- the databases and git handles the command opened are closed (:meth:`.app.App.close`),
  so no lock, WAL or cached object of one call's is held into the next (and the fd check
  proves it); a command's module-level state is the same as in a fresh process for
  these commands: the front end reads the environment per call and passes settings
  down (core reads none), what core keeps for a process (the git config's answers, the
  mount records' contents) is keyed by the files' stat data, and what the standard
  library keeps from an environment it read once (``tempfile.tempdir``) is forgotten
  (:func:`_forget_derived`);
- signals: the caller relays through the server (its ``started`` answer names no pid),
  which sends only to the call in progress until it has answered; a relayed signal ends
  the call (its code 130, or the signal's default action), and so the kept process; one
  relayed for the next call before this process has read it waits, blocked, for it;
- a call that fails in avfs (exit 70) or is interrupted ends it.
"""

from __future__ import annotations

import io
import marshal
import os
import signal
import socket
import sys
from typing import Any

from . import spare
from .homekeep import KeptHome, open_paths

RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
WAL_CLOSE_AT = 256 << 10  # a served command closes its databases when a WAL is past this
KEPT_COMMANDS = ("push", "fetch", "merge")  # the calls a kept process serves (:func:`keep`)
KEPT_CODES = (0, 1, 2, 3, 5, 75)  # ends after which a kept process takes another call
KEPT_CALLS = 200  # a kept process ends after this many calls (what a call leaks stays bounded)
ANSWER_FD = 3  # where a call's process keeps its caller's connection


def _text(fd: int, encoding: str, errors: str, *, line: bool) -> io.TextIOWrapper:
    """A text stream on the caller's ``fd`` (the server's own were made for /dev/null)."""
    raw = io.FileIO(fd, "r" if fd == 0 else "w", closefd=False)
    if fd == 0:
        return io.TextIOWrapper(io.BufferedReader(raw), encoding=encoding, errors=errors)
    return io.TextIOWrapper(io.BufferedWriter(raw), encoding=encoding, errors=errors, line_buffering=line)


def _become(req: dict[str, Any], enc: str, errs: str) -> None:
    """Take the call's working directory, environment, streams (fds 0-2 already the
    caller's) and arguments; the relayed signals as a fresh process has them (still
    blocked: :func:`_run` lets them in)."""
    for sig in (*RELAYED, signal.SIGPIPE, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(req["cwd"])
    mask = req.get("umask")
    if isinstance(mask, int) and 0 <= mask <= 0o777:
        # the caller's (found in the sixteenth round, NAME=attack7: every served call ran
        # with the umask of the process that started the server, so a person's `umask 077`
        # was not applied to what a served call wrote, and one caller's was every later one's)
        os.umask(mask)
    _set_environ({os.fsdecode(k): os.fsdecode(v) for k, v in req["env"].items()})
    sys.stdin = _text(0, enc, errs, line=False)
    sys.stdout = _text(1, enc, errs, line=os.isatty(1))
    sys.stderr = _text(2, enc, "backslashreplace", line=True)
    sys.argv = ["avfs", *req["argv"]]


def _run(req: dict[str, Any], kept: KeptHome | None = None) -> tuple[int, list[Any]]:
    """Run the click CLI on the call's arguments: (its code, the apps it opened); ``kept``:
    the home a kept process keeps open from call to call (cli/homekeep.py), its calls'
    arguments read without click where :func:`.fastcli.fast` takes them (a merge's)."""
    from .main import interrupted
    from .main import main as click_main

    opened: list[Any] = []
    try:
        # the relayed signals, blocked across the fork, are let in once the command can
        # answer them: a Ctrl-C in the set-up (the caller's stdin already this process's)
        # is the command's interruption, not an exit with no answer
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, RELAYED)
        except KeyboardInterrupt:
            # relayed before the command began (a Ctrl-C as the caller read "started"):
            # answered as the command's own Ctrl-C is, not 130 with no word (with --json,
            # no document)
            return interrupted(list(req["argv"])), opened
        got = None
        if kept is not None:  # (a merge's arguments without click, as a cold process's)
            from .fastcli import fast

            got = fast(list(req["argv"]), opened=opened, kept=kept)
        code = click_main(list(req["argv"]), opened=opened, kept=kept) if got is None else got
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        code = 130
    return code, opened


def _answer(code: int, *, kept: bool) -> None:
    """Flush the command's output, let go of the caller (:func:`release_caller`) and send
    it ``code`` on :data:`ANSWER_FD`. The caller ends once it has the answer, and the
    server hangs up (SIGHUP) the command of a caller that went away: this one is over.
    A kept process ignores the relayed signals and SIGPIPE from here on (until its next
    call), and tells the server first that its call has answered."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        pass
    release_caller()  # what follows the answer is not the caller's to wait for
    data = marshal.dumps({"code": code})
    for sig in (*RELAYED, signal.SIGPIPE) if kept else (signal.SIGHUP,):
        signal.signal(sig, signal.SIG_IGN)  # (a kept process: a server gone is an EPIPE)
    if kept:  # first to the server: a push or fetch the caller sends next waits for this process
        try:
            os.write(spare.REPORT_FD, b"%08d" % len(data) + data)
        except OSError:
            pass
    try:
        os.write(ANSWER_FD, b"%08d" % len(data) + data)
    except OSError:
        pass  # the caller went away


def child(conn: socket.socket, req: dict[str, Any], fds: list[int], report: spare.Report) -> None:
    """In the forked child: become the caller's process, run the CLI, answer with its code
    and exit. The answer goes from here, before the process ends (the server's own, sent
    when it reaps the child, comes ~1-2 ms later: a process of this size takes that long to
    tear down; it is the one that counts when this one dies first). Then it ``report``s
    to the server that it has answered, with the pages it wrote (the next spare is forked
    then, and copies them ahead). A call the server marks ``kept`` goes on in
    :func:`keep` instead."""
    code = 70
    try:
        keep_fd = report.keep()  # (above the descriptors moved below)
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
        os.dup2(conn.fileno(), ANSWER_FD, inheritable=False)
        os.dup2(keep_fd, spare.REPORT_FD, inheritable=False)
        # the server's socket and other calls' (close_range(2))
        os.closerange(spare.REPORT_FD + 1, 1 << 20)
        enc, errs = sys.stdout.encoding, sys.stdout.errors or "strict"
        server_env = dict(os.environ)  # (a kept process takes it back between calls)
        server_umask = os.umask(0o022)  # (and this)
        os.umask(server_umask)
        _become(req, enc, errs)
        kept = KeptHome() if req.get("kept") else None
        code, opened = _run(req, kept)
        _answer(code, kept=kept is not None)
        if kept is not None:
            code = keep(code, opened, (enc, errs), server_env, kept, server_umask)
            return
        report.send(spare.REPORT_FD)
        for app in opened:
            app.run_after()  # what the command left for after its answer (an audit fsync)
        for app in opened:
            app.run_ahead()  # work for a later call (a fork's next snapshot)
        _write_back(_wal_grown())
    finally:
        os._exit(code)


def keep(
    code: int,
    opened: list[Any],
    encoding: tuple[str, str],
    server_env: dict[str, str],
    kept: KeptHome,
    server_umask: int | None = None,
) -> int:
    """In a push's or fetch's process, its answer out: close what the command opened and,
    when the call left nothing behind (:func:`_clean`), tell the server (on
    :data:`.spare.REPORT_FD`) that it takes another push or fetch, wait for it and run it
    as :func:`child` runs the first; each call's code goes to the server there too.
    Returns the code to exit with: when a call left something, after :data:`KEPT_CALLS`
    calls, or when the server closes the pair. A call whose set-up fails ends the
    process at once, with no answer (70, as :func:`child`'s own). The calls' home is
    ``kept`` open from one to the next (cli/homekeep.py), closed when the process ends."""
    umask = os.umask(0o022)  # the call's: one it left changed is not kept
    os.umask(umask)
    if server_umask is None:
        server_umask = umask
    ctl = socket.socket(fileno=spare.REPORT_FD)
    calls = 1
    while True:
        for app in opened:
            app.run_after()
        for app in opened:
            app.run_ahead()
        for app in opened:
            app.close()  # (the kept home's workspaces; the home stays open)
        opened = []
        _set_environ(server_env)
        _forget_derived()
        _hold(ANSWER_FD)
        links = _fd_links()  # (read once: the WALs' look and the clean check's, h-merge8)
        grown = _wal_grown(links)
        _write_back(grown)  # (the kept home's databases: their WALs stay small)
        # (a write-back opened and closed descriptors: the clean check reads them anew)
        again = calls < KEPT_CALLS and code in KEPT_CODES and _clean(umask, kept, None if grown else links)
        os.umask(server_umask)  # (the next call sets its own)
        if not again:
            kept.close()
        # a signal the server relays for the next call waits for the command's handlers
        # (as across a spare's fork: blocked, not ignored, the kernel keeps it pending),
        # from before this process is free: the server may relay it as soon as it has
        # handed the call, before this process has read it (ignored then, it was lost: the
        # push went on). None for the call just done comes meanwhile: the server relays
        # nothing to a call that has answered (ignored until here)
        signal.pthread_sigmask(signal.SIG_BLOCK, RELAYED)
        data = marshal.dumps({"done": code, "kept": again})
        try:
            ctl.sendall(b"%08d" % len(data) + data)
        except OSError:
            return code
        if not again:
            return code
        got = spare.receive(ctl)
        if got is None:
            return 0  # the server closed the pair: nothing more to run
        code = 70
        try:
            conn_fd, req, fds = got
            _install(conn_fd, fds)
            _become(req, *encoding)
            umask = os.umask(0o022)
            os.umask(umask)
            code, opened = _run(req, kept)
            _answer(code, kept=True)
        except BaseException:
            os._exit(code)  # (the server answers with it)
        del got, req  # (the request's environment goes with the call)
        calls += 1


def _hold(fd: int) -> None:
    """Let go of what ``fd`` holds (the caller's connection), keeping its number taken
    (``/dev/null``) until the next call's ``dup2`` onto it (:func:`_install`). Closed, the
    number was the lowest free one, and the next descriptor opened took it: in the kept
    process, :func:`_write_back`'s connection to a database the kept home holds open,
    whose descriptor SQLite keeps open after its close while the home's connection holds
    locks on that file. The ``dup2`` then closed it, and POSIX drops every lock a process
    holds on a file when any of its descriptors to that file closes: the kept op log's
    shared locks went, the next process to close the op log took itself for its last
    user and removed the WAL under the kept connection ("database disk image is
    malformed": a merge done, not recorded; tests/test_keptmerge.py)."""
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        os.dup2(null, fd, inheritable=False)
    finally:
        os.close(null)


def _set_environ(env: dict[str, str]) -> None:
    """Make this process's environment ``env``: the variables it lacks unset, the ones
    that differ set (each a ``putenv``; a clear and a whole update was ~80 of them a
    call, a push's and its server's environment mostly the same)."""
    environ = os.environ
    for name in [n for n in environ if n not in env]:
        del environ[name]
    for name, value in env.items():
        if environ.get(name) != value:
            environ[name] = value


def _forget_derived() -> None:
    """Forget what the standard library keeps for the process from a call's environment
    once it is read: ``tempfile.tempdir`` (``TMPDIR``'s answer, kept by the first
    ``gettempdir()``: a push's checkpoint makes its scratch work tree for ``git
    check-ignore`` there, and the next call's went to the first one's ``TMPDIR``). None,
    as in a fresh process: the next call reads its own (nothing of avfs's sets it)."""
    import tempfile  # (the server's: prewarm.py imports it)

    tempfile.tempdir = None


def _install(conn_fd: int, fds: list[int]) -> None:
    """The next call's connection at :data:`ANSWER_FD` and its streams at 0-2 (each
    moved above 63 first: the kernel gives the received ones the lowest numbers free,
    which may be the targets themselves)."""
    import fcntl

    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64) for fd in (*fds, conn_fd)]
    for fd in (*fds, conn_fd):
        os.close(fd)
    for i, fd in enumerate(high[:3]):
        os.dup2(fd, i)
    os.dup2(high[3], ANSWER_FD, inheritable=False)
    for fd in high:
        os.close(fd)


def _clean(umask: int, kept: KeptHome, links: dict[int, str] | None = None) -> bool:
    """Whether the call left nothing behind in this process: no descriptor but the
    streams and the answer's (on /dev/null), the server's pair and the ones the ``kept`` home may hold
    (:meth:`.homekeep.KeptHome.holds`: its files, no lock of avfs's), one thread, the
    same umask. Looked at first as the call left it, then, if something is left, again
    after a collection of the cycles (what a call's cycles held is let go then): a full
    collection every call was ~0.9 ms of a served merge's CPU after its answer, where
    most calls leave no cycle that holds a descriptor (h-merge6). ``links``: each open
    descriptor's link (:func:`_fd_links`) as read since the call's last change of them,
    for the first look (the second reads them anew)."""
    if _left_nothing(umask, kept, links):
        return True
    import gc

    gc.collect()
    return _left_nothing(umask, kept)


def _left_nothing(umask: int, kept: KeptHome, links: dict[int, str] | None = None) -> bool:
    """:func:`_clean`'s look, once (``links``: :func:`_clean`'s)."""
    import threading

    try:
        listed = list(links) if links is not None else [int(x) for x in os.listdir("/proc/self/fd")]
        tasks = len(os.listdir("/proc/self/task"))
    except OSError:
        return False
    # (not listdir's own, closed by now; ``links`` were read after it closed: each one
    # read is open, nothing closed since, h-merge11)
    fds = set(listed) if links is not None else {fd for fd in listed if _open(fd)}
    now = os.umask(umask)
    os.umask(now)
    own = {0, 1, 2, ANSWER_FD, spare.REPORT_FD}  # (the answer's on /dev/null: _hold)
    if not own <= fds:
        return False
    # (read once for every descriptor's check)
    paths = {fd: links[fd] for fd in fds if fd in links} if links is not None else open_paths(fds)
    return (
        all(kept.holds(fd, paths) for fd in fds - own)
        and tasks == 1
        and threading.active_count() == 1
        and now == umask
    )


DEFERRED = -1  # (:meth:`Kept.defer`: the call waits for the kept process)


class Kept:
    """The server's side of its kept process (:func:`keep`): the process, what it has
    said of its call in progress (``{"code": N}`` once it has answered, then ``{"done":
    N, "kept": BOOL}`` once it has cleaned up and waits for the next, or ends), and the
    push or fetch that came meanwhile, which waits for it rather than for a spare."""

    def __init__(self, proc: spare.Spare) -> None:
        self.proc = proc
        self.buf = b""
        self.answered = False  # the call in progress has answered its caller
        self.done: dict[str, Any] | None = None  # its last word on the call (then cleared)
        self.leaving = False  # it ends (its pidfd says when): no call goes to it
        self.eof = False  # its end of the pair is closed
        self.waiting: tuple[socket.socket, dict[str, Any], list[int]] | None = None

    def read(self) -> None:
        """Take what the process said (never blocks): :attr:`answered`, :attr:`done`, and
        :attr:`eof` once it closed its end (it ends: its pidfd says how)."""
        ctl = self.proc.ctl
        try:
            ctl.setblocking(False)
            while chunk := ctl.recv(4096):
                self.buf += chunk
            self.eof = self.leaving = True
        except BlockingIOError:
            pass
        except OSError:
            self.eof = self.leaving = True
        finally:
            ctl.setblocking(True)
        while len(self.buf) >= 8 and self.buf[:8].isdigit() and len(self.buf) >= 8 + int(self.buf[:8]):
            size = int(self.buf[:8])
            try:
                msg = marshal.loads(self.buf[8 : 8 + size])
            except (ValueError, EOFError, TypeError):
                msg = None
            self.buf = self.buf[8 + size :]
            if isinstance(msg, dict) and "done" in msg:
                self.done = msg
                self.leaving = self.leaving or msg.get("kept") is not True
            elif isinstance(msg, dict) and "code" in msg:
                self.answered = True

    def answered_now(self) -> bool:
        """Whether the call in progress has answered, from what the process has said by
        now (:meth:`read`: it says so before its caller has the answer, and long before it
        blocks the relayed signals for the next call)."""
        self.read()
        return self.answered or self.done is not None

    def finish(self) -> int | None:
        """The call's code (None when it said none), the call forgotten."""
        code = self.done.get("done") if self.done is not None else None
        self.done, self.answered = None, False
        return code if isinstance(code, int) else None

    def defer(self, conn: socket.socket, req: dict[str, Any], fds: list[int]) -> bool:
        """Keep a push or fetch for this process, busy with another that has answered
        (it cleans up: ~1 ms of CPU, but closing the command's databases writes their WALs
        back, a sync each: 8-190 ms of wall seen at load 13-18; the server hands it this
        call once it says it is done, :attr:`done`); False when it cannot wait (one waits
        already, or the call in progress has not answered)."""
        self.read()
        if self.leaving or not self.answered or self.waiting is not None:
            return False
        self.waiting = (conn, req, fds)
        return True

    def take_waiting(self) -> tuple[socket.socket, dict[str, Any], list[int]] | None:
        got, self.waiting = self.waiting, None
        return got


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def kept_call(argv: list[str]) -> bool:
    """Whether a call's arguments are one of :data:`KEPT_COMMANDS` (after the global
    options)."""
    from .client import _rest

    return _rest([str(a) for a in argv])[1][:1] in ([c] for c in KEPT_COMMANDS)


def release_caller() -> None:
    """Let go of what this process holds of its caller's: its standard streams (sent with
    the request; pointed at ``/dev/null``) and its working directory (left for ``/``). A
    caller that reads the output to its end through a pipe (as an agent's tool runner or
    ``subprocess.run(capture_output=True)`` reads it) would otherwise see the end only when
    this process exits, and so wait for what it does after its answer (the pages it
    reports, the WALs it writes back, a fork's next snapshot); and a caller in a mount that
    unmounts it at once would find it busy meanwhile."""
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for fd in (0, 1, 2):
            os.dup2(null, fd)
    finally:
        os.close(null)
    os.chdir("/")


def _write_back(dbs: list[str]) -> None:
    """Write each of ``dbs``' WAL back into the database and empty it
    (``wal_checkpoint(TRUNCATE)``), through a connection of its own.

    The command's own connections stay open (the process ends without closing them), so a
    database whose WAL is small keeps it: the next process's write appends to it. Closing
    them all whenever one WAL had grown (as this did) removed every WAL, and the next write
    to each started a new one: a sync of its header and one of its directory, on the next
    call's path (`vault fork`'s op log, 6-15 ms at load 9, in every call where a process
    holding the source open kept its overlay's WAL past the mark, which a closing child
    could not write back: the holder's connection kept it from being the last)."""
    import sqlite3

    for db in dbs:
        try:
            conn = sqlite3.connect(db, timeout=0.2, isolation_level=None)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
        except sqlite3.Error:
            pass  # busy: the next command's turn


def _fd_links() -> dict[int, str]:
    """This process's open descriptors and what each names (``/proc/self/fd``; the
    listing's own, closed by then, left out)."""
    try:
        return open_paths(int(x) for x in os.listdir("/proc/self/fd"))
    except OSError:
        return {}


def _wal_grown(links: dict[int, str] | None = None) -> list[str]:
    """The databases this process has open whose WAL is past :data:`WAL_CLOSE_AT`: their
    command writes those back once its answer is out (nobody waits; :func:`_write_back`).

    A served command ends with ``os._exit``, which closes nothing: each WAL grew with every
    served write up to SQLite's own checkpoint at ~4 MB, and the next process to open a
    database alone (every CLI call but where a mount's daemon holds it) read its whole WAL
    to rebuild the index: status 10.5 -> 24 ms with a 1.9 MB overlay WAL (in the server's
    child, load ~9). Closing after every command would cost the next write of each database
    a sync of its new WAL's header instead (SQLite's ``synchronous=NORMAL``, 0.2-6 ms on a
    busy disk); past a quarter of a MiB, that is one sync per ~60 pages written.
    ``links``: :func:`_fd_links`'s (read here when not given)."""
    grown: set[str] = set()
    for path in (_fd_links() if links is None else links).values():
        try:
            if path.endswith("-wal") and os.stat(path).st_size > WAL_CLOSE_AT:
                grown.add(path.removesuffix("-wal"))
        except OSError:
            continue
    return sorted(grown)
