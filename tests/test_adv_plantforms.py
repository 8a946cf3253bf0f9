"""A planted repository in the forms git's discovery takes and plant2's rule did not, and a
refused commit brought back by `revert` (the review of the thirty-fourth round).

git's ``is_git_directory`` asks ``access(objects, X_OK)`` and ``access(refs, X_OK)``: a
link is followed and an executable file does. A `src/` with `HEAD`, an executable file
`objects`, a link `refs -> .` and a config naming ``core.fsmonitor`` ran the program in
the person's plain `git status` there, written by the API, by a confined command, or
committed by the agent's own git (the carry-back asked the same rule). And `avfs revert`
of a commit the carry-back refused (its objects stay in the vault, its id printed by the
agent) made the fork's tree hold the planted config again: restore and checkout refused
such ids, revert did not."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from avfs_git.core.errors import InvalidPathError
from avfs_git.core.workspace import liveswap

from .test_adv_mountfiles import Scene
from .test_adv_mountfiles import scene as scene
from .test_adv_planted import _person_in
from .test_adv_plantwriters import _clone_and_check_out_everything, bare_plant


def _config(marker: Path) -> bytes:
    return (
        "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tworktree = .\n"
        f"\tfsmonitor = touch {marker}; false\n"
    ).encode()


def _plant_script(marker: Path) -> str:
    return (
        "mkdir -p src && printf 'ref: refs/heads/main\\n' > src/HEAD\n"
        "printf '#!/bin/sh\\n' > src/objects && chmod 755 src/objects && ln -s . src/refs\n"
        "printf '[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n\\tworktree = .\\n"
        f"\\tfsmonitor = touch {marker}; false\\n' > src/config\n"
    )


def test_an_executable_objects_file_and_a_refs_link_written_by_the_api_are_refused(scene: Scene) -> None:
    marker = scene.ran / "api-fsmonitor"
    ws = scene.vault.workspace("main")
    ws.write("src/HEAD", b"ref: refs/heads/main\n")
    ws.write("src/objects", b"#!/bin/sh\n", mode=0o100755)
    ws.symlink(".", "src/refs")
    with pytest.raises(InvalidPathError, match="would make src a git repository"):
        ws.write("src/config", _config(marker))  # (main: written)
    _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host (API write)"


def test_an_executable_objects_file_and_a_refs_link_from_a_confined_command_are_set_aside(
    scene: Scene,
) -> None:
    marker = scene.ran / "exec-fsmonitor"
    res = scene.attack(_plant_script(marker))
    assert res.result is not None, res.to_dict()
    _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host (proxy exec)"


def test_an_executable_objects_file_and_a_refs_link_committed_by_the_agent_are_refused(
    scene: Scene, tmp_path: Path
) -> None:
    marker = scene.ran / "history-fsmonitor"
    res = scene.attack(_plant_script(marker) + "git add src && git commit -qm 'a library' -q || true\n")
    assert res.result is not None, res.to_dict()
    _clone_and_check_out_everything(scene, tmp_path)
    assert not marker.exists(), "the planted core.fsmonitor ran on the host (commit carried)"


def test_a_revert_of_a_refused_commit_brings_no_planted_config_back(scene: Scene) -> None:
    marker = scene.ran / "revert-fsmonitor"
    plain = "[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n"
    res = scene.attack(
        bare_plant(marker)
        + "git add src && git commit -qm 'r1'\n"
        + f"printf '{plain}' > src/config && git add src && git commit -qm 'r2' && git log --format=%H -1\n"
    )
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    assert res.to_dict()["refs_refused"], res.to_dict()  # (the carry-back refused both)
    r2 = res.result.stdout.strip().splitlines()[-1]
    got = scene.cli("--home", scene.home.path, "--vault", "v:main", "--json", "revert", r2)
    assert got.code != 0 and got.json()["error"]["code"] == "invalid_path", got  # (main: 0)
    _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host (revert of a refused commit)"


def test_an_adoption_never_reads_a_huge_sparse_file_or_a_fifo_swapped_in(tmp_path: Path) -> None:
    """``liveswap._held`` read whatever came out of a swap whole into memory: a confined
    command's `truncate -s 100G` of a followed path (sparse: no quota) in the window made
    the host process read 100 GB; a FIFO renamed in after the lstat raised. Now both are
    the person's (left in place, the path unadopted), read no further."""
    big = tmp_path / "big"
    with open(big, "wb") as fh:
        fh.truncate(liveswap.MAX_HELD + 1)
    with liveswap._held(str(big)) as (found, _, _lease):
        assert found == liveswap.IN_HANDS  # (main: 512 MiB of zeros read)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with liveswap._held(str(fifo)) as (found, _, _lease):
        assert found == liveswap.IN_HANDS
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
