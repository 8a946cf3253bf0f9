"""Settings and policy files whose arrays or tables nest past Python's stack (a JSON or TOML
"bomb": 100,000 ``[``), and a settings file of 10 MB: the nested ones were exit 70
("internal error: RecursionError", "please report this") on every command that reads
them. Now each names the file (`usage` for a settings file, `policy_invalid` for a policy),
one JSON document, nothing changed; a large file that is valid is read. docs/security.md,
bad input.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import CliResult
from .test_json_everypath import _changed, _home_state

Cli = Callable[..., CliResult]

DEEP = 100_000
BOMBS = {
    "home-config": ("config.json", "[" * DEEP + "]" * DEEP, "usage"),
    "vault-config": ("vaults/v.git/avfs/config.json", '{"a":' * DEEP + "1" + "}" * DEEP, "usage"),
    "home-policy-array": ("policy.toml", "a = " + "[" * DEEP + "]" * DEEP, "policy_invalid"),
    "vault-policy-table": (
        "vaults/v.git/avfs/policy.toml",
        "a = " + "{b = " * 5000 + "1" + "}" * 5000,
        "policy_invalid",
    ),
}


@pytest.mark.parametrize("case", sorted(BOMBS))
def test_a_file_nested_past_the_stack_is_named_and_nothing_changes(
    cli: Cli, cli_proc: Cli, case: str
) -> None:
    """The set-up in the test's process (``conftest.run_in_process``), each call after the
    damage a real process."""
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "a.txt", "a").code == 0
    cli = cli_proc
    home = os.environ["AVFS_HOME"]
    rel, text, code = BOMBS[case]
    path = Path(home, rel)
    kept = path.read_bytes() if path.exists() else None
    path.write_text(text + "\n")
    try:
        before = _home_state(home)
        if code == "usage":
            commands: tuple[tuple[str, ...], ...] = (("status",), ("checkpoint", "save"))
        else:
            commands = (("policy", "show"), ("policy", "check", "--", "rm", "-rf", "x"))
        for args in commands:
            r = cli("--vault", "v", "--json", *args)
            assert r.code not in (0, 70) and r.out.count("\n") == 1, (case, args, r.code, r.out)  # (was 70)
            err = r.json()["error"]
            assert err["code"] == code and str(path) in err["message"], (case, args, err)
            assert "RecursionError" not in err["message"] and "please report" not in str(err["hint"]), err
        assert _changed(before, _home_state(home)) == []
    finally:
        if kept is None:
            path.unlink()
        else:
            path.write_bytes(kept)


def test_a_settings_file_of_ten_megabytes_is_read(cli_proc: Cli) -> None:
    cli = cli_proc
    assert cli("vault", "create", "v").code == 0
    home = os.environ["AVFS_HOME"]
    cfg = Path(home, "config.json")
    cfg.write_text('{"default_vault": "v", "notes": "' + "x" * (10 << 20) + '"}\n')
    r = cli("--json", "status")
    assert r.code == 0 and r.json()["vault"] == "v", r.out
