"""Generate the CLI reference (``docs/cli.md``) from click's own command objects.

``python -m avfs_git.cli.docgen > docs/cli.md`` rewrites the reference; a test regenerates it
and compares, so the page cannot drift from ``avfs --help``. Every command and subcommand of
the :class:`~avfs_git.cli.main.LazyGroup` is listed (loading the lazy modules), each with its
usage line, its help text and its options. The output depends only on the command objects:
no terminal width, environment or home is read.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator

import click

from .main import cli

HEADER = """\
# avfs command reference

Generated from the CLI's own command objects by `python -m avfs_git.cli.docgen`; do not edit
by hand (`tests/test_docs.py` checks that this page equals the generator's output). Run
`.venv/bin/python -m avfs_git.cli.docgen > docs/cli.md` after changing a command.

Every command also takes `-h`/`--help`. The global options (`--home`, `--vault`, `--json`)
go *before* the command: `avfs --json --vault proj:agent1 status`. One after it is a usage
error whose hint is the line as it should be (`avfs status --json`: `avfs --json status`),
one JSON document when `--json` was given anywhere.
"""


def _help_text(cmd: click.Command) -> str:
    """The command's help as click shows it: dedented, cut at ``\\f``, without ``\\b`` markers."""
    text = inspect.cleandoc(cmd.help or "")
    text = text.split("\f", 1)[0]
    lines = [line for line in text.splitlines() if line.strip() != "\b"]
    return "\n".join(lines).strip()


def _short_help(cmd: click.Command) -> str:
    """The first sentence of the help (click's short help, never truncated)."""
    if cmd.short_help:
        return cmd.short_help.strip()
    first = " ".join(_help_text(cmd).split("\n\n", 1)[0].split())
    end = first.find(". ")
    return first if end < 0 else first[: end + 1]


def _cell(text: str) -> str:
    """Text made safe for one markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _context(cmd: click.Command, name: str, parent: click.Context | None) -> click.Context:
    return click.Context(cmd, info_name=name, parent=parent, **cmd.context_settings)


def _walk(cmd: click.Command, ctx: click.Context) -> Iterator[tuple[click.Command, click.Context]]:
    """``cmd`` and every subcommand below it, depth first, in the order the group lists them."""
    yield cmd, ctx
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from _walk(sub, _context(sub, name, ctx))


def _options(cmd: click.Command, ctx: click.Context) -> list[tuple[str, str]]:
    """(option spelling, help) of every visible option but the help option."""
    help_names = set(ctx.help_option_names)
    out = []
    for param in cmd.get_params(ctx):
        if not isinstance(param, click.Option) or param.hidden:
            continue
        if help_names & set(param.opts):
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        spelling, text = record
        if not param.is_flag and not param.count and not param.multiple:
            default = param.get_default(ctx, call=False)
            if isinstance(default, (int, float, str)) and not isinstance(default, bool) and default != "":
                text = f"{text}  [default: {default}]".strip()
        out.append((spelling, text))
    return out


def _section(cmd: click.Command, ctx: click.Context) -> str:
    path = ctx.command_path
    level = "#" * min(2 + path.count(" "), 4)
    parts = [f"{level} {path}", ""]
    help_text = _help_text(cmd)
    if help_text:
        parts += [help_text, ""]
    usage = " ".join([path, *cmd.collect_usage_pieces(ctx)])
    parts += ["```", usage, "```", ""]
    options = _options(cmd, ctx)
    if options:
        parts += ["| option | meaning |", "| --- | --- |"]
        parts += [f"| `{_cell(spelling)}` | {_cell(text)} |" for spelling, text in options]
        parts.append("")
    if isinstance(cmd, click.Group):
        subs = [(n, cmd.get_command(ctx, n)) for n in cmd.list_commands(ctx)]
        rows = [(n, c) for n, c in subs if c is not None and not c.hidden]
        if rows:
            parts += ["| command | what it does |", "| --- | --- |"]
            for name, sub in rows:
                anchor = f"{path} {name}".replace(" ", "-")
                parts.append(f"| [`{name}`](#{anchor}) | {_cell(_short_help(sub))} |")
            parts.append("")
    return "\n".join(parts)


def generate() -> str:
    """The whole reference as markdown."""
    root = _context(cli, "avfs", None)
    sections = [HEADER]
    for cmd, ctx in _walk(cli, root):
        sections.append(_section(cmd, ctx))
    return "\n".join(sections).rstrip("\n") + "\n"


def main() -> None:
    sys.stdout.write(generate())


if __name__ == "__main__":
    main()
