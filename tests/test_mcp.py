"""`avfs mcp`: the real server, spawned as `python -m avfs_git mcp --home HOME`, driven over
stdio by the MCP SDK's own client (which also checks every structured result against the
tool's output schema)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from avfs_git.core.store.gitstore import blob_id
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.mcp.toolspecs import TOOLS

from . import mcpwarm

if TYPE_CHECKING:
    from mcp import ClientSession
    from mcp.types import CallToolResult

# the SDK (~1.5 s of CPU to import: its pydantic models) is imported where a test uses it, not
# at collection, which every xdist worker does for every module (and test_mcp_badinput.py,
# test_adv_mcp.py import this one)

TOOL_NAMES = {
    "vault_list",
    "fork",
    "fork_list",
    "checkpoint_save",
    "checkpoint_restore",
    "checkpoint_list",
    "status",
    "changes_since",
    "diff",
    "log",
    "merge",
    "exec",
    "read_file",
    "write_file",
    "list_files",
    "grep",
    "hydrate",
    "undo",
    "merge_continue",
}

# what every agent's context holds before its first call: the whole tools/list result
TOOLS_LIST_BUDGET = 12 * 1024


def _server_env() -> dict[str, str]:
    """The hermetic test environment (conftest), passed on to the server process."""
    keep = ("HOME", "XDG_CONFIG_HOME", "PATH", "LANG", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep or k.startswith(("GIT_", "AVFS_"))}


@asynccontextmanager
async def _session(home: Home, *extra: str) -> AsyncIterator[ClientSession]:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    # a fork of this process's warm process (tests/mcpwarm.py: the SDK imported once a
    # process), running `python -m avfs_git mcp ...` as that command does
    command, *args = mcpwarm.command("mcp", "--home", home.path, *extra)
    params = StdioServerParameters(command=command, args=args, env=_server_env())
    # errlog named: its default is the sys.stderr of the moment mcp was first imported in
    # this process, which may have been a CLI call run in process (its BytesIO: a
    # fresh-clone run's `io.UnsupportedOperation: fileno` in test_confine)
    async with (
        stdio_client(params, errlog=sys.stderr) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def serve(home: Home, body: Callable[[ClientSession], Awaitable[None]], *extra: str) -> None:
    """Run ``body`` against a fresh server on ``home`` (bounded: a hang fails the test)."""

    async def main() -> None:
        async with _session(home, *extra) as session:
            await asyncio.wait_for(body(session), timeout=120)

    before = mcpwarm.forks()
    asyncio.run(main())
    assert mcpwarm.forks() == before + 1  # (its server was a fork of the warm process)


def _doc(result: CallToolResult) -> dict[str, Any]:
    from mcp.types import TextContent

    assert len(result.content) == 1 and isinstance(result.content[0], TextContent)
    doc = json.loads(result.content[0].text)
    assert isinstance(doc, dict) and doc["schema_version"] == 1
    return doc


async def ok(session: ClientSession, tool: str, **args: Any) -> dict[str, Any]:
    """Call a tool that must succeed; returns its document (the client has validated it
    against the tool's output schema)."""
    from mcp.types import CallToolResult

    result = await session.call_tool(tool, args)
    assert isinstance(result, CallToolResult)
    doc = _doc(result)
    assert not result.is_error, doc
    assert result.structured_content == doc
    return doc


async def fails(session: ClientSession, tool: str, args: dict[str, Any], code: str) -> dict[str, Any]:
    """Call a tool that must fail with the avfs error ``code``; returns the error object."""
    from mcp.types import CallToolResult

    result = await session.call_tool(tool, args)
    assert isinstance(result, CallToolResult)
    doc = _doc(result)
    assert result.is_error, doc
    assert doc["kind"] == "error" and set(doc["error"]) == {"code", "message", "hint", "details"}
    assert doc["error"]["code"] == code, doc
    return dict(doc["error"])


def test_lists_every_tool_within_the_context_budget(vault: Vault, home: Home) -> None:
    async def body(s: ClientSession) -> None:
        result = await s.list_tools()
        listed = {t.name: t for t in result.tools}
        assert set(listed) == TOOL_NAMES == {t.name for t in TOOLS}
        # the size of the result as the server sends it (compact JSON), not a timing
        size = len(result.model_dump_json(by_alias=True, exclude_none=True))
        assert size <= TOOLS_LIST_BUDGET, f"tools/list is {size} bytes"
        for spec in TOOLS:
            tool = listed[spec.name]
            assert tool.description and len(tool.description) <= 400, spec.name
            schema = tool.input_schema
            assert schema["type"] == "object" and schema["additionalProperties"] is False
            assert set(schema.get("required", [])) == set(spec.required)
            assert all("type" in p or "enum" in p for p in schema["properties"].values())
            assert _refs(schema) == []
        # exec says what it needs: exactly one of argv and shell
        assert listed["exec"].input_schema["oneOf"] == [{"required": ["argv"]}, {"required": ["shell"]}]
        # only exec lists an output schema: the envelope fields an agent reads
        assert [n for n, t in listed.items() if t.output_schema is not None] == ["exec"]
        out = listed["exec"].output_schema
        assert out is not None and out["properties"]["kind"] == {"const": "proxy_exec_result"}
        assert listed["exec"].annotations is not None and listed["exec"].annotations.destructive_hint
        assert listed["status"].annotations is not None and listed["status"].annotations.read_only_hint
        assert listed["undo"].annotations is not None and listed["undo"].annotations.destructive_hint

    serve(home, body)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_write_status_checkpoint_list_restore(vault: Vault, home: Home) -> None:
    async def body(s: ClientSession) -> None:
        vaults = await ok(s, "vault_list")
        assert vaults["kind"] == "vault_list" and [v["name"] for v in vaults["vaults"]] == ["v"]

        wrote = await ok(s, "write_file", path="src/a.txt", content="one\n")
        assert wrote["kind"] == "file_write" and wrote["stat"]["path"] == "src/a.txt"
        assert wrote["vault"] == "v" and wrote["fork"] == "main"
        status = await ok(s, "status")
        assert status["changes"] == [{"path": "src/a.txt", "status": "added"}] and not status["clean"]

        first = await ok(s, "checkpoint_save", name="one", message="first")
        assert first["kind"] == "checkpoint" and first["created"] and first["checkpoint"]["name"] == "one"
        assert (await ok(s, "status"))["clean"]

        await ok(s, "write_file", path="src/a.txt", content="two\n", executable=True)
        diff = await ok(s, "diff")
        assert [c["path"] for c in diff["changes"]] == ["src/a.txt"] and "+two" in diff["patch"]
        await ok(s, "checkpoint_save", name="two")
        listed = await ok(s, "checkpoint_list")
        assert [c["name"] for c in listed["checkpoints"]] == ["two", "one"]
        stat = await ok(s, "diff", old="one", new="two", format="stat")
        assert stat["stat"][0]["path"] == "src/a.txt" and "patch" not in stat
        log = await ok(s, "log", limit=2)
        assert [c["checkpoints"] for c in log["commits"]] == [["two"], ["one"]]

        restored = await ok(s, "checkpoint_restore", rev="one")
        assert restored["kind"] == "restore"
        assert restored["restore"]["commit"] == first["checkpoint"]["commit"]
        content = await ok(s, "read_file", path="src/a.txt")
        assert content["files"] == [
            {
                "path": "src/a.txt",
                "encoding": "utf-8",
                "content": "one\n",
                "size": 4,
                "blob": blob_id(b"one\n"),
            }
        ]

        blob = bytes(range(256))
        await ok(s, "write_file", path="bin/x", content=base64.b64encode(blob).decode(), encoding="base64")
        got = (await ok(s, "read_file", path="bin/x"))["files"][0]
        assert got["encoding"] == "base64" and base64.b64decode(got["content"]) == blob
        listing = await ok(s, "list_files", path="src")
        assert listing["kind"] == "dir_listing" and [e["name"] for e in listing["entries"]] == ["a.txt"]
        root = await ok(s, "list_files")
        assert [e["name"] for e in root["entries"]] == ["bin", "src"]

    serve(home, body)
    assert vault.workspace("main").read("src/a.txt") == b"one\n"  # the API sees what the tools did


def test_fork_merge_and_the_default_vault_option(vault: Vault, home: Home) -> None:
    async def body(s: ClientSession) -> None:
        made = await ok(s, "fork", name="agent1")
        assert made["kind"] == "fork_create" and made["source"] == "main"
        assert made["fork"]["name"] == "agent1"
        await ok(s, "write_file", fork="agent1", path="feature.txt", content="new\n")
        await ok(s, "checkpoint_save", fork="agent1", message="feature")
        assert "feature.txt" not in [e["name"] for e in (await ok(s, "list_files"))["entries"]]

        merged = await ok(s, "merge", source="agent1")
        assert merged["kind"] == "merge" and not merged["conflicted"]
        assert merged["results"][0]["status"] == "fast_forward"
        assert (await ok(s, "read_file", path="feature.txt"))["files"][0]["content"] == "new\n"

        # both sides change one file: a conflict is data, nothing moves
        await ok(s, "fork", name="agent2")
        await ok(s, "write_file", path="feature.txt", content="ours\n")
        await ok(s, "checkpoint_save")
        await ok(s, "write_file", fork="agent2", path="feature.txt", content="theirs\n")
        await ok(s, "checkpoint_save", fork="agent2")
        clash = await ok(s, "merge", source="agent2")
        assert clash["conflicted"] and clash["results"][0]["conflicts"][0]["path"] == "feature.txt"
        assert (await ok(s, "read_file", path="feature.txt"))["files"][0]["content"] == "ours\n"

        forks = await ok(s, "fork_list")
        assert forks["kind"] == "vault_info" and [f["name"] for f in forks["forks"]] == [
            "agent1",
            "agent2",
            "main",
        ]

    serve(home, body)

    async def on_agent2(s: ClientSession) -> None:
        status = await ok(s, "status")
        assert (status["vault"], status["fork"]) == ("v", "agent2")
        assert (await ok(s, "read_file", path="feature.txt"))["files"][0]["content"] == "theirs\n"
        assert (await ok(s, "status", vault="v"))["fork"] == "agent2"  # naming the vault keeps its fork
        assert (await ok(s, "status", fork="main"))["fork"] == "main"
        assert (await ok(s, "status", vault="v:agent1"))["fork"] == "agent1"
        await fails(s, "status", {"vault": "v:agent1", "fork": "main"}, "usage")

    serve(home, on_agent2, "--vault", "v:agent2")


def test_the_tools_agents_reach_for(vault: Vault, home: Home) -> None:
    """Read a file as it was, grep, diff one path, undo a restore, and resolve a conflict by
    writing the file and continuing the merge."""

    async def body(s: ClientSession) -> None:
        await ok(s, "write_file", path="notes.txt", content="first\n")
        await ok(s, "checkpoint_save", message="one")
        await ok(s, "write_file", path="notes.txt", content="second\n")
        await ok(s, "write_file", path="other.txt", content="x\n")
        await ok(s, "checkpoint_save", message="two")
        was = await ok(s, "read_file", path="notes.txt", rev="HEAD~1")
        assert was["files"][0]["content"] == "first\n"
        assert (await ok(s, "read_file", path="notes.txt"))["files"][0]["content"] == "second\n"

        found = await ok(s, "grep", pattern="sec")
        assert found["kind"] == "grep" and [f["path"] for f in found["files"]] == ["notes.txt"]
        assert found["files"][0]["lines"][0]["text"] == "second"
        assert (await ok(s, "grep", pattern="sec", rev="HEAD~1"))["files"] == []

        one = await ok(s, "diff", old="HEAD~1", new="HEAD", paths=["notes.txt"])
        assert [c["path"] for c in one["changes"]] == ["notes.txt"] and "+second" in one["patch"]

        await ok(s, "checkpoint_restore", rev="HEAD~1")
        assert (await ok(s, "read_file", path="notes.txt"))["files"][0]["content"] == "first\n"
        undone = await ok(s, "undo")
        assert undone["kind"] == "undo"
        assert (await ok(s, "read_file", path="notes.txt"))["files"][0]["content"] == "second\n"

        # a conflict resolved by hand: write the file without markers, then merge_continue
        await ok(s, "fork", name="side")
        await ok(s, "write_file", path="notes.txt", content="ours\n")
        await ok(s, "checkpoint_save")
        await ok(s, "write_file", fork="side", path="notes.txt", content="theirs\n")
        await ok(s, "checkpoint_save", fork="side")
        opened = await ok(s, "merge", source="side", write_conflicts=True)
        assert opened["conflicted"] and opened["results"][0]["status"] == "conflicts_written"
        marked = (await ok(s, "read_file", path="notes.txt"))["files"][0]["content"]
        assert "<<<<<<<" in marked
        left = await fails(s, "merge_continue", {}, "conflict")
        assert "notes.txt" in json.dumps(left["details"])
        await ok(s, "write_file", path="notes.txt", content="both\n")
        done = await ok(s, "merge_continue")
        assert done["kind"] == "merge" and not done["conflicted"] and done["results"][0]["commit"]
        assert (await ok(s, "status"))["clean"]
        assert len((await ok(s, "log", limit=1))["commits"][0]["parents"]) == 2

    serve(home, body)


POLICY = """\
version = 1

[[rules]]
name = "ask-before-touch"
description = "test: touch needs a person's approval"
program = "touch"
classes = ["mutating"]
outcome = "require_approval"
"""


def test_exec_runs_allowed_commands_and_returns_approval_tokens(vault: Vault, home: Home) -> None:
    Path(home.path, "policy.toml").write_text(POLICY)

    async def body(s: ClientSession) -> None:
        ran = await ok(s, "exec", shell="echo hi > out.txt && echo done", mode="materialized")
        assert ran["kind"] == "proxy_exec_result" and ran["success"] and ran["exit_code"] == 0
        assert ran["decision"]["action"] == "allow" and ran["result"]["stdout"] == "done\n"
        assert ran["changes"] == [{"path": "out.txt", "status": "added"}] and ran["commit"] is not None
        assert (await ok(s, "read_file", path="out.txt"))["files"][0]["content"] == "hi\n"

        asked = await ok(s, "exec", argv=["touch", "approved.txt"], mode="materialized")
        assert asked["decision"]["action"] == "require_approval" and asked["exit_code"] == 126
        assert asked["result"] is None and not asked["success"]
        assert asked["error"]["code"] == "approval_required"
        token = asked["approval"]["token"]
        assert token.startswith("apv_") and asked["error"]["details"]["token"] == token
        await fails(s, "read_file", {"path": "approved.txt"}, "path_not_found")  # it did not run

        approved = await ok(s, "exec", argv=["touch", "approved.txt"], mode="materialized", approve=token)
        assert approved["success"] and approved["approval"] == {"token": token, "used": True}
        assert approved["changes"] == [{"path": "approved.txt", "status": "added"}]
        await ok(s, "read_file", path="approved.txt")

        again = await ok(s, "exec", argv=["touch", "approved.txt"], mode="materialized", approve=token)
        assert again["exit_code"] == 126 and again["error"]["code"] == "approval_refused"
        assert again["result"] is None

        denied = await ok(s, "exec", argv=["sudo", "true"], mode="materialized")
        assert (
            denied["decision"]["action"] == "deny" and denied["exit_code"] == 126 and denied["result"] is None
        )

    # the client's own permission prompt is the human gate: it sends the token back itself
    serve(home, body, "--client-approves")


def _person_approves(home: Home, token: str) -> dict[str, Any]:
    """`avfs proxy approve TOKEN --yes`, as a person at a terminal runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--home", home.path, "--json", "proxy", "approve", token, "--yes"],
        capture_output=True, env=_server_env(), timeout=60, check=False,
    )  # fmt: skip
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["kind"] == "proxy_approval", doc
    return dict(doc)


def test_the_agent_cannot_approve_its_own_exec(vault: Vault, home: Home) -> None:
    """Regression: exec returned the token to the client (the agent), which called again
    with it and ran the command no person had seen. Now a person approves out of band."""
    Path(home.path, "policy.toml").write_text(POLICY)
    touch = {"argv": ["touch", "approved.txt"], "mode": "materialized"}

    async def body(s: ClientSession) -> None:
        asked = await ok(s, "exec", **touch)
        token = asked["approval"]["token"]
        assert asked["exit_code"] == 126 and f"avfs proxy approve {token}" in asked["error"]["hint"]
        own = await ok(s, "exec", **touch, approve=token)  # the agent approving itself
        assert (
            own["exit_code"] == 126 and own["result"] is None and own["error"]["code"] == "approval_refused"
        )
        assert "not been approved by a person" in own["error"]["message"]
        await fails(s, "read_file", {"path": "approved.txt"}, "path_not_found")
        # nor through a command it runs: the policy denies running avfs itself, by any path,
        # as `python -m avfs_git`, and through env/sh -c (`env -u` drops the variable that
        # `proxy approve` itself checks)
        avfs = str(Path(sys.executable).parent / "avfs")
        for sneaky in (
            {
                "argv": [
                    sys.executable,
                    "-m",
                    "avfs_git",
                    "--home",
                    home.path,
                    "proxy",
                    "approve",
                    token,
                    "--yes",
                ]
            },
            {"shell": f"env -u AVFS_WORKSPACE avfs --home {home.path} proxy approve --yes {token}"},
            {"shell": f"sh -c 'env -u AVFS_WORKSPACE {avfs} --home {home.path} proxy approve --yes {token}'"},
        ):
            refused = await ok(s, "exec", **sneaky, mode="materialized")
            assert refused["exit_code"] == 126 and refused["result"] is None, refused
            assert refused["error"]["code"] == "policy_denied", refused
            assert refused["decision"]["rule"] == "builtin:avfs-itself", refused
            assert "runs avfs itself" in refused["error"]["message"]
        reads = await ok(s, "exec", argv=[avfs, "--home", home.path, "--json", "status"], mode="materialized")
        assert reads["decision"]["action"] == "allow", reads  # avfs that only reads stays allowed
        assert (await ok(s, "exec", **touch, approve=token))["exit_code"] == 126  # still not approved
        shown = _person_approves(home, token)  # out of band: a person, at a terminal
        assert shown["request"]["argv"] == ["touch", "approved.txt"] and shown["approved_by"] == "person"
        ran = await ok(s, "exec", **touch, approve=token)
        assert ran["success"] and ran["approval"] == {"token": token, "used": True}, ran
        await ok(s, "read_file", path="approved.txt")
        again = await ok(s, "exec", **touch, approve=token)
        assert again["exit_code"] == 126 and "used already" in again["error"]["message"]
        # a token a person approved is still bound to its request
        asked = await ok(s, "exec", **touch)
        _person_approves(home, asked["approval"]["token"])
        other = await ok(s, "exec", argv=["touch", "other.txt"], mode="materialized",
                         approve=asked["approval"]["token"])  # fmt: skip
        assert other["exit_code"] == 126 and "different request" in other["error"]["message"]

    serve(home, body)


def test_a_cancelled_exec_stops_its_command(vault: Vault, home: Home) -> None:
    """The client gives up on a call (its timeout sends notifications/cancelled): the
    command is stopped, and the next call is served (were it not, this hangs on the
    10-minute sleep and the test's own timeout fails it)."""

    from mcp import MCPError
    from mcp.types import REQUEST_TIMEOUT

    async def body(s: ClientSession) -> None:
        with pytest.raises(MCPError) as stopped:
            await s.call_tool(
                "exec", {"argv": ["sleep", "600"], "mode": "materialized"}, read_timeout_seconds=1
            )
        assert stopped.value.code == REQUEST_TIMEOUT
        assert (await ok(s, "status"))["clean"]

    serve(home, body)


def test_bad_requests_are_tool_errors_and_the_server_keeps_serving(vault: Vault, home: Home) -> None:
    bad: list[tuple[str, dict[str, Any], str]] = [
        ("write_file", {"path": 3, "content": "x"}, "usage"),  # wrong type
        ("read_file", {}, "usage"),  # missing required argument
        ("status", {"bogus": 1}, "usage"),  # extra property
        ("checkpoint_list", {"limit": 0}, "usage"),  # out of range
        ("exec", {"argv": "ls"}, "usage"),  # argv must be an array
        ("exec", {"argv": ["true"], "shell": "true"}, "usage"),  # not both
        ("exec", {}, "usage"),  # neither
        ("read_file", {"path": "nope.txt", "rev": "HEAD"}, "path_not_found"),
        ("read_file", {"path": "a.txt", "rev": "HEAD~99"}, "revision_not_found"),
        ("merge_continue", {}, "usage"),  # no merge is open
        ("diff", {"new": "main"}, "usage"),  # new needs old
        ("no_such_tool", {}, "usage"),
        ("status", {"vault": "nope"}, "vault_not_found"),
        ("status", {"fork": "ghost"}, "fork_not_found"),
        ("fork", {"fork": "ghost", "name": "x"}, "fork_not_found"),
        ("read_file", {"path": "../etc/passwd"}, "invalid_path"),
        ("write_file", {"path": "../x", "content": "x"}, "invalid_path"),
        ("write_file", {"path": "/abs", "content": "x"}, "invalid_path"),
        ("list_files", {"path": "a/../../b"}, "invalid_path"),
        ("exec", {"argv": ["true"], "cwd": "../"}, "invalid_path"),
        ("write_file", {"path": "x", "content": "%%%", "encoding": "base64"}, "usage"),
        ("checkpoint_restore", {"rev": "no-such-checkpoint"}, "revision_not_found"),
    ]

    async def body(s: ClientSession) -> None:
        for tool, args, code in bad:
            err = await fails(s, tool, args, code)
            assert err["message"], (tool, args)
            assert (await ok(s, "vault_list"))["vaults"][0]["name"] == "v"  # still serving
        err = await fails(s, "write_file", {"path": "x", "content": "y", "extra": True}, "usage")
        assert "extra" in err["message"] and err["details"]["tool"] == "write_file"
        err = await fails(s, "read_file", {"path": 3}, "usage")
        assert err["details"]["argument"] == "path"
        # an unknown or a missing argument is named (details.argument was null), with what
        # the tool takes
        err = await fails(s, "status", {"bogus": 1}, "usage")
        assert err["details"]["argument"] == "bogus"
        assert (
            err["message"]
            == "invalid arguments for status: unknown argument `bogus`; it takes `vault`, `fork`"
        )
        err = await fails(s, "read_file", {}, "usage")
        assert err["details"]["argument"] == "path" and "missing required argument `path`" in err["message"]
        assert (await ok(s, "status"))["clean"]  # nothing a refused call touched

    serve(home, body)


def test_a_new_home_s_no_vault_selected_says_to_make_one(home: Home) -> None:
    """An agent's first call on a new home was told "run `avfs vault use VAULT`", of vaults
    there are none of (and the server has no tool that makes one): it says to make one."""

    async def body(s: ClientSession) -> None:
        err = await fails(s, "status", {}, "usage")
        assert err["message"] == f"no vault selected: {home.path} has no vaults yet"
        assert "`avfs vault create NAME --from DIR`" in err["hint"] and "vault use" not in err["hint"]
        assert (await ok(s, "vault_list"))["vaults"] == []

    serve(home, body)


def test_malformed_protocol_messages_do_not_stop_the_server(vault: Vault, home: Home) -> None:
    """Below the tools: a line that is not JSON, and tools/call params the protocol refuses
    (no tool name, arguments not an object), get no result, and the next call is served."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "avfs_git", "mcp", "--home", home.path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_server_env(),
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def send(message: object) -> None:
        stdin.write((message if isinstance(message, str) else json.dumps(message)) + "\n")
        stdin.flush()

    def reply() -> dict[str, Any]:
        line = stdout.readline()
        assert line, "the server closed stdout"
        msg = json.loads(line)  # stdout holds nothing but protocol messages
        assert isinstance(msg, dict)
        return msg

    try:
        client = {"name": "raw", "version": "0"}
        init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client}
        send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init})
        assert reply()["id"] == 1
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send("this is not JSON")
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"arguments": {}}})
        assert reply()["error"]["code"] == -32602
        send(
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "status", "arguments": [1]},
            }
        )
        assert reply()["error"]["code"] == -32602
        send(
            {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "status", "arguments": {}}}
        )
        served = reply()
        assert served["id"] == 4 and served["result"]["structuredContent"]["kind"] == "status"
    finally:
        stdin.close()
        assert proc.wait(timeout=60) == 0
        stdout.close()


def test_other_commands_do_not_import_the_sdk() -> None:
    code = "import sys, avfs_git.cli.main, avfs_git.cli.agent; sys.exit('mcp' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def test_the_exec_output_schema_is_a_part_of_the_documents_schema() -> None:
    """exec's trimmed output schema names only fields of proxy_exec_result.schema.json, and
    only fields that document always has."""
    import avfs_git
    from avfs_git.mcp.toolspecs import EXEC_OUTPUT_SCHEMA

    schemas = Path(avfs_git.__file__).parent / "schemas"
    full = json.loads((schemas / "proxy_exec_result.schema.json").read_text())
    assert set(EXEC_OUTPUT_SCHEMA["properties"]) <= set(full["properties"])
    assert set(EXEC_OUTPUT_SCHEMA["required"]) <= set(full["required"])


def test_file_tools_refuse_lone_surrogates_and_handle_deep_paths(vault: Vault, home: Home) -> None:
    from avfs_git.core.errors import AvfsError
    from avfs_git.mcp.tools import AvfsTools

    tools = AvfsTools(home.path, "v:main")

    def error(tool: str, **args: Any) -> AvfsError:
        with pytest.raises(AvfsError) as info:
            tools.call(tool, args)
        return info.value

    # a JSON string can hold a lone surrogate ("\ud800"): not text, a usage error (was internal)
    err = error("write_file", path="s", content="\ud800")
    assert err.code == "usage" and "surrogate" in err.message and "base64" in (err.hint or "")
    assert error("write_file", path="s", content="ok \udcff \ud800").code == "usage"
    deep = "x/" * 300 + "f"
    # no symlink on the path: not a `symlink_loop` (missing levels are no symlink hops)
    assert error("read_file", path=deep).code == "path_not_found"
    assert error("list_files", path=deep).code == "path_not_found"
    tools.call("write_file", {"path": deep, "content": "x"})
    assert json.loads(tools.call("read_file", {"path": deep}))["files"][0]["content"] == "x"
    # a real loop is still a loop
    ws = vault.workspace("main")
    ws.symlink("loop-b", "loop-a")
    ws.symlink("loop-a", "loop-b")
    assert error("read_file", path="loop-a").code == "symlink_loop"
    assert error("write_file", path="loop-a/x", content="x").code == "symlink_loop"
    assert error("list_files", path="loop-a").code == "symlink_loop"

    async def body(s: ClientSession) -> None:  # the same over the wire
        await fails(s, "read_file", {"path": "z/" * 300 + "f"}, "path_not_found")

    serve(home, body)


def test_changes_since_answers_events_and_a_new_cursor(vault: Vault, home: Home) -> None:
    async def body(s: ClientSession) -> None:
        start = _doc(await s.call_tool("changes_since", {"vault": "v"}))
        assert start["kind"] == "changes" and start["events"] == [] and start["more"] is False
        await s.call_tool("write_file", {"vault": "v", "path": "m.txt", "content": "x"})
        got = _doc(await s.call_tool("changes_since", {"vault": "v", "cursor": start["cursor"]}))
        assert [(e["kind"], e["path"]) for e in got["events"]] == [("created", "m.txt")]
        assert got["events"][0]["blob"] == vault.workspace("main").blob_of("m.txt")
        again = _doc(await s.call_tool("changes_since", {"vault": "v", "cursor": got["cursor"]}))
        assert again["events"] == []
        every = _doc(await s.call_tool("changes_since", {"vault": "v", "all": True}))
        assert every["fork"] is None
        bad = await s.call_tool("changes_since", {"vault": "v", "cursor": "nonsense"})
        assert bad.is_error and _doc(bad)["error"]["code"] == "cursor_invalid"

    serve(home, body)


def test_the_json_flag_serves_the_protocol_on_stdout(home: Home) -> None:
    """`avfs --json mcp` (an agent's config that puts --json on every call): the protocol on
    stdout, one JSON message a line, as without it (it was an internal error: --json's capture
    of stdout has no binary buffer for the SDK's transport)."""
    init = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    }
    message = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}) + "\n"
    proc = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "--home", home.path, "mcp"],
        input=message,
        capture_output=True,
        env=_server_env(),
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["id"] for r in replies] == [1] and replies[0]["result"]["serverInfo"]["name"] == "avfs", replies


def test_exec_keeps_no_more_output_than_the_bound_whatever_the_client_asks(vault: Vault, home: Home) -> None:
    """``max_output_bytes`` is the client's (the agent's): 4e9 with 100 MB of output took the
    MCP server to 1.27 GB (the seventeenth round, NAME=attack8). A request keeps at most
    16 MiB of each stream where the policy keeps less; the rest is counted, as past any
    bound, and the server answers the next call."""
    from avfs_git.mcp.tools import AvfsTools
    from avfs_git.proxy.admission import MAX_REQUESTED_OUTPUT

    tools = AvfsTools(home.path, "v:main", client_approves=True)
    n = MAX_REQUESTED_OUTPUT + (4 << 20)
    shell = f"head -c {n} /dev/zero | tr '\\000' a"
    doc = json.loads(
        tools.call("exec", {"shell": shell, "max_output_bytes": 1 << 40, "mode": "materialized"})
    )
    res = doc["result"]
    assert res["exit_code"] == 0 and res["stdout_truncated"] is True, {
        k: v for k, v in res.items() if k != "stdout"
    }
    assert res["stdout"] == "a" * MAX_REQUESTED_OUTPUT and res["stdout_bytes"] == n
    small = json.loads(
        tools.call("exec", {"shell": "echo hi", "max_output_bytes": 2, "mode": "materialized"})
    )
    assert small["result"]["stdout"] == "hi" and small["result"]["stdout_truncated"] is True
    assert json.loads(tools.call("status", {}))["kind"] == "status"
