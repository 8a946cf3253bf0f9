"""``avfs proxy exec`` through the CLI, as the tests that act while its command runs start it
(the adversarial tests plant from the command and act as the person meanwhile; the
interrupt tests signal avfs): its arguments, and the call started in the background and
handed to the test once its command says it runs, by a file it makes in the mount."""

from __future__ import annotations

import contextlib
import os
import shlex
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


def held_editor(
    where: Path, *, writes: str | None = None, marks: str | Path | None = None
) -> tuple[str, Path]:
    """A ``GIT_EDITOR`` for the person's `git commit`, kept open across a run, and the file
    that lets it go (made by the test once the run has ended). It makes ``marks`` first (a
    file the command can wait for: the person's git is running), waits for the release,
    then writes ``writes`` as the message (None: none, the commit aborts). Open as long as
    the test says, not for a fixed time that a run on a loaded machine could outlast (60 s
    at most: a test that fails never leaves it behind). The script goes into ``where``."""
    release = where / "editor-release"
    script = where / "held-editor.sh"
    mark = "" if marks is None else f": > {shlex.quote(str(marks))}\n"
    msg = "" if writes is None else f'echo {shlex.quote(writes)} > "$1"\n'
    wait = f"i=0; while [ ! -e {shlex.quote(str(release))} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n"
    script.write_text(f"#!/bin/sh\n{mark}{wait}{msg}")
    script.chmod(0o755)
    return shlex.quote(str(script)), release
