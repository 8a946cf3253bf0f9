"""FIFOs a confined command leaves at the names git opens in the work tree (the twenty-sixth
round, NAME=attack17): git 2.39 opens ``.gitignore``/``.gitattributes`` in every directory
it reads, and ``.mailmap`` at the top for `git log`, with a plain ``open`` that waits for a
writer on a FIFO. A command's ``mkfifo .gitignore`` had the person's plain `git status`,
`git add -A` and `git log` in the mount wait for ever after the run (avfs's own commands
read past it, and said nothing).

Each from inside a real confined `proxy exec` in a real mount, overlay and pure FUSE (which
refuses a FIFO: the attack fails there, and must stay so), then the person's git and avfs
commands, each given a minute: one that waits fails the test."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

from avfs_git.proxy import landlock

from .test_adv_gitseal import _avfs, _script
from .test_adv_gitseal import live as live  # the fixture: both backends
from .waitingexec import exec_argv, running

# the command: FIFOs at git's names (at the top, in a directory of the fork's, in
# directories it makes, in one it makes and renames), and one at a name git never opens
_PLANT = """set -u
made=0
for f in .gitignore .gitattributes .mailmap sub/.gitignore sub/.gitattributes new/deep/.gitignore data.fifo; do
  mkdir -p "$(dirname "$f")"
  mkfifo "$f" 2>/dev/null && made=$((made+1))
done
mkdir -p a && mkfifo a/.gitattributes 2>/dev/null && mv a b && made=$((made+1))
echo made=$made
"""


def _landlock() -> bool:
    """Whether the sandbox's command runs under avfs's Landlock domain here (Perl, and a
    kernel of Landlock ABI 2 or later: proxy/landlock.py)."""
    import ctypes

    return landlock.available() and int(ctypes.CDLL(None).syscall(444, None, 0, 1)) >= 2


_LANDLOCK = _landlock()

_GIT_READS = [
    ".gitignore",
    ".gitattributes",
    ".mailmap",
    "sub/.gitignore",
    "sub/.gitattributes",
    "new/deep/.gitignore",
    "b/.gitattributes",
]


def _person(mp: str, *argv: str) -> str:
    """The person's command in the mount: a minute at most (one that waits on a FIFO fails)."""
    try:
        got = subprocess.run(argv, cwd=mp, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{argv} waited for a minute in the mount") from None
    assert got.returncode == 0, (argv, got.stderr)
    return got.stdout


def _fifo(path: Path) -> bool:
    try:
        return stat.S_ISFIFO(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def test_fifos_at_names_git_opens_never_hold_the_person_s_git(live: Any, tmp_path: Path) -> None:
    """A command's FIFOs at ``.gitignore``, ``.gitattributes``, ``.mailmap`` (at the top, in
    the fork's directories, in new and renamed ones) are gone after the run and named in
    ``not_recorded``; the person's `git status`, `git add -A`, `git commit`, `git log`,
    `avfs status` and a checkpoint then answer. A FIFO at a name git never opens, and the
    person's own FIFO at ``.gitignore`` made before the run, stay."""
    mp = live.mountpoint
    os.makedirs(os.path.join(mp, "sub"), exist_ok=True)
    Path(mp, "sub", "a.py").write_text("x = 1\n")
    own = Path(mp, "own")
    own.mkdir()
    mine = False
    try:
        os.mkfifo(own / ".gitignore")
        mine = True
    except PermissionError:  # (pure FUSE makes no FIFO)
        pass
    _script(live, "plant.sh", _PLANT)
    got = subprocess.run([*exec_argv(), "--", "sh", "plant.sh"], capture_output=True, timeout=300)
    doc = json.loads(got.stdout)
    assert doc["result"]["exit_code"] == 0, doc["result"]
    made = int(doc["result"]["stdout"].split("made=")[1].split()[0])
    # none: the sandbox's Landlock domain refuses a FIFO in the fork (the twenty-eighth
    # round; the pure-FUSE mount refuses it anyway), but at a name git never opens
    assert made == (8 if live.backend == "overlay" and not _LANDLOCK else 0), doc["result"]
    assert _fifo(own / ".gitignore") == mine  # the person's own stays
    if mine:
        os.unlink(own / ".gitignore")
    # the person, in the mount
    _person(mp, "git", "status", "--porcelain")
    with open(os.path.join(mp, "README"), "a") as fh:
        fh.write("the person's line\n")
    _person(mp, "git", "add", "-A", ".")
    _person(mp, "git", "-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qm", "by the person")
    assert _person(mp, "git", "log", "-1", "--format=%s").strip() == "by the person"
    _person(mp, "git", "blame", "--", "README")
    named = {n["path"] for n in doc["not_recorded"] if n["kind"] == "fifo" and "git opens" in n["reason"]}
    assert named == (set(_GIT_READS) if made else set()), doc["not_recorded"]
    for p in _GIT_READS:
        assert not _fifo(Path(mp, p)), p
    assert _fifo(Path(mp, "data.fifo")) == bool(made)  # (no name git opens: the live tree's)
    r = _avfs("status")
    assert r.returncode == 0, r.stderr
    assert _avfs("checkpoint", "save", "after").returncode == 0


# the command: FIFOs at names git opens, then it says it runs and waits (the person's git
# meanwhile opens them and waits for a writer that never comes)
_PLANT_AND_WAIT = """set -u
mkdir -p sub
made=0
for f in .gitignore .gitattributes .mailmap sub/.gitignore sub/.gitattributes; do
  mkfifo "$f" 2>/dev/null && made=$((made+1))
done
echo made=$made
: > started
sleep 4
"""


def test_a_person_s_git_waiting_on_a_fifo_made_during_the_run_goes_on_after_it(
    live: Any, tmp_path: Path
) -> None:
    """The twenty-seventh round (NAME=attack18): the person's `git status`, `git log` and
    `git ls-files -o` started while the command runs open its FIFO at ``.gitignore``,
    ``.gitattributes`` or ``.mailmap`` and wait for a writer. The record stage removed the
    FIFO after the run, but removing a name wakes no one waiting on the file: each waited
    for ever (``wait_for_partner``), after the run too. Now each goes on once the run ends
    (the FIFO read as empty), and the FIFOs are named in ``not_recorded``."""
    mp = live.mountpoint
    os.makedirs(os.path.join(mp, "sub"), exist_ok=True)
    Path(mp, "sub", "a.py").write_text("x = 1\n")
    _script(live, "plant.sh", _PLANT_AND_WAIT)
    started = os.path.join(mp, "started")
    waiting: list[tuple[tuple[str, ...], subprocess.Popen[bytes]]] = []
    try:
        with running([*exec_argv(), "--", "sh", "plant.sh"], started) as proc:
            # the command's FIFOs are refused where its Landlock domain holds (the
            # twenty-eighth round): then the test makes them, during the run, for the
            # record stage to find as it would the command's (a FIFO made since it started)
            hosts = 0
            for name in (".gitignore", ".gitattributes", ".mailmap", "sub/.gitignore", "sub/.gitattributes"):
                if not _fifo(Path(mp, name)):
                    try:
                        os.mkfifo(os.path.join(mp, name))
                        hosts += 1
                    except PermissionError:  # (pure FUSE makes none)
                        pass
            for argv in (
                ("git", "status", "--porcelain"),
                ("git", "log", "-1", "--format=%an"),
                ("git", "check-attr", "-a", "--", "sub/a.py"),
                ("git", "ls-files", "-o", "--exclude-standard"),
            ):
                person = subprocess.Popen(argv, cwd=mp, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                waiting.append((argv, person))
            out, _ = proc.communicate(timeout=300)
        doc = json.loads(out)
        made = int(doc["result"]["stdout"].split("made=")[1].split()[0])
        assert made == (5 if live.backend == "overlay" and not _LANDLOCK else 0), doc["result"]
        for argv, person in waiting:
            try:
                _, perr = person.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                with open(f"/proc/{person.pid}/wchan") as fh:
                    where = fh.read()
                raise AssertionError(f"{argv} still waits a minute after the run ({where})") from None
            assert person.returncode == 0, (argv, perr)
    finally:
        for _, person in waiting:
            if person.poll() is None:
                person.kill()
                person.wait()
    named = {n["path"] for n in doc["not_recorded"] if n["kind"] == "fifo"}
    assert made + hosts == (5 if live.backend == "overlay" else 0)
    assert named == (
        {".gitignore", ".gitattributes", ".mailmap", "sub/.gitignore", "sub/.gitattributes"}
        if made + hosts
        else set()
    )
    _person(mp, "git", "status", "--porcelain")


# the command: FIFOs at the names git opens, then it waits (two minutes at most) for the
# person's git to be done
_PLANT_AND_HOLD = """set -u
mkdir -p sub
made=0
for f in .gitignore .gitattributes .mailmap sub/.gitignore sub/.gitattributes; do
  mkfifo "$f" 2>/dev/null && made=$((made+1))
done
echo made=$made
: > started
i=0; while [ ! -e done ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
"""


def test_the_person_s_git_never_waits_on_a_fifo_of_the_command_s_during_the_run(live: Any) -> None:
    """The twenty-eighth round (NAME=attack19), on what the twenty-seventh left: the
    person's `git status`, `git log`, `git check-attr` run *while* the command runs waited
    on its FIFO at ``.gitignore``, ``.gitattributes`` or ``.mailmap`` until the run ended
    (its timeout). Now the sandbox's Landlock domain refuses a FIFO in the fork
    (``landlock.FORK_MADE``; pure FUSE refused one already): each answers during the run."""
    mp = live.mountpoint
    os.makedirs(os.path.join(mp, "sub"), exist_ok=True)
    Path(mp, "sub", "a.py").write_text("x = 1\n")
    _script(live, "plant.sh", _PLANT_AND_HOLD)
    with running([*exec_argv(), "--", "sh", "plant.sh"], os.path.join(mp, "started")) as proc:
        try:
            for argv in (
                ("git", "status", "--porcelain"),
                ("git", "log", "-1", "--format=%an"),
                ("git", "check-attr", "-a", "--", "sub/a.py"),
            ):
                _person(mp, *argv)
        finally:
            Path(mp, "done").touch()
        out, _ = proc.communicate(timeout=300)
    doc = json.loads(out)
    assert doc["result"]["stdout"].strip() == "made=0", doc["result"]
    assert not [n for n in doc["not_recorded"] if n["kind"] == "fifo"], doc["not_recorded"]
