import json
import os
import sys
import time

os.environ["AVFS_HOME"] = sys.argv[1]
import avfs_git
from avfs_git.core.operations import checkpoint
from avfs_git.core.workspace.ignore import globals_kept
from avfs_git.core.workspace.wsfold import tops_kept

h = avfs_git.open_home()
v = h.vault("mm")
names = []
for i in range(int(sys.argv[2])):
    n = f"sab{os.getpid()}x{i}"
    v.create_fork("main", n)
    v.workspace(n).write(f"{n}.md", b"x\n")
    checkpoint.save(v, n)
    names.append(n)
v.close_workspaces()
to, td, tc = [], [], []
for n in names:
    with globals_kept(), tops_kept():
        v.workspace("main").is_dirty()  # (as in a merge: the target's asked, its globals read)
        t0 = time.thread_time()
        ws = v.workspace(n)
        t1 = time.thread_time()
        d = ws.is_dirty()
        t2 = time.thread_time()
        v.close_workspace(n)
        t3 = time.thread_time()
    assert d is False
    to.append(t1 - t0)
    td.append(t2 - t1)
    tc.append(t3 - t2)


def m(x):
    return round(sorted(x[1:])[len(x[1:]) // 2] * 1e3, 3)  # (the first fork apart: it asks)


print(
    json.dumps(
        {
            "open_ms": m(to),
            "is_dirty_ms": m(td),
            "close_ms": m(tc),
            "first_is_dirty_ms": round(td[0] * 1e3, 3),
        }
    )
)
