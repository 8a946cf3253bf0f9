"""The pure object reader's maps of packs are bounded per process, not per vault (flaky4,
the thirty-eighth round; core/store/objects.py ``MAPPED_PACKS``).

Each pack the pure reader reads maps its index and its data, and Python's mmap keeps a
duplicate of the file's descriptor for each map. A reader kept every pack it had mapped
for its life, and a process keeps its readers as long as it keeps their vaults: a home
keeps the 64 vault handles used last, and a handle let go sits in a reference cycle until
a collection. A resident server's kept process serving pushes of many vaults held ~2
descriptors a pack of every one (the official CI's 33rd open pack in
`test_merge_mountindex`: another test's vault, still mapped in the same worker). Now the
packs mapped first let their maps go past the bound, and map again at their next use."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import objects
from avfs_git.core.store.objreader import ObjectReader

BOUND = 4


def _open_packs(under: str) -> int:
    """This process's descriptors on pack files (index or data) below ``under``."""
    n = 0
    prefix = os.path.realpath(under) + os.sep
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        n += target.startswith(prefix) and target.endswith((".pack", ".idx"))
    return n


def _blob(vault: Any, path: str) -> str:
    tip = vault.workspace("main").tip()
    out = subprocess.run(
        ["git", "--git-dir", vault.path, "rev-parse", f"{tip}:{path}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_a_process_reading_many_vaults_keeps_a_bounded_number_of_packs_mapped(
    home: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten vaults of two packs each, every blob read by a reader kept for each (as a home
    keeps its vaults): the packs mapped stay within the bound, each blob reads right,
    the first vault's again after its maps went, and again after `git repack -ad`
    replaced its packs. Before, every pack read stayed mapped: 40 descriptors here."""
    monkeypatch.setattr(objects, "MAPPED_PACKS", BOUND, raising=False)
    vaults = []
    for i in range(10):
        v = home.create_vault(f"m{i}")
        ws = v.workspace("main")
        ws.write("f.txt", b"f%d\n" % i)
        checkpoint.save(v, "main")
        ws.write("g.txt", b"g%d\n" % i)
        checkpoint.save(v, "main")
        v.close()  # (libgit2's own descriptors let go: only the pure reader's are counted)
        vaults.append((v, _blob(v, "f.txt"), _blob(v, "g.txt")))
    readers = []
    for i, (v, f, g) in enumerate(vaults):
        r = ObjectReader(v.path)
        readers.append(r)
        assert r.read(f) == ("blob", b"f%d\n" % i) and r.read(g) == ("blob", b"g%d\n" % i)
    assert _open_packs(home.path) <= 2 * BOUND, _open_packs(home.path)
    first, f0, g0 = vaults[0]
    assert readers[0].read(f0) == ("blob", b"f0\n")  # (its maps went: mapped again)
    subprocess.run(["git", "--git-dir", first.path, "repack", "-adq"], check=True)
    for i, (r, (_v, f, g)) in enumerate(zip(readers, vaults, strict=True)):  # (its old packs gone)
        assert r.read(g) == ("blob", b"g%d\n" % i) and r.read(f) == ("blob", b"f%d\n" % i)
    assert readers[0].read(g0) == ("blob", b"g0\n")
    assert _open_packs(home.path) <= 2 * BOUND, _open_packs(home.path)
