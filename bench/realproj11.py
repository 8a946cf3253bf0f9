"""Real projects, eleventh round (docs/benchmarks.md, "Real projects, eleventh round"):
more-itertools' five releases 10.1.0 … 10.5.0 as a history, served by `git http-backend`
behind Basic auth on 127.0.0.1 (bench/authgit.py, its own process, `uploadpack.allowFilter`).

- ``remote``: a lazy vault cloned from it (``avfs vault clone URL --lazy``, the token in
  ``AVFS_GIT_TOKEN``), mounted on BACKEND; the project's own tests in the mount; two
  agents' edits through ``proxy exec`` on forks a and b; a person's checkpoint on main; both
  merged; pushed back; the credentials looked for in every file of the home; the server
  killed: a fetched file is read, an unfetched one fails (EIO, ``blob_not_local``) within
  the timeout, git and the tests go on. The same done by plain git on a plain clone.
- ``two``: two homes each clone the same server lazily; agents work in parallel through
  merge-and-publish rounds (publish = push, a compare-and-swap; rejected: ``avfs pull``
  then push again), each mounted on BACKEND; at the end each pulls and holds the other's
  work. The same with two plain clones.

Figures: every step's wall, exit code, and the bytes the server sent for it (the counts the
server keeps); the full ``git clone --bare`` and a plain ``--filter=blob:none`` clone in the
same run. Run (as root): ``.venv/bin/python -m bench.realproj11 --parts remote,two
--backends overlay,fuse``; results in ``bench/results/realproj11-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests import realdata  # noqa: E402

ROOT = Path(os.environ.get("RP11_ROOT", "/tmp/h-realproj11/rp11"))
AVFS = str(REPO / ".venv/bin/avfs")
PY = str(REPO / ".venv/bin/python")
# the project (RP11_PROJECT): more-itertools for every part; pygments (3 releases, ~4 MB of
# files each, ~2,000 test files) for the cut, so that the cut falls between fetches
PROJECT = os.environ.get("RP11_PROJECT", "more-itertools")
VERSIONS = {
    "more-itertools": ["10.1.0", "10.2.0", "10.3.0", "10.4.0", "10.5.0"],
    "pygments": ["2.16.1", "2.17.2", "2.18.0"],
}[PROJECT]
PASSWORD = "s3cr3t-" + "k" * 16  # looked for afterwards in every file of the homes
CUT_AFTER = int(os.environ.get("RP11_CUT_AFTER", "1"))  # bytes the tests fetched before the cut
ONE_BY_ONE = os.environ.get("RP11_ONE_BY_ONE") == "1"  # the cut trial's vault: no neighbours fetched
PARALLEL = os.environ.get("RP11_PARALLEL") == "1"  # the two homes publish at the same moment
TESTS = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"] + (
    ["tests"] if PROJECT == "more-itertools" else ["tests/test_basic_api.py", "tests/snippets"]
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """bench/authgit.py over ``root``, started and killed as a process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.counts = root.parent / f"counts-{root.name}.json"
        self.proc: subprocess.Popen[bytes] | None = None
        self.counts.unlink(missing_ok=True)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [PY, "-m", "bench.authgit", str(self.root), str(self.port), PASSWORD, str(self.counts)],
            cwd=REPO, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == b"ready"

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def sent(self) -> int:
        try:
            c = json.loads(self.counts.read_text())
        except (OSError, ValueError):
            return 0
        return int(c["upload_pack"]) + int(c["info_refs"])


def env_for(name: str, *, helper: bool) -> dict[str, str]:
    """A person's environment: their own HOME and git identity; ``helper``: the password
    through a credential helper in their git config (the plain side), else through
    ``AVFS_GIT_TOKEN`` (the avfs side: nothing of it in any config)."""
    user = ROOT / f"user-{name}"
    user.mkdir(parents=True, exist_ok=True)
    cfg = (
        f"[user]\n\tname = {name}\n\temail = {name}@example.org\n[init]\n\tdefaultBranch = main\n"
        "[safe]\n\tdirectory = *\n[pull]\n\trebase = false\n[advice]\n\tdetachedHead = false\n"
    )
    if helper:
        cfg += f'[credential]\n\thelper = "!f() {{ echo username=agent; echo password={PASSWORD}; }}; f"\n'
    (user / ".gitconfig").write_text(cfg)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GIT_", "AVFS_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(HOME=str(user), GIT_CONFIG_NOSYSTEM="1", LC_ALL="C.UTF-8", GIT_TERMINAL_PROMPT="0")
    if not helper:
        env.update(AVFS_HOME=str(ROOT / f"home-{name}"), AVFS_GIT_TOKEN=PASSWORD, AVFS_GIT_USERNAME="agent")
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> dict[str, Any]:
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = -999, str(e.stdout or ""), f"TIMEOUT after {timeout}s"
    return {"argv": argv, "rc": rc, "out": out, "err": err, "wall": round(time.monotonic() - t0, 3)}


class Log:
    def __init__(self, side: str, server: Server | None) -> None:
        self.side = side
        self.server = server
        self.steps: list[dict[str, Any]] = []

    def step(self, name: str, argv: list[str], cwd: Path, env: dict[str, str], **kw: Any) -> dict[str, Any]:
        before = self.server.sent() if self.server and self.server.proc else 0
        r = run(argv, cwd, env, **kw)
        after = self.server.sent() if self.server and self.server.proc else before
        r["step"] = name
        r["bytes"] = after - before
        short = {k: (v[-1500:] if isinstance(v, str) else v) for k, v in r.items()}
        self.steps.append(short)
        print(f"[{self.side}] {name}: rc={r['rc']} {r['wall']}s {r['bytes']}B", flush=True)
        if r["rc"] not in (0,) and not kw.get("timeout"):
            print("   ", (r["err"] or r["out"])[-600:].replace("\n", "\n    "), flush=True)
        return r


def source() -> Path:
    """The history, built once (tests/realdata.history), as a bare repository to copy."""
    data = ROOT / "data"
    data.mkdir(parents=True, exist_ok=True)
    work = realdata.history(PROJECT, VERSIONS, data, aggressive=False)
    bare = data / "src.git"
    if not bare.exists():
        subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return bare


def serve(tag: str, names: list[str]) -> Server:
    root = ROOT / f"srv-{tag}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for n in names:
        subprocess.run(["git", "clone", "-q", "--bare", str(source()), str(root / f"{n}.git")], check=True)
        for k, v in (("uploadpack.allowFilter", "true"), ("uploadpack.allowAnySHA1InWant", "true"),
                     ("http.receivepack", "true")):  # fmt: skip
            subprocess.run(["git", "--git-dir", str(root / f"{n}.git"), "config", k, v], check=True)
    s = Server(root)
    s.start()
    return s


A_EDIT = (
    'printf \'\\n\\ndef agent_a_total(iterable):\\n    """Sum of an iterable (agent a)."""\\n'
    "    return sum(iterable)\\n' >> more_itertools/more.py && "
    "printf '\\n\\ndef test_agent_a_total():\\n    from more_itertools.more import agent_a_total\\n"
    "    assert agent_a_total(range(5)) == 10\\n' >> tests/test_more.py"
)
B_EDIT = (
    "sed -i 's/^Itertools recipes$/Itertools recipes (agent b)/' more_itertools/recipes.py && "
    "printf 'Agent b was here.\\n' >> README.rst && rm -f tox.ini"
)
PERSON_EDIT = "printf '\\n10.5.0+person\\n' >> docs/versions.rst"


def tree_of(git_dir: Path, rev: str, env: dict[str, str]) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "rev-parse", f"{rev}^{{tree}}"],
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()


def unfetched(vault: Path, env: dict[str, str], prefer: str = "docs/") -> list[str]:
    """Paths of main whose blob the vault does not hold (objects listed, never asked by id)."""
    have = set(
        subprocess.run(
            ["git", "--git-dir", str(vault), "cat-file", "--batch-all-objects", "--batch-check=%(objectname)"],
            env=env, capture_output=True, text=True,
        ).stdout.split()
    )  # fmt: skip
    ls = subprocess.run(
        ["git", "--git-dir", str(vault), "ls-tree", "-r", "main"], env=env, capture_output=True, text=True
    ).stdout.splitlines()
    out = []
    for line in ls:
        meta, path = line.split("\t", 1)
        if meta.split()[2] not in have:
            out.append(path)
    return sorted(out, key=lambda p: (not p.startswith(prefer), p))


def secrets_in(root: Path) -> list[str]:
    """Files under ``root`` holding the password: the home's layers file system (the upper
    layers, the workspaces' state) walked too; the forks' mounts (their files) and the
    sparse image behind the layers are not."""
    with open("/proc/mounts", encoding="utf-8") as fh:
        skip = {
            f.split()[1] for f in fh if f.split()[2] in ("overlay", "fuse.avfs") or "fuse" in f.split()[2]
        }
    hits = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(dirpath, d) not in skip]
        for f in files:
            p = os.path.join(dirpath, f)
            if f == "layers.img" or os.path.islink(p) or not os.path.isfile(p):
                continue
            try:
                with open(p, "rb") as fh:
                    if PASSWORD.encode() in fh.read():
                        hits.append(p)
            except OSError:
                pass
    return hits


def trial_remote(backend: str) -> dict[str, Any]:
    tag = f"remote-{backend}"
    srv = serve(tag, ["avfs", "plain"])
    res: dict[str, Any] = {"backend": backend}
    try:
        # baselines in the same run: the full clone, a plain partial clone, a plain checkout
        penv = env_for(f"plain-{backend}", helper=True)
        base = Log("baseline", srv)
        w = ROOT / f"w-{tag}"
        shutil.rmtree(w, ignore_errors=True)
        w.mkdir(parents=True)
        full = base.step(
            "git clone --bare", ["git", "clone", "-q", "--bare", srv.url("avfs"), "full.git"], w, penv
        )
        part = base.step(
            "git clone --bare --filter=blob:none",
            ["git", "clone", "-q", "--bare", "--filter=blob:none", srv.url("avfs"), "partial.git"], w, penv,
        )  # fmt: skip
        res["baseline"] = base.steps
        res["full_clone"] = {"wall": full["wall"], "bytes": full["bytes"]}
        res["partial_clone"] = {"wall": part["wall"], "bytes": part["bytes"]}

        plain = Log("plain", srv)
        pw = w / "plain"
        plain.step("clone", ["git", "clone", "-q", srv.url("plain"), str(pw)], w, penv)
        plain.step("tests", [PY, *TESTS], pw, penv)
        plain.step("branch a", ["git", "switch", "-q", "-c", "a"], pw, penv)
        plain.step("a edits", ["sh", "-c", A_EDIT + " && git add -A && git commit -qm 'agent a'"], pw, penv)
        plain.step("branch b", ["git", "switch", "-q", "-c", "b", "main"], pw, penv)
        plain.step("b edits", ["sh", "-c", B_EDIT + " && git add -A && git commit -qm 'agent b'"], pw, penv)
        plain.step("main", ["git", "switch", "-q", "main"], pw, penv)
        plain.step(
            "person edits, commits", ["sh", "-c", PERSON_EDIT + " && git commit -qam person"], pw, penv
        )
        plain.step("merge a", ["git", "merge", "-q", "--no-edit", "a"], pw, penv)
        plain.step("merge b", ["git", "merge", "-q", "--no-edit", "b"], pw, penv)
        plain.step("tests after merge", [PY, *TESTS], pw, penv)
        plain.step("push", ["git", "push", "-q", "origin", "main"], pw, penv)
        res["plain"] = plain.steps

        env = env_for(f"avfs-{backend}", helper=False)
        home = Path(env["AVFS_HOME"])
        shutil.rmtree(home, ignore_errors=True)
        av = Log(backend, srv)
        mp = w / "mnt"
        mp.mkdir()
        av.step(
            "vault clone --lazy", [AVFS, "--json", "vault", "clone", "--lazy", srv.url("avfs"), "p"], w, env
        )
        vault = home / "vaults" / "p.git"
        av.step("mount", [AVFS, "mount", "--backend", backend, "p:main", str(mp)], w, env)
        av.step("ls", ["ls", "-la"], mp, env)
        av.step("git status", ["git", "status", "--porcelain"], mp, env)
        av.step("tests", [PY, *TESTS], mp, env)
        for f in ("a", "b"):
            av.step(f"fork {f}", [AVFS, "vault", "fork", "p:main", f], w, env)
            fm = w / f"mnt-{f}"
            fm.mkdir()
            av.step(f"mount {f}", [AVFS, "mount", "--backend", backend, f"p:{f}", str(fm)], w, env)
        av.step("a edits (proxy exec)", [AVFS, "--vault", "p:a", "proxy", "exec", "--shell", A_EDIT], w, env)
        av.step("b edits (proxy exec)", [AVFS, "--vault", "p:b", "proxy", "exec", "--shell", B_EDIT], w, env)
        av.step("person edits", ["sh", "-c", PERSON_EDIT], mp, env)
        av.step("checkpoint", [AVFS, "checkpoint", "save", "-m", "person"], mp, env)
        av.step("merge a", [AVFS, "merge", "a"], mp, env)
        av.step("merge b", [AVFS, "merge", "b"], mp, env)
        av.step("git status after merge", ["git", "status", "--porcelain"], mp, env)
        av.step("tests after merge", [PY, *TESTS], mp, env)
        av.step("push", [AVFS, "--json", "push"], mp, env)
        res["secrets_in_home"] = [str(p) for p in secrets_in(home)]
        res["secrets_in_vault_config"] = PASSWORD in (vault / "config").read_text()
        # the trees on the servers: the avfs side's and git's pushed main the same?
        res["server_trees"] = {n: tree_of(srv.root / f"{n}.git", "main", penv) for n in ("avfs", "plain")}
        res["trees_equal"] = res["server_trees"]["avfs"] == res["server_trees"]["plain"]
        # the server killed mid-task
        missing = unfetched(vault, env)
        res["unfetched_before_kill"] = len(missing)
        srv.kill()
        av.step("read a fetched file (server dead)", ["cat", "more_itertools/more.py"], mp, env, timeout=180)
        if missing:
            av.step("read an unfetched file (server dead)", ["cat", missing[0]], mp, env, timeout=180)
            av.step(
                "avfs cat unfetched (server dead)", [AVFS, "--json", "cat", missing[0]], mp, env, timeout=180
            )
            res["unfetched_path"] = missing[0]
        av.step("git status (server dead)", ["git", "status", "--porcelain"], mp, env, timeout=180)
        av.step("git log (server dead)", ["git", "log", "--oneline", "-3"], mp, env, timeout=180)
        av.step("tests (server dead)", [PY, *TESTS], mp, env, timeout=600)
        av.step("edit + checkpoint (server dead)", ["sh", "-c", f"{PERSON_EDIT} && {AVFS} checkpoint save -m offline"],
                mp, env, timeout=180)  # fmt: skip
        av.step("push (server dead)", [AVFS, "--json", "push"], mp, env, timeout=180)
        srv.start()
        av.step("push (server back)", [AVFS, "--json", "push"], mp, env, timeout=180)
        for f in ("a", "b"):
            av.step(f"unmount {f}", [AVFS, "unmount", f"p:{f}"], w, env)
        av.step("unmount", [AVFS, "unmount", "p:main"], w, env)
        res["avfs"] = av.steps
        res["secrets_in_home_end"] = [str(p) for p in secrets_in(home)]
    finally:
        srv.kill()
        cleanup(ROOT)
    return res


def trial_two(backend: str, rounds: int) -> dict[str, Any]:
    tag = f"two-{backend}"
    srv = serve(tag, ["avfs", "plain"])
    res: dict[str, Any] = {"backend": backend, "rounds": rounds}
    w = ROOT / f"w-{tag}"
    shutil.rmtree(w, ignore_errors=True)
    w.mkdir(parents=True)
    try:
        envs = {m: env_for(f"{m}-{backend}", helper=False) for m in ("m1", "m2")}
        penvs = {m: env_for(f"plain-{m}-{backend}", helper=True) for m in ("m1", "m2")}
        logs = {m: Log(f"{backend}:{m}", srv) for m in envs}
        plogs = {m: Log(f"plain:{m}", srv) for m in envs}
        for m, env in envs.items():
            shutil.rmtree(env["AVFS_HOME"], ignore_errors=True)
            logs[m].step(
                "vault clone --lazy", [AVFS, "vault", "clone", "--lazy", srv.url("avfs"), "p"], w, env
            )
            logs[m].step("fork", [AVFS, "vault", "fork", "p:main", f"agent-{m}"], w, env)
            (w / f"mnt-{m}").mkdir()
            logs[m].step(
                "mount", [AVFS, "mount", "--backend", backend, f"p:agent-{m}", str(w / f"mnt-{m}")], w, env
            )
            plogs[m].step(
                "clone", ["git", "clone", "-q", srv.url("plain"), str(w / f"plain-{m}")], w, penvs[m]
            )
        for rnd in range(1, rounds + 1):
            lines = {
                "m1": f"printf '# round {rnd} by m1\\n' >> more_itertools/__init__.py && "
                f"mkdir -p notes && printf 'm1 {rnd}\\n' > notes/m1-{rnd}.txt",
                "m2": f"sed -i '1i # round {rnd} by m2' more_itertools/recipes.py && "
                f"mkdir -p notes && printf 'm2 {rnd}\\n' > notes/m2-{rnd}.txt",
            }
            for m, env in envs.items():  # both work in parallel (no publish between)
                logs[m].step(f"r{rnd} exec", [AVFS, "--vault", f"p:agent-{m}", "proxy", "exec", "--shell", lines[m]],
                             w, env)  # fmt: skip
                pw = w / f"plain-{m}"
                plogs[m].step(f"r{rnd} edit", ["sh", "-c", lines[m] + f" && git add -A && git commit -qm 'r{rnd} {m}'"],
                              pw, penvs[m])  # fmt: skip

            def publish(m: str, rnd: int = rnd) -> None:
                env, lg = envs[m], logs[m]
                lg.step(f"r{rnd} merge into main", [AVFS, "--vault", "p:main", "merge", f"agent-{m}"], w, env)
                for attempt in range(5):  # publish is a compare-and-swap: pull and try again
                    r = lg.step(
                        f"r{rnd} push {attempt}", [AVFS, "--vault", "p:main", "--json", "push"], w, env
                    )
                    if r["rc"] == 0:
                        break
                    lg.step(f"r{rnd} pull {attempt}", [AVFS, "--vault", "p:main", "pull"], w, env)
                lg.step(f"r{rnd} main into agent", [AVFS, "--vault", f"p:agent-{m}", "merge", "main"], w, env)
                pw = w / f"plain-{m}"
                for attempt in range(5):
                    r = plogs[m].step(
                        f"r{rnd} push {attempt}", ["git", "push", "-q", "origin", "main"], pw, penvs[m]
                    )
                    if r["rc"] == 0:
                        break
                    plogs[m].step(f"r{rnd} pull {attempt}", ["git", "pull", "-q", "--no-edit"], pw, penvs[m])

            if PARALLEL:  # both publish at the same moment
                threads = [threading.Thread(target=publish, args=(m,)) for m in envs]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            else:
                for m in envs:
                    publish(m)
        for m, env in envs.items():
            logs[m].step("final pull", [AVFS, "--vault", "p:main", "pull"], w, env)
            logs[m].step(
                "final agent pull", [AVFS, "--vault", f"p:agent-{m}", "pull", "origin", "main"], w, env
            )
            plogs[m].step("final pull", ["git", "pull", "-q", "--no-edit"], w / f"plain-{m}", penvs[m])
        server_main = tree_of(srv.root / "avfs.git", "main", envs["m1"])
        res["server_tree"] = server_main
        res["homes_main_tree"] = {
            m: tree_of(Path(env["AVFS_HOME"]) / "vaults/p.git", "main", env) for m, env in envs.items()
        }
        res["homes_agent_tree"] = {
            m: tree_of(Path(env["AVFS_HOME"]) / "vaults/p.git", f"agent-{m}", env) for m, env in envs.items()
        }
        # the mount shows the other's work
        res["mount_notes"] = {
            m: sorted(os.listdir(w / f"mnt-{m}" / "notes")) if (w / f"mnt-{m}" / "notes").exists() else []
            for m in envs
        }
        res["plain_notes"] = {m: sorted(os.listdir(w / f"plain-{m}" / "notes")) for m in envs}
        want = sorted(f"{m}-{r}.txt" for m in envs for r in range(1, rounds + 1))
        res["nothing_lost"] = all(v == want for v in res["mount_notes"].values())
        res["plain_server_tree"] = tree_of(srv.root / "plain.git", "main", envs["m1"])
        res["trees_equal"] = res["plain_server_tree"] == server_main
        res["secrets"] = [str(p) for m, env in envs.items() for p in secrets_in(Path(env["AVFS_HOME"]))]
        for m, env in envs.items():
            logs[m].step("unmount", [AVFS, "unmount", f"p:agent-{m}"], w, env)
        res["avfs"] = {m: lg.steps for m, lg in logs.items()}
        res["plain"] = {m: lg.steps for m, lg in plogs.items()}
    finally:
        srv.kill()
        cleanup(ROOT)
    return res


REBASE_TODO = "sed -i -e '2s/^pick/squash/' -e '3s/^pick/drop/'"  # squash the 2nd into the 1st, drop the 3rd


def day_steps(side: str) -> list[tuple[str, str]]:
    """A person's day, as shell lines run at the top of the tree (``proxy exec`` for the
    agent-ish ones on avfs sides: the install; ``avfs undo`` where git resets)."""
    install = "python3 -m venv .venv && .venv/bin/pip install -q -e . pytest flit"
    bad = "rm -rf more_itertools tests && printf 'oops\\n' > README.rst"
    if side == "plain":  # the agent's command committed, as proxy exec commits it
        bad += " && git add -A && git commit -qm bad"
        rollback, undo, redo = (
            "git reset -q --hard HEAD~1",
            "git reset -q --hard ORIG_HEAD",
            "git reset -q --hard HEAD@{1}",
        )
    else:  # the documented rollback of a command (docs/proxy.md), undone, redone
        rollback, undo, redo = f"{AVFS} checkpoint restore HEAD~1", f"{AVFS} undo", f"{AVFS} redo"
    look = "git status --porcelain; ls more_itertools | wc -l; head -1 README.rst; git log --format=%s -2"
    return [
        ("install", install),
        ("tests", ".venv/bin/python -m pytest -q -p no:cacheprovider tests 2>&1 | tail -1"),
        ("make test", "PATH=$PWD/.venv/bin:$PATH make test 2>&1 | tail -3"),
        (
            "build",
            ".venv/bin/python -m pip wheel -q --no-deps --no-build-isolation -w dist . && ls dist && git status --porcelain --ignored",
        ),
        ("wip edit", "printf '\\n# wip\\n' >> more_itertools/more.py && git status --porcelain"),
        ("git stash", "git stash -q && git status --porcelain && git stash list | wc -l"),
        (
            "three commits",
            'for i in 1 2 3; do printf "c$i\\n" >> docs/versions.rst; '
            'git commit -qam "c$i"; done; git log --format=%s -4',
        ),
        (
            "git rebase -i",
            f'GIT_SEQUENCE_EDITOR="{REBASE_TODO}" GIT_EDITOR=true git rebase -q -i HEAD~3 >/dev/null && '
            "git log --format=%s -3 && tail -3 docs/versions.rst",
        ),
        ("git stash pop", "git stash pop -q && git status --porcelain && git stash list | wc -l"),
        ("commit wip", "git commit -qam wip && git status --porcelain"),
        ("bad step", bad),
        ("rollback", rollback),
        ("after rollback", look),
        ("rollback undone", undo),
        ("after rollback undone", look),
        ("redo", redo),
        ("after redo", look),
        ("tests again", ".venv/bin/python -m pytest -q -p no:cacheprovider tests 2>&1 | tail -1"),
    ]


# the agent's steps, through `proxy exec` on avfs's sides: what the install built names the
# sandbox's path of the fork (docs/proxy.md), so the build and the tests run there too
EXEC_STEPS = ("install", "tests", "make test", "build", "bad step", "tests again", "venv after remount")


def trial_day(backend: str) -> dict[str, Any]:
    """The person's day on ``backend`` (``plain``: a git clone) from a clone of the history."""
    tag = f"day-{backend}"
    w = ROOT / f"w-{tag}"
    shutil.rmtree(w, ignore_errors=True)
    w.mkdir(parents=True)
    res: dict[str, Any] = {"backend": backend}
    try:
        if backend == "plain":
            env = env_for("day-plain", helper=True)
            lg = Log("day:plain", None)
            tree = w / "tree"
            lg.step("clone", ["git", "clone", "-q", str(source()), str(tree)], w, env)
        else:
            env = env_for(f"day-{backend}", helper=False)
            shutil.rmtree(env["AVFS_HOME"], ignore_errors=True)
            lg = Log(f"day:{backend}", None)
            tree = w / "mnt"
            tree.mkdir()
            lg.step("clone", [AVFS, "vault", "clone", str(source()), "d"], w, env)
            lg.step("mount", [AVFS, "mount", "--backend", backend, "d:main", str(tree)], w, env)
        outs: dict[str, str] = {}
        for name, line in day_steps(backend):
            if backend != "plain" and name in EXEC_STEPS:
                argv = [AVFS, "--vault", "d:main", "proxy", "exec", "--quiet", "--timeout-ms", "900000",
                        "--shell", line]  # fmt: skip
            else:
                argv = ["sh", "-c", line]
            r = lg.step(name, argv, tree, env)
            outs[name] = r["out"]
        if backend != "plain":
            lg.step("unmount", [AVFS, "unmount", "d:main"], w, env)
            lg.step("mount again", [AVFS, "mount", "--backend", backend, "d:main", str(tree)], w, env)
        line = (".venv/bin/python -c 'import more_itertools as m; print(m.__file__)' && "
                ".venv/bin/python -m pytest -q -p no:cacheprovider tests 2>&1 | tail -1")  # fmt: skip
        argv = ["sh", "-c", line] if backend == "plain" else [
            AVFS, "--vault", "d:main", "proxy", "exec", "--quiet", "--shell", line]  # fmt: skip
        r = lg.step("venv after remount", argv, tree, env)
        outs["venv after remount"] = r["out"]
        r = lg.step("status at the end", ["git", "status", "--porcelain", "--ignored"], tree, env)
        outs["status at the end"] = r["out"]
        if backend != "plain":
            lg.step("export", [AVFS, "export", "d:main", str(w / "export")], w, env)
            lg.step("unmount", [AVFS, "unmount", "d:main"], w, env)
            exported = w / "export"
        else:
            exported = tree
        res["files"] = sorted(
            str(p.relative_to(exported)) for p in exported.rglob("*")
            if ".git" not in p.relative_to(exported).parts[:1] and ".venv" not in p.parts and p.is_file()
            and "__pycache__" not in p.parts
        )  # fmt: skip
        res["outs"] = outs
        res["steps"] = lg.steps
    finally:
        cleanup(ROOT)
    return res


def trial_cut(backend: str, how: str) -> dict[str, Any]:
    """The server killed (``kill``: connections refused) or stopped (``stop``: SIGSTOP, a
    listener that never answers; the vault's ``fetch_timeout_s`` 5) while the project's tests
    run in a fresh lazy mount, after its first fetch: the run ends (how long after the cut),
    the vault is intact, and with the server back the tests pass."""
    tag = f"cut-{how}-{backend}"
    srv = serve(tag, ["avfs"])
    w = ROOT / f"w-{tag}"
    shutil.rmtree(w, ignore_errors=True)
    w.mkdir(parents=True)
    res: dict[str, Any] = {"backend": backend, "how": how}
    env = env_for(f"cut-{how}-{backend}", helper=False)
    shutil.rmtree(env["AVFS_HOME"], ignore_errors=True)
    lg = Log(f"cut-{how}:{backend}", srv)
    mp = w / "mnt"
    mp.mkdir()
    try:
        lg.step("vault clone --lazy", [AVFS, "vault", "clone", "--lazy", srv.url("avfs"), "p"], w, env)
        vault = Path(env["AVFS_HOME"]) / "vaults/p.git"
        config: dict[str, int] = {"fetch_timeout_s": 5} if how == "stop" else {}
        if ONE_BY_ONE:  # each read fetches its own file: the cut falls between the tests' reads
            config.update(read_neighbours=0, read_package_bytes=0)
        res["config"] = config
        (vault / "avfs").mkdir(exist_ok=True)
        (vault / "avfs/config.json").write_text(json.dumps(config))
        lg.step("mount", [AVFS, "mount", "--backend", backend, "p:main", str(mp)], w, env)
        base = srv.sent()
        t0 = time.monotonic()
        p = subprocess.Popen(
            [PY, *TESTS], cwd=mp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        while srv.sent() - base < CUT_AFTER and p.poll() is None:
            time.sleep(0.05)
        assert srv.proc is not None
        cut_at = time.monotonic()
        res["bytes_before_cut"] = srv.sent() - base
        if how == "kill":
            srv.kill()
        else:
            os.kill(srv.proc.pid, signal.SIGSTOP)
        try:
            out, _ = p.communicate(timeout=900)
            res["tests_after_cut"] = {"rc": p.returncode, "tail": out[-1500:],
                                      "secs_after_cut": round(time.monotonic() - cut_at, 2),
                                      "secs": round(time.monotonic() - t0, 2)}  # fmt: skip
        except subprocess.TimeoutExpired:
            p.kill()
            res["tests_after_cut"] = {"rc": "HUNG 900 s"}
        print(f"[{tag}] tests after the cut: {res['tests_after_cut'].get('rc')} "
              f"{res['tests_after_cut'].get('secs_after_cut')} s", flush=True)  # fmt: skip
        lg.step("git status (cut)", ["git", "status", "--porcelain"], mp, env, timeout=900)
        lg.step(
            "fsck", ["git", "--git-dir", str(vault), "fsck", "--no-progress", "--connectivity-only"], w, env
        )
        lg.step("doctor", [AVFS, "--json", "doctor"], w, env, timeout=900)
        if how == "kill":
            srv.start()
        else:
            os.kill(srv.proc.pid, signal.SIGCONT)
            config.pop("fetch_timeout_s")
            (vault / "avfs/config.json").write_text(json.dumps(config))
        lg.step("tests (server back)", [PY, *TESTS], mp, env)
        lg.step("git status (server back)", ["git", "status", "--porcelain"], mp, env)
        lg.step("unmount", [AVFS, "unmount", "p:main"], w, env)
        res["steps"] = lg.steps
    finally:
        if srv.proc is not None and how == "stop":
            os.kill(srv.proc.pid, signal.SIGCONT)
        srv.kill()
        cleanup(ROOT)
    return res


def cleanup(root: Path) -> None:
    """Whatever of ours is still mounted under ``root`` (deepest first), the homes' servers."""
    for home in root.glob("home-*"):
        subprocess.run([AVFS, "--home", str(home), "server", "stop"], capture_output=True)
    with open("/proc/mounts", encoding="utf-8") as fh:
        mps = [line.split()[1] for line in fh if str(root) in line.split()[1]]
    for m in sorted(mps, key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="remote,two")
    ap.add_argument("--backends", default="overlay,fuse")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    out: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load": os.getloadavg(),
        "project": PROJECT,
        "versions": VERSIONS,
        "parallel_publish": PARALLEL,
        "parts": {},
    }
    source()
    for part in a.parts.split(","):
        for b in a.backends.split(","):
            if part == "remote":
                out["parts"][f"remote-{b}"] = trial_remote(b)
            elif part in ("kill", "stop"):
                out["parts"][f"cut-{part}-{b}"] = trial_cut(b, part)
            elif part == "day":
                out["parts"][f"day-{b}"] = trial_day(b)
            elif part == "two":
                out["parts"][f"two-{b}"] = trial_two(b, a.rounds)
    out["load_end"] = os.getloadavg()
    dest = REPO / "bench/results" / f"realproj11-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(dest)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
