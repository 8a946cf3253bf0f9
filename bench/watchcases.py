"""``watch_latency``: a write in a mounted fork to its event in a running ``avfs --json
watch`` (issue 29's target: at most 100 ms median), per backend; the baseline is the same
write seen by an inotify watch of a native directory in the same run (the kernel's own
floor for "a watcher learns of a write")."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Callable

from .context import Context
from .timing import Result, Target, median

ROUNDS = 40
TIMEOUT_S = 10.0


def bench_watch_latency(ctx: Context, labels: list[str]) -> None:
    """For each mount backend: ``avfs --json watch`` runs as a subprocess; each round
    writes one new file in the mount and times until its ``created`` event line is read."""
    del labels  # the tree's size does not matter: one fork, one file per round
    from avfs_git.core.operations import checkpoint
    from avfs_git.mount.side import open_home
    from avfs_git.ops import mounts

    native = _native(ctx)
    for backend in ctx.backends:
        hdir = ctx.fx.new_dir(f"watch-{backend}")
        mp = ctx.fx.new_dir(f"watch-mnt-{backend}")
        home = open_home(str(hdir / "home"))
        vault = home.create_vault("w")
        vault.workspace("main").write("README.md", b"x\n")
        checkpoint.save(vault, "main", name="base")
        mounts.mount(home, vault, "main", str(mp), backend=backend)
        proc = subprocess.Popen(
            [ctx.avfs_bin, "--home", home.path, "--json", "watch", "w:main"], stdout=subprocess.PIPE
        )
        try:
            reader = _Lines(proc)
            reader.until(lambda d: d["kind"] == "watch_cursor")
            samples = []
            for i in range(ROUNDS):
                name = f"lat{i:03d}.txt"
                t0 = time.perf_counter()
                with open(mp / name, "w") as fh:
                    fh.write("x")
                got = reader.until(
                    lambda d, n=name: d["kind"] == "watch_event" and d["event"].get("path") == n
                )
                samples.append((time.perf_counter() - t0) * 1e3 if got else TIMEOUT_S * 1e3)
        finally:
            proc.terminate()
            proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
            mounts.unmount(home, vault, "main")
            vault.close()
            ctx.fx.done_with(hdir)
            ctx.fx.done_with(mp)
        ctx.emit(
            Result(
                f"watch_latency_{backend}",
                "-",
                median(samples),
                samples,
                what=f"a new file written in the {backend} mount to its event in a running `avfs --json watch`",
                baseline="inotify on a native directory (the kernel's floor)",
                baseline_ms=median(native),
                baseline_samples_ms=native,
                target=Target(max_ms=100.0),
            )
        )


def _native(ctx: Context) -> list[float]:
    from inotify_simple import INotify, flags

    d = ctx.fx.new_dir("watch-native")
    ino = INotify()
    ino.add_watch(str(d), flags.CLOSE_WRITE)
    out = []
    try:
        for i in range(ROUNDS):
            t0 = time.perf_counter()
            with open(d / f"n{i}", "w") as fh:
                fh.write("x")
            ino.read(timeout=int(TIMEOUT_S * 1000))
            out.append((time.perf_counter() - t0) * 1e3)
    finally:
        ino.close()
        ctx.fx.done_with(d)
    return out


class _Lines:
    """NDJSON from a subprocess, read as it comes (no buffering between select and read)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buf = b""

    def until(self, want: Callable[[dict[str, object]], bool]) -> bool:
        end = time.monotonic() + TIMEOUT_S
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                doc = json.loads(line)
                if want(doc):
                    return True
            left = end - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    return False
                self.buf += chunk


WATCH_BENCHMARKS: dict[str, Callable[[Context, list[str]], None]] = {"watch_latency": bench_watch_latency}
