"""A real repository whose history names a file with bytes that are not UTF-8 (a Latin-1
name, ``caf\\351.txt``, recorded by git itself: ``git update-index --index-info``), brought
in by ``vault create --from``, ``vault clone`` and ``vault clone --lazy``: the later commands
work on it (status, diff, show, log -p, checkpoint, fork and merge, export, an exec), the
name shown C-quoted as git shows it and exported under its own bytes. A checkout whose
*uncommitted* change names such a file is refused before anything is made (the import
failed half way, the vault left without its op log entry). docs/security.md, bad input.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from avfs_git.core.vaults.home import Home
from avfs_git.ops import mounts

from .conftest import IN_CI, CliResult, git
from .test_fuse import require_fuse
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


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_mount_reads_a_name_not_utf8_as_git_holds_it(
    cli: Cli, latin: Path, tmp_path: Path, home: Home, backend: str
) -> None:
    """Listed, looked up and read through the mount (git in it sees the same file), as the
    fork's git tree holds it; `avfs cat --json` too. Was `EINVAL` to `stat` (pure FUSE) and to
    `open` (both: the mount's paths and the overlay's lookups took text only). A write to the
    name: the overlay mount's upper layer keeps it and a checkpoint commits it; pure FUSE
    (whose changes are the overlay database's text paths) refuses it with `EINVAL`, as a
    file system that takes only UTF-8 names does, and changes nothing."""
    require_fuse()
    if backend == "overlay" and (why := mounts.overlay_available()) is not None:
        if IN_CI:
            pytest.fail(f"overlayfs must be available in CI: {why}")
        pytest.skip(f"requires overlayfs: {why}")
    assert cli("vault", "create", "v", "--from", str(_checkout(latin, tmp_path))).code == 0
    v = home.vault("v")
    vault = os.path.join(os.environ["AVFS_HOME"], "vaults", "v.git")
    mp = tmp_path / "mnt"
    mp.mkdir()
    name = bytes(mp) + b"/" + LATIN
    assert mounts.mount(home, v, "main", str(mp), backend=backend).backend == backend
    try:
        assert sorted(os.listdir(bytes(mp))) == [b".git", LATIN, b"ok.txt"]
        assert os.stat(name).st_size == len(b"latin\n")  # (pure FUSE: was EINVAL)
        with open(name, "rb") as fh:  # (both: was EINVAL)
            assert fh.read() == b"latin\n"
        ls = subprocess.run(["git", "ls-files", "-s", "-z"], cwd=mp, capture_output=True, check=True).stdout
        assert LATIN in ls, ls
        st = subprocess.run(["git", "status", "--porcelain"], cwd=mp, capture_output=True, check=True)
        assert st.stdout == b"", st.stdout  # git finds the file as its index has it
        doc = cli("--vault", "v", "--json", "cat", os.fsdecode(LATIN)).json()
        assert doc["files"][0]["content"] == "latin\n", doc  # (was invalid_path)
        tip = git("--git-dir", vault, "rev-parse", "refs/heads/main")
        if backend == "overlay":
            with open(name, "ab") as fh:
                fh.write(b"more\n")
            assert cli("--vault", "v", "checkpoint", "save").code == 0
            blob = subprocess.run(
                ["git", "--git-dir", vault, "cat-file", "blob", b"refs/heads/main:" + LATIN],
                capture_output=True,
                check=True,
            ).stdout
            assert blob == b"latin\nmore\n"
        else:
            with pytest.raises(OSError) as exc, open(name, "ab") as fh:
                fh.write(b"more\n")
            assert exc.value.errno == errno.EINVAL
            assert Path(os.fsdecode(name)).read_bytes() == b"latin\n"
            assert cli("--vault", "v", "--json", "status").json()["clean"] is True
            assert git("--git-dir", vault, "rev-parse", "refs/heads/main") == tip
            r = cli("--vault", "v", "write", os.fsdecode(LATIN), "x")  # the same refusal, in words
            assert r.code == 1 and "caf\\xe9.txt" in r.err and "not UTF-8 text" in r.err, r.err
            assert "\\udc" not in r.err, r.err
    finally:
        mounts.unmount(home, v, "main")


def test_a_checkpoint_message_not_utf8_is_kept_as_its_bytes(cli: Cli) -> None:
    """`checkpoint save -m` with bytes that are not UTF-8 (a Latin-1 shell's `-m café`:
    Python's argv holds them as surrogates): the commit holds those bytes, as `git commit -m`
    writes them, and the branch moves. Was exit 70 wherever libgit2 was loaded (the resident
    server, this test's process): the commit was written, then the branch's reflog note,
    which names its subject, could not be encoded, and the commit was left dangling."""
    import pygit2  # noqa: F401 - loaded, as in the resident server that serves the CLI

    assert cli("vault", "create", "v").code == 0
    vault = os.path.join(os.environ["AVFS_HOME"], "vaults", "v.git")
    assert cli("--vault", "v", "write", "a.txt", "a").code == 0
    tip = git("--git-dir", vault, "rev-parse", "refs/heads/main")
    r = cli("--vault", "v", "--json", "checkpoint", "save", "-m", os.fsdecode(b"caf\xe9 x"))
    assert r.code == 0, (r.code, r.out)  # (was 70: internal)
    new = r.json()["checkpoint"]["commit"]
    assert git("--git-dir", vault, "rev-parse", "refs/heads/main").strip() == new != tip.strip()
    raw = subprocess.run(["git", "--git-dir", vault, "cat-file", "commit", new], capture_output=True).stdout
    assert raw.endswith(b"\n\ncaf\xe9 x\n"), raw
    assert "dangling" not in git("--git-dir", vault, "fsck", "--strict", "--no-progress")
    assert cli("--vault", "v", "--json", "status").json()["clean"] is True


def test_an_overlay_mount_s_names_not_utf8_outlive_its_unmount(
    cli: Cli, latin: Path, tmp_path: Path, home: Home
) -> None:
    """The overlay mount's upper layer holding names that are not UTF-8 (git's Latin-1
    file changed, a new one at the root, one in a directory the mount made: the last was
    possible on main too), the mount gone, not checkpointed: the next write through the CLI
    folds the upper layer into the overlay's database, and that failed on the first such
    name (exit 70, `UnicodeEncodeError`) for every later write of the fork. They stay in
    the upper layer now (as a fifo does) and status, a checkpoint and a new mount see them."""
    require_fuse()
    if (why := mounts.overlay_available()) is not None:
        if IN_CI:
            pytest.fail(f"overlayfs must be available in CI: {why}")
        pytest.skip(f"requires overlayfs: {why}")
    assert cli("vault", "create", "v", "--from", str(_checkout(latin, tmp_path))).code == 0
    v = home.vault("v")
    vault = os.path.join(os.environ["AVFS_HOME"], "vaults", "v.git")
    mp = tmp_path / "mnt"
    mp.mkdir()
    made = [b"new\xff.txt", b"odd/in\xfe.txt"]
    mounts.mount(home, v, "main", str(mp), backend="overlay")
    try:
        with open(bytes(mp) + b"/" + LATIN, "ab") as fh:
            fh.write(b"more\n")
        os.mkdir(bytes(mp) + b"/odd")
        for name in made:
            Path(os.fsdecode(bytes(mp) + b"/" + name)).write_bytes(b"made\n")
    finally:
        mounts.unmount(home, v, "main")
    r = cli("--vault", "v", "write", "other.txt", "o")
    assert r.code == 0, (r.code, r.err)  # (was 70)
    st = cli("--vault", "v", "--json", "status").json()
    want = {os.fsdecode(LATIN), *map(os.fsdecode, made), "other.txt"}
    assert want <= {c["path"] for c in st["changes"]}, st
    assert cli("--vault", "v", "checkpoint", "save").code == 0
    tree = git("--git-dir", vault, "ls-tree", "-r", "--name-only", "refs/heads/main").split("\n")
    assert {'"caf\\351.txt"', '"new\\377.txt"', '"odd/in\\376.txt"', "other.txt"} <= set(tree), tree
    blob = subprocess.run(
        ["git", "--git-dir", vault, "cat-file", "blob", b"refs/heads/main:" + LATIN], capture_output=True
    ).stdout
    assert blob == b"latin\nmore\n"
    assert cli("--vault", "v", "--json", "status").json()["clean"] is True
    mounts.mount(home, v, "main", str(mp), backend="overlay")
    try:
        assert Path(os.fsdecode(bytes(mp) + b"/" + LATIN)).read_bytes() == b"latin\nmore\n"
        assert Path(os.fsdecode(bytes(mp) + b"/odd/in\xfe.txt")).read_bytes() == b"made\n"
    finally:
        mounts.unmount(home, v, "main")


def test_the_mcp_tools_read_a_name_not_utf8_as_they_list_it(cli: Cli, latin: Path, tmp_path: Path) -> None:
    """`list_files` gives the name as JSON gives a lone surrogate (``"caf\\udce9.txt"``);
    `read_file` of that name refused it (`invalid_path`): it reads it now, as the mounts."""
    import json

    from avfs_git.mcp.tools import AvfsTools

    assert cli("vault", "create", "v", "--from", str(_checkout(latin, tmp_path))).code == 0
    tools = AvfsTools(os.environ["AVFS_HOME"], "v:main")
    listed = json.loads(tools.call("list_files", {"path": ""}))
    name = next(e["path"] for e in listed["entries"] if e["path"].startswith("caf"))
    assert name == os.fsdecode(LATIN)
    got = json.loads(tools.call("read_file", {"path": name}))["files"][0]  # (was invalid_path)
    assert got["content"] == "latin\n" and got["path"] == name, got
    assert (
        json.loads(tools.call("read_file", {"path": name, "rev": "HEAD"}))["files"][0]["content"] == "latin\n"
    )
    one = json.loads(tools.call("list_files", {"path": name}))
    assert [e["path"] for e in one["entries"]] == [name], one
