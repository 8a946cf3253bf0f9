"""`git http-backend` (smart HTTP) behind a small HTTP server with Basic auth: the handler
both the tests' ``http_git`` fixture (tests/test_remotes.py) and the benchmarks' server
process (bench/authgit.py) serve with, so the two cannot drift apart.

User ``agent`` with the password, or the password as the user name (a token, as GitHub
takes it); anything else is 401 with a ``WWW-Authenticate`` challenge. Every header a web
server hands a CGI that git reads is passed on (``Git-Protocol``: git's protocol v2 rides
on it; a file ``v0-only`` beside the repositories plays a server that does not)."""

from __future__ import annotations

import base64
import http.server
import subprocess
from collections.abc import Callable
from pathlib import Path


def _kind(path: str) -> str:
    if path.endswith("git-upload-pack"):
        return "upload_pack"
    if path.endswith("git-receive-pack"):
        return "receive_pack"
    return "info_refs"


def handler(
    root: Path,
    password: str,
    *,
    http11: bool = False,
    on_answer: Callable[[str, int], None] | None = None,
) -> type[http.server.BaseHTTPRequestHandler]:
    """A request handler serving the bare repositories under ``root``. ``on_answer(kind,
    nbytes)`` is told each answer's size (kind ``upload_pack``, ``receive_pack``,
    ``info_refs``) and each refusal (kind ``refused``, 1)."""
    expected = {
        "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode()
        for u, p in (("agent", password), (password, ""))
    }
    backend = subprocess.run(["git", "--exec-path"], capture_output=True, text=True).stdout.strip()

    class Handler(http.server.BaseHTTPRequestHandler):
        if http11:
            protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _cgi(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Authorization") not in expected:
                if on_answer:
                    on_answer("refused", 1)
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            env = {
                "GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
                "QUERY_STRING": query, "REQUEST_METHOD": self.command, "REMOTE_USER": "agent",
                "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                "PATH": "/usr/bin:/bin",
            }  # fmt: skip
            if not (root / "v0-only").exists():
                env["HTTP_GIT_PROTOCOL"] = self.headers.get("Git-Protocol", "")
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            out = subprocess.run(
                [f"{backend}/git-http-backend"], input=body, env=env, capture_output=True
            ).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.split(b"\r\n"):
                k, _, v = line.decode().partition(":")
                if k.lower() == "status":
                    status = int(v.strip().split()[0])
                elif k:
                    headers.append((k, v.strip()))
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            if on_answer:
                on_answer(_kind(path), len(payload))

        do_GET = _cgi  # noqa: N815 - http.server dispatches on this name
        do_POST = _cgi  # noqa: N815

    return Handler
