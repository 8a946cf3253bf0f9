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

The one entry point is ``Policy.load(home, vault).classify(command, root, cwd)`` (a shell
string or an argument vector); ``proxy``, ``hooks`` and ``mcp`` (through ``proxy``) all use it.

Modules, each depending only on those above it:

================  ==========================================================================
``model``         classes, outcomes, ``Rule``, ``Decision``, ``CommandInfo``, ``PolicyError``
``hostpattern``   one ``network_allow`` entry: host, ``*.domain``, address, port
``config``        policy files: read, parse (the shipped file through a cache), validate, layer
``lexer``         the shell lexer: words, quotes, substitutions, here-documents, braces
``parser``        the shell grammar: pipelines, groups, compound commands; salvaging bad text
``paths``         which paths lie outside the workspace; ``cd``; a file's key
``programs``      programs' options: long-option prefixes, clusters, values, ``-C``, subcommands
``wrappers``      programs that run another command (env, sudo, xargs...); ``find -exec``
``interpreters``  shells and interpreters: where they read code; avfs itself
``gitruns``       what makes git run a program (``-c`` keys, ``GIT_SSH_COMMAND``...)
``awk``/``sed``   what an awk program or a sed script runs or writes
``match``         the first rule that matches a simple command
``parts``         the classifier's records (a command being judged, a finding)
``effects``       findings from a command's words: writes, hidden code, git on another tree
``codeinput``     the code a shell or an interpreter is given: ``-c``, here-documents
``classify``      the classifier: a parsed command line to judged simple commands
``engine``        ``Policy``: build it (``load``, ``from_text``, ``default``), ``classify``
================  ==========================================================================

The shipped default is ``default_policy.toml`` here (package data).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.errors import PolicyError
    from .config import DEFAULT_POLICY_PATH
    from .engine import Policy
    from .model import Category, CommandInfo, Decision, Outcome, Rule, strictest

# each name imported when first asked for: opening a home imports this package for the
# path rules' source (.pathsource: .model and .pathrules alone), and a command that never
# classifies one (`avfs gc`, `status`) does not pay for the engine and the config loader
# (~6-11 ms here, ~36 ms under load)
_FROM = {
    "PolicyError": "..core.errors",
    "DEFAULT_POLICY_PATH": ".config",
    "Policy": ".engine",
    **dict.fromkeys(("Category", "CommandInfo", "Decision", "Outcome", "Rule", "strictest"), ".model"),
}


def __getattr__(name: str) -> Any:
    module = _FROM.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # (asked once)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FROM))


__all__ = [
    "DEFAULT_POLICY_PATH",
    "Category",
    "CommandInfo",
    "Decision",
    "Outcome",
    "Policy",
    "PolicyError",
    "Rule",
    "strictest",
]
