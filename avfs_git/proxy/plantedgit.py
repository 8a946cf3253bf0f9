"""Repositories a command planted below the fork's root: what of them could run a program
in the person's later plain ``git`` is set aside after the run (``planted_git_dirs``).

git looks for a repository in the directory it runs in before its parents (setup.c
``setup_git_directory_gently``): at each level a ``.git`` directory, a ``.git`` file
(``gitdir: PATH``, ``read_gitfile``) or a link, then the directory itself when it looks
bare (``is_git_directory``: ``HEAD``, ``objects/``, ``refs/``, those two in the directory
a ``commondir`` file names). So a confined command that wrote ``src/HEAD``, ``src/objects/``,
``src/refs/`` and a ``src/config`` naming a ``core.fsmonitor`` (or a ``sub/.git/`` with its
own config and hooks) had the person's plain ``git status`` in ``MOUNT/src`` run that
program on the host, as the person (found by the thirty-second round, NAME=attack24).

After every run, every directory the run wrote in (and its parents below the root) is
looked at as git's discovery would; for each git directory found there (a ``.git``, a
bare-looking one, one a ``gitdir:`` file or ``commondir`` inside the fork names):

- its ``config`` and ``config.worktree``: read by git (``git config --file - -l -z
  --no-includes``, from bytes avfs read ``O_NOFOLLOW``); a key that is not on the short
  list a real ``git clone``, ``git init`` or ``git remote add`` writes
  (:mod:`..core.workspace.plantedrule`, the rule every avfs write is checked by: nothing
  there runs a program) has the file renamed beside itself to
  ``config.avfs-planted`` and a config of the listed keys written in its place (the
  clone's remote and branches keep working); a link, a file git cannot parse or one past
  1 MiB is renamed and none written;
- every hook (a name in ``hooks/`` not ending ``.sample``): renamed to
  ``NAME.avfs-planted`` (git runs a hook by its exact name);
- a ``.git`` file or link, or a ``commondir``, naming a place outside the fork (a host
  directory, the mount's own git dir): renamed to ``.git.avfs-planted`` /
  ``commondir.avfs-planted``.

Renamed in place, never removed: the agent's bytes stay in its fork (the envelope names
where each went; nothing the person's git reads keeps the old name), and a later run that
renames one back is a write of that run, looked at again. A git dir the run only wrote
into is looked at whole (a config planted by an earlier run without ``HEAD`` is caught by
the run that adds ``HEAD``); so a person's own nested repository the agent writes into
has its hooks set aside too (the agent could have rewritten them: avfs cannot tell).
The mount's own ``.git`` at the root is avfs's and is never looked at.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterable, Iterator

from ..core.store import deeptree
from ..core.store.configtext import value
from ..core.store.names import git_state_names as _state
from ..core.workspace.plantedrule import entries as _entries
from ..core.workspace.plantedrule import unsafe as _unsafe
from .envelope import PlantedGitDir as Planted
from .gitlinks import open_dir_below

SUFFIX = ".avfs-planted"
_MAX_CONFIG = 1 << 20
_MAX_GITFILE = 4096
# config files read through git in one run (a process each: a command that made 100,000
# git dirs would hold the fork's exec lock for minutes); past it each is set aside unread
_MAX_PARSED = 256


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def _lstat(dfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except OSError:
        return None


def _free_names(name: str) -> Iterator[str]:
    yield f"{name}{SUFFIX}"
    yield from (f"{name}{SUFFIX}-{n}" for n in range(2, 1000))
    # every one taken (by the command, which made all 999 to keep its file in place:
    # attack28): one it cannot have guessed; the run is over, nothing takes it meanwhile
    yield f"{name}{SUFFIX}-{os.urandom(8).hex()}"


def _aside(dfd: int, name: str) -> str | None:
    """Rename ``name`` in ``dfd`` to a free ``name.avfs-planted[-N]``; its new name."""
    for new in _free_names(name):
        if _lstat(dfd, new) is not None:
            continue
        try:
            os.rename(name, new, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError:
            # (the pure-FUSE mount keeps a nested `.git` apart from the fork's files: a
            # rename between the two is refused) a file or link is copied, then removed
            return new if _copied_away(dfd, name, new) else None
        return new
    return None


def _copied_away(dfd: int, name: str, new: str) -> bool:
    st = _lstat(dfd, name)
    try:
        if st is not None and stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=dfd), new, dir_fd=dfd)
        elif st is not None and stat.S_ISREG(st.st_mode):
            data = _read_small(dfd, name, _MAX_CONFIG)
            if data is None:
                return False
            fd = os.open(
                new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd
            )
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        else:
            return False
        os.unlink(name, dir_fd=dfd)
    except OSError:
        return False
    return True


def _read_small(dfd: int, name: str, limit: int) -> bytes | None:
    """The bytes of regular file ``name`` (no link followed), None past ``limit`` or not one."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        # to its end: one read of a FUSE file returns at most its max_read (128 KiB), and a
        # key past a short read would be kept unread
        chunks, n = [], 0
        while n <= limit:
            chunk = os.read(fd, limit + 1 - n)
            if not chunk:
                break
            chunks.append(chunk)
            n += len(chunk)
        return None if n > limit else b"".join(chunks)
    finally:
        os.close(fd)


def _config_text(entries: list[tuple[str, str | None]]) -> str:
    """``entries`` written as git writes a config (a section header each time it changes)."""
    lines, at = [], None
    for key, val in entries:
        section, _, rest = key.partition(".")
        sub, _, name = rest.rpartition(".")
        head = (
            f"[{section}]"
            if not sub
            else '[{} "{}"]'.format(section, sub.replace("\\", "\\\\").replace('"', '\\"'))
        )
        if head != at:
            lines.append(head)
            at = head
        lines.append(f"\t{name}" if val is None else f"\t{name} = {value(val)}")
    return "".join(line + "\n" for line in lines)


def _config(dfd: int, name: str, git_dir: str, out: list[Planted], parse: bool = True) -> None:
    """Set ``name`` (a config file of git dir ``dfd``) aside when it holds a key not on the
    plain list, writing the plain keys in its place."""
    st = _lstat(dfd, name)
    if st is None:
        return
    text = _read_small(dfd, name, _MAX_CONFIG) if stat.S_ISREG(st.st_mode) and parse else None
    entries = _entries(text) if text is not None else None
    if entries is not None:
        bad = sorted({k for k, v in entries if _unsafe(k, v)})
        if not bad:
            return
        found = f"{name}: {', '.join(bad[:8])}{', …' if len(bad) > 8 else ''}"
    else:
        found = f"{name}: not a config file read as plain (a link, unparsed, past 1 MiB, or past {_MAX_PARSED} git dirs in one run)"
    new = _aside(dfd, name)
    if new is None:
        return
    out.append(Planted(git_dir, found, _join(git_dir, name), _join(git_dir, new)))
    if entries is None:
        return
    keep = [(k, v) for k, v in entries if not _unsafe(k, v)]
    if keep:
        with contextlib.suppress(OSError):
            fd = os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd
            )
            try:
                os.write(fd, _config_text(keep).encode("utf-8", "surrogateescape"))
            finally:
                os.close(fd)


def _hooks(dfd: int, git_dir: str, out: list[Planted], hooks: str = "hooks") -> None:
    try:
        hfd = os.open(hooks, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    except OSError:
        st = _lstat(dfd, hooks)
        if st is not None and stat.S_ISLNK(st.st_mode):  # a link to a directory of hooks elsewhere
            new = _aside(dfd, hooks)
            if new is not None:
                out.append(Planted(git_dir, f"{hooks}: a link", _join(git_dir, hooks), _join(git_dir, new)))
        return
    try:
        for name in sorted(os.listdir(hfd)):
            if name.endswith(".sample") or SUFFIX in name:
                continue
            new = _aside(hfd, name)
            if new is not None:
                out.append(Planted(git_dir, "hook", _join(git_dir, hooks, name), _join(git_dir, hooks, new)))
    except OSError:
        pass
    finally:
        os.close(hfd)


class _Scan:
    """One scan of a fork's top ``root`` (where the command saw it: ``at``)."""

    def __init__(self, root: str, at: str) -> None:
        self.root = root
        self.real = os.path.realpath(root)
        self.at = at.rstrip("/") or "/"
        self.out: list[Planted] = []
        self.done: set[str] = set()
        self.parsed = 0  # config files read through git (a process each)

    def inside(self, base: str, target: str) -> str | None:
        """``target`` (as a ``gitdir:`` or ``commondir`` names it, relative to the fork's
        ``base``) as a path below the fork's root, None when it leads out of it."""
        if os.path.isabs(target):
            if target != self.at and not target.startswith(self.at.rstrip("/") + "/"):
                return None
            target = os.path.join(self.root, os.path.relpath(target, self.at))
        else:
            target = os.path.join(self.root, base, target)
        real = os.path.realpath(target)
        if real == self.real or not real.startswith(self.real.rstrip("/") + "/"):
            return None
        return os.path.relpath(real, self.real)

    def git_dir(self, rel: str) -> None:
        """Set aside what of git dir ``rel`` could run a program."""
        if rel in self.done or not rel or rel.split("/")[0] == ".git":
            return
        self.done.add(rel)
        fd = open_dir_below(self.root, rel)
        if fd is None:
            return
        try:
            # every entry a clone could take for one of these names (`Config` beside `config`)
            try:
                state = _state(sorted(os.listdir(fd)))
            except OSError:
                state = {}
            for name in (*state.get("config", ()), *state.get("config.worktree", ())):
                self.parsed += 1
                _config(fd, name, rel, self.out, parse=self.parsed <= _MAX_PARSED)
            for name in state.get("hooks", ()):
                _hooks(fd, rel, self.out, name)
            for name in state.get("commondir", ()):
                self.commondir(fd, rel, name)
        finally:
            os.close(fd)

    def commondir(self, fd: int, rel: str, name: str) -> None:
        """Follow git dir ``rel``'s ``commondir`` (entry ``name``) inside the fork, or set it
        aside where it names a place outside."""
        text = _read_small(fd, name, _MAX_GITFILE)
        target = text.decode("utf-8", "surrogateescape").strip() if text is not None else ""
        common = self.inside(rel, target) if target else None
        if common is not None:
            self.git_dir(common)
            return
        new = _aside(fd, name)
        if new is not None:
            self.out.append(Planted(rel, "commondir: outside the fork", _join(rel, name), _join(rel, new)))

    def directory(self, rel: str, entries: dict[str, os.DirEntry[str]]) -> None:
        """Look at directory ``rel`` (its ``entries``) as git's discovery would, there."""
        if not rel:
            return  # the mount's own `.git`: avfs's
        dotgit = entries.get(".git")
        if dotgit is not None:
            with contextlib.suppress(OSError):
                if dotgit.is_dir(follow_symlinks=False):
                    self.git_dir(_join(rel, ".git"))
                else:
                    self.gitfile(rel, dotgit.is_symlink())
        # (names as a case-insensitive clone takes them: `head`, `Refs`: names.git_state_name)
        state = _state(entries)
        if "HEAD" in state and (
            # (any entry of those names: git's access(X_OK) follows a link, takes an executable file)
            "commondir" in state or ("objects" in state and "refs" in state)
        ):
            self.git_dir(rel)

    def gitfile(self, rel: str, link: bool) -> None:
        fd = open_dir_below(self.root, rel)
        if fd is None:
            return
        try:
            if link:
                target: str | None = os.readlink(".git", dir_fd=fd)
            else:
                text = _read_small(fd, ".git", _MAX_GITFILE)
                line = text.decode("utf-8", "surrogateescape").strip() if text is not None else ""
                target = line[len("gitdir:") :].strip() if line.startswith("gitdir:") else None
            inside = self.inside(rel, target) if target else None
            if inside is not None:
                self.git_dir(inside)
                return
            if target is None:
                return  # not a file git reads as a gitfile: git goes on past it
            new = _aside(fd, ".git")
            if new is not None:
                why = (
                    "a .git link naming a place outside the fork"
                    if link
                    else "a gitdir: file naming a place outside the fork"
                )
                self.out.append(Planted(rel, why, _join(rel, ".git"), _join(rel, new)))
        except OSError:
            return
        finally:
            os.close(fd)


def _is_dir(e: os.DirEntry[str] | None) -> bool:
    try:
        return e is not None and e.is_dir(follow_symlinks=False)
    except OSError:
        return False


def set_aside(root: str, written: Iterable[str], at: str | None = None) -> list[Planted]:
    """Set aside what could run a program in the person's git, of every git dir the paths
    the run wrote (``written``, relative to ``root``; ``[""]``: all of it) lie in or below.
    ``at``: where the command saw the fork (``gitdir:`` paths it wrote are absolute there).

    One walk from the top by descriptors (no link followed, a few held whatever the depth:
    :func:`.deeptree.by_descriptors`), into the directories that lead to a written path and
    the whole of a written directory none of whose entries is listed (the journals' way of
    saying "all below"); each directory's listing answers what discovery asks of it."""
    scan = _Scan(root, at or root)
    leads: set[str] = set()  # directories with a written path below them
    paths = set()
    for path in {p.strip("/") for p in written}:
        parts = path.split("/") if path else []
        if any(part in ("", ".", "..") for part in parts):
            continue
        paths.add(path)
        while path:
            path = path.rpartition("/")[0]
            if path in leads:
                break  # (and all above it)
            leads.add(path)
    whole = {""} if "" in paths else set()
    if not leads and not whole:
        return []

    def visit(dfd: int, rel: str, entries: list[os.DirEntry[str]]) -> list[str]:
        here = rel.rstrip("/")
        named = {e.name: e for e in entries}
        scan.directory(here, named)
        into = []
        for e in entries:
            child = f"{here}/{e.name}" if here else e.name
            if not here and e.name == ".git":
                continue  # the mount's own
            if (here in whole or child in leads or child in paths) and _is_dir(e):
                into.append(e.name)
                if here in whole or child not in leads:
                    whole.add(child)
        return into

    fd = open_dir_below(root, "")
    if fd is not None:
        deeptree.by_descriptors(fd, visit)
    return scan.out


def remember(state_dir: str, planted: list[Planted]) -> None:
    """Add ``planted`` to the fork's list of what was set aside (``avfs status`` shows those
    still in the fork), the last :data:`KEPT` of them, in its state directory (out of the
    sandbox's reach)."""
    from ..core.workspace.planted import FILE, KEPT, read

    items = read(state_dir) + [p.to_dict() for p in planted]
    path = os.path.join(state_dir, FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with contextlib.suppress(OSError):
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(items[-KEPT:], fh)
        os.replace(tmp, path)
