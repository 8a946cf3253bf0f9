"""The op log taken before a branch moves, for every operation that moves one (the
checkpoint, undo and restore took it first in the twenty-fourth round; here merge, merge
--continue/--abort, revert, checkpoint delete, checkout of a path, and so `proxy exec`'s
commit): an op log held by another process past ``AVFS_LOCK_WAIT``, or damaged, refuses
the operation with "nothing was changed" (busy, exit 75; corrupt_state, exit 70), where
the merge, revert and delete moved the branch (deleted the ref) and then said "done, not
recorded": `avfs undo` could not take it back, and undid the operation before it.
docs/security.md, bad input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import CliResult
from .test_badinput_dblock import _busy, _held
from .test_fuse import require_fuse
from .test_json_everypath import _changed, _home_state

Cli = Callable[..., CliResult]

# what a refused operation may leave: the objects it wrote before it met the log
# (unreachable: gc expires them, as any refused merge's), the usage cache that counted
# them, its lock files, and what the merge learned of those trees (avfs/attrtrees: whether a
# tree's attribute files name merging, by tree id, as objects are: mergeattr2)
_MAY_CHANGE = (
    "/vaults/v.git/objects/",
    "/vaults/v.git/avfs/usage/",
    "/vaults/v.git/avfs/locks/",
    "/vaults/v.git/avfs/attrtrees",
)


def _setup(cli: Cli) -> dict[str, str]:
    """Vault v: main with a named checkpoint ``one`` and a second commit; fork ``side``
    (from ``one``) one commit ahead of it, fork ``ff`` one commit ahead of main. Returns
    the revisions the tests name."""
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "a.txt", "a\n").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "one").code == 0
    assert cli("vault", "fork", "v", "side").code == 0
    assert cli("--vault", "v:side", "write", "s.txt", "s\n").code == 0
    assert cli("--vault", "v:side", "checkpoint", "save", "-m", "side").code == 0
    assert cli("--vault", "v", "write", "b.txt", "b\n").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "-m", "two").code == 0
    assert cli("vault", "fork", "v", "ff").code == 0
    assert cli("--vault", "v:ff", "write", "f.txt", "f\n").code == 0
    assert cli("--vault", "v:ff", "checkpoint", "save", "-m", "ff").code == 0
    commits = cli("--vault", "v", "--json", "log").json()["commits"]
    return {"two": commits[0]["id"], "one": commits[1]["id"]}


# each operation that moves a ref and recorded after it: (its arguments, the head of main after it)
CASES = {
    "merge": ("merge", "side"),
    "merge-ff": ("merge", "ff"),
    "revert": ("revert", "HEAD"),
    "checkpoint-delete": ("checkpoint", "delete", "one"),
}


def _ops(cli: Cli) -> list[dict[str, object]]:
    return list(cli("--vault", "v", "--json", "op", "log").json()["operations"])


def _nothing_changed(home: str, before: dict[str, object]) -> None:
    changed = [c[len(home) :] for c in _changed(before, _home_state(home))]
    assert [c for c in changed if not c.startswith(_MAY_CHANGE)] == [], changed


def _done_and_undone(cli: Cli, args: tuple[str, ...], heads: dict[str, str]) -> None:
    """With the log usable again: the operation is done and recorded, and `undo` takes it
    back (not the operation before it)."""
    ops = len(_ops(cli))
    r = cli("--vault", "v", "--json", *args)
    assert r.code == 0, (r.out, r.err)
    assert len(_ops(cli)) == ops + 1
    assert cli("--vault", "v", "undo").code == 0
    assert cli("--vault", "v", "--json", "log").json()["commits"][0]["id"] == heads["two"]
    listed = cli("--vault", "v", "--json", "checkpoint", "list").json()["checkpoints"]
    assert [c["name"] for c in listed] == ["one"], listed


@pytest.mark.parametrize("case", list(CASES))
def test_a_locked_op_log_refuses_a_merge_revert_or_delete_before_anything_moves(
    cli: Cli, cli_proc: Cli, monkeypatch, case: str
) -> None:
    """Was: the branch moved (the ref deleted), then busy "done, not recorded"; `undo`
    then undid the checkpoint before it. The set-up in the test's process
    (``conftest.run_in_process``), each call after it a real process."""
    heads = _setup(cli)
    cli = cli_proc
    home = os.environ["AVFS_HOME"]
    db = os.path.join(home, "vaults", "v.git", "avfs", "oplog.db")
    before = _home_state(home)
    monkeypatch.setenv("AVFS_LOCK_WAIT", "0.5")
    with _held(db) as pid:
        err = _busy(cli("--vault", "v", "--json", *CASES[case]), db, pid)
        assert "nothing was changed" in str(err["message"]) and "done" not in err["details"], err
    _nothing_changed(home, before)
    monkeypatch.setenv("AVFS_LOCK_WAIT", "10")
    _done_and_undone(cli, CASES[case], heads)


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_op_log_refuses_a_ref_move_before_anything_moves(cli: Cli, case: str) -> None:
    """An op log cut short (not a database): the merge, revert and delete moved the
    branch, then said "done, but not recorded" (corrupt_state). Now refused first; with
    the damaged file moved aside, done and undoable."""
    heads = _setup(cli)
    home = os.environ["AVFS_HOME"]
    oplog = Path(home, "vaults", "v.git", "avfs", "oplog.db")
    with open(oplog, "r+b") as fh:
        fh.truncate(100)
    before = _home_state(home)
    r = cli("--vault", "v", "--json", *CASES[case])
    assert r.code == 70 and r.out.count("\n") == 1, (r.code, r.out, r.err)
    err = r.json()["error"]
    assert err["code"] == "corrupt_state" and str(oplog) in err["message"], err
    assert "nothing was changed" in err["message"] and "move the damaged file aside" in err["hint"], err
    assert "Traceback" not in r.err
    _nothing_changed(home, before)
    oplog.rename(oplog.with_suffix(".damaged"))
    r = cli("--vault", "v", "--json", *CASES[case])
    assert r.code == 0, (r.out, r.err)
    assert cli("--vault", "v", "undo").code == 0
    assert cli("--vault", "v", "--json", "log").json()["commits"][0]["id"] == heads["two"]


def test_a_locked_op_log_refuses_a_conflicted_merge_continue_abort_and_checkout(
    cli: Cli, cli_proc: Cli, monkeypatch
) -> None:
    """`merge --write-conflicts`, `merge --continue`, `merge --abort` and `checkout REV
    PATH` changed the fork's view, then recorded: with the log held, each is refused with
    nothing changed; with it free, each goes. The set-up in the test's process, each call
    after it a real process."""
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "a.txt", "a\n").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "one").code == 0
    assert cli("vault", "fork", "v", "side").code == 0
    assert cli("--vault", "v:side", "write", "a.txt", "side\n").code == 0
    assert cli("--vault", "v:side", "checkpoint", "save").code == 0
    assert cli("--vault", "v", "write", "a.txt", "main\n").code == 0
    assert cli("--vault", "v", "checkpoint", "save").code == 0
    cli = cli_proc
    home = os.environ["AVFS_HOME"]
    db = os.path.join(home, "vaults", "v.git", "avfs", "oplog.db")

    def refused(*args: str) -> None:
        before = _home_state(home)
        monkeypatch.setenv("AVFS_LOCK_WAIT", "0.5")
        with _held(db) as pid:
            err = _busy(cli("--vault", "v", "--json", *args), db, pid)
            assert "nothing was changed" in str(err["message"]), (args, err)
        _nothing_changed(home, before)
        monkeypatch.setenv("AVFS_LOCK_WAIT", "10")

    refused("merge", "side", "--write-conflicts")
    assert cli("--vault", "v", "merge", "side", "--write-conflicts").code == 3
    refused("merge", "--abort")
    assert cli("--vault", "v", "merge", "--abort").code == 0
    assert cli("--vault", "v", "merge", "side", "--write-conflicts").code == 3
    assert cli("--vault", "v", "write", "a.txt", "both\n").code == 0
    refused("merge", "--continue")
    assert cli("--vault", "v", "merge", "--continue").code == 0
    refused("checkout", "one", "--", "a.txt")
    assert cli("--vault", "v", "checkout", "one", "--", "a.txt").code == 0
    assert cli("--vault", "v", "cat", "a.txt").out == "a\n"


def test_proxy_exec_with_the_op_log_held_keeps_the_command_s_changes(tmp_path: Path) -> None:
    """`proxy exec` whose commit meets the op log held: the command ran; what it changed
    stays in the fork, uncheckpointed and named (`changes`), the branch where it was, the
    error busy with a hint about the lock (it said "free some space under the avfs home");
    the next checkpoint, once the log is free, records it and `undo` takes it back."""
    require_fuse()
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(AVFS_HOME=str(home), AVFS_SERVER="off", AVFS_LAYERS="off")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True, timeout=120, env=env
        )

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(home / "vaults" / "v.git"), *args], capture_output=True, text=True
        ).stdout.strip()

    assert run("vault", "create", "v").returncode == 0
    try:
        assert run("--vault", "v", "write", "a.txt", "a\n").returncode == 0
        assert run("--vault", "v", "checkpoint", "save", "one").returncode == 0
        assert run("--json", "--vault", "v", "proxy", "exec", "--", "true").returncode == 0  # mounted
        assert run("--vault", "v", "write", "u.txt", "before\n").returncode == 0  # uncheckpointed
        tip0 = git("rev-parse", "main")
        ops0 = json.loads(run("--json", "--vault", "v", "op", "log").stdout)["operations"]
        db = str(home / "vaults" / "v.git" / "avfs" / "oplog.db")
        env["AVFS_LOCK_WAIT"] = "0.5"
        with _held(db):
            res = run("--json", "--vault", "v", "proxy", "exec", "--", "sh", "-c", "echo new > n.txt")
        env["AVFS_LOCK_WAIT"] = "10"
        assert res.stdout.count("\n") == 1, res.stdout + res.stderr
        doc = json.loads(res.stdout)
        assert doc["result"] is not None and doc["result"]["exit_code"] == 0, doc
        err = doc["error"]
        assert err["code"] == "busy" and "space" not in err["hint"], err
        # (it said "nothing was changed", and nothing of the command's changes)
        assert "nothing was changed" not in err["message"] and "stay in the fork" in err["message"], err
        assert "checkpoint save" in err["hint"] and err["details"]["uncheckpointed"] == 1, err
        assert "n.txt" in {c["path"] for c in doc["changes"]}, doc
        assert git("rev-parse", "main") == tip0  # nothing moved: nothing unrecorded
        assert json.loads(run("--json", "--vault", "v", "op", "log").stdout)["operations"] == ops0
        status = json.loads(run("--json", "--vault", "v", "status").stdout)
        assert {c["path"] for c in status["changes"]} == {"u.txt", "n.txt"}, status
        assert run("--vault", "v", "checkpoint", "save", "-m", "later").returncode == 0
        assert git("show", "main:n.txt") == "new" and git("show", "main:u.txt") == "before"
        assert run("--vault", "v", "undo").returncode == 0
        assert git("rev-parse", "main") == tip0
    finally:
        run("unmount", "v:main")
