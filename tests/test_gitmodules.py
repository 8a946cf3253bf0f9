""".gitmodules contents git refuses: the checker against git itself, and checkpoints that
leave such a file out, keep it in the workspace, and record it once it is fixed.

The differential half writes each content as the blob of a ``.gitmodules`` in a tree of its
own, in one bare repository, and runs ``git fsck --strict`` once: what it says of each
blob (errors, and the ``gitmodulesParse`` warning) must be what
:func:`avfs_git.core.store.gitmodules.problems` says, for cases drawn from git's own tests
(t7416-submodule-dash-url, t7450-bad-git-dotfiles, t0060's relative URLs), a curated list
of the parser's corners, and generated contents (hypothesis).
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from pathlib import Path

import pygit2
from hypothesis import given, settings
from hypothesis import strategies as st

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import gitmodules, gitnames

from .fsckgit import blob, fsck_and_push
from .fsckgit import tree as tree_of
from .test_json_schemas import check

# -- the checker against git fsck -----------------------------------------------------------

FSCK_IDS = ("gitmodulesName", "gitmodulesUrl", "gitmodulesPath", "gitmodulesUpdate", "gitmodulesParse")


def _git_verdicts(git_dir: Path, contents: list[bytes]) -> list[set[str]]:
    """What ``git fsck --strict`` says of each content as a .gitmodules blob."""
    repo = pygit2.init_repository(str(git_dir), bare=True)
    oids = []
    for data in contents:
        blob = repo.odb.write(pygit2.enums.ObjectType.BLOB, data)
        repo.odb.write(pygit2.enums.ObjectType.TREE, b"100644 .gitmodules\0" + bytes.fromhex(str(blob)))
        oids.append(str(blob))
    proc = subprocess.run(
        ["git", "--git-dir", str(git_dir), "fsck", "--strict", "--no-dangling", "--no-progress"],
        capture_output=True,
        check=False,
    )
    said: dict[str, set[str]] = {}
    out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    for m in re.finditer(r"(?:error|warning) in blob ([0-9a-f]{40}): (\w+):", out):
        said.setdefault(m.group(1), set()).add(m.group(2))
    unknown = {i for ids in said.values() for i in ids} - set(FSCK_IDS)
    assert not unknown, out[:2000]
    assert proc.returncode == (1 if any(ids - {"gitmodulesParse"} for ids in said.values()) else 0), out[
        :2000
    ]
    return [said.get(o, set()) for o in oids]


def _signed_char(tmp_path: Path) -> bool:
    """Whether this git reads bytes as a signed char (x86): it then does not skip a byte
    order mark (nothing after it is checked)."""
    return not _git_verdicts(tmp_path / "bom.git", [b'\xef\xbb\xbf[submodule "x"]\n\tpath = -p\n'])[0] - {
        "gitmodulesParse"
    }


def _differential(tmp_path: Path, contents: list[bytes]) -> int:
    contents = sorted(set(contents))
    signed = _signed_char(tmp_path)
    want = _git_verdicts(tmp_path / f"d{len(list(tmp_path.iterdir()))}.git", contents)
    wrong = []
    for data, ids in zip(contents, want, strict=True):
        got = {i for i, _ in gitmodules.problems(data, signed=signed)}
        if got != ids:
            wrong.append((data, sorted(got), sorted(ids)))
        # refusal: an error of either reading of the bytes
        if ids - {"gitmodulesParse"} and gitmodules.refusal(data) is None:
            wrong.append((data, "not refused", sorted(ids)))
    assert not wrong, f"{len(wrong)} disagreements with git fsck --strict, e.g. {wrong[:8]}"
    return len(contents)


def _sub(name: bytes, *lines: bytes) -> bytes:
    return b'[submodule "' + name + b'"]\n' + b"".join(b"\t" + x + b"\n" for x in lines)


# what git's tests feed fsck and `submodule check-name` (t7416, t7450), and the relative
# URLs of t0060 as submodule urls
GIT_NAMES = [b"valid", b"valid/with/paths", b"", b"../foo", b"/../foo", b"..\\\\foo", b"\\\\..\\\\foo", b"foo/..",
             b"foo/../", b"foo\\\\..", b"foo\\\\..\\\\", b"foo/../bar", b"../../modules/evil", b"hippo",
             b"hippo/hooks", b"b.", b"b"]  # fmt: skip
GIT_URLS = [
    b'" --should-not-be-an-option"', b"http::one.example.com/foo.git", b'"..\\\\../.\\\\../:one.example.com/foo.git"',
    b"http::://one.example.com/foo.git", b"../../../:://one.example.com/foo.git", b"http:///one.example.com/foo.git",
    b"../../..//one.example.com/foo.git", b'"data://acjbkd%0akajfdickajkd"',
    b'"https://one.example.com?%0ahost=two.example.com/foo.git"', b'"./%0ahost=two.example.com/foo.git"',
    b'"git://example.com:1234/repo%0a.git"', b"-u", b"--upload-pack=evil", b"./-x", b"https://example.com/foo.git",
    b".", b"../foo", b"../foo/bar", b"../submodule", b"./foo", b"./foo/bar", b"../sub/a/b/c", b"//somewhere else/repo",
    b"../../subrepo", b"../../../subrepo", b"file:///tmp/repo", b"helper:://hostname/repo", b"ssh://hostname/repo",
    b"ssh://hostname:22/repo", b"user@host:path/to/repo", b"user@host:repo", b"./.", b"../.", b'"./\xc3\xa5 \xc3\xa4\xc3\xb6"',
]  # fmt: skip
GIT_TESTS: list[bytes] = [
    *(_sub(n, b"path = p", b"url = ./x") for n in GIT_NAMES),
    *(_sub(b"foo", b"url = " + u) for u in GIT_URLS),
    _sub(b"testmodule\\\\\\\\", b'url = " --should-not-be-an-option"', b"path = testmodule"),
    _sub(b"x", b"path = -p"),
    _sub(b"x", b"update = !rm -rf /"),
    _sub(b"x", b"update = checkout"),
    _sub(b"x", b'update = "!sh -c \\\\"x\\\\""'),
    _sub(b"../x", b"update = !x", b"url = -u", b"path = -p"),
    b"[broken\n",
    b'[submodule "b."]\n\turl = .\n\tpath = c\n[submodule "b"]\n\turl = .\n\tpath = d\\\\a\n',
]

CORNERS: list[bytes] = [
    b"", b"\n", b"# only a comment\n", b"[submodule]\n\turl = -x\n", b"[submodule.x]\n\turl = -x\n",
    b"[Submodule.X]\n\tURL = -x\n", b"[SUBMODULE \"X\"]\n\tPath = -x\n", b"[submodule \"a.b\"]\n\turl = -x\n",
    b"[submodule.]\n\turl = x\n", b"[submodule..]\n\turl = x\n", b"[submodule \"..\"]\n\turl = x\n",
    b"[submodule \"a\\\"b\"]\n\turl = x\n", b"[submodule \"a\\\\..\"]\n\turl = x\n", b"[submodule \"\\.\\.\"]\n",
    b"[submodule \"x\"] url = -y\n", b"[submodule \"x\"]\nurl=-y", b"[submodule \"x\"]\r\n\turl = -y\r\n",
    b"[submodule \"x\"]\r\turl = -y\r", b"[submodule \"x\"]\n\turl = \"-y\n", b"[submodule \"x\"]\n\turl = a\\\n-y\n",
    b"[submodule \"x\"]\n\turl = \\\n-y\n", b"[submodule \"x\"]\n\turl = \\-y\n", b"[submodule \"x\"]\n\turl = \"\"-y\n",
    b"[submodule \"x\"]\n\turl = ; -y\n", b"[submodule \"x\"]\n\turl = # -y\n", b"[submodule \"x\"]\n\turl = x # -y\n",
    b"[submodule \"x\"]\n\turl\n\tpath\n\tupdate\n", b"[submodule \"x\"]\n\turl =\n", b"[submodule \"x\"]\n\turl = \"\"\n",
    b"[submodule \"x\"]\n\tupdate = \"!\"\n", b"[submodule \"x\"]\n\tupdate = \\!x\n", b"[submodule \"x\"]\n\tupdate=!\n",
    b"[submodule \"x\"]\n\tupdate = none\n", b"[submodule \"x\"]\n\tupdate = rebase\n", b"[submodule \"x\"]\n\tupdate\t=\t!x",
    b"url = -x\n", b"[core]\n\turl = -x\n", b"[submodule \"x\"]\n\t1url = -x\n", b"[submodule \"x\"]\n\tu-rl = -x\n",
    b"[submodule \"x\"]\n\turl.x = -x\n", b"[submodule \"x\"]\n\turl = -x\n[broken\n\tpath = -p\n",
    b"[submodule \"x\"]\n\tpath = ok\n\tpath = -p\n", b"[submodule \"x\"]\n\turl = ok\n\turl = \"-y\"\n",
    b"\xef\xbb\xbf[submodule \"x\"]\n\tpath = -p\n", b"\xef\xbb[submodule \"x\"]\n\tpath = -p\n",
    b"\xef\xbb\xbf\xef\xbb\xbf[submodule \"x\"]\n\tpath = -p\n", b"[submodule \"x\"]\n\tpath = -p\xff\n",
    b"\xff[submodule \"x\"]\n\tpath = -p\n", b"[submodule \"x\"]\n\xff\tpath = -p\n", b"[submodule \"x\"]\n\tpa\xffth = -p\n",
    b"[submodule \"x\"]\n\tpath = a\xff\n\tpath = -p\n", b"[submodule \"x\"]\n\tpath = a\xffb\n[y]\n", b"[submodule \"x\"]\r\xff",
    b"[submodule \"x\xff\"]\n\tpath = -p\n", b"[submodule \"x\0y\"]\n\tpath = -p\n", b"[submodule \"..\0y\"]\n\tpath = -p\n",
    b"[submodule \"x\"]\n\tpath = \0-p\n", b"[submodule \"x\"]\n\tpath = -\0p\n", b"[submodule \"x\"]\n\tpa\0th = -p\n",
    b"[submodule \"x\"]\n\tpath = \x0b-p\n", b"[submodule \"x\"]\n\tpath = \x0c-p\n", b"[submodule \"x\"]\n\t\x0bpath = -p\n",
    b"[submodule\t\"x\"]\n\tpath = -p\n", b"[submodule\n\"x\"]\n\tpath = -p\n", b"[submodule  \"..\" ]\n\tpath = p\n",
    b"[submodule \"x\n\"]\n", b"[submodule \"x\\\n\"]\n", b"[submodule x]\n", b"[sub\xc3\xa9]\n", b"[]\n", b"[ \"x\"]\n\turl = -x\n",
    b"[submodule \"x\"]\n\turl = https://\n", b"[submodule \"x\"]\n\turl = https://@/x\n",
    b"[submodule \"x\"]\n\turl = https://u@h/x\n", b"[submodule \"x\"]\n\turl = \"https://u%0a@h/x\"\n",
    b"[submodule \"x\"]\n\turl = \"https://u:p%0a@h/x\"\n", b"[submodule \"x\"]\n\turl = \"https://u:p:%0a@h/x\"\n",
    b"[submodule \"x\"]\n\turl = \"https://h:%0a/x\"\n", b"[submodule \"x\"]\n\turl = \"https://h%0a:1/x\"\n",
    b"[submodule \"x\"]\n\turl = \"https://h/a:%0a\"\n", b"[submodule \"x\"]\n\turl = \"https://h/%0a:b\"\n",
    b"[submodule \"x\"]\n\turl = \"https://h/%00%0a\"\n", b"[submodule \"x\"]\n\turl = \"https://h?%0a\"\n",
    b"[submodule \"x\"]\n\turl = \"https://h#/%0a\"\n", b"[submodule \"x\"]\n\turl = \"https://h/x@y/%0a\"\n",
    b"[submodule \"x\"]\n\turl = \"ftps::ftp://h/x\"\n", b"[submodule \"x\"]\n\turl = \"ftp::x\"\n", b"[submodule \"x\"]\n\turl = HTTP://\n",
    b"[submodule \"x\"]\n\turl = \"http://x\\ny\"\n", b"[submodule \"x\"]\n\turl = \"ssh://x\\ny\"\n",
    b"[submodule \"x\"]\n\turl = \"git://x%0A\"\n", b"[submodule \"x\"]\n\turl = \"git%0a://x\"\n",
    b"[submodule \"x\"]\n\turl = \"..%0a/x\"\n", b"[submodule \"x\"]\n\turl = \"../%%0a\"\n", b"[submodule \"x\"]\n\turl = \"../%0\"\n",
    b"[submodule \"x\"]\n\turl = \"./../../x\"\n", b"[submodule \"x\"]\n\turl = \".././/x\"\n", b"[submodule \"x\"]\n\turl = \"./:x\"\n",
    b"[submodule \"x\"]\n\turl = \"..\\\\:x\"\n", b"[submodule \"x\"]\n\turl = \"../\\\\x\"\n", b"[submodule \"x\"]\n\turl = \"..:x\"\n",
    b"[submodule \"x\"]\n\turl = \"...//x\"\n", b"[submodule \"x\"]\n\turl = \"x:%0a\"\n", b"[submodule \"x\"]\n\turl = \":%0a\"\n",
]  # fmt: skip


def test_the_checker_agrees_with_git_fsck_on_git_s_own_cases_and_the_parser_s_corners(tmp_path):
    n = _differential(tmp_path, GIT_TESTS + CORNERS)
    assert n > 150
    ids = [{i for i, _ in gitmodules.problems(d)} for d in GIT_TESTS + CORNERS]
    for i in FSCK_IDS:
        assert sum(i in s for s in ids) >= 5, i
    assert sum(not s for s in ids) >= 30


# pieces of .gitmodules files: headers, keys, values, separators, and the bytes the parser
# treats specially
HEADERS = [b'[submodule "x"]', b'[submodule "../x"]', b'[submodule "a/.."]', b'[submodule ".."]', b"[submodule.x]",
           b'[Submodule "A"]', b"[submodule]", b'[submodule "a\\\\.."]', b'[submodule ""]', b"[core]", b'[submodule "\\"]',
           b'[submodule "x', b"[sub", b"[submodule.]", b'[submodule "a\\b"]']  # fmt: skip
KEYS = [b"url", b"path", b"update", b"URL", b"Path", b"name", b"branch", b"x-y"]
VALUES = [b"-x", b"!cmd", b"ok", b'"-x"', b'"!x"', b"checkout", b" -x", b"\\-x", b'""-x', b"./%0ax", b"../:x",
          b"..//x", b"git://x%0a", b"https://h/x", b"https://", b"http::h", b"https://u@", b"https://h/%0a",
          b'"a;b"', b"a ; -x", b"a # b", b"\\n", b"\\t", b"\\q", b'"', b"\\", b"./.", b"..\\\\:x", b"-"]  # fmt: skip
GLUE = [b"\n", b"\r\n", b"\r", b" ", b"\t", b"=", b" = ", b"#", b";", b"\\", b'"', b"\xff", b"\0", b"\xef\xbb\xbf", b"\x0b", b"\n\t"]  # fmt: skip


def _generated() -> list[bytes]:
    """A fixed grid: each header with each key and value, one line per entry."""
    out = []
    for h, k, v in itertools.product(HEADERS, KEYS[:4], VALUES):
        out.append(h + b"\n\t" + k + b" = " + v + b"\n")
    for g1, g2 in itertools.product(GLUE, GLUE):
        out.append(b'[submodule "x"]' + g1 + b"path" + g2 + b"-p\n")
        out.append(b"[submodule" + g1 + b'"..' + g2 + b'"]\n\turl = x\n')
    return out


def test_a_grid_of_headers_keys_values_and_separators_agrees_with_git_fsck(tmp_path):
    assert _differential(tmp_path, _generated()) > 1500


piece = st.sampled_from(HEADERS + KEYS + VALUES + GLUE)
contents = st.lists(piece, min_size=1, max_size=14).map(b"".join)


@settings(max_examples=5, deadline=None)
@given(st.lists(contents, min_size=200, max_size=300))
def test_generated_contents_agree_with_git_fsck(tmp_path_factory, batch):
    _differential(tmp_path_factory.mktemp("gen"), batch)


def test_the_names_fsck_reads_as_gitmodules():
    for name in (".gitmodules", ".GITMODULES", "GITMOD~1", "gi7eba~3", ".gitmodules.", ".gitmodules ", "x\\.gitmodules",
                 ".gitmodules::$DATA", ".git\u200cmodules"):  # fmt: skip
        assert gitnames.is_gitmodules(name), name
    for name in ("gitmodules", ".gitmodules-x", "a.gitmodules", ".gitmodule", "x", "GIT~1", ".gitattributes"):
        assert not gitnames.is_gitmodules(name), name


# -- checkpoints leave them out and keep them ------------------------------------------------

GOOD = b'[submodule "lib"]\n\tpath = lib\n\turl = https://example.com/lib.git\n'
BAD_UPDATE = GOOD + b"\tupdate = !touch /tmp/pwned\n"
BAD_URL = b'[submodule "x"]\n\tpath = x\n\turl = --upload-pack=touch /tmp/pwned\n'
BAD_NAME = b'[submodule "../../modules/evil"]\n\tpath = evil\n\turl = ./evil\n'
FIXED = GOOD + b"\tupdate = rebase\n"


def test_a_checkpoint_leaves_refused_gitmodules_out_keeps_them_and_records_the_fix(vault, tmp_path):
    ws = vault.workspace("main")
    ws.write(".gitmodules", GOOD)
    assert checkpoint.save(vault, name="good").not_recorded == ()
    ws.write(".gitmodules", BAD_UPDATE)  # the root one: the tree keeps the good one
    ws.write("deep/er/.gitmodules", BAD_URL)  # at any depth: its directories are not recorded either
    ws.write("sub/.GITMODULES", BAD_NAME)  # a synonym (NTFS, HFS+: case)
    ws.write("sub/ok.txt", b"ok\n")
    ws.write("notes.txt", BAD_NAME)  # the same bytes under another name: git does not read them
    res = checkpoint.save(vault, name="bad")
    assert res.created
    assert [(n.path, n.kind) for n in res.not_recorded] == [
        (".gitmodules", gitmodules.GITMODULES_CONTENT),
        ("deep/er/.gitmodules", gitmodules.GITMODULES_CONTENT),
        ("sub/.GITMODULES", gitmodules.GITMODULES_CONTENT),
    ]
    reasons = [n.reason for n in res.not_recorded]
    assert "gitmodulesUpdate" in reasons[0] and "!touch /tmp/pwned" in reasons[0]
    assert "gitmodulesUrl" in reasons[1] and "gitmodulesName" in reasons[2]
    tree = tree_of(vault)
    assert sorted(tree) == [".gitmodules", "notes.txt", "sub/ok.txt"]
    assert blob(vault, tree[".gitmodules"]) == GOOD
    # nothing lost: the workspace still shows them, as uncheckpointed changes
    assert ws.read(".gitmodules") == BAD_UPDATE and ws.read("deep/er/.gitmodules") == BAD_URL
    assert {c.path for c in ws.status()} == {".gitmodules", "deep/er/.gitmodules", "sub/.GITMODULES"}
    fsck_and_push(vault, tmp_path)
    # again: nothing to record, the same report
    again = checkpoint.save(vault)
    assert not again.created and again.not_recorded == res.not_recorded
    # a file renamed to .gitmodules (an entry naming a blob of the vault) is checked too
    ws.remove("sub/.GITMODULES")
    ws.rename("notes.txt", "sub/.gitmodules")
    got = checkpoint.save(vault)
    assert [n.path for n in got.not_recorded] == [".gitmodules", "deep/er/.gitmodules", "sub/.gitmodules"]
    assert "sub/.gitmodules" not in tree_of(vault) and ws.read("sub/.gitmodules") == BAD_NAME
    # fixed: recorded, and the report is empty
    ws.write(".gitmodules", FIXED)
    ws.write("deep/er/.gitmodules", GOOD)
    ws.write("sub/.gitmodules", GOOD)
    done = checkpoint.save(vault, name="fixed")
    assert done.created and done.not_recorded == ()
    tree = tree_of(vault)
    assert blob(vault, tree[".gitmodules"]) == FIXED and blob(vault, tree["sub/.gitmodules"]) == GOOD
    assert ws.status() == []
    # a .gitmodules git cannot parse is only an info for fsck (a warning with --strict,
    # taken by receive.fsckObjects): recorded, as git would
    ws.write("sub/.gitmodules", b'[submodule "x"]\n\tpath = x\n[broken\n\turl = -x\n')
    assert checkpoint.save(vault).not_recorded == ()
    assert "sub/.gitmodules" in tree_of(vault)
    fsck_and_push(vault, tmp_path)


def test_contents_the_base_already_holds_are_not_refused_again(vault):
    """A fork whose commit holds a .gitmodules git refuses (made elsewhere, imported): the
    same bytes written again change nothing and are not reported; other bad bytes are."""

    def run(*args: str, data: bytes = b"") -> str:
        return subprocess.run(["git", "--git-dir", vault.path, *args], input=data, capture_output=True,
                              check=True).stdout.decode().strip()  # fmt: skip

    blob = run("hash-object", "-w", "--stdin", data=BAD_URL)
    tree = run("mktree", data=f"100644 blob {blob}\t.gitmodules\n".encode())
    run(
        "update-ref",
        "refs/heads/main",
        run("commit-tree", "-p", run("rev-parse", "main"), "-m", "imported", tree),
    )
    ws = vault.workspace("main")
    ws.write(".gitmodules", BAD_URL)
    assert ws.not_recorded() == []
    ws.write(".gitmodules", BAD_UPDATE)
    assert [n.path for n in ws.not_recorded()] == [".gitmodules"]
    assert not checkpoint.save(vault).created
    assert ws.read(".gitmodules") == BAD_UPDATE
    # (the vault fails fsck since that commit, which is not avfs's: the suite's check of
    # every vault a test leaves would say so)
    shutil.rmtree(vault.path)


def test_cli_checkpoint_save_reports_a_refused_gitmodules(cli, vault):
    r = cli("--json", "--vault", "v", "write", "a/.gitmodules", BAD_UPDATE.decode())
    assert r.code == 0
    doc = check(cli("--json", "--vault", "v", "checkpoint", "save"))  # valid against its schema
    assert [(n["path"], n["kind"]) for n in doc["not_recorded"]] == [("a/.gitmodules", "gitmodules_content")]
    assert "gitmodulesUpdate" in doc["not_recorded"][0]["reason"]
    assert vault.workspace("main").read("a/.gitmodules") == BAD_UPDATE
    human = cli("--vault", "v", "checkpoint", "save")
    assert "not recorded: a/.gitmodules" in human.err and "gitmodulesUpdate" in human.err
