"""git's ``read-tree`` of a lazy clone's default fork's tip, started by `vault clone --lazy`
as it answers (mount/keptmake.py ``start_read_tree``) and taken by the first mount
(mount/readtree.py ``Ahead``): that mount starts no ``read-tree`` of its own, so its tree's
sizes are asked at once with the ids read from it (issue 30, row 2; docs/lazy.md). Served
by `git daemon` on 127.0.0.1: what the clone leaves is git's own index of the tree, byte for
byte, made without a blob; the mount takes it, runs neither ``read-tree`` nor ``ls-tree``,
and its first `git status` (with the fsmonitor and without, which looks at every file)
finds nothing changed and fetches nothing but the tree's ``.gitignore`` files. One that is
not the tree's (bad input) is taken and thrown away, the mount's index made as without it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from avfs_git.core.settings import Settings
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.keptindexes import kept_dir, read_tree_path
from avfs_git.mount.readtree import CONFIG
from avfs_git.ops import mounts

from .conftest import git
from .test_fuse import require_fuse
from .test_lazy import Server, objects
from .test_lazy import server as server
from .test_readtree_ids import _git_logging


def _clone(cli: object, home: Home, url: str) -> tuple[object, str]:
    """`vault clone --lazy` in process with the home's defaults; (the vault, its tip's tree)."""
    os.makedirs(home.path, exist_ok=True)
    home.settings = Settings.from_environ(None, home.path)  # (the token, for the mount's daemon)
    r = cli("--home", home.path, "--json", "vault", "clone", "--lazy", url, "p")  # type: ignore[operator]
    assert r.code == 0, r.err
    v = home.vault("p")
    return v, git("--git-dir", v.path, "rev-parse", "main^{tree}").strip()


def _made(state_dir: str, tree: str) -> bytes:
    """What the clone's ``read-tree`` wrote, once it is there (a process of its own)."""
    path = read_tree_path(state_dir, tree)
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        assert time.monotonic() < deadline, os.listdir(kept_dir(state_dir))
        time.sleep(0.05)
    return Path(path).read_bytes()


def _git_s_own(vault_path: str, tree: str, tmp: Path) -> bytes:
    """git's ``read-tree`` of ``tree`` into a new index file, with the mount's settings."""
    out = tmp / "index"
    subprocess.run(
        ["git", *[x for c in CONFIG for x in ("-c", c)], "--git-dir", vault_path, "read-tree", tree],
        env={**os.environ, "GIT_INDEX_FILE": str(out), "GIT_INDEX_VERSION": "2"},
        check=True,
    )
    return out.read_bytes()


def _mount_and_status(
    home: Home, v: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], str, int, int]:
    """Mount fork main with a ``git`` that logs its arguments on the daemon's PATH; (the git
    commands the mount ran until its index was written, `git status` without the fsmonitor,
    the vault's objects before it, after it)."""
    bin_dir, log = _git_logging(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp))  # type: ignore[arg-type]
    try:
        (mp / ".git").read_bytes()  # (opens once the index is written: fuse/settle.py)
        before = objects(v.path)  # type: ignore[attr-defined]
        ran = log.read_text().splitlines() if log.exists() else []
        plain = subprocess.run(
            ["git", "-c", "core.fsmonitor=false", "status", "--porcelain"],
            cwd=mp,
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PATH": os.environ["PATH"].split(os.pathsep, 1)[1]},
        )
        return ran, plain.stdout, before, objects(v.path)  # type: ignore[attr-defined]
    finally:
        mounts.unmount(home, v, "main", lazy=True)  # type: ignore[arg-type]


def test_the_clone_leaves_git_s_read_tree_and_the_first_mount_takes_it(
    cli: object, home: Home, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_fuse()
    v, tree = _clone(cli, home, server.url("proj.git"))
    held = objects(v.path)  # type: ignore[attr-defined]
    made = _made(v.state_dir, tree)  # type: ignore[attr-defined]
    assert made == _git_s_own(v.path, tree, tmp_path)  # type: ignore[attr-defined]
    assert objects(v.path) == held  # type: ignore[attr-defined]  # (trees only: no blob)
    ran, plain, before, after = _mount_and_status(home, v, tmp_path, monkeypatch)
    assert not any(" read-tree " in f" {line} " or " ls-tree " in f" {line} " for line in ran), ran
    assert plain == ""
    assert after == before
    # taken and removed: nothing of it left beside the kept indexes
    assert not [n for n in os.listdir(kept_dir(v.state_dir)) if ".read-tree" in n]  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", ["another tree", "not an index", "a link"])
def test_a_read_tree_that_is_not_the_tree_s_is_thrown_away(
    bad: str, cli: object, home: Home, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_fuse()
    v, tree = _clone(cli, home, server.url("proj.git"))
    path = read_tree_path(v.state_dir, tree)  # type: ignore[attr-defined]
    _made(v.state_dir, tree)  # type: ignore[attr-defined]
    os.unlink(path)
    if bad == "another tree":  # (git's own index of another tree: the empty one)
        empty = git("--git-dir", v.path, "hash-object", "-t", "tree", "-w", "/dev/null").strip()  # type: ignore[attr-defined]
        Path(path).write_bytes(_git_s_own(v.path, empty, tmp_path))  # type: ignore[attr-defined]
    elif bad == "not an index":
        Path(path).write_bytes(b"DIRC\0\0\0\2" + b"\xff" * 4000)
    else:  # (the tree's own index, behind a link: never read through one)
        target = tmp_path / "elsewhere"
        target.write_bytes(_git_s_own(v.path, tree, tmp_path))  # type: ignore[attr-defined]
        os.symlink(target, path)
    ran, plain, before, after = _mount_and_status(home, v, tmp_path, monkeypatch)
    assert any(" read-tree " in f" {line} " for line in ran), ran  # (git's own, as without one)
    assert plain == ""
    assert after == before
    assert not [n for n in os.listdir(kept_dir(v.state_dir)) if ".read-tree" in n]  # type: ignore[attr-defined]
    if bad == "a link":
        assert (tmp_path / "elsewhere").exists()  # (the link's target left alone)
