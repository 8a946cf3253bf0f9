"""The policy of ``avfs proxy exec``: which commands run, which need a checkpoint first,
which need approval and which are refused.

A policy is TOML (format: ``docs/policy.md``). Rules give *classes* — facts about what a
command does (``read_only``, ``mutating``, ``destructive``, ``networked``,
``host_escape_risk``) — and ``[outcomes]`` turns classes into what avfs does (``allow``,
``allow_with_checkpoint``, ``require_approval``, ``deny``). The first rule that matches a
simple command wins; a command line made of several simple commands gets the strictest
outcome of its parts.

Classification parses the command line the way a POSIX shell would (quotes, ``&&``, ``||``,
``;``, ``|``, ``( … )``, ``$( … )``, backticks, redirections, here-documents) and sees through
the programs that only run another one (``sh -c``, ``env``, ``sudo``, ``nice``, ``timeout``,
``xargs``...). It is pure: no process is started, no file but the policy files is read.
Code it cannot read (a program name known only at run time, a shell reading piped code, a
script the same line writes, awk's ``system``, sed's ``e``) is judged like text that cannot
be parsed (``builtin:opaque``). It is a guard rail against accidents and obvious attacks,
not a sandbox: a program can still do anything its arguments do not show (``python -c``, a
script file that exists).
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
import functools
import hashlib
import json
import os
import posixpath
import re
import shlex
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

from ..core.errors import UsageError, from_oserror

__all__ = [
    "Category",
    "CommandInfo",
    "Decision",
    "Outcome",
    "Policy",
    "PolicyError",
    "Rule",
    "strictest",
]


class PolicyError(UsageError):
    """A policy file avfs cannot use: bad TOML, an unknown key, class or outcome, a bad regex.

    ``details`` holds ``file``, ``line`` and ``column`` (``None`` where unknown) and
    ``problem``. Like a bad command line it exits with the usage code (2): avfs never falls
    back to a more permissive policy when the configured one is broken.
    """

    code = "policy_invalid"


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
BUILTIN_REDIRECT: Final = "builtin:redirect"
BUILTIN_REDIRECT_OUTSIDE: Final = "builtin:redirect-outside"
BUILTIN_CWD_OUTSIDE: Final = "builtin:cwd-outside"
BUILTIN_REMOTE_CODE: Final = "builtin:remote-code"
BUILTIN_OPAQUE: Final = "builtin:opaque"
BUILTIN_UNKNOWN_PATHS: Final = "builtin:unknown-paths"

POLICY_FILE: Final = "policy.toml"
_VERSION: Final = 1


# ------------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True, slots=True)
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
        return name in self._names or (bool(self._globs) and _glob_re(self._globs).match(name) is not None)

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


@dataclasses.dataclass(frozen=True, slots=True)
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


@dataclasses.dataclass(frozen=True, slots=True)
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


# ------------------------------------------------------------------------------- the policy


@dataclasses.dataclass(frozen=True, slots=True)
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

    def __hash__(self) -> int:
        return hash(self.hash)

    # -- building

    @classmethod
    def default(cls) -> Policy:
        """The policy that ships with avfs (``avfs_git/policy/default_policy.toml``)."""
        return _default_policy()

    @classmethod
    def load(cls, home_dir: str, vault_dir: str | None = None) -> Policy:
        """The effective policy for a home and (optionally) one vault.

        Reads ``<home_dir>/policy.toml`` and ``<vault_dir>/avfs/policy.toml`` when they
        exist. Their rules are tried vault first, then home, then the shipped default's;
        their ``[defaults]`` and ``[outcomes]`` keys override the layers below them. A file
        with ``inherit = false`` drops the rules of every layer below it.

        Raises:
            PolicyError: a file is not a valid policy (names the file, line and problem).
        """
        layers: list[_Layer] = []
        candidates = []
        if vault_dir is not None:
            candidates.append(os.path.join(vault_dir, "avfs", POLICY_FILE))
        candidates.append(os.path.join(home_dir, POLICY_FILE))
        for path in candidates:
            text = _read_policy_file(path)
            if text is not None:
                layers.append(_parse_layer(text, path, shipped=False))
        return _combine(layers)

    @classmethod
    def from_text(cls, text: str, source: str = "<text>") -> Policy:
        """A policy from the TOML ``text`` of one file, layered over the shipped default
        (unless the text says ``inherit = false``). ``source`` names it in errors."""
        return _combine([_parse_layer(text, source, shipped=False)])

    # -- settings

    def outcome_for(self, categories: Iterable[Category]) -> Outcome:
        """What ``[outcomes]`` says about a set of classes: the strictest of theirs."""
        return strictest(self.outcomes[c] for c in categories)

    def to_dict(self) -> dict[str, Any]:
        """The effective policy as data, for ``avfs policy show``."""
        out = self._canonical()
        out["hash"] = self.hash
        out["sources"] = list(self.sources)
        for rule, entry in zip(self.rules, out["rules"], strict=True):
            entry["source"] = rule.source
        return out

    def _canonical(self) -> dict[str, Any]:
        return {
            "version": _VERSION,
            "defaults": {
                "unknown": [c.value for c in self.unknown],
                "unparsable": self.unparsable.value,
                "timeout_ms": self.timeout_ms,
                "max_output_bytes": self.max_output_bytes,
            },
            "outcomes": {c.value: self.outcomes[c].value for c in Category},
            "rules": [r.to_dict() for r in self.rules],
        }

    # -- classification

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
        words = [_Word.literal(str(a)) for a in argv]
        clf = _Classifier(self, workspace_root, cwd)
        try:
            parts = clf.command_words(words, {}, [], clf.start_cwd, 0)[0]
            clf.late(parts, shlex.join(argv))
        except (_TooComplex, RecursionError) as exc:
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
            return self._unparsable(command, f"it is longer than {_MAX_TEXT} characters")
        clf = _Classifier(self, workspace_root, cwd)
        try:
            parts = clf.script_text(command, clf.start_cwd, 0)
            clf.late(parts, command)
        except (_TooComplex, RecursionError) as exc:
            return self._unparsable(command, str(exc) or "the command is nested too deeply")
        return self._decide(parts)

    def _unparsable(self, text: str, why: str) -> Decision:
        info = _Classifier.unparsable_part(self, text, why).finish(self)
        return Decision(info.action, info.categories, info.reason, info.rule, (info,))

    def _decide(self, parts: list[_Part]) -> Decision:
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


# ------------------------------------------------------------------------------- loading


class _Layer:
    """One policy file, validated."""

    __slots__ = ("defaults", "inherit", "outcomes", "rules", "source")

    def __init__(
        self,
        source: str,
        inherit: bool,
        defaults: dict[str, Any],
        outcomes: dict[Category, Outcome],
        rules: tuple[Rule, ...],
    ) -> None:
        self.source = source
        self.inherit = inherit
        self.defaults = defaults
        self.outcomes = outcomes
        self.rules = rules


DEFAULT_POLICY_PATH: Final = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_policy.toml")
"""The shipped default policy (package data of ``avfs_git.policy``)."""


@functools.cache
def _shipped_layer() -> _Layer:
    with open(DEFAULT_POLICY_PATH, encoding="utf-8") as f:
        text = f.read()
    return _Validator(text, DEFAULT_POLICY_PATH, True).layer(_shipped_data(text))


def _shipped_data(text: str) -> dict[str, Any]:
    """The shipped file's TOML as data, from a per-user cache keyed by its content.

    ``proxy exec`` loads the policy on every call: importing tomllib and parsing the
    shipped file cost ~20 ms of a call whose target is < 100 ms in all. The cache holds
    what tomllib returned (marshal; plain dicts, lists, strings, numbers), so a stale or
    broken cache file can only be ignored, never change a decision.
    """
    import marshal

    key = hashlib.sha256(text.encode()).hexdigest()[:32]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "avfs", f"default-policy-{key}.marshal")
    try:
        with open(path, "rb") as f:
            data = marshal.load(f)
        if isinstance(data, dict):
            return data
    except (OSError, EOFError, ValueError, TypeError):
        pass
    data = _toml(text, DEFAULT_POLICY_PATH)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            marshal.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        pass  # no cache: parse every time
    return data


@functools.cache
def _default_policy() -> Policy:
    return _combine([])


def _read_policy_file(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise from_oserror(exc, path) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _error(path, line, None, "not UTF-8 text") from None


def _combine(layers: list[_Layer]) -> Policy:
    """Layers are highest precedence first; the shipped default is always the base."""
    shipped = _shipped_layer()
    active: list[_Layer] = []
    for layer in layers:
        active.append(layer)
        if not layer.inherit:
            break
    else:
        active.append(shipped)
    rules: list[Rule] = []
    for layer in active:
        rules.extend(layer.rules)
    defaults = dict(shipped.defaults)
    outcomes = dict(shipped.outcomes)
    for layer in reversed(active):
        defaults.update(layer.defaults)
        outcomes.update(layer.outcomes)
    sources = [layer.source for layer in active]
    if active[-1] is not shipped:
        sources.append(shipped.source)  # still the base of [defaults] and [outcomes]
    policy = Policy(
        rules=tuple(rules),
        unknown=tuple(defaults["unknown"]),
        unparsable=defaults["unparsable"],
        outcomes=types.MappingProxyType(outcomes),
        timeout_ms=defaults["timeout_ms"],
        max_output_bytes=defaults["max_output_bytes"],
        sources=tuple(sources),
    )
    canonical = json.dumps(policy._canonical(), sort_keys=True, separators=(",", ":"))
    return dataclasses.replace(policy, hash="sha256:" + hashlib.sha256(canonical.encode()).hexdigest())


def _error(source: str, line: int | None, column: int | None, problem: str) -> PolicyError:
    where = ""
    if line is not None:
        where = f", line {line}" + (f", column {column}" if column is not None else "")
    return PolicyError(
        f"invalid policy {source}{where}: {problem}",
        hint="fix the file; docs/policy.md describes the format",
        details={"file": source, "line": line, "column": column, "problem": problem},
    )


_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOP_KEYS: Final = frozenset({"version", "inherit", "defaults", "outcomes", "rules"})
_DEFAULT_KEYS: Final = frozenset({"unknown", "unparsable", "timeout_ms", "max_output_bytes"})
_RULE_KEYS: Final = frozenset(
    {
        "name",
        "description",
        "program",
        "subcommand",
        "args_any",
        "args_all",
        "args_none",
        "args_regex",
        "outside_paths",
        "classes",
        "outcome",
    }
)
_RULE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+-]*$")


class _Locator:
    """Finds the line of a table or key in TOML text, for error messages (tomllib only
    gives positions for syntax errors)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]#]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line(self, table: str | None, index: int | None = None, key: str | None = None) -> int | None:
        key_re = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=") if key else None
        in_target = table is None
        seen: dict[str, int] = {}
        header_line: int | None = None
        for number, line in enumerate(self.lines, 1):
            m = self._HEADER.match(line)
            if m and not line.lstrip().startswith(("#",)) and "=" not in line.split("]")[0]:
                name = m.group(2).strip().strip("\"'")
                idx: int | None = None
                if m.group(1) == "[[":
                    idx = seen[name] = seen.get(name, -1) + 1
                in_target = table is not None and name == table and (index is None or idx == index)
                if in_target:
                    header_line = number
                    if key_re is None:
                        return number
                continue
            if in_target and key_re is not None and key_re.match(line):
                return number
        if header_line is None and table is not None:
            # an inline table or array of tables: the line of its key at the top level
            return self.line(None, None, table) if key is not None or index is not None else None
        return header_line


def _toml(text: str, source: str) -> dict[str, Any]:
    import tomllib  # ~9 ms: only when a file is parsed (see _shipped_data)

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_POS.search(msg)
        if m:
            raise _error(source, int(m.group(1)), int(m.group(2)), msg[: m.start()]) from None
        raise _error(source, None, None, msg) from None


def _parse_layer(text: str, source: str, *, shipped: bool) -> _Layer:
    return _Validator(text, source, shipped).layer(_toml(text, source))


class _Validator:
    def __init__(self, text: str, source: str, shipped: bool) -> None:
        self.loc = _Locator(text)
        self.source = source
        self.shipped = shipped

    def fail(
        self, problem: str, table: str | None, index: int | None = None, key: str | None = None
    ) -> PolicyError:
        return _error(self.source, self.loc.line(table, index, key), None, problem)

    def unknown_key(
        self, key: str, allowed: Iterable[str], where: str, table: str | None, index: int | None = None
    ) -> PolicyError:
        import difflib  # only on this error path

        close = difflib.get_close_matches(key, sorted(allowed), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(allowed))})"
        return self.fail(f"unknown key {key!r} in {where}{hint}", table, index, key)

    def layer(self, data: dict[str, Any]) -> _Layer:
        for key in data:
            if key not in _TOP_KEYS:
                raise self.unknown_key(key, _TOP_KEYS, "the policy", None)
        if "version" not in data:
            raise self.fail(f"missing 'version = {_VERSION}' at the top of the file", None)
        version = data["version"]
        if type(version) is not int or version != _VERSION:
            raise self.fail(
                f"unsupported version {version!r}: this avfs reads version {_VERSION}", None, key="version"
            )
        inherit = data.get("inherit", True)
        if type(inherit) is not bool:
            raise self.fail(f"'inherit' must be true or false, not {inherit!r}", None, key="inherit")
        defaults = self.defaults(data.get("defaults", {}))
        outcomes = self.outcomes(data.get("outcomes", {}))
        rules_data = data.get("rules", [])
        if not isinstance(rules_data, list):
            raise self.fail("'rules' must be an array of tables ([[rules]])", None, key="rules")
        rules: list[Rule] = []
        seen: dict[str, int] = {}
        for i, entry in enumerate(rules_data):
            rule = self.rule(entry, i)
            if rule.name in seen:
                raise self.fail(
                    f"rule name {rule.name!r} is used twice (rules {seen[rule.name] + 1} and {i + 1})",
                    "rules",
                    i,
                    "name",
                )
            seen[rule.name] = i
            rules.append(rule)
        if self.shipped:
            missing = (_DEFAULT_KEYS - defaults.keys()) or {c.value for c in Category} - {
                c.value for c in outcomes
            }
            if missing:
                raise self.fail(f"the shipped policy must set {sorted(missing)}", None)
        return _Layer(self.source, inherit, defaults, outcomes, tuple(rules))

    def table(self, value: Any, name: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"'{name}' must be a table ([{name}])", None, key=name)
        return value

    def defaults(self, value: Any) -> dict[str, Any]:
        table = self.table(value, "defaults")
        out: dict[str, Any] = {}
        for key, v in table.items():
            if key not in _DEFAULT_KEYS:
                raise self.unknown_key(key, _DEFAULT_KEYS, "[defaults]", "defaults")
            if key == "unknown":
                out[key] = self.classes(v, "[defaults] unknown", "defaults", None, key)
            elif key == "unparsable":
                outcome = self.outcome(v, "[defaults] unparsable", "defaults", None, key)
                if outcome.rank < Outcome.REQUIRE_APPROVAL.rank:
                    raise self.fail(
                        "[defaults] unparsable must be 'require_approval' or 'deny': a command "
                        "avfs cannot read is never allowed without a person",
                        "defaults",
                        None,
                        key,
                    )
                out[key] = outcome
            else:
                if type(v) is not int or v <= 0:
                    raise self.fail(
                        f"[defaults] {key} must be a positive integer, not {v!r}", "defaults", None, key
                    )
                out[key] = v
        return out

    def outcomes(self, value: Any) -> dict[Category, Outcome]:
        table = self.table(value, "outcomes")
        out: dict[Category, Outcome] = {}
        for key, v in table.items():
            try:
                cat = Category(key)
            except ValueError:
                raise self.unknown_key(
                    key, [c.value for c in Category], "[outcomes] (a class)", "outcomes"
                ) from None
            out[cat] = self.outcome(v, f"[outcomes] {key}", "outcomes", None, key)
        return out

    def outcome(self, v: Any, what: str, table: str, index: int | None, key: str) -> Outcome:
        try:
            return Outcome(v)
        except (ValueError, TypeError):
            allowed = ", ".join(o.value for o in Outcome)
            raise self.fail(
                f"{what}: unknown outcome {v!r} (expected one of {allowed})", table, index, key
            ) from None

    def classes(self, v: Any, what: str, table: str, index: int | None, key: str) -> tuple[Category, ...]:
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, list) or not items:
            raise self.fail(f"{what} must be a class or a non-empty list of classes", table, index, key)
        out: list[Category] = []
        for item in items:
            try:
                cat = Category(item)
            except (ValueError, TypeError):
                allowed = ", ".join(c.value for c in Category)
                raise self.fail(
                    f"{what}: unknown class {item!r} (expected one of {allowed})", table, index, key
                ) from None
            if cat not in out:
                out.append(cat)
        return tuple(out)

    def strings(self, v: Any, what: str, index: int, key: str) -> tuple[str, ...]:
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, list) or not items or not all(isinstance(s, str) and s for s in items):
            raise self.fail(
                f"{what} must be a non-empty string or a non-empty list of them", "rules", index, key
            )
        return tuple(items)

    def rule(self, entry: Any, i: int) -> Rule:
        if not isinstance(entry, dict):
            raise self.fail(f"rules[{i}] must be a table", "rules", i)
        name = entry.get("name")
        label = f"rule {i + 1}"
        if name is None:
            raise self.fail(f"{label} has no 'name'", "rules", i)
        if (
            not isinstance(name, str)
            or not _RULE_NAME.match(name)
            or name == DEFAULT_RULE
            or name.startswith("builtin:")
        ):
            raise self.fail(
                f"{label}: invalid name {name!r} (letters, digits and . _ : + -; "
                f"'{DEFAULT_RULE}' and 'builtin:...' are reserved)",
                "rules",
                i,
                "name",
            )
        label = f"rule {name!r}"
        for key in entry:
            if key not in _RULE_KEYS:
                raise self.unknown_key(key, _RULE_KEYS, label, "rules", i)
        if "program" not in entry:
            raise self.fail(f"{label} has no 'program' (a name, a glob, or a list of them)", "rules", i)
        if "classes" not in entry:
            raise self.fail(f"{label} has no 'classes'", "rules", i)
        program = self.strings(entry["program"], f"{label}: program", i, "program")
        classes = self.classes(entry["classes"], f"{label}: classes", "rules", i, "classes")
        outcome = None
        if "outcome" in entry:
            outcome = self.outcome(entry["outcome"], f"{label}: outcome", "rules", i, "outcome")
        lists: dict[str, tuple[str, ...]] = {}
        for key in ("subcommand", "args_any", "args_all", "args_none"):
            if key in entry:
                lists[key] = self.strings(entry[key], f"{label}: {key}", i, key)
        regex = entry.get("args_regex")
        if regex is not None:
            if not isinstance(regex, str):
                raise self.fail(f"{label}: args_regex must be a string", "rules", i, "args_regex")
            try:
                if not self.shipped:  # the shipped file's are compiled by its tests
                    re.compile(regex)
            except re.error as exc:
                raise self.fail(
                    f"{label}: invalid args_regex {regex!r}: {exc}", "rules", i, "args_regex"
                ) from None
        outside = entry.get("outside_paths")
        if outside is not None and outside not in ("any", "last"):
            raise self.fail(
                f"{label}: outside_paths must be 'any' or 'last', not {outside!r}",
                "rules",
                i,
                "outside_paths",
            )
        description = entry.get("description")
        if description is not None and not isinstance(description, str):
            raise self.fail(f"{label}: description must be a string", "rules", i, "description")
        return Rule(
            name=name,
            program=program,
            classes=classes,
            outcome=outcome,
            subcommand=lists.get("subcommand", ()),
            args_any=lists.get("args_any", ()),
            args_all=lists.get("args_all", ()),
            args_none=lists.get("args_none", ()),
            args_regex=regex,
            outside_paths=outside,
            description=description,
            source=self.source,
        )


# ------------------------------------------------------------------------------- shell syntax


class _ParseError(Exception):
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


class _TooComplex(Exception):
    pass


_MAX_DEPTH: Final = 24  # nested $( ), sh -c, ( ) levels
_MAX_PARTS: Final = 4000  # distinct commands (a command repeated in place is judged once)
_MAX_TEXT: Final = 1_000_000  # characters of a command line
_MAX_BRACES: Final = 12
_META: Final = frozenset(" \t\n;&|()<>")
_OPS: Final = (";;&", "&>>", "&&", "||", ";;", ";&", "|&", "&>", "(", ")", ";", "&", "|")
_REDIRS: Final = ("<<<", "<<-", "<<", "<>", "<&", "<", ">>", ">|", ">&", ">")
_WRITE_REDIRS: Final = frozenset({">", ">>", ">|", "&>", "&>>", "<>", ">&"})
_SPECIAL_PARAMS: Final = frozenset("@*#?$!-0123456789")
_NAME_START: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS: Final = _NAME_START | frozenset("0123456789")
_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")
_KEYWORDS: Final = frozenset(
    {"{", "}", "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "coproc"}
    | {"for", "select", "case", "esac", "[[", "function", "in"}
)
_TRANSPARENT: Final = frozenset(
    {"{", "}", "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "coproc"}
)

_Sub = tuple[str, list["_Tok"]]  # the source of a command substitution and its tokens


# The parser's and classifier's own records are plain slotted classes, not dataclasses:
# they are private, and creating a dataclass costs about a millisecond of import time each.


class _Word:
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
        self.subs: list[_Sub] = []

    def variant(self, value: str, mask: list[bool]) -> _Word:
        """A copy with another value (one result of brace expansion)."""
        w = _Word(value, mask, self.quoted)
        w.dynamic, w.lead, w.lead_len = self.dynamic, self.lead, self.lead_len
        w.tilde = bool(value) and value[0] == "~" and mask[0]
        w.glob = any(flag and ch in "*?[" for ch, flag in zip(value, mask, strict=True))
        return w

    @staticmethod
    def literal(value: str) -> _Word:
        return _Word(value, None, True)


class _HereDoc:
    __slots__ = ("body", "delim", "op", "pos", "quoted", "strip_tabs", "subs")

    def __init__(self, op: str, pos: int) -> None:
        self.op = op
        self.pos = pos  # of the operator, in the command line
        self.strip_tabs = op == "<<-"
        self.delim: str | None = None
        self.quoted = False
        self.body = ""
        self.subs: list[_Sub] = []


class _Tok:
    __slots__ = ("fd", "heredoc", "kind", "pos", "text", "word")

    def __init__(self, kind: str, text: str, pos: int, word: _Word | None = None, fd: str = "") -> None:
        self.kind = kind  # "w" word, "op" operator, "r" redirection, "nl" newline
        self.text = text
        self.pos = pos
        self.word = word
        self.fd = fd
        self.heredoc: _HereDoc | None = None


_T = TypeVar("_T")


def _inner(lex: Callable[[], _T], pos: int, opener: str) -> _T:
    """Run a lexer over text taken out of the command line (a here-document, backquotes):
    its errors are reported at ``pos``, where that text (opened by ``opener``) starts."""
    try:
        return lex()
    except _ParseError as exc:
        raise _ParseError(str(exc), pos, opener=opener, start=pos if opener else None) from None


class _Lexer:
    """Splits shell text into tokens, resolving quotes and finding every command
    substitution (whose tokens it keeps, lexed once)."""

    def __init__(self, text: str, start: int, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise _TooComplex("the command is nested too deeply to classify")
        self.s = text
        self.i = start
        self.depth = depth
        self.toks: list[_Tok] = []
        self.pending: list[_HereDoc] = []
        self.want_delim: _HereDoc | None = None

    def run(self, until_paren: bool = False, opened: int = 0, opener: str = "$(") -> int:
        """Lex to the end (or to the ``)`` closing a ``$(`` opened at ``opened``: return
        its index)."""
        s, n = self.s, len(self.s)
        level = 0
        while True:
            i = self.i
            if i >= n:
                if until_paren:
                    raise _ParseError(
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
                self.toks.append(_Tok("nl", "\n", i))
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
                self.toks.append(_Tok("op", op, i))
                self.i += len(op)
            else:
                self._word()

    def _no_delimiter(self, i: int) -> _ParseError:
        doc = self.want_delim
        assert doc is not None
        return _ParseError(
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
        tok = _Tok("r", op, i - len(fd), fd=fd)
        if op in ("<<", "<<-"):
            tok.heredoc = _HereDoc(op, i)
            self.pending.append(tok.heredoc)
            self.want_delim = tok.heredoc
        self.toks.append(tok)
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
                doc.subs = _inner(_Lexer(doc.body, 0, self.depth + 1).expansions, body_start, "")
        self.pending = []

    def expansions(self) -> list[_Sub]:
        """The command substitutions in text read like the inside of double quotes."""
        w = _Word("")
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
        w = _Word("")
        chars: list[str] = []
        mask: list[bool] = []
        while self.i < n:
            i = self.i
            c = s[i]
            if c in "<>" and s.startswith("(", i + 1):
                sub_start = i + 2
                lexer = _Lexer(s, sub_start, self.depth + 1)
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
                    raise _ParseError("unterminated single quote", i, closer="'", opener="'", start=i)
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
            self.toks.append(_Tok("w", w.value, start, word=w))
            return
        for word in _brace_expand(w):
            self.toks.append(_Tok("w", word.value, start, word=word))

    def _expansion(self, w: _Word, chars: list[str], mask: list[bool], raw: str, var: str) -> None:
        if not chars:
            w.lead = var
            w.lead_len = len(raw)
        w.dynamic = True
        chars.extend(raw)
        mask.extend([False] * len(raw))

    def _dquote(self, w: _Word, chars: list[str], mask: list[bool], start: int, opener: str) -> None:
        s, n = self.s, len(self.s)
        while True:
            if self.i >= n:
                raise _ParseError("unterminated double quote", self.i, closer='"', opener=opener, start=start)
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

    def _dollar(self, w: _Word, chars: list[str], mask: list[bool]) -> None:
        s, n, i = self.s, len(self.s), self.i
        nxt = s[i + 1] if i + 1 < n else ""
        if nxt == "(":
            arith = s.startswith("((", i + 1)
            sub_start = i + 2
            lexer = _Lexer(s, sub_start, self.depth + 1)
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
                w.subs.extend(_inner(_Lexer(inner, 0, self.depth + 1).expansions, i, "${"))
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
        raise _ParseError("unterminated '${' (no closing '}')", j, closer="}", opener="${", start=opened)

    def _backtick(self, w: _Word, chars: list[str], mask: list[bool]) -> None:
        s, n, i = self.s, len(self.s), self.i
        j = i + 1
        inner: list[str] = []
        while True:
            if j >= n:
                raise _ParseError("unterminated backquote", i, closer="`", opener="`", start=i)
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
        lexer = _Lexer(src, 0, self.depth + 1)
        _inner(lexer.run, i, "`")
        w.subs.append((src, lexer.toks))
        self._expansion(w, chars, mask, s[i : j + 1], "")
        self.i = j + 1

    _C_ESCAPES: Final = {
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

    def _ansi_c(self, chars: list[str], mask: list[bool], start: int) -> None:
        """$'...' with its escapes decoded, so $'\\x72m' is seen as 'rm'."""
        s, n = self.s, len(self.s)
        out: list[str] = []
        while True:
            if self.i >= n:
                raise _ParseError("unterminated $'...' quote", self.i, closer="'", opener="$'", start=start)
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


def _brace_expand(w: _Word) -> list[_Word]:
    """Bash brace expansion of the unquoted ``{a,b}`` in a word ({rm,-rf,/} is three words)."""
    mask = w.mask
    if mask is None or "{" not in w.value:
        return [w]
    opens = sum(1 for ch, m in zip(w.value, mask, strict=True) if m and ch == "{")
    if not opens:
        return [w]
    if opens > _MAX_BRACES:
        raise _TooComplex("too many braces to expand")
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
                            raise _TooComplex("brace expansion makes too many words")
                    return out
                depth -= 1
            elif cb == "," and depth == 0:
                commas.append(b)
    return [pairs]


# -- the grammar


class _Redir:
    __slots__ = ("fd", "heredoc", "op", "target")

    def __init__(self, op: str, fd: str, target: _Word | None, heredoc: _HereDoc | None) -> None:
        self.op = op
        self.fd = fd
        self.target = target
        self.heredoc = heredoc


class _Simple:
    __slots__ = ("assigns", "data", "redirs", "words")

    def __init__(self) -> None:
        self.assigns: list[_Word] = []
        self.words: list[_Word] = []
        self.redirs: list[_Redir] = []
        self.data: list[_Word] = []  # words that are not a command: for-lists, case words, [[ ]]


class _Group:
    __slots__ = ("body", "redirs", "subshell")

    def __init__(self, body: list[_Pipeline], redirs: list[_Redir], subshell: bool) -> None:
        self.body = body
        self.redirs = redirs
        self.subshell = subshell


class _Pipeline:
    __slots__ = ("stages",)

    def __init__(self, stages: list[_Simple | _Group]) -> None:
        self.stages = stages


class _Parser:
    """Tokens to pipelines of simple commands and groups. Compound commands (if, while,
    for, case, { }) are flattened: their parts are classified as if they all run."""

    def __init__(self, toks: list[_Tok], end: int) -> None:
        self.t = toks
        self.k = 0
        self.end = end
        self.nest = 0

    def parse(self) -> list[_Pipeline]:
        body = self.list_(frozenset(), frozenset())
        tok = self.peek()
        if tok is not None:
            raise _ParseError(f"unexpected {tok.text!r}", tok.pos)
        return body

    def peek(self, off: int = 0) -> _Tok | None:
        k = self.k + off
        return self.t[k] if k < len(self.t) else None

    def pos(self) -> int:
        tok = self.peek()
        return tok.pos if tok is not None else self.end

    @staticmethod
    def is_kw(tok: _Tok | None, words: frozenset[str] = _KEYWORDS) -> bool:
        return (
            tok is not None
            and tok.kind == "w"
            and tok.word is not None
            and not tok.word.quoted
            and tok.text in words
        )

    @staticmethod
    def is_op(tok: _Tok | None, *ops: str) -> bool:
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

    def list_(self, stop_ops: frozenset[str], stop_words: frozenset[str]) -> list[_Pipeline]:
        out: list[_Pipeline] = []
        while True:
            self.skip(seps=True)
            tok = self.peek()
            if tok is None or (tok.kind == "op" and tok.text in stop_ops) or self.is_kw(tok, stop_words):
                return out
            if tok.kind == "op" and tok.text != "(":
                raise _ParseError(f"unexpected {tok.text!r}", tok.pos)
            out.append(self.pipeline())
            tok = self.peek()
            if self.is_op(tok, "&&", "||"):
                self.k += 1
                self.skip(seps=False)
                nxt = self.peek()
                if nxt is None or (nxt.kind == "op" and nxt.text != "("):
                    raise _ParseError(f"a command must follow {tok.text!r}" if tok else "", self.pos())
                continue
            if tok is None or tok.kind == "nl" or self.is_op(tok, ";", "&"):
                continue
            if (tok.kind == "op" and tok.text in stop_ops) or self.is_kw(tok, stop_words):
                return out
            raise _ParseError(f"unexpected {tok.text!r}", tok.pos)

    def pipeline(self) -> _Pipeline:
        stages = [self.stage()]
        while self.is_op(self.peek(), "|", "|&"):
            self.k += 1
            self.skip(seps=False)
            nxt = self.peek()
            if nxt is None or (nxt.kind == "op" and nxt.text != "("):
                raise _ParseError("a command must follow '|'", self.pos())
            stages.append(self.stage())
        return _Pipeline(stages)

    def group(self) -> _Group:
        opened = self.k
        self.k += 1
        self.nest += 1
        if self.nest > _MAX_DEPTH:
            raise _TooComplex("the command is nested too deeply to classify")
        body = self.list_(frozenset({")"}), frozenset())
        if not self.is_op(self.peek(), ")"):
            raise _ParseError("'(' without its ')'", self.pos(), index=opened)
        self.k += 1
        self.nest -= 1
        return _Group(body, self.redirs(), subshell=True)

    def redirs(self) -> list[_Redir]:
        out = []
        while (tok := self.peek()) is not None and tok.kind == "r":
            self.k += 1
            out.append(self.redir(tok))
        return out

    def redir(self, tok: _Tok) -> _Redir:
        target = self.peek()
        if target is None or target.kind != "w":
            raise _ParseError(f"{tok.text!r} without a file name", tok.pos, index=self.k - 1)
        self.k += 1
        return _Redir(tok.text, tok.fd, target.word, tok.heredoc)

    def stage(self) -> _Simple | _Group:
        if self.is_op(self.peek(), "("):
            return self.group()
        simple = _Simple()
        consumed = False
        while True:
            tok = self.peek()
            if tok is None or tok.kind == "nl":
                break
            if tok.kind == "op":
                if tok.text == "(" and not (simple.words or simple.assigns or simple.redirs or simple.data):
                    return self.group()  # after a keyword: `if (…)`, `! (…)`
                if tok.text == "(":
                    raise _ParseError("unexpected '('", tok.pos)
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
            if not simple.words and _is_assignment(word):
                simple.assigns.append(word)
                continue
            simple.words.append(word)
            if len(simple.words) == 1 and self.is_op(self.peek(), "(") and self.is_op(self.peek(1), ")"):
                self.k += 2  # `name() body`: a function definition; its body is classified
                simple.words.clear()
        if not consumed:
            raise _ParseError("a command is missing", self.pos())
        return simple

    def keyword(self, kw: str, simple: _Simple) -> None:
        at = self.k - 1  # the keyword's own token
        if kw in ("for", "select"):
            while (tok := self.peek()) is not None and not self.is_kw(tok, frozenset({"do"})):
                if tok.word is not None:
                    simple.data.append(tok.word)
                self.k += 1
            if tok is None:
                raise _ParseError(f"'{kw}' without 'do'", self.end, index=at)
        elif kw == "[[":
            while (tok := self.peek()) is not None:
                self.k += 1
                if self.is_kw(tok, frozenset({"]]"})) or (
                    tok.word is not None and not tok.word.quoted and tok.text == "]]"
                ):
                    return
                if tok.word is not None:
                    simple.data.append(tok.word)
            raise _ParseError("'[[' without ']]'", self.end, index=at)
        elif kw == "function":
            tok = self.peek()
            if tok is not None and tok.kind == "w":
                self.k += 1
            if self.is_op(self.peek(), "(") and self.is_op(self.peek(1), ")"):
                self.k += 2
        elif kw == "in" or kw == "esac":
            raise _ParseError(f"unexpected {kw!r}", self.pos(), index=at)

    def case(self, simple: _Simple) -> _Group:
        at = self.k - 1
        while (tok := self.peek()) is not None and not self.is_kw(tok, frozenset({"in"})):
            if tok.kind != "w" and tok.kind != "nl":
                raise _ParseError("'case' without 'in'", tok.pos)
            if tok.word is not None:
                simple.data.append(tok.word)
            self.k += 1
        if tok is None:
            raise _ParseError("'case' without 'in'", self.end, index=at)
        self.k += 1
        body: list[_Pipeline] = [_Pipeline([simple])]
        while True:
            self.skip(seps=False)
            tok = self.peek()
            if tok is None:
                raise _ParseError("'case' without 'esac'", self.end, index=at)
            if self.is_kw(tok, frozenset({"esac"})):
                self.k += 1
                break
            if self.is_op(tok, "("):
                self.k += 1
            while (tok := self.peek()) is not None and not self.is_op(tok, ")"):
                if tok.word is not None:
                    simple.data.append(tok.word)
                elif not self.is_op(tok, "|"):
                    raise _ParseError("a 'case' pattern without ')'", tok.pos, index=at)
                self.k += 1
            if tok is None:
                raise _ParseError("a 'case' pattern without ')'", self.end, index=at)
            self.k += 1
            body.extend(self.list_(frozenset({";;", ";&", ";;&"}), frozenset({"esac"})))
            if self.is_op(self.peek(), ";;", ";&", ";;&"):
                self.k += 1
        return _Group(body, self.redirs(), subshell=False)


def _is_assignment(w: _Word) -> bool:
    m = _ASSIGN.match(w.value)
    return m is not None and w.mask is not None and all(w.mask[: m.end()])


def _parse(text: str, depth: int) -> list[_Pipeline]:
    lexer = _Lexer(text, 0, depth)
    lexer.run()
    return _Parser(lexer.toks, len(text)).parse()


_MAX_READINGS: Final = 64
_NAIVE_STRIP = re.compile(r"<<<|<<-?|[\\'\"`$#(){}]")


def _salvage(text: str, toks: list[_Tok] | None, depth: int) -> list[list[_Pipeline]]:
    """Best-effort readings of text a shell would refuse. An open quote is read three
    ways (closed at the end, its opening mark dropped, the text cut before it); the parser
    then drops the tokens it stumbles on. The caller keeps the strictest reading, so adding
    text to a broken command line never makes its verdict laxer."""
    readings: list[list[_Tok]] = []
    # the naive reading: no quotes, expansions, groups, here-documents or comments, so
    # every command written after a separator is seen whatever is left open before it
    naive = _Lexer(_NAIVE_STRIP.sub(" ", text), 0, depth)
    try:
        naive.run()
        readings.append(naive.toks)
    except _ParseError:  # nothing is left that could open or close; kept as a guard
        pass
    if toks is not None:
        readings.append(toks)
    else:
        budget = [_MAX_READINGS]

        def read(t: str, level: int) -> None:
            if budget[0] <= 0:
                return
            budget[0] -= 1
            lexer = _Lexer(t, 0, depth)
            try:
                lexer.run()
            except _TooComplex:
                return
            except _ParseError as exc:
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
        body = _parse_dropping(list(reading), len(text))
        if body is not None:
            out.append(body)
    return out


def _parse_dropping(toks: list[_Tok], end: int) -> list[_Pipeline] | None:
    for _ in range(32):
        parser = _Parser(toks, end)
        try:
            return parser.parse()
        except _ParseError as exc:
            if not toks:
                return None
            blame = exc.index if exc.index is not None else parser.k
            del toks[min(blame, len(toks) - 1)]
        except _TooComplex:
            return None
    return None


# ------------------------------------------------------------------------------- classification


class _Wrap:
    """How to find the command a wrapper (env, sudo, nice...) runs."""

    __slots__ = (
        "assignments",
        "chdir",
        "no_command",
        "operands",
        "shell",
        "split",
        "value_long",
        "value_short",
    )

    def __init__(
        self,
        value_short: str = "",
        value_long: frozenset[str] = frozenset(),
        *,
        operands: int = 0,
        assignments: bool = False,
        chdir: tuple[str, ...] = (),
        no_command: str = "",
        split: tuple[str, ...] = (),
        shell: bool = False,
    ) -> None:
        self.value_short = value_short  # short options that take a value
        self.value_long = value_long  # long options that take a value (unless --x=v)
        self.operands = operands  # operands before the command (timeout's DURATION)
        self.assignments = assignments  # NAME=VALUE words before the command (env, sudo)
        self.chdir = chdir  # options whose value is the command's directory
        self.no_command = no_command  # short flags meaning "no command follows" (command -v)
        self.split = split  # options whose value is itself a command line (env -S)
        self.shell = shell  # the command's words are joined and run by a shell (watch)


_WRAPPERS: Final = {
    "env": _Wrap(
        "uCSP",
        frozenset({"--unset", "--chdir", "--split-string"}),
        assignments=True,
        chdir=("-C", "--chdir"),
        split=("-S", "--split-string"),
    ),
    "sudo": _Wrap(
        "ugCDprtTUR",
        frozenset(
            {"--user", "--group", "--close-from", "--chdir", "--host", "--prompt", "--role", "--type"}
            | {"--command-timeout", "--other-user", "--chroot"}
        ),
        assignments=True,
        chdir=("-D", "--chdir"),
        no_command="elvkK",
    ),
    "doas": _Wrap("uC"),
    "nice": _Wrap("n", frozenset({"--adjustment"})),
    "timeout": _Wrap("sk", frozenset({"--signal", "--kill-after"}), operands=1),
    "nohup": _Wrap(),
    "time": _Wrap("fo", frozenset({"--format", "--output"})),
    "command": _Wrap("", no_command="vV"),
    "builtin": _Wrap(),
    "exec": _Wrap("a"),
    "stdbuf": _Wrap("ioe", frozenset({"--input", "--output", "--error"})),
    "ionice": _Wrap(
        "cnpPu", frozenset({"--class", "--classdata", "--pid", "--pgid", "--uid"}), no_command="pPu"
    ),
    "setsid": _Wrap(),
    "busybox": _Wrap(),
    "xargs": _Wrap(
        "adEILnPs",
        frozenset(
            {"--arg-file", "--delimiter", "--max-args", "--max-procs", "--max-chars", "--process-slot-var"}
        ),
    ),
    # `watch CMD ARGS` runs `sh -c "CMD ARGS"` (`-x` runs it directly: parsed the same way)
    "watch": _Wrap("nq", frozenset({"--interval", "--equexit"}), shell=True),
    # GNU parallel runs its command through a shell, once per input (`:::` lists, stdin)
    "parallel": _Wrap(
        "jSadEINnLPs",
        frozenset(
            {"--jobs", "--sshlogin", "--arg-file", "--delimiter", "--eof", "--max-args", "--max-lines"}
            | {"--max-replace-args", "--max-procs", "--max-chars", "--results", "--joblog", "--tmpdir"}
            | {"--workdir", "--wd", "--timeout", "--retries", "--delay", "--colsep", "--env", "--profile"}
            | {"--tag-string", "--basefile", "--return", "--transferfile", "--rpl", "--memfree"}
        ),
        shell=True,
    ),
    "unbuffer": _Wrap(),
    "chronic": _Wrap(),
}
# Options of a program that is otherwise read-only whose value is a file it writes:
# (those options, the short options that take a value; None: options are whole words)
_WRITE_OPTS: Final[dict[str, tuple[tuple[str, ...], str | None]]] = {
    "sort": (("-o", "--output"), "ktoST"),
    "shuf": (("-o", "--output"), "ino"),
    "less": (("-o", "-O", "--log-file", "--LOG-FILE"), "bhjkoOpPtTxyz#"),
    "find": (("-fprint", "-fprint0", "-fprintf", "-fls"), None),
    "tree": (("-o",), "LPIoHT"),
    "info": (("-o", "--output"), "odfn"),
}
_AWKS: Final = frozenset({"awk", "gawk", "mawk", "nawk"})
_SEDS: Final = frozenset({"sed", "gsed"})
# programs that change a file's metadata, not its content: running the file after them
# runs what was there before
_METADATA_ONLY: Final = frozenset({"chmod", "chown", "chgrp", "touch", "chattr", "setfacl", "stat", "ls"})
_SHELLS: Final = frozenset(
    {"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "rbash", "yash", "posh"}
)
# interpreter -> (flags whose presence means the code is an argument, options taking a value)
_INTERPRETERS: Final = {
    "python": ("cm", "WXQ"),
    "pypy": ("cm", "WX"),
    "perl": ("eE", "IMml"),
    "ruby": ("e", "IrCEF"),
    "node": ("ep", "r"),
    "nodejs": ("ep", "r"),
    "php": ("rBRFE", "cdz"),
    "lua": ("e", "l"),
}
_SOURCE: Final = frozenset({"source", "."})
_STDIN_FILES: Final = frozenset({"/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"})
_EVAL_LIKE: Final = frozenset({"eval"})
_HOME_VARS: Final = frozenset(
    {
        "HOME",
        "TMPDIR",
        "OLDPWD",
        "TMP",
        "TEMP",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_CACHE_HOME",
        "USERPROFILE",
    }
)
_HARMLESS_PATHS: Final = frozenset(
    {"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/stdin", "/dev/tty", "/dev/zero"}
)
# options taking a value that come before a subcommand
_GLOBAL_VALUE_OPTS: Final = {
    "git": frozenset(
        {
            "-C",
            "-c",
            "--git-dir",
            "--work-tree",
            "--namespace",
            "--exec-path",
            "--config-env",
            "--super-prefix",
        }
    ),
    "npm": frozenset({"--prefix", "-w", "--workspace"}),
    "pnpm": frozenset({"-C", "--dir", "--filter", "-F"}),
    "yarn": frozenset({"--cwd"}),
    "cargo": frozenset({"-C", "-Z", "--manifest-path", "--config", "--color"}),
    "uv": frozenset({"--directory", "--project", "-p", "--python", "--cache-dir", "--config-file"}),
    "poetry": frozenset({"-C", "--directory", "-P", "--project"}),
    "go": frozenset({"-C"}),
    "docker": frozenset({"-H", "--host", "-c", "--context", "--config", "-l", "--log-level"}),
}
# options that make a program work in another directory: (options, only before the subcommand)
_CHDIR_OPTS: Final = {
    "git": (("-C",), True),
    "make": (("-C", "--directory"), False),
    "gmake": (("-C", "--directory"), False),
    "tar": (("-C", "--directory"), False),
    "cargo": (("-C",), True),
    "npm": (("--prefix",), False),
    "pnpm": (("-C", "--dir"), True),
    "yarn": (("--cwd",), True),
    "uv": (("--directory",), False),
    "go": (("-C",), True),
    "poetry": (("-C", "--directory"), True),
}
_HOME_DIR: Final = "/\x00home"  # a working directory outside every workspace
_VIRTUAL_ROOT: Final = "/\x00workspace"


class _Finding:
    """Something the command line shows beside the program: a redirection, a directory."""

    __slots__ = ("classes", "name", "outcome", "text")

    def __init__(
        self, name: str, classes: tuple[Category, ...], text: str, outcome: Outcome | None = None
    ) -> None:
        self.name = name
        self.classes = classes
        self.text = text
        self.outcome = outcome  # overrides [outcomes] (opaque code, unknown paths)


class _Part:
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
        findings: list[_Finding] | None = None,
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

    def finish(self, policy: Policy) -> CommandInfo:
        action = self.outcome
        if action is None:
            action = policy.outcome_for(self.classes) if self.classes else Outcome.ALLOW
        rule, text = self.name, self.text
        for f in self.findings:
            o = f.outcome if f.outcome is not None else policy.outcome_for(f.classes)
            if o.rank > action.rank or (not self.classes and rule == ""):
                action, rule, text = o, f.name, f.text
        cats = self.all_classes()
        if len(cats) > 1:
            cats.discard(Category.READ_ONLY)
        notes = [f.text for f in self.findings if f.text != text]
        reason = text + "".join(f"; {n}" for n in notes)
        return CommandInfo(self.argv, self.program, tuple(sorted(cats)), action, rule, reason)


def _show(argv: Sequence[str], limit: int = 80) -> str:
    text = shlex.join(argv) if argv else "(redirection)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _program_name(value: str) -> str:
    if "/" in value and (value.startswith("/") or value.startswith("~")):
        return value.rsplit("/", 1)[1]
    return value


@functools.lru_cache(maxsize=1024)
def _glob_re(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(fnmatch.translate(p) for p in patterns))


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class _Classifier:
    def __init__(self, policy: Policy, root: str | None, cwd: str | None) -> None:
        self.p = policy
        if root is not None:
            root = posixpath.normpath(root) if root.startswith("/") else None
        if cwd is not None:
            cwd = posixpath.normpath(posixpath.join(root or _VIRTUAL_ROOT, cwd))
        self.root = root or cwd or _VIRTUAL_ROOT
        self.start_cwd: str | None = cwd or self.root
        self.count = 0
        # files whose content this command line writes (redirections, tee, sort -o...), and
        # the operands of every command that may change files
        self.written: set[str] = set()
        self.touched: set[str] = set()
        # (part, file, also_touched): scripts and programs run from a file
        self.runs: list[tuple[_Part, str, bool]] = []
        # plain commands already judged, by directory and words: their parts and stdin reader
        self.seen: dict[tuple[str | None, tuple[str, ...]], tuple[list[_Part], _Part | None]] = {}
        self.total = 0  # simple commands, repeats included

    # -- scripts

    def script_text(self, text: str, cwd: str | None, depth: int) -> list[_Part]:
        try:
            body = _parse(text, depth)
        except _ParseError as exc:
            return self.salvage(text, None, exc, cwd, depth)
        return self.run_list(body, cwd, depth)[0]

    def script_tokens(self, sub: _Sub, cwd: str | None, depth: int) -> list[_Part]:
        src, toks = sub
        try:
            body = _Parser(toks, len(src)).parse()
        except _ParseError as exc:
            return self.salvage(src, toks, exc, cwd, depth)
        return self.run_list(body, cwd, depth)[0]

    def salvage(
        self, text: str, toks: list[_Tok] | None, exc: _ParseError, cwd: str | None, depth: int
    ) -> list[_Part]:
        """Text that does not parse: the unparsable verdict, and with it every command that
        can still be read in it, so a syntax error never hides ``rm -rf /``."""
        part = self.unparsable_part(self.p, text, f"{exc} (at character {exc.pos + 1})")
        best: list[_Part] = []
        best_rank = -1
        seen = self.seen
        for body in _salvage(text, toks, depth):
            self.seen = dict(seen)  # each reading judges its own commands
            parts = self.run_list(body, cwd, depth)[0]
            rank = max((p.finish(self.p).action.rank for p in parts), default=-1)
            if rank > best_rank:
                best, best_rank = parts, rank
        return [part, *best]

    @staticmethod
    def unparsable_part(policy: Policy, text: str, why: str) -> _Part:
        shown = text if len(text) <= 60 else text[:59] + "…"
        outcome = strictest([policy.unparsable, policy.outcome_for(policy.unknown)])
        return _Part(
            (text,),
            "<unparsable>",
            policy.unknown,
            outcome,
            BUILTIN_UNPARSABLE,
            f"{shown!r} cannot be parsed as a shell command: {why}",
        )

    def run_list(self, body: list[_Pipeline], cwd: str | None, depth: int) -> tuple[list[_Part], str | None]:
        parts: list[_Part] = []
        for pipeline in body:
            stage_parts: list[list[_Part]] = []
            consumers: list[list[_Part]] = []
            alone = len(pipeline.stages) == 1
            for stage in pipeline.stages:
                if isinstance(stage, _Group):
                    targets = [r.target for r in stage.redirs if r.target is not None and r.heredoc is None]
                    got = self.subs_of(targets, cwd, depth)[0]
                    inner, inner_cwd = self.run_list(stage.body, cwd, depth + 1)
                    got += inner + self.redirect_parts(stage.redirs, cwd)
                    eaters = [p for p in inner if p.stdin_code]
                    if alone and not stage.subshell:
                        cwd = inner_cwd
                else:
                    key = _repeat_key(stage, cwd) if alone else None
                    cached = self.seen.get(key) if key is not None else None
                    if cached is not None:  # `ls; ls; ...`: the same command, judged once
                        self.total += 1
                        got, eater, new_cwd = cached[0], cached[1], _SAME
                    else:
                        got, eater, new_cwd = self.simple(stage, cwd, depth)
                        if key is not None:
                            self.seen[key] = (got, eater)
                    eaters = [eater] if eater is not None else []
                    if alone and new_cwd is not _SAME:
                        cwd = new_cwd
                stage_parts.append(got)
                consumers.append(eaters)
            for i in range(1, len(stage_parts)):
                if consumers[i] and any(p.networked() for ps in stage_parts[:i] for p in ps):
                    for eater in consumers[i]:
                        self.remote_code(eater, "runs what a network download sends it")
                if any(p.program in _SHELLS or p.program in _SOURCE for p in consumers[i]):
                    fed = _literal_output(pipeline.stages[i - 1])  # `echo 'rm -rf /' | sh`
                    if fed:
                        stage_parts[i].extend(self.script_text(fed, cwd, depth + 1))
            for ps in stage_parts:
                parts.extend(ps)
        return parts, cwd

    @staticmethod
    def remote_code(part: _Part, how: str) -> None:
        if not any(f.name == BUILTIN_REMOTE_CODE for f in part.findings):
            part.findings.append(
                _Finding(
                    BUILTIN_REMOTE_CODE,
                    (Category.NETWORKED, Category.HOST_ESCAPE_RISK),
                    f"`{part.program}` {how}: code from the network",
                )
            )

    # -- simple commands

    def subs_of(
        self, words: Iterable[_Word], cwd: str | None, depth: int
    ) -> tuple[list[_Part], dict[int, list[_Part]]]:
        parts: list[_Part] = []
        by_word: dict[int, list[_Part]] = {}
        for w in words:
            for sub in w.subs:
                got = self.script_tokens(sub, cwd, depth + 1)
                by_word.setdefault(id(w), []).extend(got)
                parts.extend(got)
        return parts, by_word

    def simple(self, stage: _Simple, cwd: str | None, depth: int) -> tuple[list[_Part], _Part | None, Any]:
        targets = [r.target for r in stage.redirs if r.target is not None and r.heredoc is None]
        parts, by_word = self.subs_of([*stage.assigns, *stage.words, *stage.data, *targets], cwd, depth)
        for r in stage.redirs:
            if r.heredoc is not None:
                for sub in r.heredoc.subs:
                    parts.extend(self.script_tokens(sub, cwd, depth + 1))
        if not stage.words:
            return parts + self.redirect_parts(stage.redirs, cwd), None, _SAME
        got, eater, new_cwd = self.command_words(
            stage.words, by_word, stage.redirs, cwd, depth, assigns=stage.assigns
        )
        return parts + got, eater, new_cwd

    def redirect_findings(self, redirs: list[_Redir], cwd: str | None) -> list[_Finding]:
        out = []
        for r in redirs:
            if r.op not in _WRITE_REDIRS or r.target is None:
                continue
            value = r.target.value
            if r.op in (">&", "<&") and (value == "-" or value.isdigit()):
                continue  # 2>&1: a file descriptor, not a file
            self.written.add(self.path_key(r.target, cwd))
            if self.outside(r.target, cwd):
                out.append(
                    _Finding(
                        BUILTIN_REDIRECT_OUTSIDE,
                        (Category.MUTATING, Category.HOST_ESCAPE_RISK),
                        f"writes to {value}, outside the workspace",
                    )
                )
            elif value not in _HARMLESS_PATHS and not value.startswith(("/dev/fd/", "/proc/self/fd/")):
                out.append(_Finding(BUILTIN_REDIRECT, (Category.MUTATING,), f"writes to {value}"))
        return out

    def redirect_parts(self, redirs: list[_Redir], cwd: str | None) -> list[_Part]:
        findings = self.redirect_findings(redirs, cwd)
        if not findings:
            return []
        self.tick()
        return [_Part((), "", (), None, "", "", findings)]

    def tick(self) -> None:
        self.total += 1
        self.count += 1
        if self.count > _MAX_PARTS:
            raise _TooComplex("the command holds too many commands to classify")

    def command_words(
        self,
        words: list[_Word],
        by_word: dict[int, list[_Part]],
        redirs: list[_Redir],
        cwd: str | None,
        depth: int,
        assigns: Sequence[_Word] = (),
    ) -> tuple[list[_Part], _Part | None, Any]:
        """Classify one command (its wrappers, then the program). Returns the parts, the
        part that reads the standard input as code (if any), and the new working
        directory when the command is ``cd`` (else ``_SAME``)."""
        self.tick()
        parts: list[_Part] = []
        via_xargs = False
        env = list(assigns)  # NAME=VALUE the program gets (before it, or through env/sudo)
        stdin_redirected = any(r.op in ("<", "<<", "<<-", "<<<", "<&", "<>") for r in redirs)
        while True:
            w0 = words[0]
            args = words[1:]
            if w0.dynamic or w0.unknown or _is_pattern(w0):
                part = self.part_for(w0.value, words, cwd, rule=None, dynamic=True)
                if any(p.networked() for p in by_word.get(id(w0), ())):
                    self.remote_code(part, "is a program name computed from a download")
                self.opaque(part, f"the program `{_show((w0.value,), 40)}` is only known at run time")
                return self.finish(parts, part, redirs, cwd)
            name = _program_name(w0.value)
            wrap = _WRAPPERS.get(name)
            if wrap is not None:
                unwrapped = self.unwrap(name, wrap, args, cwd)
                if unwrapped is not None:
                    rest, wrapped_cwd, k = unwrapped
                    wrapper_argv = words[: k + 1]
                    rule = self.match(name, wrapper_argv[1:], cwd)[0]
                    if rule is not None and rule.classes != (Category.READ_ONLY,):
                        parts.append(self.part_for(name, wrapper_argv, cwd, rule=rule))
                    env.extend(w for w in wrapper_argv[1:] if _ASSIGN.match(w.value))
                    if name == "xargs":
                        via_xargs = True
                        rest = _with_input(rest, _xargs_replace(wrapper_argv[1:]))
                    if wrap.shell:
                        return self.shell_wrapper(name, wrapper_argv, rest, parts, redirs, wrapped_cwd, depth)
                    while len(rest) > 1 and _is_assignment(rest[0]):
                        env.append(rest.pop(0))  # `nice X=1 cmd` fails; read as the environment
                    words, cwd = rest, wrapped_cwd
                    continue
            if name in _SHELLS:
                kind, script = _shell_mode(args)
                if kind == "c" and script is not None and not script.unknown:
                    parts.extend(self.script_text(script.value, cwd, depth + 1))
                    return parts + self.redirect_parts(redirs, cwd), None, _SAME
            if name in _EVAL_LIKE and args:
                parts.extend(self.script_text(" ".join(a.value for a in args), cwd, depth + 1))
                return parts + self.redirect_parts(redirs, cwd), None, _SAME
            if name == "trap":
                operands = [a for a in args if not a.value.startswith("-")]
                if len(operands) >= 2:
                    parts.extend(self.script_text(operands[0].value, cwd, depth + 1))
            if name == "alias":  # the value runs wherever the alias is used
                for a in args:
                    if "=" in a.value:
                        parts.extend(self.script_text(a.value.split("=", 1)[1], cwd, depth + 1))
            if name == "find":
                for cmd in _find_execs(args):
                    parts.extend(self.command_words(cmd, {}, [], cwd, depth + 1)[0])
            eff_cwd = self.program_cwd(name, args, cwd)
            rule, skipped = self.match(name, args, eff_cwd)
            part = self.part_for(name, words, eff_cwd, rule=rule)
            if skipped is not None:
                self.unknown_paths(part, skipped)
            runs_before = len(self.runs)
            parts.extend(self.effects(name, args, part, eff_cwd, env, depth))
            shell = name in _SHELLS or name in _SOURCE
            executes = shell or _interpreter(name) is not None
            if executes:
                if any(p.networked() for a in args for p in by_word.get(id(a), ())):
                    self.remote_code(part, "runs a script produced by a download")
                part.stdin_code = via_xargs or (not stdin_redirected and _reads_stdin_code(name, args))
                parts.extend(self.stdin_script(name, redirs, cwd, depth))
            if shell:
                self.shell_input(name, args, part, redirs, eff_cwd, via_xargs)
            elif "/" in w0.value:
                self.runs.append((part, self.path_key(w0, cwd), False))
            if name == "parallel":  # no command: it runs the lines of its input
                self.opaque(part, "runs the commands its input holds")
            if not shell and name not in _METADATA_ONLY and part.classes != (Category.READ_ONLY,):
                own = {key for _, key, _ in self.runs[runs_before:]}  # `awk -f F` does not write F
                for a in args:
                    self.note_touched(a, eff_cwd, own)
            new_cwd: Any = _SAME
            if name in ("cd", "pushd", "popd") and not via_xargs:
                new_cwd = self.cd_target(name, args, cwd)
            got, eater, _ = self.finish(parts, part, redirs, eff_cwd)
            return got, eater, new_cwd

    # -- what the command line does not show

    def opaque(self, part: _Part, why: str) -> None:
        """``part`` runs code (or a program) the command line does not show: it is judged
        like text that cannot be parsed (``[defaults] unparsable``, at least approval)."""
        outcome = strictest([self.p.unparsable, self.p.outcome_for(self.p.unknown)])
        part.findings.append(
            _Finding(BUILTIN_OPAQUE, self.p.unknown, why + ": what it runs cannot be read", outcome)
        )

    def unknown_paths(self, part: _Part, rule: Rule) -> None:
        """A rule that needs a path outside could not decide: some paths come from the
        input (xargs). Approval, unless that rule itself is laxer."""
        outside = rule.outcome if rule.outcome is not None else self.p.outcome_for(rule.classes)
        outcome = outside if outside.rank < Outcome.REQUIRE_APPROVAL.rank else Outcome.REQUIRE_APPROVAL
        classes = tuple(c for c in rule.classes if c is not Category.HOST_ESCAPE_RISK) or self.p.unknown
        text = f"its paths come from its input and may lie outside the workspace (rule {rule.name!r})"
        part.findings.append(_Finding(BUILTIN_UNKNOWN_PATHS, classes, text, outcome))

    def shell_input(
        self,
        name: str,
        args: list[_Word],
        part: _Part,
        redirs: list[_Redir],
        cwd: str | None,
        via_xargs: bool,
    ) -> None:
        """A shell (or ``source``) running a script: from a file, or from its input."""
        if via_xargs:
            self.opaque(part, f"`{name}` runs shell code or a script that its input (xargs) names")
            return
        if part.stdin_code:
            self.opaque(part, f"`{name}` runs the shell code on its standard input")
            return
        script: _Word | None = None
        if name in _SOURCE:
            script = args[0] if args else None
        else:
            kind, script = _shell_mode(args)
            if kind != "script":
                script = None
        if script is None:
            for r in redirs:
                if r.op == "<" and r.target is not None:
                    script = r.target
        if script is None:
            return
        if script.unknown or (script.dynamic and script.value.startswith(("<(", ">("))):
            self.opaque(part, f"`{name}` runs a script that another command produces")
            return
        self.runs.append((part, self.path_key(script, cwd), True))

    def shell_wrapper(
        self,
        name: str,
        wrapper_argv: list[_Word],
        rest: list[_Word],
        parts: list[_Part],
        redirs: list[_Redir],
        cwd: str | None,
        depth: int,
    ) -> tuple[list[_Part], _Part | None, Any]:
        """``watch`` and ``parallel`` join their command's words and run them with ``sh -c``."""
        values = [w.value for w in rest]
        text = " ".join(values)
        if name == "parallel":
            text = _parallel_text(values)
            part = self.part_for(name, [*wrapper_argv, *rest], cwd, rule=None)
            self.opaque(
                part,
                "`parallel` runs its command once per input, with arguments that may come from its input",
            )
            parts.append(part)
        if text:
            parts.extend(self.script_text(text, cwd, depth + 1))
        return parts + self.redirect_parts(redirs, cwd), None, _SAME

    def path_key(self, w: _Word, cwd: str | None) -> str:
        """How a file is named in ``written``, ``touched`` and ``runs``."""
        v = w.value
        if w.tilde or w.lead is not None or w.unknown:
            return v
        if not v.startswith("/"):
            if cwd is None:
                return v
            v = cwd + "/" + v
        return posixpath.normpath(v)

    def note_touched(self, a: _Word, cwd: str | None, own: set[str]) -> None:
        v = a.value
        keys = []
        if "=" in v:  # of=FILE, --output=FILE
            keys.append(self.path_key(_literal_path(v.split("=", 1)[1]), cwd))
        if not v.startswith("-"):
            keys.append(self.path_key(a, cwd))
        self.touched.update(k for k in keys if k not in own)

    def late(self, parts: list[_Part], text: str) -> None:
        """Findings that need the whole command line: a script run from a file that the
        same command line writes; more commands than a person would read."""
        if self.total > _MAX_PARTS:
            why = f"it holds {self.total} commands (more than {_MAX_PARTS})"
            parts.insert(0, self.unparsable_part(self.p, text, why))
        for part, key, any_change in self.runs:
            if key in self.written or (any_change and key in self.touched):
                shown = part.argv[1] if part.program in _SOURCE and len(part.argv) > 1 else key
                self.opaque(part, f"`{part.program}` runs {shown}, which this command line writes")

    # -- programs whose arguments hide writes or commands

    def effects(
        self, name: str, args: list[_Word], part: _Part, cwd: str | None, env: list[_Word], depth: int
    ) -> list[_Part]:
        """Writes and commands hidden in the arguments of programs otherwise read-only
        (``sort -o``, ``find -fprint``, ``less -o``, awk and sed programs), and git's
        ``--work-tree`` / ``--git-dir``. Returns the parts of the commands they run."""
        extra: list[_Part] = []
        targets: list[_Word] = []
        spec = _WRITE_OPTS.get(name)
        if spec is not None:
            targets.extend(_option_values(args, *spec))
        if name == "uniq":
            operands = [a for a in args if not a.value.startswith("-") or a.value == "-"]
            if len(operands) >= 2:
                targets.append(operands[1])
        elif name == "tee":
            for a in args:
                if not a.value.startswith("-"):
                    self.written.add(self.path_key(a, cwd))
        elif name == "dd":
            for a in args:
                if a.value.startswith("of="):
                    self.written.add(self.path_key(_literal_path(a.value[3:]), cwd))
        elif name == "sort" and any(a.value.startswith("--compress-program") for a in args):
            self.opaque(part, "`sort --compress-program` runs a program")
        elif name in _AWKS:
            extra.extend(self.awk(args, part, cwd, depth, targets))
        elif name in _SEDS:
            extra.extend(self.sed(args, part, cwd, depth, targets))
        elif name == "git":
            self.git_targets(args, env, part, cwd)
        if targets:
            part.findings.extend(self.redirect_findings([_Redir(">", "", t, None) for t in targets], cwd))
        return extra

    def as_unknown(self, part: _Part, why: str) -> None:
        """A program that runs code from a file (``awk -f``, ``sed -f``): ``[defaults] unknown``."""
        part.classes, part.outcome, part.name = self.p.unknown, None, DEFAULT_RULE
        part.text = f"`{_show(part.argv)}` {why}; treated as unknown ({', '.join(self.p.unknown)})"

    def script_file(self, part: _Part, w: _Word, cwd: str | None, what: str) -> None:
        if w.value in ("-", "/dev/stdin", "/dev/fd/0") or w.unknown or w.dynamic:
            self.opaque(part, f"{what} comes from its input or from a command")
        else:
            self.as_unknown(part, f"runs {what} {w.value}")
            self.runs.append((part, self.path_key(w, cwd), True))

    def awk(
        self, args: list[_Word], part: _Part, cwd: str | None, depth: int, targets: list[_Word]
    ) -> list[_Part]:
        programs, files, loads = _awk_programs(args)
        for f in files:
            self.script_file(part, f, cwd, "an awk program from")
        if loads:
            self.opaque(part, "awk loads an extension (compiled code)")
        extra: list[_Part] = []
        for prog in programs:
            if prog.dynamic:
                self.opaque(part, "the awk program is only known at run time")
                continue
            risk = _awk_risk(prog.value)
            if risk is None:
                continue
            self.opaque(part, f"the awk program {risk}")
            for kind, text in _awk_literals(prog.value):
                if kind == "run":
                    extra.extend(self.script_text(text, cwd, depth + 1))
                else:
                    targets.append(_literal_path(text))
        return extra

    def sed(
        self, args: list[_Word], part: _Part, cwd: str | None, depth: int, targets: list[_Word]
    ) -> list[_Part]:
        scripts, files, sandbox, maybe = _sed_scripts(args)
        if sandbox:
            return []
        for f in files:
            self.script_file(part, f, cwd, "a sed script from")
        extra: list[_Part] = []
        for script in [*scripts, *maybe]:
            if script.dynamic and script not in maybe:
                self.opaque(part, "the sed script is only known at run time")
                continue
            if not any(ch in script.value for ch in "weW"):
                continue  # fast path: no command that writes or runs
            try:
                writes, commands, runs_text = _sed_scan(script.value)
            except ValueError:
                if script not in maybe:
                    self.opaque(part, "the sed script cannot be read")
                continue
            targets.extend(_literal_path(w) for w in writes)
            for cmd in commands:
                extra.extend(self.script_text(cmd, cwd, depth + 1))
            if runs_text:
                self.opaque(part, "the sed script runs text of its input as a command (`e`)")
        return extra

    def git_targets(self, args: list[_Word], env: list[_Word], part: _Part, cwd: str | None) -> None:
        """``git --work-tree=/``, ``--git-dir``, ``GIT_WORK_TREE=/``: git working on a tree
        or a repository outside the workspace is like running there."""
        if not ({Category.MUTATING, Category.DESTRUCTIVE} & set(part.classes)):
            return
        found: list[_Word] = []
        values = [a.value for a in args]
        k = 0
        while k < len(values) and values[k].startswith("-"):
            v = values[k]
            key, eq, value = v.partition("=")
            if key in ("--work-tree", "--git-dir"):
                if not eq and k + 1 < len(args):
                    found.append(args[k + 1])
                    k += 1
                elif eq:
                    found.append(_literal_path(value))
            elif v == "-c" and k + 1 < len(values):
                setting, _, value = values[k + 1].partition("=")
                if setting.lower() == "core.worktree":
                    found.append(_literal_path(value))
                k += 1
            elif v in _GLOBAL_VALUE_OPTS["git"]:
                k += 1
            k += 1
        for w in env:
            key, _, value = w.value.partition("=")
            if key in ("GIT_WORK_TREE", "GIT_DIR", "GIT_INDEX_FILE", "GIT_COMMON_DIR"):
                found.append(_literal_path(value))
        for w in found:
            if self.outside(w, cwd):
                part.findings.append(
                    _Finding(
                        BUILTIN_CWD_OUTSIDE,
                        (Category.HOST_ESCAPE_RISK,),
                        f"works on {w.value}, outside the workspace",
                    )
                )
                return

    def finish(
        self,
        parts: list[_Part],
        part: _Part,
        redirs: list[_Redir],
        cwd: str | None,
    ) -> tuple[list[_Part], _Part | None, Any]:
        part.findings.extend(self.redirect_findings(redirs, cwd))
        if (
            cwd is not None
            and not _within(cwd, self.root)
            and ({Category.MUTATING, Category.DESTRUCTIVE} & set(part.classes))
        ):
            where = "~" if cwd.startswith(_HOME_DIR) else cwd
            part.findings.append(
                _Finding(
                    BUILTIN_CWD_OUTSIDE,
                    (Category.HOST_ESCAPE_RISK,),
                    f"runs in {where}, outside the workspace",
                )
            )
        parts.append(part)
        return parts, (part if part.stdin_code else None), _SAME

    def stdin_script(self, name: str, redirs: list[_Redir], cwd: str | None, depth: int) -> list[_Part]:
        """A here-document or here-string given to a shell is a script: classify it."""
        if name not in _SHELLS:
            return []
        out: list[_Part] = []
        for r in redirs:
            if r.heredoc is not None:
                out.extend(self.script_text(r.heredoc.body, cwd, depth + 1))
            elif r.op == "<<<" and r.target is not None:
                out.extend(self.script_text(r.target.value, cwd, depth + 1))
        return out

    def part_for(
        self, name: str, words: list[_Word], cwd: str | None, *, rule: Rule | None, dynamic: bool = False
    ) -> _Part:
        argv = tuple(w.value for w in words)
        shown = _show(argv)
        if rule is not None:
            why = rule.description or ", ".join(rule.classes)
            return _Part(
                argv,
                name,
                rule.classes,
                rule.outcome,
                rule.name,
                f"`{shown}` matches rule {rule.name!r} ({why})",
            )
        unknown = ", ".join(self.p.unknown)
        if dynamic:
            text = f"`{shown}`: the program is only known at run time; treated as unknown ({unknown})"
        else:
            text = f"`{shown}`: {name!r} matches no rule; unknown programs are {unknown}"
        return _Part(argv, name, self.p.unknown, None, DEFAULT_RULE, text)

    # -- rules

    def match(self, name: str, args: list[_Word], cwd: str | None) -> tuple[Rule | None, Rule | None]:
        """The first rule that matches, and the first rule skipped only because some path
        comes from the input (xargs) and may or may not lie outside."""
        values = [a.value for a in args]
        skipped: Rule | None = None
        sub: str | bool | None = False  # not computed yet
        joined: str | None = None
        for rule in self.p.rules:
            if not rule.matches_program(name):
                continue
            if rule.subcommand:
                if sub is False:
                    sub = _subcommand(name, values)
                if not isinstance(sub, str) or not _glob_re(rule.subcommand).match(sub):
                    continue
            if rule.args_any:
                pat = _glob_re(rule.args_any)
                if not any(pat.match(v) for v in values):
                    continue
            if rule.args_all and not all(any(_glob_re((g,)).match(v) for v in values) for g in rule.args_all):
                continue
            if rule.args_none:
                pat = _glob_re(rule.args_none)
                if any(pat.match(v) for v in values):
                    continue
            if rule.args_regex is not None:
                if joined is None:
                    joined = " ".join(values)
                if not _regex(rule.args_regex).search(joined):
                    continue
            if rule.outside_paths is not None:
                outside = self.paths_outside(args, cwd, rule.outside_paths)
                if outside is None:
                    skipped = skipped or rule
                    continue
                if not outside:
                    continue
            return rule, skipped
        return None, skipped

    def paths_outside(self, args: list[_Word], cwd: str | None, mode: str) -> bool | None:
        """Whether a path argument lies outside; None when only paths from the input might."""
        if any(a.unknown for a in args):
            # what is known decides as if the input were empty; else the input might
            known = [a for a in args if not a.unknown]
            if self.scan_paths(known, cwd, mode):
                return True
            return None if self.scan_paths(args, cwd, mode) is not False else False
        return self.scan_paths(args, cwd, mode)

    def scan_paths(self, args: list[_Word], cwd: str | None, mode: str) -> bool | None:
        operands: list[_Word] = []
        target: _Word | None = None
        options_done = False
        skip = False
        for k, a in enumerate(args):
            v = a.value
            if skip:
                skip = False
                continue
            if options_done or not v.startswith("-") or v == "-":
                operands.append(a)
            elif v == "--":
                options_done = True
            elif v in ("-t", "--target-directory") and k + 1 < len(args):
                target = args[k + 1]
                skip = True
            elif v.startswith("--target-directory="):
                target = _Word.literal(v.split("=", 1)[1])
                target.tilde = target.value.startswith("~")
        if mode == "last":
            if target is None and len(operands) >= 2:
                target = operands[-1]
            candidates = [target] if target is not None else []
        else:
            candidates = [*operands, *([target] if target else [])]
        unknown = False
        for a in candidates:
            if a.unknown:
                unknown = True
            elif self.outside(a, cwd):
                return True
        return None if unknown else False

    def outside(self, w: _Word, cwd: str | None) -> bool:
        """Whether the path ``w`` may be outside the workspace (unknown counts as outside)."""
        v = w.value
        if w.tilde:
            return True
        if w.lead is not None:
            if w.lead == "PWD" and cwd is not None:
                v = cwd + v[w.lead_len :]
            else:
                return True  # $HOME, $TMPDIR, "$x"/...: not provably inside
        if v in _HARMLESS_PATHS or v.startswith(("/dev/fd/", "/proc/self/fd/")):
            return False
        if w.glob:  # `.*` matches `..` in older shells
            v = "/".join(
                ".." if c.startswith(".") and c != ".." and fnmatch.fnmatchcase("..", c) else c
                for c in v.split("/")
            )
        if v.startswith("/"):
            path = v
        elif cwd is None:
            return True
        else:
            path = cwd + "/" + v
        path = posixpath.normpath(path)
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        return not _within(path, self.root)

    # -- directories

    def resolve_dir(self, w: _Word, cwd: str | None) -> str | None:
        v = w.value
        if w.tilde:
            return posixpath.normpath(_HOME_DIR + v[v.index("/") :]) if "/" in v else _HOME_DIR
        if w.lead is not None:
            if w.lead == "PWD" and cwd is not None:
                v = cwd + v[w.lead_len :]
            elif w.lead in _HOME_VARS:
                return _HOME_DIR
            else:
                return None
        if not v.startswith("/"):
            if cwd is None:
                return None
            v = cwd + "/" + v
        path = posixpath.normpath(v)
        return "/" + path.lstrip("/") if path.startswith("//") else path

    def cd_target(self, name: str, args: list[_Word], cwd: str | None) -> str | None:
        if name == "popd":
            return None
        operands = [a for a in args if not (a.value.startswith("-") and a.value != "-")]
        if not operands:
            return _HOME_DIR if name == "cd" else None
        if operands[0].value == "-":
            return None
        return self.resolve_dir(operands[0], cwd)

    def program_cwd(self, name: str, args: list[_Word], cwd: str | None) -> str | None:
        spec = _CHDIR_OPTS.get(name)
        if spec is None:
            return cwd
        opts, global_only = spec
        values = [a.value for a in args]
        k = 0
        value_opts = _GLOBAL_VALUE_OPTS.get(name, frozenset())
        while k < len(args):
            v = values[k]
            if global_only and not v.startswith("-"):
                break
            for opt in opts:
                if v == opt and k + 1 < len(args):
                    cwd = self.resolve_dir(args[k + 1], cwd)
                    k += 1
                    break
                if opt.startswith("--") and v.startswith(opt + "="):
                    cwd = self.resolve_dir(_Word.literal(v.split("=", 1)[1]), cwd)
                    break
                if not opt.startswith("--") and v.startswith(opt) and len(v) > len(opt) and not global_only:
                    cwd = self.resolve_dir(_Word.literal(v[len(opt) :]), cwd)
                    break
            else:
                if v in value_opts:
                    k += 1
            k += 1
        return cwd

    # -- wrappers

    def unwrap(
        self, name: str, wrap: _Wrap, args: list[_Word], cwd: str | None
    ) -> tuple[list[_Word], str | None, int] | None:
        """The wrapped command of ``name args`` (None when there is none), the directory it
        runs in, and how many of ``args`` belong to the wrapper."""
        i = 0
        extra: list[_Word] = []
        while i < len(args):
            v = args[i].value
            if v == "--":
                i += 1
                break
            if v == "-" and name == "env":
                i += 1
                continue
            if v.startswith("--") and len(v) > 2:
                key, eq, value = v.partition("=")
                if key in wrap.value_long and not eq:
                    value = args[i + 1].value if i + 1 < len(args) else ""
                    i += 1
                if key in wrap.value_long:
                    if key in wrap.chdir:
                        cwd = self.resolve_dir(_literal_path(value), cwd)
                    if key in wrap.split:
                        extra = _split_words(value)
                i += 1
                continue
            if v.startswith("-") and len(v) > 1:
                for j in range(1, len(v)):
                    ch = v[j]
                    if ch in wrap.no_command:
                        return None
                    if ch in wrap.value_short:
                        if j + 1 < len(v):
                            value = v[j + 1 :]
                        else:
                            value = args[i + 1].value if i + 1 < len(args) else ""
                            i += 1
                        if "-" + ch in wrap.chdir:
                            cwd = self.resolve_dir(_literal_path(value), cwd)
                        if "-" + ch in wrap.split:
                            extra = _split_words(value)
                        break
                i += 1
                continue
            break
        i += wrap.operands
        if wrap.assignments:
            while i < len(args) and _ASSIGN.match(args[i].value):
                i += 1
        rest = extra + args[i:]
        if not rest:
            return None
        return rest, cwd, min(i, len(args))


_SAME: Final[Any] = object()


def _repeat_key(stage: _Simple, cwd: str | None) -> tuple[str | None, tuple[str, ...]] | None:
    """A plain command (literal words, no redirection, no assignment) that, run again in the
    same directory, is judged the same: its key. ``cd`` is not plain (it moves)."""
    if stage.redirs or stage.assigns or stage.data or not stage.words:
        return None
    for w in stage.words:
        if w.dynamic or w.subs or w.glob:
            return None
    values = tuple(w.value for w in stage.words)
    if values[0] in ("cd", "pushd", "popd"):
        return None
    return cwd, values


def _literal_output(stage: _Simple | _Group) -> str | None:
    """What ``echo``/``printf`` with literal arguments writes (roughly), else None."""
    if not isinstance(stage, _Simple) or not stage.words or stage.words[0].value not in ("echo", "printf"):
        return None
    if any(w.dynamic for w in stage.words):
        return None
    values = [w.value for w in stage.words[1:]]
    if stage.words[0].value == "echo":
        while values and re.fullmatch(r"-[neE]+", values[0]):
            values.pop(0)
        return " ".join(values).replace("\\n", "\n")  # dash's echo reads escapes
    return "\n".join(v.replace("\\n", "\n") for v in values)


def _is_pattern(w: _Word) -> bool:
    """A word with an unquoted glob that may match files (``/bin/r?``); a lone ``[`` is not."""
    if not w.glob or w.mask is None:
        return False
    opened = False
    for ch, unquoted in zip(w.value, w.mask, strict=True):
        if not unquoted:
            continue
        if ch in "*?" or (ch == "]" and opened):
            return True
        if ch == "[":
            opened = True
    return False


_INPUT: Final = "<input>"


def _input_word() -> _Word:
    w = _Word.literal(_INPUT)
    w.unknown = True
    return w


def _xargs_replace(options: list[_Word]) -> str | None:
    """The replace string of ``xargs -I R`` / ``-i[R]`` / ``--replace[=R]``."""
    for k, w in enumerate(options):
        v = w.value
        if v == "-I" and k + 1 < len(options):
            return options[k + 1].value or None
        if v.startswith("-I") and len(v) > 2:
            return v[2:]
        if v.startswith("-i") and not v.startswith("--"):
            return v[2:] or "{}"
        if v == "--replace" or v.startswith("--replace="):
            return v.partition("=")[2] or "{}"
    return None


def _with_input(rest: list[_Word], replace: str | None) -> list[_Word]:
    """xargs' command with the words it reads from its input: unknown paths."""
    if replace is None:
        return [*rest, _input_word()]
    out: list[_Word] = []
    for w in rest:
        if replace in w.value:
            u = _Word.literal(w.value)
            u.unknown = True
            out.append(u)
        else:
            out.append(w)
    return out


_PARALLEL_SEPS: Final = frozenset({":::", "::::", ":::+", "::::+"})
_PARALLEL_REPL = re.compile(r"\{[^{}\s]*\}")


def _parallel_text(values: list[str]) -> str:
    """What ``parallel CMD ::: A B`` runs, as one shell text (all inputs at once)."""
    k = next((i for i, v in enumerate(values) if v in _PARALLEL_SEPS), len(values))
    inputs: list[str] = []
    literal = False
    for v in values[k:]:
        if v in _PARALLEL_SEPS:
            literal = v in (":::", ":::+")
        elif literal:
            inputs.append(v)
    cmd = " ".join(values[:k])
    if not cmd:
        return "\n".join(inputs)  # the inputs are the commands
    if not inputs:
        return cmd
    joined = " ".join(shlex.quote(i) for i in inputs)
    if _PARALLEL_REPL.search(cmd):
        return _PARALLEL_REPL.sub(lambda _m: joined, cmd)
    return cmd + " " + joined


def _option_values(args: list[_Word], opts: tuple[str, ...], value_short: str | None) -> list[_Word]:
    """The values of ``opts`` in ``args`` (``-o F``, ``-oF``, ``-ro F``, ``--output=F``)."""
    out: list[_Word] = []
    k = 0
    while k < len(args):
        v = args[k].value
        nxt = args[k + 1] if k + 1 < len(args) else None
        if v == "--" and value_short is not None:
            break
        if v in opts:
            if nxt is not None:
                out.append(nxt)
            k += 2
            continue
        if v.startswith("--"):
            key, eq, value = v.partition("=")
            if eq and key in opts:
                out.append(_literal_path(value))
        elif value_short is not None and v.startswith("-") and len(v) > 1:
            for j in range(1, len(v)):
                ch = v[j]
                if ch in value_short:
                    value_word = _literal_path(v[j + 1 :]) if j + 1 < len(v) else nxt
                    if "-" + ch in opts and value_word is not None:
                        out.append(value_word)
                    if j + 1 >= len(v):
                        k += 1
                    break
        k += 1
    return out


def _awk_programs(args: list[_Word]) -> tuple[list[_Word], list[_Word], bool]:
    """An awk command's program texts, program files (``-f``) and whether it loads an
    extension (gawk ``-l``, ``@load``)."""
    programs: list[_Word] = []
    files: list[_Word] = []
    loads = False
    k = 0
    while k < len(args):
        v = args[k].value
        nxt = args[k + 1] if k + 1 < len(args) else None
        if v == "--":
            k += 1
            break
        if v.startswith("--") and len(v) > 2:
            key, eq, value = v.partition("=")
            word = _literal_path(value) if eq else nxt
            if key in (
                "--file",
                "--exec",
                "--include",
                "--source",
                "--load",
                "--field-separator",
                "--assign",
            ):
                if key == "--source" and word is not None:
                    programs.append(word)
                elif key == "--load":
                    loads = True
                elif key != "--field-separator" and key != "--assign" and word is not None:
                    files.append(word)
                k += 1 if eq else 2
                continue
            k += 1
            continue
        if v.startswith("-") and len(v) > 1:
            ch = v[1]
            word = _literal_path(v[2:]) if len(v) > 2 else nxt
            step = 1 if len(v) > 2 else 2
            if ch in "fEi" and word is not None:
                files.append(word)
            elif ch == "e" and word is not None:
                programs.append(word)
            elif ch == "l":
                loads = True
            elif ch not in "FvW":
                step = 1  # a flag (-b, -c, -P, -n...)
            k += step
            continue
        break
    if not programs and not files and k < len(args):
        programs.append(args[k])
    return programs, files, loads


_AWK_STRING = re.compile(r'"(?:\\.|[^"\\\n])*"')
_AWK_REGEX = re.compile(r"(?:\A|(?<=[(,~!{};&|\n]))\s*/(?:\\.|\[[^\]\n]*\]|[^/\\\n])*/")
_AWK_RISKS: Final = (
    (re.compile(r"\bsystem\s*\("), "runs a command (`system`)"),
    (re.compile(r"(?<!\|)\|(?!\|)"), "runs a command through a pipe (`| getline`, `print |`)"),
    (re.compile(r"\bprintf?\b[^;{}\n]*>"), "writes to a file (`print >`)"),
    (re.compile(r"@load\b"), "loads an extension (compiled code)"),
)


def _awk_risk(program: str) -> str | None:
    """What an awk program does beyond reading and printing, or None."""
    if not any(ch in program for ch in "|>(@"):
        return None
    bare = _AWK_REGEX.sub(" ", _AWK_STRING.sub('""', program))
    for pattern, what in _AWK_RISKS:
        if pattern.search(bare):
            return what
    return None


_AWK_LIT = r'"((?:\\.|[^"\\])*)"'
_AWK_RUN = re.compile(
    r"\bsystem\s*\(\s*" + _AWK_LIT + r"|" + _AWK_LIT + r"\s*\|&?\s*getline|\|&?\s*" + _AWK_LIT
)
_AWK_WRITE = re.compile(r"\bprintf?\b[^;{}\n]*?>>?\s*" + _AWK_LIT)


def _awk_unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), text)


def _awk_literals(program: str) -> list[tuple[str, str]]:
    """("run", command) and ("write", file) for the literal strings an awk program runs
    or writes to."""
    out: list[tuple[str, str]] = []
    for m in _AWK_RUN.finditer(program):
        text = next(g for g in m.groups() if g is not None)
        out.append(("run", _awk_unescape(text)))
    for m in _AWK_WRITE.finditer(program):
        out.append(("write", _awk_unescape(m.group(1))))
    return out


def _sed_scripts(args: list[_Word]) -> tuple[list[_Word], list[_Word], bool, list[_Word]]:
    """A sed command's scripts (``-e``, or the first operand), script files (``-f``),
    whether ``--sandbox`` forbids ``e``, ``w`` and ``r``, and an operand that may be a
    script (the first, after ``-f``)."""
    scripts: list[_Word] = []
    files: list[_Word] = []
    sandbox = False
    operands: list[_Word] = []
    k = 0
    done = False
    while k < len(args):
        w = args[k]
        v = w.value
        nxt = args[k + 1] if k + 1 < len(args) else None
        if done or not v.startswith("-") or v == "-":
            operands.append(w)
        elif v == "--":
            done = True
        elif v.startswith("--"):
            key, eq, value = v.partition("=")
            word = _literal_path(value) if eq else nxt
            if key in ("--expression", "--file", "--line-length"):
                if word is not None and key == "--expression":
                    scripts.append(word)
                elif word is not None and key == "--file":
                    files.append(word)
                if not eq:
                    k += 1
            elif key == "--sandbox":
                sandbox = True
        else:
            for j in range(1, len(v)):
                ch = v[j]
                if ch in "efl":
                    word = _Word.literal(v[j + 1 :]) if j + 1 < len(v) else nxt
                    if word is not None and ch == "e":
                        scripts.append(word)
                    elif word is not None and ch == "f":
                        files.append(_literal_path(word.value) if j + 1 < len(v) else word)
                    if j + 1 >= len(v):
                        k += 1
                    break
                if ch == "i":
                    break  # the rest is the backup suffix
        k += 1
    maybe: list[_Word] = []
    if not scripts and operands:
        # the first operand is the script; with -f it is a file, but read it as a script
        # too (ignored unless it reads as one): `sed -rf` is `-r -f`
        (maybe if files else scripts).append(operands[0])
    return scripts, files, sandbox, maybe


def _sed_delim(t: str, i: int, d: str) -> int:
    """The index after the delimiter ``d`` that closes what starts at ``i``."""
    n = len(t)
    while i < n:
        c = t[i]
        if c == "\\":
            i += 2
            continue
        if c == d:
            return i + 1
        if c == "\n" and d != "\n":
            break
        i += 1
    raise ValueError("unterminated")


def _sed_line(t: str, i: int) -> tuple[str, int]:
    j = t.find("\n", i)
    j = len(t) if j < 0 else j
    return t[i:j], j


def _sed_address(t: str, i: int) -> int:
    n = len(t)
    while True:
        while i < n and t[i] in " \t":
            i += 1
        if i < n and t[i].isdigit():
            while i < n and (t[i].isdigit() or t[i] == "~"):
                i += 1
        elif i < n and t[i] == "$":
            i += 1
        elif i < n and t[i] in "/\\":
            if t[i] == "\\":
                i += 1
            if i >= n:
                raise ValueError("address")
            i = _sed_delim(t, i + 1, t[i])
            while i < n and t[i] in "IM":
                i += 1
        while i < n and t[i] in " \t":
            i += 1
        if i < n and t[i] == ",":
            i += 1
            while i < n and t[i] in " \t":
                i += 1
            if i < n and t[i] in "+~":
                i += 1
                while i < n and t[i].isdigit():
                    i += 1
                return i
            continue
        return i


def _sed_scan(t: str) -> tuple[list[str], list[str], bool]:
    """The files a sed script writes (``w``, ``W``, ``s///w``), the commands it runs
    (``e CMD``), and whether it runs text of its input (``e``, ``s///e``). Raises
    ValueError for a script it cannot read."""
    writes: list[str] = []
    commands: list[str] = []
    runs_input = False
    n = len(t)
    i = 0
    while i < n:
        c = t[i]
        if c in " \t\n;{}!":
            i += 1
            continue
        if c == "#":
            i = _sed_line(t, i)[1]
            continue
        i = _sed_address(t, i)
        if i >= n:
            break
        c = t[i]
        if c in "{!":
            i += 1
            continue
        i += 1
        if c == "s" or c == "y":
            if i >= n or t[i] in "\n\\":
                raise ValueError("s")
            d = t[i]
            i = _sed_delim(t, _sed_delim(t, i + 1, d), d)
            while c == "s" and i < n and t[i] not in ";\n}":
                if t[i] == "w":
                    line, i = _sed_line(t, i + 1)
                    writes.append(line.strip())
                    break
                if t[i] == "e":
                    runs_input = True
                i += 1
        elif c in "wW":
            line, i = _sed_line(t, i)
            writes.append(line.strip())
        elif c == "e":
            line, i = _sed_line(t, i)
            cmd = line.strip()
            if cmd:
                commands.append(cmd)
            else:
                runs_input = True
        elif c in "aic":
            line, i = _sed_line(t, i)
            while line.endswith("\\") and i < n:
                line, i = _sed_line(t, i + 1)
        elif c in "rR":
            i = _sed_line(t, i)[1]
        elif c in "btT:v":
            while i < n and t[i] not in ";\n":
                i += 1
        elif c in "qQlL":
            while i < n and (t[i].isdigit() or t[i] in " \t"):
                i += 1
        elif c not in "=dDgGhHnNpPxzF":
            raise ValueError(f"unknown sed command {c!r}")
    return writes, commands, runs_input


def _literal_path(value: str) -> _Word:
    w = _Word.literal(value)
    w.tilde = value.startswith("~")
    if value.startswith("$"):
        w.lead = value[1:].strip("{}").split("/", 1)[0]
        w.lead_len = len(value.split("/", 1)[0])
    return w


def _split_words(value: str) -> list[_Word]:
    try:
        return [_Word.literal(v) for v in shlex.split(value)]
    except ValueError:
        return [_Word.literal(v) for v in value.split()]


def _shell_mode(args: list[_Word]) -> tuple[str, _Word | None]:
    """How a shell is told what to run: ("c", the string), ("script", the file) or
    ("stdin", None)."""
    has_c = False
    stdin = False
    i = 0
    while i < len(args):
        v = args[i].value
        if v in ("-", "--"):
            i += 1
            stdin = stdin or v == "-"
            break
        if v.startswith("--"):
            i += 2 if v in ("--rcfile", "--init-file") else 1
            continue
        if len(v) > 1 and v[0] in "-+":
            flags = v[1:]
            if v[0] == "-" and "c" in flags:
                has_c = True
            if v[0] == "-" and "s" in flags:
                stdin = True
            i += 2 if ("o" in flags or "O" in flags) else 1
            continue
        break
    rest = args[i:]
    if has_c:
        return "c", (rest[0] if rest else None)
    if stdin or not rest or rest[0].value in _STDIN_FILES:
        return "stdin", None
    return "script", rest[0]


def _interpreter(name: str) -> tuple[str, str] | None:
    base = name.rstrip("0123456789.")
    return _INTERPRETERS.get(base)


def _reads_stdin_code(name: str, args: list[_Word]) -> bool:
    if name in _SHELLS:
        return _shell_mode(args)[0] == "stdin"
    if name in _SOURCE:
        return bool(args) and (args[0].value in _STDIN_FILES or args[0].value == "-")
    spec = _interpreter(name)
    if spec is None:
        return False
    code_flags, value_flags = spec
    k = 0
    while k < len(args):
        v = args[k].value
        if v == "-":
            return True
        if v == "--":
            return k + 1 >= len(args) or args[k + 1].value == "-"
        if v.startswith("-") and len(v) > 1:
            if v.startswith("--"):
                k += 1
                continue
            if any(ch in code_flags for ch in v[1:2]):
                return False
            if v[1] in value_flags and len(v) == 2:
                k += 1
            k += 1
            continue
        return False  # a script file
    return True


def _subcommand(name: str, values: list[str]) -> str | None:
    value_opts = _GLOBAL_VALUE_OPTS.get(name, frozenset())
    skip = False
    for v in values:
        if skip:
            skip = False
            continue
        if v.startswith("-"):
            skip = v in value_opts
            continue
        if v.startswith("+"):
            continue
        return v
    return None


def _find_execs(args: list[_Word]) -> list[list[_Word]]:
    """The commands of ``find -exec/-execdir/-ok/-okdir``, with ``{}`` replaced by the
    starting points (``find / -exec rm {} +`` runs ``rm /...``)."""
    starts: list[str] = []
    i = 0
    while i < len(args) and (args[i].value in ("-H", "-L", "-P") or args[i].value.startswith(("-O", "-D"))):
        i += 1
    while i < len(args) and not args[i].value.startswith(("-", "(", "!", ")")):
        starts.append(args[i].value)
        i += 1
    if not starts:
        starts = ["."]
    out: list[list[_Word]] = []
    while i < len(args):
        if args[i].value in ("-exec", "-execdir", "-ok", "-okdir"):
            j = i + 1
            cmd: list[_Word] = []
            while (
                j < len(args)
                and args[j].value != ";"
                and not (args[j].value == "+" and cmd and cmd[-1].value == "{}")
            ):
                if args[j].value == "{}":
                    cmd.extend(_Word.literal(s) for s in starts)
                else:
                    cmd.append(args[j])
                j += 1
            if cmd:
                out.append(cmd)
            i = j + 1
            continue
        i += 1
    return out
