"""A write into the merge's target in the moment the merge moves it (an agent runtime:
agents merge their forks into main as each finishes while main is worked on). The merge
captures the target's changes, checks it is still clean, moves its ref and points its
workspace at the merged commit; a write that came between the check and the new view
was swept away with the old view (kept under a recovery ref when it came before that
ref was made, lost without trace after; an orchestrator of six agents lost 8 writes of
30). Now the check, the move and the new view are one overlay transaction: the write
waits for it and lands on the merged view. Real git, a real write from another thread;
the write is started right after the ref moved (by wrapping the real compare-and-swap).
And a write's parent directory made while another writer's checkpoint moved that
directory into the base."""

from __future__ import annotations

import threading

import pytest

from avfs_git.core.operations import checkpoint, merge, mergeconflicts, mergeguard
from avfs_git.core.vaults.vault import Vault

from .conftest import git


@pytest.mark.parametrize("kind", ["fast_forward", "merged"])
def test_a_write_in_the_moment_of_the_move_lands_on_the_merged_view(
    vault: Vault, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    main = vault.workspace("main")
    main.write("base.txt", b"base\n")
    checkpoint.save(vault, "main")
    vault.create_fork("main", "a")
    vault.workspace("a").write("agents/a.txt", b"done\n")
    checkpoint.save(vault, "a")
    if kind == "merged":
        main.write("main.txt", b"main's own\n")
        checkpoint.save(vault, "main")
    real = merge.refs.cas_update
    writers: list[threading.Thread] = []
    landed = threading.Event()

    def late_write() -> None:
        main.write("late.txt", b"written as the merge moved main\n")
        landed.set()

    def cas_then_write(*args: object, **kwargs: object) -> None:
        real(*args, **kwargs)  # type: ignore[arg-type]
        if args[1] == "refs/heads/main" and not writers:
            t = threading.Thread(target=late_write)
            writers.append(t)
            t.start()
            landed.wait(1.0)  # the write goes ahead now, or waits for the move to end

    monkeypatch.setattr(merge.refs, "cas_update", cas_then_write)
    got = merge.merge(vault, "a", "main")
    assert writers, "the merge moved no ref"
    writers[0].join(timeout=60)
    assert got.status == kind
    assert main.read("late.txt") == b"written as the merge moved main\n"
    assert main.read("agents/a.txt") == b"done\n"  # on the merged view
    checkpoint.save(vault, "main")
    files = set(git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main").split())
    assert {"late.txt", "agents/a.txt", "base.txt"} <= files
    kept = git(
        "--git-dir", vault.path, "for-each-ref", "--format=%(contents:subject)", "refs/avfs/recovery/main"
    )
    assert "written during a merge" not in kept


def test_a_parent_made_by_another_writers_checkpoint_meanwhile_is_not_hidden(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``write("notes/b")`` finds no ``notes`` and makes it; meanwhile another writer wrote
    ``notes/a`` and checkpointed (``notes`` is now in the base). The made directory used
    to be an empty tree put over the base's, hiding ``notes/a`` (the next checkpoint
    deleted it: a merge's capture in an agent runtime). Real checkpoint, run in the
    moment between the look and the write's transaction."""
    ws = vault.workspace("main")
    real_txn = ws.overlay.txn
    state = {"done": False}

    def txn() -> object:
        if not state["done"]:
            state["done"] = True
            ws.write("notes/a.txt", b"a\n")  # the other writer, then its checkpoint
            checkpoint.save(vault, "main")
        return real_txn()

    monkeypatch.setattr(ws.overlay, "txn", txn)
    ws.write("notes/b.txt", b"b\n")
    monkeypatch.undo()
    assert ws.read("notes/a.txt") == b"a\n"
    checkpoint.save(vault, "main")
    files = set(git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main").split())
    assert {"notes/a.txt", "notes/b.txt"} <= files


_PROCESS_WRITER = """
import sys, time
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
ws = Home(sys.argv[1], mounts=MOUNT_SIDE).vault("v").workspace("main")
print("ready", flush=True)
for i in range(int(sys.argv[2])):
    ws.write(f"p/{i % 20}.txt", str(i).encode())
    time.sleep(0.003)
"""


def test_a_merge_into_a_fork_written_every_few_milliseconds_goes_through(vault: Vault) -> None:
    """main is written every ~3 ms by a thread and by another process (API writes: its
    overlay's transactions) while four forks are merged into it. Each merge used to be
    refused ``busy`` ("changed while it was being merged into") on every try: a write
    landed between the capture of main and its move each time. The merge now holds main's
    writers off from its capture to main's new view: each goes through, and every write
    lands (none swept away, none kept aside under a recovery ref)."""
    import subprocess
    import sys
    import time

    main = vault.workspace("main")
    main.write("base.txt", b"base\n")
    checkpoint.save(vault, "main")
    for k in range(4):
        vault.create_fork("main", f"a{k}")
        vault.workspace(f"a{k}").write(f"agents/{k}.txt", f"agent {k}\n".encode())
        checkpoint.save(vault, f"a{k}")
    n_proc = 400
    proc = subprocess.Popen(
        [sys.executable, "-c", _PROCESS_WRITER, vault.home.path, str(n_proc)],  # type: ignore[union-attr]
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    stop = threading.Event()
    last: dict[str, bytes] = {}

    def writer() -> None:
        w, i = vault.workspace("main"), 0
        while not stop.is_set():
            path, data = f"t/{i % 20}.txt", str(i).encode()
            w.write(path, data)
            last[path] = data
            i += 1
            time.sleep(0.003)

    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(0.2)
        statuses = [merge.merge(vault, f"a{k}", "main").status for k in range(4)]
    finally:
        stop.set()
        t.join(timeout=60)
        proc.wait(timeout=120)
        proc.stdout.close()
    assert statuses == ["merged"] * 4, statuses
    for k in range(4):
        assert main.read(f"agents/{k}.txt") == f"agent {k}\n".encode()
    assert last and all(main.read(p) == data for p, data in last.items())
    for k in range(20):  # the process's last write of each of its paths
        assert main.read(f"p/{k}.txt") == str(max(i for i in range(n_proc) if i % 20 == k)).encode()
    assert git("--git-dir", vault.path, "for-each-ref", "refs/avfs/recovery") == ""
    checkpoint.save(vault, "main")
    assert git("--git-dir", vault.path, "show", "main:t/0.txt") == last["t/0.txt"].decode()


def test_a_merge_into_a_mounted_fork_written_in_bursts_waits_for_the_pause_or_says_busy(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes through a mount take no overlay transaction: a write there between the
    capture and the move still refuses that try. The merge tries again (the new writes
    captured first) with a growing pause while the vault would wait for a lock: a burst of
    writes (a command writing for a second) delays it, and it goes through when the burst
    ends (it was refused at once); a writer that never pauses gets ``busy`` with the number
    of tries and advice, after the lock wait (here 2 s)."""
    import os
    import time
    from pathlib import Path

    from avfs_git.core.errors import BusyError
    from avfs_git.core.settings import Settings
    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE
    from avfs_git.ops import mounts

    from .conftest import AUTHOR
    from .test_fuse import require_fuse

    require_fuse()
    root = Path(str(tmp_path))
    home = Home(
        str(root / "h"), author=AUTHOR, mounts=MOUNT_SIDE, settings=Settings(str(root / "h"), lock_wait="2")
    )
    v = home.create_vault("v")
    v.workspace("main").write("base.txt", b"base\n")
    checkpoint.save(v, "main")
    v.create_fork("main", "a")
    mp = root / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp))
    stop = threading.Event()
    written: dict[str, str] = {}

    def burst(seconds: float) -> None:
        (mp / "notes").mkdir(exist_ok=True)
        end, i = time.monotonic() + seconds, 0
        while not stop.is_set() and time.monotonic() < end:
            name = f"notes/{i % 10}.txt"
            (mp / name).write_text(str(i))
            written[name] = str(i)
            i += 1
            time.sleep(0.003)

    try:
        v.workspace("a").write("agents/a1.txt", b"1\n")
        checkpoint.save(v, "a")
        t = threading.Thread(target=burst, args=(0.8,))
        t.start()
        time.sleep(0.1)
        assert merge.merge(v, "a", "main").status == "merged"  # once the burst is over
        t.join()
        v.workspace("a").write("agents/a2.txt", b"2\n")
        checkpoint.save(v, "a")
        t = threading.Thread(target=burst, args=(60,))
        t.start()
        time.sleep(0.1)
        # a writer that never pauses, also in the moment between a try's capture and its
        # move: on a loaded machine the burst's thread alone can miss that moment (a try
        # then merged, rightly, and CI failed on a missing busy)
        check = mergeguard.refuse_changed

        def written_in_the_window(ws: object) -> None:
            (mp / "notes" / "window.txt").write_text(str(time.monotonic()))
            written["notes/window.txt"] = (mp / "notes" / "window.txt").read_text()
            check(ws)  # type: ignore[arg-type]

        monkeypatch.setattr(mergeguard, "refuse_changed", written_in_the_window)
        with pytest.raises(BusyError) as exc:
            merge.merge(v, "a", "main")
        monkeypatch.setattr(mergeguard, "refuse_changed", check)
        assert exc.value.details["reason"] == "changed_during_merge" and exc.value.details["attempts"] >= 1
        assert "pause" in (exc.value.hint or "")
        stop.set()
        t.join()
        assert merge.merge(v, "a", "main").status == "merged"
        assert (mp / "agents" / "a1.txt").read_text() == "1\n" and (
            mp / "agents" / "a2.txt"
        ).read_text() == "2\n"
        for name, data in written.items():  # every write through the mount is still there
            assert (mp / name).read_text() == data, name
        assert os.path.exists(mp / "base.txt")
    finally:
        stop.set()
        mounts.unmount(home, v, "main")
        home.close()


def test_an_open_merge_read_by_another_thread_as_its_conflicts_are_written_stays_open(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another agent's thread asks about main's open merge (its own merge's first check,
    `status`) in the moment the merge's state is written: it must see the merge open. With
    the conflicted view not yet committed (the merge held main's writers in a transaction
    that also covered the state's writing) it took the state for one an undone merge left
    and dropped it, and its own merge then went ahead over the open one (agents of one
    machine merging into main lost each other's merges: `merge --continue` found none, or
    found main moved)."""
    main = vault.workspace("main")
    main.write("c.txt", b"seed\n")
    checkpoint.save(vault, "main")
    vault.create_fork("main", "a")
    vault.workspace("a").write("c.txt", b"a\n")
    checkpoint.save(vault, "a")
    main.write("c.txt", b"main\n")
    checkpoint.save(vault, "main")
    real = mergeconflicts.write_state
    seen: list[object] = []

    def write_then_read(ws: object, data: object) -> None:
        real(ws, data)  # type: ignore[arg-type]
        if data is not None and not seen:  # another thread looks, right now
            t = threading.Thread(target=lambda: seen.append(merge.merge_state(vault.workspace("main"))))
            t.start()
            t.join(timeout=60)

    # the conflicted view's state is written where the conflicts are shown
    monkeypatch.setattr(mergeconflicts, "write_state", write_then_read)
    res = merge.merge(vault, "a", "main", write_conflicts=True)
    assert res.status == "conflicts_written"
    assert seen and seen[0] is not None, "the other thread did not see the merge open"
    assert merge.merge_state(main) is not None
    main.write("c.txt", b"a\nmain\n")
    done = merge.merge_continue(vault, "main")
    assert (
        done.status == "merged"
        and len(git("--git-dir", vault.path, "rev-list", "--parents", "-n1", "main").split()) == 3
    )


@pytest.mark.parametrize("kind", ["fast_forward", "merged"])
def test_a_write_through_the_mount_as_the_merge_moves_it_is_kept_and_named_by_the_merge(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Writes through a mount take no overlay transaction: one that comes after the
    merge's last check that the target is clean, before its new view, is kept under a
    recovery ref (mount: what the merge would sweep away with the old view). The ref was
    made and named by nothing: the merge's operation listed the branch only, so `avfs op
    log` did not show it and `avfs undo` of the merge did not bring the write back. The
    write is made by hand in that moment (after the real check), through a real mount."""
    from pathlib import Path

    from avfs_git.core.operations import checkpoint as cp
    from avfs_git.core.operations import mergeguard
    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE
    from avfs_git.ops import mounts

    from .conftest import AUTHOR
    from .test_fuse import require_fuse

    require_fuse()
    root = Path(str(tmp_path))
    home = Home(str(root / "h"), author=AUTHOR, mounts=MOUNT_SIDE)
    v = home.create_vault("v")
    v.workspace("main").write("base.txt", b"base\n")
    cp.save(v, "main")
    v.create_fork("main", "a")
    v.workspace("a").write("agents/a.txt", b"done\n")
    cp.save(v, "a")
    if kind == "merged":
        v.workspace("main").write("main.txt", b"main's own\n")
        cp.save(v, "main")
    mp = root / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp))
    real = mergeguard.refuse_changed

    def clean_then_written(ws: object) -> None:
        real(ws)  # type: ignore[arg-type]
        (mp / "late.txt").write_text("written as the merge moved main\n")

    try:
        monkeypatch.setattr(mergeguard, "refuse_changed", clean_then_written)
        got = merge.merge(v, "a", "main")
        monkeypatch.undo()
        assert got.status == kind and got.op_id is not None
        op = v.oplog.get(got.op_id)
        assert op is not None
        kept = [r for r in op.refs if str(r["ref"]).startswith("refs/avfs/recovery/")]
        assert len(kept) == 1, op.refs
        rec = str(kept[0]["new"])
        assert git("--git-dir", v.path, "show", f"{rec}:late.txt") == "written as the merge moved main\n"
        assert (mp / "agents" / "a.txt").read_text() == "done\n"
        cp.undo(v, got.op_id)  # the write comes back with the target's old view
        assert (mp / "late.txt").read_text() == "written as the merge moved main\n"
        assert not (mp / "agents" / "a.txt").exists()
    finally:
        mounts.unmount(home, v, "main")
        home.close()
