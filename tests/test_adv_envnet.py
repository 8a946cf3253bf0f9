"""The boundary's environment, its fallback and its network, from the attacker's side (real
bwrap, real FUSE mounts, real CLI, MCP and daemon processes, a real preload library).

- The environment a caller gives a command (``proxy exec --env``, with ``--stdin`` too, MCP
  ``exec``'s ``env``, the API's ``env=``) reaches only the command, inside the sandbox:
  bwrap and every other process avfs starts on the host get an environment avfs builds. A
  library passed as ``LD_PRELOAD`` writes a canary on the host from its constructor, and
  tries to write the approval marker of a held request (the self-approval chain): it must
  run in the command (it says so on stderr), never in bwrap or on the host.
- Without bubblewrap a confined command is refused (one envelope, exit 125, naming it),
  unless the policy accepts the weaker view (``confine = "namespace"``).
- The filtered network: a name that resolves to a local or private address (loopback, the
  host's own interface address, private ranges, IPv6 forms of them) is refused unless that
  address itself is allowed, and what is connected to is the address that was checked.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import avfs_git
from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts
from avfs_git.policy import Policy
from avfs_git.proxy import approval, confine, netproxy
from avfs_git.proxy.envelope import ExecRequest, ExecResult
from avfs_git.proxy.execute import execute

from .conftest import skip_outside_ci
from .test_confine import _need_bwrap
from .test_fuse import require_fuse
from .test_json_schemas import validate
from .test_mcp import ok, serve

PRELOAD_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void avfs_canary(void) {
    char exe[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    char path[1024];
    snprintf(path, sizeof path, "%s/%d", CANARY_DIR, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        dprintf(fd, "%s\n", exe);
        close(fd);
    }
    dprintf(2, "PRELOADED:%s\n", exe);
    const char *mark = getenv("AVFS_TEST_APPROVE");
    if (mark && *mark) {
        fd = open(mark, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dprintf(fd, "{\"approved_by\": \"person\", \"approved_at\": \"2026-01-01T00:00:00Z\", \"uid\": %d}",
                    (int)getuid());
            close(fd);
        }
    }
}
"""

# the home's policy: the library's directory shown read-only in the sandbox (so the command
# can load it, as it could one in its fork), network-classed commands held for approval
POLICY = """\
version = 1
[defaults]
readable = [{lib}]
{extra}
[outcomes]
networked = "require_approval"
"""


@pytest.fixture
def preload(tmp_path: Path) -> dict[str, Path]:
    """A preload library whose constructor writes a canary into a host directory (one the
    sandbox does not show: under the host's /tmp) and says where it ran on stderr."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        skip_outside_ci("no C compiler here", "a C compiler must be installed for these tests in CI")
    lib, canary = tmp_path / "lib", tmp_path / "host-canary"
    lib.mkdir()
    canary.mkdir()
    src = lib / "x.c"
    src.write_text(PRELOAD_C)
    so = lib / "x.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", f'-DCANARY_DIR="{canary}"', "-o", str(so), str(src)],
        check=True,
        capture_output=True,
    )
    return {"so": so, "canary": canary, "lib": lib}


def _policy_file(home: Any, preload: dict[str, Path], extra: str = "") -> None:
    Path(home.path).mkdir(parents=True, exist_ok=True)
    Path(home.path, "policy.toml").write_text(POLICY.format(lib=json.dumps(str(preload["lib"])), extra=extra))


@pytest.fixture
def fork(home: Any, vault: Any, preload: dict[str, Path]) -> Iterator[Any]:
    require_fuse()
    _need_bwrap()
    _policy_file(home, preload)
    vault.workspace("main").write("README", b"a project\n")
    vault.workspace("main").write("x.so", preload["so"].read_bytes())
    checkpoint.save(vault, name="base")
    try:
        yield vault
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def _where(stderr: str) -> list[str]:
    return [line.split(":", 1)[1] for line in stderr.splitlines() if line.startswith("PRELOADED:")]


def _contained(stderr: str, canary: Path) -> None:
    """The library ran in the command (it said so) and nowhere on the host: not in bwrap,
    not in any process whose canary would land in the host directory."""
    where = _where(stderr)
    assert where, f"the command itself did not get LD_PRELOAD: {stderr!r}"
    assert not any("bwrap" in w for w in where), where
    assert sorted(p.read_text() for p in canary.iterdir()) == [], "the library ran on the host"


def _envelope(res: ExecResult) -> dict[str, Any]:
    doc = json.loads(json.dumps({"schema_version": 1, "kind": "proxy_exec_result", **res.to_dict()}))
    assert validate(doc) == "proxy_exec_result"
    return doc


SHELL = "echo ran-inside"


@pytest.mark.parametrize("where", ["mounted", "unmounted", "materialized", "filtered"])
def test_an_ld_preload_given_through_the_api_runs_only_in_the_command(home, fork, preload, where):
    extra = ""
    if where == "filtered":
        extra = 'network = "filtered"\nnetwork_allow = ["example.invalid"]'
    _policy_file(home, preload, extra)
    so = str(preload["so"])
    mode = "materialized" if where == "materialized" else "auto"
    if where == "mounted":
        so = os.path.join(mounts.mount(home, fork, "main", None).mountpoint, "x.so")  # the fork's own copy
    res = execute(
        home, fork, "main", ExecRequest(shell=SHELL, env=(("LD_PRELOAD", so),), commit=False, mode=mode)
    )
    doc = _envelope(res)
    assert doc["confinement"]["kind"] == "bwrap", doc["confinement"]
    if where == "filtered":
        assert doc["confinement"]["network"] == "filtered"
    assert res.result is not None and res.result.stdout == "ran-inside\n", res.result
    _contained(res.result.stderr, preload["canary"])
    # the public API's exec_in, as a program embedding avfs calls it
    ws = home.vault("v").workspace("main")
    res = avfs_git.exec_in(ws, shell=SHELL, env={"LD_PRELOAD": so}, commit=False, mode=mode)
    assert res.result is not None and res.result.stdout == "ran-inside\n", res.result
    _contained(res.result.stderr, preload["canary"])


def _cli(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--vault", "v:main", "--json", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        env=env,
    )
    docs = [line for line in proc.stdout.decode().splitlines() if line.strip()]
    assert len(docs) == 1, (proc.stdout, proc.stderr)
    doc = json.loads(docs[0])
    assert doc["exit_code"] == proc.returncode, doc
    assert validate(doc) == "proxy_exec_result"
    return proc.returncode, doc


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_an_ld_preload_given_to_the_cli_runs_only_in_the_command(home, fork, preload, warm):
    """`proxy exec --env LD_PRELOAD=...`, with and without --stdin: cold (the CLI's own
    process starts bwrap, mounting the fork for the call) and warm (the mount's daemon
    serves it, with the client's environment arriving over its socket)."""
    so = str(preload["so"])
    if warm:
        mounts.mount(home, fork, "main", None)
    for stdin in (False, True):
        args = ["proxy", "exec", "--no-commit", "--env", f"LD_PRELOAD={so}"]
        if stdin:
            args.append("--stdin")
        code, doc = _cli(*args, "--", "sh", "-c", "cat; echo ran-inside", stdin=b"fed\n" if stdin else b"")
        assert code == 0 and doc["confinement"]["kind"] == "bwrap", doc
        assert doc["result"]["stdout"] == ("fed\n" if stdin else "") + "ran-inside\n", doc["result"]
        _contained(doc["result"]["stderr"], preload["canary"])


def test_the_mcp_agent_cannot_approve_itself_through_a_preloaded_bwrap(home, fork, preload):
    """The attack found: MCP `exec` with env LD_PRELOAD made the host's bwrap (root) load
    the agent's library, which wrote the approval marker of the agent's held request; the
    held request then ran with no person. Now the library runs only in the sandbox, where
    the avfs home is not there."""
    marker_dir = Path(home.path, "approvals")

    async def body(s: Any) -> None:
        asked = await ok(s, "exec", argv=["git", "push", "origin", "main"], commit=False)
        token = asked["approval"]["token"]
        assert asked["exit_code"] == 126 and asked["error"]["code"] == "approval_required"
        marker = marker_dir / f"{token}.approved"
        for where in ("auto", "materialized"):
            ran = await ok(
                s, "exec", shell=SHELL, commit=False, mode=where,
                env={"LD_PRELOAD": str(preload["so"]), "AVFS_TEST_APPROVE": str(marker)},
            )  # fmt: skip
            assert ran["success"] and ran["result"]["stdout"] == "ran-inside\n", ran
            _contained(ran["result"]["stderr"], preload["canary"])
            assert not marker.exists()
        again = await ok(s, "exec", argv=["git", "push", "origin", "main"], commit=False, approve=token)
        assert again["exit_code"] == 126 and again["result"] is None, again
        assert (
            again["error"]["code"] == "approval_refused" and "not been approved" in again["error"]["message"]
        )

    serve(home, body)
    assert approval.load(home.path, next(iter(marker_dir.glob("apv_*.json"))).stem)["approved"] is None


SITE = """\
import os
with open(os.path.join({canary!r}, "python-%d" % os.getpid()), "w") as fh:
    fh.write("sitecustomize ran\\n")
"""


def test_python_and_git_variables_of_the_caller_reach_no_host_process(home, fork, preload, tmp_path):
    """PYTHONPATH (a sitecustomize), PYTHONSTARTUP, GIT_CONFIG_* (core.fsmonitor, a program
    git runs), GIT_SSH_COMMAND given for the command: avfs's own Python on the host (the
    mount daemon it starts for the call, the warm daemon) and its git (status, the commit of
    what the command changed) never see them; the command does."""
    canary = preload["canary"]
    pylib = tmp_path / "pylib"
    pylib.mkdir()
    (pylib / "sitecustomize.py").write_text(SITE.format(canary=str(canary)))
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {canary}/git-fsmonitor-$$\n")
    hook.chmod(0o755)
    env = {
        "PYTHONPATH": str(pylib),
        "PYTHONSTARTUP": str(pylib / "sitecustomize.py"),
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "core.fsmonitor",
        "GIT_CONFIG_VALUE_0": str(hook),
        "GIT_CONFIG_KEY_1": "core.sshCommand",
        "GIT_CONFIG_VALUE_1": str(hook),
        "GIT_SSH_COMMAND": str(hook),
    }
    show = 'echo "$PYTHONPATH|$GIT_CONFIG_KEY_0|$GIT_SSH_COMMAND"; echo changed > out.txt'
    want = f"{pylib}|core.fsmonitor|{hook}\n"
    # cold: the API mounts the fork for the call (a mount daemon: avfs's Python on the host)
    res = execute(home, fork, "main", ExecRequest(shell=show, env=tuple(env.items())))
    assert res.result is not None and res.result.stdout == want, res.result
    assert res.to_dict()["changes"] == [{"path": "out.txt", "status": "added"}] and res.commit is not None
    assert list(canary.iterdir()) == []
    # warm: the daemon serves it, the variables arriving over its socket
    mounts.mount(home, fork, "main", None)
    args = [a for k, v in env.items() for a in ("--env", f"{k}={v}")]
    code, doc = _cli("proxy", "exec", *args, "--", "sh", "-c", show.replace("changed", "again"))
    assert code == 0 and doc["result"]["stdout"] == want and doc["commit"] is not None, doc
    assert list(canary.iterdir()) == []
    # the daemon's own environment has none of them
    info = mounts.check(fork, "main")
    assert info is not None
    with open(f"/proc/{info.pid}/environ", "rb") as fh:
        names = {e.split(b"=", 1)[0].decode() for e in fh.read().split(b"\0") if e}
    assert not names & set(env), names & set(env)


def test_the_environment_is_on_no_host_command_line(home, fork, preload):
    """The command's environment goes to bwrap through a descriptor, not its arguments
    (every user can read /proc/PID/cmdline), and that descriptor is not the command's."""
    secret = "s3cr3t-" + os.urandom(4).hex()
    res = execute(
        home, fork, "main",
        ExecRequest(shell='ls /proc/self/fd | wc -l; echo "$TOKEN"; sleep 0.5', env=(("TOKEN", secret),),
                    commit=False),
    )  # fmt: skip
    assert res.result is not None and res.result.stdout.split()[1] == secret, res.result
    # 0, 1, 2 and the descriptor ls reads the directory with: nothing of bwrap's left open
    assert int(res.result.stdout.split()[0]) == 4, res.result
    args = confine.env_args({"TOKEN": secret, "BAD=NAME": "x", "NUL": "a\0b"})
    assert args.split(b"\0")[:-1] == [b"--clearenv", b"--setenv", b"TOKEN", secret.encode()]


# -- fail closed


def _hidden_bwrap_path(tmp_path: Path) -> str:
    """A PATH that has everything the host's has but bwrap (links to each program)."""
    d = tmp_path / "bin-without-bwrap"
    d.mkdir()
    for src in os.environ.get("PATH", os.defpath).split(":"):
        if not os.path.isdir(src):
            continue
        for name in os.listdir(src):
            if name != "bwrap" and not (d / name).exists():
                (d / name).symlink_to(os.path.join(src, name))
    return str(d)


@pytest.fixture
def no_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    path = _hidden_bwrap_path(tmp_path)
    monkeypatch.setenv("PATH", path)  # (bwrap is looked for once per PATH)
    try:
        assert confine.unavailable() == confine.NOT_INSTALLED
        yield path
    finally:
        monkeypatch.undo()


def test_without_bwrap_a_confined_command_is_refused(home, fork, preload, no_bwrap, tmp_path):
    ws = fork.workspace("main")
    # the CLI, cold: one envelope, exit 125, naming bubblewrap and how to install it
    code, doc = _cli("proxy", "exec", "--", "touch", "ran.txt", env=dict(os.environ))
    assert code == 125 and doc["result"] is None and not ws.exists("ran.txt"), doc
    err = doc["error"]
    assert err["code"] == "sandbox_unavailable" and "bubblewrap" in err["message"], err
    assert "apt-get install bubblewrap" in err["hint"] and 'confine = "namespace"' in err["hint"]
    assert doc["confinement"]["kind"] == "none" and "not installed" in doc["confinement"]["reason"]
    assert doc["decision"]["action"] == "allow"  # the policy allowed it: the sandbox is missing
    # the API, in process (the lookup cache cleared), the same
    res = execute(home, fork, "main", ExecRequest(argv=("touch", "ran.txt")))
    doc = _envelope(res)
    assert res.exit_code == 125 and res.result is None and not ws.exists("ran.txt"), doc
    assert doc["error"]["code"] == "sandbox_unavailable"
    # a command that needs approval gets no token it could never use
    res = execute(home, fork, "main", ExecRequest(argv=("git", "push", "origin", "main")))
    assert res.exit_code == 125 and res.approval is None and res.error.code == "sandbox_unavailable"
    # asked for explicitly, the hand-made views still run as documented
    for flag, host in (("--hide-host", "hidden"), ("--readonly-host", "readonly")):
        code, doc = _cli("proxy", "exec", "--no-commit", flag, "--at", str(tmp_path / "proj"), "--env",
                         "PATH=/usr/bin:/bin", "--", "true", env=dict(os.environ))  # fmt: skip
        assert code == 0 and doc["confinement"]["requested"] == host, doc
    code, doc = _cli("proxy", "exec", "--no-commit", "--host", "writable", "--", "true", env=dict(os.environ))
    assert code == 0 and doc["confinement"]["kind"] == "host", doc


def test_the_policy_may_accept_the_weaker_view_and_the_envelope_says_so(home, fork, preload, no_bwrap):
    _policy_file(home, preload, 'confine = "namespace"')
    Path(os.environ["HOME"], "canary.txt").write_text("HOME-CANARY\n")
    # (the caller's PATH, a directory the view does not show, is not the command's)
    code, doc = _cli("proxy", "exec", "--no-commit", "--env", "PATH=/usr/bin:/bin", "--", "sh", "-c",
                     'cat "$HOME/canary.txt"; echo ran', env=dict(os.environ))  # fmt: skip
    conf = doc["confinement"]
    assert code == 0 and conf["kind"] == "namespace", doc
    assert "not installed" in conf["reason"] and 'confine = "namespace"' in conf["reason"], conf
    assert doc["result"]["stdout"] == "ran\n", doc["result"]  # the home is hidden all the same
    # the environment still reaches only the command there (a library in the fork's mount)
    so = os.path.join(mounts.mount(home, fork, "main", None).mountpoint, "x.so")
    res = execute(
        home, fork, "main",
        ExecRequest(shell=SHELL, env=(("LD_PRELOAD", so), ("PATH", "/usr/bin:/bin")), commit=False),
    )  # fmt: skip
    assert res.confinement.kind == "namespace" and res.result is not None, res.to_dict()
    _contained(res.result.stderr, preload["canary"])


@pytest.mark.parametrize("value", ['"none"', '"host"', "true", '["bwrap"]'])
def test_a_bad_confine_setting_is_refused_with_the_line(value):
    from avfs_git.core.errors import PolicyError

    with pytest.raises(PolicyError) as info:
        Policy.from_text(f"version = 1\n[defaults]\nconfine = {value}\n")
    assert "confine must be" in info.value.message and info.value.details["line"] == 3


# -- the filtered network: what a name resolves to


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"HELLO " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _serve_http(address: str) -> tuple[http.server.ThreadingHTTPServer, int]:
    cls = http.server.ThreadingHTTPServer
    if ":" in address:

        class V6(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6

        cls = V6
    srv = cls((address, 0), _Hello)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


def _ask(path: str, target: str) -> bytes:
    """GET through the filtering proxy's socket, as the sandbox's forwarder relays it."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(path)
    s.sendall(f"GET http://{target}/p HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    return out


def test_a_name_that_resolves_to_loopback_is_refused_unless_its_address_is_allowed():
    srv, port = _serve_http("127.0.0.1")
    try:
        with netproxy.FilterProxy((f"localhost:{port}",)) as p:
            got = _ask(p.path, f"localhost:{port}")
            assert got.startswith(b"HTTP/1.1 403") and b"resolves to 127.0.0.1" in got, got
            assert p.refused == [f"localhost:{port}"]
        with netproxy.FilterProxy((f"localhost:{port}", f"127.0.0.1:{port}")) as p:
            got = _ask(p.path, f"localhost:{port}")
            assert b" 200 OK" in got.split(b"\r\n")[0] and got.endswith(b"HELLO /p"), (
                got
            )  # the address is named
        # other spellings of a loopback address, as names the policy allows
        for name in ("2130706433", "0x7f000001", "127.1", "0"):
            with netproxy.FilterProxy((f"{name}:{port}",)) as p:
                got = _ask(p.path, f"{name}:{port}")
                assert got.startswith(b"HTTP/1.1 403"), (name, got)
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
     "0.0.0.0", "224.0.0.1", "::1", "::", "fe80::1", "fd00::1", "fec0::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
     "::7f00:1", "64:ff9b::7f00:1", "2002:7f00:1::1", "2002:a00:1::1"],
)  # fmt: skip
def test_local_and_private_addresses_in_every_form_are_local(address):
    import ipaddress

    assert netproxy.local_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::ffff:1.1.1.1"]
)
def test_public_addresses_are_not_local(address):
    import ipaddress

    assert netproxy.local_reason(ipaddress.ip_address(address)) is None


# run where a name resolves to what the test says (its own /etc/hosts, in a mount namespace
# of its own): the filtering proxy on the host, a server on ADDRESS, a name the policy
# allows that resolves to it
OWN_ADDRESS_CHECK = """
import http.server, json, socket, sys, threading
from avfs_git.proxy import netproxy
address, name = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "5"); self.end_headers()
        self.wfile.write(b"HELLO")
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer((address, 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
port = srv.server_address[1]
def ask(allow, target):
    with netproxy.FilterProxy(allow) as p:
        s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(p.path)
        s.sendall(("GET http://%s/ HTTP/1.1\\r\\n\\r\\n" % target).encode())
        out = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            out += c
        head, _, body = out.partition(b"\\r\\n\\r\\n")
        return head.split(b"\\r\\n")[0].decode().replace("HTTP/1.0", "HTTP/1.1") + " " + body.decode().strip()
out = {
    "name": ask(("%s:%d" % (name, port),), "%s:%d" % (name, port)),
    "name_and_address": ask(("%s:%d" % (name, port), "%s:%d" % (address, port)), "%s:%d" % (name, port)),
    "address": ask(("%s:%d" % (address, port),), "%s:%d" % (address, port)),
}
print(json.dumps(out))
"""


def _unshare(*flags: str) -> list[str]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        skip_outside_ci(
            "needs root and unshare(1) to give the check a name resolving where it says",
            "CI runs as root with util-linux: the own-address checks must run",
        )
    return ["unshare", *flags]


def _own_address_run(tmp_path: Path, address: str, setup: str, *flags: str) -> dict[str, str]:
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{address} own.test\n")
    script = tmp_path / "check.py"
    script.write_text(OWN_ADDRESS_CHECK)
    shell = f"mount --bind {hosts} /etc/hosts && {setup} exec {sys.executable} {script} {address} own.test"
    proc = subprocess.run(
        [*_unshare("--mount", *flags), "sh", "-c", shell], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def _host_address() -> str | None:
    """A non-loopback address of one of this host's interfaces (IPv4), if it has one."""
    for ip in sorted(netproxy.own_addresses(), key=str):
        if ip.version == 4 and not ip.is_loopback:
            return str(ip)
    return None


def test_a_name_that_resolves_to_the_hosts_own_address_is_refused(tmp_path):
    """The host's own interface address (any, public ones included: the host's services
    listen there) reached by an allowed name: refused, unless the address itself is allowed."""
    address = _host_address()
    if address is not None:
        out = _own_address_run(tmp_path, address, "")
        assert out["name"].startswith("HTTP/1.1 403") and f"resolves to {address}" in out["name"], out
        assert out["name_and_address"] == "HTTP/1.1 200 OK HELLO", out
        assert out["address"] == "HTTP/1.1 200 OK HELLO", out
    # a public address on an interface (a network namespace of the test's own, the address
    # on its loopback device): refused because it is this host's, not for its range
    setup = "ip link set lo up && ip addr add 198.51.100.7/32 dev lo && ip addr add 1.2.3.4/32 dev lo &&"
    out = _own_address_run(tmp_path, "1.2.3.4", setup, "--net")
    assert out["name"].startswith("HTTP/1.1 403") and "an address of this host" in out["name"], out
    assert out["name_and_address"] == "HTTP/1.1 200 OK HELLO", out
    assert out["address"] == "HTTP/1.1 200 OK HELLO", out


def test_the_address_checked_is_the_address_connected_to():
    """One lookup: the addresses the check saw are the ones connected to (a resolver
    answering otherwise the second time, DNS rebinding, has no second time)."""
    srv, port = _serve_http("127.0.0.1")
    calls: list[str] = []
    real = asyncio.BaseEventLoop.getaddrinfo

    async def counting(self: Any, host: Any, *a: Any, **kw: Any) -> Any:
        calls.append(str(host))
        return await real(self, host, *a, **kw)

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(asyncio.BaseEventLoop, "getaddrinfo", counting)
            with netproxy.FilterProxy((f"localhost:{port}", f"127.0.0.1:{port}")) as p:
                got = _ask(p.path, f"localhost:{port}")
        assert got.endswith(b"HELLO /p"), got
        assert calls.count("localhost") == 1 and set(calls) <= {"localhost", "127.0.0.1"}, calls
        assert "127.0.0.1" not in calls  # the checked address, connected to as it is
    finally:
        srv.shutdown()
        srv.server_close()


DNS_PROBE = textwrap.dedent(
    """
    import socket
    try:
        socket.getaddrinfo("localhost.", 80)
        print("resolved-localhost")
    except OSError:
        print("no-localhost")
    try:
        print(socket.getaddrinfo("example.com", 80)[0][4][0])
    except OSError as exc:
        print("NO-DNS", type(exc).__name__)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.sendto(b"q", ("{host}", {port}))
        print("SENT")
        print("ANSWER", s.recv(100))
    except OSError as exc:
        print("UDP", type(exc).__name__)
    """
)


def test_dns_from_inside_goes_nowhere_but_the_forwarder(home, fork, preload):
    """In the filtered network a command resolves nothing itself: its namespace has no
    route; a UDP server on the host's loopback (a resolver's stub listens there) gets
    nothing from it."""
    _policy_file(home, preload, 'network = "filtered"\nnetwork_allow = ["example.com"]')
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.5)
    port = udp.getsockname()[1]
    try:
        fork.workspace("main").write("dns.py", DNS_PROBE.format(host="127.0.0.1", port=port).encode())
        res = execute(home, fork, "main", ExecRequest(argv=("python3", "dns.py"), commit=False))
        assert res.confinement.network == "filtered" and res.result is not None, res.to_dict()
        out = res.result.stdout
        assert "NO-DNS" in out and "ANSWER" not in out, res.result
        with pytest.raises(OSError):
            udp.recv(100)  # the host's loopback heard nothing (the sandbox's is its own)
    finally:
        udp.close()


def test_a_home_the_request_asks_for_moves_nothing_the_policy_shows(home, fork, preload):
    """`~/` in the policy's `readable` is the caller's own home, and the caller's home (and
    its credential stores) is never shown: a HOME given with --env changes neither."""
    real = Path(os.environ["HOME"])
    (real / ".ssh").mkdir(exist_ok=True)
    (real / ".ssh" / "id_rsa").write_text("HOME-CANARY\n")
    (real / "tools").mkdir()
    (real / "tools" / "tool.sh").write_text("echo TOOL-RAN\n")
    _policy_file(home, preload, "")
    text = Path(home.path, "policy.toml").read_text()
    text = text.replace("readable = [", f'readable = ["{real}", "~/tools", ')
    Path(home.path, "policy.toml").write_text(text)
    # a script in the fork: the classifier, which holds `cat ~/.ssh/...` on sight, is not
    # what stops it
    fork.workspace("main").write(
        "h.sh", f'cat {real}/.ssh/id_rsa; sh {real}/tools/tool.sh; echo "$HOME"\n'.encode()
    )
    for asked in ("/nonexistent-home", "/etc"):
        res = execute(
            home, fork, "main", ExecRequest(argv=("sh", "h.sh"), env=(("HOME", asked),), commit=False)
        )
        assert res.result is not None, res.to_dict()
        out = res.result.stdout
        assert "CANARY" not in out and "TOOL-RAN" in out and out.endswith(f"{asked}\n"), (asked, res.result)
