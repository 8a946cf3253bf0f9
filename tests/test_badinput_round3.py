"""Bad input, third round: refusals that come before anything is written. A checkout of a
path in neither side writes no object (`git count-objects -v`, loose and packed, as before);
`materialize_to` into a missing directory or onto a file is a clear avfs error with nothing
written."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from avfs_git import checkpoint
from avfs_git.core.errors import DirectoryNotEmptyError, NotDirectoryError, PathNotFoundError
from avfs_git.core.vaults.home import Home

from .conftest import CliResult, git
from .test_json_everypath import _changed, _home_state

Cli = Callable[..., CliResult]


def _objects(vault_path: str) -> dict[str, int]:
    """`git count-objects -v` of the vault: loose and packed counts and sizes."""
    out = git("--git-dir", vault_path, "count-objects", "-v")
    kv = {k: v for k, _, v in (line.partition(": ") for line in out.splitlines())}
    return {k: int(kv[k]) for k in ("count", "size", "in-pack", "packs", "size-pack")}


def test_a_checkout_of_a_path_in_neither_side_writes_no_object(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "f.txt", "hi").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "c1").code == 0
    # a dirty workspace: the op log's "before" state would capture it as a tree
    assert cli("--vault", "v", "write", "dirty.txt", "new content not yet stored").code == 0
    home = os.environ["AVFS_HOME"]
    vault_path = str(Path(home, "vaults", "v.git"))
    objects, before = _objects(vault_path), _home_state(home)
    r = cli("--json", "--vault", "v", "checkout", "nowhere.txt", "--from", "c1")
    doc = r.json()
    assert r.code == 1 and doc["error"]["code"] == "path_not_found", doc
    assert "nowhere.txt" in doc["error"]["message"], doc
    assert _objects(vault_path) == objects
    assert _changed(before, _home_state(home)) == []
    assert cli("--vault", "v", "cat", "dirty.txt").out == "new content not yet stored"


@pytest.mark.parametrize("dest", ["a-file", "missing/below"])
def test_materialize_into_what_is_not_a_directory_is_refused_with_nothing_written(
    home: Home, tmp_path: Path, dest: str
) -> None:
    vault = home.create_vault("v")
    ws = vault.workspace("main")
    ws.write("d/f.txt", b"hi\n")
    checkpoint.save(vault, "main", name="c1")
    Path(tmp_path, "a-file").write_bytes(b"mine\n")
    target = str(tmp_path / dest)
    listing = sorted(p.name for p in tmp_path.iterdir())
    want = NotDirectoryError if dest == "a-file" else PathNotFoundError
    with pytest.raises(want) as err:
        ws.materialize_to(target)
    assert err.value.code in ("not_a_directory", "path_not_found")
    assert target in err.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == listing
    assert Path(tmp_path, "a-file").read_bytes() == b"mine\n"


def test_materialize_into_a_missing_directory_whose_parent_is_there_makes_it(
    home: Home, tmp_path: Path
) -> None:
    """As ``shutil.copytree`` (and proxy exec's own materialized tree, tests/test_pathpolicy.py)."""
    vault = home.create_vault("v")
    ws = vault.workspace("main")
    ws.write("f.txt", b"hi\n")
    ws.write("d/g.txt", b"there\n")
    assert ws.materialize_to(str(tmp_path / "copy")) == 2
    assert (tmp_path / "copy" / "f.txt").read_bytes() == b"hi\n"
    assert (tmp_path / "copy" / "d" / "g.txt").read_bytes() == b"there\n"


def _tree(root: Path) -> dict[str, tuple[bool, bytes]]:
    return {
        str(p.relative_to(root)): (
            p.is_symlink(),
            os.readlink(p).encode() if p.is_symlink() else p.read_bytes(),
        )
        for p in root.rglob("*")
        if p.is_symlink() or p.is_file()
    }


def test_materialize_into_a_directory_that_holds_anything_is_refused_with_nothing_written(
    home: Home, tmp_path: Path
) -> None:
    """A second copy into the same directory, once the fork's link ``l`` became a file,
    wrote the file's bytes through the link the first copy left there (to a file outside
    the copy, whatever the link named: the fork's content chose it); a link the fork
    still has was a bare FileExistsError halfway. A directory that holds anything is
    refused, as ``git clone`` and ``shutil.copytree`` refuse one (``avfs export`` asks
    ``--force``)."""
    vault = home.create_vault("v")
    ws = vault.workspace("main")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"mine\n")
    ws.write("f.txt", b"hi\n")
    ws.symlink(str(outside), "l")
    copy = tmp_path / "copy"
    assert ws.materialize_to(str(copy)) == 1
    ws.remove("l")
    ws.write("l", b"the fork's bytes\n")
    before = _tree(copy)
    with pytest.raises(DirectoryNotEmptyError) as err:
        ws.materialize_to(str(copy))
    assert err.value.code == "directory_not_empty" and str(copy) in err.value.message
    assert outside.read_bytes() == b"mine\n"
    assert _tree(copy) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ws.materialize_to(str(empty)) == 2  # (an empty one is used as it is)
    assert (empty / "l").read_bytes() == b"the fork's bytes\n"


@pytest.mark.parametrize("redo", [False, True], ids=["undo", "undo-redo-undo"])
def test_undo_of_a_fork_leaves_no_lock_file_for_doctor(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redo: bool
) -> None:
    """An undo of `vault fork` takes the fork away as `fork delete` does: its lock files
    with it (doctor reported the fork lock as `orphan_fork_lock`)."""
    monkeypatch.chdir(tmp_path)
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "vault", "fork", "f1").code == 0
    assert cli("--vault", "v:f1", "write", "a.txt", "x").code == 0  # (kept under a recovery ref)
    assert cli("--vault", "v", "undo").code == 0
    if redo:
        assert cli("--vault", "v", "redo").code == 0
        assert cli("--vault", "v:f1", "cat", "a.txt").out == "x"  # back, with its uncheckpointed write
        assert cli("--vault", "v", "undo").code == 0
    locks = Path(os.environ["AVFS_HOME"], "vaults", "v.git", "avfs", "locks")
    assert not [p.name for p in locks.iterdir() if "f1" in p.name]
    r = cli("--json", "doctor")
    doc = r.json()
    assert r.code == 0, doc
    assert not [f for f in doc.get("findings", []) if f.get("code") == "orphan_fork_lock"], doc
