"""Every command (listed from the click group itself, so a new one is swept without touching
this file) given the names a demanding user or an agent types by mistake, beyond those
tests/test_json_everypath.py sweeps: a control character, a terminal escape, rich markup,
bytes that are not UTF-8 (``$'\\xff'``: a lone surrogate in Python's argv) and a slash, as
every positional argument and as ``--vault``.

Each answer: an exit code docs/getting-started.md lists (never 70, avfs's own failure), one
JSON document with ``--json``, no Python traceback, the home unchanged when it failed; in
human output the user's text as typed (rich markup escaped, not rendered) and no raw
terminal escape.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import click
import pytest

from . import test_json_everypath as everypath
from .conftest import CliResult
from .test_json_everypath import LEAVES, STREAMS, Seen, _fill, _within, check

Cli = Callable[..., CliResult]
jhome = everypath.jhome  # the same home: vault v, fork main, checkpoint c1

BAD = {
    "control": "a\x01b",
    "escape": "a\x1b[31mb",
    "markup": "[bold]x[/]",
    "not-utf8": "a\udcffb",
    "slash": "a/b",
}
# docs/getting-started.md, "Exit codes"; proxy exec's own (126, 125; 124 and the command's
# own when it ran) in docs/proxy.md
DOCUMENTED = {0, 1, 2, 3, 4, 5, 6, 75, 130}
PROXY_EXEC = {124, 125, 126, 127}
SERVES = {("watch",), ("mcp",), ("server", "start")}


def _answer(cli: Cli, home: str, path: tuple[str, ...], *args: str, state: Seen | None = None) -> None:
    seen: list[CliResult] = []

    def kept(*a: str) -> CliResult:
        seen.append(cli(*a))
        return seen[-1]

    doc = check(kept, home, path, *args, seen=state)  # one document; a failure changed nothing
    r = seen[-1]
    where = f"avfs --json {' '.join(map(repr, args))}: exit {r.code}, {r.out[:300]!r} {r.err[-300:]!r}"
    allowed = DOCUMENTED | (PROXY_EXEC if path == ("proxy", "exec") else set())
    assert r.code in allowed, where
    assert "Traceback" not in r.err, where
    if doc.get("kind") == "error":
        assert doc["error"]["code"] != "internal", where


def _human(cli: Cli, path: tuple[str, ...], value: str, *args: str) -> None:
    """The same call without --json: what the user typed appears as typed."""
    r = _within(60, cli, *args)
    j = _within(60, cli, "--json", *args)
    where = f"avfs {' '.join(map(repr, args))}: exit {r.code}, {r.out[-300:]!r} {r.err[-300:]!r}"
    assert "Traceback" not in r.err, where
    assert "\x1b" not in r.out + r.err, where
    if j.code != 0 and path not in STREAMS:
        message = json.loads(j.out).get("error", {}).get("message", "")
        if value == BAD["markup"] and value in message:
            assert value in r.err, where


# (the commands that serve until stopped: test_json_everypath runs them where they cannot start)
SWEPT = [(p, c) for p, c in LEAVES if p not in SERVES]


@pytest.mark.parametrize(("path", "cmd"), SWEPT, ids=[" ".join(p) for p, _ in SWEPT])
def test_every_command_refuses_bad_names_clearly(
    cli: Cli, jhome: str, path: tuple[str, ...], cmd: click.Command
) -> None:
    state = Seen()  # the home as the last refusal left it (the next call's "before")
    for name, bad in BAD.items():
        _answer(cli, jhome, path, "--vault", bad, *path, *_fill(cmd, "x"), state=state)
        if _fill(cmd, bad):
            _answer(cli, jhome, path, "--vault", "v", *path, *_fill(cmd, bad), state=state)
        if name in ("markup", "escape"):
            _human(cli, path, bad, "--vault", "v", *path, *_fill(cmd, bad))
            state.state = None  # (two calls unchecked: the home walked again)
