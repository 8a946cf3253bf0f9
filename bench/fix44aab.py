"""What fix44a's suspect names (core/workspace/upperlinks.py: a hard link that lost a name)
cost a normal run, which has none: this tree against another avfs source tree in the same
run, rounds interleaved (docs/benchmarks.md, "A removed hard-link name", h-fix44a).

Each side has a home of its own (a 50-file fork, overlay-mounted, its CLI server started:
:func:`.landlockab._setup`). Per round and side: a warm ``proxy exec -- true`` (after a
pause: the daemon's next sandbox ready) and one back to back (:func:`.landlockab._round`,
with the mount daemon's CPU), then a ``proxy exec`` writing 1,000 new files (committed);
each timed from the caller (wall).

Run: ``.venv/bin/python -m bench.fix44aab --baseline SRC [--rounds N]``; the result goes to
``bench/results/h-fix44a-ab-<time>.json`` and its medians are printed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
from typing import Any

from . import abkit as ab
from .landlockab import _round, _setup, _timed

CASES = ("exec_ready", "exec_back_to_back", "exec_1000_files")
WRITE = "mkdir w{i} && for k in $(seq 1000); do echo {i} > w{i}/f$k; done"


def _side_round(py: list[str], env: dict[str, str], daemon: int, i: int) -> dict[str, dict[str, float]]:
    out = _round(py, env, daemon)
    del out["true"]
    cmd = [*py, "--json", "proxy", "exec", "--", "sh", "-c", WRITE.format(i=i if i >= 0 else "warm")]
    d0 = ab.proc_cpu_s(daemon)
    out["exec_1000_files"] = _timed(cmd, env, daemon)
    del out["exec_1000_files"]["d0"]
    out["exec_1000_files"]["daemon_cpu_ms"] = (ab.proc_cpu_s(daemon) - d0) * 1000
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ab.baseline_args(ap, 9)
    args = ap.parse_args()
    py = [str(ab.ROOT / ".venv" / "bin" / "python"), "-m", "avfs_git"]
    trees = ab.this_and_baseline(args.baseline)
    rounds: dict[str, list[dict[str, dict[str, float]]]] = {side: [] for side in trees}
    load_before = ab.load()
    with ab.scratch("avfs-bench-fix44a-") as t:
        envs = ab.side_envs(t, trees, AVFS_VAULT="v:f")
        daemons: dict[str, int] = {}
        try:
            for side in trees:
                daemons[side] = _setup(py, envs[side], "overlay")
                _side_round(py, envs[side], daemons[side], -1)  # (warm-up, untimed)
            for i in range(args.rounds):
                for side in ab.order(list(trees), i):
                    rounds[side].append(_side_round(py, envs[side], daemons[side], i))
        finally:
            for side in trees:
                subprocess.run([*py, "unmount"], env=envs[side], capture_output=True)
                subprocess.run([*py, "server", "stop"], env=envs[side], capture_output=True)
                from avfs_git.core.vaults import layers

                layers.unmount(envs[side]["AVFS_HOME"])  # (its image's file system)
    median: dict[str, Any] = {
        s: {c: {k: round(statistics.median(r[c][k] for r in rs), 2) for k in rs[0][c]} for c in CASES}
        for s, rs in rounds.items()
    }
    ratio = {c: round(median["this"][c]["wall_ms"] / median["baseline"][c]["wall_ms"], 3) for c in CASES}
    ab.baseline_result(
        "h-fix44a-ab",
        "overlay mount: warm proxy exec -- true (ready, back to back), an exec writing 1,000 files: fix44a vs baseline",
        args,
        load_before,
        median,
        rounds,
        tail={"ratio_this_over_baseline_wall": ratio},
    )


if __name__ == "__main__":
    main()
