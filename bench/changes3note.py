"""What a proxy exec's note of its carried-back move costs (changes3), in process: the move
of a fork's branch by compare-and-swap as the carry-back makes it, alone and with the
call's span noting it (:class:`avfs_git.proxy.execspan.Carrying`: one write to the fork's
``overlay.db`` before the move, a read of the reflog's new line and one write after),
interleaved, ``--moves`` of each per round.

Run: ``.venv/bin/python -m bench.changes3note [--rounds N] [--moves M]``; the result goes to
``bench/results/h-changes3-note-<time>.json``, its medians printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

from . import abkit as ab


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--moves", type=int, default=50)
    args = ap.parse_args()
    from avfs_git.core.store import refs
    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE
    from avfs_git.proxy import execspan
    from avfs_git.proxy.execspan import Carrying

    load_before = ab.load()
    per: dict[str, list[float]] = {"move": [], "move_noted": []}
    with ab.scratch("avfs-bench-changes3note-") as t:
        home = Home(str(t / "home"), mounts=MOUNT_SIDE)
        vault = home.create_vault("v")
        ws = vault.workspace("main")
        ws.write("f", b"x")
        from avfs_git.core.operations import checkpoint

        tip: str = checkpoint.save(vault, "main").checkpoint.commit
        tree = vault.store.commit_tree(tip)
        row = execspan.open_span(ws)
        assert row is not None
        reflog = refs.reflog_path(vault.path, refs.fork_ref("main"))
        message = "avfs proxy exec: main moved by the command's git"
        for i in range(args.rounds + 1):
            for side in ab.order(list(per), i):
                commits = [vault.store.create_commit(tree, [tip], f"c{i}-{n}") for n in range(args.moves)]
                t0 = time.perf_counter()
                for new in commits:
                    note = Carrying(ws, row, reflog) if side == "move_noted" else None
                    if note is not None:
                        note.moving(tip, new, message)
                    refs.cas_update(vault.store, refs.fork_ref("main"), new, tip, message)
                    if note is not None:
                        note.done()
                    tip = new
                if i:
                    per[side].append((time.perf_counter() - t0) * 1000 / args.moves)
        home.close()
    median = {k: round(statistics.median(v), 4) for k, v in per.items()}
    added = round(statistics.median(b - a for a, b in zip(per["move"], per["move_noted"], strict=True)), 4)
    result = {
        "case": "a carried-back move of a fork's branch, alone and noted in the call's span (ms per move)",
        "rounds": args.rounds,
        "moves": args.moves,
        "load_average_before_after": [load_before, ab.load()],
        "median_ms": median,
        "median_added_ms": added,
        "per_round": per,
    }
    ab.write_json(ab.stamped("h-changes3-note"), result)
    ab.print_json(
        {"median_ms": median, "median_added_ms": added, "load": result["load_average_before_after"]}
    )


if __name__ == "__main__":
    main()
