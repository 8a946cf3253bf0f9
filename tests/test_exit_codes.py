"""`proxy exec`: one ``proxy_exec_result`` envelope on every path, and exit codes a caller can
read without parsing it (docs/proxy.md, Exit codes).

The command's own code whenever it ran (124 when avfs's timeout stopped it); when it did not
run, 126 = the policy refused it (denied, approval required, a refused token), 125 = avfs
itself failed (no such vault or fork, bad arguments, bad cwd or timeout, a malformed policy).
Everything here runs ``python -m avfs_git`` as a real process, through the fast path an
agent's call takes; one test drives the click command, which the fast path hands help to.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault

from .conftest import CliResult
from .test_json_schemas import validate

MAT = ("--mode", "materialized")  # no mount needed: the same envelope, faster


@pytest.fixture
def v(vault: Vault) -> Vault:
    ws = vault.workspace("main")
    ws.write("f.txt", b"f\n")
    ws.mkdir("sub")
    checkpoint.save(vault)
    return vault


def envelope(r: CliResult) -> dict[str, Any]:
    """The one document on stdout: a valid proxy_exec_result whose exit_code is the process'."""
    doc = r.json()
    assert validate(doc) == "proxy_exec_result", doc
    assert doc["exit_code"] == r.code, (r.code, doc)
    return doc


def not_run(r: CliResult, code: str) -> dict[str, Any]:
    """avfs failed before the command could run: exit 125, the error's code, nothing ran."""
    doc = envelope(r)
    assert r.code == 125 and doc["error"]["code"] == code, (r.code, doc)
    assert doc["result"] is None and not doc["success"] and doc["commit"] is None, doc
    return doc


def _unchanged(home: Home, vault: Vault) -> tuple[str | None, int]:
    """The fork's head and the audit log's length: a refused request changes neither."""
    from avfs_git.core.store import refs
    from avfs_git.core.vaults import audit

    return refs.read_ref(vault.store, refs.fork_ref("main")), len(audit.read(vault.state_dir))


# -- every failure path: one envelope, exit 125 ---------------------------------------------
def test_missing_vault_and_fork_give_an_envelope(cli_proc, v, home):
    before = _unchanged(home, v)
    doc = not_run(
        cli_proc("--json", "--vault", "nosuch", "proxy", "exec", *MAT, "--", "true"), "vault_not_found"
    )
    assert doc["request"]["vault"] == "nosuch" and doc["request"]["fork"] is None
    assert doc["request"]["argv"] == ["true"] and doc["request"]["mode"] == "materialized"
    doc = not_run(cli_proc("--json", "--vault", "v:nofork", "proxy", "exec", "--", "true"), "fork_not_found")
    assert doc["request"]["vault"] == "v" and doc["request"]["fork"] == "nofork"
    # a name that is not a valid vault name is reported as null, the reason in the error
    doc = not_run(cli_proc("--json", "--vault", "a/b", "proxy", "exec", "--", "true"), "invalid_name")
    assert doc["request"]["vault"] is None
    # no vault selected at all (a home without vaults)
    doc = not_run(cli_proc("--json", "--home", home.path + "-empty", "proxy", "exec", "--", "true"), "usage")
    assert doc["request"]["vault"] is None and "no vault selected" in doc["error"]["message"]
    assert _unchanged(home, v) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ls"], "put `--` before the command"),
        (["--bogus", "--", "true"], "no such option: --bogus"),
        # a global option after the command (it named none of this: the newcomer's `--json`)
        (
            ["--json", "--", "true"],
            "no such option: --json (--json is a global option: avfs --json ... proxy exec ...)",
        ),
        (["--timeout-ms", "abc", "--", "true"], "--timeout-ms: 'abc' is not a whole number"),
        (["--mode", "bogus", "--", "true"], "--mode must be one of auto, fuse, materialized, not 'bogus'"),
        (["--checkpoint=never", "--", "true"], "--checkpoint must be one of auto, always, not 'never'"),
        (["--cwd"], "--cwd needs a value"),
        (["--no-commit=yes", "--", "true"], "--no-commit takes no value"),
        (["--env", "NOEQUALS", "--", "true"], "--env 'NOEQUALS': use NAME=VALUE"),
        (["--shell", "true", "--", "true"], "give either a command after `--` or --shell, not both"),
        ([], "no command"),
        (["--"], "no command"),
        (["--readonly-host", "--hide-host", "--", "true"], "give --readonly-host or --hide-host, not both"),
        (["--timeout-ms", "0", *MAT, "--", "true"], "--timeout-ms must be positive"),
        (["--timeout-ms", "-5", *MAT, "--", "true"], "--timeout-ms must be positive"),
        (["--approve", "apv_x", *MAT, "--", "true"], "--approve given for a command that needs no approval"),
    ],
)
def test_bad_arguments_give_an_envelope(cli_proc, v, home, args, message):
    before = _unchanged(home, v)
    doc = not_run(cli_proc("--json", "--vault", "v", "proxy", "exec", *args), "usage")
    assert doc["error"]["message"] == message, doc
    assert doc["request"]["vault"] == "v"
    assert _unchanged(home, v)[0] == before[0]  # nothing committed


@pytest.mark.parametrize(
    ("cwd", "code"),
    [
        ("nodir", "usage"),
        ("/abs", "usage"),
        ("../x", "invalid_path"),
        ("f.txt", "usage"),
        (".git", "invalid_path"),
    ],
)
def test_a_bad_cwd_gives_an_envelope(cli_proc, v, cwd, code):
    doc = not_run(cli_proc("--json", "--vault", "v", "proxy", "exec", *MAT, "--cwd", cwd, "--", "true"), code)
    assert doc["request"]["cwd"] == cwd


def test_a_malformed_policy_gives_an_envelope(cli_proc, v, home):
    Path(home.path, "policy.toml").write_text("version = 1\n[[rules]]\nname = 'x'\nclasses = ['nonsense']\n")
    doc = not_run(cli_proc("--json", "--vault", "v", "proxy", "exec", *MAT, "--", "true"), "policy_invalid")
    assert "policy.toml" in doc["error"]["message"]
    Path(home.path, "policy.toml").write_text("this is not toml [")
    not_run(cli_proc("--json", "--vault", "v", "proxy", "exec", *MAT, "--", "true"), "policy_invalid")


def test_human_output_of_a_failure(cli_proc, v):
    r = cli_proc("--vault", "nosuch", "proxy", "exec", "--", "true")
    assert r.code == 125 and r.out == ""
    # nothing was decided and nothing ran: the error is the first line (no summary before it)
    assert r.err.splitlines()[0] == f"avfs: error: no vault named 'nosuch' in {os.environ['AVFS_HOME']}", (
        r.err
    )
    r = cli_proc("--vault", "v", "proxy", "exec", "--mode")
    assert r.code == 125 and r.err.startswith("avfs: error: --mode needs a value\n")


def test_help_is_still_help(cli_proc, v):
    r = cli_proc("--vault", "v", "proxy", "exec", "--help")
    assert r.code == 0 and "Usage: avfs proxy exec" in r.out and "126" in r.out


def test_the_click_command_answers_with_an_envelope_too(v, capsys):
    """The click CLI's `proxy exec` (where the fast path hands help to): the same envelopes."""
    from avfs_git.cli.main import main

    for args, code in (
        (["--timeout-ms", "abc", "--", "true"], "usage"),
        (["ls"], "usage"),
        (["--", "true"], "vault_not_found"),
    ):
        spec = "nosuch" if code == "vault_not_found" else "v"
        rc = main(["--json", "--vault", spec, "proxy", "exec", *args])
        out = capsys.readouterr().out
        doc = CliResult(rc, out, "", out.encode()).json()
        assert validate(doc) == "proxy_exec_result" and rc == doc["exit_code"] == 125, doc
        assert doc["error"]["code"] == code and doc["result"] is None, doc


def test_ctrl_c_before_the_command_is_an_envelope_in_the_click_command(v, capsys, monkeypatch):
    """Ctrl-C while the click command plans (the resident server runs a first call on a fork
    that is not mounted there): the envelope the fast path answers with, nothing run."""
    from avfs_git.cli.main import main
    from avfs_git.proxy import admission

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(admission, "plan", interrupted)
    tip = v.workspace("main").tip()
    rc = main(["--json", "--vault", "v:main", "proxy", "exec", *MAT, "--", "touch", "x"])
    out = capsys.readouterr().out
    doc = CliResult(rc, out, "", out.encode()).json()
    assert validate(doc) == "proxy_exec_result" and rc == doc["exit_code"], doc
    assert doc["error"]["code"] == "interrupted" and doc["result"] is None, doc
    assert doc["request"]["vault"] == "v" and doc["request"]["fork"] == "main", doc
    assert v.workspace("main").tip() == tip and not v.workspace("main").exists("x")


# -- exit codes: the child's own whenever it ran --------------------------------------------
@pytest.mark.parametrize("child", [0, 1, 2, 4, 6, 70, 124, 125, 126, 127])
def test_the_childs_own_code_is_passed_through(cli_proc, v, child):
    r = cli_proc("--json", "--vault", "v", "proxy", "exec", *MAT, "--", "sh", "-c", f"exit {child}")
    doc = envelope(r)
    assert r.code == child and doc["result"]["exit_code"] == child and not doc["result"]["timed_out"], doc
    assert doc["decision"]["action"] == "allow" and doc["error"] is None and doc["success"] == (child == 0)


def test_timeout_is_124(cli_proc, v):
    r = cli_proc("--json", "--vault", "v", "proxy", "exec", *MAT, "--timeout-ms", "300", "--", "sleep", "30")
    doc = envelope(r)
    assert r.code == 124 and doc["result"]["timed_out"], doc


def test_refusals_are_126_and_say_which(cli_proc, v, home):
    before = _unchanged(home, v)
    denied = cli_proc("--json", "--vault", "v", "proxy", "exec", *MAT, "--", "rm", "-rf", "/")
    doc = envelope(denied)
    assert denied.code == 126 and doc["decision"]["action"] == "deny" and doc["result"] is None, doc
    assert doc["error"]["code"] == "policy_denied"
    asked = cli_proc("--json", "--vault", "v", "proxy", "exec", *MAT, "--", "curl", "https://example.com")
    doc = envelope(asked)
    assert asked.code == 126 and doc["decision"]["action"] == "require_approval" and doc["result"] is None
    assert doc["error"]["code"] == "approval_required" and doc["approval"]["token"].startswith("apv_")
    forged = "apv_" + "0" * 32
    refused = cli_proc(
        "--json",
        "--vault",
        "v",
        "proxy",
        "exec",
        *MAT,
        "--approve",
        forged,
        "--",
        "curl",
        "https://example.com",
    )
    doc = envelope(refused)
    assert refused.code == 126 and doc["decision"]["action"] == "require_approval", doc
    assert doc["error"]["code"] == "approval_refused" and doc["result"] is None
    assert _unchanged(home, v)[0] == before[0]
    # the human line says which refusal it was
    r = cli_proc("--vault", "v", "proxy", "exec", *MAT, "--", "rm", "-rf", "/")
    assert r.code == 126 and r.out == ""
    first = r.err.splitlines()[0]
    assert first.startswith("avfs: deny (") and first.endswith("not run: refused by the policy (exit 126)"), (
        r.err
    )
    r = cli_proc("--vault", "v", "proxy", "exec", *MAT, "--", "curl", "https://example.com")
    assert r.code == 126 and r.err.startswith("avfs: require_approval ("), r.err
    assert "not run: refused by the policy (exit 126)" in r.err and "approval required; token apv_" in r.err
    # and what to do (the line gave the token alone; --json's hint said it)
    token = r.err.split("approval required; token ", 1)[1].split()[0]
    assert f"rerun it with --approve {token} once a person approves" in r.err, r.err


def test_other_commands_keep_their_codes(cli_proc, v):
    """Only `proxy exec` mixes with a child's codes; the rest keep avfs's own."""
    assert cli_proc("--vault", "nosuch", "ls").code == 1
    assert cli_proc("--vault", "v", "ls", "--bogus").code == 2
    assert cli_proc("--json", "--vault", "v", "policy", "check", "--", "rm", "-rf", "/").code == 0
    doc = json.loads(cli_proc("--json", "--vault", "nosuch", "ls").out)
    assert doc["kind"] == "error" and doc["error"]["code"] == "vault_not_found"


def test_through_a_live_mounts_daemon_the_same(cli_proc, v, home):
    """With a live mount, `--vault VAULT:FORK` hands the request to the mount's daemon
    (docs/proxy.md, the warm path): its answers are the same envelopes and codes."""
    from avfs_git.ops import mounts

    from .test_fuse import require_fuse

    require_fuse()
    mounts.mount(home, v, "main", None)
    try:
        base = ("--json", "--vault", "v:main", "proxy", "exec")
        r = cli_proc(*base, "--", "sh", "-c", "exit 4")
        doc = envelope(r)
        assert r.code == 4 and doc["mount"]["reused"] and doc["result"]["exit_code"] == 4, doc
        doc = not_run(cli_proc(*base, "--env", "NOEQUALS", "--", "true"), "usage")
        assert doc["request"]["vault"] == "v" and doc["request"]["fork"] == "main"
        not_run(cli_proc(*base, "--timeout-ms", "0", "--", "true"), "usage")
        not_run(cli_proc(*base, "--cwd", "nodir", "--", "true"), "usage")
        r = cli_proc(*base, "--", "rm", "-rf", "/")
        assert r.code == 126 and envelope(r)["decision"]["action"] == "deny"
    finally:
        mounts.unmount(home, v, "main", lazy=True)


def test_a_bad_global_option_before_proxy_exec_gives_an_envelope(cli_proc, v):
    doc = not_run(cli_proc("--json", "--vault", "v", "--bogus", "proxy", "exec", "--", "true"), "usage")
    assert "--bogus" in doc["error"]["message"] and doc["request"]["vault"] is None
    # not proxy exec: avfs's own usage error
    r = cli_proc("--json", "--bogus", "ls", "--", "proxy", "exec")
    assert r.code == 2 and r.json()["kind"] == "error"


def test_a_mistyped_option_names_the_close_ones(cli: Any, v: Vault) -> None:
    """`--timeout 5` (timeout(1)'s word): the envelope's usage error names `--timeout-ms`, as
    click's own parser does for the other commands (the fast path's parser said only
    `no such option: --timeout`)."""
    for args in (("--timeout", "5"), ("--timeout=5",)):
        doc = not_run(cli("--json", "--vault", "v", "proxy", "exec", *args, "--", "true"), "usage")
        assert doc["error"]["message"] == "no such option: --timeout (did you mean --timeout-ms?)", doc
    doc = not_run(cli("--json", "--vault", "v", "proxy", "exec", "--zzz", "--", "true"), "usage")
    assert doc["error"]["message"] == "no such option: --zzz", doc


def test_policy_check_without_dashdash_names_its_own_synopsis(cli: Any, v: Vault) -> None:
    """`avfs policy check rm -rf /` (the `--` forgotten) was told the synopsis of `proxy
    exec`: the hint gives `policy check`'s, --path included."""
    r = cli("--json", "--vault", "v", "policy", "check", "rm", "-rf", "/")
    assert r.code == 2
    err = json.loads(r.out)["error"]
    assert err["code"] == "usage" and err["message"] == "put `--` before the command"
    assert err["hint"] == "avfs policy check [OPTIONS] -- CMD [ARGS...]  (or --shell 'STRING', --path PATH)"


def test_audit_shows_each_command_as_a_shell_takes_it_back(cli: Any, v: Vault) -> None:
    """`avfs audit` joined a command's words with spaces: `rm -rf /my dir` (one path or
    two?), `python3 -c from x import y; ...` (make demo's): now quoted as a shell reads them."""
    import shlex

    argv = ["rm", "-rf", "/my dir", "it's"]
    assert cli("--vault", "v", "proxy", "exec", "--", *argv).code == 126  # denied, recorded
    r = cli("--vault", "v", "audit")
    assert r.code == 0, r.err
    line = r.out.splitlines()[-1]
    assert line.split("\t")[-1] == shlex.join(argv), line
    assert shlex.split(line.split("\t")[-1]) == argv
