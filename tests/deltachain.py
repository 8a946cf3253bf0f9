"""Packs whose deltas cost the reader far more than their objects' sizes say (the
twenty-eighth round, NAME=attack19; tests/test_adv_deltas.py): git inflates every base of a
delta's chain to read it, and its header names the delta's own result size only.

- :func:`chain`: one blob of ``n`` zero bytes, listed in the index, at the end of ``depth``
  deltas each copying the whole of the one before (OFS_DELTA; none of them listed): reading
  it makes ``depth`` copies of ``n`` bytes, a pack of ~25 bytes a delta.
- :func:`big_base`: one blob of 64 KiB zeros, listed, a delta of a blob of ``n`` zero bytes
  (not listed): reading it inflates the ``n`` bytes first.

- :func:`loose_commit`: a loose commit of ``n`` bytes (its message ``n`` less its header
  of ``a``), compressed to ~1/200 of that: `git rev-list` reads it whole.

Run as a program (``python3 deltachain.py chain|big_base|loose_commit N DEPTH DIR``, in a confined
command) it writes the pack and its index (v2, written here: no git inflates anything to
make them) into ``DIR`` and prints the listed blob's id."""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import zlib

SMALL = 1 << 16


def _header(kind: int, size: int) -> bytes:
    out = bytearray()
    byte = (kind << 4) | (size & 15)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte, size = size & 0x7F, size >> 7
    out.append(byte)
    return bytes(out)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if not n:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _offset(rel: int) -> bytes:
    out = bytearray([rel & 0x7F])
    rel >>= 7
    while rel:
        rel -= 1
        out.insert(0, 0x80 | (rel & 0x7F))
        rel >>= 7
    return bytes(out)


def _copies(n: int) -> bytes:
    """Delta instructions copying the first ``n`` bytes of the base (16 MiB at most each)."""
    out = bytearray()
    step = 0xFFFF00
    for off in range(0, n, step):
        size = min(step, n - off)
        op, args = 0x80, bytearray()
        for i in range(4):
            if (off >> (8 * i)) & 0xFF:
                op |= 1 << i
                args.append((off >> (8 * i)) & 0xFF)
        for i in range(3):
            if (size >> (8 * i)) & 0xFF:
                op |= 1 << (4 + i)
                args.append((size >> (8 * i)) & 0xFF)
        out += bytes([op]) + args
    return bytes(out)


def zeros_id(n: int) -> str:
    """The id of a blob of ``n`` zero bytes."""
    h = hashlib.sha1(b"blob %d\0" % n)
    chunk = bytes(1 << 20)
    left = n
    while left:
        k = min(left, len(chunk))
        h.update(chunk[:k])
        left -= k
    return h.hexdigest()


def _write(entries: list[bytes], listed: tuple[str, int], out_dir: str) -> str:
    """The pack of ``entries`` (its header counts the listed object only, as its index does)."""
    body = b"PACK" + struct.pack(">II", 2, 1) + b"".join(entries)
    trailer = hashlib.sha1(body).digest()
    oid, at = listed
    pos = 12 + sum(len(e) for e in entries[:at])
    fan = [1 if bytes.fromhex(oid)[0] <= i else 0 for i in range(256)]
    idx = b"\xfftOc" + struct.pack(">I", 2) + struct.pack(">256I", *fan) + bytes.fromhex(oid)
    idx += struct.pack(">I", zlib.crc32(entries[at])) + struct.pack(">I", pos) + trailer
    idx += hashlib.sha1(idx).digest()
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.join(out_dir, f"pack-{trailer.hex()}")
    with open(name + ".pack", "wb") as fh:
        fh.write(body + trailer)
    with open(name + ".idx", "wb") as fh:
        fh.write(idx)
    return oid


def chain(n: int, depth: int, out_dir: str) -> str:
    """A blob of ``n`` zeros behind ``depth`` whole-copy deltas; its id."""
    delta = zlib.compress(_varint(n) + _varint(n) + _copies(n), 9)
    entries = [_header(3, n) + zlib.compress(bytes(n), 9)]
    sizes = [len(entries[0])]
    for _ in range(depth):
        entries.append(_header(6, len(_varint(n) * 2 + _copies(n))) + _offset(sizes[-1]) + delta)
        sizes.append(len(entries[-1]))
    return _write(entries, (zeros_id(n), depth), out_dir)


def big_base(n: int, out_dir: str) -> str:
    """A blob of 64 KiB zeros, a delta of one of ``n`` zeros; its id."""
    raw = _varint(n) + _varint(SMALL) + _copies(SMALL)
    base = _header(3, n) + zlib.compress(bytes(n), 9)
    small = _header(6, len(raw)) + _offset(len(base)) + zlib.compress(raw, 9)
    return _write([base, small], (zeros_id(SMALL), 1), out_dir)


def loose_commit(n: int, objects: str) -> str:
    """A loose commit of ``n`` bytes (of the empty tree, which it writes too) in the object
    directory ``objects``; its id."""
    empty = hashlib.sha1(b"tree 0\0").hexdigest()
    head = f"tree {empty}\nauthor a <a@x> 0 +0000\ncommitter a <a@x> 0 +0000\n\n".encode()
    h = hashlib.sha1(b"commit %d\0" % n + head)
    z = zlib.compressobj(1)
    out = [z.compress(b"commit %d\0" % n + head)]
    chunk = b"a" * (1 << 20)
    left = n - len(head)
    while left:
        k = min(left, len(chunk))
        h.update(chunk[:k])
        out.append(z.compress(chunk[:k]))
        left -= k
    out.append(z.flush())
    for oid, data in ((empty, zlib.compress(b"tree 0\0")), (h.hexdigest(), b"".join(out))):
        os.makedirs(os.path.join(objects, oid[:2]), exist_ok=True)
        with open(os.path.join(objects, oid[:2], oid[2:]), "wb") as fh:
            fh.write(data)
    return h.hexdigest()


if __name__ == "__main__":
    kind, size, depth, where = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if kind == "loose_commit":
        print(loose_commit(size, where))
    else:
        print(chain(size, depth, where) if kind == "chain" else big_base(size, where))
