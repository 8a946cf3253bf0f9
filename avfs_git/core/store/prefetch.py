"""The background prefetch of a mounted lazy fork (docs/lazy.md, "Prefetch in the
background"): a thread of the mount's daemon that fetches the tree's promised blobs ahead of
the reads, by priority, within a bandwidth and a disk budget.

Priority, highest first (ArtifactFS's filler has the same order):

1. a read asked for now: never queued here. A read fetches its blob itself through the
   vault's promisor (:meth:`.promisor.Promisor.fetch`), which tells :class:`Demand`; the
   filler has its own promisor handle (its own lock, its own ``git fetch``), so a read never
   waits for a batch of the filler, and the filler starts no batch while a read's fetch runs;
2. the other files of the directories where reads fetched something lately (a build or a
   test run reads a package's files together);
3. source files, by extension (:data:`SOURCE_EXTENSIONS`), smallest first;
4. the rest, smallest first, and last large files (:data:`LARGE_BYTES` and more, or an
   extension of a binary format).

Budgets: ``bandwidth`` (bytes of blob contents per second, averaged over the batches: the
filler sleeps after a batch as long as that batch's bytes take at that rate; the network
carries them compressed, so less) and ``disk_bytes`` (the vault's object store, ``objects/``
as ``avfs stats`` counts it: once it holds that much, the filler stops; reads go on). A batch
is at most :data:`BATCH_BLOBS` blobs and about two seconds of the bandwidth budget, so it
neither overshoots the disk budget by much nor holds the link for long.

The filler follows the tree the mount shows (a checkpoint or a pull moves it). With the
server gone it waits and tries again (:data:`RETRY_S`, doubling up to :data:`RETRY_MAX_S`).
What it is doing is written to a small JSON status file after each batch
(:meth:`Filler.status`), which ``avfs stats`` reads.
"""

from __future__ import annotations

import collections
import json
import os
import posixpath
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import AvfsError
from ..records import dataclass
from ..types import MODE_COMMIT, MODE_TREE
from .names import fs_name
from .promisor import Promisor

if TYPE_CHECKING:
    from .gitstore import GitStore

BATCH_BLOBS = 200  # blobs per git fetch of the filler
BATCH_SECONDS = 2.0  # a batch's known bytes: at most this long at the bandwidth budget
UNKNOWN_BYTES = 16 << 10  # what a blob of unknown size counts for in a batch's bytes
LARGE_BYTES = 1 << 20  # a file this big or bigger goes last
RECENT_DIRS = 16  # directories of recent reads whose neighbours go first
RETRY_S = 5.0  # the server did not answer: wait this long before the next try (doubling)
RETRY_MAX_S = 300.0
SOURCE_EXTENSIONS = frozenset(
    [
        ".py",
        ".pyi",
        ".pyx",
        ".c",
        ".h",
        ".cc",
        ".cpp",
        ".cxx",
        ".hh",
        ".hpp",
        ".rs",
        ".go",
        ".java",
        ".kt",
        ".kts",
        ".scala",
        ".js",
        ".mjs",
        ".cjs",
        ".ts",
        ".tsx",
        ".jsx",
        ".vue",
        ".svelte",
        ".rb",
        ".php",
        ".cs",
        ".fs",
        ".swift",
        ".m",
        ".mm",
        ".sh",
        ".bash",
        ".zsh",
        ".pl",
        ".pm",
        ".lua",
        ".r",
        ".jl",
        ".ex",
        ".exs",
        ".erl",
        ".hs",
        ".ml",
        ".clj",
        ".sql",
        ".proto",
        ".thrift",
        ".graphql",
        ".toml",
        ".cfg",
        ".ini",
        ".yaml",
        ".yml",
        ".json",
        ".xml",
        ".md",
        ".rst",
        ".txt",
        ".html",
        ".htm",
        ".css",
        ".scss",
        ".less",
        ".gradle",
        ".cmake",
        ".mk",
        ".bzl",
        ".nix",
        ".tf",
        ".dockerfile",
    ]
)
SOURCE_NAMES = frozenset(
    ["Makefile", "makefile", "Dockerfile", "BUILD", "WORKSPACE", "CMakeLists.txt", "Gemfile", "Rakefile"]
)
BINARY_EXTENSIONS = frozenset(
    [
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".bmp",
        ".ico",
        ".webp",
        ".tiff",
        ".pdf",
        ".zip",
        ".gz",
        ".tgz",
        ".bz2",
        ".xz",
        ".zst",
        ".7z",
        ".tar",
        ".jar",
        ".war",
        ".whl",
        ".egg",
        ".so",
        ".dylib",
        ".dll",
        ".a",
        ".o",
        ".obj",
        ".exe",
        ".bin",
        ".dat",
        ".db",
        ".sqlite",
        ".mp3",
        ".mp4",
        ".mov",
        ".avi",
        ".wav",
        ".ogg",
        ".flac",
        ".ttf",
        ".otf",
        ".woff",
        ".woff2",
        ".psd",
        ".iso",
        ".dmg",
        ".npy",
        ".npz",
        ".pt",
        ".pth",
        ".onnx",
        ".h5",
        ".parquet",
        ".pkl",
    ]
)


@dataclass(frozen=True, slots=True)
class Budget:
    """How much the filler may use: ``bandwidth`` bytes of blob contents per second, and
    until the vault's object store holds ``disk_bytes``."""

    bandwidth: float
    disk_bytes: int


def rank(path: str, size: int | None) -> int:
    """A file's class in the filler's order (lower first): 1 source, 2 other, 3 large or
    binary (the neighbours of recent reads, 0, are picked apart)."""
    name = posixpath.basename(path)
    ext = posixpath.splitext(name)[1].lower()
    if (size is not None and size >= LARGE_BYTES) or ext in BINARY_EXTENSIONS:
        return 3
    if ext in SOURCE_EXTENSIONS or name in SOURCE_NAMES:
        return 1
    return 2


class Demand:
    """The vault's own fetches (reads, and callers that read many files), as the promisor
    reports them (:attr:`.promisor.Promisor.demand`): how many run now, and the directories
    of the files read lately."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = 0
        self.recent: collections.deque[str] = collections.deque(maxlen=RECENT_DIRS)

    def begin(self, path: str | None) -> None:
        with self._cond:
            self._busy += 1
            if path is not None:
                d = posixpath.dirname(path)
                if d in self.recent:
                    self.recent.remove(d)
                self.recent.append(d)  # newest last

    def end(self) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()

    def wait_idle(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """Return once no fetch of the vault's own runs (or ``stop`` is set)."""
        with self._cond:
            while self._busy > 0 and not stop.is_set():
                self._cond.wait(poll_s)

    def dirs(self) -> list[str]:
        """The directories of recent reads, newest first."""
        with self._cond:
            return list(reversed(self.recent))


def status_file(git_dir: str, key: str) -> str:
    """``<vault>/avfs/prefetch/<mount key>.json``: the status of that mount's prefetch."""
    return os.path.join(git_dir, "avfs", "prefetch", fs_name(key) + ".json")


def read_status(path: str) -> dict[str, Any] | None:
    """A status file's contents (None: absent or unreadable)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def object_store_bytes(git_dir: str) -> int:
    """Bytes of the vault's object files (packs, their indexes, loose objects)."""
    total = 0
    stack = [os.path.join(git_dir, "objects")]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for de in it:
                    try:
                        if de.is_dir(follow_symlinks=False):
                            stack.append(de.path)
                        else:
                            total += de.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


class Filler:
    """The prefetch of the promised blobs of ``tree_of()`` (the tree the mount shows), in
    the order and within the budget the module docstring gives; :meth:`start` runs it in a
    thread, :meth:`close` ends it. ``status_path``: where its status is written (None: not
    written); ``on_batch``: told each batch's blob ids once it is fetched."""

    def __init__(
        self,
        store: GitStore,
        tree_of: Callable[[], str | None],
        budget: Budget,
        demand: Demand,
        *,
        status_path: str | None = None,
        on_batch: Callable[[list[str]], None] | None = None,
        batch_blobs: int = BATCH_BLOBS,
    ) -> None:
        self.store = store
        self.tree_of = tree_of
        self.budget = budget
        self.demand = demand
        self.status_path = status_path
        self.on_batch = on_batch
        self.batch_blobs = batch_blobs
        # its own handle on the promisor remote: its own lock, so a read never waits for it
        self.promisor = Promisor(store.path)
        self.promisor.token = store.promisor.token
        self.promisor.timeout_s = store.promisor.timeout_s
        self.promisor.timeout_of = store.promisor.timeout_of
        self.promisor.keep_connection_of = store.promisor.keep_connection_of
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.state = "starting"
        self.error: str | None = None
        self.fetched_blobs = 0
        self.fetched_bytes = 0
        self.remaining = 0
        self.started = time.time()
        self._todo: dict[str, tuple[str, int | None]] = {}  # oid -> (path, size)
        self._order: list[str] = []  # oids, in the static order (source, other, large)
        self._by_dir: dict[str, list[str]] = {}

    # -- the thread -------------------------------------------------------------------------
    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="avfs-prefetch", daemon=True)
        self.thread.start()

    def close(self, join_s: float = 1.0) -> None:
        """End the filler: no batch starts after this. A fetch in flight is not waited for
        past ``join_s`` (the unmount does not wait on the network): its git process
        finishes, or times out, on its own, and what it wrote is whole or nothing."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(join_s)
        if self.state not in ("done", "disk_budget", "error"):
            self._set("stopped")

    def _run(self) -> None:
        try:
            self._fill()
        except Exception as exc:  # the filler only saves later reads: it never takes the mount down
            import logging

            logging.getLogger("avfs.prefetch").exception("prefetch")
            self.error = str(exc)
            self._set("error")

    def _fill(self) -> None:
        tree = self.tree_of()
        self._plan(tree)
        retry = RETRY_S
        while not self.stop.is_set():
            self.demand.wait_idle(self.stop)  # a read's fetch goes first
            if self.stop.is_set():
                return
            now = self.tree_of()
            if now != tree:  # the mount shows another tree (a checkpoint, a pull)
                tree = now
                self._plan(tree)
            if object_store_bytes(self.store.path) >= self.budget.disk_bytes:
                self._set("disk_budget")
                return
            batch = self._next_batch()
            if not batch:
                self._set("done")
                return
            self._set("fetching")
            start = time.monotonic()
            try:
                self.promisor.fetch(batch)
            except AvfsError as exc:
                self.error = exc.message
                self._set("offline")
                if self.stop.wait(retry):
                    return
                retry = min(retry * 2, RETRY_MAX_S)
                self._plan(tree)  # the batch taken out of the order goes back in
                continue
            retry, self.error = RETRY_S, None
            size = self._fetched(batch)
            for o in batch:
                self._todo.pop(o, None)
            if self.on_batch is not None:
                self.on_batch(batch)
            self.remaining = len(self._todo)
            self._set("waiting")
            pause = size / self.budget.bandwidth - (time.monotonic() - start)
            if pause > 0 and self.stop.wait(pause):
                return

    # -- what to fetch ------------------------------------------------------------------------
    def _plan(self, tree: str | None) -> None:
        """The promised blobs of ``tree``, in the static order."""
        store, todo = self.store, {}
        stack = [("", tree)] if tree else []
        while stack:
            prefix, t = stack.pop()
            for name, (oid, mode) in store.tree_items(t).items():
                path = f"{prefix}/{name}" if prefix else name
                if mode == MODE_TREE:
                    stack.append((path, oid))
                elif mode != MODE_COMMIT and oid not in todo and not store.is_local(oid):
                    todo[oid] = (path, store.promisor.size(oid))
        self._todo = todo
        self._order = sorted(todo, key=lambda o: (rank(*todo[o]), todo[o][1] or UNKNOWN_BYTES, todo[o][0]))
        self._order.reverse()  # popped from the end
        self._by_dir = {}
        for o in sorted(todo, key=lambda o: todo[o][0], reverse=True):
            self._by_dir.setdefault(posixpath.dirname(todo[o][0]), []).append(o)
        self.remaining = len(todo)

    def _next_batch(self) -> list[str]:
        """Up to :attr:`batch_blobs` blobs (and about :data:`BATCH_SECONDS` of the bandwidth
        budget): the neighbours of recent reads first, then the static order; blobs that
        became local meanwhile (a read fetched them) are dropped on the way."""
        limit = max(self.budget.bandwidth * BATCH_SECONDS, 1.0)
        out: list[str] = []
        known = 0

        def take(oid: str) -> bool:
            nonlocal known
            if oid not in self._todo or oid in out:
                return True
            if self.store.is_local(oid):
                del self._todo[oid]
                return True
            if out and (len(out) >= self.batch_blobs or known >= limit):
                return False
            out.append(oid)
            known += self._todo[oid][1] or UNKNOWN_BYTES
            return True

        for d in self.demand.dirs():
            queue = self._by_dir.get(d, [])
            while queue and take(queue[-1]):
                queue.pop()
            if len(out) >= self.batch_blobs or known >= limit:
                return out
        while self._order and take(self._order[-1]):
            self._order.pop()
        return out

    def _fetched(self, batch: list[str]) -> int:
        size = 0
        for o in batch:
            try:
                size += self.store.blob_size(o)
            except AvfsError:
                size += self._todo[o][1] or 0
        self.fetched_blobs += len(batch)
        self.fetched_bytes += size
        return size

    # -- what it is doing -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": os.getpid(),
            "started": self.started,
            "updated": time.time(),
            "fetched_blobs": self.fetched_blobs,
            "fetched_bytes": self.fetched_bytes,
            "remaining_blobs": self.remaining,
            "bandwidth": self.budget.bandwidth,
            "disk_bytes": self.budget.disk_bytes,
            "error": self.error,
        }

    def _set(self, state: str) -> None:
        self.state = state
        if self.status_path is None:
            return
        tmp = f"{self.status_path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(self.status_path), exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(self.status(), fh)
            os.replace(tmp, self.status_path)
        except OSError:
            pass  # the status only informs
