"""What flaky5's change-stream reader costs, two builds side by side, rounds interleaved:
``replay``, a read of the whole stream of a vault from its first cursor (500 file writes
through the API and 50 checkpoints of them: 650 events, ops and reflog lines among them),
and ``tail``, a read from the stream's end (nothing new: a follower's read on a wake-up).
Each figure is one child process of the build's own interpreter, its CPU time per read
(ms; the replay's mean of 20, the tail's of 300), in a home made by that child.

    python -m bench.flaky5ab --a /work/h-flaky5-base --b /work/h-flaky5 [--rounds 7] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

_CASE = r"""
import os, sys, time
from avfs_git.core.vaults.home import Home
from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.changes import changes_since
from avfs_git.mount.side import MOUNT_SIDE
home = Home(sys.argv[1], mounts=MOUNT_SIDE, layers="off")
vault = home.create_vault("v")
ws = vault.workspace("main")
c0 = changes_since(vault, None, None).cursor
for i in range(50):
    for j in range(10):
        ws.write(f"d{j}/f{i}.txt", b"x" * (i + 1))
    checkpoint.save(vault, "main", message=f"c{i}")
got = changes_since(vault, None, c0)
t = time.process_time()
for _ in range(20):
    changes_since(vault, None, c0)
replay = (time.process_time() - t) * 1000 / 20
assert len(got.events) >= 600 and not got.more, (len(got.events), got.more)
end = got.cursor
t = time.process_time()
for _ in range(300):
    assert changes_since(vault, None, end).events == ()
tail = (time.process_time() - t) * 1000 / 300
print(replay, tail)
home.close()
"""


def _one(tree: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="flaky5ab-") as tmp:
        env = {**os.environ, "HOME": tmp, "AVFS_HOME": os.path.join(tmp, "home")}
        env.update(
            GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b"
        )
        proc = subprocess.run(
            [os.path.join(tree, ".venv/bin/python"), "-c", _CASE, os.path.join(tmp, "home")],
            capture_output=True, text=True, env=env, cwd=tree, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = proc.stdout.split()
        return float(out[0]), float(out[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out")
    args = ap.parse_args()
    got: dict[str, dict[str, list[float]]] = {k: {"replay": [], "tail": []} for k in ("a", "b")}
    load = [os.getloadavg()[0]]
    for r in range(args.rounds):
        for k in ("a", "b") if r % 2 == 0 else ("b", "a"):
            replay, tail = _one(getattr(args, k))
            got[k]["replay"].append(replay)
            got[k]["tail"].append(tail)
        load.append(os.getloadavg()[0])
    res: dict[str, object] = {
        "a": args.a,
        "b": args.b,
        "rounds": args.rounds,
        "load": load,
        "when": time.time(),
    }
    for case in ("replay", "tail"):
        ma, mb = statistics.median(got["a"][case]), statistics.median(got["b"][case])
        res[case] = {
            "a_ms": got["a"][case],
            "b_ms": got["b"][case],
            "median_a": ma,
            "median_b": mb,
            "ratio": mb / ma,
        }
        print(f"{case}: a {ma:.1f} ms, b {mb:.1f} ms, b/a {mb / ma:.2f}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
