"""What a confined command may write of the vault, and what of it avfs carries back.

git in the mounted fork needs to write the vault to commit: objects, its branch, reflogs.
Letting the sandbox write the vault's own ``objects/``, ``refs/`` and ``logs/`` lets it
move any ref (another fork's branch, checkpoints and recovery refs, tags, ``refs/replace``:
review deception for ``git diff`` and ``avfs merge``) and, as root, overwrite existing loose
objects and packs. So the sandbox gets scratch copies instead (:func:`prepare`, bound by
:mod:`.confine` over the real directories), under ``<vault>/avfs/seal/<fork>/``:

- ``refs/``: the fork's own branch (and any loose head git could not read from a
  ``packed-refs`` line); the other branches and the vault's tags are lines of a
  ``packed-refs`` avfs writes and shows read-only over the vault's (:mod:`.sealpack`)
  (``git tag X``, ``git tag -d X`` work in there on the scratch and that file, and are
  reported: a tag is every fork's, so none is carried out); in a run with a network, the vault's loose remote-tracking refs
  as copies (``git fetch`` moves them; :mod:`.sealremotes` keeps them as the remote says
  them); the other directories of ``refs/`` (``avfs``...) are the vault's own, read-only. A ``refs/stash`` or any other ref the command makes
  lives and dies with the run;
- ``logs/``: a copy of the fork's own reflog (git appends to it when it commits);
- the fork's worktree git dir's ``logs/`` and ``refs/`` (HEAD's reflog, bisect refs): the
  run's own, empty but for a bisect's refs, which go on from run to run (:mod:`.bisectrefs`);
- the vault's top directory: ``<seal dir>/top``, its entries bound read-only into it by
  :mod:`.confine`, and the ``packed-refs`` of :mod:`.sealpack`, the sandbox's to rewrite;
- ``objects/``: an empty quarantine whose ``info/alternates`` names the vault's objects,
  shown read-only at ``<vault>/avfs/seal/<fork>/vault-objects`` (the way ``git
  receive-pack`` quarantines a push): git reads every existing object and writes new ones
  only here.

Right after the command exits, :func:`carry_back` reads the scratch's refs: a fetch's
remote-tracking refs go to :mod:`.sealremotes`, and ``refs/heads/<fork>``, when it moved
to a commit, is carried: the objects it needs (and only those) go from the
quarantine into the vault through ``git pack-objects``, ``git index-pack --strict`` (every
object hashed again and checked as ``git fsck --strict`` checks it: a ``.gitmodules`` that
is a directory, a broken link), its new commits may add no gitlink and no name git refuses,
and the real branch moves by compare-and-swap from its value before the run. Every other
ref change (a line of the sandbox's ``packed-refs`` too) is reported (``refs_refused``),
never applied. Then :func:`drop_gitlinks` takes
out of the mount's index any gitlink (a nested repository, mode 160000) that is not in the
fork's commit: git would run ``git status`` inside it, with its own ``core.fsmonitor``;
:func:`nested_repos` removes a ``.git`` the command made at a gitlink's path of the fork's
commit for the same reason, and git state the command left whose resumption runs
programs (a ``rebase-merge/`` todo list's ``exec`` lines, a cherry-pick's strategy, ``git
am``'s options, submodule git dirs: :mod:`.gitstate`) is removed by the carry-back.

The scratch directories are made once per fork and only emptied afterwards: a sandbox kept
ready (:mod:`.standby`) binds them before its command comes, and :func:`prepare` (under the
fork's exec lock, right before the command starts) refreshes what is in them.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from typing import TYPE_CHECKING, Any

from ..core.records import dataclass
from ..core.store import deeptree, refs
from ..core.store.names import fs_name
from ..core.vaults import keptstate
from ..core.workspace.untrusted import read_file
from . import bisectrefs, gitstate, heldlock, refwatch, sealobjects, sealpack, sealremotes, sealstaged
from .sealcache import LOG, QUARANTINE, SCRATCH, VAULT, RefCache, below, sync, vault_loose
from .sealpaths import move_refusal

if TYPE_CHECKING:
    from collections.abc import Collection

    from ..core.vaults.vault import Vault

_HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_LOOSE = re.compile(r"[0-9a-f]{2}")
_MAX_REF = 4096  # a ref file is one line: anything longer is not one
STASH = refs.STASH
LOCKS_LEFT = "locks-left"  # git's lock files a run left as a git of the person's ran (.gitstate)
TOP = "top"  # in the seal directory: the vault's top directory as the sandbox shows it
# refs/ directories the scratch holds (the fork's branch, the tags git tag makes there (the
# vault's are lines of the sandbox's packed-refs) and, for a run with a network, copies of the
# remote-tracking refs: git fetch moves them, .sealremotes); the others are the vault's,
# read-only. (Copies for every run cost a stat per loose ref and more: 25 ms of CPU a command
# at 2,000 remote-tracking refs, against 0.3 ms; the same for tags: docs/benchmarks.md)
COPIED = frozenset({"heads", "tags", "remotes"})
MAX_LISTED = 100  # other refs' changes listed in refs_refused; more: counted (docs/security.md)
TAG_REFUSED = "a tag is the vault's, every fork's: a confined command's tags live as long as its run"


@dataclass(frozen=True, slots=True)
class Sealed:
    """One run's scratch: what :mod:`.confine` binds, and what was copied into it."""

    dir: str
    fork: str
    # (source, target, writable) in bind order, after the vault is shown read-only
    binds: tuple[tuple[str, str, bool], ...]
    # (source, target): read-only, inside avfs's masked state directory
    state_binds: tuple[tuple[str, str], ...]
    copied: dict[str, bytes]  # ref name -> its file's bytes, as put into the scratch
    # ref name -> its line's id and a newline, as the read-only packed-refs shows it
    packed: dict[str, bytes]
    before: str | None  # the fork's branch before the run
    index: tuple[int, int, int, int] | None  # the mount's index (ino, size, mtime, ctime) before
    git_dir: str | None = None  # the mount's worktree git dir
    # git's state there that runs programs when resumed (.gitstate), the person's own:
    # shown read-only
    kept: tuple[gitstate.Kept, ...] = ()
    head: bytes | None = None  # the worktree's HEAD file before the run
    pinned: tuple[gitstate.Pinned, ...] = ()  # its config.worktree, commondir, gitdir before the run
    lock: gitstate.Locks = dataclasses.field(default_factory=dict)  # git's lock files there before the run
    fetch_head: sealremotes.Stat | None = None  # its FETCH_HEAD before the run
    cache: RefCache | None = dataclasses.field(default=None, compare=False)  # ref files as last read
    # the vault's top directory as the sandbox shows it, writable (its entries bound
    # read-only into it by .confine), holding the packed-refs avfs wrote: its bytes and
    # lstat as written; (that file, the vault's packed-refs) for a view that binds it
    top: str | None = None
    shown: bytes = b""
    shown_stat: tuple[int, int, int, int] | None = None
    shown_packed: tuple[str, str] | None = None
    # the vault's refs/ directories shown read-only over the scratch's (``remotes`` in a run
    # with no network): what the scratch holds beneath them is an earlier run's, not this one's
    shown_refs: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Carried:
    """What :func:`carry_back` did: the fork's branch moved (``moved``: old, new), the
    ref changes it did not apply (``refused``: {ref, old, new, reason}), and the
    remote-tracking refs a fetch moved that it kept (``fetched``: {ref, old, new})."""

    moved: tuple[str | None, str] | None
    refused: list[dict[str, Any]]
    fetched: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def seal_dir(vault: Vault, fork: str) -> str:
    return os.path.join(vault.state_dir, "seal", fs_name(fork))


def _remove(e: os.DirEntry[str]) -> None:
    """Remove a directory entry (a directory with all below it; never through a link)."""
    if e.is_dir(follow_symlinks=False):
        deeptree.rmtree(e.path, ignore_errors=True)
    else:
        try:
            os.unlink(e.path)
        except FileNotFoundError:
            pass


def _empty(d: str, keep: Collection[str] = ()) -> None:
    """Remove what is in ``d`` but the names in ``keep`` (never follows a symbolic link)."""
    with os.scandir(d) as it:
        for e in it:
            if e.name not in keep:
                _remove(e)


def _index_stat(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _vault_tags(vault_path: str, real_refs: str, cache: RefCache) -> tuple[dict[str, bytes], object]:
    """The vault's loose tags (ref name -> bytes) and a key that moves when they may have:
    from a mount daemon's watch (read again once one changed; the key its token), else each
    looked at (``lstat``, and read when it moved; the key the tags themselves)."""
    watch = refwatch.live(vault_path, "tags")
    if watch is None:
        tags = vault_loose(real_refs, cache, "tags")
        return tags, tags
    token, tags = watch.snapshot()
    return tags, token


def _shown(
    vault_path: str, fork_ref: str, real_refs: str, cache: RefCache
) -> tuple[sealpack.Shown, bytes | None]:
    """What :func:`.sealpack.split` gives for the sandbox (the other branches and the
    vault's loose tags as lines of its packed-refs: git tag, git tag -d work there on its
    scratch and that file, and are reported, never applied), and the fork's own branch
    file's bytes (None: it has none)."""
    tags, tags_key = _vault_tags(vault_path, real_refs, cache)
    watch = refwatch.live(vault_path)
    if watch is not None:  # a mount's daemon: the files events named read again, no walk
        shown = watch.shown(fork_ref, vault_path, sealpack.split, tags, tags_key)
        return shown, read_file(os.path.join(vault_path, fork_ref))  # the fork's own: always read
    loose = {**vault_loose(real_refs, cache, "heads"), **tags}
    own_now = loose.pop(fork_ref, None)
    return sealpack.split(vault_path, fork_ref, loose), own_now


def prepare(
    vault: Vault, fork: str, git_dir: str | None, fetch: bool = False, *, refresh: bool = True
) -> Sealed:
    """Make (or refresh) the fork's scratch for the next run; ``git_dir``: the mount's
    worktree git dir (its index is looked at afterwards), when there is one; ``fetch``: the
    run has a network, and gets copies of the remote-tracking refs (:data:`COPIED`).

    ``refresh`` False: the scratch's layout alone (its directories, what the sandbox binds
    and shows), what is in them left as the last run left it and none of the state before
    the run read (the result's ``copied``, ``before``, ``index``... are empty): what a first
    call's sandbox set up ahead binds (:mod:`.ahead`) before the call has taken its record
    of the fork. The call's own prepare, right before its command goes on, fills them and
    reads that state, as for a sandbox kept ready (:mod:`.standby`)."""
    laid = _laid_out(vault, fork, git_dir, fetch)
    if not refresh:
        return laid
    d, rd, ld, od = laid.dir, *(os.path.join(laid.dir, x) for x in ("refs", "logs", "objects"))
    real_refs, real_logs = (os.path.join(vault.path, x) for x in ("refs", "logs"))
    own = COPIED if fetch else COPIED - {"remotes"}  # (refs/ directories the scratch holds)
    subs = laid.shown_refs
    fork_ref = refs.fork_ref(fork)
    # the other branches go into the read-only packed-refs the sandbox shows (.sealpack);
    # the scratch holds the fork's own and any loose head a packed-refs line cannot hold
    cache = RefCache(d)
    (files, packed, rendered, own_packed), own_now = _shown(vault.path, fork_ref, real_refs, cache)
    copied = dict(files)
    if fetch:  # remote-tracking refs as copies: git fetch moves them (.sealremotes)
        copied.update(vault_loose(real_refs, cache, "remotes"))
    mine = own_now if own_now is not None else own_packed  # packed only in the vault: loose here
    if mine is not None:
        copied[fork_ref] = mine
    # the vault's top directory as the sandbox shows it (.confine._kept): its entries bound
    # read-only into it, and the packed-refs avfs writes, the sandbox's to rewrite
    snapshot = os.path.join(d, TOP, sealpack.NAME)
    shown_stat = sealpack.fresh(snapshot, rendered)
    # the directories shown from the vault are mount points in a sandbox made ready: kept
    sync(rd, {k[5:]: v for k, v in copied.items()}, cache, SCRATCH, {*own, *subs}, set(subs))
    log = read_file(os.path.join(real_logs, fork_ref))
    sync(ld, {fork_ref: log} if log is not None else {}, cache, LOG)
    _empty_quarantine(od, cache)
    cache.save((VAULT, SCRATCH, LOG, QUARANTINE))
    info = os.path.join(od, "info")
    if not os.path.isdir(info) or os.path.islink(info):
        _empty(od)
        os.makedirs(info)
    _empty(info, {"alternates"})
    # where the command sees the vault's objects (in the sandbox, under avfs's masked state)
    inside = laid.state_binds[0][1]
    alt = os.path.join(info, "alternates")
    try:
        with open(alt, "rb") as fh:
            same = fh.read() == (inside + "\n").encode()
    except OSError:
        same = False
    if not same:
        _empty(info)
        with open(alt, "w", encoding="utf-8") as fh:
            fh.write(inside + "\n")
    # where the vault's top is not the sandbox's own (a --isolate view): bound over the
    # vault's own packed-refs, read-only
    shown_packed: tuple[str, str] | None = None
    vault_packed = os.path.join(vault.path, sealpack.NAME)
    if os.path.isfile(vault_packed) and not os.path.islink(vault_packed):
        shown_packed = (snapshot, vault_packed)
    wt = git_dir if git_dir and os.path.isdir(git_dir) and not os.path.islink(git_dir) else None
    if wt is not None:
        # the worktree's own reflog and refs (HEAD's log, bisect...): the run's, so that
        # none of them names an object the vault never got (git fsck fails on one)
        for name in ("logs", "refs"):
            _empty(os.path.join(d, "wt" + name))
        bisectrefs.seed(os.path.join(wt, "refs"), os.path.join(d, "wtrefs"))  # a bisect goes on
    return dataclasses.replace(
        laid,
        copied=copied,
        packed=packed,
        shown=rendered,
        shown_stat=shown_stat,
        shown_packed=shown_packed,
        before=refs.read_ref_file(vault.path, fork_ref),
        index=_index_stat(os.path.join(git_dir, "index")) if git_dir else None,
        head=_read_small(os.path.join(git_dir, "HEAD")) if git_dir else None,
        pinned=gitstate.pinned(git_dir) if git_dir else (),
        lock=gitstate.locks_before(git_dir, os.path.join(d, LOCKS_LEFT)) if git_dir else {},
        fetch_head=sealremotes.fetch_head_stat(git_dir) if git_dir else None,
        cache=cache,
    )


def _laid_out(vault: Vault, fork: str, git_dir: str | None, fetch: bool) -> Sealed:
    """:func:`prepare`'s layout without its contents: the same directories made, the same
    binds (a sandbox set up from them is the one a refreshed scratch gives: the call's
    check of its key, :func:`.standby._key`, compares the two)."""
    d = seal_dir(vault, fork)
    rd, ld, od = (os.path.join(d, x) for x in ("refs", "logs", "objects"))
    for x in (rd, ld, od):
        os.makedirs(x, mode=0o755, exist_ok=True)
    real_refs, real_logs, real_objects = (os.path.join(vault.path, x) for x in ("refs", "logs", "objects"))
    os.makedirs(real_logs, exist_ok=True)  # git would make it: the bind needs it
    sealpack.ensure_vault_file(vault.path)  # (before the memo's key takes its lstat)
    own = COPIED if fetch else COPIED - {"remotes"}
    subs = sorted({e.name for e in os.scandir(real_refs) if e.is_dir(follow_symlinks=False)} - own)
    top = os.path.join(d, TOP)
    os.makedirs(top, mode=0o755, exist_ok=True)
    sealpack.tidy_top(top, vault.path)  # (a bind into it fails on an entry of another kind)
    inside = os.path.join(d, "vault-objects")
    os.makedirs(inside, exist_ok=True)
    binds: list[tuple[str, str, bool]] = [(rd, real_refs, True)]
    binds += [(os.path.join(real_refs, s), os.path.join(real_refs, s), False) for s in subs]
    binds += [(ld, real_logs, True), (od, real_objects, True)]
    kept: tuple[gitstate.Kept, ...] = ()
    if git_dir and os.path.isdir(git_dir) and not os.path.islink(git_dir):
        for name in ("logs", "refs"):
            scratch, real = os.path.join(d, "wt" + name), os.path.join(git_dir, name)
            os.makedirs(scratch, exist_ok=True)
            if os.path.islink(real) or (os.path.lexists(real) and not os.path.isdir(real)):
                os.unlink(real)  # a command made it something else: the vault's path again
            os.makedirs(real, exist_ok=True)
            binds.append((scratch, real, True))
        # a person's rebase, cherry-pick, am, submodules in the mount: their state (which
        # runs programs when git resumes it) is read-only in there
        kept = gitstate.kept(git_dir)
        binds += [(os.path.join(git_dir, n), os.path.join(git_dir, n), False) for n, *_ in kept]
    return Sealed(
        dir=d,
        fork=fork,
        binds=tuple(binds),
        state_binds=((real_objects, inside),),
        copied={},
        packed={},
        before=None,
        index=None,
        git_dir=git_dir,
        kept=kept,
        top=top,
        shown_refs=frozenset(subs),
    )


def _read_small(path: str) -> bytes | None:
    """A regular file's first bytes (never through a symbolic link), None when it is not one."""
    return read_file(path, _MAX_REF + 1, prefix=True)


def _scratch_refs(sealed: Sealed) -> dict[str, bytes]:
    """The refs the scratch holds now: name -> bytes (what is not a regular file: b"")."""
    out: dict[str, bytes] = {}
    root = os.path.join(sealed.dir, "refs")
    for dirpath, dirs, files in deeptree.walk(root):  # (never enters a symbolic link)
        if dirpath == root:
            # (found in the sixteenth round, NAME=attack7: a networked run's copies of the
            # remote-tracking refs, left beneath the vault's read-only ``remotes``, were
            # listed in every later run's refs_refused as new refs "no fetch moved")
            dirs[:] = [x for x in dirs if x not in sealed.shown_refs]
        for fn in files + [x for x in dirs if os.path.islink(os.path.join(dirpath, x))]:
            if fn.endswith(".lock"):
                continue  # a git killed while it held a lock
            p = f"{dirpath}/{fn}"
            rel = below(p, root)
            # (the key sync gave the same file before the run)
            cache = sealed.cache
            data = _read_small(p) if cache is None else cache.read(SCRATCH + rel, p, _read_small)
            out[refs.REFS + rel] = b"" if data is None else data
    if sealed.cache is not None:
        sealed.cache.save((SCRATCH,))
    return out


def _show(value: bytes | None) -> str | None:
    if value is None:
        return None
    return value[:200].decode("utf-8", "replace").strip()


def carry_back(vault: Vault, sealed: Sealed, network: str | None = None, moving: Any = None) -> Carried:
    """After the command: move the fork's branch as the command moved it in the scratch
    (validated, by compare-and-swap from its value before the run), report every other ref
    change without applying it, and empty the quarantine. git's state the person's git
    would run programs from is taken out whatever became of the refs (found in the
    thirteenth round, NAME=attack4: a step that raised left it there). ``network``: the
    sandbox's (none | host | filtered): a remote-tracking ref is kept only from a run that
    had one (:mod:`.sealremotes`). ``moving(old, new, message)``: called right before the branch moves."""
    # the worktree's HEAD as it was, while objects are carried: git's `--all` counts every
    # worktree's HEAD as reached, and one the command detached at its new commit would make
    # that commit's objects look present already (:func:`_settle_head` then sets it)
    head = _head_before(vault, sealed)
    refused: list[dict[str, Any]] = []
    fetched: list[dict[str, Any]] = []
    try:
        moved = _carry_refs(vault, sealed, refused, fetched, network, moving)
    finally:
        if sealed.git_dir is not None:
            # a rebase, cherry-pick, am the command left unfinished, submodule git dirs it
            # made: the person's git would run programs they name, outside
            keep_dir = keptstate.fork_dir(vault.state_dir, sealed.fork)
            try:
                refused += gitstate.remove_made(sealed.git_dir, sealed.kept, keep_dir)
            finally:
                put = gitstate.putter(vault, sealed.fork)
                refused += gitstate.pinned_back(sealed.git_dir, sealed.pinned, put)
                held = functools.partial(heldlock.why_not, vault, sealed.fork, scratch=sealed.dir)
                left = os.path.join(sealed.dir, LOCKS_LEFT)
                refused += gitstate.stale_lock(sealed.git_dir, sealed.lock, held, left)
    if head is not None:
        settled = _settle_head(vault, sealed, head)
        if settled is not None:
            refused.append(settled)
    if sealed.git_dir is not None:
        refused += bisectrefs.keep(vault, os.path.join(sealed.dir, "wtrefs"), sealed.git_dir)
        refused += sealremotes.fetch_head_back(vault, sealed.git_dir, sealed.fetch_head)
    if sealed.git_dir is not None and _index_stat(os.path.join(sealed.git_dir, "index")) != sealed.index:
        # the blobs the command's `git add` wrote: into the vault (checked), or out of the index
        refused += sealstaged.keep_staged(
            vault, sealed.git_dir, os.path.join(sealed.dir, "objects"), sealed.fork
        )
    if network not in (None, "none"):
        # git's reflog lines of a pull name the command's arguments as given, a URL with a
        # token among them (a fetch's are anonymized): the scratch's copies go now, not at
        # the next run (the fork's is copied in again then; the vault's has avfs's message)
        for name in ("logs", "wtlogs"):
            if os.path.isdir(os.path.join(sealed.dir, name)):
                _empty(os.path.join(sealed.dir, name))
    _empty_quarantine(os.path.join(sealed.dir, "objects"), sealed.cache)
    _drop_written(vault, sealed, network not in (None, "none"))
    if sealed.cache is not None:
        sealed.cache.save((QUARANTINE, SCRATCH, LOG))
    return Carried(moved=moved, refused=refused, fetched=fetched)


def _drop_written(vault: Vault, sealed: Sealed, fetch: bool) -> None:
    """What the command wrote into the scratch goes with its run, as the quarantine's
    objects do: the refs and reflog copies made again as the next run's :func:`prepare`
    makes them (which then finds nothing to do), the worktree's ``logs/`` and ``refs/`` the
    run's own (its bisect refs already kept), the top directory tidied. Kept to the next
    run, they were counted by no quota (found in the nineteenth round, NAME=attack10: 24
    MiB in the worktree's ``logs/`` under a 20 MiB quota, the commit let through, the bytes
    there until the fork's next run, for ever once it was deleted)."""
    d, cache = sealed.dir, sealed.cache
    if cache is None:  # (a scratch laid out only: nothing was copied in, nothing ran)
        return
    for name in ("wtlogs", "wtrefs"):
        if os.path.isdir(os.path.join(d, name)):
            _empty(os.path.join(d, name))
    own = COPIED if fetch else COPIED - {"remotes"}
    subs = sealed.shown_refs
    sync(
        os.path.join(d, "refs"),
        {k[5:]: v for k, v in sealed.copied.items()},
        cache,
        SCRATCH,
        {*own, *subs},
        subs,
    )
    fork_ref = refs.fork_ref(sealed.fork)
    log = read_file(os.path.join(vault.path, "logs", fork_ref))
    sync(os.path.join(d, "logs"), {fork_ref: log} if log is not None else {}, cache, LOG)
    if sealed.top is not None:
        sealpack.tidy_top(sealed.top, vault.path)
        snapshot = os.path.join(sealed.top, sealpack.NAME)
        now = sealpack.stat_key(snapshot)
        if now is not None and now != sealed.shown_stat:  # rewritten: made anew before the next run
            if os.path.isdir(snapshot) and not os.path.islink(snapshot):
                deeptree.rmtree(snapshot)
            else:
                os.unlink(snapshot)


def _carry_refs(
    vault: Vault,
    sealed: Sealed,
    refused: list[dict[str, Any]],
    fetched: list[dict[str, Any]],
    network: str | None,
    moving: Any = None,
) -> tuple[str | None, str] | None:
    """:func:`carry_back`'s refs: the fork's branch moved (old, new) or None; what was not
    applied appended to ``refused``, the remote-tracking refs kept to ``fetched``."""
    fork_ref = refs.fork_ref(sealed.fork)
    now = _scratch_refs(sealed)
    moved: tuple[str | None, str] | None = None
    names, packed_after = _packed_after(vault.path, sealed, now)
    changed: list[tuple[str, bytes | None, bytes | None]] = []
    for name in sorted(names):
        # a loose file over a packed ref: before the run, git saw the packed line; after
        # it, a ref with no loose file is its packed line (git pack-refs), or gone
        before = sealed.copied.get(name, sealed.packed.get(name))
        after = now.get(name, packed_after.get(name))
        if before != after:
            changed.append((name, before, after))
    # a fetch's remote-tracking refs first: the fork's branch rebased on what it fetched
    # then brings only its own commits
    remote = [c for c in changed if sealremotes.is_remote(c[0])]
    kept, said = sealremotes.carry(vault, os.path.join(sealed.dir, "objects"), remote, network)
    fetched += kept
    refused += said[:MAX_LISTED]
    unlisted = max(0, len(said) - MAX_LISTED)
    for name, before, after in changed:
        if sealremotes.is_remote(name):
            continue
        if name != fork_ref:
            other = "only the fork's own branch is carried out of the sandbox"
            if name.startswith(refs.TAGS):
                other = TAG_REFUSED
            stashed = (after or b"").strip().decode("ascii", "replace")
            if name == STASH and _HEX.fullmatch(stashed):
                # its commits are kept (unreferenced, until gc prunes them): the next run
                # brings the stash back with `git stash apply ID`
                lost = sealobjects.import_objects(vault, os.path.join(sealed.dir, "objects"), stashed)
                other = "a stash lives as long as its run; its commit is kept: `git stash apply ID` brings it back"
                if lost is not None:
                    other = f"a stash lives as long as its run; its commit could not be kept ({lost})"
            if len(refused) >= MAX_LISTED:
                unlisted += 1
                continue
            refused.append({"ref": name, "old": _show(before), "new": _show(after), "reason": other})
            continue
        why: str | None = None
        value = (after or b"").strip().decode("ascii", "replace")
        if after is None:
            why = "the command deleted the fork's branch"
        elif not _HEX.fullmatch(value):
            why = "not a full commit id"
        elif value == sealed.before:
            continue
        else:
            why = move_refusal(vault, sealed.fork, sealed.before, value, os.path.join(sealed.dir, "objects"))
            if why is None:
                try:
                    message = f"avfs proxy exec: {sealed.fork} moved by the command's git"
                    if moving is not None:
                        moving(sealed.before, value, message)
                    refs.cas_update(vault.store, fork_ref, value, sealed.before, message)
                    moved = (sealed.before, value)
                    if sealed.git_dir is not None:
                        from ..mount.worktree import log_head

                        log_head(sealed.git_dir, sealed.before, value, message)
                except Exception as exc:  # moved meanwhile, locked: said, not applied
                    why = str(getattr(exc, "message", exc))
        if why is not None:
            refused.append({"ref": name, "old": _show(before), "new": _show(after), "reason": why})
    if unlisted:
        why = f"{unlisted} more ref changes, not listed: none kept (only the fork's own branch is carried)"
        refused.append({"ref": refs.REFS, "old": None, "new": None, "reason": why})
    return moved


def _packed_after(
    vault_path: str, sealed: Sealed, now: dict[str, bytes]
) -> tuple[set[str], dict[str, bytes]]:
    """The refs to compare after the run (the scratch's and those whose line the command
    changed in the sandbox's packed-refs), and that file's lines as it left them:
    :func:`.sealpack.read_back`."""
    names = set(now) | set(sealed.copied)
    if sealed.top is None:
        return names, sealed.packed
    after = sealpack.read_back(vault_path, sealed.top, sealed.shown, sealed.shown_stat, sealed.packed)
    if after is None:
        return names, sealed.packed
    return names | after[0], after[1]


def _head_before(vault: Vault, sealed: Sealed) -> bytes | None:
    """When the command changed the worktree's ``HEAD``: put it back as it was before the
    run (or on the fork's branch) and return what the command left (``b""``: no regular
    file); None when it did not change it."""
    from ..core.vaults.registry import mount_key
    from ..mount.worktree import put_head

    if sealed.git_dir is None:
        return None
    now = _read_small(os.path.join(sealed.git_dir, "HEAD"))
    if now == sealed.head and now is not None:
        return None
    fork_ref = refs.fork_ref(sealed.fork)
    back = sealed.head
    if back is None or not (
        back == f"ref: {fork_ref}\n".encode() or _HEX.fullmatch(back.decode("ascii", "replace").strip())
    ):
        back = f"ref: {fork_ref}\n".encode()
    put_head(vault, mount_key(sealed.fork, None), back)
    return b"" if now is None else now


def _settle_head(vault: Vault, sealed: Sealed, now: bytes) -> dict[str, Any] | None:
    """The worktree's ``HEAD`` the command left (``now``; put back meanwhile by
    :func:`_head_before`): on the fork's branch, or detached at a commit (its objects
    carried into the vault, checked as the branch's are, the fork's rules too: ``avfs
    status`` then names the detached HEAD, checkpoints refuse until `git switch FORK`),
    it is set again; anything
    else (another fork's branch, which the person's next `git commit` would move; a link;
    not git's) stays put back, and is reported (None: nothing to say)."""
    from ..core.vaults.registry import mount_key
    from ..mount.worktree import put_head

    key = mount_key(sealed.fork, None)
    fork_ref = refs.fork_ref(sealed.fork)
    if now == f"ref: {fork_ref}\n".encode():
        put_head(vault, key, now)
        return None
    value = now.decode("ascii", "replace")
    if _HEX.fullmatch(value.rstrip("\n")) and value.count("\n") <= 1:
        commit = value.strip()
        # (checked as the branch's move is: the fork's rules hold a detached HEAD's commits too)
        why = move_refusal(vault, sealed.fork, sealed.before, commit, os.path.join(sealed.dir, "objects"))
        if why is None:
            put_head(vault, key, f"{commit}\n".encode())
            return None
    elif value.startswith("ref: "):
        why = "the mount stays on its fork's branch (a switch there is switched back: docs/fuse.md)"
    else:
        why = "not a HEAD git writes"
    return {"ref": "HEAD", "old": _show(sealed.head), "new": _show(now) if now else None, "reason": why}


def _empty_quarantine(od: str, cache: RefCache | None = None) -> None:
    """Empty the quarantine but for ``info/`` and git's fan-out directories (kept, empty:
    making one costs ~1.4 ms on ext4 here, more than the run's git did); with ``cache``,
    one found empty and unchanged since is not listed again (up to 256, twice a call)."""
    with os.scandir(od) as it:
        for e in it:
            if _LOOSE.fullmatch(e.name) and e.is_dir(follow_symlinks=False):
                if cache is None:
                    _empty(e.path)
                else:
                    cache.emptied(QUARANTINE + e.name, e.path, _empty)
            elif e.name != "info":
                _remove(e)
