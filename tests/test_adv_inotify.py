"""An overlay mount's watch of its upper layer against a confined command's directories (the
thirty-second round, NAME=attack23).

The mount's daemon holds one inotify watch a directory of the upper layer, charged to the
user's ``max_user_watches``, which every program of the user shares (the person's editor,
their other mounts' daemons). Found: a command making directories had the daemon take
watches until the user had none left, and held them until unmount; and a watch refused
(the user's watches used up, by the command's own for one) ended the mount's journal for
good: git's fsmonitor answered "everything" from then on, and the change stream (``avfs
watch``, ``changes_since``) heard nothing more from the mount, with no ``resync_required``.

Now a mount holds at most its budget (``mount_watches`` in the vault's ``config.json``,
else half the user's limit); past it, or at a refused watch, the daemon lets every watch
go, tells the change log's readers to resync, and watches again once the upper layer fits.
The machine's limits are shared with other users of this machine: the test never comes
near them (a budget of a few dozen watches, set in its own vault's config).

From inside a real confined `proxy exec` in a real overlay mount (the pure-FUSE backend
keeps no watch: its journal is the daemon's own writes), then the person's `git status`,
`avfs status`, ``changes_since`` and a checkpoint."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from avfs_git import changes_since
from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts

from .conftest import skip_outside_ci
from .test_adv_gitseal import _avfs, _script
from .test_confine import _need_bwrap
from .test_overlay import require_overlay

BUDGET = 40  # the mount's watches (the upper layer's directories it may watch)
MADE = 60  # the directories the command makes: past the budget


@pytest.fixture
def live(home: Any, vault: Any) -> Any:
    require_overlay()
    _need_bwrap()
    w = vault.workspace("main")
    w.write("README", b"the original\n")
    w.write("src/lib.py", b"x = 1\n")
    checkpoint.save(vault, name="base")
    vault.set_config(mount_watches=BUDGET)
    info = mounts.mount(home, vault, "main", None, backend="overlay")
    assert info.backend == "overlay"
    try:
        yield info
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def _upper(mountpoint: str) -> str:
    """The upper layer of the overlay mounted at ``mountpoint`` (its ``upperdir=``)."""
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            if fields[4] == mountpoint and " - overlay " in line:
                opts = line.split(" - ", 1)[1].split()[2]
                return next(o[len("upperdir=") :] for o in opts.split(",") if o.startswith("upperdir="))
    raise AssertionError(f"no overlay at {mountpoint}")


def _watches(pid: int, upper: str) -> int:
    """The inotify watches process ``pid`` holds on the upper layer (``/proc/PID/fdinfo``: a
    line each; those of the instance that watches its root: the daemon keeps others)."""
    root = f"ino:{os.stat(upper).st_ino:x} "
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                lines = [line for line in fh if line.startswith("inotify wd:")]
        except OSError:
            continue
        if any(root in line for line in lines):
            return len(lines)
    return 0


def _until(what: Any, why: str, limit: float = 120.0) -> Any:
    deadline = time.monotonic() + limit
    while True:
        got = what()
        if got:
            return got
        assert time.monotonic() < deadline, why
        time.sleep(0.2)


def _git(mp: str, *args: str) -> str:
    got = subprocess.run(["git", *args], cwd=mp, capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, (args, got.stderr)
    return got.stdout


def test_a_command_s_directories_past_the_budget_take_no_more_watches_and_the_stream_resyncs(
    live: Any, vault: Any
) -> None:
    mp, pid = live.mountpoint, live.pid
    upper = _upper(mp)
    held = _watches(pid, upper)
    assert 0 < held <= BUDGET  # the upper layer's few directories
    cursor = changes_since(vault, "main", None).cursor
    _script(
        live,
        "plant.sh",
        f"for i in $(seq 1 {MADE}); do mkdir -p made/d$i && echo $i > made/d$i/f; done\n",
    )
    r = _avfs("--json", "proxy", "exec", "--", "sh", "plant.sh")
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == 0 and doc["commit"] is not None, doc
    # the daemon holds no more than its budget: past it, none at all
    assert _watches(pid, upper) <= BUDGET
    # the change stream says that it missed something: never a silent gap
    got = changes_since(vault, "main", cursor, limit=100_000)
    kinds = [e.kind for e in got.events]
    assert "resync_required" in kinds, kinds
    # the person: git and avfs see the command's files as committed
    assert _git(mp, "status", "--porcelain") == ""
    assert _git(mp, "ls-files", "made/d7/f") == "made/d7/f\n"
    st = _avfs("--json", "status")
    assert st.returncode == 0, st.stderr
    # the person removes most of them: the upper layer fits again, and is watched again
    for i in range(1, MADE - 5):
        shutil.rmtree(os.path.join(mp, "made", f"d{i}"))
    _until(lambda: _watches(pid, upper) > 0, "the mount's upper layer was never watched again")
    cursor = changes_since(vault, "main", None).cursor
    Path(mp, "after.txt").write_text("the person's\n")
    seen = _until(
        lambda: [e for e in changes_since(vault, "main", cursor).events if e.path == "after.txt"],
        f"the change stream never heard of a file made after the mount was watched again: {changes_since(vault, 'main', cursor)}",
        20,
    )
    assert seen[0].kind == "created", seen
    assert "after.txt" in _git(mp, "status", "--porcelain")
    saved = checkpoint.save(vault, "main", message="after")
    assert saved is not None


# run in a user namespace of its own (``unshare --user --map-root-user``), whose limit of
# watches is set low: the kernel refuses a watch there with ENOSPC as it does past the
# user's limit, and the watches made count against the machine's shared limit only up to it
_REFUSED = r"""
import json, os, shutil, sys, time
from avfs_git.core.workspace.upperwatch import UpperWatch
with open("/proc/sys/user/max_inotify_watches", "w") as fh:
    fh.write("30")
top = sys.argv[1]
events = []
w = UpperWatch(top, lambda p: None, lambda: [], lambda: "base:0")
w.on_events = lambda batch: events.extend(k for _t, k, _p, _o in batch)
w.start()
seq, _ = w.changed_since(None)
for i in range(40):  # the 31st watch is refused: ENOSPC
    os.makedirs(os.path.join(top, f"d{i}", "x"))
w.changed_since(seq)
time.sleep(0.5)
out = {"refused": w.changed_since(seq)[1] is None, "overflow": "overflow" in events}
for i in range(40):  # the person's clean-up: the layer fits again
    shutil.rmtree(os.path.join(top, f"d{i}"))
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    seq, paths = w.changed_since(None)
    time.sleep(0.3)
    with open(os.path.join(top, "after.txt"), "w") as fh:
        fh.write("made after\n")
    time.sleep(0.1)
    now, paths = w.changed_since(seq)
    os.unlink(os.path.join(top, "after.txt"))
    if paths is not None:
        break
out["again"] = paths
out["created_after"] = "created" in events[events.index("overflow") + 1 :] if out["overflow"] else False
w.close()
print(json.dumps(out))
"""


def test_a_refused_watch_is_a_resync_and_the_journal_watches_again(tmp_path: Path) -> None:
    """A watch the kernel refuses (ENOSPC, as past the user's ``max_user_watches``) ended
    the journal for good: git's fsmonitor answered "everything" from then on and the change
    log heard nothing more, with no overflow to tell its readers. Now it is an overflow,
    and once the directories are gone the journal watches again and answers exactly."""
    if shutil.which("unshare") is None:
        skip_outside_ci("no unshare(1)")
    top = tmp_path / "upper"
    top.mkdir()
    got = subprocess.run(
        ["unshare", "--user", "--map-root-user", sys.executable, "-c", _REFUSED, str(top)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if got.returncode != 0 and "unshare failed" in got.stderr:
        skip_outside_ci(f"no user namespace here: {got.stderr}")
    assert got.returncode == 0, got.stderr
    out = json.loads(got.stdout)
    assert out["refused"], out  # the journal cannot say: "everything"
    assert out["overflow"], out  # and the change log's readers are told
    assert out["again"] == ["after.txt"], out  # watched again: exact answers
    assert out["created_after"], out


_NO_INSTANCE = r"""
import json, os, sys, time
from inotify_simple import INotify
from avfs_git.core.workspace.upperwatch import UpperWatch
with open("/proc/sys/user/max_inotify_instances", "w") as fh:
    fh.write("1")
top = sys.argv[1]
held = INotify()  # the user's last instance: the journal's start is refused one (EMFILE)
events = []
w = UpperWatch(top, lambda p: None, lambda: [], lambda: "base:0")
w.on_events = lambda batch: events.extend(k for _t, k, _p, _o in batch)
w.start()
out = {"refused": w.changed_since(0)[1] is None, "overflow": "overflow" in events}
held.close()
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    seq, paths = w.changed_since(None)
    time.sleep(0.3)
    os.mkdir(os.path.join(top, "after"))
    now, paths = w.changed_since(seq)
    os.rmdir(os.path.join(top, "after"))
    if paths is not None:
        break
out["again"] = paths
w.close()
print(json.dumps(out))
"""


def test_a_journal_refused_an_instance_at_its_start_watches_once_one_is_free(tmp_path: Path) -> None:
    """The user's inotify instances used up (``max_user_instances``, 128 by default: a
    command's own count) as the mount starts: the daemon started no journal at all, and
    its change log never heard of the mount. Now it starts given up and watches once an
    instance is free."""
    if shutil.which("unshare") is None:
        skip_outside_ci("no unshare(1)")
    top = tmp_path / "upper"
    top.mkdir()
    got = subprocess.run(
        ["unshare", "--user", "--map-root-user", sys.executable, "-c", _NO_INSTANCE, str(top)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if got.returncode != 0 and "unshare failed" in got.stderr:
        skip_outside_ci(f"no user namespace here: {got.stderr}")
    assert got.returncode == 0, got.stderr
    out = json.loads(got.stdout)
    assert out == {"refused": True, "overflow": True, "again": ["after"]}, out


def test_avfs_watch_follows_without_an_inotify_instance(home: Any, vault: Any) -> None:
    """`avfs watch` started while the user's inotify instances are used up (a confined
    command's own count against the user's limit while it runs) was exit 70, "internal
    error: OSError: [Errno 24] Too many open files"; now it follows by reading again every
    second. Run in a user namespace of its own whose limit of instances is 0."""
    if shutil.which("unshare") is None:
        skip_outside_ci("no unshare(1)")
    vault.workspace("main").write("README", b"the original\n")
    script = 'echo 0 > /proc/sys/user/max_inotify_instances && exec "$@"'
    argv = [sys.executable, "-m", "avfs_git", "--vault", "v:main", "--json", "watch"]
    env = {**os.environ, "AVFS_HOME": home.path, "AVFS_SERVER": "off"}
    proc = subprocess.Popen(
        ["unshare", "--user", "--map-root-user", "sh", "-c", script, "sh", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    try:
        first = json.loads(proc.stdout.readline() or b"null")
        if first is None and b"unshare failed" in proc.communicate(timeout=10)[1]:
            skip_outside_ci("no user namespace here")
        assert first["kind"] == "watch_cursor", first
        vault.workspace("main").write("later.txt", b"written while it follows\n")
        doc = json.loads(proc.stdout.readline() or b"null")  # (the test's timeout bounds it)
        assert doc is not None, proc.communicate(timeout=10)[1] if proc.poll() is not None else "no line"
        assert doc["kind"] == "watch_event" and doc["event"]["path"] == "later.txt", doc
        assert proc.poll() is None  # still following
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_a_layer_that_stays_past_the_budget_tells_the_stream_to_resync_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal given up retries (after 1 s, doubling): while the layer still holds more
    directories than its budget, each failed retry gave up again, and each give-up wrote
    an overflow and a warning: every reader of the change stream was told to resync again
    and again (up to once a minute, for as long as the layer stayed big). Now the first
    give-up tells them; a retry that fails too says nothing more, and the one that
    watches the layer again tells them once more (what changed meanwhile is unknown)."""
    from avfs_git.core.workspace import upperwatch

    monkeypatch.setattr(upperwatch, "RETRY_S", (0.1, 0.2))
    top = tmp_path / "upper"
    top.mkdir()
    events: list[str] = []
    w = upperwatch.UpperWatch(str(top), lambda p: None, lambda: [], lambda: "base:0", budget=5)
    w.on_events = lambda batch: events.extend(k for _t, k, _p, _o in batch)
    w.start()
    try:
        seq, _ = w.changed_since(None)
        for i in range(8):  # past the budget of 5
            (top / f"d{i}").mkdir()
        _until(lambda: w.changed_since(seq)[1] is None, "the journal never gave up")
        time.sleep(2.0)  # ~10 retries, each failing: the layer is still past the budget
        assert events.count("overflow") == 1, events
        for i in range(8):
            (top / f"d{i}").rmdir()
        _until(lambda: events.count("overflow") == 2, "the journal never watched again")
        seq, _ = w.changed_since(None)
        (top / "after.txt").write_text("made after\n")
        _until(lambda: w.changed_since(seq)[1] == ["after.txt"], "no exact answer once watched again", 30)
    finally:
        w.close()


class _WalkMarks(logging.Handler):
    """The journal's walk of its upper layer, as its log says it (``watching the upper
    layer``, then ``... is watched``): the marks in order, beside the test's own; the walk
    held at its start until the test has had its answer (or 30 s), so that the answer is
    asked while the walk is in progress, never after it by chance."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.marks: list[str] = []
        self.walking = threading.Event()
        self.answered = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if text.startswith("watching the upper layer"):
            self.marks.append("walk started")
            self.walking.set()
            self.answered.wait(30.0)
        elif " is watched: " in text:
            self.marks.append("walk ended")


def test_an_answer_does_not_wait_for_a_retry_s_walk_of_a_big_upper_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal given up (past its budget here; a refused watch alike) watches the whole
    upper layer again on its retry: the walk ran under the lock every answer takes, so
    git's fsmonitor hook in the mount (`git status`) and `avfs status` waited for as long
    as it took to walk the layer (tidy2, from the thirty-second round's review). Now the
    walk holds no lock: an answer asked while it runs comes before its end ("everything":
    nothing is watched yet), and once the layer is watched an answer is exact again."""
    from avfs_git.core.workspace import upperwatch

    monkeypatch.setattr(upperwatch, "RETRY_S", (0.1, 0.2))
    top = tmp_path / "upper"
    top.mkdir()
    for d in range(200):  # 200 directories of 100 files: 20,000 entries to walk
        (top / f"d{d}").mkdir()
        for f in range(100):
            (top / f"d{d}" / f"f{f}").write_bytes(b"")
    w = upperwatch.UpperWatch(str(top), lambda p: None, lambda: [], lambda: "base:0", budget=201)
    marks = _WalkMarks()
    logger = logging.getLogger("avfs.upperwatch")
    was = logger.level
    w.start()  # (the root and its 200 directories: the budget)
    try:
        seq, _ = w.changed_since(None)
        (top / "past").mkdir()  # one more: past the budget, given up
        _until(lambda: w.changed_since(seq)[1] is None, "the journal never gave up")
        token = w.answer("avfs-ovl:x:base:0:0")[0]
        logger.addHandler(marks)
        logger.setLevel(logging.DEBUG)
        (top / "past").rmdir()  # the layer fits again: the next retry walks all of it
        assert marks.walking.wait(60.0), "no retry walked the layer"
        got = w.answer(token)  # git's fsmonitor hook, asked while the walk is in progress
        paths = w.changed_since(seq)[1]  # avfs's own question
        marks.marks.append("answered")
        marks.answered.set()
        assert got[1:] == [upperwatch.EVERYTHING] and paths is None, (got, paths)
        _until(lambda: "walk ended" in marks.marks, "the retry's walk never ended")
        assert marks.marks[:3] == ["walk started", "answered", "walk ended"], marks.marks
        token = w.answer(token)[0]
        (top / "d7" / "after.txt").write_text("made after\n")
        assert w.answer(token)[1:] == ["d7/after.txt"]
    finally:
        marks.answered.set()
        logger.removeHandler(marks)
        logger.setLevel(was)
        w.close()
