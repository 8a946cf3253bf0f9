"""The CPU of a status of fork ``main`` of vault ``mm`` in the home of the environment (a
mounted fork: run with the mount up), three times, then a cProfile of two more."""

from __future__ import annotations

import cProfile
import pstats
import time

import avfs_git


def main() -> None:
    home = avfs_git.open_home()
    ws = home.vault("mm").workspace("main")
    ws.status()
    for i in range(3):
        t = time.process_time()
        got = ws.status()
        print(i, len(got), round((time.process_time() - t) * 1000, 1), "ms")
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    ws.status()
    ws.status()
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    home.close()


if __name__ == "__main__":
    main()
