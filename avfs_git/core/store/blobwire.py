"""A lazy vault's demand fetches over one kept connection to a ``git://`` server (docs/lazy.md,
"How a read fetches").

A ``git fetch`` of a few blobs costs about 80 ms on 127.0.0.1 whatever it carries: the
client's git process and its ``index-pack`` child, the daemon's new ``upload-pack``, and a
wait of tens of milliseconds for the pack's first bytes (docs/scale.md, "Where the lazy
task's time goes"). A program that reads its way through a lazy mount misses dozens of
times. Here a :class:`Connection` speaks git's protocol v2 (gitprotocol-v2) to the daemon
itself and keeps the connection: ``upload-pack`` serves one ``fetch`` command after another
on it (a stateful transport), so a miss costs the server's ``pack-objects`` and one round
trip. The pack that comes back is read here (:func:`read_pack`: its entries, ``REF_DELTA``
and ``OFS_DELTA`` resolved, every object's id computed and checked against what was asked)
and written into the vault as it came, with its index (:func:`.packwriter.index_v2`) and a
``.promisor`` mark, as ``git fetch`` from a promisor remote (its ``index-pack``) would leave
it; nothing is written unless the whole pack arrived and checked.

Only ``git://`` URLs are spoken to (no credentials on that transport); a server that does
not speak protocol v2 or does not offer ``fetch`` makes :meth:`Connection.fetch` return
None and the caller runs ``git fetch`` (:mod:`.promisor`). A connection the server closed
while it was idle (restarted, or a timeout of its own) is opened again once, before
anything is read from it; one idle for :data:`IDLE_S` is closed, so a mount nobody reads
from holds no process on the server.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import threading
import time
import zlib
from urllib.parse import urlsplit

from .objectinfo import _pkt
from .threads import reset_at_fork

IDLE_S = 10.0  # a connection nobody fetched over for this long is closed
MOST = 32 << 20  # what a fetch's blobs may add up to, by default (promisor.WIRE_MAX_BYTES)
HANDSHAKE_MAX = 1 << 16  # the server's capabilities: a few hundred bytes from git
OBJ_OFS_DELTA = 6
OBJ_REF_DELTA = 7
_NAMES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}


class Received:
    """A pack the server sent, checked: its bytes as they came, the blobs in it (id ->
    contents) and its index entries (id -> (offset, crc32 of the entry))."""

    def __init__(self, data: bytes, blobs: dict[str, bytes], index: dict[str, tuple[int, int]]) -> None:
        self.data = data
        self.blobs = blobs
        self.index = index


class WireError(Exception):
    """The server's answer was an error, cut short, or not what was asked (the message says)."""


class _Gone(WireError):
    """The connection was closed before any of the answer came: a kept connection the
    server dropped while idle, worth one new connection."""


def speaks(url: str) -> bool:
    """Whether demand fetches from ``url`` can go over a kept :class:`Connection`."""
    parts = urlsplit(url)
    return parts.scheme == "git" and bool(parts.hostname)


class Connection:
    """One kept protocol-v2 conversation with the ``upload-pack`` of ``url`` (``git://``).
    Not thread-safe by itself: its owner (:class:`.promisor.Promisor`) fetches under a lock;
    the idle timer takes :attr:`lock` too."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 9418
        self.path = parts.path
        self.lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._pid = os.getpid()  # the process that opened _sock (a forked child opens its own)
        self._timer: threading.Timer | None = None
        self.opened = 0  # connections made (stats, tests)
        self.unsupported = False  # the server does not speak v2 fetch: the caller uses git fetch
        reset_at_fork(self)

    def after_fork(self) -> None:
        """In a forked child: the parent's connection is not this process's to talk on (its
        copy of the socket is closed here only; the parent's goes on), and the lock, which
        a thread of the parent may have held at the fork, is made anew."""
        self.lock = threading.Lock()
        self._timer = None  # (its thread is the parent's)
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        self._pid = os.getpid()

    def fetch(self, oids: list[str], timeout: float, most: int = MOST) -> Received | None:
        """The pack of the blobs ``oids`` from the server, checked, within ``timeout``
        seconds; None when the server does not speak protocol v2 ``fetch``. ``most``: the
        bytes the blobs may add up to (the pack, their contents), whatever their sizes said.

        Raises:
            WireError: the server could not be reached, answered an error (``not our
                ref``: it does not have one of them), was cut off, or sent a pack that
                does not hold them all, holds anything else, is larger than ``most``
                allows, or does not check.
        """
        if self.unsupported:
            return None
        deadline = time.monotonic() + timeout
        with self.lock:
            self._cancel_idle()
            try:
                for attempt in (0, 1):
                    fresh = self._sock is None
                    try:
                        sock = self._open(deadline)
                        if sock is None:
                            return None
                        return self._ask(sock, oids, deadline, most)
                    except _Gone:
                        self._close()
                        if fresh or attempt:
                            raise
                raise AssertionError("unreachable")
            except (WireError, OSError, ValueError, EOFError) as exc:
                self._close()
                if isinstance(exc, WireError):
                    raise
                raise WireError(_os_reason(exc, timeout)) from None
            finally:
                self._arm_idle()

    def close(self) -> None:
        with self.lock:
            self._cancel_idle()
            self._close()

    # -- the conversation -------------------------------------------------------------------
    def _open(self, deadline: float) -> socket.socket | None:
        if self._sock is not None and self._pid != os.getpid():
            self._sock.close()  # the parent's connection: this copy of it only
            self._sock = None
        if self._sock is not None:
            return self._sock
        sock = socket.create_connection((self.host, self.port), timeout=_left(deadline))
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            host = f"{self.host}:{self.port}".encode()
            sock.sendall(
                _pkt(b"git-upload-pack " + self.path.encode() + b"\0host=" + host + b"\0\0version=2\0")
            )
            reader = _Reader(sock, deadline, HANDSHAKE_MAX)
            caps = []
            while (line := reader.pkt()) is not None:
                caps.append(line.strip())
        except BaseException:
            sock.close()
            raise
        if (
            not caps
            or caps[0] != b"version 2"
            or not any(c == b"fetch" or c.startswith(b"fetch=") for c in caps)
        ):
            sock.close()
            self.unsupported = True
            return None
        self._sock, self._pid = sock, os.getpid()
        self.opened += 1
        return sock

    def _ask(self, sock: socket.socket, oids: list[str], deadline: float, most: int) -> Received:
        request = [_pkt(b"command=fetch\n"), b"0001", _pkt(b"no-progress\n"), _pkt(b"ofs-delta\n")]
        request += [_pkt(b"want " + o.encode() + b"\n") for o in oids]
        request += [_pkt(b"done\n"), b"0000"]
        try:
            sock.settimeout(_left(deadline))
            sock.sendall(b"".join(request))
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _Gone(_os_reason(exc)) from None
        reader = _Reader(sock, deadline, _wire_bound(most, len(oids)))
        try:
            first = reader.pkt()
        except (EOFError, ConnectionResetError) as exc:
            if reader.received:
                raise
            raise _Gone(_os_reason(exc)) from None  # nothing of an answer: closed while idle
        while first is not None and first.rstrip(b"\n") != b"packfile":
            if first.startswith(b"ERR "):
                raise WireError(first[4:].decode(errors="replace").strip())
            while first is not None:  # a section before the pack (none is asked for): skipped
                first = reader.pkt()
            first = reader.pkt()
        if first is None:
            raise WireError("the server sent no pack")
        pack = bytearray()
        while (line := reader.pkt()) is not None:
            band, data = line[:1], line[1:]
            if band == b"\x01":
                pack += data
            elif band == b"\x03":
                raise WireError(data.decode(errors="replace").strip())
        data = bytes(pack)
        blobs, index = _parse(data, set(oids), most)
        missing = [o for o in oids if o not in blobs]
        if missing:
            raise WireError(f"the server's pack lacks {missing[0]}")
        return Received(data, blobs, index)

    # -- keeping it -------------------------------------------------------------------------
    def _close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def _cancel_idle(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_idle(self) -> None:
        if self._sock is not None:
            self._timer = threading.Timer(IDLE_S, self._idle)
            self._timer.daemon = True
            self._timer.start()

    def _idle(self) -> None:
        if self.lock.acquire(blocking=False):  # a fetch running now keeps the connection
            try:
                self._close()
            finally:
                self.lock.release()


class _Reader:
    """pkt-lines from a socket, each read within the conversation's deadline."""

    def __init__(self, sock: socket.socket, deadline: float, limit: int) -> None:
        self.sock = sock
        self.deadline = deadline
        self.limit = limit  # the most this answer may be (a server may send for ever)
        self.buf = bytearray()
        self.received = 0  # bytes read from the socket

    def _exactly(self, n: int) -> bytes:
        if self.received - len(self.buf) + n > self.limit:
            raise WireError(f"the server's answer is larger than the {self.limit} bytes asked for")
        while len(self.buf) < n:
            self.sock.settimeout(_left(self.deadline))
            if hasattr(socket, "TCP_QUICKACK"):  # ack at once: the server's next small write is not held back
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise EOFError("the server closed the connection")
            self.received += len(chunk)
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def pkt(self) -> bytes | None:
        """One pkt-line's payload; None for a flush, delimiter or response-end packet."""
        try:
            head = self._exactly(4)
            n = int(head, 16)
            return self._exactly(n - 4) if n >= 4 else None
        except EOFError:
            raise
        except ValueError:
            raise WireError("the server's answer is not git's protocol") from None


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def _os_reason(exc: BaseException, timeout: float | None = None) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"the fetch timed out after {timeout:g} s" if timeout is not None else "the fetch timed out"
    if isinstance(exc, EOFError | ConnectionResetError):
        return "the server closed the connection before its answer was complete"
    return f"cannot reach the server: {getattr(exc, 'strerror', None) or exc}"


# -- reading a pack -------------------------------------------------------------------------
def _wire_bound(most: int, count: int) -> int:
    """The most bytes an answer holding ``count`` blobs of ``most`` bytes in all may take:
    zlib's worst case (incompressible data: 5 bytes a 16 KiB block, 11 a stream), an
    entry's header, the pkt-lines and side-band bytes, the pack's own header and trailer."""
    return most + most // 1024 + 64 * count + (1 << 16)


def read_pack(pack: bytes, wanted: set[str] | None = None, most: int = MOST) -> dict[str, bytes]:
    """The blobs of a pack (git's pack v2, as Documentation/gitformat-pack.txt describes;
    deltas resolved against objects of the same pack), keyed by their ids, computed here.
    ``wanted``: the blobs asked for, the only objects the pack may hold; ``most``: what
    they may add up to, inflated (each entry stops inflating past its header's size).

    Raises:
        WireError: the pack is cut short, its checksum does not match, a delta's base
            is not in it (a thin pack: never asked for), or it holds more than asked.
    """
    return _parse(pack, wanted, most)[0]


def _parse(
    pack: bytes, wanted: set[str] | None = None, most: int = MOST
) -> tuple[dict[str, bytes], dict[str, tuple[int, int]]]:
    """(the blobs, the index entries of every object) of ``pack`` (see :func:`read_pack`)."""
    if len(pack) < 32 or pack[:4] != b"PACK" or struct.unpack(">I", pack[4:8])[0] not in (2, 3):
        raise WireError("the server's pack is not one")
    if hashlib.sha1(pack[:-20]).digest() != pack[-20:]:
        raise WireError("the server's pack does not match its checksum (cut short?)")
    count = struct.unpack(">I", pack[8:12])[0]
    if wanted is not None and count > len(wanted):
        raise WireError(f"the server's pack holds {count} objects where {len(wanted)} were asked for")
    left = most  # what the objects may still inflate to, together
    pos = 12
    end = len(pack) - 20
    by_offset: dict[int, tuple[int, bytes]] = {}  # offset -> (type, contents), resolved
    oid_at: dict[int, str] = {}  # offset -> the id of what is there, resolved
    by_id: dict[str, tuple[int, bytes]] = {}
    index: dict[str, tuple[int, int]] = {}
    crcs: dict[int, int] = {}  # offset -> crc32 of the entry's bytes
    pending: list[tuple[int, int, object, bytes]] = []  # (offset, kind, base, delta)
    for _ in range(count):
        start = pos
        kind, size, pos = _entry_header(pack, pos, end)
        base: object = None
        if kind == OBJ_OFS_DELTA:
            rel, pos = _ofs(pack, pos, end)
            base = start - rel
        elif kind == OBJ_REF_DELTA:
            if pos + 20 > end:
                raise WireError("the server's pack is cut short")
            base = pack[pos : pos + 20].hex()
            pos += 20
        if size > left:
            raise WireError(f"the server's pack holds more than the {most} bytes asked for")
        data, pos = _inflate(pack, pos, end, size)
        left -= size
        crcs[start] = zlib.crc32(pack[start:pos])
        if base is None:
            if kind not in _NAMES:
                raise WireError(f"the server's pack holds an object of unknown type {kind}")
            by_offset[start] = (kind, data)
            oid = oid_at[start] = _oid(kind, data)
            by_id[oid] = (kind, data)
            index[oid] = (start, crcs[start])
        else:
            pending.append((start, kind, base, data))
    # each delta after its base (a base may itself be a delta): the deltas waiting on each
    # base, taken as their base is made, so a chain is resolved once, in any order
    waiting: dict[object, list[tuple[int, bytes]]] = {}
    for start, _kind, base, delta in pending:
        waiting.setdefault(base, []).append((start, delta))
    made = list(oid_at)
    while made:
        start = made.pop()
        kind, contents = by_offset[start]
        for key in (start, oid_at[start]):
            for at, delta in waiting.pop(key, ()):
                data = apply_delta(contents, delta, left)
                left -= len(data)
                by_offset[at] = (kind, data)
                got = oid_at[at] = _oid(kind, data)
                by_id[got] = (kind, data)
                index[got] = (at, crcs[at])
                made.append(at)
    if waiting:
        raise WireError("the server's pack holds a delta whose base is not in it")
    if wanted is not None and (extra := [o for o, (k, _d) in by_id.items() if k != 3 or o not in wanted]):
        raise WireError(f"the server's pack holds {extra[0]}, which was not asked for")
    return {oid: data for oid, (kind, data) in by_id.items() if kind == 3}, index


def _oid(kind: int, data: bytes) -> str:
    return hashlib.sha1(_NAMES[kind] + b" %d\0" % len(data) + data).hexdigest()


def _entry_header(pack: bytes, pos: int, end: int) -> tuple[int, int, int]:
    if pos >= end:
        raise WireError("the server's pack is cut short")
    c = pack[pos]
    kind = (c >> 4) & 7
    size = c & 15
    shift = 4
    pos += 1
    while c & 0x80:
        if pos >= end:
            raise WireError("the server's pack is cut short")
        c = pack[pos]
        size |= (c & 0x7F) << shift
        shift += 7
        pos += 1
    return kind, size, pos


def _ofs(pack: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise WireError("the server's pack is cut short")
    c = pack[pos]
    rel = c & 0x7F
    pos += 1
    while c & 0x80:
        if pos >= end:
            raise WireError("the server's pack is cut short")
        c = pack[pos]
        rel = ((rel + 1) << 7) | (c & 0x7F)
        pos += 1
    return rel, pos


def _inflate(pack: bytes, pos: int, end: int, size: int) -> tuple[bytes, int]:
    """The ``size`` bytes the zlib stream at ``pos`` inflates to (never more: a stream that
    goes on is refused as it passes them), and where the stream ends."""
    d = zlib.decompressobj()
    view = memoryview(pack)
    out = []
    got = 0
    while not d.eof:
        if pos >= end:
            raise WireError("the server's pack is cut short")
        chunk = view[pos : min(end, pos + 65536)]
        try:
            part = d.decompress(chunk, size + 1 - got)
        except zlib.error as exc:
            raise WireError(f"the server's pack does not inflate: {exc}") from None
        got += len(part)
        if got > size:
            break
        out.append(part)
        # what the stream did not take: past its end (unused_data), or beyond the bound
        # given (unconsumed_tail, which the next round reads again from pos)
        pos += len(chunk) - len(d.unused_data) - len(d.unconsumed_tail)
    data = b"".join(out)
    if len(data) != size:
        raise WireError("the server's pack holds an object of the wrong size")
    return data, pos


def _varint(delta: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        c = delta[pos]
        pos += 1
        value |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return value, pos


def apply_delta(base: bytes, delta: bytes, most: int | None = None) -> bytes:
    """``base`` with git's delta ``delta`` applied (copy and insert instructions); one
    that says it makes more than ``most`` bytes, or makes more than it says, is refused
    before it is made."""
    try:
        src_size, pos = _varint(delta, 0)
        out_size, pos = _varint(delta, pos)
        if src_size != len(base):
            raise WireError("a delta in the server's pack does not fit its base")
        if most is not None and out_size > most:
            raise WireError(f"a delta in the server's pack makes more than the {most} bytes asked for")
        out = bytearray()
        n = len(delta)
        while pos < n:
            op = delta[pos]
            pos += 1
            if op & 0x80:  # copy from the base
                offset = size = 0
                for i in range(4):
                    if op & (1 << i):
                        offset |= delta[pos] << (8 * i)
                        pos += 1
                for i in range(3):
                    if op & (0x10 << i):
                        size |= delta[pos] << (8 * i)
                        pos += 1
                size = size or 0x10000
                if offset + size > len(base):
                    raise WireError("a delta in the server's pack reads past its base")
                if len(out) + size > out_size:
                    raise WireError("a delta in the server's pack makes more than it says")
                out += base[offset : offset + size]
            elif op:  # insert the next op bytes
                if len(out) + op > out_size:
                    raise WireError("a delta in the server's pack makes more than it says")
                out += delta[pos : pos + op]
                pos += op
            else:
                raise WireError("a delta in the server's pack has a reserved instruction")
    except IndexError:
        raise WireError("a delta in the server's pack is cut short") from None
    if len(out) != out_size:
        raise WireError("a delta in the server's pack makes an object of the wrong size")
    return bytes(out)


def store(git_dir: str, got: Received) -> str:
    """Write the pack ``got`` into the vault as it came (its objects' ids checked), with
    its index, marked ``.promisor`` as ``git fetch`` from the promisor remote marks its
    packs; the pack's name. Written under a temporary name and renamed into place, the
    index last, as :class:`.packwriter.PackWriter` does (a temporary file a killed writer
    left is found by the same rule)."""
    import fcntl
    import tempfile

    from ..errors import from_oserror
    from .packwriter import TMP_PREFIX, index_v2, install, tmp_index

    pack_dir = os.path.join(git_dir, "objects", "pack")
    name = f"pack-{got.data[-20:].hex()}"
    base = os.path.join(pack_dir, name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{os.getpid()}_", dir=pack_dir)
    except OSError as exc:
        raise from_oserror(exc, pack_dir) from exc
    lock = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
    fcntl.flock(lock, fcntl.LOCK_EX)  # held until the pack is in place or gone (packwriter)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(got.data)
        with open(tmp_index(tmp), "wb") as ih:
            ih.write(index_v2(got.index, got.data[-20:]))
        os.chmod(tmp, 0o444)
        os.chmod(tmp_index(tmp), 0o444)
        install(tmp, tmp_index(tmp), base)
        os.close(os.open(base + ".promisor", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
    except OSError as exc:
        for path in (tmp, tmp_index(tmp)):
            try:
                os.unlink(path)
            except OSError:
                pass
        raise from_oserror(exc, pack_dir) from exc
    finally:
        os.close(lock)
    return name
