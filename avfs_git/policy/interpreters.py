"""Shells and interpreters: where they read code from (``-c``, a script file, the standard
input), the code an interpreter is given on its command line (``python -c``, ``node -e``,
``deno eval``...) and the language :mod:`.scriptcode` reads it as, and the command lines
that run avfs itself (``avfs``, ``python -m avfs_git``, ``uvx avfs``).
"""

from __future__ import annotations

import posixpath
import re
from types import MappingProxyType
from typing import Final

from .lexer import Word

SHELLS: Final = frozenset(
    {"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "rbash", "yash", "posh"}
)


# interpreter -> (flags whose presence means the code is an argument, options taking a value)
_INTERPRETERS: Final = MappingProxyType(
    {
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
)


SOURCE: Final = frozenset({"source", "."})


_STDIN_FILES: Final = frozenset({"/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"})


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


_CODE_FLAGS: Final = MappingProxyType(
    {
        "python": "c",
        "pypy": "c",
        "perl": "eE",
        "ruby": "e",
        "node": "ep",
        "nodejs": "ep",
        "php": "r",
        "lua": "e",
    }
)


_CODE_LONG: Final = frozenset({"--eval", "--print"})


_SCRIPT_LANGS: Final = MappingProxyType(
    {
        "node": "js",
        "nodejs": "js",
        "deno": "js",
        "bun": "js",
        "perl": "perl",
        "ruby": "ruby",
        "php": "php",
    }
)


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
