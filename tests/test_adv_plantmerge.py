"""Half of a planted repository in each of two forks, joined by a merge (docs/security.md,
"Planted git state from every writer, and history"; the thirty-fourth round, attack26).

From the agent's side, on a real mount of the target (overlay and pure FUSE): one confined
``proxy exec`` in fork ``a`` makes a bare-looking ``src/`` (``HEAD``, ``objects/``,
``refs/``: a plain repository, no config), another in fork ``b`` a ``src/config`` naming
``core.fsmonitor`` (no ``HEAD``: not a repository). Each is let through (neither half runs
anything), and each run's commit is carried. Then the person acts as usual: ``avfs merge``
of both into the mounted fork (or ``avfs pull`` of one pushed to a remote, or a
``checkpoint save`` that rebases a workspace holding one half onto its fork moved to the
other) and plain ``git status`` in ``MOUNT/src``. On main the merged tree held the whole
repository, and the person's ``git status`` ran the planted program on the host.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.proxy.envelope import ExecRequest
from avfs_git.proxy.execute import execute

from .test_adv_mountfiles import IDENTITY, Scene
from .test_adv_mountfiles import scene as scene  # a mounted fork, both backends, real bwrap
from .test_adv_planted import _person_in
from .test_adv_plantwriters import _clone_and_check_out_everything

BARE_HALF = (
    "mkdir -p src/objects/info src/refs/heads && : > src/objects/info/packs && : > src/refs/heads/.keep\n"
    "printf 'ref: refs/heads/main\\n' > src/HEAD\n"
)


def _config_half(marker: Path) -> str:
    return (
        "mkdir -p src && printf '[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n"
        f"\\tworktree = .\\n\\tfsmonitor = touch {marker}; false\\n' > src/config\n"
    )


def _agent_in(scene: Scene, fork: str, script: str) -> None:
    """The agent's confined exec in ``fork`` (not mounted: mounted for the call): its
    changes committed on the fork's branch."""
    res = execute(scene.home, scene.vault, fork, ExecRequest(shell=IDENTITY + script))
    assert res.confinement is not None and res.confinement.kind == "bwrap", res.to_dict()
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    assert res.commit is not None and not res.to_dict().get("refs_refused"), res.to_dict()


def _avfs(scene: Scene, *args: str) -> tuple[int, dict[str, object]]:
    got = scene.cli("--home", scene.home.path, "--vault", "v:main", "--json", *args)
    doc: dict[str, object] = json.loads(got.out)
    return got.code, doc


def _two_halves(scene: Scene, marker: Path, edit: dict[str, str] | None = None) -> None:
    edit = edit or {}
    for fork in ("a", "b"):
        scene.vault.fork("main", fork)
    _agent_in(scene, "a", BARE_HALF + edit.get("a", ""))
    _agent_in(scene, "b", _config_half(marker) + edit.get("b", ""))


def _refused(code: int, doc: dict[str, object]) -> None:
    assert code == 1, doc
    err = doc["error"]
    assert isinstance(err, dict) and err["code"] == "invalid_path", doc
    assert "src/config" in err["details"]["found"], doc


@pytest.mark.parametrize("merge", ["trivial", "libgit2"])
def test_two_forks_each_holding_half_a_repository_merged_into_the_mounted_fork(
    scene: Scene, merge: str
) -> None:
    """``avfs merge a`` then ``avfs merge b`` into the mounted ``main``: the first lands (a
    plain repository), the second is refused with nothing moved (``invalid_path``,
    ``details.found`` naming the config), and the person's ``git status`` in
    ``MOUNT/src`` runs nothing. ``libgit2``: both forks also change one file (its first
    and last lines), which the trivial merge leaves to libgit2's."""
    marker = scene.ran / f"merge-{merge}-fsmonitor"
    edit = {"a": "", "b": ""}
    if merge == "libgit2":
        scene.vault.workspace("main").write("lines.txt", "".join(f"{i}\n" for i in range(9)).encode())
        checkpoint.save(scene.vault, "main", message="lines")
        edit = {"a": "sed -i 1s/0/zero/ lines.txt\n", "b": "sed -i 9s/8/eight/ lines.txt\n"}
    _two_halves(scene, marker, edit)
    tip = scene.git("rev-parse", "HEAD").stdout.strip()
    code, doc = _avfs(scene, "merge", "a")
    assert code == 0, doc
    moved = scene.git("rev-parse", "HEAD").stdout.strip()
    assert moved != tip
    code, doc = _avfs(scene, "merge", "b")
    _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    _refused(code, doc)
    assert scene.git("rev-parse", "HEAD").stdout.strip() == moved
    assert not (scene.mp / "src/config").exists()
    assert (scene.mp / "src/HEAD").read_bytes() == b"ref: refs/heads/main\n"
    # a plain change of the same directory still merges
    scene.vault.fork("main", "c")
    _agent_in(scene, "c", "printf 'ref: refs/heads/other\\n' > src/HEAD\n")
    code, doc = _avfs(scene, "merge", "c")
    assert code == 0, doc
    scene.git("status", "--porcelain")


def test_a_pull_of_the_other_half_from_a_remote(scene: Scene, tmp_path: Path) -> None:
    """Fork ``a``'s half pushed to a remote (``avfs push``), ``b``'s merged into ``main``;
    the person's ``avfs pull origin a``: refused, nothing moved, nothing run."""
    marker = scene.ran / "pull-fsmonitor"
    _two_halves(scene, marker)
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    assert _avfs(scene, "remote", "add", "origin", str(bare))[0] == 0
    code, doc = _avfs(scene, "--vault", "v:a", "push", "origin", "a")
    assert code == 0, doc
    code, doc = _avfs(scene, "merge", "b")
    assert code == 0, doc
    tip = scene.git("rev-parse", "HEAD").stdout.strip()
    code, doc = _avfs(scene, "pull", "origin", "a")
    _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    _refused(code, doc)
    assert scene.git("rev-parse", "HEAD").stdout.strip() == tip


def test_a_checkpoint_rebased_onto_the_other_half(scene: Scene, tmp_path: Path) -> None:
    """The agent writes the config half into fork ``c`` (uncheckpointed); fork ``a``'s
    commit (the bare half) is made ``c``'s by another hand (``git update-ref`` in the
    vault, as a push into it); the person's ``avfs checkpoint save`` on ``c`` rebases the
    changes onto it: refused, the changes kept, and no commit of the vault, checked out in
    a clone, runs anything."""
    marker = scene.ran / "rebase-fsmonitor"
    scene.vault.fork("main", "a")
    scene.vault.fork("main", "c")
    _agent_in(scene, "a", BARE_HALF)
    config = (
        "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tworktree = .\n"
        f"\tfsmonitor = touch {marker}; false\n"
    )
    scene.vault.workspace("c").write("src/config", config.encode())
    subprocess.run(
        ["git", "--git-dir", scene.vault.path, "update-ref", "refs/heads/c", "refs/heads/a"], check=True
    )
    tip = subprocess.run(
        ["git", "--git-dir", scene.vault.path, "rev-parse", "refs/heads/c"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    code, doc = _avfs(scene, "--vault", "v:c", "checkpoint", "save", "-m", "the person's")
    _clone_and_check_out_everything(scene, tmp_path)
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    _refused(code, doc)
    now = subprocess.run(
        ["git", "--git-dir", scene.vault.path, "rev-parse", "refs/heads/c"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert now == tip
    assert scene.vault.workspace("c").read("src/config") == config.encode()
