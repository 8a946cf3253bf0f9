"""Many machines, one vault (docs/scale.md): two avfs homes on this machine stand for two
machines; each lazily clones the same vault from one real git server on 127.0.0.1
(`git daemon` with receive-pack, or `git http-backend` behind Basic auth) and runs an agent
process (tests/scaleagent.py) through rounds of work, merge into ``main`` and publish. The
server takes a push only as a fast-forward, so a machine that published second is refused,
pulls (fetch + merge, conflicts resolved as data) and pushes again; at the end the
server's ``main`` holds every change every agent published, and `git fsck` is clean on the
server and on both vaults. Then: a machine killed mid-round while the other goes on, and a
server that dies and comes back."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import RemoteError, RemoteRejectedError
from avfs_git.core.operations import checkpoint, merge, remote
from avfs_git.core.settings import Settings
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import mounts
from avfs_git.ops.maintenance.common import STALE_GIT_LOCK_S

from .conftest import AUTHOR, git
from .scaleagent import SHARED_LINES, slot
from .test_fuse import require_fuse
from .test_lazy import Server, missing, objects
from .test_remotes import _stop_daemon
from .test_remotes import http_git as http_git

AGENT = Path(__file__).with_name("scaleagent.py")
PKG = Path(__file__).resolve().parents[1] / "avfs_git"
LAZY_CONFIG = ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant", "transfer.advertiseObjectInfo")


def _seed(repo: Path) -> None:
    """The vault every machine clones: real files (avfs's core sources), ``shared.txt``
    (one line per agent, far apart) and ``contested.txt`` (every agent writes its top)."""
    work = repo.parent / "seed"
    git("init", "-q", "-b", "main", str(work))
    for src in sorted((PKG / "core").rglob("*.py")):
        dst = work / src.relative_to(PKG.parent)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    (work / "shared.txt").write_text("".join(f"line {i}\n" for i in range(SHARED_LINES)))
    (work / "contested.txt").write_text("seed\n")
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "commit", "-q", "-m", "seed")
    git("push", "-q", str(repo), "main:main", cwd=work)
    for key in LAZY_CONFIG:
        git("--git-dir", str(repo), "config", key, "true")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """`git daemon` (receive-pack enabled: machines push to it) serving ``proj.git``."""
    base = tmp_path / "daemon"
    base.mkdir()
    git("init", "-q", "--bare", str(base / "proj.git"))
    _seed(base / "proj.git")
    with Server.serving(base) as srv:
        yield srv


def _start(tmp_path: Path, url: str, me: int, rounds: int, *, start: int = 0, mount: bool = False,
           race: bool = False, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
    """Machine ``me``: its own avfs home, its agent in its own process group (so that
    killing the machine kills every process it started)."""
    args = [sys.executable, str(AGENT), str(tmp_path / f"home{me}"), url, str(me), str(rounds),
            str(tmp_path / f"log{me}.jsonl"), "--start", str(start)]  # fmt: skip
    if race:  # both publish each round at the same moment (scaleagent.Agent.wait_for_the_others)
        (tmp_path / "barrier").mkdir(exist_ok=True)
        args += ["--barrier", str(tmp_path / "barrier")]
    if mount:
        mp = tmp_path / f"mnt{me}"
        mp.mkdir(exist_ok=True)
        args += ["--mount", str(mp)]
    return subprocess.Popen(
        args,
        env={**os.environ, **(env or {}), "AVFS_HOME": str(tmp_path / f"home{me}")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait(proc: subprocess.Popen[bytes], timeout: float = 600) -> None:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out.decode(errors="replace")[-4000:]


def _events(tmp_path: Path, me: int) -> list[dict[str, object]]:
    path = tmp_path / f"log{me}.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(ln) for ln in lines if ln.endswith("}")]  # (a line cut by a kill: not done)


def _show(served: Path, path: str) -> str:
    return git("--git-dir", str(served), "show", f"main:{path}")


def _nothing_lost(served: Path, tmp_path: Path, agents: dict[int, int]) -> None:
    """The server's main holds every round each agent published (``agents``: agent ->
    rounds it published): its own file, its line of shared.txt as its last round left it,
    its lines in contested.txt; and every main any agent published is in main's history."""
    contested = set(_show(served, "contested.txt").splitlines())
    shared = _show(served, "shared.txt").splitlines()
    assert len(shared) == SHARED_LINES
    for me, rounds in agents.items():
        for r in range(rounds):
            assert _show(served, f"agents/{me}/{r}.txt") == f"agent {me} round {r}\n"
            assert f"{me}:{r}" in contested, (me, r, sorted(contested))
        assert shared[slot(me)] == f"line of agent {me}: round {rounds - 1}"
        published = [e["commit"] for e in _events(tmp_path, me) if e["event"] == "published"]
        assert len(published) >= rounds
        # its fork, published as a branch, is where it last pushed it: its last published
        # one, or one it was pushing when it was killed (the push may have reached the
        # server before the log did, in its last round, which the machine back does not redo)
        pushes = [e for e in _events(tmp_path, me) if e["event"] in ("fork_publishing", "fork_published")]
        done = max(i for i, e in enumerate(pushes) if e["event"] == "fork_published")
        where = {pushes[done]["commit"]} | {e["commit"] for e in pushes[done + 1 :]}
        assert git("--git-dir", str(served), "rev-parse", f"refs/heads/work-{me}").strip() in where
        for commit in published:
            git("--git-dir", str(served), "merge-base", "--is-ancestor", str(commit), "main")
    assert "seed" in contested
    assert not any(ln.startswith(("<<<<<<<", "=======", ">>>>>>>")) for ln in contested)
    git("--git-dir", str(served), "fsck", "--strict")
    for me in agents:
        vault = tmp_path / f"home{me}" / "vaults" / "p.git"
        git("--git-dir", str(vault), "fsck", "--connectivity-only")
        assert missing(str(vault)) > 0  # still lazy: the files nobody read stayed on the server


def _rejections(tmp_path: Path, agents: list[int]) -> int:
    return sum(1 for me in agents for e in _events(tmp_path, me) if e["event"] == "rejected")


def test_two_machines_publish_in_parallel_through_git_daemon_and_nothing_is_lost(server, tmp_path):
    """Agent 0 works through a real mount of its fork, agent 1 through the API; four rounds
    each, at the same time, against one `git daemon`."""
    require_fuse()
    rounds = 4
    procs = [_start(tmp_path, server.url("proj.git"), 0, rounds, mount=True, race=True),
             _start(tmp_path, server.url("proj.git"), 1, rounds, race=True)]  # fmt: skip
    for p in procs:
        _wait(p)
    _nothing_lost(server.base / "proj.git", tmp_path, {0: rounds, 1: rounds})
    # they raced every round: one of the two publishes was refused, then pulled and redone
    assert _rejections(tmp_path, [0, 1]) >= rounds


def test_two_machines_publish_in_parallel_through_http_backend(tmp_path, http_git):
    """The same over smart HTTP with Basic auth: the token comes from the environment of
    each machine and is never written into either vault."""
    url, served, password = http_git
    _seed(served)
    env = {"AVFS_GIT_TOKEN": password, "AVFS_GIT_USERNAME": "agent"}
    rounds = 3
    procs = [_start(tmp_path, url, me, rounds, env=env, race=True) for me in (0, 1)]
    for p in procs:
        _wait(p)
    _nothing_lost(served, tmp_path, {0: rounds, 1: rounds})
    assert _rejections(tmp_path, [0, 1]) >= rounds
    for me in (0, 1):
        for root, _dirs, files in os.walk(tmp_path / f"home{me}" / "vaults"):
            for f in files:
                assert password.encode() not in (Path(root) / f).read_bytes(), f


def _come_back(vault: Path, cli: Any) -> None:
    """What a machine does when it comes back: `avfs doctor --repair`. A process killed in
    the middle of a ref update leaves git's lock file, and that ref refuses to move until
    the lock is removed; doctor takes a git lock file older than ten minutes for one a kill
    left (docs/maintenance.md), so the machine is taken to come back that much later."""
    for lock in vault.rglob("*.lock"):
        if "avfs" not in lock.relative_to(vault).parts:
            old = time.time() - STALE_GIT_LOCK_S - 60
            os.utime(lock, (old, old))
    r = cli("--json", "--home", str(vault.parent.parent), "doctor", "--repair")
    doc = json.loads(r.out_bytes)
    assert r.code == 0 and doc["ok"], r.out
    assert not [p for p in vault.rglob("*.lock") if "avfs" not in p.relative_to(vault).parts]


def test_a_machine_killed_mid_round_loses_nothing_it_published_and_the_other_goes_on(server, tmp_path, cli):
    url = server.url("proj.git")
    rounds = 5
    victim = _start(tmp_path, url, 0, rounds)
    other = _start(tmp_path, url, 1, rounds)
    # the victim dies in the middle of its work: after its first publish, at its next step
    deadline = time.monotonic() + 300
    while not any(e["event"] == "published" for e in _events(tmp_path, 0)):
        assert victim.poll() is None and time.monotonic() < deadline, victim.communicate()[0].decode()
        time.sleep(0.02)
    # then at some moment of its next round (a checkpoint, a merge, a push, a pull, a
    # conflict being resolved: every one must be safe to die in)
    delay = random.uniform(0, 0.6)
    time.sleep(delay)
    os.killpg(victim.pid, signal.SIGKILL)  # the machine and every process it started
    victim.communicate(timeout=10)  # (and its pipe closed)
    _wait(other)  # the other machine finished every round on its own
    published = {int(str(e["round"])) for e in _events(tmp_path, 0) if e["event"] == "published"}
    assert published and published == set(range(max(published) + 1))
    _nothing_lost(server.base / "proj.git", tmp_path, {1: rounds})
    for r in published:  # what the dead machine published before it died is there
        assert _show(server.base / "proj.git", f"agents/0/{r}.txt") == f"agent 0 round {r}\n"
    # the machine comes back: the same home opens, and its agent finishes from where it was
    vault = tmp_path / "home0" / "vaults" / "p.git"
    git("--git-dir", str(vault), "fsck", "--connectivity-only")
    _come_back(vault, cli)
    _wait(_start(tmp_path, url, 0, rounds, start=max(published) + 1))
    _nothing_lost(server.base / "proj.git", tmp_path, {0: rounds, 1: rounds})


def test_the_server_dies_while_both_machines_work_and_comes_back(server, tmp_path):
    """The server is killed (its whole process group: receive-pack and upload-pack die with
    it) in the middle of the run, down for two seconds, then back on the same port: the
    agents' pushes, pulls and reads fail clearly meanwhile (they wait and retry), and at
    the end nothing any of them published is lost."""
    url = server.url("proj.git")
    rounds = 4
    procs = [_start(tmp_path, url, me, rounds) for me in (0, 1)]
    deadline = time.monotonic() + 300
    while sum(1 for me in (0, 1) for e in _events(tmp_path, me) if e["event"] == "published") < 2:
        assert all(p.poll() is None for p in procs) and time.monotonic() < deadline
        time.sleep(0.02)
    assert server.proc is not None
    _stop_daemon(server.proc, signal.SIGKILL)
    server.proc = None
    time.sleep(2)
    server.start()
    for p in procs:
        _wait(p)
    _nothing_lost(server.base / "proj.git", tmp_path, {0: rounds, 1: rounds})
    failed = [
        e for me in (0, 1) for e in _events(tmp_path, me) if e["event"] in ("remote_error", "read_failed")
    ]
    assert failed, "no agent met the server down"
    assert {e.get("code") for e in failed if e["event"] == "remote_error"} <= {
        "remote_failed",
        "blob_not_local",
    }


def _home(tmp_path: Path, name: str) -> Home:
    return Home(
        str(tmp_path / name), author=AUTHOR, mounts=MOUNT_SIDE, settings=Settings.from_environ(None, None)
    )


def test_a_rejected_publish_names_the_remote_head_changes_nothing_and_pull_fetches_only_what_merge_needs(
    server, tmp_path, cli
):
    url = server.url("proj.git")
    served = server.base / "proj.git"
    a, b = _home(tmp_path, "a"), _home(tmp_path, "b")
    va, vb = a.clone_vault(url, "p", lazy=True), b.clone_vault(url, "p", lazy=True)
    va.workspace("main").write("from-a.txt", b"a\n")
    checkpoint.save(va, "main")
    remote.push(va, "origin", ["main"])
    theirs = git("--git-dir", str(served), "rev-parse", "main").strip()
    vb.create_fork("main", "task")
    vb.workspace("task").write("from-b.txt", b"b\n")
    checkpoint.save(vb, "task")
    assert merge.merge(vb, "task", "main").status == "fast_forward"
    mine = vb.workspace("main").tip()
    tracking = git("--git-dir", vb.path, "rev-parse", "refs/remotes/origin/main").strip()
    refs_before = git("--git-dir", vb.path, "for-each-ref")
    objects_before = objects(vb.path)
    with pytest.raises(RemoteRejectedError) as exc:
        remote.push(vb, "origin", ["main"])
    d = exc.value.details
    assert exc.value.code == "remote_rejected" and d["reason"] == "non_fast_forward"
    assert d["remote_commit"] == theirs and d["local_commit"] == mine
    # nothing moved: here (not even the remote-tracking ref) or there
    assert git("--git-dir", vb.path, "for-each-ref") == refs_before
    assert git("--git-dir", vb.path, "rev-parse", "refs/remotes/origin/main").strip() == tracking
    assert git("--git-dir", str(served), "rev-parse", "main").strip() == theirs
    assert objects(vb.path) == objects_before  # and the refusal fetched nothing
    r = cli("--json", "--home", b.path, "--vault", "p:main", "push")
    doc = json.loads(r.out_bytes)
    assert r.code == 5 and doc["error"]["code"] == "remote_rejected"
    assert doc["error"]["details"]["remote_commit"] == theirs
    # pull on a lazy vault: the fetch brings commits and trees (no blob), the merge of two
    # sides that changed different files reads no file
    before, promised = objects(vb.path), missing(vb.path)
    fetched_before = vb.store.promisor.fetched
    r = cli("--json", "--home", b.path, "--vault", "p:main", "pull")
    assert r.code == 0, r.out
    assert json.loads(r.out_bytes)["merge"]["status"] == "merged"
    vb.close()
    vb = b.vault("p")
    assert missing(vb.path) == promised + 1  # from-a.txt: promised, not fetched
    assert objects(vb.path) == before + 2 + 1 + 1  # a's commit and root tree; the merge's commit and tree
    assert vb.store.promisor.fetched == fetched_before == 0
    r = cli("--json", "--home", b.path, "--vault", "p:main", "push")
    assert r.code == 0, r.out
    assert git("--git-dir", str(served), "rev-parse", "main").strip() == vb.workspace("main").tip()
    assert git("--git-dir", str(served), "show", "main:from-a.txt") == "a\n"
    assert git("--git-dir", str(served), "show", "main:from-b.txt") == "b\n"
    git("--git-dir", str(served), "fsck", "--strict")


def test_the_server_dies_a_clear_error_nothing_lost_and_publishing_works_after_a_restart(
    server, tmp_path, cli
):
    url = server.url("proj.git")
    served = server.base / "proj.git"
    h = _home(tmp_path, "h")
    v = h.clone_vault(url, "p", lazy=True)
    shared = v.workspace("main").read("shared.txt")  # read (fetched) while the server is up
    v.create_fork("main", "task")
    v.workspace("task").write("work.txt", b"done offline\n")
    checkpoint.save(v, "task", name="step")
    server.stop()
    # offline: work goes on (fork, checkpoint, merge of forks need no server)
    assert merge.merge(v, "task", "main").status == "fast_forward"
    tip = v.workspace("main").tip()
    refs_before = git("--git-dir", v.path, "for-each-ref")
    for args in (("push",), ("pull",), ("fetch",)):
        r = cli("--json", "--home", h.path, "--vault", "p:main", *args)
        doc = json.loads(r.out_bytes)
        assert r.code == 5 and doc["kind"] == "error" and doc["error"]["code"] == "remote_failed", (
            args,
            r.out,
        )
        assert "origin" in doc["error"]["message"] or "127.0.0.1" in doc["error"]["message"]
    with pytest.raises(RemoteError):
        remote.push(v, "origin", ["main"])
    assert git("--git-dir", v.path, "for-each-ref") == refs_before  # nothing lost, nothing moved
    assert v.workspace("main").tip() == tip and v.workspace("main").read("work.txt") == b"done offline\n"
    assert v.workspace("main").read("shared.txt") == shared
    server.start()
    remote.push(v, "origin", ["main"])
    assert git("--git-dir", str(served), "rev-parse", "main").strip() == tip
    assert git("--git-dir", str(served), "show", "main:work.txt") == "done offline\n"
    git("--git-dir", str(served), "fsck", "--strict")
    git("--git-dir", v.path, "fsck", "--connectivity-only")


def test_a_lazy_clone_on_a_second_machine_works_in_a_mount_and_publishes(server, tmp_path):
    """One machine, the whole path through a real mount: lazy clone, fork, mount, write
    with plain file I/O, checkpoint, merge, publish; the other machine pulls it."""
    require_fuse()
    backend = "overlay" if mounts.overlay_available() is None else "fuse"
    url = server.url("proj.git")
    a, b = _home(tmp_path, "a"), _home(tmp_path, "b")
    va, vb = a.clone_vault(url, "p", lazy=True), b.clone_vault(url, "p", lazy=True)
    va.create_fork("main", "t")
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(a, va, "t", str(mp), backend=backend)
    try:
        (mp / "notes").mkdir()
        (mp / "notes" / "a.txt").write_text("through the mount\n")
        shutil.copyfile(mp / "shared.txt", mp / "shared.copy")
        checkpoint.save(va, "t")
    finally:
        mounts.unmount(a, va, "t")
    assert merge.merge(va, "t", "main").status == "fast_forward"
    remote.push(va, "origin", ["main"])
    _, res = remote.pull(vb, "origin", "main")
    assert res.status == "fast_forward"  # type: ignore[attr-defined]
    assert vb.workspace("main").read("notes/a.txt") == b"through the mount\n"
    assert vb.workspace("main").read("shared.copy") == vb.workspace("main").read("shared.txt")


def test_a_push_that_loses_the_race_on_the_server_is_a_moved_remote_not_a_declined_one(server, tmp_path):
    """Two pushes that both saw the same remote head: the server's compare-and-swap under
    its ref lock lets one through and refuses the other ("cannot lock ref ... is at X but
    expected Y"). That is the remote having moved (pull, then push again), not a server
    that declines (where pulling would not help). The race is made certain by a hook that
    moves the branch between the server's advertisement and its update."""
    url = server.url("proj.git")
    served = server.base / "proj.git"
    h = _home(tmp_path, "h")
    v = h.clone_vault(url, "p", lazy=True)
    # the other machine's commit, already on the server under another name
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
        f"env -u GIT_QUARANTINE_PATH git update-ref refs/heads/main {theirs}\n"
    )
    hook.chmod(0o755)
    v.workspace("main").write("mine.txt", b"mine\n")
    mine = checkpoint.save(v, "main").checkpoint.commit  # type: ignore[union-attr]
    refs_before = git("--git-dir", v.path, "for-each-ref")
    with pytest.raises(RemoteRejectedError) as exc:
        remote.push(v, "origin", ["main"])
    d = exc.value.details
    assert d["reason"] == "non_fast_forward", d
    assert d["remote_commit"] == theirs and d["local_commit"] == mine
    assert "pull" in (exc.value.hint or "")
    assert git("--git-dir", v.path, "for-each-ref") == refs_before
    # pull, push again: both commits are there
    _, res = remote.pull(v, "origin", "main")
    assert res.status == "merged"  # type: ignore[attr-defined]
    remote.push(v, "origin", ["main"])
    assert git("--git-dir", str(served), "show", "main:theirs.txt") == "theirs\n"
    assert git("--git-dir", str(served), "show", "main:mine.txt") == "mine\n"


def test_a_fork_that_lacks_what_it_last_saw_on_the_server_is_refused_before_anything_is_sent(
    server, tmp_path, cli
):
    """The compare-and-swap's other half, checked here: the fork must contain the commit
    its lease expects (else the lease would let a push drop the server's commits)."""
    url = server.url("proj.git")
    served = server.base / "proj.git"
    h = _home(tmp_path, "h")
    v = h.clone_vault(url, "p", lazy=True)
    v.workspace("main").write("one.txt", b"1\n")
    checkpoint.save(v, "main", name="one")
    remote.push(v, "origin", ["main"])
    pushed = git("--git-dir", str(served), "rev-parse", "main").strip()
    # main goes back before what it pushed, and on in another direction
    checkpoint.restore(v, "main", git("--git-dir", v.path, "rev-parse", "main~1").strip())
    v.workspace("main").write("other.txt", b"other\n")
    mine = checkpoint.save(v, "main").checkpoint.commit  # type: ignore[union-attr]
    refs_before = git("--git-dir", v.path, "for-each-ref")
    r = cli("--json", "--home", h.path, "--vault", "p:main", "push")
    doc = json.loads(r.out_bytes)
    assert r.code == 5 and doc["error"]["code"] == "remote_rejected", r.out
    d = doc["error"]["details"]
    assert d["reason"] == "non_fast_forward" and d["local_commit"] == mine and d["remote_commit"] == pushed
    assert git("--git-dir", str(served), "rev-parse", "main").strip() == pushed
    assert git("--git-dir", v.path, "for-each-ref") == refs_before
    # --force-with-lease says: overwrite, but only what this vault last saw (it is)
    remote.push(v, "origin", ["main"], force_with_lease=True)
    assert git("--git-dir", str(served), "rev-parse", "main").strip() == mine


def test_a_push_whose_tracking_ref_a_kill_kept_from_moving_goes_through_next_time(server, tmp_path):
    """Killed after the server took its push and before git moved the remote-tracking ref
    (seen in the kill test): the lease is stale, but the remote only moved to a commit the
    fork contains, so the next push is the same compare-and-swap on that commit, not a
    refusal that no pull would explain."""
    url = server.url("proj.git")
    served = server.base / "proj.git"
    h = _home(tmp_path, "h")
    v = h.clone_vault(url, "p", lazy=True)
    before = git("--git-dir", v.path, "rev-parse", "refs/remotes/origin/main").strip()
    v.workspace("main").write("one.txt", b"1\n")
    checkpoint.save(v, "main")
    remote.push(v, "origin", ["main"])
    # the state such a kill leaves: the server has the commit, the tracking ref does not
    git("--git-dir", v.path, "update-ref", "refs/remotes/origin/main", before)
    v.workspace("main").write("two.txt", b"2\n")
    mine = checkpoint.save(v, "main").checkpoint.commit  # type: ignore[union-attr]
    res = remote.push(v, "origin", ["main"])
    assert [(u.ref, u.new) for u in res.updates] == [("refs/heads/main", mine)]
    assert git("--git-dir", str(served), "rev-parse", "main").strip() == mine
    assert git("--git-dir", v.path, "rev-parse", "refs/remotes/origin/main").strip() == mine
    # while a remote that moved to a commit this vault lacks is still refused
    other = tmp_path / "other"
    git("clone", "-q", url, str(other))
    (other / "theirs.txt").write_text("theirs\n")
    git("-C", str(other), "add", "-A")
    git("-C", str(other), "commit", "-q", "-m", "theirs")
    git("-C", str(other), "push", "-q", "origin", "main")
    v.workspace("main").write("three.txt", b"3\n")
    checkpoint.save(v, "main")
    with pytest.raises(RemoteRejectedError) as exc:
        remote.push(v, "origin", ["main"])
    assert exc.value.details["reason"] == "non_fast_forward"
