"""avfs's pack writer (``core/store/packwriter.py``: git's pack v2 and index v2 written by
hand, every checkpoint's and merge's objects) against git, on real objects: every commit,
tree and blob of libgit2's own test repositories (``realdata.libgit2_resources``, ~13,000
objects: binary files, CRLF text, empty blobs and trees, a 2005 tree's modes) written into
one pack, trees by ``add_tree``, blobs by ``add`` and, a sample of the bigger ones,
streamed from a file by ``add_file``. The index avfs writes must be byte for byte the one
``git index-pack`` makes of that pack (which inflates and hashes every object: each id
and content is git's), and ``git verify-pack`` must pass.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pygit2

from avfs_git.core.store.packwriter import OBJ_BLOB, OBJ_COMMIT, PackWriter

from . import realdata
from .conftest import git


def test_a_pack_of_every_real_object_is_git_s_pack_and_index(tmp_path: Path) -> None:
    dest = tmp_path / "t.git"
    git("init", "-q", "--bare", str(dest))
    writer = PackWriter(str(dest))
    kinds = {"commit": 0, "tree": 0, "blob": 0, "streamed": 0}
    scratch = tmp_path / "blobs"
    scratch.mkdir()
    try:
        for git_dir in realdata.libgit2_resources():
            objects = pygit2.Repository()
            objects.set_odb(pygit2.Odb(str(git_dir / "objects")))
            for oid in objects.odb:
                obj = objects[oid]
                kind = obj.type_str
                raw = bytes(obj.read_raw())
                if kind == "tree":
                    got = writer.add_tree(raw).hex()
                elif kind == "blob" and len(raw) > 64 and kinds["blob"] % 8 == 0:
                    # (every eighth, each its own new file: a file's blocks freed by
                    # rewriting it are discarded on the development machine, ~1.4 ms each)
                    blob = scratch / str(oid)  # (a new file each: see above)
                    blob.write_bytes(raw)
                    got = writer.add_file(str(blob))
                    kinds["streamed"] += 1
                elif kind in ("blob", "commit"):
                    got = writer.add(OBJ_BLOB if kind == "blob" else OBJ_COMMIT, raw)
                else:
                    continue  # (tags: the writer has no use for them)
                assert got == str(oid), (git_dir, oid)
                kinds[kind] += 1
        name = writer.finish()
    except BaseException:
        writer.abort()
        raise
    assert name is not None
    pack = dest / "objects" / "pack" / f"{name}.pack"
    subprocess.run(
        ["git", "index-pack", "-o", str(tmp_path / "git.idx"), str(pack)], check=True, capture_output=True
    )
    assert (tmp_path / "git.idx").read_bytes() == pack.with_suffix(".idx").read_bytes()
    git("--git-dir", str(dest), "verify-pack", str(pack.with_suffix(".idx")))
    listed = git("--git-dir", str(dest), "cat-file", "--batch-all-objects", "--batch-check").splitlines()
    assert len(listed) == len(writer), (len(listed), len(writer))
    assert (
        kinds["tree"] > 3000 and kinds["blob"] > 2000 and kinds["commit"] > 1000 and kinds["streamed"] > 200
    ), kinds
