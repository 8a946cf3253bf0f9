"""`avfs export --force` over a non-empty directory, A/B interleaved (plant5: the view walked
once, what the planted-repository look read is what is written): each side's own avfs and
home, a 3,001-file vault (one path a name of git's own state, so the look reads), an
uncheckpointed change, wall and CPU (``wait4``) of each export, an untimed round first.

    python bench/exportab.py ROUNDS main=/work/main new=/work/h-x

Written to ``bench/results/exportab-h-plant5-<time>.json``.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sides = dict(a.split("=", 1) for a in sys.argv[2:])
rounds = int(sys.argv[1])
tmp = tempfile.mkdtemp(prefix="h-plant5-exportab-")
src = os.path.join(tmp, "src")
for d in range(50):
    os.makedirs(os.path.join(src, f"d{d}"))
    for f in range(60):
        with open(os.path.join(src, f"d{d}", f"f{f}.txt"), "w") as fh:
            fh.write(f"file {d}/{f}\n" * 20)
os.makedirs(os.path.join(src, "sub"))
with open(os.path.join(src, "sub", "HEAD"), "w") as fh:  # (a name of git's own state: the look reads)
    fh.write("ref: refs/heads/x\n")
env0 = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "AVFS_"))}
envs = {}
for side, tree in sides.items():
    env = dict(env0, AVFS_HOME=os.path.join(tmp, f"home-{side}"), AVFS_SERVER="off", AVFS_LAYERS="off")
    envs[side] = env
    subprocess.run(
        [f"{tree}/.venv/bin/avfs", "vault", "create", "p", "--from", src],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [f"{tree}/.venv/bin/avfs", "--vault", "p", "write", "d0/new.txt", "uncheckpointed\n"],
        env=env,
        check=True,
        capture_output=True,
    )
got = {s: [] for s in sides}
loads = []
for i in range(rounds + 1):
    loads.append(os.getloadavg()[0])
    for side in list(sides) if i % 2 else list(reversed(sides)):
        dest = os.path.join(tmp, f"out-{side}")
        os.makedirs(dest, exist_ok=True)
        with open(os.path.join(dest, "keep.txt"), "w") as fh:
            fh.write("the person's\n")
        t0 = time.perf_counter()
        p = subprocess.Popen(
            [f"{sides[side]}/.venv/bin/avfs", "export", "p:main", dest, "--force"],
            env=envs[side],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _, st, ru = os.wait4(p.pid, 0)
        wall = (time.perf_counter() - t0) * 1000
        assert st == 0
        if i:
            got[side].append((wall, (ru.ru_utime + ru.ru_stime) * 1000))
loads.append(os.getloadavg()[0])
names = list(sides)
out = {"rounds": rounds, "loads": loads, "files": 3001, "samples": got}
for s in names:
    print(
        s,
        "wall",
        round(statistics.median(w for w, _ in got[s]), 1),
        "cpu",
        round(statistics.median(c for _, c in got[s]), 1),
    )
a, b = names[1], names[0]
for k, name in ((0, "wall"), (1, "cpu")):
    r = statistics.median(x[k] / y[k] for x, y in zip(got[a], got[b], strict=True))
    out[f"{name}_ratio"] = round(r, 3)
    print(f"{a}/{b} {name} median of ratios {r:.3f}")
print("load", min(loads), max(loads))
stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
with open(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"exportab-h-plant5-{stamp}.json"),
    "w",
) as fh:
    json.dump(out, fh, indent=1)
shutil.rmtree(tmp)
