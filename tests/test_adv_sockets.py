"""The mount's sockets a confined command can connect to, from the attacker's side (the
twenty-fifth round, NAME=attack16).

The fsmonitor socket (``avfs-fsmonitor.sock`` in the mount's own directory) is shown inside
the sandbox (git there runs the hook too): what connects to it must never hold the
person's `git status` in that mount, nor grow the mount daemon's threads or descriptors
without bound. Each attack runs from a real confined `proxy exec` in a real mount (overlay
and pure FUSE) while the test acts as the person.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from avfs_git.mount.hooksocket import MAX_OPEN

from .test_adv_gitseal import _git, _script
from .test_adv_gitseal import live as live  # the fixture: both backends
from .waitingexec import exec_argv, running

HELD = 200  # connections the command opens and never writes to

# the command: HELD connections to the daemon's fsmonitor socket that send nothing, one
# that sends a byte every 2 s, kept open until the person says (``release`` in the mount)
_HOLD = """import os, socket, subprocess, time
hook = subprocess.check_output(['git', 'config', 'core.fsmonitor']).decode().strip()
os.chdir(os.path.dirname(hook))  # (an address holds 107 bytes)
held, refused = [], 0
for i in range({held} + 1):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    until = time.monotonic() + 20
    while True:
        try:
            s.connect('avfs-fsmonitor.sock')
            held.append(s)
            break
        except BlockingIOError:
            # a full backlog: a Unix connect with a timeout (O_NONBLOCK) answers EAGAIN at
            # once, it does not wait for the daemon's accept (slow under load): try again
            if time.monotonic() > until:
                refused += 1
                break
            time.sleep(0.01)
        except OSError:
            refused += 1
            break
trickle = held[-1] if held else None
os.chdir({mount!r})
open('started.tmp', 'w').write('%d %d' % (len(held), refused))
os.rename('started.tmp', 'started')
i = 0
while not os.path.exists('release') and i < 1500:
    if trickle is not None and i % 10 == 0:
        try:
            trickle.send(b'a')
        except OSError:
            trickle = None
    time.sleep(0.2)
    i += 1
print('HELD', len(held), 'REFUSED', refused)
"""


def _open(pid: int) -> tuple[int, int]:
    """The mount daemon's open descriptors and threads."""
    return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


def test_connections_a_command_holds_open_never_hold_the_person_s_git_status(
    live: Any, vault: Any, tmp_path: Path
) -> None:
    """The daemon answered one connection at a time and waited up to 10 s for each read
    (mount/hooksocket.py): a confined command that opened connections to the socket and
    sent nothing (or a byte every few seconds) held every `git status` of the person's in
    the mount until the hook gave up after 60 s and answered "/" (git then looked at every
    file). Now one thread serves every connection without blocking, each with a deadline,
    at most ``MAX_OPEN`` open: the hook gets the daemon's own answer while the command holds
    its connections, and the daemon's descriptors stay bounded."""
    mp = Path(live.mountpoint)
    hook = _git("config", "core.fsmonitor", cwd=mp).strip()
    assert os.path.isfile(hook), hook
    _git("status", cwd=mp)  # (the daemon's threads and descriptors at rest, warm)
    fds0, threads0 = _open(live.pid)
    _script(live, "hold.py", _HOLD.format(held=HELD, mount=str(mp)))
    with running([*exec_argv("--no-commit"), "--", "python3", "hold.py"], mp / "started", timeout=300) as run:
        held = (mp / "started").read_text()
        fds, threads = _open(live.pid)
        # the person, meanwhile: the hook as their git runs it, then `git status` itself (each
        # bounded only so that a failure does not hang the suite)
        asked = subprocess.run([hook, "2", ""], cwd=mp, capture_output=True, timeout=300)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=mp, capture_output=True, timeout=300)
        (mp / "release").touch()
        out, err = run.communicate(timeout=300)
    doc = json.loads(out)
    assert doc["result"]["exit_code"] == 0 and "HELD" in doc["result"]["stdout"], (doc["result"], err)
    token = asked.stdout.split(b"\0")[0]
    assert token != b"avfs-ovl:none", ("the hook got no answer from the daemon", asked.stdout[:200])
    assert asked.returncode == 0 and status.returncode == 0, (asked.stderr, status.stderr)
    assert int(held.split()[0]) > MAX_OPEN, held  # (it did hold them: more than the daemon keeps open)
    # bounded: at most MAX_OPEN of the command's connections open in the daemon at a time
    # (the exec's own descriptors and threads beside them: a margin, not a measure)
    assert fds - fds0 <= MAX_OPEN + 32, (fds0, fds, held)
    assert threads - threads0 <= 16, (threads0, threads)
