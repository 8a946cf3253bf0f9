"""grep's patterns: a pattern compiled (Python :mod:`re` syntax, matched against bytes,
UTF-8), refused when it can backtrack catastrophically, and the substrings every match
holds (its needles: what `git grep -F` looks for in the committed tree).

Catastrophic backtracking is bounded twice: here, up front, and while matching
(:mod:`.grepmatch`). Up front (:func:`compile_pattern`), these shapes are refused with a
:class:`UsageError` (possessive ``++``/``*+`` and atomic ``(?>...)`` groups never give back
what they matched, so they are not counted):

- an unbounded repeat that holds a variable-length repeat (``(a+)+``, ``(a*)*``,
  ``(\\w+\\s?)+``, ``(a{1,3})+``);
- an unbounded repeat over an alternation whose branches can start with the same
  character, or where a branch can match nothing (``(a|a)*``, ``(a|aa)*``, ``(ab|ac|a)*``);
- a counted repeat of more than :data:`MAX_AMBIGUOUS_COUNT` over content with an unbounded
  repeat that overlaps what follows it (``(.*a){12}``);
- more than :data:`MAX_AMBIGUOUS_COUNT` unbounded repeats in a row, each overlapping the
  one before (``a*a*a*a*a*b``, ``.*x.*x.*x.*x.*x``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from ..errors import UsageError
from ..records import dataclass

# more repeats than this of ambiguous content, or in an ambiguous row, are refused up front
MAX_AMBIGUOUS_COUNT = 4

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


_HAZARDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "nested": "it nests repeats inside an unbounded repeat (like `(a+)+`), which can take exponential time",
        "alternation": "it repeats, without bound, an alternation whose branches can start with the"
        " same character or match nothing (like `(a|aa)*`), which can take exponential time",
        "count": f"it repeats more than {MAX_AMBIGUOUS_COUNT} times content whose unbounded repeat"
        " overlaps what follows it (like `(.*a){12}`), which takes time polynomial of that degree",
        "row": f"it has more than {MAX_AMBIGUOUS_COUNT} overlapping unbounded repeats in a row (like"
        " `a*a*a*a*a*b`), which takes time polynomial of that degree",
    }
)


@dataclass(frozen=True, slots=True)
class Pattern:
    """A compiled grep pattern (:func:`compile_pattern`): what matching needs of it."""

    rx: re.Pattern[bytes] | re.Pattern[str]
    text: bool  # match decoded text (a non-ASCII pattern with ignore_case), else bytes
    literal: bytes | None  # a plain substring (fixed, case-sensitive, not a word match)
    # substrings one of which every matching line holds (ASCII case folded when ``fold``):
    # what `git grep -F` looks for in the committed tree; None when there is none to name
    needles: tuple[bytes, ...] | None = None
    fold: bool = False


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


# POSIX bracket classes (``[[:alpha:]]``), which `git grep` (its regex, ``-E`` and ``-P``)
# knows and Python's ``re`` does not: it read ``[[:alpha:]]+`` as the set ``[:alph`` then
# ``]+`` with a FutureWarning, and matched nothing a person meant (found in the
# thirty-third round, realdata8, on git 2.39.5's own source). ASCII, as git's in the C
# locale and as a bytes pattern's ``\w``.
_POSIX_CLASSES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "alpha": "a-zA-Z",
        "digit": "0-9",
        "alnum": "a-zA-Z0-9",
        "upper": "A-Z",
        "lower": "a-z",
        "space": " \\t\\n\\r\\f\\v",
        "blank": " \\t",
        "xdigit": "0-9A-Fa-f",
        "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
        "cntrl": "\\x00-\\x1f\\x7f",
        "print": "\\x20-\\x7e",
        "graph": "\\x21-\\x7e",
        "word": "\\w",
    }
)


def posix_classes(pattern: str) -> str:
    """``pattern`` with each POSIX class inside a bracket set (``[[:digit:]x]``) written as
    Python's ``re`` reads it (``[0-9x]``), and a ``[`` inside a set escaped (a literal
    there: Python warns it may become a nested set)."""
    if "[" not in pattern:
        return pattern
    out: list[str] = []
    i, n, in_set = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if not in_set:
            out.append(c)
            i += 1
            if c == "[":
                in_set = True
                for lead in ("^", "]"):  # (a leading `]` is a literal in both)
                    if i < n and pattern[i] == lead:
                        out.append(lead)
                        i += 1
            continue
        if c == "[":
            end = pattern.find(":]", i + 2) if pattern.startswith("[:", i) else -1
            name = pattern[i + 2 : end] if end >= 0 else ""
            if name in _POSIX_CLASSES:
                out.append(_POSIX_CLASSES[name])
                i = end + 2
            else:
                out.append("\\[")
                i += 1
            continue
        in_set = c != "]"
        out.append(c)
        i += 1
    return "".join(out)


def compile_pattern(
    pattern: str, *, ignore_case: bool = False, fixed: bool = False, word: bool = False
) -> Pattern:
    """Compile a grep pattern (Python ``re`` syntax) or refuse it with a :class:`UsageError`."""
    if not pattern:
        raise UsageError("the pattern is empty", hint="give a pattern, e.g. `avfs grep TODO`")
    if "\x00" in pattern:
        raise UsageError("the pattern holds a NUL byte")
    plain = re.escape(pattern) if fixed else posix_classes(pattern)
    src = plain
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
        parsed_src = _parser.parse(plain, 0)
        fold = fold or bool(parsed_src.state.flags & re.IGNORECASE)
        needles = _needles(parsed_src)
        if needles is not None and fold and not all(n.isascii() for n in needles):
            needles = None  # git folds ASCII only, as a bytes pattern does: stay exact
    return Pattern(rx, text, literal, tuple(needles) if needles else None, fold)
