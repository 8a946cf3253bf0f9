"""An agent builder's day on a released project (more-itertools 10.7.0's sdist), what it
found (trial2, the thirty-seventh round; the whole list: docs/testing.md, "A builder's day,
again"), each through real `avfs` processes (or a real MCP server where the surface is the
point):

- on a fork not mounted yet (the call goes through click), `proxy exec -q -- sh -c ...`
  ran a program `-q` (exit 127, a mount made for it), `proxy exec echo -- hi` ran
  `echo -- hi`, and `policy check -q -- rm -rf /` answered "allowed" of a program `-q`:
  click keeps what it does not know before the `--` as the command's first words, where a
  mounted fork's call refused each as bad usage;
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from . import realdata

# the home's warm CLI server, as a user's (tests/conftest.py, warm_cli): its calls are the CLI's, not its start
pytestmark = [pytest.mark.slow, pytest.mark.warm_cli]


def _avfs(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def _ok(*args: str) -> subprocess.CompletedProcess[str]:
    r = _avfs(*args)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


@pytest.fixture
def mi(tmp_path: Path) -> str:
    """Vault ``mi`` made from more-itertools 10.7.0's sdist."""
    src = realdata.extract(realdata.pypi_sdist("more-itertools", "10.7.0"), tmp_path / "src")
    assert (src / "more_itertools" / "more.py").is_file()
    _ok("vault", "create", "mi", "--from", str(src))
    return "mi"


def _state(spec: str) -> tuple[str, str, str]:
    """What a refused call must leave as it was: the fork's tip, its status, its audit log."""
    tip = json.loads(_ok("--json", "--vault", spec, "log", "-n", "1").stdout)["commits"][0]["id"]
    status = _ok("--vault", spec, "status").stdout
    return tip, status, _ok("--vault", spec, "audit").stdout


@pytest.mark.parametrize("server", ["auto", "off"])
def test_words_before_the_dashdash_are_refused_on_a_fork_not_mounted(
    mi: str, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (a person's calls are served by the home's warm CLI server, through click: "auto", the
    # default; the suite's own default is "off", where a call parses on the fast path)
    monkeypatch.setenv("AVFS_SERVER", server)
    cases = [
        (["-q", "--", "sh", "-c", "echo 1 > w.txt"], "no such option: -q"),
        (
            ["--timout-ms", "5", "--", "sh", "-c", "echo 1 > w.txt"],
            "no such option: --timout-ms (did you mean --timeout-ms?)",
        ),
        (["sh", "--", "-c", "echo 1 > w.txt"], "put `--` before the command"),
    ]
    for n, (args, said) in enumerate(cases):
        fork = f"t{n}"
        _ok("vault", "fork", mi, fork)  # (a new fork: nothing mounted, the call goes through click)
        spec = f"{mi}:{fork}"
        before = _state(spec)
        r = _avfs("--json", "--vault", spec, "proxy", "exec", *args)
        assert r.returncode == 125, (args, r.stdout, r.stderr)
        env = json.loads(r.stdout)
        assert env["kind"] == "proxy_exec_result" and env["result"] is None, env
        assert env["error"]["code"] == "usage" and env["error"]["message"] == said, env["error"]
        assert r.stderr == ""
        r = _avfs("--vault", spec, "proxy", "exec", *args)
        assert r.returncode == 125 and r.stdout == "", (args, r.stdout, r.stderr)
        assert f"avfs: error: {said}\n" in r.stderr, r.stderr
        assert _state(spec) == before  # nothing ran, nothing recorded
        mounted = json.loads(_ok("--json", "mount", "--list").stdout)
        assert spec not in json.dumps(mounted), mounted  # and nothing was mounted for it
    # a command after the `--` keeps its own `--` and options
    r = _ok(
        "--vault",
        f"{mi}:t0",
        "proxy",
        "exec",
        "--quiet",
        "--",
        "sh",
        "-c",
        'echo "$@"',
        "sh",
        "-q",
        "--",
        "x",
    )
    assert r.stdout == "-q -- x\n", r.stdout


def test_policy_check_refuses_an_unknown_option_rather_than_explain_it(
    mi: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVFS_SERVER", "auto")
    r = _avfs("--vault", mi, "policy", "check", "-q", "--", "rm", "-rf", "/")
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.startswith("avfs: error: no such option: -q\n"), r.stderr
    r = _avfs("--json", "--vault", mi, "policy", "check", "--cwdd", "src", "--", "rm", "-rf", "/")
    assert r.returncode == 2 and r.stderr == ""
    doc = json.loads(r.stdout)
    assert doc["error"]["message"] == "no such option: --cwdd (did you mean --cwd?)", doc
    r = _avfs("--vault", mi, "policy", "check", "--", "rm", "-rf", "/")
    assert r.returncode == 0 and r.stdout.startswith("denied: `rm -rf /`"), r.stdout


def _quoted(hint: str, starting: str) -> list[str]:
    """The command a hint quotes (between backticks) that starts with ``starting``, as argv."""
    for part in hint.split("`")[1::2]:
        if part.startswith(starting):
            return part.split()[1:]  # (no quoting in these: names of vaults and forks)
    raise AssertionError(f"no `{starting}...` in {hint!r}")


def test_the_hints_that_name_vault_delete_name_a_command_that_deletes(mi: str) -> None:
    _ok("vault", "fork", mi, "a1")
    r = _avfs("--json", "vault", "fork", mi, "a1")
    hint = json.loads(r.stdout)["error"]["hint"]
    assert r.returncode == 1 and "`avfs vault delete mi:a1 --force` first (undoable)" in hint, hint
    # the refusal without --force names the command that deletes, and leaves the fork
    r = _avfs("--json", "vault", "delete", "mi:a1")
    err = json.loads(r.stdout)["error"]
    assert r.returncode == 2 and err["message"] == "refusing to delete fork mi:a1 without --force", err
    assert (
        err["hint"] == "`avfs vault delete mi:a1 --force` (it stays recoverable with `avfs --vault mi undo`)"
    )
    assert "a1" in _ok("--vault", mi, "vault", "info").stdout
    r = _ok(*_quoted(err["hint"], "avfs vault delete"))
    assert r.stderr.startswith("deleted fork mi:a1 (undo: ")
    _ok(*_quoted(err["hint"], "avfs --vault mi undo"))  # and the undo it names brings it back
    assert _ok("--vault", "mi:a1", "status").stdout.startswith("on mi:a1 at ")
    # a vault that exists: its hint's command deletes it, `vault restore` brings it back
    r = _avfs("--json", "vault", "create", mi)
    hint = json.loads(r.stdout)["error"]["hint"]
    assert r.returncode == 1 and "`avfs vault delete mi --force` first" in hint, hint
    _ok(*_quoted(hint, "avfs vault delete"))
    assert _avfs("--vault", mi, "status").returncode == 1
    _ok(*_quoted(hint, "avfs vault restore"))
    assert _ok("--vault", "mi:a1", "status").returncode == 0


def _conflicting_merge(mi: str) -> None:
    """Forks a1 and a2 set ``__version__`` two ways; a1 goes into main, a2's merge into main
    leaves its conflicts written, open."""
    for fork, version in (("a1", "10.7.1"), ("a2", "10.8.0")):
        _ok("vault", "fork", mi, fork)
        init = _ok("--vault", f"{mi}:{fork}", "cat", "more_itertools/__init__.py").stdout
        assert "__version__ = '10.7.0'" in init
        _ok("--vault", f"{mi}:{fork}", "write", "more_itertools/__init__.py", init.replace("10.7.0", version))
        _ok("--vault", f"{mi}:{fork}", "checkpoint", "save", f"to-{version}")
    _ok("--vault", mi, "merge", "a1")
    r = _avfs("--vault", mi, "merge", "a2", "--write-conflicts")
    assert r.returncode == 3, (r.stdout, r.stderr)


def test_status_of_a_merge_whose_conflicts_are_all_resolved_says_continue(mi: str) -> None:
    _conflicting_merge(mi)
    r = _ok("--vault", f"{mi}:main", "status")
    assert "1 path(s) unresolved\n  unresolved: more_itertools/__init__.py\n" in r.stdout, r.stdout
    assert "resolve them, then `avfs merge --continue` (or `avfs merge --abort`)\n" in r.stdout
    text = _ok("--vault", f"{mi}:main", "cat", "more_itertools/__init__.py").stdout
    assert "<<<<<<< ours" in text
    resolved = text.split("<<<<<<<")[0] + "__version__ = '10.8.0'\n"
    _ok("--vault", f"{mi}:main", "write", "more_itertools/__init__.py", resolved)
    r = _ok("--vault", f"{mi}:main", "status")
    assert "merging a2 (" in r.stdout and "0 path(s) unresolved\n" in r.stdout, r.stdout
    assert "resolve them" not in r.stdout, r.stdout
    assert (
        "all resolved: `avfs merge --continue` makes the merge commit (or `avfs merge --abort`)\n" in r.stdout
    )
    # a checkpoint is still refused (the merge is open), and says what is left to do
    tip = _state(f"{mi}:main")[0]
    r = _avfs("--json", "--vault", f"{mi}:main", "checkpoint", "save")
    err = json.loads(r.stdout)["error"]
    assert r.returncode == 75 and err["code"] == "merge_in_progress", err
    assert "(0 path(s) unresolved)" in err["message"]
    assert err["hint"] == (
        "every path is resolved: `avfs merge --continue` (the two-parent merge commit), or `avfs merge --abort`"
    )
    assert _state(f"{mi}:main")[0] == tip
    _ok("--vault", mi, "merge", "--continue")
    parents = json.loads(_ok("--json", "--vault", mi, "log", "-n", "1").stdout)["commits"][0]["parents"]
    assert len(parents) == 2 and parents[0] == tip


def test_mcp_errors_hint_at_tools_not_at_cli_commands(mi: str) -> None:
    """Through the SDK's client: an unknown fork, vault or revision was hinted with CLI
    commands (`see \\`avfs --vault mi vault info\\` for its forks`) an agent with only the
    server cannot run; the hint names the tool that lists them, and the tool works."""
    import avfs_git

    from .test_mcp import fails, ok, serve

    home = avfs_git.open_home()

    async def body(session: Any) -> None:
        for tool, args in (
            ("status", {"fork": "nosuch"}),
            ("exec", {"argv": ["true"], "vault": "mi:nosuch"}),
        ):
            err = await fails(session, tool, args, "fork_not_found")
            assert err["hint"] == "the fork_list tool lists the vault's forks; the fork tool makes one", err
        assert [f["name"] for f in (await ok(session, "fork_list", vault="mi"))["forks"]] == ["main"]
        err = await fails(session, "status", {"vault": "nosuch"}, "vault_not_found")
        assert err["hint"].startswith("the vault_list tool lists the vaults (this server makes none:"), err
        assert [v["name"] for v in (await ok(session, "vault_list"))["vaults"]] == ["mi"]
        for tool in ("checkpoint_restore", "diff", "log"):
            key = "old" if tool == "diff" else "rev"
            err = await fails(session, tool, {"vault": "mi", key: "nosuch"}, "revision_not_found")
            assert "avfs " not in err["hint"] and "checkpoint_list tool" in err["hint"], err
        assert len((await ok(session, "log", vault="mi", all=True))["commits"]) == 1
        assert (await ok(session, "status", vault="mi"))["clean"]  # (nothing changed by any)

    serve(home, body)


def test_a_mistyped_command_is_told_the_close_ones(mi: str) -> None:
    """`avfs statsu` was click's bare "No such command 'statsu'." where `avfs vault craete`
    named `create`: click names close commands among those it holds, and avfs's top-level
    ones are imported only when run."""
    before = _state(mi)
    r = _avfs("--vault", mi, "statsu")
    assert r.returncode == 2 and r.stdout == ""
    assert "Error: No such command 'statsu'. (Did you mean one of: 'stat', 'stats', 'status'?)\n" in r.stderr
    r = _avfs("--json", "--vault", mi, "cehckpoint", "save")
    assert r.returncode == 2 and r.stderr == ""
    err = json.loads(r.stdout)["error"]
    assert err["message"] == "No such command 'cehckpoint'. (Did you mean one of: 'checkout', 'checkpoint'?)"
    r = _avfs("--vault", mi, "xyzzy")  # (nothing close: nothing named)
    assert r.returncode == 2 and "Error: No such command 'xyzzy'.\n" in r.stderr, r.stderr
    assert _state(mi) == before
