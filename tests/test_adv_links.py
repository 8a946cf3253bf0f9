"""Hard links to one file, made by a confined `proxy exec` (the thirty-fourth round,
NAME=attack25; docs/security.md, "Hard links to one file").

A confined command may link one file under many names (ext4 allows 65,000 a file): the
bytes count once against its quota, but avfs's host side read the file once for every
name, twice over (the run's status hashed each name, then the commit's pack writer
hashed each again). Found: 4,000 links to one 16 MiB file had the mount's daemon hash
125 GiB after a 12 s command, six minutes of its CPU with the fork's exec lock held; a
100 MiB file 65,000 times over would be hours. Now one pass reads a file of several names
once (while its size and times stay): the status (``wsview.once_a_file``) and the pack
(``PackWriter.add_file``). Measured here by what the daemon read (``rchar``), not by time.

A real confined exec in a real overlay mount (pure FUSE refuses hard links)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts

from .test_adv_gitseal import _exec, _script
from .test_confine import _need_bwrap
from .test_overlay import require_overlay

SIZE = 4 << 20  # a file over the pack writer's 1 MiB, hashed before it is stored
LINKS = 100


@pytest.fixture
def overlay(home: Any, vault: Any) -> Iterator[Any]:
    require_overlay()
    _need_bwrap()
    vault.workspace("main").write("README", b"a project\n")
    checkpoint.save(vault, name="base")
    info = mounts.mount(home, vault, "main", None, backend="overlay")
    try:
        yield info
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def _read_bytes(pid: int) -> int:
    """What process ``pid`` (all its threads) has read so far: ``rchar`` of its io."""
    with open(f"/proc/{pid}/io", encoding="ascii") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))


def test_a_file_linked_a_hundred_times_is_read_once_a_pass(overlay: Any, vault: Any) -> None:
    """100 links to one 4 MiB file: the exec's commit records every name with the file's
    blob, and the mount's daemon, which ran the exec, read a few times the file, not the
    800 MiB it read before (each name hashed by the status, then by the pack)."""
    _script(
        overlay,
        "links.sh",
        f"head -c {SIZE} /dev/urandom > big && mkdir h\n"
        f"i=0; while [ $i -lt {LINKS} ]; do ln big h/$i || exit 1; i=$((i+1)); done\n",
    )
    before = _read_bytes(overlay.pid)
    doc = _exec("sh", "links.sh")
    read = _read_bytes(overlay.pid) - before
    assert doc["exit_code"] == 0, doc["result"]
    assert len(doc["changes"]) == LINKS + 1, len(doc["changes"])
    oid = subprocess.run(
        ["git", "hash-object", "--", f"{overlay.mountpoint}/big"], capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = subprocess.run(
        ["git", "--git-dir", vault.path, "ls-tree", "-r", "main"], capture_output=True, text=True, check=True
    ).stdout
    blobs = {line.split()[2] for line in tree.splitlines() if "\tbig" in line or "\th/" in line}
    assert blobs == {oid}, blobs
    assert tree.count("\th/") == LINKS
    assert read < 10 * SIZE, f"the daemon read {read >> 20} MiB for one {SIZE >> 20} MiB file"


def _written_bytes() -> int:
    """What this process (all its threads) has written so far: ``wchar`` of its io."""
    with open("/proc/self/io", encoding="ascii") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("wchar:"))


def test_hard_links_in_a_materialized_copy_are_written_back_within_a_bound(home: Any, vault: Any) -> None:
    """``--mode materialized`` (no mount: the fork copied out, the command run there, what
    it changed written back by this process): 100 links to one 4 MiB file were 100 files
    of 4 MiB written into the overlay (404 MiB; 500 links, 2 GB and 20 s after a 1 s
    command). Now the other names are written back up to ``MAX_LINKED_BYTES`` (64 MiB, or
    the bytes of the files written back once each, if more); the rest are left in the
    kept copy and named (``write_back_incomplete``), the command's exit code its own."""
    from avfs_git.proxy.envelope import ExecRequest
    from avfs_git.proxy.execute import execute

    _need_bwrap()
    ws = vault.workspace("main")
    ws.write("README", b"a project\n")
    checkpoint.save(vault, name="base")
    script = (
        f"head -c {SIZE} /dev/urandom > big && mkdir h\n"
        f"i=0; while [ $i -lt {LINKS} ]; do ln big h/$i || exit 1; i=$((i+1)); done\n"
    )
    before = _written_bytes()
    res = execute(home, vault, "main", ExecRequest(shell=script, mode="materialized"))
    written = _written_bytes() - before
    doc = res.to_dict()
    assert res.result is not None and res.result.exit_code == 0, doc
    assert written < 32 * SIZE, f"{written >> 20} MiB written back for one {SIZE >> 20} MiB file"
    err = doc["error"]
    assert err is not None and err["code"] == "write_back_incomplete", doc
    copy = err["details"]["copy"]
    left = [p["path"] for p in res.error.details["paths"]] if res.error is not None else []
    assert left and all(p.startswith("h/") for p in left), left
    assert "hard link of big" in err["details"]["paths"][0]["why"], err
    assert all(os.path.samefile(os.path.join(copy, p), os.path.join(copy, "big")) for p in left)
    assert ws.read("big") == ws.read("h/0") and len(ws.read("big")) == SIZE
