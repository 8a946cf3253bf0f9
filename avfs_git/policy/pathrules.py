"""Path policies: the ``[paths]`` and ``[forks."PAT".paths]`` tables of the policy files,
as rules a fork's users cannot break (``read_only``, ``hidden``, ``append_only``), matched
with git's gitignore patterns.

Matching is git's own semantics through the ``pathspec`` package (``GitIgnoreSpec``: last
matching pattern wins, ``!`` re-includes, a directory's match covers what is below it,
``**``, anchoring by a leading or inner ``/``) with bracket expressions read as git's
wildmatch reads them (:mod:`.gitglob`), checked against ``git check-ignore --no-index`` by
differential tests on a real project's file list and on git's own wildmatch cases. A kind's patterns from
every layer (home file, vault file, then the rules of each ``[forks."PAT"]`` table whose
pattern matches the fork) are one gitignore list, in that order.

A path matched by several kinds gets the strictest: ``hidden`` over ``read_only`` over
``append_only``. What enforces the rules is core's (the workspace's writes and readers, a
checkpoint's capture) and the mount's (docs/policy.md "Path policies"); this module only
answers "which rule holds this path".
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

from ..core.records import dataclass
from . import gitglob

KINDS: Final = ("hidden", "read_only", "append_only")  # strictest first
MEMO_SIZE: Final = 8192  # answers a PathRules keeps
"""The kinds of path rule, strictest first."""


@dataclass(frozen=True, slots=True)
class PathRule:
    """One pattern of one kind, from one file (and, for a per-fork rule, the fork pattern
    of its ``[forks."PAT".paths]`` table). As a match (:data:`PathMatch`): the rule that
    holds a path, the last matching one of its kind, as git's ignore rules read."""

    kind: str
    pattern: str
    source: str
    fork_pattern: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "pattern": self.pattern,
            "source": self.source,
            "fork_pattern": self.fork_pattern,
        }

    def describe(self) -> str:
        where = f'[forks."{self.fork_pattern}".paths]' if self.fork_pattern else "[paths]"
        return f"{self.kind} by {self.pattern!r} ({where} of {self.source})"


PathMatch = PathRule  # the rule that holds a path (match() answers one)


def pattern_problem(pattern: object) -> str | None:
    """Why ``pattern`` is not a usable path pattern, or None when it is one.

    Refused: what is not a non-empty string; NUL or a newline; what git reads as no
    pattern at all (a comment ``#...``, blank, an unclosed ``[``...), so that matches
    nothing; and what git refuses (a trailing backslash, a lone ``!``)."""
    if not isinstance(pattern, str) or not pattern:
        return f"{pattern!r} is not a pattern (a non-empty string)"
    if "\0" in pattern or "\n" in pattern or "\r" in pattern:
        return f"{pattern!r}: a pattern holds no NUL or line break"
    try:
        compiled = _compile(pattern)
    except Exception as exc:  # the package's own error type differs between its versions
        return f"{pattern!r} is not a git pattern: {exc}"
    if compiled is None:
        return (
            f"{pattern!r} matches nothing (git reads it as a comment, a blank or a broken "
            "bracket expression); escape a leading '#' as '\\#'"
        )
    return None


def _compile(pattern: str) -> tuple[bool, re.Pattern[str]] | None:
    """A pattern as pathspec's ``GitIgnoreSpec`` compiles it, its bracket expressions read
    as git reads them (:mod:`.gitglob`): (include, regex); None where git's reading of the
    line matches nothing. Raises what pathspec raises for a pattern it refuses."""
    from pathspec import GitIgnoreSpec

    marked = gitglob.placeholders(gitglob.as_bytes(pattern))
    if marked is None:
        return None
    text, classes = marked
    compiled = GitIgnoreSpec.from_lines([text]).patterns
    if not compiled or compiled[0].include is None or compiled[0].regex is None:
        return None
    regex = compiled[0].regex
    if classes:
        regex = re.compile(gitglob.fill(regex.pattern, classes), regex.flags)
    return bool(compiled[0].include), regex


# one pattern compiled: (its rule, include (False: a `!` pattern), only directories, the
# regex anchored at the path's end)
_Compiled = tuple[PathRule, bool, bool, "re.Pattern[str]"]


class PathRules:
    """The path rules that hold for one fork (or the home and vault alone): ask
    :meth:`match`. Immutable once made; safe to share between threads."""

    __slots__ = ("_any", "_memo", "_specs", "fork", "rules")

    def __init__(self, rules: Iterable[PathRule], fork: str | None = None) -> None:
        self.rules: tuple[PathRule, ...] = tuple(rules)
        self.fork = fork
        # answers kept (paths a mount or a tool asks about again and again); bounded, and
        # the rules never change: a new policy is a new PathRules
        self._memo: dict[tuple[str, bool], PathMatch | None] = {}
        # per kind, its patterns compiled by pathspec, newest last: (rule, include, dir only,
        # regex); see _decides for how git's walk is read from them
        self._specs: list[tuple[str, tuple[_Compiled, ...]]] = []
        # every include pattern's regex as pathspec made it (it matches a path or what is
        # below it), as one (:func:`_one_of`): a path ``path/`` it does not match is held
        # by no rule, _match not asked (review41: a hidden fork's index patch asks of every
        # entry; ~2.5 us a path through _match, ~0.5 us here)
        anyof: list[re.Pattern[str]] = []
        for kind in KINDS:
            compiled = []
            for r in self.rules:
                if r.kind != kind:
                    continue
                made = _compile(r.pattern)  # (pathspec's import: 30-200 ms here; NO_RULES imports none)
                assert made is not None  # pattern_problem refused the patterns that have none
                include, regex = made
                if include:
                    anyof.append(regex)
                if "ps_d" in regex.groupindex:  # matched at the path's end only (see _decides)
                    regex = re.compile("(?:" + regex.pattern + r")\Z", regex.flags)
                compiled.append((r, include, r.pattern.endswith("/"), regex))
            if compiled:
                self._specs.append((kind, tuple(compiled)))
        self._any = _one_of(anyof)

    @property
    def empty(self) -> bool:
        """No rule at all: nothing to check (the common case, kept cheap)."""
        return not self._specs

    def has(self, kind: str) -> bool:
        """Whether a rule of ``kind`` is among them."""
        return any(k == kind for k, _ in self._specs)

    def match(self, path: str, *, is_dir: bool = False) -> PathMatch | None:
        """The strictest rule holding workspace path ``path`` (relative, ``/``-separated;
        ``is_dir``: it names a directory, for patterns ending in ``/``), or None.

        A path is held when it, or a directory above it, matches (git's reading of an
        ignore list); ``""`` (the root) is never held."""
        if not self._specs or not path or path == ".git" or path.startswith(".git/"):
            return None
        if not self._any.match(gitglob.as_bytes(path) + "/"):
            return None  # (no rule's pattern matches it or a directory above it)
        key = (path, is_dir)
        try:
            return self._memo[key]
        except KeyError:
            pass
        got = self._match(path, is_dir)
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()
        self._memo[key] = got
        return got

    def _match(self, path: str, is_dir: bool) -> PathMatch | None:
        path = gitglob.as_bytes(path)  # (git matches bytes: the patterns are compiled so)
        parts = path.split("/")
        for kind, compiled in self._specs:
            # git's walk: a directory it excludes is not entered, so nothing below it can be
            # re-included; then the path itself, the last matching pattern deciding
            hit = None
            for i in range(1, len(parts)):
                hit = _decides(compiled, "/".join(parts[:i]), True)
                if hit is not None and hit[1]:
                    break
            else:
                hit = _decides(compiled, path, is_dir)
            if hit is not None and hit[1]:
                r = hit[0]
                return PathRule(kind, r.pattern, r.source, r.fork_pattern)
        return None

    def reaches(self, path: str, kind: str) -> bool:
        """Whether a rule of ``kind`` could hold something at or below directory ``path``
        (``""``: the root). Conservative (True when unsure): it prunes a walk for the paths
        a kernel mechanism must cover (fuse/stacking.py)."""
        parts = gitglob.as_bytes(path).split("/") if path else []
        for r in self.rules:
            if r.kind != kind or r.pattern.startswith("!"):
                continue
            if "/" not in r.pattern.rstrip("/"):
                return True  # a name at any depth
            segs = gitglob.as_bytes(r.pattern).strip("/").split("/")
            for i, part in enumerate(parts):
                if i >= len(segs) or segs[i] == "**":
                    return True  # held above, or anything below
                glob = gitglob.segment(segs[i])  # (git's reading: fnmatch's brackets are not)
                if glob is None or glob.match(part) is None:
                    break
            else:
                return True  # the pattern goes on below ``path``
        return False

    def covers(self, path: str, kind: str) -> bool:
        """Whether a rule of ``kind`` holds everything below directory ``path`` (and no
        ``!`` pattern of that kind can take something below back out): a directory a kernel
        mechanism can cover whole."""
        held = self.match(path, is_dir=True) if path else None
        if held is not None and held.kind == kind:
            return True  # git's walk: nothing below an excluded directory comes back
        if any(r.kind == kind and r.pattern.startswith("!") for r in self.rules):
            return False
        prefix = path + "/" if path else ""
        probes = (("a", False), (".a", False), ("a.b", False), ("a/b", False), ("a", True))
        for name, is_dir in probes:
            m = self.match(prefix + name, is_dir=is_dir)
            if m is None or m.kind != kind:
                return False
        return True

    def hides_everything(self) -> bool:
        """Whether the ``hidden`` rules hide every top-level name (``*``, ``**``, ``/*``...):
        a fork whose users would see nothing at all, which is refused."""
        probes = ("a", ".a", "a.b", "A1", "_")
        return all(
            (m := self.match(p, is_dir=d)) is not None and m.kind == "hidden"
            for p in probes
            for d in (False, True)
        )

    def to_dict(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.rules]


def _one_of(regexes: Sequence[re.Pattern[str]]) -> re.Pattern[str]:
    """One regex matching where any of ``regexes`` (pathspec's: each anchored at the start
    by ``^``) does, their groups unnamed; one matching everything where they cannot be one."""
    flags = {r.flags for r in regexes}
    if len(flags) > 1 or any(
        r.groupindex.keys() - {"ps_d"} or not r.pattern.startswith("^") for r in regexes
    ):
        return re.compile("")
    unnamed = ("(?:" + r.pattern.replace("(?P<ps_d>", "(?:") + ")" for r in regexes)
    try:
        return re.compile("|".join(unnamed) or "(?!)", *flags)
    except re.error:
        return re.compile("")


def _decides(compiled: tuple[_Compiled, ...], path: str, is_dir: bool) -> _Compiled | None:
    """The last pattern that matches ``path`` itself (not only a directory above it), as
    git reads an ignore list; None when none does.

    pathspec's regexes match a path *or what is below it* (a group ``ps_d`` marks the
    slash after the matched part); anchored at the end (``\\Z``, done when compiled) they
    match the path itself: a pattern ending in ``/`` matches directories alone (``path/``
    probed), another the name (a ``dir/**`` pattern has no ``ps_d``: everything under it)."""
    for entry in reversed(compiled):
        _, _, dir_only, regex = entry
        if dir_only and not is_dir:
            continue
        if regex.search(path + "/" if dir_only else path) is not None:
            return entry
    return None


NO_RULES: Final = PathRules(())


def fork_rules(
    base: Sequence[PathRule], per_fork: Sequence[tuple[str, tuple[PathRule, ...]]], fork: str | None
) -> PathRules:
    """The rules for ``fork``: ``base`` then those of each ``[forks."PAT"]`` whose pattern
    (a shell glob over the fork's name) matches it; None: ``base`` alone."""
    rules = list(base)
    if fork is not None:
        for pat, extra in per_fork:
            if fnmatch.fnmatchcase(fork, pat):
                rules.extend(extra)
    return PathRules(rules, fork)
