"""git's own state of a fork's mount outlives the mount: kept at unmount, brought back at
the next mount of the fork (docs/fuse.md, "What a remount keeps of git's own state").

A mount's worktree git dir ``<vault>/worktrees/avfs-<fork>`` holds what git keeps for that
worktree alone: the index (what ``git add`` staged, ``rm --cached``, the exec bit of
``update-index --chmod``, the skip-worktree and assume-unchanged bits), an open merge,
cherry-pick, revert, rebase, ``am`` or bisect (``MERGE_HEAD`` and the index's conflict
stages, ``rebase-merge/``, ``sequencer/``, ``BISECT_*`` with ``refs/bisect/``),
``ORIG_HEAD``, HEAD's reflog, a detached HEAD, ``git sparse-checkout``'s setting. The
unmount (``avfs unmount``, a kept-warm mount's idle release, ``avfs down``) used to remove
it, and the next mount made it anew from the fork's commit: git forgot, behind the back of
an agent that had staged files or had a merge open and paused.

:func:`keep` (at unmount, after git's last move of the branch was taken) moves the
directory whole to :func:`.registry.gitkept_dir` (``<vault>/avfs/gitkept/<fork>``, which
the sandbox never sees; what it names held for git's gc meanwhile: mount/gitkepthold.py),
with what it was written for beside it (``kept.json``: the
index's stamp, the open avfs merge's marker, the undo's note of what git had staged as the
last checkpoint recorded it (mount/indexahead.py; since gitmodel20), the branch's commit,
the sparse-checkout setting). :func:`bring_back` (at the next mount of the fork, before the index is written
and before the mount answers) moves it back:

- **the fork where it was** (the branch at the same commit, the workspace's base, view
  time and open merge those the index was written for: the stamp): everything, with the
  stamp, so the mount's first index write leaves git's index alone (mount/index.py
  ``sync_index``). Its fsmonitor token is the last status's: where the new mount cannot
  answer it exactly (an overlay daemon's, which no later daemon answers: git looked at
  every file, 15-17 s at 10,000 files on pure FUSE; any token on the overlay backend,
  which answers avfs's own with what the fork holds now: an untracked file removed after
  git listed it stayed listed), the index is restated for the new mount
  (mount/indexrestate.py: the base's entries with its stat data, what git staged marked
  for git to look at, avfs's own token); a pure-FUSE mount answers its own kind from the
  fork's journal, which outlives the mount;
- **the branch moved since** (a checkpoint, restore, undo or merge made while unmounted, a
  push from another machine): as git does with what does not depend on HEAD, and as a
  live mount does when the branch moves under it: HEAD's reflog, ``ORIG_HEAD``,
  ``FETCH_HEAD``, ``COMMIT_EDITMSG``, the sparse-checkout setting, the person's own
  boolean ``core.fsmonitor`` and worktree-local settings of the sections git runs no
  code from (mount/gitkeptconfig.py; gitmodel23) come back, and the
  index is written anew for the new commit keeping its skip-worktree and
  assume-unchanged bits (mount/indexflags.py); what named the old commit (what was
  staged, an open merge, cherry-pick, rebase or bisect, a detached HEAD) is not brought
  back into a worktree whose HEAD moved (git's status would show it as staged reversions
  of the new commit) but set aside whole at ``<fork>.set-aside`` beside (the last one;
  the daemon's log says so), never removed, what it names held for git's gc
  (``refs/avfs/held/<fork>/-/aside``: mount/gitkepthold.py ``hold_aside``; gitmodel23).

**Nothing here trusts the git dir.** A confined command can write it, so what is kept is
data: before the move, whatever is neither a regular file nor a directory goes at any depth
(:func:`.ownfiles.scrub_dir`, no link followed), and only git's own names are kept
(:data:`ALWAYS`, :data:`AT_SAME_COMMIT`; ``info/`` only its ``sparse-checkout``): never
``config.worktree`` (written anew at mount; only the two sparse-checkout booleans, a
boolean ``core.fsmonitor``, the person's ``false``, and ``core.fileMode`` are read from it, by ``git config
--no-includes --type=bool``: a hook's path is code, never kept), ``modules/`` (submodule git dirs, whose
hooks and config git would run: ``git submodule update`` makes them again), hooks or a
lock file. HEAD comes back only as the fork's branch or a commit id the vault holds.
Nothing kept is run: git in the mount reads it as it did before the unmount, and what a
confined command left of git's operations was taken out after its run already
(proxy/gitstate.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ..core.store import deeptree
from ..core.store.gitrun import git_env, run
from ..core.vaults.registry import gitkept_dir
from . import gitkeptconfig, gitkepthold
from .ownfiles import MERGE_MARKER, STAGED_FILE, STAMP_FILE, read_text, scrub_dir, write_file

if TYPE_CHECKING:
    from .ownfiles import MountedFork

    class Registered(Protocol):  # (mount/worktree.py's, which imports this module)
        @property
        def git_dir(self) -> str: ...
        @property
        def files(self) -> str: ...


__all__ = ["ALWAYS", "AT_SAME_COMMIT", "Brought", "bring_back", "clean_stale", "keep", "keep_leftover"]

META = "kept.json"
GIT = "git"
SET_ASIDE = ".set-aside"

# brought back whatever moved the fork's branch meanwhile (they name no HEAD of the worktree)
ALWAYS = frozenset({"index", "logs", "ORIG_HEAD", "FETCH_HEAD", "COMMIT_EDITMSG", "info"})
# brought back only where the fork's branch is where it was (``BISECT_*`` too)
AT_SAME_COMMIT = frozenset(
    {
        "HEAD",
        "MERGE_HEAD",
        "MERGE_MSG",
        "MERGE_MODE",
        "MERGE_RR",
        "AUTO_MERGE",
        "CHERRY_PICK_HEAD",
        "REVERT_HEAD",
        "REBASE_HEAD",
        "SQUASH_MSG",
        "rebase-merge",
        "rebase-apply",
        "sequencer",
        "refs",
    }
)
_SPARSE_KEYS = ("core.sparseCheckout", "core.sparseCheckoutCone")
# the booleans of ``config.worktree`` kept: sparse-checkout's, and the person's own
# fsmonitor setting (`git config --worktree core.fsmonitor false`: git looks at every file
# in this worktree; a hook's path is code, never kept, see :func:`_kept_setting`) and
# (gitmodel18) `git config --worktree core.fileMode false`, which avfs's status and
# checkpoint follow (core/store/filemode.py)
_KEPT_KEYS = (*_SPARSE_KEYS, "core.fsmonitor", "core.fileMode")
_BOOL_FSMONITOR = re.compile(
    r"^\s*fsmonitor\s*=\s*\"?(true|false|yes|no|on|off|1|0)\"?\s*$", re.IGNORECASE | re.MULTILINE
)
_OWN_FSMONITOR = re.compile(r"^\tfsmonitor = .*$", re.MULTILINE)  # (the line mount/worktree.py writes)
_HEX = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


def _log() -> logging.Logger:
    return logging.getLogger("avfs.fuse")


def _kept_name(name: str) -> bool:
    return name in ALWAYS or name in AT_SAME_COMMIT or name.startswith("BISECT_")


def _kept_setting(git_dir: str) -> dict[str, bool]:
    """The booleans of :data:`_KEPT_KEYS` the worktree's ``config.worktree`` sets (read by
    git, as data: no include followed, ``--type=bool``: a ``core.fsmonitor`` naming a
    hook, avfs's own or anything else, is no boolean and is not kept)."""
    path = os.path.join(git_dir, "config.worktree")
    text = read_text(path)  # (regular files only, never through a link)
    low = "" if text is None else text.lower()
    if text is None or ("sparse" not in low and "filemode" not in low and not _BOOL_FSMONITOR.search(text)):
        return {}  # (no git to ask: the usual unmount)
    out: dict[str, bool] = {}
    data = text.encode()  # (git reads the bytes checked, never the path again: a rename
    # between, a FIFO or a link to a host file, reached git; attack27, as gitkeptconfig)
    for key in _KEPT_KEYS:
        proc = run(
            ["config", "--no-includes", "--file", "-", "--type=bool", "--get", key],
            input=data,
            env=git_env(),
            cwd="/",
            check=False,
        )
        out_ = proc.stdout
        value = (out_.decode("utf-8", "replace") if isinstance(out_, bytes) else str(out_)).strip()
        if proc.returncode == 0 and value in ("true", "false"):
            out[key] = value == "true"
    return out


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        deeptree.rmtree(path, ignore_errors=True)  # (a command's comb of any depth too)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def keep(ws: MountedFork, reg: Registered) -> bool:
    """At unmount (git's last move of the branch taken): move git's state out of the
    worktree git dir ``reg.git_dir`` into :func:`.registry.gitkept_dir` (the module's
    docstring says what and how). False when nothing could be kept (the directory is then
    removed by the caller, as before)."""
    git_dir = reg.git_dir
    if not os.path.isdir(git_dir) or os.path.islink(git_dir):
        return False
    dest = gitkept_dir(ws.vault.state_dir, ws.fork)
    new = f"{dest}.{os.getpid()}.new"
    try:
        sparse = _kept_setting(git_dir)
        config = gitkeptconfig.kept(git_dir)
        held = gitkepthold.kept_index_ids(git_dir)  # (before its shared part goes: a split index)
        for name in os.listdir(git_dir):
            if not _kept_name(name):
                _remove(os.path.join(git_dir, name))
        info = os.path.join(git_dir, "info")
        if os.path.isdir(info) and not os.path.islink(info):
            for name in os.listdir(info):
                if name != "sparse-checkout":
                    _remove(os.path.join(info, name))
        whole: list[bool] = []
        scrub_dir(git_dir, whole=whole)  # no link, FIFO, socket or device, at any depth
        if not all(whole):
            _log().warning("fork %s: git's state not kept (more than the scrub walks)", ws.fork)
            return False
        _keep_file_mode(git_dir, sparse.get("core.fileMode"))
        meta = {
            "stamp": _stamp(reg),
            "marker": read_text(os.path.join(reg.files, MERGE_MARKER)),
            "staged": read_text(os.path.join(reg.files, STAGED_FILE)),
            "tip": ws.tip(),
            "sparse": sparse,
            "config": config,
        }
        deeptree.rmtree(new, ignore_errors=True)
        os.makedirs(new)
        os.rename(git_dir, os.path.join(new, GIT))  # whole: an index of any size moves in O(1)
        write_file(new, META, json.dumps(meta).encode())
        deeptree.rmtree(dest, ignore_errors=True)
        os.rename(new, dest)
        gitkepthold.hold(ws, os.path.join(dest, GIT), held)  # (for git's gc meanwhile: gitmodel22)
        return True
    except OSError:
        _log().exception("keeping git's state of the mount of fork %s", ws.fork)
        deeptree.rmtree(new, ignore_errors=True)
        return False


WORKTREE_CONFIG = "config.worktree"


def _keep_file_mode(git_dir: str, value: bool | None) -> None:
    """Where the person set `git config --worktree core.fileMode` (``value``), a
    ``config.worktree`` holding that one line stays in the kept git dir, for an unmounted
    fork's status and checkpoint to follow as git does at the next mount
    (mount/side.py ``worktree_git_dir``, core/store/filemode.py; before gitmodel19 they read the vault's
    config alone: an exec bit changed under ``false`` was listed and recorded). Never
    brought back (not a kept name: the next mount writes its own, :func:`_put_sparse`)."""
    if value is not None:
        write_file(
            git_dir, WORKTREE_CONFIG, f"[core]\n\tfileMode = {'true' if value else 'false'}\n".encode()
        )


class _Left(NamedTuple):
    """A killed mount's worktree git dir and own directory, as :func:`keep` reads them."""

    git_dir: str
    files: str


def keep_leftover(ws: MountedFork, git_dir: str, files: str) -> bool:
    """Keep git's state of a mount whose daemon was killed (-9, a crash: nothing unmounted
    it, so nothing kept it) as its unmount would have: git's last move of the branch taken
    (mount/live.py :func:`.live.follow_at_unmount`), then :func:`keep` of its worktree git
    dir ``git_dir`` with its own directory ``files`` (the index's stamp, the open merge's
    marker), for :func:`bring_back` at the fork's next mount. Called by that mount before
    it registers its worktree anew (which removed both: the index, an open merge, what
    was staged were lost), and by doctor's and prune's cleanup of a dead mount. Where git's
    state an unmount kept is there already (the killed mount died before it brought it
    back, so before git could run in it), that one stays and the leftover goes. Stale
    debris of a killed keep or bring_back (:func:`clean_stale`) is dealt with first.
    True when something was kept."""
    if not os.path.isdir(git_dir) or os.path.islink(git_dir):
        return False
    dest = gitkept_dir(ws.vault.state_dir, ws.fork)
    clean_stale(ws)
    if os.path.lexists(dest):
        _log().warning(
            "fork %s: the worktree of a killed mount left; git's state kept before it stays", ws.fork
        )
        return False
    from .live import follow_at_unmount

    follow_at_unmount(ws, git_dir, files)
    _drop_unchecked_index(ws, git_dir)
    if not keep(ws, _Left(git_dir, files)):
        return False
    _log().warning("fork %s: git's state of a mount whose daemon was killed kept for its next mount", ws.fork)
    return True


def _drop_unchecked_index(ws: MountedFork, git_dir: str) -> None:
    """A killed daemon ran no check of the index its last run's command may have written
    (proxy/gitlinks.py): one that is not :func:`.indexflags.keepable` is not kept (the next
    mount writes the index anew from the fork's commit; what it staged is lost, the files
    stay), as a run's would be made again."""
    from .indexflags import keepable
    from .ownfiles import MAX_INDEX, read_bytes

    index = os.path.join(git_dir, "index")
    if not os.path.lexists(index):
        return
    data = read_bytes(index, MAX_INDEX)
    if data is not None and keepable(data):
        return
    _remove(index)
    _log().warning("fork %s: the index a killed mount left is not one git writes: not kept", ws.fork)


# a keep's or a bring_back's own directory beside the kept one: ``<fork>.<pid>.new`` (being
# made), ``<fork>.<pid>.taking`` (claimed, being brought back)
_DEBRIS = re.compile(r"(?P<name>.+)\.(?P<pid>[0-9]+)\.(?P<what>new|taking)")


def clean_stale(ws: MountedFork) -> list[str]:
    """What a keep or a bring_back of fork ``ws.fork``'s git state left when its process was
    killed between its renames (``<fork>.<pid>.new``, ``<fork>.<pid>.taking``), never one of
    a process that runs (its pid alive: a live one, or its pid reused, left alone), nor one
    of another fork whose name reads so (that fork exists). One that holds git's state
    (``git/``) is what the process was moving: made the kept state again when there is none
    (brought back at the next mount), else set aside (``<fork>.set-aside``, the last one);
    one without goes. Returns the names dealt with."""
    from ..core.store.locks import pid_alive
    from ..core.store.names import from_fs_name
    from ..core.store.refs import fork_ref, read_ref_file

    dest = gitkept_dir(ws.vault.state_dir, ws.fork)
    root, mine = os.path.split(dest)
    try:
        names = os.listdir(root)
    except OSError:
        return []
    done: list[str] = []
    for entry in sorted(names):
        m = _DEBRIS.fullmatch(entry)
        if m is None or m["name"] != mine:
            continue
        pid = int(m["pid"])
        if (
            pid == os.getpid()
            or pid_alive(pid)
            or read_ref_file(ws.vault.path, fork_ref(from_fs_name(entry)))
        ):
            continue
        path = os.path.join(root, entry)
        git = os.path.join(path, GIT)
        try:
            if os.path.islink(path) or not os.path.isdir(path):
                _remove(path)
            elif not os.path.isdir(git) or os.path.islink(git):
                deeptree.rmtree(path, ignore_errors=True)
            elif not os.path.lexists(dest) and _meta(path) is not None:
                os.rename(path, dest)
                _log().warning(
                    "fork %s: git's state a killed process was moving (%s) kept again", ws.fork, entry
                )
            else:
                deeptree.rmtree(dest + SET_ASIDE, ignore_errors=True)
                os.rename(path, dest + SET_ASIDE)
                gitkepthold.hold_aside(ws, dest + SET_ASIDE)
                _log().warning(
                    "fork %s: git's state a killed process was moving (%s) set aside in %s",
                    ws.fork,
                    entry,
                    dest + SET_ASIDE,
                )
        except OSError:
            _log().exception("fork %s: cleaning %s", ws.fork, path)
            continue
        done.append(entry)
    return done


def _stamp(reg: Registered) -> str | None:
    return read_text(os.path.join(reg.files, STAMP_FILE))


class Brought(NamedTuple):
    """What :func:`bring_back` did."""

    aside: list[str]  # the names set aside (the branch moved since)
    patch: bool  # the index is the old commit's, its stamp too: the first write patches it


def bring_back(ws: MountedFork, reg: Registered, *, journal: bool = True) -> Brought:
    """At mount, before the index is written and the mount answers: bring git's state kept
    by :func:`keep` back into the new worktree git dir ``reg.git_dir`` (all of it where the
    fork is where it was, else what does not name the old HEAD; the rest set aside).
    Where the branch moved under an unchanged view (a checkpoint while unmounted, nothing of
    git's open), the index comes back with the old stamp and ``patch``: the mount's first
    index write then patches it where the commits differ (mount/index.py ``sync_index``
    with ``view_changed`` False), keeping what git staged elsewhere. Where the fork is
    where it was and the new mount's hook cannot answer the index's fsmonitor token exactly
    (``journal``: the new mount is pure FUSE, answered from the fork's journal), the index
    is restated for it (mount/indexrestate.py)."""
    from .index import read_view

    src = gitkept_dir(ws.vault.state_dir, ws.fork)
    clean_stale(ws)  # (a killed keep's or bring_back's: its git state kept again, or set aside)
    if not os.path.isdir(src) or os.path.islink(src):
        return Brought([], False)
    taking = f"{src}.{os.getpid()}.taking"
    try:
        os.rename(src, taking)  # (claimed: never brought back twice)
    except OSError:
        return Brought([], False)
    aside: list[str] = []
    try:
        meta = _meta(taking)
        kept = os.path.join(taking, GIT)
        if meta is None or not os.path.isdir(kept) or os.path.islink(kept):
            return Brought([], False)
        stamp = meta.get("stamp")
        now = read_view(ws).stamp
        same = isinstance(stamp, str) and stamp == now and meta.get("tip") == ws.tip()
        # the branch moved under an unchanged view (a checkpoint while unmounted): the
        # index is patched where the two commits differ, as after a checkpoint while
        # mounted; only where git had nothing open and HEAD on the fork's branch
        patch = (
            not same
            and isinstance(stamp, str)
            and len(stamp.split(" ")) == 3
            and stamp.split(" ")[1:] == now.split(" ")[1:]
            and now.split(" ")[2] == "-"
            and not any(
                n in AT_SAME_COMMIT - {"HEAD", "refs"} or n.startswith("BISECT_") for n in os.listdir(kept)
            )
            and _on_fork_branch(ws, os.path.join(kept, "HEAD"))
        )
        d = reg.git_dir
        if not same and not patch and os.path.isfile(os.path.join(kept, "index")):
            # (what was staged: written anew below for the new commit, so a copy set aside)
            shutil.copyfile(os.path.join(kept, "index"), os.path.join(taking, "index"), follow_symlinks=False)
            aside.append("index")
        for name in sorted(os.listdir(kept)):
            if not _kept_name(name):
                continue  # (kept by an older avfs, or planted: never brought back)
            if name in ALWAYS or same or (name == "HEAD" and _on_fork_branch(ws, os.path.join(kept, name))):
                if name == "HEAD" and not _good_head(ws, os.path.join(kept, name)):
                    continue
                target = os.path.join(d, name)
                _remove(target)  # (read-tree's index, or the HEAD register wrote)
                os.rename(os.path.join(kept, name), target)
            else:
                aside.append(name)
                os.rename(os.path.join(kept, name), os.path.join(taking, name))
        if (same or patch) and isinstance(stamp, str):
            # the index is git's: left alone (same), or patched from the stamp's commit
            write_file(reg.files, STAMP_FILE, stamp.encode())
            marker = meta.get("marker")
            if isinstance(marker, str) and _HEX.fullmatch(marker):
                write_file(reg.files, MERGE_MARKER, marker.encode())
        staged = meta.get("staged")
        if (same or patch) and isinstance(staged, str):
            # (the undo's note of what git had staged as the last checkpoint recorded it:
            # its undo after the remount leaves them staged, as `reset --soft` does;
            # mount/stagednote.py reads it as data, for that one move only; where the
            # branch moved unmounted, the first write's patch reads it for that move, an
            # undo of the noted one made unmounted, and notes the move anew: gitmodel21)
            write_file(reg.files, STAGED_FILE, staged.encode())
        if same:
            _restate(ws, reg, journal, now)
        sparse = meta.get("sparse")
        if isinstance(sparse, dict) and sparse:
            _put_sparse(
                d, reg.files, {k: v for k, v in sparse.items() if k in _KEPT_KEYS and isinstance(v, bool)}
            )
        own_config = gitkeptconfig.text(meta.get("config"))
        if own_config:  # (whatever moved the branch: it names no HEAD)
            text = read_text(os.path.join(d, "config.worktree")) or ""
            write_file(d, "config.worktree", (text + own_config).encode(), via=reg.files)
        if aside:
            where = src + SET_ASIDE
            deeptree.rmtree(where, ignore_errors=True)
            deeptree.rmtree(kept, ignore_errors=True)  # (what was brought back: nothing)
            os.rename(taking, where)
            gitkepthold.hold_aside(ws, where)  # (for git's gc: gitmodel23)
            _log().warning(
                "fork %s: its branch moved since the last unmount; git's %s set aside in %s",
                ws.fork,
                ", ".join(aside),
                where,
            )
        return Brought(aside, patch)
    except OSError:
        _log().exception("bringing back git's state of the mount of fork %s", ws.fork)
        return Brought(aside, False)
    finally:
        deeptree.rmtree(taking, ignore_errors=True)
        gitkepthold.release(ws)  # (what came back is in the worktree git dir, git's gc reads it)


def _restate(ws: MountedFork, reg: Registered, journal: bool, stamp: str) -> None:
    """The index brought back whole, restated where the new mount's hook cannot answer its
    fsmonitor token exactly (mount/indexrestate.py): else git looked at every file (an
    overlay mount's token) or trusted an untracked cache the hook did not invalidate (a
    pure-FUSE mount's token on the overlay backend). Left as it is where it cannot be."""
    from . import indexrestate
    from .index import read_view
    from .ownfiles import MAX_INDEX, read_bytes

    data = read_bytes(os.path.join(reg.git_dir, "index"), MAX_INDEX)
    if data is None:
        return
    view = read_view(ws)
    if view.stamp != stamp:
        return
    if indexrestate.answerable(
        indexrestate.token_of(data), view.token, journal
    ) and not indexrestate.unhidden(ws, data):
        return  # (restated all the same where a hidden path's entry lacks skip-worktree: a rule added, review41)
    try:
        done = indexrestate.restate(ws, reg.git_dir, os.getuid(), os.getgid())
    except Exception:
        _log().exception("fork %s: restating the index brought back", ws.fork)
        return
    if not done:
        _log().info("fork %s: the index brought back is not one to restate: left as git wrote it", ws.fork)


def _meta(where: str) -> dict[str, Any] | None:
    raw = read_text(os.path.join(where, META))
    if raw is None:
        return None
    try:
        got = json.loads(raw)
    except ValueError:
        return None
    return got if isinstance(got, dict) else None


def _on_fork_branch(ws: MountedFork, path: str) -> bool:
    from ..core.store.refs import fork_ref

    return read_text(path) == f"ref: {fork_ref(ws.fork)}\n"


def _good_head(ws: MountedFork, path: str) -> bool:
    """Whether a kept ``HEAD`` names the fork's branch, or is a commit id the vault holds
    (a detached HEAD): anything else stays as the mount wrote it (the fork's branch)."""
    from ..core.store.refs import fork_ref

    raw = read_text(path)
    if raw is None:
        return False
    text = raw.strip()
    if raw == f"ref: {fork_ref(ws.fork)}\n":
        return True
    if raw != f"{text}\n" or not _HEX.fullmatch(text):
        return False
    try:
        return ws.store.commit_tree(text) is not None
    except Exception:
        return False


def _put_sparse(git_dir: str, own: str, sparse: dict[str, bool]) -> None:
    """Put the kept booleans (sparse-checkout's, the person's ``core.fsmonitor``) in the
    ``config.worktree`` the mount wrote: ``fsmonitor`` in place of the mount's own line
    (one value, so the person's next `git config --worktree core.fsmonitor X` replaces
    it, where two made git refuse: "core.fsmonitor has multiple values"), the rest added."""
    if not sparse:
        return
    text = read_text(os.path.join(git_dir, "config.worktree")) or ""
    words = {k: "true" if v else "false" for k, v in sparse.items()}
    fsmonitor = words.pop("core.fsmonitor", None)
    if fsmonitor is not None:
        text, n = _OWN_FSMONITOR.subn(f"\tfsmonitor = {fsmonitor}", text, count=1)
        if not n:
            words["core.fsmonitor"] = fsmonitor
    lines = "".join(f"\t{k.split('.', 1)[1]} = {w}\n" for k, w in words.items())
    write_file(git_dir, "config.worktree", (text + ("[core]\n" + lines if lines else "")).encode(), via=own)
