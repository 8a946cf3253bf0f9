"""`--json` on every path of every command (docs/cli.md, "--json"): stdout holds exactly one
JSON document with a ``kind``, an error's ``error.code`` and a non-zero exit, and a command
that failed changed nothing in the home.

The commands come from the click group itself, so a command added later is covered without
touching this file; each runs in the situations a caller gets wrong: a missing vault, a
missing fork, bad names (``../x``, a newline, empty, very long) as ``--vault`` and as every
argument, a missing file, an unknown option, a value of the wrong type for each typed option,
``--help``, and (one mount for all of them) a fork whose mount daemon was killed with -9.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import stat
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from avfs_git.cli.main import cli as root
from avfs_git.core.vaults.home import Home
from avfs_git.ops import mounts

from .conftest import AUTHOR, MOUNT_SIDE, POLICY_PATHS, CliResult
from .daemons import wait_gone

Cli = Callable[..., CliResult]

# commands whose stdout is another program's protocol, which --json does not change
OTHER_PROTOCOL = {
    ("hook", "claude"): "answers in Claude Code's hook protocol (docs/hooks.md)",
    ("hook", "codex"): "answers in Codex's hook protocol (docs/hooks.md)",
}
# a non-zero exit that is an answer, not an error: (command, exit code) -> the kind it prints
ANSWERS = {
    (("grep",), 1): "grep",  # no match, as grep(1)
    (("doctor",), 1): "doctor",  # findings (a dead mount among them), docs/maintenance.md
    (("merge",), 3): "merge",  # conflicts are data
}
# commands whose stdout is a stream, a JSON document a line (NDJSON; none when nothing came)
STREAMS = {("watch",): "watch", ("mcp",): "the MCP protocol's messages (docs/mcp.md)"}
BAD_NAMES = {"dotdot": "../x", "newline": "a\nb", "empty": "", "long": "x" * 300}
MISSING_FILE = "nosuch/file.txt"


def _leaves(
    cmd: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None, name
            yield from _leaves(sub, (*path, name))
    else:
        yield path, cmd


def _groups(cmd: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(cmd, click.Group):
        yield path
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            yield from _groups(cmd.get_command(ctx, name) or cmd, (*path, name))


GROUPS = list(_groups(root))
LEAVES = [(p, c) for p, c in _leaves(root) if p not in OTHER_PROTOCOL]
IDS = [" ".join(p) for p, _ in LEAVES]


def _fill(cmd: click.Command, value: str) -> list[str]:
    """``value`` for every positional argument (a choice: its first choice)."""
    args: list[str] = []
    for p in cmd.params:
        if isinstance(p, click.Argument):
            choices = getattr(p.type, "choices", None)
            args.append(str(choices[0]) if choices else value)
    return args


def _typed_options(cmd: click.Command) -> list[tuple[str, str]]:
    """(option, a value of the wrong type) for each option that takes a number or a choice."""
    out = []
    for p in cmd.params:
        if not isinstance(p, click.Option) or p.is_flag or p.count or not p.opts:
            continue
        if isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType, click.Choice)):
            out.append((p.opts[0], "not-a-number"))
    return out


def _mounted(path: str, parent: os.stat_result | None = None) -> bool:
    """Whether ``path`` is a mount point, or a dead one (ENOTCONN: any error of ``stat``).
    ``parent``: the ``stat`` of the directory ``path`` is in, when the caller has it (a walk
    does): then the test is ``os.path.ismount``'s own (another device, or the parent's own
    inode) without its ``realpath`` of the parent, ~3 ms a directory of a home's walk."""
    try:
        os.stat(path)
    except OSError:
        return True
    if parent is None:
        return os.path.ismount(path)
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if stat.S_ISLNK(st.st_mode):
        return False
    return st.st_dev != parent.st_dev or st.st_ino == parent.st_ino


# the tables SQLite keeps for itself that a dump leaves out (sqlite3's iterdump, as the
# shell's .dump): all but the sequence and the planner's statistics
_SQLITE_OWN = ("sqlite_sequence", "sqlite_stat1")


def _db_rows(path: str) -> object:
    """A SQLite database by its schema and its rows, as its dump has them (its pages, free
    lists and WAL may differ): the schema's entries, then each table's rows in the order
    the table gives them, each value by its ``repr`` (an integer is not its float, a text
    not its bytes). Read by the database's own queries, not sqlite3's ``iterdump`` (which
    builds each row's ``INSERT`` statement in SQL and Python: ~3x the CPU, on every walk of
    the home a bad-input sweep makes around each call). The path quoted in the URI: a fork
    named ``a/b`` keeps its state in ``ws/a%2Fb/``, which SQLite read as ``ws/a/b/``."""
    con = sqlite3.connect(f"file:{urllib.parse.quote(os.fsencode(path))}?mode=ro", uri=True)
    try:
        schema = con.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql NOT NULL ORDER BY type, name"
        ).fetchall()
        got: list[object] = [schema]
        for kind, name, _, _ in schema:
            if kind == "table" and (not name.startswith("sqlite_") or name in _SQLITE_OWN):
                quoted = name.replace('"', '""')
                got.append(repr(con.execute(f'SELECT * FROM "{quoted}"').fetchall()))
        return got
    except sqlite3.DatabaseError:  # a damaged one (a test's): by its bytes
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()
    finally:
        con.close()


def _home_state(home: str) -> dict[str, object]:
    """Every file of the home by content (SQLite databases by their rows, not their pages or
    WAL), every directory, and so the refs of every vault (its loose refs and packed-refs
    are files of the home: what `git for-each-ref` lists is theirs, the objects' kinds the
    objects' files; no git process a walk)."""
    state: dict[str, object] = {}
    for top, dirs, files in os.walk(home):
        # not into a mount (a fork's live tree, the layers file system; a dead one: ENOTCONN)
        here = os.stat(top)
        dirs[:] = [d for d in dirs if not _mounted(os.path.join(top, d), here)]
        for d in dirs:
            state[os.path.join(top, d) + "/"] = "dir"
        for f in files:
            p = os.path.join(top, f)
            if f.endswith(("-shm", "-wal", "-journal")) or (top == home and f.endswith(".img")):
                continue  # SQLite's own bookkeeping; the layers file system's image
            if os.path.basename(top) == "locks" and os.path.getsize(p) == 0:
                continue  # an flock's file, made on first use and kept (removing it would race)
            if f.endswith(".db"):
                state[p] = _db_rows(p)
                continue
            try:
                regular = stat.S_ISREG(os.lstat(p).st_mode)  # (a link to a file is not one)
            except OSError:
                regular = False
            if regular:
                with open(p, "rb") as fh:
                    state[p] = hashlib.sha1(fh.read()).hexdigest()
            else:
                state[p] = "special"
    return state


def _changed(before: dict[str, object], after: dict[str, object]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


class Hung(BaseException):
    """Raised by the alarm: not an Exception, so no handler of the CLI's takes it for its own."""


def _within(seconds: int, cli: Cli, *args: str) -> CliResult:
    """A command that never returns (one that serves or follows) fails the test, not the run."""

    def ring(signum: int, frame: object) -> None:
        raise Hung(f"avfs {' '.join(map(repr, args))} still running after {seconds} s")

    saved = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        return cli(*args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, saved)


class Seen:
    """The home's state as the last refused call left it, for a sweep whose calls come one
    after the other with nothing between: that state is the next call's "before" as it is,
    so each call walks the home once (after it), not twice. A call that succeeded (the
    home may have changed, and was not walked) leaves it unknown: the next walks first."""

    def __init__(self) -> None:
        self.state: dict[str, object] | None = None

    def before(self, home: str) -> dict[str, object]:
        state = self.state if self.state is not None else _home_state(home)
        self.state = None  # (until this call is checked a refusal)
        return state


def check(
    cli: Cli,
    home: str,
    path: tuple[str, ...],
    *args: str,
    reaped: tuple[str, ...] = (),
    seen: Seen | None = None,
) -> dict[str, Any]:
    """Run ``avfs --json ARGS``: one document with a kind; an error's code and a non-zero exit;
    a failure leaves the home as it was. Returns the document. ``seen``: the home's state
    before, known from the sweep's call before (nothing else ran since)."""
    before = seen.before(home) if seen is not None else _home_state(home)
    r = _within(60, cli, "--json", *args)
    where = f"avfs --json {' '.join(map(repr, args))}: exit {r.code}, stdout {r.out[:300]!r}, stderr {r.err[-300:]!r}"
    if path in STREAMS and r.code == 0 and "--help" not in args:
        assert all(isinstance(json.loads(line), dict) for line in r.out.splitlines()), where
        return {}
    try:
        doc = json.loads(r.out)  # the whole of stdout: one document, nothing around it
    except ValueError:
        raise AssertionError(f"not one JSON document: {where}") from None
    assert isinstance(doc, dict) and doc.get("schema_version") == 1 and doc.get("kind"), where
    assert r.out.endswith("}\n") and r.out.count("\n") == 1, where
    if doc["kind"] == "error":
        assert r.code != 0 and doc["error"]["code"], where
    if r.code != 0:
        allowed = ANSWERS.get((path, r.code))
        assert doc["kind"] in ("error", "proxy_exec_result", allowed), where
        after = _home_state(home)
        changed = [p for p in _changed(before, after) if not any(r in p for r in reaped)]
        assert not changed, f"the home changed ({changed[:5]}): {where}"
        if seen is not None:
            seen.state = after
    return dict(doc)


@pytest.fixture
def jhome(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A home with vault `v` (fork main, a checkpoint `c1` holding f.txt); the current
    directory an empty project, so a command that reads it (`up`) reads nothing else."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "f.txt", "hi").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "c1").code == 0
    return os.environ["AVFS_HOME"]


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=IDS)
def test_every_command_answers_one_document_in_bad_situations(
    cli: Cli, jhome: str, path: tuple[str, ...], cmd: click.Command
) -> None:
    """Each run's stdin is empty (a command that reads it: `write`, `mcp`, sees end of file)."""
    seen = Seen()
    assert check(cli, jhome, path, *path, "--help", seen=seen)["kind"] == "help"
    check(cli, jhome, path, "--vault", "nosuch", *path, *_fill(cmd, "x"), seen=seen)
    check(cli, jhome, path, "--vault", "v:nosuch", *path, *_fill(cmd, "x"), seen=seen)
    for bad in BAD_NAMES.values():
        check(cli, jhome, path, "--vault", bad, *path, *_fill(cmd, "x"), seen=seen)
        check(cli, jhome, path, "--vault", "v", *path, *_fill(cmd, bad), seen=seen)
    check(cli, jhome, path, "--vault", "v", *path, *_fill(cmd, MISSING_FILE), seen=seen)
    doc = check(cli, jhome, path, "--vault", "v", *path, "--no-such-option", seen=seen)
    assert doc["kind"] in ("error", "proxy_exec_result") and doc["error"]["code"] == "usage", doc
    for option, value in _typed_options(cmd):
        doc = check(cli, jhome, path, "--vault", "v", *path, option, value, *_fill(cmd, "x"), seen=seen)
        assert doc["kind"] in ("error", "proxy_exec_result") and doc["error"]["code"] == "usage", doc


def test_the_home_state_reads_a_slashed_forks_database(home: Home, vault: Any) -> None:
    """A fork named ``a/b`` keeps its state in ``ws/a%2Fb/``: the walk read its database by
    a URI that SQLite decoded to ``ws/a/b/`` ("unable to open database file"), and every
    sweep after a call that made such a fork failed (the MCP sweeps share one home)."""
    vault.fork("main", "a/b")
    vault.workspace("a/b").write("x.txt", b"x")
    dbs = {p: v for p, v in _home_state(home.path).items() if "%2F" in p and p.endswith(".db")}
    assert len(dbs) == 1 and isinstance(next(iter(dbs.values())), list), dbs


def test_a_group_alone_is_a_usage_error(cli: Cli, jhome: str) -> None:
    """`avfs --json vault` (a group with no command): one usage error, as `avfs --json`."""
    assert ("vault",) in GROUPS and () in GROUPS
    seen = Seen()
    for path in GROUPS:
        doc = check(cli, jhome, path, *path, seen=seen)
        assert doc["error"]["code"] == "usage" and doc["error"]["message"] == "Missing command.", (path, doc)


def test_the_commands_are_all_here() -> None:
    """The enumeration sees nested groups (a command added under one is covered)."""
    assert {"status", "vault create", "checkpoint restore", "proxy exec", "remote set-url"} <= set(IDS)
    assert len(IDS) > 60


# what the first command to meet a dead mount clears away (ops/mounts.py): its record, the
# mount point of its lower layer (unmounted), the mount's .git link in the upper layer
REAPED = ("/avfs/mounts/main.", "/avfs/ws/main/lower/", "/avfs/ws/main/upper/.git")


def _dead_mount(home: Home, mp: Path) -> None:
    """Mount fork main of `v` on ``mp`` and kill its daemon with -9 (unless a dead mount's
    record is still there from the last command)."""
    if Path(home.vault("v").state_dir, "mounts", "main.json").exists():
        return
    _unmount_under(mp.parent)
    mp.mkdir(exist_ok=True)
    info = mounts.mount(home, home.vault("v"), "main", str(mp))
    os.kill(info.pid, signal.SIGKILL)
    # our child: collected, not waited for until /proc drops the zombie (it never did, so
    # each mount here cost the whole 10 s)
    assert wait_gone(info.pid), f"the killed mount daemon {info.pid} is still running"


def _unmount_under(root: Path) -> None:
    """Lazily unmount what is mounted under ``root``, deepest first (the overlay backend's
    lower FUSE mount stays behind its dead daemon)."""
    with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as fh:
        points = [ln.split()[1].replace("\\040", " ") for ln in fh]
    for mp in sorted((p for p in points if p.startswith(f"{root}/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True, check=False)


def test_a_killed_mount_daemon(cli: Cli, jhome: str, tmp_path: Path) -> None:
    """Every command on a fork whose mount daemon was killed with -9 (the mount left behind,
    or taken away by the kernel's auto_unmount, and the registry's record of it stale). A
    failing command may clear the dead mount's record away, and nothing else; the next
    command then gets a dead mount of its own."""
    home = Home(jhome, author=AUTHOR, mounts=MOUNT_SIDE, paths=POLICY_PATHS)
    try:
        for path, cmd in LEAVES:
            if path in (("watch",), ("mcp",), ("server", "start")):
                continue  # they serve until stopped: covered above, where they cannot start
            _dead_mount(home, tmp_path / "mnt")
            check(cli, jhome, path, "--vault", "v", *path, *_fill(cmd, "x"), reaped=REAPED)
    finally:
        _unmount_under(tmp_path)
        home.close()
