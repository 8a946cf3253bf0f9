"""`avfs mcp` given what a demanding client or a confused agent sends: a real server process,
spoken to line by line over its stdin and stdout (the SDK's own client cannot send a lone
surrogate: it refuses to write one), so every byte on the wire is the test's.

Every request gets an answer with its id (a tool error or a JSON-RPC error); the server goes
on serving; a call that failed left the home as it was (the snapshot tests/test_badinput_sweep
takes: files by content, SQLite rows, git refs). The tools swept are the server's own list
(toolspecs.TOOLS), each argument by the type its schema gives, so a new tool or argument is
swept without touching this file.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest
from pygit2.enums import ConfigLevel

from avfs_git import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.mcp.toolspecs import TOOLS
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.policy.pathsource import POLICY_PATHS

from . import mcpwarm
from .conftest import AUTHOR, LAYERS, _fsck_every_vault, layers_switch, remove_home
from .test_json_everypath import Seen, _changed, _home_state
from .test_mcp import _server_env

BAD = {
    "control": "a\x01b",
    "escape": "a\x1b[31mb",
    "markup": "[bold]x[/]",
    "not-utf8": "a\udcffb",  # json.dumps writes "\udcff": the escape the SDK's parser refuses
    "lone-high": "\ud800",
    "slash": "a/b",
    "dotdot": "..",
    "up": "../x",
    "nul": "a\x00b",
    "empty": "",
    "huge": "x" * 300_000,
}
WRONG_TYPE = {"string": 7, "boolean": "yes", "integer": "1", "array": "a", "object": ["a"]}
# the arguments a tool needs to get as far as the one under test
BASE: dict[str, dict[str, Any]] = {
    "fork": {"name": "f2"},
    "read_file": {"path": "f.txt"},
    "write_file": {"path": "w.txt", "content": "x"},
    "grep": {"pattern": "hi"},
    "checkpoint_restore": {"rev": "c1"},
    "merge": {"source": "main"},
    "exec": {"argv": ["true"], "mode": "materialized"},  # no mount for the server to keep warm
}


class Wire:
    """A running `avfs mcp`, spoken to in raw lines; every answer within a minute."""

    def __init__(self, home: Home, env: dict[str, str] | None = None, real: bool = False) -> None:
        """``real``: `python -m avfs_git mcp` as a process of its own; else a fork of this
        process's warm process running that command (tests/mcpwarm.py: the SDK imported once)."""
        args = ("mcp", "--home", home.path, "--vault", "v")
        before = mcpwarm.forks()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "avfs_git", *args] if real else mcpwarm.command(*args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_server_env() if env is None else env,
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.err: list[bytes] = []
        self.pumps = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err.append), daemon=True),
        ]
        for pump in self.pumps:
            pump.start()
        self.next_id = 100
        client = {"name": "raw", "version": "0"}
        init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client}
        assert self.request({"method": "initialize", "params": init})["result"]["serverInfo"]
        assert mcpwarm.forks() == before + (not real)  # (a warm server was the warm process's fork)
        self.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')

    @staticmethod
    def _pump(stream: Any, put: Any) -> None:
        for line in iter(stream.readline, b""):
            put(line)

    def send(self, raw: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(raw + b"\n")
        self.proc.stdin.flush()

    def reply(self) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=60)
        except queue.Empty:
            raise AssertionError(f"no answer in 60 s; stderr: {b''.join(self.err)[-2000:]!r}") from None
        msg = json.loads(line)  # a strict parser would do: the line is UTF-8 JSON
        line.decode("utf-8")
        assert isinstance(msg, dict)
        return msg

    def request(self, message: dict[str, Any], raw: bytes | None = None) -> dict[str, Any]:
        """Send ``message`` with a fresh id (or ``raw``, whose id must be ``self.next_id``);
        the answer to it."""
        rid = self.next_id
        self.next_id += 1
        self.send(raw if raw is not None else json.dumps({"jsonrpc": "2.0", "id": rid, **message}).encode())
        msg = self.reply()
        assert msg.get("id") == rid, msg
        return msg

    def call(self, tool: str, args: Any) -> dict[str, Any]:
        return self.request({"method": "tools/call", "params": {"name": tool, "arguments": args}})

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout=60)
        for pump, stream in zip(self.pumps, (self.proc.stdout, self.proc.stderr), strict=True):
            pump.join(timeout=60)
            assert stream is not None
            stream.close()
        return code


def _doc(msg: dict[str, Any]) -> dict[str, Any]:
    """The avfs document of a tools/call result (error or not)."""
    doc = json.loads(msg["result"]["content"][0]["text"])
    assert isinstance(doc, dict) and doc["schema_version"] == 1, msg
    return doc


def _fill(vault: Vault) -> None:
    """What the calls of ``BASE`` need: ``f.txt`` saved as checkpoint ``c1``."""
    vault.workspace("main").write("f.txt", b"hi\n")
    checkpoint.save(vault, "main", name="c1")


@pytest.fixture
def wired(vault: Vault, home: Home) -> Any:
    _fill(vault)
    wire = Wire(home)
    try:
        yield wire
    finally:
        assert wire.close() == 0, b"".join(wire.err)[-2000:]


class Shared:
    """One home and one server for the module's sweeps (a start is ~2 s of CPU, nearly
    all of it the SDK's import: 20 sweeps paid it 20 times). A sweep needs no fresh server:
    each call is checked against the home's state just before it, and serving on after
    every sweep before it is what the server must do anyway. A server a sweep left dead
    (its own test fails on its last call) is started again for the next."""

    def __init__(self, top: Path) -> None:
        user = top / "userhome"
        user.mkdir()
        (user / ".gitconfig").write_text(
            f"[user]\n\tname = {AUTHOR[0]}\n\temail = {AUTHOR[1]}\n[init]\n\tdefaultBranch = main\n"
        )
        # the environment the hermetic fixture gives a test, for the server the sweeps share
        self.env = {k: v for k, v in _server_env().items() if not k.startswith(("GIT_", "AVFS_"))}
        self.env.update(
            HOME=str(user),
            XDG_CONFIG_HOME=str(user / ".config"),
            AVFS_SERVER="off",
            GIT_CONFIG_NOSYSTEM="1",
            GIT_AUTHOR_NAME=AUTHOR[0],
            GIT_AUTHOR_EMAIL=AUTHOR[1],
            GIT_COMMITTER_NAME=AUTHOR[0],
            GIT_COMMITTER_EMAIL=AUTHOR[1],
        )
        if not LAYERS:
            self.env["AVFS_LAYERS"] = "off"
        sp = pygit2.settings.search_path
        paths = {
            ConfigLevel.GLOBAL: str(user),
            ConfigLevel.XDG: str(user / ".config" / "git"),
            ConfigLevel.SYSTEM: str(top / "nosystem"),
        }
        saved = {level: sp[level] for level in paths}
        try:
            with pytest.MonkeyPatch.context() as mp:  # as the hermetic fixture sets a test's
                layers_switch(mp)
                for key, value in self.env.items():
                    mp.setenv(key, value)
                for level, where in paths.items():
                    sp[level] = where
                self.home = Home(str(top / "avfs-home"), author=AUTHOR, mounts=MOUNT_SIDE, paths=POLICY_PATHS)
                _fill(self.home.create_vault("v"))
        finally:
            for level, where in saved.items():
                sp[level] = where
        self.wire: Wire | None = None
        self.starts = 0

    def serving(self) -> Wire:
        if self.wire is None or self.wire.proc.poll() is not None:
            if self.wire is not None:
                with contextlib.suppress(OSError):
                    self.wire.close()
            self.wire = Wire(self.home, self.env)
            self.starts += 1
        return self.wire

    def close(self) -> None:
        try:
            if self.wire is not None:
                assert self.wire.close() == 0, b"".join(self.wire.err)[-2000:]
        finally:
            self.home.close()
            _fsck_every_vault(Path(self.home.path) / "vaults")
            remove_home(self.home.path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    one = Shared(tmp_path_factory.mktemp("mcp-sweeps"))
    try:
        yield one
    finally:
        one.close()


def test_a_lone_surrogate_escape_is_answered_and_the_server_goes_on(home: Home, wired: Wire) -> None:
    """The raw bytes of each request; the SDK's transport refused them and nobody answered
    (the client waited for ever)."""
    before = _home_state(home.path)
    cases = [
        (b'"name":"write_file","arguments":{"path":"s","content":"\\udcff"}', "content", "it holds"),
        (b'"name":"write_file","arguments":{"path":"a\\udcffb","content":"x"}', "path", "it holds"),
        (b'"name":"read_file","arguments":{"path":"\\ud800"}', "path", r"'\ud800' at character 0"),
        (b'"name":"exec","arguments":{"argv":["echo","\\ud800"]}', "argv", "argv/1 holds"),
        (b'"name":"exec","arguments":{"argv":["true"],"env":{"K":"\\udc80"}}', "env", "env/K holds"),
        (b'"name":"status","arguments":{"\\udcff":1}', "\\udcff", "it holds"),
    ]
    for params, argument, said in cases:
        rid = wired.next_id
        raw = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{%s}}' % (rid, params)
        msg = wired.request({}, raw)
        assert msg["result"]["isError"] is True, msg
        err = _doc(msg)["error"]
        assert err["code"] == "usage" and err["details"]["argument"] == argument, err
        assert "lone surrogate" in err["message"] and said in err["message"], err
        ok = wired.call("status", {})
        assert ok["result"]["isError"] is False and ok["result"]["structuredContent"]["clean"]
    # the content hint says how to send bytes that are not text
    assert "base64" in _doc(wired.request({}, _raw(wired.next_id, cases[0][0])))["error"]["hint"]
    # outside the arguments: a JSON-RPC error with the request's id, naming where
    rid = wired.next_id
    msg = wired.request(
        {}, b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"st\\udcffatus"}}' % rid
    )
    assert msg["error"]["code"] == -32602 and "params.name" in msg["error"]["message"], msg
    rid = wired.next_id
    msg = wired.request({}, b'{"jsonrpc":"2.0","id":%d,"method":"\\ud800","params":{}}' % rid)
    assert msg["error"]["code"] == -32600 and msg["error"]["message"].startswith("method "), msg
    # an id that holds one: answered with id null (the only id JSON-RPC allows there)
    wired.send(b'{"jsonrpc":"2.0","id":"\\udcff","method":"tools/call","params":{}}')
    msg = wired.reply()
    assert msg["id"] is None and msg["error"]["code"] == -32600 and "id " in msg["error"]["message"]
    # a notification has nobody to answer; bytes that are not UTF-8 read as U+FFFD
    wired.send(b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"\\udcff"}}')
    msg = wired.request({}, _raw(wired.next_id, b'"name":"read_file","arguments":{"path":"\xff\xfe"}'))
    assert _doc(msg)["error"]["code"] == "path_not_found", msg
    assert _changed(before, _home_state(home.path)) == []
    assert wired.call("vault_list", {})["result"]["structuredContent"]["vaults"][0]["name"] == "v"


def _raw(rid: int, params: bytes) -> bytes:
    return b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{%s}}' % (rid, params)


def _answered(wire: Wire, home: Home, tool: str, args: Any, seen: Seen | None = None) -> None:
    """One call: answered with its id; a refusal is a tool error with an avfs code (never
    `internal`) or a JSON-RPC error, and leaves the home as it was (``seen``: the state
    before, known from the sweep's call before: tests/test_json_everypath.py ``Seen``)."""
    before = seen.before(home.path) if seen is not None else _home_state(home.path)
    msg = wire.call(tool, args)
    where = f"{tool} {json.dumps(args)[:200]}: {json.dumps(msg)[:400]}"
    if "error" in msg:
        assert msg["error"]["code"] in (-32602, -32600), where
    elif msg["result"]["isError"]:
        assert _doc(msg)["error"]["code"] not in ("internal", None), where
    else:
        assert msg["result"]["structuredContent"] == _doc(msg), where
        return
    after = _home_state(home.path)
    assert _changed(before, after) == [], where
    if seen is not None:
        seen.state = after


def _bad_values(schema: dict[str, Any]) -> list[Any]:
    """What to put where the schema wants ``schema``: each bad string where a string goes
    (inside the array or object that holds strings), and a value of the wrong type."""
    kind = schema.get("type")
    if kind == "array":
        return [[v] for v in BAD.values()] + [WRONG_TYPE["array"], [7]]
    if kind == "object":
        return [{"K": v} for v in BAD.values()] + [{v: "x"} for v in BAD.values()] + [WRONG_TYPE["object"]]
    if kind in (None, "string"):  # an enum's members are strings
        return [*BAD.values(), WRONG_TYPE["string"], None]
    return [WRONG_TYPE[kind], None, -1, 2**70]


@pytest.mark.parametrize("tool", TOOLS, ids=[t.name for t in TOOLS])
def test_every_tool_answers_every_bad_argument(shared: Shared, tool: Any) -> None:
    home, wired = shared.home, shared.serving()
    schema = tool.input_schema()
    base = BASE.get(tool.name, {})
    seen = Seen()
    for argument, wants in schema.get("properties", {}).items():
        for value in _bad_values(wants):
            _answered(wired, home, tool.name, {**base, argument: value}, seen)
    for argument in schema.get("required", []):
        _answered(wired, home, tool.name, {k: v for k, v in base.items() if k != argument}, seen)
    for extra in ("zzz", *BAD.values()):
        _answered(wired, home, tool.name, {**base, extra: 1}, seen)
    _answered(wired, home, tool.name, [1], seen)
    _answered(wired, home, tool.name, "x" * 300_000, seen)
    assert wired.call("status", {})["result"]["isError"] is False  # still serving


def test_a_name_that_is_not_utf8_comes_back_in_a_result(home: Home, tmp_path: Path) -> None:
    """A file named with the byte 0xff (Python's ``"\\udcff"``), imported from a git repository:
    the SDK's writer cannot write that character, and the server exited (status 70) at the
    first listing."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok").write_bytes(b"ok")
    with open(os.fsencode(src) + b"/a\xffb", "wb") as f:
        f.write(b"x")
    git = ["git", "-C", str(src)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "names"], check=True)
    vault = home.create_vault("v", from_dir=str(src))
    vault.workspace(vault.default_fork).write("ok", b"changed")
    wire = Wire(home, real=True)  # the file's real `avfs mcp` process: its own exit status
    try:
        for tool, args in (
            ("list_files", {}),
            ("status", {}),
            ("log", {}),
            ("diff", {}),
            ("grep", {"pattern": "x"}),
        ):
            msg = wire.call(tool, args)
            assert msg["result"]["isError"] is False, msg
            text = msg["result"]["content"][0]["text"]
            assert "\ufffd" not in text  # the document as `avfs --json` prints it
            structured = json.dumps(msg["result"]["structuredContent"], ensure_ascii=False)
            if tool == "list_files":
                assert '"a\\udcffb"' in text and "a\ufffdb" in structured, msg
        assert wire.call("read_file", {"path": "a\ufffdb"})["result"]["isError"] is True
    finally:
        assert wire.close() == 0, b"".join(wire.err)[-2000:]
