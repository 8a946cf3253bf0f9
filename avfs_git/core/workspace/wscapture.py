"""Capture: a workspace's overlay written as git objects, the blobs of its materialized files
and the trees on changed paths (O(changed paths x depth), never O(tree)), with what git
cannot hold or refuses left out (paths git ignores, names git refuses, ``.gitmodules`` and
``.gitattributes`` whose contents ``git fsck`` refuses), and :class:`Fork`, what commit
building needs of a workspace. The first step of :mod:`.wscommit`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from ..errors import CorruptStateError
from ..store import names
from ..store.filemode import recorded_mode
from ..store.gitformat import tree_parsed
from ..store.gitnames import refusal
from ..store.gitstore import EMPTY_TREE, GitStore
from ..store.identity import Signatures
from ..store.packwriter import OBJ_BLOB, OBJ_TREE, PackWriter
from ..store.safeopen import open_regular
from ..types import MODE_COMMIT, MODE_TREE
from . import wsattrs
from .livedir import LiveDir
from .overlay import Overlay
from .overlayentry import DELETED, FILE, NO_IGNORED, OBJECT, UPPER_FILE, Entry, Ignored, covered
from .pathguard import PathGuard, protected_entries
from .upperjournal import Pending
from .wsattrs import TEXT, Conversions, conversions_for
from .wsgitrules import content_check, fsck_read, staged_submodules
from .wsstatus import Changes
from .wsview import RACE_TRIES, Raced, View, dirty_dirs

if TYPE_CHECKING:
    from .recordblobs import BlobSink, Noted

# what a live mount's index guard gives its holder (mount/indexahead.py): the mount's index
# written for a commit before the branch moves to it; then called with whether it moved
IndexAhead = Callable[[str], Callable[[bool], None] | None]


class Fork(Protocol):
    """What commit building needs of a workspace (:class:`.workspace.Workspace` is one)."""

    fork: str
    store: GitStore
    overlay: Overlay
    view: View
    changes: Changes
    captured_ignored: Ignored  # what the last capture left out
    captured_converted: frozenset[str]  # the files whose bytes its clean conversion changed
    state_dir: str
    # what the last capture read of an overlay mount's upper layer, and the journal's
    # position then (None: read whole, or no journal answered): see upperjournal
    captured_read: tuple[Pending, list[Entry]] | None

    @property
    def ref(self) -> str: ...
    @property
    def base(self) -> str: ...
    @property
    def base_tree(self) -> str: ...
    def tip(self) -> str | None: ...
    def check_unwritten(self, holes: int, paths: list[str]) -> None: ...
    def author(self) -> Signatures: ...
    def live_mount(self) -> LiveDir | None: ...
    def mounted_without_upper(self) -> bool: ...
    def base_moved(self, *, view_changed: bool, index: bool = True) -> None: ...
    def index_guard(self, *, git: bool = False) -> AbstractContextManager[IndexAhead | None]: ...
    def staged_gitlinks(self, paths: list[str]) -> dict[str, str]: ...
    @property
    def guard(self) -> PathGuard: ...


def capture(
    ws: Fork,
    pack: PackWriter | None = None,
    *,
    include_ignored: bool = False,
    only: Callable[[str], bool] | None = None,
    convert: bool = True,
    as_added: bool = False,
) -> tuple[str, list[Entry]]:
    """Write blobs and trees for the workspace; returns (root tree id, captured entries).

    ``only``: the entries whose paths it takes (the rest stay out of the tree and the
    overlay keeps them, on top of the commit). Paths git ignores are left out of the tree
    (``include_ignored``: kept) and their entries are not among the captured ones: a checkpoint, which retires what it
    captured, leaves them in the overlay (a venv keeps working across checkpoints). So are
    the ``.gitmodules`` and ``.gitattributes`` files whose contents git refuses
    (:mod:`.gitmodules`, :mod:`.gitattributes`): the tree
    keeps what it held there, and the workspace keeps the file (``not_recorded``).
    So are changes to paths the fork's path policy protects (:func:`.pathguard.protected_entries`:
    one that reached the overlay past the checks, a rule made after it), unless
    ``include_ignored`` (a record of everything: a recovery ref).

    Files are recorded as ``git add`` would store them (:mod:`.wsattrs`): converted by
    the ``.gitattributes`` of the view (end of lines, ``ident``), unless ``convert`` is
    false or ``include_ignored`` (a recovery ref keeps the bytes as they are). A file whose
    bytes the conversion changed stays in the workspace as it is (a CRLF file stays CRLF:
    :func:`.wsretire.retirable`), on top of the commit's blob, as git's work tree does.
    ``as_added`` with ``include_ignored`` (a fork's capture: :mod:`.forkcapture`): the files
    git does not ignore are converted too, the ignored ones kept as they are; the paths
    whose bytes differ from their blob are ``ws.captured_converted``.

    Cost: one blob per materialized file plus the trees on changed paths
    (O(changed paths x depth)), never O(tree). The objects go into ``pack`` (which the
    caller finishes), or into a pack of their own.
    """
    ws.captured_ignored = NO_IGNORED
    ws.captured_read = None
    ws.captured_converted = frozenset()
    ws.overlay.forget_reads()
    if (sink := getattr(getattr(ws.overlay, "recording", None), "sink", None)) is not None:
        sink.trees = {}
    # (on an overlay mount: O(changes), see upperjournal)
    entries, settled = (ws.overlay.all(), False) if include_ignored else _read(ws)
    if not entries:
        return ws.base_tree, []
    own = pack is None
    pw = pack if pack is not None else ws.store.pack_writer()
    try:
        for tries_left in range(RACE_TRIES - 1, -1, -1):
            try:
                all_read = {e.path: e for e in entries}
                to_build = entries
                if not include_ignored:
                    to_build, entries = _leave_out_ignored(ws, entries, settled)
                    to_build, entries = (
                        _leave_out_submodules(ws, to_build, relay=True),
                        _leave_out_submodules(ws, entries),
                    )
                    to_build, entries = _staged_submodules(ws, to_build, entries)
                if only is not None:
                    to_build = [e for e in to_build if only(e.path)]
                    entries = [e for e in entries if only(e.path)]
                if not include_ignored and (held := protected_entries(ws, entries)):
                    to_build = [e for e in to_build if e.path not in held]
                    entries = [e for e in entries if e.path not in held]
                ws.check_unwritten(*_holes(ws, to_build))
                refused: set[str] = set()
                conv = None
                if convert and not include_ignored:
                    conv = _conversion(ws, to_build, all_read)
                elif convert and as_added:
                    conv = _conversion(ws, _not_ignored(ws, to_build), all_read)
                swapped: dict[str, Entry] = {}  # a file's entry read again (_file_blob)
                try:
                    tree = _capture_entries(ws, to_build, pw, refused, conv, swapped)
                finally:
                    if conv is not None:
                        conv.conv.close()
                ws.captured_converted = frozenset(conv.converted) if conv is not None else frozenset()
                if refused:
                    entries = [e for e in entries if e.path not in refused]
                if swapped:  # what the tree holds of them is what the checkpoint retires
                    entries = [swapped.get(e.path, e) if e.kind == FILE else e for e in entries]
                break
            except Raced:
                # a file was replaced (and its old bytes unlinked) by a write that came
                # after the entries were read: read them again (objects already in the
                # pack are harmless duplicates)
                if not tries_left:
                    from ..errors import BusyError

                    raise BusyError(
                        f"the workspace of fork {ws.fork} kept changing during the checkpoint",
                        hint="try again",
                        details={"fork": ws.fork},
                    ) from None
                entries, settled = (ws.overlay.all(), False) if include_ignored else _read(ws)
        if own:
            pw.finish()
    except BaseException:
        if own:
            pw.abort()
        raise
    return tree, entries


def _holes(ws: Fork, entries: list[Entry]) -> tuple[int, list[str]]:
    """The bytes the files of an overlay mount's upper layer among ``entries`` hold past
    their blocks on disk, and those files: a sparse file's holes, which a blob of it stores
    (and every checkout of it writes) as bytes, though no quota counted them (the kernel's
    counts blocks: :meth:`.wschecks.WriteChecks.check_unwritten`). avfs's own overlay
    files are counted at their size already (the overlay's totals). One ``lstat`` a file
    (a link is not one: nothing followed)."""
    total, paths = 0, []
    for e in entries:
        if e.kind != FILE or not e.fileid or not e.fileid.startswith(UPPER_FILE):
            continue
        try:
            st = ws.overlay.file_stat(e.fileid)  # (from the layer's root, no link followed)
        except OSError:
            continue  # (gone: the capture's read of it says so)
        ws.overlay.note_read(e.fileid, st)  # (its stat before the read: _build takes it, record4)
        hole = st.st_size - st.st_blocks * 512 if stat.S_ISREG(st.st_mode) else 0
        if hole > 0:
            total += hole
            paths.append(e.path)
    return total, paths


def _read(ws: Fork) -> tuple[list[Entry], bool]:
    """The entries a capture reads (a status's: :meth:`.wsstatus.Changes.read_entries`),
    kept with the journal's position as ``ws.captured_read``; whether they are only those
    that may differ from the base."""
    with ws.overlay.pruning(ws.changes.prune_ignored):
        entries, pending, settled = ws.changes.read_entries()
    ws.captured_read = None if pending is None else (pending, entries)
    return entries, settled


def _leave_out_ignored(ws: Fork, entries: list[Entry], settled: bool) -> tuple[list[Entry], list[Entry]]:
    """(the entries to build a tree from, the entries that count as captured), the
    paths git ignores left out of both: their own entries are dropped, and a deletion
    of each takes them out of git trees that hold them (a fork's or an undo's view)."""
    ws.captured_ignored = NO_IGNORED
    if not any(e.kind != DELETED for e in entries):
        return entries, entries
    ign = ws.captured_ignored = ws.changes.ignored_in(entries, settled=settled)
    if not ign.tops:
        return entries, entries
    _pin_ignored(ws, entries, ign)
    kept = [e for e in entries if not ign.covers(e.path)]
    return kept + [Entry(t, DELETED, 0) for t in sorted(ign.tops)], kept


def _leave_out_submodules(ws: Fork, entries: list[Entry], relay: bool = False) -> list[Entry]:
    """``entries`` but a directory's where the base has a gitlink, and all below it: that
    directory is the submodule's checkout, as to git (`git add -A` does not look into it),
    so the gitlink stays and the files stay in the workspace, not recorded (pure FUSE:
    `git submodule add` and a commit made the fork's own entries its checkout, gitmodel10;
    the overlay backend's upper layer reads as the submodule unchanged there already).

    ``relay`` (the entries a tree is built from): the base's gitlink laid again at such a
    directory below another entry's tree (a directory made before git committed the
    submodule in it, `vendor/` of `git submodule add URL vendor/lib`: an empty tree then,
    which a tree built from the entries takes instead of the base's; gitmodel16: the
    checkpoint after such a commit dropped the gitlink on pure FUSE)."""
    tops = {
        e.path: hit[0]
        for e in entries
        if e.kind == OBJECT
        and e.mode == MODE_TREE
        and e.path
        and (hit := ws.store.tree_lookup(ws.base_tree, e.path)) is not None
        and hit[1] == MODE_COMMIT
    }
    if not tops:
        return entries
    gone = frozenset(tops)
    kept = [e for e in entries if not covered(e.path, gone)]
    if relay:
        trees = frozenset(e.path for e in kept if e.kind == OBJECT and e.mode == MODE_TREE)
        kept += [
            Entry(p, OBJECT, MODE_COMMIT, oid)
            for p, oid in sorted(tops.items())
            if covered(p, trees) or "" in trees
        ]
    return kept


def _staged_submodules(
    ws: Fork, to_build: list[Entry], entries: list[Entry]
) -> tuple[list[Entry], list[Entry]]:
    """(``to_build`` with a submodule's checkout git's index stages as a gitlink, where the
    base holds nothing, taken as that gitlink; ``entries`` without what is at or below it):
    :func:`.wsgitrules.staged_submodules`. The files stay in the workspace, not recorded
    (not captured: the base's new gitlink then covers them, :func:`_leave_out_submodules`).
    git's index is searched only where a new path lies in a directory the base does not hold."""
    new = [e.path for e in to_build if e.kind != DELETED and "/" in e.path]
    if not new:
        return to_build, entries
    took = staged_submodules(ws.store, ws.base_tree, ws.staged_gitlinks, new)
    if not took:
        return to_build, entries
    tops = frozenset(took)
    links = [Entry(p, OBJECT, MODE_COMMIT, oid) for p, oid in sorted(took.items())]
    return [e for e in to_build if not covered(e.path, tops)] + links, [
        e for e in entries if not covered(e.path, tops)
    ]


def _pin_ignored(ws: Fork, entries: list[Entry], ign: Ignored) -> None:
    """Give each ignored path that only a git tree of an ancestor entry holds (a fork's
    or an undo's view) an entry of its own, as it shows now (the view does not change),
    so that retiring the ancestor after a checkpoint does not take it away."""
    have = {e.path for e in entries}
    todo = sorted(t for t in ign.tops if t not in have)
    if not todo:
        return
    with ws.overlay.txn() as db:
        for t in todo:
            chain = [*names.ancestors(t), t]
            got = ws.overlay.get_many(chain)
            if t in got:
                continue
            deepest = max((i for i, q in enumerate(chain) if q in got), default=None)
            if deepest is None:
                continue  # no entry holds it: nothing would take it away
            ok = True
            for q in chain[deepest + 1 : -1]:
                node = ws.view.lookup(q)
                if node is None or not node.is_dir or node.oid is None:
                    ok = False
                    break
                ws.overlay.put(db, Entry(q, OBJECT, MODE_TREE, node.oid, None, ws.view.origin(q)), "pin")
            node = ws.view.lookup(t)
            if ok and node is not None and node.oid is not None and node.entry is None:
                ws.overlay.put(db, Entry(t, OBJECT, node.mode, node.oid), "pin")


def _not_ignored(ws: Fork, entries: list[Entry]) -> list[Entry]:
    """``entries`` but those of paths git ignores (a fork's capture holds them as they are)."""
    if not any(e.kind == FILE for e in entries):
        return []
    ign = ws.changes.ignored_in(entries)
    return [e for e in entries if not ign.covers(e.path)] if ign.tops else entries


class Conversion:
    """A capture's clean conversions (:mod:`.wsattrs`), and the paths whose bytes they changed."""

    def __init__(self, conv: Conversions, files: frozenset[str]) -> None:
        self.conv = conv
        self.files = files  # the paths it converts (the others are stored as they are)
        self.converted: set[str] = set()

    def blob(
        self,
        pw: PackWriter,
        path: str,
        mode: int,
        data: bytes | None,
        fpath: str | None,
        root: str | None = None,
    ) -> str:
        """The blob of a file's bytes (``data``, else read from ``fpath``) as ``git add``
        stores them."""
        if mode not in TEXT or path not in self.files:
            return pw.add(OBJ_BLOB, data) if data is not None else pw.add_file(fpath or "", root)
        if data is None:
            assert fpath is not None
            with os.fdopen(open_regular(fpath, root), "rb") as fh:
                if os.fstat(fh.fileno()).st_size > wsattrs.MAX_CONVERTED:  # (its size, not a path's)
                    return pw.add_file(fpath, root)  # (recorded as it is, streamed)
                data = fh.read()
        cleaned = self.conv.clean(path, data)
        stored = data if cleaned is None else cleaned
        if stored != data or self.conv.checkout_differs(path, stored, data):
            self.converted.add(path)  # (the file stays: git's work tree keeps it as it is)
        return pw.add(OBJ_BLOB, stored)


def _conversion(ws: Fork, entries: list[Entry], view_entries: dict[str, Entry]) -> Conversion | None:
    """The clean conversions of the files among ``entries`` (None: no attribute file
    applies to any), judged by the view ``view_entries`` (every entry read) shows."""
    files = [e.path for e in entries if e.kind == FILE and e.mode in TEXT]
    conv = conversions_for(ws.view, ws.base_tree, view_entries, files)
    return None if conv is None else Conversion(conv, frozenset(files))


def _capture_entries(
    ws: Fork,
    entries: list[Entry],
    pw: PackWriter,
    refused: set[str],
    conv: Conversion | None = None,
    swapped: dict[str, Entry] | None = None,
) -> str:
    """The root tree of the workspace made of ``entries`` (see :func:`capture`; ``refused``
    gets the paths of the ``.gitmodules`` and ``.gitattributes`` left out for their
    contents, ``swapped`` the file entries read again because a write replaced them:
    :func:`_file_blob`)."""
    dirty = dirty_dirs(entries)
    by_parent: dict[str, list[Entry]] = {}
    for e in entries:
        if e.path:
            by_parent.setdefault(names.parent_of(e.path), []).append(e)
    sub_dirty: dict[str, list[str]] = {}
    for d in dirty:
        if d:
            sub_dirty.setdefault(names.parent_of(d), []).append(names.basename(d))
    root_entry = next((e for e in entries if e.path == ""), None)
    root_oid = root_entry.oid if root_entry is not None else ws.base_tree
    tree = build(ws, "", root_oid, by_parent, dirty, sub_dirty, pw, refused, conv, swapped)
    assert tree is not None
    return tree


def build(
    ws: Fork,
    p: str,
    under: str | None,
    by_parent: dict[str, list[Entry]],
    dirty: set[str],
    sub_dirty: dict[str, list[str]],
    pw: PackWriter,
    refused: set[str] | None = None,
    conv: Conversion | None = None,
    swapped: dict[str, Entry] | None = None,
) -> str | None:
    """The new tree of directory ``p`` (None when it ends up empty; the root never is).

    Names git refuses (:mod:`.gitnames`) and ``.gitmodules`` and ``.gitattributes`` files
    whose contents it refuses (:mod:`.gitmodules`, :mod:`.gitattributes`; their paths go
    into ``refused``) are left out, the tree keeping what it held there.

    Each directory's tree is made by :func:`_build`, which asks for its changed
    subdirectories' trees by yielding them; they are made here, one stack of directories
    deep, not by recursion: found in the fourteenth round (NAME=attack5), a confined
    command's directory 1,000 levels deep raised ``RecursionError`` in the exec's commit
    and in every checkpoint of the fork after it."""
    swapped = {} if swapped is None else swapped
    # (git's core.fileMode and core.symlinks: core/store/filemode.py)
    trusted = ws.changes.modes_trusted()
    frames = [_build(ws, p, under, by_parent, dirty, sub_dirty, pw, refused, conv, swapped, trusted)]
    value: str | None = None
    while frames:
        try:
            child, sub_oid = frames[-1].send(value)
        except StopIteration as done:
            frames.pop()
            value = done.value
            continue
        frames.append(
            _build(ws, child, sub_oid, by_parent, dirty, sub_dirty, pw, refused, conv, swapped, trusted)
        )
        value = None
    return value


def _build(
    ws: Fork,
    p: str,
    under: str | None,
    by_parent: dict[str, list[Entry]],
    dirty: set[str],
    sub_dirty: dict[str, list[str]],
    pw: PackWriter,
    refused: set[str] | None,
    conv: Conversion | None = None,
    swapped: dict[str, Entry] | None = None,
    trusted: tuple[bool, bool] = (True, True),
) -> Generator[tuple[str, str | None], str | None, str | None]:
    """:func:`build` of one directory: yields (subdirectory, its old tree) for each changed
    subdirectory and is sent its new tree. ``trusted``: git's ``core.fileMode`` (false: a
    file keeps the mode the tree had at its path, :func:`.filemode.recorded_mode`) and
    ``core.symlinks`` (false: a file at a link's path is that link)."""
    items = dict(ws.store.tree_items(under))
    subdirs: dict[str, str | None] = {}
    for e in by_parent.get(p, []):
        name = names.basename(e.path)
        noted = None
        if e.kind == FILE and e.fileid:
            # (a write after it keeps the entry: OverlayDB._claim; an upper file's noted by _holes)
            noted = ws.overlay.noted(e.fileid) or ws.overlay.note_read(e.fileid)
        if e.kind == DELETED:
            items.pop(name, None)
        elif refusal(name, e.mode) is not None:
            continue  # git refuses the name: left out, the entry stays (see retirable)
        elif (rule := fsck_read(name, e)) is not None:
            # git fsck checks what it holds: the bytes checked are the bytes recorded
            held = items.get(name)
            try:
                data, got = content_check(
                    ws.store,
                    ws.overlay,
                    e,
                    held[0] if held is not None and held[1] != MODE_TREE else None,
                    rule,
                )
            except FileNotFoundError as exc:
                raise _missing(ws, e, exc) from exc
            if got is not None:
                if refused is not None:
                    refused.add(e.path)
                continue  # left out, the entry stays (not captured: see capture)
            if e.kind == FILE:
                assert data is not None
                blob = pw.add(OBJ_BLOB, data) if conv is None else conv.blob(pw, e.path, e.mode, data, None)
                items[name] = (blob, recorded_mode(e.mode, held, *trusted))
            else:
                assert e.oid is not None
                items[name] = (e.oid, recorded_mode(e.mode, held, *trusted))
        elif e.kind == FILE:
            oid, now = _file_blob(ws, e, pw, conv, noted)
            if now is not e and swapped is not None:
                swapped[e.path] = now
            items[name] = (oid, recorded_mode(now.mode, items.get(name), *trusted))
        elif e.mode == MODE_TREE:
            subdirs[name] = e.oid
            items.pop(name, None)
        else:
            assert e.oid is not None
            items[name] = (e.oid, recorded_mode(e.mode, items.get(name), *trusted))
    # directories with changes below them but no entry of their own
    for name in sub_dirty.get(p, []):
        if name not in subdirs:
            existing = items.get(name)
            subdirs[name] = existing[0] if existing is not None and existing[1] == MODE_TREE else None
    for name, sub_oid in subdirs.items():
        child = names.join(p, name)
        if refusal(name, MODE_TREE) is not None:
            continue  # a directory git refuses (GIT~1, '.git '...): left out with all below it
        new: str | None
        if child in dirty:
            new = yield child, sub_oid
        else:
            new = sub_oid if sub_oid and sub_oid != EMPTY_TREE and ws.store.tree_items(sub_oid) else None
        items.pop(name, None)
        if new is not None:
            items[name] = (new, MODE_TREE)
    if not items and p:
        return None
    data, parsed = tree_parsed(items)
    oid = pw.add(OBJ_TREE, data)
    if (sink := getattr(getattr(ws.overlay, "recording", None), "sink", None)) is not None:
        sink.trees[oid] = parsed  # (a record's: wscommit gives the store them once in the vault)
    return oid


def _file_blob(
    ws: Fork, e: Entry, pw: PackWriter, conv: Conversion | None, noted: Noted | None = None
) -> tuple[str, Entry]:
    """The blob of file entry ``e``'s bytes, and the entry they are of: ``e``, or, when a
    write replaced the file since the entries were read (its old bytes unlinked before
    they were hashed), the path's entry now, if it is a file still. A file the record's
    status wrote into ``pw`` unchanged since (``noted``: its stat before this read,
    :meth:`.overlaydb.OverlayDB.note_read`) is not read again (:mod:`.recordblobs`).

    Only what raced is read again: a capture read every entry and hashed every file again
    after each such miss, and under writes to one file that came faster than a whole
    capture took it gave up after :data:`.wsview.RACE_TRIES` ("kept changing": race1's
    finding in the twenty-third round, 1 run of 56 of two threads rewriting one file); one
    entry's read and its file's open are a few system calls, a write's window is that
    small. The unlink is not deferred while a capture reads (the other way to close it):
    a pure-FUSE read handle takes an unlinked overlay file for a retired one and moves to
    the path's copy (fuse/handles.py ``_behind``). A path that stops being a file (removed,
    a directory now) is :class:`.wsview.Raced` as before: the capture reads everything
    again."""
    if (oid := _from_status(ws, e, pw, conv, noted)) is not None:
        return oid, e
    first = e
    for _ in range(RACE_TRIES):
        assert e.fileid is not None
        try:
            fpath, root = ws.overlay.file_path(e.fileid), ws.overlay.file_root(e.fileid)
            oid = (
                pw.add_file(fpath, root) if conv is None else conv.blob(pw, e.path, e.mode, None, fpath, root)
            )
            return oid, e
        except FileNotFoundError as exc:
            # (an entry read again whose file is gone too is the capture's to read again
            # whole, as before: on pure FUSE one read again at once named the same
            # file, gone, its seq unchanged; whether it is missing for good is then
            # :func:`_missing`'s to say of what the whole read finds)
            err = _missing(ws, e, exc) if e is first else None
            if err is not None and not isinstance(err, Raced):
                raise err from exc
        now = ws.overlay.get(e.path)
        if now is None or now.kind != FILE or not now.fileid or (e is not first and now.fileid == e.fileid):
            break
        ws.overlay.note_read(now.fileid)  # (as for every file the capture reads: OverlayDB._claim)
        e = now
    raise Raced(f"{e.path} was replaced while being captured", details={"path": e.path})


def _from_status(
    ws: Fork, e: Entry, pw: PackWriter, conv: Conversion | None, noted: Noted | None
) -> str | None:
    """The blob id of ``e``'s file as the record's status wrote it into ``pw``
    (:mod:`.recordblobs`), when that is what this capture stores for it; None: read it."""
    sink: BlobSink | None = getattr(ws.overlay.recording, "sink", None)  # (recordblobs: not imported)
    if sink is None or not sink.owns(pw) or noted is None or not e.fileid:
        return None
    converts = conv is not None and e.mode in TEXT and e.path in conv.files
    if converts and conv is not None and not conv.conv.keeps_plain():
        return None
    return sink.taken(e.fileid, noted, converts=converts)


def _missing(ws: Fork, e: Entry, exc: FileNotFoundError) -> Exception:
    """What a capture raises for the overlay file of ``e`` found missing."""
    assert e.fileid is not None
    now = ws.overlay.get(e.path)
    if now is None or now.seq != e.seq or e.fileid.startswith(UPPER_FILE):
        # replaced since the entries were read (an upper-layer file: the kernel renames
        # and unlinks under a capture at any time)
        return Raced(f"{e.path} was replaced while being captured")
    return CorruptStateError(
        f"overlay file of {e.path} is missing",
        hint=f"bring it back with `avfs checkout {e.path} --from HEAD` or remove it",
    )
