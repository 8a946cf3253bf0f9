"""The op log's record with and without :meth:`.OpLog.held` around it (the twenty-fifth
round: a merge, revert, checkpoint delete, checkout takes the log's write lock before its
move, ``BEGIN IMMEDIATE`` ... ``COMMIT``, where it wrote its record as one autocommit
statement after): the CPU of one record each way, interleaved, medians of 15 rounds of 100.

    python -m bench.oplogheldab [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from avfs_git.core.vaults.oplog import OpLog


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        log = OpLog(d)
        refs: list[dict[str, str | None]] = [{"ref": "refs/heads/main", "old": "a" * 40, "new": "b" * 40}]

        def plain() -> None:
            log.record("merge", "m", fork="main", refs=refs)

        def held() -> None:
            with log.held("merge"):
                log.record("merge", "m", fork="main", refs=refs)

        sides: dict[str, Callable[[], None]] = {"plain": plain, "held": held}
        res: dict[str, list[float]] = {"plain": [], "held": []}
        for r in range(args.rounds):
            for name in ("plain", "held") if r % 2 == 0 else ("held", "plain"):
                t = time.process_time()
                for _ in range(100):
                    sides[name]()
                res[name].append((time.process_time() - t) * 1000 / 100)
        log.close()
    out = {
        "command": "python -m bench.oplogheldab",
        "ms_per_record": {k: statistics.median(v) for k, v in res.items()},
        "ratio_held_to_plain": statistics.median(
            [h / p for h, p in zip(res["held"], res["plain"], strict=True)]
        ),
        "load": os.getloadavg()[0],
        "rounds": res,
    }
    text = json.dumps(out, indent=1)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
