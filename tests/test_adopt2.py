"""Another hand's commit adopted in a live mount never loses or misfiles the person's
writes (adopt2, the thirty-third round; core/workspace/wsadopt.py).

The adoption of gitmodel21 wrote the commit's files through a live overlay mount before
anything was confirmed: a file the person wrote between the status and that write was
overwritten, and where the adoption then failed (the person wrote one of the written
files meanwhile, or the tip moved again) the written files stayed, shown as the
person's own changes (the next checkpoint committed them as theirs). On pure FUSE the
move dropped the entry of a file the person wrote after the status.

Each race is made deterministic by ordering real processes, none by a pause point in
the product: the test holds the mount's index guard (the flock every writer of the mount's
git index takes; mount/indexguard.py), which the adoption takes after reading its plan and
before writing anything, runs `avfs status` as a process of its own, waits until the
kernel lists that process waiting for the flock (/proc/locks), then writes as the person
(or commits as the other hand) and lets it go. For a write after the commit's files were
written, the test also holds the overlay database's write lock (a SQLite connection of
its own), which the adoption's transaction waits for, from before letting the guard go
until the files show the commit's."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.vaults.registry import mount_dir
from avfs_git.mount.ownfiles import LOCK_FILE

from .gitmount import _git, _require, mount_fork
from .test_git_model21 import _other_hand
from .test_json_schemas import validate

WAIT_S = 120.0  # how long a step may take to happen at all (never a measure of speed)


def _vault() -> Path:
    return Path(os.environ["AVFS_HOME"]) / "vaults" / "v.git"


def _until(what: Callable[[], bool], why: str) -> None:
    """Wait for ``what`` to hold (an event of another process, polled)."""
    end = time.monotonic() + WAIT_S
    while not what():
        assert time.monotonic() < end, f"never happened: {why}"
        time.sleep(0.01)


def _waits_for_flock(pid: int, path: Path) -> bool:
    """Whether the kernel lists process ``pid`` waiting for a flock of ``path``."""
    ino = os.stat(path).st_ino
    with open("/proc/locks", encoding="ascii") as fh:
        for line in fh:
            f = line.split()
            if (
                len(f) > 6
                and f[1:3] == ["->", "FLOCK"]
                and f[5] == str(pid)
                and int(f[6].rsplit(":", 1)[1]) == ino
            ):
                return True
    return False


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _db_write_lock() -> Iterator[None]:
    """Fork f's overlay database's write lock, held by a connection of the test's."""
    con = sqlite3.connect(
        str(_vault() / "avfs" / "ws" / "f" / "overlay.db"), isolation_level=None, timeout=WAIT_S
    )
    try:
        con.execute("BEGIN IMMEDIATE")
        yield
        con.execute("ROLLBACK")
    finally:
        con.close()


def _status_paused(mp: Path, meanwhile: Callable[[Callable[[], None]], None]) -> dict[str, Any]:
    """`avfs --json status` in the mount as a process of its own, stopped at the mount's
    index guard (held here) until ``meanwhile`` calls the function it is given (which
    lets the guard go; called for it when it did not); its JSON document."""
    import json

    guard = Path(mount_dir(str(_vault() / "avfs"), "f")) / LOCK_FILE
    env = {**os.environ, "AVFS_SERVER": "off", "AVFS_LOCK_WAIT": str(WAIT_S)}
    stack = contextlib.ExitStack()
    stack.enter_context(_flock(guard))
    proc = subprocess.Popen(
        [sys.executable, "-m", "avfs_git", "--json", "status"],
        cwd=mp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _until(lambda: _waits_for_flock(proc.pid, guard) or proc.poll() is not None, "status at the guard")
        assert proc.poll() is None, proc.communicate()
        meanwhile(stack.close)
    finally:
        stack.close()
        out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, err
    doc: dict[str, Any] = json.loads(out)
    validate(doc)  # (`unadopted` as docs/schemas/status.schema.json has it)
    return doc


def _text(p: Path) -> str | None:
    return p.read_text() if p.exists() else None


def _logs_agree(mp: Path, avfs: Any) -> None:
    """`git log` in the mount and `avfs log` list the same commits."""
    ours = [c["id"] for c in avfs("--json", "log").json()["commits"]]
    assert ours == _git(mp, "log", "--format=%H").stdout.split()


def _start(mp: Path, tmp_path: Path) -> str:
    """The person's d/c.txt, then another hand's commit of a.txt and a new b.txt."""
    (mp / "d" / "c.txt").write_text("mine\n")
    _, new = _other_hand(_vault(), tmp_path / "other-index", {"a.txt": "theirs\n", "b.txt": "theirs b\n"})
    return new


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_file_the_person_writes_before_the_adoption_writes_it_stays_theirs(
    backend: str, cli_proc: Any, tmp_path: Path
) -> None:
    """Another hand commits a.txt and a new b.txt; `avfs status` reads its plan (neither
    changed by the person) and stops at the guard; the person then writes b.txt. The
    adoption finds b.txt changed just before writing it: b.txt stays the person's byte for
    byte, a.txt (written first on the overlay backend) is the old base's again, the commit
    is not adopted (`stale`, `unadopted` naming b.txt) and the person's changes are b.txt
    and d/c.txt only. Before: on the overlay backend a.txt stayed the commit's, listed as
    the person's change; on pure FUSE the move dropped the person's b.txt (the commit's
    shown). The next checkpoint's rebase meets b.txt added by both: a conflict, nothing
    changed."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        new = _start(mp, tmp_path)
        mine = b"person's b\x00\xff\n"

        def person(go: Callable[[], None]) -> None:
            (mp / "b.txt").write_bytes(mine)
            go()

        doc = _status_paused(mp, person)
        assert (mp / "b.txt").read_bytes() == mine
        assert _text(mp / "a.txt") == "one\n" and _text(mp / "d" / "c.txt") == "mine\n"
        assert doc["changes"] == [
            {"path": "b.txt", "status": "added"},
            {"path": "d/c.txt", "status": "modified"},
        ], doc
        assert doc["stale"] and doc["head"] == new, doc
        assert doc["unadopted"] == {"head": new, "conflicts": ["b.txt"]}, doc
        _logs_agree(mp, avfs)
        assert avfs("checkpoint", "save", "-m", "rebased").code == 3
        assert (mp / "b.txt").read_bytes() == mine and _text(mp / "a.txt") == "one\n"
        _logs_agree(mp, avfs)


@pytest.mark.parametrize("backend", ["overlay"])
def test_a_written_file_the_person_writes_again_before_the_move_stays_theirs(
    backend: str, cli_proc: Any, tmp_path: Path
) -> None:
    """As above, but the person writes a.txt after the adoption wrote the commit's a.txt
    and b.txt through the overlay mount, before its move (held at the overlay database's
    write lock). Refused (`unadopted` naming a.txt): a.txt stays the person's byte for
    byte, b.txt, still as written, goes again. Before: b.txt stayed, listed as the
    person's new file."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        new = _start(mp, tmp_path)
        mine = b"person's a\n"

        def person(go: Callable[[], None]) -> None:
            with _db_write_lock():
                go()
                _until(
                    lambda: _text(mp / "b.txt") == "theirs b\n" and _text(mp / "a.txt") == "theirs\n",
                    "written",
                )
                (mp / "a.txt").write_bytes(mine)

        doc = _status_paused(mp, person)
        assert (mp / "a.txt").read_bytes() == mine and not (mp / "b.txt").exists()
        assert _text(mp / "d" / "c.txt") == "mine\n"
        assert doc["changes"] == [
            {"path": "a.txt", "status": "modified"},
            {"path": "d/c.txt", "status": "modified"},
        ], doc
        assert doc["stale"] and doc["head"] == new, doc
        assert doc["unadopted"] == {"head": new, "conflicts": ["a.txt"]}, doc
        _logs_agree(mp, avfs)
        assert avfs("checkpoint", "save", "-m", "rebased").code == 3  # (a.txt changed by both)
        assert (mp / "a.txt").read_bytes() == mine and not (mp / "b.txt").exists()


@pytest.mark.parametrize("backend", ["overlay"])
def test_a_tip_moved_again_before_the_move_puts_back_what_was_written(
    backend: str, cli_proc: Any, tmp_path: Path
) -> None:
    """The other hand commits a.txt again after the adoption wrote its first commit's
    a.txt and b.txt, before the move: the tip read again under the fork lock is not the
    plan's, nothing is adopted, and both files are the old base's again; the next `avfs
    status` adopts the second commit (a.txt its, b.txt the first's), the person's d/c.txt
    stays byte for byte, `git log` and `avfs log` agree, and the next checkpoint commits
    d/c.txt alone. Before: a.txt stayed the first commit's, the person's change, which
    the second commit changed too: never adopted (stale), and the checkpoint's rebase
    stopped on a conflict the person never made."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        first = _start(mp, tmp_path)
        second: list[str] = []

        def other_hand(go: Callable[[], None]) -> None:
            with _db_write_lock():
                go()
                _until(
                    lambda: _text(mp / "b.txt") == "theirs b\n" and _text(mp / "a.txt") == "theirs\n",
                    "written",
                )
                second.append(_other_hand(_vault(), tmp_path / "other-index", {"a.txt": "theirs 2\n"})[1])

        doc = _status_paused(mp, other_hand)
        assert _text(mp / "a.txt") == "one\n" and not (mp / "b.txt").exists()
        assert doc["changes"] == [{"path": "d/c.txt", "status": "modified"}], doc
        assert doc["stale"] and doc["head"] == second[0] and "unadopted" not in doc, doc
        doc = avfs("--json", "status").json()
        assert doc["base"] == second[0] and not doc["stale"], doc
        assert doc["changes"] == [{"path": "d/c.txt", "status": "modified"}], doc
        assert _text(mp / "a.txt") == "theirs 2\n" and _text(mp / "b.txt") == "theirs b\n"
        assert _text(mp / "d" / "c.txt") == "mine\n"
        assert _git(mp, "status", "--porcelain").stdout == " M d/c.txt\n"
        _logs_agree(mp, avfs)
        assert first in _git(mp, "log", "--format=%H").stdout.split()
        assert avfs("checkpoint", "save", "-m", "mine").code == 0
        made = _git(mp, "rev-parse", "HEAD").stdout.strip()
        assert _git(mp, "rev-parse", "HEAD~1").stdout.strip() == second[0]
        assert _git(mp, "diff-tree", "--no-commit-id", "--name-only", "-r", made).stdout == "d/c.txt\n"
        assert _git(mp, "status", "--porcelain").stdout == ""
        _logs_agree(mp, avfs)
