"""What goes over the Unix socket on which a mount's daemon answers git's fsmonitor hook
(mount/hooksocket.py serves it): the socket's name, the answer's framing, and avfs's own
client of it (:func:`ask`), with which a status in any process reads a live overlay mount's
journal from its daemon (core/workspace/upperask.py :func:`~.upperask.journal`).

The request is a token and a newline. The answer is its length in bytes, a newline, and the
answer (``token\\0path\\0...``); the daemon closes the connection after it, and a reader
takes one of another length for none.
"""

from __future__ import annotations

import os
from typing import Protocol

SOCKET_NAME = "avfs-fsmonitor.sock"  # in the mount's own directory (registry.mount_dir)
# avfs's question to a pure-FUSE mount's daemon: the file ids of the overlay files its
# write handles hold open, answered as this, then those ids (mount/journalhook.py; a
# daemon that does not know the question answers something else: then every file is
# probed, core/operations/mergeguard.py ``refuse_open_files``)
WRITERS = "avfs-writers"
# the token of no known state (the hook's own where no daemon answered: every answerer
# answers it with "everything"). An answer to a question of avfs's own starts with it and
# "/" (:func:`own_reply`): the question can come from git too, its token being whatever the
# index holds, and a command in a sandbox writes that index: git must read such an answer as
# "everything may have changed", never as "nothing but these" (the review of the
# thirty-fifth round, review38: `avfs-persons` answered with itself hid every later change
# from the person's `git status`, echoed at each status after)
UNKNOWN = "avfs-ovl:none"
EVERYTHING = "/"


def own_reply(question: str, parts: list[str]) -> list[str]:
    """The answer to avfs's own ``question`` (``parts``: what it says), safe for git to read."""
    return [UNKNOWN, EVERYTHING, question, *parts]


def own_answer(got: list[str] | None, question: str) -> list[str] | None:
    """What :func:`own_reply` to ``question`` said in ``got`` (None: not such an answer)."""
    if got is None or len(got) < 3 or got[:3] != [UNKNOWN, EVERYTHING, question]:
        return None
    return got[3:]


class Answerer(Protocol):
    """What answers git's fsmonitor hook in a mount's daemon."""

    def answer(self, token: str) -> list[str]:
        """git's fsmonitor answer (protocol v2) for ``token``: the new token, then the paths
        that may have changed since it (``/``: everything)."""
        ...


def frame(parts: list[str]) -> bytes:
    """An answer as it goes over the socket: its length, a newline, the NUL-ended parts."""
    body = "\0".join(parts).encode("utf-8", "surrogateescape") + b"\0"
    return b"%d\n" % len(body) + body


def ask(git_dir: str, token: str, timeout_s: float = 10.0) -> list[str] | None:
    """The answer of the mount daemon whose socket is in ``git_dir`` (the mount's own
    directory) to ``token`` (its
    parts: a token, then paths), None when there is no complete one."""
    import socket  # (not at the top: a status asks only where the socket is, upperjournal.py)

    dirfd = None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout_s)
        dirfd = os.open(git_dir, os.O_PATH | os.O_CLOEXEC)  # an address holds 107 bytes
        s.connect(f"/proc/self/fd/{dirfd}/{SOCKET_NAME}")
        s.sendall(token.encode("utf-8", "surrogateescape") + b"\n")
        chunks = []
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            chunks.append(b)
    except OSError:
        return None
    finally:
        s.close()
        if dirfd is not None:
            os.close(dirfd)
    head, _, body = b"".join(chunks).partition(b"\n")
    if not head.isdigit() or int(head) != len(body) or not body.endswith(b"\0"):
        return None
    return body[:-1].decode("utf-8", "surrogateescape").split("\0")
