"""What of a lazy vault's forks is local, and fetching it on purpose: ``avfs stats``'s
``lazy`` part and ``avfs vault hydrate [PATH...]`` (docs/lazy.md, "What is local" and
"Fetching ahead: hydrate").

Both look at a fork's committed tree (its tip, what a mount of it shows below the overlay):
the overlay's files are local by construction. A blob two files share is counted once.
A blob's size is its header's when the vault holds it, else the size cache's
(:meth:`.promisor.Promisor.size`) where the server said it; a promised blob of unknown size
is counted apart (``promised_size_unknown``), never guessed.

``hydrate`` fetches the promised blobs under the paths in batches (:data:`BATCH_BLOBS`
blobs or :data:`BATCH_BYTES` of known sizes, whichever comes first), each one ``git
fetch`` through the vault's promisor (its credentials and timeout: docs/lazy.md). A batch
is whole or absent (git writes a pack, or a loose object, only once it has it all): a fetch
that fails leaves the batches before it in the vault and nothing of its own, and says how far
it got.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import BlobNotLocalError, PathNotFoundError
from ..records import dataclass
from ..store import names, refs
from ..store.prefetch import object_store_bytes
from ..types import MODE_COMMIT, MODE_TREE, to_json
from ..workspace.pathguard import refusal

if TYPE_CHECKING:
    from ..store.gitstore import GitStore
    from ..vaults.vault import Vault

BATCH_BLOBS = 2000  # blobs per git fetch of a hydrate
BATCH_BYTES = 32 << 20  # known bytes per git fetch of a hydrate (one fetch's timeout must hold it)

# progress of a hydrate: (blobs fetched, blobs to fetch, bytes fetched)
Progress = Callable[[int, int, int], None]


@dataclass(frozen=True, slots=True)
class Locality:
    """What of a set of files is local (counts of distinct blobs; bytes of their contents)."""

    files: int  # files and symbolic links (submodules aside)
    blobs: int
    blobs_local: int
    bytes_local: int
    blobs_promised: int
    bytes_promised: int  # of the promised blobs whose size is known
    promised_size_unknown: int  # promised blobs the size cache has no size for


@dataclass(frozen=True, slots=True)
class ForkLocality:
    """:class:`Locality` of one fork's committed tree (under the paths asked)."""

    name: str
    commit: str | None
    local: Locality


@dataclass(frozen=True, slots=True)
class HydrateResult:
    """What ``avfs vault hydrate`` fetched."""

    vault: str
    fork: str
    commit: str | None
    paths: list[str]  # as asked ([]: the whole tree)
    lazy: bool  # False: a whole vault, nothing to fetch
    files: int
    blobs: int
    already_local: int
    fetched_blobs: int
    fetched_bytes: int  # contents of the blobs fetched
    disk_bytes: int  # what the vault's object store grew by (compressed, packed)
    batches: int
    local: Locality  # after

    def to_json(self) -> dict[str, Any]:
        return dict(to_json(self))


def tree_blobs(
    vault: Vault, fork: str, tree: str | None, paths: Iterable[str], op: str
) -> tuple[dict[str, str], int]:
    """(blob id -> the first path that has it, number of files) of ``tree`` under ``paths``
    (each a file or a directory of the tree; none: all of it).

    Raises:
        InvalidPathError: a path that is not one.
        PathNotFoundError: a path the tree does not have.
        PathProtectedError: a path the fork's policy hides (``op`` names what was refused).
    """
    store = vault.store
    guard = vault.path_guard(fork)
    starts: list[tuple[str, str, int]] = []  # (path, oid, mode)
    for raw in paths:
        p = names.norm_path(raw)
        hit = store.tree_lookup(tree, p) if tree else (None if p else ("", MODE_TREE))
        if hit is None:
            raise PathNotFoundError(f"{p}: no such file or directory in fork {fork}", details={"path": p})
        held = guard.match(p, is_dir=hit[1] == MODE_TREE) if p and not guard.empty else None
        if held is not None and held.kind == "hidden":
            raise refusal(held, p, op)
        starts.append((p, hit[0], hit[1]))
    if not starts:
        starts = [("", tree or "", MODE_TREE)]
    out: dict[str, str] = {}
    files = 0
    seen: set[str] = set()  # paths already walked (a path inside another one asked)
    for path, oid, mode in sorted(starts):
        if any(path == s or path.startswith(s + "/") or not s for s in seen):
            continue
        seen.add(path)
        if mode != MODE_TREE:
            if mode != MODE_COMMIT:
                files += 1
                out.setdefault(oid, path)
            continue
        stack = [(path, oid)]
        while stack:
            prefix, t = stack.pop()
            for name, (child, m) in store.tree_items(t or None).items():
                sub = f"{prefix}/{name}" if prefix else name
                if m == MODE_TREE:
                    stack.append((sub, child))
                elif m != MODE_COMMIT:
                    files += 1
                    out.setdefault(child, sub)
    return out, files


def locality(store: GitStore, blobs: Iterable[str], files: int) -> Locality:
    """What of ``blobs`` the vault holds, and their sizes (fetches nothing)."""
    n = local = local_bytes = promised = promised_bytes = unknown = 0
    for oid in blobs:
        n += 1
        if store.is_local(oid):
            local += 1
            local_bytes += store.blob_size(oid)
            continue
        promised += 1
        size = store.promisor.size(oid)
        if size is None:
            unknown += 1
        else:
            promised_bytes += size
    return Locality(files, n, local, local_bytes, promised, promised_bytes, unknown)


def fork_tree(vault: Vault, fork: str) -> tuple[str | None, str | None]:
    """(commit, tree) of ``fork``'s tip (None, None for a fork with no commit yet)."""
    commit = refs.read_ref_file(vault.path, refs.fork_ref(fork))
    return commit, (vault.store.commit_tree(commit) if commit else None)


def forks_locality(vault: Vault, forks: list[str], paths: list[str]) -> list[ForkLocality]:
    """:class:`ForkLocality` of each of ``forks`` (forks on one tree are walked once)."""
    done: dict[str | None, Locality] = {}
    out = []
    for f in forks:
        commit, tree = fork_tree(vault, f)
        if tree not in done:
            blobs, files = tree_blobs(vault, f, tree, paths, "stats")
            done[tree] = locality(vault.store, blobs, files)
        out.append(ForkLocality(f, commit, done[tree]))
    return out


def hydrate(vault: Vault, fork: str, paths: list[str], *, progress: Progress | None = None) -> HydrateResult:
    """Fetch the promised blobs of ``fork``'s tree under ``paths`` (none: all of it) in
    batches, so later reads need no server.

    Raises:
        BlobNotLocalError: the promisor remote did not give a batch (offline, timed out, the
            blob is gone from it); ``details`` say how many blobs and bytes came before it.
        PathNotFoundError, InvalidPathError, PathProtectedError: a path (nothing fetched).
    """
    store = vault.store
    commit, tree = fork_tree(vault, fork)
    blobs, files = tree_blobs(vault, fork, tree, paths, "hydrate")
    lazy = store.promisor.remote() is not None
    todo = sorted((p, o) for o, p in blobs.items() if lazy and not store.is_local(o))
    total = len(todo)
    disk0 = object_store_bytes(vault.path)
    fetched = fetched_bytes = batches = 0
    i = 0
    while i < total:
        batch: list[tuple[str, str]] = []
        known = 0
        while i < total and len(batch) < BATCH_BLOBS and (not batch or known < BATCH_BYTES):
            batch.append(todo[i])
            known += store.promisor.size(todo[i][1]) or 0
            i += 1
        try:
            store.promisor.fetch([o for _, o in batch], paths={o: p for p, o in batch})
        except BlobNotLocalError as exc:
            raise BlobNotLocalError(
                f"{exc.message} (hydrate stopped after {fetched} of {total} blobs)",
                hint=exc.hint,
                details={
                    **exc.details,
                    "fetched_blobs": fetched,
                    "fetched_bytes": fetched_bytes,
                    "to_fetch": total,
                },
            ) from None
        batches += 1
        fetched += len(batch)
        fetched_bytes += sum(store.blob_size(o) for _, o in batch)
        if progress is not None:
            progress(fetched, total, fetched_bytes)
    return HydrateResult(
        vault=vault.name,
        fork=fork,
        commit=commit,
        paths=[names.norm_path(p) for p in paths],
        lazy=lazy,
        files=files,
        blobs=len(blobs),
        already_local=len(blobs) - total,
        fetched_blobs=fetched,
        fetched_bytes=fetched_bytes,
        disk_bytes=max(0, object_store_bytes(vault.path) - disk0),
        batches=batches,
        local=locality(store, blobs, files),
    )
