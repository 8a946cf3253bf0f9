"""git state a confined command left in its fork's worktree git dir, kept aside in
``<vault>/avfs/gitstate/`` (core/vaults/keptstate.py, docs/proxy.md "git's state the
command left"): it goes with its fork when the fork is deleted (set aside, brought back by
``avfs undo``), gc removes it past the recovery retention, the vault's deletion takes it
to the trash, and ``avfs stats`` shows it. Real vaults, real mounts, real ``proxy exec``
runs of the CLI that leave it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults import keptstate
from avfs_git.mount.ownfiles import worktree_dir
from avfs_git.ops import maintenance as mnt
from avfs_git.ops import mounts
from avfs_git.ops.maintenance import DAY_S

from .test_confine import _need_bwrap
from .test_json_schemas import validate


def _avfs(fork: str, *args: str) -> dict[str, Any]:
    r = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--vault", f"v:{fork}", "--json", *args],
        capture_output=True,
        timeout=120,
    )
    doc = json.loads(r.stdout)
    validate(doc)
    assert doc["kind"] != "error", (args, doc)
    return dict(doc)


def _leave_state(home: Any, vault: Any, fork: str) -> list[str]:
    """A real confined command in ``fork``'s mount that leaves a rebase and a cherry-pick
    unfinished in its worktree git dir (written as git writes them); the names the call
    took out."""
    _need_bwrap()
    info = mounts.mount(home, vault, fork, None)
    try:
        wt = worktree_dir(vault, fork)
        with open(os.path.join(info.mountpoint, "leave.sh"), "w") as fh:
            fh.write(
                f"T=$(git rev-parse HEAD)\nmkdir -p {wt}/rebase-merge {wt}/sequencer/sub\n"
                f"echo 'exec true' > {wt}/rebase-merge/git-rebase-todo\necho $T > {wt}/rebase-merge/onto\n"
                f"echo $T > {wt}/sequencer/head\nchmod 500 {wt}/sequencer/sub\n"
            )
        doc = _avfs(fork, "proxy", "exec", "--", "sh", "leave.sh")
        assert doc["exit_code"] == 0, doc["result"]
        return sorted(r["ref"] for r in doc["refs_refused"] if r["ref"] in ("rebase-merge", "sequencer"))
    finally:
        mounts.unmount(home, vault, fork)


@pytest.fixture
def forked(home: Any, vault: Any) -> Any:
    w = vault.workspace("main")
    w.write("README", b"the original\n")
    checkpoint.save(vault, name="base")
    vault.fork("main", "f")
    vault.fork("main", "g/h")  # (a name with a slash: one file name in gitstate/)
    return vault


def _kept(fork: str) -> list[tuple[str, bool]]:
    doc = _avfs(fork, "stats")
    return sorted((k["name"], k["deleted"] is not None) for k in doc["kept_git_state"] if k["fork"] == fork)


def test_a_deleted_fork_s_kept_state_is_set_aside_and_comes_back_with_undo(home, forked):
    vault = forked
    assert _leave_state(home, vault, "g/h") == ["rebase-merge", "sequencer"]
    kept_dir = keptstate.fork_dir(vault.state_dir, "g/h")
    assert sorted(e.rpartition("-")[0] for e in os.listdir(kept_dir)) == ["rebase-merge", "sequencer"]
    assert _kept("g/h") == [("rebase-merge", False), ("sequencer", False)]
    with open(os.path.join(kept_dir, sorted(os.listdir(kept_dir))[0], "git-rebase-todo")) as fh:
        todo = fh.read()

    deleted = _avfs("main", "vault", "delete", "--force", "v:g/h")
    assert not os.path.lexists(kept_dir)  # a fork of the same name made later starts with none
    doc = _avfs("main", "stats")
    gone = [k for k in doc["kept_git_state"] if k["fork"] == "g/h"]
    assert [(k["name"], k["deleted_by"]) for k in gone] == [
        ("rebase-merge", deleted["op_id"]),
        ("sequencer", deleted["op_id"]),
    ], (deleted, gone)
    assert all(k["deleted"] and os.path.isdir(k["path"]) for k in gone)

    undone = _avfs("main", "undo", "--op", str(deleted["op_id"]))
    assert vault.has_fork("g/h"), undone
    assert _kept("g/h") == [("rebase-merge", False), ("sequencer", False)]
    with open(os.path.join(kept_dir, sorted(os.listdir(kept_dir))[0], "git-rebase-todo")) as fh:
        assert fh.read() == todo
    assert os.listdir(os.path.join(vault.state_dir, keptstate.ROOT, keptstate.DELETED)) == []

    _avfs("g/h", "redo")  # deleted again: set aside again
    assert not vault.has_fork("g/h") and not os.path.lexists(kept_dir)
    assert [d for _, d in _kept_all(vault)] == [True, True]


def _kept_all(vault: Any) -> list[tuple[str, bool]]:
    return sorted((k.name, k.deleted_ns is not None) for k in keptstate.entries(vault.state_dir))


def test_gc_removes_kept_state_past_the_recovery_retention(home, forked):
    """A live fork's entry goes ``recovery_days`` after it was kept; a deleted fork's,
    that long after the deletion (as its recovery ref, which undo needs, does)."""
    vault = forked
    assert _leave_state(home, vault, "f") == ["rebase-merge", "sequencer"]
    assert _leave_state(home, vault, "g/h") == ["rebase-merge", "sequencer"]
    long_ago = time.time_ns() - int(25 * DAY_S * 1e9)
    for fork in ("f", "g/h"):  # kept 25 days ago
        d = keptstate.fork_dir(vault.state_dir, fork)
        for e in os.listdir(d):
            os.rename(os.path.join(d, e), os.path.join(d, f"{e.rpartition('-')[0]}-{long_ago}"))
    vault.delete_fork("g/h")  # now
    now = time.time()

    dry = mnt.gc(vault, dry_run=True, now=now + 10 * DAY_S)
    assert sorted(os.path.basename(p).rpartition("-")[0] for p in dry.expired_git_state) == [
        "rebase-merge",
        "sequencer",
    ]
    assert len(keptstate.entries(vault.state_dir)) == 4  # (a dry run removes nothing)
    res = mnt.gc(vault, now=now + 10 * DAY_S)
    assert res.expired_git_state == dry.expired_git_state
    assert all(keptstate.fork_dir(vault.state_dir, "f") in p for p in res.expired_git_state)
    assert _kept_all(vault) == [("rebase-merge", True), ("sequencer", True)]  # deleted 10 days ago
    validate({"schema_version": 1, "kind": "gc", "dry_run": False, "vaults": [res.to_json()],
              "deleted_vaults_expired": []})  # fmt: skip

    res = mnt.gc(vault, now=now + 31 * DAY_S)
    assert len(res.expired_git_state) == 2
    assert keptstate.entries(vault.state_dir) == []
    assert os.listdir(os.path.join(vault.state_dir, keptstate.ROOT, keptstate.DELETED)) == []


def test_the_vault_s_deletion_takes_its_kept_state_to_the_trash(home, forked, tmp_path: Path):
    vault = forked
    assert _leave_state(home, vault, "f") == ["rebase-merge", "sequencer"]
    trash = home.delete_vault("v", force=True)
    rel = os.path.relpath(keptstate.fork_dir(vault.state_dir, "f"), vault.path)
    assert len(os.listdir(os.path.join(trash, rel))) == 2
    assert not os.path.exists(vault.path)
    restored = home.restore_vault("v")
    assert _kept_all(restored) == [("rebase-merge", False), ("sequencer", False)]
