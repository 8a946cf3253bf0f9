"""A hostile remote (docs/security.md, "A hostile remote: what a lazy vault's server says"):
a lazy vault cloned from a real `git daemon` (tests/test_lazy.py's history), then pointed at
a server on 127.0.0.1 that lies (tests/hostileremote.py): sizes that are not the blobs',
packs that inflate past what they say, an answer dripped a byte at a time. What a reader
through the mount, the API, `avfs status` and a checkpoint then see: the true contents or
a clear error (``blob_not_local``, ``EIO`` in a mount), in bounded memory and time, the
vault holding nothing the server made up."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import BlobNotLocalError
from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts

from .conftest import git
from .hostileremote import (
    Hostile,
    blob_entry,
    copying,
    header,
    hostile_tree,
    inflating,
    pack,
    ref_delta_entry,
)
from .test_fuse import require_fuse
from .test_lazy import blob_at
from .test_lazy import server as server
from .test_overlay import require_overlay
from .test_remotes import _free_port, _start_daemon, _stop_daemon

SMALL = "NOTES.md"  # "notes\n"
OTHER = "avfs_git/core/store/gitstore.py"


def _hostile_vault(home: Home, server: Any, **settings: object) -> tuple[Vault, Hostile]:
    """A lazy vault of the test history, its origin then a :class:`Hostile` server of it."""
    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    h = Hostile(server.base / "proj.git")
    git("--git-dir", v.path, "config", "remote.origin.url", h.url())
    v.store.promisor.forget()  # (the clone's handle knew the first URL)
    with open(os.path.join(v.path, "avfs", "config.json"), "w", encoding="utf-8") as fh:
        json.dump({"read_neighbours": 0, "read_package_bytes": 0, **settings}, fh)
    return v, h


def _oid(server: Any, path: str) -> str:
    return git("--git-dir", str(server.base / "proj.git"), "rev-parse", f"main:{path}").strip()


def _read_past_eio(path: Path) -> bytes:
    """``path``'s bytes, read again while the read is ``EIO`` (the read that found the
    server's size wrong, and those until the kernel has forgotten it)."""
    for _ in range(200):
        try:
            return path.read_bytes()
        except OSError as exc:
            assert exc.errno == errno.EIO, exc
            threading.Event().wait(0.05)
    raise AssertionError(f"{path} stays EIO")


def _refs(v: Vault) -> str:
    return git("--git-dir", v.path, "for-each-ref")


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_size_the_server_lies_about_never_cuts_a_file_in_the_mount(
    home: Home, server: Any, tmp_path: Path, backend: str
) -> None:
    """The server's ``object-info`` says 3 bytes for a 6-byte file and 100,000 more than a
    source file holds. Before, the size cache kept the lie for good (a size is looked up
    there before the packs): the mount reported it, `cat` read ``not`` for ``notes\\n``,
    and on the overlay backend an append copied up the 3 bytes and committed them."""
    require_overlay() if backend == "overlay" else require_fuse()
    v, h = _hostile_vault(home, server)
    src = server.base / "proj.git"
    small, other = _oid(server, SMALL), _oid(server, OTHER)
    true_small, true_other = blob_at(src, "main", SMALL), blob_at(src, "main", OTHER)
    h.sizes = {small: 3, other: len(true_other) + 100_000, "f" * 40: 7}  # ("f"*40: never asked)
    refs = _refs(v)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend=backend)
    try:
        assert os.stat(mp / SMALL).st_size == 3  # (what the server said: nothing else to go by yet)
        for rel, true in ((SMALL, true_small), (OTHER, true_other)):
            got = _read_past_eio(mp / rel)
            assert got == true, rel  # never cut to the size said, never padded
            assert os.stat(mp / rel).st_size == len(true)
        with open(mp / SMALL, "ab") as fh:
            fh.write(b"more\n")
        assert (mp / SMALL).read_bytes() == true_small + b"more\n"
        done = checkpoint.save(v, "main", name="after")
        assert git("--git-dir", v.path, "cat-file", "blob", f"{done.checkpoint.commit}:{SMALL}").encode() == (
            true_small + b"more\n"
        )
        assert [c.path for c in v.workspace("main").status()] == []
        status = subprocess.run(["git", "status", "--porcelain"], cwd=mp, capture_output=True, check=True)
        assert status.stdout == b""
    finally:
        mounts.unmount(home, v, "main", lazy=True)
    assert "fetch" in h.commands and "object-info" in h.commands  # (the lies were asked)
    h.close()
    promisor = home.vault("p").store.promisor
    assert promisor.size(small) == len(true_small) and promisor.size("f" * 40) is None
    before = dict(line.split(" commit\t")[::-1] for line in refs.splitlines())
    after = dict(line.split(" commit\t")[::-1] for line in _refs(v).splitlines())
    assert (
        after.pop("refs/avfs/checkpoints/main/-/after") == after["refs/heads/main"] == done.checkpoint.commit
    )
    assert (
        after.keys() == before.keys()
        and after["refs/remotes/origin/main"] == before["refs/remotes/origin/main"]
    )


def test_a_size_the_server_lies_about_is_a_clear_error_once_through_the_api(home: Home, server: Any) -> None:
    v, h = _hostile_vault(home, server)
    small = _oid(server, SMALL)
    h.sizes = {small: 1 << 64, _oid(server, OTHER): 5}  # (past what the size cache holds: not taken)
    ws = v.workspace("main")
    try:
        assert ws.stat(SMALL).size == 6  # the size said was none: it was fetched to be measured
        with pytest.raises(BlobNotLocalError) as exc:
            ws.read(OTHER)
        assert exc.value.details["size_said"] == 5 and exc.value.details["path"] == OTHER
        assert "said blob" in exc.value.message
        assert ws.read(OTHER) == blob_at(server.base / "proj.git", "main", OTHER)
        assert ws.stat(OTHER).size == len(blob_at(server.base / "proj.git", "main", OTHER))
    finally:
        h.close()


# a read of OTHER in a process of its own whose address space is bounded: a reader that
# holds what a bomb inflates to dies of MemoryError (exit 1, no JSON)
_READER = """
import json, resource, sys
from avfs_git.core.errors import AvfsError
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
home = Home(sys.argv[1], mounts=MOUNT_SIDE)
ws = home.vault("p").workspace("main")
ws.stat(sys.argv[2])  # (the tree's sizes, honestly answered)
with open("/proc/self/status") as fh:
    vm = next(int(line.split()[1]) for line in fh if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (768 << 20), vm + (768 << 20)))
try:
    data = ws.read(sys.argv[2])
except AvfsError as exc:
    print(json.dumps({"code": exc.code, "message": exc.message}))
else:
    print(json.dumps({"read": len(data)}))
"""


@pytest.mark.parametrize("bomb", ["inflate", "delta", "wire", "extra"])
def test_a_pack_that_inflates_to_gigabytes_is_refused_in_bounded_memory(
    home: Home, server: Any, tmp_path: Path, bomb: str
) -> None:
    """The server answers the fetch of one 30 KB file with the file and a bomb: a blob whose
    header says 10 bytes and whose zlib stream inflates to 2 GiB (2 MiB sent), a delta of
    that file that says it makes 1 byte and copies it 2 GiB over (128 KiB sent), or the
    file and 96 MiB of blobs nobody asked for (or one small one). Before, the pack reader
    (core/store/blobwire.py) inflated each entry and applied each delta whole before it
    looked at a size, and held the whole answer: the reader died of MemoryError in 768 MiB,
    and the blobs nobody asked for were written into the vault."""
    v, h = _hostile_vault(home, server)
    src = server.base / "proj.git"
    other = _oid(server, OTHER)
    true = blob_at(src, "main", OTHER)
    before = sorted(os.listdir(os.path.join(v.path, "objects", "pack")))

    def answer(wants: list[str]) -> bytes:
        assert wants == [other]
        if bomb == "inflate":
            extra = [header(3, 10) + inflating(2048)]
        elif bomb == "delta":
            extra = [ref_delta_entry(other, copying(len(true), 2 << 30))]
        elif bomb == "wire":
            extra = [blob_entry(os.urandom((1 << 20) - i), level=0) for i in range(1, 97)]
        else:  # one small blob nobody asked for: the pack is refused all the same
            extra = [blob_entry(b"not asked for\n")]
        return pack([blob_entry(true), *extra])

    h.fetch_answer = answer
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _READER, home.path, OTHER],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        h.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert got.get("code") == "blob_not_local", got
    assert sorted(os.listdir(os.path.join(v.path, "objects", "pack"))) == before  # nothing written


def test_a_server_that_drips_its_sizes_is_given_up_at_the_timeout(home: Home, server: Any) -> None:
    """A byte every 0.1 s, with a timeout of 0.5 s: each read of the socket waited less
    than the timeout, which was all `object-info` over ``git://`` bounded (the socket's
    timeout is for one read), so asking the sizes took the ~20 s the server chose (with a
    byte a second, minutes; a mount's start and every stat waited on it). Now the timeout
    is the whole conversation's; the fetch over the kept connection had a deadline
    already, and so did HTTP and ssh (their processes killed)."""
    v, h = _hostile_vault(home, server, fetch_timeout_s=0.5)
    h.drip = 0.1
    try:
        assert v.store.promisor.learn_sizes([_oid(server, SMALL)]) is False
        for _ in range(200):  # (the server learns it at its next byte or two)
            if h.abandoned:
                break
            threading.Event().wait(0.05)
        assert h.abandoned == 1 and h.commands in ([], ["object-info"])
        assert v.store.promisor.size(_oid(server, SMALL)) is None
        with pytest.raises(BlobNotLocalError) as exc:  # (its size unknown: one git fetch, killed)
            v.workspace("main").read(SMALL)
        assert "timed out" in exc.value.message
    finally:
        h.close()


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_tree_git_would_not_check_out_lists_the_rest_in_the_mount(
    home: Home, tmp_path: Path, backend: str
) -> None:
    """A remote's tree with entries named ``..``, ``a/b``, 300 bytes long, ``.GIT`` and
    ``sub/.git`` (git's checkout refuses them all). Before, the mount listed them: the
    kernel failed the listing of the whole directory (``EIO``: at ``a/b`` on pure FUSE,
    which had listed ``..`` twice; from the first entry with overlayfs, which looks each
    one up), so ``ls`` of the root showed nothing or half; ``.git`` directories showed as
    ``d?????????``. Now they are left out of listings, as git's checkout leaves them out;
    the rest reads, git there runs nothing of ``sub/.git``, and a checkpoint keeps the
    remote's entries as they were."""
    require_overlay() if backend == "overlay" else require_fuse()
    srv = tmp_path / "srv"
    canary = tmp_path / "ran"
    hostile_tree(srv / "evil.git", canary)
    port = _free_port()
    daemon = _start_daemon(srv, port)
    try:
        v = home.clone_vault(f"git://127.0.0.1:{port}/evil.git", "e", lazy=True)
        mp = tmp_path / "mnt"
        mp.mkdir()
        mounts.mount(home, v, "main", str(mp), backend=backend)
        try:
            assert sorted(os.listdir(mp)) == [".git", "README", "etc", "mod", "sub"]
            assert os.listdir(mp / "sub") == ["f.txt"]
            for name in os.listdir(mp):
                os.lstat(mp / name)  # each listed name is there
            assert (mp / "README").read_bytes() == b"readme\n" and os.readlink(mp / "etc") == "/etc"
            env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tmp_path))
            for cwd in (mp, mp / "sub"):
                subprocess.run(
                    ["git", "status", "--porcelain"], cwd=cwd, env=env, capture_output=True, check=False
                )
            assert not canary.exists()
            (mp / "new.txt").write_bytes(b"mine\n")
            assert [c.path for c in v.workspace("main").status()] == ["new.txt"]
            done = checkpoint.save(v, "main", name="c1")
        finally:
            mounts.unmount(home, v, "main", lazy=True)
    finally:
        _stop_daemon(daemon)
    listed = git("--git-dir", v.path, "ls-tree", "--name-only", done.checkpoint.commit).split("\n")
    assert set(listed) >= {"..", "a/b", ".GIT", "new.txt", "sub"}  # (the remote's, as it was)
    assert not canary.exists()
    home.delete_vault("e", force=True)  # (git fsck --strict refuses the remote's trees: the suite's check)


def test_a_remote_with_many_branches_is_listed_without_a_workspace_for_each(
    home: Home, tmp_path: Path, cli: Any
) -> None:
    """Every branch of a remote is a fork of its clone (as `git clone --bare` keeps them).
    `vault info` opened each fork's workspace to list it, making its state dir and overlay
    database and keeping it open: with 20,000 branches it took 240 s and failed, exit 70,
    "Too many open files". Now a fork with no state dir is listed from its branch, and a
    workspace the listing opens is closed after it."""
    srv = tmp_path / "srv"
    repo = srv / "many.git"
    git("init", "-q", "--bare", str(repo))
    commit = git(
        "--git-dir",
        str(repo),
        "commit-tree",
        git("hash-object", "-t", "tree", "/dev/null").strip(),
        "-m",
        "x",
    )
    refs = "".join(f"create refs/heads/b{i:04d} {commit.strip()}\n" for i in range(600))
    subprocess.run(["git", "--git-dir", str(repo), "update-ref", "--stdin"], input=refs.encode(), check=True)
    git("--git-dir", str(repo), "update-ref", "refs/heads/main", commit.strip())
    git("--git-dir", str(repo), "symbolic-ref", "HEAD", "refs/heads/main")
    port = _free_port()
    daemon = _start_daemon(srv, port)
    try:
        v = home.clone_vault(f"git://127.0.0.1:{port}/many.git", "m")
    finally:
        _stop_daemon(daemon)
    v.workspace("b0007").write("mine.txt", b"mine\n")
    ws_dir = os.path.join(v.path, "avfs", "ws")
    made = sorted(os.listdir(ws_dir))
    open_before = list(v._ws)  # (the workspaces this handle holds open)
    forks = {f.name: f for f in v.forks()}
    assert len(forks) == 601 and forks["b0007"].dirty and not forks["b0008"].dirty
    assert {f.head for f in forks.values()} == {commit.strip()} and forks["main"].is_default
    assert sorted(os.listdir(ws_dir)) == made  # no fork's state made to list it
    assert list(v._ws) == open_before
    r = cli("--json", "--home", home.path, "vault", "info", "m")
    assert r.code == 0, r.err
    assert len(json.loads(r.out_bytes)["forks"]) == 601
    assert sorted(os.listdir(ws_dir)) == made
