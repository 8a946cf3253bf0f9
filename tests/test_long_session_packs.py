"""A long session in one mount (issue 31): the mount's daemon holds the vault's packs, not
every pack the session ever wrote.

Each checkpoint writes a pack, and past a few dozen the geometric repack rolls the small
ones into one and removes them (``packwriter.maybe_consolidate``). libgit2 never forgets
a pack it opened, so the daemon's repositories (one a thread) kept every removed pack open
and searched them all on each read that missed (838 descriptors in an overlay mount's
daemon after 600 checkpoints of ``bench/longsess.py``); the pure reader kept them mapped.
Counted here: the daemon's open descriptors of removed packs, through warm ``proxy exec``
calls as an agent makes them, across checkpoints and repacks; and the pure reader's packs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import weakref

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import packwriter
from avfs_git.core.store.objreader import ObjectReader
from avfs_git.ops import mounts

from .test_fsmonitor import _mount_ignoring_node_modules

ROUNDS = 30
REPACK_EVERY = 5


def _removed_packs_held(pid: int) -> tuple[int, int]:
    """(descriptors of removed pack files, all descriptors) of process ``pid``; the
    second moves with the packs on disk and the threads that read them."""
    held = total = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        total += 1
        held += "/objects/pack/" in target and target.endswith("(deleted)")
    return held, total


def _exec_true(vault_name: str) -> None:
    """A warm `proxy exec -- true`: the mount's daemon runs it (its before and after read
    the fork's new base, from the pack the last checkpoint wrote)."""
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "avfs_git",
            "--json",
            "--vault",
            f"{vault_name}:main",
            "proxy",
            "exec",
            "--",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_the_daemon_lets_go_of_the_packs_a_repack_removed(home, vault, tmp_path, backend):
    mp = _mount_ignoring_node_modules(home, vault, tmp_path, backend)
    try:
        (info,) = mounts.list_mounts(home)
        held: list[int] = []
        totals: list[int] = []
        for k in range(ROUNDS):
            os.makedirs(os.path.join(mp, f"b{k}"))
            with open(os.path.join(mp, f"b{k}", "x.txt"), "w") as fh:
                fh.write(f"round {k}\n")
            assert checkpoint.save(vault, message=f"round {k}").created  # a pack of its own
            _exec_true(vault.name)
            if k % REPACK_EVERY == REPACK_EVERY - 1:
                assert packwriter.maybe_consolidate(vault.path, limit=2, wait=True)
                time.sleep(0.6)  # (a store looks at its pack directory at most every 0.5 s)
                _exec_true(vault.name)
            n, total = _removed_packs_held(info.pid)
            held.append(n)
            totals.append(total)
        third = ROUNDS // 3
        # was one more a checkpoint: every pack the session wrote, removed or not (20-28 in the
        # last third). Now bounded, not constant: a repository a thread still used when its
        # packs went is let go by the garbage collector, so a repack's peak is 7-14 here
        assert max(held[-third:]) <= max(held[:third]) + 2 * REPACK_EVERY, (str(held), str(totals))
    finally:
        mounts.unmount(home, vault, "main")


def test_the_pure_reader_forgets_the_packs_a_repack_removed(vault):
    """The pure reader's packs are those in the pack directory, not every pack it ever
    opened: each read that missed searched them all, in Python."""
    ws = vault.workspace("main")
    reader = ObjectReader(vault.path)
    for k in range(12):
        ws.write(f"f{k}.txt", f"{k}\n".encode())
        checkpoint.save(vault, message=f"c{k}")
        assert reader.read(vault.workspace("main").base) is not None  # (its pack opened)
        if k % 4 == 3:
            assert packwriter.maybe_consolidate(vault.path, limit=2, wait=True)
    reader.read("0" * 40)  # a miss: the directory listed again
    on_disk = {n for n in os.listdir(os.path.join(vault.path, "objects", "pack")) if n.endswith(".idx")}
    assert set(reader._packs) == on_disk


def _checkpoints(vault, ks: range) -> list[str]:
    """A checkpoint of a new file ``f{k}.txt`` for each of ``ks`` (a pack each), and the
    files' blob ids."""
    ws = vault.workspace("main")
    blobs = []
    for k in ks:
        ws.write(f"f{k}.txt", f"pack {k}\n".encode())
        assert checkpoint.save(vault, message=f"c{k}").created
        blobs.append(ws.blob_of(f"f{k}.txt"))
    return blobs


def test_the_pure_reader_reads_an_object_whose_pack_a_repack_removed(vault):
    """A pack the reader listed but never read from (its index mapped, not its data) that a
    repack removed: the objects it held are in the new pack, and are read from there. The
    reader listed the directory again only on a miss, and the old index still found them,
    so each read of such an object tried to open the removed pack's data: "cannot be read"
    (an unreadable object where a loose copy went meanwhile), and a command's process that
    had not loaded pygit2 loaded it to read them (~85 ms), then read everything through it."""
    blobs = _checkpoints(vault, range(4))
    reader = ObjectReader(vault.path)
    assert reader.read(blobs[-1]) == ("blob", b"pack 3\n")  # every index listed, one pack read
    assert packwriter.maybe_consolidate(vault.path, limit=2, wait=True)
    assert reader.read(blobs[0]) == ("blob", b"pack 0\n")
    assert reader.header(blobs[1]) == ("blob", 7)
    assert reader.kinds(blobs[:3]) == dict.fromkeys(blobs[:3], "blob")
    on_disk = {n for n in os.listdir(os.path.join(vault.path, "objects", "pack")) if n.endswith(".idx")}
    assert set(reader._packs) == on_disk  # (the removed packs dropped on the way)

    blobs = _checkpoints(vault, range(4, 8))
    code = (
        "import sys; from avfs_git.core.store.gitstore import GitStore\n"
        f"s = GitStore({vault.path!r}); print(s.read_object({blobs[-1]!r})[1].decode(), end='', flush=True)\n"
        "sys.stdin.readline()\n"
        f"print(s.blob_data({blobs[1]!r}).decode(), end=''); print('pygit2' in sys.modules)\n"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None and p.stdout.readline() == "pack 7\n"
    before = set(os.listdir(os.path.join(vault.path, "objects", "pack")))
    assert packwriter.maybe_consolidate(vault.path, limit=2, wait=True)
    assert before - set(os.listdir(os.path.join(vault.path, "objects", "pack")))  # (f5's pack among them)
    out, _ = p.communicate("\n", timeout=60)
    assert out == "pack 5\nFalse\n"


@pytest.mark.parametrize("way", ["pure", "libgit2"])
def test_the_pure_reader_of_a_store_lets_go_of_removed_packs_without_a_miss(vault, way):
    """A store's pure reader (a mount's daemon reads loose objects, headers and big blobs
    through it) lets go of the packs a repack removed once its store sees them gone, on
    its own next lookup or on the store's next way into libgit2, not only when a read
    misses: an overlay daemon held 12-18 descriptors of removed packs (the reader's maps
    of their indexes and data) after a repack, its reads since going through libgit2."""
    from avfs_git.core.store.gitstore import GitStore
    from avfs_git.core.store.packset import LOOK_S

    blobs = _checkpoints(vault, range(6))
    store = GitStore(vault.path)
    for oid in blobs:  # every pack's index and data mapped
        assert store._reader.read(oid) is not None
    mapped = [weakref.ref(p) for p in store._reader._packs.values() if p is not None]
    assert len(mapped) == 6 and all(p()._pack is not None for p in mapped)  # type: ignore[union-attr]
    assert packwriter.maybe_consolidate(vault.path, limit=2, wait=True)
    time.sleep(LOOK_S + 0.1)  # (a store looks at its pack directory at most this often)
    if way == "pure":
        assert store._reader.header(blobs[0]) == ("blob", 7)  # found: no miss
    else:
        assert store._repo[blobs[0]].size == 7
    pack_dir = os.path.join(vault.path, "objects", "pack")
    assert set(store._reader._packs) == {n for n in os.listdir(pack_dir) if n.endswith(".idx")}
    assert [r for r in mapped if r() is not None] == []  # their maps and descriptors freed


def test_the_pure_reader_follows_the_listing_its_store_looks_at(vault):
    """A reader that took another pack listing than its store's (two threads made the
    store's first one at once: "each counts from 0", and the reader's factory call and the
    store's way into libgit2 each kept their own) follows the one the store looks at once
    the store hands it over: it was only ever looked at by the reader's own lookups, so a
    reader gone idle (a mount's daemon reads through libgit2) kept the removed packs."""
    from avfs_git.core.store.gitstore import GitStore
    from avfs_git.core.store.packset import LOOK_S, PackSet

    blobs = _checkpoints(vault, range(6))
    store = GitStore(vault.path)
    for oid in blobs:  # every pack's index and data mapped
        assert store._reader.read(oid) is not None
    store._reader.follow_packs(PackSet(vault.path))  # (a second thread's listing)
    assert store._repo[blobs[0]].size == 7  # (the store's own listing made and looked at)
    mapped = [weakref.ref(p) for p in store._reader._packs.values() if p is not None]
    assert packwriter.maybe_consolidate(vault.path, limit=2, wait=True)
    time.sleep(LOOK_S + 0.1)  # (a store looks at its pack directory at most this often)
    assert store._repo[blobs[1]].size == 7
    pack_dir = os.path.join(vault.path, "objects", "pack")
    assert set(store._reader._packs) == {n for n in os.listdir(pack_dir) if n.endswith(".idx")}
    assert [r for r in mapped if r() is not None] == []
