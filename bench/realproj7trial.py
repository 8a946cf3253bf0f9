"""Real projects through avfs, seventh round, the trial (docs/benchmarks.md, realproj7's
section): simplejson, a C extension not used by an earlier round, as a real history
(its released sdists 3.19.2, 3.19.3, 3.20.1 as three commits with tags,
``tests/realdata.history``) served by ``git daemon`` on 127.0.0.1 (pushes allowed);
cloned lazily into a vault (``avfs vault clone --lazy``) and plainly (``git clone``);
two agents each in a fork (avfs) or a worktree (git):

- a, through ``exec_in`` (the Python API): a ``.gitignore`` for the build, a venv,
  ``pip install --no-build-isolation --no-index -e .`` (the ``_speedups`` extension
  built in the fork), the package's tests with the extension, a new test file;
- b, through an ``avfs mcp`` server's ``exec`` tool: an edit of ``simplejson/encoder.py``
  and ``CHANGES.txt``, the tests without the extension;

then both merged into ``main`` (``merge``; ``git merge`` in the clone), ``main`` pushed to
the daemon (avfs: ``avfs push origin main``; git: ``git push origin HEAD:git-main``), and
what the server then holds compared: the two branches' trees, a fresh clone's ``git fsck``
and its tests. Each step's output, exit code and ``git status`` compared with git's side.

Run: ``.venv/bin/python -m bench.realproj7trial`` (as root); results in
``bench/results/realproj7-trial-<UTC>.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("RP7_TRIAL_ROOT", "/tmp/rp7t"))
AVFS = str(REPO / ".venv" / "bin" / "avfs")
VERSIONS = ["3.19.2", "3.19.3", "3.20.1"]
PY = "/usr/bin/python3"  # the sandbox's python3 is the system's: both sides use it

IGNORE = "printf '.venv/\\nbuild/\\n*.so\\n__pycache__/\\n' > .gitignore"
AGENT_A = (
    f"{IGNORE}; {PY} -m venv .venv && .venv/bin/pip install -q --no-build-isolation --no-index -e . "
    ">/dev/null 2>&1; echo pip=$?; .venv/bin/python -c 'import simplejson._speedups as s; print(s.__name__)'; "
    ".venv/bin/python -c 'import simplejson.tests as t; t.main()' 2>&1 | tail -1; "
    "printf 'import simplejson\\n\\ndef test_rt():\\n    assert simplejson.loads(simplejson.dumps([1]))"
    " == [1]\\n' > simplejson/tests/test_agent_a.py; git status --porcelain | sort"
)
AGENT_B = (
    "sed -i 's/^import re$/import re  # agent b was here/' simplejson/encoder.py; "
    "sed -i '1i Version next, agent b' CHANGES.txt; "
    f"SIMPLEJSON_NO_SPEEDUPS=1 {PY} -c 'import simplejson.tests as t; t.main()' 2>&1 | tail -1; git status --porcelain | sort"
)


def env_for(home: Path) -> dict[str, str]:
    user = ROOT / "userhome"
    user.mkdir(parents=True, exist_ok=True)
    (user / ".gitconfig").write_text(
        "[user]\n\tname = rp7\n\temail = rp7@example.org\n[init]\n\tdefaultBranch = main\n"
        "[safe]\n\tdirectory = *\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "AVFS_", "PYTHON"))}
    env.update(HOME=str(user), AVFS_HOME=str(home), GIT_CONFIG_NOSYSTEM="1", LC_ALL="C.UTF-8")
    return env


def sh(cwd: Path, line: str, env: dict[str, str]) -> tuple[float, int, str]:
    t0 = time.monotonic()
    p = subprocess.run(["sh", "-c", line], cwd=cwd, env=env, capture_output=True, text=True)
    return round(time.monotonic() - t0, 3), p.returncode, p.stdout


def tree_of(cwd: Path, rev: str, env: dict[str, str], git_dir: str | None = None) -> list[str]:
    """``ls-tree -r`` of ``rev``, each ``.pyc``'s blob id left out: a compiled module holds
    its source's mtime, which a checkout sets to its own time (here the clone's and the
    mount's differ by design), so only its path and mode are compared."""
    pre = ["--git-dir", git_dir] if git_dir else []
    out = git(cwd, *pre, "ls-tree", "-r", rev, env=env).splitlines()
    return [ln.split(" ")[0] + " pyc " + ln.split("\t", 1)[1] if ln.endswith(".pyc") else ln for ln in out]


def git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def serve(env: dict[str, str]) -> tuple[Path, str, subprocess.Popen[bytes]]:
    sys.path.insert(0, str(REPO))
    from tests import realdata

    srv = ROOT / "srv"
    bare = srv / "simplejson.git"
    work = realdata.history("simplejson", VERSIONS, ROOT / "hist", aggressive=False)
    srv.mkdir(parents=True, exist_ok=True)
    git(srv, "clone", "-q", "--bare", str(work), str(bare), env=env)
    for k, v in (("uploadpack.allowFilter", "true"), ("uploadpack.allowAnySHA1InWant", "true")):
        git(bare, "config", k, v, env=env)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    daemon = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", f"--base-path={srv}", "--export-all", "--enable=receive-pack",
         "--listen=127.0.0.1", f"--port={port}", str(srv)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"git://127.0.0.1:{port}/simplejson.git"
    for _ in range(100):
        if subprocess.run(["git", "ls-remote", url], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    return bare, url, daemon


class Mcp:
    """A minimal MCP client of ``avfs mcp`` over stdio (one request at a time)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [AVFS, "mcp"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.n = 0
        self.call(
            "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "rp7"}}
        )
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
                return dict(msg)

    def tool(self, name: str, **args: Any) -> dict[str, Any]:
        got = self.call("tools/call", {"name": name, "arguments": args})["result"]
        return dict(got.get("structuredContent") or json.loads(got["content"][0]["text"]))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=120)


def run() -> dict[str, Any]:
    if (ROOT / "home").exists():
        from avfs_git.core.vaults import layers

        layers.unmount(ROOT / "home")
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    env = env_for(ROOT / "home")
    os.environ.update({k: env[k] for k in ("HOME", "AVFS_HOME", "GIT_CONFIG_NOSYSTEM")})
    bare, url, daemon = serve(env)
    res: dict[str, Any] = {"load_start": os.getloadavg(), "url": url, "times": {}, "diff": []}

    def same(step: str, avfs_side: Any, git_side: Any) -> None:
        res[step] = {"avfs": avfs_side, "git": git_side}
        if avfs_side != git_side:
            res["diff"].append(step)

    import avfs_git
    from avfs_git.core.operations import merge as merging

    try:
        t0 = time.monotonic()
        plain = ROOT / "plain"
        git(ROOT, "clone", "-q", url, str(plain), env=env)
        t1 = time.monotonic()
        lazy = subprocess.run(
            [AVFS, "--json", "vault", "clone", "--lazy", url, "sj"], env=env, capture_output=True, text=True
        )
        t2 = time.monotonic()
        res["times"]["clone"] = {
            "git": round(t1 - t0, 3),
            "avfs_lazy": round(t2 - t1, 3),
            "rc": lazy.returncode,
        }
        home = avfs_git.open_home()
        vault = home.vault("sj")
        for n in ("a", "b"):
            vault.create_fork("main", n)
            git(plain, "worktree", "add", "-q", "-b", n, str(ROOT / f"wt-{n}"), env=env)
        # agent a through the API, agent b through MCP; each beside its git worktree
        t0 = time.monotonic()
        ra = avfs_git.exec_in(vault.workspace("a"), shell=AGENT_A, timeout_ms=900_000)
        ta = round(time.monotonic() - t0, 3)
        ga = sh(ROOT / "wt-a", AGENT_A, env)
        same("agent_a", (ra.exit_code, ra.result.stdout if ra.result else None), (ga[1], ga[2]))
        mcp = Mcp(env)
        try:
            t0 = time.monotonic()
            rb = mcp.tool("exec", vault="sj", fork="b", shell=AGENT_B, timeout_ms=900_000)
            tb = round(time.monotonic() - t0, 3)
        finally:
            mcp.close()
        gb = sh(ROOT / "wt-b", AGENT_B, env)
        same("agent_b", (rb.get("exit_code"), (rb.get("result") or {}).get("stdout")), (gb[1], gb[2]))
        res["times"]["agents"] = {"a": {"avfs": ta, "git": ga[0]}, "b": {"avfs": tb, "git": gb[0]}}
        for n in ("a", "b"):
            git(ROOT / f"wt-{n}", "add", "-A", env=env)
            git(ROOT / f"wt-{n}", "commit", "-q", "-m", f"agent {n}", env=env)
        same(
            "fork_trees",
            [tree_of(ROOT, n, env, vault.path) for n in ("a", "b")],
            [tree_of(ROOT / f"wt-{n}", "HEAD", env) for n in ("a", "b")],
        )
        merges: dict[str, Any] = {}
        for n in ("a", "b"):
            t0 = time.monotonic()
            m = merging.merge(vault, n, "main")
            t1 = time.monotonic()
            g = subprocess.run(
                ["git", "merge", "-q", "--no-edit", n], cwd=plain, env=env, capture_output=True, text=True
            )
            t2 = time.monotonic()
            merges[n] = {"avfs": [str(m.status), round(t1 - t0, 3)], "git": [g.returncode, round(t2 - t1, 3)]}
        res["merges"] = merges
        same(
            "main_tree",
            tree_of(ROOT, "main", env, vault.path),
            tree_of(plain, "HEAD", env),
        )
        t0 = time.monotonic()
        pa = subprocess.run(
            [AVFS, "--json", "--vault", "sj", "push", "origin", "main"],
            env=env,
            capture_output=True,
            text=True,
        )
        t1 = time.monotonic()
        pg = subprocess.run(
            ["git", "push", "-q", "origin", "HEAD:git-main"],
            cwd=plain,
            env=env,
            capture_output=True,
            text=True,
        )
        t2 = time.monotonic()
        res["times"]["push"] = {"avfs": round(t1 - t0, 3), "git": round(t2 - t1, 3)}
        res["push"] = {
            "avfs": [pa.returncode, pa.stdout[-1500:], pa.stderr[-1500:]],
            "git": [pg.returncode, pg.stderr[-500:]],
        }
        same(
            "server_trees",
            tree_of(bare, "main", env),
            tree_of(bare, "git-main", env),
        )
        fresh = ROOT / "fresh"
        git(ROOT, "clone", "-q", url, str(fresh), env=env)
        res["fresh_fsck"] = subprocess.run(
            ["git", "fsck", "--strict"], cwd=fresh, env=env, capture_output=True, text=True
        ).returncode
        same(
            "fresh_tests",
            sh(
                fresh,
                f"SIMPLEJSON_NO_SPEEDUPS=1 {PY} -c 'import simplejson.tests as t; t.main()' 2>&1 | tail -1",
                env,
            )[1:],
            sh(
                plain,
                f"SIMPLEJSON_NO_SPEEDUPS=1 {PY} -c 'import simplejson.tests as t; t.main()' 2>&1 | tail -1",
                env,
            )[1:],
        )
        st = subprocess.run(
            [AVFS, "--json", "--vault", "sj:main", "status"], env=env, capture_output=True, text=True
        )
        res["avfs_status_main"] = json.loads(st.stdout).get("changes") if st.stdout else st.stderr[-500:]
        res["vault_fsck"] = subprocess.run(
            ["git", "--git-dir", vault.path, "fsck"], env=env, capture_output=True, text=True
        ).returncode
        for n in ("main", "a", "b"):
            subprocess.run([AVFS, "unmount", "--lazy", f"sj:{n}"], env=env, capture_output=True)
        home.close()
    finally:
        os.killpg(daemon.pid, 15)
        from avfs_git.core.vaults import layers

        layers.unmount(ROOT / "home")
    res["load_end"] = os.getloadavg()
    return res


def main() -> None:
    res = run()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = REPO / "bench" / "results" / f"realproj7-trial-{stamp}.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({"file": str(out), "diff": res["diff"], "times": res["times"]}, indent=1))


if __name__ == "__main__":
    main()
