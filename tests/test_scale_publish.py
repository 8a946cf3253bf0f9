"""Publishing from many machines, the leftovers of issue 30 (docs/scale.md, docs/remotes.md):
the first push of a branch the vault never saw there is a compare-and-swap on its absence,
so two machines' first publish of one new branch cannot overwrite each other, over `git
daemon` and over `git http-backend` behind Basic auth; and a ref lock a killed push or fetch
left in the vault is taken back by the next push or fetch once its owner is provably gone.
Two avfs homes on this machine stand for two machines, as in tests/test_scale.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import RemoteRejectedError
from avfs_git.core.operations import checkpoint, remote
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault

from .conftest import git
from .test_lazy import objects
from .test_remotes import http_git as http_git
from .test_scale import _home, _seed
from .test_scale import server as server

BRANCH = "refs/heads/feature"


def _publish_first(home: Home, url: str, name: str, path: str, text: str) -> tuple[Vault, str]:
    """A lazy clone on ``home`` with a new fork ``feature`` holding ``path``; (vault, tip)."""
    v = home.clone_vault(url, "p", lazy=True)
    v.create_fork("main", "feature")
    v.workspace("feature").write(path, text.encode())
    tip = checkpoint.save(v, "feature", message=f"{name}'s feature").checkpoint.commit
    return v, tip


def _first_publish_race(url: str, served: Path, tmp_path: Path, cli: Any) -> None:
    a, b = _home(tmp_path, "a"), _home(tmp_path, "b")
    va, mine_a = _publish_first(a, url, "a", "from-a.txt", "a\n")
    vb, mine_b = _publish_first(b, url, "b", "from-b.txt", "b\n")
    res = remote.push(va, "origin", ["feature"])
    assert [(u.ref, u.old, u.new) for u in res.updates] == [(BRANCH, None, mine_a)]
    # b never saw feature there: its first publish is refused, not an overwrite, and the
    # refusal fetched nothing (a lazy vault) and moved nothing on either side
    refs_before, objects_before = git("--git-dir", vb.path, "for-each-ref"), objects(vb.path)
    with pytest.raises(RemoteRejectedError) as exc:
        remote.push(vb, "origin", ["feature"])
    d = exc.value.details
    assert d["reason"] == "non_fast_forward", d
    assert d["remote_commit"] == mine_a and d["local_commit"] == mine_b
    assert "pull" in (exc.value.hint or "")
    assert git("--git-dir", str(served), "rev-parse", BRANCH).strip() == mine_a
    assert git("--git-dir", vb.path, "for-each-ref") == refs_before
    assert objects(vb.path) == objects_before
    # the CLI says the same (exit 5, one JSON document)
    r = cli("--json", "--home", vb.home.path, "--vault", "p:feature", "push")
    doc = json.loads(r.out_bytes)
    assert r.code == 5 and doc["error"]["details"]["reason"] == "non_fast_forward", r.out
    # pull (fetch + merge), publish again: both machines' work is there
    _, merged = remote.pull(vb, "origin", "feature")
    assert merged.status == "merged"
    remote.push(vb, "origin", ["feature"])
    assert git("--git-dir", str(served), "show", "feature:from-a.txt") == "a\n"
    assert git("--git-dir", str(served), "show", "feature:from-b.txt") == "b\n"
    git("--git-dir", str(served), "fsck", "--strict")


def test_two_machines_first_publish_of_one_new_branch_cannot_overwrite_each_other(server, tmp_path, cli):
    _first_publish_race(server.url("proj.git"), server.base / "proj.git", tmp_path, cli)


def test_the_same_first_publish_race_over_http_backend(http_git, tmp_path, cli, monkeypatch):
    url, served, password = http_git
    _seed(served)
    monkeypatch.setenv("AVFS_GIT_TOKEN", password)
    monkeypatch.setenv("AVFS_GIT_USERNAME", "agent")
    _first_publish_race(url, served, tmp_path, cli)


def test_a_first_publish_that_loses_the_race_inside_the_server_is_a_moved_remote(server, tmp_path):
    """Both machines saw the branch absent; the other's creation lands between the
    server's advertisement and this push's update (made certain by a hook). The server
    refuses with ``cannot lock ref ...: reference already exists``: the remote moved
    (pull, then push again), not a server that declines."""
    url = server.url("proj.git")
    served = server.base / "proj.git"
    other = tmp_path / "other"
    git("clone", "-q", url, str(other))
    (other / "theirs.txt").write_text("theirs\n")
    git("-C", str(other), "add", "-A")
    git("-C", str(other), "commit", "-q", "-m", "theirs")
    git("-C", str(other), "push", "-q", "origin", "HEAD:refs/heads/side")
    theirs = git("-C", str(other), "rev-parse", "HEAD").strip()
    hook = served / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        f"[ -e '{tmp_path}/raced' ] && exit 0\n"
        f"touch '{tmp_path}/raced'\n"
        f"env -u GIT_QUARANTINE_PATH git update-ref {BRANCH} {theirs}\n"
    )
    hook.chmod(0o755)
    v, mine = _publish_first(_home(tmp_path, "h"), url, "h", "mine.txt", "mine\n")
    refs_before = git("--git-dir", v.path, "for-each-ref")
    with pytest.raises(RemoteRejectedError) as exc:
        remote.push(v, "origin", ["feature"])
    d = exc.value.details
    assert d["reason"] == "non_fast_forward", d
    assert d["remote_commit"] == theirs and d["local_commit"] == mine
    assert git("--git-dir", v.path, "for-each-ref") == refs_before
    assert git("--git-dir", str(served), "rev-parse", BRANCH).strip() == theirs
    _, res = remote.pull(v, "origin", "feature")
    assert res.status == "merged"
    remote.push(v, "origin", ["feature"])
    assert git("--git-dir", str(served), "show", "feature:theirs.txt") == "theirs\n"
    assert git("--git-dir", str(served), "show", "feature:mine.txt") == "mine\n"


def test_a_first_publish_of_a_branch_the_server_has_at_a_commit_the_fork_contains_goes_through(
    server, tmp_path
):
    """The lease on absence is stale, but the server's branch is a commit this fork
    already contains (its own earlier push whose tracking ref never moved, or a branch
    another machine published from the same commit): a fast-forward, pushed as one."""
    url = server.url("proj.git")
    served = server.base / "proj.git"
    v, first = _publish_first(_home(tmp_path, "h"), url, "h", "one.txt", "1\n")
    git("--git-dir", v.path, "push", "-q", url, f"{first}:{BRANCH}")
    assert git("--git-dir", v.path, "for-each-ref", "refs/remotes/origin/feature") == ""
    v.workspace("feature").write("two.txt", b"2\n")
    mine = checkpoint.save(v, "feature").checkpoint.commit
    res = remote.push(v, "origin", ["feature"])
    assert [(u.ref, u.old, u.new) for u in res.updates] == [(BRANCH, first, mine)]
    assert git("--git-dir", str(served), "rev-parse", BRANCH).strip() == mine
