"""A long session of committing execs keeps the vault's packs under git's own limit, so a
person's `git commit` in the mount never runs a whole `git gc` (h-packs1).

Each `proxy exec` that commits writes a pack (its record's; a before-record's too when the
fork had changes). Past git's ``gc.autoPackLimit`` (50) every commit, merge, rebase or fetch
made in the mount starts ``git gc --auto``, a repack of the whole vault before git returns
(mount/worktree.py ``NO_DETACH``). avfs rolls its packs up past 24 once an exec has
answered (core/store/packwriter.py ``maybe_consolidate``); in a lazy vault git 2.39's own
geometric repack refuses, so there it never happened and a lazy vault kept every pack
(core/store/packroll.py rolls them, promisor packs apart). Real mounts, real execs through
the mount's daemon, real git; git's own trace says whether it started a gc.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.store import packroll, packwriter
from avfs_git.core.store.packwriter import OBJ_BLOB, PackWriter
from avfs_git.core.vaults.home import Home

from .conftest import git, run_in_process
from .gitmount import _git, _require, warm_daemons
from .test_lazy import Server
from .test_lazy import server as server

EXECS = 100
GIT_PACK_LIMIT = 50  # git's gc.autoPackLimit


def _avfs(*args: str, cwd: Path | None = None) -> Any:
    with warm_daemons():
        res = run_in_process(list(args), cwd=None if cwd is None else str(cwd))
    assert res.code == 0, res.out + res.err
    return res


def _packs(vault_path: str) -> tuple[int, int]:
    """(packs git's gc counts: those without a ``.keep``, promisor packs among them)."""
    names = set(os.listdir(os.path.join(vault_path, "objects", "pack")))
    stems = [n[: -len(".idx")] for n in names if n.startswith("pack-") and n.endswith(".idx")]
    counted = [s for s in stems if s + ".keep" not in names]
    return len(counted), sum(s + ".promisor" in names for s in stems)


def _gc_started(trace: Path) -> list[list[str]]:
    """The git commands a run started (GIT_TRACE2_EVENT's ``child_start``) that were a gc or a repack."""
    out = []
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        argv = event.get("argv", [])
        if event.get("event") == "child_start" and ("gc" in argv or "repack" in argv):
            out.append(argv)
    return out


def _session(vault_path: str, fork: str, mp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EXECS committing execs in the mount of ``fork``, as an agent makes them (each through
    the mount's daemon), then a person's `git commit` there: git runs no gc."""
    for i in range(EXECS):
        _avfs("--json", "--vault", f"v:{fork}", "proxy", "exec", "--", "sh", "-c", f"echo {i} > f{i % 7}.txt")
        # never past git's limit along the way either (a person may commit at any moment)
        assert _packs(vault_path)[0] <= GIT_PACK_LIMIT, (i, _packs(vault_path))
    assert int(git("--git-dir", vault_path, "rev-list", "--count", fork)) > EXECS  # (each one committed)
    (mp / "person.txt").write_text("by hand\n")
    _git(mp, "add", "person.txt")
    trace = mp.parent / "trace2.json"
    with monkeypatch.context() as env:  # (trace2 is read from the environment, never from -c)
        env.setenv("GIT_TRACE2_EVENT", str(trace))
        done = _git(mp, "commit", "-q", "-m", "by hand")
    assert _gc_started(trace) == [], _gc_started(trace)
    assert "Auto packing" not in done.stderr, done.stderr
    assert _packs(vault_path)[0] <= GIT_PACK_LIMIT, _packs(vault_path)
    fsck = git("--git-dir", vault_path, "fsck", "--no-dangling", check=False)
    assert "missing" not in fsck and "error" not in fsck, fsck


def test_a_hundred_committing_execs_then_a_person_s_commit_runs_no_gc(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require("overlay")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("one\n")
    _avfs("vault", "create", "v", "--from", str(src))
    mp = tmp_path / "m"
    mp.mkdir()
    _avfs("--vault", "v:main", "mount", str(mp))
    try:
        vault_path = home.vault("v").path
        _session(vault_path, "main", mp, monkeypatch)
        assert git("--git-dir", vault_path, "log", "-1", "--format=%s", "main").strip() == "by hand"
    finally:
        _avfs("--vault", "v:main", "unmount", str(mp))


def test_a_lazy_vault_rolls_its_packs_and_keeps_what_the_remote_promised(
    home: Home, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require("overlay")
    _avfs("vault", "clone", "--lazy", server.url("proj.git"), "v")
    vault_path = home.vault("v").path
    promised = git("--git-dir", vault_path, "rev-list", "--objects", "--all", "--missing=print")
    assert any(line.startswith("?") for line in promised.splitlines())  # (a partial clone)
    mp = tmp_path / "m"
    mp.mkdir()
    _avfs("--vault", "v:main", "mount", str(mp))
    try:
        _session(vault_path, "main", mp, monkeypatch)
    finally:
        _avfs("--vault", "v:main", "unmount", str(mp))
    # the remote's objects are still promisor objects: what is missing is still promised
    assert _packs(vault_path)[1] >= 1, sorted(os.listdir(os.path.join(vault_path, "objects", "pack")))
    git("--git-dir", vault_path, "rev-list", "--objects", "--all", "--missing=allow-promisor")
    still = git("--git-dir", vault_path, "rev-list", "--objects", "--all", "--missing=print")
    assert any(line.startswith("?") for line in still.splitlines())  # (nothing fetched to roll)


@pytest.mark.parametrize(
    "counts", [[1, 1, 1, 1], [1, 1, 4, 16], [2, 3, 40, 41], [1, 2, 4, 8, 16], [5, 1, 1, 30, 100, 100]]
)
def test_the_lazy_roll_takes_the_packs_git_s_geometric_repack_takes(
    tmp_path: Path, counts: list[int]
) -> None:
    """packroll's choice of packs (made for a lazy vault, where git 2.39's repack refuses)
    against git's own ``repack -d --geometric=2`` on the same packs of a whole repository."""
    repo = tmp_path / "r.git"
    git("init", "-q", "--bare", str(repo))
    made, names = 0, []
    for n in counts:
        pw = PackWriter(str(repo))
        for k in range(made, made + n):
            pw.add(OBJ_BLOB, b"%d\n" % k)
        made += n
        names.append(pw.finish())
    pack_dir = str(repo / "objects" / "pack")
    plain = packroll.packs(pack_dir)[False]
    assert sorted(c for c, _ in plain) == sorted(counts)
    cut = packroll.split([c for c, _ in plain])
    kept = {os.path.basename(b) for _, b in plain[cut:]}
    git("--git-dir", str(repo), "repack", "-d", "-q", "--geometric=2", "--no-write-bitmap-index")
    left = {n[: -len(".idx")] for n in os.listdir(pack_dir) if n.endswith(".idx")}
    assert kept <= left and len(left - kept) == (1 if cut else 0), (counts, cut, kept, left)


def test_a_roll_started_from_a_mount_runs_outside_it(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`checkpoint save` typed in a mount, past the limit: the roll it starts (a detached
    python and its `git repack`) works in the vault's directory, not the caller's, where it
    held the mount busy for `avfs unmount` until it ended (main: its git ran in the mount).
    Seen through a `git` on PATH that notes its working directory, then runs the real one."""
    _require("overlay")
    real = shutil.which("git")
    assert real is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "git-cwd.log"
    (bin_dir / "git").write_text(f'#!/bin/sh\ncase "$*" in *repack*) pwd >> {log};; esac\nexec {real} "$@"\n')
    (bin_dir / "git").chmod(0o755)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("one\n")
    _avfs("vault", "create", "v", "--from", str(src))
    mp = tmp_path / "m"
    mp.mkdir()
    _avfs("--vault", "v:main", "mount", str(mp))
    vault_path = home.vault("v").path
    try:
        monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        for i in range(packwriter.PACK_LIMIT + 2):
            (mp / "n.txt").write_text(f"{i}\n")
            _avfs("--vault", "v:main", "checkpoint", "save", "-m", f"c{i}", cwd=mp)
        lock = packwriter.repack_lock(vault_path, wait=True)  # the roll's end (it holds this lock)
        assert lock is not None
        lock.close()
        assert log.read_text().split() == [vault_path], log.read_text()
        assert _packs(vault_path)[0] <= packwriter.PACK_LIMIT
    finally:
        _avfs("--vault", "v:main", "unmount", str(mp))
