"""`avfs diff` against `git diff` on libgit2's own test repositories (``tests/resources``
of libgit2 1.5.1's source, from Debian's archive: ``realdata.libgit2_resources``), each
cloned as a vault (`avfs vault clone`): every branch tip against its first parent and
against the first branch's tip, as a patch, ``--stat`` and ``--name-status``, byte for
byte what git prints on the same repository.

Found here (the twenty-ninth round, realdata4; 636 comparisons over the 75 repositories
that clone, 98 differed before): a submodule's side stopped `avfs diff` ("blob ... is
missing from the vault": ``submodules``, ``typechanges``, ``push_src``, ``submod2``; "is a
commit, not a blob": ``rebase-submodule``); a file made a symlink's one patch (git prints
a deletion and an addition: ``unsymlinked.git``); an exact rename without ``similarity
index 100%`` (``renames``) and, with its exec bit changed, no rename at all
(``revert-rename.git``); ``---``/``+++`` lines around an empty file added
(``twowaymerge.git``); `--name-status`'s ``R`` for git's ``R100``; `--stat` graphs cut at 40 columns where git fits them
to 80, a blank after a count of 0, ``Bin`` without the sizes, ``0 files changed`` for an
empty diff, and a binary file's ``0 insertions(+), 0 deletions(-)`` left out.

Taken up in the thirtieth round (realdata5): `--stat`'s and `--name-status`'s names
were avfs's own display (``nasty``'s backslashes and UTF-8 unquoted; compared here with
``core.quotePath=false``, ``nasty``'s not at all, and a name too long for `--stat`'s line,
of wide characters, cut by git inside a character): now git's quoting, as
``core.quotePath`` says (on by default; the vault's config set false for two repositories).
And git pairs a file removed with one added at
50 % similar content (``R085``, ``similarity index 85%``), where avfs paired only the same
content: four pairs (``cherrypick``'s two, ``diff_format_email``'s, ``renames``'), 12
outputs, differed; now compared like the rest (:mod:`avfs_git.core.store.similar`: git's
own pairing and score; libgit2's ``find_similar`` scored 6 of the 9 renames otherwise).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from . import realdata

# repositories whose diffs differed (each for a reason the docstring names), and a few that
# never did (a control: the comparison is not vacuous)
REPOS = [
    "submodules.git",
    "typechanges/.gitted",
    "push_src/.gitted",
    "rebase-submodule/.gitted",
    "unsymlinked.git",
    "revert-rename.git",
    "twowaymerge.git",
    "nasty/.gitted",
    "testrepo/.gitted",
    "diff_format_email/.gitted",
    "renames/.gitted",
    "cherrypick/.gitted",
    "revwalk.git",
    "binaryunicode/.gitted",
    "attr/.gitted",
]
# pairs whose diff holds a rename git finds by similarity (compared: the count keeps them in)
SIMILAR_RENAMES = {"cherrypick/.gitted": 2, "diff_format_email/.gitted": 1, "renames/.gitted": 1}
FLAGS: list[list[str]] = [[], ["--stat"], ["--name-status"]]
# names git quotes (``".\\\\.GIT\\\\foobar"``; testrepo's 100 x U+53D7 under core.quotePath):
# --stat's and --name-status's names were avfs's own display until realdata5
QUOTED_NAMES = {"nasty/.gitted", "testrepo/.gitted"}


@pytest.fixture(scope="module")
def resources() -> dict[str, Path]:
    return {str(p).split("/tests/resources/", 1)[1]: p for p in realdata.libgit2_resources()}


def _git(git_dir: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), *args], capture_output=True, check=True, timeout=120
    ).stdout


def _pairs(git_dir: Path) -> list[tuple[str, str]]:
    tips = list(
        dict.fromkeys(_git(git_dir, "for-each-ref", "--format=%(objectname)", "refs/heads").decode().split())
    )
    pairs = []
    for tip in tips[:8]:
        parent = (
            subprocess.run(
                ["git", "--git-dir", str(git_dir), "rev-parse", "-q", "--verify", tip + "^"],
                capture_output=True,
            )
            .stdout.decode()
            .strip()
        )
        if parent:
            pairs.append((parent, tip))
    return pairs + [(tips[0], t) for t in tips[1:8]]


@pytest.mark.parametrize("repo", REPOS)
def test_avfs_diff_of_a_fixture_is_git_diff(
    repo: str, resources: dict[str, Path], home: Any, cli: Any
) -> None:
    git_dir = resources[repo]
    r = cli("vault", "clone", str(git_dir), "fx")
    assert r.code == 0, r.err
    compared, similar = 0, 0
    for a, b in _pairs(git_dir):
        # (a rename git finds by similar content: git's own pairing and score since realdata5)
        similar += b"\nR0" in b"\n" + _git(git_dir, "diff", "--name-status", a, b)
        for flags in FLAGS:
            # every name as git quotes it (core.quotePath on, git's default; --stat's and
            # --name-status's names were avfs's own until realdata5: nasty's backslashes and
            # testrepo's UTF-8 unquoted, compared with core.quotePath=false, nasty's not at all)
            want = _git(git_dir, "diff", "--no-ext-diff", "--no-color", "--no-textconv", *flags, a, b)
            got = cli("--vault", "fx", "diff", *flags, a, b)
            assert got.code == 0, (flags, a, b, got.err)
            assert got.out_bytes == want, (repo, flags, a, b)
            compared += 1
    assert compared >= 3
    assert similar == SIMILAR_RENAMES.get(repo, 0)
    if repo in QUOTED_NAMES:
        # the vault's core.quotePath false: UTF-8 names as they are, a backslash still quoted
        vault_dir = home.vault_path("fx")
        subprocess.run(["git", "--git-dir", vault_dir, "config", "core.quotePath", "false"], check=True)
        for a, b in _pairs(git_dir):
            want = _git(git_dir, "-c", "core.quotePath=false", "diff", "--name-status", a, b)
            got = cli("--vault", "fx", "diff", "--name-status", a, b)
            assert got.out_bytes == want, (a, b)
    if repo == "nasty/.gitted":
        # its trees hold `.git` names `git fsck --strict` refuses (the clone took them as
        # `git clone` does, without transfer.fsckObjects): not left for the teardown's fsck
        assert cli("vault", "delete", "fx", "--force").code == 0


def test_a_patch_of_latin1_text_keeps_its_bytes(tmp_path: Path, home: Any, cli: Any) -> None:
    """pygit2 1.15.1's ``encoding`` fixture (``iso-8859-1.txt``: ``H\\xf8gsberg``): `avfs
    diff` printed U+FFFD's three bytes for the byte git prints as it is (pygit2's
    ``Patch.text``); now the patch's bytes, git's."""
    git_dir = next(d for d in realdata.pygit2_fixture_repos(tmp_path / "pg") if "encoding" in str(d))
    assert cli("vault", "clone", str(git_dir), "enc").code == 0
    tips = _git(git_dir, "rev-list", "--all").decode().split()
    compared = 0
    for tip in tips:
        parents = _git(git_dir, "rev-list", "--parents", "-n", "1", tip).decode().split()[1:]
        for parent in parents:
            want = _git(git_dir, "diff", parent, tip)
            got = cli("--vault", "enc", "diff", parent, tip)
            assert got.code == 0, got.err
            assert got.out_bytes == want, (parent, tip)
            compared += b"\xf8" in want
    assert compared >= 1
