"""A tree 1,050 levels deep (1,200 until suitetime5) on the pure-FUSE backend (the
thirty-second round, NAME=attack23; the overlay's was the fifteenth round's and the
thirtieth's: tests/test_adv_deep.py, tests/test_adv_exhaust.py).

Found: once a command's deep tree was committed (the exec's own commit: no overlay entry
left on its chain), every lookup and getattr below it asked SQLite for the entries at each
of its ancestors by name, ~1.4 MB of paths a call 1,200 levels down (~7-10 ms): the person's
plain `git status` in the mount took 95 s (63 s after a remount), one FUSE round trip per
directory each paying it. Now the ancestors above the last few are one range of the
index. And a write 1,200 levels deep through avfs (`avfs write`, MCP `write_file`, the
API) made its missing parents one call deeper a level: exit 70, ``RecursionError``."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts

from .test_adv_gitseal import _avfs, _script
from .test_confine import _need_bwrap
from .test_fuse import require_fuse

# past Python's recursion limit (1,000 calls) from any stack, with a margin, as
# tests/test_adv_deep.py's 1,050 (suitetime28); 1,200 until suitetime5: a pure-FUSE lookup is
# O(depth) in libfuse's paths, so the person's `git status` here is O(depth^2) (0.77x at 1,050)
DEPTH = 1050
DEEP = "/".join(["d"] * DEPTH) + "/f"


@pytest.fixture
def fuse_mount(home: Any, vault: Any) -> Any:
    require_fuse()
    _need_bwrap()
    w = vault.workspace("main")
    w.write("README", b"the original\n")
    checkpoint.save(vault, name="base")
    info = mounts.mount(home, vault, "main", None, backend="fuse")
    assert info.backend == "fuse"
    try:
        yield info
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def _git(mp: str, *args: str) -> str:
    got = subprocess.run(["git", *args], cwd=mp, capture_output=True, text=True, timeout=900)
    assert got.returncode == 0, (args, got.stderr)
    return got.stdout


def test_a_command_s_tree_1050_levels_deep_on_pure_fuse_is_committed_and_git_reads_it(
    fuse_mount: Any, vault: Any, home: Any
) -> None:
    """The command makes it a level at a time inside a real confined exec; the exec commits
    it; the person's `git status`, `avfs status`, a read of the bottom file, a checkpoint,
    an unmount and a mount again, and the bottom file and `avfs status` there."""
    mp = fuse_mount.mountpoint
    _script(
        fuse_mount,
        "deep.sh",
        f"i=0; while [ $i -lt {DEPTH} ]; do mkdir d && cd d || exit 1; i=$((i+1)); done; echo bottom > f\n",
    )
    r = _avfs("--json", "proxy", "exec", "--", "sh", "deep.sh")
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == 0 and doc["commit"] is not None, doc["result"]
    assert doc["not_recorded"] == [], doc["not_recorded"]
    assert _git(mp, "status", "--porcelain") == ""
    assert _git(mp, "ls-files", "--", DEEP) == DEEP + "\n"
    assert _bottom(mp) == b"bottom\n"
    st = _avfs("--json", "status")
    assert st.returncode == 0 and json.loads(st.stdout)["clean"], st.stdout[:500]
    with open(os.path.join(mp, "README"), "a") as fh:
        fh.write("the person's\n")
    assert checkpoint.save(vault, "main", message="after") is not None
    mounts.unmount(home, vault, "main")
    again = mounts.mount(home, vault, "main", None, backend="fuse")
    # after the remount the tree is read from the checkpoint's objects: the bottom file by
    # parts and avfs's status (git's own status walk there would cost ~30 s more of the
    # suite's CPU at this depth on pure FUSE: libfuse's high-level paths are O(depth) a call)
    assert _bottom(again.mountpoint) == b"bottom\n"
    st = _avfs("--json", "status")
    assert st.returncode == 0 and json.loads(st.stdout)["clean"], st.stdout[:500]


def _bottom(mp: str) -> bytes:
    """The file at the bottom of the chain, opened a level at a time (by parts: no path
    from the top as long as the chain)."""
    fd = os.open(mp, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(DEPTH):
            nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        with open(os.open("f", os.O_RDONLY, dir_fd=fd), "rb") as fh:
            return fh.read()
    finally:
        os.close(fd)


def test_a_lookup_below_a_deep_committed_tree_asks_its_ancestors_by_one_range(vault: Any) -> None:
    """What the daemon asks SQLite for a lookup 1,050 levels down in a committed tree: the
    statements' text with their parameters grows with the path, not with its square."""
    ws = vault.workspace("main")
    for i in range(1, DEPTH + 1):  # (a level at a time: not what the next test is about)
        ws.mkdir("/".join(["d"] * i))
    ws.write(DEEP, b"bottom\n")
    checkpoint.save(vault, "main", message="deep")
    asked: list[str] = []
    db = ws.overlay.db
    db.set_trace_callback(asked.append)
    try:
        node = ws.node(DEEP)
    finally:
        db.set_trace_callback(None)
    assert node is not None
    size = sum(len(s) for s in asked)
    assert size < 40 * len(DEEP), (size, len(DEEP))  # (before: ~1.4 MB, 600x the path)


def test_avfs_write_1050_levels_deep_makes_its_parents(vault: Any) -> None:
    """`avfs write` of a path 1,050 levels deep (what MCP `write_file` and the API's write
    do): written, its parents made; exit 70 (``RecursionError``) before."""
    r = _avfs("--json", "write", DEEP, "bottom\n")
    assert r.returncode == 0, r.stdout[:500]
    assert json.loads(r.stdout)["kind"] == "file_write"
    assert vault.workspace("main").read(DEEP) == b"bottom\n"
