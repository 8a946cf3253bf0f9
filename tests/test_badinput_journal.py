"""A fork's overlay database (its journal and entries) cut short on disk: every command
that opens it says which file is damaged and what to do (corrupt_state, one JSON
document, a hint naming `avfs doctor`) and changes nothing; it was exit 70 ("internal
error: DatabaseError: database disk image is malformed"). docs/security.md, bad input.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable

from .conftest import CliResult
from .test_json_everypath import _changed, _home_state

Cli = Callable[..., CliResult]


def test_an_overlay_database_cut_short_is_named_and_nothing_changes(cli_proc: Cli) -> None:
    cli = cli_proc  # (real processes: one in this process keeps its connection, and its pages)
    assert cli("vault", "create", "v").code == 0
    for i in range(3):
        assert cli("--vault", "v", "write", f"f{i}.txt", str(i)).code == 0
    home = os.environ["AVFS_HOME"]
    db = os.path.join(
        os.path.realpath(os.path.join(home, "vaults", "v.git", "avfs", "ws", "main")), "overlay.db"
    )
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # (every row in the file itself)
    conn.close()
    with open(db, "r+b") as fh:
        fh.truncate(os.path.getsize(db) // 2)
    for extra in ("-wal", "-shm"):
        if os.path.exists(db + extra):
            os.unlink(db + extra)
    before = _home_state(home)
    for args in (("status",), ("write", "g.txt", "g"), ("checkpoint", "save"), ("cat", "f0.txt")):
        r = cli("--vault", "v", "--json", *args)
        assert r.code != 0 and r.out.count("\n") == 1, (args, r.code, r.out)
        err = r.json()["error"]
        assert err["code"] == "corrupt_state" and db in err["message"], (args, err)  # (was internal)
        assert "damaged" in err["message"] and "avfs doctor" in err["hint"], err
        h = cli("--vault", "v", *args)
        assert h.code == r.code and "damaged" in h.err and "hint:" in h.err, h.err
    assert _changed(before, _home_state(home)) == []
    os.unlink(db)  # (the fixture's checks at the end read every overlay)
