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

from avfs_git.core.operations import checkpoint
from avfs_git.core.store.gitclean import Cleaner
from avfs_git.core.store.gitsmudge import MAX_FORM, Smudger, ident_to_worktree, to_git, to_worktree
from avfs_git.core.store.gitstore import blob_id
from avfs_git.core.types import MODE_BLOB
from avfs_git.core.workspace.wssmudge import CACHE_BYTES, CheckoutForms

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


def _blobs(repo: Path, oids: list[str]) -> dict[str, bytes]:
    """Each blob's bytes as git stores them, by id, from one `git cat-file --batch` (was a
    `git cat-file blob` process a file and attribute set: ~2,000 of the test's processes)."""
    out = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=repo,
        input="".join(f"{oid}\n" for oid in oids).encode(),
        check=True,
        capture_output=True,
    ).stdout
    got: dict[str, bytes] = {}
    at = 0
    for oid in oids:
        end = out.index(b"\n", at)
        name, kind, size = out[at:end].split()
        assert name.decode() == oid and kind == b"blob", out[at:end]
        at = end + 1 + int(size)
        got[oid] = out[end + 1 : at]
        assert out[at : at + 1] == b"\n"
        at += 1
    assert at == len(out)
    return got


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
            stored = _blobs(repo, [oid for oid, _ in want.values()])
            for p, (oid, written) in sorted(want.items()):
                data = stored[oid]
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


# Python's codecs that are no charset git's iconv knows: bytes-to-bytes ones, text ones that
# are no charset (punycode's encoder is quadratic: a 114 KB file of varied letters took 85 s
# of the mount daemon's CPU, the eighth attack round), one iconv spells otherwise
NOT_CHARSETS = ["rot13", "base64", "zlib_codec", "uu_codec", "hex", "bz2", "quopri", "idna", "punycode"]
NOT_CHARSETS += ["unicode_escape", "raw_unicode_escape", "undefined", "utf_8_sig", "palmos", "cp65001"]


def test_an_encoding_name_that_is_no_charset_is_shown_as_git_checkout_writes_it(tmp_path: Path) -> None:
    """A ``working-tree-encoding`` a confined command writes is any name: git converts
    through iconv, and leaves a file as its blob where iconv knows no such charset; avfs
    ran it through whatever Python codec had that name."""
    text = "".join(chr(c) for c in range(0x100, 0x400)) + "\nlatin \u00e9\n"
    files = {f"{i}.txt": text.encode() for i in range(len(NOT_CHARSETS) + 2)}
    names = [*NOT_CHARSETS, "latin-1", "UTF-7"]  # (the last two: charsets git converts to)
    attrs = {"": "".join(f"{i}.txt working-tree-encoding={n}\n" for i, n in enumerate(names)).encode()}
    repo = tmp_path / "repo"
    want = _checked_out(repo, files, {}, {})  # (git add refuses such a file: its blob first)
    (repo / ".gitattributes").write_bytes(attrs[""])
    for p in files:
        (repo / p).unlink()
    subprocess.run(["git", "checkout", "-f", "HEAD", "--", "."], cwd=repo, check=True, capture_output=True)
    want = {p: (oid, (repo / p).read_bytes()) for p, (oid, _) in want.items()}
    smudger = Smudger(str(repo / ".git"))
    cleaner = Cleaner(str(repo / ".git"), attrs, {})
    try:
        smudger.add_attributes("", attrs[""])
        for i, name in enumerate(names):
            p = f"{i}.txt"
            oid, written = want[p]
            data = _blobs(repo, [oid])[oid]
            got = smudger.smudge(p, data)
            assert (data if got is None else got) == written, f"{name}: git checkout wrote {written[:40]!r}"
            if name in NOT_CHARSETS:
                assert written == data and cleaner.clean(p, data) is None, name
    finally:
        smudger.close()
        cleaner.close()


def test_a_big_converted_file_is_converted_once_for_all_its_reads(vault) -> None:
    """A mount's lower view asks for a file's form at every read of 128 KiB: a form past a
    quarter of the cache was made again each time (the eighth attack round: a 32 MiB file
    under `* eol=crlf` took the mount's daemon over 300 s to read once)."""
    w = vault.workspace("main")
    w.write(".gitattributes", b"* eol=crlf\n")
    w.write("big.txt", b"0123456789abcdef\n" * (CACHE_BYTES // 4 // 17 + 1))
    commit = checkpoint.save(vault, name="big").checkpoint.commit
    forms = CheckoutForms(vault.store)
    tree = forms.tree_of(commit)
    oid = vault.store.tree_lookup(tree, "big.txt")[0]
    reads: list[int] = []

    def read() -> bytes:
        reads.append(1)
        return vault.store.blob_data(oid)

    try:
        got = [forms.form(tree, "big.txt", oid, MODE_BLOB, read) for _ in range(8)]
    finally:
        forms.close()
    assert got[0] is not None and got[0].count(b"\r\n") == CACHE_BYTES // 4 // 17 + 1
    assert all(g == got[0] for g in got) and len(reads) == 1, f"converted {len(reads)} times"


def test_a_form_past_the_bound_is_never_made(tmp_path: Path) -> None:
    """Each step's result is known before it runs: ``ident`` (each ``$Id$`` 46 bytes),
    end of lines (a file of line ends doubled), then UTF-32 (four times): one under all
    three grew ~90 times in the mount daemon's memory (the eighth attack round)."""
    repo = tmp_path / "repo"
    _git(tmp_path, "init", "-q", str(repo))
    attrs = b"* ident eol=crlf working-tree-encoding=UTF-32\n"
    smudger = Smudger(str(repo / ".git"))
    try:
        smudger.add_attributes("", attrs)
        small = smudger.smudge("a.txt", b"$Id$\n" * 10)
        assert small is not None and small.decode("utf-32").count("$Id: ") == 10
        assert smudger.smudge("a.txt", b"$Id$\n" * (MAX_FORM // 46)) is None
        assert smudger.smudge("a.txt", b"\n" * (MAX_FORM // 2)) is None
        assert smudger.smudge("a.txt", b"x" * (MAX_FORM // 4)) is None
        assert smudger.smudge("a.txt", b"x" * (MAX_FORM // 8)) is not None
    finally:
        smudger.close()
