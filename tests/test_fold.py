"""The fold of an unmounted overlay's upper layer into the overlay's entries
(``avfs_git.core.workspace.wsfold``), counted: realproj8's first merge after a mount went
took 1.2 s of CPU folding an installed ``node_modules`` (13,963 entries), each entry asked
for the entry at its path and for entries below it before it was written. Below a
directory the fold itself made, there are none to ask for."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts

from .conftest import git
from .test_overlay import _tree, require_overlay


def test_a_folded_new_tree_asks_for_no_entry_below_it(home: Any, vault: Any, tmp_path: Path) -> None:
    require_overlay()
    ws = vault.workspace("main")
    ws.write(".gitignore", b"node_modules/\n")
    ws.write("src/app.js", b"app\n", parents=True)
    checkpoint.save(vault)
    ws.write("gen/old.txt", b"made before the mount\n", parents=True)  # an entry, replaced below
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        files = 0
        for k in range(12):
            pkg = os.path.join(mp, "node_modules", f"pkg{k}")
            os.makedirs(os.path.join(pkg, "lib", "deep"))
            for name in ("package.json", "lib/a.js", "lib/b.js", "lib/deep/c.js"):
                with open(os.path.join(pkg, name), "w") as fh:
                    fh.write(f"{k} {name}\n")
                files += 1
            os.symlink("lib/a.js", os.path.join(pkg, "main.js"))
            os.chmod(os.path.join(pkg, "lib", "b.js"), 0o755)
            files += 1
        with open(os.path.join(mp, "src", "new.js"), "w") as fh:  # in a directory of the base
            fh.write("new\n")
        os.unlink(os.path.join(mp, "gen", "old.txt"))
        os.rmdir(os.path.join(mp, "gen"))
        os.makedirs(os.path.join(mp, "gen", "sub"))  # opaque: where the entries' gen was
        with open(os.path.join(mp, "gen", "sub", "x.txt"), "w") as fh:
            fh.write("x\n")
        live = _tree(mp)
    finally:
        mounts.unmount(home, vault, "main")
    ws = vault.workspace("main")
    db = ws.overlay.db
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    try:
        folded = ws.fold_upper()
    finally:
        db.set_trace_callback(None)
    assert folded >= files + 12 * 3 + 5
    asks = [s for s in statements if s.lstrip().startswith("SELECT") and " FROM entries " in s]
    # one journal row and one entry a path; a lookup only where the database may hold one
    # (the top of each new tree, and the merged src/'s new file): main's code asked two
    # a path (its entry, the entries below it), 190 here
    assert len(asks) <= 12, "\n".join(a[:150] for a in asks)
    assert sum(s.startswith("INSERT INTO journal") for s in statements) <= folded + 1
    # the tree is the same, and the overlay's entries say so without the upper layer
    assert not os.listdir(ws.overlay.upper_dir)
    assert ws.read("gen/sub/x.txt") == b"x\n" and not ws.exists("gen/old.txt")
    assert ws.read("node_modules/pkg3/lib/deep/c.js") == b"3 lib/deep/c.js\n"
    assert ws.read_link("node_modules/pkg3/main.js") == "lib/a.js"
    assert ws.stat("node_modules/pkg3/lib/b.js").mode == 0o100755
    assert {c.path for c in ws.status()} == {"src/new.js", "gen/sub/x.txt"}
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        assert _tree(mp) == live
    finally:
        mounts.unmount(home, vault, "main")
    checkpoint.save(vault)
    tree = set(git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main").split())
    assert tree == {".gitignore", "src/app.js", "src/new.js", "gen/sub/x.txt"}
