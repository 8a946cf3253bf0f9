"""The first read of a module of a Python package in a lazy fork's mount, while the whole
tree's sizes are still being asked (fuse/settle.py), brings the package's other modules in
its own fetch, as it does once the sizes are known: the sizes of what it brings along are
asked first in a request of their own (core/store/neighbours.py ``sizes_first``). Without
it a neighbour whose size is not known is not taken, and the package came one directory a
fetch (Django's test runner, cold: 22-35 fetches instead of 11 in 5 of 24 runs, issue 30
row 3). Against a real `git daemon` and a real mount; the whole tree's request is held at
a relay (tests/test_lazy_dirsizes.py) while the module is read."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from avfs_git.core.vaults.home import Home
from avfs_git.ops import mounts

from .conftest import git
from .test_lazy import Server, blob_at
from .test_lazy_dirsizes import MANY, BigHeld
from .test_lazy_neighbours import _local, _packs
from .test_lazy_settle import HOLD_S, _backend_or_skip

READ = "pkg/a/x.py"
ELSEWHERE = ["pkg/__init__.py", "pkg/b/y.py", "pkg/c/__init__.py", "pkg/c/d/z.py"]  # other directories


def _served(base: Path) -> dict[str, str]:
    """``pk.git``: a package whose modules sit in several directories, and a directory of
    more files than the relay lets pass in one request; (path: blob id) of the package."""
    work = base.parent / "pk-work"
    files = {"README.md": "# pk\n", READ: "from ..b import y\n"}
    for rel in [*ELSEWHERE, "pkg/a/__init__.py", "pkg/b/__init__.py", "pkg/c/d/__init__.py"]:
        files[rel] = f"# {rel}\nVALUE = {len(rel)}\n"
    files.update({f"many/f{i:03d}.txt": f"file {i}\n" * (i % 5 + 1) for i in range(MANY + 20)})
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    git("init", "-q", "-b", "main", str(work))
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "pk")
    git("clone", "-q", "--bare", str(work), str(base / "pk.git"))
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant", "transfer.advertiseObjectInfo"):
        git("--git-dir", str(base / "pk.git"), "config", key, "true")
    listed = git("--git-dir", str(base / "pk.git"), "ls-tree", "-r", "main", "pkg")
    return {line.split("\t")[1]: line.split()[2] for line in listed.splitlines()}


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_packages_first_read_brings_it_while_the_whole_trees_sizes_are_asked(
    home: Home, tmp_path: Path, backend: str
) -> None:
    _backend_or_skip(backend)
    base = tmp_path / "daemon"
    base.mkdir()
    blobs = _served(base)
    server = Server(base)
    server.start()
    relay = BigHeld(server.port)
    try:
        home.clone_vault(f"git://127.0.0.1:{relay.port}/pk.git", "k", lazy=True)
        v = home.vault("k")
        mp = tmp_path / "mnt"
        mp.mkdir()
        relay.arm()
        mounts.mount(home, v, "main", str(mp), backend=backend)
        try:
            assert relay.holding.wait(HOLD_S / 2), "the whole tree's sizes were never asked"
            packs = _packs(v.path)
            got: list[object] = []

            def read() -> None:
                try:
                    got.append((mp / READ).read_bytes())
                except OSError as exc:
                    got.append(exc)

            rd = threading.Thread(target=read, daemon=True)
            rd.start()
            rd.join(HOLD_S / 2)
            alive = rd.is_alive()
            held = not relay.go.is_set()
            came = [rel for rel in ELSEWHERE if _local(v.path, blobs[rel])]
            fetches = len(_packs(v.path) - packs)
            relay.release()
            assert not alive, "the read waited for the whole tree's sizes"
            assert held and got == [blob_at(base / "pk.git", "main", READ)]
            # the package's modules in other directories came with the read, in its one fetch
            assert came == ELSEWHERE and fetches == 1, (came, fetches)
        finally:
            relay.release()
            mounts.unmount(home, v, "main", lazy=True)
    finally:
        relay.close()
        server.stop()
