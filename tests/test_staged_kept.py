"""The person's staged version of a path that a recorded ``proxy exec`` commits (h-staged1).

A run's record is another writer's commit on the fork's branch: the mount's index follows
it where it held the old base's entry, and an entry the person staged (neither the old
base's nor the new commit's) stays staged, as a plain worktree keeps its index when
another hand commits on its branch (`git reset --soft` to that commit). Before, the
record's index write set the path to the new commit's entry: the person's ``git add``
was gone from git's index, `git diff --cached` showed nothing, and nothing said so
(found in the thirty-sixth round, h-gitspawn1; on main too).

``avfs checkpoint save`` is the person's own `git commit --only` of what the files show
(tests/test_git_model.py ``plain_checkpoint``): as git's, it sets the index's entries of
the paths it records to the commit's; what it does not record stays staged.

Real mounts (both backends), real bubblewrap, real git, from the person's side.
"""

from __future__ import annotations

from .test_adv_mountfiles import Scene
from .test_adv_mountfiles import scene as scene  # a mounted fork, both backends, real bwrap


def _staged_after_run(scene: Scene, worktree: str) -> None:
    """The person stages a version of ``a.txt``, leaves ``worktree`` in the work tree; an
    agent's run writes another and its record commits it: the person's version stays
    staged, and their plain ``git commit`` records it."""
    (scene.mp / "a.txt").write_text("staged by the person\n")
    scene.git("add", "a.txt")
    (scene.mp / "a.txt").write_text(worktree)
    before = scene.git("rev-parse", "HEAD").stdout.strip()
    res = scene.attack("echo by the agent > a.txt\n")
    doc = res.to_dict()
    assert res.success and doc["commit"] is not None, doc
    assert not doc.get("refs_refused"), doc
    assert scene.git("rev-parse", "HEAD").stdout.strip() != before
    assert scene.git("show", "HEAD:a.txt").stdout == "by the agent\n"
    assert (scene.mp / "a.txt").read_text() == "by the agent\n"
    assert scene.git("show", ":a.txt").stdout == "staged by the person\n"
    assert scene.git("diff", "--cached", "--name-only").stdout.split() == ["a.txt"]
    # the work tree's change against the index: git's `MM`, as in a plain worktree
    assert scene.git("status", "--porcelain", "--", "a.txt").stdout == "MM a.txt\n"
    scene.git("commit", "-q", "-m", "the person's staged version")
    assert scene.git("show", "HEAD:a.txt").stdout == "staged by the person\n"
    assert scene.git("show", "HEAD~1:a.txt").stdout == "by the agent\n"
    scene.hook_answers()


def test_a_recorded_run_keeps_the_persons_staged_version_of_the_path_it_commits(scene: Scene) -> None:
    """Staged, the work tree put back as the fork has it (nothing uncheckpointed at the
    path: the run's record below has no change there)."""
    _staged_after_run(scene, "the fork's a\n")


def test_a_staged_version_stays_over_the_record_and_the_runs_commit(scene: Scene) -> None:
    """Staged, then edited again: the record below the run commits the work tree's
    version, the run's commit the agent's; the person's staged one stays staged over
    both moves."""
    _staged_after_run(scene, "edited after the add\n")


def test_a_checkpoint_is_gits_commit_only_of_the_files(scene: Scene) -> None:
    """`avfs write` of a path the person staged, then ``checkpoint save``: the checkpoint
    records the file, and the index's entry of that path is the commit's, as `git commit
    --only a.txt` leaves it; another staged path the checkpoint does not record stays."""
    (scene.mp / "a.txt").write_text("staged by the person\n")
    (scene.mp / "b.txt").write_text("b staged\n")
    scene.git("add", "a.txt", "b.txt")
    (scene.mp / "b.txt").unlink()  # (b.txt: staged, not in the files: nothing to record)
    spec = ["--home", scene.home.path, "--vault", "v:main"]
    res = scene.cli(*spec, "--json", "write", "a.txt", "written by avfs\n")
    assert res.code == 0, res.out
    res = scene.cli(*spec, "--json", "checkpoint", "save", "-m", "cp")
    assert res.code == 0, res.out
    assert scene.git("show", "HEAD:a.txt").stdout == "written by avfs\n"
    assert scene.git("show", ":a.txt").stdout == "written by avfs\n"
    assert scene.git("show", ":b.txt").stdout == "b staged\n"
    assert scene.git("diff", "--cached", "--name-only").stdout.split() == ["b.txt"]
    scene.hook_answers()


def test_the_undo_of_a_run_keeps_the_staged_version(scene: Scene) -> None:
    """`avfs undo` of that run (the fork back before it, as `git reset --soft` back):
    the person's version is still the one staged."""
    (scene.mp / "a.txt").write_text("staged by the person\n")
    scene.git("add", "a.txt")
    (scene.mp / "a.txt").write_text("the fork's a\n")
    before = scene.git("rev-parse", "HEAD").stdout.strip()
    res = scene.attack("echo by the agent > a.txt\n")
    assert res.success and res.to_dict()["commit"] is not None, res.to_dict()
    spec = ["--home", scene.home.path, "--vault", "v:main"]
    got = scene.cli(*spec, "--json", "undo")
    assert got.code == 0, got.out
    assert scene.git("rev-parse", "HEAD").stdout.strip() == before
    assert scene.git("show", ":a.txt").stdout == "staged by the person\n"
    assert scene.git("diff", "--cached", "--name-only").stdout.split() == ["a.txt"]
    scene.hook_answers()


def test_the_redo_of_that_undo_keeps_the_staged_version_too(scene: Scene) -> None:
    """`avfs redo` after that undo (the fork forward to the run's commit again, as `git
    reset --soft` there): the person's version stays staged, as over the undo; on main
    the redo set the index's entry to the run's commit's, `git status` clean, the
    person's `git add` gone without a word (the review of the thirty-sixth round, review40
    F1). Then a second undo and redo: the same."""
    (scene.mp / "a.txt").write_text("staged by the person\n")
    scene.git("add", "a.txt")
    (scene.mp / "a.txt").write_text("the fork's a\n")
    res = scene.attack("echo by the agent > a.txt\n")
    assert res.success and res.to_dict()["commit"] is not None, res.to_dict()
    after = scene.git("rev-parse", "HEAD").stdout.strip()
    spec = ["--home", scene.home.path, "--vault", "v:main"]
    for _ in range(2):
        for what in ("undo", "redo"):
            got = scene.cli(*spec, "--json", what)
            assert got.code == 0, got.out
            assert scene.git("show", ":a.txt").stdout == "staged by the person\n", what  # (main: the run's)
            assert scene.git("diff", "--cached", "--name-only").stdout.split() == ["a.txt"], what
        assert scene.git("rev-parse", "HEAD").stdout.strip() == after
        assert scene.git("show", "HEAD:a.txt").stdout == "by the agent\n"
        assert scene.git("status", "--porcelain", "--", "a.txt").stdout == "MM a.txt\n"
    scene.hook_answers()
