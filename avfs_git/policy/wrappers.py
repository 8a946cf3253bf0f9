"""Programs that run another command (wrappers: env, sudo, nice, timeout, xargs, watch,
parallel...): how to find the command each runs and the directory it runs in, the words
``xargs`` and ``parallel`` add from their input, and the commands of ``find -exec``.
"""

from __future__ import annotations

import re
import shlex
from types import MappingProxyType
from typing import Final

from .lexer import Word
from .parser import ASSIGN
from .paths import literal_path, resolve_dir
from .programs import LONG_OPTS, long_option


class Wrap:
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


WRAPPERS: Final = MappingProxyType(
    {
        "env": Wrap(
            "uCSP",
            frozenset({"--unset", "--chdir", "--split-string"}),
            assignments=True,
            chdir=("-C", "--chdir"),
            split=("-S", "--split-string"),
        ),
        "sudo": Wrap(
            "ugCDprtTUR",
            frozenset(
                {"--user", "--group", "--close-from", "--chdir", "--host", "--prompt", "--role", "--type"}
                | {"--command-timeout", "--other-user", "--chroot"}
            ),
            assignments=True,
            chdir=("-D", "--chdir"),
            no_command="elvkK",
        ),
        "doas": Wrap("uC"),
        "nice": Wrap("n", frozenset({"--adjustment"})),
        "timeout": Wrap("sk", frozenset({"--signal", "--kill-after"}), operands=1),
        "nohup": Wrap(),
        "time": Wrap("fo", frozenset({"--format", "--output"})),
        "command": Wrap("", no_command="vV"),
        "builtin": Wrap(),
        "exec": Wrap("a"),
        "stdbuf": Wrap("ioe", frozenset({"--input", "--output", "--error"})),
        "ionice": Wrap(
            "cnpPu", frozenset({"--class", "--classdata", "--pid", "--pgid", "--uid"}), no_command="pPu"
        ),
        "setsid": Wrap(),
        "busybox": Wrap(),
        "xargs": Wrap(
            "adEILnPs",
            frozenset(
                {
                    "--arg-file",
                    "--delimiter",
                    "--max-args",
                    "--max-procs",
                    "--max-chars",
                    "--process-slot-var",
                }
            ),
        ),
        # `watch CMD ARGS` runs `sh -c "CMD ARGS"` (`-x` runs it directly: parsed the same way)
        "watch": Wrap("nq", frozenset({"--interval", "--equexit"}), shell=True),
        # GNU parallel runs its command through a shell, once per input (`:::` lists, stdin)
        "parallel": Wrap(
            "jSadEINnLPs",
            frozenset(
                {"--jobs", "--sshlogin", "--arg-file", "--delimiter", "--eof", "--max-args", "--max-lines"}
                | {"--max-replace-args", "--max-procs", "--max-chars", "--results", "--joblog", "--tmpdir"}
                | {"--workdir", "--wd", "--timeout", "--retries", "--delay", "--colsep", "--env", "--profile"}
                | {"--tag-string", "--basefile", "--return", "--transferfile", "--rpl", "--memfree"}
            ),
            shell=True,
        ),
        "unbuffer": Wrap(),
        "chronic": Wrap(),
    }
)


def unwrap(
    name: str, wrap: Wrap, args: list[Word], cwd: str | None, start: int = 0
) -> tuple[list[Word], int, str | None] | None:
    """Where the wrapped command of ``name args[start:]`` starts (None when there is none):
    the words an option adds before it (``env -S``), its index in ``args`` (the wrapper's
    own arguments are ``args[start:index]``), and the directory it runs in. ``args`` is
    read in place, never copied: a chain of wrappers costs its length."""
    i = start
    extra: list[Word] = []
    while i < len(args):
        v = args[i].value
        if v == "--":
            i += 1
            break
        if v == "-" and name == "env":
            i += 1
            continue
        if v.startswith("--") and len(v) > 2:
            key, eq, value = long_option(v, LONG_OPTS.get(name, wrap.value_long)).partition("=")
            if key in wrap.value_long and not eq:
                value = args[i + 1].value if i + 1 < len(args) else ""
                i += 1
            if key in wrap.value_long:
                if key in wrap.chdir:
                    cwd = resolve_dir(literal_path(value), cwd)
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
                        cwd = resolve_dir(literal_path(value), cwd)
                    if "-" + ch in wrap.split:
                        extra = _split_words(value)
                    break
            i += 1
            continue
        break
    i += wrap.operands
    if wrap.assignments:
        while i < len(args) and ASSIGN.match(args[i].value):
            i += 1
    i = min(i, len(args))
    if not extra and i >= len(args):
        return None
    return extra, i, cwd


_INPUT: Final = "<input>"


def _input_word() -> Word:
    w = Word.literal(_INPUT)
    w.unknown = True
    return w


def xargs_replace(options: list[Word]) -> str | None:
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


def with_input(rest: list[Word], replace: str | None) -> list[Word]:
    """xargs' command with the words it reads from its input: unknown paths."""
    if replace is None:
        return [*rest, _input_word()]
    out: list[Word] = []
    for w in rest:
        if replace in w.value:
            u = Word.literal(w.value)
            u.unknown = True
            out.append(u)
        else:
            out.append(w)
    return out


_PARALLEL_SEPS: Final = frozenset({":::", "::::", ":::+", "::::+"})


_PARALLEL_REPL: Final = r"\{[^{}\s]*\}"  # compiled on use


def parallel_text(values: list[str]) -> str:
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
    if re.search(_PARALLEL_REPL, cmd):
        return re.sub(_PARALLEL_REPL, lambda _m: joined, cmd)
    return cmd + " " + joined


def _split_words(value: str) -> list[Word]:
    try:
        return [Word.literal(v) for v in shlex.split(value)]
    except ValueError:
        return [Word.literal(v) for v in value.split()]


def find_execs(args: list[Word]) -> list[list[Word]]:
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
    out: list[list[Word]] = []
    while i < len(args):
        if args[i].value in ("-exec", "-execdir", "-ok", "-okdir"):
            j = i + 1
            cmd: list[Word] = []
            while (
                j < len(args)
                and args[j].value != ";"
                and not (args[j].value == "+" and cmd and cmd[-1].value == "{}")
            ):
                if args[j].value == "{}":
                    cmd.extend(Word.literal(s) for s in starts)
                else:
                    cmd.append(args[j])
                j += 1
            if cmd:
                out.append(cmd)
            i = j + 1
            continue
        i += 1
    return out
