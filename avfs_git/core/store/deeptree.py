"""Directory trees of any depth on the host: a walk and a removal that do not go one
Python call deeper per level.

Python 3.11's ``os.walk`` and ``shutil.rmtree`` recurse, so a tree deeper than the
interpreter's recursion limit (~1,000 levels: a confined command's ``mkdir d && cd d`` in
a loop makes one in a second) raises ``RecursionError`` (not an ``OSError``:
``ignore_errors=True`` does not catch it) wherever avfs's host side walks or removes what a
fork holds (a fork's state dir and upper layer, a mount's files on a restore, a
materialized copy, the project directory ``avfs apply`` writes). Found in the fifteenth
round (NAME=review4).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator

__all__ = ["SCRUB_MAX", "by_descriptors", "makedirs", "rmtree", "walk", "writable_again"]

SCRUB_MAX = 100_000  # entries looked at in a tree a command wrote (its git dir, the caches), at most


def walk(top: str, *, topdown: bool = True) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(top, topdown)`` (links never followed, errors skipped) by a loop: the
    same ``(dirpath, dirnames, filenames)``, ``dirnames`` pruned in place when top-down."""
    stack: list[tuple[str, list[str], list[str]] | str] = [top]
    while stack:
        item = stack.pop()
        if not isinstance(item, str):
            yield item  # (bottom-up: a directory after everything below it)
            continue
        dirs: list[str] = []
        files: list[str] = []
        try:
            with os.scandir(item) as it:
                for e in it:
                    try:
                        is_dir = e.is_dir(follow_symlinks=False)
                    except OSError:
                        is_dir = False
                    (dirs if is_dir else files).append(e.name)
        except OSError:
            continue
        if topdown:
            yield item, dirs, files
        else:
            stack.append((item, dirs, files))
        stack.extend(os.path.join(item, d) for d in reversed(dirs))


def makedirs(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)`` by a loop (it makes each missing parent one
    call deeper): the missing directories found bottom up, made top down."""
    missing: list[str] = []
    p = path
    while not os.path.isdir(p):
        missing.append(p)
        up = os.path.dirname(p)
        if up == p:
            break
        p = up
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            if not os.path.isdir(d):
                raise


def rmtree(path: str, *, ignore_errors: bool = False) -> None:
    """``shutil.rmtree(path, ignore_errors=...)``; a tree it leaves is removed by ``rm -rf``
    (its own process: coreutils' walk has no depth limit, holds a few descriptors whatever
    the depth, and, like rmtree, follows no link). shutil's walk goes one Python call deeper
    and holds one more descriptor a level: a tree deeper than the recursion limit raises
    ``RecursionError``, and one deeper than the process's soft limit of open files fails
    ``EMFILE`` part way (with ``ignore_errors`` silently: a confined command's comb 300
    levels deep outlived its run's scratch under a person's soft limit of 256, found in the
    twenty-first round, NAME=suitetime8)."""
    import shutil  # (not at the top: a cold status, cat or log never runs it)
    import subprocess

    try:
        shutil.rmtree(path, ignore_errors=ignore_errors)
        if not os.path.lexists(path):
            return
    except RecursionError:
        pass
    except OSError as exc:
        if exc.errno != errno.EMFILE:
            raise
    done = subprocess.run(["rm", "-rf", "--", path], capture_output=True, check=False)
    if done.returncode != 0 and not ignore_errors and os.path.lexists(path):
        raise OSError(f"rm -rf {path} failed: {done.stderr.decode(errors='replace').strip()}")


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Held:
    """A directory's descriptor, closed once nothing still to be looked into needs it."""

    __slots__ = ("fd", "users")

    def __init__(self, fd: int) -> None:
        self.fd, self.users = fd, 1

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            os.close(self.fd)


def by_descriptors(top_fd: int, visit: Callable[[int, str, list[os.DirEntry[str]]], list[str]]) -> None:
    """Call ``visit(fd, rel, entries)`` on the directory ``top_fd`` (``rel`` ``""``) and on
    each subdirectory it names (``rel``: its path below, ending in ``/``), depth first: it
    gets the directory's descriptor and entries and returns the names to look into; each
    is opened then, by the descriptor of the directory that named it, never following a
    link. ``top_fd`` is closed at the end.

    A directory is opened only when it is looked into, so the descriptors held at once are
    those of the directories above it still naming one to look into, not one per
    directory waiting (found in the twentieth round, NAME=attack11: a command's 1,500
    directories beside each other wore out a person's 1,024 open files, and what was
    below the rest was never looked into). Out of descriptors (a comb as deep as the
    limit), the soft limit is raised to the hard one, once."""
    held: list[tuple[_Held, str, str]] = []

    def look(h: _Held, rel: str) -> None:
        try:
            with os.scandir(h.fd) as it:
                entries = list(it)
            names = visit(h.fd, rel, entries)
        except OSError:
            names = []
        for name in reversed(names):
            h.users += 1
            held.append((h, name, f"{rel}{name}/"))

    top = _Held(top_fd)
    look(top, "")
    top.release()
    while held:
        parent, name, rel = held.pop()
        try:
            fd = _open_dir(name, parent.fd)
        except OSError:
            fd = -1
        parent.release()
        if fd >= 0:
            child = _Held(fd)
            look(child, rel)
            child.release()


def _open_dir(name: str, dir_fd: int) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno != errno.EMFILE or not _more_files():
            raise
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _more_files() -> bool:
    """Raise this process's soft limit of open files to its hard one (True: raised)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return False
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError):
        return False
    return True


def writable_again(top: str) -> int:
    """Give the owner's read, write and search bits back to ``top`` and every directory
    below it (no link followed) that lacks one: a confined command owns what it writes, so
    it can ``chmod 555`` the worktree's git dir or the seal's scratch, and for a person who
    is not root that kept avfs from removing what it left there (a ``FETCH_HEAD`` link to a
    host file outlived :func:`scrub`, and the person's ``git fetch`` in the mount wrote
    through it). Walked by directory descriptors, each mode changed through a descriptor
    of the directory opened without following a link: the command and its sandbox are
    gone, but the vault's caches (``proxy/recording.py`` ``_caches_readable``) are shared
    by its forks, whose commands may swap a directory there for a link meanwhile. Returns
    how many modes were changed."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        mode = os.lstat(top).st_mode
        if not stat.S_ISDIR(mode):
            return 0
        changed = 0
        if mode & 0o700 != 0o700:
            os.chmod(top, stat.S_IMODE(mode) | 0o700)
            changed = 1
        top_fd = os.open(top, flags)
    except OSError:
        return 0
    seen = 0

    def visit(fd: int, _rel: str, entries: list[os.DirEntry[str]]) -> list[str]:
        nonlocal changed, seen
        into = []
        for e in entries:
            if not e.is_dir(follow_symlinks=False):
                continue
            seen += 1
            if seen > SCRUB_MAX:
                break
            try:
                mode = e.stat(follow_symlinks=False).st_mode
                if mode & 0o700 != 0o700 and _owner_bits(e.name, fd):
                    changed += 1
            except OSError:
                continue
            into.append(e.name)
        return into

    # (each directory opened only when it is looked into: the descriptors of all those still
    # to be looked into wore out a person's 1,024 open files, :func:`by_descriptors`)
    by_descriptors(top_fd, visit)
    return changed


def _owner_bits(name: str, dir_fd: int) -> bool:
    """Give the directory ``name`` in ``dir_fd`` its owner's ``rwx`` (True: changed), by an
    ``O_PATH`` descriptor opened without following a link (no read permission needed), so
    what is changed is what was opened, a directory, whatever stands at the name since."""
    pfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        mode = os.fstat(pfd).st_mode
        if mode & 0o700 == 0o700:
            return False
        os.chmod(f"/proc/self/fd/{pfd}", stat.S_IMODE(mode) | 0o700)
        return True
    finally:
        os.close(pfd)
