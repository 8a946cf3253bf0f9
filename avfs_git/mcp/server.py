"""The MCP server (``avfs mcp``): the tools of :mod:`.tools` over stdio, on the official
``mcp`` SDK.

Failures are data, and the server keeps serving: an :class:`AvfsError` from a tool (or a
bug of ours) comes back as a tool result with ``isError`` whose text is the avfs error
document.

Threads: every avfs call but ``exec`` runs on one worker thread, which owns the
:class:`Home` and every git and SQLite handle opened through it; those calls run one at a
time, in the order they came. ``exec`` runs on a thread of its own, with a home of its own
(as a second avfs process would: avfs's locks are ``flock``s, taken per open file), one at
a time: a second ``exec`` while one runs is answered at once with a ``busy`` error naming
it (found in the eighteenth round, NAME=attack9: a command that never ended, its timeout
as long as the client asked, held the one worker, and every other call waited behind it).
The event loop only speaks the protocol, so a long ``exec`` does not stop the server from
answering pings or a cancellation (which stops the command).

stdout carries the protocol and nothing else: the SDK's stdio transport points file
descriptor 1 at stderr while it serves, so a stray print or a child's output cannot
corrupt it; logs go to stderr. The SDK (``mcp``) is imported only when the server starts,
never by other avfs commands.
"""

from __future__ import annotations

import json
import logging
import shlex
import threading
import time
from typing import TYPE_CHECKING, Any

from ..core.errors import AvfsError, BusyError, unexpected
from ..core.types import json_document
from .rescue import answer, answer_deep, unicode_only
from .tools import AvfsTools
from .toolspecs import TOOLS, output_schema

if TYPE_CHECKING:
    import mcp_types as types
    from mcp.server.lowlevel import Server

    from ..core.settings import Settings

log = logging.getLogger("avfs.mcp")

SERVER_NAME = "avfs"
INSTRUCTIONS = (
    "avfs workspaces: a vault is a git repository, a fork is a branch, a checkpoint is a commit. "
    "Tools act on one fork (`vault`, `fork`; defaults: the server's --vault, else the home's "
    "default vault and its default fork). Every result is the JSON document `avfs --json` prints. "
    "`exec` runs a command under the policy; when the decision is `require_approval`, nothing ran "
    "and the result carries `approval.token`: show the request to a person, who approves it with "
    "`avfs proxy approve TOKEN` in a terminal; then call `exec` again with the same arguments plus "
    "`approve: TOKEN`. A revision (`rev`, `old`, `new`) is a checkpoint name, a fork, a commit id,"
    " or git's syntax (`HEAD~1`, `main^`)."
)


def error_document(err: AvfsError) -> str:
    return json_document("error", {"error": err.to_dict()})


# -- the MCP server --------------------------------------------------------------------------
def build_server(tools: AvfsTools) -> Server[Any]:
    """The low-level MCP server for ``tools`` (tools/list and tools/call)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import anyio
    import mcp_types as types
    from mcp.server.lowlevel import Server

    from .. import __version__

    listing = [
        types.Tool(
            name=t.name,
            description=t.description,
            input_schema=t.input_schema(),
            output_schema=output_schema(t),
            annotations=types.ToolAnnotations(
                read_only_hint=t.read_only,
                destructive_hint=t.destructive,
                open_world_hint=t.name == "exec",
            ),
        )
        for t in TOOLS
    ]
    # the one thread that owns the home and its git/SQLite handles (see the module doc)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="avfs-mcp")
    # exec's own thread and home; `running`: the exec it runs (done when its thread is done
    # with it, not when its caller cancels: the command is stopped first)
    exec_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="avfs-mcp-exec")
    exec_tools = tools.twin()
    running = ExecSlot()

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listing)

    def run(
        name: str, arguments: dict[str, Any] | None, cancel: threading.Event, on: AvfsTools = tools
    ) -> tuple[str, bool]:
        try:
            return on.call(name, arguments, cancel), False
        except AvfsError as err:
            return error_document(err), True
        except Exception as exc:  # a bug of ours: the client gets a document, the server goes on
            log.exception("tool %s failed", name)
            return error_document(unexpected(exc)), True

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        cancel = threading.Event()
        if params.name == "exec":
            busy = running.busy()
            if busy is not None:
                return busy
            running.start(params.arguments)
            job = exec_worker.submit(run, "exec", params.arguments, cancel, exec_tools)
            job.add_done_callback(running.done)
            future = asyncio.wrap_future(job)
        else:
            future = asyncio.get_running_loop().run_in_executor(
                worker, run, params.name, params.arguments, cancel
            )
        try:
            text, is_error = await future
        except anyio.get_cancelled_exc_class():
            cancel.set()  # a running exec stops its command; the thread finishes the call
            raise
        content: list[types.ContentBlock] = [types.TextContent(text=text.rstrip("\n"))]
        if is_error:
            return types.CallToolResult(content=content, is_error=True)
        structured = json.loads(text)
        if "\\ud" in text:  # json_document escaped a lone surrogate: the SDK cannot write it
            structured = unicode_only(structured)
        return types.CallToolResult(content=content, structured_content=structured)

    return Server(
        SERVER_NAME,
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


class ExecSlot:
    """The one ``exec`` the server runs, as a ``busy`` answer names it. The event loop
    starts it and answers from it; the exec thread's done callback ends it. What an answer
    reads is one record, never changed once made: the end replaces the reference (left
    open in the nineteenth round, found in the twentieth, NAME=attack11: the answer
    iterated a dict the exec thread emptied meanwhile, and an ``exec`` asked at the instant
    the running one ended failed with "dictionary changed size during iteration")."""

    __slots__ = ("_now",)

    def __init__(self) -> None:
        self._now: dict[str, Any] | None = None

    def start(self, arguments: dict[str, Any] | None) -> None:
        self._now = {**_what(arguments), "started": time.monotonic()}

    def done(self, _job: object = None) -> None:
        self._now = None

    def busy(self) -> types.CallToolResult | None:
        """The ``busy`` answer while an exec runs; None when none does."""
        now = self._now  # (one read: the record this answer names, whatever ends meanwhile)
        return None if now is None else _busy(now)


def _what(arguments: dict[str, Any] | None) -> dict[str, Any]:
    """What an exec call runs, as its busy error names it (``argv`` or ``shell``)."""
    args = arguments if isinstance(arguments, dict) else {}
    argv, shell = args.get("argv"), args.get("shell")
    if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
        return {"argv": argv, "shown": shlex.join(argv)}
    return {"shell": shell, "shown": shell} if isinstance(shell, str) else {"shown": "a command"}


def _busy(running: dict[str, Any]) -> types.CallToolResult:
    import mcp_types as types

    shown = str(running.get("shown", ""))
    shown = shown if len(shown) <= 200 else shown[:200] + "..."
    seconds = round(time.monotonic() - running.get("started", time.monotonic()), 1)
    err = BusyError(
        f"another exec is running ({shown!r}, for {seconds} s): this server runs one at a time",
        hint="wait for its result, or cancel that call (its command is stopped); the other tools"
        " answer meanwhile",
        details={
            "running": {k: v for k, v in running.items() if k in ("argv", "shell")} | {"seconds": seconds}
        },
    )
    text = error_document(err).rstrip("\n")
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)


class _Answering:
    """The transport's read stream, answering what it could not parse (:mod:`.rescue`):
    such a line arrives as a pydantic ``json_invalid`` error holding the line; its answer
    goes out through the transport's own writer, in order with every other message."""

    def __init__(self, inner: Any, out: Any) -> None:
        self._inner, self._out = inner, out

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        import mcp_types as types
        from mcp.shared.message import SessionMessage
        from pydantic import ValidationError

        while True:
            item = await self._inner.receive()
            if not isinstance(item, ValidationError):
                return item
            errors = item.errors()
            line = errors[0].get("input") if errors and errors[0]["type"] == "json_invalid" else None
            deep = "recursion limit exceeded" in str(errors[0].get("msg")) if errors else False
            reply = (answer_deep if deep else answer)(line) if isinstance(line, str) else None
            if reply is None:
                return item  # the SDK's own handling (logged, no answer)
            log.warning("answered a request the transport could not parse: %s", item.errors()[0]["msg"])
            message = types.jsonrpc_message_adapter.validate_python(reply)
            await self._out.send(SessionMessage(message))

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _Answering:
        return self

    async def __anext__(self) -> Any:
        import anyio

        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _Answering:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def serve(
    home_path: str | None = None,
    default: str | None = None,
    *,
    client_approves: bool = False,
    settings: Settings | None = None,
) -> None:
    """Serve the tools over stdio until the client closes the connection; ``settings``:
    what the front end read from the environment (None: this process's)."""
    import anyio
    from mcp.server.stdio import stdio_server

    tools = AvfsTools(home_path, default, client_approves=client_approves, settings=settings)
    server = build_server(tools)

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            reads = _Answering(read_stream, write_stream)
            await server.run(reads, write_stream, server.create_initialization_options())

    anyio.run(main)


__all__ = ["INSTRUCTIONS", "SERVER_NAME", "build_server", "error_document", "serve"]
