"""An idle pure-FUSE daemon's wake-ups, A/B (h-fix42: the watcher looks again after a
state-directory wake-up, review42 F2). Interleaved rounds; per side a fresh home, a vault
of FILES files mounted pure FUSE by that side's CLI, then three windows of WINDOW_S: after a
`git status` in the mount (h-mountcost2's measure, from 0.5 s after it), after a CLI write
that wakes no one (from 0.5 s after it: the looks again fall here), and idle (from 6 s
after it). Per window: the voluntary context switches of every thread of the daemon and
its CPU (utime+stime). Usage: python -m bench.idlewakeab BASE_TREE NEW_TREE OUT.json"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 5
FILES = 200
WINDOW_S = 3.0
NO_WAKE = (
    "import sys; from avfs_git.mount import live; live._wake = lambda files: None; "
    "live._await_ack = lambda *a, **k: None; from avfs_git.cli.client import main; sys.exit(main())"
)


def _wakes(pid: int) -> int:
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def _cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _window(pid: int) -> dict[str, float]:
    w, c = _wakes(pid), _cpu_ms(pid)
    time.sleep(WINDOW_S)
    return {"wakes": _wakes(pid) - w, "cpu_ms": _cpu_ms(pid) - c}


def _side(tree: str) -> dict[str, dict[str, float]]:
    py = f"{tree}/.venv/bin/python"
    top = tempfile.mkdtemp(prefix="h-fix42-idle.")
    env = {**os.environ, "AVFS_HOME": f"{top}/home", "AVFS_SERVER": "off", "AVFS_PROGRESS": "never"}

    def avfs(*args: str) -> str:
        return subprocess.run(
            [py, "-m", "avfs_git", *args], env=env, check=True, capture_output=True, text=True
        ).stdout

    src = Path(top, "src")
    for i in range(FILES):
        (src / f"d{i % 10}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 10}" / f"f{i}.txt").write_text(f"{i}\n")
    avfs("vault", "create", "p", "--from", str(src))
    info = json.loads(avfs("--json", "mount", "--backend", "fuse", "p:main"))["mount"]
    pid, mp = int(info["pid"]), info["mountpoint"]
    try:
        out = {}
        subprocess.run(["git", "status", "--porcelain"], cwd=mp, check=True, capture_output=True)
        time.sleep(0.5)
        out["after_git_status"] = _window(pid)
        subprocess.run(
            [py, "-c", NO_WAKE, "--vault", "p:main", "write", "d1/f1.txt", "x"],
            env=env,
            check=True,
            capture_output=True,
        )
        time.sleep(0.5)
        out["after_write"] = _window(pid)
        time.sleep(6.0 - 0.5 - WINDOW_S)
        out["idle"] = _window(pid)
        return out
    finally:
        subprocess.run([py, "-m", "avfs_git", "unmount", "p:main"], env=env, check=False, capture_output=True)
        layers = f"{top}/home/layers"
        if os.path.ismount(layers):
            subprocess.run(["umount", "-l", layers], check=False)
        shutil.rmtree(top, ignore_errors=True)


def main() -> None:
    base, new, out = sys.argv[1:4]
    samples: dict[str, list[dict[str, dict[str, float]]]] = {"base": [], "new": []}
    loads = []
    for r in range(ROUNDS):
        for side, tree in (("base", base), ("new", new)) if r % 2 == 0 else (("new", new), ("base", base)):
            loads.append(os.getloadavg()[0])
            samples[side].append(_side(tree))
    rows = {
        side: {
            w: {k: statistics.median(s[w][k] for s in got) for k in ("wakes", "cpu_ms")}
            for w in ("after_git_status", "after_write", "idle")
        }
        for side, got in samples.items()
    }
    doc = {
        "rounds": ROUNDS,
        "files": FILES,
        "window_s": WINDOW_S,
        "sides": {"base": base, "new": new},
        "loads": loads,
        "rows": rows,
        "samples": samples,
    }
    Path(out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({"loads": [round(x, 1) for x in loads], "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
