"""git in a mount and avfs's checkpoints agree under ``.gitattributes`` conversions
(docs/fuse.md, "`.gitattributes` conversions"): a checkpoint records what ``git add`` would,
leaves the files as they are (a CRLF file stays CRLF, as in git's work tree), and git's
``status``/``diff`` in the mount show nothing changed after it, also after a remount; a
``git commit -a`` there is followed as any other. Both backends, real mounts, real git, the
CLI as a person runs it; a ``proxy exec`` whose command writes a CRLF file is recorded the
same way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..gitmount import _git, _status, mount_fork
from ..remount import remount
from ..test_confine import _need_bwrap
from .backends import MOUNTS

pytestmark = pytest.mark.backends(*MOUNTS)

ATTRS = b"* text=auto\n*.bat eol=crlf\n*.bin binary\n"
FILES = {
    "n.txt": b"p\r\nq\r\n",
    "a.txt": b"one\r\ntwo\r\n",
    "d/mixed.txt": b"x\r\ny\n",
    "run.bat": b"@echo off\r\n",
    "blob.bin": b"a\r\n\0\r\n",
}


@pytest.fixture
def mounted(backend: str, cli_proc: Any, tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as m:
        yield m


def _added_tree(mp: Path, rev: str) -> str:
    """The tree `git add -A` makes of the mount's files over ``rev`` (in an index of its own)."""
    env = {**os.environ, "GIT_INDEX_FILE": str(mp.parent / "tree-index")}
    for args in (["read-tree", rev], ["add", "-A"]):
        subprocess.run(["git", *args], cwd=mp, env=env, check=True, capture_output=True)
    return subprocess.run(
        ["git", "write-tree"], cwd=mp, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def _blob(mp: Path, spec: str) -> bytes:
    """The bytes of ``git cat-file blob SPEC`` (as bytes: text mode would turn CRLF into LF)."""
    return subprocess.run(["git", "cat-file", "blob", spec], cwd=mp, check=True, capture_output=True).stdout


def _agrees(mp: Path, avfs: Any) -> None:
    """git sees nothing changed, avfs neither, and avfs follows git's branch."""
    assert _git(mp, "status", "--porcelain").stdout == ""
    assert _git(mp, "diff", "--stat").stdout == ""
    doc = _status(avfs)
    head = _git(mp, "rev-parse", "HEAD").stdout.strip()
    assert doc["changes"] == [] and doc["base"] == head and not doc["stale"], doc


def test_a_checkpoint_records_what_git_add_does_and_git_sees_nothing_changed(
    mounted: Any, backend: str
) -> None:
    mp, avfs = mounted
    (mp / ".gitattributes").write_bytes(ATTRS)
    _git(mp, "add", ".gitattributes")
    _git(mp, "commit", "-qm", "attributes")
    before = _git(mp, "rev-parse", "HEAD").stdout.strip()
    for p, data in FILES.items():
        (mp / p).parent.mkdir(exist_ok=True)
        (mp / p).write_bytes(data)
    res = avfs("--json", "checkpoint", "save", "-m", "c1")
    assert res.code == 0, res.err
    assert res.json()["checkpoint"]["changes"] == len(FILES)
    head = _git(mp, "rev-parse", "HEAD").stdout.strip()
    assert _git(mp, "rev-parse", "HEAD^").stdout.strip() == before
    assert _git(mp, "rev-parse", "HEAD^{tree}").stdout.strip() == _added_tree(mp, before)
    assert _blob(mp, "HEAD:n.txt") == b"p\nq\n"
    for p, data in FILES.items():
        assert (mp / p).read_bytes() == data, p  # (the files as they were written)
    _agrees(mp, avfs)
    # a remount writes the index whole: it must not vouch for the blob's size either
    remount(mp, backend)  # (in process: tests/remount.py)
    assert _git(mp, "rev-parse", "HEAD").stdout.strip() == head
    _agrees(mp, avfs)
    assert (mp / "n.txt").read_bytes() == FILES["n.txt"]
    # git's own commit of a CRLF file: avfs follows it, nothing to checkpoint
    with open(mp / "n.txt", "ab") as fh:
        fh.write(b"r\r\n")
    _git(mp, "commit", "-qam", "by git")
    _agrees(mp, avfs)
    assert _blob(mp, "HEAD:n.txt") == b"p\nq\nr\n"
    res = avfs("--json", "checkpoint", "save", "-m", "nothing")
    assert res.code == 0 and res.json()["created"] is False, res.out


def test_a_proxy_exec_records_what_git_add_does(mounted: Any) -> None:
    _need_bwrap()
    mp, avfs = mounted
    (mp / ".gitattributes").write_bytes(ATTRS)
    _git(mp, "add", ".gitattributes")
    _git(mp, "commit", "-qm", "attributes")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "avfs_git",
            "--json",
            "proxy",
            "exec",
            "--",
            "sh",
            "-c",
            "printf 'e\\r\\nf\\r\\n' > e.txt",
        ],
        cwd=mp,
        capture_output=True,
        text=True,
        timeout=180,
    )
    doc = json.loads(r.stdout)
    assert doc["commit"] is not None, doc
    assert _blob(mp, f"{doc['commit']['commit']}:e.txt") == b"e\nf\n"
    assert (mp / "e.txt").read_bytes() == b"e\r\nf\r\n"
    _agrees(mp, avfs)


@pytest.mark.parametrize("how", ["avfs restore", "git reset --hard"])
def test_a_move_back_leaves_a_converted_file_as_git_reset_hard_does(mounted: Any, how: str) -> None:
    """A CRLF file a checkpoint recorded as LF, its blob the same in the commit moved to:
    `git reset --hard` leaves it as it is (its index entry vouches for it), and so does
    `avfs checkpoint restore` (pure FUSE rewrote it with the blob's LF bytes before)."""
    mp, avfs = mounted
    (mp / ".gitattributes").write_bytes(ATTRS)
    (mp / "n.txt").write_bytes(FILES["n.txt"])
    assert avfs("checkpoint", "save", "-m", "c1").code == 0
    (mp / "other.txt").write_bytes(b"x\n")
    assert avfs("checkpoint", "save", "-m", "c2").code == 0
    if how == "avfs restore":
        res = avfs("checkpoint", "restore", "HEAD~1")
        assert res.code == 0, res.err
    else:
        _git(mp, "reset", "-q", "--hard", "HEAD~1")
    assert (mp / "n.txt").read_bytes() == FILES["n.txt"]
    assert not (mp / "other.txt").exists()
    _agrees(mp, avfs)
