"""An exec's record of thousands of new files, seventh pass (record7, the fortieth round):
the upper layer's watch handles a file's second and third events of a read (``IN_MODIFY``,
``IN_CLOSE_WRITE`` after its ``IN_CREATE``) as the one journal entry they come to, not as
events of their own (:meth:`.upperclassify.ChangeClassifier._again`).

What must not change: the journal names every path written, the change log holds one row a
new file (``created``), a write through one name of a linked file names its other names, a
rewrite of a file already journaled is one ``modified``. The exec's own record against git's
``add -A`` of the same files is ``test_record6``'s (both backends), run beside these.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from avfs_git.core.workspace import upperwatch


def _watch(top: Path) -> tuple[Any, list[tuple[str, str]], list[int]]:
    """A watch of directory ``top`` (no thread: each drain is the test's), its change log
    rows (kind, path) and a count of the events it handled whole (``_event``)."""
    rows: list[tuple[str, str]] = []
    handled = [0]
    w = upperwatch.UpperWatch(str(top), lambda p: None, lambda: [], lambda: "base:0")
    w.on_events = lambda batch: rows.extend((k, p) for _t, k, p, _o in batch)
    event = w._event

    def counted(wd: int, mask: int, name: str) -> None:
        handled[0] += 1
        event(wd, mask, name)

    w._event = counted
    w._rewatch()
    return w, rows, handled


def _write(path: Path, *parts: bytes, mode: str = "wb") -> None:
    with open(path, mode) as fh:
        for p in parts:
            fh.write(p)
            fh.flush()


def test_a_new_file_s_writes_are_one_journal_entry_and_one_created_row(tmp_path: Path) -> None:
    """300 new files, each written in two calls and closed (``IN_CREATE``, ``IN_MODIFY``,
    ``IN_CLOSE_WRITE`` each): the journal names each once, the change log has one
    ``created`` row each, and the watch handled one event a file whole, not three (on main:
    every event, 900)."""
    top = tmp_path / "upper"
    (top / "d").mkdir(parents=True)
    w, rows, handled = _watch(top)
    try:
        seq0 = w.changed_since(None)[0]
        names = [f"d/f{i}.txt" for i in range(300)]
        for n in names:
            _write(top / n, b"first\n", b"second\n")
        seq1, paths = w.changed_since(seq0)
        assert paths is not None and sorted(set(paths)) == sorted(names)
        assert sorted(rows) == sorted(("created", n) for n in names)
        assert handled[0] <= len(names) * 1.2, handled[0]

        # a file written again (journaled before): one `modified`, its path named
        rows.clear()
        _write(top / names[7], b"third\n", b"fourth\n", mode="ab")
        _seq, paths = w.changed_since(seq1)
        assert paths == [names[7]]
        assert rows == [("modified", names[7])]
    finally:
        w.close()
    assert (top / names[7]).read_bytes() == b"first\nsecond\nthird\nfourth\n"


def test_a_write_through_one_name_of_a_linked_file_names_the_others(tmp_path: Path) -> None:
    """A file made with a second name (``link``), then written through the first: the
    journal and the change log name both, as each of its events is handled whole."""
    top = tmp_path / "upper"
    top.mkdir()
    w, rows, _handled = _watch(top)
    try:
        _write(top / "a.txt", b"one\n")
        os.link(top / "a.txt", top / "b.txt")
        seq0, _ = w.changed_since(None)
        seq0, paths = w.changed_since(seq0)
        rows.clear()
        _write(top / "a.txt", b"two\n", b"three\n", mode="ab")
        _seq, paths = w.changed_since(seq0)
        assert paths is not None and sorted(set(paths)) == ["a.txt", "b.txt"]
        assert sorted(set(rows)) == [("modified", "a.txt"), ("modified", "b.txt")]
    finally:
        w.close()
    assert (top / "b.txt").read_bytes() == b"one\ntwo\nthree\n"
