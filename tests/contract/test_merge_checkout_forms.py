"""A file `avfs merge` does not touch keeps its bytes when the merge records a
`.gitattributes` that converts otherwise on checkout (`* text=auto eol=crlf`, written and
not committed: the merge's capture records it), as git's work tree keeps it after `git
merge` (found in gitmodel15, seed 1321's family: docs/fuse.md "gitmodel15"). On the
overlay backend the lower layer shows the new checkout form (CRLF) after the merge's move
while the kernel keeps the old size: once the file's pages are dropped (here
`POSIX_FADV_DONTNEED`; memory pressure does it at random), the mount shows the CRLF form
cut to the LF size. Real mounts, real git; the CLI calls that make the other fork and
merge it run in the test's process (``conftest.run_in_process``: ~0.25 s of CPU a process,
most of the module's CPU, suitetime17), but the one case that is about a merge from
outside the mount by a process of its own (``merge_cli_outside``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import run_in_process
from ..gitmount import _git, mount_fork
from .backends import MOUNTS

pytestmark = pytest.mark.backends(*MOUNTS)


@pytest.fixture
def mounted(backend: str, cli_proc: Any, tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as m:
        yield m


def _avfs(*args: str) -> Any:
    """`avfs ARGS` from outside the mount, in the test's process."""
    return run_in_process(list(args))


def _dropped(path: Path) -> bytes:
    """``path``'s bytes read after the kernel's pages of it were dropped."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return path.read_bytes()


def test_a_file_the_merge_does_not_touch_keeps_its_bytes(mounted: Any, backend: str) -> None:
    mp, avfs = mounted
    cli = _avfs
    long_text = b"".join(b"line %d of a text file\n" % i for i in range(2000))
    (mp / "long.txt").write_bytes(long_text)
    assert avfs("checkpoint", "save", "-m", "a long text file").code == 0
    (mp / ".gitattributes").write_text("* text=auto eol=crlf\n")
    assert cli("vault", "fork", "v:f", "g").code == 0
    assert cli("--vault", "v:g", "write", "g.txt", "from g\n").code == 0
    assert cli("--vault", "v:g", "checkpoint", "save", "-m", "g").code == 0
    res = avfs("merge", "g", "--no-ff")
    assert res.code == 0, res.out + res.err
    assert _git(mp, "log", "-1", "--format=%P").stdout.count(" ") == 1  # (a merge commit)
    assert (mp / "g.txt").read_bytes() == b"from g\r\n"  # (what the merge brings: checked out, as git does)
    # as git's work tree after `git merge`: the files the merge did not touch, as they were
    assert _dropped(mp / "long.txt") == long_text
    assert _dropped(mp / "a.txt") == b"one\n"


# -- every move of the view against a plain git work tree beside the mount ----------------

LONG = b"".join(b"line %d of a text file\n" % i for i in range(2000))
ATTRS = b"* text=auto eol=crlf\n"


def _files(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` but git's own, by path, read with its pages dropped."""
    out: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            if name == ".git":
                continue
            p = Path(dirpath) / name
            out[p.relative_to(root).as_posix()] = _dropped(p)
    return out


def _vault_git(*args: str) -> str:
    vault = Path(os.environ["AVFS_HOME"]) / "vaults" / "v.git"
    return _git(vault, *args).stdout


def _fresh(tmp: Path, commit: str) -> dict[str, bytes]:
    """What a fresh checkout of ``commit`` writes (`git worktree add` of the vault)."""
    vault = Path(os.environ["AVFS_HOME"]) / "vaults" / "v.git"
    wt = tmp / f"fresh-{commit[:12]}"
    _git(vault, "worktree", "add", "-q", "--detach", str(wt), commit)
    try:
        return _files(wt)
    finally:
        _git(vault, "worktree", "remove", "--force", str(wt))


@pytest.mark.parametrize(
    "case",
    [
        "checkpoint",  # the attributes checkpointed in the mount: `git add -A && git commit`
        "merge_captured",  # the attributes written, `avfs merge` captures them (the strict xfail's)
        "merge_brought",  # the source's commit brings them: `git merge --no-ff`
        "merge_fast_forward",  # ... a fast-forward: `git merge` (the files it changes only)
        "merge_cli_outside",  # `avfs --vault v:f merge` from outside the mount, as a process
        "git_merge_in_mount",  # `git merge --no-ff g` by git itself in the mount
        "git_reset_in_mount",  # `git reset --hard g` by git itself in the mount
        "restore",  # `avfs checkpoint restore`: a fresh checkout by design (docs/fuse.md)
        "undo",  # `avfs undo` of a merge that brought them: a fresh checkout of the fork before
    ],
)
def test_every_move_of_the_view_shows_whole_files_as_git_does(
    mounted: Any, backend: str, cli_proc: Any, tmp_path: Path, case: str
) -> None:
    """The bytes the mount shows of every file, with the kernel's pages dropped, after each
    move of the view a ``.gitattributes`` of ``* text=auto eol=crlf`` comes with, against a
    plain git work tree beside it that did the same with git: the files a move leaves
    alone keep their bytes (git rewrites only what it changes), nothing is ever cut to
    another form's size, and git's status in the mount is as clean as the plain one's.
    A restore and an undo show a fresh checkout (gitmodel10's design): compared with git's
    fresh `worktree add` of the commit."""
    mp, avfs = mounted
    (mp / "long.txt").write_bytes(LONG)
    assert avfs("checkpoint", "save", "-m", "a long text file").code == 0
    plain = tmp_path / "plain"
    _git(
        tmp_path,
        "clone",
        "-q",
        "-b",
        "f",
        str(Path(os.environ["AVFS_HOME"]) / "vaults" / "v.git"),
        str(plain),
    )
    assert _files(mp) == _files(plain)  # (the kernel holds each file's size and pages now)

    def git_both(*args: str) -> None:
        _git(mp, *args)
        _git(plain, *args)

    def plain_fetch_g() -> None:
        _git(plain, "fetch", "-q", "origin", "g:g")

    def source_with_attributes() -> None:
        assert _avfs("vault", "fork", "v:f", "g").code == 0
        assert _avfs("--vault", "v:g", "write", ".gitattributes", ATTRS.decode()).code == 0
        assert _avfs("--vault", "v:g", "write", "g.txt", "from g\n").code == 0
        assert _avfs("--vault", "v:g", "checkpoint", "save", "-m", "g").code == 0
        plain_fetch_g()

    fresh: str | None = None  # the commit whose fresh checkout the mount shows (restore, undo)
    if case == "checkpoint":
        for root in (mp, plain):
            (root / ".gitattributes").write_bytes(ATTRS)
        assert avfs("checkpoint", "save", "-m", "attributes").code == 0
        _git(plain, "add", "-A")
        _git(plain, "commit", "-qm", "attributes")
    elif case == "merge_captured":
        for root in (mp, plain):
            (root / ".gitattributes").write_bytes(ATTRS)
        assert _avfs("vault", "fork", "v:f", "g").code == 0
        assert _avfs("--vault", "v:g", "write", "g.txt", "from g\n").code == 0
        assert _avfs("--vault", "v:g", "checkpoint", "save", "-m", "g").code == 0
        res = avfs("merge", "g", "--no-ff")
        assert res.code == 0, res.out + res.err
        _git(plain, "add", "-A")
        _git(plain, "commit", "-qm", "attributes")
        plain_fetch_g()
        _git(plain, "merge", "-q", "--no-ff", "-m", "merge g", "g")
    elif case in ("merge_brought", "merge_fast_forward", "merge_cli_outside"):
        source_with_attributes()
        ff = case == "merge_fast_forward"
        if case == "merge_cli_outside":
            res = cli_proc("--vault", "v:f", "merge", "g", "--no-ff")
        else:
            res = avfs("merge", "g", *(() if ff else ("--no-ff",)))
        assert res.code == 0, res.out + res.err
        _git(plain, "merge", "-q", *(("--ff-only",) if ff else ("--no-ff", "-m", "merge g")), "g")
    elif case == "git_merge_in_mount":
        source_with_attributes()
        git_both("merge", "-q", "--no-ff", "-m", "merge g", "g")
    elif case == "git_reset_in_mount":
        source_with_attributes()
        git_both("reset", "-q", "--hard", "g")
    elif case == "restore":
        for root in (mp, plain):
            (root / ".gitattributes").write_bytes(ATTRS)
        assert avfs("checkpoint", "save", "-m", "attributes").code == 0
        with_attrs = _git(mp, "rev-parse", "HEAD").stdout.strip()
        assert avfs("checkpoint", "restore", "HEAD~1").code == 0
        assert avfs("checkpoint", "restore", with_attrs).code == 0
        fresh = with_attrs
    else:
        assert case == "undo"
        source_with_attributes()
        before = _git(mp, "rev-parse", "HEAD").stdout.strip()
        assert avfs("merge", "g", "--no-ff").code == 0
        assert avfs("undo").code == 0
        assert _git(mp, "rev-parse", "HEAD").stdout.strip() == before
        fresh = before
    shown = _files(mp)
    expected = _fresh(tmp_path, fresh) if fresh is not None else _files(plain)
    assert shown == expected
    assert _git(mp, "status", "--porcelain").stdout == ""


def test_a_real_project_s_files_keep_their_bytes_through_merges_that_bring_attributes(
    mounted: Any, backend: str, tmp_path: Path
) -> None:
    """Real data: ansible-core 2.17.5's files with CRs (CRLF, mixed, lone CR, binaries
    holding them) and a sample of its others, checkpointed in the mount as they are; then a
    merge that brings `* text=auto eol=crlf` (git's own example) and a fast-forward that
    brings attrs 24.2.0's real ``.gitattributes`` (`* text=auto eol=lf`, from its sdist) in
    its place. After each, every file in the mount, its pages dropped, is what a plain git
    work tree that did the same merges holds, and git's status in the mount is empty."""
    from .test_git_checkout_forms import sdist_tree

    mp, avfs = mounted
    src = sdist_tree("ansible-core", "2.17.5")  # (read only)
    every = sorted(p for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    with_cr = [p for p in every if b"\r" in p.read_bytes()]
    assert len(with_cr) >= 5, with_cr  # (the sdist's own CRLF files: the point of taking it)
    for p in {*with_cr, *every[:: max(1, len(every) // 80)]}:
        dest = mp / "real" / p.relative_to(src)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(p.read_bytes())
    assert avfs("checkpoint", "save", "-m", "ansible-core's files").code == 0
    plain = tmp_path / "plain"
    vault = Path(os.environ["AVFS_HOME"]) / "vaults" / "v.git"
    _git(tmp_path, "clone", "-q", "-b", "f", str(vault), str(plain))
    assert _files(mp) == _files(plain)
    attrs_sdist = sdist_tree("attrs", "24.2.0")
    real_attributes = next(attrs_sdist.rglob(".gitattributes")).read_text()
    assert "text=auto eol=lf" in real_attributes
    for n, (text, ff) in enumerate([(ATTRS.decode(), False), (real_attributes, True)]):
        g = f"g{n}"
        assert _avfs("vault", "fork", "v:f", g).code == 0
        assert _avfs("--vault", f"v:{g}", "write", ".gitattributes", text).code == 0
        assert _avfs("--vault", f"v:{g}", "checkpoint", "save", "-m", g).code == 0
        res = avfs("merge", g, *(() if ff else ("--no-ff",)))
        assert res.code == 0, res.out + res.err
        _git(plain, "fetch", "-q", "origin", f"{g}:{g}", "+f:refs/remotes/origin/f")
        if ff:  # (the plain side's merge commit is its own: on the vault's, the same tree)
            _git(plain, "reset", "-q", "--soft", "origin/f~1")
        _git(plain, "merge", "-q", *(("--ff-only",) if ff else ("--no-ff", "-m", f"merge {g}")), g)
        assert _files(mp) == _files(plain), g
        assert _git(mp, "status", "--porcelain").stdout == "", g
