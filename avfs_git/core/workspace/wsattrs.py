"""The ``.gitattributes`` a capture or a status judges files by: those of the view being
recorded (the entries on the base), at each directory above the files it reads, and
git's clean conversions by them (what ``git add`` would store:
:class:`~.gitclean.Cleaner`, libgit2's filters).

What it costs: without a ``.gitattributes`` above any of the files, nor the vault's
``info/attributes``, nothing (a few tree lookups per changed directory). With one, a file
whose bytes hold no CR and no ``$Id`` is stored as it is without asking (git's clean
conversions only take CRs out and collapse ``$Id: ...$``), so libgit2 is loaded (~40-80
ms, which `avfs status` and `avfs checkpoint save` otherwise never pay) only for a file
that has one of them.

With a ``working-tree-encoding`` in an attribute file, every file is asked (its bytes
may be in another encoding: :func:`.gitsmudge.to_git` turns them into UTF-8 first).

``core.autocrlf`` (``true`` or ``input``) set in the vault's config or in git's global or
system config (``~/.gitconfig``, ``$XDG_CONFIG_HOME/git/config``, ``/etc/gitconfig``: what
the person's git in the mount reads) applies with no attribute file anywhere too, and so do
git's global (``core.attributesFile``) and system attribute files
(:mod:`~..store.gitattrfiles`, since gitmodel9: before, they counted only where the view had
a ``.gitattributes`` of its own, and as libgit2 found them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from ..store import names
from ..store.configtext import git_bool
from ..store.gitattrfiles import outer_attributes
from ..store.gitclean import ATTRIBUTES, Cleaner
from ..store.gitrun import config_includes, config_text, git_config_files
from ..store.gitsmudge import ENCODING, Smudger, may_smudge
from ..store.gitstore import GitStore, blob_id
from ..store.lineconfig import line_endings
from ..store.treediff import diff_entry
from ..types import MODE_BLOB, MODE_EXEC, MODE_LINK, Change, ChangeStatus
from .overlay import Overlay
from .overlayentry import FILE, LINK_FILE, UPPER_FILE, Entry
from .wsview import Node, View, once_a_file

if TYPE_CHECKING:
    from .recordblobs import BlobSink

TEXT = (MODE_BLOB, MODE_EXEC)  # the modes conversions apply to (not links, not gitlinks)
_BLOBS = (MODE_BLOB, MODE_EXEC, MODE_LINK)  # (not a gitlink's commit)
# A file larger is recorded as it is, never read whole to be converted. git's clean
# conversion of a file runs in memory at any size (~2x the file in `git add`), and avfs's
# took ~4x (the bytes read, libgit2's result, its copy as bytes, the blob written): found
# in the sixteenth round (NAME=attack7), a confined command's `.gitattributes` of `* text`
# and a 256 MiB file of CRLF lines took the mount's daemon to a peak of 1.06 GB in the
# exec's commit (52 MB without the attribute): a file of the quota's size, or none, could
# take the host's memory. git's own `core.bigFileThreshold` default.
MAX_CONVERTED = 512 << 20
# git (2.39, attr.c ATTR_MAX_FILE_SIZE) ignores a larger attributes file, with a warning
MAX_ATTRIBUTES = 100 << 20


def small_bytes(view: View, node: Node, limit: int | None = None) -> bytes | None:
    """:func:`small_read`'s bytes."""
    got = small_read(view, node, limit)
    return None if got is None else got[0]


def small_read(view: View, node: Node, limit: int | None = None) -> tuple[bytes, os.stat_result] | None:
    """(The bytes of ``node``'s materialized file, its descriptor's stat before they were
    read) when it holds at most ``limit`` of them;
    None when its content is still in git, it is larger (recorded as it is; by default
    :data:`MAX_CONVERTED`), or it cannot
    be read as a regular file now. Opened from its root with no link followed on the way
    (:meth:`.wsview.View.open_regular`), its size that descriptor's: found in the
    twenty-third round (NAME=attack14), a directory above it that a running command swapped
    for a link to a host directory had the host's file read by its path (its size, its
    bytes hashed for a status, a host ``.gitattributes`` applied to the fork's files)."""
    if limit is None:
        limit = MAX_CONVERTED  # (read at the call: a test lowers it)
    try:
        fd = view.open_regular(node)
    except OSError:
        return None
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        if (size := st.st_size) > limit:
            return None
        # read by its size (one more byte: a file grown since is read on, to ``limit``): a
        # buffered read of ``limit + 1`` allocated 512 MiB a file (134 against 16 us a small
        # file; record3: a tenth of the status of an exec's 12,285 new files)
        want = min(size + 1, limit + 1)
        chunks, got = [os.read(fd, want)], 0
        while len(chunks[-1]) == want and (got := got + want) <= limit:
            want = min(1 << 20, limit + 1 - got)
            chunks.append(os.read(fd, want))
        return b"".join(chunks), st  # (st: taken before the read)
    finally:
        os.close(fd)


def _named(store: GitStore, word: bytes) -> bool:
    """Whether the vault's config or git's global and system ones (the files the person's
    git in the mount reads: :func:`.gitrun.git_config_files`), or a file one of them
    includes, name ``word`` at all: a few small files read, libgit2 asked only when one
    does; each read again only when its ``stat`` changed (:func:`.gitrun.config_text`).
    (An included file was not looked in: ``core.autocrlf=true`` from an ``[include]``
    went unseen where libgit2 and git read it; found in the nineteenth round, review8.)"""
    todo = [os.path.join(store.path, "config"), *git_config_files()]
    seen: set[str] = set()
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        if len(seen) >= 32:
            return True  # (libgit2 decides)
        seen.add(path)
        text = config_text(path)
        if text is None:
            continue
        if word in text:
            return True
        if b"include" in text:
            more = config_includes(path)
            if more is None:
                return True  # (an include not followed here: libgit2 decides)
            todo += more
    return False


def autocrlf(store: GitStore, branch: str | None = None) -> str | None:
    """``core.autocrlf`` when it converts ("true" or "input"), else None: the vault's
    config, then git's global and system ones, as the person's git in the mount (and
    ``git checkout`` of a plain clone) reads it; ``branch``: in the mount of that fork
    (an ``includeIf "onbranch:"``: :func:`~..store.lineconfig.fork_settings`)."""
    told = line_endings(store.path, branch)  # (git's reading, where libgit2 would read other files)
    if told is not None:
        val = told.get("core.autocrlf", "").lower()
    elif not _named(store, b"autocrlf"):
        return None
    else:
        from ..store.vaultconfig import config_bool

        if (store.config_value("core.autocrlf") or "").lower() == "input":
            return "input"
        # (git's boolean: "2" and "1k" are true too, and a key without "=")
        return "true" if config_bool(store, "core.autocrlf", False) else None
    if val == "input":
        return "input"
    return "true" if git_bool(val) else None


def eol_crlf(store: GitStore, branch: str | None = None) -> bool:
    """Whether ``core.eol=crlf`` is set (read as :func:`autocrlf`)."""
    told = line_endings(store.path, branch)
    if told is not None:
        return told.get("core.eol", "").lower() == "crlf"
    if not _named(store, b"eol"):
        return False
    return (store.config_value("core.eol") or "").lower() == "crlf"


def may_change(data: bytes) -> bool:
    """Whether git's clean conversions can change ``data`` at all."""
    return b"\r" in data or b"$Id" in data


class Conversions:
    """git's clean conversions of files of one view, the cleaner made at the first file
    that may need it, and whether git's checkout would write a file's blob as other bytes
    than the file holds (:meth:`checkout_differs`); :meth:`close` when done."""

    def __init__(
        self,
        store_path: str,
        files: dict[str, bytes],
        index: dict[str, tuple[str, int]],
        *,
        encodings: bool,
        smudges: bool,
        branch: str | None = None,
    ) -> None:
        self._args = (store_path, files, index)
        self._branch = branch  # (the fork's: its config, :func:`~..store.lineconfig.fork_settings`)
        self._cleaner: Cleaner | None = None
        self._encodings = encodings  # (any bytes may be in another encoding: all are asked)
        self._smudges = smudges  # (a checkout may convert: see checkout_differs)
        self._smudger: Smudger | None = None

    def clean(self, path: str, data: bytes) -> bytes | None:
        """What ``git add`` stores for ``data`` at ``path``; None: the bytes as they are."""
        if not self._encodings and not may_change(data):
            return None
        if self._cleaner is None:
            self._cleaner = Cleaner(*self._args, self._branch)
        return self._cleaner.clean(path, data)

    def keeps_plain(self) -> bool:
        """Whether bytes :func:`may_change` says no clean conversion changes are stored and
        checked out as they are, whatever the attributes (no ``working-tree-encoding``
        anywhere, no CRLF checkout: :meth:`checkout_differs` is false for them)."""
        return not self._encodings and not self._smudges

    def checkout_differs(self, path: str, stored: bytes, data: bytes) -> bool:
        """Whether ``git checkout`` of the blob ``stored`` at ``path`` writes other bytes
        than ``data`` (the file's): a file written with LF under ``eol=crlf`` is stored as
        it is, and a mount showing the blob would show CRLF (core/workspace/wssmudge.py),
        where git's work tree keeps the file as it is."""
        if not self._smudges:
            return False
        if self._smudger is None:
            self._smudger = Smudger(self._args[0], self._branch)
            for d, text in self._args[1].items():
                self._smudger.add_attributes(d, text)
        out = self._smudger.smudge(path, stored)
        return (stored if out is None else out) != data

    def close(self) -> None:
        if self._cleaner is not None:
            self._cleaner.close()
            self._cleaner = None
        if self._smudger is not None:
            self._smudger.close()
            self._smudger = None


def conversions_for(
    view: View, base_tree: str, entries: Mapping[str, Entry] | None, paths: Iterable[str]
) -> Conversions | None:
    """The conversions of ``paths`` (files of the view made of ``entries``, by path, on the
    base whose tree is ``base_tree``; None: the view as it is now), or None when no
    attribute file can apply to them."""
    paths = list(paths)
    if not paths:
        return None
    store = view.store
    dirs = names.ancestors_of_all(paths)
    files: dict[str, bytes] = {}
    for d in sorted(dirs):
        path = names.join(d, ATTRIBUTES)
        chain = [*names.ancestors(path), path]
        node = view.lookup(path) if entries is None else view.lookup_in(path, chain, entries)
        if node is None or node.mode not in TEXT:
            continue  # (git never reads one through a link)
        if view.file_path(node) is not None:
            got = small_bytes(view, node, MAX_ATTRIBUTES)
            if got is None:
                continue  # (unreadable now, or past git's bound: git ignores it)
            data = got
        elif node.oid is not None:
            data = store.blob_data(node.oid, path=path)
        else:
            continue
        if len(data) <= MAX_ATTRIBUTES:  # (git ignores a larger one)
            files[d] = data
    info = os.path.join(store.path, "info", "attributes")
    branch = view.branch  # (the fork's config, as git in its worktree reads it)
    outer = outer_attributes(store.path, branch)  # (git's global and system attribute files)
    if not files and not os.path.exists(info) and not outer and autocrlf(store, branch) is None:
        return None
    index: dict[str, tuple[str, int]] = {}
    for p in paths:
        held = store.tree_lookup(base_tree, p)
        if held is not None and held[1] in TEXT:
            index[p] = held
    try:
        with open(info, "rb") as fh:
            extra = fh.read()
    except OSError:
        extra = b""
    texts = (*files.values(), extra, outer)
    encodings = any(ENCODING.encode() in f for f in texts)
    smudges = autocrlf(store, branch) == "true" or may_smudge(texts, eol_crlf=eol_crlf(store, branch))
    return Conversions(store.path, files, index, encodings=encodings, smudges=smudges, branch=branch)


def file_oids(
    view: View, files: list[tuple[str, Entry]], entries: Mapping[str, Entry] | None
) -> dict[str, str]:
    """The blob id ``git add`` would store for each materialized file of ``files`` (path,
    its entry) in the view made of ``entries``: its bytes hashed, converted first where
    the view's attributes say so (``entries`` None: the view as it is now)."""
    conv = conversions_for(view, view.base_tree, entries, [p for p, e in files if e.mode in TEXT])
    hashed = once_a_file()  # (hard links: one file, hashed once)
    try:
        out: dict[str, str] = {}
        # (the ids hashed kept in one transaction, the kept ones read a few hundred a query)
        with view.source.keeping_oids([e.fileid for _p, e in files if e.fileid]):
            _oids_into(view, files, conv, hashed, out, _sink(view))
        return out
    finally:
        if conv is not None:
            conv.close()


def _oids_into(
    view: View,
    files: list[tuple[str, Entry]],
    conv: Conversions | None,
    hashed: Callable[[str], str],
    out: dict[str, str],
    sink: BlobSink | None = None,
) -> None:
    """``sink``: a record's (:mod:`.recordblobs`): each blob written as it is hashed."""
    for p, e in files:
        n = Node(p, e.mode, None, e)
        got = small_read(view, n) if conv is not None and e.mode in TEXT else None
        if got is not None and conv is not None:
            data, st = got
            cleaned = conv.clean(p, data)
            if sink is not None:
                out[p] = sink.add_read(e.fileid or "", st, data, cleaned, _as_is(data))
            else:
                out[p] = blob_id(data if cleaned is None else cleaned)
        elif sink is not None and (oid := _sunk(view, n, sink)) is not None:
            out[p] = oid
        else:
            out[p] = view.entry_oid(n, hashed)  # (unreadable: it says why)


def _sink(view: View) -> BlobSink | None:
    """A record's sink of the view's overlay in this thread, while it takes blobs
    (core/workspace/recordblobs.py; not imported: it loads with the record stage only)."""
    sink: BlobSink | None = getattr(getattr(view.source, "recording", None), "sink", None)
    return sink if sink is not None and sink.writable else None


def _as_is(data: bytes) -> bool:
    return not may_change(data)


def _sunk(view: View, n: Node, sink: BlobSink) -> str | None:
    """The blob id of materialized file ``n``, its bytes written into a record's pack as
    they are hashed; None: hashed as before (a link's; one that cannot be read now, which
    that read then says why)."""
    fid = n.entry.fileid if n.entry is not None else None
    if not fid or fid.startswith(LINK_FILE):
        return None
    if fid.startswith(UPPER_FILE):  # (opened, and its id kept, as a status keeps it: upper_oid)
        return view.entry_oid(n, lambda path: sink.hash_path(fid, path, _as_is))
    try:
        fd = view.open_regular(n)  # (pure FUSE's own file: from its root, no link followed)
        if fd is None:
            return None
        try:
            return sink.hash_fd(fid, fd, _as_is)
        finally:
            os.close(fd)
    except OSError:
        return None


def compared(
    view: View, todo: list[tuple[Change, Entry | None]], entries: Mapping[str, Entry], out: list[Change]
) -> None:
    """A status's changes into ``out``: each of ``todo`` as it is, or, with the entry of a
    materialized file, compared with the base by the blob ``git add`` would store for it
    (:func:`file_oids`; ``entries``: the view's, by path)."""
    if (sink := _sink(view)) is not None:  # (a record's: a file holding its base's bytes again: not stored)
        sink.know(c.old_oid for c, e in todo if e and c.old_oid and c.old_mode in _BLOBS)
    oids = file_oids(view, [(c.path, e) for c, e in todo if e], entries)
    for c, e in todo:
        if e is not None:
            old = None if c.status is ChangeStatus.ADDED else (c.old_oid or "", c.old_mode or 0)
            # (the mode the status found: git's, under core.fileMode false, core/store/filemode.py)
            diff_entry(view.store, c.path, old, (oids[c.path], c.new_mode or e.mode), out)
        else:
            out.append(c)


def converted_paths(view: View, entries: list[Entry]) -> frozenset[str]:
    """The paths of the materialized files among ``entries`` whose bytes git's clean
    conversion changes (a CRLF file under ``text=auto``), or whose blob git's checkout
    writes as other bytes (an LF file under ``eol=crlf``): a commit holds their blob while
    the workspace keeps the bytes, so their entries stay."""
    files = [e for e in entries if e.kind == FILE and e.mode in TEXT]
    conv = conversions_for(view, view.base_tree, None, [e.path for e in files])
    if conv is None:
        return frozenset()
    out: set[str] = set()
    try:
        for e in files:
            data = small_bytes(view, Node(e.path, e.mode, None, e))
            if data is None:
                continue
            cleaned = conv.clean(e.path, data)
            stored = data if cleaned is None else cleaned
            if stored != data or conv.checkout_differs(e.path, stored, data):
                out.add(e.path)
    finally:
        conv.close()
    return frozenset(out)


CONVERTED = "converted"  # the overlay's record of them (a JSON list of paths)


def keep_converted(overlay: Overlay, captured: list[Entry], converted: frozenset[str]) -> None:
    """Record in the overlay (in its open transaction) the files whose bytes a commit's
    conversion changed: the mount's index holds their own stat data (mount/heldstat.py),
    so git reads nothing for them and its ``reset --hard`` leaves them, also after a
    remount. Paths captured again unconverted leave the record; a stale one costs git one
    read of the file."""
    old = converted_record(overlay)
    new = (old - {e.path for e in captured}) | converted
    if new != old:
        overlay.set_meta(CONVERTED, json.dumps(sorted(new)) if new else None)


def converted_record(overlay: Overlay) -> frozenset[str]:
    """What :func:`keep_converted` recorded."""
    raw = overlay.get_meta(CONVERTED)
    try:
        got = json.loads(raw) if raw else []
    except ValueError:
        return frozenset()
    return frozenset(p for p in got if isinstance(p, str)) if isinstance(got, list) else frozenset()
