"""git's fsmonitor hook in an overlay mount: answered from the kernel's record of the upper
layer (core/workspace/upperwatch.py), never missing a change.

git trusts the hook completely (a path it does not name is not looked at), so every test
here compares `git status` as the hook lets it run with `git status` that looks at every
file itself (``core.fsmonitor=false``, no untracked cache, ``--no-optional-locks`` so that
it leaves the index and its fsmonitor token alone), after each kind of change: through the
mount, from the CLI, by a restore and a checkpoint, right after mounting, and after the
daemon was killed with -9 and the fork mounted again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts

from .conftest import IN_CI, skip_outside_ci
from .daemons import wait_gone
from .test_fuse import require_fuse
from .test_overlay import require_overlay

GIT = ["git", "-c", "user.name=In Mount", "-c", "user.email=in@mount.invalid"]


def _git(mp: str, *args: str) -> str:
    env = dict(os.environ)
    env["GIT_CEILING_DIRECTORIES"] = os.path.dirname(mp)
    proc = subprocess.run([*GIT, *args], cwd=mp, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _status(mp: str, *, monitored: bool, untracked: str) -> list[str]:
    if monitored:
        args = ["status", "--porcelain", f"--untracked-files={untracked}"]
    else:
        args = [
            "--no-optional-locks", "-c", "core.fsmonitor=false", "-c", "core.untrackedCache=false",
            "status", "--porcelain", f"--untracked-files={untracked}",
        ]  # fmt: skip
    return sorted(_git(mp, *args).splitlines())


def _index_token(git_dir: str) -> str | None:
    """The fsmonitor token git keeps in the index (its ``FSMN`` extension)."""
    with open(os.path.join(git_dir, "index"), "rb") as fh:
        data = fh.read()
    at = data.rfind(b"FSMN")
    if at < 0:
        return None
    body = data[at + 8 :]
    assert struct.unpack(">I", body[:4])[0] == 2
    return body[4 : body.index(b"\0", 4)].decode()


def _own(git_dir: str) -> str:
    """The mount's own directory (``<vault>/avfs/mounts/<key>.d``), where the hook that the
    worktree's ``config.worktree`` names, and its socket, are."""
    with open(os.path.join(git_dir, "config.worktree"), encoding="utf-8") as fh:
        hook = next(line.split("=", 1)[1].strip() for line in fh if line.strip().startswith("fsmonitor ="))
    return os.path.dirname(hook)


def _hook(git_dir: str, token: str) -> list[str]:
    out = subprocess.run(
        [os.path.join(_own(git_dir), "fsmonitor-hook"), "2", token], capture_output=True, check=True
    ).stdout
    assert out.endswith(b"\0")
    return out[:-1].decode().split("\0")


def _agree(mp: str, what: str, *, journaled: bool = True) -> list[str]:
    """`git status` helped by the hook equals `git status` looking at everything, in both
    untracked modes; with ``journaled``, the hook answered from its journal (not "/")."""
    git_dir = _git(mp, "rev-parse", "--absolute-git-dir").strip()
    token = _index_token(git_dir)
    if journaled and token is not None and token.startswith("avfs-ovl:"):
        answer = _hook(git_dir, token)
        assert "/" not in answer[1:], f"{what}: the hook answered 'everything' from {token}"
    for untracked in ("all", "normal"):
        want = _status(mp, monitored=False, untracked=untracked)
        got = _status(mp, monitored=True, untracked=untracked)
        assert got == want, f"{what} (untracked={untracked}): hook-helped {got} != full {want}"
        # twice: the second one starts from the token the first wrote
        assert _status(mp, monitored=True, untracked=untracked) == want, f"{what}: second status"
    return want


def _first_status_lists_no_directory(mp: str) -> None:
    """The index avfs wrote carries git's untracked cache (mount/untracked.py): the first
    `git status` opens only the directories the hook names, not the whole tree."""
    trace = os.path.join(os.path.dirname(mp), "trace2.txt")
    env = dict(os.environ, GIT_TRACE2_PERF=trace, GIT_CEILING_DIRECTORIES=os.path.dirname(mp))
    subprocess.run([*GIT, "status", "--porcelain"], cwd=mp, env=env, capture_output=True, check=True)
    with open(trace) as fh:
        opened = [int(ln.rsplit("opendir:", 1)[1]) for ln in fh if "opendir:" in ln]
    os.unlink(trace)
    assert opened and opened[0] <= 8, f"the first git status opened {opened} directories"


def _w(path: str, data: str, mode: str = "w") -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as fh:
        fh.write(data)


@pytest.fixture
def base(vault: Any) -> Any:
    ws = vault.workspace("main")
    files = {
        "a.txt": b"a\n",
        "big.txt": b"0123456789\n" * 100,
        "run.sh": b"#!/bin/sh\n",
        ".gitignore": b"node_modules/\nvendor/\n*.log\n",
        "vendor/keep.txt": b"tracked below an ignored directory\n",
        "d/b.txt": b"b\n",
        "d/sub/c.txt": b"c\n",
        "e/f.txt": b"f\n",
        "g/h/i.txt": b"i\n",
        "r/s.txt": b"s\n",
        "t/u.txt": b"u\n",
    }
    for p, data in files.items():
        ws.write(p, data)
    checkpoint.save(vault, name="start")
    ws.write("pre.txt", b"made before the mount\n")  # the overlay's entries, under the lower layer
    ws.remove("t/u.txt")
    return vault


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_every_kind_of_change_reaches_git_through_the_hook(home, base, tmp_path, cli, backend):
    """(the pure-FUSE backend's daemon answers from the workspace's journal; both start from
    the index avfs writes, its untracked cache included)"""
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()
    vault = base
    mp = str(tmp_path / "m")
    os.mkdir(mp)
    info = mounts.mount(home, vault, "main", mp, backend=backend)
    try:
        _agree(mp, "right after mounting", journaled=False)
        _first_status_lists_no_directory(mp)
        _agree(mp, "nothing changed")
        j = lambda *p: os.path.join(mp, *p)  # noqa: E731
        _w(j("new.txt"), "new\n")
        _agree(mp, "a new file")
        _w(j("a.txt"), "more\n", "a")
        _agree(mp, "an append to a file of the base")
        os.truncate(j("big.txt"), 5)
        _agree(mp, "a truncate")
        os.chmod(j("a.txt"), 0o755)
        _agree(mp, "a chmod")
        if backend == "overlay":
            # (pure FUSE: after a checkpoint, git status with fsmonitor off lists this
            # unchanged symlink as modified, the hook-helped one does not: left, reported)
            os.symlink("a.txt", j("link"))
            _agree(mp, "a symlink")
        _w(j("made", "deep", "x.txt"), "x\n")
        _agree(mp, "a new directory tree")
        _w(j("gone.txt"), "soon gone\n")
        os.unlink(j("gone.txt"))
        _agree(mp, "a file made then removed")
        os.rename(j("d", "b.txt"), j("d", "b2.txt"))
        _agree(mp, "a renamed file")
        os.rename(j("d"), j("d2"))
        _agree(mp, "a renamed directory of the base")
        shutil.rmtree(j("e"))
        _agree(mp, "rm -r of a directory of the base")
        os.rename(j("made"), j("made2"))
        _agree(mp, "a renamed new directory")
        shutil.rmtree(j("made2"))
        _agree(mp, "rm -r of a new directory")
        os.unlink(j("r", "s.txt"))
        os.rmdir(j("r"))
        os.mkdir(j("r"))
        _w(j("r", "s.txt"), "s again, in a directory made anew\n")
        _agree(mp, "a directory removed and made again")
        os.unlink(j("run.sh"))
        os.mkdir(j("run.sh"))
        _w(j("run.sh", "inner.txt"), "a file became a directory\n")
        _agree(mp, "a file replaced by a directory")
        if backend == "overlay":  # (pure FUSE: EPERM, docs/fuse.md)
            os.link(j("new.txt"), j("g", "h", "hard.txt"))
            _agree(mp, "a hard link")
        _w(j("vendor", "keep.txt"), "changed\n", "a")
        _w(j("node_modules", "pkg", "index.js"), "ignored\n")
        _w(j("x.log"), "ignored\n")
        _agree(mp, "a tracked file below an ignored directory; ignored files")
        fd = os.open(j("g", "h", "i.txt"), os.O_WRONLY)  # written, not yet closed
        os.pwrite(fd, b"I", 0)
        _agree(mp, "a write to a file still open")
        os.close(fd)
        # from the CLI (through the mount: core/workspace/livedir.py)
        assert cli("--vault", "v", "write", "cli.txt", "from the cli\n").code == 0
        assert cli("--vault", "v", "rm", "pre.txt").code == 0
        _agree(mp, "CLI writes and removals")
        # a checkpoint moves the base: the index is rewritten with avfs's token
        checkpoint.save(vault, name="mid")
        _agree(mp, "after a checkpoint", journaled=False)
        _w(j("after.txt"), "after the checkpoint\n")
        _agree(mp, "a change after a checkpoint")
        # a restore rewrites what differs through the mount
        checkpoint.restore(vault, "main", "start")
        _agree(mp, "after a restore", journaled=False)
        _w(j("a.txt"), "after the restore\n", "a")
        _agree(mp, "a change after a restore")
        # git itself in the mount
        _git(mp, "add", "-A")
        _git(mp, "commit", "-qm", "made in the mount")
        _agree(mp, "after git commit in the mount", journaled=False)
        _w(j("a.txt"), "after the commit\n", "a")
        _agree(mp, "a change after git commit")
        _w(j(".gitignore"), "*.tmp\n", "a")  # the ignore rules change: kept over the remount
        _w(j("g", "x.tmp"), "ignored now\n")
        _agree(mp, "a changed .gitignore")
        # the daemon killed: its hook answers "everything", never a partial answer
        git_dir = _git(mp, "rev-parse", "--absolute-git-dir").strip()
        token = _index_token(git_dir)
        assert token is not None
        os.kill(info.pid, 9)
        # our child: collected (a zombie keeps /proc/PID until then: the wait took 10 s)
        assert wait_gone(info.pid), f"the killed mount daemon {info.pid} is still running"
        deadline = time.monotonic() + 10
        assert _hook(git_dir, token)[1:] == ["/"]
        while mounts.check(vault, "main") is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        info = mounts.mount(home, vault, "main", mp, backend=backend)
        _first_status_lists_no_directory(mp)
        _agree(mp, "after kill -9 and a remount", journaled=False)
        _w(j("a.txt"), "after the remount\n", "a")
        os.unlink(j("big.txt"))
        _agree(mp, "changes after the remount")
    finally:
        mounts.unmount(home, vault, "main")


def _mount_ignoring_node_modules(home: Any, vault: Any, tmp_path: Any, backend: str = "overlay") -> str:
    """Fork main with a checkpointed ``.gitignore`` of ``node_modules/`` and one file,
    mounted on ``backend`` at ``tmp_path/m`` (returned)."""
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()
    ws = vault.workspace("main")
    ws.write(".gitignore", b"node_modules/\n")
    ws.write("src/app.py", b"print(1)\n")
    checkpoint.save(vault)
    mp = str(tmp_path / "m")
    os.mkdir(mp)
    mounts.mount(home, vault, "main", mp, backend=backend)
    return mp


def _answered(token: str) -> bool:
    """Whether ``token`` is a daemon's (an overlay daemon's journal, a pure-FUSE mount's),
    not the one the hook prints when no daemon answered."""
    return token.startswith(("avfs-ovl:", "avfs:")) and token != "avfs-ovl:none"


def test_the_hook_costs_the_changes_not_the_upper_layer(home, vault, tmp_path):
    """A big ignored directory in the upper layer is one path of the first answer and no
    path of the next ones; a change is one path."""
    mp = _mount_ignoring_node_modules(home, vault, tmp_path)
    try:
        for i in range(2000):
            _w(os.path.join(mp, "node_modules", f"p{i % 50}", f"f{i}.js"), "x\n")
        mounts.unmount(home, vault, "main")
        mounts.mount(home, vault, "main", mp, backend="overlay")  # the first answer: all of it
        git_dir = _git(mp, "rev-parse", "--absolute-git-dir").strip()
        first = _hook(git_dir, _index_token(git_dir) or "")
        assert first[1:] == ["node_modules"]  # not walked: a directory the base does not have
        assert _status(mp, monitored=True, untracked="normal") == []
        _w(os.path.join(mp, "src", "app.py"), "print(2)\n")
        token = _index_token(git_dir) or ""
        assert token.startswith("avfs-ovl:")
        assert _hook(git_dir, token)[1:] == ["src/app.py"]
        assert _status(mp, monitored=True, untracked="normal") == [" M src/app.py"]
        _w(os.path.join(mp, "node_modules", "p1", "new.js"), "x\n")
        # (git may keep the older token when it has nothing else to write: then src/app.py too)
        assert set(_hook(git_dir, _index_token(git_dir) or "")[1:]) <= {
            "node_modules/p1/new.js",
            "src/app.py",
        }
        assert "node_modules/p1/new.js" in _hook(git_dir, _index_token(git_dir) or "")
    finally:
        mounts.unmount(home, vault, "main")


def test_git_varints_round_trip():
    from avfs_git.mount.untracked import _read_varint, _varint

    for value in (0, 1, 127, 128, 255, 16383, 16384, 16511, 1 << 20, (1 << 35) + 7):
        raw = _varint(value)
        assert _read_varint(raw + b"tail", 0) == (value, len(raw))
    assert _varint(128) == b"\x80\x00"  # git's varint.c: each continuation adds one


def test_an_index_git_did_not_accept_gets_no_untracked_cache(vault, tmp_path):
    """Anything unexpected while git builds the untracked cache: no extension, nothing else."""
    from avfs_git.mount.untracked import extension

    gd = tmp_path / "gitdir"
    gd.mkdir()
    assert extension(vault.store, [("d", None)], b"DIRC\0\0\0\2" + b"\0" * 24, str(tmp_path), str(gd)) is None
    assert os.listdir(gd) == []  # its scratch directory is gone


def test_the_untracked_cache_is_made_in_memory_and_is_the_same_made_on_disk(base, tmp_path, monkeypatch):
    """git's scratch tree for the untracked cache made on a skeleton (a directory per
    directory of the tree: where the fork shows other .gitignore files than the base) is
    made in /dev/shm where there is one (a mkdir on this disk: 130-500 us; the first `git
    status` in a lazy mount waits for them), and git makes the same extension there as in
    the mount's own directory (but for the skeleton directories' stat data, which git does
    not look at under an fsmonitor)."""
    import tempfile

    from avfs_git.mount import untracked
    from avfs_git.mount.index import index_bytes

    if not os.path.isdir(untracked.SHM):
        pytest.fail("no /dev/shm") if IN_CI else pytest.skip("no /dev/shm")
    ws = base.workspace("main")
    skeleton: list[tuple[str, str | None]] = []
    data = index_bytes(base, ws.base, lambda p, m, o: (1, 1, 1, 0, 0, 1), "tok", skeleton=skeleton)
    own, mp = tmp_path / "own", tmp_path / "mnt"
    for d in (own, mp):
        d.mkdir()
    made_in: list[str | None] = []
    mkdtemp = tempfile.mkdtemp

    def spy(*args: Any, **kwargs: Any) -> str:
        made_in.append(kwargs.get("dir"))
        return mkdtemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", spy)
    in_memory = untracked.on_skeleton(base.store, skeleton, data, str(mp), base.path, scratch=str(own))
    monkeypatch.setattr(untracked, "SHM", str(tmp_path / "no-shm"))
    on_disk = untracked.on_skeleton(base.store, skeleton, data, str(mp), base.path, scratch=str(own))
    assert made_in == ["/dev/shm", str(own)]
    assert in_memory is not None and on_disk is not None
    # the same extension but for the scratch directories' own stat data
    assert len(in_memory) == len(on_disk)
    for path, oid in skeleton:
        if oid is None:
            assert os.path.basename(path).encode() + b"\0" in in_memory
    assert b"Location " + str(mp).encode() in in_memory


def test_the_untracked_caches_scratch_tree_is_removed_by_a_child_process(base, tmp_path, monkeypatch):
    """The skeleton git made the untracked cache in (a directory per directory of the tree:
    7,516 on the monorepo) is removed by a child ``rm -rf``, not by Python's ``rmtree`` on a
    thread of the daemon, where it held the interpreter the first ``git status`` in a lazy
    mount needs; and it is gone once that removal ends."""
    import shutil
    import threading

    from avfs_git.mount import untracked
    from avfs_git.mount.index import index_bytes

    ws = base.workspace("main")
    skeleton: list[tuple[str, str | None]] = []
    data = index_bytes(base, ws.base, lambda p, m, o: (1, 1, 1, 0, 0, 1), "tok", skeleton=skeleton)
    assert sum(1 for _, oid in skeleton if oid is None) >= 2  # directories to remove
    own, mp = tmp_path / "own", tmp_path / "mnt"
    for d in (own, mp):
        d.mkdir()
    in_python: list[str] = []
    monkeypatch.setattr(shutil, "rmtree", lambda path, *a, **k: in_python.append(str(path)))
    monkeypatch.setattr(untracked, "SHM", str(tmp_path / "no-shm"))  # the scratch in ``own``
    assert untracked.on_skeleton(base.store, skeleton, data, str(mp), base.path, scratch=str(own)) is not None
    for t in threading.enumerate():
        if t.name == "avfs-untracked-rm":
            t.join(30)
    assert in_python == []
    assert os.listdir(own) == []


def test_the_upper_layers_gitignores_are_found_by_a_walk_kept_to_the_base_directories(tmp_path):
    """The ``.gitignore`` files the untracked cache must take from the upper layer: those in
    the root and in the base tree's directories, as a ``stat`` of each base directory's
    ``.gitignore`` found them, by a walk of the (small) upper layer instead."""
    from avfs_git.mount.untracked import upper_gitignores

    up = tmp_path / "upper"
    for d in ("d/sub", "new/deep", "e", "link-target"):
        (up / d).mkdir(parents=True)
    for f in (".gitignore", "d/.gitignore", "d/sub/.gitignore", "new/.gitignore", "new/deep/.gitignore"):
        (up / f).write_bytes(b"*.log\n")
    (up / "e" / "plain.txt").write_bytes(b"x")
    (up / "link-target" / ".gitignore").write_bytes(b"x")
    os.symlink("link-target", up / "l")  # the mount shows a link at l, no directory: not looked in
    os.mkfifo(up / "e" / ".gitignore")  # any kind of entry named so counts (a whiteout too)
    dirs = {"d", "d/sub", "e", "l", "gone", "gone/deeper"}  # the base's ("new" is not)
    found = upper_gitignores(str(up), dirs)
    assert found == {".gitignore", "d/.gitignore", "d/sub/.gitignore", "e/.gitignore"}
    assert upper_gitignores(str(tmp_path / "absent"), dirs) == set()


def _watch(tmp_path: Any, lower: dict[str, str] | None = None) -> Any:
    """An UpperWatch over a plain directory standing for an upper layer (what the kernel
    reports of it is the same), ``lower``: what the lower layer has at a path."""
    from avfs_git.core.workspace.upperwatch import UpperWatch

    up_dir = tmp_path / "upper"
    up_dir.mkdir(exist_ok=True)
    w = UpperWatch(str(up_dir), lambda p: (lower or {}).get(p), lambda: [], lambda: "B:1")
    w.start()
    return w


def test_the_journal_names_a_path_changed_again_after_a_token(tmp_path):
    w = _watch(tmp_path)
    try:
        f = tmp_path / "upper" / "f.txt"
        f.write_text("1")
        tok = w.answer("avfs:B:1:0")[0]
        assert w.answer(tok)[1:] == []
        f.write_text("2")  # the same path as the journal's last: still a change after tok
        tok2, *paths = w.answer(tok)
        assert paths == ["f.txt"]
        assert w.answer(tok2)[1:] == []
        # a base moved under an index nobody rewrote, another daemon's token, a token of
        # the future, an overflow: "everything"
        assert w.answer(tok2.replace(":B:1:", ":C:1:"))[1:] == ["/"]
        assert w.answer("avfs-ovl:other:B:1:0")[1:] == ["/"]
        assert w.answer(tok2.rsplit(":", 1)[0] + ":999999")[1:] == ["/"]
        with w._lock:
            w._event(-1, 0x4000, "")  # IN_Q_OVERFLOW
        assert w.answer(tok2)[1:] == ["/"]
        tok3 = w.answer(tok2)[0]
        f.write_text("3")
        assert w.answer(tok3)[1:] == ["f.txt"]
    finally:
        w.close()


def test_the_journal_follows_directories_made_renamed_and_removed(tmp_path):
    w = _watch(tmp_path, lower={"base": "dir"})
    try:
        up_dir = tmp_path / "upper"
        tok = w.answer("x")[0]
        # a directory tree made at once: everything in it, even what was made before its watch
        (up_dir / "new" / "deep").mkdir(parents=True)
        (up_dir / "new" / "deep" / "a.txt").write_text("a")
        tok, *paths = w.answer(tok)
        assert set(paths) >= {"new", "new/deep/a.txt"}
        (up_dir / "new").rename(up_dir / "moved")
        (up_dir / "moved" / "deep" / "b.txt").write_text("b")  # watched at its new path
        tok, *paths = w.answer(tok)
        assert {"new", "new/", "moved", "moved/deep/a.txt", "moved/deep/b.txt"} <= set(paths)
        # a copy-up of a directory the lower layer has is not named (git would re-check
        # everything below it), what changed in it is
        (up_dir / "base").mkdir()
        (up_dir / "base" / "c.txt").write_text("c")
        tok, *paths = w.answer(tok)
        assert paths == ["base/c.txt"]
        shutil.rmtree(up_dir / "moved")
        tok, *paths = w.answer(tok)
        assert {"moved", "moved/"} <= set(paths)
    finally:
        w.close()


def _cache_tree(index: bytes) -> dict[str, tuple[int, str]]:
    """The ``TREE`` extension of an index: directory -> (entry count, tree id)."""
    from avfs_git.mount.untracked import _find

    data = _find(index, b"TREE")
    assert data is not None
    out: dict[str, tuple[int, str]] = {}
    at = 0

    def one(prefix: str) -> None:
        nonlocal at
        nul = data.index(b"\0", at)
        name = data[at:nul].decode()
        nl = data.index(b"\n", nul)
        count, subs = (int(x) for x in data[nul + 1 : nl].split())
        at = nl + 1
        path = f"{prefix}/{name}" if prefix and name else (name or prefix)
        if count >= 0:
            out[path] = (count, data[at : at + 20].hex())
            at += 20
        for _ in range(subs):
            one(path)

    one("")
    return out


def test_the_index_avfs_writes_holds_the_cache_tree_git_makes(home, base, tmp_path):
    """The cache tree says which trees the index holds whole (git status and git commit
    trust it): it must be the one `git read-tree` makes of the same commit."""
    require_overlay()
    mp = str(tmp_path / "m")
    os.mkdir(mp)
    mounts.mount(home, base, "main", mp, backend="overlay")
    try:
        git_dir = _git(mp, "rev-parse", "--absolute-git-dir").strip()
        with open(os.path.join(git_dir, "index"), "rb") as fh:
            ours = _cache_tree(fh.read())
        theirs_file = str(tmp_path / "theirs.index")
        env = dict(os.environ, GIT_INDEX_FILE=theirs_file, GIT_DIR=git_dir)
        subprocess.run(["git", "read-tree", "HEAD"], env=env, check=True)
        with open(theirs_file, "rb") as fh:
            assert ours == _cache_tree(fh.read())
        assert _git(mp, "write-tree").strip() == _git(mp, "rev-parse", "HEAD^{tree}").strip()
        # a checkpoint patches the index: the cache tree is kept but where it changed
        _w(os.path.join(mp, "g", "h", "new.txt"), "new\n")
        checkpoint.save(base, name="patched")
        with open(os.path.join(git_dir, "index"), "rb") as fh:
            kept = _cache_tree(fh.read())
        subprocess.run(["git", "read-tree", "HEAD"], env=env, check=True)
        with open(theirs_file, "rb") as fh:
            theirs = _cache_tree(fh.read())
        assert "" not in kept and "g" not in kept and "g/h" not in kept
        assert kept and all(theirs[p] == v for p, v in kept.items())
        assert _git(mp, "write-tree").strip() == _git(mp, "rev-parse", "HEAD^{tree}").strip()
        assert _status(mp, monitored=True, untracked="normal") == _status(
            mp, monitored=False, untracked="normal"
        )
    finally:
        mounts.unmount(home, base, "main")


def test_avfs_status_reads_what_changed_not_the_upper_layer(home, vault, tmp_path, monkeypatch):
    """`avfs status` on an overlay mount reads the upper layer where the last status found
    changes and where the daemon's journal says something changed since (core/workspace/upperjournal.py):
    files a checkpoint recorded and an ignored node_modules are not read again. Each status
    is checked against a full read of the upper layer, through every kind of writer."""
    from avfs_git.core.workspace import upperjournal
    from avfs_git.core.workspace.overlay import Overlay

    mp = _mount_ignoring_node_modules(home, vault, tmp_path)
    reads: list[str] = []
    classified = Overlay._u_classified

    def counted(self: Overlay, path: str, real: str, st: os.stat_result, in_new: bool = False) -> Any:
        reads.append(path)
        return classified(self, path, real, st, in_new)

    monkeypatch.setattr(Overlay, "_u_classified", counted)

    def status() -> list[tuple[str, str]]:
        reads.clear()
        got = sorted((c.path, str(c.status)) for c in vault.workspace("main").status())
        n = len(reads)
        saved = upperjournal.entries
        monkeypatch.setattr(upperjournal, "entries", lambda ov, **kw: (ov.all(), None, False))
        try:
            full = sorted((c.path, str(c.status)) for c in vault.workspace("main").status())
        finally:
            monkeypatch.setattr(upperjournal, "entries", saved)
        assert got == full
        reads[n:] = []
        return got

    try:
        for i in range(300):
            _w(os.path.join(mp, "vendor", f"p{i % 10}", f"f{i}.py"), f"{i}\n")
            _w(os.path.join(mp, "node_modules", f"p{i % 10}", f"f{i}.js"), "x\n")
        assert len(status()) == 300
        checkpoint.save(vault, message="vendor")
        assert status() == []  # the first after the checkpoint reads what it recorded
        assert status() == [] and len(reads) < 20  # then nothing much
        _w(os.path.join(mp, "src", "app.py"), "print(2)\n")  # a process in the mount
        assert status() == [("src/app.py", "modified")] and len(reads) < 20
        os.rename(os.path.join(mp, "vendor", "p1"), os.path.join(mp, "moved"))  # a renamed directory
        got = status()
        assert ("moved/f1.py", "renamed") in got and len(got) == 31
        os.unlink(os.path.join(mp, "vendor", "p2", "f2.py"))
        assert ("vendor/p2/f2.py", "deleted") in status()
        vault.workspace("main").write("cli.txt", b"from the CLI\n")  # the CLI, through the mount
        assert ("cli.txt", "added") in status()
        checkpoint.save(vault, message="more")
        assert status() == []
        assert status() == [] and len(reads) < 20
        _w(os.path.join(mp, "node_modules", "p1", "new.js"), "x\n")  # ignored: no change
        assert status() == []
    finally:
        mounts.unmount(home, vault, "main")


# -- the overlay hook in Perl and in Python ----------------------------------------------------
def _perl() -> str:
    perl = shutil.which("perl")
    if perl is None:
        skip_outside_ci(
            "no perl on PATH: the overlay mount's hook is the Python one",
            "perl must be on PATH in CI (perl-base is essential on Debian)",
        )
    return os.path.abspath(perl)


def _crafted_server(git_dir: str, reply: Any) -> tuple[socket.socket, list[bytes], threading.Thread]:
    """A stand-in for the mount daemon on the hook's socket in ``git_dir``: for each
    connection, ``reply(conn, token_line)`` answers (or not); the lines read are recorded."""
    from avfs_git.core.workspace.hookwire import SOCKET_NAME

    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dirfd = os.open(git_dir, os.O_PATH)
    try:
        srv.bind(f"/proc/self/fd/{dirfd}/{SOCKET_NAME}")  # an address holds 107 bytes
    finally:
        os.close(dirfd)
    srv.listen(4)
    got: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return  # closed
            with conn:
                line = b""
                while not line.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    line += chunk
                got.append(line)
                with contextlib.suppress(OSError):
                    reply(conn, line)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, got, t


def _stop(srv: socket.socket, t: threading.Thread) -> None:
    with contextlib.suppress(OSError):
        srv.shutdown(socket.SHUT_RDWR)  # (close alone leaves accept() waiting)
    srv.close()
    t.join(5)
    assert not t.is_alive()


def _run_hook(path: str, *args: bytes) -> tuple[int, bytes, bytes]:
    proc = subprocess.run([path, *args], capture_output=True, timeout=30, check=False)
    return proc.returncode, proc.stdout, proc.stderr


NONE = b"avfs-ovl:none\0/\0"


def _framed(body: bytes) -> bytes:
    return b"%d\n" % len(body) + body


def _echo(line: bytes) -> bytes:
    """A well-formed answer naming the token it was asked about (so a hook that sent
    something else answers differently)."""
    return b"avfs-ovl:i:b:1:7\0" + line.rstrip(b"\n") + b"\0d/x.txt\0"


BIG = b"avfs-ovl:i:b:1:9\0" + b"".join(b"dir%d/file%d.txt\0" % (i % 97, i) for i in range(20000))

# (what the daemon sends: a function of the token line; what the hook must print)
_ANSWERS: dict[str, tuple[Any, Any]] = {
    "a whole answer": (lambda ln: _framed(_echo(ln)), _echo),
    "a long one, read in many pieces": (lambda ln: _framed(BIG), lambda ln: BIG),
    "everything": (lambda ln: _framed(b"avfs-ovl:i:b:1:7\0/\0"), lambda ln: b"avfs-ovl:i:b:1:7\0/\0"),
    "cut short": (lambda ln: _framed(_echo(ln))[:-3], lambda ln: NONE),
    "longer than it says": (lambda ln: _framed(_echo(ln)) + b"x\0", lambda ln: NONE),
    "not ending in NUL": (lambda ln: _framed(b"avfs-ovl:i:b:1:7\0d/x.txt"), lambda ln: NONE),
    "no length": (lambda ln: _echo(ln), lambda ln: NONE),
    "a length that is not a number": (lambda ln: b" 17\n" + _echo(ln)[:17], lambda ln: NONE),
    "a length of a negative number": (lambda ln: b"-1\n", lambda ln: NONE),
    "an empty body": (lambda ln: b"0\n", lambda ln: NONE),
    "nothing at all": (lambda ln: b"", lambda ln: NONE),
}


@pytest.fixture
def two_hooks(tmp_path: Any) -> tuple[str, dict[str, str]]:
    """A worktree directory and its overlay hook written twice, in Perl and in Python,
    outside it (the hooks go to that directory themselves); a 2-second timeout."""
    from avfs_git.mount.hookscripts import socket_hook

    perl = _perl()
    git_dir = str(tmp_path / "wt")
    os.mkdir(git_dir)
    hooks = {}
    for kind, interpreter in (("perl", perl), ("python", None)):
        path = str(tmp_path / f"hook-{kind}")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(socket_hook(git_dir, interpreter, timeout_s=2))
        os.chmod(path, 0o755)
        hooks[kind] = path
    assert _run_hook(hooks["perl"], b"2", b"t")[1] == NONE  # nothing listens yet
    return git_dir, hooks


@pytest.mark.parametrize("case", sorted(_ANSWERS))
def test_the_perl_hook_answers_as_the_python_hook(two_hooks, case):
    """The same daemon answer, well-formed or not, gives the same output from both hooks,
    the one the protocol asks for; both send git's token as it came (bytes, not text)."""
    git_dir, hooks = two_hooks
    send, want = _ANSWERS[case]
    srv, got, t = _crafted_server(git_dir, lambda conn, line: conn.sendall(send(line)))
    token = "avfs-ovl:i:b:1:3 é".encode()
    try:
        for kind, hook in hooks.items():
            got.clear()
            code, out, err = _run_hook(hook, b"2", token)
            assert (code, err) == (0, b""), f"{kind}: {case}"
            assert got == [token + b"\n"], f"{kind}: {case}: sent {got}"
            assert out == want(token + b"\n"), f"{kind}: {case}: {out[:200]!r}"
    finally:
        _stop(srv, t)


def test_both_hooks_answer_everything_when_the_daemon_fails(two_hooks, tmp_path):
    """No socket; a socket nobody listens on (a daemon killed with -9); a daemon that hangs
    up; one that
    never answers (the timeout); a worktree directory that is gone; no token at all."""
    from avfs_git.core.workspace.hookwire import SOCKET_NAME
    from avfs_git.mount.hookscripts import socket_hook

    git_dir, hooks = two_hooks
    sock = os.path.join(git_dir, SOCKET_NAME)

    def each(what: str, *args: bytes) -> None:
        for kind, hook in hooks.items():
            t0 = time.monotonic()
            assert _run_hook(hook, *args) == (0, NONE, b""), f"{kind}: {what}"
            assert time.monotonic() - t0 < 10, f"{kind}: {what}: the timeout did not hold"

    each("no socket", b"2", b"avfs-ovl:i:b:1:3")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock)
    stale.close()  # bound, never listening: ECONNREFUSED
    each("nobody listens", b"2", b"avfs-ovl:i:b:1:3")
    os.unlink(sock)

    def hang_up(conn: socket.socket, line: bytes) -> None:
        conn.shutdown(socket.SHUT_RDWR)

    srv, got, t = _crafted_server(git_dir, hang_up)
    try:
        each("the daemon hung up", b"2", b"avfs-ovl:" + b"x" * 100_000)
    finally:
        _stop(srv, t)
    os.unlink(sock)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dirfd = os.open(git_dir, os.O_PATH)
    try:
        srv.bind(f"/proc/self/fd/{dirfd}/{SOCKET_NAME}")
    finally:
        os.close(dirfd)
    srv.listen(4)  # connections queue, nobody answers
    try:
        each("a daemon that does not answer", b"2", b"avfs-ovl:i:b:1:3")
    finally:
        srv.close()
    os.unlink(sock)
    srv, got, t = _crafted_server(git_dir, lambda conn, line: conn.sendall(_framed(_echo(line))))
    try:
        for kind, hook in hooks.items():  # git always passes one, but no token is no error
            got.clear()
            assert _run_hook(hook, b"2") == (0, _echo(b"\n"), b""), kind
            assert got == [b"\n"]
    finally:
        _stop(srv, t)
    gone = str(tmp_path / "gone")
    for kind, interpreter in (("perl", _perl()), ("python", None)):
        path = str(tmp_path / f"gone-{kind}")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(socket_hook(gone, interpreter, timeout_s=2))
        os.chmod(path, 0o755)
        assert _run_hook(path, b"2", b"t") == (0, NONE, b""), kind


def test_a_git_dir_with_quotes_and_backslashes_reaches_the_socket(tmp_path):
    """The Perl hook holds the worktree directory as a string literal of its own."""
    from avfs_git.mount.hookscripts import socket_hook

    git_dir = str(tmp_path / "it's a \\ dir $HOME @x")
    os.mkdir(git_dir)
    hook = str(tmp_path / "hook")
    with open(hook, "w", encoding="utf-8") as fh:
        fh.write(socket_hook(git_dir, _perl(), timeout_s=2))
    os.chmod(hook, 0o755)
    srv, got, t = _crafted_server(git_dir, lambda conn, line: conn.sendall(_framed(_echo(line))))
    try:
        assert _run_hook(hook, b"2", b"tok") == (0, _echo(b"tok\n"), b"")
        assert got == [b"tok\n"]
    finally:
        _stop(srv, t)


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
@pytest.mark.parametrize("kind", ["perl", "python"])
def test_a_write_just_before_git_status_is_seen(home, vault, tmp_path, kind, backend):
    """Through the mount daemon itself (which drains the kernel's events before it answers,
    on the overlay backend; reads the journal, on the pure-FUSE one): a file written and at
    once `git status`, many times over, each write seen, with the Perl hook a mount writes
    and with the Python one it falls back to. A worktree written by an older avfs (the
    Python hook: the socket one, or on the pure-FUSE backend the one that read the journal
    itself) gets the Perl one when the fork is mounted again."""
    from avfs_git.mount.hookscripts import socket_hook

    perl = _perl()
    mp = _mount_ignoring_node_modules(home, vault, tmp_path, backend)
    try:
        git_dir = _git(mp, "rev-parse", "--absolute-git-dir").strip()
        hook = os.path.join(_own(git_dir), "fsmonitor-hook")
        with open(hook, encoding="utf-8") as fh:
            assert fh.readline() == f"#!{perl} -T\n"
        with open(mounts.registry_path(vault, "main")) as fh:
            assert json.load(fh)["fsmonitor_hook"] == "perl"
        if kind == "python":
            with open(hook, "w", encoding="utf-8") as fh:
                fh.write(socket_hook(_own(git_dir), None))
        assert _status(mp, monitored=True, untracked="all") == []
        new: list[str] = []
        for i in range(20):
            _w(os.path.join(mp, "src", "app.py"), f"print({i + 2})\n")
            assert _status(mp, monitored=True, untracked="all") == sorted([" M src/app.py", *new]), i
            _w(os.path.join(mp, "src", "app.py"), "print(1)\n")
            _w(os.path.join(mp, "src", f"new{i}.py"), "new\n")
            new.append(f"?? src/new{i}.py")
            assert _status(mp, monitored=True, untracked="all") == sorted(new), i
        # a burst of ignored writes, the change last: git asks while the daemon's watcher is
        # still at the burst (answer() reads every queued event first: the journal's own tests;
        # the pure-FUSE mount journals each before the write returns: fewer, a create there
        # costs a round trip to Python)
        for i in range(10 if backend == "overlay" else 2):
            burst = os.path.join(mp, "node_modules", f"b{i}")
            for k in range(400):
                _w(os.path.join(burst, f"d{k % 40}", f"f{k}.js"), "x\n")
            _w(os.path.join(mp, "src", "app.py"), f"print({i + 100})\n")
            assert _status(mp, monitored=True, untracked="all") == sorted([" M src/app.py", *new]), i
            _w(os.path.join(mp, "src", "app.py"), "print(1)\n")
            assert _status(mp, monitored=True, untracked="all") == sorted(new), i
        # the answers came from the daemon's journal, not "everything"
        token = _index_token(git_dir) or ""
        assert _answered(token), token
        answer = _hook(git_dir, token)
        assert _answered(answer[0]), answer
        assert set(answer[1:]) <= {
            "src/",
            "src/app.py",
            "src/app.py/",
            *(f"src/new{k}.py" for k in range(20)),
        } | {f"src/new{k}.py/" for k in range(20)}, answer
        if kind == "python":
            # a daemon killed with -9 leaves its worktree; one written by an older avfs (the
            # Python hook) gets the Perl one when the fork is mounted again
            live = mounts.check(vault, "main")
            assert live is not None
            if backend == "fuse":  # (before the socket: the hook that read the journal itself)
                with open(hook, "w", encoding="utf-8") as fh:
                    fh.write(
                        _OLD_HOOK.format(python=sys.executable, db=vault.workspace("main").overlay.db_path)
                    )
            os.kill(live.pid, 9)
            deadline = time.monotonic() + 10
            while mounts.check(vault, "main") is not None and time.monotonic() < deadline:
                time.sleep(0.05)
            with open(hook, encoding="utf-8") as fh:
                assert fh.readline().startswith(f"#!{sys.executable} ")
            mounts.mount(home, vault, "main", mp, backend=backend)
            with open(hook, encoding="utf-8") as fh:
                assert fh.readline() == f"#!{perl} -T\n"
            assert _answered(_hook(git_dir, _index_token(git_dir) or "")[0])
            assert _status(mp, monitored=True, untracked="all") == sorted(new)
            _w(os.path.join(mp, "src", "app.py"), "print(0)\n")
            assert _status(mp, monitored=True, untracked="all") == sorted([" M src/app.py", *new])
    finally:
        mounts.unmount(home, vault, "main")


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
@pytest.mark.parametrize("kind", ["perl", "perl-elsewhere", "python"])
def test_the_hook_answers_inside_a_confined_exec(home, vault, tmp_path, kind, backend):
    """`proxy exec` runs commands in a bubblewrap sandbox that hides the home and /tmp (and
    avfs's state: the journal too): the hook it shows runs the system's interpreter of its
    language (proxy/placement.py) and still reaches the daemon; a Perl hook is not handed to
    Python."""
    from avfs_git.mount.hookscripts import socket_hook
    from avfs_git.proxy import confine
    from avfs_git.proxy.envelope import ExecRequest
    from avfs_git.proxy.execute import execute

    why = confine.unavailable()
    if why is not None:
        skip_outside_ci(
            f"bubblewrap unavailable here: {why}", f"bubblewrap must work for these tests in CI: {why}"
        )
    perl = _perl()
    vault.workspace("main").write(
        "ask.sh",
        b'h="$(git config core.fsmonitor)"\n'
        b'head -n 1 "$h"\n"$h" 2 avfs-ovl:junk | tr "\\0" "\\n" | head -n 2\n',
    )
    mp = _mount_ignoring_node_modules(home, vault, tmp_path, backend)
    try:
        git_dir = _git(mp, "rev-parse", "--absolute-git-dir").strip()
        hook = os.path.join(_own(git_dir), "fsmonitor-hook")
        if kind != "perl":
            interpreter = None
            if kind == "perl-elsewhere":  # under /tmp, which the sandbox replaces
                os.mkdir(tmp_path / "bin")
                os.symlink(perl, tmp_path / "bin" / "perl")
                interpreter = str(tmp_path / "bin" / "perl")
            with open(hook, "w", encoding="utf-8") as fh:
                fh.write(socket_hook(_own(git_dir), interpreter))
        assert _answered(_hook(git_dir, "avfs-ovl:junk")[0])
        res = execute(home, vault, "main", ExecRequest(shell="sh ask.sh", commit=False))
        assert res.confinement is not None and res.confinement.kind == "bwrap", res.confinement
        assert res.result is not None and res.result.exit_code == 0, res.to_dict()
        first, token, everything = res.result.stdout.splitlines()
        want = {
            "perl": f"#!{perl} -T",
            "perl-elsewhere": "#!/usr/bin/perl -T",
            "python": "#!/usr/bin/python3 -IS",
        }
        if kind != "perl" or perl == "/usr/bin/perl":
            assert first == want[kind], res.result
        # the daemon answered (a token it does not know: everything), not the hook's fallback
        assert _answered(token), res.result
        assert token.startswith("avfs-ovl:" if backend == "overlay" else "avfs:"), res.result
        assert everything == "/" and res.result.stderr == "", res.result
    finally:
        mounts.unmount(home, vault, "main")


def test_a_sigpipe_does_not_end_either_hook(two_hooks):
    """A daemon that hangs up while the hook writes its token makes the write fail with
    EPIPE and SIGPIPE; Python ignores SIGPIPE, so must the Perl hook (else it dies of it and
    git takes that for a failed hook). Sent here by hand, deterministically, while the hook
    waits for its answer: it must still read the answer whole."""
    import signal

    git_dir, hooks = two_hooks
    asked = threading.Event()
    go = threading.Event()

    def late(conn: socket.socket, line: bytes) -> None:
        asked.set()
        go.wait(10)
        conn.sendall(_framed(_echo(line)))

    srv, _, t = _crafted_server(git_dir, late)
    try:
        for kind, hook in hooks.items():
            asked.clear()
            go.clear()
            proc = subprocess.Popen([hook, "2", "tok"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                assert asked.wait(10), kind
                proc.send_signal(signal.SIGPIPE)
                time.sleep(0.2)  # (a hook that dies of it is gone by now)
                go.set()
                out, err = proc.communicate(timeout=10)
            finally:
                if proc.poll() is None:
                    proc.kill()
            assert (proc.returncode, out, err) == (0, _echo(b"tok\n"), b""), kind
    finally:
        _stop(srv, t)


# -- the pure-FUSE mount's answers from the journal ----------------------------------------------
# The hook a pure-FUSE mount had before its daemon answered over the socket: a Python script
# reading the workspace's journal itself (mount/worktree.py's _HOOK until the socket hook
# replaced it, kept here verbatim as the reference the daemon's answers are compared with;
# a worktree an older avfs left holds it: see test_a_write_just_before_git_status_is_seen).
_OLD_HOOK = """#!{python} -S
# git's fsmonitor hook (protocol v2) for an avfs mount, answered from the workspace's
# journal: only the paths changed since git's last token, so `git status` touches only them.
import sqlite3, sys

DB = {db!r}


def main():
    token = sys.argv[2] if len(sys.argv) > 2 else ""
    con = sqlite3.connect("file:" + DB + "?mode=ro", uri=True, timeout=5)
    meta = dict(con.execute("SELECT key, value FROM meta WHERE key IN ('base', 'view_time')"))
    seq = con.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0]
    state = "%s:%s" % (meta.get("base"), meta.get("view_time"))
    out = ["avfs:%s:%d" % (state, seq)]
    old = token.split(":")
    if len(old) != 4 or old[0] != "avfs":
        # git's first call (its index has no token of ours): the index avfs wrote holds the
        # base with the mount's stat data, so what may differ is exactly the overlay
        paths = [row[0] for row in con.execute("SELECT path FROM entries")]
        if "" in paths:
            out.append("/")  # the whole tree is replaced (after an undo): rescan
        else:
            seen = set()
            for path in paths:
                parent = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
                for p in (path, path + "/", parent):
                    if p and p not in seen:
                        seen.add(p)
                        out.append(p)
    elif ":".join(old[1:3]) != state:
        out.append("/")  # the base moved: everything may have changed
    else:
        seen = set()
        for (path,) in con.execute("SELECT DISTINCT path FROM journal WHERE seq > ?", (int(old[3]),)):
            parent = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
            for p in (path, path + "/", parent):
                if p and p not in seen:
                    seen.add(p)
                    out.append(p)
    sys.stdout.write("\\0".join(out) + "\\0")


main()
"""


class _OldHook:
    """The old hook script ``script`` (:data:`_OLD_HOOK`) asked for ``token``: (exit code,
    stdout). Its code runs in this process (``sys.argv`` and ``sys.stdout`` its own for the
    call; an exception is its exit 1), as the script ran it: ~230 calls a test, each a cold
    Python process of ~30 ms (7 of the test's 12 s of CPU, suitetime12). The script's first
    call, and its first that fails, also run as a real process and must answer the same."""

    def __init__(self, script: Any) -> None:
        self.script = str(script)
        with open(self.script, encoding="utf-8") as fh:
            self.code = compile(fh.read(), self.script, "exec")
        self.as_process = 0
        self.seen_failure = False

    def __call__(self, token: str) -> tuple[int, bytes]:
        import io

        out = io.StringIO()
        saved = sys.argv, sys.stdout
        sys.argv, sys.stdout = [self.script, "2", token], out
        try:
            exec(self.code, {"__name__": "__main__"})
            got = (0, out.getvalue().encode("utf-8", "surrogateescape"))
        except Exception:
            got = (1, b"")
        finally:
            sys.argv, sys.stdout = saved
        if self.as_process == 0 or (got[0] != 0 and not self.seen_failure):
            self.seen_failure |= got[0] != 0
            proc = subprocess.run([self.script, "2", token], capture_output=True, check=False)
            real = (0 if proc.returncode == 0 else 1, proc.stdout if proc.returncode == 0 else b"")
            assert real == got, f"the old hook as a process {real}, in this process {got}: {token!r}"
            self.as_process += 1
        return got


def test_the_daemon_answers_from_the_journal_as_the_old_hook_did(vault, tmp_path):
    """mount/journalhook.py against the old hook script, on the same journal states: git's
    first call, each kind of change (files, directories made, renamed and removed, chmod),
    tokens handed out before, a stale one, a malformed one, a base moved by a checkpoint and
    a restore, an undo's root entry; then the two tokens only the socket hook knows."""
    from avfs_git.mount.index import fsmonitor_token
    from avfs_git.mount.journalhook import JournalAnswerer

    ws = vault.workspace("main")
    for p, data in {"a.txt": b"a\n", "d/b.txt": b"b\n", "d/sub/c.txt": b"c\n", "e/f.txt": b"f\n"}.items():
        ws.write(p, data)
    checkpoint.save(vault, name="start")
    ws = vault.workspace("main")
    script = tmp_path / "old-hook"
    script.write_text(_OLD_HOOK.format(python=sys.executable, db=ws.overlay.db_path))
    script.chmod(0o755)
    old_hook = _OldHook(script)
    answerer = JournalAnswerer(ws.overlay)
    handed: list[str] = []  # every token either handed out: asked again at every later state
    compared = 0

    def both(token: str, what: str) -> list[str]:
        nonlocal compared
        code, out = old_hook(token)
        new = answerer.answer(token)
        if code != 0:  # (a token it cannot read: git then looks at every file)
            assert new[1:] == ["/"], f"{what}: {token!r}: {new}"
        else:
            assert out.endswith(b"\0")
            old = out[:-1].decode().split("\0")
            assert new == old, f"{what}: {token!r}"
        compared += 1
        return new

    def states(what: str) -> None:
        index_token = fsmonitor_token(ws)
        base, view, seq = index_token.split(":")[1:]
        tokens = ["", "builtin:fake", "1681234567890", index_token, *handed]
        tokens += [f"avfs:{base}:{view}:0", f"avfs:{base}:{view}:x", f"avfs:{base}:{view}:-1"]
        tokens += [f"avfs:{'0' * 40}:{view}:{seq}", f"avfs:{base}:1.5:{seq}", "avfs:a:b:c:d", "avfs:a"]
        for token in tokens:
            both(token, what)
        handed.append(both(handed[-1] if handed else index_token, what)[0])

    states("nothing changed")
    ws.write("new.txt", b"new\n")
    states("a new file")
    ws.write("a.txt", b"a, again\n")
    states("a file of the base rewritten")
    ws.chmod("d/b.txt", True)
    states("a chmod")
    ws.write("made/deep/x.txt", b"x\n")
    states("a new directory tree")
    ws.rename("d/b.txt", "d/b2.txt")
    states("a renamed file")
    ws.rename("d", "d2")
    states("a renamed directory of the base")
    ws.remove("e", recursive=True)
    states("a directory of the base removed")
    ws.write("gone.txt", b"soon gone\n")
    ws.remove("gone.txt")
    states("a file made and removed")
    ws.symlink("a.txt", "link")
    states("a symlink")
    checkpoint.save(vault, name="mid")
    states("a checkpoint: the base moved")
    ws.write("after.txt", b"after\n")
    states("a change after the checkpoint")
    checkpoint.restore(vault, "main", "start")
    ws = vault.workspace("main")
    answerer = JournalAnswerer(ws.overlay)
    states("a restore: base and view time moved")
    ws.write("kept.txt", b"not checkpointed\n")
    states("a change after the restore")
    checkpoint.restore(vault, "main", "mid")
    checkpoint.undo(vault)  # the view before it comes back over the old base: a root entry
    ws = vault.workspace("main")
    answerer = JournalAnswerer(ws.overlay)
    assert ws.overlay.get("") is not None, "the undo left no root entry to answer"
    states("an undo's root entry")
    assert "/" in both("", "the root entry")[1:]
    ws.write("after-undo.txt", b"after the undo\n")
    states("a change after the undo")
    assert compared > 200
    assert old_hook.as_process == 2, old_hook.as_process  # (and ran as a process: see _OldHook)
    # what the old hook never saw: the socket hook's own token when no daemon answered (git
    # then looked at every file, at a moment the journal cannot place), the overlay
    # daemon's tokens and avfs's question to it: everything
    for token in ("avfs-ovl:none", "avfs-ovl:0a1b2c:b:1.0:3", "avfs-since:0a1b2c:3"):
        assert answerer.answer(token)[1:] == ["/"], token
    assert answerer.answer(handed[-1])[0] == answerer.answer("")[0]
