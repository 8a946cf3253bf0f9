"""What in a git command line makes git run a program or a shell command of the line's
choosing: ``-c`` keys and ``--config-env``, ``--exec-path``, the variables git runs a
program from (``GIT_SSH_COMMAND``, ``GIT_CONFIG_*``...), a subcommand's ``--upload-pack``/
``--exec``/``--template``, an ``ext::`` URL, and the shell commands of ``rebase --exec``,
``filter-branch``, ``submodule foreach``, ``bisect run``.
"""

from __future__ import annotations

import re
import shlex
from types import MappingProxyType
from typing import Final

from .programs import GLOBAL_VALUE_OPTS, subcommand

# `-c KEY=VALUE` keys that run nothing (the rest may: core.*, protocol.*, *.command,
# credential.*, alias.*, filter.*, include.path, url.*.insteadOf...): a key not listed here
# is read as one that runs a program
_GIT_SAFE_KEYS: Final = frozenset(
    {
        "init.defaultbranch", "pull.rebase", "pull.ff", "merge.ff", "merge.conflictstyle",
        "merge.renamelimit", "rebase.autosquash", "rebase.autostash", "rebase.updaterefs",
        "commit.verbose", "commit.cleanup", "log.date", "log.decorate", "log.abbrevcommit",
        "log.follow", "format.pretty", "diff.renames", "diff.algorithm", "diff.noprefix",
        "diff.mnemonicprefix", "diff.context", "diff.interhunkcontext", "diff.colormoved",
        "diff.relative", "diff.renamelimit", "grep.linenumber", "grep.patterntype",
        "grep.extendedregexp", "blame.date", "branch.sort", "tag.sort", "fetch.prune",
        "fetch.prunetags", "gc.auto", "maintenance.auto", "push.default", "push.autosetupremote",
        "pack.threads", "pack.windowmemory", "pack.indexversion", "repack.usedeltabaseoffset",
        "checkout.defaultremote", "am.threeway", "apply.whitespace", "transfer.fsckobjects",
        "fetch.fsckobjects", "receive.fsckobjects", "versionsort.suffix",
    }
)  # fmt: skip


_GIT_SAFE_SECTIONS: Final = ("user.", "color.", "advice.", "i18n.", "column.", "status.")


# environment variables git runs a program from (or reads configuration from)
_GIT_CODE_ENV: Final = frozenset(
    {
        "GIT_SSH", "GIT_SSH_COMMAND", "GIT_EXEC_PATH", "GIT_ASKPASS", "SSH_ASKPASS", "GIT_PAGER",
        "PAGER", "GIT_EDITOR", "EDITOR", "VISUAL", "GIT_SEQUENCE_EDITOR", "GIT_EXTERNAL_DIFF",
        "GIT_PROXY_COMMAND", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_CONFIG",
        "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_TEMPLATE_DIR", "GIT_ALLOW_PROTOCOL",
        "GIT_PROTOCOL_FROM_USER", "GIT_SSH_VARIANT",
    }
)  # fmt: skip


# values of the pager and editor variables that run nothing of the command line's
_HARMLESS_PROGRAM: Final = re.compile(r"(cat|true|false|:|less|more)?( +-[A-Za-z]+)*")


# subcommand -> its options that name a program to run (parse-options takes prefixes)
_GIT_CODE_OPTS: Final = MappingProxyType(
    {
        "ls-remote": ("--upload-pack", "--exec", "-u"),
        "fetch": ("--upload-pack", "-u"),
        "pull": ("--upload-pack", "-u"),
        "clone": ("--upload-pack", "-u", "--template", "-c", "--config"),
        "fetch-pack": ("--upload-pack", "--exec"),
        "archive": ("--exec", "--remote"),
        "push": ("--receive-pack", "--exec"),
        "send-pack": ("--receive-pack", "--exec"),
        "init": ("--template",),
    }
)


def git_config_runs(setting: str) -> bool:
    """Whether ``KEY[=VALUE]`` given to ``git -c`` may make git run a program."""
    key = setting.partition("=")[0].lower()
    return not (key in _GIT_SAFE_KEYS or key.startswith(_GIT_SAFE_SECTIONS))


def git_env_runs(assignment: str) -> str | None:
    """The variable of ``NAME=VALUE`` when git runs a program it names (or reads
    configuration from it): ``GIT_SSH_COMMAND``, ``GIT_EXEC_PATH``, ``GIT_CONFIG_*``..."""
    name, _, value = assignment.partition("=")
    if name in _GIT_CODE_ENV or name.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")):
        if name in ("GIT_PAGER", "PAGER", "GIT_EDITOR", "EDITOR", "VISUAL") and _HARMLESS_PROGRAM.fullmatch(
            value
        ):
            return None
        return name
    return None


def git_runs_code(values: list[str], env: list[str]) -> str | None:
    """Why ``git VALUES`` (with the environment ``env``) runs a program that its command
    line chooses, or None: ``-c``/``--config-env`` of a key that may run one,
    ``--exec-path=DIR``, a subcommand's ``--upload-pack``/``-u``/``--exec``/
    ``--receive-pack``/``--remote``/``--template``, an ``ext::`` URL, ``GIT_SSH_COMMAND=``."""
    for a in env:
        var = git_env_runs(a)
        if var is not None:
            return f"runs git with {var} set"
    k = 0
    sub: str | None = None
    while k < len(values):
        v = values[k]
        nxt = values[k + 1] if k + 1 < len(values) else ""
        if sub is None:
            if v in ("-c", "--config-env") or v.startswith(("-c", "--config-env=")):
                setting = (
                    nxt
                    if v in ("-c", "--config-env")
                    else v.split("=", 1)[1]
                    if v.startswith("--")
                    else v[2:]
                )
                if git_config_runs(setting):
                    return f"sets git's {setting.partition('=')[0]} (`{v}`), which may run a program"
                k += 2 if v in ("-c", "--config-env") else 1
                continue
            if v.startswith("--exec-path="):
                return "runs git's programs from another directory (`--exec-path`)"
            if v in GLOBAL_VALUE_OPTS["git"]:
                k += 2
                continue
            if v.startswith("-"):
                k += 1
                continue
            sub = v
            k += 1
            continue
        if v == "--":
            break
        if v.startswith("ext::") or "::ext::" in v:
            return f"reaches a remote through `{v.split('::', 1)[0]}::` (a command of its own)"
        for opt in _GIT_CODE_OPTS.get(sub, ()):
            if opt.startswith("--"):
                key = v.partition("=")[0]
                if len(key) > 3 and opt.startswith(key):
                    if opt == "--config" and not git_config_runs(v.partition("=")[2] or nxt):
                        continue
                    return f"runs a program named by `{opt}`"
            elif len(v) > 1 and v[0] == "-" and v[1] != "-" and opt[1] in v[1:]:
                if opt == "-c" and not git_config_runs(v[2:] or nxt):
                    continue
                return f"runs a program named by `{opt}`"
        k += 1
    return None


# subcommand -> its options whose value is a shell command git runs (in the same place)
_GIT_SHELL_OPTS: Final = MappingProxyType({
    "rebase": ("--exec", "-x"),
    "difftool": ("--extcmd", "-x"),
    "filter-branch": (
        "--env-filter", "--tree-filter", "--index-filter", "--parent-filter", "--msg-filter",
        "--commit-filter", "--tag-name-filter",
    ),
})  # fmt: skip


def git_shell_texts(values: list[str]) -> list[str]:
    """The shell commands a git command line runs itself: ``rebase --exec/-x CMD``,
    ``difftool --extcmd/-x CMD``, ``filter-branch --*-filter CMD``, ``submodule foreach
    CMD``, ``bisect run CMD ARGS``."""
    sub = subcommand("git", values)
    if sub is None:
        return []
    k = values.index(sub) + 1
    rest = values[k:]
    if sub == "submodule":
        words = [v for v in rest if v not in ("--recursive", "-q", "--quiet")]
        return [" ".join(words[1:])] if words[:1] == ["foreach"] and len(words) > 1 else []
    if sub == "bisect":
        return [shlex.join(rest[1:])] if rest[:1] == ["run"] and len(rest) > 1 else []
    opts = _GIT_SHELL_OPTS.get(sub, ())
    out: list[str] = []
    for j, v in enumerate(rest):
        if v == "--":
            break
        key, eq, value = v.partition("=")
        for opt in opts:
            long_match = opt.startswith("--") and len(key) > 3 and opt.startswith(key)
            if long_match or key == opt:
                if eq:
                    out.append(value)
                elif j + 1 < len(rest):
                    out.append(rest[j + 1])
                break
            if not opt.startswith("--") and v.startswith(opt) and len(v) > 2:
                out.append(v[2:])  # -xCMD
                break
    return out
