"""A ref moved by another process between avfs's read of it and its write (a `git push`
into the vault, a `git commit` elsewhere): checkpoint, merge, fork delete and restore each
refuse with `ref_moved` naming the ref and both commits, the other writer's commit stays
where it put it, and nothing of avfs's own is lost or half done (the fork's files, its
overlay, the op log, no ref left behind); the next call, which reads the moved ref, works.

The other writer is real git (`git update-ref` in a process of its own), let in at the one
moment that matters: just before avfs's compare-and-swap of that ref.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from avfs_git.core.errors import RefMovedError
from avfs_git.core.operations import checkpoint, merge
from avfs_git.core.store import refs
from avfs_git.core.vaults.vault import Vault

from .conftest import git, snapshot


def _other_commit(vault: Vault, parent: str, path: str) -> str:
    """A commit another writer makes on ``parent`` (adding ``path``), with git alone."""
    env = {"GIT_DIR": vault.path}
    blob = (
        subprocess.run(
            ["git", "hash-object", "-w", "--stdin"],
            input=b"theirs\n",
            env=env,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    listing = git("--git-dir", vault.path, "ls-tree", parent) + f"100644 blob {blob}\t{path}\n"
    tree = (
        subprocess.run(["git", "mktree"], input=listing.encode(), env=env, capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )
    return git("--git-dir", vault.path, "commit-tree", tree, "-p", parent, "-m", "another writer").strip()


def _move_first(monkeypatch: pytest.MonkeyPatch, vault: Vault, ref: str, to: str) -> list[str]:
    """Let another process move ``ref`` to ``to`` just before avfs's first compare-and-swap
    of it that expects it to be somewhere (a move or a delete, not a creation)."""
    real: Callable[..., None] = refs.cas_update
    moved: list[str] = []

    def other_writer_first(
        store: object, name: str, new: str | None, expected: str | None, message: str
    ) -> None:
        if name == ref and expected is not None and not moved:
            git("--git-dir", vault.path, "update-ref", ref, to)
            moved.append(to)
        real(store, name, new, expected, message)

    monkeypatch.setattr(refs, "cas_update", other_writer_first)
    return moved


def _check_refused(exc: pytest.ExceptionInfo[RefMovedError], ref: str, other: str) -> None:
    err = exc.value
    assert err.code == "ref_moved" and err.exit_code == 75
    assert ref in err.message and other in err.message and "moved" in err.message
    assert err.details["current"] == other


def _unchanged_but(before: dict[str, object], after: dict[str, object], ref: str) -> None:
    """Only ``ref`` moved (by the other writer): no ref of avfs's, no operation, the overlays
    as they were."""
    b_refs, a_refs = dict(before["refs"]), dict(after["refs"])  # type: ignore[call-overload]
    b_refs.pop(ref, None)
    a_refs.pop(ref, None)
    assert a_refs == b_refs
    assert after["ops"] == before["ops"]
    assert after["overlays"] == before["overlays"]


def _fsck(vault: Vault) -> None:
    assert git("--git-dir", vault.path, "fsck", "--full", "--strict", "--no-dangling") == ""


def test_a_checkpoint_whose_fork_moved_before_its_write_is_refused(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = vault.workspace("main")
    ws.write("mine.txt", b"mine\n")
    tip = str(ws.tip() or ws.base)
    other = _other_commit(vault, tip, "theirs.txt")
    before = snapshot(vault)
    moved = _move_first(monkeypatch, vault, "refs/heads/main", other)
    with pytest.raises(RefMovedError) as exc:
        checkpoint.save(vault, "main", name="c1")
    assert moved
    _check_refused(exc, "refs/heads/main", other)
    _unchanged_but(before, snapshot(vault), "refs/heads/main")
    assert refs.read_ref(vault.store, "refs/heads/main") == other  # the other writer's commit kept
    assert ws.read("mine.txt") == b"mine\n"
    _fsck(vault)
    monkeypatch.undo()
    res = checkpoint.save(vault, "main", name="c1")  # now on top of the other writer's commit
    tree = git("--git-dir", vault.path, "ls-tree", "--name-only", str(res.checkpoint.commit))
    assert {"mine.txt", "theirs.txt"} <= set(tree.split())
    assert git("--git-dir", vault.path, "rev-parse", f"{res.checkpoint.commit}^").strip() == other


def test_a_merge_whose_target_moved_before_its_write_is_refused(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.create_fork("main", "a")
    vault.workspace("a").write("agent.txt", b"done\n")
    checkpoint.save(vault, "a")
    main = vault.workspace("main")
    main.write("main.txt", b"main\n")
    checkpoint.save(vault, "main")  # not a fast-forward: a merge commit
    tip = str(main.tip())
    other = _other_commit(vault, tip, "theirs.txt")
    before = snapshot(vault)
    moved = _move_first(monkeypatch, vault, "refs/heads/main", other)
    with pytest.raises(RefMovedError) as exc:
        merge.merge(vault, "a", "main")
    assert moved
    _check_refused(exc, "refs/heads/main", other)
    _unchanged_but(before, snapshot(vault), "refs/heads/main")
    assert refs.read_ref(vault.store, "refs/heads/main") == other
    _fsck(vault)
    monkeypatch.undo()
    merge.merge(vault, "a", "main")
    assert {main.read(p) for p in ("agent.txt", "main.txt", "theirs.txt")} == {
        b"done\n",
        b"main\n",
        b"theirs\n",
    }
    assert other in git("--git-dir", vault.path, "rev-list", "main").split()


def test_a_fork_delete_whose_branch_moved_before_its_write_is_refused(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.create_fork("main", "b")
    b = vault.workspace("b")
    b.write("kept.txt", b"uncheckpointed\n")
    other = _other_commit(vault, str(b.tip() or b.base), "theirs.txt")
    before = snapshot(vault)
    moved = _move_first(monkeypatch, vault, "refs/heads/b", other)
    with pytest.raises(RefMovedError) as exc:
        vault.delete_fork("b")
    assert moved
    _check_refused(exc, "refs/heads/b", other)
    _unchanged_but(before, snapshot(vault), "refs/heads/b")  # the recovery ref taken back
    assert vault.has_fork("b") and refs.read_ref(vault.store, "refs/heads/b") == other
    assert vault.workspace("b").read("kept.txt") == b"uncheckpointed\n"
    _fsck(vault)
    monkeypatch.undo()
    vault.delete_fork("b")
    assert not vault.has_fork("b")


def test_a_restore_whose_fork_moved_before_its_write_is_refused(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = vault.workspace("main")
    ws.write("one.txt", b"1\n")
    first = checkpoint.save(vault, "main", name="one").checkpoint.commit
    ws.write("two.txt", b"2\n")
    checkpoint.save(vault, "main")
    ws.write("dirty.txt", b"not saved\n")
    other = _other_commit(vault, str(ws.tip()), "theirs.txt")
    before = snapshot(vault)
    moved = _move_first(monkeypatch, vault, "refs/heads/main", other)
    with pytest.raises(RefMovedError) as exc:
        checkpoint.restore(vault, "main", "one")
    assert moved
    _check_refused(exc, "refs/heads/main", other)
    _unchanged_but(before, snapshot(vault), "refs/heads/main")
    assert refs.read_ref(vault.store, "refs/heads/main") == other
    assert ws.read("dirty.txt") == b"not saved\n"
    _fsck(vault)
    monkeypatch.undo()
    res = checkpoint.restore(vault, "main", "one")
    assert res.commit == first and res.previous == other
    assert ws.exists("two.txt") is False
