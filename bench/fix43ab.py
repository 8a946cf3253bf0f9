"""What fix43's signed side names cost (core/workspace/sidekey.py), two builds side by side,
rounds interleaved:

- ``restore``: `avfs checkpoint restore` through a live overlay mount, 100 files rewritten
  (each one a swap's side file: linked aside, unlinked, written), back and forth between
  two checkpoints, the CLI's wall time (ms);
- ``swaps``: 200 swaps (:func:`.liveswap.swap`, each an exchange with a side file) on a
  directory watched by the mount daemon's classifier, then its read of the kernel's queue,
  in process, the CPU time (ms) of the swaps and the classification together.

    python -m bench.fix43ab --a /work/h-fix43-base --b /work/h-fix43 [--rounds 7] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from .abkit import ab_report, scratch

_SWAPS = r"""
import os, shutil, sys, time, tempfile
from avfs_git.core.store.gitstore import GitStore
from avfs_git.core.types import MODE_BLOB
from avfs_git.core.workspace.livedir import LiveDir
from avfs_git.core.workspace.liveswap import swap
from avfs_git.core.workspace.upperwatch import UpperWatch
top = tempfile.mkdtemp(prefix="fix43-swaps-")
d = os.path.join(top, "upper")
os.mkdir(d)
for i in range(200):
    with open(os.path.join(d, f"f{i}"), "wb") as fh:
        fh.write(b"old\n")
got = []
w = UpperWatch(d, lambda p: None, lambda: [], lambda: "b:0")
w.on_events = got.extend
w._rewatch()
live = LiveDir(d, GitStore(sys.argv[1]), upper=d)
t = time.process_time()
for i in range(200):
    assert swap(live, f"f{i}", (MODE_BLOB, b"new\n"), lambda f: f == (MODE_BLOB, b"old\n"), False) is None
w.changed_since(None)
print((time.process_time() - t) * 1000)
w.close()
shutil.rmtree(top)
assert sorted(p for _, k, p, _ in got) == sorted(f"f{i}" for i in range(200)), got[:5]
"""


def _avfs(build: str, home: str, *args: str) -> str:
    env = {**os.environ, "AVFS_HOME": home, "AVFS_SERVER": "off", "AVFS_PROGRESS": "never"}
    exe = os.path.join(build, ".venv", "bin", "avfs")
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, check=True).stdout


class _Mounted:
    """A build's home with vault ``p`` mounted (overlay), two checkpoints 100 files apart."""

    def __init__(self, build: str, work: str, name: str) -> None:
        self.build, self.home = build, os.path.join(work, name, "home")
        src = os.path.join(work, name, "src")
        os.makedirs(src)
        for i in range(100):
            with open(os.path.join(src, f"f{i:03d}.txt"), "w") as fh:
                fh.write(f"one {i}\n")
        _avfs(build, self.home, "vault", "create", "p", "--from", src)
        info = json.loads(_avfs(build, self.home, "--json", "mount", "--backend", "overlay", "p:main"))
        self.mp = info["mount"]["mountpoint"]
        self.one = self._head()
        for i in range(100):
            with open(os.path.join(self.mp, f"f{i:03d}.txt"), "w") as fh:
                fh.write(f"two {i}\n")
        _avfs(build, self.home, "--vault", "p:main", "checkpoint", "save", "-m", "two")
        self.two = self._head()
        self.at = self.two

    def _head(self) -> str:
        vault = os.path.join(self.home, "vaults", "p.git")
        return subprocess.run(
            ["git", "--git-dir", vault, "rev-parse", "refs/heads/main"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    def restore(self) -> float:
        to = self.one if self.at == self.two else self.two
        t = time.perf_counter()
        _avfs(self.build, self.home, "--vault", "p:main", "checkpoint", "restore", to)
        ms = (time.perf_counter() - t) * 1000
        self.at = to
        with open(os.path.join(self.mp, "f000.txt")) as fh:
            assert fh.read().startswith("one" if to == self.one else "two")
        return ms

    def close(self) -> None:
        subprocess.run(
            [os.path.join(self.build, ".venv", "bin", "avfs"), "unmount", "p:main"],
            env={**os.environ, "AVFS_HOME": self.home, "AVFS_SERVER": "off"},
            capture_output=True,
            check=False,
        )


def _swaps(build: str, store: str) -> float:
    py = os.path.join(build, ".venv", "bin", "python")
    out = subprocess.run([py, "-c", _SWAPS, store], cwd=build, capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    sides = {"a": args.a, "b": args.b}
    mounted: dict[str, _Mounted] = {}
    loads = [os.getloadavg()]
    with scratch("fix43ab-") as tmp:
        work = str(tmp)
        try:
            _rounds(args, sides, work, mounted, loads)
        finally:
            for m in mounted.values():
                m.close()  # (then scratch unmounts the homes' layers and removes them)
    return 0


def _rounds(
    args: argparse.Namespace, sides: dict[str, str], work: str, mounted: dict[str, _Mounted], loads: list[Any]
) -> None:
    store = os.path.join(work, "store.git")
    subprocess.run(["git", "init", "-q", "--bare", store], check=True)
    for side, build in sides.items():
        mounted[side] = _Mounted(build, work, side)
    got: dict[str, dict[str, list[float]]] = {c: {"a": [], "b": []} for c in ("restore", "swaps")}
    for rnd in range(args.rounds):
        order = ("a", "b") if rnd % 2 == 0 else ("b", "a")
        for side in order:
            got["restore"][side].append(mounted[side].restore())
        for side in order:
            got["swaps"][side].append(_swaps(sides[side], store))
        loads.append(os.getloadavg())
    ab_report(args, got, loads)


if __name__ == "__main__":
    sys.exit(main())
