"""git's untracked cache made from the tree (mount/untracked.py ``_from_tree``) against the
one git makes on a skeleton of that tree, on real projects' released trees: the same bytes
but the directories' stat data where no tracked directory is ignored; where one is, git's
record lacks that directory's subtree and nothing else differs; and in a real lazy mount of
such a tree `git status` (with and without the fsmonitor) says what a plain clone's says."""

from __future__ import annotations

import hashlib
import struct
import subprocess
from pathlib import Path

import pytest

from avfs_git.core.store.gitstore import GitStore
from avfs_git.core.vaults.home import Home
from avfs_git.mount import untracked
from avfs_git.mount.heldstat import inode_of
from avfs_git.mount.index import index_bytes
from avfs_git.ops import mounts

from . import realdata
from .conftest import git
from .test_lazy import Server, objects

# what a project's .gitignore adds: rules that match tracked directories of the sdist
IGNORING = "*.egg-info\ndocs/\n/test/integration/targets/*/tasks/\n__pycache__/\n*.pyc\n"


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """git's varint (varint.c), read independently of the module's."""
    c = data[at]
    at += 1
    value = c & 127
    while c & 128:
        value += 1
        c = data[at]
        at += 1
        value = (value << 7) + (c & 127)
    return value, at


def _ewah_bits(data: bytes, at: int) -> tuple[set[int], int]:
    """The bits set in git's serialized EWAH bitmap at ``at`` (ewah_io.c), and where it ends."""
    bits, words = struct.unpack(">II", data[at : at + 8])
    buf = struct.unpack(f">{words}Q", data[at + 8 : at + 8 + 8 * words])
    out: set[int] = set()
    pos = i = 0
    while i < len(buf):
        rlw = buf[i]
        run, lits = (rlw >> 1) & 0xFFFFFFFF, rlw >> 33
        if rlw & 1:
            out.update(range(pos, pos + 64 * run))
        pos += 64 * run
        for k in range(lits):
            word = buf[i + 1 + k]
            out.update(pos + b for b in range(64) if word >> b & 1)
            pos += 64
        i += 1 + lits
    assert all(b < bits for b in out)
    return out, at + 12 + 8 * words


def _parse(ext: bytes) -> dict[str, object]:
    """An ``UNTR`` extension as git reads it (dir.c ``read_untracked_extension``): its head,
    and each directory by path: (untracked names, subdirectories, valid, check_only, the
    .gitignore id), and the stat data by path."""
    assert ext[:4] == b"UNTR" and struct.unpack(">I", ext[4:8])[0] == len(ext) - 8
    d = ext[8:]
    n, at = _varint(d, 0)
    ident = d[at : at + n]
    at += n
    head = d[at : at + 116]
    at = d.index(b"\0", at + 116) + 1
    count, at = _varint(d, at)
    order: list[tuple[str, list[bytes]]] = []

    def one(parent: str | None) -> None:
        nonlocal at
        nu, at = _varint(d, at)
        nd, at = _varint(d, at)
        nul = d.index(b"\0", at)
        name = d[at:nul].decode("utf-8", "surrogateescape")
        at = nul + 1
        names = []
        for _ in range(nu):
            nul = d.index(b"\0", at)
            names.append(d[at:nul])
            at = nul + 1
        path = f"{parent}/{name}" if parent else name
        order.append((path, names))
        for _ in range(nd):
            one(path)

    one(None)
    assert len(order) == count
    valid, at = _ewah_bits(d, at)
    check_only, at = _ewah_bits(d, at)
    sha1_valid, at = _ewah_bits(d, at)
    stats = {}
    for i in sorted(valid):
        stats[order[i][0]] = d[at : at + 36]
        at += 36
    oids = {}
    for i in sorted(sha1_valid):
        oids[order[i][0]] = d[at : at + 20].hex()
        at += 20
    assert d[at:] == b"\0"
    kids: dict[str, list[str]] = {}
    for path, _ in order[1:]:
        kids.setdefault(path.rpartition("/")[0], []).append(path)
    dirs = {
        path: (names, kids.get(path, []), i in valid, i in check_only)
        for i, (path, names) in enumerate(order)
    }
    return {
        "ident": ident,
        "head": head,
        "dirs": dirs,
        "oids": oids,
        "stats": stats,
        "order": [p for p, _ in order],
    }


def shared_repo(
    factory: pytest.TempPathFactory, project: str, version: str, gitignore: str | None = None
) -> tuple[Path, Path, str]:
    """A bare repository of the released sdist ``project`` ``version`` (copied from its one
    unpacked copy, a root ``.gitignore`` added when given), its checkout, and its one
    commit, made once a session (``realdata.shared``: this file's, test_readtree's
    and test_readtree_ids' tests read the same ones; each was 1.5-3.5 s of CPU a test, with
    the detached ``gc --auto`` Django's ~7,000 loose objects started). Read-only: a test
    that changes the repository clones it first."""
    tag = "" if gitignore is None else "-" + hashlib.sha256(gitignore.encode()).hexdigest()[:12]

    def build(into: Path) -> None:
        work = realdata.owned_copy(realdata.pypi_sdist(project, version), into / "work")
        if gitignore is not None:
            (work / ".gitignore").write_text(gitignore)
        git("init", "-q", "-b", "main", str(work))
        git("-C", str(work), "add", "-A", "-f")
        commit = ("-c", "user.name=t", "-c", "user.email=t@t", "-c", "gc.auto=0", "commit", "-q")
        git("-C", str(work), *commit, "-m", "release")
        git("clone", "-q", "--bare", str(work), str(into / "bare.git"))

    done = realdata.shared(factory, f"repo-{project}-{version}{tag}", build)
    bare = done / "bare.git"
    seen = _SHARED.setdefault(str(done), _print(done))
    assert _print(done) == seen, f"the shared repository {done} was changed by a test"
    return bare, done / "work", git("--git-dir", str(bare), "rev-parse", "HEAD").strip()


_SHARED: dict[str, list[tuple[str, int, int]]] = {}  # each shared repository as this process first saw it


def _print(done: Path) -> list[tuple[str, int, int]]:
    """What a change to a shared repository shows in (its refs, config, index, the work
    tree's top): each such file's size and modification time."""
    tops = [done / "bare.git", done / "bare.git" / "refs" / "heads", done / "work", done / "work" / ".git"]
    return sorted(
        (str(p), st.st_size, st.st_mtime_ns)
        for d in tops
        for p in d.iterdir()
        if (st := p.lstat()) is not None
    )


def _both(bare: Path, commit: str, mp: Path) -> tuple[dict[str, object], dict[str, object], bytes, bytes]:
    class Vault:
        store = GitStore(str(bare))

    skeleton: list[tuple[str, str | None]] = []
    data = index_bytes(Vault, commit, lambda p, m, o: (0, 0, inode_of(p), 0, 0, 0), "t", skeleton=skeleton)  # type: ignore[arg-type]
    by_git = untracked.on_skeleton(Vault.store, skeleton, data, str(mp), str(bare))
    ours = untracked.extension(Vault.store, skeleton, data, str(mp), str(bare))
    assert by_git is not None and ours is not None
    return _parse(by_git), _parse(ours), by_git, ours


SDISTS = [("ansible-core", "2.17.5"), ("twisted", "24.10.0"), ("Django", "5.1.4")]


@pytest.mark.parametrize(("project", "version"), SDISTS)
def test_the_untracked_cache_made_from_the_tree_is_git_s(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, project: str, version: str
) -> None:
    """No tracked directory ignored (the sdists as released, their own .gitignore files
    in leaf and inner directories): git's extension byte for byte, but the directories'
    stat data (git's are the skeleton's scratch directories', ours 0)."""
    bare, _, commit = shared_repo(tmp_path_factory, project, version)
    mp = tmp_path / "mnt"
    mp.mkdir()
    by_git, ours, raw_git, raw_ours = _both(bare, commit, mp)
    assert len(by_git["order"]) > 100  # type: ignore[arg-type]
    for key in ("ident", "head", "dirs", "oids", "order"):
        assert ours[key] == by_git[key], key
    assert set(ours["stats"]) == set(by_git["stats"])  # type: ignore[call-overload]
    assert set(ours["stats"].values()) == {bytes(36)}  # type: ignore[attr-defined]
    # so the bytes are git's but for the stat data
    zeroed = bytearray(raw_git)
    stats_at = len(raw_git) - 1 - 20 * len(by_git["oids"]) - 36 * len(by_git["stats"])  # type: ignore[arg-type]
    zeroed[stats_at : stats_at + 36 * len(by_git["stats"])] = bytes(36 * len(by_git["stats"]))  # type: ignore[arg-type]
    assert raw_ours == bytes(zeroed)
    if project == "ansible-core":  # .gitignore files in leaf directories: git did not read them
        assert any(p.endswith("library") for p in by_git["dirs"])  # type: ignore[attr-defined]


def test_a_tracked_directory_ignored_is_the_only_difference_from_git_s(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A root .gitignore whose rules match tracked directories (``*.egg-info``, ``docs/``,
    a glob of task directories): git does not enter those, so its record lacks each of
    them and what is under it; every other directory's record is the same, and `git
    check-ignore` in a checkout of the tree says each directory only ours holds is, or is
    under, an ignored one."""
    bare, work, commit = shared_repo(tmp_path_factory, "ansible-core", "2.17.5", IGNORING)
    mp = tmp_path / "mnt"
    mp.mkdir()
    by_git, ours, _, _ = _both(bare, commit, mp)
    gits: dict[str, tuple[list[bytes], list[str], bool, bool]] = by_git["dirs"]  # type: ignore[assignment]
    mine: dict[str, tuple[list[bytes], list[str], bool, bool]] = ours["dirs"]  # type: ignore[assignment]
    extra = set(mine) - set(gits)
    assert extra and not set(gits) - set(mine)
    tops = sorted(p for p in extra if p.rpartition("/")[0] not in extra)
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"], cwd=work, input="".join(f"{p}/\n" for p in tops),
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert sorted(p.rstrip("/") for p in ignored) == tops
    assert any(t.endswith(".egg-info") for t in tops) and any(t.endswith("/tasks") for t in tops)
    for path, (names, subs, valid, check_only) in gits.items():
        assert (mine[path][0], mine[path][2], mine[path][3]) == (names, valid, check_only), path
        assert [s for s in mine[path][1] if s not in extra] == subs, path
    assert {p: o for p, o in ours["oids"].items() if p not in extra} == by_git["oids"]  # type: ignore[attr-defined]
    assert ours["head"] == by_git["head"] and ours["ident"] == by_git["ident"]


def _status(mp: Path, *config: str) -> str:
    args = [
        "git",
        *[x for c in config for x in ("-c", c)],
        "status",
        "--porcelain",
        "--untracked-files=normal",
    ]
    proc = subprocess.run(args, cwd=mp, capture_output=True, text=True)
    assert proc.returncode == 0, proc
    return proc.stdout


def _untracked_everywhere(root: Path) -> None:
    """New files and directories in and out of the tracked directories the rules ignore."""
    for rel in (
        "fresh.txt",
        "lib/ansible/new_mod.py",
        "lib/ansible_core.egg-info/extra.txt",
        "docs/new/deep.txt",
        "test/integration/targets/include_import/tasks/more/x.yml",
        "test/integration/targets/include_import/fresh_dir/y.yml",
        "lib/ansible/modules/__pycache__/m.cpython-311.pyc",
        "test/integration/targets/binary_modules/library/helloworld_linux",
    ):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("new\n")


def test_git_status_in_a_lazy_mount_of_a_tree_with_ignored_tracked_directories_is_a_plain_clone_s(
    home: Home, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The mount's first `git status` (its index's untracked cache made from the tree,
    holding the ignored tracked directories git would not) and a later one, after untracked
    files appear in and out of those directories, say what a plain clone's say, with the
    fsmonitor and without it, and fetch no blob."""
    base = tmp_path / "daemon"
    base.mkdir()
    shared, _, _ = shared_repo(tmp_path_factory, "ansible-core", "2.17.5", IGNORING)
    git("clone", "-q", "--bare", str(shared), str(base / "proj.git"))  # (served: its config set)
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant", "transfer.advertiseObjectInfo"):
        git("--git-dir", str(base / "proj.git"), "config", key, "true")
    with Server.serving(base) as server:
        home.clone_vault(server.url("proj.git"), "p", lazy=True)
        v = home.vault("p")
        plain = tmp_path / "plain"
        git("clone", "-q", server.url("proj.git"), str(plain))
        mp = tmp_path / "mnt"
        mp.mkdir()
        mounts.mount(home, v, "main", str(mp))
        try:
            (mp / ".git").read_bytes()  # (opens once the index is written: fuse/settle.py)
            git_dir = Path(git("rev-parse", "--absolute-git-dir", cwd=mp).strip())
            index = (git_dir / "index").read_bytes()
            made = _parse(index[index.rindex(b"UNTR") : -20])
            # made from the tree, not by git on a skeleton (whose directories' stat data
            # are the scratch directories'): every directory of the tree, stat data 0
            assert set(made["stats"].values()) == {bytes(36)}  # type: ignore[attr-defined]
            listed = git("--git-dir", v.path, "ls-tree", "-r", "-d", "-z", "--name-only", "main")
            dirs = listed.split("\0")[:-1]
            assert set(made["dirs"]) == {"", *dirs}  # type: ignore[call-overload]
            assert _status(mp) == "" == _status(plain)
            before = objects(v.path)
            _untracked_everywhere(mp)
            _untracked_everywhere(plain)
            want = _status(plain)
            assert "fresh.txt" in want and "docs" not in want and "egg-info" not in want
            assert _status(mp) == want
            assert _status(mp, "core.fsmonitor=false") == want
            assert _status(mp, "core.fsmonitor=false", "core.untrackedCache=false") == want
            assert objects(v.path) == before
        finally:
            mounts.unmount(home, v, "main", lazy=True)


def _excludes_file_id(head: bytes) -> str:
    """The ``core.excludesFile`` id in an ``UNTR`` head (after the ident: two stat data,
    the flags, ``info/exclude``'s id)."""
    n, at = _varint(head, 0)
    at += n + 36 + 36 + 4 + 20
    return head[at : at + 20].hex()


def test_the_head_git_writes_reads_the_worktree_config_but_never_through_a_link(tmp_path: Path) -> None:
    """The head of the extension comes from git run with the mount's git dir's own config
    (``config.worktree``: a ``core.excludesFile`` set there is in it, as git in the mount
    sees it) and its common directory, both read as untrusted: a ``config.worktree`` that
    is a symbolic link (a confined command may write a mount's git dir) is not followed."""
    bare = tmp_path / "v.git"
    git("init", "-q", "--bare", str(bare))
    for key, value in (("core.repositoryformatversion", "1"), ("extensions.worktreeConfig", "true")):
        git("--git-dir", str(bare), "config", key, value)  # (as a vault's first mount sets them)
    wt = bare / "worktrees" / "m"
    wt.mkdir(parents=True)
    (wt / "commondir").write_text("../..\n")
    excludes = tmp_path / "excludes"
    excludes.write_text("*.log\n")
    # git hashes what it read with a newline added (dir.c add_patterns)
    wanted = hashlib.sha1(b"blob 7\0*.log\n\n").hexdigest()
    (wt / "config.worktree").write_text(f"[core]\n\texcludesFile = {excludes}\n")
    head = untracked._head(str(wt), None)
    assert head is not None and _excludes_file_id(head[0]) == wanted
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(f"[core]\n\texcludesFile = {excludes}\n")
    (wt / "config.worktree").unlink()
    (wt / "config.worktree").symlink_to(elsewhere)
    head = untracked._head(str(wt), None)
    assert head is not None and _excludes_file_id(head[0]) == "0" * 40
