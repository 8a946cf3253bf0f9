"""The Python API and the CLI fail alike (docs/api.md, "Errors"): the same mistake made through
`avfs_git` raises the documented `AvfsError` subclass whose `code` and `exit_code` are the
CLI's `error.code` and exit status for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import avfs_git
from avfs_git import checkpoint, history
from avfs_git.core import errors
from avfs_git.core.operations import merge
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault

from .conftest import CliResult

# (what, the API call on (home, vault), the CLI arguments, the class the API raises)
CASES: list[tuple[str, Callable[[Home, Vault], Any], list[str], type[errors.AvfsError]]] = [
    (
        "missing vault",
        lambda h, v: h.vault("nosuch"),
        ["--vault", "nosuch", "status"],
        errors.VaultNotFoundError,
    ),
    (
        "missing fork",
        lambda h, v: v.workspace("nosuch"),
        ["--vault", "v:nosuch", "status"],
        errors.ForkNotFoundError,
    ),
    ("vault ../x", lambda h, v: h.create_vault("../x"), ["vault", "create", "../x"], errors.InvalidNameError),
    ("vault empty", lambda h, v: h.create_vault(""), ["vault", "create", ""], errors.InvalidNameError),
    (
        "vault a\\nb",
        lambda h, v: h.create_vault("a\nb"),
        ["vault", "create", "a\nb"],
        errors.InvalidNameError,
    ),
    (
        "vault long",
        lambda h, v: h.create_vault("x" * 300),
        ["vault", "create", "x" * 300],
        errors.InvalidNameError,
    ),
    ("vault exists", lambda h, v: h.create_vault("v"), ["vault", "create", "v"], errors.AlreadyExistsError),
    (
        "fork a\\nb",
        lambda h, v: v.create_fork("main", "a\nb"),
        ["vault", "fork", "v", "a\nb"],
        errors.InvalidNameError,
    ),
    (
        "fork exists",
        lambda h, v: v.create_fork("main", "main"),
        ["vault", "fork", "v", "main"],
        errors.AlreadyExistsError,
    ),
    ("missing file", lambda h, v: v.workspace().read("no.txt"), ["cat", "no.txt"], errors.PathNotFoundError),
    ("read a dir", lambda h, v: v.workspace().read("d"), ["cat", "d"], errors.IsDirectoryError),
    (
        "path ../x",
        lambda h, v: v.workspace().write("../x", b"a"),
        ["write", "../x", "a"],
        errors.InvalidPathError,
    ),
    (
        "path .git",
        lambda h, v: v.workspace().write(".git/x", b"a"),
        ["write", ".git/x", "a"],
        errors.InvalidPathError,
    ),
    ("long path", lambda h, v: v.workspace().read("x" * 300), ["cat", "x" * 300], errors.NameTooLongError),
    ("rm a dir", lambda h, v: v.workspace().remove("d"), ["rm", "d"], errors.DirectoryNotEmptyError),
    ("mkdir exists", lambda h, v: v.workspace().mkdir("d"), ["mkdir", "d"], errors.AlreadyExistsError),
    ("mv missing", lambda h, v: v.workspace().rename("no", "z"), ["mv", "no", "z"], errors.PathNotFoundError),
    (
        "restore missing",
        lambda h, v: checkpoint.restore(v, "main", "no"),
        ["checkpoint", "restore", "no"],
        errors.RevisionNotFoundError,
    ),
    (
        "save a name twice",
        lambda h, v: checkpoint.save(v, "main", name="c1"),
        ["checkpoint", "save", "c1"],
        errors.AlreadyExistsError,
    ),
    (
        "save a bad name",
        lambda h, v: checkpoint.save(v, "main", name="a b"),
        ["checkpoint", "save", "a b"],
        errors.InvalidNameError,
    ),
    (
        "log a bad rev",
        lambda h, v: history.log(v, "main", rev="no"),
        ["log", "no"],
        errors.RevisionNotFoundError,
    ),
    (
        "diff a bad rev",
        lambda h, v: history.diff(v, "main", "no"),
        ["diff", "no"],
        errors.RevisionNotFoundError,
    ),
    (
        "merge a missing fork",
        lambda h, v: merge.merge(v, "no", "main"),
        ["merge", "no"],
        errors.ForkNotFoundError,
    ),
    ("merge into itself", lambda h, v: merge.merge(v, "main", "main"), ["merge", "main"], errors.UsageError),
    (
        "delete the default fork",
        lambda h, v: v.delete_fork("main"),
        ["vault", "delete", "v:main", "--force"],
        errors.UsageError,
    ),
    (
        "undo a missing op",
        lambda h, v: checkpoint.undo(v, 9999),
        ["undo", "--op", "9999"],
        errors.NothingToUndoError,
    ),
    ("quota -1", lambda h, v: v.set_quota(max_bytes=-1), ["quota", "set", "-1"], errors.UsageError),
]


@pytest.mark.parametrize(("what", "call", "args", "raised"), CASES, ids=[c[0] for c in CASES])
def test_the_api_raises_what_the_cli_reports(
    cli: Callable[..., CliResult],
    home: Home,
    what: str,
    call: Callable[[Home, Vault], Any],
    args: list[str],
    raised: type[errors.AvfsError],
) -> None:
    vault = home.create_vault("v")
    ws = vault.workspace("main")
    ws.write("f.txt", b"x")
    checkpoint.save(vault, "main", name="c1")
    ws.write("d/g.txt", b"y")
    with pytest.raises(avfs_git.AvfsError) as got:
        call(home, vault)
    assert type(got.value) is raised, (what, got.value)
    r = cli("--json", "--home", home.path, "--vault", "v", *args)
    doc = r.json()
    assert (doc["error"]["code"], r.code) == (got.value.code, got.value.exit_code), (what, doc)
