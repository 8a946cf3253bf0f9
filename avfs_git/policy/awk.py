"""awk command lines: where the program comes from (text, ``-f`` files, extensions) and
what a program does beyond reading and printing (``system``, pipes, ``print >``).
"""

from __future__ import annotations

import re
from typing import Final

from .lexer import Word
from .paths import literal_path


def awk_programs(args: list[Word]) -> tuple[list[Word], list[Word], bool]:
    """An awk command's program texts, program files (``-f``) and whether it loads an
    extension (gawk ``-l``, ``@load``)."""
    programs: list[Word] = []
    files: list[Word] = []
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
            word = literal_path(value) if eq else nxt
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
            word = literal_path(v[2:]) if len(v) > 2 else nxt
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


# The patterns below are compiled on first use (re caches them), not at import: most
# command lines hold no awk, and every hook call imports this module.
_AWK_STRING: Final = r'"(?:\\.|[^"\\\n])*"'
_AWK_REGEX: Final = r"(?:\A|(?<=[(,~!{};&|\n]))\s*/(?:\\.|\[[^\]\n]*\]|[^/\\\n])*/"
_AWK_RISKS: Final = (
    (r"\bsystem\s*\(", "runs a command (`system`)"),
    (r"(?<!\|)\|(?!\|)", "runs a command through a pipe (`| getline`, `print |`)"),
    (r"\bprintf?\b[^;{}\n]*>", "writes to a file (`print >`)"),
    (r"@load\b", "loads an extension (compiled code)"),
)


def awk_risk(program: str) -> str | None:
    """What an awk program does beyond reading and printing, or None."""
    if not any(ch in program for ch in "|>(@"):
        return None
    bare = re.sub(_AWK_REGEX, " ", re.sub(_AWK_STRING, '""', program))
    for pattern, what in _AWK_RISKS:
        if re.search(pattern, bare):
            return what
    return None


_AWK_LIT = r'"((?:\\.|[^"\\])*)"'
_AWK_RUN: Final = r"\bsystem\s*\(\s*" + _AWK_LIT + r"|" + _AWK_LIT + r"\s*\|&?\s*getline|\|&?\s*" + _AWK_LIT
_AWK_WRITE: Final = r"\bprintf?\b[^;{}\n]*?>>?\s*" + _AWK_LIT


def _awk_unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), text)


def awk_literals(program: str) -> list[tuple[str, str]]:
    """("run", command) and ("write", file) for the literal strings an awk program runs
    or writes to."""
    out: list[tuple[str, str]] = []
    for m in re.finditer(_AWK_RUN, program):
        text = next(g for g in m.groups() if g is not None)
        out.append(("run", _awk_unescape(text)))
    for m in re.finditer(_AWK_WRITE, program):
        out.append(("write", _awk_unescape(m.group(1))))
    return out
