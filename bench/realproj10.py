"""Real projects through avfs, tenth round (docs/benchmarks.md, "Real projects, tenth
round"): shapes not tried before, each on realproj4's sides (a plain ``git clone``; a
mounted fork on each backend, where a person runs the steps; ``proxy exec`` on each, where
an agent does), interleaved step by step (``bench/realproj6.run_interleaved``), every step
compared (exit code, output, ``git status``, ``avfs status``) and the files at the end
(kind, exec bit, size, hash, link target).

- ``venv``: sqlparse 0.5.1's sdist with docutils 0.16's sdist vendored (``wheelhouse/``)
  and a ``.gitignore`` of ``.venv/``: ``python -m venv .venv`` and ``pip install`` of the
  vendored sdist (~1,900 files, symlinks, ``__pycache__``, executable scripts), an edit, a
  checkpoint, another and its undo, a merge of another fork (made with the CLI), an unmount
  and a mount, and the venv used again (``.venv/bin/python -c 'import docutils'``, its
  ``rst2html.py``).
- ``npm-ts``: rxjs 7.8.1's TypeScript sources (its npm tarball's ``src/``) with a
  ``package.json`` locking typescript 5.4.5 and tslib 2.6.2: ``npm ci --offline``
  (``node_modules/.bin`` symlinks, the exec bits it sets), ``tsc`` (~500 files in
  ``dist/``), the output run with node, an edit rebuilt, checkpoints, a restore, an undo.
- ``history`` (the sides without ``proxy exec``): 24 released sdists of sqlparse
  (0.1.10 … 0.5.1, ``tests/realdata.history``) imported with their tags: ``git log -p
  --follow``, ``git blame``, ``git bisect run`` of one of sqlparse 0.5.1's own regression
  tests, two commits and ``git rebase --onto`` dropping the first, a commit on a detached
  HEAD at one tag rebased ``--onto`` another and cherry-picked onto the fork (a branch
  switch in a mount is switched back: docs/fuse.md); then ``avfs diff``/``avfs log``
  between tags against git's.
- ``agents`` (``bench/realproj10agents.py``): two agents edit the same function through
  ``proxy exec``, a person merges, resolves with git in the mount, checkpoints.

Run: ``.venv/bin/python -m bench.realproj10 [--parts venv,npm-ts,history] [--sides ...]``
(as root); results in ``bench/results/realproj10-<part>-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RP4_ROOT", "/tmp/rp10/rp4")
os.environ.setdefault("RP6_ROOT", "/tmp/rp10")
from bench import realproj4 as rp4
from bench import realproj6 as rp6

REPO = rp4.REPO
PRE, PY = rp4.PRE, rp4.PY
SQLPARSE_HISTORY = [f"0.1.{i}" for i in range(10, 20)] + [
    "0.2.0", "0.2.1", "0.2.2", "0.2.3", "0.2.4", "0.3.0", "0.3.1",
    "0.4.0", "0.4.1", "0.4.2", "0.4.3", "0.4.4", "0.5.0", "0.5.1",
]  # fmt: skip


class Side(rp4.Side):
    """realproj4's side with two more step kinds: ``merge`` (another fork, made from the
    source's ``main`` and changed with the CLI, merged in: in the clone a branch, a
    worktree and ``git merge``) and ``remount`` (``avfs unmount`` and ``avfs mount`` again
    at the same place; nothing in the clone)."""

    def __init__(self, name: str, trial: str, src: Path, env: dict[str, str]) -> None:
        super().__init__(name, trial, src, env)
        self.origin = rp4.git(src, "rev-parse", "HEAD", env=env).strip()

    def op(self, kind: str, arg: str) -> dict[str, Any]:
        if kind == "merge":
            return self._merge(arg)
        if kind == "remount":
            if self.name == "plain":
                return {"rc": 0}
            vf = f"{self.vault}:{self.fork}"
            a = self.avfs("unmount", vf, check=False)
            b = self.avfs("mount", "--backend", self.name.split("-")[-1], vf, str(self.dir), check=False)
            return {"rc": a.returncode or b.returncode, "out": self.norm(a.stderr + b.stderr)[-2000:]}
        return super().op(kind, arg)

    def _merge(self, path: str) -> dict[str, Any]:
        """Another fork appends a line to ``path`` and adds ``OTHER.txt``; merged in."""
        other = f"other-{self.fork}"
        if self.name == "plain":
            wt = self.dir.parent / f"{other}-wt"
            rp4.git(self.dir, "worktree", "add", "-q", "-b", other, str(wt), self.origin, env=self.env)
            with open(wt / path, "a") as fh:
                fh.write("rp10: the other fork\n")
            (wt / "OTHER.txt").write_text("made in another fork\n")
            rp4.git(wt, "add", "-A", env=self.env)
            rp4.git(wt, "commit", "-q", "-m", "other", env=self.env)
            proc = subprocess.run(
                ["git", "merge", "-q", "--no-edit", other], cwd=self.dir, env=self.env, capture_output=True
            )
            return {"rc": proc.returncode}
        self.avfs("vault", "fork", f"{self.vault}:main", other)
        old = self.avfs("--vault", f"{self.vault}:{other}", "cat", path).stdout
        self.avfs("--vault", f"{self.vault}:{other}", "write", path, old + "rp10: the other fork\n")
        self.avfs("--vault", f"{self.vault}:{other}", "write", "OTHER.txt", "made in another fork\n")
        self.avfs("--vault", f"{self.vault}:{other}", "checkpoint", "save", "other")
        proc = self.avfs("--vault", f"{self.vault}:{self.fork}", "merge", other, check=False)
        return {"rc": proc.returncode, "out": self.norm(proc.stdout + proc.stderr)[-2000:]}


# -- sources --------------------------------------------------------------------------------


def src_venv(env: dict[str, str]) -> Path:
    """sqlparse 0.5.1's sdist, docutils 0.16's sdist in ``wheelhouse/`` (tracked: a vendored
    release the sandbox can install from), a ``.gitignore`` of what a venv and builds make."""
    work = rp4.ROOT / "src" / "venv"
    if work.exists():
        return work
    top = rp4.realdata.extract(rp4.realdata.pypi_sdist("sqlparse", "0.5.1"), rp4.ROOT / "src" / ".venv-src")
    shutil.copytree(top, work, symlinks=True)
    (work / "wheelhouse").mkdir()
    shutil.copy2(rp4.realdata.pypi_sdist("docutils", "0.16"), work / "wheelhouse")
    (work / ".gitignore").write_text(rp4.GITIGNORE_PY)
    rp4.git(work, "init", "-q", "-b", "main", env=env)
    rp4.commit_all(work, "sqlparse 0.5.1, docutils 0.16 vendored", env)
    return work


_NPM_PACKAGE = {
    "name": "rp10-rxjs-build",
    "version": "1.0.0",
    "private": True,
    "description": "rxjs 7.8.1's TypeScript sources compiled with tsc",
    "devDependencies": {"typescript": "5.4.5", "tslib": "2.6.2"},
}


def src_npm_ts(env: dict[str, str]) -> Path:
    """rxjs 7.8.1's npm tarball's ``src/`` and ``tsconfig.json``, a ``package.json`` locking
    typescript and tslib (the lock made once with ``npm install --package-lock-only``, npm's
    cache warmed by one ``npm ci`` in ``ROOT/npmcache``), ``.gitignore``: ``node_modules/``,
    ``dist/``."""
    work = rp4.ROOT / "src" / "npm-ts"
    if work.exists():
        return work
    gen = rp4.ROOT / "npmgen-ts"
    if not (gen / "package-lock.json").exists():
        gen.mkdir(parents=True, exist_ok=True)
        (gen / "package.json").write_text(json.dumps(_NPM_PACKAGE, indent=2) + "\n")
        for argv in (["npm", "install", "--package-lock-only"], ["npm", "ci"]):
            subprocess.run(
                [*argv, "--no-audit", "--no-fund"], cwd=gen, env=env, check=True, capture_output=True
            )
    work.mkdir(parents=True)
    with tarfile.open(rp4.realdata.npm_tarball("rxjs", "7.8.1")) as tf:
        tf.extractall(rp4.ROOT / "src" / ".rxjs", filter="tar")
    pkg = rp4.ROOT / "src" / ".rxjs" / "package"
    shutil.copytree(pkg / "src", work / "src", symlinks=True)
    shutil.copy2(pkg / "tsconfig.json", work / "tsconfig.json")
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(gen / name, work / name)
    (work / ".gitignore").write_text("node_modules/\ndist/\n")
    rp4.git(work, "init", "-q", "-b", "main", env=env)
    rp4.commit_all(work, "rxjs 7.8.1's sources, typescript locked", env)
    return work


def src_history(env: dict[str, str]) -> Path:
    """sqlparse's 24 sdists 0.1.10 … 0.5.1, one commit and a tag each (git's delta window
    10: chains as deep at a fraction of the time)."""
    return rp4.realdata.history("sqlparse", SQLPARSE_HISTORY, rp4.ROOT / "src", window=10)


# -- steps ----------------------------------------------------------------------------------

_VENV_LOOK = (
    "find .venv | wc -l; find .venv -type l -printf '%p -> %l\\n' | sort; "
    "find .venv -type f -perm -u+x | wc -l; find .venv -name __pycache__ | wc -l; "
    "ls -l .venv/bin | awk 'NR > 1 {print $1, $NF}'; "
)
_VENV_USE = (
    ".venv/bin/python -c 'import docutils, sys; print(docutils.__version__, sys.prefix)'; "
    ".venv/bin/rst2html.py README.rst | md5sum; head -1 .venv/bin/rst2html.py; "
)
VENV_STEPS: list[tuple[str, str]] = [
    (
        "sh",
        PRE + f"{PY} -m venv .venv; .venv/bin/pip install -q --no-index --no-build-isolation --no-deps "
        "wheelhouse/docutils-0.16.tar.gz >/dev/null 2>&1; echo pip=$?; "
        + _VENV_LOOK
        + _VENV_USE
        + "printf '\\n# rp10: one\\n' >> sqlparse/__init__.py; git status --porcelain --ignored",
    ),
    ("ckpt", "venv"),
    ("sh", PRE + "printf '# rp10: two\\n' >> sqlparse/keywords.py; git status --porcelain --ignored"),
    ("ckpt", "second"),
    ("undo", ""),
    ("sh", PRE + "git status --porcelain --ignored; git diff --stat; " + _VENV_USE),
    ("ckpt", "before-merge"),  # avfs's merge checkpoints what is uncheckpointed; git's carries it
    ("merge", "AUTHORS"),
    ("sh", PRE + "git status --porcelain --ignored; cat OTHER.txt; tail -1 AUTHORS; " + _VENV_USE),
    ("remount", ""),
    ("sh", PRE + _VENV_LOOK + _VENV_USE + "git status --porcelain --ignored; git diff --stat"),
]

_NPM_LOOK = (
    "ls -l node_modules/.bin | awk 'NR > 1 {print $1, $9, $10, $11}'; "
    "stat -c '%A %n' node_modules/typescript/bin/* node_modules/.bin/*; "
    "find node_modules | wc -l; "
)
_TSC = (
    "node_modules/.bin/tsc -p src/tsconfig.cjs.json; echo tsc=$?; find dist -type f | wc -l; "
    "find dist -type f ! -name '*.tsbuildinfo' | sort | xargs md5sum | md5sum; "
    "node -e \"const r = require('./dist/cjs'); const o = require('./dist/cjs/operators'); "
    'r.range(1, 5).pipe(o.map(x => x * 2), o.toArray()).subscribe(v => console.log(JSON.stringify(v)))"; '
)
NPM_TS_STEPS: list[tuple[str, str]] = [
    (
        "sh",
        PRE
        + "npm ci --offline --no-audit --no-fund 2>&1 | grep -E '^added' | sed -E 's/ in [0-9.]+m?s$//'; "
        + _NPM_LOOK
        + "git status --porcelain --ignored",
    ),
    ("sh", PRE + _TSC + "git status --porcelain --ignored"),
    ("ckpt", "built"),
    (
        "sh",
        PRE
        + "printf 'export const rp10 = 10;\\n' >> src/internal/util/identity.ts; "
        + _TSC
        + "grep -c rp10 dist/cjs/internal/util/identity.js; git status --porcelain --ignored",
    ),
    ("ckpt", "edited"),
    ("restore", "built"),
    ("sh", PRE + _TSC + "grep -c rp10 dist/cjs/internal/util/identity.js || true; git status --porcelain"),
    ("undo", ""),
    ("sh", PRE + _TSC + "grep -c rp10 dist/cjs/internal/util/identity.js; git status --porcelain --ignored"),
]

_BISECT_TEST = "/tmp/rp10/bisect/test_regressions.py"  # sqlparse 0.5.1's own, outside the trees
HISTORY_STEPS: list[tuple[str, str]] = [
    (
        "sh",
        PRE + "git log --oneline | wc -l; git tag | wc -l; "
        "git log -p --follow sqlparse/filters/reindent.py | md5sum; "
        "git log --follow --name-status --format=%s sqlparse/filters/reindent.py | tail -4; "
        "git log -p --stat v0.2.0..v0.3.0 | md5sum",
    ),
    (
        "sh",
        PRE + "git blame -w sqlparse/__init__.py | md5sum; "
        "git blame --line-porcelain sqlparse/lexer.py | grep '^summary ' | sort | uniq -c; "
        "git blame -C -C v0.2.0 -- sqlparse/filters/reindent.py | md5sum",
    ),
    (
        "sh",
        PRE + "git bisect start v0.5.1 v0.1.10 >/dev/null; "
        "git bisect run sh -c '! PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=. "
        f"{PY} -m pytest -q -p no:cacheprovider {_BISECT_TEST} -k issue485 >/dev/null 2>&1' "
        "| grep 'is the first bad commit' -A3 | grep -v -E '^(commit|Author|Date)'; "
        "git show -s --format=%s refs/bisect/bad; git bisect reset >/dev/null 2>&1; "
        "git status --porcelain; git symbolic-ref -q HEAD >/dev/null && echo on-branch",
    ),
    (
        "sh",
        PRE + "echo a > rp10-a.txt; git add rp10-a.txt; git commit -q -m 'rp10 a'; "
        "echo b > rp10-b.txt; git add rp10-b.txt; git commit -q -m 'rp10 b'; "
        "git log --format='%T %s' -3",
    ),
    (
        "sh",
        PRE + "git rebase -q --onto HEAD~2 HEAD~1; git log --format='%T %s' -3; ls rp10-*; "
        "git status --porcelain",
    ),
    (
        "sh",
        PRE + "B=$(git symbolic-ref --short HEAD); git checkout -q --detach v0.4.4; "
        "echo 'rp10 topic' >> LICENSE; git commit -q -a -m 'rp10 topic'; T=$(git rev-parse HEAD); "
        "git rebase -q --onto v0.5.1 v0.4.4 $T; git log --format='%T %s' -2; git status --porcelain; "
        "git checkout -q \"$B\"; git status --porcelain; git log --format='%T %s' -2; "
        "git cherry-pick HEAD@{1} >/dev/null; git log --format='%T %s' -2; git status --porcelain",
    ),
    ("ckpt", "after"),
    ("sh", PRE + "git status --porcelain; git log --format='%T' -1; tail -1 LICENSE; ls rp10-*"),
]


def history_avfs_vs_git(env: dict[str, str], vname: str) -> dict[str, Any]:
    """``avfs diff`` and ``avfs log`` between tags of the imported history against git's."""
    vault = f"{env['AVFS_HOME']}/vaults/{vname}.git"
    av = [rp6.AVFS, "--json", "--vault", f"{vname}:main"]
    out: dict[str, Any] = {}
    for a, b in (("v0.4.4", "v0.5.1"), ("v0.1.10", "v0.2.0"), ("v0.3.1", "v0.4.0")):
        t0 = time.monotonic()
        doc = json.loads(subprocess.run([*av, "diff", a, b], env=env, capture_output=True, text=True).stdout)
        t_avfs = time.monotonic() - t0
        t0 = time.monotonic()
        git = rp4.git(Path(vault), "diff", "--name-status", "--no-renames", a, b, env=env)
        t_git = time.monotonic() - t0
        want = sorted(ln.split("\t", 1)[1] for ln in git.splitlines())
        got = sorted(c["path"] for c in doc.get("changes", doc.get("files", [])))
        log = json.loads(
            subprocess.run([*av, "log", f"{a}..{b}"], env=env, capture_output=True, text=True).stdout
        )
        glog = rp4.git(Path(vault), "rev-list", f"{a}..{b}", env=env).split()
        out[f"{a}..{b}"] = {
            "diff_same": got == want,
            "diff_n": [len(got), len(want)],
            "only_avfs": sorted(set(got) - set(want))[:20],
            "only_git": sorted(set(want) - set(got))[:20],
            "log_same": [c.get("commit") or c.get("id") for c in log.get("commits", [])] == glog,
            "log_n": [len(log.get("commits", [])), len(glog)],
            "wall_s": [round(t_avfs, 3), round(t_git, 3)],
        }
    return out


def bisect_test() -> None:
    dest = Path(_BISECT_TEST)
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(rp4.realdata.pypi_sdist("sqlparse", "0.5.1")) as tf:
        member = tf.extractfile("sqlparse-0.5.1/tests/test_regressions.py")
        assert member is not None
        dest.write_bytes(member.read())


PARTS: dict[str, tuple[list[tuple[str, str]], Any, list[str]]] = {
    "venv": (VENV_STEPS, src_venv, rp4.SIDES),
    "npm-ts": (NPM_TS_STEPS, src_npm_ts, rp4.SIDES),
    "history": (HISTORY_STEPS, src_history, ["plain", "overlay", "fuse"]),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="venv,npm-ts,history")
    ap.add_argument("--sides", default="", help="the sides (default: each part's own)")
    args = ap.parse_args()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for part in filter(None, args.parts.split(",")):
        if part not in PARTS:
            raise SystemExit(f"unknown part {part!r}")
        steps, source, sides = PARTS[part]
        if args.sides:
            sides = args.sides.split(",")
        if part == "history":
            bisect_test()
        res: dict[str, Any] = {"stamp": stamp, "part": part, "load_start": os.getloadavg()}
        t0 = time.monotonic()
        res["trial"] = rp6.run_interleaved(part, steps, source, sides, side_cls=Side)
        if part == "history":
            env = rp4.env_base(rp4.ROOT / "home")
            res["avfs_vs_git"] = history_avfs_vs_git(env, f"{part}-{rp4.RUN_ID}")
        res["load_end"] = os.getloadavg()
        res["wall_s"] = round(time.monotonic() - t0, 1)
        out = REPO / "bench" / "results" / f"realproj10-{part}-{stamp}.json"
        out.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
        print(out, file=sys.stderr)
        cmp = res["trial"]["compare"]
        for name, c in cmp.items():
            print(
                f"{part} {name}: steps differing {[d['step'] for d in c['steps_differing']]}, "
                f"files missing {len(c['files_missing'])} extra {len(c['files_extra'])} "
                f"differing {len(c['files_differing'])}, time x{c['time_ratio']} cpu x{c['cpu_ratio']}",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
