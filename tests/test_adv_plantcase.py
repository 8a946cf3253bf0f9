"""A planted repository spelt as a case-insensitive file system reads it (the review of the
thirty-sixth round, review40 F5).

git's discovery looks up ``HEAD``, ``objects``, ``refs``, ``config`` and ``hooks`` by those
names; on a clone checked out where lookups fold case (macOS's APFS, Windows' NTFS, by
default), ``src/head``, ``src/Objects/``, ``src/REFS/`` and a ``src/Config`` naming
``core.fsmonitor`` are that repository, and the person's plain ``git status`` in ``src``
runs the program. Every check of the planted-repository rule matched the names exactly:
a confined command's files were committed as they were, an ``avfs write`` of each was
let through. NTFS drops trailing dots and spaces, HFS+ ignores some code points: those
spellings are the same names to them (git treats ``.git`` so: ``is_ntfs_dotgit``,
``is_hfs_dotgit``).

The clone here is checked out on Linux, then each entry of ``src`` renamed to the name
such a file system answers git's lookup with (:func:`_as_case_insensitive`: an
independent model of those file systems, not avfs's rule), and git run there.
"""

from __future__ import annotations

import os
import subprocess
import unicodedata
from pathlib import Path

import pytest

from avfs_git.core.errors import InvalidPathError
from avfs_git.core.store import names

from .test_adv_mountfiles import GIT, Scene
from .test_adv_mountfiles import scene as scene  # a mounted fork, both backends, real bwrap

_LOOKED_UP = {n.casefold(): n for n in ("HEAD", "config", "objects", "refs", "hooks", "commondir")}
_HFS_IGNORED = dict.fromkeys([0x200C, 0x200D, 0x200E, 0x200F, 0xFEFF])
# (name as written, the name git looks up) for every spelling below
SPELLINGS = [
    ("head", "HEAD"),
    ("Config", "config"),
    ("OBJECTS", "objects"),
    ("Refs", "refs"),
    ("HEAD.", "HEAD"),  # NTFS: trailing dot
    ("config ", "config"),  # NTFS: trailing space
    ("HE\u200cAD", "HEAD"),  # HFS+: an ignored code point
    ("ref\u017f", "refs"),  # a long s: case-folds to s (APFS; NTFS's upcase table)
    ("hoo\u212as", "hooks"),  # a Kelvin sign: case-folds to k
]


def _fs_name(name: str) -> str | None:
    """The name of git's state that a case-insensitive file system answers a lookup of with
    the entry ``name`` (a model of APFS/HFS+/NTFS, written here apart from avfs's)."""
    key = unicodedata.normalize("NFC", name.translate(_HFS_IGNORED)).casefold().rstrip(". ")
    return _LOOKED_UP.get(key)


def _as_case_insensitive(d: Path) -> None:
    for entry in sorted(os.listdir(d)):
        want = _fs_name(entry)
        if want is not None and want != entry and not (d / want).exists():
            os.rename(d / entry, d / want)


def _clone_and_run_git_there(scene: Scene, tmp_path: Path) -> None:
    """The person clones the vault onto a case-insensitive file system (modelled) and runs
    ``git status`` in ``src`` of every commit."""
    clone = tmp_path / "clone"
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tmp_path))
    subprocess.run([*GIT, "clone", "-q", scene.vault.path, str(clone)], check=True, env=env, timeout=120)
    revs = subprocess.run(
        [*GIT, "rev-list", "--all"], cwd=clone, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    for rev in revs:
        subprocess.run([*GIT, "checkout", "-q", "-f", rev], cwd=clone, env=env, check=True, timeout=120)
        subprocess.run([*GIT, "clean", "-qfdx"], cwd=clone, env=env, check=True, timeout=120)
        if (clone / "src").is_dir():
            _as_case_insensitive(clone / "src")
            subprocess.run([*GIT, "status"], cwd=clone / "src", env=env, capture_output=True, timeout=120)


def _plant(marker: Path, head: str, objects: str, refs: str, config: str) -> dict[str, bytes]:
    return {
        f"src/{head}": b"ref: refs/heads/main\n",
        f"src/{objects}/info/packs": b"",
        f"src/{refs}/heads/x": b"",
        f"src/{config}": (
            "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tworktree = .\n"
            f"\tfsmonitor = touch {marker}; false\n"
        ).encode(),
    }


def _script(files: dict[str, bytes]) -> str:
    out = []
    for path, data in files.items():
        d = path.rpartition("/")[0]
        out.append(f"mkdir -p '{d}' && printf '%s' '{data.decode()}' > '{path}'\n")
    return "".join(out)


def test_state_names_fold_as_case_insensitive_file_systems_do() -> None:
    for written, looked_up in SPELLINGS:
        assert names.git_state_name(written) == looked_up, written
        assert _fs_name(written) == looked_up, written  # (the test's own model agrees)
        assert names.git_dir_of(f"a/b/{written}") == "a/b", written
    assert names.git_dir_of("a/Hooks/pre-commit") == "a"
    for plain in ("configs", "header", "OBJECT~1", "ref", "hook", "xHEAD", "src"):
        assert names.git_state_name(plain) is None, plain


@pytest.mark.parametrize(
    "names",
    [
        ("head", "Objects", "REFS", "Config"),
        ("HEAD.", "objects", "ref\u017f", "config "),
        ("HE\u200cAD", "objects", "refs", "CONFIG"),
    ],
    ids=["case", "ntfs", "hfs"],
)
def test_a_confined_command_s_repository_in_another_case_is_set_aside(
    scene: Scene, tmp_path: Path, names: tuple[str, str, str, str]
) -> None:
    """One plain run writes the four (no git): on main committed as they were, nothing
    set aside, and the clone's ``git status`` ran the program."""
    marker = scene.ran / "case-fsmonitor"
    res = scene.attack(_script(_plant(marker, *names)))
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    assert res.to_dict()["planted_git_dirs"], res.to_dict()  # (main: [])
    _clone_and_run_git_there(scene, tmp_path)
    assert not marker.exists(), "the planted core.fsmonitor ran on a case-insensitive clone"


def test_an_avfs_write_of_a_repository_in_another_case_is_refused(scene: Scene, tmp_path: Path) -> None:
    """``avfs write`` (the agent's file tool) of each, then a checkpoint: the last write is
    refused, nothing of it written (main: all four written and checkpointed)."""
    marker = scene.ran / "write-fsmonitor"
    spec = ["--home", scene.home.path, "--vault", "v:main", "--json"]
    files = list(_plant(marker, "head", "Objects", "REFS", "Config").items())
    for path, data in files[:-1]:
        assert scene.cli(*spec, "write", path, data.decode()).code == 0
    path, data = files[-1]
    got = scene.cli(*spec, "write", path, data.decode())
    assert got.code != 0 and got.json()["error"]["code"] == "invalid_path", got.out
    assert not (scene.mp / path).exists()
    assert scene.cli(*spec, "checkpoint", "save", "-m", "cp").code == 0
    _clone_and_run_git_there(scene, tmp_path)
    assert not marker.exists(), "the planted core.fsmonitor ran on a case-insensitive clone"


def test_the_api_refuses_a_hook_in_a_hooks_directory_in_another_case(scene: Scene) -> None:
    ws = scene.vault.workspace("main")
    for path, data in _plant(scene.ran / "x", "Head", "objects", "Refs", "plain-config").items():
        ws.write(path, data)
    with pytest.raises(InvalidPathError, match="would make src a git repository"):
        ws.write("src/HOOKS/pre-commit", b"#!/bin/sh\ntouch /tmp/x\n", mode=0o100755)  # (main: written)


def test_the_agent_s_own_commit_of_a_repository_in_another_case_is_refused(
    scene: Scene, tmp_path: Path
) -> None:
    """The same four committed by the agent's own git in the run: the carry-back refuses
    the commit (main: carried, the clone's checkout of it ran the program)."""
    marker = scene.ran / "commit-fsmonitor"
    script = _script(_plant(marker, "head", "Objects", "REFS", "Config"))
    res = scene.attack(script + "git add src && git commit -qm 'a library' || true\n")
    assert res.result is not None, res.to_dict()
    assert res.to_dict()["refs_refused"], res.to_dict()  # (main: [])
    _clone_and_run_git_there(scene, tmp_path)
    assert not marker.exists(), "the planted core.fsmonitor ran on a case-insensitive clone"
