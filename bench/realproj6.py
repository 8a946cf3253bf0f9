"""Real projects through avfs, sixth round (docs/benchmarks.md, "Real projects, sixth
round"): each part run as an agent runtime would, beside the same on the host disk, every
step timed on each side in the same run (sides interleaved step by step, the order turned
each step) and its output compared.

- ``cext``: msgpack 1.1.0's sdist from PyPI (a C extension): a venv, ``pip install -e .``
  without build isolation, its tests, ``build_ext -i`` after an edit of a header, a restore
  to the checkpoint from before the build, an undo, ``git clean -fdx``; on the sides of
  ``bench/realproj4.py`` (a clone, a mount on each backend, ``proxy exec`` on each), each
  step's exit code, output, ``git status`` and ``avfs status`` against the clone's.
- ``history``: msgpack's released sdists 1.0.2 … 1.1.0 as a history with tags
  (``tests/realdata.history``), a bare clone of it served by ``git daemon`` on 127.0.0.1,
  pushed into a vault (``git push`` into ``avfs vault path``), and cloned lazily from the
  daemon (``avfs vault clone --lazy``); in an agent's fork of each (mounted) and in a
  plain clone: ``git log --follow`` across the 1.1.0 rename, ``git blame`` (``-C -C`` of an
  old tag too), ``log -S``, ``log -p`` of the whole history, ``git grep`` across every tag,
  ``git bisect run`` of the 1.1.0 tests against each release (the pure-Python fallback),
  ``bisect reset``; outputs compared, each step timed.
- ``npm``: minimist 1.2.8's tarball from the npm registry with its tests: ``npm install``
  (a warm cache), ``npm run lint``, ``npm run tests-only`` (nyc, tape), a checkpoint, an
  edit, a restore, ``npm ci``, ``git clean -fdx``: node_modules in the upper layer.

Run: ``.venv/bin/python -m bench.realproj6 [--parts cext,history,npm] [--sides ...]`` (as
root, FUSE and overlayfs available); results in ``bench/results/realproj6-<part>-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RP4_ROOT", "/tmp/rp6b/rp4")
from bench import realproj4 as rp4
from bench.fleet5 import _free_port, unmount_layers

REPO = rp4.REPO
ROOT = Path(os.environ.get("RP6_ROOT", "/tmp/rp6b"))
AVFS = str(REPO / ".venv/bin/avfs")
realdata = rp4.realdata
MSGPACK = ["1.0.2", "1.0.3", "1.0.4", "1.0.5", "1.0.6", "1.0.7", "1.0.8", "1.1.0"]


def cpu_of(pid: int) -> float | None:
    """User+system CPU seconds of a process so far, its reaped children's included (the
    commands a mount's daemon ran for ``proxy exec``); None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def daemon_cpu(pids: list[int]) -> dict[int, float]:
    return {p: c for p in pids if (c := cpu_of(p)) is not None}


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """The daemons' CPU between two readings, of those alive at both (one that went away
    meanwhile took its figures with it: not counted, never negative)."""
    return sum(after[p] - before[p] for p in before if p in after)


def daemons(env: dict[str, str]) -> list[int]:
    """The pids of the home's mount daemons (their CPU is the mount's share of a step)."""
    home = Path(env["AVFS_HOME"])
    out = []
    for vault in (home / "vaults").glob("*.git"):
        doc = subprocess.run(
            [AVFS, "--json", "--vault", vault.name[:-4], "stats", "-n", "0"],
            env=env,
            capture_output=True,
            text=True,
        )
        try:
            out += [m["pid"] for m in json.loads(doc.stdout)["mounts"] if m.get("alive") and m.get("pid")]
        except (ValueError, KeyError):
            continue
    return out


# -- cext and npm: realproj4's sides, interleaved step by step --------------------------------


def src_msgpack(env: dict[str, str]) -> Path:
    """msgpack 1.1.0's sdist committed whole (``add -f``: its ``msgpack.egg-info`` is
    tracked and ignored, as sdists ship it), with a ``.gitignore`` of what builds make."""
    work = rp4.ROOT / "src" / "msgpack"
    if work.exists():
        return work
    shutil.copytree(
        realdata.extract(realdata.pypi_sdist("msgpack", "1.1.0"), rp4.ROOT / "src" / ".msgpack"),
        work,
        symlinks=True,
    )
    (work / ".gitignore").write_text(rp4.GITIGNORE_PY + ".pytest_cache/\n")
    rp4.git(work, "init", "-q", "-b", "main", env=env)
    rp4.commit_all(work, "msgpack 1.1.0", env)
    return work


def src_minimist(env: dict[str, str]) -> Path:
    """minimist 1.2.8's npm tarball (its tests are in it) with a ``.gitignore`` of what
    ``npm install`` and nyc make."""
    work = rp4.ROOT / "src" / "minimist"
    if work.exists():
        return work
    shutil.copytree(
        realdata.extract(realdata.npm_tarball("minimist", "1.2.8"), rp4.ROOT / "src" / ".mm"), work
    )
    (work / ".gitignore").write_text("node_modules/\n.nyc_output/\ncoverage/\n")
    rp4.git(work, "init", "-q", "-b", "main", env=env)
    rp4.commit_all(work, "minimist 1.2.8", env)
    return work


PRE = rp4.PRE
NOTIME = rp4.NOTIME
PY = rp4.PY
CEXT_STEPS: list[tuple[str, str]] = [
    ("ckpt", "src"),
    (
        "sh",
        PRE + f"{PY} -m venv --system-site-packages .venv; "
        ".venv/bin/python -m pip install -q --no-build-isolation --no-index -e . >/dev/null 2>&1; "
        "echo pip=$?; ls msgpack/*.so | sed 's/cpython.*/SO/'; "
        ".venv/bin/python -m pytest -q -p no:cacheprovider test 2>&1 | tail -1" + NOTIME,
    ),
    ("ckpt", "built"),
    (
        "sh",
        PRE + "printf '\\n/* rp6 */\\n' >> msgpack/unpack.h; sleep 1; "
        f"{PY} setup.py build_ext -i 2>&1 | grep -c -E '^(x86_64-linux-gnu-)?gcc' || true; "
        "for so in msgpack/_cmsgpack*.so; do [ $so -nt msgpack/unpack.h ] && echo so-newer; done; "
        ".venv/bin/python -c 'from msgpack import _cmsgpack, unpackb, packb; print(unpackb(packb([1, \"a\"])))'",
    ),
    ("ckpt", "edited"),
    ("restore", "src"),
    (
        "sh",
        PRE + "ls msgpack/*.so | sed 's/cpython.*/SO/'; grep -c rp6 msgpack/unpack.h || true; "
        "git status --porcelain --ignored | sort; "
        ".venv/bin/python -m pytest -q -p no:cacheprovider test 2>&1 | tail -1" + NOTIME,
    ),
    ("undo", ""),
    ("sh", PRE + "grep -c rp6 msgpack/unpack.h; git clean -fdxq; git status --porcelain --ignored; ls -a"),
]
_NPM = "npm install --no-audit --no-fund --prefer-offline 2>&1 | sed -E 's/ in [0-9.]+m?s$//'; "
NPM_STEPS: list[tuple[str, str]] = [
    ("sh", PRE + _NPM + "ls node_modules | wc -l; git status --porcelain"),
    ("sh", PRE + "npm run --silent lint 2>&1 | tail -3"),
    ("sh", PRE + "npm run --silent tests-only 2>&1 | grep -E '^# (tests|pass|fail)|^All files'"),
    ("ckpt", "tested"),
    (
        "sh",
        PRE + "sed -i 's/var flags = {/var flags = { /' index.js; "
        "npm run --silent tests-only 2>&1 | grep -E '^# (tests|pass|fail)'",
    ),
    ("restore", "tested"),
    (
        "sh",
        PRE + "git status --porcelain; rm -rf node_modules; npm ci --no-audit --no-fund --prefer-offline "
        "2>&1 | sed -E 's/ in [0-9.]+m?s$//'; npm run --silent tests-only 2>&1 | grep -E '^# (pass|fail)'",
    ),
    ("sh", PRE + "git clean -fdxq; git status --porcelain --ignored; ls -a"),
]


def run_interleaved(
    trial: str, steps: list[tuple[str, str]], source: Any, sides: list[str], side_cls: Any = None
) -> dict[str, Any]:
    """realproj4's trial, the sides taking each step in turn (the first side turning each
    step), each step's wall time, CPU of its processes and of the home's mount daemons
    (``side_cls``: a ``realproj4.Side`` of more step kinds, realproj10's)."""
    home = rp4.ROOT / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = rp4.env_base(home)
    src = source(env)
    shutil.rmtree(rp4.ROOT / "run" / trial, ignore_errors=True)
    (rp4.ROOT / "run" / trial).mkdir(parents=True)
    vname = f"{trial}-{rp4.RUN_ID}"
    subprocess.run(
        [AVFS, "vault", "create", vname, "--from", str(src)], env=env, check=True, capture_output=True
    )
    if trial.startswith("npm"):  # proxy exec's npm cache is the vault's: warm it as the host's is
        cache = home / "vaults" / f"{vname}.git" / "avfs" / "caches" / "npm"
        if not cache.exists() and (rp4.ROOT / "npmcache").exists():
            shutil.copytree(rp4.ROOT / "npmcache", cache)
    objs = {name: (side_cls or rp4.Side)(name, trial, src, env) for name in sides}
    recs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    first = objs["plain"].status().get("snapshot") if "plain" in objs else None
    pids = daemons(env)
    try:
        for i, (kind, arg) in enumerate(steps):
            order = sides[i % len(sides) :] + sides[: i % len(sides)]
            for name in order:
                side = objs[name]
                d0 = daemon_cpu(pids)
                t0, c0, load = time.monotonic(), rp4.cpu_children(), os.getloadavg()[0]
                rec = side.sh(arg) if kind == "sh" else side.op(kind, arg)
                rec.update(
                    kind=kind,
                    arg=arg[:80] if kind == "sh" else arg,
                    wall_s=round(time.monotonic() - t0, 3),
                    cpu_s=round(rp4.cpu_children() - c0, 3),
                    daemon_cpu_s=round(cpu_delta(d0, daemon_cpu(pids)), 3),
                    load=round(load, 1),
                )
                rec.update(side.status())
                recs[name].append(rec)
                print(
                    f"  {trial} {name} {kind} {arg[-40:]!r} rc={rec['rc']} {rec['wall_s']}s", file=sys.stderr
                )
        trees = {name: objs[name].tree() for name in sides}
    finally:
        for side in objs.values():
            side.close()
    res: dict[str, Any] = {"sides": {}}
    if "plain" in recs:
        prev = first
        for rec in recs["plain"]:
            diff = rp4.git(
                objs["plain"].dir,
                "diff-tree",
                "-r",
                "--name-only",
                "--no-renames",
                str(prev),
                rec["snapshot"],
                env=env,
            )
            rec["changed"] = sorted(set(diff.splitlines()))
            prev = rec["snapshot"]
    for name in sides:
        steps_ = recs[name]
        if name.startswith("exec-") and "plain" in recs:
            vault = env["AVFS_HOME"] + f"/vaults/{vname}.git"
            for i, rec in enumerate(steps_):
                want = recs["plain"][i].get("snapshot")
                if rec.get("commit") and want:
                    a = rp4._ls_tree(["git", "--git-dir", vault], rec["commit"], env)
                    b = rp4._ls_tree(["git", "-C", str(objs["plain"].dir)], want, env)
                    rec["commit_vs_plain"] = sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))
        res["sides"][name] = {
            "steps": steps_,
            "tree": trees[name],
            "wall_s": round(sum(r["wall_s"] for r in steps_), 2),
            "cpu_s": round(sum(r["cpu_s"] + r["daemon_cpu_s"] for r in steps_), 2),
        }
    res["compare"] = rp4.compare(res["sides"])
    res["per_step"] = [
        {
            "what": f"{steps[i][0]} {steps[i][1][-60:]}",
            **{
                n: [recs[n][i]["wall_s"], round(recs[n][i]["cpu_s"] + recs[n][i]["daemon_cpu_s"], 2)]
                for n in sides
            },
        }
        for i in range(len(steps))
    ]
    for name in sides:  # the trees are long: keep them out of the result
        res["sides"][name].pop("tree")
    unmount_layers(home)
    return res


# -- history: a plain clone, a vault the history was pushed into, a lazy clone ---------------

BISECT = (
    "t=$(mktemp -d); git archive v1.1.0 test | tar x -C $t; "
    "git bisect start v1.1.0 v1.0.2 >/dev/null; "
    'git bisect run sh -c "MSGPACK_PUREPYTHON=1 PYTHONDONTWRITEBYTECODE=1 python3 -m pytest -q -x '
    '-p no:cacheprovider $t/test >/dev/null 2>&1" 2>&1 | grep -E "first bad commit|^\\["; '
    "git bisect log | grep -v '^#'; git bisect reset 2>&1"
)
HIST_STEPS: list[tuple[str, str]] = [
    ("log-follow", "git log --follow --oneline --name-status -- msgpack/_cmsgpack.c"),
    ("blame", "git blame -s msgpack/fallback.py; git blame -C -C -s v1.0.5 -- msgpack/ext.py"),
    ("log-S", "git log --oneline -S Timestamp -- msgpack/ext.py; git log --oneline -G 'use_list' -- msgpack"),
    ("log-p", "git log -p --stat v1.0.2..v1.1.0 | md5sum; git log -p --stat v1.0.2..v1.1.0 | wc -l"),
    ("grep-tags", "git grep -c 'def unpackb' $(git tag) -- msgpack"),
    ("bisect", BISECT),
    ("status", "git status --porcelain --ignored; git rev-parse --abbrev-ref HEAD; git stash list"),
]


def _hist_server(env: dict[str, str]) -> tuple[Path, str, subprocess.Popen[bytes]]:
    """msgpack's history as a bare repository served by ``git daemon`` on 127.0.0.1."""
    srv = ROOT / "history" / "srv"
    bare = srv / "msgpack.git"
    if not bare.exists():
        work = realdata.history("msgpack", MSGPACK, ROOT / "history" / "work", window=20)
        srv.mkdir(parents=True, exist_ok=True)
        rp4.git(srv, "clone", "-q", "--bare", str(work), str(bare), env=env)
        rp4.git(bare, "config", "uploadpack.allowFilter", "true", env=env)
        rp4.git(bare, "config", "uploadpack.allowAnySHA1InWant", "true", env=env)
    port = _free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            f"--base-path={srv}",
            "--export-all",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(srv),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"git://127.0.0.1:{port}/msgpack.git"
    for _ in range(100):
        if subprocess.run(["git", "ls-remote", url], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    return bare, url, daemon


def run_history(sides: list[str], rounds: int = 3) -> dict[str, Any]:
    """The history commands on each side (``plain``: a clone; ``overlay``/``fuse``: an
    agent's fork of the vault the history was pushed into, mounted; ``lazy``: an agent's
    fork of a lazy clone from the daemon, overlay backend; ``exec-overlay``: the pushed
    vault's fork through ``proxy exec``), outputs compared with the clone's."""
    home = ROOT / "history" / "home"
    shutil.rmtree(ROOT / "history" / "run", ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    env = rp4.env_base(home)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    bare, url, daemon = _hist_server(env)
    run = ROOT / "history" / "run"
    run.mkdir(parents=True)
    rid = rp4.RUN_ID

    def avfs(*args: str) -> str:
        return subprocess.run([AVFS, *args], env=env, check=True, capture_output=True, text=True).stdout

    res: dict[str, Any] = {"sides": {}, "setup_s": {}}
    dirs: dict[str, Path] = {}
    forks: dict[str, str] = {}
    try:
        t0 = time.monotonic()
        rp4.git(run, "clone", "-q", url, str(run / "plain"), env=env)
        rp4.git(run / "plain", "switch", "-q", "-c", "agent", env=env)
        res["setup_s"]["plain_clone"] = round(time.monotonic() - t0, 3)
        t0 = time.monotonic()
        pushed = f"pushed-{rid}"
        avfs("vault", "create", pushed)
        vp = avfs("vault", "path", pushed).strip()
        # an empty vault's main holds avfs's first commit: the history replaces it (+)
        rp4.git(
            bare, "push", "-q", vp, "+refs/heads/main:refs/heads/main", "refs/tags/*:refs/tags/*", env=env
        )
        res["setup_s"]["vault_create_push"] = round(time.monotonic() - t0, 3)
        t0 = time.monotonic()
        lazy = f"lazy-{rid}"
        avfs("vault", "clone", "--lazy", url, lazy)
        res["setup_s"]["vault_clone_lazy"] = round(time.monotonic() - t0, 3)
        dirs["plain"] = run / "plain"
        for name in sides:
            if name == "plain":
                continue
            vault = lazy if name == "lazy" else pushed
            backend = "fuse" if name == "fuse" else "overlay"
            fork = f"agent-{name}"
            forks[name] = f"{vault}:{fork}"
            avfs("vault", "fork", f"{vault}:main", fork)
            dirs[name] = run / name
            dirs[name].mkdir()
            t0 = time.monotonic()
            avfs("mount", "--backend", backend, forks[name], str(dirs[name]))
            res["setup_s"][f"mount_{name}"] = round(time.monotonic() - t0, 3)
        pids = daemons(env)
        recs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
        for i, (label, script) in enumerate(HIST_STEPS * rounds):
            order = sides[i % len(sides) :] + sides[: i % len(sides)]
            pids = daemons(env)
            for name in order:
                d0 = daemon_cpu(pids)
                t0, c0, load = time.monotonic(), rp4.cpu_children(), os.getloadavg()[0]
                if name.startswith("exec-"):
                    proc = subprocess.run(
                        [AVFS, "--json", "--vault", forks[name], "proxy", "exec", "--shell", script],
                        env=env,
                        capture_output=True,
                        text=True,
                    )
                    doc = json.loads(proc.stdout)
                    r = doc.get("result") or {}
                    out, rc = (r.get("stdout") or "") + (r.get("stderr") or ""), r.get("exit_code")
                    extra = {
                        "changes": len(doc.get("changes") or []),
                        "commit": (doc.get("commit") or {}).get("commit"),
                    }
                else:
                    proc = subprocess.run(
                        ["sh", "-c", script], cwd=dirs[name], env=env, capture_output=True, text=True
                    )
                    out, rc, extra = proc.stdout + proc.stderr, proc.returncode, {}
                for fork_name in ("agent-" + name, "agent"):
                    out = re.sub(rf"\b{re.escape(fork_name)}\b", "<FORK>", out)
                recs[name].append(
                    {
                        "step": label,
                        "rc": rc,
                        "out": out,
                        "wall_s": round(time.monotonic() - t0, 3),
                        "cpu_s": round(rp4.cpu_children() - c0 + cpu_delta(d0, daemon_cpu(pids)), 3),
                        "load": round(load, 1),
                        **extra,
                    }
                )
                print(f"  history {name} {label} rc={rc} {recs[name][-1]['wall_s']}s", file=sys.stderr)
        for name in sides:
            if name in forks:
                doc = json.loads(
                    subprocess.run(
                        [AVFS, "--json", "--vault", forks[name], "status"],
                        env=env,
                        capture_output=True,
                        text=True,
                    ).stdout
                )
                res.setdefault("avfs_status_after", {})[name] = {
                    "changes": doc.get("changes"),
                    "git": doc.get("git"),
                }
        base = recs.get("plain")
        for name in sides:
            res["sides"][name] = {
                "steps": [{k: v for k, v in r.items() if k != "out"} for r in recs[name]],
                "differing": [
                    {"step": r["step"], "plain": b["out"][-1500:], name: r["out"][-1500:]}
                    for r, b in zip(recs[name], base or [], strict=False)
                    if r["out"] != b["out"] or r["rc"] != b["rc"]
                ],
            }
        res["outputs_plain"] = {r["step"]: r["out"][-3000:] for r in base or []}
        res["medians"] = {}  # per step: each side's median wall and CPU, and their ratio to plain's
        for label, _script in HIST_STEPS:
            row: dict[str, Any] = {}
            for name in sides:
                got = [r for r in recs[name] if r["step"] == label]
                row[name] = [
                    sorted(r["wall_s"] for r in got)[len(got) // 2],
                    sorted(r["cpu_s"] for r in got)[len(got) // 2],
                ]
            if "plain" in row:
                for name in sides:
                    row[name] += [
                        round(row[name][0] / max(row["plain"][0], 1e-3), 2),
                        round(row[name][1] / max(row["plain"][1], 1e-3), 2),
                    ]
            res["medians"][label] = row
        lz = json.loads(avfs("--json", "--vault", lazy, "stats", "-n", "0"))["lazy"]
        res["lazy_after"] = lz and [f["local"] for f in lz["forks"]]
        fsck = {}
        for vault in (pushed, lazy):
            fsck[vault] = subprocess.run(
                ["git", "--git-dir", avfs("vault", "path", vault).strip(), "fsck", "--no-progress"],
                env=env,
                capture_output=True,
                text=True,
            ).returncode
        res["fsck"] = fsck
    finally:
        for vf in forks.values():
            subprocess.run([AVFS, "unmount", "--lazy", vf], env=env, capture_output=True)
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait()
        unmount_layers(home)
    return res


# -- agents: the Python API from threads and an MCP client, forks of one vault, merged -------

AGENT_CMDS = {  # what each agent does in its fork (a shell line; tests after)
    "a": "npm install --save --no-audit --no-fund --prefer-offline semver@7.6.0 >/dev/null 2>&1; "
    "echo installed=$?",
    "b": "npm install --save-dev --no-audit --no-fund --prefer-offline ms@2.1.3 >/dev/null 2>&1; "
    "echo installed=$?; printf '\\nAgent b was here.\\n' >> README.md",
    "c": "sed -i 's/^module.exports = function (args, opts) {$/module.exports = function (args, opts) { \\/\\/ c/' "
    "index.js; grep -c '// c' index.js",
}
TESTS = "npx --no-install tape 'test/**/*.js' 2>&1 | grep -E '^# (pass|fail)'"


def commit_plain(work: Path, msg: str, env: dict[str, str]) -> None:
    """What git commits of a worktree: ``add -A`` (ignored paths, node_modules, stay out)."""
    rp4.git(work, "add", "-A", env=env)
    rp4.git(work, "commit", "-q", "--allow-empty", "-m", msg, env=env)


class Mcp:
    """A minimal MCP client of ``avfs mcp`` over stdio (one request at a time)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [AVFS, "mcp"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.n = 0
        init = {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "rp6", "version": "0"},
        }
        self.call("initialize", init)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        self.send({"jsonrpc": "2.0", "id": self.n, "method": method, "params": params})
        assert self.proc.stdout is not None
        while True:
            msg = json.loads(self.proc.stdout.readline())
            if msg.get("id") == self.n:
                return msg

    def tool(self, name: str, **args: Any) -> dict[str, Any]:
        got = self.call("tools/call", {"name": name, "arguments": args})["result"]
        return got.get("structuredContent") or json.loads(got["content"][0]["text"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=120)


def run_agents(res: dict[str, Any]) -> dict[str, Any]:
    """minimist with ``node_modules`` installed in fork ``main`` (through ``exec_in``);
    agents a and b (the Python API, each from a thread of its own) and c (an MCP client's
    ``exec``) each fork it, change package.json/the lockfile or a file and run the tests,
    all at once; then a, b and c merged into main in turn (a lockfile conflict written as
    markers is settled by ``npm install`` through ``exec_in``, as npm does in a checkout),
    beside a clone doing the same with git worktrees and ``git merge``."""
    import threading

    import avfs_git
    from avfs_git.core.operations import merge as merging

    home_dir = ROOT / "agents" / "home"
    if home_dir.exists():  # a run killed before its end leaves its layers mounted there
        unmount_layers(home_dir)
    shutil.rmtree(ROOT / "agents", ignore_errors=True)
    home_dir.mkdir(parents=True)
    env = rp4.env_base(home_dir)
    os.environ.update(
        {k: env[k] for k in ("HOME", "AVFS_HOME", "npm_config_cache", "PATH", "GIT_CONFIG_NOSYSTEM")}
    )
    src = src_minimist(env)
    home = avfs_git.open_home()
    vault = home.create_vault("mm", from_dir=str(src))
    cache = Path(vault.path) / "avfs" / "caches" / "npm"
    shutil.copytree(rp4.ROOT / "npmcache", cache)
    res.update(times={}, load_start=os.getloadavg())
    plain = ROOT / "agents" / "plain"
    rp4.git(ROOT / "agents", "clone", "-q", str(src), str(plain), env=env)

    def sh(cwd: Path, line: str) -> tuple[float, str]:
        t0 = time.monotonic()
        out = subprocess.run(["sh", "-c", line], cwd=cwd, env=env, capture_output=True, text=True).stdout
        return round(time.monotonic() - t0, 3), out

    def ex(fork: str, line: str) -> tuple[float, str, Any]:
        t0 = time.monotonic()
        r = avfs_git.exec_in(vault.workspace(fork), shell=line, timeout_ms=900_000)
        return round(time.monotonic() - t0, 3), (r.result.stdout if r.result else "") or "", r

    rp4.git(plain, "add", "-A", env=env)
    t_plain, out_plain = sh(
        plain, "npm install --no-audit --no-fund --prefer-offline >/dev/null 2>&1; echo i=$?"
    )
    commit_plain(plain, "the lockfile", env)
    t_api, out_api, r = ex(
        "main", "npm install --no-audit --no-fund --prefer-offline >/dev/null 2>&1; echo i=$?"
    )
    res["times"]["install_main"] = {"plain": t_plain, "api": t_api}
    res["install_main"] = {"plain": out_plain, "api": out_api, "changes": [c.path for c in r.changes]}
    t0 = time.monotonic()
    for name in AGENT_CMDS:
        vault.create_fork("main", name)
    res["times"]["fork_3_api"] = round(time.monotonic() - t0, 3)
    t0 = time.monotonic()
    for name in AGENT_CMDS:
        rp4.git(plain, "worktree", "add", "-q", "-b", name, str(ROOT / "agents" / f"wt-{name}"), env=env)
        subprocess.run(
            ["cp", "-a", str(plain / "node_modules"), str(ROOT / "agents" / f"wt-{name}")], check=True
        )
    res["times"]["fork_3_plain_worktree_and_cp"] = round(time.monotonic() - t0, 3)
    outs: dict[str, Any] = {}

    def api_agent(name: str) -> None:
        t, out, r = ex(name, AGENT_CMDS[name] + "; " + TESTS)
        outs[name] = {"t": t, "out": out, "exit": r.exit_code, "changes": sorted(c.path for c in r.changes)}

    def mcp_agent(name: str) -> None:
        client = Mcp(env)
        try:
            t0 = time.monotonic()
            doc = client.tool(
                "exec", vault="mm", fork=name, shell=AGENT_CMDS[name] + "; " + TESTS, timeout_ms=900_000
            )
            outs[name] = {
                "t": round(time.monotonic() - t0, 3),
                "out": (doc.get("result") or {}).get("stdout"),
                "exit": doc.get("exit_code"),
                "changes": sorted(c["path"] for c in doc.get("changes") or []),
            }
        finally:
            client.close()

    t0 = time.monotonic()
    threads = [
        threading.Thread(target=api_agent, args=("a",)),
        threading.Thread(target=api_agent, args=("b",)),
    ]
    threads.append(threading.Thread(target=mcp_agent, args=("c",)))
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    res["times"]["agents_parallel_avfs"] = round(time.monotonic() - t0, 3)
    t0 = time.monotonic()
    procs = {
        n: subprocess.Popen(
            ["sh", "-c", AGENT_CMDS[n] + "; " + TESTS],
            cwd=ROOT / "agents" / f"wt-{n}",
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in AGENT_CMDS
    }
    pouts = {n: p.communicate()[0] for n, p in procs.items()}
    res["times"]["agents_parallel_plain"] = round(time.monotonic() - t0, 3)
    for n in AGENT_CMDS:
        commit_plain(ROOT / "agents" / f"wt-{n}", f"agent {n}", env)
    res["agents"] = {"avfs": outs, "plain": pouts}
    # merges: a, b, c into main; a conflict is written and npm settles the lockfile
    merges: dict[str, Any] = {}
    for n in AGENT_CMDS:
        t0 = time.monotonic()
        m = merging.merge(vault, n, "main", write_conflicts=True)
        rec: dict[str, Any] = {"status": str(m.status), "conflicts": [c.path for c in m.conflicts]}
        if m.conflicts:
            _t, out, r = ex(
                "main",
                "npm install --no-audit --no-fund --prefer-offline >/dev/null 2>&1; echo i=$?; "
                "grep -c '<<<<<<<' package-lock.json package.json",
            )
            rec["settle"] = out
            m = merging.merge_continue(vault, "main")
            rec["status_after"] = str(m.status)
        rec["t"] = round(time.monotonic() - t0, 3)
        t0 = time.monotonic()
        g = subprocess.run(
            ["git", "merge", "-q", "--no-edit", n], cwd=plain, env=env, capture_output=True, text=True
        )
        prec: dict[str, Any] = {"rc": g.returncode}
        if g.returncode:
            prec["conflicts"] = rp4.git(plain, "diff", "--name-only", "--diff-filter=U", env=env).split()
            prec["settle"] = sh(
                plain,
                "npm install --no-audit --no-fund --prefer-offline >/dev/null 2>&1; echo i=$?; "
                "grep -c '<<<<<<<' package-lock.json package.json",
            )[1]
            commit_plain(plain, f"merge {n}", env)
        prec["t"] = round(time.monotonic() - t0, 3)
        merges[n] = {"avfs": rec, "plain": prec}
    res["merges"] = merges
    main_tree = subprocess.run(
        ["git", "--git-dir", str(vault.path), "rev-parse", "main^{tree}"],
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    plain_tree = rp4.git(plain, "rev-parse", "HEAD^{tree}", env=env).strip()
    res["trees"] = {
        "avfs_main": main_tree,
        "plain": plain_tree,
        "equal": main_tree == plain_tree,
    }
    if main_tree != plain_tree:
        rp4.git(plain, "fetch", "-q", str(vault.path), "main:refs/avfs-main", env=env)
        res["tree_diff"] = subprocess.run(
            ["git", "-C", str(plain), "diff", "--stat", plain_tree, main_tree],
            env=env,
            capture_output=True,
            text=True,
        ).stdout[-3000:]
    t, out, r = ex("main", TESTS)
    res["tests_after_merge"] = {"avfs": out, "plain": sh(plain, TESTS)[1], "t": t}
    st = subprocess.run(
        [AVFS, "--json", "--vault", "mm:main", "status"], env=env, capture_output=True, text=True
    )
    res["status_main"] = json.loads(st.stdout).get("changes")
    for n in ("main", *AGENT_CMDS):  # the warm mounts exec_in and the MCP server made
        subprocess.run([AVFS, "unmount", "--lazy", f"mm:{n}"], env=env, capture_output=True)
    home.close()
    unmount_layers(home_dir)
    res["load_end"] = os.getloadavg()
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="cext,history,npm")
    ap.add_argument("--sides", default="", help="the sides (default: each part's own)")
    ap.add_argument("--rounds", type=int, default=3, help="history: rounds of its steps (medians)")
    args = ap.parse_args()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for part in filter(None, args.parts.split(",")):
        res: dict[str, Any] = {"stamp": stamp, "part": part, "load_start": os.getloadavg()}
        t0 = time.monotonic()
        if part == "cext":
            sides = args.sides.split(",") if args.sides else rp4.SIDES
            res["trial"] = run_interleaved("cext", CEXT_STEPS, src_msgpack, sides)
        elif part == "npm":
            sides = args.sides.split(",") if args.sides else ["plain", "overlay", "exec-overlay"]
            res["trial"] = run_interleaved("npm", NPM_STEPS, src_minimist, sides)
        elif part == "agents":
            try:
                run_agents(res)
            except Exception:  # keep what was measured before it
                import traceback

                res["error"] = traceback.format_exc()
        elif part == "history":
            sides = (
                args.sides.split(",") if args.sides else ["plain", "overlay", "fuse", "lazy", "exec-overlay"]
            )
            res.update(run_history(sides, args.rounds))
        else:
            raise SystemExit(f"unknown part {part!r}")
        res["load_end"] = os.getloadavg()
        res["wall_s"] = round(time.monotonic() - t0, 1)
        out = REPO / "bench" / "results" / f"realproj6-{part}-{stamp}.json"
        out.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
        print(out, file=sys.stderr)


if __name__ == "__main__":
    main()
