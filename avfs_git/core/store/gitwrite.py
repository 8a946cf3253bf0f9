"""What the store writes: blobs (through libgit2), commits (through libgit2 or into a
pack) and who they are by (the identity from git's config, read through libgit2 or git),
the commit that keeps objects reachable (into a pack), and the pack of one operation.

:class:`StoreWrites` is a part of :class:`~.gitstore.GitStore` (its base class): its
methods use the store's path and thread-local repository.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from ..errors import CorruptStateError, UsageError
from .gitlib import git_error, git_errors, libgit2_loaded
from .gitrun import (
    IDENTITY_FILE,
    config_stamps,
    git_config_env,
    git_config_files,
    git_env,
    keep_config,
    kept_config,
    run,
)
from .identity import Identity, Signatures, resolve
from .objects import ObjectReadError

if TYPE_CHECKING:
    import pygit2

    from .objreader import ObjectReader
    from .packwriter import PackWriter


class StoreWrites:
    """The writing half of :class:`~.gitstore.GitStore`."""

    path: str
    _reader: ObjectReader  # (the store's pure reader: object headers without pygit2)

    if TYPE_CHECKING:

        @property
        def _repo(self) -> pygit2.Repository: ...

    def blob_from_file(self, path: str) -> str:

        try:
            return str(self._repo.create_blob_fromdisk(path))
        except git_errors(OSError) as exc:
            raise git_error(exc, f"cannot read overlay file {path}", CorruptStateError) from exc

    def blob_from_bytes(self, data: bytes) -> str:
        return str(self._repo.create_blob(data))

    def signature(self, ident: Identity | None = None, fallback: tuple[str, str] | None = None) -> Signatures:
        """Author and committer of a new commit, in git's order (see :mod:`.identity`):
        ``ident`` (the environment), then the vault's config and the global ones
        (``author.name``/``committer.name`` before ``user.name``), then ``fallback``,
        then avfs' default."""
        values = self._identity_config()
        return resolve(ident, values.get, fallback)

    _IDENT_KEYS = (
        "author.name",
        "author.email",
        "committer.name",
        "committer.email",
        "user.name",
        "user.email",
    )

    def _identity_config(self) -> dict[str, str]:
        """The identity keys of the vault's config and the global ones, read again only
        when one of those files (or the environment that names them) changed: reading them
        costs ~0.3 ms through libgit2 and ~2 ms through git, a stat ~10 µs. Files those
        include are not watched.

        Through libgit2 when this process has loaded it, else through ``git config`` (so
        that ``avfs checkpoint save`` does not import pygit2; its answer kept for the next
        process by the files' stamps, :func:`.gitrun.kept_config`): git's own answer, the right
        one where the two differ (the vault is git's). ``tests/test_identity.py`` compares
        them: they agree on the vault's and the global files, includes and conditional
        includes; libgit2 does not read ``$GIT_CONFIG_GLOBAL``, ``$GIT_CONFIG_SYSTEM`` nor
        settings given as ``git -c`` (``GIT_CONFIG_PARAMETERS``, ``GIT_CONFIG_COUNT``), so
        git is asked whenever one is set."""
        use_libgit2 = libgit2_loaded() and not (git_config_env().keys() - {"GIT_CONFIG_NOSYSTEM"})
        paths = self._identity_files(use_libgit2)
        key: list[tuple[str, int, int]] = []
        for path in paths:
            try:
                st = os.stat(path)
                key.append((path, st.st_mtime_ns, st.st_size))
            except OSError:
                key.append((path, -1, -1))
        if not use_libgit2:
            key.extend((f"{k}={v}", 0, 0) for k, v in sorted(git_config_env().items()))
        hit: tuple[list[tuple[str, int, int]], dict[str, str]] | None = getattr(self, "_ident_cfg", None)
        if hit is not None and hit[0] == key:
            return hit[1]
        values = self._identity_libgit2() if use_libgit2 else self._identity_git_kept()
        self._ident_cfg = (key, values)
        return values

    def _identity_git_kept(self) -> dict[str, str]:
        """:meth:`_identity_git`, or its answer to an earlier process whose config files
        were the same (:func:`.gitrun.kept_config`: a cold commit starts no ``git config``)."""
        key = config_stamps(self.path)
        if key is not None:
            kept = kept_config(self.path, IDENTITY_FILE, key)
            if kept is not None:
                return {k: v for k, v in kept.items() if v is not None}
        values = self._identity_git()
        if key is not None:
            keep_config(self.path, IDENTITY_FILE, key, values)
        return values

    def _identity_files(self, use_libgit2: bool) -> list[str]:
        """The config files the identity is read from (the vault's, the global ones)."""
        paths = [os.path.join(self.path, "config")]
        if use_libgit2:
            import pygit2

            levels = pygit2.enums.ConfigLevel
            sp = pygit2.settings.search_path
            for level, name in (
                (levels.GLOBAL, ".gitconfig"),
                (levels.XDG, "config"),  # its XDG path is $XDG_CONFIG_HOME/git
                (levels.SYSTEM, "gitconfig"),
            ):
                paths += [os.path.join(d, name) for d in (sp[level] or "").split(os.pathsep) if d]
            return paths
        return paths + git_config_files()

    def _identity_libgit2(self) -> dict[str, str]:
        try:
            cfg = self._repo.config.snapshot()
            return {k: str(cfg[k]) for k in self._IDENT_KEYS if k in cfg}
        except git_errors():
            return {}

    def _identity_git(self) -> dict[str, str]:
        """``git config`` of the vault: the last value of each key wins, as in git. A
        config git cannot parse gives nothing (as through libgit2): avfs' default."""
        env = git_env()
        env.update(git_config_env())
        proc = run(
            ["config", "-z", "--get-regexp", r"^(author|committer|user)\.(name|email)$"],
            git_dir=self.path,
            env=env,
            check=False,
        )
        values: dict[str, str] = {}
        if proc.returncode != 0:  # 1: none set; else unreadable
            return values
        for item in proc.stdout.split(b"\0"):
            k, sep, v = item.partition(b"\n")
            if sep:  # a key alone ("[user] name" without "="): no value for an identity
                values[k.decode("ascii", "replace")] = v.decode("utf-8", "surrogateescape")
        return values

    def keep_commit(
        self, oids: Sequence[str], message: str, who: tuple[str, str]
    ) -> tuple[str, list[str]] | None:
        """A commit (no ref names it yet) that makes ``oids`` reachable: the commits among
        them are its parents, the trees and blobs are named in its tree (each under its own
        id); other kinds and missing ids are left out. By ``who`` (name, email) at time 0.
        Returns (commit, the ids it holds), or None when it would hold nothing.

        Each object's kind comes from its header (libgit2's only where the pure reader
        cannot tell), and the tree and the commit are written as one pack: a cold `avfs gc`
        does not import pygit2 for them (~50 ms)."""
        from .packwriter import OBJ_COMMIT, OBJ_TREE

        modes = {"tree": b"40000", "blob": b"100644"}
        parents: list[str] = []
        entries: list[tuple[str, bytes]] = []
        held = []
        unique = list(dict.fromkeys(oids))  # (each once)
        known = self._reader.kinds(unique)  # all at once; the rest one by one below
        for oid in unique:
            kind = known.get(oid) or self._kind(oid)
            if kind == "commit":
                parents.append(oid)
            elif kind in modes:
                # each named by its own id: 40 characters, so git's order is the names'
                entries.append((oid, b"%s %s\0%s" % (modes[kind], oid.encode("ascii"), bytes.fromhex(oid))))
            else:
                continue
            held.append(oid)
        if not held:
            return None
        who_line = f"{who[0]} <{who[1]}> 0 +0000"
        pack = self.pack_writer()
        try:
            tree = pack.add(OBJ_TREE, b"".join(e for _, e in sorted(entries)))
            head = f"tree {tree}\n" + "".join(f"parent {p}\n" for p in parents)
            text = f"{head}author {who_line}\ncommitter {who_line}\n\n{message}"
            commit = pack.add(OBJ_COMMIT, text.encode("utf-8"))
            pack.finish()
        except BaseException:
            pack.abort()
            raise
        return commit, held

    def object_kinds(self, oids: Iterable[str]) -> dict[str, str]:
        """The kind ("blob", "tree", "commit", "tag") of each of ``oids`` the vault holds
        (those it does not are left out): all at once through the pure reader, the rest
        one by one (:meth:`_kind`)."""
        unique = list(dict.fromkeys(oids))
        known = self._reader.kinds(unique)
        out: dict[str, str] = {}
        for oid in unique:
            kind = known.get(oid) or self._kind(oid)
            if kind is not None:
                out[oid] = kind
        return out

    def _kind(self, oid: str) -> str | None:
        """The kind of object ``oid`` (None: the vault does not hold it), from its header
        through the pure reader; through libgit2 where that cannot say."""
        try:
            head = self._reader.header(oid)
        except ObjectReadError:
            head = None
        else:
            if head is not None or not ("pygit2" in sys.modules or self._reader.skipped):
                return None if head is None else head[0]
        try:
            obj = self._repo.get(oid)
        except git_errors() as exc:
            raise git_error(exc, f"cannot read object {oid}") from exc
        return None if obj is None else str(obj.type_str)

    def pack_writer(self, exists: Callable[[str], bool] | None = None) -> PackWriter:
        """A pack for the objects of one operation (see :mod:`.packwriter`); ``exists``:
        the caller's own cheap answer of which objects the vault holds (skipped)."""
        from .packwriter import PackWriter

        # no existence check of the vault's per object: it costs ~40 µs a lookup, and a
        # duplicate in a pack is harmless (a repack drops it)
        return PackWriter(self.path, exists)

    def create_commit(
        self,
        tree: str,
        parents: list[str],
        message: str,
        author: Signatures | None = None,
        pack: PackWriter | None = None,
    ) -> str:
        """Write a commit object without moving any ref (refs move by CAS in :mod:`.refs`).

        ``author``: who the commit is by (author and committer, :meth:`signature` when
        None). With ``pack`` the commit goes into that pack (the caller finishes it).
        """
        sigs = (author or self.signature()).now()
        # the commit's text is written here for both paths: libgit2's signatures refuse an
        # empty email, which git (and so GIT_AUTHOR_EMAIL="") records
        head = f"tree {tree}\n" + "".join(f"parent {p}\n" for p in parents)
        text = f"{head}author {sigs.author.line()}\ncommitter {sigs.committer.line()}\n\n{message}"
        try:  # (bytes that are not UTF-8, kept as surrogates, are written back as they were)
            data = text.encode("utf-8", "surrogateescape")
            if b"\0" in data:  # (git fsck: nulInCommit)
                raise UsageError(
                    "the commit message holds a NUL byte, which a commit cannot hold; nothing was committed",
                    hint="leave the NUL out of the message (git fsck refuses such a commit)",
                )
        except UnicodeEncodeError:
            raise UsageError(
                "the commit message is not text: it holds a lone surrogate; nothing was committed",
                hint="give the message as UTF-8 text (or as the bytes a command line passes)",
            ) from None
        if pack is not None:
            from .packwriter import OBJ_COMMIT

            return pack.add(OBJ_COMMIT, data)
        if "pygit2" not in sys.modules:  # one loose object is not worth libgit2's load
            from ..errors import from_oserror
            from .packwriter import write_loose

            try:
                return write_loose(self.path, "commit", data)
            except OSError as exc:
                raise from_oserror(exc, "cannot write commit") from exc
        import pygit2

        try:
            return str(self._repo.odb.write(pygit2.enums.ObjectType.COMMIT, data))
        except git_errors(OSError) as exc:
            raise git_error(exc, "cannot write commit") from exc
