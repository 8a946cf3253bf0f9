"""Paths as a command line names them: which lie outside the workspace, the directory a
``cd`` moves to, and the key a file is known by while a command line is classified. Pure:
no file is looked at.
"""

from __future__ import annotations

import fnmatch
import posixpath
from typing import Final

from .lexer import Word

_HOME_VARS: Final = frozenset(
    {
        "HOME",
        "TMPDIR",
        "OLDPWD",
        "TMP",
        "TEMP",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_CACHE_HOME",
        "USERPROFILE",
    }
)
HARMLESS_PATHS: Final = frozenset(
    {"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/stdin", "/dev/tty", "/dev/zero"}
)


HOME_DIR: Final = "/\x00home"  # a working directory outside every workspace
VIRTUAL_ROOT: Final = "/\x00workspace"


def within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def literal_path(value: str) -> Word:
    w = Word.literal(value)
    w.tilde = value.startswith("~")
    if value.startswith("$"):
        w.lead = value[1:].strip("{}").split("/", 1)[0]
        w.lead_len = len(value.split("/", 1)[0])
    return w


def path_key(w: Word, cwd: str | None) -> str:
    """How a file is named in ``written``, ``touched`` and ``runs``."""
    v = w.value
    if w.tilde or w.lead is not None or w.unknown:
        return v
    if not v.startswith("/"):
        if cwd is None:
            return v
        v = cwd + "/" + v
    return posixpath.normpath(v)


def outside(w: Word, cwd: str | None, root: str) -> bool:
    """Whether the path ``w`` may be outside the workspace (unknown counts as outside)."""
    v = w.value
    if w.tilde:
        return True
    if w.lead is not None:
        if w.lead == "PWD" and cwd is not None:
            v = cwd + v[w.lead_len :]
        else:
            return True  # $HOME, $TMPDIR, "$x"/...: not provably inside
    if v in HARMLESS_PATHS or v.startswith(("/dev/fd/", "/proc/self/fd/")):
        return False
    if w.glob:  # `.*` matches `..` in older shells
        v = "/".join(
            ".." if c.startswith(".") and c != ".." and fnmatch.fnmatchcase("..", c) else c
            for c in v.split("/")
        )
    path = _absolute(v, cwd)
    return path is None or not within(path, root)


def resolve_dir(w: Word, cwd: str | None) -> str | None:
    v = w.value
    if w.tilde:
        return posixpath.normpath(HOME_DIR + v[v.index("/") :]) if "/" in v else HOME_DIR
    if w.lead is not None:
        if w.lead == "PWD" and cwd is not None:
            v = cwd + v[w.lead_len :]
        elif w.lead in _HOME_VARS:
            return HOME_DIR
        else:
            return None
    return _absolute(v, cwd)


def _absolute(v: str, cwd: str | None) -> str | None:
    """``v`` as a normal absolute path (None: relative, and no directory is known)."""
    if not v.startswith("/"):
        if cwd is None:
            return None
        v = cwd + "/" + v
    path = posixpath.normpath(v)
    return "/" + path.lstrip("/") if path.startswith("//") else path


def cd_target(name: str, args: list[Word], cwd: str | None) -> str | None:
    if name == "popd":
        return None
    operands = [a for a in args if not (a.value.startswith("-") and a.value != "-")]
    if not operands:
        return HOME_DIR if name == "cd" else None
    if operands[0].value == "-":
        return None
    return resolve_dir(operands[0], cwd)
