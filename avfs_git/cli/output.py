"""Rendering: one JSON document on stdout with ``--json``; rich for people otherwise.

rich is imported only when something is rendered for a person (it costs ~40 ms to import),
and everything that is not the command's result (progress, warnings, errors) goes to stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from ..core.types import SCHEMA_VERSION, json_document

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["SCHEMA_VERSION", "Output", "human_size"]


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

            self._out = Console(highlight=False, soft_wrap=True)
        return self._out

    @property
    def err(self) -> Console:
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True, highlight=False, soft_wrap=True)
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

    def info(self, message: str) -> None:
        """A note for a person (stderr); silent in JSON mode."""
        if not self.json:
            self.err.print(message)

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/] {message}", markup=True)

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
            task = bar.add_task(label, total=None)

            def update(done: int, total: int | None, what: str) -> None:
                bar.update(task, completed=done, total=total)

            yield update

    @contextmanager
    def git_progress(self) -> Iterator[Callable[[str, int, int], None] | None]:
        """Bars on stderr for git's transfer phases (counting, compressing, writing,
        receiving, resolving): a callback for :mod:`avfs_git.core.remote`, or None (git then
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


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return str(n)
