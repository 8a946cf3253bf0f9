"""Real projects through avfs, ninth round, a person's daily loop (docs/benchmarks.md,
"Real projects, ninth round"), in a mounted fork beside the same in a plain ``git clone``:

- ``history``: sqlparse's released sdists 0.4.4, 0.5.0, 0.5.1 as a history with tags
  (``tests/realdata.history``), imported with ``avfs vault create --from`` (its history
  comes along), its tests run in the mount;
- ``many``: Django 5.1.4's sdist (10,041 files, most of them small) as one commit.

The loop, each step on both sides in turn (the first side turning each step), timed:
edits (``sed -i``, an append, a new file, a removal), ``git add`` of the paths and ``git
commit`` in the mount; more edits and ``avfs checkpoint save`` (git: ``add -A`` and
``commit``); ``avfs undo`` of it (git: ``reset HEAD~1``); a fork changed and ``avfs merge``d
(git: a branch, a worktree, ``git merge``); ``git log``/``git blame`` in the mount; ``avfs
export`` of the fork (git: the working tree); the tests (history). After every step: ``git
status --porcelain``, HEAD's tree, and (avfs) ``avfs status`` against git's status.

Run: ``.venv/bin/python -m bench.realproj9loop [--projects history,many]`` (as root);
results in ``bench/results/realproj9-loop-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.fleet5 import unmount_layers  # noqa: E402
from tests import realdata  # noqa: E402

ROOT = Path(os.environ.get("RP9L_ROOT", "/tmp/rp9l"))
AVFS = str(REPO / ".venv/bin/avfs")


def env_of() -> dict[str, str]:
    user = ROOT / "user"
    user.mkdir(parents=True, exist_ok=True)
    (user / ".gitconfig").write_text(
        "[user]\n\tname = person\n\temail = person@example.org\n[init]\n\tdefaultBranch = main\n"
        "[safe]\n\tdirectory = *\n[advice]\n\tdetachedHead = false\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "AVFS_"))}
    env.update(
        HOME=str(user), AVFS_HOME=str(ROOT / "home"), GIT_CONFIG_NOSYSTEM="1", LC_ALL="C.UTF-8",
        PYTHONDONTWRITEBYTECODE="1", npm_config_cache=str(ROOT / "npmcache"),
    )  # fmt: skip
    return env


def git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def src_history(env: dict[str, str]) -> Path:
    return realdata.history("sqlparse", ["0.4.4", "0.5.0", "0.5.1"], ROOT / "srcs", aggressive=False)


MIRROR = Path(os.environ.get("RP9L_NODE", "/work/.mirror/juliangruber+balanced-match/repo"))
NPM_CI = (
    "npm ci --no-audit --no-fund --prefer-offline 2>&1 | grep -E '^added' | sed -E 's/ in [0-9.]+m?s?$//'"
)
NPM_TEST = (
    "npm test >../npm-test-$(basename $PWD).log 2>&1; echo test=$?; "
    "grep -c -E '^ *(ok|not ok) ' ../npm-test-$(basename $PWD).log"
)


def src_node(env: dict[str, str]) -> Path:
    """balanced-match's repository (126 commits, a ``package-lock.json``; ``npm test`` builds
    ``dist/`` with tshy, then runs tap): a clone of a local mirror of it, its npm cache
    warmed by one ``npm ci`` not timed (both sides then install from it)."""
    work = ROOT / "srcs" / "balanced-match"
    if work.exists():
        return work
    git(ROOT, "clone", "-q", str(MIRROR), str(work), env=env)
    warm = ROOT / "srcs" / ".warm"
    git(ROOT, "clone", "-q", str(work), str(warm), env=env)
    subprocess.run(["sh", "-c", NPM_CI], cwd=warm, env=env, capture_output=True)
    shutil.rmtree(warm)
    return work


def src_many(env: dict[str, str]) -> Path:
    work = ROOT / "srcs" / "django"
    if work.exists():
        return work
    shutil.copytree(realdata.extract(realdata.pypi_sdist("Django", "5.1.4"), ROOT / "srcs" / ".dj"), work,
                    symlinks=True)  # fmt: skip
    git(work, "init", "-q", "-b", "main", env=env)
    git(work, "add", "-A", "-f", env=env)
    git(work, "commit", "-q", "-m", "Django 5.1.4", env=env)
    return work


# (what, the avfs side's argv or shell line, git's shell line); "{V}" is the vault, "{X}"
# the export directory of the side
def loop(project: str) -> list[tuple[str, list[str] | str, str]]:
    if project == "history":
        f1, f2, new, gone, test = "sqlparse/lexer.py", "CHANGELOG", "sqlparse/extra.py", "TODO", True
    elif project == "node":
        f1, f2, new, gone, test = "src/index.ts", "README.md", "src/extra.ts", "SECURITY.md", False
    else:
        f1, f2 = "django/utils/text.py", "django/contrib/admin/locale/de/LC_MESSAGES/django.po"
        new, gone, test = (
            "django/extra/notes.txt",
            "django/contrib/admin/locale/fr/LC_MESSAGES/django.mo",
            False,
        )
    mark = "//" if f1.endswith(".ts") else "#"
    decl = "export const " if f1.endswith(".ts") else ""  # (TypeScript: tshy's build checks it)
    edit1 = (
        f"sed -i '1i {mark} edited by a person' {f1}; printf 'another line\\n' >> {f2}; "
        f"mkdir -p $(dirname {new}); printf '{decl}x = 1\\n' > {new}; rm {gone}"
    )
    steps: list[tuple[str, list[str] | str, str]] = [
        ("edit", edit1, edit1),
        (
            "git add + commit",
            f"git add {f1} {f2} {new} {gone} && git commit -q -m 'a person edits'",
            f"git add {f1} {f2} {new} {gone} && git commit -q -m 'a person edits'",
        ),
        (
            "edit again",
            f"sed -i 's/x = 1/x = 2/' {new}; printf 'more\\n' >> {f2}",
            f"sed -i 's/x = 1/x = 2/' {new}; printf 'more\\n' >> {f2}",
        ),
        ("checkpoint", ["checkpoint", "save", "loop"], "git add -A && git commit -q -m checkpoint"),
        ("undo", ["undo"], "git reset -q HEAD~1"),
        ("checkpoint again", ["checkpoint", "save", "loop2"], "git add -A && git commit -q -m checkpoint"),
        (
            "fork + change",
            "FORK",
            "git branch side && git worktree add -q ../side-wt-$(basename $PWD) side && "
            f"cd ../side-wt-$(basename $PWD) && printf '{mark} from side\\n' >> {f1} && git commit -q -am side",
        ),
        ("merge", ["merge", "side"], "git merge -q --no-edit side"),
        (
            "log",
            "git log --format='%T %P' --name-status | sed -E 's/ [0-9a-f]{40}/ P/g' | md5sum; "
            "git log --format=%T | wc -l",
            "git log --format='%T %P' --name-status | sed -E 's/ [0-9a-f]{40}/ P/g' | md5sum; "
            "git log --format=%T | wc -l",
        ),
        (
            "blame",
            f"git blame -s -w {f1} | cut -c10- | md5sum; git blame --line-porcelain {f2} | "
            "grep -c '^author person'",
            f"git blame -s -w {f1} | cut -c10- | md5sum; git blame --line-porcelain {f2} | grep -c '^author person'",
        ),
        (
            "export",
            ["export", "{B}", "{X}"],
            "mkdir -p {X} && git ls-files -z | xargs -0 cp --parents -t {X}",
        ),
    ]
    if project == "node":
        steps.insert(0, ("npm ci", NPM_CI, NPM_CI))
        steps.append(("npm test (tshy build, tap)", NPM_TEST + "; ls dist/esm | sort | md5sum",
                      NPM_TEST + "; ls dist/esm | sort | md5sum"))  # fmt: skip
    if test:
        steps.append(
            (
                "tests",
                "python3 -m pytest -q -p no:cacheprovider tests 2>&1 | tail -1 | sed -E 's/ in .*//'",
                "python3 -m pytest -q -p no:cacheprovider tests 2>&1 | tail -1 | sed -E 's/ in .*//'",
            )
        )
    return steps


def tree_hash(d: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    for top, dirs, files in sorted(os.walk(d)):
        dirs.sort()
        for f in sorted(files):
            p = Path(top) / f
            rel = p.relative_to(d).as_posix()
            if rel == ".git" or rel.startswith(".git/"):
                continue
            n += 1
            h.update(rel.encode() + b"\0" + (os.readlink(p).encode() if p.is_symlink() else p.read_bytes()))
            h.update(b"x" if os.access(p, os.X_OK) and not p.is_symlink() else b"-")
    return n, h.hexdigest()[:16]


def run_project(project: str, env: dict[str, str]) -> dict[str, Any]:
    src = {"history": src_history, "many": src_many, "node": src_node}[project](env)
    vname = f"rp9{project}"
    br = git(src, "rev-parse", "--abbrev-ref", "HEAD", env=env).strip()  # the fork the vault starts with
    t0 = time.monotonic()
    c = subprocess.run([AVFS, "--json", "vault", "create", vname, "--from", str(src)], env=env, capture_output=True,
                       text=True)  # fmt: skip
    t1 = time.monotonic()
    plain = ROOT / f"plain-{project}"
    git(ROOT, "clone", "-q", str(src), str(plain), env=env)
    t2 = time.monotonic()
    res: dict[str, Any] = {"import": {"avfs": [c.returncode, round(t1 - t0, 3), c.stderr[-500:]],
                                      "git_clone": round(t2 - t1, 3)}, "steps": [], "diff": []}  # fmt: skip
    res["history"] = {
        "avfs": git(
            ROOT,
            "--git-dir",
            str(ROOT / f"home/vaults/{vname}.git"),
            "log",
            "--format=%T %s",
            br,
            env=env,
        ).splitlines(),
        "git": git(plain, "log", "--format=%T %s", br, env=env).splitlines(),
    }
    if res["history"]["avfs"] != res["history"]["git"]:
        res["diff"].append("imported history")
    mnt = ROOT / f"mnt-{project}"
    mnt.mkdir()
    subprocess.run([AVFS, "mount", f"{vname}:{br}", str(mnt)], env=env, check=True, capture_output=True)
    dirs = {"avfs": mnt, "git": plain}
    f1 = next(
        str(a).split()[2] for w, a, _ in loop(project) if w == "git add + commit"
    )  # the side fork's file
    mark = "//" if f1.endswith(".ts") else "#"
    try:
        for i, (what, avfs_do, git_line) in enumerate(loop(project)):
            rec: dict[str, Any] = {"what": what, "load": round(os.getloadavg()[0], 1)}
            for side in ["avfs", "git"] if i % 2 == 0 else ["git", "avfs"]:
                exp = ROOT / f"export-{project}-{side}"
                t = time.monotonic()
                if side == "git":
                    p = subprocess.run(["sh", "-c", git_line.replace("{X}", str(exp))], cwd=plain, env=env,
                                       capture_output=True, text=True)  # fmt: skip
                elif avfs_do == "FORK":
                    p = subprocess.run(
                        ["sh", "-c", f"{AVFS} vault fork {vname}:{br} side && ({AVFS} --vault {vname}:side cat {f1}; "
                         f"printf '{mark} from side\\n') | {AVFS} --vault {vname}:side write --stdin {f1} && "
                         f"{AVFS} --vault {vname}:side checkpoint save side"],
                        cwd=mnt, env=env, capture_output=True, text=True,
                    )  # fmt: skip
                elif isinstance(avfs_do, list):
                    argv = [a.replace("{X}", str(exp)).replace("{B}", br) for a in avfs_do]
                    p = subprocess.run([AVFS, "--vault", f"{vname}:{br}", *argv], cwd=mnt, env=env, capture_output=True,
                                       text=True)  # fmt: skip
                else:
                    p = subprocess.run(
                        ["sh", "-c", avfs_do], cwd=mnt, env=env, capture_output=True, text=True
                    )
                wall = round(time.monotonic() - t, 3)
                d = dirs[side]
                st = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=d, env=env,
                                    capture_output=True, text=True).stdout  # fmt: skip
                tree = subprocess.run(["git", "rev-parse", "HEAD^{tree}"], cwd=d, env=env, capture_output=True,
                                      text=True).stdout.strip()  # fmt: skip
                rec[side] = {"rc": p.returncode, "t": wall, "out": p.stdout[-1500:], "err": p.stderr[-1500:],
                             "status": sorted(st.splitlines()), "tree": tree}  # fmt: skip
                if what == "export":
                    rec[side]["export"] = tree_hash(exp)
            a = subprocess.run([AVFS, "--json", "--vault", f"{vname}:{br}", "status"], env=env, capture_output=True,
                               text=True)  # fmt: skip
            try:
                rec["avfs"]["avfs_status"] = sorted(c["path"] for c in json.loads(a.stdout)["changes"])
            except (ValueError, KeyError):
                rec["avfs"]["avfs_status"] = a.stdout[-300:] + a.stderr[-300:]
            want = sorted({ln[3:].split(" -> ")[-1].strip('"') for ln in rec["git"]["status"]})
            if rec["avfs"]["avfs_status"] != want:
                res["diff"].append(f"{what}: avfs status")
            keys = ["rc", "status", "tree"] + (
                ["out"] if what.split()[0] in ("log", "blame", "tests", "edit", "npm") else []
            )
            if what == "fork + change":
                keys = ["rc"]
            if what == "export":
                keys = ["rc", "export"]
            for k in keys:
                if rec["avfs"].get(k) != rec["git"].get(k):
                    res["diff"].append(f"{what}: {k}")
            res["steps"].append(rec)
            print(f"  {project} {what}: avfs rc={rec['avfs']['rc']} {rec['avfs']['t']}s, git rc={rec['git']['rc']} "
                  f"{rec['git']['t']}s", file=sys.stderr)  # fmt: skip
    finally:
        subprocess.run([AVFS, "unmount", str(mnt)], env=env, capture_output=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--projects", default="history,many")
    args = ap.parse_args()
    if (ROOT / "home").exists():
        unmount_layers(ROOT / "home")
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    env = env_of()
    res: dict[str, Any] = {"load_start": os.getloadavg()}
    try:
        for project in args.projects.split(","):
            res[project] = run_project(project, env)
    except Exception:
        import traceback

        res["error"] = traceback.format_exc()
    finally:
        unmount_layers(ROOT / "home")
    res["load_end"] = os.getloadavg()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = REPO / "bench" / "results" / f"realproj9-loop-{stamp}.json"
    dest.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({"file": str(dest), "error": res.get("error"),
                      **{p: res[p]["diff"] for p in args.projects.split(",") if p in res}}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
