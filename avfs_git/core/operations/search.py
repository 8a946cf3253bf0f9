"""grep and find over what a fork shows (base tree + overlay) or over any revision, read in
place: nothing is materialized.

The fork is read through its one merged view (:class:`.wsview.View`) over a snapshot of its
overlay (:class:`.wsview.Snapshot`: the entries read once, so a search sees one moment);
files the overlay does not hold are read straight out of git (one object read per file,
found by walking the trees), and a clean subtree costs one parsed tree per directory
(:meth:`.gitstore.GitStore.tree_items`, cached).

Patterns are Python :mod:`re` syntax, matched against bytes (UTF-8), line by line in the way
grep reports them. Catastrophic backtracking is bounded twice:

- up front (:func:`compile_pattern`), these shapes are refused with a :class:`UsageError`
  (possessive ``++``/``*+`` and atomic ``(?>...)`` groups never give back what they
  matched, so they are not counted):

  * an unbounded repeat that holds a variable-length repeat (``(a+)+``, ``(a*)*``,
    ``(\\w+\\s?)+``, ``(a{1,3})+``);
  * an unbounded repeat over an alternation whose branches can start with the same
    character, or where a branch can match nothing (``(a|a)*``, ``(a|aa)*``, ``(ab|ac|a)*``);
  * a counted repeat of more than :data:`MAX_AMBIGUOUS_COUNT` over content with an unbounded
    repeat that overlaps what follows it (``(.*a){12}``);
  * more than :data:`MAX_AMBIGUOUS_COUNT` unbounded repeats in a row, each overlapping the
    one before (``a*a*a*a*a*b``, ``.*x.*x.*x.*x.*x``).

- while matching, each file gets a CPU time budget (``match_timeout_s``, default 5 s); a
  search over budget stops with a :class:`UsageError` naming the file. In the main thread
  (while nobody else handles ``SIGVTALRM``) it is a ``SIGVTALRM`` interval timer (CPU time,
  so a busy machine does not trip it; ``SIGALRM`` is left to others, such as
  pytest-timeout): Python's regex engine checks for signals while it backtracks. Anywhere
  else (another thread: an embedding server, the MCP server), signals cannot reach the
  matching, so a regex search runs in a helper process (``python -I -S``, one per search,
  fed the files one by one) that applies the same timer in its own main thread; the helper
  is killed if it does not answer within a wall-clock backstop. Fixed strings (``-F``) need
  no budget and never use the helper.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import os
import re
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from ..errors import InternalError, PathNotFoundError, UsageError
from ..store import names
from ..types import MODE_BLOB, MODE_COMMIT, MODE_EXEC, MODE_TREE, ChangeStatus, NodeKind, kind_of_mode
from ..workspace.wsview import Node, Snapshot, View

if TYPE_CHECKING:
    from ..vaults.vault import Vault
    from ..workspace.workspace import Workspace

BINARY_PROBE = 8000  # like git grep: a NUL in the first 8000 bytes makes a file binary
DEFAULT_MATCH_TIMEOUT_S = 5.0
# more repeats than this of ambiguous content, or in an ambiguous row, are refused up front
MAX_AMBIGUOUS_COUNT = 4

__all__ = [
    "DEFAULT_MATCH_TIMEOUT_S",
    "MAX_AMBIGUOUS_COUNT",
    "FindEntry",
    "FindResult",
    "GrepFile",
    "GrepLine",
    "GrepResult",
    "compile_pattern",
    "find",
    "grep",
    "parse_size",
]


# -- results ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class GrepLine:
    line: int  # 1-based
    text: str  # the line without its newline (bytes that are not UTF-8 shown as U+FFFD)


@dataclasses.dataclass(frozen=True, slots=True)
class GrepFile:
    path: str
    count: int | None  # matching lines (None with files_only: the search stopped at the first)
    lines: list[GrepLine]  # empty with files_only or count_only


@dataclasses.dataclass(frozen=True, slots=True)
class GrepResult:
    rev: str | None  # the commit searched, or None for the workspace
    files: list[GrepFile]
    files_searched: int
    binary_skipped: int

    @property
    def matched(self) -> bool:
        return bool(self.files)


@dataclasses.dataclass(frozen=True, slots=True)
class FindEntry:
    path: str
    kind: NodeKind
    mode: int
    size: int | None  # bytes; computed only when a size filter asked for it (else None)


@dataclasses.dataclass(frozen=True, slots=True)
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


# -- patterns --------------------------------------------------------------------------------
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")


def _variable(p: Any) -> bool:
    """True when parsed pattern ``p`` holds a backtracking repeat that can match a varying
    count (possessive repeats and atomic groups never give back: they do not count)."""
    for op, av in p:
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            if av[0] != av[1] or _variable(av[2]):
                return True
        elif op is _c.SUBPATTERN:
            if _variable(av[3]):
                return True
        elif op is _c.BRANCH and any(_variable(b) for b in av[1]):
            return True
    return False


def _nested(p: Any) -> bool:
    """True when an unbounded backtracking repeat holds a variable-length repeat: the shape
    whose matching time can grow exponentially (``(a+)+``). Possessive repeats and atomic
    groups never give back what they matched, so they are not counted."""
    for op, av in p:
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            lo, hi, sub = av
            if hi == _c.MAXREPEAT and hi != lo and _variable(sub):
                return True
            if _nested(sub):
                return True
        elif op is _c.POSSESSIVE_REPEAT:
            if _nested(av[2]):
                return True
        elif op is _c.SUBPATTERN:
            if _nested(av[3]):
                return True
        elif op is _c.BRANCH:
            if any(_nested(b) for b in av[1]):
                return True
        elif op is _c.ATOMIC_GROUP:
            if _nested(av):
                return True
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            if _nested(av[1]):
                return True
        elif op is _c.GROUPREF_EXISTS and (_nested(av[1]) or (av[2] is not None and _nested(av[2]))):
            return True
    return False


# -- first characters: what a sub-pattern can start with, for telling repeats apart ---------
# An atom is a code point (int), a category (("cat", CATEGORY_X)), a negated set
# (("not", frozenset of code points)) or _ANYCH (anything: the analysis is conservative).
_ANYCH: Any = "any"
_RANGE_EXPAND = 512  # a range wider than this counts as "anything"


def _cat_atom(cat: Any) -> Any:
    if cat in (_c.CATEGORY_DIGIT, _c.CATEGORY_WORD, _c.CATEGORY_SPACE):
        return ("cat", cat)
    return _ANYCH  # negated categories (\W, \D, \S) and the rest: anything


def _fold(code: int) -> set[int]:
    ch = chr(code)
    return {code, *(ord(x) for x in (ch.lower(), ch.upper()) if len(x) == 1)}


def _set_atoms(items: Any, fold: bool) -> set[Any]:
    negate = any(op is _c.NEGATE for op, _ in items)
    codes: set[int] = set()
    atoms: set[Any] = set()
    for op, av in items:
        if op is _c.LITERAL:
            codes |= _fold(av) if fold else {av}
        elif op is _c.RANGE and av[1] - av[0] <= _RANGE_EXPAND:
            for code in range(av[0], av[1] + 1):
                codes |= _fold(code) if fold else {code}
        elif op is _c.CATEGORY and not negate:
            atoms.add(_cat_atom(av))
        elif op is not _c.NEGATE:
            return {_ANYCH}
    if negate:
        return {("not", frozenset(codes))} if not atoms else {_ANYCH}
    return atoms | codes


_CAT_RX: Final[Mapping[Any, re.Pattern[str]]] = MappingProxyType(
    {
        _c.CATEGORY_DIGIT: re.compile(r"\d"),
        _c.CATEGORY_WORD: re.compile(r"\w"),
        _c.CATEGORY_SPACE: re.compile(r"\s"),
    }
)


def _in_cat(code: int, cat: Any) -> bool:
    return _CAT_RX[cat].fullmatch(chr(code)) is not None


def _atoms_meet(a: Any, b: Any) -> bool:
    if a is _ANYCH or b is _ANYCH:
        return True
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(b, int):
        a, b = b, a
    if isinstance(a, int):  # a code point and a category or negated set
        return _in_cat(a, b[1]) if b[0] == "cat" else a not in b[1]
    if a[0] == "not" or b[0] == "not":
        return True  # a negated set meets almost anything
    word, digit = _c.CATEGORY_WORD, _c.CATEGORY_DIGIT
    return a[1] == b[1] or {a[1], b[1]} == {word, digit}


def _meet(a: set[Any], b: set[Any]) -> bool:
    if not a or not b:
        return False
    if a & b:
        return True
    return any(_atoms_meet(x, y) for x in a for y in b)


def _first(p: Any, fold: bool) -> tuple[set[Any], bool]:
    """(the atoms sequence ``p`` can start with, whether it can match nothing)."""
    out: set[Any] = set()
    for item in p:
        atoms, nullable = _first_item(item, fold)
        out |= atoms
        if not nullable:
            return out, False
    return out, True


def _first_item(item: Any, fold: bool) -> tuple[set[Any], bool]:
    op, av = item
    if op is _c.LITERAL:
        return (_fold(av) if fold else {av}), False
    if op is _c.IN:
        return _set_atoms(av, fold), False
    if op is _c.NOT_LITERAL:
        return {("not", frozenset(_fold(av) if fold else {av}))}, False
    if op is _c.ANY:
        return {_ANYCH}, False
    if op is _c.AT or op in (_c.ASSERT, _c.ASSERT_NOT):
        return set(), True  # zero width
    if op is _c.SUBPATTERN:
        return _first(av[3], fold or bool(av[1] & re.IGNORECASE))
    if op is _c.BRANCH:
        atoms: set[Any] = set()
        nullable = False
        for b in av[1]:
            a, n = _first(b, fold)
            atoms |= a
            nullable = nullable or n
        return atoms, nullable
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        atoms, nullable = _first(av[2], fold)
        return atoms, nullable or av[0] == 0
    if op is _c.ATOMIC_GROUP:
        return _first(av, fold)
    if op is _c.GROUPREF_EXISTS:
        a1, n1 = _first(av[1], fold)
        a2, n2 = _first(av[2], fold) if av[2] is not None else (set(), True)
        return a1 | a2, n1 or n2
    return {_ANYCH}, True  # a back reference, anything else: anything, maybe empty


def _unbounded(op: Any, av: Any) -> bool:
    """A backtracking repeat with no upper bound (``*``, ``+``, ``{n,}``)."""
    return op in (_c.MAX_REPEAT, _c.MIN_REPEAT) and av[1] == _c.MAXREPEAT and av[0] != av[1]


def _ambiguous_alternation(p: Any, fold: bool) -> bool:
    """True when ``p`` (the body of an unbounded repeat) holds a backtracking alternation
    whose branches can start with the same character, or one of which can match nothing."""
    for op, av in p:
        if op is _c.BRANCH:
            firsts = [_first(b, fold) for b in av[1]]
            if any(n for _, n in firsts) and len(firsts) > 1:
                return True
            for i, (a, _) in enumerate(firsts):
                if any(_meet(a, b) for b, _ in firsts[i + 1 :]):
                    return True
            if any(_ambiguous_alternation(b, fold) for b in av[1]):
                return True
        elif op is _c.SUBPATTERN:
            if _ambiguous_alternation(av[3], fold or bool(av[1] & re.IGNORECASE)):
                return True
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            if _ambiguous_alternation(av[2], fold):
                return True
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            if _ambiguous_alternation(av[1], fold):
                return True
        elif op is _c.GROUPREF_EXISTS and (
            _ambiguous_alternation(av[1], fold) or (av[2] is not None and _ambiguous_alternation(av[2], fold))
        ):
            return True
    return False


def _flat(p: Any, fold: bool) -> tuple[list[Any], bool]:
    """Sequence ``p`` with its groups opened up (their items in line), and whether a group
    turns on case folding."""
    out: list[Any] = []
    for op, av in p:
        if op is _c.SUBPATTERN:
            inner, f = _flat(av[3], fold or bool(av[1] & re.IGNORECASE))
            out.extend(inner)
            fold = fold or f
        else:
            out.append((op, av))
    return out, fold


def _ambiguous_body(p: Any, fold: bool) -> bool:
    """True when sequence ``p`` holds an unbounded backtracking repeat whose characters
    overlap what can follow it, in ``p`` or in the next repetition of ``p`` (``.*a``; not
    ``[^,]*,``): the content of a counted repeat that backtracks polynomially."""
    flat, fold = _flat(p, fold)
    for i, (op, av) in enumerate(flat):
        if not _unbounded(op, av):
            continue
        mine, _ = _first(av[2], fold)
        follow, nullable = _first(flat[i + 1 :], fold)
        if nullable:
            follow |= _first(flat, fold)[0]
        if _meet(mine, follow):
            return True
    return False


def _hazard(p: Any, fold: bool) -> str | None:
    """Why parsed pattern ``p`` can backtrack catastrophically (a refusal's words), or None.
    Possessive repeats and atomic groups never give back what they matched: not counted."""
    row = 0
    prev: set[Any] = set()
    for op, av in p:
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            hi, sub = av[1], av[2]
            if _unbounded(op, av):
                if _variable(sub):
                    return "nested"
                if _ambiguous_alternation(sub, fold):
                    return "alternation"
                mine, _ = _first(sub, fold)
                row = row + 1 if row and _meet(prev, mine) else 1
                prev = mine
                if row > MAX_AMBIGUOUS_COUNT:
                    return "row"
            else:
                if hi > MAX_AMBIGUOUS_COUNT and _ambiguous_body(sub, fold):
                    return "count"
                atoms, nullable = _first_item((op, av), fold)
                if not (nullable or _meet(prev, atoms)):
                    row = 0
            why = _hazard(sub, fold)
            if why:
                return why
            continue
        atoms, nullable = _first_item((op, av), fold)
        if row and not nullable and not _meet(prev, atoms):
            row = 0
        if op is _c.POSSESSIVE_REPEAT:
            why = _hazard(av[2], fold)
        elif op is _c.SUBPATTERN:
            why = _hazard(av[3], fold or bool(av[1] & re.IGNORECASE))
        elif op is _c.BRANCH:
            why = next((w for b in av[1] if (w := _hazard(b, fold))), None)
        elif op is _c.ATOMIC_GROUP:
            why = _hazard(av, fold)
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            why = _hazard(av[1], fold)
        elif op is _c.GROUPREF_EXISTS:
            why = _hazard(av[1], fold) or (_hazard(av[2], fold) if av[2] is not None else None)
        else:
            why = None
        if why:
            return why
    return None


_HAZARDS = {
    "nested": "it nests repeats inside an unbounded repeat (like `(a+)+`), which can take exponential time",
    "alternation": "it repeats, without bound, an alternation whose branches can start with the"
    " same character or match nothing (like `(a|aa)*`), which can take exponential time",
    "count": f"it repeats more than {MAX_AMBIGUOUS_COUNT} times content whose unbounded repeat"
    " overlaps what follows it (like `(.*a){12}`), which takes time polynomial of that degree",
    "row": f"it has more than {MAX_AMBIGUOUS_COUNT} overlapping unbounded repeats in a row (like"
    " `a*a*a*a*a*b`), which takes time polynomial of that degree",
}


@dataclasses.dataclass(frozen=True, slots=True)
class _Pattern:
    rx: re.Pattern[bytes] | re.Pattern[str]
    text: bool  # match decoded text (a non-ASCII pattern with ignore_case), else bytes
    literal: bytes | None  # a plain substring (fixed, case-sensitive, not a word match)
    # substrings one of which every matching line holds (ASCII case folded when ``fold``):
    # what `git grep -F` looks for in the committed tree; None when there is none to name
    needles: tuple[bytes, ...] | None = None
    fold: bool = False


_BREAK = object()


def _needles(parsed: Any) -> list[bytes] | None:
    """Substrings one of which every match of the parsed pattern holds (the best such set
    of the pattern's top-level sequence: its longest run of literal characters, or one of
    a group, a repeat of at least one, or an alternation every branch of which has one);
    None when the pattern requires none (``\\d+``). Case-insensitive groups and newlines
    (a match never spans lines) end a run."""
    best: list[bytes] | None = None

    def better(cand: list[bytes] | None) -> None:
        nonlocal best
        if not cand or any(not c for c in cand):
            return
        key = (min(len(c) for c in cand), -len(cand))
        if best is None or key > (min(len(c) for c in best), -len(best)):
            best = cand

    run = bytearray()
    for op, av in parsed:
        if op is _c.LITERAL and av != 10:
            run += chr(av).encode("utf-8", "surrogateescape")
            continue
        better([bytes(run)] if run else None)
        run = bytearray()
        if op is _c.SUBPATTERN:
            if not ((av[1] | av[2]) & re.IGNORECASE):
                better(_needles(av[3]))
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            if av[0] >= 1:
                better(_needles(av[2]))
        elif op is _c.ATOMIC_GROUP:
            better(_needles(av))
        elif op is _c.BRANCH:
            alts = [_needles(b) for b in av[1]]
            if all(a is not None for a in alts):
                better([x for a in alts if a is not None for x in a])
    better([bytes(run)] if run else None)
    return best


def compile_pattern(
    pattern: str, *, ignore_case: bool = False, fixed: bool = False, word: bool = False
) -> _Pattern:
    """Compile a grep pattern (Python ``re`` syntax) or refuse it with a :class:`UsageError`."""
    if not pattern:
        raise UsageError("the pattern is empty", hint="give a pattern, e.g. `avfs grep TODO`")
    if "\x00" in pattern:
        raise UsageError("the pattern holds a NUL byte")
    src = re.escape(pattern) if fixed else pattern
    if not fixed:
        try:
            parsed = _parser.parse(src, 0)
        except re.error as exc:
            raise UsageError(
                f"invalid regular expression {pattern!r}: {exc}",
                hint="patterns use Python `re` syntax; use -F to search for a fixed string",
                details={"pattern": pattern},
            ) from exc
        fold = ignore_case or bool(parsed.state.flags & re.IGNORECASE)
        why = "nested" if _nested(parsed) else _hazard(parsed, fold)
        if why:
            raise UsageError(
                f"refusing pattern {pattern!r}: {_HAZARDS[why]}",
                hint="rewrite it without the ambiguity (`(a+)+` is `a+`, `(a|aa)*` is `a*`), make"
                " the repeats possessive (`a++`, `.*+`) or atomic (`(?>...)`), or use -F for a"
                " fixed string",
                details={"pattern": pattern, "reason": why},
            )
    if word:
        src = rf"(?<!\w)(?:{src})(?!\w)"
    flags = re.MULTILINE | (re.IGNORECASE if ignore_case else 0)
    text = ignore_case and not pattern.isascii()
    try:
        rx: re.Pattern[bytes] | re.Pattern[str] = (
            re.compile(src, flags) if text else re.compile(src.encode("utf-8", "surrogateescape"), flags)
        )
    except re.error as exc:  # pragma: no cover - parse() above accepted it
        raise UsageError(f"invalid regular expression {pattern!r}: {exc}") from exc
    literal = pattern.encode("utf-8", "surrogateescape") if fixed and not ignore_case and not word else None
    needles: list[bytes] | None = None
    fold = ignore_case
    if not text:  # (Unicode case folding, a non-ASCII pattern with -i: no prefilter)
        parsed_src = _parser.parse(re.escape(pattern) if fixed else pattern, 0)
        fold = fold or bool(parsed_src.state.flags & re.IGNORECASE)
        needles = _needles(parsed_src)
        if needles is not None and fold and not all(n.isascii() for n in needles):
            needles = None  # git folds ASCII only, as a bytes pattern does: stay exact
    return _Pattern(rx, text, literal, tuple(needles) if needles else None, fold)


class _Timeout(Exception):
    pass


class _Budget:
    """Per-file time budget for regex matching (see the module docstring)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.started = 0.0
        self.active = False

    def signal_usable(self) -> bool:
        """Whether the ``SIGVTALRM`` timer can bound a match here: the main thread, and
        nobody else handles the signal."""
        return threading.current_thread() is threading.main_thread() and signal.getsignal(
            signal.SIGVTALRM
        ) in (signal.SIG_DFL, signal.SIG_IGN, None)

    def _tick(self, signum: int, frame: Any) -> None:
        if self.active and self.seconds is not None and time.process_time() - self.started > self.seconds:
            self.active = False
            raise _Timeout()

    @contextmanager
    def armed(self) -> Iterator[None]:
        if self.seconds is None or not self.signal_usable():
            yield
            return
        assert self.seconds is not None
        tick = max(0.01, min(0.1, self.seconds / 4))
        old = signal.signal(signal.SIGVTALRM, self._tick)
        signal.siginterrupt(signal.SIGVTALRM, False)  # restart system calls (libgit2 reads)
        signal.setitimer(signal.ITIMER_VIRTUAL, tick, tick)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_VIRTUAL, 0, 0)
            signal.signal(signal.SIGVTALRM, old)
            self.active = False


def _match_lines(
    pat: _Pattern, data: Any, want_lines: bool, first: bool = False
) -> tuple[int, list[tuple[int, Any]]]:
    """(matching line count, [(line number, line)] when ``want_lines``) of ``data``; with
    ``first``, stop at the first matching line.

    The whole buffer is searched at once (fast for files without a match); a match is then
    checked against its own line, since a match may span lines (``\\s``, ``[^x]``) while
    grep reports lines that hold a match of their own.
    """
    rx: Any = pat.rx
    nl = "\n" if isinstance(data, str) else b"\n"
    n = len(data)
    count = 0
    out: list[tuple[int, Any]] = []
    pos = 0  # always the start of a line
    lineno = 1
    counted_to = 0
    while pos < n:
        m = rx.search(data, pos)
        if m is None:
            break
        s = m.start()
        r = data.rfind(nl, pos, s)
        ls = r + 1 if r >= 0 else pos
        le = data.find(nl, s)
        if le < 0:
            le = n
        if m.end() > le or (s == le and m.end() > s):
            m = rx.search(data, ls, le)
        if m is not None:
            count += 1
            if want_lines:
                lineno += data.count(nl, counted_to, ls)
                counted_to = ls
                out.append((lineno, data[ls:le]))
            if first:
                break
        pos = le + 1
    return count, out


# The helper process that bounds a regex search off the main thread. It gets the pattern on
# its first line (JSON), then each file as a frame (8-byte length, bytes), and answers each
# with b"T" (over budget) or b"R", the count, the number of lines and the lines (number,
# length, bytes). It applies the same SIGVTALRM budget in its own main thread.
_HELPER_MAIN = """
import json, re, signal, struct, sys, time


class _Over(Exception):
    pass


class _Pat:
    def __init__(self, rx):
        self.rx = rx


def main():
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    head = json.loads(inp.readline())
    src = head["pattern"].encode("latin-1") if head["bytes"] else head["pattern"]
    pat = _Pat(re.compile(src, head["flags"]))
    state = {"active": False, "started": 0.0}
    seconds = head["seconds"]

    def tick(signum, frame):
        if state["active"] and time.process_time() - state["started"] > seconds:
            state["active"] = False
            raise _Over()

    signal.signal(signal.SIGVTALRM, tick)
    signal.siginterrupt(signal.SIGVTALRM, False)
    every = max(0.01, min(0.1, seconds / 4))
    signal.setitimer(signal.ITIMER_VIRTUAL, every, every)
    while True:
        size = inp.read(8)
        if len(size) < 8:
            return
        data = inp.read(struct.unpack("<Q", size)[0])
        if head["text"]:
            data = data.decode("utf-8", "surrogateescape")
        try:
            state["started"] = time.process_time()
            state["active"] = True
            count, lines = _match_lines(pat, data, head["want_lines"], head["first"])
            state["active"] = False
        except _Over:
            out.write(b"T")
            out.flush()
            continue
        parts = [b"R", struct.pack("<QQ", count, len(lines))]
        for no, line in lines:
            raw = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else bytes(line)
            parts.append(struct.pack("<QQ", no, len(raw)))
            parts.append(raw)
        out.write(b"".join(parts))
        out.flush()


main()
"""


class _Helper:
    """A regex search run in a helper process (see the module docstring): for a budget that
    holds off the main thread, where no signal can interrupt the regex engine."""

    def __init__(self, pat: _Pattern, seconds: float, want_lines: bool, first: bool) -> None:
        import inspect
        import json

        self.seconds = seconds
        try:
            source = "from __future__ import annotations\n" + inspect.getsource(_match_lines)
        except (OSError, TypeError) as exc:  # pragma: no cover - avfs ships its sources
            raise InternalError(f"cannot start the grep helper process: {exc}") from exc
        if not sys.executable:  # pragma: no cover - an embedded interpreter
            raise InternalError("cannot start the grep helper process: no Python executable")
        rx: Any = pat.rx
        src = rx.pattern
        head = {
            "pattern": src.decode("latin-1") if isinstance(src, bytes) else src,
            "bytes": isinstance(src, bytes),
            "flags": rx.flags,
            "text": pat.text,
            "seconds": seconds,
            "want_lines": want_lines,
            "first": first,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", source + _HELPER_MAIN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.out = self.proc.stdout.fileno()
        self._send(json.dumps(head, ensure_ascii=True).encode("ascii") + b"\n")

    def _send(self, data: bytes) -> None:
        try:
            self.stdin.write(data)
            self.stdin.flush()
        except OSError as exc:
            raise self._died(exc) from None

    def _died(self, why: object) -> InternalError:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        err = b""
        if self.proc.stderr is not None:
            try:
                err = self.proc.stderr.read()[-2000:]
            except (OSError, ValueError):
                pass
        self.close()
        return InternalError(
            f"the grep helper process failed ({why}): {err.decode('utf-8', 'replace').strip()}"
        )

    def _read(self, n: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.out], [], [], left)[0]:
                raise _Timeout()
            chunk = os.read(self.out, n - len(buf))
            if not chunk:
                raise self._died(f"exit status {self.proc.poll()}")
            buf += chunk
        return bytes(buf)

    def match(self, data: bytes) -> tuple[int, list[tuple[int, bytes]]]:
        """(count, lines) as :func:`_match_lines` gives them (lines as bytes); raises
        :class:`_Timeout` over budget, or past the wall-clock backstop (the helper is then
        killed)."""
        self._send(struct.pack("<Q", len(data)) + data)
        # the helper measures CPU time; the backstop is for a helper that gets none
        deadline = time.monotonic() + self.seconds * 4 + 10
        try:
            if self._read(1, deadline) == b"T":
                raise _Timeout()
            count, nlines = struct.unpack("<QQ", self._read(16, deadline))
            lines: list[tuple[int, bytes]] = []
            for _ in range(nlines):
                no, size = struct.unpack("<QQ", self._read(16, deadline))
                lines.append((no, self._read(size, deadline)))
        except _Timeout:
            self.close()
            raise
        return count, lines

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


def _decode(line: Any) -> str:
    if isinstance(line, str):
        return line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return bytes(line).decode("utf-8", "replace")


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
def _walk_key(path: str) -> list[tuple[int, str]]:
    """The order :meth:`.wsview.View.files` walks in (a directory's files by name, then its
    subdirectories, depth first), as a sort key of a path."""
    parts = path.split("/")
    return [(1, p) for p in parts[:-1]] + [(0, parts[-1])]


def _within(path: str, start: str) -> bool:
    return not start or path == start or path.startswith(start + "/")


def _tree_files(store_path: str, tree: str, starts: Sequence[str]) -> list[str]:
    """The regular files (not symlinks or submodules) of ``tree`` at or below ``starts``:
    `git ls-tree -r`, git's own listing."""
    from ..store.gitrun import run

    args = ["ls-tree", "-r", "-z", "--full-tree", tree]
    if any(starts):
        args += ["--", *(f":(literal){p}" for p in starts)]
    out = run(args, git_dir=store_path).stdout
    files: list[str] = []
    for rec in out.split(b"\0"):
        if not rec:
            continue
        meta, _, path = rec.partition(b"\t")
        if meta.startswith((b"100644", b"100755")):
            files.append(path.decode("utf-8", "surrogateescape"))
    return files


def _tree_candidates(store_path: str, tree: str, pat: _Pattern, starts: Sequence[str]) -> list[str] | None:
    """The files of ``tree`` (at or below ``starts``) that hold one of the pattern's needles,
    as `git grep -F -l` finds them in the object store (git's machinery: no file is read
    here); None when the pattern names no needle (every file is then a candidate)."""
    if not pat.needles:
        return None
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

    Binary files (a NUL in the first 8000 bytes) are skipped, as are symlinks and submodules.

    Raises:
        UsageError: an invalid or refused pattern, or a file over the time budget.
        PathNotFoundError, RevisionNotFoundError.
    """
    pat = compile_pattern(pattern, ignore_case=ignore_case, fixed=fixed, word=word)
    flt = _Globs(globs) if globs else None
    store_path = ws.store.path
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
    listed = _tree_files(store_path, tree, starts)
    cands = _tree_candidates(store_path, tree, pat, starts)
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
    # per start in the order given, a walk's order below it (as before: a path under two
    # starts is searched under each)
    ordered: list[tuple[str, View]] = []
    for st in starts:
        ordered += sorted((t for t in todo if _within(t[0], st)), key=lambda t: _walk_key(t[0]))
    found, binary = _match_files(pat, pattern, ordered, files_only, count_only, match_timeout_s)
    return GrepResult(commit, found, searched, binary)


def _match_files(
    pat: _Pattern,
    pattern: str,
    todo: Sequence[tuple[str, View]],
    files_only: bool,
    count_only: bool,
    match_timeout_s: float | None,
) -> tuple[list[GrepFile], int]:
    """Match each of ``todo`` (path, the view to read it from): (the files that matched,
    how many were skipped as binary)."""
    want_lines = not (files_only or count_only)
    budget = _Budget(None if pat.literal is not None else match_timeout_s)
    found: list[GrepFile] = []
    binary = 0
    literal = pat.literal
    path = ""
    helper: _Helper | None = None
    # asked before the timer is armed: once armed, its own handler holds SIGVTALRM (asked
    # inside, every file went to the helper process, ~0.1 s for nothing)
    in_process = budget.seconds is None or budget.signal_usable()
    try:
        with budget.armed():
            for path, view in todo:
                node = view.lookup(path)
                if node is None or node.mode not in (MODE_BLOB, MODE_EXEC):
                    continue
                data: Any = view.read_node(node)
                if data.find(b"\0", 0, BINARY_PROBE) >= 0:
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
                        helper = _Helper(pat, budget.seconds, want_lines, files_only)
                    n, lines = helper.match(data)
                else:
                    if pat.text:
                        data = data.decode("utf-8", "surrogateescape")
                    budget.started = time.process_time()
                    budget.active = True
                    n, lines = _match_lines(pat, data, want_lines, files_only)
                    budget.active = False
                if files_only:
                    if n:
                        found.append(GrepFile(path, None, []))
                    continue
                if n:
                    found.append(GrepFile(path, n, [GrepLine(no, _decode(t)) for no, t in lines]))
    except _Timeout:
        raise UsageError(
            f"pattern {pattern!r} took more than {match_timeout_s:g} s of CPU time on {path}; stopped",
            hint="the pattern backtracks too much: simplify it, make repeats possessive (`a++`),"
            " or use -F for a fixed string",
            details={"pattern": pattern, "path": path, "timeout_s": match_timeout_s},
        ) from None
    finally:
        if helper is not None:
            helper.close()
    return found, binary


# -- find ------------------------------------------------------------------------------------
_SIZE = re.compile(r"^([+-]?)(\d+)([kKmMgGcb]?)$")
_UNITS = {"": 1, "c": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


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


_TYPES = {"f": NodeKind.FILE, "d": NodeKind.DIR, "l": NodeKind.SYMLINK}


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
    return FindResult(view.commit, out)
