"""Path policies enforced by avfs's own paths into a fork: the workspace's writes (the
Python API), ``avfs write/rm/mv/cp/chmod``, MCP's tools, the readers (ls, cat, stat,
tree, find, grep, search) and checkpoints, which never record a protected change. Each
refusal changes nothing; a merge from outside is not refused; hidden files stay in the
fork's tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import AvfsError, PathAppendOnlyError, PathHiddenError, PathReadOnlyError
from avfs_git.core.operations import checkpoint, fts, merge, search
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault

POLICY = """version = 1
[paths]
read_only   = ["migrations/**", ".github/workflows/**"]
hidden      = [".env", "secrets/**"]
append_only = ["logs/*.log"]

[forks."review-*".paths]
read_only = ["**"]
"""

FILES = {
    "src/app.py": b"print('app')\n",
    "migrations/0001.sql": b"create table t;\n",
    ".github/workflows/ci.yml": b"on: push\n",
    ".env": b"TOKEN=s3cret-token\n",
    "src/.env": b"NESTED=s3cret-token\n",
    "secrets/key.pem": b"-----BEGIN s3cret-token-----\n",
    "logs/app.log": b"line 1\n",
}


def protect(vault: Vault, text: str = POLICY) -> None:
    Path(vault.path, "avfs", "policy.toml").write_text(text)


@pytest.fixture
def fork(vault: Vault) -> Vault:
    """Vault ``v`` whose main holds FILES (checkpointed), then protected by POLICY."""
    ws = vault.workspace("main")
    for p, data in FILES.items():
        ws.write(p, data)
    checkpoint.save(vault, "main", message="files")
    protect(vault)
    return vault


def tree_of(vault: Vault, fork: str = "main") -> dict[str, bytes]:
    """The fork's committed tree: path -> bytes."""
    store = vault.store
    commit = vault.workspace(fork).tip()
    assert commit is not None
    out: dict[str, bytes] = {}

    def walk(tree: str, prefix: str) -> None:
        for name, (oid, mode) in store.tree_items(tree).items():
            p = f"{prefix}{name}"
            if mode == 0o040000:
                walk(oid, p + "/")
            else:
                out[p] = store.blob_data(oid)

    walk(store.commit_tree(commit), "")
    return out


def state(vault: Vault, fork: str = "main") -> tuple[dict[str, bytes], list[Any], str]:
    ws = vault.workspace(fork)
    return tree_of(vault, fork), ws.status(), ws.base


# -- the API ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "error", "rule"),
    [
        (lambda ws: ws.write("migrations/0001.sql", b"drop table t;\n"), PathReadOnlyError, "migrations/**"),
        (lambda ws: ws.write("migrations/0002.sql", b"new\n"), PathReadOnlyError, "migrations/**"),
        (lambda ws: ws.mkdir("migrations/sub"), PathReadOnlyError, "migrations/**"),
        (lambda ws: ws.remove("migrations/0001.sql"), PathReadOnlyError, "migrations/**"),
        (lambda ws: ws.remove("migrations", recursive=True), PathReadOnlyError, "migrations/**"),
        (lambda ws: ws.rename("migrations/0001.sql", "src/x.sql"), PathReadOnlyError, "migrations/**"),
        (lambda ws: ws.rename("src/app.py", "migrations/app.py"), PathReadOnlyError, "migrations/**"),
        (lambda ws: ws.rename("migrations", "old"), PathReadOnlyError, "migrations/**"),
        (lambda ws: ws.copy("src/app.py", "migrations/0001.sql"), PathReadOnlyError, "migrations/**"),
        (lambda ws: ws.chmod("migrations/0001.sql", True), PathReadOnlyError, "migrations/**"),
        (lambda ws: ws.symlink("../src/app.py", "migrations/link"), PathReadOnlyError, "migrations/**"),
        (lambda ws: ws.write(".github/workflows/ci.yml", b"x"), PathReadOnlyError, ".github/workflows/**"),
        (lambda ws: ws.write(".env", b"TOKEN=other\n"), PathHiddenError, ".env"),
        (lambda ws: ws.write("deep/new/.env", b"x"), PathHiddenError, ".env"),
        (lambda ws: ws.remove(".env"), PathHiddenError, ".env"),
        (lambda ws: ws.remove("src", recursive=True), PathHiddenError, ".env"),  # src/.env below
        (lambda ws: ws.rename("src", "lib"), PathHiddenError, ".env"),
        (lambda ws: ws.copy("src", "lib", recursive=True), PathHiddenError, ".env"),
        (lambda ws: ws.copy("secrets/key.pem", "src/key.pem"), PathHiddenError, "secrets/**"),
        (lambda ws: ws.write("secrets/new", b"x"), PathHiddenError, "secrets/**"),
        (lambda ws: ws.write("logs/app.log", b"rewritten\n"), PathAppendOnlyError, "logs/*.log"),
        (lambda ws: ws.write("logs/app.log", b""), PathAppendOnlyError, "logs/*.log"),
        (
            lambda ws: ws.write("logs/app.log", b"line 1\nline 2\n", mode=0o755),
            PathAppendOnlyError,
            "logs/*.log",
        ),
        (lambda ws: ws.remove("logs/app.log"), PathAppendOnlyError, "logs/*.log"),
        (lambda ws: ws.rename("logs/app.log", "logs/old.txt"), PathAppendOnlyError, "logs/*.log"),
        (lambda ws: ws.chmod("logs/app.log", True), PathAppendOnlyError, "logs/*.log"),
    ],
)
def test_the_api_refuses_with_the_rule_and_changes_nothing(fork: Vault, action, error, rule) -> None:  # type: ignore[no-untyped-def]
    before = state(fork)
    ws = fork.workspace("main")
    with pytest.raises(error) as info:
        action(ws)
    assert info.value.details["pattern"] == rule
    assert info.value.details["source"] == str(Path(fork.path, "avfs", "policy.toml"))
    assert rule in info.value.message
    assert state(fork) == before  # nothing written, nothing in the overlay


def test_what_the_rules_allow(fork: Vault) -> None:
    ws = fork.workspace("main")
    ws.write("logs/app.log", b"line 1\nline 2\n")  # an append
    ws.write("logs/new.log", b"first\n")  # a new append-only file
    ws.write("src/app.py", b"print('changed')\n")
    ws.mkdir("logs/archive")
    res = checkpoint.save(fork, "main", message="allowed")
    assert res.created and not res.not_recorded
    tree = tree_of(fork)
    assert tree["logs/app.log"] == b"line 1\nline 2\n" and tree["logs/new.log"] == b"first\n"
    # the hidden files stay in the fork's tree, unchanged, after the checkpoint
    assert tree[".env"] == FILES[".env"] and tree["secrets/key.pem"] == FILES["secrets/key.pem"]


def test_a_review_fork_is_read_only_and_main_is_not(fork: Vault) -> None:
    fork.fork("main", "review-1")
    with pytest.raises(PathReadOnlyError) as info:
        fork.workspace("review-1").write("src/app.py", b"x")
    assert info.value.details["fork_pattern"] == "review-*"
    fork.workspace("main").write("src/app.py", b"x")  # main has no such table


def test_an_invalid_policy_fails_every_write_closed(fork: Vault) -> None:
    protect(fork, 'version = 1\n[paths]\nhidden = ["#nothing"]\n')
    before = state(fork)
    with pytest.raises(AvfsError) as info:
        fork.workspace("main").write("src/app.py", b"x")
    assert info.value.code == "policy_invalid"
    assert state(fork) == before


# -- the readers --------------------------------------------------------------------------------
def test_hidden_paths_are_never_served(fork: Vault, home: Home, tmp_path: Path) -> None:
    ws = fork.workspace("main")
    ws.symlink(".env", "src/link-to-env")  # a link to a hidden file serves nothing either
    for f in (".env", "secrets/key.pem", "src/.env", "src/link-to-env"):
        with pytest.raises(PathHiddenError):
            ws.check_shown(f)
    found = search.find(ws, "")
    assert not {e.path for e in found.entries} & {".env", "src/.env", "secrets/key.pem"}
    assert "secrets" in {e.path for e in found.entries}  # `secrets/**`: the directory stays, empty
    hits = search.grep(ws, "s3cret")
    assert hits.files == []
    with pytest.raises(PathHiddenError):
        search.grep(ws, "s3cret", [".env"])
    result = fts.search(fork, "main", "s3cret")
    assert result.hits == []
    assert fts.search(fork, "main", "app").hits  # the index still works
    n = ws.materialize_to(str(tmp_path / "copy"))  # proxy exec's materialized tree
    assert not (tmp_path / "copy" / ".env").exists() and not (tmp_path / "copy" / "src" / ".env").exists()
    assert (tmp_path / "copy" / "src" / "app.py").exists() and n >= 4


def test_history_serves_no_hidden_content(fork: Vault, cli) -> None:  # type: ignore[no-untyped-def]
    """A path hidden now is hidden in every revision: `show REV:PATH`, `diff` between
    revisions, `log -p` and `show` leave it out (its content never appears), and MCP's
    `read_file` with `rev` refuses it as a read of the fork does."""
    from avfs_git.core.operations import history
    from avfs_git.mcp.tools import AvfsTools

    first = fork.workspace("main").tip()
    ws = fork.workspace("main")
    ws.write("src/app.py", b"print('two')\n")
    checkpoint.save(fork, "main", message="two")
    for path in (".env", "secrets/key.pem", "src/.env"):
        with pytest.raises(PathHiddenError):
            history.read_at(fork, "main", "HEAD", path)
    assert history.read_at(fork, "main", "HEAD", "src/app.py") == b"print('two')\n"
    whole = history.diff(fork, "main", f"{first}~1", "HEAD")
    assert {c.path for c in whole.changes} == set(FILES) - {".env", "src/.env", "secrets/key.pem"}
    home = str(Path(fork.path).parent.parent)
    for args in (
        ("log", "-p"),
        ("show", first or "HEAD"),
        ("diff", f"{first}~1", "HEAD"),
    ):
        r = cli("--home", home, "--vault", "v:main", *args)
        assert r.code == 0, r.err
        assert "s3cret" not in r.out and "src/app.py" in r.out, args
    r = cli("--home", home, "--vault", "v:main", "show", "HEAD:.env")
    assert r.code != 0 and "s3cret" not in r.out
    with pytest.raises(PathHiddenError):
        AvfsTools(home, "v:main").call("read_file", {"path": ".env", "rev": "HEAD"})


def test_the_cli_refuses_with_one_code_and_hides(fork: Vault, cli) -> None:  # type: ignore[no-untyped-def]
    home = str(Path(fork.path).parent.parent)
    before = state(fork)
    run = lambda *a: cli("--home", home, "--json", "--vault", "v:main", *a)  # noqa: E731
    for args, code in [
        (("write", "migrations/0001.sql", "x"), "path_read_only"),
        (("rm", "migrations/0001.sql"), "path_read_only"),
        (("mv", "src/app.py", "migrations/app.py"), "path_read_only"),
        (("cp", "secrets/key.pem", "src/k"), "path_hidden"),
        (("chmod", "+x", "migrations/0001.sql"), "path_read_only"),
        (("write", "logs/app.log", "over"), "path_append_only"),
        (("cat", ".env"), "path_hidden"),
        (("stat", "secrets/key.pem"), "path_hidden"),
        (("ls", "secrets/key.pem"), "path_hidden"),
    ]:
        r = run(*args)
        assert r.code == 1, (args, r.out, r.err)
        err = r.json()["error"]
        assert err["code"] == code, (args, err)
        assert err["details"]["pattern"] and err["details"]["source"].endswith("policy.toml")
    assert state(fork) == before
    listed = {e["name"] for e in run("ls").json()["entries"]}
    assert ".env" not in listed and {"src", "migrations", "secrets"} <= listed
    assert run("ls", "secrets").json()["entries"] == []
    tree = [e["path"] for e in run("tree").json()["entries"]]
    assert ".env" not in tree and "src/.env" not in tree and "secrets/key.pem" not in tree
    grep = run("grep", "s3cret").json()
    assert grep["files"] == [] and grep["matches"] == 0


def test_the_cli_appends_to_an_append_only_file(fork: Vault, cli) -> None:  # type: ignore[no-untyped-def]
    """`avfs write --append`: an append_only log took no CLI write but old bytes plus new
    (a `cat`, then a `write` of both, racing any other writer); now one flag, written only
    onto what it read."""
    home = str(Path(fork.path).parent.parent)
    run = lambda *a: cli("--home", home, "--json", "--vault", "v:main", *a)  # noqa: E731
    old = fork.workspace("main").read("logs/app.log")
    r = run("write", "--append", "logs/app.log", "more\n")
    assert r.code == 0, (r.out, r.err)
    assert r.json()["stat"]["size"] == len(old) + 5
    assert fork.workspace("main").read("logs/app.log") == old + b"more\n"
    r = run("write", "--append", "logs/new.log", "first\n")  # made when missing
    assert r.code == 0 and fork.workspace("main").read("logs/new.log") == b"first\n"
    r = run("write", "--append", "--expect", "absent", "logs/app.log", "x")
    assert r.code == 2 and r.json()["error"]["code"] == "usage"
    assert fork.workspace("main").read("logs/app.log") == old + b"more\n"
    r = cli("--home", home, "--vault", "v:main", "write", "--append", "logs/app.log", "again\n")
    assert r.code == 0 and "appended 6 bytes to logs/app.log" in r.out + r.err


def test_mcp_tools_refuse_and_hide(fork: Vault, home: Home) -> None:
    from avfs_git.mcp.tools import AvfsTools

    tools = AvfsTools(home.path, "v:main")
    before = state(fork)
    for tool, args, code in [
        ("write_file", {"path": "migrations/0001.sql", "content": "x"}, "path_read_only"),
        ("write_file", {"path": ".env", "content": "x"}, "path_hidden"),
        ("write_file", {"path": "logs/app.log", "content": "other"}, "path_append_only"),
        ("read_file", {"path": ".env"}, "path_hidden"),
        ("read_file", {"path": "secrets/key.pem"}, "path_hidden"),
        ("list_files", {"path": "secrets/key.pem"}, "path_hidden"),
    ]:
        with pytest.raises(AvfsError) as info:
            tools.call(tool, args)
        assert info.value.code == code, (tool, args)
    assert state(fork) == before
    import json

    listed = json.loads(tools.call("list_files", {"path": ""}))
    assert ".env" not in {e["name"] for e in listed["entries"]}
    grep = json.loads(tools.call("grep", {"pattern": "s3cret"}))
    assert grep["files"] == []
    json.loads(tools.call("write_file", {"path": "logs/app.log", "content": "line 1\nmore\n"}))


# -- checkpoints ---------------------------------------------------------------------------------
def test_a_checkpoint_never_records_a_protected_change(fork: Vault) -> None:
    """Changes that reached the overlay before the rules (or past the checks) stay in the
    workspace, are reported, and are not committed; the rest is."""
    protect(fork, "version = 1\n")  # no rules yet
    ws = fork.workspace("main")
    ws.write("migrations/0001.sql", b"drop table t;\n")
    ws.write("migrations/0002.sql", b"new\n")
    ws.write(".env", b"TOKEN=leaked\n")
    ws.remove("secrets", recursive=True)
    ws.write("logs/app.log", b"rewritten\n")
    ws.write("logs/other.log", b"new log\n")
    ws.rename(".github", "gh")
    ws.write("src/app.py", b"print('ok')\n")
    protect(fork)
    res = checkpoint.save(fork, "main", message="after")
    assert res.created
    tree = tree_of(fork)
    assert tree["src/app.py"] == b"print('ok')\n"  # the allowed change is recorded
    assert tree["logs/other.log"] == b"new log\n"  # a new append-only file is an append
    for p in ("migrations/0001.sql", ".env", "secrets/key.pem", "logs/app.log", ".github/workflows/ci.yml"):
        assert tree[p] == FILES[p], p  # the protected ones are as they were
    assert "migrations/0002.sql" not in tree
    # the rename of .github lands as a copy: its new place is nobody's, its old one stays
    assert tree["gh/workflows/ci.yml"] == FILES[".github/workflows/ci.yml"]
    kinds = {n.path: n.kind for n in res.not_recorded}
    assert kinds == {
        "migrations/0001.sql": "path_read_only",
        "migrations/0002.sql": "path_read_only",
        ".env": "path_hidden",
        "secrets": "path_hidden",
        "logs/app.log": "path_append_only",
        ".github": "path_read_only",
    }
    # the workspace keeps them (nothing lost), the next checkpoint reports them again
    assert fork.workspace("main").view.read(".env") == b"TOKEN=leaked\n"
    again = checkpoint.save(fork, "main", message="again")
    assert not again.created and {n.path for n in again.not_recorded} == set(kinds)


def test_a_merge_from_outside_is_not_refused(fork: Vault, tmp_path: Path) -> None:
    """A person's update of protected paths on main (pushed from their clone) merges into
    the agent's fork; the hidden file is updated in its tree, never shown."""
    import subprocess

    fork.fork("main", "agent")
    clone = tmp_path / "person"
    git = lambda *a: subprocess.run(["git", *a], cwd=clone, check=True, capture_output=True)  # noqa: E731
    subprocess.run(["git", "clone", "-q", "-b", "main", fork.path, str(clone)], check=True)
    (clone / "migrations" / "0002.sql").write_text("a person's migration\n")
    (clone / ".env").write_text("TOKEN=rotated\n")
    git("add", "-A")
    git("-c", "user.name=P", "-c", "user.email=p@example.invalid", "commit", "-qm", "person")
    git("push", "-q", "origin", "main")
    res = merge.merge(fork, "main", "agent")
    assert res.status in ("fast_forward", "merged")
    tree = tree_of(fork, "agent")
    assert tree["migrations/0002.sql"] == b"a person's migration\n"
    assert tree[".env"] == b"TOKEN=rotated\n"  # hidden: kept in the tree, updated from outside
    with pytest.raises(PathHiddenError):
        fork.workspace("agent").check_shown(".env")
    assert checkpoint.save(fork, "agent", message="nothing").not_recorded == ()


def test_a_write_through_a_symlink_meets_the_rule_of_where_it_lands(fork: Vault) -> None:
    ws = fork.workspace("main")
    ws.symlink("../migrations/0001.sql", "src/alias.sql")  # the link itself is in src: allowed
    ws.symlink("../migrations", "src/mdir")
    ws.symlink("../.env", "src/env-link")
    before = state(fork)
    with pytest.raises(PathReadOnlyError):
        ws.write("src/alias.sql", b"drop table t;\n")
    with pytest.raises(PathReadOnlyError):
        ws.write("src/mdir/0003.sql", b"new\n")
    with pytest.raises(PathHiddenError):
        ws.write("src/env-link", b"TOKEN=x\n")
    assert state(fork) == before


def test_proxy_exec_materialized_copies_no_hidden_file_and_writes_back_no_protected_change(
    fork: Vault,
) -> None:
    """Where FUSE is not used (``--mode materialized``), the copy lacks the hidden files and
    what the command changed on protected paths is not written back: the envelope names it."""
    from avfs_git.proxy.execute import exec_in

    ws = fork.workspace("main")
    script = (
        "test ! -e .env && test ! -e secrets/key.pem && test -d secrets && "
        "echo drop > migrations/0001.sql && echo leak > .env && echo ok > src/new.py"
    )
    res = exec_in(ws, shell=script, mode="materialized")
    doc = res.to_dict()
    assert res.result is not None and res.result.exit_code == 0, doc
    tree = tree_of(fork)
    assert tree["migrations/0001.sql"] == FILES["migrations/0001.sql"] and tree[".env"] == FILES[".env"]
    assert tree["src/new.py"] == b"ok\n"
    left = {p["path"] for p in doc["error"]["details"]["paths"]} if doc.get("error") else set()
    assert left == {"migrations/0001.sql", ".env"}, doc.get("error")


def test_a_merge_continued_keeps_what_it_brought_to_protected_paths(vault: Vault) -> None:
    """A merge with a conflict written, resolved by the agent and continued: the merge
    commit holds the person's changes to read-only and hidden paths that merged cleanly (a
    checkpoint leaves out only the fork's own changes to them). A conflict on a read-only
    path cannot be resolved by hand: `--continue` refuses, naming the rule, and `--abort`
    leaves the fork as it was."""
    import subprocess

    ws = vault.workspace("main")
    for p, data in {"src/a.py": b"a\n", "migrations/0001.sql": b"t\n", ".env": b"T=1\n"}.items():
        ws.write(p, data)
    checkpoint.save(vault, "main", message="base")
    vault.fork("main", "agent")
    agent = vault.workspace("agent")
    agent.write("src/a.py", b"agent\n")
    checkpoint.save(vault, "agent", message="agent")
    ws.write("src/a.py", b"person\n")
    ws.write("migrations/0001.sql", b"person's\n")
    ws.write(".env", b"T=2\n")
    checkpoint.save(vault, "main", message="person")
    protect(vault)
    res = merge.merge(vault, "main", "agent", write_conflicts=True)
    assert res.status == "conflicts_written" and [c.path for c in res.conflicts] == ["src/a.py"]
    agent = vault.workspace("agent")
    assert agent.not_recorded() == []  # what the merge brought is not the fork's own change
    agent.write("src/a.py", b"resolved\n")
    done = merge.merge_continue(vault, "agent")
    assert done.status == "merged"

    def show(path: str) -> bytes:
        return subprocess.run(
            ["git", "--git-dir", vault.path, "show", f"agent:{path}"], capture_output=True, check=True
        ).stdout

    assert (show("src/a.py"), show("migrations/0001.sql"), show(".env")) == (
        b"resolved\n",
        b"person's\n",
        b"T=2\n",
    )
    assert vault.workspace("agent").status() == []

    # a conflict on the read-only path itself
    vault.fork("main", "agent2")
    Path(vault.path, "avfs", "policy.toml").unlink()
    a2 = vault.workspace("agent2")
    a2.write("migrations/0001.sql", b"agent2's\n")
    checkpoint.save(vault, "agent2", message="before the rule")
    ws.write("migrations/0001.sql", b"person's again\n")
    checkpoint.save(vault, "main", message="person again")
    protect(vault)
    before = state(vault, "agent2")
    res = merge.merge(vault, "main", "agent2", write_conflicts=True)
    assert [c.path for c in res.conflicts] == ["migrations/0001.sql"]
    with pytest.raises(PathReadOnlyError):
        vault.workspace("agent2").write("migrations/0001.sql", b"resolved\n")
    with pytest.raises(AvfsError) as err:
        merge.merge_continue(vault, "agent2")
    assert err.value.code == "conflict" and "read_only" in (err.value.hint or "")
    merge.merge_abort(vault, "agent2")
    assert state(vault, "agent2") == before
    # as the hint says: a merge that takes one side is a merge from outside
    assert merge.merge(vault, "main", "agent2", favor="theirs").status == "merged"
    assert tree_of(vault, "agent2")["migrations/0001.sql"] == b"person's again\n"
