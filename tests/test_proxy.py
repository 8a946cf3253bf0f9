"""`proxy exec`: policy, approval, checkpoint, a real mount (or a materialized copy),
timeouts that stop the whole process group, bounded output, one commit, one envelope.

Mounting tests really mount (FUSE is in CI); the materialized mode runs the same checks.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults import audit, layers
from avfs_git.ops import mountidle, mounts
from avfs_git.proxy import approval
from avfs_git.proxy.execute import exec_in

from .conftest import git
from .test_fuse import require_fuse

MODES = ["fuse", "materialized"]


def _mode(mode: str) -> str:
    if mode == "fuse":
        require_fuse()
    return mode


@pytest.fixture
def ws(home, vault):
    w = vault.workspace("main")
    w.write("README.md", b"# proj\n")
    w.write("src/app.py", b"print('hi')\n")
    w.write("old.txt", b"old\n")
    checkpoint.save(vault, name="base")
    yield w
    mounts.unmount(home, vault, "main", lazy=True)


def _pid_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped between the lookup and the read
        return True


@pytest.mark.parametrize("mode", MODES)
def test_changes_become_one_commit(ws, vault, mode):
    head = ws.base
    res = exec_in(
        ws,
        shell="echo new > added.txt && echo changed >> README.md && rm old.txt && mv src/app.py src/main.py",
        mode=_mode(mode),
    )
    assert res.success, res.to_dict()
    assert res.exit_code == 0 and res.mount is not None and res.mount.mode == mode
    got = {(c.path, c.status, c.old_path) for c in res.changes}
    assert got == {
        ("added.txt", "added", None),
        ("README.md", "modified", None),
        ("old.txt", "deleted", None),
        ("src/main.py", "renamed", "src/app.py"),
    }
    assert res.commit is not None and res.commit.parent == head
    # `rm` makes the policy checkpoint first; nothing was pending, so no new commit
    assert res.to_dict()["checkpoint"] == {
        "commit": head,
        "created": False,
        "reason": "policy",
        "on_branch": True,
        "ref": None,
    }
    assert ws.base == res.commit.commit and not ws.is_dirty()
    assert res.to_dict()["state"] == {"base": res.commit.commit, "uncheckpointed_changes": 0}
    log = git("--git-dir", vault.path, "log", "--format=%s", "-1", "main")
    assert log.startswith("avfs proxy exec: ") and "added.txt" in log
    assert ws.read("README.md") == b"# proj\nchanged\n"
    # nothing changed: no commit
    again = exec_in(ws, ["cat", "README.md"], mode=mode)
    assert again.success and again.to_dict()["changes"] == [] and again.commit is None
    assert again.result is not None and again.result.stdout == "# proj\nchanged\n"


def test_mount_made_for_the_call_is_kept_warm_and_a_live_one_is_reused(home, ws, vault):
    require_fuse()
    res = exec_in(ws, ["true"], mode="fuse")
    assert res.to_dict()["mount"] == {
        "mountpoint": res.mount.mountpoint,
        "mode": "fuse",
        "reused": False,
        "backend": "overlay" if mounts.overlay_available() is None else "fuse",
        "alive_after": True,
        "kept_warm": True,
        "idle_timeout_s": mountidle.DEFAULT_IDLE_S,
    }
    warm = mounts.check(vault, "main")  # kept warm for the next call (docs/fuse.md)
    assert warm is not None and warm.kept_warm and warm.idle_expires_at is not None
    kept = exec_in(ws, ["true"], mode="fuse", keep_mount=True)  # adopts it: it stays
    assert kept.mount is not None and kept.mount.reused and kept.mount.kept_warm is False
    stays = mounts.check(vault, "main")
    assert stays is not None and stays.pid == warm.pid and not stays.kept_warm
    reused = exec_in(ws, ["pwd"], mode="fuse")
    assert reused.mount is not None and reused.mount.reused
    # (confined: at the vault's one path in the sandbox)
    assert reused.result is not None and reused.result.stdout.strip() == "/avfs/v"
    assert mounts.check(vault, "main") is not None  # a mount it did not make stays


def test_uncheckpointed_changes_are_checkpointed_first(ws, vault):
    ws.write("agent-note.txt", b"written before the command\n")
    res = exec_in(ws, shell="echo x > made.txt", mode="materialized")
    assert res.checkpoint is not None and res.checkpoint.reason == "uncheckpointed_changes"
    assert res.to_dict()["changes"] == [{"path": "made.txt", "status": "added"}]
    assert res.commit is not None and res.commit.parent == res.checkpoint.commit
    diff = git("--git-dir", vault.path, "diff", "--name-only", res.checkpoint.commit, res.commit.commit)
    assert diff.split() == ["made.txt"]


def test_no_commit_leaves_the_changes_in_the_overlay(ws):
    ws.write("pending.txt", b"p\n")
    res = exec_in(ws, shell="echo y > y.txt", mode="materialized", commit=False)
    assert res.commit is None and res.checkpoint is None
    assert res.to_dict()["changes"] == [{"path": "y.txt", "status": "added"}]  # only the command's
    assert {c.path for c in ws.status()} == {"pending.txt", "y.txt"}


def test_policy_checkpoint_first_and_deny_runs_nothing(ws, tmp_path):
    res = exec_in(ws, ["rm", "old.txt"], mode="materialized")
    assert res.decision is not None and res.decision.action == "allow_with_checkpoint"
    assert res.checkpoint is not None and res.checkpoint.reason == "policy"
    assert res.to_dict()["changes"] == [{"path": "old.txt", "status": "deleted"}]
    marker = tmp_path / "ran"
    denied = exec_in(ws, shell=f"touch {marker}; rm -rf /", mode="materialized")
    assert denied.exit_code == 126 and denied.result is None and denied.error is not None
    assert denied.error.code == "policy_denied" and denied.decision is not None
    assert denied.decision.rule != "default"
    assert not marker.exists()


def test_approval_token_is_bound_to_the_request_and_used_once(home, ws):
    asked = exec_in(ws, ["curl", "-s", "http://127.0.0.1:9/"], mode="materialized")
    assert asked.exit_code == 126 and asked.result is None and asked.approval is not None
    token = asked.approval.token
    other = exec_in(ws, ["curl", "-s", "http://127.0.0.1:9/other"], mode="materialized", approve=token)
    assert other.exit_code == 126 and other.error is not None and other.error.code == "approval_refused"
    assert "different request" in other.error.message and other.result is None
    ran = exec_in(ws, ["curl", "-s", "http://127.0.0.1:9/"], mode="materialized", approve=token)
    assert (
        ran.result is not None
        and ran.error is None
        and ran.to_dict()["approval"] == {"token": token, "used": True}
    )
    reused = exec_in(ws, ["curl", "-s", "http://127.0.0.1:9/"], mode="materialized", approve=token)
    assert reused.exit_code == 126 and reused.error is not None and "used already" in reused.error.message
    # expired
    asked2 = exec_in(ws, ["curl", "-s", "http://127.0.0.1:9/"], mode="materialized")
    assert asked2.approval is not None
    rec_path = Path(home.path) / "approvals" / (asked2.approval.token + ".json")
    rec = json.loads(rec_path.read_text())
    rec["expires"] = time.time() - 1
    rec_path.write_text(json.dumps(rec))
    late = exec_in(
        ws, ["curl", "-s", "http://127.0.0.1:9/"], mode="materialized", approve=asked2.approval.token
    )
    assert late.exit_code == 126 and late.error is not None and "expired" in late.error.message
    forged = exec_in(
        ws, ["curl", "-s", "http://127.0.0.1:9/"], mode="materialized", approve="apv_" + "0" * 32
    )
    assert forged.exit_code == 126 and forged.error is not None and "unknown" in forged.error.message
    with pytest.raises(approval.ApprovalError):
        approval.consume(home.path, "not-a-token", {"vault": "v", "fork": "main"}, "h")


_NEEDS_APPROVAL = "cat > got.txt; kill -0 $$"  # `kill`: process-control, require_approval


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_approval_token_is_bound_to_the_bytes_on_stdin(ws):
    """Regression: only `stdin: true` was bound, so a token approved for harmless input ran
    the command on whatever other input came with it (the review's mcp_approval.py)."""
    asked = exec_in(ws, shell=_NEEDS_APPROVAL, mode="materialized", stdin=b"harmless\n")
    assert asked.exit_code == 126 and asked.approval is not None
    assert asked.approval.stdin_sha256 == _sha(b"harmless\n")
    token = asked.approval.token
    for other in (b"EVIL\n", b"harmless\n\n", b"", None):
        evil = exec_in(ws, shell=_NEEDS_APPROVAL, mode="materialized", stdin=other, approve=token)
        assert evil.exit_code == 126 and evil.result is None and evil.error is not None, other
        assert "different request" in evil.error.message
        assert evil.error.details["approved_request"]["stdin"] == _sha(b"harmless\n")
    assert not ws.exists("got.txt")
    ran = exec_in(ws, shell=_NEEDS_APPROVAL, mode="materialized", stdin=b"harmless\n", approve=token)
    assert ran.success and ws.read("got.txt") == b"harmless\n", ran.to_dict()
    # without stdin, the token is bound to "no stdin" (null)
    asked = exec_in(ws, shell=_NEEDS_APPROVAL, mode="materialized")
    assert asked.approval is not None and asked.approval.stdin_sha256 is None
    empty = exec_in(ws, shell=_NEEDS_APPROVAL, mode="materialized", stdin=b"", approve=asked.approval.token)
    assert empty.exit_code == 126 and empty.result is None


def test_a_streamed_stdin_is_read_first_and_bound_too(ws, cli_proc):
    """`proxy exec --stdin` streams avfs' own stdin: with an approval involved it is read to
    its end first, hashed, and the command reads those very bytes."""
    base = ("--json", "--vault", "v", "proxy", "exec", "--stdin", "--mode", "materialized")
    asked = json.loads(cli_proc(*base, "--shell", _NEEDS_APPROVAL, stdin=b"abc\n").out_bytes)
    assert asked["exit_code"] == 126 and asked["approval"]["stdin_sha256"] == _sha(b"abc\n")
    token = asked["approval"]["token"]
    other = cli_proc(*base, "--approve", token, "--shell", _NEEDS_APPROVAL, stdin=b"abd\n")
    assert other.code == 126 and "different request" in json.loads(other.out_bytes)["error"]["message"]
    ran = cli_proc(*base, "--approve", token, "--shell", _NEEDS_APPROVAL, stdin=b"abc\n")
    assert ran.code == 0, ran.out
    assert ws.read("got.txt") == b"abc\n"


def test_proxy_approve_shows_the_request_and_asks_a_person(home, ws, cli_proc):
    asked = exec_in(ws, shell=_NEEDS_APPROVAL, mode="materialized", stdin=b"in\n", env={"K": "v"})
    assert asked.approval is not None
    token = asked.approval.token
    no_tty = cli_proc("--json", "proxy", "approve", token)  # nobody to ask: refused
    assert no_tty.code == 2 and "terminal" in json.loads(no_tty.out_bytes)["error"]["message"]

    def on_a_terminal(answer: bytes) -> tuple[int, str]:
        master, slave = os.openpty()
        try:
            p = subprocess.Popen([sys.executable, "-m", "avfs_git", "proxy", "approve", token], stdin=slave,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
            os.write(master, answer)
            _, err = p.communicate(timeout=60)
        finally:
            os.close(slave)
            os.close(master)
        return p.returncode, err.decode()

    code, shown = on_a_terminal(b"n\n")
    assert code == 4 and approval.load(home.path, token)["approved"] is None
    assert _NEEDS_APPROVAL in shown and "K=<hidden>" in shown and _sha(b"in\n") in shown, shown
    code, _ = on_a_terminal(b"y\n")
    assert code == 0 and approval.load(home.path, token)["approved"]["approved_by"] == "person"
    ran = exec_in(
        ws, shell=_NEEDS_APPROVAL, mode="materialized", stdin=b"in\n", env={"K": "v"}, approve=token
    )
    assert ran.success, ran.to_dict()
    gone = cli_proc("--json", "proxy", "approve", token, "--yes")
    assert gone.code == 4 and "used already" in json.loads(gone.out_bytes)["error"]["message"]


def _files_holding(home_path: str, value: bytes) -> list[str]:
    """The files of the home that hold ``value``; those of its layers file system
    (core/vaults/layers.py) through its mount, not its image read whole."""
    image = Path(layers.image_path(home_path))
    return [
        str(f) for f in Path(home_path).rglob("*") if f.is_file() and f != image and value in f.read_bytes()
    ]


def test_approval_records_are_private_and_hold_no_env_value(home, ws, cli_proc):
    """Approval records are 0600 in a 0700 directory and never hold an --env value (only a
    salted hash that binds it): the request made again with the token brings the value."""
    secret = "s3cr3t-" + os.urandom(8).hex()
    base = ("--json", "--vault", "v", "proxy", "exec", "--mode", "materialized", "--env", f"SECRET={secret}")
    cmd = ("--shell", 'printf %s "$SECRET" > got.txt; kill -0 $$')
    asked = json.loads(cli_proc(*base, *cmd).out_bytes)
    assert asked["exit_code"] == 126, asked
    token = asked["approval"]["token"]
    d = Path(home.path) / "approvals"
    assert d.stat().st_mode & 0o777 == 0o700
    files = list(d.iterdir())
    assert files and all(f.stat().st_mode & 0o777 == 0o600 for f in files), files
    leaked = _files_holding(home.path, secret.encode())
    assert leaked == []
    rec = approval.load(home.path, token)
    assert [k for k, _ in rec["request"]["env"]] == ["SECRET"]
    # another value for the same name: refused, and the token stays valid
    other = ("--json", "--vault", "v", "proxy", "exec", "--mode", "materialized", "--env", "SECRET=other")
    changed = cli_proc(*other, "--approve", token, *cmd)
    assert changed.code == 126 and "different request" in json.loads(changed.out_bytes)["error"]["message"]
    ran = cli_proc(*base, "--approve", token, *cmd)
    assert ran.code == 0, ran.out
    assert json.loads(ran.out_bytes)["changes"] == [{"path": "got.txt", "status": "added"}], ran.out
    assert ws.read("got.txt") == secret.encode()  # the command got the value itself
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in d.iterdir())
    leaked = _files_holding(home.path, secret.encode())
    assert leaked == []


def test_a_command_too_complex_to_analyse_needs_approval(ws, tmp_path):
    """Past the classifier's budget exec asks a person (an agent hook denies instead)."""
    marker = tmp_path / "ran"
    res = exec_in(ws, shell="env " * 60000 + f"touch {marker}", mode="materialized")
    assert res.exit_code == 126 and res.result is None and res.error is not None
    assert res.error.code == "approval_required" and res.decision is not None
    assert res.decision.rule == "builtin:too-complex"
    assert "too long or complex to analyse" in res.error.message
    assert not marker.exists()


def test_a_command_cannot_run_avfs_to_approve_its_own_token(home, ws, cli_proc):
    """`proxy exec` of avfs itself (here: dropping AVFS_WORKSPACE with `env -u`, which
    `proxy approve` checks) is denied by the policy before anything runs."""
    asked = exec_in(ws, shell=_NEEDS_APPROVAL, mode="materialized", stdin=b"in\n")
    assert asked.approval is not None
    token = asked.approval.token
    base = ("--json", "--vault", "v", "proxy", "exec", "--mode", "materialized")
    for cmd in (
        ("--shell", f"env -u AVFS_WORKSPACE avfs --home {home.path} proxy approve --yes {token}"),
        ("--", "sudo", "-n", sys.executable, "-m", "avfs_git", "proxy", "approve", "--yes", token),
        ("--shell", f"nohup {sys.executable} -m avfs_git --home {home.path} proxy approve --yes {token}"),
    ):
        res = cli_proc(*base, *cmd)
        doc = json.loads(res.out_bytes)
        assert res.code == 126 and doc["result"] is None and doc["error"]["code"] == "policy_denied", doc
    assert approval.load(home.path, token)["approved"] is None


def test_approval_token_is_bound_to_every_key_of_the_request(home, ws, vault, tmp_path):
    """Regression: request_hash copied a fixed list of keys and left out `isolate` (and
    timeout, checkpoint, commit, mode): a token approved for a command confined with
    --hide-host ran it on the plain host (the review's approval_isolate.py)."""
    from avfs_git.proxy.envelope import ExecRequest
    from avfs_git.proxy.execute import execute

    proj = tmp_path / "proj"
    proj.mkdir()
    iso = {"isolate": "hidden", "isolate_at": str(proj)}
    asked = execute(home, vault, "main", ExecRequest(shell=_NEEDS_APPROVAL, mode="materialized", **iso))
    assert asked.exit_code == 126 and asked.approval is not None
    token = asked.approval.token
    for other in (
        {},  # not isolated at all
        {"isolate": "readonly", "isolate_at": str(proj)},
        {"isolate": "hidden", "isolate_at": str(tmp_path)},
        {**iso, "timeout_ms": 1},
        {**iso, "commit": False},
        {**iso, "checkpoint": "always"},
        {**iso, "env": (("X", "1"),)},
        {**iso, "inherit_env": True},
    ):
        req = ExecRequest(shell=_NEEDS_APPROVAL, mode="materialized", approve=token, **other)  # type: ignore[arg-type]
        res = execute(home, vault, "main", req)
        assert res.exit_code == 126 and res.result is None and res.error is not None, other
        assert "different request" in res.error.message, other
    rec = json.loads((Path(home.path) / "approvals" / f"{token}.json").read_text())
    assert rec["request"]["isolate"] == ["hidden", str(proj)]
    # every key counts, including ones added later
    bound = dict(rec["request"])
    h = approval.request_hash(bound, "p")
    for key in [*bound, "something_new"]:
        assert approval.request_hash({**bound, key: "changed"}, "p") != h, key
    assert approval.request_hash(bound, "q") != h


@pytest.mark.parametrize("mode", MODES)
def test_timeout_stops_the_whole_process_group(ws, mode):
    res = exec_in(
        ws,
        shell="sleep 100 & echo $! > bg.pid; sleep 100",
        mode=_mode(mode),
        timeout_ms=500,
        commit=False,
        confine=False,  # the host's PIDs (test_confine: what is left in a sandbox ends with it)
    )
    assert res.exit_code == 124 and res.result is not None and res.result.timed_out
    pid = int(ws.read("bg.pid"))
    deadline = time.monotonic() + 5
    while not _pid_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _pid_gone(pid), "a background child outlived the timeout"


def test_processes_left_behind_are_stopped_when_the_command_exits(ws):
    res = exec_in(
        ws,
        shell="(sleep 100 &); sleep 100 & echo $! > bg.pid; echo done",
        mode="materialized",
        commit=False,
        confine=False,  # the host's PIDs (in a sandbox, its PID namespace ends with the command)
    )
    assert res.success and res.result is not None and res.result.stray_processes_killed
    assert res.result.stdout == "done\n"
    assert _pid_gone(int(ws.read("bg.pid")))


def test_gigabyte_of_output_is_bounded(ws):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    res = exec_in(
        ws, ["head", "-c", str(1 << 30), "/dev/zero"], mode="materialized", max_output_bytes=1 << 20
    )
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert res.success and res.result is not None
    assert res.result.stdout_bytes == 1 << 30 and res.result.stdout_truncated
    assert len(res.result.stdout) == 1 << 20 and not res.result.stderr_truncated
    assert grew < 128 << 20, f"capturing 1 GiB of output grew this process by {grew} bytes"


def test_program_not_found_and_bad_cwd(ws):
    res = exec_in(ws, ["definitely-not-a-program-xyz"], mode="materialized")
    assert res.exit_code == 127 and res.result is not None and res.result.spawn_error
    assert not res.success and res.error is None
    for cwd in ("../outside", "/etc", "missing-dir", "README.md", "a\0b"):
        bad = exec_in(ws, ["true"], cwd=cwd, mode="materialized")
        assert bad.exit_code == 125 and bad.result is None and bad.error is not None, cwd
    ok = exec_in(ws, ["pwd"], cwd="src", mode="materialized")
    assert ok.result is not None and ok.result.stdout.strip().endswith("/src")
    empty = exec_in(ws, [], mode="materialized")
    assert empty.exit_code == 125 and empty.error is not None and empty.error.code == "usage"


def test_environment_is_controlled_and_stdin_passes(ws, monkeypatch):
    monkeypatch.setenv("TEST_PROXY_SECRET", "s3cret")
    res = exec_in(ws, ["env"], mode="materialized", env={"EXTRA": "1"})
    assert res.result is not None
    env = dict(line.split("=", 1) for line in res.result.stdout.splitlines() if "=" in line)
    assert "TEST_PROXY_SECRET" not in env and env["EXTRA"] == "1"
    assert env["AVFS_VAULT"] == "v:main" and env["AVFS_WORKSPACE"] == env["PWD"]
    inherited = exec_in(ws, ["env"], mode="materialized", inherit_env=True)
    assert inherited.result is not None and "TEST_PROXY_SECRET=s3cret" in inherited.result.stdout
    fed = exec_in(ws, shell="cat > in.txt", mode="materialized", stdin=b"from stdin\n")
    assert fed.success and ws.read("in.txt") == b"from stdin\n"


def test_materialized_mode_keeps_modes_links_and_directories(ws):
    res = exec_in(
        ws,
        shell="mkdir -p a/b && echo x > a/b/x.sh && chmod +x a/b/x.sh && ln -s a/b/x.sh run && rm -r src",
        mode="materialized",
    )
    assert res.success, res.to_dict()
    assert ws.stat("a/b/x.sh").mode == 0o100755
    assert ws.read_link("run") == "a/b/x.sh"
    assert not ws.exists("src")


def test_mount_that_dies_during_the_command_is_reported(home, ws, vault):
    require_fuse()
    info = mounts.mount(home, vault, "main", None)
    res = exec_in(
        ws,
        shell=(
            f"echo before > before.txt; python3 -c 'import os; os.kill({info.pid}, 9)';"
            " sleep 0.3; echo after > after.txt"
        ),
        mode="fuse",
        commit=False,
        confine=False,  # a confined command cannot signal the daemon (a PID namespace of its own)
    )
    assert res.mount is not None and res.mount.alive_after is False
    assert res.error is not None and res.error.code == "mount_died"
    assert res.result is not None and res.result.exit_code != 0  # the second write failed
    assert ws.read("before.txt") == b"before\n"  # what was written before is kept
    assert mounts.check(vault, "main") is None


def test_every_exec_is_audited_without_its_output(ws, vault):
    ran = exec_in(ws, shell="echo TOP-$((40+2))-SECRET", mode="materialized")
    assert ran.result is not None and ran.result.stdout == "TOP-42-SECRET\n"
    exec_in(ws, ["rm", "-rf", "/"], mode="materialized")
    assert "TOP-42-SECRET" not in Path(audit.path(vault.state_dir)).read_text()
    recs = audit.read(vault.state_dir)
    assert [r["exit_code"] for r in recs[-2:]] == [0, 126]
    assert recs[-1]["decision"]["action"] == "deny"
    with open(audit.path(vault.state_dir), "ab") as fh:
        fh.write(b'{"torn')  # a crash mid-write
    assert len(audit.read(vault.state_dir)) == len(recs)


def test_cli_envelope_exit_codes_and_human_output(cli, vault):
    ws = vault.workspace("main")
    ws.write("f.txt", b"f\n")
    checkpoint.save(vault)
    r = cli("--json", "--vault", "v", "proxy", "exec", "--mode", "materialized", "--", "sh", "-c", "exit 7")
    doc = json.loads(r.out_bytes)
    assert r.code == 7 and doc["exit_code"] == 7 and doc["kind"] == "proxy_exec_result"
    r = cli("--json", "--vault", "v", "proxy", "exec", "ls")
    doc = json.loads(r.out_bytes)
    assert (
        r.code == 125
        and doc["kind"] == "proxy_exec_result"
        and doc["error"]["message"].startswith("put `--`")
    )
    r = cli("--vault", "v", "proxy", "exec", "--mode", "materialized", "--", "cat", "f.txt")
    assert r.code == 0 and r.out_bytes == b"f\n" and "allow" in r.err


def _signal_name(res: Any) -> str | None:
    return res.result.signal if res.result else None


def test_killed_by_a_signal(ws):
    res = exec_in(
        ws,
        ["python3", "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"],
        mode="materialized",
        commit=False,
        confine=False,
    )
    assert res.exit_code == 128 + signal.SIGTERM and _signal_name(res) == "SIGTERM"
    # in the sandbox bwrap reports it as an exit status (128 + N), and the signal is unknown
    res = exec_in(
        ws,
        ["python3", "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"],
        mode="materialized",
        commit=False,
    )
    assert res.exit_code == 128 + signal.SIGTERM and _signal_name(res) is None


# -- the warm path: a live mount's daemon serves the CLI's requests ---------------------------


def _avfs(*args: str, stdin: bytes | None = None, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "avfs_git", *args], input=stdin, capture_output=True, timeout=120, **kw
    )


@pytest.fixture
def live(home, ws, vault):
    require_fuse()
    info = mounts.mount(home, vault, "main", None)
    yield info
    mounts.unmount(home, vault, "main", lazy=True)


def test_a_live_mounts_daemon_runs_the_cli_request(live, ws, monkeypatch):
    monkeypatch.setenv("TEST_PROXY_CLIENT_VAR", "from-the-client")
    # --host writable: $PPID is the daemon's PID as the host sees it (in a sandbox it is not)
    r = _avfs("--vault", "v:main", "--json", "proxy", "exec", "--inherit-env", "--host", "writable", "--",
              "sh", "-c", 'echo "$PPID $TEST_PROXY_CLIENT_VAR"; echo w > served.txt')  # fmt: skip
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["success"] and doc["mount"]["reused"], doc
    ppid, var = doc["result"]["stdout"].split()
    assert int(ppid) == live.pid  # the daemon ran it
    assert var == "from-the-client"  # with the client's environment, not the daemon's
    assert doc["changes"] == [{"path": "served.txt", "status": "added"}] and doc["commit"]
    assert ws.read("served.txt") == b"w\n"
    # stdin is the client's, passed as a descriptor
    r = _avfs("--vault", "v:main", "--json", "proxy", "exec", "--stdin", "--", "cat", stdin=b"fed through\n")
    assert json.loads(r.stdout)["result"]["stdout"] == "fed through\n"
    # human output: the command's own stdout, a summary on stderr, its exit code
    r = _avfs("--vault", "v:main", "proxy", "exec", "--", "sh", "-c", "echo out; exit 3")
    assert r.returncode == 3 and r.stdout == b"out\n" and b"exit 3" in r.stderr
    # request errors come back as error documents
    r = _avfs("--vault", "v:main", "--json", "proxy", "exec", "--env", "NOEQUALS", "--", "true")
    doc = json.loads(r.stdout)
    assert r.returncode == 125 and doc["kind"] == "proxy_exec_result" and doc["error"]["code"] == "usage"


def test_a_client_that_goes_away_stops_its_command(live, ws):
    proc = subprocess.Popen(
        [sys.executable, "-m", "avfs_git", "--vault", "v:main", "--json", "proxy", "exec", "--no-commit",
         "--host", "writable", "--", "sh", "-c", "sleep 100 & echo $! > bg.pid; sleep 100"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not ws.exists("bg.pid") or not ws.read("bg.pid").strip():
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    pid = int(ws.read("bg.pid"))
    deadline = time.monotonic() + 10
    while not _pid_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _pid_gone(pid), "the command outlived its client"


def test_the_daemon_dying_mid_command_still_gives_one_envelope(live, ws):
    r = _avfs("--vault", "v:main", "--json", "proxy", "exec", "--no-commit", "--host", "writable", "--",
              "python3", "-c", f"import os; open('early.txt', 'w').write('x'); os.kill({live.pid}, 9)")  # fmt: skip
    doc = json.loads(r.stdout)
    assert r.returncode == 125 and doc["kind"] == "proxy_exec_result" and doc["error"]["code"] == "mount_died"
    assert ws.read("early.txt") == b"x"


def test_another_user_cannot_use_the_exec_socket(live, vault, tmp_path):
    marker = tmp_path / "ran"
    name = Path(vault.state_dir, "mounts", "main.exec").read_text().split()[0]
    code = (
        "import marshal, os, socket\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "s = socket.socket(socket.AF_UNIX); s.connect('\\0' + " + repr(name) + ")\n"
        "values = {'shell': 'touch " + str(marker) + "', 'stdin': False}\n"
        "body = marshal.dumps({'v': 1, 'values': values, 'argv': [], 'env': {}})\n"
        "try:\n"
        "    s.sendall(b'%08d' % len(body) + body)\n"
        "    print('refused' if s.recv(100) == b'' else 'answered')\n"
        "except (ConnectionResetError, BrokenPipeError):  # closed before the request was all sent\n"
        "    print('refused')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert r.stdout.strip() == b"refused", r
    assert not marker.exists()


def test_an_impostor_on_a_dead_daemons_socket_gets_nothing(home, ws, vault, tmp_path, monkeypatch):
    """After a mount daemon died, another user binds its (abstract, permissionless) socket
    name: the CLI must not send it the request or the environment."""
    require_fuse()
    info = mounts.mount(home, vault, "main", None)
    name = Path(vault.state_dir, "mounts", "main.exec").read_text().split()[0]
    os.kill(info.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not _pid_gone(info.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    log = tmp_path / "impostor.log"
    log.touch()
    os.chmod(log, 0o666)
    fake = subprocess.Popen(
        [sys.executable, "-c",
         "import os, socket, sys\n"
         "out = open(sys.argv[2], 'ab')\n"
         "os.setgid(65534); os.setuid(65534)\n"
         "import time\n"
         "s = socket.socket(socket.AF_UNIX)\n"
         "for _ in range(500):  # the dead daemon's threads may hold the name a moment longer\n"
         "    try:\n"
         "        s.bind('\\0' + sys.argv[1]); break\n"
         "    except OSError:\n"
         "        time.sleep(0.01)\n"
         "else:\n"
         "    sys.exit('the dead daemon kept its socket name bound for 5 s')\n"
         "s.listen(1)\n"
         "print('ready', flush=True)\n"
         "c, _ = s.accept(); out.write(b'connected:' + c.recv(1 << 20)); out.flush()\n",
         name, str(log)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert fake.stdout is not None and fake.stdout.readline().strip() == b"ready"
        monkeypatch.setenv("TEST_PROXY_SECRET", "sk-do-not-leak")
        r = _avfs("--vault", "v:main", "--json", "proxy", "exec", "--", "true")
        assert r.returncode == 0 and json.loads(r.stdout)["success"]
        assert b"sk-do-not-leak" not in log.read_bytes()
    finally:
        fake.kill()
        fake.wait()
        assert fake.stdout is not None
        fake.stdout.close()
        mounts.unmount(home, vault, "main", lazy=True)


def test_materialized_write_back_keeps_concurrent_changes_and_skips_nested_git(ws, vault):
    """Only what the command changed is written back: a file written to the fork while it
    ran survives; a nested repository's .git (file or directory) is not part of the fork."""
    import threading

    def meanwhile() -> None:
        time.sleep(0.4)
        vault.workspace("main").write("written-meanwhile.txt", b"by someone else\n")

    t = threading.Thread(target=meanwhile)
    t.start()
    res = exec_in(
        ws,
        shell="sleep 1; echo built > out.txt; mkdir -p sub/.git; echo x > sub/.git/HEAD;"
        " mkdir sub2; echo 'gitdir: elsewhere' > sub2/.git; echo y > sub2/y.txt",
        mode="materialized",
    )
    t.join()
    assert res.success, res.to_dict()
    assert ws.read("written-meanwhile.txt") == b"by someone else\n"
    assert ws.read("out.txt") == b"built\n" and ws.read("sub2/y.txt") == b"y\n"
    assert {e.path for e in ws.walk("")} >= {"out.txt", "sub2", "sub2/y.txt"}
    assert not any(".git" in e.path.split("/") for e in ws.walk(""))


def test_concurrent_execs_on_one_fork_commit_their_own_changes(home, ws, vault):
    import threading

    results: dict[str, object] = {}

    def run(tag: str, delay: float) -> None:
        time.sleep(delay)
        results[tag] = exec_in(
            vault.workspace("main"), shell=f"echo {tag} > {tag}.txt; sleep 0.5", mode="materialized"
        )

    threads = [
        threading.Thread(target=run, args=("first", 0.0)),
        threading.Thread(target=run, args=("second", 0.2)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for tag in ("first", "second"):
        r = results[tag]
        assert r.to_dict()["changes"] == [{"path": f"{tag}.txt", "status": "added"}], (tag, r.to_dict())  # type: ignore[attr-defined]
        assert r.commit is not None  # type: ignore[attr-defined]


def test_the_fast_path_fills_in_cwd_only_when_none_was_given(tmp_path, monkeypatch):
    """`proxy exec` from a directory inside the fork's mount runs there (``--cwd`` filled in);
    a ``--cwd`` given (either form) wins, a ``--cwd`` after ``--`` is the command's, and
    the mount's root, a sibling directory sharing its name's prefix, or an exec file without
    a mount point (an older daemon) leave the arguments alone."""
    from avfs_git.cli.execopts import with_cwd

    mp = (tmp_path / "m").resolve()
    (mp / "a b" / "c").mkdir(parents=True)
    (tmp_path / "mm").mkdir()
    monkeypatch.chdir(mp / "a b" / "c")
    assert with_cwd(["--", "ls"], str(mp)) == ["--cwd", "a b/c", "--", "ls"]
    assert with_cwd(["--json", "--", "ls", "--cwd"], str(mp) + "/") == [
        "--cwd", "a b/c", "--json", "--", "ls", "--cwd",
    ]  # fmt: skip
    for given in (["--cwd", "x", "--", "ls"], ["--cwd=", "--", "ls"], ["--cwd=x", "--shell", "ls"]):
        assert with_cwd(given, str(mp)) == given
    assert with_cwd(["--", "ls"], "") == ["--", "ls"]
    monkeypatch.chdir(mp)
    assert with_cwd(["--", "ls"], str(mp)) == ["--", "ls"]
    monkeypatch.chdir(tmp_path / "mm")
    assert with_cwd(["--", "ls"], str(mp)) == ["--", "ls"]
