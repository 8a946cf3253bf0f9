"""git's ignore answers kept on disk per vault (``avfs_git.core.workspace.ignorekept``):
a new process asks ``git check-ignore`` only what no earlier one asked under the same
rules, and its answers are git's.

Each test counts the ``git check-ignore`` processes started (a spy on ``gitrun.run`` that
still runs git) and opens the vault again from a new :class:`Home` for each "process" (a
new workspace: nothing kept in memory). The answers are checked against git in a real
checkout of the same files, on released projects' own ``.gitignore`` files."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint, merge
from avfs_git.core.store import gitrun
from avfs_git.core.vaults.home import Home
from avfs_git.core.workspace import ignorekept
from avfs_git.mount.side import MOUNT_SIDE

from . import realdata
from .conftest import AUTHOR, POLICY_PATHS, git, skip_outside_ci


@pytest.fixture
def asks(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The ``git check-ignore`` processes started from now on (each still runs)."""
    seen: list[list[str]] = []
    real = gitrun.run

    def run(args: Any, *a: Any, **k: Any) -> Any:
        if "check-ignore" in args:
            seen.append(list(args))
        return real(args, *a, **k)

    monkeypatch.setattr(gitrun, "run", run)
    return seen


@pytest.fixture
def reopen(home: Home) -> Iterator[Any]:
    """``reopen()``: fork ``main`` of vault ``v`` as a new process sees it (a new home)."""
    opened: list[Home] = []

    def again(fork: str = "main") -> Any:
        h = Home(home.path, author=AUTHOR, mounts=MOUNT_SIDE, paths=POLICY_PATHS)
        opened.append(h)
        return h.vault("v").workspace(fork)

    yield again
    for h in opened:
        h.close()


def _project_ignores() -> dict[str, bytes]:
    """The ``.gitignore`` files of attrs 24.2.0 and twisted 24.10.0 (the root one and the
    seven ``newsfragments/`` ones), read from their released sdists, under ``attrs/`` and
    ``twisted/``."""
    out: dict[str, bytes] = {}
    for name, version, top in (("attrs", "24.2.0", "attrs"), ("twisted", "24.10.0", "twisted")):
        with tarfile.open(realdata.pypi_sdist(name, version)) as tf:
            for m in tf.getmembers():
                if m.isfile() and m.name.endswith("/.gitignore"):
                    rel = m.name.split("/", 1)[1]
                    fh = tf.extractfile(m)
                    assert fh is not None
                    out[f"{top}/{rel}"] = fh.read()
    assert len(out) == 9
    return out


def _candidates(ignores: dict[str, bytes]) -> list[str]:
    """Paths each pattern of ``ignores`` is about (a name made from the pattern, at the
    file's directory and one below), and names near them that it is not about."""
    out: set[str] = set()
    for path, data in ignores.items():
        d = path.rpartition("/")[0]
        for line in data.decode().splitlines():
            pat = line.strip().lstrip("!").strip("/")
            if not pat or pat.startswith("#"):
                continue
            name = pat.replace("*", "x").replace("?", "q").replace("[", "").replace("]", "")
            for where in (d, f"{d}/sub"):
                out.add(f"{where}/{name}/inner.txt" if "/" not in name else f"{where}/{name}")
                out.add(f"{where}/{name}.kept")
        out.add(f"{d}/plain.txt")
        out.add(f"{d}/news.rst")
    # (not a path of an ignore file, nor below one: `!.gitignore` names the file itself)
    return sorted(p for p in out if not any(p == f or p.startswith(f + "/") for f in ignores))


def _git_ignored(root: Path, files: dict[str, bytes]) -> set[str]:
    root.mkdir()
    git("init", "-q", cwd=root)
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    out = git("ls-files", "-z", "--others", "--ignored", "--exclude-standard", cwd=root)
    return {p for p in out.split("\0") if p}


def test_real_projects_ignores_answered_by_git_once_then_kept(
    vault: Any, reopen: Any, asks: list[list[str]], tmp_path: Path
) -> None:
    """attrs's and twisted's own ignore files over paths their patterns name: the first
    process's answers are git's in a checkout; a second process gets the same answers and
    starts no git."""
    ignores = _project_ignores()
    paths = _candidates(ignores)
    files = {**ignores, **{p: b"x\n" for p in paths}}
    want = _git_ignored(tmp_path / "checkout", files)
    assert len(want) > 40 and len(set(paths) - want) > 40  # both answers are there to get
    ws = vault.workspace("main")
    for path, data in files.items():
        ws.write(path, data, parents=True)
    first = set(ws.status_ignored()[1].files)
    assert first == want
    assert len(asks) >= 1
    kept = Path(vault.path) / "avfs" / ignorekept.NAME
    assert kept.stat().st_size > 0
    asks.clear()
    again = reopen()
    assert set(again.status_ignored()[1].files) == want
    assert asks == []  # every answer kept: no git process
    # a checkpoint in yet another process asks nothing either, and records git's files
    asks.clear()
    checkpoint.save(reopen().vault)
    assert asks == []
    tree = set(git("--git-dir", vault.path, "ls-tree", "-r", "-z", "--name-only", "main").split("\0")) - {""}
    assert tree == set(files) - want


def test_a_change_to_any_rule_is_asked_again(
    vault: Any, reopen: Any, asks: list[list[str]], tmp_path: Path
) -> None:
    """The kept answer is keyed by everything git's answer depends on: a change of the
    ``.gitignore`` bytes, of ``info/exclude``, of the vault's config (``core.ignoreCase``)
    and of ``core.excludesFile`` each starts git again, and its new answer is the one
    given; a config that includes another file is never kept."""
    ws = vault.workspace("main")
    ws.write(".gitignore", b"*.log\n")
    ws.write("Build.LOG", b"x")
    ws.write("out.tmp", b"x")
    ws.write("keep.txt", b"x")

    def answer() -> set[str]:
        return set(reopen().status_ignored()[1].files)

    assert answer() == set() and len(asks) == 1  # (case matters by default)
    assert answer() == set() and len(asks) == 1  # kept
    git("--git-dir", vault.path, "config", "core.ignoreCase", "true")
    assert answer() == {"Build.LOG"} and len(asks) == 2
    assert answer() == {"Build.LOG"} and len(asks) == 2
    vault.workspace("main").write(".gitignore", b"*.log\n*.tmp\n")
    assert answer() == {"Build.LOG", "out.tmp"} and len(asks) == 3
    (Path(vault.path) / "info" / "exclude").write_bytes(b"keep.*\n")
    assert answer() == {"Build.LOG", "out.tmp", "keep.txt"} and len(asks) == 4
    (Path(vault.path) / "info" / "exclude").write_bytes(b"")
    excludes = tmp_path / "excludes"
    excludes.write_bytes(b"keep.txt\n")
    git("--git-dir", vault.path, "config", "core.excludesFile", str(excludes))
    assert answer() == {"Build.LOG", "out.tmp", "keep.txt"} and len(asks) == 5
    excludes.write_bytes(b"other.txt\n")
    assert answer() == {"Build.LOG", "out.tmp"} and len(asks) == 6
    assert answer() == {"Build.LOG", "out.tmp"} and len(asks) == 6
    # an include: git may read a file this key does not hold; asked every time
    (tmp_path / "more.cfg").write_text("[core]\n\tignoreCase = false\n")
    git("--git-dir", vault.path, "config", "include.path", str(tmp_path / "more.cfg"))
    assert answer() == {"out.tmp"} and len(asks) == 7
    assert answer() == {"out.tmp"} and len(asks) == 8


def test_a_damaged_file_of_answers_is_asked_past(vault: Any, reopen: Any, asks: list[list[str]]) -> None:
    """Torn and foreign lines answer nothing: git is asked, and its answer holds."""
    ws = vault.workspace("main")
    ws.write(".gitignore", b"*.log\n")
    ws.write("a.log", b"x")
    kept = Path(vault.path) / "avfs" / ignorekept.NAME
    kept.write_bytes(b"\nnot a key 1\n" + b"0" * 40 + b" 7\n\n" + b"f" * 39)
    assert set(reopen().status_ignored()[1].files) == {"a.log"} and len(asks) == 1
    assert set(reopen().status_ignored()[1].files) == {"a.log"} and len(asks) == 1
    assert kept.read_bytes().startswith(b"\nnot a key 1\n")  # appended to, not rewritten


def test_a_merge_of_forks_holding_an_ignored_tree_starts_no_git_once_asked(
    vault: Any, reopen: Any, asks: list[list[str]]
) -> None:
    """realproj8's merge (a one-file fork into a fork holding an ignored ``node_modules``)
    asked ``git check-ignore`` twice in every process, once per side's check for changes
    to capture; a merge in a later process asks none."""
    ws = vault.workspace("main")
    ws.write(".gitignore", b"node_modules/\n")
    checkpoint.save(vault)
    for k in range(20):
        ws.write(f"node_modules/pkg{k}/index.js", b"module.exports = 1;\n", parents=True)
    vault.create_fork("main", "a")
    vault.workspace("a").write("a.md", b"a\n")
    checkpoint.save(vault, "a")
    asks.clear()
    target = reopen()
    res = merge.merge(target.vault, "a", "main")
    assert res.status == "fast_forward"
    assert asks == []
    assert target.read("node_modules/pkg3/index.js") == b"module.exports = 1;\n"
    assert target.status() == [] and set(target.changes.ignored().tops) == {"node_modules"}


def test_a_new_fork_asks_nothing_another_fork_was_answered_in_this_process(
    vault: Any, asks: list[list[str]]
) -> None:
    """Each merge's source, a new fork holding the installed ``node_modules`` its fork of
    ``main`` carried, asked the same paths of ``node_modules`` anew in the kept process that
    had answered them for the last source (the kept answers' file read: ~0.5 ms of a served
    merge on minimist; merge10): an answer whose ``.gitignore`` files are all committed
    blobs is every fork's. Not one whose ``.gitignore`` is a fork's own uncheckpointed
    file, nor another blob's: each of those is asked, and git's answer given."""
    ws = vault.workspace("main")
    ws.write(".gitignore", b"node_modules/\n")
    checkpoint.save(vault)
    for k in range(5):
        ws.write(f"node_modules/pkg{k}/index.js", b"module.exports = 1;\n", parents=True)
    assert not ws.is_dirty()
    kept = Path(vault.path) / "avfs" / ignorekept.NAME
    vault.create_fork("main", "a")
    assert not vault.workspace("a").is_dirty()
    kept.unlink()  # (no earlier process's answers: only this one's)
    asks.clear()
    vault.create_fork("main", "a2")
    assert not vault.workspace("a2").is_dirty()
    assert asks == []  # answered by fork a's answers, not by git
    # its own .gitignore, not checkpointed: asked, and git's answer given
    vault.create_fork("main", "b")
    b = vault.workspace("b")
    b.write(".gitignore", b"*.log\n")
    assert b.is_dirty() and {c.path for c in b.status()} >= {".gitignore", "node_modules/pkg0/index.js"}
    assert len(asks) >= 1
    checkpoint.save(vault, "b")  # (node_modules/ is not ignored there: recorded)
    assert "node_modules/pkg0/index.js" in git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "b")
    # another committed .gitignore (another blob) that ignores it too: asked again
    vault.create_fork("main", "c")
    c = vault.workspace("c")
    c.write(".gitignore", b"node_modules/\n*.tmp\n")
    checkpoint.save(vault, "c")
    kept.unlink()
    asks.clear()
    c.write("x.tmp", b"x")
    assert c.is_dirty() is False and len(asks) >= 1


def test_a_gitignore_written_while_git_is_asked_keeps_no_answer_for_its_old_bytes(
    vault: Any, tmp_path: Path
) -> None:
    """An answer is kept under the key of the ``.gitignore`` bytes git answered from. The
    bytes were read twice, once for the key and once for git's scratch tree: a write
    landing between the two (an agent editing ``.gitignore`` while a checkpoint runs) kept
    git's answer for the new bytes under the old bytes' key, and after ``undo`` put the old
    bytes back, a new process left ``notes.txt`` out of its capture as ignored."""
    from avfs_git.core.workspace.ignore import IgnoreRules

    gi = tmp_path / "gitignore"
    gi.write_bytes(b"*.log\n")
    reads: list[bytes] = []

    def source(d: str) -> Any:
        if d != "":
            return None
        st = gi.stat()

        def load() -> bytes:
            data = gi.read_bytes()
            reads.append(data)
            if len(reads) == 1:
                gi.write_bytes(b"*.txt\n")  # (the agent's write, between avfs's reads)
            return data

        return f"f:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}", load

    kept = str(Path(vault.path) / "avfs" / ignorekept.NAME)
    first = IgnoreRules(vault.path, lambda: None, kept).ignored(["notes.txt"], source)
    gi.write_bytes(b"*.log\n")  # (undo: the old bytes again)
    again = IgnoreRules(vault.path, lambda: None, kept).ignored(["notes.txt"], source)
    assert again == set()  # git's answer under "*.log"
    assert first in (set(), {"notes.txt"})  # (either bytes' answer, but one set of bytes)


def test_kept_answers_follow_git_as_paths_and_rules_change(
    vault: Any, reopen: Any, asks: list[list[str]], tmp_path: Path
) -> None:
    """The brief's attacks on the kept answers, each answered twice by a new process (the
    second from the kept file once the first asked) and checked against git in a checkout
    of the same files and settings: ``build`` a directory under ``build/``, then a file,
    then a directory again; a negation in the parent with a child ``.gitignore`` ignoring it
    again; ``core.ignoreCase`` on and off; ``core.excludesFile = ~/x`` and unset; and
    ``$XDG_CONFIG_HOME/git/ignore`` made after an answer without it was kept."""
    files: dict[str, bytes] = {}

    def put(path: str, data: bytes) -> None:
        files[path] = data
        vault.workspace("main").write(path, data, parents=True)

    def drop(path: str) -> None:
        files.pop(path)
        vault.workspace("main").remove(path)

    def check(n: int) -> None:
        root = tmp_path / f"co{n}"
        root.mkdir()
        git("init", "-q", cwd=root)
        for key in ("core.ignoreCase", "core.excludesFile"):
            value = git("--git-dir", vault.path, "config", key, check=False).strip()
            if value:
                git("config", key, value, cwd=root)
        for path, data in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)
        out = git("ls-files", "-z", "--others", "--ignored", "--exclude-standard", cwd=root)
        want = {p for p in out.split("\0") if p}
        for _ in range(2):
            got = reopen().status_ignored()[1].files
            assert {p for p in files if any(p == g or p.startswith(g.rstrip("/") + "/") for g in got)} == want
        assert asks, "no git asked: nothing was checked"

    put(".gitignore", b"build/\n")
    put("build/x.o", b"o\n")
    check(0)
    drop("build/x.o")
    vault.workspace("main").remove("build")
    put("build", b"a file\n")
    check(1)
    drop("build")
    put("build/y.o", b"o\n")
    check(2)
    put(".gitignore", b"*.log\n!keep.log\n")
    put("sub/keep.log", b"k\n")
    put("sub/a.log", b"a\n")
    check(3)
    put("sub/.gitignore", b"keep.log\n")
    check(4)
    git("--git-dir", vault.path, "config", "core.ignoreCase", "true")
    put("Sub2/A.LOG", b"x\n")
    check(5)
    git("--git-dir", vault.path, "config", "core.ignoreCase", "false")
    check(6)
    (Path(os.environ["HOME"]) / "x").write_bytes(b"*.tmp\n")
    put("t.tmp", b"t\n")
    git("--git-dir", vault.path, "config", "core.excludesFile", "~/x")
    check(7)
    git("--git-dir", vault.path, "config", "--unset", "core.excludesFile")
    check(8)
    xdg = Path(os.environ["XDG_CONFIG_HOME"]) / "git"
    xdg.mkdir(parents=True, exist_ok=True)
    (xdg / "ignore").write_bytes(b"*.tmp\n")
    check(9)


def test_the_system_config_git_reads_is_in_the_key_whatever_git_config_system_says(
    vault: Any, reopen: Any, asks: list[list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """avfs runs ``git check-ignore`` without the caller's GIT_* (``gitrun.git_env``), so
    git reads /etc/gitconfig whatever ``$GIT_CONFIG_SYSTEM`` names: a change to it is a new
    question. Before (review10) the key took the file ``$GIT_CONFIG_SYSTEM`` names instead,
    and a change to /etc/gitconfig (its ``core.ignoreCase``, ``core.excludesFile``) kept the
    old answers. /etc/gitconfig is edited with a section of no meaning to git (every process
    on the machine reads it) and put back as it was."""
    system = Path("/etc/gitconfig")
    if not os.access("/etc", os.W_OK):
        skip_outside_ci("/etc/gitconfig cannot be written here")
    decoy = tmp_path / "decoy-system.cfg"
    decoy.write_text("")
    monkeypatch.setenv("GIT_CONFIG_SYSTEM", str(decoy))
    ws = vault.workspace("main")
    ws.write(".gitignore", b"*.log\n")
    ws.write("a.log", b"x")
    assert set(reopen().status_ignored()[1].files) == {"a.log"} and len(asks) == 1
    assert set(reopen().status_ignored()[1].files) == {"a.log"} and len(asks) == 1  # kept
    before = system.read_bytes() if system.exists() else None
    try:
        with system.open("ab") as fh:
            fh.write(f"\n[avfs-review10-probe]\n\tstamp = {os.getpid()}-{tmp_path.name}\n".encode())
        assert set(reopen().status_ignored()[1].files) == {"a.log"}
        assert len(asks) == 2, "a change to /etc/gitconfig kept git's old answer"
    finally:
        if before is None:
            system.unlink()
        else:
            system.write_bytes(before)


def test_one_process_asks_again_once_the_config_changes(vault: Any, asks: list[list[str]]) -> None:
    """A long-lived process (the warm server, a mount's daemon) keeps git's answers in memory
    too: keyed by the config git reads, as the kept file's, so that ``core.ignoreCase``
    turned on and off between two calls of one workspace gives git's new answer each time
    (before, review10: the first answer for as long as the process lived)."""
    ws = vault.workspace("main")
    ws.write(".gitignore", b"*.log\n")
    ws.write("Build.LOG", b"x")
    assert set(ws.status_ignored()[1].files) == set()
    git("--git-dir", vault.path, "config", "core.ignoreCase", "true")
    assert set(ws.status_ignored()[1].files) == {"Build.LOG"}
    git("--git-dir", vault.path, "config", "core.ignoreCase", "false")
    assert set(ws.status_ignored()[1].files) == set()
