"""The rough edges trial1's newcomer met (polish1, the thirty-fifth round; the list:
docs/testing.md, "A newcomer's day"), on real projects' files, through real `avfs` processes
and a real MCP server where the surface is the point:

- `vault fork` said `(what git ignores came along copy-on-write)` of every fork, also of a
  source with nothing ignored, and once `a snapshot of fork main was being taken for its
  next fork: its changes were copied` of a clean main: the machinery's, not the person's;
- `push --tags` was "checkpoints as tags" only (refused without --checkpoints): the tags of
  an imported history could only be pushed by `git push` on the vault;
- the op log named a `proxy exec`'s commit `checkpoint <id> on <fork>` (CLI, --json, API,
  MCP `undo`'s `undone`): it is an `exec` now, with the call's `exec_id`;
- `avfs log --limit 3` was click's bare "No such option" (MCP's and the API's name), and
  `-n -1` said "'--max-count=1' is not a valid integer";
- `avfs doctor` read every object twice (git fsck --strict, then avfs' own reads): 14-18 s
  on five small vaults; the default checks connectivity, `--full` reads them all.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from . import realdata

# the home's warm CLI server, as a user's (tests/conftest.py, warm_cli): its calls are the CLI's, not its start
pytestmark = [pytest.mark.slow, pytest.mark.warm_cli]

FORK_LINE = re.compile(r"forked (\w+):(\w+) -> \1:(\w+) at [0-9a-f]{12}\n")


def _avfs(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def _ok(*args: str) -> subprocess.CompletedProcess[str]:
    r = _avfs(*args)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


@pytest.fixture
def minimist(tmp_path: Path) -> str:
    """Vault ``mm`` made from minimist 1.2.8's npm tarball."""
    src = realdata.extract(realdata.npm_tarball("minimist", "1.2.8"), tmp_path / "src")
    _ok("vault", "create", "mm", "--from", str(src))
    return "mm"


@pytest.fixture
def markupsafe(tmp_path: Path) -> Path:
    """MarkupSafe 2.1.2 ... 2.1.5 as a git history, a tag on each release (v2.1.2 ...)."""
    return realdata.history("MarkupSafe", ["2.1.2", "2.1.3", "2.1.4", "2.1.5"], tmp_path, aggressive=False)


def test_a_fork_says_only_what_is_true(minimist: str) -> None:
    # forks of a clean main one after another (the second meets the first's snapshot for
    # the next fork being made, where layers are): nothing said of ignored paths
    for new in ("a1", "a2", "a3"):
        r = _ok("vault", "fork", "mm", new)
        assert FORK_LINE.fullmatch(r.stdout) and FORK_LINE.fullmatch(r.stdout).group(3) == new, r.stdout
        assert r.stderr == ""
    _ok("--vault", "mm:a1", "write", "notes.txt", "mine")
    r = _ok("vault", "fork", "mm:a1", "b1")
    line = r.stdout.removesuffix("\n")
    assert line.startswith("forked mm:a1 -> mm:b1 at "), r.stdout
    assert "snapshot" not in line and "copy-on-write" not in line and "next fork" not in line, line
    # a copy of the source's changes, where it is one, says so (no layers: always a copy)
    tail = line.split(" at ", 1)[1][12:]
    assert tail in ("", " (its uncheckpointed changes were copied, what git ignores included)"), line
    assert _ok("--vault", "mm:b1", "cat", "notes.txt").stdout == "mine"
    r = _ok("vault", "fork", "--no-ignored", "mm", "c1")
    assert r.stdout.endswith(" (what git ignores was left out)\n"), r.stdout
    # --json: the one document on stdout, nothing on stderr; how it was carried stays in it
    r = _ok("--json", "vault", "fork", "mm", "d1")
    doc = json.loads(r.stdout)
    assert doc["kind"] == "fork_create" and doc["ignored"]["mode"] in ("snapshot", "copied"), doc
    assert r.stderr == ""


def test_push_tags_pushes_the_vaults_tags_as_git_does(markupsafe: Path, tmp_path: Path) -> None:
    _ok("vault", "clone", str(markupsafe), "ms")
    server = tmp_path / "server.git"
    subprocess.run(["git", "init", "-q", "--bare", str(server)], check=True)
    _ok("--vault", "ms", "remote", "add", "server", str(server))  # (origin: the history cloned)
    vault = _ok("vault", "path", "ms").stdout.strip()
    ours = subprocess.run(
        ["git", "--git-dir", vault, "show-ref", "--tags"], capture_output=True, text=True
    ).stdout
    assert len(ours.splitlines()) == 4, ours

    r = _avfs("--json", "--vault", "ms", "push", "server", "--tags")
    assert r.returncode == 0, r.stdout + r.stderr
    moved = {u["ref"] for u in json.loads(r.stdout)["result"]["updates"]}
    assert moved == {"refs/heads/main", *(f"refs/tags/v2.1.{i}" for i in (2, 3, 4, 5))}, moved
    there = subprocess.run(
        ["git", "--git-dir", str(server), "show-ref", "--tags"], capture_output=True, text=True
    )
    assert there.stdout == ours
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "-b", "main", str(server), str(clone)], check=True)
    assert subprocess.run(["git", "tag"], cwd=clone, capture_output=True, text=True).stdout.split() == [
        "v2.1.2", "v2.1.3", "v2.1.4", "v2.1.5",
    ]  # fmt: skip

    # a tag the server holds at another commit is never moved (as git's push --tags): refused,
    # nothing changed there
    subprocess.run(
        ["git", "--git-dir", str(server), "tag", "-f", "v2.1.5", "v2.1.2"], check=True, capture_output=True
    )
    before = subprocess.run(
        ["git", "--git-dir", str(server), "show-ref"], capture_output=True, text=True
    ).stdout
    r = _avfs("--json", "--vault", "ms", "push", "server", "--tags")
    assert r.returncode == 5, r.stdout + r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "remote_rejected" and err["details"]["reason"] == "already_exists", err
    assert err["details"]["ref"] == "refs/tags/v2.1.5" and "never moves a tag" in err["hint"], err
    assert (
        subprocess.run(["git", "--git-dir", str(server), "show-ref"], capture_output=True, text=True).stdout
        == before
    )


def _exec_commit(target: str, command: str) -> dict[str, Any]:
    r = _avfs("--json", "--vault", target, "proxy", "exec", "--shell", command)
    assert r.returncode == 0, r.stdout + r.stderr
    env = json.loads(r.stdout)
    assert env["commit"] is not None, env
    return env


def test_the_op_log_names_an_execs_commit_an_exec(minimist: str) -> None:
    _ok("vault", "fork", "mm", "a1")
    env = _exec_commit("mm:a1", "echo built > out.txt")
    commit = env["commit"]["commit"]

    r = _ok("--vault", "mm:a1", "op", "log", "-n", "1")
    m = re.search(
        r" exec +exec (audit:[0-9]+) on a1: echo built > out.txt \(commit ([0-9a-f]{12})\)\n", r.stdout
    )
    assert m is not None and commit.startswith(m.group(2)), r.stdout
    assert "checkpoint" not in r.stdout
    (op,) = json.loads(_ok("--json", "--vault", "mm:a1", "op", "log", "-n", "1").stdout)["operations"]
    assert op["kind"] == "exec" and op["exec_id"] == m.group(1), op
    assert op["refs"][0]["new"] == commit

    import avfs_git

    (api_op,) = avfs_git.open_home().vault("mm").oplog.recent(1)
    assert (api_op.kind, api_op.exec_id, api_op.summary) == ("exec", op["exec_id"], op["summary"])
    # a checkpoint is still a checkpoint
    _ok("--vault", "mm:a1", "write", "n.txt", "x")
    _ok("--vault", "mm:a1", "checkpoint", "save")
    (cp,) = json.loads(_ok("--json", "--vault", "mm:a1", "op", "log", "-n", "1").stdout)["operations"]
    assert cp["kind"] == "checkpoint" and cp["exec_id"] is None, cp
    # undo takes the exec back as it took the checkpoint
    _ok("--vault", "mm:a1", "undo")
    r = _ok("--json", "--vault", "mm:a1", "undo")
    assert json.loads(r.stdout)["undone"]["kind"] == "exec"
    head = json.loads(_ok("--json", "--vault", "mm:a1", "log", "-n", "1").stdout)["commits"][0]
    assert head["id"] != commit  # (its changes stay uncheckpointed, as a checkpoint's undo leaves them)


def test_mcp_undo_of_an_exec_says_exec(minimist: str) -> None:
    import avfs_git

    from .test_mcp import ok, serve

    home = avfs_git.open_home()
    _ok("vault", "fork", "mm", "m1")

    async def body(session: Any) -> None:
        ran = await ok(session, "exec", vault="mm:m1", shell="echo from-mcp > mcp.txt")
        assert ran["commit"] is not None, ran
        undone = (await ok(session, "undo", vault="mm"))["undone"]
        assert undone["kind"] == "exec" and re.fullmatch(r"audit:[0-9]+", undone["exec_id"]), undone
        assert undone["summary"].startswith(f"exec {undone['exec_id']} on m1: echo from-mcp > mcp.txt")

    serve(home, body)


def test_log_takes_limit_as_mcp_and_the_api_name_it(markupsafe: Path) -> None:
    _ok("vault", "clone", str(markupsafe), "ms")
    one = _ok("--vault", "ms", "log", "-n", "2", "--oneline").stdout
    assert len(one.splitlines()) == 2
    for args in (["--limit", "2"], ["--limit=2"], ["--max-count", "2"], ["-2"]):
        assert _ok("--vault", "ms", "log", *args, "--oneline").stdout == one, args
    doc = json.loads(_ok("--json", "--vault", "ms", "log", "--limit", "1").stdout)
    assert [c["message"] for c in doc["commits"]] == ["MarkupSafe 2.1.5\n"], doc
    assert (
        len(json.loads(_ok("--json", "--vault", "ms", "op", "log", "--limit", "1").stdout)["operations"]) == 1
    )
    got = json.loads(_ok("--json", "--vault", "ms", "checkpoint", "list", "--all", "--limit", "3").stdout)
    assert len(got["checkpoints"]) == 3
    # a bad value: a clear error naming the option, not click's bare "No such option"
    r = _avfs("--vault", "ms", "log", "--limit", "x")
    assert r.returncode == 2 and "'--limit': 'x' is not a valid integer" in r.stderr, r.stderr
    r = _avfs("--vault", "ms", "log", "-n", "-1")
    assert r.returncode == 2 and r.stderr.startswith("avfs: error: -n/--max-count/--limit takes a number")
    r = _avfs("--json", "--vault", "ms", "log", "-n", "-1")
    assert r.returncode == 2 and r.stderr == ""
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "usage" and err["details"] == {"limit": -1}, err
    # the other names the MCP tools give: undo's op_id, changes_since's cursor
    r = _avfs("--json", "--vault", "ms", "undo", "--op-id", "999")
    assert json.loads(r.stdout)["error"]["code"] != "usage", r.stdout
    r = _avfs("--json", "--vault", "ms", "watch", "--once", "--cursor", "nonsense")
    assert json.loads(r.stdout)["error"]["code"] == "cursor_invalid", r.stdout


def test_doctor_checks_connectivity_by_default_and_reads_every_object_with_full(
    markupsafe: Path, minimist: str
) -> None:
    _ok("vault", "clone", str(markupsafe), "ms")
    doc = json.loads(_ok("--json", "doctor").stdout)
    assert doc["ok"] and doc["full"] is False and sorted(doc["vaults"]) == ["mm", "ms"], doc
    doc = json.loads(_ok("--json", "doctor", "--full").stdout)
    assert doc["ok"] and doc["full"] is True, doc
    # a blob changed in place (a loose copy of a packed one, its bytes another's): the
    # connectivity check does not read blobs; --full names it
    vault = Path(_ok("vault", "path", "ms").stdout.strip())
    blob = subprocess.run(
        ["git", "--git-dir", str(vault), "rev-parse", "v2.1.2:README.rst"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    other = subprocess.run(
        ["git", "--git-dir", str(vault), "rev-parse", "v2.1.2:setup.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # (the blobs are packed: a loose copy is what git and avfs read first)
    loose_other = subprocess.run(
        ["git", "--git-dir", str(vault), "cat-file", "blob", other], capture_output=True, check=True
    ).stdout
    import zlib

    data = zlib.compress(b"blob %d\0" % len(loose_other) + loose_other)
    path = vault / "objects" / blob[:2] / blob[2:]
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    assert json.loads(_ok("--json", "doctor").stdout)["ok"]
    r = _avfs("--json", "doctor", "--full")
    assert r.returncode == 1, r.stdout
    found = json.loads(r.stdout)["findings"]
    assert any(f["vault"] == "ms" and f["check"] in ("fsck", "objects") for f in found), found
    assert any(blob in f["problem"] for f in found), found
    path.unlink()  # (the suite's own fsck of every vault at the end)
    assert json.loads(_ok("--json", "doctor", "--full").stdout)["ok"]
