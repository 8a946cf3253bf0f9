"""Blob sizes a mount learned, kept in the vault for the next mount (``avfs/kept-sizes``).

An overlay mount's walk of its lower layer (fuse/warm.py) answers each file's size from
its blob's header: a failed ``open`` of the loose object, a search of the pack indexes, a
header read (~16 us a file, a third of the walk's ~50 us an entry in the daemon; 10,000
files ~160 ms of every overlay mount's CPU). A blob's size never changes: the sizes a
read-only view learned are written here at its end and read back by the next one's first
miss, so a fork mounted again, or another fork sharing most of its blobs, reads no header
twice.

What could make a kept size wrong is a damaged object whose header was read as another's
(an ``.idx`` giving the blob another's offset: docs/fuse.md): only packed objects' sizes
are kept (a loose object is left out: it may be written again to mend it), and the file
names the packs it was learned from by their stamps (name, size, inode, mtime); a pack
still there under its name with another stamp (put back, mended, damaged in place) voids
the file. Packs added since, or gone (a repack moved their objects), leave it as it is.
A lazy vault's sizes are its promisor's (``avfs/blob-sizes``), not these.

Format: a first line ``avfs-kept-sizes 1 N`` then ``N`` lines ``NAME SIZE INO MTIME_NS``
(the packs), then records of 20 bytes of id and 8 of size (little-endian). The file is
avfs's own (under the vault's ``avfs/``, where a confined command cannot write), written
whole by a rename.
"""

from __future__ import annotations

import os
import struct

from .gitrun import keep_file

FILE = "kept-sizes"
MAGIC = b"avfs-kept-sizes 1"
MOST = 1 << 20  # sizes kept at most (then only the last view's)
_RECORD = struct.Struct("<20sQ")


def _stamps(git_dir: str) -> dict[str, tuple[int, int, int]] | None:
    """name -> (size, inode, mtime_ns) of each ``.pack`` and ``.idx`` file; None where the
    vault reads objects from elsewhere too (alternates: not kept)."""
    if os.path.exists(os.path.join(git_dir, "objects", "info", "alternates")):
        return None
    d = os.path.join(git_dir, "objects", "pack")
    out: dict[str, tuple[int, int, int]] = {}
    try:
        with os.scandir(d) as it:
            for de in it:
                if de.name.endswith((".pack", ".idx")) and "\n" not in de.name and " " not in de.name:
                    st = de.stat(follow_symlinks=False)
                    out[de.name] = (st.st_size, st.st_ino, st.st_mtime_ns)
    except OSError:
        return {}
    return out


def load(git_dir: str) -> dict[str, int]:
    """The sizes kept by the vault's last view (id -> size); empty where none are kept, the
    file is damaged, or a pack it was learned from is not the same file any more."""
    try:
        with open(os.path.join(git_dir, "avfs", FILE), "rb") as fh:
            data = fh.read()
    except OSError:
        return {}
    head, _, rest = data.partition(b"\n")
    parts = head.split(b" ")
    if not head.startswith(MAGIC + b" ") or len(parts) != 3 or not parts[2].isdigit():
        return {}
    now = _stamps(git_dir)
    if now is None:
        return {}
    lines = rest.split(b"\n", int(parts[2]))
    if len(lines) <= int(parts[2]):
        return {}
    for line in lines[:-1]:
        fields = line.split(b" ")
        if len(fields) != 4 or not all(f.isdigit() for f in fields[1:]):
            return {}
        name = fields[0].decode("utf-8", "surrogateescape")
        there = now.get(name)
        if there is not None and there != (int(fields[1]), int(fields[2]), int(fields[3])):
            return {}  # the same pack's name on another file: learned from what it was
    body = lines[-1]
    body = body[: len(body) - len(body) % _RECORD.size]  # (a record cut short: not read)
    return {oid.hex(): size for oid, size in _RECORD.iter_unpack(body)}


def save(git_dir: str, sizes: dict[str, int]) -> None:
    """Keep ``sizes`` (id -> size, a read-only view's, what :func:`load` gave included) for
    the next view, the loose objects' left out; nothing where it cannot be written."""
    stamps = _stamps(git_dir)
    if stamps is None or not sizes:
        return
    objects = os.path.join(git_dir, "objects")
    loose: set[str] = set()
    for fan in {oid[:2] for oid in sizes}:
        try:
            loose.update(fan + name for name in os.listdir(os.path.join(objects, fan)))
        except OSError:
            continue
    kept = [(oid, size) for oid, size in sizes.items() if oid not in loose and len(oid) == 40 and size >= 0]
    if not kept:
        return
    head = [MAGIC + b" %d" % len(stamps)]
    head += [b"%s %d %d %d" % (name.encode("utf-8", "surrogateescape"), *st) for name, st in stamps.items()]
    body = b"".join(_RECORD.pack(bytes.fromhex(oid), size) for oid, size in kept[-MOST:])
    keep_file(os.path.join(git_dir, "avfs"), FILE, b"\n".join(head) + b"\n" + body)
