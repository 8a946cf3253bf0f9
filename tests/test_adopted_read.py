"""The resident server's look for its children (cli/adopted.py ``children``), made after
every event of its loop (~3 a served call): each thread's ``children`` list read through a
descriptor of its own, not a file object (nine system calls a list on main's code, four
now; h-merge11), with the same answer."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import builtins, io, json, os, subprocess, sys, threading
from avfs_git.cli import adopted
opened = []
real = io.open
def counting(*a, **k):
    opened.append(a[0] if a else None)
    return real(*a, **k)
builtins.open = io.open = counting
kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) for _ in range(2)]
gate = threading.Event()
t = threading.Thread(target=gate.wait)  # (a second thread: its own children list, empty)
t.start()
opened.clear()
got = adopted.children()
gate.set()
t.join()
for k in kids:
    k.kill()
    k.wait()
print(json.dumps({"found": sorted(got) == sorted(k.pid for k in kids), "opened": opened,
                  "after": sorted(adopted.children())}))
"""


def test_the_server_s_look_for_its_children_opens_no_file_object() -> None:
    p = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"found": True, "opened": [], "after": []}
