"""What avfs's host side learns of the host through a directory of the fork that a
running confined command swaps for a link (twenty-third round, NAME=attack14).

The twenty-second round (attack13) made avfs's changes through an overlay mount and its
reads of an overlay file's bytes go from a trusted root one directory at a time, no link
followed (``LiveDir.pinned``, ``safeopen.open_regular``). What else the agent's other tools
ask of the fork beside its MCP ``exec`` still went by the whole path below the upper layer
or the mount point: a listing of a directory (MCP ``list_files``: names and sizes), a
file's ``stat``, the blob id MCP ``read_file`` gives back (``wschecks.blob_of``), a status's
ids of the files it hashes, the ``.gitattributes`` it judges them by. Each test runs the
command through a real confined ``proxy exec`` (the CLI, in the background) and asks as
those tools do, on both backends (the pure-FUSE mount keeps the fork's files by id, never
under a path of the fork's, so it passes by construction; it is run for the contract)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from avfs_git.core.errors import AvfsError
from avfs_git.core.store.gitstore import blob_id
from avfs_git.core.vaults.changes import changes_since

from .test_adv_gitseal import _avfs, _exec, _script
from .test_adv_gitseal import live as live  # the fixture: both backends
from .test_adv_upperrace import DIR_SWAPPER
from .waitingexec import exec_argv, running

HOST_KEEP = b"the person's file, longer than the fork's\n"
# rounds of questions asked while the command swaps, and how many answers at least met the
# swap (not a directory, or gone): then the command is told to stop
WALK_TRIES, RACED = 31, 30
# the rounds of questions between two statuses, in seconds (3 before suitetime25: the two
# gaps held the command's swaps and the mount's daemon busy 6 s of the test's ~7 on pure
# FUSE, where a status answers at once; the questions meet the swap within ~0.1 s)
STATUS_GAP = 0.5


def test_a_directory_swapped_for_a_link_shows_no_host_name_size_or_id(live, vault, tmp_path: Path):
    """Found in the twenty-third round (NAME=attack14): while a confined command swapped
    directory ``w/d`` of an overlay mount for a link to a host directory
    (``renameat2(RENAME_EXCHANGE)`` in a loop), the agent's listing of ``w/d`` (MCP
    ``list_files``) beside its running MCP ``exec`` listed the host directory's names (a
    walk of the upper layer followed the link: ``os.scandir`` of the whole path), ``stat``
    gave a host file's size, MCP ``read_file``'s ``blob`` was the host file's id (the file
    hashed through the mount by its path), and a status hashed the host file and reported
    its id as the fork's file's; a status's walk went on into the host directory's tree.
    Now the upper layer's directories are listed through a descriptor that is the very
    directory its parent's listing named, and its entries, ids and attribute files asked
    from the layer's root (or the mount point) without following a link on the way
    (``safeopen.open_dir``, ``beneath``): the answer is the fork's, or "not there"."""
    mp = live.mountpoint
    host = tmp_path / "host-dir"
    (host / "hostonly" / "inner").mkdir(parents=True)
    (host / "keep").write_bytes(HOST_KEEP)
    (host / "hostonly" / "inner" / "x").write_text("x\n")
    (host / ".gitattributes").write_text("* text\n")
    host_id = blob_id(HOST_KEEP)
    _script(live, "swapper.py", DIR_SWAPPER)
    # uncommitted (--no-commit): files of the overlay, read from its upper layer
    r = _avfs(
        "--json",
        "proxy",
        "exec",
        "--no-commit",
        "--",
        "sh",
        "-c",
        "mkdir -p w/d/sub && printf 'in\\r\\nfork\\r\\n' > w/d/keep && : > w/d/.gitattributes",
    )
    assert json.loads(r.stdout)["result"]["exit_code"] == 0, r.stdout
    ws = vault.workspace("main")
    fork_id = ws.blob_of("w/d/keep")
    assert fork_id == blob_id(b"in\r\nfork\r\n")
    leaks: list[str] = []
    asked = raced = statuses = 0
    in_status = 0.0
    argv = [*exec_argv("--no-commit"), "--", "python3", "swapper.py", str(host), "25"]
    with running(argv, os.path.join(mp, "w", "started")) as proc:
        deadline = time.monotonic() + 90
        next_status = time.monotonic() + STATUS_GAP
        while proc.poll() is None and time.monotonic() < deadline:
            asked += 1
            try:
                names = {e.name: e.size for e in ws.listdir("w/d", sizes=True)}
                if "hostonly" in names or names.get("keep") == len(HOST_KEEP):
                    leaks.append(f"listing: {names}")
            except AvfsError:
                raced += 1  # (not a directory now, or gone: no answer is no leak)
            try:
                if ws.stat("w/d/keep").size == len(HOST_KEEP):
                    leaks.append("stat: the host file's size")
            except AvfsError:
                raced += 1
            try:
                if ws.blob_of("w/d/keep") == host_id:
                    leaks.append("blob_of: the host file's id")
            except AvfsError:
                raced += 1
            if time.monotonic() > next_status:  # (a status waits on the daemon's journal meanwhile: seconds)
                statuses += 1
                t0 = time.monotonic()
                try:
                    for c in ws.status():
                        if "hostonly" in c.path or c.new_oid == host_id:
                            leaks.append(f"status: {c}")
                except AvfsError:
                    pass
                in_status += time.monotonic() - t0
                next_status = time.monotonic() + STATUS_GAP
            # raced enough (questions that met the swap, two statuses among them): the
            # command need not run out its 25 s (suitetime14: its loop of swaps and the
            # daemon's share of them were most of the test's CPU)
            if asked >= WALK_TRIES and raced >= RACED and statuses >= 2:
                with open(os.path.join(mp, "w", "stop"), "w"):
                    pass
                break
        out, err = proc.communicate(timeout=120)
    print(f"walkrace[{live.backend}]: {asked} rounds, {raced} raced, {statuses} statuses ({in_status:.1f} s)")
    doc = json.loads(out)
    assert doc["result"]["exit_code"] == 0, (doc["result"]["stderr"], err)
    assert asked >= WALK_TRIES and raced >= RACED, (
        asked,
        raced,
        in_status,
    )  # the questions raced the command
    assert not leaks, f"{len(leaks)} answers of {asked} rounds were the host's: {leaks[:5]}"
    assert sorted(os.listdir(host)) == [".gitattributes", "hostonly", "keep"]
    # the fork's own, once the command is gone (under whichever name the swaps left it)
    d = "w/l" if os.path.islink(os.path.join(mp, "w", "d")) else "w/d"
    assert ws.blob_of(f"{d}/keep") == fork_id
    assert {e.name for e in ws.listdir(d)} == {".gitattributes", "keep", "sub"}


def _watches(pid: int) -> int:
    """How many inotify watches process ``pid`` holds (its descriptors' ``fdinfo``)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                n += sum(1 for line in fh if line.startswith("inotify wd:"))
        except OSError:
            pass
    return n


# the command: a directory made where the host directory has one of that name, then its
# parent swapped for a link to the host directory before the mount's daemon looks at it
PARENT_SWAP = """\
import os, sys, time
os.mkdir("w/hostonly")
os.rename("w", "w.real")
os.symlink(sys.argv[1], "w")
time.sleep(1)
"""


def test_a_new_directory_s_parent_swapped_for_a_link_walks_no_host_tree(live, vault, tmp_path: Path):
    """Found in the twenty-third round (NAME=attack14): the mount daemon's watch of the
    upper layer (the journal git's fsmonitor hook and the change stream are answered
    from) lists a directory that appears and watches every directory below it, by their
    paths. A command that made ``w/usr`` and at once renamed a link to ``/`` over ``w``
    had the daemon walk the host's ``/usr`` and add an inotify watch to each of its
    15,512 directories (the exec took 122 s; the watches stay until unmount, count against
    the person's inotify limit, and every change there became a change of the fork's);
    the host's names went into the journal and the fork's change stream, which MCP
    ``changes_since`` gives the agent. Now the watch reaches each directory as its
    parent's listing named it, from the layer's root, never through a link
    (``upper.open_listed``). The pure-FUSE mount has no upper layer to watch (run for the
    contract)."""
    mp = live.mountpoint
    host = tmp_path / "host-dir"
    for i in range(40):
        (host / "hostonly" / f"secret-dir-{i}").mkdir(parents=True)
    made = _exec("sh", "-c", "mkdir -p w && echo x > w/f")
    assert made["result"]["exit_code"] == 0, made["result"]
    cursor = changes_since(vault, "main", None).cursor
    before = _watches(live.pid)
    _script(live, "attack.py", PARENT_SWAP)
    doc = _exec("python3", "attack.py", str(host))
    assert doc["result"]["exit_code"] == 0, doc["result"]
    assert _watches(live.pid) < before + 20, "the daemon watches the host's directories"
    events = changes_since(vault, "main", cursor).events
    named = [e.path for e in events if "secret-dir" in (e.path or "")]
    assert not named, f"the fork's change stream names the host's directories: {named[:3]}"
    # the fork holds what the command made: the link, and its directory moved
    assert os.readlink(os.path.join(mp, "w")) == str(host)
    assert os.path.isdir(os.path.join(mp, "w.real", "hostonly"))
    assert sorted(os.listdir(host / "hostonly"))[:2] == ["secret-dir-0", "secret-dir-1"]


# the command: one file renamed back and forth as fast as it can, until SECONDS have passed
# (or until the test makes ``w/stop``: looked for once in 256 rounds, so the loop stays one
# of renames)
RENAMER = """\
import os, sys, time
open("w/a", "w").close()
open("w/started", "w").close()
end = time.time() + float(sys.argv[1])
n = 0
while time.time() < end and (n % 256 or not os.path.exists("w/stop")):
    os.rename("w/a", "w/b")
    os.rename("w/b", "w/a")
    n += 1
"""


def test_a_command_that_never_stops_writing_never_holds_the_journal_s_answer(live, vault):
    """Found in the twenty-third round (NAME=attack14): the mount daemon's journal (from
    which `avfs status`, MCP ``status`` and git's fsmonitor hook in the mount are
    answered) read the kernel's events until none was left before it answered, under its
    lock. A command that changed a file in a loop (two renames, as a build writing files
    does) queued events faster than the daemon read them: no answer came while it ran,
    each asker waited out its 10 s and then read the whole upper layer itself (the person's
    `avfs status` 9-20 s, git's hook likewise). Now an answer reads what was queued when it
    was asked (every change made before the question), and the rest waits for the next
    (``UpperWatch._drain``). Pure FUSE keeps no such journal (run for the contract: none
    answers there, and nothing waits)."""
    from avfs_git.core.vaults import registry
    from avfs_git.core.workspace import upperask

    mp = live.mountpoint
    made = _exec("sh", "-c", "mkdir -p w")
    assert made["result"]["exit_code"] == 0, made["result"]
    _script(live, "renamer.py", RENAMER)
    ws = vault.workspace("main")
    git_dir = registry.mount_dir(vault.state_dir, "main")
    answered = unanswered = 0
    argv = [*exec_argv(), "--", "python3", "renamer.py", "20"]
    with running(argv, os.path.join(mp, "w", "started")) as proc:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and answered + unanswered < 3:
            got = upperask.journal(ws.overlay.upper_dir, git_dir, None)
            if got is None:
                unanswered += 1
            else:
                answered += 1
        # the questions are asked: the command need not run out its 20 s (suitetime14: the
        # loop's renames and the daemon's reading of their events were ~2/5 of the file's CPU)
        with open(os.path.join(mp, "w", "stop"), "w"):
            pass
        out, err = proc.communicate(timeout=120)
    doc = json.loads(out)
    assert doc["result"]["exit_code"] == 0, (doc["result"]["stderr"], err)
    if live.backend == "overlay":
        assert answered + unanswered == 3, "the command ended before three questions"
        assert unanswered == 0, f"{unanswered} of 3 questions got no answer from the journal"
