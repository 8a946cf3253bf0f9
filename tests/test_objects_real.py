"""Differential test of the pure-Python object reader against libgit2 on real repositories.

Every object of each repository is read through :mod:`avfs_git.core.store.objects` and through
libgit2 (pygit2) and must agree in type, size and content; header-only reads (``header``)
and streams (``stream``) too. The repositories are real: a released project's history after
``git gc --aggressive`` (deep delta chains), the same repacked with ``--depth=250
--window=250`` and with a version 1 pack index, libgit2's own fixture repositories (shipped
in pygit2's sdist), and avfs vaults made from a real sdist, before and after ``avfs gc``.
Synthetic trees missed the bug this guards against (a delta whose size header needed more
than 64 compressed bytes), so nothing here is generated.

The number of objects read is printed (``-s``) and recorded in
``$AVFS_TEST_CACHE/objects-differential.json``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest

from avfs_git.core.store.objreader import ObjectReader
from avfs_git.core.vaults.home import Home
from avfs_git.ops.maintenance import gc

from . import realdata
from .conftest import git

HISTORIES = {
    # a small project's thirteen releases: many versions of the same files, chains of deltas
    "attrs": [
        *("20.1.0", "20.2.0", "20.3.0", "21.1.0", "21.2.0", "21.3.0", "21.4.0"),
        *("22.1.0", "22.2.0", "23.1.0", "23.2.0", "24.1.0", "24.2.0"),
    ],
    # a mid-sized one (~1,900 files a release, lexers and test data in many languages)
    "pygments": ["2.16.1", "2.17.2", "2.18.0"],
}
# gc --aggressive's delta window where git's 250 costs too much: pygments's 3 releases take
# ~15 s to pack with 250 and ~2 s with 10, with delta chains as deep (9)
WINDOW = {"pygments": 10}
COUNTS: dict[str, int] = {}


def _record(name: str, n: int) -> None:
    COUNTS[name] = n
    print(f"\ndifferential: {name}: {n} objects read through both readers")
    out = realdata.CACHE / "objects-differential.json"
    try:
        old = json.loads(out.read_text())
    except (OSError, ValueError):
        old = {}
    old[name] = n
    out.write_text(json.dumps(old, indent=1, sort_keys=True))


def compare_all(git_dir: Path | str) -> dict[str, int]:
    """Read every object of ``git_dir`` through both readers; returns counts by kind (and
    ``deltas``: objects stored as deltas)."""
    git_dir = str(git_dir)
    lines = git(
        "--git-dir",
        git_dir,
        "cat-file",
        "--batch-all-objects",
        "--batch-check=%(objectname) %(objecttype) %(objectsize) %(deltabase)",
    ).splitlines()
    repo = pygit2.Repository(git_dir)
    reader = ObjectReader(git_dir)
    cold = ObjectReader(git_dir)  # header-only reads with an empty delta base cache
    counts: dict[str, int] = {"objects": 0, "deltas": 0}
    for line in lines:
        oid, kind, size_s, base = line.split()
        size = int(size_s)
        obj = repo[oid]
        want = bytes(obj.read_raw())
        assert obj.type_str == kind and len(want) == size, oid
        assert cold.header(oid) == (kind, size), oid
        assert reader.read(oid) == (kind, want), oid
        assert reader.header(oid) == (kind, size), oid
        stream = reader.stream(oid)
        if stream is not None:
            assert kind == "blob" and stream.size == size, oid
            try:
                assert stream.read() == want, oid
            finally:
                stream.close()
        counts["objects"] += 1
        counts[kind] = counts.get(kind, 0) + 1
        counts["deltas"] += base != "0" * 40
    assert counts["objects"] == len(lines)
    return counts


def _history(project: str) -> Path:
    """``project``'s released sdists as successive commits after ``git gc --aggressive``
    (built once, cached under the test cache; tests copy it before changing it)."""
    versions = HISTORIES[project]
    window = WINDOW.get(project)
    tag = "" if window is None else f"-w{window}"
    dest = realdata.CACHE / "histories" / f"{project}-{'-'.join(versions)}{tag}"
    return realdata.history(project, versions, dest, window=window) / ".git"


@pytest.fixture(scope="module")
def attrs_history() -> Path:
    return _history("attrs")


def _copy_repo(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


def _max_chain(git_dir: Path) -> int:
    idx = [str(p) for p in git_dir.glob("objects/pack/*.idx")]
    out = git("--git-dir", str(git_dir), "verify-pack", "-v", *idx)
    return max(
        (
            int(line.split("=")[1].split(":")[0])
            for line in out.splitlines()
            if line.startswith("chain length")
        ),
        default=0,
    )


@pytest.mark.parametrize("project", sorted(HISTORIES))
def test_history_after_gc_aggressive(project):
    repo = _history(project)
    counts = compare_all(repo)
    _record(f"{project} history of {len(HISTORIES[project])} releases (gc --aggressive)", counts["objects"])
    assert counts["commit"] == len(HISTORIES[project])
    assert counts["deltas"] > 100 and _max_chain(repo) >= 5


@pytest.mark.parametrize(
    "variant",
    [
        ["repack", "-adf", "-q", "--depth=250", "--window=250"],
        ["-c", "pack.indexVersion=1", "repack", "-adf", "-q"],
        ["-c", "repack.useDeltaBaseOffset=false", "repack", "-adf", "-q"],  # REF_DELTA only
    ],
    ids=["depth250", "index-v1", "ref-delta"],
)
def test_attrs_history_repacked(attrs_history, tmp_path, variant):
    repo = _copy_repo(attrs_history, tmp_path / "r.git")
    git("--git-dir", str(repo), *variant)
    idx = list((repo / "objects" / "pack").glob("*.idx"))
    assert len(idx) == 1
    if "pack.indexVersion=1" in variant:
        assert idx[0].read_bytes()[:4] != b"\xfftOc"  # git still writes a version 1 index
    counts = compare_all(repo)
    _record(f"attrs history (git {' '.join(variant)})", counts["objects"])
    assert counts["deltas"] > 100  # (compare_all also proves the reader found each itself)


def test_attrs_history_loose(attrs_history, tmp_path):
    """Every object loose (unpacked from the pack): the loose-object path on the same data."""
    repo = tmp_path / "loose.git"
    git("init", "-q", "--bare", str(repo))
    packs = list(attrs_history.glob("objects/pack/*.pack"))
    for pack in packs:
        with pack.open("rb") as fh:
            subprocess.run(["git", "--git-dir", str(repo), "unpack-objects", "-q"], stdin=fh, check=True)
    counts = compare_all(repo)
    _record("attrs history (all loose)", counts["objects"])
    assert counts["deltas"] == 0 and counts["objects"] > 300


@pytest.fixture(scope="module")
def libgit2_fixtures(tmp_path_factory) -> list[Path]:
    """The git directories of the fixture repositories in pygit2's sdist (libgit2's own)."""
    return realdata.pygit2_fixture_repos(tmp_path_factory.mktemp("pygit2-fixtures"))


def test_libgit2_fixture_repositories(libgit2_fixtures):
    total = packed = 0
    for git_dir in libgit2_fixtures:
        counts = compare_all(git_dir)
        total += counts["objects"]
        packed += len(list(git_dir.glob("objects/pack/*.idx")))
    _record(f"pygit2 1.15.1 test fixtures ({len(libgit2_fixtures)} repositories)", total)
    assert total > 200 and packed > 0


@pytest.fixture(scope="module")
def attrs_sdist(tmp_path_factory) -> Path:
    return realdata.extract(realdata.pypi_sdist("attrs", "24.2.0"), tmp_path_factory.mktemp("attrs"))


def test_vault_from_real_sdist_and_after_gc(home: Home, attrs_sdist, tmp_path):
    v = home.create_vault("at", from_dir=str(attrs_sdist))
    # deltified blobs in the pack: the case the reader used to fail on
    counts = compare_all(v.path)
    _record("vault create --from attrs 24.2.0", counts["objects"])
    # a fork with changes and a checkpoint, then gc
    from avfs_git.core.operations import checkpoint

    ws = v.workspace()
    readme = (attrs_sdist / "README.md").read_bytes()
    ws.write("README.md", readme + b"\nmore\n")
    checkpoint.save(v)
    v.store.close()
    gc(v, grace_days=0)
    counts = compare_all(v.path)
    _record("same vault after checkpoint + avfs gc", counts["objects"])
    assert counts["deltas"] > 0


def test_cli_reads_every_file_of_a_real_sdist_without_pygit2(home: Home, attrs_sdist, tmp_path):
    """The reproduction of the issue: `ls -l`, `stat` and `cat` of every file of a vault
    created from the attrs sdist, through the pure reader (pygit2 never imported), and the
    same after `avfs gc`."""
    home.create_vault("at", from_dir=str(attrs_sdist))
    files = sorted(
        str(p.relative_to(attrs_sdist)) for p in attrs_sdist.rglob("*") if p.is_file() and not p.is_symlink()
    )
    script = (
        "import sys, io, json, os\n"
        "from avfs_git.cli.main import main\n"
        "root, files = sys.argv[1], json.loads(sys.argv[2])\n"
        "def run(args):\n"
        "    out = io.BytesIO(); w = io.TextIOWrapper(out, encoding='utf-8', write_through=True)\n"
        "    saved = sys.stdout; sys.stdout = w\n"
        "    try: code = main(args)\n"
        "    finally: sys.stdout = saved\n"
        "    assert code == 0, (args, code)\n"
        "    return out.getvalue()\n"
        "for d in sorted({os.path.dirname(f) for f in files}):\n"
        "    run(['--vault', 'at', 'ls', '-l', d])\n"
        "for f in files:\n"
        "    st = json.loads(run(['--json', '--vault', 'at', 'stat', f]))\n"
        "    assert st['stat']['size'] == os.path.getsize(os.path.join(root, f)), f\n"
        "    with open(os.path.join(root, f), 'rb') as fh:\n"
        "        assert run(['--vault', 'at', 'cat', f]) == fh.read(), f\n"
        "assert 'pygit2' not in sys.modules\n"
        "print(len(files))\n"
    )
    for when in ("created", "after gc"):
        proc = subprocess.run(
            [sys.executable, "-c", script, str(attrs_sdist), json.dumps(files)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, f"{when}: {proc.stderr[-3000:]}"
        assert proc.stdout.split()[-1] == str(len(files))
        if when == "created":
            v = home.vault("at")
            gc(v, grace_days=0)
            v.store.close()
