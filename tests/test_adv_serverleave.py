"""A warm CLI server that leaves (cli/resident.py) while a call connects: the call is run,
never held (the thirty-first round, attack22: docs/security.md).

A server that leaves (`avfs server stop`'s SIGTERM, its code changed, its idle time out)
kept its listening socket open: through its wait for the calls still running (up to 30 s)
and then for as long as it lingered for the mount daemons it had forked (cli/adopted.py):
as long as a mount lives. A call that connected meanwhile sat in the socket's backlog,
its request never read: an `avfs status` waited for ever (attack21 saw an `avfs unmount`
wait 10 minutes so, once). Real processes, the server started as a call starts it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault

from .test_cliserver import (
    _answers,
    _children,
    _end,
    _gone,
    _popen_call,
    _reader,
    _run,
    _server_pid,
    _wait_for,
)
from .test_fuse import require_fuse


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_a_call_made_while_the_server_leaves_runs_and_is_never_held(
    home: Home, vault: Vault, tmp_path: Path
) -> None:
    require_fuse()
    vault.workspace("main").write("a.txt", b"one\n")
    on = {**os.environ, "AVFS_SERVER": "auto"}
    off = {**os.environ, "AVFS_SERVER": "off"}
    _run("status", env=on)  # direct, and starts a server for the next call
    _wait_for(lambda: _answers(home.path))
    server = _server_pid(home.path)
    assert server is not None
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    held = None
    try:
        code, _out, err = _run("mount", str(mnt), env=on)  # its daemon: the server's child
        assert code == 0, err
        mountd = {c for c in _children(server) if _comm(c) == "avfs-mountd"}
        assert mountd, "the mount's daemon is not the server's child"
        held = _popen_call(["write", "late.txt", "--stdin"], on, stdout=subprocess.DEVNULL)
        assert held.stdin is not None
        pipe = os.readlink(f"/proc/self/fd/{held.stdin.fileno()}")
        _wait_for(lambda: _reader(home.path, pipe) is not None)  # the served command runs
        command = _reader(home.path, pipe)
        assert command is not None
        os.kill(server, signal.SIGTERM)
        # it has begun to leave once its spare (forked ahead for the next call) is discarded,
        # the first thing it does; it then waits for the command still running
        _wait_for(lambda: set(_children(server)) == mountd | {command})
        assert _answers(home.path), "the server's socket went before its commands ended"
        try:
            got = subprocess.run(
                [sys.executable, "-m", "avfs_git", "--json", "status"],
                env=on,
                capture_output=True,
                timeout=90,
            )
        except subprocess.TimeoutExpired:
            raise AssertionError("a call made while the server left was held, never answered") from None
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout)["kind"] == "status"
        assert not _gone(command), "the call's command should still run"
        held.stdin.write(b"written while the server left\n")
        held.stdin.close()
        assert held.wait(60) == 0
        assert vault.workspace("main").read("late.txt") == b"written while the server left\n"
        # the server now lingers for the mount's daemon alone, listening no more
        _wait_for(lambda: not _answers(home.path))
        got = subprocess.run(
            [sys.executable, "-m", "avfs_git", "--json", "status"], env=off, capture_output=True, timeout=90
        )
        assert got.returncode == 0, got.stderr
    finally:
        if held is not None:
            _end(procs=(held,))
        subprocess.run(
            [sys.executable, "-m", "avfs_git", "unmount", str(mnt)], env=off, capture_output=True, timeout=120
        )
        _wait_for(lambda: _gone(server), timeout=60)
