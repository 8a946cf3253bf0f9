"""An exec's record of thousands of new files, cut again (record5, the thirty-eighth round):
the retire looks for directories the move takes away only among what the base held (it
looked up, and on a mount stat'ed, each of an exec's 20,000 added files), the upper
layer's watch asks the lower layer about a created file once, not twice, and a file an
exec rewrites with the bytes its base holds (a build's output made again) is hashed, not
deflated into the record's pack again.

Each test fails where the old per-file work comes back; what a record commits is held by
``test_record4``'s comparison with git's own ``add -A && commit`` (every kind of entry, both
backends) and the hostile files of ``test_adv_upperrace`` and ``test_adv_links``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.changes import changes_since
from avfs_git.core.workspace import upperwatch, wsretire

from .conftest import git
from .test_confine import _need_bwrap
from .test_fuse import _mounted, require_fuse
from .test_overlay import require_overlay

# the files rewritten with their own bytes (read whole first: ``open(.., "wb")`` empties it)
REWRITE = (
    "import glob\n"
    "for p in sorted(glob.glob('t/*.txt')):\n"
    "    d = open(p, 'rb').read()\n"
    "    open(p, 'wb').write(d)\n"
    "open('keep.txt', 'ab').write(b'one more line\\n')\n"
)


def test_the_retire_looks_for_vanishing_directories_only_where_the_base_held_something(
    vault, ws, monkeypatch
) -> None:
    ws.write("old/gone/a.txt", b"a\n")
    ws.write("old/stays.txt", b"s\n")
    checkpoint.save(vault, message="base")
    for i in range(200):  # an exec's new files, beside one directory emptied
        ws.write(f"new/d{i % 4}/f{i}.txt", b"%d\n" % i)
    ws.remove("old/gone/a.txt")
    asked: list[str] = []
    inside = [False]
    lookup = vault.store.tree_lookup
    real = wsretire.vanishing_dirs

    def counted(tree, path):  # (the vault's own lookup; each path it is asked while retiring)
        if inside[0]:
            asked.append(path)
        return lookup(tree, path)

    def noting(w, commit):
        inside[0] = True
        try:
            return real(w, commit)
        finally:
            inside[0] = False

    monkeypatch.setattr(vault.store, "tree_lookup", counted)
    monkeypatch.setattr(wsretire, "vanishing_dirs", noting)
    res = checkpoint.save(vault, message="new files")
    assert res.created
    tree = vault.store.commit_tree(res.checkpoint.commit)
    assert lookup(tree, "new/d3/f199.txt") is not None and lookup(tree, "old/gone") is None
    # what the base held, and its directories: not one of the 200 added files
    assert sorted(asked) == ["old", "old/gone", "old/gone/a.txt"], asked


# in an overlay mount: a base directory renamed (a redirect to where the lower layer holds
# it), one file there written (a copy-up through the redirect), one new there, one new in a
# new directory
MOVES = """
import os, sys
mp = sys.argv[1]
os.rename(os.path.join(mp, "src"), os.path.join(mp, "moved"))
with open(os.path.join(mp, "moved", "app.py"), "a") as f:
    f.write("more\\n")
open(os.path.join(mp, "moved", "new.py"), "w").write("new\\n")
os.mkdir(os.path.join(mp, "fresh"))
open(os.path.join(mp, "fresh", "x.txt"), "w").write("x\\n")
"""


def test_a_file_s_label_in_an_overlay_mount_follows_its_directory_s_redirect(
    home, vault, tmp_path: Path
) -> None:
    # (the watch asks a file's directory, not the file's own marks: a file has none)
    with _mounted(home, vault, tmp_path, "overlay") as (v, mp):
        start = changes_since(v, "main", None).cursor
        subprocess.run([sys.executable, "-c", MOVES, mp], check=True)
        want = {"moved/app.py": "modified", "moved/new.py": "created", "fresh/x.txt": "created"}
        got: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and set(got) != set(want):
            got = {e.path: e.kind for e in changes_since(v, "main", start).events if e.path in want}
            time.sleep(0.05)
        assert got == want


def test_the_watch_asks_the_lower_layer_about_a_created_file_once(tmp_path: Path) -> None:
    top = tmp_path / "upper"
    top.mkdir()
    asked: dict[str, int] = {}
    events: list[tuple[str, str]] = []

    def lower_kind(path: str) -> str | None:  # (a lower layer that holds nothing)
        asked[path] = asked.get(path, 0) + 1
        return None

    w = upperwatch.UpperWatch(str(top), lower_kind, lambda: [], lambda: "base:0")
    w.on_events = lambda batch: events.extend((k, p) for _t, k, p, _o in batch)
    w.lower_mode = lambda path: None
    w.start()
    try:
        w.changed_since(None)
        for i in range(50):
            (top / f"f{i}.txt").write_bytes(b"%d\n" % i)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len({p for k, p in events if k == "created"}) < 50:
            time.sleep(0.05)
            w.changed_since(None)
    finally:
        w.close()
    assert {p for k, p in events if k == "created"} == {f"f{i}.txt" for i in range(50)}, events
    assert all(os.path.exists(top / p) for p in asked)
    # one question a created file (each write after it is no creation: not asked)
    assert {asked.get(f"f{i}.txt") for i in range(50)} == {1}, asked


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_an_exec_s_files_rewritten_with_their_base_s_bytes_are_not_stored_again(
    tmp_path: Path, backend: str
) -> None:
    require_overlay() if backend == "overlay" else require_fuse()
    _need_bwrap()
    src = tmp_path / "src"
    (src / "t").mkdir(parents=True)
    for i in range(60):
        (src / "t" / f"f{i}.txt").write_bytes(b"file %d\n" % i * (1 + i))
    (src / "keep.txt").write_bytes(b"kept\n")
    (src / "rewrite.py").write_text(REWRITE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(AVFS_HOME=str(tmp_path / "home"), AVFS_SERVER="off", AVFS_PROGRESS="never")

    def avfs(*args: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True, timeout=600, env=env
        )
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        return r

    avfs("vault", "create", "p", "--from", str(src))
    avfs("vault", "fork", "p", "f1")
    avfs("--json", "mount", "--backend", backend, "p:f1")
    vault_git = tmp_path / "home" / "vaults" / "p.git"
    packs = vault_git / "objects" / "pack"
    try:
        before = set(packs.glob("*.idx"))
        doc = json.loads(
            avfs("--json", "--vault", "p:f1", "proxy", "exec", "--", "python3", "rewrite.py").stdout
        )
        assert doc["success"] and doc["mount"]["backend"] == backend, doc["error"]
        assert [c["path"] for c in doc["changes"]] == ["keep.txt"], doc["changes"]
        commit = doc["commit"]["commit"]
        assert git("diff", "--name-only", f"{commit}^", commit, cwd=vault_git).split() == ["keep.txt"]
        git("fsck", "--strict", "--no-dangling", cwd=vault_git)
        blobs = []
        for idx in sorted(set(packs.glob("*.idx")) - before):  # (the record's pack)
            with open(idx, "rb") as fh:
                ids = [line.split()[1] for line in subprocess.run(
                    ["git", "show-index"], stdin=fh, capture_output=True, text=True, check=True
                ).stdout.splitlines()]  # fmt: skip
            kinds = subprocess.run(
                ["git", "cat-file", "--batch-check=%(objecttype)"],
                cwd=vault_git, input="\n".join(ids) + "\n", capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            blobs += [i for i, k in zip(ids, kinds.split(), strict=True) if k == "blob"]
        # keep.txt's new bytes alone: the 60 files' blobs are the base's, not written again
        assert blobs == [git("rev-parse", f"{commit}:keep.txt", cwd=vault_git).strip()], len(blobs)
        st = json.loads(avfs("--json", "--vault", "p:f1", "status").stdout)
        assert st["changes"] == [], st["changes"][:5]
    finally:
        subprocess.run(
            [sys.executable, "-m", "avfs_git", "unmount", "p:f1"], capture_output=True, timeout=120, env=env
        )
