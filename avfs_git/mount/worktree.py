"""A mounted fork as a linked worktree of its vault, so `git` works inside the mount.

The mount shows a file ``.git`` at its root that reads ``gitdir: <vault>/worktrees/<id>``;
that directory holds what git keeps per worktree (``HEAD``, ``index``, ``commondir``,
``gitdir``), and everything else (objects, refs, config) is the vault's own. So
``git status``, ``git diff``, ``git add`` and ``git commit`` in the mount run against the
vault, and a commit made there moves the fork's branch like any other push.

The index holds the workspace's base tree with the stat data the mount reports for an
unchanged file (all of it computable from the workspace: :func:`index_stat`); git then
compares it with the files the mount shows, so ``git status`` agrees with ``avfs status``.

**The index follows the base at once.** Whatever moves a mounted workspace's base (a
checkpoint, restore, undo, merge, ``merge --continue``/``--abort``, an exec's commit)
rewrites the index itself, under the fork lock and before it returns
(:func:`sync_mounted`): an index left at the old base would make ``git commit`` issued
right afterwards commit the old tree, undoing the move. The mount daemon also rewrites it
when it notices a base moved by other hands (its watcher polls). The writers never race:

- they serialize on an ``flock`` of ``avfs-index.lock`` in the mount's own directory and read
  the base only once it is held (whoever writes last writes the newest base), with the
  view time and an open merge in one read transaction (:func:`_read_view`): the index,
  its stat data, its fsmonitor token and its stamp all describe one state; a write
  goes through git's own ``index.lock`` (retrying while git holds it), taken only when
  there is something to write (git gives up at once on a taken ``index.lock``);
- the stamp ``avfs-index`` records the (base, view time, open merge) the index was written
  for; a writer finding it current leaves the index alone, so the daemon's late notice of
  a move never clobbers what ``git add`` staged after the mover wrote the index;
- a ``git commit`` in the mount moves the fork with its own index already right: the
  workspace then only stamps it (:func:`stamp_current`).

A move that keeps the view (a checkpoint) patches the index where the bases differ; one
that changes it (restore, undo, merge) writes it whole and then waits, bounded, until the
daemon's watcher (woken through the FIFO ``avfs-wake``) acknowledges in ``avfs-view`` that
the kernel's caches of the old view are gone: when the move returns, the mount shows it.

**Nothing here trusts the worktree's git dir.** A confined ``proxy exec`` command can write
that directory (git needs its index and reflog), so avfs's own files of a mount (the stamp,
its lock, the wake FIFO, the ack file, the merge marker, git's fsmonitor hook and its socket,
every temp file) live in the mount's own directory (:func:`files_dir`:
``<vault>/avfs/mounts/<key>.d``, which the sandbox never sees), the mount's owner data
(daemon pid, uid, gid, backend, mount point) comes from its registry record alone, checked
against the kernel's mount table, and what avfs still writes into the git dir (the index
through git's ``index.lock``, ``MERGE_HEAD``, ``MERGE_MSG``) is created ``O_EXCL|O_NOFOLLOW``
and renamed in: a planted symlink is replaced, never followed. What it reads there (the
index, ``logs/HEAD``) is read ``O_NOFOLLOW``, bounded, as untrusted data (docs/security.md).
While a merge with written conflicts is open (:mod:`.mergestate`), the index holds the merged
tree with the conflicted paths unmerged (stages 1-3) and ``MERGE_HEAD`` is set: git in the
mount sees its own merge, and ``git commit`` makes the two-parent commit.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import shutil
import stat
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ..core.errors import from_oserror
from ..core.store.gitrun import git_env, run
from ..core.store.names import fs_name
from ..core.vaults.registry import is_mount_daemon, mount_dir, mounted_as, read_record, record_path
from ..core.workspace.mergestate import HasState, peek_state

if TYPE_CHECKING:
    from ..core.store.gitstore import GitStore
    from ..core.workspace.overlay import Overlay


class MountedVault(Protocol):
    """What this module needs of a vault (:class:`.vault.Vault` is one)."""

    name: str
    path: str  # the bare repository: the worktrees' git dirs are under ``worktrees/``
    state_dir: str
    store: GitStore

    @property
    def lock_wait_s(self) -> float: ...


class MountedFork(HasState, Protocol):
    """What this module needs of a workspace (:class:`.workspace.Workspace` is one): the
    workspace calls in here, so this module knows it by these names only."""

    fork: str
    store: GitStore
    overlay: Overlay
    pinned: str | None

    @property
    def vault(self) -> MountedVault: ...
    @property
    def view_time(self) -> float: ...
    def read(self, path: str) -> bytes: ...


# the mount's own files, in files_dir() (never the worktree's git dir: docs/security.md)
WAKE_FIFO = "avfs-wake"  # a byte written here wakes the daemon's watcher at once
ACK_FILE = "avfs-view"  # "BASE VIEW_TIME": the view the mount serves, its old caches dropped
ACK_WAIT_S = 5.0  # how long a mover waits for a live mount to show its move
MERGE_MARKER = "avfs-merge-head"  # the MERGE_HEAD avfs wrote for an open merge
STAMP_FILE = "avfs-index"  # "BASE VIEW_TIME MERGE": what the index was last written for
LOCK_FILE = "avfs-index.lock"  # avfs's writers of the index serialize on its flock
HOOK_FILE = "fsmonitor-hook"  # git's fsmonitor hook (config.worktree names it by its path)
INDEX_ERROR = "avfs-index-error"  # what `git read-tree` said when it could not make the index
INDEX_LOCK_WAIT_S = 10.0  # how long a writer waits for git to let go of index.lock
MAX_READ = 1 << 16  # the most read of a small file (stamp, ack, marker, MERGE_HEAD)
MAX_INDEX = 1 << 31  # an index larger than this is not patched but written whole


def inode_of(path: str) -> int:
    """A stable inode number for a path (the same in every mount of every process)."""
    if not path:
        return 1
    digest = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return (int.from_bytes(digest, "little") & 0x00FFFFFFFFFFFFFF) | 2


def fsmonitor_token(ws: MountedFork) -> str:
    """A token for the fsmonitor hook under which every path that may differ from the base
    is reported: the overlay's paths are all in the journal after the oldest overlay
    entry's sequence number."""
    return _read_view(ws).token


class _View(NamedTuple):
    """What the index of a mount of a workspace is written for, read in one snapshot of
    the overlay's database: the stamp, the stat data and the fsmonitor token of one index
    always describe the same base and view time."""

    base: str | None
    view_time: str | None
    merging: dict[str, Any] | None  # the open merge, if any (.mergestate.peek_state)
    stamp: str  # "BASE VIEW_TIME MERGE" (STAMP_FILE)
    token: str  # the fsmonitor token

    def view_ns(self) -> int:
        return int(float(self.view_time or 0) * 1e9)


def _read_view(ws: MountedFork) -> _View:
    """The workspace's base, view time, open merge and fsmonitor token, all read inside one
    SQLite read transaction: reads made one by one could straddle a move committed by
    another process (a base from before it, a view time from after), and an index written
    for the old base would then carry the stamp of the new one, so the mover, finding the
    stamp current, would leave that stale index in place."""
    ws.view_time  # noqa: B018 - set when missing (a write: not inside the snapshot)
    ov = ws.overlay
    db = ov.db
    own = not db.in_transaction  # inside the caller's transaction its view is consistent
    if own:
        db.execute("BEGIN")  # deferred: the snapshot starts at the first read
    try:
        meta = ov.get_metas("base", "view_time")
        base, view_time = meta.get("base"), meta.get("view_time")
        merging = peek_state(ws) if base is not None else None
        row = db.execute("SELECT MIN(seq) FROM entries").fetchone()
        seq = int(row[0]) - 1 if row and row[0] is not None else ov.last_seq()
    finally:
        if own:
            db.execute("COMMIT")
    stamp = f"{base} {view_time} {merging['theirs'] if merging else '-'}"
    return _View(base, view_time, merging, stamp, f"avfs:{base}:{view_time}:{seq}")


def view_ns(ws: MountedFork) -> int:
    """The time (ns) an unchanged file of the workspace shows as its ctime and mtime."""
    return int(ws.view_time * 1e9)


def index_stat(ws: MountedFork, uid: int, gid: int, view: _View | None = None) -> StatFn:
    """``stat_of`` for :func:`write_index`: (ctime_ns, mtime_ns, ino, uid, gid, size) that a
    mount of ``ws`` (its daemon running as ``uid``/``gid``) reports for an unchanged file:
    what the index must hold for git to trust it without reading it (for ``view``'s view
    time when given, else the workspace's current one)."""
    from ..core.store.odbdirect import size_reader

    t = view.view_ns() if view is not None else view_ns(ws)
    size = size_reader(ws.store)  # libgit2 reads headers 7x faster than a Python lookup per blob

    def stat_of(path: str, mode: int, oid: str) -> tuple[int, int, int, int, int, int]:
        return t, t, inode_of(path), uid, gid, size(oid)

    return stat_of


def worktree_name(key: str) -> str:
    """The git worktree name of a mount of ``key`` (a fork, or ``FORK@REV``)."""
    return "avfs-" + fs_name(key, at=True)


def worktree_dir(vault: MountedVault, key: str) -> str:
    return os.path.join(vault.path, "worktrees", worktree_name(key))


def files_dir(vault: MountedVault, key: str) -> str:
    """The directory of the mount ``key``'s own files (:func:`.registry.mount_dir`)."""
    return mount_dir(vault.state_dir, key)


# git's fsmonitor hook of a fork's mount: it relays git's token to the mount's daemon over a
# Unix socket in the mount's own directory and prints the answer (mount/hooksocket.py), which the
# daemon makes from what it alone holds: the kernel's record of an overlay mount's upper
# layer (core/workspace/upperwatch.py), a pure-FUSE mount's journal (mount/journalhook.py).
_SOCKET_HOOK = """#!{python} -IS
# git's fsmonitor hook (protocol v2) for an avfs mount: the mount daemon answers over a Unix
# socket in this directory (from the kernel's record of an overlay mount's upper layer, or
# from a pure-FUSE mount's journal). No answer (the daemon is gone), or half of one: "/",
# everything may differ.
import _socket, os, sys

HOME = {files!r}
SOCKET = {socket!r}


def main():
    token = sys.argv[2] if len(sys.argv) > 2 else ""
    try:
        os.chdir(HOME)  # a socket's address holds 107 bytes: connect by a relative name
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        s.settimeout({timeout_s})
        s.connect(SOCKET)
        s.sendall(token.encode("utf-8", "surrogateescape") + b"\\n")
        chunks = []
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            chunks.append(b)
        head, _, body = b"".join(chunks).partition(b"\\n")
        if not head.isdigit() or int(head) != len(body) or not body.endswith(b"\\0"):
            raise OSError("a partial answer")
    except OSError:
        body = b"avfs-ovl:none\\0/\\0"
    sys.stdout.buffer.write(body)


main()
"""

# The same hook in Perl, which starts in ~2 ms where Python takes ~10 ms: the hook runs on
# every `git status`, and its start-up was most of a warm one. Core built-ins only (`use
# Socket` alone costs ~9 ms): the socket's constants are this machine's, written in by
# socket_hook(), and its address is packed by hand (sa_family_t, then the path, relative).
# -T: taint mode ignores PERL5OPT and PERL5LIB and keeps "." off @INC (as Python's -I ignores
# PYTHON* and keeps the script's directory off sys.path).
_SOCKET_HOOK_PERL = r"""#!@PERL@ -T
# git's fsmonitor hook (protocol v2) for an avfs mount: the mount daemon answers over a Unix
# socket in this directory (from the kernel's record of an overlay mount's upper layer, or
# from a pure-FUSE mount's journal). No answer (the daemon is gone), or half of one: "/",
# everything may differ.
my $token = defined $ARGV[1] ? $ARGV[1] : "";
my $body = eval {
    local $SIG{ALRM} = sub { die "timed out\n" };
    local $SIG{PIPE} = "IGNORE";  # a daemon that hung up: an error, not the end of the hook
    alarm @TIMEOUT_S@;
    # a socket's address holds 107 bytes: connect by a relative name
    chdir @HOME@ or die "chdir: $!\n";
    socket(my $s, @AF_UNIX@, @SOCK_STREAM@, 0) or die "socket: $!\n";
    connect($s, pack("S a*", @AF_UNIX@, @SOCKET@)) or die "connect: $!\n";
    my $out = "$token\n";
    while (length $out) {
        my $n = syswrite($s, $out);
        die "write: $!\n" unless $n;
        substr($out, 0, $n) = "";
    }
    my $in = "";
    while (1) {
        my $n = sysread($s, $in, 65536, length $in);
        die "read: $!\n" unless defined $n;
        last unless $n;
    }
    alarm 0;
    $in =~ /\A([0-9]+)\n/ or die "a partial answer\n";
    my $got = substr($in, length($1) + 1);
    die "a partial answer\n" unless $1 == length($got) && $got =~ /\0\z/;
    $got;
};
alarm 0;
$body = "avfs-ovl:none\0/\0" unless defined $body;
binmode STDOUT;
print $body;
"""


def _perl_str(text: str) -> str:
    """``text`` as a Perl single-quoted string (only ``\\`` and ``'`` are special in one)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def socket_hook(files: str, perl: str | None, timeout_s: int = 60) -> str:
    """The fsmonitor hook of the fork's mount whose own directory is ``files`` (either
    backend: its daemon answers over the socket there): in Perl run by ``perl`` (an
    absolute path), or, without one, in Python (this interpreter, isolated: ``-I``). A
    daemon that has not answered within ``timeout_s`` seconds is taken for gone ("/")."""
    import re
    import socket
    import sys

    from ..core.workspace.hookwire import SOCKET_NAME

    if perl is None:
        return _SOCKET_HOOK.format(
            python=sys.executable, files=files, socket=SOCKET_NAME, timeout_s=timeout_s
        )
    subs = {
        "@PERL@": perl,
        "@HOME@": _perl_str(files),
        "@SOCKET@": _perl_str(SOCKET_NAME),
        "@AF_UNIX@": str(int(socket.AF_UNIX)),
        "@SOCK_STREAM@": str(int(socket.SOCK_STREAM)),
        "@TIMEOUT_S@": str(int(timeout_s)),
    }
    return re.sub("|".join(subs), lambda m: subs[m.group(0)], _SOCKET_HOOK_PERL)


class Registered(NamedTuple):
    """A mount's worktree as :func:`register` made it."""

    git_dir: str  # <vault>/worktrees/avfs-<key>: git's, writable by a confined command
    files: str  # files_dir(): avfs's own files of the mount, out of the sandbox's view
    hook: str | None  # the fsmonitor hook's language ("perl", "python"), None without one


def register(
    vault: MountedVault,
    key: str,
    mountpoint: str,
    head: str,
    index_commit: str,
    *,
    backend: str = "fuse",
    fsmonitor: bool = False,
) -> Registered:
    """Register ``mountpoint`` as a worktree whose HEAD is ``head`` (a ref name, or a
    commit id for a detached, read-only revision), and make the mount's own directory
    (:func:`files_dir`).

    With ``fsmonitor`` (a fork's mount, whose daemon answers git's fsmonitor hook over
    :data:`.hooksocket.SOCKET_NAME` in its own directory), git's ``core.fsmonitor`` is set
    for this worktree only to :func:`socket_hook` (written in the mount's own directory,
    named by its absolute path), with the untracked cache. Both directories are made anew
    at every mount: ones an older avfs left (a daemon killed with -9) get today's hook. The
    mount's owner data is in the daemon's registry record, nowhere here.
    """
    from ..core.store.refs import HEADS, REFS  # (not at the top: refs loads the store)

    d = worktree_dir(vault, key)
    own = files_dir(vault, key)
    hook_kind: str | None = None
    try:
        shutil.rmtree(d, ignore_errors=True)  # a leftover of a killed mount
        shutil.rmtree(own, ignore_errors=True)
        os.makedirs(d)
        os.makedirs(own)
        files = {
            "gitdir": os.path.join(mountpoint, ".git") + "\n",
            "commondir": "../..\n",
            "HEAD": (f"ref: {head}\n" if head.startswith(REFS) else f"{head}\n"),
        }
        if fsmonitor:
            perl = shutil.which("perl")
            if perl is not None:
                perl = os.path.abspath(perl)
            hook = os.path.join(own, HOOK_FILE)
            _write_file(own, HOOK_FILE, socket_hook(own, perl).encode(), mode=0o755)
            hook_kind = "python" if perl is None else "perl"
            hooks = ""
            if head.startswith(HEADS):
                hooks = f"\thooksPath = {make_hooks(vault, own, d, mountpoint, head[len(HEADS) :])}\n"
            files["config.worktree"] = (
                # with worktreeConfig on, the vault's core.bare=true would make git see this
                # worktree as bare: say otherwise, for this worktree only
                f"[core]\n\tbare = false\n\tfsmonitor = {hook}\n\tfsmonitorHookVersion = 2\n\tuntrackedCache = true\n"
                + hooks
            )
        for name, text in files.items():
            _write_file(d, name, text.encode(), via=own)
        if fsmonitor and backend == "fuse":  # the pure-FUSE daemon's watcher reads it
            os.mkfifo(os.path.join(own, WAKE_FIFO), 0o600)
        if "config.worktree" in files:
            enable_worktree_config(vault)
    except OSError as exc:
        raise from_oserror(exc, d) from exc
    env = git_env()
    env["GIT_DIR"] = d
    proc = run(["read-tree", index_commit], env=env, check=False)
    if proc.returncode != 0:  # git still works without an index; status then lists everything
        _write_file(own, INDEX_ERROR, proc.stderr)
    return Registered(d, own, hook_kind)


HOOKS_DIR = "hooks"  # in the mount's own directory: git's hooks there (core.hooksPath)

# every hook name git runs (githooks(5), git 2.39): each is the person's own, reached through
# a link, but post-checkout, which is avfs's guard and then the person's
GIT_HOOKS = (
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-merge",
    "pre-push",
    "pre-receive",
    "update",
    "proc-receive",
    "post-receive",
    "post-update",
    "reference-transaction",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "sendemail-validate",
    "fsmonitor-watchman",
    "p4-changelist",
    "p4-prepare-changelist",
    "p4-post-changelist",
    "p4-pre-submit",
    "post-index-change",
)

# git's post-checkout hook of a fork's mount: a branch switch there (`git switch X`,
# `git checkout -b X`) is switched back at once, since the mount is the fork's (its state,
# its daemon, its registry record), and said why; a detached HEAD and file checkouts pass
_GUARD = """#!/bin/sh
# avfs: the post-checkout hook of the mount of fork {fork_q} (vault {vault_q}); made by
# every mount, in the mount's own directory (a confined command cannot write it)
fork={fork_sh}
# only for this mount's worktree (`git worktree add` runs this hook in the new one)
if [ "$3" = 1 ] && [ "$(git rev-parse --absolute-git-dir 2>/dev/null)" = {git_dir_sh} ]; then
    head=$(git symbolic-ref -q HEAD 2>/dev/null)
    if [ -n "$head" ] && [ "$head" != "refs/heads/$fork" ]; then
        echo "avfs: this mount is fork $fork of vault "{vault_sh}": switching back to $fork" \\
            "(a mount does not follow a switch to ${{head#refs/heads/}})" >&2
        if git -c core.hooksPath=/dev/null checkout -q --ignore-other-worktrees "$fork" -- 2>&1 >/dev/null | sed 's/^/avfs: /' >&2 &&
            [ "$(git symbolic-ref -q HEAD 2>/dev/null)" = "refs/heads/$fork" ]; then
            echo "avfs: to work on ${{head#refs/heads/}}: avfs mount "{vault_sh}":${{head#refs/heads/}} DIR" >&2
        else
            echo "avfs: could not switch back; run: git switch $fork" >&2
        fi
        exit 1
    fi
fi
hook={chain_sh}/post-checkout
if [ -f "$hook" ] && [ -x "$hook" ]; then
    exec "$hook" "$@"
fi
exit 0
"""


def _sh(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _persons_hooks(vault: MountedVault, mountpoint: str) -> str:
    """The hooks directory git would use in this mount without avfs's: ``core.hooksPath``
    of the person's config (system, global, the vault's), else the vault's ``hooks/``."""
    env = git_env()
    env["GIT_DIR"] = vault.path
    proc = run(["config", "--path", "--get", "core.hooksPath"], env=env, check=False)
    got = proc.stdout.decode("utf-8", "surrogateescape").strip() if proc.returncode == 0 else ""
    if not got:
        return os.path.join(vault.path, "hooks")
    return got if os.path.isabs(got) else os.path.join(mountpoint, got)  # git runs hooks there


def make_hooks(vault: MountedVault, own: str, git_dir: str, mountpoint: str, fork: str) -> str:
    """Make the mount's hooks directory in its own directory ``own`` (its
    ``core.hooksPath``): the branch-switch guard as ``post-checkout``, and a link to the
    person's hook of every other name. Returns its path."""
    d = os.path.join(own, HOOKS_DIR)
    os.makedirs(d, mode=0o755)
    chain = _persons_hooks(vault, mountpoint)
    for name in GIT_HOOKS:
        os.symlink(os.path.join(chain, name), os.path.join(d, name))
    guard = _GUARD.format(
        fork_q=fork,
        vault_q=vault.name,
        fork_sh=_sh(fork),
        vault_sh=_sh(vault.name),
        chain_sh=_sh(chain),
        git_dir_sh=_sh(os.path.realpath(git_dir)),
    )
    _write_file(d, "post-checkout", guard.encode(), mode=0o755)
    return d


def enable_worktree_config(vault: MountedVault) -> None:
    """Turn on ``extensions.worktreeConfig`` in the vault (once: the first mount). Two mounts
    starting at once both wrote it, and libgit2 refuses a config whose ``config.lock``
    another writer holds (an exec then failed): avfs's writers take turns on a lock of
    their own, and nothing is written when the setting is there already."""
    from ..core.store import vaultconfig
    from ..core.store.locks import file_lock

    def done() -> bool:
        return vaultconfig.worktree_config_enabled(vault.store)

    if done():
        return
    with file_lock(
        os.path.join(vault.state_dir, ".config.lock"),
        what=f"the config of vault {vault.name}",
        wait_s=vault.lock_wait_s,
    ):
        if done():  # set meanwhile by the mount that held the lock
            return
        vaultconfig.enable_worktree_config(vault.store)


StatFn = Callable[[str, int, str], tuple[int, int, int, int, int, int]]


def write_index(
    vault: MountedVault, git_dir: str, commit: str, stat_of: StatFn, fsmonitor_token: str | None = None
) -> bool:
    """Write the worktree's index for ``commit`` with the stat data the mount reports (a
    read-only revision's mount; a fork's mount uses :func:`sync_index`).

    git trusts an index entry whose stat data equals what ``lstat`` returns, and otherwise
    re-reads the file: an index from ``git read-tree`` (zeroed stat data) makes the first
    ``git status`` read every file through FUSE. ``stat_of(path, mode, oid)`` gives
    (ctime_ns, mtime_ns, ino, uid, gid, size) as the mount shows them. The index is written
    under git's own ``index.lock``; when git holds it, nothing is written (returns False).
    """
    try:
        fd = _create_lock(git_dir)
    except FileExistsError:
        return False
    _write_locked(git_dir, fd, index_bytes(vault, commit, stat_of, fsmonitor_token))
    return True


def index_bytes(
    vault: MountedVault,
    commit: str,
    stat_of: StatFn,
    fsmonitor_token: str | None = None,
    *,
    tree: str | None = None,
    unmerged: Sequence[Sequence[Any]] = (),
    skeleton: list[tuple[str, str | None]] | None = None,
) -> bytes:
    """An index holding ``commit``'s tree (or ``tree``) with ``stat_of``'s stat data, and
    the ``unmerged`` entries ``(path, stage, oid, mode)`` in place of those paths' own.

    Format: git's index version 2 (Documentation/gitformat-index.txt). With
    ``fsmonitor_token`` it carries git's ``FSMN`` extension (version 2, that token, an empty
    dirty bitmap): git then trusts every entry and asks the hook only what changed since
    the token, instead of lstat-ing every file on its first status (47 s at 100k files).
    ``skeleton`` collects the tree's directories ``(path, None)`` and ``.gitignore`` files
    ``(path, oid)`` on the way (mount/untracked.py builds git's untracked cache from them).
    Without unmerged entries it carries git's cache tree (``TREE``: every directory's tree
    id and entry count, exact since the entries are that tree's), with which ``git status``
    compares the index with ``HEAD`` without reading every tree object (100k files: ~0.1 s).
    """
    import struct

    entry = struct.Struct(">IIIIIIIIII20sH").pack  # one index entry's fixed part
    pad = [b"\0" * (8 - (62 + n) % 8) for n in range(8)]  # NUL-terminated, to 8 bytes
    entries: list[tuple[bytes, bytes]] = []
    add = entries.append
    store = vault.store

    nodes: list[list[Any]] = []  # the cache tree, depth first: [name, entries, subtrees, tree id]

    def walk(tree: str, prefix: str, dirname: str) -> int:
        node: list[Any] = [dirname, 0, 0, tree]
        nodes.append(node)
        count = 0
        for name, (oid, mode) in store.tree_items(tree).items():
            path = prefix + name
            if mode == 0o040000:
                if skeleton is not None:
                    skeleton.append((path, None))
                node[2] += 1
                count += walk(oid, path + "/", name)
                continue
            count += 1
            if skeleton is not None and name == ".gitignore" and mode != 0o120000:
                skeleton.append((path, oid))
            ctime, mtime, ino, uid, gid, size = stat_of(path, mode, oid)
            raw = path.encode("utf-8", "surrogateescape")
            n = len(raw)
            add((raw, entry(
                ctime // 10**9, ctime % 10**9, mtime // 10**9, mtime % 10**9, 0,
                ino & 0xFFFFFFFF, mode, uid, gid, size & 0xFFFFFFFF,
                bytes.fromhex(oid), min(n, 0xFFF),
            ) + raw + pad[n % 8]))  # fmt: skip
        node[1] = count
        return count

    walk(tree or vault.store.commit_tree(commit), "", "")
    if unmerged:
        # git's unmerged entries: the path at stages 1-3, never also at stage 0
        gone = {str(u[0]).encode("utf-8", "surrogateescape") for u in unmerged}
        entries = [e for e in entries if e[0] not in gone]
        add = entries.append
        for path, stage, oid, mode in sorted(unmerged, key=lambda u: (u[0], u[1])):
            raw = str(path).encode("utf-8", "surrogateescape")
            n = len(raw)
            flags = (int(stage) << 12) | min(n, 0xFFF)
            add(
                (
                    raw,
                    entry(0, 0, 0, 0, 0, 0, int(mode), 0, 0, 0, bytes.fromhex(oid), flags) + raw + pad[n % 8],
                )
            )
    entries.sort(key=lambda e: e[0])  # stable: a path's stages stay in order
    data = b"DIRC" + struct.pack(">II", 2, len(entries)) + b"".join(b for _, b in entries)
    if not unmerged:
        cache_tree = b"".join(
            name.encode("utf-8", "surrogateescape") + b"\0" + b"%d %d\n" % (count, subs) + bytes.fromhex(oid)
            for name, count, subs, oid in nodes
        )
        data += b"TREE" + struct.pack(">I", len(cache_tree)) + cache_tree
    if fsmonitor_token is not None:
        # an EWAH bitmap with no bit set: bit count 0, one (empty) running-length word
        ewah = struct.pack(">II", 0, 1) + struct.pack(">Q", 0) + struct.pack(">I", 0)
        ext = struct.pack(">I", 2) + fsmonitor_token.encode() + b"\0" + struct.pack(">I", len(ewah)) + ewah
        data += b"FSMN" + struct.pack(">I", len(ext)) + ext
    return data + hashlib.sha1(data).digest()


def _write_locked(git_dir: str, fd: int, data: bytes) -> None:
    """Write ``data`` through git's ``index.lock`` (``fd``, created by the caller
    ``O_EXCL|O_NOFOLLOW``) and rename it over the index: git's own protocol, so git never
    reads half an index; the rename replaces whatever ``index`` is (a symlink planted there
    too), never follows it."""
    index = os.path.join(git_dir, "index")
    lock = index + ".lock"
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(lock, index)
    except BaseException:
        try:
            os.unlink(lock)
        except OSError:
            pass
        raise


def _create_lock(git_dir: str) -> int:
    """git's ``index.lock`` of ``git_dir``, created here (FileExistsError: git holds it, or
    something was planted there: either way it is not ours to write through)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(os.path.join(git_dir, "index.lock"), flags, 0o644)


def _write_file(directory: str, name: str, data: bytes, *, via: str | None = None, mode: int = 0o644) -> None:
    """Replace ``directory/name`` whole: a temp file created ``O_CREAT|O_EXCL|O_NOFOLLOW``
    under a fresh name in ``via`` (the mount's own directory, which no confined command
    can write; default ``directory``), written, and renamed over ``name``. A rename
    replaces what is there (a symlink planted in a worktree's git dir too), never follows
    it; across file systems (EXDEV) the temp file is made in ``directory`` itself, where
    ``O_EXCL`` still makes it a new file of this process's."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    where = via or directory
    while True:
        tmp = os.path.join(where, f".{name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, mode)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            os.fchmod(fh.fileno(), mode)
        try:
            os.replace(tmp, os.path.join(directory, name))
        except OSError as exc:
            if exc.errno != errno.EXDEV or where == directory:
                raise
            os.unlink(tmp)
            _write_file(directory, name, data, mode=mode)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read_bytes(path: str, limit: int = MAX_READ, *, dir_fd: int | None = None) -> bytes | None:
    """The content of the regular file ``path``, read as untrusted (:mod:`.untrusted`):
    None when it is larger than ``limit`` bytes, not a regular file, or unreadable."""
    from ..core.workspace.untrusted import read_file

    return read_file(path, limit, dir_fd=dir_fd)


def _read_text(path: str) -> str | None:
    data = _read_bytes(path)
    try:
        return None if data is None else data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def sync_index(
    ws: MountedFork,
    git_dir: str,
    uid: int,
    gid: int,
    *,
    view_changed: bool = True,
    wait_s: float = INDEX_LOCK_WAIT_S,
) -> bool:
    """Make the index of ``git_dir`` (a mount of ``ws``'s fork) hold ``ws``'s current base,
    with the stat data and fsmonitor token the mount answers with; left alone when it was
    already written for this base and view time (the stamp), so nothing staged since is
    lost. See the module's docstring for the locking. False when the worktree is gone or
    git held ``index.lock`` for ``wait_s``.

    ``view_changed`` False (a checkpoint, ``merge --continue``: the base moved under an
    unchanged view): the index written for the old base is patched where the two bases
    differ, O(index entries) in bytes instead of a pass over the tree with an object
    lookup per file; what ``git add`` staged elsewhere stays staged, as after a commit."""
    ws.view_time  # noqa: B018 - set when missing: no write to the database under the guard
    own = files_dir(ws.vault, ws.fork)
    try:
        guard = _open_guard(own)
    except (FileNotFoundError, NotADirectoryError):
        return False  # unmounted meanwhile
    except OSError as exc:
        raise from_oserror(exc, own) from exc
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)
        # read only now, the guard held: a writer after us reads a base at least as new;
        # and in one snapshot: what is written and its stamp describe the same base
        view = _read_view(ws)
        base, stamp, merging = view.base, view.stamp, view.merging
        stamp_path = os.path.join(own, STAMP_FILE)
        if base is None or _read_text(stamp_path) == stamp:
            return True  # written already: git's index.lock is not even touched
        lock = os.path.join(git_dir, "index.lock")
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fd = _create_lock(git_dir)
                break
            except FileExistsError:  # git is writing it: its write ends in a moment
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.002)
            except (FileNotFoundError, NotADirectoryError):
                return False
        try:
            stat_of = index_stat(ws, uid, gid, view)
            old = (_read_text(stamp_path) or "").split(" ")
            data = None
            if not view_changed and merging is None and len(old) == 3 and old[1:] == stamp.split(" ")[1:]:
                data = _patched_index(ws, git_dir, old[0], base, stat_of, view.token)
            if data is None:
                skeleton: list[tuple[str, str | None]] = []
                data = index_bytes(
                    ws.vault,
                    base,
                    stat_of,
                    view.token,
                    tree=merging.get("view_tree") if merging else None,
                    unmerged=merging.get("stages", ()) if merging else (),
                    skeleton=skeleton,
                )
                if merging is None:
                    data = _with_untracked_cache(ws, git_dir, own, skeleton, data)
        except BaseException:
            os.close(fd)
            os.unlink(lock)
            raise
        _merge_head(git_dir, own, merging)  # before the index: git sees both or neither
        _write_locked(git_dir, fd, data)
        _write_file(own, STAMP_FILE, stamp.encode())
        return True
    except OSError as exc:
        raise from_oserror(exc, git_dir) from exc
    finally:
        os.close(guard)


def _with_untracked_cache(
    ws: MountedFork, git_dir: str, own: str, skeleton: list[tuple[str, str | None]], data: bytes
) -> bytes:
    """``data`` (an index for the mount of ``git_dir``; ``skeleton``: its tree's directories
    and ``.gitignore`` files) with git's untracked cache saying every directory of the tree
    holds no untracked file (mount/untracked.py): the first ``git status`` then lists only
    the directories the fsmonitor hook names. The mount point is the registry record's,
    git's scratch files go in the mount's own directory ``own``."""
    from . import untracked

    mountpoint = (_owner(ws.vault, ws.fork) or {}).get("mountpoint")
    if not isinstance(mountpoint, str) or not mountpoint:
        return data
    ext = untracked.extension(
        ws.store, skeleton, data, mountpoint, git_dir, _gitignores_now(ws, skeleton), scratch=own
    )
    return data if ext is None else untracked.with_extension(data, ext)


def _gitignores_now(ws: MountedFork, skeleton: list[tuple[str, str | None]]) -> dict[str, bytes | None]:
    """The ``.gitignore`` files the fork shows now where they may differ from the base's
    (in the upper layer or the overlay's entries), by path (None: none there). git checks
    each directory's ``.gitignore`` against the one the untracked cache was made with: a
    wrong guess here costs a rescan, never a wrong answer; a missed one made the first
    status after mounting list every directory (a new top-level ``.gitignore``)."""
    upper = ws.overlay.upper_dir
    found = {
        f"{d}/.gitignore" if d else ".gitignore"
        for d in ["", *(p for p, oid in skeleton if oid is None)]
        if os.path.lexists(os.path.join(upper, d, ".gitignore"))
    }
    rows = ws.overlay.db.execute(
        "SELECT path FROM entries WHERE path = '.gitignore' OR path LIKE '%/.gitignore'"
    )
    found.update(str(r[0]) for r in rows)
    out: dict[str, bytes | None] = {}
    for path in found:
        try:
            out[path] = ws.read(path)
        except Exception:  # removed, a directory, unreadable: git reads what is there
            out[path] = None
    return out


def _patched_index(
    ws: MountedFork, git_dir: str, old_base: str, new_base: str, stat_of: StatFn, token: str
) -> bytes | None:
    """The index of ``git_dir`` (written for ``old_base``, perhaps changed by git since)
    with the paths where ``new_base`` differs set to its entries, and a new fsmonitor
    token; None when it is not an index this can patch (another version, unmerged
    entries, unreadable): then it is written whole."""
    import struct

    from ..core.store.treediff import diff_trees
    from ..core.types import Change

    data = _read_bytes(os.path.join(git_dir, "index"), MAX_INDEX)  # git's, or a confined command's
    if data is None or len(data) < 32 or data[:4] != b"DIRC" or data[4:8] != b"\0\0\0\2":
        return None
    store = ws.store
    changes: list[Change] = []
    try:
        diff_trees(store, store.commit_tree(old_base), store.commit_tree(new_base), "", changes)
    except Exception:  # the old base is gone (gc): write it whole
        return None
    entry = struct.Struct(">IIIIIIIIII20sH").pack
    repl: dict[bytes, bytes | None] = {}
    for c in changes:
        raw = c.path.encode("utf-8", "surrogateescape")
        if c.new_oid is None or c.new_mode is None:
            repl.setdefault(raw, None)
            continue
        ctime, mtime, ino, uid, gid, size = stat_of(c.path, c.new_mode, c.new_oid)
        n = len(raw)
        repl[raw] = (
            entry(ctime // 10**9, ctime % 10**9, mtime // 10**9, mtime % 10**9, 0, ino & 0xFFFFFFFF,
                  c.new_mode, uid, gid, size & 0xFFFFFFFF, bytes.fromhex(c.new_oid), min(n, 0xFFF))
            + raw + b"\0" * (8 - (62 + n) % 8)
        )  # fmt: skip
    import bisect

    count = int.from_bytes(data[8:12], "big")
    out: list[bytes] = []
    names: list[bytes] = []  # the entries' names, in git's order: where a new path goes
    keep, named = out.append, names.append
    off = 12
    end = len(data) - 20
    try:
        for _ in range(count):
            flags = int.from_bytes(data[off + 60 : off + 62], "big")
            if flags & 0x3000:
                return None  # unmerged entries: git is merging
            nl = flags & 0xFFF
            if nl == 0xFFF:
                nl = data.index(b"\0", off + 62) - off - 62
            size = (62 + nl + 8) & ~7
            if off + size > end:
                return None
            name = data[off + 62 : off + 62 + nl]
            if name in repl:
                new = repl.pop(name)
                if new is not None:
                    keep(new)
                    named(name)
            else:
                keep(data[off : off + size])
                named(name)
            off += size
    except ValueError:
        return None
    for name, new in sorted(repl.items()):  # paths the index did not hold
        if new is not None:
            at = bisect.bisect_left(names, name)
            names.insert(at, name)
            out.insert(at, new)
    body = b"DIRC" + struct.pack(">II", 2, len(out)) + b"".join(out)
    # git's cache tree, which git status never rebuilds: kept, but for the directories on
    # the changed paths (the untracked cache is left out: git lists every directory once)
    cache_tree = _cache_tree_without(data, off, [c.path for c in changes])
    if cache_tree is not None:
        body += b"TREE" + struct.pack(">I", len(cache_tree)) + cache_tree
    ewah = struct.pack(">II", 0, 1) + struct.pack(">Q", 0) + struct.pack(">I", 0)
    ext = struct.pack(">I", 2) + token.encode() + b"\0" + struct.pack(">I", len(ewah)) + ewah
    body += b"FSMN" + struct.pack(">I", len(ext)) + ext
    return body + hashlib.sha1(body).digest()


def _cache_tree_without(index: bytes, off: int, paths: Sequence[str]) -> bytes | None:
    """The ``TREE`` extension of ``index`` (its extensions start at ``off``) with the
    directories holding any of ``paths`` (and the root) invalidated (entry count -1, no
    tree id: git's own way); None when the index has none or it cannot be read."""
    import struct

    end = len(index) - 20
    data = None
    while off + 8 <= end:
        size = int.from_bytes(index[off + 4 : off + 8], "big")
        if index[off : off + 4] == b"TREE":
            data = index[off + 8 : off + 8 + size]
            break
        off += 8 + size
    if data is None:
        return None
    dirs = {""}
    for p in paths:
        while "/" in p:
            p = p.rsplit("/", 1)[0]
            dirs.add(p)
    out: list[bytes] = []
    at = 0

    def one(prefix: str) -> None:
        nonlocal at
        nul = data.index(b"\0", at)
        name = data[at:nul]
        nl = data.index(b"\n", nul)
        count, subs = (int(x) for x in data[nul + 1 : nl].split())
        at = nl + 1
        text = name.decode("utf-8", "surrogateescape")
        path = f"{prefix}/{text}" if prefix and text else (text or prefix)
        oid = b""
        if count >= 0:
            oid = data[at : at + 20]
            at += 20
        if count < 0 or path in dirs:
            out.append(name + b"\0" + b"-1 %d\n" % subs)
        else:
            out.append(name + b"\0" + b"%d %d\n" % (count, subs) + oid)
        for _ in range(subs):
            one(path)

    try:
        one("")
    except (ValueError, IndexError, struct.error):
        return None
    return b"".join(out) if at == len(data) else None


def _merge_head(git_dir: str, own: str, merging: dict[str, Any] | None) -> None:
    """An open avfs merge is git's merge in the mount: ``MERGE_HEAD`` (so ``git commit``
    there makes the two-parent commit, once ``git add`` resolved the unmerged paths) and
    ``MERGE_MSG``; removed when it ends (only those avfs wrote: the marker file in the
    mount's own directory ``own`` says)."""
    marker = os.path.join(own, MERGE_MARKER)
    head = os.path.join(git_dir, "MERGE_HEAD")
    if merging is not None:
        _write_file(git_dir, "MERGE_MSG", str(merging.get("message") or "").encode(), via=own)
        _write_file(git_dir, "MERGE_HEAD", f"{merging['theirs']}\n".encode(), via=own)
        _write_file(own, MERGE_MARKER, str(merging["theirs"]).encode())
        return
    ours = _read_text(marker)
    if ours is None:
        return
    if _read_text(head) == f"{ours}\n":
        for name in ("MERGE_HEAD", "MERGE_MSG", "MERGE_MODE"):
            try:
                os.unlink(os.path.join(git_dir, name))
            except FileNotFoundError:
                pass
    os.unlink(marker)


def _open_guard(own: str) -> int:
    """The descriptor of the mount's index lock file (``LOCK_FILE`` in ``own``) to flock."""
    return os.open(os.path.join(own, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)


class _Live(NamedTuple):
    """A live mount of a fork, as its registry record says and the kernel confirms."""

    git_dir: str  # the worktree's git dir (git's; a confined command can write it)
    files: str  # the mount's own directory (files_dir)
    uid: int
    gid: int
    pid: int  # its daemon
    overlay: bool  # the overlay backend (else pure FUSE)


def _live_mount(ws: MountedFork) -> _Live | None:
    """The live mount of ``ws``'s fork, or None: from its registry record (which no
    confined command can write), its daemon running and the kernel listing the mount."""
    vault = ws.vault
    rec = _owner(vault, ws.fork)
    if rec is None:
        return None
    try:
        pid, uid, gid = int(rec["pid"]), int(rec["uid"]), int(rec["gid"])
    except (ValueError, KeyError, TypeError):
        return None
    if not _live(vault, ws.fork, pid, rec):
        return None  # a daemon killed with -9 left it: nobody runs git there
    return _Live(
        worktree_dir(vault, ws.fork),
        files_dir(vault, ws.fork),
        uid,
        gid,
        pid,
        rec.get("backend") == "overlay",
    )


def _live(vault: MountedVault, key: str, pid: int, rec: dict[str, Any]) -> bool:
    """Whether the daemon ``pid`` of record ``rec`` (mount ``key`` of ``vault``) serves its
    mount now: this process (the daemon itself, which asks before its mount is up), or a
    running mount daemon whose mount point the kernel lists as that mount (its source is
    ``avfs:VAULT:KEY``): defence in depth beside the record's own safety."""
    from ..core.store.locks import pid_alive

    if pid == os.getpid():
        return True
    if pid <= 0 or not pid_alive(pid) or not is_mount_daemon(pid):
        return False
    mp = rec.get("mountpoint")
    if not isinstance(mp, str) or not os.path.isabs(mp):
        return False
    # the parent resolved, not the mount point itself (a lookup there is a FUSE request)
    target = os.path.join(os.path.realpath(os.path.dirname(mp)), os.path.basename(mp))
    return mounted_as(target, f"avfs:{vault.name}:{key}")


_owner_cache: dict[str, tuple[tuple[int, int, int], dict[str, Any] | None]] = {}


def _owner(vault: MountedVault, key: str) -> dict[str, Any] | None:
    """The registry record of mount ``key`` of ``vault`` (core/vaults/registry.py: its owner data,
    in ``<vault>/avfs``, never in the worktree's git dir), cached by its inode and time:
    read on every change the CLI makes to a fork, to know whether it goes through an
    overlay mount."""
    path = record_path(vault.state_dir, key)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        _owner_cache.pop(path, None)
        return None
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    hit = _owner_cache.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    data = read_record(path)
    _owner_cache[path] = (stamp, data)
    return data


def overlay_mountpoint(vault: MountedVault, fork: str) -> str | None:
    """The mount point of ``fork``'s live mount when the overlay backend serves it (its
    changes then go through the mount point: core/workspace/livedir.py), else None."""
    owner = _owner(vault, fork)
    if not owner or owner.get("backend") != "overlay":
        return None
    try:
        pid = int(owner["pid"])
    except (KeyError, TypeError, ValueError):
        return None
    if not _live(vault, fork, pid, owner):
        return None
    mp = owner.get("mountpoint")
    return str(mp) if mp else None


def open_wake(files: str) -> int:
    """The daemon's end of the wake-up FIFO in its own directory ``files`` (made by
    :func:`register`): opened read-write, so it never reads end-of-file when no mover has
    it open."""
    flags = os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(os.path.join(files, WAKE_FIFO), flags)


def acknowledge(files: str, view: tuple[str | None, str | None], seq: int = 0) -> None:
    """Called by the daemon's watcher (``files``: its own directory): the mount serves
    ``view`` (base, view time), the kernel no longer caches anything of the previous one,
    nor anything the journal holds up to position ``seq``."""
    try:
        _write_file(files, ACK_FILE, f"{view[0]} {view[1]} {seq}".encode())
    except OSError:
        pass  # unmounting


def live_fuse_mount(ws: MountedFork) -> bool:
    """Whether ``ws``'s fork has a live pure-FUSE mount (not the overlay backend)."""
    live = _live_mount(ws)
    return live is not None and not live.overlay


def show_written(ws: MountedFork, seq: int) -> None:
    """After a change this process journaled (up to position ``seq``) in a fork with a live
    pure-FUSE mount served by another process: wait until the mount's watcher has made the
    kernel forget what it cached of those paths, so the mount shows the change when the
    call returns, as the overlay backend does (bounded, like a move of the base)."""
    live = _live_mount(ws)
    if live is None or live.pid == os.getpid():
        return
    if live.overlay:
        return  # its changes went through the mount: the kernel has them already
    _wake(live.files)
    _await_ack(ws, live.files, live.pid, seq)


def _wake(files: str) -> None:
    try:
        fd = os.open(
            os.path.join(files, WAKE_FIFO), os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
        )
    except OSError:
        return  # no daemon reads it (ENXIO), or it is gone: it will poll
    try:
        os.write(fd, b"w")
    except OSError:
        pass  # full: a wake-up is pending anyway
    finally:
        os.close(fd)


def _await_ack(ws: MountedFork, files: str, pid: int, seq: int | None = None) -> None:
    """Wait until the mount's watcher says it serves the workspace's current view (and,
    with ``seq``, has handled the journal up to there); bounded: a hung daemon delays a
    change by ``ACK_WAIT_S`` at most, it cannot block it."""
    from ..core.store.locks import pid_alive

    path = os.path.join(files, ACK_FILE)
    deadline = time.monotonic() + ACK_WAIT_S
    pause = 0.0005
    while True:
        got = (_read_text(path) or "").split()
        current = [str(ws.overlay.get_meta("base")), str(ws.overlay.get_meta("view_time"))]
        if got[:2] == current and (seq is None or (len(got) > 2 and got[2].isdigit() and int(got[2]) >= seq)):
            return
        if time.monotonic() >= deadline or not pid_alive(pid):
            return
        time.sleep(pause)
        pause = min(pause * 2, 0.01)


def sync_mounted(ws: MountedFork, *, view_changed: bool = True) -> None:
    """After ``ws``'s base moved (called by the mover, the fork lock held): before the move
    returns, a live mount of its fork shows it: the mount's git index holds the new base
    (so ``git status`` and ``git commit`` run there right afterwards see what the workspace
    shows), and, when what the workspace shows changed (``view_changed``: a restore, an
    undo, a merge; not a checkpoint), the daemon has dropped the kernel's caches of the
    old view (so a ``cat`` does too)."""
    if ws.pinned is not None:
        return
    live = _live_mount(ws)
    if live is None:
        return
    # the kernel shows at once what went through an overlay mount: no caches to drop; its
    # index is still written whole when the view changed (a patch of the old one would keep
    # what git staged there, which a restore or undo throws away as `git reset --hard` does)
    drop_caches = view_changed and not live.overlay
    if drop_caches:
        _wake(live.files)  # the watcher drops the caches while the index is written
    sync_index(ws, live.git_dir, live.uid, live.gid, view_changed=view_changed)
    if drop_caches:
        # the view and the journal up to the move: two moves within one second onto one base
        # have one (base, view time), and only the journal tells the second from the first
        _await_ack(ws, live.files, live.pid, ws.overlay.last_seq())


def _read_git_file(path: str, *, tail: bool = False, limit: int = 4096) -> bytes | None:
    """At most ``limit`` bytes of a file git writes in the worktree's git dir (its first
    ones, or with ``tail`` its last ones); None when it is not a regular file. Whatever runs
    in the mount (a confined command too) can write there: never through a symlink (a host
    file's bytes would reach avfs's output), never blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return os.pread(fd, limit, max(0, st.st_size - limit) if tail else 0)
    except OSError:
        return None
    finally:
        os.close(fd)


def _committed_here(git_dir: str, commit: str) -> bool:
    """Whether the last move of HEAD that git logged in this worktree made ``commit`` (its
    ``logs/HEAD`` read as untrusted: no symlink followed, its last 4 KiB)."""
    import stat

    try:
        logs = os.open(
            os.path.join(git_dir, "logs"), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        )
    except OSError:
        return False
    try:
        fd = os.open("HEAD", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=logs)
    except OSError:
        return False
    finally:
        os.close(logs)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        os.lseek(fd, max(0, st.st_size - 4096), os.SEEK_SET)
        lines = os.read(fd, 4096).splitlines()
    except OSError:
        return False
    finally:
        os.close(fd)
    last = lines[-1].split(b" ", 2) if lines else []
    return len(last) >= 2 and last[1].decode("ascii", "replace") == commit


def moved_here(ws: MountedFork, commit: str) -> bool:
    """Whether git in the live mount of ``ws``'s fork made the last move of its HEAD (the
    worktree's HEAD log), to ``commit``, HEAD naming the fork's branch: a commit, amend,
    reset, rebase or merge there. A push, or avfs's own moves, log no HEAD there."""
    from ..core.store.refs import fork_ref

    live = _live_mount(ws)
    if live is None:
        return False
    if (
        _read_git_file(os.path.join(live.git_dir, "HEAD"), limit=1024)
        != f"ref: {fork_ref(ws.fork)}\n".encode()
    ):
        return False
    return _committed_here(live.git_dir, commit)


# git's own operations left open in a worktree's git dir (git's wt-status.c reads the same)
_GIT_IN_PROGRESS = (
    ("rebase-merge", "rebase"),
    ("rebase-apply", "rebase"),
    ("CHERRY_PICK_HEAD", "cherry-pick"),
    ("REVERT_HEAD", "revert"),
    ("MERGE_HEAD", "merge"),
    ("BISECT_LOG", "bisect"),
)


def git_state(ws: MountedFork) -> dict[str, str | None] | None:
    """Where git in the live mount of ``ws``'s fork left its HEAD, when not on the fork's
    branch, or what of git's own it left open (a rebase, merge, cherry-pick, revert,
    bisect): ``{"head": "refs/heads/X" | None (detached) , "detached": COMMIT | None,
    "in_progress": "rebase" | ... | None}``; None when HEAD names the fork's branch and
    nothing is open (or no mount is live). An open merge of avfs's own (its ``MERGE_HEAD``,
    core/workspace/mergestate.py) is not git's."""
    from ..core.store.refs import REFS, fork_ref

    live = _live_mount(ws)
    if live is None:
        return None
    d = live.git_dir
    raw = (_read_git_file(os.path.join(d, "HEAD"), limit=1024) or b"").decode("utf-8", "replace").strip()
    head: str | None = fork_ref(ws.fork)
    detached: str | None = None
    if raw.startswith(f"ref: {REFS}") and "\n" not in raw:
        head = raw[5:].strip()
    else:
        # a detached HEAD is a commit id; anything else is named as unreadable, not shown
        head, detached = None, raw if re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", raw) else "(unreadable)"
    doing: str | None = None
    for name, what in _GIT_IN_PROGRESS:
        if not os.path.lexists(os.path.join(d, name)):
            continue
        if name == "MERGE_HEAD" and _read_text(os.path.join(live.files, MERGE_MARKER)) is not None:
            continue  # avfs's own open merge: core/workspace/mergestate.py says what it is
        doing = what
        break
    if head == fork_ref(ws.fork) and doing is None:
        return None
    return {"head": head, "detached": detached, "in_progress": doing}


def stamp_current(ws: MountedFork) -> None:
    """The base moved to a commit that already recorded what the workspace shows. Made by
    ``git commit`` in the mount, git's index is right (and may hold what was staged since):
    it is marked current, so nothing rewrites it; made elsewhere, the index is rewritten."""
    live = _live_mount(ws)
    if live is None:
        return
    if not _committed_here(live.git_dir, ws.base):
        sync_index(ws, live.git_dir, live.uid, live.gid)
        return
    try:
        guard = _open_guard(live.files)
    except OSError:
        return  # unmounted meanwhile
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)
        view = _read_view(ws)
        stamp, merging = view.stamp, view.merging
        _merge_head(live.git_dir, live.files, merging)  # git removed its MERGE_HEAD when it committed
        _write_file(live.files, STAMP_FILE, stamp.encode())
    except OSError:
        pass
    finally:
        os.close(guard)


SCRUB_MAX = 100_000  # entries looked at in a worktree's git dir after a command, at most


def put_head(vault: MountedVault, key: str, head: bytes) -> None:
    """Write mount ``key``'s worktree ``HEAD`` (a confined command may have made it anything:
    replaced by a rename from the mount's own directory, never written through)."""
    try:
        _write_file(worktree_dir(vault, key), "HEAD", head, via=files_dir(vault, key))
    except OSError as exc:
        raise from_oserror(exc, worktree_dir(vault, key)) from exc


def scrub(vault: MountedVault, key: str) -> list[str]:
    """After a confined command (which could write the git dir of mount ``key``'s worktree),
    remove whatever it left there that is neither a regular file nor a directory, at any
    depth: a symlink (the person's plain git follows one: a ``logs`` link to a host
    directory would have the next ``git commit`` append its reflog there), a FIFO (git
    would block on it), a socket or a device node. Walked by directory descriptors, no
    link followed; the command and its sandbox are gone, so nothing races the walk.
    Returns the paths removed, relative to the git dir."""
    import stat

    removed: list[str] = []
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        top = os.open(worktree_dir(vault, key), flags)
    except OSError:
        return removed
    todo: list[tuple[int, str]] = [(top, "")]
    seen = 0
    while todo:
        fd, rel = todo.pop()
        try:
            with os.scandir(fd) as it:
                entries = list(it)
            for e in entries:
                seen += 1
                if seen > SCRUB_MAX:
                    break
                try:
                    mode = os.lstat(e.name, dir_fd=fd).st_mode
                except OSError:
                    continue
                path = f"{rel}{e.name}"
                if stat.S_ISDIR(mode):
                    try:
                        todo.append((os.open(e.name, flags, dir_fd=fd), path + "/"))
                    except OSError:
                        pass
                elif not stat.S_ISREG(mode):
                    try:
                        os.unlink(e.name, dir_fd=fd)
                        removed.append(path)
                    except OSError:
                        pass
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def unregister(reg: Registered) -> None:
    """Remove a mount's worktree and its own directory (at unmount)."""
    shutil.rmtree(reg.git_dir, ignore_errors=True)
    shutil.rmtree(reg.files, ignore_errors=True)
