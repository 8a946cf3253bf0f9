"""Row 2 of issue 30 for a mount of a base mounted before (docs/lazy.md, "The index kept per
base"): `vault clone --lazy`, mount `main`, `ls`, `git status`, unmount (not timed); fork
`second` from `main`; mount it, `ls`, then its first `git status` (timed), the daemon's CPU
from `ls` to that answer and the objects that status fetched. This tree against another
(``--baseline SRC``, through ``PYTHONPATH`` as bench/lazycases.py runs it), rounds
alternating, and the first `git status` in a whole vault's mount of the same repository.

Run: ``.venv/bin/python -m bench.lazysecond --served DIR [--repeats N] [--baseline SRC]``
(``DIR``: a served repository ``DIR/big.git``, as ``bench.lazycases --monorepo --served
DIR`` builds it). The result goes to ``bench/results/lazysecond-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .lazycases import _cpu_ticks, _objects
from .remotecases import _daemon

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")


def _avfs(env: dict[str, str], *args: str, check: bool = True) -> None:
    subprocess.run([PY, "-m", "avfs_git", *args], env=env, check=check, capture_output=True, cwd="/")


def _status(mp: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(["git", "status", "--porcelain"], cwd=mp, capture_output=True)
    took = time.perf_counter() - start
    if proc.returncode or proc.stdout:
        raise RuntimeError(
            f"git status in {mp}: {proc.returncode} {proc.stdout[:200]!r} {proc.stderr[:200]!r}"
        )
    return took


def _round(env: dict[str, str], home: Path, url: str, name: str, mp: Path) -> dict[str, float]:
    _avfs(env, "vault", "clone", "--lazy", url, name)
    _avfs(env, "mount", f"{name}:main", str(mp))
    os.listdir(mp)
    _status(mp)
    _avfs(env, "unmount", f"{name}:main", check=False)
    _avfs(env, "vault", "fork", f"{name}:main", "second")
    vault = home / "vaults" / f"{name}.git"
    start = time.perf_counter()
    _avfs(env, "mount", f"{name}:second", str(mp))
    mounted = time.perf_counter() - start
    os.listdir(mp)
    pid = json.loads((vault / "avfs" / "mounts" / "second.json").read_text())["pid"]
    ticks, before = _cpu_ticks(pid), _objects(vault)
    status = _status(mp)
    cpu = (_cpu_ticks(pid) - ticks) / os.sysconf("SC_CLK_TCK")
    fetched = _objects(vault) - before
    _avfs(env, "unmount", f"{name}:second", check=False)
    return {"mount_s": mounted, "status_s": status, "daemon_cpu_s": cpu, "fetched": fetched}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--served", required=True, help="the directory holding big.git")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--baseline", help="another avfs source tree to time in the same run")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    daemon, base = _daemon(Path(args.served).resolve())
    url = f"{base}/big.git"
    sides = ["this", "baseline"] if args.baseline else ["this"]
    rounds: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
    whole: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="avfs-bench-second-") as tmp:
            t = Path(tmp)
            common = {"AVFS_PROGRESS": "never", "AVFS_SERVER": "off", "AVFS_LAYERS": "off"}
            envs = {
                "this": {**os.environ, **common, "AVFS_HOME": str(t / "this")},
                "baseline": {
                    **os.environ,
                    **common,
                    "AVFS_HOME": str(t / "base"),
                    "PYTHONPATH": args.baseline or "",
                },
            }
            wenv = {**os.environ, **common, "AVFS_HOME": str(t / "whole")}
            _avfs(wenv, "vault", "clone", url, "w")
            wmp = t / "whole-mnt"
            wmp.mkdir()
            for i in range(args.repeats):
                _avfs(wenv, "mount", "w:main", str(wmp))
                os.listdir(wmp)
                whole.append(_status(wmp))
                _avfs(wenv, "unmount", "w:main", check=False)
                for side in sides if i % 2 == 0 else sides[::-1]:
                    mp = t / f"{side}-mnt-{i}"
                    mp.mkdir()
                    rounds[side].append(_round(envs[side], Path(envs[side]["AVFS_HOME"]), url, f"v{i}", mp))
    finally:
        daemon.terminate()
        daemon.wait(10)
    result: dict[str, object] = {
        "case": "first git status after ls in a lazy mount of a base mounted before (a second fork)",
        "repeats": args.repeats,
        "load_average_before_after": [load, os.getloadavg()[0]],
        "whole_vault_first_status_s": whole,
        "whole_vault_first_status_s_median": statistics.median(whole),
        "baseline": args.baseline,
    }
    for side, got in rounds.items():
        for key in ("mount_s", "status_s", "daemon_cpu_s"):
            values = [r[key] for r in got]
            result[f"{side}_{key}"] = values
            result[f"{side}_{key}_median"] = statistics.median(values)
        result[f"{side}_fetched_max"] = max(r["fetched"] for r in got)
    result["status_ratio_to_whole"] = result["this_status_s_median"] / statistics.median(whole)  # type: ignore[operator]
    out = ROOT / "bench" / "results" / time.strftime("lazysecond-%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
