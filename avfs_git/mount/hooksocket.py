"""The Unix socket over which a mount's daemon answers git's fsmonitor hook.

git runs the hook (mount/worktree.py's :func:`~.hookscripts.socket_hook`: Perl where the mount
found ``perl``, else Python) on every ``git status`` in a fork's mount, of either backend;
the hook only relays: it sends git's token and a newline over ``SOCKET_NAME`` in the
mount's own directory (core/vaults/registry.py :func:`~.registry.mount_dir`, which a confined
command can neither see nor replace: never the worktree's git dir), and prints what comes
back. The daemon holds what the answer is
made of, and answers through :class:`HookServer` with its backend's :class:`Answerer`: the
kernel's record of an overlay mount's upper layer (core/workspace/upperwatch.py), or a pure-FUSE
mount's journal (mount/journalhook.py). A daemon that is gone answers nothing: the hook then
prints ``/`` (everything may have changed; git looks at every file), which is slow but
right, and rare: a mount whose daemon is gone cannot be statused anyway.

What goes over the socket (the socket's name, the answer's framing, avfs's own client
:func:`~.hookwire.ask`) is core/workspace/hookwire.py's: a status in any process asks a live
overlay mount's daemon for its journal the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ..core.workspace.hookwire import SOCKET_NAME, Answerer, frame, own_reply
from . import personhooks

log = logging.getLogger("avfs.hooksocket")


# A connection that has not sent its whole question and read its whole answer within this
# many seconds is closed (the hook sends its token at once and reads at once); at most this
# many are open at a time, the oldest closed for a new one. The socket is shown inside a
# confined command's sandbox (its git runs the hook there): before the twenty-fifth round
# (NAME=attack16) the daemon answered one connection at a time, waiting up to 10 s for each
# read, so a command that held connections open (or sent a byte every 9 s) held every `git
# status` of the person's in the mount until the hook gave up (60 s, then "/": git looked at
# every file).
DEADLINE_S = 10.0
MAX_OPEN = 32
MAX_QUESTION = 4096


class _Conn:
    __slots__ = ("deadline", "got", "out", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.got = b""
        self.out: bytes | None = None  # the answer still to send, once asked


class HookServer:
    """Answers git's fsmonitor hook of one mount over a Unix socket (``SOCKET_NAME`` in
    ``git_dir``, the mount's own directory) with ``answerer``: the hook sends its token and a newline and
    reads the answer's length in bytes, a newline and the answer (``token\\0path\\0...``)
    until the daemon closes the connection; one not of that length is not used.
    ``on_ask`` is called as each query comes in, before it is answered: git is about to
    look at the worktree (an overlay mount's background walk stands aside, fuse/warm.py).

    One thread serves every connection (``selectors``, no blocking read or write): a
    connection is given :data:`DEADLINE_S` for its question and its answer together, and
    at most :data:`MAX_OPEN` are open (a new one closes the oldest), so no client holds
    another's answer, and the daemon's threads and descriptors stay bounded whatever
    connects (a confined command can: the socket is shown in its sandbox)."""

    def __init__(self, git_dir: str, answerer: Answerer, on_ask: Callable[[], None] | None = None) -> None:
        self.answerer = answerer
        self.on_ask = on_ask
        self.own = git_dir
        self.path = os.path.join(git_dir, SOCKET_NAME)
        # bound through the directory's descriptor: a socket's path is limited to 107 bytes
        dirfd = os.open(git_dir, os.O_PATH | os.O_CLOEXEC)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.bind(f"/proc/self/fd/{dirfd}/{SOCKET_NAME}")
        finally:
            os.close(dirfd)
        self._sock.listen(16)
        self._sock.setblocking(False)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._closing = False
        self._gates: Any = None  # an inotify of the worktree's git dir (see _watch_gates)
        self._watch_gates()
        self._thread = threading.Thread(target=self._serve, name="avfs-fsmonitor", daemon=True)

    def _watch_gates(self) -> None:
        """Watch the worktree's git dir for its ``config.worktree`` (git writes it anew by a
        rename), and make the gates of the mount's hooks (personhooks.GATES) links to its
        gate scripts while git's fsmonitor is off for the worktree, to the person's hooks
        else: a `git config --worktree core.fsmonitor false` in the mount is followed as the
        next git command starts, and a commit pays for no gate while git asks this daemon."""
        git_dir = personhooks.worktree_of(self.own)
        if git_dir is None:
            return
        try:
            from inotify_simple import INotify, flags

            ino = INotify()
            try:
                ino.add_watch(git_dir, flags.MOVED_TO | flags.CLOSE_WRITE | flags.DELETE)
            except OSError:
                ino.close()
                raise
            self._gates = ino
            self._regate()
        except Exception:
            log.exception("watching the mount's worktree config")

    def _regate(self) -> None:
        try:
            personhooks.gate(self.own, personhooks.fsmonitor_off(self.own))
        except Exception:
            log.exception("pointing the mount's gates")

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closing = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join(5.0)
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._gates is not None:
            with contextlib.suppress(OSError):
                self._gates.close()

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._sock, selectors.EVENT_READ, None)
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        if self._gates is not None:
            sel.register(self._gates.fileno(), selectors.EVENT_READ, None)
        conns: dict[int, _Conn] = {}  # (in the order accepted: the oldest first)
        try:
            while not self._closing:
                timeout = None
                if conns:
                    timeout = max(0.0, min(c.deadline for c in conns.values()) - time.monotonic())
                events = sel.select(timeout)
                if self._closing:
                    return
                accept = False
                for key, _mask in events:
                    if key.fileobj is self._sock:
                        accept = True
                    elif self._gates is not None and key.fileobj == self._gates.fileno():
                        # (git writes its index here at every status: only its config counts)
                        if any(e.name == "config.worktree" for e in self._gates.read(timeout=0)):
                            self._regate()
                    elif key.data is not None:
                        want = self._step(key.data)
                        if not want:
                            self._drop(sel, conns, key.data)
                        elif want != key.events:
                            sel.modify(key.fileobj, want, key.data)
                if accept:  # (after the connections that are ready: theirs first)
                    self._accept(sel, conns)
                now = time.monotonic()
                for c in [c for c in conns.values() if c.deadline <= now]:
                    self._drop(sel, conns, c)
        finally:
            for c in list(conns.values()):
                self._drop(sel, conns, c)
            sel.close()

    def _accept(self, sel: selectors.BaseSelector, conns: dict[int, _Conn]) -> None:
        for _ in range(MAX_OPEN):
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                if self._closing:
                    return
                log.exception("accepting git's fsmonitor hook")
                return
            sock.setblocking(False)
            c = _Conn(sock, time.monotonic() + DEADLINE_S)
            want = self._step(c)  # (the hook's question is often there already: answered now)
            if not want:
                sock.close()
                continue
            if len(conns) >= MAX_OPEN:
                self._drop(sel, conns, next(iter(conns.values())))  # the oldest
            conns[sock.fileno()] = c
            sel.register(sock, want, c)

    def _step(self, c: _Conn) -> int:
        """Read ``c``'s question, answer it, send the answer, as far as each goes without
        waiting: what to wait for next (``selectors.EVENT_READ``/``EVENT_WRITE``), 0 when
        the connection is done with (answered, gone, or failed)."""
        try:
            if c.out is None:
                chunk = c.sock.recv(MAX_QUESTION)
                c.got += chunk
                if chunk and not c.got.endswith(b"\n") and len(c.got) < MAX_QUESTION:
                    return selectors.EVENT_READ
                token = c.got.decode("utf-8", "replace").strip()
                if token == personhooks.QUESTION:  # a gate's (personhooks.GATES): no git status
                    self._persons()
                    c.out = frame(own_reply(token, []))  # (git may ask it too: review38)
                else:
                    if self.on_ask is not None:
                        self.on_ask()
                    self._persons()
                    c.out = frame(self.answerer.answer(token))  # the hook checks it got all of it
            sent = c.sock.send(c.out)
            c.out = c.out[sent:]
            if c.out:
                return selectors.EVENT_WRITE
        except (BlockingIOError, InterruptedError):
            return selectors.EVENT_READ if c.out is None else selectors.EVENT_WRITE
        except OSError:
            pass  # the hook went away: it answers "/"
        except Exception:
            log.exception("answering git's fsmonitor hook")  # the hook then answers "/"
        return 0

    def _persons(self) -> None:
        """The person's hooks directory pointed at again where git's config changed since
        (mount/personhooks.py): git asks before it runs a commit's hooks, and a gate asks
        (``personhooks.QUESTION``) where git's fsmonitor is off for the worktree."""
        try:
            personhooks.refresh(self.own)
        except Exception:
            log.exception("pointing the mount's hooks at the person's")

    def _drop(self, sel: selectors.BaseSelector, conns: dict[int, _Conn], c: _Conn) -> None:
        conns.pop(c.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            sel.unregister(c.sock)
        c.sock.close()
