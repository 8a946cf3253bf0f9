"""The size of a vault's object store, scanned cheaply again and again (the quota's
:class:`.quota.QuotaTracker` is one): a fan-out directory or a sealed pack file seen
before, unchanged, is not listed or sized again."""

from __future__ import annotations

import os
import time

from ..store import packwriter
from .usage import size_of, tree_bytes

# A loose-object directory changed this recently may change again within the same
# timestamp tick (mtimes come from the kernel's coarse clock): it is listed again next time.
RACY_S = 0.02
_FANOUT = frozenset(f"{i:02x}" for i in range(256))
# the files of objects/pack whose size never changes under their name (git and avfs write
# them elsewhere and link or rename them into place; a pack's name is its bytes' hash)
_SEALED = (".pack", ".idx", ".rev", ".bitmap", ".mtimes")


class ObjectStoreScan:
    """Scans of ``objects_dir``; ``_loose`` and ``_sealed`` keep what was seen (the
    tracker's ``__init__`` sets all three)."""

    objects_dir: str
    _loose: dict[str, tuple[int, int, bool]]  # "ab" -> (mtime_ns, bytes, racy)
    _sealed: dict[str, tuple[int, int]]  # "pack-….idx" -> (inode, bytes)

    def _scan_objects(self, *, exact: bool = False) -> int:
        """Bytes of the object store: the files of objects/pack and the loose objects, and
        whatever else is under ``objects/`` (a file or directory git did not make: a
        confined command can write there). A fan-out directory whose mtime did not change
        is not listed again (so a rescan costs ~257 stats, ~0.4 ms, however many objects
        there are); ``exact`` lists them all (after a confined command ran: a file it
        grew in place leaves its directory's mtime alone)."""
        total = self._scan_packs(exact)
        now_ns = time.time_ns()
        racy_ns = int(RACY_S * 1e9)
        try:
            with os.scandir(self.objects_dir) as it:
                top = [e for e in it if e.name != "pack"]
        except FileNotFoundError:
            top = []
        seen = set()
        for e in top:
            name = e.name
            if not (len(name) == 2 and name in _FANOUT and e.is_dir(follow_symlinks=False)):
                # objects/info (small), or something git never makes there
                total += tree_bytes(e.path) if e.is_dir(follow_symlinks=False) else size_of(e)
                continue
            seen.add(name)
            try:
                mtime = e.stat(follow_symlinks=False).st_mtime_ns
            except FileNotFoundError:
                continue
            cached = self._loose.get(name)
            if not exact and cached is not None and cached[0] == mtime and not cached[2]:
                total += cached[1]
                continue
            size = tree_bytes(e.path)
            self._loose[name] = (mtime, size, now_ns - mtime < racy_ns)
            total += size
        for name in set(self._loose) - seen:
            del self._loose[name]
        return total

    def _scan_packs(self, exact: bool) -> int:
        """Bytes of ``objects/pack``. A sealed pack file (:data:`_SEALED`) listed with the
        inode it had when it was sized is not ``stat``ed again: each checkpoint adds a pack,
        and every check of a fresh process (each served CLI call) stats every file of
        every pack twice otherwise (before and after its own pack), O(checkpoints since the
        last gc). A file replaced under its name is another inode; ``exact`` sizes them all
        (a confined command may have grown one in place)."""
        total = 0
        seen: dict[str, tuple[int, int]] = {}
        try:
            with os.scandir(os.path.join(self.objects_dir, "pack")) as it:
                for e in it:
                    name = e.name
                    if e.is_dir(follow_symlinks=False):
                        total += tree_bytes(e.path)
                    elif name.startswith("pack-") and name.endswith(_SEALED):
                        ino = e.inode()
                        hit = self._sealed.get(name)
                        size = hit[1] if hit is not None and hit[0] == ino and not exact else size_of(e)
                        if size:  # (0: it went away meanwhile)
                            seen[name] = (ino, size)
                        total += size
                    # a pack avfs is writing is not counted yet; one a killed writer left
                    # is, and so is any other temporary file (git's own, or one a confined
                    # command named so)
                    elif not name.startswith(packwriter.TMP_PREFIX) or packwriter.temp_file_stale(e.path):
                        total += size_of(e)
        except FileNotFoundError:
            pass
        self._sealed = seen
        return total
