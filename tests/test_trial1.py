"""A newcomer's day on a released npm package (minimist 1.2.8), what it found (trial1, the
thirty-fifth round; the whole list: docs/testing.md, "A newcomer's day").

A refused ``proxy exec`` said its verdict twice: ``denied by policy: denied: `rm -rf /`
matches rule ...`` and ``this command needs approval: needs approval: `git push --force
...` ...``, in the envelope's ``error.message``, the human line on stderr and the MCP
``exec`` tool's envelope alike (the policy's reason already starts with its verdict).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from . import realdata
from .conftest import run_in_process

pytestmark = pytest.mark.slow

DENY_REASON = "`rm -rf /` matches rule 'delete-outside-workspace' (deletes a path outside the workspace)"
ASK_REASON = (
    "`git push --force origin main` matches rule 'git-push-force' (rewrites or deletes history on a remote)"
)


def _avfs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def minimist(tmp_path: Path) -> str:
    """Vault ``mm`` made from minimist 1.2.8's npm tarball, with a fork ``a1``."""
    src = realdata.extract(realdata.npm_tarball("minimist", "1.2.8"), tmp_path / "src")
    assert (src / "package.json").is_file()
    for args in (["vault", "create", "mm", "--from", str(src)], ["vault", "fork", "mm", "a1"]):
        r = run_in_process(args)
        assert r.code == 0, r.err
    return "mm:a1"


def test_a_refused_exec_says_its_verdict_once_on_every_surface(minimist: str) -> None:
    denied = f"denied by policy: {DENY_REASON}"
    asked = f"this command needs approval: {ASK_REASON}"

    r = _avfs("--json", "--vault", minimist, "proxy", "exec", "--", "rm", "-rf", "/")
    assert r.returncode == 126, r.stderr
    env = json.loads(r.stdout)
    assert env["kind"] == "proxy_exec_result" and env["result"] is None
    assert env["error"]["message"] == denied
    assert env["decision"]["reason"] == f"denied: {DENY_REASON}"  # (the decision keeps its own words)

    r = _avfs("--vault", minimist, "proxy", "exec", "--", "rm", "-rf", "/")
    assert r.returncode == 126 and r.stdout == ""
    assert f"avfs: error: {denied}\n" in r.stderr, r.stderr

    r = _avfs(
        "--json", "--vault", minimist, "proxy", "exec", "--", "git", "push", "--force", "origin", "main"
    )
    assert r.returncode == 126, r.stderr
    env = json.loads(r.stdout)
    assert env["error"]["message"] == asked and env["approval"]["token"]

    from avfs_git.mcp import AvfsTools

    tools = AvfsTools(None, minimist)
    env = json.loads(tools.call("exec", {"shell": "rm -rf /"}))
    assert env["error"]["message"] == denied
    env = json.loads(tools.call("exec", {"argv": ["git", "push", "--force", "origin", "main"]}))
    assert env["error"]["message"] == asked
