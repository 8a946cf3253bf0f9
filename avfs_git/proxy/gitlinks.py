"""Gitlinks a command added in a mounted fork: taken out of the mount's index, and a
repository it made at a submodule's path removed, so a person's `git status` never runs a
nested repository's config; files it wrote below a submodule's path reported (git, and so
a checkpoint, leaves them out). After :func:`.seal.carry_back`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
from typing import TYPE_CHECKING

from ..core.store import deeptree, gitnames, refs
from ..core.store.gitrun import git_env, run
from ..core.workspace.untrusted import read_file
from ..mount.indexflags import whole
from .heldlock import odd_shared
from .seal import Sealed, _index_stat
from .sealstaged import forget_cache_tree

if TYPE_CHECKING:
    from ..core.vaults.vault import Vault


GITLINK_KIND = "gitlink"
SUBMODULE_KIND = "submodule"

log = logging.getLogger("avfs.proxy")

# what an index holding a path git never writes there has somewhere in its bytes (a '..' or
# '.git' component, any case), as index versions 2 and 3 keep their paths whole (version 4
# compresses them: looked at whatever its bytes)
_SUSPECT = re.compile(rb"\.\.[/\x00]|(?i:\.git)[/\x00]")


def _index_gitlinks(git_dir: str) -> dict[str, str]:
    """The gitlinks of the index of ``git_dir``: path -> commit id (a byte search first:
    an index without one, the common case, costs a read)."""
    data = read_file(os.path.join(git_dir, "index"))
    if not data or b"\x00\x00\xe0\x00" not in data:  # mode 160000 appears nowhere: no gitlink
        return {}
    env = git_env()
    env["GIT_DIR"] = git_dir
    listed = run(["-c", "core.fsmonitor=false", "ls-files", "-s", "-z"], env=env, check=False)
    links: dict[str, str] = {}
    for rec in listed.stdout.split(b"\0"):
        meta, _, path = rec.partition(b"\t")
        f = meta.split(b" ")
        if len(f) == 3 and f[0] == b"160000":
            links[path.decode("utf-8", "surrogateescape")] = f[1].decode("ascii", "replace")
    return links


def open_dir_below(root: str, path: str) -> int | None:
    """A descriptor of directory ``root/path`` (``""``: ``root`` itself), reached without
    following a symbolic link below ``root`` and without leaving it; None when some part of
    the way is not a directory, or not a name of one below ``root`` (``path`` comes from
    what the command may have written, the mount's index or the paths it wrote: a ``..``
    there would name the host's directories)."""
    parts = path.split("/") if path else []
    if any(part in ("", ".", "..") for part in parts):
        return None
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    for part in parts:
        try:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)
        fd = nxt
    return fd


def nested_repos(sealed: Sealed, mountpoint: str, since_ns: int) -> list[gitnames.NotRecorded]:
    """Remove the ``.git`` the command made at a gitlink's path in the mount (a submodule
    of the fork's commit): git runs ``git status`` in a submodule it finds checked out,
    with that repository's config (``core.fsmonitor``), on a person's plain ``git status``.
    A submodule's git dir is in the worktree's own ``modules/``: the person's are read-only
    inside, and one the command made is removed after the run (:mod:`.gitstate`), so such
    a ``.git`` is the run's own, and is never part of the fork's commits anyway. Also
    reported: a submodule's directory the command wrote into (``kind: submodule``)."""
    if sealed.git_dir is None:
        return []
    out = []
    for path in sorted(_index_gitlinks(sealed.git_dir)):
        fd = open_dir_below(mountpoint, path)
        if fd is None:
            continue
        try:
            if _made_dotgit(fd, since_ns):
                why = "a repository the command made at a submodule's path (git would run code from its config): its .git removed"
                out.append(gitnames.NotRecorded(path, GITLINK_KIND, why))
            if _wrote_below(fd, since_ns):
                why = "files the command wrote below a submodule's path: not the fork's (git leaves them out); kept in the mount"
                out.append(gitnames.NotRecorded(path, SUBMODULE_KIND, why))
        finally:
            os.close(fd)
    return out


def _made_dotgit(fd: int, since_ns: int) -> bool:
    """Remove the ``.git`` in directory ``fd`` made at or after ``since_ns``; whether there was one."""
    try:
        st = os.stat(".git", dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if st.st_ctime_ns < since_ns:
        return False  # there before the command: a person's own
    if stat.S_ISDIR(st.st_mode):
        try:
            shutil.rmtree(".git", dir_fd=fd)
        except RecursionError:  # deeper than Python's limit: `rm -rf`, through our descriptor
            deeptree.rmtree(f"/proc/{os.getpid()}/fd/{fd}/.git")
    else:
        os.unlink(".git", dir_fd=fd)
    return True


def _wrote_below(fd: int, since_ns: int) -> bool:
    """Whether anything below directory ``fd`` (its ``.git`` aside) changed at or after
    ``since_ns``: a submodule's directory is empty in the mount but for what is written
    there (git leaves a submodule it has not checked out so). By a loop, a few descriptors
    held whatever the depth (:func:`.deeptree.by_descriptors`; ``os.fwalk`` raised
    ``RecursionError`` past ~1,000 levels, the thirtieth round)."""
    found = False

    def visit(dfd: int, rel: str, entries: list[os.DirEntry[str]]) -> list[str]:
        nonlocal found
        into = []
        for e in entries:
            if found:
                return []
            if e.name == ".git":
                continue
            try:
                found = os.stat(e.name, dir_fd=dfd, follow_symlinks=False).st_ctime_ns >= since_ns
                if e.is_dir(follow_symlinks=False):
                    into.append(e.name)
            except OSError:
                continue
        return [] if found else into

    deeptree.by_descriptors(os.dup(fd), visit)
    return found


def drop_gitlinks(vault: Vault, sealed: Sealed, git_dir: str) -> list[gitnames.NotRecorded]:
    """Take out of the mount's index (``git_dir``) every gitlink the fork's commit does not
    hold at that path: git would run ``git status`` in that nested repository, with its
    ``core.fsmonitor``, on a person's plain ``git status`` in the mount. Looked at only
    when the command changed the index; returns what was dropped."""
    if _index_stat(os.path.join(git_dir, "index")) == sealed.index:
        return []
    if _refuse_index(vault, sealed, git_dir):
        return []  # (made again from the fork's commit: its gitlinks are all the commit's)
    forget_cache_tree(git_dir)
    links = _index_gitlinks(git_dir)
    if not links:
        return []
    env = git_env()
    env["GIT_DIR"] = git_dir
    cfg = ["-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null"]
    tip = refs.read_ref_file(vault.path, refs.fork_ref(sealed.fork))
    kept: set[str] = set()
    if tip is not None:
        tree = run(
            ["ls-tree", "-z", "--full-tree", tip, "--", *links],
            git_dir=vault.path,
            env=git_env(),
            check=False,
        )
        for rec in tree.stdout.split(b"\0"):
            meta, _, path = rec.partition(b"\t")
            f = meta.split(b" ")
            p = path.decode("utf-8", "surrogateescape")
            if len(f) == 3 and f[0] == b"160000" and links.get(p) == f[2].decode("ascii", "replace"):
                kept.add(p)
    drop = sorted(p for p in links if p not in kept)
    if not drop:
        return []
    stdin = b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in drop)
    run([*cfg, "update-index", "--force-remove", "-z", "--stdin"], env=env, input=stdin, check=False)
    reason = "a nested repository the command added to git's index: dropped from it (git would run code from its config)"
    return [gitnames.NotRecorded(p, GITLINK_KIND, reason) for p in drop]


def _unsafe_path(path: bytes) -> bool:
    """Whether ``path`` has a ``..`` or ``.git`` (any case) component, which git never
    writes into an index (``verify_path``) and checks out where it says: out of the work
    tree, or into a repository's own files."""
    return any(c == b".." or c.lower() == b".git" for c in path.split(b"/"))


def _holds_unsafe(index: str, env: dict[str, str]) -> bool:
    """Whether the index file ``index`` (of ``env``'s git dir) is no regular file, names a
    path otherwise than git writes it (:func:`.indexflags.whole`: `git checkout` would
    write another path than `git ls-files` says), is still split (its shared index was not
    there: `git update-index --no-split-index` failed, and every git after it would), or
    holds a path :func:`_unsafe_path` (found in its bytes, then by git)."""
    data = read_file(index)
    if data is None:
        return os.path.lexists(index)
    sigs = whole(data)
    if sigs is None:
        return True  # (a name git's checkout and its ls-files read two ways: no git wrote it)
    if b"link" in sigs:
        return True  # (a split index left whole or not: the shared index named is not there)
    if data[4:8] in (b"\0\0\0\x02", b"\0\0\0\x03") and _SUSPECT.search(data) is None:
        return False
    listed = run(["-c", "core.fsmonitor=false", "ls-files", "-z"], env=env, check=False)
    return listed.returncode != 0 or any(_unsafe_path(p) for p in listed.stdout.split(b"\0") if p)


def _refuse_index(vault: Vault, sealed: Sealed, git_dir: str) -> bool:
    """Make the mount's index (``git_dir``, which the command could write) again from the
    fork's commit when it holds a path git never writes there, or is no regular file: the
    person's `git checkout -- .` in the mount would write such a file out of the mount
    (``../``), and `git update-index` cannot take one out. A split index (its entries in a
    ``sharedindex.*`` file beside it, where the reads of the index here never look) is
    made whole first. Whether the index was made again."""
    index = os.path.join(git_dir, "index")
    env = git_env()
    env["GIT_DIR"] = git_dir
    cfg = ["-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null"]
    try:
        shared = [n for n in os.listdir(git_dir) if n.startswith("sharedindex.")]
    except OSError:
        shared = []
    for name in odd_shared(git_dir):  # (a FIFO git would wait on: gone, the index made again)
        path = os.path.join(git_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            deeptree.rmtree(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    whole = True
    if shared:
        whole = run([*cfg, "update-index", "--no-split-index"], env=env, check=False).returncode == 0
        for name in shared:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(git_dir, name))
    if whole and not _holds_unsafe(index, env):
        return False
    if os.path.lexists(index) and (os.path.islink(index) or not os.path.isfile(index)):
        if os.path.isdir(index) and not os.path.islink(index):
            deeptree.rmtree(index)  # (a command's tree may be deeper than Python's recursion limit)
        else:
            os.unlink(index)
    tip = refs.read_ref_file(vault.path, refs.fork_ref(sealed.fork))
    run([*cfg, "read-tree", *([tip] if tip is not None else ["--empty"])], env=env, check=False)
    log.warning(
        "the index of %s:%s held paths git refuses: made again from the fork's commit",
        vault.name,
        sealed.fork,
    )
    return True
