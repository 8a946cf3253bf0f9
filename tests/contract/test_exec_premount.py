"""`proxy exec` on a fork that is not mounted starts the fork's mount daemon before its plan
(proxy/premount.py), and plans while the daemon comes up: the mount is the one the call
keeps warm. A call that does not run changes nothing of the fork: refused by the policy,
it leaves the mount kept warm for the next call; a request found bad leaves the fork
unmounted. A daemon killed between calls and a fork deleted while kept warm lose nothing.
Real mounts, real CLI processes; both backends."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

import avfs_git
from avfs_git.core.settings import Settings
from avfs_git.core.store.locks import pid_alive
from avfs_git.core.vaults import registry
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts
from avfs_git.proxy import admission

from .. import daemons
from .backends import MOUNTS
from .test_mount_kept_warm import LONG, _avfs, _env, _exec, _listed, _no_leftovers, _until, cleanup, fork

pytestmark = pytest.mark.backends(*MOUNTS)
__all__ = ["cleanup", "fork"]  # fixtures


def _daemons(home: Home) -> list[int]:
    """The pids of mount daemons of ``home`` (spawned or forked warm)."""
    return daemons.of_home(home.path)


def _starting(vault: Vault) -> int | None:
    """The pid of the fork's mount daemon, started and not necessarily ready: the one its
    registry record names (the record written when it was started, ops/daemonstart.py),
    when that process is a mount daemon. Not found by its command line in /proc: a daemon
    just started has none yet for a moment (core/vaults/daemonproc.py, is_mount_daemon),
    which made this test fail now and then under load."""
    data = registry.read_record(registry.record_path(vault.state_dir, "main"))
    if data is None:
        return None
    pid = int(data["pid"])
    return pid if pid_alive(pid) and registry.is_mount_daemon(pid) else None


def test_the_daemon_starts_before_the_plan(
    backend: str, home: Home, fork: Vault, cleanup: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_environ(_env(backend, LONG), home.path)
    api_home = avfs_git.open_home(home.path, settings=settings)
    ws = api_home.vault("v").workspace("main")
    seen: list[int | None] = []
    plan = admission.plan

    def planned(*args: Any, **kwargs: Any) -> Any:
        seen.append(_starting(fork))  # the plan begins: is the daemon there already?
        return plan(*args, **kwargs)

    monkeypatch.setattr(admission, "plan", planned)
    try:
        res = avfs_git.exec_in(ws, ["sh", "-c", "echo hi > out.txt"])
    finally:
        api_home.close()
    assert res.success and res.mount is not None, res.to_dict()
    assert (res.mount.reused, res.mount.kept_warm, res.mount.backend) == (False, True, backend)
    info = mounts.check(fork, "main")
    assert info is not None and info.kept_warm and info.state == "mounted"
    assert seen == [info.pid]  # started before the plan, and the one that serves
    assert [c.path for c in res.changes] == ["out.txt"] and res.commit is not None
    assert fork.workspace("main").read("out.txt") == b"hi\n"


def _pending(fork: Vault) -> str | None:
    ws = fork.workspace("main")
    ws.write("pending.txt", b"uncheckpointed\n")
    return ws.tip()


def _untouched(fork: Vault, tip: str | None) -> None:
    ws = fork.workspace("main")
    assert ws.tip() == tip and ws.read("pending.txt") == b"uncheckpointed\n"
    assert not ws.exists("x")


@pytest.mark.parametrize(
    "args",
    [
        ["--", "rm", "-rf", "/"],  # denied
        ["--cwd", "no/such/dir", "--", "touch", "x"],  # a request only the plan finds bad
    ],
)
def test_a_call_that_does_not_run_touches_nothing(
    backend: str, home: Home, fork: Vault, cleanup: Any, args: list[str]
) -> None:
    tip = _pending(fork)
    doc = _exec(home, backend, *args)
    assert doc["result"] is None and doc["error"]["code"] in ("policy_denied", "usage"), doc
    assert doc["checkpoint"] is None and doc["commit"] is None and doc["mount"] is None
    _untouched(fork, tip)
    listed = _listed(home, backend)
    if doc["error"]["code"] == "policy_denied":
        # refused: a normal answer, and the agent's next call is coming: the mount its call
        # started is kept warm for it, ready (never one still starting)
        assert [(m["fork"], m["state"], m["kept_warm"]) for m in listed] == [("main", "mounted", True)]
        nxt = _exec(home, backend, "--", "true")
        assert nxt["success"] and nxt["mount"]["reused"] is True and nxt["mount"]["kept_warm"] is True, nxt
        assert _listed(home, backend)[0]["pid"] == listed[0]["pid"]
    else:
        # a request found bad: the mount its call started is unmounted again
        assert listed == []
        assert _until(lambda: _daemons(home) == []), _daemons(home)
        _no_leftovers(fork, mounts.default_mountpoint(home, "v", "main"))
        nxt = _exec(home, backend, "--", "true")
        assert nxt["success"] and nxt["mount"]["reused"] is False and nxt["mount"]["kept_warm"] is True, nxt


def test_a_request_bad_on_its_face_starts_nothing(
    backend: str, home: Home, fork: Vault, cleanup: Any
) -> None:
    tip = _pending(fork)
    doc = _exec(home, backend, "--timeout-ms", "0", "--", "true")
    assert doc["result"] is None and doc["error"]["code"] == "usage", doc
    assert _listed(home, backend) == [] and _daemons(home) == []
    assert not os.path.isdir(os.path.join(fork.state_dir, "mounts"))  # not even a log
    _untouched(fork, tip)


def test_a_daemon_killed_between_calls_loses_nothing(
    backend: str, home: Home, fork: Vault, cleanup: Any
) -> None:
    first = _exec(home, backend, "--", "sh", "-c", "echo one > one.txt")
    assert first["success"] and first["commit"] is not None, first
    (live,) = _listed(home, backend)
    os.kill(live["pid"], signal.SIGKILL)
    assert _until(lambda: live["pid"] not in _daemons(home))
    fork.workspace("main").write("between.txt", b"written with no mount\n")
    second = _exec(home, backend, "--", "sh", "-c", "cat one.txt between.txt > both.txt")
    assert second["success"], (second["error"], second["result"], second["mount"])
    assert (second["mount"]["reused"], second["mount"]["kept_warm"]) == (False, True), second["mount"]
    (again,) = _listed(home, backend)
    assert again["pid"] != live["pid"] and again["state"] == "mounted"
    ws = fork.workspace("main")
    assert ws.read("both.txt") == b"one\nwritten with no mount\n"
    assert ws.read("one.txt") == b"one\n"


def test_a_fork_kept_warm_is_deleted_with_its_mount_released(
    backend: str, home: Home, fork: Vault, cleanup: Any
) -> None:
    fork.create_fork("main", "agent")
    try:
        _deleted_with_its_warm_mount(home, backend, fork)
    finally:
        mounts.unmount(home, fork, "agent", lazy=True)


def _deleted_with_its_warm_mount(home: Home, backend: str, fork: Vault) -> None:
    # the mount the first call made is kept warm: nobody asked for it, so deleting the fork
    # releases it (core/vaults/warmrelease.py; a mount someone asked for refuses:
    # tests/contract/test_warm_release.py)
    doc = _avfs(
        home, backend, "--vault", "v:agent", "--json", "proxy", "exec", "--", "sh", "-c", "echo a > a.txt"
    )
    assert doc.returncode == 0, doc.stdout
    (live,) = _listed(home, backend)
    assert live["fork"] == "agent" and live["kept_warm"] is True
    r = _avfs(home, backend, "--json", "vault", "delete", "v:agent", "--force")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "agent" not in fork.fork_names()
    assert _listed(home, backend) == []
    r = _avfs(home, backend, "--vault", "v", "--json", "undo")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert fork.workspace("agent").read("a.txt") == b"a\n"  # nothing lost
