"""Rendering: one JSON document on stdout with ``--json``; rich for people otherwise.

rich is imported only when something is rendered for a person where a style shows (it costs
~20-40 ms to import): a line without markup, and on a stream that is not a terminal a line
with the plain styles' markup, is printed as rich prints it without it (:meth:`Output.say`).
Everything that is not the command's result (progress, warnings, errors) goes to stderr.

Text for people is printed in one way only: a template the code wrote (rich markup in
:meth:`Output.say`, plain text in :meth:`Output.plain`) and the values that fill its ``{}``
fields. Every value is shown as it is (:func:`.text.shown` quotes control characters) and,
where rich renders, escaped, so a ``[red]`` or ``[id]`` in a path, a message or an error is
printed, never read as markup. Nothing is formatted into a template before it gets here.
"""

from __future__ import annotations

import codecs
import os
import re
import string
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from ..core.types import SCHEMA_VERSION, json_document
from .text import shown

if TYPE_CHECKING:
    from rich.console import Console

    from ..core.errors import AvfsError

__all__ = ["SCHEMA_VERSION", "Output", "human_size", "render_error", "rich_escape", "shown"]


_PARSER = string.Formatter()
# what rich reads as a tag (rich.markup.RE_TAGS): ahead, with backslashes before it; at a "["
_TAG_AHEAD = re.compile(r"\\*\[[a-z#/@]")
_TAG_AT = re.compile(r"\[[a-z#/@][^[]*?]")
_OPENING = re.compile(r"(\\*)\[")


def _field(value: Any, spec: str) -> str:
    if isinstance(value, str):
        return format(shown(value), spec)
    return shown(format(value, spec))


def _fill(template: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, bool]]:
    """``template`` split into (literal text, False) and (shown field value, True) chunks."""
    chunks: list[tuple[str, bool]] = []
    auto = 0
    for literal, name, spec, conversion in _PARSER.parse(template):
        if literal:
            chunks.append((literal, False))
        if name is None:
            continue
        if name == "":
            name, auto = str(auto), auto + 1
        value, _ = _PARSER.get_field(name, args, kwargs)
        if conversion:
            value = _PARSER.convert_field(value, conversion)
        chunks.append((_field(value, _PARSER.vformat(spec or "", args, kwargs)), True))
    return chunks


# rich's markup tags (rich.markup.RE_TAGS) and the styles avfs's templates use
_RICH_TAG = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")
_STYLES = frozenset({"bold", "dim", "italic", "red", "green", "yellow", "cyan", "magenta", "blue"})


def _unmarked(markup: str) -> str | None:
    """What rich prints for ``markup`` where it renders no style (a stream that is not a
    terminal): its text, the tags gone, escapes read as rich.markup.render reads them; None
    where the markup is not that simple (a tag but a plain style's, a closing tag that
    closes nothing: rich's own error), for rich to render."""
    out: list[str] = []
    open_tags: list[str] = []
    pos = 0
    for m in _RICH_TAG.finditer(markup):
        full, escapes, tag = m.groups()
        start, end = m.span()
        if start > pos:
            out.append(markup[pos:start].replace("\\[", "["))
        pos = end
        backslashes, escaped = divmod(len(escapes), 2)
        out.append("\\" * backslashes)
        if escaped:
            out.append(full[len(escapes) :])
            continue
        if tag.startswith("/"):
            name = tag[1:]
            if name and name not in open_tags:
                return None
            if not open_tags:
                return None
            del open_tags[len(open_tags) - 1 - open_tags[::-1].index(name) if name else -1]
        elif tag in _STYLES:
            open_tags.append(tag)
        else:
            return None
    out.append(markup[pos:].replace("\\[", "["))
    return "".join(out)


def _styled(stream: Any) -> bool:
    """Whether rich would render styles on ``stream`` (rich.console.Console.is_terminal: the
    environment's TTY_COMPATIBLE and FORCE_COLOR, a notebook, the stream a terminal)."""
    if "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ:
        return True
    import builtins

    if hasattr(builtins, "get_ipython"):
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:
        return False


def _escaped(chunks: list[tuple[str, bool]]) -> str:
    """rich markup from chunks: fields escaped so rich prints them as they are (a tag-like
    ``[...]`` gets a backslash; backslashes that would then escape a following tag are
    doubled, as rich.markup.escape does, but only where a tag does follow)."""
    out = ""
    for text, is_field in reversed(chunks):
        if is_field:
            text = rich_escape(text)
            if text.endswith("\\") and _TAG_AHEAD.match(out):
                body = text.rstrip("\\")
                text = body + "\\" * (2 * (len(text) - len(body)))
            elif text.endswith("\\") and out.startswith("["):
                text += "\\"  # (rich takes one backslash before any '[' away)
        out = text + out
    return out


def rich_escape(text: str) -> str:
    """``text`` as rich markup that rich prints as it is. A tag-like ``[...]`` gets a
    backslash, and the backslashes before it are doubled (rich.markup.escape's rule); and,
    what that leaves out, a ``[`` that starts no tag gets one more backslash where
    backslashes come before it: rich takes one backslash before every ``[`` away (a file
    named ``a\\[B]`` or a message ``x\\[1]y`` was shown ``a[B]``, ``x[1]y``)."""

    def one(m: re.Match[str]) -> str:
        slashes = m.group(1)
        if _TAG_AT.match(text, m.end() - 1):
            return slashes * 2 + "\\["
        return slashes + "\\[" if slashes else "["

    return _OPENING.sub(one, text) if "[" in text else text


class Output:
    def __init__(self, json_mode: bool, stream: TextIO | None = None) -> None:
        self.json = json_mode
        self.stream: TextIO = stream if stream is not None else sys.stdout
        self._out: Console | None = None
        self._err: Console | None = None
        self.emitted = False
        self.argv: list[str] = []

    @property
    def out(self) -> Console:
        if self._out is None:
            from rich.console import Console

            # markup and emoji only where a template asks (say): a ":bug:" in a name stays text
            self._out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
        return self._err

    def document(self, kind: str, data: dict[str, Any]) -> None:
        """Print the one JSON document of this command."""
        self.stream.write(json_document(kind, data))
        self.stream.flush()
        self.emitted = True

    def result(self, kind: str, data: dict[str, Any], human: Callable[[], None] | None = None) -> None:
        """The command's result: JSON in JSON mode, else whatever ``human`` prints."""
        if self.json:
            self.document(kind, data)
        elif human is not None:
            human()

    @staticmethod
    def markup(template: str, /, *args: Any, **kwargs: Any) -> str:
        """rich markup: ``template`` (markup the code wrote) with its ``{}`` fields filled
        by ``args``/``kwargs``, each shown as text (quoted, escaped), never as markup."""
        return _escaped(_fill(template, args, kwargs))

    def say(self, template: str = "", /, *args: Any, err: bool = False, **kwargs: Any) -> None:
        """Print one line for a person through rich (see :meth:`markup`); ``err``: stderr.
        A template with no markup and no tab is printed as rich would print it (its text as
        it is: soft wrap, no highlighting, no emoji), without importing rich (~18 ms of a
        cold process's CPU: `avfs write`'s, `unmount`'s, `vault fork`'s one line)."""
        stream = sys.stderr if err else sys.stdout
        if "[" not in template and "\t" not in template:
            stream.write(self.text(template, *args, **kwargs) + "\n")
            stream.flush()
            return
        made = self._err if err else self._out
        if made is None and "\t" not in template and not _styled(stream):
            # markup where no style shows (piped: an agent's, the suite's): its text as rich
            # prints it, without importing rich (`status`'s and `log`'s lines)
            text = _unmarked(self.markup(template, *args, **kwargs))
            if text is not None:
                stream.write(text + "\n")
                stream.flush()
                return
        console = self.err if err else self.out
        console.print(self.markup(template, *args, **kwargs), markup=True, emoji=False)

    @staticmethod
    def text(template: str, /, *args: Any, **kwargs: Any) -> str:
        """Plain text: ``template`` with its fields filled by values shown as text."""
        return "".join(text for text, _ in _fill(template, args, kwargs))

    def line(self, template: str, /, *args: Any, **kwargs: Any) -> None:
        """One line for a person on stdout, as :meth:`say` prints a ``template`` without
        markup, tabs or emoji codes, without rich: a cold `avfs gc`'s answer (importing
        rich for it was ~20-30 ms of that process's CPU)."""
        self.raw(self.text(template, *args, **kwargs) + "\n")

    def plain(self, template: str = "", /, *args: Any, err: bool = False, **kwargs: Any) -> None:
        """Print one plain line (no rich: tabs and spacing as written, for scripts too), its
        fields filled by values shown as text (control characters quoted). As ``click.echo``
        prints it, without importing click where that is a plain write (a stream of a
        non-ASCII encoding, no escape sequence for click to strip)."""
        text = self.text(template, *args, **kwargs)
        stream = sys.stderr if err else sys.stdout
        encoding = getattr(stream, "encoding", None)
        if "\x1b" not in text and encoding and codecs.lookup(encoding).name != "ascii":
            stream.write(text + "\n")
            stream.flush()
            return
        import click

        click.echo(text, err=err)

    def raw(self, data: str, *, err: bool = False) -> None:
        """Content printed as it is, with no quoting and no newline added: a file's lines
        (grep's matches, as ``cat`` shows them), a patch, a document another tool reads."""
        stream = sys.stderr if err else self.stream
        try:
            stream.write(data)
        except UnicodeEncodeError:  # a file's undecodable bytes (surrogates): the bytes as they are
            stream.flush()
            buffer = getattr(stream, "buffer", None)
            if buffer is None:
                raise
            buffer.write(data.encode("utf-8", "surrogateescape"))
        stream.flush()

    def info(self, template: str, /, *args: Any, **kwargs: Any) -> None:
        """A note for a person (stderr; see :meth:`markup`); silent in JSON mode."""
        if not self.json:
            self.say(template, *args, err=True, **kwargs)

    def warn(self, template: str, /, *args: Any, **kwargs: Any) -> None:
        """A warning (stderr), in JSON mode too."""
        self.say("[yellow]warning:[/] " + template, *args, err=True, **kwargs)

    @contextmanager
    def progress(self, label: str) -> Iterator[Callable[[int, int | None, str], None]]:
        """A progress bar on stderr (only when stderr is a terminal)."""
        if not sys.stderr.isatty():
            yield lambda done, total, what: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.err,
            transient=True,
        ) as bar:
            task = bar.add_task(self.markup("{}", label), total=None)

            def update(done: int, total: int | None, what: str) -> None:
                bar.update(task, completed=done, total=total)

            yield update

    @contextmanager
    def git_progress(self) -> Iterator[Callable[[str, int, int], None] | None]:
        """Bars on stderr for git's transfer phases (counting, compressing, writing,
        receiving, resolving): a callback for :mod:`avfs_git.core.operations.remote`, or None (git then
        reports nothing) when stderr is not a terminal. ``AVFS_PROGRESS=always`` forces the
        bars (e.g. under a tool that captures stderr), ``never`` turns them off."""
        mode = os.environ.get("AVFS_PROGRESS", "auto")
        if mode == "never" or (mode != "always" and not sys.stderr.isatty()):
            yield None
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True, force_terminal=True) if mode == "always" else self.err
        with Progress(
            TextColumn("{task.description:<20}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            tasks: dict[str, Any] = {}

            def update(phase: str, done: int, total: int) -> None:
                task = tasks.get(phase)
                if task is None:
                    task = tasks[phase] = bar.add_task(phase, total=total)
                bar.update(task, completed=done, total=total)

            yield update


def render_error(out: Output, err: AvfsError) -> None:
    """``err`` as one JSON error document (``--json``) or a line on stderr."""
    if out.json:
        if not out.emitted:
            out.document("error", {"error": err.to_dict()})
        return
    msg = out.text("avfs: error: {}", err.message)
    if err.hint:
        msg += out.text("\n  hint: {}", err.hint)
    sys.stderr.write(msg + "\n")


def render_failure(out: Output, exc: Exception) -> int:
    """The answer of a command that raised ``exc``, something not an avfs error (called in
    its ``except``; the click CLI's and gc's path without click share it): a reader that
    went away (``BrokenPipeError``: `avfs cat big | head`) is not an error of ours, stdout
    goes to /dev/null and the exit is 0; anything else is an internal error, rendered
    (raised again with ``AVFS_DEBUG``). The stream is ``out``'s: under ``--json``
    ``sys.stdout`` is the command's capture, which has no descriptor (found by review43:
    `avfs --json watch | head` ended in a traceback, exit 1)."""
    if isinstance(exc, BrokenPipeError):
        try:
            fd = out.stream.fileno()
        except (AttributeError, OSError, ValueError):
            return 0  # (a stream of no descriptor: nothing is left to flush into the pipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
        return 0
    from ..core.errors import unexpected

    internal = unexpected(exc)
    render_error(out, internal)
    if os.environ.get("AVFS_DEBUG"):
        raise exc
    return internal.exit_code


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return str(n)
