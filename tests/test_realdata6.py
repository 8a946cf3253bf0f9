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


def _git_refs(git_dir: Path) -> tuple[dict[str, str], set[str]] | None:
    """`git for-each-ref`'s refs of ``git_dir`` (name -> id) and the refs it warns it
    ignores as broken; None where git cannot list them at all."""
    p = subprocess.run(
        ["git", "--git-dir", str(git_dir), "for-each-ref", "--format=%(objectname) %(refname)"],
        capture_output=True,
        timeout=60,
    )
    if p.returncode:
        return None
    listed = {}
    for line in p.stdout.decode("utf-8", "surrogateescape").splitlines():
        oid, _, name = line.partition(" ")
        listed[name] = oid
    broken = {ln.rsplit(" ", 1)[1] for ln in p.stderr.decode().splitlines() if "ignoring broken ref" in ln}
    return listed, broken


def test_every_fixture_s_refs_list_as_git_lists_them() -> None:
    """The refs of each of libgit2's test repositories, read from git's files
    (``refs.read_refs_file``, ``list_refs_file``, ``read_ref_file``: loose files, then
    ``packed-refs`` by its binary search), are `git for-each-ref`'s. On main the four
    that keep a ``refs/.gitkeep`` (``redundant.git``, ``revwalk.git``, ``shallow.git``,
    ``splitindex``) listed it as a ref and stopped on it as a damaged one; git never
    reads a name that starts with ``.`` as a ref. A ref git ignores as broken (an empty
    file) stops avfs's listing, naming it (avfs's choice: docs/benchmarks.md)."""
    from avfs_git.core.errors import CorruptStateError
    from avfs_git.core.store import packedrefs, refs

    compared = dotted = packed = broken_seen = 0
    for git_dir in realdata.libgit2_resources():
        got_git = _git_refs(git_dir)
        if got_git is None:  # (bad_tag.git's packed-refs; submodules' dirs without their worktree)
            continue
        want, broken = got_git
        gd = str(git_dir)
        dotted += any(p.name.startswith(".") for p in (git_dir / "refs").rglob("*"))
        names = refs.list_refs_file(gd, "refs/")
        assert set(names) == set(want) | broken, git_dir
        if broken:
            with pytest.raises(CorruptStateError) as exc:
                refs.read_refs_file(gd, "refs/")
            assert exc.value.details["ref"] in broken
            broken_seen += 1
            continue
        assert refs.read_refs_file(gd, "refs/") == want, git_dir
        for name, oid in want.items():
            assert refs.read_ref_file(gd, name) == oid, (git_dir, name)
        on_file = packedrefs.under(gd, "refs/")
        for name, oid in on_file.items():
            assert packedrefs.lookup(gd, name) == oid, (git_dir, name)
            assert packedrefs.lookup(gd, name + "x") is None
        packed += len(on_file)
        compared += 1
    assert compared >= 65 and dotted >= 4 and broken_seen >= 3 and packed >= 60, (
        compared,
        dotted,
        broken_seen,
        packed,
    )


def test_a_dot_file_in_a_vault_s_refs_is_no_fork(home: Any, cli: Any) -> None:
    """A ``.DS_Store`` (Finder's, in a directory it showed) and libgit2's ``refs/.gitkeep``
    in a vault: `vault list` and `vault info` name the forks git names (`git for-each-ref`),
    `gc` runs. On main ``.DS_Store`` was a fork, and `vault info` and `gc` stopped: "the
    ref refs/heads/.DS_Store is damaged"."""
    assert cli("vault", "create", "dv").code == 0
    assert cli("--vault", "dv", "write", "a.txt", "a\n").code == 0
    assert cli("--vault", "dv", "checkpoint", "save", "-m", "one").code == 0
    vault = Path(home.vault_path("dv"))
    (vault / "refs" / "heads" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1\0")
    (vault / "refs" / ".gitkeep").write_bytes(b"")
    listed = _git_refs(vault)
    assert listed is not None and set(listed[0]) == {"refs/heads/main"} and not listed[1]
    got = cli("--json", "vault", "list")
    assert got.code == 0, got.err
    assert [f for v in got.json()["vaults"] for f in v["forks"]] == ["main"], got.out
    info = cli("--json", "vault", "info", "dv")
    assert info.code == 0, info.err
    assert [f["name"] for f in info.json()["forks"]] == ["main"], info.out
    assert cli("--vault", "dv", "gc").code == 0


def test_the_workspace_diff_pairs_renames_as_git_does_and_status_as_avfs_saw_them(
    attrs: Path, home: Any, cli: Any, tmp_path: Path
) -> None:
    """attrs 24.1.0 in a fork and in a clone, changed alike: ``_make.py`` moved and
    edited a little, ``CHANGELOG.md`` moved and rewritten, ``README.md`` removed and an
    edited copy written as ``README2.md``. `avfs diff` (the workspace against its base:
    `--name-status`, `--stat`, the patch) is `git diff --cached` after `git add -A`
    (``D``, ``A``, ``R068``, ``R098``); on main it said ``R CHANGELOG.md NEWS.md``, ``D``,
    ``A``, ``R _make.py make2.py``. `avfs status` stays as it was by design: the moves
    avfs saw and the same content paired, no similarity scored (no git process, no
    capture of the workspace on each status)."""
    assert cli("vault", "clone", str(attrs / ".git"), "ws").code == 0
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "-b", "main", str(attrs), str(clone)], check=True)

    def both(*steps: tuple[str, ...]) -> None:
        for step in steps:
            if step[0] == "mv":
                assert cli("--vault", "ws", "mv", step[1], step[2]).code == 0
                _git(clone, "mv", step[1], step[2])
            elif step[0] == "rm":
                assert cli("--vault", "ws", "rm", step[1]).code == 0
                _git(clone, "rm", "-q", step[1])
            else:
                assert cli("--vault", "ws", "write", step[1], step[2]).code == 0
                (clone / step[1]).write_text(step[2])

    made = (clone / "src/attr/_make.py").read_text().replace("_make", "_made")
    readme = (clone / "README.md").read_text().replace("attrs", "ATTRS")
    both(
        ("mv", "src/attr/_make.py", "src/attr/make2.py"),
        ("write", "src/attr/make2.py", made),
        ("mv", "CHANGELOG.md", "NEWS.md"),
        ("write", "NEWS.md", "nothing alike\n"),
        ("rm", "README.md"),
        ("write", "README2.md", readme),
    )
    _git(clone, "add", "-A")
    names = _git(clone, "diff", "--cached", "--name-status").decode().splitlines()
    assert [ln.split("\t")[0][:1] for ln in names] == ["D", "A", "R", "R"], names  # (the case)
    assert not any(ln.startswith("R100") for ln in names), names
    for flags in (["--name-status"], ["--stat"], []):
        want = _git(clone, "diff", "--cached", "--no-color", *flags)
        got = cli("--vault", "ws", "diff", *flags)
        assert got.code == 0, got.err
        assert got.out_bytes == want, flags
    status = cli("--json", "--vault", "ws", "status")
    assert status.code == 0, status.err
    said = {(c["status"], c["path"], c.get("old_path")) for c in status.json()["changes"]}
    assert said == {
        ("renamed", "NEWS.md", "CHANGELOG.md"),
        ("deleted", "README.md", None),
        ("added", "README2.md", None),
        ("renamed", "src/attr/make2.py", "src/attr/_make.py"),
    }, said


def _t4013_repo(work: Path) -> Path:
    """The repository git's ``t/t4013-diff-various.sh`` builds, by its own setup block (run
    with ``sh``: ``test_write_lines`` as test-lib defines it, ``test-tool chmtime`` left
    out: it dates an untracked file), as test-lib's environment makes it: its commits are
    the ids git's expected outputs name (``side`` is ``c7a2ab9``)."""
    script = realdata.git_source_file("t/t4013-diff-various.sh").read_text()
    start = script.index("test_expect_success setup '\n") + len("test_expect_success setup '\n")
    body = script[start : script.index("\n'\n", start)].replace("test-tool chmtime +1 dir3/sub", "true")
    shim = "LF='\n'\ntest_write_lines () { printf '%s\\n' \"$@\"; }\n"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(work),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "A U Thor",
        "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "C O Mitter",
        "GIT_COMMITTER_EMAIL": "committer@example.com",
        "EDITOR": ":",
        "GIT_MERGE_AUTOEDIT": "no",
    }
    work.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "master", str(work)], check=True, env=env)
    subprocess.run(
        ["sh", "-c", shim + body],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    assert _git(work, "rev-parse", "side").decode().strip() == "c7a2ab9e8eac7b117442a607d5a9b3950ae34d5a"
    return work


def _expected(name: str) -> str:
    """What git's ``t/t4013/diff.NAME`` says the command prints (its ``$ git ...`` line
    and closing ``$`` off)."""
    text = (realdata.git_source_dir("t/t4013") / f"diff.{name}").read_text()
    assert text.startswith("$ git ") and text.endswith("\n$\n"), name
    return text.split("\n", 1)[1][: -len("$\n")]


def _patches(text: str) -> list[str]:
    """Each commit's patch in a log's text (what follows its first ``diff --git``)."""
    return [c[c.index("diff --git") :].rstrip("\n") for c in text.split("\ncommit ") if "diff --git" in c]


def test_git_s_t4013_expected_diffs_are_avfs_s(tmp_path: Path, home: Any, cli: Any) -> None:
    """git's own expected outputs (``t/t4013``) of the diffs avfs has a form for, on the
    repository git's script builds: `diff A..B` (3 and 1 and 2 lines of context),
    `--stat`, `show`'s patch and stat, `log -p`'s patches (first parents, the root's
    aside: the script sets ``log.showroot`` false). Nothing differed; kept as a test.
    Where avfs's format is its own by design: the ``Date:`` line (RFC 3339, and the
    committer's time, where git prints the author's: the amended merge's 00:05 for git's
    00:04), a merge's patch (against its first parent, git's ``show`` prints ``--cc``),
    a root commit's (its whole tree, whatever ``log.showroot`` says)."""
    work = _t4013_repo(tmp_path / "t4013")
    assert cli("vault", "clone", str(work / ".git"), "t4013").code == 0
    for name, args in (
        ("diff_initial..side", ["initial..side"]),
        ("diff_-U1_initial..side", ["-U1", "initial..side"]),
        ("diff_-U2_initial..side", ["-U2", "initial..side"]),
        ("diff_--stat_initial..side", ["--stat", "initial..side"]),
    ):
        got = cli("--vault", "t4013", "diff", *args)
        assert got.code == 0, got.err
        assert got.out == _expected(name), name
    shown = cli("--vault", "t4013", "show", "side")
    assert shown.code == 0, shown.err
    assert _patches(shown.out) == _patches(_expected("show_side")) != []
    stat = cli("--vault", "t4013", "show", "--stat", "side")
    assert stat.code == 0, stat.err
    assert stat.out.split("\n\n", 2)[2] == _expected("show_--stat_side").split("\n\n", 2)[2]
    logged = cli("--vault", "t4013", "log", "-p", "master")
    assert logged.code == 0, logged.err
    want = _patches(_expected("log_-p_--first-parent_master"))
    assert len(want) == 3 and _patches(logged.out)[:-1] == want  # (avfs's last: the root's)
