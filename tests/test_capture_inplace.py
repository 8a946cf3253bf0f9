"""A big file rewritten in place while a checkpoint stores it is stored as one version,
under that version's id (twenty-fifth round, raced1).

A capture reads files that are in use (a descriptor open for writing in a mount keeps
its entry, but its bytes are recorded as they are); the pack writer hashed a file over
1 MiB in one pass and, for an object the vault did not hold, read it again in a second
pass to store it: a write through the descriptor between the two stored the new bytes
under the old bytes' id, a blob whose id does not match its bytes (git fsck: "hash
mismatch"), in the fork's history."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import packwriter
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts

from .conftest import git
from .gitmount import _require

BIG = 3 * (1 << 20) + 17  # past the pack writer's one-read size (1 MiB)


def _blob_bytes(vault: Vault, rev: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", vault.path, "cat-file", "blob", rev], capture_output=True, check=True
    ).stdout


def _hash_of(data: bytes) -> str:
    return (
        subprocess.run(["git", "hash-object", "--stdin"], input=data, capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )


@pytest.mark.parametrize("backend", ["fuse", "overlay"])
def test_a_file_rewritten_in_place_once_its_id_is_taken(
    home: Home, vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """The moment made exact: a program holds ``big.bin`` open for writing in a mount
    and rewrites it in place (``pwrite`` through its descriptor, the same size) right
    after the checkpoint's pack writer has taken the id of its bytes (the hash of a
    blob of its size finished: ``packwriter.sha1``'s ``hexdigest``). The blob stored
    must hold the bytes its id is the hash of, one of the two versions; the mount keeps
    showing the new one, and the next checkpoint records it."""
    _require(backend)
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    checkpoint.save(vault, "main", message="base")
    old, new = b"o" * BIG, b"n" * BIG
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend=backend)
    try:
        (mp / "big.bin").write_bytes(old)
        fd = os.open(mp / "big.bin", os.O_RDWR)
        try:
            real_sha1 = packwriter.sha1
            rewritten: list[int] = []

            class Taken:
                """A blob's hash; the file is rewritten once its id is taken."""

                def __init__(self, h: Any) -> None:
                    self.h = h

                def update(self, data: bytes) -> None:
                    self.h.update(data)

                def hexdigest(self) -> str:
                    got: str = self.h.hexdigest()
                    if not rewritten:
                        rewritten.append(os.pwrite(fd, new, 0))
                    return got

            def sha1(data: bytes = b"", *, size: int = 0) -> Any:
                h = real_sha1(data, size=size)
                return Taken(h) if data == b"blob %d\0" % BIG else h

            monkeypatch.setattr(packwriter, "sha1", sha1)
            checkpoint.save(vault, "main", message="while written")
            monkeypatch.undo()
            assert rewritten == [BIG], "big.bin was not rewritten once its id was taken"
            oid = git("--git-dir", vault.path, "rev-parse", "main:big.bin").strip()
            stored = _blob_bytes(vault, oid)
            assert _hash_of(stored) == oid, "the blob's bytes are not those its id names"
            assert stored in (old, new)
            assert (mp / "big.bin").read_bytes() == new
        finally:
            os.close(fd)
        checkpoint.save(vault, "main", message="after")
        assert _blob_bytes(vault, "main:big.bin") == new
        fsck = subprocess.run(
            ["git", "--git-dir", vault.path, "fsck", "--strict"], capture_output=True, text=True
        )
        assert fsck.returncode == 0, fsck.stderr
    finally:
        mounts.unmount(home, vault, "main")


def test_a_file_truncated_once_its_id_is_taken_is_stored_as_it_is_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same moment, the file cut short (``O_TRUNC`` and a shorter write through a
    descriptor): the pass that stores it found fewer bytes than the size it had, and
    the checkpoint failed ("shrank while it was being stored", an internal error, exit
    70). It is read again from its start and stored as it is then."""
    repo = tmp_path / "r.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    f = tmp_path / "big.bin"
    f.write_bytes(b"o" * BIG)
    short = b"s" * (2 << 20)
    real_sha1 = packwriter.sha1
    cut: list[int] = []

    class Taken:
        def __init__(self, h: Any) -> None:
            self.h = h

        def update(self, data: bytes) -> None:
            self.h.update(data)

        def hexdigest(self) -> str:
            got: str = self.h.hexdigest()
            if not cut:
                with open(f, "r+b") as fh:  # (the same file: a writer's descriptor)
                    fh.truncate(0)
                    cut.append(fh.write(short))
            return got

    def sha1(data: bytes = b"", *, size: int = 0) -> Any:
        h = real_sha1(data, size=size)
        return Taken(h) if data == b"blob %d\0" % BIG else h

    monkeypatch.setattr(packwriter, "sha1", sha1)
    pw = packwriter.PackWriter(str(repo))
    oid = pw.add_file(str(f))
    pw.finish()
    monkeypatch.undo()
    assert cut == [len(short)], "big.bin was not cut short once its id was taken"
    assert oid == _hash_of(short)
    got = subprocess.run(
        ["git", "--git-dir", str(repo), "cat-file", "blob", oid], capture_output=True, check=True
    )
    assert got.stdout == short
    fsck = subprocess.run(["git", "--git-dir", str(repo), "fsck", "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
