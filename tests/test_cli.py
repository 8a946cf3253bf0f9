"""The CLI end to end: addressing, file commands, binary safety, human output."""

from __future__ import annotations

import os
import subprocess

from .conftest import git


def _git_id(data: bytes) -> str:
    """The blob id git gives ``data``."""
    return (
        subprocess.run(["git", "hash-object", "--stdin"], input=data, capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )


def test_addressing_precedence(cli, monkeypatch):
    assert cli("vault", "create", "a").code == 0
    assert cli("vault", "create", "b").code == 0
    assert cli("vault", "fork", "b", "side").code == 0
    # the first vault created becomes the default
    assert cli("--json", "status").json()["vault"] == "a"
    assert cli("--json", "vault", "use", "b:side").code == 0
    doc = cli("--json", "status").json()
    assert (doc["vault"], doc["fork"]) == ("b", "side")
    monkeypatch.setenv("AVFS_VAULT", "a")
    doc = cli("--json", "status").json()
    assert (doc["vault"], doc["fork"]) == ("a", "main")
    doc = cli("--json", "--vault", "b:main", "status").json()
    assert (doc["vault"], doc["fork"]) == ("b", "main")
    # --vault VAULT alone means that vault's default fork (set by `vault use`)
    doc = cli("--json", "--vault", "b", "status").json()
    assert (doc["vault"], doc["fork"]) == ("b", "side")


def test_binary_roundtrip_through_a_real_process(cli_proc, tmp_path):
    data = bytes(range(256)) * 100 + b"\x00\xff\r\n"
    assert cli_proc("vault", "create", "bin").code == 0
    r = cli_proc("--vault", "bin", "write", "blob.bin", "--stdin", stdin=data)
    assert r.code == 0, r.err
    r = cli_proc("--vault", "bin", "cat", "blob.bin")
    assert r.out_bytes == data
    src = tmp_path / "src.bin"
    src.write_bytes(data[::-1])
    assert cli_proc("--vault", "bin", "write", "b2.bin", "--file", str(src)).code == 0
    assert cli_proc("--vault", "bin", "cat", "b2.bin").out_bytes == data[::-1]
    doc = cli_proc("--json", "--vault", "bin", "cat", "blob.bin").json()
    assert doc["files"][0]["encoding"] == "base64"


def test_file_commands_like_coreutils(cli):
    assert cli("vault", "create", "f").code == 0
    run = lambda *a: cli("--vault", "f", *a)  # noqa: E731
    assert run("mkdir", "-p", "a/b").code == 0
    assert run("write", "a/b/x.txt", "x").code == 0
    assert run("cp", "a/b/x.txt", "a").code == 0  # into an existing directory
    assert run("cat", "a/x.txt").out == "x"
    assert run("mv", "a/x.txt", "y.txt").code == 0
    assert run("cp", "-r", "a", "a2").code == 0
    assert run("cat", "a2/b/x.txt").out == "x"
    assert run("rm", "a2").code == 1  # a directory needs -r
    assert run("rm", "-r", "a2").code == 0
    assert run("rm", "-f", "nothere").code == 0
    assert run("ln", "-s", "y.txt", "link").code == 0
    assert run("cat", "link").out == "x"
    assert run("ln", "-s", "other", "link").code == 1
    assert run("ln", "-sf", "a/b/x.txt", "link").code == 0
    assert run("chmod", "+x", "y.txt").code == 0
    assert run("chmod", "-x", "y.txt").code == 0
    out = run("ls", "-l").out
    assert "link -> a/b/x.txt" in out and "y.txt" in out
    tree = run("tree").out
    # drawn as tree(1) draws it: └── for a directory's last entry, │ while siblings follow
    assert tree == (
        ".\n├── a/\n│   └── b/\n│       └── x.txt\n├── link\n└── y.txt\n\n2 directories, 3 files\n"
    ), tree
    st = run("status").out
    assert "A y.txt" in st


def test_human_output_goes_to_the_right_streams(cli):
    r = cli("vault", "create", "h")
    assert "created vault" in r.out and r.err == ""
    r = cli("--vault", "h", "write", "a", "1")
    assert r.out == "" and "wrote a" in r.err
    r = cli("--vault", "h", "cat", "missing")
    assert r.out == "" and "error" in r.err and r.code == 1


def test_python_m_and_console_script(cli_proc):
    r = cli_proc("--json", "--version")
    assert r.code == 0 and r.json()["kind"] == "version"
    r = cli_proc("--help")
    assert r.code == 0 and "vault" in r.out


def test_diff_formats(cli):
    assert cli("vault", "create", "d").code == 0
    run = lambda *a: cli("--vault", "d", *a)  # noqa: E731
    run("write", "a.txt", "one\n")
    run("checkpoint", "save", "one")
    run("write", "a.txt", "two\n")
    run("write", "b.txt", "new\n")
    assert "-one\n+two" in run("diff").out
    assert run("diff", "--name-status").out.splitlines() == ["M\ta.txt", "A\tb.txt"]
    assert "2 files changed" in run("diff", "--stat").out
    run("checkpoint", "save", "two")
    assert run("diff", "one", "two", "--name-status").out.splitlines() == ["M\ta.txt", "A\tb.txt"]
    doc = cli("--json", "--vault", "d", "diff", "one", "two", "--stat").json()
    assert {s["path"] for s in doc["stat"]} == {"a.txt", "b.txt"}


def test_vault_path_is_usable_by_git(cli, tmp_path):
    assert cli("vault", "create", "g").code == 0
    cli("--vault", "g", "write", "hello.txt", "hi\n")
    cli("--vault", "g", "checkpoint", "save")
    path = cli("vault", "path", "g").out.strip()
    assert os.path.isdir(path)
    git("clone", "-q", path, str(tmp_path / "c"))
    assert (tmp_path / "c" / "hello.txt").read_text() == "hi\n"


def test_stat_of_a_committed_file_walks_to_it_once(cli, monkeypatch):
    """`avfs --json stat` of a file of git's gives its blob (what ``--expect`` compares
    with) from the stat's own lookup: it walked to the path a second time for it
    (``blob_of``), a third of the command's lookups (suitetime14: the real-project tier
    stats every path of five releases). A changed file's blob is still hashed from its
    bytes, and the two answers are the ids git gives."""
    from avfs_git.core.workspace import wsview

    assert cli("vault", "create", "s").code == 0
    cli("--vault", "s", "write", "d/a.txt", "one\n")
    cli("--vault", "s", "checkpoint", "save")
    cli("--vault", "s", "write", "b.txt", "two\n")
    walks: list[str] = []
    resolve = wsview.View.resolve

    def counted(self, path, **kw):  # type: ignore[no-untyped-def]
        walks.append(path)
        return resolve(self, path, **kw)

    monkeypatch.setattr(wsview.View, "resolve", counted)
    doc = cli("--json", "--vault", "s", "stat", "d/a.txt").json()
    assert doc["blob"] == doc["stat"]["oid"] == _git_id(b"one\n")
    assert walks == ["d/a.txt"], walks
    doc = cli("--json", "--vault", "s", "stat", "b.txt").json()
    assert doc["stat"]["materialized"] and doc["blob"] == _git_id(b"two\n")
