"""A push into a remote whose disk is full: a real `git daemon` on 127.0.0.1 (and a plain
path, git's local transport) serving a repository on a small tmpfs, filled so that what the
push sends does not fit. The error names the server's own reason (git's `remote: ... No
space left on device`, `details.reason` = `remote_no_space`), never a hook or branch
protection, never "the server could not be reached"; exit 5, one JSON document; nothing
moved here (refs, the op log, the overlay) or there (no ref, `git fsck` clean); the same
push goes through once the server has room.

One 2 MB tmpfs and one `git daemon` for the module; each test a new bare repository in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint

from .conftest import IN_CI, git, snapshot
from .test_nospace import fill
from .test_remotes import _free_port, _start_daemon, _stop_daemon


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """(a 2 MB tmpfs, the port of a `git daemon` serving it with receive-pack)."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("CI runs as root: a tmpfs must be mountable")
        pytest.skip("requires root to mount a small tmpfs for the remote")
    base = tmp_path_factory.mktemp("fullremote") / "served"
    base.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(base)], check=True)
    try:
        port = _free_port()
        proc = _start_daemon(base, port)
        try:
            yield base, port
        finally:
            _stop_daemon(proc)
    finally:
        subprocess.run(["umount", "-l", str(base)], check=True)


# (transport, bytes of the pushed file, bytes left on the server's disk): a file that
# receive-pack's unpack-objects cannot write (the server then says "[remote rejected]
# (unpacker error)") and one larger than what is left (receive-pack dies mid-stream: the
# connection is reset after its "remote: fatal: ..." line)
CASES = [
    ("daemon", 2_000, 4_096),
    ("daemon", 1_000_000, 8_000),
    ("path", 2_000, 4_096),
    ("path", 1_000_000, 8_000),
]


@pytest.mark.parametrize(("how", "size", "keep"), CASES, ids=[f"{h}-{s}-{k}" for h, s, k in CASES])
def test_a_push_into_a_full_remote_names_its_full_disk_and_changes_nothing(
    served: tuple[Path, int], vault, cli, how: str, size: int, keep: int
) -> None:
    base, port = served
    name = f"{how}-{size}.git"
    repo = base / name
    git("init", "-q", "--bare", str(repo))
    try:
        ws = vault.workspace("main")
        ws.write("data.bin", os.urandom(size))
        checkpoint.save(vault, "main", message="data")
        url = f"git://127.0.0.1:{port}/{name}" if how == "daemon" else str(repo)
        assert cli("--vault", "v", "remote", "add", "origin", url).code == 0
        before = snapshot(vault)
        ballast = fill(base, keep)
        try:
            r = cli("--json", "--vault", "v", "push", "origin", "main")
        finally:
            ballast.unlink()
        doc = r.json()
        assert r.code == 5 and doc["kind"] == "error", doc
        err = doc["error"]
        assert err["code"] in {"remote_rejected", "remote_failed"}, err["message"]
        assert "hook" not in err["hint"] and "could not be reached" not in err["message"], err
        if err["details"]["reason"] == "dropped":  # the server's reset discarded its last words
            # (mostly the file larger than what is left; under load the small one too: git
            # daemon's receive-pack then dies before its "unpacker error" line is read)
            assert how == "daemon" and "disk may be full" in err["message"], err
            assert "free space" in err["hint"], err
        else:
            assert err["details"]["reason"] == "remote_no_space", err["message"]
            assert "no space left" in err["message"] and "No space left on device" in err["message"], err
            assert "free space on the server" in err["hint"], err
        assert snapshot(vault) == before
        assert git("--git-dir", str(repo), "for-each-ref") == ""
        git("--git-dir", str(repo), "fsck", "--full", "--strict")
        r = cli("--json", "--vault", "v", "push", "origin", "main")
        assert r.code == 0, r.out + r.err
        assert git("--git-dir", str(repo), "rev-parse", "refs/heads/main").strip() == ws.tip()
    finally:
        shutil.rmtree(repo, ignore_errors=True)
