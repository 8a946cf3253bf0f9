"""Lazy vaults (partial clones, docs/lazy.md): `avfs vault clone --lazy` against a real
`git daemon` on 127.0.0.1 serving a real history (avfs's own source files, committed in the
fixture), blobs fetched through git as they are read, counted in the vault's object store;
offline reads, a server that never answers, a server that does not filter."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from avfs_git.core.errors import BlobNotLocalError
from avfs_git.core.operations import checkpoint, history, merge, search
from avfs_git.core.settings import Settings
from avfs_git.core.vaults.home import Home
from avfs_git.ops import mounts

from .conftest import IN_CI, git
from .test_fuse import require_fuse
from .test_remotes import _free_port, _start_daemon, _stop_daemon
from .test_remotes import http_git as http_git
from .test_remotes import sshd as sshd

PKG = Path(__file__).resolve().parents[1] / "avfs_git"


def _commit_tree(work: Path, message: str) -> None:
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "commit", "-q", "-m", message)


def _source_history(repo: Path) -> None:
    """A bare repository at ``repo`` holding two commits of real files: avfs's own package
    sources, then the same with a few files changed (a real project's layout and sizes)."""
    work = repo.parent / "work"
    git("init", "-q", "-b", "main", str(work))
    for src in sorted(PKG.rglob("*")):
        if src.is_file() and "__pycache__" not in src.parts:
            dst = work / src.relative_to(PKG.parent)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
    _commit_tree(work, "import avfs_git")
    (work / "avfs_git" / "core" / "errors.py").write_text("# second version\n")
    (work / "NOTES.md").write_text("notes\n")
    _commit_tree(work, "second")
    git("clone", "-q", "--bare", str(work), str(repo))


class Server:
    """A `git daemon` on 127.0.0.1 serving ``base`` (stopped and started again by tests)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = _start_daemon(self.base, self.port)

    def stop(self) -> None:
        """The server goes away: the daemon and the processes serving connections it took
        (a connection's ``upload-pack`` outlives a daemon stopped with SIGTERM, and a vault's
        kept connection would go on being served: core/store/blobwire.py)."""
        if self.proc is not None:
            pgid = self.proc.pid
            _stop_daemon(self.proc)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.proc = None

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    @classmethod
    @contextlib.contextmanager
    def serving(cls, base: Path) -> Iterator[Server]:
        """A server of ``base``, started, and stopped when the block ends."""
        srv = cls(base)
        srv.start()
        try:
            yield srv
        finally:
            srv.stop()


# the served repositories, made once a process (:func:`_served_repos`); each test serves
# a copy of its own
_SERVED: dict[str, Path] = {}
SERVED_REPOS = ("proj.git", "plain.git")


def _served_repos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``proj.git`` (the test history, filters allowed, any object may
    be asked for, as a hosting service allows) and ``plain.git`` (the same history, no
    filter support). Made once a process, at its first test (the hermetic fixture's
    author): the history's import (~390 files written, added and committed twice, two bare
    clones: ~0.3 s of CPU and a dozen git processes) was each test's, for ~120 tests."""
    if "base" not in _SERVED:
        top = tmp_path_factory.mktemp("lazy-served")
        _source_history(top / "proj.git")
        git("--git-dir", str(top / "proj.git"), "config", "uploadpack.allowFilter", "true")
        git("--git-dir", str(top / "proj.git"), "config", "uploadpack.allowAnySHA1InWant", "true")
        git("clone", "-q", "--bare", str(top / "proj.git"), str(top / "plain.git"))
        # sizes are asked with protocol v2's object-info (git 2.39 offers it; later gits
        # when this is set)
        git("--git-dir", str(top / "proj.git"), "config", "transfer.advertiseObjectInfo", "true")
        _SERVED["base"] = top
    return _SERVED["base"]


def _link_or_copy(src: str, dst: str) -> None:
    """An object file hard-linked (git writes an object once and never in place, as its own
    local clone links them), any other file of the repository copied."""
    if f".git{os.sep}objects{os.sep}" in src:
        with contextlib.suppress(OSError):
            os.link(src, dst)
            return
    shutil.copy2(src, dst)


def copy_served(template: Path, base: Path) -> None:
    """``base`` (a new directory) given a copy of each of ``template``'s served repositories."""
    for name in SERVED_REPOS:
        shutil.copytree(template / name, base / name, symlinks=True, copy_function=_link_or_copy)


@pytest.fixture
def server(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`git daemon` serving ``proj.git`` and ``plain.git`` (:func:`_served_repos`), this
    test's own copies: a test may push to them, rewrite and collect them."""
    base = tmp_path / "daemon"
    base.mkdir()
    copy_served(_served_repos(tmp_path_factory), base)
    with Server.serving(base) as srv:
        yield srv


def objects(vault_path: str) -> int:
    """How many objects the vault holds (loose and packed)."""
    out = git("--git-dir", vault_path, "count-objects", "-v")
    counts = dict(line.split(": ") for line in out.splitlines())
    return int(counts["count"]) + int(counts["in-pack"])


def missing(vault_path: str) -> int:
    """How many objects reachable from the vault's refs it does not hold (promised)."""
    out = git("--git-dir", vault_path, "rev-list", "--objects", "--all", "--missing=print")
    return sum(1 for line in out.splitlines() if line.startswith("?"))


def blob_at(repo: Path, rev: str, path: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(repo), "cat-file", "blob", f"{rev}:{path}"], capture_output=True, check=True
    ).stdout


@pytest.fixture
def lazy(home: Home, server: Server) -> Home:
    home.clone_vault(server.url("proj.git"), "p", lazy=True)
    return home


@contextlib.contextmanager
def silent_server(port: int) -> Iterator[None]:
    """A listener on 127.0.0.1:``port`` that accepts connections and says nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        sock.close()


def test_a_lazy_clone_holds_commits_and_trees_and_promises_the_blobs(home, server, cli, tmp_path):
    r = cli("--json", "--home", home.path, "vault", "clone", server.url("proj.git"), "p", "--lazy")
    assert r.code == 0, r.err
    doc = json.loads(r.out_bytes)
    assert doc["lazy"] is True and doc["warnings"] == [] and doc["vault"]["head"]
    path = doc["vault"]["path"]
    files = len(git("--git-dir", path, "ls-tree", "-r", "main").splitlines())
    assert files > 100
    # every blob of both commits is promised, none is here; commits and trees are
    assert missing(path) >= files
    assert git("--git-dir", path, "config", "remote.origin.promisor").strip() == "true"
    assert git("--git-dir", path, "config", "remote.origin.partialclonefilter").strip() == "blob:none"
    assert any(n.endswith(".promisor") for n in os.listdir(os.path.join(path, "objects", "pack")))
    v = home.vault("p")
    assert v.lazy and sorted(v.fork_names()) == ["main"]
    # git itself agrees it is whole as a partial clone (promised objects are not damage)
    git("--git-dir", path, "fsck", "--connectivity-only")


def test_reading_a_file_fetches_it_once_and_nothing_else(lazy, server, cli):
    v = lazy.vault("p")
    # a read fetches its directory's other files with it (tests/test_lazy_neighbours.py):
    # here, the file alone
    with open(os.path.join(v.path, "avfs", "config.json"), "w", encoding="utf-8") as fh:
        json.dump({"read_neighbours": 0}, fh)
    before = objects(v.path)
    want = blob_at(server.base / "proj.git", "main", "avfs_git/core/store/gitstore.py")
    assert v.workspace("main").read("avfs_git/core/store/gitstore.py") == want
    assert objects(v.path) == before + 1
    # again, in another process: nothing fetched
    r = cli("--home", lazy.path, "--vault", "p", "cat", "avfs_git/core/store/gitstore.py")
    assert r.code == 0 and r.out_bytes == want
    assert objects(v.path) == before + 1
    # listing and the size of a file already fetched read nothing from the server
    assert "gitstore.py" in [e.name for e in v.workspace("main").listdir("avfs_git/core/store")]
    assert objects(v.path) == before + 1


def test_offline_an_unfetched_file_is_blob_not_local_and_a_fetched_one_reads(lazy, server, cli):
    v = lazy.vault("p")
    ws = v.workspace("main")
    # (and, in the same fetch, cli/'s other files and avfs_git's modules: the file read
    # offline below is outside any package)
    got = ws.read("avfs_git/cli/main.py")
    server.stop()
    before = objects(v.path)
    r = cli("--json", "--home", lazy.path, "--vault", "p", "cat", "NOTES.md")
    assert r.code == 5, r.err
    err = json.loads(r.out_bytes)["error"]
    assert err["code"] == "blob_not_local"
    assert err["details"]["path"] == "NOTES.md" and err["details"]["remote"] == "origin"
    assert "origin" in err["message"] and "NOTES.md" in err["message"]
    with pytest.raises(BlobNotLocalError):
        ws.read("NOTES.md")
    assert objects(v.path) == before  # nothing written, nothing treated as empty
    assert ws.read("avfs_git/cli/main.py") == got
    server.start()  # back: the same read works
    assert ws.read("NOTES.md") == blob_at(server.base / "proj.git", "main", "NOTES.md")


def test_a_server_that_never_answers_fails_within_the_timeout(home, server, tmp_path):
    home.clone_vault(server.url("proj.git"), "p", lazy=True)
    server.stop()
    with silent_server(server.port):  # a listener that accepts and says nothing, where the server was
        v = home.vault("p")
        v.store.promisor.timeout_s = 1.5
        start = time.monotonic()
        with pytest.raises(BlobNotLocalError) as exc:
            v.workspace("main").read("avfs_git/cli/output.py")
        assert time.monotonic() - start < 10
        assert "timed out" in exc.value.message


def test_a_server_without_filter_support_gives_a_whole_vault_and_a_warning(home, server, cli):
    r = cli("--json", "--home", home.path, "vault", "clone", server.url("plain.git"), "w", "--lazy")
    assert r.code == 0, r.err
    doc = json.loads(r.out_bytes)
    assert doc["lazy"] is False and "uploadpack.allowFilter" in doc["warnings"][0]
    assert "warning" in r.err and "cloned whole" in r.err
    path = doc["vault"]["path"]
    assert missing(path) == 0
    assert git("--git-dir", path, "config", "--get-regexp", "promisor", check=False).strip() == ""
    assert not any(n.endswith(".promisor") for n in os.listdir(os.path.join(path, "objects", "pack")))
    assert not home.vault("w").lazy


def test_grep_and_diff_fetch_what_they_read_in_one_batch(lazy, server):
    v = lazy.vault("p")
    ws = v.workspace("main")
    packs = lambda: {n for n in os.listdir(os.path.join(v.path, "objects", "pack")) if n.endswith(".pack")}  # noqa: E731
    before = packs()
    diff = history.diff(v, "main", "main~1", "main")
    text = history.patch_text(v, diff)
    assert "# second version" in text and "notes" in text
    assert len(packs() - before) == 1  # the changed files' old blobs: one fetch
    before = packs()
    found = search.grep(ws, "def prefer_libgit2", ["avfs_git/core/store"])
    assert [f.path for f in found.files] == ["avfs_git/core/store/gitstore.py"]
    assert len(packs() - before) == 1  # every file under the path, in one fetch
    assert missing(v.path) > 0  # and nothing outside it


def test_checkpoint_and_merge_on_a_lazy_fork_fetch_only_what_both_sides_changed(lazy, server):
    v = lazy.vault("p")
    main = v.workspace("main")
    v.fork("main", "a")
    v.fork("main", "b")
    a, b = v.workspace("a"), v.workspace("b")
    before = objects(v.path)
    a.write("NOTES.md", b"notes\nfrom a\n")
    a.write("avfs_git/new_a.py", b"A = 1\n")
    checkpoint.save(v, "a", name="a1")
    b.write("avfs_git/new_b.py", b"B = 1\n")
    b.write("NOTES.md", b"from b\nnotes\n")
    checkpoint.save(v, "b", name="b1")
    fetched_before = v.store.promisor.fetched
    result = merge.merge(v, "a", "b")
    assert not result.conflicts, result
    merged = v.workspace("b").read("NOTES.md")
    assert b"from a" in merged and b"from b" in merged
    # only NOTES.md's ancestor blob came from the server (both sides changed it)
    assert v.store.promisor.fetched - fetched_before == 1
    assert missing(v.path) > 100
    assert objects(v.path) > before
    del main


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_lazy_fork_mounts_and_ls_stat_find_git_status_fetch_nothing(lazy, server, tmp_path, backend):
    require_fuse()
    if backend == "overlay" and (why := mounts.overlay_available()) is not None:
        if IN_CI:
            pytest.fail(f"overlayfs must be available in CI: {why}")
        pytest.skip(f"requires overlayfs: {why}")
    v = lazy.vault("p")
    src = server.base / "proj.git"
    mp = tmp_path / "mnt"
    mp.mkdir()
    before = objects(v.path)
    mounts.mount(lazy, v, "main", str(mp), backend=backend)
    try:
        at_mount = objects(v.path)
        assert at_mount - before <= 1  # the tree's .gitignore files at most (git needs them)
        names = sorted(os.listdir(mp / "avfs_git" / "core" / "store"))
        assert "gitstore.py" in names
        # sizes are the true ones, from the size cache the mount filled as it started
        rel = "avfs_git/core/store/promisor.py"
        assert (mp / rel).stat().st_size == len(blob_at(src, "main", rel))
        found = subprocess.run(
            ["find", str(mp), "-type", "f", "-size", "+1k"], capture_output=True, check=True
        )
        assert len(found.stdout.splitlines()) > 50
        status = subprocess.run(["git", "status", "--porcelain"], cwd=mp, capture_output=True, text=True)
        assert status.returncode == 0 and status.stdout == "", status
        assert objects(v.path) == at_mount  # ls, stat, find, git status: nothing fetched
        # a read fetches the file, once (with its directory's other files:
        # tests/test_lazy_neighbours.py counts them)
        assert (mp / rel).read_bytes() == blob_at(src, "main", rel)
        after_read = objects(v.path)
        assert after_read > at_mount
        assert (mp / rel).read_bytes() == blob_at(src, "main", rel)
        assert objects(v.path) == after_read
        # offline: a fetched file reads, an unfetched one is EIO (not empty, no hang)
        server.stop()
        assert (mp / rel).read_bytes() == blob_at(src, "main", rel)
        # (NOTES.md: outside the package whose modules came with the read)
        with pytest.raises(OSError) as exc:
            (mp / "NOTES.md").read_bytes()
        assert exc.value.errno == errno.EIO
        assert (mp / "NOTES.md").stat().st_size > 0  # its size is still known
    finally:
        mounts.unmount(lazy, v, "main", lazy=True)


def _serve_over_http(server: Server, served: Path) -> None:
    git("--git-dir", str(served), "fetch", "-q", str(server.base / "proj.git"), "+refs/heads/*:refs/heads/*")
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant", "transfer.advertiseObjectInfo"):
        git("--git-dir", str(served), "config", key, "true")


def _packs(v_path: str) -> int:
    return len([n for n in os.listdir(os.path.join(v_path, "objects", "pack")) if n.endswith(".pack")])


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_over_http_with_credentials_sizes_come_from_object_info_and_a_mount_fetches_nothing(
    home, server, http_git, tmp_path, monkeypatch, backend
):
    """Smart HTTP (`git http-backend`, Basic auth): the mount asks the sizes with protocol
    v2's object-info through git's HTTP helper, with the token as push and fetch use it
    (the clone asks none: fuse/settle.py); the mount fetches nothing, `stat` shows true
    sizes, a read fetches that file; the secret is never written into the vault."""
    require_fuse()
    if backend == "overlay" and (why := mounts.overlay_available()) is not None:
        if IN_CI:
            pytest.fail(f"overlayfs must be available in CI: {why}")
        pytest.skip(f"requires overlayfs: {why}")
    url, served, password = http_git
    _serve_over_http(server, served)
    monkeypatch.setenv("AVFS_GIT_TOKEN", password)
    monkeypatch.setenv("AVFS_GIT_USERNAME", "agent")
    home.settings = Settings.from_environ(None, home.path)
    v = home.clone_vault(url, "n", lazy=True)
    assert v.lazy and not os.path.exists(os.path.join(v.path, "avfs", "blob-sizes"))
    before, promised = objects(v.path), missing(v.path)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend=backend)
    try:
        assert objects(v.path) - before <= 1  # the tree's .gitignore files at most
        rel = "avfs_git/core/store/promisor.py"
        assert (mp / rel).stat().st_size == len(blob_at(served, "main", rel))
        assert os.path.getsize(os.path.join(v.path, "avfs", "blob-sizes")) > 0  # object-info
        sizes = subprocess.run(
            ["find", str(mp), "-type", "f", "-size", "+1k"], capture_output=True, check=True
        )
        assert len(sizes.stdout.splitlines()) > 50
        assert missing(v.path) >= promised - 1  # ls, stat, find: nothing fetched
        at = missing(v.path)
        assert (mp / rel).read_bytes() == blob_at(served, "main", rel)
        assert missing(v.path) < at  # it (and its directory's other files, in the same fetch)
    finally:
        mounts.unmount(home, v, "main", lazy=True)
    for root, _dirs, files in os.walk(v.path):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                assert password.encode() not in fh.read(), f


def test_over_http_a_server_without_protocol_v2_gives_no_sizes_and_a_mount_fetches_the_tree_once(
    home, server, http_git, tmp_path, monkeypatch
):
    """A smart HTTP server that speaks only protocol v0 (its web server does not pass
    `Git-Protocol` on) cannot say sizes: the clone works as before, and a mount fetches its
    tree's files in one batch (the history's other versions stay on the server)."""
    require_fuse()
    url, served, password = http_git
    _serve_over_http(server, served)
    (served.parent / "v0-only").write_text("")
    monkeypatch.setenv("AVFS_GIT_TOKEN", password)
    monkeypatch.setenv("AVFS_GIT_USERNAME", "agent")
    home.settings = Settings.from_environ(None, home.path)
    v = home.clone_vault(url, "n", lazy=True)
    assert v.lazy and not os.path.exists(os.path.join(v.path, "avfs", "blob-sizes"))
    packs_before = _packs(v.path)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")
    try:
        # (a stat waits for the mount's fetch of the tree, made once it answers)
        assert (mp / "NOTES.md").stat().st_size == len(blob_at(served, "main", "NOTES.md"))
        assert _packs(v.path) == packs_before + 1
        rel = "avfs_git/core/store/promisor.py"
        assert (mp / rel).read_bytes() == blob_at(served, "main", rel)
        assert missing(v.path) > 0  # the history's other blobs stay on the server
    finally:
        mounts.unmount(home, v, "main", lazy=True)
    for root, _dirs, files in os.walk(v.path):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                assert password.encode() not in fh.read(), f


def test_over_ssh_sizes_come_from_object_info_and_a_mount_fetches_nothing(
    home, server, sshd, tmp_path, monkeypatch
):
    """ssh (a real sshd on 127.0.0.1, the user's key through GIT_SSH_COMMAND as for push):
    the sizes are asked with protocol v2's object-info (GIT_PROTOCOL, which the server
    accepts), so a mount fetches nothing and a read fetches its file. A server that does not
    take GIT_PROTOCOL answers in v0: no sizes, and the mount fetches its tree in one batch."""
    require_fuse()
    url, served, key = sshd
    _serve_over_http(server, served)  # (the same set-up: any transport)
    opts = (
        "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes"
    )
    monkeypatch.setenv("GIT_SSH_COMMAND", f"ssh -i {key} {opts}")
    v = home.clone_vault(url, "s", lazy=True)
    assert v.lazy and not os.path.exists(os.path.join(v.path, "avfs", "blob-sizes"))  # the mount asks
    before = missing(v.path)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")
    try:
        rel = "avfs_git/core/store/promisor.py"
        assert (mp / rel).stat().st_size == len(blob_at(served, "main", rel))
        assert os.path.getsize(os.path.join(v.path, "avfs", "blob-sizes")) > 0  # object-info
        assert missing(v.path) == before
        assert (mp / rel).read_bytes() == blob_at(served, "main", rel)
        assert missing(v.path) < before  # it (and its directory's other files, in the same fetch)
    finally:
        mounts.unmount(home, v, "main", lazy=True)
    # a server that does not take GIT_PROTOCOL: v0, no sizes
    monkeypatch.setenv("GIT_SSH_COMMAND", f"ssh -i {key} {opts} -o SetEnv=GIT_PROTOCOL=")
    w = home.clone_vault(url, "w", lazy=True)
    assert w.lazy
    w.workspace("main").stat("NOTES.md")  # a size outside a mount asks the tree's: none given
    assert not os.path.exists(os.path.join(w.path, "avfs", "blob-sizes"))


def test_gc_keeps_the_promisor_setup_and_doctor_does_not_call_promised_blobs_damage(lazy, server):
    from avfs_git.ops import maintenance

    v = lazy.vault("p")
    rel = "avfs_git/cli/main.py"
    want = v.workspace("main").read(rel)
    before, promised = objects(v.path), missing(v.path)
    for full in (False, True):  # (git fsck --connectivity-only, and every object read)
        report = maintenance.doctor(lazy, full=full)
        assert not [f for f in report.findings if f.vault == "p"], (full, report.findings)
        assert objects(v.path) == before  # doctor fetched nothing
    maintenance.gc(v)
    pack_dir = os.path.join(v.path, "objects", "pack")
    assert any(n.endswith(".promisor") for n in os.listdir(pack_dir))
    assert git("--git-dir", v.path, "config", "remote.origin.promisor").strip() == "true"
    assert missing(v.path) == promised  # nothing fetched, nothing lost
    v.close()
    server.stop()  # what was fetched before gc reads offline after it
    assert lazy.vault("p").workspace("main").read(rel) == want


def test_a_direct_gc_of_a_lazy_vault_keeps_its_promisor_setup_without_loading_the_wire(lazy, server):
    """A cold `avfs gc` (its own process, run_closed) of a lazy vault: the promisor remote and
    the packs' ``.promisor`` marks stay, nothing is fetched or lost, and the process loads
    neither the lazy-vault wire (blobwire, socket, urllib) nor a workspace: the promisor
    handle the vault opens still is there for a read (docs/lazy.md on gc)."""
    from .test_gc_fast import direct_gc_modules

    v = lazy.vault("p")
    rel = "avfs_git/cli/main.py"
    want = v.workspace("main").read(rel)  # fetched before gc
    promised = missing(v.path)
    v.close()
    answer, loaded = direct_gc_modules(lazy.path, "--vault", "p")
    assert answer["vaults"][0]["vault"] == "p" and answer["vaults"][0]["objects_after"] is not None
    assert loaded == []
    pack_dir = os.path.join(v.path, "objects", "pack")
    assert any(n.endswith(".promisor") for n in os.listdir(pack_dir))
    assert git("--git-dir", v.path, "config", "remote.origin.promisor").strip() == "true"
    assert missing(v.path) == promised  # nothing fetched, nothing lost
    w = lazy.vault("p")
    assert w.lazy
    assert w.workspace("main").read(rel) == want
    other = "avfs_git/core/types.py"  # still promised: read through the promisor
    assert w.workspace("main").read(other) == blob_at(server.base / "proj.git", "main", other)


def test_each_test_serves_a_copy_of_its_own(server: Server, tmp_path: Path, tmp_path_factory) -> None:
    """The served repositories are copies of ones made once a process (:func:`_served_repos`,
    their objects hard-linked): a test that pushes to its server, rewrites the history
    there and collects it leaves the next test's history whole."""
    template = _served_repos(tmp_path_factory) / "proj.git"
    repo = server.base / "proj.git"
    head = git("--git-dir", str(template), "rev-parse", "main").strip()
    assert git("--git-dir", str(repo), "rev-parse", "main").strip() == head
    assert git("--git-dir", str(repo), "config", "uploadpack.allowFilter").strip() == "true"
    before = objects(str(template))
    work = tmp_path / "gone-work"
    git("clone", "-q", server.url("proj.git"), str(work))
    (work / "SECRET.md").write_text("pushed by mistake\n")
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "commit", "-q", "-m", "oops")
    git("-C", str(work), "push", "-q", "origin", "main")
    git("-C", str(work), "push", "-q", "--force", "origin", "HEAD~2:main")
    git("--git-dir", str(repo), "reflog", "expire", "--expire=now", "--all")
    git("--git-dir", str(repo), "gc", "-q", "--prune=now")
    assert objects(str(repo)) < before
    assert git("--git-dir", str(template), "rev-parse", "main").strip() == head
    assert objects(str(template)) == before
    git("--git-dir", str(template), "fsck", "--strict", "--no-dangling")
