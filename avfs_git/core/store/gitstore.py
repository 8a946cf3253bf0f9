"""The vault's object store through pygit2: one Repository per thread.

libgit2 only promises that the object database is safe to share between threads, so each thread that touches
a vault opens its own ``Repository`` (0.1 ms) and keeps it: a warm one has its object caches filled (a first diff
costs 44 ms cold, 9 ms warm). Ref updates are serialized by :mod:`.refs` (ref lock files) and :mod:`.locks`.

The modules that need libgit2 go through this one: objects, commits, the commit graph
(:meth:`GitStore.descendant_of`, :meth:`GitStore.merge_base`, :meth:`GitStore.walk`), revisions, tree diffs,
blob ids and blob patches. Its repository (``_repo``) is the store's: the other modules that use libgit2 are
the store's, one job each (:mod:`.refs`, :mod:`.mergetrees`, :mod:`.odbdirect`, :mod:`.vaultconfig`;
``tests/test_layers.py``), and pygit2 exceptions are translated in the store; nothing above it catches them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..errors import CorruptStateError, ObjectUnreadableError, RevisionNotFoundError
from ..types import MODE_COMMIT, MODE_TREE, Change
from .gitformat import _KIND_NAMES, CommitFields, _object_id, parse_commit, parse_tree
from .gitlib import bound_open_packs, git_error, git_errors, header_size
from .gittime import rfc3339 as rfc3339  # (its home before; many import it from here)
from .gitwrite import StoreWrites
from .neighbours import Near, fetch_with
from .objects import BlobStream, ObjectReadError
from .objreader import ObjectReader
from .promisor import Promisor
from .threads import ThreadSlots
from .treelist import KeptListing, Listing, blob_ids, git_listing, list_tree

if TYPE_CHECKING:
    import pygit2
    from pygit2 import Commit as Commit  # what commit() and walk() give: read its fields

    from .packset import PackSet


EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
STREAM_MIN = 16 << 20  # blobs this big are streamed, never read whole


def prefer_libgit2() -> None:
    """Read objects through libgit2 from now on in this process (:meth:`GitStore.read_object`):
    for a long-lived process (the mount daemon), libgit2 faster than pure Python once loaded."""
    import pygit2  # noqa: F401 - loaded is what read_object asks


def blob_id(data: bytes) -> str:
    """The id git gives a blob of ``data`` (nothing is written). hashlib's SHA-1, as
    :func:`.packwriter.file_blob_id`: the ids agree with libgit2's for every non-colliding
    input, and a command that asks one (`avfs write`'s answer) does not load libgit2 for it
    (~90 ms of CPU)."""
    return _object_id("blob", data)


def file_blob_id(path: str, *, follow: bool = False, root: str | None = None) -> str:
    """The id git gives a blob of the regular file at ``path`` (``git hash-object
    --no-filters``); a link is not followed unless ``follow``, nor one on the way from
    ``root`` (:func:`.packwriter.file_blob_id`)."""
    from .packwriter import file_blob_id as hashed

    return hashed(path, follow=follow, root=root)


def _configure() -> None:
    """Apply avfs' pygit2 settings (libgit2's, for the whole process) before a repository is opened:
    idempotent and a few microseconds, so done at every open. Object creation is checked by avfs
    (libgit2's extra verification: ~3 ms a checkpoint); the open packs bounded (:func:`bound_open_packs`)."""
    import pygit2

    pygit2.settings.enable_strict_object_creation(False)
    bound_open_packs()


class GitStore(StoreWrites):
    """Thread-local access to one bare repository."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = ThreadSlots()
        self._trees: dict[str, dict[str, tuple[str, int]]] = {}
        self._commit_trees: dict[str, str] | None = None  # (:meth:`commit_trees_kept`)
        self.diffs: dict[tuple[str, str], tuple[Change, ...]] = {}  # (treediff.diff_trees' last few)
        self.listed = KeptListing()  # the last tree_listing kept
        self.packs: PackSet | None = None  # which packs went (made on the way into libgit2)
        self._reader = ObjectReader(path, self._packset)  # (a pure reader long in use takes it too)
        self.promisor = Promisor(path, self.local_of)  # a lazy vault's missing blobs, fetched through git

    def _packset(self) -> PackSet:
        if (packs := self.packs) is None:  # (a cold status never asks: ~0.2 ms)
            from .packset import PackSet

            packs = self.packs = PackSet(self.path)  # (two threads may make two: each counts from 0)
        return packs

    @property
    def _repo(self) -> pygit2.Repository:
        packs = self._packset()
        packs.let_go(self._local)  # (the threads' repositories that hold a pack that went)
        self._reader.follow_packs(packs)  # (and the pure reader's maps of them: it may be idle)
        repo: pygit2.Repository | None = (ns := self._local.ns()).get("repo")
        if repo is None:
            import pygit2

            _configure()
            try:
                repo = pygit2.Repository(self.path)
            except git_errors() as exc:
                raise git_error(exc, f"cannot open vault repository {self.path}", CorruptStateError) from exc
            packs.opened(ns, repo)
        return repo

    def close(self) -> None:
        """Release every thread's repository (others' dropped, not freed: one may be in use right now)
        and the pure reader's open packs; all are reopened on next use."""
        self._local.release("repo", lambda repo: repo.free(), others=False)
        self._local.release("packs", lambda odbs: None)  # (odbdirect's: freed with their packs)
        self._reader = ObjectReader(self.path, self._packset)  # readers busy with the old one finish with it

    # -- objects ------------------------------------------------------------------------
    def tree_items(self, tree_oid: str | None) -> dict[str, tuple[str, int]]:
        """name -> (oid, mode) of a tree's entries (empty for None). Do not mutate the result. Trees are
        immutable, so parsed trees are cached (shared by threads; a bounded dict). The raw object is parsed
        by :func:`.gitformat.parse_tree`: pygit2's entry objects made every mode an enum (hot in a status)."""
        if not tree_oid or tree_oid == EMPTY_TREE:
            return {}
        if (hit := self._trees.get(tree_oid)) is not None:
            return hit
        return self.know_trees({tree_oid: parse_tree(self._raw(tree_oid, "tree"))})

    def know_trees(self, parsed: dict[str, dict[str, tuple[str, int]]]) -> dict[str, tuple[str, int]]:
        """Keep ``parsed`` (id -> items: a capture's trees, not read back; record6); the last's items."""
        if len(self._trees) + len(parsed) > 16384:
            self._trees.clear()
        self._trees.update(parsed)
        return next(reversed(parsed.values()), {})

    def _raw(self, oid: str, want: str) -> bytes:
        """The raw data of object ``oid`` of type ``want``."""
        kind, data = self.read_object(oid, want)
        if kind != want:
            raise CorruptStateError(f"object {oid} is a {kind}, not a {want}")
        return data

    def read_object(
        self, oid: str, what: str = "object", *, path: str | None = None, near: Near | None = None
    ) -> tuple[str, bytes]:
        """(type, data) of object ``oid``: the one read path of avfs.

        In a lazy vault (:mod:`.promisor`) a blob (``what == "blob"``) that is not local is fetched from
        the promisor remote first (``path``: the file, for the error that says it could not be;
        ``near(dir)``: the tree of a directory of the read's view, whose promised blobs come in the same
        fetch: :mod:`.neighbours`), then read as any other; trees and commits are always local. Until
        something has imported pygit2, objects are read by :mod:`.objreader` (pure Python: read-only CLI
        commands skip pygit2's ~85 ms import); libgit2 reads them otherwise, and whenever the pure reader
        does not find an object (unless it vouches for a lazy vault's blob's absence: ``absent``) or
        cannot read it (a layout it does not know, corrupt data); the pure reader is asked in turn when
        libgit2 fails (it takes a pack it cannot open for absent). An object neither can read raises
        :class:`ObjectUnreadableError` (``what``: the kind wanted)."""
        since = self.promisor.ended  # (before the look: a fetch that ends after it may bring it)
        try:
            got = self._read_local(oid, what, before_fetch=True)
        except ObjectUnreadableError as exc:
            if what != "blob" or not exc.details.get("missing") or self.promisor.remote() is None:
                raise
            fetch_with(self, oid, path, near, since)
            got = self._read_local(oid, what)
        if what == "blob" and self.promisor.remote() is not None:  # the server's size: check_size
            self.promisor.check_size(oid, len(got[1]), path)
        return got

    def _read_local(self, oid: str, what: str, *, before_fetch: bool = False) -> tuple[str, bytes]:
        """:meth:`read_object` of what the vault holds: a blob a lazy vault's fetch brought
        and nothing read yet from the contents that fetch checked (:mod:`.freshblobs`)."""
        if what == "blob" and (fresh := self.promisor.fresh.take(oid)) is not None:
            return "blob", fresh
        loose = self._reader.has_loose(oid)
        if "pygit2" not in sys.modules or loose:
            try:
                got = self._reader.read(oid, loose=loose)
            except ObjectReadError as exc:
                if loose:  # libgit2 (1.9) loops forever on a truncated loose object: not asked
                    raise self._unreadable(oid, what, exc, exc) from exc
                return self._libgit2_read(oid, what, exc)
            if got is not None:
                return got
            if before_fetch and what == "blob" and self.promisor.remote() and self._reader.absent(oid):
                raise self._unreadable(oid, what, None, KeyError(oid))  # fetched without loading pygit2
            return self._libgit2_read(oid, what, None)
        return self._libgit2_read(oid, what, None, pure_tried=False)

    def _libgit2_read(
        self, oid: str, what: str, pure_error: ObjectReadError | None, *, pure_tried: bool = True
    ) -> tuple[str, bytes]:
        """Read through libgit2; when it fails, through the pure reader unless that was
        tried (libgit2 takes a pack it cannot open for absent: the object is "not found")."""
        try:
            obj = self._repo[oid]
            return obj.type_str, bytes(obj.read_raw())
        except git_errors() as exc:
            if not pure_tried:
                try:
                    got = self._reader.read(oid)
                except ObjectReadError as pure_exc:
                    pure_error = pure_exc
                else:
                    if got is not None:
                        return got
            raise self._unreadable(oid, what, pure_error, exc) from exc

    def blob_reader(self) -> Callable[[str], bytes]:
        """A reader of many blobs, for the calling thread only (a search reads a whole tree): each blob's
        bytes straight from libgit2's object database, without the object wrapper and the loose-object
        check of :meth:`read_object` (most of such a scan's time). Loads pygit2."""
        odb = self._repo.odb

        def read(oid: str) -> bytes:
            try:
                return bytes(odb.read(oid)[1])
            except git_errors():  # not local (a lazy vault fetches it), or unreadable: named
                return self.blob_data(oid)

        return read

    def tree_listing(self, tree: str, *, keep: bool = False) -> Listing:
        """Every entry under ``tree``, depth first (:func:`.treelist.list_tree`); do not mutate
        it. ``keep``: kept for the next call, which takes it (a lazy fork's mount lists its base
        tree for its sizes and its index, on two threads: listed once; :class:`.treelist.KeptListing`)."""
        return self.listed.get(tree, keep, lambda out: list_tree(self.path, tree, self.tree_items, out))

    def tree_blobs(self, tree: str) -> list[str]:
        """The blob id of every file under ``tree`` (an id may repeat): from git's index of it made
        for a mount (:meth:`.KeptListing.beside_ids`: git lists the tree once), else git's listing
        in bulk (:func:`.treelist.blob_ids`, kept for :meth:`tree_listing`), else walked."""
        ids = self.listed.beside_ids(tree)
        if ids is not None:
            return ids
        out = self.listed.raw(tree, lambda: git_listing(self.path, tree))
        if out is None:
            listing = self.tree_listing(tree, keep=True)
            return [o for _, mode, o in listing if mode not in (MODE_TREE, MODE_COMMIT)]
        return blob_ids(out)

    def is_local(self, oid: str) -> bool:
        """Whether the vault holds object ``oid`` (in a lazy vault, a blob may be only
        promised); read from object headers, no pygit2 needed."""
        try:
            if self._reader.header(oid) is not None:
                return True
        except ObjectReadError:
            return True  # there, if unreadable (the read says so)
        if "pygit2" in sys.modules or self._reader.skipped:
            return self.has_object(oid)
        return False

    def local_of(self, oids: Iterable[str]) -> set[str]:
        """Those of ``oids`` the vault holds, for a batch (a read's neighbours): each id
        looked up once in each pack, the pack directory read once, where :meth:`is_local`
        reads it again and then asks libgit2 (which reads it again) for every id it does
        not find. libgit2 is asked here only where the pure reader skipped a pack or the
        vault borrows objects (``info/alternates``): layouts it does not read."""
        oids = list(oids)
        found = self._reader.holds(oids)
        if self._reader.skipped or os.path.exists(os.path.join(self.path, "objects", "info", "alternates")):
            found.update(o for o in oids if o not in found and self.has_object(o))
        return found

    def prefetch(self, oids: Iterable[str] | Mapping[str, str]) -> int:
        """Fetch, in one batch, those of ``oids`` (blobs) a lazy vault does not hold, so a
        caller that reads many (a search, a diff, a merge, `vault hydrate`) does not fetch
        them one by one; how many were fetched (0 in a whole vault, at no cost).

        Raises:
            BlobNotLocalError: the promisor remote did not give them (``oids`` may map each to a path to name).
        """
        if self.promisor.remote() is None:
            return 0
        missing = sorted({o for o in oids if not self.is_local(o)})
        self.promisor.fetch(missing, paths=oids if isinstance(oids, Mapping) else None)
        return len(missing)

    def _present(self, oid: str) -> bool:
        """True when an object file holds ``oid`` (readable or not), as the pure reader sees the store."""
        try:
            return self._reader.header(oid) is not None
        except ObjectReadError:
            return True

    def check_object(self, oid: str) -> tuple[str, bytes | None]:
        """Read object ``oid`` whole as avfs' read paths can (libgit2 and the pure reader,
        each falling back on the other) and check that its contents hash to its id
        (``avfs doctor``).

        Returns (type, data); data is None for a big blob stored whole, which is hashed as
        a stream instead of held in memory. Raises :class:`ObjectUnreadableError` naming
        the object when neither reader gives its true contents. Packed objects are read by
        libgit2 first (in C, and it checks ids itself: ~10x faster than applying deltas in
        Python), loose ones by the pure reader (see :meth:`read_object`).
        """
        pure_error: ObjectReadError | None = None
        try:
            head = self._reader.header(oid)
            if (
                head is not None
                and head[0] == "blob"
                and head[1] >= STREAM_MIN
                and self._reader.hash_stream(oid, head[1])
            ):
                return "blob", None
        except ObjectReadError:
            pass  # read it whole below (a packed copy of a broken loose one, or libgit2)
        if not self._reader.has_loose(oid):
            import pygit2

            try:
                kind, data = self._repo.odb.read(pygit2.Oid(hex=oid))
                return _KIND_NAMES[int(kind)], bytes(data)
            except git_errors():
                pass  # the pure reader may read it (a pack libgit2 cannot open)
        got: tuple[str, bytes] | None = None
        try:
            got = self._reader.read(oid)
            if got is not None and _object_id(*got) != oid:
                raise ObjectReadError(f"object {oid}: its contents do not match its id")
        except ObjectReadError as exc:
            got, pure_error = None, exc
        if got is not None:
            return got
        if pure_error is not None and self._reader.has_loose(oid):  # see read_object
            raise self._unreadable(oid, "object", pure_error, pure_error)
        return self._libgit2_read(oid, "object", pure_error)  # names it

    def _unreadable(
        self, oid: str, what: str, pure: ObjectReadError | None, exc: BaseException
    ) -> ObjectUnreadableError:
        """The error for an object neither reader could read (``pure``: the pure reader's
        error; None when it did not find the object or was not asked)."""
        missing = pure is None and isinstance(exc, KeyError)  # (the pure reader did not find it either)
        why = "it is missing from the vault" if missing else (pure.message if pure is not None else str(exc))
        if missing and self._reader.skipped:  # perhaps in a pack whose index is broken
            why += f" (or in a pack whose index cannot be read: {sorted(self._reader.skipped.values())[0]})"
            missing = False  # not for certain
        return ObjectUnreadableError(
            f"{what} {oid} cannot be read: {why}",
            hint="run `avfs doctor --full` to list every unreadable object; restore them from a clone or remote",
            details={"oid": oid, "missing": missing, "libgit2": str(exc).strip("'\"")},
        )

    def tree_lookup(self, tree_oid: str, path: str) -> tuple[str, int] | None:
        """(oid, mode) of ``path`` inside tree ``tree_oid``, or None."""
        if not path:
            return tree_oid, MODE_TREE
        cur: tuple[str, int] = (tree_oid, MODE_TREE)
        for comp in path.split("/"):
            if cur[1] != MODE_TREE:
                return None
            hit = self.tree_items(cur[0]).get(comp)
            if hit is None:
                return None
            cur = hit
        return cur

    def blob_size(self, oid: str, *, path: str | None = None) -> int:
        """The size of blob ``oid`` from its header (in a lazy vault, fetched first when it is only
        promised: :meth:`read_object`; the size cache first: a lookup failing in every pack costs more)."""
        if self.promisor.remote() is not None:
            if (known := self.promisor.size(oid)) is not None:
                return known
            if self.promisor.pending():  # a mount is asking the sizes: wait for them rather
                try:  # than load libgit2 (the mount loads it after them) to learn it is missing
                    got = self._reader.header(oid)
                except ObjectReadError:
                    got = ("unreadable", -1)  # (said below)
                if got is not None and got[1] >= 0:
                    return got[1]
                waited = got is None and self.promisor.await_sizes(oid)
                if waited and (known := self.promisor.size(oid)) is not None:
                    return known
        try:
            return self._blob_size(oid)
        except ObjectUnreadableError as exc:
            if not exc.details.get("missing") or self.promisor.remote() is None:
                raise
        known = self.promisor.size(oid)  # the server said (docs/lazy.md "Sizes")
        if known is None and self.promisor.await_sizes(oid):  # a mount is asking them now
            known = self.promisor.size(oid)
            if known is None and self.is_local(oid):  # fetched by that mount's fallback
                return self._blob_size(oid)
        if known is not None:
            return known
        self.promisor.fetch([oid], path=path)
        return self._blob_size(oid)

    def ensure_sizes(self, tree: str, *, fetch: bool = True) -> None:
        """Make the sizes of ``tree``'s files known (:func:`.treesizes.ensure_sizes`)."""
        from .treesizes import ensure_sizes

        ensure_sizes(self, tree, fetch=fetch)

    def _blob_size(self, oid: str) -> int:
        pure_error: ObjectReadError | None = None
        try:
            got = self._reader.header(oid)  # reads headers only: a 2 GiB blob costs nothing
        except ObjectReadError as exc:
            if self._reader.has_loose(oid):  # see read_object: libgit2 would hang on it
                raise self._unreadable(oid, "blob", exc, exc) from exc
            got, pure_error = None, exc
        if got is not None:
            return got[1]
        if pure_error is not None:  # found, not readable: libgit2 (1.9) sizes a delta it cannot
            # inflate from a buffer it never filled (0 on a fresh thread): read whole, checked
            return len(self._libgit2_read(oid, "blob", pure_error)[1])
        try:  # (a layout the pure reader does not read: an alternate's)
            n = header_size(self._repo.odb, oid)
        except git_errors() as exc:
            raise self._unreadable(oid, "blob", pure_error, exc) from exc
        return len(self._libgit2_read(oid, "blob", None)[1]) if n is None else n

    def blob_data(self, oid: str, *, path: str | None = None, near: Near | None = None) -> bytes:
        """Blob ``oid``'s contents (``path``: the file, named if it cannot be read;
        ``near``: see :meth:`read_object`)."""
        kind, data = self.read_object(oid, "blob", path=path, near=near)
        if kind != "blob":
            raise CorruptStateError(f"object {oid} is a {kind}, not a blob")
        return data

    def blob_stream(self, oid: str) -> BlobStream | None:
        """A stream of a big blob (at least ``STREAM_MIN`` bytes, stored whole), never held in
        memory; None for the rest (:meth:`blob_data`). Its reads raise
        :class:`~.objects.ObjectReadError` (an :class:`ObjectUnreadableError`) on corrupt data."""
        try:
            got = self._reader.header(oid)
            if got is None or got[1] < STREAM_MIN:
                return None
            if self.promisor.remote() is not None:
                self.promisor.check_size(oid, got[1])
            return self._reader.stream(oid)
        except ObjectReadError:
            return None  # blob_data reads it (through libgit2) or names it

    def commit_time(self, commit_oid: str) -> int:
        """The committer time of a commit (seconds since the epoch)."""
        return parse_commit(self._raw(commit_oid, "commit")).commit_time

    def commit_fields(self, oid: str) -> CommitFields:
        """The parents, committer time and message of commit ``oid``, parsed from its raw
        object (as libgit2 gives them: ``tests/test_gitstore_commits.py`` compares), so that
        a command that only reads them does not load pygit2 (~40-80 ms) for it.

        Raises:
            RevisionNotFoundError: no such commit in the vault.
            ObjectUnreadableError: it is there but cannot be read.
        """
        return parse_commit(self._commit_bytes(oid))

    def _commit_bytes(self, oid: str) -> bytes:
        """Commit ``oid``'s raw body: :class:`RevisionNotFoundError` when the vault has no
        such commit (missing, or another kind of object), :class:`ObjectUnreadableError`
        when it is there but cannot be read."""
        try:
            return self._raw(oid, "commit")
        except ObjectUnreadableError as exc:
            if not exc.details.get("missing"):
                raise  # there but unreadable: say so
            raise RevisionNotFoundError(f"commit {oid} not found in the vault") from exc
        except CorruptStateError as exc:  # another kind of object
            raise RevisionNotFoundError(f"{oid} is not a commit") from exc

    def commit_tree(self, commit_oid: str) -> str:
        memo = self._commit_trees
        if memo is not None and (hit := memo.get(commit_oid)) is not None:
            return hit
        data = self._commit_bytes(commit_oid)
        if not data.startswith(b"tree "):
            raise CorruptStateError(f"commit {commit_oid} has no tree")
        tree = data[5:45].decode("ascii")
        if memo is not None and len(commit_oid) in (40, 64):
            memo[commit_oid] = tree
        return tree

    @contextmanager
    def commit_trees_kept(self) -> Iterator[None]:
        """While it is entered, each full commit id's tree is read once (commits never
        change under their id): an operation that asks the same few commits' trees over
        and over through the layers it calls (a merge: 14 reads of 3-4 commits, ~1.5 ms
        of a served fast-forward's CPU; h-merge4) without keeping them past its end, where
        a commit may be pruned and an existence check must find it gone. Nested, the
        outermost keeps them."""
        if self._commit_trees is not None:
            yield
            return
        self._commit_trees = {}
        try:
            yield
        finally:
            self._commit_trees = None

    def commit(self, oid: str) -> pygit2.Commit:
        import pygit2

        if self._reader.has_loose(oid):
            self.read_object(oid, "commit")  # a corrupt loose object would hang libgit2 (1.9)
        try:
            obj = self._repo[oid]
        except git_errors() as exc:
            if len(oid) == 40 and (self._present(oid) or self._reader.skipped):  # there, but unreadable?
                self.read_object(oid, "commit")  # raises ObjectUnreadableError naming it...
                raise self._unreadable(oid, "commit", None, exc) from exc  # ...or libgit2 alone fails
            raise RevisionNotFoundError(f"commit {oid} not found in the vault") from exc
        if not isinstance(obj, pygit2.Commit):
            raise RevisionNotFoundError(f"{oid} is not a commit")
        return obj

    def has_object(self, oid: str) -> bool:
        try:
            return bool(self._repo.odb.exists(oid))
        except git_errors():  # an id libgit2 cannot take (another hash's length): a command's
            return False

    def config_value(self, key: str) -> str | None:
        """``key`` of the vault's config (and the global ones libgit2 reads); None when it
        is unset, empty or unreadable."""
        repo = self._repo
        try:
            value = repo.config[key]
        except git_errors():
            return None
        return str(value) if value else None

    # -- the commit graph and revisions ----------------------------------------------------
    def descendant_of(self, commit: str, ancestor: str) -> bool:
        """Whether ``commit`` descends from ``ancestor`` (a commit is not its own descendant). Raises
        :class:`InternalError` when libgit2 cannot tell (an id missing or malformed)."""
        import pygit2

        repo = self._repo
        try:
            return bool(repo.descendant_of(pygit2.Oid(hex=commit), pygit2.Oid(hex=ancestor)))
        except git_errors() as exc:
            raise git_error(exc, f"cannot tell whether {commit} descends from {ancestor}") from exc

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor of commits ``a`` and ``b`` (``git merge-base``), None for no history."""
        import pygit2

        repo = self._repo
        try:
            base = repo.merge_base(pygit2.Oid(hex=a), pygit2.Oid(hex=b))
        except git_errors() as exc:
            raise git_error(exc, f"cannot find the merge base of {a} and {b}") from exc
        return str(base) if base is not None else None

    def rev_parse(self, spec: str) -> str | None:
        """The commit ``spec`` names (anything ``git rev-parse`` accepts, peeled to a
        commit), or None when it names none."""
        import pygit2

        repo = self._repo
        try:
            return str(repo.revparse_single(spec).peel(pygit2.Commit).id)
        except git_errors():
            return None

    def walk(
        self, push: Sequence[str], hide: Sequence[str] = (), *, first_parent: bool = False
    ) -> Iterator[Commit]:
        """The commits reachable from ``push`` and not from ``hide``, newest first in
        topological order (as ``git log --topo-order``); ``first_parent``: following first
        parents only."""
        import pygit2

        repo = self._repo
        try:
            walker = repo.walk(None, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME)
            for oid in push:
                walker.push(pygit2.Oid(hex=oid))
            for oid in hide:
                walker.hide(pygit2.Oid(hex=oid))
            if first_parent:
                walker.simplify_first_parent()
        except git_errors() as exc:
            raise self._unreadable(", ".join(push), "commit", None, exc) from exc
        return iter(walker)

    # -- trees through libgit2 (its modes normalised, as git reads them) -------------------
    def files_of(self, tree: str) -> dict[str, tuple[str, int]]:
        """Path -> (blob id, mode) of every file and symlink of ``tree`` (submodules aside)."""
        import pygit2

        repo = self._repo
        out: dict[str, tuple[str, int]] = {}
        stack: list[tuple[str, str]] = [("", tree)]
        while stack:
            prefix, oid = stack.pop()
            obj = repo[oid]
            assert isinstance(obj, pygit2.Tree)
            for e in obj:
                path = prefix + str(e.name)
                if e.filemode == MODE_TREE:
                    stack.append((path + "/", str(e.id)))
                elif e.filemode != MODE_COMMIT:
                    out[path] = (str(e.id), int(e.filemode))
        return out

    def _tree_diff(self, old_tree: str, new_tree: str, *, binary: bool = False) -> pygit2.Diff:
        import pygit2

        repo = self._repo
        a, b = repo[old_tree], repo[new_tree]
        assert isinstance(a, pygit2.Tree) and isinstance(b, pygit2.Tree)
        flags = pygit2.enums.DiffOption.INDENT_HEURISTIC  # (git's default: gitpatch.blob_patch)
        return a.diff_to_tree(b, flags=flags | (pygit2.enums.DiffOption.SHOW_BINARY if binary else 0))

    def tree_patch(self, old_tree: str, new_tree: str) -> str:
        """The diff of two trees as a patch ``git apply`` takes (binary files included)."""
        return self._tree_diff(old_tree, new_tree, binary=True).patch or ""
