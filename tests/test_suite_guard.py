"""The suite's own machinery (tests/conftest.py): a test stopped where Python gives its
traceback no line is reported as a failure, not an INTERNALERROR that ends the run; the
test modules' assertion rewriting is cached once before xdist's workers start; the `git
fsck` of each vault a test leaves checks what git's own does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from _pytest._code.code import TracebackEntry

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault

from . import vaulttemplate
from .conftest import _fsck_every_vault
from .rewriteahead import pyc_of, rewrite_ahead, stale


def test_a_traceback_entry_without_a_line_is_reported_at_its_frame_s_line() -> None:
    frame = sys._getframe()
    raw = types.SimpleNamespace(tb_lineno=None, tb_frame=frame, tb_lasti=-1, tb_next=None)
    entry = TracebackEntry(raw)  # type: ignore[arg-type]
    assert entry.lineno == frame.f_lineno - 1
    none = types.SimpleNamespace(tb_lineno=None, tb_frame=types.SimpleNamespace(f_lineno=None))
    assert TracebackEntry(none).lineno == 0  # type: ignore[arg-type]
    real = types.SimpleNamespace(tb_lineno=12, tb_frame=frame)
    assert TracebackEntry(real).lineno == 11  # type: ignore[arg-type]


def test_the_rewriting_is_cached_where_pytest_reads_it_and_only_when_stale(tmp_path: Path) -> None:
    tests = tmp_path / "suite"
    (tests / "sub").mkdir(parents=True)
    (tests / "conftest.py").write_text("")
    one, two = tests / "test_one.py", tests / "sub" / "test_two.py"
    for f in (one, two):
        f.write_text("def test_it():\n    assert 1 + 1 == 2\n")
    helper = tests / "helper.py"  # not a test module: pytest does not rewrite it
    helper.write_text("X = 1\n")
    assert stale([one, two]) == [one, two]
    done = rewrite_ahead(tmp_path, [tests], 1, tmp_path / "bt")
    assert sorted(done) == sorted([tests / "conftest.py", one, two])
    # pytest itself wrote them (under PYTHONDONTWRITEBYTECODE too), where pyc_of says
    assert all(pyc_of(m).is_file() for m in done)
    assert not pyc_of(helper).exists()
    assert stale(done) == [] and rewrite_ahead(tmp_path, [tests], 1, tmp_path / "bt") == []
    # changed with its time set back before the cache's: stale all the same (pytest checks
    # the source's hash, and so does `stale`), rewritten again
    cached = pyc_of(two).stat().st_mtime
    two.write_text("def test_it():\n    assert 2 + 2 == 4\n")
    os.utime(two, (cached - 5,) * 2)
    assert stale([one, two]) == [two]
    assert rewrite_ahead(tmp_path, [two], 1, tmp_path / "bt") == [two]
    assert stale([one, two]) == []


def test_the_fsck_of_a_vault_left_checks_its_commit_graph_where_it_has_one(tmp_path: Path) -> None:
    # the teardown's fsck leaves out the two processes that verify a commit-graph and a
    # multi-pack-index only where the vault has neither: one it has is verified still
    vaults = tmp_path / "vaults"
    v = vaults / "v.git"

    def git(*args: str, given: str = "") -> str:
        return subprocess.run(
            ["git", "--git-dir", str(v), *args], input=given, capture_output=True, text=True, check=True
        ).stdout.strip()

    subprocess.run(["git", "init", "-q", "--bare", str(v)], check=True)
    blob = git("hash-object", "-w", "--stdin", given="x\n")
    commit = git("commit-tree", git("mktree", given=f"100644 blob {blob}\tf\n"), "-m", "m")
    git("update-ref", "refs/heads/main", commit)
    _fsck_every_vault(vaults)  # no graph: passes
    git("commit-graph", "write", "--reachable")
    graph = v / "objects/info/commit-graph"
    _fsck_every_vault(vaults)  # a sound graph: passes
    data = bytearray(graph.read_bytes())
    data[-30] ^= 0xFF  # inside the last chunk, before the checksum
    graph.chmod(0o644)
    graph.write_bytes(bytes(data))
    with pytest.raises(AssertionError, match="commit-graph"):
        _fsck_every_vault(vaults)


def test_the_vault_fixture_s_copy_is_the_test_s_own_and_the_template_stays_as_made(
    vault: Vault, home: Home, tmp_path: Path
) -> None:
    top = vaulttemplate.template_dir()
    assert top is not None and home.path.startswith(str(tmp_path))
    mine, theirs = Path(vault.path), Path(top, "vaults", "v.git")
    # a copy, not links: the test may damage its own objects without touching the template's
    objects = [p.relative_to(mine) for p in (mine / "objects").rglob("*") if p.is_file()]
    assert objects and all((mine / p).stat().st_ino != (theirs / p).stat().st_ino for p in objects)
    vault.workspace("main").write("f", b"x\n")
    checkpoint.save(vault, name="c")
    vaulttemplate.unchanged()
    # the guard sees a write anywhere in a tree it took the print of
    tree = tmp_path / "t"
    shutil.copytree(top, tree)
    before = vaulttemplate._print(str(tree))
    (tree / "vaults" / "v.git" / "HEAD").write_text("ref: refs/heads/other\n")
    assert vaulttemplate._print(str(tree)) != before


_STUCK_CONFTEST = """
from tests import hangwatch

hangwatch.GRACE_S, hangwatch.STEP_S, hangwatch.POLL_S = 1.0, 2.0, 0.2


def pytest_sessionstart(session):
    hangwatch.register(session.config, str(session.config._tmp_path_factory.getbasetemp()))
"""

_STUCK_TEST = """
import json, os, signal, subprocess, sys

import pytest

AVFS = [sys.executable, "-m", "avfs_git"]


@pytest.fixture
def daemon(tmp_path):
    env = dict(os.environ, AVFS_HOME=str(tmp_path / "home"), AVFS_SERVER="off")
    run = lambda *a: subprocess.run([*AVFS, *a], env=env, check=True, capture_output=True, text=True)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    mp = tmp_path / "m"
    mp.mkdir()
    run("vault", "create", "v", "--from", str(tmp_path / "src"))
    run("vault", "fork", "v:main", "f")
    run("--vault", "v:f", "mount", "--backend", "fuse", str(mp))
    pid = json.loads(run("--json", "mount", "--list").stdout)["mounts"][0]["pid"]
    try:
        yield mp, pid
    finally:  # (no avfs command here: the aborted mount answers ENOTCONN)
        os.kill(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGCONT)
        subprocess.run(["umount", "-l", str(mp)], check=False)
        subprocess.run(["umount", "-l", str(tmp_path / "home" / "layers")], check=False, capture_output=True)


def test_stuck(daemon):
    mp, pid = daemon
    os.kill(pid, signal.SIGSTOP)
    (mp / "a.txt").read_bytes()  # waits on the stopped daemon: no signal ends it
"""


def test_a_test_stuck_on_a_fuse_daemon_past_its_timeout_fails_and_says_where(tmp_path: Path) -> None:
    """A read through a pure-FUSE mount whose daemon is stopped: pytest-timeout's signal
    cannot end it (the kernel goes on waiting for the daemon); tests/hangwatch.py writes the
    stacks and the mount, aborts the mount's FUSE connection, and the test fails instead of
    holding the run until CI's limit."""
    if not os.path.exists("/dev/fuse"):
        from .conftest import skip_outside_ci

        skip_outside_ci("no /dev/fuse")
    suite = tmp_path / "inner"
    suite.mkdir()
    (suite / "conftest.py").write_text(_STUCK_CONFTEST)
    (suite / "test_stuck.py").write_text(_STUCK_TEST)
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "AVFS_"))}
    env["PYTHONPATH"] = str(root)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--timeout",
            "1",
            "-o",
            "timeout_func_only=true",
            "-o",
            "addopts=",
            "--rootdir",
            str(suite),
            "--basetemp",
            str(tmp_path / "bt"),
            str(suite),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=str(suite),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 failed" in proc.stdout, out
    assert "test_stuck.py::test_stuck still runs" in out, out
    assert "aborted the FUSE connection" in out, out
    assert "test_stuck.py" in out and "read_bytes" in out, out  # the test's own Python stack
    assert "/m" in out
    left = [line for line in Path("/proc/mounts").read_text().splitlines() if str(tmp_path) in line]
    assert left == [], left  # the inner test's teardown unmounted and killed what it made


def test_the_cpu_report_tells_the_suites_processes_apart() -> None:
    """tests/cputime.py's kinds (``AVFS_TEST_CPU_KINDS=1``): each process the suite starts by
    its command line and name, as the report ranks them (a daemon forked warm is known by
    its name, its command line being its server's)."""
    from .cputime import kind_of

    py = b"/work/x/.venv/bin/python"
    cases = {
        (py, b"-P", b"-m", b"avfs_git.fuse.daemon", b"--home", b"/h"): "mount daemon",
        (py, b"-m", b"avfs_git.cli.resident", b"--home", b"/h"): "CLI server",
        (py, b"-m", b"avfs_git", b"proxy", b"exec", b"--", b"true"): "avfs proxy exec",
        (py, b"-m", b"avfs_git", b"mcp", b"--home", b"/h"): "avfs mcp",
        (py, b"-m", b"avfs_git", b"--vault", b"v:f", b"mount", b"/m"): "avfs mount",
        (py, b"-m", b"avfs_git", b"--vault", b"v:f", b"unmount", b"/m"): "avfs unmount",
        (py, b"/work/x/.venv/bin/avfs", b"--json", b"status"): "avfs (other commands)",
        (b"git", b"status"): "git",
        (b"/usr/lib/git-core/git-remote-http", b"origin"): "git",
        (b"/usr/bin/bwrap", b"--die-with-parent"): "bwrap",
        (b"sleep", b"1"): "other: sleep",
    }
    for argv, kind in cases.items():
        name = argv[0].rsplit(b"/", 1)[-1][:15]
        assert kind_of(list(argv), name) == kind, (argv, kind)
    assert kind_of([py, b"-m", b"avfs_git.cli.resident", b"--home", b"/h"], b"avfs-mountd") == "mount daemon"


def test_a_fork_is_counted_as_what_it_execs_not_as_the_test_process(tmp_path: Path) -> None:
    """A process the test process forks runs the test process's command line until it
    execs: a sampling that caught it then counted it as "other: python" (in a sample, 36
    of the 51 that kind counted were ``avfs mcp`` and such, caught before their exec), and
    its real kind one short. It is counted once it has exec'd, or once it is gone."""
    import time

    from .conftest import skip_outside_ci
    from .cputime import ROOT, Kinds

    if not os.path.isdir(ROOT) or os.geteuid() != 0:
        skip_outside_ci(f"no cgroup v1 {ROOT} to write as root")
    group = os.path.join(ROOT, f"avfs-test-kinds-{os.getpid()}")
    os.makedirs(group)
    pid = 0
    try:
        kinds = Kinds(group, interval=3600)  # sampled by the test's own calls only
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the fork: into the group, then the exec when told
            try:
                with open(os.path.join(group, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
                os.close(go_w)
                os.read(go_r, 1)
                os.execv("/bin/sleep", ["sleep", "0.2"])
            finally:
                os._exit(127)
        os.close(go_r)
        deadline = time.monotonic() + 30
        while str(pid) not in Path(group, "cgroup.procs").read_text().split():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        _, count = kinds.take()  # the fork caught before its exec: not counted yet
        assert count == {}, count
        os.write(go_w, b"x")
        os.close(go_w)
        while Path(f"/proc/{pid}/comm").read_text().strip() != "sleep":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        _, count = kinds.take()
        assert count == {"other: sleep": 1}, count
        assert os.waitpid(pid, 0)[1] == 0
        pid = 0
    finally:
        if pid:  # (a failed check: the fork may still wait for its word)
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        for p in Path(group, "cgroup.procs").read_text().split():
            with open(os.path.join(ROOT, "cgroup.procs"), "w") as f:
                f.write(p)
        os.rmdir(group)


def test_the_cpu_report_names_the_tests_that_raised_a_worker_s_memory(tmp_path: Path) -> None:
    """Each test's line holds its worker's resident memory and high-water mark after it
    (tests/cputime.py, ``AVFS_TEST_CPU``): 64 MiB touched here shows in the mark, and the
    report ranks the tests by how far each raised its worker's mark (a worker grew to
    ~600 MiB in a whole run, which a child's ``ru_maxrss`` starts at)."""
    from .cputime import memory_mib, write_report

    rss0, hwm0 = memory_mib()
    assert 0 < rss0 <= hwm0, (rss0, hwm0)
    block = bytearray(64 << 20)
    block[::4096] = b"x" * len(block[::4096])  # (every page touched)
    rss1, hwm1 = memory_mib()
    assert rss1 >= rss0 + 60 and hwm1 >= rss1, (rss0, rss1, hwm1)
    del block

    def line(test: str, worker: str, hwm: int) -> str:
        rec = {"test": test, "file": test.split("::")[0], "worker": worker, "outcome": "passed"}
        rec.update(cpu=0.1, own=0.1, waited=0.0, other=0.0, wall=0.2, rss_mib=hwm - 10, hwm_mib=hwm)
        return json.dumps(rec)

    out = str(tmp_path / "cpu.json")
    Path(f"{out}.gw0.jsonl").write_text(
        "\n".join([line("t.py::a", "gw0", 100), line("t.py::big", "gw0", 600), line("t.py::b", "gw0", 600)])
    )
    Path(f"{out}.gw1.jsonl").write_text("\n".join([line("u.py::a", "gw1", 90), line("u.py::c", "gw1", 150)]))
    doc = write_report(out)
    rises = [(r["test"], r["rise_mib"], r["hwm_mib"]) for r in doc["memory_rises"]]  # type: ignore[attr-defined]
    assert rises == [("t.py::big", 500, 600), ("u.py::c", 60, 150)], rises
    assert "500 to    600 (rss after 590)  gw0  t.py::big" in Path(f"{out}.txt").read_text()
