"""An exec's record of thousands of new files, cut again (record5, the thirty-eighth round):
the retire looks for directories the move takes away only among what the base held (it
looked up, and on a mount stat'ed, each of an exec's 20,000 added files), and the upper
layer's watch asks the lower layer about a created file once, not twice.

Each test fails where the old per-file work comes back; what a record commits is held by
``test_record4``'s comparison with git's own ``add -A && commit`` (every kind of entry, both
backends) and the hostile files of ``test_adv_upperrace`` and ``test_adv_links``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from avfs_git.core.operations import checkpoint
from avfs_git.core.workspace import upperwatch, wsretire


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
