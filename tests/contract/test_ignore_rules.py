"""Ignore rules: ignored paths live in the tree a backend shows and are never recorded."""

from __future__ import annotations

from avfs_git.core.operations import checkpoint

from .views import _status, _tree


def test_contract_ignored_paths_live_in_the_tree_but_are_never_recorded(fs):
    fs.write(".gitignore", b"*.log\nbuild/\n")
    fs.write("run.log", b"log\n")
    fs.mkdir("build")
    fs.write("build/out.o", b"\x7fELF")
    fs.write("kept.txt", b"kept\n")
    assert _status(fs) == {(".gitignore", "added"), ("kept.txt", "added")}
    checkpoint.save(fs.ws.vault, "main")
    tree = _tree(fs, "main")
    assert "kept.txt" in tree and ".gitignore" in tree
    assert "run.log" not in tree and not any(p.startswith("build/") for p in tree)
    assert fs.read("run.log") == b"log\n" and fs.read("build/out.o") == b"\x7fELF"
    assert _status(fs) == set()
