"""git in a mount agrees with avfs the moment a base move returns: after `checkpoint
restore`, `undo`, a merge, `merge --continue`/`--abort` or a checkpoint, the mount's git
index already holds the new base, so `git status`, `git add` and `git commit` issued right
away see the tree avfs shows (an index left at the old base made `git commit` commit the
old tree, undoing the restore). Real mounts, real git, back to back, no sleeps."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint, merge
from avfs_git.core.store import packwriter
from avfs_git.ops import mounts

from .conftest import git
from .test_fuse import require_fuse

ROUNDS = 50


def _git_in(mp: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["git", *args], cwd=mp, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} in the mount failed ({proc.returncode}): {proc.stderr}")
    return proc


_TREES: dict[tuple[str, str], dict[str, str]] = {}


def _files(vault: Any, rev: str) -> dict[str, str]:
    """path -> blob id of every file of commit ``rev``'s tree, by `git ls-tree`; asked once
    a commit (``rev`` is an id: what its tree holds never changes; a round's expected base
    is one of a few, asked again every round)."""
    key = (vault.path, rev)
    if key not in _TREES:
        out = git("--git-dir", vault.path, "ls-tree", "-r", rev)
        _TREES[key] = {line.split("\t", 1)[1]: line.split()[2] for line in out.splitlines()}
    return dict(_TREES[key])


def _blob(data: bytes) -> str:
    """The id git gives a blob of ``data`` (``git hash-object``: the SHA-1 of its header
    and bytes), computed here rather than by a process a round."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _commit_a_new_file(vault: Any, mp: str, name: str, expected_base: str) -> None:
    """Right after a move to ``expected_base``: the index holds it (nothing staged, nothing
    reported), and `git add NEW && git commit` makes exactly ``expected_base`` + NEW."""
    assert _git_in(mp, "diff", "--cached", "--quiet", check=False).returncode == 0, _git_in(
        mp, "diff", "--cached", "--stat", check=False
    ).stdout
    assert _git_in(mp, "status", "--porcelain").stdout == ""
    data = f"{name}\n".encode()
    with open(os.path.join(mp, name), "wb") as fh:
        fh.write(data)
    _git_in(mp, "add", name)
    _git_in(mp, "commit", "-qm", f"add {name}")
    head, parent = _git_in(mp, "rev-parse", "HEAD", "HEAD^").stdout.split()
    assert parent == expected_base
    assert _files(vault, head) == {**_files(vault, expected_base), name: _blob(data)}


@pytest.fixture
def mounted(home: Any, vault: Any, tmp_path: Any, monkeypatch: Any) -> Iterator[tuple[Any, str, str, str]]:
    """main mounted; checkpoints one (a, b, sub/c) and two (a changed, b gone, d added)."""
    require_fuse()
    # a hundred checkpoints in this process would start a detached repack, whose Popen the
    # test process then drops while it runs (a ResourceWarning, an error under pytest here)
    monkeypatch.setattr(packwriter, "PACK_LIMIT", 10_000)
    ws = vault.workspace("main")
    ws.write("a.txt", b"a1\n")
    ws.write("b.txt", b"b1\n")
    ws.write("sub/c.txt", b"c1\n")
    one = checkpoint.save(vault, "main", name="one").checkpoint.commit
    ws.write("a.txt", b"a2\n")
    ws.remove("b.txt")
    ws.write("sub/d.txt", b"d2\n")
    two = checkpoint.save(vault, "main", name="two").checkpoint.commit
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp))
    try:
        yield vault, str(mp), one, two
    finally:
        try:
            mounts.unmount(home, vault, "main", lazy=True)
        finally:
            if mounts.mounted_at(str(mp)):
                subprocess.run(["fusermount3", "-u", "-z", str(mp)], check=False)


def test_restore_then_git_commit_back_to_back(mounted: tuple[Any, str, str, str]) -> None:
    vault, mp, one, two = mounted
    for i in range(ROUNDS):
        target = (one, two)[i % 2]
        res = checkpoint.restore(vault, "main", target)
        assert res.commit == target
        _commit_a_new_file(vault, mp, f"r{i}.txt", target)


def test_restore_from_the_cli_then_git_commit(mounted: tuple[Any, str, str, str], cli_proc: Any) -> None:
    """The issue's own sequence: `avfs checkpoint restore CP; git commit` in a shell."""
    vault, mp, one, two = mounted
    for i in range(5):
        target = (one, two)[i % 2]
        r = cli_proc("--vault", "v:main", "checkpoint", "restore", target)
        assert r.code == 0, r
        _commit_a_new_file(vault, mp, f"c{i}.txt", target)


def test_undo_then_git_commit_back_to_back(mounted: tuple[Any, str, str, str]) -> None:
    vault, mp, one, _ = mounted
    for i in range(ROUNDS):
        before = vault.workspace("main").tip()
        checkpoint.restore(vault, "main", one)
        checkpoint.undo(vault)  # back to the tip the restore left, view and all
        assert vault.workspace("main").tip() == before
        _commit_a_new_file(vault, mp, f"u{i}.txt", before)


def test_merge_then_git_commit_back_to_back(mounted: tuple[Any, str, str, str]) -> None:
    vault, mp, _, _ = mounted
    vault.create_fork("main", "side")
    side = vault.workspace("side")
    for i in range(ROUNDS):
        side.write(f"side/s{i}.txt", f"s{i}\n".encode())
        checkpoint.save(vault, "side")
        res = merge.merge(vault, "side", "main")
        assert res.status in ("merged", "fast_forward") and res.commit is not None
        assert f"side/s{i}.txt" in _files(vault, res.commit)
        _commit_a_new_file(vault, mp, f"m{i}.txt", res.commit)


def test_checkpoint_then_git_commit_back_to_back(mounted: tuple[Any, str, str, str]) -> None:
    """A checkpoint keeps the view: the index is patched where the bases differ (added,
    deleted, a file become a directory), and must equal a full rewrite's."""
    vault, mp, _, _ = mounted
    for i in range(ROUNDS // 2):
        with open(os.path.join(mp, f"k{i}.txt"), "w") as fh:
            fh.write(f"k{i}\n")
        if i:
            os.remove(os.path.join(mp, f"k{i - 1}.txt"))
        if i == 3:
            os.remove(os.path.join(mp, "sub/c.txt"))
            os.makedirs(os.path.join(mp, "sub/c.txt"))
            with open(os.path.join(mp, "sub/c.txt/inner.txt"), "w") as fh:
                fh.write("inner\n")
        cp = checkpoint.save(vault, "main").checkpoint.commit
        _commit_a_new_file(vault, mp, f"k{i}-git.txt", cp)


def _conflicting_other(vault: Any) -> str:
    """Fork ``other`` and ``main`` each checkpoint their own ``a.txt`` (a merge of the one
    into the other conflicts); returns main's checkpoint."""
    vault.create_fork("main", "other")
    vault.workspace("other").write("a.txt", b"theirs\n")
    checkpoint.save(vault, "other")
    vault.workspace("main").write("a.txt", b"ours\n")
    return str(checkpoint.save(vault, "main").checkpoint.commit)


def test_merge_continue_and_abort_leave_the_index_at_the_new_base(mounted: tuple[Any, str, str, str]) -> None:
    vault, mp, _, _ = mounted
    ours = _conflicting_other(vault)
    for i in range(5):
        res = merge.merge(vault, "other", "main", write_conflicts=True)
        assert res.status == "conflicts_written"
        with open(os.path.join(mp, "a.txt")) as fh:
            assert "<<<<<<< " in fh.read()
        merge.merge_abort(vault, "main")
        _commit_a_new_file(vault, mp, f"ab{i}.txt", ours)
        ours = vault.workspace("main").tip()
    merge.merge(vault, "other", "main", write_conflicts=True)
    with open(os.path.join(mp, "a.txt"), "w") as fh:
        fh.write("resolved\n")
    done = merge.merge_continue(vault, "main")
    assert done.commit is not None
    _commit_a_new_file(vault, mp, "after-continue.txt", done.commit)
    assert git("--git-dir", vault.path, "show", f"{done.commit}:a.txt") == "resolved\n"


def test_a_git_add_made_right_after_a_restore_is_not_undone_by_the_daemon(
    mounted: tuple[Any, str, str, str],
) -> None:
    """The daemon notices the move after the restore returned; the index the restore wrote
    is current, so it leaves it (and what was staged since) alone."""
    vault, mp, one, two = mounted
    for i in range(ROUNDS // 2):
        target = (one, two)[i % 2]
        checkpoint.restore(vault, "main", target)
        name = f"staged{i}.txt"
        with open(os.path.join(mp, name), "w") as fh:
            fh.write("staged\n")
        _git_in(mp, "add", name)
        # whatever the daemon does meanwhile, the staged file stays staged
        staged = _git_in(mp, "diff", "--cached", "--name-only").stdout.split()
        assert staged == [name]
        _git_in(mp, "commit", "-qm", name)
        assert _files(vault, _git_in(mp, "rev-parse", "HEAD").stdout.strip()) == {
            **_files(vault, target),
            name: _blob(b"staged\n"),
        }


def test_an_index_rewritten_during_a_merge_hashes_an_old_file_of_the_upper_layer(
    mounted: tuple[Any, str, str, str],
) -> None:
    """The mount's index rewritten while a merge is open (its conflicts written into the
    mounted fork) reads the open merge inside one read snapshot of the overlay's database;
    the status that asks for must not start a write transaction there to keep the blob id
    of an upper-layer file older than the hash cache's guard (2 s: a conflicted file
    written a moment earlier on a loaded machine): "cannot start a transaction within a
    transaction", seen in CI under load."""
    vault, mp, _, _ = mounted
    ours = _conflicting_other(vault)
    res = merge.merge(vault, "other", "main", write_conflicts=True)
    assert res.status == "conflicts_written"
    path = os.path.join(mp, "a.txt")
    old = os.stat(path).st_mtime - 3600
    os.utime(path, (old, old))  # (its stat data changed: not in the hash cache)
    ws = vault.workspace("main")
    ws.base_moved(view_changed=False)
    assert [c.path for c in ws.status()] == ["a.txt"]
    assert _git_in(mp, "ls-files", "-u").stdout.count("a.txt") == 3
    merge.merge_abort(vault, "main")
    _commit_a_new_file(vault, mp, "after-abort.txt", ours)
