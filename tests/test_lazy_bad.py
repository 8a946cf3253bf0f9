"""Lazy vaults against bad servers (docs/lazy.md "Offline, a dead server, a slow one"): a
`git daemon` on 127.0.0.1 killed while a large fetch runs, and a blob the server no longer
has (force-pushed away and collected). Each checks the error says what happened and that
the vault is as it was: no object, partial or whole, and the next read after the server is
back works. (A server without filter support and credentials over HTTP are in
tests/test_lazy.py.)"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from avfs_git.core.errors import BlobNotLocalError
from avfs_git.core.vaults.home import Home

from .conftest import git
from .lazyrelay import Relay
from .test_lazy import Server, blob_at, missing, objects
from .test_lazy import server as server

BIG = "assets/big.bin"


@pytest.fixture
def big_server(server: Server) -> Iterator[tuple[Server, Relay]]:
    """The test server with a third commit adding an 8 MiB incompressible file, reached
    through a :class:`Relay`."""
    add_big_file(server.base / "proj.git")
    proxy = Relay(server.port)
    try:
        yield server, proxy
    finally:
        proxy.close()


def add_big_file(repo: Path) -> None:
    """A commit adding :data:`BIG` (8 MiB, incompressible) pushed to ``repo``."""
    work = repo.parent / "big-work"
    git("clone", "-q", str(repo), str(work))
    (work / "assets").mkdir()
    (work / BIG).write_bytes(os.urandom(8 << 20))
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "commit", "-q", "-m", "big")
    git("-C", str(work), "push", "-q", "origin", "main")


def _leftovers(vault_path: str) -> list[str]:
    """Files a fetch cut short could leave: git's temporary packs and objects."""
    out = []
    for _root, _dirs, files in os.walk(os.path.join(vault_path, "objects")):
        out += [f for f in files if f.startswith(("tmp_", "incoming-"))]
    return out


def test_a_server_killed_mid_fetch_leaves_no_partial_object_and_the_read_works_after(
    home: Home, big_server: tuple[Server, Relay]
) -> None:
    server, proxy = big_server
    v = home.clone_vault(f"git://127.0.0.1:{proxy.port}/proj.git", "p", lazy=True)
    before, promised = objects(v.path), missing(v.path)
    head = git("--git-dir", v.path, "rev-parse", "main")
    proxy.slow.set()
    got: list[BaseException | bytes] = []
    reader = threading.Thread(target=lambda: got.append(_read(v.workspace("main"), BIG)))
    start = proxy.relayed
    reader.start()
    deadline = time.monotonic() + 30
    while proxy.relayed - start < (1 << 20):  # the pack is on its way
        assert time.monotonic() < deadline and reader.is_alive(), got
        time.sleep(0.01)
    # the server dies: the daemon and the upload-pack serving this fetch are killed, and
    # the connection with them (what the kernel still buffered is lost, as with a machine)
    server.stop()
    proxy.cut()
    reader.join(60)
    assert not reader.is_alive()
    (err,) = got
    assert isinstance(err, BlobNotLocalError), err
    assert err.details["path"] == BIG and err.details["remote"] == "origin"
    assert "origin" in err.message and BIG in err.message
    # nothing changed: no object, no partial pack, no temporary file, the same refs
    assert objects(v.path) == before and missing(v.path) == promised
    assert _leftovers(v.path) == []
    assert git("--git-dir", v.path, "rev-parse", "main") == head
    git("--git-dir", v.path, "fsck", "--connectivity-only")
    # the server back: the same read works, and gets the whole file
    proxy.slow.clear()
    server.start()
    assert v.workspace("main").read(BIG) == blob_at(server.base / "proj.git", "main", BIG)
    assert missing(v.path) == promised - 1


def _read(ws: object, path: str) -> BaseException | bytes:
    try:
        return ws.read(path)  # type: ignore[attr-defined,no-any-return]
    except BaseException as exc:
        return exc


def test_a_blob_the_server_no_longer_has_is_a_clear_error_naming_the_path(
    home: Home, server: Server, cli
) -> None:
    repo = server.base / "proj.git"
    work = server.base / "gone-work"
    git("clone", "-q", str(repo), str(work))
    (work / "SECRET.md").write_text("pushed by mistake\n")
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "commit", "-q", "-m", "oops")
    git("-C", str(work), "push", "-q", "origin", "main")
    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    # the server takes it back: force-pushed away, and collected
    git("-C", str(work), "push", "-q", "--force", "origin", "HEAD~1:main")
    git("--git-dir", str(repo), "reflog", "expire", "--expire=now", "--all")
    git("--git-dir", str(repo), "gc", "-q", "--prune=now")
    before, promised = objects(v.path), missing(v.path)
    head = git("--git-dir", v.path, "rev-parse", "main")
    r = cli("--json", "--home", home.path, "--vault", "p", "cat", "SECRET.md")
    assert r.code == 5, r.out
    err = json.loads(r.out_bytes)["error"]
    assert err["code"] == "blob_not_local"
    assert err["details"]["path"] == "SECRET.md" and err["details"]["remote"] == "origin"
    assert "SECRET.md" in err["message"] and "no longer has it" in err["message"], err
    assert "no fetch will bring them" in err["hint"] and err["details"]["server_lacks"] is True, err
    with pytest.raises(BlobNotLocalError):
        v.workspace("main").read("SECRET.md")
    assert objects(v.path) == before and missing(v.path) == promised
    assert git("--git-dir", v.path, "rev-parse", "main") == head
    # the rest of the fork reads as before
    rel = "avfs_git/cli/main.py"
    assert v.workspace("main").read(rel) == blob_at(repo, "main", rel)


def _paths_of_blob(vault_path: str, oid: str) -> set[str]:
    """The paths at which any commit of the vault has blob ``oid``."""
    out = set()
    for commit in git("--git-dir", vault_path, "rev-list", "--all").split():
        for line in git("--git-dir", vault_path, "ls-tree", "-r", commit).splitlines():
            meta, path = line.split("\t", 1)
            if meta.split()[2] == oid:
                out.add(path)
    return out


def test_offline_a_reader_of_many_files_names_the_path_of_the_blob_it_could_not_fetch(
    home: Home, server: Server, cli
) -> None:
    """`diff`, `grep`, `search`, `merge` and `vault hydrate` fetch what they read in one
    batch: offline, their `blob_not_local` names the remote and a path of the blob it
    names (not only its id), in the CLI and in MCP's tools, as a single read does."""
    from avfs_git.core.operations import checkpoint
    from avfs_git.mcp.tools import AvfsTools

    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    v.fork("main", "b")
    for fork, text in (("b", b"b = 1\n"), ("main", b"m = 2\n")):  # both change it: the merge reads it
        v.workspace(fork).write("avfs_git/core/errors.py", text)
        checkpoint.save(v, fork, name=f"{fork}1")
    server.stop()
    promised = missing(v.path)
    for args in (
        ["diff", "main~2", "main"],
        ["grep", "def", "avfs_git/cli"],
        ["search", "prefer_libgit2"],
        ["merge", "b"],
        ["vault", "hydrate", "avfs_git/cli"],
    ):
        r = cli("--json", "--home", home.path, "--vault", "p", *args)
        assert r.code == 5, (args, r.out)
        err = json.loads(r.out_bytes)["error"]
        assert err["code"] == "blob_not_local" and err["details"]["remote"] == "origin", err
        path = err["details"]["path"]
        assert path in _paths_of_blob(v.path, err["details"]["oid"]), (args, err)
        assert f"(of {path})" in err["message"], err
    tools = AvfsTools(home.path, "p:main")
    for tool, targs in (
        ("read_file", {"path": "NOTES.md"}),
        ("grep", {"pattern": "def", "paths": ["avfs_git/cli"]}),
        ("diff", {"old": "main~2", "new": "main"}),
        ("merge", {"source": "b"}),
    ):
        with pytest.raises(BlobNotLocalError) as exc:  # (the MCP server makes it the error document)
            tools.call(tool, targs)
        assert exc.value.details["path"] in _paths_of_blob(v.path, exc.value.details["oid"]), (
            tool,
            exc.value,
        )
    assert missing(v.path) == promised


def test_a_confined_command_cannot_change_the_promisor_remote_a_lazy_read_follows(
    home: Home, server: Server, cli
) -> None:
    """`proxy exec` of commands that point the promisor remote elsewhere (git's own
    commands, and a plain write into the worktree's git directory): the vault's config
    and the worktree's stay as they were, the next lazy read in the mount fetches from the
    vault's server, and a person's git in the mount sees the vault's URL."""
    import subprocess

    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    url = server.url("proj.git")
    evil = "git://127.0.0.1:1/evil.git"
    script = (
        "import subprocess, sys\n"
        "d = subprocess.run(['git', 'rev-parse', '--git-dir'], capture_output=True, text=True).stdout.strip()\n"
        "for f in (d + '/config.worktree', d + '/config'):\n"
        "    try:\n"
        f"        open(f, 'a').write('[remote \"origin\"]\\n\\turl = {evil}\\n')\n"
        "    except OSError as e:\n"
        "        print(e, file=sys.stderr)\n"
    )
    attempts = (
        ["git", "remote", "set-url", "origin", evil],
        ["git", "config", "--worktree", "remote.origin.url", evil],
        ["python3", "-c", script],
    )
    for argv in attempts:
        r = cli("--json", "--home", home.path, "--vault", "p", "proxy", "exec", "--", *argv)
        assert r.out and json.loads(r.out_bytes)["kind"] == "proxy_exec_result", r.out
    mp = json.loads(r.out_bytes)["mount"]["mountpoint"]
    assert git("--git-dir", v.path, "config", "--get-all", "remote.origin.url").strip() == url
    # what git reads in the mount (the vault's config, the worktree's config.worktree; a
    # `config` the command wrote into the worktree's git directory is not git's to read)
    seen = subprocess.run(
        ["git", "config", "--show-origin", "--get-all", "remote.origin.url"],
        cwd=mp,
        capture_output=True,
        text=True,
    )
    assert seen.stdout.strip() == f"file:{v.path}/config\t{url}", seen
    wt = subprocess.run(["git", "rev-parse", "--absolute-git-dir"], cwd=mp, capture_output=True, text=True)
    assert wt.stdout.startswith(os.path.join(v.path, "worktrees", "")), wt
    for name in ("config.worktree", "HEAD", "commondir", "gitdir"):
        with open(os.path.join(wt.stdout.strip(), name), "rb") as fh:
            assert b"evil" not in fh.read(), name
    # a lazy read in the mount fetches from the vault's own server
    rel = "NOTES.md"
    r = cli("--json", "--home", home.path, "--vault", "p", "proxy", "exec", "--", "cat", rel)
    doc = json.loads(r.out_bytes)
    assert doc["result"]["stdout"] == blob_at(server.base / "proj.git", "main", rel).decode(), doc["result"]
    r = cli("--home", home.path, "--vault", "p", "unmount")
    assert r.code == 0, r.err


def test_offline_proxy_exec_of_a_command_reading_an_unfetched_file_sees_eio_in_one_envelope(
    home: Home, server: Server, cli
) -> None:
    """The server gone, `proxy exec -- cat FILE` of a file never fetched: the command runs
    and gets `EIO` from the mount (its own exit code and message in the envelope), one
    already fetched reads, nothing is committed; materialized (a copy of the whole tree,
    which needs every file) it does not run, and the envelope's error is the
    `blob_not_local` naming the remote and the path."""
    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    ws = v.workspace("main")
    rel = "avfs_git/cli/main.py"
    want = ws.read(rel)  # fetched (with its package: the file read offline is outside it)
    head = ws.tip()
    server.stop()
    run = ["--json", "--home", home.path, "--vault", "p", "proxy", "exec", "--"]
    r = cli(*run, "cat", "NOTES.md")
    doc = json.loads(r.out_bytes)
    assert r.code == 1 and doc["result"]["exit_code"] == 1, doc
    assert "Input/output error" in doc["result"]["stderr"] and doc["commit"] is None, doc["result"]
    r = cli(*run, "cat", rel)
    doc = json.loads(r.out_bytes)
    assert r.code == 0 and doc["result"]["stdout"] == want.decode(), doc["result"]
    r = cli(*run[:-1], "--mode", "materialized", "--", "cat", "NOTES.md")
    doc = json.loads(r.out_bytes)
    assert r.code == 125 and doc["result"] is None, doc
    assert doc["error"]["code"] == "blob_not_local" and doc["error"]["details"]["remote"] == "origin", doc
    assert doc["error"]["details"]["path"], doc["error"]
    assert v.workspace("main").tip() == head
    assert cli("--home", home.path, "--vault", "p", "unmount").code == 0


def test_offline_every_other_read_path_is_blob_not_local_naming_the_remote_and_the_path(
    home: Home, server: Server, cli, tmp_path: Path
) -> None:
    """The readers of one file or a whole tree that the batch readers' test above leaves
    out: `cat`, `show REV:PATH`, `show REV` and `log -p` (their patches, in the human
    form: `--json` lists the commits), `diff` of the workspace, `export`, `proxy exec` materialized through the CLI, the API's `exec_in`
    (the envelope's `error`) and MCP's `exec`, MCP's `read_file`: offline, each answers
    `blob_not_local` naming the remote and a path of the blob (exit 5, or 125 for an exec
    that did not run), and nothing is fetched or written."""
    from avfs_git.core.operations import checkpoint
    from avfs_git.mcp.tools import AvfsTools
    from avfs_git.proxy.execute import exec_in

    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    v.workspace("main").write("avfs_git/core/errors.py", b"m = 2\n")
    checkpoint.save(v, "main", name="m1")
    v.workspace("main").write("NOTES.md", b"mine\n")  # uncheckpointed, over an unfetched file
    server.stop()
    promised = missing(v.path)
    head = v.workspace("main").tip()

    def named(err: dict[str, object], what: object) -> None:
        details = err["details"]
        assert err["code"] == "blob_not_local", (what, err)
        assert isinstance(details, dict) and details["remote"] == "origin", (what, err)
        assert details["path"] in _paths_of_blob(v.path, str(details["oid"])), (what, err)
        assert "remote origin" in str(err["message"]), (what, err)

    export = tmp_path / "export"
    for args, code in (
        (["cat", "avfs_git/cli/spare.py"], 5),
        (["show", "main:NOTES.md"], 5),
        (["diff"], 5),
        (["export", "p:main", str(export)], 5),
        (["proxy", "exec", "--mode", "materialized", "--", "cat", "NOTES.md"], 125),
    ):
        r = cli("--json", "--home", home.path, "--vault", "p", *args)
        assert r.code == code, (args, r.out, r.err)
        doc = json.loads(r.out_bytes)  # one document, the error's (or the envelope's)
        named(doc["error"], args)
    for args in (["log", "-p", "-n", "2"], ["show", "main~1"]):  # patches only in the human form
        r = cli("--home", home.path, "--vault", "p", *args)
        assert r.code == 5 and "remote origin" in r.err and "is not local" in r.err, (args, r.err)
    res = exec_in(v.workspace("main"), ["cat", "NOTES.md"], mode="materialized")
    assert res.result is None and res.error is not None, res
    named({"code": res.error.code, "message": res.error.message, "details": res.error.details}, "exec_in")
    tools = AvfsTools(home.path, "p:main")
    doc = json.loads(tools.call("exec", {"argv": ["cat", "NOTES.md"], "mode": "materialized"}))
    assert doc["exit_code"] == 125, doc
    named(doc["error"], "mcp exec")
    with pytest.raises(BlobNotLocalError) as exc:  # (the MCP server makes it the error document)
        tools.call("read_file", {"path": "avfs_git/cli/spare.py"})
    named({"code": exc.value.code, "message": exc.value.message, "details": exc.value.details}, "read_file")
    assert missing(v.path) == promised
    assert v.workspace("main").tip() == head


def test_offline_cp_and_mv_of_an_unfetched_file_answer_its_blob_and_fetch_nothing(
    home: Home, server: Server, cli
) -> None:
    """`cp` and `mv` answer the blob id the destination holds (for the writer's next
    `--expect`). They read it through a stat, whose size fetched a lazy vault's unfetched
    blob: offline the copy or move was made and the command failed `blob_not_local` (exit
    5) all the same, naming the destination (a path the tree never held), and online each
    one fetched the file it moved. The id is the file's own: nothing is fetched."""
    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    src_cp, src_mv = "avfs_git/cli/spare.py", "avfs_git/cli/app.py"
    want = {p: git("--git-dir", v.path, "rev-parse", f"main:{p}").strip() for p in (src_cp, src_mv)}
    server.stop()
    promised = missing(v.path)
    for args, src in ((["cp", src_cp, "copied.py"], src_cp), (["mv", src_mv, "moved.py"], src_mv)):
        r = cli("--json", "--home", home.path, "--vault", "p", *args)
        assert r.code == 0, (args, r.out, r.err)
        assert json.loads(r.out_bytes)["blob"] == want[src], r.out
    ws = v.workspace("main")
    assert ws.blob_of("copied.py") == want[src_cp] and ws.blob_of("moved.py") == want[src_mv]
    assert ws.blob_of(src_mv) is None and ws.blob_of(src_cp) == want[src_cp]
    assert missing(v.path) == promised
