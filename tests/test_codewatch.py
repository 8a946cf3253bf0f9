"""A warm process's view of its own code (avfs_git/ops/codewatch.py): any change to a
``.py`` file of the package after the watch began (an edit, a touch, a new module, a new
package, a removal, a rename onto a module) is seen; bytecode, editor files and
``__pycache__`` are not. Real inotify on a real directory tree."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from avfs_git.cli.codestamp import files_stamp, stamp
from avfs_git.ops.codewatch import CodeWatch


def _tree(root: Path) -> Path:
    pkg = root / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("A = 1\n")
    (pkg / "sub" / "b.py").write_text("B = 2\n")
    (pkg / "sub" / "__pycache__").mkdir()
    return pkg


def _touch(p: Path) -> None:
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def _append(p: Path) -> None:
    with p.open("a") as fh:
        fh.write("# more\n")


def _rename_onto(pkg: Path) -> None:
    (pkg / "a.py.new").write_text("A = 3\n")  # (not a module: no change yet)
    os.replace(pkg / "a.py.new", pkg / "a.py")


CHANGES: dict[str, Callable[[Path], None]] = {
    "edit": lambda pkg: (pkg / "sub" / "b.py").write_text("B = 3\n"),
    "append": lambda pkg: _append(pkg / "a.py"),
    "touch": lambda pkg: _touch(pkg / "a.py"),
    "new module": lambda pkg: (pkg / "sub" / "c.py").write_text(""),
    "new package": lambda pkg: (pkg / "newpkg").mkdir(),
    "removal": lambda pkg: (pkg / "sub" / "b.py").unlink(),
    "rename onto": _rename_onto,
    "directory removed": lambda pkg: shutil.rmtree(pkg / "sub"),
}


@pytest.mark.parametrize("kind", list(CHANGES))
def test_a_change_is_seen(tmp_path: Path, kind: str) -> None:
    pkg = _tree(tmp_path)
    watch = CodeWatch(str(pkg))
    try:
        assert not watch.changed()
        before = files_stamp(str(pkg))
        CHANGES[kind](pkg)
        assert watch.changed()
        assert watch.changed()  # and stays so
        if kind != "new package":
            assert files_stamp(str(pkg)) != before  # what the server compares without inotify
    finally:
        watch.close()


def test_bytecode_and_editor_files_are_not_changes(tmp_path: Path) -> None:
    pkg = _tree(tmp_path)
    watch = CodeWatch(str(pkg))
    try:
        (pkg / "__pycache__").mkdir()
        (pkg / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"x")
        (pkg / "sub" / "__pycache__" / "b.cpython-311.pyc").write_bytes(b"x")
        (pkg / ".a.py.swp").write_text("x")
        (pkg / "notes.txt").write_text("x")
        (pkg / "a.py").read_text()
        assert not watch.changed()
    finally:
        watch.close()


def test_the_stamp_names_the_interpreter_and_the_package() -> None:
    import sys

    import avfs_git

    s = stamp()
    assert sys.executable in s and str(Path(avfs_git.__file__).parent) in s
