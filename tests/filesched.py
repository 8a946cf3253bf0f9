"""The order `make test`'s workers take the test files in (``--dist loadfile``): the
longest first, by each file's wall time in a whole run (``tests/filetimes.json``).

pytest-xdist hands out the files with most tests first (its ``--loadscope-reorder``), so a
file of a few long tests is handed out near the end: in the twenty-seventh round's
fresh-clone run (ci17) `test_git_model.py` (4 tests, 204 s) went to a worker at 909 s and
held it alone to 1,113 s, the other three done at 1,044-1,051 s. Replayed on that run's
tests (xdist's rule: a worker takes its next file when it has two tests or fewer left) the
files longest first end at 1,065 s, the mean of the four workers' time (docs/testing.md,
"What bounds the suite's time"). A file the times do not name (new since they were
written) is reckoned at its number of tests times the mean seconds a test.

Write the times again from a whole run's report (``AVFS_TEST_CPU=/tmp/x-cpu.json CI=true
make test``; tests/cputime.py): ``python -m tests.filesched /tmp/x-cpu.json``. Stale times
cost only the order: every file still runs, each whole in one worker."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TIMES = Path(__file__).with_name("filetimes.json")


def load(path: Path = TIMES) -> tuple[dict[str, float], float]:
    """(each file's wall seconds, the mean seconds a test) as ``path`` holds them; nothing
    known where it is missing or unreadable (the order is then by number of tests)."""
    try:
        doc = json.loads(path.read_text())
        return {str(k): float(v) for k, v in doc["files"].items()}, float(doc["per_test"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}, 1.0


def order(counts: dict[str, int], times: dict[str, float], per_test: float) -> list[str]:
    """The files of ``counts`` (file -> its number of tests), longest first: a file's known
    wall time, or its tests times ``per_test``; ties by most tests, then by name."""

    def key(f: str) -> tuple[float, int, str]:
        return (-times.get(f, counts[f] * per_test), -counts[f], f)

    return sorted(counts, key=key)


def scheduler(config: Any, log: Any) -> Any:
    """xdist's ``loadfile`` scheduling, its queue of files in :func:`order`'s order."""
    from xdist.scheduler.loadfile import LoadFileScheduling

    times, per_test = load()

    class LongestFirst(LoadFileScheduling):  # type: ignore[misc]
        ordered = False

        def _assign_work_unit(self, node: Any) -> None:
            # (the first call: the queue is whole, filled in xdist's order, nothing handed out)
            if not self.ordered:
                self.ordered = True
                counts = {scope: len(unit) for scope, unit in self.workqueue.items()}
                for scope in order(counts, times, per_test):
                    self.workqueue.move_to_end(scope)
            super()._assign_work_unit(node)

    return LongestFirst(config, log)


def write(report: str, path: Path = TIMES) -> None:
    """``path`` written from a whole run's ``AVFS_TEST_CPU`` report (its files' wall)."""
    doc = json.loads(Path(report).read_text())
    files = {f["file"]: round(float(f["wall"]), 1) for f in doc["files"]}
    tests = sum(int(f["tests"]) for f in doc["files"])
    out = {
        "from": Path(report).name,
        "per_test": round(sum(files.values()) / max(tests, 1), 3),
        "files": dict(sorted(files.items(), key=lambda kv: (-kv[1], kv[0]))),
    }
    path.write_text(json.dumps(out, indent=0) + "\n")


if __name__ == "__main__":
    write(sys.argv[1])
