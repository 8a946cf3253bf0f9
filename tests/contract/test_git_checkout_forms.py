"""A mount shows each file of its base as ``git checkout`` writes it (docs/fuse.md,
"Checkout conversions"): ``eol=crlf`` files with CRLF, ``$Id$`` expanded, a
``working-tree-encoding=UTF-16`` file in UTF-16, and every text file with CRLF under
``core.autocrlf=true`` with no attribute file at all. Before, the mount showed the blobs'
bytes: LF, ``$Id$``, UTF-8; git's ``status`` took such a file for modified once its stat
data were read (the index held the blob's size) and failed on the UTF-16 one ("BOM is
required"), and a checkpoint of a UTF-16 file recorded UTF-16 where ``git add`` stores
UTF-8.

Differential: a plain ``git clone`` of the vault beside the mount, the same steps on both
(an edit of each kind, a checkpoint against ``git add -A``, a restore against ``git reset
--hard``, a remount), every file's bytes compared, and git's ``status`` in the mount empty
after every file's stat data changed. Real files: ansible-core's CRLF ones
(tests/realdata.py). Both backends, the CLI as a person runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .. import realdata
from ..conftest import AUTHOR
from ..gitmount import _git, _status, warm
from .backends import MOUNTS

pytestmark = pytest.mark.backends(*MOUNTS)

ATTRS = (
    b"*.ps1 text eol=crlf\n*.csv text eol=crlf\n*.txt text=auto\n*.c ident\n"
    b"*.u16 working-tree-encoding=UTF-16\n"
)
CRAFTED = {
    "src/id.c": b"/* $Id$ */\nint x;\n",
    "src/two.c": b"// $Id$ and $Id: old $\n",
    "enc/w.u16": "h\u00e9llo\nw\u00f6rld\n".encode("utf-16"),
    "plain.md": b"stays\n",
}


def sdist_tree(project: str, version: str) -> Path:
    """``project``'s released sdist as tests/realdata.py unpacked it once (its cache), for
    a test that only reads its files: `realdata.extract` copies it first (`cp -a` of
    ansible-core's 4,855 files, ~0.4 s of CPU a call, suitetime27)."""
    top = realdata._unpacked(realdata.pypi_sdist(project, version))
    tops = list(top.iterdir())
    return tops[0] if len(tops) == 1 and tops[0].is_dir() else top


def _ansible_files(tmp: Path) -> dict[str, bytes]:
    """ansible-core's CRLF files and a slice of its others, by their paths in the sources."""
    src = sdist_tree("ansible-core", "2.17.5")
    every = sorted(p for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    picked = [p for p in every if p.suffix in (".ps1", ".csv", ".txt") and b"\r" in p.read_bytes()]
    assert len(picked) >= 4, picked
    picked += [p for p in every[::150] if p.suffix in (".py", ".txt", ".yml", ".ps1")]
    return {f"ansible/{p.relative_to(src)}": p.read_bytes() for p in picked}


def _source(tmp: Path, ansible: dict[str, bytes], attrs: bytes | None, env: dict[str, str]) -> Path:
    """A git repository of ``ansible``'s files and the crafted ones, committed by git under
    ``attrs`` (git's own clean conversions make the blobs; git runs in ``env``)."""
    repo = tmp / "src"
    files = {**ansible, **CRAFTED}
    if attrs is not None:
        files[".gitattributes"] = attrs
    for p, data in files.items():
        (repo / p).parent.mkdir(parents=True, exist_ok=True)
        (repo / p).write_bytes(data)
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-qm", "files")):
        done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return repo


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three sources the cases need, each made once for the module (an sdist of 4,855
    files copied and read took ~4.6 s of each case at load 20) and copied by each case:
    ``"attributes"``, ``ATTRS`` in the tree; ``"global"``, no attribute file but ``ATTRS`` as
    git's global attributes (the cases that set them: git's ``add`` converts by them);
    ``"none"``, neither. Made in a home as the hermetic fixture makes it (the person's
    author, no system config, nothing of the real ``$HOME``)."""
    top = tmp_path_factory.mktemp("forms-sources")
    user = top / "userhome"
    user.mkdir()
    (user / ".gitconfig").write_text(f"[user]\n\tname = {AUTHOR[0]}\n\temail = {AUTHOR[1]}\n")
    (top / "attrs").write_bytes(ATTRS)
    (top / "gitconfig").write_text(f"[core]\n\tattributesFile = {top / 'attrs'}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "AVFS_"))}
    env.update(HOME=str(user), XDG_CONFIG_HOME=str(user / ".config"), GIT_CONFIG_NOSYSTEM="1")
    env.update(GIT_AUTHOR_NAME=AUTHOR[0], GIT_AUTHOR_EMAIL=AUTHOR[1])
    env.update(GIT_COMMITTER_NAME=AUTHOR[0], GIT_COMMITTER_EMAIL=AUTHOR[1])
    ansible = _ansible_files(top)  # (the sdist copied and read once, not once a source)
    made = {}
    for name, attrs, extra in (
        ("attributes", ATTRS, {}),
        ("global", None, {"GIT_CONFIG_GLOBAL": str(top / "gitconfig")}),
        ("none", None, {}),
    ):
        (top / name).mkdir()
        made[name] = _source(top / name, ansible, attrs, {**env, **extra})
    return made


def _tree_files(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for f in files:
            if f == ".git":
                continue
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def _same(mp: Path, plain: Path) -> None:
    want, got = _tree_files(plain), _tree_files(mp)
    assert sorted(got) == sorted(want)
    wrong = [p for p in want if got[p] != want[p]]
    assert not wrong, [(p, want[p][:60], got[p][:60]) for p in wrong[:5]]


def _clean_after_a_stat_change(mp: Path, avfs: Any) -> None:
    """git sees nothing changed, also once it reads every file's stat data (a size the
    index holds that is not the file's is a change to git), nor does avfs."""
    assert _git(mp, "status", "--porcelain").stdout == ""
    for p in _tree_files(mp):
        os.utime(mp / p)
    st = _git(mp, "status", "--porcelain")
    assert st.stdout == "" and "error" not in st.stderr, st.stdout + st.stderr
    assert _git(mp, "diff", "--stat").stdout == ""
    doc = _status(avfs)
    assert doc["changes"] == [] and not doc["stale"], doc


@pytest.fixture
def forms(
    backend: str,
    cli: Any,
    cli_proc: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    sources: dict[str, Path],
) -> Iterator[tuple[Path, Path, Any, Any]]:
    """(mount of fork f, a plain clone of f beside it, run avfs in the mount, run avfs); the source
    under ``ATTRS``, or under none with ``core.autocrlf=true`` set in the vault ("vault"),
    in the person's ``~/.gitconfig`` ("global") or ``$XDG_CONFIG_HOME/git/config`` ("xdg"):
    git in the mount reads those as the plain clone's git does; or ``ATTRS`` in git's global
    attribute file, ``$XDG_CONFIG_HOME/git/attributes`` ("attributes-xdg"; gitmodel9: the
    mount showed the blobs' bytes there, the tree having no ``.gitattributes``) or the
    ``core.attributesFile`` of a config ``$GIT_CONFIG_GLOBAL`` names ("attributes-file";
    gitmodel9: `vault create --from` asked the source's status without it, and kept every
    file those rules convert as an uncommitted change); or ``core.autocrlf=true`` in the
    config ``$GIT_CONFIG_GLOBAL`` names, ``~/.gitconfig`` (which git then does not read)
    saying ``input`` ("config-global").

    The CLI runs as a person's process in the first case ("attributes") on the overlay
    backend, everywhere else in the test's process (``conftest.run_in_process``: the same
    environment, directory and config read at each call; the mount's daemon a process
    either way): ~15 processes a case, ~0.25 s of CPU each, were most of the module's CPU
    (suitetime17: the pure-FUSE case's processes too, the one of the file kept); there the
    mounts' daemons are forked by the test process's zygote (tests/gitmount.py ``warm``)."""
    where = getattr(request, "param", "attributes")
    run = cli_proc if where == "attributes" and backend == "overlay" else warm(cli)
    autocrlf = where in ("vault", "global", "xdg")
    if where == "config-global":  # core.autocrlf in the config $GIT_CONFIG_GLOBAL names (gitmodel11:
        # libgit2 read ~/.gitconfig, which git then does not, and the mount showed LF)
        (tmp_path / "gitconfig").write_text("[core]\n\tautocrlf = true\n")
        monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
        Path(os.environ["HOME"], ".gitconfig").write_text("[core]\n\tautocrlf = input\n")
    if where == "attributes-xdg":  # git's default global attribute file
        at = Path(os.environ["XDG_CONFIG_HOME"], "git", "attributes")
        at.parent.mkdir(parents=True, exist_ok=True)
        at.write_bytes(ATTRS)
    elif where == "attributes-file":  # core.attributesFile of the config $GIT_CONFIG_GLOBAL names
        (tmp_path / "attrs").write_bytes(ATTRS)
        (tmp_path / "gitconfig").write_text(f"[core]\n\tattributesFile = {tmp_path / 'attrs'}\n")
        monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    kind = where if where == "attributes" else "global" if where.startswith("attributes-") else "none"
    repo = tmp_path / "src"
    shutil.copytree(sources[kind], repo, symlinks=True)
    assert run("vault", "create", "v", "--from", str(repo)).code == 0
    assert run("vault", "fork", "v:main", "f").code == 0
    vault = run("--json", "vault", "path", "v").json()["path"]
    if where == "vault":
        _git(vault, "config", "core.autocrlf", "true")
    elif autocrlf:
        xdg = Path(os.environ["XDG_CONFIG_HOME"], "git", "config")
        xdg.parent.mkdir(parents=True, exist_ok=True)
        at = Path(os.environ["HOME"], ".gitconfig") if where == "global" else xdg
        with open(at, "a") as fh:
            fh.write("[core]\n\tautocrlf = true\n")
    plain = tmp_path / "plain"
    config = ["-c", "core.autocrlf=true"] if where == "vault" else []
    _git(tmp_path, "clone", "-q", *config, "-b", "f", vault, str(plain))
    mp = tmp_path / "m"
    mp.mkdir()
    res = run("--vault", "v:f", "mount", "--backend", backend, str(mp))
    assert res.code == 0, res.err

    def avfs(*args: str) -> Any:
        return run(*args, cwd=str(mp))

    try:
        yield mp, plain, avfs, run
    finally:
        run("--vault", "v:f", "unmount", str(mp))


def _both(mp: Path, plain: Path, path: str, data: bytes) -> None:
    for root in (mp, plain):
        (root / path).write_bytes(data)


@pytest.mark.parametrize(
    "forms",
    ["attributes", "vault", "global", "xdg", "attributes-xdg", "attributes-file", "config-global"],
    indirect=True,
)
def test_a_mount_shows_what_git_checkout_writes(forms: tuple[Path, Path, Any, Any], backend: str) -> None:
    mp, plain, avfs, run = forms
    _same(mp, plain)
    _clean_after_a_stat_change(mp, avfs)
    # an edit of each kind, recorded as git add stores it
    ps1 = next(p for p in _tree_files(plain) if p.endswith(".ps1"))
    _both(mp, plain, ps1, (plain / ps1).read_bytes() + b"Write-Host added\r\n")
    _both(mp, plain, "enc/w.u16", "changed \u00e9\n".encode("utf-16"))
    _both(mp, plain, "src/id.c", b"/* $Id$ */\nint y;\n")
    res = avfs("--json", "checkpoint", "save", "-m", "edits")
    assert res.code == 0, res.err
    _git(plain, "add", "-A")
    assert _git(mp, "rev-parse", "HEAD^{tree}").stdout.strip() == _git(plain, "write-tree").stdout.strip()
    _git(plain, "commit", "-qm", "edits")
    _same(mp, plain)
    _clean_after_a_stat_change(mp, avfs)
    # a restore writes what git's reset --hard does
    res = avfs("checkpoint", "restore", "HEAD~1")
    assert res.code == 0, res.err
    _git(plain, "reset", "-q", "--hard", "HEAD~1")
    _same(mp, plain)
    _clean_after_a_stat_change(mp, avfs)
    # and so does a new mount
    assert run("--vault", "v:f", "unmount", str(mp)).code == 0
    assert run("--vault", "v:f", "mount", "--backend", backend, str(mp)).code == 0
    _same(mp, plain)
    _clean_after_a_stat_change(mp, avfs)


def _shown(mp: Path, want: dict[str, bytes]) -> None:
    """Each file of ``want`` shows those bytes, its size theirs, also read again with its
    pages dropped (a size the kernel kept from another form cut the new one short)."""
    for p, data in want.items():
        assert os.stat(mp / p).st_size == len(data), p
        assert (mp / p).read_bytes() == data, p
        fd = os.open(mp / p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            assert os.pread(fd, 1 << 16, 0) == data, p
        finally:
            os.close(fd)


def test_a_move_that_changes_attributes_shows_the_files_they_convert(
    backend: str, cli: Any, tmp_path: Path
) -> None:
    """A checkpoint whose only change is a ``.gitattributes`` leaves the files whose blobs
    it left alone as they are, as git's work tree after `git commit` (the twenty-fifth
    round, crlf1: it showed them in the new form); a restore to a commit whose attributes
    convert them otherwise shows them as a fresh checkout of it writes them, at once,
    sizes and bytes (docs/fuse.md, "Checkout conversions"). Before (the seventeenth
    round), the kernel kept the old form's size (both backends: pure FUSE forgot only the
    paths the trees differ at; the overlay's lower layer is cached for good), the new form
    was served cut to it, and the mount's index kept the old size, which git takes for a
    change without reading the file. The CLI runs in the test's process
    (``conftest.run_in_process``; the mount's daemon a process of its own)."""
    repo = tmp_path / "src"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "d" / "e").mkdir(parents=True)
    lf = {"d/a.txt": b"one\ntwo\nthree\n", "d/e/b.txt": b"deep\nfile\n", "top.txt": b"top\n"}
    for p, data in lf.items():
        (repo / p).write_bytes(data)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "files")
    crlf = {p: data.replace(b"\n", b"\r\n") for p, data in lf.items()}
    assert cli("vault", "create", "v", "--from", str(repo)).code == 0
    mp = tmp_path / "m"
    mp.mkdir()
    assert cli("--vault", "v:main", "mount", "--backend", backend, str(mp)).code == 0
    try:
        _shown(mp, lf)  # (the kernel has the files' attributes and pages)
        (mp / "d" / ".gitattributes").write_bytes(b"*.txt text eol=crlf\n")
        res = cli("checkpoint", "save", "-m", "attrs", cwd=str(mp))
        assert res.code == 0, res.err
        _shown(mp, lf)  # (as git's work tree keeps them after `git commit`)
        assert _git(mp, "status", "--porcelain").stdout == ""
        assert _status(lambda *a: cli(*a, cwd=str(mp)))["changes"] == []
        # at the root: every file below
        (mp / ".gitattributes").write_bytes(b"*.txt text eol=crlf\n")
        res = cli("checkpoint", "save", "-m", "root attrs", cwd=str(mp))
        assert res.code == 0, res.err
        _shown(mp, lf)
        assert _git(mp, "status", "--porcelain").stdout == ""
        assert _status(lambda *a: cli(*a, cwd=str(mp)))["changes"] == []
        with_attrs = _git(mp, "rev-parse", "HEAD").stdout.strip()
        # a restore to the files alone: each as its blob is
        res = cli("checkpoint", "restore", "HEAD~2", cwd=str(mp))
        assert res.code == 0, res.err
        _shown(mp, lf)
        assert _git(mp, "status", "--porcelain").stdout == ""
        assert _status(lambda *a: cli(*a, cwd=str(mp)))["changes"] == []
        # and back: a fresh checkout of the commit with the attributes (every file converted)
        res = cli("checkpoint", "restore", with_attrs, cwd=str(mp))
        assert res.code == 0, res.err
        _shown(mp, crlf)
        assert _git(mp, "status", "--porcelain").stdout == ""
        assert _status(lambda *a: cli(*a, cwd=str(mp)))["changes"] == []
    finally:
        cli("--vault", "v:main", "unmount", str(mp))
