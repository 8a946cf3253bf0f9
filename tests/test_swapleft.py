"""An adoption killed between a swap's steps: the side file it left in the fork's overlay
mount is put right by the next command, checkpoint or `avfs doctor` (livewrite2, the
thirty-fifth round; core/workspace/swapleft.py).

adopt3 swaps each file of another hand's commit through the mount by a side file
(``.avfs-adopt-<hex>``, core/workspace/liveswap.py ``swap``): the commit's bytes written
beside the path, exchanged with it (``renameat2(RENAME_EXCHANGE)``), what came out looked
at and unlinked, or swapped back. A process killed between those steps left the side file
in the mount, shown to the agent as a new file of the person's and recorded by the next
checkpoint; where what came out was the person's (a file a program of theirs held open for
writing), their bytes were at that name and the commit's at their path.

The kill is real: the adopting process (`avfs --json status`, a process of its own) runs
under strace, which holds it stopped at the swap's ``renameat2`` (on entering it: before the
exchange; on leaving it: after), and the test, once it sees the side file in the mount (and,
after the exchange, the commit's bytes at the path), sends it SIGKILL there. No sleep orders
anything; strace's hold is an hour, never reached."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import skip_outside_ci
from .gitmount import _require, mount_fork
from .test_adopt2 import WAIT_S, _until, _vault
from .test_adopt3 import _writer
from .test_git_model21 import _other_hand
from .test_json_schemas import validate

HOLD = "3600s"  # strace's hold at the swap's system call: the test kills the process long before


def _sides(mp: Path) -> list[str]:
    return sorted(n for n in os.listdir(mp) if n.startswith(".avfs-adopt-"))


def _child(pid: int) -> int | None:
    """The avfs process strace (``pid``) started, once it runs Python (not a child strace
    forks to probe what ptrace can do, nor the tracee before its exec)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
            kids = [int(k) for k in fh.read().split()]
    except FileNotFoundError:
        return None
    for k in kids:
        try:
            with open(f"/proc/{k}/cmdline", "rb") as fh:
                if fh.read().split(b"\0")[0] == os.fsencode(sys.executable):  # (exec'd)
                    return k
        except (FileNotFoundError, ProcessLookupError):
            continue
    return None


# the system calls a swap is held at, by number (strace's inject counts each thread's own)
CALLS = {
    "x86_64": {"renameat2": {316}, "unlink": {87, 263}},
    "aarch64": {"renameat2": {276}, "unlink": {35}},
}.get(os.uname().machine)


def _held_at(pid: int, call: str) -> bool:
    """Whether a thread of process ``pid`` is stopped by its tracer in ``call``."""
    assert CALLS is not None
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return False
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/stat", encoding="ascii") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{pid}/task/{t}/syscall", encoding="ascii") as fh:
                got = fh.read().split()[:1]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state == "t" and got and got[0].isdigit() and int(got[0]) in CALLS[call]:
            return True
    return False


def _ended(pid: int) -> bool:
    """Whether every thread of process ``pid`` has ended (gone, or a zombie)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return True
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/stat", encoding="ascii") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    return False
        except (FileNotFoundError, ProcessLookupError):
            continue
    return True


def _killed_at(mp: Path, call: str, nth: int, exchanged: bool) -> None:
    """`avfs --json status` in the mount (it adopts another hand's commit of a.txt), held by
    strace on entering the swapping thread's ``nth`` ``call`` (renameat2: the exchange,
    then the swap back; unlink: the side file's, once the exchange brought out the base's
    bytes) and killed there: the side file is in the mount, and a.txt shows the commit's
    bytes (``exchanged``) or not yet. A status that found the fork lock taken (the mount's
    daemon at work: the adoption waits for none, it is the next command's) ends without
    swapping: then another."""
    strace = shutil.which("strace")
    if strace is None or CALLS is None:
        skip_outside_ci("strace is not installed (it holds the adopting process at its swap)")
    env = {**os.environ, "AVFS_SERVER": "off", "AVFS_LOCK_WAIT": str(WAIT_S)}
    calls = "unlink,unlinkat" if call == "unlink" else call
    inject = f"{calls}:delay_enter={HOLD}:when={nth}"
    argv = [strace, "-f", "-qq", "-o", os.devnull, "-e", f"trace={calls}", "-e", f"inject={inject}"]
    last: Any = None
    for _ in range(20):
        with subprocess.Popen(
            [*argv, sys.executable, "-m", "avfs_git", "--json", "status"],
            cwd=mp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as proc:
            child = None
            try:
                _until(lambda: _child(proc.pid) is not None or proc.poll() is not None, "strace's process")
                child = _child(proc.pid)
                if child is None:
                    continue
                held: list[bool] = []
                _until(lambda c=child, h=held: h.append(_held_at(c, call)) or h[-1] or _ended(c), "its swap")
                if not held[-1]:
                    last = proc.communicate(timeout=WAIT_S)
                    assert not _sides(mp), last
                    continue
                assert len(_sides(mp)) == 1  # (the side file made)
                assert ((mp / "a.txt").read_text() == "theirs\n") == exchanged
                os.kill(child, signal.SIGKILL)
                # strace holds its tracee stopped as it exits (its hold not over yet): let
                # go by ending strace too; the tracee then ends (its files and locks
                # closed) as killed, its swap's renameat2 run or not as it was held
                proc.kill()
                proc.wait(timeout=WAIT_S)
                _until(lambda c=child: _ended(c), "the killed process gone")
                return
            finally:  # (a failure half way: nothing of the run left behind, held or not)
                if child is not None and not _ended(child):
                    os.kill(child, signal.SIGKILL)
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=WAIT_S)
    raise AssertionError(f"no status found the fork lock free to adopt: {last}")


def _next(how: str, avfs: Any) -> None:
    """The next process to come to the fork: a command that reads it, a checkpoint, or
    `avfs doctor --repair` (then a status)."""
    if how == "status":
        validate(avfs("--json", "status").json())
    elif how == "checkpoint":
        assert avfs("checkpoint", "save", "-m", "next").code in (0, 3)  # (3: a.txt changed by both)
    else:
        doc = avfs("--json", "doctor").json()
        validate(doc)
        found = [f for f in doc["findings"] if f["code"] == "adoption_side_files"]
        assert len(found) == 1 and found[0]["repairable"], doc["findings"]
        doc = avfs("--json", "doctor", "--repair").json()
        assert [f["repaired"] for f in doc["findings"] if f["code"] == "adoption_side_files"] == [True]
        assert not [
            f for f in avfs("--json", "doctor").json()["findings"] if f["code"] == "adoption_side_files"
        ]


@pytest.mark.parametrize("how", ["status", "checkpoint", "doctor"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_swap_killed_leaves_nothing_the_next_process_does_not_put_right(
    when: str, how: str, cli_proc: Any, tmp_path: Path
) -> None:
    """Another hand commits a.txt ("theirs"); the person's d/c.txt is uncheckpointed. The
    adopting process is killed at its swap of a.txt: before the exchange (the side file
    holds the commit's bytes, a.txt the base's) or after it (the side file holds the
    base's bytes, a.txt the commit's). Either side file holds a version git has: the next
    process (a status, a checkpoint, `avfs doctor --repair`) unlinks it, and the adoption
    (or the checkpoint's rebase) goes on: a.txt shows the commit's, the base is the commit
    (or the checkpoint's parent), no side file is left, and no checkpoint records one.
    Before: the side file stayed in the mount, listed by `avfs status` as the person's new
    file, and the next checkpoint committed it."""
    _require("overlay")
    with mount_fork(cli_proc, tmp_path, "overlay", in_process=True) as (mp, avfs):
        (mp / "d" / "c.txt").write_text("mine\n")
        _, new = _other_hand(_vault(), tmp_path / "other-index", {"a.txt": "theirs\n"})
        _killed_at(mp, *(("renameat2", 1, False) if when == "before" else ("unlink", 1, True)))
        assert len(_sides(mp)) == 1  # (what the kill left)
        _next(how, avfs)
        assert _sides(mp) == [] and (mp / "a.txt").read_text() == "theirs\n"
        doc = avfs("--json", "status").json()
        assert doc["changes"] == (
            [] if how == "checkpoint" else [{"path": "d/c.txt", "status": "modified"}]
        ), doc
        assert not doc["stale"] and doc.get("unadopted") is None, doc
        files = subprocess.run(
            ["git", "--git-dir", str(_vault()), "ls-tree", "-r", "--name-only", "f"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert not [f for f in files if ".avfs-adopt-" in f], files
        assert (mp / "d" / "c.txt").read_text() == "mine\n"
        if how != "checkpoint":
            assert doc["base"] == new, doc


def test_a_writer_s_file_swapped_out_when_the_kill_came_goes_back_to_its_path(
    cli_proc: Any, tmp_path: Path
) -> None:
    """A writer of the person's holds a.txt open, writing the base's bytes in a loop, when
    another hand commits a.txt; the adopting process exchanges a.txt (the writer's file
    comes out: the person's, it was to be swapped back at once) and is killed there. The
    writer's file was then at ``.avfs-adopt-<hex>`` and the commit's bytes at a.txt. The
    next status puts it back: a.txt is the writer's file again (its later bytes are what
    a.txt shows), the commit's copy is unlinked, the commit is not adopted (a.txt is the
    person's while open: `unadopted`). Before: the writer's bytes went on landing in the
    side file, a.txt showed the commit's, and `avfs status` listed the side file as the
    person's new file."""
    _require("overlay")
    with mount_fork(cli_proc, tmp_path, "overlay", in_process=True) as (mp, avfs):
        (mp / "d" / "c.txt").write_text("mine\n")
        mine = "the writer's a\n"
        with _writer(mp / "a.txt", "one\n", mine) as stop:
            _, new = _other_hand(_vault(), tmp_path / "other-index", {"a.txt": "theirs\n"})
            _killed_at(mp, "renameat2", 2, True)  # (before the swap back)
            assert len(_sides(mp)) == 1
            doc = avfs("--json", "status").json()
            validate(doc)
            stop()
        assert (mp / "a.txt").read_text() == mine and _sides(mp) == []
        assert doc["unadopted"] == {"head": new, "conflicts": ["a.txt"]}, doc
        doc = avfs("--json", "status").json()
        assert doc["changes"] == [
            {"path": "a.txt", "status": "modified"},
            {"path": "d/c.txt", "status": "modified"},
        ], doc
