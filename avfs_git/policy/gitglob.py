"""git's bracket expressions (``[a-z]``, ``[!...]``, ``[[:upper:]]``, ``[\\]]``) as git's
``wildmatch.c`` reads them, for the path policies' patterns (:mod:`.pathrules`).

The ``pathspec`` package translates the rest of a gitignore pattern as git does, but copies
a bracket expression into a Python regex nearly as written, which git's own wildmatch cases
(git's ``t/t3070-wildmatch.sh``) show is not git's reading (the twenty-seventh round,
realdata2: 25 of its 169 cases that make a path, against ``git check-ignore``): no
character class (``[[:upper:]]`` matched nothing), ``\\`` taken as a literal where git
escapes the next character (``[\\]]``, ``[\\1-\\3]``), a negated set matching ``/`` (``foo[^a-z]bar``
held ``foo/bar``), and malformed sets git never matches (``[[::]ab]``) matching. Here each
bracket expression of a pattern is parsed as ``dowild`` parses it (byte for byte the same
set) and handed to pathspec as a placeholder character that is then replaced in its regex
by the set (:func:`placeholders`, :func:`fill`).

git matches bytes: ``?`` is one byte, ``[é]`` either byte of its UTF-8 form. Patterns and
paths are matched here as their UTF-8 bytes, one character each (:func:`as_bytes`: Latin-1
of the bytes), so that a name that is not ASCII is held exactly where git's ``?``, ``*``
and sets hold it (pathspec alone matched ``x?`` to ``xé``, which git does not).
"""

from __future__ import annotations

import re
from typing import Final

# git's character classes (wildmatch.c on git's own ctype table, sane_ctype: ASCII only;
# its isspace is " \t\n\r")
_SPACE: Final = frozenset(map(ord, " \t\n\r"))
_CLASSES: Final[dict[str, frozenset[int]]] = {
    "alnum": frozenset(c for c in range(128) if chr(c).isalnum()),
    "alpha": frozenset(c for c in range(128) if chr(c).isalpha()),
    "blank": frozenset(map(ord, " \t")),
    "cntrl": frozenset((*range(32), 127)),
    "digit": frozenset(range(48, 58)),
    "graph": frozenset(range(33, 127)),
    "lower": frozenset(range(97, 123)),
    "print": frozenset(range(32, 127)),
    "punct": frozenset(c for c in range(33, 127) if not chr(c).isalnum()),
    "space": _SPACE,
    "upper": frozenset(range(65, 91)),
    "xdigit": frozenset(map(ord, "0123456789abcdefABCDEF")),
}
_SLASH: Final = ord("/")
# placeholders for pathspec: private-use code points, which it copies into its regex as
# they are (re.escape leaves them); one a bracket expression, none the pattern holds itself
_FIRST_PLACEHOLDER: Final = 0xE000


def as_bytes(text: str) -> str:
    """``text``'s UTF-8 bytes (file names' undecodable bytes as they were), one character
    a byte: what git's wildmatch compares."""
    return text if text.isascii() else text.encode("utf-8", "surrogateescape").decode("latin-1")


def bracket(pattern: str, start: int) -> tuple[str | None, int]:
    """The bracket expression at ``pattern[start]`` (a ``[``) as a Python regex class and
    the index past its ``]``; the class is None where git's wildmatch gives up on the whole
    pattern (``WM_ABORT_ALL``: no closing ``]``, an unknown ``[:class:]``, a ``\\`` at
    the end): git's pattern then matches nothing."""
    i = start + 1
    n = len(pattern)
    negated = i < n and pattern[i] in "!^"
    if negated:
        i += 1
    chars: set[int] = set()
    prev: int | None = None
    first = True
    while True:
        if i >= n:
            return None, n
        c = pattern[i]
        if c == "]" and not first:
            break
        first = False
        if c == "\\":
            i += 1
            if i >= n:
                return None, n
            chars.add(ord(pattern[i]))
            prev = ord(pattern[i])
        elif c == "-" and prev is not None and i + 1 < n and pattern[i + 1] != "]":
            i += 1
            hi = pattern[i]
            if hi == "\\":
                i += 1
                if i >= n:
                    return None, n
                hi = pattern[i]
            chars.update(range(prev, ord(hi) + 1))
            prev = None
        elif c == "[" and i + 1 < n and pattern[i + 1] == ":":
            end = pattern.find("]", i + 2)
            if end < 0:
                return None, n
            if end - (i + 2) < 1 or pattern[end - 1] != ":":
                chars.add(ord("["))  # no ":]": a plain '['
                prev = ord("[")
            else:
                members = _CLASSES.get(pattern[i + 2 : end - 1])
                if members is None:
                    return None, n
                chars.update(members)
                prev = None
                i = end
        else:
            chars.add(ord(c))
            prev = ord(c)
        i += 1
    # a set never matches '/' (wildmatch with WM_PATHNAME, as for every ignore pattern)
    if negated:
        chars.add(_SLASH)
    else:
        chars.discard(_SLASH)
        if not chars:
            return "(?!)", i + 1
    return "[" + ("^" if negated else "") + _ranges(chars) + "]", i + 1


def _ranges(chars: set[int]) -> str:
    out = []
    run: list[int] = []
    for c in sorted(chars):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(_run(run))
        run = [c]
    if run:
        out.append(_run(run))
    return "".join(out)


def _run(run: list[int]) -> str:
    lo, hi = f"\\U{run[0]:08x}", f"\\U{run[-1]:08x}"
    return lo if len(run) == 1 else f"{lo}-{hi}"


def placeholders(pattern: str) -> tuple[str, dict[str, str]] | None:
    """``pattern`` with each bracket expression replaced by a placeholder character, and
    each placeholder's regex class (:func:`bracket`); None where git's pattern matches
    nothing. Characters escaped by ``\\`` are kept as written (pathspec reads them)."""
    taken = {ord(c) for c in pattern}
    out: list[str] = []
    classes: dict[str, str] = {}
    code = _FIRST_PLACEHOLDER
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if c != "[":
            out.append(c)
            i += 1
            continue
        regex, i = bracket(pattern, i)
        if regex is None:
            return None
        while code in taken:
            code += 1
        mark = chr(code)
        code += 1
        classes[mark] = regex
        out.append(mark)
    return "".join(out), classes


def fill(regex: str, classes: dict[str, str]) -> str:
    """pathspec's ``regex`` of a pattern made by :func:`placeholders`, each placeholder
    replaced by its class."""
    for mark, cls in classes.items():
        regex = regex.replace(mark, cls)
    return regex


def segment(glob: str) -> re.Pattern[str] | None:
    """One path component's glob (no ``/``) as git's wildmatch reads it (``*``, ``?``,
    ``\\x``, bracket expressions), anchored at both ends; None where it matches nothing."""
    parts = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            parts.append("[^/]*")
        elif c == "?":
            parts.append("[^/]")
        elif c == "\\" and i + 1 < n:
            i += 1
            parts.append(re.escape(glob[i]))
        elif c == "[":
            cls, i = bracket(glob, i)
            if cls is None:
                return None
            parts.append(cls)
            continue
        else:
            parts.append(re.escape(c))
        i += 1
    return re.compile("".join(parts) + r"\Z", re.DOTALL)
