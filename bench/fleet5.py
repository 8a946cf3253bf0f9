"""The fleet part of ``bench/realproj5.py``: two avfs homes, three agents each, one git
server, rounds of real release diffs; the same rounds with git beside it (its docstring
says what is checked)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import realproj4 as rp4

AVFS = str(rp4.REPO / ".venv" / "bin" / "avfs")
BASE = ["0.16", "0.17", "0.17.1", "0.18", "0.18.1", "0.19"]
ROUNDS = ["0.20", "0.20.1", "0.21.1", "0.21.2"]
GITIGNORE = (
    "__pycache__/\n*.pyc\ntest/alltests.out\ntest/functional/output/\ntest/record.txt\ntest/dest_name\n"
)
HOMES = {"h1": "overlay", "h2": "fuse"}
AGENTS = ["a1", "a2", "a3"]
TESTS = (
    "exec 2>&1; export LC_ALL=C.UTF-8; cd test && /usr/bin/python3 alltests.py 2>&1 | grep -E "
    "'^(Ran|OK|FAILED)' | sed -E 's/in [0-9.]+s/in Ns/'"
)
CONFLICT_FILE = "README.txt"


def _git(cwd: Path | str, *args: str, env: dict[str, str], check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode:
        raise RuntimeError(f"git {' '.join(args)[:200]} in {cwd}: {proc.stderr[-1500:]}")
    return proc.stdout


def history(root: Path, env: dict[str, str]) -> Path:
    """docutils' releases as commits (each with the ``.gitignore``), tagged ``vX``."""
    work, done = root / "docutils-history", root / "docutils-history.done"
    if done.exists():
        return work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _git(work, "init", "-q", "-b", "main", env=env)
    for v in BASE + ROUNDS:
        top = rp4.realdata.extract(rp4.realdata.pypi_sdist("docutils", v), root / f".docutils-{v}")
        for child in work.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        subprocess.run(["cp", "-a", f"{top}/.", str(work)], check=True)
        (work / ".gitignore").write_text(GITIGNORE)
        _git(work, "add", "-A", "-f", env=env)
        _git(work, "commit", "-q", "-m", f"docutils {v}", env=env)
        _git(work, "tag", f"v{v}", env=env)
    done.touch()
    return work


def unmount_layers(home: Path) -> None:
    """What a home keeps mounted besides its forks (docs/scale.md, "Taking a home down")."""
    from avfs_git.core.vaults import layers

    layers.unmount(home)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tracked_hash(d: Path, env: dict[str, str]) -> str:
    """A hash of the files git does not ignore under ``d`` (names, exec bits, bytes)."""
    names = _git(d, "ls-files", "-z", "-co", "--exclude-standard", env=env).split("\0")
    h = hashlib.sha256()
    for n in sorted(set(filter(None, names))):
        p = d / n
        if p.is_symlink():
            h.update(f"{n}\0link\0{os.readlink(p)}\0".encode())
        elif p.is_file():
            h.update(f"{n}\0{bool(p.stat().st_mode & 0o100)}\0".encode() + p.read_bytes())
    return h.hexdigest()[:16]


class Fleet:
    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.rmtree(root / "run", ignore_errors=True)
        (root / "run").mkdir(parents=True)
        self.env = rp4.env_base(root / "run" / "unused-home")
        self.hist = history(root, self.env)
        self.srv = root / "run" / "srv"
        self.srv.mkdir()
        for name in ("avfs", "plain"):
            _git(root, "clone", "-q", "--bare", "--no-tags", str(self.hist), str(self.srv / f"{name}.git"),
                 env=self.env)  # fmt: skip
            base = _git(self.hist, "rev-parse", "v0.19", env=self.env).strip()
            _git(self.srv / f"{name}.git", "update-ref", "refs/heads/main", base, env=self.env)
            for ref in _git(
                self.srv / f"{name}.git", "for-each-ref", "--format=%(refname)", env=self.env
            ).split():
                if ref != "refs/heads/main":
                    _git(self.srv / f"{name}.git", "update-ref", "-d", ref, env=self.env)
        self.port = _free_port()
        self.daemon = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", f"--base-path={self.srv}", "--export-all",
             "--enable=receive-pack", f"--port={self.port}", "--listen=127.0.0.1", str(self.srv)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)
        self.patches = root / "run" / "patches"
        self.patches.mkdir()
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}.git"

    def make_patches(self) -> dict[str, Any]:
        """Round r's diff (release r-1 → r) split by file among the six agents, round-robin."""
        out: dict[str, Any] = {}
        prev = "v0.19"
        who = [(h, a) for h in HOMES for a in AGENTS]
        for r, v in enumerate(ROUNDS, 1):
            files = sorted(
                _git(self.hist, "diff", "--no-renames", "--name-only", prev, f"v{v}", env=self.env).split(
                    "\n"
                )
            )
            files = [f for f in files if f]
            share: dict[str, list[str]] = {f"{h}-{a}": [] for h, a in who}
            for i, f in enumerate(files):
                h, a = who[i % len(who)]
                share[f"{h}-{a}"].append(f)
            for key, fs in share.items():
                diff = _git(
                    self.hist, "diff", "--binary", "--no-renames", prev, f"v{v}", "--", *fs, env=self.env
                )
                (self.patches / f"r{r}-{key}.patch").write_text(diff)
            out[f"r{r}"] = {"from": prev, "to": f"v{v}", "files": len(files)}
            prev = f"v{v}"
        return out

    def log(self, **ev: Any) -> None:
        with self.lock:
            self.events.append({"t": round(time.monotonic(), 3), **ev})


def _avfs(env: dict[str, str], *args: str) -> tuple[int, Any, str]:
    proc = subprocess.run([AVFS, *args], env=env, capture_output=True, text=True, timeout=1800)
    try:
        doc = json.loads(proc.stdout) if "--json" in args else None
    except ValueError:
        doc = {"unparsed": proc.stdout[-2000:]}
    return proc.returncode, doc, proc.stderr[-2000:]


def _norm(text: str) -> str:
    return re.sub(r"/tmp/rp5/fleet/run/[^ ]*", "<DIR>", text)


class AvfsHome:
    def __init__(self, fl: Fleet, name: str, backend: str) -> None:
        self.fl, self.name, self.backend = fl, name, backend
        self.home = fl.root / "run" / name
        self.home.mkdir()
        (self.home / "policy.toml").write_text(f'version = 1\n[defaults]\nreadable = ["{fl.patches}"]\n')
        self.env = {**fl.env, "AVFS_HOME": str(self.home)}
        rc, doc, err = _avfs(self.env, "--json", "vault", "clone", "--lazy", fl.url("avfs"), "p")
        assert rc == 0, (rc, doc, err)
        self.mounts: dict[str, Path] = {}
        for a in AGENTS:
            assert _avfs(self.env, "vault", "fork", "p:main", a)[0] == 0
            mp = fl.root / "run" / f"mnt-{name}-{a}"
            mp.mkdir()
            rc, _, err = _avfs(self.env, "mount", "--backend", backend, f"p:{a}", str(mp))
            assert rc == 0, err
            self.mounts[a] = mp

    @property
    def vault(self) -> Path:
        return self.home / "vaults" / "p.git"

    def agent(self, r: int, a: str) -> dict[str, Any]:
        res: dict[str, Any] = {}
        rc, doc, err = _avfs(self.env, "--json", "--vault", f"p:{a}", "merge", "main")
        res["sync"] = {"rc": rc, "kind": (doc or {}).get("kind"), "err": err[-300:] if rc else ""}
        patch = self.fl.patches / f"r{r}-{self.name}-{a}.patch"
        if r <= len(ROUNDS):
            cmd = f"exec 2>&1; git apply --whitespace=nowarn {patch}; echo apply=$?"
        else:
            cmd = f"exec 2>&1; sed -i '1s/.*/{self.name} {a} was here/' {CONFLICT_FILE}; echo edit=$?"
        for label, script in (("apply", cmd), ("tests", TESTS)):
            rc, doc, err = _avfs(self.env, "--json", "--vault", f"p:{a}", "proxy", "exec", "--shell", script)
            d = doc or {}
            out = ((d.get("result") or {}).get("stdout") or "") + (
                (d.get("result") or {}).get("stderr") or ""
            )
            res[label] = {
                "rc": rc,
                "out": _norm(out),
                "changes": len(d.get("changes") or []),
                "commit": (d.get("commit") or {}).get("commit"),
                "error": (d.get("error") or {}).get("code"),
            }
            self.fl.log(side="avfs", home=self.name, agent=a, round=r, step=label, rc=rc)
        return res

    def publish(self, r: int) -> dict[str, Any]:
        res: dict[str, Any] = {"pushes": [], "pulls": []}
        rc, doc, err = _avfs(self.env, "--json", "--vault", "p:main", "merge", *AGENTS)
        res["merge"] = {"rc": rc, "kind": (doc or {}).get("kind"), "err": err[-300:] if rc else ""}
        for _ in range(12):
            rc, doc, err = _avfs(self.env, "--json", "--vault", "p:main", "push")
            reason = ((doc or {}).get("error") or {}).get("details", {}).get("reason")
            res["pushes"].append({"rc": rc, "reason": reason})
            self.fl.log(side="avfs", home=self.name, round=r, step="push", rc=rc, reason=reason)
            if rc == 0:
                break
            rc, doc, err = _avfs(self.env, "--json", "--vault", "p:main", "pull", "--ours")
            pulled = {"rc": rc, "kind": (doc or {}).get("kind")}
            if doc and doc.get("conflicts"):
                pulled["conflicts"] = [c.get("path") for c in doc["conflicts"]]
            if doc and doc.get("resolved"):
                pulled["resolved"] = doc.get("resolved")
            res["pulls"].append(pulled)
            self.fl.log(side="avfs", home=self.name, round=r, step="pull", rc=rc)
        return res

    def pull(self) -> dict[str, Any]:
        rc, doc, err = _avfs(self.env, "--json", "--vault", "p:main", "pull")
        return {"rc": rc, "kind": (doc or {}).get("kind"), "err": err[-300:] if rc else ""}

    def close(self) -> None:
        for a in AGENTS:
            _avfs(self.env, "unmount", "--lazy", f"p:{a}")
        unmount_layers(self.home)


class GitHome:
    def __init__(self, fl: Fleet, name: str) -> None:
        self.fl, self.name = fl, name
        self.main = fl.root / "run" / f"git-{name}" / "main"
        self.env = fl.env
        _git(fl.root, "clone", "-q", fl.url("plain"), str(self.main), env=self.env)
        self.mounts: dict[str, Path] = {}
        for a in AGENTS:
            wt = self.main.parent / a
            _git(self.main, "worktree", "add", "-q", "-b", a, str(wt), env=self.env)
            self.mounts[a] = wt

    def agent(self, r: int, a: str) -> dict[str, Any]:
        wt, env = self.mounts[a], self.env
        res: dict[str, Any] = {}
        proc = subprocess.run(
            ["git", "merge", "-q", "--ff-only", "main"], cwd=wt, env=env, capture_output=True
        )
        res["sync"] = {"rc": proc.returncode}
        patch = self.fl.patches / f"r{r}-{self.name}-{a}.patch"
        if r <= len(ROUNDS):
            cmd = f"exec 2>&1; git apply --whitespace=nowarn {patch}; echo apply=$?"
        else:
            cmd = f"exec 2>&1; sed -i '1s/.*/{self.name} {a} was here/' {CONFLICT_FILE}; echo edit=$?"
        for label, script in (("apply", cmd), ("tests", TESTS)):
            proc = subprocess.run(["sh", "-c", script], cwd=wt, env=env, capture_output=True, text=True)
            _git(wt, "add", "-A", env=env)
            _git(wt, "commit", "-q", "--allow-empty", "-m", f"{self.name} {a} r{r} {label}", env=env)
            res[label] = {"rc": proc.returncode, "out": _norm(proc.stdout + proc.stderr)}
            self.fl.log(side="git", home=self.name, agent=a, round=r, step=label, rc=proc.returncode)
        return res

    def publish(self, r: int) -> dict[str, Any]:
        env, res = self.env, {"pushes": [], "pulls": []}
        for a in AGENTS:
            _git(self.main, "merge", "-q", "--no-edit", a, env=env)
        for _ in range(12):
            proc = subprocess.run(
                ["git", "push", "-q", "origin", "main"], cwd=self.main, env=env, capture_output=True
            )
            res["pushes"].append({"rc": proc.returncode})
            self.fl.log(side="git", home=self.name, round=r, step="push", rc=proc.returncode)
            if proc.returncode == 0:
                break
            proc = subprocess.run(
                ["git", "pull", "-q", "--no-rebase", "--no-edit", "-X", "ours", "origin", "main"],
                cwd=self.main, env=env, capture_output=True, text=True,
            )  # fmt: skip
            res["pulls"].append({"rc": proc.returncode, "out": proc.stdout[-300:]})
        return res

    def pull(self) -> dict[str, Any]:
        proc = subprocess.run(
            ["git", "pull", "-q", "--no-rebase", "--no-edit", "origin", "main"],
            cwd=self.main, env=self.env, capture_output=True,
        )  # fmt: skip
        return {"rc": proc.returncode}

    def close(self) -> None:
        pass


def _parallel(fns: list[Callable[[], Any]]) -> list[Any]:
    out: list[Any] = [None] * len(fns)

    def run(i: int) -> None:
        try:
            out[i] = fns[i]()
        except Exception as exc:  # recorded: the trial goes on
            out[i] = {"exception": repr(exc)[-1500:]}

    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def run_side(fl: Fleet, side: str) -> dict[str, Any]:
    """Every round for one side (``avfs`` or ``git``), both homes at once."""
    t0 = time.monotonic()
    homes: dict[str, Any] = {}
    for name, backend in HOMES.items():
        homes[name] = AvfsHome(fl, name, backend) if side == "avfs" else GitHome(fl, name)
    srv = fl.srv / f"{'avfs' if side == 'avfs' else 'plain'}.git"
    rounds: list[dict[str, Any]] = []
    try:
        for r in range(1, len(ROUNDS) + 2):
            rec: dict[str, Any] = {"round": r, "load": os.getloadavg()[0]}
            rec["pull"] = _parallel([h.pull for h in homes.values()])

            def home_round(h: Any, r: int = r) -> dict[str, Any]:
                agents = AGENTS if r <= len(ROUNDS) else AGENTS[:1]
                res = dict(zip(agents, _parallel([lambda a=a: h.agent(r, a) for a in agents]), strict=True))
                res["publish"] = h.publish(r)
                return res

            for name, got in zip(
                homes, _parallel([lambda h=h: home_round(h) for h in homes.values()]), strict=True
            ):
                rec[name] = got
            tree = _git(srv, "rev-parse", "main^{tree}", env=fl.env).strip()
            if r <= len(ROUNDS):
                want = _git(fl.hist, "rev-parse", f"v{ROUNDS[r - 1]}^{{tree}}", env=fl.env).strip()
                rec["server_is_release"] = tree == want
                if tree != want:
                    rec["server_vs_release"] = _git(
                        srv, "diff", "--name-status", want, tree, env=fl.env, check=False
                    ).splitlines()[:40]
            else:
                rec["server_vs_release"] = _git(
                    srv, "diff", "--name-status", f"{_git(fl.hist, 'rev-parse', 'v0.21.2^{tree}', env=fl.env).strip()}",
                    tree, env=fl.env, check=False,
                ).splitlines()  # fmt: skip
                rec["conflict_line"] = _git(srv, "show", f"main:{CONFLICT_FILE}", env=fl.env).splitlines()[:1]
            rec["wall_s"] = round(time.monotonic() - t0, 1)
            rounds.append(rec)
            print(f"  fleet {side} round {r} server_is_release={rec.get('server_is_release')}", flush=True)
        # every agent up to the server's main, then their trees hashed
        for h in homes.values():
            h.pull()
            for a in AGENTS:
                if side == "avfs":
                    _avfs(h.env, "--vault", f"p:{a}", "merge", "main")
                else:
                    subprocess.run(["git", "merge", "-q", "--ff-only", "main"], cwd=h.mounts[a], env=fl.env)
        hashes = {f"{n}-{a}": _tracked_hash(h.mounts[a], fl.env) for n, h in homes.items() for a in AGENTS}
        end = _end_checks(fl, side, homes, srv, rounds)
    finally:
        for h in homes.values():
            h.close()
    return {"rounds": rounds, "tree_hashes": hashes, "end": end, "wall_s": round(time.monotonic() - t0, 1)}


def _end_checks(fl: Fleet, side: str, homes: dict[str, Any], srv: Path, rounds: list[Any]) -> dict[str, Any]:
    env = fl.env
    end: dict[str, Any] = {}
    fsck = subprocess.run(
        ["git", "fsck", "--no-progress", "--strict"], cwd=srv, env=env, capture_output=True, text=True
    )
    end["server_fsck"] = {"rc": fsck.returncode, "out": (fsck.stdout + fsck.stderr)[-800:]}
    end["server_refs"] = _git(srv, "for-each-ref", "--format=%(refname)", env=env).split()
    if side != "avfs":
        return end
    commits = [
        rec[n][a][step]["commit"]
        for rec in rounds
        for n in homes
        for a in AGENTS
        if a in rec[n]
        for step in ("apply", "tests")
        if rec[n][a][step].get("commit")
    ]
    missing = [
        c
        for c in commits
        if subprocess.run(["git", "merge-base", "--is-ancestor", c, "main"], cwd=srv, env=env).returncode
    ]
    end["exec_commits"], end["exec_commits_not_on_server"] = len(commits), missing
    for n, h in homes.items():
        v = h.vault
        fsck = subprocess.run(
            ["git", "fsck", "--no-progress"], cwd=v, env=env, capture_output=True, text=True
        )
        refs = _git(v, "for-each-ref", "--format=%(refname)", env=env).split()
        groups: dict[str, int] = {}
        for ref in refs:
            key = "/".join(ref.split("/")[:3])
            groups[key] = groups.get(key, 0) + 1
        # git's lock files (avfs's own under avfs/locks are flock files that stay)
        locks = [str(p.relative_to(v)) for p in v.rglob("*.lock") if p.relative_to(v).parts[0] != "avfs"]
        st = {a: _avfs(h.env, "--json", "--vault", f"p:{a}", "status")[1] for a in [*AGENTS, "main"]}
        end[n] = {
            "fsck": {"rc": fsck.returncode, "out": (fsck.stdout + fsck.stderr)[-800:]},
            "refs": groups,
            "branches": [r for r in refs if r.startswith(("refs/heads/", "refs/remotes/"))],
            "locks": locks,
            "status_changes": {a: len((d or {}).get("changes") or []) for a, d in st.items()},
            "main_vs_server": _git(v, "rev-parse", "main", env=env).strip()
            == _git(srv, "rev-parse", "main", env=env).strip(),
        }
    return end


def run_fleet(root: Path) -> dict[str, Any]:
    fl = Fleet(root)
    try:
        res: dict[str, Any] = {"patches": fl.make_patches(), "sides": {}}
        for side in ("git", "avfs"):
            res["sides"][side] = run_side(fl, side)
        res["events"] = fl.events
        res["compare"] = compare(res["sides"])
        return res
    finally:
        fl.daemon.terminate()
        fl.daemon.wait()


def compare(sides: dict[str, Any]) -> dict[str, Any]:
    """avfs's side against git's: each agent's outputs per round, the trees at the end."""
    a, g = sides["avfs"], sides["git"]
    diffs = []
    for ra, rg in zip(a["rounds"], g["rounds"], strict=True):
        for n in HOMES:
            for ag in AGENTS:
                if ag not in rg[n]:
                    continue
                for step in ("apply", "tests"):
                    x, y = ra[n].get(ag, {}).get(step, {}), rg[n][ag][step]
                    if x.get("out") != y.get("out") or x.get("rc") != y.get("rc"):
                        diffs.append(
                            {"round": ra["round"], "agent": f"{n}-{ag}", "step": step, "avfs": x, "git": y}
                        )
    return {
        "outputs_differing": diffs,
        "tree_hashes_equal": a["tree_hashes"] == g["tree_hashes"],
        "server_release_each_round": [r.get("server_is_release") for r in a["rounds"]],
        "git_server_release_each_round": [r.get("server_is_release") for r in g["rounds"]],
    }
