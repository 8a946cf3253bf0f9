"""What git staged in the mount of a fork whose path policy hides files (gitmodel28).

A fork with `hidden` rules mounts with the pure-FUSE backend, and its git index holds
each hidden file as a skip-worktree entry (docs/policy.md). Until gitmodel28 the index of
such a fork was never patched where a move changed it (the index written ahead of a
checkpoint's or a run's move, mount/indexahead.py, and `sync_index`'s patch both stepped
aside for hidden paths): it was written whole from the new commit at every checkpoint
and every recorded run, and everything the person had staged was gone, silently (a
staged version, a staged removal, a new file `git add`ed). A plain worktree keeps them:
a checkpoint is the person's `git commit --only` of the files it records, a run's record
another hand's commit on the branch (h-staged1). The patch now gives a hidden path's new
entry git's skip-worktree bit, as the whole write does.

Real mounts (pure FUSE: what a fork with hidden rules mounts with), real bubblewrap,
real git, from the person's side.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts

from .test_adv_mountfiles import GIT, Scene, _need_bwrap
from .test_fuse import require_fuse

POLICY = 'version = 1\n[paths]\nhidden = [".env", "secrets/**"]\n'


@pytest.fixture
def hidden_scene(home: Any, vault: Any, tmp_path: Path, cli: Any) -> Iterator[Scene]:
    """Fork ``main`` (README, a.txt, b.txt, c.txt, a hidden .env) with hidden rules, mounted."""
    require_fuse()
    _need_bwrap()
    ws = vault.workspace("main")
    for name, text in (("README", "a project\n"), ("a.txt", "a\n"), ("b.txt", "b\n"), ("c.txt", "c\n")):
        ws.write(name, text.encode())
    ws.write(".env", b"SECRET=1\n")
    checkpoint.save(vault, name="base")
    Path(vault.path, "avfs", "policy.toml").write_text(POLICY)
    host, ran = tmp_path / "host", tmp_path / "ran"
    host.mkdir()
    ran.mkdir()
    mp = tmp_path / "mnt"
    mp.mkdir()
    info = mounts.mount(home, vault, "main", str(mp), backend="fuse")
    assert info.backend == "fuse"
    try:
        yield Scene(home, vault, mp, info.pid, host, ran, cli)
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def _stage(scene: Scene) -> None:
    """a.txt staged then edited again (`MM`), b.txt staged with its file put back
    (`MM`), c.txt's removal staged (`D ` and the file untracked), new.txt added (`A `)."""
    (scene.mp / "a.txt").write_text("a staged\n")
    (scene.mp / "b.txt").write_text("b staged\n")
    (scene.mp / "new.txt").write_text("new, staged\n")
    scene.git("add", "a.txt", "b.txt", "new.txt")
    (scene.mp / "a.txt").write_text("a edited again\n")
    (scene.mp / "b.txt").write_text("b\n")
    scene.git("rm", "-q", "--cached", "c.txt")
    assert _status(scene) == sorted(["D  c.txt", "MM a.txt", "MM b.txt", "A  new.txt", "?? c.txt"])


def _status(scene: Scene) -> list[str]:
    return sorted(scene.git("status", "--porcelain").stdout.splitlines())


def _hidden_kept(scene: Scene, *paths: str) -> None:
    """Each of ``paths`` a skip-worktree entry (`S`), and git lists none of them."""
    flags = scene.git("ls-files", "-v", "--", *paths).stdout.split("\n")
    assert sorted(f for f in flags if f) == sorted(f"S {p}" for p in paths), flags
    assert not any(p in scene.git("status", "--porcelain").stdout for p in paths)


def test_a_checkpoint_keeps_what_git_staged_in_a_fork_with_hidden_paths(hidden_scene: Scene) -> None:
    """A checkpoint is `git commit --only` of the files: it records a.txt (as the file
    shows it: its index entry the commit's), new.txt and c.txt (the files differ from HEAD:
    new.txt committed, c.txt unchanged); b.txt's staged version, which no file shows, stays."""
    scene = hidden_scene
    _stage(scene)
    res = scene.cli(
        "--home", scene.home.path, "--vault", "v:main", "--json", "checkpoint", "save", "-m", "cp"
    )
    assert res.code == 0, res.out
    assert scene.git("show", "HEAD:a.txt").stdout == "a edited again\n"
    assert scene.git("show", "HEAD:new.txt").stdout == "new, staged\n"
    assert scene.git("show", ":b.txt").stdout == "b staged\n"
    assert _status(scene) == sorted(["D  c.txt", "MM b.txt", "?? c.txt"])
    _hidden_kept(scene, ".env")
    scene.hook_answers()


def test_a_recorded_run_keeps_what_git_staged_in_a_fork_with_hidden_paths(hidden_scene: Scene) -> None:
    """A run writes a.txt: its record below the run commits what was uncheckpointed (a.txt
    edited, new.txt), the run's commit its own a.txt; another hand's commits: every
    staged entry stays (a.txt's staged version too, h-staged1's rule)."""
    scene = hidden_scene
    _stage(scene)
    res = scene.attack("echo by the agent > a.txt\n")
    doc = res.to_dict()
    assert res.success and doc["commit"] is not None, doc
    assert scene.git("show", "HEAD:a.txt").stdout == "by the agent\n"
    assert scene.git("show", ":a.txt").stdout == "a staged\n"
    assert scene.git("show", ":b.txt").stdout == "b staged\n"
    assert scene.git("ls-files", "--", "c.txt").stdout == ""
    rows = _status(scene)
    assert "D  c.txt" in rows and "MM a.txt" in rows and "MM b.txt" in rows, rows
    _hidden_kept(scene, ".env")
    scene.git("commit", "-q", "-m", "the person's staged versions")
    assert scene.git("show", "HEAD:a.txt").stdout == "a staged\n"
    assert scene.git("show", "HEAD:b.txt").stdout == "b staged\n"
    scene.hook_answers()


def test_another_hands_commit_of_a_hidden_path_is_skip_worktree_and_staging_stays(
    hidden_scene: Scene,
) -> None:
    """Another hand commits `secrets/key` (a path the policy hides) on the fork's branch
    from outside the mount; avfs takes the move (its status): the index's new entry is
    skip-worktree (git neither lists it deleted nor writes it), and what git staged stays."""
    scene = hidden_scene
    _stage(scene)
    vault = scene.vault.path
    env = dict(os.environ, GIT_INDEX_FILE=str(scene.mp.parent / "other-index"), GIT_DIR=vault)

    def g(*args: str, stdin: str | None = None) -> str:
        return subprocess.run(
            [*GIT, *args], env=env, input=stdin, capture_output=True, text=True, check=True
        ).stdout.strip()

    g("read-tree", "refs/heads/main")
    blob = g("hash-object", "-w", "--stdin", stdin="KEY\n")
    g("update-index", "--add", "--cacheinfo", f"100644,{blob},secrets/key")
    old = g("rev-parse", "refs/heads/main")
    new = g("commit-tree", g("write-tree"), "-p", old, "-m", "another hand's secret")
    g("update-ref", "refs/heads/main", new, old)
    res = scene.cli("--home", scene.home.path, "--vault", "v:main", "--json", "status")
    assert res.code == 0, res.out
    assert scene.git("rev-parse", "HEAD").stdout.strip() == new
    _hidden_kept(scene, ".env", "secrets/key")
    assert not (scene.mp / "secrets" / "key").exists()
    assert _status(scene) == sorted(["D  c.txt", "MM a.txt", "MM b.txt", "A  new.txt", "?? c.txt"])
    scene.hook_answers()


@pytest.mark.parametrize("then", ["run", "checkpoint", "nochange"])
def test_an_agents_cleared_skip_worktree_on_a_hidden_path_is_set_again(
    hidden_scene: Scene, then: str
) -> None:
    """The agent's `git update-index --no-skip-worktree .env` in its run (with a change of
    a.txt, or none): the run's record and a later checkpoint (each a patch of the index,
    gitmodel28) set the bit again on every entry the hidden rules hold, not only a moved
    one's (review41): else git sees the file the mount hides as deleted, and the person's
    `git commit -a` removes .env from the branch."""
    scene = hidden_scene
    change = "" if then == "nochange" else "echo by the agent > a.txt\n"
    res = scene.attack("git update-index --no-skip-worktree .env\n" + change)
    assert res.success, res.to_dict()
    if then == "checkpoint":
        (scene.mp / "b.txt").write_text("b by the person\n")
        checkpoint.save(scene.vault, "main", message="cp")
    _hidden_kept(scene, ".env")
    scene.git("commit", "-qam", "the person's edit", check=False)
    assert scene.git("show", "HEAD:.env").stdout == "SECRET=1\n"


def test_a_hidden_rule_added_then_remount_makes_the_entry_skip_worktree_at_the_next_write(
    hidden_scene: Scene,
) -> None:
    """A rule hiding b.txt added, the fork mounted again: the index the remount brings
    back and the next index write (a checkpoint of a.txt) give b.txt's entry the bit
    (review41), so git without the fsmonitor hook neither lists it deleted nor lets
    `commit -a` remove it."""
    scene = hidden_scene
    Path(scene.vault.path, "avfs", "policy.toml").write_text(POLICY.replace('"]', '", "b.txt"]'))
    mounts.unmount(scene.home, scene.vault, "main", lazy=True)
    mounts.mount(scene.home, scene.vault, "main", str(scene.mp), backend="fuse")
    _hidden_kept(scene, ".env", "b.txt")  # (the index the remount brings back)
    assert "b.txt" not in scene.git("-c", "core.fsmonitor=false", "status", "--porcelain").stdout
    (scene.mp / "a.txt").write_text("a by the person\n")
    checkpoint.save(scene.vault, "main", message="cp")
    _hidden_kept(scene, ".env", "b.txt")
    assert "b.txt" not in scene.git("-c", "core.fsmonitor=false", "status", "--porcelain").stdout
    scene.git("-c", "core.fsmonitor=false", "commit", "-qam", "the person's", check=False)
    assert scene.git("show", "HEAD:b.txt").stdout == "b\n"


@pytest.mark.parametrize("commit", [True, False])
def test_a_hidden_file_at_a_name_of_git_s_state_keeps_its_bit_through_a_run_that_stages(
    home: Any, vault: Any, tmp_path: Path, cli: Any, commit: bool
) -> None:
    """A hidden `secrets/config` and `secrets/HEAD` (names of git's state): a run that
    stages a change elsewhere (the carry-back looks at the index) leaves their skip-worktree
    bit, avfs's own for what the mount hides, where fix40a clears a marked entry at such a
    name (a planted half; a --no-commit run has no patch after to set it again): else git
    lists both deleted and the person's `git commit -a` removes them from the branch."""
    require_fuse()
    _need_bwrap()
    ws = vault.workspace("main")
    for name, text in (("README", "a project\n"), ("a.txt", "a\n"), ("secrets/HEAD", "ref: refs/heads/x\n")):
        ws.write(name, text.encode())
    ws.write("secrets/config", b"[core]\n\tbare = true\n")
    checkpoint.save(vault, name="base")
    Path(vault.path, "avfs", "policy.toml").write_text(POLICY)
    host, ran, mp = tmp_path / "host", tmp_path / "ran", tmp_path / "mnt"
    for d in (host, ran, mp):
        d.mkdir()
    info = mounts.mount(home, vault, "main", str(mp), backend="fuse")
    try:
        scene = Scene(home, vault, mp, info.pid, host, ran, cli)
        _hidden_kept(scene, "secrets/config", "secrets/HEAD")
        res = scene.attack("echo by the agent > a.txt\ngit add a.txt\n", commit=commit)
        assert res.success, res.to_dict()
        _hidden_kept(scene, "secrets/config", "secrets/HEAD")
        scene.git("commit", "-qam", "the person's edit", check=False)
        assert scene.git("show", "HEAD:secrets/config").stdout == "[core]\n\tbare = true\n"
    finally:
        mounts.unmount(home, vault, "main", lazy=True)
