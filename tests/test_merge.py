"""Merging forks: fast-forward, three-way merge commits, conflicts as data, written
conflicts with --continue/--abort, undo, and bad input. Real git checks the history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avfs_git.core.errors import AvfsError, ConflictError, UsageError
from avfs_git.core.operations import checkpoint, merge
from avfs_git.mount.ownfiles import ACK_FILE, files_dir
from avfs_git.proxy.execute import exec_in

from .conftest import git


@pytest.fixture
def forks(vault):
    ws = vault.workspace("main")
    ws.write("shared.txt", b"one\ntwo\nthree\n")
    ws.write("keep.txt", b"keep\n")
    ws.write("bin.dat", b"\x00\x01base")
    ws.write("gone.txt", b"will be changed and deleted\n")
    checkpoint.save(vault, name="base")
    vault.create_fork("main", "a")
    vault.create_fork("main", "b")
    return vault


def _log_graph(vault) -> str:
    return git("--git-dir", vault.path, "log", "--graph", "--format=%s", "main")


def test_fast_forward_then_no_ff(forks):
    v = forks
    a = v.workspace("a")
    a.write("new.txt", b"from a\n")
    checkpoint.save(v, "a")
    dry = merge.merge(v, "a", "main", dry_run=True)
    assert dry.status == "would_fast_forward" and dry.changed == ("new.txt",)
    assert v.workspace("main").tip() == dry.ours  # nothing moved
    res = merge.merge(v, "a", "main")
    assert res.status == "fast_forward" and res.commit == res.theirs
    assert v.workspace("main").read("new.txt") == b"from a\n"
    again = merge.merge(v, "a", "main")
    assert again.status == "up_to_date"
    a.write("more.txt", b"more\n")
    checkpoint.save(v, "a")
    forced = merge.merge(v, "a", "main", no_ff=True)
    assert forced.status == "merged"
    parents = git("--git-dir", v.path, "log", "-1", "--format=%P", "main").split()
    assert parents == [forced.ours, forced.theirs]


def test_three_way_merge_of_disjoint_changes(forks):
    v = forks
    wa, wb = v.workspace("a"), v.workspace("b")
    wa.write("shared.txt", b"ONE\ntwo\nthree\n")
    wa.write("a-only.txt", b"a\n")
    wb.write("shared.txt", b"one\ntwo\nTHREE\n")
    wb.remove("keep.txt")
    checkpoint.save(v, "a")
    checkpoint.save(v, "b")
    assert merge.merge(v, "a", "main").status == "fast_forward"
    res = merge.merge(v, "b", "main")
    assert res.status == "merged" and res.conflicts == ()
    main = v.workspace("main")
    assert main.read("shared.txt") == b"ONE\ntwo\nTHREE\n"
    assert main.exists("a-only.txt") and not main.exists("keep.txt")
    assert set(res.changed) == {"shared.txt", "keep.txt"}
    assert main.tip() == res.commit and not main.is_dirty()
    graph = _log_graph(v)
    assert graph.splitlines()[0].startswith("*   avfs: merge b into main")


def test_a_disjoint_merge_is_gits_tree_written_as_one_pack(forks):
    """The trivial merge's tree is the one `git merge-tree --write-tree` makes, and its trees
    and merge commit are written as one pack: no loose object, the vault fsck-clean."""
    import os

    v = forks
    wa, wb = v.workspace("a"), v.workspace("b")
    wa.write("d/x/a.txt", b"a\n")
    wa.write("keep.txt", b"kept by a\n")
    wb.write("d/x/b.txt", b"b\n")
    wb.write("d/y.txt", b"y\n")
    wb.remove("gone.txt")
    ca, cb = checkpoint.save(v, "a").checkpoint.commit, checkpoint.save(v, "b").checkpoint.commit
    objects = os.path.join(v.path, "objects")

    def loose() -> set[str]:
        return {
            d + f for d in os.listdir(objects) if len(d) == 2 for f in os.listdir(os.path.join(objects, d))
        }

    def packs() -> set[str]:
        return {f for f in os.listdir(os.path.join(objects, "pack")) if f.endswith(".pack")}

    assert merge.merge(v, "a", "main").status == "fast_forward"
    loose_before, packs_before = loose(), packs()
    res = merge.merge(v, "b", "main")
    assert res.status == "merged"
    expect = git("--git-dir", v.path, "merge-tree", "--write-tree", ca, cb).split()[0]
    assert git("--git-dir", v.path, "rev-parse", f"{res.commit}^{{tree}}").strip() == expect
    new_packs = packs() - packs_before
    assert loose() == loose_before and len(new_packs) == 1
    listed = git("--git-dir", v.path, "verify-pack", "-v", os.path.join(objects, "pack", new_packs.pop()))
    assert res.commit in listed
    git("--git-dir", v.path, "fsck", "--strict")


def test_uncheckpointed_changes_are_captured_first(forks):
    v = forks
    v.workspace("a").write("pending.txt", b"not yet checkpointed\n")
    v.workspace("main").write("main-pending.txt", b"also pending\n")
    res = merge.merge(v, "a", "main")
    assert {c["fork"] for c in res.captured} == {"a", "main"}
    main = v.workspace("main")
    assert main.read("pending.txt") == b"not yet checkpointed\n"
    assert main.read("main-pending.txt") == b"also pending\n"
    v.workspace("b").write("x.txt", b"x")
    with pytest.raises(UsageError, match="uncheckpointed"):
        merge.merge(v, "b", "main", capture=False)


def _conflicting(v):
    wa, wb = v.workspace("a"), v.workspace("b")
    wa.write("shared.txt", b"one\nTWO from a\nthree\n")
    wb.write("shared.txt", b"one\ntwo from b\nthree\n")
    wa.write("added.txt", b"a's version\n")
    wb.write("added.txt", b"b's version\n")
    wa.write("bin.dat", b"\x00\x01a")
    wb.write("bin.dat", b"\x00\x01b")
    wa.write("gone.txt", b"changed by a\n")
    wb.remove("gone.txt")
    checkpoint.save(v, "a")
    checkpoint.save(v, "b")
    assert merge.merge(v, "a", "main").status == "fast_forward"


def test_conflicts_are_data_and_nothing_moves(forks):
    v = forks
    _conflicting(v)
    before = v.workspace("main").tip()
    res = merge.merge(v, "b", "main")
    assert res.status == "conflicts" and res.commit == before
    kinds = {c.path: c.kind for c in res.conflicts}
    assert kinds == {
        "shared.txt": "content",
        "added.txt": "add_add",
        "bin.dat": "binary",
        "gone.txt": "modify_delete",
    }
    shared = next(c for c in res.conflicts if c.path == "shared.txt")
    assert shared.ancestor is not None and shared.ours is not None and shared.theirs is not None
    assert shared.ours.mode == 0o100644 and len(shared.theirs.oid) == 40
    gone = next(c for c in res.conflicts if c.path == "gone.txt")
    assert gone.theirs is None and gone.ours is not None
    assert v.workspace("main").tip() == before and not v.workspace("main").is_dirty()
    dry = merge.merge(v, "b", "main", dry_run=True)
    assert dry.status == "would_conflict" and len(dry.conflicts) == 4
    # favouring a side resolves the text conflicts; the rest stay conflicts
    fav = merge.merge(v, "b", "main", favor="theirs", dry_run=True)
    assert {c.path for c in fav.conflicts} <= {"gone.txt", "bin.dat", "added.txt"}
    assert "shared.txt" not in {c.path for c in fav.conflicts}


def test_written_conflicts_continue_and_abort(forks):
    v = forks
    _conflicting(v)
    main = v.workspace("main")
    ours = main.tip()
    res = merge.merge(v, "b", "main", write_conflicts=True)
    assert res.status == "conflicts_written"
    text = main.read("shared.txt")
    assert b"<<<<<<< " in text and b"=======" in text and b">>>>>>> " in text
    assert main.read("bin.dat~ours") == b"\x00\x01a" and main.read("bin.dat~theirs") == b"\x00\x01b"
    with pytest.raises(AvfsError):
        merge.merge(v, "a", "main")  # a merge is in progress
    with pytest.raises(ConflictError) as exc:
        merge.merge_continue(v, "main")
    assert "shared.txt" in exc.value.details["paths"]
    # abort: the exact pre-merge state
    ab = merge.merge_abort(v, "main")
    assert ab.status == "aborted" and main.tip() == ours and not main.is_dirty()
    assert main.read("shared.txt") == b"one\nTWO from a\nthree\n" and not main.exists("bin.dat~ours")
    # again, resolve by hand this time
    merge.merge(v, "b", "main", write_conflicts=True)
    main.write("shared.txt", b"one\nresolved\nthree\n")
    main.write("added.txt", b"both\n")
    main.remove("bin.dat~ours")
    main.remove("bin.dat~theirs")
    done = merge.merge_continue(v, "main")
    assert done.status == "merged" and main.tip() == done.commit and not main.is_dirty()
    parents = git("--git-dir", v.path, "log", "-1", "--format=%P", "main").split()
    assert parents == [ours, done.theirs]
    assert git("--git-dir", v.path, "show", "main:shared.txt") == "one\nresolved\nthree\n"
    assert merge.merge_state(main) is None


def test_a_merge_resolved_to_ours_stays_open_until_continue_undo_or_restore(forks):
    """Every conflict resolved to the target's own version (the workspace then shows
    nothing against its base; rewritten through the API, as an agent does): the merge
    stays open, as git's does, until `--continue` makes the two-parent commit (its tree
    the target's own), an undo of the merge or a restore. The same on both mount backends:
    tests/test_mount_moved_elsewhere.py."""
    v = forks
    wa, wb = v.workspace("a"), v.workspace("b")
    wa.write("shared.txt", b"one\nTWO from a\nthree\n")
    wb.write("shared.txt", b"one\ntwo from b\nthree\n")
    checkpoint.save(v, "a")
    checkpoint.save(v, "b")
    assert merge.merge(v, "a", "main").status == "fast_forward"
    main = v.workspace("main")
    ours = main.tip()

    def open_and_resolved() -> None:
        assert merge.merge(v, "b", "main", write_conflicts=True).status == "conflicts_written"
        main.write("shared.txt", b"one\nTWO from a\nthree\n")
        assert main.status() == [] and merge.merge_state(main) is not None

    open_and_resolved()
    checkpoint.undo(v)
    assert merge.merge_state(main) is None and main.tip() == ours
    open_and_resolved()
    checkpoint.restore(v, "main", ours)
    assert merge.merge_state(main) is None and main.tip() == ours
    open_and_resolved()
    done = merge.merge_continue(v, "main")
    assert done.status == "merged" and main.tip() == done.commit
    assert git("--git-dir", v.path, "log", "-1", "--format=%P %T", "main").split() == [
        ours,
        done.theirs,
        git("--git-dir", v.path, "rev-parse", f"{ours}^{{tree}}").strip(),
    ]
    assert merge.merge_state(main) is None


def test_merges_are_undoable(forks):
    v = forks
    wa = v.workspace("a")
    wa.write("x.txt", b"x\n")
    checkpoint.save(v, "a")
    v.workspace("main").write("y.txt", b"y\n")
    checkpoint.save(v, "main")
    before = v.workspace("main").tip()
    res = merge.merge(v, "a", "main")
    assert res.status == "merged" and res.op_id is not None
    checkpoint.undo(v)
    main = v.workspace("main")
    assert main.tip() == before and not main.exists("x.txt") and main.exists("y.txt")


def test_a_ctrl_c_as_the_target_moves_leaves_the_merge_recorded(forks, monkeypatch):
    """Ctrl-C into `avfs merge` just after its target moved rolled its op log record back:
    the target merged, the CLI said "interrupted: rerun", and `avfs undo` had no operation
    to take back (2 of 36 Ctrl-Cs at 0.25-0.69 s into an 800-file merge, load ~25). The
    interruption is held until the record is in, then raised."""
    import os
    import signal

    from avfs_git.core.operations import mergeguard

    v = forks
    wa = v.workspace("a")
    wa.write("x.txt", b"x\n")
    checkpoint.save(v, "a")
    v.workspace("main").write("y.txt", b"y\n")
    checkpoint.save(v, "main")
    before = v.workspace("main").tip()
    last = v.oplog.recent(1)[0].id
    real = mergeguard.move_target
    moved = []

    def move_then_ctrl_c(*args, **kwargs):
        got = real(*args, **kwargs)
        moved.append(True)
        os.kill(os.getpid(), signal.SIGINT)  # as the terminal sends it, the target moved
        return got

    monkeypatch.setattr(mergeguard, "move_target", move_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        merge.merge(v, "a", "main")
    assert moved
    main = v.workspace("main")
    assert main.tip() != before and main.exists("x.txt")  # done...
    op = v.oplog.recent(1)[0]
    assert op.id > last and op.kind == "merge"  # ...and recorded
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    monkeypatch.undo()
    checkpoint.undo(v)  # so undo takes it back
    assert v.workspace("main").tip() == before and not v.workspace("main").exists("x.txt")


def test_bad_input(forks, vault):
    v = forks
    with pytest.raises(UsageError, match="itself"):
        merge.merge(v, "main", "main")
    with pytest.raises(AvfsError) as exc:
        merge.merge(v, "nope", "main")
    assert exc.value.code == "fork_not_found"
    with pytest.raises(AvfsError):
        merge.merge(v, "../x", "main")
    with pytest.raises(UsageError, match="no merge"):
        merge.merge_continue(v, "main")
    with pytest.raises(UsageError, match="no merge"):
        merge.merge_abort(v, "main")


def test_unrelated_histories_are_refused_unless_allowed(home):
    v = home.create_vault("u")
    ws = v.workspace("main")
    ws.write("m.txt", b"m\n")
    checkpoint.save(v)
    # a fork with its own root commit, made the git way
    empty = git("--git-dir", v.path, "hash-object", "-t", "tree", "-w", "/dev/null").strip()
    root = git("--git-dir", v.path, "commit-tree", empty, "-m", "unrelated root").strip()
    git("--git-dir", v.path, "update-ref", "refs/heads/other", root)
    with pytest.raises(merge.UnrelatedHistoriesError):
        merge.merge(v, "other", "main")
    res = merge.merge(v, "other", "main", allow_unrelated=True)
    assert res.status == "merged" and v.workspace("main").read("m.txt") == b"m\n"


def test_cli_merge_json_and_exit_codes(cli, forks):
    v = forks
    _conflicting(v)
    r = cli("--json", "--vault", "v:main", "merge", "b")
    doc = json.loads(r.out_bytes)
    assert r.code == 3 and doc["kind"] == "merge" and doc["conflicted"]
    assert {c["kind"] for c in doc["results"][0]["conflicts"]} == {
        "content",
        "add_add",
        "binary",
        "modify_delete",
    }
    r = cli("--vault", "v:main", "merge", "b", "--ours", "--dry-run")
    assert r.code in (0, 3)
    r = cli("--json", "--vault", "v:main", "merge", "--continue")
    assert r.code != 0 and json.loads(r.out_bytes)["kind"] == "error"
    r = cli("--json", "--vault", "v:main", "merge")
    assert r.code == 2


def test_a_merge_result_to_json_is_the_clis_result(cli, forks):
    """``MergeResult.to_json()`` (every other result had one; a harness built the dict by
    hand) is the CLI's ``results`` entry: JSON-ready, ``changed`` listed, conflicts as
    dicts of their sides."""
    v = forks
    _conflicting(v)
    res = merge.merge(v, "b", "main", dry_run=True)
    doc = json.loads(cli("--json", "--vault", "v:main", "merge", "b", "--dry-run").out_bytes)
    got = res.to_json()
    assert json.loads(json.dumps(got)) == got
    assert got == doc["results"][0]
    assert got["status"] == "would_conflict" and {c["kind"] for c in got["conflicts"]} >= {
        "content",
        "binary",
    }
    v.workspace("a").write("only-a.txt", b"a\n")
    clean = merge.merge(v, "a", "main").to_json()
    assert "only-a.txt" in clean["changed"] and isinstance(clean["changed"], list)


def test_a_dry_run_previews_the_merge_commit(forks):
    from avfs_git.core.operations import history

    v = forks
    v.workspace("a").write("a-file.txt", b"a\n")
    v.workspace("main").write("main-file.txt", b"m\n")
    checkpoint.save(v, "a")
    checkpoint.save(v, "main")
    tip = v.workspace("main").tip()
    dry = merge.merge(v, "a", "main", dry_run=True)
    assert dry.status == "would_merge" and dry.commit is not None and dry.changed == ("a-file.txt",)
    assert v.workspace("main").tip() == tip  # nothing moved
    changes = history.diff(v, "main", tip, dry.commit).changes
    assert [(c.path, str(c.status)) for c in changes] == [("a-file.txt", "added")]


def test_merging_into_a_mounted_fork_with_a_file_open_is_refused(home, forks, tmp_path):
    from avfs_git.ops import mounts

    from .test_fuse import require_fuse

    require_fuse()
    v = forks
    v.workspace("a").write("from-a.txt", b"a\n")
    checkpoint.save(v, "a")
    v.workspace("main").write("main-side.txt", b"m\n")
    checkpoint.save(v, "main")
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")  # its overlay files are avfs's
    try:
        tip = v.workspace("main").tip()
        with open(mp / "being-written.txt", "w") as fh:
            fh.write("half")
            fh.flush()
            with pytest.raises(AvfsError) as exc:
                merge.merge(v, "a", "main")
            assert exc.value.code == "busy" and "being-written.txt" in exc.value.details["paths"]
            assert v.workspace("main").tip() == tip
            fh.write(" and the rest\n")
        res = merge.merge(v, "a", "main")  # closed: the merge goes through
        assert res.status == "merged"
        # ...and returned once the mount's daemon said it shows the merge (it held the
        # overlay's transaction, which the daemon needed to say so: it gave up waiting)
        ov = v.workspace("main").overlay
        shown = (Path(files_dir(v, "main")) / ACK_FILE).read_text().split()
        assert shown[:2] == [res.commit, str(ov.get_meta("view_time"))], shown
        deadline = __import__("time").monotonic() + 5
        while not (mp / "from-a.txt").exists() and __import__("time").monotonic() < deadline:
            __import__("time").sleep(0.02)
        assert (mp / "from-a.txt").read_text() == "a\n"  # the mount follows the merge
        assert (mp / "being-written.txt").read_text() == "half and the rest\n"
    finally:
        mounts.unmount(home, v, "main", lazy=True)


def test_merging_into_an_overlay_mount_with_a_file_open_loses_nothing(home, forks, tmp_path):
    """Through an overlay mount a merge rewrites only the paths it changes, through the
    mount point: a file open for writing elsewhere keeps its descriptor and every byte."""
    from avfs_git.ops import mounts

    from .test_fuse import require_fuse
    from .test_overlay import require_overlay

    require_fuse()
    require_overlay()
    v = forks
    v.workspace("a").write("from-a.txt", b"a\n")
    checkpoint.save(v, "a")
    mp = tmp_path / "mnt"
    mp.mkdir()
    assert mounts.mount(home, v, "main", str(mp), backend="overlay").backend == "overlay"
    try:
        with open(mp / "being-written.txt", "w") as fh:
            fh.write("half")
            fh.flush()
            res = merge.merge(v, "a", "main")
            assert res.status == "merged"
            assert (mp / "from-a.txt").read_text() == "a\n"  # shown at once: written through the mount
            fh.write(" and the rest\n")
        assert (mp / "being-written.txt").read_text() == "half and the rest\n"
        checkpoint.save(v, "main")
        assert git("--git-dir", v.path, "show", "main:being-written.txt") == "half and the rest\n"
        assert git("--git-dir", v.path, "show", "main:from-a.txt") == "a\n"
    finally:
        mounts.unmount(home, v, "main", lazy=True)


@pytest.mark.parametrize(
    ("ours_path", "theirs_path"),
    [("clash", "clash/inner.txt"), ("clash/inner.txt", "clash"), ("same.txt", "same.txt")],
)
def test_a_file_meeting_a_directory_is_a_conflict_not_a_silent_overwrite(forks, ours_path, theirs_path):
    v = forks
    v.workspace("main").write(ours_path, b"ours\n")
    v.workspace("a").write(theirs_path, b"theirs\n")
    checkpoint.save(v, "main")
    checkpoint.save(v, "a")
    res = merge.merge(v, "a", "main")
    assert res.status == "conflicts" and res.conflicts, res
    assert v.workspace("main").read(ours_path) == b"ours\n"  # nothing moved


def test_several_sources_an_error_after_a_merge_reports_both(cli, forks):
    v = forks
    v.workspace("a").write("a.txt", b"a\n")
    checkpoint.save(v, "a")
    r = cli("--json", "--vault", "v:main", "merge", "a", "no-such-fork")
    doc = json.loads(r.out_bytes)
    assert doc["kind"] == "merge" and doc["results"][0]["status"] == "fast_forward"
    assert doc["error"]["code"] == "fork_not_found" and r.code == 1
    assert v.workspace("main").read("a.txt") == b"a\n"  # the first merge stays


# -- an open merge is part of the workspace: nothing ends it but --continue / --abort ----------


def _open_merge(v):
    _conflicting(v)
    res = merge.merge(v, "b", "main", write_conflicts=True)
    assert res.status == "conflicts_written"
    return res


def _resolve(v, fork="main"):
    w = v.workspace(fork)
    w.write("shared.txt", b"one\nresolved\nthree\n")
    w.write("added.txt", b"both\n")
    w.remove("bin.dat~ours")
    w.remove("bin.dat~theirs")


def _still_open_then_continue(v, res, fork="main", *, markers=True):
    """The merge is open and unchanged; resolving it and continuing makes the two-parent
    commit, and no commit of the fork's history holds a marker."""
    w = v.workspace(fork)
    assert w.tip() == res.ours and merge.merge_state(w) is not None
    assert (b"<<<<<<< " in w.read("shared.txt")) is markers
    _resolve(v, fork)
    done = merge.merge_continue(v, fork)
    parents = git("--git-dir", v.path, "log", "-1", "--format=%P", fork).split()
    assert parents == [res.ours, res.theirs] and w.tip() == done.commit
    assert git("--git-dir", v.path, "show", f"{fork}:shared.txt") == "one\nresolved\nthree\n"
    hits = git("--git-dir", v.path, "log", "-G^<<<<<<< ", "--format=%H", fork)
    assert hits == "", f"a commit holds conflict markers: {hits}"
    return done


def test_status_says_a_merge_is_in_progress(cli, forks):
    from .test_json_schemas import _validator

    v = forks
    assert v.workspace("main").status_report()["merge"] is None
    res = _open_merge(v)
    r = cli("--json", "--vault", "v:main", "status")
    doc = json.loads(r.out_bytes)
    _validator("status").validate(doc)
    assert doc["merge"] == {
        "source": "b",
        "theirs": res.theirs,
        "ours": res.ours,
        "base": res.base,
        "conflicts": ["added.txt", "bin.dat", "gone.txt", "shared.txt"],
        "unresolved": ["added.txt", "bin.dat~ours", "bin.dat~theirs", "shared.txt"],
    }
    human = cli("--vault", "v:main", "status").out
    assert f"merging b ({res.theirs[:12]}): 4 path(s) unresolved" in human
    assert "unresolved: shared.txt" in human and "avfs merge --continue" in human
    # resolving a path takes it off the list; the merge stays open until --continue
    v.workspace("main").write("shared.txt", b"one\nresolved\nthree\n")
    doc = json.loads(cli("--json", "--vault", "v:main", "status").out_bytes)
    assert doc["merge"]["unresolved"] == ["added.txt", "bin.dat~ours", "bin.dat~theirs"]
    _still_open_then_continue(v, res, markers=False)
    doc = json.loads(cli("--json", "--vault", "v:main", "status").out_bytes)
    _validator("status").validate(doc)
    assert doc["merge"] is None


def test_checkpoint_save_refuses_while_a_merge_is_open(cli, forks):
    from .conftest import snapshot

    v = forks
    res = _open_merge(v)
    before = snapshot(v)
    with pytest.raises(merge.MergeInProgressError) as exc:
        checkpoint.save(v, "main", name="cp")
    # (a direct call, as a builder's program makes it: the API's door names its calls)
    assert "merge.merge_continue(vault, fork)" in exc.value.message
    assert "merge.merge_abort(vault, fork)" in (exc.value.hint or "")
    assert exc.value.details["theirs"] == res.theirs and "shared.txt" in exc.value.details["unresolved"]
    r = cli("--json", "--vault", "v:main", "checkpoint", "save", "-m", "x")
    err = json.loads(r.out_bytes)
    assert r.code == 75 and err["kind"] == "error" and err["error"]["code"] == "merge_in_progress"
    assert "avfs merge --continue" in err["error"]["hint"]
    assert snapshot(v) == before
    _still_open_then_continue(v, res)


def test_a_second_merge_refuses_and_so_does_merging_a_fork_with_a_merge_open(forks):
    from .conftest import snapshot

    v = forks
    res = _open_merge(v)
    v.workspace("a").write("late.txt", b"late\n")
    before = snapshot(v)
    for source, target in (("a", "main"), ("main", "a")):
        with pytest.raises(merge.MergeInProgressError) as exc:
            merge.merge(v, source, target)
        assert "merge.merge_continue(vault, fork)" in (
            exc.value.hint or exc.value.message
        )  # (the API's words)
    assert snapshot(v) == before  # nothing captured, nothing moved
    _still_open_then_continue(v, res)


def test_a_fork_of_a_fork_with_a_merge_open_inherits_the_merge(forks):
    v = forks
    res = _open_merge(v)
    v.create_fork("main", "copy")
    copy = v.workspace("copy")
    assert merge.merge_state(copy) is not None and b"<<<<<<< " in copy.read("shared.txt")
    with pytest.raises(merge.MergeInProgressError):
        checkpoint.save(v, "copy")
    _still_open_then_continue(v, res, "copy")
    _still_open_then_continue(v, res, "main")  # the source's merge was not disturbed


def test_down_refuses_before_unmounting_or_changing_anything(home, forks):
    from avfs_git.ops import quickstart

    from .conftest import snapshot

    v = forks
    res = _open_merge(v)
    before = snapshot(v)
    for action in ("keep", "leave", "discard"):
        fork = "main"
        with pytest.raises(merge.MergeInProgressError):
            quickstart.down(home, v, fork, action=action)  # type: ignore[arg-type]
    assert snapshot(v) == before
    _still_open_then_continue(v, res)


@pytest.mark.parametrize("mode", ["materialized", "fuse"])
def test_proxy_exec_runs_in_an_open_merge_without_committing(home, forks, mode):
    from .test_fuse import require_fuse

    if mode == "fuse":
        require_fuse()
    v = forks
    res = _open_merge(v)
    main = v.workspace("main")
    try:
        # a plain command runs: its changes join the merge's resolution, nothing is committed
        out = exec_in(
            main, shell="printf 'one\\nresolved\\nthree\\n' > shared.txt; echo n > new.txt", mode=mode
        )
        assert out.error is None and out.exit_code == 0, out.error
        assert out.checkpoint is None and out.commit is None
        assert {c.path for c in out.changes} >= {"new.txt"}
        assert out.state is not None and out.state.merge.source == "b"
        assert "shared.txt" not in out.state.merge.unresolved
        assert main.tip() == res.ours and merge.merge_state(main) is not None
        # a command the policy checkpoints first does not run: one envelope, the merge open
        marker = "ran.txt"
        for kw in (
            {"shell": f"touch {marker}; rm added.txt"},
            {"argv": ["touch", marker], "checkpoint": "always"},
        ):
            refused = exec_in(main, mode=mode, **kw)
            assert refused.result is None and refused.exit_code == 125, refused
            assert refused.error is not None and refused.error.code == "merge_in_progress"
            assert "merge --continue" in refused.error.hint
            assert not main.exists(marker) and main.exists("added.txt")
        assert main.tip() == res.ours and merge.merge_state(main) is not None
        done = _still_open_then_continue(v, res, markers=False)
        assert git("--git-dir", v.path, "show", f"{done.commit}:new.txt") == "n\n"
    finally:
        if mode == "fuse":
            from avfs_git.ops import mounts

            mounts.unmount(home, v, "main", lazy=True)


def test_cli_proxy_exec_refusal_is_one_envelope(cli, forks):
    from .test_json_schemas import _validator

    v = forks
    res = _open_merge(v)
    r = cli("--json", "--vault", "v:main", "proxy", "exec", "--mode", "materialized", "--checkpoint", "always",
            "--", "touch", "x.txt")  # fmt: skip
    lines = [ln for ln in r.out_bytes.decode().splitlines() if ln.strip()]
    doc = json.loads(r.out_bytes)
    assert doc["kind"] == "proxy_exec_result" and doc["error"]["code"] == "merge_in_progress"
    assert r.code == doc["exit_code"] == 125 and doc["result"] is None and len(lines) >= 1
    _validator("proxy_exec_result").validate(doc)
    assert not v.workspace("main").exists("x.txt")
    _still_open_then_continue(v, res)


def test_hooks_checkpoints_refuse_in_a_mounted_fork_with_a_merge_open(home, forks, tmp_path):
    from avfs_git.ops import mounts

    from .test_fuse import require_fuse
    from .test_hooks import post_event, pre, run_hook, stop_event

    require_fuse()
    v = forks
    res = _open_merge(v)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp))
    try:
        assert "<<<<<<< " in (mp / "shared.txt").read_text()
        (mp / "notes.txt").write_text("written in the mount\n")
        # PreToolUse of a command the policy checkpoints first: denied, saying why
        _, out = pre("rm -rf gone-dir", str(mp))
        assert out["permissionDecision"] == "deny" and "merge --continue" in out["permissionDecisionReason"]
        # PostToolUse and Stop: no checkpoint, a non-blocking error naming the merge
        for event in (post_event(str(mp)), stop_event(str(mp))):
            name = "post-tool-use" if event["hook_event_name"] == "PostToolUse" else "stop"
            r = run_hook("claude", name, stdin=json.dumps(event).encode())
            assert r.code == 1 and "merge --continue" in r.err, r
        assert v.workspace("main").tip() == res.ours
        done = _still_open_then_continue(v, res)
        assert git("--git-dir", v.path, "show", f"{done.commit}:notes.txt") == "written in the mount\n"
    finally:
        mounts.unmount(home, v, "main", lazy=True)


def test_git_in_the_mount_sees_the_open_merge_as_its_own(home, forks, tmp_path):
    """In the mount, an open merge is git's merge: unmerged paths, MERGE_HEAD; `git commit`
    refuses until they are resolved, then makes the two-parent commit avfs adopts."""
    import subprocess

    from avfs_git.ops import mounts

    from .test_fuse import require_fuse

    require_fuse()
    v = forks
    _conflicting(v)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp))  # mounted before the merge, and the merge open after

    def g(*args, check=True):
        p = subprocess.run(["git", *args], cwd=mp, capture_output=True, text=True, check=False)
        assert not check or p.returncode == 0, p.stderr
        return p

    try:
        res = merge.merge(v, "b", "main", write_conflicts=True)
        assert res.status == "conflicts_written"
        status = sorted(g("status", "--porcelain").stdout.splitlines())
        assert "UU shared.txt" in status and "AA added.txt" in status, status
        assert g("rev-parse", "MERGE_HEAD").stdout.strip() == res.theirs
        refused = g("commit", "-qm", "x", check=False)  # as git: `git add` them first
        assert refused.returncode != 0 and "unmerged" in (refused.stderr + refused.stdout).lower()
        assert v.workspace("main").tip() == res.ours and merge.merge_state(v.workspace("main")) is not None
        # resolved with git, committed with git: the merge commit, adopted by avfs
        (mp / "shared.txt").write_text("one\nresolved\nthree\n")
        (mp / "added.txt").write_text("both\n")
        (mp / "bin.dat~ours").unlink()
        (mp / "bin.dat~theirs").unlink()
        g("add", "-A")
        g("commit", "-qm", "merged in the mount")
        head = g("rev-parse", "HEAD").stdout.strip()
        assert g("log", "-1", "--format=%P").stdout.split() == [res.ours, res.theirs]
        main = v.workspace("main")
        assert main.base == head and merge.merge_state(main) is None
        assert g("status", "--porcelain").stdout == ""
        assert g("rev-parse", "-q", "--verify", "MERGE_HEAD", check=False).returncode != 0
        # mounted after the merge was opened: the same
        v2 = v.workspace("a")
        v2.write("shared.txt", b"from a again\n")
        checkpoint.save(v, "a")
        v.workspace("main").write("shared.txt", b"from main again\n")
        again = merge.merge(v, "a", "main", write_conflicts=True)
        assert again.status == "conflicts_written"
        mounts.unmount(home, v, "main")
        mounts.mount(home, v, "main", str(mp))
        assert "UU shared.txt" in g("status", "--porcelain").stdout.splitlines()
        merge.merge_abort(v, "main")
        assert g("status", "--porcelain").stdout == ""
        assert g("rev-parse", "-q", "--verify", "MERGE_HEAD", check=False).returncode != 0
    finally:
        mounts.unmount(home, v, "main", lazy=True)


def test_push_checkpoint_first_refuses_and_a_plain_push_leaves_the_merge_open(forks, tmp_path):
    from avfs_git.core.operations import remote

    v = forks
    res = _open_merge(v)
    bare = tmp_path / "server.git"
    git("init", "-q", "--bare", str(bare))
    remote.add(v, "origin", str(bare))
    with pytest.raises(merge.MergeInProgressError):
        remote.push(v, "origin", ["main"], checkpoint_first=True)
    pushed = remote.push(v, "origin", ["main"])  # what is committed: the merge's first parent
    assert pushed is not None
    assert git("--git-dir", str(bare), "rev-parse", "main").strip() == res.ours
    _still_open_then_continue(v, res)
