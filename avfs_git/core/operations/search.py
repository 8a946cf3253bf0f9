"""grep and find over what a fork shows (base tree + overlay) or over any revision, read in
place: nothing is materialized.

The fork is read through its one merged view (:class:`.wsview.View`) over a snapshot of its
overlay (:class:`.wssnapshot.Snapshot`: the entries read once, so a search sees one moment);
files the overlay does not hold are read straight out of git (one object read per file,
found by walking the trees), and a clean subtree costs one parsed tree per directory
(:meth:`.gitstore.GitStore.tree_items`, cached).

Patterns are Python :mod:`re` syntax, matched against bytes (UTF-8), line by line in the way
grep reports them. Catastrophic backtracking is bounded twice: up front, where a pattern of a
dangerous shape is refused (:mod:`.greppattern`), and while matching, where each file gets a
CPU time budget (``match_timeout_s``, :mod:`.grepmatch`). Fixed strings (``-F``) need no
budget.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from ..errors import InternalError, PathNotFoundError, UsageError
from ..records import dataclass
from ..store import names
from ..types import MODE_BLOB, MODE_COMMIT, MODE_EXEC, MODE_TREE, ChangeStatus, NodeKind, kind_of_mode
from ..workspace.wssnapshot import Snapshot
from ..workspace.wsview import Node, View
from .grepbinary import BinaryRule
from .grepmatch import Budget, MatchHelper, MatchTimeout, decode_line, match_lines
from .greppattern import Pattern, compile_pattern

if TYPE_CHECKING:
    from ..vaults.vault import Vault
    from ..workspace.workspace import Workspace

BINARY_PROBE = 8000  # like git grep: a NUL in the first 8000 bytes makes a file binary
DEFAULT_MATCH_TIMEOUT_S = 5.0

__all__ = [
    "DEFAULT_MATCH_TIMEOUT_S",
    "FindEntry",
    "FindResult",
    "GrepFile",
    "GrepLine",
    "GrepResult",
    "find",
    "grep",
    "parse_size",
]


# -- results ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GrepLine:
    line: int  # 1-based
    text: str  # the line without its newline (bytes that are not UTF-8 shown as U+FFFD, or
    # kept as surrogates where the search was asked ``as_bytes``)


@dataclass(frozen=True, slots=True)
class GrepFile:
    path: str
    count: int | None  # matching lines (None with files_only: the search stopped at the first)
    lines: list[GrepLine]  # empty with files_only or count_only


@dataclass(frozen=True, slots=True)
class GrepResult:
    rev: str | None  # the commit searched, or None for the workspace
    files: list[GrepFile]
    files_searched: int
    binary_skipped: int

    @property
    def matched(self) -> bool:
        return bool(self.files)


@dataclass(frozen=True, slots=True)
class FindEntry:
    path: str
    kind: NodeKind
    mode: int
    size: int | None  # bytes; computed only when a size filter asked for it (else None)


@dataclass(frozen=True, slots=True)
class FindResult:
    rev: str | None
    entries: list[FindEntry]


# -- the view (the one merged view of core/workspace/wsview.py, over a snapshot) -------------------------
def _view(ws: Workspace[Vault], rev: str | None) -> View:
    """What ``ws`` shows now, read once (one moment's state however the overlay changes
    during the search), or the tree of revision ``rev``."""
    if rev is None:
        # the entries first, then the base: a checkpoint in between retires entries onto a
        # base that holds them (the view is the same); the other way round it would not be
        entries = ws.overlay.all()
        return View(ws.store, Snapshot(ws.base, entries, ws.overlay), scan=True)
    from .history import resolve

    return View.of_commit(ws.store, resolve(ws.vault, rev, ws.fork), scan=True)


def _starts(view: View, paths: Sequence[str]) -> list[Node]:
    out: list[Node] = []
    for raw in paths or [""]:
        p = names.norm_path(raw)
        node = view.lookup(p)
        if node is None:
            where = f"revision {view.commit[:12]}" if view.commit else "the workspace"
            raise PathNotFoundError(f"{p}: no such file or directory in {where}", details={"path": p})
        out.append(node)
    return out


class _Globs:
    """--glob filters: a glob without '/' matches the file name, one with '/' the whole path
    (``*`` crosses '/'); a leading '!' excludes. A file passes when it matches one of the
    including globs (or there are none) and none of the excluding ones."""

    def __init__(self, globs: Sequence[str]) -> None:
        groups: dict[tuple[bool, bool], list[str]] = {
            (n, p): [] for n in (False, True) for p in (False, True)
        }
        for g in globs:
            neg = g.startswith("!")
            body = g[1:] if neg else g
            if not body:
                raise UsageError(f"empty glob {g!r}", hint="e.g. --glob '*.py' or --glob '!tests/*'")
            whole = "/" in body
            groups[(neg, whole)].append(fnmatch.translate(body.lstrip("/") if whole else body))
        inc_name, inc_path = groups[(False, False)], groups[(False, True)]
        exc_name, exc_path = groups[(True, False)], groups[(True, True)]
        self.any_include = bool(inc_name or inc_path)

        def one(parts: list[str]) -> re.Pattern[str] | None:
            return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None

        self.inc_name, self.inc_path = one(inc_name), one(inc_path)
        self.exc_name, self.exc_path = one(exc_name), one(exc_path)

    def match(self, path: str) -> bool:
        base = path[path.rfind("/") + 1 :]
        if self.any_include and not (
            (self.inc_name is not None and self.inc_name.match(base))
            or (self.inc_path is not None and self.inc_path.match(path))
        ):
            return False
        if self.exc_name is not None and self.exc_name.match(base):
            return False
        return not (self.exc_path is not None and self.exc_path.match(path))


# -- grep ------------------------------------------------------------------------------------
def _git_key(path: str) -> bytes:
    """git's order of paths (its index's: the whole path's bytes compared, so ``dir/b``
    comes before ``dir.txt`` and ``dira``), as a sort key."""
    return path.encode("utf-8", "surrogateescape")


def _within(path: str, start: str) -> bool:
    return not start or path == start or path.startswith(start + "/")


def _tree_files(store_path: str, tree: str, starts: Sequence[str]) -> list[tuple[str, str]]:
    """(path, blob id) of the regular files (not symlinks or submodules) of ``tree`` at or
    below ``starts``: `git ls-tree -r`, git's own listing (trees only: no blob is read)."""
    from ..store.gitrun import run

    args = ["ls-tree", "-r", "-z", "--full-tree", tree]
    if any(starts):
        args += ["--", *(f":(literal){p}" for p in starts)]
    out = run(args, git_dir=store_path).stdout
    files: list[tuple[str, str]] = []
    for rec in out.split(b"\0"):
        if not rec:
            continue
        meta, _, path = rec.partition(b"\t")
        if meta.startswith((b"100644", b"100755")):
            files.append((path.decode("utf-8", "surrogateescape"), meta.split()[2].decode("ascii")))
    return files


_GIT_NEEDLE_MAX = 16_384


def _tree_candidates(store_path: str, tree: str, pat: Pattern, starts: Sequence[str]) -> list[str] | None:
    """The files of ``tree`` (at or below ``starts``) that hold one of the pattern's needles,
    as `git grep -F -l` finds them in the object store (git's machinery: no file is read
    here); None when the pattern names no needle (every file is then a candidate)."""
    if not pat.needles or any(len(n) > _GIT_NEEDLE_MAX for n in pat.needles):
        return None  # (git refuses a fixed string past ~32,000 bytes: `fatal: -e option`)
    from ..store.gitrun import git_env, run

    args = ["-c", "grep.patternType=fixed", "grep", "-l", "-z", "-F", "--no-color", "--no-textconv"]
    if pat.fold:
        args.append("-i")
    for n in pat.needles:
        args += ["-e", n.decode("utf-8", "surrogateescape")]
    args.append(tree)
    if any(starts):
        args += ["--", *(f":(literal){p}" for p in starts)]
    # bytes, not the locale's characters: -i folds ASCII only, as a bytes pattern does
    env = {**git_env(), "LC_ALL": "C"}
    out = run(args, git_dir=store_path, env=env, ok=(0, 1)).stdout
    prefix = tree.encode() + b":"
    return [
        (rec[len(prefix) :] if rec.startswith(prefix) else rec).decode("utf-8", "surrogateescape")
        for rec in out.split(b"\0")
        if rec
    ]


def _git_lists(
    ws: Workspace[Vault], tree: str, pat: Pattern, starts: Sequence[str], read: Callable[[str], bool]
) -> tuple[list[str], list[str] | None]:
    """The files of ``tree`` at or below ``starts`` and the candidates among them
    (:func:`_tree_files`, :func:`_tree_candidates`), a lazy vault's blobs the search will
    read (``read(path)``) fetched in one batch between (git grep would fetch blob by blob,
    without avfs's credentials or timeout; nothing happens in a whole vault). Where git
    fails on an object it cannot read (a pack cut short is unusable whole to git), the
    object the store cannot read is the error, named."""
    try:
        files = _tree_files(ws.store.path, tree, starts)
        ws.store.prefetch({oid: p for p, oid in files if read(p)})
        return [p for p, _ in files], _tree_candidates(ws.store.path, tree, pat, starts)
    except InternalError as exc:
        from ..store.unreadable import first_unreadable

        named = first_unreadable(ws.store, [tree])
        if named is None:
            raise
        raise named from exc


def grep(
    ws: Workspace[Vault],
    pattern: str,
    paths: Sequence[str] = (),
    *,
    rev: str | None = None,
    ignore_case: bool = False,
    fixed: bool = False,
    word: bool = False,
    globs: Sequence[str] = (),
    files_only: bool = False,
    count_only: bool = False,
    include_ignored: bool = False,
    match_timeout_s: float | None = DEFAULT_MATCH_TIMEOUT_S,
    as_bytes: bool = False,
) -> GrepResult:
    """Search the files of ``ws`` (or of revision ``rev``: a checkpoint, fork or commit)
    for lines matching ``pattern``.

    The committed part is searched with git's own machinery, as `git grep` searches a
    checkout: `git grep -F` over the base commit's tree in the vault names the files that
    can match (those holding a substring every match holds, :func:`_needles`), then only
    those are matched here; the workspace's changes (:meth:`.workspace.Workspace.status`:
    what differs from the base) are read through its merged view, and what it deleted is
    left out. Paths git ignores (a venv, ``node_modules``) are skipped, as `git grep`
    skips them, unless ``include_ignored``.

    Args:
        paths: files or directories to search (default: everything).
        fixed: ``pattern`` is a plain string, not a regular expression.
        word: match whole words only (no word character on either side).
        globs: file filters (see :class:`_Globs`): ``*.py``, ``src/*``, ``!*.min.js``.
        files_only: stop at each file's first match (``grep -l``).
        count_only: count matching lines, do not collect them (``grep -c``).
        include_ignored: search the paths git ignores too (`git grep --no-exclude-standard`).
        match_timeout_s: time budget of one file's match (None: unbounded).
        as_bytes: keep bytes that are not UTF-8 as surrogates, to print as `git grep` does.

    Files come in git's path order (:func:`_git_key`), each once. Binary files (git's rule,
    :mod:`.grepbinary`: by the ``diff`` attribute, else a NUL in the first 8000 bytes) are
    skipped (`git grep -I`'s choice, not its default ``Binary file X matches``: a document
    of matched lines has none to give), as are symlinks and submodules.

    Raises:
        UsageError: an invalid or refused pattern, or a file over the time budget.
        PathNotFoundError, RevisionNotFoundError.
    """
    for p in paths:
        ws.check_visible(names.norm_path(p), "grep")
    pat = compile_pattern(pattern, ignore_case=ignore_case, fixed=fixed, word=word)
    flt = _Globs(globs) if globs else None
    # what to read here, in the order a walk of the view lists it: (path, view)
    if rev is None:
        changes, ignored = ws.status_ignored()
        live = ws.view
        base = ws.base
        starts = [n.path for n in _starts(live, paths)]
        gone = {c.path for c in changes} | {c.old_path for c in changes if c.old_path}
        changed = [c.path for c in changes if c.status is not ChangeStatus.DELETED]
        extra = [(p, live) for p in changed]
        if include_ignored:
            for top in sorted(ignored.tops):
                node = live.lookup(top)
                if node is None:
                    continue
                extra += [(n.path, live) for n in live.files([node])]
        commit = None
    else:
        from .history import resolve

        base = resolve(ws.vault, rev, ws.fork)
        starts = [n.path for n in _starts(View.of_commit(ws.store, base), paths)]
        gone, extra, commit = set(), [], base
    committed = View.of_commit(ws.store, base)
    tree = ws.store.commit_tree(base)
    listed, cands = _git_lists(
        ws, tree, pat, starts, lambda p: p not in gone and (flt is None or flt.match(p))
    )
    candidate = set(listed if cands is None else cands)
    todo: list[tuple[str, View]] = []
    searched = 0
    for p in listed:
        if p in gone or (flt is not None and not flt.match(p)):
            continue
        searched += 1
        if p in candidate:
            todo.append((p, committed))
    for p, v in extra:
        if any(_within(p, st) for st in starts) and (flt is None or flt.match(p)):
            node = v.lookup(p)
            if node is not None and node.mode in (MODE_BLOB, MODE_EXEC):
                searched += 1
                todo.append((p, v))
    # in git's path order, each path once whatever the starts' order, as `git grep` lists
    # them (it listed a directory's files before its subdirectories, start by start:
    # libgit2's ``diff_format_email`` had `dir/renamed.txt` last, git first)
    ordered = sorted(
        {t[0]: t for t in todo if any(_within(t[0], st) for st in starts)}.values(),
        key=lambda t: _git_key(t[0]),
    )
    shown = ws.visible_filter()
    if shown is not None:  # the fork's hidden paths are never read, nor counted
        kept = [t for t in ordered if shown(t[0], NodeKind.FILE)]
        searched -= len(ordered) - len(kept)
        ordered = kept
    rule = BinaryRule(ws.store.path, live if rev is None else committed)  # (closed there)
    found, binary = _match_files(
        pat, pattern, ordered, files_only, count_only, match_timeout_s, rule, as_bytes
    )
    return GrepResult(commit, found, searched, binary)


def _match_files(
    pat: Pattern,
    pattern: str,
    todo: Sequence[tuple[str, View]],
    files_only: bool,
    count_only: bool,
    match_timeout_s: float | None,
    rule: BinaryRule,
    as_bytes: bool = False,
) -> tuple[list[GrepFile], int]:
    """Match each of ``todo`` (path, the view to read it from): (the files that matched,
    how many were skipped as binary: by ``rule``, git's attributes, else by their bytes;
    ``rule`` is closed here)."""
    want_lines = not (files_only or count_only)
    errors = "surrogateescape" if as_bytes else "replace"
    budget = Budget(None if pat.literal is not None else match_timeout_s)
    found: list[GrepFile] = []
    binary = 0
    literal = pat.literal
    path = ""
    helper: MatchHelper | None = None
    # asked before the timer is armed: once armed, its own handler holds SIGVTALRM (asked
    # inside, every file went to the helper process, ~0.1 s for nothing)
    in_process = budget.seconds is None or budget.signal_usable()
    try:
        with budget.armed():
            for path, view in todo:
                node = view.lookup(path)
                if node is None or node.mode not in (MODE_BLOB, MODE_EXEC):
                    continue
                forced = rule.binary(path)
                if forced:
                    binary += 1
                    continue
                data: Any = view.read_node(node)
                if forced is None and data.find(b"\0", 0, BINARY_PROBE) >= 0:
                    binary += 1
                    continue
                if literal is not None:
                    if literal not in data:
                        continue
                    if files_only:
                        found.append(GrepFile(path, None, []))
                        continue
                lines: list[tuple[int, Any]]
                if not in_process and budget.seconds is not None:
                    # off the main thread: no signal reaches the regex engine here
                    if helper is None:
                        helper = MatchHelper(pat, budget.seconds, want_lines, files_only)
                    n, lines = helper.match(data)
                else:
                    if pat.text:
                        data = data.decode("utf-8", "surrogateescape")
                    budget.started = time.process_time()
                    budget.active = True
                    n, lines = match_lines(pat, data, want_lines, files_only)
                    budget.active = False
                if files_only:
                    if n:
                        found.append(GrepFile(path, None, []))
                    continue
                if n:
                    found.append(GrepFile(path, n, [GrepLine(no, decode_line(t, errors)) for no, t in lines]))
    except MatchTimeout:
        raise UsageError(
            f"pattern {pattern!r} took more than {match_timeout_s:g} s of CPU time on {path}; stopped",
            hint="the pattern backtracks too much: simplify it, make repeats possessive (`a++`),"
            " or use -F for a fixed string",
            details={"pattern": pattern, "path": path, "timeout_s": match_timeout_s},
        ) from None
    finally:
        rule.close()
        if helper is not None:
            helper.close()
    return found, binary


# -- find ------------------------------------------------------------------------------------
_SIZE = re.compile(r"^([+-]?)(\d+)([kKmMgGcb]?)$")
_UNITS: Final[Mapping[str, int]] = MappingProxyType(
    {"": 1, "c": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
)


def parse_size(spec: str) -> tuple[int, int]:
    """``[+-]N[k|M|G]`` -> (sign, bytes): +1 larger than, -1 smaller than, 0 exactly."""
    m = _SIZE.match(spec.strip())
    if not m:
        raise UsageError(
            f"invalid size {spec!r}",
            hint="use [+|-]N[k|M|G]: +10k larger than 10 KiB, -1M smaller than 1 MiB, 0 empty",
        )
    sign = {"+": 1, "-": -1, "": 0}[m.group(1)]
    return sign, int(m.group(2)) * _UNITS[m.group(3).lower()]


_TYPES: Final[Mapping[str, NodeKind]] = MappingProxyType(
    {"f": NodeKind.FILE, "d": NodeKind.DIR, "l": NodeKind.SYMLINK}
)


def find(
    ws: Workspace[Vault],
    path: str = "",
    *,
    rev: str | None = None,
    name: str | None = None,
    kind: str | None = None,
    size: str | None = None,
    newer: str | None = None,
) -> FindResult:
    """Entries at and below ``path`` of ``ws`` (or of revision ``rev``) that pass every filter.

    Args:
        name: a glob matched against the last path segment (``find -name``).
        kind: ``f`` files (and submodules), ``d`` directories, ``l`` symlinks.
        size: ``[+|-]N[k|M|G]`` (see :func:`parse_size`); directories never match.
        newer: a revision; keep entries that differ from it: files and symlinks whose blob
            or mode differs (or that it lacks), directories it does not have.

    The workspace root itself is never listed; a start path other than the root is, when it
    passes the filters (as ``find`` does). Symlinks are listed, never followed.
    """
    if kind is not None and kind not in _TYPES:
        raise UsageError(f"invalid type {kind!r}", hint="use f (file), d (directory) or l (symlink)")
    want_kind = _TYPES[kind] if kind is not None else None
    size_f = parse_size(size) if size is not None else None
    name_rx = re.compile(fnmatch.translate(name)) if name is not None else None
    ws.check_visible(names.norm_path(path), "find")
    view = _view(ws, rev)
    start = _starts(view, [path])[0]
    other_root: str | None = None
    if newer is not None:
        from .history import resolve

        other_root = view.store.commit_tree(resolve(ws.vault, newer, ws.fork))
    store = view.store

    def other_of(p: str) -> tuple[str, int] | None:
        assert other_root is not None
        return store.tree_lookup(other_root, p)

    def is_newer(node: Node) -> bool:
        o = other_of(node.path)
        if node.mode == MODE_TREE:
            return o is None or o[1] != MODE_TREE
        if o is None or o[1] != node.mode:
            return True
        return view.entry_oid(node) != o[0]

    def keep(node: Node) -> FindEntry | None:
        k = kind_of_mode(node.mode)
        if (
            want_kind is not None
            and k is not want_kind
            and not (want_kind is NodeKind.FILE and k is NodeKind.SUBMODULE)
        ):
            return None
        if name_rx is not None and not name_rx.match(names.basename(node.path)):
            return None
        got_size: int | None = None
        if size_f is not None:
            if node.mode == MODE_TREE or node.mode == MODE_COMMIT:
                return None
            got_size = view.size(node)
            sign, limit = size_f
            if not (got_size > limit if sign > 0 else got_size < limit if sign < 0 else got_size == limit):
                return None
        if other_root is not None and not is_newer(node):
            return None
        return FindEntry(node.path, k, node.mode, got_size)

    src = view.source
    assert isinstance(src, Snapshot)  # _view reads the overlay once
    dirty = src.dirty

    def prune(d: Node) -> bool:
        # with --newer, a subtree equal to the revision's and without overlay entries
        # holds nothing newer: skip it whole (cost by changes, not tree size)
        if other_root is None or d.path in dirty:
            return False
        o = other_of(d.path)
        return o is not None and o[0] == d.oid

    out: list[FindEntry] = []
    if start.path:
        hit = keep(start)
        if hit is not None:
            out.append(hit)
    if start.mode == MODE_TREE and not (other_root is not None and start.path and prune(start)):
        for node in view.nodes_below(start, prune=prune if other_root is not None else None):
            hit = keep(node)
            if hit is not None:
                out.append(hit)
    shown = ws.visible_filter()
    if shown is not None:  # the fork's hidden paths are not there
        out = [e for e in out if shown(e.path, e.kind)]
    return FindResult(view.commit, out)
