"""Matching a compiled grep pattern (:mod:`.greppattern`) against a file's contents, line by
line in the way grep reports them, within a CPU time budget per file.

Each file gets a CPU time budget (``match_timeout_s``, default 5 s); a
search over budget stops with a :class:`UsageError` naming the file. In the main thread
(while nobody else handles ``SIGVTALRM``) it is a ``SIGVTALRM`` interval timer (CPU time,
so a busy machine does not trip it; ``SIGALRM`` is left to others, such as
pytest-timeout): Python's regex engine checks for signals while it backtracks. Anywhere
else (another thread: an embedding server, the MCP server), signals cannot reach the
matching, so a regex search runs in a helper process (``python -I -S``, one per search,
fed the files one by one) that applies the same timer in its own main thread; the helper
is killed if it does not answer within a wall-clock backstop. Fixed strings (``-F``) need
no budget and never use the helper.
"""

from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import InternalError
from .greppattern import Pattern


class MatchTimeout(Exception):
    """A file's match went over its CPU time budget (or the helper's wall-clock backstop)."""


class Budget:
    """Per-file time budget for regex matching (see the module docstring)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.started = 0.0
        self.active = False

    def signal_usable(self) -> bool:
        """Whether the ``SIGVTALRM`` timer can bound a match here: the main thread, and
        nobody else handles the signal."""
        return threading.current_thread() is threading.main_thread() and signal.getsignal(
            signal.SIGVTALRM
        ) in (signal.SIG_DFL, signal.SIG_IGN, None)

    def _tick(self, signum: int, frame: Any) -> None:
        if self.active and self.seconds is not None and time.process_time() - self.started > self.seconds:
            self.active = False
            raise MatchTimeout()

    @contextmanager
    def armed(self) -> Iterator[None]:
        if self.seconds is None or not self.signal_usable():
            yield
            return
        assert self.seconds is not None
        tick = max(0.01, min(0.1, self.seconds / 4))
        old = signal.signal(signal.SIGVTALRM, self._tick)
        signal.siginterrupt(signal.SIGVTALRM, False)  # restart system calls (libgit2 reads)
        signal.setitimer(signal.ITIMER_VIRTUAL, tick, tick)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_VIRTUAL, 0, 0)
            signal.signal(signal.SIGVTALRM, old)
            self.active = False


def match_lines(
    pat: Pattern, data: Any, want_lines: bool, first: bool = False
) -> tuple[int, list[tuple[int, Any]]]:
    """(matching line count, [(line number, line)] when ``want_lines``) of ``data``; with
    ``first``, stop at the first matching line.

    The whole buffer is searched at once (fast for files without a match); a match is then
    checked against its own line, since a match may span lines (``\\s``, ``[^x]``) while
    grep reports lines that hold a match of their own.
    """
    rx: Any = pat.rx
    nl = "\n" if isinstance(data, str) else b"\n"
    n = len(data)
    count = 0
    out: list[tuple[int, Any]] = []
    pos = 0  # always the start of a line
    lineno = 1
    counted_to = 0
    while pos < n:
        m = rx.search(data, pos)
        if m is None:
            break
        s = m.start()
        r = data.rfind(nl, pos, s)
        ls = r + 1 if r >= 0 else pos
        le = data.find(nl, s)
        if le < 0:
            le = n
        if m.end() > le or (s == le and m.end() > s):
            m = rx.search(data, ls, le)
        if m is not None:
            count += 1
            if want_lines:
                lineno += data.count(nl, counted_to, ls)
                counted_to = ls
                out.append((lineno, data[ls:le]))
            if first:
                break
        pos = le + 1
    return count, out


# The helper process that bounds a regex search off the main thread. It gets the pattern on
# its first line (JSON), then each file as a frame (8-byte length, bytes), and answers each
# with b"T" (over budget) or b"R", the count, the number of lines and the lines (number,
# length, bytes). It applies the same SIGVTALRM budget in its own main thread.
_HELPER_MAIN = """
import json, re, signal, struct, sys, time


class _Over(Exception):
    pass


class _Pat:
    def __init__(self, rx):
        self.rx = rx


def main():
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    head = json.loads(inp.readline())
    src = head["pattern"].encode("latin-1") if head["bytes"] else head["pattern"]
    pat = _Pat(re.compile(src, head["flags"]))
    state = {"active": False, "started": 0.0}
    seconds = head["seconds"]

    def tick(signum, frame):
        if state["active"] and time.process_time() - state["started"] > seconds:
            state["active"] = False
            raise _Over()

    signal.signal(signal.SIGVTALRM, tick)
    signal.siginterrupt(signal.SIGVTALRM, False)
    every = max(0.01, min(0.1, seconds / 4))
    signal.setitimer(signal.ITIMER_VIRTUAL, every, every)
    while True:
        size = inp.read(8)
        if len(size) < 8:
            return
        data = inp.read(struct.unpack("<Q", size)[0])
        if head["text"]:
            data = data.decode("utf-8", "surrogateescape")
        try:
            state["started"] = time.process_time()
            state["active"] = True
            count, lines = match_lines(pat, data, head["want_lines"], head["first"])
            state["active"] = False
        except _Over:
            out.write(b"T")
            out.flush()
            continue
        parts = [b"R", struct.pack("<QQ", count, len(lines))]
        for no, line in lines:
            raw = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else bytes(line)
            parts.append(struct.pack("<QQ", no, len(raw)))
            parts.append(raw)
        out.write(b"".join(parts))
        out.flush()


main()
"""


class MatchHelper:
    """A regex search run in a helper process (see the module docstring): for a budget that
    holds off the main thread, where no signal can interrupt the regex engine."""

    def __init__(self, pat: Pattern, seconds: float, want_lines: bool, first: bool) -> None:
        import inspect
        import json

        self.seconds = seconds
        try:
            source = "from __future__ import annotations\n" + inspect.getsource(match_lines)
        except (OSError, TypeError) as exc:  # pragma: no cover - avfs ships its sources
            raise InternalError(f"cannot start the grep helper process: {exc}") from exc
        if not sys.executable:  # pragma: no cover - an embedded interpreter
            raise InternalError("cannot start the grep helper process: no Python executable")
        rx: Any = pat.rx
        src = rx.pattern
        head = {
            "pattern": src.decode("latin-1") if isinstance(src, bytes) else src,
            "bytes": isinstance(src, bytes),
            "flags": rx.flags,
            "text": pat.text,
            "seconds": seconds,
            "want_lines": want_lines,
            "first": first,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", source + _HELPER_MAIN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.out = self.proc.stdout.fileno()
        self._send(json.dumps(head, ensure_ascii=True).encode("ascii") + b"\n")

    def _send(self, data: bytes) -> None:
        try:
            self.stdin.write(data)
            self.stdin.flush()
        except OSError as exc:
            raise self._died(exc) from None

    def _died(self, why: object) -> InternalError:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        err = b""
        if self.proc.stderr is not None:
            try:
                err = self.proc.stderr.read()[-2000:]
            except (OSError, ValueError):
                pass
        self.close()
        return InternalError(
            f"the grep helper process failed ({why}): {err.decode('utf-8', 'replace').strip()}"
        )

    def _read(self, n: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.out], [], [], left)[0]:
                raise MatchTimeout()
            chunk = os.read(self.out, n - len(buf))
            if not chunk:
                raise self._died(f"exit status {self.proc.poll()}")
            buf += chunk
        return bytes(buf)

    def match(self, data: bytes) -> tuple[int, list[tuple[int, bytes]]]:
        """(count, lines) as :func:`match_lines` gives them (lines as bytes); raises
        :class:`MatchTimeout` over budget, or past the wall-clock backstop (the helper is then
        killed)."""
        self._send(struct.pack("<Q", len(data)) + data)
        # the helper measures CPU time; the backstop is for a helper that gets none
        deadline = time.monotonic() + self.seconds * 4 + 10
        try:
            if self._read(1, deadline) == b"T":
                raise MatchTimeout()
            count, nlines = struct.unpack("<QQ", self._read(16, deadline))
            lines: list[tuple[int, bytes]] = []
            for _ in range(nlines):
                no, size = struct.unpack("<QQ", self._read(16, deadline))
                lines.append((no, self._read(size, deadline)))
        except MatchTimeout:
            self.close()
            raise
        return count, lines

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


def decode_line(line: Any, errors: str = "replace") -> str:
    """A matched line as text: bytes that are not UTF-8 as U+FFFD (``errors="replace"``),
    or kept as surrogates (``"surrogateescape"``: to print the bytes as they are)."""
    if isinstance(line, str):
        return (
            line
            if errors == "surrogateescape"
            else line.encode("utf-8", "surrogateescape").decode("utf-8", errors)
        )
    return bytes(line).decode("utf-8", errors)
