"""The files a restore, an undo, a merge, a revert or a checkout left at their path through a
live mount, a process holding them open for writing, named where an agent reads the answer:
``kept_open`` in the ``--json`` document, the Python API's result and MCP's answer
(livewrite2, the thirty-fifth round; core/workspace/livedir.py ``kept_paths``).

livewrite1 left such a file as it was (the writer's bytes land where the path shows them)
and named it in a warning on stderr only: an agent driving avfs with ``--json``, the API or
MCP was told the restore was done, and went on as if a.txt were the checkpoint's. Now each
result says which paths the operation did not make what it was asked to, and the
operation's record in the op log keeps them (``avfs op log``'s ``kept_open``).

The writer is tests/test_adopt3.py's, a real process in a loop holding a.txt open through
the mount; the order is made by real waits on its pipes, not by sleeps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .gitmount import _require, mount_fork
from .test_adopt3 import _writer
from .test_json_schemas import validate
from .test_livewrite1 import MINE, OPS

# each operation as a command, and where its document names the paths it kept
ARGV: dict[str, tuple[str, ...]] = {
    "restore": ("checkpoint", "restore", "HEAD~1"),
    "checkout": ("checkout", "HEAD~1", "--", "a.txt"),
    "merge": ("merge", "g"),
    "revert": ("revert", "HEAD"),
    "undo": ("undo",),
}


def _kept(op: str, doc: dict[str, Any]) -> Any:
    """``kept_open`` where the operation's ``--json`` document has it."""
    if op == "restore":
        return doc["restore"]["kept_open"]
    if op == "checkout":
        return doc["operation"]["kept_open"]
    if op == "merge":
        return doc["results"][0]["kept_open"]
    return doc["kept_open"]


def _same(op: str) -> str:
    return "one\n" if op == "undo" else "two\n"  # (what a.txt holds: the checkpoint's)


@pytest.mark.parametrize("op", sorted(ARGV))
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_the_json_document_names_the_file_a_writer_held(
    backend: str, op: str, cli_proc: Any, tmp_path: Path
) -> None:
    """`avfs --json OP` beside a writer holding a.txt open: stdout is one document, valid
    against its schema, whose ``kept_open`` is ["a.txt"] (the operation did the rest);
    the operation's record in `avfs --json op log` names it too, and a second operation
    with no writer names nothing. On pure FUSE the operation is refused (busy, 75, or a
    revert's dirty, 1) and the error document's details name a.txt (livewrite1). Before:
    the document said nothing of a.txt; only a warning on stderr did."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        OPS[op](mp, avfs)
        with _writer(mp / "a.txt", _same(op), MINE) as stop:
            res = avfs("--json", *ARGV[op])
            stop()
        doc = res.json()  # (exactly one document on stdout)
        validate(doc)
        assert (mp / "a.txt").read_text() == MINE
        if backend == "fuse":
            assert doc["kind"] == "error", doc
            if op == "revert":
                assert res.code == 1 and doc["error"]["code"] == "dirty_workspace", doc
            else:
                assert res.code == 75 and doc["error"]["details"]["paths"] == ["a.txt"], doc
            return
        assert res.code == 0, res.err
        assert _kept(op, doc) == ["a.txt"], doc
        ops = avfs("--json", "op", "log", "-n", "1").json()
        validate(ops)
        assert ops["operations"][0]["kept_open"] == ["a.txt"], ops
        assert not [n for n in os.listdir(mp) if n.startswith(".avfs-")]
        # with no writer: nothing kept, the field there and empty
        assert avfs("checkpoint", "save", "-m", "mine").code == 0
        again = avfs("--json", *ARGV["undo"]).json()
        validate(again)
        assert again["kept_open"] == [] and again["undone"]["kept_open"] == [], again


def _api(op: str, vault: Any) -> tuple[Any, tuple[str, ...]]:
    """The operation through the Python API; (its result, the paths it says it kept)."""
    from avfs_git import checkpoint
    from avfs_git.core.operations import merge

    if op == "restore":
        r = checkpoint.restore(vault, "f", "HEAD~1")
        return r, r.kept_open
    if op == "checkout":
        o = checkpoint.checkout(vault, "f", "a.txt", "HEAD~1")
        return o, o.kept_open
    if op == "merge":
        m = merge.merge(vault, "g", "f")
        return m, m.kept_open
    if op == "revert":
        c = checkpoint.revert(vault, "f", "HEAD")
        return c, c.kept_open
    u = checkpoint.undo(vault)
    return u, u.kept_open


@pytest.mark.parametrize("op", sorted(ARGV))
def test_the_api_result_names_the_file_a_writer_held(op: str, cli_proc: Any, tmp_path: Path) -> None:
    """The same operations through the Python API (`avfs_git.checkpoint`, `merge.merge`),
    in this process, beside the writer: each result's ``kept_open`` is ("a.txt",), and
    the operation's record (`vault.oplog.get(op_id)`) says so too. Before: the results
    had no such field; the API's caller was told nothing at all (the warning went to a
    logger it may never have configured)."""
    _require("overlay")
    import avfs_git

    with mount_fork(cli_proc, tmp_path, "overlay", in_process=True) as (mp, avfs):
        OPS[op](mp, avfs)
        home = avfs_git.open_home(os.environ["AVFS_HOME"])
        try:
            vault = home.vault("v")
            with _writer(mp / "a.txt", _same(op), MINE) as stop:
                res, kept = _api(op, vault)
                stop()
            assert kept == ("a.txt",), res
            assert (mp / "a.txt").read_text() == MINE
            op_id = res.id if op == "checkout" else res.op_id
            recorded = vault.oplog.get(op_id)
            assert recorded is not None and recorded.kept_open == ("a.txt",), recorded
        finally:
            home.close()


@pytest.mark.parametrize("op", ["restore", "merge", "undo"])
def test_the_mcp_answer_names_the_file_a_writer_held(op: str, cli_proc: Any, tmp_path: Path) -> None:
    """The MCP tools that move a fork's view (`checkpoint_restore`, `merge`, `undo`; MCP
    has no revert or checkout), a real `avfs mcp` server process driven by the SDK's
    client (which checks the answer against the tool's output schema), beside the writer:
    the answer's ``kept_open`` names a.txt. Before: the answer had no such field, and the
    warning went to the server's stderr, which no agent reads."""
    _require("overlay")
    import avfs_git

    from .test_mcp import ok, serve

    with mount_fork(cli_proc, tmp_path, "overlay", in_process=True) as (mp, avfs):
        OPS[op](mp, avfs)
        home = avfs_git.open_home(os.environ["AVFS_HOME"])
        got: list[dict[str, Any]] = []

        async def body(s: Any) -> None:
            if op == "restore":
                got.append(await ok(s, "checkpoint_restore", vault="v:f", rev="HEAD~1"))
            elif op == "merge":
                got.append(await ok(s, "merge", vault="v:f", source="g"))
            else:
                got.append(await ok(s, "undo", vault="v"))

        try:
            with _writer(mp / "a.txt", _same(op), MINE) as stop:
                serve(home, body)
                stop()
        finally:
            home.close()
        doc = got[0]
        validate(doc)
        assert _kept(op, doc) == ["a.txt"], doc
        assert (mp / "a.txt").read_text() == MINE


# a process of its own doing what a restore does to one file through the mount (core/
# workspace/liveswap.py ``unlinked_unheld``, as LiveDir.put calls it for a file of the upper
# layer): its first unlink (or renameat2) is the one right after the read lease
_UNLINK = """
import sys
from avfs_git.core.workspace.liveswap import unlinked_unheld
print(unlinked_unheld(sys.argv[1]), flush=True)
"""

# a writer that opens the file for writing (no truncation), writes its bytes over it, and
# says so once the bytes are written and the file closed
_OPENER = """
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CLOEXEC)
os.pwrite(fd, sys.argv[2].encode(), 0)
os.ftruncate(fd, len(sys.argv[2]))
os.close(fd)
print("done", flush=True)
"""


def _waits_for_lease(pid: int) -> bool:
    """Whether process ``pid`` sleeps in the kernel waiting for a lease's break."""
    try:
        with open(f"/proc/{pid}/stack", encoding="ascii") as fh:
            return "break_lease" in fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_writer_opening_between_the_lease_and_the_unlink_keeps_its_bytes(
    cli_proc: Any, tmp_path: Path
) -> None:
    """The instant livewrite1 and adopt3 left: a program opens a.txt for writing after the
    restore's read lease was taken and before the file is unlinked. The kernel makes its
    open wait for the lease (it looked the path up already); the restore's process (held
    there by strace, then let go) goes on, and the program's open then completes. Before:
    it completed on the unlinked file, and every byte it wrote was in no file at all
    (a.txt gone, the restore writing its own). Now the file is linked to a side name first,
    unlinked, and looked at again: an opening waits for the lease, so the file goes back to
    its path, the writer's (the call says False: kept), and the writer's bytes are what
    a.txt shows."""
    _require("overlay")
    import shutil
    import signal
    import subprocess
    import sys

    from .conftest import skip_outside_ci
    from .test_adopt2 import WAIT_S, _until
    from .test_swapleft import CALLS, _child, _ended, _held_at

    strace = shutil.which("strace")
    if strace is None or CALLS is None:
        skip_outside_ci("strace is not installed (it holds the process between the lease and the unlink)")
    with mount_fork(cli_proc, tmp_path, "overlay", in_process=True) as (mp, _avfs):
        (mp / "a.txt").write_text("two\n")  # (written in the mount: a file of the upper layer)
        calls = "unlink,unlinkat,renameat2"
        argv = [strace, "-f", "-qq", "-o", os.devnull, "-e", f"trace={calls}"]
        argv += [
            "-e",
            f"inject={calls}:delay_enter=3600s:when=1",
            sys.executable,
            "-c",
            _UNLINK,
            str(mp / "a.txt"),
        ]
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
            opener = None
            try:
                _until(lambda: _child(proc.pid) is not None, "the process started")
                child = _child(proc.pid)
                assert child is not None
                _until(
                    lambda: _held_at(child, "unlink") or _held_at(child, "renameat2"), "held after the lease"
                )
                opener = subprocess.Popen([sys.executable, "-c", _OPENER, str(mp / "a.txt"), MINE])
                _until(lambda o=opener: _waits_for_lease(o.pid), "the opening waiting for the lease")
                # strace ended: its tracee is let go, and goes on from where it was held
                os.kill(proc.pid, signal.SIGKILL)
                assert proc.stdout is not None
                said = proc.stdout.read().strip()
                assert opener.wait(timeout=WAIT_S) == 0
                _until(lambda: _ended(child), "the process ended")
            finally:
                if opener is not None:
                    if opener.poll() is None:
                        opener.kill()
                    opener.wait()
        assert (mp / "a.txt").read_text() == MINE, said  # (the writer's bytes, at its path)
        assert said == "False"  # (kept: the writer's)
        assert not [n for n in os.listdir(mp) if n.startswith(".avfs-")]
