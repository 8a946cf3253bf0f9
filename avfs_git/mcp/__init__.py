"""The MCP front end (``avfs mcp``): the avfs API as Model Context Protocol tools over stdio.

* :mod:`.tools`: the tools as plain calls on one home, with their schemas (no MCP).
* :mod:`.server`: the protocol, on the official ``mcp`` SDK (imported only when it serves).

This package is not the SDK: inside avfs the SDK is ``mcp`` (an absolute import), this is
``avfs_git.mcp``.
"""

from __future__ import annotations

from .server import build_server, serve
from .tools import AvfsTools
from .toolspecs import TOOLS, ToolSpec, output_schema

__all__ = ["TOOLS", "AvfsTools", "ToolSpec", "build_server", "output_schema", "serve"]
