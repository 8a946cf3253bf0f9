"""libgit2's object database used directly, for a caller that reads many objects in one
thread (a merge's trees, a mount's index) or needs an object written where git looks
first: raw bodies and sizes read without :meth:`.gitstore.GitStore.read_object`'s object
wrapper and loose-object check (most of such a scan's time), and the empty tree written.

Each reader belongs to the calling thread (its store's repository is that thread's). What
libgit2 cannot read is read again through the store's one read path, which names the
object that cannot be read (:class:`~.errors.ObjectUnreadableError`); pygit2's errors never
leave this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from .gitlib import git_errors, inflate_failed
from .gitstore import GitStore

if TYPE_CHECKING:
    import pygit2


# a reader that missed in the packs this often reads the rest through the whole database
# (each miss rescans the pack directory: a vault whose trees are loose, git having written
# them, pays that a few times, not once per tree)
PACK_MISSES = 8


def raw_reader(store: GitStore, what: str = "object", lane: int = 0) -> Callable[[str], bytes]:
    """A reader of many objects' raw bodies (``what`` names their kind in an error), for
    the calling thread only. Loads pygit2.

    Through this thread's database of the vault's packs alone (:func:`packs_odb`), where
    avfs writes every object, then the whole one: pygit2 reads by prefix
    (``git_odb_read_prefix``), which asks every backend so as to find an ambiguity, so the
    whole database looks for each packed object as a loose file first (an ``access()``
    that fails, ~1.5 µs, 4-7 µs on a loaded machine: a merge reads ~900 trees).

    ``lane``: the database of the packs to read through (:func:`packs_odb`): readers of
    objects from different places (a merge's base, ours and theirs) each take their own.

    The packs are read through that database's backend itself (:func:`packs_backend`),
    not the database: libgit2's database checks each object's SHA-1 after reading it and
    pygit2 makes an enum of its type, ~2 us of the ~2.7 us a small tree not read before
    costs (0.7 us without). git does not check an object's hash on read either (nor does
    :mod:`.objreader`); what the packs do not answer is read through the whole database,
    checked, as before. The backend keeps no cache of its own: for readers that read each
    object about once (a merge's walk)."""
    odb = store._repo.odb
    owner = packs_odb(store, lane)  # (held while reading: its backend lives as long as it)
    packs = packs_backend(store, lane)
    misses = 0

    def read(oid: str) -> bytes:
        nonlocal misses
        assert owner is not None  # (held by this closure: the backend is the database's)
        if misses < PACK_MISSES:
            for rescan in (False, True):
                try:
                    if rescan:
                        packs.refresh()  # a pack written since the backend last looked?
                    return bytes(packs.read(oid)[1])
                except git_errors(OSError):  # loose, an alternate's, promised, or unreadable
                    pass
            misses += 1
        try:
            return bytes(odb.read(oid)[1])
        except git_errors(OSError):  # the store's read path reads it or names it
            return store.read_object(oid, what)[1]

    return read


def packs_odb(store: GitStore, lane: int = 0) -> pygit2.Odb:
    """This thread's object database of the vault's packs alone, kept with its repository
    (its cache stays warm from one reader to the next; :meth:`.gitstore.GitStore.close`
    drops it with the repository). A pack written since is found on the first miss
    (libgit2 rescans the pack directory then).

    ``lane``: one of several such databases. libgit2 looks for an object in the pack it
    last found one in, then in every pack in turn: a reader that goes back and forth
    between objects of different packs (a merge's base, ours and theirs, each side's new
    trees in its own checkpoints' packs) searched half of the vault's packs on most reads
    (up to :data:`.packwriter.PACK_LIMIT` before they are consolidated; ~3 µs a read at
    40 packs, 2.5x the read itself at 100). One database per such reader keeps its hint."""
    return _packs(store, lane)[0]


def packs_backend(store: GitStore, lane: int = 0) -> pygit2.OdbBackendPack:
    """This thread's libgit2 reader of the vault's packs for ``lane``, the backend of
    :func:`packs_odb`'s database, kept with the repository (:meth:`.gitstore.GitStore.close`
    drops it). It keeps libgit2's hint of the pack it last found an object in; read
    directly, it checks no object's SHA-1 and finds a pack written since only when asked
    to look again (``refresh``).

    The database owns it: hold :func:`packs_odb`'s database for as long as it is read
    (libgit2 frees the backend with its database)."""
    return _packs(store, lane)[1]


def _packs(store: GitStore, lane: int) -> tuple[pygit2.Odb, pygit2.OdbBackendPack]:
    """The database of ``lane`` and its one backend. The backend is always added to its
    database, which frees it (its packs closed, their maps unmapped) when it goes: pygit2
    never frees a backend of libgit2's own that is in no database, so a backend read
    alone kept every pack it had opened open for the life of the process, a pack gc had
    deleted included (each merge's, through :func:`raw_reader`, in every thread; an agent
    runtime's process held 20 after ``Home.close``)."""
    store._repo  # noqa: B018  (pygit2 configured as the store configures it; gone packs let go of)
    odbs: dict[int, tuple[pygit2.Odb, pygit2.OdbBackendPack]] | None = getattr(store._local, "packs", None)
    if odbs is None:
        odbs = store._local.packs = {}
    got = odbs.get(lane)
    if got is None:
        import pygit2

        backend = pygit2.OdbBackendPack(os.path.join(store.path, "objects"))
        odb = pygit2.Odb()
        odb.add_backend(backend, 1)
        got = odbs[lane] = (odb, backend)
    return got


def size_reader(store: GitStore) -> Callable[[str], int]:
    """A reader of many blobs' sizes from their headers (libgit2 reads them 5-7x faster than
    a Python lookup per blob), for the calling thread only. Loads pygit2.

    A blob libgit2 could not inflate the header of is sized by the store's checked path
    (:meth:`.gitstore.GitStore.blob_size`: its true size, or
    :class:`~.errors.ObjectUnreadableError` naming it), never by the size libgit2 1.9
    made up for it (:func:`.gitlib.inflate_failed`)."""
    odb = store._repo.odb
    # a lazy vault: the size cache first (a header not found in any pack costs ~0.2 ms)
    known = store.promisor.size if store.promisor.remote() is not None else None
    failed = inflate_failed()
    failed()  # (an error of an earlier call on this thread: not this reader's)

    def size(oid: str) -> int:
        if known is not None and (n := known(oid)) is not None:
            return n
        try:
            n = int(odb.read_header(oid)[1])
        except git_errors(OSError):  # the store's reader says what is wrong
            return store.blob_size(oid)
        return store.blob_size(oid) if failed() else n

    return size


def write_empty_tree(store: GitStore) -> str:
    """Write the empty tree into the vault as a loose object; its id. In Python
    (:func:`.packwriter.write_loose`): a new vault's first commit loads no libgit2."""
    from ..errors import from_oserror
    from .packwriter import write_loose

    try:
        return write_loose(store.path, "tree", b"")
    except OSError as exc:
        raise from_oserror(exc, "cannot write the empty tree") from exc
