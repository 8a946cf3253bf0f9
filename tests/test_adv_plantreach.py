"""Two escapes of a planted repository past plant3's writers (the thirty-fifth round's
review38; fixed by plant4), through real confined ``proxy exec`` runs on a real mount of
the fork (overlay and pure FUSE) and the person's plain ``git`` on the host.

- A commit the carry-back refused, pushed by the agent to the vault's remote: ``avfs
  fetch`` brings the branch and any tag into its history; ``avfs checkpoint restore`` by
  its id (a tag on it counted as reaching), by the tag's name, or by ``remotes/origin/...``
  (taken for ``refs/remotes/remotes/...``: no such ref, let through) made it the fork's.
- A ``src/config`` staged and removed from the work tree, where the bare half (``HEAD``,
  ``objects/``, ``refs/``) stays: neither half a repository, the index's looked at over
  ``HEAD`` before the run's record, which then committed the work tree's half; the
  person's plain ``git commit`` added the config. On main each ran the planted program.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .test_adv_mountfiles import Scene
from .test_adv_mountfiles import scene as scene  # a mounted fork, both backends, real bwrap
from .test_adv_planted import _person_in
from .test_adv_plantmerge import BARE_HALF, _avfs, _config_half, _refused
from .test_adv_plantrest import _pushed_by_the_agent, _vault_git
from .test_adv_plantwriters import _clone_and_check_out_everything


@pytest.mark.parametrize("how", ["id", "tag", "tags/tag", "remotes/", "refs/remotes/", "checkout"])
def test_a_restore_of_the_pushed_commit_by_its_tag_id_or_remotes_name(
    scene: Scene, tmp_path: Path, how: str
) -> None:
    """The agent's refused commit pushed to ``origin`` as ``agent``, a tag ``v9`` on it
    there; ``avfs fetch origin`` brings both (git's own default: tags into the fetched
    history). Every name of it is refused now (``invalid_path``), the fork unmoved."""
    marker = scene.ran / f"tag-{how.replace('/', '-')}-fsmonitor"
    tip, remote = _pushed_by_the_agent(scene, tmp_path, marker)
    agents = _vault_git(scene, "--git-dir", str(remote), "rev-parse", "refs/heads/agent")
    _vault_git(scene, "--git-dir", str(remote), "tag", "v9", agents)
    assert _avfs(scene, "fetch", "origin")[0] == 0
    assert _vault_git(scene, "rev-parse", "refs/tags/v9") == agents  # (the tag came)
    rev = {
        "id": agents,
        "tag": "v9",
        "tags/tag": "tags/v9~0",
        "remotes/": "remotes/origin/agent",
        "refs/remotes/": "refs/remotes/origin/agent",
        "checkout": "v9",
    }[how]
    args = ["checkout", "src", "--from", rev] if how == "checkout" else ["checkpoint", "restore", rev]
    code, doc = _avfs(scene, *args)
    if (scene.mp / "src").is_dir():  # (main: it brought it)
        _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    _refused(code, doc)
    assert scene.git("rev-parse", "HEAD").stdout.strip() == tip


def test_a_tag_of_plain_history_still_restores(scene: Scene, tmp_path: Path) -> None:
    """Only a fork or a checkpoint reaches for the rule now, but a commit whose tree holds
    no repository is not refused by any name: ``checkpoint restore`` of a fetched tag."""
    tip = scene.git("rev-parse", "HEAD").stdout.strip()
    remote = tmp_path / "plain.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    assert _avfs(scene, "remote", "add", "origin", str(remote))[0] == 0
    _vault_git(scene, "push", "-q", str(remote), f"{tip}:refs/heads/old")
    _vault_git(scene, "--git-dir", str(remote), "tag", "v1", tip)
    (scene.mp / "later.txt").write_text("later\n")
    assert _avfs(scene, "checkpoint", "save", "-m", "later")[0] == 0
    assert _avfs(scene, "fetch", "origin")[0] == 0
    code, doc = _avfs(scene, "checkpoint", "restore", "v1")
    assert code == 0, doc
    assert scene.git("rev-parse", "HEAD").stdout.strip() == tip
    assert not (scene.mp / "later.txt").exists()


@pytest.mark.parametrize("commit", [True, False])
@pytest.mark.parametrize("staged", ["config", "bare"])
def test_one_half_staged_and_taken_out_of_the_work_tree_the_other_left_there(
    scene: Scene, tmp_path: Path, commit: bool, staged: str
) -> None:
    """``git add src/config && rm src/config`` with the bare half left in the work tree (or
    the bare half staged and removed, the config left): the run's record (or the person's
    checkpoint, ``--no-commit``) commits the work tree's half, then the person's plain ``git
    commit`` in the mount the index's. The staged half is put back now (``refs_refused``,
    ``index``) once the record is made; no commit of the vault holds both halves."""
    marker = scene.ran / f"staged-{staged}-{commit}-fsmonitor"
    both = BARE_HALF + _config_half(marker)
    take = (
        "git add src/config && rm src/config"
        if staged == "config"
        else "git add -f src/HEAD src/objects src/refs && rm -r src/HEAD src/objects src/refs"
    )
    res = scene.attack(both + take + "\n", commit=commit)
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    reasons = [r.get("reason") or "" for r in res.to_dict().get("refs_refused") or []]
    if not commit:
        assert _avfs(scene, "checkpoint", "save", "-m", "the person's")[0] == 0
    person = ["-c", "user.name=P", "-c", "user.email=p@example.com", "commit", "-qm", "the person's"]
    scene.git(*person, check=False)
    if (scene.mp / "src").is_dir():
        _person_in(scene, "src")
    _clone_and_check_out_everything(scene, tmp_path)
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    assert any("staged file(s) that make a git repository" in r for r in reasons), reasons
    held = scene.git("ls-tree", "-r", "--name-only", "HEAD", "--", "src").stdout.split()
    assert not ("src/config" in held and "src/HEAD" in held), held


@pytest.mark.parametrize("first", ["bare", "config"])
def test_the_halves_from_two_runs(scene: Scene, tmp_path: Path, first: str) -> None:
    """One half from one run (``--no-commit``: the bare half left uncheckpointed in the work
    tree, or the config staged and removed), the other from the next, committed by its
    record: the staged config is looked at over the work tree as it is after the record,
    whichever run wrote the other half (the second run's index unchanged: its write of a
    name of git's own state asks for the look)."""
    marker = scene.ran / f"two-runs-{first}-fsmonitor"
    config = _config_half(marker) + "git add src/config && rm src/config\n"
    scripts = [BARE_HALF, config] if first == "bare" else [config, BARE_HALF]
    one = scene.attack(scripts[0], commit=False)
    assert one.result is not None and one.result.exit_code == 0, one.to_dict()
    res = scene.attack(scripts[1])
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    scene.git("-c", "user.name=P", "-c", "user.email=p@example.com", "commit", "-qm", "p", check=False)
    if (scene.mp / "src").is_dir():
        _person_in(scene, "src")
    _clone_and_check_out_everything(scene, tmp_path)
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    # (the config staged first and taken out of the work tree: the run that staged it puts
    # it back, as the work tree does not show it, the thirty-seventh round's review40)
    runs = (one, res) if first == "config" else (res,)
    reasons = [r.get("reason") or "" for run in runs for r in run.to_dict().get("refs_refused") or []]
    said = ("staged file(s) that make a git repository", "that the work tree does not show")
    assert any(s in r for r in reasons for s in said[: 2 if first == "config" else 1]), reasons
