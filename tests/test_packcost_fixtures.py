"""proxy/packcost.py's hand-written pack reading (index v1 and v2 listings, entry headers,
delta result sizes, each delta's base) against git on every pack of libgit2's own test
repositories (``realdata.libgit2_resources``): ``git show-index`` lists the same ids at
the same offsets, ``git cat-file --batch-check`` gives each object the size its entry
(or its delta's header) names, ``git verify-pack -v`` the base each delta names, and
:func:`packcost.refusal` refuses none of them (git reads them all): 28 packs (index v1
and v2), 10,995 entries, 6,348 deltas. The twenty-ninth round (realdata4) found no
difference.
"""

from __future__ import annotations

import mmap
import os
import subprocess
from pathlib import Path

from avfs_git.proxy import packcost

from . import realdata

_KIND = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}


def _git(git_dir: Path, scratch: Path, *args: str, stdin: bytes | None = None) -> str:
    """git reading ``git_dir``'s objects through an empty repository (``scratch``): some
    fixtures' refs or config stop git before it reads one (``bad_tag.git``'s packed-refs)."""
    if not (scratch / "HEAD").exists():
        subprocess.run(["git", "init", "-q", "--bare", str(scratch)], check=True)
    env = {**os.environ, "GIT_DIR": str(scratch), "GIT_OBJECT_DIRECTORY": str(git_dir / "objects")}
    return subprocess.run(
        ["git", *args], input=stdin, capture_output=True, check=True, timeout=300, env=env
    ).stdout.decode()


def test_every_fixture_pack_reads_as_git_reads_it(tmp_path: Path) -> None:
    packs = objects = deltas = 0
    for git_dir in realdata.libgit2_resources():
        for idx_path in sorted((git_dir / "objects" / "pack").glob("*.idx")):
            pack_path = idx_path.with_suffix(".pack")
            idx = idx_path.read_bytes()
            listed = packcost._listed(idx)
            shown = _git(git_dir, tmp_path / "s", "show-index", stdin=idx).split("\n")
            want = {(ln.split()[1], int(ln.split()[0])) for ln in shown if ln}
            assert {(oid.hex(), off) for oid, off in listed} == want, idx_path
            at = {off: oid.hex() for oid, off in listed}
            ids = "".join(f"{oid.hex()}\n" for oid, _ in listed).encode()
            check = _git(
                git_dir,
                tmp_path / "s",
                "cat-file",
                "--batch-check=%(objectname) %(objecttype) %(objectsize)",
                stdin=ids,
            )
            sizes = {ln.split()[0]: (ln.split()[1], int(ln.split()[2])) for ln in check.split("\n") if ln}
            verify = _git(git_dir, tmp_path / "s", "verify-pack", "-v", str(idx_path)).split("\n")
            bases = {f[0]: f[6] for f in (ln.split() for ln in verify) if len(f) == 7}
            with pack_path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as pack:
                end = len(pack) - 20
                for oid, off in listed:
                    kind, size, base = packcost._entry(pack, off, end)
                    name = oid.hex()
                    assert size == sizes[name][1], (idx_path, name)
                    if base is None:
                        assert _KIND[kind] == sizes[name][0], (idx_path, name)
                        assert name not in bases
                    else:
                        got = at[base] if isinstance(base, int) else base.hex()
                        assert got == bases[name], (idx_path, name)
                        deltas += 1
                    objects += 1
            packs += 1
        big = 1 << 40
        assert packcost.refusal(str(git_dir / "objects"), big, big) is None, git_dir
    assert packs >= 25 and objects >= 10_000 and deltas >= 5_000, (packs, objects, deltas)
