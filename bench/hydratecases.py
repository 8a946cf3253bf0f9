"""Fetching a lazy vault's files ahead (docs/lazy.md): `avfs vault hydrate` and a mount's
background prefetch, against plain git's batched lazy fetch on the same `git daemon` on
127.0.0.1, in the same run, interleaved.

The repository is real files: a few released packages installed in this checkout's venv
(rich, click, hypothesis, pygments, mypy, jsonschema: ~1,700 files, ~40 MB), one commit,
served with ``uploadpack.allowFilter`` and ``uploadpack.allowAnySHA1InWant``. For each
repeat, from a fresh lazy clone each time (the clone itself is not timed):

- ``read_cold``: every file of one package (``pygments/``) read through a lazy mount, each
  fetched on its first read (the mount without prefetch);
- ``hydrate_then_read``: ``avfs vault hydrate pygments`` (a process), then the same reads;
- ``git_checkout_path``: plain git's own lazy fetch of the same files: ``git checkout main --
  pygments`` in a ``--filter=blob:none --no-checkout`` clone (git fetches the missing blobs
  of a checkout in one batch);
- ``hydrate_all`` / ``git_checkout_all``: the same for the whole tree;
- ``prefetch_all``: a mount with ``"prefetch": true`` (budgets out of the way), until its
  status says ``done``.

Run: ``.venv/bin/python -m bench.hydratecases [--repeats N]``; the result goes to
``bench/results/hydrate-<time>.json`` and is printed.
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
import time
from collections.abc import Callable
from pathlib import Path

from .remotecases import _daemon

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rich", "click", "hypothesis", "pygments", "mypy", "jsonschema")
PACKAGE = "pygments"


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _build(served: Path, work: Path) -> int:
    site = next((ROOT / ".venv" / "lib").glob("python3*/site-packages"))
    for pkg in PACKAGES:
        shutil.copytree(
            site / pkg, work / pkg, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    _git("init", "-q", "-b", "main", str(work))
    _git("-C", str(work), "add", "-A")
    _git(
        "-c",
        "user.name=bench",
        "-c",
        "user.email=bench@example.com",
        "-C",
        str(work),
        "commit",
        "-q",
        "-m",
        "one",
    )
    _git("clone", "-q", "--bare", str(work), str(served / "big.git"))
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant"):
        _git("--git-dir", str(served / "big.git"), "config", key, "true")
    return len(_git("-C", str(work), "ls-files").splitlines())


def _read_all(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                total += len(fh.read())
    return total


def _timed(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    avfs = str(ROOT / ".venv" / "bin" / "avfs")
    times: dict[str, list[float]] = {
        k: []
        for k in (
            "read_cold",
            "hydrate_then_read",
            "hydrate_path",
            "git_checkout_path",
            "hydrate_all",
            "git_checkout_all",
            "prefetch_all",
        )
    }
    with tempfile.TemporaryDirectory(prefix="avfs-bench-hydrate-") as tmp:
        t = Path(tmp)
        (t / "served").mkdir()
        files = _build(t / "served", t / "work")
        daemon, base = _daemon(t / "served")
        url = f"{base}/big.git"
        home = t / "home"
        env = {
            **os.environ, "AVFS_HOME": str(home), "AVFS_PROGRESS": "never", "AVFS_SERVER": "off", "AVFS_LAYERS": "off"
        }  # fmt: skip

        def avfs_run(*a: str) -> None:
            subprocess.run([avfs, *a], check=True, env=env, capture_output=True)

        n = 0

        def fresh() -> str:
            nonlocal n
            n += 1
            avfs_run("vault", "clone", "--lazy", url, f"b{n}")
            return f"b{n}"

        def mounted_read(name: str) -> None:
            mp = t / f"mnt-{name}"
            mp.mkdir()
            avfs_run("mount", f"{name}:main", str(mp))
            try:
                _read_all(mp / PACKAGE)
            finally:
                avfs_run("unmount", f"{name}:main")

        try:
            for i in range(args.repeats):
                name = fresh()
                times["read_cold"].append(_timed(mounted_read, name))
                name = fresh()
                h = _timed(avfs_run, "--vault", f"{name}:main", "vault", "hydrate", PACKAGE)
                times["hydrate_path"].append(h)
                times["hydrate_then_read"].append(h + _timed(mounted_read, name))
                clone = t / f"git-{i}"
                _git("clone", "-q", "--filter=blob:none", "--no-checkout", url, str(clone))
                times["git_checkout_path"].append(
                    _timed(_git, "-C", str(clone), "checkout", "-q", "main", "--", PACKAGE)
                )
                shutil.rmtree(clone)
                name = fresh()
                times["hydrate_all"].append(_timed(avfs_run, "--vault", f"{name}:main", "vault", "hydrate"))
                _git("clone", "-q", "--filter=blob:none", "--no-checkout", url, str(clone))
                times["git_checkout_all"].append(_timed(_git, "-C", str(clone), "checkout", "-q", "main"))
                shutil.rmtree(clone)
                name = fresh()
                cfg = home / "vaults" / f"{name}.git" / "avfs" / "config.json"
                data = json.loads(cfg.read_text()) if cfg.exists() else {}
                data.update(prefetch=True, prefetch_bandwidth=1e12, prefetch_disk_bytes=1 << 50)
                cfg.write_text(json.dumps(data))
                mp = t / f"mnt-pf-{i}"
                mp.mkdir()
                status = home / "vaults" / f"{name}.git" / "avfs" / "prefetch" / "main.json"
                start = time.perf_counter()
                avfs_run("mount", f"{name}:main", str(mp))
                while True:
                    try:
                        if json.loads(status.read_text())["state"] in ("done", "error", "disk_budget"):
                            break
                    except (OSError, ValueError):
                        pass
                    time.sleep(0.02)
                times["prefetch_all"].append(time.perf_counter() - start)
                avfs_run("unmount", f"{name}:main")
        finally:
            daemon.terminate()
            daemon.wait(10)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "case": "fetching ahead: avfs vault hydrate / mount prefetch vs git's batched lazy fetch (git checkout in a blob:none clone), same git daemon, same run",
        "files": files,
        "package": PACKAGE,
        "repeats": args.repeats,
        "load_average": os.getloadavg(),
        "median_s": med,
        "ratios": {
            "hydrate_path / git_checkout_path": med["hydrate_path"] / med["git_checkout_path"],
            "hydrate_then_read / read_cold": med["hydrate_then_read"] / med["read_cold"],
            "hydrate_all / git_checkout_all": med["hydrate_all"] / med["git_checkout_all"],
            "prefetch_all / git_checkout_all": med["prefetch_all"] / med["git_checkout_all"],
        },
        "runs_s": times,
    }
    out = ROOT / "bench" / "results" / time.strftime("hydrate-%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
