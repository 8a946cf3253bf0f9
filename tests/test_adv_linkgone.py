"""A hard link that lost a name in an overlay mount (review44, A).

overlayfs keeps one overlay inode for a file linked under several names, and one upper
dentry for it: the name it looked up first. Once that name is removed the dentry stays,
unhashed, and the kernel's inotify event for every later write through another name still
names the removed one (``cache.o``); with the name's directory removed (``rm -r d``) no event
comes at all. The journal had dropped the removed name, so a write through ``Makefile`` in
a later run was recorded nowhere: ``changes: []``, no commit, ``avfs status`` and the
person's ``git status`` clean, and after ``avfs unmount`` the status mark vouched for it; a
planted repository's ``src/config`` rewritten that way kept its ``core.fsmonitor`` for the
person's plain ``git status``. Now such a file's remaining names are *suspect* for the rest
of the mount (core/workspace/upperlinks.py): named in every answer of the journal.

Real confined execs in a real overlay mount, then the person's plain git and ``avfs
status``; and the journal over a real directory through a real event-queue overflow and a
real give-up (the mount's watch budget passed)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

import pytest

from avfs_git.ops import mounts

from .test_adv_gitseal import _avfs, _exec
from .test_adv_linkwrite import BAD, _avfs_status, _branch_file, _changed, _git, recorded
from .test_adv_linkwrite import overlay as overlay  # (the fork on an overlay mount)

WRITE = "printf 'all:\\n\\techo PWNED\\n' > Makefile"
LINKS = {
    # (the link made in one run, its first name removed in the next)
    "ignored": ("cp Makefile cache.o && rm Makefile && ln cache.o Makefile", "rm cache.o"),
    "tracked": ("cp Makefile cache.txt && rm Makefile && ln cache.txt Makefile", "rm cache.txt"),
    "directory": ("mkdir d && cp Makefile d/c.o && rm Makefile && ln d/c.o Makefile", "rm -r d"),
}


def _ok(doc: dict[str, Any]) -> dict[str, Any]:
    assert doc["exit_code"] == 0, doc["result"]
    return doc


@pytest.mark.parametrize("how", sorted(LINKS))
def test_a_write_through_a_link_whose_first_name_went_is_recorded(overlay: Any, vault: Any, how: str) -> None:
    """review44 A's three runs: link, remove the first name, rewrite ``Makefile``. On main
    the third run recorded nothing and committed nothing, whichever way the name went."""
    mp = overlay.mountpoint
    link, remove = LINKS[how]
    _ok(_exec("sh", "-c", link))
    _ok(_exec("sh", "-c", remove))
    time.sleep(1.1)  # (the person's git trusts the fsmonitor then: nothing racily clean)
    _git(mp, "status", "--porcelain")
    third = _ok(_exec("sh", "-c", WRITE))
    with open(f"{mp}/Makefile") as fh:
        assert fh.read() == BAD
    recorded(mp, vault, third)


def test_the_removal_and_the_write_in_one_run_after_the_link_s(overlay: Any, vault: Any) -> None:
    """The two-run form: the second run removes ``cache.o``, then rewrites ``Makefile``."""
    _ok(_exec("sh", "-c", LINKS["ignored"][0]))
    second = _ok(_exec("sh", "-c", f"rm cache.o; sleep 1; {WRITE}"))
    assert "Makefile" in _changed(second), second["changes"]
    assert _branch_file(vault, "Makefile") == BAD


def test_the_person_s_write_and_a_left_change_are_named_after_the_unmount(
    overlay: Any, home: Any, vault: Any
) -> None:
    """The person writes through ``Makefile`` in the mount, a run leaves a change of its
    own uncommitted; ``avfs status`` names both mounted, and once unmounted (the status
    mark made in the mount vouched for ``Makefile`` on main: ``[]``)."""
    mp = overlay.mountpoint
    _ok(_exec("sh", "-c", LINKS["ignored"][0]))
    _ok(_exec("sh", "-c", LINKS["ignored"][1]))
    assert _avfs_status() == set()
    with open(f"{mp}/Makefile", "w") as fh:
        fh.write(BAD)
    r = _avfs("--json", "proxy", "exec", "--no-commit", "--", "sh", "-c", "echo b > a.txt")
    assert r.returncode == 0, r
    assert "Makefile" in {c["path"] for c in json.loads(r.stdout)["changes"]}
    assert _avfs_status() == {"Makefile", "a.txt"}
    mounts.unmount(home, vault, "main")
    assert _avfs_status() == {"Makefile", "a.txt"}
    r = _avfs("cat", "Makefile")
    assert r.stdout.decode() == BAD


def test_a_planted_repository_s_config_written_through_a_link_whose_first_name_went_is_set_aside(
    overlay: Any, tmp_path: Any
) -> None:
    """review44 A's chain: ``src/config`` a link of an ignored ``build.o``, ``build.o``
    removed, then the config rewritten with a ``core.fsmonitor``: set aside, and the
    person's plain ``git status`` runs nothing (on main: planted ``[]``, the marker made)."""
    mp = overlay.mountpoint
    mark = tmp_path / "pwned"
    _ok(
        _exec(
            "sh",
            "-c",
            "mkdir -p src/objects src/refs && printf 'ref: refs/heads/main\\n' > src/HEAD"
            " && printf '[core]\\n\\trepositoryformatversion = 0\\n' > build.o && ln build.o src/config",
        )
    )
    _ok(_exec("rm", "build.o"))
    time.sleep(1.1)
    evil = (
        '[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n\\tworktree = ..\\n\\tfsmonitor = "touch '
        + str(mark)
        + '; false"\\n'
    )
    second = _ok(_exec("sh", "-c", f"printf '{evil}' > src/config"))
    assert [p["path"] for p in second["planted_git_dirs"]] == ["src/config"], second["planted_git_dirs"]
    for cwd in (f"{mp}/src", mp):
        subprocess.run(["git", "status", "--short"], cwd=cwd, capture_output=True, check=False)
    assert not mark.exists(), "the planted repository's fsmonitor ran on the host"


def _journal(top: Any, budget: int = 0) -> Any:
    from avfs_git.core.workspace.upperwatch import UpperWatch

    w = UpperWatch(str(top), lambda p: None, lambda: [], lambda: "base:0", budget=budget)
    w.start()
    return w


def _quiet(w: Any) -> list[str] | None:
    """What the journal names since a moment when everything queued was read (and nothing
    came for a tenth of a second): only what it names whatever happened."""
    seq = -1
    for _ in range(300):
        was, (seq, _paths) = seq, w.changed_since(None)
        if seq == was:
            break
        time.sleep(0.1)
    paths: list[str] | None = w.changed_since(seq)[1]
    return paths


def _linked(tmp_path: Any) -> Any:
    top = tmp_path / "upper"
    top.mkdir()
    (top / "Makefile").write_text("1\n")
    os.link(top / "Makefile", top / "cache.o")
    (top / "f1").write_text("x\n")
    (top / "f2").write_text("x\n")
    return top


def _max_queued() -> int:
    with open("/proc/sys/fs/inotify/max_queued_events") as fh:
        return int(fh.read())


def test_a_name_removed_in_events_an_overflow_lost_makes_the_other_suspect(tmp_path: Any) -> None:
    """A flood fills the kernel's queue (the journal's reader held off by its lock), then
    ``cache.o`` is removed: its event is lost, and the overflow's walk finds ``Makefile``
    alone. It stays named in every answer, also renamed (on main: nothing named it)."""
    top = _linked(tmp_path)
    w = _journal(top)
    try:
        with w._lock:  # (the watcher reads nothing meanwhile: the queue overflows for real)
            for i in range(_max_queued() + 100):
                os.utime(top / ("f1" if i % 2 else "f2"))
            os.unlink(top / "cache.o")
        assert _quiet(w) == ["Makefile"]
        assert w._valid_from > 0  # (the queue did overflow)
        os.rename(top / "Makefile", top / "Makefile2")
        assert _quiet(w) == ["Makefile2"]
    finally:
        w.close()


def test_a_name_removed_while_the_journal_was_given_up_makes_the_other_suspect(tmp_path: Any) -> None:
    """The mount's watch budget passed (the journal gives up), ``cache.o`` removed while
    nothing watches, the directories removed: the journal watches again and names
    ``Makefile`` in every answer (on main the new walk found one link and forgot it)."""
    top = _linked(tmp_path)
    w = _journal(top, budget=2)
    try:
        seq, _ = w.changed_since(None)
        for d in ("x1", "x2"):
            (top / d).mkdir()
        time.sleep(0.3)
        assert w.changed_since(seq)[1] is None  # (given up: everything)
        for _ in range(100):
            if w._lapsed:
                break
            time.sleep(0.05)
        os.unlink(top / "cache.o")
        for d in ("x1", "x2"):
            (top / d).rmdir()
        for _ in range(100):  # (the watcher watches again after RETRY_S[0])
            time.sleep(0.1)
            if not w._lapsed:
                break
        assert _quiet(w) == ["Makefile"]
    finally:
        w.close()


# review45 B: a command that floods the mount's event queue (utimes of two files) while a
# forked child renames the suspect's last name in and out of a directory: the overflow's
# walk lists the directories while the name moves and may find it nowhere
FLOOD = r"""
import os, time
for i in range(1500):
    os.makedirs("m%05d" % i, exist_ok=True)
for f in ("f1.o", "f2.o"):
    open(f, "w").close()
os.makedirs("z", exist_ok=True)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    os.set_blocking(r, False)
    here = ""
    while True:
        try:
            if os.read(r, 1) == b"":
                break
        except BlockingIOError:
            pass
        there = "z/" if here == "" else ""
        os.rename(here + "Makefile", there + "Makefile")
        here = there
    if here:
        os.rename(here + "Makefile", "Makefile")
    os._exit(0)
os.close(r)
end = time.time() + 3
while time.time() < end:
    for _ in range(2000):
        os.utime("f1.o"); os.utime("f2.o")
os.close(w)
os.waitpid(pid, 0)
"""


def test_a_suspect_renamed_through_an_overflow_stays_named(overlay: Any, vault: Any) -> None:
    """review45 B (the fortieth round): the overflow's walk missed the suspect's one name
    (renamed while it listed) and forgot the suspect, and a later run's write through it
    was recorded nowhere (3 of 3 runs); now a suspect a walk does not find gives the
    journal up ("everything") until a walk finds it."""
    mp = overlay.mountpoint
    link, remove = LINKS["ignored"]
    _ok(_exec("sh", "-c", link))
    _ok(_exec("sh", "-c", remove))
    for round_ in range(3):
        _ok(_exec("python3", "-c", FLOOD))
        time.sleep(1.1)  # (the person's git trusts the fsmonitor then: nothing racily clean)
        body = f"all:\\n\\techo PWNED{round_}\\n"
        run = _ok(_exec("sh", "-c", f"printf '{body}' > Makefile"))
        assert "Makefile" in _changed(run), (round_, run["changes"])
        with open(f"{mp}/Makefile") as fh:
            assert _branch_file(vault, "Makefile") == fh.read()
