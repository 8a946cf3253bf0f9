"""What a ready sandbox's programs cost, outside a sandbox (docs/benchmarks.md, "One Perl
for a ready sandbox"): the Perl that applies the Landlock domain and the waiter
(``proxy/standby.py``) as one program (``landlock.wrap(..., own=True)``, this tree) against
the domain's Perl ``exec``-ing a second Perl for the waiter (``own=False``: the command
line the baseline's ``standby`` builds, the same program text), alternated.

Each run: the program with a sandbox-like domain (the vault and the fork in a scratch
directory of ``bench/.work``, beneath none of the grants: no ``readdir`` walk, as with a
home outside ``/tmp``), its waiter told no command (an empty pipe: it exits 0), timed from
``posix_spawn`` to ``wait4``: wall, and the CPU of the child (rusage, µs).
Root (or ``CAP_SYS_ADMIN``) applies a domain without ``no_new_privs``, as bwrap sets it.

Run: ``.venv/bin/python -m bench.landlockprog [--runs N]``; the result goes to
``bench/results/landlock-prog-<time>.json`` and its medians are printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

from avfs_git.proxy import landlock, standby

from . import abkit as ab
from .env import WORK_DIR


@dataclasses.dataclass(frozen=True)
class _Sandbox:
    path: str
    keep: tuple[str, ...]
    writable: tuple[str, ...] = ()
    sealed: tuple[tuple[str, str, bool], ...] = ()
    caches: tuple[tuple[str, str], ...] = ()


def _once(argv: list[str], go_r: int, report_w: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, {"PATH": "/usr/bin:/bin", "LANG": "C"})
    os.close(go_r)
    os.close(report_w)
    _, status, ru = os.wait4(pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({status}): {argv[:3]}")
    return wall, (ru.ru_utime + ru.ru_stime) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200, help="runs of each program (alternated)")
    args = ap.parse_args()
    got: dict[str, dict[str, list[float]]] = {
        s: {"wall_ms": [], "cpu_ms": []} for s in ("one_perl", "two_perls")
    }
    loads = [ab.load()]
    with ab.scratch("landlockprog-", chdir=False, parent=WORK_DIR) as tmp:
        fork, vault = tmp / "fork", tmp / "vault"
        for d in (fork, vault / "objects"):
            d.mkdir(parents=True)
        sb = _Sandbox(str(fork), (str(vault),))
        for i in range(args.runs):
            for side in ab.order(list(got), i):
                go_r, go_w = os.pipe()
                report_r, report_w = os.pipe()
                os.close(go_w)  # no command: the waiter ends at once
                waiter = [standby.PERL, "-e", standby.WAITER, str(go_r), str(report_w)]
                argv = landlock.wrap(sb, waiter, own=side == "one_perl")
                os.set_inheritable(go_r, True)
                os.set_inheritable(report_w, True)
                wall, cpu = _once(argv, go_r, report_w)
                os.close(report_r)
                got[side]["wall_ms"].append(wall)
                got[side]["cpu_ms"].append(cpu)
    loads.append(ab.load())
    median = {s: {k: round(statistics.median(v), 3) for k, v in m.items()} for s, m in got.items()}
    ratio = {
        k: round(ab.median_of_ratios(got["one_perl"][k], got["two_perls"][k]), 3)
        for k in ("wall_ms", "cpu_ms")
    }
    doc = {
        "case": "a ready sandbox's programs outside a sandbox: the domain's Perl running the waiter vs exec'ing it",
        "runs": args.runs,
        "load_before_after": loads,
        "median": median,
        "median_of_ratios": ratio,
        "per_run": got,
    }
    ab.write_json(ab.stamped("landlock-prog"), doc, announce=True)
    ab.print_json({"median": median, "median_of_ratios": ratio, "load": loads})


if __name__ == "__main__":
    main()
