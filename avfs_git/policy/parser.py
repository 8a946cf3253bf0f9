"""The POSIX shell grammar: tokens to pipelines of simple commands and groups (compound
commands flattened), and best-effort readings of text a shell would refuse.
"""

from __future__ import annotations

import re
from typing import Final

from .lexer import MAX_DEPTH, Budget, HereDoc, Lexer, OutOfBudget, ParseError, Tok, TooComplex, Word

ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")


_KEYWORDS: Final = frozenset(
    {"{", "}", "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "coproc"}
    | {"for", "select", "case", "esac", "[[", "function", "in"}
)


class Redir:
    __slots__ = ("fd", "heredoc", "op", "target")

    def __init__(self, op: str, fd: str, target: Word | None, heredoc: HereDoc | None) -> None:
        self.op = op
        self.fd = fd
        self.target = target
        self.heredoc = heredoc


class Simple:
    __slots__ = ("assigns", "data", "redirs", "words")

    def __init__(self) -> None:
        self.assigns: list[Word] = []
        self.words: list[Word] = []
        self.redirs: list[Redir] = []
        self.data: list[Word] = []  # words that are not a command: for-lists, case words, [[ ]]


class Group:
    __slots__ = ("body", "redirs", "subshell")

    def __init__(self, body: list[Pipeline], redirs: list[Redir], subshell: bool) -> None:
        self.body = body
        self.redirs = redirs
        self.subshell = subshell


class Pipeline:
    __slots__ = ("stages",)

    def __init__(self, stages: list[Simple | Group]) -> None:
        self.stages = stages


class Parser:
    """Tokens to pipelines of simple commands and groups. Compound commands (if, while,
    for, case, { }) are flattened: their parts are classified as if they all run."""

    def __init__(self, toks: list[Tok], end: int) -> None:
        self.t = toks
        self.k = 0
        self.end = end
        self.nest = 0

    def parse(self) -> list[Pipeline]:
        body = self.list_(frozenset(), frozenset())
        tok = self.peek()
        if tok is not None:
            raise ParseError(f"unexpected {tok.text!r}", tok.pos)
        return body

    def peek(self, off: int = 0) -> Tok | None:
        k = self.k + off
        return self.t[k] if k < len(self.t) else None

    def pos(self) -> int:
        tok = self.peek()
        return tok.pos if tok is not None else self.end

    @staticmethod
    def is_kw(tok: Tok | None, words: frozenset[str] = _KEYWORDS) -> bool:
        return (
            tok is not None
            and tok.kind == "w"
            and tok.word is not None
            and not tok.word.quoted
            and tok.text in words
        )

    @staticmethod
    def is_op(tok: Tok | None, *ops: str) -> bool:
        return tok is not None and tok.kind == "op" and tok.text in ops

    def skip(self, *, seps: bool) -> None:
        while True:
            tok = self.peek()
            if tok is None:
                return
            if tok.kind == "nl" or (seps and self.is_op(tok, ";", "&")):
                self.k += 1
            else:
                return

    def list_(self, stop_ops: frozenset[str], stop_words: frozenset[str]) -> list[Pipeline]:
        out: list[Pipeline] = []
        while True:
            self.skip(seps=True)
            tok = self.peek()
            if tok is None or (tok.kind == "op" and tok.text in stop_ops) or self.is_kw(tok, stop_words):
                return out
            if tok.kind == "op" and tok.text != "(":
                raise ParseError(f"unexpected {tok.text!r}", tok.pos)
            out.append(self.pipeline())
            tok = self.peek()
            if self.is_op(tok, "&&", "||"):
                self.k += 1
                self.skip(seps=False)
                nxt = self.peek()
                if nxt is None or (nxt.kind == "op" and nxt.text != "("):
                    raise ParseError(f"a command must follow {tok.text!r}" if tok else "", self.pos())
                continue
            if tok is None or tok.kind == "nl" or self.is_op(tok, ";", "&"):
                continue
            if (tok.kind == "op" and tok.text in stop_ops) or self.is_kw(tok, stop_words):
                return out
            raise ParseError(f"unexpected {tok.text!r}", tok.pos)

    def pipeline(self) -> Pipeline:
        stages = [self.stage()]
        while self.is_op(self.peek(), "|", "|&"):
            self.k += 1
            self.skip(seps=False)
            nxt = self.peek()
            if nxt is None or (nxt.kind == "op" and nxt.text != "("):
                raise ParseError("a command must follow '|'", self.pos())
            stages.append(self.stage())
        return Pipeline(stages)

    def group(self) -> Group:
        opened = self.k
        self.k += 1
        self.nest += 1
        if self.nest > MAX_DEPTH:
            raise TooComplex("the command is nested too deeply to classify")
        body = self.list_(frozenset({")"}), frozenset())
        if not self.is_op(self.peek(), ")"):
            raise ParseError("'(' without its ')'", self.pos(), index=opened)
        self.k += 1
        self.nest -= 1
        return Group(body, self.redirs(), subshell=True)

    def redirs(self) -> list[Redir]:
        out = []
        while (tok := self.peek()) is not None and tok.kind == "r":
            self.k += 1
            out.append(self.redir(tok))
        return out

    def redir(self, tok: Tok) -> Redir:
        target = self.peek()
        if target is None or target.kind != "w":
            raise ParseError(f"{tok.text!r} without a file name", tok.pos, index=self.k - 1)
        self.k += 1
        return Redir(tok.text, tok.fd, target.word, tok.heredoc)

    def stage(self) -> Simple | Group:
        if self.is_op(self.peek(), "("):
            return self.group()
        simple = Simple()
        consumed = False
        while True:
            tok = self.peek()
            if tok is None or tok.kind == "nl":
                break
            if tok.kind == "op":
                if tok.text == "(" and not (simple.words or simple.assigns or simple.redirs or simple.data):
                    return self.group()  # after a keyword: `if (…)`, `! (…)`
                if tok.text == "(":
                    raise ParseError("unexpected '('", tok.pos)
                break
            consumed = True
            if tok.kind == "r":
                self.k += 1
                simple.redirs.append(self.redir(tok))
                continue
            word = tok.word
            assert word is not None
            if not simple.words and not simple.assigns and self.is_kw(tok):
                self.k += 1
                self.keyword(tok.text, simple)
                if tok.text == "case":
                    return self.case(simple)
                continue
            self.k += 1
            if not simple.words and is_assignment(word):
                simple.assigns.append(word)
                continue
            simple.words.append(word)
            if len(simple.words) == 1 and self.is_op(self.peek(), "(") and self.is_op(self.peek(1), ")"):
                self.k += 2  # `name() body`: a function definition; its body is classified
                simple.words.clear()
        if not consumed:
            raise ParseError("a command is missing", self.pos())
        return simple

    def keyword(self, kw: str, simple: Simple) -> None:
        at = self.k - 1  # the keyword's own token
        if kw in ("for", "select"):
            while (tok := self.peek()) is not None and not self.is_kw(tok, frozenset({"do"})):
                if tok.word is not None:
                    simple.data.append(tok.word)
                self.k += 1
            if tok is None:
                raise ParseError(f"'{kw}' without 'do'", self.end, index=at)
        elif kw == "[[":
            while (tok := self.peek()) is not None:
                self.k += 1
                if self.is_kw(tok, frozenset({"]]"})) or (
                    tok.word is not None and not tok.word.quoted and tok.text == "]]"
                ):
                    return
                if tok.word is not None:
                    simple.data.append(tok.word)
            raise ParseError("'[[' without ']]'", self.end, index=at)
        elif kw == "function":
            tok = self.peek()
            if tok is not None and tok.kind == "w":
                self.k += 1
            if self.is_op(self.peek(), "(") and self.is_op(self.peek(1), ")"):
                self.k += 2
        elif kw == "in" or kw == "esac":
            raise ParseError(f"unexpected {kw!r}", self.pos(), index=at)

    def case(self, simple: Simple) -> Group:
        at = self.k - 1
        while (tok := self.peek()) is not None and not self.is_kw(tok, frozenset({"in"})):
            if tok.kind != "w" and tok.kind != "nl":
                raise ParseError("'case' without 'in'", tok.pos)
            if tok.word is not None:
                simple.data.append(tok.word)
            self.k += 1
        if tok is None:
            raise ParseError("'case' without 'in'", self.end, index=at)
        self.k += 1
        body: list[Pipeline] = [Pipeline([simple])]
        while True:
            self.skip(seps=False)
            tok = self.peek()
            if tok is None:
                raise ParseError("'case' without 'esac'", self.end, index=at)
            if self.is_kw(tok, frozenset({"esac"})):
                self.k += 1
                break
            if self.is_op(tok, "("):
                self.k += 1
            while (tok := self.peek()) is not None and not self.is_op(tok, ")"):
                if tok.word is not None:
                    simple.data.append(tok.word)
                elif not self.is_op(tok, "|"):
                    raise ParseError("a 'case' pattern without ')'", tok.pos, index=at)
                self.k += 1
            if tok is None:
                raise ParseError("a 'case' pattern without ')'", self.end, index=at)
            self.k += 1
            body.extend(self.list_(frozenset({";;", ";&", ";;&"}), frozenset({"esac"})))
            if self.is_op(self.peek(), ";;", ";&", ";;&"):
                self.k += 1
        return Group(body, self.redirs(), subshell=False)


def is_assignment(w: Word) -> bool:
    m = ASSIGN.match(w.value)
    return m is not None and w.mask is not None and all(w.mask[: m.end()])


def parse(text: str, depth: int, budget: Budget | None = None) -> list[Pipeline]:
    lexer = Lexer(text, 0, depth, budget)
    lexer.budget.spend(len(text) // 16)
    lexer.run()
    lexer.budget.spend(len(lexer.toks))
    return Parser(lexer.toks, len(text)).parse()


_MAX_READINGS: Final = 64
_NAIVE_STRIP: Final = r"<<<|<<-?|[\\'\"`$#(){}]"  # only for text that does not parse: compiled on use


def salvage(
    text: str, toks: list[Tok] | None, depth: int, budget: Budget | None = None
) -> list[list[Pipeline]]:
    """Best-effort readings of text a shell would refuse. An open quote is read three
    ways (closed at the end, its opening mark dropped, the text cut before it); the parser
    then drops the tokens it stumbles on. The caller keeps the strictest reading, so adding
    text to a broken command line never makes its verdict laxer."""
    readings: list[list[Tok]] = []
    if budget is None:
        budget = Budget()
    # the naive reading: no quotes, expansions, groups, here-documents or comments, so
    # every command written after a separator is seen whatever is left open before it
    budget.spend(len(text) // 16)
    naive = Lexer(re.sub(_NAIVE_STRIP, " ", text), 0, depth, budget)
    try:
        naive.run()
        readings.append(naive.toks)
    except ParseError:  # nothing is left that could open or close; kept as a guard
        pass
    if toks is not None:
        readings.append(toks)
    else:
        left = [_MAX_READINGS]

        def read(t: str, level: int) -> None:
            if left[0] <= 0:
                return
            left[0] -= 1
            budget.spend(len(t) // 16)
            lexer = Lexer(t, 0, depth, budget)
            try:
                lexer.run()
            except OutOfBudget:
                raise
            except TooComplex:
                return
            except ParseError as exc:
                if level >= 6:
                    return
                if exc.closer:
                    read(t + exc.closer, level + 1)
                if exc.start is not None:
                    read(t[: exc.start] + t[exc.start + len(exc.opener) :], level + 1)
                    read(t[: exc.start], level + 1)
                elif 0 < exc.pos < len(t):
                    read(t[: exc.pos], level + 1)
                return
            readings.append(lexer.toks)

        read(text, 0)
    out = []
    for reading in readings:
        body = _parse_dropping(list(reading), len(text), budget)
        if body is not None:
            out.append(body)
    return out


def _parse_dropping(toks: list[Tok], end: int, budget: Budget) -> list[Pipeline] | None:
    for _ in range(32):
        budget.spend(len(toks))
        parser = Parser(toks, end)
        try:
            return parser.parse()
        except ParseError as exc:
            if not toks:
                return None
            blame = exc.index if exc.index is not None else parser.k
            del toks[min(blame, len(toks) - 1)]
        except OutOfBudget:
            raise
        except TooComplex:
            return None
    return None
