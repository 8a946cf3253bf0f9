"""Which rule of a policy matches a simple command: the first whose conditions all hold
(program, subcommand, argument globs and regex, paths outside the workspace).
"""

from __future__ import annotations

import functools
import re

from .lexer import Word
from .model import Rule, RuleSet, glob_re
from .paths import outside
from .programs import subcommand


def first_match(
    policy: RuleSet, name: str, args: list[Word], cwd: str | None, root: str
) -> tuple[Rule | None, Rule | None]:
    """The first rule that matches, and the first rule skipped only because some path
    comes from the input (xargs) and may or may not lie outside."""
    values = [a.value for a in args]
    skipped: Rule | None = None
    sub: str | bool | None = False  # not computed yet
    joined: str | None = None
    for rule in policy.rules:
        if not rule.matches_program(name):
            continue
        if rule.subcommand:
            if sub is False:
                sub = subcommand(name, values)
            if not isinstance(sub, str) or not glob_re(rule.subcommand).match(sub):
                continue
        if rule.args_any:
            pat = glob_re(rule.args_any)
            if not any(pat.match(v) for v in values):
                continue
        if rule.args_all and not all(any(glob_re((g,)).match(v) for v in values) for g in rule.args_all):
            continue
        if rule.args_none:
            pat = glob_re(rule.args_none)
            if any(pat.match(v) for v in values):
                continue
        if rule.args_regex is not None:
            if joined is None:
                joined = " ".join(values)
            if not _regex(rule.args_regex).search(joined):
                continue
        if rule.outside_paths is not None:
            outside = _paths_outside(args, cwd, rule.outside_paths, root)
            if outside is None:
                skipped = skipped or rule
                continue
            if not outside:
                continue
        return rule, skipped
    return None, skipped


def _paths_outside(args: list[Word], cwd: str | None, mode: str, root: str) -> bool | None:
    """Whether a path argument lies outside; None when only paths from the input might."""
    if any(a.unknown for a in args):
        # what is known decides as if the input were empty; else the input might
        known = [a for a in args if not a.unknown]
        if _scan_paths(known, cwd, mode, root):
            return True
        return None if _scan_paths(args, cwd, mode, root) is not False else False
    return _scan_paths(args, cwd, mode, root)


def _scan_paths(args: list[Word], cwd: str | None, mode: str, root: str) -> bool | None:
    operands: list[Word] = []
    target: Word | None = None
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
            target = Word.literal(v.split("=", 1)[1])
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
        elif outside(a, cwd, root):
            return True
    return None if unknown else False


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
