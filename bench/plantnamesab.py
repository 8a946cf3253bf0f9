"""A/B of the planted-repository rule's names (h-fix40b, review40 F5): ``names.git_dir_of``
over 20x this repository's paths, in process; ``Workspace.write`` of ``src/hooks/useN.ts``
beside 2,000 files in ``src/`` (the rule lists ``src``: its names as a case-insensitive
clone reads them) and of ``src/lib/plainN.ts``, 200 each, per write.

``python bench/plantnamesab.py BRANCH_WORKTREE BASE_WORKTREE``: five rounds, the two sides
interleaved, each side in its worktree's own venv; prints JSON (medians, ratios, the load).
``python bench/plantnamesab.py side`` is one side's run."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROUNDS = 5
METRICS = ("git_dir_of_s", "write_hooks_s", "write_plain_s")


def side() -> dict[str, float]:
    from avfs_git.core.operations import checkpoint
    from avfs_git.core.store import names
    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = subprocess.run(["git", "ls-files"], cwd=here, capture_output=True, text=True).stdout.split() * 20
    t = time.perf_counter()
    for p in paths:
        names.git_dir_of(p)
    out = {"git_dir_of_s": time.perf_counter() - t, "n_paths": float(len(paths))}
    home_dir = tempfile.mkdtemp(prefix="plantnamesab-")
    home = Home(home_dir, author=("Bench", "bench@example.invalid"), mounts=MOUNT_SIDE)
    try:
        v = home.create_vault("p")
        ws = v.workspace("main")
        for i in range(2000):
            ws.write(f"src/f{i}.ts", b"x\n")
        checkpoint.save(v, "main", name="seed")
        ws = v.workspace("main")
        for key, fmt in (("write_hooks_s", "src/hooks/use{}.ts"), ("write_plain_s", "src/lib/plain{}.ts")):
            t = time.perf_counter()
            for i in range(200):
                ws.write(fmt.format(i), b"export {}\n")
            out[key] = (time.perf_counter() - t) / 200
    finally:
        home.close()
        subprocess.run(["umount", "-l", os.path.join(home_dir, "layers")], capture_output=True)
        subprocess.run(["rm", "-rf", home_dir])
    return out


def main(branch: str, base: str) -> None:
    sides = {"branch": branch, "base": base}
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in sides}
    loads = []
    for _ in range(ROUNDS):
        for k, d in sides.items():
            got = subprocess.run(
                [f"{d}/.venv/bin/python", os.path.abspath(__file__), "side"],
                cwd=d, capture_output=True, text=True, timeout=600, check=True,
            ).stdout  # fmt: skip
            runs[k].append(json.loads(got.strip().splitlines()[-1]))
        loads.append(os.getloadavg()[0])
    med = {k: {m: statistics.median(x[m] for x in v) for m in METRICS} for k, v in runs.items()}
    doc = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rounds": ROUNDS,
        "load_1min": loads,
        "median": med,
        "ratio_branch_over_base": {m: med["branch"][m] / med["base"][m] for m in METRICS},
        "runs": runs,
    }
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    if sys.argv[1:] == ["side"]:
        print(json.dumps(side()))
    else:
        main(sys.argv[1], sys.argv[2])
