"""Blob sizes from a git server without fetching the blobs: git's protocol v2
``object-info`` command (gitprotocol-v2), asked by :mod:`.promisor` for a lazy vault's size
cache (docs/lazy.md "Mounting a lazy fork: sizes before contents").

Two transports speak it:

- ``git://``: a socket to the daemon, the request in its first packet (no credentials on
  that transport);
- smart HTTP(S): git's own HTTP helper (``git remote-https``) in ``stateless-connect``
  mode, which does the ``info/refs`` discovery and one ``POST .../git-upload-pack`` with
  ``Git-Protocol: version=2`` for our request, reaching the server as every fetch does
  (:func:`.transport.transport_argv`: the user's credential helpers, avfs's token through
  the environment; never a prompt).

``git upload-pack`` offers ``object-info`` (git 2.39 always; later versions with
``transfer.advertiseObjectInfo = true``). A server that does not advertise it, speaks only
protocol v0, or cannot be reached gives None: the caller falls back to fetching.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Protocol
from urllib.parse import SplitResult, urlsplit

if TYPE_CHECKING:
    import socket
    import threading


class _Reader(Protocol):
    def read(self, n: int, /) -> bytes: ...


class _Stream(_Reader, Protocol):
    def read1(self, n: int, /) -> bytes: ...


def remote_sizes(
    url: str,
    oids: list[str],
    timeout: float,
    *,
    git_dir: str | None = None,
    remote: str | None = None,
    token: str | None = None,
    reading: Callable[[], None] | None = None,
) -> dict[str, int] | None:
    """The sizes of ``oids`` on the server at ``url`` (``remote``: its name in the vault at
    ``git_dir``, which HTTP needs), within ``timeout`` seconds: those it has (one it does
    not have is left out); None when the server cannot say or cannot be reached. Local
    paths and other transports are not asked (docs/lazy.md). ``reading()``, when given, is
    called before the answer is read, once the request has gone out (the server answers
    meanwhile; a lazy mount sends its tree's request before it is announced and reads the
    answer after: fuse/settle.py), over every transport (not called where none went out:
    the caller's to call then; called at once for a transport not asked). Over HTTP(S) and ssh the conversation's
    processes are killed past ``timeout`` from their start, the wait in ``reading()``
    included (a mount is announced within a second or so; past the timeout its sizes are
    not known, as with a server that did not answer)."""
    parts = urlsplit(url)
    if parts.scheme == "git" and parts.hostname:
        return _over_git(parts, oids, timeout, reading)
    if parts.scheme in ("http", "https") and git_dir is not None and remote is not None:
        return _over_http(parts.scheme, git_dir, remote, url, oids, timeout, token, reading)
    if git_dir is not None and (where := _ssh_target(url)) is not None:
        return _over_ssh(git_dir, *where, oids, timeout, reading)
    if reading is not None:
        reading()  # (nothing asked)
    return None


def _request(oids: list[str]) -> bytes:
    body = _pkt(b"command=object-info\n") + b"0001" + _pkt(b"size\n")
    if not oids:
        return body + b"0000"
    # one pkt-line "oid <id>\n" per id, made by one join and one encoding where every id
    # has 40 digits (SHA-1: "0031"): a whole tree's 18,427 ids took 20 ms of the mount's
    # interpreter as one packet made per id, 3 ms so
    if set(map(len, oids)) == {40}:
        return body + ("0031oid " + "\n0031oid ".join(oids) + "\n").encode("ascii") + b"0000"
    return body + "".join([f"{len(o) + 9:04x}oid {o}\n" for o in oids]).encode("ascii") + b"0000"


CAPABILITIES_MAX = 256  # lines of a server's capabilities (git sends about ten)


def _capabilities(fh: _Reader) -> list[bytes]:
    caps = []
    while (line := _read_pkt(fh)) is not None:
        caps.append(line.strip())
        if len(caps) > CAPABILITIES_MAX:
            raise ValueError("the server's capabilities do not end")
    return caps


def _answer(fh: _Stream, asked: list[str]) -> dict[str, int]:
    """The sizes the server gave (``oid SP size``; an object it does not have comes back
    with no size and is left out), up to the flush that ends them. Read in large chunks
    and walked packet by packet in memory: two reads of the stream per packet, as a
    whole tree's answer was read before, were most of the 0.05-0.1 s of the mount's
    interpreter that its 20,538 lines took (docs/benchmarks.md, the ninth round). An
    answer longer than a line per id ``asked`` (with room for a long size) is refused
    (ValueError): a server may send for ever."""
    out: dict[str, int] = {}
    buf = b""
    at = 0
    left = 64 * len(asked) + (1 << 16)
    while True:
        end = len(buf)
        while at + 4 <= end:
            n = int(buf[at : at + 4], 16)
            if n < 4:
                return out  # (a flush, delimiter or response-end packet)
            if at + n > end:
                break
            oid, _, size = buf[at + 4 : at + n].partition(b" ")
            at += n
            if not size.isdigit():  # (git sends no newline; a server may)
                size = size.strip()
            if size.isdigit() and len(oid) == 40:
                out[oid.decode()] = int(size)
        chunk = fh.read1(1 << 16)
        if not chunk:
            raise EOFError("the server closed the connection")
        left -= len(chunk)
        if left < 0:
            raise ValueError("the server's answer is longer than what was asked")
        buf = buf[at:] + chunk
        at = 0


def _chunked(fh: IO[bytes]) -> _Stream:
    """A pipe's reader as :func:`_answer` reads it: buffered, with ``read1`` (a pipe opened
    by :mod:`subprocess` unbuffered is not read here: ValueError, sizes unknown)."""
    if not isinstance(fh, io.BufferedIOBase):
        raise ValueError("an unbuffered pipe")
    return fh


def _over_git(
    parts: SplitResult, oids: list[str], timeout: float, reading: Callable[[], None] | None = None
) -> dict[str, int] | None:
    import socket

    assert parts.hostname is not None
    port = parts.port or 9418
    try:
        with (
            socket.create_connection((parts.hostname, port), timeout=timeout) as sock,
            _deadline(sock, timeout),
        ):
            fh = sock.makefile("rwb")
            host = f"{parts.hostname}:{port}".encode()
            fh.write(_pkt(b"git-upload-pack " + parts.path.encode() + b"\0host=" + host + b"\0\0version=2\0"))
            fh.flush()
            if b"object-info" not in _capabilities(fh):
                return None
            fh.write(_request(oids))
            fh.flush()
            if reading is not None:
                reading()  # (the server works on its answer meanwhile)
            return _answer(fh, oids)
    except (OSError, ValueError, EOFError):
        return None


@contextlib.contextmanager
def _deadline(sock: socket.socket, timeout: float) -> Iterator[None]:
    """``timeout`` seconds for the whole conversation on ``sock``, not for each read of it
    (a server that sends a byte now and then would hold each under the socket's timeout):
    past it the socket is shut down, so a read ends (EOF) and the sizes are unknown."""
    import threading

    timer = threading.Timer(timeout, _shut, (sock,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _shut(sock: socket.socket) -> None:
    import socket

    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _over_http(
    scheme: str,
    git_dir: str,
    remote: str,
    url: str,
    oids: list[str],
    timeout: float,
    token: str | None,
    reading: Callable[[], None] | None = None,
) -> dict[str, int] | None:
    """Through ``git remote-http(s)``'s ``stateless-connect`` (gitremote-helpers): it
    answers an empty line and relays the server's v2 capabilities, then sends each request
    we write (up to its flush packet) as one POST and relays the response."""
    import threading

    from .gitrun import spawn
    from .transport import transport_argv

    argv, env = transport_argv(git_dir, (f"remote-{scheme}", remote, url), token=token)
    proc = spawn(
        argv,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    # a read past the deadline then ends at EOF: git, and the helper it runs
    # (git-remote-http, which holds the pipes), killed as a group
    timer = threading.Timer(timeout, _kill, (proc,))
    timer.start()
    try:
        # the helper reads its command with stdio: the request goes only after its answer
        proc.stdin.write(b"stateless-connect git-upload-pack\n")
        proc.stdin.flush()
        if proc.stdout.readline() != b"\n":  # "fallback": the server does not speak v2
            return None
        if b"object-info" not in _capabilities(proc.stdout):
            return None
        proc.stdin.write(_request(oids))
        proc.stdin.close()  # (the helper POSTs it: the server answers meanwhile)
        if reading is not None:
            reading()
        return _answer(_chunked(proc.stdout), oids)
    except (OSError, ValueError, EOFError):
        return None
    finally:
        _reap(proc, timer)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Past the deadline: kill a conversation's process and every process it started (its
    session's group: a helper git runs, the ssh a shell runs, holding the pipes), so a read
    on them ends. (A conversation that ended otherwise closes its pipes and kills its own
    process only: an ssh master a ``ControlPersist`` left outlives it, as after git.)"""
    import os
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(proc: subprocess.Popen[bytes], timer: threading.Timer) -> None:
    """End a conversation's process (answered, failed or past its deadline) and its pipes."""
    timer.cancel()
    proc.kill()
    proc.wait()
    for fh in (proc.stdin, proc.stdout):
        try:
            if fh is not None:
                fh.close()
        except OSError:
            pass


def _ssh_target(url: str) -> tuple[str, int | None, str] | None:
    """(``[user@]host``, port, path) of an ssh URL (``ssh://[user@]host[:port]/path``, or
    git's scp-like ``[user@]host:path``), as git's ssh transport reads it; None for others."""
    if url.startswith(("ssh://", "git+ssh://", "ssh+git://")):
        parts = urlsplit(url)
        if not parts.hostname:
            return None
        host = f"{parts.username}@{parts.hostname}" if parts.username else parts.hostname
        path = parts.path
        if path.startswith("/~"):  # ssh://host/~user/x: relative to a home, as git reads it
            path = path[1:]
        return host, parts.port, path
    if "://" in url:
        return None
    host, colon, path = url.partition(":")
    if not colon or not host or "/" in host or not path:  # a local path
        return None
    return host, None, path


def _over_ssh(
    git_dir: str,
    host: str,
    port: int | None,
    path: str,
    oids: list[str],
    timeout: float,
    reading: Callable[[], None] | None = None,
) -> dict[str, int] | None:
    """``git-upload-pack`` over ssh as git starts it (``GIT_SSH_COMMAND``, ``GIT_SSH``,
    ``core.sshCommand`` or ``ssh``; OpenSSH's options only), asking protocol v2 through
    ``GIT_PROTOCOL`` (the server's sshd must accept it: ``AcceptEnv GIT_PROTOCOL``; one that
    does not answers in v0, and we give up)."""
    import threading

    from .gitrun import run
    from .transport import transport_argv

    _argv, env = transport_argv(git_dir, ())
    variant = env.get("GIT_SSH_VARIANT", "ssh")
    if variant not in ("ssh", "auto"):
        return None
    quoted = "'" + path.replace("'", "'\\''") + "'"
    args = [
        "-o",
        "SendEnv=GIT_PROTOCOL",
        *(["-p", str(port)] if port else []),
        host,
        f"git-upload-pack {quoted}",
    ]
    command = (
        env.get("GIT_SSH_COMMAND")
        or run(["config", "--get", "core.sshCommand"], git_dir=git_dir, check=False, text=True).stdout.strip()
    )
    if command:
        argv = ["sh", "-c", command + ' "$@"', command, *args]
    else:
        argv = [env.get("GIT_SSH") or "ssh", *args]
    env["GIT_PROTOCOL"] = "version=2"
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # (killed as a group: the ssh a GIT_SSH_COMMAND's shell runs)
        )
    except OSError:
        return None
    assert proc.stdin is not None and proc.stdout is not None
    timer = threading.Timer(timeout, _kill, (proc,))
    timer.start()
    try:
        caps = _capabilities(proc.stdout)
        if not caps or caps[0] != b"version 2" or b"object-info" not in caps:
            return None  # v0's ref advertisement: the server did not take GIT_PROTOCOL
        proc.stdin.write(_request(oids))
        proc.stdin.flush()
        if reading is not None:
            reading()  # (the server answers meanwhile)
        got = _answer(_chunked(proc.stdout), oids)
        proc.stdin.write(b"0000")  # the end of the conversation
        proc.stdin.close()
        return got
    except (OSError, ValueError, EOFError):
        return None
    finally:
        _reap(proc, timer)


def _pkt(data: bytes) -> bytes:
    return b"%04x" % (len(data) + 4) + data


def _read_pkt(fh: _Reader) -> bytes | None:
    """One pkt-line's payload; None for a flush, delimiter or response-end packet."""
    head = fh.read(4)
    if len(head) < 4:
        raise EOFError("the server closed the connection")
    n = int(head, 16)
    if n < 4:
        return None
    data = fh.read(n - 4)
    if len(data) < n - 4:
        raise EOFError("the server closed the connection")
    return data
