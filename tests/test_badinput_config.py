"""The home's and a vault's settings files (``<home>/config.json``, ``<vault>/avfs/config.json``)
with wrong types or values past any use: each command that reads them says which file and
what is wrong (one JSON document, a hint) and changes nothing. A list where the object of
settings belongs, or a number where the ``maintenance`` object belongs, was exit 70
(``dict()`` of it); a vault's file that is not JSON was exit 70; a retention of ``1e308``
or ``NaN`` days (JSON's reader takes ``NaN``) passed the check. docs/security.md, bad input.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import CliResult
from .test_json_everypath import _changed, _home_state

Cli = Callable[..., CliResult]

HOME_CASES = {
    "a-list": ("[1, 2]", "JSON list"),
    "maintenance-a-number": ('{"default_vault": "v", "maintenance": 5}', "JSON int"),
    "retention-1e308": ('{"default_vault": "v", "maintenance": {"oplog_days": 1e308}}', "1e+308"),
    "retention-nan": ('{"default_vault": "v", "maintenance": {"oplog_days": NaN}}', "nan"),
}


@pytest.mark.parametrize("case", sorted(HOME_CASES))
def test_a_home_config_of_wrong_types_is_named_and_nothing_changes(cli: Cli, case: str) -> None:
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "a.txt", "a").code == 0
    home = os.environ["AVFS_HOME"]
    text, said = HOME_CASES[case]
    Path(home, "config.json").write_text(text + "\n")
    before = _home_state(home)
    r = cli("--vault", "v", "--json", "gc")  # reads the home's settings, then writes
    assert r.code not in (0, 70) and r.out.count("\n") == 1, (r.code, r.out)
    err = r.json()["error"]
    assert err["code"] == "usage" and said in err["message"], err  # (was internal)
    assert "config.json" in err["message"] or "maintenance" in err["message"], err
    h = cli("--vault", "v", "gc")
    assert h.code == r.code and said in h.err, h.err
    assert _changed(before, _home_state(home)) == []


def test_a_vault_config_that_is_not_json_is_named_and_nothing_changes(cli: Cli) -> None:
    assert cli("vault", "create", "v").code == 0
    home = os.environ["AVFS_HOME"]
    cfg = Path(home, "vaults", "v.git", "avfs", "config.json")
    for text in ("[", "[1]"):
        cfg.write_text(text + "\n")
        before = _home_state(home)
        for args in (("status",), ("vault", "info")):
            r = cli("--vault", "v", "--json", *args)
            assert r.code not in (0, 70) and r.out.count("\n") == 1, (args, r.code, r.out)
            err = r.json()["error"]
            assert err["code"] == "usage" and str(cfg) in err["message"], err  # (was internal)
            assert "fix the file" in err["hint"], err
        assert _changed(before, _home_state(home)) == []
    cfg.unlink()


SETTINGS_FILES = {
    "home-config": ("config.json", ("status",)),
    "home-policy": ("policy.toml", ("policy", "check", "--", "ls")),
    "vault-config": ("vaults/v.git/avfs/config.json", ("status",)),
    "vault-policy": ("vaults/v.git/avfs/policy.toml", ("policy", "check", "--", "ls")),
}


@pytest.mark.parametrize("kind", ["fifo", "dir"])
@pytest.mark.parametrize("which", sorted(SETTINGS_FILES))
def test_a_settings_file_that_is_a_fifo_or_a_directory_is_named(cli: Cli, which: str, kind: str) -> None:
    """A FIFO where a settings file belongs held every command for ever (nothing writes
    to it: `open` waits for a writer); a vault's `config.json` that is a directory was exit
    70 (IsADirectoryError). Now each is `unusable_path` naming the file, nothing read from
    it, nothing changed (run as real processes, each with a deadline: on main they hang;
    the set-up before the damage in the test's process, ``conftest.run_in_process``)."""
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "a.txt", "a").code == 0
    home = os.environ["AVFS_HOME"]
    rel, args = SETTINGS_FILES[which]
    path = os.path.join(home, rel)
    if os.path.exists(path):
        os.unlink(path)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.mkdir(path)
    before = _home_state(home)
    proc = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "--vault", "v", *args], capture_output=True, timeout=120
    )
    r = CliResult(proc.returncode, proc.stdout.decode(), proc.stderr.decode(), proc.stdout)
    assert r.code == 1 and r.out.count("\n") == 1, (r.code, r.out, r.err)
    err = r.json()["error"]
    assert err["code"] == "unusable_path" and path in err["message"], err
    said = "a FIFO" if kind == "fifo" else "a directory"
    assert said in err["message"] and "remove it" in err["hint"], err
    assert _changed(before, _home_state(home)) == []
    (os.unlink if kind == "fifo" else os.rmdir)(path)
