"""`avfs server`: the home's warm CLI server (:mod:`.resident`): whether one runs, start one,
stop it."""

from __future__ import annotations

import os
import signal
import time

import click

from ..core.store.locks import signal_process
from .app import App, pass_app


def _state(home: str) -> dict[str, object]:
    """Whether a server answers at the home's socket, and its pid: the process listening
    there (``SO_PEERCRED``), not what a pid file says."""
    import socket
    import struct

    from .resident import socket_path

    path = socket_path(home)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    pid: int | None = None
    try:
        s.connect(path)
        running = True
        pid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[
            0
        ]
    except OSError:
        running = False
    finally:
        s.close()
    return {"running": running, "pid": pid, "socket": path, "enabled": os.environ.get("AVFS_SERVER") != "off"}


@click.group("server")
def server() -> None:
    """The warm CLI server: later calls run at about Python's own start-up.

    A call that finds no server runs directly and starts one for the home (AVFS_SERVER=off:
    never; `server status` and `server stop` start none; nor does a call while the home's
    directory does not exist: `hooks install` and the hooks' own `avfs hook` calls, never
    served, make none: the first call after a `vault create` or `up` made it starts one); it ends after AVFS_SERVER_IDLE seconds (900) without a call. Only a server of
    the caller's own user is sent a call. An answer the caller cannot read (cut short,
    garbled) ends the call with exit 70: the command may have run, so it is not run again.
    """


@server.command("status")
@pass_app
def status_cmd(app: App) -> None:
    """Whether the home's server runs."""
    home = app.home.path
    st = _state(home)
    app.output.result(
        "server",
        {"action": "status", **st},
        lambda: (
            app.output.say("server running (pid {})", st["pid"])
            if st["running"]
            else app.output.say("no server running")
        ),
    )


@server.command("start")
@pass_app
def start_cmd(app: App) -> None:
    """Start the home's server (nothing when one runs); waits until it answers."""
    from .client import start

    home = app.home.path
    os.makedirs(home, exist_ok=True)
    if not _state(home)["running"]:
        start(home)
        deadline = time.monotonic() + 30
        while not _state(home)["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
    st = _state(home)
    app.output.result(
        "server", {"action": "start", **st}, lambda: app.output.say("server running (pid {})", st["pid"])
    )


@server.command("stop")
@pass_app
def stop_cmd(app: App) -> None:
    """Stop the home's server (commands it runs finish first); waits until it is gone."""
    home = app.home.path
    st = _state(home)
    pid = st["pid"]
    if isinstance(pid, int):
        # still the server listening there (it may have ended since, its pid given again)
        signal_process(pid, signal.SIGTERM, is_it=lambda p: _state(home)["pid"] == p)
        deadline = time.monotonic() + 30
        while _state(home)["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
    st = _state(home)
    app.output.result("server", {"action": "stop", **st}, lambda: app.output.say("no server running"))
