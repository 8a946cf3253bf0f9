"""polish4's leftovers (the fortieth round, h-polish5; docs/testing.md, "polish4's leftovers,
and a builder's day with a shell runtime"): the Python API's door (proxy/apidoor.py) names
a builder's wrong keyword, says its hints in the API's words (MCP in its tools'), and keeps
what git staged shown after `Workspace.remove`/`write`; a denied path that starts with a
shell variable says what to write instead. Each through real components, each checking
that nothing changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import avfs_git
from avfs_git.core.errors import ForkNotFoundError, MergeInProgressError
from avfs_git.core.operations import checkpoint, merge
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.mcp.tools import AvfsTools
from avfs_git.ops import mounts

from .test_json_schemas import validate
from .test_overlay import require_overlay

_AVFS = (sys.executable, "-m", "avfs_git")


def _door() -> None:
    """What a builder's program does first: `avfs_git.open_home` (the package's door)."""
    assert callable(avfs_git.open_home)


def _state(vault: Vault) -> tuple[Any, ...]:
    refs = subprocess.run(
        ["git", "--git-dir", vault.path, "for-each-ref", "--format=%(refname) %(objectname)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    refs = "".join(r for r in refs.splitlines(keepends=True) if not r.startswith("refs/avfs/held/"))
    return refs, sorted((c.status.value, c.path) for c in vault.workspace("main").status())


def test_a_wrong_keyword_names_the_one_meant_and_changes_nothing(home: Home) -> None:
    """`exec_in(ws, argv, timeout=60)`: Python's "unexpected keyword argument 'timeout'"
    and nothing more (polish4's trial). The door names the keyword meant and what the call
    takes, as the CLI's did-you-mean names an option; nothing ran, nothing was written."""
    _door()
    vault = home.create_vault("v")
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    before = _state(vault)
    cases = [
        (lambda: avfs_git.exec_in(ws, ["touch", "ran"], timeout=60), "exec_in", "timeout", "timeout_ms="),
        (lambda: ws.write("b.txt", text="x"), "Workspace.write", "text", "data="),
        (lambda: checkpoint.save(vault, "main", nam="x"), "checkpoint.save", "nam", "name="),
        (lambda: checkpoint.restore(vault, "main", name="HEAD"), "checkpoint.restore", "name", "rev="),
        (lambda: merge.merge(vault, "main", into="main"), "merge.merge", "into", "target="),
        (
            lambda: home.create_vault("w", from_directory="."),
            "Home.create_vault",
            "from_directory",
            "from_dir=",
        ),
    ]
    for call, name, given, meant in cases:
        with pytest.raises(TypeError) as got:
            call()
        said = str(got.value)
        assert said.startswith(
            f"{name}() got an unexpected keyword argument {given!r}: did you mean {meant}?"
        )
        assert "it takes " in said, said
    assert _state(vault) == before and not ws.exists("ran") and not ws.exists("b.txt")
    assert checkpoint.list_checkpoints(vault, "main") == [] and home.list_vaults()[0].name == "v"
    assert [v.name for v in home.list_vaults()] == ["v"]
    # a TypeError from inside a call is the call's own, as it was
    with pytest.raises(TypeError, match="must be a list of words"):
        avfs_git.exec_in(ws, "touch ran")  # type: ignore[arg-type]


def _conflicted(home: Home) -> Vault:
    vault = home.create_vault("m")
    vault.workspace("main").write("c.txt", b"0\n")
    checkpoint.save(vault, "main")
    for f in ("a", "b"):
        vault.create_fork("main", f)
        vault.workspace(f).write("c.txt", f"{f}\n".encode())
        checkpoint.save(vault, f)
    assert merge.merge(vault, "a", "main").status == "fast_forward"
    assert merge.merge(vault, "b", "main", write_conflicts=True).status == "conflicts_written"
    return vault


def test_a_hint_names_the_callers_call_not_the_clis(home: Home) -> None:
    """A checkpoint while a merge with written conflicts is open: `merge_in_progress`, whose
    hint named `avfs merge --continue` through the API and MCP too (polish4's trial). Now
    the API's call (`merge.merge_continue(vault, fork)`), MCP's tool (`merge_continue`),
    the CLI's command; nothing saved on any of them."""
    _door()
    vault = _conflicted(home)
    before = _state(vault)
    with pytest.raises(MergeInProgressError) as api:
        checkpoint.save(vault, "main")
    assert "`merge.merge_continue(vault, fork)`" in str(api.value.hint), api.value.hint
    assert "`merge.merge_abort(vault, fork)`" in str(api.value.hint) and "`avfs " not in str(api.value.hint)
    assert "finish it with `merge.merge_continue(vault, fork)`" in str(api.value), api.value
    with pytest.raises(MergeInProgressError) as mcp:
        AvfsTools(home.path).call("checkpoint_save", {"vault": "m"})
    assert mcp.value.hint == (
        "the `status` tool lists the unresolved paths; resolve them, then the `merge_continue` tool"
        " (the two-parent merge commit), or `merge_continue` with `abort: true`"
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "avfs_git",
            "--home",
            home.path,
            "--json",
            "--vault",
            "m",
            "checkpoint",
            "save",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    doc = json.loads(r.stdout)
    validate(doc)
    assert r.returncode != 0 and "`avfs merge --continue`" in doc["error"]["hint"], doc
    # a typo's fork, through the API: the close name, and the API's call that lists them
    with pytest.raises(ForkNotFoundError) as typo:
        vault.workspace("mian")
    assert typo.value.hint == "did you mean 'main'? see `home.vault('m').forks()` for its forks"
    assert _state(vault) == before


def test_a_denied_path_behind_a_variable_says_what_to_write(home: Home) -> None:
    """`proxy exec --shell 'd=out; mkdir -p $d'`: denied (`write-outside-workspace`: a
    variable may hold any path), hinted `see avfs policy check -- CMD`, which said the same
    again. Now the hint says why and what is allowed (`./$d`); nothing ran."""
    vault = home.create_vault("p")
    before = _state(vault)
    env = {**os.environ, "AVFS_SERVER": "off"}
    for line in ("d=out; mkdir -p $d", "echo x > ${d}/f"):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "avfs_git",
                "--home",
                home.path,
                "--json",
                "--vault",
                "p",
                "proxy",
                "exec",
                "--shell",
                line,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        doc = json.loads(r.stdout)
        validate(doc)
        assert r.returncode == 126 and doc["decision"]["action"] == "deny", doc
        assert doc["error"]["hint"].startswith("$d is a shell variable: where it points is known only"), doc
        assert "start the path with ./ (./$d) or $PWD/" in doc["error"]["hint"], doc
        assert doc["result"] is None
    assert _state(vault) == before and not vault.workspace("main").exists("out")


@pytest.mark.parametrize("how", ["remove", "write"])
def test_the_apis_remove_or_write_puts_back_a_staged_state_name_the_tree_stops_showing(
    home: Home, tmp_path: Path, how: str
) -> None:
    """gitmodel29's API path: `avfs rm`/`write` and MCP's `write_file` put back a staged
    entry at a name of git's own state (`src/config`) the work tree stops showing; the API's
    `Workspace.remove`/`write`, called by a program of the person's, did not, and the
    person's next plain `git commit` recorded what no work tree showed."""
    require_overlay()
    _door()
    vault = home.create_vault("g")
    ws = vault.workspace("main")
    ws.write("README", b"r\n")
    ws.write("src/config", b"[core]\n")
    checkpoint.save(vault, "main")
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend="overlay")
    try:
        env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tmp_path))

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", *args], cwd=mp, env=env, capture_output=True, text=True, check=True, timeout=120
            ).stdout

        (mp / "src" / "config").write_text("[core]\n\tstaged = by the person\n")
        git("add", "src/config")
        assert git("diff", "--cached", "--name-only", "HEAD").split() == ["src/config"]
        head = git("rev-parse", "HEAD")
        if how == "remove":
            ws.remove("src/config")
        else:
            ws.write("src/config", b"[core]\n\twritten = by the program\n")
        # the staged entry the work tree no longer shows is HEAD's again
        assert git("diff", "--cached", "--name-only", "HEAD").split() == [], how
        assert git("rev-parse", "HEAD") == head
        shown = (mp / "src" / "config").exists()
        assert shown == (how == "write")
        # a plain path is not looked at: staged, it stays
        (mp / "README").write_text("r2\n")
        git("add", "README")
        ws.write("README", b"r3\n")
        assert git("diff", "--cached", "--name-only", "HEAD").split() == ["README"]
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def test_the_hooks_deny_of_a_variable_path_says_what_to_write(tmp_path: Path) -> None:
    """The same `mkdir -p $d` through the agent hooks (Claude Code's PreToolUse, in a
    project): denied with the rule's reason alone, nothing the agent could do differently.
    Now the reason carries the same sentence; outside any workspace (where `./$d` is
    outside too) it does not."""
    proj = tmp_path / "proj"
    proj.mkdir()

    def ask(cwd: Path) -> dict[str, Any]:
        event = {
            "session_id": "s1",
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": "for d in a b; do mkdir -p $d; done"},
            "cwd": str(cwd),
        }
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "avfs_git",
                "--home",
                str(tmp_path / "home"),
                "hook",
                "claude",
                "pre-tool-use",
            ],
            input=json.dumps(event),
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "CLAUDE_PROJECT_DIR": str(proj)},
        )
        assert r.returncode == 0, r.stderr
        out: dict[str, Any] = json.loads(r.stdout)["hookSpecificOutput"]
        return out

    inside = ask(proj)
    assert inside["permissionDecision"] == "deny", inside
    assert inside["permissionDecisionReason"].endswith(
        "; $d is a shell variable: where it points is known only when the command runs, so a path"
        " it starts counts as outside the workspace; start the path with ./ (./$d) or $PWD/, or"
        " write the path itself"
    ), inside
    outside = ask(tmp_path)
    assert (
        outside["permissionDecision"] in ("deny", "ask") and "./$d" not in outside["permissionDecisionReason"]
    )
    assert sorted(p.name for p in proj.iterdir()) == []


def test_a_write_fed_a_pipe_without_stdin_names_the_option(home: Home, tmp_path: Path) -> None:
    """`avfs write README.md < resolved.md` (the trial's conflict resolution from a shell):
    `give exactly one of CONTENT, --file F or --stdin`, hint null. Now the hint names
    `--stdin` for the path given; nothing written."""
    vault = home.create_vault("w")
    vault.workspace("main").write("README.md", b"old\n")
    checkpoint.save(vault, "main")
    before = _state(vault)
    src = tmp_path / "resolved.md"
    src.write_text("new\n")
    with open(src, "rb") as fh:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "avfs_git",
                "--home",
                home.path,
                "--json",
                "--vault",
                "w",
                "write",
                "README.md",
            ],
            stdin=fh,
            capture_output=True,
            text=True,
            timeout=300,
        )
    doc = json.loads(r.stdout)
    validate(doc)
    assert r.returncode == 2 and doc["error"]["code"] == "usage", doc
    assert doc["error"]["hint"] == "to take standard input: `avfs write README.md --stdin` (or CONTENT `-`)"
    assert _state(vault) == before and vault.workspace("main").read("README.md") == b"old\n"


def test_a_revision_close_to_another_forks_checkpoint_is_named(home: Home) -> None:
    """`checkpoint restore before-risk` in agent1, where agent2 had saved `before-risky`:
    `unknown revision`, the hint what a revision may be. Now the close names, another
    fork's as FORK:NAME (and a fork's own plain); nothing moved."""
    vault = home.create_vault("r")
    vault.workspace("main").write("a.txt", b"a\n")
    checkpoint.save(vault, "main", name="first")
    vault.create_fork("main", "agent1")
    vault.create_fork("main", "agent2")
    checkpoint.save(vault, "agent2", name="before-risky")
    before = _state(vault)
    for fork, rev, meant in (
        ("agent1", "before-risk", "agent2:before-risky"),
        ("agent2", "before-risk", "before-risky"),
        ("agent1", "agnet2", "agent2"),
    ):
        r = subprocess.run(
            [*_AVFS, "--home", home.path, "--json", "--vault", f"r:{fork}", "checkpoint", "restore", rev],
            capture_output=True,
            text=True,
            timeout=300,
        )
        doc = json.loads(r.stdout)
        validate(doc)
        assert r.returncode == 1 and doc["error"]["code"] == "revision_not_found", doc
        assert doc["error"]["hint"].startswith(f"did you mean {meant!r}? use a checkpoint name"), doc
        assert doc["error"]["details"]["suggestions"][0] == meant
    assert _state(vault) == before


def test_a_projects_own_program_by_its_bare_name_says_where_it_is(home: Home) -> None:
    """`proxy exec -- tape 'test/*.js'` where tape is in the fork's node_modules/.bin and on
    no PATH: 127, `tape: No such file or directory` and nothing more. Now it says how a
    project's own program is named; nothing committed."""
    vault = home.create_vault("t")
    vault.workspace("main").write("node_modules/.bin/tape", b"#!/bin/sh\necho ran > ran.txt\n", mode=0o755)
    vault.workspace("main").write(".gitignore", b"node_modules/\n")
    checkpoint.save(vault, "main")
    before = _state(vault)
    r = subprocess.run(
        [*_AVFS, "--home", home.path, "--json", "--vault", "t", "proxy", "exec", "--", "tape", "test/*.js"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "AVFS_SERVER": "off", "PATH": "/usr/bin:/bin"},
    )
    doc = json.loads(r.stdout)
    validate(doc)
    assert r.returncode == 127 and doc["result"]["exit_code"] == 127, doc
    assert doc["result"]["stderr"] == (
        "tape: No such file or directory (on no PATH: a project's own is named by its path,"
        " ./node_modules/.bin/tape or .venv/bin/tape, or run by npx tape)\n"
    ), doc
    assert doc["commit"] is None and doc["changes"] == [], doc
    assert _state(vault) == before and not vault.workspace("main").exists("ran.txt")


def test_a_release_tarball_given_to_vault_create_says_unpack_it(home: Home, tmp_path: Path) -> None:
    """`avfs vault create mm --from minimist-1.2.8.tgz` (the tarball as npm packed it):
    click's `Invalid value for '--from': Directory '...' is a file.`, hint null (polish4 gave
    the API's `from_dir` the hint, and left the CLI's). Now the CLI says it too; no vault."""
    tgz = tmp_path / "pkg-1.0.0.tgz"
    tgz.write_bytes(b"\x1f\x8b not really\n")
    for server in ("off", "auto"):
        r = subprocess.run(
            [*_AVFS, "--home", home.path, "--json", "vault", "create", "mm", "--from", str(tgz)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "AVFS_SERVER": server},
        )
        doc = json.loads(r.stdout)
        validate(doc)
        assert r.returncode == 1 and doc["error"]["code"] == "path_not_found", doc
        assert doc["error"]["hint"].startswith(
            "unpack the archive first (`mkdir DIR && tar xf FILE -C DIR`"
        ), doc
    assert home.list_vaults() == [] and not os.path.lexists(os.path.join(home.path, "vaults", "mm.git"))
