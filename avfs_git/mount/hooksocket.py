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
import socket
import threading
from collections.abc import Callable

from ..core.workspace.hookwire import SOCKET_NAME, Answerer, frame

log = logging.getLogger("avfs.hooksocket")


class HookServer:
    """Answers git's fsmonitor hook of one mount over a Unix socket (``SOCKET_NAME`` in
    ``git_dir``, the mount's own directory) with ``answerer``: the hook sends its token and a newline and
    reads the answer's length in bytes, a newline and the answer (``token\\0path\\0...``)
    until the daemon closes the connection; one not of that length is not used.
    ``on_ask`` is called as each query comes in, before it is answered: git is about to
    look at the worktree (an overlay mount's background walk stands aside, fuse/warm.py)."""

    def __init__(self, git_dir: str, answerer: Answerer, on_ask: Callable[[], None] | None = None) -> None:
        self.answerer = answerer
        self.on_ask = on_ask
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
        self._thread = threading.Thread(target=self._serve, name="avfs-fsmonitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self._thread.join(5.0)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn:
                try:
                    conn.settimeout(10.0)
                    data = b""
                    while not data.endswith(b"\n") and len(data) < 4096:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    token = data.decode("utf-8", "replace").strip()
                    if self.on_ask is not None:
                        self.on_ask()
                    out = self.answerer.answer(token)
                    conn.sendall(frame(out))  # the hook checks it got all of it
                except Exception:
                    log.exception("answering git's fsmonitor hook")  # the hook then answers "/"
