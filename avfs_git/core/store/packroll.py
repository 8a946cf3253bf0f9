"""Rolling a vault's small packs into one, in the process :func:`.packwriter.maybe_consolidate`
starts (``python -m avfs_git.core.store.packroll GIT_DIR``), so no command waits for it.

Every checkpoint, exec record and merge writes a pack; past git's ``gc.autoPackLimit`` (50)
the next ``git commit`` a person makes in a mount runs a whole ``git gc`` before it returns
(h-race6, h-packs1). A whole vault is rolled the way git does it itself,
``git repack -d --geometric=2``: only the packs (and loose objects) that break a geometric
progression of sizes are rewritten, so the cost follows what was written lately, not the
vault's size.

git 2.39 refuses that in a partial clone ("cannot use internal rev list with
--stdin-packs": its repack adds ``--exclude-promisor-objects`` to a ``--stdin-packs``
pack-objects), so a lazy vault's packs piled up for good (one a committing exec) and a
person's ``git commit`` ran a whole ``gc`` after ~50 execs. There the roll is made here with
the same geometric choice, by git's own ``pack-objects --stdin-packs``, once for each kind of
pack: the promisor packs (the remote's objects: the clone's, each lazy fetch's) into one
promisor pack (its ``.promisor`` beside it, so git still knows what the remote promised), the
vault's own packs into one plain pack. A pack with a ``.keep`` is never rolled; a rolled
pack is removed only once the new pack, a superset of it, is in place.
"""

from __future__ import annotations

import os
import struct
import sys
from typing import IO

from .gitrun import run
from .packwriter import TMP_PREFIX, install, repack_lock

FACTOR = 2  # each pack at least twice the objects of all smaller ones together (git's --geometric=2)
_EXTS = (
    ".idx",
    ".pack",
    ".rev",
    ".bitmap",
    ".promisor",
    ".mtimes",
)  # (the index first: no reader finds the pack after)


def _count(idx: str) -> int:
    """The objects a v2 pack index lists (its fan-out table's last entry)."""
    with open(idx, "rb") as fh:
        head = fh.read(8 + 256 * 4)
    if len(head) < 8 + 256 * 4 or head[:4] != b"\xfftOc":
        raise ValueError(f"not a v2 pack index: {idx}")
    return int(struct.unpack_from(">I", head, 8 + 255 * 4)[0])


def packs(pack_dir: str) -> dict[bool, list[tuple[int, str]]]:
    """The packs a roll may take, by kind (True: promisor packs), each as (objects, base
    path without extension), smallest first: those with an index and a pack, and no ``.keep``."""
    out: dict[bool, list[tuple[int, str]]] = {True: [], False: []}
    names = set(os.listdir(pack_dir))
    for name in names:
        if not (name.startswith("pack-") and name.endswith(".idx")):
            continue
        stem = name[: -len(".idx")]
        if stem + ".pack" not in names or stem + ".keep" in names:
            continue
        try:
            count = _count(os.path.join(pack_dir, name))
        except (OSError, ValueError):
            continue  # (gone meanwhile, or not ours to read: left as it is)
        out[stem + ".promisor" in names].append((count, os.path.join(pack_dir, stem)))
    for kind in out.values():
        kind.sort()
    return out


def split(counts: list[int], factor: int = FACTOR) -> int:
    """How many of the smallest packs (``counts`` ascending) to roll into one so that the
    rest, with the new pack, form a geometric progression (git's ``split_pack_geometry``):
    from the largest down, the first pack not ``factor`` times its smaller neighbour marks
    the cut; then each next pack that the rolled total would outgrow joins it."""
    cut = 0
    for i in range(len(counts) - 1, 0, -1):
        if counts[i] < factor * counts[i - 1]:
            cut = i + 1
            break
    if cut < 2:
        return 0
    total = sum(counts[:cut])
    while cut < len(counts) and counts[cut] < factor * total:
        total += counts[cut]
        cut += 1
    return cut


def roll(git_dir: str, bases: list[str], promisor: bool) -> str | None:
    """Write the objects of the packs ``bases`` as one pack (git's ``pack-objects
    --stdin-packs``), put it in place (with a ``.promisor`` when ``promisor``), then remove
    ``bases``; the new pack's base path, or None when git failed (nothing removed)."""
    pack_dir = os.path.join(git_dir, "objects", "pack")
    prefix = os.path.join(pack_dir, f"{TMP_PREFIX}{os.getpid()}_roll")
    names = "".join(os.path.basename(b) + ".pack\n" for b in bases)
    proc = run(
        ["pack-objects", "--stdin-packs", "-q", "--delta-base-offset", prefix],
        git_dir=git_dir,
        input=names.encode(),
        check=False,
    )
    digest = proc.stdout.decode("ascii", "replace").strip()
    tmp = f"{prefix}-{digest}"
    if proc.returncode != 0 or len(digest) not in (40, 64):
        for ext in (".pack", ".idx"):
            _unlink(tmp + ext)
        return None
    base = os.path.join(pack_dir, f"pack-{digest}")
    if promisor:  # (before the pack is seen: git never finds its objects unpromised)
        with open(base + ".promisor", "ab"):
            pass
    install(tmp + ".pack", tmp + ".idx", base)
    for old in bases:
        if old != base:
            for ext in _EXTS:
                _unlink(old + ext)
    return base


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def lazy(pack_dir: str) -> bool:
    """Whether the vault holds promisor packs (a partial clone's)."""
    try:
        return any(n.endswith(".promisor") for n in os.listdir(pack_dir))
    except FileNotFoundError:
        return False


def consolidate(git_dir: str) -> int:
    """Roll the vault's small packs (the caller holds the repack lock): git's own geometric
    repack, or in a lazy vault this module's, kind by kind; git's exit status (0: done)."""
    pack_dir = os.path.join(git_dir, "objects", "pack")
    if not lazy(pack_dir):
        args = ["repack", "-d", "-q", f"--geometric={FACTOR}", "--no-write-bitmap-index"]
        return run(args, git_dir=git_dir, check=False).returncode
    code = 0
    for promisor, kind in packs(pack_dir).items():
        n = split([count for count, _ in kind])
        if n and roll(git_dir, [b for _, b in kind[:n]], promisor) is None:
            code = 1
    return code


def main(argv: list[str]) -> int:
    """``GIT_DIR [--wait] [--lock-fd FD]``: roll under the vault's repack lock (the one its
    starter took and handed on as FD, or taken here, waiting with ``--wait``)."""
    git_dir, args = argv[0], argv[1:]
    lock: IO[str] | None
    if "--lock-fd" in args:
        lock = os.fdopen(int(args[args.index("--lock-fd") + 1]), "w")
    else:
        lock = repack_lock(git_dir, wait="--wait" in args)
    if lock is None:
        return 0  # another roll of this vault is running
    with lock:
        return consolidate(git_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
