"""A mount kept warm for `proxy exec` (nobody asked for it) never stands in the way of what
the person asks next: deleting the fork or its vault, an undo that deletes the fork, and
`gc` ask it to go (core/vaults/warmrelease.py, fuse/idle.py) and go on; a command or a
process in the mount keeps it (refused as for any live mount, nothing changed), and a mount
someone asked for is never asked. Real mounts, real CLI processes, both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

import avfs_git
from avfs_git.core.operations import checkpoint
from avfs_git.core.settings import Settings
from avfs_git.core.vaults import registry
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.core.vaults.warmrelease import request_path
from avfs_git.ops import mounts

from .backends import MOUNTS
from .test_mount_kept_warm import LONG, _env, _until

pytestmark = pytest.mark.backends(*MOUNTS)  # what a mount's daemon does


def _avfs(home: Home, backend: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "avfs_git", "--home", home.path, *args],
        capture_output=True,
        timeout=120,
        env=_env(backend, LONG),
    )


def _exec(home: Home, backend: str, *args: str) -> dict[str, Any]:
    r = _avfs(home, backend, "--vault", "v:agent", "--json", "proxy", "exec", *args)
    doc = json.loads(r.stdout)
    assert doc["success"], (doc, r.stderr)
    return dict(doc)


def _doc(r: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    return dict(json.loads(r.stdout))


@pytest.fixture
def agent(home: Home, vault: Vault) -> Any:
    vault.workspace("main").write("README.md", b"# hello\n")
    checkpoint.save(vault, name="base")
    vault.create_fork("main", "agent")
    yield vault
    for fork in ("agent", "main"):
        if mounts.check(vault, fork) is not None:
            mounts.unmount(home, vault, fork, lazy=True)


def _gone(vault: Vault, fork: str, mountpoint: str) -> None:
    """The mount is gone for good: no live record, no kernel mount, its daemon ended, no
    request file left behind."""
    assert registry.live_mountpoints(vault.state_dir, fork) == {}
    assert not registry.mounted_at(mountpoint)
    assert not os.path.exists(request_path(vault.state_dir, fork))


def test_deleting_the_fork_releases_its_warm_mount(backend: str, home: Home, agent: Vault) -> None:
    doc = _exec(home, backend, "--", "sh", "-c", "echo done > out.txt")
    mp = doc["mount"]["mountpoint"]
    assert doc["mount"]["kept_warm"] is True
    r = _avfs(home, backend, "--json", "vault", "delete", "v:agent", "--force")
    assert r.returncode == 0, (r.stdout, r.stderr)
    _gone(agent, "agent", mp)
    assert not agent.has_fork("agent")
    with open(registry.log_path(agent.state_dir, "agent"), "rb") as fh:
        assert b"released on request" in fh.read()
    # nothing lost: undo brings the fork back with what the command committed
    r = _avfs(home, backend, "--vault", "v", "--json", "undo")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert agent.workspace("agent").read("out.txt") == b"done\n"


def test_the_readme_loop_discards_a_fork_exec_in_kept_warm(backend: str, home: Home, agent: Vault) -> None:
    # README's Python example: exec_in mounts the fork and keeps it warm; discarding the
    # fork right after must work
    settings = Settings.from_environ(_env(backend, LONG), home.path)
    api_home = avfs_git.open_home(home.path, settings=settings)
    try:
        vault = api_home.vault("v")
        res = avfs_git.exec_in(vault.workspace("agent"), ["sh", "-c", "echo x > a.txt"])
        assert res.success and res.mount is not None and res.mount.kept_warm, res.to_dict()
        vault.delete_fork("agent")
        assert not vault.has_fork("agent")
        _gone(vault, "agent", res.mount.mountpoint)
    finally:
        api_home.close()


def test_a_process_in_the_warm_mount_keeps_it_and_the_delete_changes_nothing(
    backend: str, home: Home, agent: Vault
) -> None:
    doc = _exec(home, backend, "--", "sh", "-c", "echo keep > k.txt")
    mp = doc["mount"]["mountpoint"]
    tip = agent.workspace("agent").tip()
    holder = subprocess.Popen(["sleep", "600"], cwd=mp)
    try:
        r = _avfs(home, backend, "--json", "vault", "delete", "v:agent", "--force")
        assert r.returncode != 0 and _doc(r)["error"]["code"] == "fork_mounted", r.stdout
        assert agent.has_fork("agent") and agent.workspace("agent").tip() == tip
        assert registry.live_mountpoints(agent.state_dir, "agent") == {"agent": mp}
        # the request was answered (taken away), so it cannot fire later by surprise
        assert not os.path.exists(request_path(agent.state_dir, "agent"))
        r = _avfs(home, backend, "--json", "gc")
        assert r.returncode != 0 and _doc(r)["error"]["code"] == "busy", r.stdout
    finally:
        holder.kill()
        holder.wait()
    # the holder gone, the mount stays kept warm (its timeout is 600 s): the refused
    # request left nothing behind
    info = mounts.check(agent, "agent")
    assert info is not None and info.kept_warm
    assert agent.workspace("agent").read("k.txt") == b"keep\n"


def test_a_mount_someone_asked_for_is_never_asked(backend: str, home: Home, agent: Vault) -> None:
    r = _avfs(home, backend, "--json", "mount", "v:agent")
    assert r.returncode == 0, r.stderr
    mp = _doc(r)["mount"]["mountpoint"]
    r = _avfs(home, backend, "--json", "vault", "delete", "v:agent", "--force")
    assert r.returncode != 0 and _doc(r)["error"]["code"] == "fork_mounted", r.stdout
    assert agent.has_fork("agent")
    assert registry.live_mountpoints(agent.state_dir, "agent") == {"agent": mp}
    assert not os.path.exists(request_path(agent.state_dir, "agent"))


def test_gc_and_vault_delete_release_warm_mounts(backend: str, home: Home, agent: Vault) -> None:
    doc = _exec(home, backend, "--", "true")
    mp = doc["mount"]["mountpoint"]
    r = _avfs(home, backend, "--json", "gc")
    assert r.returncode == 0, (r.stdout, r.stderr)
    _gone(agent, "agent", mp)
    doc = _exec(home, backend, "--", "true")
    assert doc["mount"]["reused"] is False
    r = _avfs(home, backend, "--json", "vault", "delete", "v", "--force")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert not registry.mounted_at(doc["mount"]["mountpoint"])
    r = _avfs(home, backend, "--json", "vault", "restore", "v")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert home.vault("v").has_fork("agent")


def test_an_undo_that_deletes_the_fork_releases_it(backend: str, home: Home, vault: Vault) -> None:
    vault.workspace("main").write("README.md", b"# hello\n")
    checkpoint.save(vault, name="base")
    r = _avfs(home, backend, "--json", "vault", "fork", "v:main", "fresh")
    assert r.returncode == 0, r.stderr
    r = _avfs(home, backend, "--vault", "v:fresh", "--json", "proxy", "exec", "--", "true")
    mp = _doc(r)["mount"]["mountpoint"]
    # the last operation is the exec's (nothing changed: none) or the fork's creation; undo
    # until the fork is gone
    for _ in range(3):
        if not vault.has_fork("fresh"):
            break
        r = _avfs(home, backend, "--vault", "v", "--json", "undo")
        assert r.returncode == 0, (r.stdout, r.stderr)
    assert not vault.has_fork("fresh")
    _gone(vault, "fresh", mp)
    assert _until(lambda: not registry.mounted_at(mp))
