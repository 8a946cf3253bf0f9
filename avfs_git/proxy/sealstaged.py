"""What the mount's index names after a run (:func:`.seal.carry_back`): every staged blob
is one the vault holds, so the person's `git commit` in the mount can write its tree.

The command's ``git add`` writes blobs into the run's object quarantine, which is emptied
after it; the index it leaves names them. Those the carry-back may take
(:func:`.sealobjects.import_objects`: checked, and bounded in size) go into the vault. An
entry whose blob the vault still lacks (one bigger than avfs takes, one the command staged
with ``git update-index --info-only``, or whose object it never wrote) is put back to what
the worktree's ``HEAD`` holds at that path, or taken out of the index, and said: before
the fifteenth round (NAME=attack6) it stayed, and every `git commit` of the person's in
the mount failed ("invalid object ... Error building trees") until they found it and ran
`git rm --cached`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.errors import PolicyError
from ..core.store.gitrun import git_env, run
from ..core.types import NodeKind
from ..core.workspace.plantedrule import dirs_of
from ..core.workspace.untrusted import read_file
from ..mount.indexflags import without
from ..mount.indexguard import create_lock
from ..mount.stagedplant import CFG as _CFG
from ..mount.stagedplant import SHOWN as _SHOWN
from ..mount.stagedplant import planted as _planted_in
from ..mount.stagedplant import planted_reason as _planted_reason
from ..mount.stagedplant import put_back as _put_back
from ..mount.stagedplant import staged_diff as _diff
from ..mount.stagedplant import unshown as _unshown
from ..mount.stagedplant import unshown_reason as _unshown_reason
from . import sealobjects, sealpaths

if TYPE_CHECKING:
    from ..core.vaults.vault import Vault


def keep_staged(vault: Vault, git_dir: str, od: str, fork: str | None = None) -> list[dict[str, Any]]:
    """Take the blobs the index of ``git_dir`` stages that the vault lacks from the
    quarantine ``od``; put back the entries whose blob is still not there, and (``fork``:
    its path rules) those staging a change a rule holds (:func:`.sealpaths.staged_held`).
    Returns the ``refs_refused`` entries that say so (none when every staged blob is the
    vault's and no staged change is protected)."""
    forget_cache_tree(git_dir)  # (the command's: diff-index below would trust it)
    env = git_env()
    env["GIT_DIR"] = git_dir
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    got = _diff(env)
    if got is None:
        return []  # no HEAD to compare with (an unborn branch): nothing avfs can put back
    staged, changed, unmerged = got
    ids = {new for _m, _o, new in staged.values()}
    if unmerged:  # a conflict's stages: their blobs are kept too (they are never put back)
        listed = run([*_CFG, "ls-files", "-u", "-z"], env=env, check=False)
        ids.update(
            r.split(b" ")[1].decode("ascii", "replace")
            for r in listed.stdout.split(b"\0")
            if r.count(b" ") >= 2
        )
    lacking = _absent(vault, sorted(ids), None) if ids else set()
    why, paths = None, []
    if lacking:
        held = sorted(lacking - _absent(vault, sorted(lacking), od))
        why = sealobjects.import_objects(vault, od, None, held) if held else None
        gone = _absent(vault, sorted(lacking), None)
        paths = sorted(p for p, (_m, _o, new) in staged.items() if new in gone)
    protected = sealpaths.staged_held(vault, fork, changed) if fork is not None and changed else []
    planted, found = _planted_in(vault.store, env, changed, {*paths, *protected})
    views: list[Any] = []  # (the work tree's view, made once where asked)

    def view_of() -> Any:
        if not views:
            views.append(vault.workspace(fork).view)
        return views[0]

    if not planted and fork is not None and dirs_of(changed):  # (over the work tree too: what it completes)
        planted, found = _planted_in(vault.store, env, changed, {*paths, *protected}, view_of())
    gone = {*paths, *protected, *planted}
    hidden = _hidden(vault, fork)
    loose = _unshown(vault.store, env, changed, gone, view_of if fork is not None else None, hidden=hidden)
    out = _put_back(env, changed, sorted({*paths, *protected, *planted, *(p for p in loose if p in changed)}))
    if paths:
        out.append({"ref": "index", "old": None, "new": None, "reason": _lacking(paths, why)})
    if protected:
        named = ", ".join(protected[:_SHOWN]) + (
            f" and {len(protected) - _SHOWN} more" if len(protected) > _SHOWN else ""
        )
        reason = (
            f"{len(protected)} staged change(s) to paths the fork's policy holds: put back to HEAD's"
            f" in git's index (the person's next `git commit` would have recorded them): {named}"
        )
        out.append({"ref": "index", "old": None, "new": None, "reason": reason})
    if planted:
        out.append(_planted_reason(planted, found))
    if loose:
        out.append(_unshown_reason(loose))
    return out


def _hidden(vault: Vault, fork: str | None) -> Callable[[str], bool] | None:
    """The paths ``fork``'s policy hides, as its mount's index marks them (None: none, or a
    policy that does not read: then every marked entry at a name of git's state is cleared)."""
    if fork is None:
        return None
    try:
        shown = vault.workspace(fork).visible_filter()
    except PolicyError:
        return None
    return None if shown is None else (lambda p: not shown(p, NodeKind.FILE))


def _lacking(paths: list[str], why: str | None) -> str:
    named = ", ".join(paths[:_SHOWN]) + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")
    return (
        f"{len(paths)} staged file(s) whose content the vault does not hold"
        f" ({why or 'the command wrote no such object'}): put back to HEAD's in git's index"
        f" (the work tree keeps what it has): {named}"
    )


def _absent(vault: Vault, ids: list[str], od: str | None) -> set[str]:
    """Which of ``ids`` the vault (and, with ``od``, the quarantine) does not hold."""
    env = git_env()
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    if od is not None:
        env["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = od
    got = run(
        ["cat-file", "--batch-check=%(objectname) %(objecttype)"],
        git_dir=vault.path,
        env=env,
        input=("\n".join(ids) + "\n").encode(),
        check=False,
    )
    if got.returncode != 0:
        return set(ids)
    out = set()
    for line in got.stdout.decode("ascii", "replace").splitlines():
        oid, _, kind = line.partition(" ")
        if kind != "blob":  # "missing", or an object a file's entry cannot name
            out.add(oid)
    return out


def forget_cache_tree(git_dir: str) -> None:
    """Take git's cache tree (the ``TREE`` extension) out of the index of ``git_dir``, which
    the command changed. git trusts a cache tree's directory whose tree object exists: its
    `git commit` records that tree without looking at the index's entries below it, and its
    `git status` and `git diff --cached` compare it with HEAD's (the twenty-fourth round,
    NAME=attack15: a command set ``src``'s to the tree of ``src`` before a security fix,
    which the vault holds; the person's `git status` was clean, their `git commit -a` of a
    README change reverted the fix). Without it git computes the trees from the entries
    at its next `git commit` and keeps them. Written through git's ``index.lock``, created
    ``O_EXCL|O_NOFOLLOW``, renamed over the index; where a git of the person's holds the
    lock, the cache tree's ids are set to none in place instead (:func:`void_cache_tree`). Taken out before :func:`keep_staged` asks
    git what the index stages (`git diff-index --cached` skips a directory whose cache tree
    says HEAD's, and the blobs staged below it stayed out of the vault: the person's `git
    commit` failed on them).

    (A byte search first: an index without one is not walked.)"""
    index = os.path.join(git_dir, "index")
    head = read_file(index)
    if head is None or b"TREE" not in head:
        return
    try:
        fd = create_lock(git_dir)
    except FileExistsError:  # a git of the person's holds it (the command's went before)
        void_cache_tree(index)
        return
    except OSError:
        return
    lock = index + ".lock"
    with os.fdopen(fd, "wb") as fh:
        try:
            out = without(read_file(index) or b"", (b"TREE",))  # (read under the lock)
            if out is None:
                os.unlink(lock)
                return
            fh.write(out)
            fh.flush()
            os.replace(lock, index)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(lock)
            raise


def void_cache_tree(index: str) -> None:
    """Set every tree id of the cache tree of the index file ``index`` to the null id. git
    takes a node whose tree object is not there for one to compute again (``update_one``:
    ``has_object_file``), and compares no tree with it, silently (a renamed extension
    would have git say "ignoring ... extension"). For the index of a mount whose
    ``index.lock`` a git of the person's holds as the run ends (a `git commit -a` in its
    editor): :func:`forget_cache_tree` cannot write it through the lock, and before the
    twenty-fifth round (NAME=attack16) left the command's cache tree there; when the
    person's commit was then abandoned (its lock rolled back), their next `git commit`
    recorded the planted tree.

    The voided index is written aside (a temp file beside it, ``O_CREAT|O_EXCL|O_NOFOLLOW``)
    and exchanged with the file read (``renameat2(RENAME_EXCHANGE)``): a reader finds one
    or the other, whole. Written in place before the twenty-sixth round (NAME=attack17), a
    reader between two pages of that write (the kernel copies a write a page at a time,
    and holds no reader off meanwhile) read new ids with the old checksum: libgit2
    (pygit2), `git fsck` and avfs's own checked readers refused the person's index. What
    the exchange took out is looked at: when it is not the file read (the person's git
    renamed its lock over the index meanwhile: their commit's index), it is put back and
    the voided copy dropped. An index with other names is voided too (the exchange
    replaces the name ``index``, never writes through it): before, one the command had
    hard-linked (``ln index index.also``) was left with its planted cache tree, and the
    person's next commit recorded it. Where the file system has no exchange, the ids are
    written in place as before (not through other names). Not for a link or a file larger
    than avfs reads an index."""
    import hashlib
    import secrets
    import stat

    from ..core.store.exchange import exchange
    from ..mount.indexflags import cache_tree_ids

    try:
        fd = os.open(index, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > (2 << 30):
            return
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        data = bytearray(b"".join(chunks))
        ids = cache_tree_ids(bytes(data))
        if not ids:
            return
        for at in ids:
            data[at : at + 20] = bytes(20)
        data[-20:] = hashlib.sha1(data[:-20]).digest()
        aside = f"{index}.avfs-void.{os.getpid()}.{secrets.token_hex(6)}"
        try:
            out = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        try:
            try:
                with contextlib.suppress(OSError):  # (as the index was: git's mode, its owner)
                    os.fchown(out, st.st_uid, st.st_gid)
                os.fchmod(out, stat.S_IMODE(st.st_mode))
                view = memoryview(data)
                while view:
                    view = view[os.write(out, view) :]
            finally:
                os.close(out)
            if not exchange(aside, index):
                if st.st_nlink == 1:  # (no exchange here: in place, never through another name)
                    os.pwrite(fd, bytes(data[ids[0] :]), ids[0])
                return
            took = os.lstat(aside)
            if (took.st_dev, took.st_ino) != (st.st_dev, st.st_ino):
                exchange(aside, index)  # the person's commit landed meanwhile: theirs stays
        finally:
            with contextlib.suppress(OSError):
                os.unlink(aside)
    finally:
        os.close(fd)
