"""A ready sandbox knows its mount is still there without reading the mount table
(proxy/standby.py, ``Standby.unmoved``): the kernel marks an open ``/proc/self/mounts``
when the table changes. A real mount (a tmpfs) changes it here."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from avfs_git.proxy import confine
from avfs_git.proxy.standby import Standby

from .conftest import skip_outside_ci


def _standby(table: int) -> Standby:
    proc: Any = None  # (never started: only the table is asked)
    return Standby((), proc, -1, -1, -1, table)


def test_the_table_unmoved_until_a_mount_comes_or_goes(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        skip_outside_ci("mounting a tmpfs needs root", "the tests run as root in CI (they mount)")
    sb = _standby(os.open("/proc/self/mounts", os.O_RDONLY | os.O_CLOEXEC))
    assert sb.unmoved() and sb.unmoved()  # asking does not change the answer
    mp = tmp_path / "m"
    mp.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "none", str(mp)], check=True)
    try:
        assert not sb.unmoved() and not sb.unmoved()  # once moved, always
        later = _standby(os.open("/proc/self/mounts", os.O_RDONLY | os.O_CLOEXEC))
        assert later.unmoved()  # opened after: the table is as it saw it
    finally:
        subprocess.run(["umount", str(mp)], check=True)
    assert not later.unmoved()
    for s in (sb, later):
        s.close_table()
        assert s.table == -1 and not s.unmoved()  # no table: the caller reads it instead


def test_a_served_call_knows_its_mount_is_still_there_from_the_mark(
    home: Any, vault: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call run in a ready sandbox (as a mount's daemon serves it: ``standbys``) asks the
    sandbox's mark once the command has ended: the mount table did not change, so the
    mount is there (``alive_after``) without the registry's check, which reads the table;
    when a mount came or went while the command ran, the check is made as before."""
    from avfs_git.ops import mounts
    from avfs_git.proxy import standby
    from avfs_git.proxy.envelope import ExecRequest
    from avfs_git.proxy.execute import execute

    from .test_confine import _need_bwrap
    from .test_fuse import require_fuse

    require_fuse()
    _need_bwrap()
    if not standby.available():
        skip_outside_ci("no ready sandboxes here (standby.available)")
    mounts.mount(home, vault, "main", None)
    sbs = standby.Standbys()
    checks: list[str] = []
    real = mounts.check

    def counted(v: Any, key: str) -> Any:
        checks.append(key)
        return real(v, key)

    def call(argv: tuple[str, ...]) -> Any:
        after: list[Any] = []
        res = execute(home, vault, "main", ExecRequest(argv=argv), after=after, standbys=sbs)
        for fn in after:
            fn()
        return res

    def ready() -> None:  # the sandbox the last call asked for, made ready
        for _ in range(500):
            if sbs._ready is not None:  # (the one made after the call's answer)
                return
            time.sleep(0.02)
        pytest.fail("no sandbox made ready")

    mp = tmp_path / "t"
    mp.mkdir()
    try:
        assert call(("true",)).success  # asks for a ready sandbox like its own
        ready()
        monkeypatch.setattr(mounts, "check", counted)
        # the plan's check only, none after the command: unless something else on the host
        # mounted or unmounted meanwhile (the suite's other workers do, all the time), which
        # moves the mark and the table is read; so of a few calls one must have gone by it
        seen = []
        for _ in range(8):
            checks.clear()
            res = call(("true",))
            assert res.success and res.mount is not None and res.mount.alive_after, res.to_dict()
            assert checks in (["main"], ["main", "main"]), checks
            seen.append(len(checks))
            ready()
            if checks == ["main"]:
                break
        assert 1 in seen, seen
        checks.clear()
        # a mount comes while the command runs: the mark says so, and the table is read
        mounter = threading.Timer(
            0.3, lambda: subprocess.run(["mount", "-t", "tmpfs", "none", str(mp)], check=True)
        )
        mounter.start()
        res = call(("sleep", "1"))
        mounter.join()
        assert res.success and res.mount is not None and res.mount.alive_after, res.to_dict()
        assert checks == ["main", "main"], checks
    finally:
        sbs.close()
        if os.path.ismount(mp):
            subprocess.run(["umount", str(mp)], check=False)
        mounts.unmount(home, vault, "main")


@pytest.mark.parametrize("which", ["waiter", "exec"])
def test_the_perl_programs_load_no_module(which: str) -> None:
    """The Landlock program with the ready sandbox's waiter (a first call's sandbox set up
    ahead, every ready one) or with its own ``exec`` of a command loads no module as it
    compiles: ``use Fcntl``, ``no warnings``, ``use strict`` and ``$!{EINTR}`` (Errno) cost
    ~6 ms of CPU per sandbox of a ~5-10 ms Perl (docs/benchmarks.md, first6)."""
    from avfs_git.proxy import landlock, standby

    if not landlock.available():
        skip_outside_ci(f"no {landlock.PERL} here")
    sb = confine.Sandbox(source="/nonexistent", path="/avfs/v", cwd="/avfs/v", network="none")
    cmd = [standby.PERL, "-e", standby.WAITER, "3", "4"] if which == "waiter" else ["true"]
    wrapped = landlock.wrap(sb, cmd, own=which == "waiter")
    assert wrapped[:2] == [landlock.PERL, "-e"]
    # compiled only (-c: nothing of it runs), %INC printed at the end of the compile
    check = "CHECK { print join(',', sort keys %INC), qq(\\n) }\n"
    got = subprocess.run([landlock.PERL, "-c", "-e", check + wrapped[2]], capture_output=True, text=True)
    assert got.returncode == 0, got.stderr
    assert got.stdout == "\n", got.stdout  # (on main: Errno.pm, Fcntl.pm, strict.pm, warnings.pm...)
