"""What reading a fork's own settings costs (gitmodel26, core/store/lineconfig.py
``fork_settings``): `avfs --json status` and `avfs write` + `avfs checkpoint save` of fork
``f`` of a 50-file vault, each a CLI process of its own (no resident server: the reader's
answer is kept in the process, so this is its dearest case), in a home whose vault config
has no ``includeIf`` (``plain``: a few ``stat`` calls more) and in one whose config holds
``[includeIf "onbranch:f"]`` naming a file that sets ``core.autocrlf``, a global
attributes file and ``user.name`` (``onbranch``: one ``git config --list`` a process).
This tree against ``--baseline SRC``, interleaved; wall time and the command's CPU (its
own and its children's), medians and the medians of per-round ratios::

    python -m bench.forkconfigab --baseline /work/h-gitmodel26-base [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

from .abkit import (
    baseline_args,
    children_cpu_s,
    load,
    median_of_ratios,
    print_json,
    scratch,
    seed_tree,
    side_envs,
    stamped,
    this_and_baseline,
    write_json,
)

CONFIGS = ("plain", "onbranch")


def _setup(py: list[str], env: dict[str, str], tmp: Path, config: str, side: str) -> None:
    tmp = tmp / side
    tmp.mkdir()
    src = tmp / "src"
    src.mkdir()
    seed_tree(src)
    subprocess.run(
        [*py, "vault", "create", "v", "--from", str(src)], env=env, check=True, capture_output=True
    )
    subprocess.run([*py, "vault", "fork", "v:main", "f"], env=env, check=True, capture_output=True)
    if config == "onbranch":
        vault = Path(env["AVFS_HOME"]) / "vaults" / "v.git"
        attrs, inc = tmp / "attrs", tmp / "inc"
        attrs.write_text("*.ver ident\n")
        inc.write_text(
            f"[core]\n\tautocrlf = true\n\tattributesFile = {attrs}\n[user]\n\tname = Fork Person\n"
        )
        subprocess.run(
            ["git", "--git-dir", str(vault), "config", "includeIf.onbranch:f.path", str(inc)], check=True
        )


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    c0, t0 = children_cpu_s(), time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return (time.perf_counter() - t0) * 1000, (children_cpu_s() - c0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    baseline_args(ap, 15)
    ap.add_argument("--branch", default="h-gitmodel26", help="the branch the results file is named by")
    args = ap.parse_args()
    trees = this_and_baseline(args.baseline)
    loads: list[float] = []
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    with scratch("forkconfigab-") as tmp:
        envs: dict[tuple[str, str], dict[str, str]] = {}
        py = {s: [str(Path(t, ".venv", "bin", "python")), "-m", "avfs_git"] for s, t in trees.items()}
        for config in CONFIGS:
            (tmp / config).mkdir()
            for side, env in side_envs(tmp / config, trees, AVFS_SERVER="off").items():
                envs[side, config] = env
                _setup(py[side], env, tmp / config, config, side)
        for i in range(args.rounds + 1):
            loads.append(load())
            sides = list(trees) if i % 2 == 0 else list(reversed(trees))
            for config in CONFIGS:
                for side in sides:
                    env = envs[side, config]
                    head = [*py[side], "--json", "--vault", "v:f"]
                    subprocess.run([*head, "write", "d0/f0.txt", f"round {i}\r\n"], env=env, check=True)
                    for what, cmd in (("status", [*head, "status"]), ("save", [*head, "checkpoint", "save"])):
                        w, c = _timed(cmd, env)
                        if i:  # (round 0 warms the caches)
                            wall.setdefault(f"{side}/{config}/{what}", []).append(w)
                            cpu.setdefault(f"{side}/{config}/{what}", []).append(c)
        loads.append(load())
    doc: dict[str, object] = {"rounds": args.rounds, "load": loads, "medians_ms": {}, "ratios": {}}
    for key in sorted(wall):
        doc["medians_ms"][key] = {"wall": statistics.median(wall[key]), "cpu": statistics.median(cpu[key])}  # type: ignore[index]
    for config in CONFIGS:
        for what in ("status", "save"):
            a, b = f"this/{config}/{what}", f"baseline/{config}/{what}"
            doc["ratios"][f"{config}/{what}"] = {  # type: ignore[index]
                "wall": median_of_ratios(wall[a], wall[b]),
                "cpu": median_of_ratios(cpu[a], cpu[b]),
            }
    write_json(stamped(f"forkconfigab-{args.branch}"), doc, announce=True)
    print_json(doc)


if __name__ == "__main__":
    main()
