"""git's own gc in a mount never loses a file the workspace holds as a blob id (the
twenty-fourth round, NAME=gitgc1; found by race1).

An overlay entry may name a git object by id that no ref, reflog or index names (an
untracked file's bytes kept as a blob id by a move of the branch or an undo). git's gc in a
mount is git on the vault itself: every form a person or a tool runs (`git gc`,
`--aggressive`, `git repack -a -d`, `git prune`, `git maintenance run`, `git gc --auto`)
pruned such a blob and the file read ``EIO`` after a remount. Each fork's held ref
(``refs/avfs/held/<fork>/-/objects``, core/store/heldref.py) names them now; it is not a
branch a clone or ``git branch -a`` shows, and ``git fsck`` stays clean.

Each test runs real git in a real mount on both backends; the person's sequence runs beside
a plain clone doing the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import refs
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.core.workspace.overlayentry import OBJECT, Entry
from avfs_git.ops import mounts

from .conftest import git
from .test_fuse import require_fuse
from .test_overlay import require_overlay

MODE_BLOB = 0o100644
HELD_BYTES = b"only the database names this blob\n"

# how a person or a tool runs git's gc in the mount; each prunes an unreachable object at
# once (`maintenance` and `--auto` with the expiry a configured repository may have)
GC_FORMS = {
    "gc": ["gc", "-q", "--prune=now"],
    "gc_aggressive": ["gc", "-q", "--prune=now", "--aggressive"],
    "repack": ["repack", "-a", "-d", "-q"],
    "prune": ["prune", "--expire=now"],
    "maintenance": ["-c", "gc.pruneExpire=now", "maintenance", "run", "--task=gc", "--quiet"],
    "gc_auto": [
        "-c",
        "gc.autoDetach=false",
        "-c",
        "gc.auto=1",
        "-c",
        "gc.autoPackLimit=1",
        "-c",
        "gc.pruneExpire=now",
        "gc",
        "--auto",
        "-q",
    ],
}


def _require(backend: str) -> None:
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()


def _unreachable_blob(vault: Vault, data: bytes, *, packed: bool) -> str:
    """A blob nothing of git's names; with ``packed`` in a pack of its own, its loose copy
    gone (`git repack -a -d` drops an unreachable packed object, `git prune` a loose one)."""
    blob = (
        subprocess.run(
            ["git", "--git-dir", vault.path, "hash-object", "-w", "--stdin"],
            input=data,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    if packed:
        subprocess.run(
            ["git", "--git-dir", vault.path, "pack-objects", "-q", f"{vault.path}/objects/pack/pack"],
            input=blob.encode() + b"\n",
            capture_output=True,
            check=True,
        )
        git("--git-dir", vault.path, "prune-packed")
    return blob


def _has(vault: Vault, oid: str) -> bool:
    return (
        subprocess.run(
            ["git", "--git-dir", vault.path, "cat-file", "-e", oid], capture_output=True
        ).returncode
        == 0
    )


def _clean_for_a_person(vault: Vault, tmp_path: Path) -> None:
    """`git fsck --strict` of the vault is clean, and a clone of it shows no ref of avfs's."""
    fsck = subprocess.run(
        ["git", "--git-dir", vault.path, "fsck", "--strict", "--no-dangling"], capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert "error" not in fsck.stderr and "warning" not in fsck.stderr, fsck.stderr
    clone = tmp_path / "clone"
    git("clone", "-q", vault.path, str(clone))
    assert "avfs" not in git("branch", "-a", cwd=clone)
    assert "refs/avfs" not in git("for-each-ref", cwd=clone)
    assert "objects the fork" not in git("log", "--all", "--format=%s", cwd=clone)


@pytest.mark.parametrize("form", sorted(GC_FORMS))
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_an_untracked_file_held_as_a_blob_id_outlives_every_form_of_git_s_gc(
    home: Home, vault: Vault, tmp_path: Path, backend: str, form: str
) -> None:
    _require(backend)
    ws = vault.workspace("main")
    ws.write("kept.txt", b"in git\n")
    checkpoint.save(vault, "main")
    blob = _unreachable_blob(vault, HELD_BYTES, packed=form in ("repack", "gc_auto"))
    with ws.overlay.txn() as db:  # what take_tip keeps where git moved the branch (a "git" entry)
        ws.overlay.put(db, Entry("held.txt", OBJECT, MODE_BLOB, blob), "git")
    assert refs.read_ref_file(vault.path, refs.held_ref("main")) is not None
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend=backend)
    try:
        assert "?? held.txt" in git("status", "--porcelain", cwd=mp)  # untracked: no index names it
        git(*GC_FORMS[form], cwd=mp)
        assert _has(vault, blob), f"git {' '.join(GC_FORMS[form])} in the mount pruned the held blob"
        mounts.unmount(home, vault, "main")
        mounts.mount(home, vault, "main", str(mp), backend=backend)
        assert (mp / "held.txt").read_bytes() == HELD_BYTES
        assert "?? held.txt" in git("status", "--porcelain", cwd=mp)
    finally:
        mounts.unmount(home, vault, "main")
    _clean_for_a_person(vault, tmp_path)


def _avfs_status(home: Home) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--home", home.path, "--vault", "v:main", "status"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _person(cwd: Path, between: Callable[[], None]) -> None:
    """A person's sequence: the last commit (which added NEW.txt) undone softly and
    unstaged, so the file stays untracked; ``between`` (an avfs command, in the mount);
    then the reflogs expired and git's gc run (their own clean-up)."""
    git("reset", "-q", "--soft", "HEAD~1", cwd=cwd)
    git("reset", "-q", cwd=cwd)
    between()
    git("reflog", "expire", "--expire=now", "--all", cwd=cwd)
    git("gc", "-q", "--prune=now", cwd=cwd)


def _undo_then_gc(home: Home, vault: Vault, tmp_path: Path, backend: str, *, status_between: bool) -> None:
    _require(backend)
    ws = vault.workspace("main")
    ws.write("README.md", b"hello\n")
    checkpoint.save(vault, "main")
    ws.write("NEW.txt", b"a file the person keeps\n")
    checkpoint.save(vault, "main")
    plain = tmp_path / "plain"
    git("clone", "-q", vault.path, str(plain))
    _person(plain, lambda: None)
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend=backend)
    try:
        _person(mp, (lambda: _avfs_status(home)) if status_between else (lambda: None))
        _avfs_status(home)
        assert (mp / "NEW.txt").read_bytes() == (plain / "NEW.txt").read_bytes()
        want = "?? NEW.txt\n"
        assert git("status", "--porcelain", cwd=mp) == git("status", "--porcelain", cwd=plain) == want
        mounts.unmount(home, vault, "main")
        mounts.mount(home, vault, "main", str(mp), backend=backend)
        assert (mp / "NEW.txt").read_bytes() == (plain / "NEW.txt").read_bytes()
        assert git("status", "--porcelain", cwd=mp) == git("status", "--porcelain", cwd=plain)
        # the file is the fork's as the person's is theirs: a checkpoint records it
        checkpoint.save(vault, "main")
        assert git("--git-dir", vault.path, "show", "main:NEW.txt") == "a file the person keeps\n"
    finally:
        mounts.unmount(home, vault, "main")
    _clean_for_a_person(vault, tmp_path)


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_commit_undone_then_git_s_gc_keeps_the_file_as_a_plain_clone_does(
    home: Home, vault: Vault, tmp_path: Path, backend: str
) -> None:
    """avfs took git's move (an avfs command between): the file is an entry naming the
    old commit's blob, which git's gc pruned before (EIO after a remount)."""
    _undo_then_gc(home, vault, tmp_path, backend, status_between=True)


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_commit_undone_then_reflogs_expired_before_avfs_looks_keeps_the_file(
    home: Home, vault: Vault, tmp_path: Path, backend: str
) -> None:
    """No avfs command between git's move and git's clean-up: a plain clone keeps the
    file on its disk; the mount's view stands on the old commit, which nothing holds."""
    _undo_then_gc(home, vault, tmp_path, backend, status_between=False)


def test_a_checkpoint_holds_no_more_than_the_overlay_names(home: Home, vault: Vault, tmp_path: Path) -> None:
    """The held ref names what the overlay names by id: a checkpoint that retires the
    entry (its file recorded in the fork's commit) removes the ref, so nothing is kept past
    what git's own refs keep."""
    ws = vault.workspace("main")
    ws.write("kept.txt", b"in git\n")
    checkpoint.save(vault, "main")
    blob = _unreachable_blob(vault, HELD_BYTES, packed=False)
    with ws.overlay.txn() as db:
        ws.overlay.put(db, Entry("held.txt", OBJECT, MODE_BLOB, blob), "git")
    name = refs.held_ref("main")
    held = refs.read_ref_file(vault.path, name)
    assert held is not None
    assert git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", held).split() == [
        f"{blob[:2]}/{blob}"
    ]
    checkpoint.save(vault, "main")
    assert refs.read_ref_file(vault.path, name) is None
    assert git("--git-dir", vault.path, "show", "main:held.txt").encode() == HELD_BYTES


def test_a_fork_of_a_live_fork_keeps_its_seed_through_git_s_gc(home: Home, vault: Vault) -> None:
    """A fork of a fork with changes starts from a tree of the source's view (its seed)
    that no ref names until the new fork's first use: git's gc in the meantime kept it."""
    ws = vault.workspace("main")
    ws.write("a.txt", b"checkpointed\n")
    checkpoint.save(vault, "main")
    ws.write("b.txt", b"not checkpointed, forked\n")
    vault.create_fork("main", "f", ignored=False)
    git("--git-dir", vault.path, "reflog", "expire", "--expire=now", "--all")
    git("--git-dir", vault.path, "gc", "-q", "--prune=now")
    assert vault.workspace("f").read("b.txt") == b"not checkpointed, forked\n"
    vault.delete_fork("f")
    assert refs.read_ref_file(vault.path, refs.held_ref("f")) is None


def test_the_held_ref_outlives_pack_refs_and_goes_when_nothing_is_named(home: Home, vault: Vault) -> None:
    """git's `pack-refs --all` (every `git gc`) moves the held ref into packed-refs: the next
    hold writes it loose over that line, keeping what the line named, and the checkpoint
    that retires every entry removes both."""
    ws = vault.workspace("main")
    ws.write("kept.txt", b"in git\n")
    checkpoint.save(vault, "main")
    one = _unreachable_blob(vault, b"one\n", packed=False)
    two = _unreachable_blob(vault, b"two\n", packed=False)
    with ws.overlay.txn() as db:
        ws.overlay.put(db, Entry("one.txt", OBJECT, MODE_BLOB, one), "git")
    name = refs.held_ref("main")
    git("--git-dir", vault.path, "pack-refs", "--all", "--prune")
    assert name in git("--git-dir", vault.path, "for-each-ref", "--format=%(refname)")
    assert not (Path(vault.path) / name).exists()
    with ws.overlay.txn() as db:
        ws.overlay.put(db, Entry("two.txt", OBJECT, MODE_BLOB, two), "git")
    assert (Path(vault.path) / name).exists()
    named = git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", name).split()
    assert sorted(n.rpartition("/")[2] for n in named) == sorted([one, two])
    checkpoint.save(vault, "main")
    assert git("--git-dir", vault.path, "for-each-ref", refs.HELD) == ""
    assert git("--git-dir", vault.path, "show", "main:two.txt") == "two\n"
    fsck = subprocess.run(
        ["git", "--git-dir", vault.path, "fsck", "--strict"], capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stderr


def test_writers_holding_at_once_lose_no_id(home: Home, vault: Vault) -> None:
    """Two writers adding ids to one fork's held ref at the same moment (a mount's daemon
    and a CLI command): compare-and-swap, read again and retried; every id is held."""
    from avfs_git.core.store import heldref

    blobs = [_unreachable_blob(vault, f"blob {i}\n".encode(), packed=False) for i in range(40)]
    errors: list[BaseException] = []

    def writer(part: list[str]) -> None:
        try:
            for oid in part:
                heldref.hold(vault.store, "main", [oid])
        except BaseException as exc:  # (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(blobs[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(heldref.held(vault.store, "main")) == sorted(blobs)


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_file_renamed_then_its_commit_undone_outlives_git_s_gc(
    home: Home, vault: Vault, tmp_path: Path, backend: str
) -> None:
    """A file renamed unchanged is an entry naming the base's blob (pure FUSE), which the
    branch keeps and nothing holds; git's `reset --soft HEAD~1` taken (an avfs command)
    and unstaged makes a base that has no such file, so from then on only the held ref keeps the blob
    through `git reflog expire` and `git gc --prune=now`. A plain clone beside keeps it."""
    _require(backend)
    ws = vault.workspace("main")
    ws.write("README.md", b"hello\n")
    checkpoint.save(vault, "main")
    ws.write("a.txt", b"added, then renamed\n")
    checkpoint.save(vault, "main")
    plain = tmp_path / "plain"
    git("clone", "-q", vault.path, str(plain))
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend=backend)
    try:
        for cwd in (plain, mp):
            os.rename(cwd / "a.txt", cwd / "b.txt")
        if backend == "fuse":  # (the rename of a file the branch holds writes no ref)
            assert refs.read_ref_file(vault.path, refs.held_ref("main")) is None
        for cwd in (plain, mp):
            git("reset", "-q", "--soft", "HEAD~1", cwd=cwd)
            git("reset", "-q", cwd=cwd)  # (nor git's index names the blob then)
        _avfs_status(home)
        for cwd in (plain, mp):
            git("reflog", "expire", "--expire=now", "--all", cwd=cwd)
            git("gc", "-q", "--prune=now", cwd=cwd)
        assert git("status", "--porcelain", cwd=mp) == git("status", "--porcelain", cwd=plain)
        mounts.unmount(home, vault, "main")
        mounts.mount(home, vault, "main", str(mp), backend=backend)
        assert (mp / "b.txt").read_bytes() == (plain / "b.txt").read_bytes() == b"added, then renamed\n"
        assert git("status", "--porcelain", cwd=mp) == git("status", "--porcelain", cwd=plain)
    finally:
        mounts.unmount(home, vault, "main")
    _clean_for_a_person(vault, tmp_path)


def test_the_base_is_held_while_the_fork_is_mounted_and_only_then(
    home: Home, vault: Vault, tmp_path: Path
) -> None:
    """The held base ref (the commit a mount's lower layer shows) is made when the fork is
    mounted, moves with the base while it is (a checkpoint), and goes at the unmount: a
    command on a fork nobody mounts writes no ref (gitgc2 wrote it at every command: a
    damaged vault's failing command changed the refs; gitgc3)."""
    require_fuse()
    ws = vault.workspace("main")
    ws.write("kept.txt", b"in git\n")
    checkpoint.save(vault, "main")
    name = refs.held_base_ref("main")
    assert refs.read_ref_file(vault.path, name) is None
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend="fuse")
    try:
        assert (
            refs.read_ref_file(vault.path, name) == git("--git-dir", vault.path, "rev-parse", "main").strip()
        )
        (mp / "more.txt").write_text("more\n")
        checkpoint.save(vault, "main")
        assert (
            refs.read_ref_file(vault.path, name) == git("--git-dir", vault.path, "rev-parse", "main").strip()
        )
    finally:
        mounts.unmount(home, vault, "main")
    assert refs.read_ref_file(vault.path, name) is None
    ws.write("after.txt", b"unmounted\n")
    checkpoint.save(vault, "main")
    assert git("--git-dir", vault.path, "for-each-ref", refs.HELD) == ""
