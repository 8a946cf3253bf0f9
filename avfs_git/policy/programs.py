"""What avfs knows of programs' arguments: the wrappers that run another command (env,
sudo, xargs, watch...) and how to find it, shells and interpreters and where they read code
from, ``find -exec``, ``xargs``' and ``parallel``'s inputs, options that take a value or move
the working directory, and options whose value is a file the program writes. awk and sed
programs are read by ``awk`` and ``sed``.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from typing import Final

from .lexer import Word
from .parser import ASSIGN
from .paths import literal_path, resolve_dir


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


WRAPPERS: Final = {
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
            {"--arg-file", "--delimiter", "--max-args", "--max-procs", "--max-chars", "--process-slot-var"}
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
# Options of a program that is otherwise read-only whose value is a file it writes:
# (those options, the short options that take a value; None: options are whole words)
WRITE_OPTS: Final[dict[str, tuple[tuple[str, ...], str | None]]] = {
    "sort": (("-o", "--output"), "ktoST"),
    "shuf": (("-o", "--output"), "ino"),
    "less": (("-o", "-O", "--log-file", "--LOG-FILE"), "bhjkoOpPtTxyz#"),
    "find": (("-fprint", "-fprint0", "-fprintf", "-fls"), None),
    "tree": (("-o",), "LPIoHT"),
    "info": (("-o", "--output"), "odfn"),
}


def _opts(text: str) -> frozenset[str]:
    return frozenset("--" + o for o in text.split())


# The long options of programs that read them with GNU getopt_long (or parse-options),
# which takes any unambiguous prefix of one (`sed --in-pl`, `env --split-s`, `sort --out=F`):
# a prefix is read as the option it stands for (:func:`long_option`).
LONG_OPTS: Final[dict[str, frozenset[str]]] = {
    "sed": _opts(
        "debug expression file follow-symlinks help in-place line-length null-data zero-terminated"
        " posix quiet silent regexp-extended sandbox separate unbuffered version binary"
    ),
    "env": _opts(
        "ignore-environment null unset chdir split-string block-signal default-signal"
        " ignore-signal list-signal-handling debug help version"
    ),
    "sort": _opts(
        "ignore-leading-blanks dictionary-order ignore-case general-numeric-sort ignore-nonprinting"
        " month-sort human-numeric-sort numeric-sort random-sort random-source reverse sort"
        " version-sort batch-size check compress-program debug files0-from key merge output"
        " stable buffer-size field-separator temporary-directory parallel unique zero-terminated"
        " help version"
    ),
    "shuf": _opts("echo input-range head-count output random-source repeat zero-terminated help version"),
    "xargs": _opts(
        "null arg-file delimiter eof replace max-lines max-args open-tty interactive"
        " no-run-if-empty max-chars show-limits verbose exit max-procs process-slot-var help version"
    ),
    "timeout": _opts("foreground kill-after preserve-status signal verbose help version"),
    "nice": _opts("adjustment help version"),
    "stdbuf": _opts("input output error help version"),
    "info": _opts(
        "all apropos directory debug dribble file help index-search location node output"
        " raw-escapes no-raw-escapes restore show-options subnodes usage version"
    ),
    "cp": _opts(
        "archive attributes-only backup copy-contents debug force interactive link dereference"
        " no-clobber no-dereference preserve no-preserve parents recursive reflink"
        " remove-destination sparse strip-trailing-slashes symbolic-link suffix target-directory"
        " no-target-directory update verbose one-file-system context keep-directory-symlink help version"
    ),
    "mv": _opts(
        "backup debug exchange force interactive no-clobber no-copy strip-trailing-slashes suffix"
        " target-directory no-target-directory update verbose context help version"
    ),
    "ln": _opts(
        "backup directory force interactive logical no-dereference physical relative symbolic"
        " suffix target-directory no-target-directory verbose help version"
    ),
    "install": _opts(
        "backup compare directory group mode owner preserve-timestamps strip strip-program suffix"
        " target-directory no-target-directory verbose preserve-context context debug help version"
    ),
    "make": _opts(
        "always-make directory debug environment-overrides eval file makefile help ignore-errors"
        " include-dir jobs keep-going load-average check-symlink-times just-print dry-run recon"
        " old-file assume-old output-sync print-data-base question no-builtin-rules"
        " no-builtin-variables shuffle silent quiet no-silent stop no-keep-going touch trace"
        " version print-directory no-print-directory what-if new-file assume-new"
        " warn-undefined-variables"
    ),
}
LONG_OPTS["gsed"] = LONG_OPTS["sed"]
LONG_OPTS["gmake"] = LONG_OPTS["make"]


def long_option(v: str, names: frozenset[str]) -> str:
    """``v`` (``--pre`` or ``--pre=VALUE``) with ``--pre`` spelled out as the one option of
    ``names`` it is a prefix of, as getopt_long reads it; ``v`` itself when it names an
    option exactly, none, or several (the program then refuses it)."""
    key, eq, value = v.partition("=")
    if key in names or len(key) < 3:
        return v
    found = [n for n in names if n.startswith(key)]
    if len(found) != 1:
        return v
    return found[0] + eq + value


# short options of sed and perl that are flags (no value): a cluster of them is split
_SED_FLAGS: Final = frozenset("nrEsuzb")
_PERL_FLAGS: Final = frozenset("acnpsStTuUvwWX")


def canonical_args(name: str, args: list[Word]) -> list[Word]:
    """``args`` as the program reads them: long options spelled out (:data:`LONG_OPTS`)
    and the short option clusters of sed and perl split (``-nEi.bak`` is ``-n -E
    -i.bak``; ``-pi`` is ``-p -i``), so that rules see ``-i`` however it is written. The
    same list when nothing changes."""
    names = LONG_OPTS.get(name)
    flags = _SED_FLAGS if name in ("sed", "gsed") else _PERL_FLAGS if name == "perl" else None
    if names is None and flags is None:
        return args
    out: list[Word] | None = None
    for k, w in enumerate(args):
        v = w.value
        if v == "--":
            if out is not None:
                out.extend(args[k:])
            break
        pieces: list[str] | None = None
        if v.startswith("--") and names is not None:
            full = long_option(v, names)
            if full != v:
                pieces = [full]
        elif flags is not None and len(v) > 2 and v[0] == "-" and v[1] != "-":
            pieces = _split_cluster(v, flags, perl=name == "perl")
        if pieces is not None:
            if out is None:
                out = list(args[:k])
            for piece in pieces:
                nw = Word(piece, None, w.quoted)
                nw.dynamic, nw.unknown, nw.subs = w.dynamic, w.unknown, w.subs
                out.append(nw)
        elif out is not None:
            out.append(w)
    return args if out is None else out


def _split_cluster(v: str, flags: frozenset[str], *, perl: bool) -> list[str] | None:
    out: list[str] = []
    j = 1
    while j < len(v):
        ch = v[j]
        if ch in flags:
            out.append("-" + ch)
            j += 1
            continue
        if perl and ch in "l0C":  # an optional number follows
            k = j + 1
            while k < len(v) and v[k].isdigit():
                k += 1
            out.append("-" + v[j:k])
            j = k
            continue
        out.append("-" + v[j:])  # -i[SUFFIX], -e SCRIPT, -f FILE, ...: the rest is its value
        break
    return out if len(out) > 1 else None


SHELLS: Final = frozenset(
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
    "deno": ("", ""),
    "bun": ("ep", ""),
    "php": ("rBRFE", "cdz"),
    "lua": ("e", "l"),
}
SOURCE: Final = frozenset({"source", "."})
_STDIN_FILES: Final = frozenset({"/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"})


# options taking a value that come before a subcommand
GLOBAL_VALUE_OPTS: Final = {
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


def program_cwd(name: str, args: list[Word], cwd: str | None) -> str | None:
    spec = _CHDIR_OPTS.get(name)
    if spec is None:
        return cwd
    opts, global_only = spec
    values = [a.value for a in args]
    k = 0
    value_opts = GLOBAL_VALUE_OPTS.get(name, frozenset())
    while k < len(args):
        v = values[k]
        if global_only and not v.startswith("-"):
            break
        for opt in opts:
            if v == opt and k + 1 < len(args):
                cwd = resolve_dir(args[k + 1], cwd)
                k += 1
                break
            if opt.startswith("--") and v.startswith(opt + "="):
                cwd = resolve_dir(Word.literal(v.split("=", 1)[1]), cwd)
                break
            if not opt.startswith("--") and v.startswith(opt) and len(v) > len(opt) and not global_only:
                cwd = resolve_dir(Word.literal(v[len(opt) :]), cwd)
                break
        else:
            if v in value_opts:
                k += 1
        k += 1
    return cwd


def subcommand(name: str, values: list[str]) -> str | None:
    value_opts = GLOBAL_VALUE_OPTS.get(name, frozenset())
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


def option_values(args: list[Word], opts: tuple[str, ...], value_short: str | None) -> list[Word]:
    """The values of ``opts`` in ``args`` (``-o F``, ``-oF``, ``-ro F``, ``--output=F``)."""
    out: list[Word] = []
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
                out.append(literal_path(value))
        elif value_short is not None and v.startswith("-") and len(v) > 1:
            for j in range(1, len(v)):
                ch = v[j]
                if ch in value_short:
                    value_word = literal_path(v[j + 1 :]) if j + 1 < len(v) else nxt
                    if "-" + ch in opts and value_word is not None:
                        out.append(value_word)
                    if j + 1 >= len(v):
                        k += 1
                    break
        k += 1
    return out


def _split_words(value: str) -> list[Word]:
    try:
        return [Word.literal(v) for v in shlex.split(value)]
    except ValueError:
        return [Word.literal(v) for v in value.split()]


def shell_mode(args: list[Word]) -> tuple[str, Word | None]:
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


def interpreter(name: str) -> tuple[str, str] | None:
    base = name.rstrip("0123456789.")
    return _INTERPRETERS.get(base)


def reads_stdin_code(name: str, args: list[Word]) -> bool:
    if name in SHELLS:
        return shell_mode(args)[0] == "stdin"
    if name in SOURCE:
        return bool(args) and (args[0].value in _STDIN_FILES or args[0].value == "-")
    spec = interpreter(name)
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


# `avfs` subcommands that only read the workspace: allowed from inside it (nothing they do
# approves, mounts, pushes or runs a command); every other one is denied there
AVFS_READERS: Final = frozenset({"status", "log", "diff", "cat", "ls"})
_AVFS_GLOBAL_VALUE: Final = frozenset({"--home", "--vault"})
_AVFS_GLOBAL_FLAGS: Final = frozenset({"--json", "--version", "-h", "--help"})
_PYTHON: Final = re.compile(r"python[0-9.]*|pypy[0-9.]*")
_PYTHON_VALUE_FLAGS: Final = "WXQ"  # python options that take a value (-W arg, -X opt)


def avfs_itself(program: str, args: list[Word]) -> str | None:
    """Why ``program args`` runs avfs itself in a way a command in the workspace may not
    (None: it does not, or only a subcommand that reads). From inside the boundary avfs
    could approve its own token (``avfs proxy approve --yes``), mount, push or run a
    command unconfined: so any path named ``avfs``, ``python -m avfs_git``, a Python
    one-liner that imports it, and ``uvx``/``pipx run`` of it, are refused."""
    base = posixpath.basename(program)
    values = [a.value for a in args]
    if base == "avfs":
        return _avfs_subcommand(program, values)
    if base in ("uvx", "pipx", "uv") and any(posixpath.basename(v).split("==")[0] == "avfs" for v in values):
        return f"`{base}` runs avfs itself"
    if not _PYTHON.fullmatch(base):
        return None
    k = 0
    while k < len(values):
        v = values[k]
        if not v.startswith("-") or v in ("-", "--"):
            # the script: avfs's own entry points
            if "avfs_git" in v or posixpath.basename(v) == "avfs":
                return f"`{base} {v}` runs avfs itself"
            return None
        flags = v[1:]
        for j, ch in enumerate(flags):
            if ch in "mc":
                rest = flags[j + 1 :] or (values[k + 1] if k + 1 < len(values) else "")
                if ch == "m" and (rest == "avfs_git" or rest.startswith("avfs_git.")):
                    return f"`{base} -m {rest}` runs avfs itself"
                if ch == "c" and "avfs_git" in rest:
                    return f"`{base} -c` imports avfs itself"
                return None
            if ch in _PYTHON_VALUE_FLAGS:
                if j + 1 == len(flags):
                    k += 1
                break
        k += 1
    return None


def _avfs_subcommand(program: str, values: list[str]) -> str | None:
    k = 0
    while k < len(values):
        v = values[k]
        if v in _AVFS_GLOBAL_VALUE:
            k += 2
            continue
        if v.split("=", 1)[0] in _AVFS_GLOBAL_VALUE or v in _AVFS_GLOBAL_FLAGS:
            k += 1
            continue
        break
    sub = values[k] if k < len(values) else ""
    if sub in AVFS_READERS:
        return None
    shown = f"avfs {sub}" if sub else "avfs"
    return f"`{shown}` runs avfs itself, which only reads ({', '.join(sorted(AVFS_READERS))}) from inside the workspace"


_CODE_FLAGS: Final = {
    "python": "c",
    "pypy": "c",
    "perl": "eE",
    "ruby": "e",
    "node": "ep",
    "nodejs": "ep",
    "php": "r",
    "lua": "e",
}
_CODE_LONG: Final = frozenset({"--eval", "--print"})
_SCRIPT_LANGS: Final = {
    "node": "js",
    "nodejs": "js",
    "deno": "js",
    "bun": "js",
    "perl": "perl",
    "ruby": "ruby",
    "php": "php",
}


def script_language(name: str) -> str | None:
    """The language :mod:`.scriptcode` reads for interpreter ``name`` (None: not one)."""
    return _SCRIPT_LANGS.get(name.rstrip("0123456789."))


def inline_code(name: str, args: list[Word]) -> tuple[str, Word] | None:
    """The code an interpreter runs from its command line (``python -c CODE``, ``node -e``,
    ``perl -e``, ``ruby -e``...): (the option, the code), or None."""
    base = name.rstrip("0123456789.")
    if base in ("deno", "bun"):
        return _deno_bun_code(base, args)
    flags = _CODE_FLAGS.get(base)
    spec = _INTERPRETERS.get(base)
    if flags is None or spec is None:
        return None
    value_flags = spec[1]
    k = 0
    while k < len(args):
        v = args[k].value
        if base in ("node", "nodejs") and v.partition("=")[0] in _CODE_LONG:
            if "=" in v:
                return v.partition("=")[0], Word.literal(v.partition("=")[2])
            return (v, args[k + 1]) if k + 1 < len(args) else None
        if not v.startswith("-") or v in ("-", "--") or v.startswith("--"):
            if v.startswith("--") and v != "--":
                k += 1
                continue
            return None
        for j in range(1, len(v)):
            ch = v[j]
            if ch in flags:
                if j + 1 < len(v):
                    return "-" + ch, Word.literal(v[j + 1 :])
                return ("-" + ch, args[k + 1]) if k + 1 < len(args) else None
            if ch in value_flags or (base in ("python", "pypy") and ch == "m"):
                if ch == "m":
                    return None
                if j + 1 == len(v):
                    k += 1
                break
        k += 1
    return None


# -- git options and variables that run a program -------------------------------------------

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
_GIT_CODE_OPTS: Final = {
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


def _deno_bun_code(base: str, args: list[Word]) -> tuple[str, Word] | None:
    """``deno eval [OPTIONS] CODE`` and ``bun -e/--eval/-p/--print CODE``."""
    values = [a.value for a in args]
    if base == "deno":
        if not values or values[0] != "eval":
            return None
        rest = [a for a in args[1:] if not a.value.startswith("-")]
        return ("eval", rest[0]) if rest else None
    for k, v in enumerate(values):
        key, eq, value = v.partition("=")
        if key in ("-e", "--eval", "-p", "--print"):
            if eq:
                return key, Word.literal(value)
            return (key, args[k + 1]) if k + 1 < len(args) else None
        if not v.startswith("-"):
            return None
    return None


# subcommand -> its options whose value is a shell command git runs (in the same place)
_GIT_SHELL_OPTS: Final = {
    "rebase": ("--exec", "-x"),
    "difftool": ("--extcmd", "-x"),
    "filter-branch": (
        "--env-filter", "--tree-filter", "--index-filter", "--parent-filter", "--msg-filter",
        "--commit-filter", "--tag-name-filter",
    ),
}  # fmt: skip


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
