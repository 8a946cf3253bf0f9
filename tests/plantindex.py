"""Crafted git index files, each what no git writes (tests/test_adv_gitindex.py): run as a
script inside a confined `proxy exec` (``python3 plantindex.py VARIANT``, the mount's index
rewritten), or imported (:func:`crafted` on an index's bytes). Standard library only: the
sandbox runs it with the system's Python."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys


def _entries(data: bytes) -> tuple[list[bytes], int]:
    """The entries of a version 2/3 index (their bytes) and where its extensions start."""
    count = int.from_bytes(data[8:12], "big")
    out, off = [], 12
    for _ in range(count):
        flags = int.from_bytes(data[off + 60 : off + 62], "big")
        head = 64 if flags & 0x4000 else 62
        size = (head + (flags & 0xFFF) + 8) & ~7
        out.append(data[off : off + size])
        off += size
    return out, off


def _ewah_ones(words: int) -> bytes:
    """git's ewah bitmap of one marker word saying ``words`` words of ones follow."""
    return struct.pack(">IIQI", min(words * 64, 0xFFFFFFFF), 1, (words << 1) | 1, 0)


def _sealed(body: bytes) -> bytes:
    return body + hashlib.sha1(body).digest()


def _entry(like: bytes, name: bytes, pad: bytes = b"\0", flags: int | None = None) -> bytes:
    e = like[:60] + struct.pack(">H", len(name) if flags is None else flags) + name
    return e + pad * (((62 + len(name) + 8) & ~7) - len(e))


def crafted(data: bytes, variant: str) -> bytes:
    """Index ``data`` (version 2, as avfs or git writes it) made into ``variant``."""
    entries, ext_at = _entries(data)
    head, exts = data[:12], data[ext_at:-20]
    count = len(entries)
    body = b"".join(entries)
    if variant == "count-high":  # more entries said than there are
        return _sealed(head[:8] + struct.pack(">I", count + 5) + body + exts)
    if variant == "count-low":  # the last entry left to be read as an extension
        return _sealed(head[:8] + struct.pack(">I", count - 1) + body + exts)
    if variant == "count-2^31":
        return _sealed(head[:8] + struct.pack(">I", 1 << 31) + body + exts)
    if variant == "past-end":  # cut in the middle of an entry
        return _sealed(head + body[: len(body) // 2 + 3])
    if variant == "name-nul":  # a NUL inside a name as long as its flags say
        return _sealed(head[:8] + struct.pack(">I", count + 1) + _entry(entries[0], b"a\0..") + body + exts)
    if variant == "name-slash":  # a name with a leading '/', padded as git pads
        return _sealed(head[:8] + struct.pack(">I", count + 1) + _entry(entries[0], b"/x") + body + exts)
    if variant == "dotgit-padded":  # '.git' to checkout, '.gitA' to ls-files
        return _sealed(
            head[:8] + struct.pack(">I", count + 1) + _entry(entries[0], b".git", b"A") + body + exts
        )
    if variant == "v4-backwards":  # version 4: the second name strips more than the first has
        out = b""
        for i, e in enumerate(entries):
            flags = int.from_bytes(e[60:62], "big")
            name = e[62 : 62 + (flags & 0xFFF)]
            out += e[:62] + bytes([0 if i == 0 else 100]) + name + b"\0"
        return _sealed(b"DIRC" + struct.pack(">II", 4, count) + out)
    if variant == "link-elsewhere":  # a split index naming a shared index that is nowhere
        link = b"\x11" * 20 + _ewah_ones(0) + _ewah_ones(0)
        return _sealed(head + body + exts + b"link" + struct.pack(">I", len(link)) + link)
    if variant == "fsmn-token-1mb":
        tok = b"x" * (1 << 20)
        ewah = _ewah_ones(0)
        ext = struct.pack(">I", 2) + tok + b"\0" + struct.pack(">I", len(ewah)) + ewah
        return _sealed(head + body + b"FSMN" + struct.pack(">I", len(ext)) + ext)
    if variant == "eoie-anywhere":  # the end of index entries said to be past the file
        ext = struct.pack(">I", 0x7FFFFFF0) + b"\x22" * 20
        ieot = struct.pack(">III", 1, 0xFFFFFF00, 1 << 30)
        return _sealed(head + body + exts + b"IEOT" + struct.pack(">I", len(ieot)) + ieot
                       + b"EOIE" + struct.pack(">I", len(ext)) + ext)  # fmt: skip
    if variant == "untr-2^38-bits":  # the untracked cache: a bitmap of 2^32-1 words of ones
        ident = b"Linux\0"
        stat = b"\0" * 36
        ewah = _ewah_ones(0xFFFFFFFF)
        root = b"\0\0" + b"\0"  # no untracked, no subdirectories, the root's empty name
        ext = b"\x06" + ident + stat + stat + b"\0\0\0\0" + b"\0" + b"\x01" + root
        ext += ewah + ewah + ewah
        return _sealed(head + body + b"UNTR" + struct.pack(">I", len(ext)) + ext)
    if variant == "checksum":  # the trailing checksum of other bytes
        return head + body + exts + b"\x33" * 20
    raise ValueError(variant)


VARIANTS = [
    "count-high",
    "count-low",
    "count-2^31",
    "past-end",
    "name-nul",
    "name-slash",
    "dotgit-padded",
    "v4-backwards",
    "link-elsewhere",
    "fsmn-token-1mb",
    "eoie-anywhere",
    "untr-2^38-bits",
    "checksum",
]

if __name__ == "__main__":
    gd = subprocess.check_output(["git", "rev-parse", "--absolute-git-dir"]).decode().strip()
    index = os.path.join(gd, "index")
    with open(index, "rb") as fh:
        data = fh.read()
    if data[4:8] != b"\0\0\0\2":  # (git's own, version 2, first)
        subprocess.check_call(["git", "update-index", "--index-version", "2"])
        with open(index, "rb") as fh:
            data = fh.read()
    with open(index + ".new", "wb") as fh:
        fh.write(crafted(data, sys.argv[1]))
    os.rename(index + ".new", index)
    print("PLANTED", sys.argv[1])
