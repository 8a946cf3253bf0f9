"""Revisions, log and diff of a vault's forks.

A revision is resolved in this order: a checkpoint name of the fork, a fork name, then
anything ``git rev-parse`` accepts (a full or abbreviated id, ``main~2``, a tag...), where
``HEAD`` and ``@`` mean the fork's tip.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import (
    AvfsError,
    InternalError,
    InvalidPathError,
    IsDirectoryError,
    PathNotFoundError,
    RevisionNotFoundError,
    want_str,
)
from ..records import dataclass
from ..store import names, refs
from ..store.gitformat import parse_commit, plain_author_when
from ..store.gitpatch import blob_line_stats, blob_patch, indent_heuristic
from ..store.gitstore import rfc3339
from ..store.treediff import diff_trees, pair_renames
from ..types import MODE_COMMIT, MODE_LINK, MODE_TREE, Change, ChangeStatus, CommitId, CommitInfo, TreeId
from ..workspace.pathguard import Held, refusal

if TYPE_CHECKING:
    from ..store.gitstore import Commit
    from ..vaults.vault import Vault
    from ..workspace.workspace import Workspace

_HEAD_RE = re.compile(r"^(HEAD(?=$|[~^@])|@(?=$|[~^])|(?=@\{))")  # HEAD, @, or a bare @{N}


_HEX40 = re.compile(r"^[0-9a-f]{40}$")


def _parse(vault: Vault, ref_or_id: str, suffix: str) -> str | None:
    """Resolve ``ref_or_id`` + ``~N``/``^`` suffix; plain refs and full ids skip libgit2."""
    if not suffix:
        if ref_or_id.startswith(refs.REFS):
            return refs.read_ref_file(vault.path, ref_or_id)
        if _HEX40.match(ref_or_id):
            try:
                vault.store.commit_tree(ref_or_id)
            except AvfsError:
                return None
            return ref_or_id
    return vault.store.rev_parse(ref_or_id + suffix)


def names_history(vault: Vault, rev: str, fork: str | None = None) -> bool:
    """Whether :func:`resolve` finds ``rev`` through a fork's or a checkpoint's ref (``HEAD``,
    ``@{N}``, ``FORK:NAME``, a checkpoint or a fork by name, ``~N``/``^N`` of one): history,
    which the carry-back keeps a planted repository out of. Anything else git's rev-parse
    takes (an id, a tag, ``remotes/origin/agent``, ``origin``, ``:/text``) is not: a tag
    ``avfs fetch`` brought, or ``remotes/...`` (not ``refs/remotes/remotes/...``), let
    a commit the agent pushed to a remote be restored unchecked (review38; plant4)."""
    fork = fork or vault.default_fork
    if _HEAD_RE.match(rev):
        return True
    m = re.match(r"^([^~^]+)([~^].*)?$", rev)
    base = m.group(1) if m else rev
    if ":" in base:
        other, _, name = base.partition(":")
        return refs.read_ref_file(vault.path, refs.checkpoint_ref(other, name)) is not None
    if any(
        refs.read_ref_file(vault.path, r) is not None
        for r in (refs.checkpoint_ref(fork, base), refs.fork_ref(base))
    ):
        return True
    if vault.store.rev_parse(base) is not None:
        return False  # (resolve takes git's answer before another fork's checkpoint's)
    mine = refs.checkpoint_ref(fork, base)
    others = [
        r
        for r in refs.list_refs_file(vault.path, refs.CHECKPOINTS)
        if r.endswith(refs.SEP + base) and r != mine
    ]
    return len(others) == 1


def resolve(vault: Vault, rev: str, fork: str | None = None) -> str:
    """The commit id ``rev`` names, in the context of ``fork``.

    In order: ``HEAD``/``@`` (the fork's tip), ``FORK:NAME`` (another fork's checkpoint),
    a checkpoint of this fork, a fork, a commit id or anything ``git rev-parse`` accepts,
    and last a checkpoint name that exactly one other fork has. ``~N``/``^N`` suffixes apply;
    ``@{N}`` (``HEAD@{N}``, ``FORK@{N}``) is the Nth earlier position in the fork's reflog.
    """
    fork = want_str(fork or vault.default_fork, "fork")
    if not want_str(rev, "rev") or "\x00" in rev:
        raise RevisionNotFoundError(f"invalid revision {rev!r}")
    base, suffix = rev, ""
    m = re.match(r"^([^~^]+)([~^].*)?$", rev)
    if m:
        base, suffix = m.group(1), m.group(2) or ""
    found: str | None = None
    if _HEAD_RE.match(rev):
        found = _parse(vault, refs.fork_ref(fork), _HEAD_RE.sub("", rev))
    elif ":" in base:
        # FORK:NAME names a checkpoint of another fork (':' cannot occur in ref names)
        other, _, name = base.partition(":")
        found = _parse(vault, refs.checkpoint_ref(other, name), suffix)
    else:
        for ref in (refs.checkpoint_ref(fork, base), refs.fork_ref(base)):
            if found is None and refs.read_ref_file(vault.path, ref) is not None:
                found = _parse(vault, ref, suffix)
        if found is None:
            found = _parse(vault, base, suffix)
        if found is None:
            # a checkpoint name of another fork, when exactly one fork has it
            others = [
                r
                for r in refs.list_refs_file(vault.path, refs.CHECKPOINTS)
                if r.endswith(refs.SEP + base) and r != refs.checkpoint_ref(fork, base)
            ]
            if len(others) == 1:
                found = _parse(vault, others[0], suffix)
    if found is not None:
        return found
    if "@{" in rev:
        raise RevisionNotFoundError(
            f"unknown revision {rev!r}: the fork's reflog has no such entry",
            hint='`avfs op log` lists what moved the fork; `git --git-dir "$(avfs vault path)" reflog'
            f" {refs.fork_ref(fork)}` shows the reflog",
            details={"revision": rev, "fork": fork},
        )
    close = _close_revisions(vault, fork, rev)
    raise RevisionNotFoundError(
        f"unknown revision {rev!r} in vault {vault.name}",
        hint=(f"did you mean {' or '.join(repr(c) for c in close)}? " if close else "")
        + "use a checkpoint name (FORK:NAME for another fork's), a fork name or a commit id"
        " (`avfs log --all` lists them)",
        details={"revision": rev, "fork": fork, **({"suggestions": close} if close else {})},
    )


def _close_revisions(vault: Vault, fork: str, rev: str) -> list[str]:
    """The checkpoint names (another fork's as FORK:NAME) and fork names close to ``rev``
    (h-polish5's trial: `checkpoint restore before-risk` in agent1, where agent2 had
    `before-risky`, said only what a revision may be). Asked only once a lookup failed."""
    import difflib

    given: dict[str, str] = {}  # the name compared -> what to give
    for r in refs.list_refs_file(vault.path, refs.CHECKPOINTS):
        owner, _, name = r[len(refs.CHECKPOINTS) :].partition(refs.SEP)
        if owner == fork or name not in given:
            given[name] = name if owner == fork else f"{owner}:{name}"
    for f in vault.fork_names():
        given.setdefault(f, f)
    return [given[n] for n in difflib.get_close_matches(rev.rpartition(":")[2], list(given), n=3, cutoff=0.7)]


def checkpoint_names(vault: Vault, fork: str | None = None) -> dict[str, list[str]]:
    """commit id -> names of the checkpoints (of ``fork``, or of every fork) there."""
    out: dict[str, list[str]] = {}
    prefix = refs.checkpoint_prefix(fork) if fork is not None and want_str(fork, "fork") else refs.CHECKPOINTS
    for r in refs.ref_names(vault.store, prefix):
        target = refs.read_ref(vault.store, r)
        if target:
            label = r[len(prefix) :] if fork else r[len(refs.CHECKPOINTS) :].replace(refs.SEP, ":")
            out.setdefault(target, []).append(label)
    return out


def commit_info(c: Commit, cps: dict[str, list[str]] | None = None) -> CommitInfo:
    return CommitInfo(
        id=CommitId(str(c.id)),
        parents=[str(p) for p in c.parent_ids],
        tree=str(c.tree_id),  # type: ignore[arg-type]
        author=c.author.name,
        author_email=c.author.email,
        time=rfc3339(c.commit_time),
        message=c.message,
        checkpoints=sorted((cps or {}).get(str(c.id), [])),
        author_time=rfc3339(c.author.time),
    )


def first_parents(
    vault: Vault, tip: str, cps: dict[str, list[str]], limit: int | None
) -> list[CommitInfo] | None:
    """A fork's log (first parents from ``tip``, at most ``limit``) read by the pure reader,
    as libgit2's walk gives it: a cold `avfs log` does not load libgit2 (~90-110 ms of CPU).
    None where libgit2's reading may differ: a commit :func:`.gitformat.plain_author_when`
    does not read, a shallow or grafted history."""
    store = vault.store
    if any(os.path.exists(os.path.join(store.path, p)) for p in ("shallow", "info/grafts")):
        return None
    out: list[CommitInfo] = []
    oid: str | None = tip
    while oid is not None and (limit is None or len(out) < limit):
        kind, data = store.read_object(oid, "commit")
        author = plain_author_when(data) if kind == "commit" else None
        if author is None:
            return None
        fields = parse_commit(data)
        out.append(
            CommitInfo(
                id=CommitId(oid),
                parents=list(fields.parents),
                tree=TreeId(fields.tree),
                author=author[0],
                author_email=author[1],
                time=rfc3339(fields.commit_time),
                message=fields.message,
                checkpoints=sorted(cps.get(oid, [])),
                author_time=rfc3339(author[2]),
            )
        )
        oid = fields.parents[0] if fields.parents else None
    return out


def split_range(spec: str) -> tuple[str, str, bool] | None:
    """git's ``A..B`` -> (A, B, False) and ``A...B`` -> (A, B, True); an empty side is
    ``HEAD``; None when ``spec`` is a single revision (no ref name holds ``..``)."""
    for sep, symmetric in (("...", True), ("..", False)):
        if sep in spec:
            a, _, b = spec.partition(sep)
            return a or "HEAD", b or "HEAD", symmetric
    return None


def merge_base(vault: Vault, a: str, b: str) -> str:
    """The best common ancestor of commits ``a`` and ``b`` (as ``git merge-base``)."""
    try:
        base = vault.store.merge_base(a, b)
    except InternalError as exc:  # (libgit2 takes a damaged pack as unusable whole: named)
        from ..store.unreadable import first_unreadable

        named = first_unreadable(vault.store, [vault.store.commit_tree(c) for c in (a, b)])
        if named is None:
            raise
        raise named from exc
    if base is None:
        raise RevisionNotFoundError(f"{a[:12]} and {b[:12]} share no history", details={"old": a, "new": b})
    return base


def diff_range(vault: Vault, spec: str, fork: str | None = None) -> tuple[str, str] | None:
    """The (old, new) commit ids a diff of range ``spec`` compares: ``A..B`` is A with B,
    ``A...B`` is their merge base with B (as ``git diff``); None when not a range."""
    parts = split_range(spec)
    if parts is None:
        return None
    a, b = resolve(vault, parts[0], fork), resolve(vault, parts[1], fork)
    return (merge_base(vault, a, b) if parts[2] else a), b


def log(
    vault: Vault,
    fork: str | None = None,
    *,
    all_forks: bool = False,
    limit: int | None = None,
    rev: str | None = None,
) -> list[CommitInfo]:
    """Commits of ``fork`` newest first (first-parent), or of every fork with ``all_forks``.

    ``rev`` starts the walk there; a range ``A..B`` lists what B has and A has not, and
    ``A...B`` what either has and not both (as ``git log``)."""
    fork = fork or vault.default_fork
    parts = split_range(rev) if rev is not None and want_str(rev, "rev") else None
    push: list[str] = []
    hide: list[str] = []
    if all_forks:
        for f in vault.fork_names():
            tip = refs.read_ref(vault.store, refs.fork_ref(f))
            if tip:
                push.append(tip)
    elif parts is not None:
        a, b = resolve(vault, parts[0], fork), resolve(vault, parts[1], fork)
        push.append(b)
        if parts[2]:
            push.append(a)
            hide.append(merge_base(vault, a, b))
        else:
            hide.append(a)
    else:
        push.append(resolve(vault, rev or "HEAD", fork))
    cps = checkpoint_names(vault, None if all_forks else fork)
    out: list[CommitInfo] = []
    if limit is not None and limit <= 0:
        return out
    if not all_forks and parts is None and (chain := first_parents(vault, push[0], cps, limit)) is not None:
        return chain
    walker = vault.store.walk(push, hide, first_parent=not all_forks and parts is None)
    for c in walker:
        out.append(commit_info(c, cps))
        if limit is not None and len(out) >= limit:
            break
    return out


@dataclass(frozen=True, slots=True)
class DiffResult:
    old: str  # a commit id, or "workspace"
    new: str
    changes: list[Change]
    # a rename by similar content's similarity in percent, by its new path (git's ``R085``:
    # :mod:`..store.similar`); an exact rename is not here (100)
    similarity: dict[str, int] = dataclasses.field(default_factory=dict)


def _renamed(
    vault: Vault, old_tree: str | None, new_tree: str, out: list[Change]
) -> tuple[list[Change], dict[str, int]]:
    """``out`` with its renames paired: the same content (:func:`..store.treediff.pair_renames`),
    then similar content as git pairs it (:func:`..store.similar.pair_similar`)."""
    from ..store.similar import pair_similar

    return pair_similar(vault.store, old_tree, new_tree, pair_renames(out))


def _to_pair(changes: list[Change]) -> bool:
    """Whether a workspace's status holds what git pairs by its own rule: a rename (the
    status pairs a move the overlay saw whatever its content, and names no similarity) or
    a deleted and an added file. `avfs diff` of attrs 23.2.0's workspace with
    ``CHANGELOG.md`` moved and rewritten, ``README.md`` removed and a copy edited written
    said ``R CHANGELOG.md NEWS.md``, ``D README.md``, ``A README2.md``, ``R _make.py
    make2.py`` where `git diff --cached` (all added) says ``D``, ``A``, ``R074``,
    ``R098``, as `avfs diff HEAD` did."""
    kinds = {c.status for c in changes}
    return ChangeStatus.RENAMED in kinds or {ChangeStatus.ADDED, ChangeStatus.DELETED} <= kinds


def diff(
    vault: Vault,
    fork: str | None = None,
    old: str | None = None,
    new: str | None = None,
    paths: list[str] | None = None,
) -> DiffResult:
    """Changes between two revisions, a revision and the workspace, or base and workspace."""
    fork = fork or vault.default_fork
    for arg, value in (("old", old), ("new", new)):  # before a capture writes the workspace's objects
        if value is not None:
            want_str(value, arg)
    store = vault.store
    wanted = [names.norm_path(p) for p in paths or []]
    if old is None and new is None:
        ws = vault.workspace(fork)
        changes = ws.status()
        result = DiffResult(ws.base, "workspace", changes)
        if _to_pair(changes):  # (as `diff HEAD`: git's renames, not the status's)
            tree, _ = ws.capture()
            out: list[Change] = []
            diff_trees(store, ws.base_tree, tree, "", out)
            result = DiffResult(ws.base, "workspace", *_renamed(vault, ws.base_tree, tree, out))
    elif new is None:
        assert old is not None
        ws = vault.workspace(fork)
        a = resolve(vault, old, fork)
        tree, _ = ws.capture() if ws.is_dirty() else (ws.base_tree, [])
        out = []
        diff_trees(store, store.commit_tree(a), tree, "", out)
        result = DiffResult(a, "workspace", *_renamed(vault, store.commit_tree(a), tree, out))
    else:
        a = resolve(vault, old or "HEAD", fork)
        b = resolve(vault, new, fork)
        out = []
        diff_trees(store, store.commit_tree(a), store.commit_tree(b), "", out)
        result = DiffResult(a, b, *_renamed(vault, store.commit_tree(a), store.commit_tree(b), out))
    if wanted:
        keep = [
            c
            for c in result.changes
            if any(
                names.is_within(c.path, w) or (c.old_path and names.is_within(c.old_path, w)) for w in wanted
            )
        ]
        result = DiffResult(result.old, result.new, keep, result.similarity)
    return _without_hidden(vault, fork, result)


def _hidden(vault: Vault, fork: str | None) -> Callable[[str], Held | None] | None:
    """The rule hiding a path from ``fork``'s users (None: the fork hides nothing), for the
    readers of history: a path hidden now is hidden in every revision too."""
    guard = vault.path_guard(fork)
    if guard.empty or not guard.has("hidden"):
        return None

    def hiding(path: str) -> Held | None:
        held = guard.match(path)
        return held if held is not None and held.kind == "hidden" else None

    return hiding


def _without_hidden(vault: Vault, fork: str | None, result: DiffResult) -> DiffResult:
    hiding = _hidden(vault, fork)
    if hiding is None:
        return result
    keep = [c for c in result.changes if not hiding(c.path) and not (c.old_path and hiding(c.old_path))]
    return DiffResult(result.old, result.new, keep, result.similarity)


def _side(vault: Vault, ws: Workspace | None, path: str, oid: str | None, mode: int | None) -> bytes | None:
    if mode is None:
        return None
    if mode == MODE_COMMIT and oid is not None:
        from .patchheads import gitlink_text  # (not on the paths that print no patch)

        return gitlink_text(oid)  # (git's text of a submodule: never read as a blob)
    if oid is not None and (ws is None or vault.store.has_object(oid)):
        return vault.store.blob_data(oid, path=path)  # (committed: a lazy vault fetches it)
    assert ws is not None
    try:
        if mode == MODE_LINK:
            return ws.read_link(path).encode("utf-8", "surrogateescape")
        return ws.read(path)
    except InvalidPathError:
        # a name avfs's own paths refuse ('.GIT', planted in a mount by a command): the
        # workspace holds it (a checkpoint leaves it out), the review must still see it
        node = ws.view.resolve_path(path, False)
        if node is None or node.is_dir:
            return None
        if node.is_link:
            return ws.view.link_target(node).encode("utf-8", "surrogateescape")
        return ws.view.read_node(node)


# git's `core.bigFileThreshold`: `git diff` calls a larger file binary without reading it
# (diff.c ``diff_populate_filespec``, ``check_binary``). avfs read both sides whole and
# gave them to libgit2: found in the twenty-seventh round (NAME=attack18), a confined
# command's sparse 1 GiB and 600 MiB files (the bytes quota's, no disk) took the person's
# `avfs diff HEAD~1 HEAD` to 3.2 GB and 121 s for 346 bytes of output
BIG_FILE = 512 << 20


def _big(vault: Vault, ws: Workspace | None, path: str, oid: str | None, mode: int | None) -> bool:
    """Whether the side :func:`_side` would read is past :data:`BIG_FILE` (asked of the
    object's header or the workspace's stat, never read)."""
    if mode is None or mode in (MODE_LINK, MODE_COMMIT):
        return False
    try:
        if oid is not None and (ws is None or vault.store.has_object(oid)):
            return vault.store.blob_size(oid, path=path) > BIG_FILE
        assert ws is not None
        return ws.stat(path).size > BIG_FILE
    except Exception:  # (read as before, which says what is wrong)
        return False


def patch_text(
    vault: Vault,
    result: DiffResult,
    fork: str | None = None,
    context: int = 3,
    progress: Callable[[int, int | None, str], None] | None = None,
) -> str:
    """A unified diff (git's format) of ``result``; binary files are named, not shown."""
    from . import patchheads  # (not on the paths that print no patch: `log`, `checkpoint`)

    ws = vault.workspace(fork) if result.new == "workspace" else None
    _prefetch(vault, result)
    parts: list[str] = []
    total = len(result.changes)
    indent = indent_heuristic(vault.store) if result.changes else True
    for i, c in enumerate(result.changes):
        if progress is not None and (i % 50 == 0 or i + 1 == total):
            progress(i + 1, total, c.path)
        for one in patchheads.split_type_change(c) if patchheads.type_changed(c) else (c,):
            parts.append(_file_patch(vault, ws, one, context, result.similarity.get(one.path), indent))
    return "".join(parts)


def _file_patch(
    vault: Vault,
    ws: Workspace | None,
    c: Change,
    context: int,
    similar: int | None = None,
    indent: bool = True,
) -> str:
    """One change's patch, headed as git heads it (:mod:`.patchheads`); ``similar``: a
    rename by similar content's similarity (percent); ``indent``: git's
    ``diff.indentHeuristic`` (:func:`..store.gitpatch.indent_heuristic`)."""
    from . import patchheads

    old_path = c.old_path or c.path
    if _big(vault, None, old_path, c.old_oid, c.old_mode) or _big(vault, ws, c.path, c.new_oid, c.new_mode):
        return patchheads.similar_rename(
            patchheads.fix_modes(patchheads.binary_patch(c, old_path), c), c, similar
        )
    if patchheads.exact_rename(c):
        return patchheads.rename_header(c, old_path)
    a = _side(vault, None, old_path, c.old_oid, c.old_mode)
    b = _side(vault, ws, c.path, c.new_oid, c.new_mode)
    text = patchheads.fix_modes(blob_patch(a, b, old_path, c.path, context, indent_heuristic=indent), c)
    if similar is not None:
        return patchheads.similar_rename(text, c, similar)
    if c.status is ChangeStatus.RENAMED and not text:
        text = f"diff --git a/{old_path} b/{c.path}\nrename from {old_path}\nrename to {c.path}\n"
    if c.old_mode and c.new_mode and c.old_mode != c.new_mode and "old mode" not in text:
        text = text or f"diff --git a/{old_path} b/{c.path}\n"
        text += f"old mode {c.old_mode:06o}\nnew mode {c.new_mode:06o}\n"
    return text


def diff_stat(vault: Vault, result: DiffResult, fork: str | None = None) -> list[tuple[str, int, int, bool]]:
    """(path, insertions, deletions, binary) per change."""
    ws = vault.workspace(fork) if result.new == "workspace" else None
    _prefetch(vault, result)
    out = []
    for c in result.changes:
        old_path = c.old_path or c.path
        if _big(vault, None, old_path, c.old_oid, c.old_mode) or _big(
            vault, ws, c.path, c.new_oid, c.new_mode
        ):
            out.append((c.path, 0, 0, True))  # (git's numstat: "-  -")
            continue
        a = _side(vault, None, old_path, c.old_oid, c.old_mode)
        b = _side(vault, ws, c.path, c.new_oid, c.new_mode)
        # the names only label the patch; libgit2 wants UTF-8, and a name from git may not be
        ins, dels, binary = blob_line_stats(a, b, _label(old_path), _label(c.path))
        out.append((c.path, ins, dels, binary))
    return out


def side_sizes(vault: Vault, result: DiffResult, fork: str | None, c: Change) -> tuple[int, int]:
    """A changed binary file's (old, new) sizes for git's ``--stat`` (``Bin 9 -> 0 bytes``):
    (0, 0) when the content is the same, 0 for a side that is absent."""
    if c.old_oid is not None and c.old_oid == c.new_oid:
        return 0, 0
    ws = vault.workspace(fork) if result.new == "workspace" else None
    old = vault.store.blob_size(c.old_oid) if c.old_oid is not None and c.old_mode is not None else 0
    if c.new_mode is None:
        return old, 0
    if c.new_oid is not None and (ws is None or vault.store.has_object(c.new_oid)):
        return old, vault.store.blob_size(c.new_oid)
    assert ws is not None
    return old, ws.stat(c.path).size


def _prefetch(vault: Vault, result: DiffResult) -> None:
    """In a lazy vault, the committed sides' blobs of ``result`` fetched in one batch (a
    workspace's new side is its own files); nothing in a whole vault."""
    committed_new = result.new != "workspace"
    wanted: dict[str, str] = {}  # each blob and a path of it (a failed fetch names it)
    for c in result.changes:
        if c.old_oid is not None and c.old_mode not in (None, MODE_COMMIT):
            wanted.setdefault(c.old_oid, c.old_path or c.path)
        if committed_new and c.new_oid is not None and c.new_mode not in (None, MODE_COMMIT):
            wanted.setdefault(c.new_oid, c.path)
    vault.store.prefetch(wanted)


def _label(path: str) -> str:
    """``path`` as valid UTF-8 (a non-UTF-8 name read from git carries surrogate escapes)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def read_at(vault: Vault, fork: str | None, rev: str, path: str) -> bytes:
    """The bytes of file ``path`` at revision ``rev`` (``git show REV:PATH``); a symlink
    gives its target, as git stores it."""
    commit = resolve(vault, rev, fork)
    p = names.norm_path(path, text=False)  # (a name git holds that is not UTF-8: read too)
    hiding = _hidden(vault, fork)
    held = hiding(p) if hiding is not None and p else None
    if held is not None:
        raise refusal(held, p, "read")
    hit = vault.store.tree_lookup(vault.store.commit_tree(commit), p)
    if hit is None:
        raise PathNotFoundError(
            f"{p}: no such file at {rev} ({commit[:12]})",
            hint="paths are relative to the workspace root",
            details={"path": p, "revision": rev, "commit": commit},
        )
    oid, mode = hit
    if mode == MODE_TREE:
        raise IsDirectoryError(f"{p or '/'}: is a directory at {rev}", details={"path": p, "revision": rev})
    if mode == MODE_COMMIT:
        raise PathNotFoundError(f"{p}: is a submodule at {rev}", details={"path": p, "revision": rev})
    return vault.store.blob_data(oid, path=p)


def commit_diff(vault: Vault, commit: str, fork: str | None = None) -> DiffResult:
    """What ``commit`` changed against its first parent (everything, for a root commit):
    the diff ``git show`` and ``git log -p`` print; what ``fork`` hides left out."""
    store = vault.store
    c = store.commit(commit)
    parent = str(c.parent_ids[0]) if c.parent_ids else None
    out: list[Change] = []
    old_tree = store.commit_tree(parent) if parent else None
    diff_trees(store, old_tree, str(c.tree_id), "", out)
    return _without_hidden(
        vault, fork, DiffResult(parent or "", commit, *_renamed(vault, old_tree, str(c.tree_id), out))
    )
