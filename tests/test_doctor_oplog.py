"""`avfs doctor`'s `oplog` check: each damage an operation log can take, made with SQLite
or by cutting the file, is reported as what it is (JSON and human), the home unchanged by
a check; `--repair` mends what it can and keeps every entry that was still good."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from avfs_git import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.oplog import COLUMNS
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import maintenance

from .conftest import CliResult
from .test_json_everypath import _changed, _home_state

Cli = Callable[..., CliResult]


@pytest.fixture
def logged(home: Home) -> Vault:
    """Vault v with a log of every link: create, checkpoint, fork, checkpoint, undo."""
    vault = home.create_vault("v")
    vault.workspace("main").write("a.txt", b"a\n")
    checkpoint.save(vault, "main", name="c1")
    vault.fork("main", "f2")
    vault.workspace("f2").write("b.txt", b"b\n")
    checkpoint.save(vault, "f2", name="c2")
    checkpoint.undo(vault)
    return vault


def _rows(vault: Vault) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(vault.oplog.path)
    try:
        return con.execute(f"SELECT {COLUMNS} FROM ops ORDER BY id").fetchall()
    finally:
        con.close()


def _edit(vault: Vault, *statements: tuple[str, tuple[Any, ...]]) -> None:
    vault.oplog.close()
    con = sqlite3.connect(vault.oplog.path)
    try:
        with con:
            for sql, params in statements:
                con.execute(sql, params)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def _state(home: Home) -> dict[str, object]:
    """The home's snapshot (tests/test_badinput_sweep's); a database SQLite cannot dump
    (the damaged log) by its bytes."""
    try:
        return _home_state(home.path)
    except sqlite3.DatabaseError:
        return {
            os.path.join(top, f): Path(top, f).read_bytes()
            for top, _, files in os.walk(home.path)
            for f in files
            if not f.endswith(("-shm", "-wal"))
        }


def _oplog_findings(cli: Cli, home: Home, *, repair: bool = False) -> list[dict[str, Any]]:
    """Doctor's oplog findings through the CLI (JSON), checked against its human output;
    a check without --repair changes nothing in the home."""
    before = _state(home)
    args = ("doctor", "--repair") if repair else ("doctor",)
    r = cli("--json", *args)
    doc = json.loads(r.out)
    assert doc["kind"] == "doctor" and "oplog" in doc["checks"], r.out
    found = [f for f in doc["findings"] if f["check"] == "oplog"]
    if not repair:
        assert _changed(before, _state(home)) == []
        human = cli(*args)
        assert human.code == r.code
        for f in found:
            assert f"oplog ({f['code']}): {f['problem']}" in human.out + human.err
    return found


def test_a_log_as_avfs_writes_it_has_nothing_to_say(cli: Cli, home: Home, logged: Vault) -> None:
    assert len(_rows(logged)) == 5
    assert _oplog_findings(cli, home) == []
    assert [f for f in maintenance.doctor(home).findings if f.check == "oplog"] == []


def test_a_duplicated_entry_is_named_and_repair_drops_only_the_copy(
    cli: Cli, home: Home, logged: Vault
) -> None:
    rows = _rows(logged)
    _edit(logged, (f"INSERT INTO ops({COLUMNS}) VALUES(99,?,?,?,?,?,?,?,NULL,NULL)", rows[1][1:8]))
    (found,) = _oplog_findings(cli, home)
    assert found["code"] == "oplog_duplicate" and found["repairable"]
    assert "entry 99" in found["problem"] and "repeats entry 2" in found["problem"]
    (fixed,) = _oplog_findings(cli, home, repair=True)
    assert fixed["repaired"]
    assert _rows(logged) == rows
    assert _oplog_findings(cli, home) == []


def test_an_entry_cut_short_is_named_and_undo_says_so(cli: Cli, home: Home, logged: Vault) -> None:
    _edit(logged, ("UPDATE ops SET refs=substr(refs, 1, 20) WHERE id=2", ()))
    rows = _rows(logged)
    (found,) = _oplog_findings(cli, home)
    assert found["code"] == "oplog_entry_malformed" and "entry 2" in found["problem"]
    assert not found["repairable"] and "not JSON" in found["problem"]
    assert _oplog_findings(cli, home, repair=True)[0]["repaired"] is False
    assert _rows(logged) == rows  # nothing to mend: kept as it is
    for args in (("op", "log"), ("undo", "--op", "2")):
        r = cli("--json", "--vault", "v", *args)
        assert json.loads(r.out)["error"]["code"] == "corrupt_state", r.out  # was internal
    # its workspaces cut short: what undo reads next
    _edit(logged, ("UPDATE ops SET workspaces='[{' WHERE id=3", ()))
    r = cli("--json", "--vault", "v", "undo", "--op", "3")
    assert json.loads(r.out)["error"]["code"] == "corrupt_state", r.out


def test_reordered_entries_are_out_of_order_and_their_links_wrong(
    cli: Cli, home: Home, logged: Vault
) -> None:
    rows = _rows(logged)
    swap = "UPDATE ops SET ts=?, kind=?, fork=?, summary=?, refs=?, workspaces=?, details=?, undone_by=?, undoes=? WHERE id=?"
    _edit(logged, (swap, (*rows[4][1:], 4)), (swap, (*rows[3][1:], 5)))
    found = {f["code"]: f for f in _oplog_findings(cli, home)}
    assert set(found) == {"oplog_out_of_order", "oplog_bad_link"}, found
    assert found["oplog_out_of_order"]["severity"] == "warning"
    assert "entry 5" in found["oplog_out_of_order"]["problem"]
    assert found["oplog_bad_link"]["severity"] == "problem"


def test_an_entry_of_another_vault_is_foreign(cli: Cli, home: Home, logged: Vault) -> None:
    other = home.create_vault("w")
    other.workspace("main").write("z.txt", b"z\n")
    checkpoint.save(other, "main", name="z1")
    stranger = _rows(other)[1]
    _edit(logged, (f"INSERT INTO ops({COLUMNS}) VALUES(NULL,?,?,?,?,?,?,?,NULL,NULL)", stranger[1:8]))
    (found,) = _oplog_findings(cli, home)
    assert found["code"] == "oplog_foreign_entry" and "entry 6" in found["problem"], found
    assert found["vault"] == "v" and not found["repairable"]


def test_an_entry_naming_a_commit_that_is_gone(cli: Cli, home: Home, logged: Vault) -> None:
    rows = _rows(logged)
    refs = json.loads(rows[1][5])
    gone = "0123456789abcdef0123456789abcdef01234567"
    refs[0]["new"] = gone
    _edit(logged, ("UPDATE ops SET refs=? WHERE id=2", (json.dumps(refs),)))
    (found,) = _oplog_findings(cli, home)
    assert found["code"] == "oplog_missing_commit" and gone[:12] in found["problem"], found
    assert "entry 2" in found["problem"]


def test_a_truncated_log_keeps_every_entry_still_readable(cli: Cli, home: Home, logged: Vault) -> None:
    # enough entries for pages past the first few (each ~2 kB: details padded)
    pad = json.dumps({"note": "x" * 2000})
    _edit(
        logged,
        *[
            (
                "INSERT INTO ops(ts, kind, fork, summary, refs, workspaces, details) VALUES(?,?,?,?,?,?,?)",
                (2e9 + i, "checkpoint_delete", "main", f"entry {i}", "[]", "[]", pad),
            )
            for i in range(60)
        ],
    )
    rows = _rows(logged)
    size = os.path.getsize(logged.oplog.path)
    with open(logged.oplog.path, "r+b") as f:
        f.truncate(size // 2)
    (found,) = _oplog_findings(cli, home)
    assert found["code"] == "oplog_unreadable" and found["repairable"], found
    (fixed,) = _oplog_findings(cli, home, repair=True)
    assert fixed["repaired"]
    kept = _rows(logged)
    assert 5 <= len(kept) < len(rows)
    assert set(kept) <= set(rows)  # nothing but entries as they were, ids kept
    assert kept[:5] == rows[:5]  # the first pages' entries: every one avfs wrote
    lost = os.listdir(os.path.join(logged.state_dir, "lost+found"))
    assert [n for n in lost if n.startswith("oplog.") and n.endswith(".db")], lost
    assert _oplog_findings(cli, home) == []
    # the log goes on: the next operation gets an id past every kept one
    checkpoint.save(logged, "main", name="after")
    assert _rows(logged)[-1][0] > kept[-1][0]
