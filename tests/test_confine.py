"""Confinement: every `proxy exec` command in a bubblewrap sandbox by default (real bwrap,
real FUSE mounts, real processes). Each check runs inside the sandbox, as a script the
command runs from the fork (so the classifier, which refuses some of these command lines
on sight, is not what stops them: the sandbox is)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts
from avfs_git.policy import Policy
from avfs_git.proxy import approval, confine
from avfs_git.proxy.envelope import ExecRequest, ExecResult
from avfs_git.proxy.execute import execute

from .conftest import skip_outside_ci
from .test_fuse import require_fuse
from .test_json_schemas import validate


def _need_bwrap() -> None:
    why = confine.unavailable()
    if why is None:
        return
    skip_outside_ci(
        f"bubblewrap unavailable here: {why}", f"bubblewrap must work for these tests in CI: {why}"
    )


@pytest.fixture
def fork(home: Any, vault: Any) -> Iterator[Any]:
    require_fuse()
    _need_bwrap()
    vault.workspace("main").write("README", b"a project\n")
    checkpoint.save(vault, name="base")
    yield vault
    mounts.unmount(home, vault, "main", lazy=True)


@pytest.fixture
def canaries(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """A canary in the temp $HOME (conftest points HOME there), one in a /root-like
    directory outside /tmp (the sandbox's /tmp is private anyway), and one beside the
    vaults in the avfs home."""
    home = Path(os.environ["HOME"])
    (home / ".ssh").mkdir(exist_ok=True)
    (home / ".ssh" / "id_rsa").write_text("HOME-CANARY\n")
    rootlike = Path(tempfile.mkdtemp(prefix="avfs-rootlike-", dir="/var/tmp"))
    rootlike.chmod(0o755)
    (rootlike / "secret").write_text("ROOT-CANARY\n")
    avfs_home = Path(os.environ["AVFS_HOME"])
    avfs_home.mkdir(exist_ok=True)
    (avfs_home / "canary").write_text("AVFS-CANARY\n")
    try:
        yield {
            "home": home / ".ssh" / "id_rsa",
            "root": rootlike / "secret",
            "avfs": avfs_home / "canary",
        }
    finally:
        shutil.rmtree(rootlike, ignore_errors=True)


def _script(home: Any, vault: Any, name: str, text: str) -> None:
    """Put a script into the fork (through the workspace API: no exec involved)."""
    vault.workspace("main").write(name, text.encode())


def _exec(home: Any, vault: Any, argv: tuple[str, ...] = (), **kw: Any) -> ExecResult:
    kw.setdefault("commit", False)
    if "shell" in kw:
        return execute(home, vault, "main", ExecRequest(**kw))
    return execute(home, vault, "main", ExecRequest(argv=argv, **kw))


def _out(res: ExecResult) -> str:
    assert res.result is not None, res.error
    return str(res.result.stdout)


def test_confined_by_default_and_the_envelope_says_so(home, fork):
    res = _exec(home, fork, ("true",))
    assert res.success, res.error
    conf = res.to_dict()["confinement"]
    assert conf is not None and conf["kind"] == "bwrap" and conf["requested"] == "confined"
    assert conf["network"] == "none" and conf["reason"] is None
    assert conf["path"] == "/avfs/v"  # every fork of the vault at one path (docs/proxy.md)
    doc = json.loads(json.dumps({"schema_version": 1, "kind": "proxy_exec_result", **res.to_dict()}))
    assert validate(doc) == "proxy_exec_result"
    host = _exec(home, fork, ("true",), confine=False)
    assert host.to_dict()["confinement"] == {
        "kind": "host",
        "requested": "writable",
        "network": "host",
        "reason": None,
    }
    from avfs_git.core.vaults import audit

    assert [r.get("confinement") for r in audit.read(fork.state_dir)][-2:] == ["bwrap/none", "host/host"]


PROBE = r"""
import os, sys
paths = open(sys.argv[1]).read().split("\n")
for p in filter(None, paths):
    try:
        with open(p) as fh:
            print("READ", p, fh.read().strip())
    except OSError as exc:
        print("DENIED", p, type(exc).__name__)
"""


def test_host_secrets_are_not_there(home, fork, canaries):
    """cat, python's open(), a symlink an earlier command wrote into the fork,
    /proc/*/root, and `..` from the mountpoint: none of them reach a canary."""
    mp = mounts.mount(home, fork, "main", None).mountpoint
    ups = os.path.relpath("/", mp)  # ../../.. up to / from the mountpoint
    targets = [str(p) for p in canaries.values()]
    # an earlier command leaves symlinks to the canaries in the fork
    _script(home, fork, "mk.sh", "".join(f"ln -s {t} link{i}\n" for i, t in enumerate(targets)))
    made = _exec(home, fork, ("sh", "mk.sh"), commit=True)
    assert made.success and len(made.changes) == len(targets), (made.result, made.error)
    via = [
        *targets,
        *(f"link{i}" for i in range(len(targets))),
        *(os.path.join(ups, t.lstrip("/")) for t in targets),
        *(f"/proc/{pid}/root{t}" for pid in ("1", "self", "2") for t in targets),
        "/etc/shadow",
        "/etc/gshadow",
    ]
    _script(home, fork, "probe.py", PROBE)
    _script(home, fork, "paths", "\n".join(via))
    res = _exec(home, fork, ("python3", "probe.py", "paths"))
    out = _out(res)
    assert "CANARY" not in out and "READ" not in out.replace("READ /etc/shadow \n", ""), out
    for p in via:
        assert f"DENIED {p} " in out or f"READ {p} \n" in out + "\n", (p, out)
    _script(home, fork, "probe.sh", "".join(f"cat {p}\n" for p in via))
    res = _exec(home, fork, ("sh", "probe.sh"))
    assert "CANARY" not in _out(res) + res.result.stderr
    # the same probe on the host as it is (--host writable) reads them: the test can fail
    _script(home, fork, "paths", "\n".join(targets))
    host = _exec(home, fork, ("python3", "probe.py", "paths"), confine=False)
    assert all(f"READ {t}" in _out(host) for t in targets), _out(host)


def test_writes_outside_the_fork_fail_and_inside_are_committed(home, fork, canaries):
    root = canaries["root"].parent
    _script(
        home,
        fork,
        "w.sh",
        f"for d in {root} /usr /etc /var/tmp {os.environ['AVFS_HOME']}; do\n"
        '  if echo x > "$d/written" 2>/dev/null; then echo "WROTE $d"; else echo "REFUSED $d"; fi\n'
        "done\n"
        "echo inside > inside.txt; echo private > /tmp/t && echo TMP\n",
    )
    res = _exec(home, fork, ("sh", "w.sh"), commit=True)
    out = _out(res)
    # refused: the /root-like directory, /usr, /etc; /tmp and /var/tmp (the avfs home is
    # under /tmp here) are the sandbox's own: nothing reaches the host's
    assert all(f"REFUSED {d}" in out for d in (root, "/usr", "/etc")) and "TMP" in out, out
    for d in (root, "/usr", "/etc", "/var/tmp", os.environ["AVFS_HOME"]):  # what the host has
        assert not Path(d, "written").exists(), d
    assert not Path("/tmp/t").exists()
    assert [c.path for c in res.changes] == ["inside.txt"] and res.commit is not None
    assert fork.workspace("main").read("inside.txt") == b"inside\n"


def test_git_works_in_the_confined_fork(home, fork):
    res = _exec(home, fork, shell="echo more >> README && git status --short && git diff --stat")
    assert res.success and " M README" in _out(res), (res.result, res.error)
    assert "fatal" not in res.result.stderr, res.result
    # avfs's own state in the vault (mount registry, exec sockets' names, audit) is not shown
    state = fork.state_dir
    assert os.listdir(os.path.join(state, "mounts"))  # the host has it
    # but for the mount's fsmonitor hook, socket, git hooks and gates, shown read-only at their paths
    res = _exec(
        home, fork, shell=f"ls -A {state}/mounts {state}/mounts/main.d; ls {os.path.dirname(fork.path)}"
    )
    lines = _out(res).split()
    assert lines == [
        f"{state}/mounts:", "main.d", f"{state}/mounts/main.d:", "avfs-fsmonitor.sock", "fsmonitor-hook",
        "gates", "hooks", os.path.basename(fork.path),
    ], lines  # fmt: skip


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"HELLO-FROM-HOST")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def test_network_only_as_the_policy_allows(home, fork, server):
    fetch = (
        f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{server}/').read().decode())"
    )
    _script(home, fork, "fetch.py", fetch)
    res = _exec(home, fork, ("python3", "fetch.py"))  # not classified networked: no network
    assert res.confinement.network == "none"
    assert res.result.exit_code != 0 and "HELLO" not in _out(res)
    # classified networked, and the policy lets it run: the host's network
    pol = Policy.from_text('version = 1\n[outcomes]\nnetworked = "allow"\n')
    res = execute(home, fork, "main", ExecRequest(argv=("curl", "-s", f"http://127.0.0.1:{server}/"), commit=False),
                  policy=pol)  # fmt: skip
    if shutil.which("curl") is not None:
        assert res.confinement.network == "host" and "HELLO-FROM-HOST" in _out(res), res.result
    # the policy gives every confined command the network
    pol = Policy.from_text('version = 1\n[defaults]\nnetwork = "host"\n')
    res = execute(home, fork, "main", ExecRequest(argv=("python3", "fetch.py"), commit=False), policy=pol)
    assert res.confinement.network == "host" and "HELLO-FROM-HOST" in _out(res), res.result


def test_agent_and_docker_sockets_are_absent(home, fork, tmp_path, monkeypatch):
    agent = Path(tempfile.mkdtemp(prefix="avfs-agent-", dir="/var/tmp"))
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(agent / "agent.sock"))
        monkeypatch.setenv("SSH_AUTH_SOCK", str(agent / "agent.sock"))
        _script(home, fork, "s.sh", 'echo "var=${SSH_AUTH_SOCK:-unset}"; for p in "$0" /var/run/docker.sock /run/docker.sock '
                f'{agent}/agent.sock; do [ -e "$p" ] && echo "THERE $p" || echo "ABSENT $p"; done\n')  # fmt: skip
        res = _exec(home, fork, ("sh", "s.sh"), inherit_env=True)
        out = _out(res)
        assert "var=unset" in out and "THERE /" not in out and out.count("ABSENT") == 3, out
        host = _exec(home, fork, ("sh", "s.sh"), inherit_env=True, confine=False)
        assert f"THERE {agent}/agent.sock" in _out(host)
        sock.close()
    finally:
        shutil.rmtree(agent, ignore_errors=True)


def test_host_writable_restores_the_unconfined_run(home, fork, canaries, cli):
    target = canaries["root"].parent / "from-exec"
    _script(home, fork, "w.py", f"open({str(target)!r}, 'w').write('x')\n")
    r = cli(
        "--json",
        "--vault",
        "v:main",
        "proxy",
        "exec",
        "--host",
        "writable",
        "--no-commit",
        "--",
        "python3",
        "w.py",
    )
    doc = r.json()
    assert r.code == 0 and doc["confinement"]["kind"] == "host" and target.read_text() == "x", doc
    target.unlink()
    r = cli("--json", "--vault", "v:main", "proxy", "exec", "--no-commit", "--", "python3", "w.py")
    doc = r.json()
    assert r.code != 0 and doc["confinement"]["kind"] == "bwrap" and not target.exists(), doc


def test_a_confined_command_reaches_no_exec_socket(home, vault, tmp_path, server):
    """Another mount's exec socket (an abstract name, from its registry file): unreachable
    without the network (its own network namespace), and refused by the daemon when the
    command shares the host's network (it is in another PID namespace)."""
    require_fuse()
    _need_bwrap()
    vault.workspace("main").write("README", b"x\n")
    checkpoint.save(vault, name="base")
    vault.create_fork("main", "other")
    try:
        mounts.mount(home, vault, "other", None)
        with open(os.path.join(vault.state_dir, "mounts", "other.exec")) as fh:
            name = fh.read().split("\n")[0]
        marker = tmp_path / "escaped"
        client = (
            "import marshal, socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n"
            f"    s.connect('\\0' + {name!r})\n"
            "except OSError as exc:\n"
            "    print('CONNECT', type(exc).__name__); sys.exit(0)\n"
            "vals = dict(shell=None, cwd='', timeout_ms=None, max_output_bytes=None, checkpoint='auto',"
            " no_commit=True, mode='auto', keep_mount=False, env=(), inherit_env=False, stdin=False,"
            " approve=None, kill_grace_ms=2000, host='writable')\n"
            f"body = marshal.dumps(dict(v=1, values=vals, argv=['touch', {str(marker)!r}], env={{}}))\n"
            "try:\n"
            "    s.sendall(b'%08d' % len(body) + body)\n"
            "    print('REPLY', repr(s.recv(1 << 16)[:40]))\n"
            "except OSError:\n"  # refused: reset, or a broken pipe while sending
            "    print('REPLY', repr(b''))\n"
        )
        vault.workspace("main").write("client.py", client.encode())
        res = execute(home, vault, "main", ExecRequest(argv=("python3", "client.py"), commit=False))
        assert "CONNECT" in _out(res) and not marker.exists(), res.result
        pol = Policy.from_text('version = 1\n[defaults]\nnetwork = "host"\n')
        res = execute(
            home, vault, "main", ExecRequest(argv=("python3", "client.py"), commit=False), policy=pol
        )
        assert res.confinement.network == "host"
        assert "REPLY b''" in _out(res) and not marker.exists(), res.result.stderr
        # the same client on the host is served (the test can fail)
        proc = subprocess.run([sys.executable, "-c", client], capture_output=True, text=True, timeout=60)
        assert "REPLY b'" in proc.stdout and "REPLY b''" not in proc.stdout, proc  # answered
    finally:
        for f in ("main", "other"):
            mounts.unmount(home, vault, f, lazy=True)


def test_approval_is_impossible_from_inside(home, fork, canaries):
    """The MCP self-approval scenario: exec of a command that needs approval returns a
    token; the agent then asks exec to run `avfs proxy approve --yes TOKEN` itself. Inside
    the sandbox the avfs home (approvals) is not there and avfs cannot run; the token stays
    unapproved and the held request is refused."""
    req = ExecRequest(argv=("git", "push", "origin", "main"), commit=False, require_person_approval=True)
    held = execute(home, fork, "main", req)
    token = held.approval.token
    rec_path = Path(home.path) / "approvals" / f"{token}.json"
    assert stat.S_IMODE(rec_path.stat().st_mode) == 0o600
    shell = (
        f"ls {home.path}/approvals; cat {rec_path}; "
        f"env -u AVFS_WORKSPACE avfs --home {home.path} proxy approve --yes {token}; "
        f"env -u AVFS_WORKSPACE {sys.executable} -m avfs_git --home {home.path} proxy approve --yes {token}; "
        "echo done"
    )
    _script(home, fork, "approve.sh", shell)
    res = execute(home, fork, "main", ExecRequest(argv=("sh", "approve.sh"), commit=False,
                                                  require_person_approval=True))  # fmt: skip
    out = _out(res)
    assert token not in out and "done" in out and "approved" not in out, res.result
    assert approval.load(home.path, token)["approved"] is None
    again = execute(home, fork, "main", ExecRequest(argv=("git", "push", "origin", "main"), commit=False,
                                                    approve=token, require_person_approval=True))  # fmt: skip
    assert again.result is None and again.error is not None and again.error.code == "approval_refused"


def test_env_values_are_not_in_the_approval_record(home, fork):
    req = ExecRequest(argv=("git", "push", "origin", "main"), env=(("TOKEN", "s3cr3t-value"),), commit=False)
    held = execute(home, fork, "main", req)
    path = Path(home.path) / "approvals" / f"{held.approval.token}.json"
    text = path.read_text()
    assert "s3cr3t-value" not in text and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(text)["request"]["env"][0][0] == "TOKEN"


def test_caches_the_policy_names_are_per_vault_and_writable(home, fork):
    _script(
        home,
        fork,
        "c.sh",
        'echo "$PIP_CACHE_DIR"; echo x > "$PIP_CACHE_DIR/probe" && echo WROTE; echo "${CARGO_HOME:-none}"',
    )
    res = _exec(home, fork, ("sh", "c.sh"))
    out = _out(res).split()
    assert (
        out[0] == os.path.join(fork.state_dir, "caches", "pip") and out[1] == "WROTE" and out[2] == "none"
    ), out
    assert Path(out[0], "probe").read_text() == "x\n"
    assert res.confinement.caches == ("pip", "npm")
    pol = Policy.from_text('version = 1\n[defaults]\ncaches = ["cargo"]\n')
    res = execute(home, fork, "main", ExecRequest(shell='echo "${PIP_CACHE_DIR:-none} $CARGO_HOME"', commit=False),
                  policy=pol)  # fmt: skip
    assert _out(res).split() == ["none", os.path.join(fork.state_dir, "caches", "cargo")]


def test_a_bad_network_setting_is_refused_with_the_line():
    from avfs_git.core.errors import PolicyError

    with pytest.raises(PolicyError) as got:
        Policy.from_text('version = 1\n[defaults]\nnetwork = "some"\n', "p.toml")
    assert got.value.details["line"] == 3
    with pytest.raises(PolicyError):
        Policy.from_text('version = 1\n[defaults]\ncaches = ["maven"]\n', "p.toml")


def test_background_processes_end_with_the_command(home, fork):
    tag = f"avfs-confine-bg-{os.getpid()}"
    res = _exec(home, fork, shell=f"python3 -c 'import time; time.sleep(60)' {tag} & echo started")
    assert "started" in _out(res)
    left = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if tag.encode() in fh.read():
                    left.append(pid)
        except OSError:
            pass
    assert not left, left


def test_missing_program_and_exit_codes_pass_through(home, fork):
    res = _exec(home, fork, ("no-such-program-x",))
    assert res.result is not None and res.result.exit_code == 127 and res.result.spawn_error, res.result
    res = _exec(home, fork, shell="exit 7")
    assert res.exit_code == 7


def test_a_program_the_sandbox_does_not_show_says_where_it_is_on_the_host(home, fork, tmp_path):
    """proxy.md's `exec_in(ws, ["pytest", "-q"])` with pytest in the venv of avfs's own
    checkout (on PATH, outside /usr): "pytest: No such file or directory", exit 127, and no
    word that the sandbox does not show it. The host's path is named, and what to do."""
    bindir = tmp_path / "venv-bin"
    bindir.mkdir()
    tool = bindir / "avfs-test-only-here"
    tool.write_text("#!/bin/sh\necho ran\n")
    tool.chmod(0o755)
    path = f"{bindir}:{os.environ.get('PATH', os.defpath)}"
    res = _exec(home, fork, ("avfs-test-only-here",), env=(("PATH", path),))
    assert res.result is not None and res.result.exit_code == 127, res.to_dict()
    err = res.result.spawn_error or ""
    assert err.startswith("avfs-test-only-here: No such file or directory"), err
    assert f"on the host it is {tool}, which the sandbox does not show" in err
    assert "--host writable" in err
    res = _exec(
        home, fork, ("no-such-program-x",), env=(("PATH", path),)
    )  # nowhere: how a project's is named
    assert res.result is not None and res.result.spawn_error == (
        "no-such-program-x: No such file or directory (on no PATH: a project's own is named by its path,"
        " ./node_modules/.bin/no-such-program-x or .venv/bin/no-such-program-x, or run by npx no-such-program-x)"
    )


def test_isolate_at_the_project_path_is_confined_too(home, fork, tmp_path):
    proj = Path(tempfile.mkdtemp(prefix="avfs-proj-", dir="/var/tmp"))
    try:
        (proj / "host-only.txt").write_text("the host's\n")
        res = _exec(home, fork, shell="pwd; ls", isolate="confined", isolate_at=str(proj))
        assert res.confinement.kind == "bwrap" and res.confinement.path == str(proj)
        assert res.isolation.active and res.isolation.method == "bwrap"
        assert _out(res).split() == [str(proj), "README"], _out(res)
        assert sorted(os.listdir(proj)) == ["host-only.txt"]
    finally:
        shutil.rmtree(proj, ignore_errors=True)


def test_without_bwrap_it_fails_closed_unless_the_policy_accepts_the_fallback(home, fork, monkeypatch):
    """Simulated: the probe (what the choice rests on) says bwrap is missing. A confined
    command is refused (fail closed); with the policy's confine = "namespace", the hand-made
    hidden view runs it, and the envelope says so and why; where namespaces are missing too,
    it is refused again (never run on the host)."""
    from avfs_git.proxy import isolate

    monkeypatch.setattr(confine, "_probe", lambda: "bubblewrap is not installed")
    Path(os.environ["HOME"], "canary.txt").write_text("HOME-CANARY\n")
    _script(home, fork, "p.sh", 'cat "$HOME/canary.txt"; echo ran\n')
    res = _exec(home, fork, ("sh", "p.sh"))
    conf = res.to_dict()["confinement"]
    assert conf is not None and conf["kind"] == "none" and "not installed" in conf["reason"], conf
    assert res.exit_code == 125 and res.result is None and res.error.code == "sandbox_unavailable"
    pol = Policy.from_text('version = 1\n[defaults]\nconfine = "namespace"\n')
    res = execute(home, fork, "main", ExecRequest(argv=("sh", "p.sh"), commit=False), policy=pol)
    conf = res.to_dict()["confinement"]
    assert conf is not None and conf["kind"] == "namespace" and "not installed" in conf["reason"], conf
    assert "ran" in _out(res) and "CANARY" not in _out(res), res.result
    monkeypatch.setattr(isolate, "_probe", lambda: "no namespaces here")
    res = execute(home, fork, "main", ExecRequest(argv=("true",), commit=False), policy=pol)
    conf = res.to_dict()["confinement"]
    assert conf is not None and conf["kind"] == "none" and "no namespaces here" in conf["reason"], conf
    assert res.exit_code == 125 and res.result is None


def test_tmpdir_outside_tmp_points_at_the_private_tmp(home, fork, monkeypatch):
    monkeypatch.setenv("TMPDIR", "/var/tmp")
    res = _exec(home, fork, shell='echo "$TMPDIR"')
    assert _out(res) == "/tmp\n"


def test_readable_paths_the_policy_names_are_shown_read_only(home, fork, canaries):
    tools = canaries["root"].parent / "tools"
    tools.mkdir()
    (tools / "tool.sh").write_text("echo TOOL-RAN\n")
    text = (
        "version = 1\n[defaults]\n"
        f'readable = ["{tools}", "~/", "{os.environ["AVFS_HOME"]}", "{os.path.dirname(home.path)}"]\n'
    )
    pol = Policy.from_text(text)
    _script(
        home,
        fork,
        "t.sh",
        f'sh {tools}/tool.sh; echo x > {tools}/w || echo REFUSED; cat "$HOME/.ssh/id_rsa"; ls {home.path}/canary\n',
    )
    res = execute(home, fork, "main", ExecRequest(argv=("sh", "t.sh"), commit=False), policy=pol)
    out = _out(res)
    # shown, read-only; the home (~/ holds ~/.ssh) and the avfs home, or what holds it, never
    assert "TOOL-RAN" in out and "REFUSED" in out and "CANARY" not in out, (out, res.result)
    assert not (tools / "w").exists()
    assert "canary" not in out


def test_a_root_command_keeps_few_capabilities(home, fork):
    if os.geteuid() != 0:
        skip_outside_ci(
            "as another user the sandbox's user namespace gives no capabilities at all",
            "CI runs as root: a root command's capabilities must be tested",
        )
    from avfs_git.proxy import isolate

    res = _exec(home, fork, shell="grep -E '^(Cap(Eff|Prm)|NoNewPrivs)' /proc/self/status")
    caps = dict(line.split(":\t") for line in _out(res).splitlines())
    # the set the hand-made views keep, and CAP_NET_RAW and CAP_NET_BIND_SERVICE in its own
    # network namespace
    want = sum(1 << c for c in isolate.KEPT_CAPS | {10, 13})
    assert int(caps["CapEff"], 16) == want and int(caps["CapPrm"], 16) == want, caps
    assert not want & (1 << 21)  # no CAP_SYS_ADMIN: no remounting its way out
    # bwrap leaves the bounding set as it is, but sets no_new_privs: no program it runs
    # (setuid, or with file capabilities) gets more than this
    assert caps["NoNewPrivs"] == "1", caps


def test_over_mcp_the_agent_cannot_approve_itself_through_a_script(vault, home):
    """The issue's MCP scenario, with the classifier out of the way (a script in the fork,
    which it cannot read): exec of a command that needs approval returns a token; exec of a
    script that runs `avfs proxy approve --yes TOKEN` (by every path avfs is at on the host)
    finds neither avfs nor the approvals; the held request stays refused."""
    _need_bwrap()
    from .test_mcp import POLICY, ok, serve

    Path(home.path, "policy.toml").write_text(POLICY)
    avfs = str(Path(sys.executable).parent / "avfs")
    touch = {"argv": ["touch", "approved.txt"], "mode": "materialized"}

    async def body(s: Any) -> None:
        token = (await ok(s, "exec", **touch))["approval"]["token"]
        script = (
            f"env -u AVFS_WORKSPACE {avfs} --home {home.path} proxy approve --yes {token}\n"
            f"env -u AVFS_WORKSPACE {sys.executable} -m avfs_git --home {home.path} proxy approve --yes {token}\n"
            f"ls {home.path}/approvals\n"
            "echo tried\n"
        )
        await ok(s, "write_file", path="approve.sh", content=script)
        ran = await ok(s, "exec", argv=["sh", "approve.sh"], mode="materialized")
        assert ran["confinement"]["kind"] == "bwrap" and "tried" in ran["result"]["stdout"], ran
        assert token not in ran["result"]["stdout"], ran["result"]
        held = await ok(s, "exec", **touch, approve=token)
        assert held["result"] is None and held["error"]["code"] == "approval_refused", held

    serve(home, body)
    assert approval.load(home.path, token_of(home))["approved"] is None


def token_of(home: Any) -> str:
    """The one live token in ``home`` (the test issued exactly one)."""
    (live,) = [p.stem for p in Path(home.path, "approvals").glob("apv_*.json")]
    return live
