"""The classifier's records: one simple command while it is judged (``Part``) and what its
command line shows beside the program (``Finding``), and how a part becomes a
``CommandInfo``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from .lexer import Word
from .model import BUILTIN_CWD_OUTSIDE, Category, CommandInfo, Outcome, RuleSet


class Finding:
    """Something the command line shows beside the program: a redirection, a directory."""

    __slots__ = ("classes", "name", "outcome", "text")

    def __init__(
        self, name: str, classes: tuple[Category, ...], text: str, outcome: Outcome | None = None
    ) -> None:
        self.name = name
        self.classes = classes
        self.text = text
        self.outcome = outcome  # overrides [outcomes] (opaque code, unknown paths)


class Part:
    """One simple command while it is being classified."""

    __slots__ = ("argv", "classes", "findings", "name", "outcome", "program", "stdin_code", "text")

    def __init__(
        self,
        argv: tuple[str, ...],
        program: str,
        classes: tuple[Category, ...],
        outcome: Outcome | None,
        name: str,
        text: str,
        findings: list[Finding] | None = None,
    ) -> None:
        self.argv = argv
        self.program = program
        self.classes = classes  # of the rule, or of [defaults] unknown
        self.outcome = outcome  # the rule's override
        self.name = name  # the rule's name, "default", or a builtin
        self.text = text  # why, for the reason
        self.findings = findings if findings is not None else []
        self.stdin_code = False  # runs what arrives on its standard input as code

    def all_classes(self) -> set[Category]:
        out = set(self.classes)
        for f in self.findings:
            out.update(f.classes)
        return out

    def networked(self) -> bool:
        return Category.NETWORKED in self.all_classes()

    def finish(self, policy: RuleSet) -> CommandInfo:
        action = self.outcome
        if action is None:
            action = policy.outcome_for(self.classes) if self.classes else Outcome.ALLOW
        rule, text = self.name, self.text
        mine, base_rank = set(self.classes), action.rank
        for f in self.findings:
            o = f.outcome if f.outcome is not None else policy.outcome_for(f.classes)
            # a finding as strict that adds a class names the decision too: `echo hi >>
            # README.rst` was "mutating; rule read-only", the class the redirect's, the
            # rule echo's (trial2); it is "rule builtin:redirect" (writes to README.rst)
            if (
                o.rank > action.rank
                or (not self.classes and rule == "")
                or (o.rank == action.rank and rule == self.name and not set(f.classes) <= mine)
            ):
                action, rule, text = o, f.name, f.text
        cats = self.all_classes()
        if len(cats) > 1:
            cats.discard(Category.READ_ONLY)
        notes = [f.text for f in self.findings if f.text != text]
        if rule != self.name and action.rank == base_rank and self.classes and self.text:  # (the tie above)
            notes.insert(0, self.text)
        reason = text + "".join(f"; {n}" for n in notes)
        return CommandInfo(self.argv, self.program, tuple(sorted(cats)), action, rule, reason)


def cwd_outside(what: str) -> Finding:
    """The ``builtin:cwd-outside`` finding: ``what`` (``runs in /x``, ``works on /x``) is
    outside the workspace."""
    return Finding(BUILTIN_CWD_OUTSIDE, (Category.HOST_ESCAPE_RISK,), f"{what}, outside the workspace")


def show(argv: Sequence[str], limit: int = 80) -> str:
    text = shlex.join(argv) if argv else "(redirection)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


_DQ_SAFE = re.compile(r"[\w@%+=:,./${}-]*")


def shell_word(w: Word) -> str:
    """``w`` written so that a shell reads it back as the command line meant it: quoted as
    ``shlex.quote`` would, except that a tilde the shell expands stays unquoted
    (``~/.ssh/id_rsa``, not ``'~/.ssh/id_rsa'``, which names a directory called ``~``) and
    a parameter stays expandable (``"$HOME/.ssh"``)."""
    v = w.value
    if w.tilde and v.startswith("~"):
        prefix, slash, rest = v.partition("/")
        return prefix + slash + (shlex.quote(rest) if rest else "")
    if w.dynamic and "$" in v and _DQ_SAFE.fullmatch(v):
        return f'"{v}"'
    return shlex.quote(v)


def show_words(words: Sequence[Word], limit: int = 80) -> str:
    """:func:`show` for words as the command line has them (see :func:`shell_word`)."""
    text = " ".join(shell_word(w) for w in words) if words else "(redirection)"
    return text if len(text) <= limit else text[: limit - 1] + "…"
