"""`make test`'s base temporary directory (``TEST_TMP``, the Makefile): one of its own a
checkout, given to pytest as ``--basetemp``, and the last run's removed here before the next
run's pytest starts (``python -m tests.basetemp DIR``).

Without it pytest makes a numbered one under ``/tmp/pytest-of-USER``, shared by every
checkout's sessions, and a session's end removes all of them but the last three before its
summary: ~6 GB and ~10^5-10^6 files each after a whole run, minutes of disk-bound
``unlinkat`` on this machine (its root file system mounted ``discard``) counted in the run's
own time (ci21: 1,430 s reported for tests that ended at ~1,110 s). A given ``--basetemp``
pytest empties at the start of the session and never rotates; emptied here first, the
run's time is its tests'. The session's start and end (tests/conftest.py) use the two
helpers here too: a killed session's layers file systems and pinned ``.git`` files are
what a plain removal of the directory fails on (suitetime20).
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from avfs_git.core.vaults import layers


def _mounts_under(top: str) -> list[str]:
    """Every mount point below ``top``, deepest first."""
    root = top.rstrip("/") + "/"
    with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as fh:
        points = [ln.split()[1].replace("\\040", " ") for ln in fh]
    return sorted((p for p in points if p.startswith(root)), key=lambda p: -p.count("/"))


def clear(path: str) -> bool:
    """Remove ``path`` (a test run's base temp dir) and everything under it; False when it
    was not there. What a killed session left mounted below it is unmounted first (a
    removal would go on into the mount: a bind mount's source, a fork's files), then its
    layers images dropped and its pinned ``.git`` files unpinned (EPERM otherwise)."""
    top = os.path.abspath(path)
    if top in ("/", os.path.expanduser("~")) or os.getcwd().startswith(top.rstrip("/") + "/"):
        raise SystemExit(f"tests.basetemp: refusing to remove {top}")
    if not os.path.lexists(top):
        return False
    drop_layers(Path(top))
    drop_mounts(top)
    left = _mounts_under(top)
    if left:
        raise SystemExit(f"tests.basetemp: {top} still has mounts below it: {left}")
    unpin_gitfiles(top)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 200_000))  # (rmtree recurses a level a call: trees 1,200 deep)
    try:
        shutil.rmtree(top)
    finally:
        sys.setrecursionlimit(old)
    return True


def drop_mounts(top: str) -> list[str]:
    """Detach (``umount -l``) every mount below ``top``, deepest first; the mount points.
    A fork's mount a failed test could not unmount (busy) outlived its session otherwise:
    CI's clean clone has a temp dir of its own, which no later run clears (ci27's, found
    mounted at the next session's start)."""
    points = _mounts_under(top)
    for mp in points:
        subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
    return points


def unpin_gitfiles(top: str) -> None:
    """Clear the immutable flag of every ``upper/.git`` under ``top`` (same file system only,
    never into a mount): a mount daemon a test killed leaves its worktree link pinned
    (fuse/stacking._pin_gitfile), and pytest, unable to remove the session's temp dir when it
    rotates it out, renames it ``garbage-*`` and keeps it for good."""
    try:
        dev = os.lstat(top).st_dev
    except OSError:
        return
    pinned: list[str] = []
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                if not e.is_dir(follow_symlinks=False) or e.stat(follow_symlinks=False).st_dev != dev:
                    continue
            except OSError:
                continue
            if e.name == "upper" and os.path.isfile(os.path.join(e.path, ".git")):
                pinned.append(os.path.join(e.path, ".git"))
            if e.name != "objects":  # a git object store never holds a workspace
                stack.append(e.path)
    if pinned:
        subprocess.run(["chattr", "-i", *pinned], capture_output=True, check=False)


def drop_layers(tmp_path: Path) -> None:
    """Unmount the layers file systems (core/vaults/layers.py) the test's homes made, and remove
    their images: each is a loop device and a few MB of metadata."""
    root = str(tmp_path) + "/"
    with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as fh:
        points = [ln.split()[1].replace("\\040", " ") for ln in fh if ln.split()[2:3] == ["btrfs"]]
    points = [mp for mp in points if mp.startswith(root) and os.path.basename(mp) == layers.MOUNT]
    if points:
        # first the SQLite connections of the homes the test's in-process CLI calls opened
        # (tests/conftest.py run_in_process: a real process's exit closes nothing; here
        # each sits in a reference cycle): closed by a later test's garbage collection,
        # after this teardown unmounted their file system (lazily) and removed its image,
        # a store into the WAL index they map was a SIGBUS of the whole test process
        # (test_adv_quota2's two full forks in one process, every time: found reproducing
        # the official CI's failure of the thirty-ninth round's tree)
        gc.collect()
    for mp in points:
        home = os.path.dirname(mp)
        layers.unmount(home)
        Path(home, layers.IMAGE).unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    (path,) = argv
    start = time.monotonic()
    try:
        removed = clear(path)
    except OSError as e:  # (pytest empties it too, at its session's start)
        print(f"make test: the last run's temporary files not all removed: {e}", file=sys.stderr)
        return 0
    if removed:
        print(f"make test: removed the last run's temporary files, {path} ({time.monotonic() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
