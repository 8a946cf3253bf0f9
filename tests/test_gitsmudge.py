"""git's checkout conversions (docs/fuse.md, "Checkout conversions"): what ``git checkout``
writes for a blob under ``eol=crlf``, ``text`` with ``core.eol=crlf``, ``core.autocrlf=true``,
``ident`` and ``working-tree-encoding`` is what a mount shows of a file it serves from git.

The differential half commits the same files (ansible-core's sdist, whose tests hold CRLF,
mixed and lone-CR files, some of its other files, and crafted ones: mixed ends, a lone CR,
NUL bytes, ``$Id$`` keywords, UTF-16) under each attribute set with real git, checks them
out again with ``git checkout``, and holds :class:`~avfs_git.core.store.gitsmudge.Smudger`
(libgit2's filters, git's ident rule and Python's codecs) to the bytes git wrote; and
:class:`~avfs_git.core.store.gitclean.Cleaner` to what ``git add`` stores for a
``working-tree-encoding`` file.
"""

from __future__ import annotations

import codecs
import subprocess
from pathlib import Path

import pytest

from avfs_git.core.store.gitclean import Cleaner
from avfs_git.core.store.gitsmudge import Smudger, ident_to_worktree, to_git, to_worktree
from avfs_git.core.store.gitstore import blob_id

from .test_gitclean import _files

# (attributes by directory, config): each a way git's checkout converts
SMUDGE_SETS: dict[str, tuple[dict[str, bytes], dict[str, str]]] = {
    "eol-crlf": ({"": b"* text eol=crlf\n"}, {}),
    "eol-crlf-only": ({"": b"* eol=crlf\n"}, {}),
    "auto-crlf": ({"": b"* text=auto eol=crlf\n"}, {}),
    "text-core-eol": ({"": b"* text\n"}, {"core.eol": "crlf"}),
    "autocrlf": ({}, {"core.autocrlf": "true"}),
    "autocrlf-attrs": ({"": b"*.txt -text\n"}, {"core.autocrlf": "true"}),
    "crlf-attr": ({"": b"* crlf\n*.dat -crlf\n"}, {}),
    "ident": ({"": b"* ident\n"}, {}),
    "ident-crlf": ({"": b"* text eol=crlf ident\n"}, {}),
    "nested": ({"": b"* text=auto\n", "crafted": b"*.txt text eol=crlf\nmixed.txt -text\n"}, {}),
    "macro": ({"": b"[attr]win text eol=crlf\n*.txt win\n*.yml text=auto\n"}, {}),
    "encoding": (
        {
            "": b"*.txt text\n",
            "enc": b"*.u16 working-tree-encoding=UTF-16\n*.le working-tree-encoding=UTF-16LE eol=crlf\n"
            b"*.l1 working-tree-encoding=ISO-8859-1\n*.lebom working-tree-encoding=UTF-16LE-BOM\n"
            b"*.wbom working-tree-encoding=utf-16le-bom eol=crlf\n",
        },
        {},
    ),
}

ENCODED = {  # (what the person's editor writes: git add stores UTF-8)
    "enc/a.u16": "h\u00e9llo\nw\u00f6rld\n".encode("utf-16"),
    "enc/b.le": "line one\r\nline \u20ac\r\n".encode("utf-16-le"),
    "enc/c.l1": "caf\u00e9\n".encode("latin-1"),
    "enc/empty.u16": b"",
    # UTF-16 with a byte order mark, little- and big-endian (git add reads the mark; its
    # checkout writes what iconv's UTF-16 writes here: little-endian, a mark)
    "enc/le-bom.u16": codecs.BOM_UTF16_LE + "w\u00e9\r\nx\n".encode("utf-16-le"),
    "enc/be-bom.u16": codecs.BOM_UTF16_BE + "b\u00e9\nx\n".encode("utf-16-be"),
    # git's own UTF-16LE-BOM (utf8.c: little-endian with a mark; read as UTF-16)
    "enc/d.lebom": codecs.BOM_UTF16_LE + "d\u00e9\nx\n".encode("utf-16-le"),
    "enc/no-mark.lebom": "n\u00e9\nx\n".encode("utf-16-le"),
    "enc/e.wbom": codecs.BOM_UTF16_LE + "e\u00e9\r\nx\r\n".encode("utf-16-le"),
}


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _checked_out(
    repo: Path, files: dict[str, bytes], attrs: dict[str, bytes], config: dict[str, str]
) -> dict[str, tuple[str, bytes]]:
    """Commit ``files`` under ``attrs`` and ``config`` with git, check them out again, and
    give each path's blob id and the bytes git's checkout wrote."""
    _git(repo.parent, "init", "-q", str(repo))
    for k, v in config.items():
        _git(repo, "config", k, v)
    for d, text in attrs.items():
        (repo / d).mkdir(parents=True, exist_ok=True)
        (repo / d / ".gitattributes").write_bytes(text)
    for p, data in files.items():
        (repo / p).parent.mkdir(parents=True, exist_ok=True)
        (repo / p).write_bytes(data)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "files")
    for p in files:
        (repo / p).unlink()
    _git(repo, "checkout", "-f", "HEAD", "--", ".")
    blobs = {
        ln.split("\t", 1)[1]: ln.split()[2]
        for ln in _git(repo, "ls-tree", "-r", "-z", "HEAD").split("\0")
        if ln
    }
    return {p: (blobs[p], (repo / p).read_bytes()) for p in files}


def _blob(repo: Path, oid: str) -> bytes:
    return subprocess.run(["git", "cat-file", "blob", oid], cwd=repo, check=True, capture_output=True).stdout


def test_the_smudger_writes_what_git_checkout_does(tmp_path: Path) -> None:
    files = _files(tmp_path)
    files.pop("crafted/utf16.txt")  # (UTF-16 bytes under `text`: git's own round trip is lossy)
    checked = 0
    for name, (attrs, config) in SMUDGE_SETS.items():
        these = {**files, **ENCODED} if name == "encoding" else files
        repo = tmp_path / f"repo-{name}"
        want = _checked_out(repo, these, attrs, config)
        smudger = Smudger(str(repo / ".git"))
        try:
            for d in sorted(attrs):
                smudger.add_attributes(d, attrs[d])
            for p, (oid, written) in sorted(want.items()):
                data = _blob(repo, oid)
                got = smudger.smudge(p, data)
                got = data if got is None else got
                assert got == written, f"{name}: {p}: git checkout wrote {written[:80]!r}, avfs {got[:80]!r}"
                checked += 1
        finally:
            smudger.close()
    assert checked >= len(files) * len(SMUDGE_SETS)


def test_the_cleaner_decodes_a_working_tree_encoding_as_git_add_does(tmp_path: Path) -> None:
    attrs, config = SMUDGE_SETS["encoding"]
    repo = tmp_path / "repo"
    want = _checked_out(repo, ENCODED, attrs, config)
    cleaner = Cleaner(str(repo / ".git"), attrs, {})
    try:
        for p, data in ENCODED.items():
            cleaned = cleaner.clean(p, data)
            got = blob_id(data if cleaned is None else cleaned)
            assert got == want[p][0], p
    finally:
        cleaner.close()


@pytest.mark.parametrize(
    ("data", "want"),
    [
        (b"$Id$", b"$Id: X $"),
        (b"a $Id$ b $Id: old $ c\n", b"a $Id: X $ b $Id: X $ c\n"),
        (b"$Id: foreign 1.2 $\n", None),  # (another system's: a space inside)
        (b"$Id: broken\n$", None),  # (a line break before the dollar)
        (b"$Id", None),
        (b"$Idle$", None),
        (b"$Id:", None),
    ],
)
def test_ident_follows_git_s_rule(data: bytes, want: bytes | None) -> None:
    assert ident_to_worktree(data, "X") == want


def test_an_encoding_that_does_not_fit_is_left_as_git_leaves_it() -> None:
    assert to_worktree(b"\xff\xfe", "UTF-16") is None  # (not UTF-8: written as it is)
    assert to_git(b"h\0i\0", "UTF-16") is None  # (no byte order mark: git add refuses it)
    assert to_git(b"\xff\xfeh\0", "UTF-16LE") is None  # (a mark where the name gives the order)
    assert to_git("x".encode("utf-16"), "UTF-16") == b"x"
