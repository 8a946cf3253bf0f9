"""What a demand read in a lazy vault fetches (docs/lazy.md, "What a read fetches"): the
file and, in the same `git fetch`, the other promised blobs of its directory within the
vault's ``read_neighbours``/``read_neighbours_bytes``; against a real `git daemon` on
127.0.0.1 serving avfs's own sources (tests/test_lazy.py's fixture), through the API and
through a real mount (both backends)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

from avfs_git.core.errors import BlobNotLocalError, UsageError
from avfs_git.core.store.gitstore import GitStore
from avfs_git.core.store.neighbours import BINARY, MAX_BINARY, MAX_FILE
from avfs_git.core.vaults.home import Home
from avfs_git.ops import mounts

from .conftest import IN_CI, git
from .test_fuse import require_fuse
from .test_lazy import Server, blob_at, objects
from .test_lazy import lazy as lazy
from .test_lazy import server as server

DIR = "avfs_git/core/store"
FILE = f"{DIR}/gitstore.py"


def _files(repo: Path, under: str) -> list[tuple[str, str, int]]:
    """(name, blob, size) of the files directly in ``under`` at main, in name order."""
    out = git("--git-dir", str(repo), "ls-tree", "-l", f"main:{under}")
    rows = []
    for line in out.splitlines():
        meta, name = line.split("\t")
        _, kind, oid, size = meta.split()
        if kind == "blob":
            rows.append((name, oid, int(size)))
    return sorted(rows)


def _expected(repo: Path, count: int, budget: int) -> list[tuple[str, str, int]]:
    """What the rules say a read of FILE brings with it (its directory has no subdirectory)."""
    want: list[tuple[str, str, int]] = []
    spent = 0
    if count <= 0:
        return want
    seen = {next(o for n, o, _ in _files(repo, DIR) if f"{DIR}/{n}" == FILE)}
    for name, oid, size in _files(repo, DIR):
        if oid in seen:
            continue
        seen.add(oid)
        cap = MAX_BINARY if os.path.splitext(name)[1] in BINARY else MAX_FILE
        if size > cap or spent + size > budget:
            continue
        want.append((name, oid, size))
        spent += size
        if len(want) >= count:
            break
    return want


def _local(v_path: str, oid: str) -> bool:
    proc = subprocess.run(
        ["git", "--git-dir", v_path, "cat-file", "-e", oid],
        capture_output=True,
        env={**os.environ, "GIT_NO_LAZY_FETCH": "1"},
    )
    return proc.returncode == 0


def _packs(v_path: str) -> set[str]:
    return {n for n in os.listdir(os.path.join(v_path, "objects", "pack")) if n.endswith(".pack")}


def _configure(v_path: str, **settings: object) -> None:
    with open(os.path.join(v_path, "avfs", "config.json"), "w", encoding="utf-8") as fh:
        json.dump(settings, fh)


def test_a_read_fetches_its_directorys_promised_siblings_in_the_same_fetch(
    lazy: Home, server: Server
) -> None:
    v = lazy.vault("p")
    _configure(v.path, read_package_bytes=0)  # the directory's rule alone (the package's: below)
    src = server.base / "proj.git"
    siblings = _expected(src, 100, 1 << 20)
    assert len(siblings) > 10  # the directory has many files: the test means something
    before, packs = objects(v.path), _packs(v.path)
    assert v.workspace("main").read(FILE) == blob_at(src, "main", FILE)
    assert len(_packs(v.path) - packs) == 1  # one git fetch
    assert objects(v.path) == before + 1 + len(siblings)
    assert all(_local(v.path, oid) for _, oid, _ in siblings)
    # a sibling then reads with the server gone: it came with the first read
    server.stop()
    name = siblings[0][0]
    assert v.workspace("main").read(f"{DIR}/{name}") == blob_at(src, "main", f"{DIR}/{name}")
    assert objects(v.path) == before + 1 + len(siblings)


@pytest.mark.parametrize(("count", "budget"), [(3, 1 << 20), (100, 20_000), (0, 1 << 20)])
def test_the_vaults_bounds_hold(lazy: Home, server: Server, count: int, budget: int) -> None:
    v = lazy.vault("p")
    src = server.base / "proj.git"
    _configure(v.path, read_neighbours=count, read_neighbours_bytes=budget, read_package_bytes=0)
    want = _expected(src, count, budget)
    before = objects(v.path)
    v.workspace("main").read(FILE)
    assert objects(v.path) == before + 1 + len(want)
    got = [(n, o, s) for n, o, s in _files(src, DIR) if _local(v.path, o) and f"{DIR}/{n}" != FILE]
    assert got == want
    assert len(got) <= count and sum(s for _, _, s in got) <= budget


@pytest.mark.parametrize("value", ["lots", -1, 1.5, True])
def test_a_bad_setting_fails_the_read_clearly_and_fetches_nothing(
    lazy: Home, server: Server, value: object
) -> None:
    v = lazy.vault("p")
    _configure(v.path, read_neighbours=value)
    before = objects(v.path)
    with pytest.raises(UsageError) as exc:
        v.workspace("main").read(FILE)
    assert "read_neighbours" in exc.value.message and "config.json" in exc.value.message
    assert objects(v.path) == before


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_read_in_a_lazy_mount_brings_its_siblings_in_one_fetch(
    lazy: Home, server: Server, tmp_path: Path, backend: str
) -> None:
    require_fuse()
    if backend == "overlay" and (why := mounts.overlay_available()) is not None:
        if IN_CI:
            pytest.fail(f"overlayfs must be available in CI: {why}")
        pytest.skip(f"requires overlayfs: {why}")
    v = lazy.vault("p")
    _configure(v.path, read_package_bytes=0)  # the directory's rule alone (the package's: below)
    src = server.base / "proj.git"
    siblings = _expected(src, 100, 1 << 20)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(lazy, v, "main", str(mp), backend=backend)
    try:
        before, packs = objects(v.path), _packs(v.path)
        assert (mp / FILE).read_bytes() == blob_at(src, "main", FILE)
        assert len(_packs(v.path) - packs) == 1
        assert objects(v.path) == before + 1 + len(siblings)
        # offline: its siblings read (they came with it); a file elsewhere is EIO
        server.stop()
        for name, _, _ in siblings[:5]:
            assert (mp / DIR / name).read_bytes() == blob_at(src, "main", f"{DIR}/{name}")
        with pytest.raises(OSError) as exc:
            (mp / "avfs_git" / "cli" / "output.py").read_bytes()
        assert exc.value.errno == errno.EIO
        assert objects(v.path) == before + 1 + len(siblings)
    finally:
        mounts.unmount(lazy, v, "main", lazy=True)


def test_a_neighbour_the_server_no_longer_has_does_not_fail_the_read(home: Home, server: Server) -> None:
    """History rewritten on the server and collected: a sibling's blob is gone there, the
    file read is not; the read fetches it (asked again alone) and the gone one stays
    promised, its own read a clear `blob_not_local`."""
    repo = server.base / "proj.git"
    work = server.base / "gone-work"
    git("clone", "-q", str(repo), str(work))
    (work / "AAA-SECRET.md").write_text("pushed by mistake\n")  # first in name order
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "commit", "-q", "-m", "oops")
    git("-C", str(work), "push", "-q", "origin", "main")
    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    v.workspace("main").view.learn_sizes()  # asked before the rewrite (as a mount or a read asks them)
    git("-C", str(work), "push", "-q", "--force", "origin", "HEAD~1:main")
    git("--git-dir", str(repo), "reflog", "expire", "--expire=now", "--all")
    git("--git-dir", str(repo), "gc", "-q", "--prune=now")
    gone = git("--git-dir", v.path, "rev-parse", "main:AAA-SECRET.md").strip()
    assert v.store.promisor.size(gone) is not None  # sized before: a neighbour candidate
    assert v.workspace("main").read("NOTES.md") == blob_at(repo, "main", "NOTES.md")
    assert not _local(v.path, gone)
    with pytest.raises(BlobNotLocalError) as exc:
        v.workspace("main").read("AAA-SECRET.md")
    assert "no longer has it" in exc.value.message and exc.value.details["path"] == "AAA-SECRET.md"


def test_small_binaries_come_along_and_large_ones_wait(home: Home, server: Server) -> None:
    """A file binary by name is a neighbour up to MAX_BINARY bytes (a translation catalogue,
    a test's archive), not beyond (an image)."""
    repo = server.base / "proj.git"
    work = server.base / "bin-work"
    git("clone", "-q", str(repo), str(work))
    (work / "assets").mkdir()
    (work / "assets" / "a.txt").write_text("read first\n")
    (work / "assets" / "small.mo").write_bytes(os.urandom(2000))
    (work / "assets" / "fixture.tar.gz").write_bytes(os.urandom(MAX_BINARY))
    (work / "assets" / "big.png").write_bytes(os.urandom(MAX_BINARY + 1))
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "commit", "-q", "-m", "assets")
    git("-C", str(work), "push", "-q", "origin", "main")
    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    blob = {
        n: git("--git-dir", v.path, "rev-parse", f"main:assets/{n}").strip()
        for n in os.listdir(work / "assets")
    }
    before = objects(v.path)
    assert v.workspace("main").read("assets/a.txt") == b"read first\n"
    assert _local(v.path, blob["small.mo"]) and _local(v.path, blob["fixture.tar.gz"])
    assert not _local(v.path, blob["big.png"])
    assert objects(v.path) == before + 3


def test_a_miss_in_a_directory_analogous_to_a_recent_one_brings_the_others(
    home: Home, server: Server
) -> None:
    """Two misses at the same relative path under two siblings (``apps/a/locale/cs`` and
    ``apps/b/locale/cs``): the second brings that path under every other sibling too, and
    nothing of the siblings' other directories."""
    repo = server.base / "proj.git"
    work = server.base / "apps-work"
    git("clone", "-q", str(repo), str(work))
    apps = ("a", "b", "c", "d")
    for app in apps:
        for lang in ("cs", "fr"):
            d = work / "apps" / app / "locale" / lang
            d.mkdir(parents=True)
            (d / "django.po").write_text(f"{app} {lang} catalogue\n")
            (d / "django.mo").write_bytes(os.urandom(300))
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "commit", "-q", "-m", "apps")
    git("-C", str(work), "push", "-q", "origin", "main")
    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    ws = v.workspace("main")

    def blob(path: str) -> str:
        return git("--git-dir", v.path, "rev-parse", f"main:{path}").strip()

    before = objects(v.path)
    assert ws.read("apps/a/locale/cs/django.po") == b"a cs catalogue\n"
    assert objects(v.path) == before + 2  # its directory only: nothing to compare with yet
    assert not _local(v.path, blob("apps/b/locale/cs/django.po"))
    assert ws.read("apps/b/locale/cs/django.po") == b"b cs catalogue\n"
    for app in ("c", "d"):
        for name in ("django.po", "django.mo"):
            assert _local(v.path, blob(f"apps/{app}/locale/cs/{name}"))
        assert not _local(v.path, blob(f"apps/{app}/locale/fr/django.po"))
    assert objects(v.path) == before + 8
    packs = _packs(v.path)
    assert ws.read("apps/d/locale/cs/django.po") == b"d cs catalogue\n"
    assert _packs(v.path) == packs  # local: no fetch


def _sources(repo: Path, top: str) -> dict[str, tuple[str, int]]:
    """path -> (blob, size) of the Python modules under ``top`` at main."""
    out = {}
    for line in git("--git-dir", str(repo), "ls-tree", "-r", "-l", "main", f"{top}/").splitlines():
        meta, path = line.split("\t")
        _, kind, oid, size = meta.split()
        if kind == "blob" and path.endswith(".py"):
            out[path] = (oid, int(size))
    return out


def test_the_first_miss_in_a_python_package_brings_its_modules(home: Home, server: Server) -> None:
    """A module read that must fetch, in a package no miss was in yet, brings the package's
    other modules (its whole tree, from its top ``__init__.py``) in the same fetch; a file
    of the package that is not a module, and a module of another package, wait for their
    own reads."""
    src = server.base / "proj.git"
    work = server.base / "pkg-work"
    git("clone", "-q", str(src), str(work))
    (work / "other").mkdir()
    (work / "other" / "__init__.py").write_text("")
    (work / "other" / "mod.py").write_text("X = 1\n")
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "commit", "-q", "-m", "another package")
    git("-C", str(work), "push", "-q", "origin", "main")
    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    modules = _sources(src, "avfs_git")
    assert len(modules) > 100 and sum(s for _, s in modules.values()) < 8 << 20  # all fit
    before, packs = objects(v.path), _packs(v.path)
    assert v.workspace("main").read(FILE) == blob_at(src, "main", FILE)
    assert len(_packs(v.path) - packs) == 1  # one fetch
    small = {p for p, (_, s) in modules.items() if s <= MAX_FILE}
    assert all(_local(v.path, modules[p][0]) for p in small)
    other = "avfs_git/py.typed"  # of the package, not a module, not in FILE's directory
    assert not _local(v.path, git("--git-dir", v.path, "rev-parse", f"main:{other}").strip())
    assert not any(_local(v.path, o) for o, _ in _sources(src, "other").values())
    # the package's modules read offline now; a module of another package is a clear error
    server.stop()
    out = "avfs_git/cli/output.py"
    assert v.workspace("main").read(out) == blob_at(src, "main", out)
    fetched = objects(v.path) - before
    assert fetched >= len(small)
    with pytest.raises(BlobNotLocalError):
        v.workspace("main").read("other/mod.py")
    assert objects(v.path) - before == fetched


@pytest.mark.parametrize("settings", [{"read_package_bytes": 0}, {"read_neighbours": 0}])
def test_a_packages_modules_stay_on_the_server_when_the_vault_says(
    lazy: Home, server: Server, settings: dict[str, int]
) -> None:
    v = lazy.vault("p")
    _configure(v.path, **settings)
    src = server.base / "proj.git"
    modules = _sources(src, "avfs_git")
    v.workspace("main").read(FILE)
    assert not _local(v.path, modules["avfs_git/cli/output.py"][0])


def test_the_package_bound_holds_and_a_failed_fetch_takes_nothing(lazy: Home, server: Server) -> None:
    """``read_package_bytes`` bounds what the package's first miss brings (breadth first:
    the package's top modules before its subpackages'); a miss that fails (the server
    gone) fetches nothing, and the package's next miss asks for its modules again."""
    v = lazy.vault("p")
    src = server.base / "proj.git"
    _configure(v.path, read_package_bytes=30_000, read_neighbours_bytes=0)
    top = {p: o for p, (o, s) in _sources(src, "avfs_git").items() if p.count("/") == 1}
    v.workspace("main").view.learn_sizes()  # (as a mount asks them as it starts)
    server.stop()
    before = objects(v.path)
    with pytest.raises(BlobNotLocalError):
        v.workspace("main").read(FILE)
    assert objects(v.path) == before
    server.start()
    v.workspace("main").read(FILE)
    own = git("--git-dir", str(src), "rev-parse", f"main:{FILE}").strip()
    got = {o for o, _ in _sources(src, "avfs_git").values() if o != own and _local(v.path, o)}
    assert got == _breadth_first(src, "avfs_git", 30_000, {own})
    assert any(o in got for o in top.values())


def _breadth_first(repo: Path, top: str, budget: int, seen: set[str]) -> set[str]:
    """The modules the rule takes under ``top`` within ``budget`` bytes: breadth first,
    each directory's entries in name order, a blob once, those that do not fit skipped."""
    out: set[str] = set()
    spent = 0
    level = [top]
    while level:
        deeper = []
        for d in level:
            for line in git("--git-dir", str(repo), "ls-tree", "-l", f"main:{d}").splitlines():
                meta, name = line.split("\t")
                _, kind, oid, size = meta.split()
                if kind == "tree":
                    deeper.append(f"{d}/{name}")
                elif kind == "blob" and name.endswith(".py") and oid not in seen:
                    seen.add(oid)
                    if int(size) <= MAX_FILE and spent + int(size) <= budget:
                        out.add(oid)
                        spent += int(size)
        level = deeper
    return out


def test_a_bad_package_setting_fails_the_read_clearly_and_fetches_nothing(lazy: Home, server: Server) -> None:
    v = lazy.vault("p")
    _configure(v.path, read_package_bytes="lots")
    before = objects(v.path)
    with pytest.raises(UsageError) as exc:
        v.workspace("main").read(FILE)
    assert "read_package_bytes" in exc.value.message and "config.json" in exc.value.message
    assert objects(v.path) == before


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_module_read_in_a_lazy_mount_brings_its_package_in_one_fetch(
    lazy: Home, server: Server, tmp_path: Path, backend: str
) -> None:
    require_fuse()
    if backend == "overlay" and (why := mounts.overlay_available()) is not None:
        if IN_CI:
            pytest.fail(f"overlayfs must be available in CI: {why}")
        pytest.skip(f"requires overlayfs: {why}")
    v = lazy.vault("p")
    src = server.base / "proj.git"
    modules = _sources(src, "avfs_git")
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(lazy, v, "main", str(mp), backend=backend)
    try:
        packs = _packs(v.path)
        assert (mp / FILE).read_bytes() == blob_at(src, "main", FILE)
        assert len(_packs(v.path) - packs) == 1  # one fetch
        # offline: the package's modules in other directories read (they came with it);
        # a file outside the package is EIO
        server.stop()
        for path in ("avfs_git/cli/output.py", "avfs_git/fuse/view.py", "avfs_git/__init__.py"):
            assert (mp / path).read_bytes() == blob_at(src, "main", path)
            assert _local(v.path, modules[path][0])
        with pytest.raises(OSError) as exc:
            (mp / "NOTES.md").read_bytes()
        assert exc.value.errno == errno.EIO
    finally:
        mounts.unmount(lazy, v, "main", lazy=True)


def test_a_package_module_the_server_no_longer_has_does_not_fail_the_read(home: Home, server: Server) -> None:
    """History rewritten on the server and collected: one of a package's modules is gone
    there. The first module read of the package still gets its file (asked again alone);
    the gone module stays promised, its own read a clear `blob_not_local`."""
    repo = server.base / "proj.git"
    work = server.base / "pkg-gone-work"
    git("clone", "-q", str(repo), str(work))
    (work / "pkg" / "sub").mkdir(parents=True)
    (work / "pkg" / "__init__.py").write_text("")
    (work / "pkg" / "a.py").write_text("A = 1\n")
    (work / "pkg" / "sub" / "__init__.py").write_text("")
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "commit", "-q", "-m", "a package")
    (work / "pkg" / "sub" / "deep").mkdir()  # (below pkg/'s direct subdirectories: the package's rule only)
    (work / "pkg" / "sub" / "deep" / "__init__.py").write_text("")
    (work / "pkg" / "sub" / "deep" / "gone.py").write_text("SECRET = 'pushed by mistake'\n")
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "commit", "-q", "-m", "oops")
    git("-C", str(work), "push", "-q", "origin", "main")
    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    v.workspace("main").view.learn_sizes()  # asked before the rewrite (as a mount or a read asks them)
    git("-C", str(work), "push", "-q", "--force", "origin", "HEAD~1:main")
    git("--git-dir", str(repo), "reflog", "expire", "--expire=now", "--all")
    git("--git-dir", str(repo), "gc", "-q", "--prune=now")
    gone = git("--git-dir", v.path, "rev-parse", "main:pkg/sub/deep/gone.py").strip()
    ws = v.workspace("main")
    assert ws.read("pkg/a.py") == b"A = 1\n"
    assert not _local(v.path, gone)
    with pytest.raises(BlobNotLocalError) as exc:
        ws.read("pkg/sub/deep/gone.py")
    assert "no longer has it" in exc.value.message and exc.value.details["path"] == "pkg/sub/deep/gone.py"


def test_a_batchs_locality_is_what_each_lookup_says(lazy: Home, server: Server, tmp_path: Path) -> None:
    """``local_of`` (a read's candidates looked up in one pass over the packs) answers as
    :meth:`is_local` does one id at a time: for promised blobs, blobs fetched into packs
    (one written after the first pass: the pack directory is read again), a loose object,
    an id that is no object, and in a vault that borrows objects through
    ``info/alternates`` (which only libgit2 reads)."""
    import pygit2  # noqa: F401 - loaded, is_local asks libgit2 too: the reference answer

    v = lazy.vault("p")
    store = v.store
    repo = server.base / "proj.git"
    here = [oid for _, oid, _ in _files(repo, "avfs_git/schemas")]
    there = [oid for _, oid, _ in _files(repo, DIR)]

    def hashed(git_dir: str, text: str) -> str:
        proc = subprocess.run(
            ["git", "--git-dir", git_dir, "hash-object", "-w", "--stdin"],
            input=text,
            capture_output=True,
            text=True,
        )
        return proc.stdout.strip()

    assert not store.local_of(here + there)
    first_file = "avfs_git/schemas/" + _files(repo, "avfs_git/schemas")[0][0]
    v.workspace("main").read(first_file)  # a fetch: a pack of it and its neighbours
    loose = hashed(v.path, "written here, loose\n")
    ids = [*here, *there, loose, "0" * 40]
    first = store.local_of(ids)
    assert first == {o for o in ids if store.is_local(o)}
    assert loose in first and first & set(here) and not first & set(there)
    v.workspace("main").read(FILE)  # another pack, written after the first pass
    again = store.local_of(ids)
    assert again == {o for o in ids if store.is_local(o)} and again & set(there)
    # objects another repository lends: only libgit2 sees them
    lender = tmp_path / "lender.git"
    git("init", "-q", "--bare", str(lender))
    lent = hashed(str(lender), "lent\n")
    with open(os.path.join(v.path, "objects", "info", "alternates"), "w") as fh:
        fh.write(str(lender / "objects") + "\n")
    fresh = GitStore(v.path)  # (libgit2 reads the alternates when it opens the vault)
    assert fresh.local_of([lent, *there]) == {o for o in [lent, *there] if fresh.is_local(o)} >= {lent}


def test_a_change_between_two_misses_is_made_in_the_other_recent_ones(home: Home, server: Server) -> None:
    """Misses in ``conf/locale/cs``, ``contrib/admin/locale/cs`` (not analogous: their
    lengths differ) and ``contrib/sessions/locale/cs`` (analogous to admin's: it brings
    ``contrib/*/locale/cs``), then in ``conf/locale/fr`` (``cs`` → ``fr`` against the
    first): the last brings, in the same fetch, ``fr`` of the packages a miss was in
    (admin, sessions) and of those the analogy brought (sites): a program that walked one
    language through its packages walks the next one through the same packages; and
    nothing of a package neither reached (``lib``)."""
    repo = server.base / "proj.git"
    work = server.base / "locale-work"
    git("clone", "-q", str(repo), str(work))
    dirs = ("p/conf", "p/contrib/admin", "p/contrib/sessions", "p/contrib/sites", "p/lib")
    for d in dirs:
        for lang in ("cs", "fr"):
            at = work / d / "locale" / lang / "LC_MESSAGES"
            at.mkdir(parents=True)
            (at / "django.po").write_text(f"{d} {lang} catalogue\n")
            (at / "django.mo").write_bytes(os.urandom(300))
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "commit", "-q", "-m", "catalogues")
    git("-C", str(work), "push", "-q", "origin", "main")
    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    ws = v.workspace("main")

    def blob(d: str, lang: str, name: str = "django.mo") -> str:
        return git("--git-dir", v.path, "rev-parse", f"main:{d}/locale/{lang}/LC_MESSAGES/{name}").strip()

    def read(d: str, lang: str) -> bytes:
        return ws.read(f"{d}/locale/{lang}/LC_MESSAGES/django.po")

    for d in ("p/conf", "p/contrib/admin", "p/contrib/sessions"):
        assert read(d, "cs") == f"{d} cs catalogue\n".encode()
    assert _local(v.path, blob("p/contrib/sites", "cs"))  # (the analogy of sessions's and admin's)
    assert not any(_local(v.path, blob(d, "fr")) for d in dirs)
    before = objects(v.path)
    assert read("p/conf", "fr") == b"p/conf fr catalogue\n"
    for d in ("p/contrib/admin", "p/contrib/sessions", "p/contrib/sites"):
        for name in ("django.po", "django.mo"):
            assert _local(v.path, blob(d, "fr", name)), d
    assert not _local(v.path, blob("p/lib", "fr"))
    assert objects(v.path) == before + 8
    packs = _packs(v.path)
    for d in ("p/contrib/admin", "p/contrib/sessions", "p/contrib/sites"):
        assert read(d, "fr") == f"{d} fr catalogue\n".encode()
    assert _packs(v.path) == packs  # local: no fetch


def test_a_catalogues_miss_brings_the_languages_catalogues_of_the_packages_other_locale_dirs(
    home: Home, server: Server
) -> None:
    """A miss of ``p/conf/locale/cs/LC_MESSAGES/django.mo`` (gettext's layout, in package
    ``p``) brings in the same fetch ``django.mo`` of ``cs`` from every other locale
    directory of ``p`` (``p/contrib/admin``, ``p/contrib/sessions``): a program that
    translates reads them one after another, each a miss (the analogies found them only
    once two were misses). Not another language, not another domain of those directories
    (``djangojs.mo``), nothing outside the package (``other``)."""
    repo = server.base / "proj.git"
    work = server.base / "catalogue-work"
    git("clone", "-q", str(repo), str(work))
    dirs = ("p/conf", "p/contrib/admin", "p/contrib/sessions", "other")
    for pkg in ("p", "p/conf", "p/contrib", "p/contrib/admin", "p/contrib/sessions"):
        (work / pkg).mkdir(parents=True, exist_ok=True)
        (work / pkg / "__init__.py").write_text("")
    for d in dirs:
        for lang in ("cs", "fr"):
            at = work / d / "locale" / lang / "LC_MESSAGES"
            at.mkdir(parents=True)
            for domain in ("django", "djangojs"):
                (at / f"{domain}.mo").write_bytes(f"{d} {lang} {domain}\n".encode() + os.urandom(300))
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "commit", "-q", "-m", "catalogues")
    git("-C", str(work), "push", "-q", "origin", "main")
    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    ws = v.workspace("main")

    def path(d: str, lang: str, domain: str = "django") -> str:
        return f"{d}/locale/{lang}/LC_MESSAGES/{domain}.mo"

    def blob(p: str) -> str:
        return git("--git-dir", v.path, "rev-parse", f"main:{p}").strip()

    before = objects(v.path)
    assert ws.read(path("p/conf", "cs")).startswith(b"p/conf cs django\n")
    for d in ("p/contrib/admin", "p/contrib/sessions"):
        assert _local(v.path, blob(path(d, "cs"))), d
        assert not _local(v.path, blob(path(d, "cs", "djangojs"))), d
        assert not _local(v.path, blob(path(d, "fr"))), d
    assert not _local(v.path, blob(path("other", "cs")))
    # the read's own directory's files come as they did (djangojs.mo)
    assert objects(v.path) == before + 4
    packs = _packs(v.path)
    for d in ("p/contrib/admin", "p/contrib/sessions"):
        assert ws.read(path(d, "cs")).startswith(f"{d} cs django\n".encode())
    assert _packs(v.path) == packs  # local: no fetch
