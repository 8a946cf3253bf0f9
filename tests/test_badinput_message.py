"""Checkpoint messages at their edges: empty, whitespace only, a NUL byte, 1 MiB. An empty
or whitespace-only message is none (the default message: git's cleanup empties such a
message, and `git commit` then refuses; avfs kept "   " as the message, where "" got the
default); a NUL is refused in words before anything is committed (the fork's change kept,
no ref moved, no op log entry); 1 MiB is kept whole. docs/security.md, bad input.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from avfs_git import checkpoint
from avfs_git.core.errors import UsageError
from avfs_git.core.vaults.vault import Vault

from .conftest import CliResult
from .test_json_everypath import _changed, _home_state

Cli = Callable[..., CliResult]


def _message(vault: Vault, rev: str = "refs/heads/main") -> bytes:
    raw = subprocess.run(
        ["git", "--git-dir", vault.path, "cat-file", "commit", rev], capture_output=True, check=True
    ).stdout
    return raw.split(b"\n\n", 1)[1]


@pytest.mark.parametrize("message", ["", "   ", " \n\t\n "])
def test_an_empty_or_blank_message_is_the_default(vault: Vault, message: str) -> None:
    vault.workspace("main").write("a.txt", b"a\n")
    checkpoint.save(vault, "main", name="c1", message=message)
    assert _message(vault) == b"checkpoint c1\n"  # (was the blanks themselves)


def test_a_nul_in_a_message_is_refused_and_nothing_changes(vault: Vault) -> None:
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    before = _home_state(vault.home.path)
    with pytest.raises(UsageError) as exc:
        checkpoint.save(vault, "main", name="c1", message="a\x00b")
    assert "NUL" in exc.value.message and "nothing was committed" in exc.value.message
    assert exc.value.hint and "NUL" in exc.value.hint
    changed = _changed(before, _home_state(vault.home.path))
    # (the objects the capture wrote, nothing a ref names, may stay: git gc takes them)
    # (and the vault's lock directory, made at the first lock taken)
    assert [p for p in changed if "/objects/" not in p and not p.endswith("/locks/")] == [], changed
    assert [c.path for c in vault.workspace("main").status()] == ["a.txt"]


def test_a_message_of_1_mib_is_kept_whole(vault: Vault, cli: Cli) -> None:
    vault.workspace("main").write("a.txt", b"a\n")
    big = "line of a long message\n" * ((1 << 20) // 23)  # (1 MiB, less a few bytes)
    checkpoint.save(vault, "main", message=big)
    assert _message(vault) == big.encode()
    r = cli("--vault", "v", "--json", "log", "-n", "1")
    assert r.code == 0 and r.json()["commits"][0]["message"] == big, r.err
