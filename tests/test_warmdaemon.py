"""Mount daemons forked from the warm CLI server (cli/warmdaemon.py, fuse/forked.py): a mount
a served command starts gets a daemon that did not exec a new interpreter, that is a clean
process (its own fds only, a session of its own, a new process's signals, cwd /), that
mount --list, unmount, doctor and the registry treat as a daemon while the server is none,
that outlives the server, and that is cleaned up as before when killed; a daemon the server
cannot fork as asked is spawned as before. Real servers, real mounts."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from avfs_git.cli import resident as warm
from avfs_git.core.store.locks import signal_process, start_ticks
from avfs_git.core.vaults import registry
from avfs_git.core.vaults.daemonproc import DAEMON_NAME
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.registry import mounted_at
from avfs_git.core.vaults.vault import Vault

from .conftest import skip_outside_ci
from .test_cliserver import _answers, _run, _server_pid, _wait_for
from .test_confine import _need_bwrap
from .test_overlay import require_overlay


@pytest.fixture
def server(home: Home, vault: Vault) -> Any:
    """(env with the server on, env without it, the server's pid)."""
    require_overlay()
    vault.workspace("main").write("a.txt", b"one\n")
    vault.create_fork("main", "f2")
    on = {**os.environ, "AVFS_SERVER": "auto", "AVFS_VAULT": "v:main"}
    off = {**os.environ, "AVFS_SERVER": "off", "AVFS_VAULT": "v:main"}
    _run("status", env=on)  # direct, and starts a server for the next call
    _wait_for(lambda: _answers(home.path))
    pid = _server_pid(home.path)
    assert pid is not None
    ticks = start_ticks(pid)  # (the server found: by the end it may have ended, its pid another's)
    try:
        yield on, off, pid
    finally:
        for fork in ("main", "f2"):
            _run("unmount", "--lazy", env={**off, "AVFS_VAULT": f"v:{fork}"})
        signal_process(pid, signal.SIGTERM, ticks=ticks)
        _wait_for(lambda: not _answers(home.path))


def _mount(env: dict[str, str], *args: str) -> dict[str, Any]:
    code, out, err = _run("--json", "mount", *args, env=env)
    assert code == 0, err
    mount: dict[str, Any] = json.loads(out)["mount"]
    return mount


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _fds(pid: int) -> dict[int, str]:
    out: dict[int, str] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
    return out


def _watches(pid: int, fd: int) -> frozenset[str]:
    """What inotify descriptor ``fd`` of ``pid`` watches (the inodes, from its fdinfo)."""
    lines = Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines()
    return frozenset(
        " ".join(w for w in ln.split() if w.startswith(("ino:", "sdev:")))
        for ln in lines
        if ln.startswith("inotify")
    )


def _cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def test_a_served_mount_gets_a_clean_daemon_forked_from_the_server(
    server: Any, home: Home, vault: Vault
) -> None:
    on, off, spid = server
    # the caller's own pipes: none may stay open in the daemon
    proc = subprocess.Popen(
        [sys.executable, "-m", "avfs_git", "--json", "mount"],
        env=on,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    pipes = {os.fstat(f.fileno()).st_ino for f in (proc.stdin, proc.stdout, proc.stderr) if f is not None}
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    info = json.loads(out)["mount"]
    pid, mp = info["pid"], info["mountpoint"]
    # no new interpreter: its command line is the server's, its name says what it is
    assert b"avfs_git.cli.resident" in _cmdline(pid)
    assert b"avfs_git.fuse.daemon" not in _cmdline(pid)
    assert Path(f"/proc/{pid}/comm").read_text().strip() == DAEMON_NAME
    assert os.readlink(f"/proc/{pid}/exe") == os.readlink(f"/proc/{spid}/exe")
    # a process of its own: a session neither the server's nor the caller's; its parent the
    # server, the reaper of its descendants (cli/adopted.py), not init: collected when it ends
    assert os.getsid(pid) not in (os.getsid(spid), os.getsid(0), spid)
    assert _status(pid)["PPid"] == str(spid)
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    spawned = _mount({**off, "AVFS_VAULT": "v:f2"})  # (started with exec, to compare)
    assert b"avfs_git.fuse.daemon" in _cmdline(spawned["pid"])
    # its descriptors: /dev/null, its log, and what it opened itself; nothing of the
    # server's (its socket, its code watch, its calls') nor the caller's pipes
    fds = _fds(pid)
    log = registry.log_path(vault.state_dir, "main")
    assert fds[0] == os.devnull and fds[1] == fds[2] == log
    # (sockets and pipes by their inode; an inotify or a pidfd has no number to compare:
    # the daemon's own are counted below)
    shared = {t for t in _fds(spid).values() if t.startswith(("socket:", "pipe:"))}
    assert not shared & set(fds.values()), (fds, shared)
    for target in fds.values():
        if target.startswith("pipe:["):
            assert int(target[6:-1]) not in pipes
    # the server's watch of its code (an inotify, known by what it watches) is not here
    theirs = {_watches(spid, fd) for fd, t in _fds(spid).items() if t == "anon_inode:inotify"}
    assert theirs and all(w for w in theirs)
    assert not theirs & {_watches(pid, fd) for fd, t in fds.items() if t == "anon_inode:inotify"}
    # the signals of a daemon started with exec: the same mask, ignored and caught sets
    mine, theirs = _status(pid), _status(spawned["pid"])
    assert int(mine["SigBlk"], 16) == 0
    for key in ("SigBlk", "SigIgn", "SigCgt"):
        assert mine[key] == theirs[key], key
    # it serves the fork
    assert Path(mp, "a.txt").read_bytes() == b"one\n"


def test_the_forked_daemon_is_a_daemon_and_the_server_is_none(server: Any, home: Home, vault: Vault) -> None:
    on, off, spid = server
    info = _mount(on)
    pid, mp = info["pid"], info["mountpoint"]
    assert b"avfs_git.fuse.daemon" not in _cmdline(pid)  # (forked)
    assert registry.is_mount_daemon(pid)
    assert registry.daemon_alive(pid, "v", home.path, time.time())
    assert not registry.is_mount_daemon(spid)
    assert not registry.daemon_alive(spid, "v", home.path, None)
    # mount --list (served and not) lists it; doctor finds nothing wrong with it
    for env in (on, off):
        code, out, _ = _run("--json", "mount", "--list", env=env)
        assert code == 0
        assert [(m["fork"], m["pid"], m["state"]) for m in json.loads(out)["mounts"]] == [
            ("main", pid, "mounted")
        ]
    code, out, _ = _run("--json", "doctor", env=off)
    assert code == 0 and json.loads(out)["findings"] == [], out
    # the server's end does not take it down
    os.kill(spid, signal.SIGKILL)
    _wait_for(lambda: not os.path.exists(f"/proc/{spid}") or _status(spid)["State"].startswith("Z"))
    Path(mp, "b.txt").write_bytes(b"two\n")
    assert Path(mp, "b.txt").read_bytes() == b"two\n"
    # unmount ends it
    code, _, err = _run("unmount", env=off)
    assert code == 0, err
    _wait_for(lambda: not os.path.exists(f"/proc/{pid}"))
    assert not mounted_at(mp)


def test_a_forked_daemon_killed_is_cleaned_up(server: Any, home: Home, vault: Vault) -> None:
    on = server[0]
    for backend in ("overlay", "fuse"):
        info = _mount(on, "--backend", backend)
        pid, mp = info["pid"], info["mountpoint"]
        assert b"avfs_git.fuse.daemon" not in _cmdline(pid)  # (forked)
        os.kill(pid, signal.SIGKILL)
        _wait_for(lambda pid=pid: not os.path.exists(f"/proc/{pid}"))  # (init reaps it)
        code, out, _ = _run("--json", "mount", "--list", env=on)
        assert code == 0 and json.loads(out)["mounts"] == [], out
        assert not mounted_at(mp)
        assert registry.read_record(registry.record_path(vault.state_dir, "main")) is None
        # and the fork mounts again
        again = _mount(on, "--backend", backend)
        assert Path(again["mountpoint"], "a.txt").read_bytes() == b"one\n"
        code, _, err = _run("unmount", env=on)
        assert code == 0, err


def test_the_first_proxy_exec_on_a_fork_not_mounted_gets_a_forked_daemon(
    server: Any, home: Home, vault: Vault
) -> None:
    """The mount the first served `proxy exec` makes and keeps warm: its daemon forked, the
    command run in it and committed, the mount listed as kept warm and released by unmount."""
    _need_bwrap()
    on = server[0]
    code, out, err = _run("--json", "proxy", "exec", "--", "sh", "-c", "cat a.txt; echo x > x.txt", env=on)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["result"]["stdout"] == "one\n" and doc["commit"] is not None, doc
    assert doc["mount"]["reused"] is False
    (listed,) = json.loads(_run("--json", "mount", "--list", env=on)[1])["mounts"]
    assert listed["kept_warm"] and Path(f"/proc/{listed['pid']}/comm").read_text().strip() == DAEMON_NAME
    assert b"avfs_git.fuse.daemon" not in _cmdline(listed["pid"])  # (forked)
    assert vault.workspace("main").read("x.txt") == b"x\n"
    code, _, err = _run("unmount", env=on)
    assert code == 0, err
    _wait_for(lambda: not os.path.exists(f"/proc/{listed['pid']}"))


def test_a_daemon_the_server_cannot_fork_as_asked_is_spawned(server: Any, home: Home, vault: Vault) -> None:
    """The server loaded libfuse by its soname; a caller naming the library by its path
    gets a daemon spawned with it, as before, and the mount serves."""
    on, _, _ = server
    found = sorted(glob.glob("/usr/lib/*/libfuse3.so.3") + glob.glob("/lib*/libfuse3.so.3"))
    if not found:
        skip_outside_ci("libfuse3.so.3 is not in a library directory here")
    lib = found[0]
    assert b"avfs_git.fuse.daemon" not in _cmdline(_mount(on)["pid"])  # (as asked: forked)
    info = _mount({**on, "FUSE_LIBRARY_PATH": lib, "AVFS_VAULT": "v:f2"})
    assert b"avfs_git.fuse.daemon" in _cmdline(info["pid"])  # spawned
    assert Path(info["mountpoint"], "a.txt").read_bytes() == b"one\n"
    assert registry.is_mount_daemon(info["pid"])


def test_a_process_is_known_by_its_name_or_command_line(tmp_path: Path) -> None:
    """A process named as a mount daemon names itself is one whatever its command line;
    the server, whose command line names avfs and the home, is none."""
    named = subprocess.Popen(
        [sys.executable, "-c", "from avfs_git.fuse.libs import name_process; name_process(); input()"],
        stdin=subprocess.PIPE,
    )
    server = subprocess.Popen(
        [sys.executable, "-c", "input()", "-m", "avfs_git.cli.resident", "--home", str(tmp_path)],
        stdin=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: Path(f"/proc/{named.pid}/comm").read_text().strip() == DAEMON_NAME)
        _wait_for(lambda: b"resident" in _cmdline(server.pid))
        assert registry.is_mount_daemon(named.pid)
        assert registry.daemon_alive(named.pid, "v", str(tmp_path), time.time())
        assert not registry.daemon_alive(named.pid, "v", str(tmp_path), time.time() - 3600)  # a reused pid
        assert not registry.is_mount_daemon(server.pid)
        assert not registry.daemon_alive(server.pid, "v", str(tmp_path), None)
    finally:
        for p in (named, server):
            p.kill()
            p.wait()
            if p.stdin is not None:
                p.stdin.close()


def test_the_server_has_the_daemon_s_modules_and_its_environment_as_it_was(home: Home, vault: Vault) -> None:
    """warmdaemon.load: the daemon's modules imported with libfuse chosen as a daemon's
    environment chooses it, and the server's environment left as it was."""
    code = (
        "import os, sys, json\n"
        "from avfs_git.cli import warmdaemon\n"
        "before = dict(os.environ)\n"
        "choice = warmdaemon.load()\n"
        "print(json.dumps([choice, dict(os.environ) == before, 'avfs_git.fuse.daemon' in sys.modules,"
        " 'mfusepy' in sys.modules]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSE_LIBRARY")}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    choice, same, daemon, mfusepy = json.loads(p.stdout)
    assert choice == ["fuse3", "libfuse3.so.3"] and same and daemon and mfusepy
    assert warm.RUN_DIR  # (the server's module, whose main calls it)


def _ask(home: Home, req: dict[str, Any], nfds: int = 2) -> Any:
    """A daemon request sent to the home's server by hand; its answer."""
    import array
    import marshal
    import socket

    from avfs_git.cli.spare import recv_framed

    r, w = os.pipe()
    log = os.open(os.devnull, os.O_WRONLY)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(30)
        s.connect(warm.socket_path(home.path))
        data = marshal.dumps(req)
        fds = array.array("i", (w, log)[:nfds])
        s.sendmsg([b"%08d" % len(data) + data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        got = recv_framed(s, 0)
        return marshal.loads(got[0]) if got is not None else None
    finally:
        s.close()
        for fd in (r, w, log):
            os.close(fd)


def test_the_server_declines_a_daemon_it_should_not_fork(server: Any, home: Home, vault: Vault) -> None:
    """Bad requests, a libfuse the server did not load, another avfs's stamp: declined with
    the reason (the asker spawns the daemon), no daemon forked; the server goes on but for
    the stamp (its code is not the asker's: it ends, as for a call)."""
    from avfs_git.cli.client import stamp

    from .daemons import of_home

    spid = server[2]
    args = ["--home", home.path, "--vault", "v", "--fork", "main", "--mountpoint", "/nonexistent"]
    good = {"v": 1, "stamp": stamp(), "daemon": args, "env": dict(os.environ), "umask": 0o022}
    assert _ask(home, {**good, "daemon": "not a list"}) == {"fallback": "protocol"}
    assert _ask(home, {**good, "env": {"A": 1}}) == {"fallback": "protocol"}
    assert _ask(home, good, nfds=1) == {"fallback": "protocol"}
    lib = {**good["env"], "FUSE_LIBRARY_NAME": "fuse"}  # (libfuse 2, not what the server loaded)
    assert _ask(home, {**good, "env": lib}) == {"fallback": "libfuse"}
    assert of_home(home.path) == []
    assert _server_pid(home.path) == spid and _answers(home.path)
    code, out, _ = _run("--json", "mount", "--list", env=server[0])
    assert code == 0 and json.loads(out)["mounts"] == []
    assert _server_pid(home.path) == spid  # (served: the same server)
    assert _ask(home, {**good, "stamp": "another avfs"}) == {"fallback": "another avfs"}
    _wait_for(lambda: not _answers(home.path))
    assert of_home(home.path) == []
