"""Real projects through avfs, twenty-eighth round (docs/benchmarks.md, "Real projects in
both mounts beside a clone"): three shapes not tried before, each on realproj4's sides (a
plain ``git clone``; a mounted fork on each backend, where a person runs the steps; ``proxy
exec`` on each, where an agent does), interleaved step by step
(``bench/realproj6.run_interleaved``), every step compared (exit code, output, ``git
status``, ``avfs status``) and the files at the end (kind, exec bit, size, hash, link).

- ``cext``: PyYAML 6.0.2's sdist (a Cython extension over libyaml; it ships a
  ``packaging/__pycache__`` of its own), Cython and pytest as wheels in a tracked
  ``wheelhouse/`` (the sandbox has no network): a venv, ``pip install -e .`` (Cython makes
  ``yaml/_yaml.c``, gcc the ``.so``), its ~1,300 tests, an edit of the ``.pyx`` rebuilt, a
  scripted edit, ``git add -p``, ``git commit``, ``avfs diff`` against ``git diff``, a
  merge of another fork, a restore, an undo, ``git clean -fdx``.
- ``npm``: a project locking eslint 8.57.0, ajv and semver (~2,000 files in
  ``node_modules``), ``npm ci --offline`` from a warm cache, ``eslint``, ``node --test``,
  an edit that breaks the lint, a restore, a reinstall.
- ``history`` (the sides without ``proxy exec``): packaging's sdists 21.3 … 24.0 (22.0
  moved every module into ``src/``: renames) with a maintenance branch merged in: ``git
  log --follow`` across the move, ``blame -C``, a scripted edit, ``git add -p``, commits,
  ``git rebase -i`` swapping two commits, ``git mv``, ``avfs diff``, another fork merged,
  an undo.

Run: ``.venv/bin/python -m bench.realdata3 [--parts cext,npm,history] [--sides ...]`` (as
root); results in ``bench/results/realdata3-<part>-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RP4_ROOT", "/tmp/h-realdata3/rp4")
os.environ.setdefault("RP6_ROOT", "/tmp/h-realdata3")
from bench import realproj4 as rp4
from bench import realproj6 as rp6
from bench import realproj10 as rp10
from tests import realdata

REPO = rp4.REPO
PRE, PY, NOTIME = rp4.PRE, rp4.PY, rp4.NOTIME
WHEELS = Path(os.environ.get("RD3_WHEELS", "/tmp/h-realdata3/wheelhouse"))
PACKAGING = ["21.3", "22.0", "23.0", "23.2", "24.0"]


class Side(rp10.Side):
    """realproj10's side (``merge``, ``remount``) with ``diff``: in a mount ``avfs diff``
    (``--name-status`` and the patch), in the clone ``git diff`` of HEAD against the tree
    git would commit now; and an undo of a merge in the clone that is ``reset --hard``
    to the first parent (avfs's undo of a merge puts the fork back as it was)."""

    def op(self, kind: str, arg: str) -> dict[str, Any]:
        if kind == "diff":
            return self._diff()
        if kind == "merge":
            rec = super().op(kind, arg)
            self.last_op = kind
            return rec
        if kind == "undo" and self.name == "plain" and self.last_op == "merge":
            rp4.git(self.dir, "reset", "-q", "--hard", "HEAD^1", env=self.env)
            self.last_op = kind
            return {"rc": 0}
        return super().op(kind, arg)

    def _diff(self) -> dict[str, Any]:
        if self.name == "plain":
            snap = self.status()["snapshot"]
            ns = rp4.git(self.dir, "diff", "--no-renames", "--name-status", "HEAD", snap, env=self.env)
            patch = rp4.git(self.dir, "diff", "--no-renames", "HEAD", snap, env=self.env)
            return {"rc": 0, "out": ns + "\n" + patch}
        vf = f"{self.vault}:{self.fork}"
        a = self.avfs("--vault", vf, "diff", "--name-status", check=False)
        b = self.avfs("--vault", vf, "diff", check=False)
        return {"rc": a.returncode or b.returncode, "out": self.norm(a.stdout + "\n" + b.stdout)}


# -- sources --------------------------------------------------------------------------------


def src_pyyaml(env: dict[str, str]) -> Path:
    """PyYAML 6.0.2's sdist committed whole (its ``packaging/__pycache__`` too: ``add -f``),
    the wheels of Cython and pytest in ``wheelhouse/``, a ``.gitignore`` of what builds make."""
    work = rp4.ROOT / "src" / "pyyaml"
    if work.exists():
        return work
    top = realdata.extract(realdata.pypi_sdist("PyYAML", "6.0.2"), rp4.ROOT / "src" / ".pyyaml")
    shutil.copytree(top, work, symlinks=True)
    shutil.copytree(WHEELS, work / "wheelhouse")
    (work / ".gitignore").write_text(rp4.GITIGNORE_PY + ".pytest_cache/\nyaml/_yaml.c\n")
    rp4.git(work, "init", "-q", "-b", "main", env=env)
    rp4.commit_all(work, "PyYAML 6.0.2, Cython and pytest vendored", env)
    return work


def src_npm(env: dict[str, str]) -> Path:
    """``ROOT/npmgen``'s project (package.json, its lock, ``src/``, ``test/``, an
    ``.eslintrc.json``), npm's cache warmed in ``ROOT/npmcache``."""
    work = rp4.ROOT / "src" / "npm"
    if work.exists():
        return work
    gen = rp4.ROOT / "npmgen"
    if not (gen / "package-lock.json").exists():
        raise SystemExit(f"no {gen}/package-lock.json")
    work.mkdir(parents=True)
    for name in ("package.json", "package-lock.json", ".eslintrc.json"):
        shutil.copy2(gen / name, work / name)
    for name in ("src", "test"):
        shutil.copytree(gen / name, work / name)
    (work / ".gitignore").write_text("node_modules/\n")
    rp4.git(work, "init", "-q", "-b", "main", env=env)
    rp4.commit_all(work, "an npm project: eslint, ajv, semver", env)
    return work


def src_history(env: dict[str, str]) -> Path:
    """packaging's sdists, one commit and tag each, and a ``maint`` branch from 22.0 (a
    file added, one edited) merged into ``main`` with ``--no-ff``."""
    work = rp4.ROOT / "src" / "packaging-history"
    if (work / ".done").exists():
        return work
    made = realdata.history("packaging", PACKAGING, rp4.ROOT / "src", aggressive=False)
    rp4.git(made, "checkout", "-q", "-b", "maint", "v22.0", env=env)
    (made / "MAINT.txt").write_text("maintenance notes\n")
    with open(made / "packaging" / "utils.py", "a") as fh:
        fh.write("\n# maint: a note\n")
    rp4.commit_all(made, "maint: notes", env)
    rp4.git(made, "checkout", "-q", "main", env=env)
    rp4.git(made, "merge", "-q", "--no-ff", "-m", "merge maint", "maint", "-X", "ours", env=env)
    (made / ".gitignore").write_text(rp4.GITIGNORE_PY + ".pytest_cache/\n")
    rp4.commit_all(made, "ignore what builds make", env)
    if made != work:
        made.rename(work)
    (work / ".git" / "info" / "exclude").write_text(".done\n")
    (work / ".done").write_text("")
    return work


# -- steps ----------------------------------------------------------------------------------

_EDIT_PY = r"""
import re, pathlib
p = pathlib.Path("lib/yaml/__init__.py")
s = p.read_text()
s = s.replace("__version__ = '6.0.2'", "__version__ = '6.0.2+rd3'")
s = re.sub(r"(def safe_load\(stream\):\n)", r"\1    # rd3: the safe loader\n", s)
s += "\n# rd3: an appended line\n"
p.write_text(s)
t = pathlib.Path("lib/yaml/constructor.py")
t.write_text(t.read_text().replace("    pass\n", "    pass  # rd3\n", 1))
pathlib.Path("NOTES.rd3").write_text("an agent's notes\n")
print("edited")
"""
_PIP = (
    f"{PY} -m venv --system-site-packages .venv; "
    ".venv/bin/python -m pip install -q --no-index --find-links wheelhouse Cython pytest 2>&1 | { grep -v -i warn || true; }; "
    ".venv/bin/python -m pip install -q --no-build-isolation --no-index -e . >/dev/null 2>&1; echo pip=$?; "
)
_YTEST = ".venv/bin/python -m pytest -q -p no:cacheprovider tests 2>&1 | tail -1" + NOTIME + "; "
CEXT_STEPS: list[tuple[str, str]] = [
    ("ckpt", "src"),
    (
        "sh",
        PRE + _PIP + "ls yaml/ | sed 's/cpython.*/SO/'; "
        ".venv/bin/python -c 'import yaml; print(yaml.__with_libyaml__, yaml.__version__)'; " + _YTEST,
    ),
    ("ckpt", "built"),
    (
        "sh",
        PRE + "printf '\\n# rd3\\n' >> yaml/_yaml.pyx; sleep 1; "
        ".venv/bin/python setup.py build_ext -i 2>&1 | grep -c -E '^(x86_64-linux-gnu-)?gcc' || true; "
        "for so in yaml/_yaml*.so; do [ $so -nt yaml/_yaml.pyx ] && echo so-newer; done; "
        "grep -c rd3 yaml/_yaml.c; .venv/bin/python -c 'import yaml; print(yaml.__with_libyaml__)'",
    ),
    ("sh", PRE + f"{PY} - <<'PYEOF'\n{_EDIT_PY}\nPYEOF\ngit status --porcelain; git diff --stat"),
    ("diff", ""),
    (
        "sh",
        PRE + "printf 'y\\nn\\ny\\n' | git add -p lib/yaml/__init__.py >/dev/null; "
        "git diff --cached --stat; git commit -q -m 'rd3: part of the edit'; "
        "git status --porcelain; git log --format=%s -2; " + _YTEST,
    ),
    ("ckpt", "edited"),
    ("merge", "README.md"),
    ("sh", PRE + "git status --porcelain --ignored | sort; cat OTHER.txt; tail -1 README.md; " + _YTEST),
    ("restore", "built"),
    (
        "sh",
        PRE + "ls yaml/ | sed 's/cpython.*/SO/'; grep -c rd3 yaml/_yaml.pyx lib/yaml/__init__.py || true; "
        "git status --porcelain --ignored | sort; " + _YTEST,
    ),
    ("undo", ""),
    (
        "sh",
        PRE + "grep -c rd3 yaml/_yaml.pyx || true; git clean -fdxq; git status --porcelain --ignored; ls -a",
    ),
]

_NPM = (
    "npm ci --offline --no-audit --no-fund 2>&1 | grep -v -E '^npm (notice|warn)' "
    "| sed -E 's/in [0-9.]+m?s/in N/'; "
)
_NTEST = "npm test 2>&1 | grep -E '^# (tests|pass|fail)'; "
NPM_STEPS: list[tuple[str, str]] = [
    ("sh", PRE + _NPM + _NTEST + "npx eslint src; echo lint=$?; find node_modules -type f | wc -l"),
    ("ckpt", "installed"),
    (
        "sh",
        "exec 2>&1; sed -i 's/ semver.rcompare)/ semver.rcompare);  let unused = 1/' src/index.js; "
        "npx eslint src | sed 's|^/.*/src|src|'; echo lint=$?; "
        + _NTEST
        + "git status --porcelain --ignored",
    ),
    ("diff", ""),
    ("restore", "installed"),
    ("sh", PRE + "grep -c unused src/index.js || true; rm -rf node_modules; " + _NPM + _NTEST),
    ("sh", PRE + "git clean -fdxq; git status --porcelain --ignored; ls -a"),
]

_HEDIT = r"""
import pathlib, re
p = pathlib.Path("src/packaging/version.py")
s = p.read_text()
s = s.replace('__all__ = [', '__all__ = [  # rd3: one\n   ', 1)
s = s.replace("class InvalidVersion(ValueError):", "class InvalidVersion(ValueError):  # rd3: two", 1)
s += "\n# rd3: three\n"
p.write_text(s)
u = pathlib.Path("src/packaging/utils.py")
u.write_text(u.read_text() + "\n# rd3: utils\n")
pathlib.Path("src/packaging/rd3.py").write_text("X = 1\n")
print("edited")
"""
HIST_STEPS: list[tuple[str, str]] = [
    (
        "sh",
        PRE + "git log --follow --oneline --name-status -- src/packaging/version.py; "
        "git log --graph --format=%s | head -12; git blame -C -s src/packaging/tags.py | md5sum; "
        "git diff --stat -M v22.0 v23.0 | tail -3; git log --format=%s --merges -1",
    ),
    ("sh", PRE + f"{PY} - <<'PYEOF'\n{_HEDIT}\nPYEOF\ngit status --porcelain; git diff --stat"),
    ("diff", ""),
    (
        "sh",
        PRE + "printf 'y\\nn\\ny\\n' | git add -p src/packaging/version.py >/dev/null; "
        "git diff --cached --stat; git commit -q -m 'rd3: hunks one and three'; "
        "git add src/packaging/rd3.py; git commit -q -m 'rd3: a module'; git status --porcelain",
    ),
    (
        "sh",
        PRE + 'GIT_SEQUENCE_EDITOR=\'rev() { tac "$1" > "$1.x" && mv "$1.x" "$1"; }; rev\' '
        "git rebase -q -i --autostash HEAD~2 2>&1; git stash list; "
        "git log --format=%s -3; git status --porcelain; git diff HEAD~2 --stat",
    ),
    ("ckpt", "rebased"),
    (
        "sh",
        PRE + "git mv src/packaging/_structures.py src/packaging/structures_rd3.py; "
        "sed -i 's/from ._structures import/from .structures_rd3 import/' src/packaging/version.py; "
        "git commit -q -am 'rd3: rename'; git show --stat -M --format=%s HEAD | tail -4; git status --porcelain",
    ),
    ("diff", ""),
    ("merge", "README.rst"),
    ("sh", PRE + "git log --format=%s -4; git status --porcelain; tail -1 README.rst; cat OTHER.txt"),
    ("undo", ""),
    ("sh", PRE + "git log --format=%s -3; git status --porcelain; ls OTHER.txt 2>&1 || true"),
    ("diff", ""),
]

ALL = ["plain", "overlay", "fuse", "exec-overlay", "exec-fuse"]
PARTS: dict[str, tuple[list[tuple[str, str]], Any, list[str]]] = {
    "cext": (CEXT_STEPS, src_pyyaml, ALL),
    "npm": (NPM_STEPS, src_npm, ALL),
    "history": (HIST_STEPS, src_history, ["plain", "overlay", "fuse"]),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="cext,npm,history")
    ap.add_argument("--sides", default="", help="the sides (default: each part's own)")
    args = ap.parse_args()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for part in filter(None, args.parts.split(",")):
        steps, source, sides = PARTS[part]
        if args.sides:
            sides = args.sides.split(",")
        res: dict[str, Any] = {"stamp": stamp, "part": part, "load_start": os.getloadavg()}
        t0 = time.monotonic()
        res["trial"] = rp6.run_interleaved(part, steps, source, sides, side_cls=Side)
        # (realproj4's compare holds other steps than ``sh`` to their exit codes alone)
        recs = res["trial"]["sides"]
        res["diff_vs_plain"] = {
            name: [
                i
                for i, (a, b) in enumerate(zip(recs["plain"]["steps"], got["steps"], strict=True))
                if a["kind"] == "diff" and a.get("out") != b.get("out")
            ]
            for name, got in recs.items()
            if name != "plain" and "plain" in recs
        }
        res["load_end"] = os.getloadavg()
        res["wall_s"] = round(time.monotonic() - t0, 1)
        out = REPO / "bench" / "results" / f"realdata3-{part}-{stamp}.json"
        out.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
        print(out, file=sys.stderr)
        for name, c in res["trial"]["compare"].items():
            print(
                f"{part} {name}: steps differing {[d['step'] for d in c['steps_differing']]}, "
                f"files missing {len(c['files_missing'])} extra {len(c['files_extra'])} "
                f"differing {len(c['files_differing'])}, time x{c['time_ratio']} cpu x{c['cpu_ratio']}",
                file=sys.stderr,
            )
        print(f"{part}: diff steps whose output differs from git's: {res['diff_vs_plain']}", file=sys.stderr)


if __name__ == "__main__":
    main()
