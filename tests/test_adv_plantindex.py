"""The index's half of a planted repository that the work tree does not show (the
thirty-seventh round's review40, F3 and F4; docs/security.md).

A confined ``proxy exec`` stages one half of a repository that runs a program in the
person's git (``src/config`` naming ``core.fsmonitor``), marks it ``skip-worktree`` or
``assume-unchanged`` and removes it from the work tree: alone no repository, and every
writer's check reads the work tree, which no longer holds it. The other half
(``src/HEAD``, ``src/objects/``, ``src/refs/``: alone a plain repository, allowed) then
comes by a route no avfs commit sees: the agent's ``avfs write`` outside a run, a
``--no-commit`` run that only renames a directory into place, or the person's own ``git
merge --ff-only`` of the agent's fork in the mount. The person's ordinary ``git add -A &&
git commit`` (which the bit keeps from staging the config's removal) or ``git commit -am``
then recorded the whole repository, and a clone's ``git status`` in ``src/`` ran it.

Now the run's carry-back puts back every staged entry at a name of git's state that the
work tree does not show, and clears those bits there (the envelope says so); a run whose
journal names only directories looks at the files they brought; and ``avfs merge`` and
``avfs checkpoint save`` say in their JSON what their index patch put back. Both backends
(``scene``: overlay and pure FUSE), real bwrap, real git, real clones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .test_adv_mountfiles import Scene
from .test_adv_mountfiles import scene as scene  # a mounted fork, both backends, real bwrap
from .test_adv_plantfollow import _person_commits_and_looks, _put_back_said
from .test_adv_plantmerge import BARE_HALF, _avfs, _config_half
from .test_json_schemas import validate

OTHER_HALF = (
    ("src/HEAD", "ref: refs/heads/main\n"),
    ("src/objects/info/packs", ""),
    ("src/refs/heads/.keep", ""),
)


def _write_other_half(scene: Scene, fork: str = "main") -> None:
    """The agent's file tool outside any run (`avfs write`, as MCP's): a plain repository."""
    for p, body in OTHER_HALF:
        got = scene.cli("--home", scene.home.path, "--vault", f"v:{fork}", "--json", "write", p, body)
        assert got.code == 0, got.out


def _ran(res: Any) -> Any:
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    return res


@pytest.mark.parametrize("bit", ["--skip-worktree", "--assume-unchanged"])
def test_a_hidden_staged_half_then_avfs_write(scene: Scene, tmp_path: Path, bit: str) -> None:
    marker = scene.ran / "hidden-fsmonitor"
    one = _ran(
        scene.attack(
            _config_half(marker) + f"git add src/config && git update-index {bit} src/config\nrm src/config\n"
        )
    )
    _write_other_half(scene)
    scene.git("add", "-A")  # the person's usual commit
    _person_commits_and_looks(scene, tmp_path, marker)
    assert _put_back_said(one), one.to_dict()


def test_a_hidden_bit_on_the_forks_own_config_then_avfs_rm_and_write(scene: Scene, tmp_path: Path) -> None:
    """The config is the fork's (a run committed it: alone no repository); a later run marks
    its unchanged entry ``skip-worktree``; ``avfs rm`` takes it out of the work tree and
    ``avfs write`` brings the other half: the bit kept the removal out of ``git add -A``."""
    marker = scene.ran / "bit-fsmonitor"
    one = _ran(scene.attack(_config_half(marker)))
    assert one.commit is not None, one.to_dict()
    two = _ran(scene.attack("git update-index --skip-worktree src/config\n"))
    bits = scene.git("ls-files", "-v", "src/config").stdout
    code, doc = _avfs(scene, "rm", "src/config")
    assert code == 0, doc
    _write_other_half(scene)
    scene.git("add", "-A")
    _person_commits_and_looks(scene, tmp_path, marker)
    assert _put_back_said(two), two.to_dict()
    assert bits.startswith("H "), bits  # (the bit cleared: git looks at the work tree's file)


def test_a_no_commit_run_renames_the_other_half_into_place(scene: Scene, tmp_path: Path) -> None:
    """review40's t4: ``foo/`` is a plain repository in the fork; a run stages the hidden
    config; a ``--no-commit`` run only does ``mv foo src`` (its journal: ``foo``, ``src``)."""
    marker = scene.ran / "mv-fsmonitor"
    _ran(scene.attack(BARE_HALF.replace("src/", "foo/")))
    two = _ran(
        scene.attack(
            _config_half(marker) + "git add src/config && git update-index --skip-worktree src/config\n"
            "rm src/config && rmdir src\n"
        )
    )
    three = _ran(scene.attack("mv foo src\n", commit=False))
    scene.git("add", "-A")
    _person_commits_and_looks(scene, tmp_path, marker)
    assert _put_back_said(two) or _put_back_said(three), (two.to_dict(), three.to_dict())


@pytest.mark.parametrize("how", ["rename", "link"])
def test_a_run_that_names_only_directories_is_looked_at(scene: Scene, how: str) -> None:
    """The staged config survives its run (the work tree holds it then: a ``--no-commit``
    run); a later ``--no-commit`` run that touches no index moves ``src`` away and puts
    ``foo`` (the other half) there, by a rename or as a link: its journal names only
    directories. The record looks all the same (its ``changes`` name the files they
    brought) and puts back what the work tree no longer shows, which the person's plain
    ``git commit`` would have recorded."""
    marker = scene.ran / f"dir-{how}-fsmonitor"
    _ran(scene.attack(BARE_HALF.replace("src/", "foo/")))
    one = _ran(scene.attack(_config_half(marker) + "git add src/config\n", commit=False))
    assert not _put_back_said(one), one.to_dict()  # (the work tree shows it: it stays staged)
    assert "src/config" in scene.git("diff", "--cached", "--name-only", "HEAD").stdout
    move = "mv src bar && mv foo src\n" if how == "rename" else "mv src bar && ln -s foo src\n"
    two = _ran(scene.attack(move, commit=False))
    assert _put_back_said(two), two.to_dict()
    assert "src/config" not in scene.git("diff", "--cached", "--name-only", "HEAD").stdout


def test_the_person_merges_the_agents_fork_with_git(scene: Scene, tmp_path: Path) -> None:
    """review40's t7: the agent's fork holds the plain repository (checkpointed); the
    person's ``git merge --ff-only agent`` in the mount keeps what is staged, then ``git
    commit -am``. No avfs commit sees the merge: the staging run's carry-back must."""
    marker = scene.ran / "gitmerge-fsmonitor"
    one = _ran(
        scene.attack(
            _config_half(marker) + "git add src/config && git update-index --skip-worktree src/config\n"
            "rm src/config && rmdir src\n"
        )
    )
    code, doc = _avfs(scene, "checkpoint", "save", "-m", "cp")
    assert code == 0, doc
    scene.vault.fork("main", "agent")
    _write_other_half(scene, "agent")
    got = scene.cli(
        "--home", scene.home.path, "--vault", "v:agent", "--json", "checkpoint", "save", "-m", "a"
    )
    assert got.code == 0, got.out
    scene.git("merge", "--ff-only", "agent")
    (scene.mp / "a.txt").write_text("the person's edit\n")
    scene.git("commit", "-qam", "the person's edit")
    _person_commits_and_looks(scene, tmp_path, marker)
    assert _put_back_said(one), one.to_dict()


@pytest.mark.parametrize("by", ["merge", "checkpoint"])
def test_the_checkpoint_or_merge_that_puts_back_says_so(scene: Scene, tmp_path: Path, by: str) -> None:
    """A staged config the work tree showed as its run ended (a ``--no-commit`` run wrote
    it, the person staged it), then taken out of the work tree (in the mount: the agent's
    ``avfs rm`` puts it back itself since gitmodel29):
    the commit that brings the other half (``avfs checkpoint save`` after ``avfs write``)
    puts the staged config back in the mount's index, and its ``--json`` document says so
    (``index_put_back``), not only a later run's; ``avfs merge`` of the agent's fork is
    refused over the staged entry (``dirty_workspace``, merge13), nothing moved, and the
    person's commit runs nothing."""
    marker = scene.ran / f"{by}-fsmonitor"
    if by == "merge":
        scene.vault.fork("main", "agent")
        _write_other_half(scene, "agent")
        got = scene.cli("--home", scene.home.path, "--vault", "v:agent", "--json", "checkpoint", "save")
        assert got.code == 0, got.out
    _ran(scene.attack(_config_half(marker), commit=False))
    scene.git("add", "src/config")  # the person stages what the agent wrote
    # (taken out of the work tree in the mount itself: since gitmodel29 the agent's `avfs
    # rm` puts the staged entry back at once, test_a_staged_half_the_work_tree_showed...)
    (scene.mp / "src" / "config").unlink()
    if by == "merge":
        # (since merge13 a merge over what git staged in the mount and the capture would
        # not record is refused, nothing moved: the other half never arrives this way)
        head = scene.git("rev-parse", "HEAD").stdout
        got = scene.cli("--home", scene.home.path, "--vault", "v:main", "--json", "merge", "agent")
        out = json.loads(got.out)
        assert got.code == 1 and out["error"]["code"] == "dirty_workspace", out
        assert any("src/config".startswith(p) for p in out["error"]["details"]["staged"]), out
        assert scene.git("rev-parse", "HEAD").stdout == head
        _person_commits_and_looks(scene, tmp_path, marker)
        return
    _write_other_half(scene)
    got = scene.cli("--home", scene.home.path, "--vault", "v:main", "--json", "checkpoint", "save")
    out = json.loads(got.out)
    assert got.code == 0, out
    staged = scene.git("diff", "--cached", "--name-only", "HEAD").stdout.split()
    _person_commits_and_looks(scene, tmp_path, marker)
    assert "src/config" not in staged, staged
    validate(out)
    said = out.get("index_put_back")
    assert said is not None and "src/config" in said["paths"], out


@pytest.mark.parametrize(
    ("who", "how"),
    [
        ("agent", "rm"),
        ("person", "rm"),
        ("agent", "mv"),
        ("agent", "lnkrm"),
        ("agent", "lnkmv"),
        ("agent", "lnkrmlink"),
    ],
)
def test_a_staged_half_the_work_tree_showed_then_avfs_rm_then_the_persons_ff_merge(
    scene: Scene, tmp_path: Path, who: str, how: str
) -> None:
    """fix40a's residual (the thirty-eighth round, gitmodel29): the config half is staged
    while the work tree shows it (by the agent inside a ``--no-commit`` run, or by the
    person's ``git add`` of what the agent wrote), so no run's carry-back puts it back; the
    agent's ``avfs rm`` outside any run takes it out of the work tree; the other half comes
    by the person's own ``git merge --ff-only agent`` in the mount (no avfs commit sees
    git's merge). The person's plain ``git commit`` (no ``-a``) recorded both halves: the
    person's ref move is now checked over git's index as a run's carry-back is. ``lnk*``
    (review44 B, the fortieth round): the same through a symlinked parent, ``avfs rm
    lnk/config`` with ``lnk`` -> ``src``: the put-back looked at ``lnk/config`` only;
    ``lnkrmlink`` (review45 A): ``avfs rm lnk/config lnk``, the link gone before the look."""
    marker = scene.ran / f"ffmerge-{who}-{how}-fsmonitor"
    scene.vault.fork("main", "agent")
    _write_other_half(scene, "agent")
    got = scene.cli(
        "--home", scene.home.path, "--vault", "v:agent", "--json", "checkpoint", "save", "-m", "a"
    )
    assert got.code == 0, got.out
    stage = "git add src/config\n" if who == "agent" else ""
    stage += "ln -s src lnk\n" if how.startswith("lnk") else ""
    one = _ran(scene.attack(_config_half(marker) + stage, commit=False))
    assert not _put_back_said(one), one.to_dict()  # (the work tree shows it: it stays staged)
    if who == "person":
        scene.git("add", "src/config")
    where = "lnk/config" if how.startswith("lnk") else "src/config"
    args = (
        ("rm", where, "lnk") if how == "lnkrmlink" else ("rm", where) if how.endswith("rm") else ("mv", where)
    )
    code, doc = _avfs(scene, *(args if args[0] == "rm" else (*args, "notes.txt")))
    assert code == 0, doc
    # (put back where the work tree stopped showing it: staged on main until the commit)
    assert "src/config" not in scene.git("diff", "--cached", "--name-only", "HEAD").stdout
    scene.git("merge", "--ff-only", "agent")
    _person_commits_and_looks(scene, tmp_path, marker)


@pytest.mark.parametrize("how", ["checkout_file_over_dir", "ln"])
def test_a_staged_half_then_a_checkout_of_a_file_over_its_dir_or_a_link_over_it(
    scene: Scene, tmp_path: Path, how: str
) -> None:
    """review43 F3 (the thirty-ninth round): two file commands gitmodel29's put-back did
    not look at. ``avfs checkout C1 -- src`` where C1 holds ``src`` as a file (the path
    was a directory before, a file after: looked at nowhere), and ``avfs ln -s -f X
    src/config`` (no look at all): the staged ``src/config`` the work tree stopped showing
    stayed staged; the person's ``git merge --ff-only agent`` and plain ``git commit``
    recorded both halves, and a clone's ``git status`` in ``src/`` ran the program."""
    marker = scene.ran / f"{how}-fsmonitor"
    code, doc = _avfs(scene, "write", "src", "plain\n")
    assert code == 0, doc
    code, doc = _avfs(scene, "checkpoint", "save", "-m", "src a file")
    assert code == 0, doc
    c1 = scene.vault.workspace("main").tip()
    scene.vault.fork("main", "agent")
    got = scene.cli("--home", scene.home.path, "--vault", "v:agent", "--json", "rm", "src")
    assert got.code == 0, got.out
    _write_other_half(scene, "agent")
    got = scene.cli(
        "--home", scene.home.path, "--vault", "v:agent", "--json", "checkpoint", "save", "-m", "a"
    )
    assert got.code == 0, got.out
    one = _ran(scene.attack("rm -f src\n" + _config_half(marker) + "git add src/config\n", commit=False))
    assert not _put_back_said(one), one.to_dict()  # (the work tree shows it: it stays staged)
    assert "src/config" in scene.git("diff", "--cached", "--name-only", "HEAD").stdout
    if how == "ln":
        code, doc = _avfs(scene, "ln", "-s", "-f", "notes.txt", "src/config")
    else:
        code, doc = _avfs(scene, "checkout", c1, "--", "src")
    assert code == 0, doc
    assert "src/config" not in scene.git("diff", "--cached", "--name-only", "HEAD").stdout
    scene.git("merge", "--ff-only", "agent", check=False)  # (pure FUSE refuses src/refs: git stops)
    _person_commits_and_looks(scene, tmp_path, marker)
