"""Optimistic writes (issue 29 §2): a write, rm, mv or cp with `--expect BLOB` (or
`absent`) goes ahead only when the path still holds what the caller read, else nothing
changes and `expect_mismatch` carries the current blob id; reads report the blob id to
expect; `--expect-head` does the same for a fork's branch on checkpoint save, restore and
merge. Through the CLI (a fork unmounted, and mounted on both backends), the API and MCP;
and writers of all three racing on one file: exactly one wins per version, nothing torn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import ExpectMismatchError, UsageError
from avfs_git.core.store.gitstore import blob_id
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts

from . import mcpwarm
from .conftest import snapshot
from .test_fuse import require_fuse
from .test_overlay import require_overlay

# the home's warm CLI server, as a user's (tests/conftest.py, warm_cli): its calls are the CLI's, not its start
pytestmark = pytest.mark.warm_cli


def _doc(cli_proc: Any, *args: str, code: int = 0) -> dict[str, Any]:
    r = cli_proc("--json", *args)
    assert r.code == code, (args, r.code, r.out, r.err)
    lines = [ln for ln in r.out.splitlines() if ln.strip()]
    assert len(lines) == 1, r.out
    return dict(json.loads(lines[0]))


def _race_after_the_lock(monkeypatch: pytest.MonkeyPatch, vault: Vault, path: str) -> list[bool]:
    """Another writer writes ``theirs`` to ``path`` the moment the next write lock is let go,
    once; the list it returns holds True once it has."""
    import contextlib

    from avfs_git.core.workspace.workspace import Workspace

    real_lock = Workspace.write_lock
    raced: list[bool] = []

    @contextlib.contextmanager
    def lock_then_race(self: Any) -> Any:
        with real_lock(self):
            yield
        if not raced:  # another writer, the moment the lock is free
            raced.append(True)
            vault.workspace("main").write(path, b"theirs\n")

    monkeypatch.setattr(Workspace, "write_lock", lock_then_race)
    return raced


def _mismatch(cli_proc: Any, *args: str) -> dict[str, Any]:
    d = _doc(cli_proc, *args, code=1)
    assert d["kind"] == "error" and d["error"]["code"] == "expect_mismatch", d
    assert d["error"]["hint"]
    return dict(d["error"]["details"])


@pytest.fixture(params=["unmounted", "overlay", "fuse"])
def where(request: pytest.FixtureRequest, home: Home, vault: Vault) -> Any:
    """Fork main with a.txt and d/, unmounted or mounted on a backend."""
    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n")
    ws.write("d/b.txt", b"b\n")
    ws.symlink("a.txt", "link")
    if request.param == "unmounted":
        yield request.param
        return
    (require_overlay if request.param == "overlay" else require_fuse)()
    mounts.mount(home, vault, "main", None, backend=request.param)
    try:
        yield request.param
    finally:
        mounts.unmount(home, vault, "main")


def test_the_cli_writes_only_what_was_read(where: str, cli: Any, cli_proc: Any, vault: Vault) -> None:
    """Each command a real process on the unmounted fork; in the test's process on a
    mounted one (``conftest.run_in_process``: the command's code and its answer are the
    same, a process's start is ~0.2 s of CPU)."""
    if where != "unmounted":
        cli_proc = cli
    one = blob_id(b"one\n")
    got = _doc(cli_proc, "cat", "a.txt")["files"][0]
    assert got["blob"] == one
    assert _doc(cli_proc, "stat", "a.txt")["blob"] == one
    assert _doc(cli_proc, "stat", "link")["blob"] == blob_id(b"a.txt")  # a link: its target, as git keeps it
    # the expected blob: written; the answer names the new one
    w = _doc(cli_proc, "write", "a.txt", "two\n", "--expect", one)
    assert w["blob"] == blob_id(b"two\n")
    # a stale one: nothing written, the current blob said
    d = _mismatch(cli_proc, "write", "a.txt", "three\n", "--expect", one)
    assert d == {"path": "a.txt", "expected": one, "current": blob_id(b"two\n")}
    assert vault.workspace("main").read("a.txt") == b"two\n"
    # create only
    assert _mismatch(cli_proc, "write", "a.txt", "x", "--expect", "absent")["current"] == blob_id(b"two\n")
    _doc(cli_proc, "write", "new.txt", "new\n", "--expect", "absent")
    assert _mismatch(cli_proc, "write", "gone.txt", "x", "--expect", one)["current"] is None
    # rm, mv and cp: rm checks PATH, mv and cp what they replace (DST)
    assert _mismatch(cli_proc, "rm", "new.txt", "--expect", one)["current"] == blob_id(b"new\n")
    assert _mismatch(cli_proc, "mv", "new.txt", "a.txt", "--expect", "absent")["path"] == "a.txt"
    assert _mismatch(cli_proc, "cp", "new.txt", "a.txt", "--expect", "absent")["path"] == "a.txt"
    ws = vault.workspace("main")
    assert ws.read("a.txt") == b"two\n" and ws.read("new.txt") == b"new\n"
    _doc(cli_proc, "cp", "new.txt", "copy.txt", "--expect", "absent")
    _doc(cli_proc, "mv", "copy.txt", "a.txt", "--expect", blob_id(b"two\n"))
    assert ws.read("a.txt") == b"new\n" and not ws.exists("copy.txt")
    _doc(cli_proc, "rm", "new.txt", "--expect", blob_id(b"new\n"))
    assert not ws.exists("new.txt")


def test_bad_expectations_change_nothing(cli_proc: Any, vault: Vault) -> None:
    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n")
    ws.mkdir("d")
    before = snapshot(vault)
    for bad in ("", "abc", "g" * 40, blob_id(b"one\n")[:12], "ABSENT ", "1" * 41):
        d = _doc(cli_proc, "write", "a.txt", "x", "--expect", bad, code=2)
        assert d["error"]["code"] == "usage", d
    d = _doc(cli_proc, "write", "d", "x", "--expect", blob_id(b"one\n"), code=1)
    assert d["error"]["code"] == "is_a_directory", d
    d = _doc(cli_proc, "rm", "a.txt", "d", "--expect", blob_id(b"one\n"), code=2)
    assert snapshot(vault) == before and ws.read("a.txt") == b"one\n"


def test_the_api_expects_too(vault: Vault) -> None:
    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n", expect="absent")
    with pytest.raises(ExpectMismatchError) as err:
        ws.write("a.txt", b"two\n", expect="absent")
    assert err.value.details["current"] == blob_id(b"one\n")
    ws.write("a.txt", b"two\n", expect=blob_id(b"one\n"))
    with pytest.raises(UsageError):
        ws.remove("a.txt", expect="nope")
    ws.remove("a.txt", expect=blob_id(b"two\n"))
    assert ws.blob_of("a.txt") is None


def test_expect_head_on_checkpoint_restore_and_merge(cli_proc: Any, vault: Vault) -> None:
    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n")
    first = _doc(cli_proc, "checkpoint", "save", "-m", "one")["checkpoint"]["commit"]
    ws.write("a.txt", b"two\n")
    second = _doc(cli_proc, "checkpoint", "save", "-m", "two", "--expect-head", first)["checkpoint"]["commit"]
    ws.write("a.txt", b"three\n")
    before = snapshot(vault)
    for args in (
        ("checkpoint", "save", "--expect-head", first),
        ("checkpoint", "restore", first, "--expect-head", first),
    ):
        d = _mismatch(cli_proc, *args)
        assert d == {"fork": "main", "expected": first, "current": second}, d
    assert snapshot(vault) == before and ws.read("a.txt") == b"three\n"
    _doc(cli_proc, "checkpoint", "restore", first, "--expect-head", "HEAD")
    assert vault.workspace("main").read("a.txt") == b"one\n"
    # merge: the target's head before its changes are captured
    vault.fork("main", "side")
    side = vault.workspace("side")
    side.write("s.txt", b"side\n")
    _doc(cli_proc, "--vault", "v:side", "checkpoint", "save")
    head = _doc(cli_proc, "log", "-n", "1")["commits"][0]["id"]
    vault.workspace("main").write("m.txt", b"mine\n")
    before = snapshot(vault)
    d = _mismatch(cli_proc, "merge", "side", "--expect-head", second)
    assert d["current"] == head and snapshot(vault) == before
    merged = _doc(cli_proc, "merge", "side", "--expect-head", head)
    assert merged["kind"] == "merge", merged
    ws = vault.workspace("main")
    assert ws.read("s.txt") == b"side\n" and ws.read("m.txt") == b"mine\n"


# -- writers racing on one file, through the CLI, the API and MCP -------------------------------

_WRITER = textwrap.dedent(
    """
    import asyncio, json, os, subprocess, sys
    how, name, rounds, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    payload = lambda k: (f"{name} {k} " * 2000 + "\\n").encode()
    log = []

    def cli(*args):
        r = subprocess.run([sys.executable, "-m", "avfs_git", "--json", *args], capture_output=True)
        return r.returncode, json.loads(r.stdout)

    def by_cli():
        for k in range(rounds):
            _, doc = cli("cat", "f.txt")
            blob = doc["files"][0]["blob"]
            data = payload(k)
            r = subprocess.run(
                [sys.executable, "-m", "avfs_git", "--json", "write", "f.txt", "--stdin", "--expect", blob],
                input=data, capture_output=True,
            )
            doc = json.loads(r.stdout)
            log.append([blob, doc.get("blob"), (doc.get("error") or {}).get("details", {}).get("current")])

    def by_api():
        from avfs_git.mount.side import open_home
        from avfs_git.core.errors import ExpectMismatchError
        from avfs_git.core.store.gitstore import blob_id
        ws = open_home(None).vault("v").workspace("main")
        for k in range(rounds):
            blob = ws.blob_of("f.txt")
            data = payload(k)
            try:
                ws.write("f.txt", data, expect=blob)
                log.append([blob, blob_id(data), None])
            except ExpectMismatchError as e:
                log.append([blob, None, e.details["current"]])

    async def by_mcp(writer):
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client
        command, *args = json.loads(sys.argv[5])  # the test's warm `avfs mcp` (tests/mcpwarm.py)
        params = StdioServerParameters(command=command, args=args, env=dict(os.environ))
        async with stdio_client(params, errlog=sys.stderr) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            for k in range(rounds):
                got = json.loads((await s.call_tool("read_file", {"path": "f.txt"})).content[0].text)
                blob = got["files"][0]["blob"]
                content = f"{writer} {k} " * 2000 + "\\n"
                res = await s.call_tool("write_file", {"path": "f.txt", "content": content, "expect": blob})
                doc = json.loads(res.content[0].text)
                log.append([blob, doc.get("blob"), (doc.get("error") or {}).get("details", {}).get("current")])

    async def by_mcps():  # each writer NAME names (m1+m2) its own server, one client process
        await asyncio.gather(*(by_mcp(writer) for writer in name.split("+")))

    {"cli": by_cli, "api": by_api}.get(how, lambda: asyncio.run(by_mcps()))()
    with open(out, "w") as fh:
        json.dump(log, fh)
    """
)


@pytest.mark.parametrize("where", ["unmounted", "overlay"], indirect=True)
def test_racing_writers_one_winner_per_version(where: str, vault: Vault, tmp_path: Path) -> None:
    ws = vault.workspace("main")
    ws.write("f.txt", b"start\n")
    start = blob_id(b"start\n")
    rounds = 6
    # six writers: two of each door; the two MCP writers are two servers (two sessions) of
    # one client process (the MCP SDK's import is ~2 s of CPU a process, client and server
    # alike: four such imports were half the test's CPU; suitetime17), each server a fork
    # of the test process's warm `avfs mcp` (tests/mcpwarm.py: `python -m avfs_git mcp` run
    # in a process that has the SDK imported; suitetime23)
    # The MCP writers' client process is a fork of that warm process too (`python -c`
    # run there, tests/mcpwarm.py `script`: the SDK's client modules already imported, its
    # ~1.3 s import a case saved; suitetime26)
    writers = [("cli", "c1"), ("cli", "c2"), ("api", "a1"), ("api", "a2"), ("mcp", "m1+m2")]
    server = json.dumps(mcpwarm.command("mcp"))
    forks = mcpwarm.forks()
    procs = []
    for how, name in writers:
        out = tmp_path / f"{name}.json"
        args = (how, name, str(rounds), str(out), server)
        argv = mcpwarm.script(_WRITER, *args) if how == "mcp" else [sys.executable, "-c", _WRITER, *args]
        procs.append((out, subprocess.Popen(argv, env=dict(os.environ))))
    for _, p in procs:
        assert p.wait(timeout=600) == 0
    assert mcpwarm.forks() == forks + 3  # the MCP writers' client and its two servers
    wins: list[tuple[str, str]] = []
    losses: list[str | None] = []
    for out, _ in procs:
        for expected, new, current in json.loads(out.read_text()):
            if new is not None:
                wins.append((expected, new))
            else:
                losses.append(current)
    # one winner per version: the wins chain from the start, each version taken once
    taken = [e for e, _ in wins]
    assert len(taken) == len(set(taken)), wins
    made = {n for _, n in wins}
    chain, at = [], start
    nexts = dict(wins)
    while at in nexts:
        at = nexts[at]
        chain.append(at)
    assert len(chain) == len(wins), (chain, wins)
    # the file is the last winner's, whole; every loser was told a version that existed
    final = vault.workspace("main").read("f.txt")
    assert blob_id(final) == at and len(final.split()) == 4000 and len(set(final.split()[::2])) == 1
    assert all(c in made | {start} for c in losses), losses
    assert wins and losses


def test_a_write_reports_the_blob_it_wrote_not_a_racing_writers(
    vault: Vault, home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blob a write answers with (`write`, MCP `write_file`) is what its writer's next
    `expect` compares with: read after the write lock was let go, it was another writer's
    version whenever one wrote in between (the racing-writers test caught it once in CI),
    and a writer that went on from it overwrote a version it never saw."""

    from avfs_git.mcp.tools import AvfsTools

    ws = vault.workspace("main")
    ws.write("f.txt", b"start\n")
    raced = _race_after_the_lock(monkeypatch, vault, "f.txt")
    tools = AvfsTools(home.path, "v:main")
    doc = json.loads(
        tools.call("write_file", {"path": "f.txt", "content": "mine\n", "expect": blob_id(b"start\n")})
    )
    assert raced and doc["blob"] == blob_id(b"mine\n"), doc
    # the next write that expects it is refused: the file is theirs now
    with pytest.raises(ExpectMismatchError):
        ws.write("f.txt", b"after\n", expect=doc["blob"])
    assert ws.read("f.txt") == b"theirs\n"


@pytest.mark.parametrize("op", ["mv", "cp"])
def test_mv_and_cp_report_the_blob_they_put_at_dst_not_a_racing_writers(
    op: str, vault: Vault, home: Home, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    """`mv`/`cp --json` answer the blob the destination holds after them (the next
    `--expect` of their writer), read under the write lock as `write`'s is: read after
    it, a writer that wrote the destination in that moment had its version reported."""

    ws = vault.workspace("main")
    ws.write("src.txt", b"mine\n")
    ws.write("dst.txt", b"start\n")
    raced = _race_after_the_lock(monkeypatch, vault, "dst.txt")
    move = ws.rename_blob if op == "mv" else ws.copy_blob
    out, blob = move("src.txt", "dst.txt", expect=blob_id(b"start\n"))
    assert raced and out == "dst.txt" and blob == blob_id(b"mine\n")
    with pytest.raises(ExpectMismatchError):  # the file is theirs now
        ws.write("dst.txt", b"after\n", expect=blob)
    # the CLI's document carries it (a directory's is null)
    ws.write("a.txt", b"a\n")
    r = cli("--json", "--vault", "v:main", op, "a.txt", "b.txt", "--expect", "absent")
    assert r.code == 0 and r.json()["blob"] == blob_id(b"a\n"), r.out
    ws.mkdir("d")
    ws.write("d/x", b"x\n")
    r = cli("--json", "--vault", "v:main", op, *(["-r"] if op == "cp" else []), "d", "e")
    assert r.code == 0 and r.json()["blob"] is None and r.json()["paths"] == ["d", "e"], r.out
