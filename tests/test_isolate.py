"""`proxy exec --isolate`: the fork mounted at the project's own path in a private mount
namespace (real namespaces, real FUSE mounts), the host writable, read-only or hidden.

Only the fallback (namespaces unavailable) and a failing set-up are simulated, by
monkeypatching :mod:`avfs_git.proxy.isolate` (its probe, its in-child set-up step); every
other test makes real namespaces and mounts.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts
from avfs_git.proxy import isolate, linuxns, runner
from avfs_git.proxy.envelope import ExecRequest, ExecResult
from avfs_git.proxy.execute import execute
from avfs_git.proxy.options import request_from

from .conftest import git
from .test_fuse import require_fuse
from .test_json_schemas import validate


def _need_namespaces() -> None:
    why = isolate.unavailable()
    if why is not None:
        pytest.fail(f"mount namespaces must be available for these tests: {why}")


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    """The project's directory on the host, where every fork appears in its view."""
    p = tmp_path / "proj"
    p.mkdir()
    (p / "host.txt").write_text("the host's own file\n")
    return p


@pytest.fixture
def forks(home, vault) -> Iterator[Any]:
    require_fuse()
    _need_namespaces()
    main = vault.workspace("main")
    main.write("shared.txt", b"in every fork\n")
    checkpoint.save(vault, name="base")
    for name in ("a", "b"):
        vault.create_fork("main", name)
        vault.workspace(name).write("who.txt", f"fork {name}\n".encode())
        checkpoint.save(vault, name)
    yield vault
    for name in ("main", "a", "b"):
        mounts.unmount(home, vault, name, lazy=True)


def _run(home: Any, vault: Any, fork: str, shell: str, **kw: Any) -> ExecResult:
    return execute(home, vault, fork, ExecRequest(shell=shell, **kw))


def _host_files(p: Path) -> set[str]:
    return {str(f.relative_to(p)) for f in p.rglob("*")}


def _pid_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped between the lookup and the read
        return True


@pytest.fixture
def outside() -> Iterator[Path]:
    """A host directory outside /tmp (the views give /tmp a private tmpfs)."""
    d = Path(tempfile.mkdtemp(prefix="avfs-isolate-", dir="/var/tmp"))
    d.chmod(0o755)
    (d / "keep.txt").write_text("host\n")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_two_forks_at_one_path_each_see_and_change_their_own(home, forks, proj):
    vault = forks
    heads = {f: vault.workspace(f).base for f in ("a", "b")}
    results: dict[str, ExecResult] = {}
    # overlapping in time: each sees its own fork at the same absolute path
    script = (
        f"cat {proj}/who.txt > {proj}/seen.txt; sleep 0.5; echo $AVFS_VAULT > {proj}/mine.txt;"
        f" ls {proj} > {proj}/listing.txt; pwd"
    )

    def go(fork: str) -> None:
        results[fork] = _run(home, vault, fork, script, isolate="writable", isolate_at=str(proj))

    threads = [threading.Thread(target=go, args=(f,)) for f in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for fork in ("a", "b"):
        res = results[fork]
        assert res.success, res.to_dict()
        assert res.to_dict()["isolation"] == {
            "requested": True,
            "active": True,
            "path": str(proj),
            "host": "writable",
            "method": "mount_namespace",
            "reason": None,
        }
        assert res.result is not None and res.result.stdout == f"{proj}\n"
        assert res.mount is not None and res.mount.mountpoint != str(proj)
        assert {c.path for c in res.changes} == {"seen.txt", "mine.txt", "listing.txt"}
        assert res.commit is not None and res.commit.parent == heads[fork]
        ws = vault.workspace(fork)
        assert ws.read("seen.txt") == f"fork {fork}\n".encode()
        assert ws.read("mine.txt") == f"v:{fork}\n".encode()
        # the other fork's files, and the host's, were not there
        assert ws.read("listing.txt").decode().split() == [
            "listing.txt",
            "mine.txt",
            "seen.txt",
            "shared.txt",
            "who.txt",
        ]
        assert git("--git-dir", vault.path, "rev-parse", fork).strip() == res.commit.commit
    assert _host_files(proj) == {"host.txt"}  # the host's directory is untouched
    assert not vault.workspace("main").exists("mine.txt")


def test_materialized_copy_is_shown_at_the_path_too(home, vault, proj):
    _need_namespaces()
    res = _run(
        home, vault, "main", f"echo made > {proj}/made.txt", mode="materialized", isolate="writable",
        isolate_at=str(proj),
    )  # fmt: skip
    assert res.success and res.isolation is not None and res.isolation.active, res.to_dict()
    assert res.to_dict()["changes"] == [{"path": "made.txt", "status": "added"}]
    assert vault.workspace("main").read("made.txt") == b"made\n"
    assert _host_files(proj) == {"host.txt"}


def test_readonly_host_refuses_writes_outside_with_erofs(home, forks, proj, outside):
    vault = forks
    probe = (
        "import errno, sys\n"
        "try:\n"
        f"    open({str(outside / 'new.txt')!r}, 'w')\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n"
        "else:\n"
        "    print('written')\n"
    )
    # the policy refuses a visible write outside the workspace: a script in the fork hides it
    vault.workspace("a").write("probe.py", probe.encode())
    res = execute(
        home, vault, "a",
        ExecRequest(argv=("python3", "probe.py"), isolate="readonly", isolate_at=str(proj)),
    )  # fmt: skip
    assert res.result is not None and res.result.stdout == "EROFS\n", res.to_dict()
    assert res.isolation is not None and res.isolation.active and res.isolation.host == "readonly"
    assert sorted(os.listdir(outside)) == ["keep.txt"]
    # the fork is writable; /tmp is a private tmpfs; the vault stays writable (git works)
    marker = f"/tmp/avfs-isolate-{os.getpid()}"
    writes = (
        f"open({marker!r}, 'w').write('t'); print(open({marker!r}).read())\n"
        "try:\n"
        f"    open({str(outside / 'x.txt')!r}, 'w')\n"
        "except OSError as e:\n"
        "    print(e.strerror)\n"
    )
    # as above: the policy would refuse the visible write outside, so a checkpointed script
    vault.workspace("a").write("writes.py", writes.encode())
    checkpoint.save(vault, "a")
    res = _run(
        home, vault, "a", f"echo w > {proj}/w.txt && git status --porcelain && python3 writes.py",
        isolate="readonly", isolate_at=str(proj),
    )  # fmt: skip
    assert res.result is not None, res.to_dict()
    assert res.result.stdout == "?? w.txt\nt\nRead-only file system\n", res.to_dict()
    assert res.to_dict()["changes"] == [{"path": "w.txt", "status": "added"}] and res.commit is not None
    assert not os.path.exists(marker) and sorted(os.listdir(outside)) == ["keep.txt"]
    assert _host_files(proj) == {"host.txt"}
    # a root command cannot remount its way out
    escape = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "rc = libc.mount(None, b'/', None, ctypes.c_ulong(32 | 4096), None)  # MS_REMOUNT | MS_BIND, rw\n"
        "print(rc, os.strerror(ctypes.get_errno()))\n"
    )
    res = execute(home, vault, "a", ExecRequest(argv=("python3", "-c", escape), isolate="readonly",
                  isolate_at=str(proj), commit=False))  # fmt: skip
    assert res.result is not None and res.result.stdout == "-1 Operation not permitted\n", res.to_dict()
    assert sorted(os.listdir(outside)) == ["keep.txt"]


def test_hide_host_shows_only_the_system_and_the_fork(home, forks, proj, outside, tmp_path):
    vault = forks
    (tmp_path / "secret.txt").write_text("s\n")
    # the policy refuses a visible write to $HOME (outside the workspace): a script hides it
    vault.workspace("b").write("home.sh", b'echo h > "$HOME/h.txt" && ls -A "$HOME"\n')
    vault.workspace("b").write("root.sh", b"touch /newfile 2>&1; test -d /proc/1 && echo PROC\n")
    res = _run(
        home, vault, "b",
        f"ls /; test -e {outside}/keep.txt && echo OUTSIDE; test -e {tmp_path}/secret.txt && echo SECRET;"
        f" test -e /work && echo WORK; ls -A /tmp | grep -v '^{tmp_path.parts[2]}$';"
        " sh home.sh;"
        f" head -c 4 /dev/zero | wc -c; echo home=$HOME; cat /etc/passwd > /dev/null && echo ETC;"
        f" echo made > {proj}/made.txt; cat {proj}/who.txt",
        isolate="hidden", isolate_at=str(proj), env=(("HOME", "/home/agent"),),
    )  # fmt: skip
    assert res.success, res.to_dict()
    assert res.isolation is not None and res.isolation.active and res.isolation.host == "hidden"
    out = res.result.stdout.splitlines() if res.result else []
    top = set(out[: out.index("h.txt")])
    assert {"usr", "etc", "dev", "proc", "tmp", "home"} <= top
    assert not {"var", "work", "root", "srv", "opt", "sys"} & top, top
    assert "OUTSIDE" not in out and "SECRET" not in out and "WORK" not in out
    assert out[out.index("h.txt") + 1 :] == ["4", "home=/home/agent", "ETC", "fork b"]
    assert res.to_dict()["changes"] == [{"path": "made.txt", "status": "added"}]
    assert vault.workspace("b").read("made.txt") == b"made\n"
    assert _host_files(proj) == {"host.txt"} and not os.path.exists("/home/agent/h.txt")
    # the root of the view is read-only; /proc is there (a fresh one, of the view's PID namespace)
    res = _run(home, vault, "b", "sh root.sh",
               isolate="hidden", isolate_at=str(proj), commit=False)  # fmt: skip
    assert res.result is not None and "Read-only file system" in res.result.stdout
    assert "PROC" in res.result.stdout


_ESCAPES = (
    # each line: a way to the host's files through /proc, tried from inside the view
    "import os, sys\n"
    "target = sys.argv[1]\n"
    "for pid in [str(os.getppid()), '1', *sorted(p for p in os.listdir('/proc') if p.isdigit())]:\n"
    "    for way in ('root', 'cwd'):\n"
    "        try:\n"
    "            open(f'/proc/{pid}/{way}{target}-{way}', 'w').write('escaped')\n"
    "            print('ESCAPED', pid, way)\n"
    "        except OSError:\n"
    "            pass\n"
    "print('pids', sorted(int(p) for p in os.listdir('/proc') if p.isdigit()), 'ppid', os.getppid())\n"
)


@pytest.mark.parametrize("host", ["readonly", "hidden"])
def test_the_host_is_not_reachable_through_proc(home, forks, proj, outside, host):
    """Regression: with the host's /proc, /proc/$PPID/root was the host's writable root
    (the review's isolate_escape.py). Now the command has a PID namespace and a fresh /proc:
    the processes there are the view's init and the command's own."""
    vault = forks
    target = str(outside / "host-written")
    vault.workspace("a").write("esc.py", _ESCAPES.encode())
    res = _run(home, vault, "a", f"python3 esc.py {target}; echo $$",
               isolate=host, isolate_at=str(proj), commit=False)  # fmt: skip
    assert res.success and res.result is not None, res.to_dict()
    out = res.result.stdout.splitlines()
    assert not [line for line in out if line.startswith("ESCAPED")], out
    assert out[-1] == "2" and out[-2] == "pids [1, 2, 3] ppid 2", out  # init, sh, python3
    assert sorted(os.listdir(outside)) == ["keep.txt"]
    assert _host_files(proj) == {"host.txt"}


def test_root_in_a_view_keeps_few_capabilities_and_the_vault_only_what_git_needs(home, forks, proj):
    """Regression: a root command kept every capability but CAP_SYS_ADMIN (mknod worked),
    and the whole vault was writable (a hook written there runs on the host later)."""
    vault = forks
    vp = vault.path
    probe = (
        "import os\n"
        "caps = {l.split(':')[0]: int(l.split()[1], 16) for l in open('/proc/self/status') if l.startswith('Cap')}\n"
        "print('bnd', sorted(c for c in range(64) if caps['CapBnd'] >> c & 1))\n"
        "print('inh', caps['CapInh'], 'amb', caps['CapAmb'])\n"
        f"for p in ('hooks/post-update', 'config.new', 'avfs/x', 'description', 'objects/node'):\n"
        "    try:\n"
        f"        os.mknod(os.path.join({vp!r}, p), 0o20666, os.makedev(1, 3)) if p == 'objects/node' "
        f"else open(os.path.join({vp!r}, p), 'w').write('x')\n"
        "        print(p, 'written')\n"
        "    except OSError as e:\n"
        "        print(p, e.strerror)\n"
        "print(sorted(os.listdir('/dev')))\n"
    )
    vault.workspace("a").write("probe.py", probe.encode())
    checkpoint.save(vault, "a")
    for host in ("readonly", "hidden"):
        res = _run(home, vault, "a", "python3 probe.py", isolate=host, isolate_at=str(proj), commit=False)
        assert res.success and res.result is not None, res.to_dict()
        out = res.result.stdout.splitlines()
        assert out[0] == f"bnd {sorted(isolate.KEPT_CAPS)}" and out[1] == "inh 0 amb 0", (host, out)
        assert not {21, 27, 19, 2, 17, 16} & isolate.KEPT_CAPS  # SYS_ADMIN MKNOD PTRACE ...
        assert out[2:7] == [
            "hooks/post-update Read-only file system",
            "config.new Read-only file system",
            "avfs/x Read-only file system",
            "description Read-only file system",
            "objects/node Operation not permitted",  # writable for git, but no CAP_MKNOD
        ], (host, out)
        devs = eval(out[7])  # no disks, no /dev/mem: the minimal /dev
        assert set(devs) <= {*isolate.DEV_NODES, "fd", "stdin", "stdout", "stderr", "ptmx", "shm", "pts"}
    assert not os.path.exists(os.path.join(vp, "hooks", "post-update"))
    assert not os.path.exists(os.path.join(vp, "objects", "node"))
    # git works in the fork: status, add, commit (objects, refs, logs, the worktree's index)
    mounts.mount(home, vault, "a", None)  # a live mount: its worktree stays registered
    # the policy judges paths it sees: a script hides the write to what git trusts there, and
    # to the hook config.worktree names (in the mount's own directory, read-only here);
    # HEAD is git's to move in there (a rebase detaches it): put back after the run
    vault.workspace("a").write(
        "pin.sh",
        b'for f in config.worktree commondir "$(git config core.fsmonitor)"; do'
        b' case $f in /*) ;; *) f="$(git rev-parse --git-dir)/$f";; esac; echo evil > "$f"'
        b' 2>/dev/null && echo "WRITTEN $f"; done; echo PINNED\n'
        b'printf "ref: refs/heads/main\\n" > "$(git rev-parse --git-dir)/HEAD"\n',
    )
    checkpoint.save(vault, "a")
    wt = Path(vp) / "worktrees" / "avfs-a"
    hook = Path(vault.state_dir) / "mounts" / "a.d" / "fsmonitor-hook"
    hook_before = hook.read_bytes()
    res = _run(
        home, vault, "a",
        f"cd {proj} && echo g > g.txt && git add g.txt && git commit -q -m 'by git in the view'"
        " && git log -1 --format=%s && git status --porcelain && sh pin.sh",
        isolate="readonly", isolate_at=str(proj), env=tuple((f"GIT_{w}_{k}", v) for w in ("AUTHOR", "COMMITTER")
                                                     for k, v in (("NAME", "A"), ("EMAIL", "a@b.invalid"))),
    )  # fmt: skip
    assert res.result is not None and res.result.exit_code == 0, res.result.stderr
    assert res.result.stdout.splitlines() == ["by git in the view", "PINNED"], res.to_dict()
    assert "by git in the view" in git("--git-dir", vp, "log", "--format=%s", "a")
    assert hook.read_bytes() == hook_before
    assert (wt / "config.worktree").read_text().count(str(hook)) == 1
    assert (wt / "HEAD").read_text() == "ref: refs/heads/a\n"  # put back after the run


def test_exit_status_signals_and_strays_pass_through_the_views_init(home, forks, proj):
    vault = forks
    secs = f"100.{os.getpid()}1"
    res = _run(home, vault, "a", f"sleep {secs} & exit 3", isolate="readonly", isolate_at=str(proj),
               commit=False, kill_grace_ms=300)  # fmt: skip
    assert res.result is not None and res.result.exit_code == 3, res.to_dict()
    assert res.result.stray_processes_killed and not _running(b"sleep\0" + secs.encode())
    # one that left the process group (setsid) is stopped with the namespace too
    res = _run(home, vault, "a", f"setsid sleep {secs} & sleep 0.2; echo out", isolate="hidden",
               isolate_at=str(proj), commit=False, kill_grace_ms=300)  # fmt: skip
    assert res.result is not None and res.result.exit_code == 0 and res.result.stdout == "out\n"
    assert res.result.stray_processes_killed and not _running(b"sleep\0" + secs.encode())
    res = execute(home, vault, "a", ExecRequest(argv=("python3", "-c", "import os; os.kill(os.getpid(), 9)"),
                  isolate="hidden", isolate_at=str(proj), commit=False))  # fmt: skip
    assert res.result is not None and (res.result.exit_code, res.result.signal) == (137, "SIGKILL")
    res = _run(home, vault, "a", "echo fine", isolate="readonly", isolate_at=str(proj), commit=False)
    assert res.success and not res.result.stray_processes_killed, res.to_dict()
    res = _run(home, vault, "a", "x", isolate="readonly", isolate_at=str(proj), commit=False)
    assert res.result is not None and res.result.exit_code == 127, res.to_dict()
    res = execute(home, vault, "a", ExecRequest(argv=("no-such-program-x",), isolate="hidden",
                  isolate_at=str(proj), commit=False))  # fmt: skip
    assert res.result is not None and res.result.exit_code == 127 and res.result.spawn_error, res.to_dict()


def test_a_pid_namespace_view_that_fails_to_set_up_runs_nothing(home, vault, proj, tmp_path, monkeypatch):
    """Simulated, as above, but the set-up fails in the namespace's init (not the child)."""
    _need_namespaces()

    def broken(s: Any, v: Any) -> None:
        raise OSError(errno.ENOENT, "mount proc: No such file or directory")

    monkeypatch.setattr(isolate, "_enter", broken)
    marker = tmp_path / "ran"
    # the policy refuses a visible write outside the workspace: a script in the fork hides it
    vault.workspace("main").write("probe.py", f"open({str(marker)!r}, 'w')\n".encode())
    for host in ("readonly", "hidden"):
        res = execute(home, vault, "main", ExecRequest(argv=("python3", "probe.py"),
                      isolate=host, isolate_at=str(proj), mode="materialized"))  # fmt: skip
        assert res.exit_code == 125 and res.result is None and not marker.exists(), res.to_dict()
        assert res.error is not None and res.error.code == "isolation_failed", res.to_dict()
        assert res.isolation is not None and "mount proc: No such file" in res.isolation.reason


def _running(cmdline: bytes) -> list[int]:
    """Host pids of live (not zombie) processes whose command line is ``cmdline`` (NUL-joined):
    a PID namespace's own numbers mean nothing out here."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                if fh.read().rstrip(b"\0") != cmdline:
                    continue
            if not _pid_gone(int(name)):
                found.append(int(name))
        except OSError:
            continue
    return found


def test_timeout_inside_an_isolated_command_stops_its_group(home, forks, proj):
    vault = forks
    secs = f"100.{os.getpid()}"  # a command line no other process has
    res = _run(
        home, vault, "a", f"sleep {secs} & sleep {secs}",
        isolate="readonly", isolate_at=str(proj), timeout_ms=700, commit=False,
    )  # fmt: skip
    assert res.exit_code == 124 and res.result is not None and res.result.timed_out, res.to_dict()
    assert res.isolation is not None and res.isolation.active
    assert res.result.signal == "SIGTERM", res.result  # TERM reached the command (no KILL after the grace)
    deadline = time.monotonic() + 5
    while _running(b"sleep\0" + secs.encode()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(b"sleep\0" + secs.encode()), (
        "a background child outlived the timeout in the namespace"
    )


def test_origin_dir_is_the_default_path_and_bad_paths_are_refused(home, vault, proj, tmp_path):
    _need_namespaces()
    res = _run(home, vault, "main", "pwd", isolate="writable", mode="materialized")
    assert res.exit_code == 125 and res.result is None and res.error is not None
    assert res.error.code == "usage" and "--at" in (res.error.hint or "")
    vault.set_config(origin={"dir": str(proj)})  # what `avfs up DIR` records
    res = _run(home, vault, "main", "pwd", isolate="readonly", mode="materialized")
    assert res.success and res.result is not None and res.result.stdout == f"{proj}\n", res.to_dict()
    for at, host in (("relative/dir", "writable"), ("/", "hidden"), (str(tmp_path / "missing"), "writable"),
                     ("/usr/lib", "hidden")):  # fmt: skip
        bad = _run(home, vault, "main", "true", isolate=host, isolate_at=at, mode="materialized")
        assert bad.exit_code == 125 and bad.error is not None and bad.error.code == "usage", (at, host)
    # a path missing on the host is fine where the view makes it
    res = _run(
        home, vault, "main", "pwd", isolate="hidden", isolate_at="/srv/nowhere/proj", mode="materialized"
    )
    assert res.success and res.result is not None and res.result.stdout == "/srv/nowhere/proj\n"
    assert not os.path.exists("/srv/nowhere")


def test_unavailable_namespaces_fall_back_to_the_plain_mount(home, vault, proj, monkeypatch):
    """Simulated: the probe (the decision `isolate.unavailable()` rests on) is replaced."""
    monkeypatch.setattr(isolate, "_probe", lambda: "not root, and user namespaces are not available here")
    res = _run(home, vault, "main", "pwd; echo x > x.txt", isolate="hidden", isolate_at=str(proj),
               mode="materialized")  # fmt: skip
    assert res.success, res.to_dict()
    assert res.to_dict()["isolation"] == {
        "requested": True,
        "active": False,
        "path": str(proj),
        "host": "hidden",
        "method": None,
        "reason": "not root, and user namespaces are not available here",
    }
    assert res.result is not None and res.mount is not None
    assert res.result.stdout.strip() == res.mount.mountpoint  # the plain copy
    assert res.to_dict()["changes"] == [{"path": "x.txt", "status": "added"}] and res.commit is not None
    # the policy judged the command from where it really runs: the project's path is the host
    denied = _run(home, vault, "main", f"rm -rf {proj}/host.txt", isolate="hidden", isolate_at=str(proj),
                  mode="materialized")  # fmt: skip
    assert denied.exit_code == 126 and denied.result is None
    assert (proj / "host.txt").exists()


def test_a_view_that_fails_to_set_up_runs_nothing(home, vault, proj, tmp_path, monkeypatch):
    """Simulated: the set-up step in the child fails (as a broken mount would)."""
    _need_namespaces()

    def broken(s: Any, v: Any) -> None:
        raise OSError(errno.ENOENT, "mount --bind: No such file or directory")

    monkeypatch.setattr(isolate, "_enter", broken)
    marker = tmp_path / "ran"
    # the policy refuses a visible write outside the workspace: a script in the fork hides it
    vault.workspace("main").write("probe.py", f"open({str(marker)!r}, 'w')\n".encode())
    res = execute(home, vault, "main", ExecRequest(argv=("python3", "probe.py"),
                  isolate="writable", isolate_at=str(proj), mode="materialized"))  # fmt: skip
    assert res.exit_code == 125 and res.result is None and not marker.exists()
    assert res.error is not None and res.error.code == "isolation_failed", res.to_dict()
    assert res.isolation is not None and not res.isolation.active
    assert "No such file or directory" in res.isolation.reason


def test_the_probe_and_a_user_namespace_for_non_root(tmp_path):
    """The real probe passes here as root; as `nobody` the same views are made in a user
    namespace (its own ids mapped, no capabilities left for the command)."""
    assert linuxns._probe.__wrapped__() is None  # type: ignore[attr-defined]
    assert isolate.method() == "mount_namespace"
    base = Path(tempfile.mkdtemp(prefix="avfs-userns-", dir="/var/tmp"))
    try:
        base.chmod(0o755)
        src = base / "fork"
        src.mkdir()
        (src / "f.txt").write_text("fork\n")
        at = base / "proj"
        at.mkdir()
        (at / "host.txt").write_text("host\n")
        os.chown(src, 65534, 65534)
        code = (
            "import json, os, sys\n"
            "from avfs_git.proxy import isolate, linuxns, runner\n"
            "linuxns._sys(); isolate._program()  # (nobody cannot import from root's Python)\n"
            "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
            "out = {'why': linuxns._probe(), 'method': isolate.method()}\n"
            "for host in isolate.HOSTS:\n"
            f"    v = isolate.plan({str(src)!r}, {str(at)!r}, host, '', (), '/home/nobody')\n"
            "    assert v.seccomp, 'the view loads the sandbox filter'\n"
            "    r = runner.run(['/bin/sh', '-c', 'cat f.txt; id -u; echo n > new.txt; touch /etc/x 2>&1; ls /;'\n"
            "                    ' grep Seccomp: /proc/self/status'],\n"
            "                   cwd=v.cwd, env={'PATH': '/usr/bin:/bin'}, timeout_ms=20000, max_output=1 << 16, view=v)\n"
            "    out[host] = r.stdout.decode()\n"
            "print(json.dumps(out))\n"
        )
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, cwd="/")
        assert r.returncode == 0, r.stderr.decode()
        out = json.loads(r.stdout)
        assert out["why"] is None and out["method"] == "user_namespace"
        for host in isolate.HOSTS:
            lines = out[host].splitlines()
            assert lines[:2] == ["fork", "65534"], (host, out[host])
            assert "Permission denied" in lines[2] or "Read-only" in lines[2], (host, out[host])
        assert "work" in out["readonly"].split() and "work" not in out["hidden"].split()
        # the sandbox's filter, in a user namespace too
        assert all("Seccomp:\t2" in out[h].splitlines() for h in isolate.HOSTS), out
        assert (src / "new.txt").read_text() == "n\n"
        assert sorted(os.listdir(at)) == ["host.txt"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_option_table_reaches_the_click_command_the_fast_path_and_the_daemon(home, cli, vault, proj):
    require_fuse()
    _need_namespaces()
    from avfs_git.proxy.options import parse_args as _parse_exec

    values, argv = _parse_exec(["--readonly-host", "--at", str(proj), "--", "true"])
    req = request_from(values, argv)
    assert (req.isolate, req.isolate_at) == ("readonly", str(proj))  # implies --isolate
    values, argv = _parse_exec(["--isolate", "--", "true"])  # the fork at the origin, in the sandbox
    assert (request_from(values, argv).isolate, request_from(values, argv).isolate_at) == ("confined", None)
    values, argv = _parse_exec(["--isolate", "--host", "writable", "--", "true"])
    assert (request_from(values, argv).isolate, request_from(values, argv).confine) == ("writable", False)
    values, argv = _parse_exec(["--host", "writable", "--", "true"])  # unconfined, at the mount
    assert (request_from(values, argv).isolate, request_from(values, argv).confine) == (None, False)
    values, argv = _parse_exec(["--host", "hidden", "--", "true"])  # --hide-host
    assert request_from(values, argv).isolate == "hidden"
    from avfs_git.core.errors import UsageError

    for bad in (["--hide-host", "--readonly-host"], ["--hide-host", "--host", "writable"]):
        with pytest.raises(UsageError):
            request_from(_parse_exec([*bad, "--", "true"])[0], ["true"])
    ws = vault.workspace("main")
    ws.write("f.txt", b"from the fork\n")
    checkpoint.save(vault)
    r = cli("--json", "--vault", "v", "proxy", "exec", "--hide-host", "--at", str(proj), "--mode", "materialized",
            "--", "cat", f"{proj}/f.txt")  # fmt: skip
    doc = json.loads(r.out_bytes)
    assert r.code == 0 and doc["result"]["stdout"] == "from the fork\n" and doc["isolation"]["active"], doc
    validate(doc)
    r = cli("--json", "--vault", "v", "proxy", "exec", "--isolate", "--mode", "materialized", "--", "true")
    assert r.code == 125 and validate(json.loads(r.out_bytes)) == "proxy_exec_result"  # no origin, no --at
    # a live mount's daemon (threads, FUSE) runs the view's set-up in its children too
    info = mounts.mount(home, vault, "main", None)
    try:
        p = subprocess.run(
            [sys.executable, "-m", "avfs_git", "--vault", "v:main", "--json", "proxy", "exec", "--isolate",
             "--readonly-host", "--at", str(proj), "--", "sh", "-c",
             f'echo "$PPID" > {proj}/ppid.txt; cat /proc/1/cmdline > {proj}/init.txt'],
            capture_output=True, timeout=120,
        )  # fmt: skip
        doc = json.loads(p.stdout)
        assert p.returncode == 0 and doc["mount"]["reused"] and doc["isolation"]["active"], doc
        validate(doc)
        # the command's parent is the PID namespace's init (PID 1 there), a fork of the daemon
        assert int(ws.read("ppid.txt")) == 1
        with open(f"/proc/{info.pid}/cmdline", "rb") as fh:
            assert ws.read("init.txt") == fh.read()
    finally:
        mounts.unmount(home, vault, "main", lazy=True)
    assert _host_files(proj) == {"host.txt"}


def test_runner_reports_a_view_failure_without_starting_the_command(tmp_path, monkeypatch):
    _need_namespaces()

    def broken(s: Any, v: Any) -> None:
        raise OSError(errno.EPERM, "unshare: Operation not permitted")

    monkeypatch.setattr(isolate, "_enter", broken)
    view = isolate.plan(str(tmp_path), str(tmp_path), "writable", "", (), None)
    with pytest.raises(isolate.IsolationFailed) as got:
        runner.run(["true"], cwd=str(tmp_path), env={}, timeout_ms=5000, max_output=100, view=view)
    assert got.value.os_errno == errno.EPERM and "Operation not permitted" in got.value.reason
    assert isolate.errno_unavailable(got.value.os_errno)
