"""sed command lines: where the script comes from (``-e``, ``-f``, the first operand) and
what a script does beyond editing its input (``w`` writes a file, ``e`` runs a command).
"""

from __future__ import annotations

from .lexer import Word
from .paths import literal_path


def sed_scripts(args: list[Word]) -> tuple[list[Word], list[Word], bool, list[Word]]:
    """A sed command's scripts (``-e``, or the first operand), script files (``-f``),
    whether ``--sandbox`` forbids ``e``, ``w`` and ``r``, and an operand that may be a
    script (the first, after ``-f``)."""
    scripts: list[Word] = []
    files: list[Word] = []
    sandbox = False
    operands: list[Word] = []
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
            word = literal_path(value) if eq else nxt
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
                    word = Word.literal(v[j + 1 :]) if j + 1 < len(v) else nxt
                    if word is not None and ch == "e":
                        scripts.append(word)
                    elif word is not None and ch == "f":
                        files.append(literal_path(word.value) if j + 1 < len(v) else word)
                    if j + 1 >= len(v):
                        k += 1
                    break
                if ch == "i":
                    break  # the rest is the backup suffix
        k += 1
    maybe: list[Word] = []
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


def sed_scan(t: str) -> tuple[list[str], list[str], bool]:
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
