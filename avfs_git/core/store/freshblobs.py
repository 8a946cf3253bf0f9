"""The contents of the blobs a lazy vault's last fetches brought, kept in memory until each
is read once (docs/lazy.md, "What a read fetches").

A demand fetch over the kept connection (:mod:`.blobwire`) inflates every blob of the
server's pack to check its id, writes the pack into the vault as it came, and the read
that asked for them then reads its blob, and each neighbour's later read reads its own,
from that pack again: a second inflate, and in a pack the server deltified the delta
chain resolved anew, in this process, on the path of a program waiting on the mount (the
cold lazy task of docs/scale.md reads 428 files, nearly all of them fetched that way).
Here the contents the fetch checked are kept instead and handed to the first read of each
(then dropped: the mount's own caches and the kernel's page cache hold a file read once),
within :data:`MAX_BYTES`, the oldest fetched going first. They are the bytes whose hash is
the blob's id, so a read gets from here exactly what it would from the pack.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

MAX_BYTES = 16 << 20  # contents kept at most (a package's batch is up to read_package_bytes, 8 MiB)


class FreshBlobs:
    """Blob id -> contents of the blobs fetched and not read yet, bounded; shared by threads."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._kept: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.taken = 0  # reads answered from here (tests, figures)

    def after_fork(self) -> None:
        """In a forked child: a lock of its own (a thread of the parent may have held it)."""
        self._lock = threading.Lock()

    def keep(self, blobs: Mapping[str, bytes]) -> None:
        """Keep ``blobs`` (id -> contents, each checked against its id), dropping the
        oldest kept past :attr:`max_bytes`; a blob bigger than that is not kept."""
        with self._lock:
            for oid, data in blobs.items():
                if len(data) > self.max_bytes or oid in self._kept:
                    continue
                self._kept[oid] = data
                self._bytes += len(data)
            while self._bytes > self.max_bytes:
                _, old = self._kept.popitem(last=False)
                self._bytes -= len(old)

    def take(self, oid: str) -> bytes | None:
        """The contents of ``oid`` if kept (no longer kept after), else None."""
        if not self._kept:  # (no lock for the common case: nothing fetched lately)
            return None
        with self._lock:
            data = self._kept.pop(oid, None)
            if data is not None:
                self._bytes -= len(data)
                self.taken += 1
            return data

    def __len__(self) -> int:
        return len(self._kept)
