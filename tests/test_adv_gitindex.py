"""The mount's git index and the files beside it, written by a confined command, read by
avfs's host side and by the person's git afterwards (the twenty-fourth round, NAME=attack15).

Each attack writes crafted bytes from inside a real confined `proxy exec` in a real mount
(the CLI, served by the mount's daemon; overlay and pure FUSE), then the test acts as the
person: `git status`, `git checkout -- .`, `avfs status`, a checkpoint, in the mount. What
must hold: no host file outside the fork written or removed (a canary beside the mount
point), the fork loses nothing, the person's git reads an index avfs made again or git's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from avfs_git.mount.indexflags import names_whole
from avfs_git.mount.ownfiles import worktree_dir

from . import plantindex
from .test_adv_gitseal import _avfs, _exec, _git, _script
from .test_adv_gitseal import live as live  # the fixture: both backends

# Writes the mount's index again with one more entry, named NAME as long as its flags say,
# and its padding bytes PAD (git writes NULs there): run by the confined command.
_PLANT = """import hashlib, os, struct, subprocess, sys
name, pad = sys.argv[1].encode(), sys.argv[2].encode()
gd = subprocess.check_output(['git', 'rev-parse', '--absolute-git-dir']).decode().strip()
index = os.path.join(gd, 'index')
data = open(index, 'rb').read()
assert data[4:8] == b'\\0\\0\\0\\2', data[4:8]
count = int.from_bytes(data[8:12], 'big')
entries, off = [], 12
for _ in range(count):
    nl = int.from_bytes(data[off + 60:off + 62], 'big') & 0xFFF
    size = (62 + nl + 8) & ~7
    entries.append((data[off + 62:off + 62 + nl], data[off:off + size]))
    off += size
first = entries[0][1]
new = first[:60] + struct.pack('>H', len(name)) + name
new += pad * (((62 + len(name) + 8) & ~7) - len(new))
entries.append((name, new))
entries.sort()
body = data[:8] + struct.pack('>I', len(entries)) + b''.join(e for _, e in entries)
body += hashlib.sha1(body).digest()
with open(index + '.new', 'wb') as fh:
    fh.write(body)
os.rename(index + '.new', index)
print(subprocess.check_output(['git', 'ls-files', '-s']).decode())
"""


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_an_entry_whose_name_git_reads_two_ways_never_has_the_person_s_checkout_remove_the_mount_s_parent(
    live: Any, vault: Any
) -> None:
    """An index entry ``..`` whose padding is not NUL: `git ls-files` reads it as ``..B``
    (the name's C string), `git checkout -- .` as ``..`` (the length in its flags) and
    removes the directory it names to put the file there: the mount point's parent, on
    the host (git 2.39, read-cache.c ``create_from_disk``). avfs's check of the index after
    a run (proxy/gitlinks.py ``_holds_unsafe``) looked for ``..`` followed by ``/`` or NUL
    in its bytes, then asked `git ls-files`: neither saw it, the index stayed (patched by
    the exec's commit), and the person's `git checkout -- .` in the mount removed every
    file beside the mount point (both backends). Now an index whose names are not whole as
    git writes them (:func:`.indexflags.names_whole`) is made again from the fork's commit."""
    mp = Path(live.mountpoint)
    beside = mp.parent / "canary-beside-the-mount.txt"
    beside.write_bytes(b"the person's file\n")
    _script(live, "plant.py", _PLANT)
    doc = _exec("sh", "-c", "python3 plant.py .. B && echo new > new.txt")
    assert doc["exit_code"] == 0, doc["result"]
    assert "..B" in doc["result"]["stdout"], doc["result"]  # git read it so in the sandbox
    # the person: git in the mount, then the usual way back to the index's files
    _git("status", cwd=mp)
    listed = _git("ls-files", cwd=mp)
    checkout = subprocess.run(
        ["git", "checkout", "--", "."], cwd=mp, capture_output=True, text=True, timeout=120
    )
    assert beside.exists(), ("the person's checkout removed a host file beside the mount", checkout.stderr)
    assert (mp / "README").read_bytes() == b"the original\n"
    assert (mp / "new.txt").read_bytes() == b"new\n"
    assert "..B" not in listed, listed
    assert checkout.returncode == 0, checkout.stderr
    index = Path(worktree_dir(vault, "main"), "index").read_bytes()
    assert names_whole(index)
    r = _avfs("--json", "status")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["kind"] == "status"
    assert _avfs("checkpoint", "save", "after").returncode == 0
    assert _git("--git-dir", vault.path, "show", "main:new.txt") == "new\n"
    assert not os.path.exists(mp.parent / "..B")


# Writes the mount's index again with its FSMN extension's dirty bitmap one marker word
# saying that 2^32 - 1 words of ones follow (git's ewah: 2^38 bits), its entries as they were.
_BITMAP = """import hashlib, os, struct, subprocess
gd = subprocess.check_output(['git', 'rev-parse', '--absolute-git-dir']).decode().strip()
index = os.path.join(gd, 'index')
data = open(index, 'rb').read()
count = int.from_bytes(data[8:12], 'big')
off = 12
for _ in range(count):
    flags = int.from_bytes(data[off + 60:off + 62], 'big')
    head = 64 if flags & 0x4000 else 62
    off += (head + (flags & 0xFFF) + 8) & ~7
exts, end = [], len(data) - 20
while off + 8 <= end:
    size = int.from_bytes(data[off + 4:off + 8], 'big')
    if data[off:off + 4] != b'FSMN':
        exts.append(data[off:off + 8 + size])
    off += 8 + size
ewah = struct.pack('>IIQI', 1 << 31, 1, (0xFFFFFFFF << 1) | 1, 0)
ext = struct.pack('>I', 2) + b'avfs:planted\\0' + struct.pack('>I', len(ewah)) + ewah
entries_end = 12
for _ in range(count):
    flags = int.from_bytes(data[entries_end + 60:entries_end + 62], 'big')
    head = 64 if flags & 0x4000 else 62
    entries_end += (head + (flags & 0xFFF) + 8) & ~7
body = data[:entries_end] + b''.join(exts) + b'FSMN' + struct.pack('>I', len(ext)) + ext
body += hashlib.sha1(body).digest()
with open(index + '.new', 'wb') as fh:
    fh.write(body)
os.rename(index + '.new', index)
print('PLANTED', count)
"""


def test_a_fsmonitor_bitmap_of_2_to_the_38_bits_is_read_as_far_as_the_entries_go(
    live: Any, vault: Any
) -> None:
    """The dirty bitmap of git's ``FSMN`` extension, which avfs reads to keep git's dirty
    bits when it patches the mount's index after a checkpoint or an exec's commit
    (mount/indexpatch.py ``fsmonitor_dirty``): one marker word can say 2^32 - 1 words of
    ones follow. Read as written, that asked for a list of 2^38 positions: the exec's
    commit failed (``MemoryError``; a smaller run that fits in memory fills it). Now it is
    read as far as the index's entries go; git's own reading of the same index is not
    avfs's to change (`git status` still answers)."""
    mp = Path(live.mountpoint)
    _script(live, "bitmap.py", _BITMAP)
    doc = _exec("sh", "-c", "python3 bitmap.py && echo new > new.txt")
    assert doc["exit_code"] == 0 and "PLANTED" in doc["result"]["stdout"], doc["result"]
    assert doc["commit"] is not None, doc
    assert _git("--git-dir", vault.path, "show", "main:new.txt") == "new\n"
    (mp / "more.txt").write_text("the person's\n")
    r = _avfs("--json", "checkpoint", "save", "after")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert _git("--git-dir", vault.path, "show", "main:more.txt") == "the person's\n"
    assert _git("status", "--porcelain", cwd=mp) == ""
    r = _avfs("--json", "status")
    assert r.returncode == 0 and json.loads(r.stdout)["changes"] == [], r.stdout


def test_index_files_no_git_writes_leave_the_person_an_index_git_reads(live: Any, vault: Any) -> None:
    """Each of :data:`.plantindex.VARIANTS` written over the mount's index by a confined
    command that changes nothing else (so no commit of the exec's rewrites the index): an
    entry count that lies (high, low, 2^31), entries cut short, names with a NUL, a
    leading ``/``, a ``.git`` git reads two ways, a version 4 name stripping more than the
    name before it has, a split index whose shared index is nowhere, an fsmonitor token
    of a megabyte, end-of-entries and offset-table extensions pointing past the file, an
    untracked cache's bitmap of 2^38 bits, a checksum of other bytes. Then the person:
    `git status` answers (git's own reading: what git refuses avfs made again from the
    fork's commit), `git checkout -- .` writes nothing beside the mount, `avfs status` and
    a checkpoint answer, the fork's files are as they were. Found: a split index whose
    shared index is not there stayed (its names are whole): every `git status` of the
    person's failed ("index file open failed") until they removed the index; made again
    now (proxy/gitlinks.py ``_holds_unsafe``)."""
    mp = Path(live.mountpoint)
    beside = mp.parent / "canary-beside-the-mount.txt"
    beside.write_bytes(b"the person's file\n")
    (mp / "plantindex.py").write_text(Path(plantindex.__file__).read_text())
    r = _avfs("checkpoint", "save", "planter")
    assert r.returncode == 0, r.stderr
    files = _tree(mp)
    failed = []
    for variant in plantindex.VARIANTS:
        doc = _exec("python3", "plantindex.py", variant)
        assert doc["exit_code"] == 0 and f"PLANTED {variant}" in doc["result"]["stdout"], doc["result"]
        st = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=mp,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=120,
        )
        if st.returncode != 0:
            failed.append((variant, st.stderr))
            continue
        subprocess.run(["git", "checkout", "--", "."], cwd=mp, capture_output=True, timeout=120)
        if variant == "name-nul":  # ('a\0..': 'a' to git both ways, a file the command staged)
            (mp / "a").unlink()
            _git("read-tree", "HEAD", cwd=mp)
        assert beside.read_bytes() == b"the person's file\n", variant
        assert _tree(mp) == files, variant
        r = _avfs("--json", "status")
        assert r.returncode == 0 and json.loads(r.stdout)["changes"] == [], (variant, r.stdout)
    assert failed == []
    (mp / "after.txt").write_text("the person's\n")
    r = _avfs("checkpoint", "save", "after")
    assert r.returncode == 0, r.stderr
    assert _git("--git-dir", vault.path, "show", "main:after.txt") == "the person's\n"
    assert _git("status", "--porcelain", cwd=mp) == ""


# what git itself reads as the bytes say (the rest it refuses, or reads otherwise than written;
# a name with a NUL inside: both readings stop there)
_READ_AS_WRITTEN = {
    "name-nul",
    "name-slash",
    "link-elsewhere",
    "fsmn-token-1mb",
    "eoie-anywhere",
    "untr-2^38-bits",
    "checksum",
}


def test_which_crafted_indexes_are_whole(tmp_path: Path) -> None:
    """:func:`.indexflags.whole` on each crafted index of a real git index: None for every
    one whose names or extensions git reads otherwise than written, or refuses."""
    repo = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for i in range(40):
        (repo / f"f{i}").write_text(f"{i}\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    data = (repo / ".git" / "index").read_bytes()
    assert names_whole(data)
    for variant in plantindex.VARIANTS:
        assert names_whole(plantindex.crafted(data, variant)) == (variant in _READ_AS_WRITTEN), variant


def test_a_held_index_lock_whose_names_git_reads_two_ways_is_refused(vault: Any, tmp_path: Path) -> None:
    """proxy/heldlock.py reads an ``index.lock`` a git of the person's holds past a run
    (the command may have swapped its own in) through `git ls-files`, which prints a
    name's C string: an entry ``..`` whose padding is not NUL was ``..B`` there, passed,
    and the person's git would have renamed it over the index, for their `git checkout
    -- .` to remove the mount's parent directory. Now it is refused as no git wrote it."""
    from avfs_git.proxy import heldlock

    w = vault.workspace("main")
    w.write("README", b"the original\n")
    from avfs_git.core.operations import checkpoint

    checkpoint.save(vault, name="base")
    git_dir = tmp_path / "gitdir"  # (a worktree's git dir: git reads the lock's bytes there)
    subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True)
    made = tmp_path / "made-index"
    env = {**os.environ, "GIT_INDEX_FILE": str(made)}
    subprocess.run(["git", "--git-dir", vault.path, "read-tree", "main"], env=env, check=True)
    data = made.read_bytes()
    lock = git_dir / "index.lock"
    lock.write_bytes(data)
    assert heldlock.why_not(vault, "main", str(lock), str(tmp_path / "scratch")) is None  # git's own
    entries, at = plantindex._entries(data)
    planted = plantindex._entry(entries[0], b"..", b"B")
    body = data[:8] + (len(entries) + 1).to_bytes(4, "big") + planted + b"".join(entries) + data[at:-20]
    lock.write_bytes(plantindex._sealed(body))
    listed = subprocess.run(
        ["git", "--git-dir", vault.path, "ls-files", "-z"], env={**os.environ, "GIT_INDEX_FILE": str(lock)},
        capture_output=True, check=True,
    )  # fmt: skip
    # what git's ls-files says of it (past the B, whatever its memory pool held there)
    assert listed.stdout.split(b"\0")[0].startswith(b"..B")
    why = heldlock.why_not(vault, "main", str(lock), str(tmp_path / "scratch"))
    assert why is not None and "otherwise than git writes it" in why, why


def test_an_index_planted_by_a_command_whose_daemon_was_killed_never_reaches_the_person(
    live: Any, vault: Any, home: Any
) -> None:
    """The check of the index after a run (proxy/gitlinks.py) runs in the mount's daemon;
    killed while the command runs (SIGKILL: an OOM kill, the person's `kill -9`), its
    sandbox goes with it and no check runs. The worktree's git dir, with the command's
    index, is then kept at the mount's clean-up and brought back at the next mount
    (mount/gitkeep.py), and the next run checks only an index it changed. Held: the
    killed daemon's git dir is not brought back (the next mount's is made anew); a guard
    for the round that keeps a killed daemon's git state (NAME=gitmodel15): what it keeps
    must be checked as a run's index is."""
    import signal
    import sys
    import time

    from avfs_git.ops import mounts

    mp = Path(live.mountpoint)
    beside = mp.parent / "canary-beside-the-mount.txt"
    beside.write_bytes(b"the person's file\n")
    _script(live, "plant.py", _PLANT)
    index = Path(worktree_dir(vault, "main"), "index")
    env = {**os.environ, "AVFS_HOME": home.path}
    proc = subprocess.Popen(
        [sys.executable, "-m", "avfs_git", "--vault", "v:main", "--json", "proxy", "exec", "--",
         "sh", "-c", "python3 plant.py .. B && sleep 60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while b"..B" not in index.read_bytes() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert b"..B" in index.read_bytes(), proc.communicate(timeout=5)
        os.kill(live.pid, signal.SIGKILL)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    info = mounts.mount(home, vault, "main", None, backend=live.backend)
    assert info.pid != live.pid
    _git("status", cwd=mp)
    doc = _exec("true")  # the next run, which changes nothing of the index
    assert doc["exit_code"] == 0
    checkout = subprocess.run(
        ["git", "checkout", "--", "."], cwd=mp, capture_output=True, text=True, timeout=120
    )
    assert beside.exists(), ("the person's checkout removed a host file beside the mount", checkout.stderr)
    assert (mp / "README").read_bytes() == b"the original\n"
    assert names_whole(index.read_bytes())


# Sets the cache tree's ``src`` (the index's TREE extension) to the tree ``src`` had one
# commit before: an object the vault holds.
_CACHE_TREE = """import hashlib, os, subprocess
gd = subprocess.check_output(['git', 'rev-parse', '--absolute-git-dir']).decode().strip()
subprocess.check_call(['git', 'write-tree'], stdout=subprocess.DEVNULL)  # (every node valid)
old = bytes.fromhex(subprocess.check_output(['git', 'rev-parse', 'HEAD~1:src']).decode().strip())
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
print('PLANTED', old.hex())
"""


def test_a_cache_tree_the_command_plants_never_becomes_the_person_s_commit(live: Any, vault: Any) -> None:
    """git trusts a directory of the index's cache tree (its ``TREE`` extension) whose tree
    object exists: `git commit` records that tree without reading the entries below it,
    `git status` and `git diff --cached` compare it with HEAD's. A command set ``src``'s
    to the tree ``src`` had before its fix (the vault holds it): the person's `git status`
    in the mount was clean, their `git commit -a` of a README change reverted the fix in
    their own commit (both backends). Now a changed index loses its cache tree after the
    run (proxy/sealstaged.py ``forget_cache_tree``); git makes it again from the entries."""
    mp = Path(live.mountpoint)
    (mp / "src").mkdir()
    (mp / "src" / "a.py").write_text("unsafe()\n")
    assert _avfs("checkpoint", "save", "before-the-fix").returncode == 0
    (mp / "src" / "a.py").write_text("safe()\n")
    assert _avfs("checkpoint", "save", "the-fix").returncode == 0
    _script(live, "tree.py", _CACHE_TREE)
    doc = _exec("python3", "tree.py")
    assert doc["exit_code"] == 0 and "PLANTED" in doc["result"]["stdout"], doc["result"]
    assert _git("status", "--porcelain", cwd=mp) == ""
    with open(mp / "README", "a") as fh:
        fh.write("the person's line\n")
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qam", "the person's README", cwd=mp)
    assert _git("show", "HEAD:src/a.py", cwd=mp) == "safe()\n"
    assert _git("show", "--format=", "--name-only", "HEAD", cwd=mp).split() == ["README"]


def test_a_cache_tree_nested_past_python_s_recursion_limit_is_no_cache_tree(tmp_path: Path) -> None:
    """mount/indexpatch.py ``_cache_tree_without`` reads the index's ``TREE`` extension
    recursively: 5,000 nodes each holding the next (50 KB) raised ``RecursionError``,
    which its ``except`` did not take, so the patch of the mount's index (a checkpoint, an
    exec's commit) failed where the command's cache tree stayed (a git of the person's
    held ``index.lock`` as the run ended). Now such a tree is no cache tree (the patch
    writes none)."""
    from avfs_git.mount import indexpatch

    repo = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "f").write_text("f\n")
    subprocess.run(["git", "add", "f"], cwd=repo, check=True)
    data = (repo / ".git" / "index").read_bytes()
    _, at = plantindex._entries(data)
    deep = 5000
    tree = b"".join(b"d\0-1 1\n" for _ in range(deep)) + b"d\0-1 0\n"
    body = data[:at] + b"TREE" + len(tree).to_bytes(4, "big") + tree
    index = plantindex._sealed(body)
    assert names_whole(index)
    assert indexpatch._cache_tree_without(index, at, ["f"]) is None


def test_a_shared_index_that_is_a_fifo_holds_no_check_of_the_index(vault: Any, tmp_path: Path) -> None:
    """A split index names its shared index ``sharedindex.<id>`` in the worktree's git dir,
    which git opens as it reads the index. Where the sandbox runs without its Landlock
    domain (no Landlock of ABI 2, no Perl: docs/security.md "What remains") the command
    can make that name a FIFO; the carry-back's `git update-index --no-split-index`
    (proxy/gitlinks.py ``_refuse_index``), and the held lock's `git ls-files`
    (proxy/heldlock.py), then waited on it for ever, before the scrub that removes FIFOs
    ran: the exec never returned, and held the fork's exec lock. Now such a name is
    removed first (the index is then made again), and a held lock is refused."""
    import threading
    from types import SimpleNamespace

    from avfs_git.proxy import gitlinks, heldlock

    repo = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "f").write_text("f\n")
    subprocess.run(["git", "add", "f"], cwd=repo, check=True)
    subprocess.run(["git", "update-index", "--split-index"], cwd=repo, check=True)
    git_dir = repo / ".git"
    (shared,) = git_dir.glob("sharedindex.*")
    shared.unlink()
    os.mkfifo(shared)
    lock = git_dir / "index.lock"
    lock.write_bytes((git_dir / "index").read_bytes())
    answers: dict[str, object] = {}

    def check() -> None:
        answers["held"] = heldlock.why_not(vault, "main", str(lock), str(tmp_path / "scratch"))
        lock.unlink()
        answers["refused"] = gitlinks._refuse_index(vault, SimpleNamespace(fork="main"), str(git_dir))

    t = threading.Thread(target=check, daemon=True)
    t.start()
    t.join(60)
    stuck = t.is_alive()
    while t.is_alive():  # (let the git that waits go: a writer opens the FIFO and closes it)
        with contextlib.suppress(OSError):
            os.close(os.open(shared, os.O_WRONLY | os.O_NONBLOCK))
        t.join(1)
    assert not stuck, "a check of the index waited on a FIFO"
    assert answers["held"] is not None
    assert answers["refused"] is True
    assert not os.path.lexists(shared)


# Stages a new blob for src/a.py (the run's quarantine) and sets the cache tree's ``src``
# to HEAD's: `git diff-index --cached HEAD` then skips src.
_HIDDEN_STAGE = """import hashlib, os, subprocess
gd = subprocess.check_output(['git', 'rev-parse', '--absolute-git-dir']).decode().strip()
blob = subprocess.check_output(['git', 'hash-object', '-w', '--stdin'], input=b'only staged()\\n').decode().strip()
subprocess.check_call(['git', 'update-index', '--cacheinfo', '100644,%s,src/a.py' % blob])
subprocess.check_call(['git', 'write-tree'], stdout=subprocess.DEVNULL)
head = bytes.fromhex(subprocess.check_output(['git', 'rev-parse', 'HEAD:src']).decode().strip())
index = os.path.join(gd, 'index')
data = open(index, 'rb').read()
at = data.index(b'TREE')
size = int.from_bytes(data[at + 4:at + 8], 'big')
ext = data[at + 8:at + 8 + size]
i = ext.index(b'src\\0')
nl = ext.index(b'\\n', i)
ext = ext[:nl + 1] + head + ext[nl + 21:]
body = data[:at + 8] + ext + data[at + 8 + size:-20]
with open(index + '.new', 'wb') as fh:
    fh.write(body + hashlib.sha1(body).digest())
os.rename(index + '.new', index)
print('PLANTED', subprocess.check_output(['git', 'diff-index', '--cached', 'HEAD']).decode() or 'nothing staged')
"""


def test_a_cache_tree_the_command_plants_hides_no_staged_blob_from_the_carry_back(
    live: Any, vault: Any
) -> None:
    """The carry-back asks `git diff-index --cached HEAD` which blobs the index stages
    (proxy/sealstaged.py), to bring them into the vault for the person's `git commit`;
    git skips a directory whose cache tree says HEAD's. A command staged a new blob below
    ``src`` and set ``src``'s cache tree to HEAD's: the blob stayed out of the vault, the
    cache tree was taken out after (``forget_cache_tree``), and the person's `git commit`
    failed on the missing object. Now the cache tree goes before the question."""
    mp = Path(live.mountpoint)
    (mp / "src").mkdir()
    (mp / "src" / "a.py").write_text("safe()\n")
    assert _avfs("checkpoint", "save", "with-src").returncode == 0
    _script(live, "stage.py", _HIDDEN_STAGE)
    doc = _exec("python3", "stage.py")
    assert doc["exit_code"] == 0 and "PLANTED nothing staged" in doc["result"]["stdout"], doc["result"]
    with open(mp / "README", "a") as fh:
        fh.write("the person's line\n")
    _git("add", "README", cwd=mp)
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qm", "the person's commit", cwd=mp)
    _git("--git-dir", vault.path, "fsck", "--strict")
