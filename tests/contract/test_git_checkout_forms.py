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
from ..gitmount import _git, _status
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


def _source(tmp: Path, attrs: bytes | None, env: dict[str, str]) -> Path:
    """A git repository of ansible-core's CRLF files, a slice of its others and the crafted
    ones, committed by git under ``attrs`` (git's own clean conversions make the blobs; git
    runs in ``env``)."""
    src = realdata.extract(realdata.pypi_sdist("ansible-core", "2.17.5"), tmp / "sdist")
    every = sorted(p for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    picked = [p for p in every if b"\r" in p.read_bytes() and p.suffix in (".ps1", ".csv", ".txt")]
    assert len(picked) >= 4, picked
    picked += [p for p in every[::150] if p.suffix in (".py", ".txt", ".yml", ".ps1")]
    repo = tmp / "src"
    files = {f"ansible/{p.relative_to(src)}": p.read_bytes() for p in picked}
    files.update(CRAFTED)
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
    made = {}
    for name, attrs, extra in (
        ("attributes", ATTRS, {}),
        ("global", None, {"GIT_CONFIG_GLOBAL": str(top / "gitconfig")}),
        ("none", None, {}),
    ):
        (top / name).mkdir()
        made[name] = _source(top / name, attrs, {**env, **extra})
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
    cli_proc: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    sources: dict[str, Path],
) -> Iterator[tuple[Path, Path, Any]]:
    """(mount of fork f, a plain clone of f beside it, run avfs in the mount); the source
    under ``ATTRS``, or under none with ``core.autocrlf=true`` set in the vault ("vault"),
    in the person's ``~/.gitconfig`` ("global") or ``$XDG_CONFIG_HOME/git/config`` ("xdg"):
    git in the mount reads those as the plain clone's git does; or ``ATTRS`` in git's global
    attribute file, ``$XDG_CONFIG_HOME/git/attributes`` ("attributes-xdg"; gitmodel9: the
    mount showed the blobs' bytes there, the tree having no ``.gitattributes``) or the
    ``core.attributesFile`` of a config ``$GIT_CONFIG_GLOBAL`` names ("attributes-file";
    gitmodel9: `vault create --from` asked the source's status without it, and kept every
    file those rules convert as an uncommitted change); or ``core.autocrlf=true`` in the
    config ``$GIT_CONFIG_GLOBAL`` names, ``~/.gitconfig`` (which git then does not read)
    saying ``input`` ("config-global")."""
    where = getattr(request, "param", "attributes")
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
    assert cli_proc("vault", "create", "v", "--from", str(repo)).code == 0
    assert cli_proc("vault", "fork", "v:main", "f").code == 0
    vault = cli_proc("--json", "vault", "path", "v").json()["path"]
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
    res = cli_proc("--vault", "v:f", "mount", "--backend", backend, str(mp))
    assert res.code == 0, res.err

    def avfs(*args: str) -> Any:
        return cli_proc(*args, cwd=str(mp))

    try:
        yield mp, plain, avfs
    finally:
        cli_proc("--vault", "v:f", "unmount", str(mp))


def _both(mp: Path, plain: Path, path: str, data: bytes) -> None:
    for root in (mp, plain):
        (root / path).write_bytes(data)


@pytest.mark.parametrize(
    "forms",
    ["attributes", "vault", "global", "xdg", "attributes-xdg", "attributes-file", "config-global"],
    indirect=True,
)
def test_a_mount_shows_what_git_checkout_writes(
    forms: tuple[Path, Path, Any], backend: str, cli_proc: Any
) -> None:
    mp, plain, avfs = forms
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
    assert cli_proc("--vault", "v:f", "unmount", str(mp)).code == 0
    assert cli_proc("--vault", "v:f", "mount", "--backend", backend, str(mp)).code == 0
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
    backend: str, cli_proc: Any, tmp_path: Path
) -> None:
    """A checkpoint or a restore whose only change is a ``.gitattributes`` changes the form of files whose blobs it left alone: the mount
    shows them as a checkout of the new commit writes them at once, sizes and bytes
    (docs/fuse.md, "Checkout conversions"). Before, the kernel kept the old form's size
    (both backends: pure FUSE forgot only the paths the trees differ at; the overlay's
    lower layer is cached for good), the new form was served cut to it, and the mount's
    index kept the old size, which git takes for a change without reading the file."""
    repo = tmp_path / "src"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "d" / "e").mkdir(parents=True)
    lf = {"d/a.txt": b"one\ntwo\nthree\n", "d/e/b.txt": b"deep\nfile\n", "top.txt": b"top\n"}
    for p, data in lf.items():
        (repo / p).write_bytes(data)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "files")
    crlf = {p: data.replace(b"\n", b"\r\n") for p, data in lf.items()}
    assert cli_proc("vault", "create", "v", "--from", str(repo)).code == 0
    mp = tmp_path / "m"
    mp.mkdir()
    assert cli_proc("--vault", "v:main", "mount", "--backend", backend, str(mp)).code == 0
    try:
        _shown(mp, lf)  # (the kernel has the files' attributes and pages)
        (mp / "d" / ".gitattributes").write_bytes(b"*.txt text eol=crlf\n")
        res = cli_proc("checkpoint", "save", "-m", "attrs", cwd=str(mp))
        assert res.code == 0, res.err
        _shown(mp, {**lf, "d/a.txt": crlf["d/a.txt"], "d/e/b.txt": crlf["d/e/b.txt"]})
        assert _git(mp, "status", "--porcelain").stdout == ""
        assert _status(lambda *a: cli_proc(*a, cwd=str(mp)))["changes"] == []
        # at the root: every file below
        (mp / ".gitattributes").write_bytes(b"*.txt text eol=crlf\n")
        res = cli_proc("checkpoint", "save", "-m", "root attrs", cwd=str(mp))
        assert res.code == 0, res.err
        _shown(mp, crlf)
        assert _git(mp, "status", "--porcelain").stdout == ""
        assert _status(lambda *a: cli_proc(*a, cwd=str(mp)))["changes"] == []
        # and a restore back: every file as the blob is
        res = cli_proc("checkpoint", "restore", "HEAD~2", cwd=str(mp))
        assert res.code == 0, res.err
        _shown(mp, lf)
        assert _git(mp, "status", "--porcelain").stdout == ""
        assert _status(lambda *a: cli_proc(*a, cwd=str(mp)))["changes"] == []
    finally:
        cli_proc("--vault", "v:main", "unmount", str(mp))
