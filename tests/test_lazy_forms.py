"""A lazy vault's mount shows converted files as ``git checkout`` writes them (docs/fuse.md,
"Checkout conversions") and git in the mount takes none of them for modified once it reads
their stat data: the mount's index cannot hold a converted size it has not seen (the blob
would have to be fetched to convert it), so it holds what makes git read the file and
compare (as git's own index right after ``read-tree``). Before, it held the blob's size:
git trusted it and took every ``eol=crlf``, ``ident`` and ``working-tree-encoding`` file
for modified after a ``touch``. A real lazy clone from a `git daemon` on 127.0.0.1, a plain
clone beside it, both backends."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from avfs_git.core.vaults.home import Home
from avfs_git.ops import mounts

from .conftest import git
from .test_lazy import Server
from .test_lazy_settle import _backend_or_skip

ATTRS = b"*.ps1 text eol=crlf\n*.c ident\n*.u16 working-tree-encoding=UTF-16\n"
FILES = {
    ".gitattributes": ATTRS,
    "scripts/run.ps1": b"Write-Host one\nWrite-Host two\n",
    "scripts/other.ps1": b"$x = 1\n" * 50,
    "src/id.c": b"/* $Id$ */\nint x;\n",
    "enc/w.u16": "h\u00e9llo\nw\u00f6rld\n".encode("utf-16"),
    "plain.md": b"stays as it is\n",
    "src/plain.c.txt": b"no conversion\n",
}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Server]:
    """`git daemon` serving ``conv.git``: ``FILES`` committed by git under ``ATTRS``."""
    base = tmp_path / "daemon"
    work = tmp_path / "work"
    git("init", "-q", "-b", "main", str(work))
    for p, data in FILES.items():
        (work / p).parent.mkdir(parents=True, exist_ok=True)
        (work / p).write_bytes(data)
    git("add", "-A", cwd=work)
    git("commit", "-qm", "converted files", cwd=work)
    base.mkdir()
    git("clone", "-q", "--bare", str(work), str(base / "conv.git"))
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant", "transfer.advertiseObjectInfo"):
        git("--git-dir", str(base / "conv.git"), "config", key, "true")
    with Server.serving(base) as srv:
        yield srv


def _files(root: Path) -> dict[str, bytes]:
    return {p: (root / p).read_bytes() for p in FILES}


def _porcelain(root: Path) -> str:
    st = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True)
    assert st.returncode == 0 and "error" not in st.stderr, st.stderr
    return st.stdout


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_lazy_mount_s_converted_files_are_clean_after_a_stat_change(
    home: Home, served: Server, tmp_path: Path, backend: str
) -> None:
    _backend_or_skip(backend)
    home.clone_vault(served.url("conv.git"), "p", lazy=True)
    v = home.vault("p")
    assert v.lazy
    plain = tmp_path / "plain"
    git("clone", "-q", str(served.base / "conv.git"), str(plain))
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend=backend)
    try:
        # (a file a conversion changes is fetched when first looked at: its size is the
        # converted one; a lazy tree without such attributes fetches nothing, test_lazy.py)
        assert _porcelain(mp) == ""
        assert _files(mp) == _files(plain)  # each file as git checkout writes it
        assert _porcelain(mp) == ""
        for p in FILES:  # every file's stat data changed, as a touch or an editor's save
            os.utime(mp / p)
            os.utime(plain / p)
        assert _porcelain(plain) == ""
        assert _porcelain(mp) == ""
        assert git("diff", "--stat", cwd=mp) == ""
    finally:
        mounts.unmount(home, v, "main")
