"""A served `avfs merge` runs in the resident server's kept process (avfs_git/cli/callproc.py,
``KEPT_COMMANDS``), as a push and a fetch do: no fork per call, the home kept open from one
merge to the next (cli/homekeep.py). What another process changes between two merges (the
forks' tips, an open merge given up, a new fork, the caller's identity) is what the next
merge sees, and a merge's conflicts, its refusals and its exit codes are as a process of
its own gives them.

Which process ran a call is read from the server's first answer, ``{"started": PID}``: the
kept process is named by no pid (0; the caller relays signals through the server), a fresh
process by its own. A script runs the client (cli/client.py) with its ``_wait``, which
``served`` calls with that answer, wrapped to write it down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from avfs_git.cli import resident
from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault

_CLIENT = """
import json, sys
from avfs_git.cli import client
seen = []
wait = client._wait
def recorded(sock, buf, started):
    seen.append(started)
    return wait(sock, buf, started)
client._wait = recorded
code = client.served(sys.argv[2:], start=False)
with open(sys.argv[1], "a") as fh:
    fh.write(json.dumps({"code": code, "started": seen}) + "\\n")
sys.exit(99 if code is None else code)
"""


def _answers(home: str) -> bool:
    import socket

    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(resident.socket_path(home))
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture
def served(tmp_path: Path, home: Home, vault: Vault) -> Any:
    """A function running ``avfs ARGS`` through the home's server: (its process's answer,
    ``started`` as the server said it, the call's stdout); the server stopped at the end."""
    env = {**os.environ, "AVFS_SERVER": "auto", "AVFS_PROGRESS": "never"}
    subprocess.run(
        [sys.executable, "-m", "avfs_git", "server", "start"], env=env, check=True, capture_output=True
    )
    end = time.monotonic() + 60
    while not _answers(home.path):
        assert time.monotonic() < end, "no server"
        time.sleep(0.05)
    log = tmp_path / "started.log"

    def call(*args: str, extra: dict[str, str] | None = None) -> tuple[int, int, str]:
        before = log.read_text().count("\n") if log.exists() else 0
        p = subprocess.run(
            [sys.executable, "-c", _CLIENT, str(log), *args],
            env={**env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        rows = log.read_text().splitlines()[before:]
        assert len(rows) == 1, (rows, p.stderr)  # the wrapped client ran, once
        row = json.loads(rows[0])
        assert row["code"] == p.returncode, (row, p.stderr)
        assert len(row["started"]) == 1, row  # the patch ran: the server's first answer seen
        return p.returncode, row["started"][0], p.stdout

    try:
        yield call
    finally:
        subprocess.run([sys.executable, "-m", "avfs_git", "server", "stop"], env=env, capture_output=True)


def _git(vault: Vault, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", vault.path, *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _fork_with(vault: Vault, name: str, files: dict[str, bytes], base: str = "main") -> None:
    vault.create_fork(base, name)
    ws = vault.workspace(name)
    for path, data in files.items():
        ws.write(path, data)
    checkpoint.save(vault, name)


def test_merges_run_in_the_kept_process_and_see_what_changed_between_them(
    served: Any, home: Home, vault: Vault
) -> None:
    """A fast-forward, a merge commit, conflicts written and given up by another process,
    and a refused merge: each answered by the kept process (on main's code each ran in a
    fresh one: ``started`` its pid), each on the state as another process left it, each
    commit made as its own caller."""
    main = vault.workspace("main")
    main.write("a.txt", b"one\n")
    checkpoint.save(vault, "main")
    _fork_with(vault, "ff", {"b.txt": b"b\n"})
    code, started, out = served("--json", "--vault", "v", "merge", "ff", "--into", "main")
    assert (code, started) == (0, 0), out
    assert json.loads(out)["results"][0]["status"] == "fast_forward"
    assert _git(vault, "rev-parse", "main") == _git(vault, "rev-parse", "ff")

    # changed by another process between two merges: the target's tip, a new fork
    _fork_with(vault, "side", {"c.txt": b"c\n"})
    main.write("d.txt", b"d\n")
    checkpoint.save(vault, "main")
    ours, theirs = _git(vault, "rev-parse", "main"), _git(vault, "rev-parse", "side")
    code, started, out = served(
        "--json",
        "--vault",
        "v",
        "merge",
        "side",
        "--into",
        "main",
        extra={"GIT_AUTHOR_NAME": "second caller"},
    )
    assert (code, started) == (0, 0), out
    res = json.loads(out)["results"][0]
    assert (res["status"], res["ours"], res["theirs"]) == ("merged", ours, theirs)
    assert _git(vault, "rev-parse", "main^1", "main^2").split() == [ours, theirs]
    assert _git(vault, "log", "-1", "--format=%an", "main") == "second caller"
    assert _git(vault, "rev-parse", "main^{tree}") == _git(vault, "merge-tree", "--write-tree", ours, theirs)

    # conflicts written into the target, then given up by another process
    _fork_with(vault, "clash", {"a.txt": b"theirs\n"})
    main.write("a.txt", b"ours\n")
    checkpoint.save(vault, "main")
    tip = _git(vault, "rev-parse", "main")
    code, started, out = served(
        "--json", "--vault", "v", "merge", "clash", "--into", "main", "--write-conflicts"
    )
    assert (code, started) == (3, 0), out
    assert json.loads(out)["results"][0]["status"] == "conflicts_written"
    assert b"<<<<<<< " in vault.workspace("main").read("a.txt")
    # an open merge refuses the next, in the kept process too (exit 75: nothing moved)
    code, started, out = served("--json", "--vault", "v", "merge", "ff", "--into", "main")
    assert (code, started) == (75, 0), out
    assert json.loads(out)["error"]["code"] == "merge_in_progress"
    from avfs_git.core.operations import merge

    vault.close_workspaces()
    merge.merge_abort(vault, "main")
    assert vault.workspace("main").read("a.txt") == b"ours\n"
    assert _git(vault, "rev-parse", "main") == tip

    # and the next merge finds no open merge and merges
    _fork_with(vault, "late", {"e.txt": b"e\n"})
    main.write("f.txt", b"f\n")
    checkpoint.save(vault, "main")
    code, started, out = served("--json", "--vault", "v", "merge", "late", "--into", "main")
    assert (code, started) == (0, 0), out
    assert json.loads(out)["results"][0]["status"] == "merged"
    ops = [op.kind for op in vault.oplog.recent(50)]
    assert ops[0] == "merge" and ops.count("merge") == 4 and ops.count("merge_abort") == 1, ops


def test_the_kept_home_s_database_keeps_its_locks_after_its_wal_is_written_back(
    served: Any, home: Home, vault: Vault
) -> None:
    """The kept process writes back a WAL past ``WAL_CLOSE_AT`` through a connection of its
    own once a call is done (``_write_back``). Its descriptor to the database, which SQLite
    keeps open while the kept home's connection holds locks there, took the lowest free
    number: the answer's (:data:`.callproc.ANSWER_FD`, closed between calls), and the next
    call's ``dup2`` onto that number closed it, and with it every POSIX lock the process
    held on the op log. The next process to close the op log then took itself for its last
    user and deleted the WAL under the kept connection: "database disk image is
    malformed", the merge done but not recorded (found by bench/mergereal.py's ``wide``
    rounds, the op log's WAL past 256 KiB after ~40 operations)."""
    from avfs_git.cli import callproc

    main = vault.workspace("main")
    names = [f"k{i}" for i in range(4)]
    for name in names:
        _fork_with(vault, name, {f"{name}.txt": name.encode()})
        main.write(f"{name}-main.txt", b"m\n")
        checkpoint.save(vault, "main")
    vault.oplog.close()
    code, started, out = served("--json", "--vault", "v", "merge", "k0", "--into", "main")
    assert (code, started) == (0, 0), out  # the kept process, its home's op log open
    # the op log's WAL past the mark, written by another process
    pad = {"pad": "x" * (callproc.WAL_CLOSE_AT + 4096)}
    vault.oplog.record("checkpoint", "padding", fork="main", details=pad)
    vault.oplog.close()
    wal = Path(vault.oplog.path + "-wal")
    assert wal.stat().st_size > callproc.WAL_CLOSE_AT
    code, started, out = served("--json", "--vault", "v", "merge", "k1", "--into", "main")
    assert (code, started) == (0, 0), out  # its WAL written back once it has answered
    code, started, out = served("--json", "--vault", "v", "merge", "k2", "--into", "main")
    assert (code, started) == (0, 0), out  # (the call whose answer's descriptor took its place)
    # another process writes the op log and closes it: not its last user
    vault.oplog.record("checkpoint", "between", fork="main")
    vault.oplog.close()
    assert wal.exists()  # (the kept process still holds the op log: its WAL stays)
    code, started, out = served("--json", "--vault", "v", "merge", "k3", "--into", "main")
    assert (code, started) == (0, 0), out
    assert json.loads(out)["results"][0]["status"] == "merged"
    kinds = [(op.kind, op.summary) for op in vault.oplog.recent(3)]
    assert kinds[0] == ("merge", "merge k3 into main"), kinds
    assert vault.oplog.db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_two_merges_sent_at_once_into_one_fork_both_land(served: Any, home: Home, vault: Vault) -> None:
    """Two merges into ``main`` sent together: one runs in the kept process, the other in
    it after (waiting for it) or in the spare (while it runs): each under the target's
    lock, the second on the first's result; both merged, both recorded."""
    main = vault.workspace("main")
    main.write("m.txt", b"m\n")
    checkpoint.save(vault, "main")
    _fork_with(vault, "a", {"a.txt": b"a\n"})
    _fork_with(vault, "b", {"b.txt": b"b\n"})
    main.write("m2.txt", b"m2\n")
    checkpoint.save(vault, "main")
    tips = {f: _git(vault, "rev-parse", f) for f in ("a", "b")}
    code, _started, out = served("--vault", "v", "log", "-n", "1")
    assert code == 0, out
    env = {**os.environ, "AVFS_SERVER": "auto", "AVFS_PROGRESS": "never"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "avfs_git", "--json", "--vault", "v", "merge", f, "--into", "main"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in ("a", "b")
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    statuses = sorted(json.loads(o)["results"][0]["status"] for o, _ in outs)
    assert statuses == ["merged", "merged"], outs
    for tip in tips.values():  # both sources are in main's history
        assert (
            subprocess.run(
                ["git", "--git-dir", vault.path, "merge-base", "--is-ancestor", tip, "main"]
            ).returncode
            == 0
        )
    tree = _git(vault, "ls-tree", "--name-only", "main").split()
    assert {"a.txt", "b.txt", "m.txt", "m2.txt"} <= set(tree), tree
    merges = [op for op in vault.oplog.recent(10) if op.kind == "merge"]
    assert len(merges) == 2, merges
