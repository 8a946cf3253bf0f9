"""Extended attributes a confined command sets in an overlay mount (docs/security.md, "Mount
files"; the eighteenth round, NAME=attack9).

The kernel's overlay (mounted by root) keeps its marks of the upper layer in
``trusted.overlay.*``, which the sandbox (no ``CAP_SYS_ADMIN``) cannot set; but it can set
``user.*`` attributes on the files it writes, ``user.overlay.opaque``, ``whiteout`` and
``redirect`` among them, which the kernel ignores in such a mount. avfs's reader of the
upper layer took those as the kernel's marks too (they are the marks of a ``userxattr``
mount, which avfs never makes): the fork as avfs read it (the exec's commit, a checkpoint,
`avfs status`) lost the files of a directory the command marked opaque, showed another
directory's files under one it redirected, and dropped an empty file it marked a whiteout,
while the mount, which the person looks at and runs git in, showed them all as they were.
Now only the mount's own namespace is read.

(``security.capability`` is refused in there, ``EPERM``: no ``CAP_SETFCAP``;
tests/test_adv_escape.py's ``setuid-setcap``. An export carries no attribute.)
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts

from .test_adv_mountfiles import Scene
from .test_adv_mountfiles import scene as scene


def _tree(vault_path: str, rev: str) -> dict[str, str]:
    out = subprocess.run(
        ["git", "--git-dir", vault_path, "ls-tree", "-r", rev], capture_output=True, text=True, check=True
    ).stdout
    return {line.split("\t", 1)[1]: line.split()[2] for line in out.splitlines()}


def _shown(mp: Path) -> dict[str, str]:
    """What the mount shows: every file but git's, by its blob id."""
    found: dict[str, str] = {}
    for root, dirs, files in os.walk(mp):
        dirs[:] = [d for d in dirs if not (root == str(mp) and d == ".git")]
        for name in files:
            full = os.path.join(root, name)
            if root == str(mp) and name == ".git":
                continue
            blob = subprocess.run(
                ["git", "hash-object", "--no-filters", full], capture_output=True, text=True, check=True
            ).stdout.strip()
            found[os.path.relpath(full, mp)] = blob
    return found


def test_user_overlay_marks_the_command_sets_are_not_the_kernel_s(scene: Scene, tmp_path: Path) -> None:
    """Both backends (the pure-FUSE mount refuses every attribute: the marks are never set
    there; set by Python's os.setxattr, not `setfattr`, which a fresh machine may lack);
    the person's checks: the exec's commit, `git status` in the mount, avfs's
    reads, a checkpoint, then the person's usual round."""
    ws = scene.vault.workspace("main")
    ws.write("src/a.txt", b"a\n")
    ws.write("src/b.txt", b"b\n")
    ws.write("docs/secret.txt", b"not under src\n")
    ws.write("keep/empty.txt", b"")
    ws.write("keep/other.txt", b"o\n")
    checkpoint.save(scene.vault, "main", message="the base")
    script = """
mark() { python3 -c 'import os, sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())' "$@"; }
touch src/new.txt && mark src user.overlay.opaque y && echo set opaque
mkdir -p lib && touch lib/x.txt && mark lib user.overlay.redirect /docs && echo set redirect
: > keep/empty.txt && mark keep/empty.txt user.overlay.whiteout y && echo set whiteout
true
"""
    res = scene.attack(script)
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    said = res.result.stdout if isinstance(res.result.stdout, str) else ""
    if _is_overlay(scene):  # the attack happened: each mark is on the upper layer
        assert all(f"set {m}" in said for m in ("opaque", "redirect", "whiteout")), res.to_dict()
    shown = _shown(scene.mp)
    for path in ("src/a.txt", "src/b.txt", "src/new.txt", "lib/x.txt", "keep/empty.txt", "docs/secret.txt"):
        assert path in shown, (path, sorted(shown))
    assert "lib/secret.txt" not in shown
    # the exec's commit is what the mount shows
    committed = _tree(scene.vault.path, "main")
    assert committed == shown, (sorted(set(committed) ^ set(shown)), res.to_dict().get("changes"))
    # and so are avfs's status and a checkpoint of the person's
    assert scene.git("status", "--porcelain").stdout == ""
    assert ws.read("src/a.txt") == b"a\n"
    assert sorted(e.name for e in ws.listdir("src")) == ["a.txt", "b.txt", "new.txt"]
    checkpoint.save(scene.vault, "main", message="the person's")
    assert _tree(scene.vault.path, "main") == shown
    # unmounted (the upper layer folded into the fork's entries), then mounted again
    backend = "overlay" if _is_overlay(scene) else "fuse"
    mounts.unmount(scene.home, scene.vault, "main")
    ws = scene.vault.workspace("main")
    assert {p: ws.read(p) for p in ("src/a.txt", "src/b.txt", "keep/empty.txt")} == {
        "src/a.txt": b"a\n",
        "src/b.txt": b"b\n",
        "keep/empty.txt": b"",
    }
    assert sorted(e.name for e in ws.listdir("lib")) == ["x.txt"]
    mounts.mount(scene.home, scene.vault, "main", str(scene.mp), backend=backend)
    assert _shown(scene.mp) == shown
    scene.person_acts("xattr")


def _is_overlay(scene: Scene) -> bool:
    with open("/proc/self/mounts") as fh:
        return any(line.split()[1] == str(scene.mp) and line.split()[2] == "overlay" for line in fh)
