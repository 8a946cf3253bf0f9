"""The console script `make install` writes (avfs_git/cli/launcher.py): Python without site
(-S); a call the resident server answers imports nothing outside avfs and the standard
library, and every other call runs site itself first, so the click CLI, pygit2 and the
`proxy exec` sandbox work as through pip's script. Real processes, the launcher written
into a temporary directory for this interpreter and this checkout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avfs_git.cli import launcher
from avfs_git.cli import resident as warm
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts

from .test_cliserver import _answers
from .test_confine import _need_bwrap
from .test_fuse import require_fuse


def _imports(stderr: bytes) -> list[str]:
    """The modules a process imported, in the order -X importtime reports them."""
    out = []
    for line in stderr.decode(errors="replace").splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                out.append(name)
    return out


def _launcher(tmp_path: Path, python: str = sys.executable) -> str:
    path = tmp_path / "bin" / "avfs"
    path.parent.mkdir(exist_ok=True)
    launcher.write(str(path), python=python, native=False)
    return str(path)


def _run(cmd: list[str], env: dict[str, str], stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    p = subprocess.run(cmd, input=stdin, capture_output=True, env=env, timeout=120)
    return p.returncode, p.stdout, p.stderr


def test_the_script_starts_python_without_site(tmp_path: Path) -> None:
    text = Path(_launcher(tmp_path)).read_text()
    assert text.splitlines()[0] == f"#!{sys.executable} -S"
    assert os.access(tmp_path / "bin" / "avfs", os.X_OK)


def test_a_direct_call_runs_site_itself_and_is_the_same(home: Home, vault: Vault, tmp_path: Path) -> None:
    """No server: site is imported after avfs's console script module, before click, and
    every answer is the one `python -m avfs_git` (site at start-up) gives."""
    vault.workspace("main").write("a.txt", b"one\n")
    script = _launcher(tmp_path)
    env = {**os.environ, "AVFS_SERVER": "off", "AVFS_VAULT": "v:main"}
    for args in (
        ["--json", "status"],
        ["status"],
        ["cat", "a.txt"],
        ["--json", "log"],
        ["nope"],
        ["--version"],
    ):
        got = _run([script, *args], env)
        assert got == _run([sys.executable, "-m", "avfs_git", *args], env), args
    code, out, err = _run([script, "--json", "status"], {**env, "PYTHONPROFILEIMPORTTIME": "1"})
    assert code == 0 and json.loads(out)["kind"] == "status"
    names = _imports(err)
    # (status is parsed without click since the twenty-first round: cli/fastcli.py)
    assert names.index("avfs_git.cli.execopts") < names.index("site") and "click" not in names
    code, _out, err = _run([script, "nope"], {**env, "PYTHONPROFILEIMPORTTIME": "1"})
    names = _imports(err)
    assert code != 0 and names.index("avfs_git.cli.execopts") < names.index("site") < names.index("click")


def test_a_served_call_imports_no_site(home: Home, vault: Vault, tmp_path: Path) -> None:
    """With the home's server up, the call imports neither site nor click, and answers as
    a direct call does."""
    vault.workspace("main").write("a.txt", b"one\n")
    script = _launcher(tmp_path)
    on = {**os.environ, "AVFS_SERVER": "auto", "AVFS_VAULT": "v:main"}
    off = {**on, "AVFS_SERVER": "off"}
    _run([script, "status"], on)  # direct; starts the server
    end = time.monotonic() + 60
    while not _answers(home.path):
        assert time.monotonic() < end, "no server"
        time.sleep(0.05)
    try:
        for args in (["--json", "status"], ["cat", "a.txt"], ["--json", "diff"], ["write", "b.txt", "two"]):
            got = _run([script, *args], on)
            assert got[0] == 0, (args, got)
            if args[0] != "write":
                assert got == _run([script, *args], off), args
        assert vault.workspace("main").read("b.txt") == b"two"
        code, out, err = _run([script, "--json", "status"], {**on, "PYTHONPROFILEIMPORTTIME": "1"})
        assert code == 0 and json.loads(out)["kind"] == "status"
        names = _imports(err)
        # the console script's module alone, loaded by its path: not even avfs's packages
        # (their search on sys.path and their __init__ cost ~0.3 ms a call)
        assert not {"avfs_git", "avfs_git.cli", "avfs_git.cli.client", "avfs_git.cli.execopts"} & set(names)
        assert not {"site", "os", "click", "pygit2", "signal", "array", "typing", "__future__"} & set(
            names
        ), names
        # with PYTHONPATH set, the avfs found there is the one that runs: imported as any
        code, out, err = _run(
            [script, "--json", "status"],
            {**on, "PYTHONPROFILEIMPORTTIME": "1", "PYTHONPATH": launcher.package_root()},
        )
        assert code == 0 and json.loads(out)["kind"] == "status"
        assert "avfs_git.cli.client" in _imports(err)
    finally:
        pid = int(Path(home.path, warm.RUN_DIR, warm.PID_FILE).read_text())
        os.kill(pid, signal.SIGTERM)


def test_proxy_exec_in_process_through_the_script(home: Home, vault: Vault, tmp_path: Path) -> None:
    """`proxy exec` on a fork that is not mounted runs in the calling process: pygit2 and
    the sandbox come through site, which the script did not load."""
    _need_bwrap()
    script = _launcher(tmp_path)
    env = {**os.environ, "AVFS_SERVER": "off", "AVFS_VAULT": "v:main"}
    code, out, err = _run([script, "--json", "proxy", "exec", "--", "sh", "-c", "echo hi > e.txt"], env)
    doc = json.loads(out)
    assert code == 0 and doc["kind"] == "proxy_exec_result", (doc, err)
    assert vault.workspace("main").read("e.txt") == b"hi\n"


def test_a_warm_proxy_exec_imports_nothing_beyond_the_client(
    home: Home, vault: Vault, tmp_path: Path
) -> None:
    """With the fork mounted, `proxy exec` through the script goes to the mount's daemon
    with built-in modules only (cli/execclient.py: no os, no site, no registry), and
    answers as the in-process fast path (cli/execopts.py) does for the same daemon: the
    envelope, the human rendering with the command's exit code, stdin passed on, a
    request error's envelope."""
    _need_bwrap()
    require_fuse()
    script = _launcher(tmp_path)
    env = {**os.environ, "AVFS_SERVER": "off", "AVFS_VAULT": "v:main"}
    in_process = "import sys; from avfs_git.cli.execopts import main; sys.argv[0] = 'avfs'; sys.exit(main(sys.argv[1:]))"
    info = mounts.mount(home, vault, "main", None)
    try:
        code, out, err = _run(
            [script, "--json", "proxy", "exec", "--", "true"], {**env, "PYTHONPROFILEIMPORTTIME": "1"}
        )
        doc = json.loads(out)
        assert code == 0 and doc["success"] and doc["mount"]["reused"], doc
        names = _imports(err)
        assert "avfs_git.cli.execclient" in names, names
        assert not {"site", "os", "avfs_git.cli.execopts", "avfs_git.core.vaults.registry", "click"} & set(
            names
        )
        for args, stdin in (
            (["--json", "proxy", "exec", "--", "sh", "-c", "echo out; echo err >&2; exit 3"], b""),
            (["proxy", "exec", "--", "sh", "-c", "echo out; exit 3"], b""),
            (["--json", "proxy", "exec", "--stdin", "--", "cat"], b"fed through\n"),
            (["--json", "proxy", "exec", "--env", "NOEQUALS", "--", "true"], b""),
        ):
            a = _run([script, *args], env, stdin)
            b = _run([sys.executable, "-c", in_process, *args], env, stdin)
            assert a[0] == b[0], (args, a, b)
            if args[0] == "--json":
                da, db = json.loads(a[1]), json.loads(b[1])
                for d in (da, db):
                    if d.get("result"):
                        d["result"].pop("duration_ms")
                assert (da["success"], da["exit_code"], da.get("result"), da.get("error")) == (
                    db["success"],
                    db["exit_code"],
                    db.get("result"),
                    db.get("error"),
                ), args
            else:
                assert a[1] == b[1] == b"out\n" and b"exit 3" in a[2] and b"exit 3" in b[2], (a, b)
        assert (
            json.loads(_run([script, "--json", "proxy", "exec", "--stdin", "--", "cat"], env, b"x\n")[1])[
                "result"
            ]["stdout"]
            == "x\n"
        )
    finally:
        mounts.unmount(home, vault, "main", lazy=True)
    assert info.pid > 0


def test_a_long_or_spaced_interpreter_path_goes_through_sh(home: Home, vault: Vault, tmp_path: Path) -> None:
    """The kernel reads 127 bytes of a #! line: a longer path (or one with a space) takes
    pip's shell trampoline, and the script still runs with -S."""
    d = tmp_path / ("a dir " + "x" * 130)
    d.mkdir()
    py = d / "python"  # (a wrapper: a symlink would leave the venv behind)
    py.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    py.chmod(0o755)
    script = _launcher(tmp_path, python=str(py))
    assert Path(script).read_text().startswith("#!/bin/sh\n")
    env = {**os.environ, "AVFS_SERVER": "off", "AVFS_VAULT": "v:main", "PYTHONPROFILEIMPORTTIME": "1"}
    code, out, err = _run([script, "--json", "status"], env)
    assert code == 0 and json.loads(out)["kind"] == "status", err
    names = _imports(err)
    assert names.index("avfs_git.cli.execopts") < names.index("site")


@pytest.mark.parametrize("args", [[], ["-x"], ["a", "b"]])
def test_bad_usage_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert launcher.main(args) == 2
    assert not any(empty.iterdir())
