"""Submodules (gitlinks, mode 160000) in a fork, as git treats a submodule it has not
checked out (docs/fuse.md, "Submodules"): a mount shows one as an empty directory; `ls`,
`find`, `tar` and `git status` in it work (a gitlink was a file whose size was looked up
as a blob: every listing of its directory failed with EIO, whole vaults and lazy ones
alike); what is written below it is not the fork's (git leaves it out, so does a
checkpoint); removing it is a deletion, a file in its place a type change, a directory made
again where it was the submodule again.

The repository is real: pygit2 1.15.1's `submodulerepo` fixture (libgit2's test data,
from its sdist) with a second, deeper gitlink added as `git submodule add` records one.
Each step runs in the mount and in a plain clone of the same repository side by side
(git's own behaviour is the model), compared after every step; both mount backends, the
vault whole and lazy (served by a real `git daemon` on 127.0.0.1)."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import IsDirectoryError, NotDirectoryError
from avfs_git.core.operations import checkpoint
from avfs_git.core.types import NodeKind
from avfs_git.core.vaults.home import Home
from avfs_git.ops import mounts

from . import realdata
from .conftest import git
from .gitmount import _git, _require
from .test_confine import _need_bwrap
from .test_json_schemas import validate
from .test_lazy import Server, missing, objects

SUB = "TestGitRepository"  # the fixture's own submodule
DEEP = "vendor/lib/dep"  # the one added here, below two directories


def _fixture_repo(tmp: Path) -> Path:
    """The work tree of pygit2's ``submodulerepo`` (a superproject whose one commit adds
    the submodule ``TestGitRepository``)."""
    sdist = realdata.pypi_sdist("pygit2", "1.15.1")
    with tarfile.open(sdist) as tf:
        member = next(m for m in tf.getmembers() if m.name.endswith("/test/data/submodulerepo.zip"))
        data = tf.extractfile(member)
        assert data is not None
        (tmp / "submodulerepo.zip").write_bytes(data.read())
    with zipfile.ZipFile(tmp / "submodulerepo.zip") as zf:
        zf.extractall(tmp / "fixture")
    return tmp / "fixture" / "submodulerepo"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`git daemon` serving ``super.git``: the fixture's history and one commit more that
    adds files beside a second gitlink (``vendor/lib/dep``, with its ``.gitmodules`` entry)."""
    tmp = tmp_path_factory.mktemp("submodules")
    fixture = _fixture_repo(tmp)
    # the deeper submodule's own repository, on this machine (the fixture's names GitHub)
    dep = tmp / "dep"
    git("init", "-q", "-b", "main", str(dep))
    (dep / "dep.txt").write_text("dep\n")
    git("-C", str(dep), "add", "-A")
    git("-C", str(dep), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "dep")
    sub_commit = git("-C", str(dep), "rev-parse", "HEAD").strip()
    work = tmp / "work"
    git("clone", "-q", str(fixture), str(work))
    (work / DEEP).mkdir(parents=True)  # (not checked out: else `add -A` records a removal)
    (work / "vendor" / "lib" / "README").write_text("vendored\n")
    (work / "notes.txt").write_text("notes\n")
    git("-C", str(work), "config", "-f", ".gitmodules", f"submodule.{DEEP}.path", DEEP)
    git("-C", str(work), "config", "-f", ".gitmodules", f"submodule.{DEEP}.url", f"file://{dep}")
    git("-C", str(work), "update-index", "--add", "--cacheinfo", f"160000,{sub_commit},{DEEP}")
    git("-C", str(work), "add", "-A")
    git(
        "-C",
        str(work),
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "-m",
        "a deeper submodule",
    )
    git("-C", str(work), "branch", "-M", "main")
    base = tmp / "daemon"
    base.mkdir()
    git("clone", "-q", "--bare", str(work), str(base / "super.git"))
    git("--git-dir", str(base / "super.git"), "config", "uploadpack.allowFilter", "true")
    git("--git-dir", str(base / "super.git"), "config", "uploadpack.allowAnySHA1InWant", "true")
    with Server.serving(base) as srv:
        yield srv


def _plain(served: Server, dest: Path) -> Path:
    """A plain clone of the superproject, its submodules not checked out (git's default)."""
    git("clone", "-q", str(served.base / "super.git"), str(dest))
    return dest


@pytest.fixture(params=["overlay", "fuse"])
def backend(request: pytest.FixtureRequest) -> str:
    _require(request.param)
    return str(request.param)


def _mount(home: Home, vault: Any, mp: Path, backend: str) -> None:
    mp.mkdir()
    info = mounts.mount(home, vault, "main", str(mp), backend=backend)
    assert info.backend == backend


def _tree(top: Path) -> list[tuple[str, str]]:
    """Every path below ``top`` (``.git`` left out) with its type: what `find` lists."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        rel = os.path.relpath(dirpath, top)
        for d in dirnames:
            out.append((os.path.normpath(os.path.join(rel, d)), "dir"))
        for f in sorted(filenames):
            if f != ".git":
                out.append((os.path.normpath(os.path.join(rel, f)), "file"))
    return sorted(out)


@pytest.mark.parametrize("lazy", [False, True], ids=["whole", "lazy"])
def test_a_mount_shows_submodules_as_git_leaves_them_and_reads_fetch_nothing(
    home: Home, served: Server, tmp_path: Path, backend: str, lazy: bool
) -> None:
    vault = home.clone_vault(served.url("super.git"), "s", lazy=lazy)
    plain = _plain(served, tmp_path / "plain")
    before = objects(vault.path), missing(vault.path)
    mp = tmp_path / "m"
    _mount(home, vault, mp, backend)
    try:
        for sub in (SUB, DEEP):
            assert (mp / sub).is_dir() and os.listdir(mp / sub) == [], sub
            assert not (mp / sub / "x").exists()
        assert _tree(mp) == _tree(plain)
        status = _git(mp, "status", "--porcelain", "-uall").stdout
        assert status == "" == _git(plain, "status", "--porcelain", "-uall").stdout
        assert _git(mp, "ls-files", "-s").stdout == _git(plain, "ls-files", "-s").stdout
        # every tool that walks the tree reads it (tar reads each file too)
        st0 = os.stat(mp)
        tarred = subprocess.run(["tar", "-cf", "-", "--exclude=.git", "."], cwd=mp, capture_output=True)
        st1 = os.stat(mp)
        assert tarred.returncode == 0, (tarred.stderr, st0, st1, sorted(os.listdir(mp)))
        with tarfile.open(fileobj=io.BytesIO(tarred.stdout)) as tf:
            names = tf.getnames()
        assert f"./{SUB}" in names and f"./{DEEP}" in names
        ws = vault.workspace("main")
        assert ws.stat(SUB).kind is NodeKind.SUBMODULE
        assert [e.name for e in ws.listdir("vendor/lib")] == ["README", "dep"]
    finally:
        mounts.unmount(home, vault, "main")
    if lazy:
        # the listings and git's status fetched no blob; tar read every file (3 of them)
        assert missing(vault.path) == before[1] - 3 and objects(vault.path) >= before[0]


def _run(top: Path, step: str) -> None:
    """Run shell ``step`` in ``top``."""
    r = subprocess.run(["sh", "-c", step], cwd=top, capture_output=True, text=True)
    assert r.returncode == 0, (top, step, r.stderr)


STEPS = [
    # a file below a submodule's directory: git leaves it out (the overlay holds it; a
    # pure-FUSE mount refuses it, below)
    f"echo x > {SUB}/x.txt && mkdir -p {SUB}/d && echo y > {SUB}/d/y.txt",
    "echo changed >> notes.txt",
    f"rm -rf {DEEP}",  # a deletion
    f"mkdir {DEEP}",  # the submodule again, not checked out
    f"rm -rf {SUB} && echo file > {SUB}",  # a type change
    "echo more > vendor/lib/README",
]


def test_each_step_leaves_git_and_the_checkpoint_as_in_a_plain_clone(
    home: Home, served: Server, tmp_path: Path, backend: str
) -> None:
    """The model: after each step `git status` in the mount equals the plain clone's, and
    avfs's own status names the same paths; a checkpoint at the end records the tree
    `git add -A && git commit` records in the plain clone."""
    vault = home.clone_vault(served.url("super.git"), "s")
    plain = _plain(served, tmp_path / "plain")
    mp = tmp_path / "m"
    _mount(home, vault, mp, backend)
    try:
        for step in STEPS:
            if backend == "fuse" and step == STEPS[0]:
                with pytest.raises(OSError) as err:
                    (mp / SUB / "x.txt").write_text("x\n")
                assert err.value.errno == errno.ENOTDIR
                _run(plain, step)  # (git's clone holds them; git leaves them out)
            else:
                _run(mp, step)
                _run(plain, step)
            ours = _git(mp, "status", "--porcelain", "-uall").stdout
            assert ours == _git(plain, "status", "--porcelain", "-uall").stdout, step
            named = sorted(c.path for c in vault.workspace("main").status())
            assert named == sorted(line[3:] for line in ours.splitlines()), (step, ours)
        if backend == "overlay":  # what git left out is still there, as in git's clone
            assert (mp / "vendor" / "lib" / "README").read_text() == "more\n"
        saved = checkpoint.save(vault, "main", message="steps").checkpoint
        _git(plain, "add", "-A")
        _git(plain, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "steps")
        assert git("--git-dir", vault.path, "ls-tree", "-r", saved.commit) == git(
            "-C", str(plain), "ls-tree", "-r", "HEAD"
        )
        assert _git(mp, "status", "--porcelain").stdout == ""
    finally:
        mounts.unmount(home, vault, "main")
    shutil.rmtree(plain)


def test_the_api_names_a_submodule_and_refuses_a_file_below_it_changing_nothing(
    home: Home, served: Server
) -> None:
    vault = home.clone_vault(served.url("super.git"), "s")
    ws = vault.workspace("main")
    head = git("--git-dir", vault.path, "rev-parse", "refs/heads/main")
    with pytest.raises(NotDirectoryError) as err:
        ws.write(f"{DEEP}/x.txt", b"x\n", parents=True)
    assert err.value.details == {"path": DEEP, "kind": "submodule"} and "submodule" in str(err.value)
    assert ws.status() == [] and git("--git-dir", vault.path, "rev-parse", "refs/heads/main") == head
    with pytest.raises(IsDirectoryError, match="is a submodule"):
        ws.read(SUB)  # (its id names a commit, not a blob: nothing to read, nothing fetched)
    st = ws.stat(SUB)
    assert (st.kind, st.size, st.oid) == (
        NodeKind.SUBMODULE,
        0,
        git("-C", str(served.base / "super.git"), "rev-parse", f"main:{SUB}").strip(),
    )
    ws.remove(DEEP)
    assert [(c.path, c.status.value) for c in ws.status()] == [(DEEP, "deleted")]
    ws.mkdir(DEEP)  # where a submodule was: the submodule again (git's view of an empty dir there)
    assert ws.status() == [] and ws.stat(DEEP).kind is NodeKind.SUBMODULE


def test_proxy_exec_reports_what_it_wrote_below_a_submodule_and_commits_the_rest(
    home: Home, served: Server, tmp_path: Path, backend: str
) -> None:
    """The agent is told: files a command wrote below a submodule's path are not recorded
    (`not_recorded`, kind `submodule`; a pure-FUSE mount refuses them), the rest is its
    commit, and the gitlink is as it was."""
    _need_bwrap()
    vault = home.clone_vault(served.url("super.git"), "s")
    link = git("--git-dir", vault.path, "rev-parse", f"main:{SUB}").strip()
    mp = tmp_path / "m"
    _mount(home, vault, mp, backend)
    try:
        script = f"echo x > {SUB}/x.txt; echo changed >> notes.txt"
        r = subprocess.run(
            [sys.executable, "-m", "avfs_git", "--home", home.path, "--json", "--vault", "s:main",
             "proxy", "exec", "--", "sh", "-c", script],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        env = json.loads(r.stdout)
        assert env["error"] is None and env["commit"] is not None, env
        validate(env)  # (the kind `submodule` is one the envelope's schema knows)
        kinds = {(n["path"], n["kind"]) for n in env["not_recorded"]}
        assert kinds == ({(SUB, "submodule")} if backend == "overlay" else set()), env
        assert [c["path"] for c in env["changes"]] == ["notes.txt"], env
        tip = env["commit"]["commit"] if isinstance(env["commit"], dict) else env["commit"]
        assert git("--git-dir", vault.path, "rev-parse", f"{tip}:{SUB}").strip() == link
        assert _git(mp, "status", "--porcelain").stdout == ""
    finally:
        mounts.unmount(home, vault, "main")


def test_a_submodule_checked_out_and_moved_by_git_in_the_mount_is_what_avfs_records(
    home: Home, served: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person's git in an overlay mount checks the submodule out, commits in it, then
    `git add sub && git commit` in the superproject, beside a plain clone doing the same:
    git's status and the fork's tree agree at each step, and avfs's status and checkpoint
    leave the gitlink git committed (they once pinned the old one: the view kept showing
    the commit git had moved away from, and the next checkpoint put it back)."""
    _require("overlay")
    vault = home.clone_vault(served.url("super.git"), "s")
    plain = _plain(served, tmp_path / "plain")
    mp = tmp_path / "m"
    _mount(home, vault, mp, "overlay")
    who = ["-c", "user.name=t", "-c", "user.email=t@t"]
    for var in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):  # the same commits on both sides
        monkeypatch.setenv(var, "2026-01-01T00:00:00Z")
    try:
        for top in (mp, plain):
            _git(top, "-c", "protocol.file.allow=always", "submodule", "update", "--init", DEEP)
            (top / DEEP / "more.txt").write_text("more\n")
            _git(top / DEEP, "add", "more.txt")
            _git(top / DEEP, *who, "commit", "-q", "-m", "more")
        ours = _git(mp, "status", "--porcelain").stdout
        assert ours == _git(plain, "status", "--porcelain").stdout == f" M {DEEP}\n"
        # avfs records what git does not take without `git add`: nothing yet
        assert vault.workspace("main").status() == []
        for top in (mp, plain):
            _git(top, "add", DEEP)
            _git(top, *who, "commit", "-q", "-m", "the submodule moved")
        assert _git(mp, "status", "--porcelain").stdout == "" == _git(plain, "status", "--porcelain").stdout
        assert vault.workspace("main").status() == []
        assert checkpoint.save(vault, "main", message="after").created is False
        tree = git("--git-dir", vault.path, "rev-parse", "main^{tree}")
        assert tree == git("-C", str(plain), "rev-parse", "HEAD^{tree}")
    finally:
        mounts.unmount(home, vault, "main")


@pytest.mark.parametrize("at", ["added", "third-party/added"])
def test_a_submodule_git_adds_in_the_mount_is_what_avfs_records(
    home: Home, served: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, at: str
) -> None:
    """`git submodule add` of a local repository in an overlay mount and `git commit`,
    beside a plain clone doing the same (gitmodel9): avfs's status is empty and a
    checkpoint records nothing, the gitlink git committed stays. Before, the base move
    masked the new gitlink as the view had had nothing there: avfs's status listed `D sub`
    and `A sub/l.txt`, and a checkpoint replaced the gitlink with the submodule's files.
    (The pure-FUSE backend still did until gitmodel10.) In a directory git's `submodule
    add` made (`third-party/added`), a file written beside it and a checkpoint of that: the
    gitlink stays in the new commit. Before gitmodel16 a pure-FUSE checkpoint dropped it
    there: the directory, made before git's commit, was an empty tree to the checkpoint,
    built in place of the base's that holds the gitlink."""
    lib = tmp_path / "lib"
    git("init", "-q", "-b", "main", str(lib))
    (lib / "l.txt").write_text("lib\n")
    git("-C", str(lib), "add", "l.txt")
    git("-C", str(lib), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "lib")
    vault = home.clone_vault(served.url("super.git"), "s")
    plain = _plain(served, tmp_path / "plain")
    mp = tmp_path / "m"
    _mount(home, vault, mp, backend)
    who = ["-c", "user.name=t", "-c", "user.email=t@t"]
    for var in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):  # the same commits on both sides
        monkeypatch.setenv(var, "2026-01-01T00:00:00Z")
    try:
        for top in (mp, plain):
            _git(top, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), at)
            _git(top, *who, "commit", "-q", "-m", "a submodule added")
        assert _git(mp, "status", "--porcelain").stdout == "" == _git(plain, "status", "--porcelain").stdout
        assert (mp / at / "l.txt").read_text() == "lib\n"
        assert vault.workspace("main").status() == []
        if at == "added":
            assert checkpoint.save(vault, "main", message="after").created is False
            tree = git("--git-dir", vault.path, "rev-parse", "main^{tree}")
            assert tree == git("-C", str(plain), "rev-parse", "HEAD^{tree}")
        else:  # (a file beside it, and the checkpoint records that alone)
            for top in (mp, plain):
                (top / "beside.txt").write_text("beside a submodule\n")
            _git(plain, "add", "beside.txt")
            assert checkpoint.save(vault, "main", message="beside").created is True
            tree = git("--git-dir", vault.path, "rev-parse", "main^{tree}")
            assert tree.strip() == _git(plain, "write-tree").stdout.strip()
            assert _git(mp, "status", "--porcelain").stdout == ""
        assert git("--git-dir", vault.path, "ls-tree", "main", at).split()[:2] == ["160000", "commit"]
    finally:
        mounts.unmount(home, vault, "main")


@pytest.mark.parametrize("version", ["git's", "4"])
def test_a_checkpoint_right_after_git_submodule_add_records_the_gitlink_git_staged(
    home: Home, served: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, version: str
) -> None:
    """`git submodule add` of a local repository in a mount, then at once (before git's own
    commit) avfs's status and `checkpoint save`, beside a plain clone whose `git add -A`
    and `git commit` record the same: the status names the gitlink added (not the
    submodule's files), the checkpoint records the gitlink git's index staged (mode 160000,
    the submodule's commit), git's status in the mount is clean after it, and a
    checkpoint after that records nothing; the submodule's files stay in the mount.
    Before (found in gitmodel12, docs/fuse.md "Submodules"), the status listed
    `added/l.txt` and the checkpoint recorded the submodule's files as the fork's: git's
    status then showed the gitlink staged over a tree of files. The same with git's index
    at version 4 (`feature.manyFiles`): before the twenty-fifth round (NAME=attack16) its
    gitlink was not read, and the submodule's files were recorded."""
    lib = tmp_path / "lib"
    git("init", "-q", "-b", "main", str(lib))
    (lib / "l.txt").write_text("lib\n")
    git("-C", str(lib), "add", "l.txt")
    git("-C", str(lib), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "lib")
    link = git("-C", str(lib), "rev-parse", "HEAD").strip()
    vault = home.clone_vault(served.url("super.git"), "s")
    plain = _plain(served, tmp_path / "plain")
    mp = tmp_path / "m"
    _mount(home, vault, mp, backend)
    who = ["-c", "user.name=t", "-c", "user.email=t@t"]
    for var in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):
        monkeypatch.setenv(var, "2026-01-01T00:00:00Z")
    try:
        for top in (mp, plain):
            _git(top, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "added")
            if version == "4":
                _git(top, "update-index", "--index-version", "4")
        status = _git(mp, "status", "--porcelain").stdout
        assert status == _git(plain, "status", "--porcelain").stdout == "M  .gitmodules\nA  added\n"
        got = {(c.path, str(c.status)) for c in vault.workspace("main").status()}
        assert got == {(".gitmodules", "modified"), ("added", "added")}
        saved = checkpoint.save(vault, "main", message="right after submodule add")
        assert saved.created
        _git(plain, "add", "-A")
        _git(plain, *who, "commit", "-q", "-m", "a submodule added")
        ls = ["ls-tree", "-r", "HEAD"]
        assert git("--git-dir", vault.path, "ls-tree", "-r", saved.checkpoint.commit) == git(
            "-C", str(plain), *ls
        )
        assert git("--git-dir", vault.path, "ls-tree", "main", "added").split()[:3] == [
            "160000",
            "commit",
            link,
        ]
        assert _git(mp, "status", "--porcelain").stdout == "" == _git(plain, "status", "--porcelain").stdout
        assert vault.workspace("main").status() == []
        assert checkpoint.save(vault, "main", message="again").created is False
        assert (mp / "added" / "l.txt").read_text() == "lib\n"
    finally:
        mounts.unmount(home, vault, "main")


@pytest.mark.parametrize("replace", ["files", "nothing"])
def test_a_submodule_git_replaces_or_drops_in_the_mount_stays_so(
    home: Home, served: Server, tmp_path: Path, backend: str, replace: str
) -> None:
    """A person replaces the submodule by a directory of files (`git rm --cached sub`, the
    files moved in, `git add sub`, `git commit`) or drops it keeping its directory (`git rm
    --cached sub`, `git commit`) in the mount, beside a plain clone doing the same: the
    files stay in the mount, avfs's status is empty and the next checkpoint records nothing
    (the tree is the plain clone's). Before (review10), git's base move held the old
    gitlink in the view: status listed the gitlink added (and the files deleted), and the
    next checkpoint put the gitlink back over the person's commit (the files left in the
    mount but out of every commit, the overlay backend; a dropped submodule on both)."""
    vault = home.clone_vault(served.url("super.git"), "s")
    plain = _plain(served, tmp_path / "plain")
    mp = tmp_path / "m"
    _mount(home, vault, mp, backend)
    who = ["-c", "user.name=t", "-c", "user.email=t@t"]
    try:
        for top in (mp, plain):
            _git(top, "rm", "--cached", "-q", SUB)
            if replace == "files":  # (pure FUSE takes no file below a submodule: moved in)
                (top / SUB).rmdir()
                (top / "vendored").mkdir()
                (top / "vendored" / "f.txt").write_text("vendored\n")
                (top / "vendored").rename(top / SUB)
                _git(top, "add", SUB)
            _git(top, *who, "commit", "-q", "-m", f"submodule replaced by {replace}")
        assert _git(mp, "status", "--porcelain").stdout == _git(plain, "status", "--porcelain").stdout
        assert vault.workspace("main").status() == []
        assert checkpoint.save(vault, "main", message="after").created is False
        ls = ["ls-tree", "-r", "HEAD"]
        assert git("--git-dir", vault.path, *ls) == git("-C", str(plain), *ls)
        assert _tree(mp) == _tree(plain)
        if replace == "files":
            assert (mp / SUB / "f.txt").read_text() == "vendored\n"
    finally:
        mounts.unmount(home, vault, "main")
