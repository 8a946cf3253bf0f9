"""Hermetic test set-up: a temp HOME and AVFS_HOME, no GIT_* from outside, pygit2's config
search path pointed at the temp HOME, a fixed author and committer."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pygit2
import pytest

import avfs_git
from avfs_git.core.store.locks import signal_process
from avfs_git.core.vaults import layers
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.core.workspace.workspace import Workspace
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import daemonstart, warmstart
from avfs_git.policy.pathsource import POLICY_PATHS

from . import bigdiff, cputime, hangwatch, mcpwarm
from .basetemp import drop_layers as _drop_layers
from .basetemp import drop_mounts as _drop_mounts
from .basetemp import unpin_gitfiles as _unpin_gitfiles

# The Python API's door (avfs_git/proxy/apidoor.py) opened now, in every test process,
# before any test module imports a call: it wraps the documented calls process-wide on a
# program's first use of the package's names (`avfs_git.open_home`), after which a call
# from outside avfs gets the API's wording. Opened by whichever test came first in a
# worker, a test calling core directly read the CLI's words or the API's by the order
# xdist gave its files; now always the API's, as a builder's program sees them.
assert callable(avfs_git.open_home)

AUTHOR = ("Test Author", "test@example.invalid")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LAYERS = os.environ.get("AVFS_TEST_LAYERS", "") == "1"
# no resident CLI server for the suite's homes, module-scoped fixtures' included (the
# hermetic fixture below sets it again per test; tests/test_cliserver.py turns it on)
os.environ["AVFS_SERVER"] = "off"


def layers_switch(mp: pytest.MonkeyPatch) -> None:
    """Where the suite's homes keep their state dirs: without AVFS_TEST_LAYERS=1, plain
    directories (tests/test_share.py runs the layers file system, core/vaults/layers.py, anyway);
    with it, the product's default, in process and in the CLI and daemons tests start. For
    the hermetic fixture and for module-scoped homes, made before it is active."""
    if LAYERS:
        mp.delenv("AVFS_LAYERS", raising=False)
    else:
        mp.setenv("AVFS_LAYERS", "off")
        mp.setattr(layers, "DEFAULT_MODE", "off")


def skip_outside_ci(why: str, in_ci: str | None = None) -> NoReturn:
    """A facility the test needs is missing: under CI=true, where ``make test`` installs the
    system packages and the suite runs as root, that is a failure (``in_ci`` says why, else
    ``why``); elsewhere a skip."""
    if IN_CI:
        pytest.fail(in_ci or why)
    pytest.skip(f"{why} (outside CI)")


def warm_cli(node: pytest.Item) -> bool:
    """Whether a test's homes get the warm CLI server users get (cli/resident.py): marked
    ``warm_cli`` (a module's ``pytestmark``, or the test) and not ``cold_cli`` (a test about
    the cold process itself: its start, what it imports, a call no server answers)."""
    return node.get_closest_marker("warm_cli") is not None and node.get_closest_marker("cold_cli") is None


@pytest.fixture(autouse=True)
def hermetic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Path]:
    from .daemons import pid_mark

    # the daemons of this test's homes (all under its own tmp_path) start after this
    started = pid_mark()
    home_dir = tmp_path / "userhome"
    home_dir.mkdir()
    for key in list(os.environ):
        if key.startswith("GIT_") or key.startswith("AVFS_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(home_dir))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home_dir / ".config"))
    monkeypatch.setenv("AVFS_HOME", str(tmp_path / "avfs-home"))
    # no warm CLI server per test home (tests/test_warm.py runs with one), but where the
    # test is marked warm_cli: then as a user's, started by the first call (stopped below)
    warm = warm_cli(request.node)
    monkeypatch.setenv("AVFS_SERVER", "auto" if warm else "off")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", AUTHOR[0])
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", AUTHOR[1])
    monkeypatch.setenv("GIT_COMMITTER_NAME", AUTHOR[0])
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", AUTHOR[1])
    layers_switch(monkeypatch)
    (home_dir / ".gitconfig").write_text(
        f"[user]\n\tname = {AUTHOR[0]}\n\temail = {AUTHOR[1]}\n[init]\n\tdefaultBranch = main\n"
        '[protocol "file"]\n\tallow = always\n'
    )
    sp = pygit2.settings.search_path
    saved = {
        lvl: sp[lvl]
        for lvl in (
            pygit2.enums.ConfigLevel.GLOBAL,
            pygit2.enums.ConfigLevel.XDG,
            pygit2.enums.ConfigLevel.SYSTEM,
        )
    }
    sp[pygit2.enums.ConfigLevel.GLOBAL] = str(home_dir)
    sp[pygit2.enums.ConfigLevel.XDG] = str(
        home_dir / ".config" / "git"
    )  # as libgit2 sets it: $XDG_CONFIG_HOME/git
    sp[pygit2.enums.ConfigLevel.SYSTEM] = str(tmp_path / "nosystem")
    yield tmp_path
    for lvl, value in saved.items():
        sp[lvl] = value
    _release_kept_warm(tmp_path, started)
    if warm:
        _stop_test_servers(tmp_path, started)
    _fsck_every_vault(tmp_path / "avfs-home" / "vaults")
    _drop_layers(tmp_path)


def _release_kept_warm(tmp_path: Path, started: tuple[int, int]) -> None:
    """Unmount (lazily) the mounts still there for a test's homes: those `proxy exec` made
    and kept warm (fuse/idle.py), each would otherwise wait for its idle timeout, and any a
    test left, its own unmount refused or never reached (CI's `test_submodules` [fuse]
    failure left its mount and daemon to the session's end, flaky1). Their daemons' homes
    are under ``tmp_path`` (tests/daemons.py; started after ``started``, a
    :func:`.daemons.pid_mark` taken as the test began, the directory being the test's own)."""
    from avfs_git.ops import mounts

    from .daemons import home_of, running

    root = str(tmp_path) + "/"
    homes = {h for _, argv in running(started) if (h := home_of(argv)) is not None and h.startswith(root)}
    for home in homes:
        with contextlib.suppress(Exception):
            h = Home(home, mounts=MOUNT_SIDE)
            try:
                for m in mounts.list_mounts(h):
                    mounts.unmount(h, h.vault(m.vault), m.fork, revision=m.revision, lazy=True)
            finally:
                h.close()


def _stop_test_servers(tmp_path: Path, started: tuple[int, int]) -> None:
    """End the resident CLI servers a ``warm_cli`` test's calls started for its homes (under
    ``tmp_path``) and wait until each is gone (its calls' processes and spare first, as
    `avfs server stop` does): nothing of a test runs on into the next
    (tests/cputime.py's ``left_running``), and a server left would wait out its idle time."""
    from .daemons import server_of, servers_under, wait_gone

    for pid, argv in servers_under(str(tmp_path), started):
        home = os.fsdecode(argv[argv.index(b"--home") + 1])
        signal_process(pid, signal.SIGTERM, is_it=lambda p, home=home: server_of(p, home))
        assert wait_gone(pid, 30.0), f"the CLI server {pid} of {home} did not end in 30 s"


_SCRATCH: list[str] = []  # the session's base temp dir (pytest_sessionstart)


def _entry_lineno(entry: object) -> int:
    """A traceback entry's line as pytest counts it (from 0), also where Python 3.11 gives
    none (``tb_lineno`` None: an exception raised by the timeout's signal at an instruction
    with no line). pytest's own ``lineno`` raised TypeError there, while reporting the test
    that ran out of time: the worker's session ended in INTERNALERROR, xdist lost the
    worker and the rest of the run went unreported (fresh-clone CI at load 30, 16th round)."""
    raw = entry._rawentry  # type: ignore[attr-defined]
    line = raw.tb_lineno
    if line is None:
        line = getattr(raw.tb_frame, "f_lineno", None) or 1
    return int(line) - 1


def _guard_tracebacks() -> None:
    from _pytest._code import code

    code.TracebackEntry.lineno = property(_entry_lineno)  # type: ignore[assignment,method-assign]


_guard_tracebacks()


class _Session:
    """What holds this test process's zygote (ops/warmstart.py) from its first mount to the
    session's end: a test's home closing would end it (the last home it was kept for), and
    the next test's first mount would spawn its daemon and start another (~0.3 s of CPU)."""


_ZYGOTE_HOLD = _Session()


def pytest_sessionstart(session: pytest.Session) -> None:
    warmstart.use(_ZYGOTE_HOLD)
    given = session.config.option.basetemp
    if given:
        # pytest empties it first: a killed session's layers file systems in it are
        # unmounted before (removing a mount point fails the session's start)
        with contextlib.suppress(OSError):
            _drop_layers(Path(given).resolve())
        # a mount daemon killed by a test leaves its worktree's pinned `.git` immutable
        # (fuse/daemon.py): unlinking it fails EPERM, and so did the next session's start.
        # Not a glob: it stopped the session (ENAMETOOLONG) on the paths longer than
        # PATH_MAX that test_launcher_fuzz leaves there
        _unpin_gitfiles(str(Path(given).resolve()))
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None:
        _SCRATCH.append(str(factory.getbasetemp()))
        _rewrite_ahead(session.config, factory.getbasetemp())
        # a test past its timeout that the timeout's signal cannot end (tests/hangwatch.py)
        hangwatch.register(session.config, str(factory.getbasetemp()))


def _rewrite_ahead(config: pytest.Config, basetemp: Path) -> None:
    """In pytest-xdist's controller, before its workers start (its own hook runs last): the
    test modules' assertion rewriting written to pytest's cache once, rather than done by
    every worker (tests/rewriteahead.py)."""
    workers = getattr(config.option, "numprocesses", None)
    if not workers or config.pluginmanager.get_plugin("dsession") is None:
        return  # no workers (`-n 0`, `--collect-only`), or a worker itself
    from .rewriteahead import rewrite_ahead

    here = config.invocation_params.dir
    paths = [here / a.split("::")[0] for a in config.args]
    procs = min(os.cpu_count() or 1, workers if isinstance(workers, int) else 4)
    rewrite_ahead(config.rootpath, paths, procs, basetemp)


def scratch_home(prefix: str) -> str:
    """A new directory for a home made outside a test's ``tmp_path`` (a hypothesis example
    or state machine makes several in one test): under the session's base temp dir, so
    that what :func:`remove_home` did not drop goes at the session's end. Remove it with
    :func:`remove_home`."""
    return tempfile.mkdtemp(prefix=prefix, dir=_SCRATCH[0] if _SCRATCH else None)


def remove_home(path: str) -> None:
    """Remove a home made by :func:`scratch_home`: its layers file system unmounted first
    (removing the directory under it leaves the mount, and its loop device, behind)."""
    layers.unmount(path)
    shutil.rmtree(path, ignore_errors=True)


class _DeepCleanUp:
    """pytest's clean-up of older sessions' temp dirs (its tmpdir plugin's session end)
    removes them with ``shutil.rmtree``, one Python call a level: a tree past the recursion
    limit that a test left there (the deep-tree tests' homes) ended the whole session in a
    ``RecursionError``, its summary and exit status lost. The limit is raised for the
    session's end only: the tests of trees past it run under the default."""

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Iterator[None]:
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, 200_000))
        try:
            yield
        finally:
            sys.setrecursionlimit(old)


def pytest_assertrepr_compare(
    config: pytest.Config, op: str, left: object, right: object
) -> list[str] | None:
    """A failed ``==`` of large values says what differs, not CI mode's full ndiff (bigdiff)."""
    return bigdiff.explain(op, left, right)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_DeepCleanUp(), "avfs-deep-clean-up")
    config.addinivalue_line(
        "markers",
        "warm_cli: the test's homes get the warm CLI server users get (AVFS_SERVER on), stopped at its end",
    )
    config.addinivalue_line("markers", "cold_cli: a test about the cold CLI process keeps AVFS_SERVER=off")
    # each test's CPU, every process it starts counted (opt-in: AVFS_TEST_CPU=FILE)
    cputime.register(config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``--dist loadfile`` hands out the longest files first (tests/filesched.py: a file of
    a few long tests handed out last held one worker alone at the run's end)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from .filesched import scheduler

    return scheduler(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Layers file systems of homes in module- or session-wide temp dirs (the function-wide
    ones go with their test), and the resident CLI servers of the suite's homes (tests that
    run the CLI with an environment of their own, the real projects' and the git model's,
    use one: it would wait for its idle time)."""
    # this process's zygote, ended and collected: it was left running to the process's end
    # (one a worker: tests/cputime.py named each, "left running in a worker's cgroup")
    warmstart.release(_ZYGOTE_HOLD)
    daemonstart.end_zygote()
    mcpwarm.end()  # and its warm MCP process (tests/mcpwarm.py), if a test started one
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None:
        # mounts a failed test left (its unmount refused busy): detached, and named on stderr
        with contextlib.suppress(OSError):
            for mp in _drop_mounts(str(factory.getbasetemp())):
                print(f"\nleft mounted by a test, detached at the session's end: {mp}", file=sys.stderr)
        try:
            _drop_layers(factory.getbasetemp())
        except OSError:
            pass
        _stop_servers(factory.getbasetemp())
        # xdist's controller: each worker did its own part of the temp dir
        if hasattr(session.config, "workerinput") or not getattr(session.config.option, "numprocesses", None):
            _unpin_gitfiles(str(factory.getbasetemp()))


def _stop_servers(tmp_path: Path) -> None:
    """SIGTERM every resident CLI server whose home is under ``tmp_path`` (found in /proc,
    not by walking the temp dir: some tests leave paths longer than PATH_MAX there)."""
    root = str(tmp_path) + "/"
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if b"avfs_git.cli.resident" in argv and b"--home" in argv:
            home = argv[argv.index(b"--home") + 1].decode(errors="replace")
            if home.startswith(root):  # (still that server: it may have ended since, its pid another's)
                signal_process(int(d), signal.SIGTERM, is_it=lambda p, argv=argv: _argv(p) == argv)


def _argv(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().split(b"\0")
    except OSError:
        return None


# what `git fsck` hands to a `git commit-graph verify` and a `git multi-pack-index verify`
# process of its own, each time (git 2.39): where none of them is there, those two check
# nothing and are not started (two processes of a fsck's three: ~2.5 ms of its ~4.5 ms)
_GRAPH_FILES = ("objects/info/commit-graph", "objects/info/commit-graphs", "objects/pack/multi-pack-index")


def _fsck_every_vault(vaults: Path) -> None:
    """Every vault a test leaves behind must pass `git fsck --strict` (plain git, always)."""
    if not vaults.is_dir():
        return
    for v in sorted(vaults.glob("*.git")):
        alone = not (v / "objects/info/alternates").exists()  # an alternate's graphs are verified too
        skip = ["-c", "core.commitGraph=false", "-c", "core.multiPackIndex=false"]
        if not alone or any((v / f).exists() for f in _GRAPH_FILES):
            skip = []
        proc = subprocess.run(
            ["git", *skip, "--git-dir", str(v), "fsck", "--strict", "--no-dangling", "--no-progress"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0 and not proc.stdout.strip(), f"git fsck {v}: {proc.stdout}{proc.stderr}"


_PLAIN_HOMES: weakref.WeakSet[Home] = weakref.WeakSet()  # made by the `home` fixture below


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    h = Home(str(tmp_path / "avfs-home"), author=AUTHOR, mounts=MOUNT_SIDE, paths=POLICY_PATHS)
    _PLAIN_HOMES.add(h)
    yield h
    # its SQLite connections go now, not at a later garbage collection (each sits in a
    # reference cycle): a layers file system they hold stays mounted, lazily unmounted,
    # with its loop device, until then
    h.close()


@pytest.fixture
def vault(home: Home, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    """Vault ``v`` of ``home``: a copy of one made once a process where ``home`` is the
    fixture's own and nothing is in it yet (tests/vaulttemplate.py), else made here."""
    from . import vaulttemplate

    if home in _PLAIN_HOMES and not LAYERS and not os.path.lexists(home.path):
        kw = {"mounts": MOUNT_SIDE, "paths": POLICY_PATHS, "layers": "off"}
        vaulttemplate.copy_into(home, tmp_path_factory.getbasetemp(), AUTHOR, **kw)
        yield home.vault("v")
        vaulttemplate.unchanged()
    else:
        yield home.create_vault("v")


@pytest.fixture(scope="session", autouse=True)
def no_sandbox_outlives_its_owner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Under CI=true, the session fails where a ``bwrap`` of its own tests is left with
    parent 1 at its end: a sandbox that outlived the process that made it (ci41: a mount
    daemon's ready sandbox, its daemon killed by the test). Ours are told by this worker's
    base temp dir in their command line (every sandbox binds a fork and a vault under a
    test's ``tmp_path``); another worktree's or helper's are never looked at, nor killed.
    Those found are ended once reported."""
    yield
    if not IN_CI:
        return
    from .sandboxes import orphaned_bwraps

    base = os.fsencode(str(tmp_path_factory.getbasetemp()))
    left = orphaned_bwraps(base)
    if left:
        for pid, _ in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        pytest.fail(f"sandboxes left with parent 1 by this session's tests: {left}")


@pytest.fixture
def ws(vault: Vault) -> Workspace:
    return vault.workspace("main")


@dataclasses.dataclass
class CliResult:
    code: int
    out: str
    err: str
    out_bytes: bytes

    def json(self) -> dict:  # type: ignore[type-arg]
        docs = [line for line in self.out.splitlines() if line.strip()]
        assert len(docs) == 1, f"expected exactly one JSON document on stdout, got {self.out!r}"
        doc = json.loads(docs[0])
        assert isinstance(doc, dict)
        return doc


def run_in_process(
    args: list[str],
    stdin: bytes = b"",
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    argv0: str | None = None,
) -> CliResult:
    """`avfs ARGS...` run in this process, as the console script runs it (the fast path,
    then click), in directory ``cwd`` with ``env`` over this process' environment and
    ``argv0`` as ``sys.argv[0]`` (how an agent hook names the avfs that runs), each set
    back after. What a real process would add is its own start (~100-150 ms of CPU:
    Python and the CLI's imports); a test that is about the process (its exit through a
    signal, the native launcher, what it inherits) runs one (the ``cli_proc`` fixture)."""
    from avfs_git.cli.execopts import main  # the console script: the fast path, then click

    out_b, err_b = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_b, encoding="utf-8", write_through=True)
    err = io.TextIOWrapper(err_b, encoding="utf-8", write_through=True)
    inp = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    saved = sys.stdin, sys.stdout, sys.stderr
    here = os.getcwd() if cwd is not None else None
    old_env = {k: os.environ.get(k) for k in env or {}}
    old_argv = sys.argv
    sys.stdin, sys.stdout, sys.stderr = inp, out, err
    try:
        os.environ.update(env or {})
        if cwd is not None:
            os.chdir(cwd)
        if argv0 is not None:
            sys.argv = [argv0, *args]
        code = main(args)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        sys.argv = old_argv
        if here is not None:
            os.chdir(here)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    ob = out_b.getvalue()
    return CliResult(code, ob.decode("utf-8", "replace"), err_b.getvalue().decode("utf-8", "replace"), ob)


@pytest.fixture
def cli() -> object:
    """Run `avfs ARGS...` in process; returns a CliResult (code, out, err)."""

    def run(
        *args: str, stdin: bytes = b"", cwd: str | Path | None = None, env: dict[str, str] | None = None
    ) -> CliResult:
        return run_in_process(list(args), stdin, cwd, env)

    return run


@pytest.fixture
def cli_proc() -> object:
    """Run `python -m avfs_git ARGS...` as a real process."""

    def run(*args: str, stdin: bytes = b"", cwd: str | None = None) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "avfs_git", *args], input=stdin, capture_output=True, cwd=cwd, timeout=120
        )
        return CliResult(
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
            proc.stdout,
        )

    return run


def git(*args: str, cwd: str | Path | None = None, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def libgit2_repo(vault: Vault) -> pygit2.Repository:
    """The vault opened by libgit2 itself, for a test that checks avfs against libgit2 or
    makes a state avfs would not (avfs's own repository is private to core/store)."""
    return pygit2.Repository(vault.path)


def snapshot(vault: Vault) -> dict[str, object]:
    """Everything a bad-input test checks is unchanged: refs, op log size, overlays."""
    repo = libgit2_repo(vault)
    refs = {r: str(repo.references[r].resolve().target) for r in repo.references}
    overlays = {}
    for f in vault.fork_names():
        w = vault.workspace(f)
        overlays[f] = [(e.path, e.kind, e.mode, e.oid, e.size) for e in w.overlay.all()]
    return {"refs": refs, "ops": len(vault.oplog.recent(10_000)), "overlays": overlays}


__all__ = [
    "AUTHOR",
    "IN_CI",
    "LAYERS",
    "CliResult",
    "avfs_git",
    "git",
    "layers_switch",
    "libgit2_repo",
    "remove_home",
    "run_in_process",
    "scratch_home",
    "skip_outside_ci",
    "snapshot",
]
