"""In-process A/B of the kept process's merges (bench/mergekept.py's CHILD), forks made as
bench/mergereal.py makes them (``create_fork(main, name)``: the ignored node_modules carried),
this tree against --before, interleaved, the order turned each repetition."""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.getcwd())
from bench import abkit as ab
from bench import mergekept, realproj7

child = mergekept.CHILD.replace('v.create_fork("main", name, ignored=False)', 'v.create_fork("main", name)')
assert child != mergekept.CHILD
root, src, before, reps, n = (
    Path(sys.argv[1]),
    Path(sys.argv[2]),
    Path(sys.argv[3]),
    int(sys.argv[4]),
    sys.argv[5],
)
kinds = sys.argv[6].split(",")
homes = {}
for kind in kinds:
    for side in ("this", "before"):
        realproj7.ROOT = root / f"{kind}-{side}"
        realproj7.ROOT.mkdir(parents=True, exist_ok=True)
        (realproj7.ROOT / "userhome").mkdir(exist_ok=True)
        (realproj7.ROOT / "userhome" / ".gitconfig").write_text(
            "[user]\n\tname = mk\n\temail = mk@example.org\n"
        )
        home = realproj7.avfs_side("side", realproj7.project(src), src / "node_modules")
        homes[kind, side] = (realproj7.ROOT, home)
out = {"rounds": [], "load": [ab.load()]}
for r in range(reps):
    for kind in kinds:
        for side in ("this", "before") if r % 2 == 0 else ("before", "this"):
            rt, home = homes[kind, side]
            realproj7.ROOT = rt
            env = {
                **realproj7.env_for(home, before if side == "before" else None),
                "AVFS_PROGRESS": "never",
                "LC_ALL": "C.UTF-8",
            }
            p = subprocess.run(
                [sys.executable, "-P", "-c", child, kind, n, f"r{r}"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            got = json.loads([x for x in p.stdout.splitlines() if x.startswith("{")][-1])
            rec = {"rep": r, "kind": kind, "side": side, "load": ab.load(), **{k: v for k, v in got.items()}}
            print(json.dumps({k: v for k, v in rec.items() if not k.endswith("_all")}), flush=True)
            out["rounds"].append(rec)
out["load"].append(ab.load())
summ = {}
for kind in kinds:
    s = {}
    for side in ("this", "before"):
        rows = [x for x in out["rounds"] if x["kind"] == kind and x["side"] == side]
        s[side] = {m: round(statistics.median(x[m] for x in rows), 3) for m in ("answer_ms", "after_ms")}
    s["ratio_answer"] = round(s["this"]["answer_ms"] / s["before"]["answer_ms"], 3)
    s["ratio_total"] = round(
        (s["this"]["answer_ms"] + s["this"]["after_ms"])
        / (s["before"]["answer_ms"] + s["before"]["after_ms"]),
        3,
    )
    summ[kind] = s
out["summary"] = summ
print(json.dumps(summ, indent=1))
Path(sys.argv[7]).write_text(json.dumps(out, indent=1))
