"""What a workspace's write checks before it changes anything, and the storing of new
content: that the path still holds what the caller read (``expect``, optimistic writes),
that the vault's quota has room, and content written into a new overlay file under it.

:class:`WriteChecks` is the base of :class:`.wswrite.Mutations` (mixed into
:class:`.workspace.Workspace`); what it needs of the workspace is declared at its top.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from typing import Protocol

from ..errors import (
    ExpectMismatchError,
    IsDirectoryError,
    PathNotFoundError,
    QuotaExceededError,
    UsageError,
    from_oserror,
    want_str,
)
from ..store.gitstore import GitStore, blob_id, file_blob_id
from ..types import NodeKind
from .livedir import LiveDir
from .overlay import Overlay
from .wsview import CHUNK, View, norm, norm_read

EXPECT_ABSENT = "absent"  # an ``expect`` that the path holds nothing (create only)


def parse_expect(expect: str) -> str | None:
    """An ``expect`` value: a full blob id (lower-case hex, 40 or 64 digits), or
    :data:`EXPECT_ABSENT` (None); anything else is a UsageError."""
    if expect == EXPECT_ABSENT:
        return None
    e = want_str(expect, "expect").strip().lower()
    if len(e) in (40, 64) and all(c in "0123456789abcdef" for c in e):
        return e
    raise UsageError(
        f"invalid expect {expect!r}: a full blob id (40 or 64 hex digits) or 'absent'",
        hint="`avfs stat --json PATH` or `avfs cat --json PATH` gives the blob id (as `blob`)",
        details={"expect": expect},
    )


class Readable(Protocol):
    """What content streams offer: a file object, or a blob streamed out of git."""

    def read(self, n: int = -1, /) -> bytes: ...


class VaultQuota(Protocol):
    """The vault's quota as a workspace checks it (:class:`.quota.QuotaTracker`)."""

    def limits(self) -> tuple[int | None, int | None]: ...
    def check(self, fork: str, own_bytes: int, own_files: int, grow_bytes: int, grow_files: int) -> None: ...
    def bytes_left(self, fork: str, own_bytes: int) -> int: ...


class WriteChecks:
    """The checks of a workspace's writes, and content stored under the quota."""

    fork: str
    store: GitStore
    overlay: Overlay
    view: View
    quota: VaultQuota
    vault_name: str

    def live_dir(self) -> LiveDir | None:
        """The fork's live overlay mount, that changes go through (see the workspace)."""
        raise NotImplementedError

    def write_lock(self) -> AbstractContextManager[None]:
        """The lock every write with ``expect`` holds from its check to its write (see
        the workspace)."""
        raise NotImplementedError

    # -- optimistic writes: go ahead only if the path still holds what the caller read ------
    def blob_of(self, path: str) -> str | None:
        """The git blob id of what ``path`` holds now: a file's bytes, a symlink's target
        (as git stores a link); None when nothing is there. What ``expect`` is compared
        with, and what reads report as ``blob``. A directory is IsDirectoryError."""
        p = norm_read(path)
        try:
            node = self.view.resolve(p, follow=False)
            if node.oid is not None and not (node.is_dir or node.is_link or node.materialized):
                # a file of git's: its id, its size unasked (stat's would fetch a lazy vault's
                # unfetched blob: a cp or mv answering the blob it moved failed offline, moved)
                return node.oid
            st = self.view.stat(p, follow=False)
        except PathNotFoundError:
            return None
        if st.kind is NodeKind.DIR:
            raise IsDirectoryError(f"{st.path}: is a directory", details={"path": st.path})
        if st.kind is NodeKind.SYMLINK:
            return blob_id(os.fsencode(st.target or ""))
        if st.oid is not None and not st.materialized:
            return st.oid
        live = self.live_dir()
        if live is not None:
            try:
                # from the mount point, no link followed on the way: a directory above it
                # that the running command swaps for a link to a host directory had the
                # host's file hashed and its id given as the fork's (MCP ``read_file``'s
                # ``blob``, an ``expect`` mismatch's ``current``; twenty-third round,
                # NAME=attack14)
                with live.pinned(st.path) as at:
                    return file_blob_id(at)
            except OSError as exc:
                raise from_oserror(exc, st.path) from exc
        return blob_id(self.view.read(st.path))

    def _check_expect(self, path: str, expect: str) -> None:
        """Raise ExpectMismatchError unless ``path`` holds ``expect`` (a blob id, or
        :data:`EXPECT_ABSENT`); call with :meth:`write_lock` held."""
        want = parse_expect(expect)
        now = self.blob_of(path)
        if now != want:
            p = norm(path)
            raise ExpectMismatchError(
                f"{p} is not what the write expected: it holds {now or 'nothing'}, not {want or 'nothing'};"
                " nothing was written",
                hint="read the file again, then retry with --expect set to the blob id it holds now (named above)",
                details={"path": p, "expected": want, "current": now},
            )

    def _check_quota_size(self, adding: int) -> None:
        """Refuse content that alone is over the vault's bytes limit, before storing it
        (the check of the whole vault follows with the entry)."""
        quota = self.quota.limits()[0]
        if quota is not None and adding > quota:
            raise QuotaExceededError(
                f"file of {adding} bytes is over the vault's quota of {quota} bytes",
                hint="raise it with `avfs quota set --bytes SIZE`",
                details={"what": "bytes", "used": None, "adding": adding, "quota": quota},
            )

    def _check_quota(self, adding: int, replacing: int = 0, new_files: int = 0) -> tuple[int, int]:
        """Refuse a change that adds ``adding`` bytes in place of ``replacing`` and
        ``new_files`` overlay files when the vault would pass its quota (vault-wide: git
        objects and every fork's overlay; see :class:`.quota.QuotaTracker`). Inside the
        overlay's transaction the fork's own totals are exact. Returns the fork's overlay
        totals (bytes, files) once the change is made."""
        self._check_quota_size(adding)
        nbytes, nfiles = self.overlay.totals()
        after = (nbytes - replacing + adding, nfiles + new_files)
        self.quota.check(self.fork, after[0], after[1], adding - replacing, new_files)
        return after

    def check_unwritten(self, holes: int, paths: list[str]) -> None:
        """Refuse to record ``paths``, files whose sizes pass what their blocks hold by
        ``holes`` bytes in all (a sparse file's holes), when that would take the vault
        past its quota.

        The quota counts what is on disk, so ``truncate -s 1T f`` costs a command nothing,
        but its blob is a tebibyte of zeros to deflate on the host, and every checkout of
        it (``git clone``, ``avfs export``, a restore) writes all of it: recorded, the holes
        are bytes added to the vault (found in the twenty-second round, NAME=attack13).
        Raises QuotaExceededError naming them; nothing is changed."""
        if holes <= 0:
            return
        try:
            self._check_quota(holes)
        except QuotaExceededError as exc:
            shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
            raise QuotaExceededError(
                f"{shown}: {holes} bytes of holes (sparse files), which their blobs would hold"
                f" as bytes, are more than vault {self.vault_name}'s quota has room for",
                hint="remove or shrink them (`avfs rm PATH`), or raise the quota with `avfs quota set --bytes SIZE`",
                details={**exc.details, "what": "sparse", "paths": paths[:100]},
            ) from None

    def _store_bytes(
        self, src: bytes | Readable | str, replacing: int = 0, *, used_later: bool = False, new_file: int = 1
    ) -> tuple[str, int]:
        """Write content into a new overlay file; returns (fileid, size).

        ``replacing`` is the size of overlay content this write replaces (not counted twice
        against the quota); ``new_file``: 1 when the content becomes a file the overlay did
        not have (the file quota), else 0. ``used_later``: check here only that the content
        fits the quota at all (streams: while they are read); the caller checks the
        vault's totals in its transaction.
        """
        fid = self.overlay.new_fileid()
        dest = self.overlay.file_path(fid)
        try:
            if isinstance(src, bytes):
                if used_later:
                    self._check_quota_size(len(src))
                else:
                    self._check_quota(len(src), replacing, new_file)
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
                try:
                    view = memoryview(src)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
                return fid, len(src)
            if isinstance(src, str):
                import shutil  # (here, not at the top: a cold status or cat never runs it)

                self._check_quota(os.stat(src).st_size, replacing, new_file)
                shutil.copyfile(src, dest)
                return fid, os.stat(dest).st_size
            size = 0
            if not used_later:
                self._check_quota(0, 0, new_file)
            quota_left = self.quota_left() + replacing
            with open(dest, "wb") as fh:
                while chunk := src.read(CHUNK):
                    size += len(chunk)
                    if size > quota_left:
                        quota = self.quota.limits()[0]
                        raise QuotaExceededError(
                            f"content is over what is left of vault {self.vault_name}'s quota of"
                            f" {quota} bytes ({max(0, quota_left)} bytes)",
                            hint="checkpoint or rm changes, or raise it with `avfs quota set --bytes SIZE`",
                            details={"what": "bytes", "used": None, "adding": size, "quota": quota},
                        )
                    fh.write(chunk)
            return fid, size
        except BaseException as exc:
            unlink_quiet(dest)
            if isinstance(exc, OSError):
                raise from_oserror(exc, dest) from exc
            raise

    def quota_left(self) -> int:
        """Bytes the vault may still grow by (a mount bounds its open files' writes by it):
        exact when little is left, a lower bound otherwise; negative when over."""
        return self.quota.bytes_left(self.fork, self.overlay.totals()[0])


def unlink_quiet(path: str) -> None:
    """Remove an overlay file a failed write made, if it is there."""
    try:
        os.unlink(path)
    except OSError:
        pass


def want_data(value: object) -> None:
    """A file's bytes given to the public API (``Workspace.write``): bytes or a binary
    stream; a str is a TypeError that says to encode it (it was taken for a host file's
    path: "cannot use x.txt: No such file or directory", hint: check --home; h-polish3)."""
    if isinstance(value, str):
        raise TypeError("data must be bytes or a binary stream, not str: give text.encode()")
    if value is None or isinstance(value, (int, float, list, dict, tuple)):
        raise TypeError(f"data must be bytes or a binary stream, not {type(value).__name__}")
