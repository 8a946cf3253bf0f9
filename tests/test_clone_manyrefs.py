"""A clone of a remote with thousands of branches and tags (docs/benchmarks.md, the
thirtieth round, "Clone, fetch and push with 20,000 branches"), served by a real `git
daemon` on 127.0.0.1.

The clone fetched into a new vault: git wrote each of the remote's refs as a loose file
with its reflog (a branch three times: the fork, origin's tracking ref, their reflogs), 34 s
for 20,000 branches and 20,000 tags where `git clone --bare` writes one packed-refs in 2 s,
and every later fetch and push of the vault read those files again (7-9 s against 1.1-1.4
s). Now the clone is git's own, and what lists many refs (``vault info``, ``stats``, a
fetch's remote-tracking refs) reads packed-refs once. What a fork records stays: each
branch is a fork that checkpoints, mounts, merges and pushes back; a branch with old
commits is not "abandoned" to ``prune`` for lack of the reflog entry the fetch gave it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint, merge, remote
from avfs_git.core.store import refs
from avfs_git.core.vaults.home import Home
from avfs_git.ops import mounts
from avfs_git.ops.maintenance import pruning, vaultstats

from .conftest import git
from .test_fuse import require_fuse
from .test_remotes import _free_port, _start_daemon, _stop_daemon

OLD = "1577836800 +0000"  # 2020-01-01: far past any `prune --older-than` default


def _commit(repo: Path, tree: str, parents: list[str], msg: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": OLD, "GIT_COMMITTER_DATE": OLD}
    args = ["git", "--git-dir", str(repo), "commit-tree", tree, "-m", msg]
    for p in parents:
        args += ["-p", p]
    return subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout.strip()


def _many(repo: Path, n: int) -> list[str]:
    """A bare repository of ``n`` branches ``b0000``... and ``n`` tags ``t0000``... over
    four commits (made in 2020: a line of three, ``main`` (its HEAD) at the last, and one
    off the first that ``main`` does not hold), written as one sorted packed-refs as `git
    pack-refs` writes it. Returns the four commits; branch and tag ``i`` are at ``i % 4``."""
    git("init", "-q", "--bare", str(repo))
    blob = subprocess.run(
        ["git", "--git-dir", str(repo), "hash-object", "-w", "--stdin"],
        input=b"hello\n", capture_output=True, check=True,
    ).stdout.decode().strip()  # fmt: skip
    tree = subprocess.run(
        ["git", "--git-dir", str(repo), "mktree"],
        input=f"100644 blob {blob}\tREADME\n".encode(), capture_output=True, check=True,
    ).stdout.decode().strip()  # fmt: skip
    commits = [_commit(repo, tree, [], "one")]
    for msg in ("two", "three"):
        commits.append(_commit(repo, tree, [commits[-1]], msg))
    commits.append(_commit(repo, tree, [commits[0]], "aside"))
    lines = [(f"refs/heads/b{i:04d}", commits[i % 4]) for i in range(n)]
    lines += [(f"refs/tags/t{i:04d}", commits[i % 4]) for i in range(n)]
    lines.append(("refs/heads/main", commits[2]))
    with open(repo / "packed-refs", "w", encoding="utf-8") as fh:
        fh.write("# pack-refs with: peeled fully-peeled sorted \n")
        fh.writelines(f"{oid} {name}\n" for name, oid in sorted(lines))
    git("--git-dir", str(repo), "symbolic-ref", "HEAD", "refs/heads/main")
    git("--git-dir", str(repo), "config", "uploadpack.allowFilter", "true")
    return commits


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    srv = tmp_path / "srv"
    repo = srv / "many.git"
    commits = _many(repo, 5000)
    port = _free_port()
    daemon = _start_daemon(srv, port)
    try:
        yield f"git://127.0.0.1:{port}/many.git", repo, commits
    finally:
        _stop_daemon(daemon)


def _files(path: str) -> list[str]:
    return [os.path.join(d, f) for d, _dirs, files in os.walk(path) for f in files]


@pytest.mark.parametrize("lazy", [False, True], ids=["whole", "lazy"])
def test_a_clone_of_5000_branches_makes_nothing_a_ref(
    home: Home, served: tuple[str, Path, list[str]], cli: Any, lazy: bool
) -> None:
    """5,000 branches and 5,000 tags: the vault holds them in one packed-refs, no loose
    ref or reflog a ref (the fetch made 15,002 of each), no fork's state dir, one op log
    row; every branch is a fork `vault info` lists, every tag and tracking ref is there."""
    url, repo, commits = served
    v = home.clone_vault(url, "m", lazy=lazy)
    assert v.lazy is lazy
    loose = _files(os.path.join(v.path, "refs"))
    logs = _files(os.path.join(v.path, "logs"))
    assert len(loose) < 10 and len(logs) < 10, (len(loose), len(logs))
    ws_dir = os.path.join(v.path, "avfs", "ws")
    assert not os.path.exists(ws_dir) or os.listdir(ws_dir) == []
    assert [op.kind for op in v.oplog.recent(10)] == ["vault_create"]
    assert not os.path.exists(os.path.join(v.path, "clone.tmp"))  # (the clone's side dir)
    # every ref of the remote came, as git itself lists them
    listed = git("--git-dir", v.path, "for-each-ref", "--format=%(refname) %(objectname)").split("\n")
    got = dict(line.split(" ") for line in listed if line)
    there = git("--git-dir", str(repo), "for-each-ref", "--format=%(refname) %(objectname)").split("\n")
    for line in there:
        if line:
            name, oid = line.split(" ")
            assert got[name] == oid
            if name.startswith(refs.HEADS):
                assert got[refs.tracking_ref("origin", name[len(refs.HEADS) :])] == oid
    assert len(got) == 3 * 5001 - 1
    assert v.default_fork == "main" and v.store.is_local(commits[0])
    forks = {f.name: f for f in v.forks()}
    assert len(forks) == 5001 and forks["b0005"].head == commits[1] and not forks["b0004"].dirty
    r = cli("--json", "--home", home.path, "vault", "info", "m")
    assert r.code == 0, r.err
    assert len(json.loads(r.out_bytes)["forks"]) == 5001
    assert not os.path.exists(ws_dir) or os.listdir(ws_dir) == []  # listing made none


def test_a_fork_from_a_cloned_branch_works_as_one(
    home: Home, served: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    """A branch that came packed with the clone (no loose ref, no reflog) is a fork like
    any other: it checkpoints, mounts, merges, pushes back; fetch and pull see the
    remote's later commits; `prune` does not take it for abandoned for its 2020 commits
    (its last change is the clone's), nor does `stats` say it last changed in 2020."""
    require_fuse()
    url, repo, commits = served
    v = home.clone_vault(url, "m")
    assert not os.path.exists(os.path.join(v.path, "refs", "heads", "b0042"))  # (packed)
    ws = v.workspace("b0042")
    assert ws.read("README") == b"hello\n"
    ws.write("api.txt", b"from the api\n")
    first = checkpoint.save(v, "b0042", name="one").checkpoint.commit
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "b0042", str(mp))
    try:
        assert (mp / "api.txt").read_bytes() == b"from the api\n"
        (mp / "mount.txt").write_bytes(b"from the mount\n")
        second = checkpoint.save(v, "b0042").checkpoint.commit
    finally:
        mounts.unmount(home, v, "b0042", lazy=True)
    assert git("--git-dir", v.path, "rev-parse", f"{second}^").strip() == first
    res = merge.merge(v, "b0042", "main")
    assert not res.conflicts
    main_tip = refs.read_ref_file(v.path, refs.fork_ref("main"))
    assert git("--git-dir", v.path, "show", f"{main_tip}:mount.txt") == "from the mount\n"
    pushed = remote.push(v, "origin", ["main", "b0042"])
    assert {u.ref for u in pushed.updates} == {"refs/heads/main", "refs/heads/b0042"}
    for fork in ("main", "b0042"):
        there = git("--git-dir", str(repo), "rev-parse", f"refs/heads/{fork}").strip()
        assert there == refs.read_ref_file(v.path, refs.fork_ref(fork))
        assert refs.read_ref_file(v.path, refs.tracking_ref("origin", fork)) == there
    # a commit made on the server: fetch names the one tracking ref that moved, pull takes it
    tree = git("--git-dir", str(repo), "rev-parse", f"{commits[1]}^{{tree}}").strip()
    theirs = _commit(repo, tree, [commits[3]], "on the server")
    git("--git-dir", str(repo), "update-ref", "refs/heads/b0043", theirs, commits[3])
    fetched = remote.fetch(v, "origin")
    assert [(u.ref, u.old, u.new) for u in fetched.updates] == [
        (refs.tracking_ref("origin", "b0043"), commits[3], theirs)
    ]
    remote.pull(v, "origin", "b0043")
    assert refs.read_ref_file(v.path, refs.fork_ref("b0043")) == theirs
    # what the fetch's reflog entries said of each branch, the clone's time says now: a
    # branch main does not hold (b0007: "aside") is not abandoned
    pruned = pruning.prune(v, dry_run=True)
    assert "b0007" not in {i.name for i in pruned.items}
    assert not [i for i in pruned.items if i.kind == "fork" and "no change" in i.reason]
    st = {f.name: f for f in vaultstats.stats(v).forks}
    assert st["b0007"].last_change is not None and not st["b0007"].last_change.startswith("2020")
