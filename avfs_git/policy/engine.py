"""The effective policy, :class:`Policy`: built from the shipped default and the home and
vault files (``config``), and asked about a command (``classify``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from ..core.errors import PolicyError, UsageError
from ..core.records import dataclass
from .classify import Classifier
from .config import Layer, combine, parse_layer, read_policy_file
from .lexer import OutOfBudget, TooComplex, Word
from .model import (
    BUILTIN_TOO_COMPLEX,
    BUILTIN_UNPARSABLE,
    DEFAULT_RULE,
    POLICY_FILE,
    VERSION,
    Category,
    CommandInfo,
    Decision,
    Outcome,
    Rule,
    strictest,
)
from .parts import Part
from .pathrules import PathRule, PathRules, fork_rules

_MAX_TEXT: Final = 1_000_000  # characters of a command line


@dataclass(frozen=True, slots=True)
class Policy:
    """An effective policy: the rules in the order they are tried, and the settings.

    Build one with :meth:`load` (home and vault files over the shipped default),
    :meth:`from_text` or :meth:`default`.
    """

    rules: tuple[Rule, ...]
    unknown: tuple[Category, ...]
    unparsable: Outcome
    outcomes: Mapping[Category, Outcome]
    timeout_ms: int
    max_output_bytes: int
    sources: tuple[str, ...]
    hash: str = ""
    # what a confined command not classified `networked` gets: "none" (a network namespace
    # of its own), "host", or "filtered" (only the hosts of network_allow, through avfs's
    # filtering proxy); one classified networked that the policy lets run gets the host's,
    # or the filtered network when network_allow names hosts
    network: str = "none"
    # the hosts a filtered network reaches ("pypi.org", "*.pythonhosted.org", "127.0.0.1:8080")
    network_allow: tuple[str, ...] = ()
    # the per-vault caches a confined command gets, read-write (pip, npm, cargo)
    caches: tuple[str, ...] = ()
    # host paths a confined command also sees, read-only (tools installed under a home:
    # ~/.pyenv, ~/.nvm); ~/ is the caller's home
    readable: tuple[str, ...] = ()
    # where bubblewrap cannot run: "bwrap" (a confined command is refused) or "namespace"
    # (proxy/isolate.py's hand-made hidden view runs it: weaker, the host's network)
    confine: str = "bwrap"
    # [paths] of every layer, lowest first (home then vault: one gitignore list per kind)
    paths: tuple[PathRule, ...] = ()
    # [forks."PAT".paths]: (fork pattern, its rules), lowest layer first
    fork_paths: tuple[tuple[str, tuple[PathRule, ...]], ...] = ()

    def __hash__(self) -> int:
        return hash(self.hash)

    # -- building

    @classmethod
    def default(cls, cache_dir: str | None = None) -> Policy:
        """The policy that ships with avfs (``avfs_git/policy/default_policy.toml``); its
        parsed form is cached in ``cache_dir`` (``home.settings.cache_dir``; None: none)."""
        return _default_policy(cache_dir)

    @classmethod
    def load(cls, home_dir: str, vault_dir: str | None = None, *, cache_dir: str | None = None) -> Policy:
        """The effective policy for a home and (optionally) one vault; ``cache_dir``: where
        the shipped default's parsed form is cached (``home.settings.cache_dir``; None: none).

        Reads ``<home_dir>/policy.toml`` and ``<vault_dir>/avfs/policy.toml`` when they
        exist. Their rules are tried vault first, then home, then the shipped default's;
        their ``[defaults]`` and ``[outcomes]`` keys override the layers below them. A file
        with ``inherit = false`` drops the rules of every layer below it.

        Raises:
            PolicyError: a file is not a valid policy (names the file, line and problem).
        """
        candidates = []
        if vault_dir is not None:
            candidates.append(os.path.join(vault_dir, "avfs", POLICY_FILE))
        candidates.append(os.path.join(home_dir, POLICY_FILE))
        # the files are read every time (no stale policy), their parsing is not: a mount's
        # daemon loads the policy for every command it serves
        return _from_texts(tuple((path, read_policy_file(path)) for path in candidates), cache_dir)

    @classmethod
    def from_text(cls, text: str, source: str = "<text>", *, cache_dir: str | None = None) -> Policy:
        """A policy from the TOML ``text`` of one file, layered over the shipped default
        (unless the text says ``inherit = false``). ``source`` names it in errors."""
        return _combine([parse_layer(text, source, shipped=False)], cache_dir)

    # -- settings

    def outcome_for(self, categories: Iterable[Category]) -> Outcome:
        """What ``[outcomes]`` says about a set of classes: the strictest of theirs."""
        return strictest(self.outcomes[c] for c in categories)

    def path_rules(self, fork: str | None = None) -> PathRules:
        """The path rules for ``fork``: ``[paths]`` of every layer, then those of each
        ``[forks."PAT".paths]`` whose pattern matches it (None: ``[paths]`` alone).

        Raises:
            PolicyError: the fork's rules together hide the whole tree.
        """
        rules = fork_rules(self.paths, self.fork_paths, fork)
        if rules.hides_everything():
            raise PolicyError(
                f"the path rules of fork {fork} hide the whole tree: its users would see nothing",
                hint="hide only the paths that hold secrets; to keep agents from changing anything, make the"
                ' tree read-only instead (`read_only = ["**"]` under [paths])',
                details={"fork": fork, "rules": rules.to_dict()},
            )
        return rules

    def to_dict(self) -> dict[str, Any]:
        """The effective policy as data, for ``avfs policy show``."""
        out = self._canonical()
        out["hash"] = self.hash
        out["sources"] = list(self.sources)
        for rule, entry in zip(self.rules, out["rules"], strict=True):
            entry["source"] = rule.source
        out["paths"] = [r.to_dict() for r in self.paths]
        out["forks"] = [
            {"pattern": pat, "paths": [r.to_dict() for r in rules]} for pat, rules in self.fork_paths
        ]
        return out

    def _canonical(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "defaults": {
                "unknown": [c.value for c in self.unknown],
                "unparsable": self.unparsable.value,
                "timeout_ms": self.timeout_ms,
                "max_output_bytes": self.max_output_bytes,
                "network": self.network,
                "network_allow": list(self.network_allow),
                "caches": list(self.caches),
                "readable": list(self.readable),
                "confine": self.confine,
            },
            "outcomes": {c.value: self.outcomes[c].value for c in Category},
            "rules": [r.to_dict() for r in self.rules],
            # only when set: a policy without path rules keeps the hash it had before them
            **(
                {
                    "paths": [[r.kind, r.pattern] for r in self.paths],
                    "forks": [[pat, [[r.kind, r.pattern] for r in rs]] for pat, rs in self.fork_paths],
                }
                if self.paths or self.fork_paths
                else {}
            ),
        }

    # -- classification

    def classify(self, command: str | Sequence[str], root: str | None, cwd: str | None = None) -> Decision:
        """What the policy decides for a command: the one entry point (``proxy exec``, the
        agent hooks, ``avfs policy check`` and MCP's ``exec`` all come here).

        Args:
            command: a shell command line (``str``: what ``sh -c COMMAND`` would run) or an
                argument vector (any other sequence: run without a shell).
            root: the absolute path of the workspace (the mountpoint); see
                :meth:`classify_argv`.
            cwd: the absolute directory the command starts in (default: the root).

        Raises:
            UsageError: ``command`` is an empty argument vector (a string never raises).
        """
        if isinstance(command, str):
            return self.classify_shell(command, workspace_root=root, cwd=cwd)
        return self.classify_argv(command, workspace_root=root, cwd=cwd)

    def classify_argv(
        self, argv: Sequence[str], *, workspace_root: str | None = None, cwd: str | None = None
    ) -> Decision:
        """Classify a command given as an argument vector (run without a shell).

        Args:
            argv: the program and its arguments, as ``execve`` would get them.
            workspace_root: the absolute path of the workspace (the mountpoint). Absolute
                paths below it are inside the workspace; without it every absolute path is
                outside.
            cwd: the absolute directory the command starts in (default: the root).

        Raises:
            UsageError: ``argv`` is empty.
        """
        if not argv:
            raise UsageError("nothing to classify: the command is empty", hint="give a program to run")
        words = [Word.literal(str(a)) for a in argv]
        clf = Classifier(self, workspace_root, cwd)
        try:
            parts = clf.command_words(words, {}, [], clf.start_cwd, 0)[0]
            clf.late(parts, shlex.join(argv))
        except OutOfBudget as exc:
            return self._too_complex(shlex.join(argv), str(exc))
        except (TooComplex, RecursionError) as exc:
            return self._unparsable(shlex.join(argv), str(exc))
        return self._decide(parts)

    def classify_shell(
        self, command: str, *, workspace_root: str | None = None, cwd: str | None = None
    ) -> Decision:
        """Classify a shell command line (what ``sh -c COMMAND`` would run).

        Never raises on any text: a line that cannot be parsed (an unbalanced quote, a
        stray ``)``) gets ``[defaults] unparsable`` (at least ``require_approval``) and a
        reason that says why. ``workspace_root`` and ``cwd`` are as for
        :meth:`classify_argv`.
        """
        if len(command) > _MAX_TEXT:
            return self._too_complex(command, f"it is longer than {_MAX_TEXT} characters")
        clf = Classifier(self, workspace_root, cwd)
        try:
            parts = clf.script_text(command, clf.start_cwd, 0)
            clf.late(parts, command)
        except OutOfBudget as exc:
            return self._too_complex(command, str(exc))
        except (TooComplex, RecursionError) as exc:
            return self._unparsable(command, str(exc) or "the command is nested too deeply")
        return self._decide(parts)

    def _unparsable(self, text: str, why: str) -> Decision:
        info = Classifier.unparsable_part(self, text, why).finish(self)
        return Decision(info.action, info.categories, info.reason, info.rule, (info,))

    def _too_complex(self, text: str, why: str) -> Decision:
        """Past the budget: nothing about the command is known, so a person decides."""
        shown = text if len(text) <= 60 else text[:59] + "…"
        outcome = strictest([Outcome.REQUIRE_APPROVAL, self.unparsable])
        # no verdict word in front: exec asks a person, an agent hook denies
        reason = f"too long or complex to analyse: {shown!r} ({why}); split it into shorter commands"
        info = CommandInfo((shown,), "<too-complex>", self.unknown, outcome, BUILTIN_TOO_COMPLEX, reason)
        return Decision(outcome, tuple(sorted(self.unknown)), reason, BUILTIN_TOO_COMPLEX, (info,))

    def _decide(self, parts: list[Part]) -> Decision:
        if not parts:
            return Decision(Outcome.ALLOW, (Category.READ_ONLY,), "nothing to run", DEFAULT_RULE, ())
        infos = tuple(p.finish(self) for p in {id(p): p for p in parts}.values())
        # the strictest command decides; among equals, the first that does more than read
        deciding = max(infos, key=lambda i: (i.action.rank, i.categories != (Category.READ_ONLY,)))
        cats: set[Category] = set()
        for info in infos:
            cats.update(info.categories)
        if len(cats) > 1:
            cats.discard(Category.READ_ONLY)
        reason = f"{_VERDICT[deciding.action]}: {deciding.reason}"
        if len(infos) > 1:
            reason += f" (the strictest of {len(infos)} commands)"
        if deciding.rule != BUILTIN_UNPARSABLE and any(i.rule == BUILTIN_UNPARSABLE for i in infos):
            reason += "; part of the command line cannot be parsed"
        return Decision(deciding.action, tuple(sorted(cats)), reason, deciding.rule, infos)


_VERDICT: Final = {
    Outcome.ALLOW: "allowed",
    Outcome.ALLOW_WITH_CHECKPOINT: "allowed after a checkpoint",
    Outcome.REQUIRE_APPROVAL: "needs approval",
    Outcome.DENY: "denied",
}


def _combine(layers: list[Layer], cache_dir: str | None = None) -> Policy:
    """Layers are highest precedence first; the shipped default is always the base."""
    policy = Policy(**combine(layers, cache_dir))
    canonical = json.dumps(policy._canonical(), sort_keys=True, separators=(",", ":"))
    return dataclasses.replace(policy, hash="sha256:" + hashlib.sha256(canonical.encode()).hexdigest())


@functools.lru_cache(maxsize=16)
def _from_texts(texts: tuple[tuple[str, str | None], ...], cache_dir: str | None = None) -> Policy:
    """The policy made of these files' texts (path, text or None where there is no file)."""
    layers: list[Layer] = [parse_layer(text, path, shipped=False) for path, text in texts if text is not None]
    return _combine(layers, cache_dir)


@functools.cache
def _default_policy(cache_dir: str | None) -> Policy:
    return _combine([], cache_dir)
