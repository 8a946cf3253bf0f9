"""`git http-backend` behind a small Basic-auth server on 127.0.0.1, as its own process (so
a trial can kill it in the middle of a task), counting the bytes it sends.

Run: ``python -m bench.authgit ROOT PORT PASSWORD COUNTS`` serves the bare repositories
under ROOT at ``http://127.0.0.1:PORT/<name>.git`` to user ``agent`` with PASSWORD (or the
password as the user name, a token as GitHub takes it); anything else is 401. Every
response's size is added to the JSON file COUNTS (``{"upload_pack": bytes, "requests":
n, "refused": n, "receive_pack": n}``) as it goes, so a reader sees the bytes fetched so
far. The same server as the tests' ``http_git`` fixture (tests/test_remotes.py), which
passes ``Git-Protocol`` on to the CGI as a web server does.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path


def main() -> None:
    root, port, password, counts_path = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    expected = {
        "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode()
        for u, p in (("agent", password), (password, ""))
    }
    backend = subprocess.run(["git", "--exec-path"], capture_output=True, text=True).stdout.strip()
    counts = {"upload_pack": 0, "requests": 0, "refused": 0, "receive_pack": 0, "info_refs": 0}
    if os.path.exists(counts_path):  # a restarted server goes on counting
        with open(counts_path, encoding="utf-8") as fh:
            counts.update(json.load(fh))
    lock = threading.Lock()

    def count(key: str, n: int) -> None:
        with lock:
            counts[key] += n
            counts["requests"] += key != "refused"
            tmp = counts_path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(counts, fh)
            os.replace(tmp, counts_path)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _cgi(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Authorization") not in expected:
                count("refused", 1)
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
                "PATH": "/usr/bin:/bin", "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            }  # fmt: skip
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
            kind = (
                "upload_pack"
                if path.endswith("git-upload-pack")
                else "receive_pack"
                if path.endswith("git-receive-pack")
                else "info_refs"
            )
            count(kind, len(payload))

        do_GET = _cgi  # noqa: N815 (http.server names them)
        do_POST = _cgi  # noqa: N815

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
