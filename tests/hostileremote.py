"""A git server on 127.0.0.1 that lies (docs/security.md, "A hostile remote"): it speaks
git's protocol v2 over ``git://`` itself, as `git daemon`'s ``upload-pack`` does, and
answers from a real repository, except where a test tells it to lie: an ``object-info``
size that is not the blob's, a ``fetch`` answered with a pack of its own making (a blob
that inflates past what its header says, a delta that copies gigabytes, a chain of
deltas the reader must resolve, objects not asked for), an answer dripped a byte at a
time. A lazy vault cloned from the real server is pointed at this one (its
``remote.origin.url``): what the vault, a mount and a checkpoint then see is the test's.

Honest answers come from ``git upload-pack --stateless-rpc`` of the repository (protocol
v2, one process a request), so a person's plain git (its own lazy fetch) and avfs's
``git fetch`` fallback get what git would."""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from .packbomb import _header, _varint

header = _header  # a pack entry's type-and-size header (as the pack bomb writes it)
varint = _varint  # a delta's size, as git encodes it

CAPS = (
    b"version 2",
    b"agent=git/2.39.5",
    b"ls-refs=unborn",
    b"fetch=shallow wait-for-done filter",
    b"server-option",
    b"object-format=sha1",
    b"object-info",
)


def pkt(data: bytes) -> bytes:
    return b"%04x" % (len(data) + 4) + data


def sideband(data: bytes, band: int = 1) -> bytes:
    """``data`` as side-band-64k packets of band ``band``."""
    step = 65515
    return b"".join(pkt(bytes([band]) + data[i : i + step]) for i in range(0, len(data), step))


def pack(entries: list[bytes]) -> bytes:
    """A pack of ``entries`` (each a whole entry: header, base, compressed data), checksummed."""
    body = b"PACK" + struct.pack(">II", 2, len(entries)) + b"".join(entries)
    return body + hashlib.sha1(body).digest()


def blob_entry(data: bytes, *, level: int = 9) -> bytes:
    return header(3, len(data)) + zlib.compress(data, level)


def ref_delta_entry(base_oid: str, delta: bytes) -> bytes:
    return header(7, len(delta)) + bytes.fromhex(base_oid) + zlib.compress(delta, 9)


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Hostile:
    """The server. Set, before or between requests:

    - ``sizes``: object-info answers (id -> size) given instead of the true ones;
    - ``fetch_answer``: called with the wanted ids, returns the pack to send (None: honest);
    - ``drip``: seconds between the bytes of every answer (0: all at once);
    - ``silent``: accept and never answer.

    ``commands`` lists the commands asked (``object-info``, ``fetch``, ``ls-refs``);
    ``abandoned`` counts the answers the client went away from before their end."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.sizes: dict[str, int] = {}
        self.fetch_answer: Callable[[list[str]], bytes | None] | None = None
        self.drip = 0.0
        self.silent = False
        self.commands: list[str] = []
        self.abandoned = 0  # answers the client left before their end
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, name: str = "proj.git") -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for c in self._conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.sock.close()

    # -- serving -----------------------------------------------------------------------------
    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn = self.sock.accept()[0]
            except OSError:
                continue
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _send(self, conn: socket.socket, data: bytes) -> None:
        try:
            if not self.drip:
                conn.sendall(data)
                return
            for i in range(len(data)):
                if self._stop.is_set():
                    return
                conn.sendall(data[i : i + 1])
                time.sleep(self.drip)
        except OSError:
            self.abandoned += 1  # the client went away before the answer's end
            raise

    def _serve(self, conn: socket.socket) -> None:
        fh = conn.makefile("rb")
        try:
            if _read_pkt(fh) is None:  # git-upload-pack /path\0host=...\0\0version=2\0
                return
            if self.silent:
                self._stop.wait()
                return
            self._send(conn, b"".join(pkt(c + b"\n") for c in CAPS) + b"0000")
            while True:
                lines = _request(fh)
                if lines is None:
                    return
                command = lines[0].decode().strip().removeprefix("command=")
                self.commands.append(command)
                self._send(conn, self._answer(command, lines))
        except OSError:
            pass
        finally:
            fh.close()

    def _answer(self, command: str, lines: list[bytes]) -> bytes:
        if command == "object-info" and self.sizes:
            oids = [ln[4:].decode().strip() for ln in lines if ln.startswith(b"oid ")]
            true = self._true_sizes(oids)
            out = pkt(b"size\n")
            for o in oids:
                size = self.sizes.get(o, true.get(o))
                out += pkt(f"{o} {size}\n".encode()) if size is not None else pkt(f"{o}\n".encode())
            return out + b"0000"
        if command == "fetch" and self.fetch_answer is not None:
            wants = [ln[5:].decode().strip() for ln in lines if ln.startswith(b"want ")]
            got = self.fetch_answer(wants)
            if got is not None:
                return pkt(b"packfile\n") + sideband(got) + b"0000"
        return self._honest(lines)

    def _honest(self, lines: list[bytes]) -> bytes:
        request = b"".join(ln if ln in (b"0000", b"0001") else pkt(ln) for ln in lines) + b"0000"
        return subprocess.run(
            ["git", "upload-pack", "--stateless-rpc", str(self.repo)],
            input=request,
            env=dict(os.environ, GIT_PROTOCOL="version=2"),
            capture_output=True,
            check=False,
        ).stdout

    def _true_sizes(self, oids: list[str]) -> dict[str, int]:
        out = subprocess.run(
            ["git", "--git-dir", str(self.repo), "cat-file", "--batch-check=%(objectname) %(objectsize)"],
            input="".join(o + "\n" for o in oids).encode(),
            capture_output=True,
            check=False,
        ).stdout.decode()
        sizes = {}
        for line in out.splitlines():
            oid, _, size = line.partition(" ")
            if size.isdigit():
                sizes[oid] = int(size)
        return sizes


def _read_pkt(fh: object) -> bytes | None:
    head = fh.read(4)  # type: ignore[attr-defined]
    if len(head) < 4:
        raise EOFError
    n = int(head, 16)
    if n < 4:
        return None
    return bytes(fh.read(n - 4))  # type: ignore[attr-defined]


def _request(fh: object) -> list[bytes] | None:
    """One v2 request's lines (the delimiter kept as ``0001``), up to its flush; None at EOF."""
    lines: list[bytes] = []
    while True:
        head = fh.read(4)  # type: ignore[attr-defined]
        if len(head) < 4:
            return None
        n = int(head, 16)
        if n == 0:
            return lines or None
        if n == 1:
            lines.append(b"0001")
            continue
        lines.append(bytes(fh.read(n - 4)))  # type: ignore[attr-defined]


def inflating(n_mib: int) -> bytes:
    """A zlib stream of ``n_mib`` MiB of zero bytes in about ``n_mib`` KiB, made without
    compressing them: one MiB compressed and fully flushed (the compressor's state reset, so
    each copy of it is the same bytes and a valid continuation), repeated, then an empty
    final block and the Adler-32 of the whole."""
    z = zlib.compressobj(9)
    mib = bytes(1 << 20)
    first = z.compress(mib) + z.flush(zlib.Z_FULL_FLUSH)
    again = z.compress(mib) + z.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(n_mib):
        adler = zlib.adler32(mib, adler)
    return first + again * (n_mib - 1) + b"\x03\x00" + struct.pack(">I", adler)


def copying(base_size: int, total: int) -> bytes:
    """A delta (of a base of ``base_size`` bytes) that says it makes 1 byte and copies the
    base's first 64 KiB (or all of it) over and over, ``total`` bytes in all: 4 bytes of
    delta a copy."""
    step = min(base_size, 0xFFFF)
    op = bytes([0x80 | 0x10 | 0x20, step & 0xFF, step >> 8])
    return varint(base_size) + varint(1) + op * (total // step)


def hostile_tree(repo: Path, canary: Path) -> str:
    """A bare repository at ``repo`` whose one commit's tree no ``git checkout`` takes
    (trees written as bytes, past ``git mktree``'s checks): entries named ``..``,
    ``a/b``, 300 bytes long, a ``.GIT`` directory and a ``sub/.git`` holding a
    ``config`` whose ``core.fsmonitor`` would touch ``canary``; beside them what git does
    check out: a file, a link to ``/etc``, a gitlink, ``sub/f.txt``. The commit's id."""

    def g(*args: str, data: bytes | None = None) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(repo), *args], input=data, capture_output=True, check=True
        ).stdout.decode()

    def blob(data: bytes) -> str:
        return g("hash-object", "-w", "--stdin", data=data).strip()

    def tree(entries: list[tuple[str, bytes, str]]) -> str:
        def key(e: tuple[str, bytes, str]) -> bytes:
            return e[1] + (b"/" if e[0] == "40000" else b"")

        raw = b"".join(
            m.encode() + b" " + n + b"\0" + bytes.fromhex(o) for m, n, o in sorted(entries, key=key)
        )
        return g("hash-object", "-w", "--literally", "-t", "tree", "--stdin", data=raw).strip()

    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    config = blob(
        f"[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tfsmonitor = touch {canary}\n".encode()
    )
    x = blob(b"x\n")
    dotgit = tree(
        [
            ("100644", b"config", config),
            ("100644", b"HEAD", blob(b"ref: refs/heads/main\n")),
            ("40000", b"objects", tree([("100644", b"x", x)])),
            ("40000", b"refs", tree([("100644", b"x", x)])),
        ]
    )
    sub = tree([("40000", b".git", dotgit), ("100644", b"f.txt", blob(b"hello\n"))])
    top = tree(
        [
            ("40000", b"sub", sub),
            ("100644", b"README", blob(b"readme\n")),
            ("120000", b"etc", blob(b"/etc")),
            ("100644", b"a/b", blob(b"slash\n")),
            ("100644", b"..", blob(b"dotdot\n")),
            ("100644", b"n" * 300, blob(b"long\n")),
            ("40000", b".GIT", dotgit),
            ("160000", b"mod", "1" * 40),
        ]
    )
    commit = g("commit-tree", top, "-m", "a tree git does not check out").strip()
    g("update-ref", "refs/heads/main", commit)
    g("symbolic-ref", "HEAD", "refs/heads/main")
    g("config", "uploadpack.allowFilter", "true")
    g("config", "uploadpack.allowAnySHA1InWant", "true")
    return commit
