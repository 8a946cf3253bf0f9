"""A ``stat`` in a lazy fork's mount whose size is still being asked (the whole tree's sizes
in one request: fuse/settle.py) asks its own directory's sizes in a small request of its
own (core/store/treesizes.py ``ask_dir``) and answers with the right size without waiting
for the whole tree's (0.3-0.6 s on a 20,538-file tree: docs/benchmarks.md, issue 30 row 3).
Against a real `git daemon` and a real mount.

A relay on 127.0.0.1 in front of the server passes small requests and holds one that asks
many sizes (the whole tree's) until the test lets it go: a ``stat`` that still waited for
it would hang."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import pytest

from avfs_git.core.store.promisor import DIRS_ASKED_MAX, Promisor
from avfs_git.core.vaults.home import Home
from avfs_git.ops import mounts

from .conftest import git
from .test_lazy import Server
from .test_lazy_settle import HOLD_S, Relay, _backend_or_skip

MANY = 120  # files in a directory of their own: the whole tree's request asks more than this
DEEP = "pkg/sub/deeper/mod.py"
DEEP_TEXT = "def f():\n    return 'deep'\n" * 7


class BigHeld(Relay):
    """A relay that holds what a client sends once it has asked more than ``MANY`` sizes
    (``oid`` lines of an ``object-info`` request) until :meth:`release`; smaller requests
    (the root's files, a directory's) pass."""

    def _serve(self, client: socket.socket, hold: bool) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            client.close()
            return

        def down() -> None:
            try:
                while data := upstream.recv(65536):
                    client.sendall(data)
            except OSError:
                pass
            finally:
                for s in (upstream, client):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        t = threading.Thread(target=down, daemon=True)
        t.start()
        asked = 0
        try:
            while data := client.recv(65536):
                asked += data.count(b"oid ")
                if hold and asked > MANY and not self.go.is_set():
                    self.held += 1
                    self.holding.set()
                    self.go.wait(HOLD_S)
                upstream.sendall(data)
        except OSError:
            pass
        t.join()
        client.close()
        upstream.close()


def _served(base: Path) -> None:
    """``deep.git``: a root file, a deep directory, and a directory of many files."""
    work = base.parent / "deep-work"
    files = {"README.md": "# deep\n", DEEP: DEEP_TEXT, "pkg/sub/deeper/other.py": "x = 1\n"}
    files.update({f"many/f{i:03d}.txt": f"file {i}\n" * (i % 5 + 1) for i in range(MANY + 20)})
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    git("init", "-q", "-b", "main", str(work))
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "deep")
    git("clone", "-q", "--bare", str(work), str(base / "deep.git"))
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant", "transfer.advertiseObjectInfo"):
        git("--git-dir", str(base / "deep.git"), "config", key, "true")


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_deep_stat_answers_before_the_whole_trees_sizes(home: Home, tmp_path: Path, backend: str) -> None:
    _backend_or_skip(backend)
    base = tmp_path / "daemon"
    base.mkdir()
    _served(base)
    server = Server(base)
    server.start()
    relay = BigHeld(server.port)
    try:
        home.clone_vault(f"git://127.0.0.1:{relay.port}/deep.git", "d", lazy=True)
        v = home.vault("d")
        mp = tmp_path / "mnt"
        mp.mkdir()
        relay.arm()
        mounts.mount(home, v, "main", str(mp), backend=backend)
        try:
            assert relay.holding.wait(HOLD_S / 2), "the whole tree's sizes were never asked"
            got: list[object] = []

            def stat() -> None:
                try:
                    got.append((mp / DEEP).stat().st_size)
                except OSError as exc:
                    got.append(exc)

            st = threading.Thread(target=stat, daemon=True)
            st.start()
            st.join(HOLD_S / 2)  # (a stat waiting for the held request hangs: the failure)
            alive = st.is_alive()
            held = not relay.go.is_set()
            relay.release()
            assert not alive, "the stat waited for the whole tree's sizes"
            assert held and got == [len(DEEP_TEXT)]
            # the rest comes once let go: every size right, git content
            st.join(HOLD_S)
            assert (mp / "many" / "f007.txt").stat().st_size == len("file 7\n" * 3)
            status = subprocess.run(["git", "status", "--porcelain"], cwd=mp, capture_output=True, text=True)
            assert status.returncode == 0 and status.stdout == "", status
        finally:
            relay.release()
            mounts.unmount(home, v, "main", lazy=True)
    finally:
        relay.close()
        server.stop()


def test_a_handle_asks_its_directories_sizes_a_bounded_number_of_times(tmp_path: Path) -> None:
    """A walk of thousands of directories while the whole tree's sizes are asked must not
    send the server a request (a process there) for each: each directory is claimed once,
    and no more than DIRS_ASKED_MAX of them in all; then a stat waits for the whole."""
    p = Promisor(str(tmp_path))
    got = [p.claim_dir(f"{i:040x}") for i in range(DIRS_ASKED_MAX + 5)]
    assert got == [True] * DIRS_ASKED_MAX + [False] * 5
    assert not p.claim_dir(f"{0:040x}")  # (once each)
