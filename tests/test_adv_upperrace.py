"""What avfs's host side reads of the fork's files while a confined command still runs.

The agent has two doors at once: MCP ``exec`` runs its command in a thread of its own, and
the other tools (``read``/``cat``, ``diff``, ``grep``, ``status``) answer meanwhile from the
same workspace (docs/security.md, "What the sandbox does not stop"). On the overlay backend
a file avfs knows of (an uncheckpointed one: a path git ignores stays so across every
exec) is a file of the overlay's upper layer, which the running command can rename a link
or a FIFO over at any moment. Each test runs the command through a real confined `proxy
exec` (the CLI, in the background) and reads as those tools do, on both backends."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from avfs_git.core.errors import AvfsError

from .test_adv_gitseal import _exec, _script
from .test_adv_gitseal import live as live  # the fixture: both backends
from .waitingexec import exec_argv, running

# One file swapped, not ten: with the fix undone (``overlaydb.open_regular`` a plain
# following ``os.open``), ten files leaked 2 reads of ~2,800 in 15 s, the first after
# ~1,100; one file leaked 82 of ~7,500 (1 in ~90), the first after 35 (suitetime11): its
# link is there ten times as often, so each read races it ten times as often.
FILES = 1
# the reads end once this many were tried and RACED of them met the command's link (the
# swaps that raced a read: refused, busy), or when the command ends (SECONDS); with the fix
# undone, 600 tries are ~6 leaks expected (the old 15 s at a load of ~8: ~2)
TRIES = 600
RACED = 30
SECONDS = 60

# the command: each file in turn replaced by a link to the host's file (renamed over it)
# and back, until the test makes `stop` or SECONDS have passed; `started` once it runs
RACER = """\
import os, sys, time
os.chdir("y")
secret, seconds = sys.argv[1], float(sys.argv[2])
open("started", "w").close()
end = time.time() + seconds
while time.time() < end and not os.path.exists("stop"):
    for j in range({files}):
        os.symlink(secret, f"l{{j}}")
        os.rename(f"l{{j}}", f"f{{j}}")
        with open(f"d{{j}}", "w") as fh:
            fh.write(f"data {{j}}\\n")
        os.rename(f"d{{j}}", f"f{{j}}")
"""


def _stop(where: str) -> None:
    """Tell the command to end: the test raced it enough (``stop`` made in ``where``)."""
    with open(os.path.join(where, "stop"), "w"):
        pass


def test_a_link_renamed_over_a_file_while_avfs_reads_it_reads_no_host_file(live, vault, tmp_path: Path):
    """Found in the twenty-second round (NAME=attack13): avfs opened an upper-layer file
    by its path, following a link (``os.open(path, O_RDONLY)``, libgit2's and the packer's
    ``open``), so a command that renamed a link to a host file over a file avfs knew of,
    while the agent's `cat` of it ran (MCP `read` beside MCP `exec`), got the host file's
    bytes back: one read in a few hundred, from the CLI; any file the person may read
    (`~/.ssh/id_rsa`). A FIFO renamed in the same way would have held the reader (an `open` of a FIFO
    waits for a writer). Now every
    read of an overlay file opens it ``O_NOFOLLOW|O_NONBLOCK`` and takes a regular file only
    (``safeopen.open_regular``): the read is ``busy`` (retry) or the command's own data."""
    mp = live.mountpoint
    secret = tmp_path / "host-secret"
    secret.write_text("HOST-SECRET not for the sandbox\n")
    # the files, made where git ignores them: they stay uncheckpointed, files of the overlay
    _script(live, "racer.py", RACER.format(files=FILES))
    made = _exec(
        "sh",
        "-c",
        'echo "y/" > .gitignore && mkdir y && for j in $(seq 0 9); do echo "data $j" > y/f$j; done',
    )
    assert made["result"]["exit_code"] == 0, made["result"]
    ws = vault.workspace("main")
    assert ws.read("y/f0") == b"data 0\n"
    reads = leaked = refused = 0
    argv = [*exec_argv(), "--", "python3", "racer.py", str(secret), str(SECONDS)]  # (the sandbox's python3)
    with running(argv, os.path.join(mp, "y", "started")) as proc:
        deadline = time.monotonic() + SECONDS + 30
        while proc.poll() is None and time.monotonic() < deadline:
            for j in range(FILES):
                try:
                    data = ws.read(f"y/f{j}")
                except AvfsError:  # busy; a link out of the workspace: no bytes
                    refused += 1
                    continue
                reads += 1
                if b"HOST-SECRET" in data:
                    leaked += 1
            if reads + refused >= TRIES and refused >= RACED:
                _stop(os.path.join(mp, "y"))
                break
        out, err = proc.communicate(timeout=120)
    print(f"upperrace[{live.backend}]: {reads} reads, {refused} refused (raced), {leaked} leaked")
    doc = json.loads(out)
    assert doc["result"]["exit_code"] == 0, (doc["result"]["stderr"], err)
    assert reads + refused >= TRIES and refused >= RACED, (reads, refused)  # the reads raced the command
    assert leaked == 0, f"{leaked} of {reads} reads returned the host file's bytes"
    assert secret.read_text() == "HOST-SECRET not for the sandbox\n"


# the directory's tries (each op in turn), ended as the file's: with the fix undone
# (``LiveDir.pinned`` the plain path below the mount point) the overlay backend's host
# directory was written at the second try, of ~840 in 15 s (suitetime11)
DIR_TRIES = 200

# the command: directory `d` and a link to a host directory exchanged (renameat2
# RENAME_EXCHANGE, or two renames where the file system has no exchange) until SECONDS
DIR_SWAPPER = """\
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
os.chdir("w")
os.symlink(sys.argv[1], "l")
open("started", "w").close()
end = time.time() + float(sys.argv[2])
while time.time() < end and not os.path.exists("stop"):
    if libc.syscall(316, -100, b"d", -100, b"l", 2) != 0:  # (x86_64's renameat2)
        try:  # (pure FUSE has no exchange: the link renamed in, the directory back)
            os.rename("d", "t"); os.rename("l", "d"); os.rename("d", "l"); os.rename("t", "d")
        except OSError:
            time.sleep(0.001)
"""


def test_a_link_renamed_over_a_directory_while_avfs_writes_there_writes_no_host_file(
    live, vault, tmp_path: Path
):
    """Found in the twenty-second round (NAME=attack13): a change avfs makes through an
    overlay mount (`avfs write`, `rm`, `chmod`, `mv`, `cp`, a restore: ``LiveDir``) went
    by the path below the mount point, so while a confined command swapped directory ``d``
    for a link to a host directory, the agent's MCP ``write_file`` of ``d/pwned`` (or the
    person's `avfs write`) beside its running MCP ``exec`` wrote the agent's bytes into that
    host directory (1 write in 40, from the CLI), and `rm`/`chmod` would have removed or
    changed a host file. Now each change reaches its parent directory from the mount point
    one directory at a time without following a link, and makes its last step without
    following one: it lands in the fork, or fails (`not a directory`). A read of a file
    there (MCP ``read_file``) went through the link the same way: an overlay file is
    opened from the upper layer's root likewise (``safeopen.open_regular``'s ``root``)."""
    mp = live.mountpoint
    host = tmp_path / "host-dir"
    host.mkdir()
    (host / "keep").write_text("the person's file\n")
    _script(live, "swapper.py", DIR_SWAPPER)
    made = _exec("sh", "-c", "mkdir -p w/d && echo 'in the fork' > w/d/keep")
    assert made["result"]["exit_code"] == 0, made["result"]
    ws = vault.workspace("main")
    tries = raced = 0
    argv = [*exec_argv(), "--", "python3", "swapper.py", str(host), str(SECONDS)]
    with running(argv, os.path.join(mp, "w", "started")) as proc:
        deadline = time.monotonic() + SECONDS + 30
        while proc.poll() is None and time.monotonic() < deadline:
            for op in ("read", "write", "chmod", "rm"):
                tries += 1
                try:
                    if op == "read":
                        assert b"person" not in ws.read("w/d/keep"), "avfs read the host directory's file"
                    elif op == "write":
                        ws.write("w/d/pwned", b"the agent's bytes\n")
                    elif op == "chmod":
                        ws.chmod("w/d/keep", True)
                    else:
                        ws.remove("w/d/keep")
                except AvfsError:  # met the link (or the directory moved away): raced
                    raced += 1
            if tries >= DIR_TRIES and raced >= RACED:
                _stop(os.path.join(mp, "w"))
                break
        out, err = proc.communicate(timeout=120)
    print(f"upperrace dir[{live.backend}]: {tries} tries, {raced} raced")
    doc = json.loads(out)
    assert doc["result"]["exit_code"] == 0, (doc["result"]["stderr"], err)
    assert tries >= DIR_TRIES and raced >= RACED, (tries, raced)
    assert sorted(os.listdir(host)) == ["keep"], "avfs wrote into the host directory"
    assert (host / "keep").read_text() == "the person's file\n"
    assert (host / "keep").stat().st_mode & 0o777 == 0o644
