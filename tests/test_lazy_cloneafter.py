"""The index a lazy clone keeps for its default fork's tip made after the clone answers
(``"index_at_clone": "after"``: mount/keptmake.py ``hold`` and ``start_now``, docs/lazy.md
"The index kept per base"): the clone takes the kept index's lock before it answers and a
process of its own, started as it answers, makes the index; a mount made the moment the
clone answered waits for that process at its first `git status` (moving it out of the idle
scheduling class then) instead of making the index beside it. Over each transport the index
used is the one git makes in a full clone; a maker killed midway leaves no index and no held
lock, and the first status is right; a base moved while the maker works gets its own index."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.mount import keptindex, keptmake
from avfs_git.ops import mounts

from .conftest import git
from .test_lazy_cloneindex import _a_new_file_as_git_sees_it, _clone, _entries, _status
from .test_lazy_transports import Served, _require_backend
from .test_lazy_transports import served as served
from .test_remotes import http_git as http_git
from .test_remotes import sshd as sshd


def _after(home: Home) -> None:
    os.makedirs(home.path, exist_ok=True)
    with open(os.path.join(home.path, "config.json"), "w", encoding="utf-8") as fh:
        json.dump({"index_at_clone": "after"}, fh)


def _lock(v: object, tree: str) -> str:
    return os.path.join(v.state_dir, "kept-index", tree + keptindex.LOCK)  # type: ignore[attr-defined]


def _started(monkeypatch: pytest.MonkeyPatch, before: object = None) -> list[int]:
    """Wrap keptmake.start_now (looked up there by cli/vaults.py at the call): the pids of
    the makers it started; ``before()`` runs first (the lock is held by then)."""
    real = keptmake.start_now
    pids: list[int] = []

    def start_now(home: str, vault: object, commit: str, env: dict[str, str], fd: int) -> bool:
        if before is not None:
            before()  # type: ignore[operator]
        ok = real(home, vault, commit, env, fd)  # type: ignore[arg-type]
        tree = vault.store.commit_tree(commit)  # type: ignore[attr-defined]
        with open(_lock(vault, tree), "rb") as fh:
            pids.append(int(fh.read().strip() or b"0"))
        return ok

    monkeypatch.setattr(keptmake, "start_now", start_now)
    return pids


def _silence(s: Served, seen: list[int]) -> object:
    """What makes the server silent to the maker about to start (its connections accepted,
    never answered); ``seen`` gets the relay's connections until then."""

    def silence() -> None:
        seen.append(len(s.relay._conns))
        s.relay.mode = "silent"

    return silence


def _on_the_server(s: Served, before: int, wait_s: float = 60) -> None:
    """Wait until the maker has connected to the silent server (it is asking the sizes)."""
    deadline = time.monotonic() + wait_s
    while len(s.relay._conns) <= before:
        assert time.monotonic() < deadline, "the maker never asked the server"
        time.sleep(0.02)


def _reap(pid: int, timeout: float = 120.0) -> int | None:
    """Wait until the maker ``pid`` (this process's child: started in process) has ended;
    its exit code (None: not this process's child)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    raise AssertionError(f"maker {pid} still running")


@pytest.mark.parametrize("served", ["git", "http", "ssh"], indirect=True)
def test_the_index_made_after_the_clone_answers_is_git_s_and_a_mount_patches_it(
    cli: object, home: Home, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``"index_at_clone": "after"``: when the clone answers, the kept index's lock is held
    by a maker process of its own (not this one), no index kept yet; the maker then keeps
    (exit code 0), entry for entry (path, mode, id, size), what `git read-tree` + `git
    update-index --refresh` write in a full clone's checkout, and a mount patches it: its
    first `git status` clean, with an untracked file the full clone's status, with git's
    fsmonitor off too. (Before the thirty-first round, "after" was refused: ``usage``.)"""
    s = served
    _require_backend("fuse")
    _after(home)
    pids = _started(monkeypatch)
    v = _clone(cli, home, s)
    assert len(pids) == 1 and pids[0] not in (0, os.getpid())
    tree = git("--git-dir", v.path, "rev-parse", "main^{tree}").strip()  # type: ignore[attr-defined]
    assert _reap(pids[0]) == 0  # (the maker made and kept it: main's exit code)
    kept = keptindex.load(v.state_dir, tree)  # type: ignore[attr-defined]
    assert kept is not None
    assert not os.path.exists(_lock(v, tree))
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")  # type: ignore[arg-type]
    try:
        first = _status(mp)
        assert first.returncode == 0 and first.stdout == "", first

        full = tmp_path / "full"
        git("clone", "-q", str(s.repo), str(full))
        index = full / ".git" / "index-theirs"
        env = {**os.environ, "GIT_INDEX_FILE": str(index)}
        subprocess.run(["git", "read-tree", "HEAD"], cwd=full, env=env, check=True)
        subprocess.run(
            ["git", "update-index", "--refresh"], cwd=full, env=env, check=True, capture_output=True
        )
        theirs = _entries(index.read_bytes())
        assert [e[:4] for e in _entries(kept)] == [e[:4] for e in theirs]
        assert len(theirs) > 20
        in_mount = subprocess.run(["git", "ls-files", "-s"], cwd=mp, capture_output=True, text=True).stdout
        assert (
            in_mount
            == subprocess.run(
                ["git", "ls-files", "-s"], cwd=full, env=env, capture_output=True, text=True
            ).stdout
        )

        _a_new_file_as_git_sees_it(mp, full)
    finally:
        mounts.unmount(home, v, "main", lazy=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("served", ["git", "http", "ssh"], indirect=True)
def test_a_maker_killed_midway_leaves_nothing_half_made_and_the_first_status_right(
    cli: object, home: Home, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The maker started as the clone answers meets a server that accepts and never
    answers (its sizes' request hangs), and is killed (SIGKILL) while it holds the lock:
    no kept index, no temp file, the lock free; the server back, the first mount makes its
    own index and its `git status` is clean, an untracked file listed, no blob fetched
    but what the mount's own index needs."""
    s = served
    _require_backend("fuse")
    _after(home)

    pids = _started(monkeypatch, _silence(s, seen := []))
    v = _clone(cli, home, s)
    assert len(pids) == 1
    tree = git("--git-dir", v.path, "rev-parse", "main^{tree}").strip()  # type: ignore[attr-defined]
    # the maker holds the lock (a mount would wait for it), then asks the silent server
    assert keptindex.await_maker(v.state_dir, tree, 0.3)  # type: ignore[attr-defined]
    _on_the_server(s, seen[0])
    os.kill(pids[0], signal.SIGKILL)
    _reap(pids[0])
    assert not keptindex.await_maker(v.state_dir, tree, 0.3)  # type: ignore[attr-defined]
    assert keptindex.load(v.state_dir, tree) is None  # type: ignore[attr-defined]
    kept_dir = os.path.join(v.state_dir, "kept-index")  # type: ignore[attr-defined]
    assert [n for n in os.listdir(kept_dir) if not n.endswith(keptindex.LOCK)] == []
    s.relay.mode = "pass"
    s.relay.cut()
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")  # type: ignore[arg-type]
    try:
        first = _status(mp)
        assert first.returncode == 0 and first.stdout == "", first
        (mp / "new.txt").write_text("new\n")
        assert _status(mp).stdout == "?? new.txt\n"
        plain = _status(mp, "core.fsmonitor=false")
        assert plain.returncode == 0 and plain.stdout == "?? new.txt\n", plain
    finally:
        mounts.unmount(home, v, "main", lazy=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("served", ["git"], indirect=True)
def test_a_base_moved_while_the_maker_works_gets_its_own_tree_s_index(
    cli: object, home: Home, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fork's base moves (a checkpoint changing, adding and removing a file) while the
    maker of the clone's tree's index waits on a silent server: the mount's index is the new
    tree's (git status clean, its entries the new tree's), and once the server answers the
    maker keeps the old tree's index, for a mount of the old base."""
    s = served
    _require_backend("fuse")
    _after(home)

    pids = _started(monkeypatch, _silence(s, seen := []))
    v = _clone(cli, home, s)
    old = git("--git-dir", v.path, "rev-parse", "main^{tree}").strip()  # type: ignore[attr-defined]
    assert keptindex.await_maker(v.state_dir, old, 0.3)  # type: ignore[attr-defined]
    _on_the_server(s, seen[0])
    ws = v.workspace("main")  # type: ignore[attr-defined]
    ws.write("NOTES.md", b"changed after the clone\n")
    ws.write("added.txt", b"added\n")
    ws.remove("avfs_git/__main__.py")
    checkpoint.save(v, "main", name="moved")  # type: ignore[arg-type]
    new = git("--git-dir", v.path, "rev-parse", "main^{tree}").strip()  # type: ignore[attr-defined]
    assert new != old
    s.relay.mode = "pass"  # (new connections answered: the maker's stays hung)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")  # type: ignore[arg-type]
    try:
        assert _status(mp).stdout == ""  # (the old tree's maker, still waiting, not waited for)
        assert keptindex.await_maker(v.state_dir, old, 0.1)  # type: ignore[attr-defined]
        plain = _status(mp, "core.fsmonitor=false")
        assert plain.returncode == 0 and plain.stdout == "", plain
        index = subprocess.run(["git", "ls-files", "-s"], cwd=mp, capture_output=True, text=True).stdout
        listing = git("--git-dir", v.path, "ls-tree", "-r", "main")  # type: ignore[attr-defined]
        assert sorted(line.split()[1] + " " + line.split("\t")[1] for line in index.splitlines()) == sorted(
            line.split()[2] + " " + line.split("\t")[1] for line in listing.splitlines()
        )
        assert "added.txt" in index and "avfs_git/__main__.py\n" not in index
    finally:
        mounts.unmount(home, v, "main", lazy=True)  # type: ignore[arg-type]
    s.relay.cut()  # (the maker's request fails: it keeps nothing, and lets go of its lock)
    _reap(pids[0])
    assert not os.path.exists(_lock(v, old))
    assert keptindex.load(v.state_dir, old) is None  # type: ignore[attr-defined]


def _holder(state: str, tree: str, mark: str) -> subprocess.Popen[bytes]:
    """A process in Linux's idle class, leading a session of its own, holding the kept
    index's lock of ``tree`` (its pid in the lock file), ``mark`` in its command line."""
    fd = keptindex.making(state, tree)
    assert fd is not None
    os.set_inheritable(fd, True)
    code = f"# {mark}\nimport os, sys\nos.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nsys.stdin.read()\n"
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, pass_fds=(fd,), start_new_session=True
    )
    os.pwrite(fd, b"%d\n" % child.pid, 0)
    deadline = time.monotonic() + 60
    while os.sched_getscheduler(child.pid) != os.SCHED_IDLE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.close(fd)  # (the child holds the lock now)
    return child


def test_a_mount_takes_over_from_a_maker_raising_and_stopping_it_and_nothing_else(tmp_path: Path) -> None:
    """keptindex.take_over (a mount about to make its own index where none is kept): the
    process holding the lock, a maker (mount/keptmake.py in its command line) in the idle
    class, is moved to the normal class (so that it ends without waiting for a free CPU)
    and ended (SIGTERM), its lock file removed; a holder that is not a maker is neither
    signalled nor moved, and its lock stays; with no holder, nothing is done."""
    state = str(tmp_path / "state")
    os.makedirs(state)
    tree = "ab" * 20
    other = _holder(state, tree, "a process of another kind")
    try:
        assert not keptindex.take_over(state, tree)
        assert other.poll() is None and os.sched_getscheduler(other.pid) == os.SCHED_IDLE
        assert keptindex.await_maker(state, tree, 0.05)
    finally:
        other.stdin.close()  # type: ignore[union-attr]
        other.wait(60)
    assert not keptindex.await_maker(state, tree, 0.3)
    maker = _holder(state, tree, keptindex.MAKER_MARK.decode())
    try:
        assert keptindex.take_over(state, tree)
        assert not os.path.exists(_lock_in(state, tree))
        deadline = time.monotonic() + 60
        while not open_stat(maker.pid).startswith("Z"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert os.sched_getscheduler(maker.pid) == os.SCHED_OTHER  # (raised before it was ended)
        assert maker.wait(60) == -signal.SIGTERM
    finally:
        maker.stdin.close()  # type: ignore[union-attr]
        if maker.poll() is None:
            maker.kill()
            maker.wait()
    assert not keptindex.take_over(state, tree)


def _lock_in(state: str, tree: str) -> str:
    return os.path.join(state, "kept-index", tree + keptindex.LOCK)


def open_stat(pid: int) -> str:
    """The state letter onwards of ``/proc/PID/stat``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return fh.read().rsplit(")", 1)[1].strip()


def test_index_at_clone_after_is_read_and_anything_else_refused(home: Home) -> None:
    """The setting's three values: true ("before"), "after", false ("", the default since
    the thirty-first round); "yes" a usage error."""
    from avfs_git.core.errors import UsageError
    from avfs_git.core.vaults.lazyconfig import index_at_clone

    os.makedirs(home.path, exist_ok=True)
    path = os.path.join(home.path, "config.json")
    assert index_at_clone(home.path) == ""  # (the default: none at the clone)
    for value, want in ((True, "before"), ("after", "after"), (False, "")):
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"index_at_clone": value}, fh)
        assert index_at_clone(home.path) == want
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"index_at_clone": "yes"}, fh)
    with pytest.raises(UsageError):
        index_at_clone(home.path)


def _policy_at_start(tmp_path: Path) -> tuple[str, Path]:
    """A stand-in for the interpreter (``sys.executable``) that writes its scheduling policy
    as it starts (``/proc/$$/sched``'s ``policy``, read with the shell's builtins: nothing
    of its own runs first), then executes the interpreter: where it and the file."""
    seen = tmp_path / "policy-at-start"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(
        "#!/bin/sh\n"
        "while read -r key _ value; do\n"
        f'  [ "$key" = policy ] && echo "$value" >> {seen}\n'
        "done < /proc/$$/sched\n"
        f'exec {sys.executable} "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper), seen


def _hung_maker(
    cli: object, home: Home, s: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[object, str, int, Path]:
    """A clone with ``"after"`` whose maker (started through :func:`_policy_at_start`'s
    stand-in) meets a silent server: the vault, its tree, the maker's pid and the file its
    policy at start is in, once the maker has started."""
    _require_backend("fuse")
    _after(home)
    wrapper, seen = _policy_at_start(tmp_path)
    with monkeypatch.context() as m:
        pids = _started(m, _silence(s, conns := []))
        m.setattr(sys, "executable", wrapper)
        v = _clone(cli, home, s)
    assert len(pids) == 1
    tree = git("--git-dir", v.path, "rev-parse", "main^{tree}").strip()  # type: ignore[attr-defined]
    _on_the_server(s, conns[0], 180)  # (idle: it runs once a CPU is free)
    assert seen.exists()
    return v, tree, pids[0], seen


@pytest.mark.parametrize("served", ["git"], indirect=True)
def test_the_maker_runs_idle_from_its_start_and_is_raised_and_stopped_when_git_wants_the_index(
    cli: object, home: Home, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The maker ``"after"`` starts is in Linux's idle scheduling class from its ``exec``
    (its interpreter's start included: the stand-in it runs first reads policy 5,
    ``SCHED_IDLE``, in its ``/proc/PID/sched``; before, 0: the interpreter started in the
    normal class and entered the idle one in its first statements); it stays there while a
    mount comes up and `ls` answers. When the first `git status` waits at the mount's gate
    and the maker is not done (here its server silent to it), the mount does not wait for
    it: the maker is moved to the normal class and ended (SIGTERM), and the mount's own
    index (its sizes asked as it came up) answers git, clean. Before, the mount waited for
    the maker (moved then) until the maker's request timed out."""
    s = served
    v, tree, pid, seen = _hung_maker(cli, home, s, tmp_path, monkeypatch)
    assert seen.read_text().split() == [str(os.SCHED_IDLE)]
    s.relay.mode = "pass"  # (new connections answered: the maker's stays hung)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")  # type: ignore[arg-type]
    try:
        assert "NOTES.md" in os.listdir(mp)
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
        first = _status(mp)
        assert first.returncode == 0 and first.stdout == "", first
        deadline = time.monotonic() + 120
        while not open_stat(pid).startswith("Z"):
            assert time.monotonic() < deadline, "the maker was not ended"
            time.sleep(0.01)
        assert os.sched_getscheduler(pid) == os.SCHED_OTHER  # (raised, then ended)
        assert _reap(pid) == -signal.SIGTERM
        assert not os.path.exists(_lock(v, tree))
        assert _status(mp, "core.fsmonitor=false").stdout == ""
    finally:
        mounts.unmount(home, v, "main", lazy=True)  # type: ignore[arg-type]
        s.relay.cut()


@pytest.mark.parametrize("served", ["git"], indirect=True)
def test_a_maker_that_cannot_be_raised_is_stopped_all_the_same(
    cli: object, home: Home, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mount's take-over in a process that cannot move a process out of the idle class
    (a user's: the kernel asks ``CAP_SYS_NICE`` or an ``RLIMIT_NICE`` of 20; here root's
    without ``CAP_SYS_NICE``, the same ``EPERM``): the maker is ended all the same, its lock
    file gone, no index kept, at once; a mount then has a clean first status. (Before, a
    mount's wait moved nothing, the error ignored, and waited up to 20 s for a maker in the
    idle class.)"""
    s = served
    v, tree, pid, _ = _hung_maker(cli, home, s, tmp_path, monkeypatch)
    code = (
        "import os, sys, time\n"
        "from avfs_git.mount import keptindex\n"
        "t = time.monotonic()\n"
        "stopped = keptindex.take_over(sys.argv[1], sys.argv[2])\n"
        "print(stopped, keptindex.boost(b'%d' % int(sys.argv[3])), round(time.monotonic() - t, 3))\n"
    )
    args = [sys.executable, "-c", code, v.state_dir, tree, str(pid)]  # type: ignore[attr-defined]
    r = subprocess.run(
        ["setpriv", "--bounding-set", "-sys_nice", *args], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    stopped, raised, took = r.stdout.split()
    assert stopped == "True" and float(took) < 5.0, r.stdout
    assert _reap(pid) == -signal.SIGTERM
    assert raised in ("False", "True")  # (False: it could not; True: it had ended by then)
    assert not os.path.exists(_lock(v, tree))
    assert keptindex.load(v.state_dir, tree) is None  # type: ignore[attr-defined]
    s.relay.mode = "pass"
    s.relay.cut()
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")  # type: ignore[arg-type]
    try:
        first = _status(mp)
        assert first.returncode == 0 and first.stdout == "", first
    finally:
        mounts.unmount(home, v, "main", lazy=True)  # type: ignore[arg-type]
