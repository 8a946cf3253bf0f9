"""Colour only for a terminal, and never under NO_COLOR (https://no-color.org): piped or
redirected output carries no escape bytes, from the CLI and from `make demo`'s script."""

from __future__ import annotations

import os
import re
import select
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# an SGR sequence that sets a colour (foreground, background, bright; 38/48 extended)
_COLOUR = re.compile(r"\x1b\[((?:\d+;)*\d+)m")


def _colours(text: str) -> list[str]:
    found = []
    for m in _COLOUR.finditer(text):
        for p in m.group(1).split(";"):
            n = int(p)
            if 30 <= n <= 38 or 40 <= n <= 48 or 90 <= n <= 107:
                found.append(m.group(0))
    return found


def _on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run ``python -m avfs_git ARGS`` with stdout and stderr on a pseudo-terminal; what it
    printed there."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "avfs_git", *args],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            env=env,
        )
        os.close(slave)
        out = b""
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                proc.kill()
                raise AssertionError(f"no output from {args} on the terminal")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(timeout=60) in (0, 1), out
        return out.decode("utf-8", "replace")
    finally:
        os.close(master)


def _changed_vault(cli_proc) -> None:
    assert cli_proc("vault", "create", "p", "--use").code == 0
    assert cli_proc("write", "a.txt", "x\n").code == 0


def test_piped_output_has_no_escape_bytes(cli_proc) -> None:
    _changed_vault(cli_proc)
    for args in (("status",), ("log",), ("diff",), ("checkpoint", "save", "-m", "one"), ("log", "--graph")):
        r = cli_proc(*args)
        assert r.code == 0, r.err
        assert "\x1b" not in r.out and "\x1b" not in r.err, (args, r.out, r.err)


def test_no_color_turns_colour_off_on_a_terminal(cli_proc) -> None:
    _changed_vault(cli_proc)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")}
    env["TERM"] = "xterm-256color"
    coloured = _on_a_terminal(["status"], env)
    assert _colours(coloured), f"a terminal gets colour: {coloured!r}"  # the status letter
    plain = _on_a_terminal(["status"], {**env, "NO_COLOR": "1"})
    assert "a.txt" in plain and _colours(plain) == [], repr(plain)


def test_the_demo_script_piped_has_no_escape_bytes(tmp_path: Path) -> None:
    """`make demo` runs docs/demo.sh; its output redirected to a file is plain text."""
    # as `make demo` runs it: AVFS_BIN the venv's `avfs` (`make install`'s launcher: a
    # served call starts no Python), else a script running this interpreter's avfs
    wrapper = Path(sys.executable).parent / "avfs"
    if not os.access(wrapper, os.X_OK):
        wrapper = tmp_path / "avfs"
        wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m avfs_git "$@"\n')
        wrapper.chmod(0o755)
    # as `make demo` runs it: the home's warm server on (the suite's AVFS_SERVER=off made
    # each of its ~57 calls a cold process: ~15 s of CPU; its trap stops the server)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "AVFS_SERVER")}
    proc = subprocess.run(
        ["bash", str(ROOT / "docs" / "demo.sh")],
        env={**env, "AVFS_BIN": str(wrapper)},
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert b"== Done." in proc.stdout
    assert b"\x1b" not in proc.stdout and b"\x1b" not in proc.stderr
    # every command it shows is one a shell takes back as it ran (it showed `$*`: `-m take
    # the working tree as it was`, `sh -c cd '/mnt' && ...`), the denied exec among them
    shown = [ln[2:] for ln in proc.stdout.decode().splitlines() if ln.startswith("$ ")]
    saved = next(shlex.split(c) for c in shown if "checkpoint save imported" in c)
    assert saved[-3:] == ["imported", "-m", "take the working tree as it was"], saved
    in_mount = [shlex.split(c) for c in shown if c.startswith("sh -c ")]
    assert in_mount and all(len(a) == 3 and a[2].startswith("cd ") for a in in_mount), in_mount
    assert any("proxy exec -- rm -rf /" in c for c in shown), shown
    # what a newcomer met (the twenty-eighth round): `denied: denied: ...`, python's bytecode
    # committed by the proxy exec ("2 changed path(s)", one a .pyc), and `up` run unshown
    text = proc.stdout.decode() + proc.stderr.decode()
    assert "denied: denied" not in text
    assert "exit 0, 1 changed path(s)" in text and ".pyc" not in text
    assert any(" up " in c and "--agent demo-agent" in c for c in shown), shown
