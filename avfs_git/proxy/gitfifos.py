"""FIFOs a command left in a mounted fork at the names git opens in the work tree: removed
after the run, and said (``not_recorded``, kind ``fifo``).

git opens ``.gitignore`` and ``.gitattributes`` in every directory it looks at, and
``.mailmap`` (`git log`, `blame`, `shortlog`) and ``.gitmodules`` (with submodules) at the
top, with a plain ``open`` (git 2.39: ``open_nofollow``, which follows no link but waits
for a writer on a FIFO). Found in the twenty-sixth round (NAME=attack17): a confined
command's ``mkfifo .gitignore`` (or ``.mailmap``) outlived the run, and the person's plain
`git status`, `git add` or `git log` in the mount waited for ever (until they found the
FIFO and removed it); avfs's own commands read past it (they open
``O_NONBLOCK``, regular files only) and a checkpoint leaves it out, so nothing else said
so. A FIFO holds nothing: removing it loses no content. A git of the person's that
opened one during the run (it waits in ``open`` for a writer) is let go as it goes: the
FIFO is held open at both ends while its name is removed, and reads as empty.

Only what the command wrote is looked at (the paths the workspace's journals name since
it started, and below those that are directories, no link followed), and only a FIFO made
since it started: a person's own is theirs."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable

from ..core.store import deeptree, gitnames
from .gitlinks import open_dir_below

# the names git opens wherever it reads a directory, and those only at the top
ANYWHERE = frozenset({".gitignore", ".gitattributes"})
AT_TOP = frozenset({".mailmap", ".gitmodules"})

_KIND = "fifo"
_WHY = (
    "a fifo at a name git opens in the work tree (the person's plain git would wait on it for ever): removed"
)


def _opened_by_git(path: str) -> bool:
    name = path.rpartition("/")[2]
    return name in ANYWHERE or ("/" not in path and name in AT_TOP)


def _removed(dfd: int, name: str, since_ns: int) -> bool:
    """Remove ``name`` in directory ``dfd`` when it is a FIFO made at or after ``since_ns``."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except OSError:
        return False
    if not stat.S_ISFIFO(st.st_mode) or st.st_ctime_ns < since_ns:
        return False
    # both ends held while the name goes (Linux opens a FIFO read-write at once): a git of
    # the person's that opened it during the run waits in `open` for a writer, and removing
    # the name wakes no one (found in the twenty-seventh round, NAME=attack18: it waited for
    # ever); with a writer there its `open` returns, and at the close it reads an end
    held = None
    with contextlib.suppress(OSError):
        held = os.open(name, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    try:
        if held is not None and os.fstat(held).st_ino != st.st_ino:
            os.close(held)  # (not the FIFO looked at: nothing of the command's runs now)
            held = None
        os.unlink(name, dir_fd=dfd)
    except FileNotFoundError:
        return False
    finally:
        if held is not None:
            os.close(held)
    return True


def _below(fd: int, top: str, since_ns: int, out: list[gitnames.NotRecorded]) -> None:
    """Every FIFO at a name git opens below directory ``fd`` (the work tree's ``top``),
    made since ``since_ns``: removed and said. ``.git`` directories are not entered. By a
    loop, a few descriptors held whatever the depth (:func:`.deeptree.by_descriptors`):
    ``os.fwalk`` went one Python call deeper and held one more descriptor a level, and a
    command's ``mkdir d && cd d`` 1,000 times over failed its own exec's record with
    ``internal: RecursionError`` (the thirtieth round, NAME=attack21)."""

    def visit(dfd: int, rel: str, entries: list[os.DirEntry[str]]) -> list[str]:
        prefix = f"{top}/{rel}".strip("/")
        into = []
        for e in entries:
            if e.name == ".git":
                continue
            try:
                if e.is_dir(follow_symlinks=False):
                    into.append(e.name)
                    continue
            except OSError:
                continue
            path = f"{prefix}/{e.name}" if prefix else e.name
            if _opened_by_git(path) and _removed(dfd, e.name, since_ns):
                out.append(gitnames.NotRecorded(path, _KIND, _WHY))
        return into

    deeptree.by_descriptors(os.dup(fd), visit)


def remove(mountpoint: str, written: Iterable[str], since_ns: int) -> list[gitnames.NotRecorded]:
    """Remove the FIFOs the command made at names git opens among the paths it wrote
    (``written``: relative to the mount's top; a directory none of whose entries is listed
    stands for what is below it), made at or after ``since_ns``; one record for each, for
    ``not_recorded``. Each directory is opened once, by descriptors from the top. (The
    record stage skips a pure-FUSE mount: it holds no FIFO, its ``mknod`` answers
    ``EPERM``.)"""
    paths = sorted({p.strip("/") for p in written})
    listed_below = {p.rpartition("/")[0] for p in paths}
    for p in list(listed_below):
        while p:
            p = p.rpartition("/")[0]
            listed_below.add(p)
    out: list[gitnames.NotRecorded] = []
    walked: list[str] = []
    dirs: dict[str, int | None] = {}
    try:
        for path in paths:
            if any(path == w or path.startswith(w + "/") or w == "" for w in walked):
                continue  # (under a directory walked already)
            if path and path in listed_below and not _opened_by_git(path):
                continue  # a directory whose entries are listed themselves
            parent, _, name = path.rpartition("/")
            if parent not in dirs:
                dirs[parent] = open_dir_below(mountpoint, parent)
            fd = dirs[parent]
            if fd is None:
                continue
            if not name:  # the top itself, as a whole
                walked.append("")
                _below(fd, "", since_ns, out)
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISFIFO(st.st_mode):
                if _opened_by_git(path) and _removed(fd, name, since_ns):
                    out.append(gitnames.NotRecorded(path, _KIND, _WHY))
            elif stat.S_ISDIR(st.st_mode) and name != ".git":
                walked.append(path)
                sub = None
                with contextlib.suppress(OSError):
                    sub = os.open(
                        name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                    )
                if sub is not None:
                    try:
                        _below(sub, path, since_ns, out)
                    finally:
                        os.close(sub)
    finally:
        for fd in dirs.values():
            if fd is not None:
                os.close(fd)
    return sorted(out, key=lambda n: n.path)
