"""What a Python one-liner (``python -c CODE``, ``python - <<EOF``) does to files and
processes, read with the ``ast`` module (imported only when such code is met): the shell
commands it runs, the paths it deletes, writes and reads when they are written as
literals, and what cannot be read (code built at run time, paths it computes). Pure:
nothing is run or imported from the code.
"""

from __future__ import annotations

import ast
from typing import Final

# (what, detail): ("shell", text) | ("argv", [words]) | ("delete"|"write"|"read", path)
# | ("opaque", why: what it does cannot be read from the code) | ("dynamic", why: it runs a
# command it computes)
Effect = tuple[str, object]

_SUBPROCESS: Final = frozenset({"run", "call", "check_call", "check_output", "Popen"})
_SHELL_TEXT: Final = frozenset({"system", "popen", "getoutput", "getstatusoutput"})
_EXEC: Final = frozenset({"execv", "execve", "execvp", "execvpe", "execl", "execlp", "execle", "execlpe"})
_SPAWN: Final = frozenset({"spawnv", "spawnve", "spawnvp", "spawnvpe", "spawnl", "spawnlp"})
_DELETE: Final = frozenset({"rmtree", "remove", "unlink", "rmdir", "removedirs"})
_WRITE: Final = frozenset(
    {
        "write_text", "write_bytes", "touch", "mkdir", "makedirs", "chmod", "chown", "lchown",
        "rename", "renames", "replace", "move", "copy", "copy2", "copyfile", "copytree",
        "truncate", "symlink_to", "hardlink_to", "link", "symlink", "mkfifo", "mknod", "utime",
    }
)  # fmt: skip
_READ: Final = frozenset({"read_text", "read_bytes", "listdir", "scandir", "walk", "iterdir", "glob"})
_CODE: Final = frozenset(
    {"exec", "eval", "compile", "__import__", "import_module", "getattr", "CDLL", "cdll"}
)
_OPAQUE_MODULES: Final = frozenset({"ctypes", "cffi", "importlib", "runpy", "pty", "code"})
MAX_CODE: Final = 100_000  # characters: longer code is not read


def effects(code: str) -> list[Effect]:
    """The effects of ``code`` that the classifier judges, in the order they appear."""
    if len(code) > MAX_CODE:
        return [("opaque", f"is longer than {MAX_CODE} characters")]
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return [("opaque", "does not parse as Python")]
    names: dict[str, str] = {}  # local name -> what it was imported as (`from os import system as s`)
    out: list[Effect] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                names[alias.asname or alias.name] = alias.name
            if (node.module or "").split(".")[0] in _OPAQUE_MODULES:
                out.append(("opaque", f"imports {node.module}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in _OPAQUE_MODULES:
                    out.append(("opaque", f"imports {alias.name}"))
        elif isinstance(node, ast.Call):
            out.extend(_call(node, names))
    return out


def _call(node: ast.Call, names: dict[str, str]) -> list[Effect]:
    func = node.func
    if isinstance(func, ast.Name):
        tail = names.get(func.id, func.id)
        receiver: ast.expr | None = None
    elif isinstance(func, ast.Attribute):
        tail = func.attr
        receiver = func.value
    else:
        return [("opaque", "calls a function it computes")]
    args = list(node.args)
    if tail in _CODE:
        return [("opaque", f"builds code or names at run time ({tail})")]
    if tail in _SHELL_TEXT or (tail in _SUBPROCESS and _true_kw(node, "shell")):
        text = _str(args[0]) if args else None
        return (
            [("shell", text)]
            if text is not None
            else [("dynamic", f"runs a shell command it computes ({tail})")]
        )
    if tail in _SUBPROCESS or tail in _EXEC or tail in _SPAWN:
        pos = 1 if tail in _SPAWN else 0  # spawnv(mode, path, args)
        first = args[pos] if len(args) > pos else None
        words = _strs(first) if first is not None else None
        if words is None and tail in _EXEC | _SPAWN and len(args) > pos + 1:
            words = _strs(args[pos + 1])
        if isinstance(first, ast.Constant) and isinstance(first.value, str) and tail in _SUBPROCESS:
            words = [first.value]
        return [("argv", words)] if words else [("dynamic", f"runs a command it computes ({tail})")]
    if tail == "open" or (tail in ("open", "fdopen") and receiver is not None):
        path = _str(args[0]) if args else _path_of(receiver)
        mode = _str(args[1]) if len(args) > 1 else _kw_str(node, "mode")
        writes = mode is not None and any(c in mode for c in "wax+")
        if path is None:
            return [("opaque", "writes a file whose path it computes")] if writes else []
        return [("write" if writes else "read", path)]
    if (tail in _DELETE or tail in _WRITE or tail in _READ) and not _file_call(tail, func, receiver, names):
        return []  # `"a/b".replace("/", "_")`: not a file operation
    if tail in _DELETE or tail in _WRITE or tail in _READ:
        kind = "delete" if tail in _DELETE else "write" if tail in _WRITE else "read"
        paths = [p for p in (_str(a) for a in args) if p is not None]
        own = _path_of(receiver)
        if own is not None:
            paths.insert(0, own)
        if not paths:
            return [] if kind == "read" else [("opaque", f"calls {tail}() on a path it computes")]
        return [(kind, p) for p in paths]
    return []


# names only file operations have: read as such whatever they are called on
_FILE_ONLY: Final = frozenset(
    {"rmtree", "unlink", "rmdir", "removedirs", "write_text", "write_bytes", "makedirs", "copytree",
     "copyfile", "symlink_to", "hardlink_to", "mkfifo", "mknod", "lchown", "read_text", "read_bytes"}
)  # fmt: skip
_FILE_MODULES: Final = frozenset(
    {"os", "shutil", "pathlib", "posix", "path", "Path", "PosixPath", "PurePath"}
)


def _file_call(tail: str, func: ast.expr, receiver: ast.expr | None, names: dict[str, str]) -> bool:
    """Whether a call named ``tail`` (``remove``, ``replace``, ``copy``...) is on a file: a
    name that only file operations have, a function imported by that name, or one called on
    ``os``/``shutil``/``pathlib`` or on ``Path(...)``."""
    if tail in _FILE_ONLY:
        return True
    if receiver is None:
        return isinstance(func, ast.Name) and func.id in names
    while isinstance(receiver, ast.Attribute):
        if receiver.attr in _FILE_MODULES:
            return True
        receiver = receiver.value
    if isinstance(receiver, ast.Call):
        f = receiver.func
        return (isinstance(f, ast.Name) and f.id in _FILE_MODULES) or (
            isinstance(f, ast.Attribute) and f.attr in _FILE_MODULES
        )
    return isinstance(receiver, ast.Name) and receiver.id in _FILE_MODULES


def _path_of(expr: ast.expr | None) -> str | None:
    """The literal path of ``Path('/x')`` (the receiver of ``.unlink()``)."""
    if isinstance(expr, ast.Call) and expr.args:
        return _str(expr.args[0])
    return None


def _str(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    return None


def _strs(expr: ast.expr) -> list[str] | None:
    if isinstance(expr, (ast.List, ast.Tuple)):
        out = [_str(e) for e in expr.elts]
        return [s for s in out if s is not None] if all(s is not None for s in out) and out else None
    return None


def _true_kw(node: ast.Call, name: str) -> bool:
    return any(
        k.arg == name and not (isinstance(k.value, ast.Constant) and not k.value.value) for k in node.keywords
    )


def _kw_str(node: ast.Call, name: str) -> str | None:
    for k in node.keywords:
        if k.arg == name:
            return _str(k.value)
    return None
