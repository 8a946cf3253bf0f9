"""Real projects through avfs, ninth round, two agents through a ``git daemon``
(docs/benchmarks.md, "Real projects, ninth round"): sqlparse 0.5.1's sdist as one commit,
in two bare repositories served by one ``git daemon`` on 127.0.0.1 (pushes allowed):
``avfs.git`` for the avfs side, ``plain.git`` for git's. Agents a and b each have an avfs
home with a lazy clone (``avfs vault clone --lazy``) of ``avfs.git``, and a plain ``git
clone`` of ``plain.git``. Each round both commit (through ``proxy exec`` on their fork
``main``: edits committed by git inside the command, and in some rounds edits left for
the exec's own commit, which the plain side then commits under avfs's message), then a
pulls and pushes, then b (a merge of a's work) pulls and pushes; the plain agents do the
same with ``git pull --no-rebase`` and ``git push``. At the end: a fresh ``git clone`` of
each server, ``git fsck --full``, ``git log --graph`` (trees, messages of the agents' own
commits), every commit an agent recorded reachable from the server's ``main``, the tests
run in the clone, ``git log``/``blame`` in a mount against the plain clone.

Run: ``.venv/bin/python -m bench.realproj9agents [--rounds 3]`` (as root); results in
``bench/results/realproj9-agents-<UTC>.json``.
"""

from __future__ import annotations

import argparse
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
from bench.fleet5 import _free_port, unmount_layers  # noqa: E402
from tests import realdata  # noqa: E402

ROOT = Path(os.environ.get("RP9A_ROOT", "/tmp/rp9a"))
AVFS = str(REPO / ".venv/bin/avfs")
AGENTS = ("a", "b")


def env_for(agent: str) -> dict[str, str]:
    user = ROOT / f"user-{agent}"
    user.mkdir(parents=True, exist_ok=True)
    (user / ".gitconfig").write_text(
        f"[user]\n\tname = agent {agent}\n\temail = {agent}@example.org\n[init]\n\tdefaultBranch = main\n"
        "[safe]\n\tdirectory = *\n[pull]\n\trebase = false\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "AVFS_"))}
    env.update(
        HOME=str(user), AVFS_HOME=str(ROOT / f"home-{agent}"), GIT_CONFIG_NOSYSTEM="1", LC_ALL="C.UTF-8"
    )
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str, float]:
    t0 = time.monotonic()
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    return p.returncode, p.stdout, p.stderr, round(time.monotonic() - t0, 3)


def git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def edits(agent: str, rnd: int) -> tuple[str, bool]:
    """The shell line agent ``agent`` runs in round ``rnd``, and whether it commits with git
    itself (else its changes are left for the exec's own commit)."""
    if agent == "a":
        line = (
            f"sed -i '1i # agent a, round {rnd}' sqlparse/formatter.py; "
            f"printf 'Round {rnd} by a.\\n' >> CHANGELOG; "
        )
    else:
        line = (
            f"mkdir -p notes; printf 'b {rnd}\\n' > notes/b-{rnd}.txt; "
            f"sed -i '$a # agent b, round {rnd}' sqlparse/keywords.py; "
        )
    if rnd == 2 and agent == "a":  # a file removed, one renamed (git mv in the command)
        line += "git rm -q TODO; git mv SECURITY.md docs/SECURITY.md; "
    if rnd == 3 and agent == "b":  # both sides edit the same file, far apart: a clean three-way merge
        line += "sed -i '$a # b was here too' sqlparse/formatter.py; "
    committed = not (rnd == 2 and agent == "b")
    if committed:
        line += f"git add -A && git commit -q -m 'agent {agent}: round {rnd}'"
    return line, committed


def graph(cwd: Path, env: dict[str, str], rev: str = "main") -> list[str]:
    """``git log --graph`` of ``rev``, each commit as its tree, its number of parents and,
    for a commit of one parent, its message (merge messages differ by design: avfs's and
    git pull's)."""
    out = git(cwd, "log", "--graph", "--topo-order", "--format=%x1f%T %p%x1f%s", rev, env=env)
    lines = []
    for ln in out.splitlines():
        if "\x1f" not in ln:
            lines.append(ln.rstrip())
            continue
        drawn, ids, subj = ln.split("\x1f")
        tree, *parents = ids.split()
        lines.append(f"{drawn.rstrip()} {tree} {len(parents)} " + (subj if len(parents) < 2 else "(merge)"))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for agent in AGENTS:
        if (ROOT / f"home-{agent}").exists():
            subprocess.run([AVFS, "unmount", "--lazy", "p:main"], env=env_for(agent), capture_output=True)
            unmount_layers(ROOT / f"home-{agent}")
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    envs = {n: env_for(n) for n in AGENTS}
    env = envs["a"]
    res: dict[str, Any] = {"load_start": os.getloadavg(), "steps": [], "diff": [], "records": {}}
    src = realdata.extract(realdata.pypi_sdist("sqlparse", "0.5.1"), ROOT / "sdist")
    work = ROOT / "src"
    shutil.copytree(src, work, symlinks=True)
    git(work, "init", "-q", "-b", "main", env=env)
    git(work, "add", "-A", env=env)
    git(work, "commit", "-q", "-m", "sqlparse 0.5.1", env=env)
    srv = ROOT / "srv"
    srv.mkdir()
    for side in ("avfs", "plain"):
        git(srv, "clone", "-q", "--bare", str(work), f"{side}.git", env=env)
        for k, v in (("uploadpack.allowFilter", "true"), ("uploadpack.allowAnySHA1InWant", "true")):
            git(srv / f"{side}.git", "config", k, v, env=env)
    port = _free_port()
    daemon = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", f"--base-path={srv}", "--export-all", "--enable=receive-pack",
         "--listen=127.0.0.1", f"--port={port}", str(srv)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = {s: f"git://127.0.0.1:{port}/{s}.git" for s in ("avfs", "plain")}
    for _ in range(100):
        if subprocess.run(["git", "ls-remote", url["avfs"]], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.1)

    def step(what: str, agent: str, avfs_argv: list[str], git_line: str) -> dict[str, Any]:
        order = ["avfs", "git"] if len(res["steps"]) % 2 == 0 else ["git", "avfs"]
        rec: dict[str, Any] = {"what": what, "agent": agent, "load": round(os.getloadavg()[0], 1)}
        for side in order:
            if side == "avfs":
                rc, out, err, t = run(avfs_argv, ROOT, envs[agent])
                rec["avfs"] = {"rc": rc, "t": t, "out": out[-3000:], "err": err[-1500:]}
            else:
                rc, out, err, t = run(["sh", "-c", git_line], ROOT / f"plain-{agent}", envs[agent])
                rec["git"] = {"rc": rc, "t": t, "out": out[-1500:], "err": err[-1500:]}
        res["steps"].append(rec)
        print(f"  {what} {agent} avfs={rec['avfs']['rc']} {rec['avfs']['t']}s git={rec['git']['rc']} "
              f"{rec['git']['t']}s", file=sys.stderr)  # fmt: skip
        if rec["avfs"]["rc"] != rec["git"]["rc"]:
            res["diff"].append(f"{what} {agent}: rc")
        st = subprocess.run([AVFS, "--json", "--vault", "p:main", "status"], env=envs[agent], capture_output=True,
                            text=True)  # fmt: skip
        try:
            rec["avfs_status"] = [c["path"] for c in json.loads(st.stdout).get("changes", [])]
        except ValueError:
            rec["avfs_status"] = st.stderr[-500:]
        plain_st = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT / f"plain-{agent}", env=envs[agent],
                                  capture_output=True, text=True).stdout  # fmt: skip
        rec["git_status"] = plain_st.splitlines()
        if rec["avfs_status"] != [ln[3:] for ln in rec["git_status"]]:
            res["diff"].append(f"{what} {agent}: status")
        return rec

    try:
        for agent in AGENTS:
            e = envs[agent]
            t0 = time.monotonic()
            rc, out, err, t = run([AVFS, "--json", "vault", "clone", "--lazy", url["avfs"], "p"], ROOT, e)
            rc2, _, err2, t2 = run(
                ["git", "clone", "-q", url["plain"], str(ROOT / f"plain-{agent}")], ROOT, e
            )
            res["records"][agent] = []
            res[f"clone_{agent}"] = {"avfs": [rc, t, err[-500:]], "git": [rc2, t2, err2[-500:]]}
            del t0
        for rnd in range(1, args.rounds + 1):
            for agent in AGENTS:
                line, committed = edits(agent, rnd)
                rec = step(
                    f"round {rnd} commit", agent,
                    [AVFS, "--json", "--vault", "p:main", "proxy", "exec", "--shell", line], line,
                )  # fmt: skip
                try:
                    doc = json.loads(rec["avfs"]["out"])
                except ValueError:
                    doc = {}
                rec["envelope"] = {k: doc.get(k) for k in ("success", "changes", "commit", "refs_moved")}
                head = git(ROOT, "--git-dir", str(ROOT / f"home-{agent}/vaults/p.git"), "rev-parse", "main",
                           env=envs[agent]).strip()  # fmt: skip
                res["records"][agent].append(head)
                if not committed:  # the plain side commits what the exec left, under avfs's message
                    msg = git(ROOT, "--git-dir", str(ROOT / f"home-{agent}/vaults/p.git"), "log", "-1",
                              "--format=%B", "main", env=envs[agent])  # fmt: skip
                    p = subprocess.run(
                        ["sh", "-c", "git add -A && git commit -q -F -"], cwd=ROOT / f"plain-{agent}",
                        env=envs[agent], input=msg, text=True, capture_output=True,
                    )  # fmt: skip
                    rec["git_commit_after"] = p.returncode
                    after = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT / f"plain-{agent}",
                                           env=envs[agent], capture_output=True, text=True).stdout  # fmt: skip
                    rec["git_status"] = after.splitlines()  # compared once both sides committed
                    if rec["avfs_status"] == [ln[3:] for ln in rec["git_status"]]:
                        res["diff"].remove(f"round {rnd} commit {agent}: status")
            for agent in AGENTS:
                step(
                    f"round {rnd} pull", agent,
                    [AVFS, "--json", "--vault", "p:main", "pull", "origin", "main"],
                    "git pull -q --no-edit origin main",
                )  # fmt: skip
                step(
                    f"round {rnd} push", agent,
                    [AVFS, "--json", "--vault", "p:main", "push", "origin", "main"],
                    "git push -q origin HEAD:main",
                )  # fmt: skip
                head = git(ROOT, "--git-dir", str(ROOT / f"home-{agent}/vaults/p.git"), "rev-parse", "main",
                           env=envs[agent]).strip()  # fmt: skip
                res["records"][agent].append(head)
        # the last pushes reach the first agent too
        step("final pull", "a", [AVFS, "--json", "--vault", "p:main", "pull", "origin", "main"],
             "git pull -q --no-edit origin main")  # fmt: skip
        out: dict[str, Any] = {}
        for side in ("avfs", "plain"):
            fresh = ROOT / f"fresh-{side}"
            git(ROOT, "clone", "-q", url[side], str(fresh), env=env)
            fsck = subprocess.run(["git", "fsck", "--full", "--strict"], cwd=fresh, env=env, capture_output=True,
                                  text=True)  # fmt: skip
            tests = subprocess.run(
                ["sh", "-c", "python3 -m pytest -q -p no:cacheprovider tests 2>&1 | tail -1 | sed -E 's/ in .*//'"],
                cwd=fresh, env={**env, "PYTHONDONTWRITEBYTECODE": "1"}, capture_output=True, text=True,
            )  # fmt: skip
            out[side] = {
                "fsck": [fsck.returncode, fsck.stdout[-500:] + fsck.stderr[-500:]],
                "graph": graph(fresh, env),
                "tests": tests.stdout.strip(),
                "tree": git(fresh, "rev-parse", "HEAD^{tree}", env=env).strip(),
                "count": git(fresh, "rev-list", "--count", "HEAD", env=env).strip(),
            }
        res["servers"] = out
        for key in ("graph", "tests", "tree", "count"):
            if out["avfs"][key] != out["plain"][key]:
                res["diff"].append(f"server {key}")
        if out["avfs"]["fsck"][0] != 0:
            res["diff"].append("server fsck")
        fresh = ROOT / "fresh-avfs"
        lost = []
        for agent, heads in res["records"].items():
            for h in heads:
                if subprocess.run(
                    ["git", "merge-base", "--is-ancestor", h, "HEAD"], cwd=fresh, env=env
                ).returncode:
                    lost.append([agent, h])
        res["lost"] = lost
        if lost:
            res["diff"].append("lost commits")
        # git log / blame in agent a's mount against its plain clone
        e = envs["a"]
        mnt = ROOT / "mnt-a"
        mnt.mkdir()
        subprocess.run([AVFS, "unmount", "p:main"], env=e, capture_output=True)
        subprocess.run([AVFS, "mount", "p:main", str(mnt)], env=e, check=True, capture_output=True)
        for what, line in (
            # (merge messages differ by design; commits of one second in either order)
            (
                "log",
                "git log --no-merges --format='%T %s' --name-status -z | sort -z | md5sum; "
                "git log --merges --topo-order --format=%T",
            ),
            (
                "blame",
                "git blame -s sqlparse/formatter.py | cut -c10-; git blame -s CHANGELOG | head -5 | cut -c10-",
            ),
            ("status", "git status --porcelain --ignored; git log -1 --format=%T"),
        ):
            a = run(["sh", "-c", line], mnt, e)
            b = run(["sh", "-c", line], ROOT / "plain-a", e)
            res[f"mount_{what}"] = {"avfs": [a[0], a[1][-800:], a[3]], "git": [b[0], b[1][-800:], b[3]]}
            if (a[0], a[1]) != (b[0], b[1]):
                res["diff"].append(f"mount {what}")
        subprocess.run([AVFS, "unmount", str(mnt)], env=e, capture_output=True)
    except Exception:  # keep what was measured before it
        import traceback

        res["error"] = traceback.format_exc()
    finally:
        os.killpg(daemon.pid, 15)
        for agent in AGENTS:
            subprocess.run([AVFS, "unmount", "--lazy", "p:main"], env=envs[agent], capture_output=True)
            unmount_layers(ROOT / f"home-{agent}")
    res["load_end"] = os.getloadavg()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = REPO / "bench" / "results" / f"realproj9-agents-{stamp}.json"
    dest.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({"file": str(dest), "diff": res["diff"], "lost": res.get("lost"), "error": res.get("error")},
                     indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
