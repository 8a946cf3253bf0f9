"""Synthetic trees (seeded, cached), their git checkouts, and per-benchmark avfs homes.

A tree of N files (1-4 KiB of text-like content, every file unique) spread round-robin over
1,010 directories three levels deep: 10 top directories x 10 middle x 9 leaves (files sit in
the 900 leaves), the shape of the tree ``MEASURED.md`` was measured on. A change to 10 files
therefore rewrites at most 10 + 10 + 10 + 1 = 31 trees, as there.

Cached under ``bench/.work`` (gitignored), keyed by a stamp file beside each directory:

- ``trees/<label>/``      the plain files (what ``import`` imports)
- ``checkouts/<label>/``  a copy made a git checkout by ``git init && git add -A && git commit``
  (then packed with ``git gc``, as ``MEASURED.md``'s repository was); the stock-git baseline
  for status, checkpoint and restore. Benchmarks change it; :meth:`Fixtures.checkout` puts it
  back to its base commit first.

Per run (under ``runs/<stamp>/``, removed at the end unless ``--keep``): one template vault
per size, imported from the tree once, and a fresh avfs home per benchmark holding a copy of it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING

from avfs_git.mount.side import MOUNT_SIDE

from .env import AUTHOR, WORK_DIR, flush_disk, git, log, rmtree, run

if TYPE_CHECKING:
    from avfs_git.core.vaults.home import Home

GENERATOR_VERSION = 1
SEED = 20_240_601
VAULT = "bench"

TOP, MIDDLE, LEAF = 10, 10, 9
LEAF_DIRS = TOP * MIDDLE * LEAF  # 900
ALL_DIRS = TOP + TOP * MIDDLE + LEAF_DIRS  # 1,010
MIN_SIZE, MAX_SIZE = 1024, 4096

SIZES: dict[str, int] = {"10k": 10_000, "100k": 100_000}


def file_path(i: int) -> str:
    """Path of file ``i``: consecutive files land in different leaf directories."""
    leaf = i % LEAF_DIRS
    return f"d{leaf // (MIDDLE * LEAF)}/m{(leaf // LEAF) % MIDDLE}/l{leaf % LEAF}/f{i:06d}.txt"


def tree_paths(files: int) -> list[str]:
    return [file_path(i) for i in range(files)]


class Content:
    """Deterministic, text-like, compressible file contents (every file unique)."""

    def __init__(self, seed: int = SEED) -> None:
        rng = random.Random(seed)
        letters = "abcdefghijklmnopqrstuvwxyz"
        vocab = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(4096)]
        lines: list[str] = []
        size = 0
        while size < (1 << 20):
            words = rng.choices(vocab, k=rng.randint(3, 12))
            line = "    " * rng.randint(0, 3) + " ".join(words) + "\n"
            lines.append(line)
            size += len(line)
        self.pool = "".join(lines).encode()

    def _slice(self, rng: random.Random, header: bytes) -> bytes:
        size = rng.randint(MIN_SIZE, MAX_SIZE)
        start = rng.randrange(len(self.pool) - MAX_SIZE)
        return header + self.pool[start : start + max(0, size - len(header))]

    def file_bytes(self, rng: random.Random, path: str) -> bytes:
        return self._slice(rng, f"# {path}\n".encode())

    def changed_bytes(self, path: str, tag: str) -> bytes:
        """New content for ``path`` in change set ``tag`` (same bytes for avfs and git)."""
        return self._slice(random.Random(f"{path}\0{tag}"), f"# {path} changed {tag}\n".encode())


def pick_paths(files: int, count: int, tag: str) -> list[str]:
    """``count`` distinct existing paths of a ``files``-file tree, chosen by ``tag``."""
    rng = random.Random(f"pick\0{files}\0{count}\0{tag}")
    return [file_path(i) for i in sorted(rng.sample(range(files), count))]


@dataclasses.dataclass(frozen=True)
class Checkout:
    path: Path
    base: str  # the commit of the pristine tree


def _stamp(label: str, files: int) -> dict[str, object]:
    return {
        "generator": GENERATOR_VERSION,
        "seed": SEED,
        "files": files,
        "dirs": ALL_DIRS,
        "sizes": [MIN_SIZE, MAX_SIZE],
        "label": label,
    }


def _read_json(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def ensure_tree(label: str, work: Path = WORK_DIR) -> Path:
    """The cached tree for size ``label``, generated on first use (or when its stamp changed)."""
    files = SIZES[label]
    root = work / "trees"
    tree = root / label
    stamp_file = root / f"{label}.json"
    stamp = _stamp(label, files)
    if tree.is_dir() and _read_json(stamp_file) == stamp:
        return tree
    log(f"generating the {label} tree ({files:,} files in {ALL_DIRS:,} directories) under {tree}")
    t0 = time.perf_counter()
    rmtree(tree)
    stamp_file.unlink(missing_ok=True)
    tmp = root / f".tmp-{label}-{os.getpid()}"
    rmtree(tmp)
    for a in range(TOP):
        for b in range(MIDDLE):
            for c in range(LEAF):
                (tmp / f"d{a}" / f"m{b}" / f"l{c}").mkdir(parents=True)
    content = Content()
    rng = random.Random(SEED + files)
    for i in range(files):
        p = file_path(i)
        (tmp / p).write_bytes(content.file_bytes(rng, p))
    tmp.rename(tree)
    stamp_file.write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
    log(f"generated {label} in {time.perf_counter() - t0:.1f} s")
    return tree


def ensure_checkout(label: str, work: Path = WORK_DIR) -> Checkout:
    """The cached git checkout of the ``label`` tree (built on first use)."""
    tree = ensure_tree(label, work)
    root = work / "checkouts"
    path = root / label
    stamp_file = root / f"{label}.json"
    want = _stamp(label, SIZES[label])
    data = _read_json(stamp_file)
    if path.is_dir() and data is not None and data.get("tree") == want and isinstance(data.get("base"), str):
        return Checkout(path, str(data["base"]))
    log(f"building the git checkout of the {label} tree (git init && add -A && commit && gc)")
    t0 = time.perf_counter()
    rmtree(path)
    stamp_file.unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{label}-{os.getpid()}"
    rmtree(tmp)
    run(["cp", "-a", str(tree), str(tmp)])
    git("init", "-q", cwd=tmp)
    git("add", "-A", cwd=tmp)
    git("commit", "-q", "-m", f"bench tree {label}", cwd=tmp)
    git("gc", "-q", cwd=tmp)
    tmp.rename(path)
    # files written in the same second as the index are "racily clean" and get re-hashed by
    # every status until the index is rewritten later than them: settle that once here
    time.sleep(1.1)
    git("update-index", "-q", "--really-refresh", cwd=path)
    base = git("rev-parse", "HEAD", cwd=path).strip()
    stamp_file.write_text(json.dumps({"tree": want, "base": base}, indent=2) + "\n", encoding="utf-8")
    log(f"built the {label} checkout in {time.perf_counter() - t0:.1f} s")
    return Checkout(path, base)


def reset_checkout(co: Checkout) -> None:
    """Put a checkout back to its pristine base: files, index, and no extra branches."""
    git("checkout", "-q", "-f", "main", cwd=co.path)
    git("reset", "-q", "--hard", co.base, cwd=co.path)
    git("clean", "-q", "-fdx", cwd=co.path)
    extra = git("for-each-ref", "--format=delete %(refname)", "refs/heads/", cwd=co.path)
    extra = "".join(line + "\n" for line in extra.splitlines() if line != "delete refs/heads/main")
    if extra:
        run(["git", "update-ref", "--stdin"], cwd=co.path, input=extra.encode())


class Fixtures:
    """Trees, checkouts, template vaults and fresh homes for one run."""

    def __init__(
        self, run_dir: Path, work: Path = WORK_DIR, keep: bool = False, template_key: str | None = None
    ) -> None:
        self.work = work
        # with a key (``--reuse-templates``: the avfs sources' hash), template vaults are
        # kept under ``templates/<label>`` across runs and reused while tree and key match
        self.template_key = template_key
        self.run_dir = run_dir
        self.keep = keep
        self.content = Content()
        self._templates: dict[str, Path] = {}
        self._checkouts: dict[str, Checkout] = {}
        self._homes: list[Path] = []
        self._serial = 0

    def tree(self, label: str) -> Path:
        return ensure_tree(label, self.work)

    def checkout(self, label: str) -> Checkout:
        """The ``label`` checkout, reset to its pristine base commit."""
        co = self._checkouts.get(label)
        if co is None:
            co = ensure_checkout(label, self.work)
            self._checkouts[label] = co
        reset_checkout(co)
        return co

    def new_dir(self, tag: str) -> Path:
        self._serial += 1
        path = self.run_dir / f"{self._serial:03d}-{tag}"
        rmtree(path)
        path.mkdir(parents=True)
        return path

    def adopt_template(self, label: str, home_dir: Path) -> bool:
        """Use ``home_dir`` (a home holding vault ``bench`` imported from the tree) as the
        template for ``label``, when there is none yet; True when adopted."""
        if label in self._templates:
            return False
        dest = self.run_dir / f"template-{label}"
        rmtree(dest)
        home_dir.rename(dest)
        self._templates[label] = dest
        return True

    def template(self, label: str) -> Path:
        """The home holding this run's template vault for ``label`` (imported on first use)."""
        t = self._templates.get(label)
        if t is not None:
            return t
        from avfs_git.core.vaults.home import Home

        tree = self.tree(label)
        cached = self._cached_template(label)
        if cached is not None:
            self._templates[label] = cached
            return cached
        tmp = self.new_dir(f"template-{label}")
        log(f"importing the {label} tree into this run's template vault")
        t0 = time.perf_counter()
        # plain state dirs: templates are copied with cp -a (a home with a mounted layers
        # image is not a directory to copy)
        home = Home(str(tmp), author=AUTHOR, layers="off", mounts=MOUNT_SIDE)
        home.create_vault(VAULT, from_dir=str(tree))
        home.vault(VAULT).close()
        log(f"imported {label} in {time.perf_counter() - t0:.1f} s")
        if self.template_key is not None:
            self._store_template(label, tmp)
        self.adopt_template(label, tmp)
        return self._templates[label]

    def _template_stamp(self, label: str) -> dict[str, object]:
        return {"tree": _stamp(label, SIZES[label]), "avfs": self.template_key}

    def _cached_template(self, label: str) -> Path | None:
        if self.template_key is None:
            return None
        root = self.work / "templates"
        path = root / label
        if path.is_dir() and _read_json(root / f"{label}.json") == self._template_stamp(label):
            log(f"reusing the {label} template vault under {path}")
            return path
        return None

    def _store_template(self, label: str, home_dir: Path) -> None:
        """Keep a copy of a freshly imported template for later runs (``--reuse-templates``)."""
        root = self.work / "templates"
        root.mkdir(parents=True, exist_ok=True)
        stamp_file = root / f"{label}.json"
        stamp_file.unlink(missing_ok=True)
        rmtree(root / label)
        run(["cp", "-a", str(home_dir), str(root / label)])
        stamp_file.write_text(json.dumps(self._template_stamp(label), indent=2) + "\n", encoding="utf-8")

    def home(self, tag: str, label: str) -> tuple[Home, Path]:
        """A fresh avfs home holding a copy of the ``label`` template vault."""
        from avfs_git.core.vaults.home import Home

        src = self.template(label)
        dest = self.new_dir(f"{tag}-{label}")
        dest.rmdir()
        run(["cp", "-a", str(src), str(dest)])
        flush_disk()
        self._homes.append(dest)
        return Home(str(dest), author=AUTHOR, layers="off", mounts=MOUNT_SIDE), dest

    def done_with(self, path: Path) -> None:
        if not self.keep:
            rmtree(path)

    def cleanup(self) -> None:
        if not self.keep:
            rmtree(self.run_dir)
