"""Staged paths of a mount's index that complete a git repository running a program in the
person's git (:mod:`..core.workspace.plantedrule`), put back to what the commit holds.

A confined command's ``git add`` stages one half (``src/config`` with ``core.fsmonitor``),
the fork's tree gets the other (``src/HEAD``, ``src/objects/``, ``src/refs/``), each
alone no repository, and the person's plain ``git commit`` in the mount records both: a
later ``git status`` in ``src/`` runs the program on the host. The run's carry-back looks
at the index (proxy/sealstaged.py, proxy/recording.py); and wherever the mount's index
follows a new commit keeping what git staged (:func:`.indexpatch.patched_index`: a
checkpoint, a run's record, another hand's commit adopted) it is looked at again when the
commit changes a name of git's own state (``dirs_of`` of its changed paths): the commit
may bring the half an earlier run's index waits for (a directory renamed, an ``avfs
write``, found in the thirty-sixth round's review39)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from typing import Any

from ..core.errors import AvfsError
from ..core.store.gitrun import git_env, run

NULL = "0" * 40
CFG = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null")
SHOWN = 10  # paths named in the report
# what :func:`over_move` put back in this process, by git dir: the paths and what was found
# (a run's record reports it: proxy/recording.py, which clears it before the record)
PUT_BACK: dict[str, tuple[list[str], str | None]] = {}


def taken(git_dir: str) -> dict[str, Any] | None:
    """What :func:`over_move` put back in this process in the index of ``git_dir`` since
    it was last asked (the checkpoint's or merge's ``index_put_back``: paths, what was
    found, the reason), None where nothing was; forgotten once asked. Before the
    thirty-seventh round only a later run's record said it (review40)."""
    got = PUT_BACK.pop(git_dir, None)
    if got is None:
        return None
    return {"paths": got[0], "found": got[1], "reason": planted_reason(*got)["reason"]}


def taken_for(vault: Any, fork: str) -> dict[str, Any] | None:
    """:func:`taken` for the mount of ``fork`` of ``vault`` (its worktree git dir)."""
    from .ownfiles import worktree_dir

    return taken(worktree_dir(vault, fork))


def keep_staged_over(store: Any, git_dir: str, view: Any) -> list[dict[str, Any]]:
    """After the run's record: put back the staged paths of the index of ``git_dir`` that
    complete, over the fork's tree as it is now (``view``: the workspace's, what the record
    committed and what the person's next checkpoint or ``git commit -a`` takes), a
    repository running a program in the person's git. proxy/sealstaged.py ``keep_staged``
    looked at them over ``HEAD`` before the record: a staged ``src/config`` with
    ``src/HEAD``, ``src/objects/``, ``src/refs/`` in the work tree (neither half a
    repository) passed, the record committed the work tree's half and the person's plain
    ``git commit`` the index's (found in the thirty-fifth round's review38; plant4).
    Returns the ``refs_refused`` entry that says so, if any."""
    env = git_env()
    env["GIT_DIR"] = git_dir
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    got = staged_diff(env)
    if got is None:
        return []
    changed = got[1]
    found_paths, found = planted(store, env, changed, set(), view)
    # (no look for git's bits: only an index's change sets them, and the carry-back of
    # every run that changed it cleared them at such names)
    loose = unshown(store, env, changed, set(found_paths), lambda: view, bits=False)
    put_back(env, changed, sorted({*found_paths, *(p for p in loose if p in changed)}))
    out = [planted_reason(found_paths, found)] if found_paths else []
    return [*out, unshown_reason(loose)] if loose else out


def over_move(
    store: Any, git_dir: str, data: bytes, commit: str, paths: Iterable[str], scratch: str | None = None
) -> bytes:
    """Index bytes ``data`` (the mount's, made to follow ``commit``, what git staged kept),
    with the staged paths that complete such a repository over ``commit``'s tree put back
    to its entries; looked at only where a changed path of the move (``paths``) names git's
    own state. Returns ``data`` itself where nothing is put back (the usual case: no
    process runs where no such name changed). The index git looks at is a temporary file
    in ``scratch`` (the mount's own directory), else in the temp dir: never in the git dir,
    which a confined command can write during a run (gitmodel28: fix39a's leftover)."""
    from ..core.workspace.plantedrule import dirs_of
    from ..core.workspace.wsview import View

    if not dirs_of(paths):
        return data
    import tempfile  # (only here: a status or a daemon that imports this module starts none)

    try:  # (O_EXCL, 0600: a file of this process's)
        fd, tmp = tempfile.mkstemp(prefix="avfs-staged-", dir=scratch)
    except FileNotFoundError:  # (the mount's directory gone: unmounted meanwhile)
        fd, tmp = tempfile.mkstemp(prefix="avfs-staged-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        env = git_env()
        env.update(GIT_DIR=git_dir, GIT_INDEX_FILE=tmp, GIT_NO_REPLACE_OBJECTS="1")
        got = staged_diff(env, commit)
        if got is None:
            return data
        changed = got[1]
        found_paths, found = planted(store, env, changed, set(), View.of_commit(store, commit))
        if not found_paths:
            return data
        put_back(env, changed, found_paths)
        PUT_BACK[git_dir] = (sorted({*PUT_BACK.get(git_dir, ([], None))[0], *found_paths}), found)
        with open(tmp, "rb") as f:
            return f.read()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def staged_diff(
    env: dict[str, str], tree: str = "HEAD"
) -> tuple[dict[str, tuple[str, str, str]], dict[str, tuple[str, str, str, str]], bool] | None:
    """The index against ``tree``: the staged blobs (path -> its mode, its id, the staged
    id), every changed entry (path -> its mode, id, the index's), whether a conflict's
    stages are there; None without it (an unborn branch)."""
    # only what differs from HEAD (what HEAD names is the vault's): the index's cache-tree
    # makes this ~40 ms at 100,000 files, where asking about every entry took seconds
    diff = run([*CFG, "diff-index", "--cached", "-z", "--no-renames", tree], env=env, check=False)
    if diff.returncode != 0:
        return None
    staged: dict[str, tuple[str, str, str]] = {}
    changed: dict[str, tuple[str, str, str, str]] = {}
    unmerged = False
    parts = diff.stdout.split(b"\0")
    for head, path in zip(parts[::2], parts[1::2], strict=False):
        f = head[1:].decode("ascii", "replace").split(" ")
        if len(f) < 5:
            continue
        name = path.decode("utf-8", "surrogateescape")
        if f[4] != "U" and "160000" not in f[:2] and (f[1] == "000000" or f[3] != NULL):
            changed[name] = (f[0], f[2], f[1], f[3])  # (a removal from the index too)
        if f[1] in ("000000", "160000"):
            continue  # taken out, or a gitlink (proxy/gitlinks.py)
        if f[4] == "U":
            unmerged = True
        elif f[3] != NULL:
            staged[name] = (f[0], f[2], f[3])
    return staged, changed, unmerged


def unshown(
    store: Any,
    env: dict[str, str],
    changed: dict[str, tuple[str, str, str, str]],
    gone: set[str],
    view_of: Callable[[], Any] | None,
    *,
    bits: bool = True,
    hidden: Callable[[str], bool] | None = None,
) -> list[str]:
    """The index entries (``env``'s ``GIT_DIR``) at a name of git's own state (``dirs_of``: a
    ``HEAD``, a ``config``, a ``hooks/``, ``objects/`` or ``refs/`` file; not already put
    back: ``gone``) that the work tree (the view ``view_of`` gives; None: not known) does not show: a staged
    one (``changed``) whose work-tree file is another or none, and any that carries git's
    ``skip-worktree`` or ``assume-unchanged`` bit (their bits are cleared here; a staged
    one is then put back by the caller's :func:`put_back`). Every writer of the work tree
    checks it for a repository running a program (:mod:`..core.workspace.plantedrule`),
    and the index's half of one was invisible to them: a command staged ``src/config``
    (``core.pager``), marked it ``skip-worktree`` and removed it from the work tree;
    ``avfs write`` then brought ``src/HEAD``, ``src/objects/``, ``src/refs/`` (the work
    tree's plain repository), and the person's ``git add -A && git commit`` (which the bit
    keeps from staging the removal) recorded the whole one, run by a clone's ``git
    branch`` in ``src/`` (the thirty-seventh round's review40, F3). With this, what is
    staged at such a name is what the work tree holds there, which its writers check.
    ``bits``: look for the two bits (a git process where the index may name such a path).
    ``hidden``: the paths the fork's policy hides, whose skip-worktree bit is avfs's own (the
    work tree hides them by design; a staged change there is the policy's to put back):
    left marked, else the person's `git commit -a` removed them from the branch."""
    from ..core.workspace.plantedrule import dirs_of

    marked = sorted(p for p in _flagged(env) if dirs_of((p,)) and not (hidden and hidden(p))) if bits else []
    out = {p for p in marked if p not in gone}
    view = None
    for p, (_m, _o, mode, oid) in changed.items():
        if p in gone or p in out or mode == "000000" or not dirs_of((p,)):
            continue
        if view is None and view_of is not None:
            view = view_of()  # (only here: most indexes stage nothing at such a name)
        if view is None or not _shows(store, view, p, int(mode, 8), oid):
            out.add(p)
    if marked:  # (one bit a call: git's update-index takes the last of them)
        names = b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in marked)
        for flag in ("--no-skip-worktree", "--no-assume-unchanged"):
            run([*CFG, "update-index", flag, "-z", "--stdin"], env=env, input=names, check=False)
    return sorted(out)


def _flagged(env: dict[str, str]) -> list[str]:
    """The index's entries git marked ``skip-worktree`` or ``assume-unchanged``: `git
    ls-files -v` tags every other one ``H``. Counted first, at C speed (~7 ms for 100,000
    entries; a walk of the index's entries in Python took ~400 ms there): the names are
    split out only where one is marked (git reads a split or version 4 index itself). A
    search of the index's own bytes for the names of git's state first cost more than
    this process: ~40 ms at 100,000 entries, each name a pass over 8 MB."""
    got = run([*CFG, "ls-files", "-v", "-z"], env=env, check=False)
    out = got.stdout
    if got.returncode != 0 or (b"\0" + out).count(b"\0H ") == out.count(b"\0"):
        return []
    return [r[2:].decode("utf-8", "surrogateescape") for r in out.split(b"\0") if r[:1] in (b"S", b"s", b"h")]


def _shows(store: Any, view: Any, path: str, mode: int, oid: str) -> bool:
    """Whether the work tree ``view`` holds at ``path`` what the index stages there."""
    node = view.lookup(path)
    if node is None or node.mode != mode:
        return False
    if not node.materialized:  # (git's object: no file read)
        return bool(node.oid == oid)
    try:
        if view.size(node) != store.blob_size(oid):  # (a large file is not hashed to differ)
            return False
        return bool(view.entry_oid(node) == oid)
    except (OSError, AvfsError):  # (replaced while read, a blob not there: not shown, put back)
        return False


def unshown_reason(paths: list[str]) -> dict[str, Any]:
    reason = (
        f"{len(paths)} staged file(s) at a name of git's own state that the work tree does not"
        " show (another file or none there, or marked skip-worktree/assume-unchanged, which"
        " `git add -A` and `git commit -a` pass over): put back to HEAD's in git's index"
        f" (the work tree keeps what it has): {', '.join(paths[:SHOWN])}"
    )
    return {"ref": "index", "old": None, "new": None, "reason": reason}


def planted_reason(paths: list[str], found: str | None) -> dict[str, Any]:
    reason = (
        f"{len(paths)} staged file(s) that make a git repository running a program in the"
        f" person's git ({found}): put back to HEAD's in git's index (the person's next"
        f" `git commit` would have recorded them): {', '.join(paths[:SHOWN])}"
    )
    return {"ref": "index", "old": None, "new": None, "reason": reason}


def planted(
    store: Any,
    env: dict[str, str],
    changed: dict[str, tuple[str, str, str, str]],
    gone: set[str],
    view: Any = None,
) -> tuple[list[str], str | None]:
    """The staged paths (not already put back: ``gone``) that complete, in the tree the
    index would commit, a repository that runs a program in the person's git
    (:mod:`..core.workspace.plantedrule`), and what was found: a command's ``git add`` of
    a planted ``src/`` survived its work tree's setting aside (proxy/plantedgit.py) in a
    run with ``--no-commit``, and the person's next ``git commit`` in the mount recorded
    it, where a clone's checkout ran it (found in the thirty-fifth round, plant3). Looked
    at only where a staged path names git's own state; a removal from the index is not
    taken away (it refuses at most what git would not run)."""
    from ..core.workspace import plantedrule as rule
    from ..core.workspace.wsview import View

    live = {p: v for p, v in changed.items() if p not in gone and v[2] != "000000"}
    dirs = rule.dirs_of(live)
    if not dirs:
        return [], None
    if view is None:
        head = run([*CFG, "rev-parse", "-q", "--verify", "HEAD^{commit}"], env=env, check=False)
        tip = head.stdout.decode("ascii", "replace").strip()
        if head.returncode != 0 or not tip:
            return [], None
        view = View.of_commit(store, tip)
    pending = {
        p: (rule.LINK if mode == "120000" else rule.FILE, rule.config_bytes(store, p, oid))
        for p, (_m, _o, mode, oid) in live.items()
    }
    reader = rule.with_pending(rule.of_view(view), pending)
    bad = {d: f for d in sorted(dirs) if (f := rule.why(reader, d)) is not None}
    out = sorted(p for p in live if any(p.startswith(f"{d}/") for d in bad))
    return out, next(iter(bad.values()), None)


def put_back(
    env: dict[str, str], changed: dict[str, tuple[str, str, str, str]], paths: list[str]
) -> list[dict[str, Any]]:
    """Set the index entries of ``paths`` to what ``HEAD`` holds (out of the index where it
    holds nothing). Returns an empty list for the caller's report."""
    if not paths:
        return []
    lines = []
    for p in paths:
        mode, old, _nm, _new = changed[p]
        name = p.encode("utf-8", "surrogateescape")
        lines.append(b"0 " + NULL.encode() + b"\t" + name + b"\0")
        if mode != "000000":
            lines.append(f"{mode} {old}\t".encode() + name + b"\0")
    run([*CFG, "update-index", "-z", "--index-info"], env=env, input=b"".join(lines), check=False)
    return []


def keep_shown(ws: Any, paths: Iterable[str]) -> list[str]:
    """After an avfs file command outside any run (``avfs rm``, ``mv``, ``write``, ``cp``;
    MCP's alike) changed ``paths`` of ``ws``'s fork: the staged entries at or under them, at
    a name of git's own state, that the work tree no longer shows there are put back to
    ``HEAD``'s in git's index of the fork's mount (or the index its unmount kept), as a
    run's carry-back puts them back (:func:`unshown`). Returns those paths.

    Why (gitmodel29, fix40a's residual): a staged ``src/config`` the work tree showed as
    its run ended (a ``--no-commit`` run, or the person's ``git add`` of what the agent
    wrote) passed every check; the agent's ``avfs rm src/config`` then took it out of the
    work tree, and the other half (``src/HEAD``, ``objects/``, ``refs/``) came by the
    person's own ``git merge --ff-only`` of the agent's fork, which no avfs commit sees: the
    person's plain ``git commit`` recorded both halves and a clone's ``git status`` in
    ``src/`` ran the program. Checked here, where the work tree stops showing what is
    staged, the index's half is always one the writers see."""
    want = list(paths)  # ("": the whole tree, a checkout of the root)
    want += through_links(ws, want)
    git_dir = ws.vault.mounts.worktree_git_dir(ws) if want else None
    if git_dir is None or not os.path.isfile(os.path.join(git_dir, "index")):
        return []
    env = git_env()
    env.update(GIT_DIR=git_dir, GIT_NO_REPLACE_OBJECTS="1")
    head = "HEAD"
    if not os.path.isfile(os.path.join(git_dir, "commondir")):
        # (the git dir an unmount kept: no `commondir`, git takes it for no repository and
        # HEAD for no revision; its HEAD file names the fork's branch or a detached commit)
        env["GIT_COMMON_DIR"] = ws.vault.path
        named = (_read_head(git_dir) or "").strip()
        head = named if len(named) == 40 and all(c in "0123456789abcdef" for c in named) else ws.tip()
        if head is None:
            return []
    got = staged_diff(env, head)
    if got is None:
        return []
    changed = got[1]
    near = {p: v for p, v in changed.items() if any(q in ("", p) or p.startswith(q + "/") for q in want)}
    if not near:
        return []
    loose = unshown(ws.store, env, near, set(), lambda: ws.view, bits=False)
    put_back(env, changed, loose)
    return loose


def through_links(ws: Any, paths: list[str]) -> list[str]:
    """Each of ``paths`` whose parent directory is reached through a symlink, as the path
    the command changed: the parent resolved (review44 B, the fortieth round: ``avfs rm
    lnk/config``, ``lnk`` a symlink to ``src``, removed ``src/config``, and a staged
    ``src/config`` was looked for at ``lnk/config`` only: a clone's ``git status`` in
    ``src/`` then ran the agent's program). Asked before a command that may remove the
    link itself (``avfs rm lnk/config lnk``: review45 A) as well as after."""
    out = []
    for q in paths:
        parent, _, name = q.rpartition("/")
        if not parent:
            continue
        try:
            real = ws.resolve(parent, follow=True).path
        except AvfsError:  # (gone, not a directory, out of the fork: nothing changed there)
            continue
        if real != parent:
            out.append(f"{real}/{name}" if real else name)
    return out


def _read_head(git_dir: str) -> str | None:
    """The HEAD file of ``git_dir`` (a git dir an unmount kept: avfs's, out of every
    sandbox's view), at most a line."""
    from .ownfiles import read_text

    return read_text(os.path.join(git_dir, "HEAD"))
