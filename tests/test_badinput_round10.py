"""Bad input, tenth round's sweep, on the CLI and the Python API: a fork name git reserves or
that names a path avfs or git uses (``HEAD``, ``-``, ``@``, a ``.lock`` name), ``--vault``
with ``:`` twice, a checkpoint label of 1 MB or with a newline or a NUL, a `write` to a path
that is a directory in the fork's commit, a merge of a fork into itself, a restore, revert
or checkout to another vault's commit, an ``AVFS_HOME`` that is a file. Each is a clear
error (its code and exit status, one JSON document) and changes nothing (files by content,
SQLite rows, refs, reflogs, objects). Fork names of git's ref forms (``refs/heads/x``,
``heads/x``, ``refs/avfs/x``) are names git takes for branches (``git branch refs/heads/x``
makes ``refs/heads/refs/heads/x``): avfs takes them as git does, under ``refs/heads/`` only,
never touching the ref they spell. docs/security.md, bad input.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from avfs_git import checkpoint
from avfs_git.core.errors import AvfsError
from avfs_git.core.operations import merge as merge_op
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault

from .conftest import CliResult
from .test_json_everypath import _changed, _home_state

Cli = Callable[..., CliResult]

BIG = "a" * (1 << 20)


def _vaults(cli: Cli) -> tuple[str, str]:
    """Vaults v (d/a.txt checkpointed) and w (z.txt checkpointed); returns w's head."""
    assert cli("vault", "create", "v").code == 0
    assert cli("vault", "create", "w").code == 0
    assert cli("--vault", "v", "write", "d/a.txt", "a").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "one").code == 0
    assert cli("--vault", "w", "write", "z.txt", "z").code == 0
    assert cli("--vault", "w", "checkpoint", "save").code == 0
    w_head = cli("--vault", "w", "--json", "log").json()["commits"][0]["id"]
    v_head = cli("--vault", "v", "--json", "log").json()["commits"][0]["id"]
    return v_head, w_head


def _refused(cli: Cli, home: str, args: tuple[str, ...], code: str, exit_code: int) -> None:
    before = _home_state(home)
    r = cli("--json", *args)
    assert r.code == exit_code and r.out.count("\n") == 1, (args, r.code, r.out[:300], r.err[:300])
    err = r.json()["error"]
    assert err["code"] == code and err["message"], (args, err)
    assert "Traceback" not in r.err
    assert _changed(before, _home_state(home)) == [], args


def test_the_cli_refuses_each_bad_input_clearly_and_changes_nothing(cli: Cli) -> None:
    home = os.environ["AVFS_HOME"]
    _, w_head = _vaults(cli)
    cases: list[tuple[tuple[str, ...], str, int]] = []
    # (a trailing newline passed the name's pattern, whose `$` matches before it: `vault create
    # "q\n"` made a vault of that name, a checkpoint "one\n" moved the branch, then was 70)
    for name in ("HEAD", "-", "@", "x.lock", "main.lock", "a/b.lock", "FETCH_HEAD", "x/", "a\nb", "x\n"):
        cases.append((("vault", "fork", "v", name), "invalid_name", 1))
        cases.append((("--vault", f"v:{name}", "status"), "invalid_name", 1))
    cases.append((("vault", "create", "q\n"), "invalid_name", 1))
    cases.append((("vault", "create", "q\n", "--from", "."), "invalid_name", 1))
    for spec in ("v:main:x", "v::", "v:main:", "::", ":main:x", "v\n", "v:main\n"):
        cases.append((("--vault", spec, "status"), "invalid_name", 1))
    for label in (BIG, "a\nb", "a\x00b", "one\n"):
        cases.append((("--vault", "v", "checkpoint", "save", label), "invalid_name", 1))
    for path in ("d", "d/", "./d"):
        cases.append((("--vault", "v", "write", path, "x"), "is_a_directory", 1))
    cases.append((("--vault", "v", "merge", "main"), "usage", 2))
    cases.append((("--vault", "v", "merge", "--into", "main", "main"), "usage", 2))
    for args in (("checkpoint", "restore", w_head), ("revert", w_head), ("checkout", w_head, "--", "z.txt")):
        cases.append((("--vault", "v", *args), "revision_not_found", 1))
    for args, code, exit_code in cases:
        _refused(cli, home, args, code, exit_code)


def test_an_avfs_home_that_is_a_file_is_named_and_nothing_is_made(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    afile = tmp_path / "t" / "home-file"
    afile.write_bytes(b"not a directory\n")
    for home in (afile, afile / "sub"):
        for args in (("vault", "list"), ("vault", "create", "q"), ("--vault", "q", "status")):
            r = cli("--json", *args, env={"AVFS_HOME": str(home)})
            assert r.code == 1 and r.out.count("\n") == 1, (home, args, r.code, r.out, r.err)
            err = r.json()["error"]
            assert err["code"] in ("unusable_path", "vault_not_found"), (home, args, err)
            if err["code"] == "unusable_path":
                assert "AVFS_HOME" in err["hint"], err
    assert afile.read_bytes() == b"not a directory\n" and os.listdir(tmp_path / "t") == ["home-file"]


def test_fork_names_of_git_s_ref_forms_stay_under_refs_heads(cli: Cli) -> None:
    """``refs/heads/x``, ``heads/x``, ``refs/avfs/x``: forks whose branches are
    ``refs/heads/<name>`` as `git branch` makes them; the ref each spells (a fork ``x``'s
    branch, avfs's own ``refs/avfs/``) never moves."""
    home = os.environ["AVFS_HOME"]
    _vaults(cli)
    assert cli("vault", "fork", "v", "x").code == 0
    git_dir = os.path.join(home, "vaults", "v.git")

    def refs(prefix: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", git_dir, "for-each-ref", "--format=%(refname) %(objectname)", prefix],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    avfs_refs, x_ref = refs("refs/avfs/"), refs("refs/heads/x")
    for name in ("refs/heads/x", "heads/x", "refs/avfs/x"):
        assert cli("vault", "fork", "v", name).code == 0, name
        assert cli("--vault", f"v:{name}", "write", "n.txt", name).code == 0
        assert cli("--vault", f"v:{name}", "checkpoint", "save").code == 0
        assert cli("--vault", f"v:{name}", "cat", "n.txt").out == name
        assert f"refs/heads/{name} " in refs(f"refs/heads/{name}")
    assert refs("refs/heads/x") == x_ref
    # (each fork's own: its recovery refs, and the base its workspace holds from gc (gitgc2))
    own = ("refs/avfs/recovery/", "refs/avfs/held/")
    assert [r for r in refs("refs/avfs/").splitlines() if not r.startswith(own)] == [
        r for r in avfs_refs.splitlines() if not r.startswith(own)
    ]
    listed = [f["name"] for f in cli("--json", "vault", "info", "v").json()["forks"]]
    assert {"refs/heads/x", "heads/x", "refs/avfs/x", "x", "main"} <= set(listed), listed


@pytest.mark.parametrize(
    "call",
    [
        "fork-HEAD",
        "fork-lock",
        "fork-at",
        "label-big",
        "label-newline",
        "label-nul",
        "label-trailing-newline",
        "vault-trailing-newline",
        "write-dir",
        "merge-self",
        "restore-other",
        "revert-other",
    ],
)
def test_the_python_api_refuses_each_bad_input_clearly_and_changes_nothing(
    home: Home, vault: Vault, call: str
) -> None:
    vault.workspace("main").write("d/a.txt", b"a")
    checkpoint.save(vault, "main", "one")
    other = home.create_vault("w")
    other.workspace("main").write("z.txt", b"z")
    w_head = checkpoint.save(other, "main").checkpoint.commit
    calls: dict[str, tuple[Callable[[], object], str]] = {
        "fork-HEAD": (lambda: vault.create_fork("main", "HEAD"), "invalid_name"),
        "fork-lock": (lambda: vault.create_fork("main", "x.lock"), "invalid_name"),
        "fork-at": (lambda: vault.create_fork("main", "@"), "invalid_name"),
        "label-big": (lambda: checkpoint.save(vault, "main", BIG), "invalid_name"),
        "label-newline": (lambda: checkpoint.save(vault, "main", "a\nb"), "invalid_name"),
        "label-nul": (lambda: checkpoint.save(vault, "main", "a\x00b"), "invalid_name"),
        "label-trailing-newline": (lambda: checkpoint.save(vault, "main", "two\n"), "invalid_name"),
        "vault-trailing-newline": (lambda: home.create_vault("q\n"), "invalid_name"),
        "write-dir": (lambda: vault.workspace("main").write("d", b"x"), "is_a_directory"),
        "merge-self": (lambda: merge_op.merge(vault, "main", "main"), "usage"),
        "restore-other": (lambda: checkpoint.restore(vault, "main", w_head), "revision_not_found"),
        "revert-other": (lambda: checkpoint.revert(vault, "main", w_head), "revision_not_found"),
    }
    fn, code = calls[call]
    before = _home_state(home.path)
    with pytest.raises(AvfsError) as got:
        fn()
    assert got.value.code == code, (call, got.value.to_dict())
    assert _changed(before, _home_state(home.path)) == [], call


def test_a_policy_s_host_and_rule_name_refuse_a_trailing_newline(tmp_path: Path) -> None:
    """The same `$` of `re.match`: ``"example.com\\n"`` was a host of ``network_allow`` (a
    name no request ever has), a rule name ``"r\\n"`` accepted."""
    from avfs_git.policy.hostpattern import host_pattern

    assert host_pattern("example.com") == ("example.com", None)
    for bad in ("example.com\n", "*.example.com\n"):
        with pytest.raises(ValueError, match="not a host name"):
            host_pattern(bad)
    from avfs_git.policy.config import parse_layer

    rule = (
        'version = 1\n[[rules]]\nname = "{}"\nprogram = ["ls"]\nclasses = ["read_only"]\noutcome = "deny"\n'
    )
    parse_layer(rule.format("no-ls"), "policy.toml", shipped=False)
    with pytest.raises(AvfsError):
        parse_layer(rule.format("no-ls\\n"), "policy.toml", shipped=False)
