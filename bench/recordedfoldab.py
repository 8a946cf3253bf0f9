"""A/B: the first `avfs write` (the fold of the upper layer a mount left) and `checkpoint
save` after an overlay mount is gone (h-polish3), base against head, interleaved.

Cases, each on a fresh vault of 300 files in 30 directories, a session in an overlay
mount, unmounted, then the two commands as real processes (AVFS_SERVER=off):

- ``not_checkpointed``: 300 files edited in place and 300 new ones beside them, no
  checkpoint in the mount (trial2's fold cost 1.3x here: it hashed every edited file);
- ``checkpointed``: the same, checkpointed in the mount;
- ``many``: 2,000 new files in a new directory and 3 at the root, checkpointed in the
  mount (trial2: ``changes: 2003``, 2.0 s against 0.8 s for the next checkpoint).

Usage: python -m bench.recordedfoldab BASE_AVFS HEAD_AVFS OUT.json [ROUNDS]
(``CASES=a,b`` runs only those.)
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


def _run(avfs: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([avfs, *args], env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"{args}: {r.stdout} {r.stderr}")
    return r


def _clean(home: str) -> None:
    with open("/proc/mounts") as fh:
        lines = fh.read().splitlines()
    for line in reversed(lines):
        mp = line.split()[1]
        if mp.startswith(home):
            subprocess.run(["umount", "-l", mp], capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


def _case(avfs: str, case: str, top: str) -> dict[str, Any]:
    home = os.path.join(top, "home")
    env = {**os.environ, "AVFS_HOME": home, "AVFS_SERVER": "off"}
    src = os.path.join(top, "src")
    for d in range(30):
        os.makedirs(os.path.join(src, f"d{d}"))
        for f in range(10):
            with open(os.path.join(src, f"d{d}", f"f{f}.txt"), "w") as fh:
                fh.write(f"{d} {f}\n" * 20)
    try:
        _run(avfs, env, "vault", "create", "p", "--from", src)
        mp = _run(avfs, env, "mount", "p").stdout.strip()
        if case == "many":
            os.mkdir(os.path.join(mp, "many"))
            for i in range(2000):
                with open(os.path.join(mp, "many", f"m{i}.txt"), "w") as fh:
                    fh.write(f"{i}\n")
            for i in range(3):
                with open(os.path.join(mp, f"root{i}.txt"), "w") as fh:
                    fh.write(f"{i}\n")
        else:
            for d in range(30):
                for f in range(10):
                    with open(os.path.join(mp, f"d{d}", f"f{f}.txt"), "a") as fh:
                        fh.write("edited\n")
                    with open(os.path.join(mp, f"d{d}", f"n{f}.txt"), "w") as fh:
                        fh.write(f"new {d} {f}\n")
        if case != "not_checkpointed":
            _run(avfs, env, "--vault", "p", "checkpoint", "save")
        _run(avfs, env, "unmount", "p")
        t0 = time.perf_counter()
        _run(avfs, env, "--vault", "p", "write", "ONE.txt", "one")
        t1 = time.perf_counter()
        doc = json.loads(_run(avfs, env, "--json", "--vault", "p", "checkpoint", "save").stdout)
        t2 = time.perf_counter()
        return {"write_s": t1 - t0, "checkpoint_s": t2 - t1, "changes": doc["checkpoint"]["changes"]}
    finally:
        _clean(home)
        shutil.rmtree(src, ignore_errors=True)


def main() -> None:
    base, head, out = sys.argv[1], sys.argv[2], sys.argv[3]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    cases = tuple(os.environ.get("CASES", "not_checkpointed,checkpointed,many").split(","))
    got: dict[str, dict[str, list[dict[str, Any]]]] = {c: {"base": [], "head": []} for c in cases}
    loads = []
    for r in range(rounds):
        loads.append(os.getloadavg()[0])
        for case in cases:
            for side, avfs in (
                (("base", base), ("head", head)) if r % 2 == 0 else (("head", head), ("base", base))
            ):
                with tempfile.TemporaryDirectory(prefix="h-polish3-ab-") as top:
                    got[case][side].append(_case(avfs, case, top))
                print(r, case, side, got[case][side][-1], flush=True)
    loads.append(os.getloadavg()[0])
    res: dict[str, Any] = {
        "what": __doc__.split("\n\n")[0] if __doc__ else "",
        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
        "rounds": rounds,
        "load_1min": loads,
    }
    for case in cases:
        row: dict[str, Any] = {}
        for key in ("write_s", "checkpoint_s"):
            b = statistics.median(x[key] for x in got[case]["base"])
            h = statistics.median(x[key] for x in got[case]["head"])
            row[key] = {"base": round(b, 3), "head": round(h, 3), "ratio": round(h / b, 2)}
        b = statistics.median(x["write_s"] + x["checkpoint_s"] for x in got[case]["base"])
        h = statistics.median(x["write_s"] + x["checkpoint_s"] for x in got[case]["head"])
        row["write_plus_checkpoint"] = {"base": round(b, 3), "head": round(h, 3), "ratio": round(h / b, 2)}
        row["changes"] = {s: sorted({x["changes"] for x in got[case][s]}) for s in ("base", "head")}
        res[case] = row
    with open(out, "w") as fh:
        json.dump(res, fh, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
