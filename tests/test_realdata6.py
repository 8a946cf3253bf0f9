"""Real histories' diffs through `avfs diff`, `show` and `log -p`, byte for byte git's
(the thirty-first round, realdata6; docs/testing.md, "Hand-written stand-ins, each
against the real thing"). Histories of released sdists (``realdata.history``: one commit
a release, as the files really changed), every pair of releases diffed by both:

- Renames of the same content (``R100``) where several deleted files have it: avfs took
  the first deleted one by path, git (``find_identical_files``) the first whose name
  after the last ``/`` is the added file's. packaging 23.0 moved ``packaging/`` into
  ``src/``: avfs said ``docs/_static/.empty => src/packaging/py.typed`` (both empty) and
  ``packaging/py.typed`` deleted, git ``{packaging => src/packaging}/py.typed`` and
  ``docs/_static/.empty`` deleted.
- Where an added or removed block could sit at several places (a decorator above a new
  function, the same above the next one), libgit2 put it where git does only with its
  indent heuristic, which git uses by default since 2.14 (``diff.indentHeuristic``) and
  libgit2 only when asked: the patches of 9 of the 10 pairs of attrs 22.2.0 ... 24.2.0
  and of 5 of the 15 of packaging 21.3 ... 24.0 differed (a hunk a line apart, ``@@
  -695,6`` for git's ``@@ -694,6``, its first and last line swapped).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from . import realdata

pytestmark = pytest.mark.slow


def _git(work: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", "-C", str(work), *args], capture_output=True, check=True, timeout=120
    ).stdout


@pytest.fixture(scope="module")
def packaging(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return realdata.history("packaging", ["21.3", "23.0"], tmp_path_factory.mktemp("pk"), aggressive=False)


@pytest.fixture(scope="module")
def attrs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return realdata.history("attrs", ["23.2.0", "24.1.0"], tmp_path_factory.mktemp("at"), aggressive=False)


def test_a_move_among_files_of_the_same_content_pairs_the_one_git_pairs(
    packaging: Path, home: Any, cli: Any
) -> None:
    """packaging 21.3 -> 23.0 (``packaging/`` moved into ``src/``; two empty files among
    the deleted): `--name-status`, `--stat` and the patch are git's. On main the empty
    ``py.typed`` was paired with ``docs/_static/.empty``."""
    assert cli("vault", "clone", str(packaging / ".git"), "pk").code == 0
    names = _git(packaging, "diff", "--name-status", "v21.3", "v23.0").decode()
    assert "R100\tpackaging/py.typed\tsrc/packaging/py.typed\n" in names  # (the case itself)
    assert "D\tdocs/_static/.empty\n" in names
    for flags in (["--name-status"], ["--stat"], []):
        want = _git(packaging, "diff", "--no-color", *flags, "v21.3", "v23.0")
        got = cli("--vault", "pk", "diff", *flags, "v21.3", "v23.0")
        assert got.code == 0, got.err
        assert got.out_bytes == want, flags


def test_patches_place_a_block_where_git_s_indent_heuristic_does(attrs: Path, home: Any, cli: Any) -> None:
    """attrs 23.2.0 -> 24.1.0: `avfs diff`, `show` and `log -p` are git's byte for byte
    (on main 3 hunks of ``tests/`` a line apart, a decorator line placed at the other end
    of its block); with
    ``diff.indentHeuristic`` false in the vault's config, `git diff` with that config."""
    assert cli("vault", "clone", str(attrs / ".git"), "at").code == 0
    want = _git(attrs, "diff", "--no-color", "v23.2.0", "v24.1.0")
    plain = _git(attrs, "diff", "--no-color", "--no-indent-heuristic", "v23.2.0", "v24.1.0")
    assert want != plain  # (the case itself: the heuristic moves hunks here)
    got = cli("--vault", "at", "diff", "v23.2.0", "v24.1.0")
    assert got.code == 0, got.err
    assert got.out_bytes == want
    shown = cli("--vault", "at", "show", "v24.1.0")
    assert shown.code == 0, shown.err
    assert shown.out_bytes.endswith(want.lstrip(b"\n"))
    logged = cli("--vault", "at", "log", "-p", "-n", "1", "v24.1.0")
    assert logged.code == 0, logged.err
    assert want in logged.out_bytes
    vault = Path(home.vault_path("at"))
    subprocess.run(["git", "--git-dir", str(vault), "config", "diff.indentHeuristic", "false"], check=True)
    got = cli("--vault", "at", "diff", "v23.2.0", "v24.1.0")
    assert got.code == 0, got.err
    assert got.out_bytes == plain
