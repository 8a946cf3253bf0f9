"""A home whose state is damaged gets a clear error, never "internal error": a fork's ref
file holding junk is an unreadable commit for every command (`log` included), and a
truncated operation log is named, with what was done said to be done."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import CliResult
from .test_json_everypath import _changed, _home_state

Cli = Callable[..., CliResult]


@pytest.fixture
def shome(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "f.txt", "hi").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "c1").code == 0
    return Path(os.environ["AVFS_HOME"])


@pytest.mark.parametrize(
    "args",
    [
        ("log",),
        ("status",),
        ("diff",),
        ("cat", "f.txt"),
        ("write", "g.txt", "x"),
        ("checkpoint", "save", "c2"),
    ],
    ids=lambda a: " ".join(a),
)
def test_a_ref_file_holding_junk_is_an_unreadable_commit(cli: Cli, shome: Path, args) -> None:
    ref = Path(shome, "vaults", "v.git", "refs", "heads", "main")
    good = ref.read_bytes()
    ref.write_text("junk\n")
    before = _home_state(str(shome))
    try:
        r = cli("--json", "--vault", "v", *args)
    finally:
        after = _home_state(str(shome))
        ref.write_bytes(good)  # (the vault as it was, for the fixture's own fsck)
    doc = r.json()
    # (since badinput8: the damaged ref named by its file, with git's command to restore it)
    assert r.code == 70 and doc["error"]["code"] == "corrupt_state", doc
    assert "junk" in doc["error"]["message"] and str(ref) in doc["error"]["message"], doc
    assert "put its commit back" in doc["error"]["hint"], doc
    assert "Traceback" not in r.err
    assert not _changed(before, after)


def test_a_truncated_operation_log_is_named_and_nothing_moves(cli: Cli, shome: Path) -> None:
    """The checkpoint was made, then "done, but not recorded" (`undo` could not take it
    back); now the log is found damaged before the branch moves (tests/test_badinput_oplogfirst.py)."""
    oplog = Path(shome, "vaults", "v.git", "avfs", "oplog.db")
    with open(oplog, "r+b") as fh:
        fh.truncate(100)
    assert cli("--vault", "v", "write", "g.txt", "x").code == 0
    r = cli("--json", "--vault", "v", "checkpoint", "save", "c2")
    doc = r.json()
    assert r.code == 70 and doc["error"]["code"] == "corrupt_state", doc
    assert str(oplog) in doc["error"]["message"] and "nothing was changed" in doc["error"]["message"]
    assert "Traceback" not in r.err
    # not done, as it said: no checkpoint, the change still uncheckpointed; with the
    # damaged file moved aside, a new log
    listed = cli("--json", "--vault", "v", "checkpoint", "list").json()
    assert "c2" not in [c["name"] for c in listed["checkpoints"]]
    assert "g.txt" in [c["path"] for c in cli("--json", "--vault", "v", "status").json()["changes"]]
    oplog.rename(oplog.with_suffix(".damaged"))
    assert cli("--vault", "v", "write", "h.txt", "y").code == 0
    assert cli("--json", "--vault", "v", "checkpoint", "save", "c3").code == 0
    assert cli("--json", "--vault", "v", "undo").code == 0
