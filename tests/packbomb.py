"""A pack bomb for the carry-back's bounds (tests/test_adv_carry.py): a pack of a few
hundred bytes whose one blob of ``n`` zero bytes is a delta of a 64 KiB blob (each byte
``0x80`` of the delta copies 64 KiB), with its index (v2) written here, so that no git
inflates the blob to make it. git takes it: the blob's id is the hash of its ``n`` bytes.

Run as a program (``python3 packbomb.py N DIR``, in a confined command) it writes the
pack and its index into ``DIR`` and prints the blob's id."""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import zlib

BASE = 1 << 16


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
    """An OFS_DELTA's distance back to its base, as git encodes it."""
    out = bytearray([rel & 0x7F])
    rel >>= 7
    while rel:
        rel -= 1
        out.insert(0, 0x80 | (rel & 0x7F))
        rel >>= 7
    return bytes(out)


def zeros_id(n: int) -> str:
    """The id of a blob of ``n`` zero bytes (hashed as git does, in 1 MiB steps)."""
    h = hashlib.sha1(b"blob %d\0" % n)
    chunk = bytes(1 << 20)
    left = n
    while left:
        k = min(left, len(chunk))
        h.update(chunk if k == len(chunk) else chunk[:k])
        left -= k
    return h.hexdigest()


def build(n: int, out_dir: str) -> str:
    """Write ``pack-*.pack`` and ``pack-*.idx`` into ``out_dir``; the big blob's id."""
    assert n % BASE == 0
    delta = _varint(BASE) + _varint(n) + b"\x80" * (n // BASE)
    base = _header(3, BASE) + zlib.compress(bytes(BASE), 9)
    second = 12 + len(base)
    bomb = _header(6, len(delta)) + _offset(second - 12) + zlib.compress(delta, 9)
    body = b"PACK" + struct.pack(">II", 2, 2) + base + bomb
    trailer = hashlib.sha1(body).digest()
    big = zeros_id(n)
    rows = sorted(
        [
            (bytes.fromhex(zeros_id(BASE)), 12, zlib.crc32(base)),
            (bytes.fromhex(big), second, zlib.crc32(bomb)),
        ]
    )
    fan = [sum(1 for oid, _o, _c in rows if oid[0] <= i) for i in range(256)]
    idx = b"\xfftOc" + struct.pack(">I", 2) + struct.pack(">256I", *fan)
    idx += b"".join(oid for oid, _o, _c in rows)
    idx += b"".join(struct.pack(">I", crc) for _i, _o, crc in rows)
    idx += b"".join(struct.pack(">I", off) for _i, off, _c in rows) + trailer
    idx += hashlib.sha1(idx).digest()
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.join(out_dir, f"pack-{trailer.hex()}")
    with open(name + ".pack", "wb") as fh:
        fh.write(body + trailer)
    with open(name + ".idx", "wb") as fh:
        fh.write(idx)
    return big


if __name__ == "__main__":
    print(build(int(sys.argv[1]), sys.argv[2]))
