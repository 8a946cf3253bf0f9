"""The mount registry (core/vaults/registry.py), the fork-name file-name encoding (core/store/names.py)
and the home default (core/settings.py): each one place, the same answer for every reader.

Mounted cases (a real daemon's record, read by the hook, the fast path's exec lookup, doctor
and mount --list alike) are in test_hooks.py, test_proxy.py and test_maintenance.py; these
are the rules themselves, on real files and real processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avfs_git.core import settings
from avfs_git.core.store.names import SHELL_FS_NAME, from_fs_name, fs_name
from avfs_git.core.vaults import mountinfo, registry

from .conftest import skip_outside_ci

NAMES = st.text(alphabet="ab/%@.-_+9", min_size=1, max_size=20)


@given(NAMES)
def test_a_fork_name_as_a_file_name_is_one_name_and_comes_back(name: str) -> None:
    for at in (False, True):
        enc = fs_name(name, at=at)
        assert "/" not in enc and (not at or "@" not in enc)
        assert from_fs_name(enc) == name


def test_the_encoding_is_the_one_avfs_always_wrote() -> None:
    # files on disk made by earlier versions keep their names
    assert fs_name("feature/x") == "feature%2Fx"
    assert fs_name("a%b/c") == "a%25b%2Fc"
    assert fs_name("f@0123456789ab", at=True) == "f%400123456789ab"
    assert fs_name("f@0123456789ab") == "f@0123456789ab"


def test_the_pre_receive_hooks_shell_encoding_is_the_same() -> None:
    names = ["main", "feature/x", "a%b/c%2F", "x/y/z", "odd%25name"]
    for name in names:
        out = subprocess.run(
            ["sh", "-c", f"printf '%s' \"$1\" | {SHELL_FS_NAME}", "sh", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out == fs_name(name), name


def test_records_are_read_by_key_and_bad_ones_skipped(tmp_path: Path) -> None:
    state = str(tmp_path / "avfs")
    path = registry.record_path(state, "feature/x")
    assert path == os.path.join(state, "mounts", "feature%2Fx.json")
    registry.write_record(path, {"fork": "feature/x", "pid": os.getpid(), "mountpoint": "/nowhere"})
    registry.write_record(registry.record_path(state, "main@0123456789ab"), {"fork": "main", "pid": 1})
    (tmp_path / "avfs" / "mounts" / "broken.json").write_text("{not json")
    (tmp_path / "avfs" / "mounts" / "list.json").write_text("[1, 2]")
    before = sorted(os.listdir(tmp_path / "avfs" / "mounts"))
    got = registry.records(state)
    assert [r.key for r in got] == ["feature/x", "main@0123456789ab"]
    assert got[0].pid == os.getpid() and got[0].mountpoint == "/nowhere" and got[0].state == "mounted"
    assert sorted(os.listdir(tmp_path / "avfs" / "mounts")) == before  # reading changes nothing
    assert registry.records(str(tmp_path / "none")) == []


def test_liveness_of_a_record_with_no_mount(tmp_path: Path) -> None:
    mp = tmp_path / "mp"
    mp.mkdir()
    rec = registry.Record("main", "", {"pid": os.getpid(), "mountpoint": str(mp), "state": "mounted"})
    # our process lives, but nothing is mounted there: not serving, not registered
    assert not registry.serving(rec) and not registry.registered(rec)
    # still coming up: registered (the lifecycle waits for it), not serving (a hook ignores it)
    coming = registry.Record("main", "", {**rec.data, "state": "mounting"})
    assert registry.registered(coming) and not registry.serving(coming)
    for pid in (0, -1, "x"):
        bad = registry.Record("main", "", {**coming.data, "pid": pid})
        assert not registry.registered(bad) and not registry.serving(bad)


def test_daemon_alive_knows_a_reused_pid_and_another_vault(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(30)",
            "avfs_git.fuse.daemon",
            "--vault",
            "v",
            "--home",
            str(tmp_path),
        ]
    )
    try:
        # the child's command line is its own once it has exec'd (before, it is ours)
        for _ in range(5000):
            if b"--vault" in Path(f"/proc/{child.pid}/cmdline").read_bytes():
                break
            time.sleep(0.002)
        began = registry.process_start(child.pid)
        assert began is not None
        assert registry.daemon_alive(child.pid, "v", str(tmp_path), began)
        assert registry.daemon_alive(child.pid, "v", None, None)
        assert not registry.daemon_alive(child.pid, "other", str(tmp_path), began)
        assert not registry.daemon_alive(child.pid, "v", str(tmp_path / "elsewhere"), began)
        # written long before the process started: the pid was reused
        assert not registry.daemon_alive(child.pid, "v", str(tmp_path), began - 3600)
    finally:
        child.kill()
        child.wait()
    assert not registry.daemon_alive(child.pid, "v", str(tmp_path), None)
    other = subprocess.Popen(["sleep", "30"])  # alive, but no avfs program at all
    try:
        # (once its command line is set: until then it could be a daemon just started)
        for _ in range(5000):
            if Path(f"/proc/{other.pid}/cmdline").read_bytes():
                break
            time.sleep(0.002)
        assert not registry.daemon_alive(other.pid, "v", None, None)
    finally:
        other.kill()
        other.wait()


def test_a_daemon_just_started_is_one_before_its_command_line_is_set(tmp_path: Path) -> None:
    # posix_spawn returns once the child's execve has let go of our memory; the kernel sets
    # the new image's arguments a little later, so /proc/PID/cmdline may read empty right
    # after the spawn (under load, most times). A daemon asked about then is still one
    # (a placeholder record names it while it starts: ops/daemonstart.py), never taken for
    # a dead one's pid reused
    argv = [sys.executable, "-c", "import time; time.sleep(30)", "-m", "avfs_git.fuse.daemon"]
    argv += ["--vault", "v", "--home", str(tmp_path)]
    for _ in range(40):
        pid = os.posix_spawn(sys.executable, argv, dict(os.environ))
        try:
            assert registry.is_mount_daemon(pid)
            assert registry.daemon_alive(pid, "v", str(tmp_path), None)
        finally:
            os.kill(pid, 9)
            os.waitpid(pid, 0)


def test_a_zombie_or_a_kernel_thread_is_no_daemon() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass", "avfs_git.fuse.daemon"])
    for _ in range(5000):  # ended, not reaped: a zombie, whose command line is empty
        if Path(f"/proc/{child.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z":
            break
        time.sleep(0.002)
    try:
        assert Path(f"/proc/{child.pid}/cmdline").read_bytes() == b""
        assert not registry.is_mount_daemon(child.pid)
        assert not registry.daemon_alive(child.pid, "v", None, None)
    finally:
        child.wait()
    for pid in _kernel_threads()[:3]:  # (none in a PID namespace of its own)
        assert not registry.is_mount_daemon(pid)


def _kernel_threads() -> list[int]:
    out = []
    for p in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            flags = int(Path(f"/proc/{p}/stat").read_bytes().rsplit(b")", 1)[1].split()[6])
        except OSError:
            continue
        if flags & 0x00200000:  # PF_KTHREAD
            out.append(int(p))
    return out


def test_started_at_reads_the_records_time() -> None:
    assert registry.started_at({"started": "2026-01-02T03:04:05Z"}) == 1767323045.0
    assert registry.started_at({"started": "yesterday"}) is None
    assert registry.started_at({}) is None


def test_read_exec_is_the_daemons_socket_name_and_pid(tmp_path: Path) -> None:
    home = str(tmp_path)
    reg = registry.record_path(os.path.join(home, "vaults", "v.git", "avfs"), "feature/x")
    os.makedirs(os.path.dirname(reg))
    Path(registry.exec_path(reg)).write_text("avfs-exec-123\n4242\n")  # an older daemon's
    assert registry.read_exec(home, "v", "feature/x") == ("avfs-exec-123", 4242, "")
    for mp in ("/mnt/a b", "/mnt/new\nline", "/mnt/caf\udce9"):
        registry.write_exec(reg, "avfs-exec-123", 4242, mp)
        assert registry.read_exec(home, "v", "feature/x") == ("avfs-exec-123", 4242, mp)
    Path(registry.exec_path(reg)).write_text("avfs-exec-123\nnot a pid\n")
    assert registry.read_exec(home, "v", "feature/x") is None
    assert registry.read_exec(home, "v", "other") is None


def test_home_records_walks_every_vault(tmp_path: Path) -> None:
    home = tmp_path
    for v in ("a", "b", ".hidden"):
        registry.write_record(
            registry.record_path(str(home / "vaults" / f"{v}.git" / "avfs"), "main"), {"pid": 1}
        )
    (home / "vaults" / "notavault").mkdir()
    got = [(v, p, r.key) for v, p, r in registry.home_records(str(home))]
    assert got == [
        ("a", str(home / "vaults" / "a.git"), "main"),
        ("b", str(home / "vaults" / "b.git"), "main"),
    ]
    assert list(registry.home_records(str(tmp_path / "nohome"))) == []


def test_kernel_mounts_reads_mountinfo(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "36 25 0:32 / /tmp/with\\040space rw - fuse.avfs avfs:v:main rw,user_id=0\n"
        "37 25 0:33 / /m rw - overlay avfs:v:main rw,lowerdir=/l,upperdir=/u,workdir=/w\n"
        "garbage line\n"
    )
    got = mountinfo.kernel_mounts(str(info))
    assert got[0].mountpoint == "/tmp/with space" and got[0].avfs_fuse and got[0].vault_name == "v"
    assert got[1].fstype == "overlay" and got[1].dirs == ("/l", "/u", "/w") and not got[1].avfs_fuse
    assert len(got) == 2


def test_the_home_default_is_one_rule() -> None:
    assert settings.home_path("/explicit", {"AVFS_HOME": "/env", "HOME": "/h"}) == "/explicit"
    assert settings.home_path(None, {"AVFS_HOME": "/env", "HOME": "/h"}) == "/env"
    assert settings.home_path(None, {"HOME": "/h/"}) == "/h/.avfs"
    assert settings.home_path(None, {"HOME": ""}) == "/.avfs"  # as os.path.expanduser has it
    import pwd

    assert settings.home_path(None, {}) == pwd.getpwuid(os.getuid()).pw_dir.rstrip("/") + "/.avfs"


def test_mounted_as_agrees_with_the_mount_table(tmp_path: Path) -> None:
    """``mounted_as`` (what a record's mount point is checked against before avfs writes
    through it) finds every mount :func:`mountinfo.kernel_mounts` lists, with its source
    only, and one at a path with a space, a tab and a backslash (mountinfo's escapes)."""
    table = mountinfo.kernel_mounts()
    assert table
    for km in table:
        # (the table is the machine's: another test's mount may be gone since it was read)
        assert registry.mounted_as(km.mountpoint, km.source) or km not in mountinfo.kernel_mounts(), km
        assert not registry.mounted_as(km.mountpoint, km.source + "x"), km
        assert not registry.mounted_as(km.mountpoint + "/below", km.source), km
    if os.geteuid() != 0:
        return
    odd = tmp_path / "a dir\twith \\ odd"
    odd.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "avfs:v:k", str(odd)], check=True)
    try:
        assert registry.mounted_as(str(odd), "avfs:v:k")
        assert not registry.mounted_as(str(odd), "avfs:v:other")
    finally:
        subprocess.run(["umount", str(odd)], check=True)
    assert not registry.mounted_as(str(odd), "avfs:v:k")


def test_mounted_at_reads_the_mount_point_field_as_the_kernel_escapes_it(tmp_path: Path) -> None:
    """A mount point with a space, a tab, a newline and a backslash in its name is found;
    its parent, a name it begins with, and a path that is only a mount's source (the
    table's first field) are not."""
    from avfs_git.core.vaults.registry import mounted_at

    if os.geteuid() != 0:
        skip_outside_ci("mounting a tmpfs needs root", "the tests run as root in CI (they mount)")
    odd = tmp_path / "a b\tc\nd\\e"
    odd.mkdir()
    (tmp_path / "a b").mkdir()
    src = tmp_path / "source"
    src.mkdir()
    assert not mounted_at(str(odd))
    subprocess.run(["mount", "-t", "tmpfs", str(src), str(odd)], check=True)
    try:
        assert mounted_at(str(odd)) and mounted_at(str(odd) + "/")
        assert mounted_at(str(tmp_path / "x" / ".." / odd.name))  # resolved first
        assert not mounted_at(str(tmp_path)) and not mounted_at(str(tmp_path / "a b"))
        assert not mounted_at(str(src))  # named in the table, as the mount's source only
    finally:
        subprocess.run(["umount", str(odd)], check=True)
    assert not mounted_at(str(odd))


def test_mounted_at_never_stats_the_mount_point(tmp_path: Path) -> None:
    """Every mount daemon's ready sandbox (proxy/standby.py) asks ``mounted_at`` on each
    change of the host's mount table, and as it answers a command. ``os.path.realpath``
    called ``lstat`` on the mount point itself: on a pure-FUSE mount a request to its own daemon
    whenever the root's attributes were stale, the mount
    busy for ``umount`` while it was answered, with no process inside to name (CI's unnamed
    busy unmount after a `proxy exec`, flaky1). Now only the directories above it are
    resolved, the mount point asked ``readlink`` alone; a link to a mount point is followed."""
    from avfs_git.core.vaults import registry

    if os.geteuid() != 0:
        skip_outside_ci("mounting a tmpfs needs root", "the tests run as root in CI (they mount)")
    mp = tmp_path / "m"
    mp.mkdir()
    (tmp_path / "link").symlink_to(mp)
    seen: list[str] = []

    def spy(real):  # type: ignore[no-untyped-def]
        def look(path, *args, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(os.fsdecode(path))
            return real(path, *args, **kwargs)

        return look

    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mp)], check=True)
    try:
        with pytest.MonkeyPatch.context() as mp_patch:  # (where realpath looks them up: os.lstat)
            mp_patch.setattr(os, "lstat", spy(os.lstat))
            mp_patch.setattr(os, "stat", spy(os.stat))
            found = [registry.mounted_at(p) for p in (str(mp), str(tmp_path / "link"), str(mp) + "/")]
    finally:
        subprocess.run(["umount", str(mp)], check=True)
    assert found == [True, True, True]
    assert str(tmp_path) in seen, seen  # (the spy saw the directories resolved)
    assert str(mp) not in seen, seen


def test_an_unmount_waits_for_its_daemon_on_its_pidfd_not_a_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """``mounts.unmount`` waits for the daemon to end (ops/daemonstart.py ``wait_gone``): a
    daemon another process started (not our child: a shell's background child here) and
    one of ours, each seen gone once it has exited, and a live one waited for no longer
    than asked; on its pidfd, never a sleep between looks (the poll cost an unmount's
    caller ~10-20 ms of CPU at load)."""
    from avfs_git.ops import daemonstart, mounts

    assert mounts.wait_gone is daemonstart.wait_gone  # what unmount calls

    here, real_sleep = threading.get_ident(), time.sleep

    def no_sleep(s: float) -> None:
        if threading.get_ident() != here:  # (the module is every thread's: the hang watch's too)
            return real_sleep(s)
        raise AssertionError(f"polled: time.sleep({s})")

    monkeypatch.setattr(daemonstart.time, "sleep", no_sleep)
    # not our child: started by a shell that has exited
    out = subprocess.run(["sh", "-c", "sleep 0.3 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
    stranger = int(out.stdout)
    ours = subprocess.Popen(["sleep", "0.3"])
    try:
        assert not daemonstart.wait_gone(stranger, 0.01)  # still running: not gone
        assert daemonstart.wait_gone(stranger, 30)
        assert daemonstart.wait_gone(ours.pid, 30)
        with pytest.raises(ChildProcessError):  # collected by the wait
            os.waitpid(ours.pid, os.WNOHANG)
        ours.returncode = 0  # (collected: Popen must not wait for it again)
    finally:
        if ours.returncode is None:
            ours.kill()
            ours.wait()
