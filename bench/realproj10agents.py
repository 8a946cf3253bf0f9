"""Real projects through avfs, tenth round, two agents' real conflict (docs/benchmarks.md,
"Real projects, tenth round"): sqlparse 0.5.1's sdist as one commit. Agents a and b each
change ``sqlparse.split`` (the same line, differently; b also a docstring line of
``format`` far from it) and run sqlparse's tests of it, through ``proxy exec`` on their own
forks; a person then merges a (a fast-forward) and b (a conflict, exit 3, listed as data)
into ``main``, has the conflict written (``--write-conflicts``), looks with ``git status``
and ``git diff`` in a mount of ``main``, resolves the file, ``git add``s and ``git
commit``s it there, and runs ``avfs checkpoint save``. The same in a plain clone: two
branches, ``git merge`` twice (``merge.conflictStyle=diff3``), the same resolution, ``git
commit``. Compared: the conflicted paths (avfs's JSON against git's unmerged paths), ``git
status`` during the conflict, the file with markers (labels aside), the result tree, the
history's shape, ``git status`` and ``avfs status`` after, the tests. Then the person's
other ways out, each on a fork (a branch) of its own: ``git checkout --theirs``, ``git
merge --abort`` (as it is, and with a new file of the person's beside the conflict, then
checkpointed: git's ``add -A && commit``), git's own ``git merge`` of the fork's branch in
the mount, ``avfs merge --continue``. Each backend in turn with the plain side,
``--rounds`` times, each step timed.

Run: ``.venv/bin/python -m bench.realproj10agents [--rounds 2]`` (as root); results in
``bench/results/realproj10-agents-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RP4_ROOT", "/tmp/rp10/agents")
from bench import realproj4 as rp4

ROOT = rp4.ROOT
AVFS = str(rp4.REPO / ".venv/bin/avfs")
FILE = "sqlparse/__init__.py"
LINE = r"^    return \[str(stmt)\.strip() for stmt in stack\.run(sql, encoding)\]$"  # sed's BRE
EDIT_A = "    return [str(stmt).strip() for stmt in stack.run(sql, encoding) if str(stmt).strip()]"
EDIT_B = "    statements = stack.run(sql, encoding)\\n    return [str(stmt).strip() for stmt in statements]"
RESOLVED_LINES = (
    "    statements = stack.run(sql, encoding)\n"
    "    return [str(stmt).strip() for stmt in statements if str(stmt).strip()]\n"
)
TESTS = (
    f"PYTHONDONTWRITEBYTECODE=1 {rp4.PY} -m pytest -q -p no:cacheprovider tests/test_split.py 2>&1 "
    "| tail -1 | sed -E 's/ in [0-9.]+s//'"
)
AGENT = {
    "a": f"sed -i 's/{LINE}/{EDIT_A}/' {FILE}; {TESTS}",
    "b": f"sed -i 's/{LINE}/{EDIT_B}/' {FILE}; "
    f"sed -i 's/^    :returns: The formatted SQL statement as string.$/    :returns: The formatted SQL, a string./' {FILE}; "
    f"{TESTS}",
}


def src(env: dict[str, str]) -> Path:
    work = ROOT / "src" / "sqlparse"
    if work.exists():
        return work
    top = rp4.realdata.extract(rp4.realdata.pypi_sdist("sqlparse", "0.5.1"), ROOT / "src" / ".sq")
    shutil.copytree(top, work, symlinks=True)
    (work / ".gitignore").write_text(rp4.GITIGNORE_PY + ".pytest_cache/\n")
    rp4.git(work, "init", "-q", "-b", "main", env=env)
    rp4.commit_all(work, "sqlparse 0.5.1", env)
    return work


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, float]:
    t0 = time.monotonic()
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    return p.returncode, p.stdout + p.stderr, round(time.monotonic() - t0, 3)


def resolve(text: str) -> str:
    """The person's resolution: b's two lines with a's filter (whatever the markers)."""
    out, i, lines = [], 0, text.splitlines(keepends=True)
    while i < len(lines):
        if lines[i].startswith("<<<<<<<"):
            while not lines[i].startswith(">>>>>>>"):
                i += 1
            out.append(RESOLVED_LINES)
        else:
            out.append(lines[i])
        i += 1
    return "".join(out)


def unmarked(text: str) -> str:
    return re.sub(r"^(<<<<<<<|\|\|\|\|\|\|\||>>>>>>>)( .*)?$", r"\1", text, flags=re.M)


def status(cwd: Path, env: dict[str, str]) -> list[str]:
    return sorted(rp4.git(cwd, "status", "--porcelain", "--ignored", env=env).splitlines())


def shape(cwd: Path, env: dict[str, str]) -> list[str]:
    """HEAD's history as trees and parent counts (messages differ by design)."""
    out = rp4.git(cwd, "log", "--topo-order", "--format=%T %p", "HEAD", env=env)
    return [f"{ln.split()[0]} {len(ln.split()) - 1}" for ln in out.splitlines()]


def plain_round(env: dict[str, str], tag: str) -> dict[str, Any]:
    d = ROOT / "run" / f"plain-{tag}"
    rp4.git(ROOT, "clone", "-q", str(src(env)), str(d), env=env)
    rec: dict[str, Any] = {"t": {}}
    start = rp4.git(d, "rev-parse", "main", env=env).strip()
    for name in ("a", "b"):
        rp4.git(d, "checkout", "-q", "-b", name, "main", env=env)
        rc, out, t = run(["sh", "-c", AGENT[name] + f"; git commit -q -a -m 'agent {name}'"], d, env)
        rec[f"agent_{name}"] = [rc, out.strip().splitlines()[-1:]]
        rec["t"][f"agent_{name}"] = t
    rp4.git(d, "checkout", "-q", "main", env=env)
    rc, _, rec["t"]["merge_a"] = run(["git", "merge", "-q", "a"], d, env)
    rec["merge_a_rc"] = rc
    rc, _, rec["t"]["merge_b"] = run(["git", "-c", "merge.conflictStyle=diff3", "merge", "-q", "b"], d, env)
    rec["merge_b_rc"] = rc
    rec["conflicts"] = sorted(rp4.git(d, "diff", "--name-only", "--diff-filter=U", env=env).split())
    rec["status_conflict"] = status(d, env)
    marked = (d / FILE).read_text()
    rec["marked"] = unmarked(marked)
    t0 = time.monotonic()
    (d / FILE).write_text(resolve(marked))
    rc, out, _ = run(["sh", "-c", f"git add {FILE} && git commit -q --no-edit"], d, env)
    rec["t"]["resolve_commit"] = round(time.monotonic() - t0, 3)
    rec["commit_rc"] = rc
    rec["tree"] = rp4.git(d, "rev-parse", "HEAD^{tree}", env=env).strip()
    rec["shape"] = shape(d, env)
    rec["status_after"] = status(d, env)
    rec["tests"] = run(["sh", "-c", TESTS], d, env)[1].strip().splitlines()[-1:]
    for how in VARIANTS:
        rp4.git(d, "checkout", "-q", "-b", f"p-{how}", start, env=env)
        rp4.git(d, "merge", "-q", "a", env=env)
        t0 = time.monotonic()
        if how == "gitmerge_resolve":
            rc = run(["git", "merge", "-q", "b"], d, env)[0]
        else:
            rc = run(["git", "-c", "merge.conflictStyle=diff3", "merge", "-q", "b"], d, env)[0]
        rec[f"{how}_status_conflict"] = status(d, env)
        rec[f"{how}_rc"] = [rc, *_finish(how, d, env)]
        rec["t"][how] = round(time.monotonic() - t0, 3)
        rec[f"{how}_status"] = status(d, env)
        if how == "abort_kept":  # what avfs's checkpoint records: git's commit of it all
            run(["sh", "-c", "git add -A && git commit -q -m notes"], d, env)
        rec[f"{how}_tree"] = rp4.git(d, "rev-parse", "HEAD^{tree}", env=env).strip()
        rec[f"{how}_shape"] = shape(d, env)
    return rec


VARIANTS = ("theirs", "abort", "abort_kept", "gitmerge_resolve", "continue")


def _finish(how: str, d: Path, env: dict[str, str]) -> list[int]:
    """The person's way out of the conflict, in the mount (or the clone)."""
    if how == "theirs":
        return [
            run(
                ["sh", "-c", f"git checkout --theirs {FILE} && git add {FILE} && git commit -q --no-edit"],
                d,
                env,
            )[0]
        ]
    if how.startswith("abort"):
        if how == "abort_kept":  # a file of the person's own beside the conflict: git keeps it
            (d / "NOTES.txt").write_text("written while the merge was open\n")
        return [run(["git", "merge", "--abort"], d, env)[0]]
    (d / FILE).write_text(resolve((d / FILE).read_text()))
    if how == "continue" and (d / ".git").is_file():  # the mount: avfs ends its own merge
        return [run([AVFS, "merge", "--continue"], d, env)[0]]
    return [run(["sh", "-c", f"git add {FILE} && git commit -q --no-edit"], d, env)[0]]


def avfs_round(env: dict[str, str], backend: str, tag: str) -> dict[str, Any]:
    vault = f"sq-{backend}-{tag}"
    run([AVFS, "vault", "create", vault, "--from", str(src(env))], ROOT, env)
    rec: dict[str, Any] = {"t": {}}
    for how in VARIANTS:  # the person's other ways out, each on a fork of its own
        run([AVFS, "vault", "fork", f"{vault}:main", f"p-{how.replace('_', '-')}"], ROOT, env)
    for name in ("a", "b"):
        run([AVFS, "vault", "fork", f"{vault}:main", name], ROOT, env)
        rc, out, t = run(
            [AVFS, "--json", "--vault", f"{vault}:{name}", "proxy", "exec", "--shell", AGENT[name]], ROOT, env
        )
        doc = json.loads(out[: out.rfind("}") + 1] or "{}")
        res = doc.get("result") or {}
        rec[f"agent_{name}"] = [rc, (res.get("stdout") or "").strip().splitlines()[-1:]]
        rec[f"agent_{name}_changes"] = sorted(c["path"] for c in doc.get("changes", []))
        rec["t"][f"agent_{name}"] = t
    mnt = ROOT / "run" / f"{backend}-{tag}"
    mnt.mkdir(parents=True)
    rc, out, rec["t"]["mount"] = run(
        [AVFS, "mount", "--backend", backend, f"{vault}:main", str(mnt)], ROOT, env
    )
    assert rc == 0, out
    try:
        av = [AVFS, "--json", "--vault", f"{vault}:main"]
        rc, _, rec["t"]["merge_a"] = run([*av, "merge", "a"], mnt, env)
        rec["merge_a_rc"] = rc
        rc, out, rec["t"]["merge_b"] = run([*av, "merge", "b"], mnt, env)
        rec["merge_b_rc"] = rc
        doc = json.loads(out[out.find("{") : out.rfind("}") + 1] or "{}")
        found = [c for r in doc.get("results", []) for c in r.get("conflicts", [])]
        rec["merge_b_status"] = [r.get("status") for r in doc.get("results", [])]
        rec["conflicts"] = sorted(c.get("path") for c in found)
        rec["conflict_kinds"] = sorted(c.get("kind") for c in found)
        rc, out, rec["t"]["write_conflicts"] = run([*av, "merge", "b", "--write-conflicts"], mnt, env)
        rec["write_conflicts_rc"] = rc
        rec["status_conflict"] = status(mnt, env)
        rec["avfs_status_conflict"] = json.loads(run([*av, "status"], mnt, env)[1]).get("merge")
        marked = (mnt / FILE).read_text()
        rec["marked"] = unmarked(marked)
        t0 = time.monotonic()
        (mnt / FILE).write_text(resolve(marked))
        rc, out, _ = run(["sh", "-c", f"git add {FILE} && git commit -q --no-edit"], mnt, env)
        rec["t"]["resolve_commit"] = round(time.monotonic() - t0, 3)
        rec["commit_rc"] = rc
        rec["commit_out"] = out[-1000:]
        rc, out, rec["t"]["checkpoint"] = run([*av, "checkpoint", "save", "resolved"], mnt, env)
        rec["checkpoint_rc"] = rc
        rec["checkpoint_out"] = out[-600:]
        rec["tree"] = rp4.git(mnt, "rev-parse", "HEAD^{tree}", env=env).strip()
        rec["branch_tree"] = rp4.git(mnt, "rev-parse", "refs/heads/main^{tree}", env=env).strip()
        rec["shape"] = shape(mnt, env)
        rec["status_after"] = status(mnt, env)
        st = json.loads(run([*av, "status"], mnt, env)[1])
        rec["avfs_status_after"] = [st.get("merge"), sorted(c["path"] for c in st.get("changes", []))]
        rec["tests"] = run(["sh", "-c", TESTS], mnt, env)[1].strip().splitlines()[-1:]
    finally:
        run([AVFS, "unmount", f"{vault}:main"], ROOT, env)
    for how in VARIANTS:
        fork = f"p-{how.replace('_', '-')}"
        m = ROOT / "run" / f"{backend}-{tag}-{how}"
        m.mkdir(parents=True)
        rc, out, _ = run([AVFS, "mount", "--backend", backend, f"{vault}:{fork}", str(m)], ROOT, env)
        assert rc == 0, out
        try:
            av = [AVFS, "--json", "--vault", f"{vault}:{fork}"]
            run([*av, "merge", "a"], m, env)
            t0 = time.monotonic()
            if how == "gitmerge_resolve":  # git's own merge in the mount, of the fork's branch
                rc = run(["git", "merge", "-q", "b"], m, env)[0]
            else:
                rc = run([*av, "merge", "b", "--write-conflicts"], m, env)[0]
            rec[f"{how}_status_conflict"] = status(m, env)
            rec[f"{how}_rc"] = [rc, *_finish(how, m, env)]
            rec["t"][how] = round(time.monotonic() - t0, 3)
            rec[f"{how}_status"] = status(m, env)
            st = json.loads(run([*av, "status"], m, env)[1])
            rec[f"{how}_avfs_status"] = [st.get("merge"), sorted(c["path"] for c in st.get("changes", []))]
            ck = run([*av, "checkpoint", "save"], m, env)
            rec[f"{how}_checkpoint"] = [ck[0], ck[1][-300:] if ck[0] else ""]
            rec[f"{how}_tree"] = rp4.git(m, "rev-parse", "HEAD^{tree}", env=env).strip()
            rec[f"{how}_shape"] = shape(m, env)
        finally:
            run([AVFS, "unmount", f"{vault}:{fork}"], ROOT, env)
    fsck = run(["git", "--git-dir", f"{env['AVFS_HOME']}/vaults/{vault}.git", "fsck", "--strict"], ROOT, env)
    rec["fsck_rc"] = fsck[0]
    return rec


KEYS = ("agent_a", "agent_b", "merge_a_rc", "conflicts", "status_conflict", "marked", "commit_rc", "tree")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--backends", default="overlay,fuse")
    args = ap.parse_args()
    if (ROOT / "home").exists():
        from bench.fleet5 import unmount_layers

        unmount_layers(ROOT / "home")
    shutil.rmtree(ROOT, ignore_errors=True)
    env = rp4.env_base(ROOT / "home")
    res: dict[str, Any] = {"load_start": os.getloadavg(), "rounds": []}
    for r in range(args.rounds):
        rnd: dict[str, Any] = {}
        order = ["plain", *args.backends.split(",")]
        order = order[r % len(order) :] + order[: r % len(order)]
        for side in order:
            tag = f"{r}"
            rnd[side] = plain_round(env, tag) if side == "plain" else avfs_round(env, side, tag)
            rnd[side]["load"] = os.getloadavg()[0]
            print(f"round {r} {side}: {rnd[side]['t']}", file=sys.stderr)
        diffs = {}
        for side in args.backends.split(","):
            diffs[side] = {
                k: {"plain": rnd["plain"].get(k), side: rnd[side].get(k)}
                for k in (
                    *KEYS,
                    "shape",
                    "status_after",
                    "tests",
                    *(f"{h}_{x}" for h in VARIANTS for x in ("status_conflict", "status", "tree", "shape")),
                )
                if rnd["plain"].get(k) != rnd[side].get(k)
            }
            if rnd[side].get("branch_tree") != rnd["plain"]["tree"]:
                diffs[side]["branch_tree"] = rnd[side].get("branch_tree")
        rnd["diffs"] = diffs
        print(f"round {r} diffs: {json.dumps(diffs)[:3000]}", file=sys.stderr)
        res["rounds"].append(rnd)
    res["load_end"] = os.getloadavg()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = rp4.REPO / "bench" / "results" / f"realproj10-agents-{stamp}.json"
    out.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    print(out, file=sys.stderr)


if __name__ == "__main__":
    main()
