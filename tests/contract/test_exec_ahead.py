"""The first `proxy exec` on a fork that is not mounted has its sandbox made ready while
the mount comes up (proxy/ahead.py): the daemon says ``L`` (linked) and, for an overlay,
``S`` (stacked) on its readiness pipe before its ``R``, and the command starts in a
sandbox made from then on, exactly the one it would have had (bwrap's whole command line
compared), confined as any. Real mounts, real daemons, real bubblewrap; both backends."""

from __future__ import annotations

from typing import Any

import pytest

import avfs_git
from avfs_git.core.settings import Settings
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts
from avfs_git.ops.daemonstart import LINKED, STACKED
from avfs_git.proxy import confine, standby

from .backends import MOUNTS
from .test_mount_kept_warm import LONG, _env, cleanup, fork

pytestmark = pytest.mark.backends(*MOUNTS)
__all__ = ["cleanup", "fork"]  # fixtures


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


def test_the_first_call_runs_in_the_sandbox_made_ahead(
    backend: str, home: Home, fork: Vault, cleanup: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not standby.available() or confine.unavailable() is not None:
        pytest.skip("no sandbox can be kept ready here (bubblewrap and perl)")
    taken: list[bool] = []
    take = standby.Standbys.take

    def noted(self: standby.Standbys, sb: Any, wait_s: float = 0.0) -> Any:
        got = take(self, sb, wait_s) if wait_s else take(self, sb)
        taken.append(got is not None)
        return got

    monkeypatch.setattr(standby.Standbys, "take", noted)
    settings = Settings.from_environ(_env(backend, LONG), home.path)
    api_home = avfs_git.open_home(home.path, settings=settings)
    try:
        ws = api_home.vault("v").workspace("main")
        script = "echo hi > out.txt; test -w /usr && echo host || echo confined; pwd -P"
        res = avfs_git.exec_in(ws, ["sh", "-c", script])
    finally:
        api_home.close()
    assert res.success and res.mount is not None and res.result is not None, res.to_dict()
    assert (res.mount.reused, res.mount.kept_warm, res.mount.backend) == (False, True, backend)
    assert taken == [True]  # the first call's command started in the sandbox made ahead
    assert res.confinement.kind == "bwrap"
    assert res.result.stdout.splitlines() == ["confined", confine.stable_path("v")]
    assert [c.path for c in res.changes] == ["out.txt"] and res.commit is not None
    assert fork.workspace("main").read("out.txt") == b"hi\n"
