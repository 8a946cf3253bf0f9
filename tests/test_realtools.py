"""Real projects' own tools in a mounted fork, on both backends and through ``proxy exec``.

tests/test_realprojects.py reads every file of released projects back; this module runs
what a person runs on one, each time in a plain directory beside the mount too, and
compares: git over a real history (MarkupSafe's releases 2.1.2 to 2.1.5, one commit each:
``git log -p``, ``git blame``, ``git bisect run``, ``git stash``), and a C extension's
build and its own test suite (MarkupSafe 2.1.5: ``setup.py build_ext --inplace``, then
``pytest``). Through ``proxy exec`` the envelope's ``changes`` and the commit it made are
held against what the same command changed in the plain copy. What the trials found, and
what differs by design: docs/testing.md ("Real projects' own tools").
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shlex
import sqlite3
import stat
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import realdata
from .conftest import run_in_process, skip_outside_ci
from .gitmount import warm_daemons
from .test_confine import _need_bwrap
from .test_fuse import require_fuse
from .test_fuse_tools import require_tool
from .test_lazy import Server, missing
from .test_overlay import require_overlay
from .test_realprojects import Project, Spec, git_run, make_env

pytestmark = pytest.mark.slow

BACKENDS = ["overlay", "fuse"]
RELEASES = ["2.1.2", "2.1.3", "2.1.4", "2.1.5"]
INIT = "src/markupsafe/__init__.py"
# bisect's test: good while __init__.py says 2.1.2 or 2.1.3, bad from 2.1.4 on
BISECT_TEST = "! grep -q '__version__ = \"2.1.[45]\"' " + INIT
HISTORY_TOOLS = [
    ["git", "log", "-p", "--stat", "--format=fuller", "--no-color"],
    ["git", "blame", "-w", INIT],
    ["git", "log", "--follow", "--oneline", "--", "src/markupsafe/_speedups.c"],
    ["sh", "-c", 'git bisect start v2.1.5 v2.1.2 >/dev/null && exec git bisect run sh -c "$0"', BISECT_TEST],
    ["sh", "-c", "git bisect reset >/dev/null 2>&1"],  # (a clone's says how it is to origin)
    ["git", "status", "--porcelain", "--untracked-files=all"],
]


class _Project(Project):
    """A :class:`Project` whose ``avfs`` calls run in this process (``conftest.run_in_process``,
    its environment the project's for the call), not as processes: what these tests check is
    what real tools do in a mount and through ``proxy exec`` (the mount daemon's, in its
    sandbox, either way: the CLI is its client), not the CLI's process; a mount's daemon is
    forked by this process's zygote (tests/gitmount.py ``warm_daemons``). Each call was a
    process the home's resident CLI server served (~120 of them a run of this file, ~0.1 s
    of CPU each with the server's share, and a daemon spawned cold at each mount: suitetime1).
    The module's history is imported by a process (:func:`history`: before any test's
    hermetic set-up, which an in-process call would need)."""

    def avfs(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[bytes]:
        with warm_daemons():
            r = run_in_process(["--home", self.home, *args], env=self.env)
        proc = subprocess.CompletedProcess(["avfs", *args], r.code, r.out_bytes, r.err.encode())
        if check:
            assert r.code == 0, f"avfs {' '.join(args[:6])}… exited {r.code}: {r.err}{r.out[:2000]}"
        return proc


def _require(backend: str) -> None:
    require_overlay() if backend == "overlay" else require_fuse()


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, bytes]:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=300, check=False)
    return proc.returncode, proc.stdout


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """MarkupSafe's four releases as a git history (realdata.history), imported with
    ``avfs vault create hist --from`` (the history comes along)."""
    root = tmp_path_factory.mktemp("realtools-hist")
    spec = Spec("hist", lambda: root, "MarkupSafe's releases as a history")
    proj = _Project(spec, root, root, make_env(root), {}, "", {}, root)
    work = realdata.history("MarkupSafe", RELEASES, root, window=10)
    Project.avfs(proj, "vault", "create", "hist", "--from", str(work))  # (a process: no test's set-up yet)
    yield proj


def _mount(proj: Project, fork: str, backend: str, mp: Path) -> None:
    proj.avfs("vault", "fork", f"{proj.spec.name}:main", fork)
    mp.mkdir()
    proj.avfs("mount", "--backend", backend, f"{proj.spec.name}:{fork}", str(mp))


def _unmount(proj: Project, fork: str) -> None:
    proj.avfs("unmount", "--lazy", f"{proj.spec.name}:{fork}", check=False)


@pytest.fixture(scope="module")
def tools_in_a_clone(history: Project, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, bytes]]:
    """What :data:`HISTORY_TOOLS` print in a plain clone of the history (the same for both
    backends: made once a module)."""
    plain = tmp_path_factory.mktemp("realtools-clone") / "clone"
    git_run("clone", "-q", str(history.src / "MarkupSafe-history"), str(plain), env=history.env)
    want = [_run(argv, plain, history.env) for argv in HISTORY_TOOLS]
    assert b"first bad commit" in want[3][1] and b"MarkupSafe 2.1.4" in want[3][1], want[3]
    return want


@pytest.mark.parametrize("backend", BACKENDS)
def test_git_over_a_real_history_in_a_mount_is_git_in_a_clone(
    history: Project, tools_in_a_clone: list[tuple[int, bytes]], backend: str, tmp_path: Path
) -> None:
    """``git log -p``, ``blame``, ``log --follow`` and a ``bisect run`` (HEAD detached and
    moved four times, files rewritten under the mount) print in a mount what they print
    in a clone (:func:`tools_in_a_clone`); afterwards the mount is the fork again, clean
    for git and for avfs."""
    _require(backend)
    proj, env, want = history, history.env, tools_in_a_clone
    fork, mp = f"tools-{backend}", tmp_path / "mnt"
    _mount(proj, fork, backend, mp)
    try:
        got = [_run(argv, mp, env) for argv in HISTORY_TOOLS]
        head = git_run("rev-parse", "--abbrev-ref", "HEAD", env=env, cwd=mp).strip()
    finally:
        _unmount(proj, fork)
    for argv, g, w in zip(HISTORY_TOOLS, got, want, strict=True):
        assert g == w, f"{' '.join(argv)[:80]}: mount {g[0]} {g[1][-400:]!r}, clone {w[0]} {w[1][-400:]!r}"
    assert head == fork
    status = json.loads(proj.avfs("--json", "--vault", f"hist:{fork}", "status").stdout)
    assert status["clean"] and status["git"] is None, status


@pytest.mark.parametrize("backend", BACKENDS)
def test_git_deletes_refs_in_proxy_exec(history: Project, backend: str, tmp_path: Path) -> None:
    """``git stash && ... && git stash pop`` in one command, and ``git update-ref -d`` of a
    ref the command made, on the real history through ``proxy exec``: git deletes a ref
    under ``<vault>/packed-refs.lock``, which the read-only vault refused (EROFS: the pop
    applied the stash and kept it, ``update-ref -d`` failed). The command's change is the
    exec's commit, and no ref is left behind."""
    _require(backend)
    _need_bwrap()
    proj = history
    fork, mp = f"stash-{backend}", tmp_path / "mnt"
    _mount(proj, fork, backend, mp)
    try:
        line = "edited in the sandbox"
        script = (
            f"echo '{line}' >> README.rst && git stash -q && git diff --quiet && git stash pop -q"
            " && git update-ref refs/run/own HEAD && git update-ref -d refs/run/own"
            " && git stash list | wc -l"
        )
        proc = proj.avfs("--json", "--vault", f"hist:{fork}", "proxy", "exec", "--shell", script, check=False)
        doc = json.loads(proc.stdout)
        res = doc["result"] or {}
        assert res.get("exit_code") == 0 and res["stdout"].strip() == "0", (res, doc["error"])
        assert "packed-refs.lock" not in res["stderr"], res["stderr"]
        assert doc["refs_refused"] == [], doc["refs_refused"]
        assert [(c["path"], c["status"]) for c in doc["changes"]] == [("README.rst", "modified")]
        assert (mp / "README.rst").read_text().endswith(line + "\n")
    finally:
        _unmount(proj, fork)
    vault = proj.vault_path
    shown = git_run("--git-dir", vault, "show", f"{fork}:README.rst", env=proj.env)
    assert (
        shown.endswith(line + "\n")
        and doc["commit"]["commit"] == git_run("--git-dir", vault, "rev-parse", fork, env=proj.env).strip()
    )
    assert git_run("--git-dir", vault, "for-each-ref", "refs/stash", "refs/run", env=proj.env) == ""


def _exec(proj: Project, fork: str, *argv: str) -> dict[str, Any]:
    proc = proj.avfs("--json", "--vault", f"hist:{fork}", "proxy", "exec", "--", *argv, check=False)
    doc: dict[str, Any] = json.loads(proc.stdout)
    assert doc["result"] is not None and doc["confinement"]["kind"] == "bwrap", (
        doc["error"],
        doc["confinement"],
    )
    return doc


def _first_bad(out: str) -> str:
    lines = [line.split()[0] for line in out.splitlines() if line.endswith(" is the first bad commit")]
    assert len(lines) == 1, out
    return lines[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_git_bisect_in_proxy_exec_finds_what_a_clone_finds(
    history: Project, tools_in_a_clone: list[tuple[int, bytes]], backend: str, tmp_path: Path
) -> None:
    """``git bisect start``/``run``/``reset`` in one ``proxy exec``, then a bisect stepped
    through one exec per step (``start``; the test and ``git bisect good``/``bad`` each in
    an exec of its own, as an agent runs them; ``reset``), on MarkupSafe's real history:
    each finds the first bad commit ``git bisect run`` finds in a plain clone. git deletes
    the bisect's refs by rewriting ``packed-refs``, which the sandbox showed read-only
    (``EBUSY``: "could not delete reference BISECT_HEAD"); its ``refs/bisect/*`` are the
    worktree's own between the execs. While it is open, ``avfs status`` says so, as git's
    own ``git status`` does, and a checkpoint refuses (``git_in_progress``); after the
    reset the fork is clean for git and avfs, no ref of the vault moved."""
    _require(backend)
    _need_bwrap()
    proj, env = history, history.env
    want = _first_bad(tools_in_a_clone[3][1].decode())  # `git bisect run` in a plain clone
    fork, mp = f"bisect-{backend}", tmp_path / "mnt"
    _mount(proj, fork, backend, mp)
    vault = proj.vault_path
    refs_before = git_run("--git-dir", vault, "for-each-ref", "refs/heads", "refs/tags", env=env)
    try:
        # (the policy reads `sh -c SCRIPT` through; a script given as `$0` it cannot read)
        run = f"git bisect start v2.1.5 v2.1.2 && git bisect run sh -c {shlex.quote(BISECT_TEST)}"
        one = _exec(proj, fork, "sh", "-c", run)
        assert one["exit_code"] == 0 and _first_bad(one["result"]["stdout"]) == want, one["result"]
        assert one["refs_refused"] == [], one["refs_refused"]
        reset = _exec(proj, fork, "git", "bisect", "reset")
        assert reset["exit_code"] == 0, reset["result"]
        # the same, one exec a step
        start = _exec(proj, fork, "git", "bisect", "start", "v2.1.5", "v2.1.2")
        assert start["exit_code"] == 0 and start["refs_refused"] == [], (
            start["result"],
            start["refs_refused"],
        )
        found, steps = None, 0
        while found is None:
            steps += 1
            assert steps < 10, "the bisect does not end"
            status = json.loads(proj.avfs("--json", "--vault", f"hist:{fork}", "status").stdout)
            assert status["git"]["in_progress"] == "bisect", status["git"]
            said = git_run("status", env=env, cwd=mp)
            assert "You are currently bisecting" in said, said
            saved = proj.avfs("--json", "--vault", f"hist:{fork}", "checkpoint", "save", check=False)
            assert json.loads(saved.stdout)["error"]["code"] == "git_in_progress", saved.stdout
            verdict = _exec(proj, fork, "sh", "-c", BISECT_TEST)["exit_code"]
            step = _exec(proj, fork, "git", "bisect", "good" if verdict == 0 else "bad")
            assert step["exit_code"] == 0 and step["refs_refused"] == [], (
                step["result"],
                step["refs_refused"],
            )
            if "is the first bad commit" in step["result"]["stdout"]:
                found = _first_bad(step["result"]["stdout"])
        assert found == want
        reset = _exec(proj, fork, "git", "bisect", "reset")
        assert reset["exit_code"] == 0 and reset["success"], (reset["result"], reset["error"])
        head = git_run("rev-parse", "--abbrev-ref", "HEAD", env=env, cwd=mp).strip()
    finally:
        _unmount(proj, fork)
    assert head == fork
    status = json.loads(proj.avfs("--json", "--vault", f"hist:{fork}", "status").stdout)
    assert status["clean"] and status["git"] is None, status
    assert git_run("--git-dir", vault, "for-each-ref", "refs/heads", "refs/tags", env=env) == refs_before
    assert not Path(vault, "worktrees", f"avfs-{fork}", "refs", "bisect").exists()


# -- a C extension built and tested: MarkupSafe 2.1.5 --------------------------------------------

# what a build writes that holds the directory it ran in (debug info, code objects' file
# names): compared by path and mode, not bytes, between the plain copy and the mount
_PATH_BOUND = (".so", ".o", ".pyc")


def _tree(root: Path) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not (d == ".git" and dirpath == str(root)))
        for name in files:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            if rel == ".git":
                continue
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            else:
                kind = "file+x" if st.st_mode & 0o100 else "file"
                out[rel] = (
                    kind,
                    "" if rel.endswith(_PATH_BOUND) else hashlib.sha256(p.read_bytes()).hexdigest(),
                )
    return out


_MS_SPEC = Spec("markupsafe", lambda: realdata.pypi_sdist("MarkupSafe", "2.1.5"), "a C extension")
_MS_BUILD = (
    f"{sys.executable} setup.py -q build_ext --inplace && PYTHONPATH=src {sys.executable} -m pytest -q tests"
)


@pytest.fixture(scope="module")
def built_release(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, tuple[str, str]], set[str]]:
    """MarkupSafe 2.1.5 unpacked, and what its build and its tests (:data:`_MS_BUILD`) make
    in a plain copy of it: (the release, the copy's files after, the paths the run
    changed). Made once a module: the plain side is the same for both backends (the
    release is only read after)."""
    require_tool("gcc")
    if importlib.util.find_spec("setuptools") is None:
        skip_outside_ci("setuptools is not installed in this environment")
    root = tmp_path_factory.mktemp("realtools-build")
    env = make_env(root)
    src = realdata.extract(_MS_SPEC.fetch(), root / "src")
    plain = root / "plain"
    subprocess.run(["cp", "-a", str(src), str(plain)], check=True)
    before = _tree(plain)
    native_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    native = subprocess.run(
        ["sh", "-c", _MS_BUILD], cwd=plain, env=native_env, capture_output=True, check=False
    )
    assert native.returncode == 0, native.stdout.decode()[-2000:] + native.stderr.decode()[-2000:]
    after = _tree(plain)
    return src, after, {p for p in set(before) | set(after) if before.get(p) != after.get(p)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_c_extension_builds_and_its_tests_pass_through_proxy_exec(
    backend: str,
    built_release: tuple[Path, dict[str, tuple[str, str]], set[str]],
    tmp_path: Path,
    record_property: Any,
) -> None:
    """MarkupSafe 2.1.5's ``setup.py build_ext --inplace`` (gcc) and its own ``pytest``,
    in a plain copy (:func:`built_release`) and through ``proxy exec`` in a mount: the same
    exit codes and files made; the envelope's ``changes`` are exactly the paths the plain
    run changed that git does not ignore, and the exec's commit holds exactly the mount's
    files."""
    _require(backend)
    _need_bwrap()
    src, after, changed = built_release
    spec, build = _MS_SPEC, _MS_BUILD
    env = make_env(tmp_path)
    proj = _Project(spec, tmp_path, src, env, {}, "", {}, tmp_path)
    proj.avfs("vault", "create", "markupsafe", "--from", str(src))
    mp = tmp_path / "mnt"
    doc, in_mount = _build_through_exec(proj, "markupsafe", backend, mp, build)
    assert in_mount == after, {p for p in set(in_mount) | set(after) if in_mount.get(p) != after.get(p)}
    ignored = {p for p in changed if p.startswith(".pytest_cache/")}  # its own .gitignore: "*"
    assert {c["path"] for c in doc["changes"]} == changed - ignored
    assert all(c["status"] == "added" for c in doc["changes"]), doc["changes"]
    co = tmp_path / "checkout"
    git_run("clone", "-q", "-b", "main", proj.vault_path, str(co), env=env)
    committed = _tree(co)
    assert committed == {p: v for p, v in in_mount.items() if p not in ignored}
    record_property("exec_changes", len(doc["changes"]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_touch_m_of_a_source_makes_a_real_build_rebuild(backend: str, tmp_path: Path) -> None:
    """MarkupSafe 2.1.5 built in a mount, its C source then ``touch -m``-ed (``UTIME_OMIT``
    for the access time): ``build_ext`` compares times as make does and builds again, as
    on disk. On the pure-FUSE mount the source's mtime became 1970 (mfusepy folded
    ``UTIME_OMIT``/``UTIME_NOW`` into times 1.07 s after the epoch) and the build was
    "up to date"."""
    _require(backend)
    require_tool("gcc")
    require_tool("touch")
    if importlib.util.find_spec("setuptools") is None:
        skip_outside_ci("setuptools is not installed in this environment")
    spec = Spec("mstouch", lambda: realdata.pypi_sdist("MarkupSafe", "2.1.5"), "a C extension")
    env = {k: v for k, v in make_env(tmp_path).items() if k != "PYTHONDONTWRITEBYTECODE"}
    src = realdata.extract(spec.fetch(), tmp_path / "src")
    proj = _Project(spec, tmp_path, src, env, {}, "", {}, tmp_path)
    proj.avfs("vault", "create", "mstouch", "--from", str(src))
    mp = tmp_path / "mnt"
    mp.mkdir()
    proj.avfs("mount", "--backend", backend, "mstouch:main", str(mp))
    build = [sys.executable, "setup.py", "build_ext", "--inplace"]
    source = mp / "src" / "markupsafe" / "_speedups.c"
    try:
        first = subprocess.run(build, cwd=mp, env=env, capture_output=True, text=True, check=False)
        assert first.returncode == 0 and "building 'markupsafe._speedups'" in first.stdout, first.stderr
        # what the build made, a year old (both times given: no UTIME_OMIT), then the source
        # touched now
        made = [*(mp / "build").rglob("*.so"), *(mp / "build").rglob("*.o"), *mp.glob("src/markupsafe/*.so")]
        for p in made:
            os.utime(p, ns=(time.time_ns() - 365 * 86400 * 10**9,) * 2)
        before = time.time_ns()
        subprocess.run(["touch", "-m", str(source)], check=True)
        assert source.stat().st_mtime_ns >= before - 1_000_000_000
        again = subprocess.run(build, cwd=mp, env=env, capture_output=True, text=True, check=False)
    finally:
        _unmount(proj, "main")
    assert again.returncode == 0 and "building 'markupsafe._speedups'" in again.stdout, again.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_edit_a_checkpoint_recorded_stays_an_edit_to_make_and_python(backend: str, tmp_path: Path) -> None:
    """MarkupSafe 2.1.5 built and imported in a mount (``build_ext --inplace``: the
    extension; an import: the bytecode), then ``__version__`` edited to a string of the
    same size and a comment added to the C source, a checkpoint saved, and the two run
    again: Python imports the new version and ``build_ext`` builds again, as on disk, and
    the edited files keep their times through the checkpoint. On the pure-FUSE mount the
    checkpoint retired the files' copies and they showed the view time (when the
    workspace last changed wholesale): older than the build, whose outputs the checkpoint
    committed too, and equal to the bytecode's record of the old source (same size), so
    Python ran the old code and the build was "up to date"."""
    _require(backend)
    require_tool("gcc")
    if importlib.util.find_spec("setuptools") is None:
        skip_outside_ci("setuptools is not installed in this environment")
    spec = Spec("msedit", lambda: realdata.pypi_sdist("MarkupSafe", "2.1.5"), "a C extension")
    env = {k: v for k, v in make_env(tmp_path).items() if k != "PYTHONDONTWRITEBYTECODE"}
    src = realdata.extract(spec.fetch(), tmp_path / "src")
    proj = _Project(spec, tmp_path, src, env, {}, "", {}, tmp_path)
    proj.avfs("vault", "create", "msedit", "--from", str(src))
    mp = tmp_path / "mnt"
    mp.mkdir()
    proj.avfs("mount", "--backend", backend, "msedit:main", str(mp))
    build = [sys.executable, "setup.py", "build_ext", "--inplace"]
    version = [sys.executable, "-c", "import markupsafe; print(markupsafe.__version__)"]
    init, source = mp / INIT, mp / "src" / "markupsafe" / "_speedups.c"

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=mp / "src", env=env, capture_output=True, text=True, check=False)

    try:
        first = subprocess.run(build, cwd=mp, env=env, capture_output=True, text=True, check=False)
        assert first.returncode == 0 and "building 'markupsafe._speedups'" in first.stdout, first.stderr
        assert run(version).stdout == "2.1.5\n"
        assert list((mp / "src" / "markupsafe" / "__pycache__").glob("__init__.*.pyc"))
        # what the build made a year old (distutils compares whole seconds), then committed
        for p in [
            *(mp / "build").rglob("*.so"),
            *(mp / "build").rglob("*.o"),
            *mp.glob("src/markupsafe/*.so"),
        ]:
            os.utime(p, ns=(time.time_ns() - 365 * 86400 * 10**9,) * 2)
        proj.avfs("--vault", "msedit:main", "checkpoint", "save", "built")
        init.write_text(init.read_text().replace('__version__ = "2.1.5"', '__version__ = "2.1.6"'))
        with source.open("a") as fh:
            fh.write("/* edited */\n")
        edited = {p: p.stat().st_mtime_ns for p in (init, source)}
        proj.avfs("--vault", "msedit:main", "checkpoint", "save", "edited")
        kept = {p: p.stat().st_mtime_ns for p in (init, source)}
        got = run(version)
        again = subprocess.run(build, cwd=mp, env=env, capture_output=True, text=True, check=False)
        status = git_run("status", "--porcelain", env=env, cwd=mp)
    finally:
        _unmount(proj, "main")
    assert got.stdout == "2.1.6\n", got.stderr
    assert again.returncode == 0 and "building 'markupsafe._speedups'" in again.stdout, again.stdout
    assert kept == edited
    # (the rebuilt extension and the new bytecode: what the build and the import changed)
    assert all(line.endswith((".so", ".pyc", ".o")) for line in status.splitlines()), status


_MAKEFILE = """\
_speedups.o: src/markupsafe/_speedups.c
\tcc -c -fPIC -I{include} -o $@ $<
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_restore_right_after_a_build_makes_make_build_again(backend: str, tmp_path: Path) -> None:
    """MarkupSafe 2.1.5's C source compiled by ``make`` into an object git ignores, edited
    and checkpointed, compiled again, and the fork restored to the checkpoint before the
    edit at once: the restored source shows the time of the restore, as the file git's
    checkout writes does, so ``make`` compiles it again. On the pure-FUSE mount a restore
    showed every file the view time, a second before the restore, and the object made
    within that second was newer than the source it no longer matched: ``make`` called
    it up to date."""
    _require(backend)
    require_tool("cc")
    require_tool("make")
    spec = Spec("msmake", lambda: realdata.pypi_sdist("MarkupSafe", "2.1.5"), "a C source")
    env = make_env(tmp_path)
    src = realdata.extract(spec.fetch(), tmp_path / "src")
    include = sysconfig.get_paths()["include"]
    (src / "Makefile").write_text(_MAKEFILE.format(include=include))
    (src / ".gitignore").write_text("*.o\n")
    proj = _Project(spec, tmp_path, src, env, {}, "", {}, tmp_path)
    proj.avfs("vault", "create", "msmake", "--from", str(src))
    mp = tmp_path / "mnt"
    mp.mkdir()
    proj.avfs("mount", "--backend", backend, "msmake:main", str(mp))
    source = mp / "src" / "markupsafe" / "_speedups.c"

    def make(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["make", *args], cwd=mp, env=env, capture_output=True, text=True, check=False)

    try:
        with source.open("a") as fh:
            fh.write("/* one */\n")
        proj.avfs("--vault", "msmake:main", "checkpoint", "save", "one")
        one = source.read_bytes()
        assert make().returncode == 0
        with source.open("a") as fh:
            fh.write("/* two */\n")
        proj.avfs("--vault", "msmake:main", "checkpoint", "save", "two")
        assert make().returncode == 0 and make("-q").returncode == 0
        before = time.time_ns()
        proj.avfs("--vault", "msmake:main", "checkpoint", "restore", "one")
        # (a restore returns once the mount's watcher took the new view, or after 5 s: at
        # load 20-30 a CPU may come later; the mount shows it when it does)
        deadline = time.monotonic() + 30
        while source.read_bytes() != one and time.monotonic() < deadline:
            time.sleep(0.1)
        restored = source.stat().st_mtime_ns
        up_to_date = make("-q").returncode
        again = make()
    finally:
        _unmount(proj, "main")
    assert restored >= before - 10_000_000, (restored, before)  # (the clock's tick)
    assert up_to_date == 1 and "_speedups.o" in again.stdout, again.stdout


# -- SQLite: a database of the fork's checkpoint, read while another process writes it ---------


_COUNT = "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from files').fetchone()[0])"
_INSERT = (
    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA busy_timeout=20000');"
    " c.execute('INSERT INTO files VALUES (?, ?)', (sys.argv[2], b'added')); c.commit()"
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_sqlite_reader_opened_first_sees_another_processs_writes(backend: str, tmp_path: Path) -> None:
    """MarkupSafe 2.1.5's files in a SQLite database (path, bytes) checkpointed in the fork,
    opened read-only (``mode=ro``) in the mount, then written by another process, before and
    after a checkpoint: the reader, a new process and the checkpoint all see the new rows,
    and a later writer keeps them. On the pure-FUSE mount the reader went on reading the database's blob from git
    and filled the kernel's page cache with it: the reader, every later connection and
    ``sqlite3``'s own count saw the old rows until the mount ended (``avfs cat`` the new),
    and the next writer built its pages on the stale ones; after a checkpoint, a reader of
    the copy it retired did the same."""
    _require(backend)
    spec = Spec("sqlreal", lambda: realdata.pypi_sdist("MarkupSafe", "2.1.5"), "a database of real files")
    env = make_env(tmp_path)
    src = realdata.extract(spec.fetch(), tmp_path / "src")
    db = sqlite3.connect(src / "files.db")
    db.execute("CREATE TABLE files (path TEXT PRIMARY KEY, data BLOB)")
    rows = [(str(p.relative_to(src)), p.read_bytes()) for p in sorted(src.rglob("*")) if p.is_file()]
    db.executemany("INSERT INTO files VALUES (?, ?)", rows)
    db.commit()
    db.close()
    proj = _Project(spec, tmp_path, src, env, {}, "", {}, tmp_path)
    proj.avfs("vault", "create", "sqlreal", "--from", str(src))
    mp = tmp_path / "mnt"
    mp.mkdir()
    proj.avfs("mount", "--backend", backend, "sqlreal:main", str(mp))
    path = str(mp / "files.db")

    def count() -> int:
        return int(
            subprocess.run([sys.executable, "-c", _COUNT, path], capture_output=True, check=True).stdout
        )

    def insert(name: str) -> None:
        subprocess.run([sys.executable, "-c", _INSERT, path, name], check=True)

    n = len(rows)
    try:
        reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            assert reader.execute("SELECT count(*) FROM files").fetchone()[0] == n
            insert("first")  # the reader was on the blob; the insert writes its overlay copy
            seen = [reader.execute("SELECT count(*) FROM files").fetchone()[0], count()]
            # the checkpoint retires that copy (the reader's file is unlinked); the next
            # insert writes a new copy of the new base
            proj.avfs("--vault", "sqlreal:main", "checkpoint", "save", "-m", "one row")
            insert("second")
            seen += [reader.execute("SELECT count(*) FROM files").fetchone()[0], count()]
        finally:
            reader.close()
        insert("third")
        seen.append(count())
        check = subprocess.run(
            [sys.executable, "-c", "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("
             "'PRAGMA integrity_check').fetchone()[0])", path],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        proj.avfs("--vault", "sqlreal:main", "checkpoint", "save", "-m", "three rows")
    finally:
        _unmount(proj, "main")
    assert seen == [n + 1, n + 1, n + 2, n + 2, n + 3] and check == "ok", (seen, n, check)
    saved = tmp_path / "saved.db"
    saved.write_bytes(proj.avfs("--vault", "sqlreal:main", "cat", "files.db").stdout)
    got = sqlite3.connect(saved).execute("SELECT path FROM files WHERE data = ?", (b"added",)).fetchall()
    assert sorted(got) == [("first",), ("second",), ("third",)]


# -- the same build over a lazy vault's mount, from cold -----------------------------------------


_LAZY_BUILD = (
    f"{sys.executable} setup.py -q build_ext --inplace"
    f" && PYTHONPATH=src {sys.executable} -m pytest -q -p no:cacheprovider tests"
)


@pytest.fixture(scope="module")
def built_plain(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, tuple[str, str]], set[str]]:
    """MarkupSafe's release history (realdata.history), and what the build and its tests
    make in a plain clone of it: (the history's work tree, the clone's files after, the
    paths the run changed)."""
    require_tool("gcc")
    if importlib.util.find_spec("setuptools") is None:
        skip_outside_ci("setuptools is not installed in this environment")
    root = tmp_path_factory.mktemp("realtools-lazy")
    env = make_env(root)
    work = realdata.history("MarkupSafe", RELEASES, root, window=10)
    plain = root / "plain"
    git_run("clone", "-q", str(work), str(plain), env=env)
    before = _tree(plain)
    native_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    native = subprocess.run(
        ["sh", "-c", _LAZY_BUILD], cwd=plain, env=native_env, capture_output=True, check=False
    )
    assert native.returncode == 0, native.stdout.decode()[-2000:] + native.stderr.decode()[-2000:]
    after = _tree(plain)
    return work, after, {p for p in set(before) | set(after) if before.get(p) != after.get(p)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_build_and_its_tests_over_a_cold_lazy_mount_through_proxy_exec(
    backend: str,
    built_plain: tuple[Path, dict[str, tuple[str, str]], set[str]],
    tmp_path: Path,
    record_property: Any,
) -> None:
    """MarkupSafe's release history (2.1.2 to 2.1.5) served by ``git daemon`` on 127.0.0.1,
    cloned ``--lazy`` (no file's blob local), its fork mounted cold, and the C build and the
    release's own ``pytest`` through ``proxy exec``: the same exit code and files as the same
    command in a plain clone, ``changes`` exactly what changed there, the commit exactly the
    mount's files. The mount fetched what the build read, not the older releases' files."""
    _require(backend)
    _need_bwrap()
    work, after, changed = built_plain
    spec = Spec("lazyms", lambda: tmp_path, "MarkupSafe's releases, lazily cloned")
    env = make_env(tmp_path)
    proj = _Project(spec, tmp_path, tmp_path, env, {}, "", {}, tmp_path)
    base = tmp_path / "daemon"
    base.mkdir()
    git_run("clone", "-q", "--bare", str(work), str(base / "ms.git"), env=env)
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant", "transfer.advertiseObjectInfo"):
        git_run("--git-dir", str(base / "ms.git"), "config", key, "true", env=env)
    with Server.serving(base) as srv:
        proj.avfs("vault", "clone", srv.url("ms.git"), "lazyms", "--lazy")
        promised = missing(proj.vault_path)
        mp = tmp_path / "mnt"
        doc, in_mount = _build_through_exec(proj, "lazyms", backend, mp, _LAZY_BUILD)
        left = missing(proj.vault_path)
    assert in_mount == after, {p for p in set(in_mount) | set(after) if in_mount.get(p) != after.get(p)}
    assert changed and {c["path"] for c in doc["changes"]} == changed
    assert all(c["status"] == "added" for c in doc["changes"]), doc["changes"]
    co = tmp_path / "checkout"
    git_run("clone", "-q", "-b", "main", proj.vault_path, str(co), env=env)
    assert _tree(co) == in_mount
    # the build read 2.1.5's files; the blobs only 2.1.2 to 2.1.4 have stay on the server
    assert 0 < left < promised, (promised, left)
    record_property("promised_before_after", (promised, left))


def _build_through_exec(
    proj: Any, vault: str, backend: str, mp: Path, script: str
) -> tuple[dict[str, Any], Any]:
    """Mount ``vault:main`` at ``mp`` and run ``script`` (a build and its tests, which must
    pass) through ``proxy exec`` there, the interpreter's prefixes readable by policy: the
    envelope and the mount's tree (:func:`_tree`) before the unmount."""
    Path(proj.home, "policy.toml").write_text(
        f"version = 1\n[defaults]\nreadable = {json.dumps([sys.prefix, sys.base_prefix])}\n"
    )
    mp.mkdir()
    proj.avfs("mount", "--backend", backend, f"{vault}:main", str(mp))
    try:
        proc = proj.avfs(
            "--json", "--vault", f"{vault}:main", "proxy", "exec", "--shell", script, check=False
        )
        doc = json.loads(proc.stdout)
        res = doc["result"] or {}
        assert res.get("exit_code") == 0, (res.get("stdout", "")[-2000:], res.get("stderr", "")[-2000:])
        assert " passed" in res["stdout"], res["stdout"][-1000:]
        return doc, _tree(mp)
    finally:
        _unmount(proj, "main")
