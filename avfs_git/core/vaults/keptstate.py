"""git's resumable state a confined command left in a fork's worktree git dir, kept aside,
and its life (docs/proxy.md, "git's state the command left").

:mod:`avfs_git.proxy.gitstate` moves a ``rebase-merge/``, ``rebase-apply/``,
``sequencer/`` or ``modules/`` the command left to ``<vault>/avfs/gitstate/<fork>/
<name>-<ns>`` (``ns``: when, in nanoseconds; the last four of each name kept): it may be
the person's own, started in the mount while the command ran, so it is kept to be read,
never resumed there. Each kept entry lives as long as what ``avfs undo`` keeps, the
vault's ``recovery_days`` (30 by default), and no longer:

- deleting the fork (:meth:`.Vault.delete_fork`, ``avfs vault delete VAULT:FORK``,
  ``prune``) sets its directory aside, as ``gitstate/.deleted/<ns>-<op>-<fork>`` (``op``:
  the deleting operation; a fork of the same name made later starts with none);
  ``avfs undo`` of that operation brings it back with the fork (:func:`bring_back`), and
  an undo that takes a fork away sets it aside likewise;
- ``avfs gc`` removes (:func:`expire`) a set-aside directory deleted more than
  ``recovery_days`` ago, and any other entry kept that long ago (of a live fork, or of a
  fork gone without avfs: ``git branch -D`` in the vault);
- deleting the vault takes it to the trash with the rest of the vault.

Forks cannot be renamed (a fork is a branch; avfs has no rename). ``avfs stats`` lists
every entry (:func:`entries`). Only directories avfs moved here are touched; nothing of
git reads them.
"""

from __future__ import annotations

import os
import stat
import time
from contextlib import suppress

from ..records import dataclass
from ..store.names import from_fs_name, fs_name

ROOT = "gitstate"
DELETED = ".deleted"  # (no fork's fs_name starts with '.')
SEAL = "seal"  # a fork's run scratch (proxy/seal.py): gone with the fork


@dataclass(frozen=True, slots=True)
class Kept:
    """One kept entry: ``name`` (``rebase-merge``...) of ``fork`` at ``path``."""

    fork: str
    name: str
    path: str
    kept_ns: int  # when it was taken out of the git dir
    bytes: int
    deleted_ns: int | None = None  # set aside with its deleted fork: when
    deleted_by: int | None = None  # the operation that deleted the fork


def fork_dir(state_dir: str, fork: str) -> str:
    """Where a fork's kept entries go (:mod:`avfs_git.proxy.gitstate`)."""
    return os.path.join(state_dir, ROOT, fs_name(fork))


def set_aside(state_dir: str, fork: str, op_id: int, now_ns: int | None = None) -> str | None:
    """Set ``fork``'s kept entries aside as it is deleted by operation ``op_id``; where
    they went (None: it had none). The fork's run scratch goes (:func:`drop_run_scratch`)."""
    drop_run_scratch(state_dir, fork)
    src = fork_dir(state_dir, fork)
    if not os.path.isdir(src) or os.path.islink(src):
        return None
    dst_dir = os.path.join(state_dir, ROOT, DELETED)
    with suppress(OSError):
        os.makedirs(dst_dir, mode=0o700, exist_ok=True)
    dst = os.path.join(dst_dir, f"{now_ns or time.time_ns()}-{op_id}-{fs_name(fork)}")
    try:
        os.rename(src, dst)
    except OSError:
        return None  # (left where it was: gc expires it by its own time)
    return dst


def drop_run_scratch(state_dir: str, fork: str) -> None:
    """Remove ``fork``'s run scratch ``<vault>/avfs/seal/<fork>/`` (the copies of refs and
    reflogs its confined commands' git worked on, made anew by the next run: nothing to
    bring back) as the fork goes. Left open in the nineteenth round, done in the
    twentieth (NAME=attack11): a deleted fork's stayed for ever, counted by no quota, with
    whatever a run cut short (its host process killed) left there. Its directories get
    their owner's bits back first (a command's ``chmod 000``)."""
    from ..store import deeptree

    d = os.path.join(state_dir, SEAL, fs_name(fork))
    if not os.path.isdir(d) or os.path.islink(d):
        return
    deeptree.writable_again(d)
    deeptree.rmtree(d, ignore_errors=True)


def bring_back(state_dir: str, fork: str, op_id: int) -> str | None:
    """The kept entries of ``fork``, set aside by operation ``op_id``, back with the fork
    (an undo of that operation brought it back); where (None: none were set aside). Entries
    the fork has meanwhile stay; one of the same name and time is not overwritten."""
    aside = os.path.join(state_dir, ROOT, DELETED)
    for d in _names(aside):
        _ns, op, rest = _split_deleted(d)
        if op != op_id or rest != fs_name(fork):
            continue
        dst = fork_dir(state_dir, fork)
        try:
            os.makedirs(dst, mode=0o700, exist_ok=True)
            for e in _names(os.path.join(aside, d)):
                if not os.path.lexists(os.path.join(dst, e)):
                    os.rename(os.path.join(aside, d, e), os.path.join(dst, e))
        except OSError:
            return None  # (what is left stays set aside: gc expires it)
        if not _names(os.path.join(aside, d)):
            _remove(os.path.join(aside, d))
        return dst
    return None


def entries(state_dir: str) -> list[Kept]:
    """Every kept entry of the vault, live forks' and set-aside ones, oldest first."""
    root = os.path.join(state_dir, ROOT)
    out: list[Kept] = []
    for d in _names(root):
        if d == DELETED:
            for s in _names(os.path.join(root, d)):
                ns, op, rest = _split_deleted(s)
                if ns is not None:
                    out += _entries(os.path.join(root, d, s), from_fs_name(rest), ns, op)
        else:
            out += _entries(os.path.join(root, d), from_fs_name(d), None, None)
    return sorted(out, key=lambda k: (k.kept_ns, k.path))


def expire(state_dir: str, cutoff_s: float, *, dry_run: bool = False) -> list[Kept]:
    """Remove what was kept, or set aside with its fork, before ``cutoff_s`` (seconds
    since the epoch): gc's ``recovery_days`` ago. What was (or would be) removed."""
    cutoff = int(cutoff_s * 1e9)
    gone = [k for k in entries(state_dir) if (k.kept_ns if k.deleted_ns is None else k.deleted_ns) < cutoff]
    if dry_run:
        return gone
    for k in gone:
        _remove(k.path)
    aside = os.path.join(state_dir, ROOT, DELETED)
    for d in _names(aside):  # a set-aside directory left empty goes too
        if _split_deleted(d)[0] is not None and not _names(os.path.join(aside, d)):
            _remove(os.path.join(aside, d))
    return gone


def _entries(d: str, fork: str, deleted_ns: int | None, op: int | None) -> list[Kept]:
    out = []
    for e in _names(d):
        name, _, ns = e.rpartition("-")
        p = os.path.join(d, e)
        if name and ns.isdigit() and os.path.isdir(p) and not os.path.islink(p):
            out.append(Kept(fork, name, p, int(ns), _size(p), deleted_ns, op))
    return out


def _split_deleted(d: str) -> tuple[int | None, int | None, str]:
    """``<ns>-<op>-<fs_name>`` as (ns, op, fs_name); (None, None, d) when not of that form."""
    parts = d.split("-", 2)
    if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
        return int(parts[0]), int(parts[1]), parts[2]
    return None, None, d


def _names(d: str) -> list[str]:
    try:
        return sorted(os.listdir(d))
    except OSError:
        return []


def _size(top: str) -> int:
    n = 0
    for root, _dirs, files in os.walk(top):
        for f in files:
            with suppress(OSError):
                n += os.lstat(os.path.join(root, f)).st_size
    return n


def _remove(top: str) -> None:
    """Remove the directory ``top`` (no link followed), giving its directories back the
    owner's bits first (the command owned them, and may have taken them off)."""
    import shutil  # (not at the top: a cold status, cat or log never runs it)

    with suppress(OSError):
        if stat.S_ISDIR(os.lstat(top).st_mode):
            os.chmod(top, 0o700)
    for root, dirs, _files in os.walk(top):  # (top-down: each made searchable before it is entered)
        for d in dirs:
            p = os.path.join(root, d)
            with suppress(OSError):
                mode = os.lstat(p).st_mode
                if stat.S_ISDIR(mode) and mode & 0o700 != 0o700:
                    os.chmod(p, stat.S_IMODE(mode) | 0o700)
    shutil.rmtree(top, ignore_errors=True)
