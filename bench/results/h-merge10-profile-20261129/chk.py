import os
import sys

os.environ["AVFS_HOME"] = sys.argv[1]
import avfs_git
from avfs_git.core.operations import checkpoint
from avfs_git.core.workspace import ignore as ig
from avfs_git.core.workspace.ignore import globals_kept

calls = []
orig = ig.IgnoreRules._from_kept


def fk(self, todo, *a):
    calls.append(len(todo))
    return orig(self, todo, *a)


ig.IgnoreRules._from_kept = fk
h = avfs_git.open_home()
v = h.vault("mm")
names = []
for i in range(4):
    n = f"chk{os.getpid()}x{i}"
    v.create_fork("main", n)
    v.workspace(n).write(f"{n}.md", b"x\n")
    checkpoint.save(v, n)
    names.append(n)
v.close_workspaces()
calls.clear()
for n in names:
    with globals_kept():
        v.workspace("main").is_dirty()
        before = len(calls)
        v.workspace(n).is_dirty()
        print(n, "from_kept calls", len(calls) - before, calls[before:])
        v.close_workspace(n)
