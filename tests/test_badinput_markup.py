"""User text holding a backslash before a ``[`` (a file named ``a\\[B]``, a checkpoint
message ``x\\[1]y``) shows as it is in every command's human output: rich takes one backslash
before every ``[`` away, and rich.markup.escape (and avfs's escape, which followed it) adds
backslashes only before a ``[`` that starts a tag, so these showed as ``a[B]`` and ``x[1]y``
(``status``, ``checkpoint list``, ``grep``, a search's snippets...). Both ways of printing
markup are checked: rich's own (a terminal, ``FORCE_COLOR``) and the path without rich
(cli/output.py ``_unmarked``, what a pipe gets, on the click-free commands of cli/fastcli.py
too). docs/security.md, bad input.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import pytest
from rich.markup import render

from avfs_git.cli.output import Output, _unmarked

from .conftest import CliResult

Cli = Callable[..., CliResult]

NAME = "a\\[B]"  # a backslash, then a '[' that starts no tag
TAGGED = "c\\[bold]d"  # a backslash, then what rich reads as a tag
MESSAGE = "x\\[1]y and \\[red]z"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_markup_of_any_value_prints_it_as_it_is_through_rich_and_without_it() -> None:
    """Differential against rich's own rendering: 20,000 values made of backslashes,
    brackets and tag letters, each in a template with tags around it and beside it."""
    rng = random.Random(7)
    wrong = []
    for _ in range(20000):
        value = "".join(rng.choice("\\[]ab/#@B1 ") for _ in range(rng.randint(0, 10)))
        markup = Output.markup("[bold]{}[/] x {} [dim]{}[/]", value, value, value)
        want = f"{value} x {value} {value}"
        plain = _unmarked(markup)
        if render(markup).plain != want or (plain is not None and plain != want):
            wrong.append((value, render(markup).plain, plain))
    assert wrong == [], wrong[:5]  # (main: 623 of 20,000, e.g. '\\[B' shown '[B')


@pytest.mark.parametrize("rich", [False, True], ids=["piped", "rich"])
def test_every_human_path_shows_a_backslash_before_a_bracket(cli: Cli, rich: bool) -> None:
    env = {"FORCE_COLOR": "1"} if rich else None

    def run(*args: str) -> str:
        r = cli("--vault", "v", *args, env=env)
        assert r.code == 0, (args, r.code, r.err)
        return ANSI.sub("", r.out + r.err)

    assert cli("vault", "create", "v").code == 0
    assert NAME in run("write", NAME, "q\\[B] one\n")
    assert TAGGED in run("write", TAGGED, "t\n")
    assert "c1" in run("checkpoint", "save", "-m", MESSAGE, "c1")
    run("write", NAME, "q\\[B] two\n")
    for args, want in [
        (("status",), NAME),
        (("status", "-s"), NAME),
        (("diff", "--stat"), '"' + NAME.replace("\\", "\\\\") + '"'),  # (git's core.quotePath quoting)
        (("ls",), NAME),
        (("ls",), TAGGED),
        (("tree",), NAME),
        (("stat", NAME), NAME),
        (("log", "-n", "1"), MESSAGE),
        (("show", "HEAD"), MESSAGE),
        (("checkpoint", "list"), MESSAGE),
        (("grep", "two"), f"{NAME}:q\\[B] two"),
        (("find", "--name", "a*"), NAME),
    ]:
        out = run(*args)
        assert want in out, (args, want, out)
    assert "renamed" in run("mv", NAME, "b\\[B]") and "b\\[B]" in run("ls")
    assert "b\\[B]" in run("rm", "b\\[B]")
