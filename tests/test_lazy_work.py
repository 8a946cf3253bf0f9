"""Work on a lazy fork is normal work (docs/lazy.md "Working on a lazy fork"): `proxy exec`,
checkpoint, diff, merge, push (to the origin and to another server), revert and undo,
full-text search, and git typed in the mount, each on a lazy vault cloned from a real
`git daemon` on 127.0.0.1, counting the blobs each step fetched (the promised objects the
vault stops missing)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.ops import mounts

from .conftest import IN_CI, git
from .test_fuse import require_fuse
from .test_lazy import blob_at, missing
from .test_lazy import lazy as lazy
from .test_lazy import server as server
from .test_remotes import _free_port, _start_daemon, _stop_daemon

AVFS = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "avfs")


def _avfs(home: Home, *args: str, cwd: str | None = None) -> tuple[int, dict]:
    """`avfs --json ARGS` as a real process; (exit code, its one JSON document)."""
    proc = subprocess.run(
        [AVFS, "--json", "--home", home.path, *args],
        capture_output=True,
        cwd=cwd,
        timeout=180,
        env={**os.environ, "AVFS_SERVER": "off", "AVFS_PROGRESS": "never"},
    )
    return proc.returncode, json.loads(proc.stdout)


def _git_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _changed_blobs(repo: str, a: str, b: str) -> set[str]:
    """The blob ids on either side of the files commit ``a`` and ``b`` differ in."""
    out = git("--git-dir", repo, "diff-tree", "-r", "--no-renames", a, b)
    ids: set[str] = set()
    for line in out.splitlines():
        meta = line.split("\t")[0].split()
        ids.update(o for o in meta[2:4] if set(o) != {"0"})
    return ids


def _diagnosis(vault_path: str, r: subprocess.CompletedProcess[str]) -> str:
    """The vault's packs (oldest first, with their times and sizes), the mount daemon's log
    and git's stderr: for an assertion about what was fetched."""
    pd = os.path.join(vault_path, "objects", "pack")
    packs = sorted(
        (os.stat(os.path.join(pd, n)).st_mtime, n, os.path.getsize(os.path.join(pd, n)))
        for n in os.listdir(pd)
    )
    try:
        with open(
            os.path.join(vault_path, "avfs", "mounts", "main.log"), encoding="utf-8", errors="replace"
        ) as fh:
            log = fh.read()[-3000:]
    except OSError:
        log = ""
    return f"packs: {packs}\nmount log: {log}\ngit stderr: {r.stderr[-2000:]}"


def _local(repo: str, oids: set[str]) -> set[str]:
    out = subprocess.run(
        ["git", "--git-dir", repo, "cat-file", "--batch-check"],
        input="".join(o + "\n" for o in oids),
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_NO_LAZY_FETCH": "1"},
    ).stdout
    return {line.split()[0] for line in out.splitlines() if not line.endswith("missing")}


def test_proxy_exec_fetches_the_file_it_reads_and_its_commit_works(lazy, server):
    require_fuse()
    v = lazy.vault("p")
    rel = "avfs_git/core/store/gitstore.py"
    before = missing(v.path)
    code, doc = _avfs(lazy, "--vault", "p:main", "proxy", "exec", "--", "cat", rel)
    assert code == 0, doc
    assert doc["result"]["stdout"] == blob_at(server.base / "proj.git", "main", rel).decode()
    # that file, and in the same fetch its directory's other files (tests/test_lazy_neighbours.py)
    assert missing(v.path) < before
    before = missing(v.path)
    code, doc = _avfs(
        lazy,
        "--vault",
        "p:main",
        "proxy",
        "exec",
        "--",
        "sh",
        "-c",
        "echo more >> NOTES.md; echo new > NEW.txt",
    )
    assert code == 0, doc
    assert sorted(c["path"] for c in doc["changes"]) == ["NEW.txt", "NOTES.md"]
    assert doc["commit"], doc
    assert missing(v.path) < before  # NOTES.md, appended to (with its directory's other files)
    head = git("--git-dir", v.path, "rev-parse", "main").strip()
    assert head == doc["commit"]["commit"]
    assert git("--git-dir", v.path, "show", "main:NOTES.md") == "notes\nmore\n"


def test_checkpoint_diff_revert_and_undo_fetch_only_the_changed_files(lazy, server):
    v = lazy.vault("p")
    ws = v.workspace("main")
    before = missing(v.path)
    ws.write("avfs_git/new.py", b"X = 1\n")
    ws.write("avfs_git/new2.py", b"Y = 2\n")
    code, doc = _avfs(lazy, "--vault", "p:main", "checkpoint", "save", "c1")
    assert code == 0, doc
    assert missing(v.path) == before  # a checkpoint reads nothing it did not write
    # diff of the two server commits: the changed files' blobs, in one fetch
    wanted = _changed_blobs(v.path, "main~2", "main~1")
    assert wanted and not _local(v.path, wanted)
    before = missing(v.path)
    code, doc = _avfs(lazy, "--vault", "p:main", "diff", "main~2", "main~1")
    assert code == 0, doc
    assert "second version" in json.dumps(doc)
    assert _local(v.path, wanted) == wanted
    assert missing(v.path) == before - len(wanted)
    # revert of the server's second commit: a new checkpoint, only what both sides changed
    before = missing(v.path)
    code, doc = _avfs(lazy, "--vault", "p:main", "revert", "main~1")
    assert code == 0, doc
    reverted = git("--git-dir", v.path, "show", "main:avfs_git/core/errors.py")
    assert reverted == blob_at(server.base / "proj.git", "main~1", "avfs_git/core/errors.py").decode()
    assert git("--git-dir", v.path, "ls-tree", "main", "NOTES.md") == ""  # the second commit added it
    assert git("--git-dir", v.path, "show", "main:avfs_git/new.py") == "X = 1\n"  # c1 kept
    assert before - missing(v.path) <= len(wanted)
    # undo: the revert goes, nothing is fetched
    head = git("--git-dir", v.path, "rev-parse", "main").strip()
    before = missing(v.path)
    code, doc = _avfs(lazy, "--vault", "p:main", "undo")
    assert code == 0, doc
    assert git("--git-dir", v.path, "rev-parse", "main").strip() != head
    assert git("--git-dir", v.path, "show", "main:avfs_git/core/errors.py") == "# second version\n"
    assert missing(v.path) == before


def test_merge_with_a_conflict_fetches_only_what_both_sides_changed(lazy, server):
    v = lazy.vault("p")
    v.fork("main", "a")
    v.fork("main", "b")
    a, b = v.workspace("a"), v.workspace("b")
    a.write("avfs_git/cli/output.py", b"ours\n")
    a.write("avfs_git/only_a.py", b"A\n")
    b.write("avfs_git/cli/output.py", b"theirs\n")
    b.write("avfs_git/cli/main.py", b"changed by b\n")
    for f in ("a", "b"):
        code, doc = _avfs(lazy, "--vault", f"p:{f}", "checkpoint", "save")
        assert code == 0, doc
    before = missing(v.path)
    code, doc = _avfs(lazy, "--vault", "p", "merge", "a", "--into", "b")
    assert code == 3, doc  # a conflict is data
    assert [c["path"] for c in doc["results"][0]["conflicts"]] == ["avfs_git/cli/output.py"], doc
    assert before - missing(v.path) == 1  # output.py's ancestor; cli/main.py taken by id
    code, doc = _avfs(lazy, "--vault", "p", "merge", "a", "--into", "b", "--theirs")
    assert code == 0, doc
    assert before - missing(v.path) == 1
    assert v.workspace("b").read("avfs_git/only_a.py") == b"A\n"


@pytest.fixture
def second(tmp_path: Path):
    base = tmp_path / "second"
    base.mkdir()
    git("init", "-q", "--bare", str(base / "copy.git"))
    port = _free_port()
    proc = _start_daemon(base, port)
    try:
        yield f"git://127.0.0.1:{port}/copy.git", base / "copy.git"
    finally:
        _stop_daemon(proc)


def test_push_to_the_origin_sends_the_new_work_and_to_another_server_everything(lazy, server, second):
    v = lazy.vault("p")
    ws = v.workspace("main")
    ws.write("PUSHED.md", b"pushed\n")
    code, doc = _avfs(lazy, "--vault", "p:main", "checkpoint", "save")
    assert code == 0, doc
    before = missing(v.path)
    code, doc = _avfs(lazy, "--vault", "p:main", "push")
    assert code == 0, doc
    assert missing(v.path) == before  # the origin has every blob but the new one
    served = str(server.base / "proj.git")
    assert git("--git-dir", served, "show", "main:PUSHED.md") == "pushed\n"
    # another server has nothing: every blob of the history goes there, fetched first
    url, copy = second
    code, doc = _avfs(lazy, "--vault", "p", "remote", "add", "copy", url)
    assert code == 0, doc
    pack_dir = os.path.join(v.path, "objects", "pack")
    packs = len([n for n in os.listdir(pack_dir) if n.endswith(".pack")])
    code, doc = _avfs(lazy, "--vault", "p:main", "push", "copy")
    assert code == 0, doc
    assert missing(v.path) == 0
    assert len([n for n in os.listdir(pack_dir) if n.endswith(".pack")]) == packs + 1  # in one fetch
    git("--git-dir", str(copy), "fsck", "--connectivity-only")  # whole: nothing promised there
    assert git("--git-dir", str(copy), "rev-parse", "main") == git("--git-dir", v.path, "rev-parse", "main")
    assert git("--git-dir", str(copy), "show", "main:avfs_git/cli/main.py") == git(
        "--git-dir", served, "show", "main:avfs_git/cli/main.py"
    )


def test_full_text_search_fetches_the_tree_in_one_batch(lazy, server):
    v = lazy.vault("p")
    pack_dir = os.path.join(v.path, "objects", "pack")
    packs = lambda: {n for n in os.listdir(pack_dir) if n.endswith(".pack")}  # noqa: E731
    before = packs()
    code, doc = _avfs(lazy, "--vault", "p:main", "search", "prefer_libgit2")
    assert code == 0, doc
    assert "avfs_git/core/store/gitstore.py" in [h["path"] for h in doc["hits"]], doc
    assert len(packs() - before) == 1  # one fetch, not one per file
    files = len(git("--git-dir", v.path, "ls-tree", "-r", "main").splitlines())
    assert missing(v.path) < files  # the tip's files are here now (older versions are not)
    before = packs()
    v.workspace("main").write("avfs_git/extra.py", b"def prefer_libgit2_too(): pass\n")
    code, doc = _avfs(lazy, "--vault", "p:main", "search", "prefer_libgit2_too")
    assert code == 0 and [h["path"] for h in doc["hits"]] == ["avfs_git/extra.py"], doc
    assert packs() == before


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_git_typed_in_a_lazy_mount_fetches_through_the_promisor(lazy, server, tmp_path, backend):
    """git in the mount reads the vault's objects: a blob it lacks comes from the promisor
    remote through git's own lazy fetch (the vault's config names it); with the server gone
    it fails clearly, and nothing changes."""
    require_fuse()
    if backend == "overlay" and (why := mounts.overlay_available()) is not None:
        if IN_CI:
            pytest.fail(f"overlayfs must be available in CI: {why}")
        pytest.skip(f"requires overlayfs: {why}")
    v = lazy.vault("p")
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(lazy, v, "main", str(mp), backend=backend)
    try:
        before = missing(v.path)
        r = _git_in(mp, "log", "-p", "-1", "--format=%s")
        assert r.returncode == 0, r.stderr
        assert "second" in r.stdout and "+# second version" in r.stdout
        wanted = _changed_blobs(v.path, "main~1", "main")
        # (seen twice under load 8, not reproduced since: every blob of the history fetched
        # here; the message carries what is needed to find out by whom)
        assert before - missing(v.path) == len(wanted), _diagnosis(v.path, r)
        r = _git_in(mp, "diff", "HEAD~1", "--stat")
        assert r.returncode == 0 and "errors.py" in r.stdout, r
        assert before - missing(v.path) == len(wanted)
        r = _git_in(mp, "grep", "-l", "def prefer_libgit2", "--", "avfs_git/core/store")
        assert r.returncode == 0 and r.stdout.split() == ["avfs_git/core/store/gitstore.py"], r
        fetched = before - missing(v.path)
        # (a file read in the mount brings its directory's files and, the first in a Python
        # package, the package's modules: avfs_git's; nothing outside it)
        package_files = len(git("--git-dir", v.path, "ls-tree", "-r", "main", "avfs_git/").splitlines())
        assert fetched <= len(wanted) + package_files
        # offline: git fails and says so; the vault is as it was
        server.stop()
        held = missing(v.path)
        r = _git_in(mp, "log", "-p", "-1", "--format=%s", "main~1")
        assert r.returncode != 0
        assert "could not fetch" in r.stderr or "unable to" in r.stderr, r.stderr
        assert missing(v.path) == held
        st = _git_in(mp, "status", "--porcelain")
        assert st.returncode == 0 and st.stdout == "", st
    finally:
        mounts.unmount(lazy, v, "main", lazy=True)


def test_a_mount_fetches_the_trees_gitignore_files_in_one_batch(home, server, tmp_path):
    """git's untracked cache needs the tree's `.gitignore` files at mount time: a lazy
    vault gets them in one fetch, not one per file."""
    require_fuse()
    repo = server.base / "proj.git"
    work = server.base / "ignores"
    git("clone", "-q", str(repo), str(work))
    for d in ("", "avfs_git/", "avfs_git/core/", "avfs_git/cli/"):
        (work / f"{d}.gitignore").write_text(f"*.tmp-{len(d)}\n")
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "commit", "-q", "-m", "ignores")
    git("-C", str(work), "push", "-q", "origin", "main")
    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    pack_dir = os.path.join(v.path, "objects", "pack")
    packs = len([n for n in os.listdir(pack_dir) if n.endswith(".pack")])
    before = missing(v.path)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")
    try:
        first = _git_in(mp, "status", "--porcelain")  # (it waits for the index: fuse/settle.py)
        assert first.returncode == 0 and first.stdout == "", first
        assert before - missing(v.path) == 4  # the four .gitignore files
        assert len([n for n in os.listdir(pack_dir) if n.endswith(".pack")]) == packs + 1
        (mp / "avfs_git" / "core" / "x.tmp-14").write_text("ignored\n")
        st = _git_in(mp, "status", "--porcelain")
        assert st.returncode == 0 and st.stdout == "", st
    finally:
        mounts.unmount(home, v, "main", lazy=True)


def test_a_tree_whose_sizes_are_known_is_not_walked_again(lazy, server):
    """A mount learns every size of its tree and records the tree (the clone asks none): the
    next mount's ensure_sizes then walks none of its trees (it walked all of them before),
    and a size comes from the cache even with the server gone."""
    v = lazy.vault("p")
    store = v.store
    tree = store.commit_tree(git("--git-dir", v.path, "rev-parse", "main").strip())
    assert not store.promisor.sized(tree)
    store.ensure_sizes(tree)  # as a mount does as it starts (fuse/settle.py)
    assert store.promisor.sized(tree)
    walked: list[str] = []
    items = store.tree_items
    store.tree_items = lambda t: (walked.append(t), items(t))[1]  # type: ignore[method-assign]
    server.stop()
    store.ensure_sizes(tree)
    assert walked == []
    rel = "avfs_git/cli/main.py"
    oid = git("--git-dir", v.path, "rev-parse", f"main:{rel}").strip()
    assert store.blob_size(oid) == len(blob_at(server.base / "proj.git", "main", rel))
    # the size cache removed (by hand): the record of sized trees is not believed
    os.rename(os.path.join(v.path, "avfs", "blob-sizes"), os.path.join(v.path, "avfs", "kept"))
    fresh = lazy.vault("p").store.promisor.__class__(v.path)
    assert not fresh.sized(tree)
    os.rename(os.path.join(v.path, "avfs", "kept"), os.path.join(v.path, "avfs", "blob-sizes"))
    assert fresh.__class__(v.path).sized(tree)
    # another fork's tree, one file changed: walked once, then recorded too
    ws = v.workspace("main")
    ws.write("NEW.md", b"new\n")
    v.workspace("main").store.promisor.forget()
    server.start()
    checkpoint.save(v, "main")
    tree2 = store.commit_tree(git("--git-dir", v.path, "rev-parse", "main").strip())
    store.ensure_sizes(tree2)
    assert walked and store.promisor.sized(tree2)


def test_a_mount_of_an_older_fork_after_a_checkpoint_fetches_nothing(lazy, server, tmp_path):
    """A fork of an older commit (sizes the clone did not ask) with a checkpointed file the
    server has never seen: the mount asks the server the sizes it lacks, gets all but the
    new file's (that one is local), and fetches nothing (an all-or-nothing answer made it
    fetch every blob it lacked)."""
    require_fuse()
    v = lazy.vault("p")
    git("--git-dir", v.path, "branch", "old", "main~1")
    v.workspace("old").write("avfs_git/brand_new.py", b"NEW = 1\n")
    checkpoint.save(v, "old")
    before = missing(v.path)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(lazy, v, "old", str(mp), backend="fuse")
    try:
        assert missing(v.path) == before
        assert (mp / "avfs_git" / "brand_new.py").stat().st_size == 8
        rel = "avfs_git/core/errors.py"  # the first commit's version, not the tip's
        assert (mp / rel).stat().st_size == len(blob_at(server.base / "proj.git", "main~1", rel))
        assert missing(v.path) == before
    finally:
        mounts.unmount(lazy, v, "old", lazy=True)


def test_up_from_url_lazy_clones_forks_and_mounts_without_fetching_files(home, server):
    """`avfs up --from-url URL --lazy`: a lazy vault, an agent's fork of it mounted, nothing
    fetched until a file is read; a second `up` of the same URL reuses the vault. (A home
    without a `vault clone` of the URL: `up` would adopt that one.)"""
    require_fuse()
    from .test_json_schemas import validate

    url = server.url("proj.git")
    code, doc = _avfs(home, "up", "--from-url", url, "--lazy")
    assert code == 0, doc
    validate(doc)
    assert doc["lazy"] is True and doc["vault_created"] is True and doc["fork"] == "agent-1"
    assert doc["origin"] == url and doc["vault"] == "proj"
    v = home.vault("proj")
    mp = Path(doc["mountpoint"])
    try:
        assert v.lazy
        assert missing(v.path) >= len(git("--git-dir", v.path, "ls-tree", "-r", "main").splitlines())
        before = missing(v.path)
        assert "avfs_git" in os.listdir(mp)
        rel = "avfs_git/cli/main.py"
        assert (mp / rel).stat().st_size == len(blob_at(server.base / "proj.git", "main", rel))
        assert missing(v.path) == before  # ls and stat fetch nothing
        assert (mp / rel).read_bytes() == blob_at(server.base / "proj.git", "main", rel)
        assert missing(v.path) < before  # it, and its directory's other files in the same fetch
        # again: the same vault, another agent
        code, again = _avfs(home, "up", "--from-url", url, "--lazy", "--agent", "second")
        assert code == 0, again
        assert again["vault"] == "proj" and again["vault_created"] is False and again["fork"] == "second"
        mounts.unmount(home, v, "second", lazy=True)
    finally:
        mounts.unmount(home, v, "agent-1", lazy=True)


def test_up_refuses_lazy_without_a_url_and_a_dir_with_a_url(lazy, server, tmp_path):
    url = server.url("proj.git")
    vaults = sorted(os.listdir(os.path.join(lazy.path, "vaults")))
    for args in (("--lazy", str(tmp_path)), (str(tmp_path), "--from-url", url), ()):
        code, doc = _avfs(lazy, "up", *args)
        assert code == 2 and doc["error"]["code"] == "usage", doc
    # a vault made otherwise is not taken for the URL's (`p`, a `vault clone` of it, would be)
    lazy.create_vault("q")
    vaults.append("q.git")
    code, doc = _avfs(lazy, "up", "--from-url", url, "--vault", "q")
    assert code == 2 and "was not made from" in doc["error"]["message"], doc
    assert sorted(os.listdir(os.path.join(lazy.path, "vaults"))) == vaults  # nothing made


def test_git_in_proxy_execs_sandbox_cannot_reach_the_server_and_fails_clearly(lazy, server):
    """`proxy exec -- git log -p` on a lazy fork: the command's sandbox has no network (the
    default policy), so git's own lazy fetch cannot reach the promisor remote; git fails
    with its message, nothing is fetched or committed (docs/lazy.md). A file the command
    reads is fetched by the mount, outside the sandbox, as always."""
    require_fuse()
    v = lazy.vault("p")
    before, head = missing(v.path), git("--git-dir", v.path, "rev-parse", "main")
    code, doc = _avfs(
        lazy, "--vault", "p:main", "proxy", "exec", "--", "git", "log", "-p", "-1", "--format=%s"
    )
    assert code == 128 and doc["result"]["exit_code"] == 128, doc
    assert "unable to connect" in doc["result"]["stderr"] or "could not fetch" in doc["result"]["stderr"], doc
    assert doc["commit"] is None and doc["changes"] == []
    assert missing(v.path) == before and git("--git-dir", v.path, "rev-parse", "main") == head
    code, doc = _avfs(lazy, "--vault", "p:main", "proxy", "exec", "--", "cat", "NOTES.md")
    assert code == 0 and doc["result"]["stdout"] == "notes\n", doc
    # avfs's own log -p fetches through avfs: the patch, and only its blobs
    wanted = _changed_blobs(v.path, "main~1", "main")
    before = missing(v.path)
    out = subprocess.run(
        [AVFS, "--home", lazy.path, "--vault", "p:main", "log", "-p", "-n", "1"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and "+# second version" in out.stdout, out
    assert before - missing(v.path) <= len(wanted)


def test_git_commit_in_proxy_exec_on_a_lazy_fork_is_gits_commit(lazy, server):
    """An agent's `git add && git commit` through `proxy exec` on a lazy fork: git writes
    the tree only once every blob its index names is local, and in a partial clone fetches
    the missing ones first, which the sandbox (no network) could not: git failed (128) and
    the run's record took the change under avfs's message (realproj9's two agents). The
    host now fetches the fork's blobs before such a command (proxy/lazyblobs.py)."""
    require_fuse()
    v = lazy.vault("p")
    assert missing(v.path) > 0
    code, doc = _avfs(
        lazy,
        "--vault",
        "p:main",
        "proxy",
        "exec",
        "--shell",
        "echo more >> NOTES.md && git add NOTES.md && git commit -q -m 'by git'",
    )
    assert code == 0, doc["result"]
    assert git("--git-dir", v.path, "log", "-1", "--format=%s", "main").strip() == "by git"
    assert git("--git-dir", v.path, "show", "main:NOTES.md") == "notes\nmore\n"
    tree = git("--git-dir", v.path, "rev-list", "--objects", "--missing=print", "main~1^{tree}")
    assert "?" not in tree, "the fork's tree is local: git's commit found every blob"
