"""git inside `proxy exec` is a first-class writer: a commit made there is the fork's next
commit (with the fork's identity passed into the sandbox), avfs's record of the fork
before the command never takes the agent's edits out from under it; Ctrl-C and SIGTERM of
`avfs proxy exec` report the run as it was; forks of a vault run at one stable path, so
a venv built in one fork works in a fork of it. Real mounts, real bwrap, real CLI
processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts

from .conftest import AUTHOR, git
from .test_confine import _need_bwrap
from .test_fuse import require_fuse
from .waitingexec import running


def _env(**extra: str) -> dict[str, str]:
    """The test's environment without git's identity variables (the sandbox's `$HOME` is
    empty: avfs passes the identity in itself), plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GIT_AUTHOR") and not k.startswith("GIT_COMMITTER")
    }
    env.update(extra)
    return env


def _exec(spec: str, *args: str, cwd: str | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    r = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "--vault", spec, "proxy", "exec", *args],
        capture_output=True,
        timeout=180,
        cwd=cwd,
        env=env if env is not None else _env(),
    )
    doc = json.loads(r.stdout)
    assert r.returncode == doc["exit_code"], (r.returncode, doc, r.stderr)
    return dict(doc)


def _mounted(home: Any, vault: Any, backend: str = "auto") -> Iterator[str]:
    """Fork main holding ``a.txt`` (checkpointed), mounted on ``backend``; its mount
    point."""
    require_fuse()
    _need_bwrap()
    w = vault.workspace("main")
    w.write("a.txt", b"a\n")
    checkpoint.save(vault, message="init")
    info = mounts.mount(home, vault, "main", None, backend=backend)
    try:
        yield info.mountpoint
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


@pytest.fixture
def live(home: Any, vault: Any) -> Iterator[str]:
    yield from _mounted(home, vault)


@pytest.fixture
def live_fuse(home: Any, vault: Any) -> Iterator[str]:
    """As :func:`live`, on the pure-FUSE backend."""
    yield from _mounted(home, vault, "fuse")


def _log(vault: Any, rev: str = "main", n: int = 5) -> list[str]:
    return git("--git-dir", vault.path, "log", f"-{n}", "--format=%H %an <%ae> %s", rev).splitlines()


def test_git_commit_in_exec_is_the_forks_next_commit_with_the_edits_made_before(vault, live):
    mp = live
    init = vault.workspace("main").tip()
    # the agent edits a file directly (its editor tool), then commits through Bash
    with open(os.path.join(mp, "a.txt"), "a") as fh:
        fh.write("edited by the agent\n")
    doc = _exec("v:main", "--", "git", "commit", "-am", "agent: edit a.txt", cwd=mp)
    assert doc["exit_code"] == 0, doc["result"]
    tip = vault.workspace("main").tip()
    # the branch's new commit is the agent's, with its message, holding the edits, by the
    # fork's identity (the test's ~/.gitconfig, which the sandbox does not show)
    assert git("--git-dir", vault.path, "log", "-1", "--format=%s|%an|%ae", tip).strip() == (
        f"agent: edit a.txt|{AUTHOR[0]}|{AUTHOR[1]}"
    )
    assert git("--git-dir", vault.path, "rev-parse", f"{tip}^").strip() == init
    assert git("--git-dir", vault.path, "show", f"{tip}:a.txt") == "a\nedited by the agent\n"
    assert doc["branch_moved"] == {"from": init, "to": tip}
    assert doc["commit"] is None and doc["state"]["uncheckpointed_changes"] == 0
    # the record of the fork before the command is beside the branch, not on it
    cp = doc["checkpoint"]
    assert cp["reason"] == "uncheckpointed_changes" and cp["created"] and not cp["on_branch"]
    assert cp["ref"].startswith("refs/avfs/recovery/main/-/exec-")
    assert git("--git-dir", vault.path, "rev-parse", cp["ref"]).strip() == cp["commit"]
    assert git("--git-dir", vault.path, "show", f"{cp['commit']}:a.txt") == "a\nedited by the agent\n"
    assert git("status", "--porcelain", cwd=mp) == ""
    # the audit log names the record, for `avfs audit`
    audit = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "--vault", "v:main", "audit"],
        capture_output=True,
        check=True,
    )
    records = json.loads(audit.stdout)["records"]
    assert records[-1]["checkpoint"] == cp["commit"] and records[-1]["checkpoint_ref"] == cp["ref"]
    assert records[-1]["branch_moved"] == {"from": init, "to": tip}

    # a second exec after it: its own commit on top of the agent's
    doc2 = _exec("v:main", "--", "sh", "-c", "echo new > b.txt", cwd=mp)
    assert doc2["checkpoint"] is None and doc2["branch_moved"] is None
    assert doc2["commit"]["parent"] == tip
    assert [c["path"] for c in doc2["changes"]] == ["b.txt"]

    # rollback: the fork back to before the agent's commit (its record), then forward again
    subprocess.run(
        [sys.executable, "-m", "avfs_git", "--vault", "v:main", "checkpoint", "restore", init],
        check=True,
        capture_output=True,
    )
    with open(os.path.join(mp, "a.txt")) as fh:
        assert fh.read() == "a\n"
    assert not os.path.exists(os.path.join(mp, "b.txt"))
    subprocess.run(
        [sys.executable, "-m", "avfs_git", "--vault", "v:main", "checkpoint", "restore", cp["commit"]],
        check=True,
        capture_output=True,
    )
    with open(os.path.join(mp, "a.txt")) as fh:
        assert fh.read() == "a\nedited by the agent\n"


def test_a_commit_with_files_left_out_gets_avfs_commit_on_top_and_loses_nothing(vault, live):
    mp = live
    with open(os.path.join(mp, "a.txt"), "a") as fh:
        fh.write("two\n")
    doc = _exec("v:main", "--shell", "echo u > u.txt; echo three >> a.txt; git commit -qam mine", cwd=mp)
    assert doc["exit_code"] == 0, doc["result"]
    agent = doc["branch_moved"]["to"]
    assert git("--git-dir", vault.path, "log", "-1", "--format=%s", agent).strip() == "mine"
    assert git("--git-dir", vault.path, "show", f"{agent}:a.txt") == "a\ntwo\nthree\n"
    # what git left out (an untracked file) is avfs's commit, on top of the agent's
    assert doc["commit"]["parent"] == agent
    top = doc["commit"]["commit"]
    assert vault.workspace("main").tip() == top
    assert git("--git-dir", vault.path, "show", f"{top}:a.txt") == "a\ntwo\nthree\n"
    assert git("--git-dir", vault.path, "show", f"{top}:u.txt") == "u\n"
    assert [c["path"] for c in doc["changes"]] == ["u.txt"]
    assert doc["state"]["uncheckpointed_changes"] == 0
    assert git("status", "--porcelain", cwd=mp) == ""


def test_without_a_git_commit_the_record_lands_below_the_commands_commit(vault, live):
    mp = live
    init = vault.workspace("main").tip()
    with open(os.path.join(mp, "a.txt"), "a") as fh:
        fh.write("before\n")
    doc = _exec("v:main", "--", "sh", "-c", "echo c > c.txt", cwd=mp)
    cp = doc["checkpoint"]
    assert cp["on_branch"] and cp["ref"] is None and doc["branch_moved"] is None
    assert git("--git-dir", vault.path, "rev-parse", f"{cp['commit']}^").strip() == init
    assert doc["commit"]["parent"] == cp["commit"]
    assert vault.workspace("main").tip() == doc["commit"]["commit"]
    assert [c["path"] for c in doc["changes"]] == ["c.txt"]
    # a command that changes nothing: the record alone lands
    with open(os.path.join(mp, "a.txt"), "a") as fh:
        fh.write("again\n")
    doc = _exec("v:main", "--", "true", cwd=mp)
    assert doc["checkpoint"]["on_branch"] and doc["commit"] is None
    assert vault.workspace("main").tip() == doc["checkpoint"]["commit"]


def test_the_callers_identity_variables_win(vault, live):
    doc = _exec(
        "v:main",
        "--shell",
        "echo x > x.txt && git add x.txt && git commit -qm by-env",
        cwd=live,
        env=_env(GIT_AUTHOR_NAME="Env Author", GIT_AUTHOR_EMAIL="env@example.invalid"),
    )
    assert doc["exit_code"] == 0, doc["result"]
    got = git("--git-dir", vault.path, "log", "-1", "--format=%an <%ae>|%cn <%ce>", doc["branch_moved"]["to"])
    assert got.strip() == f"Env Author <env@example.invalid>|{AUTHOR[0]} <{AUTHOR[1]}>"


def test_the_users_global_git_config_stays_out_of_the_sandbox(vault, live):
    # a credential helper (code git runs) in ~/.gitconfig: never seen inside
    with open(os.path.expanduser("~/.gitconfig"), "a") as fh:
        fh.write("[credential]\n\thelper = !touch /tmp/helper-ran\n")
    doc = _exec("v:main", "--", "git", "config", "--get", "credential.helper", cwd=live)
    assert doc["exit_code"] == 1 and doc["result"]["stdout"] == ""
    doc = _exec("v:main", "--", "git", "var", "GIT_AUTHOR_IDENT", cwd=live)
    assert doc["result"]["stdout"].startswith(f"{AUTHOR[0]} <{AUTHOR[1]}>")


SLEEP = "120.{}"  # a length of sleep of this test's own, so the test sees its command in it
CLICK = "import sys; from avfs_git.cli.main import main; sys.exit(main(sys.argv[1:]))"


def _sleeping(length: str) -> bool:
    """Whether a ``sleep LENGTH`` runs on this machine (the sandbox's PID namespace is a
    child of this one: its processes are in /proc here too)."""
    want = b"sleep\0" + length.encode() + b"\0"
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if fh.read() == want:
                    return True
        except OSError:  # (not a process, or one that ended)
            continue
    return False


def _interrupted_run(
    vault: Any, mountpoint: str, prefix: list[str], sig: int, *extra: str
) -> tuple[int, dict[str, Any]]:
    """Start `avfs proxy exec` (``prefix`` runs avfs), wait until its command wrote its
    file and is in its sleep, send ``sig`` to avfs, and return (its exit code, its
    envelope)."""
    length = SLEEP.format(time.monotonic_ns())
    args = [*prefix, "--json", "--vault", "v:main", "proxy", "exec", *extra]
    call = [*args, "--", "sh", "-c", f"echo part > part.txt; sleep {length}"]
    with running(call, os.path.join(mountpoint, "part.txt"), env=_env()) as proc:
        deadline = time.monotonic() + 60
        while not _sleeping(length):  # the command is in its sleep
            assert proc.poll() is None and time.monotonic() < deadline, "the command never slept"
            time.sleep(0.02)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    doc = json.loads(out)
    return proc.returncode, dict(doc)


def _check_interrupted(vault: Any, code: int, doc: dict[str, Any], sig: int) -> None:
    name = signal.Signals(sig).name
    assert code == 128 + sig == doc["exit_code"], (code, doc)
    r = doc["result"]
    assert r is not None and r["exit_code"] == 128 + sig, doc
    assert r["signal"] == name and r["interrupted"] == name and not r["timed_out"]
    assert r["duration_ms"] != 0  # the run's own (a run reported as never started had 0)
    assert doc["error"] is None and not doc["success"]
    # what it changed before it was stopped is committed
    assert [c["path"] for c in doc["changes"]] == ["part.txt"]
    assert doc["commit"] is not None and vault.workspace("main").tip() == doc["commit"]["commit"]
    assert git("--git-dir", vault.path, "show", f"{doc['commit']['commit']}:part.txt") == "part\n"
    records = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "--vault", "v:main", "audit"],
        capture_output=True,
        check=True,
        env=_env(),
    )
    assert json.loads(records.stdout)["records"][-1]["exit_code"] == 128 + sig


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_a_warm_exec_reports_the_run_as_it_was(vault, live, sig):
    # a live mount: the client hands the call to the mount's daemon, and passes the signal on
    code, doc = _interrupted_run(vault, live, [sys.executable, "-m", "avfs_git"], sig)
    assert doc["mount"]["reused"]
    _check_interrupted(vault, code, doc, sig)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_an_exec_run_by_the_cli_itself_reports_the_run_as_it_was(home, vault, sig):
    # no live mount: the fast path runs the call in its own process, mounting for it
    require_fuse()
    _need_bwrap()
    vault.workspace("main").write("a.txt", b"a\n")
    checkpoint.save(vault, message="init")
    mp = mounts.default_mountpoint(home, "v", "main")
    try:
        code, doc = _interrupted_run(vault, mp, [sys.executable, "-m", "avfs_git"], sig)
    finally:
        if mounts.check(vault, "main") is not None:
            mounts.unmount(home, vault, "main", lazy=True)
    assert not doc["mount"]["reused"]
    _check_interrupted(vault, code, doc, sig)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_an_exec_run_by_the_click_command_reports_the_run_as_it_was(vault, live, sig):
    code, doc = _interrupted_run(vault, live, [sys.executable, "-c", CLICK], sig)
    _check_interrupted(vault, code, doc, sig)


PYPROJECT = b"""\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "tinypkg"
version = "0.1"

[tool.setuptools.packages.find]
where = ["src"]
"""
# what `pip install -e .` writes into a venv, absolute paths from the working directory
MKVENV = b"""\
import glob, os, venv

venv.create(".venv", with_pip=False)
here = os.getcwd()
(purelib,) = glob.glob(here + "/.venv/lib/python*/site-packages")
with open(os.path.join(purelib, "__editable__.tinypkg-0.1.pth"), "w") as fh:
    fh.write(here + "/src\\n")
script = os.path.join(here, ".venv", "bin", "tinycheck")
with open(script, "w") as fh:
    fh.write("#!" + here + "/.venv/bin/python\\nimport tinypkg, sys\\nsys.exit(0 if tinypkg.answer() == 42 else 1)\\n")
os.chmod(script, 0o755)
"""
# run from tests/: the package comes from the venv's editable install, never from the cwd
CHECK = b"import tinypkg, sys\nsys.exit(0 if tinypkg.answer() == 42 else 1)\n"


def test_a_live_fork_shares_a_venv_that_runs_its_own_code(home, vault, live):
    parent = live
    ws = vault.workspace("main")
    ws.write(".gitignore", b".venv/\n*.egg-info/\n__pycache__/\n")
    ws.write("pyproject.toml", PYPROJECT)
    ws.write("src/tinypkg/__init__.py", b"def answer():\n    return 42\n")
    ws.write("tests/check.py", CHECK)
    # the parent builds its venv with an editable install, as pip writes one (offline: no
    # `wheel` here): an absolute path in a .pth, and an entry point whose shebang names
    # the venv's python by its absolute path
    ws.write("tools/mkvenv.py", MKVENV)
    doc = _exec("v:main", "--", "python3", "tools/mkvenv.py", cwd=parent)
    assert doc["exit_code"] == 0, (doc["error"], doc["result"] and doc["result"]["stderr"])
    assert doc["confinement"]["path"] == "/avfs/v"
    # the shell's path is the mount point (a link to the vault's one path); the kernel's is that path
    doc = _exec("v:main", "--shell", 'pwd; pwd -P; cat "$AVFS_WORKSPACE/a.txt"', cwd=parent)
    assert doc["result"]["stdout"] == f"{parent}\n/avfs/v\na\n", doc["result"]
    assert _exec("v:main", "--cwd", "tests", "--", "../.venv/bin/python", "check.py")["exit_code"] == 0
    # a fork of the live fork shares the venv; its code breaks
    made = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "--vault", "v:main", "vault", "fork", "child"],
        check=True,
        capture_output=True,
    )
    assert json.loads(made.stdout)["warnings"] == [] and b"warning" not in made.stderr
    vault.workspace("child").write("src/tinypkg/__init__.py", b"def answer():\n    return 0\n")
    info = mounts.mount(home, vault, "child", None)
    try:
        assert os.path.isfile(os.path.join(info.mountpoint, ".venv", "bin", "python"))
        # the child's own code is what its venv runs: its check fails, the parent's passes
        doc = _exec("v:child", "--cwd", "tests", "--", "../.venv/bin/python", "check.py")
        assert doc["exit_code"] == 1, doc["result"]
        assert _exec("v:child", "--", ".venv/bin/tinycheck")["exit_code"] == 1
        assert _exec("v:main", "--", ".venv/bin/tinycheck")["exit_code"] == 0
        assert _exec("v:main", "--cwd", "tests", "--", "../.venv/bin/python", "check.py")["exit_code"] == 0
        doc = _exec("v:child", "--", ".venv/bin/python", "-c", "import tinypkg; print(tinypkg.__file__)")
        assert doc["result"]["stdout"].strip() == "/avfs/v/src/tinypkg/__init__.py"
        # mended in the child: passes again
        vault.workspace("child").write("src/tinypkg/__init__.py", b"def answer():\n    return 42\n")
        assert _exec("v:child", "--cwd", "tests", "--", "../.venv/bin/python", "check.py")["exit_code"] == 0
    finally:
        mounts.unmount(home, vault, "child", lazy=True)


def test_a_venv_built_in_proxy_exec_runs_there_and_fails_at_once_in_the_person_s_mount(vault, live):
    """A venv an agent builds through `proxy exec` names the fork's path in the sandbox,
    `/avfs/<vault>`, in its scripts' shebangs, its `.pth` files and `activate`
    (docs/proxy.md, "A venv built in the sandbox"): every later exec of the fork (and of a
    fork of it) runs it; in the person's mount its entry points fail at once, its python imports nothing of the editable install, and `activate` puts a
    directory the host does not have on PATH (the host's own python answers `python`):
    never another checkout's code. One the person builds in the mount runs on both sides."""
    ws = vault.workspace("main")
    ws.write(".gitignore", b".venv/\n.hostvenv/\n*.egg-info/\n__pycache__/\n")
    ws.write("pyproject.toml", PYPROJECT)
    ws.write("src/tinypkg/__init__.py", b"def answer():\n    return 42\n")
    ws.write("tests/check.py", CHECK)
    ws.write("tools/mkvenv.py", MKVENV)
    doc = _exec("v:main", "--", "python3", "tools/mkvenv.py", cwd=live)
    assert doc["exit_code"] == 0, (doc["error"], doc["result"] and doc["result"]["stderr"])
    # in the sandbox: the agent's venv runs, its entry point and its editable install
    assert _exec("v:main", "--", ".venv/bin/tinycheck")["exit_code"] == 0
    assert _exec("v:main", "--cwd", "tests", "--", "../.venv/bin/python", "check.py")["exit_code"] == 0
    with open(os.path.join(live, ".venv", "bin", "tinycheck"), encoding="utf-8") as fh:
        assert fh.readline() == "#!/avfs/v/.venv/bin/python\n"
    # in the person's mount: the entry point fails at once (bash 5.2: "cannot execute:
    # required file not found", 127; older: "/avfs/v/.venv/bin/python: bad interpreter", 126)
    r = subprocess.run(["bash", "-c", "./.venv/bin/tinycheck"], cwd=live, capture_output=True, text=True)
    assert r.returncode in (126, 127) and "tinycheck" in r.stderr, r
    # its python runs (a link to the host's), and the editable install is not found there
    r = subprocess.run(
        [os.path.join(live, ".venv", "bin", "python"), "check.py"],
        cwd=os.path.join(live, "tests"),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "No module named 'tinypkg'" in r.stderr, r
    # `activate` names the sandbox's path: its bin is on PATH, but no host has it
    r = subprocess.run(
        ["bash", "-c", '. .venv/bin/activate && echo "$VIRTUAL_ENV" && test ! -e "$VIRTUAL_ENV"'],
        cwd=live,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and r.stdout == "/avfs/v/.venv\n", r
    # one the person builds in the mount names the mount point, which the sandbox shows
    # too (a link to the vault's one path): it runs on both sides
    mkhost = MKVENV.replace(b".venv", b".hostvenv")
    subprocess.run(["/usr/bin/python3", "-c", mkhost], cwd=live, check=True)
    r = subprocess.run(["bash", "-c", "./.hostvenv/bin/tinycheck"], cwd=live, capture_output=True, text=True)
    assert r.returncode == 0, r
    assert _exec("v:main", "--", ".hostvenv/bin/tinycheck")["exit_code"] == 0


def test_forking_a_live_fork_whose_outputs_name_its_mount_warns(vault, live):
    # a venv built on the host in the mount (not through `proxy exec`) names the mount point
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", ".venv"], cwd=live, check=True)
    with open(os.path.join(live, ".gitignore"), "w") as fh:
        fh.write(".venv/\n")
    libdir = os.path.join(live, ".venv", "lib")
    (purelib,) = [os.path.join(libdir, n, "site-packages") for n in os.listdir(libdir)]
    with open(os.path.join(purelib, "__editable__.pkg-0.1.pth"), "w") as fh:
        fh.write(f"{live}/src\n")
    made = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "--vault", "v:main", "vault", "fork", "child"],
        capture_output=True,
    )
    assert made.returncode == 0, made.stderr
    doc = json.loads(made.stdout)
    assert len(doc["warnings"]) == 1, doc
    assert live in doc["warnings"][0] and "__editable__.pkg-0.1.pth" in doc["warnings"][0]
    assert "warning:" in made.stderr.decode()
    assert vault.has_fork("child")  # a warning, not a refusal


def _git_in(mp: str, *args: str) -> str:
    return git("-C", mp, *args)


def _plumb(vault: Any, *args: str, data: str = "") -> str:
    """git plumbing on the vault itself, ``data`` on its stdin: the output, stripped."""
    return subprocess.run(
        ["git", "--git-dir", vault.path, *args], input=data, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_a_file_git_untracked_stays_untracked_after_a_commit_in_exec(vault, live):
    """Issue 27 (found by the git model, seed 5): after `git rm --cached x.txt`, a command
    that commits something else with git left avfs's own commit re-adding x.txt, which
    plain git leaves untracked. What avfs commits after such a command is what the command
    changed, not what the view keeps of paths its commit left out."""
    mp = live
    for name in ("x.txt", "y.txt"):
        with open(os.path.join(mp, name), "w") as fh:
            fh.write(f"{name}\n")
    _exec("v:main", "--", "git", "add", "x.txt", "y.txt", cwd=mp)
    _exec("v:main", "--", "git", "commit", "-qm", "x and y", cwd=mp)
    base = _git_in(mp, "rev-parse", "HEAD").strip()
    _git_in(mp, "rm", "-q", "--cached", "--", "x.txt")  # the person untracks x.txt
    doc = _exec(
        "v:main", "--", "sh", "-c", "echo more >> a.txt && git add a.txt && git commit -qm 'a'", cwd=mp
    )
    assert doc["exit_code"] == 0 and doc["branch_moved"] is not None, doc["result"]
    assert doc["commit"] is None, doc["commit"]  # the command left nothing of its own
    head = _git_in(mp, "rev-parse", "HEAD").strip()
    assert _git_in(mp, "rev-parse", "HEAD~1").strip() == base
    assert "x.txt" not in _git_in(mp, "ls-tree", "--name-only", "HEAD").split()
    assert _git_in(mp, "status", "--porcelain").splitlines() == ["?? x.txt"]
    with open(os.path.join(mp, "x.txt")) as fh:
        assert fh.read() == "x.txt\n"
    st = json.loads(
        subprocess.run(
            [sys.executable, "-m", "avfs_git", "--json", "status"], cwd=mp, capture_output=True, env=_env()
        ).stdout
    )
    assert st["head"] == head and st["changes"] == [{"path": "x.txt", "status": "added"}], st
    # the command untracks a file itself and commits; and one that commits y.txt's change
    # but leaves a file of its own uncommitted: that one is committed on top, x.txt is not
    doc = _exec(
        "v:main",
        "--",
        "sh",
        "-c",
        "echo new > z.txt && echo y2 >> y.txt && git rm -q --cached y.txt && git commit -qm 'untrack y'",
        cwd=mp,
    )
    assert doc["exit_code"] == 0, doc["result"]
    assert [c["path"] for c in doc["changes"]] == ["z.txt"], doc["changes"]
    tree = _git_in(mp, "ls-tree", "--name-only", "HEAD").split()
    assert "z.txt" in tree and "y.txt" not in tree and "x.txt" not in tree
    assert sorted(_git_in(mp, "status", "--porcelain").splitlines()) == ["?? x.txt", "?? y.txt"]


def test_a_cherry_pick_or_rebase_given_up_in_exec_leaves_nothing_open(vault, live):
    """Found by the git model (gitmodel2, overlay, seed 3): a rebase or cherry-pick that
    conflicted and was given up inside `proxy exec` left its CHERRY_PICK_HEAD and
    REBASE_HEAD in the mount's git dir: git deletes any ref, those included, under
    `packed-refs.lock` in the vault's root, which was read-only in the sandbox. Afterwards
    `git status` in the mount said a cherry-pick was in progress, avfs refused every
    checkpoint (`git_in_progress`), and the person's next `git commit` took the picked
    commit's author. The vault's root is now a scratch directory of read-only entries in
    there: git can take the lock, and still replaces none of them (`packed-refs`, with
    another fork's branch)."""
    mp = live
    _git_in(mp, "branch", "side")
    blob = _plumb(vault, "hash-object", "-w", "--stdin", data="a\nside\n")
    tree = _plumb(vault, "mktree", data=f"100644 blob {blob}\ta.txt\n")
    tip = _plumb(vault, "commit-tree", "-p", "side", "-m", "side", tree)
    _plumb(vault, "update-ref", "refs/heads/side", tip)
    with open(os.path.join(mp, "a.txt"), "a") as fh:
        fh.write("main's\n")
    _git_in(mp, "commit", "-qam", "main's")  # a.txt's last line changed on both
    for cmd in (
        "git cherry-pick side || git cherry-pick --abort",
        "git rebase -q side || git rebase --abort",
        "git revert --no-edit side || git revert --abort",
    ):
        doc = _exec("v:main", "--", "sh", "-c", cmd, cwd=mp)
        assert doc["exit_code"] == 0 and "CONFLICT" in doc["result"]["stdout"], doc["result"]
        git_dir = _git_in(mp, "rev-parse", "--absolute-git-dir").strip()
        left = {
            n
            for n in ("CHERRY_PICK_HEAD", "REVERT_HEAD", "REBASE_HEAD")
            if os.path.lexists(os.path.join(git_dir, n))
        }
        assert left == set(), (cmd, left, doc["result"]["stderr"])
        assert "currently" not in _git_in(mp, "status"), cmd
        st = json.loads(
            subprocess.run(
                [sys.executable, "-m", "avfs_git", "--json", "status"],
                cwd=mp,
                capture_output=True,
                env=_env(),
            ).stdout
        )
        assert st["git"] is None, (cmd, st["git"])
    # still: the vault's config and another fork's branch are not the command's to change
    doc = _exec(
        "v:main", "--", "sh", "-c", "git branch -D side; git update-ref -d refs/heads/side; true", cwd=mp
    )
    assert "Device or resource busy" in doc["result"]["stderr"], doc["result"]
    assert _plumb(vault, "rev-parse", "refs/heads/side") == tip


def test_avfs_status_after_a_soft_reset_keeps_what_git_staged_on_pure_fuse(vault, live_fuse):
    """Found by the git model (gitmodel2, fuse, seed 1, shrunk to three steps): a commit
    in `proxy exec`, `git reset --soft HEAD~1` in the mount, `avfs status`: about one
    time in two the reset's staged change came back unstaged. The status took git's
    commit as the base, and stamped the mount's index as current only after that move had
    committed; the pure-FUSE daemon, seeing the base move in between, rewrote the index
    whole. The move and the stamp are now made under the index's guard. (Several rounds:
    it was a race.)"""
    mp = live_fuse
    for i in range(6):
        doc = _exec("v:main", "--", "sh", "-c", f"echo {i} >> a.txt && git commit -qam {i}", cwd=mp)
        assert doc["branch_moved"] is not None, doc["result"]
        _git_in(mp, "reset", "-q", "--soft", "HEAD~1")
        assert _git_in(mp, "status", "--porcelain").splitlines() == ["M  a.txt"]
        r = subprocess.run(
            [sys.executable, "-m", "avfs_git", "--json", "status"],
            cwd=mp,
            capture_output=True,
            env=_env(),
        )
        assert json.loads(r.stdout)["changes"] == [{"path": "a.txt", "status": "modified"}], r.stdout
        assert _git_in(mp, "status", "--porcelain").splitlines() == ["M  a.txt"], f"round {i}"
        _git_in(mp, "commit", "-qm", f"again {i}")


def test_a_soft_reset_in_exec_commits_nothing_of_its_own_on_pure_fuse(vault, live_fuse):
    """Found by the git model (gitmodel2, fuse, CI's seed 27): `git merge side` (a fast
    forward) in one exec, `git reset --soft HEAD~1` in the next: on pure FUSE avfs then
    committed a.txt, which the reset had left staged, as if the command had written it.
    Taking git's commit as the base journals entries that keep the view (`git`, `keep`,
    `empty`, `pin`); they were counted among the paths the command wrote."""
    mp = live_fuse
    _git_in(mp, "branch", "side")
    blob = _plumb(vault, "hash-object", "-w", "--stdin", data="a\nside\n")
    new = _plumb(vault, "hash-object", "-w", "--stdin", data="s\n")
    tree = _plumb(vault, "mktree", data=f"100644 blob {blob}\ta.txt\n100644 blob {new}\tS.txt\n")
    _plumb(
        vault,
        "update-ref",
        "refs/heads/side",
        _plumb(vault, "commit-tree", "-p", "side", "-m", "s", tree),
    )
    doc = _exec("v:main", "--", "git", "merge", "-q", "--no-edit", "side", cwd=mp)
    assert doc["branch_moved"] is not None and doc["commit"] is None, doc
    doc = _exec("v:main", "--", "git", "reset", "-q", "--soft", "HEAD~1", cwd=mp)
    assert doc["branch_moved"] is not None and doc["commit"] is None, doc
    assert sorted(_git_in(mp, "status", "--porcelain").splitlines()) == ["A  S.txt", "M  a.txt"]
