"""A ``.gitignore`` line git's matcher takes hours over, planted by a confined command
(docs/security.md, "A `.gitignore` line git's matcher takes hours over"; found by attack24
in the thirty-second round, built in the thirty-third, NAME=wildmatch1).

git's ``wildmatch`` backtracks over every way a pattern's ``**/`` segments can share a
path's directories (2.39 here; 2.41's fix leaves ``**/`` x30 past a minute): a real
confined ``proxy exec`` writing a one-line ``.gitignore`` of ``**/`` x10 then ``x`` and a
file 30 directories down returned after 234 s with the fork's exec lock held, and x20 would
hold it for days. Now every ``git check-ignore`` avfs runs is bounded by
``$AVFS_IGNORE_WAIT`` (30 s by default; 3 s here, so the test is quick): past it git is
killed and what asked fails with ``ignore_too_slow``, naming the line, as a quota refusal
fails the run's record -- nothing recorded, nothing lost (the run's files stay in the fork,
uncheckpointed), the lock released, and the fork records them once the line is fixed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.mount import untracked
from avfs_git.mount.index import index_bytes
from avfs_git.proxy.envelope import ExecRequest
from avfs_git.proxy.execute import execute

from .test_adv_mountfiles import Scene
from .test_adv_mountfiles import scene as scene

LINE = "**/" * 20 + "x"
DEEP = "/".join(["d"] * 30) + "/f.txt"
SCRIPT = f"""
printf '%s\\n' '{LINE}' > .gitignore
mkdir -p {DEEP.rsplit("/", 1)[0]}
echo bottom > {DEEP}
echo kept > ok.txt
"""


@pytest.fixture(autouse=True)
def _small_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVFS_IGNORE_WAIT", "3")


def _too_slow(err: dict[str, Any]) -> None:
    assert err["code"] == "ignore_too_slow", err
    assert err["details"]["file"] == ".gitignore" and err["details"]["line"] == 1, err
    assert err["details"]["pattern"] == LINE, err
    assert "line 1 of .gitignore" in err["message"], err


def test_a_gitignore_line_git_backtracks_over_holds_no_exec_status_or_checkpoint(
    scene: Scene, cli_proc: Any
) -> None:
    res = scene.attack(SCRIPT)
    doc = res.to_dict()
    assert res.result is not None and res.result.exit_code == 0, doc  # the command ran
    # the run's record failed within the bound, naming the line (before: 234 s at x10)
    assert doc["error"] is not None, doc
    _too_slow(doc["error"])
    assert not doc.get("commit"), doc
    ws = scene.vault.workspace("main")  # nothing lost: the run's files stay in the fork
    assert ws.read(DEEP) == b"bottom\n" and ws.read("ok.txt") == b"kept\n"
    assert ws.read(".gitignore") == (LINE + "\n").encode()
    spec = ["--home", scene.home.path, "--vault", "v:main"]
    # the person's `avfs status` in a process of its own: git asked, stopped at the bound
    got = cli_proc(*spec, "--json", "status")
    assert got.code == 1, (got.out, got.err)
    _too_slow(json.loads(got.out or got.err)["error"])
    got = scene.cli(*spec, "--json", "checkpoint", "save", "-m", "the person's")
    assert got.code == 1, got.out
    _too_slow(json.loads(got.out)["error"])
    # the exec lock was released: a second exec answers (not busy); its record before the
    # command cannot be taken, so it does not run
    nxt = execute(scene.home, scene.vault, "main", ExecRequest(argv=("true",)))
    assert nxt.error is not None, nxt.to_dict()
    _too_slow(nxt.to_dict()["error"])
    # one that commits nothing runs, and mends the line; then the fork records everything
    ws.write("fix.sh", b"printf 'build/\\n' > .gitignore\n")
    fix = execute(scene.home, scene.vault, "main", ExecRequest(shell="sh fix.sh", commit=False))
    assert fix.success, fix.to_dict()
    got = scene.cli(*spec, "--json", "checkpoint", "save", "-m", "the person's")
    assert got.code == 0, got.out
    got = scene.cli(*spec, "--json", "status")
    assert got.code == 0 and json.loads(got.out)["clean"], got.out
    tip = scene.vault.workspace("main").tip()
    assert tip is not None
    store = scene.vault.store
    tree = store.commit_tree(tip)
    for path, data in ((DEEP, b"bottom\n"), ("ok.txt", b"kept\n")):
        found = store.tree_lookup(tree, path)
        assert found is not None and store.blob_data(found[0]) == data, path
    scene.person_acts("wildmatch")


def test_a_deep_ignored_file_is_answered_as_git_answers(scene: Scene) -> None:
    """The bound changes no answer git gives within it: the same tree with a line of two
    ``**`` is recorded, its ignored file left out. (git 2.39's ``check-ignore --verbose``
    dies of SIGSEGV on a matched path 24 directories deep or more: the run's record and
    every status of the fork failed, internal; its plain answer is asked then.)"""
    for line in ("**/d/**/f.txt", "f.txt"):
        res = scene.attack(SCRIPT.replace(LINE, line) + f"echo {line} > mark.txt\n")
        doc = res.to_dict()
        assert res.success and doc["error"] is None, doc
        paths = {c["path"] for c in doc["changes"]}
        assert "mark.txt" in paths and DEEP not in paths, paths
        spec = ["--home", scene.home.path, "--vault", "v:main"]
        got = scene.cli(*spec, "--json", "status")
        assert got.code == 0 and DEEP not in got.out, got.out


def test_the_untracked_cache_is_made_within_the_bound(vault: Any, tmp_path: Path) -> None:
    """The mount's untracked cache is git's ``status`` on a skeleton of the tree with the
    ``.gitignore`` files the fork shows: with the line over a deep tree it was as slow as
    git's matcher; now it gives up at the bound (no extension: git lists the directories
    itself, as before)."""
    ws = vault.workspace("main")
    ws.write(DEEP, b"bottom\n")
    checkpoint.save(vault, "main", message="deep")
    ws = vault.workspace("main")
    skeleton: list[tuple[str, str | None]] = []
    data = index_bytes(vault, ws.base, lambda p, m, o: (1, 1, 1, 0, 0, 1), "tok", skeleton=skeleton)
    own, mp = tmp_path / "own", tmp_path / "mnt"
    for d in (own, mp):
        d.mkdir()
    shown: dict[str, bytes | None] = {".gitignore": b"build/\n"}
    assert (
        untracked.on_skeleton(vault.store, skeleton, data, str(mp), vault.path, shown, scratch=str(own))
        is not None
    )
    shown = {".gitignore": (LINE + "\n").encode()}
    assert (
        untracked.on_skeleton(vault.store, skeleton, data, str(mp), vault.path, shown, scratch=str(own))
        is None
    )


def test_deep_paths_are_ignored_as_git_ignores_them(vault: Any, tmp_path: Path) -> None:
    """Every rule kind of tests/test_ignore.py, the files 24 directories down (where git
    2.39's ``check-ignore --verbose`` dies of SIGSEGV on each one a rule matches): the
    same answer as git's own ``ls-files`` in a real checkout."""
    from .test_ignore import ROOT_RULES, UNTRACKED, _git_checkout, _git_ignored, _write_all

    below = "p/" * 24
    untracked = {below + p: data for p, data in UNTRACKED.items()}
    untracked[".gitignore"] = b"\n".join(ROOT_RULES) + b"\n"
    untracked[below + ".gitignore"] = b"*.dat\n/anchored.txt\n"
    tracked = {"README.md": b"# proj\n"}
    checkout = _git_checkout(tmp_path / "checkout", tracked, untracked, b"")
    want = _git_ignored(checkout)
    assert {below + "a.log", below + "sub/b.dat", below + "sub/inner/anchored.txt"} <= want  # (real)
    assert not {below + "sub/anchored.txt", below + "normal.txt", below + "keep.log"} & want
    ws = vault.workspace("main")
    _write_all(ws, tracked)
    checkpoint.save(vault, message="tracked")
    _write_all(ws, untracked)
    assert set(ws.status_ignored()[1].files) == want
