"""The bodies of `avfs cat`, `write`, `ls`, `stat`, `cp`, `mv`, `rm` and `mkdir`, and a
``file_content`` document's entry.

Their click commands (:mod:`.files`) call them, and so does the path without click
(:mod:`.fastcli`), which imports neither click nor the command modules. This module
imports no click.
"""

from __future__ import annotations

import base64
import sys
from typing import TYPE_CHECKING, Any

from ..core.errors import AvfsError, IsDirectoryError, PathNotFoundError, UsageError
from ..core.store import names
from ..core.types import DirEntry, NodeKind
from .output import human_size

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
    try:
        contents = [(p, ws.read(p)) for p in paths]
    except PathNotFoundError as err:
        from .suggest import with_near_paths  # (loaded only when a path was not found)

        raise with_near_paths(ws, err) from None
    except IsDirectoryError as err:  # (h-polish4's trial: no hint)
        err.hint = (
            err.hint or f"`avfs ls {err.details.get('path') or '.'}` lists it; `avfs tree` the files below"
        )
        raise
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
    append: bool = False,
) -> None:
    """`avfs write`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    sources = sum(
        x
        for x in (content is not None and content != "-", src_file is not None, from_stdin or content == "-")
    )
    if sources != 1:
        import shlex

        piped = sources == 0 and not sys.stdin.isatty()  # (`avfs write F < file`: h-polish5's trial)
        path = shlex.quote(path)
        raise UsageError(
            "give exactly one of CONTENT, --file F or --stdin",
            hint=f"to take standard input: `avfs write {path} --stdin` (or CONTENT `-`)"
            if piped
            else f"`avfs write {path} TEXT`, `--file FILE`, or `--stdin` (CONTENT `-`) for a pipe",
        )
    if append and expect is not None:
        raise UsageError(
            "give --append or --expect, not both",
            hint="--append writes only onto the bytes it read (else it exits 1 and writes nothing)",
        )
    ws = app.workspace()
    fmode = mode_opt(mode)
    added = 0
    if append:
        # the old bytes and the new, written only if PATH still holds what was read: an
        # `append_only` file (docs/policy.md) takes it, and a concurrent writer's bytes are
        # never lost (it was: `cat` the file, then `write` old + new)
        if src_file is not None:
            with open(src_file, "rb") as fh:
                data = fh.read()
        elif from_stdin or content == "-":
            data = sys.stdin.buffer.read()
        else:
            assert content is not None
            data = content.encode("utf-8", "surrogateescape")
        from ..core.workspace.wschecks import EXPECT_ABSENT

        was = ws.blob_of(path)
        added = len(data)
        data = (ws.read(path) if was is not None else b"") + data
        st, blob = ws.write_blob(path, data, mode=fmode, parents=not no_parents, expect=was or EXPECT_ABSENT)
    elif src_file is not None:
        with open(src_file, "rb") as fh:
            st, blob = ws.write_blob(path, fh, mode=fmode, parents=not no_parents, expect=expect)
    elif from_stdin or content == "-":
        st, blob = ws.write_blob(path, sys.stdin.buffer, mode=fmode, parents=not no_parents, expect=expect)
    else:
        assert content is not None
        data = content.encode("utf-8", "surrogateescape")
        st, blob = ws.write_blob(path, data, mode=fmode, parents=not no_parents, expect=expect)
    index_shows(ws, [st.path] if git_state(st.path) else [])
    app.output.result(
        "file_write",
        {**ws_ref(app), "stat": st, "blob": blob},
        lambda: (
            app.output.info("appended {} bytes to {} ({} bytes)", added, st.path, st.size)
            if append
            else app.output.info("wrote {} ({} bytes)", st.path, st.size)
        ),
    )


def file_op(app: App, op: str, paths: list[str], extra: dict[str, object] | None = None) -> None:
    data = {**ws_ref(app), "op": op, "paths": paths, **(extra or {})}
    # a move or copy names its two paths with an arrow: `rename: a b c` did not say which of
    # `a b` and `c` (or `a` and `b c`) was moved where
    if op in TWO_PATHS and len(paths) == 2:
        moved = TWO_PATHS[op] + " {} -> {}"
        app.output.result("file_op", data, lambda: app.output.info(moved, *paths))
        return
    # one line a path, said as what was done (`mkdir: a b` and `remove: x` were terse, and
    # a space in a name made two paths of one)
    lines: list[tuple[str, ...]]
    if op == "symlink":
        lines = [("linked {} -> {}", p, str((extra or {}).get("target"))) for p in paths]
    elif op == "chmod":
        done = "made {} executable" if (extra or {}).get("executable") else "made {} not executable"
        lines = [(done, p) for p in paths]
    else:
        lines = [(ONE_PATH.get(op, op + ": {}"), p) for p in paths]

    def human() -> None:
        for fmt, *args in lines:
            app.output.info(fmt, *args)

    app.output.result("file_op", data, human)


TWO_PATHS = {"rename": "renamed", "copy": "copied"}
ONE_PATH = {"remove": "removed {}", "mkdir": "made directory {}"}


def git_state(path: str) -> bool:
    """Whether a name on ``path`` is one of git's own state (``HEAD``, ``config``, ``hooks``,
    ``objects``, ``refs``... as git folds them): a staged file there is looked at."""
    return any(names.git_state_name(c) is not None for c in path.split("/"))


def is_dir(ws: Any, path: str) -> bool:
    """Whether the fork shows a directory at ``path`` (a missing or bad one: no)."""
    try:
        node = ws.view.lookup(names.norm_path(path))
    except AvfsError:
        return False
    return node is not None and bool(node.is_dir)


def index_shows(ws: Any, paths: list[str]) -> None:
    """What git's index in the fork's mount stages at a name of git's own state at or
    under ``paths`` (changed by an avfs file command, outside any run) is what the work
    tree shows there, else put back to HEAD's (mount/stagedplant.py ``keep_shown``;
    gitmodel29, fix40a's residual). Nothing is loaded or run for other paths."""
    if paths:
        from ..mount.stagedplant import keep_shown

        keep_shown(ws, paths)


def _through_links(ws: Any, path: str) -> list[str]:
    from ..mount.stagedplant import through_links  # (only for a name of git's state)

    return through_links(ws, [path])


def checked_out(ws: Any, path: str, was_dir: bool) -> None:
    """:func:`index_shows` after `avfs checkout REV -- PATH` (a file or a directory brought
    back from a commit: what git staged there may be shown no more, gitmodel29). ``was_dir``:
    a directory was there before (review43 F3: a file brought back over it was looked at
    nowhere, and a staged ``src/config`` under it stayed, shown by no work tree)."""
    p = names.norm_path(path)
    index_shows(ws, [p] if not p or was_dir or git_state(p) or is_dir(ws, p) else [])


def into_dir(ws: object, src: str, dst: str) -> str:
    """coreutils semantics: an existing directory as destination receives the source."""
    from ..core.workspace.workspace import Workspace

    assert isinstance(ws, Workspace)
    d = names.norm_path(dst)
    if ws.exists(d):
        try:
            st = ws.stat(d, follow=True)
        except PathNotFoundError:
            return d
        if st.kind is NodeKind.DIR:
            return names.join(st.path, names.basename(names.norm_path(src)))
    return d


def ls(app: App, path: str, long: bool) -> None:
    """`avfs ls`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    ws = app.workspace()
    ws.check_shown(path, "ls")
    try:
        st = ws.stat(path, follow=True)
    except PathNotFoundError as err:
        from .suggest import with_near_paths

        raise with_near_paths(ws, err) from None
    if st.kind is not NodeKind.DIR:
        one = ws.stat(path, follow=False)
        entries = [DirEntry(names.basename(one.path), one.path, one.kind, one.mode, one.size)]
    else:
        entries = ws.listdir(path, sizes=True)
        if (visible := ws.visible_filter()) is not None:
            entries = [e for e in entries if visible(e.path, e.kind)]
    shown = st.path if st.kind is NodeKind.DIR else names.norm_path(path)
    data = {**ws_ref(app), "path": shown, "entries": entries}

    def human() -> None:
        o = app.output
        for e in entries:
            slash = "/" if e.kind is NodeKind.DIR else ""
            if long:
                size = human_size(e.size) if e.size is not None else "-"
                line = f"{e.mode:06o} {e.kind.value:<8} {size:>7} {{}}{slash}"
                if e.kind is NodeKind.SYMLINK:
                    o.plain(line + " -> {}", e.name, ws.read_link(e.path))
                else:
                    o.plain(line, e.name)
            else:
                o.plain("{}" + slash, e.name)

    app.output.result("dir_listing", data, human)


def cp(app: App, src: str, dst: str, recursive: bool, expect: str | None) -> None:
    """`avfs cp`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    ws = app.workspace()
    out, blob = ws.copy_blob(src, into_dir(ws, src, dst), recursive=recursive, expect=expect)
    index_shows(ws, [out] if recursive or git_state(out) else [])
    file_op(app, "copy", [names.norm_path(src), out], {"blob": blob})


def mv(app: App, src: str, dst: str, expect: str | None) -> None:
    """`avfs mv`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    ws = app.workspace()
    was_dir = is_dir(ws, src)
    out, blob = ws.rename_blob(src, into_dir(ws, src, dst), expect=expect)
    index_shows(ws, [p for p in (names.norm_path(src), out) if was_dir or git_state(p)])
    file_op(app, "rename", [names.norm_path(src), out], {"blob": blob})


def rm(app: App, paths: tuple[str, ...], recursive: bool, force: bool, expect: str | None) -> None:
    """`avfs rm`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    ws = app.workspace()
    for p in paths:
        names.norm_path(p)
    if expect is not None and len(paths) != 1:
        raise UsageError("--expect takes one PATH")
    done, look = [], []
    for p in paths:
        try:
            was_dir = recursive and is_dir(ws, p)  # (a directory's staged files: looked at below)
            # (through a symlinked parent, resolved now: a later path may be the link, review45 A)
            real = _through_links(ws, names.norm_path(p)) if was_dir or git_state(names.norm_path(p)) else []
            ws.remove(p, recursive=recursive, expect=expect)
            done.append(names.norm_path(p))
            if was_dir or git_state(done[-1]):
                look += [done[-1], *real]
        except PathNotFoundError:
            if not force:
                raise
    index_shows(ws, look)
    file_op(app, "remove", done)


def mkdir(app: App, paths: tuple[str, ...], parents: bool) -> None:
    """`avfs mkdir`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    ws = app.workspace()
    for p in paths:
        ws.mkdir(p, parents=parents, exist_ok=parents)
    file_op(app, "mkdir", [names.norm_path(p) for p in paths])


def stat(app: App, path: str, dereference: bool) -> None:
    """`avfs stat`'s body: its click command calls it, and so does the path without click (:mod:`.fastcli`)."""
    ws = app.workspace()
    ws.check_shown(path, "stat", follow=dereference)
    st = ws.stat(path, follow=dereference)

    def human() -> None:
        o = app.output
        o.plain("path: {}\nkind: {}\nmode: {:06o}\nsize: {}", st.path, str(st.kind), st.mode, st.size)
        where = "overlay (written since the base)" if st.materialized else "git object " + str(st.oid)
        o.plain("content: {}", where)
        if st.target is not None:
            o.plain("target: {}", st.target)

    doc = {**ws_ref(app), "stat": st}
    if st.kind is NodeKind.FILE and st.oid is not None and not st.materialized:
        # a file of git's: its blob is the id the stat gave, as ``blob_of`` would say after
        # a second walk to the path (suitetime14: a third of a stat's lookups)
        doc["blob"] = st.oid
    elif st.kind is not NodeKind.DIR:
        doc["blob"] = ws.blob_of(st.path)  # what --expect compares with
    app.output.result("stat", doc, human)
