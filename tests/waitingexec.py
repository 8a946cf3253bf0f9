"""``avfs proxy exec`` through the CLI, as the tests that act while its command runs start it
(the adversarial tests plant from the command and act as the person meanwhile; the
interrupt tests signal avfs): its arguments, and the call started in the background and
handed to the test once its command says it runs, by a file it makes in the mount."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path


def exec_argv(
    *options: str, vault: str = "v:main", home: str | None = None, python: Sequence[str] = ()
) -> list[str]:
    """``python [PYTHON] -m avfs_git [--home HOME] --vault VAULT --json proxy exec OPTIONS``:
    the caller adds ``--`` and the command."""
    where = ["--home", home] if home is not None else []
    return [
        sys.executable,
        *python,
        "-m",
        "avfs_git",
        *where,
        "--vault",
        vault,
        "--json",
        "proxy",
        "exec",
        *options,
    ]


@contextlib.contextmanager
def running(
    args: list[str], started: str | Path, *, env: dict[str, str] | None = None, timeout: float = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """``args`` (a proxy exec) started with its stdout and stderr piped, yielded once
    ``started`` exists (its command makes that file when it runs; avfs ending first fails
    the test with what it said); killed at the end if it still runs, so a test that fails
    meanwhile leaves no command behind. The test reads the envelope with
    ``communicate()``."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + timeout
        while not os.path.exists(started):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"{started} never appeared: the command did not start"
            time.sleep(0.02)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
