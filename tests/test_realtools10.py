"""Real projects through avfs, tenth round (bench/realproj10.py, bench/realproj10agents.py;
docs/testing.md, "Real projects' own tools"): what the trials found, each on a real
release's file.

Two agents edit sqlparse 0.5.1's ``split()`` differently (the same line), a person merges
both into ``main`` and has the conflict written into the mounted fork, then gives up the
way git does it, with ``git merge --abort`` in the mount. On the pure-FUSE mount avfs's
merge stayed open after git had put every file back: ``avfs status`` still said
``merging b``, and every checkpoint refused (``merge_in_progress``, exit 75), until an
``avfs merge --abort`` the person had no reason to type (the overlay mount let it go).
On both backends the same happened when the person had changed another file meanwhile,
which git's abort keeps: avfs's ``merge --abort`` would then have put that change aside.
"""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint, merge

from . import realdata
from .test_fuse import _mounted

pytestmark = pytest.mark.slow

INIT = "sqlparse/__init__.py"
LINE = b"    return [str(stmt).strip() for stmt in stack.run(sql, encoding)]\n"
EDITS = {  # the two agents' edits of the same line of split()
    "a": b"    return [str(stmt).strip() for stmt in stack.run(sql, encoding) if str(stmt).strip()]\n",
    "b": b"    statements = stack.run(sql, encoding)\n    return [str(stmt).strip() for stmt in statements]\n",
}


def _sqlparse_init() -> bytes:
    with tarfile.open(realdata.pypi_sdist("sqlparse", "0.5.1")) as tf:
        member = tf.extractfile(f"sqlparse-0.5.1/{INIT}")
        assert member is not None
        return member.read()


def _git(mp: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=mp, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_git_merge_abort_in_the_mount_ends_avfss_open_merge(
    home: Any, vault: Any, tmp_path: Path, backend: str
) -> None:
    """``avfs merge b --write-conflicts`` into the mounted ``main``, then ``git merge
    --abort`` there: git's files and index are back at ``main``'s tip, and so is avfs:
    no merge open, ``avfs status`` clean, a checkpoint goes through (and records nothing),
    and the next merge of ``b`` opens anew."""
    source = _sqlparse_init()
    assert source.count(LINE) == 1
    with _mounted(home, vault, tmp_path, backend) as (_, mp):
        main = vault.workspace("main")
        main.write(INIT, source)
        checkpoint.save(vault, "main", name="sqlparse")
        for agent, line in EDITS.items():
            vault.create_fork("main", agent)
            vault.workspace(agent).write(INIT, source.replace(LINE, line))
            checkpoint.save(vault, agent)
        assert merge.merge(vault, "a", "main").status == "fast_forward"
        tip = main.tip()
        opened = merge.merge(vault, "b", "main", write_conflicts=True)
        assert opened.status == "conflicts_written"
        assert [c.path for c in opened.conflicts] == [INIT]
        assert "UU " + INIT in _git(mp, "status", "--porcelain").stdout.splitlines()

        aborted = _git(mp, "merge", "--abort")
        assert aborted.returncode == 0, aborted.stderr
        assert _git(mp, "status", "--porcelain").stdout == ""
        assert Path(mp, INIT).read_bytes() == source.replace(LINE, EDITS["a"])

        ws = vault.workspace("main")
        assert merge.merge_state(ws) is None
        assert ws.status() == []
        saved = checkpoint.save(vault, "main")  # refused (merge_in_progress) before the fix
        assert saved.checkpoint.commit == tip and ws.tip() == tip

        # again, and a change of the person's own beside the conflict: git's abort keeps it
        # (and so the fork: not merging any more, the change uncheckpointed, then recorded)
        again = merge.merge(vault, "b", "main", write_conflicts=True)
        assert again.status == "conflicts_written" and again.ours == tip
        Path(mp, "NOTES.txt").write_text("while the merge was open\n")
        assert _git(mp, "merge", "--abort").returncode == 0
        assert _git(mp, "status", "--porcelain").stdout == "?? NOTES.txt\n"
        assert merge.merge_state(ws) is None  # open before the fix: the workspace was not clean
        assert [c.path for c in ws.status()] == ["NOTES.txt"]
        kept = checkpoint.save(vault, "main").checkpoint
        assert kept.parent == tip
        assert vault.workspace("main").read("NOTES.txt") == b"while the merge was open\n"
        assert _git(mp, "status", "--porcelain").stdout == ""
        # the third time avfs ends it, as before
        assert merge.merge(vault, "b", "main", write_conflicts=True).status == "conflicts_written"
        merge.merge_abort(vault, "main")
        assert _git(mp, "status", "--porcelain").stdout == "" and merge.merge_state(ws) is None
