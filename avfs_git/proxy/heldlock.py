"""An ``index.lock`` that a git of the person's holds past a run, checked as the index is.

The person's `git commit -a` (`git add -p`, `git stash -p`...) holds ``index.lock`` while
its editor or prompt is open and renames it over ``index`` when it ends. A lock made during
a run that stays after it while a git of the person's runs in the mount is left
(:func:`.gitstate.stale_lock`: removed, their git could not write its index). But the
command could have removed the person's lock meanwhile and written its own bytes there:
the person's git then makes them the index, after avfs's checks of the index
(:mod:`.gitlinks`, :mod:`.sealstaged`) ran. Found in the sixteenth round (NAME=attack7):
an index staging a nested repository as a gitlink, swapped in while the person's `git
commit -a` waited on its editor, became the person's index, and their next plain `git
status` ran that repository's ``core.fsmonitor`` on the host.

So such a lock is read as untrusted (a private copy, through git): what the person's own
git writes there names only paths git takes and blobs the vault holds (their git writes
the vault's objects; the command's go to the run's quarantine), and no gitlink the fork's
commit does not hold. One that does not is removed (:func:`why_not`); the person's git
then says it could not write its index, and their work tree keeps every change.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from typing import TYPE_CHECKING

from ..core.store import refs
from ..core.store.gitrun import git_env, run
from ..core.workspace.untrusted import read_file

if TYPE_CHECKING:
    from ..core.vaults.vault import Vault

MAX_BYTES = 2 << 30  # as the index reads (.seal)
_CFG = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null")


def why_not(vault: Vault, fork: str, lock: str, scratch: str) -> str | None:
    """Why the lock file ``lock`` must not become the index of its worktree git dir (its
    bytes copied into ``scratch``, a directory the sandbox never sees, and read by git
    there), None when it may: what the person's own git could have written."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None  # renamed into place meanwhile: the index's own checks follow
    except OSError:
        return "not a regular file"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        if st.st_size > MAX_BYTES:
            return "larger than avfs reads an index"
        os.makedirs(scratch, mode=0o700, exist_ok=True)
        out, copy = tempfile.mkstemp(prefix=".held-index.", dir=scratch)
        try:
            with os.fdopen(out, "wb") as fh:
                while chunk := os.read(fd, 1 << 20):
                    fh.write(chunk)
            return _why_not_index(vault, fork, os.path.dirname(lock), copy)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(copy)
    finally:
        os.close(fd)


def odd_shared(git_dir: str) -> list[str]:
    """The names ``sharedindex.*`` in ``git_dir`` that are not regular files: git opens the
    one a split index names as it reads the index, and waits for ever on a FIFO (one a
    confined command made where its Landlock domain was not applied)."""
    try:
        names = [n for n in os.listdir(git_dir) if n.startswith("sharedindex.")]
    except OSError:
        return []
    odd = []
    for name in names:
        try:
            if not stat.S_ISREG(os.lstat(os.path.join(git_dir, name)).st_mode):
                odd.append(name)
        except FileNotFoundError:
            continue
    return odd


def _why_not_index(vault: Vault, fork: str, git_dir: str, index: str) -> str | None:
    from ..mount.indexflags import names_whole

    if not names_whole(read_file(index) or b""):
        return "it names a path otherwise than git writes it (git's checkout would write another)"
    if odd_shared(git_dir):
        return "a shared index beside it is not a regular file (git would wait on it)"
    env = git_env()
    env["GIT_DIR"] = git_dir
    env["GIT_INDEX_FILE"] = index
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    listed = run([*_CFG, "ls-files", "-s", "-z"], env=env, check=False)
    if listed.returncode != 0:
        return "git cannot read it as an index"
    links: dict[str, str] = {}
    blobs: set[str] = set()
    for rec in listed.stdout.split(b"\0"):
        if not rec:
            continue
        meta, _, raw = rec.partition(b"\t")
        f = meta.decode("ascii", "replace").split(" ")
        if len(f) != 3 or any(c in (b"", b".", b"..") or c.lower() == b".git" for c in raw.split(b"/")):
            return "it stages a path git never writes into an index"
        if f[0] == "160000":
            links[raw.decode("utf-8", "surrogateescape")] = f[1]
        else:
            blobs.add(f[1])
    if links and _gitlinks_not_the_fork_s(vault, fork, links):
        return "it stages a nested repository the fork's commit does not hold (git would run code from its config)"
    if blobs and _absent(vault, sorted(blobs)):
        return "it stages content the vault does not hold (written by no git of the person's)"
    if not _cache_tree_made(vault, git_dir, index):
        return (
            "its cache tree names a directory's tree that its entries do not make (git's next"
            " commit would record that tree)"
        )
    return None


def _cache_tree_made(vault: Vault, git_dir: str, index: str) -> bool:
    """Whether every directory the cache tree (``TREE`` extension) of the index file
    ``index`` says is valid names the tree its entries make. git trusts such a node: its
    `git commit` records that tree without reading the entries below it. The person's
    `git commit -a` writes a whole cache tree into the lock it holds (``cache_tree_update``
    before ``write_locked_index``); a command that swapped in the same bytes with a node set
    to an older tree (the vault holds every tree of the fork's history) had, once the
    person's git renamed the lock into place, their next `git commit` record it (found in
    the twenty-fifth round, NAME=attack16; the twenty-fourth took the cache tree out of an
    index the command changed, not of a held lock). The trees the entries make are written
    by `git write-tree` of a copy without the cache tree into a scratch object directory
    beside ``index`` (the vault's objects as its alternate: nothing is added to the vault),
    then listed by `git ls-tree -r -d`."""
    import shutil

    from ..mount.indexflags import cache_tree, extension, without

    data = read_file(index) or b""
    ext = extension(data, b"TREE")
    if ext is None:
        return True
    nodes = cache_tree(ext)
    if nodes is None:
        return False  # not as git writes it
    valid = {p: oid.hex() for p, oid in nodes.items() if oid is not None}
    if not valid:
        return True
    plain = without(data, (b"TREE",))
    if plain is None:
        return False
    scratch = tempfile.mkdtemp(prefix=".held-trees.", dir=os.path.dirname(index))
    try:
        os.mkdir(os.path.join(scratch, "objects"))  # (git takes no repository without it)
        copy = os.path.join(scratch, "index")
        with open(copy, "wb") as fh:
            fh.write(plain)
        env = git_env()
        env["GIT_DIR"] = git_dir
        env["GIT_INDEX_FILE"] = copy
        env["GIT_NO_REPLACE_OBJECTS"] = "1"
        env["GIT_OBJECT_DIRECTORY"] = os.path.join(scratch, "objects")
        env["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = os.path.join(vault.path, "objects")
        made = run([*_CFG, "write-tree"], env=env, check=False)
        if made.returncode != 0:
            return False  # (unmerged entries: no git writes a valid node over them)
        root = made.stdout.decode("ascii", "replace").strip()
        listed = run([*_CFG, "ls-tree", "-r", "-d", "-z", "--full-tree", root], env=env, check=False)
        if listed.returncode != 0:
            return False
        trees = {b"": root}
        for rec in listed.stdout.split(b"\0"):
            meta, _, path = rec.partition(b"\t")
            if meta:
                trees[path] = meta.split(b" ")[2].decode("ascii", "replace")
        return all(trees.get(p) == oid for p, oid in valid.items())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _gitlinks_not_the_fork_s(vault: Vault, fork: str, links: dict[str, str]) -> bool:
    tip = refs.read_ref_file(vault.path, refs.fork_ref(fork))
    if tip is None:
        return True
    tree = run(
        ["ls-tree", "-z", "--full-tree", tip, "--", *links], git_dir=vault.path, env=git_env(), check=False
    )
    held = {}
    for rec in tree.stdout.split(b"\0"):
        meta, _, path = rec.partition(b"\t")
        f = meta.decode("ascii", "replace").split(" ")
        if len(f) == 3 and f[0] == "160000":
            held[path.decode("utf-8", "surrogateescape")] = f[2]
    return any(held.get(p) != oid for p, oid in links.items())


def _absent(vault: Vault, ids: list[str]) -> bool:
    env = git_env()
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    got = run(
        ["cat-file", "--batch-check=%(objectname) %(objecttype)"],
        git_dir=vault.path,
        env=env,
        input=("\n".join(ids) + "\n").encode(),
        check=False,
    )
    if got.returncode != 0:
        return True
    return any(
        line.partition(" ")[2] != "blob" for line in got.stdout.decode("ascii", "replace").splitlines()
    )
