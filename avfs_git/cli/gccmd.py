"""`avfs gc`'s body, and its path without click (a cold gc's own process).

A cold `avfs gc` (no resident server to answer: ``AVFS_SERVER=off``, a user's first call)
runs in a process of its own (:data:`.client.LATE_START`, :func:`.execopts.run_closed`),
where click and the CLI's group were ~50-95 ms of imports before gc's first git process.
:func:`fast` takes exactly the arguments it knows, ``[--home DIR] [--vault SPEC] [--json]
gc [--grace DAYS] [--dry-run] [--all]``, and runs :func:`run`, the body of the click
command itself (cli/maintenance.py's ``gc_cmd`` calls it), so the answer is the same.
Anything else (help, an option gc does not have, a value click would convert or refuse,
``--``) it declines, and the click CLI answers as ever: its errors stay click's own.

Imports go as in the rest of cli: ``execopts -> gccmd -> fastcli (the global options), app,
output``; the click command module imports this one, never the other way.
"""

from __future__ import annotations

import io
import os
import sys
from typing import Any

from .app import App
from .fastcli import GLOBAL_ENV, call_body, global_options
from .output import Output, human_size, render_error


def run(app: App, grace: float | None, dry_run: bool, all_vaults: bool) -> None:
    """Expire, then compact the selected vault (``all_vaults``: every vault of the home)
    and the deleted vaults whose time is up; print the one ``gc`` result."""
    from ..core.types import to_json
    from ..ops import maintenance as mnt

    home = app.home
    vaults = [home.vault(v.name) for v in home.list_vaults()] if all_vaults else [app.target()[0]]
    results = [mnt.gc(v, grace_days=grace, dry_run=dry_run) for v in vaults]
    expired = mnt.expire_deleted_vaults(home, dry_run=dry_run)
    data = {
        "dry_run": dry_run,
        "vaults": [r.to_json() for r in results],
        "deleted_vaults_expired": [to_json(e) for e in expired],
    }

    def human() -> None:
        p = app.output.line  # (rich is not imported for these plain lines)
        verb = "would " if dry_run else ""
        for r in results:
            after = (
                ""
                if r.objects_after is None
                else app.output.text(
                    " -> {} ({}{}) in {} ms",
                    r.objects_after,
                    human_size(r.bytes_after),
                    ", with gc's record of what undo needs: a commit and its tree" if r.keep_commit else "",
                    r.duration_ms,
                )
            )
            p(
                "{}: {verb}expire {} recovery refs and {} operations; {verb}drop {} unreachable loose"
                " objects; {} objects ({}){}",
                r.vault,
                len(r.expired_recovery_refs),
                len(r.expired_operations),
                r.unreachable_loose,
                r.objects_before,
                human_size(r.bytes_before),
                after,
                verb=verb,
            )
            if r.stale_temp_files:
                p(
                    "{}: {}remove {} temporary pack files a killed writer left ({})",
                    r.vault,
                    verb,
                    len(r.stale_temp_files),
                    human_size(r.stale_temp_bytes),
                )
            if r.expired_git_state:
                p(
                    "{}: {}remove {} kept git states past the retention",
                    r.vault,
                    verb,
                    len(r.expired_git_state),
                )
        for e in expired:
            p("{}remove deleted vault {} (deleted {})", verb, e.name, e.deleted)

    app.output.result("gc", data, human)


def _days(v: str) -> float | None:
    """``--grace``'s value when it is a plain decimal (click's ``FloatRange(min=0)`` gives
    the same float); None for anything else (click converts or refuses it)."""
    if v.isascii() and v.replace(".", "", 1).isdigit():
        return float(v)
    return None


def parse(args: list[str]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The global options and gc's, as the click CLI reads them (the environment's
    ``AVFS_HOME``/``AVFS_VAULT`` when not given, an empty one as not set; the last of a
    repeated option); None for any argument outside the shape above."""
    read = global_options(args)
    if read is None:
        return None
    glob, i = read
    if args[i : i + 1] != ["gc"]:
        return None
    opts: dict[str, Any] = {"grace": None, "dry_run": False, "all_vaults": False}
    rest = args[i + 1 :]
    j = 0
    while j < len(rest):
        a = rest[j]
        if a == "--dry-run":
            opts["dry_run"] = True
        elif a == "--all":
            opts["all_vaults"] = True
        elif a == "--grace" or a.startswith("--grace="):
            if a == "--grace":
                j += 1
                v = rest[j] if j < len(rest) else ""
            else:
                v = a[8:]
            days = _days(v)
            if days is None:
                return None
            opts["grace"] = days
        else:
            return None
        j += 1
    for key, env in GLOBAL_ENV:
        if glob[key] is None:
            glob[key] = os.environ.get(env) or None
    return glob, opts


def fast(args: list[str], opened: list[App]) -> int | None:
    """Run `avfs gc` on ``args`` without click when :func:`parse` takes them (None: it
    declined); the same output and exit code as the click CLI (:func:`.main.main`), one JSON
    document with ``--json``. The :class:`App` is left in ``opened`` for the caller to run
    its :meth:`~.app.App.run_after` and close (:func:`.execopts.run_closed`)."""
    parsed = parse(args)
    if parsed is None:
        return None
    glob, opts = parsed
    json_mode = bool(glob["json"])
    out = Output(json_mode, stream=sys.stdout)
    out.argv = list(args)
    app = App(glob["home"], glob["vault"], out)
    opened.append(app)
    captured = io.StringIO()  # (as main: anything else bound for stdout is not the document)
    if json_mode:
        sys.stdout = captured
    try:
        code = call_body(app, run, opts)
    finally:
        if json_mode:
            sys.stdout = out.stream
    if json_mode and not out.emitted:
        from ..core.errors import InternalError

        render_error(
            out,
            InternalError(f"exited {code} without a result", details={"output": captured.getvalue()[-2000:]}),
        )
    return code
