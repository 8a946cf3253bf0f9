"""A snapshot fork's change log is made with its claim in it (core/workspace/changelog.py
``claim_new_fork``, core/workspace/sqlite.py ``create_filled``): the new fork's history starts
where its source's journal was, and a fork killed half-way is made again cleanly."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from avfs_git.core.types import IgnoredMode
from avfs_git.core.vaults.home import Home
from avfs_git.core.workspace import changelog
from avfs_git.core.workspace.changelog import ChangeLog

from .test_share import lhome  # noqa: F401  (the fixture)


def _meta(state_dir: str) -> dict[str, str]:
    conn = sqlite3.connect(os.path.join(state_dir, changelog.FILE))
    try:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()


def test_a_snapshot_of_a_source_without_a_log_gets_one_made_claimed(
    lhome: Home,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vault = lhome.create_vault("v")
    ws = vault.workspace("main")
    for i in range(3):
        ws.write(f"f{i}.txt", b"x\n")
    assert not os.path.exists(os.path.join(ws.state_dir, changelog.FILE))
    at = ws.overlay.last_seq()
    claims: list[str] = []
    real = ChangeLog.claim

    def counted(self: ChangeLog, fork: str, overlay_seq: int, *, fresh: bool = False) -> tuple[str, int, int]:
        claims.append(fork)
        return real(self, fork, overlay_seq, fresh=fresh)

    monkeypatch.setattr(ChangeLog, "claim", counted)
    made = vault.fork("main", "f")
    assert made.ignored.mode == IgnoredMode.SNAPSHOT
    assert claims == []  # made with its rows, no transaction after
    sd = vault.ws_dir("f")
    meta = _meta(sd)
    assert meta["fork"] == "f" and meta["start"] == f"{at}:0" and len(meta["id"]) == 16
    assert not [n for n in os.listdir(sd) if n.startswith(changelog.FILE + ".")]  # no leftovers
    with ChangeLog(sd) as log:
        assert log.identity("f", at + 5) == (meta["id"], at, 0)
    # a source whose log exists (it was claimed or mounted): the fork's copy is claimed
    # the ordinary way
    made = vault.fork("f", "g")
    assert claims == ["g"]
    meta_g = _meta(vault.ws_dir("g"))
    assert meta_g["fork"] == "g" and meta_g["id"] != meta["id"]


_KILL_AT = """
import os, signal, sys
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
home = Home(sys.argv[1], author=("A", "a@example.invalid"), mounts=MOUNT_SIDE)
vault = home.vault("v")
where = sys.argv[2]
real_link, real_fsync = os.link, os.fsync
def link(src, dst, *a, **k):
    if where == "link" and os.path.basename(str(dst)) == "changes.db":
        os.kill(os.getpid(), signal.SIGKILL)
    return real_link(src, dst, *a, **k)
def fsync(fd):
    if where == "dirsync" and os.path.isdir(f"/proc/self/fd/{fd}"):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_fsync(fd)
os.link, os.fsync = link, fsync
vault.fork("main", "f")
"""


@pytest.mark.parametrize("where", ["link", "dirsync"])
def test_a_fork_killed_while_its_log_is_made_is_made_again_cleanly(
    lhome: Home,  # noqa: F811
    where: str,
) -> None:
    vault = lhome.create_vault("v")
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    at = ws.overlay.last_seq()
    vault.close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    p = subprocess.run([sys.executable, "-c", _KILL_AT, lhome.path, where], env=env, capture_output=True)
    assert p.returncode == -9, p.stderr.decode()
    vault = lhome.vault("v")
    assert not vault.has_fork("f")  # killed before its ref: no fork
    made = vault.fork("main", "f")
    assert made.ignored.mode == IgnoredMode.SNAPSHOT
    meta = _meta(vault.ws_dir("f"))
    assert meta["fork"] == "f" and meta["start"] == f"{at}:0"
    assert vault.workspace("f").read("a.txt") == b"a\n"
    assert vault.workspace("main").read("a.txt") == b"a\n"
