"""The tokenizer :mod:`.scriptcode` reads a JavaScript, Perl, Ruby or PHP one-liner with:
strings (and whether they interpolate), comments, regular expressions, Perl's quote-like
operators and Ruby's ``%`` literals, backquoted commands, names, variables and
punctuation. Text it cannot tokenize (an open string or comment, a here-document) raises
``Unreadable``.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Final


class Unreadable(Exception):
    pass


# kinds: "id" (a name, or a variable: `$x`, `@x`), "str" (a literal: value, and whether it
# interpolates), "cmd" (a backquoted command), "re" (a regular expression or pattern), "num",
# "op" (punctuation)
Token = tuple[str, str, bool]
_PAIRS: Final = MappingProxyType({"(": ")", "[": "]", "{": "}", "<": ">"})
_HEREDOC: Final = re.compile(r"<<~?[\"'A-Z_]")
_CLOSE_BRACE: Final = re.compile(r"\s*\}")
_ANGLE: Final = re.compile(r"<([^<>\s;]*)>")
_NUMBER: Final = re.compile(r"[0-9][0-9A-Za-z_.]*")
_NAME: Final = re.compile(r"[A-Za-z_$][\w$]*[?!]?")
_PERL_NAME: Final = re.compile(r"[A-Za-z_]\w*(?:::\w+)*")
_VARIABLE: Final = re.compile(r"[$@%&*]+(?:\{\^?\w+\}|\w+(?:::\w+)*|::\w+)?")
_PERL_QUOTE: Final = re.compile(r"(qq|qx|qw|q|m|s|tr|y)(?=\s*[^\w\s,;=)])")
_RUBY_PERCENT: Final = re.compile(r"%([qQwWiIxrs]?)([^\w\s])")
# after these tokens a `/` starts a regular expression, not a division
_REGEX_AFTER_OPS: Final = frozenset("(,=:;!&|?{}[+-*%<>~^")
_REGEX_AFTER_WORDS: Final = frozenset(
    {"return", "typeof", "split", "grep", "map", "if", "unless", "and", "or", "not", "when", "while", "until", "x", "case", "print", "join"}
)  # fmt: skip


def _string(s: str, i: int, close: str, open_: str = "") -> tuple[str, int]:
    """The text of a string from ``i`` to its closing ``close`` (nesting ``open_``), and
    the index after it."""
    depth = 0
    j = i
    out: list[str] = []
    while j < len(s):
        c = s[j]
        if c == "\\" and j + 1 < len(s):
            out.append(s[j : j + 2])
            j += 2
            continue
        if open_ and c == open_:
            depth += 1
        elif c == close:
            if depth == 0:
                return "".join(out), j + 1
            depth -= 1
        out.append(c)
        j += 1
    raise Unreadable("a string or a quoted part does not end")


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def tokens(code: str, lang: str) -> list[Token]:
    """``code`` in ``lang`` as tokens: comments skipped, then strings, quote-like
    operators and patterns, names and numbers, and punctuation, tried in that order at
    each character. Raises ``Unreadable`` where it cannot tokenize."""
    s = code
    n = len(s)
    i = 0
    out: list[Token] = []
    while i < n:
        if s[i] in " \t\r\n":
            i += 1
            continue
        j = _comment(s, i, lang, out)
        if j is None:
            j = _quoted(s, i, lang, out)
        if j is None:
            j = _pattern(s, i, lang, out)
        if j is None:
            j = _word(s, i, lang, out)
        i = _operator(s, i, out) if j is None else j
    return out


def _regex_ok(out: list[Token]) -> bool:
    """Whether a ``/`` (perl's ``<``, ruby's ``%``) after the tokens ``out`` starts a
    pattern or a literal, not an operator."""
    if not out:
        return True
    kind, text, _ = out[-1]
    if kind == "op":
        return text[-1] in _REGEX_AFTER_OPS
    return kind == "id" and text in _REGEX_AFTER_WORDS


def _comment(s: str, i: int, lang: str, out: list[Token]) -> int | None:
    """A comment at ``i`` (``#``, ``//``, ``/* */``, ruby's ``=begin``), skipped: the
    index after it; perl's ``$#`` (a variable, not a comment) becomes a token; else None."""
    n = len(s)
    c = s[i]
    if (c == "#" and lang in ("perl", "ruby", "php")) or (s.startswith("//", i) and lang in ("js", "php")):
        if lang == "perl" and out and out[-1][1] == "$":
            out.pop()
            out.append(("id", "$#", False))
            return i + 1
        j = s.find("\n", i)
        return n if j < 0 else j
    if s.startswith("/*", i) and lang in ("js", "php"):
        j = s.find("*/", i + 2)
        if j < 0:
            raise Unreadable("a comment does not end")
        return j + 2
    if lang == "ruby" and s.startswith("=begin", i) and (i == 0 or s[i - 1] == "\n"):
        j = s.find("\n=end", i)
        if j < 0:
            raise Unreadable("a comment does not end")
        return j + 5
    return None


def _quoted(s: str, i: int, lang: str, out: list[Token]) -> int | None:
    """A string, a backquoted command, a perl quote-like operator or a ruby ``%`` literal
    at ``i``, added to ``out``: the index after it (None: none starts there). A
    here-document is ``Unreadable``."""
    c = s[i]
    if lang == "php" and s.startswith("<<<", i):
        raise Unreadable("a here-document")
    if lang == "perl" and s.startswith("<<", i) and _HEREDOC.match(s, i):
        raise Unreadable("a here-document")
    if lang == "perl" and c.isalpha():
        m = _PERL_QUOTE.match(s, i)
        if m and not (out and out[-1][1] in ("->", "{") and _CLOSE_BRACE.match(s, m.end()) is not None):
            return _perl_quote(s, m, out)
    if lang == "ruby" and c == "%":
        m = _RUBY_PERCENT.match(s, i)
        if m and (m.group(1) or _regex_ok(out)):
            kind, delim = m.group(1), m.group(2)
            body, i = _string(s, m.end(), _PAIRS.get(delim, delim), delim if delim in _PAIRS else "")
            if kind == "x":
                out.append(("cmd", body, "#{" in body))
            elif kind == "r":
                out.append(("re", body, True))
            else:
                out.append(("str", unescape(body), kind in ("", "Q", "W", "I") and "#{" in body))
            return i
    if c in "'\"`":
        body, i = _string(s, i + 1, c)
        interp = c != "'" and (
            "${" in body
            if lang == "js"
            else "#{" in body
            if lang == "ruby"
            else re.search(r"[$@]", body) is not None
        )
        if c == "`" and lang != "js":
            out.append(("cmd", body, interp))
        else:
            out.append(("str", unescape(body) if c == "'" or not interp else body, interp))
        return i
    return None


def _pattern(s: str, i: int, lang: str, out: list[Token]) -> int | None:
    """A regular expression (``/x/flags``) or a perl ``<...>`` (a glob, or a read) at
    ``i`` where one may start, added to ``out``: the index after it, or None."""
    n = len(s)
    c = s[i]
    if c == "/" and lang in ("js", "perl", "ruby") and _regex_ok(out):
        body, i = _string(s, i + 1, "/")
        while i < n and s[i].isalpha():
            i += 1
        out.append(("re", body, True))
        return i
    if lang == "perl" and c == "<" and _regex_ok(out):
        m = _ANGLE.match(s, i)
        if m:  # <*.txt>: a glob; <STDIN>, <$fh>: a read
            out.append(("re" if "*" in m.group(1) or "/" in m.group(1) else "op", m.group(1), False))
            return m.end()
    return None


def _word(s: str, i: int, lang: str, out: list[Token]) -> int | None:
    """A number, a name or a variable (``$x``, ``@x``, ``&f``) at ``i``, added to ``out``:
    the index after it, or None."""
    n = len(s)
    c = s[i]
    if c.isdigit():
        m = _NUMBER.match(s, i)
        assert m is not None
        out.append(("num", m.group(0), False))
        return m.end()
    if c.isalpha() or c == "_" or (c == "$" and lang == "js"):
        m = (_PERL_NAME if lang == "perl" else _NAME).match(s, i)
        assert m is not None
        word = m.group(0)
        if lang == "ruby" and word[-1] in "?!" and s.startswith("=", m.end()):
            word = word[:-1]
        out.append(("id", word, False))
        return i + len(word)
    if (
        c in "$@%&*"
        and lang in ("perl", "php", "ruby")
        and i + 1 < n
        and (s[i + 1].isalnum() or s[i + 1] in "_{:")
    ):
        m = _VARIABLE.match(s, i)
        assert m is not None
        text = m.group(0)
        if text in ("&", "*", "%", "@", "$"):
            out.append(("op", text, False))
            return i + 1
        out.append(("id", text, False))
        return i + len(text)
    return None


def _operator(s: str, i: int, out: list[Token]) -> int:
    """The punctuation at ``i`` (two characters where they make one operator), added to
    ``out``: the index after it."""
    for op in ("->", "=>", "::", "&&", "||", "==", "!=", "<=", ">=", "**"):
        if s.startswith(op, i):
            out.append(("op", op, False))
            return i + len(op)
    out.append(("op", s[i], False))
    return i + 1


def _perl_quote(s: str, m: re.Match[str], out: list[Token]) -> int:
    """A Perl quote-like operator (``q() qq{} qw// qx[] m// s/// tr/// y///``)."""
    op = m.group(1)
    i = m.end()
    while i < len(s) and s[i] in " \t\n":
        i += 1
    if i >= len(s):
        raise Unreadable("a quote-like operator does not end")
    d = s[i]
    close = _PAIRS.get(d, d)
    nest = d if d in _PAIRS else ""
    body, i = _string(s, i + 1, close, nest)
    second = ""
    if op in ("s", "tr", "y"):
        if nest:
            while i < len(s) and s[i] in " \t\n":
                i += 1
            if i >= len(s):
                raise Unreadable("a substitution does not end")
            d2 = s[i]
            second, i = _string(s, i + 1, _PAIRS.get(d2, d2), d2 if d2 in _PAIRS else "")
        else:
            second, i = _string(s, i, close)
    flags_start = i
    while i < len(s) and s[i].isalpha():
        i += 1
    flags = s[flags_start:i]
    if op == "qx":
        out.append(("cmd", body, d != "'" and re.search(r"[$@]", body) is not None))
    elif op in ("q", "qq", "qw"):
        interp = op == "qq" and re.search(r"[$@]", body) is not None
        if op == "qw":
            out.append(("op", "(", False))
            for k, w in enumerate(body.split()):
                if k:
                    out.append(("op", ",", False))
                out.append(("str", w, False))
            out.append(("op", ")", False))
        else:
            out.append(("str", body, interp))
    else:
        out.append(("re", body, True))
        if op == "s" and "e" in flags:
            # the replacement is code: read it as such
            out.append(("op", ";", False))
            out.extend(tokens(second, "perl"))
            out.append(("op", ";", False))
    return i
