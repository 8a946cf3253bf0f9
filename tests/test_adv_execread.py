"""The mount daemon's exec server reads a request in bounded time (the thirty-seventh round,
attack29; review39 gave the CLI server 10 s for a whole request and left this one).

A live read-write mount's daemon serves ``proxy exec`` on an abstract socket (its name in
the registry record), each request on a worker thread. A peer of the daemon's own user and
namespaces that sent a request's length and then nothing more held its thread, and its
connection, for good: the read waited without end. Now the whole request has
:data:`avfs_git.proxy.server.REQUEST_S` seconds; after them the daemon hangs up, and the
next request is served. A real mount, its real daemon."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from avfs_git.ops import mounts

from .test_fuse import require_fuse


def _exec_socket(vault: Any, fork: str) -> str:
    record = json.loads(Path(vault.path, "avfs", "mounts", f"{fork}.json").read_text())
    return str(record["exec_socket"])


def test_a_request_that_stops_half_way_is_hung_up(home: Any, vault: Any) -> None:
    """main: the daemon still waited for the rest when the test gave up (60 s); now it hangs
    up (after its 10 s), and a whole request sent after it runs."""
    require_fuse()
    vault.workspace("main").write("a.txt", b"one\n")
    mounts.mount(home, vault, "main", None)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect("\0" + _exec_socket(vault, "main"))
        s.sendall(b"%08d" % 4096 + b"\xfb")  # (a length, one byte of the body: then nothing)
        s.settimeout(60)
        try:
            while s.recv(65536):
                pass  # (whatever it says of the broken request)
            hung_up = True
        except TimeoutError:
            hung_up = False
        assert hung_up, "the daemon still waits for the rest of the request"
        r = subprocess.run(
            [sys.executable, "-m", "avfs_git", "--vault", "v:main", "--json", "proxy", "exec", "--", "cat", "a.txt"],
            capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "AVFS_SERVER": "off"},
        )  # fmt: skip
        doc = json.loads(r.stdout)
        assert doc["result"]["stdout"] == "one\n" and doc["mount"]["reused"], doc
    finally:
        s.close()
        mounts.unmount(home, vault, "main", lazy=True)
