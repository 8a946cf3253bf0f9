"""A merge reads git's ignore globals once (h-merge6).

Which new paths git ignores is asked several times in one merge (both captures' checks
for changes, the writers held, the view moved), and each ask read the ignore rules'
globals anew: the config files git reads, ``info/exclude``, the user's excludes file and
``core.excludesFile`` through libgit2's config, ~0.3 ms an ask, 4-5 asks a merge into a
fork an overlay mount left an upper layer in (minimist; docs/benchmarks.md, h-merge5's
section). A merge now reads them once (:func:`.ignore.globals_kept`), and a change to
them between two merges is seen by the second."""

from __future__ import annotations

from typing import Any

import pytest

from avfs_git.core.operations import checkpoint, merge
from avfs_git.core.workspace import ignore
from avfs_git.core.workspace.ignore import IgnoreRules


def _fork(vault: Any, name: str, path: str, data: bytes) -> None:
    vault.create_fork("main", name)
    vault.workspace(name).write(path, data, parents=True)
    checkpoint.save(vault, name)


def _globals_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The vault of each read of the ignore globals from now on (they are still read)."""
    read: list[str] = []
    real = IgnoreRules._globals

    def counted(self: IgnoreRules, env: dict[str, str]) -> tuple[str, bool]:
        read.append(self.git_dir)
        return real(self, env)

    monkeypatch.setattr(IgnoreRules, "_globals", counted)
    return read


@pytest.mark.parametrize("kind", ["fast_forward", "merged"])
def test_a_merge_reads_the_ignore_globals_once(
    vault: Any, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Both sides hold an uncheckpointed file git ignores (``build/``): each side's
    capture asks about it, the move too; the globals are read once a merge, and what git
    ignores stays out of the merge and in the target's view."""
    ws = vault.workspace("main")
    ws.write(".gitignore", b"build/\n")
    checkpoint.save(vault, "main")
    _fork(vault, "a", "a.txt", b"a\n")
    vault.workspace("a").write("build/a.o", b"obj a\n", parents=True)
    if kind == "merged":
        ws.write("m.txt", b"m\n")
        checkpoint.save(vault, "main")
    ws.write("build/m.o", b"obj m\n", parents=True)
    read = _globals_read(monkeypatch)
    res = merge.merge(vault, "a", "main")
    assert res.status == kind
    assert read == [vault.path], read  # (main's code: 4-6 reads)
    main = vault.workspace("main")
    assert main.read("a.txt") == b"a\n" and main.read("build/m.o") == b"obj m\n"
    assert main.status() == []
    assert vault.store.tree_lookup(vault.store.commit_tree(main.tip()), "build") is None


def test_a_change_to_the_globals_between_two_merges_is_seen(vault: Any) -> None:
    """The globals are kept only while a merge runs: a pattern added to the vault's
    ``info/exclude`` after one merge decides what the next one captures."""
    import os

    ws = vault.workspace("main")
    ws.write("keep.txt", b"k\n")
    checkpoint.save(vault, "main")
    _fork(vault, "a", "a.txt", b"a\n")
    ws.write("tmp1.log", b"one\n")
    assert merge.merge(vault, "a", "main").status == "merged"  # (main's capture, then a)
    assert vault.store.tree_lookup(vault.store.commit_tree(ws.tip()), "tmp1.log") is not None  # captured
    with open(os.path.join(vault.path, "info", "exclude"), "ab") as fh:
        fh.write(b"\n*.log\n")
    _fork(vault, "b", "b.txt", b"b\n")
    ws = vault.workspace("main")
    ws.write("tmp2.log", b"two\n")
    assert merge.merge(vault, "b", "main").status == "fast_forward"  # (nothing of main's to capture)
    tree = vault.store.commit_tree(vault.workspace("main").tip())
    assert vault.store.tree_lookup(tree, "tmp2.log") is None  # ignored now: not captured
    assert vault.workspace("main").read("tmp2.log") == b"two\n"


def test_globals_kept_is_scoped_and_nests() -> None:
    """Outside :func:`.ignore.globals_kept` nothing is kept; nested, the outermost's
    dictionary stays until it ends."""
    assert ignore._kept_globals.get() is None
    with ignore.globals_kept():
        outer = ignore._kept_globals.get()
        assert outer == {}
        with ignore.globals_kept():
            assert ignore._kept_globals.get() is outer
        assert ignore._kept_globals.get() is outer
    assert ignore._kept_globals.get() is None
