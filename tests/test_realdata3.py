"""Real projects in both mounts beside a clone, twenty-eighth round (bench/realdata3.py;
docs/testing.md, "Real projects' own tools"): what the trials found, on a real release.

``avfs diff`` of PyYAML 6.0.2's edited ``_yaml.pyx`` printed a hunk header with a blank at its end
that ``git diff``'s has not (libgit2 trims the function line before it cuts it to 80
bytes, git after).
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint

from . import realdata

pytestmark = pytest.mark.slow

TOP = "pyyaml-6.0.2/"
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


def _git(cwd: str | Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org"}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


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
