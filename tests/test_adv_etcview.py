"""What of ``/etc`` a root command reads after the sandbox's view of it was made (the
thirty-fourth round, NAME=first9; docs/security.md, "Root-only files of /etc").

The sandbox shows whatever in ``/etc`` another user cannot read empty
(``proxy/sysview.py``). A process that serves many commands (a mount's exec server, the
resident CLI server and the calls it forks) made that view once and kept it while
``/etc``'s own entries stayed: a root-only file made later in a directory of ``/etc`` (the
directory changes, ``/etc`` does not), or a directory of it made root-only by ``chmod``, was
read by the next command. Now the view is checked against every directory of ``/etc``
(their inode and change time) before each sandbox, and made again when one differs.

From the attacker's side: a real confined ``proxy exec`` reads the files, run as root; the
person's side too (a file every user reads, made after the view, is read as it is)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from avfs_git.proxy import standby, sysview

from .contract.test_proxy_exec_warm import _wait_for as _wait_for_ready
from .contract.test_proxy_exec_warm import _waiters
from .etclock import held as etc_held
from .test_adv_etcsecrets import READ
from .test_adv_gitseal import _exec, _script
from .test_adv_gitseal import live as live  # the fixture: a mounted fork, both backends
from .test_adv_hostnet import _root
from .test_cliserver import _answers, _stop_server, _wait_for
from .test_confine import _need_bwrap


@pytest.fixture(autouse=True)
def _etc_changed() -> Iterator[None]:
    """This module's tests change /etc: alone (tests/etclock.py)."""
    with etc_held(alone=True):
        yield


@pytest.fixture
def etcdir() -> Iterator[dict[str, str]]:
    """A directory of the test's own in the host's /etc (every user reads it), holding a
    file every user reads and a subdirectory every user may enter; the paths the test
    makes later in it (none there yet)."""
    _root()
    tag = uuid.uuid4().hex[:12]
    top = f"/etc/avfs-test-{tag}.view"
    os.mkdir(top, 0o755)
    os.chmod(top, 0o755)
    try:
        os.mkdir(os.path.join(top, "sub"), 0o755)
        os.chmod(os.path.join(top, "sub"), 0o755)
        _write(os.path.join(top, "sub", "inner.conf"), f"INNER-{tag}", 0o644)
        _write(os.path.join(top, "old.conf"), f"OLD-{tag}", 0o644)
        _write(os.path.join(top, "kept.conf"), f"KEPT-{tag}", 0o600)  # shown empty from the start
        _settled("/etc", top, os.path.join(top, "sub"))
        yield {
            "tag": tag,
            "old": os.path.join(top, "old.conf"),
            "kept": os.path.join(top, "kept.conf"),  # replaced later, by a rename
            "inner": os.path.join(top, "sub", "inner.conf"),
            "sub": os.path.join(top, "sub"),
            "secret": os.path.join(top, "secret.conf"),  # made later, 0600
            "deep": os.path.join(top, "sub", "deeper", "token"),  # made later, in a new 0700 dir
            "public": os.path.join(top, "new.conf"),  # made later, 0644
        }
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def _set_up(daemon_pid: int) -> bool:
    """Whether a sandbox kept ready by the daemon is set up: its waiter (Perl, which
    bubblewrap starts once every mount is made) runs."""
    waiters = set(_waiters(daemon_pid))
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().split(b"\0")
        except OSError:
            continue
        if cmd[:2] == [standby.PERL.encode(), b"-e"] and _ppid(_ppid(int(pid))) in waiters:
            return True
    return False


def _settled(*dirs: str) -> None:
    """Until the directories' last change is older than what a view keeps
    (``sysview._RACY_NS``): a view made sooner is made again by every call (its next change
    could keep the same change time), and the kept view's check would not be what is tested."""
    last = max(os.lstat(d).st_ctime_ns for d in dirs)
    racy = getattr(
        sysview, "_RACY_NS", 1_000_000_000
    )  # (the round's base has none: its view checks no stamp)
    time.sleep(max(0.0, (last + racy - time.time_ns()) / 1e9 + 0.05))


def _write(path: str, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.write(fd, (text + "\n").encode())
    os.close(fd)
    os.chmod(path, mode)


def _later(p: dict[str, str]) -> None:
    """What the person (root) does after the view was made: a root-only file in a
    directory of /etc, a root-only directory deeper down, a file every user reads."""
    tag = p["tag"]
    _write(p["secret"], f"SECRET-{tag}", 0o600)
    os.mkdir(os.path.dirname(p["deep"]), 0o700)
    _write(p["deep"], f"DEEP-{tag}", 0o644)
    _write(p["public"], f"PUBLIC-{tag}", 0o644)


def _holds(out: str, p: dict[str, str]) -> None:
    tag = p["tag"]
    assert f"SECRET-{tag}" not in out, f"a root-only file made after the view was read: {out}"
    assert f"DEEP-{tag}" not in out, f"a file in a root-only directory made after the view was read: {out}"
    assert f"KEPT-{tag}" not in out and f"RENAMED-{tag}" not in out, (
        f"a replaced root-only file was read: {out}"
    )
    assert f"READ {p['public']} PUBLIC-{tag}" in out, out  # a new config every user reads
    assert f"READ {p['old']} OLD-{tag}" in out, out


def _args(p: dict[str, str]) -> tuple[str, ...]:
    return ("python3", "read.py", p["old"], p["inner"], p["kept"], p["secret"], p["deep"], p["public"])


def test_the_mount_s_server_hides_what_was_made_root_only_after_its_view(
    live: Any, etcdir: dict[str, str]
) -> None:
    """The mount's exec server (warm, with a ready sandbox made after the first command):
    a root-only file made in a directory of /etc, a root-only directory below, a
    directory made root-only by chmod, and a root-only file replaced by a rename, each
    after its view of /etc was made, read empty or not at all by the next command; a new
    file every user reads is read."""
    tag = etcdir["tag"]
    _script(live, "read.py", READ)
    first = _exec(*_args(etcdir))
    assert first["exit_code"] == 0, first["result"]
    assert f"READ {etcdir['inner']} INNER-{tag}" in first["result"]["stdout"], first["result"]
    _later(etcdir)
    again = _exec(*_args(etcdir))
    assert again["exit_code"] == 0, again["result"]
    _holds(again["result"]["stdout"], etcdir)
    os.chmod(etcdir["sub"], 0o700)  # (its own change time moves; no directory's mtime does)
    third = _exec(*_args(etcdir))
    assert third["exit_code"] == 0, third["result"]
    assert f"INNER-{tag}" not in third["result"]["stdout"], third["result"]
    assert f"READ {etcdir['old']} OLD-{tag}" in third["result"]["stdout"], third["result"]
    # a root-only file (shown empty from the start) replaced by a rename, as editors and
    # package managers write, alone: the view made again has the same arguments, but the
    # sandbox made ready before (after the fourth command) lost that mask with the old file
    _settled(os.path.dirname(etcdir["kept"]), etcdir["sub"])
    assert _exec(*_args(etcdir))["exit_code"] == 0
    assert _wait_for_ready(lambda: _set_up(live.pid)), "no sandbox made ready after the fourth command"
    _write(etcdir["kept"] + ".new", f"RENAMED-{tag}", 0o600)
    os.rename(etcdir["kept"] + ".new", etcdir["kept"])
    _settled(os.path.dirname(etcdir["kept"]))
    fifth = _exec(*_args(etcdir))
    assert fifth["exit_code"] == 0, fifth["result"]
    out = fifth["result"]["stdout"]
    assert f"KEPT-{tag}" not in out and f"RENAMED-{tag}" not in out, (
        f"a replaced root-only file was read: {out}"
    )


@pytest.mark.parametrize("server", ["auto", "off"])
def test_a_first_call_hides_what_was_made_root_only_after_the_view(
    home: Any, vault: Any, etcdir: dict[str, str], server: str
) -> None:
    """A fork not mounted, each call its own process: forked by the resident CLI server
    (``auto``: the server made the view as it started, before the files), or with no
    server (``off``: the view the earlier call left in the home). The files made after
    the view are hidden; the new file every user reads is read."""
    _need_bwrap()
    vault.workspace("main").write("read.py", READ.encode())
    env = {**os.environ, "AVFS_SERVER": server}

    def call() -> dict[str, Any]:
        import json

        r = subprocess.run(
            [sys.executable, "-m", "avfs_git", "--vault", "v:main", "--json", "proxy", "exec", "--", *_args(etcdir)],
            capture_output=True, timeout=300, check=False, env=env,
        )  # fmt: skip
        doc = json.loads(r.stdout)
        assert doc["confinement"]["kind"] == "bwrap", doc["confinement"]
        assert doc["exit_code"] == 0, doc
        subprocess.run(
            [sys.executable, "-m", "avfs_git", "--vault", "v:main", "unmount"],
            env=env,
            capture_output=True,
            check=False,
        )
        return dict(doc)

    try:
        call()  # the view made (and, served, the server started: it makes its own)
        if server == "auto":
            _wait_for(lambda: _answers(home.path))
        _later(etcdir)
        _holds(call()["result"]["stdout"], etcdir)
    finally:
        if server == "auto":
            _stop_server(home.path)


def _made_secret_in_place(p: dict[str, str]) -> str:
    """The person (root) makes a file every user read root-only in place (``chmod 600``:
    no directory's change time moves) and writes a secret in it; the secret."""
    secret = f"INPLACE-{p['tag']}"
    os.chmod(p["old"], 0o600)
    with open(p["old"], "w") as fh:
        fh.write(secret + "\n")
    return secret


def test_a_file_made_root_only_in_place_is_hidden_from_the_mount_s_next_command(
    live: Any, etcdir: dict[str, str]
) -> None:
    """The mount's exec server read ``old.conf`` (every user's) into its view; the person
    then ``chmod 600``s it and writes a secret in it: the next command reads it empty (on
    main, in full: the view's check looked at directories only; the thirty-fourth round,
    NAME=attack26)."""
    tag = etcdir["tag"]
    _script(live, "read.py", READ)
    first = _exec(*_args(etcdir))
    assert f"READ {etcdir['old']} OLD-{tag}" in first["result"]["stdout"], first["result"]
    secret = _made_secret_in_place(etcdir)
    again = _exec(*_args(etcdir))
    assert again["exit_code"] == 0, again["result"]
    assert secret not in again["result"]["stdout"], (
        f"a file made root-only in place was read: {again['result']}"
    )
    assert f"READ {etcdir['inner']} INNER-{tag}" in again["result"]["stdout"], again["result"]


def test_a_file_made_root_only_in_place_is_hidden_from_a_cold_call(
    home: Any, vault: Any, etcdir: dict[str, str]
) -> None:
    """The same with no server: the second call's process reads the view the first left
    in the home, and checks it (on main: read in full)."""
    import json

    _need_bwrap()
    vault.workspace("main").write("read.py", READ.encode())
    env = {**os.environ, "AVFS_SERVER": "off"}

    def call() -> str:
        r = subprocess.run(
            [sys.executable, "-m", "avfs_git", "--vault", "v:main", "--json", "proxy", "exec", "--", *_args(etcdir)],
            capture_output=True, timeout=300, check=False, env=env,
        )  # fmt: skip
        doc = json.loads(r.stdout)
        assert doc["confinement"]["kind"] == "bwrap" and doc["exit_code"] == 0, doc
        return str(doc["result"]["stdout"])

    assert f"OLD-{etcdir['tag']}" in call()
    assert os.path.exists(os.path.join(home.path, "run", sysview.VIEW_FILE))
    secret = _made_secret_in_place(etcdir)
    assert secret not in call(), "a file made root-only in place was read"
