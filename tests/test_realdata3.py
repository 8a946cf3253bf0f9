"""Real projects in both mounts beside a clone, twenty-eighth round (bench/realdata3.py;
docs/testing.md, "Real projects' own tools"): what the trials found, on a real release.

PyYAML 6.0.2 built in a fork (a venv, ``pip install -e .``, its 2,608 tests), another fork
merged in: on the pure-FUSE mount the tests' next run warned
``PytestAssertRewriteWarning`` where the clone's did not. pytest had compiled its test
modules again: every file the merge did not write showed the merge's time (a merge moved
the view time, which unchanged files show), so every ``.pyc`` Python had cached was
stale, and every object ``make`` had built older than its sources. In a clone ``git
merge`` writes only the files whose bytes change; the others keep their times.

And ``avfs diff`` of the edited ``_yaml.pyx`` printed a hunk header with a blank at its end
that ``git diff``'s has not (libgit2 trims the function line before it cuts it to 80
bytes, git after).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint, merge

from . import realdata
from .test_fuse import _mounted

pytestmark = pytest.mark.slow

TOP = "pyyaml-6.0.2/"
EDITED_THERE = "lib/yaml/constructor.py"  # the other fork's edit: the merge writes it
EDITED_HERE = "lib/yaml/__init__.py"  # the fork's own (both forks edited)


PYX = "yaml/_yaml.pyx"


def _pyyaml() -> dict[str, bytes]:
    """PyYAML 6.0.2's ``lib/yaml/*.py``, its ``yaml/_yaml.pyx`` and README.md, by path."""
    out = {}
    with tarfile.open(realdata.pypi_sdist("PyYAML", "6.0.2")) as tf:
        for m in tf.getmembers():
            rel = m.name.removeprefix(TOP)
            if m.isfile() and (
                (rel.startswith("lib/yaml/") and rel.endswith(".py")) or rel in ("README.md", PYX)
            ):
                fh = tf.extractfile(m)
                assert fh is not None
                out[rel] = fh.read()
    assert len(out) == 19, sorted(out)
    return out


def _compiled(where: str | Path) -> list[str]:
    """The modules under ``lib`` Python compiles again (``compileall``: a ``.pyc`` whose
    recorded source mtime or size differs from the source's; one that does not compile, a
    conflict's markers in it, is listed too)."""
    proc = subprocess.run(
        [sys.executable, "-m", "compileall", "lib"], cwd=where, capture_output=True, text=True
    )
    return sorted(ln.split("'")[1] for ln in proc.stdout.splitlines() if ln.startswith("Compiling"))


def _git(cwd: str | Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org"}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_merge_leaves_the_files_it_does_not_write_at_their_times(
    home: Any, vault: Any, tmp_path: Path, backend: str
) -> None:
    """Two forks of PyYAML's package each edit a module; the other fork's is merged into
    the mounted one, whose modules Python had compiled: the files the merge did not write
    keep their mtimes and the one it wrote is newer than its bytecode, so Python compiles
    that one again and no other, as in a clone after ``git merge`` (on the pure-FUSE
    mount every file showed the merge's time and all 17 were compiled again). Then a third
    fork's conflicting edit merged with its conflict written: the conflicted file alone
    is new, as after git's merge that stops on it."""
    files = _pyyaml()
    with _mounted(home, vault, tmp_path, backend) as (_, mp):
        main = vault.workspace("main")
        for rel, data in files.items():
            main.write(rel, data)
        main.write(".gitignore", b"__pycache__/\n")
        checkpoint.save(vault, "main", name="pyyaml")
        vault.create_fork("main", "other")
        there = files[EDITED_THERE].replace(b"    pass\n", b"    pass  # rd3: the other fork\n", 1)
        assert there != files[EDITED_THERE]
        vault.workspace("other").write(EDITED_THERE, there)
        checkpoint.save(vault, "other")
        vault.create_fork("main", "third")  # (its end of __init__.py conflicts with this fork's)
        vault.workspace("third").write(EDITED_HERE, files[EDITED_HERE] + b"\n# rd3: a third fork\n")
        checkpoint.save(vault, "third")
        Path(mp, EDITED_HERE).write_bytes(files[EDITED_HERE] + b"\n# rd3: this fork\n")
        checkpoint.save(vault, "main")

        # the clone beside it: the same two commits, merged by git
        clone = tmp_path / "clone"
        _git(tmp_path, "clone", "-q", "-b", "main", str(vault.path), str(clone))
        _git(clone, "fetch", "-q", "origin", "other", "third")

        for where in (mp, clone):
            assert len(_compiled(where)) == 17
            assert _compiled(where) == []
        before = {rel: os.stat(Path(mp, rel)).st_mtime_ns for rel in files}
        time.sleep(1.1)  # (the merge's second is not the second the view began in)
        started = time.time_ns()
        assert merge.merge(vault, "other", "main").status == "merged"
        _git(clone, "merge", "-q", "--no-edit", "origin/other")

        after = {rel: os.stat(Path(mp, rel)).st_mtime_ns for rel in files}
        moved = sorted(rel for rel in files if after[rel] != before[rel])
        assert moved == [EDITED_THERE]  # every file before the fix, on the pure-FUSE mount
        assert after[EDITED_THERE] >= started // 10**9 * 10**9
        assert Path(mp, EDITED_THERE).read_bytes() == there
        recompiled = _compiled(mp)  # all 17 before the fix, on the pure-FUSE mount
        assert recompiled == _compiled(clone) == [EDITED_THERE]

        # a merge whose conflict is written: only the conflicted file is new, as git's
        before = after
        time.sleep(1.1)
        assert merge.merge(vault, "third", "main", write_conflicts=True).status == "conflicts_written"
        assert (
            subprocess.run(["git", "merge", "-q", "origin/third"], cwd=clone, capture_output=True).returncode
            == 1
        )
        after = {rel: os.stat(Path(mp, rel)).st_mtime_ns for rel in files}
        assert sorted(rel for rel in files if after[rel] != before[rel]) == [EDITED_HERE]
        assert b"<<<<<<<" in Path(mp, EDITED_HERE).read_bytes()
        recompiled = _compiled(mp)
        assert recompiled == _compiled(clone) == [EDITED_HERE]


def test_avfs_diff_prints_what_git_diff_prints(home: Any, vault: Any, tmp_path: Path, cli: Any) -> None:
    """A line added after every 40th of PyYAML's modules and its Cython source, and two
    at their ends (190 hunks): ``avfs diff`` prints byte for byte what ``git diff`` prints
    in a clone with the same edits (the ``.pyx``'s last hunk header ended in a blank
    git's has not)."""
    files = _pyyaml()
    ws = vault.workspace("main")
    for rel, data in files.items():
        ws.write(rel, data)
    checkpoint.save(vault, "main", name="pyyaml")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", "-b", "main", str(vault.path), str(clone))
    for rel, data in files.items():
        lines = data.splitlines(keepends=True)
        edited = b"".join(ln + (b"# rd3\n" if i % 40 == 39 else b"") for i, ln in enumerate(lines))
        edited += b"\n# rd3: appended\n"
        ws.write(rel, edited)
        Path(clone, rel).write_bytes(edited)
    want = _git(clone, "diff")
    assert want.count("\n@@ ") == 190
    got = cli("--vault", "v", "diff")
    assert got.code == 0, got.err
    assert got.out == want
