"""Per-stage thread CPU of the kept process's merges: bench/mergekept.py's CHILD with wrappers."""

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.getcwd())
from bench import mergekept, realproj7

WRAP = r"""
import time as _t, functools as _f, collections as _c
STAGE = _c.defaultdict(float); COUNT = _c.Counter()
def _wrap(obj, name, label):
    fn = getattr(obj, name)
    @_f.wraps(fn)
    def w(*a, **k):
        t0 = _t.thread_time()
        try: return fn(*a, **k)
        finally: STAGE[label] += _t.thread_time() - t0; COUNT[label] += 1
    setattr(obj, name, w)
from avfs_git.core.operations import merge as M, mergeguard as G, checkpoint as C, mergeconflicts as MC
from avfs_git.core.vaults import vault as V
from avfs_git.core.workspace import workspace as W
for _o, _n in [(M, "_check_request"), (M, "remote_branch"), (M, "_refuse_open_merges"), (M, "_tips"),
             (M, "_source_names"), (M, "_refuse_moved_source"), (M, "_record"), (M, "_fast_merge"),
             (M, "_merged_index"), (M, "_classify"), (M, "show_conflicts"), (M, "_merge_once"), (M, "_commit_merge"),
             (G, "capture"), (G, "refuse_open_files"), (G, "writers_held"), (G, "move_target"),
             (C, "no_exec_running"), (V.Vault, "workspace"), (V.Vault, "lock"), (W.Workspace, "sync_base"),
             (W.Workspace, "is_dirty"), (M, "merge_state"), (C, "check_head")]:
    _wrap(_o, _n, _n)
from avfs_git.cli import callproc as _cp
_wrap(_cp, "_run", "ALL_run")
"""
child = mergekept.CHILD.replace("prewarm.load()\n", "prewarm.load()\n" + WRAP, 1)
child = child.replace(
    "for i in range(n):", "for i in range(n):\n    if i == 1: STAGE.clear(); COUNT.clear()", 1
)
child += "\nprint('STAGES', json.dumps({k: round(v*1000/(n-1), 3) for k, v in sorted(STAGE.items(), key=lambda kv: -kv[1])}))\n"
root = Path(sys.argv[1])
kind = sys.argv[2]
n = sys.argv[3]
src = Path(sys.argv[4])
before = sys.argv[5] if len(sys.argv) > 5 else None
realproj7.ROOT = root / kind
realproj7.ROOT.mkdir(parents=True, exist_ok=True)
(realproj7.ROOT / "userhome").mkdir(exist_ok=True)
(realproj7.ROOT / "userhome" / ".gitconfig").write_text("[user]\n\tname = mk\n\temail = mk@example.org\n")
home = realproj7.avfs_side("side", realproj7.project(src), src / "node_modules")
env = {
    **realproj7.env_for(home, Path(before) if before else None),
    "AVFS_PROGRESS": "never",
    "LC_ALL": "C.UTF-8",
}
p = subprocess.run(
    [sys.executable, "-P", "-c", child, kind, n, f"k{os.getpid()}"], env=env, capture_output=True, text=True
)
print(p.stderr[-3000:]) if p.returncode else None
for line in p.stdout.splitlines():
    if line.startswith("STAGES"):
        print(kind, line)
    elif line.startswith("{"):
        d = json.loads(line)
        print(kind, "answer", round(d["answer_ms"], 2), "after", round(d["after_ms"], 2))
