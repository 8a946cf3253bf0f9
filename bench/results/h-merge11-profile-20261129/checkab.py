"""The kept process's work after a served merge's answer, in process (h-merge11): a kept
home on minimist's vault holding the workspaces a merge leaves open (main and three forks,
checked as a merge checks them, the op log read), then ITER times what keep() does after
an answer for these: the descriptors' links read, the WALs' look, the clean check, the
home's release, and the next call's open of the home. Thread CPU of each part, medians.
python checkab.py TREE HOME ITER"""

import json
import os
import statistics
import sys
import time

tree, home_path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, tree)
os.closerange(3, 1 << 16)  # (what the shell left open)
null = os.open("/dev/null", os.O_RDWR)
for fd in (3, 4):
    if fd != null:
        os.dup2(null, fd)
if null not in (3, 4):
    os.close(null)
from avfs_git.cli import callproc  # noqa: E402  (after the tree chosen)
from avfs_git.cli.homekeep import KeptHome  # noqa: E402  (after the tree chosen)
from avfs_git.core.settings import Settings  # noqa: E402  (after the tree chosen)

assert callproc.__file__.startswith(tree), callproc.__file__
os.environ["AVFS_HOME"] = home_path
kept = KeptHome()
settings = Settings.from_environ(os.environ, home_path)
home = kept.open(home_path, settings)
vault = home.vault("mm")
forks = [f for f in sorted(os.listdir(os.path.join(vault.state_dir, "ws"))) if f != "main"][-3:]
for fork in ("main", *forks):
    vault.workspace(fork).is_dirty()
vault.oplog.recent(1)
umask = os.umask(0o022)
os.umask(umask)
tt = time.thread_time_ns
check, rel = [], []
for _ in range(n):
    t0 = tt()
    links = callproc._fd_links()
    grown = callproc._wal_grown(links)
    ok = callproc._clean(umask, kept, None if grown else links)
    t1 = tt()
    kept.release()
    kept.open(home_path, settings)
    t2 = tt()
    assert ok
    check.append((t1 - t0) / 1e3)
    rel.append((t2 - t1) / 1e3)
print(
    json.dumps(
        {
            "tree": tree,
            "fds": len(links),
            "check_us": statistics.median(check),
            "release_open_us": statistics.median(rel),
            "n": n,
        }
    )
)
