"""grep, find and full-text search over a fork's view (base + overlay) and over revisions."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from avfs_git.core.errors import PathNotFoundError, RevisionNotFoundError, UsageError
from avfs_git.core.operations import checkpoint, fts, greppattern, history, search
from avfs_git.core.vaults.vault import Vault
from avfs_git.core.workspace.workspace import Workspace

from .conftest import CliResult
from .test_json_schemas import single_document, validate

Cli = Callable[..., CliResult]


@pytest.fixture
def tree(vault: Vault, ws: Workspace) -> Workspace:
    """Checkpoint `base`: a.txt, src/main.py, src/util.py, docs/guide.md, bin.dat (binary),
    link -> a.txt; then uncheckpointed: new.txt, src/main.py modified, docs/guide.md deleted."""
    ws.write("a.txt", b"Hello world\nsecond line\nhello again\n")
    ws.write("src/main.py", b"import util\n\ndef main():\n    util.hello()\n")
    ws.write("src/util.py", b"def hello():\n    print('hello_world')\n")
    ws.write("docs/guide.md", b"# Guide\nthe quick brown fox\n")
    ws.write("bin.dat", b"hello\x00\x01\x02 binary")
    ws.symlink("a.txt", "link")
    checkpoint.save(vault, "main", "base")
    ws.write("new.txt", b"a brand new hello\n")
    ws.write("src/main.py", b"import util\n\ndef main():\n    util.goodbye()\n")
    ws.remove("docs/guide.md")
    return ws


def paths(res: search.GrepResult) -> list[str]:
    return [f.path for f in res.files]


# -- grep ------------------------------------------------------------------------------------
def test_grep_sees_base_and_overlay(tree: Workspace) -> None:
    res = search.grep(tree, "hello")
    assert paths(res) == ["a.txt", "new.txt", "src/util.py"]  # not the deleted/modified ones
    a = res.files[0]
    assert a.count == 1 and [(ln.line, ln.text) for ln in a.lines] == [(3, "hello again")]
    assert res.binary_skipped == 1 and res.rev is None
    assert paths(search.grep(tree, "goodbye")) == ["src/main.py"]  # the modified content
    assert paths(search.grep(tree, "quick")) == []  # deleted


def test_grep_at_a_revision(tree: Workspace, vault: Vault) -> None:
    res = search.grep(tree, "hello", rev="base")
    assert paths(res) == ["a.txt", "src/main.py", "src/util.py"]
    assert res.rev == history.resolve(vault, "base", "main")
    assert paths(search.grep(tree, "quick", rev="base")) == ["docs/guide.md"]
    assert paths(search.grep(tree, "quick", rev="main")) == ["docs/guide.md"]  # fork name: its tip
    with pytest.raises(RevisionNotFoundError):
        search.grep(tree, "x", rev="nosuch")


def test_grep_flags(tree: Workspace) -> None:
    assert paths(search.grep(tree, "HELLO", ignore_case=True)) == ["a.txt", "new.txt", "src/util.py"]
    a = search.grep(tree, "hello", ["a.txt"], ignore_case=True).files[0]
    assert a.count == 2 and [ln.line for ln in a.lines] == [1, 3]
    # -w: hello_world is one word, hello() is not
    assert paths(search.grep(tree, "hello", ["src"], word=True)) == ["src/util.py"]
    util = search.grep(tree, "hello", ["src/util.py"], word=True).files[0]
    assert [ln.line for ln in util.lines] == [1]
    # -F: regex characters are literal
    tree.write("re.txt", b"a.b\naxb\n(x)\n")
    assert [ln.text for ln in search.grep(tree, "a.b", ["re.txt"]).files[0].lines] == ["a.b", "axb"]
    assert [ln.text for ln in search.grep(tree, "a.b", ["re.txt"], fixed=True).files[0].lines] == ["a.b"]
    assert paths(search.grep(tree, "(x)", fixed=True)) == ["re.txt"]
    # -l and -c
    files = search.grep(tree, "hello", files_only=True, ignore_case=True)
    assert next((f.path, f.count, f.lines) for f in files.files) == ("a.txt", None, [])
    counts = search.grep(tree, "hello", count_only=True, ignore_case=True)
    assert next((f.path, f.count, f.lines) for f in counts.files) == ("a.txt", 2, [])


def test_grep_lines_are_lines(ws: Workspace) -> None:
    ws.write("t.txt", b"one\ntwo  three\n\nfour\nlast no newline")
    got = search.grep(ws, r"\s+t").files[0]
    assert [(ln.line, ln.text) for ln in got.lines] == [(2, "two  three")]  # not across lines
    assert [ln.line for ln in search.grep(ws, "^$").files[0].lines] == [3]
    assert [ln.line for ln in search.grep(ws, "newline$").files[0].lines] == [5]
    assert search.grep(ws, "o").files[0].count == 4
    ws.write("u.txt", "naïve CAFÉ\n".encode())
    assert paths(search.grep(ws, "café", ignore_case=True)) == ["u.txt"]  # non-ASCII case folding


def test_grep_globs_and_paths(tree: Workspace) -> None:
    assert paths(search.grep(tree, "hello", globs=["*.py"])) == ["src/util.py"]
    assert paths(search.grep(tree, "hello", globs=["*.txt"])) == ["a.txt", "new.txt"]
    assert paths(search.grep(tree, "hello", globs=["!*.txt"])) == ["src/util.py"]
    assert paths(search.grep(tree, "hello", globs=["src/*"])) == ["src/util.py"]
    assert paths(search.grep(tree, "hello", globs=["*.txt", "*.py"])) == ["a.txt", "new.txt", "src/util.py"]
    # git's path order, whatever the paths' order (it was the paths' order)
    assert paths(search.grep(tree, "hello", ["src", "new.txt"])) == ["new.txt", "src/util.py"]
    with pytest.raises(PathNotFoundError):
        search.grep(tree, "hello", ["docs/guide.md"])


def test_grep_skips_binary_and_symlinks(tree: Workspace) -> None:
    res = search.grep(tree, "binary")
    assert res.files == [] and res.binary_skipped == 1
    tree.write("late.bin", b"x" * 9000 + b"\x00 hello")  # NUL after the first 8000 bytes: text
    assert "late.bin" in paths(search.grep(tree, "hello"))
    assert "link" not in paths(search.grep(tree, "Hello"))


def test_grep_invalid_and_catastrophic_patterns(ws: Workspace) -> None:
    ws.write("a.txt", b"a" * 30 + b"b\n")
    with pytest.raises(UsageError, match="invalid regular expression"):
        search.grep(ws, "(unclosed")
    for bad in ("(a+)+$", "(a*)*b", r"(\w+\s?)+$", "(a{1,3})+$"):
        with pytest.raises(UsageError, match="exponential"):
            search.grep(ws, bad)
    # possessive / atomic forms are accepted and fast
    assert search.grep(ws, "(a++)+$").files == []
    assert search.grep(ws, "(?>a+)+b").files[0].count == 1
    # what the up-front check lets through is bounded by the time budget
    ws.write("long.txt", b"a" * 5000 + b"!\n")
    # (the budget's own error is the check: a wall-clock bound here failed under load;
    # without the budget the match would not end within the test's timeout)
    with pytest.raises(UsageError, match="took more than") as info:
        search.grep(ws, "(.*a){3}$", match_timeout_s=0.2)
    assert info.value.details["path"] == "long.txt"
    with pytest.raises(UsageError):
        search.grep(ws, "")


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a|a)*$", "alternation"),
        ("(a|aa)*$", "alternation"),
        ("(?:(?:a)|(?:a))*z", "alternation"),
        ("(ab|a)*$", "alternation"),
        ("(xa|ya|xab)+$", "alternation"),
        ("(a|)*$", "alternation"),
        ("(?i)(ab|Ac)*$", "alternation"),
        ("(.*a){12}$", "count"),
        ("(?:\\w*a){2,9}$", "count"),
        ("a*a*a*a*a*a*a*a*a*a*a*a*b", "row"),
        (".*x.*x.*x.*x.*x$", "row"),
        ("(a|a?)+$", "nested"),
    ],
)
def test_grep_refuses_ambiguous_repeats_up_front(ws: Workspace, pattern: str, reason: str) -> None:
    with pytest.raises(UsageError, match="refusing pattern") as info:
        greppattern.compile_pattern(pattern)
    assert info.value.details["reason"] == reason


@pytest.mark.parametrize(
    "pattern",
    [
        "(foo|bar)*$",
        "(a|ba)*b",
        "(\\w|a)*!x",  # compiled to the set [\wa]: nothing to choose between
        "^([^,]*,){9}",  # [^,]* stops at the comma
        "(\\d{1,3}\\.){3}\\d{1,3}",
        "([0-9a-f]{1,4}:){7}[0-9a-f]{1,4}",
        "\\s*\\w+\\s*=\\s*\\S+",
        "(.*a){4}$",
        "(.*+a){12}$",
        "a*+a*+a*+a*+a*+a*+b",
        "(?>a|aa)*$",
        "TODO|FIXME",
    ],
)
def test_grep_accepts_unambiguous_repeats(ws: Workspace, pattern: str) -> None:
    greppattern.compile_pattern(pattern)


def test_grep_budget_holds_off_the_main_thread(ws: Workspace) -> None:
    import threading

    ws.write("long.txt", b"a" * 5000 + b"!\n")
    ws.write("text.txt", b"hello\nw\xffrld hello\n\xc3\xa9t\xc3\xa9 Hello\n")
    ws.write("bin.dat", b"\0hello")
    got: dict[str, Any] = {}

    def run(name: str, *args: Any, **kw: Any) -> None:
        try:
            got[name] = search.grep(ws, *args, **kw)
        except UsageError as exc:
            got[name] = exc

    # off the main thread, a regex search gives what it gives in the main thread
    cases: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        (("hello",), {}),
        (("HELLO",), {"ignore_case": True}),
        (("ÉTÉ",), {"ignore_case": True}),
        (("l+o",), {"files_only": True}),
        (("l+o",), {"count_only": True}),
        (("w.rld",), {}),
        (("nothing-here",), {}),
    ]
    for i, (args, kw) in enumerate(cases):
        th = threading.Thread(target=run, args=(str(i), *args), kwargs=kw)
        th.start()
        th.join(60)
        assert got[str(i)] == search.grep(ws, *args, **kw), (args, kw)
    # and its time budget holds there too (it ran unbounded before)
    th = threading.Thread(
        target=run, args=("slow", "(.*a){3}$"), kwargs={"match_timeout_s": 0.5}, daemon=True
    )
    th.start()
    th.join(30)
    assert not th.is_alive(), "the budget did not stop the search in a thread"
    err = got["slow"]
    assert isinstance(err, UsageError) and "took more than" in err.message, err
    assert err.details["path"] == "long.txt"


def test_grep_renamed_directory_and_restored_tree(tree: Workspace, vault: Vault) -> None:
    tree.rename("src", "lib")
    assert paths(search.grep(tree, "util")) == ["lib/main.py"]
    checkpoint.save(vault, "main", "moved")
    checkpoint.restore(vault, "main", "base")
    ws = vault.workspace("main")
    assert paths(search.grep(ws, "util")) == ["src/main.py"]


# -- find ------------------------------------------------------------------------------------
def entries(res: search.FindResult) -> list[str]:
    return [e.path for e in res.entries]


def test_find_matches_walk(tree: Workspace) -> None:
    assert entries(search.find(tree)) == [d.path for d in tree.walk("")]
    assert entries(search.find(tree, "src")) == ["src", "src/main.py", "src/util.py"]
    assert entries(search.find(tree, "a.txt")) == ["a.txt"]
    assert "docs/guide.md" in entries(search.find(tree, rev="base"))


def test_find_filters(tree: Workspace, vault: Vault) -> None:
    assert entries(search.find(tree, name="*.py")) == ["src/main.py", "src/util.py"]
    assert entries(search.find(tree, kind="d")) == ["docs", "src"]
    assert entries(search.find(tree, kind="l")) == ["link"]
    assert "link" not in entries(search.find(tree, kind="f"))
    big = search.find(tree, size="+30")
    assert {(e.path, e.size) for e in big.entries} == {
        ("a.txt", 36),
        ("src/main.py", 44),
        ("src/util.py", 38),
    }
    assert entries(search.find(tree, size="-10")) == ["link"]
    assert entries(search.find(tree, size="18")) == ["new.txt"]
    tree.write("k.bin", b"x" * 2048)
    assert entries(search.find(tree, size="2k")) == ["k.bin"]
    with pytest.raises(UsageError):
        search.find(tree, size="10 parsecs")
    with pytest.raises(UsageError):
        search.find(tree, kind="x")


def test_find_newer(tree: Workspace, vault: Vault) -> None:
    got = entries(search.find(tree, newer="base"))
    assert got == ["new.txt", "src/main.py"]
    # a file rewritten with the same bytes is not newer
    tree.write("a.txt", b"Hello world\nsecond line\nhello again\n")
    assert entries(search.find(tree, newer="base")) == ["new.txt", "src/main.py"]
    tree.mkdir("empty")
    assert entries(search.find(tree, newer="base")) == ["empty", "new.txt", "src/main.py"]
    checkpoint.save(vault, "main", "two")
    assert entries(search.find(tree, newer="two")) == ["empty"]  # git keeps no empty directory
    assert entries(search.find(tree, newer="base", rev="two")) == ["new.txt", "src/main.py"]


# -- full-text search ------------------------------------------------------------------------
def test_search_ranks_and_snippets(tree: Workspace, vault: Vault) -> None:
    tree.write("notes/fox.md", b"fox fox fox: all about the fox\n")
    tree.write("notes/other.md", b"one fox among many other words here and there\n")
    res = fts.search(vault, "main", "fox")
    assert [h.path for h in res.hits][:2] == ["notes/fox.md", "notes/other.md"]
    assert res.hits[0].score > res.hits[1].score
    assert "**fox**" in res.hits[0].snippet
    assert res.index.full and res.index.docs == 6  # a, new, main, util, fox, other (not bin.dat)
    # path words count too
    assert fts.search(vault, "main", "util").hits[0].path == "src/util.py"
    assert [h.path for h in fts.search(vault, "main", "fox", limit=1).hits] == ["notes/fox.md"]
    assert fts.search(vault, "main", '"brand new"').hits[0].path == "new.txt"
    assert fts.search(vault, "main", "hel*").hits
    assert fts.search(vault, "main", "quick").hits == []  # deleted in the overlay


def test_search_index_is_incremental(tree: Workspace, vault: Vault) -> None:
    with fts.SearchIndex(tree) as index:
        first = index.update()
        assert (first.full, first.indexed, first.docs) == (True, 5, 4)  # bin.dat read, not indexed
        assert index.update().indexed == 0  # nothing changed: nothing read
        tree.write("x1.txt", b"zebra one\n")
        tree.write("src/util.py", b"def hello():\n    print('zebra')\n")
        tree.remove("new.txt")
        upd = index.update()
        assert (upd.full, upd.indexed, upd.removed) == (False, 2, 1)
        assert {h.path for h in index.search("zebra", update=False).hits} == {"x1.txt", "src/util.py"}
        # a checkpoint moves overlay files into the base: same blobs, nothing re-read
        checkpoint.save(vault, "main", "c2")
        upd = index.update()
        assert (upd.indexed, upd.removed) == (0, 0) and upd.regions > 0
        # a restore changes the base tree: only the differing files are touched
        checkpoint.restore(vault, "main", "base")
        upd = index.update()
        assert (upd.indexed, upd.removed) == (3, 1)  # guide.md, util.py, main.py back; x1 gone
        assert index.search("zebra", update=False).hits == []
        # an in-place change of a materialized file (a mount's write) is seen by its mtime
        ws = vault.workspace("main")
        node = ws.materialize("a.txt")
        assert node.entry is not None and node.entry.fileid is not None
        fpath = ws.overlay.file_path(node.entry.fileid)
        with open(fpath, "wb") as fh:
            fh.write(b"walrus\n")
        os.utime(fpath, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
        assert index.update().indexed == 1
        assert [h.path for h in index.search("walrus").hits] == ["a.txt"]
        assert index.stats.full_builds == 1


def test_search_rebuild_equals_incremental(tree: Workspace, vault: Vault) -> None:
    def dump(path: str) -> list[Any]:
        import sqlite3

        db = sqlite3.connect(path)
        try:
            return db.execute(
                "SELECT docs.path, docs.oid, docs.indexed, fts.body FROM docs"
                " LEFT JOIN fts ON fts.rowid = docs.id ORDER BY docs.path"
            ).fetchall()
        finally:
            db.close()

    fts.search(vault, "main", "hello")
    tree.write("later.txt", b"later words\n")
    tree.rename("src", "lib")
    checkpoint.save(vault, "main")
    tree.write("lib/util.py", b"changed\n")
    res = fts.search(vault, "main", "words")
    assert not res.index.full and res.hits[0].path == "later.txt"
    db_path = os.path.join(tree.state_dir, fts.INDEX_FILE)
    incremental = dump(db_path)
    upd = fts.rebuild(vault, "main")
    assert upd.full
    assert dump(db_path) == incremental


def test_search_query_syntax(tree: Workspace, vault: Vault) -> None:
    tree.write("dots.txt", b"call foo.bar(1) and baz-qux\n")
    res = fts.search(vault, "main", "foo.bar")  # not FTS5 syntax, no operators: quoted
    assert res.query == '"foo.bar"' and res.hits[0].path == "dots.txt"
    assert fts.search(vault, "main", "baz-qux").hits[0].path == "dots.txt"
    for bad in ('"unterminated', "hello AND (", "nosuchcolumn:x", "OR"):
        with pytest.raises(UsageError, match="invalid search query"):
            fts.search(vault, "main", bad)
    with pytest.raises(UsageError):
        fts.search(vault, "main", "  ")
    with pytest.raises(UsageError):
        fts.search(vault, "main", "x", limit=0)


def test_search_skips_big_files(ws: Workspace, vault: Vault) -> None:
    ws.write("big.txt", b"needle " * (fts.MAX_DOC_BYTES // 7 + 10))
    ws.write("small.txt", b"needle\n")
    assert [h.path for h in fts.search(vault, "main", "needle").hits] == ["small.txt"]


# -- CLI -------------------------------------------------------------------------------------
def test_cli_grep(tree: Workspace, cli: Cli) -> None:
    r = cli("--vault", "v", "grep", "-n", "hello")
    assert r.code == 0
    assert r.out.splitlines() == [
        "a.txt:3:hello again",
        "new.txt:1:a brand new hello",
        "src/util.py:1:def hello():",
        "src/util.py:2:    print('hello_world')",
    ]
    assert cli("--vault", "v", "grep", "hello", "a.txt").out == "a.txt:hello again\n"
    assert cli("--vault", "v", "grep", "-l", "-i", "hello").out.splitlines() == [
        "a.txt",
        "new.txt",
        "src/util.py",
    ]
    assert cli("--vault", "v", "grep", "-c", "-i", "hello", "--glob", "*.txt").out == "a.txt:2\nnew.txt:1\n"
    assert cli("--vault", "v", "grep", "-w", "-F", "util.hello", "--rev", "base").out == (
        "src/main.py:    util.hello()\n"
    )
    none = cli("--vault", "v", "grep", "nothing-matches-this")
    assert (none.code, none.out) == (1, "")
    bad = cli("--vault", "v", "grep", "(a+)+$")
    assert bad.code == 2 and "exponential" in bad.err


def _doc(r: CliResult) -> dict[str, Any]:
    doc = single_document(r)
    validate(doc)
    return doc


def test_cli_json_documents(tree: Workspace, cli: Cli) -> None:
    doc = _doc(r := cli("--json", "--vault", "v", "grep", "hello"))
    assert r.code == 0 and doc["kind"] == "grep" and doc["files_matched"] == 3 and doc["matches"] == 4
    assert doc["files"][0] == {"path": "a.txt", "count": 1, "lines": [{"line": 3, "text": "hello again"}]}
    doc = _doc(r := cli("--json", "--vault", "v", "grep", "-l", "zzz-nothing"))
    assert r.code == 1 and doc["kind"] == "grep" and doc["files"] == []
    doc = _doc(cli("--json", "--vault", "v", "grep", "-c", "hello", "--rev", "base"))
    assert doc["mode"] == "count" and len(doc["rev"]) == 40
    doc = _doc(r := cli("--json", "--vault", "v", "grep", "(a+)+$"))
    assert r.code == 2 and doc["kind"] == "error" and doc["error"]["code"] == "usage"
    doc = _doc(r := cli("--json", "--vault", "v", "grep", "["))
    assert r.code == 2 and doc["error"]["code"] == "usage"

    doc = _doc(r := cli("--json", "--vault", "v", "find", "--type", "f", "--size", "+30"))
    assert r.code == 0 and [e["path"] for e in doc["entries"]] == ["a.txt", "src/main.py", "src/util.py"]
    doc = _doc(cli("--json", "--vault", "v", "find", "src", "--newer", "base"))
    assert [e["path"] for e in doc["entries"]] == ["src/main.py"] and doc["path"] == "src"
    doc = _doc(r := cli("--json", "--vault", "v", "find", "--size", "huge"))
    assert r.code == 2 and doc["kind"] == "error"

    doc = _doc(r := cli("--json", "--vault", "v", "search", "hello"))
    assert r.code == 0 and doc["kind"] == "search" and doc["hits"] and doc["index"]["full"]
    doc = _doc(cli("--json", "--vault", "v", "search", "hello", "--limit", "1"))
    assert len(doc["hits"]) == 1 and doc["index"]["indexed"] == 0
    doc = _doc(cli("--json", "--vault", "v", "search", "--rebuild"))
    assert doc["query"] is None and doc["index"]["full"]
    doc = _doc(r := cli("--json", "--vault", "v", "search", "hello AND ("))
    assert r.code == 2 and doc["error"]["code"] == "usage"
    # bytes that are not UTF-8 (argv's `$'\xff'`) and a limit SQLite cannot hold: usage errors
    doc = _doc(r := cli("--json", "--vault", "v", "search", "\udcff"))
    assert r.code == 2 and doc["error"]["code"] == "usage" and "UTF-8" in doc["error"]["message"]
    doc = _doc(r := cli("--json", "--vault", "v", "search", "hello", "--limit", "99999999999999999999"))
    assert r.code == 2 and doc["error"]["code"] == "usage" and "at most" in doc["error"]["message"]
    assert len(_doc(cli("--json", "--vault", "v", "search", "hello", "--limit", "10000"))["hits"]) == 3
    r = cli("--vault", "v", "search", "fox")
    assert r.code == 0 and r.out == ""
    r = cli("--vault", "v", "search", "goodbye")
    assert "src/main.py" in r.out and "goodbye" in r.out
    json.loads(cli("--json", "--vault", "v", "search", "x y z").out)


# -- against git grep, on a real project ------------------------------------------------------


@pytest.fixture
def lodash(home: Any, tmp_path: Any) -> tuple[Workspace, Any]:
    """A real project (lodash's npm package) as a git checkout and as a fork, the same
    uncommitted changes in both (a modification, a deletion, a new file, a rename), and an
    ignored `node_modules` (a copy of part of the package) in both."""
    return _make_lodash(home, tmp_path)


@pytest.fixture(scope="module")
def lodash_read(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, Any]]:
    """:func:`lodash` made once a module, in a home of its own, for the tests that only read
    it (the `git grep` comparisons: seven cases, each ~1.2 s of CPU making its own;
    suitetime26); made in the environment the hermetic fixture gives a test (it is not
    active yet), and its vaults checked by `git fsck` at the end as a test's are."""
    import pygit2
    from pygit2.enums import ConfigLevel

    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE

    from .conftest import AUTHOR, POLICY_PATHS, _fsck_every_vault, layers_switch, remove_home

    top = tmp_path_factory.mktemp("lodash")
    user = top / "userhome"
    user.mkdir()
    (user / ".gitconfig").write_text(
        f"[user]\n\tname = {AUTHOR[0]}\n\temail = {AUTHOR[1]}\n[init]\n\tdefaultBranch = main\n"
    )
    sp = pygit2.settings.search_path
    paths = {
        ConfigLevel.GLOBAL: str(user),
        ConfigLevel.XDG: str(user / ".config" / "git"),
        ConfigLevel.SYSTEM: str(top / "nosystem"),
    }
    saved = {level: sp[level] for level in paths}
    try:
        with pytest.MonkeyPatch.context() as mp:  # as the hermetic fixture sets a test's
            for key in [k for k in os.environ if k.startswith(("GIT_", "AVFS_"))]:
                mp.delenv(key)
            layers_switch(mp)
            env = {"HOME": str(user), "XDG_CONFIG_HOME": str(user / ".config"), "AVFS_SERVER": "off"}
            env.update(GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME=AUTHOR[0], GIT_AUTHOR_EMAIL=AUTHOR[1])
            env.update(GIT_COMMITTER_NAME=AUTHOR[0], GIT_COMMITTER_EMAIL=AUTHOR[1])
            for key, value in env.items():
                mp.setenv(key, value)
            for level, where in paths.items():
                sp[level] = where
            home = Home(str(top / "avfs-home"), author=AUTHOR, mounts=MOUNT_SIDE, paths=POLICY_PATHS)
            made = _make_lodash(home, top)
    finally:
        for level, where in saved.items():
            sp[level] = where
    try:
        yield made
    finally:
        home.close()
        _fsck_every_vault(top / "avfs-home" / "vaults")
        remove_home(home.path)


def _make_lodash(home: Any, tmp_path: Any) -> tuple[Workspace, Any]:
    """:func:`lodash`'s checkout (under ``tmp_path``) and fork (in ``home``)."""
    import shutil
    import subprocess

    from . import realdata
    from .conftest import git

    src = realdata.extract(realdata.npm_tarball("lodash", "4.17.21"), tmp_path / "pkg")
    checkout = tmp_path / "checkout"
    shutil.copytree(src, checkout)
    (checkout / ".gitignore").write_text("node_modules/\n")
    git("init", "-q", "-b", "main", cwd=checkout)
    git("add", "-A", cwd=checkout)
    git("commit", "-qm", "lodash 4.17.21", cwd=checkout)
    v = home.create_vault("lodash", from_dir=str(checkout))
    ws = v.workspace()
    edits: dict[str, bytes | None] = {
        "memoize.js": (checkout / "memoize.js").read_bytes() + b"\n// memoize: a local edit\n",
        "debounce.js": None,
        "NEW.js": b"function brandNew() { return memoize; }\n",
    }
    for rel, data in edits.items():
        if data is None:
            ws.remove(rel)
            (checkout / rel).unlink()
        else:
            ws.write(rel, data)
            (checkout / rel).write_bytes(data)
    ws.rename("throttle.js", "throttle2.js")
    (checkout / "throttle.js").rename(checkout / "throttle2.js")
    for p in [*sorted(src.glob("*.js"))[:150], src / "memoize.js", src / "_memoizeCapped.js"]:
        data = p.read_bytes()
        ws.write(f"node_modules/lodash/{p.name}", data, parents=True)
        (checkout / "node_modules" / "lodash").mkdir(parents=True, exist_ok=True)
        (checkout / "node_modules" / "lodash" / p.name).write_bytes(data)
    assert subprocess.run(
        ["git", "status", "--porcelain"], cwd=checkout, capture_output=True, text=True
    ).stdout
    return ws, checkout


def _git_grep_counts(checkout: Any, *args: str) -> dict[str, int]:
    import subprocess

    proc = subprocess.run(
        ["git", "grep", "-I", "-c", "--untracked", *args],
        cwd=checkout,
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    assert proc.returncode in (0, 1), proc.stderr
    out: dict[str, int] = {}
    for ln in proc.stdout.splitlines():
        path, _, n = ln.rpartition(":")
        out[path] = int(n)
    return out


@pytest.mark.parametrize(
    ("pattern", "flags", "git_args"),
    [
        ("memoize", {}, ["-F"]),
        (r"function\s+\w+\(", {}, ["-P"]),
        ("MEMOIZE", {"ignore_case": True}, ["-i", "-F"]),
        ("key", {"word": True}, ["-w", "-F"]),
        ("a.b", {"fixed": True}, ["-F"]),
        (r"return (undefined|null);", {}, ["-P"]),
        (r"\d{3,}", {}, ["-P"]),  # no substring to hand git: every file is matched here
    ],
)
def test_grep_counts_what_git_grep_counts(
    lodash_read: Any, pattern: str, flags: dict[str, bool], git_args: list[str]
) -> None:
    """`avfs grep` of a fork == `git grep --untracked` in a checkout with the same changes:
    the same files, the same line counts, `node_modules` skipped as git skips it, and with
    `include_ignored` searched as `git grep --no-exclude-standard` searches it."""
    ws, checkout = lodash_read
    got = search.grep(ws, pattern, count_only=True, **flags)
    want = _git_grep_counts(checkout, *git_args, "-e", pattern)
    assert {f.path: f.count for f in got.files} == want
    assert not any(p.startswith("node_modules/") for p in want)
    with_ignored = search.grep(ws, pattern, count_only=True, include_ignored=True, **flags)
    want_all = _git_grep_counts(checkout, "--no-exclude-standard", *git_args, "-e", pattern)
    assert {f.path: f.count for f in with_ignored.files} == want_all
    if want_all != want:
        assert any(p.startswith("node_modules/") for p in want_all)


def test_grep_cli_skips_ignored_unless_asked_and_search_too(lodash: Any, cli: Cli) -> None:
    ws, _checkout = lodash
    doc = single_document(cli("--json", "--vault", "lodash", "grep", "-l", "memoize"))
    assert validate(doc) == "grep"
    assert "memoize.js" in [f["path"] for f in doc["files"]]
    assert not any(f["path"].startswith("node_modules/") for f in doc["files"])
    assert "debounce.js" not in [f["path"] for f in doc["files"]]
    doc = single_document(cli("--json", "--vault", "lodash", "grep", "-l", "--ignored", "memoize"))
    assert any(f["path"].startswith("node_modules/") for f in doc["files"])
    hits = fts.search(ws.vault, "main", "memoize", limit=500).hits
    assert hits and not any(h.path.startswith("node_modules/") for h in hits)
    hits = fts.search(ws.vault, "main", "memoize", limit=500, include_ignored=True).hits
    assert any(h.path.startswith("node_modules/") for h in hits)
