"""What a policy is made of and what it answers: the classes and outcomes, a validated
rule, the decision on a command and on each simple command in it, and the error a broken
policy file raises. Plain data; building a policy is ``config``, judging a command is
``classify``.
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
import functools
import re
from collections.abc import Iterable
from typing import Any, Final, Protocol

from ..core.records import dataclass


class Category(enum.StrEnum):
    """What a command does (a fact, not a verdict)."""

    READ_ONLY = "read_only"
    MUTATING = "mutating"
    DESTRUCTIVE = "destructive"
    NETWORKED = "networked"
    HOST_ESCAPE_RISK = "host_escape_risk"


class Outcome(enum.StrEnum):
    """What avfs does about a command, from the most to the least permissive."""

    ALLOW = "allow"
    ALLOW_WITH_CHECKPOINT = "allow_with_checkpoint"
    REQUIRE_APPROVAL = "require_approval"
    DENY = "deny"

    @property
    def rank(self) -> int:
        """0 (allow) to 3 (deny): a larger rank is stricter."""
        return _RANK[self]


_RANK: Final = {
    Outcome.ALLOW: 0,
    Outcome.ALLOW_WITH_CHECKPOINT: 1,
    Outcome.REQUIRE_APPROVAL: 2,
    Outcome.DENY: 3,
}


def strictest(outcomes: Iterable[Outcome]) -> Outcome:
    """The strictest of ``outcomes`` (``allow`` for none)."""
    best = Outcome.ALLOW
    for o in outcomes:
        if _RANK[o] > _RANK[best]:
            best = o
    return best


DEFAULT_RULE: Final = "default"
"""The ``rule`` of a decision made by ``[defaults] unknown`` (no rule matched)."""

# Findings that are not rules of a policy file: their names are reserved.
BUILTIN_UNPARSABLE: Final = "builtin:unparsable"
BUILTIN_TOO_COMPLEX: Final = "builtin:too-complex"
"""The ``rule`` of a decision on a command line too long or complex to analyse within the
classifier's budget: ``require_approval`` (or the stricter ``[defaults] unparsable``) for
``proxy exec``; the agent hooks deny it, since no person reads a 240 KB command."""
BUILTIN_REDIRECT: Final = "builtin:redirect"
BUILTIN_REDIRECT_OUTSIDE: Final = "builtin:redirect-outside"
BUILTIN_CWD_OUTSIDE: Final = "builtin:cwd-outside"
BUILTIN_REMOTE_CODE: Final = "builtin:remote-code"
BUILTIN_OPAQUE: Final = "builtin:opaque"
BUILTIN_UNKNOWN_PATHS: Final = "builtin:unknown-paths"
BUILTIN_AVFS_ITSELF: Final = "builtin:avfs-itself"
BUILTIN_SECRET_OUTSIDE: Final = "builtin:secret-outside"
BUILTIN_INLINE_CODE: Final = "builtin:inline-code"
BUILTIN_GIT_CODE: Final = "builtin:git-runs-code"
"""The ``rule`` of a git command told to run a program of the command line's choosing
(``--upload-pack``, ``-c core.sshCommand``, ``ext::``, ``GIT_SSH_COMMAND=``...): at least
``require_approval``, and never the host's network, even approved (``proxy/confine.py``)."""
NO_NETWORK_RULES: Final = frozenset({BUILTIN_GIT_CODE})
"""Rules whose commands never get a network, whatever else the command line holds."""

POLICY_FILE: Final = "policy.toml"
VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``[[rules]]`` entry of a policy file, validated.

    Every condition that is set must hold for the rule to match (see ``docs/policy.md``).
    """

    name: str
    program: tuple[str, ...]
    classes: tuple[Category, ...]
    outcome: Outcome | None = None
    subcommand: tuple[str, ...] = ()
    args_any: tuple[str, ...] = ()
    args_all: tuple[str, ...] = ()
    args_none: tuple[str, ...] = ()
    args_regex: str | None = None
    outside_paths: str | None = None  # "any" | "last"
    description: str | None = None
    source: str = ""
    # program split into exact names (a set lookup) and globs, once
    _names: frozenset[str] = dataclasses.field(init=False, repr=False, compare=False)
    _globs: tuple[str, ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        globs = tuple(p for p in self.program if any(ch in p for ch in "*?["))
        object.__setattr__(self, "_names", frozenset(p for p in self.program if p not in globs))
        object.__setattr__(self, "_globs", globs)

    def matches_program(self, name: str) -> bool:
        """Whether ``name`` (a program's base name) is one of ``program``."""
        return name in self._names or (bool(self._globs) and glob_re(self._globs).match(name) is not None)

    def to_dict(self) -> dict[str, Any]:
        """The rule as ``avfs policy show`` prints it (only the keys that are set)."""
        out: dict[str, Any] = {"name": self.name, "program": list(self.program)}
        for key in ("subcommand", "args_any", "args_all", "args_none"):
            value: tuple[str, ...] = getattr(self, key)
            if value:
                out[key] = list(value)
        if self.args_regex is not None:
            out["args_regex"] = self.args_regex
        if self.outside_paths is not None:
            out["outside_paths"] = self.outside_paths
        out["classes"] = [c.value for c in self.classes]
        if self.outcome is not None:
            out["outcome"] = self.outcome.value
        if self.description is not None:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class CommandInfo:
    """One simple command found in a request, and how the policy judged it.

    ``program`` is the name rules match (``rm`` for ``/usr/bin/rm``; ``""`` for a command
    made only of redirections; ``"<unparsable>"`` for text that could not be parsed).
    """

    argv: tuple[str, ...]
    program: str
    categories: tuple[Category, ...]
    action: Outcome
    rule: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "argv": list(self.argv),
            "program": self.program,
            "categories": [c.value for c in self.categories],
            "action": self.action.value,
            "rule": self.rule,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one request: the strictest of its commands decides.

    Attributes:
        action: what to do.
        categories: every class found in the request, sorted (``read_only`` only when
            nothing else was found).
        reason: one human sentence naming the deciding command and why.
        rule: the name of the deciding rule, ``"default"`` (no rule matched) or a
            ``builtin:`` finding (a redirection, a working directory or remote code).
        commands: every simple command found, in the order they appear.
    """

    action: Outcome
    categories: tuple[Category, ...]
    reason: str
    rule: str
    commands: tuple[CommandInfo, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The ``decision`` object of the proxy envelope (plus the ``commands`` found)."""
        return {
            "action": self.action.value,
            "categories": [c.value for c in self.categories],
            "reason": self.reason,
            "rule": self.rule,
            "commands": [c.to_dict() for c in self.commands],
        }


class RuleSet(Protocol):
    """What classification reads of a policy (:class:`~avfs_git.policy.Policy` is one)."""

    @property
    def rules(self) -> tuple[Rule, ...]: ...

    @property
    def unknown(self) -> tuple[Category, ...]: ...

    @property
    def unparsable(self) -> Outcome: ...

    def outcome_for(self, categories: Iterable[Category]) -> Outcome: ...


@functools.lru_cache(maxsize=1024)
def glob_re(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(fnmatch.translate(p) for p in patterns))
