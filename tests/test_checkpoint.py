"""Checkpoints, forks, restore, revert, checkout, undo, moved refs, crash recovery."""

from __future__ import annotations

import subprocess

import pytest

from avfs_git.core.errors import (
    AlreadyExistsError,
    ConflictError,
    DirtyWorkspaceError,
    ForkNotFoundError,
    NothingToUndoError,
    RefMovedError,
    RevisionNotFoundError,
    UsageError,
)
from avfs_git.core.operations import checkpoint, history
from avfs_git.core.store import refs

from .conftest import git


def files(ws, root=""):
    return {e.path: ws.read(e.path) for e in ws.walk(root) if e.kind.value == "file"}


def test_checkpoint_commits_only_the_overlay(vault, ws):
    ws.write("a.txt", b"a")
    ws.write("d/b.txt", b"b")
    res = checkpoint.save(vault, name="one", message="first one")
    assert res.created and res.checkpoint.name == "one"
    assert ws.overlay.is_empty()
    assert ws.base == res.checkpoint.commit == ws.tip()
    c = vault.store.commit(ws.base)
    assert c.message == "first one\n"
    assert sorted(e.name for e in c.tree) == ["a.txt", "d"]
    # nothing changed: no new commit
    again = checkpoint.save(vault)
    assert not again.created and again.checkpoint.commit == res.checkpoint.commit


def test_named_checkpoint_twice_is_refused(vault, ws):
    ws.write("a", b"1")
    checkpoint.save(vault, name="n")
    ws.write("a", b"2")
    with pytest.raises(AlreadyExistsError):
        checkpoint.save(vault, name="n")
    assert ws.read("a") == b"2" and ws.is_dirty()


def test_list_and_delete_checkpoints(vault, ws):
    ws.write("a", b"1")
    checkpoint.save(vault, name="n1")
    ws.write("a", b"2")
    checkpoint.save(vault, name="n2")
    names = [c.name for c in checkpoint.list_checkpoints(vault)]
    assert set(names) == {"n1", "n2"}
    assert len(checkpoint.list_checkpoints(vault, all_commits=True)) == 3
    checkpoint.delete_checkpoint(vault, None, "n1")
    assert [c.name for c in checkpoint.list_checkpoints(vault)] == ["n2"]
    with pytest.raises(RevisionNotFoundError):
        checkpoint.delete_checkpoint(vault, None, "n1")
    checkpoint.undo(vault)
    assert {c.name for c in checkpoint.list_checkpoints(vault)} == {"n1", "n2"}


def test_restore_keeps_discarded_state_and_undo_brings_it_back(vault, ws):
    ws.write("f", b"v1")
    checkpoint.save(vault, name="v1")
    ws.write("f", b"v2")
    checkpoint.save(vault, name="v2")
    ws.write("f", b"v3-uncheckpointed")
    ws.write("new", b"n")
    tip_before = ws.tip()
    res = checkpoint.restore(vault, None, "v1")
    assert ws.read("f") == b"v1" and not ws.exists("new") and not ws.is_dirty()
    assert res.recovery_ref and res.recovery_ref.startswith(refs.RECOVERY)
    kept = vault.store.commit(refs.read_ref(vault.store, res.recovery_ref))
    assert kept.tree["f"].data == b"v3-uncheckpointed"
    # the ref move is in the reflog
    log = git("--git-dir", vault.path, "reflog", "show", "refs/heads/main")
    assert "restore" in log
    undo = checkpoint.undo(vault)
    assert undo.undone.kind == "restore"
    assert ws.tip() == tip_before
    assert ws.read("f") == b"v3-uncheckpointed" and ws.read("new") == b"n"
    assert {c.path for c in ws.status()} == {"f", "new"}


def test_undo_checkpoint_returns_changes_to_the_overlay(vault, ws):
    ws.write("a", b"1")
    checkpoint.save(vault)
    base = ws.base
    ws.write("a", b"2")
    ws.write("b", b"b")
    checkpoint.save(vault, name="two")
    ws.write("c", b"after")  # made after the checkpoint: must survive the undo
    checkpoint.undo(vault)
    assert ws.tip() == base
    assert files(ws) == {"a": b"2", "b": b"b", "c": b"after"}
    assert {c.path for c in ws.status()} == {"a", "b", "c"}
    assert checkpoint.list_checkpoints(vault) == []


def test_undo_twice_walks_back_and_undo_of_undo_redoes(vault, ws):
    ws.write("a", b"1")
    checkpoint.save(vault, name="c1")
    ws.write("a", b"2")
    checkpoint.save(vault, name="c2")
    u1 = checkpoint.undo(vault)
    assert u1.undone.summary.startswith("checkpoint c2")
    u2 = checkpoint.undo(vault)
    assert u2.undone.summary.startswith("checkpoint c1")
    with pytest.raises(UsageError):
        checkpoint.undo(vault, u2.undone.id)  # already undone
    checkpoint.undo(vault, u2.op_id)  # undo the undo = redo c1
    assert {c.name for c in checkpoint.list_checkpoints(vault)} == {"c1"}


def test_nothing_to_undo(home):
    v = home.create_vault("fresh")
    with pytest.raises(NothingToUndoError):
        checkpoint.undo(v)


def test_fork_is_o1_and_carries_uncheckpointed_changes(vault, ws):
    ws.write("a", b"base")
    checkpoint.save(vault)
    ws.write("a", b"dirty")
    ws.write("b", b"new")
    info = vault.create_fork("main", "agent")
    assert info.base == ws.base
    agent = vault.workspace("agent")
    assert agent.read("a") == b"dirty" and agent.read("b") == b"new"
    assert {c.path for c in agent.status()} == {"a", "b"}
    # the source is untouched
    assert ws.read("a") == b"dirty" and ws.is_dirty()
    # they are isolated
    agent.write("a", b"agent")
    assert ws.read("a") == b"dirty"
    checkpoint.save(vault, "agent")
    assert ws.read("a") == b"dirty"
    assert vault.workspace("agent").read("a") == b"agent"


def test_fork_errors(vault):
    with pytest.raises(AlreadyExistsError):
        vault.create_fork("main", "main")
    with pytest.raises(ForkNotFoundError):
        vault.create_fork("nope", "x")


def test_delete_fork_and_undo(vault, ws):
    vault.create_fork("main", "f")
    f = vault.workspace("f")
    f.write("x", b"1")
    checkpoint.save(vault, "f", name="cp")
    f.write("y", b"uncheckpointed")
    op = vault.delete_fork("f")
    assert not vault.has_fork("f")
    with pytest.raises(ForkNotFoundError):
        vault.workspace("f")
    checkpoint.undo(vault, op.id)
    f = vault.workspace("f")
    assert f.read("x") == b"1" and f.read("y") == b"uncheckpointed"
    assert [c.name for c in checkpoint.list_checkpoints(vault, "f")] == ["cp"]


@pytest.mark.parametrize("crlf", [False, True])
def test_a_fork_s_delete_captures_it_once_and_its_recovery_keeps_its_bytes(vault, ws, monkeypatch, crlf):
    """A fork's deletion captured the fork twice, once for the operation's record of its
    state and once for its recovery ref (tidy2, from the thirty-second round's review):
    now once, the record's tree the recovery's, unless git's conversions changed a file's
    bytes in it (a CRLF file under ``text=auto``), which the recovery keeps as they were
    (captured again, as they are). Either way the recovery holds the bytes written and an
    undo brings them back."""
    from avfs_git.core.workspace import wscommit

    ws.write(".gitattributes", b"*.txt text=auto\n")
    checkpoint.save(vault, "main", name="attrs")
    vault.create_fork("main", "f")
    f = vault.workspace("f")
    body = b"one\r\ntwo\r\n" if crlf else b"one\ntwo\n"
    f.write("a.txt", body)
    f.write("d/b.bin", b"\0bytes")
    captures = []
    real = wscommit.capture

    def counted(*args, **kw):  # type: ignore[no-untyped-def]
        captures.append(kw.get("convert", True))
        return real(*args, **kw)

    monkeypatch.setattr(wscommit, "capture", counted)  # (the real capture, counted)
    op = vault.delete_fork("f")
    assert captures == ([True, False] if crlf else [True]), captures
    (rec,) = [r for r in op.refs if str(r["ref"]).startswith(refs.RECOVERY)]
    kept = subprocess.run(
        ["git", "--git-dir", vault.path, "cat-file", "blob", f"{rec['new']}:a.txt"],
        capture_output=True,
        check=True,
    ).stdout
    assert kept == body
    (state,) = vault.oplog.workspaces(op.id)
    recorded = git("--git-dir", vault.path, "rev-parse", f"{rec['new']}^{{tree}}").strip()
    assert (state["before"]["tree"] == recorded) != crlf
    checkpoint.undo(vault, op.id)
    f = vault.workspace("f")
    assert f.read("d/b.bin") == b"\0bytes"
    assert f.read("a.txt").replace(b"\r\n", b"\n") == b"one\ntwo\n"


def test_default_fork_cannot_be_deleted(vault):
    with pytest.raises(UsageError):
        vault.delete_fork("main")


def test_undo_fork_creation(vault):
    vault.create_fork("main", "tmp")
    checkpoint.undo(vault)
    assert not vault.has_fork("tmp")


def test_revert(vault, ws):
    ws.write("a", b"1")
    checkpoint.save(vault)
    ws.write("b", b"2")
    checkpoint.save(vault, name="addb")
    ws.write("a", b"3")
    checkpoint.save(vault)
    res = checkpoint.revert(vault, None, "addb")
    assert res.created
    assert not ws.exists("b") and ws.read("a") == b"3"
    ws.write("z", b"dirty")
    with pytest.raises(DirtyWorkspaceError):
        checkpoint.revert(vault, None, "HEAD")


def test_revert_conflict_changes_nothing(vault, ws):
    ws.write("a", b"1\n")
    checkpoint.save(vault)
    ws.write("a", b"2\n")
    checkpoint.save(vault, name="two")
    ws.write("a", b"3\n")
    checkpoint.save(vault)
    tip = ws.tip()
    with pytest.raises(ConflictError) as info:
        checkpoint.revert(vault, None, "two")
    assert info.value.details["paths"] == ["a"]
    assert ws.tip() == tip


def test_checkout_path_from_revision(vault, ws):
    ws.write("d/a", b"old")
    ws.write("d/b", b"b")
    checkpoint.save(vault, name="old")
    ws.write("d/a", b"new")
    ws.remove("d/b")
    checkpoint.save(vault)
    checkpoint.checkout(vault, None, "d", "old")
    assert ws.read("d/a") == b"old" and ws.read("d/b") == b"b"
    checkpoint.undo(vault)
    assert ws.read("d/a") == b"new" and not ws.exists("d/b")


def _push_from_clone(vault, tmp_path, name: str, content: str) -> str:
    clone = tmp_path / f"clone-{name}"
    git("clone", "-q", vault.path, str(clone))
    (clone / name).write_text(content)
    git("add", "-A", cwd=clone)
    git("commit", "-qm", f"pushed {name}", cwd=clone)
    git("push", "-q", "origin", "main", cwd=clone)
    return git("rev-parse", "HEAD", cwd=clone).strip()


def test_moved_ref_without_rebase_stops_checkpoint_and_keeps_overlay(vault, ws, tmp_path):
    ws.write("a", b"1")
    checkpoint.save(vault)
    _push_from_clone(vault, tmp_path, "pushed.txt", "from git")  # someone pushes into the vault
    ws.write("mine", b"uncheckpointed")
    before = ws.base
    with pytest.raises(RefMovedError) as info:
        checkpoint.save(vault, rebase=False)
    assert info.value.exit_code == 75
    assert before in info.value.message and str(ws.tip()) in info.value.message
    assert ws.read("mine") == b"uncheckpointed" and ws.base == before


def test_moved_ref_is_rebased_onto_when_conflict_free(vault, ws, tmp_path):
    ws.write("a", b"1\n")
    checkpoint.save(vault)
    pushed = _push_from_clone(vault, tmp_path, "pushed.txt", "from git\n")
    ws.write("mine", b"uncheckpointed\n")
    ws.write("a", b"1\n2\n")
    res = checkpoint.save(vault, message="mine")
    assert res.created and res.checkpoint.parent == pushed  # on top of the pushed commit
    assert ws.base == res.checkpoint.commit == ws.tip() and not ws.is_dirty()
    assert ws.read("pushed.txt") == b"from git\n" and ws.read("mine") == b"uncheckpointed\n"
    assert git("--git-dir", vault.path, "log", "--format=%s", "main").split("\n")[:2] == [
        "mine",
        "pushed pushed.txt",
    ]
    # undo: the ref goes back to the pushed commit, the changes stay (now on top of it)
    checkpoint.undo(vault)
    assert ws.tip() == pushed and ws.read("mine") == b"uncheckpointed\n" and ws.is_dirty()


def test_moved_ref_conflicting_changes_are_refused_and_kept(vault, ws, tmp_path):
    ws.write("a.txt", b"base\n")
    checkpoint.save(vault)
    _push_from_clone(vault, tmp_path, "a.txt", "theirs\n")
    ws.write("a.txt", b"mine\n")
    before = ws.base
    with pytest.raises(ConflictError) as info:
        checkpoint.save(vault)
    assert info.value.exit_code == 3 and info.value.details["paths"] == ["a.txt"]
    assert ws.read("a.txt") == b"mine\n" and ws.base == before and ws.is_dirty()


def test_clean_workspace_follows_pushed_commits(vault, ws, tmp_path):
    ws.write("a", b"1")
    checkpoint.save(vault)
    clone = tmp_path / "clone"
    git("clone", "-q", vault.path, str(clone))
    (clone / "b").write_text("from git")
    git("add", "-A", cwd=clone)
    git("commit", "-qm", "pushed", cwd=clone)
    git("push", "-q", "origin", "main", cwd=clone)
    w = vault.workspace("main")
    assert w.read("b") == b"from git"
    assert history.log(vault)[0].message == "pushed\n"


def test_interrupted_checkpoint_is_finished_on_next_open(vault, ws, monkeypatch):
    """A crash after the ref moved but before the overlay was retired."""
    ws.write("a", b"1")
    checkpoint.save(vault)
    ws.write("a", b"2")
    real_retire = ws.overlay.retire
    calls = {"n": 0}

    def crash(db, captured, oid_of=None):
        calls["n"] += 1
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(ws.overlay, "retire", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(vault)
    monkeypatch.setattr(ws.overlay, "retire", real_retire)
    assert ws.overlay.get_meta("pending") is not None
    ws.sync_base()
    assert ws.base == ws.tip()
    assert ws.overlay.is_empty() and ws.read("a") == b"2"
    assert ws.overlay.get_meta("pending") is None


def test_interrupted_before_ref_move_leaves_old_state(vault, ws, monkeypatch):
    ws.write("a", b"1")
    checkpoint.save(vault)
    tip = ws.tip()
    ws.write("a", b"2")

    def boom(*a, **k):
        raise KeyboardInterrupt("crash before ref move")

    monkeypatch.setattr(refs, "cas_update", boom)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(vault)
    monkeypatch.undo()
    ws.sync_base()
    assert ws.tip() == tip and ws.base == tip and ws.read("a") == b"2" and ws.is_dirty()


def test_log_first_parent_and_all(vault, ws):
    ws.write("a", b"1")
    checkpoint.save(vault, name="c1")
    vault.create_fork("main", "side")
    side = vault.workspace("side")
    side.write("s", b"s")
    checkpoint.save(vault, "side")
    main_log = history.log(vault, "main")
    assert next(c.checkpoints for c in main_log) == ["c1"]
    assert len(history.log(vault, all_forks=True)) == len(main_log) + 1
    assert len(history.log(vault, "main", limit=1)) == 1


def test_diff_between_checkpoints_and_workspace(vault, ws):
    ws.write("a", b"1\n")
    ws.write("keep", b"k\n")
    checkpoint.save(vault, name="one")
    ws.write("a", b"2\n")
    ws.rename("keep", "kept")
    checkpoint.save(vault, name="two")
    d = history.diff(vault, None, "one", "two")
    got = {(c.path, c.status.value, c.old_path) for c in d.changes}
    assert got == {("a", "modified", None), ("kept", "renamed", "keep")}
    text = history.patch_text(vault, d)
    assert "-1\n+2\n" in text
    ws.write("a", b"3\n")
    d2 = history.diff(vault, None, "one")
    assert {c.path for c in d2.changes} == {"a", "kept"}
    assert "+3" in history.patch_text(vault, d2)
    assert [c.path for c in history.diff(vault, None, paths=["a"]).changes] == ["a"]


def test_resolve_checkpoint_of_another_fork(vault, ws):
    ws.write("a", b"1")
    r1 = checkpoint.save(vault, name="base-point")
    vault.create_fork("main", "other")
    o = vault.workspace("other")
    o.write("b", b"2")
    checkpoint.save(vault, "other", name="mine")
    assert history.resolve(vault, "base-point", "other") == r1.checkpoint.commit
    assert history.resolve(vault, "main:base-point", "other") == r1.checkpoint.commit
    assert history.resolve(vault, "other:mine~1", "main") == r1.checkpoint.commit
    with pytest.raises(RevisionNotFoundError):
        history.resolve(vault, "main:nope", "other")


def test_undo_refuses_when_the_fork_moved_on_since(vault, ws):
    ws.write("a.txt", b"one")
    checkpoint.save(vault, name="c1")
    ws.write("a.txt", b"two")
    checkpoint.save(vault, name="c2")
    op = checkpoint.checkout(vault, None, "a.txt", "c1")
    checkpoint.save(vault, name="c3")  # the checkout's effect is now a checkpoint
    with pytest.raises(RefMovedError):
        checkpoint.undo(vault, op.id)
    assert ws.read("a.txt") == b"one"
    assert vault.oplog.get(op.id).undone_by is None


def test_undo_after_redo_undoes_the_redone_operation(vault, ws):
    ws.write("a", b"1")
    checkpoint.save(vault, name="c4")
    u = checkpoint.undo(vault)
    redo = checkpoint.undo(vault, u.op_id)
    assert {c.name for c in checkpoint.list_checkpoints(vault)} == {"c4"}
    again = checkpoint.undo(vault)
    assert again.undone.id == u.undone.id
    assert checkpoint.list_checkpoints(vault) == []
    assert redo.op_id != again.op_id


def test_checkpoint_counts_changed_files(vault, ws):
    ws.write("src/app.py", b"x")
    ws.write("README.md", b"y")
    res = checkpoint.save(vault)
    assert res.checkpoint.changes == 2


def test_commit_of_the_view_made_elsewhere_is_adopted(vault, ws, tmp_path):
    """`git commit` of exactly what the workspace shows (as inside a mount) moves the ref;
    the workspace adopts the new tip and keeps whatever was not committed."""
    ws.write("a.txt", b"1\n")
    ws.write("b.txt", b"1\n")
    checkpoint.save(vault)
    ws.write("a.txt", b"2\n")
    ws.write("b.txt", b"2\n")
    clone = tmp_path / "c"
    git("clone", "-q", vault.path, str(clone))
    (clone / "a.txt").write_text("2\n")  # commit only a.txt, as the view shows it
    git("commit", "-qam", "a from git", cwd=clone)
    git("push", "-q", "origin", "main", cwd=clone)
    w = vault.workspace("main")
    assert w.base == w.tip()
    assert [(c.path, c.status.value) for c in w.status()] == [("b.txt", "modified")]
    assert w.read("a.txt") == b"2\n" and w.read("b.txt") == b"2\n"
    res = checkpoint.save(vault)
    assert res.created
    assert git("--git-dir", vault.path, "show", "main:b.txt") == "2\n"


def test_a_commit_that_disagrees_with_the_view_is_not_adopted(vault, ws, tmp_path):
    ws.write("a.txt", b"1\n")
    checkpoint.save(vault)
    ws.write("mine.txt", b"uncheckpointed\n")
    clone = tmp_path / "c"
    git("clone", "-q", vault.path, str(clone))
    (clone / "a.txt").write_text("theirs\n")
    git("commit", "-qam", "theirs", cwd=clone)
    git("push", "-q", "origin", "main", cwd=clone)
    w = vault.workspace("main")
    assert w.base != w.tip()
    assert w.read("a.txt") == b"1\n"  # their change is not silently shown or reverted
    with pytest.raises(RefMovedError):
        checkpoint.save(vault, rebase=False)
    # by default the checkpoint rebases onto their commit: both sides survive
    checkpoint.save(vault)
    assert w.read("a.txt") == b"theirs\n" and w.read("mine.txt") == b"uncheckpointed\n"


def test_undo_of_a_checkpoint_keeps_what_the_workspace_showed(vault, ws):
    """The checkpoint is undone (the ref goes back), its changes stay as uncheckpointed
    changes: undo never loses what the workspace showed."""
    ws.write("a", b"1\n")
    first = checkpoint.save(vault).checkpoint.commit
    ws.write("mine", b"uncheckpointed\n")
    ws.remove("a")
    checkpoint.save(vault, message="mine")
    checkpoint.undo(vault)
    assert ws.tip() == first and ws.base == first
    assert ws.read("mine") == b"uncheckpointed\n" and not ws.exists("a")
    assert {(c.path, str(c.status)) for c in ws.status()} == {("mine", "added"), ("a", "deleted")}


def _cli_fresh(home: str, argv: list[str], *, preload: bool) -> tuple[int, bool, str]:
    """The CLI in a new interpreter (``preload``: with pygit2 imported first, so that every
    read takes the libgit2 paths, as before): exit code, whether pygit2 got imported, output."""
    import json
    import os
    import subprocess
    import sys

    script = (
        "import sys, io, json, contextlib\n"
        + ("import pygit2\n" if preload else "")
        + "from avfs_git.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    code = main(['--home', {home!r}, '--json', *{argv!r}])\n"
        "print(json.dumps({'code': code, 'pygit2': 'pygit2' in sys.modules, 'out': out.getvalue()}))\n"
    )
    env = dict(os.environ, GIT_AUTHOR_DATE="@1700000000 +0100", GIT_COMMITTER_DATE="@1700000100 -0230")
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, env=env
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.splitlines()[-1])
    return doc["code"], doc["pygit2"], doc["out"]


def test_cli_checkpoint_save_does_not_load_libgit2(tmp_path):
    """`avfs checkpoint save` (a first checkpoint, a named one with a message, a deletion, an
    ignored file, nothing changed) imports no pygit2 (~35-65 ms of its start): the identity
    comes from `git config`, the commit's fields from its raw object. Its JSON is the same
    as with pygit2 loaded (the libgit2 paths), byte for byte (fixed dates: the same ids)."""
    steps = [
        ["vault", "create", "v"],
        ["--vault", "v", "write", "d/a.txt", "a"],
        ["--vault", "v", "checkpoint", "save"],
        ["--vault", "v", "write", "d/b.txt", "b"],
        ["--vault", "v", "checkpoint", "save", "cp1", "-m", "named\n\nwith a body"],
        ["--vault", "v", "checkpoint", "save", "cp2"],
        ["--vault", "v", "checkpoint", "save"],
        ["--vault", "v", "rm", "d/a.txt"],
        ["--vault", "v", "write", ".gitignore", "*.log\n"],
        ["--vault", "v", "write", "x.log", "ignored"],
        ["--vault", "v", "checkpoint", "save", "-m", "café"],
    ]
    outs: dict[bool, list[tuple[int, str]]] = {}
    for preload in (True, False):
        home = str(tmp_path / f"home-{preload}")
        outs[preload] = []
        for argv in steps:
            code, loaded, out = _cli_fresh(home, argv, preload=preload)
            assert code == 0, (argv, out)
            if argv[2:3] == ["checkpoint"] and not preload:
                assert not loaded, f"{argv} imported pygit2"
            outs[preload].append((code, out.replace(home, "HOME")))
    assert outs[False] == outs[True]
    saves = [out for (_, out), argv in zip(outs[False], steps, strict=True) if "checkpoint" in argv]
    import json

    docs = [json.loads(out) for out in saves]
    assert [d["created"] for d in docs] == [True, True, False, False, True]
    assert docs[1]["checkpoint"]["message"] == "named\n\nwith a body\n"
    assert docs[-1]["checkpoint"]["message"] == "café\n" and docs[-1]["ignored"] == 1
    assert docs[0]["checkpoint"]["time"] == "2023-11-14T22:15:00Z"


def test_a_save_writes_the_overlay_in_two_transactions(vault, ws):
    """A save makes two write transactions on the overlay's database: the pending record
    before the ref moves and the retiring after (the crash-safety pair, see
    wscommit.publish). The check that git in a mount did not move the ref first reads the
    two values without one (it was a third: a lock, BEGIN IMMEDIATE and COMMIT per save);
    a ref moved by git still takes it (tests/contract/test_git_in_mount.py)."""
    ws.write("a.txt", b"a")
    checkpoint.save(vault)
    ws.write("b.txt", b"b")
    seen: list[str] = []
    ws.overlay.db.set_trace_callback(seen.append)
    try:
        res = checkpoint.save(vault, message="second")
    finally:
        ws.overlay.db.set_trace_callback(None)
    assert res.created and ws.overlay.is_empty()
    assert [s for s in seen if s.startswith("BEGIN")] == ["BEGIN IMMEDIATE"] * 2
    assert sum(s == "COMMIT" for s in seen) == 2


def test_a_path_deeper_than_python_s_recursion_limit_is_checkpointed(vault):
    """Found in the fourteenth round (NAME=attack5): a directory 1,000 levels deep made the
    exec's commit and every checkpoint of the fork after it fail with RecursionError (the
    ignore rules' chain of `.gitignore` files, the tree builder, the status walk each went
    one Python call deeper per level). Made through the API a level at a time (the overlay
    keeps files by id: no such path on disk), with a `.gitignore` on the way; checkpointed,
    the ignored file left out, the rest in the commit."""
    ws = vault.workspace("main")
    for i in range(1, 1101):
        ws.mkdir("d/" * i)
    deep = "d/" * 1100
    ws.write(deep + ".gitignore", b"*.log\n")
    ws.write(deep + "f", b"bottom\n")
    ws.write(deep + "x.log", b"ignored\n")
    got = checkpoint.save(vault, "main")
    assert got.checkpoint.commit is not None
    tree = git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main").split()
    assert deep + "f" in tree and deep + ".gitignore" in tree and deep + "x.log" not in tree
    assert ws.read(deep + "x.log") == b"ignored\n"


def test_delete_fork_whose_branch_moved_meanwhile_changes_nothing(vault, monkeypatch):
    """A fork's branch moved by someone else while it is deleted (a push into the vault
    between the delete's read of it and its compare-and-swap): the delete kept the
    uncheckpointed changes under a recovery ref and deleted the checkpoints' refs before
    the branch's swap failed, so it left a recovery ref no operation named and the named
    checkpoints gone, recorded nowhere. The branch's swap comes first now: nothing is
    changed, the fork is as it was."""
    from avfs_git.core.errors import RefMovedError
    from avfs_git.core.workspace import wscommit

    vault.fork("main", "f")
    f = vault.workspace("f")
    f.write("a.txt", b"a\n")
    checkpoint.save(vault, "f", name="named")
    f.write("b.txt", b"uncheckpointed\n")
    main_tip = vault.workspace("main").tip()
    real = wscommit.keep_recovery

    def kept_then_pushed(ws, reason, **kw):  # type: ignore[no-untyped-def]
        got = real(ws, reason, **kw)
        git("--git-dir", vault.path, "update-ref", "refs/heads/f", main_tip)  # a push into the vault
        return got

    ops = vault.oplog.next_id()
    monkeypatch.setattr(wscommit, "keep_recovery", kept_then_pushed)
    with pytest.raises(RefMovedError):
        vault.delete_fork("f")
    after = git("--git-dir", vault.path, "for-each-ref", "--format=%(refname)")
    assert "refs/avfs/recovery" not in after
    assert "refs/avfs/checkpoints/f/-/named" in after.split()
    assert vault.oplog.next_id() == ops
    assert vault.has_fork("f") and vault.workspace("f").read("b.txt") == b"uncheckpointed\n"


def test_restore_whose_branch_moved_meanwhile_leaves_no_recovery_ref(vault, monkeypatch):
    """A restore whose branch someone else moves after it kept the uncheckpointed changes
    (a push into the vault between its read of the tip and its compare-and-swap) fails
    that swap: it left the recovery ref it had made, which no operation named (`op log`
    silent, `undo` unable to find it). Now nothing changes: no ref, no operation, the
    changes still uncheckpointed for the retry."""
    from avfs_git.core.workspace import wscommit

    vault.fork("main", "f")
    f = vault.workspace("f")
    f.write("a.txt", b"a\n")
    first = checkpoint.save(vault, "f").checkpoint.commit
    f.write("a.txt", b"b\n")
    checkpoint.save(vault, "f")
    f.write("c.txt", b"uncheckpointed\n")
    main_tip = vault.workspace("main").tip()
    real = wscommit.keep_recovery

    def kept_then_pushed(ws, reason, **kw):  # type: ignore[no-untyped-def]
        got = real(ws, reason, **kw)
        git("--git-dir", vault.path, "update-ref", "refs/heads/f", main_tip)  # a push into the vault
        return got

    ops = vault.oplog.next_id()
    monkeypatch.setattr(wscommit, "keep_recovery", kept_then_pushed)
    with pytest.raises(RefMovedError):
        checkpoint.restore(vault, "f", first)
    assert "refs/avfs/recovery" not in git("--git-dir", vault.path, "for-each-ref", "--format=%(refname)")
    assert vault.oplog.next_id() == ops
    assert vault.workspace("f").read("c.txt") == b"uncheckpointed\n"


def test_a_checkpoint_whose_retirement_fails_after_its_move_is_finished(vault, monkeypatch):
    """A checkpoint whose ref moved and whose retirement of what it captured then raised
    (an OSError reading the upper layer, say) left its ``pending`` record and the old base
    until another process's next sync_base, and failed as if nothing had been committed.
    It is finished now as a crash is (what the commit holds retired, the base the commit),
    and the checkpoint succeeds."""
    from avfs_git.core.workspace import wscommit

    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")

    def fails(*_args, **_kw):  # type: ignore[no-untyped-def]
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(wscommit, "retire_onto", fails)
    res = checkpoint.save(vault, "main")
    assert ws.overlay.get_meta("pending") is None
    assert ws.overlay.get_meta("base") == ws.tip() == res.checkpoint.commit
    assert ws.overlay.is_empty() and not ws.is_dirty()
    monkeypatch.undo()
    assert not checkpoint.save(vault, "main").created
