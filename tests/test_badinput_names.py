"""Names no ref can have, and a directory that holds the home, get a clear error and change
nothing (docs/getting-started.md, exit codes): a 300-character revision (longer than a file
name may be) and a name that is not UTF-8 (``$'\\xff'``: Python's argv holds it as a lone
surrogate) are "not found", not an internal error; importing a directory that holds the avfs
home is refused before it starts (it read the pack it was writing, without end)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import CliResult
from .test_json_everypath import _changed, _home_state

Cli = Callable[..., CliResult]

LONG = "x" * 300
NOT_UTF8 = "a\udcffb"  # what `avfs ... $'a\xffb'` gives click


@pytest.fixture
def bhome(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "f.txt", "hi").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "c1").code == 0
    return os.environ["AVFS_HOME"]


REVISION_COMMANDS = [
    ("checkout",),
    ("checkpoint", "restore"),
    ("checkpoint", "delete"),
    ("diff",),
    ("log",),
    ("show",),
]


@pytest.mark.parametrize("name", [LONG, NOT_UTF8], ids=["long", "not-utf8"])
@pytest.mark.parametrize("command", REVISION_COMMANDS, ids=[" ".join(c) for c in REVISION_COMMANDS])
def test_a_revision_no_ref_can_name_is_refused_not_an_internal_error(
    cli: Cli, bhome: str, command, name
) -> None:
    for pygit2_first in (False, True):  # git's files read directly, and through libgit2
        if pygit2_first:
            import pygit2  # noqa: F401  (loaded: refs are read through it)
        before = _home_state(bhome)
        r = cli("--json", "--vault", "v", *command, name)
        doc = r.json()
        assert r.code in (1, 2), (command, r.code, doc)  # not found, or (checkout) not a fork
        assert doc["kind"] == "error" and doc["error"]["code"] in ("revision_not_found", "usage"), doc
        assert "Traceback" not in r.err
        assert not _changed(before, _home_state(bhome))


@pytest.mark.parametrize("where", ["parent", "home"])
def test_importing_a_directory_that_holds_the_home_is_refused(cli: Cli, bhome: str, where) -> None:
    """`avfs up ..` from a project beside the home (`avfs up ~` with the home ~/.avfs), or
    `vault create --from` of the home itself."""
    top = Path(bhome).parent if where == "parent" else Path(bhome)
    before = _home_state(bhome)
    for args in (("up", str(top)), ("vault", "create", "w", "--from", str(top))):
        r = cli("--json", *args)
        doc = r.json()
        assert r.code == 2 and doc["error"]["code"] == "usage", (args, doc)
        assert "avfs home" in doc["error"]["message"], doc
        assert not _changed(before, _home_state(bhome)), args
    assert not [p for p in os.listdir(Path(bhome, "vaults")) if p.startswith(".tmp-")]
