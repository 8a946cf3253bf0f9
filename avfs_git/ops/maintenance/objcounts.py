"""What ``git count-objects -v`` says of a vault's object store, in bytes: for `avfs stats`
(:mod:`.vaultstats`, git's own figures), and the same totals counted in process for gc's
before and after (:mod:`.collect`: :func:`object_totals`, not two git processes around its
work), which must not pay for the imports of stats' other readers (a lazy vault's locality:
~35 ms of a cold `avfs gc`)."""

from __future__ import annotations

import os
import re
import stat
import struct

from ...core.records import dataclass
from .common import git


@dataclass(frozen=True, slots=True)
class ObjectCounts:
    """``git count-objects -v``, in bytes."""

    loose_objects: int
    loose_bytes: int
    packed_objects: int
    packs: int
    packed_bytes: int
    garbage_files: int

    @property
    def objects(self) -> int:
        return self.loose_objects + self.packed_objects


def count_objects(vault_path: str) -> ObjectCounts:
    out = git(vault_path, "count-objects", "-v").stdout
    kv: dict[str, int] = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        try:
            kv[key.strip()] = int(value.strip())
        except ValueError:
            continue
    return ObjectCounts(
        loose_objects=kv.get("count", 0),
        loose_bytes=kv.get("size", 0) * 1024,
        packed_objects=kv.get("in-pack", 0),
        packs=kv.get("packs", 0),
        packed_bytes=kv.get("size-pack", 0) * 1024,
        garbage_files=kv.get("garbage", 0),
    )


_LOOSE_NAME = re.compile(r"[0-9a-fA-F]{38}")  # a loose object's file in its fan-out directory
_FAN_OUT = re.compile(r"[0-9a-f]{2}")  # git reads only these directories (``%02x``)


def object_totals(vault_path: str) -> tuple[int, int]:
    """(objects, bytes) of the vault's own object store as ``git count-objects -v`` counts
    them: loose objects (regular files named by their id in a fan-out directory; their
    space on disk, ``st_blocks``) plus every object of each local pack whose index and
    pack are both there (the index's count; the two files' sizes), the bytes in whole KiB
    as git prints them. Read in process: gc asked a git process before and after its work
    (~5 ms each, more under load). ``tests/test_gc_fast.py`` holds it against git's."""
    objects = os.path.join(vault_path, "objects")
    loose = loose_bytes = 0
    try:
        fans = [n for n in os.listdir(objects) if _FAN_OUT.fullmatch(n)]
    except FileNotFoundError:
        fans = []
    for fan in fans:
        try:
            with os.scandir(os.path.join(objects, fan)) as it:
                for e in it:
                    if _LOOSE_NAME.fullmatch(e.name):
                        try:
                            st = e.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue  # pruned meanwhile
                        if stat.S_ISREG(st.st_mode):
                            loose += 1
                            loose_bytes += st.st_blocks * 512
        except (FileNotFoundError, NotADirectoryError):
            continue
    packed = packed_bytes = 0
    pack_dir = os.path.join(objects, "pack")
    try:
        names = os.listdir(pack_dir)
    except FileNotFoundError:
        names = []
    for n in names:
        if not n.endswith(".idx"):
            continue
        got = _pack_totals(os.path.join(pack_dir, n))
        if got is not None:
            packed += got[0]
            packed_bytes += got[1]
    return loose + packed, loose_bytes // 1024 * 1024 + packed_bytes // 1024 * 1024


def _pack_totals(idx_path: str) -> tuple[int, int] | None:
    """(objects, bytes of the index and the pack) of one pack; None where git would not
    count it (its pack is missing, its index unreadable or of another layout)."""
    try:
        pack_size = os.stat(idx_path[:-4] + ".pack").st_size
        with open(idx_path, "rb") as fh:
            head = fh.read(8 + 1024)
            idx_size = os.fstat(fh.fileno()).st_size
    except OSError:
        return None
    if head[:8] == b"\xfftOc\x00\x00\x00\x02":
        fanout = head[8:]
    elif head[:4] != b"\xfftOc":  # version 1: the fan-out table first
        fanout = head[:1024]
    else:
        return None
    if len(fanout) < 1024:
        return None
    return int(struct.unpack_from(">I", fanout, 1020)[0]), idx_size + pack_size
