"""The warm `proxy exec`: a live mount's daemon parses the CLI's arguments (protocol 2),
runs the command in a sandbox it set up before the request came (proxy/standby.py), and
skips the status when the command wrote nothing. Real mounts, real bwrap, real CLI
processes; both mount backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults import audit
from avfs_git.ops import mounts
from avfs_git.proxy import standby

from ..conftest import skip_outside_ci
from ..test_confine import _need_bwrap
from ..waitingexec import exec_argv
from .backends import MOUNTS

DENY_TRUE = """\
version = 1

[[rules]]
name = "no-true"
program = "true"
classes = ["mutating"]
outcome = "deny"
"""

pytestmark = pytest.mark.backends(*MOUNTS)  # the warm path is a mount's daemon


def _avfs(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "avfs_git", "--vault", "v:main", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def _exec(*args: str) -> dict[str, Any]:
    r = _avfs("--json", "proxy", "exec", *args)
    doc = json.loads(r.stdout)
    assert r.returncode == doc["exit_code"], (r.returncode, doc)
    return dict(doc)


def _waiters(daemon_pid: int) -> list[int]:
    """The sandboxes kept ready by a daemon: its bwrap children whose command is the waiter."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == daemon_pid and standby.PERL.encode() in cmd:
            out.append(int(pid))
    return out


def _gone(pid: int) -> bool:
    """No such process, or a zombie (dead: its parent has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped between the lookup and the read
        return True


def _wait_for(pred: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.02)
    return pred()


@pytest.fixture
def live(backend, home, vault):
    _need_bwrap()
    if not standby.available():
        skip_outside_ci(
            f"no {standby.PERL}: no sandbox is kept ready",
            f"{standby.PERL} (Debian's perl-base, essential) must be there in CI",
        )
    w = vault.workspace("main")
    w.write("README.md", b"# proj\n")
    checkpoint.save(vault, name="base")
    info = mounts.mount(home, vault, "main", None, backend=backend)
    assert info.backend == backend
    yield info
    mounts.unmount(home, vault, "main", lazy=True)


def test_a_ready_sandbox_runs_the_next_command_as_bwrap_would(live):
    first = _exec("--", "true")
    assert first["success"] and first["confinement"]["kind"] == "bwrap" and first["mount"]["reused"]
    assert _wait_for(lambda: _waiters(live.pid)), "no sandbox made ready after the first command"
    assert mounts.mount_holders(live.mountpoint) == []  # it waits outside the fork's mount
    # the command replaces the waiter: its cwd, its exact argv and environment, its code
    odd = "new\nline = 'q' $x \\ \N{SNOWMAN}"
    os.makedirs(os.path.join(live.mountpoint, "sub"), exist_ok=True)
    doc = _exec("--cwd", "sub", "--env", f"ODD={odd}", "--env", "EMPTY=", "--",
                "sh", "-c", 'pwd; printf "%s|" "$@" "$ODD" "$EMPTY"; env | sort >&2; exit 7', "sh", "a b", "", odd)  # fmt: skip
    assert doc["exit_code"] == 7 and not doc["success"] and doc["confinement"]["kind"] == "bwrap"
    out = doc["result"]["stdout"]
    assert out == f"{live.mountpoint}/sub\na b||{odd}|{odd}||"
    env = doc["result"]["stderr"]
    assert "ODD=new\n" in env and "EMPTY=\n" in env and f"PWD={live.mountpoint}/sub\n" in env
    assert "SSH_AUTH_SOCK" not in env  # the sandbox's environment rules, as without a ready one
    # a private /tmp, unseen by the next command: each runs in a sandbox of its own
    with open(os.path.join(live.mountpoint, "mk.sh"), "w") as fh:
        fh.write("echo x > /tmp/mine\n")
    assert _exec("--", "sh", "mk.sh")["exit_code"] == 0
    assert "mine" not in _exec("--", "ls", "/tmp")["result"]["stdout"]
    # one command of its own PID namespace: pid 1 or 2 there, never the host's
    pid = int(_exec("--", "sh", "-c", "echo $$")["result"]["stdout"])
    assert pid <= 3


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p in os.listdir("/proc"):
        try:
            with open(f"/proc/{p}/stat", "rb") as fh:
                children.setdefault(int(fh.read().rsplit(b")", 1)[1].split()[1]), []).append(int(p))
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def test_a_ready_sandbox_waits_in_the_perl_that_applied_its_domain(live):
    """A ready sandbox starts one Perl (proxy/landlock.py, ``wrap``'s ``own``): the program
    that applies the Landlock domain runs the waiter itself, where it used to ``exec`` a
    second Perl for it (~2 ms of CPU on every sandbox made ready)."""
    from avfs_git.proxy import landlock

    _exec("--", "true")
    ready = _wait_for(lambda: _waiters(live.pid))
    assert ready

    def perls() -> list[list[bytes]]:
        out = []
        for p in _descendants(ready[0]):
            try:
                with open(f"/proc/{p}/cmdline", "rb") as fh:
                    cmd = fh.read().split(b"\0")
            except OSError:
                continue
            if cmd[0] == standby.PERL.encode():
                out.append(cmd)
        return out

    got = _wait_for(perls)
    assert len(got) == 1, got
    program, args = got[0][2].decode(), got[0][3:]
    assert program.startswith(landlock.APPLY) and standby.WAITER in program  # one process: both
    assert args[:2] == [str(landlock.MADE).encode(), str(landlock.REFER).encode()]
    assert _exec("--", "true")["success"]  # and it serves the next command


def test_a_program_that_cannot_start_is_a_spawn_error_as_without_a_ready_sandbox(live):
    with open(os.path.join(live.mountpoint, "plain.txt"), "w") as fh:
        fh.write("not a program\n")
    cases = (["no-such-program-avfs"], ["./plain.txt"])
    cold = [_exec("--", *argv)["result"] for argv in cases]  # the first, at least, is cold
    assert _wait_for(lambda: _waiters(live.pid))
    for argv, before in zip(cases, cold, strict=True):
        warm = _exec("--", *argv)["result"]
        assert _wait_for(lambda: _waiters(live.pid))
        keys = ("exit_code", "spawn_error", "stderr", "stdout")
        assert {k: warm[k] for k in keys} == {k: before[k] for k in keys}
    assert cold[0]["exit_code"] == 127, cold[0]
    # (and how a project's own program is named: h-polish5's note)
    assert cold[0]["spawn_error"].startswith("no-such-program-avfs: No such file or directory (on no PATH")
    assert cold[1]["exit_code"] == 126 and "Permission denied" in cold[1]["spawn_error"]


def test_unmount_ends_the_ready_sandbox_and_the_daemon(home, vault, live):
    _exec("--", "true")
    ready = _wait_for(lambda: _waiters(live.pid))
    assert ready
    t0 = time.monotonic()
    mounts.unmount(home, vault, "main")
    assert time.monotonic() - t0 < 5  # not the daemon's stop timeout: it ended by itself
    assert _wait_for(lambda: all(_gone(p) for p in [*ready, live.pid]))


def test_a_policy_change_reaches_a_warm_daemon_at_once(home, live):
    assert _exec("--", "true")["decision"]["action"] == "allow"
    path = os.path.join(str(home.path), "policy.toml")
    for text, action in ((DENY_TRUE, "deny"), ("version = 1\n", "allow"), (DENY_TRUE, "deny")):
        with open(path, "w") as fh:  # rewritten at once: no time for a timestamp to move
            fh.write(text)
        doc = _exec("--", "true")
        assert doc["decision"]["action"] == action, doc["decision"]


def test_arguments_the_daemon_leaves_to_the_cli(home, live):
    r = _avfs("proxy", "exec", "--help")
    assert r.returncode == 0 and b"Usage:" in r.stdout
    doc = _exec("--mode", "materialized", "--", "true")
    assert doc["mount"]["mode"] == "materialized" and doc["success"]
    r = _avfs("--json", "proxy", "exec", "--no-such-option", "--", "true")
    bad = json.loads(r.stdout)
    assert r.returncode == 125 and bad["error"]["code"] == "usage" and bad["result"] is None
    # --quiet: the command's own output, as it is
    r = _avfs("proxy", "exec", "--quiet", "--", "sh", "-c", "echo out; echo err >&2; exit 4")
    assert (r.returncode, r.stdout, r.stderr) == (4, b"out\n", b"err\n")
    r = _avfs("proxy", "exec", "--quiet", "--stdin", "--", "cat", stdin=b"fed\n")
    assert (r.returncode, r.stdout) == (0, b"fed\n")


def test_the_warm_call_loads_neither_click_nor_the_click_cli(live):
    """The console script's way (``python -m avfs_git`` enters where it does): a live mount's
    daemon answers before click, cli/main or even cli/execopts is imported (the client's
    built-in modules only: cli/execclient.py)."""
    r = subprocess.run(
        [*exec_argv(python=["-X", "importtime"]), "--", "true"], capture_output=True, timeout=120
    )
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["success"] and doc["mount"]["reused"], doc
    lines = r.stderr.decode().splitlines()
    loaded = {ln.rsplit("|", 1)[-1].strip() for ln in lines if ln.startswith("import time:")}
    assert "avfs_git.cli.execclient" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] == "click" or m == "avfs_git.cli.main") == []
    assert not {"avfs_git.cli.execopts", "avfs_git.core.vaults.registry"} & loaded


def test_a_command_that_writes_nothing_takes_no_status_and_changes_nothing(vault, live):
    # files the mount recorded in earlier checkpoints stay in the upper layer
    doc = _exec("--", "sh", "-c", "mkdir -p d && for i in 1 2 3; do echo $i > d/f$i; done")
    assert len(doc["changes"]) == 3 and doc["commit"] and doc["state"]["uncheckpointed_changes"] == 0
    ws = vault.workspace("main")
    calls: list[int] = []
    for _ in range(2):
        doc = _exec("--", "cat", "d/f1")
        assert doc["changes"] == [] and doc["commit"] is None and doc["checkpoint"] is None
        assert doc["state"]["uncheckpointed_changes"] == 0
        calls.append(len(audit.read(vault.state_dir)))
    assert calls[1] == calls[0] + 1  # the audit record is there when the CLI returns
    # a change made outside a command is still found before the next one (and checkpointed)
    with open(os.path.join(live.mountpoint, "outside.txt"), "w") as fh:
        fh.write("o\n")
    doc = _exec("--", "true")
    assert doc["checkpoint"] and doc["checkpoint"]["reason"] == "uncheckpointed_changes"
    assert doc["changes"] == [] and ws.status() == []


def test_the_count_of_changes_follows_every_writer_without_a_walk(vault, live):
    """On an overlay mount the warm server counts a fork's changes once, then keeps the
    count while the upper layer's journal, the overlay and the ref say nothing moved (a
    command that writes nothing then costs no walk of the upper layer). Every writer must
    still move it: a command, a process in the mount, the CLI, a checkpoint from outside,
    a git commit in the mount."""
    ws = vault.workspace("main")

    def count() -> int:
        doc = _exec("--no-commit", "--", "true")
        assert doc["changes"] == [] and doc["commit"] is None, doc
        n = int(doc["state"]["uncheckpointed_changes"])
        assert n == len(ws.status())  # what a full status says
        return n

    assert count() == 0
    assert count() == 0
    doc = _exec("--no-commit", "--", "sh", "-c", "echo a > a.txt")
    assert [c["path"] for c in doc["changes"]] == ["a.txt"] and doc["state"]["uncheckpointed_changes"] == 1
    assert count() == 1
    with open(os.path.join(live.mountpoint, "b.txt"), "w") as fh:  # a process in the mount
        fh.write("b\n")
    assert count() == 2
    assert _avfs("write", "c.txt", "c").returncode == 0  # the CLI
    assert count() == 3
    os.unlink(os.path.join(live.mountpoint, "a.txt"))
    assert count() == 2
    assert _avfs("checkpoint", "save", "-m", "outside").returncode == 0  # from outside
    assert count() == 0
    with open(os.path.join(live.mountpoint, "README.md"), "a") as fh:
        fh.write("more\n")
    assert count() == 1
    git = ["git", "-C", live.mountpoint, "-c", "user.name=a", "-c", "user.email=a@example.invalid"]
    subprocess.run([*git, "commit", "-qam", "in the mount"], check=True, capture_output=True)
    assert count() == 0


def test_warm_calls_are_served_on_threads_kept_between_them(live):
    """A request, and the watch of its client, runs on a thread an earlier request used
    when one is idle (proxy/workers.py), so what a thread opened (the overlay's SQLite
    connection, the git repository) stays open for the next call. Seen from a command run
    on the host (``--host writable``), which lists the daemon's threads while its request's
    thread is alive: a thread per request shows a new one in every call."""
    seen: set[str] = set()
    new: list[set[str]] = []
    for _ in range(6):
        doc = _exec("--host", "writable", "--", "ls", f"/proc/{live.pid}/task")
        assert doc["exit_code"] == 0, doc
        tids = set(doc["result"]["stdout"].split())
        new.append(tids - seen)
        seen |= tids
    assert new[0]  # (the first call lists the daemon's threads)
    assert set() in new[2:], new  # a later call started no thread: it took kept ones
    # a command run after the mount's threads were kept still gets its own sandbox, as before
    doc = _exec("--", "sh", "-c", "echo $$")
    assert doc["confinement"]["kind"] == "bwrap" and int(doc["result"]["stdout"]) <= 3
