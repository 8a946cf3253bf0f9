"""What a demand read in a lazy vault fetches besides the blob it reads (docs/lazy.md,
"What a read fetches").

A read of a file whose blob is only promised costs one ``git fetch``, a round trip of tens
of milliseconds whatever it carries; a fetch of fifty small blobs costs about what one
does. Programs read files near each other (a Python import of one module brings its
package's siblings; a test runner reads its test package), so a miss fetches, in the same
``git fetch``, the other promised blobs of the file's directory and then of its direct
subdirectories, in name order, within the vault's ``read_neighbours`` (how many) and
``read_neighbours_bytes`` (their total size) settings. Skipped: blobs the vault holds,
blobs whose size the size cache does not know (nothing is fetched blind), blobs over
:data:`MAX_FILE` bytes and files whose name says they are binary (:data:`BINARY`). A
read's failure is its own file's: where the server no longer has a neighbour (history
rewritten and collected there), the read's blob is fetched again alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from ..errors import BlobNotLocalError
from ..types import MODE_COMMIT, MODE_TREE

if TYPE_CHECKING:
    from .promisor import Promisor

Near = Callable[[], "str | None"]  # the tree of a read file's directory, asked at a miss only
MAX_FILE = 256 << 10  # a neighbour bigger than this waits for its own read
MAX_SUBDIRS = 32  # subdirectories looked into, in name order (their trees are read)
BINARY = frozenset(
    [
        ".7z",
        ".a",
        ".bin",
        ".bmp",
        ".bz2",
        ".class",
        ".dll",
        ".dylib",
        ".eot",
        ".exe",
        ".gif",
        ".gz",
        ".ico",
        ".jar",
        ".jpeg",
        ".jpg",
        ".mo",
        ".mp3",
        ".mp4",
        ".npy",
        ".npz",
        ".o",
        ".otf",
        ".pdf",
        ".pickle",
        ".pkl",
        ".png",
        ".pyc",
        ".pyd",
        ".so",
        ".sqlite",
        ".tar",
        ".tgz",
        ".ttf",
        ".wasm",
        ".webp",
        ".whl",
        ".woff",
        ".woff2",
        ".xz",
        ".zip",
        ".zst",
    ]
)


class _Store(Protocol):
    promisor: Promisor

    def tree_items(self, oid: str) -> Mapping[str, tuple[str, int]]: ...
    def is_local(self, oid: str) -> bool: ...


def fetch_with(store: _Store, oid: str, path: str | None, near: Near | None) -> None:
    """Fetch promised blob ``oid`` (the file ``path``) and, in the same fetch, its
    :func:`neighbours` (``near()``: its directory's tree; None: none).

    Raises:
        BlobNotLocalError: ``oid`` could not be fetched (offline, a timeout, the server
            no longer has it); a neighbour the server no longer has does not fail the read.
        UsageError: the vault's bounds are not numbers (nothing fetched).
    """
    extra = neighbours(store, oid, near()) if near is not None else []
    try:
        store.promisor.fetch([oid, *extra], path=path)
    except BlobNotLocalError as exc:
        if not extra or not exc.details.get("server_lacks"):
            raise  # offline or too slow: asking again alone would only wait as long again
        store.promisor.fetch([oid], path=path)


def _binary(name: str) -> bool:
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in BINARY


def neighbours(store: _Store, oid: str, tree: str | None) -> list[str]:
    """The promised blobs to fetch with ``oid``, read from the directory whose tree is
    ``tree`` (None: a directory git does not hold, nothing): its files, then its direct
    subdirectories' files, each in name order, within the vault's bounds."""
    if tree is None:
        return []
    count, budget = store.promisor.neighbours()
    out: list[str] = []
    if count <= 0 or budget <= 0:
        return out
    promisor = store.promisor
    spent = 0
    seen = {oid}
    level = [tree]
    for depth in (0, 1):
        subdirs: list[str] = []
        for d in level:
            for name, (o, mode) in sorted(store.tree_items(d).items()):
                if mode == MODE_TREE:
                    subdirs.append(o)
                    continue
                if mode == MODE_COMMIT or o in seen or _binary(name):
                    continue
                seen.add(o)
                size = promisor.size(o)
                if size is None or size > MAX_FILE or spent + size > budget or store.is_local(o):
                    continue
                out.append(o)
                spent += size
                if len(out) >= count:
                    return out
        level = subdirs[:MAX_SUBDIRS] if depth == 0 else []
    return out
