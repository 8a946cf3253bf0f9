"""What ``git count-objects -v`` says of a vault's object store, in bytes: for `avfs stats`
(:mod:`.vaultstats`) and for gc's before and after (:mod:`.collect`), which must not pay
for the imports of stats' other readers (a lazy vault's locality: ~35 ms of a cold `avfs
gc`)."""

from __future__ import annotations

import dataclasses

from .common import git


@dataclasses.dataclass(frozen=True, slots=True)
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
