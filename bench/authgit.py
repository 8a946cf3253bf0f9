"""`git http-backend` behind a small Basic-auth server on 127.0.0.1, as its own process (so
a trial can kill it in the middle of a task), counting the bytes it sends.

Run: ``python -m bench.authgit ROOT PORT PASSWORD COUNTS`` serves the bare repositories
under ROOT at ``http://127.0.0.1:PORT/<name>.git`` to user ``agent`` with PASSWORD (or the
password as the user name, a token as GitHub takes it); anything else is 401. Every
response's size is added to the JSON file COUNTS (``{"upload_pack": bytes, "requests":
n, "refused": n, "receive_pack": n}``) as it goes, so a reader sees the bytes fetched so
far. The handler is the tests' ``http_git`` fixture's (tests/authgitserver.py).
"""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.authgitserver import handler


def main() -> None:
    root, port, password, counts_path = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
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

    srv = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), handler(root, password, http11=True, on_answer=count)
    )
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
