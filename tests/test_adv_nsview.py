"""The hand-made namespace view (``proxy exec --readonly-host``/``--hide-host``, and a
confined command's fallback where a policy says ``confine = "namespace"``) under the
attacks the sandbox's seccomp filter stops (the thirty-sixth round, attack28;
docs/security.md, "The hand-made view, the CLI server, socketcall and kernel interfaces").

bubblewrap loads the filter (``--seccomp``); the view avfs makes itself
(``proxy/isolate.py``: unshare, binds, pivot_root, the capabilities dropped) loaded none.
Found: in such a view a command searched the person's user keyring and read their key,
planted a key of its own there, and made set-id files in the worktree's git dir (a host
directory the view binds writable) and in the fork: ``Seccomp: 0`` in its status. Now
the view loads the same program as it is made (by its init too), with ``no_new_privs``.

Each from inside a real `proxy exec` with a view: a mounted fork (the mount's daemon
serves it, both backends), and a fork with no mount (the CLI makes the view itself).
Then the person looks: their keyring, set-id files under the home and the mount.

And the CLI server (``<home>/run/cli.sock``), which a read-only view shows: a command there
ran avfs through it, outside the view."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from .test_adv_gitseal import _avfs, _script
from .test_adv_gitseal import live as live  # the fixture: both backends
from .test_adv_keyring import _ATTACK as _KEYS
from .test_adv_keyring import _calls
from .test_adv_keyring import _holds as _keys_hold
from .test_adv_keyring import secret as secret  # a key of the person's; the planted one's name
from .test_adv_setid import _ATTACK as _SETID
from .test_adv_setid import _holds as _setid_holds
from .test_adv_setid import _set_id_files
from .test_isolate import _need_namespaces

# the two attacks in one command, then the filter as the kernel reports it
_ATTACK = "python3 keys.py {desc} {planted}; python3 setid.py; grep Seccomp: /proc/self/status"


def _in_view(run: Any, flag: str, at: Path, secret: tuple[str, str, str]) -> dict[str, Any]:
    r = run("--json", "proxy", "exec", flag, "--at", str(at), "--shell",
            _ATTACK.format(desc=secret[0], planted=secret[2]))  # fmt: skip
    doc = json.loads(r.stdout)
    assert doc["confinement"]["kind"] == "namespace", doc["confinement"]
    assert doc["exit_code"] == 0, doc
    return dict(doc)


def _holds(doc: dict[str, Any], secret: tuple[str, str, str], *tops: str) -> None:
    out = doc["result"]["stdout"]
    _keys_hold(out, secret)  # the person's key neither found nor read, none planted
    assert "ADD -1 Function not implemented" in out, out
    _setid_holds(out)  # every set-id spelling refused, openat2 and io_uring too
    found = _set_id_files(*tops)
    assert found == [], f"set-id files the command made: {found}"
    assert "Seccomp:\t2" in out.splitlines(), out  # (filtered: the mode the kernel shows)


@pytest.mark.parametrize("flag", ["--hide-host", "--readonly-host"])
def test_a_mounted_fork_s_view_is_filtered_as_the_sandbox_is(
    live: Any, home: Any, tmp_path: Path, secret: tuple[str, str, str], flag: str
) -> None:
    """The mount's daemon runs the command in the view: the person's keys, set-id files."""
    _need_namespaces()
    _script(live, "keys.py", _KEYS.format(calls=_calls()))
    _script(live, "setid.py", _SETID)
    at = tmp_path / "project"
    at.mkdir()
    doc = _in_view(_avfs, flag, at, secret)
    _holds(doc, secret, home.path, live.mountpoint)


def test_an_unmounted_fork_s_view_is_filtered_as_the_sandbox_is(
    home: Any, vault: Any, tmp_path: Path, secret: tuple[str, str, str]
) -> None:
    """No mount: the CLI's own process makes the view (a mount for the call)."""
    _need_namespaces()
    w = vault.workspace("main")
    w.write("keys.py", _KEYS.format(calls=_calls()).encode())
    w.write("setid.py", _SETID.encode())
    at = tmp_path / "project"
    at.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "avfs_git", "--vault", "v:main", *args],
                              capture_output=True, timeout=300, check=False)  # fmt: skip

    doc = _in_view(run, "--hide-host", at, secret)
    _holds(doc, secret, home.path, str(tmp_path))


# what the command in the read-only view runs: avfs itself, whose call finds the home's CLI
# server at the socket the view shows (read-only, but a socket is connected to, not
# written); the server's child wrote the vault and ran a command on the host, unconfined
_SERVED = """import subprocess, sys
avfs, home, canary = sys.argv[1:4]
def call(*a):
    r = subprocess.run([avfs, "--home", home, "--vault", "v:other", *a], capture_output=True, text=True)
    print(a[0], r.returncode, r.stderr.strip()[-200:].replace("\\n", " "))
call("write", "p.py", f"open({canary!r}, 'w').write('ran')")
call("proxy", "exec", "--host", "writable", "--", "python3", "p.py")
"""


def _avfs_outside_tmp(top: Path) -> str:
    """The avfs the view's command runs: the venv's, or, where the venv or the checkout is
    under /tmp (a fresh clone in CI), which the view makes its own, a launcher in ``top``
    over hard-linked copies of the package and its libraries (the interpreter's own
    files are outside /tmp)."""
    import avfs_git

    pkg = Path(avfs_git.__file__).resolve().parent
    if not any(str(p).startswith("/tmp/") for p in (Path(sys.prefix).resolve(), pkg)):
        return str(Path(sys.executable).parent / "avfs")
    site = next(p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix))
    for src, dst in ((site, top / "lib"), (str(pkg), top / "src" / "avfs_git")):
        dst.parent.mkdir(parents=True, exist_ok=True)
        if subprocess.run(["cp", "-al", src, str(dst)], capture_output=True, check=False).returncode:
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, symlinks=True)  # (another filesystem: copied)
    launcher = top / "avfs"
    python = os.path.realpath(sys.executable)
    assert not python.startswith("/tmp/"), python
    launcher.write_text(f'#!/bin/sh\nPYTHONPATH={top}/src:{top}/lib exec {python} -m avfs_git "$@"\n')
    launcher.chmod(0o755)
    return str(launcher)


def test_a_read_only_view_s_command_has_no_call_run_by_the_cli_server(tmp_path: Path) -> None:
    """``--readonly-host`` shows the avfs home (read-only); the CLI server listening in it
    ran whatever its user's process asked: the command's `avfs write` wrote the vault, its
    `avfs proxy exec --host writable` ran a program on the host (main: both). Now the
    server answers "fall back" to a peer of another PID or mount namespace, and the call
    runs where it was made, in the view: read-only."""
    _need_namespaces()
    # (a home outside /tmp: the view's /tmp is its own)
    top = Path(tempfile.mkdtemp(prefix="avfs-attack28-", dir="/var/tmp"))
    home, canary = top / "home", top / "canary"
    env = {**os.environ, "AVFS_HOME": str(home), "AVFS_SERVER": "auto"}

    def avfs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True,
                              env=env, timeout=300, check=False)  # fmt: skip

    try:
        assert avfs("vault", "create", "v").returncode == 0
        assert avfs("vault", "fork", "v:main", "other").returncode == 0
        assert avfs("--vault", "v:main", "write", "served.py", _SERVED).returncode == 0
        assert avfs("server", "start").returncode == 0
        (top / "project").mkdir()
        r = avfs("--vault", "v:main", "--json", "proxy", "exec", "--readonly-host", "--at", str(top / "project"),
                 "--", "python3", "served.py", _avfs_outside_tmp(top), str(home), str(canary))  # fmt: skip
        doc = json.loads(r.stdout)
        assert doc["confinement"]["kind"] == "namespace" and doc["exit_code"] == 0, (
            doc.get("error"),
            doc.get("result"),
        )
        out = doc["result"]["stdout"]
        assert not canary.exists(), f"the server ran the command's program on the host: {out}"
        listed = avfs("--vault", "v:other", "--json", "ls").stdout
        assert "p.py" not in listed, f"the server wrote the vault for the command: {out}"
        assert "write 0" not in out and "proxy 0" not in out, out
    finally:
        for fork in ("v:main", "v:other"):  # (the mounts the calls made, then their server)
            avfs("unmount", "--lazy", fork)
        avfs("server", "stop")
        shutil.rmtree(top, ignore_errors=True)


def test_the_fallback_view_for_a_confined_command_needs_the_filter(
    home: Any, vault: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where libseccomp is missing (simulated: no program), bwrap's sandbox refuses a
    confined command, and so does the policy's ``confine = "namespace"`` fallback now (on
    main it ran the command in the view, unfiltered, saying nothing of it); a view the
    person asks for (``--hide-host``) still runs, as the guard against accidents it is."""
    from avfs_git.policy import Policy
    from avfs_git.proxy import seccomp
    from avfs_git.proxy.envelope import ExecRequest
    from avfs_git.proxy.execute import execute

    _need_namespaces()
    monkeypatch.setattr(seccomp, "program", lambda: None)
    pol = Policy.from_text('version = 1\n[defaults]\nconfine = "namespace"\n')
    res = execute(home, vault, "main", ExecRequest(argv=("true",), commit=False), policy=pol)
    conf = res.to_dict()["confinement"]
    assert conf is not None and conf["kind"] == "none", conf
    assert "no seccomp filter" in conf["reason"] and res.exit_code == 125 and res.result is None, conf
    at = tmp_path / "project"
    at.mkdir()
    asked = ExecRequest(argv=("true",), commit=False, isolate="hidden", isolate_at=str(at), confine=False)
    res = execute(home, vault, "main", asked, policy=pol)
    assert res.to_dict()["confinement"]["kind"] == "namespace" and res.exit_code == 0, res.to_dict()


# what of avfs's state of the vault the command sees, and a lock of another fork it holds
_STATE = """import fcntl, os, sys
state = sys.argv[1]
print("listed", sorted(os.listdir(state)))
for name in ("audit.ndjson", "oplog.db", "config.json", "locks/other.lock"):
    try:
        with open(os.path.join(state, name), "rb") as fh:
            if name.endswith(".lock"):
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            print("read", name, len(fh.read(1 << 16)))
    except OSError as e:
        print("refused", name, e.strerror)
"""


@pytest.mark.parametrize("flag", ["--hide-host", "--readonly-host"])
def test_a_view_shows_none_of_avfs_s_state_of_the_vault(
    live: Any, vault: Any, tmp_path: Path, flag: str
) -> None:
    """bwrap's sandbox shows ``<vault>/avfs`` empty (the audit and operation logs, the
    locks, other forks' scratch) but for the mount's fsmonitor hook and socket; a view
    showed it whole, read-only (main: the audit log of every command read, another fork's
    lock held for the run). Now masked the same way; git still works there."""
    _need_namespaces()
    _avfs("--vault", "v:other", "write", "o.txt", "other")
    _script(live, "state.py", _STATE)
    at = tmp_path / "project"
    at.mkdir()
    r = _avfs("--json", "proxy", "exec", flag, "--at", str(at), "--shell",
              f"python3 state.py {vault.state_dir}; git status --short; echo v > v.txt;"
              " git add v.txt && git -c user.name=a -c user.email=a@b commit -qm in-view && echo COMMITTED")  # fmt: skip
    doc = json.loads(r.stdout)
    assert doc["confinement"]["kind"] == "namespace" and doc["exit_code"] == 0, doc
    out = doc["result"]["stdout"]
    assert "listed ['mounts', 'seal']" in out.splitlines(), out
    assert "read " not in out, out
    assert "COMMITTED" in out, out
    subjects = subprocess.run(["git", "--git-dir", vault.path, "log", "--format=%s", "main"],
                              capture_output=True, text=True, check=True).stdout.split("\n")  # fmt: skip
    assert "in-view" in subjects, subjects  # (the command's commit, carried back)


@pytest.mark.parametrize("flag", ["--hide-host", "--readonly-host"])
def test_a_view_lists_none_of_the_person_s_keys(
    live: Any, tmp_path: Path, secret: tuple[str, str, str], flag: str
) -> None:
    """The view's fresh ``/proc`` listed in ``keys`` every key the user may view, by its
    description, as the sandbox's did before it masked it (attack24): main listed the
    person's key. Now ``keys`` and ``key-users`` are the view's ``/dev/null``."""
    _need_namespaces()
    at = tmp_path / "project"
    at.mkdir()
    r = _avfs("--json", "proxy", "exec", flag, "--at", str(at), "--shell",
              "cat /proc/keys /proc/key-users; echo END")  # fmt: skip
    doc = json.loads(r.stdout)
    assert doc["confinement"]["kind"] == "namespace" and doc["exit_code"] == 0, doc
    assert secret[0] not in doc["result"]["stdout"], doc["result"]["stdout"]
    assert doc["result"]["stdout"].strip() == "END", doc["result"]
    with open("/proc/keys", encoding="utf-8") as fh:
        assert secret[0] in fh.read()  # (the host lists it: the test's key is there)


# the command's own avfs calls into the home the view shows read-only (attack29)
_READ_ONLY = """import subprocess, sys
avfs, home = sys.argv[1:3]
for a in (["--json", "write", "p.py", "x"], ["--json", "status"], ["write", "p.py", "x"]):
    r = subprocess.run([avfs, "--home", home, "--vault", "v:main", *a], capture_output=True, text=True)
    print("CALL", r.returncode, (r.stdout.strip() or r.stderr.strip()).replace("\\n", " "))
"""


def test_a_read_only_view_s_avfs_call_says_the_home_is_read_only_there(tmp_path: Path) -> None:
    """A command in a ``--readonly-host`` view running avfs on the home the view shows
    (read-only, its vault's ``avfs/`` empty) was told "read-only file system ... use a
    writable --home" (attack28 saw an internal error there): a home the person cannot
    choose from inside the command. Now the hint says the home is read-only inside the
    view and to run avfs outside the command; exit 1, ``read_only``, nothing written."""
    _need_namespaces()
    top = Path(tempfile.mkdtemp(prefix="avfs-attack29-", dir="/var/tmp"))  # (the view's /tmp is its own)
    home = top / "home"
    env = {**os.environ, "AVFS_HOME": str(home), "AVFS_SERVER": "off"}

    def avfs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True,
                              env=env, timeout=300, check=False)  # fmt: skip

    try:
        assert avfs("vault", "create", "v").returncode == 0
        assert avfs("--vault", "v:main", "write", "ro.py", _READ_ONLY).returncode == 0
        (top / "project").mkdir()
        r = avfs("--vault", "v:main", "--json", "proxy", "exec", "--readonly-host", "--at", str(top / "project"),
                 "--", "python3", "ro.py", _avfs_outside_tmp(top), str(home))  # fmt: skip
        doc = json.loads(r.stdout)
        assert doc["confinement"]["kind"] == "namespace" and doc["exit_code"] == 0, doc
        calls = [line for line in doc["result"]["stdout"].splitlines() if line.startswith("CALL ")]
        assert len(calls) == 3, doc["result"]
        for line in calls[:2]:
            err = json.loads(line.split(" ", 2)[2])["error"]
            assert line.startswith("CALL 1 ") and err["code"] == "read_only", line
            assert "--readonly-host" in err["hint"] and "outside" in err["hint"], err
        assert calls[2].startswith("CALL 1 avfs: error: read-only") and "--readonly-host" in calls[2], calls[
            2
        ]
        assert "p.py" not in avfs("--vault", "v:main", "--json", "ls").stdout  # (nothing written)
    finally:
        avfs("unmount", "--lazy", "v:main")
        shutil.rmtree(top, ignore_errors=True)
