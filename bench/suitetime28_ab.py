"""Per-file CPU of an interleaved A/B of test files (thirty-second round, suitetime28).

Each round runs the same test files twice at once, ``-n 2 --dist loadfile`` each, with
``AVFS_TEST_CPU=REPORT`` (tests/cputime.py: each test process in a cpuacct cgroup of its
own, everything it starts counted): in a worktree of main's HEAD (its code and tests) and
in the branch's. Or, for test-only changes, one run over main's copies of the files renamed
``tests/test_h28base_<name>.py`` beside the branch's. This reads the rounds' reports and
writes each file's medians and ratio::

    python bench/suitetime28_ab.py OUT.json main=MAIN_REPORT.json branch=BRANCH_REPORT.json ...
    python bench/suitetime28_ab.py OUT.json BOTH_REPORT.json ...
"""

from __future__ import annotations

import json
import statistics
import sys


def main(out: str, reports: list[str]) -> None:
    rows: dict[str, dict[str, list[float]]] = {}
    for arg in reports:
        side_given, _, path = arg.rpartition("=")
        with open(path, encoding="utf-8") as fh:
            files = json.load(fh)["files"]
        for f in files:
            name = f["file"].rsplit("/", 1)[-1]
            side = side_given or ("main" if name.startswith("test_h28base_") else "branch")
            key = name.replace("test_h28base_", "test_")
            rows.setdefault(key, {"main": [], "branch": []})[side].append(round(f["cpu"], 2))
    result = {}
    for key, sides in sorted(rows.items()):
        if not sides["main"] or not sides["branch"]:
            continue
        a, b = statistics.median(sides["main"]), statistics.median(sides["branch"])
        result[key] = {
            "main_cpu_s": sides["main"],
            "branch_cpu_s": sides["branch"],
            "main_median_s": round(a, 2),
            "branch_median_s": round(b, 2),
            "ratio": round(b / a, 3),
            "saved_s": round(a - b, 2),
        }
    total_a = sum(r["main_median_s"] for r in result.values())
    total_b = sum(r["branch_median_s"] for r in result.values())
    doc = {"files": result, "main_total_s": round(total_a, 2), "branch_total_s": round(total_b, 2)}
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
