"""A/B: the forwarder of a base commit (argv[2], default e5563e3) against this tree's, each run
by a real bwrap in front of ``true``, interleaved; argv[1] runs of each. (h-orphan, docs/benchmarks.md)"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from avfs_git.proxy import netproxy  # noqa: E402

BASE = sys.argv[2] if len(sys.argv) > 2 else "e5563e3"
base_src = subprocess.run(
    ["git", "-C", ROOT, "show", f"{BASE}:avfs_git/proxy/netproxy.py"],
    capture_output=True,
    text=True,
    check=True,
).stdout
start = base_src.index('FORWARDER: Final = r"""') + len('FORWARDER: Final = r"""')
base_fw = base_src[start : base_src.index('"""', start)]
new_fw = netproxy.FORWARDER


def run(fw):
    argv = [
        "bwrap",
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-net",
        "--ro-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--",
        "/usr/bin/python3",
        "-S",
        "-I",
        "-c",
        fw,
        "/nonexistent",
        "3128",
        "true",
    ]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(argv, check=True)
    w = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return w * 1000, (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1000


out = {"base": [], "branch": []}
for i in range(int(sys.argv[1])):
    for k, fw in (
        (("base", base_fw), ("branch", new_fw)) if i % 2 == 0 else (("branch", new_fw), ("base", base_fw))
    ):
        out[k].append(run(fw))
res = {"load_before": os.getloadavg(), "runs": int(sys.argv[1])}
for k, v in out.items():
    res[k] = {
        "wall_ms_median": statistics.median(x[0] for x in v),
        "cpu_ms_median": statistics.median(x[1] for x in v),
    }
res["ratio_wall"] = res["branch"]["wall_ms_median"] / res["base"]["wall_ms_median"]
res["ratio_cpu"] = res["branch"]["cpu_ms_median"] / res["base"]["cpu_ms_median"]
res["load_after"] = os.getloadavg()
print(json.dumps(res, indent=1))
