"""A/B: `proxy exec` of an install that commits a `node_modules` (h-polish4's warning in
the envelope, proxy/callwarnings.py), base against head, interleaved.

Each round, on a fresh vault of 300 files: one `proxy exec --json` (a real process,
AVFS_SERVER=off) whose command writes N files under `node_modules/` (the mount made for
the call, released after it: AVFS_MOUNT_IDLE=0), timed end to end; the envelope's
`warnings` read back (head: one, naming the N paths; base: no key).

Usage: python -m bench.execwarnab BASE_AVFS HEAD_AVFS OUT.json [ROUNDS] [FILES]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any


def _clean(home: str) -> None:
    with open("/proc/mounts") as fh:
        lines = fh.read().splitlines()
    for line in reversed(lines):
        mp = line.split()[1]
        if mp.startswith(home):
            subprocess.run(["umount", "-l", mp], capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


def _round(avfs: str, files: int, top: str) -> dict[str, Any]:
    home = os.path.join(top, "home")
    env = {**os.environ, "AVFS_HOME": home, "AVFS_SERVER": "off", "AVFS_MOUNT_IDLE": "0"}
    src = os.path.join(top, "src")
    for d in range(30):
        os.makedirs(os.path.join(src, f"d{d}"))
        for f in range(10):
            with open(os.path.join(src, f"d{d}", f"f{f}.txt"), "w") as fh:
                fh.write(f"{d} {f}\n" * 20)
    install = (  # (a loop in sh names its directories by a variable: the policy asks first)
        "import os\n"
        f"for i in range({files}):\n"
        "    d = f'node_modules/p{i // 50}'\n"
        "    os.makedirs(d, exist_ok=True)\n"
        "    open(f'{d}/f{i}.js', 'w').write(str(i))\n"
    )
    try:
        subprocess.run(
            [avfs, "vault", "create", "p", "--from", src], env=env, check=True, capture_output=True
        )
        t = time.monotonic()
        r = subprocess.run(
            [avfs, "--json", "--vault", "p", "proxy", "exec", "--", "python3", "-c", install],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        wall = time.monotonic() - t
        doc = json.loads(r.stdout)
        assert r.returncode == 0, r.stdout[-2000:]
        return {
            "wall_s": round(wall, 3),
            "changes": len(doc["changes"]),
            "warnings": [(w["path"], w["count"]) for w in doc.get("warnings", [])],
            "duration_ms": doc["duration_ms"],
        }
    finally:
        _clean(home)
        shutil.rmtree(src, ignore_errors=True)


def main() -> None:
    base, head, out = sys.argv[1:4]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    files = int(sys.argv[5]) if len(sys.argv) > 5 else 2000
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
    loads = []
    for n in range(rounds):
        for side, avfs in (
            (("base", base), ("head", head)) if n % 2 == 0 else (("head", head), ("base", base))
        ):
            top = tempfile.mkdtemp(prefix=f"h-polish4-ab-{side}-")
            try:
                runs[side].append(_round(avfs, files, top))
            finally:
                shutil.rmtree(top, ignore_errors=True)
            loads.append(os.getloadavg()[0])
            print(side, runs[side][-1], f"load {loads[-1]:.1f}", flush=True)
    med = {s: statistics.median(r["wall_s"] for r in runs[s]) for s in runs}
    doc = {
        "what": f"proxy exec --json of a command writing {files} files under node_modules/, fresh vault of 300 files each round",
        "rounds": rounds,
        "runs": runs,
        "median_wall_s": med,
        "ratio_head_over_base": round(med["head"] / med["base"], 3),
        "load_1min": [round(x, 1) for x in loads],
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with open(out, "w") as fh:
        json.dump(doc, fh, indent=1)
    print(json.dumps({k: doc[k] for k in ("median_wall_s", "ratio_head_over_base", "load_1min")}))


if __name__ == "__main__":
    main()
