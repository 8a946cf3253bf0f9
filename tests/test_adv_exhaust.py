"""Resources a confined command spends to make avfs's host side slow or lose the person's
work: what it leaves in the fork (directories deeper than any project's), read by the
exec's record of what changed, every later exec, status and checkpoint.

Each attack runs through a real confined `proxy exec` in a real mount (overlay backend and
pure FUSE), then the test acts as the person would; a host side that hangs fails it at the
call's timeout (the helpers' 120 s), which no correct run comes near."""

from __future__ import annotations

import os
import subprocess
import time

from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts
from avfs_git.proxy import gitfifos, gitlinks

from .test_adv_gitseal import _avfs, _exec, _git, _script
from .test_adv_gitseal import live as live  # the fixture: both backends
from .test_confine import _need_bwrap
from .test_overlay import require_overlay

DEPTH = 600
# past Python's recursion limit (1,000) by a margin: ``os.fwalk`` went one call deeper a
# level and raised ``RecursionError`` from ~1,000 levels (the attack went on to PATH_MAX,
# ~2,030 levels; sized so here, the test's tree was 1.7 times this one and its CPU ~14 s
# of ci26's: suitetime25)
PAST_RECURSION = 1_200


def test_a_directory_hundreds_of_levels_deep_keeps_exec_status_and_checkpoint_quick(live, vault):
    """Found in the fourteenth round (NAME=attack5): on the overlay backend a command's
    `mkdir` 400 levels deep (0.7 s) held its exec's record of what changed for 275 s, and
    every later exec, a `true`, as long again before its command ran: each path read the
    upper layer through each of its ancestors, and each ancestor's lower path through the
    ancestors again (O(depth^3) `listxattr` calls; 600 levels, past a quarter of an hour).
    Now a read keeps what it found at each path for its duration. The exec commits the
    file; the next exec, the person's `avfs status`, a checkpoint of their change and
    their `git status` come back, and nothing is lost."""
    mp = live.mountpoint
    _script(
        live,
        "deep.sh",
        f"mkdir deep && cd deep && i=0; while [ $i -lt {DEPTH} ]; do mkdir d && cd d || break; i=$((i+1)); done\n"
        'echo bottom > f; echo "depth $i"\n',
    )
    doc = _exec("sh", "deep.sh")
    assert doc["result"]["stdout"].strip() == f"depth {DEPTH}", doc["result"]
    path = "deep/" + "d/" * DEPTH + "f"
    assert doc["commit"] is not None and [c["path"] for c in doc["changes"]] == [path], doc["changes"]
    assert _git("--git-dir", vault.path, "show", f"main:{path}") == "bottom\n"
    assert _exec("true")["exit_code"] == 0
    with open(os.path.join(mp, "lib.py"), "a") as fh:
        fh.write("y = 2\n")
    status = _avfs("status")
    assert status.returncode == 0 and b"lib.py" in status.stdout, status
    assert _avfs("checkpoint", "save").returncode == 0
    assert "y = 2" in _git("--git-dir", vault.path, "show", "main:lib.py")
    assert _git("status", "--short", cwd=mp) == ""


def test_a_tree_past_the_recursion_limit_is_committed_by_its_exec(home, vault):
    """Found in the thirtieth round (NAME=attack21): a command's `mkdir x && cd x` until
    the path reaches ``PATH_MAX`` (~2,000 levels; 600, above, stay under Python's
    recursion limit) failed its own exec's record with ``internal: RecursionError``,
    nothing committed, on the overlay backend, in a run whose journal named only the
    tree's top (seen by hand through the CLI's resident server; the suite's runs get an
    exact journal, so the walk is asked below as such a run asks it): the look for FIFOs at git's names below what the command wrote
    (``proxy/gitfifos.py``) and the look below a submodule's path (``proxy/gitlinks.py``)
    walked with ``os.fwalk``, one Python call and one descriptor a level. The command
    here stops at 1,200 levels (past the recursion limit, which is what failed; the
    path's length was not), the exec commits what it wrote, the next exec and the person's `avfs status` answer, and both
    walks answer over the whole tree. (Overlay only: the
    FIFO look is the overlay backend's, a pure-FUSE mount holds no FIFO.)"""
    require_overlay()
    _need_bwrap()
    vault.workspace("main").write("README", b"the original\n")
    checkpoint.save(vault, name="base")
    info = mounts.mount(home, vault, "main", None, backend="overlay")
    try:
        with open(os.path.join(info.mountpoint, "deep.sh"), "w") as fh:
            fh.write(
                f"echo beside > beside.txt; mkdir d; cd d; i=0; while [ $i -lt {PAST_RECURSION} ]; do"
                ' mkdir x && cd x || break; i=$((i+1)); done; echo "depth $i"\n'
            )
        doc = _exec("sh", "deep.sh")
        assert doc["result"]["stdout"].split()[-1] == str(PAST_RECURSION), doc["result"]
        assert doc["error"] is None, doc["error"]
        assert doc["commit"] is not None, doc
        assert "beside.txt" in {c["path"] for c in doc["changes"]}, doc["changes"]
        assert _git("--git-dir", vault.path, "show", "main:beside.txt") == "beside\n"
        # the record's look below what the command wrote when the journal names only a
        # directory (a journal that cannot say more: the daemon's, asked over its socket
        # by another process, or past an overflow): this run's was exact, the walk is not
        # reached; asked of the whole tree as such a run asks it
        assert gitfifos.remove(info.mountpoint, ["d"], 0) == []
        fd = os.open(os.path.join(info.mountpoint, "d"), os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert gitlinks._wrote_below(fd, 0)  # (its first entry answers: no walk)
            # nothing below written after the run: the look walks the whole tree to say so
            # (suitetime25: the line above passed on os.fwalk too, at any depth)
            assert not gitlinks._wrote_below(fd, time.time_ns() + 3600 * 10**9)
        finally:
            os.close(fd)
        assert _exec("true")["exit_code"] == 0
        assert _avfs("status").returncode == 0
    finally:
        # (the tree goes as the person would remove it: pytest's clean-up of a later run's
        # base directory walks by recursion, and would fail on it)
        subprocess.run(["rm", "-rf", "d"], cwd=info.mountpoint, check=False, timeout=120)
        mounts.unmount(home, vault, "main", lazy=True)


def test_a_sparse_file_s_holes_are_counted_before_its_blob_is_written(live, vault):
    """Found in the twenty-second round (NAME=attack13): a command's `truncate -s 1T f`
    writes no block, so the quota (of what is on disk) counted nothing, but the exec's
    commit deflated a tebibyte of zeros on the host (a 3 GiB one took 71 s under a 1 GiB
    quota, load ~25: hours for a tebibyte, the agent's call held all along) into a blob
    whose every checkout (`git clone`, `avfs export`, a restore) writes all of it. Now the
    holes of what a capture records count against the quota first: the commit is refused
    (`quota_exceeded`, naming the file) before any of it is read, the fork keeps the
    file, and the person's `avfs rm` and checkpoint work. (The pure-FUSE mount counts a
    file's size, holes and all, at each write: the run is over the quota there.) A file within the quota (a small
    hole, dense files) is committed as ever."""
    mp = live.mountpoint
    assert _avfs("quota", "set", "--bytes", "64M").returncode == 0
    # (a hole 4x the quota: 1 GiB until suitetime5, whose reads by the status, the pure-FUSE
    # daemon and `avfs rm`'s record were most of the test's CPU; what is counted is the same)
    doc = _exec("sh", "-c", "head -c 100000 /dev/zero > dense; truncate -s 2M small; truncate -s 256M big")
    assert doc["result"]["exit_code"] == 0, doc["result"]
    assert doc["commit"] is None, doc["commit"]
    err = doc["error"]
    assert err["code"] == "quota_exceeded", err
    # (the pure-FUSE mount counts a file's size as the mount's quota use: the run is past it)
    assert (
        "big" in err["details"]["paths"] if live.backend == "overlay" else err["details"]["used"] > 256 << 20
    )
    assert _git("--git-dir", vault.path, "ls-tree", "--name-only", "main") == "README\nlib.py\n"
    assert os.stat(os.path.join(mp, "big")).st_size == 256 << 20  # kept in the fork
    status = _avfs("status")
    assert status.returncode == 0 and b"big" in status.stdout, status
    if live.backend == "overlay":
        # (on pure FUSE the run is over the quota as counted: the person's checkpoint is
        # theirs to make, as after any run the quota refused)
        saved = _avfs("--json", "checkpoint", "save")
        assert saved.returncode == 1 and b"quota_exceeded" in saved.stdout, saved
    assert _avfs("rm", "big").returncode == 0
    assert _avfs("checkpoint", "save").returncode == 0
    assert _git("--git-dir", vault.path, "ls-tree", "--name-only", "main") == "README\ndense\nlib.py\nsmall\n"
    assert _git("--git-dir", vault.path, "cat-file", "-s", "main:small") == str(2 << 20) + "\n"
    assert _git("status", "--short", cwd=mp) == ""
