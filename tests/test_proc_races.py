"""The suite's own looks at other processes, raced as a loaded machine races them.

A process reaped after ``/proc/PID/stat`` was opened and before it was read makes the read
fail with ESRCH (ProcessLookupError), not ENOENT: a helper that says whether a process is
gone must take that as gone (the last CI failed so in test_proxy's impostor test). Each
helper of that shape is given here a stat opened on a process that is then killed and
reaped before the read.
"""

from __future__ import annotations

import builtins
import importlib
import subprocess
from typing import Any

import pytest

# (module, helper): each says True for a process that is gone or a zombie
GONE_HELPERS = [
    ("tests.test_overlay", "_ended"),
    ("tests.test_proxy", "_pid_gone"),
    ("tests.test_isolate", "_pid_gone"),
    ("tests.contract.test_mount_kept_warm", "_zombie"),
    ("tests.contract.test_proxy_exec_warm", "_gone"),
]


@pytest.mark.parametrize(("module", "name"), GONE_HELPERS)
def test_a_process_reaped_between_its_stat_opened_and_read_is_gone(
    module: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = importlib.import_module(module)
    child = subprocess.Popen(["sleep", "600"])
    stat = f"/proc/{child.pid}/stat"
    raced: list[str] = []
    real_open = builtins.open

    def racing_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        fh = real_open(path, *args, **kwargs)
        if str(path) == stat:  # opened: now it ends and is collected, before the read
            child.kill()
            child.wait()
            raced.append(stat)
        return fh

    # where the helper looks ``open`` up: its module's globals come before the builtins
    monkeypatch.setattr(mod, "open", racing_open, raising=False)
    try:
        assert getattr(mod, name)(child.pid) is True
    finally:
        child.kill()
        child.wait()
    assert raced == [stat]  # the read did come after the reap
