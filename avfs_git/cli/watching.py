"""``avfs watch``: follow a fork's (or a vault's) change stream (core/vaults/changes.py).

With ``--json`` stdout is NDJSON: one document per line, each a ``watch_event`` (one
event, as ``event``) or a ``watch_cursor`` (where the stream stands: first when following starts, last
when ``--once`` ends); an error is one ``error`` document, the last line.

Following reads the journals again when one of their files changes (inotify on their
directories; every :data:`IDLE_S` where the user has no inotify instance left), after
:data:`SETTLE_S` so that a burst is read at once; it holds no
database transaction while it writes, so a reader that stops reading blocks only this
process, never a writer.
"""

from __future__ import annotations

import os
import select
from typing import TYPE_CHECKING, Any

import click

from .app import App, pass_app

if TYPE_CHECKING:
    from ..core.vaults.changes import ChangeEvent, Changes
    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault

SETTLE_S = 0.005  # after a wake-up, let the rest of a burst's writes land first
IDLE_S = 1.0  # read again this often with no wake-up at all (a directory made meanwhile)
_MASK = 0x2 | 0x8 | 0x80 | 0x100 | 0x200  # IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE


@click.command("watch")
@click.argument("target", required=False, metavar="[VAULT[:FORK]]")
@click.option("--vault", "whole", metavar="VAULT", help="Every fork of VAULT, and its vault events.")
@click.option(
    "--since",
    "--cursor",  # (the MCP tool changes_since's name for it)
    "since",
    metavar="CURSOR",
    help="Start after this cursor (from an earlier watch or changes_since).",
)
@click.option(
    "--once", is_flag=True, help="Print what happened since the cursor and the new cursor, then exit."
)
@pass_app
def watch_cmd(app: App, target: str | None, whole: str | None, since: str | None, once: bool) -> None:
    """Follow the changes of a fork: every file created, modified, deleted, renamed or
    chmod-ed (by any process in its mount, proxy exec, the CLI, the API, MCP), and the
    vault's events (checkpoint, ref moved, merge, restore, undo, fork created, exec).

    Resume with --since CURSOR: every event carries the cursor after it, and a cursor
    survives restarts of the mount and of watch. A cursor the stream cannot continue
    exactly gives one resync_required event. With --json: NDJSON, one document per line.
    """
    from ..core.errors import UsageError
    from ..core.vaults.changes import changes_since

    if whole is not None and target is not None:
        raise UsageError("give either VAULT[:FORK] or --vault VAULT, not both")
    if whole is not None:
        if ":" in whole:
            raise UsageError("--vault takes a vault (every fork of it): drop the :FORK")
        vault, fork = app.resolve(whole)[0], None
    else:
        vault, fork = app.resolve_given(target)
    ch = changes_since(vault, fork, since)
    cursor = ch.cursor
    try:
        if once:
            while True:
                _emit(app, ch.events)
                cursor = ch.cursor
                if not ch.more:
                    break
                ch = changes_since(vault, fork, cursor)
            _cursor(app, vault, fork, cursor)
            return
        _cursor(app, vault, fork, cursor)
        _emit(app, ch.events)
        _follow(app, vault, fork, ch.cursor)
    except KeyboardInterrupt:
        raise click.exceptions.Exit(0) from None


def _follow(app: App, vault: Vault[Home], fork: str | None, cursor: str) -> None:
    from inotify_simple import INotify

    from ..core.vaults.changes import changes_since, wake_paths

    # the user's inotify instances used up (``max_user_instances``, shared by every program
    # of theirs, a confined command's own while it runs among them): read again every
    # IDLE_S instead (found in the thirty-second round, NAME=attack23: exit 70 before)
    try:
        ino: INotify | None = INotify()
    except OSError:
        ino = None
    watched: set[str] = set()
    try:
        while True:
            for d in wake_paths(vault, fork) if ino is not None else ():
                if d not in watched and os.path.isdir(d) and ino is not None:
                    try:
                        ino.add_watch(d, _MASK)
                        watched.add(d)
                    except OSError:
                        pass
            ch: Changes = changes_since(vault, fork, cursor)
            _emit(app, ch.events)
            cursor = ch.cursor
            if ch.more:
                continue
            ready, _, _ = select.select([ino.fileno()] if ino is not None else [], [], [], IDLE_S)
            if ready and ino is not None:
                select.select([], [], [], SETTLE_S)
                ino.read(timeout=0)
    finally:
        if ino is not None:
            ino.close()


def _cursor(app: App, vault: Vault[Home], fork: str | None, cursor: str) -> None:
    if app.json:
        _write(app, _doc("watch_cursor", {"vault": vault.name, "fork": fork, "cursor": cursor}))
    else:
        app.output.info("cursor {}", cursor)


def _write(app: App, text: str) -> None:
    app.output.stream.write(text)
    app.output.stream.flush()  # a line at a time: the reader follows as it comes
    app.output.emitted = True


def _doc(kind: str, data: dict[str, Any]) -> str:
    from ..core.types import json_document

    return json_document(kind, data)


def _emit(app: App, events: tuple[ChangeEvent, ...]) -> None:
    if not events:
        return
    if app.json:
        _write(app, "".join(_doc("watch_event", {"event": ev.to_dict()}) for ev in events))
        return
    for ev in events:
        app.output.plain("{}", _line(ev))


def _line(ev: ChangeEvent) -> str:
    """One event as a person reads it: time, fork, kind, what, and by whom."""
    what = ev.path or ev.summary or ev.reason or ""
    if ev.old_path:
        what = f"{ev.old_path} -> {ev.path}"
    if ev.kind in ("ref_moved", "checkpoint", "merge", "restore", "undo", "revert", "fork_created"):
        moved = f" {(ev.old or '0' * 7)[:7]}..{(ev.new or '0' * 7)[:7]}" if ev.old or ev.new else ""
        what = f"{ev.summary or ev.ref or ''}{moved}"
    by = f" ({ev.source})" if ev.source else ""
    return f"{ev.time}  {ev.fork or '-'}  {ev.kind}  {what}{by}"
