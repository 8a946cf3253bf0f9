"""A fork that is not mounted, run in by `proxy exec` (the CLI, `exec_in`, MCP's `exec`):
the first call mounts it and keeps it warm, the next calls reuse it (the CLI's through the
mount's daemon), the daemon releases it after its idle timeout (fuse/idle.py) unless
something holds it, and `unmount`/`down` release it as any mount. Real mounts, real CLI
processes; both backends (the mount proxy exec makes is `auto`'s: overlay where it can be
stacked, pure FUSE with AVFS_NO_OVERLAY)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

import avfs_git
from avfs_git.core.operations import checkpoint
from avfs_git.core.settings import Settings
from avfs_git.core.store.locks import signal_process
from avfs_git.core.vaults import registry
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.core.workspace.changelog import ChangeLog
from avfs_git.ops import mounts
from avfs_git.proxy import standby

from ..conftest import run_in_process
from .backends import MOUNTS
from .test_proxy_exec_warm import _waiters

pytestmark = pytest.mark.backends(*MOUNTS)  # what a mount's daemon does

LONG = "600"  # an idle timeout no test waits for
SHORT = "1"  # one the release tests wait for (polled, never a fixed sleep)


def _env(backend: str, idle: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AVFS_NO_OVERLAY", None)
    env.pop("AVFS_MOUNT_IDLE", None)
    if backend == "fuse":
        env["AVFS_NO_OVERLAY"] = "1"
    if idle is not None:
        env["AVFS_MOUNT_IDLE"] = idle
    return env


def _avfs(
    home: Home, backend: str, *args: str, idle: str | None = LONG
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "avfs_git", "--home", home.path, *args],
        capture_output=True,
        timeout=120,
        env=_env(backend, idle),
    )


def _exec(home: Home, backend: str, *args: str, idle: str | None = LONG) -> dict[str, Any]:
    r = _avfs(home, backend, "--vault", "v:main", "--json", "proxy", "exec", *args, idle=idle)
    doc = json.loads(r.stdout)
    assert r.returncode == doc["exit_code"], (r.returncode, doc, r.stderr)
    return dict(doc)


def _listed(home: Home, backend: str) -> list[dict[str, Any]]:
    """`avfs --json mount --list`, run in the test's process (conftest's ``run_in_process``:
    a read of the home's mount records, polled by :func:`_until` while a release is waited
    for; as a process each was ~0.2 s of CPU, suitetime24). The calls that mount, reuse and
    release run as processes (:func:`_avfs`)."""
    r = run_in_process(["--home", home.path, "--json", "mount", "--list"])
    assert r.code == 0, r.err
    return list(json.loads(r.out)["mounts"])


def _daemon_pid(fork: Vault) -> int:
    """The kept-warm mount's daemon: the last one the fork's change log names (each writes
    its pid there as it starts, fuse/daemon.py), so read after the 1 s idle timeout released
    it too. Its record is gone by then: under load (6 busy loops beside `-n 2`) the CLI's
    return alone took longer than the timeout, and the record read after it was None (flaky3)."""
    with ChangeLog(fork.ws_dir("main")) as log:
        daemons = log.daemons()
    assert daemons, "no daemon named in the change log"
    return max(daemons, key=lambda d: d[1])[0]


T = TypeVar("T")


def _exec_while(
    home: Home, backend: str, fork: Vault, flag_dir: Path, then: Callable[[str], T], *args: str
) -> tuple[dict[str, Any], T]:
    """`proxy exec` (``args`` before its ``--``; the idle timeout SHORT) of a command that
    waits until ``then(mountpoint)`` has run beside it: what must hold the mount, or act on
    it before a release, is in place while the call still holds it. After the call, the
    1 s timeout runs from its end, and under load the CLI's return alone took longer than
    that: the holders started after it found the mount gone (flaky3: 4 of 9 such tests
    failed at load ~30). The command runs on the host (``--host writable``) to see the flag."""
    flag = flag_dir / f"go-{time.monotonic_ns()}"
    wait = f'while [ ! -e "{flag}" ]; do sleep 0.02; done'
    got: dict[str, Any] = {}

    def run() -> None:
        try:
            got["doc"] = _exec(home, backend, *args, "--host", "writable", "--", "sh", "-c", wait, idle=SHORT)
        except BaseException as exc:  # (raised again below)
            got["error"] = exc

    call = threading.Thread(target=run)
    call.start()
    try:
        path = mounts.registry_path(fork, "main")
        assert _until(lambda: os.path.exists(path) or not call.is_alive(), 120) and os.path.exists(path), got
        record = registry.read_record(path)
        assert record is not None and record.get("kept_warm"), record
        mp = str(record["mountpoint"])
        # its files: the mount is up (the record is written before it is ready: a holder
        # that opened a file at once found none, 2 of 2 runs)
        assert _until(lambda: os.path.exists(os.path.join(mp, "README.md")) or not call.is_alive(), 120), got
        out = then(mp)
    finally:
        flag.touch()
        call.join()
    if "error" in got:
        raise got["error"]
    return dict(got["doc"]), out


def _until(what: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.05)
    return what()


def _no_leftovers(vault: Vault, mountpoint: str) -> None:
    """Nothing of the mount is left: no record, exec file or own directory, no worktree, no
    kernel mount (the overlay's lower layer included), nothing doctor would report."""
    left = sorted(f for f in os.listdir(os.path.join(vault.state_dir, "mounts")) if not f.endswith(".log"))
    assert left == [], left
    assert not registry.mounted_at(mountpoint)
    assert not registry.mounted_at(os.path.join(vault.ws_dir("main"), "lower"))
    worktrees = os.path.join(vault.path, "worktrees")
    assert not os.path.isdir(worktrees) or os.listdir(worktrees) == []


@pytest.fixture
def fork(home: Home, vault: Vault) -> Vault:
    ws = vault.workspace("main")
    ws.write("README.md", b"# hello\n")
    checkpoint.save(vault, name="base")
    return vault


@pytest.fixture
def cleanup(home: Home, fork: Vault) -> Any:
    yield
    mounts.unmount(home, fork, "main", lazy=True)


def test_first_call_mounts_and_keeps_it_the_second_goes_to_its_daemon(
    backend: str, home: Home, fork: Vault, cleanup: Any
) -> None:
    first = _exec(home, backend, "--", "true")
    assert first["success"], first
    m = first["mount"]
    assert (m["reused"], m["kept_warm"], m["idle_timeout_s"], m["backend"]) == (False, True, 600.0, backend)
    listed = _listed(home, backend)
    assert len(listed) == 1, listed
    (live,) = listed
    assert (live["fork"], live["kept_warm"], live["idle_timeout_s"], live["state"]) == (
        "main",
        True,
        600.0,
        "mounted",
    )
    assert live["idle_expires_at"].endswith("Z") and live["backend"] == backend
    if standby.available():
        # the first call ran in the CLI's own process: it asked the daemon to make a sandbox
        # like its own ready for the next call (protocol 3)
        assert _until(lambda: len(_waiters(live["pid"])) == 1), "no sandbox made ready"
    human = _avfs(home, backend, "mount", "--list").stdout.decode()
    assert "kept warm: released after 600 s idle" in human, human
    # the second call: the mount is reused, and the CLI handed the call to its daemon (the
    # command's parent is the daemon)
    second = _exec(home, backend, "--host", "writable", "--", "sh", "-c", "echo $PPID")
    assert second["success"] and second["mount"]["reused"] is True, second
    assert second["mount"]["kept_warm"] is True
    assert int(second["result"]["stdout"]) == live["pid"]
    # the activity file moved with the call: the expiry is later
    assert _listed(home, backend)[0]["idle_expires_at"] >= live["idle_expires_at"]


def test_exec_in_and_mcp_exec_keep_it_warm_and_reuse_it(
    backend: str, home: Home, fork: Vault, cleanup: Any
) -> None:
    from avfs_git.mcp.tools import AvfsTools

    settings = Settings.from_environ(_env(backend, LONG), home.path)
    api_home = avfs_git.open_home(home.path, settings=settings)
    ws = api_home.vault("v").workspace("main")
    first = avfs_git.exec_in(ws, ["true"])
    assert first.success and first.mount is not None, first.to_dict()
    assert (first.mount.reused, first.mount.kept_warm, first.mount.backend) == (False, True, backend)
    info = mounts.check(fork, "main")
    assert info is not None and info.kept_warm and info.idle_timeout_s == 600.0
    again = avfs_git.exec_in(ws, ["sh", "-c", "echo hi > out.txt"])
    assert again.success and again.mount is not None and again.mount.reused is True
    assert [c.path for c in again.changes] == ["out.txt"] and again.commit is not None
    tools = AvfsTools(home.path, "v:main", settings=settings)
    out = tools.call("exec", {"argv": ["cat", "out.txt"]})
    doc = json.loads(out) if isinstance(out, str) else out
    assert doc["mount"]["reused"] is True and doc["mount"]["kept_warm"] is True, doc
    assert doc["result"]["stdout"] == "hi\n"
    after = mounts.check(fork, "main")
    assert after is not None and after.pid == info.pid  # one mount all along
    api_home.close()


def test_the_idle_timeout_releases_it_cleanly(backend: str, home: Home, fork: Vault, cleanup: Any) -> None:
    doc = _exec(home, backend, "--", "sh", "-c", "echo x > made.txt", idle=SHORT)
    assert doc["mount"]["kept_warm"] is True and doc["mount"]["idle_timeout_s"] == 1.0, doc
    mp = doc["mount"]["mountpoint"]
    pid = _daemon_pid(fork)
    assert _until(lambda: _listed(home, backend) == []), _listed(home, backend)
    assert _until(lambda: not os.path.exists(f"/proc/{pid}"))
    _no_leftovers(fork, mp)
    r = _avfs(home, backend, "--json", "doctor")
    assert json.loads(r.stdout)["findings"] == [], r.stdout
    with open(registry.log_path(fork.state_dir, "main"), "rb") as fh:
        assert b"released after 1 s without use" in fh.read()
    # what the command wrote was committed; the next call mounts anew
    assert fork.workspace("main").read("made.txt") == b"x\n"
    again = _exec(home, backend, "--", "cat", "made.txt")
    assert again["mount"]["reused"] is False and again["result"]["stdout"] == "x\n"


def test_a_process_in_the_mount_keeps_it(
    backend: str, home: Home, fork: Vault, cleanup: Any, tmp_path: Path
) -> None:
    def hold(mp: str) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
        # the holders while the call runs: after it, the 1 s timeout may pass before any
        # step of this test (a whole CLI process returning, under load)
        with open(os.path.join(mp, "README.md"), "rb") as fh:
            open_file = subprocess.Popen(["sleep", "600"], stdin=fh)
        return open_file, subprocess.Popen(["sleep", "600"], cwd=mp)

    doc, (open_file, in_cwd) = _exec_while(home, backend, fork, tmp_path, hold)
    mp = doc["mount"]["mountpoint"]
    try:
        pid = _listed(home, backend)[0]["pid"]
        # well past the timeout (several of the daemon's looks at it): still mounted
        time.sleep(4)
        listed = _listed(home, backend)
        assert len(listed) == 1 and listed[0]["state"] == "mounted", listed
        open_file.kill()
        open_file.wait()
        time.sleep(3)
        assert len(_listed(home, backend)) == 1  # the working directory holds it too
    finally:
        open_file.kill()
        in_cwd.kill()
        open_file.wait()
        in_cwd.wait()
    assert _until(lambda: _listed(home, backend) == [])
    assert _until(lambda: not os.path.exists(f"/proc/{pid}"))
    _no_leftovers(fork, mp)


def test_a_mount_whose_record_was_removed_still_goes(
    backend: str, home: Home, fork: Vault, cleanup: Any, tmp_path: Path
) -> None:
    # the record is the daemon's word that it is kept warm; without it (removed by hand, or
    # with the vault) the daemon must not stay forever. Removed while the call runs: after
    # it, the timeout may have released the mount (and removed the record) already
    def unlink(mp: str) -> str:
        os.unlink(mounts.registry_path(fork, "main"))
        return mp

    # (the envelope's mount is null then: the call's end found no record to describe it)
    _doc, mp = _exec_while(home, backend, fork, tmp_path, unlink)
    pid = _daemon_pid(fork)
    try:
        assert _until(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid))
        assert not registry.mounted_at(mp)
    finally:  # (no record: `unmount` would not find it) the mount goes either way
        if registry.mounted_at(mp):
            mounts.force_unmount(mp)
            mounts.detach(os.path.join(fork.ws_dir("main"), "lower"))
        # (a pid a log named: ended, it may be another process's now)
        signal_process(pid, signal.SIGTERM, is_it=registry.is_mount_daemon)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped between the lookup and the read
        return True


@pytest.mark.parametrize("how", ["unmount", "down"])
def test_unmount_and_down_release_it(backend: str, home: Home, fork: Vault, cleanup: Any, how: str) -> None:
    doc = _exec(home, backend, "--", "true")
    mp = doc["mount"]["mountpoint"]
    if how == "unmount":
        r = _avfs(home, backend, "--json", "unmount", "v:main")
        assert r.returncode == 0 and json.loads(r.stdout)["mount"]["state"] == "gone", r.stdout
    else:
        r = _avfs(home, backend, "--json", "down", "--fork", "v:main", "--keep")
        assert r.returncode == 0 and json.loads(r.stdout)["unmounted"] is True, r.stdout
    assert _listed(home, backend) == []
    _no_leftovers(fork, mp)


def test_avfs_mount_and_keep_mount_make_it_stay(
    backend: str, home: Home, fork: Vault, cleanup: Any, tmp_path: Path
) -> None:
    # held from inside the call until `avfs mount` has started (a whole CLI process: under
    # load longer than the 1 s timeout), so that it adopts this mount rather than finding
    # it released
    doc, holder = _exec_while(
        home, backend, fork, tmp_path, lambda mp: subprocess.Popen(["sleep", "600"], cwd=mp)
    )
    assert doc["mount"]["kept_warm"] is True
    try:
        r = _avfs(home, backend, "--json", "mount", "v:main", idle=SHORT)
    finally:
        holder.kill()
        holder.wait()
    m = json.loads(r.stdout)["mount"]
    assert (m["reused"], m["kept_warm"], m["idle_timeout_s"]) == (True, False, None), m
    time.sleep(3)  # past the timeout: it stays
    (live,) = _listed(home, backend)
    assert live["kept_warm"] is False and live["idle_expires_at"] is None
    assert mounts.unmount(home, fork, "main") is not None
    # --keep-mount: mounted to stay from the first call
    kept = _exec(home, backend, "--keep-mount", "--", "true", idle=SHORT)
    assert (kept["mount"]["reused"], kept["mount"]["kept_warm"]) == (False, False), kept
    time.sleep(3)
    assert len(_listed(home, backend)) == 1


@pytest.mark.parametrize(
    ("where", "value", "says"),
    [
        ("env", "soon", "not a number of seconds"),
        ("env", "-1", "out of range"),
        ("env", "nan", "out of range"),
        ("env", "1e9", "out of range"),
        ("vault", "ten", "not a number of seconds"),
        ("vault", True, "not a number of seconds"),
        ("home", -5, "out of range"),
    ],
)
def test_a_bad_idle_timeout_is_a_clear_error_and_changes_nothing(
    backend: str, home: Home, fork: Vault, cleanup: Any, where: str, value: Any, says: str
) -> None:
    ws = fork.workspace("main")
    ws.write("pending.txt", b"uncheckpointed\n")  # a checkpoint would be made before the command
    tip = ws.tip()
    idle: str | None = None
    if where == "env":
        idle = str(value)
    elif where == "vault":
        fork.set_config(mount_idle_s=value)
    else:
        home.set_config(mount_idle_s=value)
    doc = _exec(home, backend, "--", "touch", "made.txt", idle=idle)
    assert doc["exit_code"] == 125 and doc["result"] is None, doc
    err = doc["error"]
    assert err["code"] == "usage" and says in err["message"], err
    assert ("AVFS_MOUNT_IDLE" if where == "env" else "mount_idle_s") in err["message"]
    assert "AVFS_MOUNT_IDLE=600" in err["hint"]
    assert _listed(home, backend) == []  # nothing mounted
    ws2 = fork.workspace("main")
    assert ws2.tip() == tip and ws2.read("pending.txt") == b"uncheckpointed\n"
    assert not ws2.exists("made.txt")
    assert doc["checkpoint"] is None and doc["commit"] is None


def test_zero_unmounts_after_each_call(backend: str, home: Home, fork: Vault, cleanup: Any) -> None:
    doc = _exec(home, backend, "--", "true", idle="0")
    assert doc["success"] and doc["mount"]["kept_warm"] is False and doc["mount"]["reused"] is False, doc
    assert _until(lambda: _listed(home, backend) == [])
