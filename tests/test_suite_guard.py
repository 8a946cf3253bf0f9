"""The suite's own guard (tests/conftest.py): a test stopped where Python gives its
traceback no line is reported as a failure, not an INTERNALERROR that ends the run."""

from __future__ import annotations

import sys
import types

from _pytest._code.code import TracebackEntry


def test_a_traceback_entry_without_a_line_is_reported_at_its_frame_s_line() -> None:
    frame = sys._getframe()
    raw = types.SimpleNamespace(tb_lineno=None, tb_frame=frame, tb_lasti=-1, tb_next=None)
    entry = TracebackEntry(raw)  # type: ignore[arg-type]
    assert entry.lineno == frame.f_lineno - 1
    none = types.SimpleNamespace(tb_lineno=None, tb_frame=types.SimpleNamespace(f_lineno=None))
    assert TracebackEntry(none).lineno == 0  # type: ignore[arg-type]
    real = types.SimpleNamespace(tb_lineno=12, tb_frame=frame)
    assert TracebackEntry(real).lineno == 11  # type: ignore[arg-type]
