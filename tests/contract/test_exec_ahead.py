"""The first `proxy exec` on a fork that is not mounted has its sandbox set up while the
mount comes up (proxy/ahead.py): the daemon says ``L`` (linked) and, for an overlay,
``S`` (stacked) on its readiness pipe before its ``R``, and the command goes on in a
sandbox bubblewrap set up from then on, blocked before the command, exactly the one it
would have had (bwrap's whole command line, the command, its cwd and environment
compared), confined as any. Real mounts, real daemons, real bubblewrap; both backends."""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

import avfs_git
from avfs_git.core.settings import Settings
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts
from avfs_git.ops.daemonstart import LINKED, STACKED
from avfs_git.proxy import ahead, confine

from ..conftest import skip_outside_ci
from ..etclock import held as etc_held
from .backends import MOUNTS
from .test_mount_kept_warm import LONG, _env, cleanup, fork

pytestmark = pytest.mark.backends(*MOUNTS)
__all__ = ["cleanup", "fork"]  # fixtures


@pytest.fixture(autouse=True)
def _etc_still() -> Iterator[None]:
    """This module's first calls need /etc still: shared (tests/etclock.py)."""
    with etc_held(alone=False):
        yield


def test_the_daemon_says_how_far_it_got_before_it_is_ready(
    backend: str, home: Home, fork: Vault, cleanup: Any
) -> None:
    got = mounts.start(home, fork, "main", None, backend=backend)
    assert isinstance(got, mounts.Starting)
    try:
        assert got.reached(LINKED)  # the worktree linked, its own files made
        assert got.reached(STACKED) == (backend == "overlay")  # the pure-FUSE backend stacks nothing
        assert got.answer in (None, b"R")
        info = got.wait()
        assert info.state == "mounted" and info.backend == backend
        assert got.progress == (b"LS" if backend == "overlay" else b"L")
    finally:
        mounts.unmount(home, fork, "main")


def test_the_first_call_runs_in_the_sandbox_set_up_ahead(
    backend: str, home: Home, fork: Vault, cleanup: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if confine.unavailable() is not None:
        skip_outside_ci(f"no bubblewrap sandbox here: {confine.unavailable()}")
    went: list[list[str]] = []
    start = ahead.Blocked.start

    def noted(self: ahead.Blocked, argv: list[str], cwd: str, env: dict[str, str]) -> None:
        start(self, argv, cwd, env)
        went.append(argv)

    monkeypatch.setattr(ahead.Blocked, "start", noted)
    settings = Settings.from_environ(_env(backend, LONG), home.path)
    api_home = avfs_git.open_home(home.path, settings=settings)
    # (git's index, written by the daemon while the sandbox was set up: clean but for out.txt)
    script = "echo hi > out.txt; test -w /usr && echo host || echo confined; pwd -P; git status --porcelain"
    try:
        ws = api_home.vault("v").workspace("main")
        res = avfs_git.exec_in(ws, ["sh", "-c", script])
        again = avfs_git.exec_in(ws, ["cat", "out.txt"])  # the mount kept warm: nothing ahead
    finally:
        api_home.close()
    assert res.success and res.mount is not None and res.result is not None, res.to_dict()
    assert (res.mount.reused, res.mount.kept_warm, res.mount.backend) == (False, True, backend)
    assert went == [["sh", "-c", script]]  # the first call's command went on in the sandbox set up ahead
    assert res.confinement.kind == "bwrap"
    assert res.result.stdout.splitlines() == ["confined", confine.stable_path("v"), "?? out.txt"]
    assert [c.path for c in res.changes] == ["out.txt"] and res.commit is not None
    assert fork.workspace("main").read("out.txt") == b"hi\n"
    assert again.success and again.mount is not None and again.mount.reused, again.to_dict()
    assert again.result is not None and again.result.stdout == "hi\n"


def test_the_first_call_sees_the_refs_its_own_placement_filled(
    backend: str, home: Home, fork: Vault, cleanup: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sandbox set up ahead binds the seal's scratch as the last run left it (only its
    layout is made then: proxy/seal.py's ``refresh=False``); the call's own placement, after
    its record of the fork, fills it before the command goes on. So a branch the last
    confined command made in its scratch (refused, gone with its run) is not there, and a
    fork made since is."""
    if confine.unavailable() is not None:
        skip_outside_ci(f"no bubblewrap sandbox here: {confine.unavailable()}")
    went: list[list[str]] = []
    start = ahead.Blocked.start

    def noted(self: ahead.Blocked, argv: list[str], cwd: str, env: dict[str, str]) -> None:
        start(self, argv, cwd, env)
        went.append(argv)

    monkeypatch.setattr(ahead.Blocked, "start", noted)
    settings = Settings.from_environ(_env(backend, LONG), home.path)
    listing = ["git", "for-each-ref", "--format=%(refname)", "refs/heads"]
    api_home = avfs_git.open_home(home.path, settings=settings)
    try:
        ws = api_home.vault("v").workspace("main")
        made = avfs_git.exec_in(ws, ["git", "branch", "junk"])
        mounts.unmount(home, fork, "main")  # (the next call is a first one again)
        fork.fork("main", "other")
        res = avfs_git.exec_in(ws, listing)
    finally:
        api_home.close()
    assert made.success and res.success and res.result is not None, (made.to_dict(), res.to_dict())
    assert [r.ref for r in made.refs_refused] == ["refs/heads/junk"]
    assert went == [["git", "branch", "junk"], listing]  # both went on in a sandbox set up ahead
    assert res.result.stdout.split() == ["refs/heads/main", "refs/heads/other"]


def test_the_first_call_lists_the_vaults_objects_while_its_mount_comes_up(
    backend: str, home: Home, fork: Vault, cleanup: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quota's listing of the object store (its count before the command) is made
    while the daemon comes up, before the call's record of the fork (proxy/premount.py)."""
    if confine.unavailable() is not None:
        skip_outside_ci(f"no bubblewrap sandbox here: {confine.unavailable()}")
    from avfs_git.core.vaults.quota import QuotaTracker
    from avfs_git.proxy import placement

    order: list[str] = []
    warm, before = QuotaTracker.warm, placement.before

    def warmed(self: QuotaTracker) -> None:
        order.append("warm")
        warm(self)

    def recorded(*args: Any, **kw: Any) -> Any:
        order.append("before")
        return before(*args, **kw)

    monkeypatch.setattr(QuotaTracker, "warm", warmed)
    monkeypatch.setattr(placement, "before", recorded)
    settings = Settings.from_environ(_env(backend, LONG), home.path)
    api_home = avfs_git.open_home(home.path, settings=settings)
    try:
        res = avfs_git.exec_in(api_home.vault("v").workspace("main"), ["true"])
    finally:
        api_home.close()
    assert res.success and res.mount is not None and not res.mount.reused, res.to_dict()
    assert order == ["warm", "before"]


def test_a_sandbox_set_up_ahead_for_another_command_is_killed_unused(
    backend: str, home: Home, fork: Vault, cleanup: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the call works out after its record of the fork is what counts: a sandbox set up
    ahead with anything else (here an environment with one more variable) is killed, its
    command never run, and the command runs in a sandbox of its own."""
    if confine.unavailable() is not None:
        skip_outside_ci(f"no bubblewrap sandbox here: {confine.unavailable()}")
    made: list[ahead.Blocked] = []
    planned, blocked = ahead.planned, ahead.set_up

    def other(*args: Any) -> ahead.Planned | None:
        got = planned(*args)
        return None if got is None else dataclasses.replace(got, env=(*got.env, ("AHEAD", "yes")))

    def noted(p: ahead.Planned) -> ahead.Blocked | None:
        b = blocked(p)
        if b is not None:
            made.append(b)
        return b

    monkeypatch.setattr(ahead, "planned", other)
    monkeypatch.setattr(ahead, "set_up", noted)
    settings = Settings.from_environ(_env(backend, LONG), home.path)
    api_home = avfs_git.open_home(home.path, settings=settings)
    try:
        ws = api_home.vault("v").workspace("main")
        res = avfs_git.exec_in(ws, ["sh", "-c", 'echo "${AHEAD:-own}" > who.txt; echo "${AHEAD:-own}"'])
    finally:
        api_home.close()
    assert res.success and res.result is not None, res.to_dict()
    assert len(made) == 1 and not made[0].went  # set up, never let go
    # killed: its sandbox first (bubblewrap then ends saying so, 128 + 9: proxy/standby.py
    # end_sandbox), or bubblewrap itself where the sandbox had not started
    assert made[0].proc is not None and made[0].proc.returncode in (128 + signal.SIGKILL, -signal.SIGKILL)
    assert res.result.stdout == "own\n" and res.confinement.kind == "bwrap"
    assert fork.workspace("main").read("who.txt") == b"own\n"


def test_a_sandbox_set_up_ahead_never_goes_on_by_itself() -> None:
    """Where bubblewrap's ``--block-fd`` reads the gate (no Perl: it goes on at the end of
    the file too), the sandbox's end is a writer of its own pipe, so that the pipe never
    ends when the call dies before its byte (the command then never runs:
    --die-with-parent kills it). Where the Landlock program reads it (it runs nothing at
    the end of the file), the call's death ends it: the end of the file, at once (a
    sandbox whose bubblewrap had not armed --die-with-parent yet waited for good;
    tests/test_netproxy.py)."""
    rw, w = ahead._gate(guarded=False)
    try:
        os.close(w)  # the call gone
        assert select.select([rw], [], [], 0) == ([], [], [])  # no end of file: still blocked
        os.write(rw, b"g")  # (what the call's byte would be)
        assert select.select([rw], [], [], 0)[0] == [rw] and os.read(rw, 1) == b"g"
    finally:
        os.close(rw)
    r, w = ahead._gate(guarded=True)
    try:
        os.close(w)  # the call gone
        assert select.select([r], [], [], 0)[0] == [r] and os.read(r, 1) == b""
    finally:
        os.close(r)


def _in_sandbox(pid: int) -> list[int]:
    """The processes below ``pid`` (bubblewrap's: its namespace's init, the command's)."""
    out, todo = [], [pid]
    while todo:
        at = todo.pop()
        try:
            with open(f"/proc/{at}/task/{at}/children") as fh:
                kids = [int(k) for k in fh.read().split()]
        except OSError:
            continue
        out += kids
        todo += kids
    return out


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def _landlock_abi() -> int:
    import ctypes

    return int(ctypes.CDLL(None, use_errno=True).syscall(444, None, 0, 1))  # landlock_create_ruleset


def test_a_sandbox_set_up_ahead_waits_in_its_landlock_program(tmp_path: Any) -> None:
    """Its command waits in the program that applies the Landlock domain, once that has
    started and applied it (bubblewrap's init and child and Perl's start are ahead too, not
    after the call's byte); on the byte the command runs, under the domain (no FIFO made
    in a writable directory the domain protects), and not before."""
    from avfs_git.proxy import landlock

    if confine.unavailable() is not None or not landlock.available():
        skip_outside_ci("no bubblewrap sandbox or no Perl here (make test installs both)")
    fork_dir, kept = tmp_path / "fork", tmp_path / "kept"
    fork_dir.mkdir()
    kept.mkdir()
    script = f"echo ran > out; mkfifo {kept}/fifo 2>/dev/null && echo made > how || echo refused > how"
    planned = ahead.Planned(
        sandbox=confine.Sandbox(
            source=str(fork_dir), path="/avfs/v", cwd="/avfs/v", network="none", writable=(str(kept),)
        ),
        argv=("sh", "-c", script),
        env=(("PATH", "/usr/bin:/bin"),),
    )
    blocked = ahead.set_up(planned)
    assert blocked is not None
    try:
        assert blocked.spawned.wait(10) and blocked.proc is not None
        deadline = time.monotonic() + 30
        waiting: list[int] = []
        while not waiting and time.monotonic() < deadline and blocked.proc.poll() is None:
            waiting = [p for p in _in_sandbox(blocked.proc.pid) if _exe(p) == landlock.PERL]
            time.sleep(0.01)
        assert waiting, "the Landlock program is not waiting in the sandbox set up ahead"
        time.sleep(0.2)
        assert not (fork_dir / "out").exists()  # (it waits for the byte)
        blocked.start(list(planned.argv), "/avfs/v", dict(planned.env))
        assert blocked.proc.wait(30) == 0
    finally:
        blocked.discard()
        if blocked.proc is not None:
            for pipe in (blocked.proc.stdout, blocked.proc.stderr):
                if pipe is not None:
                    pipe.close()
        if blocked.status_r >= 0:
            os.close(blocked.status_r)
            blocked.status_r = -1
    assert (fork_dir / "out").read_text() == "ran\n"
    applied = _landlock_abi() >= 2
    assert (fork_dir / "how").read_text() == ("refused\n" if applied else "made\n")
    assert (kept / "fifo").exists() != applied


@pytest.mark.parametrize("fails", ["env_fd", "thread"])
def test_a_sandbox_that_cannot_be_set_up_ahead_leaves_nothing_open(
    fails: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setting up ahead is a shortcut: any failure on the way (the environment's file, a
    thread that cannot be started) means the call sets its own sandbox up as before, and
    no descriptor of the attempt stays open in the (long-lived) calling process."""
    planned = ahead.Planned(
        sandbox=confine.Sandbox(source=str(tmp_path), path="/avfs/v", cwd="/avfs/v", network="none"),
        argv=("true",),
        env=(("PATH", "/usr/bin"),),
    )

    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("can't start new thread")

    if fails == "env_fd":
        monkeypatch.setattr(confine, "env_fd", boom)
    else:
        monkeypatch.setattr(ahead.threading.Thread, "start", boom)
    before = sorted(os.listdir("/proc/self/fd"))
    assert ahead.set_up(planned) is None
    assert sorted(os.listdir("/proc/self/fd")) == before
