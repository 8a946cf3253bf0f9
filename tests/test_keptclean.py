"""The kept process's check that a call left nothing behind, without a collection when
nothing is left (h-merge6).

After each call the kept process (cli/callproc.py ``keep``) checks that the call left no
descriptor, thread or umask behind before it takes the next (:func:`.callproc._clean`).
It ran a full ``gc.collect()`` first, every call, so that a cycle holding a descriptor
was let go before the count: ~0.9 ms of a served merge's CPU after its answer on
minimist, where no merge left such a cycle (docs/benchmarks.md, h-merge6's section). It
looks first now, and collects and looks again only when something is left. Each case runs
in a process of its own holding descriptors 3 and 4 as the kept process does (its
caller's connection, its end of the pair)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

SCRIPT = r"""
import gc, json, os, sys
gc.disable()  # (only the check's own collection frees a cycle here)
null = os.open("/dev/null", os.O_RDWR)
for fd in (3, 4):
    if fd != null:
        os.dup2(null, fd)
if null not in (3, 4):
    os.close(null)
from avfs_git.cli import callproc
from avfs_git.cli.homekeep import KeptHome

collects = []
real = gc.collect
def counted(*a):
    collects.append(1)
    return real(*a)
gc.collect = counted
umask = os.umask(0o022)
os.umask(umask)
kept = KeptHome()
out = {"clean": callproc._clean(umask, kept), "collects": len(collects)}

class Cycle:
    pass

c = Cycle()
c.me = c
c.fh = open(sys.executable, "rb")  # (a descriptor only the cycle holds)
fd = c.fh.fileno()
del c
out["cycle_clean"] = callproc._clean(umask, kept)
out["cycle_collects"] = len(collects) - out["collects"]
out["cycle_fd_closed"] = not os.path.exists(f"/proc/self/fd/{fd}")
left = open(sys.executable, "rb")  # (a descriptor the call left open)
out["left_clean"] = callproc._clean(umask, kept)
print(json.dumps(out))
"""


def test_a_call_that_left_nothing_is_clean_without_a_collection() -> None:
    """Nothing left: clean, no collection (main's code: one a call). A cycle holding a
    descriptor: collected, then clean, the descriptor closed. A descriptor left open:
    not clean, as before."""
    p = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got == {
        "clean": True,
        "collects": 0,
        "cycle_clean": True,
        "cycle_collects": 1,
        "cycle_fd_closed": True,
        "left_clean": False,
    }, got


HELD = r"""
import json, os, sys
null = os.open("/dev/null", os.O_RDWR)
for fd in (3, 4):
    if fd != null:
        os.dup2(null, fd)
if null not in (3, 4):
    os.close(null)
from avfs_git.cli import callproc, homekeep
from avfs_git.cli.homekeep import KeptHome
from avfs_git.core.settings import Settings

path = sys.argv[1]
os.environ["AVFS_HOME"] = path
looked = []
real = homekeep._open_here
def counted(p):
    looked.append(p)
    return real(p)
homekeep._open_here = counted
kept = KeptHome()
home = kept.open(path, Settings.from_environ(os.environ, path))
vault = home.vault("v")
for fork in ("main", "a"):
    vault.workspace(fork).is_dirty()  # (its overlay database open, as a merge leaves it)
vault.oplog.recent(1)  # (and the op log's)
umask = os.umask(0o022)
os.umask(umask)
dbs = [fd for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}")
       and os.readlink(f"/proc/self/fd/{fd}").endswith(".db")]
out = {"clean": callproc._clean(umask, kept), "looked": len(looked), "dbs": len(dbs)}
import sqlite3
c = sqlite3.connect(os.path.join(os.path.realpath(vault.state_dir), "t.db"), isolation_level=None)
c.execute("CREATE TABLE t (x)")
c.execute("INSERT INTO t VALUES (1), (2)")
c.execute("BEGIN")
c.execute("SELECT x FROM t").fetchone()  # (a read transaction left open: a lock on a rollback journal's database)
out["read_txn_clean"] = callproc._clean(umask, kept)
c.execute("COMMIT")
out["after_commit_clean"] = callproc._clean(umask, kept)
c.close()
print(json.dumps(out))
"""


def _kept_home_check(vault: Any, script: str) -> dict[str, Any]:
    """``script`` run on a kept home of three databases or more (a fork made, the home
    closed): its JSON answer."""
    vault.create_fork("main", "a")
    vault.home.close()
    p = subprocess.run(
        [sys.executable, "-c", script, vault.home.path], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    got: dict[str, Any] = json.loads(p.stdout)
    assert got["dbs"] >= 3, got
    return got


def test_the_check_reads_each_descriptor_s_name_once(vault: Any) -> None:
    """A kept home holding three databases (two workspaces' overlays, the op log): the
    check finds it clean without listing every descriptor again for each database's
    ``-shm`` (main's code: ``_open_here`` once a database, each a listing and a
    ``readlink`` of every descriptor, ~100 a served merge's check, h-merge7); a read
    transaction left open is still not clean."""
    got = _kept_home_check(vault, HELD)
    assert got == {
        "clean": True,
        "looked": 0,
        "dbs": got["dbs"],
        "read_txn_clean": False,
        "after_commit_clean": True,
    }, got


ONCE = HELD.replace(
    'out = {"clean": callproc._clean(umask, kept), "looked": len(looked), "dbs": len(dbs)}',
    """reads = []
real_readlink = os.readlink
def readlink(p, *a, **k):
    reads.append(p)
    return real_readlink(p, *a, **k)
os.readlink = readlink
links = callproc._fd_links()  # (as keep reads them after a call: once)
n = len(reads)
grown = callproc._wal_grown(links)
out = {"clean": callproc._clean(umask, kept, links), "looked": len(looked), "dbs": len(dbs),
       "links": n >= len(dbs), "read_again": len(reads) - n, "grown": grown}""",
).replace(
    "print(json.dumps(out))",
    'out["txn_links_clean"] = callproc._clean(umask, kept, callproc._fd_links())\nprint(json.dumps(out))',
)


def test_the_wals_look_and_the_check_share_one_reading_of_the_descriptors(vault: Any) -> None:
    """After a call the kept process looks for grown WALs and then checks that the call
    left nothing (cli/callproc.py ``keep``): both now take one reading of the descriptors'
    links (:func:`.callproc._fd_links`), where main's code listed ``/proc/self/fd`` and read
    every link for each (~26 ``readlink`` a served merge's, h-merge8). The verdicts are
    the same: clean with the kept home's databases, not clean with a read transaction
    left open, clean again after it."""
    got = _kept_home_check(vault, ONCE)
    assert got == {
        "clean": True,
        "looked": 0,
        "dbs": got["dbs"],
        "links": True,
        "read_again": 0,
        "grown": [],
        "read_txn_clean": False,
        "after_commit_clean": True,
        "txn_links_clean": True,
    }, got


CHEAP = HELD.replace(
    'out = {"clean": callproc._clean(umask, kept), "looked": len(looked), "dbs": len(dbs)}',
    """import builtins, io
calls = {"fstat": 0, "open": 0, "file_id": 0}
def counting(name, real):
    def f(*a, **k):
        calls[name] += 1
        return real(*a, **k)
    return f
os.fstat = counting("fstat", os.fstat)
builtins.open = io.open = counting("open", io.open)
from avfs_git.core.workspace import overlaydb
overlaydb.file_id = counting("file_id", overlaydb.file_id)
links = callproc._fd_links()  # (as keep reads them after a call)
out = {"clean": callproc._clean(umask, kept, links), "looked": len(looked), "dbs": len(dbs),
       "fstat": calls["fstat"], "open": calls["open"]}
kept.release()  # (after a call: the workspaces but the last ones closed)
out["released_file_ids"] = calls["file_id"]
out["kept_open"] = sorted(vault._ws)
kept.open(path, Settings.from_environ(os.environ, path))  # (the next call: they are looked at)
out["next_call_file_ids"] = calls["file_id"]
vault.workspace("main").is_dirty()
vault.workspace("a").is_dirty()""",
)


def test_the_check_after_a_call_reads_each_descriptor_once_and_release_leaves_the_look_to_the_next(
    vault: Any,
) -> None:
    """After a kept call (cli/callproc.py ``keep``) the check reads each descriptor's link
    once and its ``fdinfo`` through the descriptor itself: main's code also ``fstat``-ed
    each descriptor whose link it had just read and opened a text file object for each
    ``fdinfo`` (nine system calls a descriptor, ~30 descriptors a served merge's,
    h-merge11); and the home's release after the call keeps the last workspaces without
    the look at their overlay databases that the next call's open makes anyway (main's
    code made both). The verdicts are the same: clean with the kept home's databases, not
    clean with a read transaction left open, clean after it."""
    got = _kept_home_check(vault, CHEAP)
    assert got == {
        "clean": True,
        "looked": 0,
        "dbs": got["dbs"],
        "fstat": 0,
        "open": 0,
        "released_file_ids": 0,
        "kept_open": ["a", "main"],
        "next_call_file_ids": 2,
        "read_txn_clean": False,
        "after_commit_clean": True,
    }, got
