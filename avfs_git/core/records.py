"""``dataclass`` as :mod:`dataclasses` makes it, its generated methods compiled once.

avfs's results are frozen slotted dataclasses (docs/architecture.md), 110 of them, and a
CLI process defines 20-26 before it does anything: :func:`dataclasses.dataclass` writes the
source of each class's ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``,
``__setattr__``, ``__delattr__`` and slot state methods and compiles it, ~0.7 ms of CPU a
class (the other ~0.3 ms is its bookkeeping), 15-29 ms of every cold `avfs` process and of
every mount daemon's start (docs/benchmarks.md, "The cold CLI's imports" in the twentieth
round).

:func:`dataclass` here is :func:`dataclasses.dataclass` itself, run with its one call of
``exec`` on generated source answered from a table of code objects compiled from exactly
that source: the class is the standard library's, field by field and method by method (the
type checker sees :func:`dataclasses.dataclass`). A source not in the table (a class edited
since the table was written, another Python) is compiled as the standard library would. The
table, ``__pycache__/records.<cache tag>.bin`` beside this module, is written by ``make
install`` (``python -m avfs_git.core.records``, which imports every avfs module) for that
interpreter's bytecode, as ``compileall`` writes the modules' ``.pyc`` files beside them;
it holds code as they do, in the same directory, and is trusted as they are.
"""

import dataclasses
import marshal
import sys

# not `from typing`: this module runs under every dataclass of avfs, and without
# `from __future__ import annotations` (exec of a string inherits its caller's future flags)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass as dataclass
    from types import CodeType
    from typing import Any

_builtin_exec = exec
_HERE = __file__.rpartition("/")[0] or "."
TABLE = f"{_HERE}/__pycache__/records.{sys.implementation.cache_tag}.bin"


def _magic() -> bytes:
    """The bytecode's magic number: a table written by another interpreter is not read."""
    import _frozen_importlib_external

    return bytes(_frozen_importlib_external.MAGIC_NUMBER)


class _Table:
    """The code of each generated source, by module: the file's per-module parts are read
    when a class of that module is first made. Shared by threads: each step is one dict
    operation, and a source not found is compiled (a lost update costs a compile, never a
    wrong method: the key is the whole source)."""

    def __init__(self) -> None:
        self.parts: dict[str, bytes] | None = None
        self.code: dict[str, CodeType] = {}
        self.loaded: set[str] = set()
        self.misses = 0
        # python -m avfs_git.core.records: module -> source -> code, of every class made
        self.recording: dict[str, dict[str, CodeType]] | None = None
        self.module = ""

    def load(self, module: str) -> None:
        if module in self.loaded:
            return
        self.loaded.add(module)
        if self.parts is None:
            self.parts = {}
            try:
                with open(TABLE, "rb") as fh:
                    data = fh.read()
                magic = _magic()
                if data[: len(magic)] == magic:
                    self.parts = marshal.loads(data[len(magic) :])
            except (OSError, ValueError, EOFError, TypeError):
                pass
        part = self.parts.get(module)
        if part is not None:
            try:
                self.code.update(marshal.loads(part))
            except (ValueError, EOFError, TypeError):
                pass

    def exec(self, source: "Any", globals: "Any" = None, locals: "Any" = None) -> None:
        """``exec`` as :mod:`dataclasses` calls it, on its generated source."""
        if type(source) is str:
            code = self.code.get(source)
            if code is None:
                self.misses += 1
                # as exec compiles a string: file "<string>", no future flags of the caller
                code = compile(source, "<string>", "exec", dont_inherit=True)
                if self.recording is not None:
                    self.recording.setdefault(self.module, {})[source] = code
            source = code
        _builtin_exec(source, globals, locals)


_table = _Table()

if not TYPE_CHECKING:

    def dataclass(cls: "Any" = None, /, **options: "Any") -> "Any":
        """:func:`dataclasses.dataclass` (the same arguments, the same class)."""

        def wrap(c: "Any") -> "Any":
            _table.load(c.__module__)
            _table.module = c.__module__
            # dataclasses looks up `exec` in its own module's globals before the builtins:
            # set for this call only (another thread's class made meanwhile gets the same
            # answer: the table's code is the source's own)
            dataclasses.__dict__["exec"] = _table.exec
            try:
                return dataclasses.dataclass(c, **options)
            finally:
                dataclasses.__dict__.pop("exec", None)

        return wrap if cls is None else wrap(cls)


def misses() -> int:
    """How many generated sources this process compiled (not in the table)."""
    return _table.misses


def write(path: str = TABLE) -> int:
    """Import every avfs module with the table recording, write it at ``path`` (atomically);
    returns the number of sources."""
    import importlib
    import os
    import pkgutil

    _table.recording = {}
    _table.code = {}  # compile everything again: the table holds what this code makes
    _table.parts = {}
    package = os.path.dirname(_HERE)  # avfs_git/, this module's package's parent
    for info in pkgutil.walk_packages([package], "avfs_git."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:  # a module whose optional dependency is absent: its classes compile
            pass
    parts = {m: marshal.dumps(codes) for m, codes in sorted(_table.recording.items())}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(_magic() + marshal.dumps(parts))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return sum(len(c) for c in _table.recording.values())


if __name__ == "__main__":
    # run as a script this module is __main__: the package's classes use avfs_git.core.records
    from avfs_git.core import records

    records.write()
