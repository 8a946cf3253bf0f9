"""`avfs mcp` against a client that sends what a hostile agent would, and a confined command
that never ends: a real server process spoken to in raw lines (tests/test_mcp_badinput's
`Wire`), its `exec` a real confined `proxy exec`.

- A request nested deeper than the SDK's JSON parser goes (arrays 100,000 deep, or just
  past its limit of 200) got no answer: the transport dropped the line and the client
  waited for ever. Each is answered now, with its id.
- A command that never ends held the server's one worker: every other tool call waited
  behind it. Now `exec` runs on a thread of its own: the other tools are answered while it
  runs, a second `exec` gets a clear `busy` error at once, and a cancelled one frees it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from avfs_git.core.vaults.home import Home

from .test_json_everypath import _changed, _home_state
from .test_mcp import _server_env
from .test_mcp_badinput import Wire, _doc, wired  # noqa: F401 (the fixture)


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_a_request_nested_past_the_parser_s_limit_is_answered(home: Home, wired: Wire) -> None:  # noqa: F811
    before = _home_state(home.path)
    for depth in (100_000, 300):
        rid = wired.next_id
        raw = (
            b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"status","arguments":{"x":%s}}}'
            % (
                rid,
                _nested(depth),
            )
        )
        msg = wired.request({}, raw)
        assert msg["result"]["isError"] is True, msg
        err = _doc(msg)["error"]
        assert err["code"] == "usage" and err["details"]["tool"] == "status", err
        assert "nested" in err["message"], err
        assert wired.call("status", {})["result"]["structuredContent"]["clean"]
    # another method: a JSON-RPC error with the request's id
    rid = wired.next_id
    msg = wired.request(
        {}, b'{"jsonrpc":"2.0","id":%d,"method":"ping","params":{"x":%s}}' % (rid, _nested(5000))
    )
    assert msg["error"]["code"] == -32602 and "nested" in msg["error"]["message"], msg
    # the id after the nesting, and a string id
    wired.send(b'{"jsonrpc":"2.0","params":{"x":%s},"method":"tools/call","id":"late"}' % _nested(1000))
    msg = wired.reply()
    assert msg["id"] == "late" and "nested" in msg["error"]["message"], msg
    # a notification has nobody to answer; the server goes on
    wired.send(b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"x":%s}}' % _nested(1000))
    assert wired.call("vault_list", {})["result"]["structuredContent"]["vaults"][0]["name"] == "v"
    assert _changed(before, _home_state(home.path)) == []


def _exec(wire: Wire, argv: list[str]) -> int:
    rid = wire.next_id
    wire.next_id += 1
    args = {"argv": argv, "mode": "materialized", "timeout_ms": 3_600_000}
    call = {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "tools/call",
        "params": {"name": "exec", "arguments": args},
    }
    wire.send(json.dumps(call).encode())
    return rid


def test_a_command_that_never_ends_blocks_no_other_call(home: Home, wired: Wire) -> None:  # noqa: F811
    """An `exec` of a command that does not end (a timeout of an hour, which the client may
    ask): the server's other tools answer meanwhile; a second `exec` is told at once that
    one runs; cancelled, the command stops and `exec` is free again."""
    running = _exec(wired, ["sleep", "3607"])
    # answered while the command runs (before: no answer until the hour was up)
    status = wired.call("status", {})
    assert status["result"]["structuredContent"]["clean"], status
    assert (
        wired.call("read_file", {"path": "f.txt"})["result"]["structuredContent"]["files"][0]["content"]
        == "hi\n"
    )
    second = wired.call("exec", {"argv": ["true"], "mode": "materialized"})
    assert second["result"]["isError"] is True, second
    err = _doc(second)["error"]
    assert err["code"] == "busy" and "sleep 3607" in err["message"], err
    assert err["details"]["running"]["argv"] == ["sleep", "3607"], err
    # the client gives up on the first: its command stops, and exec is served again
    wired.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                           "params": {"requestId": running}}).encode())  # fmt: skip
    deadline = time.monotonic() + 120  # a failure's bound, not a measure
    while True:
        again = wired.call("exec", {"argv": ["sh", "-c", "echo ran > ran.txt"], "mode": "materialized"})
        if not again["result"]["isError"] or time.monotonic() > deadline:
            break
        assert _doc(again)["error"]["code"] == "busy", again
        time.sleep(0.2)
    assert again["result"]["structuredContent"]["exit_code"] == 0, again
    assert (
        wired.call("read_file", {"path": "ran.txt"})["result"]["structuredContent"]["files"][0]["content"]
        == "ran\n"
    )
    procs = [p for p in _sleepers() if p]
    assert procs == [], procs


def _sleepers() -> list[str]:
    """Processes still running `sleep 3607` (the cancelled command's)."""
    import os

    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read() == b"sleep\x003607\x00":
                    found.append(pid)
        except OSError:
            continue
    return found


def test_the_policy_s_timeout_is_a_ceiling_the_request_cannot_raise(home: Home, vault: Any) -> None:
    """A policy's `timeout_ms` bounds every run. Found in the nineteenth round
    (NAME=attack10): MCP `exec`'s `timeout_ms` (and the CLI's `--timeout-ms`, which the agent
    hook fills from the agent's own tool call) replaced the policy's, so an agent asking for
    an hour ran an hour under a policy of 1.5 s. Now the request may only lower it."""
    from pathlib import Path

    ws = vault.workspace("main")
    ws.write("f.txt", b"hi\n")
    Path(home.path, "policy.toml").write_text("version = 1\n[defaults]\ntimeout_ms = 1500\n")
    wire = Wire(home)
    try:
        msg = wire.call("exec", {"argv": ["sleep", "60"], "mode": "materialized", "timeout_ms": 3_600_000})
        doc = msg["result"]["structuredContent"]
        assert doc["result"]["timed_out"] and doc["exit_code"] == 124, doc
        assert doc["request"]["timeout_ms"] == 1500, doc["request"]
        lower = wire.call("exec", {"argv": ["sleep", "60"], "mode": "materialized", "timeout_ms": 300})
        assert _doc(lower)["request"]["timeout_ms"] == 300, lower  # a request may lower it
    finally:
        assert wire.close() == 0
    cli = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "--home", home.path, "--vault", "v", "proxy", "exec",
         "--mode", "materialized", "--timeout-ms", "3600000", "--", "sleep", "60"],
        capture_output=True, env=_server_env(), timeout=120,
    )  # fmt: skip
    doc = json.loads(cli.stdout)
    assert cli.returncode == 124 and doc["result"]["timed_out"], doc
    assert doc["request"]["timeout_ms"] == 1500, doc["request"]


def _each_line_of(fire: Any, call: Any) -> list[Any]:
    """``call()`` once per line it runs in the MCP server's module, ``fire()`` (on another
    thread, as the exec thread's done callback runs) right before that line: every point
    at which the running exec can end under a ``busy`` answer. Returns the answers."""
    answers, k = [], 0
    while True:
        answer, fired = _fired_before_line(fire, call, k)
        answers.append(answer)
        if not fired:
            return answers
        k += 1


def _fired_before_line(fire: Any, call: Any, k: int) -> tuple[Any, bool]:
    """``call()``, with ``fire()`` run on another thread before its ``k``-th line in the
    server's module; (its answer, whether there was such a line)."""
    import sys
    import threading

    import avfs_git.mcp.server as server_module

    src = server_module.__file__
    seen, fired = [0], [False]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != src:
            return None
        if event == "line" and not fired[0]:
            if seen[0] == k:
                fired[0] = True
                t = threading.Thread(target=fire)
                t.start()
                t.join()
            seen[0] += 1
        return tracer

    sys.settrace(tracer)
    try:
        return call(), fired[0]
    finally:
        sys.settrace(None)


def test_a_busy_answer_as_the_running_exec_ends_is_whole() -> None:
    """Left open in the nineteenth round (NAME=attack10): `busy` read the running exec's
    record while the exec thread's done callback emptied it, so an `exec` asked at the
    instant the running one ended failed ("dictionary changed size during iteration").
    Every line of the answer is tried as that instant, the end fired from another thread:
    each answer is whole, or none (it had ended: the next `exec` runs)."""
    from avfs_git.mcp.server import ExecSlot

    running = ExecSlot()

    def call() -> Any:
        running.start({"argv": ["sleep", "9"]})
        return running.busy()

    answers = _each_line_of(running.done, call)
    whole = [a for a in answers if a is not None]  # (None: it ended before the answer read it)
    assert len(whole) > 3, answers
    for a in whole:
        doc = json.loads(a.content[0].text)
        assert doc["error"]["code"] == "busy", doc
        assert doc["error"]["details"]["running"]["argv"] == ["sleep", "9"], doc
