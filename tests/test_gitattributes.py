""".gitattributes git fsck refuses: the checker against git itself, and checkpoints that
leave such an entry out, keep it in the workspace, and record it once it is fixed.

The differential half builds, in one bare repository, a tree for each *shape* (a file, a
directory or a symbolic link named ``.gitattributes``, a case variant or an NTFS/HFS+
synonym, at some depth) and, for a file, each *content* (lines around git's 2048-byte
limit, CRLF, no final newline, NUL bytes, several long lines), runs ``git fsck --strict``
once and compares what it says of each with what avfs says: the name checker
(:func:`avfs_git.core.store.gitnames.path_refusal`) and the content checker
(:func:`avfs_git.core.store.gitattributes.refusal`, through the rule the checkpoint applies,
:func:`avfs_git.core.workspace.wsgitrules.fsck_read`).
"""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
from pathlib import Path

import pygit2
from hypothesis import given, settings
from hypothesis import strategies as st

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import gitattributes, gitnames
from avfs_git.core.store.packwriter import OBJ_BLOB, PackWriter
from avfs_git.core.types import MODE_BLOB, MODE_LINK, MODE_TREE
from avfs_git.core.workspace.overlayentry import OBJECT, Entry
from avfs_git.core.workspace.wsgitrules import GITATTRIBUTES, fsck_read

from .fsckgit import blob, fsck_and_push
from .fsckgit import tree as tree_of
from .test_json_schemas import check

LIMIT = gitattributes.MAX_LINE
# what fsck says about a .gitattributes (errors but gitattributesSymlink, an info)
FSCK_IDS = {"gitattributesLineLength", "gitattributesLarge", "gitattributesBlob", "gitattributesSymlink"}
NAMES = [".gitattributes", ".GITATTRIBUTES", ".GitAttributes", "GITATT~1", "gitatt~4", "gi7d29~1", "gi7d29~9",
         ".gitattributes.", ".gitattributes ", ".gitattributes::$DATA", ".git\u200cattributes", "\ufeff.gitattributes",
         # not .gitattributes to git
         "gitattributes", ".gitattribute", ".gitattributes-x", "x\\.gitattributes", "gitatt~5", ".gitmodulesx"]  # fmt: skip


def _line(n: int, fill: bytes = b"a") -> bytes:
    return (b"*.c " + fill * n)[:n] if n >= 4 else fill * n


def _contents() -> list[bytes]:
    out: set[bytes] = set()
    for n in (0, 1, 100, LIMIT - 3, LIMIT - 2, LIMIT - 1, LIMIT, LIMIT + 1, 2 * LIMIT, 3 * LIMIT + 7):
        for end in (b"", b"\n", b"\r\n", b"\r", b"\n\n"):
            body = _line(n) + end
            out |= {body, b"# ok\n" + body, b"x\n" * 3 + body + b"tail\n", body + body}
        out |= {_line(n, b" "), _line(n, b"\t") + b"\n", b"\0" + _line(n), _line(n) + b"\0\n" + _line(n)}
        out |= {b"a\0" + _line(n) + b"\n", _line(n)[: n // 2] + b"\0" + _line(n)[n // 2 :]}
        out |= {b"\n" * 50 + _line(n), _line(n - 1 if n else 0) + b"\r", b"\xef\xbb\xbf" + _line(n)}
    out.add(b"\n".join(_line(LIMIT - 1 - i) for i in range(5)))
    out.add(b"\n".join(_line(LIMIT - 1) for _ in range(4)) + b"\n" + _line(LIMIT))
    out.add(b"\r\n".join(_line(LIMIT - 2) for _ in range(4)))
    return sorted(out)


def _fsck(git_dir: str) -> dict[str, set[str]]:
    """object id -> the .gitattributes message ids `git fsck --strict` reports on it."""
    proc = subprocess.run(
        ["git", "--git-dir", git_dir, "fsck", "--strict", "--no-dangling", "--no-progress"],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    out = proc.stdout + proc.stderr
    said: dict[str, set[str]] = {}
    for m in re.finditer(r"(error|warning) in (?:blob|tree) ([0-9a-f]{40}): (\w+):", out):
        said.setdefault(m.group(2), set()).add(m.group(3))
    assert {i for ids in said.values() for i in ids} <= FSCK_IDS, out[:2000]
    errors = any(ids - {"gitattributesSymlink"} for ids in said.values())
    assert proc.returncode == (1 if errors else 0), out[:2000]
    return said


def _wrap(pack: PackWriter, dirs: list[str], name: bytes, mode: int, oid: bytes) -> str:
    """The root tree holding ``name`` (``mode``, ``oid``) below ``dirs``; the ids of the
    entry's own tree (its parent) as well."""
    tree = pack.add_tree(b"%o %s\0" % (mode, name) + oid)
    parent = tree.hex()
    for d in reversed(dirs):
        tree = pack.add_tree(b"40000 %s\0" % d.encode() + tree)
    return parent


def _avfs_says(path: str, mode: int, data: bytes) -> str | None:
    """The kind a checkpoint gives the entry (None: recorded)."""
    got = gitnames.path_refusal(path, mode)
    if got is not None:
        return got.kind
    name = path.rsplit("/", 1)[-1]
    rule = fsck_read(name, Entry(path, OBJECT, mode, "0" * 40))
    if rule is None:
        return None
    assert rule is GITATTRIBUTES
    refused = rule.refusal(data)
    return refused[0] if refused else None


WANT = {
    "gitattributesLineLength": gitattributes.GITATTRIBUTES_CONTENT,
    "gitattributesLarge": gitattributes.GITATTRIBUTES_CONTENT,
    "gitattributesBlob": gitnames.GITATTRIBUTES_DIRECTORY,
    "gitattributesSymlink": gitnames.GIT_FILE_SYMLINK,
}


def _differential(
    git_dir: Path, contents: list[bytes], depths: tuple[int, ...] = (0, 1, 3)
) -> dict[str, int]:
    """Each content as each file shape, and each name as a directory and a link, at each
    depth: fsck's verdict must be avfs's. Returns how many of each kind avfs gave.

    The objects go into one pack (``PackWriter``; git's pack format, which `git fsck`
    checks object by object as it does loose ones): one loose file an object (77,815 in
    one run of this file) was two thirds of its CPU (suitetime25)."""
    pygit2.init_repository(str(git_dir), bare=True)
    pack = PackWriter(str(git_dir))
    cases: list[tuple[str, int, bytes, str]] = []  # path, mode, data, the object fsck names
    i = 0
    for depth in depths:
        dirs = ["a", "B c", ".x"][:depth]
        prefix = "".join(d + "/" for d in dirs)
        for name in NAMES:
            raw = name.encode()
            for data in contents:
                i += 1
                unique = b"#%d\n" % i + data  # each case a blob of its own
                blob = pack.add(OBJ_BLOB, unique)
                _wrap(pack, dirs, raw, MODE_BLOB, bytes.fromhex(blob))
                cases.append((prefix + name, MODE_BLOB, unique, blob))
            i += 1
            child = pack.add_tree(b"100644 f%d\0" % i + bytes.fromhex(pack.add(OBJ_BLOB, b"")))
            _wrap(pack, dirs, raw, MODE_TREE, child)
            cases.append((prefix + name, MODE_TREE, b"", child.hex()))
            i += 1
            target = pack.add(OBJ_BLOB, b"t%d" % i)
            parent = _wrap(pack, dirs, raw, MODE_LINK, bytes.fromhex(target))
            cases.append((prefix + name, MODE_LINK, b"", parent))
    assert pack.finish() is not None and not glob.glob(f"{git_dir}/objects/??/*")  # one pack, no loose
    said = _fsck(str(git_dir))
    wrong = []
    kinds: dict[str, int] = {}
    for path, mode, data, oid in cases:
        want = {WANT[x] for x in said.get(oid, set())}
        got = _avfs_says(path, mode, data)
        kinds[str(got)] = kinds.get(str(got), 0) + 1
        if (got is None and want) or (got is not None and got not in want):
            wrong.append((path, oct(mode), data[:40], len(data), got, want))
    assert not wrong, f"{len(wrong)} disagreements with git fsck --strict, e.g. {wrong[:8]}"
    return kinds


def test_the_checker_agrees_with_git_fsck_on_lines_around_the_limit_and_tree_shapes(tmp_path):
    contents = _contents()
    assert len(contents) > 250
    kinds = _differential(tmp_path / "d.git", contents)
    # every verdict is well represented
    assert kinds["gitattributes_content"] > 3000 and kinds["None"] > 3000, kinds
    assert kinds["gitattributes_directory"] >= 30 and kinds["git_file_symlink"] >= 30, kinds


piece = st.one_of(
    st.integers(min_value=LIMIT - 4, max_value=LIMIT + 2).map(_line),
    st.integers(min_value=0, max_value=40).map(_line),
    st.sampled_from([b"\n", b"\r\n", b"\r", b"\0", b" ", b"\n\n", b"\xff"]),
)


@settings(max_examples=4, deadline=None)
@given(st.lists(st.lists(piece, min_size=1, max_size=6).map(b"".join), min_size=60, max_size=100))
def test_generated_contents_agree_with_git_fsck(tmp_path_factory, batch):
    _differential(tmp_path_factory.mktemp("gen") / "d.git", sorted(set(batch)), depths=(0, 2))


def test_the_names_fsck_reads_as_gitattributes():
    for name in NAMES[:12]:
        assert gitnames.is_gitattributes(name), name
    for name in [*NAMES[12:], ".gitmodules", "x"]:
        assert not gitnames.is_gitattributes(name), name


def test_the_line_fsck_stops_at():
    assert gitattributes.long_line(_line(LIMIT - 1)) is None
    assert gitattributes.long_line(_line(LIMIT)) == 1
    assert gitattributes.long_line(b"x\n" + _line(LIMIT - 1) + b"\r\n") == 2  # the \r counts
    assert gitattributes.long_line(b"x\0" + _line(5 * LIMIT)) is None  # fsck reads up to a NUL
    assert gitattributes.refusal(b"") is None
    refused = gitattributes.refusal(b"ok\n" * 3 + _line(LIMIT))
    assert refused is not None and "gitattributesLineLength" in refused[1] and "line 4" in refused[1]


# -- checkpoints leave them out and keep them ------------------------------------------------

GOOD = b"*.c text eol=lf\n*.png binary\n"
LONG = GOOD + b"*.c " + b"x" * LIMIT + b"\n"
LONG_CRLF = b"*.c " + b"y" * (LIMIT - 5) + b"\r\n"  # 2047 bytes and a \r: refused
JUST_SHORT = b"*.c " + b"z" * (LIMIT - 5) + b"\n"  # 2047 bytes: taken


def test_a_checkpoint_leaves_refused_gitattributes_out_keeps_them_and_records_the_fix(vault, tmp_path):
    ws = vault.workspace("main")
    ws.write(".gitattributes", GOOD)
    assert checkpoint.save(vault, name="good").not_recorded == ()
    ws.write(".gitattributes", LONG)  # the root one: the tree keeps the good one
    ws.write("deep/er/.GitAttributes", LONG_CRLF)  # a case variant, at depth
    ws.write("sub/GITATT~1", LONG)  # an NTFS short name
    ws.write("sub/ok.attributes", JUST_SHORT)
    ws.write("x/.gitattributes/f", b"in a directory\n")  # a directory: left out whole
    ws.write("x/keep", b"k\n")
    ws.write("notes.txt", LONG)  # the same bytes under another name: git does not check them
    ws.write("short/.gitattributes", JUST_SHORT)
    res = checkpoint.save(vault, name="bad")
    assert res.created
    assert [(n.path, n.kind) for n in res.not_recorded] == [
        (".gitattributes", gitattributes.GITATTRIBUTES_CONTENT),
        ("deep/er/.GitAttributes", gitattributes.GITATTRIBUTES_CONTENT),
        ("sub/GITATT~1", gitattributes.GITATTRIBUTES_CONTENT),
        ("x/.gitattributes", gitnames.GITATTRIBUTES_DIRECTORY),
    ]
    assert "gitattributesLineLength" in res.not_recorded[0].reason
    assert "gitattributesBlob" in res.not_recorded[3].reason
    tree = tree_of(vault)
    assert sorted(tree) == [
        ".gitattributes",
        "notes.txt",
        "short/.gitattributes",
        "sub/ok.attributes",
        "x/keep",
    ]
    assert blob(vault, tree[".gitattributes"]) == GOOD
    # nothing lost: the workspace still shows them, as uncheckpointed changes
    assert ws.read(".gitattributes") == LONG and ws.read("deep/er/.GitAttributes") == LONG_CRLF
    assert ws.read("x/.gitattributes/f") == b"in a directory\n"
    assert {c.path for c in ws.status()} >= {".gitattributes", "deep/er/.GitAttributes", "sub/GITATT~1"}
    fsck_and_push(vault, tmp_path)
    again = checkpoint.save(vault)
    assert not again.created and again.not_recorded == res.not_recorded
    # a file renamed to .gitattributes (an entry naming a blob of the vault) is checked too
    ws.rename("notes.txt", "short/.gitattributes")
    got = checkpoint.save(vault)
    assert "short/.gitattributes" in [n.path for n in got.not_recorded]
    assert blob(vault, tree_of(vault)["short/.gitattributes"]) == JUST_SHORT  # the tree keeps the old one
    assert ws.read("short/.gitattributes") == LONG
    # fixed: recorded, and the report is empty
    for p in (".gitattributes", "deep/er/.GitAttributes", "sub/GITATT~1", "short/.gitattributes"):
        ws.write(p, GOOD)
    ws.remove("x/.gitattributes", recursive=True)
    done = checkpoint.save(vault, name="fixed")
    assert done.created and done.not_recorded == ()
    tree = tree_of(vault)
    assert all(
        blob(vault, tree[p]) == GOOD for p in (".gitattributes", "deep/er/.GitAttributes", "sub/GITATT~1")
    )
    assert ws.status() == []
    fsck_and_push(vault, tmp_path)


def test_contents_the_base_already_holds_are_not_refused_again(vault):
    def run(*args: str, data: bytes = b"") -> str:
        return subprocess.run(["git", "--git-dir", vault.path, *args], input=data, capture_output=True,
                              check=True).stdout.decode().strip()  # fmt: skip

    blob = run("hash-object", "-w", "--stdin", data=LONG)
    tree = run("mktree", data=f"100644 blob {blob}\t.gitattributes\n".encode())
    run(
        "update-ref",
        "refs/heads/main",
        run("commit-tree", "-p", run("rev-parse", "main"), "-m", "imported", tree),
    )
    ws = vault.workspace("main")
    ws.write(".gitattributes", LONG)
    assert ws.not_recorded() == []
    ws.write(".gitattributes", LONG_CRLF)
    assert [n.path for n in ws.not_recorded()] == [".gitattributes"]
    assert not checkpoint.save(vault).created
    assert ws.read(".gitattributes") == LONG_CRLF
    shutil.rmtree(vault.path)  # (it fails fsck since that commit, which is not avfs's)


def test_cli_checkpoint_save_reports_a_refused_gitattributes(cli, vault):
    assert cli("--json", "--vault", "v", "write", "a/.gitattributes", LONG.decode()).code == 0
    assert cli("--json", "--vault", "v", "mkdir", "-p", "b/.GITATTRIBUTES").code == 0
    assert cli("--json", "--vault", "v", "write", "b/.GITATTRIBUTES/f", "x").code == 0
    doc = check(cli("--json", "--vault", "v", "checkpoint", "save"))  # valid against its schema
    assert [(n["path"], n["kind"]) for n in doc["not_recorded"]] == [
        ("a/.gitattributes", "gitattributes_content"),
        ("b/.GITATTRIBUTES", "gitattributes_directory"),
    ]
    assert vault.workspace("main").read("a/.gitattributes") == LONG
    human = cli("--vault", "v", "checkpoint", "save")
    assert "not recorded: a/.gitattributes" in human.err and "gitattributesLineLength" in human.err
