"""Lazy vaults against bad servers over each transport (docs/lazy.md "Offline, a dead
server, a slow one"): `git daemon` (git://, avfs's kept connection), `git http-backend`
behind Basic auth (HTTP, `git fetch` with the token) and sshd (ssh, the user's key), each
reached through a :class:`~tests.lazyrelay.Relay` that can cut the server off in the
middle of a large fetch or turn it into a listener that never answers; read through the
Python API and through mounts of both backends. Each checks the reader's error, that
nothing partial stays in the vault (`git fsck`, `gc` and `doctor` after it), that the
read works once the server is back, and that credentials never show."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from avfs_git.core.errors import BlobNotLocalError
from avfs_git.core.settings import Settings
from avfs_git.core.vaults.home import Home
from avfs_git.ops import maintenance, mounts

from .conftest import IN_CI, git
from .lazyrelay import Relay
from .test_fuse import require_fuse
from .test_lazy import Server, _source_history, blob_at, missing, objects
from .test_lazy_bad import BIG, _leftovers, add_big_file
from .test_remotes import http_git as http_git
from .test_remotes import sshd as sshd

SSH_OPTS = (
    "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes"
)


@dataclass
class Served:
    """A repository served over one transport, through a relay."""

    transport: str
    url: str  # through the relay
    repo: Path  # the served bare repository
    relay: Relay
    secret: str | None  # the HTTP password, the ssh key's path


# the served repository, made once a process: tests only read it (each serves a copy)
_TEMPLATE: dict[str, Path] = {}


def _served_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare ``proj.git``: the test history (tests/test_lazy.py's, filters, any object and
    object-info allowed, as its ``server`` fixture serves it) with :data:`BIG` (8 MiB,
    incompressible) pushed on top. Made at the first test (the hermetic fixture's author)
    and copied into each test's server: its git work (two pack writes of 8 MiB that no
    delta shrinks, a history imported) was ~1.5-2.5 s of each test's ~5 s of CPU."""
    if "repo" not in _TEMPLATE:
        top = tmp_path_factory.mktemp("served-template")
        repo = top / "proj.git"
        _source_history(repo)
        for key in (
            "uploadpack.allowFilter",
            "uploadpack.allowAnySHA1InWant",
            "transfer.advertiseObjectInfo",
        ):
            git("--git-dir", str(repo), "config", key, "true")
        add_big_file(repo)
        _TEMPLATE["repo"] = repo
    return _TEMPLATE["repo"]


def _copy_served(template: Path, repo: Path) -> None:
    """``repo`` (the empty bare repository a server fixture made and serves) made a copy of
    ``template``."""
    shutil.rmtree(repo)
    shutil.copytree(template, repo, symlinks=True)


@pytest.fixture
def served(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Served]:
    """The test history (tests/test_lazy.py) with an 8 MiB incompressible file on top
    (:func:`_served_template`, a copy each test), served over ``request.param`` (``git``,
    ``http``, ``ssh``) through a :class:`Relay`; the credentials in the environment as a
    user gives them to push and fetch."""
    transport = request.param
    template = _served_template(tmp_path_factory)
    secret: str | None = None
    with contextlib.ExitStack() as stack:
        if transport == "git":
            base = tmp_path / "daemon"
            base.mkdir()
            shutil.copytree(template, base / "proj.git", symlinks=True)
            server = stack.enter_context(Server.serving(base))
            repo, url = base / "proj.git", server.url("proj.git")
        elif transport == "http":
            url, repo, secret = request.getfixturevalue("http_git")
            _copy_served(template, repo)
            git("--git-dir", str(repo), "config", "http.receivepack", "true")  # (as http_git sets it)
            monkeypatch.setenv("AVFS_GIT_TOKEN", secret)
            monkeypatch.setenv("AVFS_GIT_USERNAME", "agent")
        else:
            url, repo, key = request.getfixturevalue("sshd")
            _copy_served(template, repo)
            secret = str(key)
            monkeypatch.setenv("GIT_SSH_COMMAND", f"ssh -i {key} {SSH_OPTS}")
        port = int(url.split("127.0.0.1:", 1)[1].split("/", 1)[0])
        relay = Relay(port)
        stack.callback(relay.close)
        yield Served(transport, relay.url(url), repo, relay, secret)


def _lazy_clone(home: Home, s: Served, **config: object) -> object:
    home.settings = Settings.from_environ(None, home.path)  # (the token, as a front end reads it)
    v = home.clone_vault(s.url, "p", lazy=True)
    if config:
        _configure(v, **config)
    return v


def _configure(v: object, **config: object) -> None:
    """The vault's ``avfs/config.json`` made ``config`` (read at each fetch: a mount's daemon
    takes a new ``fetch_timeout_s`` at its next fetch)."""
    path = os.path.join(v.path, "avfs")  # type: ignore[attr-defined]
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as fh:
        json.dump(config, fh)


# The fetch timeout while the server is silent: every fetch and size request gives up at it,
# and a first `stat` or git in a fresh mount waits for several in turn (docs/lazy.md); what
# the tests check (EIO, `blob_not_local`, nothing committed) is the same at any timeout, so
# they wait 0.5 s, not 2-3, and set the default back once the server answers again.
SILENT_TIMEOUT_S = 0.5


def _require_backend(backend: str) -> None:
    require_fuse()
    if backend == "overlay" and (why := mounts.overlay_available()) is not None:
        if IN_CI:
            pytest.fail(f"overlayfs must be available in CI: {why}")
        pytest.skip(f"requires overlayfs: {why}")


def _read(reader: str, v: object, mp: Path) -> bytes:
    if reader == "api":
        return v.workspace("main").read(BIG)  # type: ignore[attr-defined,no-any-return]
    return (mp / BIG).read_bytes()


def _local(v_path: str, oid: str) -> bool:
    """Whether the vault holds ``oid`` (its objects listed: asking git for a promised
    object by id would fetch it from the promisor remote)."""
    listing = git("--git-dir", v_path, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    return oid in listing.split()


def _intact(v_path: str) -> None:
    """git finds nothing wrong (promised blobs are not damage) and the promisor setup is
    there: the remote, its filter, the packs' marks."""
    assert git("--git-dir", v_path, "fsck", "--no-progress").strip() == ""
    assert git("--git-dir", v_path, "config", "remote.origin.promisor").strip() == "true"
    assert git("--git-dir", v_path, "config", "remote.origin.partialclonefilter").strip() == "blob:none"
    assert any(n.endswith(".promisor") for n in os.listdir(os.path.join(v_path, "objects", "pack")))


TIMEOUT_S = 60  # the vault's fetch_timeout_s in these tests (the default)


@pytest.mark.parametrize(
    ("served", "reader"),
    [
        ("git", "fuse"),
        ("http", "api"),
        ("http", "overlay"),
        ("http", "fuse"),
        ("ssh", "api"),
        ("ssh", "overlay"),
    ],
    indirect=["served"],
)
def test_a_server_cut_off_mid_fetch_fails_the_read_leaves_nothing_and_the_retry_works(
    home: Home, served: Served, tmp_path: Path, reader: str
) -> None:
    s = served
    if reader != "api":
        _require_backend(reader)
    v = _lazy_clone(home, s, fetch_timeout_s=TIMEOUT_S)
    big = git("--git-dir", v.path, "rev-parse", f"main:{BIG}").strip()
    mp = tmp_path / "mnt"
    mp.mkdir()
    if reader != "api":
        mounts.mount(home, v, "main", str(mp), backend=reader)
    try:
        if reader != "api":
            assert (mp / BIG).stat().st_size == 8 << 20  # (sizes known: the fetch is the file's)
        before, promised = objects(v.path), missing(v.path)
        head = git("--git-dir", v.path, "rev-parse", "main")
        s.relay.slow.set()
        got: list[BaseException | bytes] = []

        def read() -> None:
            try:
                got.append(_read(reader, v, mp))
            except BaseException as exc:
                got.append(exc)

        thread = threading.Thread(target=read)
        start = s.relay.relayed
        thread.start()
        deadline = time.monotonic() + 30
        while s.relay.relayed - start < (1 << 20):  # the pack is on its way
            assert time.monotonic() < deadline and thread.is_alive(), got
            time.sleep(0.01)
        s.relay.mode = "refuse"  # the server is gone: this connection, and any new one
        s.relay.cut()
        thread.join(TIMEOUT_S)  # the read ends within the fetch timeout (here: at once)
        assert not thread.is_alive()
        (err,) = got
        if reader == "api":
            assert isinstance(err, BlobNotLocalError), err
            assert err.details["path"] == BIG and err.details["remote"] == "origin"
            assert "origin" in err.message and BIG in err.message
        else:
            assert isinstance(err, OSError) and err.errno == 5, err  # EIO
        # nothing of the cut-off pack stays: no object, no temporary file, the same refs
        assert not _local(v.path, big) and _leftovers(v.path) == []
        assert missing(v.path) == promised and git("--git-dir", v.path, "rev-parse", "main") == head
        if reader == "api":
            assert objects(v.path) == before
        _intact(v.path)
        # the server back: the same read gets the whole file
        s.relay.slow.clear()
        s.relay.mode = "pass"
        assert _read(reader, v, mp) == blob_at(s.repo, "main", BIG)
        assert _local(v.path, big) and _leftovers(v.path) == []
    finally:
        if reader != "api":
            mounts.unmount(home, v, "main", lazy=True)
    # doctor calls nothing damage, gc keeps the promisor setup and loses nothing fetched
    assert not [f for f in maintenance.doctor(home).findings if f.vault == "p"]
    promised = missing(v.path)
    maintenance.gc(v)
    _intact(v.path)
    assert missing(v.path) == promised and _local(v.path, big)


@pytest.mark.parametrize(
    ("served", "backend"), [("git", "overlay"), ("http", "fuse"), ("ssh", "overlay")], indirect=["served"]
)
def test_a_server_that_stops_answering_is_eio_in_the_mount_and_blob_not_local_within_the_timeout(
    home: Home, served: Served, tmp_path: Path, cli, backend: str
) -> None:
    s = served
    _require_backend(backend)
    v = _lazy_clone(home, s)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend=backend)
    try:
        rel = "avfs_git/cli/main.py"
        want = (mp / rel).read_bytes()  # fetched while the server answered
        assert (mp / "NOTES.md").stat().st_size > 0  # (its size known: the read is its fetch)
        _configure(v, fetch_timeout_s=SILENT_TIMEOUT_S)
        s.relay.mode = "silent"  # accepts connections, never answers
        s.relay.cut()
        start = time.monotonic()
        with pytest.raises(OSError) as exc:
            (mp / "NOTES.md").read_bytes()
        # EIO once the fetch timeout passed, not hanging (nor waiting the default 60 s)
        assert exc.value.errno == 5 and time.monotonic() - start < 30
        assert (mp / rel).read_bytes() == want  # what was fetched reads
        r = cli("--json", "--home", home.path, "--vault", "p", "cat", "NOTES.md")
        assert r.code == 5, r.out
        err = json.loads(r.out_bytes)["error"]
        assert err["code"] == "blob_not_local" and "timed out" in err["message"], err
        assert err["details"]["path"] == "NOTES.md" and err["details"]["remote"] == "origin"
        s.relay.mode = "pass"
        _configure(v)  # the default timeout: the fetch that works now is never cut short
        assert (mp / "NOTES.md").read_bytes() == blob_at(s.repo, "main", "NOTES.md")
    finally:
        mounts.unmount(home, v, "main", lazy=True)
    _intact(v.path)


def _other_key(tmp_path: Path) -> Path:
    import subprocess

    key = tmp_path / "other-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


@pytest.mark.parametrize("served", ["http", "ssh"], indirect=True)
def test_credentials_that_expired_since_the_clone_are_a_clear_error_that_says_what_to_do(
    home: Home, served: Served, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The credentials that cloned the vault no longer work when a file is first read (a
    token expired, a key revoked): `blob_not_local` naming the remote and the path, saying
    the server refused the credentials and how to give them; no secret in it."""
    s = served
    v = _lazy_clone(home, s)
    if s.transport == "http":
        monkeypatch.setenv("AVFS_GIT_TOKEN", "expired-t0ken-4711")
        secrets = [s.secret, "expired-t0ken-4711"]
    else:
        monkeypatch.setenv("GIT_SSH_COMMAND", f"ssh -i {_other_key(tmp_path)} {SSH_OPTS}")
        secrets = []
    promised = missing(v.path)
    r = cli("--json", "--home", home.path, "--vault", "p", "cat", "NOTES.md")
    assert r.code == 5, r.out
    err = json.loads(r.out_bytes)["error"]
    assert err["code"] == "blob_not_local" and err["details"]["remote"] == "origin"
    assert err["details"]["path"] == "NOTES.md" and err["details"]["auth_failed"] is True
    assert "origin" in err["message"] and "refused the credentials" in err["message"]
    assert ("AVFS_GIT_TOKEN" if s.transport == "http" else "ssh key") in err["hint"]
    for secret in secrets:
        assert secret not in r.out + r.err
    assert missing(v.path) == promised
    # the credentials given again: the same read works
    monkeypatch.setenv("AVFS_GIT_TOKEN", s.secret) if s.transport == "http" else monkeypatch.setenv(
        "GIT_SSH_COMMAND", f"ssh -i {s.secret} {SSH_OPTS}"
    )
    r = cli("--home", home.path, "--vault", "p", "cat", "NOTES.md")
    assert r.code == 0 and r.out_bytes == blob_at(s.repo, "main", "NOTES.md")


def _cmdlines_with(secret: bytes) -> list[str]:
    """The command lines (world-readable in /proc) of the processes that show ``secret``."""
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read()
        except OSError:
            continue
        if secret in argv:
            found.append(argv.replace(b"\0", b" ").decode(errors="replace"))
    return found


@pytest.mark.parametrize("served", ["http"], indirect=True)
def test_the_homes_token_reaches_its_mounts_reads_and_never_a_command_line_or_a_file(
    home: Home, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program that gives the token in the home's settings (the Python API), not in its
    environment: a mount's reads fetch with it as the home's own fetches do (its daemon
    gets it through its environment). While a large file comes, no process's command line
    shows the token; afterwards no file of the home (the vault's config, logs, the daemon's
    log, the CLI server's log) holds it."""
    s = served
    assert s.secret is not None
    _require_backend("fuse")
    monkeypatch.delenv("AVFS_GIT_TOKEN")
    home.settings = Settings.from_environ(None, home.path)
    home.settings.git_token = s.secret
    v = home.clone_vault(s.url, "p", lazy=True)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")
    try:
        rel = "avfs_git/core/store/promisor.py"
        assert (mp / rel).read_bytes() == blob_at(s.repo, "main", rel)
        s.relay.slow.set()  # a fetch of some seconds, to look at the processes it runs
        got: list[bytes] = []
        thread = threading.Thread(target=lambda: got.append((mp / BIG).read_bytes()))
        thread.start()
        seen: list[str] = []
        while thread.is_alive():
            seen += _cmdlines_with(s.secret.encode())
            time.sleep(0.05)
        thread.join()
        assert got == [blob_at(s.repo, "main", BIG)] and seen == []
    finally:
        mounts.unmount(home, v, "main", lazy=True)
    for root, _dirs, files in os.walk(home.path):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                assert s.secret.encode() not in fh.read(), os.path.join(root, f)


def _processes_with(needle: str) -> list[str]:
    """The command lines of live processes that hold ``needle`` (a zombie has none)."""
    return [c for c in _cmdlines_with(needle.encode()) if "pytest" not in c.split(" ", 3)[:3]]


@pytest.mark.parametrize("served", ["http", "ssh"], indirect=True)
def test_a_first_read_of_a_fresh_clone_from_a_server_that_stopped_answering_ends_and_leaves_no_process(
    home: Home, served: Served
) -> None:
    """A read outside a mount first asks its tree's sizes (one `object-info` request,
    through git's HTTP helper or an ssh started as git starts it, here through a shell:
    `GIT_SSH_COMMAND`), then fetches: with the server silent, each gives up at the fetch
    timeout, the read is `blob_not_local` naming the path, and none of the processes they
    started is left waiting on the server (the helper or the ssh beneath what was killed)."""
    s = served
    v = _lazy_clone(home, s, fetch_timeout_s=SILENT_TIMEOUT_S)
    s.relay.mode = "silent"
    got: list[BaseException | bytes] = []

    def read() -> None:
        try:
            got.append(v.workspace("main").read("NOTES.md"))
        except BaseException as exc:
            got.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(60)  # (a size request and a fetch, each its timeout, on a loaded machine)
    assert not thread.is_alive(), "the read waits on a server that does not answer"
    (err,) = got
    assert isinstance(err, BlobNotLocalError) and err.details["path"] == "NOTES.md", err
    assert "timed out" in err.message, err
    needle = f"127.0.0.1:{s.relay.port}" if s.transport == "http" else f"-p {s.relay.port}"
    deadline = time.monotonic() + 10
    while (left := _processes_with(needle)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == []
    s.relay.mode = "pass"
    _configure(v)  # the default timeout: the fetch that works now is never cut short
    assert v.workspace("main").read("NOTES.md") == blob_at(s.repo, "main", "NOTES.md")


@pytest.mark.parametrize("served", ["http"], indirect=True)
def test_a_read_the_server_refused_is_eio_in_the_mount_and_its_log_says_why(
    home: Home, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mount whose daemon has a token the server no longer takes (it expired since the
    mount started; here: refused from the start): a read is `EIO`, all a reader sees, and
    the mount's log says why (the remote, the path, the refused credentials and what to
    do), once, without the token or the password."""
    from avfs_git.core.vaults import registry

    s = served
    assert s.secret is not None
    _require_backend("fuse")
    v = _lazy_clone(home, s)
    monkeypatch.setenv("AVFS_GIT_TOKEN", "expired-t0ken-4711")
    home.settings = Settings.from_environ(None, home.path)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")
    try:
        for _ in range(2):
            with pytest.raises(OSError) as exc:
                (mp / "NOTES.md").read_bytes()
            assert exc.value.errno == 5
    finally:
        mounts.unmount(home, v, "main", lazy=True)
    with open(registry.log_path(v.state_dir, "main"), encoding="utf-8") as fh:
        log = fh.read()
    told = [line for line in log.splitlines() if "NOTES.md" in line]
    assert len(told) == 1, log
    assert "remote origin" in told[0] and "refused the credentials" in told[0] and "AVFS_GIT_TOKEN" in told[0]
    assert "expired-t0ken-4711" not in log and s.secret not in log


@pytest.mark.parametrize(("served", "backend"), [("git", "overlay"), ("git", "fuse")], indirect=["served"])
def test_git_in_a_fresh_mount_whose_index_could_not_be_made_fails_and_commits_nothing(
    home: Home, served: Served, tmp_path: Path, backend: str
) -> None:
    """A fresh lazy clone mounted while the server does not answer gets no index (its files'
    sizes never came). git there found no index and listed every file as deleted and
    untracked, so a `git commit` committed the deletion of the whole tree. git now fails
    at its `.git` (EIO) until an index can be made, and works once the server answers."""
    import subprocess

    s = served
    _require_backend(backend)
    v = _lazy_clone(home, s, fetch_timeout_s=SILENT_TIMEOUT_S)
    tip = git("--git-dir", v.path, "rev-parse", "refs/heads/main").strip()
    s.relay.mode = "silent"
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend=backend)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"

    def in_mount(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=mp, env=env, capture_output=True, text=True, timeout=120)

    try:
        st = in_mount("status", "--porcelain")
        assert st.returncode != 0 and "deleted" not in st.stdout and not st.stdout.strip(), st
        c = in_mount("commit", "-q", "-m", "everything gone")
        assert c.returncode != 0, c
        assert git("--git-dir", v.path, "rev-parse", "refs/heads/main").strip() == tip
        s.relay.mode = "pass"
        _configure(v)  # the default timeout: the fetches that work now are never cut short
        st = in_mount("status", "--porcelain")
        assert st.returncode == 0 and st.stdout == "", st
    finally:
        mounts.unmount(home, v, "main", lazy=True)
    assert git("--git-dir", v.path, "rev-parse", "refs/heads/main").strip() == tip
