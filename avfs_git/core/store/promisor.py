"""A lazy vault's promised objects: blobs a partial clone did not fetch, got through git.

A lazy vault (``avfs vault clone --lazy``) is a partial clone as git makes one: its remote
is recorded as the promisor (``remote.<name>.promisor = true``,
``remote.<name>.partialclonefilter = blob:none``) and the packs fetched from it carry a
``.promisor`` file. libgit2 (and so pygit2) has no partial-clone support (libgit2 #5564),
so a blob the vault does not hold is fetched here, through git, and then read as any other
object: one ``git fetch`` of the wanted ids (``fetch.negotiationAlgorithm=noop``, the ids on
stdin, as git's own lazy fetch does it), reached as every remote is
(:func:`.transport.transport`: the user's ssh settings and credential helpers, avfs's token
through the environment, never written into the vault), within :meth:`Promisor.timeout`
(the vault's ``fetch_timeout_s``, default :data:`FETCH_TIMEOUT_S`).

A blob that cannot be fetched (the server is gone, it timed out, it no longer has it) is a
:class:`~.errors.BlobNotLocalError` naming the remote, the blob and the path where the
reader knows it: never an empty file, never a crash.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

from ..errors import AvfsError, BlobNotLocalError
from . import configtext
from .freshblobs import FreshBlobs
from .redact import redact
from .remotecause import refused_credentials
from .threads import reset_at_fork

if TYPE_CHECKING:
    from .blobwire import Connection


class FetchWatcher(Protocol):
    """Told of each fetch of a :class:`Promisor` (a mount's prefetch, prefetch.Demand)."""

    def begin(self, path: str | None) -> None: ...
    def end(self) -> None: ...


FETCH_TIMEOUT_S = 60.0  # one fetch of missing blobs, start to end, unless the vault sets it (docs/lazy.md)
FILTER = "blob:none"
BATCH = 50_000  # ids per git process (a whole tree's blobs go in a few)
# what a demand read fetches besides its blob, unless the vault sets it (neighbours.py)
NEIGHBOURS = 100  # blobs
NEIGHBOURS_BYTES = 1 << 20  # their total size
# what the first miss in a Python package brings of its other sources (neighbours.py)
PACKAGE_BYTES = 8 << 20  # their total size
# a fetch over the kept connection (blobwire.py) holds its blobs in memory: bigger ones, or
# blobs whose size is not known, go through git fetch
WIRE_MAX_BYTES = 32 << 20
# the largest size the size cache takes from a server (its records hold 64 bits unsigned)
SIZE_MAX = (1 << 63) - 1


def unconfigure(git_dir: str, remote: str) -> None:
    """Make the vault a whole one again (every object is local): ``remote`` no longer a
    promisor, and its packs' ``.promisor`` marks removed."""
    from .gitrun import run

    for key in ("promisor", "partialclonefilter"):
        run(["config", "--unset-all", f"remote.{remote}.{key}"], git_dir=git_dir, check=False)
    pack_dir = os.path.join(git_dir, "objects", "pack")
    for name in os.listdir(pack_dir) if os.path.isdir(pack_dir) else ():
        if name.endswith(".promisor"):
            os.unlink(os.path.join(pack_dir, name))


# directories whose own files' sizes a handle asks in a small request of their own while the
# whole tree's are asked (:meth:`Promisor.claim_dir`); past that, a stat waits for the whole
DIRS_ASKED_MAX = 16


class Promisor:
    """The promisor remote of one vault, and the fetch of what it promised.

    ``token`` (the settings' ``AVFS_GIT_TOKEN``) and ``timeout_of`` (the vault's setting)
    are set by whoever opens the vault (the home; the vault); a vault opened without a home
    reaches the server with the user's own credential helpers only.
    """

    def __init__(self, git_dir: str, local_of: Callable[[list[str]], set[str]] | None = None) -> None:
        self.git_dir = git_dir
        self.token: str | None = None
        self.timeout_s: float | None = None  # set: this, whatever the vault's setting says
        # the vault's setting, read at each fetch (core/vaults/lazyconfig.py): set by the vault
        self.timeout_of: Callable[[], float] | None = None
        # the vault's read_neighbours and read_neighbours_bytes, read at each miss (lazyconfig.py)
        self.neighbours_of: Callable[[], tuple[int, int]] | None = None
        # the vault's read_package_bytes, read at each miss (lazyconfig.py)
        self.package_bytes_of: Callable[[], int] | None = None
        # the vault's keep_connection, read at each fetch (lazyconfig.py): whether fetches
        # from a git:// server go over one kept connection (blobwire.py) or one git fetch each
        self.keep_connection_of: Callable[[], bool] | None = None
        self._wire: Connection | None = None
        # a mount's prefetch is told of this handle's fetches, which go first (prefetch.py)
        self.demand: FetchWatcher | None = None
        self._remote: tuple[str, str] | None = None
        self._read = False  # whether _remote was read from the config
        self._lock = threading.Lock()  # one fetch at a time per vault handle
        self.fetched = 0  # blobs this handle fetched (stats, tests)
        # fetches of this handle that ended (written or failed): a caller that saw this
        # count before it found its blobs missing (``since``) asks again which are local
        # once it holds the lock, when another fetch ended meanwhile (:meth:`fetch`)
        self.ended = 0
        # those of some ids the vault holds (GitStore.local_of; None: not asked again)
        self.local_of = local_of
        # the directories of this handle's last demand misses, oldest first (neighbours.py)
        self.recent_misses: list[str] = []
        # the last analogies that held (a directory, the component its siblings vary in)
        self.recent_patterns: list[tuple[str, int]] = []
        # the Python packages whose sources a miss brought along already (neighbours.py)
        self.packages: set[str] = set()
        self.recent_lock = threading.Lock()
        self._sizes: dict[str, int] | None = None  # the size cache, read on first use
        self._sizes_path = os.path.join(git_dir, "avfs", "blob-sizes")
        self._sized: set[str] | None = None  # trees whose every blob's size is known
        # set while a mount asks its tree's sizes in the background (:meth:`asking`): a size
        # not in the cache waits for that answer rather than fetching the blob
        self._asking: int | None = None  # the thread asking
        self._learned = threading.Condition()  # notified as sizes come in and as asking ends
        # the directories (trees) whose own files' sizes were asked in a small request while
        # the whole tree's are asked (:meth:`claim_dir`): each once
        self._dirs_asked: set[str] = set()
        # the contents the kept connection's fetches checked, until each is read (freshblobs.py)
        self.fresh = FreshBlobs()
        reset_at_fork(self)

    def after_fork(self) -> None:
        """In a forked child: the locks, which a thread of the parent may have held at the
        fork (a fetch waiting on the server), made anew, and no request for sizes in flight
        (its thread is the parent's); the kept connection resets itself (blobwire.py)."""
        self._lock = threading.Lock()
        self.recent_lock = threading.Lock()
        self._learned = threading.Condition()
        self._asking = None
        self._dirs_asked = set()
        self.fresh.after_fork()

    def timeout(self) -> float:
        """How long one fetch may take (s): :attr:`timeout_s`, else the vault's setting,
        else :data:`FETCH_TIMEOUT_S`."""
        if self.timeout_s is not None:
            return self.timeout_s
        return self.timeout_of() if self.timeout_of is not None else FETCH_TIMEOUT_S

    def neighbours(self) -> tuple[int, int]:
        """How many other promised blobs a demand read fetches with its own, and their
        total size at most (bytes): the vault's setting, else :data:`NEIGHBOURS`,
        :data:`NEIGHBOURS_BYTES` (:mod:`.neighbours`)."""
        return self.neighbours_of() if self.neighbours_of is not None else (NEIGHBOURS, NEIGHBOURS_BYTES)

    def package_bytes(self) -> int:
        """How many bytes of a Python package's other sources its first miss brings along:
        the vault's setting, else :data:`PACKAGE_BYTES` (:mod:`.neighbours`)."""
        return self.package_bytes_of() if self.package_bytes_of is not None else PACKAGE_BYTES

    # -- the size cache: what a blob not yet fetched measures ------------------------------
    def size(self, oid: str) -> int | None:
        """The size of blob ``oid`` as the server said (:meth:`learn_sizes`), or None."""
        sizes = self._sizes  # (one read: :meth:`reread_sizes` may drop it meanwhile)
        if sizes is None:
            sizes = self._sizes = _read_sizes(self._sizes_path)
        return sizes.get(oid)

    def unknown(self, oids: Iterable[str]) -> list[str]:
        """Those of ``oids`` whose size is not in the cache, each once, sorted (a set
        difference: a whole tree's 20,538 ids one by one through :meth:`size` cost the
        mount's interpreter ~0.01 s twice)."""
        self.size("")  # (the cache read, on first use)
        sizes = self._sizes
        return sorted(set(oids).difference(sizes if sizes is not None else ()))

    def learn_sizes(self, oids: Iterable[str], reading: Callable[[], None] | None = None) -> bool:
        """Ask the promisor remote the sizes of ``oids`` (git's protocol v2 ``object-info``,
        one request) and keep them in the vault's size cache (``avfs/blob-sizes``). False
        when a size is still unknown: the server cannot say (it does not offer
        ``object-info``; ``git://`` and HTTP(S) URLs are asked: see :mod:`.objectinfo`),
        cannot be reached, or does not have that blob. ``reading``: see
        :func:`.objectinfo.remote_sizes` (not called where nothing is asked)."""
        unknown = self.unknown(oids)
        if not unknown:
            return True
        found = self.remote()
        if found is None:
            return False
        from .objectinfo import remote_sizes

        got = remote_sizes(
            found[1],
            unknown,
            self.timeout(),
            git_dir=self.git_dir,
            remote=found[0],
            token=self.token,
            reading=reading,
        )
        if got:  # only what was asked, as a size can be (a server may answer anything)
            asked = set(unknown)
            got = {o: n for o, n in got.items() if o in asked and n <= SIZE_MAX}
        if not got:
            return False
        with self._learned:
            if self._sizes is None:  # (read again meanwhile: :meth:`reread_sizes`)
                self._sizes = _read_sizes(self._sizes_path)
            self._sizes.update(got)
            self._learned.notify_all()
        _append_sizes(self._sizes_path, got)
        return len(got) == len(unknown)

    def check_size(self, oid: str, actual: int, path: str | None = None) -> None:
        """Blob ``oid`` read whole (or its header) is ``actual`` bytes: where the size cache
        said otherwise, the server's ``object-info`` answer was wrong (its contents are
        checked by their id, its size never was). The cache then takes the true size and
        the read fails, once: a mount that had reported the false size would hand out its
        contents cut to that size (and overlayfs copy them up so, into a commit); the
        mount's kernel forgets the size with the failed read (``fuse/opsbase.py``).

        Raises:
            BlobNotLocalError: the size the server said was not the blob's
                (``details.size_said``, ``details.size``).
        """
        said = self.size(oid)
        if said is None or said == actual:
            return
        with self._learned:
            if self._sizes is not None:
                self._sizes[oid] = actual
        _append_sizes(self._sizes_path, {oid: actual})  # (a later record wins: _read_sizes)
        found = self.remote() or ("", "")
        raise BlobNotLocalError(
            f"remote {found[0]} ({redact(found[1])}) said blob {oid}{_of(path)} is {said} bytes;"
            f" the blob it gave is {actual}: the size is corrected, read the file again",
            hint="the server's answers disagree (its size of the blob is not the blob's): if this repeats, ask the server's owner",
            details={
                "oid": oid,
                "path": path,
                "remote": found[0] or None,
                "url": redact(found[1]),
                "count": 1,
                "size_said": said,
                "size": actual,
            },
        )

    def reread_sizes(self) -> None:
        """Read the size cache and its record of sized trees again at their next use:
        another process added to them (a lazy clone's kept index: mount/keptmake.py)."""
        with self._learned:
            self._sizes = self._sized = None

    @contextlib.contextmanager
    def asking(self) -> Iterator[None]:
        """Mark a request for sizes in flight on this thread (a mount asks its tree's sizes
        after it answers, docs/lazy.md): meanwhile :meth:`await_sizes` on another thread
        waits for the size it wants or for the end of it."""
        self._asking = threading.get_ident()
        try:
            yield
        finally:
            with self._learned:
                self._asking = None
                self._learned.notify_all()

    def await_sizes(self, oid: str) -> bool:
        """Wait (at most :meth:`timeout`) for the size of ``oid`` while sizes are being
        asked in the background (not on this thread), until it is known or the asking
        ends; True when it waited."""
        asking = self._asking
        if asking is None or asking == threading.get_ident():
            return False
        with self._learned:
            self._learned.wait_for(lambda: self._asking is None or self.size(oid) is not None, self.timeout())
        return True

    def claim_dir(self, tree: str) -> bool:
        """Whether the sizes of directory ``tree``'s own files are to be asked now (True
        once per tree: whoever gets it asks them, :func:`.treesizes.ask_dir`; another
        ``stat`` there waits for that answer in :meth:`await_sizes`), and for at most
        :data:`DIRS_ASKED_MAX` trees a handle: a walk of thousands of directories while the
        whole tree's sizes are asked (~0.5 s) waits for those rather than sending the
        server a request, and a process of its own, for each directory."""
        with self._learned:
            if tree in self._dirs_asked or len(self._dirs_asked) >= DIRS_ASKED_MAX:
                return False
            self._dirs_asked.add(tree)
            return True

    def pending(self) -> bool:
        """Whether sizes are being asked in the background (:meth:`asking`)."""
        return self._asking is not None

    def sized(self, tree: str, *, done: bool = False) -> bool:
        """Whether every blob under ``tree`` has its size in the cache (``done``: record
        that it has), so a mount of a tree already sized walks none of it. Kept beside the
        size cache, in ``avfs/blob-sizes.trees``, one tree id a line."""
        path = self._sizes_path + ".trees"
        trees = self._sized  # (one read: :meth:`reread_sizes` may drop it meanwhile)
        if trees is None:
            try:
                if not os.path.exists(self._sizes_path):  # the sizes went: so does the record
                    raise FileNotFoundError(self._sizes_path)
                with open(path, encoding="ascii") as fh:
                    trees = {line.strip() for line in fh if len(line.strip()) == 40}
            except (FileNotFoundError, UnicodeDecodeError):
                trees = set()
            self._sized = trees
        if done and tree not in trees:
            trees.add(tree)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, tree.encode() + b"\n")
            finally:
                os.close(fd)
        return tree in trees

    def remote(self) -> tuple[str, str] | None:
        """(name, url without credentials) of the promisor remote, or None for a whole
        vault. Read from the vault's config once per handle (:meth:`forget` re-reads)."""
        if not self._read:
            from .gitrun import run

            try:  # the common case, a whole vault, costs one small read and no git process
                with open(os.path.join(self.git_dir, "config"), "rb") as fh:
                    if b"promisor" not in fh.read().lower():
                        self._remote, self._read = None, True
                        return None
            except OSError:
                pass

            # one git process for both the promisor and its URL (a cold command on a lazy
            # vault, a mount's start: each process is 3-20 ms on a loaded machine)
            proc = run(
                ["config", "-z", "--get-regexp", r"^remote\..*\.(promisor|url)$"],
                git_dir=self.git_dir,
                check=False,
                text=True,
            )
            pairs = configtext.parse_listing(proc.stdout)
            found: tuple[str, str] | None = None
            for key, value in pairs:
                if key.endswith(".promisor") and configtext.is_true(value):
                    name = key[len("remote.") : -len(".promisor")]
                    urls = [v or "" for k, v in pairs if k == f"remote.{name}.url"]
                    found = (name, urls[-1].strip() if urls else "")
                    break
            self._remote, self._read = found, True
        return self._remote

    def configured(self, name: str, url: str) -> None:
        """The promisor remote is ``name`` at ``url``, as the caller has just written it
        into the vault's config (a lazy clone): what :meth:`remote` would read back."""
        self._remote, self._read = (name, url), True

    def forget(self) -> None:
        """Read the promisor remote again on next use (the config changed)."""
        self._read = False

    def fetch(
        self,
        oids: Iterable[str],
        *,
        path: str | None = None,
        paths: Mapping[str, str] | None = None,
        since: int | None = None,
    ) -> None:
        """Fetch ``oids`` (missing blobs) from the promisor remote, in batches.

        ``since``: :attr:`ended` as the caller saw it before it found them missing. Where
        another fetch of this handle ended since (another thread's miss in the same
        directory, a parallel test run's workers importing the same module), those it
        brought are not asked again: only the ids still missing are, and none where
        ``path``'s own blob (the first id) came (its read is answered; the neighbours
        were picked for it).

        Raises:
            BlobNotLocalError: the vault has no promisor remote, or it did not give them
                (``path``: the file the caller reads, for the message; else ``paths``, a
                path of each blob a reader of many files knows, names the failed batch's
                first blob's).
        """
        wanted = list(dict.fromkeys(oids))  # the caller's order: a read's own blob first
        if not wanted:
            return
        found = self.remote()
        if found is None:
            raise BlobNotLocalError(
                f"blob {wanted[0]}{_of(path)} is not in the vault and the vault has no promisor remote",
                hint="run `avfs doctor --full`; restore the object from a clone or remote",
                details={
                    "oid": wanted[0],
                    "path": _path_of(wanted, path, paths),
                    "remote": None,
                    "count": len(wanted),
                },
            )
        name, url = found
        self.timeout()  # a bad setting fails as itself (a UsageError), before git runs
        wire = self._wire_for(url, wanted)
        demand = self.demand
        if demand is not None:
            demand.begin(path)
        try:
            with self._lock:
                if since is not None and since != self.ended:
                    wanted = self._still_missing(wanted, path)
                    if not wanted:
                        return
                try:
                    if wire is None or not self._fetch_wire(
                        wire, name, url, wanted, _path_of(wanted, path, paths)
                    ):
                        for i in range(0, len(wanted), BATCH):
                            batch = wanted[i : i + BATCH]
                            self._fetch_batch(name, url, batch, _path_of(batch, path, paths))
                finally:
                    self.ended += 1
                self.fetched += len(wanted)
        finally:
            if demand is not None:
                demand.end()

    def _still_missing(self, wanted: list[str], path: str | None) -> list[str]:
        """Those of ``wanted`` the vault does not hold now (another fetch ended while the
        caller waited for the lock); none when ``path``'s own blob, the first, is held."""
        if self.local_of is None:
            return wanted
        local = self.local_of(wanted)
        if path is not None and wanted[0] in local:
            return []
        return [o for o in wanted if o not in local]

    def _wire_for(self, url: str, wanted: list[str]) -> Connection | None:
        """The kept connection to fetch ``wanted`` over (:mod:`.blobwire`), or None: the
        remote is not ``git://``, the vault's ``keep_connection`` is off, or a blob's size
        is unknown or they are too big to hold in memory."""
        from .blobwire import Connection, speaks  # (socket and urllib: a fetch's, not a vault's)

        if not speaks(url) or (self.keep_connection_of is not None and not self.keep_connection_of()):
            return None
        total = 0
        for oid in wanted:
            size = self.size(oid)
            if size is None:
                return None
            total += size
        if total > WIRE_MAX_BYTES:
            return None
        if self._wire is None or self._wire.url != url:
            self._wire = Connection(url)
        return self._wire

    def _fetch_wire(self, wire: Connection, name: str, url: str, wanted: list[str], path: str | None) -> bool:
        """Fetch ``wanted`` over ``wire`` and write them into the vault; False when the
        server does not speak protocol v2 there (the caller runs git fetch)."""
        from .blobwire import WireError, store

        try:
            got = wire.fetch(wanted, self.timeout(), WIRE_MAX_BYTES)
        except WireError as exc:
            raise self._failed(name, url, wanted, path, str(exc)) from None
        if got is None:
            return False
        store(self.git_dir, got)
        self.fresh.keep(got.blobs)  # (once in the vault: a read may find them either way)
        return True

    def _failed(self, name: str, url: str, batch: list[str], path: str | None, why: str) -> BlobNotLocalError:
        why = redact(why, (self.token or "",))
        refused = refused_credentials(why)
        return BlobNotLocalError(
            f"blob {batch[0]}{_of(path)} is not local and remote {name} ({redact(url)}) did not"
            f" give it{_reason(why)}: {why}",
            hint=_AUTH_HINT if refused else _GONE_HINT if "not our ref" in why else _HINT,
            details={
                "oid": batch[0],
                "path": path,
                "remote": name,
                "url": redact(url),
                "count": len(batch),
                "server_lacks": "not our ref" in why,  # one of them (neighbours.fetch_with)
                "auth_failed": refused,
            },
        )

    def _fetch_batch(self, name: str, url: str, batch: list[str], path: str | None) -> None:
        from .transport import transport

        pack_dir = os.path.join(self.git_dir, "objects", "pack")
        before = _temporary(pack_dir)
        try:
            transport(
                self.git_dir,
                "fetch",
                name,
                "--no-tags",
                "--no-write-fetch-head",
                "--recurse-submodules=no",
                "--no-auto-gc",
                f"--filter={FILTER}",
                "--stdin",
                config=("fetch.negotiationAlgorithm=noop",),
                input="".join(o + "\n" for o in batch),
                timeout=self.timeout(),
                token=self.token,
            )
        except AvfsError as exc:
            _drop_leftovers(pack_dir, before)
            raise self._failed(name, url, batch, path, exc.message) from None


_RECORD = struct.Struct(">20sQ")  # a size cache record: the blob id, its size


def _read_sizes(path: str) -> dict[str, int]:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return {}
    end = len(data) - len(data) % _RECORD.size  # a record cut short by a crash: left out
    return {oid.hex(): size for oid, size in _RECORD.iter_unpack(data[:end])}


def _append_sizes(path: str, sizes: dict[str, int]) -> None:
    """Whole records in one append (O_APPEND: processes adding at once never interleave)."""
    data = b"".join(_RECORD.pack(bytes.fromhex(o), n) for o, n in sizes.items())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _temporary(pack_dir: str) -> set[str]:
    try:
        return {n for n in os.listdir(pack_dir) if n.startswith("tmp_")}
    except OSError:
        return set()


def _drop_leftovers(pack_dir: str, before: set[str]) -> None:
    """Remove the partial pack a fetch cut short left (git's ``index-pack`` dies without
    removing its ``tmp_pack_*``): those that appeared since ``before`` and that no process
    holds open (another git process's fetch may be writing one of its own)."""
    new = _temporary(pack_dir) - before
    if not new:
        return
    held: set[str] = set()
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(pack_dir):
                held.add(os.path.basename(target))
    for name in new - held:
        try:
            os.unlink(os.path.join(pack_dir, name))
        except OSError:
            pass


_HINT = "reconnect to the server (`avfs vault hydrate` fetches files ahead of time); files already fetched read normally"
_GONE_HINT = (
    "the server no longer has these contents (its history was rewritten and collected): no fetch will"
    " bring them; read the path at another revision (`avfs show REV:PATH`) or ask the server's owner"
)
# credentials reach a lazy fetch as they reach push and fetch (transport.py); a mount's
# daemon has the token its environment had when it started (ops/daemonstart.py)
_AUTH_HINT = (
    "give the credentials as for push and fetch: for HTTP(S) AVFS_GIT_TOKEN (and AVFS_GIT_USERNAME)"
    " or a git credential helper, for ssh your ssh key (ssh-agent, ~/.ssh, GIT_SSH_COMMAND); then read"
    " again. A mount keeps the AVFS_GIT_TOKEN it was started with: unmount and mount it again for a new one"
)


def _reason(why: str) -> str:
    """What git's error means, where it is one a person cannot read at a glance."""
    if refused_credentials(why):  # (git's fetch says it already: transport.py)
        return "" if "refused the credentials" in why else " (the server refused the credentials)"
    if "not our ref" in why:  # upload-pack does not hold an object it was asked for by id
        return " (the server no longer has it: force-pushed away and garbage-collected?)"
    if "unadvertised object" in why:
        return " (the server does not give objects by id: it needs uploadpack.allowAnySHA1InWant)"
    return ""


def _path_of(batch: list[str], path: str | None, paths: Mapping[str, str] | None) -> str | None:
    """The path a failed fetch of ``batch`` names: the caller's file, else the path of the
    batch's first blob where the caller knows it."""
    return path if path is not None or not paths else paths.get(batch[0])


def _of(path: str | None) -> str:
    return f" (of {path})" if path else ""
