"""What a command acts on follows where the person is (one rule, `registry.place`).

Inside a fork's live mount: that fork (`status`, `log`, `op log`, `undo`, `redo`, `proxy
exec`); outside one, in the directory a vault was made from by `avfs up` (or below it): that
vault, for every command that takes one, as `down` and `apply` always did; elsewhere the
home's default (`vault use`). An import keeps the person's branch (`master`, a feature
branch) as the default fork. The CLI in the test's process (the current directory set for
the call) and, for the commands of a mount's life, real processes (`python -m avfs_git`);
real mounts, real git.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import mounts

from . import realdata
from .conftest import AUTHOR, CliResult, git, run_in_process
from .test_fuse import require_fuse
from .test_json_schemas import validate


def _avfs(*args: str, cwd: str | Path | None = None, proc: bool = False) -> CliResult:
    """`avfs ARGS` in ``cwd``: in this process (the rule reads the current directory, the
    same in either), or with ``proc`` a real process, as the two tests that go through a
    mount's life do (`up`, `down`, `push`, `remote add`, `status`, `checkpoint save`, `op
    log`, `undo`, `redo`)."""
    if not proc:
        return run_in_process(list(args), cwd=cwd)
    p = subprocess.run([sys.executable, "-m", "avfs_git", *args], capture_output=True, timeout=180, cwd=cwd)
    return CliResult(p.returncode, p.stdout.decode(), p.stderr.decode(), p.stdout)


def _ok(r: CliResult) -> dict[str, Any]:
    assert r.code == 0, (r.out, r.err)
    doc = r.json()
    validate(doc)
    return dict(doc)


@pytest.fixture
def home() -> Iterator[Home]:
    """The home the CLI uses ($AVFS_HOME), with a default vault `elsewhere` that no command
    run in the project should touch; every mount is taken down after."""
    require_fuse()
    h = Home(os.environ["AVFS_HOME"], author=AUTHOR, mounts=MOUNT_SIDE)
    h.create_vault("elsewhere")
    h.use("elsewhere")
    try:
        yield h
    finally:
        for m in mounts.list_mounts(h):
            try:
                mounts.unmount(h, h.vault(m.vault), m.fork, revision=m.revision, lazy=True)
            finally:
                if mounts.mounted_at(m.mountpoint):
                    mounts.force_unmount(m.mountpoint)
        h.close()


def _fresh(home: Home) -> Home:
    return Home(home.path, author=AUTHOR, mounts=MOUNT_SIDE)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A real project's files (attrs's sdist) as a git checkout on `master`, two commits, with
    an uncommitted change."""
    unpacked = realdata.extract(realdata.pypi_sdist("attrs", "24.2.0"), tmp_path / "sdist")
    src = tmp_path / "attrs"
    shutil.copytree(unpacked, src, symlinks=True)
    git("init", "-q", "-b", "master", cwd=src)
    git("add", "-A", cwd=src)
    git("commit", "-qm", "attrs 24.2.0", cwd=src)
    (src / "README.md").write_text((src / "README.md").read_text() + "\nlocal note\n")
    git("commit", "-qam", "note", cwd=src)
    (src / "CHANGELOG.md").write_text("uncommitted\n")
    return src


# -- import keeps the person's branch ---------------------------------------------------------


def test_up_down_push_use_the_checked_out_master(home: Home, project: Path, tmp_path: Path) -> None:
    up = _ok(_avfs("--json", "up", str(project), "--agent", "a1", proc=True))
    vault = _fresh(home).vault(up["vault"])
    assert vault.fork_names() == ["a1", "master"] and vault.default_fork == "master"
    master = vault.workspace("master")
    assert master.read("CHANGELOG.md") == b"uncommitted\n"  # the uncommitted change is on master
    mp = Path(up["mountpoint"])
    assert (mp / "CHANGELOG.md").read_text() == "uncommitted\n"
    (mp / "AGENT.md").write_text("agent work\n")
    down = _ok(_avfs("--json", "down", str(mp), "--keep", proc=True))
    assert down["target"] == "master" and down["fork_deleted"]
    vault = _fresh(home).vault(up["vault"])
    assert vault.fork_names() == ["master"]  # still no `main`
    assert vault.workspace("master").read("AGENT.md") == b"agent work\n"
    # push --all pushes the person's branches: master, never an invented main
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", str(remote))
    _ok(_avfs("--json", "--vault", up["vault"], "remote", "add", "origin", str(remote), proc=True))
    _ok(_avfs("--json", "push", "--all", cwd=project, proc=True))
    heads = git("--git-dir", str(remote), "for-each-ref", "--format=%(refname)", "refs/heads").split()
    assert heads == ["refs/heads/master"]
    clone = tmp_path / "clone"
    git("clone", "-q", "-b", "master", str(remote), str(clone))
    assert (clone / "AGENT.md").read_text() == "agent work\n"
    assert (clone / "CHANGELOG.md").read_text() == "uncommitted\n"  # kept on master, merged with a1


# -- in the directory a vault was made from: that vault -----------------------------------------


def test_every_command_in_the_imported_directory_acts_on_its_vault(home: Home, project: Path) -> None:
    up = _ok(_avfs("--json", "up", str(project), "--agent", "a1"))
    name = up["vault"]
    sub = project / "src" / "attr"
    wrote = _ok(_avfs("--json", "write", "NOTE.md", "from the project dir\n", cwd=project))
    assert (wrote["vault"], wrote["fork"]) == (name, "master")
    for cwd in (project, sub):
        status = _ok(_avfs("--json", "status", cwd=cwd))
        assert (status["vault"], status["fork"]) == (name, "master")
        assert [c["path"] for c in status["changes"]] == ["CHANGELOG.md", "NOTE.md"], (cwd, status)
    for cwd in (project, sub):
        log = _ok(_avfs("--json", "log", cwd=cwd))
        assert [c["message"] for c in log["commits"]][-2:] == ["note\n", "attrs 24.2.0\n"]
        assert _ok(_avfs("--json", "op", "log", cwd=cwd))["vault"] == name
        assert _ok(_avfs("--json", "checkpoint", "list", cwd=cwd))["vault"] == name
        env = _avfs("--json", "proxy", "exec", "--", "true", cwd=cwd).json()
        assert env["request"]["vault"] == name and env["request"]["fork"] == "master", env
    # elsewhere, the home's default vault, as before
    assert _ok(_avfs("--json", "status", cwd=project.parent))["vault"] == "elsewhere"
    # an explicit --vault wins over the place
    assert _ok(_avfs("--json", "--vault", "elsewhere", "status", cwd=project))["vault"] == "elsewhere"


# -- inside a mount: that fork ---------------------------------------------------------------


def test_undo_inside_a_mount_undoes_that_forks_operation_and_redo_brings_it_back(
    home: Home, project: Path
) -> None:
    up = _ok(_avfs("--json", "up", str(project), "--agent", "a1", proc=True))
    name, mp = up["vault"], Path(up["mountpoint"])
    before = _ok(_avfs("--json", "status", cwd=mp, proc=True))
    assert before["fork"] == "a1"
    (mp / "mine.txt").write_text("agent\n")
    mine = _ok(_avfs("--json", "checkpoint", "save", "mine", cwd=mp, proc=True))
    assert mine["checkpoint"]["fork"] == "a1"
    # then main's... master's own operation, made elsewhere (a pull would be one)
    _ok(_avfs("--json", "--vault", f"{name}:master", "checkpoint", "save", "theirs"))
    master_tip = _fresh(home).vault(name).workspace("master").base
    ops_here = _ok(_avfs("--json", "op", "log", cwd=mp, proc=True))["operations"]
    assert ops_here and all(o["fork"] == "a1" or o["kind"] == "fork_create" for o in ops_here)
    assert mine["op_id"] in [o["id"] for o in ops_here]

    undone = _ok(_avfs("--json", "undo", cwd=mp, proc=True))
    assert undone["undone"]["id"] == mine["op_id"]
    vault = _fresh(home).vault(name)
    assert vault.workspace("master").base == master_tip  # master's checkpoint stands
    assert vault.workspace("a1").base == before["base"]
    assert not (mp / "mine.txt").exists() or vault.workspace("a1").is_dirty()
    redone = _ok(_avfs("--json", "redo", cwd=mp, proc=True))
    assert redone["undone"]["id"] == undone["op_id"]
    vault = _fresh(home).vault(name)
    assert vault.workspace("a1").base == mine["checkpoint"]["commit"]
    assert (mp / "mine.txt").read_text() == "agent\n"
    assert _avfs("--json", "redo", cwd=mp).json()["error"]["code"] == "nothing_to_undo"
    help_text = _avfs("undo", "--help").out
    assert "avfs redo" in help_text


# -- mount NAME ------------------------------------------------------------------------------


def test_mount_name_that_is_a_vault_and_a_directory_is_an_ambiguity(home: Home, tmp_path: Path) -> None:
    home.create_vault("m4")
    work = tmp_path / "work"
    (work / "m4").mkdir(parents=True)
    r = _avfs("--json", "mount", "m4", cwd=work)
    doc = r.json()
    assert r.code == 2 and validate(doc) == "error" and doc["error"]["code"] == "usage", r
    assert "both a vault and a directory" in doc["error"]["message"]
    assert mounts.list_mounts(_fresh(home)) == [] and not mounts.mounted_at(str(work / "m4"))
    # said either way, it mounts what was meant
    by_path = _ok(_avfs("--json", "mount", "./m4", cwd=work))["mount"]
    assert by_path["vault"] == "elsewhere" and by_path["mountpoint"] == str(work / "m4")
    by_name = _ok(_avfs("--json", "mount", "m4:main", cwd=work))["mount"]
    assert by_name["vault"] == "m4"
    # where no directory of that name is, the name is the vault
    other = _ok(_avfs("--json", "mount", "m4", cwd=tmp_path))["mount"]
    assert other["vault"] == "m4" and other["reused"]


def test_mount_name_of_a_vault_without_a_directory_mounts_the_vault(home: Home, tmp_path: Path) -> None:
    home.create_vault("m5")
    doc = _ok(_avfs("--json", "mount", "m5", cwd=tmp_path))["mount"]
    assert doc["vault"] == "m5" and doc["fork"] == "main"
    assert not (tmp_path / "m5").exists()
    assert json.loads(_avfs("--json", "mount", "--list").out)["mounts"][0]["vault"] == "m5"


# -- status -s: git's columns ----------------------------------------------------------------


def test_status_short_prints_what_git_status_short_prints(tmp_path: Path) -> None:
    """The same changes made to a fork and to a plain checkout of its base: `avfs status
    -s` and `git status -s` print the same lines (real git the oracle)."""
    h = Home(os.environ["AVFS_HOME"], author=AUTHOR, mounts=MOUNT_SIDE)
    try:
        unpacked = realdata.extract(realdata.pypi_sdist("attrs", "24.2.0"), tmp_path / "sdist")
        v = h.create_vault("s", from_dir=str(unpacked))
        checkout = tmp_path / "checkout"
        git("clone", "-q", v.path, str(checkout))
        ws = v.workspace()

        def both(fn_ws: Any, fn_dir: Any) -> None:
            fn_ws(ws)
            fn_dir(checkout)

        both(
            lambda w: w.write("README.md", b"changed\n"), lambda d: (d / "README.md").write_text("changed\n")
        )
        both(lambda w: w.remove("CHANGELOG.md"), lambda d: (d / "CHANGELOG.md").unlink())
        both(lambda w: w.write("NEW.txt", b"n\n"), lambda d: (d / "NEW.txt").write_text("n\n"))
        both(
            lambda w: w.write("src/attr/new_mod.py", b"x = 1\n"),
            lambda d: (d / "src/attr/new_mod.py").write_text("x = 1\n"),
        )
        both(
            lambda w: (w.write("newdir/a.py", b"a\n"), w.write("newdir/sub/b.py", b"b\n")),
            lambda d: (
                (d / "newdir/sub").mkdir(parents=True),
                (d / "newdir/a.py").write_text("a\n"),
                (d / "newdir/sub/b.py").write_text("b\n"),
            ),
        )
        both(lambda w: w.rename("tox.ini", "tox2.ini"), lambda d: (d / "tox.ini").rename(d / "tox2.ini"))
        both(
            lambda w: (w.remove("conftest.py"), w.symlink("README.md", "conftest.py")),
            lambda d: ((d / "conftest.py").unlink(), (d / "conftest.py").symlink_to("README.md")),
        )
        expected = git("-C", str(checkout), "status", "-s")
        got = _avfs("--vault", "s", "status", "-s")
        assert got.code == 0, got.err
        assert got.out == expected
        assert " M README.md\n" in expected and "?? newdir/\n" in expected  # the cases are there
    finally:
        h.close()


# -- the ignored count: one number ------------------------------------------------------------


def test_ignored_count_is_the_same_from_proxy_exec_status_and_checkpoint(home: Home, tmp_path: Path) -> None:
    """A real confined `proxy exec` writes into paths git ignores (the vault's info/exclude
    names `.venv/`; a `python -m venv`-like directory ignores itself with its own `*`
    .gitignore; a log file): the envelope's `ignored`, `status`'s and `checkpoint save`'s
    are one number, the `!!` lines of `git status --ignored` on the same files, and writing
    into an ignored directory that already exists is counted, not 0."""
    unpacked = realdata.extract(realdata.pypi_sdist("attrs", "24.2.0"), tmp_path / "sdist")
    v = home.create_vault("ig", from_dir=str(unpacked))
    Path(v.path, "info", "exclude").write_text(".venv/\n*.log\n")
    checkout = tmp_path / "checkout"
    git("clone", "-q", v.path, str(checkout))
    Path(checkout, ".git", "info", "exclude").write_text(".venv/\n*.log\n")

    def exec_(script: str) -> dict[str, Any]:
        env = _avfs("--json", "--vault", "ig:main", "proxy", "exec", "--shell", script, cwd=tmp_path).json()
        assert env["result"] is not None and env["result"]["exit_code"] == 0, env
        assert env["changes"] == [] and env["commit"] is None, env  # ignored paths are no changes
        subprocess.run(["sh", "-c", script], cwd=checkout, check=True)  # the same, in git's checkout
        return dict(env)

    def git_count() -> int:
        out = git("-C", str(checkout), "status", "--porcelain", "--ignored")
        return sum(1 for ln in out.splitlines() if ln.startswith("!! "))

    def status_count() -> int:
        return int(_ok(_avfs("--json", "--vault", "ig:main", "status"))["ignored"])

    first = exec_("mkdir -p .venv/lib && for i in $(seq 1 40); do echo x > .venv/lib/m$i.py; done")
    assert first["ignored"] == status_count() == git_count() == 1  # `!! .venv/`
    second = exec_("for i in $(seq 1 25); do echo y > .venv/lib/n$i.py; done")
    assert second["ignored"] == 1  # pip writing into the venv: that venv, not 0
    third = exec_(
        "mkdir env2 && echo '*' > env2/.gitignore && for i in $(seq 1 20); do echo z > env2/p$i; done"
    )
    assert third["ignored"] == 1 and status_count() == git_count() == 2
    fourth = exec_("echo log > src/attr/run.log && echo log > top.log")
    assert fourth["ignored"] == 2 and status_count() == git_count() == 4
    _ok(_avfs("--json", "--vault", "ig:main", "write", "NOTE.md", "n\n"))
    saved = _ok(_avfs("--json", "--vault", "ig:main", "checkpoint", "save"))
    assert saved["ignored"] == git_count() == 4
    out = git("--git-dir", v.path, "ls-tree", "-r", "--name-only", "main")
    assert ".venv" not in out and "env2/" not in out and ".log" not in out and "NOTE.md" in out


def test_after_undo_an_exclude_change_ignores_as_git_does(home: Home, project: Path) -> None:
    """In a mount: files written, a restore, `avfs undo` (the view comes back from a kept
    tree), then `info/exclude` names them: status, diff and checkpoint treat them as ignored,
    as `git status` in the mount does, and the counts agree."""
    up = _ok(_avfs("--json", "up", str(project), "--agent", "a1"))
    mp = Path(up["mountpoint"])
    _ok(_avfs("--json", "checkpoint", "save", "first", cwd=mp))
    (mp / "pyenv" / "lib").mkdir(parents=True)
    for i in range(30):
        (mp / "pyenv" / "lib" / f"m{i}.py").write_text("v\n")
    (mp / "notes.txt").write_text("n\n")
    assert "?? pyenv/\n" in _avfs("status", "-s", cwd=mp).out
    _ok(_avfs("--json", "checkpoint", "restore", "first", cwd=mp))
    assert not (mp / "pyenv").exists()
    _ok(_avfs("--json", "undo", cwd=mp))
    assert (mp / "pyenv" / "lib" / "m7.py").read_text() == "v\n"
    vault_path = _avfs("vault", "path", cwd=mp).out.strip()
    with open(os.path.join(vault_path, "info", "exclude"), "a") as fh:
        fh.write("pyenv/\n")
    want = git("-C", str(mp), "status", "-s")
    assert want == "?? notes.txt\n", want  # git's verdict in the mount
    assert _avfs("status", "-s", cwd=mp).out == want
    names = _avfs("diff", "--name-status", cwd=mp).out
    assert "pyenv" not in names and "notes.txt" in names
    status = _ok(_avfs("--json", "status", cwd=mp))
    ignored_lines = [
        ln
        for ln in git("-C", str(mp), "status", "--porcelain", "--ignored").splitlines()
        if ln.startswith("!!")
    ]
    assert status["ignored"] == len(ignored_lines) == 1
    saved = _ok(_avfs("--json", "checkpoint", "save", cwd=mp))
    assert saved["ignored"] == 1 and saved["checkpoint"]["changes"] == 1
    tree = git("--git-dir", vault_path, "ls-tree", "-r", "--name-only", "a1")
    assert "notes.txt" in tree and "pyenv" not in tree


# -- every command that takes a vault, in the imported directory -------------------------------

_EVERY = [
    ["status"],
    ["log"],
    ["diff"],
    ["show"],
    ["ls"],
    ["tree"],
    ["cat", "README.md"],
    ["stat", "README.md"],
    ["find", "--name", "*.py"],
    ["grep", "-l", "attrs"],
    ["search", "attrs"],
    ["checkpoint", "list"],
    ["op", "log"],
    ["stats"],
    ["quota", "show"],
    ["remote", "list"],
    ["audit"],
    ["vault", "info"],
    ["vault", "path"],
    ["write", "HERE.md", "here\n"],
    ["checkpoint", "save", "-m", "here"],
    ["undo"],
    ["redo"],
    ["push", "--all"],
    ["proxy", "exec", "--", "true"],
]


@pytest.mark.parametrize("argv", _EVERY, ids=lambda a: "-".join(a[:2]))
def test_every_command_resolves_the_imported_directorys_vault(
    tmp_path: Path, argv: list[str], monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    """The same rule for every command that takes a vault (no mount involved): run in the
    directory `avfs up` imported (and in a directory below it), it acts on that vault, not
    on the home's default."""
    from avfs_git.ops import quickstart as q

    h = Home(os.environ["AVFS_HOME"], author=AUTHOR, mounts=MOUNT_SIDE)
    try:
        h.create_vault("elsewhere")
        h.use("elsewhere")
        unpacked = realdata.extract(realdata.pypi_sdist("attrs", "24.2.0"), tmp_path / "sdist")
        src = tmp_path / "attrs"
        shutil.copytree(unpacked, src, symlinks=True)
        up = q.up(h, str(src), agent="a1", mount=False)
        name = up.vault
        remote = tmp_path / "remote.git"
        git("init", "-q", "--bare", str(remote))
        h.vault(name)  # (the remote the push goes to)
        git("--git-dir", os.path.join(h.vaults_dir, name + ".git"), "remote", "add", "origin", str(remote))
    finally:
        h.close()
    for where in (src, src / "src" / "attr"):
        monkeypatch.chdir(where)
        if argv[0] in ("undo", "redo"):
            cli("--json", "checkpoint", "save", "before-" + where.name)
        if argv[0] == "redo":
            cli("--json", "undo")
        res = cli("--json", *argv)
        doc = res.json()
        assert res.code == 0, (argv, doc)
        validate(doc)
        if argv[:2] == ["vault", "path"]:
            assert doc["path"].endswith(f"/{name}.git")
        elif argv[0] == "proxy":
            assert doc["request"]["vault"] == name
        elif argv[0] == "push":
            assert git("--git-dir", str(remote), "for-each-ref", "--format=%(refname)").split() == [
                "refs/heads/a1",
                "refs/heads/main",
            ]
        else:
            seen = doc.get("vault") or (doc.get("checkpoint") or {}).get("vault")
            if isinstance(seen, dict):
                seen = seen["name"]
            if seen is None and "undone" in doc:
                seen = name if doc["undone"]["summary"].count("before-") else None
            assert seen == name, (argv, doc)


def test_undo_in_a_fresh_mount_does_not_delete_the_mounted_fork(home: Home, project: Path) -> None:
    """The last operation of a fork just made by `up` is its creation: `avfs undo` in its
    mount refuses (the fork is mounted), as `vault delete` does, and nothing changes."""
    up = _ok(_avfs("--json", "up", str(project), "--agent", "a1"))
    mp = Path(up["mountpoint"])
    res = _avfs("--json", "undo", cwd=mp)
    doc = res.json()
    assert res.code != 0 and validate(doc) == "error" and doc["error"]["code"] == "fork_mounted", doc
    assert _fresh(home).vault(up["vault"]).has_fork("a1") and mounts.mounted_at(str(mp))
    assert (mp / "README.md").exists()
