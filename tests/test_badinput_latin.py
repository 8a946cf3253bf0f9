"""A real repository whose history names a file with bytes that are not UTF-8 (a Latin-1
name, ``caf\\351.txt``, recorded by git itself: ``git update-index --index-info``), brought
in by ``vault create --from``, ``vault clone`` and ``vault clone --lazy``: the later commands
work on it (status, diff, show, log -p, checkpoint, fork and merge, export, an exec), the
name shown C-quoted as git shows it and exported under its own bytes. A checkout whose
*uncommitted* change names such a file is refused before anything is made (the import
failed half way, the vault left without its op log entry). docs/security.md, bad input.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import CliResult, git
from .test_json_everypath import _changed, _home_state

Cli = Callable[..., CliResult]

LATIN = b"caf\xe9.txt"
QUOTED = '"b/caf\\351.txt"'  # how git's diff labels it


def _git(*args: str, cwd: Path) -> str:
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]
    return subprocess.run(["git", *ident, *args], cwd=cwd, capture_output=True, check=True).stdout.decode()


@pytest.fixture(scope="module")
def latin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A checkout (and a bare copy served over file://, filters allowed) of two commits,
    the second adding ``caf\\351.txt`` beside ``ok.txt``."""
    top = tmp_path_factory.mktemp("latin")
    src = top / "src"
    src.mkdir()
    _git("init", "-q", cwd=src)
    (src / "ok.txt").write_bytes(b"ok\n")
    _git("add", "ok.txt", cwd=src)
    _git("commit", "-qm", "one", cwd=src)
    oid = (
        subprocess.run(
            ["git", "hash-object", "-w", "--stdin"],
            cwd=src,
            input=b"latin\n",
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    line = b"100644 blob " + oid.encode() + b"\t" + LATIN + b"\n"
    subprocess.run(["git", "update-index", "--index-info"], cwd=src, input=line, check=True)
    Path(os.fsdecode(bytes(src) + b"/" + LATIN)).write_bytes(b"latin\n")  # checked out, as git would
    _git("commit", "-qm", "two", cwd=src)
    _git("clone", "-q", "--bare", str(src), str(top / "srv.git"), cwd=top)
    _git("config", "uploadpack.allowFilter", "true", cwd=top / "srv.git")
    yield src


def _checkout(latin: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "checkout"
    _git("clone", "-q", str(latin), str(dest), cwd=tmp_path)
    return dest


@pytest.mark.parametrize("change", ["untracked", "deleted"])
def test_an_uncommitted_name_not_utf8_refuses_the_import_and_makes_nothing(
    cli: Cli, latin: Path, tmp_path: Path, change: str
) -> None:
    src = _checkout(latin, tmp_path)
    if change == "untracked":
        Path(os.fsdecode(bytes(src) + b"/un\xff.txt")).write_bytes(b"x\n")
    else:
        os.unlink(os.fsdecode(bytes(src) + b"/" + LATIN))
    status = git("-C", str(src), "status", "--porcelain")
    assert cli("vault", "create", "other").code == 0  # a home that has something to lose
    before = _home_state(os.environ["AVFS_HOME"])
    r = cli("--json", "vault", "create", "v", "--from", str(src))
    assert r.code != 0 and r.code != 70, (r.code, r.out)
    err = r.json()["error"]
    assert err["code"] == "invalid_path", err
    want = "un\\xff.txt" if change == "untracked" else "caf\\xe9.txt"
    assert want in err["message"] and "nothing was imported" in err["message"], err
    assert "rename it" in err["hint"], err
    assert _changed(before, _home_state(os.environ["AVFS_HOME"])) == []  # no vault, half made or not
    assert git("-C", str(src), "status", "--porcelain") == status
    h = cli("vault", "create", "v", "--from", str(src))  # the human line says it in words
    assert h.code == r.code and "not UTF-8 text" in h.err and "\\udc" not in h.err, h.err


@pytest.fixture(params=["import", "clone", "lazy"])
def imported(request: pytest.FixtureRequest, cli: Cli, latin: Path, tmp_path: Path) -> str:
    url = "file://" + str(latin.parent / "srv.git")
    how = {
        "import": ("vault", "create", "v", "--from", str(_checkout(latin, tmp_path))),
        "clone": ("vault", "clone", url, "v"),
        "lazy": ("vault", "clone", "--lazy", url, "v"),
    }[request.param]
    r = cli(*how)
    assert r.code == 0, r.err
    return str(request.param)


def test_a_history_naming_a_file_not_utf8_wedges_no_later_command(
    cli: Cli, imported: str, tmp_path: Path
) -> None:
    st = cli("--vault", "v", "--json", "status").json()
    assert st["clean"] is True and st["not_recorded"] == [], st
    for args in (("diff", "HEAD~1", "HEAD"), ("show", "HEAD"), ("log", "-p")):
        r = cli("--vault", "v", *args)
        assert r.code == 0 and QUOTED in r.out, (args, r.code, r.err)  # (was internal, 70)
    d = cli("--vault", "v", "--json", "diff", "HEAD~1", "HEAD").json()
    assert QUOTED in d["patch"] and d["changes"][0]["path"] == "caf\udce9.txt", d
    assert cli("--vault", "v", "write", "new.txt", "new").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "c1").code == 0
    assert cli("vault", "fork", "v:main", "b").code == 0
    assert cli("--vault", "v:b", "write", "b.txt", "b").code == 0
    assert cli("--vault", "v:b", "checkpoint", "save").code == 0
    assert cli("--vault", "v:main", "merge", "b").code == 0
    vault = os.path.join(os.environ["AVFS_HOME"], "vaults", "v.git")
    tree = git("--git-dir", vault, "ls-tree", "--name-only", "refs/heads/main")
    assert tree.split("\n") == ["b.txt", '"caf\\351.txt"', "new.txt", "ok.txt", ""], tree
    out = tmp_path / "export"
    r = cli("export", "v:main", str(out))
    assert r.code == 0, r.err  # (was invalid_path: no export of such a fork at all)
    assert sorted(os.listdir(bytes(out))) == [b"b.txt", LATIN, b"new.txt", b"ok.txt"]
    assert Path(os.fsdecode(bytes(out) + b"/" + LATIN)).read_bytes() == b"latin\n"
    if imported == "import":  # one confined command in a mount of it (the default backend)
        r = cli("--vault", "v", "--json", "proxy", "exec", "--", "sh", "-c", "ls > listing.txt")
        assert r.code == 0, (r.out, r.err)
        tree = git("--git-dir", vault, "ls-tree", "--name-only", "refs/heads/main")
        assert '"caf\\351.txt"' in tree.split("\n") and "listing.txt" in tree, (
            tree
        )  # kept by the exec's commit
        listed = subprocess.run(
            ["git", "--git-dir", vault, "cat-file", "blob", "refs/heads/main:listing.txt"],
            capture_output=True,
        ).stdout
        assert LATIN in listed.split(b"\n") and b"ok.txt" in listed, listed  # the command saw it
        assert cli("--vault", "v", "--json", "status").json()["clean"] is True
