"""The kept index of a lazy vault's default fork (mount/keptindex.py), so that the first
mount of the fresh clone patches it instead of making it: made by `vault clone --lazy`
itself before it answers (:func:`at_clone`, cli/vaults.py; where the home's
``index_at_clone`` is true), by a process of its own the clone starts at once as it
answers, the lock taken before (:func:`hold`, :func:`start_now`; ``"after"``), or, where
neither made one (false, the default), by a process of its own that a clone the resident
server ran starts once its caller has the answer, after a wait (:func:`spawn`).

That process waits a moment first (:data:`DELAY_S`, in a shell: :data:`WAIT`), runs in Linux's idle
scheduling class, and makes nothing when a mount of the vault came first (that mount makes
its index, and keeps it); :func:`spawn` says why. It holds the kept index's lock while it works, with its pid
in it (:func:`.keptindex.making`): a mount that starts meanwhile does not wait for it; it
patches the kept index if it is there by the time the mount makes its index, and otherwise
takes over (:func:`.keptindex.take_over`: the maker raised where the mount may, then
ended), its own index being further on by then. What is made here is what a mount makes (mount/index.py), with no
mount: the tree's sizes asked of the server in one request (kept in the size cache, where
a mount finds them) beside the entries (times 0: a mount writes its own) and git's
untracked cache, written from the tree (mount/untracked.py) with the vault as ``GIT_DIR``. No blob is
fetched but the tree's ``.gitignore`` files, which a mount fetches anyway. A failure
leaves nothing: a mount then makes its index as before.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING

from ..core.vaults.keptindexes import kept_dir

if TYPE_CHECKING:
    from ..core.vaults.vault import Vault

TOKEN = "avfs-kept"  # the fsmonitor token of a kept index (a mount writes its own)


def make(vault: Vault, commit: str) -> bool:
    """Make and keep the index of ``commit``'s tree in lazy ``vault`` (the caller holds
    :func:`.keptindex.making`'s lock); True when one is kept. As a mount's settling does
    (fuse/settle.py): git's ``read-tree`` of the tree starts first (mount/readtree.py
    ``Ahead``, a process of its own), the sizes are asked on a thread of their own with the
    blob ids read from the index git writes (git lists the tree once), and meanwhile the
    entries get the stat data every mount reports (times 0: a mount writes its own) and
    git's untracked cache is written from the tree, the sizes not known yet left 0 and
    filled in once they come. (Built entry by entry in Python before, ``index.index_bytes``
    over ``git ls-tree``'s listing: ~0.25-0.3 s of CPU at 20,538 files, where git's
    ``read-tree`` is ~0.05 s of its own process and the pass over its entries ~0.04 s.)"""
    from . import keptindex, untracked
    from .readtree import Ahead, sizes_filled

    store = vault.store
    promisor = store.promisor
    if promisor.remote() is None:
        return False
    tree = store.commit_tree(commit)
    state = vault.state_dir
    if keptindex.load(state, tree) is not None:
        return True
    # git's read-tree and the untracked cache's head (a status on an empty tree), started
    # now, two processes of git's while the sizes wait on it and on the server
    ahead = Ahead(store.path, tree, state, untracked.HeadAhead(vault.path, state, vault.path))
    store.listed.keep_beside(tree, ahead)  # (the sizes read their blob ids from it)
    asked = threading.Event()

    def ask() -> None:
        with promisor.asking():  # (the .gitignore files' sizes: asked apart, untracked.py)
            asked.set()
            try:
                store.ensure_sizes(tree, fetch=False)  # one request; never the blobs
            except Exception:
                pass  # (not sized: nothing is kept)

    sizes = threading.Thread(target=ask, name="avfs-kept-sizes", daemon=True)
    sizes.start()
    failed: list[BaseException] = []
    fetching: threading.Thread | None = None
    try:
        asked.wait()
        head, ahead.head = ahead.head, None
        made = ahead.made(TOKEN, 0, (os.getuid(), os.getgid()), promisor.size)
        if made is None:
            if head is not None:
                head.drop()
            return False  # (git made none this reads: a mount makes its index as before)

        def fetch() -> None:
            try:
                untracked.fetch_gitignores(store, made.skeleton)  # (git's first status reads them)
            except BaseException as exc:
                failed.append(exc)

        # the tree's .gitignore files fetched while the untracked cache is written (each a
        # wait on the server, where the cache is this interpreter's work)
        fetching = threading.Thread(target=fetch, name="avfs-kept-gitignores", daemon=True)
        fetching.start()
        ext = untracked.extension(
            store,
            made.skeleton,
            made.data,
            vault.path,
            vault.path,
            None,
            scratch=state,
            fetched=True,
            head_ahead=head if isinstance(head, untracked.HeadAhead) else None,
        )
    finally:
        if fetching is not None:
            fetching.join()
        sizes.join()
        store.listed.drop()
    if ext is None or failed or not promisor.sized(tree):
        return False  # (a server that cannot say sizes: a mount fetches them its own way)
    known = promisor.size  # (every one known: the tree is sized; not mount/index.py's sizes_of,
    # whose import, the workspace's smudge filters with it, a clone has no other use for)
    data = sizes_filled(
        untracked.with_extension(made.data, ext),
        made.sized_at,
        lambda oid: n if (n := known(oid)) is not None else store.blob_size(oid),
    )
    return keptindex.keep(state, tree, data)


def at_clone(vault: Vault, commit: str) -> bool:
    """Make and keep the index of ``commit``'s tree (the default fork's tip) in the lazy
    ``vault`` just cloned, before the clone answers (cli/vaults.py): the first mount of
    any fork at that base, even one made the moment the clone answered, then patches it at
    its gate instead of making it there (docs/lazy.md "The index kept per base"). True when
    one is kept; False and nothing left behind when it cannot be made (the server does not
    say sizes, dies or does not answer within the vault's ``fetch_timeout_s``, another
    process makes it): the clone stands either way, and a mount makes its index as before."""
    from . import keptindex

    try:
        tree = vault.store.commit_tree(commit)
        fd = keptindex.making(vault.state_dir, tree)
    except Exception:
        return False
    if fd is None:
        return False
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"%d\n" % os.getpid(), 0)  # (for a mount that takes over: keptindex.stop)
        return make(vault, commit)
    except Exception:
        return False
    finally:
        keptindex.made(vault.state_dir, tree, fd)


DELAY_S = 2  # how long after the clone's answer the maker starts (see :func:`spawn`)
# run by /bin/sh first ($1 the delay, $2 the vault's avfs/ directory, $3 the directory of
# its kept indexes, $4 where the mount records are, then the maker's command; git's
# ``read-tree`` made ahead, :func:`start_read_tree`, is no kept index): a shell's start-up and a
# sleep cost the clone's caller nothing measurable, where the interpreter's start-up (~20
# ms of CPU) as the clone's process exited made the clone's wall time 0.03-0.1 s longer on
# a loaded machine; no interpreter at all when there is nothing to make (the vault gone,
# a kept index there, or a mount up: the usual case, its first mount made and kept it)
WAIT = (
    'sleep "$1"; [ -d "$2" ] || exit 1; for f in "$3"/* "$4"/*.json; do case "$f" in *.read-tree*) ;; '
    '*) [ -e "$f" ] && exit 1;; esac; done; '
    'shift 4; exec "$@"'
)
# the maker's first statements, before its imports: Linux's idle scheduling class (it runs
# only on a CPU nothing else wants; already so where it was started through ``chrt``:
# :func:`idle_cmd`), then the module's main
BOOT = (
    "import os\n"
    "try:\n"
    "    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
    "except (OSError, AttributeError):\n"
    "    os.nice(19)\n"
    "from avfs_git.mount.keptmake import main\n"
    "raise SystemExit(main())\n"
)


CHRT = ("/usr/bin/chrt", "/bin/chrt")  # util-linux's: a command's scheduling class set before its exec


def idle_cmd(cmd: list[str]) -> list[str]:
    """``cmd`` run in Linux's idle scheduling class from its ``exec`` on, the interpreter's
    start included: through util-linux's ``chrt --idle 0`` where there is one (glibc's
    ``posix_spawn`` takes no class but OTHER, FIFO and RR: ``os.posix_spawn(...,
    scheduler=(os.SCHED_IDLE, ...))`` fails ``EINVAL``), else as it is (:func:`to_idle` moves
    it as soon as it runs, :data:`BOOT` in its first statements). Before, the maker's
    interpreter started in the normal class and entered the idle one in its first
    statements: ~0.05-0.1 s of CPU at normal priority beside a mount's start."""
    for chrt in CHRT:
        if os.access(chrt, os.X_OK):
            return [chrt, "--idle", "0", *cmd]
    return cmd


def to_idle(pid: int) -> None:
    """Move the process ``pid`` just started (every thread it has: one) to the idle class,
    where :func:`idle_cmd` found no ``chrt`` (there it is a no-op)."""
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    except (OSError, AttributeError):
        pass


# run by /bin/sh ($1 the commit, $2 the directory of the kept indexes, then git's settings):
# git's read-tree of the commit's tree, written whole (git's lock file renamed) where a
# mount's ``readtree.Ahead`` takes it (core/vaults/keptindexes.py ``read_tree_path``)
READ_TREE = (
    'tree=$(git rev-parse --verify --quiet "$1^{tree}") || exit 1; d=$2; shift 2; '
    'GIT_INDEX_FILE="$d/$tree.read-tree" GIT_INDEX_VERSION=2 exec git "$@" read-tree "$tree"'
)


def _detached(cmd: list[str], env: dict[str, str]) -> int:
    """Start ``cmd`` in a session of its own, its standard streams on /dev/null (inherited
    descriptors as they are marked)."""
    return os.posix_spawn(
        cmd[0],
        cmd,
        env,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
        ],
        setsid=True,
    )


def start_read_tree(vault: Vault, commit: str) -> int | None:
    """Start git's ``read-tree`` of ``commit``'s tree (a lazy clone's default fork's tip) in
    ``vault``, detached, as the clone answers: the first mount of that tree takes the index
    git wrote (mount/readtree.py ``Ahead``) instead of starting its own ``read-tree`` as it
    comes up (there it ran 0.35-0.8 s of wall at load 8-11, the tree's sizes waiting for
    its ids and the first `git status` for both), so the sizes are asked at once. No Python
    starts: a shell and git's two processes (~0.05 s of CPU at 20,538 files, which the
    mount's own ``read-tree`` spent in the same phase, `avfs mount`'s). At normal priority:
    in the idle class it had not finished when the mount came up, at load 11. Its pid, or
    None."""
    from ..core.store.gitrun import git_env
    from .readtree import CONFIG

    kept = kept_dir(vault.state_dir)
    env = git_env()
    env["GIT_DIR"] = vault.path
    settings = [x for c in CONFIG for x in ("-c", c)]
    cmd = ["/bin/sh", "-c", READ_TREE, "avfs-read-tree", commit, kept, *settings]
    try:
        os.makedirs(kept, exist_ok=True)
        pid = _detached(cmd, env)
    except OSError:
        return None
    return pid


def spawn(home: str, vault: Vault, commit: str, env: dict[str, str]) -> int | None:
    """Start :func:`main` detached for ``commit`` (the default fork's tip) of ``vault`` in
    home ``home``, with environment ``env`` (the caller's: its settings); its pid, or None
    (no process could start).

    A shell waits :data:`DELAY_S` (:data:`WAIT`), then the maker makes the kept index
    only when no mount of the vault has been made meanwhile (a mount makes its own index
    and keeps it: mount/index.py), in Linux's idle scheduling class. Measured: started at
    once, it made the first `git status` after `ls` in a mount started the moment the clone
    answered 0.28-0.69x of main's, but `vault clone --lazy` + `mount` until `ls` 1.3-1.9x
    slower (at normal priority and in the idle class alike) on a machine whose two cores
    were busy, and the two together no faster: the settling's work was moved in front of
    `ls`, not saved (docs/benchmarks.md). A mount that starts later than the delay finds the
    kept index made, or being made: it takes over then (:func:`.keptindex.take_over`)."""
    from ..core.vaults import registry

    # (no object read here: the clone's caller waits for this process's exit; a new
    # vault has no kept index, and the shell looks for one)
    records = os.path.dirname(registry.record_path(vault.state_dir, "-"))
    cmd = [
        "/bin/sh",
        "-c",
        WAIT,
        "avfs-keptmake",
        str(DELAY_S),
        vault.state_dir,
        kept_dir(vault.state_dir),
    ]
    cmd += [
        records,
        sys.executable,
        "-P",
        "-c",
        BOOT,
        "--home",
        home,
        "--vault",
        vault.name,
        "--commit",
        commit,
    ]
    cmd = idle_cmd(cmd)  # (the shell's wait and the maker after it: idle from the start)
    try:
        pid = _detached(cmd, env)
    except OSError:
        return None
    to_idle(pid)
    return pid


def hold(vault: Vault, commit: str) -> int | None:
    """The lock of the kept index of ``commit``'s tree in ``vault`` (:func:`.keptindex.making`),
    taken before the clone answers, for :func:`start_now`; None when another process holds
    it (or it cannot be taken)."""
    from . import keptindex

    try:
        return keptindex.making(vault.state_dir, vault.store.commit_tree(commit))
    except Exception:
        return None


def start_now(home: str, vault: Vault, commit: str, env: dict[str, str], fd: int) -> bool:
    """Start :func:`main` detached at once for ``commit`` (the default fork's tip) of lazy
    ``vault``, handing it the kept index's lock ``fd`` (:func:`hold`, taken before the clone
    answered; ``"index_at_clone": "after"``, cli/vaults.py: called once the clone's caller
    has its answer, or as a process of the caller's own exits): a mount started the moment
    the clone answered finds the lock held, whether or not the maker's interpreter is up
    yet; the maker runs in Linux's idle scheduling class from its ``exec`` (:func:`idle_cmd`),
    and the mount, coming up as with no maker, patches what it kept if that is there when
    the mount makes its index, or else takes over (:func:`.keptindex.take_over`). A
    maker killed midway lets go of the lock with its last descriptor: the mount then makes
    its own index, and nothing half made is kept (:func:`.keptindex.keep` renames a whole
    file in). Whether one started (if not, the lock is let go)."""
    from . import keptindex

    cmd = [sys.executable, "-P", "-c", BOOT, "--home", home, "--vault", vault.name, "--commit", commit]
    cmd = idle_cmd([*cmd, "--lock-fd", str(fd)])  # (idle from its exec: the interpreter's start too)
    try:
        os.set_inheritable(fd, True)  # (the lock goes with the descriptor: flock's is the open file's)
        pid = _detached(cmd, env)
    except Exception:
        try:
            keptindex.made(vault.state_dir, vault.store.commit_tree(commit), fd)
        except Exception:
            os.close(fd)
        return False
    to_idle(pid)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"%d\n" % pid, 0)  # (for a mount that takes over: keptindex.stop)
    except OSError:
        pass
    os.close(fd)  # (the maker holds the lock now)
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -c BOOT --home H --vault V --commit C`` (:data:`BOOT`, after :data:`WAIT`): the kept index made
    unless one is, its lock is held, or the vault has a mount (which makes its own)."""
    import argparse

    ap = argparse.ArgumentParser(prog="avfs_git.mount.keptmake")
    ap.add_argument("--home", required=True)
    ap.add_argument("--vault", required=True)
    ap.add_argument("--commit", required=True)
    # the kept index's lock, taken and handed over by :func:`start_now` (a mount may be up
    # already: it waits for this process)
    ap.add_argument("--lock-fd", type=int)
    args = ap.parse_args(argv)
    from ..core.vaults import registry
    from . import keptindex
    from .side import open_home

    vault = open_home(args.home).vault(args.vault)
    tree = vault.store.commit_tree(args.commit)
    fd = keptindex.making(vault.state_dir, tree) if args.lock_fd is None else args.lock_fd
    if fd is None:
        return 1
    try:
        if args.lock_fd is None:
            if registry.records(vault.state_dir):
                return 1  # a mount came first: it makes the index, and keeps it
            os.ftruncate(fd, 0)
            os.pwrite(fd, b"%d\n" % os.getpid(), 0)  # (for a mount that takes over: keptindex.stop)
        return 0 if make(vault, args.commit) else 1
    finally:
        keptindex.made(vault.state_dir, tree, fd)
