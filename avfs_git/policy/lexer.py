"""The POSIX shell lexer: text to tokens (words after quote removal, operators,
redirections, here-documents), with every command substitution found and lexed once, and
bash brace expansion. ``parser`` turns the tokens into commands.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Final, TypeVar


class ParseError(Exception):
    """Text a shell would refuse. ``closer`` is what, appended, would end an open quote;
    ``index`` is the token to blame (default: where the parser stood)."""

    def __init__(
        self,
        message: str,
        pos: int,
        *,
        closer: str = "",
        opener: str = "",
        start: int | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.pos = pos
        self.closer = closer  # appended, ends what is open
        self.opener = opener  # what opened it ("'", "$(", ...), at ``start``
        self.start = start
        self.index = index


class TooComplex(Exception):
    pass


class OutOfBudget(TooComplex):
    """Classifying the command line would take more steps than one classification may."""


MAX_STEPS: Final = 200_000
"""The work one classification may do, in steps: a token lexed or parsed, 16 characters
read, a word peeled off a wrapper, a command judged. Counting steps (not time) makes the
verdict the same on every machine; the limit is far above any command a person writes."""


class Budget:
    """The steps one classification has left; every lexer, parser and the classifier spend
    from the same one, so work on text read several times (``sh -c``, salvage) counts."""

    __slots__ = ("limit", "spent")

    def __init__(self, limit: int = MAX_STEPS) -> None:
        self.limit = limit
        self.spent = 0

    def spend(self, steps: int) -> None:
        self.spent += steps
        if self.spent > self.limit:
            raise OutOfBudget(f"analysing it takes more than {self.limit} steps")


MAX_DEPTH: Final = 24  # nested $( ), sh -c, ( ) levels
_MAX_BRACES: Final = 12
_META: Final = frozenset(" \t\n;&|()<>")
_OPS: Final = (";;&", "&>>", "&&", "||", ";;", ";&", "|&", "&>", "(", ")", ";", "&", "|")
_REDIRS: Final = ("<<<", "<<-", "<<", "<>", "<&", "<", ">>", ">|", ">&", ">")
_SPECIAL_PARAMS: Final = frozenset("@*#?$!-0123456789")
_NAME_START: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS: Final = _NAME_START | frozenset("0123456789")


Sub = tuple[str, list["Tok"]]  # the source of a command substitution and its tokens


# The parser's and classifier's own records are plain slotted classes, not dataclasses:
# they are private, and creating a dataclass costs about a millisecond of import time each.


class Word:
    """One shell word after quote removal."""

    __slots__ = ("dynamic", "glob", "lead", "lead_len", "mask", "quoted", "subs", "tilde", "unknown", "value")

    def __init__(self, value: str, mask: list[bool] | None = None, quoted: bool = False) -> None:
        self.value = value  # quotes removed; expansions kept as their source text ("$HOME")
        self.mask = mask  # per char: True = unquoted literal (globs and braces count)
        self.quoted = quoted  # any quoting or escaping at all (so not a reserved word)
        self.dynamic = False  # holds a parameter, arithmetic or command expansion
        self.lead: str | None = None  # starts with an expansion: its variable ("" for $(...))
        self.lead_len = 0  # length in value of that leading expansion
        self.tilde = False
        self.glob = False
        self.unknown = False  # stands for words read from the input (xargs): paths unknown
        self.subs: list[Sub] = []

    def variant(self, value: str, mask: list[bool]) -> Word:
        """A copy with another value (one result of brace expansion)."""
        w = Word(value, mask, self.quoted)
        w.dynamic, w.lead, w.lead_len = self.dynamic, self.lead, self.lead_len
        w.tilde = bool(value) and value[0] == "~" and mask[0]
        w.glob = any(flag and ch in "*?[" for ch, flag in zip(value, mask, strict=True))
        return w

    @staticmethod
    def literal(value: str) -> Word:
        return Word(value, None, True)


class HereDoc:
    __slots__ = ("body", "delim", "op", "pos", "quoted", "strip_tabs", "subs")

    def __init__(self, op: str, pos: int) -> None:
        self.op = op
        self.pos = pos  # of the operator, in the command line
        self.strip_tabs = op == "<<-"
        self.delim: str | None = None
        self.quoted = False
        self.body = ""
        self.subs: list[Sub] = []


class Tok:
    __slots__ = ("fd", "heredoc", "kind", "pos", "text", "word")

    def __init__(self, kind: str, text: str, pos: int, word: Word | None = None, fd: str = "") -> None:
        self.kind = kind  # "w" word, "op" operator, "r" redirection, "nl" newline
        self.text = text
        self.pos = pos
        self.word = word
        self.fd = fd
        self.heredoc: HereDoc | None = None


_T = TypeVar("_T")


def _inner(lex: Callable[[], _T], pos: int, opener: str) -> _T:
    """Run a lexer over text taken out of the command line (a here-document, backquotes):
    its errors are reported at ``pos``, where that text (opened by ``opener``) starts."""
    try:
        return lex()
    except ParseError as exc:
        raise ParseError(str(exc), pos, opener=opener, start=pos if opener else None) from None


class Lexer:
    """Splits shell text into tokens, resolving quotes and finding every command
    substitution (whose tokens it keeps, lexed once)."""

    def __init__(self, text: str, start: int, depth: int, budget: Budget | None = None) -> None:
        if depth > MAX_DEPTH:
            raise TooComplex("the command is nested too deeply to classify")
        self.budget = budget if budget is not None else Budget()
        self.s = text
        self.i = start
        self.depth = depth
        self.toks: list[Tok] = []
        self.pending: list[HereDoc] = []
        self.want_delim: HereDoc | None = None

    def run(self, until_paren: bool = False, opened: int = 0, opener: str = "$(") -> int:
        """Lex to the end (or to the ``)`` closing a ``$(`` opened at ``opened``: return
        its index)."""
        s, n = self.s, len(self.s)
        level = 0
        while True:
            i = self.i
            if i >= n:
                if until_paren:
                    raise ParseError(
                        f"unterminated {opener!r} (no closing ')')",
                        i,
                        closer=")",
                        opener=opener,
                        start=opened,
                    )
                if self.want_delim is not None:
                    raise self._no_delimiter(i)
                return i
            c = s[i]
            if c == " " or c == "\t":
                self.i += 1
            elif c == "\\" and s.startswith("\\\n", i):
                self.i += 2
            elif c == "\n":
                if self.want_delim is not None:
                    raise self._no_delimiter(i)
                self.i += 1
                self._add(Tok("nl", "\n", i))
                if self.pending:
                    self._read_heredocs()
            elif c == "#":
                j = s.find("\n", i)
                self.i = n if j < 0 else j
            elif c in "<>" and s.startswith("(", i + 1):
                self._word()
            elif c in "<>" or (c == "&" and s.startswith(">", i + 1)):
                self._redir("")
            elif c in ";&|()":
                op = next(o for o in _OPS if s.startswith(o, i))
                if op == ")" and until_paren and level == 0:
                    return i
                if op == "(":
                    level += 1
                elif op == ")":
                    level -= 1
                self._add(Tok("op", op, i))
                self.i += len(op)
            else:
                self._word()

    def _add(self, tok: Tok) -> None:
        self.toks.append(tok)
        self.budget.spend(1)

    def _no_delimiter(self, i: int) -> ParseError:
        doc = self.want_delim
        assert doc is not None
        return ParseError(
            f"a here-document ({doc.op!r}) without its delimiter word", i, opener=doc.op, start=doc.pos
        )

    def _redir(self, fd: str) -> None:
        s, i = self.s, self.i
        if s.startswith("&>>", i):
            op = "&>>"
        elif s.startswith("&>", i):
            op = "&>"
        else:
            op = next(o for o in _REDIRS if s.startswith(o, i))
        tok = Tok("r", op, i - len(fd), fd=fd)
        if op in ("<<", "<<-"):
            tok.heredoc = HereDoc(op, i)
            self.pending.append(tok.heredoc)
            self.want_delim = tok.heredoc
        self._add(tok)
        self.i = i + len(op)

    def _read_heredocs(self) -> None:
        s, n = self.s, len(self.s)
        for doc in self.pending:
            body_start = self.i
            lines: list[str] = []
            while self.i < n:
                j = s.find("\n", self.i)
                end = n if j < 0 else j
                line = s[self.i : end]
                self.i = end + 1 if j >= 0 else n
                if (line.lstrip("\t") if doc.strip_tabs else line) == doc.delim:
                    break
                lines.append(line)
            doc.body = "\n".join(lines)
            if not doc.quoted and ("$" in doc.body or "`" in doc.body):
                doc.subs = _inner(Lexer(doc.body, 0, self.depth + 1, self.budget).expansions, body_start, "")
        self.pending = []

    def expansions(self) -> list[Sub]:
        """The command substitutions in text read like the inside of double quotes."""
        w = Word("")
        chars: list[str] = []
        mask: list[bool] = []
        s, n = self.s, len(self.s)
        while self.i < n:
            c = s[self.i]
            if c == "\\":
                self.i += 2
            elif c == "$":
                self._dollar(w, chars, mask)
            elif c == "`":
                self._backtick(w, chars, mask)
            else:
                self.i += 1
        return w.subs

    def _word(self) -> None:
        s, n = self.s, len(self.s)
        start = self.i
        w = Word("")
        chars: list[str] = []
        mask: list[bool] = []
        while self.i < n:
            i = self.i
            c = s[i]
            if c in "<>" and s.startswith("(", i + 1):
                sub_start = i + 2
                lexer = Lexer(s, sub_start, self.depth + 1, self.budget)
                end = lexer.run(until_paren=True, opened=i, opener=s[i : i + 2])
                w.subs.append((s[sub_start:end], lexer.toks))
                self._expansion(w, chars, mask, s[i : end + 1], "")
                self.i = end + 1
                continue
            if c in _META:
                if c in "<>" and chars and not w.quoted and all(ch.isdigit() for ch in chars):
                    self._redir("".join(chars))  # "2>": the digits are a file descriptor
                    return
                break
            if c == "\\":
                if i + 1 >= n:
                    chars.append("\\")
                    mask.append(False)
                    self.i += 1
                elif s[i + 1] == "\n":
                    self.i += 2
                else:
                    chars.append(s[i + 1])
                    mask.append(False)
                    w.quoted = True
                    self.i += 2
            elif c == "'":
                j = s.find("'", i + 1)
                if j < 0:
                    raise ParseError("unterminated single quote", i, closer="'", opener="'", start=i)
                chars.extend(s[i + 1 : j])
                mask.extend([False] * (j - i - 1))
                w.quoted = True
                self.i = j + 1
            elif c == '"':
                self.i += 1
                w.quoted = True
                self._dquote(w, chars, mask, i, '"')
            elif c == "$":
                self._dollar(w, chars, mask)
            elif c == "`":
                self._backtick(w, chars, mask)
            else:
                if c in "*?[":
                    w.glob = True
                elif c == "~" and not chars:
                    w.tilde = True
                chars.append(c)
                mask.append(True)
                self.i += 1
        w.value = "".join(chars)
        w.mask = mask
        if self.want_delim is not None:
            self.want_delim.delim = w.value
            self.want_delim.quoted = w.quoted
            self.want_delim = None
            self._add(Tok("w", w.value, start, word=w))
            return
        for word in _brace_expand(w):
            self._add(Tok("w", word.value, start, word=word))

    def _expansion(self, w: Word, chars: list[str], mask: list[bool], raw: str, var: str) -> None:
        if not chars:
            w.lead = var
            w.lead_len = len(raw)
        w.dynamic = True
        chars.extend(raw)
        mask.extend([False] * len(raw))

    def _dquote(self, w: Word, chars: list[str], mask: list[bool], start: int, opener: str) -> None:
        s, n = self.s, len(self.s)
        while True:
            if self.i >= n:
                raise ParseError("unterminated double quote", self.i, closer='"', opener=opener, start=start)
            c = s[self.i]
            if c == '"':
                self.i += 1
                return
            if c == "\\" and self.i + 1 < n and s[self.i + 1] in '$`"\\\n':
                if s[self.i + 1] != "\n":
                    chars.append(s[self.i + 1])
                    mask.append(False)
                self.i += 2
            elif c == "$":
                self._dollar(w, chars, mask)
            elif c == "`":
                self._backtick(w, chars, mask)
            else:
                chars.append(c)
                mask.append(False)
                self.i += 1

    def _dollar(self, w: Word, chars: list[str], mask: list[bool]) -> None:
        s, n, i = self.s, len(self.s), self.i
        nxt = s[i + 1] if i + 1 < n else ""
        if nxt == "(":
            arith = s.startswith("((", i + 1)
            sub_start = i + 2
            lexer = Lexer(s, sub_start, self.depth + 1, self.budget)
            end = lexer.run(until_paren=True, opened=i)
            if arith:  # $(( ... )): no command of its own, but may hold $( ) inside
                for tok in lexer.toks:
                    if tok.word is not None:
                        w.subs.extend(tok.word.subs)
            else:
                w.subs.append((s[sub_start:end], lexer.toks))
            self._expansion(w, chars, mask, s[i : end + 1], "")
            self.i = end + 1
        elif nxt == "{":
            j = self._close_brace(i)
            inner = s[i + 2 : j]
            if "$" in inner or "`" in inner:
                w.subs.extend(_inner(Lexer(inner, 0, self.depth + 1, self.budget).expansions, i, "${"))
            name = inner.lstrip("#!")
            k = 0
            while k < len(name) and name[k] in _NAME_CHARS:
                k += 1
            self._expansion(w, chars, mask, s[i : j + 1], name[:k])
            self.i = j + 1
        elif nxt == "'":
            self.i = i + 2
            w.quoted = True
            self._ansi_c(chars, mask, i)
        elif nxt == '"':
            self.i = i + 2
            w.quoted = True
            self._dquote(w, chars, mask, i, '$"')
        elif nxt and nxt in _NAME_START:
            j = i + 1
            while j < n and s[j] in _NAME_CHARS:
                j += 1
            self._expansion(w, chars, mask, s[i:j], s[i + 1 : j])
            self.i = j
        elif nxt and nxt in _SPECIAL_PARAMS:
            self._expansion(w, chars, mask, s[i : i + 2], nxt)
            self.i = i + 2
        else:
            chars.append("$")
            mask.append(True)
            self.i = i + 1

    def _close_brace(self, opened: int) -> int:
        s, n = self.s, len(self.s)
        j = opened + 2
        depth = 0
        while j < n:
            c = s[j]
            if c == "\\":
                j += 2
                continue
            if c == "'":
                k = s.find("'", j + 1)
                if k < 0:
                    break
                j = k + 1
                continue
            if c == '"':
                k = j + 1
                while k < n and s[k] != '"':
                    k += 2 if s[k] == "\\" else 1
                j = k + 1
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                if depth == 0:
                    return j
                depth -= 1
            j += 1
        raise ParseError("unterminated '${' (no closing '}')", j, closer="}", opener="${", start=opened)

    def _backtick(self, w: Word, chars: list[str], mask: list[bool]) -> None:
        s, n, i = self.s, len(self.s), self.i
        j = i + 1
        inner: list[str] = []
        while True:
            if j >= n:
                raise ParseError("unterminated backquote", i, closer="`", opener="`", start=i)
            c = s[j]
            if c == "\\" and j + 1 < n:
                inner.append(s[j + 1] if s[j + 1] in "$`\\" else s[j : j + 2])
                j += 2
                continue
            if c == "`":
                break
            inner.append(c)
            j += 1
        src = "".join(inner)
        lexer = Lexer(src, 0, self.depth + 1, self.budget)
        _inner(lexer.run, i, "`")
        w.subs.append((src, lexer.toks))
        self._expansion(w, chars, mask, s[i : j + 1], "")
        self.i = j + 1

    _C_ESCAPES: Final = MappingProxyType(
        {
            "n": "\n",
            "t": "\t",
            "r": "\r",
            "a": "\a",
            "b": "\b",
            "e": "\x1b",
            "E": "\x1b",
            "f": "\f",
            "v": "\v",
        }
    )

    def _ansi_c(self, chars: list[str], mask: list[bool], start: int) -> None:
        """$'...' with its escapes decoded, so $'\\x72m' is seen as 'rm'."""
        s, n = self.s, len(self.s)
        out: list[str] = []
        while True:
            if self.i >= n:
                raise ParseError("unterminated $'...' quote", self.i, closer="'", opener="$'", start=start)
            c = s[self.i]
            if c == "'":
                self.i += 1
                break
            if c != "\\" or self.i + 1 >= n:
                out.append(c)
                self.i += 1
                continue
            e = s[self.i + 1]
            self.i += 2
            if e in self._C_ESCAPES:
                out.append(self._C_ESCAPES[e])
            elif e in "xuU0123456789":
                width = {"x": 2, "u": 4, "U": 8}.get(e, 3)
                digits_from = self.i if e in "xuU" else self.i - 1
                base = 16 if e in "xuU" else 8
                allowed = "0123456789abcdefABCDEF" if base == 16 else "01234567"
                k = digits_from
                while k < n and k - digits_from < width and s[k] in allowed:
                    k += 1
                if k == digits_from:
                    out.append("\\" + e)
                else:
                    code = int(s[digits_from:k], base)
                    out.append(chr(code) if code < 0x110000 else "\ufffd")
                    self.i = k
            else:
                out.append(e)
        chars.extend(out)
        mask.extend([False] * len(out))


def _brace_expand(w: Word) -> list[Word]:
    """Bash brace expansion of the unquoted ``{a,b}`` in a word ({rm,-rf,/} is three words)."""
    mask = w.mask
    if mask is None or "{" not in w.value:
        return [w]
    opens = sum(1 for ch, m in zip(w.value, mask, strict=True) if m and ch == "{")
    if not opens:
        return [w]
    if opens > _MAX_BRACES:
        raise TooComplex("too many braces to expand")
    results = _expand_pairs(list(zip(w.value, mask, strict=True)))
    if len(results) == 1:
        return [w]
    out = [w.variant("".join(ch for ch, _ in pairs), [flag for _, flag in pairs]) for pairs in results]
    out[0].subs = w.subs  # substitutions run once, whatever the expansion
    return out


def _expand_pairs(pairs: list[tuple[str, bool]]) -> list[list[tuple[str, bool]]]:
    for a, (ch, unq) in enumerate(pairs):
        if not (unq and ch == "{"):
            continue
        depth = 0
        commas: list[int] = []
        for b in range(a + 1, len(pairs)):
            cb, ub = pairs[b]
            if not ub:
                continue
            if cb == "{":
                depth += 1
            elif cb == "}":
                if depth == 0:
                    if not commas:
                        break
                    bounds = [a, *commas, b]
                    out: list[list[tuple[str, bool]]] = []
                    for k in range(len(bounds) - 1):
                        variant = pairs[:a] + pairs[bounds[k] + 1 : bounds[k + 1]] + pairs[b + 1 :]
                        out.extend(_expand_pairs(variant))
                        if len(out) > 256:
                            raise TooComplex("brace expansion makes too many words")
                    return out
                depth -= 1
            elif cb == "," and depth == 0:
                commas.append(b)
    return [pairs]
