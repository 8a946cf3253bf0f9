"""Real projects' release files for the tests: sdists from PyPI, npm tarballs, histories.

Synthetic trees find few bugs (a pure-Python pack reader passed every generated tree and
failed on the first real project's deltified blobs), so the real-project tests read these.
Files are fetched once through the package registries (the simple API's JSON form for
PyPI, ``npm pack`` for npm), checked against the registry's sha256, and cached under
``$AVFS_TEST_CACHE`` (default ``<repo>/.cache/realdata``, ignored by git). Without the
network a test that needs one is skipped, except under ``CI=true``, where it fails.

The suite runs in several processes at once (pytest-xdist, ``make test``): whatever fills
the cache holds :func:`cache_lock`, so two of them never fetch or build the same entry
together, nor read one half made.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

import pytest

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("AVFS_TEST_CACHE") or REPO / ".cache" / "realdata")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
_PYPI_SIMPLE = "https://pypi.org/simple/{project}/"


_held = 0  # how deep this process is in cache_lock (the functions below call each other)
P = ParamSpec("P")
R = TypeVar("R")


@contextlib.contextmanager
def cache_lock() -> Iterator[None]:
    """Hold the cache's lock (an flock on ``CACHE/.lock``; re-entrant in one process)."""
    global _held
    if _held:
        _held += 1
        try:
            yield
        finally:
            _held -= 1
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        _held = 1
        try:
            yield
        finally:
            _held = 0
            fcntl.flock(fh, fcntl.LOCK_UN)


def _locked(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with cache_lock():
            return fn(*args, **kwargs)

    return run


def _unavailable(what: str, exc: BaseException) -> None:
    msg = f"cannot fetch {what} from its registry: {exc}"
    # under CI=true a registry out of reach fails (conftest.skip_outside_ci's rule; bench/ loads
    # this file on its own, outside the tests' package, so it cannot import conftest)
    pytest.fail(msg) if IN_CI else pytest.skip(msg)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@_locked
def pypi_sdist(project: str, version: str) -> Path:
    """The released sdist ``<project>-<version>.tar.gz`` (or .zip), downloaded once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    # (newer sdists are named by the normalized name, PEP 625: PyYAML's is pyyaml-6.0.2.tar.gz;
    # asked by the project's own spelling alone, it was fetched again at every call)
    spellings = dict.fromkeys((project, project.replace("-", "_"), project.lower().replace("-", "_")))
    for ext in (".tar.gz", ".zip"):
        for stem in (f"{s}-{version}" for s in spellings):
            hit = CACHE / f"{stem}{ext}"
            if hit.exists():
                return hit
    try:
        req = urllib.request.Request(
            _PYPI_SIMPLE.format(project=project),
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            index = json.load(resp)
        names = {f"{s}-{version}{e}" for s in spellings for e in (".tar.gz", ".zip")}
        files = [f for f in index["files"] if f["filename"].lower() in {n.lower() for n in names}]
        if not files:
            pytest.fail(f"{project} {version} has no sdist on PyPI")
        entry = files[0]
        dest = CACHE / entry["filename"]
        tmp = dest.with_suffix(dest.suffix + ".part")
        with urllib.request.urlopen(entry["url"], timeout=120) as resp, tmp.open("wb") as out:
            shutil.copyfileobj(resp, out)
    except OSError as exc:
        _unavailable(f"{project} {version}", exc)
        raise  # unreachable: skip/fail raise
    want = entry["hashes"].get("sha256")
    if want and _sha256(tmp) != want:
        tmp.unlink()
        pytest.fail(f"{entry['filename']}: sha256 differs from PyPI's")
    tmp.rename(dest)
    return dest


@_locked
def npm_tarball(name: str, version: str) -> Path:
    """The released npm tarball of ``name@version`` (``npm pack``), downloaded once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    stem = name.lstrip("@").replace("/", "-")
    dest = CACHE / f"{stem}-{version}.tgz"
    if dest.exists():
        return dest
    if shutil.which("npm") is None:
        _unavailable(f"{name}@{version}", FileNotFoundError("npm is not installed"))
    work = CACHE / f".npm-{stem}-{version}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    proc = subprocess.run(
        ["npm", "pack", "--silent", f"{name}@{version}"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HOME": str(work), "npm_config_cache": str(CACHE / ".npm-cache")},
    )
    made = list(work.glob("*.tgz"))
    if proc.returncode != 0 or len(made) != 1:
        shutil.rmtree(work, ignore_errors=True)
        _unavailable(f"{name}@{version}", OSError(proc.stderr.strip() or "npm pack made no tarball"))
    made[0].rename(dest)
    shutil.rmtree(work, ignore_errors=True)
    return dest


def extract(archive: Path, dest: Path) -> Path:
    """Unpack a release archive into ``dest`` and return its single top directory (or
    ``dest`` when it has several). Links and modes are kept as the archive has them.

    The archive is unpacked once (:func:`_unpacked`, by Python's tarfile or zipfile) and
    each call copies that tree with ``cp -a`` (modes, times, links and hard links kept):
    tarfile took 5-12 s for one of the larger sdists (10,000 members, a group lookup and a
    chown each, as root), and the suite unpacks some a dozen times."""
    dest.mkdir(parents=True, exist_ok=True)
    src = _unpacked(archive)
    subprocess.run(["cp", "-a", "--", f"{src}/.", str(dest)], check=True, capture_output=True)
    tops = list(dest.iterdir())
    return tops[0] if len(tops) == 1 and tops[0].is_dir() else dest


def unpacked_top(archive: Path) -> Path:
    """The archive's single top directory in its one unpacked copy under the cache (or that
    copy itself when it has several): to copy from, never to change."""
    src = _unpacked(archive)
    tops = list(src.iterdir())
    return tops[0] if len(tops) == 1 and tops[0].is_dir() else src


def owned_copy(archive: Path, dest: Path) -> Path:
    """The archive's top directory (:func:`unpacked_top`) copied to ``dest`` (which must
    not exist) owned by this process, modes, times and links kept: what git accepts as a
    work tree (the unpacked files' owners are the archive's). One ``cp -a`` where tests
    took :func:`extract`'s copy and copied that again (``shutil.copytree``: ~0.3-0.5 s of
    CPU for a thousand files)."""
    src = unpacked_top(archive)
    subprocess.run(
        ["cp", "-a", "--no-preserve=ownership", "--", str(src), str(dest)], check=True, capture_output=True
    )
    return dest


def shared(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A directory made once a session by ``build(dir)`` and handed to every test of every
    worker that asks for ``name``: read-only to them (a test that changes what it holds
    copies it first). It lives under the session's base temporary directory (pytest-xdist's
    workers' parent: what pytest empties as the session starts), made beside and renamed
    into place under a lock of its own, so two workers never build one together and none
    reads one half made."""
    base = factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "realdata-shared"
    root.mkdir(parents=True, exist_ok=True)
    done = root / name
    if done.is_dir():
        return done
    with open(root / f".{name}.lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            if not done.is_dir():
                part = root / f".{name}.part"
                shutil.rmtree(part, ignore_errors=True)
                part.mkdir()
                build(part)
                part.rename(done)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return done


@_locked
def _unpacked(archive: Path) -> Path:
    """``archive`` unpacked under ``CACHE/unpacked`` (made once, beside it and renamed into
    place: a killed run leaves no half tree to copy), named by its size and mtime too, so a
    re-fetched file is unpacked anew."""
    st = archive.stat()
    done = CACHE / "unpacked" / f"{archive.name}-{st.st_size}-{st.st_mtime_ns}"
    if done.is_dir():
        return done
    part = done.with_name(done.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(part)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(part, filter="tar")
    part.rename(done)
    return done


@_locked
def history(
    project: str, versions: list[str], dest: Path, *, aggressive: bool = True, window: int | None = None
) -> Path:
    """A git repository whose commits are ``project``'s successive released sdists, one a
    commit (so files change between versions the way they really did), then
    ``git gc --aggressive`` to force deep delta chains (``window``: its delta window,
    git's ``gc.aggressiveWindow``, 250 by default; a smaller one finds chains as deep in a
    fraction of the time). Returns the work tree's path."""
    work = dest / f"{project}-history"
    if work.exists():
        return work
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "release",
        "GIT_AUTHOR_EMAIL": "release@example.org",
        "GIT_COMMITTER_NAME": "release",
        "GIT_COMMITTER_EMAIL": "release@example.org",
    }

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=work, env=env, check=True, capture_output=True)

    work.mkdir(parents=True)
    git("init", "-q", "-b", "main")
    for v in versions:
        unpacked = extract(pypi_sdist(project, v), dest / f".{project}-{v}")
        for child in work.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        for child in unpacked.iterdir():
            target = work / child.name
            if child.is_dir() and not child.is_symlink():
                shutil.copytree(child, target, symlinks=True)
            else:
                shutil.copy2(child, target, follow_symlinks=False)
        git("add", "-A", "-f")
        git("commit", "-q", "--allow-empty", "-m", f"{project} {v}")
        git("tag", f"v{v}")
    if aggressive:
        tune = [] if window is None else ["-c", f"gc.aggressiveWindow={window}"]
        git(*tune, "gc", "-q", "--aggressive", "--prune=now")
    return work


# Debian's release of libgit2's own source (its "+ds" tarball: the bundled dependencies left
# out, the test resources kept), pinned by its sha256 as the archive's .dsc lists it
_LIBGIT2_ORIG = (
    "http://deb.debian.org/debian/pool/main/libg/libgit2/libgit2_1.5.1+ds.orig.tar.xz",
    "96369433500bb528f036c16be9921bd437c098b745f1aaeccb91290815518970",
)


# and of git's (its t/ holds git's own test cases: t3070-wildmatch.sh's patterns...)
_GIT_ORIG = (
    "http://deb.debian.org/debian/pool/main/g/git/git_2.39.5.orig.tar.xz",
    "c58da92c378df4a986ca33266897a7397e86c22ee266a284d8c2432c39066b59",
)


@_locked
def debian_orig(url: str, sha256: str) -> Path:
    """A Debian source package's original tarball (``url`` in the archive's pool), downloaded
    once and checked against ``sha256``."""
    CACHE.mkdir(parents=True, exist_ok=True)
    dest = CACHE / url.rsplit("/", 1)[1]
    if dest.exists():
        return dest
    tmp = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=120) as resp, tmp.open("wb") as out:
            shutil.copyfileobj(resp, out)
    except OSError as exc:
        _unavailable(dest.name, exc)
        raise  # unreachable: skip/fail raise
    if _sha256(tmp) != sha256:
        tmp.unlink()
        pytest.fail(f"{dest.name}: sha256 differs from the one pinned here")
    tmp.rename(dest)
    return dest


@_locked
def libgit2_resources() -> list[Path]:
    """The git directories of libgit2's own test repositories (``tests/resources`` of its
    1.5.1 source, from Debian's archive: a deprecated file mode, a shallow clone, control
    bytes in a name, duplicate packs, submodules, merges...), unpacked once into the
    cache; callers copy one before they change it. Each repository's git directory is
    ``.gitted`` in the tarball (a bare one is the ``NAME.git`` directory itself)."""
    done = CACHE / "unpacked" / "libgit2-1.5.1-resources"
    if not done.is_dir():
        archive = debian_orig(*_LIBGIT2_ORIG)
        part = done.with_name(done.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        with tarfile.open(archive) as tf:
            members = [m for m in tf.getmembers() if "/tests/resources/" in m.name]
            tf.extractall(part, members=members, filter="data")
        part.rename(done)
    resources = next(done.glob("*/tests/resources"))
    found = sorted(
        head.parent
        for head in resources.rglob("HEAD")
        if (head.parent / "objects").is_dir() and (head.parent / "refs").is_dir()
    )
    assert len(found) >= 60, found
    return found


@_locked
def git_source_file(path: str) -> Path:
    """One file of git 2.39.5's source (``path`` below its top directory, e.g.
    ``t/t3070-wildmatch.sh``), from Debian's archive, unpacked once into the cache."""
    done = CACHE / "unpacked" / "git-2.39.5" / path
    if not done.is_file():
        archive = debian_orig(*_GIT_ORIG)
        with tarfile.open(archive) as tf:
            member = tf.getmember(f"git-2.39.5/{path}")
            data = tf.extractfile(member)
            assert data is not None, path
            done.parent.mkdir(parents=True, exist_ok=True)
            part = done.with_name(done.name + ".part")
            part.write_bytes(data.read())
            part.rename(done)
    return done


@_locked
def git_source_dir(path: str) -> Path:
    """A directory of git 2.39.5's source (``path`` below its top directory, e.g.
    ``t/t4013``: the expected outputs of git's diff tests), every file below it, unpacked
    once into the cache (beside it and renamed into place); callers copy what they change."""
    done = CACHE / "unpacked" / "git-2.39.5-dirs" / path
    if not done.is_dir():
        archive = debian_orig(*_GIT_ORIG)
        part = done.with_name(done.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        top = f"git-2.39.5/{path}/"
        with tarfile.open(archive) as tf:
            for m in tf:
                if m.isfile() and m.name.startswith(top):
                    data = tf.extractfile(m)
                    assert data is not None, m.name
                    dest = part / m.name[len(top) :]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(data.read())
        part.rename(done)
    return done


def pygit2_fixture_repos(root: Path) -> list[Path]:
    """The git directories of the fixture repositories in pygit2 1.15.1's sdist (libgit2's
    own test repositories: merges, a signed commit, a non-UTF-8 message...), unpacked
    under ``root``."""
    sdist = pypi_sdist("pygit2", "1.15.1")
    with tarfile.open(sdist) as tf:
        members = [
            m for m in tf.getmembers() if "/test/data/" in m.name and m.name.endswith((".zip", ".tar"))
        ]
        tf.extractall(root / "archives", members=members, filter="data")
    out = []
    for archive in sorted((root / "archives").rglob("*")):
        if archive.suffix not in (".zip", ".tar"):
            continue
        dest = root / "repos" / archive.stem
        dest.mkdir(parents=True)
        if archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(dest)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(dest, filter="data")
        for head in sorted(dest.rglob("HEAD")):
            d = head.parent
            if (d / "objects").is_dir() and ((d / "refs").exists() or (d / "config").exists()):
                out.append(d)
    assert len(out) >= 10, out
    return out
