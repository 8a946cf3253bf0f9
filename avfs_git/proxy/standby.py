"""Sandboxes made ready before the command comes: a mount daemon's warm ``proxy exec``.

Setting up a bubblewrap sandbox (namespaces, ~40 mounts, ``pivot_root`` and the detach of
the old root) takes ~10 ms of wall time here, most of a confined ``true``. A mount's daemon
serves one agent's commands, one after the other, in sandboxes that are alike but for the
command, its working directory and its environment. So once it has answered a command, it
sets up the next sandbox (:meth:`Standbys.prepare`): the same ``bwrap`` arguments (see
:func:`.confine.argv`), whose command is a small waiter that reads the real command from
a pipe, changes into its directory, takes its environment and ``exec``\\ s it: the command
then replaces the waiter as the sandbox's process, exactly as when bwrap starts it itself.
The next request whose sandbox is the same (:meth:`Standbys.take`: the same bwrap arguments,
built anew for that request) starts in it at once; any other request, or none ready, sets
up its own as before. Nothing is shared between two commands: a sandbox serves one command
(its own private ``/tmp``, PID namespace, ...), and a new one is made for the next.

The waiter is Perl (``/usr/bin/perl``, in Debian's essential ``perl-base``: the sandbox
shows ``/usr``): it starts in ~2 ms of CPU where ``python3 -I -S`` takes ~8. Without Perl,
no sandbox is kept ready. It reports a working directory it could not enter, or a command
it could not ``exec``, on a pipe of its own that closes when the ``exec`` succeeds.

A ready sandbox holds a bind of the fork's mount in its own mount namespace, which would
keep the mount's file system alive after an unmount: it is ended as soon as the mount
point leaves the mount table (this thread watches it), and when the server closes.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .confine import Sandbox

PERL = "/usr/bin/perl"
# a ready sandbox older than this is remade (what it binds was current when it was made)
MAX_AGE_S = 600.0
# argv: GO_FD REPORT_FD. Reads from GO_FD (until EOF): cwd \0 N \0 N x "NAME=VALUE" \0 argv... \0
# On failure writes "chdir\0<errno>\0<message>" or "exec\0<errno>\0<message>" to REPORT_FD.
# It loads no module (nor does the Landlock program it is run by): `use Fcntl` took 1.6 ms
# of CPU, `no warnings` 2.8 (warnings.pm), `use strict` 0.3, of ~5 per sandbox; so Linux's
# F_SETFD (2) and FD_CLOEXEC (1) are written out, and warnings are off anyway (no -w; the
# interpreter starts with bwrap's environment, no PERL5OPT).
WAITER = r"""
my ($go, $rep) = @ARGV;
open(my $in, "<&=", $go) or exit 125;
open(my $out, ">&=", $rep) or exit 125;
binmode $in; binmode $out;
my $d = do { local $/; <$in> };
close $in;
exit 0 unless defined $d && length $d;
fcntl($out, 2, 1);
my @f = split /\0/, $d, -1; pop @f;
my $cwd = shift @f; my $n = shift @f;
%ENV = ();
for (1 .. $n) { my ($k, $v) = split /=/, shift(@f), 2; $ENV{$k} = $v; }
$0 = $f[0];
unless (chdir $cwd) { syswrite $out, "chdir\0" . ($! + 0) . "\0$!"; exit 125; }
exec { $f[0] } @f;
syswrite $out, "exec\0" . ($! + 0) . "\0$!";
exit 127;
"""


def available() -> bool:
    """Whether sandboxes can be kept ready here (the waiter's interpreter is there)."""
    return os.access(PERL, os.X_OK)


class Standby:
    """One sandbox set up and waiting for its command."""

    def __init__(
        self,
        key: tuple[str, ...],
        proc: subprocess.Popen[bytes],
        go_w: int,
        report_r: int,
        status_r: int,
        table: int = -1,
    ):
        self.key = key  # its bwrap arguments (the command aside)
        self.proc = proc
        self.go_w = go_w
        self.report_r = report_r
        self.status_r = status_r  # bwrap's --json-status-fd
        self.made = time.monotonic()
        # /proc/self/mounts, opened before its mount was found in it (see :meth:`unmoved`)
        self.table = table

    def unmoved(self) -> bool:
        """Whether the mount table is as it was when this sandbox's mount was found in it
        (so the mount is still there), without reading it: the kernel marks every open
        ``/proc/self/mounts`` when the table changes (``POLLPRI``), and reading the table
        costs ~1 ms with a few dozen mounts, 2-5 under load, on every warm call. Once
        false, always (the mark is read once: the table is let go)."""
        if self.table < 0:
            return False
        p = select.poll()
        p.register(self.table, select.POLLPRI | select.POLLERR)
        if p.poll(0):
            self.close_table()
            return False
        return True

    def close_table(self) -> None:
        if self.table >= 0:
            os.close(self.table)
            self.table = -1

    def start(self, argv: list[str], cwd: str, env: dict[str, str]) -> None:
        """Send the waiter its command (raises OSError when the waiter is gone)."""
        parts = [os.fsencode(cwd), str(len(env)).encode()]
        parts += [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items()]
        parts += [os.fsencode(a) for a in argv]
        data = b"\0".join(parts) + b"\0"
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.go_w, view) :]
        finally:
            os.close(self.go_w)
            self.go_w = -1

    def failure(self) -> tuple[str, int, str] | None:
        """What the waiter reported once the sandbox has ended: ("chdir" | "exec", errno,
        message), or None (the command was started)."""
        chunks = []
        try:
            while chunk := os.read(self.report_r, 4096):
                chunks.append(chunk)
        except OSError:
            pass
        finally:
            os.close(self.report_r)
            self.report_r = -1
        what, _, rest = b"".join(chunks).decode("utf-8", "replace").partition("\0")
        if what not in ("chdir", "exec"):
            return None
        num, _, msg = rest.partition("\0")
        return what, int(num) if num.isdigit() else 0, msg

    def discard(self) -> None:
        """End it unused."""
        self.close_table()
        from .reaping import end_sandbox

        end_sandbox(self.proc)
        for fd in (self.go_w, self.report_r, self.status_r):
            if fd >= 0:
                os.close(fd)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


class Standbys:
    """At most one sandbox kept ready for a mount's next command. Its thread makes them (a
    sandbox dies with the thread that started it: ``--die-with-parent``) and ends a ready
    one when its mount is unmounted; the API's (:func:`for_api`) then ends itself too, once
    every sandbox it made has ended (a command may still run in one)."""

    def __init__(self, *, daemon: bool = True) -> None:
        # a mount's daemon serving its own live mount (else the API's, for a fork mounted by
        # a daemon: its call still starts the mount when there is none; see :func:`for_api`)
        self.daemon = daemon
        self._lock = threading.Lock()
        self._ready: Standby | None = None
        self._want: Sandbox | None = None
        self._closed = False
        self._source: str | None = None  # the fork's mount (the last sandbox asked for)
        self._wake_r = self._wake_w = -1  # made with the thread (an unused one holds nothing)
        self._thread: threading.Thread | None = None
        # a pidfd of each bwrap this thread started that may still run: its thread waits for
        # them before it ends (see :meth:`_outlived`)
        self._started: list[int] = []

    @property
    def closed(self) -> bool:
        """Whether it makes no more sandboxes (closed, or the API's whose mount went)."""
        return self._closed

    def take(self, sb: Sandbox) -> Standby | None:
        """The ready sandbox when it is ``sb``'s (its cwd aside), else None (one that is not
        is ended)."""
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is None:
            return None
        if (
            ready.key == _key(sb)
            and ready.proc.poll() is None
            and time.monotonic() - ready.made < MAX_AGE_S
            and (ready.unmoved() or _mounted(sb.source))
        ):
            # its mount table stays open: asked again once the command has ended (is the
            # mount still there?), then closed by the caller (``close_table``)
            return ready
        ready.discard()
        return None

    def prepare(self, sb: Sandbox) -> None:
        """Make a sandbox like ``sb`` ready for the next command (in this object's thread)."""
        with self._lock:
            if self._closed:
                return
            self._want = sb
            self._source = sb.source
            if self._thread is None:
                self._wake_r, self._wake_w = os.pipe()
                self._thread = threading.Thread(target=self._loop, name="avfs-exec-standby", daemon=True)
                self._thread.start()
            os.write(self._wake_w, b"w")  # (under the lock: the thread closes the pipe once closed)

    def close(self) -> None:
        """End the ready sandbox and stop making new ones (once: a second call does nothing)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            ready, self._ready = self._ready, None
            if self._thread is not None:
                # under the lock: its thread, woken meanwhile by a change of the mount table,
                # sees _closed only after this and closes the pipe itself (written after the
                # lock, the byte could go to a closed descriptor or one reused since)
                os.write(self._wake_w, b"c")
            # (no thread: no pipe either, it is made with the thread)
        if ready is not None:
            ready.discard()

    def _loop(self) -> None:
        # commands must get an empty signal mask (see ExecServer._serve); a thread starts
        # with its creator's
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        with open("/proc/self/mounts", "rb") as mounts:
            poll = select.poll()
            poll.register(self._wake_r, select.POLLIN)
            poll.register(mounts, select.POLLPRI | select.POLLERR)
            while True:
                for fd, _ in poll.poll():
                    if fd == self._wake_r:
                        os.read(self._wake_r, 4096)
                    else:  # the mount table changed: is the ready sandbox's mount still there?
                        self._mount_changed()  # (the poll took the mark: the table is not read here)
                with self._lock:
                    if self._closed:
                        break
                    want, self._want = self._want, None
                if want is not None:
                    # opened first: a change of the table after the look below marks it
                    table = os.open("/proc/self/mounts", os.O_RDONLY | os.O_CLOEXEC)
                    if _mounted(want.source):
                        self._make(want, table)
                    else:  # (a mount released with its call: the API's has nothing to keep)
                        os.close(table)
                        self._mount_changed()
        with self._lock:  # (prepare writes to the pipe under it, while not closed)
            os.close(self._wake_r)
            os.close(self._wake_w)
        if not self.daemon:
            _forget(self)
        self._outlived(wait=True)

    def _outlived(self, *, wait: bool) -> None:
        """Forget the sandboxes this thread started that have ended; ``wait``: wait for the
        others first. bubblewrap's ``--die-with-parent`` is about the thread that started
        it (``PR_SET_PDEATHSIG``), so a command running in a ready sandbox this thread made
        was killed (137) when the thread ended: the API's, once its fork's mount went (an
        unmount while ``exec_in``'s command ran)."""
        while self._started:
            # (poll, not select: a pidfd numbered past 1024, as in a pure-FUSE daemon holding
            # a descriptor per open file, made select raise and the thread end: the review)
            poller = select.poll()
            for fd in self._started:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll(None if wait else 0):
                self._started.remove(fd)
                os.close(fd)
            if not wait:
                return

    def _mount_changed(self) -> None:
        """After a change of the mount table: a ready sandbox whose mount went is ended; the
        API's ends too, thread and all, once its fork's mount went (a process that runs
        commands in fork after fork, each mounted then released, would otherwise keep a
        thread and its descriptors for every fork it ever ran one in). A call that comes
        later gets a new one from :func:`for_api`."""
        with self._lock:
            ready = self._ready
            if ready is not None and not _mounted(ready.key[-1]):
                self._ready = None
            else:
                ready = None
            if not self.daemon and self._source is not None and not _mounted(self._source):
                self._closed = True  # (a ready one is of this mount: ended above)
                ready, self._ready = self._ready or ready, None
        if ready is not None:
            ready.discard()

    def _make(self, sb: Sandbox, table: int = -1) -> None:
        """Set up a sandbox like ``sb``; ``table``: the open mount table it keeps (closed
        here when none is made)."""
        from . import confine, keeper

        key = _key(sb)
        go_r, go_w = os.pipe()
        report_r, report_w = os.pipe()
        status_r, status_w = confine.status_pipe()  # (bwrap's end a reader: it never sees EPIPE)
        for fd in (go_w, report_r, status_r):
            os.set_inheritable(fd, False)
        sc = confine.seccomp_fd()
        own = (go_r, report_w, status_w, *([sc] if sc >= 0 else []))
        # (own: the Perl that applies the Landlock domain runs the waiter: one Perl start)
        args = confine.argv(
            _at_root(sb), [PERL, "-e", WAITER, str(go_r), str(report_w)], own=True, seccomp_from=sc
        )
        args[1:1] = ["--json-status-fd", str(status_w)]
        try:
            proc = subprocess.Popen(
                args,
                cwd="/",
                # nothing of the caller's (the waiter sets the command's own); marked as its
                # daemon's (proxy/keeper.py)
                env=keeper.bwrap_env(dict(confine.BWRAP_ENV)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                pass_fds=own,
            )
        except OSError:
            for fd in (go_w, report_r, status_r, *((table,) if table >= 0 else ())):
                os.close(fd)
            return
        finally:
            for fd in own:
                os.close(fd)
        self._outlived(wait=False)
        try:
            self._started.append(os.pidfd_open(proc.pid))  # (our child, not collected yet)
        except (AttributeError, OSError):
            pass
        new = Standby(key, proc, go_w, report_r, status_r, table)
        with self._lock:
            old, self._ready = self._ready, (None if self._closed else new)
        for s in (old, None if self._ready is new else new):
            if s is not None:
                s.discard()


def _at_root(sb: Sandbox) -> Sandbox:
    """``sb`` waiting at the sandbox's ``/`` (its waiter changes into the command's cwd):
    not in the fork's mount, so that it is never counted among the processes holding it."""
    import dataclasses

    return dataclasses.replace(sb, cwd="/")


def _key(sb: Sandbox) -> tuple[str, ...]:
    """What makes two sandboxes the same: their bwrap arguments, the command aside (built
    now, so a file that appeared or went since makes a different key), and the vault's
    files they bind by inode (:func:`.confine.kept_files`: one replaced since makes another
    key), and so what is bound read-only in the worktree's git dir
    (:func:`.confine.bound_in_writable`), and the view of ``/etc`` it was made with
    (:func:`.sysview.token`: any change below ``/etc`` makes another key). Its last element is the fork's mount (``--bind SOURCE PATH --chdir PATH --``: see
    :func:`.confine.argv`)."""
    from . import confine, sysview

    args = confine.argv(_at_root(sb), [])
    view = sysview.token()  # (a masked file of /etc replaced since: its mask is gone in a made one)
    return (*args, *confine.kept_files(sb.keep), *confine.bound_in_writable(sb), view, sb.source)


def _mounted(path: str) -> bool:
    from ..core.vaults.registry import mounted_at

    return mounted_at(path)


# the API's ready sandboxes, one set per fork a process ran `exec_in` in (state dir, fork)
_api: dict[tuple[str, str], Standbys] = {}
_api_lock = threading.Lock()


def _forget(got: Standbys) -> None:
    """Drop ``got`` from the API's sets once it has ended (when it is still the one kept)."""
    with _api_lock:
        for key, kept in list(_api.items()):
            if kept is got:
                del _api[key]


def _forget_in_child() -> None:
    # a forked child has none of their threads: it makes its own
    _api.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def for_api(state_dir: str, fork: str) -> Standbys | None:
    """The sandboxes kept ready for this process' next ``exec_in`` in ``fork`` (MCP's
    ``exec`` is the same call): as a mount's daemon keeps one for the CLI's next call, so an
    agent driving avfs through the API does not set a sandbox up on every command either.
    None where no waiter can run (no Perl)."""
    if not available():
        return None
    with _api_lock:
        got = _api.get((state_dir, fork))
        if got is None or got.closed:  # (one whose mount went, its thread ending)
            got = _api[(state_dir, fork)] = Standbys(daemon=False)
        return got
