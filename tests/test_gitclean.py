"""git's clean conversions in checkpoints (docs/fuse.md, "`.gitattributes` conversions"): what
``git add`` stores for a file under ``text``/``eol``/``crlf``/``ident`` attributes is what a
checkpoint records, and what ``avfs status`` compares.

The differential half runs :class:`avfs_git.core.store.gitclean.Cleaner` (libgit2's
filters) and ``git add`` over the same files, real ones from a released sdist (ansible-core,
whose tests hold CRLF, mixed and lone-CR files) and crafted ones (mixed line ends, a lone
CR, NUL bytes, ``$Id$`` keywords, an empty file, UTF-16), under each attribute set, half the
files new and half already committed as they are (git's rule that ``text=auto`` leaves a
file alone whose committed blob holds a CR), and compares the blob ids.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store.gitclean import Cleaner
from avfs_git.core.store.gitstore import blob_id

from . import realdata

CRAFTED = {
    "crafted/mixed.txt": b"one\r\ntwo\nthree\r\n",
    "crafted/lone-cr.txt": b"one\rtwo\r\n",
    "crafted/crlf-nul.dat": b"a\r\n\0b\r\n",
    "crafted/crlf.txt": b"x\r\ny\r\n",
    "crafted/lf.txt": b"x\ny\n",
    "crafted/no-end.txt": b"x\r\ny",
    "crafted/cr-end.txt": b"x\r\ny\r",
    "crafted/empty.txt": b"",
    "crafted/ident.txt": b"$Id: 1234 $\r\nbody $Id$\r\n",
    "crafted/idents.txt": b"a $Id: x $ b $Id: other 1.2 $\n$Id: broken\nline $ $Id$\n",
    "crafted/utf16.txt": "h\u00e9\r\nx\r\n".encode("utf-16"),
    "crafted/many.txt": b"line\r\n" * 5000,
}

ATTRIBUTE_SETS = {
    "auto": {"": b"* text=auto\n"},
    "text": {"": b"* text\n"},
    "eol-lf": {"": b"* text eol=lf\n"},
    "eol-crlf": {"": b"* eol=crlf\n"},
    "auto-crlf": {"": b"* text=auto eol=crlf\n"},
    "no-text": {"": b"* -text\n"},
    "binary": {"": b"* text=auto\n*.txt binary\n"},
    "crlf-attr": {"": b"* crlf\n*.dat -crlf\n"},
    "ident": {"": b"* text=auto ident\n"},
    "nested": {"": b"* text\n", "crafted": b"*.txt -text\nmixed.txt text=auto\n"},
    "macro": {"": b"[attr]norm text eol=lf\n*.txt norm\n*.yml text=auto\n"},
}


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env={**os.environ, **(env or {})}
    ).stdout


def _files(root: Path) -> dict[str, bytes]:
    """The CRLF, mixed and lone-CR files of ansible-core's sdist, some of its other files
    (text and binary), and the crafted ones."""
    src = realdata.extract(realdata.pypi_sdist("ansible-core", "2.17.5"), root / "sdist")
    every = sorted(p for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    with_cr = [p for p in every if b"\r" in p.read_bytes()]
    assert len(with_cr) >= 5, with_cr  # (the sdist's own CRLF files: the point of taking it)
    picked = with_cr + every[:: max(1, len(every) // 80)]
    out = {f"real/{p.relative_to(src)}": p.read_bytes() for p in picked}
    out.update(CRAFTED)
    return out


def test_the_cleaner_stores_what_git_add_does(tmp_path: Path) -> None:
    files = _files(tmp_path)
    repo = tmp_path / "repo"
    _git(tmp_path, "init", "-q", str(repo))
    names = sorted(files)
    committed = names[::2]  # committed as they are (-text): git's index then holds their CRs
    for p in names:
        (repo / p).parent.mkdir(parents=True, exist_ok=True)
        (repo / p).write_bytes(files[p])
    (repo / ".gitattributes").write_bytes(b"* -text\n")
    _git(repo, "add", "--", ".gitattributes", *committed)
    _git(repo, "commit", "-qm", "base")
    base = {
        ln.split("\t", 1)[1]: (ln.split()[2], int(ln.split()[0], 8))
        for ln in _git(repo, "ls-tree", "-r", "-z", "HEAD").split("\0")
        if ln
    }
    checked = 0
    for name, attrs in ATTRIBUTE_SETS.items():
        for d, text in attrs.items():
            (repo / d / ".gitattributes").write_bytes(text)
        index = tmp_path / f"index-{name}"
        env = {"GIT_INDEX_FILE": str(index)}
        _git(repo, "read-tree", "HEAD", env=env)
        _git(repo, "add", "-A", "--", *names, env=env)
        want = {
            ln.split("\t", 1)[1]: ln.split()[1]
            for ln in _git(repo, "ls-files", "-s", "-z", "--", *names, env=env).split("\0")
            if ln
        }
        cleaner = Cleaner(str(repo / ".git"), attrs, {p: base[p] for p in names if p in base})
        try:
            for p in names:
                cleaned = cleaner.clean(p, files[p])
                got = blob_id(files[p] if cleaned is None else cleaned)
                assert got == want[p], f"{name}: {p}: git add stores {want[p]}, avfs {got}"
                checked += 1
        finally:
            cleaner.close()
        for d in attrs:
            (repo / d / ".gitattributes").unlink()
        (repo / ".gitattributes").write_bytes(b"* -text\n")
    assert checked == len(names) * len(ATTRIBUTE_SETS)


def _plain_tree(vault_path: str, rev: str, files: dict[str, bytes], tmp: Path) -> str:
    """The tree `git add -A` makes of ``files`` written over a checkout of ``rev``."""
    wt = tmp / "plain"
    _git(tmp, "clone", "-q", "--no-checkout", vault_path, str(wt))
    _git(wt, "checkout", "-q", rev)
    for p, data in files.items():
        (wt / p).parent.mkdir(parents=True, exist_ok=True)
        (wt / p).write_bytes(data)
    _git(wt, "add", "-A")
    tree = _git(wt, "write-tree").strip()
    shutil.rmtree(wt)
    return tree


def test_a_checkpoint_records_what_git_add_does_and_keeps_the_files(vault, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = vault.workspace("main")
    ws.write(".gitattributes", b"* text=auto\n*.bat eol=crlf\n*.bin binary\nid.txt ident\n")
    ws.write("kept.txt", b"old\r\nbytes\r\n")  # committed before the attributes: CRLF stays
    first = checkpoint.save(vault, name="base").checkpoint.commit
    changed = {
        "a.txt": b"x\r\ny\r\n",
        "sub/b.txt": b"mixed\r\nends\n",
        "make.bat": b"@echo off\r\n",
        "d.bin": b"a\r\n\0\r\n",
        "id.txt": b"$Id: old $\r\n",
        "kept.txt": b"old\r\nbytes\r\nmore\r\n",
    }
    for p, data in changed.items():
        ws.write(p, data)
    res = checkpoint.save(vault, name="c1")
    assert res.checkpoint.changes == len(changed)
    commit = res.checkpoint.commit
    tree = vault.store.commit_tree(commit)
    assert tree == _plain_tree(vault.path, first, changed, tmp_path)
    assert vault.store.blob_data(vault.store.tree_lookup(tree, "a.txt")[0]) == b"x\ny\n"
    assert vault.store.blob_data(vault.store.tree_lookup(tree, "id.txt")[0]) == b"$Id$\n"
    # the workspace keeps the bytes as they were written, as git's work tree does, and a
    # status compares them as `git add` would: nothing changed
    for p, data in changed.items():
        assert ws.read(p) == data, p
    assert ws.status() == []
    assert checkpoint.save(vault, name="c2").created is False
    # a restore's recovery keeps the bytes as they are: undo brings back the CRLF files
    ws.write("a.txt", b"x\r\ny\r\nz\r\n")
    checkpoint.restore(vault, None, "base")
    assert not ws.exists("a.txt")
    checkpoint.undo(vault)
    assert ws.read("a.txt") == b"x\r\ny\r\nz\r\n"
    assert ws.read("kept.txt") == changed["kept.txt"]


def test_a_filter_driver_is_never_run_and_the_bytes_are_kept(vault, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A ``filter=`` attribute names a program of the person's config: avfs records the
    bytes as they are and runs nothing (the file and the attributes may come from a confined
    command)."""
    marker = tmp_path / "ran"
    _git(Path(vault.path), "config", "filter.up.clean", f"touch {marker}; tr a-z A-Z")
    ws = vault.workspace("main")
    ws.write(".gitattributes", b"*.up filter=up text\n")
    ws.write("x.up", b"low\r\n")
    commit = checkpoint.save(vault, name="c").checkpoint.commit
    tree = vault.store.commit_tree(commit)
    assert vault.store.blob_data(vault.store.tree_lookup(tree, "x.up")[0]) == b"low\n"  # (text: yes)
    assert not marker.exists()


@pytest.mark.parametrize("attrs", [b"", b"# nothing here\n"])
def test_no_conversion_without_attributes(vault, attrs: bytes) -> None:  # type: ignore[no-untyped-def]
    ws = vault.workspace("main")
    if attrs:
        ws.write(".gitattributes", attrs)
    ws.write("a.txt", b"x\r\ny\r\n")
    commit = checkpoint.save(vault, name="c").checkpoint.commit
    tree = vault.store.commit_tree(commit)
    assert vault.store.blob_data(vault.store.tree_lookup(tree, "a.txt")[0]) == b"x\r\ny\r\n"
    assert ws.status() == []


def test_a_file_past_the_bound_is_recorded_as_it_is_and_never_read_whole(vault, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """git's clean conversion runs in memory, and avfs's took ~4x a file's size (the
    sixteenth round, NAME=attack7: a confined command's ``* text`` and a 256 MiB file of
    CRLF lines took the mount's daemon to 1.06 GB in the exec's commit). A file past
    ``MAX_CONVERTED`` (git's ``core.bigFileThreshold``) is recorded as it is, streamed,
    and a status compares it so; one below it is converted as before. An attributes file
    past git's own bound (``ATTR_MAX_FILE_SIZE``) is ignored, as git ignores it."""
    from avfs_git.core.workspace import wsattrs

    monkeypatch.setattr(wsattrs, "MAX_CONVERTED", 4096)
    ws = vault.workspace("main")
    ws.write(".gitattributes", b"* text\n")
    big, small = b"line\r\n" * 1000, b"x\r\ny\r\n"
    ws.write("big.txt", big)
    ws.write("small.txt", small)
    tree = vault.store.commit_tree(checkpoint.save(vault, name="c").checkpoint.commit)
    assert vault.store.blob_data(vault.store.tree_lookup(tree, "big.txt")[0]) == big
    assert vault.store.blob_data(vault.store.tree_lookup(tree, "small.txt")[0]) == b"x\ny\n"
    assert ws.status() == []
    monkeypatch.setattr(wsattrs, "MAX_ATTRIBUTES", 64)
    ws.write("sub/.gitattributes", b"# padding past the bound\n" * 4 + b"* -text\n")
    ws.write("sub/a.txt", small)
    tree = vault.store.commit_tree(checkpoint.save(vault, name="d").checkpoint.commit)
    assert vault.store.blob_data(vault.store.tree_lookup(tree, "sub/a.txt")[0]) == b"x\ny\n"  # (ignored)
