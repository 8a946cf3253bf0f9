"""A mounted fork as a linked worktree of its vault, so `git` works inside the mount.

The mount shows a file ``.git`` at its root that reads ``gitdir: <vault>/worktrees/<id>``;
that directory holds what git keeps per worktree (``HEAD``, ``index``, ``commondir``,
``gitdir``), and everything else (objects, refs, config) is the vault's own. So
``git status``, ``git diff``, ``git add`` and ``git commit`` in the mount run against the
vault, and a commit made there moves the fork's branch like any other push.

The index holds the workspace's base tree with the stat data the mount reports for an
unchanged file (all of it computable from the workspace: :func:`index_stat`); git then
compares it with the files the mount shows, so ``git status`` agrees with ``avfs status``.

**The index follows the base at once.** Whatever moves a mounted workspace's base (a
checkpoint, restore, undo, merge, ``merge --continue``/``--abort``, an exec's commit)
rewrites the index itself, under the fork lock and before it returns
(:func:`sync_mounted`): an index left at the old base would make ``git commit`` issued
right afterwards commit the old tree, undoing the move. The mount daemon also rewrites it
when it notices a base moved by other hands (its watcher polls). The writers never race:

- they serialize on an ``flock`` of ``avfs-index.lock`` in the mount's own directory and read
  the base only once it is held (whoever writes last writes the newest base), with the
  view time and an open merge in one read transaction (:func:`_read_view`): the index,
  its stat data, its fsmonitor token and its stamp all describe one state; a write
  goes through git's own ``index.lock`` (retrying while git holds it), taken only when
  there is something to write (git gives up at once on a taken ``index.lock``); a mover
  of the base takes it before the move and, when git keeps it, does not move (busy);
- the stamp ``avfs-index`` records the (base, view time, open merge) the index was written
  for; a writer finding it current leaves the index alone, so the daemon's late notice of
  a move never clobbers what ``git add`` staged after the mover wrote the index;
- a ``git commit`` in the mount moves the fork with its own index already right: the
  workspace then only stamps it (:func:`stamp_current`).

A move that keeps the view (a checkpoint) patches the index where the bases differ; one
that changes it (restore, undo, merge) writes it whole and then waits, bounded, until the
daemon's watcher (woken through the FIFO ``avfs-wake``) acknowledges in ``avfs-view`` that
the kernel's caches of the old view are gone: when the move returns, the mount shows it.

**Nothing here trusts the worktree's git dir.** A confined ``proxy exec`` command can write
that directory (git needs its index and reflog), so avfs's own files of a mount (the stamp,
its lock, the wake FIFO, the ack file, the merge marker, git's fsmonitor hook and its socket,
every temp file) live in the mount's own directory (:func:`files_dir`:
``<vault>/avfs/mounts/<key>.d``, which the sandbox never sees), the mount's owner data
(daemon pid, uid, gid, backend, mount point) comes from its registry record alone, checked
against the kernel's mount table, and what avfs still writes into the git dir (the index
through git's ``index.lock``, ``MERGE_HEAD``, ``MERGE_MSG``) is created ``O_EXCL|O_NOFOLLOW``
and renamed in: a planted symlink is replaced, never followed. What it reads there (the
index, ``logs/HEAD``) is read ``O_NOFOLLOW``, bounded, as untrusted data (docs/security.md).
While a merge with written conflicts is open (:mod:`.mergestate`), the index holds the merged
tree with the conflicted paths unmerged (stages 1-3) and ``MERGE_HEAD`` is set: git in the
mount sees its own merge, and ``git commit`` makes the two-parent commit.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from ..core.errors import from_oserror
from ..core.store import configtext
from ..core.store.gitrun import git_env, run

if TYPE_CHECKING:
    pass
from .hookscripts import HOOKS_DIR, git_trusts_fsmonitor_in_diff, make_hooks, shell_word, socket_hook
from .ownfiles import (
    HOOK_FILE,
    INDEX_ERROR,
    WAKE_FIFO,
    MountedVault,
    files_dir,
    scrub_dir,
    worktree_dir,
    write_file,
)


class Registered(NamedTuple):
    """A mount's worktree as :func:`register` made it."""

    git_dir: str  # <vault>/worktrees/avfs-<key>: git's, writable by a confined command
    files: str  # files_dir(): avfs's own files of the mount, out of the sandbox's view
    hook: str | None  # the fsmonitor hook's language ("perl", "python"), None without one


# git's automatic housekeeping in a mount runs before git returns, never detached: a `git
# commit` there past git's thresholds (gc.auto's loose objects, gc.autoPackLimit's packs)
# ran `git gc --auto` in the background, a process whose working directory is the mount's,
# and an `avfs unmount` right after was refused busy ("git (pid ...: cwd)", its parent 1)
# until that repack ended (race6; docs/fuse.md "git's housekeeping in a mount")
NO_DETACH = "[gc]\n\tautoDetach = false\n[maintenance]\n\tautoDetach = false\n"


def register(
    vault: MountedVault,
    key: str,
    mountpoint: str,
    head: str,
    index_commit: str | None,
    *,
    backend: str = "fuse",
    fsmonitor: bool = False,
) -> Registered:
    """Register ``mountpoint`` as a worktree whose HEAD is ``head`` (a ref name, or a
    commit id for a detached, read-only revision), and make the mount's own directory
    (:func:`files_dir`).

    With ``fsmonitor`` (a fork's mount, whose daemon answers git's fsmonitor hook over
    :data:`.hooksocket.SOCKET_NAME` in its own directory), git's ``core.fsmonitor`` is set
    for this worktree only to :func:`socket_hook` (written in the mount's own directory,
    named by its absolute path), with the untracked cache. Both directories are made anew
    at every mount: ones an older avfs left (a daemon killed with -9) get today's hook. The
    mount's owner data is in the daemon's registry record, nowhere here.

    ``index_commit``: the commit whose tree `git read-tree` puts in the worktree's index
    (zeroed stat data: the daemon writes the real one), or None for no index yet: a lazy
    fork's daemon writes its index after the mount answers, and git waits for it
    (fuse/settle.py), so a `read-tree` there (O(files): 0.03 s at 20,538) would only delay
    the answer; and should that write fail, git finds no index (it lists the files, reads
    none) rather than one whose zeroed stat data would make it read, so fetch, every file.
    """
    from ..core.store.refs import HEADS, REFS  # (not at the top: refs loads the store)

    d = worktree_dir(vault, key)
    own = files_dir(vault, key)
    hook_kind: str | None = None
    try:
        shutil.rmtree(d, ignore_errors=True)  # a leftover of a killed mount
        shutil.rmtree(own, ignore_errors=True)
        os.makedirs(d)
        os.makedirs(own)
        files = {
            "gitdir": os.path.join(mountpoint, ".git") + "\n",
            "commondir": "../..\n",
            "HEAD": (f"ref: {head}\n" if head.startswith(REFS) else f"{head}\n"),
        }
        if fsmonitor:
            perl = shutil.which("perl")
            if perl is not None:
                perl = os.path.abspath(perl)
            hook = os.path.join(own, HOOK_FILE)
            only_status = not git_trusts_fsmonitor_in_diff(vault.state_dir)  # (hookscripts.FIXED_GIT)
            write_file(own, HOOK_FILE, socket_hook(own, perl, only_status=only_status).encode(), mode=0o755)
            hook_kind = "python" if perl is None else "perl"
            hooks = ""
            if head.startswith(HEADS):  # (made below, once git can read this worktree)
                hooks = f"\thooksPath = {configtext.value(os.path.join(own, HOOKS_DIR))}\n"
            files["config.worktree"] = (
                # with worktreeConfig on, the vault's core.bare=true would make git see this
                # worktree as bare: say otherwise, for this worktree only
                f"[core]\n\tbare = false\n\tfsmonitor = {configtext.value(shell_word(hook))}\n"
                "\tfsmonitorHookVersion = 2\n\tuntrackedCache = true\n" + hooks + NO_DETACH
            )
        else:  # a revision's: where the vault's worktree config is on (a fork's mount, or
            # a clone, set it), git would take the vault's core.bare=true for this one's
            files["config.worktree"] = "[core]\n\tbare = false\n" + NO_DETACH
        for name, text in files.items():
            write_file(d, name, text.encode(), via=own)
        if fsmonitor and backend == "fuse":  # the pure-FUSE daemon's watcher reads it
            os.mkfifo(os.path.join(own, WAKE_FIFO), 0o600)
        if fsmonitor:
            enable_worktree_config(vault)
            if head.startswith(HEADS):  # (the person's hooks looked up as git here reads them)
                make_hooks(vault, own, d, mountpoint, head[len(HEADS) :])
    except OSError as exc:
        raise from_oserror(exc, d) from exc
    if index_commit is not None:
        read_tree(d, own, index_commit)
    return Registered(d, own, hook_kind)


def read_tree(git_dir: str, own: str, commit: str) -> None:
    """The index of worktree ``git_dir`` made by `git read-tree` of ``commit``: its tree with
    zeroed stat data (git reads each file once before it trusts it); what git said when it
    could not, in the mount's own directory ``own``. A mount's daemon writes the index with
    the mount's stat data before it answers (fuse/mountindex.py): this is its fallback where
    that write failed, not a step of every mount (a git process, ~10 ms of CPU at 10,000
    files)."""
    env = git_env()
    env["GIT_DIR"] = git_dir
    proc = run(["read-tree", commit], env=env, check=False)
    if proc.returncode != 0:  # git still works without an index; status then lists everything
        write_file(own, INDEX_ERROR, proc.stderr)


def enable_worktree_config(vault: MountedVault) -> None:
    """Turn on ``extensions.worktreeConfig`` in the vault (once: the first mount). Two mounts
    starting at once both wrote it, and libgit2 refuses a config whose ``config.lock``
    another writer holds (an exec then failed): avfs's writers take turns on a lock of
    their own, and nothing is written when the setting is there already."""
    from ..core.store import vaultconfig
    from ..core.store.locks import file_lock

    def done() -> bool:
        return vaultconfig.worktree_config_enabled(vault.store)

    if done():
        return
    with file_lock(
        os.path.join(vault.state_dir, ".config.lock"),
        what=f"the config of vault {vault.name}",
        wait_s=vault.lock_wait_s,
    ):
        if done():  # set meanwhile by the mount that held the lock
            return
        vaultconfig.enable_worktree_config(vault.store)


def put_head(vault: MountedVault, key: str, head: bytes, name: str = "HEAD") -> None:
    """Write mount ``key``'s worktree ``HEAD`` (or the file ``name`` there: a confined
    command may have made it anything), replaced by a rename from the mount's own
    directory, never written through."""
    try:
        write_file(worktree_dir(vault, key), name, head, via=files_dir(vault, key))
    except OSError as exc:
        raise from_oserror(exc, worktree_dir(vault, key)) from exc


def scrub(vault: MountedVault, key: str) -> list[str]:
    """After a confined command (which could write the git dir of mount ``key``'s worktree),
    remove whatever it left there that is neither a regular file nor a directory, at any
    depth: a symlink (the person's plain git follows one: a ``logs`` link to a host
    directory would have the next ``git commit`` append its reflog there), a FIFO (git
    would block on it), a socket or a device node. Walked by directory descriptors, no
    link followed; the command and its sandbox are gone, so nothing races the walk.
    Returns the paths removed, relative to the git dir."""
    return scrub_dir(worktree_dir(vault, key))


def unregister(reg: Registered, ws: Any = None) -> None:
    """Remove a mount's worktree and its own directory (at unmount); with the fork's
    workspace ``ws``, git's last move of its branch there is taken first (mount/live.py
    :func:`.live.follow_at_unmount`), and git's own state there is kept for the fork's
    next mount (mount/gitkeep.py :func:`.gitkeep.keep`), and its base is no longer held for
    git's gc (core/store/heldref.py)."""
    if ws is not None:
        from .gitkeep import keep
        from .live import follow_at_unmount

        follow_at_unmount(ws, reg.git_dir, reg.files)
        keep(ws, reg)
        ws.hold_base(mounted=False)  # (git no longer runs there: its base needs no holding)
    shutil.rmtree(reg.git_dir, ignore_errors=True)
    shutil.rmtree(reg.files, ignore_errors=True)


def log_head(git_dir: str, old: str | None, new: str, message: str) -> None:
    """Log a move of the fork's branch a confined command's git made (carried back by
    proxy/seal.py) in the mount's own HEAD reflog in ``git_dir``, as git in the mount logs
    its commits there (the sandbox's git logged it in its scratch ``logs/``): the workspace
    then takes the move as git's in the mount (:func:`..core.live.moved_here`) and
    keeps what the mount shows, rather than following a foreign move, which would change
    the view (files the command's commit left out would vanish from the mount). The
    worktree's ``logs/`` is not the sandbox's to write (it gets a scratch one): opened
    without following links all the same."""
    zero = "0" * len(new)
    line = f"{old or zero} {new} avfs <avfs@localhost> {int(time.time())} +0000\t{message}\n"
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        os.makedirs(os.path.join(git_dir, "logs"), exist_ok=True)
        dfd = os.open(os.path.join(git_dir, "logs"), flags)
    except OSError:
        return
    try:
        fd = os.open(
            "HEAD", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd
        )
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.write(fd, line.encode("utf-8", "replace"))
        finally:
            os.close(fd)
    except OSError:
        pass
    finally:
        os.close(dfd)
