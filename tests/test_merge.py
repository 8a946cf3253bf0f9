"""Merging forks: fast-forward, three-way merge commits, conflicts as data, written
conflicts with --continue/--abort, undo, and bad input. Real git checks the history."""

from __future__ import annotations

import json

import pytest

from avfs_git.core import checkpoint, merge
from avfs_git.core.errors import AvfsError, ConflictError, UsageError

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


def test_a_dry_run_previews_the_merge_commit(forks):
    from avfs_git.core import history

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
    from avfs_git.fuse import mounts

    from .test_fuse import require_fuse

    require_fuse()
    v = forks
    v.workspace("a").write("from-a.txt", b"a\n")
    checkpoint.save(v, "a")
    v.workspace("main").write("main-side.txt", b"m\n")
    checkpoint.save(v, "main")
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp))
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
        deadline = __import__("time").monotonic() + 5
        while not (mp / "from-a.txt").exists() and __import__("time").monotonic() < deadline:
            __import__("time").sleep(0.02)
        assert (mp / "from-a.txt").read_text() == "a\n"  # the mount follows the merge
        assert (mp / "being-written.txt").read_text() == "half and the rest\n"
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
