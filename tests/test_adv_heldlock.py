"""git's lock files in the worktree's git dir while the person has a git open in the mount
(the sixteenth round's review, NAME=attack7): a lock the person's git holds is the person's,
and avfs leaves it after a run; but the command can swap it for one of its own while it
waits, and the person's git then renames the command's bytes into place.

Each attack runs through a real confined `proxy exec` in a real mount (the CLI, served warm
by the mount's daemon), on the overlay backend and on pure FUSE, while the test acts as the
person (a `git commit -a` whose editor is open across the run), then as the person after it
(`git status`, `git commit`)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from avfs_git.mount.indexflags import cache_tree_ids
from avfs_git.mount.ownfiles import worktree_dir

from .contract.test_proxy_exec_warm import _wait_for
from .test_adv_gitseal import _avfs, _git, _script
from .test_adv_gitseal import live as live  # the fixture: both backends
from .test_gitindex_git import project as project  # the fixture: Django's repository
from .waitingexec import exec_argv, held_editor

# the command: a nested repository whose fsmonitor would run for the person, an index of its
# own staging it as a gitlink (in the sandbox's /tmp), then, once the person's `git commit`
# holds ``index.lock`` (its editor is open: it marks ``editing`` in the mount), that lock
# swapped for the command's index. Only then: an ``index.lock`` seen before it may be no git's
# of the person's (found in the twenty-third round, NAME=race1: the command waited for any
# lock, at most 30 s, then made its own; the person's git, finding it, failed and was gone at
# the run's end, and avfs removed the lock as the command's, rightly, where the test wanted
# the held lock's reason). Never its own lock: the person's git not in its editor fails here.
_SWAP = """set -e
git init -q sub
git -C sub config core.fsmonitor 'echo ran >> {canary}; false'
echo inner > sub/f && git -C sub add f && git -C sub -c user.name=A -c user.email=a@x commit -qm inner
G=$(git rev-parse --absolute-git-dir)
cp "$G/index" /tmp/idx && GIT_INDEX_FILE=/tmp/idx git add sub 2>/dev/null
: > started
i=0; while [ ! -e editing ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done
[ -e editing ] && [ -e "$G/index.lock" ] || {{ echo "NOT IN ITS EDITOR"; exit 3; }}
rm -f "$G/index.lock" && cp /tmp/idx "$G/index.lock" && echo SWAPPED
"""


def _person_commits_while_it_runs(argv: list[str], mp: Path, tmp_path: Path) -> tuple[dict, bytes]:  # type: ignore[type-arg]
    """Run the confined command ``argv`` (it writes ``started``, then waits for the person's
    git to be in its editor and swaps ``index.lock``); meanwhile the person appends to
    ``lib.py`` and runs `git commit -a`, whose editor stays open until the run has ended
    (its lock held past the run: the case tested). Returns the run's document once the
    person's commit has ended, and the person's git's stderr."""
    run = subprocess.Popen([*exec_argv("--no-commit"), "--", *argv], stdout=subprocess.PIPE)
    person = None
    err = b""
    try:
        assert _wait_for(lambda: os.path.exists(mp / "started"), 60), "the command did not start"
        with open(mp / "lib.py", "a") as fh:
            fh.write("y = 2\n")
        editor, release = held_editor(tmp_path, writes="by-the-person", marks=mp / "editing")
        env = {**os.environ, "GIT_EDITOR": editor}
        git = ["git", "-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qa"]
        person = subprocess.Popen(git, cwd=mp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, _ = run.communicate(timeout=180)
        still = person.poll() is None
    finally:
        if run.returncode is None:
            out, _ = run.communicate(timeout=120)
        if person is not None:
            release.touch()
            _out, err = person.communicate(timeout=60)
    doc = json.loads(out)
    assert doc["result"]["exit_code"] == 0 and "SWAPPED" in doc["result"]["stdout"], (doc["result"], err)
    assert still, err
    os.unlink(mp / "editing")
    return doc, err


def test_a_held_index_lock_the_command_swaps_never_becomes_the_person_s_index(live, vault, tmp_path):
    """The person's `git commit -a` holds ``index.lock`` while its editor is open and renames
    it over ``index`` when it ends. A command running meanwhile removed that lock and wrote
    its own there (an index staging a nested repository as a gitlink): avfs left it, as the
    person's git runs in the mount, and never saw the gitlink (the index itself was not
    changed). The person's commit then made the command's index theirs, and their next
    plain `git status` in the mount ran the nested repository's ``core.fsmonitor`` on the
    host."""
    mp = live.mountpoint
    canary = tmp_path / "canary"
    _script(live, "swap.sh", _SWAP.format(canary=canary))
    doc, err = _person_commits_while_it_runs(["sh", "swap.sh"], Path(mp), tmp_path)
    held = [r["reason"] for r in doc["refs_refused"] if r["ref"] == "index.lock"]
    assert len(held) == 1 and "nested repository" in held[0], doc["refs_refused"]
    assert b"unable to write" in err, err  # git says so
    # their commit holds what they changed, and nothing of the command's
    assert _git("log", "-1", "--format=%s", cwd=mp).strip() == "by-the-person"
    assert _git("show", "--format=", "--name-only", "HEAD", cwd=mp).split() == ["lib.py"]
    _git("status", cwd=mp)
    assert not canary.exists(), "the nested repository's fsmonitor ran for the person"
    assert "160000" not in _git("ls-files", "-s", cwd=mp), "the command's index became the person's"
    assert not os.path.lexists(os.path.join(worktree_dir(vault, "main"), "index.lock"))
    assert Path(mp, "lib.py").read_text().endswith("y = 2\n")


def test_a_head_lock_left_while_the_person_s_git_runs_goes_at_the_next_run(live, vault, tmp_path):
    """A ``HEAD.lock`` (naming another fork's branch) the command leaves while a git of the
    person's runs in the mount (a `git commit` in its editor) stays after the run: it may be
    that git's. It then counted as the person's at every later run, and every `git commit`
    of theirs failed ("Unable to create .../HEAD.lock") until they removed it. Now the next
    run with no git of theirs open removes it; their commit never lands on the branch the
    lock names."""
    mp = live.mountpoint
    _script(
        live,
        "head.sh",
        ": > started; i=0; while [ ! -e editing ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n"
        'echo "ref: refs/heads/other" > "$(git rev-parse --git-dir)/HEAD.lock"\n',
    )  # (made once the person's git runs: its editor is open)
    other = _git("--git-dir", vault.path, "rev-parse", "other").strip()
    run = subprocess.Popen([*exec_argv("--no-commit"), "--", "sh", "head.sh"], stdout=subprocess.PIPE)
    pager = None
    try:
        assert _wait_for(lambda: os.path.exists(os.path.join(mp, "started")), 60), "the command did not start"
        # a git of the person's open in the mount: a `git commit` in its editor (it aborts)
        editor, release = held_editor(tmp_path, marks=os.path.join(mp, "editing"))  # open until the run ends
        env = {**os.environ, "GIT_EDITOR": editor}
        pager = subprocess.Popen(["git", "commit", "--allow-empty"], cwd=mp, env=env, stderr=subprocess.PIPE)
        out, _ = run.communicate(timeout=120)
    finally:
        if run.returncode is None:
            out, _ = run.communicate(timeout=120)
        if pager is not None:
            release.touch()
            _o, perr = pager.communicate(timeout=60)
    os.unlink(os.path.join(mp, "editing"))
    doc = json.loads(out)
    assert doc["result"]["exit_code"] == 0, doc["result"]
    lock = os.path.join(worktree_dir(vault, "main"), "HEAD.lock")
    assert os.path.exists(lock) and "HEAD.lock" not in [r["ref"] for r in doc["refs_refused"]], (
        doc["refs_refused"],
        doc["result"],
        perr,
    )
    assert "HEAD.lock" not in [r["ref"] for r in doc["refs_refused"]], doc
    with open(os.path.join(mp, "lib.py"), "a") as fh:
        fh.write("y = 2\n")
    failed = subprocess.run(["git", "-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qam", "mine"], cwd=mp,
                            capture_output=True, text=True)  # fmt: skip
    assert failed.returncode != 0 and "HEAD.lock" in failed.stderr, failed  # git refuses, says why
    assert _git("--git-dir", vault.path, "rev-parse", "other").strip() == other
    nxt = subprocess.run([*exec_argv("--no-commit"), "--", "true"], capture_output=True, timeout=120)
    assert "HEAD.lock" in [r["ref"] for r in json.loads(nxt.stdout)["refs_refused"]], nxt.stdout
    assert not os.path.lexists(lock)
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qam", "mine", cwd=mp)
    assert _git("show", "--format=%s", "--name-only", "HEAD", cwd=mp).split() == ["mine", "lib.py"]
    assert _git("--git-dir", vault.path, "rev-parse", "other").strip() == other


# the command: once the person's `git commit -a` holds ``index.lock`` (its editor is open),
# that lock swapped for the same bytes with its cache tree's ``src`` set to the tree ``src``
# had one commit before (an object the vault holds): all the rest is what their git wrote.
_TREE_SWAP = """import hashlib, os, subprocess, time
gd = subprocess.check_output(['git', 'rev-parse', '--absolute-git-dir']).decode().strip()
old = bytes.fromhex(subprocess.check_output(['git', 'rev-parse', 'HEAD~1:src']).decode().strip())
open('started', 'w').close()
lock = os.path.join(gd, 'index.lock')
for _ in range(2400):
    if os.path.exists('editing'):
        break
    time.sleep(0.05)
if not (os.path.exists('editing') and os.path.exists(lock)):
    raise SystemExit('NOT IN ITS EDITOR')
data = open(lock, 'rb').read()
at = data.index(b'TREE')
size = int.from_bytes(data[at + 4:at + 8], 'big')
ext = data[at + 8:at + 8 + size]
i = ext.index(b'src\\0')
nl = ext.index(b'\\n', i)
assert not ext[i:nl].split(b'\\0')[1].startswith(b'-1'), ext[i:nl]  # (valid in the person's)
ext = ext[:nl + 1] + old + ext[nl + 21:]
body = data[:at + 8] + ext + data[at + 8 + size:-20]
with open(lock + '.new', 'wb') as fh:
    fh.write(body + hashlib.sha1(body).digest())
os.rename(lock + '.new', lock)
print('SWAPPED', old.hex())
"""


def test_a_cache_tree_planted_in_a_held_index_lock_never_becomes_the_person_s_commit(live, vault, tmp_path):
    """The person's `git commit -a` holds ``index.lock`` (with the cache tree it computed)
    while its editor is open, and renames it over ``index`` when it ends. A command running
    meanwhile swapped that lock for the same bytes but ``src``'s cache tree node, set to the
    tree before a fix (the vault holds it): every entry what the person's git wrote, so
    proxy/heldlock.py let it stay (the twenty-fourth round left it, NAME=attack15). The
    person's commit then renamed it into place, and their next `git commit -a` (a README
    line) recorded the planted ``src``: the fix reverted in their own commit. Now a held
    lock's cache tree must name, for every directory it says is valid, the tree the
    entries make (else the lock is removed, as a swapped one is)."""
    mp = Path(live.mountpoint)
    (mp / "src").mkdir()
    (mp / "src" / "a.py").write_text("unsafe()\n")
    assert _avfs("checkpoint", "save", "before-the-fix").returncode == 0
    (mp / "src" / "a.py").write_text("safe()\n")
    assert _avfs("checkpoint", "save", "the-fix").returncode == 0
    _script(live, "swap.py", _TREE_SWAP)
    doc, _err = _person_commits_while_it_runs(["python3", "swap.py"], mp, tmp_path)
    # the person goes on: a README line, committed as they always do
    with open(mp / "README", "a") as fh:
        fh.write("the person's line\n")
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qam", "the person's README", cwd=mp)
    assert _git("show", "HEAD:src/a.py", cwd=mp) == "safe()\n", doc["refs_refused"]
    assert _git("show", "--format=", "--name-only", "HEAD", cwd=mp).split() in (
        ["README"],
        ["README", "lib.py"],
    )
    assert Path(mp, "lib.py").read_text().endswith("y = 2\n")
    held = [r["reason"] for r in doc["refs_refused"] if r["ref"] == "index.lock"]
    assert len(held) == 1 and "cache tree" in held[0], doc["refs_refused"]


# the command: a whole cache tree in the index first (git's own, while no git of the
# person's holds the lock), then, once the person's `git commit -a` is in its editor
# (holding ``index.lock``), ``src``'s node in the index itself set to the tree before the fix
_INDEX_TREE = """import hashlib, os, subprocess, time
gd = subprocess.check_output(['git', 'rev-parse', '--absolute-git-dir']).decode().strip()
subprocess.check_call(['git', 'write-tree'], stdout=subprocess.DEVNULL)  # (every node valid)
old = bytes.fromhex(subprocess.check_output(['git', 'rev-parse', 'HEAD~1:src']).decode().strip())
open('started', 'w').close()
for _ in range(2400):
    if os.path.exists('editing'):
        break
    time.sleep(0.05)
if not (os.path.exists('editing') and os.path.exists(os.path.join(gd, 'index.lock'))):
    raise SystemExit('NOT IN ITS EDITOR')
index = os.path.join(gd, 'index')
data = open(index, 'rb').read()
at = data.index(b'TREE')
size = int.from_bytes(data[at + 4:at + 8], 'big')
ext = data[at + 8:at + 8 + size]
i = ext.index(b'src\\0')
nl = ext.index(b'\\n', i)
ext = ext[:nl + 1] + old + ext[nl + 21:]
body = data[:at + 8] + ext + data[at + 8 + size:-20]
with open(index + '.new', 'wb') as fh:
    fh.write(body + hashlib.sha1(body).digest())
os.rename(index + '.new', index)
if os.path.exists('link-it'):  # a second name for it: avfs voided no index with other names
    os.link(index, os.path.join(gd, 'index.also'))
print('PLANTED', old.hex())
"""


@pytest.mark.parametrize("linked", [False, True], ids=["one-name", "hard-linked"])
def test_a_cache_tree_planted_while_the_person_s_git_holds_the_lock_never_becomes_their_commit(
    live, vault, tmp_path, linked
):
    """An index the command changed loses its cache tree after the run
    (proxy/sealstaged.py ``forget_cache_tree``, written through ``index.lock``), but not
    while a git of the person's holds that lock: a command that set ``src``'s node in the
    index to the tree before a fix while the person's `git commit -a` waited on its editor
    kept it there; the person abandoned that commit (its lock rolled back), and their next
    `git commit -a` of a README line recorded the planted ``src`` (the fix reverted). Now
    the cache tree's ids are set to none in place then (``void_cache_tree``)."""
    mp = Path(live.mountpoint)
    (mp / "src").mkdir()
    (mp / "src" / "a.py").write_text("unsafe()\n")
    assert _avfs("checkpoint", "save", "before-the-fix").returncode == 0
    (mp / "src" / "a.py").write_text("safe()\n")
    assert _avfs("checkpoint", "save", "the-fix").returncode == 0
    _script(live, "plant.py", _INDEX_TREE)
    if linked:
        _script(live, "link-it", "")
    run = subprocess.Popen([*exec_argv("--no-commit"), "--", "python3", "plant.py"], stdout=subprocess.PIPE)
    person = None
    try:
        assert _wait_for(lambda: os.path.exists(mp / "started"), 60), "the command did not start"
        with open(mp / "lib.py", "a") as fh:
            fh.write("y = 2\n")
        # open until the run ends, then abandoned (no message): git rolls its lock back
        editor, release = held_editor(tmp_path, marks=mp / "editing")
        env = {**os.environ, "GIT_EDITOR": editor}
        argv = ["git", "-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qa"]
        person = subprocess.Popen(argv, cwd=mp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, _ = run.communicate(timeout=180)
        still = person.poll() is None  # (its lock is held past the run: the case tested)
    finally:
        if run.returncode is None:
            out, _ = run.communicate(timeout=120)
        if person is not None:
            release.touch()
            _out, err = person.communicate(timeout=60)
    doc = json.loads(out)
    assert doc["result"]["exit_code"] == 0 and "PLANTED" in doc["result"]["stdout"], (doc["result"], err)
    assert still, err
    assert person is not None and person.returncode != 0, err  # (abandoned: nothing committed)
    os.unlink(mp / "editing")
    with open(mp / "README", "a") as fh:
        fh.write("the person's line\n")
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qam", "the person's README", cwd=mp)
    assert _git("show", "HEAD:src/a.py", cwd=mp) == "safe()\n", doc["refs_refused"]
    assert sorted(_git("show", "--format=", "--name-only", "HEAD", cwd=mp).split()) == ["README", "lib.py"]


def _held_commit(work: Path, tmp_path: Path, message: str | None) -> tuple[subprocess.Popen[bytes], Path]:
    """The person's `git commit -a` in ``work`` (a line appended to a tracked file), held in
    its editor (``index.lock`` taken) until the returned release file is made."""
    tracked = _git("ls-files", cwd=work).split()[0]
    with open(work / tracked, "a") as fh:
        fh.write("# the person's line\n")
    mark = tmp_path / "editing"
    editor, release = held_editor(tmp_path, writes=message, marks=mark)
    env = {**os.environ, "GIT_EDITOR": editor}
    argv = ["git", "-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qa"]
    person = subprocess.Popen(argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert _wait_for(lambda: mark.exists(), 60), "the person's git never reached its editor"
    assert (work / ".git" / "index.lock").exists()
    return person, release


def _paged_writes(monkeypatch: Any, git_dir: Path, between: Any) -> list[int]:
    """Every ``os.write``/``os.pwrite`` into a file of ``git_dir`` made as the kernel makes
    it, a page of the file at a time (a reader is not held off meanwhile: ext4's and
    tmpfs's buffered reads take no lock against a write, and git maps the index), with
    ``between()`` run after the first page. Returns the sizes of the writes cut (the patch
    ran: a test sees it)."""
    cut: list[int] = []
    real_write, real_pwrite = os.write, os.pwrite

    def inside(fd: int) -> bool:
        with contextlib.suppress(OSError):
            return os.readlink(f"/proc/self/fd/{fd}").startswith(str(git_dir) + "/")
        return False

    def paged(fd: int, data: Any, at: int) -> int:
        data = bytes(data)
        first = min(len(data), 4096 - at % 4096)
        done = real_pwrite(fd, data[:first], at)
        if first < len(data):
            cut.append(len(data))
            between()
            done += real_pwrite(fd, data[first:], at + first)
        return done

    def write(fd: int, data: Any) -> int:
        if not inside(fd):
            return real_write(fd, data)
        at = os.lseek(fd, 0, os.SEEK_CUR)
        done = paged(fd, data, at)
        os.lseek(fd, at + done, os.SEEK_SET)
        return done

    def pwrite(fd: int, data: Any, at: int) -> int:
        return paged(fd, data, at) if inside(fd) else real_pwrite(fd, data, at)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "pwrite", pwrite)
    return cut


# a reader of the index that checks its checksum, as libgit2 does (pygit2, and the tools
# built on it), in a process of its own
_LIBGIT2_READS = [
    sys.executable,
    "-c",
    "import pygit2; print(len(pygit2.Index('.git/index')), 'entries')",
]


def _repo_of(project: Path, tmp_path: Path) -> Path:
    """A clone of the project's repository whose index has a whole cache tree: its files
    checked out, its objects the project's (``--shared``: a `cp -a` of Django's ~7,000
    loose objects was ~3 s of CPU a test; the person's commit writes only to the clone)."""
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", "--shared", "--", str(project), str(work)], check=True)
    _git("write-tree", cwd=work)
    return work


def test_the_cache_tree_voided_under_a_held_lock_is_never_read_half_written(project, tmp_path, monkeypatch):
    """``forget_cache_tree`` of an index whose ``index.lock`` a git of the person's holds
    (their `git commit -a` in its editor) set the cache tree's ids to none in place, then
    the checksum, in one ``pwrite`` from the first id to the end: over the pages of a real
    project's index (Django's: ~100 KiB from the first id to the end), a reader between two
    pages of that write read ids of the new and a checksum of the old, and libgit2 (pygit2: "calculated
    checksum does not match expected"), `git fsck` ("index file corrupt") and avfs's own
    readers that check it refused the person's index (the twenty-fifth round, NAME=attack16,
    left it). Now the voided index is written aside and exchanged with the one read: a
    reader finds one or the other, whole."""

    work = _repo_of(project, tmp_path)
    git_dir = work / ".git"
    index = git_dir / "index"
    assert cache_tree_ids(index.read_bytes())
    person, release = _held_commit(work, tmp_path, None)
    read: list[str] = []

    def reader() -> None:
        for argv in (_LIBGIT2_READS, ["git", "fsck", "--no-dangling", "--connectivity-only"]):
            got = subprocess.run(argv, cwd=work, capture_output=True)
            said = (got.stdout + got.stderr).decode(errors="replace").strip()
            read.append(said if got.returncode == 0 else f"{argv[0]} refused: {said}")

    cut, err = _void_under_a_held_commit(monkeypatch, git_dir, reader, person, release)
    assert cut, "no write of the void was cut: the test no longer sees it"
    assert read and not [r for r in read if "refused" in r], read
    assert person.returncode != 0, err  # (abandoned: its lock rolled back)
    ids = cache_tree_ids(index.read_bytes())
    assert ids and all(index.read_bytes()[i : i + 20] == bytes(20) for i in ids)
    subprocess.run(_LIBGIT2_READS, cwd=work, check=True, capture_output=True)  # whole
    assert _git("status", "--porcelain", "-uno", cwd=work).split()[0] == "M"


def _void_under_a_held_commit(
    monkeypatch: Any, git_dir: Path, during: Any, person: subprocess.Popen[bytes], release: Path
) -> tuple[list[int], bytes]:
    """avfs's void of the cache tree (``forget_cache_tree``) with ``during()`` run between
    its paged writes, while the person's commit holds the lock; then the commit released
    and waited for: (what ``_paged_writes`` cut, the commit's stderr)."""
    from avfs_git.proxy.sealstaged import forget_cache_tree

    try:
        cut = _paged_writes(monkeypatch, git_dir, during)
        try:
            forget_cache_tree(str(git_dir))
        finally:
            monkeypatch.undo()
    finally:
        release.touch()
        _out, err = person.communicate(timeout=60)
    return cut, err


def test_the_person_s_commit_landing_during_the_void_is_kept(project, tmp_path, monkeypatch):
    """The person's git may end its commit (its ``index.lock`` renamed over ``index``) while
    avfs voids the cache tree of the index it read: their new index must stay, not the
    voided old one (their commit's changes would show as undone in `git diff --cached`)."""

    work = _repo_of(project, tmp_path)
    git_dir = work / ".git"
    person, release = _held_commit(work, tmp_path, "by-the-person")
    ended: list[int] = []

    def lands() -> None:
        if not ended:
            release.touch()
            ended.append(person.wait(timeout=60))

    cut, err = _void_under_a_held_commit(monkeypatch, git_dir, lands, person, release)
    assert cut and ended == [0], (cut, ended, err)
    assert _git("log", "-1", "--format=%s", cwd=work).strip() == "by-the-person"
    assert _git("diff", "--cached", "--name-only", cwd=work) == ""
    assert _git("write-tree", cwd=work).strip() == _git("rev-parse", "HEAD^{tree}", cwd=work).strip()
