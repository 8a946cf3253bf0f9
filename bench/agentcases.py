"""Agent-integration benchmarks: the latency an agent pays per tool call.

- ``hook_pre_tool_use``: `avfs hook claude pre-tool-use` answering a Bash event whose cwd is
  inside a mounted fork (the policy classified, the answer printed), a new process per call
  as Claude Code runs it; baseline: the interpreter starting and exiting (`python -c pass`).
- ``mcp_status`` / ``mcp_exec``: one `avfs mcp` server over stdio, driven by the MCP SDK's own
  client: the round trip of a `status` and of an `exec` of `true` (a live mount reused);
  baselines: the same through the CLI (`avfs --json status`, `avfs --json proxy exec -- true`),
  a process each. The note of ``mcp_status`` gives the size of the `tools/list` result (what
  every agent's context holds before its first call; budget 12 KB, tests/test_mcp.py).

p50 is the figure; p99 is in the notes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .env import log, run
from .fusecases import mounted
from .proxycases import VAULT_FORK, _seed
from .timing import Result, Side, Target, interleave, median
from .trees import VAULT

if TYPE_CHECKING:
    from .context import Context

CALLS = 101  # per figure (p99 needs ~100 samples)


def _p99(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]


def _notes(xs: list[float], base: list[float] | None = None) -> list[str]:
    out = [f"p99 {_p99(xs):.1f} ms over {len(xs)} calls"]
    if base:
        out.append(f"baseline p99 {_p99(base):.1f} ms")
    return out


def bench_agent(ctx: Context, labels: list[str]) -> None:
    del labels  # the workload does not depend on the tree size
    top = ctx.fx.new_dir("agent")
    hdir = top / "home"
    home, vault = _seed(ctx, hdir)
    mnt = top / "mnt"
    mnt.mkdir()
    env = {**os.environ, "AVFS_HOME": str(hdir), "AVFS_PROGRESS": "never"}
    with mounted(home, vault, VAULT_FORK, mnt):
        _hooks(ctx, env, mnt)
        _mcp(ctx, hdir, env)
    vault.close()
    ctx.fx.done_with(top)


def _hooks(ctx: Context, env: dict[str, str], mnt: Path) -> None:
    event = json.dumps(
        {
            "session_id": "bench",
            "transcript_path": "/dev/null",
            "cwd": str(mnt / "src"),
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": "ls -la && git status", "description": "look"},
        }
    ).encode()
    cmd = [ctx.avfs_bin, "hook", "claude", "pre-tool-use"]
    answers: list[str] = []

    def hook(i: int) -> None:
        proc = subprocess.run(cmd, input=event, capture_output=True, env=env, check=False)
        answers.append(proc.stdout.decode())

    log("agent: hook latency")
    s = interleave(
        {"hook": Side(op=hook), "python": Side(op=lambda i: run([sys.executable, "-c", "pass"]))},
        CALLS,
        ctx.repeats.warmup,
    )
    ok = all('"permissionDecision": "allow"' in a for a in answers)
    ctx.emit(
        Result(
            "hook_pre_tool_use",
            "-",
            median(s["hook"]),
            s["hook"],
            what="`avfs hook claude pre-tool-use` for a Bash call in a mounted fork (a process per call)",
            baseline="python -c pass",
            baseline_ms=median(s["python"]),
            baseline_samples_ms=s["python"],
            target=Target(max_ms=100.0, strict=True),
            notes=_notes(s["hook"], s["python"]) + ([] if ok else [f"unexpected answer: {answers[-1]!r}"]),
        )
    )


def _mcp(ctx: Context, hdir: Path, env: dict[str, str]) -> None:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    target = {"vault": f"{VAULT}:{VAULT_FORK}"}
    status_cli = [ctx.avfs_bin, "--vault", f"{VAULT}:{VAULT_FORK}", "--json", "status"]
    exec_cli = [ctx.avfs_bin, "--vault", f"{VAULT}:{VAULT_FORK}", "--json", "proxy", "exec", "--", "true"]

    async def calls(session: Any, tool: str, args: dict[str, Any], n: int) -> list[float]:
        out: list[float] = []
        for i in range(-1, n):
            t0 = time.perf_counter()
            res = await session.call_tool(tool, args)
            ms = (time.perf_counter() - t0) * 1000.0
            if res.is_error:
                raise RuntimeError(f"mcp {tool} failed: {res.content}")
            if i >= 0:
                out.append(ms)
        return out

    listed: list[int] = []

    async def main() -> tuple[list[float], list[float]]:
        params = StdioServerParameters(command=ctx.avfs_bin, args=["mcp", "--home", str(hdir)], env=env)
        async with (
            stdio_client(params, errlog=sys.stderr) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = await session.list_tools()
            listed.append(len(tools.model_dump_json(by_alias=True, exclude_none=True)))
            st = await calls(session, "status", target, CALLS)
            ex = await calls(session, "exec", {**target, "argv": ["true"]}, CALLS)
            return st, ex

    log("agent: MCP round trips")
    mcp_status, mcp_exec = asyncio.run(main())
    cli = interleave(
        {
            "status": Side(op=lambda i: run(status_cli, env=env)),
            "exec": Side(op=lambda i: run(exec_cli, env=env)),
        },
        ctx.repeats.fast,
        ctx.repeats.warmup,
    )
    for name, got, base, what, base_what in (
        ("mcp_status", mcp_status, cli["status"], "MCP `status` round trip (SDK client, stdio)",
         "avfs --json status (a process)"),
        ("mcp_exec", mcp_exec, cli["exec"], "MCP `exec` of `true` round trip, a live mount reused",
         "avfs --json proxy exec -- true (a process)"),
    ):  # fmt: skip
        ctx.emit(
            Result(
                name,
                "-",
                median(got),
                got,
                what=what,
                baseline=base_what,
                baseline_ms=median(base),
                baseline_samples_ms=base,
                notes=_notes(got) + ([f"tools/list: {listed[0]} bytes"] if name == "mcp_status" else []),
            )
        )


AGENT_BENCHMARKS = {"agent": bench_agent}
