"""A full fork's read-only commands answer (quota2, the thirty-third round).

ci35's one failure: `test_adv_quota`'s full fork [layers], whose `avfs status` answered
`quota_exceeded` once in ~30 runs under load. A status writes a little bookkeeping into the
fork's state dir (its mark of what it found: core/workspace/upperjournal.py ``remember``);
on a layers home that state dir is a subvolume of the vault's btrfs qgroup, which a writer
in the mount had filled, and avfs's own room over the kernel's limit (``Vault.own_room``)
is bounded: once it is taken or cannot be given, that write fails with EDQUOT, and the
status failed with it. The same held for every command that opens the fork while another
hand's commit waits to be adopted (its base move is a write, through an overlay mount the
commit's files too), and for `avfs watch` on a fork whose change log was never claimed.

Here the fork's state is made full to the last byte, deterministically: filled through the
mount until refused, then the vault's quota lowered under what the fork holds, so the
kernel's limit is below what the qgroup holds and past avfs's room (no file, no directory
can be made in the state dir: data and metadata both refused), with another hand's commit
onto the fork waiting and the change log unclaimed. Each read-only command, through the
CLI, the MCP read tools and git in the mount, must answer as documented, and change
nothing (the fork's files, its refs, the op log). Once the quota is raised, the next
command adopts the commit: nothing of the bookkeeping's meaning was lost.

The first `status` (ci35's own failure), the mount, its unmount and the MCP server are real
processes; the other CLI calls, set-up and reads, run in the test's process
(``conftest.run_in_process``: the same code, the directory and environment of the call,
each opening the home and the fork anew; suitetime7 of the thirty-ninth round: 52
processes and an MCP server's SDK import were most of the test's CPU). Each read still
writes its bookkeeping as it goes and meets the full state dir: with ``noroom.cannot_write``
answering False in the test's process, `status`, `diff`, `diff --stat`, `cat`, `ls`,
`stat`, `tree`, `vault info` and `watch` each fail there (checked).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.vaults import layers

from . import mcpwarm
from .conftest import run_in_process, skip_outside_ci
from .test_fuse import require_fuse

MIB = 1 << 20
# past what the kernel's limit of a vault's qgroup keeps over a 1 MiB quota (its room for
# avfs's own state, and avfs's own room over that: core/vaults/vaultquota.py), with what
# the mount's writer adds
BALLAST = 64 * MIB

# the MCP tools that read (docs/mcp.md), with their arguments here
MCP_READS: dict[str, dict[str, Any]] = {
    "vault_list": {},
    "fork_list": {},
    "status": {},
    "read_file": {"path": "keep.txt"},
    "list_files": {},
    "checkpoint_list": {},
    "log": {},
    "diff": {},
    "changes_since": {},
}


def avfs(*args: str, cwd: Path | str | None = None, code: int = 0, real: bool = False) -> str:
    """`avfs ARGS` in this process, or as a real process (``real``); exit ``code``; its stdout."""
    if real:
        r = subprocess.run(
            [sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True, timeout=300, cwd=cwd
        )
        rc, out, err = r.returncode, r.stdout, r.stderr
    else:
        res = run_in_process(list(args), cwd=cwd)
        rc, out, err = res.code, res.out, res.err
    assert rc == code, f"avfs {args}: exit {rc}\n{out}{err}"
    return out


def doc(*args: str, cwd: Path | str | None = None, real: bool = False) -> dict[str, Any]:
    """`avfs --json ARGS`, exit 0: its one JSON document, not an error."""
    lines = [ln for ln in avfs("--json", *args, cwd=cwd, real=real).splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    d = dict(json.loads(lines[0]))
    assert d["kind"] != "error", d
    return d


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's home, its forks' state in the layers file system (the product's default)."""
    require_fuse()
    why = layers.probe()
    if why is not None:
        skip_outside_ci(f"requires a loop-mounted btrfs: {why}")
    monkeypatch.delenv("AVFS_LAYERS", raising=False)
    monkeypatch.setattr(layers, "DEFAULT_MODE", "auto")
    return Path(os.environ["AVFS_HOME"])


@pytest.fixture(params=["overlay", "fuse"])
def full(request: pytest.FixtureRequest, home: Path, tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """Fork v:main mounted with the backend, its state full to the last byte, another
    hand's commit onto it waiting: (the mount, the fork's base, that commit)."""
    avfs("vault", "create", "v")
    avfs("--vault", "v", "write", "keep.txt", "kept\n")
    avfs("--vault", "v", "write", "src/app.py", "print('app')\n")
    base = doc("--vault", "v", "checkpoint", "save", "-m", "one")["checkpoint"]["commit"]
    # most of what fills the vault's qgroup is another fork's (its state a subvolume of the
    # same qgroup): what a read of main hashes stays small
    avfs("vault", "fork", "v", "other")
    ballast = tmp_path / "ballast.bin"
    ballast.write_bytes(os.urandom(BALLAST))
    avfs("--vault", "v:other", "write", "ballast.bin", "--file", str(ballast))
    ballast.unlink()
    avfs("--vault", "v", "quota", "set", "--bytes", str(BALLAST + 16 * MIB))
    mp = tmp_path / "mnt"
    mp.mkdir()
    avfs("mount", "v:main", str(mp), "--backend", request.param, real=True)
    try:
        state = os.path.realpath(home / "vaults" / "v.git" / "avfs" / "ws" / "main")
        assert state.startswith(os.path.realpath(layers.mount_path(str(home))) + "/"), state
        dd = subprocess.run(
            ["dd", "if=/dev/urandom", f"of={mp}/fill.bin", "bs=1M", "count=200"],
            capture_output=True,
            text=True,
        )
        assert dd.returncode != 0 and "Disk quota exceeded" in dd.stderr, dd.stderr
        # (btrfs counts what a qgroup holds at its transaction's commit: until then what was
        # written since is in no count, and a limit set now, or the kernel's own check, is
        # of less than the qgroup holds)
        os.sync()
        # the quota lowered under what the fork holds (allowed: growth is refused until it
        # is back under): the kernel's limit of the vault's qgroup is then below what the
        # qgroup holds, past the room avfs takes for its own writes
        avfs("--vault", "v", "quota", "set", "--bytes", str(MIB))
        for make in (lambda p: os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)), os.mkdir):
            with pytest.raises(OSError) as err:
                make(os.path.join(state, "probe"))
            assert err.value.errno == errno.EDQUOT  # data and metadata: full to the last byte
        # another hand's commit onto the fork (plain git on the vault, outside the image):
        # it changes a file the person did not touch and adds one; adopting it is a write
        vault = str(home / "vaults" / "v.git")
        tip = _commit(vault, base, {"keep.txt": b"kept2\n", "other.txt": b"other\n"})
        yield mp, base, tip
    finally:
        if os.path.ismount(mp):
            r = subprocess.run([sys.executable, "-m", "avfs_git", "unmount", str(mp)], capture_output=True)
            if r.returncode != 0 or os.path.ismount(mp):
                subprocess.run(["umount", "-l", str(mp)], check=False)


def _commit(vault: str, parent: str, files: dict[str, bytes]) -> str:
    """A commit of ``files`` over ``parent`` moved onto refs/heads/main by git itself."""

    def git(*args: str, data: bytes | None = None, env: dict[str, str] | None = None) -> str:
        r = subprocess.run(
            ["git", "--git-dir", vault, *args],
            input=data,
            capture_output=True,
            check=True,
            env={**os.environ, **(env or {})},
        )
        return r.stdout.decode().strip()

    index = {"GIT_INDEX_FILE": vault + "/other-hand.index"}
    git("read-tree", parent, env=index)
    for path, data in files.items():
        oid = git("hash-object", "-w", "--stdin", data=data)
        git("update-index", "--add", "--cacheinfo", f"100644,{oid},{path}", env=index)
    tree = git("write-tree", env=index)
    os.unlink(index["GIT_INDEX_FILE"])
    tip = git("commit-tree", tree, "-p", parent, "-m", "another hand")
    git("update-ref", "refs/heads/main", tip, parent)
    return tip


def _snapshot(home: Path, mp: Path) -> dict[str, object]:
    """What no read may change: the fork's files as the mount shows them, the vault's refs
    and reflog of the fork, the op log."""
    vault = str(home / "vaults" / "v.git")
    files = {
        str(p.relative_to(mp)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(mp.rglob("*"))
        if p.is_file() and ".git" not in p.parts
    }
    refs = subprocess.run(
        ["git", "--git-dir", vault, "for-each-ref", "--format=%(refname) %(objectname)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    reflog = (home / "vaults" / "v.git" / "logs" / "refs" / "heads" / "main").read_bytes()
    return {
        "files": files,
        "refs": refs,
        "reflog": reflog,
        "ops": doc("--vault", "v", "op", "log")["operations"],
    }


def _mcp_reads(mp: Path) -> dict[str, dict[str, Any]]:
    """Each of :data:`MCP_READS` called on an `avfs mcp` server started in the mount (a fork
    of the test process's warm one, tests/mcpwarm.py: the MCP SDK's ~2 s import once a
    process; avfs's own modules imported in the server as in a process of its own): tool
    -> its structured result."""
    forks = mcpwarm.forks()
    proc = subprocess.Popen(
        mcpwarm.command("mcp"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=mp,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def call(i: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        stdin.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}) + "\n")
        stdin.flush()
        reply = json.loads(stdout.readline())
        assert reply["id"] == i, reply
        return dict(reply["result"])

    out = {}
    try:
        init = {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"},
        }
        call(1, "initialize", init)
        stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
        for i, (tool, args) in enumerate(MCP_READS.items(), 2):
            got = call(i, "tools/call", {"name": tool, "arguments": args})
            assert not got.get("isError"), (tool, got)
            out[tool] = dict(got["structuredContent"])
    finally:
        stdin.close()
        assert proc.wait(timeout=60) == 0
        stdout.close()
    assert mcpwarm.forks() == forks + 1
    return out


def test_every_read_of_a_full_fork_answers_and_changes_nothing(
    home: Path, full: tuple[Path, str, str]
) -> None:
    mp, base, tip = full
    before = _snapshot(home, mp)
    # the CLI's reads, in the mount (the first a real process: ci35's failure)
    st = doc("status", cwd=mp, real=True)
    assert [c["path"] for c in st["changes"]] == ["fill.bin"], st
    # the other hand's commit is not adopted (its base move had no room): the fork says so
    assert (st["base"], st["head"], st["stale"]) == (base, tip, True), st
    assert [c["path"] for c in doc("diff", cwd=mp)["changes"]] == ["fill.bin"]
    assert "fill.bin" in avfs("diff", "--stat", cwd=mp)
    assert doc("log", cwd=mp)["commits"][0]["id"] == tip
    assert doc("cat", "keep.txt", cwd=mp)["files"][0]["content"] == "kept\n"  # the view, unchanged
    assert {e["name"] for e in doc("ls", cwd=mp)["entries"]} == {"fill.bin", "keep.txt", "src"}
    assert doc("stat", "keep.txt", cwd=mp)["stat"]["kind"] == "file"
    assert doc("tree", cwd=mp)["kind"] == "tree"
    assert doc("checkpoint", "list", cwd=mp)["kind"] == "checkpoint_list"
    assert doc("vault", "info", cwd=mp)["kind"] == "vault_info"
    assert doc("quota", "show", cwd=mp)["over"] == ["bytes"]
    # watch: the fork's change log was never claimed (a claim is a write): its cursor reads
    # on exactly while the fork is full, never a resync
    cursor = doc("watch", "--once", cwd=mp)["cursor"]
    again = avfs("--json", "watch", "--once", "--since", cursor, cwd=mp)
    assert "resync_required" not in again and json.loads(again.splitlines()[-1])["kind"] == "watch_cursor", (
        again
    )
    # the MCP read tools
    got = _mcp_reads(mp)
    assert [c["path"] for c in got["status"]["changes"]] == ["fill.bin"]
    assert got["read_file"]["files"][0]["content"] == "kept\n"
    assert {k for k, v in got.items() if v["kind"] == "error"} == set()
    # git in the mount
    git = subprocess.run(["git", "status", "--porcelain"], cwd=mp, capture_output=True, text=True)
    assert git.returncode == 0 and "?? fill.bin" in git.stdout.splitlines(), git.stdout + git.stderr
    assert _snapshot(home, mp) == before
    # room again: the next command adopts the commit (the base move it had no room for)
    avfs("--vault", "v", "quota", "set", "--bytes", "none")
    st = doc("status", cwd=mp)
    assert (st["base"], st["head"], st["stale"]) == (tip, tip, False), st
    assert [c["path"] for c in st["changes"]] == ["fill.bin"]
    assert (mp / "keep.txt").read_bytes() == b"kept2\n" and (mp / "other.txt").read_bytes() == b"other\n"


# a writer of the change log that died between its rollback journal and the database (as the
# mount daemon's append leaves it when its commit, then its rollback, found no room): with
# SQLite's syncs off its journal's header is whole at once, so the journal is hot as soon as
# the writer is gone
_PLANT = """
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA synchronous=OFF")
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO events(ts, kind, path) VALUES(0, 'created', 'planted.txt')")
os._exit(0)
"""


@pytest.mark.parametrize("full", ["overlay"], indirect=True)
def test_a_change_log_a_writer_left_mid_write_is_read_on_a_full_fork(
    home: Path, full: tuple[Path, str, str]
) -> None:
    """The official CI's failure of the thirty-ninth round's tree: `watch --once` on the
    full [overlay] fork above failed `corrupt_state` ("cannot open database
    .../changes.db: disk I/O error"). The change log is a rollback-journal database the
    mount's daemon appends to while the kernel fills the fork's quota; an append whose
    commit and then whose rollback found no room (btrfs writes a page back to a new
    place) leaves its journal hot, and SQLite's every reader rolls it back first: a write,
    refused while the fork is full. The log reads as it was before that append, and
    nothing changes."""
    mp, _base, _tip = full
    state = os.path.realpath(home / "vaults" / "v.git" / "avfs" / "ws" / "main")
    log = os.path.join(state, "changes.db")
    # room for the writer (the quota raised a moment), then the fork full again
    avfs("--vault", "v", "quota", "set", "--bytes", "none")
    subprocess.run([sys.executable, "-c", _PLANT, log], check=True)
    avfs("--vault", "v", "quota", "set", "--bytes", str(MIB))
    with open(log + "-journal", "rb") as fh:
        assert fh.read(1) != b"\0"  # hot: SQLite's readers roll it back first
    with pytest.raises(OSError) as err:
        os.mkdir(os.path.join(state, "probe"))
    assert err.value.errno == errno.EDQUOT
    before = _snapshot(home, mp)
    journal = Path(log + "-journal").read_bytes()
    cursor = doc("watch", "--once", cwd=mp)["cursor"]
    for real in (False, True):
        out = avfs("--json", "watch", "--once", "--since", cursor, cwd=mp, real=real)
        assert json.loads(out.splitlines()[-1])["kind"] == "watch_cursor", out
        assert "planted.txt" not in out and "resync_required" not in out, out
    st = doc("status", cwd=mp, real=True)
    assert [c["path"] for c in st["changes"]] == ["fill.bin"], st
    assert _snapshot(home, mp) == before
    assert Path(log + "-journal").read_bytes() == journal  # (no room to roll it back: kept)
    # room again: the next writer rolls the journal back; the planted row was never there
    avfs("--vault", "v", "quota", "set", "--bytes", "none")
    out = avfs("--json", "watch", "--once", "--since", cursor, cwd=mp)
    assert "planted.txt" not in out and not os.path.exists(log + "-journal"), out
