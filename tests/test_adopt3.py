"""Another hand's commit adopted in a live mount beside a writer of the person's: nothing
the writer writes is replaced or lost (adopt3, the thirty-fourth round;
core/workspace/wsadopt.py, core/workspace/liveswap.py).

adopt2 compared each file the adoption follows with the old base's just before writing it
through the mount. What that compare cannot see is a writer: a program of the person's
holding the file open for writing (an editor, a database, a log, a build step rewriting
its output) whose bytes are the base's at the compare and change just after. On the
overlay backend the adoption's write replaced the file (unlinked, then created anew), and
every byte the writer wrote after went to a file no name shows; on pure FUSE the move
dropped the entry of the file the writer held (its later writes went to an overlay file
the workspace no longer showed). Both lost the writer's bytes, and `avfs status` showed
the commit's instead.

The writer here is a real process in a loop: it opens the file through the mount, writes
the base's bytes again and again (the file still shows the base: the adoption follows it),
says so once, and goes on until told to stop; then it writes its own bytes through the
same descriptor and closes. The order is made by real waits on its pipes (the adoption, an
`avfs status` process of its own, runs to its end between the first write and the stop),
not by sleeps."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .gitmodel_steps20 import other_hand_onto
from .gitmount import _git, _require, mount_fork
from .test_adopt2 import WAIT_S, _db_write_lock, _logs_agree, _start, _status_paused, _text, _until
from .test_json_schemas import validate

# the writer: opens argv[1] for writing (no truncation: the bytes stay the base's), writes
# argv[2] at offset 0 in a loop, says "ready" after the first, and once a line comes on its
# stdin writes argv[3] the same way and closes
_WRITER = r"""
import os, select, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CLOEXEC)
same, mine = sys.argv[2].encode(), sys.argv[3].encode()
os.pwrite(fd, same, 0)
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    os.pwrite(fd, same, 0)
sys.stdin.readline()
os.pwrite(fd, mine, 0)
os.close(fd)
print("done", flush=True)
"""


@contextlib.contextmanager
def _writer(path: Path, same: str, mine: str) -> Iterator[Callable[[], None]]:
    """The writer (``_WRITER``) on ``path``, in its loop once this is entered; the function
    given stops it (it then writes ``mine`` and closes), and must be called."""
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), same, mine],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        assert writer.stdout is not None and writer.stdin is not None
        out, into = writer.stdout, writer.stdin

        def stop() -> None:
            into.write("stop\n")
            into.flush()
            assert out.readline() == "done\n"
            assert writer.wait(timeout=WAIT_S) == 0

        try:
            assert out.readline() == "ready\n"
            yield stop
        finally:
            if writer.poll() is None:
                into.close()  # (its loop sees the end of its input and ends)
                writer.wait(timeout=WAIT_S)


def _status(mp: Path) -> dict[str, Any]:
    """`avfs --json status` in the mount, a process of its own, to its end."""
    import json

    env = {**os.environ, "AVFS_SERVER": "off", "AVFS_LOCK_WAIT": str(WAIT_S)}
    proc = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "status"],
        cwd=mp,
        env=env,
        capture_output=True,
        timeout=WAIT_S,
    )
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    validate(doc)
    return doc


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_file_a_writer_holds_open_in_a_loop_keeps_every_byte_it_writes(
    backend: str, cli_proc: Any, tmp_path: Path
) -> None:
    """Another hand commits a.txt and a new b.txt while the person's d/c.txt is
    uncheckpointed and a writer of theirs holds a.txt open, writing the base's bytes in a
    loop. The adoption (an `avfs status`) does not take a.txt from under the writer: it
    is the person's while open for writing, the commit is not adopted (`unadopted`
    naming a.txt), b.txt is not left written. The writer's own bytes, written after, are
    what a.txt shows, byte for byte; the next status names a.txt changed by both, and
    the checkpoint's rebase stops on it with nothing changed. Before: on the overlay
    backend the adoption unlinked a.txt and wrote the commit's anew (the writer's bytes
    went to the unlinked file); on pure FUSE the move dropped the entry the writer held.
    Either way a.txt showed the commit's, and the writer's bytes were gone."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        new = _start(mp, tmp_path)
        mine = "the writer's a\n"
        with _writer(mp / "a.txt", "one\n", mine) as stop:
            doc = _status(mp)
            stop()
        assert (mp / "a.txt").read_text() == mine
        assert not (mp / "b.txt").exists() and _text(mp / "d" / "c.txt") == "mine\n"
        assert doc["stale"] and doc["head"] == new, doc
        assert doc["unadopted"] == {"head": new, "conflicts": ["a.txt"]}, doc
        assert doc["changes"] == [{"path": "d/c.txt", "status": "modified"}], doc
        assert not [n for n in os.listdir(mp) if n.startswith(".avfs-")]  # (no side file left)
        doc = avfs("--json", "status").json()
        assert doc["unadopted"] == {"head": new, "conflicts": ["a.txt"]}, doc
        assert doc["changes"] == [
            {"path": "a.txt", "status": "modified"},
            {"path": "d/c.txt", "status": "modified"},
        ], doc
        _logs_agree(mp, avfs)
        assert avfs("checkpoint", "save", "-m", "rebased").code == 3  # (a.txt changed by both)
        assert (mp / "a.txt").read_text() == mine and not (mp / "b.txt").exists()
        assert _git(mp, "rev-parse", "HEAD").stdout.strip() == new


def test_a_written_file_a_writer_opened_stays_theirs_when_the_adoption_is_refused(
    cli_proc: Any, tmp_path: Path
) -> None:
    """On the overlay backend the adoption has written the commit's a.txt and new b.txt
    through the mount (its move held at the overlay database's write lock); a writer of
    the person's then opens b.txt and writes in a loop (the commit's bytes again), and
    the person writes a.txt: the adoption is refused (`unadopted` naming a.txt) and puts
    back what it wrote, but b.txt, open for writing, is the person's now: it stays, and
    the writer's bytes written after the refusal are what it shows, byte for byte (a
    new file of theirs). Before: the put back unlinked b.txt (it still held what was
    written), and every byte the writer wrote after went to the unlinked file."""
    _require("overlay")
    with mount_fork(cli_proc, tmp_path, "overlay", in_process=True) as (mp, avfs):
        new = _start(mp, tmp_path)
        stack = contextlib.ExitStack()
        stops: list[Callable[[], None]] = []

        def person(go: Callable[[], None]) -> None:
            with _db_write_lock():
                go()
                _until(
                    lambda: _text(mp / "b.txt") == "theirs b\n" and _text(mp / "a.txt") == "theirs\n",
                    "written",
                )
                stops.append(stack.enter_context(_writer(mp / "b.txt", "theirs b\n", "the writer's b\n")))
                (mp / "a.txt").write_text("person's a\n")

        with stack:
            doc = _status_paused(mp, person)
            stops[0]()
        assert (mp / "b.txt").read_text() == "the writer's b\n"
        assert (mp / "a.txt").read_text() == "person's a\n" and _text(mp / "d" / "c.txt") == "mine\n"
        assert doc["stale"] and doc["unadopted"] == {"head": new, "conflicts": ["a.txt"]}, doc
        assert not [n for n in os.listdir(mp) if n.startswith(".avfs-")]
        doc = avfs("--json", "status").json()
        assert doc["changes"] == [
            {"path": "a.txt", "status": "modified"},
            {"path": "b.txt", "status": "added"},
            {"path": "d/c.txt", "status": "modified"},
        ], doc
        assert doc["unadopted"]["conflicts"] == ["a.txt", "b.txt"], doc
        _logs_agree(mp, avfs)


def _commit_modes(vault: Path, index: Path, entries: dict[str, tuple[str, str] | None]) -> str:
    """Another hand's commit onto fork f of ``entries``: path -> (mode, bytes) or None
    (removed); its id."""
    return other_hand_onto(vault, index, entries)[1]


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_commit_of_every_kind_of_change_is_adopted_with_no_side_file_left(
    backend: str, cli_proc: Any, tmp_path: Path
) -> None:
    """What the swap does for each kind of change another hand's commit can make (the
    person's new mine.txt uncheckpointed): a file removed, a file made executable, a new
    symbolic link, a file in new nested directories; then back (the file again, the link
    and the directories gone). Each commit is adopted at the next status: the mount
    shows it exactly, only mine.txt is the person's change, no side file is left
    anywhere. A commit that makes a file a directory is not followed at all (below)."""
    _require(backend)
    from .test_adopt2 import _vault

    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        (mp / "mine.txt").write_text("mine\n")
        idx = tmp_path / "other-index"
        commits = [
            {
                "a.txt": None,
                "d/c.txt": ("100755", "c\n"),
                "l": ("120000", "d/c.txt"),
                "e/f/g.txt": ("100644", "g\n"),
            },
            {"a.txt": ("100644", "one again\n"), "l": None, "e/f/g.txt": None},
        ]
        for entries in commits:
            new = _commit_modes(_vault(), idx, entries)
            doc = avfs("--json", "status").json()
            assert doc.get("base") == new and not doc["stale"], json.dumps(doc)
            assert doc["changes"] == [{"path": "mine.txt", "status": "added"}], doc
            assert _git(mp, "status", "--porcelain").stdout == "?? mine.txt\n"
            for line in _git(mp, "ls-tree", "-r", "HEAD").stdout.splitlines():
                meta, path = line.split("\t")
                mode, _, oid = meta.split()
                p = mp / path
                if mode == "120000":
                    assert os.readlink(p) == _git(mp, "cat-file", "blob", oid).stdout
                else:
                    assert p.read_text() == _git(mp, "cat-file", "blob", oid).stdout, path
                    assert bool(p.stat().st_mode & 0o100) == (mode == "100755"), path
            left = [str(p) for p in mp.rglob(".avfs-*")]
            assert not left, left
        assert not (mp / "l").exists() and not [q for q in mp.rglob("e/**/*") if not q.is_dir()]
        # a file the commit makes a directory: on an overlay mount not followed, nothing
        # written, the commit not adopted (stale; the next checkpoint rebases); before, the
        # adoption wrote both, was refused, and its put back left a.txt deleted and a.txt/x
        # added, listed as the person's changes. Pure FUSE follows it by the move
        was = new
        new = _commit_modes(_vault(), idx, {"a.txt": None, "a.txt/x": ("100644", "x\n")})
        doc = avfs("--json", "status").json()
        assert doc["changes"] == [{"path": "mine.txt", "status": "added"}], doc
        if backend == "fuse":
            # (what the mount shows there is not looked at: the kernel keeps a.txt, read
            # above, a file until its entry's time runs out, ~60 s, on main as well;
            # docs/benchmarks.md, adopt3's "Noticed")
            assert doc["base"] == new and not doc["stale"], doc
        else:
            assert doc["base"] == was and doc["stale"] and "unadopted" not in doc, doc
            assert (mp / "a.txt").read_text() == "one again\n" and not list(mp.rglob(".avfs-*"))
            assert avfs("checkpoint", "save", "-m", "rebased").code == 0
            assert _git(mp, "rev-parse", "HEAD~1").stdout.strip() == new
        assert _git(mp, "show", "HEAD:a.txt/x").stdout == "x\n" and (mp / "mine.txt").read_text() == "mine\n"
        _logs_agree(mp, avfs)
