"""A write through one name of a hard-linked file in an overlay mount (review42, F1).

overlayfs keeps one overlay inode for a file linked under several names and writes through
the upper dentry of the name first looked up, so the kernel's inotify event for a write to
``Makefile`` may name ``cache.o``. The upper layer's journal recorded only the name the
event gave: a confined command linked ``Makefile`` to an ignored ``cache.o`` in one run and
rewrote ``Makefile`` in the next; the run's record (``changes: []``, no commit), ``avfs
status`` and git's fsmonitor answer in the mount (the person's ``git status`` clean) all
missed the changed ``Makefile`` while the mount's build ran the new one. Now every name of a
linked file is journaled when one changes (core/workspace/upperlinks.py).

The same blind spot let a planted repository's config be rewritten unchecked (review42, F3:
``src/config`` a link of an ignored ``build.o``; the exec's planted-repository check walks
the journal's paths, which named ``build.o`` only): the person's ``git status`` in ``src/``
ran the agent's ``core.fsmonitor`` on the host.

Real confined execs in a real overlay mount (pure FUSE refuses hard links), then the person's
plain git and ``avfs status``."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from avfs_git import changes_since
from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts

from .test_adv_gitseal import _avfs, _exec
from .test_confine import _need_bwrap
from .test_overlay import require_overlay

GOOD = "all:\n\techo good\n"
BAD = "all:\n\techo PWNED\n"


def _mount(home: Any, vault: Any) -> Any:
    return mounts.mount(home, vault, "main", None, backend="overlay")


@pytest.fixture
def overlay(home: Any, vault: Any) -> Iterator[Any]:
    require_overlay()
    _need_bwrap()
    ws = vault.workspace("main")
    ws.write("Makefile", GOOD.encode())
    ws.write(".gitignore", b"*.o\n")
    ws.write("a.txt", b"a\n")
    checkpoint.save(vault, name="base")
    info = _mount(home, vault)
    try:
        yield info
    finally:
        if os.path.ismount(info.mountpoint):  # (a test may unmount it: test_adv_linkgone's)
            mounts.unmount(home, vault, "main", lazy=True)


def _git(mp: str, *args: str) -> str:
    return subprocess.run(["git", "-C", mp, *args], capture_output=True, text=True, check=True).stdout


def _status_twice(mp: str) -> None:
    """The person's `git status`, twice: the second trusts the mount's fsmonitor answer
    (entries marked valid by the first; a second apart so none is racily clean)."""
    _git(mp, "status", "--porcelain")
    time.sleep(1.1)
    _git(mp, "status", "--porcelain")


def _changed(doc: dict[str, Any]) -> set[str]:
    return {c["path"] for c in doc["changes"]}


def _branch_file(vault: Any, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", vault.path, "show", f"main:{path}"], capture_output=True, text=True, check=True
    ).stdout


def recorded(mp: str, vault: Any, run: dict[str, Any]) -> None:
    """``run``'s rewrite of ``Makefile`` recorded: named in its changes, committed, and git
    in the mount (its fsmonitor asked) sees what it sees without asking."""
    assert "Makefile" in _changed(run), run["changes"]
    assert _branch_file(vault, "Makefile") == BAD
    assert _git(mp, "status", "--porcelain") == _git(
        mp, "-c", "core.fsmonitor=false", "status", "--porcelain"
    )


def _avfs_status() -> set[str]:
    r = _avfs("--json", "status")
    assert r.returncode == 0, r
    return {c["path"] for c in json.loads(r.stdout)["changes"]}


def test_a_tracked_file_linked_to_an_ignored_one_and_rewritten_is_recorded(overlay: Any, vault: Any) -> None:
    mp = overlay.mountpoint
    first = _exec("sh", "-c", "cp Makefile cache.o && rm Makefile && ln cache.o Makefile")
    assert first["exit_code"] == 0, first["result"]
    _status_twice(mp)
    second = _exec("sh", "-c", "printf 'all:\\n\\techo PWNED\\n' > Makefile")
    assert second["exit_code"] == 0, second["result"]
    with open(f"{mp}/Makefile") as fh:
        assert fh.read() == BAD
    recorded(mp, vault, second)


def test_the_person_s_write_through_the_other_name_is_seen_by_git_and_avfs(overlay: Any, vault: Any) -> None:
    mp = overlay.mountpoint
    made = _exec("sh", "-c", "echo v1 > a.txt && ln a.txt b.txt")
    assert made["exit_code"] == 0, made["result"]
    assert {"a.txt", "b.txt"} <= _changed(made), made["changes"]
    _status_twice(mp)
    with open(f"{mp}/b.txt", "w") as fh:
        fh.write("edited through b\n")
    plain = _git(mp, "-c", "core.fsmonitor=false", "status", "--porcelain")
    assert " M a.txt\n" in plain and " M b.txt\n" in plain, plain
    assert _git(mp, "status", "--porcelain") == plain
    assert {"a.txt", "b.txt"} <= _avfs_status()


def test_a_planted_repository_s_config_rewritten_through_a_link_never_runs_for_the_person(
    overlay: Any, tmp_path: Any
) -> None:
    mp = overlay.mountpoint
    mark = tmp_path / "pwned"
    made = _exec(
        "sh",
        "-c",
        "mkdir -p src/objects src/refs && printf 'ref: refs/heads/main\\n' > src/HEAD"
        " && printf '[core]\\n\\trepositoryformatversion = 0\\n' > build.o && ln build.o src/config",
    )
    assert made["exit_code"] == 0, made["result"]
    time.sleep(1.1)
    evil = (
        '[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n\\tworktree = ..\\n\\tfsmonitor = "touch '
        + str(mark)
        + '; false"\\n'
    )
    second = _exec("sh", "-c", f"printf '{evil}' > src/config")
    assert second["exit_code"] == 0, second["result"]
    subprocess.run(["git", "status", "--short"], cwd=f"{mp}/src", capture_output=True, check=False)
    subprocess.run(["git", "status", "--short"], cwd=mp, capture_output=True, check=False)
    assert not mark.exists(), "the planted repository's fsmonitor ran on the host"


def _journal(top: Any) -> Any:
    from avfs_git.core.workspace.upperwatch import UpperWatch

    w = UpperWatch(str(top), lambda p: None, lambda: [], lambda: "base:0")
    w.start()
    return w


def _changed_after(w: Any, seq: int, write: Any) -> set[str]:
    write()
    for _ in range(200):  # (the watcher's thread reads within its 20 ms batch)
        _now, paths = w.changed_since(seq)
        if paths:
            return set(paths)
        time.sleep(0.02)
    return set()


def test_the_journal_names_every_name_of_a_file_linked_before_it_started(tmp_path: Any) -> None:
    """The journal's first walk learns links already in the upper layer (a remount's): a
    write through one name journals the others (the kernel may name any one of them)."""
    top = tmp_path / "upper"
    (top / "d").mkdir(parents=True)
    (top / "a").write_text("1\n")
    os.link(top / "a", top / "d" / "b")
    os.link(top / "a", top / "c")
    w = _journal(top)
    try:
        seq, _ = w.changed_since(None)
        assert _changed_after(w, seq, lambda: (top / "a").write_text("2\n")) == {"a", "d/b", "c"}
        seq, _ = w.changed_since(None)
        os.unlink(top / "c")
        seq, _ = w.changed_since(None)
        assert _changed_after(w, seq, lambda: os.chmod(top / "d" / "b", 0o600)) == {"a", "d/b"}
    finally:
        w.close()


def test_the_journal_finds_a_name_linked_to_a_file_it_saw_with_one(tmp_path: Any) -> None:
    """A file journaled with one link, then linked under a new name and a directory
    renamed: the listing finds the old name, each write journals both names where they are."""
    top = tmp_path / "upper"
    top.mkdir()
    w = _journal(top)
    try:
        seq, _ = w.changed_since(None)
        assert _changed_after(w, seq, lambda: (top / "a").write_text("1\n")) == {"a"}
        (top / "d").mkdir()
        os.link(top / "a", top / "d" / "b")
        time.sleep(0.2)
        os.rename(top / "d", top / "e")
        time.sleep(0.2)
        seq, _ = w.changed_since(None)
        assert _changed_after(w, seq, lambda: (top / "e" / "b").write_text("2\n")) == {"a", "e/b"}
    finally:
        w.close()


def _stream_until_marker(vault: Any, mp: str, cursor: Any, marker: str) -> list[tuple[str, str]]:
    """The change stream's events after ``cursor`` up to the person's own write of
    ``marker`` in the mount (made after the command ended: every event before it is in)."""
    with open(f"{mp}/{marker}", "w") as fh:
        fh.write("the person's\n")
    deadline = time.monotonic() + 30
    while True:
        got = [(e.kind, e.path) for e in changes_since(vault, "main", cursor, limit=1000).events]
        if any(path == marker for _kind, path in got) or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_the_change_stream_names_every_name_of_a_file_written_through_a_link(
    overlay: Any, vault: Any
) -> None:
    """A watcher of ``Makefile`` (``avfs watch``) hears that it changed when a command
    rewrites it through a link: the kernel names ``cache.o``, the name overlayfs looked up
    first (before, the stream said ``cache.o modified`` only), and a chmod likewise."""
    mp = overlay.mountpoint
    first = _exec("sh", "-c", "cp Makefile cache.o && rm Makefile && ln cache.o Makefile")
    assert first["exit_code"] == 0, first["result"]
    cursor = changes_since(vault, "main", None).cursor
    second = _exec("sh", "-c", "printf 'all:\\n\\techo PWNED\\n' > Makefile")
    assert second["exit_code"] == 0, second["result"]
    got = _stream_until_marker(vault, mp, cursor, "done1.txt")
    assert ("modified", "Makefile") in got and ("modified", "cache.o") in got, got
    cursor = changes_since(vault, "main", None).cursor
    third = _exec("chmod", "+x", "Makefile")
    assert third["exit_code"] == 0, third["result"]
    got = _stream_until_marker(vault, mp, cursor, "done2.txt")
    assert ("mode", "Makefile") in got and ("mode", "cache.o") in got, got


EXCHANGE = (
    "import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True);"
    " r = libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2);"
    " sys.exit(0 if r == 0 else ctypes.get_errno())"
)


def _exchange(a: Any, b: Any) -> None:
    """renameat2(a, b, RENAME_EXCHANGE): the two names swap their files at once."""
    subprocess.run(["python3", "-c", EXCHANGE, str(a), str(b)], check=True)


@pytest.mark.parametrize("what", ["files", "directories"])
def test_an_exchange_of_the_ignored_link_name_still_records_the_tracked_one(
    overlay: Any, vault: Any, what: str
) -> None:
    """review43 F4: the ignored name of a linked ``Makefile`` swapped with another file (or
    its directory with another) by RENAME_EXCHANGE, then ``Makefile`` rewritten: the kernel
    names the swapped-in ``x.o`` (``b2/cache.o``); the run records ``Makefile`` and the
    person's git sees it. On main the journal forgot that name (its four events read after
    both moves): ``changes: []``, no commit, `git status` clean."""
    mp = overlay.mountpoint
    if what == "files":
        plant, swap = (
            "cp Makefile cache.o && rm Makefile && ln cache.o Makefile && echo other > x.o",
            ("cache.o", "x.o"),
        )
    else:
        plant = "mkdir -p b1 b2 && cp Makefile b1/cache.o && rm Makefile && ln b1/cache.o Makefile"
        swap = ("b1", "b2")
    first = _exec("sh", "-c", plant)
    assert first["exit_code"] == 0, first["result"]
    second = _exec("python3", "-c", EXCHANGE, *swap)
    assert second["exit_code"] == 0, second["result"]
    _status_twice(mp)
    third = _exec("sh", "-c", "printf 'all:\\n\\techo PWNED\\n' > Makefile")
    assert third["exit_code"] == 0, third["result"]
    recorded(mp, vault, third)


def test_the_journal_keeps_a_name_an_exchange_gave_the_linked_file(tmp_path: Any) -> None:
    """The journal over a real directory: ``b`` (linked to ``a``) exchanged with ``x``, and
    a directory holding a name of it exchanged with another; a write through each new name
    journals ``a`` too."""
    top = tmp_path / "upper"
    (top / "d1").mkdir(parents=True)
    (top / "d2").mkdir()
    (top / "a").write_text("1\n")
    os.link(top / "a", top / "b")
    (top / "x").write_text("other\n")
    w = _journal(top)
    try:
        _exchange(top / "b", top / "x")
        time.sleep(0.2)
        seq, _ = w.changed_since(None)
        assert _changed_after(w, seq, lambda: (top / "x").write_text("2\n")) == {"a", "x"}
        os.link(top / "a", top / "d1" / "c")
        time.sleep(0.2)
        _exchange(top / "d1", top / "d2")
        time.sleep(0.2)
        seq, _ = w.changed_since(None)
        assert _changed_after(w, seq, lambda: (top / "d2" / "c").write_text("3\n")) == {"a", "x", "d2/c"}
    finally:
        w.close()


def test_past_the_kept_names_the_journal_answers_everything(tmp_path: Any, monkeypatch: Any) -> None:
    """review43 F1: more linked names than the journal keeps (``MAX_KEPT``, made small
    here): it gives up, and every answer is "everything" (the person's git and the run's
    record look at the whole upper layer). On main it forgot them all and a write through
    a forgotten pair named the written name alone, for good."""
    from avfs_git.core.workspace import upperlinks

    monkeypatch.setattr(upperlinks, "MAX_KEPT", 6)
    top = tmp_path / "upper"
    top.mkdir()
    (top / "Makefile").write_text("1\n")
    os.link(top / "Makefile", top / "cache.o")
    w = _journal(top)
    try:
        seq, _ = w.changed_since(None)
        (top / "junk").mkdir()
        (top / "junk" / "j").write_text("j\n")
        for i in range(8):
            os.link(top / "junk" / "j", top / "junk" / f"{i}.o")
        time.sleep(0.3)
        (top / "cache.o").write_text("2\n")
        time.sleep(0.3)
        _now, paths = w.changed_since(seq)
        assert paths is None or "" in paths, paths  # (everything: Makefile among it)
    finally:
        w.close()
