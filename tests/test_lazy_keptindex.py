"""A lazy vault's git index kept per base tree (mount/keptindex.py, docs/lazy.md "The index
kept per base"): a mount of a base that has one patches it instead of listing the tree,
asking the sizes and running git for the untracked cache, against a real `git daemon` and
real mounts. The relay of tests/test_lazy_settle.py holds the sizes' request of the second
mount: the index patched from the kept one needs none, so git answers meanwhile."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
from pathlib import Path

import pytest

from avfs_git.core.vaults.home import Home
from avfs_git.mount import keptindex
from avfs_git.ops import mounts

from .conftest import git
from .test_lazy import Server, objects
from .test_lazy import server as server
from .test_lazy_settle import HOLD_S, Relay, _backend_or_skip, _daemon_log, _in_thread

WAIT_S = HOLD_S / 2


def _status(mp: Path, *config: str) -> subprocess.CompletedProcess[str]:
    args = ["git", *[x for c in config for x in ("-c", c)], "status", "--porcelain", "--untracked-files=all"]
    return subprocess.run(args, cwd=mp, capture_output=True, text=True)


def _first_mount(home: Home, mp: Path, backend: str) -> str:
    """Mount the lazy fork ``main`` of vault ``p`` (its index made whole, then kept), run
    git status, unmount; its base tree."""
    v = home.vault("p")
    mounts.mount(home, v, "main", str(mp), backend=backend)
    try:
        assert _status(mp).stdout == ""
    finally:
        mounts.unmount(home, v, "main", lazy=True)
    return git("--git-dir", v.path, "rev-parse", "main^{tree}").strip()


def _unsized(home: Home) -> None:
    """Forget the vault's size cache: the next mount asks the sizes again (a request the
    relay holds), while its index can come from the kept one."""
    v = home.vault("p")
    for name in ("blob-sizes", "blob-sizes.trees"):
        try:
            os.unlink(os.path.join(v.state_dir, name))
        except FileNotFoundError:
            pass


def _plain(server: Server, tmp_path: Path) -> Path:
    plain = tmp_path / "plain"
    git("clone", "-q", str(server.base / "proj.git"), str(plain))
    return plain


def _same_edits(*roots: Path) -> None:
    """The same untracked files in each of ``roots`` (no tracked file changed: a lazy
    mount would fetch it)."""
    for root in roots:
        (root / "new.txt").write_text("new\n")
        (root / "avfs_git" / "core" / "fresh").mkdir()
        (root / "avfs_git" / "core" / "fresh" / "x.py").write_text("x = 1\n")


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_second_mount_patches_the_kept_index_and_git_status_fetches_nothing(
    home: Home, server: Server, tmp_path: Path, backend: str
) -> None:
    """The first mount of a base keeps its index; a mount of another fork of that base
    patches it: git status answers while the mount's request for sizes is still held
    (the index needed none), fetches nothing, and says what a plain clone's says; git
    without the fsmonitor (it lstats every file) finds every entry's stat data equal to
    what the mount reports, so it reads (fetches) no file either."""
    _backend_or_skip(backend)
    relay = Relay(server.port)
    try:
        home.clone_vault(f"git://127.0.0.1:{relay.port}/proj.git", "p", lazy=True)
        v = home.vault("p")
        first = tmp_path / "first"
        first.mkdir()
        tree = _first_mount(home, first, backend)
        assert keptindex.load(v.state_dir, tree) is not None  # kept by the first mount
        v.fork("main", "second")
        _unsized(home)
        mp = tmp_path / "mnt"
        mp.mkdir()
        plain = _plain(server, tmp_path)
        relay.arm()
        mounts.mount(home, v, "second", str(mp), backend=backend)
        try:
            before = objects(v.path)
            st, out = _in_thread(lambda: _status(mp))
            if backend == "overlay":
                # (overlayfs looks up the root's entries, which wait for the root's sizes)
                relay.release()
            st.join(WAIT_S)
            assert not st.is_alive(), _daemon_log(v)
            if backend == "fuse":
                assert relay.armed and not relay.go.is_set()  # the sizes are still held
            proc = out[0]
            assert isinstance(proc, subprocess.CompletedProcess)
            assert proc.returncode == 0 and proc.stdout == "", proc
            relay.release()
            _same_edits(mp, plain)
            want = _status(plain).stdout
            assert want and _status(mp).stdout == want
            plain_git = _status(mp, "core.fsmonitor=false")
            assert plain_git.returncode == 0 and plain_git.stdout == want, plain_git
            assert objects(v.path) == before  # neither status fetched a blob
            # every entry's stat data is what the mount reports (lstat: no read)
            listed = subprocess.run(
                ["git", "ls-files", "--debug", "avfs_git/core/store"], cwd=mp, capture_output=True, text=True
            ).stdout.splitlines()
            checked = 0
            for i, line in enumerate(listed):
                if not line.startswith("  ctime:"):
                    continue
                path = mp / listed[i - 1]
                st_ = os.lstat(path)
                ctime, mtime = (tuple(int(x) for x in listed[i + k].split()[1].split(":")) for k in (0, 1))
                dev_ino = listed[i + 2].split()
                uid_gid = listed[i + 3].split()
                size = int(listed[i + 4].split()[1])
                assert ctime == (int(st_.st_ctime), st_.st_ctime_ns % 10**9)
                assert mtime == (int(st_.st_mtime), st_.st_mtime_ns % 10**9)
                assert int(dev_ino[3]) == st_.st_ino & 0xFFFFFFFF
                assert (int(uid_gid[1]), int(uid_gid[3])) == (st_.st_uid, st_.st_gid)
                assert size == st_.st_size
                checked += 1
            assert checked > 20
            assert objects(v.path) == before
        finally:
            relay.release()
            mounts.unmount(home, v, "second", lazy=True)
    finally:
        relay.close()


def _foreign(data: bytes, other_tree: str) -> bytes:
    """``data`` (a kept index) claiming to be ``other_tree``'s: its cache tree's root id
    replaced, its SHA-1 made right (a whole, well-formed file of another base)."""
    ext = data.index(b"TREE\0")
    root = ext + 8
    nl = data.index(b"\n", root)
    body = data[: nl + 1] + bytes.fromhex(other_tree) + data[nl + 21 : -20]
    return body + hashlib.sha1(body).digest()


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "foreign", "garbage"])
def test_a_kept_index_that_does_not_check_is_ignored_and_made_again(
    home: Home, server: Server, tmp_path: Path, damage: str
) -> None:
    """A kept index cut short, with a byte changed, of another base, or not an index at
    all: the mount makes its index as without one (git status right, nothing fetched), and
    keeps a good one in its place."""
    _backend_or_skip("fuse")
    home.clone_vault(server.url("proj.git"), "p", lazy=True)
    v = home.vault("p")
    first = tmp_path / "first"
    first.mkdir()
    tree = _first_mount(home, first, "fuse")
    path = keptindex.kept_path(v.state_dir, tree)
    good = Path(path).read_bytes()
    other = git("--git-dir", v.path, "rev-parse", "main~1^{tree}").strip()
    bad = {
        "truncated": good[: len(good) // 2],
        "corrupt": good[:100] + bytes([good[100] ^ 0x40]) + good[101:],
        "foreign": _foreign(good, other),
        "garbage": b"DIRC" + os.urandom(4000),
    }[damage]
    Path(path).write_bytes(bad)
    assert keptindex.load(v.state_dir, tree) is None
    v.fork("main", "second")
    mp = tmp_path / "mnt"
    mp.mkdir()
    plain = _plain(server, tmp_path)
    mounts.mount(home, v, "second", str(mp), backend="fuse")
    try:
        before = objects(v.path)
        assert _status(mp).stdout == ""
        _same_edits(mp, plain)
        want = _status(plain).stdout
        assert _status(mp).stdout == want
        assert _status(mp, "core.fsmonitor=false").stdout == want
        assert objects(v.path) == before
    finally:
        mounts.unmount(home, v, "second", lazy=True)
    kept = keptindex.load(v.state_dir, tree)
    assert kept is not None and kept != bad  # made again, and kept


def test_a_kept_index_is_patched_only_in_the_mount_s_fields() -> None:
    """:func:`.keptindex.patched` changes each entry's times and ids, the fsmonitor token
    and the untracked cache's location, and nothing else; a kept index with an unmerged
    entry is not patched."""
    from avfs_git.mount.untracked import _varint

    oid = bytes(range(20))
    tree = "ab" * 20
    names = [b"a.txt", b"dir/b.py"]
    entries = b""
    for n in names:
        e = struct.pack(">IIIIIIIIII20sH", 7, 8, 7, 8, 0, 99, 0o100644, 1000, 1000, 5, oid, len(n)) + n
        entries += e + b"\0" * (8 - (62 + len(n)) % 8)
    cache = b"\0" + b"2 1\n" + bytes.fromhex(tree) + b"dir\0" + b"1 0\n" + bytes(20)
    ident = b"Location /old/place, system Linux\0"
    untr = _varint(len(ident)) + ident + b"rest-of-it"
    token_ext = struct.pack(">I", 2) + b"old\0" + struct.pack(">I", 0)
    body = b"DIRC" + struct.pack(">II", 2, len(names)) + entries
    body += b"TREE" + struct.pack(">I", len(cache)) + cache
    body += b"FSMN" + struct.pack(">I", len(token_ext)) + token_ext
    body += b"UNTR" + struct.pack(">I", len(untr)) + untr
    data = body + hashlib.sha1(body).digest()
    out = keptindex.patched(data, tree, 5 * 10**9 + 6, 1, 2, "avfs:new", "/mnt/x")
    assert out is not None and hashlib.sha1(out[:-20]).digest() == out[-20:]
    off = 12
    for n in names:
        fields = struct.unpack_from(">IIIIIIIIII20sH", out, off)
        assert fields[:4] == (5, 6, 5, 6) and fields[7:9] == (1, 2)
        assert fields[4:7] == (0, 99, 0o100644) and fields[9:] == (5, oid, len(n))
        off += (70 + len(n)) & ~7
    assert b"Location /mnt/x, system Linux\0rest-of-it" in out and b"/old/place" not in out
    assert b"avfs:new\0" in out and b"old\0" not in out.replace(b"/old/", b"")
    assert keptindex.patched(data, "cd" * 20, 0, 1, 2, "t", "/m") is None  # another tree's
    staged = bytearray(data)
    staged[12 + 60] |= 0x10  # stage 1: an unmerged entry
    staged[-20:] = hashlib.sha1(staged[:-20]).digest()
    assert keptindex.patched(bytes(staged), tree, 0, 1, 2, "t", "/m") is None


def test_a_served_lazy_clone_makes_the_kept_index_after_it_answers(
    home: Home, server: Server, tmp_path: Path
) -> None:
    """`vault clone --lazy` run by the resident server answers, then a process of its own
    makes the kept index of the default fork's tip (mount/keptmake.py) with the tree's
    sizes, fetching no blob but the tree's ``.gitignore`` files; a mount made afterwards
    patches it."""
    import sys
    import time

    _backend_or_skip("fuse")
    env = {**os.environ, "AVFS_SERVER": "auto"}
    avfs = [sys.executable, "-m", "avfs_git", "--home", home.path]
    subprocess.run([*avfs, "server", "start"], env=env, check=True, capture_output=True)
    try:
        r = subprocess.run(
            [*avfs, "--json", "vault", "clone", "--lazy", server.url("proj.git"), "p"],
            env=env,
            capture_output=True,
        )
        assert r.returncode == 0, r.stderr
    finally:
        subprocess.run([*avfs, "server", "stop"], env=env, capture_output=True)
    v = home.vault("p")
    tree = git("--git-dir", v.path, "rev-parse", "main^{tree}").strip()
    before = objects(v.path)
    deadline = time.monotonic() + WAIT_S  # (the maker waits keptmake.DELAY_S, then works)
    while keptindex.load(v.state_dir, tree) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    keptindex.await_maker(v.state_dir, tree, WAIT_S)
    assert keptindex.load(v.state_dir, tree) is not None
    ignores = git("--git-dir", v.path, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert objects(v.path) - before <= sum(1 for p in ignores if p.rsplit("/", 1)[-1] == ".gitignore")
    assert v.store.promisor.sized(tree)  # its sizes in the size cache: the mount asks none
    mp = tmp_path / "mnt"
    mp.mkdir()
    plain = _plain(server, tmp_path)
    mounts.mount(home, v, "main", str(mp), backend="fuse")
    try:
        at = objects(v.path)
        assert _status(mp).stdout == ""
        _same_edits(mp, plain)
        want = _status(plain).stdout
        assert _status(mp).stdout == want
        assert _status(mp, "core.fsmonitor=false").stdout == want
        assert objects(v.path) == at
    finally:
        mounts.unmount(home, v, "main", lazy=True)


def test_gc_drops_the_kept_indexes_of_trees_no_fork_has(home: Home, server: Server, tmp_path: Path) -> None:
    """``gc`` keeps the kept index of a fork's tip's tree and drops another tree's and what
    a killed writer left (a temp file, a lock no maker holds)."""
    from avfs_git.ops import maintenance

    _backend_or_skip("fuse")
    home.clone_vault(server.url("proj.git"), "p", lazy=True)
    v = home.vault("p")
    first = tmp_path / "first"
    first.mkdir()
    tree = _first_mount(home, first, "fuse")
    good = Path(keptindex.kept_path(v.state_dir, tree)).read_bytes()
    other = git("--git-dir", v.path, "rev-parse", "main~1^{tree}").strip()
    old = Path(keptindex.kept_path(v.state_dir, other))
    old.write_bytes(_foreign(good, other))
    leftovers = [Path(f"{old}.123.abc.tmp"), Path(f"{old}.lock")]
    for p in leftovers:
        p.write_bytes(b"")
    maintenance.gc(v, grace_days=1)
    assert keptindex.load(v.state_dir, tree) == good
    assert not old.exists() and not any(p.exists() for p in leftovers)


def test_a_mount_that_waits_for_the_maker_moves_it_out_of_the_idle_class() -> None:
    """The maker runs in Linux's idle scheduling class (mount/keptmake.py); a mount that
    takes over from it (:func:`.keptindex.take_over`) first moves every thread of it, and of
    what it started, to the normal class (:func:`.keptindex.boost`), so that it ends without
    waiting for a free CPU."""
    import sys

    code = (
        "import os, subprocess, sys, threading\n"
        "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
        "t = threading.Thread(target=lambda: __import__('time').sleep(60), daemon=True)\n"
        "t.start()\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "print(child.pid, flush=True)\n"
        "sys.stdin.read()\n"
        "child.kill()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())

        def policies() -> set[int]:
            return {
                os.sched_getscheduler(int(t))
                for p in (proc.pid, child)
                for t in os.listdir(f"/proc/{p}/task")
            }

        assert policies() == {os.SCHED_IDLE}
        keptindex.boost(b"%d\n" % proc.pid)
        assert policies() == {os.SCHED_OTHER}
        keptindex.boost(b"not a pid")  # (nothing to do, no error)
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.wait(30)
        proc.stdout.close()
