"""Publishing from many machines, the leftovers of issue 30 (docs/scale.md, docs/remotes.md):
the first push of a branch the vault never saw there is a compare-and-swap on its absence,
so two machines' first publish of one new branch cannot overwrite each other, over `git
daemon`, over `git http-backend` behind Basic auth and over sshd; and a ref lock a killed push or fetch
left in the vault is taken back by the next push or fetch once its owner is provably gone.
Two avfs homes on this machine stand for two machines, as in tests/test_scale.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import RemoteError, RemoteRejectedError
from avfs_git.core.operations import checkpoint, remote
from avfs_git.core.store import transferlock
from avfs_git.core.store.locks import flock_held
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault

from .conftest import git
from .test_lazy import objects
from .test_lazy_transports import SSH_OPTS
from .test_remotes import http_git as http_git
from .test_remotes import sshd as sshd
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


def test_the_same_first_publish_race_over_ssh(sshd, tmp_path, cli, monkeypatch):
    url, served, key = sshd
    _seed(served)
    monkeypatch.setenv("GIT_SSH_COMMAND", f"ssh -i {key} {SSH_OPTS}")
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


# -- a ref lock a killed push or fetch left -------------------------------------------------


def _leave_lock(v: Vault, ref: str = "refs/remotes/origin/main") -> Path:
    """What a push or fetch killed while git moved ``ref`` leaves: git's lock file beside
    it, holding the id git was writing."""
    lock = Path(v.path) / f"{ref}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(git("--git-dir", v.path, "rev-parse", ref).strip() + "\n")
    return lock


def _other_publishes(url: str, tmp_path: Path) -> str:
    """Another machine publishes a commit on main (plain git); its id."""
    other = tmp_path / "other"
    git("clone", "-q", url, str(other))
    (other / "theirs.txt").write_text("theirs\n")
    git("-C", str(other), "add", "-A")
    git("-C", str(other), "commit", "-q", "-m", "theirs")
    git("-C", str(other), "push", "-q", "origin", "main")
    return git("-C", str(other), "rev-parse", "HEAD").strip()


def _hold_transfer_lock(v: Vault) -> subprocess.Popen[bytes]:
    """A process holding the vault's transfer lock shared, as a running push's git does
    (it prints a line once it holds it)."""
    code = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({transferlock.lock_path(v.state_dir)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_SH)\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    os.makedirs(os.path.dirname(transferlock.lock_path(v.state_dir)), exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"held\n"
    return proc


def test_the_next_fetch_and_push_take_back_a_lock_a_killed_transfer_left(server, tmp_path, cli):
    url = server.url("proj.git")
    served = server.base / "proj.git"
    h = _home(tmp_path, "h")
    v = h.clone_vault(url, "p", lazy=True)
    theirs = _other_publishes(url, tmp_path)  # so the fetch has a tracking ref to move
    lock = _leave_lock(v)
    r = cli("--json", "--home", h.path, "--vault", "p", "fetch")
    doc = json.loads(r.out_bytes)
    assert r.code == 0, r.out
    assert doc["result"]["warnings"] and "refs/remotes/origin/main.lock" in doc["result"]["warnings"][0]
    assert not lock.exists()
    assert git("--git-dir", v.path, "rev-parse", "refs/remotes/origin/main").strip() == theirs
    # a push: the same, and its tracking ref moves with it
    _, res = remote.pull(v, "origin", "main")
    assert res.status == "fast_forward"  # type: ignore[attr-defined]
    v.workspace("main").write("mine.txt", b"mine\n")
    mine = checkpoint.save(v, "main").checkpoint.commit  # type: ignore[union-attr]
    lock = _leave_lock(v)
    pushed = remote.push(v, "origin", ["main"])
    assert "refs/remotes/origin/main.lock" in pushed.warnings[0]
    assert not lock.exists()
    assert git("--git-dir", str(served), "rev-parse", "main").strip() == mine
    assert git("--git-dir", v.path, "rev-parse", "refs/remotes/origin/main").strip() == mine
    # the transfer lock's own file is no leftover: doctor finds nothing, prune keeps it
    doc = json.loads(cli("--json", "--home", h.path, "doctor").out_bytes)
    assert doc["ok"] and not [f for f in doc["findings"] if "lock" in f["code"]], doc
    assert Path(transferlock.lock_path(v.state_dir)).exists()


def test_a_lock_of_a_transfer_still_running_is_left_alone(server, tmp_path):
    """While a push or fetch of the vault runs (its git holds the transfer lock), a lock
    file under the remote's tracking refs may be its own: the next fetch leaves it, fails
    clearly and changes nothing; once that transfer is gone the same fetch takes it back."""
    url = server.url("proj.git")
    v = _home(tmp_path, "h").clone_vault(url, "p", lazy=True)
    theirs = _other_publishes(url, tmp_path)
    lock = _leave_lock(v)
    holder = _hold_transfer_lock(v)
    try:
        refs_before = git("--git-dir", v.path, "for-each-ref")
        with pytest.raises(RemoteError) as exc:
            remote.fetch(v, "origin")
        assert exc.value.exit_code == 5 and "main.lock" in exc.value.message
        assert lock.exists() and git("--git-dir", v.path, "for-each-ref") == refs_before
    finally:
        holder.kill()
        holder.communicate()
    res = remote.fetch(v, "origin")
    assert "main.lock" in res.warnings[0] and not lock.exists()
    assert git("--git-dir", v.path, "rev-parse", "refs/remotes/origin/main").strip() == theirs


def test_git_keeps_the_transfer_lock_when_the_avfs_that_started_it_is_killed(server, tmp_path):
    """`avfs push` killed while its git push still runs (the server is slow: a hook): git
    goes on, and holds the transfer lock until it ends, so a fetch meanwhile leaves the
    lock files alone; after git ends, the next fetch takes back what was left (and git's
    push, finished without avfs, is caught up with: the tracking ref moves to it)."""
    url = server.url("proj.git")
    served = server.base / "proj.git"
    h = _home(tmp_path, "h")
    v = h.clone_vault(url, "p", lazy=True)
    v.workspace("main").write("mine.txt", b"mine\n")
    mine = checkpoint.save(v, "main").checkpoint.commit  # type: ignore[union-attr]
    hook = served / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\ntouch '{tmp_path}/receiving'\nsleep 6\n")
    hook.chmod(0o755)
    env = {**os.environ, "AVFS_HOME": h.path, "AVFS_SERVER": "off", "AVFS_PROGRESS": "never"}
    avfs = subprocess.Popen([sys.executable, "-m", "avfs_git", "--vault", "p", "push"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (tmp_path / "receiving").exists():
        assert time.monotonic() < deadline and avfs.poll() is None
        time.sleep(0.02)
    avfs.kill()  # avfs alone: its git push goes on
    avfs.wait()
    assert flock_held(transferlock.lock_path(v.state_dir))  # by the git avfs started
    lock = _leave_lock(v)  # (one the transfer could own)
    meanwhile = remote.fetch(v, "origin")  # (the server has nothing new: no ref to lock)
    assert meanwhile.warnings == () and lock.exists()
    deadline = time.monotonic() + 60
    while flock_held(transferlock.lock_path(v.state_dir)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert git("--git-dir", str(served), "rev-parse", "main").strip() == mine  # git finished it
    res = remote.fetch(v, "origin")
    assert "main.lock" in res.warnings[0] and not lock.exists()
    assert git("--git-dir", v.path, "rev-parse", "refs/remotes/origin/main").strip() == mine


def test_a_branch_deleted_on_the_server_since_this_vault_saw_it_is_published_again(server, tmp_path):
    """The lease expects what this vault last saw, the server has nothing: creating the
    branch again overwrites nothing (a plain push would), so the lease is renewed on the
    branch's absence and the push goes through, fork tip or not moved since."""
    url = server.url("proj.git")
    served = server.base / "proj.git"
    v, first = _publish_first(_home(tmp_path, "h"), url, "h", "one.txt", "1\n")
    remote.push(v, "origin", ["feature"])
    for more in (False, True):
        git("--git-dir", str(served), "update-ref", "-d", BRANCH)
        if more:
            v.workspace("feature").write("two.txt", b"2\n")
            first = checkpoint.save(v, "feature").checkpoint.commit  # type: ignore[union-attr]
        res = remote.push(v, "origin", ["feature"])
        assert [(u.ref, u.old, u.new) for u in res.updates] == [(BRANCH, None, first)]
        assert git("--git-dir", str(served), "rev-parse", BRANCH).strip() == first


def test_a_main_force_pushed_to_a_new_root_is_pulled_with_allow_unrelated(server, tmp_path, cli):
    """Someone replaced the server's main with a history of its own (a force push of a new
    root). A machine's publish is refused (non_fast_forward, nothing changed), its pull is
    refused as unrelated, naming the remote branch, with a hint the pull command takes:
    `avfs pull --allow-unrelated` (it had no such option: the hint named one only `merge`
    has, and a lazy machine had no way to take the new history in from the CLI). Then both
    histories are on the server, nothing lost."""
    url = server.url("proj.git")
    served = server.base / "proj.git"
    h = _home(tmp_path, "h")
    v = h.clone_vault(url, "p", lazy=True)
    v.workspace("main").write("mine.txt", b"mine\n")
    mine = checkpoint.save(v, "main").checkpoint.commit
    other = tmp_path / "other"
    git("init", "-q", "-b", "main", str(other))
    (other / "new.txt").write_text("a new root\n")
    git("-C", str(other), "add", "-A")
    git("-C", str(other), "commit", "-q", "-m", "new root")
    git("-C", str(other), "push", "-q", "-f", url, "main")
    theirs = git("-C", str(other), "rev-parse", "HEAD").strip()
    args = ("--json", "--home", h.path, "--vault", "p:main")
    r = cli(*args, "push")
    assert r.code == 5 and json.loads(r.out_bytes)["error"]["details"]["reason"] == "non_fast_forward", r.out
    r = cli(*args, "pull")
    err = json.loads(r.out_bytes)["error"]
    assert r.code == 2 and err["code"] == "unrelated_histories", r.out
    assert "origin/main (a remote branch)" in err["message"] and "--allow-unrelated" in (err["hint"] or "")
    assert v.workspace("main").tip() == mine  # nothing moved
    r = cli(*args, "pull", "--allow-unrelated")
    assert r.code == 0 and json.loads(r.out_bytes)["merge"]["status"] == "merged", r.out
    r = cli(*args, "push")
    assert r.code == 0, r.out
    for commit in (mine, theirs):
        git("--git-dir", str(served), "merge-base", "--is-ancestor", commit, "main")
    assert git("--git-dir", str(served), "show", "main:new.txt") == "a new root\n"
    assert git("--git-dir", str(served), "show", "main:mine.txt") == "mine\n"
    git("--git-dir", str(served), "fsck", "--strict")
