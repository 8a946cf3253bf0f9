"""A fork of a fork with changes records what ``git add`` stores (docs/fuse.md,
"`.gitattributes` conversions"): the fork's capture converts the source's new and changed
files as a checkpoint's does, and the new fork shows the source's bytes (a CRLF file stays
CRLF, as in git's work tree), so its own checkpoint records the blob ``git add -A`` of the
source's files makes. Found by the git model (gitmodel7, seed 52): the new fork's commit
held a new CRLF file's bytes under attrs's ``* text=auto eol=lf``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.vault import Vault

from .test_gitclean import _files, _plain_tree

CHANGED = {
    "new.yml": b"name: x\r\non: push\r\n",  # a new CRLF file: git add stores LF
    "sub/mixed.txt": b"one\r\ntwo\n",
    "plain.txt": b"no cr at all\n",
}


@pytest.mark.parametrize("twice", [False, True], ids=["fresh", "kept-capture"])
def test_a_fork_records_the_files_as_git_add_does_and_shows_the_source_bytes(
    vault: Vault, tmp_path: Path, twice: bool
) -> None:
    ws = vault.workspace("main")
    ws.write(".gitattributes", b"* text=auto eol=lf\n")
    first = checkpoint.save(vault, name="base").checkpoint.commit
    for p, data in CHANGED.items():
        ws.write(p, data, parents=True)
    time.sleep(0.05)  # (the clock past the writes: a second fork may take the kept capture)
    forks = ["g1", "g2"] if twice else ["g1"]
    for name in forks:
        vault.create_fork("main", name)
    want = _plain_tree(vault.path, first, CHANGED, tmp_path)
    for name in forks:
        g = vault.workspace(name)
        for p, data in CHANGED.items():
            assert g.read(p) == data, (name, p)  # the fork shows what its source shows
        commit = checkpoint.save(vault, name, name="c").checkpoint.commit
        tree = vault.store.commit_tree(commit)
        assert tree == want, f"fork {name}: the checkpoint is not git add -A's tree"
        assert vault.store.blob_data(vault.store.tree_lookup(tree, "new.yml")[0]) == b"name: x\non: push\n"
        for p, data in CHANGED.items():
            assert g.read(p) == data, (name, p)  # and keeps them after its checkpoint
        assert g.status() == [], name
    # the source is as it was: its own checkpoint records the same tree
    assert ws.read("new.yml") == CHANGED["new.yml"]
    assert vault.store.commit_tree(checkpoint.save(vault, "main", name="m").checkpoint.commit) == want


def test_a_fork_of_real_crlf_files_records_what_git_add_does(vault: Vault, tmp_path: Path) -> None:
    """ansible-core 2.17.5's CRLF, mixed and lone-CR files and the crafted ones (mixed ends,
    NUL, ``$Id$``, UTF-16), new in the source under attribute sets that convert them: the
    new fork's checkpoint is ``git add -A``'s tree, its files the source's bytes."""
    files = {p: data for p, data in _files(tmp_path).items() if not p.endswith(".gitattributes")}
    ws = vault.workspace("main")
    ws.write(".gitattributes", b"* text=auto eol=lf\n*.txt text\n*.dat binary\ncrafted/ident.txt ident\n")
    first = checkpoint.save(vault, name="base").checkpoint.commit
    for p, data in files.items():
        ws.write(p, data, parents=True)
    vault.create_fork("main", "g")
    g = vault.workspace("g")
    commit = checkpoint.save(vault, "g", name="c").checkpoint.commit
    assert vault.store.commit_tree(commit) == _plain_tree(vault.path, first, files, tmp_path)
    wrong = [p for p, data in files.items() if g.read(p) != data]
    assert not wrong, wrong[:5]
    assert g.status() == []
