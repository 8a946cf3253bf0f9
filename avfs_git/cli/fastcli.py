"""The frequent commands without click: their arguments read by one table, their bodies run.

A cold `avfs` process (no resident server answers: every call of the test suite, a person's
first call) spent ~20 ms of its CPU importing click and the command modules' option
declarations before `status`, `cat` or `write` did anything (docs/benchmarks.md, "The cold
CLI's imports", twentieth round). :func:`fast` takes the arguments of the commands in
:data:`COMMANDS`, when they have exactly the shapes below, and runs the command's body (the
function its click command calls: :mod:`.histcmds`, :mod:`.filecmds`, :mod:`.forkcmds`,
:mod:`.mountcmds`, :mod:`.opcmds`, :mod:`.mergecmds`, :mod:`.vaultcmds`), so
the answer is the click command's own. Anything else it declines (returns None), and the
click CLI answers as ever: help, every error of the arguments (a missing argument, an option
the command does not have, a value click would convert or refuse), ``--``, ``-h``.

The shapes taken: ``[--home DIR] [--vault SPEC] [--json]`` (in any order, each value a plain
word), the command's words, then its options and arguments interleaved: a flag as its long
or short name; an option's value as the next word or after ``=`` (a plain word: not empty,
not starting with ``-``; a whole number in ASCII digits for an ``int``); ``-`` as an
argument; `log`'s ``-N``. Not taken: short options run together (``-sb``), a value stuck to
a short option (``-n3``), a value that looks like an option.

The table is data written from click's own definitions (the decorators in the command
modules); ``tests/test_fastcli.py`` reads every command's parameters from click and checks
the table against them, and parses a corpus of argument lists both ways. Imports go as in
the rest of cli: ``execopts -> fastcli -> the body modules -> app, output``; no module
imports this one but :mod:`.execopts`, :mod:`.gccmd` (the global options) and
:mod:`.callproc` (a kept process's calls: a served merge).
"""

from __future__ import annotations

import io
import os
import sys

TYPE_CHECKING = False  # not from typing: see avfs_git/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from .app import App
    from .homekeep import KeptHome

# A parameter: (dest, its names, kind, default, the names that turn a flag off).
# kind: "flag"; "=VALUE" (a flag that sets its dest to VALUE: one of a feature-switch group);
# "str", "int" (an option's value); "strs" (a repeatable option: a tuple); "dir", "file" (a
# path click checks as ``click.Path(file_okay=False)`` and ``click.Path(dir_okay=False,
# exists=True)`` do: taken where it passes the same checks, else declined to click's error);
# "click" (a value click converts or checks otherwise, a choice: given, the call is declined);
# "arg" (a required argument), "arg?" (an optional one), "args" (nargs=-1: a tuple),
# "args+" (nargs=-1, required).
Param = tuple[str, tuple[str, ...], str, object, tuple[str, ...]]

# a count's names (:data:`.app.COUNT_OPTS`, as the click commands of `log`, `checkpoint
# list` and `op log` declare them; not imported: this table is read before any body module)
COUNT_OPTS = ("-n", "--max-count", "--limit")

# command words -> (the body, "module:function" in avfs_git.cli; its parameters in click's order)
COMMANDS: dict[tuple[str, ...], tuple[str, tuple[Param, ...]]] = {
    ("status",): (
        "histcmds:status",
        (
            ("list_ignored", ("--ignored",), "flag", False, ()),
            ("short", ("-s", "--short", "--porcelain"), "flag", False, ()),
            ("branch", ("-b", "--branch"), "flag", False, ()),
        ),
    ),
    ("log",): (
        "histcmds:log",
        (
            ("all_forks", ("--all",), "flag", False, ()),
            ("limit", COUNT_OPTS, "int", None, ()),
            ("oneline", ("--oneline",), "flag", False, ()),
            ("patch", ("-p", "--patch"), "flag", False, ()),
            ("graph", ("--graph",), "flag", False, ()),
            ("stat", ("--stat",), "flag", False, ()),
            ("rev", ("rev",), "arg?", None, ()),
        ),
    ),
    ("diff",): (
        "histcmds:diff",
        (
            ("revs", ("revs",), "args", (), ()),
            ("stat", ("--stat",), "flag", False, ()),
            ("name_status", ("--name-status",), "flag", False, ()),
            ("paths", ("--path",), "strs", (), ()),
            ("context", ("-U", "--unified"), "int", 3, ()),
            ("cached", ("--cached", "--staged"), "flag", False, ()),
        ),
    ),
    ("cat",): ("filecmds:cat", (("paths", ("paths",), "args+", (), ()),)),
    ("write",): (
        "filecmds:write",
        (
            ("path", ("path",), "arg", None, ()),
            ("content", ("content",), "arg?", None, ()),
            ("src_file", ("--file", "--from"), "file", None, ()),
            ("from_stdin", ("--stdin",), "flag", False, ()),
            ("mode", ("--mode",), "str", None, ()),
            ("no_parents", ("--no-parents",), "flag", False, ()),
            ("expect", ("--expect",), "str", None, ()),
            ("append", ("--append",), "flag", False, ()),
        ),
    ),
    ("ls",): (
        "filecmds:ls",
        (
            ("path", ("path",), "arg?", "", ()),
            ("long", ("-l",), "flag", False, ()),
        ),
    ),
    ("stat",): (
        "filecmds:stat",
        (
            ("path", ("path",), "arg", None, ()),
            ("dereference", ("-L", "--dereference"), "flag", False, ()),
        ),
    ),
    ("cp",): (
        "filecmds:cp",
        (
            ("src", ("src",), "arg", None, ()),
            ("dst", ("dst",), "arg", None, ()),
            ("recursive", ("-r", "-R", "--recursive"), "flag", False, ()),
            ("expect", ("--expect",), "str", None, ()),
        ),
    ),
    ("mv",): (
        "filecmds:mv",
        (
            ("src", ("src",), "arg", None, ()),
            ("dst", ("dst",), "arg", None, ()),
            ("expect", ("--expect",), "str", None, ()),
        ),
    ),
    ("rm",): (
        "filecmds:rm",
        (
            ("paths", ("paths",), "args+", (), ()),
            ("recursive", ("-r", "-R", "--recursive"), "flag", False, ()),
            ("force", ("-f", "--force"), "flag", False, ()),
            ("expect", ("--expect",), "str", None, ()),
        ),
    ),
    ("mkdir",): (
        "filecmds:mkdir",
        (
            ("paths", ("paths",), "args+", (), ()),
            ("parents", ("-p", "--parents"), "flag", False, ()),
        ),
    ),
    ("checkpoint", "save"): (
        "forkcmds:save",
        (
            ("name", ("name",), "arg?", None, ()),
            ("message", ("-m", "--message"), "str", None, ()),
            ("rebase", ("--rebase",), "flag", True, ("--no-rebase",)),
            ("expect_head", ("--expect-head",), "str", None, ()),
        ),
    ),
    ("checkpoint", "list"): (
        "opcmds:list_checkpoints",
        (
            ("all_commits", ("--all",), "flag", False, ()),
            ("limit", COUNT_OPTS, "int", 100, ()),
        ),
    ),
    ("checkpoint", "restore"): (
        "opcmds:restore",
        (
            ("rev", ("rev",), "arg", None, ()),
            ("expect_head", ("--expect-head",), "str", None, ()),
        ),
    ),
    ("checkpoint", "delete"): ("opcmds:delete", (("name", ("name",), "arg", None, ()),)),
    ("op", "log"): ("opcmds:op_log", (("limit", COUNT_OPTS, "int", 50, ()),)),
    ("undo",): ("opcmds:undo", (("op_id", ("--op", "--op-id"), "int", None, ()),)),
    ("redo",): ("opcmds:redo", ()),
    ("merge",): (
        "mergecmds:merge",
        (
            ("sources", ("sources",), "args", (), ()),
            ("target", ("--into",), "str", None, ()),
            ("no_ff", ("--no-ff",), "flag", False, ()),
            ("dry_run", ("--dry-run",), "flag", False, ()),
            ("favor", ("--ours",), "=ours", None, ()),
            ("favor", ("--theirs",), "=theirs", None, ()),
            ("write_conflicts", ("--write-conflicts",), "flag", False, ()),
            ("allow_unrelated", ("--allow-unrelated",), "flag", False, ()),
            ("no_capture", ("--no-capture",), "flag", False, ()),
            ("message", ("-m", "--message"), "str", None, ()),
            ("cont", ("--continue",), "flag", False, ()),
            ("abort", ("--abort",), "flag", False, ()),
            ("expect_head", ("--expect-head",), "str", None, ()),
        ),
    ),
    ("vault", "create"): (
        "vaultcmds:create",
        (
            ("name", ("name",), "arg", None, ()),
            ("from_dir", ("--from",), "str", None, ()),
            ("no_ignore", ("--no-ignore",), "flag", False, ()),
            ("make_default", ("--use",), "flag", False, ("--no-use",)),
        ),
    ),
    ("vault", "list"): ("vaultcmds:list_vaults", ()),
    ("vault", "info"): ("vaultcmds:info", (("spec", ("spec",), "arg?", None, ()),)),
    ("mount",): (
        "mountcmds:mount",
        (
            ("args", ("args",), "args", (), ()),
            ("list_", ("--list",), "flag", False, ()),
            ("foreground", ("--foreground",), "flag", False, ()),
            ("backend", ("--backend",), "click", "auto", ()),
        ),
    ),
    ("unmount",): (
        "mountcmds:unmount",
        (
            ("target", ("target",), "arg?", None, ()),
            ("lazy", ("--lazy",), "flag", False, ()),
        ),
    ),
    ("vault", "fork"): (
        "forkcmds:fork",
        (
            ("args", ("args",), "args+", (), ()),
            ("no_ignored", ("--no-ignored",), "flag", False, ()),
        ),
    ),
}

GLOBAL_ENV = (("home", "AVFS_HOME"), ("vault", "AVFS_VAULT"))
ARGS = ("arg", "arg?", "args", "args+")


def _word(v: str) -> bool:
    """An option's value taken as it is: not empty, not what click could read as an option."""
    return v != "" and not v.startswith("-")


def _digits(v: str) -> bool:
    return v.isascii() and v.isdigit()


def _path_passes(value: str, kind: str) -> bool:
    """``value`` passes click.Path's checks: ``file_okay=False`` ("dir": missing, or not a
    regular file and readable) or ``dir_okay=False, exists=True`` ("file": there, not a
    directory, readable); click's own ``convert`` answers the rest (its error)."""
    import stat

    try:
        st = os.stat(value)
    except OSError:
        return kind == "dir"
    if stat.S_ISREG(st.st_mode) if kind == "dir" else stat.S_ISDIR(st.st_mode):
        return False
    return os.access(value, os.R_OK)


def global_options(args: list[str]) -> tuple[dict[str, Any], int] | None:
    """The global options before the command's first word (``--json``, ``--home DIR``,
    ``--vault SPEC``, ``=`` forms; the last of a repeated one) and the index of that word;
    None for any other option there (click answers it). Also `avfs gc`'s (:mod:`.gccmd`)."""
    glob: dict[str, Any] = {"home": None, "vault": None, "json": False}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        a = args[i]
        if a == "--json":
            glob["json"] = True
            i += 1
        elif a in ("--home", "--vault") and i + 1 < len(args) and _word(args[i + 1]):
            glob[a[2:]] = args[i + 1]
            i += 2
        elif a.startswith(("--home=", "--vault=")) and _word(a.partition("=")[2]):
            key, _, value = a[2:].partition("=")
            glob[key] = value
            i += 1
        else:
            return None
    return glob, i


def parse(args: list[str]) -> tuple[tuple[str, ...], dict[str, Any], dict[str, Any]] | None:
    """(the command's words, the global options, the command's parameters) as the click CLI
    reads them (the environment's ``AVFS_HOME``/``AVFS_VAULT`` when not given, an empty one
    as not set; the last of a repeated option); None for anything outside the shapes taken."""
    read = global_options(args)
    if read is None:
        return None
    glob, i = read
    words = tuple(args[i : i + 1])
    if words not in COMMANDS:
        words = tuple(args[i : i + 2])
        if words not in COMMANDS:
            return None
    params = _params(COMMANDS[words][1], args[i + len(words) :], words == ("log",))
    if params is None:
        return None
    for key, env in GLOBAL_ENV:
        if glob[key] is None:
            glob[key] = os.environ.get(env) or None
    return words, glob, params


def _params(table: tuple[Param, ...], rest: list[str], counts: bool) -> dict[str, Any] | None:
    """The command's parameters from the words after its name; None to decline.
    ``counts``: git's ``-N`` is ``--max-count=N`` (`log`, as its click command reads it)."""
    values: dict[str, Any] = {p[0]: p[3] for p in table}
    by_name: dict[str, tuple[Param, bool]] = {}
    for p in table:
        if p[2] not in ARGS:
            by_name.update({n: (p, True) for n in p[1]})
            by_name.update({n: (p, False) for n in p[4]})
    positional: list[str] = []
    j = 0
    while j < len(rest):
        a = rest[j]
        j += 1
        if a[:1] != "-" or a == "-":
            positional.append(a)
            continue
        if counts and a[1:].isascii() and a[1:].isdigit():
            values["limit"] = int(a[1:])
            continue
        name, eq, inline = a.partition("=") if a.startswith("--") else (a, "", "")
        found = by_name.get(name)
        if found is None:
            return None  # --, -h, --help, an option of another command, -sb, -n3: click's
        (dest, _names, kind, _default, _off), on = found
        if kind == "flag" or kind[:1] == "=":
            if eq:
                return None
            values[dest] = on if kind == "flag" else kind[1:]
            continue
        if eq:
            value = inline
        elif j < len(rest):
            value = rest[j]
            j += 1
        else:
            return None
        if kind == "click" or not _word(value) or (kind == "int" and not _digits(value)):
            return None
        if kind in ("dir", "file") and not _path_passes(value, kind):
            return None
        if kind == "strs":
            values[dest] = (*values[dest], value)
        else:
            values[dest] = int(value) if kind == "int" else value
    for dest, _names, kind, _default, _off in table:
        if kind not in ARGS:
            continue
        if kind in ("args", "args+"):
            if kind == "args+" and not positional:
                return None
            values[dest], positional = tuple(positional), []
        elif positional:
            values[dest] = positional.pop(0)
        elif kind == "arg":
            return None
    return None if positional else values


def fast(args: list[str], *, opened: list[App] | None = None, kept: KeptHome | None = None) -> int | None:
    """Run a command of :data:`COMMANDS` on ``args`` without click when :func:`parse` takes
    them (None: declined); the same output and exit code as the click CLI (:func:`.main.main`),
    exactly one JSON document with ``--json``, and what the command left for after its answer
    run before returning, as there. ``opened`` and ``kept`` as :func:`.main.main`'s: the
    :class:`App` left there for a caller that runs its after-work once the answer is out,
    and the home a kept process keeps open (:func:`.callproc._run`: a served merge's
    arguments, ~1-1.5 ms of click's parse a merge; h-merge6)."""
    parsed = parse(args)
    if parsed is None:
        return None
    words, glob, params = parsed
    import importlib

    from .app import App
    from .output import Output, render_error

    json_mode = bool(glob["json"])
    out = Output(json_mode, stream=sys.stdout)
    out.argv = list(args)
    app = App(glob["home"], glob["vault"], out, kept)
    if opened is not None:
        opened.append(app)
    mod, attr = COMMANDS[words][0].split(":")
    body = getattr(importlib.import_module(f"avfs_git.cli.{mod}"), attr)
    captured = io.StringIO()  # (as main: anything else bound for stdout is not the document)
    if json_mode:
        sys.stdout = captured
    try:
        code = call_body(app, body, params)
    finally:
        if json_mode:
            sys.stdout = out.stream
    if json_mode and not out.emitted:
        from ..core.errors import InternalError

        render_error(
            out,
            InternalError(f"exited {code} without a result", details={"output": captured.getvalue()[-2000:]}),
        )
    if opened is None:  # (else the caller runs it once its answer is out)
        app.run_after()
    return code


def call_body(app: App, body: Any, params: dict[str, Any]) -> int:
    """``body(app, **params)``, its failures answered as the click CLI answers them
    (cli/main.py's ``_run``); the exit code. Also `avfs gc`'s (:mod:`.gccmd`)."""
    from ..core.errors import AvfsError, Interrupted
    from .output import render_error, render_failure

    out = app.output
    try:
        return int(body(app, **params) or 0)  # (a body's own exit code: merge's conflicts)
    except AvfsError as err:
        render_error(out, err)
        return err.exit_code
    except KeyboardInterrupt:
        stop = Interrupted("interrupted", hint="avfs keeps no half-done change: rerun the command")
        render_error(out, stop)
        return stop.exit_code
    except Exception as exc:  # (a reader gone away among them: render_failure)
        return render_failure(out, exc)
