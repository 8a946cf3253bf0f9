"""A/B of the Landlock applier alone (proxy/landlock.py ``APPLY``): this tree's against the
one at a git revision, interleaved, on a sandbox-like layout (the vault beneath the private
home, the worktree's git dir and the seal's scratch protected, a cache beneath the vault).

    python -m bench.landlockrev [--rev REV] [-n N] [--dir DIR] [--out FILE]

Run outside bwrap: each run is ``perl -e APPLY ... -- /bin/true`` (it applies the domain to
itself and execs ``true``). ``--dir``: where the layout is made (not under ``/tmp`` or
``/var/tmp``, which the applier grants whole: in the sandbox they are fresh tmpfs)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types


@dataclasses.dataclass
class _Sandbox:
    path: str
    keep: tuple[str, ...]
    writable: tuple[str, ...]
    sealed: tuple[tuple[str, str, bool], ...]
    caches: tuple[tuple[str, str], ...]


def _module(source: str, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    exec(compile(source, name, "exec"), mod.__dict__)  # (this repository's own file)
    return mod


def _layout(root: str) -> tuple[_Sandbox, str]:
    home = os.path.join(root, "home")
    vault = os.path.join(home, ".avfs", "vaults", "v.git")
    wt = os.path.join(vault, "worktrees", "avfs-main")
    seal = os.path.join(vault, "avfs", "seal", "main")
    cache = os.path.join(vault, "avfs", "caches", "pip")
    for d in (wt, cache, os.path.join(home, "work"), os.path.join(root, "fork")):
        os.makedirs(d, exist_ok=True)
    sealed = []
    for x in ("refs", "logs", "objects"):
        os.makedirs(os.path.join(seal, x), exist_ok=True)
        os.makedirs(os.path.join(vault, x), exist_ok=True)
        sealed.append((os.path.join(seal, x), os.path.join(vault, x), True))
    sb = _Sandbox(os.path.join(root, "fork"), (vault,), (wt,), tuple(sealed), (("pip", cache),))
    return sb, home


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rev", default="HEAD~1")
    ap.add_argument("-n", type=int, default=400)
    ap.add_argument("--dir", default=os.getcwd())
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    here = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "avfs_git", "proxy", "landlock.py"
    )
    old_src = subprocess.run(
        ["git", "show", f"{a.rev}:avfs_git/proxy/landlock.py"], capture_output=True, text=True, check=True
    ).stdout
    with open(here, encoding="utf-8") as fh:
        new_src = fh.read()
    root = tempfile.mkdtemp(prefix="landlockrev-", dir=a.dir)
    sb, home = _layout(root)
    cmds = {
        k: _module(src, f"landlock_{k}").wrap(sb, ["/bin/true"], -1, home)
        for k, src in (("base", old_src), ("branch", new_src))
    }
    wall: dict[str, list[float]] = {k: [] for k in cmds}
    cpu = dict.fromkeys(cmds, 0.0)
    for i in range(a.n):
        for k in ("base", "branch") if i % 2 else ("branch", "base"):
            r0, t = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            subprocess.run(cmds[k], check=True)
            wall[k].append(time.perf_counter() - t)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[k] += r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    out = {
        "what": "landlock applier alone (perl -e APPLY ... /bin/true), interleaved",
        "rev": a.rev,
        "n": a.n,
        "load": os.getloadavg(),
        "median_ms": {k: round(statistics.median(v) * 1e3, 3) for k, v in wall.items()},
        "cpu_ms_per_run": {k: round(cpu[k] / a.n * 1e3, 3) for k in cpu},
    }
    out["ratio_median"] = round(out["median_ms"]["branch"] / out["median_ms"]["base"], 3)
    out["ratio_cpu"] = round(out["cpu_ms_per_run"]["branch"] / out["cpu_ms_per_run"]["base"], 3)
    text = json.dumps(out, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    subprocess.run(["rm", "-rf", root], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
