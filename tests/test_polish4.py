"""polish3's leftovers (the thirty-ninth round, h-polish4; docs/testing.md, "A builder's day
with the Python API and MCP"): errors that said what was wrong and not what to do, a
`node_modules` committed with nothing said. Each through real components (the CLI as a
process, a real mount for `proxy exec`), each checking that nothing changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

import avfs_git
from avfs_git.core.errors import ForkNotFoundError, IsDirectoryError, PathNotFoundError, UsageError
from avfs_git.core.vaults.home import Home
from avfs_git.mcp.tools import AvfsTools

from .conftest import git
from .test_fuse import require_fuse
from .test_json_schemas import validate

# the home's warm CLI server, as a user's (tests/conftest.py, warm_cli): its calls are the CLI's, not its start
pytestmark = pytest.mark.warm_cli


def _avfs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avfs_git", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def _error(*args: str) -> dict[str, Any]:
    """The JSON error document of a failing `avfs --json ARGS`: one document, nothing on stderr."""
    r = _avfs("--json", *args)
    assert r.returncode != 0 and not r.stderr, (args, r.stdout, r.stderr)
    doc = json.loads(r.stdout)
    validate(doc)
    return dict(doc["error"])


def _checkout(tmp_path: Path) -> Path:
    """A git checkout whose branch is `master` (a vault made from it names its fork so)."""
    src = tmp_path / "proj"
    (src / "src").mkdir(parents=True)
    (src / "src" / "main.py").write_text("print('hi')\n")
    (src / "README.md").write_text("# proj\n")
    git("init", "-q", "-b", "master", str(src))
    git("-C", str(src), "add", "-A")
    git("-C", str(src), "commit", "-q", "-m", "init")
    return src


def _state(name: str) -> tuple[str, str]:
    """What a refused call must leave as it was: the vault's refs and its default fork's status."""
    vault_path = _avfs("vault", "path", name).stdout.strip()
    refs = git("--git-dir", vault_path, "for-each-ref", "--format=%(refname) %(objectname)")
    return refs, _avfs("--json", "--vault", name, "status").stdout


def test_main_where_the_default_fork_is_master_names_master_and_the_reverse(
    home: Home, tmp_path: Path
) -> None:
    """`--vault P:main` on a vault made from a checkout of `master` was `vault P has no fork
    'main'`, hint `see avfs --vault P vault info` (difflib finds no `master` in `main`).
    The vault's default fork is named now, on the CLI, the API and MCP; and the reverse.
    A typo's close names (the CLI's alone before) come through the API and MCP too."""
    src = _checkout(tmp_path)
    assert _avfs("vault", "create", "p", "--from", str(src)).returncode == 0
    assert _avfs("vault", "create", "q").returncode == 0
    before = _state("p"), _state("q")
    err = _error("--vault", "p:main", "status")
    assert err["code"] == "fork_not_found" and err["details"]["suggestions"] == ["master"], err
    assert err["hint"].startswith(
        "did you mean 'master'? it is this vault's default fork (`--vault p:master`"
    )
    err = _error("--vault", "q:master", "log")
    assert err["hint"].startswith("did you mean 'main'?") and err["details"]["suggestions"] == ["main"], err
    human = _avfs("--vault", "p:main", "cat", "README.md")
    assert human.returncode == 1 and "hint: did you mean 'master'?" in human.stderr, human.stderr
    assert _error("--vault", "p:mian", "status")["hint"] == "see `avfs --vault p vault info` for its forks"
    vault = home.create_vault("api", from_dir=str(src))
    with pytest.raises(ForkNotFoundError, match="no fork 'main'") as got:
        vault.workspace("main")
    assert got.value.hint is not None and got.value.hint.startswith("did you mean 'master'?")
    with pytest.raises(ForkNotFoundError) as over_mcp:
        AvfsTools(home.path).call("status", {"vault": "api:main"})
    assert over_mcp.value.hint == (
        "did you mean 'master'? the fork_list tool lists the vault's forks; the fork tool makes one"
    )
    assert callable(avfs_git.open_home)  # (the API's door: its hints name its calls, h-polish5)
    with pytest.raises(ForkNotFoundError) as typo:  # a typo, through the API: the CLI's did-you-mean
        vault.workspace("mastr")
    assert typo.value.hint == "did you mean 'master'? see `home.vault('api').forks()` for its forks"
    assert (_state("p"), _state("q")) == before
    assert vault.fork_names() == ["master"]


def test_a_checkpoint_name_with_a_slash_gets_the_name_to_use(tmp_path: Path) -> None:
    """`checkpoint save a/b`: "'/' is not allowed", no hint; nothing saved."""
    assert _avfs("vault", "create", "v", "--from", str(_checkout(tmp_path))).returncode == 0
    assert _avfs("--vault", "v", "write", "new.txt", "x").returncode == 0
    before = _state("v")
    err = _error("--vault", "v", "checkpoint", "save", "a/b")
    assert err["message"] == "invalid checkpoint name 'a/b': '/' is not allowed"
    assert (
        err["hint"] == "name it 'a-b' (a checkpoint is one name on its fork; FORK:NAME names another fork's)"
    )
    assert _state("v") == before
    assert json.loads(_avfs("--json", "--vault", "v", "checkpoint", "list").stdout)["checkpoints"] == []


@pytest.mark.parametrize("server", ["auto", "off"])
def test_a_missing_file_names_the_close_ones_and_the_ls_that_lists_them(
    home: Home, tmp_path: Path, server: str
) -> None:
    """`avfs cat nope.js` (and `ls`, MCP's `read_file`): "no such file or directory", no
    hint. The close names in the deepest directory there are named now, and what lists it."""
    assert _avfs("vault", "create", "v", "--from", str(_checkout(tmp_path))).returncode == 0
    before = _state("v")
    env = {"AVFS_SERVER": server}
    r = _avfs("--json", "--vault", "v", "cat", "src/mian.py", env=env)
    err = json.loads(r.stdout)["error"]
    assert r.returncode == 1 and not r.stderr and err["code"] == "path_not_found", r
    assert err["hint"] == "did you mean 'src/main.py'? `avfs ls src` lists src"
    assert err["details"] == {"path": "src/mian.py", "suggestions": ["src/main.py"]}
    human = _avfs("--vault", "v", "cat", "readme.MD", env=env)
    assert "hint: did you mean 'README.md'? `avfs ls` lists the fork's root" in human.stderr, human.stderr
    assert (
        _error("--vault", "v", "ls", "srcc/x")["hint"]
        == "did you mean 'src'? `avfs ls` lists the fork's root"
    )
    assert _error("--vault", "v", "cat", "zzz/qqq")["hint"] == "`avfs ls` lists the fork's root"
    assert (
        _error("--vault", "v", "cat", "src")["hint"] == "`avfs ls src` lists it; `avfs tree` the files below"
    )
    with pytest.raises(PathNotFoundError) as over_mcp:
        AvfsTools(os.environ["AVFS_HOME"], "v").call("read_file", {"path": "src/mian.py"})
    assert (
        over_mcp.value.hint
        == "did you mean 'src/main.py'? the list_files tool with `path: 'src'` lists what is there"
    )
    with pytest.raises(IsDirectoryError) as a_dir:
        AvfsTools(os.environ["AVFS_HOME"], "v").call("read_file", {"path": "src"})
    assert a_dir.value.hint == "a directory: the list_files tool with `path: 'src'` lists it"
    assert _state("v") == before


def test_vault_create_from_a_missing_directory_or_an_archive_says_what_to_give(
    home: Home, tmp_path: Path
) -> None:
    """`vault create x --from ./missing`: "not a directory", no hint; an sdist's tarball
    given to `create_vault(from_dir=)` the same. Each says what to give; no vault made."""
    err = _error("vault", "create", "x", "--from", str(tmp_path / "missing"))
    assert err["message"] == f"{tmp_path / 'missing'}: no such directory", err
    assert (
        err["hint"]
        == "give the project's directory (`--from .` inside it); without --from the vault starts empty"
    )
    archive = tmp_path / "proj-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(_checkout(tmp_path) / "README.md", "proj-1.0/README.md")
    with pytest.raises(PathNotFoundError, match="not a directory") as got:
        home.create_vault("x", from_dir=str(archive))
    assert got.value.hint is not None and "unpack the archive first" in got.value.hint
    assert json.loads(_avfs("--json", "vault", "list").stdout)["vaults"] == []
    assert home.list_vaults() == []


def test_policy_check_of_one_quoted_shell_line_names_shell() -> None:
    """`policy check -- 'echo hi >> f'` judged a program named that line, with no word
    that --shell exists. The answer is the same (that is what `proxy exec --` would run);
    its `hint` gives the --shell form. A command given as words has none."""
    r = _avfs("--json", "policy", "check", "--", "echo hi >> f")
    doc = json.loads(r.stdout)
    validate(doc)
    assert doc["commands"][0]["argv"] == ["echo hi >> f"]
    assert (
        doc["hint"]
        == "one argument is one program's name; for a shell line: avfs policy check --shell 'echo hi >> f'"
    )
    human = _avfs("policy", "check", "--", "echo hi >> f")
    assert "  hint: one argument is one program's name" in human.stdout, human.stdout
    for words in (["--", "echo", "hi"], ["--shell", "echo hi >> f"]):
        doc = json.loads(_avfs("--json", "policy", "check", *words).stdout)
        assert "hint" not in doc, doc


INSTALL = (
    "mkdir -p node_modules/dep/lib node_modules/.bin pkgs/a/node_modules/x && echo 1 > node_modules/dep/index.js"
    " && echo 2 > node_modules/dep/lib/util.js && echo 3 > pkgs/a/node_modules/x/i.js && echo 4 > app.js"
)


def test_an_install_committed_without_an_ignore_rule_is_a_warning(tmp_path: Path) -> None:
    """An `npm install` in a project with no `.gitignore` (npm tarballs carry none)
    committed `node_modules` (12,233 paths in h-polish3's trial) with nothing said but the
    count. The envelope's `warnings` names each such directory, its count and the
    `.gitignore` line; with that line there is no warning and no node_modules committed.
    A shell line given as one argument, run as no program (127), is a warning too."""
    require_fuse()
    assert _avfs("vault", "create", "v", "--from", str(_checkout(tmp_path))).returncode == 0
    env = {"AVFS_MOUNT_IDLE": "0"}
    r = _avfs("--json", "--vault", "v", "proxy", "exec", "--", "sh", "-c", INSTALL, env=env)
    doc = json.loads(r.stdout)
    validate(doc)
    assert r.returncode == 0 and doc["commit"] is not None, r
    assert doc["warnings"] == [
        {
            "code": "dependencies_committed",
            "path": "node_modules",
            "count": 2,
            "message": "2 path(s) under node_modules/ committed: no .gitignore rule keeps it out",
            "hint": "a `node_modules/` line in .gitignore keeps it out of the next commits, as git would"
            " (its files stay in the fork); `avfs undo` takes this commit back and keeps its files as"
            " uncheckpointed changes",
        },
        {
            "code": "dependencies_committed",
            "path": "pkgs/a/node_modules",
            "count": 1,
            "message": "1 path(s) under pkgs/a/node_modules/ committed: no .gitignore rule keeps it out",
            "hint": "a `node_modules/` line in .gitignore keeps it out of the next commits, as git would"
            " (its files stay in the fork); `avfs undo` takes this commit back and keeps its files as"
            " uncheckpointed changes",
        },
    ]
    # what the hint says: undo, the line, the files kept and never committed again
    assert _avfs("--vault", "v", "undo").returncode == 0
    assert _avfs("--vault", "v", "write", ".gitignore", "node_modules/\n").returncode == 0
    human = _avfs(
        "--vault", "v", "proxy", "exec", "--", "sh", "-c", INSTALL + " && echo 5 > more.js", env=env
    )
    assert human.returncode == 0 and "warning" not in human.stderr, human.stderr
    vault_path = _avfs("vault", "path", "v").stdout.strip()
    tree = git("--git-dir", vault_path, "ls-tree", "-r", "--name-only", "master").split()
    assert "more.js" in tree and not [p for p in tree if "node_modules" in p], tree
    assert _avfs("--vault", "v", "cat", "node_modules/dep/index.js").stdout == "1\n"
    r = _avfs("--json", "--vault", "v", "proxy", "exec", "--", "ls -la", env=env)
    doc = json.loads(r.stdout)
    validate(doc)
    assert r.returncode == 127 and doc["warnings"] == [
        {
            "code": "one_argument_command",
            "message": "the one argument 'ls -la' ran as a program of that name, which was not found",
            "hint": "for a shell line: --shell 'ls -la' (the API's and MCP's `shell`), or give its words apart: -- ls -la",
        }
    ], doc["warnings"]
    assert doc["commit"] is None


def test_a_program_named_by_a_host_path_the_sandbox_does_not_show_names_readable(
    home: Home, tmp_path: Path
) -> None:
    """h-polish4's trial: `exec_in(ws, [sys.executable, "-m", "pytest"])` from a venv under
    a project directory was "No such file or directory", exit 127, and nothing more (a bare
    name found on the host's PATH already said where it was). The host's path is named, and
    the policy's `readable` that shows it, with where its link leads; nothing is committed."""
    require_fuse()
    import avfs_git

    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (tmp_path / "real" / "bin").mkdir(parents=True)
    tool = tmp_path / "real" / "bin" / "tool"
    tool.write_text("#!/bin/sh\necho ran > ran.txt\n")
    tool.chmod(0o755)
    os.symlink(tool, venv / "bin" / "python")
    vault = home.create_vault("v")
    ws = vault.workspace("main")
    res = avfs_git.exec_in(ws, [str(venv / "bin" / "python"), "-V"])
    assert res.result is not None and res.exit_code == 127, res.to_dict()
    err = res.result.spawn_error or ""
    assert err.startswith(
        f"{venv}/bin/python: No such file or directory (on the host it is {venv}/bin/python,"
    ), err
    assert f"add readable = ['{venv}', '{tmp_path}/real'] to it (docs/policy.md)" in err, err
    assert res.commit is None and not ws.exists("ran.txt")
    Path(home.path, "policy.toml").write_text(
        f'version = 1\n[defaults]\nreadable = ["{venv}", "{tmp_path}/real"]\n'
    )  # what the message says: it runs
    res = avfs_git.exec_in(ws, [str(venv / "bin" / "python"), "-V"])
    assert res.exit_code == 0 and ws.read("ran.txt") == b"ran\n", res.to_dict()


def test_the_trial_s_wrong_api_and_mcp_calls_say_what_to_do(home: Home, tmp_path: Path) -> None:
    """h-polish4's trial, each with hint None before: `create_vault` of a name that exists,
    `merge_continue` after a merge that returned its conflicts as data (none open), MCP's
    `fork` of a name that exists. Each says what to do; nothing changed."""
    from avfs_git import checkpoint
    from avfs_git.core.errors import AlreadyExistsError
    from avfs_git.core.operations import merge

    vault = home.create_vault("v", from_dir=str(_checkout(tmp_path)))
    vault.create_fork("master", "a")
    vault.workspace("a").write("README.md", b"# a\n")
    checkpoint.save(vault, "a")
    vault.workspace("master").write("README.md", b"# master\n")
    checkpoint.save(vault, "master")
    tips = {f: vault.fork_info(f).head for f in vault.fork_names()}
    with pytest.raises(AlreadyExistsError) as again:
        home.create_vault("v")
    assert again.value.hint == (
        "use it (`--vault v`; the API's home.vault('v')), give another name, or"
        " `home.delete_vault('v', force=True)` first (it goes to the trash: `home.restore_vault('v')`)"
    )
    assert merge.merge(vault, "a", "master").status == "conflicts"
    for end in (merge.merge_continue, merge.merge_abort):
        with pytest.raises(UsageError, match="no merge into master is in progress") as none_open:
            end(vault, "master")
        assert none_open.value.hint is not None and "write_conflicts" in none_open.value.hint
    with pytest.raises(AlreadyExistsError) as over_mcp:
        AvfsTools(home.path, "v").call("fork", {"name": "a"})
    assert over_mcp.value.hint == "the fork exists: name it as `fork` to work in it, or give another `name`"
    assert {f: vault.fork_info(f).head for f in vault.fork_names()} == tips
    assert not vault.workspace("master").is_dirty() and [v.name for v in home.list_vaults()] == ["v"]


@pytest.mark.parametrize(
    ("tool", "args", "said"),
    [
        ("exec", {"command": "ls"}, "did you mean `argv` or `shell`? "),
        ("exec", {"argv": ["ls"], "timeout": 5}, "did you mean `timeout_ms`? "),
        (
            "exec",
            {"argv": "ls -la"},
            "`argv` is a list of words (['ls', '-la']), or give `shell`: 'ls -la'; ",
        ),
        ("write_file", {"path": "x.txt", "text": "hi"}, "did you mean `content`? "),
        ("checkpoint_restore", {"name": "before"}, "did you mean `rev`? "),
        ("merge", {"from": "a"}, "did you mean `source`? "),
    ],
)
def test_mcp_arguments_other_tools_name_so_get_the_one_this_takes(
    home: Home, tool: str, args: dict[str, Any], said: str
) -> None:
    """h-polish4's trial over MCP: `command`, `timeout`, `text`, `name`, `from`, and a
    string `argv` each listed the tool's arguments and no more. The one meant is named
    first; nothing changed."""
    vault = home.create_vault("v")
    tip = vault.fork_info("main").head
    with pytest.raises(UsageError) as got:
        AvfsTools(home.path, "v").call(tool, args)
    assert got.value.hint == said + "see the tool's input schema (tools/list)", got.value.hint
    assert vault.fork_info("main").head == tip and not vault.workspace("main").is_dirty()
