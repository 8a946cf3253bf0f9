"""Real projects through avfs, eleventh round (bench/realproj11.py; docs/benchmarks.md "Real
projects, eleventh round"): a real history served over HTTP with Basic auth, cloned lazily,
on each mount backend, as a demanding user works with it.

more-itertools' releases 10.4.0 and 10.5.0 (their sdists, one a commit) behind `git
http-backend` with Basic auth on 127.0.0.1 (tests/test_remotes.py's ``http_git``, through a
:class:`~tests.lazyrelay.Relay` that can take the server away): ``avfs vault clone --lazy``
with the token in ``AVFS_GIT_TOKEN``; the project's own tests pass in the mount as in a
plain clone; two agents' ``proxy exec`` edits on their forks, merged into ``main`` with the
person's checkpoint and pushed back: the server's tree is git's for the same work, and the
password is in no file of the home (the layers file system, the mounts' upper layers, op
log, audit, the vault's config). Then the server is gone: the files the tests read still
read, one they never read is ``EIO`` in the mount and ``blob_not_local`` through the CLI,
git and the tests go on, and with the server back the push of what was done meanwhile goes.
The trials found no disagreement; this keeps the path from coming apart unseen.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from avfs_git.ops import mounts

from . import realdata
from .conftest import IN_CI, _stop_servers, git
from .lazyrelay import Relay
from .test_fuse import require_fuse
from .test_realprojects import git_run, make_env
from .test_remotes import http_git as http_git

pytestmark = pytest.mark.slow

VERSIONS = ["10.4.0", "10.5.0"]
TESTS = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_recipes.py"]
A_EDIT = (  # agent a: a function and its test
    "printf '\\n\\ndef agent_a_total(iterable):\\n    return sum(iterable)\\n' >> more_itertools/recipes.py && "
    "printf '\\n\\ndef test_agent_a_total():\\n    from more_itertools.recipes import agent_a_total\\n"
    "    assert agent_a_total(range(5)) == 10\\n' >> tests/test_recipes.py"
)
B_EDIT = "printf 'Agent b was here.\\n' >> README.rst && rm tox.ini"  # agent b: a doc, a removal
PERSON_EDIT = "printf '\\n10.5.0+person\\n' >> docs/versions.rst"


def _sh(line: str, cwd: Path | str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _avfs(*args: str, cwd: Path | str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m avfs_git ARGS`` as the person runs it: served by the home's resident CLI
    server (started by the first call, as the product ships; the hermetic fixture's
    ``AVFS_SERVER=off`` dropped), so each command is a fork of a warm process and the mount
    daemons forked warm, not a cold process that spawns them (31 cold commands and 12
    daemons were ~8 s of the file's CPU; suitetime23, suitetime26)."""
    env = {k: v for k, v in os.environ.items() if k != "AVFS_SERVER"}
    return subprocess.run(
        [sys.executable, "-m", "avfs_git", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _summary(out: str) -> str:
    """pytest's last line without its time."""
    return out.strip().splitlines()[-1].rsplit(" in ", 1)[0]


def _holding(root: str, secret: bytes) -> list[str]:
    """Files under ``root`` holding ``secret``: the layers file system and the state in it
    walked too, the forks' mounts (their own files) not."""
    with open("/proc/mounts", encoding="utf-8") as fh:
        views = {line.split()[1] for line in fh if line.split()[2] == "overlay" or "fuse" in line.split()[2]}
    found = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(dirpath, d) not in views]
        for name in files:
            path = os.path.join(dirpath, name)
            if name == "layers.img" or not os.path.isfile(path) or os.path.islink(path):
                continue  # (the sparse image behind the layers file system walked above)
            with open(path, "rb") as fh:
                if secret in fh.read():
                    found.append(path)
    return found


@dataclasses.dataclass
class Oracle:
    history: Path  # the releases as a history (a work tree and its .git)
    want: str  # the project's tests' summary in a plain clone
    want_tree: str  # git's tree of the agents' and the person's work done with branches


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Oracle:
    """The history and git's side of the work, made once a module (they are the same for
    both backends; a test's were ~2 s of CPU: the history's commits, the project's tests in
    the plain clone, the branches and their merge): a plain clone of the history, its tests'
    summary, and the same work done with branches and merged."""
    root = tmp_path_factory.mktemp("realproj11")
    env = make_env(root)  # (the hermetic fixture is a test's, not yet active)
    history = realdata.history("more-itertools", VERSIONS, root / "data", aggressive=False)
    plain = root / "plain"
    git_run("clone", "-q", str(history), str(plain), env=env)
    want = _summary(_sh(" ".join(TESTS), plain, env).stdout)
    for branch, line in (("a", A_EDIT), ("b", B_EDIT)):
        git_run("switch", "-q", "-c", branch, "main", cwd=plain, env=env)
        assert _sh(f"{line} && git add -A && git commit -qm {branch}", plain, env).returncode == 0
    git_run("switch", "-q", "main", cwd=plain, env=env)
    assert _sh(f"{PERSON_EDIT} && git commit -qam person", plain, env).returncode == 0
    git_run("merge", "-q", "--no-edit", "a", "b", cwd=plain, env=env)
    return Oracle(history, want, git_run("rev-parse", "main^{tree}", cwd=plain, env=env).strip())


@pytest.mark.timeout(900)  # ~200 s a backend at a load of 27 on 2 cores (the suite's 300 s is close)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_real_history_over_basic_auth_lazily_through_agents_a_push_and_a_dead_server(
    home: Any,
    http_git: tuple[str, Path, str],
    oracle: Oracle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
) -> None:
    require_fuse()
    if backend == "overlay" and (why := mounts.overlay_available()) is not None:
        if IN_CI:
            pytest.fail(f"overlayfs must be available in CI: {why}")
        pytest.skip(f"requires overlayfs: {why}")
    url, served, password = http_git
    git("--git-dir", str(served), "fetch", "-q", str(oracle.history), "+refs/heads/*:refs/heads/*")
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant"):
        git("--git-dir", str(served), "config", key, "true")
    relay = Relay(int(url.split("127.0.0.1:", 1)[1].split("/", 1)[0]))
    url = relay.url(url)
    monkeypatch.setenv("AVFS_GIT_TOKEN", password)
    monkeypatch.setenv("AVFS_GIT_USERNAME", "agent")
    # git's side (a plain clone and the same work done with branches): the module's oracle,
    # the served history's own (the clone over HTTP is avfs's, below)
    want, want_tree = oracle.want, oracle.want_tree

    r = _avfs("--json", "vault", "clone", "--lazy", url, "p")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["lazy"] is True
    vault = os.path.join(home.path, "vaults", "p.git")
    mps = {}
    try:
        for fork in ("main", "a", "b"):
            if fork != "main":
                assert _avfs("vault", "fork", "p:main", fork).returncode == 0
            mps[fork] = tmp_path / f"mnt-{fork}"
            mps[fork].mkdir()
            r = _avfs("mount", "--backend", backend, f"p:{fork}", str(mps[fork]))
            assert r.returncode == 0, r.stderr
        mp = mps["main"]
        tests = _sh(" ".join(TESTS), mp)
        assert tests.returncode == 0 and _summary(tests.stdout) == want, tests.stdout[-2000:]
        for fork, line in (("a", A_EDIT), ("b", B_EDIT)):
            r = _avfs("--json", "--vault", f"p:{fork}", "proxy", "exec", "--shell", line)
            assert r.returncode == 0 and json.loads(r.stdout)["commit"], r.stdout[-2000:]
        assert _sh(PERSON_EDIT, mp).returncode == 0
        assert _avfs("checkpoint", "save", "-m", "person", cwd=mp).returncode == 0
        for fork in ("a", "b"):
            r = _avfs("merge", fork, cwd=mp)
            assert r.returncode == 0, r.stderr
        assert git("status", "--porcelain", cwd=mp) == ""
        r = _avfs("--json", "push", cwd=mp)
        assert r.returncode == 0, r.stdout + r.stderr
        assert git("--git-dir", str(served), "rev-parse", "main^{tree}").strip() == want_tree
        assert git("--git-dir", vault, "config", "--get-regexp", "^remote\\.").count(password) == 0
        assert _holding(home.path, password.encode()) == []

        # the server gone: what the tests read reads, what nothing read fails, nothing waits
        have = set(
            git("--git-dir", vault, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split()
        )
        unread = [
            line.split("\t", 1)[1]
            for line in git("--git-dir", vault, "ls-tree", "-r", "main", "docs").splitlines()
            if line.split()[2] not in have
        ]
        assert unread, "every file of docs/ was fetched: nothing to read with the server gone"
        relay.mode = "refuse"
        relay.cut()
        assert b"agent_a_total" in (mp / "more_itertools/recipes.py").read_bytes()
        with pytest.raises(OSError) as exc:
            (mp / unread[0]).read_bytes()
        assert exc.value.errno == 5  # EIO
        r = _avfs("--json", "cat", unread[0], cwd=mp)
        assert r.returncode == 5 and json.loads(r.stdout)["error"]["code"] == "blob_not_local"
        assert password not in r.stdout + r.stderr
        assert git("status", "--porcelain", cwd=mp) == ""
        tests = _sh(" ".join([*TESTS, "-k", "agent_a_total"]), mp)  # (the merged code, its test)
        assert tests.returncode == 0 and _summary(tests.stdout).startswith("1 passed"), tests.stdout[-2000:]
        assert (
            _sh(f"{PERSON_EDIT} && {sys.executable} -m avfs_git checkpoint save -m offline", mp).returncode
            == 0
        )
        assert _avfs("--json", "push", cwd=mp).returncode == 5
        relay.mode = "pass"
        r = _avfs("--json", "push", cwd=mp)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (
            git("--git-dir", str(served), "rev-parse", "main").strip()
            == git("--git-dir", vault, "rev-parse", "main").strip()
        )
        assert _holding(home.path, password.encode()) == []
    finally:
        for fork in mps:
            _avfs("unmount", f"p:{fork}")
        relay.close()
        _stop_servers(tmp_path)  # (the home's resident server: not left to the session's end)
