"""Where a served merge's CPU goes in the kept process (issue 31; docs/benchmarks.md,
h-merge4's section): ``python -m bench.mergereal --kept-profile N`` runs this.

In a home of its own made as bench/mergereal.py makes its sides (minimist with its
ignored ``node_modules`` written through an overlay mount, then unmounted), one process
does what the resident server's kept process does for each served merge
(cli/callproc.py ``keep``): its ``_run`` on ``--vault mm merge FORK --into main`` with
the kept home (cli/homekeep.py: the arguments read by cli/fastcli.py's table since
h-merge6, by the click CLI before), then, its answer given, what it runs after it (the apps'
``run_after``/``run_ahead``, the workspaces closed, the WALs written back, the check that
the call left nothing). The server's imports are loaded and frozen first (cli/prewarm.py,
``gc.freeze()`` as the server does). Between two merges another process (untimed) makes
the next fork (``ignored=False``: a clean fork, its write not folding the source's
``node_modules``) and, for ``root`` and ``conflict``, the target's own checkpoint; a
``conflict``'s written conflicts are given up there too.

Each merge's CPU is ``time.process_time()`` up to its answer and after it, and its wall time (medians over
the merges after the first). With ``py-spy`` installed the process is recorded at
``--spy-rate`` Hz (``py-spy record -f raw``), and each sample is put in one stage of
:data:`STAGES` (the outermost stage on its stack, but for the stages in :data:`DEEP`,
which yield to a stage below them); the stages' shares of the call's samples, times the
merge's CPU, are its ms a stage. With ``trace`` (``--strace``) the process runs under
``strace -f`` instead and :func:`syscalls` counts each merge's system calls between the
markers the merging process stats (``MERGEKEPT_MARK``); with ``MERGEKEPT_CPROFILE=FILE`` in
its environment it writes a cProfile in thread CPU time of the merges after the first.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

STAGES: list[tuple[str, tuple[str, ...]]] = [
    (
        "request checks (forks, open merges, remote)",
        ("_check_request (", "remote_branch (", "_refuse_open_merges ("),
    ),
    ("workspaces opened", ("Vault.workspace (",)),
    ("capture checks (both sides' is_dirty)", ("capture (avfs_git/core/operations/mergeguard",)),
    ("open-files check", ("refuse_open_files (",)),
    ("locks (fork, exec)", ("Vault.lock (", "no_exec_running (")),
    ("writers held (kept tops, fold)", ("writers_held (",)),
    ("sync_base, expect-head", ("Workspace.sync_base (", "check_head (")),
    ("tips, merge base", ("_tips (",)),
    ("source names, moved source", ("_source_names (", "_refuse_moved_source (")),
    ("commit trees read", ("GitStore.commit_tree (",)),
    ("the merge (trivial / libgit2, classify)", ("_trivial_merge (", "merge_trees (", "_classify (")),
    (
        "tree and commit writes, pack",
        ("create_commit (", "PackWriter.finish (", "write_tree (", "pack_writer ("),
    ),
    ("conflicts written into the target", ("show_conflicts (",)),
    ("keep forms", ("keep_forms (",)),
    ("ref update (CAS, reflog)", ("move_ref (",)),
    ("view moved (set_base)", ("Workspace.set_base (",)),
    ("quota note", ("QuotaTracker.note (",)),
    ("held objects' ref", ("after_txn (",)),
    ("op log (lock, record)", ("OpLog.held (", "OpLog.record (", "_record (avfs_git/core/operations/merge")),
    ("overlay transaction (BEGIN, COMMIT)", ("OverlayDB.txn (",)),
    ("the answer (output)", ("Output.result (", "Output.document (")),
    ("after: workspaces closed", ("App.close (",)),
    (
        "click parse, App, home",
        (
            "click/core.py",
            "avfs_git/cli/main.py",
            "(avfs_git/cli/app.py",
            "mergecmds.py",
            "(avfs_git/cli/fastcli.py",
        ),
    ),
    (
        "after: WALs written back, the clean check",
        ("_write_back (", "_clean (", "_forget_derived (", "run_a"),
    ),
]
DEEP = frozenset(
    {"click parse, App, home", "sync_base, expect-head", "commit trees read",
     "overlay transaction (BEGIN, COMMIT)", "held objects' ref"}
)  # fmt: skip
CALL = (
    "main (avfs_git/cli/main.py",
    "fast (avfs_git/cli/fastcli.py",
    "_clean (avfs_git",
    "_write_back (",
    "App.close (",
    "run_after (",
)

CHILD = r"""
import gc, json, os, statistics, subprocess, sys, time
kind, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
PREP = '''
import json, sys
import avfs_git
from avfs_git.core.operations import checkpoint, merge as m
h = avfs_git.open_home()
for line in sys.stdin:
    cmd, name, writes = json.loads(line)
    v = h.vault("mm")
    if cmd == "abort":
        m.merge_abort(v, "main")
    else:
        v.create_fork("main", name, ignored=False)
        ws = v.workspace(name)
        for path, text in writes["fork"].items():
            ws.write(path, text.encode())
        checkpoint.save(v, name)
        if writes["main"]:
            mm = v.workspace("main")
            for path, text in writes["main"].items():
                mm.write(path, text.encode())
            checkpoint.save(v, "main")
    v.close_workspaces()
    print("ok", flush=True)
'''
prep = subprocess.Popen([sys.executable, "-P", "-c", PREP], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        text=True, env={**os.environ, "AVFS_SERVER": "off"})
def ask(*a):
    prep.stdin.write(json.dumps(a) + "\n"); prep.stdin.flush()
    assert prep.stdout.readline().strip() == "ok"
def writes(name):
    if kind == "ff": return {"fork": {f"{name}.md": f"{name}\n"}, "main": {}}
    if kind == "root": return {"fork": {f"{name}.md": f"{name}\n"}, "main": {f"{name}-main.md": "main\n"}}
    return {"fork": {"index.js": f"fork {name}\n"}, "main": {"index.js": f"main {name}\n"}}
from avfs_git.cli import callproc, prewarm
prewarm.load()
gc.collect(); gc.freeze()
from avfs_git.cli.homekeep import KeptHome
kept = KeptHome()
null = open(os.devnull, "w")
mark = os.environ.get("MERGEKEPT_MARK")  # (strace's markers: a stat of a path that is not)
def marked(what, i):
    if mark:
        try: os.stat(f"/.mergekept-{what}-{i}")
        except OSError: pass
answer, after, walls = [], [], []
prof_to = os.environ.get("MERGEKEPT_CPROFILE")  # (cProfile in thread CPU time, merges after the first)
if prof_to:
    import cProfile
    prof = cProfile.Profile(time.thread_time)
for i in range(n):
    name = f"{tag}{kind}{i}"
    ask("prep", name, writes(name))
    argv = ["--vault", "mm", "merge", name, "--into", "main"] + (["--write-conflicts"] if kind == "conflict" else [])
    out, sys.stdout = sys.stdout, null
    marked("start", i)
    if prof_to and i: prof.enable()
    c0, w0 = time.process_time(), time.perf_counter()
    code, opened = callproc._run({"argv": argv}, kept)  # (the kept process's call: fastcli, else click)
    c1, w1 = time.process_time(), time.perf_counter()
    marked("answer", i)
    for app in opened: app.run_after()
    for app in opened: app.run_ahead()
    for app in opened: app.close()
    callproc._forget_derived()
    links = callproc._fd_links() if hasattr(callproc, "_fd_links") else None  # (as keep does since h-merge8)
    grown = callproc._wal_grown(links) if links is not None else callproc._wal_grown()
    callproc._write_back(grown)
    callproc._clean(0o022, kept, None if grown else links) if links is not None else callproc._clean(0o022, kept)
    c2, w2 = time.process_time(), time.perf_counter()
    if prof_to and i: prof.disable()
    marked("end", i)
    sys.stdout = out
    assert code == (3 if kind == "conflict" else 0), code
    answer.append((c1 - c0) * 1000); after.append((c2 - c1) * 1000)
    walls.append(((w1 - w0) * 1000, (w2 - w1) * 1000))
    if kind == "conflict":
        ask("abort", name, None)
kept.close()
if prof_to: prof.dump_stats(prof_to)
print(json.dumps({"answer_ms": statistics.median(answer[1:]), "after_ms": statistics.median(after[1:]),
                  "answer_wall_ms": statistics.median(w[0] for w in walls[1:]),
                  "after_wall_ms": statistics.median(w[1] for w in walls[1:]),
                  "answer_all": [round(x, 3) for x in answer], "after_all": [round(x, 3) for x in after]}))
"""


def stages(raw: Path, cpu_ms: float) -> dict[str, float]:
    """ms of ``cpu_ms`` by stage, from py-spy's raw samples (see the module's text)."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        if not stack or not any(c in f for f in frames for c in CALL):
            continue
        total += int(n)
        best = "other"
        for f in frames:
            hit = next((name for name, pats in STAGES if any(p in f for p in pats)), None)
            if hit is not None:
                best = hit
                if hit not in DEEP:
                    break
        counts[best] += int(n)
    return {k: round(v / total * cpu_ms, 2) for k, v in counts.most_common()} if total else {}


_CALL = re.compile(r"^(\d+)\s+(\w+)\((.*)")
_MARK = re.compile(r'"/\.mergekept-(start|answer|end)-(\d+)"')


def syscalls(trace: Path, top: int = 25) -> dict[str, Any]:
    """From ``strace -f -o`` of the merging process (its markers: :data:`CHILD`'s
    ``marked``), per merge after the first the system calls of its main thread up to the
    answer and after it: the medians of their count by call, and (``paths``) the paths
    the call named most, summed over those merges."""
    import statistics

    merges: dict[tuple[int, str], collections.Counter[str]] = {}
    paths: dict[str, collections.Counter[str]] = {
        "answer": collections.Counter(),
        "after": collections.Counter(),
    }
    pid, cur = None, None
    for line in trace.read_text(errors="replace").splitlines():
        m = _CALL.match(line)
        if m is None:
            continue
        if pid is None and _MARK.search(line):
            pid = m.group(1)
        if m.group(1) != pid:
            continue
        mk = _MARK.search(line)
        if mk:
            i = int(mk.group(2))
            cur = (
                None
                if mk.group(1) == "end" or i == 0
                else (i, "answer" if mk.group(1) == "start" else "after")
            )
            continue
        if cur is None:
            continue
        merges.setdefault(cur, collections.Counter())[m.group(2)] += 1
        q = re.search(r'"([^"]*)"', m.group(3))
        if q:
            paths[cur[1]][f"{m.group(2)} {q.group(1)}"] += 1
    out: dict[str, Any] = {"merges": len({i for i, _ in merges})}
    for part in ("answer", "after"):
        got = [c for (i, p), c in merges.items() if p == part]
        names = set().union(*got) if got else set()
        counts = {k: statistics.median(c[k] for c in got) for k in names}
        out[part] = {
            "total": statistics.median(sum(c.values()) for c in got) if got else 0,
            "by_call": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
            "paths": dict(paths[part].most_common(top)),
        }
    return out


def run(
    merges: int,
    kinds: list[str],
    src: Path,
    root: Path,
    rate: int,
    before: Path | None = None,
    trace: bool = False,
) -> dict[str, Any]:
    """Each kind in a home of its own (``root/<kind>``), ``merges`` merges each; ``before``: a
    directory holding another ``avfs_git`` that the merging process (and the one making
    the forks) imports instead, through ``PYTHONPATH`` (the home is made by this tree's).
    ``trace``: under ``strace -f`` instead of py-spy, the system calls counted
    (:func:`syscalls`)."""
    from . import realproj7

    py = sys.executable
    spy = shutil.which("py-spy", path=str(Path(py).parent)) or shutil.which("py-spy")
    out: dict[str, Any] = {
        "merges": merges,
        "spy_rate": rate if spy else None,
        "kinds": {},
        "before": str(before),
    }
    for kind in kinds:
        realproj7.ROOT = root / kind
        realproj7.ROOT.mkdir(parents=True, exist_ok=True)
        (realproj7.ROOT / "userhome").mkdir(exist_ok=True)
        (realproj7.ROOT / "userhome" / ".gitconfig").write_text(
            "[user]\n\tname = mk\n\temail = mk@example.org\n"
        )
        home = realproj7.avfs_side("side", realproj7.project(src), src / "node_modules")
        env = {**realproj7.env_for(home, before), "AVFS_PROGRESS": "never", "LC_ALL": "C.UTF-8"}
        # (-P: not the working directory first on the path, where ``--before``'s tree
        # would lose to the one this runs from; h-merge6 found both sides this tree's)
        cmd = [py, "-P", "-c", CHILD, kind, str(merges), f"k{os.getpid()}"]
        raw = root / f"{kind}.spy"
        if trace:
            env["MERGEKEPT_MARK"] = "1"
            cmd = ["strace", "-f", "-qq", "-o", str(root / f"{kind}.strace"), "--", *cmd]
        elif spy:
            cmd = [spy, "record", "-r", str(rate), "-f", "raw", "-o", str(raw), "--", *cmd]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        got = json.loads([x for x in p.stdout.splitlines() if x.startswith("{")][-1])  # (py-spy's lines too)
        cpu = got["answer_ms"] + got["after_ms"]
        got["stages_ms"] = stages(raw, cpu) if spy and not trace and raw.exists() else None
        if trace:
            got["syscalls"] = syscalls(root / f"{kind}.strace")
        out["kinds"][kind] = got
        print(kind, json.dumps({k: v for k, v in got.items() if not k.endswith("_all") and k != "syscalls"}))
        if trace:
            print(kind, "syscalls", json.dumps(got["syscalls"], indent=1), flush=True)
    return out
