"""Which side files in an overlay mount are avfs's own: a name only avfs can make.

A swap through a live overlay mount (:mod:`.liveswap`: a restore's, an undo's, a merge's
or an adoption's write) makes a side file beside the path, for an instant; the mount
daemon's change classifier (:mod:`.upperclassify`) passes over its events, so the change
stream names the path a person would, never the side file (flaky4, the thirty-eighth
round). It told them by the name's shape alone (``.avfs-adopt-`` and 12 hex digits):
found by review43, a confined command's own file of that shape, tracked and committed,
never showed in `avfs watch` or ``changes_since``, nor did the other names of a linked
file written through one (``Makefile``, a link of an ignored ``build/.avfs-adopt-...``).

Now avfs's side name carries a check: 12 hex digits of a nonce, then 16 of its keyed
BLAKE2b (a MAC) under a key kept in the workspace's state directory (:data:`KEY_FILE`,
beside the upper layer: in the avfs home, which no sandbox is shown, `proxy/confine.py`
``readable_paths``). The classifier passes over only a name whose check holds; any other
name, of any shape, is a file like any other. The key is made by the mount daemon as it
mounts the fork (fuse/stacking.py ``upper_watch``; by a swap where there is none), read
once by each process that swaps; the check costs one hash per side-shaped name.
"""

from __future__ import annotations

import os
import secrets

from ..types import SWAP_SIDE_PREFIX

KEY_FILE = "side-key"  # in the workspace's state directory, the upper layer's parent
_KEY_BYTES = 32
NONCE_HEX = 12
TAG_HEX = 16  # 64 bits: a name guessed at random is avfs's once in 2**64 tries


def key_path(upper_dir: str) -> str:
    """Where the key of the workspace whose upper layer is ``upper_dir`` is kept."""
    return os.path.join(os.path.dirname(os.path.normpath(upper_dir)), KEY_FILE)


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        data = os.read(fd, _KEY_BYTES + 1)
    finally:
        os.close(fd)
    return data if len(data) == _KEY_BYTES else None


def load(upper_dir: str, make: bool = False) -> bytes | None:
    """The workspace's key (None: there is none, and ``make`` is False, or it cannot be
    read). ``make``: made where there is none, whole (written aside, then linked into
    place: a second process making one at once reads the first's)."""
    path = key_path(upper_dir)
    key = _read(path)
    if key is not None or not make:
        return key
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, secrets.token_bytes(_KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # (another process's, made meanwhile: that one)
    finally:
        os.unlink(tmp)
    return _read(path)


def _tag(key: bytes, nonce: str) -> str:
    import hashlib

    return hashlib.blake2b(nonce.encode(), key=key, digest_size=TAG_HEX // 2, person=b"avfs-side").hexdigest()


def signed(key: bytes) -> str:
    """A new side file's name that :func:`owns` takes for avfs's under ``key``."""
    nonce = secrets.token_hex(NONCE_HEX // 2)
    return SWAP_SIDE_PREFIX + nonce + _tag(key, nonce)


def owns(key: bytes | None, name: str) -> bool:
    """Whether ``name`` (a file name, no directory) is a side file avfs made under
    ``key`` (None: no key, none is)."""
    if key is None or len(name) != len(SWAP_SIDE_PREFIX) + NONCE_HEX + TAG_HEX:
        return False
    if not name.startswith(SWAP_SIDE_PREFIX):
        return False
    rest = name[len(SWAP_SIDE_PREFIX) :]
    if rest.strip("0123456789abcdef"):
        return False  # (lowercase hex only: compare_digest takes ASCII only)
    return secrets.compare_digest(_tag(key, rest[:NONCE_HEX]), rest[NONCE_HEX:])
