"""The bodies of `avfs cat` and `avfs write`, and a ``file_content`` document's entry.

Their click commands (:mod:`.files`) call them, and so does the path without click
(:mod:`.fastcli`), which imports neither click nor the command modules. This module
imports no click.
"""

from __future__ import annotations

import base64
import sys
from typing import TYPE_CHECKING

from ..core.errors import UsageError
from ..core.store import names

if TYPE_CHECKING:
    from .app import App


def ws_ref(app: App) -> dict[str, str]:
    v, fork = app.target()
    return {"vault": v.name, "fork": fork}


def file_entry(path: str, data: bytes) -> dict[str, object]:
    """One file of a ``file_content`` document: utf-8 text, or base64 for other bytes."""
    try:
        return {
            "path": names.norm_path(path, text=False),
            "encoding": "utf-8",
            "content": data.decode("utf-8"),
            "size": len(data),
        }
    except UnicodeDecodeError:
        encoded = base64.b64encode(data).decode()
        return {
            "path": names.norm_path(path, text=False),
            "encoding": "base64",
            "content": encoded,
            "size": len(data),
        }


def mode_opt(mode: str | None) -> int | None:
    if mode is None:
        return None
    table = {
        "644": 0o100644,
        "755": 0o100755,
        "100644": 0o100644,
        "100755": 0o100755,
        "+x": 0o100755,
        "-x": 0o100644,
    }
    if mode not in table:
        raise UsageError(f"invalid --mode {mode!r}: use 644 or 755")
    return table[mode]


def cat(app: App, paths: tuple[str, ...]) -> None:
    """`avfs cat`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    ws = app.workspace()
    for p in paths:
        ws.check_shown(p, "cat")
    contents = [(p, ws.read(p)) for p in paths]
    if app.json:
        files = [{**file_entry(p, data), "blob": ws.blob_of(p)} for p, data in contents]
        app.output.document("file_content", {**ws_ref(app), "files": files})
        return
    for _, data in contents:
        sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def write(
    app: App,
    path: str,
    content: str | None,
    src_file: str | None,
    from_stdin: bool,
    mode: str | None,
    no_parents: bool,
    expect: str | None,
) -> None:
    """`avfs write`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    sources = sum(
        x
        for x in (content is not None and content != "-", src_file is not None, from_stdin or content == "-")
    )
    if sources != 1:
        raise UsageError("give exactly one of CONTENT, --file F or --stdin")
    ws = app.workspace()
    fmode = mode_opt(mode)
    if src_file is not None:
        with open(src_file, "rb") as fh:
            st, blob = ws.write_blob(path, fh, mode=fmode, parents=not no_parents, expect=expect)
    elif from_stdin or content == "-":
        st, blob = ws.write_blob(path, sys.stdin.buffer, mode=fmode, parents=not no_parents, expect=expect)
    else:
        assert content is not None
        data = content.encode("utf-8", "surrogateescape")
        st, blob = ws.write_blob(path, data, mode=fmode, parents=not no_parents, expect=expect)
    app.output.result(
        "file_write",
        {**ws_ref(app), "stat": st, "blob": blob},
        lambda: app.output.info("wrote {} ({} bytes)", st.path, st.size),
    )
