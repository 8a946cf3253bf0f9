"""What keeping the files a merge leaves alone costs a merge into a mounted fork
(core/workspace/wsforms.py, the twenty-fifth round's crlf1): a vault of ``--files`` text
files (10,000 by default, 100 directories), and per round and side a fork ``fN`` of it
mounted on the overlay backend, a fork ``gN`` of ``fN`` with one change checkpointed, and
``avfs --vault v:fN merge gN --no-ff`` timed: its CPU (the command and its children, a
cpuacct cgroup of its own) and that of the mount's daemon over the merge
(``/proc/PID/stat``). Two cases: ``plain`` (``gN`` adds a file: no attribute changes, the
merge every agent makes) and ``attrs`` (``gN`` adds a root ``.gitattributes`` of ``* text=auto
eol=crlf``: every file's checkout form changes, its blob not; main's code wrote each in the
new form through the mount, this one keeps the form the mount shows).

A/B: ``--a`` and ``--b`` name the two builds' source trees (each first on ``sys.path``
through ``PYTHONPATH``); rounds interleave the sides (A, B, then B, A...), each side in a
home of its own made once. Medians and B/A ratios are printed as one JSON document and
written to ``bench/results/crlf1-<UTC stamp>.json``::

    python -m bench.formsab --a /tmp/main-tree --b . [--files 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .abkit import load, order, stamped, write_json

CGROUP = Path("/sys/fs/cgroup/cpuacct")


def _avfs(env: dict[str, str], home: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--home", home, *args], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"avfs {' '.join(args)}: {proc.stdout}{proc.stderr}")
    return proc.stdout


def _make_home(root: Path, env: dict[str, str], files: int) -> str:
    src = root / "src"
    for i in range(files):
        d = src / f"d{i % 100}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i // 100}.txt").write_text(f"file {i}\nline two\n")
    home = str(root / "home")
    _avfs(env, home, "vault", "create", "v", "--from", str(src))
    shutil.rmtree(src)
    return home


def _daemon_pid(mp: str) -> int | None:
    """The mount's daemon: the process whose command line names the mount point."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if mp.encode() in args and any(b"avfs" in a for a in args):
            return int(pid)
    return None


def _proc_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed_merge(
    env: dict[str, str], home: str, fork: str, source: str, tag: str, mp: str
) -> tuple[float, float]:
    """(the merge command's CPU s, the daemon's CPU s over it)."""
    group = CGROUP / f"h-crlf1-{tag}-{os.getpid()}"
    group.mkdir()
    try:
        daemon = _daemon_pid(mp)
        d0 = _proc_cpu(daemon)
        cmd = [
            sys.executable,
            "-m",
            "avfs_git",
            "--home",
            home,
            "--vault",
            f"v:{fork}",
            "merge",
            source,
            "--no-ff",
        ]
        script = f'echo $$ > {group}/cgroup.procs && exec "$@"'
        proc = subprocess.run(["sh", "-c", script, "sh", *cmd], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"merge: {proc.stdout}{proc.stderr}")
        cpu = int((group / "cpuacct.usage").read_text()) / 1e9
        return cpu, _proc_cpu(daemon) - d0
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def _round(env: dict[str, str], home: str, tmp: Path, case: str, n: int, side: str) -> tuple[float, float]:
    fork, source = f"f{case}{n}", f"g{case}{n}"
    _avfs(env, home, "vault", "fork", "v:main", fork)
    mp = tmp / f"m-{fork}"
    mp.mkdir()
    _avfs(env, home, "--vault", f"v:{fork}", "mount", "--backend", "overlay", str(mp))
    try:
        for p in sorted(mp.glob("d*/f*.txt")):  # the kernel holds every file's size and pages
            p.read_bytes()
        _avfs(env, home, "vault", "fork", f"v:{fork}", source)
        if case == "attrs":
            _avfs(env, home, "--vault", f"v:{source}", "write", ".gitattributes", "* text=auto eol=crlf\n")
        else:
            _avfs(env, home, "--vault", f"v:{source}", "write", "new.txt", "new\n")
        _avfs(env, home, "--vault", f"v:{source}", "checkpoint", "save", "-m", "g")
        got = _timed_merge(env, home, fork, source, f"{side}{case}{n}", str(mp))
        if case == "attrs":  # (the untouched files as they were, whole, on both sides' A/B)
            assert (mp / "d0" / "f0.txt").stat().st_size in (
                len(b"file 0\nline two\n"),
                len(b"file 0\r\nline two\r\n"),
            )
        return got
    finally:
        _avfs(env, home, "--vault", f"v:{fork}", "unmount", str(mp))
        _avfs(env, home, "vault", "delete", f"v:{source}", "--force")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="the A build's source tree (main)")
    ap.add_argument("--b", required=True, help="the B build's source tree (this)")
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(
        tempfile.mkdtemp(
            prefix="crlf1-formsab-", dir="/tmp/h-crlf1" if os.path.isdir("/tmp/h-crlf1") else None
        )
    )
    sides = {"A": str(Path(args.a).resolve()), "B": str(Path(args.b).resolve())}
    # a `python -m` process puts its directory first on sys.path: not this checkout's
    os.chdir(tmp)
    envs: dict[str, dict[str, str]] = {}
    homes: dict[str, str] = {}
    for name, tree in sides.items():
        # (no resident server: the command's work is then in its own process, the cgroup's)
        env = {**os.environ, "PYTHONPATH": tree, "AVFS_HOME": str(tmp / name / "home"), "AVFS_SERVER": "off"}
        (tmp / name).mkdir()
        envs[name] = env
        homes[name] = _make_home(tmp / name, env, args.files)
    cpu: dict[str, dict[str, list[float]]] = {c: {s: [] for s in sides} for c in ("plain", "attrs")}
    daemon: dict[str, dict[str, list[float]]] = {c: {s: [] for s in sides} for c in ("plain", "attrs")}
    loads: list[float] = []
    try:
        for n in range(args.rounds):
            for case in ("plain", "attrs"):
                for side in order(list(sides), n):
                    loads.append(load())
                    c, d = _round(envs[side], homes[side], tmp / side, case, n, side)
                    cpu[case][side].append(c)
                    daemon[case][side].append(d)
                    print(f"round {n} {case} {side}: merge {c:.3f} s CPU, daemon {d:.2f} s", file=sys.stderr)
    finally:
        from avfs_git.core.vaults import layers

        for home in homes.values():
            layers.unmount(home)  # (its image's file system)
        shutil.rmtree(tmp, ignore_errors=True)

    def summary(xs: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
        return {
            case: {
                "median_s": {s: statistics.median(v) for s, v in per.items()},
                "b_over_a_median_of_ratios": statistics.median(
                    b / a for a, b in zip(per["A"], per["B"], strict=True)
                ),
                "rounds": per,
            }
            for case, per in xs.items()
        }

    doc = {
        "what": "avfs merge --no-ff into a mounted (overlay) fork of a 10k-file vault: CPU, A=main B=crlf1",
        "files": args.files,
        "sides": sides,
        "merge_cpu": summary(cpu),
        "daemon_cpu": summary(daemon),
        "load_1min": {"min": min(loads), "median": statistics.median(loads), "max": max(loads)},
    }
    write_json(stamped("crlf1"), doc, announce=True)
    import json

    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
