"""A live mount of a fork, as the workspace reaches it (through mount/side.py): is it
mounted and where, a move of the base shown before the mover returns (the index follows,
the daemon's watcher acknowledges the view), a write shown in a pure-FUSE mount, and what
git in the mount did (its last HEAD move, an operation left open). mount/worktree.py's
docstring gives the whole picture.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .indexahead import Land
from .index import read_view, sync_index
from .indexguard import guarded, open_guard
from .indexguard import held as guard_held
from .indexpatch import SHOWN
from .ownfiles import (
    ACK_FILE,
    ACK_WAIT_S,
    MERGE_MARKER,
    MOVED_FILE,
    STAMP_FILE,
    WAKE_FIFO,
    MountedFork,
    MountedVault,
    daemon_serves,
    files_dir,
    merge_head,
    owner_record,
    read_git_file,
    read_text,
    worktree_dir,
    write_file,
)


class _Live(NamedTuple):
    """A live mount of a fork, as its registry record says and the kernel confirms."""

    git_dir: str  # the worktree's git dir (git's; a confined command can write it)
    files: str  # the mount's own directory (files_dir)
    uid: int
    gid: int
    pid: int  # its daemon
    overlay: bool  # the overlay backend (else pure FUSE)


def _live_mount(ws: MountedFork) -> _Live | None:
    """The live mount of ``ws``'s fork, or None: from its registry record (which no
    confined command can write), its daemon running and the kernel listing the mount."""
    vault = ws.vault
    rec = owner_record(vault, ws.fork)
    if rec is None:
        return None
    try:
        pid, uid, gid = int(rec["pid"]), int(rec["uid"]), int(rec["gid"])
    except (ValueError, KeyError, TypeError):
        return None
    if not daemon_serves(vault, ws.fork, pid, rec):
        return None  # a daemon killed with -9 left it: nobody runs git there
    return _Live(
        worktree_dir(vault, ws.fork),
        files_dir(vault, ws.fork),
        uid,
        gid,
        pid,
        rec.get("backend") == "overlay",
    )


def overlay_mountpoint(vault: MountedVault, fork: str) -> str | None:
    """The mount point of ``fork``'s live mount when the overlay backend serves it (its
    changes then go through the mount point: core/workspace/livedir.py), else None."""
    owner = owner_record(vault, fork)
    if not owner or owner.get("backend") != "overlay":
        return None
    try:
        pid = int(owner["pid"])
    except (KeyError, TypeError, ValueError):
        return None
    if not daemon_serves(vault, fork, pid, owner):
        return None
    # the overlay without the path policy's read-only binds, where the daemon made one
    # (fuse/stacking.py): avfs's own writes (restores, merges from outside) are not refused
    mp = owner.get("writes_at") or owner.get("mountpoint")
    return str(mp) if mp else None


def open_wake(files: str) -> int:
    """The daemon's end of the wake-up FIFO in its own directory ``files`` (made by
    :func:`register`): opened read-write, so it never reads end-of-file when no mover has
    it open."""
    flags = os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(os.path.join(files, WAKE_FIFO), flags)


def acknowledge(files: str, view: tuple[str | None, str | None], seq: int = 0) -> None:
    """Called by the daemon's watcher (``files``: its own directory): the mount serves
    ``view`` (base, view time), the kernel no longer caches anything of the previous one,
    nor anything the journal holds up to position ``seq``."""
    try:
        write_file(files, ACK_FILE, f"{view[0]} {view[1]} {seq}".encode())
    except OSError:
        pass  # unmounting


def live_fuse_mount(ws: MountedFork) -> bool:
    """Whether ``ws``'s fork has a live pure-FUSE mount (not the overlay backend)."""
    live = _live_mount(ws)
    return live is not None and not live.overlay


def show_written(ws: MountedFork, seq: int) -> None:
    """After a change this process journaled (up to position ``seq``) in a fork with a live
    pure-FUSE mount served by another process: wait until the mount's watcher has made the
    kernel forget what it cached of those paths, so the mount shows the change when the
    call returns, as the overlay backend does (bounded, like a move of the base)."""
    live = _live_mount(ws)
    if live is None or live.pid == os.getpid():
        return
    if live.overlay:
        return  # its changes went through the mount: the kernel has them already
    _wake(live.files)
    _await_ack(ws, live.files, live.pid, seq)


def _wake(files: str) -> None:
    try:
        fd = os.open(
            os.path.join(files, WAKE_FIFO), os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
        )
    except OSError:
        return  # no daemon reads it (ENXIO), or it is gone: it will poll
    try:
        os.write(fd, b"w")
    except OSError:
        pass  # full: a wake-up is pending anyway
    finally:
        os.close(fd)


def _await_ack(ws: MountedFork, files: str, pid: int, seq: int | None = None) -> None:
    """Wait until the mount's watcher says it serves the workspace's current view (and,
    with ``seq``, has handled the journal up to there); bounded: a hung daemon delays a
    change by ``ACK_WAIT_S`` at most, it cannot block it."""
    from ..core.store.locks import pid_alive

    path = os.path.join(files, ACK_FILE)
    deadline = time.monotonic() + ACK_WAIT_S
    pause = 0.0005
    while True:
        got = (read_text(path) or "").split()
        current = [str(ws.overlay.get_meta("base")), str(ws.overlay.get_meta("view_time"))]
        if got[:2] == current and (seq is None or (len(got) > 2 and got[2].isdigit() and int(got[2]) >= seq)):
            return
        if time.monotonic() >= deadline or not pid_alive(pid):
            return
        time.sleep(pause)
        pause = min(pause * 2, 0.01)


def sync_mounted(ws: MountedFork, *, view_changed: bool = True, index: bool = True) -> None:
    """After ``ws``'s base moved (called by the mover, the fork lock held): before the move
    returns, a live mount of its fork shows it: the mount's git index holds the new base
    (so ``git status`` and ``git commit`` run there right afterwards see what the workspace
    shows), and a pure-FUSE daemon has dropped its caches and the kernel's of the old base
    (so a ``cat`` or a ``stat`` does too; ``view_changed``: a restore, an undo, a merge, not
    a checkpoint, which keeps what it shows: the index is then patched, not written whole).
    ``index`` False: the caller writes the index itself right after (a merge's conflicts:
    their state's write makes it whole with the unmerged entries); here it is only marked
    as vouched for by no stamp, so no writer in between takes the old one for current."""
    if ws.pinned is not None:
        return
    live = _live_mount(ws)
    if live is None:
        return
    # the kernel shows at once what went through an overlay mount: no caches to drop; its
    # index is still written whole when the view changed (a patch of the old one would keep
    # what git staged there, which a restore or undo throws away as `git reset --hard` does)
    # ...but a pure-FUSE daemon keeps its own of the old base, a checkpoint's too: a file the
    # checkpoint retired showed the view time (older than its own) until the watcher came
    # round, and a `make` right after it took a stale object for up to date (found under load
    # in the sixteenth round: tests/test_realtools.py's restore-after-build test)
    drop_caches = not live.overlay
    if drop_caches:
        _wake(live.files)  # the watcher drops the caches while the index is written
    slot = guard_held(live.files)
    final = None
    if slot is not None:
        final, slot.final = slot.final, None
    # a merge's move, its index written ahead as the final one (mount/indexahead.py; on the
    # pure-FUSE backend the caches are dropped all the same)
    done = view_changed and final is not None and final == read_view(ws).stamp
    if done and not drop_caches:
        return
    if done:
        pass
    elif not index:
        # (the index left as written for the base and the view time: the caller's write
        # patches it, mount/indexpatch.py ``SHOWN``; any other stamp: written whole there)
        old, now = read_text(os.path.join(live.files, STAMP_FILE)), read_view(ws)
        held_for = old is not None and old == now.stamp and now.merging is None
        write_file(
            live.files, STAMP_FILE, f"{now.base} {now.view_time} {SHOWN}".encode() if held_for else b"-"
        )
    elif view_changed:
        # the index written whole whatever it was stamped for: an overlay mount's restore
        # onto the same base keeps its view time, and the stamp (base, view time) matched:
        # what git had staged stayed staged, `AD` for a file the restore removed, where
        # `git reset --hard` drops it (a stamp of "-" vouches for no index: written whole)
        write_file(live.files, STAMP_FILE, b"-")
    if index and not done:
        sync_index(ws, live.git_dir, live.uid, live.gid, view_changed=view_changed)
    if drop_caches:
        # the view and the journal up to the move: two moves within one second onto one base
        # have one (base, view time), and only the journal tells the second from the first;
        # a move made in an overlay transaction (a merge's, which holds the mount's writes
        # off) is seen by the daemon once it commits: waited for then (inside, the daemon
        # cannot say so, and the mover gave up only at ACK_WAIT_S)
        def ack() -> None:
            _await_ack(ws, live.files, live.pid, ws.overlay.last_seq())

        if not ws.overlay.after_txn(ack):
            ack()


def _committed_here(git_dir: str, commit: str, *, any_move: bool = False) -> bool:
    """Whether the last move of HEAD that git logged in this worktree made ``commit`` (its
    ``logs/HEAD`` read as untrusted: no symlink followed, its last 4 KiB); ``any_move``:
    any move logged there."""

    try:
        logs = os.open(
            os.path.join(git_dir, "logs"), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        )
    except OSError:
        return False
    try:
        fd = os.open("HEAD", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=logs)
    except OSError:
        return False
    finally:
        os.close(logs)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        os.lseek(fd, max(0, st.st_size - 4096), os.SEEK_SET)
        lines = os.read(fd, 4096).splitlines()
    except OSError:
        return False
    finally:
        os.close(fd)
    if any_move:
        return any(ln.split(b" ", 2)[1:2] == [commit.encode("ascii", "replace")] for ln in lines)
    last = lines[-1].split(b" ", 2) if lines else []
    return len(last) >= 2 and last[1].decode("ascii", "replace") == commit


def _hook_says(files: str, commit: str) -> bool:
    """Whether the last move of the fork's branch that git in the mount's own worktree made
    was to ``commit``: the mount's reference-transaction hook wrote it in the mount's own
    directory ``files`` (:data:`.ownfiles.MOVED_FILE`; a linked worktree's git, which runs
    the same hook, and git on the vault write nothing there). Unlike the worktree's HEAD
    log, no `git reflog expire` empties it, and no confined command writes it."""
    got = read_git_file(os.path.join(files, MOVED_FILE), limit=256) or b""
    return got.split()[1:2] == [commit.encode("ascii", "replace")]


def _git_made(git_dir: str, files: str, commit: str, *, any_move: bool = False) -> bool:
    """Whether git in the mount (worktree git dir ``git_dir``, own directory ``files``) made
    the branch's last move, to ``commit``: its HEAD log says so (:func:`_committed_here`),
    or its reference-transaction hook does (:func:`_hook_says`: the HEAD log expired; with
    git's hooks off, only the log)."""
    return _committed_here(git_dir, commit, any_move=any_move) or _hook_says(files, commit)


def moved_here(ws: MountedFork, commit: str, *, off_branch: bool = False) -> bool:
    """Whether git in the live mount of ``ws``'s fork made the last move of its HEAD (the
    worktree's HEAD log), to ``commit``, HEAD naming the fork's branch: a commit, amend,
    reset, rebase or merge there. A push, or avfs's own moves, log no HEAD there.
    ``off_branch``: whether HEAD names something else now (detached, an open rebase,
    another branch) and any of the moves that log names, to ``commit``, was git's there."""
    from ..core.store.refs import fork_ref

    live = _live_mount(ws)
    if live is not None:
        git_dir, files = live.git_dir, live.files
    elif not off_branch and not ws.overlay.has_changes():
        # a killed daemon's worktree, where the view would follow the move at once (with
        # changes the base stays, and its cleanup takes git's move before it keeps git's
        # state: mount/gitkeep.py keep_leftover)
        git_dir, files = _left_by_a_killed_daemon(ws)
    else:
        return False
    if not git_dir:
        return False
    on = read_git_file(os.path.join(git_dir, "HEAD"), limit=1024) == f"ref: {fork_ref(ws.fork)}\n".encode()
    if on == off_branch:
        return False
    if _git_made(git_dir, files, commit, any_move=off_branch):
        return True
    return not off_branch and _git_marked(ws, git_dir, commit)


def _left_by_a_killed_daemon(ws: MountedFork) -> tuple[str, str]:
    """The worktree git dir and own directory of ``ws``'s fork's mount whose daemon was
    killed (-9: nothing removed them; the fork's next mount or doctor's repair keeps git's
    state there, mount/gitkeep.py), ("", "") where there is none. What git did there says
    who moved the branch as a live mount's does: the first command to open the fork after
    the kill (that next mount's, doctor's) took git's move there for another hand's, and
    with nothing uncheckpointed the view followed (gitgc4)."""
    git_dir = worktree_dir(ws.vault, ws.fork)
    if not os.path.isdir(git_dir) or os.path.islink(git_dir):
        return "", ""
    return git_dir, files_dir(ws.vault, ws.fork)


def _git_marked(ws: MountedFork, git_dir: str, tip: str) -> bool:
    """Whether git in the worktree ``git_dir`` left what a move of the branch to ``tip``
    there leaves, where neither its HEAD log nor the mount's hook says so (git's hooks off,
    its reflogs expired: gitgc4): ``ORIG_HEAD`` naming ``tip`` (a `reset` ran on it since:
    one naming the base may be an old `reset --hard` to HEAD's), or the index holding
    ``tip``'s version of every path where the base and ``tip`` differ (a `reset`, `reset
    --hard`, `commit`, `--amend` wrote it for ``tip``: another hand's move, a push, an
    `update-ref`, a linked worktree's commit, writes nothing in the mount's worktree, and
    avfs writes the index for the base it takes). Both read as untrusted (a confined
    command can write them: what they can say is only that the view stays as the mount
    shows it, a plain worktree's way). Its cost: the two trees' difference, and a walk of
    the index's entries, at a move nothing else explained."""
    from ..core.errors import AvfsError
    from ..core.store.treediff import diff_trees
    from ..core.types import Change
    from .indexflags import staged, whole_entries
    from .ownfiles import MAX_INDEX, read_bytes

    orig = (read_git_file(os.path.join(git_dir, "ORIG_HEAD"), limit=128) or b"").strip()
    if orig == tip.encode("ascii", "replace"):
        return True
    base = ws.overlay.get_meta("base")
    if base is None:
        return False
    changed: list[Change] = []
    try:
        diff_trees(ws.store, ws.store.commit_tree(base), ws.store.commit_tree(tip), "", changed)
    except AvfsError:
        return False
    if not changed:
        return False
    data = read_bytes(os.path.join(git_dir, "index"), MAX_INDEX)
    names = {c.path.encode("utf-8", "surrogateescape"): c for c in changed}
    data = whole_entries(git_dir, data) if data else None  # (a split index: with its shared one)
    got = staged(data, names) if data else None
    if got is None:
        return False
    return all(
        got.get(name) == (None if c.new_oid is None else (c.new_mode, c.new_oid)) for name, c in names.items()
    )


def follow_at_unmount(ws: Any, git_dir: str, files: str) -> None:
    """At unmount, before the mount's worktree ``git_dir`` goes: a move of the fork's branch
    git made in the mount that avfs has not taken yet (nothing asked avfs between git's
    `reset --hard` and the unmount) is taken now, as the next avfs command in the mount
    would have (the base follows, the view stays): once the worktree is gone, nothing says
    git made it, and the fork's state would stay on the old base, "moved since". So too
    where git has left the branch since (a detached HEAD whose branch git moved back:
    `git branch -f`, `update-ref`; :func:`moved_here` ``off_branch``): it was left on the
    old base, and the next mount set git's detached HEAD and its index aside as "the
    branch moved since", the mount on the branch again (gitmodel23)."""
    from ..core.errors import AvfsError
    from ..core.store.refs import fork_ref
    from ..core.workspace.wsbase import follow_git

    try:
        tip = ws.tip()
        if tip is None or ws.overlay.get_meta("base") in (None, tip):
            return
        head = read_git_file(os.path.join(git_dir, "HEAD"), limit=1024)
        on = head == f"ref: {fork_ref(ws.fork)}\n".encode()
        if _git_made(git_dir, files, tip, any_move=not on):
            follow_git(ws, wait_s=5.0, git_moved=True)
    except AvfsError:
        pass  # (the next command says the fork moved, as before)


# git's own operations left open in a worktree's git dir (git's wt-status.c reads the same)
_GIT_IN_PROGRESS = (
    ("rebase-merge", "rebase"),
    ("rebase-apply", "rebase"),
    ("CHERRY_PICK_HEAD", "cherry-pick"),
    ("REVERT_HEAD", "revert"),
    ("MERGE_HEAD", "merge"),
    ("BISECT_LOG", "bisect"),
)


def git_state(ws: MountedFork) -> dict[str, str | None] | None:
    """Where git in the live mount of ``ws``'s fork left its HEAD, when not on the fork's
    branch, or what of git's own it left open (a rebase, merge, cherry-pick, revert,
    bisect): ``{"head": "refs/heads/X" | None (detached) , "detached": COMMIT | None,
    "in_progress": "rebase" | ... | None}``; None when HEAD names the fork's branch and
    nothing is open (or no mount is live). An open merge of avfs's own (its ``MERGE_HEAD``,
    core/workspace/mergestate.py) is not git's."""
    from ..core.store.refs import REFS, fork_ref

    live = _live_mount(ws)
    if live is None:
        return None
    d = live.git_dir
    raw = (read_git_file(os.path.join(d, "HEAD"), limit=1024) or b"").decode("utf-8", "replace").strip()
    head: str | None = fork_ref(ws.fork)
    detached: str | None = None
    if raw.startswith(f"ref: {REFS}") and "\n" not in raw:
        head = raw[5:].strip()
    else:
        # a detached HEAD is a commit id; anything else is named as unreadable, not shown
        head, detached = None, raw if re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", raw) else "(unreadable)"
    doing: str | None = None
    for name, what in _GIT_IN_PROGRESS:
        if not os.path.lexists(os.path.join(d, name)):
            continue
        if name == "MERGE_HEAD" and read_text(os.path.join(live.files, MERGE_MARKER)) is not None:
            continue  # avfs's own open merge: core/workspace/mergestate.py says what it is
        doing = what
        break
    if doing is None and _sparse(d):
        doing = "sparse-checkout"
    if head == fork_ref(ws.fork) and doing is None:
        return None
    return {"head": head, "detached": detached, "in_progress": doing}


def live_git_dir(ws: MountedFork) -> str | None:
    """The worktree git dir of the live mount of ``ws``'s fork, None when none is live."""
    live = _live_mount(ws)
    return None if live is None else live.git_dir


def merge_given_up(ws: MountedFork, theirs: str) -> bool:
    """Whether git in the live mount of ``ws``'s fork ended avfs's open merge of ``theirs``
    (core/workspace/mergestate.py) itself: ``git merge --abort`` or ``--quit``, ``git
    reset`` there remove the ``MERGE_HEAD`` avfs wrote (mount/ownfiles.py ``merge_head``: its
    marker in the mount's own files, which git never touches, says it did). Written
    ``MERGE_HEAD`` first, marker after: a merge being opened is never taken for one given up."""
    live = _live_mount(ws)
    if live is None or read_text(os.path.join(live.files, MERGE_MARKER)) != theirs:
        return False
    return not os.path.lexists(os.path.join(live.git_dir, "MERGE_HEAD"))


_SPARSE_ON = re.compile(rb"^\s*sparsecheckout\s*=\s*(true|yes|on|1)\s*$", re.IGNORECASE | re.MULTILINE)


def _sparse(git_dir: str) -> bool:
    """Whether ``git sparse-checkout`` is on in the mount's worktree (its ``config.worktree``,
    where git's ``sparse-checkout set`` turns it on): the files it left out of the mount are
    removals there, which a checkpoint would record (docs/fuse.md: refused until
    ``git sparse-checkout disable``)."""
    text = read_git_file(os.path.join(git_dir, "config.worktree"), limit=1 << 16) or b""
    return _SPARSE_ON.search(text) is not None


@contextlib.contextmanager
def index_guard(ws: MountedFork, *, git: bool = False) -> Iterator[Callable[[str], Land | None] | None]:
    """Hold the live mount's index guard (the flock every writer of its git index takes,
    mount/indexguard.py): a move of the base made inside, with its index written or stamped
    inside too (:func:`sync_mounted`, :func:`stamp_current` with ``held``), is never seen
    by the pure-FUSE daemon's index refresh half done. ``git``: git's ``index.lock`` too,
    so git in the mount writes no index (``git commit``, ``git add``) between the move and
    the index's (a checkpoint, restore, undo: avfs is the mover), and what it gives writes
    the index for a commit before the branch moves to it (mount/indexahead.py). Nothing
    to hold without a live mount (it gives None). git's lock is waited for as long as any
    lock of the vault (``Vault.lock_wait_s``: ``$AVFS_LOCK_WAIT``, 10 s by default)."""
    live = _live_mount(ws)
    with contextlib.ExitStack() as stack:
        if live is not None:
            try:
                wait_s = ws.vault.lock_wait_s if git else 0.0  # (no git lock without git)
                stack.enter_context(guarded(live.files, live.git_dir if git else None, wait_s))
            except OSError:
                live = None  # unmounted meanwhile
        if live is None or not git or ws.pinned is not None:
            yield None
        else:
            from .indexahead import ahead

            yield ahead(ws, live.git_dir, live.files, live.uid, live.gid, live.overlay)


def stamp_current(ws: MountedFork, *, held: bool = False) -> None:
    """The base moved to a commit that already recorded what the workspace shows. Made by
    ``git commit`` in the mount, git's index is right (and may hold what was staged since):
    it is marked current, so nothing rewrites it; made elsewhere, the index is patched
    where the old base and the new differ, what git staged elsewhere kept (unless
    ``held``: the caller holds :func:`index_guard`; git, which has moved HEAD since, wrote
    its index itself). An adoption of another hand's commit holds the guard and calls
    without ``held``: the patch is made under the caller's guard (``sync_index`` takes
    the slot this thread holds).

    Why ``held``: a pure-FUSE mount's daemon rewrites the index whole when it sees the
    base move (fuse/daemon.py ``refresh_index``) unless it finds it stamped for the new
    base. With the stamp written after the move had committed, the daemon could come in
    between: `avfs status` after `git reset --soft` lost what the reset had left staged
    (the git model, gitmodel2: fuse, seed 1)."""
    live = _live_mount(ws)
    if live is None:
        return
    # (git made the base and left the branch since, as :func:`moved_here` ``off_branch``
    # tells: its index is its HEAD's, never made the base's behind its back, gitmodel12)
    if not _git_made(live.git_dir, live.files, ws.base) and not moved_here(ws, ws.base, off_branch=True):
        if not held:
            # (another hand's commit adopted under an unchanged view: the index patched
            # where the two commits differ, as after a checkpoint; written whole, it lost
            # what git had staged elsewhere, gitmodel20)
            # (and where git had staged something else at one of its paths, that entry
            # stays: a plain worktree's `MM` after another hand's commit, gitmodel21)
            sync_index(ws, live.git_dir, live.uid, live.gid, view_changed=False, keep_staged=True)
        return
    try:
        guard = None if held or guard_held(live.files) else open_guard(live.files)
    except OSError:
        return  # unmounted meanwhile
    try:
        if guard is not None:
            fcntl.flock(guard, fcntl.LOCK_EX)
        view = read_view(ws)
        stamp, merging = view.stamp, view.merging
        merge_head(live.git_dir, live.files, merging)  # git removed its MERGE_HEAD when it committed
        write_file(live.files, STAMP_FILE, stamp.encode())
    except OSError:
        pass
    finally:
        if guard is not None:
            os.close(guard)
