"""SHA-1 as git computes object ids (and SHA-256), without loading OpenSSL where the input is small.

``hashlib`` loads ``_hashlib``, OpenSSL's libcrypto: ~4 ms of a cold `avfs status`, `cat`,
`log` or `write` (twenty-second round, docs/benchmarks.md), which hash a few small
objects (an object read is checked against its id, the op log's schema digest, a blob's
id). :func:`sha1` gives the interpreter's own SHA-1 (the ``_sha1`` module) for those, and
hashlib's (OpenSSL, a few times faster on large inputs where the CPU has SHA instructions)
once hashlib is loaded anyway or for an input of :data:`BIG` bytes or more. The digests
are SHA-1's either way.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Protocol, cast

BIG = 1 << 20  # from here on OpenSSL's speed pays for its load


class Hash(Protocol):
    """What a hash object of hashlib or ``_sha1`` offers (``hashlib._Hash``)."""

    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...


def sha1(data: bytes = b"", *, size: int = 0, usedforsecurity: bool = True) -> Hash:
    """``hashlib.sha1(data)``; ``size``: the bytes still to come through ``update`` (a
    header hashed before its contents), so a large object takes OpenSSL's."""
    if "hashlib" not in sys.modules and len(data) + size < BIG:
        try:
            own = import_module("_sha1")  # (no stub: typed here as Hash)
        except ImportError:  # (an interpreter built without it)
            pass
        else:
            return cast(Hash, own.sha1(data, usedforsecurity=usedforsecurity))
    import hashlib

    return hashlib.sha1(data, usedforsecurity=usedforsecurity)


def sha256(data: bytes = b"") -> Hash:
    """``hashlib.sha256(data)`` for a small input (a key of a few names): the interpreter's
    own (``_sha2``, ``_sha256`` before Python 3.12) while hashlib is not loaded."""
    if "hashlib" not in sys.modules:
        for name in ("_sha2", "_sha256"):
            try:
                own = import_module(name)
            except ImportError:
                continue
            return cast(Hash, own.sha256(data))
    import hashlib

    return hashlib.sha256(data)
