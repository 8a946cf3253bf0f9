"""Soak: mount, load, checkpoint and unmount a fork over and over; no daemon may crash.

The crash this guards against (issue 15, "No crashes"): python processes segfaulting inside
libfuse while a mount ended with the watcher still invalidating every path it knew after a
base move; the daemon's teardown was then skipped, leaving its worktree and exec file. Here
each round mounts a fork of a few thousand files (``mounts.mount``), loads it from three
workers at once (``find`` over the whole tree in a loop; appends, creates and renames; a walk
with ``lstat`` and reads), runs ``avfs checkpoint save`` in the middle of that load and once
more just before ``avfs unmount`` (the base moves: the watcher invalidates every path the
walks made known while the mount goes), then checks that the daemon exited 0 and that
nothing stayed behind (registry entry, exec file, worktree, mount; ``doctor`` agrees).

It fails when a daemon died of a signal or before it was asked to stop, when the kernel log
gained a ``segfault`` / ``general protection`` / ``traps:`` line of one of the daemon's
threads or of a process the test started (under CI=true: any new such line; elsewhere
lines of other processes on the machine are printed, not failed on), when an acknowledged
write is missing afterwards, or when a worker saw an error that a live mount never gives.
The kernel log must be readable under CI=true (``dmesg``; root or
``kernel.dmesg_restrict=0``); elsewhere the test prints why it could not read it and checks
the rest. Wrong data (a lost append, a renamed file's old name back, a checkpoint that
fails) is reported after the crash checks, all of it at once.

Bounded: at most ``ROUNDS`` rounds, no new round after ``BUDGET_S`` seconds (at least
``MIN_ROUNDS``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import AvfsError
from avfs_git.core.operations import checkpoint
from avfs_git.core.store.locks import pid_alive
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import maintenance, mounts

from . import kernellog
from .bulkbase import commit_files
from .conftest import IN_CI

# Each backend mounts.mount() can use.
BACKENDS = ["overlay", "fuse"]
# > 4096: libfuse's node tables are mmap-ed, so a use after their free faults (8,000 until
# suitetime5: each round's walks, finds and invalidations are O(files), so a round costs less
# at 5,000, and the rounds, not the seconds, are what the soak runs)
FILES = 5000
DIRS = 30
ROUNDS = int(os.environ.get("AVFS_SOAK_ROUNDS", "10"))
MIN_ROUNDS = 4  # (two by the CLI, two by the API and fusermount3)
# no new round after this: the test's CPU is its seconds (the load fills them), 25 s until
# suitetime5; AVFS_SOAK_S=600 (with ROUNDS lifted by AVFS_SOAK_ROUNDS) soaks for longer by hand
BUDGET_S = float(os.environ.get("AVFS_SOAK_S", "12"))
LOAD_S = 0.5  # load before and after the mid-load checkpoint
# new files a round's writer makes at most (then it appends only): the writes go on while
# the mid-load checkpoint runs, so unbounded, a round's files were its write rate times that
# checkpoint's time, and each checkpoint's work the last one's time: at load ~37 (a
# checkpoint's process 3 % on a CPU, 97 % waiting for one) 610, 2,197, 972, 7,834 files a
# checkpoint, and the 600 s ran out in the third round's (flaky2)
NEW_FILES = 400
# what a worker may see on a live mount: a name another worker renamed meanwhile
BENIGN = ("No such file or directory",)


def require_fuse() -> None:
    why = mounts.fuse_available()
    if why is not None:
        if IN_CI:
            pytest.fail(f"FUSE must be available in CI: {why}")
        pytest.skip(f"requires FUSE: {why}")


def _mount(home: Home, vault: Vault, mp: str, backend: str) -> mounts.MountInfo:
    return mounts.mount(home, vault, "main", mp, backend=backend)


def _cli(ours: set[int], *args: str) -> subprocess.CompletedProcess[str]:
    """``avfs --vault v ARGS`` as a real process (its pid joins ``ours``)."""
    cmd = [sys.executable, "-m", "avfs_git", "--vault", "v", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ours.add(proc.pid)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


class Load:
    """Three workers on a mount until stopped; what they wrote and what went wrong."""

    def __init__(self, mp: str, round_no: int, tids: set[int]) -> None:
        self.mp = mp
        self.round = round_no
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.appended: dict[str, list[str]] = {}  # path -> lines acknowledged (write returned)
        self.renamed: list[str] = []  # files created and renamed (their final names)
        self.tids = tids  # pids of the processes the workers start (the kernel log names them)
        self.finds = 0
        self.threads = [
            threading.Thread(target=self._guard, args=(f,), name=f"soak-{f.__name__}")
            for f in (self._find, self._write, self._walk)
        ]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)
            if t.is_alive():
                self.errors.append(f"{t.name} did not stop within 60 s (a hung mount?)")

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except OSError as exc:
            if exc.strerror not in BENIGN:
                self.errors.append(f"{fn.__name__}: {exc!r}")
        except Exception as exc:  # a worker's bug must fail the test, not vanish in a thread
            self.errors.append(f"{fn.__name__}: {exc!r}")

    def _find(self) -> None:
        while not self.stop.is_set():
            proc = subprocess.Popen(
                ["find", self.mp, "-type", "f", "-printf", ""], stderr=subprocess.PIPE, text=True
            )
            self.tids.add(proc.pid)
            _, err = proc.communicate(timeout=120)
            bad = [line for line in err.splitlines() if not any(b in line for b in BENIGN)]
            if bad:
                self.errors.append("find: " + "; ".join(bad[:5]))
            self.finds += 1

    def _write(self) -> None:
        n = 0
        new = os.path.join(self.mp, "new")
        os.makedirs(new, exist_ok=True)
        while not self.stop.is_set():
            rel = f"d{n % DIRS}/f{n % DIRS}.txt"  # existing files (the base's)
            line = f"r{self.round}-{n}"
            with open(os.path.join(self.mp, rel), "a") as fh:
                fh.write(line + "\n")
            self.appended.setdefault(rel, []).append(line)
            if len(self.renamed) < NEW_FILES:  # (then appends only: what a checkpoint records stays bounded)
                tmp = os.path.join(new, f"{line}.tmp")
                with open(tmp, "w") as fh:
                    fh.write(line + "\n")
                os.rename(tmp, os.path.join(new, f"{line}.txt"))
                self.renamed.append(f"new/{line}.txt")
            n += 1

    def _walk(self) -> None:
        # lstat of every file: each becomes a node libfuse knows (find -type f reads d_type
        # and looks nothing up), so a base move makes the watcher invalidate them all
        while not self.stop.is_set():
            for dirpath, _dirs, files in os.walk(self.mp):
                for k, name in enumerate(files):
                    p = os.path.join(dirpath, name)
                    try:
                        os.lstat(p)
                        if k % 10 == 0:
                            with open(p, "rb") as fh:
                                fh.read(4096)
                    except FileNotFoundError:
                        continue  # renamed by the writer meanwhile
                if self.stop.is_set():
                    break


def _sample_threads(pid: int, tids: set[int], stop: threading.Event) -> None:
    """Every thread id of a daemon while it runs: the kernel log names the faulting thread."""
    while not stop.is_set() and pid_alive(pid):
        try:
            tids.update(int(t) for t in os.listdir(f"/proc/{pid}/task"))
        except FileNotFoundError:
            return
        stop.wait(0.005)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", BACKENDS)
def test_soak_mount_load_checkpoint_unmount(home: Home, vault: Vault, tmp_path: Path, backend: str) -> None:
    home.settings.zygote = False  # each daemon spawned, our child: its exit status is read
    require_fuse()
    commit_files(vault, "main", {f"d{i % DIRS}/f{i}.txt": b"%d\n" % i for i in range(FILES)})
    before, why = kernellog.read()
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    ours: set[int] = {os.getpid()}  # pids and thread ids the kernel log may name
    expected: dict[str, list[str]] = {}
    renamed: list[str] = []
    started = time.monotonic()
    rounds = mid_saved = finds = 0
    status = -1
    problems: list[str] = []  # what is wrong with the data: reported after the crash checks
    while rounds < ROUNDS and (rounds < MIN_ROUNDS or time.monotonic() - started < BUDGET_S):
        info = _mount(home, vault, mp, backend)
        ours.add(info.pid)
        sampling = threading.Event()
        sampler = threading.Thread(target=_sample_threads, args=(info.pid, ours, sampling))
        sampler.start()
        try:
            with Load(mp, rounds, ours) as load:
                time.sleep(LOAD_S)
                cp = _cli(ours, "--json", "checkpoint", "save")  # mid-load: the base moves under the walks
                # busy (75) is a fair answer while three workers write: the overlay kept changing
                if cp.returncode not in (0, 75):
                    problems.append(f"round {rounds}: checkpoint save under load: {cp.stdout.strip()}")
                mid_saved += cp.returncode == 0
                time.sleep(LOAD_S)
                assert pid_alive(info.pid), f"round {rounds}: the daemon died under load"
            problems.extend(f"round {rounds}: {e}" for e in load.errors)
            finds += load.finds
            for rel, lines in load.appended.items():
                expected.setdefault(rel, []).extend(lines)
            renamed.extend(load.renamed)
            # as in the report: a walk that looks every file up, a write, a checkpoint (the
            # watcher then invalidates every path it knows), and the unmount at once
            for dirpath, _dirs, files in os.walk(mp):
                for name in files:
                    os.lstat(os.path.join(dirpath, name))
            with open(os.path.join(mp, "d0", "f0.txt"), "a") as fh:
                fh.write(f"last-{rounds}\n")
            expected.setdefault("d0/f0.txt", []).append(f"last-{rounds}")
            if rounds % 2 == 0:  # the CLI, as a person or an agent runs it
                cp = _cli(ours, "checkpoint", "save")
                if cp.returncode != 0:
                    problems.append(f"round {rounds}: checkpoint save after the load: {cp.stderr.strip()}")
                un = _cli(ours, "--json", "unmount")
                assert un.returncode == 0, f"round {rounds}: unmount: {un.stdout}{un.stderr}"
                assert json.loads(un.stdout)["kind"] == "unmount"
            else:  # the API and fusermount3: no process start between the move and the unmount
                try:
                    checkpoint.save(vault)
                except AvfsError as exc:
                    problems.append(f"round {rounds}: checkpoint save after the load: {exc}")
                subprocess.run(["fusermount3", "-u", mp] if backend == "fuse" else ["umount", mp], check=True)
            _, status = os.waitpid(info.pid, 0)  # our child: mounts.mount spawned it
        finally:
            sampling.set()
            sampler.join()
            if mounts.mounted_at(mp):
                mounts.unmount(home, vault, "main", lazy=True)
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            how = (
                f"signal {os.WTERMSIG(status)}"
                if os.WIFSIGNALED(status)
                else f"exit {os.WEXITSTATUS(status)}"
            )
            log, _ = kernellog.read()
            faults = kernellog.new_faults(before or [], log or [])
            pytest.fail(f"round {rounds}: the mount daemon ended by {how}; kernel log:\n" + "\n".join(faults))
        # its teardown ran to the end: nothing left for doctor
        assert not mounts.mounted_at(mp)
        assert mounts.list_mounts(home) == []
        assert not os.path.exists(os.path.join(vault.path, "worktrees", "avfs-main"))
        assert not os.path.exists(mounts.registry_path(vault, "main")[: -len(".json")] + ".exec")
        assert maintenance.mount_findings(home) == []
        rounds += 1

    print(
        f"soak[{backend}]: {rounds} rounds in {time.monotonic() - started:.1f} s, {finds} finds,"
        f" {sum(len(v) for v in expected.values())} appends, {len(renamed)} renames,"
        f" {mid_saved} checkpoints under load"
    )

    after, why_after = kernellog.read()
    if before is None or after is None:
        if IN_CI:
            pytest.fail(f"the kernel log must be readable in CI: {why or why_after}")
        print(f"soak: kernel log not checked ({why or why_after}); the daemons' exit statuses were")
    else:
        new = kernellog.new_faults(before, after)
        mine = kernellog.of(new, ours)
        assert mine == [], "processes of this test faulted:\n" + "\n".join(mine)
        if IN_CI:
            assert new == [], "the kernel log gained fault lines during the soak:\n" + "\n".join(new)
        elif new:
            print("fault lines of other processes on this machine during the soak:\n" + "\n".join(new))

    # every acknowledged write is there, and nothing else
    ws = vault.workspace("main")
    for rel, lines in expected.items():
        i = int(rel.split("/")[1][1:-4])
        got = bytes(ws.read(rel)).decode().splitlines()
        want = [str(i), *lines]
        if got != want:
            problems.append(
                f"{rel}: missing {[x for x in want if x not in got]}, unexpected {[x for x in got if x not in want]}"
            )
    got_new = {e.name for e in ws.listdir("new")}
    want_new = {p.split("/")[1] for p in renamed}
    if got_new != want_new:
        problems.append(
            f"new/: missing {sorted(want_new - got_new)}, unexpected {sorted(got_new - want_new)}"
        )
    assert problems == [], "no daemon crashed, but the data is wrong:\n" + "\n".join(problems)
