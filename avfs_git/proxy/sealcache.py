"""The sandbox's scratch refs kept in step with the vault's branches, reading only the ref
files that changed since the last ``proxy exec`` (:mod:`.seal`).

Every confined command gets the vault's branches (:func:`.seal.prepare`: the fork's own in a
scratch directory, the others in a read-only ``packed-refs``, :mod:`.sealpack`), and after
it :func:`.seal.carry_back` reads the scratch back to see what the command moved. Read whole
each time, the vault's ref files are a read per branch per call: O(forks). This keeps, per
fork, each file's bytes with its ``lstat`` (inode, size, mtime, ctime) in a manifest in the
seal directory (avfs's masked state: the sandbox never sees it), and a file whose ``lstat``
is unchanged is not read again: a stat per ref, a read per changed ref.

Why the ``lstat`` is enough: a ref file is changed by a rename over it (git, libgit2: a new
inode) or in place (a person, a command): either moves its ctime, which no process can set
(``utimensat`` sets mtime and atime only; ctime is the kernel's clock, which a sandbox
cannot set). The kernel stamps files with a coarse clock, so a change within the same tick
as the read could leave every field as it was: a file whose ctime is less than ``RACY_NS``
older than the moment it was looked at is read again next time (git's "racily clean"
index entries, the same rule); on a file system that keeps whole seconds, 2 s.

:func:`sync` makes a scratch directory hold exactly what it should, reading its files
through the manifest.
"""

from __future__ import annotations

import json
import os
import stat
import time
from typing import TYPE_CHECKING

from ..core.store import deeptree, refs
from ..core.workspace.untrusted import read_file

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

RACY_NS = 50_000_000  # well over a timestamp tick (1-10 ms)
# a ctime in whole seconds: a file system that keeps seconds only (or, once in 10^9, a
# coincidence): a change within the same second leaves it as it was
RACY_COARSE_NS = 2_000_000_000
NAME = "refs.manifest"
_VERSION = 1
# the keys' prefixes: the vault's branches, the scratch refs (before and after the run),
# the scratch reflog; an entry under any other (a manifest an older avfs wrote) is dropped
VAULT, SCRATCH, LOG = "v:", "r:", "l:"
QUARANTINE = "q:"  # the object quarantine's fan-out directories, as last emptied

KEPT = 4096  # a ref file is one line: a longer file is read every time (both readers agree below it)
# key -> (st_ino, st_size, st_mtime_ns, st_ctime_ns, looked at (ns), the bytes as hex)
_Entry = tuple[int, int, int, int, int, str]


class RefCache:
    """The manifest of one fork's seal directory: :meth:`read` in place of a reader of ref
    files, :meth:`save` once the call is done with it."""

    def __init__(self, seal_dir: str) -> None:
        self.path = os.path.join(seal_dir, NAME)
        self.entries: dict[str, _Entry] = {}
        self.seen: set[str] = set()
        self.changed = False
        try:
            with open(self.path, "rb") as fh:
                doc = json.loads(fh.read())
            if doc.get("v") == _VERSION:
                self.entries = {
                    k: tuple(v)  # type: ignore[misc]
                    for k, v in doc["entries"].items()
                    if k.startswith((VAULT, SCRATCH, LOG, QUARANTINE))
                }
                self.changed = len(self.entries) < len(doc["entries"])  # written without them
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.entries = {}  # none yet, or unreadable: every file is read

    def read(self, key: str, path: str, reader: Callable[[str], bytes | None]) -> bytes | None:
        """What ``reader(path)`` gives, from the manifest when the regular file ``path``
        (never followed through a link) is as it was when ``key`` was last read."""
        self.seen.add(key)
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            if self.entries.pop(key, None) is not None:
                self.changed = True
            return reader(path)
        got = self.entries.get(key)
        if (
            got is not None
            and got[:4] == (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            and st.st_ctime_ns < got[4] - _racy(st.st_ctime_ns)
        ):
            return bytes.fromhex(got[5])
        now = time.time_ns()
        data = reader(path)
        after = _stat(path)
        if (
            data is None
            or len(data) > KEPT
            or after != (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        ):
            # changed while it was read (or not a regular file by then, or not a ref): not kept
            if self.entries.pop(key, None) is not None:
                self.changed = True
            return data
        self.entries[key] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, now, data.hex())
        self.changed = True
        return data

    def emptied(self, key: str, path: str, empty: Callable[[str], None]) -> None:
        """``empty(path)`` (a directory's entries removed), unless the directory is as it
        was when it was last found empty: its ``lstat`` (inode, size, mtime, ctime) the same
        and its ctime more than ``RACY_NS`` older than that moment. An entry made, removed
        or renamed in a directory moves its ctime, which no process can set back."""
        self.seen.add(key)
        st = _stat(path)
        got = self.entries.get(key)
        if st is not None and got is not None and got[:4] == st and st[3] < got[4] - _racy(st[3]):
            return
        empty(path)
        now = time.time_ns()
        after = _stat(path)
        if after is None:
            if self.entries.pop(key, None) is not None:
                self.changed = True
            return
        self.entries[key] = (*after, now, "")
        self.changed = True

    def save(self, prefixes: tuple[str, ...]) -> None:
        """Write the manifest when it changed, dropping the entries under ``prefixes`` that
        this call did not read (files gone since). Best effort: a manifest that cannot be
        written only costs the next call its reads."""
        for key in [k for k in self.entries if k.startswith(prefixes) and k not in self.seen]:
            del self.entries[key]
            self.changed = True
        if not self.changed:
            return
        data = json.dumps({"v": _VERSION, "entries": self.entries}, separators=(",", ":")).encode()
        try:
            # written in place (truncated after, never to zero): ext4 writes out a file
            # renamed over another or truncated to nothing at its close (auto_da_alloc),
            # milliseconds when the disk is busy; a torn manifest is not valid JSON, and
            # read as none
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.pwrite(fd, data, 0)
                os.ftruncate(fd, len(data))
            finally:
                os.close(fd)
        except OSError:
            return
        self.changed = False


def _racy(ctime_ns: int) -> int:
    return RACY_NS if ctime_ns % 1_000_000_000 else RACY_COARSE_NS


def _stat(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def below(path: str, root: str) -> str:
    """``path`` (``root`` or a path os.walk of ``root`` gave) relative to ``root``: '' for
    ``root`` itself. What ``os.path.relpath`` gives for those, without its ``abspath`` and
    ``commonprefix`` of both: this runs for every branch of the vault on every confined
    command (~30 µs each under load)."""
    return "" if path == root else path[len(root) + 1 :]


def sync(
    root: str,
    want: dict[str, bytes],
    cache: RefCache,
    key: str,
    dirs: Collection[str] = (),
    mounts: Collection[str] = (),
) -> None:
    """Make ``root`` hold exactly the files of ``want`` (path below it -> bytes) and the
    directories ``dirs`` (top level), touching only what differs: a run that changed
    nothing costs a walk and reads, no directory made or removed (each is ~1-2 ms on some
    file systems). ``mounts``: top-level directories never looked into (the vault's own,
    shown there in a sandbox). ``cache``: what its files held, under ``key`` + their path."""
    needed = {""} | set(dirs)
    for path in want:
        parts = path.split("/")[:-1]
        needed.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    done: set[str] = set()
    for dirpath, subdirs, files in deeptree.walk(root):
        rel = below(dirpath, root)
        rel = rel + "/" if rel else ""
        keep = []
        for x in subdirs:
            p = os.path.join(dirpath, x)
            if rel + x in mounts and not os.path.islink(p):
                continue
            if (rel + x) in needed and not os.path.islink(p):
                keep.append(x)
            elif os.path.islink(p):
                os.unlink(p)
            else:
                deeptree.rmtree(p, ignore_errors=True)
        subdirs[:] = keep
        for f in files:
            p, name = f"{dirpath}/{f}", rel + f
            if name in want and name not in needed and cache.read(key + name, p, read_file) == want[name]:
                done.add(name)
            else:
                os.unlink(p)
    for x in needed:
        if x and not os.path.isdir(os.path.join(root, x)):
            os.makedirs(os.path.join(root, x), exist_ok=True)
    for name, data in want.items():
        if name not in done:
            with open(os.path.join(root, name), "wb") as fh:
                fh.write(data)


def vault_loose(real_refs: str, cache: RefCache, *kinds: str) -> dict[str, bytes]:
    """The vault's loose ref files under ``refs/<kind>`` for each of ``kinds`` (``heads``,
    ``tags``, ``remotes``; ref name -> bytes), each read again only when its ``lstat``
    moved since the last call (``cache``)."""
    out: dict[str, bytes] = {}
    for kind in kinds:
        heads = os.path.join(real_refs, kind)
        for dirpath, _dirs, files in deeptree.walk(heads):
            under = below(dirpath, heads)
            prefix = f"{refs.REFS}{kind}/{under}/" if under else f"{refs.REFS}{kind}/"
            for fn in files:
                if fn.endswith(".lock"):
                    continue
                data = cache.read(VAULT + prefix + fn, f"{dirpath}/{fn}", read_file)
                if data is not None:
                    out[prefix + fn] = data
    return out
