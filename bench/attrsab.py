"""What `.gitattributes` conversions cost a checkpoint (core/workspace/wsattrs.py): a vault of
N files (``--files``, 10,000 by default, 100 directories), rounds of ``--changed`` files
written (CRLF text) and ``checkpoint.save`` in process, its CPU time (``time.process_time``)
and wall time, in homes without a ``.gitattributes`` and with ``* text=auto`` at the root:
the first checkpoint of a process (``cold``: with attributes that convert a file it loads
libgit2, ~40-80 ms, which `avfs checkpoint save` otherwise does not) and the third
(``warm``: a process's second checkpoint loads libgit2 in any case, core/operations/checkpoint.py).

A/B: ``--a`` and ``--b`` name the two builds' source trees (each first on ``sys.path``
through ``PYTHONPATH``); every round runs each build's checkpoint in a process of its own, in
turn (A, B, A, B...), each in a home of its own made once, so load spreads over both.
Medians and the B/A ratios are printed (``--json``: one document)::

    python -m bench.attrsab --a /tmp/main-tree --b . [--files 10000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

INNER = r"""
import json, sys, time
from avfs_git import open_home
from avfs_git.core.operations import checkpoint
home = open_home(sys.argv[1])
vault = home.vault("v")
ws = vault.workspace("main")
n, rnd = int(sys.argv[2]), int(sys.argv[3])
out = {}
for step in ("cold", "second", "warm"):
    for i in range(n):
        ws.write(f"d{i % 100}/f{(i * 7 + rnd) % 100}.txt", f"{step} {rnd}\r\nline\r\n".encode())
    c0, t0 = time.process_time(), time.perf_counter()
    res = checkpoint.save(vault, message=f"r{rnd}")
    c1, t1 = time.process_time(), time.perf_counter()
    assert res.created, res
    out[step] = {"cpu": c1 - c0, "wall": t1 - t0}  # (the second loads libgit2 on main)
print(json.dumps(out))
"""


def _make_home(root: str, env: dict[str, str], files: int, attrs: bool) -> str:
    src = os.path.join(root, "src")
    os.makedirs(src)
    for i in range(files):
        d = os.path.join(src, f"d{i % 100}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i // 100}.txt"), "w") as fh:
            fh.write(f"file {i}\n")
    if attrs:
        with open(os.path.join(src, ".gitattributes"), "w") as fh:
            fh.write("* text=auto\n")
    home = os.path.join(root, "home")
    subprocess.run(
        [sys.executable, "-m", "avfs_git", "--home", home, "vault", "create", "v", "--from", src],
        env=env,
        check=True,
        capture_output=True,
    )
    shutil.rmtree(src)
    return home


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="the A build's source tree (put first on sys.path)")
    ap.add_argument("--b", required=True, help="the B build's source tree")
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--changed", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="attrsab-")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AVFS_", "GIT_"))}
    base.update(AVFS_LAYERS="off", AVFS_SERVER="off", GIT_CONFIG_NOSYSTEM="1")
    builds = {"A": os.path.abspath(args.a), "B": os.path.abspath(args.b)}
    try:
        homes: dict[tuple[str, str], str] = {}
        for build, tree in builds.items():
            env = {**base, "PYTHONPATH": tree}
            for kind in ("plain", "attrs"):
                homes[(build, kind)] = _make_home(
                    os.path.join(root, f"{build}-{kind}"), env, args.files, kind == "attrs"
                )
        got: dict[tuple[str, str], list[dict[str, dict[str, float]]]] = {k: [] for k in homes}
        for rnd in range(args.rounds):
            for kind in ("plain", "attrs"):
                for build in ("A", "B") if rnd % 2 == 0 else ("B", "A"):
                    env = {**base, "PYTHONPATH": builds[build]}
                    out = subprocess.run(
                        [sys.executable, "-c", INNER, homes[(build, kind)], str(args.changed), str(rnd)],
                        env=env,
                        check=True,
                        capture_output=True,
                        text=True,
                        cwd=root,
                    ).stdout
                    got[(build, kind)].append(json.loads(out.splitlines()[-1]))
        report: dict[str, dict[str, float]] = {}
        for (build, kind), rows in got.items():
            for step in ("cold", "second", "warm"):
                report[f"{build}-{kind}-{step}"] = {
                    "cpu_ms": statistics.median(r[step]["cpu"] for r in rows) * 1000,
                    "wall_ms": statistics.median(r[step]["wall"] for r in rows) * 1000,
                }
        for kind in ("plain", "attrs"):
            for step in ("cold", "second", "warm"):
                a, b = report[f"A-{kind}-{step}"], report[f"B-{kind}-{step}"]
                report[f"ratio-{kind}-{step}"] = {
                    "cpu": b["cpu_ms"] / a["cpu_ms"],
                    "wall": b["wall_ms"] / a["wall_ms"],
                }
        report["load"] = {"1min": os.getloadavg()[0]}
        if args.json:
            print(json.dumps(report))
        else:
            for k, v in report.items():
                print(k, {kk: round(vv, 2) for kk, vv in v.items()})
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
