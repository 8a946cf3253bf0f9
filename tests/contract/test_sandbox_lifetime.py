"""No process of a sandbox outlives the mount daemon that made it ready (proxy/standby.py).

A daemon killed while its ready sandbox's bwrap had not yet written its status (the
child's pid, after its clone) left that bwrap's first process waiting for good, parent 1
(ci41): bwrap's write went to a pipe with no reader left, the outer bwrap died of it before
it let its child go on (bubblewrap.c: an eventfd only the outer writes), and that child was
not yet armed to die with it. Here the window is made as wide as a test needs: ``bwrap``
on the daemon's ``PATH`` is a script that holds the ready sandbox's bwrap (found by its
waiter's program) until the test lets it go, then ``exec``\\ s the real one. Each sandbox
process is found by the test's own home in its command line (the sandbox binds the fork's
mount and the vault there), never by another's name. Real CLI calls, a real daemon and
mount, the real bubblewrap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.store.locks import pid_alive
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts
from avfs_git.proxy import confine, keeper, landlock, standby

from ..conftest import skip_outside_ci
from .test_exec_premount import _daemons
from .test_mount_kept_warm import LONG, _env, _listed, _until, cleanup, fork
from .test_proxy_exec_warm import _waiters

pytestmark = pytest.mark.backends("overlay")
__all__ = ["cleanup", "fork"]  # fixtures

# the ready sandbox's bwrap: its command is the waiter (standby.WAITER's first line)
HELD = "my ($go, $rep) = @ARGV;"


def _held_bwrap(tmp_path: Path, real: str, held: str = HELD) -> Path:
    """A ``bwrap`` that holds the ready sandbox's (one whose arguments hold ``held``) until
    ``tmp_path/go`` exists (saying so in ``held.PID``, PID the process that becomes bwrap),
    then runs the real one. Without its owner's mark (proxy/keeper.py): the keeper of the
    killed owner would end it before it starts, and these tests are of what bwrap and the
    sandbox do themselves when it starts after its owner has gone
    (test_sandbox_window.py has the keeper's)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "bwrap"
    script.write_text(
        "#!/bin/sh\n"
        f"case \"$*\" in *'{held}'*)\n"
        # (/proc/PID/environ, where the keeper looks, is the one the process started with)
        f'  [ -z "${{{keeper.NAME}-}}" ] || exec env -u {keeper.NAME} "$0" "$@"\n'
        f'  : > "{tmp_path}/held.$$"\n'
        f'  while [ ! -e "{tmp_path}/go" ]; do sleep 0.01; done\n'
        f'  : > "{tmp_path}/went.$$" ;;\n'
        "esac\n"
        f'exec {real} "$@"\n'
    )
    script.chmod(0o755)
    return bindir


def _first_call(home: Home, backend: str, bindir: Path | None) -> dict[str, Any]:
    env = _env(backend, LONG)
    if bindir is not None:
        env["PATH"] = f"{bindir}:{env.get('PATH', '/usr/bin:/bin')}"
    r = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--home", home.path, "--vault", "v:main", "--json",
         "proxy", "exec", "--", "sh", "-c", "echo one > one.txt"],
        capture_output=True, timeout=120, env=env,
    )  # fmt: skip
    doc = json.loads(r.stdout)
    assert doc["success"] and doc["mount"]["kept_warm"], (doc, r.stderr)
    return dict(doc)


def _sandbox_left(home: Home) -> list[tuple[int, bytes]]:
    """The processes whose command line names this test's home: after its daemon is
    gone, what is left of its sandboxes (a bwrap, the Perl in one)."""
    mark = os.fsencode(home.path)
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if mark in cmd and int(p) != os.getpid():
            out.append((int(p), cmd[:60]))
    return out


def _killed_daemon(home: Home, backend: str) -> None:
    (live,) = _listed(home, backend)
    os.kill(live["pid"], signal.SIGKILL)
    assert _until(lambda: live["pid"] not in _daemons(home))


def _none_left(home: Home) -> None:
    try:
        assert _until(lambda: not _sandbox_left(home)), _sandbox_left(home)
    finally:
        for pid, _ in _sandbox_left(home):  # (this test's own: its home in their command line)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def test_a_daemon_killed_before_its_ready_sandboxs_bwrap_has_started_leaves_nothing(
    backend: str, home: Home, fork: Vault, cleanup: Any, tmp_path: Path
) -> None:
    real = confine.bwrap_path()
    if real is None or not standby.available():
        skip_outside_ci("no bwrap, or no ready sandbox here (/usr/bin/perl)")
    bindir = _held_bwrap(tmp_path, real)
    for _ in range(3):  # (a ready sandbox the daemon ended itself before its kill: again)
        _first_call(home, backend, bindir)
        assert _until(lambda: _marked(tmp_path, "held.")), "no sandbox made ready"
        (held,) = _marked(tmp_path, "held.")
        _killed_daemon(home, backend)
        (tmp_path / "go").touch()  # its bwrap starts now, its daemon gone
        went = _until(lambda h=held: bool(_marked(tmp_path, "went.")) or not pid_alive(h))
        _none_left(home)
        if went and _marked(tmp_path, "went."):
            return
        mounts.unmount(home, fork, "main", lazy=True)
        for f in os.listdir(tmp_path):
            if f.startswith(("held.", "go")):
                os.unlink(tmp_path / f)
    pytest.fail("the ready sandbox's bwrap never started after its daemon was killed")


def _marked(tmp_path: Path, prefix: str) -> list[int]:
    return [int(f[len(prefix) :]) for f in os.listdir(tmp_path) if f.startswith(prefix)]


def test_a_daemon_killed_while_its_ready_sandbox_waits_leaves_nothing(
    backend: str, home: Home, fork: Vault, cleanup: Any
) -> None:
    if confine.bwrap_path() is None or not standby.available():
        skip_outside_ci("no bwrap, or no ready sandbox here (/usr/bin/perl)")
    _first_call(home, backend, None)
    (live,) = _listed(home, backend)
    assert _until(lambda: len(_waiters(live["pid"])) == 1), "no sandbox made ready"
    _killed_daemon(home, backend)
    _none_left(home)


def test_a_caller_killed_before_its_sandboxs_bwrap_has_started_runs_nothing(
    backend: str, home: Home, fork: Vault, cleanup: Any, tmp_path: Path
) -> None:
    """A call that runs its command in a sandbox of its own (``--stdin``: not one set up
    ahead), killed before its bwrap armed ``--die-with-parent``'s signal: that bwrap's
    parent is then PID 1's, nothing would end the command nor time it out. It does not run."""
    real = confine.bwrap_path()
    if real is None or not landlock.available():
        skip_outside_ci("no bwrap, or no Landlock program here (/usr/bin/perl)")
    bindir = _held_bwrap(tmp_path, real, "MARK-HOLD")
    env = _env(backend, LONG)
    env["PATH"] = f"{bindir}:{env.get('PATH', '/usr/bin:/bin')}"
    call = subprocess.Popen(
        [sys.executable, "-m", "avfs_git", "--home", home.path, "--vault", "v:main", "--json",
         "proxy", "exec", "--stdin", "--", "sh", "-c", ": MARK-HOLD; echo ran > ran.txt"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        assert _until(lambda: bool(_marked(tmp_path, "held.")) or call.poll() is not None)
        (held,) = _marked(tmp_path, "held.")
    finally:
        call.kill()
        call.wait()
    (tmp_path / "go").touch()  # its bwrap starts now, the call gone
    assert _until(lambda: bool(_marked(tmp_path, "went.")))
    assert _until(lambda: not pid_alive(held))  # (a bwrap that ran its command: ended with it)
    assert not fork.workspace("main").exists("ran.txt")
