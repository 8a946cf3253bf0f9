"""Policy files: reading, TOML parsing (the shipped file's through a per-user cache),
validation with errors that name the file, line and column, and layering (vault over home
over the shipped default).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
import types
from collections.abc import Iterable
from typing import Any, Final

from ..core.errors import PolicyError, UnusablePathError, from_oserror
from .hostpattern import host_pattern
from .model import DEFAULT_RULE, VERSION, Category, Outcome, Rule
from .pathrules import KINDS, PathRule, PathRules, pattern_problem


class Layer:
    """One policy file, validated."""

    __slots__ = ("defaults", "forks", "inherit", "outcomes", "paths", "rules", "source")

    def __init__(
        self,
        source: str,
        inherit: bool,
        defaults: dict[str, Any],
        outcomes: dict[Category, Outcome],
        rules: tuple[Rule, ...],
        paths: tuple[PathRule, ...] = (),
        forks: tuple[tuple[str, tuple[PathRule, ...]], ...] = (),
    ) -> None:
        self.source = source
        self.inherit = inherit
        self.defaults = defaults
        self.outcomes = outcomes
        self.rules = rules
        self.paths = paths  # [paths]
        self.forks = forks  # [forks."PAT".paths]: (fork pattern, its rules), in file order


DEFAULT_POLICY_PATH: Final = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_policy.toml")
"""The shipped default policy (package data of ``avfs_git.policy``)."""


_SHIPPED: dict[str, Layer] = {}  # the shipped file's text -> its layer (see load_shipped)


@functools.cache
def _shipped_layer(cache_dir: str | None) -> Layer:
    with open(DEFAULT_POLICY_PATH, encoding="utf-8") as f:
        text = f.read()
    if text not in _SHIPPED:  # (made once in a process, whatever cache dir its calls name)
        _SHIPPED[text] = _Validator(text, DEFAULT_POLICY_PATH, True).layer(_shipped_data(text, cache_dir))
    return _SHIPPED[text]


def load_shipped() -> Layer:
    """Make the shipped policy's layer here: the resident CLI server, before it forks a
    call's process (each `proxy exec` there then finds it: ~5 ms of its CPU less)."""
    return _shipped_layer(None)


def _shipped_data(text: str, cache_dir: str | None) -> dict[str, Any]:
    """The shipped file's TOML as data, from a per-user cache keyed by its content, in
    ``cache_dir`` (the settings' ``cache_dir``, ``$XDG_CACHE_HOME/avfs``; None: no cache).

    ``proxy exec`` loads the policy on every call: importing tomllib and parsing the
    shipped file cost ~20 ms of a call whose target is < 100 ms in all. The cache holds
    what tomllib returned (marshal; plain dicts, lists, strings, numbers), so a stale or
    broken cache file can only be ignored, never change a decision.
    """
    import marshal

    if cache_dir is None:
        return _toml(text, DEFAULT_POLICY_PATH)
    key = hashlib.sha256(text.encode()).hexdigest()[:32]
    path = os.path.join(cache_dir, f"default-policy-{key}.marshal")
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


def read_policy_file(path: str) -> str | None:
    # read without waiting on a FIFO (one there held every command for ever); a directory,
    # a FIFO, a socket named (policy uses only core's errors: as core.store.safeopen's
    # read_settings does it)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise from_oserror(exc, path) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a file"
            raise UnusablePathError(
                f"cannot use {path}: it is {kind}, not a file",
                hint="remove it, or put the file back (nothing was read from it)",
                details={"path": path},
            )
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    except OSError as exc:
        raise from_oserror(exc, path) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _error(path, line, None, "not UTF-8 text") from None


def combine(layers: list[Layer], cache_dir: str | None = None) -> dict[str, Any]:
    """The fields of the effective policy (all but its hash). Layers are highest precedence
    first; the shipped default is always the base (its parsed form cached in ``cache_dir``)."""
    shipped = _shipped_layer(cache_dir)
    active: list[Layer] = []
    for layer in layers:
        active.append(layer)
        if not layer.inherit:
            break
    else:
        active.append(shipped)
    rules: list[Rule] = []
    paths: list[PathRule] = []
    forks: list[tuple[str, tuple[PathRule, ...]]] = []
    # path rules as one gitignore list per kind: the lowest layer first (home, then vault),
    # so that a vault's `!pattern` can re-include what the home's file holds
    for layer in active:
        rules.extend(layer.rules)
    for layer in reversed(active):
        paths.extend(layer.paths)
        forks.extend(layer.forks)
    defaults = dict(shipped.defaults)
    outcomes = dict(shipped.outcomes)
    for layer in reversed(active):
        defaults.update(layer.defaults)
        outcomes.update(layer.outcomes)
    sources = [layer.source for layer in active]
    if active[-1] is not shipped:
        sources.append(shipped.source)  # still the base of [defaults] and [outcomes]
    return dict(
        rules=tuple(rules),
        unknown=tuple(defaults["unknown"]),
        unparsable=defaults["unparsable"],
        outcomes=types.MappingProxyType(outcomes),
        timeout_ms=defaults["timeout_ms"],
        max_output_bytes=defaults["max_output_bytes"],
        network=defaults["network"],
        network_allow=tuple(defaults["network_allow"]),
        caches=tuple(defaults["caches"]),
        readable=tuple(defaults["readable"]),
        confine=defaults["confine"],
        sources=tuple(sources),
        paths=tuple(paths),
        fork_paths=tuple(forks),
    )


def _error(source: str, line: int | None, column: int | None, problem: str) -> PolicyError:
    where = ""
    if line is not None:
        where = f", line {line}" + (f", column {column}" if column is not None else "")
    return PolicyError(
        f"invalid policy {source}{where}: {problem}",
        hint="fix the file; docs/policy.md describes the format",
        details={"file": source, "line": line, "column": column, "problem": problem},
    )


_TOML_POS: Final = r"\s*\(at line (\d+), column (\d+)\)\s*$"  # error path only: compiled on use
_TOP_KEYS: Final = frozenset({"version", "inherit", "defaults", "outcomes", "rules", "paths", "forks"})
_DEFAULT_KEYS: Final = frozenset(
    {
        "unknown",
        "unparsable",
        "timeout_ms",
        "max_output_bytes",
        "network",
        "network_allow",
        "caches",
        "readable",
        "confine",
    }
)
_NETWORKS: Final = ("none", "host", "filtered")
# what a confined command runs in: bubblewrap's sandbox, or nothing (refused) where it cannot
# run; "namespace": the hand-made view of proxy/isolate.py there instead (weaker: no network
# namespace of its own)
CONFINES: Final = ("bwrap", "namespace")
_CACHES: Final = ("pip", "npm", "cargo")
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

    _HEADER: Final = r"^\s*(\[\[?)\s*([^\]#]+?)\s*\]\]?\s*(#.*)?$"  # compiled on use

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def line(self, table: str | None, index: int | None = None, key: str | None = None) -> int | None:
        key_re = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=") if key else None
        in_target = table is None
        seen: dict[str, int] = {}
        header_line: int | None = None
        for number, line in enumerate(self.lines, 1):
            m = re.match(self._HEADER, line)
            if m and not line.lstrip().startswith(("#",)) and "=" not in line.split("]")[0]:
                name = m.group(2).strip().strip("\"'")
                idx: int | None = None
                if m.group(1) == "[[":
                    idx = seen[name] = seen.get(name, -1) + 1
                in_target = (
                    table is not None
                    and _unquoted(name) == _unquoted(table)
                    and (index is None or idx == index)
                )
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


def _unquoted(table: str) -> str:
    """A table's dotted name without its quotes and the blanks around its dots
    (``forks."review-*".paths`` and ``forks.review-*.paths`` are one name here)."""
    return ".".join(part.strip().strip("\"'") for part in table.split("."))


def _toml(text: str, source: str) -> dict[str, Any]:
    import tomllib  # ~9 ms: only when a file is parsed (see _shipped_data)

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(_TOML_POS, msg)
        if m:
            raise _error(source, int(m.group(1)), int(m.group(2)), msg[: m.start()]) from None
        raise _error(source, None, None, msg) from None
    except RecursionError:  # (arrays or tables nested past Python's stack: was exit 70, internal)
        raise _error(source, None, None, "its arrays or tables are nested too deeply to read") from None


def parse_layer(text: str, source: str, *, shipped: bool) -> Layer:
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

    def layer(self, data: dict[str, Any]) -> Layer:
        for key in data:
            if key not in _TOP_KEYS:
                raise self.unknown_key(key, _TOP_KEYS, "the policy", None)
        if "version" not in data:
            raise self.fail(f"missing 'version = {VERSION}' at the top of the file", None)
        version = data["version"]
        if type(version) is not int or version != VERSION:
            raise self.fail(
                f"unsupported version {version!r}: this avfs reads version {VERSION}", None, key="version"
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
        paths = self.paths(data.get("paths", {}), "paths", None)
        forks: list[tuple[str, tuple[PathRule, ...]]] = []
        fork_tables = data.get("forks", {})
        if not isinstance(fork_tables, dict):
            raise self.fail(
                "'forks' must be a table of fork patterns ([forks.\"review-*\".paths])", None, key="forks"
            )
        for pat, table in fork_tables.items():
            where = f'[forks."{pat}"]'
            if not pat or "\0" in pat:
                raise self.fail(f"{where}: a fork pattern is a non-empty shell glob", "forks")
            if not isinstance(table, dict):
                raise self.fail(f"{where} must be a table", "forks")
            for key in table:
                if key != "paths":
                    raise self.unknown_key(key, ["paths"], where, f"forks.{pat}")
            forks.append((pat, self.paths(table.get("paths", {}), f"forks.{pat}.paths", pat)))
        if self.shipped:
            missing = (_DEFAULT_KEYS - defaults.keys()) or {c.value for c in Category} - {
                c.value for c in outcomes
            }
            if missing:
                raise self.fail(f"the shipped policy must set {sorted(missing)}", None)
        return Layer(self.source, inherit, defaults, outcomes, tuple(rules), paths, tuple(forks))

    def paths(self, value: Any, table: str, fork_pattern: str | None) -> tuple[PathRule, ...]:
        """A ``[paths]`` table: each kind a list of git patterns (one a string too)."""
        where = f"[{table}]" if fork_pattern is None else f'[forks."{fork_pattern}".paths]'
        if not isinstance(value, dict):
            raise self.fail(f"{where} must be a table", None, key=table)
        out: list[PathRule] = []
        for key, v in value.items():
            if key not in KINDS:
                raise self.unknown_key(key, KINDS, where, table)
            items = [v] if isinstance(v, str) else v
            if not isinstance(items, list):
                raise self.fail(f"{where} {key} must be a list of git patterns", table, None, key)
            for item in items:
                problem = pattern_problem(item)
                if problem is not None:
                    raise self.fail(f"{where} {key}: {problem}", table, None, key)
                out.append(PathRule(key, item, self.source, fork_pattern))
        rules = tuple(out)
        if PathRules(rules).hides_everything():
            raise self.fail(
                f"{where} hidden hides the whole tree: a fork's users would see nothing "
                "(hide the paths that hold secrets, or make the tree read_only)",
                table,
                None,
                "hidden",
            )
        return rules

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
            elif key == "network":
                if v not in _NETWORKS:
                    raise self.fail(
                        f"[defaults] network must be one of {', '.join(_NETWORKS)}, not {v!r}",
                        "defaults",
                        None,
                        key,
                    )
                out[key] = v
            elif key == "confine":
                if v not in CONFINES:
                    raise self.fail(
                        f'[defaults] confine must be "bwrap" (refuse to run where bubblewrap cannot) or '
                        f'"namespace" (a weaker hand-made view there), not {v!r}',
                        "defaults",
                        None,
                        key,
                    )
                out[key] = v
            elif key == "network_allow":
                if not isinstance(v, list):
                    raise self.fail(
                        f'[defaults] network_allow must be a list of hosts ("pypi.org", "*.example.org:443"), '
                        f"not {v!r}",
                        "defaults",
                        None,
                        key,
                    )
                for h in v:
                    try:
                        host_pattern(h)
                    except ValueError as exc:
                        raise self.fail(f"[defaults] network_allow: {exc}", "defaults", None, key) from None
                out[key] = tuple(dict.fromkeys(v))
            elif key == "caches":
                if not isinstance(v, list) or any(c not in _CACHES for c in v):
                    raise self.fail(
                        f"[defaults] caches must be a list of {', '.join(_CACHES)}, not {v!r}",
                        "defaults",
                        None,
                        key,
                    )
                out[key] = tuple(dict.fromkeys(v))
            elif key == "readable":
                if not isinstance(v, list) or any(
                    not isinstance(p, str) or not (p.startswith("/") or p.startswith("~/")) or "\0" in p
                    for p in v
                ):
                    raise self.fail(
                        f"[defaults] readable must be a list of absolute paths (or ~/...), not {v!r}",
                        "defaults",
                        None,
                        key,
                    )
                out[key] = tuple(dict.fromkeys(v))
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
            or not _RULE_NAME.fullmatch(name)  # (`match`: its `$` took a trailing newline)
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
