"""git's own state in a mounted fork's worktree git dir that the person's plain git runs
code from, and what a confined command may do with it.

The sandbox writes the fork's worktree git dir ``<vault>/worktrees/avfs-<fork>/`` (git
needs its index there), and git keeps in it, for that worktree alone, state that later
runs programs when the person resumes it in the mount, on the host:

- ``rebase-merge/``: ``git rebase --continue`` runs its todo list's ``exec`` lines;
- ``rebase-apply/``: ``git am --continue`` or ``--skip`` (``git rebase --continue`` of
  its apply backend) passes the options its ``apply-opt`` names to ``git apply`` for each
  patch left: ``--build-fake-ancestor=FILE`` writes an index file over any file the person
  may write;
- ``sequencer/``: ``git cherry-pick --continue`` (or ``--skip``) runs ``git
  merge-<strategy>`` for the strategy its ``opts`` names, for each pick left: a strategy
  ``d/x`` runs the work tree's own ``git-merge-d/x``;
- ``modules/``: a submodule's git dir (a linked worktree keeps them in its own git dir,
  not the vault's): ``git submodule update`` takes one it finds there for the
  submodule's, and runs its hooks and its config's programs (``core.fsmonitor``...).

One the person had before the run is shown read-only in the sandbox (:func:`kept`, bound
by :mod:`.seal`); one the command left is taken out of the git dir after it and kept in the
vault's avfs state (:func:`remove_made`: it may be the person's own, started in the mount
while the command ran), and reported in the envelope's ``refs_refused``. git's other state there (``MERGE_HEAD``,
``MERGE_MSG``, ``CHERRY_PICK_HEAD``, ``BISECT_*``) names commits, paths and messages,
and runs nothing (git 2.39's ``sequencer.c``, ``builtin/am.c``, ``bisect.c``).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Callable
from typing import Any

from ..core.store import deeptree
from ..core.workspace.untrusted import read_file

__all__ = [
    "NAMES",
    "PINNED",
    "Kept",
    "Pinned",
    "kept",
    "locks_before",
    "locks_of",
    "pinned",
    "pinned_back",
    "remove_made",
    "stale_lock",
]

KEEP = 4  # of each name, the last runs' kept (what they hold is the command's, or the person's)

# name -> why one the command left is taken out
NAMES: dict[str, str] = {
    "rebase-merge": (
        "an interactive rebase the command left unfinished (git runs its todo list's exec lines"
        " on `git rebase --continue`): its state taken out of the worktree's git dir, HEAD left where it was"
    ),
    "rebase-apply": (
        "a `git am` or rebase the command left unfinished (git passes the options its apply-opt"
        " names to `git apply` on `git am --continue`, which may write any file of the person's):"
        " its state taken out of the worktree's git dir, HEAD left where it was"
    ),
    "sequencer": (
        "a cherry-pick or revert the command left unfinished (git runs the merge strategy its"
        " options name, a program of the work tree too, on `git cherry-pick --continue`): its"
        " state removed, HEAD left where it was"
    ),
    "modules": (
        "submodule git dirs the command made in the worktree's git dir (`git submodule update`"
        " would take them for the submodules' and run their hooks and config): taken out of the worktree's git dir"
    ),
}


# one of :data:`NAMES` that is the person's before a run: its name, and what it is (device,
# inode, ctime): a directory of that name after the run that is not this one is the command's
Kept = tuple[str, int, int, int]


def kept(git_dir: str) -> tuple[Kept, ...]:
    """The names of :data:`NAMES` that are directories (not links) in ``git_dir`` now,
    each with what it is: the person's, shown read-only to the command."""
    out: list[Kept] = []
    for name in NAMES:
        try:
            st = os.lstat(os.path.join(git_dir, name))
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            out.append((name, st.st_dev, st.st_ino, st.st_ctime_ns))
    return tuple(out)


def remove_made(git_dir: str, before: tuple[Kept, ...], keep_dir: str) -> list[dict[str, Any]]:
    """Take each of :data:`NAMES` that is in ``git_dir`` after a run but is not the very
    directory of ``before`` (:func:`kept`) out of it (a link is unlinked, never followed);
    a ``refs_refused`` entry for each. A directory is moved to ``keep_dir/<name>-<ns>``
    (the last :data:`KEEP` of each name kept), not destroyed: avfs cannot tell it from a
    rebase, cherry-pick or submodule the person started in the mount while the command
    ran, and nothing of git reads it there. Its ``reason`` names where it went, or says it
    could not be taken out.

    The person's own from before the run is read-only in the sandbox, but when their git
    removes it meanwhile (their rebase finished), the kernel drops that bind, and the
    command can make one of the same name at once: a name alone does not make it theirs
    (found in the twelfth round: the command's todo list then ran on the person's `git
    rebase --continue`). The one from before is known by its inode (which the person's
    git keeps while it works in it) and its ctime (a directory made anew in a freed inode
    has another); one the person's git changed during the run is taken out too, and said."""
    was = {k[0]: k[1:] for k in before}
    refused: list[dict[str, Any]] = []
    for name, why in NAMES.items():
        made = os.path.join(git_dir, name)
        try:
            st = os.lstat(made)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode) and was.get(name) == (st.st_dev, st.st_ino, st.st_ctime_ns):
            continue  # the person's, as it was
        reason = why if name not in was else why + " (the one from before the run was gone or changed)"
        if stat.S_ISDIR(st.st_mode):
            reason += _move_aside(made, keep_dir, name)
        else:
            os.unlink(made)
        refused.append({"ref": name, "old": None, "new": None, "reason": reason})
    return refused


# what of the worktree's git dir git trusts, bound read-only over itself in the sandbox
# (proxy/placement.py: the fsmonitor hook and the hooks are named in config.worktree)
PINNED = ("config.worktree", "commondir", "gitdir")
Pinned = tuple[str, int, int, int, bytes]  # name, device, inode, ctime, bytes before a run
_PINNED_MAX = 1 << 16


def pinned(git_dir: str) -> tuple[Pinned, ...]:
    """The files of :data:`PINNED` in ``git_dir`` before a run: what they are and hold."""
    out: list[Pinned] = []
    for name in PINNED:
        path = os.path.join(git_dir, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        data = read_file(path, _PINNED_MAX)
        if data is not None and stat.S_ISREG(st.st_mode):
            out.append((name, st.st_dev, st.st_ino, st.st_ctime_ns, data))
    return tuple(out)


def putter(vault: Any, fork: str) -> Callable[[str, bytes], None]:
    """Write a file of ``fork``'s worktree git dir by a rename (for :func:`pinned_back`;
    :func:`~..mount.worktree.put_head`); ``vault``: the mounted vault."""
    from ..core.vaults.registry import mount_key
    from ..mount.worktree import put_head

    return lambda name, data: put_head(vault, mount_key(fork, None), data, name)


def pinned_back(
    git_dir: str, before: tuple[Pinned, ...], put: Callable[[str, bytes], None]
) -> list[dict[str, Any]]:
    """After a run: each file of ``before`` that is not that very file any more is put
    back as it was (``put(name, bytes)``, by a rename), and said. The sandbox's read-only
    bind of it ends when the person's git replaces it on the host (``git config
    --worktree`` writes ``config.worktree`` by a rename), and the command could then write
    what the new one holds (a ``core.fsmonitor`` the person's next ``git status`` runs):
    found in the twelfth round. A change the person made there during the run goes too."""
    refused: list[dict[str, Any]] = []
    for name, dev, ino, ctime, data in before:
        try:
            st: os.stat_result | None = os.lstat(os.path.join(git_dir, name))
        except OSError:
            st = None
        same = (
            st is not None
            and stat.S_ISREG(st.st_mode)
            and (st.st_dev, st.st_ino, st.st_ctime_ns) == (dev, ino, ctime)
        )
        if same:
            continue
        if st is not None and stat.S_ISDIR(st.st_mode):
            # the command's, made in the run: a rename cannot replace a directory
            deeptree.rmtree(os.path.join(git_dir, name), ignore_errors=True)
        put(name, data)
        why = (
            "replaced while the command ran (the sandbox could then write it): put back as it was"
            " before the run; a change of yours made there meanwhile is to be made again"
        )
        refused.append({"ref": name, "old": None, "new": None, "reason": why})
    return refused


INDEX_LOCK = "index.lock"
LOCK_GONE_S = 1.0  # how long a lock made during the run may take to go (a git of the person's)
Locks = dict[str, tuple[int, int, int]]  # name -> (device, inode, ctime)


def locks_of(git_dir: str) -> Locks:
    """git's lock files (``*.lock``: ``index.lock``, ``HEAD.lock``, ``ORIG_HEAD.lock``,
    ``config.worktree.lock``...) at the top of ``git_dir``, each as (device, inode, ctime)."""
    out: Locks = {}
    try:
        with os.scandir(git_dir) as it:
            for e in it:
                if e.name.endswith(".lock"):
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    out[e.name] = (st.st_dev, st.st_ino, st.st_ctime_ns)
    except OSError:
        pass
    return out


def locks_before(git_dir: str, left: str) -> Locks:
    """git's lock files in ``git_dir`` before a run (:func:`locks_of`), but those a run
    before left only because a git of the person's ran then (remembered in the file
    ``left``, avfs's, out of the sandbox's view): still the same file, each is the command's
    as at that run, and goes after this one unless a git of the person's runs again. Until
    the sixteenth round (NAME=attack7) such a lock counted as the person's at every later
    run and stayed: a ``HEAD.lock`` left while the person's `git log` was open failed
    every `git commit` of theirs in the mount until they removed it."""
    now = locks_of(git_dir)
    data = read_file(left, 1 << 16)
    if data is None:
        return now
    try:
        was = {str(n): tuple(s) for n, s in json.loads(data).items()}
    except (ValueError, TypeError, AttributeError):
        return now
    return {n: s for n, s in now.items() if was.get(n) != s}


def _remember(left: str, locks: Locks) -> None:
    tmp = f"{left}.{os.getpid()}.tmp"
    with contextlib.suppress(OSError):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(locks, fh)
        os.replace(tmp, left)


def stale_lock(
    git_dir: str,
    before: Locks,
    held: Callable[[str], str | None] | None = None,
    left: str | None = None,
) -> list[dict[str, Any]]:
    """After a run: each of git's lock files made during it that stays (the command's: git
    killed at the timeout leaves one too) is removed, and said. Found in the thirteenth
    round (NAME=attack4) for ``index.lock``: avfs's writers of the index waited 10 s for it
    at every checkpoint and exec, then left the index as it was for the old base; on the
    overlay backend nothing wrote it later, and the person's `git commit` once the lock was
    removed (as git says to) committed the old base's index: the exec's and the
    checkpoint's changes undone in the fork's next commit. Found in the fourteenth
    (NAME=attack5) for the others: git refuses to go on while one is there, so a
    ``HEAD.lock`` failed every `git commit` of the person's in the mount, an
    ``ORIG_HEAD.lock`` every `git reset`, a ``config.worktree.lock`` every `git config
    --worktree`, until they removed it. One from before the run is the person's, and
    stays; so do all while a git of the person's runs in the mount (a `git commit` holds
    ``index.lock`` while its editor is open: removed, that commit could not write its
    index). But the command may have swapped such an ``index.lock`` for its own while the
    person's git waited: ``held`` says why its bytes must not become the index (None: they
    may), and then it goes (:mod:`.heldlock`). Those left are remembered in ``left``
    (:func:`locks_before`)."""
    deadline = time.monotonic() + LOCK_GONE_S
    if left is not None:
        with contextlib.suppress(OSError):
            os.unlink(left)
    while True:
        now = locks_of(git_dir)
        stale = sorted(n for n, s in now.items() if before.get(n) != s)
        if not stale:
            return []
        if time.monotonic() < deadline:
            time.sleep(0.01)
            continue
        if _git_in(git_dir):
            return _held(git_dir, stale, now, held, left)
        out = []
        for name in stale:
            try:
                os.unlink(os.path.join(git_dir, name))  # (a link, a FIFO: never followed)
            except IsADirectoryError:
                deeptree.rmtree(os.path.join(git_dir, name), ignore_errors=True)
            except FileNotFoundError:
                continue
            why = (
                "git's index lock the command left (git in the mount refused to run, avfs could not write the index): removed"
                if name == INDEX_LOCK
                else "a git lock file the command left (git in the mount refuses to run while it is there): removed"
            )
            out.append({"ref": name, "old": None, "new": None, "reason": why})
        return out


def _held(
    git_dir: str,
    stale: list[str],
    now: Locks,
    held: Callable[[str], str | None] | None,
    left: str | None,
) -> list[dict[str, Any]]:
    """While a git of the person's runs: each lock made during the run stays, but an
    ``index.lock`` that ``held`` refuses; those kept are remembered in ``left``."""
    out = []
    if held is not None and INDEX_LOCK in stale:
        why = held(os.path.join(git_dir, INDEX_LOCK))
        if why is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(git_dir, INDEX_LOCK))
            stale.remove(INDEX_LOCK)
            reason = (
                f"an index.lock held past the run by a git of the person's, which the command could have"
                f" swapped for its own: {why}: removed (that git says it could not write its index; the"
                " work tree keeps every change, and `git status` shows what is staged)"
            )
            out.append({"ref": INDEX_LOCK, "old": None, "new": None, "reason": reason})
    if left is not None and stale:
        _remember(left, {n: now[n] for n in stale})
    return out


def _git_in(git_dir: str) -> bool:
    """Whether a ``git`` process runs in the work tree of the worktree ``git_dir`` (its
    ``gitdir`` file, avfs's, names ``<work tree>/.git``; git runs at the work tree's top):
    the command's are gone with its sandbox, so such a one is the person's."""
    named = read_file(os.path.join(git_dir, "gitdir"), 4096)
    if not named:
        return False
    top = os.path.dirname(named.decode("utf-8", "surrogateescape").strip())
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm", "rb") as fh:
                if not fh.read().startswith(b"git"):
                    continue
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd == top or cwd.startswith(top + "/"):
            return True
    return False


def _move_aside(made: str, keep_dir: str, name: str) -> str:
    """Move the directory ``made`` into ``keep_dir`` (same file system: the vault's) and
    drop the oldest of ``name`` past :data:`KEEP`, else remove it; what became of it, for
    the reason."""
    kept = os.path.join(keep_dir, f"{name}-{time.time_ns()}")
    try:
        # a directory moved to another parent needs its own write bit (its ``..``): the
        # command owns it and may have taken it off; opened without following a link
        fd = os.open(made, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) | 0o700)
        finally:
            os.close(fd)
        os.makedirs(keep_dir, mode=0o700, exist_ok=True)
        os.rename(made, kept)
    except OSError as exc:
        deeptree.rmtree(made, ignore_errors=True)
        if os.path.lexists(made):
            return f"; it could NOT be taken out ({exc}): do not resume it, remove {made}"
        return f"; removed (it could not be kept: {exc})"
    older = sorted(e for e in os.listdir(keep_dir) if e.rpartition("-")[0] == name)[:-KEEP]
    for old in older:
        from ..core.store.deeptree import writable_again

        writable_again(os.path.join(keep_dir, old))  # what the command made read-only
        deeptree.rmtree(os.path.join(keep_dir, old), ignore_errors=True)
    return f"; kept at {kept} (git resumes nothing there: read it before you move it back)"
