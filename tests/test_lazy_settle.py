"""A lazy fork's mount answers before its sizes and its git index exist (fuse/settle.py,
docs/lazy.md "Mounting a lazy fork: sizes before contents"), against a real `git daemon`
and a real `git http-backend`, on both mount backends.

A relay on 127.0.0.1 in front of the server holds every new connection once armed, until
the test lets it go: the mount's request for sizes is then certainly in flight while the
test lists, stats and runs git in the mount. Nothing here waits on a sleep."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from avfs_git.core.settings import Settings
from avfs_git.core.vaults.home import Home
from avfs_git.ops import mounts

from .conftest import IN_CI, git
from .test_fuse import require_fuse
from .test_lazy import Server, _serve_over_http, blob_at, missing, objects
from .test_lazy import server as server
from .test_remotes import http_git as http_git

HOLD_S = 60.0  # a held connection goes on by itself after this (a test that failed)


class Relay:
    """A TCP relay to ``port``; while armed, each new connection is held (nothing passes
    either way) until :meth:`release`."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.armed = False
        self.held = 0  # connections that were held
        self.holding = threading.Event()  # set when one is held
        self.go = threading.Event()
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        self.go.clear()
        self.holding.clear()
        self.armed = True

    def release(self) -> None:
        self.armed = False
        self.go.set()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(client, self.armed), daemon=True).start()

    def _serve(self, client: socket.socket, hold: bool) -> None:
        if hold:
            self.held += 1
            self.holding.set()
            self.go.wait(HOLD_S)
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            client.close()
            return

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        t = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        t.start()
        pump(client, upstream)
        t.join()
        client.close()
        upstream.close()

    def close(self) -> None:
        self.release()
        self.stop.set()
        self.sock.close()


def _backend_or_skip(backend: str) -> None:
    require_fuse()
    if backend == "overlay" and (why := mounts.overlay_available()) is not None:
        if IN_CI:
            pytest.fail(f"overlayfs must be available in CI: {why}")
        pytest.skip(f"requires overlayfs: {why}")


def _in_thread(fn: object) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def run() -> None:
        try:
            out.append(fn())  # type: ignore[operator]
        except BaseException as exc:
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def _listings(mp: Path) -> None:
    names = sorted(os.listdir(mp / "avfs_git" / "core" / "store"))
    assert "promisor.py" in names and "gitstore.py" in names
    assert "avfs_git" in os.listdir(mp)
    found = subprocess.run(["find", str(mp / "avfs_git"), "-name", "*.py"], capture_output=True, check=True)
    assert len(found.stdout.splitlines()) > 50


def _libgit2_in(pid: int) -> bool:
    """Whether process ``pid`` has libgit2 (pygit2's) loaded."""
    with open(f"/proc/{pid}/maps") as fh:
        return any("libgit2" in line or "_pygit2" in line for line in fh)


def _walks(pid: int) -> list[int]:
    """The children of ``pid`` running the lower layer's walk (fuse/warm.py)."""
    out = []
    for child in os.listdir("/proc"):
        try:
            with open(f"/proc/{child}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{child}/cmdline", "rb") as fh:
                cmd = fh.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"warm.py" in cmd:
            out.append(int(child))
    return out


def _heads_watched(pid: int, vault_path: str) -> bool:
    """Whether process ``pid`` watches the vault's ``refs/heads`` with inotify: the exec
    server's warm-up starts that watch (proxy/server.py ``warm_up``, proxy/refwatch.py)."""
    ino = f" ino:{os.stat(os.path.join(vault_path, 'refs', 'heads')).st_ino:x} "
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue
        if any(line.startswith("inotify") and ino in line for line in lines):
            return True
    return False


def _daemon_log(v) -> str:
    """The mount daemon's log (why it went on without its sizes, if it says)."""
    from avfs_git.core.vaults import registry

    try:
        with open(registry.log_path(v.state_dir, "main"), encoding="utf-8", errors="replace") as fh:
            return "daemon log:\n" + fh.read()[-4000:]
    except OSError as exc:
        return f"no daemon log: {exc}"


def _mount_before_the_sizes(
    home: Home, vault_name: str, relay: Relay, served: Path, mp: Path, backend: str
) -> None:
    """The checks, on a vault cloned through ``relay``: the mount answers while its request
    for sizes is held (and, pure FUSE, so do ``ls`` and ``find``); ``stat`` and git wait for
    it and then are right; nothing is fetched until a file is read, which fetches once."""
    v = home.vault(vault_name)
    assert not os.path.exists(os.path.join(v.path, "avfs", "blob-sizes"))  # the clone asked none
    before, promised = objects(v.path), missing(v.path)
    relay.arm()
    info = mounts.mount(home, v, "main", str(mp), backend=backend)
    try:
        # the mount answered before its sizes (the relay lets nothing through until told);
        # its request for them comes (a new connection, held)
        assert not os.path.exists(os.path.join(v.path, "avfs", "blob-sizes"))
        assert relay.holding.wait(HOLD_S / 2) and not relay.go.is_set()
        # neither libgit2 nor the lower layer's walk was on the way: the daemon loads the
        # one and starts the other once its index is written (fuse/settle.py, fuse/warm.py)
        assert not _libgit2_in(info.pid) and _walks(info.pid) == [], _daemon_log(v)
        if backend == "fuse":  # ls and find answer (overlayfs looks each entry up as it lists)
            _listings(mp)
        # a stat waits for the sizes; git waits for the index
        rel = "avfs_git/core/store/promisor.py"
        st, st_out = _in_thread(lambda: (mp / rel).stat().st_size)
        status, status_out = _in_thread(
            lambda: subprocess.run(["git", "status", "--porcelain"], cwd=mp, capture_output=True, text=True)
        )
        st.join(0.5)
        status.join(0.5)
        assert st.is_alive() and status.is_alive(), (st_out, status_out)  # waiting, not guessing
        # the stat waits for the sizes, not loading libgit2 to learn its blob is not here
        assert not _libgit2_in(info.pid), _daemon_log(v)
        assert relay.armed
        relay.release()
        st.join(HOLD_S)
        status.join(HOLD_S)
        assert st_out == [len(blob_at(served, "main", rel))]
        proc = status_out[0]
        assert isinstance(proc, subprocess.CompletedProcess)
        assert proc.returncode == 0 and proc.stdout == "", proc
        # the index was written from git's listing; libgit2 comes once git may run (for
        # the lower layer's walk and the reads), on the settle thread right after the gate
        deadline = time.monotonic() + HOLD_S
        while not _libgit2_in(info.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _libgit2_in(info.pid)
        _listings(mp)
        # every size right, known without a blob
        for p in ("avfs_git/cli/output.py", "NOTES.md", "avfs_git/core/errors.py"):
            assert (mp / p).stat().st_size == len(blob_at(served, "main", p))
        assert missing(v.path) >= promised - 1  # nothing fetched (the .gitignore files at most)
        at = objects(v.path)
        assert at - before <= 1
        # a read fetches (once); a second read fetches nothing
        assert (mp / rel).read_bytes() == blob_at(served, "main", rel)
        after = objects(v.path)
        assert after > at
        assert (mp / rel).read_bytes() == blob_at(served, "main", rel)
        assert objects(v.path) == after
        again = subprocess.run(["git", "status", "--porcelain"], cwd=mp, capture_output=True, text=True)
        assert again.returncode == 0 and again.stdout == "", again
        # .git stays: nothing in the mount removes it
        with pytest.raises(OSError):
            os.unlink(mp / ".git")
    finally:
        relay.release()
        mounts.unmount(home, v, "main", lazy=True)


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_over_git_daemon_the_mount_answers_before_its_sizes(home, server: Server, tmp_path, backend):
    _backend_or_skip(backend)
    relay = Relay(server.port)
    try:
        url = f"git://127.0.0.1:{relay.port}/proj.git"
        home.clone_vault(url, "p", lazy=True)
        mp = tmp_path / "mnt"
        mp.mkdir()
        _mount_before_the_sizes(home, "p", relay, server.base / "proj.git", mp, backend)
    finally:
        relay.close()


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_over_http_the_mount_answers_before_its_sizes(home, server, http_git, tmp_path, monkeypatch, backend):
    _backend_or_skip(backend)
    url, served, password = http_git
    _serve_over_http(server, served)
    monkeypatch.setenv("AVFS_GIT_TOKEN", password)
    monkeypatch.setenv("AVFS_GIT_USERNAME", "agent")
    home.settings = Settings.from_environ(None, home.path)
    port = int(url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    relay = Relay(port)
    try:
        home.clone_vault(url.replace(f":{port}/", f":{relay.port}/"), "n", lazy=True)
        mp = tmp_path / "mnt"
        mp.mkdir()
        _mount_before_the_sizes(home, "n", relay, served, mp, backend)
    finally:
        relay.close()


def test_outside_a_mount_a_size_asks_the_tree_once_and_fetches_nothing(home, server, cli):
    """The clone asks no sizes; `avfs ls -l` then asks them for the whole tree in one
    request (not a fetch of each file), and `avfs cat` reads a file with its neighbours."""
    home.clone_vault(server.url("proj.git"), "p", lazy=True)
    v = home.vault("p")
    assert not os.path.exists(os.path.join(v.path, "avfs", "blob-sizes"))  # the clone asked none
    before = objects(v.path)
    r = cli("--json", "--home", home.path, "--vault", "p", "ls", "-l", "avfs_git/core/store")
    assert r.code == 0, r.err
    assert objects(v.path) == before  # sizes, not blobs
    assert os.path.getsize(os.path.join(v.path, "avfs", "blob-sizes")) > 0
    rel = "avfs_git/core/store/promisor.py"
    r = cli("--home", home.path, "--vault", "p", "cat", rel)
    assert r.code == 0 and r.out_bytes == blob_at(server.base / "proj.git", "main", rel)
    assert objects(v.path) - before > 1  # its directory's other files came in the same fetch


def test_the_index_made_while_the_sizes_are_asked_is_written_with_every_size(home, server: Server, tmp_path):
    """A lazy fork's mount makes its git index (and its untracked cache) while its request
    for sizes is in flight (fuse/settle.py): git's ``index.lock`` is taken while the relay
    still holds that request. Nothing is written before the sizes come: a git that does not
    use the fsmonitor (it looks at every file, and reads the contents of a file whose entry
    says size 0: git's ``ie_modified``) then finds nothing changed and fetches no file, and
    every entry's size is its blob's."""
    require_fuse()
    relay = Relay(server.port)
    try:
        home.clone_vault(f"git://127.0.0.1:{relay.port}/proj.git", "p", lazy=True)
        v = home.vault("p")
        mp = tmp_path / "mnt"
        mp.mkdir()
        relay.arm()
        mounts.mount(home, v, "main", str(mp), backend="fuse")
        try:
            assert relay.holding.wait(HOLD_S / 2)
            locks = Path(v.path, "worktrees")
            deadline = time.monotonic() + HOLD_S / 2
            while not list(locks.glob("*/index.lock")) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert list(locks.glob("*/index.lock")), _daemon_log(v)
            assert relay.armed and not relay.go.is_set()  # the sizes are still held
            before = objects(v.path)
            relay.release()
            plain = subprocess.run(
                ["git", "-c", "core.fsmonitor=false", "status", "--porcelain"],
                cwd=mp,
                capture_output=True,
                text=True,
            )
            assert plain.returncode == 0 and plain.stdout == "", plain
            assert objects(v.path) - before <= 1, _daemon_log(v)  # (the .gitignore files at most)
            # every entry's size is its blob's (as the server's own tree says)
            listed = subprocess.run(["git", "ls-files", "--debug"], cwd=mp, capture_output=True, text=True)
            lines = listed.stdout.splitlines()
            sizes = {
                lines[i - 5]: int(line.split()[1])
                for i, line in enumerate(lines)
                if line.startswith("  size:")
            }
            served = git("--git-dir", str(server.base / "proj.git"), "ls-tree", "-r", "-l", "main")
            want = {r.split("\t", 1)[1]: int(r.split("\t")[0].split()[3]) for r in served.splitlines()}
            assert len(sizes) == len(want) > 50 and sizes == want
        finally:
            relay.release()
            mounts.unmount(home, v, "main", lazy=True)
    finally:
        relay.close()


class _Use:
    """A process using the mount: requests that reach the daemon every 20 ms, until
    :meth:`close`: a lookup of a name that is not there, a new one each time (neither the
    kernel nor overlayfs knows it yet; the lower layer's attributes are no longer asked:
    it answers ENOSYS), and an open (the pure-FUSE view's; the overlay's lower layer has
    the kernel open its files)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stop = threading.Event()
        self.asked = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.02):
            try:
                os.stat(self.path.with_name(f".avfs-test-{self.asked}"))
            except FileNotFoundError:
                pass
            os.close(os.open(self.path, os.O_RDONLY))
            self.asked += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def _indexes(v) -> list[Path]:
    return list(Path(v.path, "worktrees").glob("*/index"))


def _used_for(use: _Use, seconds: float) -> None:
    """Let ``use`` go on for ``seconds`` (longer than the settling's quiet, QUIET_S)."""
    start = use.asked
    time.sleep(seconds)
    assert use.asked - start >= 10  # (it was asking all along)


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_the_index_waits_while_the_mount_is_used_and_comes_when_git_asks(
    home, server: Server, tmp_path, backend
):
    """A lazy fork's index (fuse/settle.py) is not made while another process uses the
    mount (a test run started the moment ``ls`` answered: the index is for git alone), and
    a git command that asks for it gets it at once, the mount still in use, and right."""
    _backend_or_skip(backend)
    home.clone_vault(server.url("proj.git"), "p", lazy=True)
    v = home.vault("p")
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend=backend)
    use = None
    try:
        use = _Use(mp / "NOTES.md")
        _used_for(use, 4.0)
        assert _indexes(v) == [], _daemon_log(v)
        before = objects(v.path)
        plain = subprocess.run(
            ["git", "-c", "core.fsmonitor=false", "status", "--porcelain"],
            cwd=mp,
            capture_output=True,
            text=True,
        )
        assert plain.returncode == 0 and plain.stdout == "", plain
        assert len(_indexes(v)) == 1
        assert objects(v.path) - before <= 1, _daemon_log(v)  # (the .gitignore files at most)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=mp, capture_output=True, text=True)
        assert status.returncode == 0 and status.stdout == "", status
    finally:
        if use is not None:
            use.close()
        mounts.unmount(home, v, "main", lazy=True)


def test_the_index_comes_once_the_mount_is_quiet(home, server: Server, tmp_path):
    """Nobody asked for it: the index is made once the mount has been quiet a while."""
    _backend_or_skip("fuse")
    home.clone_vault(server.url("proj.git"), "p", lazy=True)
    v = home.vault("p")
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")
    try:
        use = _Use(mp / "NOTES.md")
        try:
            _used_for(use, 4.0)
            assert _indexes(v) == [], _daemon_log(v)
        finally:
            use.close()
        deadline = time.monotonic() + HOLD_S
        while not _indexes(v) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_indexes(v)) == 1, _daemon_log(v)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=mp, capture_output=True, text=True)
        assert status.returncode == 0 and status.stdout == "", status
    finally:
        mounts.unmount(home, v, "main", lazy=True)


def test_the_exec_server_warms_up_once_the_mount_is_quiet(home, server: Server, tmp_path):
    """A lazy fork's mount warms its exec server (the proxy's modules, the policy, the watch
    of the vault's branches) with its index, once the mount is quiet, as the lower layer's
    walk: not beside a program started the moment ``ls`` answered."""
    _backend_or_skip("fuse")
    home.clone_vault(server.url("proj.git"), "p", lazy=True)
    v = home.vault("p")
    mp = tmp_path / "mnt"
    mp.mkdir()
    info = mounts.mount(home, v, "main", str(mp), backend="fuse")
    try:
        use = _Use(mp / "NOTES.md")
        try:
            _used_for(use, 4.0)
            assert _indexes(v) == [] and not _heads_watched(info.pid, v.path), _daemon_log(v)
        finally:
            use.close()
        deadline = time.monotonic() + HOLD_S
        while not _heads_watched(info.pid, v.path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _heads_watched(info.pid, v.path), _daemon_log(v)
        assert len(_indexes(v)) == 1
    finally:
        mounts.unmount(home, v, "main", lazy=True)


# a program that reads one file of the mount, then computes (no request) for a while, then
# sleeps: a test run between its imports (its tests), then done with the machine
_COMPUTES = """
import sys, time
open(sys.argv[1], "rb").read()
print("read", flush=True)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    pass
print("slept", flush=True)
time.sleep(120)
"""


def test_the_index_waits_while_the_last_user_computes_and_comes_once_it_sleeps(
    home, server: Server, tmp_path
):
    """The mount quiet (no request for longer than QUIET_S) is not enough while the thread
    that made the last request is still on a CPU: the index, and what follows it, would
    take the cores from it (a cold test run's tests, seconds without a request under load).
    It comes once that thread sleeps."""
    _backend_or_skip("fuse")
    home.clone_vault(server.url("proj.git"), "p", lazy=True)
    v = home.vault("p")
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")
    proc = subprocess.Popen(
        [sys.executable, "-c", _COMPUTES, str(mp / "NOTES.md"), "6"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "read\n"
        time.sleep(4.5)  # (twice the quiet: the index came at 2 s before)
        assert _indexes(v) == [], _daemon_log(v)
        assert proc.stdout.readline() == "slept\n"
        deadline = time.monotonic() + HOLD_S
        while not _indexes(v) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_indexes(v)) == 1, _daemon_log(v)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=mp, capture_output=True, text=True)
        assert status.returncode == 0 and status.stdout == "", status
    finally:
        proc.kill()
        proc.communicate()
        mounts.unmount(home, v, "main", lazy=True)
