"""`avfs mcp`: serve the avfs tools to an agent over the Model Context Protocol (stdio)."""

from __future__ import annotations

import click

from .app import App, pass_app


@click.command("mcp")
@click.option(
    "--home",
    "home",
    metavar="DIR",
    help="avfs home to serve (default: the global --home, AVFS_HOME, or ~/.avfs).",
)
@click.option(
    "--vault",
    "vault",
    metavar="VAULT[:FORK]",
    help="Default vault and fork of the tools (default: the global --vault, AVFS_VAULT, the fork mounted where you are, `vault use`).",
)
@click.option(
    "--client-approves",
    is_flag=True,
    help="exec accepts an approval token the client sends back without `avfs proxy approve`"
    " (for clients whose own permission prompt is the human gate).",
)
@pass_app
def mcp_cmd(app: App, home: str | None, vault: str | None, client_approves: bool) -> None:
    """Serve the avfs tools over MCP on stdin/stdout (for Claude Code and other MCP clients).

    Tools: vault_list, fork_list, fork, status, read_file, write_file, list_files,
    checkpoint_save, checkpoint_list, checkpoint_restore, log, diff, merge, exec. Each
    returns the document `avfs --json` prints for that operation. `exec` applies the
    policy and never approves a command itself: a `require_approval` decision returns its
    token to the client, and exec accepts that token only once a person approved it with
    `avfs proxy approve TOKEN` (or with --client-approves, as the client sends it back; see
    docs/mcp.md). stdout carries only the protocol; logs go to stderr.
    """
    import logging
    import os

    from ..core.store.names import parse_address
    from ..mcp.server import serve

    level = getattr(logging, os.environ.get("AVFS_MCP_LOG", "").upper(), None)
    logging.basicConfig(  # to stderr: stdout is the protocol's
        level=level if isinstance(level, int) else logging.WARNING,
        format="avfs mcp: %(levelname)s %(name)s: %(message)s",
    )
    spec = vault if vault is not None else app.spec
    if spec:
        parse_address(spec)  # a malformed --vault is a usage error now, not on every call
    from ..core.settings import Settings

    home_path = home if home is not None else app.home_path
    settings = Settings.from_environ(os.environ, home_path)
    if app.json:
        # `avfs --json mcp` (an agent's config that puts --json on every call): the protocol
        # is the stream on stdout, one JSON message a line, as `watch --json` writes NDJSON;
        # the real stdout, not the capture that --json puts in its place for one document
        import sys

        sys.stdout = app.output.stream
        app.output.emitted = True
    serve(home_path, spec, client_approves=client_approves, settings=settings)
