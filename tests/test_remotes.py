"""Remotes: add/list/set-url/remove, push and fetch against a bare repository on disk and a
real `git daemon` on 127.0.0.1 (started and stopped by the fixture)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import AvfsError
from avfs_git.core.operations import checkpoint, remote
from avfs_git.core.settings import Settings
from avfs_git.core.store import transport
from avfs_git.core.store.redact import redact, split_credentials
from avfs_git.mount.side import MOUNT_SIDE

from .conftest import git, libgit2_repo


def _settings_from_env(vault: Any) -> None:
    """What a front end does: read the environment into the home's settings (the library
    takes them when the home is opened, not at every call)."""
    vault.home.settings = Settings.from_environ(None, vault.home.path)


@pytest.fixture
def bare(tmp_path) -> Path:
    path = tmp_path / "server" / "proj.git"
    path.parent.mkdir()
    git("init", "-q", "--bare", str(path))
    return path


@pytest.fixture
def populated(vault):
    ws = vault.workspace("main")
    ws.write("README.md", b"# proj\n")
    ws.write("bin/run.sh", b"#!/bin/sh\necho hi\n", mode=0o755)
    ws.symlink("README.md", "link")
    checkpoint.save(vault, name="first")
    return vault


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    """Return once something accepts connections on 127.0.0.1:port (a readiness gate)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.05)


def _start_daemon(base: Path, port: int) -> subprocess.Popen[bytes]:
    """`git daemon` serving ``base`` on 127.0.0.1:port (push enabled), in its own process
    group: the connections it forks (receive-pack) die with it when the group is killed."""
    proc = subprocess.Popen(
        ["git", "daemon", "--listen=127.0.0.1", f"--port={port}", "--reuseaddr", "--export-all",
         "--enable=receive-pack", f"--base-path={base}", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for_port(port, proc, "git daemon")
    except BaseException:
        _stop_daemon(proc)
        raise
    return proc


def _stop_daemon(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait(10)


@pytest.fixture
def git_daemon(tmp_path) -> Iterator[tuple[str, Path]]:
    """A `git daemon` serving tmp_path/daemon on 127.0.0.1 (push enabled)."""
    base = tmp_path / "daemon"
    base.mkdir()
    git("init", "-q", "--bare", str(base / "proj.git"))
    port = _free_port()
    proc = _start_daemon(base, port)
    try:
        yield f"git://127.0.0.1:{port}/proj.git", base / "proj.git"
    finally:
        _stop_daemon(proc)


def test_remote_add_list_set_url_remove(vault, bare):
    info, warnings = remote.add(vault, "origin", str(bare))
    assert info.url == str(bare) and warnings == []
    assert [r.name for r in remote.list_remotes(vault)] == ["origin"]
    with pytest.raises(AvfsError) as exc:
        remote.add(vault, "origin", str(bare))
    assert exc.value.code == "already_exists"
    remote.set_url(vault, "origin", str(bare) + "/")
    assert remote.list_remotes(vault)[0].url == str(bare) + "/"
    remote.remove(vault, "origin")
    assert remote.list_remotes(vault) == []
    for bad in ("", "-x", "a b", "../x", "a/b"):
        with pytest.raises(AvfsError):
            remote.add(vault, bad, str(bare))
    with pytest.raises(AvfsError) as exc:
        remote.remove(vault, "nope")
    assert exc.value.code == "remote_not_found"


def test_credentials_in_a_url_are_never_stored(vault, cli):
    info, warnings = remote.add(vault, "origin", "https://alice:s3cr3t-token@127.0.0.1:9/proj.git")
    assert info.url == "https://127.0.0.1:9/proj.git" and warnings
    config = (Path(vault.path) / "config").read_text()
    assert "s3cr3t-token" not in config
    r = cli(
        "--json", "--vault", "v", "remote", "add", "other", "https://bob:hunter2-secret@127.0.0.1:9/x.git"
    )
    assert r.code == 0 and "hunter2-secret" not in r.out and "hunter2-secret" not in r.err
    assert "hunter2-secret" not in (Path(vault.path) / "config").read_text()
    assert redact("fatal: https://u:p@host/x failed") == "fatal: https://***@host/x failed"
    assert remote.strip_credentials("ssh://git@host/x") == ("ssh://git@host/x", False)


def test_push_forks_and_checkpoints_then_git_clone_reads_them(populated, bare, tmp_path):
    v = populated
    remote.add(v, "origin", str(bare))
    res = remote.push(v, "origin", ["main"], checkpoints=True)
    refs_moved = {u.ref for u in res.updates}
    assert "refs/heads/main" in refs_moved and "refs/avfs/checkpoints/main/-/first" in refs_moved
    assert remote.push(v, "origin", ["main"]).updates == ()  # nothing new
    first = v.workspace("main").tip()
    v.workspace("main").write("more.txt", b"more\n")
    second = checkpoint.save(v).checkpoint.commit
    res = remote.push(v, "origin", ["main"])  # a fast-forward: git names the old tip abbreviated
    assert [(u.ref, u.old, u.new) for u in res.updates] == [("refs/heads/main", first, second)]
    clone = tmp_path / "clone"
    git("clone", "-q", str(bare), str(clone))
    assert (clone / "README.md").read_text() == "# proj\n"
    assert (clone / "bin" / "run.sh").stat().st_mode & 0o111
    assert (clone / "link").is_symlink()
    git("--git-dir", str(bare), "fsck", "--strict")


def test_uncheckpointed_changes_are_reported_not_pushed(populated, bare):
    v = populated
    remote.add(v, "origin", str(bare))
    v.workspace("main").write("draft.txt", b"not yet\n")
    res = remote.push(v, "origin", ["main"])
    assert res.left_behind == ({"fork": "main", "uncheckpointed_changes": 1},)
    assert "draft.txt" not in git("--git-dir", str(bare), "ls-tree", "--name-only", "main")
    res = remote.push(v, "origin", ["main"], checkpoint_first=True)
    assert res.left_behind == () and "draft.txt" in git(
        "--git-dir", str(bare), "ls-tree", "--name-only", "main"
    )


def test_a_rejected_push_names_both_commits_and_changes_nothing(populated, bare, tmp_path, cli):
    v = populated
    remote.add(v, "origin", str(bare))
    remote.push(v, "origin", ["main"])
    clone = tmp_path / "other"
    git("clone", "-q", str(bare), str(clone))
    (clone / "theirs.txt").write_text("theirs\n")
    git("add", "-A", cwd=clone)
    git("-c", "user.name=o", "-c", "user.email=o@x", "commit", "-qm", "theirs", cwd=clone)
    git("push", "-q", "origin", "main", cwd=clone)
    theirs = git("rev-parse", "HEAD", cwd=clone).strip()
    v.workspace("main").write("mine.txt", b"mine\n")
    mine = checkpoint.save(v).checkpoint.commit
    with pytest.raises(remote.RemoteRejectedError) as exc:
        remote.push(v, "origin", ["main"])
    assert exc.value.exit_code == 5 and theirs in exc.value.message and mine in exc.value.message
    assert v.workspace("main").tip() == mine
    assert git("--git-dir", str(bare), "rev-parse", "main").strip() == theirs
    r = cli("--json", "--vault", "v", "push", "origin", "main")
    assert r.code == 5 and json.loads(r.out_bytes)["error"]["code"] == "remote_rejected"
    # fetch brings their commit in as a remote-tracking ref; the fork does not move
    res = remote.fetch(v, "origin")
    assert ("refs/remotes/origin/main", theirs) in {(u.ref, u.new) for u in res.updates}
    assert v.workspace("main").tip() == mine


def test_push_and_fetch_through_git_daemon(populated, git_daemon, tmp_path):
    url, served = git_daemon
    v = populated
    remote.add(v, "origin", url)
    remote.push(v, "origin", ["main"])
    assert git("--git-dir", str(served), "rev-parse", "main").strip() == v.workspace("main").tip()
    remote.fetch(v, "origin")  # (git's push already moved the remote-tracking ref)
    tip = v.workspace("main").tip()
    assert git("--git-dir", v.path, "rev-parse", "refs/remotes/origin/main").strip() == tip


def test_bad_remotes_fail_clearly(populated, tmp_path):
    v = populated
    remote.add(v, "down", f"git://127.0.0.1:{_free_port()}/x.git")  # nothing listens there
    with pytest.raises(remote.RemoteError) as exc:
        remote.push(v, "down", ["main"])
    assert exc.value.exit_code == 5
    not_git = tmp_path / "not-a-repo"
    not_git.mkdir()
    remote.add(v, "plain", str(not_git))
    with pytest.raises(remote.RemoteError):
        remote.fetch(v, "plain")
    with pytest.raises(AvfsError) as exc2:
        remote.push(v, "plain", ["no-such-fork"])
    assert exc2.value.code == "fork_not_found"
    with pytest.raises(AvfsError) as exc3:
        remote.push(v, "nope", ["main"])
    assert exc3.value.code == "remote_not_found"


def _push_from_clone(bare: Path, clone: Path, name: str, content: str) -> str:
    if not clone.exists():
        git("clone", "-q", str(bare), str(clone))
    else:
        git("pull", "-q", "--rebase", cwd=clone)
    (clone / name).write_text(content)
    git("add", "-A", cwd=clone)
    git("-c", "user.name=o", "-c", "user.email=o@x", "commit", "-qm", f"clone: {name}", cwd=clone)
    git("push", "-q", "origin", "main", cwd=clone)
    return git("rev-parse", "HEAD", cwd=clone).strip()


def test_pull_fast_forwards_merges_and_reports_conflicts(populated, bare, tmp_path, cli):
    v = populated
    remote.add(v, "origin", str(bare))
    remote.push(v, "origin", ["main"])
    clone = tmp_path / "clone"
    # someone else pushed: a fast-forward, byte, mode and symlink exact
    theirs = _push_from_clone(bare, clone, "theirs.txt", "theirs\n")
    _, res = remote.pull(v, "origin", "main")
    assert res.status == "fast_forward" and v.workspace("main").tip() == theirs
    assert v.workspace("main").read("theirs.txt") == b"theirs\n"
    # both sides moved, different files: a merge commit
    _push_from_clone(bare, clone, "theirs2.txt", "t2\n")
    v.workspace("main").write("mine.txt", b"mine\n")
    _, res = remote.pull(v, "origin", "main")
    assert res.status == "merged" and v.workspace("main").read("theirs2.txt") == b"t2\n"
    assert v.workspace("main").read("mine.txt") == b"mine\n"  # captured first, then merged
    remote.push(v, "origin", ["main"])  # now a fast-forward for the server
    # both changed the same file: conflicts as data, nothing moves
    _push_from_clone(bare, clone, "README.md", "# theirs\n")
    v.workspace("main").write("README.md", b"# mine\n")
    checkpoint.save(v)
    tip = v.workspace("main").tip()
    r = cli("--json", "--vault", "v:main", "pull", "origin")
    doc = json.loads(r.out_bytes)
    assert r.code == 3 and doc["kind"] == "pull" and doc["merge"]["conflicts"][0]["path"] == "README.md"
    assert v.workspace("main").tip() == tip
    git("--git-dir", str(bare), "fsck", "--strict")


@pytest.mark.parametrize("lazy", [False, True], ids=["whole", "lazy"])
def test_a_clone_of_an_empty_repository_starts_main_whose_push_is_the_remote_s_first(
    git_daemon, tmp_path, cli, lazy
):
    """A project just made on a hosting service has no branch yet: `vault clone` gave
    `has no branches to clone` (a usage error); as `git clone` does, it now gives a vault
    to work in: fork main from an empty commit of its own, a warning saying so, and its
    first push is the remote's first commit."""
    from avfs_git.core.vaults.home import Home

    url, served = git_daemon
    home = str(tmp_path / "fresh-home")
    r = cli("--json", "--home", home, "vault", "clone", *(["--lazy"] if lazy else []), url, "fresh")
    assert r.code == 0, r.err
    doc = json.loads(r.out_bytes)
    assert doc["vault"]["forks"] == ["main"] and doc.get("lazy", False) is lazy
    assert [w for w in doc["warnings"] if "empty repository" in w], doc
    v = Home(home, author=("a", "a@x"), mounts=MOUNT_SIDE).vault("fresh")
    first = git("--git-dir", v.path, "log", "--format=%s", "main").splitlines()
    assert first == ["avfs: create vault fresh"]
    assert git("--git-dir", v.path, "ls-tree", "-r", "main") == ""
    v.workspace("main").write("README.md", b"# fresh\n")
    checkpoint.save(v, "main", message="the first file")
    remote.push(v, "origin", ["main"])
    assert git("--git-dir", str(served), "log", "--format=%s", "main").splitlines() == [
        "the first file",
        "avfs: create vault fresh",
    ]
    git("clone", "-q", "-b", "main", str(served), str(tmp_path / "plain"))
    assert (tmp_path / "plain" / "README.md").read_bytes() == b"# fresh\n"


def test_vault_clone_then_two_homes_share_work_through_one_server(populated, git_daemon, tmp_path, cli):
    """The multi-machine workflow: one vault pushed to a server; a second home clones it,
    an agent works in a fork and pushes it; the first home fetches and merges it."""
    from avfs_git.core.vaults.home import Home

    url, served = git_daemon
    v = populated
    remote.add(v, "origin", url)
    remote.push(v, "origin", ["main"], checkpoints=True)
    other = Home(str(tmp_path / "home2"), author=("b", "b@x"), mounts=MOUNT_SIDE)
    w = other.clone_vault(url, "proj")
    assert w.fork_names() == ["main"] and w.workspace("main").read("README.md") == b"# proj\n"
    assert w.workspace("main").stat("bin/run.sh").mode == 0o100755
    assert w.workspace("main").read_link("link") == "README.md"
    assert any(r.startswith("refs/avfs/checkpoints/main/") for r in libgit2_repo(w).references)
    w.create_fork("main", "agent2")
    w.workspace("agent2").write("from-agent2.txt", b"hello from machine 2\n")
    checkpoint.save(w, "agent2")
    remote.push(w, "origin", ["agent2"])
    # back on the first machine
    remote.fetch(v, "origin")
    r = cli("--json", "--home", v.home.path, "--vault", "v:main", "merge", "origin/agent2")
    assert r.code == 0 and json.loads(r.out_bytes)["results"][0]["status"] == "fast_forward"
    assert v.workspace("main").read("from-agent2.txt") == b"hello from machine 2\n"
    # the same source name through the API and MCP: one function resolves it (merge.remote_branch)
    from avfs_git.core.operations import merge
    from avfs_git.mcp.tools import AvfsTools

    for fork in ("agent3", "agent4"):
        w.create_fork("main", fork)
        w.workspace(fork).write(f"{fork}.txt", b"from machine 2\n")
        checkpoint.save(w, fork)
        remote.push(w, "origin", [fork])
    remote.fetch(v, "origin")
    v.create_fork("main", "api")
    assert merge.merge(v, "origin/agent3", "api").status in ("fast_forward", "merged")
    assert v.workspace("api").read("agent3.txt") == b"from machine 2\n"
    doc = json.loads(AvfsTools(v.home.path, "v:main").call("merge", {"source": "origin/agent4"}))
    assert (
        doc["results"][0]["status"] in ("fast_forward", "merged")
        and doc["results"][0]["source"] == "origin/agent4"
    )
    assert v.workspace("main").read("agent4.txt") == b"from machine 2\n"
    with pytest.raises(AvfsError) as exc:  # neither a fork nor a fetched branch: the fork error
        merge.merge(v, "origin/none", "main")
    assert exc.value.code in ("fork_not_found", "invalid_name")
    git("--git-dir", str(served), "fsck", "--strict")
    # bad input: a URL that is not a repository, a name taken, credentials never stored
    with pytest.raises(AvfsError) as exc:
        other.clone_vault(f"git://127.0.0.1:{_free_port()}/none.git", "gone")
    assert exc.value.exit_code == 5 and not (tmp_path / "home2" / "vaults" / "gone.git").exists()
    with pytest.raises(AvfsError):
        other.clone_vault(url, "proj")
    r = cli("--json", "--home", str(tmp_path / "home3"), "vault", "clone", str(served), "viacli")
    assert r.code == 0 and json.loads(r.out_bytes)["vault"]["name"] == "viacli"


@pytest.fixture
def http_git(tmp_path) -> Iterator[tuple[str, Path, str]]:
    """`git http-backend` (smart HTTP) behind a small HTTP server with Basic auth, on
    127.0.0.1; yields (url, served bare repo, the password of user 'agent')."""
    import http.server
    import threading

    from .authgitserver import handler

    root = tmp_path / "http"
    root.mkdir()
    git("init", "-q", "--bare", str(root / "proj.git"))
    git("--git-dir", str(root / "proj.git"), "config", "http.receivepack", "true")
    password = "pa55-" + "x" * 12
    Handler = handler(root, password)  # noqa: N806 - a class
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/proj.git", root / "proj.git", password
    finally:
        server.shutdown()
        server.server_close()


def test_http_with_basic_auth_from_the_environment_and_the_secret_never_shows(
    populated, http_git, monkeypatch, cli
):
    url, served, password = http_git
    v = populated
    remote.add(v, "origin", url)
    monkeypatch.setenv("AVFS_GIT_USERNAME", "agent")
    # no credentials: a clear error, never a prompt
    monkeypatch.delenv("AVFS_GIT_TOKEN", raising=False)
    _settings_from_env(v)
    with pytest.raises(remote.RemoteError) as exc:
        remote.push(v, "origin", ["main"])
    assert exc.value.exit_code == 5
    # a wrong one: refused, and the wrong secret is not repeated
    monkeypatch.setenv("AVFS_GIT_TOKEN", "wrong-secret-123")
    _settings_from_env(v)
    with pytest.raises(remote.RemoteError) as exc:
        remote.push(v, "origin", ["main"])
    assert "wrong-secret-123" not in exc.value.message + json.dumps(exc.value.details)
    # the right one, from the environment
    monkeypatch.setenv("AVFS_GIT_TOKEN", password)
    _settings_from_env(v)
    remote.push(v, "origin", ["main"])
    assert git("--git-dir", str(served), "rev-parse", "main").strip() == v.workspace("main").tip()
    r = cli("--json", "--vault", "v:main", "fetch")
    assert r.code == 0
    r = cli("--json", "--vault", "v:main", "proxy", "exec", "--mode", "materialized", "--", "true")
    everything = r.out + r.err + (Path(v.path) / "config").read_text()
    everything += (Path(v.state_dir) / "audit.ndjson").read_text()
    assert password not in everything


def test_vault_clone_with_credentials_in_the_url_never_puts_them_on_a_command_line(
    populated: Any, http_git: tuple[str, Path, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`vault clone http://user:pass@host/repo`: git gets the URL without the pair, and the
    pair through the environment (a credential helper): no git argv (world-readable in
    /proc/*/cmdline) holds the secret. A shim `git` first on PATH logs every argv."""
    import shutil
    from urllib.parse import quote

    from avfs_git.core.vaults.home import Home

    url, _served, password = http_git
    remote.add(populated, "origin", url)
    monkeypatch.setenv("AVFS_GIT_USERNAME", "agent")
    monkeypatch.setenv("AVFS_GIT_TOKEN", password)
    _settings_from_env(populated)
    remote.push(populated, "origin", ["main"])
    monkeypatch.delenv("AVFS_GIT_TOKEN")  # from here on, only the URL's credentials
    _settings_from_env(populated)
    monkeypatch.delenv("AVFS_GIT_USERNAME")
    shim, log = tmp_path / "shim", tmp_path / "argv.log"
    shim.mkdir()
    real = shutil.which("git")
    assert real is not None
    (shim / "git").write_text(f'#!/bin/sh\nprintf "%s\\n" "git $*" >> "{log}"\nexec "{real}" "$@"\n')
    (shim / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")

    with_creds = url.replace("http://", f"http://agent:{quote(password)}@")
    home = Home(str(tmp_path / "home2"), author=("b", "b@x"), mounts=MOUNT_SIDE)
    w = home.clone_vault(with_creds, "proj")
    assert w.fork_names() == ["main"] and w.workspace("main").read("README.md") == b"# proj\n"
    argv = log.read_text()
    assert "fetch" in argv and url in argv  # the shim saw the clone's git commands
    assert password not in argv
    assert git("--git-dir", w.path, "config", "--get", "remote.origin.url").strip() == url
    # a wrong password: refused, and neither on a command line nor in the message
    bad = url.replace("http://", "http://agent:wrong-pa55word@")
    with pytest.raises(AvfsError) as exc:
        home.clone_vault(bad, "other")
    assert exc.value.exit_code == 5 and "wrong-pa55word" not in exc.value.message + log.read_text()
    assert not (tmp_path / "home2" / "vaults" / "other.git").exists()


def test_the_environment_credential_helper_passes_a_password_verbatim(tmp_path: Path) -> None:
    """The helper answers with printf: a backslash, a space, '*' or '%' in a password reach
    git as they are (sh's echo would expand backslashes, an unquoted word would glob)."""
    secret = "a\\nb c*%s\\t'\"$x"
    env = {**os.environ, "AVFS_GIT_CALL_USERNAME": "u s", "AVFS_GIT_CALL_PASSWORD": secret}
    env.pop("AVFS_GIT_TOKEN", None)
    proc = subprocess.run(
        ["git", "-c", "credential.helper=", "-c", f"credential.helper={transport._ENV_HELPER}", "credential", "fill"],
        input="protocol=https\nhost=example.invalid\n\n", capture_output=True, text=True, env=env,
        cwd=tmp_path, check=True,
    )  # fmt: skip
    assert f"username=u s\npassword={secret}\n" in proc.stdout


@pytest.fixture
def sshd(tmp_path) -> Iterator[tuple[str, Path, Path]]:
    """sshd on a high port of 127.0.0.1 with a generated host key and user key (installed
    by `make test`: openssh-server); yields (ssh URL of a bare repo, the repo, the key)."""
    import os
    import shutil

    from .conftest import IN_CI

    if not os.path.exists("/usr/sbin/sshd") or shutil.which("ssh") is None or os.getuid() != 0:
        if IN_CI:
            pytest.fail("sshd (openssh-server) and root are needed in CI (make test installs it)")
        pytest.skip("requires sshd and root")
    d = tmp_path / "ssh"
    d.mkdir()
    for name in ("host", "user"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "user.pub").read_text())
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        "AcceptEnv GIT_PROTOCOL\n"  # git's protocol v2 over ssh, as hosting services take it
    )
    os.makedirs("/run/sshd", exist_ok=True)
    repo = tmp_path / "ssh-served" / "proj.git"
    repo.parent.mkdir()
    git("init", "-q", "--bare", str(repo))
    proc = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_port(port, proc, "sshd")
        yield f"ssh://root@127.0.0.1:{port}{repo}", repo, d / "user"
    finally:
        proc.terminate()
        proc.wait(10)


def test_push_and_fetch_over_ssh_with_a_key(populated, sshd, monkeypatch, tmp_path):
    url, served, key = sshd
    v = populated
    remote.add(v, "origin", url)
    opts = (
        "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes"
    )
    # a key that the server does not know: refused clearly
    other = tmp_path / "other-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    monkeypatch.setenv("GIT_SSH_COMMAND", f"ssh -i {other} {opts}")
    with pytest.raises(remote.RemoteError) as exc:
        remote.push(v, "origin", ["main"])
    assert exc.value.exit_code == 5
    # the user's key (ssh settings come from the user's environment, as for git)
    monkeypatch.setenv("GIT_SSH_COMMAND", f"ssh -i {key} {opts}")
    remote.push(v, "origin", ["main"], checkpoints=True)
    assert git("--git-dir", str(served), "rev-parse", "main").strip() == v.workspace("main").tip()
    assert remote.fetch(v, "origin").remote == "origin"


def test_a_remote_that_rewrote_history(populated, bare, tmp_path):
    """Someone force-pushed a rewritten main: avfs's push is refused (never forced over
    it), and pull merges the rewritten history with the fork's, keeping both sides."""
    v = populated
    remote.add(v, "origin", str(bare))
    remote.push(v, "origin", ["main"])
    clone = tmp_path / "rewriter"
    git("clone", "-q", str(bare), str(clone))
    (clone / "README.md").write_text("# proj\n")  # same content, new history
    (clone / "rewritten.txt").write_text("history was rewritten\n")
    git("add", "-A", cwd=clone)
    git("-c", "user.name=o", "-c", "user.email=o@x", "commit", "-q", "--amend", "-m", "rewritten", cwd=clone)
    git("push", "-q", "--force", "origin", "main", cwd=clone)
    v.workspace("main").write("mine.txt", b"mine\n")
    checkpoint.save(v)
    mine = v.workspace("main").tip()
    with pytest.raises(remote.RemoteRejectedError):
        remote.push(v, "origin", ["main"])
    assert v.workspace("main").tip() == mine
    _, res = remote.pull(v, "origin", "main")
    assert res.status == "merged", res
    ws = v.workspace("main")
    assert ws.read("mine.txt") == b"mine\n" and ws.read("rewritten.txt") == b"history was rewritten\n"
    remote.push(v, "origin", ["main"])  # now a fast-forward of the rewritten history


def _clone_commit_push(bare: Path, clone: Path, name: str) -> str:
    if not clone.exists():
        git("clone", "-q", str(bare), str(clone))
    (clone / name).write_text(name + "\n")
    git("add", "-A", cwd=clone)
    git("-c", "user.name=o", "-c", "user.email=o@x", "commit", "-qm", name, cwd=clone)
    git("push", "-q", "origin", "HEAD", cwd=clone)
    return git("rev-parse", "HEAD", cwd=clone).strip()


def test_force_with_lease_overwrites_only_what_this_vault_last_saw(populated, bare, tmp_path, cli):
    v = populated
    remote.add(v, "origin", str(bare))
    remote.push(v, "origin", ["main"])
    theirs = _clone_commit_push(bare, tmp_path / "other", "theirs.txt")
    v.workspace("main").write("mine.txt", b"mine\n")
    mine = checkpoint.save(v).checkpoint.commit
    # the remote moved since this vault last saw it: the lease is stale, nothing is lost
    with pytest.raises(remote.RemoteRejectedError) as exc:
        remote.push(v, "origin", ["main"], force_with_lease=True)
    assert exc.value.details["reason"] == "stale_lease" and theirs in exc.value.message
    assert git("--git-dir", str(bare), "rev-parse", "main").strip() == theirs
    r = cli("--json", "--vault", "v", "push", "--force-with-lease", "origin", "main")
    assert r.code == 5 and json.loads(r.out_bytes)["error"]["details"]["reason"] == "stale_lease"
    # once fetched (seen), the lease holds: the remote branch is overwritten with ours
    remote.fetch(v, "origin")
    res = remote.push(v, "origin", ["main"], force_with_lease=True)
    assert [(u.ref, u.old, u.new) for u in res.updates] == [("refs/heads/main", theirs, mine)]
    assert git("--git-dir", str(bare), "rev-parse", "main").strip() == mine
    # a plain push still never forces
    _clone_commit_push(bare, tmp_path / "other2", "again.txt")
    v.workspace("main").write("mine2.txt", b"x\n")
    checkpoint.save(v)
    with pytest.raises(remote.RemoteRejectedError) as exc:
        remote.push(v, "origin", ["main"])
    assert exc.value.details["reason"] == "non_fast_forward"


def test_checkpoints_push_as_tags_when_asked(populated, bare, tmp_path, cli):
    v = populated
    remote.add(v, "origin", str(bare))
    r = cli("--json", "--vault", "v", "push", "origin", "main", "--checkpoints", "--tags")
    assert r.code == 0, r.err
    moved = {u["ref"] for u in json.loads(r.out_bytes)["result"]["updates"]}
    assert moved == {"refs/heads/main", "refs/tags/avfs/main/first"}
    clone = tmp_path / "clone"
    git("clone", "-q", str(bare), str(clone))
    assert git("tag", cwd=clone).split() == ["avfs/main/first"]
    assert git("rev-parse", "avfs/main/first^{commit}", cwd=clone).strip() == v.workspace("main").tip()
    # --tags without --checkpoints: git's (polish1: it was refused), the vault's tags; the
    # checkpoint's tag already there at its commit is not pushed again
    res = remote.push(v, "origin", ["main"], tags=True)
    assert {u.ref for u in res.updates} <= {"refs/heads/main"}, res.updates


def _big_vault(v, mib: int) -> None:
    ws = v.workspace("main")
    for i in range(mib):
        ws.write(f"blob{i}.bin", os.urandom(1 << 20))
    checkpoint.save(v, name="big")


def test_progress_reaches_the_callback_and_json_stays_one_document(populated, git_daemon, cli, monkeypatch):
    url, _ = git_daemon
    v = populated
    _big_vault(v, 4)
    remote.add(v, "origin", url)
    seen: list[tuple[str, int, int]] = []
    remote.push(v, "origin", ["main"], progress=lambda *a: seen.append(a))
    phases = {p for p, _, _ in seen}
    assert "Writing objects" in phases, phases
    assert all(0 <= done <= total for _, done, total in seen)
    # the CLI draws bars on stderr (forced here, stderr is not a terminal); stdout is JSON
    monkeypatch.setenv("AVFS_PROGRESS", "always")
    r = cli("--json", "--vault", "v", "fetch", "origin")
    assert r.code == 0 and json.loads(r.out_bytes)["kind"] == "transfer"
    r = cli("--json", "vault", "clone", url, "copy")
    assert r.code == 0, r.err
    assert json.loads(r.out_bytes)["kind"] == "vault_create"
    assert "objects" in r.err  # a bar of one of git's phases


def test_a_server_killed_mid_push_changes_nothing_and_a_retry_works(populated, tmp_path):
    v = populated
    _big_vault(v, 24)
    base = tmp_path / "daemon"
    base.mkdir()
    served = base / "proj.git"
    git("init", "-q", "--bare", str(served))
    port = _free_port()
    daemon = _start_daemon(base, port)
    remote.add(v, "origin", f"git://127.0.0.1:{port}/proj.git")
    repo = libgit2_repo(v)
    before = {r: str(repo.references[r].resolve().target) for r in repo.references}

    def kill_on_first_write(phase: str, done: int, total: int) -> None:
        if phase == "Writing objects" and daemon.poll() is None:
            _stop_daemon(daemon, signal.SIGKILL)

    try:
        with pytest.raises(remote.RemoteError):
            remote.push(v, "origin", ["main"], checkpoints=True, progress=kill_on_first_write)
        after = {r: str(repo.references[r].resolve().target) for r in repo.references}
        assert after == before  # no ref moved here, not even a remote-tracking one
        assert git("--git-dir", str(served), "for-each-ref") == ""  # nor there
        git("--git-dir", v.path, "fsck", "--strict")
        daemon = _start_daemon(base, port)
        res = remote.push(v, "origin", ["main"], checkpoints=True)
        assert {u.ref for u in res.updates} == {"refs/heads/main", "refs/avfs/checkpoints/main/-/first",
                                                 "refs/avfs/checkpoints/main/-/big"}  # fmt: skip
        assert git("--git-dir", str(served), "rev-parse", "main").strip() == v.workspace("main").tip()
        git("--git-dir", str(served), "fsck", "--strict")
    finally:
        _stop_daemon(daemon)


def test_a_push_the_server_declines_says_so_and_moves_nothing_anywhere(populated, bare, tmp_path):
    """A pre-receive hook refusing is not a non-fast-forward (pulling would not help); and
    with several forks, one refused ref leaves the others unpushed (git push --atomic)."""
    v = populated
    remote.add(v, "origin", str(bare))
    remote.push(v, "origin", ["main"])
    v.create_fork("main", "agent")
    v.workspace("agent").write("agent.txt", b"a\n")
    checkpoint.save(v, "agent")
    v.workspace("main").write("main.txt", b"m\n")
    checkpoint.save(v, "main")
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(
        '#!/bin/sh\nwhile read old new ref; do [ "$ref" = refs/heads/main ] && { echo "main is frozen" >&2; exit 1; }; done\nexit 0\n'
    )
    hook.chmod(0o755)
    before = git("--git-dir", str(bare), "for-each-ref")
    with pytest.raises(remote.RemoteRejectedError) as exc:
        remote.push(v, "origin", all_forks=True)
    d = exc.value.details
    assert d["reason"] == "declined" and d["pushed"] == [] and "avfs pull" not in (exc.value.hint or "")
    assert git("--git-dir", str(bare), "for-each-ref") == before  # agent was not pushed either
    assert "refs/remotes/origin/agent" not in git("--git-dir", v.path, "for-each-ref")
    hook.unlink()
    res = remote.push(v, "origin", all_forks=True)
    assert {u.ref for u in res.updates} == {"refs/heads/main", "refs/heads/agent"}


# -- every userinfo form: stripped from storage and command lines, hidden in output ------------


def _argv_shim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `git` first on PATH that logs every argv it is run with; returns the log."""
    import shutil

    shim, log = tmp_path / "shim", tmp_path / "argv.log"
    shim.mkdir()
    real = shutil.which("git")
    assert real is not None
    (shim / "git").write_text(
        f'#!/bin/sh\ntest -n "$NO_ARGV_LOG" || printf "%s\\n" "git $*" >> "{log}"\nexec "{real}" "$@"\n'
    )
    (shim / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    log.write_text("")
    return log


def _set_url(git_dir: str, name: str, url: str) -> None:
    """What git itself (or an older avfs) may have stored; not logged by the shim."""
    env = {**os.environ, "NO_ARGV_LOG": "1"}
    subprocess.run(["git", "--git-dir", git_dir, "config", f"remote.{name}.url", url], env=env, check=True)


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("https://TOKEN@h.invalid/r.git", "https://h.invalid/r.git"),
        ("https://u:p@ss@h.invalid/r.git", "https://h.invalid/r.git"),
        ("http://%61gent:pa%24%24@h.invalid:8080/r", "http://h.invalid:8080/r"),
        ("https://ghp_0123456789abcdefABCDEF@github.com/o/r", "https://github.com/o/r"),
        ("ssh://git@h.invalid/r.git", "ssh://git@h.invalid/r.git"),
        ("ssh://git:secret@h.invalid/r.git", "ssh://git@h.invalid/r.git"),
        ("ssh://ghp_0123456789abcdefABCDEF@github.com/o/r", "ssh://github.com/o/r"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("glpat-abcdefghij0123456789@gitlab.com:o/r.git", "gitlab.com:o/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
    ],
)
def test_split_credentials_forms(url, clean):
    got, creds = split_credentials(url)
    assert got == clean
    assert (creds is None) == (url == clean)
    shown = redact(f"fatal: {url} failed")
    if creds is not None:
        assert (creds[1] or creds[0]) not in shown and "***" in shown
    else:
        assert shown == f"fatal: {url} failed"


def test_a_token_as_the_user_name_is_never_stored_shown_or_on_a_command_line(
    populated, http_git, monkeypatch, tmp_path, cli_proc
):
    url, served, token = http_git
    v = populated
    log = _argv_shim(tmp_path, monkeypatch)
    config = Path(v.path) / "config"
    forms = {
        "tok": url.replace("http://", f"http://{token}@"),  # the token as the user name
        "pair": url.replace("http://", f"http://agent:{token}@"),
        "enc": url.replace("http://", "http://%61gent:" + "".join(f"%{b:02X}" for b in token.encode()) + "@"),
    }
    for name, with_creds in forms.items():
        r = cli_proc("--json", "--vault", "v", "remote", "add", name, with_creds)
        doc = r.json()
        assert r.code == 0 and doc["remote"]["url"] == url and doc["warnings"], r.out
        assert token not in r.out + r.err and token not in config.read_text()
    r = cli_proc("--json", "--vault", "v", "remote", "list")
    assert r.code == 0 and token not in r.out and {x["url"] for x in r.json()["remotes"]} == {url}
    # nothing stored, so nothing to push with: a clear error, never a prompt, no secret
    r = cli_proc("--json", "--vault", "v:main", "push", "tok")
    assert r.code == 5 and r.json()["error"]["code"] == "remote_failed", r.out
    # a token stored by someone else (git itself, an older avfs): cleaned before git reads it,
    # used for this one call through the environment, never on a command line
    for form in ("tok", "pair", "enc"):
        _set_url(v.path, form, forms[form])
        r = cli_proc("--json", "--vault", "v:main", "push", form)
        assert r.code == 0, r.out + r.err
        assert r.json()["result"]["warnings"] and token not in r.out + r.err
        assert token not in config.read_text()
        assert git("--git-dir", v.path, "config", f"remote.{form}.url").strip() == url
        _set_url(v.path, form, forms[form])
        r = cli_proc("--json", "--vault", "v:main", "fetch", form)
        assert r.code == 0 and token not in r.out + r.err, r.out + r.err
        assert token not in config.read_text()
    assert git("--git-dir", str(served), "rev-parse", "main").strip() == v.workspace("main").tip()
    argv = log.read_text()
    assert "push" in argv and "fetch" in argv and url in argv  # the shim saw git's commands
    assert token not in argv
    # a clone from a URL with the token as its user name: used, never stored or on argv
    r = cli_proc("--json", "--home", str(tmp_path / "home2"), "vault", "clone", forms["tok"], "cloned")
    assert r.code == 0 and token not in r.out + r.err, r.out + r.err
    cloned = tmp_path / "home2" / "vaults" / "cloned.git"
    assert token not in (cloned / "config").read_text() and token not in log.read_text()
    # a wrong token in the config: refused, and not repeated in the error
    _set_url(v.path, "tok", url.replace("http://", "http://wrong-token-9876@"))
    r = cli_proc("--json", "--vault", "v:main", "fetch", "tok")
    assert r.code == 5 and "wrong-token-9876" not in r.out + r.err + config.read_text()
    # an exec whose command line holds a URL with a token: not in the audit log, not in the commit
    r = cli_proc("--json", "--vault", "v:main", "proxy", "exec", "--mode", "materialized", "--",
                 "sh", "-c", f"echo {forms['tok']} > note.txt")  # fmt: skip
    doc = json.loads(r.out)
    assert doc["commit"], r.out
    assert token not in (Path(v.state_dir) / "audit.ndjson").read_text()
    assert token not in git("--git-dir", v.path, "log", "-1", "--format=%B", "main")


def test_a_push_tells_the_fast_forward_with_libgit2_where_it_is_loaded(
    populated, bare, tmp_path, monkeypatch
):
    """A push of a fork that moved since the last push checks that the fork contains what
    the vault last saw there: in a process with libgit2 loaded (the warm CLI server) by
    libgit2, with no `git merge-base` process; cold, by git. Both give git's answer, a
    fast-forward pushed and a rewritten remote refused alike."""
    import pygit2  # (loaded, as in the warm server)

    assert pygit2
    v = populated
    ran: list[str] = []
    real = remote.transport

    def spy(git_dir: str, *args: str, **kw: Any) -> Any:
        ran.append(next(a for a in args if not a.startswith("-")))
        return real(git_dir, *args, **kw)

    monkeypatch.setattr(remote, "transport", spy)
    remote.add(v, "origin", str(bare))
    remote.push(v, "origin", ["main"])
    seen = v.workspace("main").tip()
    for cold in (False, True):
        monkeypatch.setattr(remote, "libgit2_loaded", lambda cold=cold: not cold)
        v.workspace("main").write(f"more-{cold}.txt", b"more\n")
        checkpoint.save(v)
        tip = v.workspace("main").tip()
        assert (
            subprocess.run(["git", "--git-dir", v.path, "merge-base", "--is-ancestor", seen, tip]).returncode
            == 0
        )
        ran.clear()
        remote.push(v, "origin", ["main"])  # a fast-forward of what it last saw
        assert git("--git-dir", str(bare), "rev-parse", "main").strip() == tip
        assert ("merge-base" in ran) == cold, ran
        seen = tip
    # the remote rewritten (its main no longer in the fork): refused, by either way
    clone = tmp_path / "rewriter"
    git("clone", "-q", str(bare), str(clone))
    git("-c", "user.name=o", "-c", "user.email=o@x", "commit", "-q", "--amend", "-m", "rewritten", cwd=clone)
    git("push", "-q", "--force", "origin", "main", cwd=clone)
    remote.fetch(v, "origin")  # the vault sees the rewritten main: not in the fork
    rewritten = git("--git-dir", str(bare), "rev-parse", "main").strip()
    for cold in (False, True):
        monkeypatch.setattr(remote, "libgit2_loaded", lambda cold=cold: not cold)
        v.workspace("main").write(f"mine-{cold}.txt", b"mine\n")
        checkpoint.save(v)
        ran.clear()
        with pytest.raises(remote.RemoteRejectedError):
            remote.push(v, "origin", ["main"])
        assert ("merge-base" in ran) == cold, ran
        assert git("--git-dir", str(bare), "rev-parse", "main").strip() == rewritten


@pytest.mark.parametrize(
    "argv",
    [["push", "origin", "main"], ["fetch", "origin"], ["vault", "clone", "git://127.0.0.1:9/x.git", "c"]],
)
def test_a_direct_transfer_starts_the_next_calls_server_after_it(monkeypatch, argv):
    """With no server to answer, a push, fetch or clone runs in its own process and only
    then starts a server for the next call (its start-up, ~0.5 s of CPU, took a core from
    git's pack-objects or index-pack), as gc does; with AVFS_SERVER=off none starts."""
    import sys

    from avfs_git.cli import client, execopts

    calls: list[str] = []
    monkeypatch.setattr(client, "served", lambda args, *, start=True: calls.append(f"served start={start}"))
    monkeypatch.setattr(client, "start_for_next", lambda home: calls.append("start"))
    monkeypatch.setattr(execopts, "run_closed", lambda args: calls.append(f"run {args}") or 0)
    # (_end_alone: the ordinary exit where another thread runs, as under pytest-xdist)
    monkeypatch.setattr(client, "_end_alone", lambda code: calls.append(f"end {code}") or code)
    args = ["--home", "/nowhere", "--json", *argv]
    monkeypatch.setattr(sys, "argv", ["avfs", *args])
    monkeypatch.setenv("AVFS_SERVER", "auto")
    assert client.main() == 0
    assert calls == ["served start=False", f"run {args}", "start", "end 0"]
    calls.clear()
    monkeypatch.setenv("AVFS_SERVER", "off")
    assert client.main() == 0
    assert calls == ["served start=False", f"run {args}", "end 0"]


def test_a_direct_push_fetch_and_clone_close_their_databases_and_skip_pythons_finalization(
    populated, bare, tmp_path
):
    """A direct push, fetch and vault clone (no server) end once the answer is out, without
    Python's finalization, after closing what they opened: the op log's WAL is written back
    and removed, as at an ordinary exit, each answer is whole, and what they did is there."""
    import sys

    v = populated
    remote.add(v, "origin", str(bare))
    v.workspace("main").write("more.txt", b"more\n")
    checkpoint.save(v)
    tip = v.workspace("main").tip()
    home = os.path.dirname(os.path.dirname(v.path))
    v.close()  # the op log's last connection is then the command's
    wal = os.path.join(v.state_dir, "oplog.db-wal")
    probe = (
        "import atexit, sys; atexit.register(lambda: sys.stderr.write('finalized\\n')); "
        "sys.argv[1:] = ['--home', sys.argv[1], '--json', *sys.argv[2:]]; "
        "from avfs_git.cli.client import main; sys.exit(main())"
    )
    env = {**os.environ, "AVFS_SERVER": "off"}
    for argv, kind in (
        (["--vault", v.name, "push", "origin", "main"], "transfer"),
        (["--vault", v.name, "fetch", "origin"], "transfer"),
        (["vault", "clone", str(bare), "copy"], "vault"),
    ):
        p = subprocess.run(
            [sys.executable, "-c", probe, home, *argv], capture_output=True, env=env, timeout=120
        )
        assert p.returncode == 0, p.stderr
        assert b"finalized" not in p.stderr, argv
        assert json.loads(p.stdout)["kind"].startswith(kind), p.stdout
        assert not os.path.exists(wal), argv
    assert git("--git-dir", str(bare), "rev-parse", "main").strip() == tip
    assert git("--git-dir", v.path, "rev-parse", "refs/remotes/origin/main").strip() == tip
    copy = os.path.join(home, "vaults", "copy.git")
    assert git("--git-dir", copy, "rev-parse", "main").strip() == tip
    assert not os.path.exists(os.path.join(copy, "avfs", "oplog.db-wal"))
    git("--git-dir", copy, "fsck", "--strict", "--no-dangling", "--no-progress")


@pytest.mark.parametrize("cause", ["auth_failed", "not_a_repository", "unreachable"])
def test_a_push_whose_ls_remote_fails_names_the_remote_and_why(
    populated, http_git, tmp_path, monkeypatch, cli, cause
):
    """A push of a fork that lacks what this vault last saw on the remote asks the server
    where its branch is now (`git ls-remote`) before it refuses. That call failing was
    `git ls-remote failed: <git's words>`, naming neither the remote nor the cause, unlike
    every other remote error: it now names the remote, its URL and why (the credentials
    refused, no repository there, the server not reached) with `details.reason` and a hint
    that fits; nothing is pushed and nothing moves."""
    url, served, password = http_git
    v = populated
    remote.add(v, "origin", url)
    monkeypatch.setenv("AVFS_GIT_USERNAME", "agent")
    monkeypatch.setenv("AVFS_GIT_TOKEN", password)
    _settings_from_env(v)
    first = v.workspace("main").tip()
    v.workspace("main").write("second.txt", b"2\n")
    checkpoint.save(v)
    remote.push(v, "origin", ["main"])
    checkpoint.restore(v, "main", first)  # the fork lacks what it last saw there
    if cause == "auth_failed":
        monkeypatch.setenv("AVFS_GIT_TOKEN", "expired-t0ken-4711")
    else:
        not_git = tmp_path / "not-a-repo"
        not_git.mkdir()
        broken = str(not_git) if cause == "not_a_repository" else f"git://127.0.0.1:{_free_port()}/x.git"
        remote.set_url(v, "origin", broken)
        url = broken
    refs_before = git("--git-dir", v.path, "for-each-ref")
    served_before = git("--git-dir", str(served), "for-each-ref")
    r = cli("--json", "--vault", "v", "push", "origin", "main")
    assert r.code == 5, (r.out, r.err)
    err = json.loads(r.out_bytes)["error"]
    assert err["code"] == "remote_failed" and err["details"]["reason"] == cause, err
    assert err["details"]["remote"] == "origin" and err["details"]["url"] == url, err
    words = {
        "auth_failed": "the server refused the credentials",
        "not_a_repository": "there is no git repository at that URL",
        "unreachable": "the server could not be reached",
    }[cause]
    assert "origin" in err["message"] and words in err["message"] and "ls-remote failed" not in err["message"]
    hint = {"auth_failed": "AVFS_GIT_TOKEN", "not_a_repository": "set-url", "unreachable": "server is up"}
    assert hint[cause] in err["hint"], err
    assert password not in r.out + r.err and "expired-t0ken-4711" not in r.out + r.err
    assert git("--git-dir", v.path, "for-each-ref") == refs_before
    assert git("--git-dir", str(served), "for-each-ref") == served_before
