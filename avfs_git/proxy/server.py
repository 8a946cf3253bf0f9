"""``proxy exec`` served by a live mount's daemon: the CLI's warm path.

An agent runs ``avfs proxy exec`` once per command. Most of such a call is Python starting
and importing avfs (~100 ms here); the mount daemon has all of that loaded already. So a
read-write mount's daemon listens on a Unix socket (an abstract name, recorded in the
mount's registry file as ``exec_socket``), and the CLI's fast path
(:mod:`avfs_git.cli.execopts`) sends it the request instead of importing avfs.

The protocol: the request is one ``marshal``-encoded dict (marshal is built in, so the
client imports nothing to write it), preceded by its length as 8 ASCII digits, with the
client's stdin passed as a file descriptor (``SCM_RIGHTS``) when ``--stdin`` may be given.

- Protocol 2 (what the CLI sends): ``{"v": 2, "args": <the arguments after "proxy exec">,
  "json": <--json given>, "env": {<the client's environment>}}``: the daemon parses the
  arguments (:func:`.options.parse_args`), so the client loads no option table. The reply
  is one marshal dict, length-prefixed the same way: ``{"code": <exit code>, "doc": <the
  JSON document>, "out": ..., "err": ..., "quiet": ...}``; ``out``/``err`` are what to
  print as they are (with ``--json``: the document alone; for ``--quiet``, the command's
  own output when it ran to its end), else None (the client renders ``doc`` for a
  person). ``{"fallback": True}``: the client runs the call itself (``--help``, ``--mode
  materialized``).
- Protocol 1: ``{"v": 1, "values": <option values>, "argv": [...], "env": {...}}``; the
  reply is two lines: the exit code, then the JSON document.

Only the daemon's own user may connect (``SO_PEERCRED``): an abstract socket has no file
permissions. If the client goes away while its command runs, the command's process group
is stopped (as on a timeout). The commands run as children of the daemon, in sessions of
their own, with the client's environment (as filtered by ``proxy exec``).
"""

from __future__ import annotations

import array
import logging
import marshal
import os
import signal
import socket
import struct
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault
    from .runner import Stop

from ..core.vaults.registry import resolved_mountpoint
from ..ops.framed import peer_shares_namespaces
from .offer import STANDBY_PROTOCOL

log = logging.getLogger("avfs.proxy")
PROTOCOL = 1
MAX_REQUEST = 8 << 20
# a whole request's seconds: a peer that stops half way holds a thread no longer (attack29;
# the CLI server's, review39); the client sends one in a single write
REQUEST_S = 10.0


def socket_name() -> str:
    return f"avfs-exec-{os.getpid()}-{os.urandom(8).hex()}"


def recv_request(sock: socket.socket, within: float | None = None) -> tuple[dict[str, Any], list[int]]:
    """One length-prefixed marshal message and any file descriptors sent with it;
    ``within``: the seconds the whole message may take (each receive waits no longer; then
    ``TimeoutError``), and the socket blocks again once it is read. The descriptors of a
    request it does not return (cut off, too large, not one) are closed (review40 F2)."""
    fds: list[int] = []
    try:
        return _read_request(sock, fds, within), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _read_request(sock: socket.socket, fds: list[int], within: float | None) -> dict[str, Any]:
    buf = bytearray()
    want = 8
    end = None if within is None else time.monotonic() + within
    while len(buf) < want:
        if end is not None:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request took too long")
            sock.settimeout(left)
        data, anc, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                arr = array.array("i")
                arr.frombytes(payload[: len(payload) - len(payload) % 4])
                fds.extend(arr)
        if not data:
            raise ValueError("the request ended early")
        buf += data
        if want == 8 and len(buf) >= 8:
            if not bytes(buf[:8]).isdigit():
                raise ValueError("not a proxy exec request")
            want = 8 + int(buf[:8])
            if want > MAX_REQUEST:
                raise ValueError("request too large")
    sock.settimeout(None)
    req = marshal.loads(bytes(buf[8:want]))
    if not isinstance(req, dict):
        raise ValueError("not a proxy exec request")
    return req


class ExecServer:
    """Serves ``proxy exec`` requests for one mounted fork, each on a thread of its own
    (:mod:`.workers`: kept between requests)."""

    def __init__(self, home: Home, vault: Vault, fork: str) -> None:
        self.home = home
        self.vault = vault
        self.fork = fork
        from .sysview import keep_in

        keep_in(os.path.join(home.path, "run"))  # the sandbox's filter and view of /etc
        self.name = socket_name()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind("\0" + self.name)
        self.sock.listen(16)
        from . import standby

        # sandboxes set up before the command comes (most of a confined command's start)
        self.standbys = standby.Standbys() if standby.available() else None
        # a mount kept warm: its idle timer (fuse/idle.py), told of each request; while it
        # releases the mount, requests go back to their client (``fallback``)
        self.gate: Any = None
        self.mountpoint = ""  # where the mount is (set by the daemon once it serves)
        # called as each request comes in: an overlay mount's background walk of its lower
        # layer stands aside while a command runs (fuse/warm.py), as it does for git
        self.on_request: Callable[[], None] | None = None
        self.heads: Any = None  # the vault's branches as inotify keeps them (refwatch.py)
        self.tags: Any = None  # and its loose tags
        from ..core.vaults import mounttable

        # every request asks whether the fork's mount is there: the table is read again
        # only when the kernel marked it changed
        mounttable.keep()
        from .workers import Workers

        # requests (and the watch of their client) on threads kept between them, so what a
        # request opens per thread (SQLite connections, the git repository) stays open
        self.workers = Workers("avfs-exec")

    def start(self, *, warm: bool = True) -> None:
        """Serve requests from now on; ``warm``: first load what a request needs
        (:meth:`warm_up`), else the caller does it when the time comes (the mount's daemon:
        once the call that mounted the fork is over, fuse/daemon.py)."""
        threading.Thread(target=self._serve, args=(warm,), name="avfs-exec-server", daemon=True).start()

    def warm_up(self) -> None:
        """Load what a request needs (the proxy's modules, the default policy), so the
        first one is as fast as the rest (~40-120 ms of the daemon's CPU and GIL)."""
        from .. import policy
        from . import execute  # noqa: F401

        policy.Policy.default(self.home.settings.cache_dir)
        from . import refwatch

        # the vault's branches, kept from inotify events for the sandbox's packed-refs
        # (refwatch.py): a call reads the branches that changed, not every one
        self.heads = refwatch.start(self.vault.path)
        self.tags = refwatch.start(self.vault.path, "tags")  # (its loose tags, the same way)
        for watch in (self.heads, self.tags):
            if watch is not None:
                watch.heads()

    def _serve(self, warm: bool) -> None:
        # this thread is started from libfuse's init, in a worker thread that blocks
        # SIGINT/SIGTERM/SIGHUP/SIGQUIT: commands inherit the mask of the thread that starts
        # them, and `timeout`, `kill` or Ctrl-C-style cleanup must work in them
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        if warm:
            self.warm_up()
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.workers.run(self._handle, conn)

    def _handle(self, conn: socket.socket) -> None:
        fds: list[int] = []
        after: list[Callable[[], None]] = []  # once the client has its answer
        req: dict[str, Any] | None = None
        reply: dict[str, Any] | None = None  # protocol 2's answer
        with conn:
            try:
                creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                pid, uid, _gid = struct.unpack("3i", creds)
                if uid != os.getuid():
                    log.warning("refused a proxy exec request from uid %d", uid)
                    return
                if not peer_shares_namespaces(conn):
                    # a confined command (sharing the host's network, so it can reach this
                    # abstract socket) must not run commands outside its sandbox
                    log.warning("refused a proxy exec request from a sandbox (pid %d)", pid)
                    return
                req, fds = recv_request(conn, REQUEST_S)
                if self.on_request is not None:
                    self.on_request()
                gate = self.gate
                if req.get("v") == STANDBY_PROTOCOL:
                    reply, req = self._standby(req), None
                elif gate is not None and not gate.enter():
                    gate = None
                    if req.get("v") == 2:
                        reply = {"fallback": True}  # the mount is being released: the client runs it
                    else:
                        raise RuntimeError("the mount is being released (idle); call again")
                else:
                    try:
                        if req.get("v") == 2:
                            reply = self._run_args(conn, req, fds, after)
                        else:
                            code, document, _ = self._run(conn, req, fds, after)
                    finally:
                        if gate is not None:
                            gate.leave()
            except Exception as exc:  # reported to the client, never fatal to the mount
                log.exception("proxy exec request")
                from ..core.errors import InternalError
                from ..core.types import json_document
                from .options import failed_envelope

                err = InternalError(f"the mount daemon failed: {type(exc).__name__}: {exc}")
                env = failed_envelope(f"{self.vault.name}:{self.fork}", None, [], err)
                code, document = env["exit_code"], json_document("proxy_exec_result", env)
                if req is not None and req.get("v") == 2:
                    reply = {"code": code, "doc": document, "out": document if req.get("json") else None}
            finally:
                for fd in fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            if reply is not None:
                body = marshal.dumps(reply)
                msg = b"%08d" % len(body) + body
            else:
                msg = f"{code}\n{document}".encode()
            try:
                conn.sendall(msg)
            except OSError:
                pass  # the client is gone
        for fn in after:
            try:
                fn()
            except Exception:
                log.exception("proxy exec: after the answer")

    def _standby(self, req: dict[str, Any]) -> dict[str, Any]:
        """Protocol 3: a process that mounted this fork for its own call (and keeps it warm)
        ran its command in a sandbox; one like it is made ready here for the next call,
        which its client will send to this daemon (fuse/idle.py, docs/fuse.md)."""
        import dataclasses

        from . import confine

        if self.standbys is None:
            return {"ok": False}
        fields = {f.name for f in dataclasses.fields(confine.Sandbox)}
        given = req.get("sandbox")
        if not isinstance(given, dict) or not set(given) <= fields:
            raise ValueError("not a sandbox")
        sb = confine.Sandbox(**given)
        # (resolved without a stat of the mount point, nor of anything in it: those are
        # requests of this daemon to its own mount, which a kill of it meanwhile would leave
        # waiting for ever, its process never ending: docs/fuse.md "A killed daemon's
        # connection"; ci47's hang)
        if (
            not isinstance(sb.source, str)
            or _below(sb.source, self.mountpoint)
            or resolved_mountpoint(sb.source) != (self.mountpoint or resolved_mountpoint(sb.source))
            or sb.network == "filtered"
            or sb.proxy_socket is not None
        ):
            return {"ok": False}  # not this mount's, or one never made ready
        self.standbys.prepare(sb)
        threading.Thread(target=self._warm_up, name="avfs-exec-warm-up", daemon=True).start()
        return {"ok": True}

    def _warm_up(self) -> None:
        """What this daemon's first request would pay once, paid before it comes: the
        modules a request loads as it goes, and the first status of the fork (the count
        of its uncheckpointed changes is kept while nothing moves: docs/proxy.md)."""
        try:
            import importlib

            for mod in ("recording", "seal", "confine", "gitlinks", "runner", "standby"):
                importlib.import_module(f"{__package__}.{mod}")
            from ..core.operations import checkpoint, merge  # noqa: F401
            from ..core.workspace import since  # noqa: F401
            from . import confine

            confine.unavailable()  # its probe of bubblewrap, made once per process (~17 ms)
            from .seccomp import program
            from .sysview import system_args

            # (both kept in the home's run/, :func:`.sysview.keep_in`: read there where made before)
            program()  # the sandbox's filter, made once (~2-15 ms)
            system_args()  # and what of /etc it hides (a walk of /etc, ~5-20 ms; then checked)
            from ..core.store.locks import exec_lock_path, file_lock

            # once the call that mounted the fork has ended (it holds the fork's exec lock)
            path = exec_lock_path(self.vault.state_dir, self.fork)
            with file_lock(path, what=f"proxy exec on {self.vault.name}:{self.fork}", wait_s=60):
                self.vault.workspace(self.fork).since.dirty()
        except Exception:
            log.exception("warming up the exec server")

    def _run_args(
        self, conn: socket.socket, req: dict[str, Any], fds: list[int], after: list[Callable[[], None]]
    ) -> dict[str, Any]:
        """Protocol 2: parse the client's arguments, run them, answer what it prints."""
        from ..core.errors import UsageError
        from ..core.types import json_document
        from .options import USAGE, BadUsage, NotFast, failed_envelope, parse_args

        json_mode = bool(req.get("json"))
        try:
            values, argv = parse_args(list(req["args"]))
        except NotFast:
            return {"fallback": True}
        except BadUsage as bad:
            err = UsageError(bad.message, hint=USAGE)
            env = failed_envelope(f"{self.vault.name}:{self.fork}", bad.values, [], err)
            document = json_document("proxy_exec_result", env)
            quiet = bool(bad.values.get("quiet"))
            return {"code": env["exit_code"], "doc": document, "out": document if json_mode else None,
                    "err": None, "quiet": quiet}  # fmt: skip
        if values["mode"] == "materialized":
            return {"fallback": True}  # a copy of the tree: the client's own process makes it
        code, document, result = self._run(
            conn, {"v": 1, "values": values, "argv": argv, "env": req["env"]}, fds, after
        )
        reply: dict[str, Any] = {
            "code": code,
            "doc": document,
            "out": None,
            "err": None,
            "quiet": values["quiet"],
        }
        if json_mode:
            reply["out"] = document
        elif (
            values["quiet"]
            and result is not None
            and not (
                result["timed_out"]
                or result["stdout_truncated"]
                or result["stderr_truncated"]
                or result.get("interrupted")
            )
        ):
            reply["out"], reply["err"] = result["stdout"], result["stderr"]  # all `--quiet` prints
        return reply

    def _run(
        self, conn: socket.socket, req: dict[str, Any], fds: list[int], after: list[Callable[[], None]]
    ) -> tuple[int, str, dict[str, Any] | None]:
        """Protocol 1's request: (exit code, the JSON document, the envelope's result)."""
        from ..core.errors import AvfsError
        from ..core.types import json_document
        from .execute import execute
        from .options import failed_envelope, request_from

        if req.get("v") != PROTOCOL:
            raise ValueError(f"protocol {req.get('v')!r} is not {PROTOCOL}")
        values = dict(req["values"])
        stdin_fd = fds[0] if values.get("stdin") and fds else None
        try:
            request = request_from(values, req["argv"], stdin=stdin_fd, env=dict(req.get("env") or {}))
        except AvfsError as err:
            spec = f"{self.vault.name}:{self.fork}"
            env = failed_envelope(spec, values, req["argv"], err)
            return env["exit_code"], json_document("proxy_exec_result", env), None
        from .runner import Stop

        cancel = Stop()
        self.workers.run(_watch_client, conn, cancel)
        res = execute(
            self.home, self.vault, self.fork, request, cancel=cancel, after=after, standbys=self.standbys
        )
        result = res.result.to_dict() if res.result is not None else None
        return res.exit_code, json_document("proxy_exec_result", res.to_dict()), result

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        self.workers.close()
        for watch in (self.heads, self.tags):
            if watch is not None:
                watch.close()
        if self.standbys is not None:
            self.standbys.close()


# what a client sends while its command runs: one byte, the signal that interrupted it
CLIENT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _watch_client(conn: socket.socket, cancel: Stop) -> None:
    """Stop the command when the client says it was interrupted (one byte: the signal,
    passed on to the command, which the envelope then names) or hangs up (killed)."""
    try:
        while data := conn.recv(16):
            for b in data:
                if b in CLIENT_SIGNALS:
                    cancel.interrupt(b)
    except OSError:
        pass
    cancel.set()


def _below(path: str, mountpoint: str) -> bool:
    """Whether ``path`` names something inside ``mountpoint`` (as written, absolute)."""
    return bool(mountpoint) and os.path.abspath(path).startswith(mountpoint.rstrip("/") + "/")
