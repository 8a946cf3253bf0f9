"""What a lazy clone and a lazy fork's mount do before they answer (docs/scale.md, "Where a
lazy clone + mount spends its time"): `vault clone --lazy` makes its vault with git alone
(no libgit2 import: 100-300 ms here), and the vault is the one libgit2 made before; against
a real `git daemon` on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .test_lazy import git
from .test_lazy import server as server

# a process whose every import of pygit2 fails: what runs in it must not need libgit2
NO_PYGIT2 = (
    "import sys\n"
    "class NoPygit2:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'pygit2' or name.startswith('pygit2.'):\n"
    "            raise ImportError('pygit2 imported: ' + name)\n"
    "sys.meta_path.insert(0, NoPygit2())\n"
    "from avfs_git.cli.main import main\n"
    "sys.argv[0] = 'avfs'\n"
    "main()\n"
)


def _avfs_without_pygit2(home: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", NO_PYGIT2, "--home", home, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AVFS_SERVER": "off", "AVFS_PROGRESS": "never"},
    )


def test_a_lazy_clone_loads_no_libgit2(home, server, tmp_path):
    proc = _avfs_without_pygit2(home.path, "--json", "vault", "clone", "--lazy", server.url("proj.git"), "p")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["lazy"] is True and doc["warnings"] == []
    # the vault works as any other (here, with libgit2): its fork, its files, its promisor
    v = home.vault("p")
    assert v.lazy and v.fork_names() == ["main"]
    assert v.workspace("main").read("NOTES.md") == b"notes\n"


def test_the_vault_a_clone_makes_is_the_one_libgit2_made(home, server, tmp_path, monkeypatch):
    """HEAD on main, reflogs for every ref, libgit2's layout; and none of the user's git
    templates (their hooks would run in every vault), whatever `init.templateDir` says."""
    templates = tmp_path / "templates"
    (templates / "hooks").mkdir(parents=True)
    (templates / "hooks" / "pre-receive").write_text("#!/bin/sh\nexit 1\n")
    (templates / "hooks" / "pre-receive").chmod(0o755)
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f"[init]\n\ttemplateDir = {templates}\n\tdefaultBranch = trunk\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    for name, lazy in (("lz", ["--lazy"]), ("whole", [])):
        proc = _avfs_without_pygit2(
            home.path, "--json", "vault", "clone", *lazy, server.url("proj.git"), name
        )
        assert proc.returncode == 0, proc.stderr
        path = home.vault(name).path
        with open(os.path.join(path, "HEAD")) as fh:
            assert fh.read() == "ref: refs/heads/main\n"
        assert git("--git-dir", path, "config", "core.logAllRefUpdates").strip() == "always"
        assert git("--git-dir", path, "config", "core.bare").strip() == "true"
        assert git("--git-dir", path, "rev-parse", "--show-object-format").strip() == "sha1"
        for d in ("hooks", "info", "objects/info", "objects/pack", "refs/heads", "refs/tags", "avfs"):
            assert os.path.isdir(os.path.join(path, d)), d
        assert os.listdir(os.path.join(path, "hooks")) == []
        assert git("--git-dir", path, "config", "remote.origin.url").strip() == server.url("proj.git")
        assert (
            git("--git-dir", path, "config", "remote.origin.fetch").strip()
            == "+refs/heads/*:refs/remotes/origin/*"
        )
        git("--git-dir", path, "fsck", "--connectivity-only")
    assert home.vault("lz").lazy and not home.vault("whole").lazy


def _recording_git(tmp_path) -> tuple[dict[str, str], object]:
    """An environment whose ``git`` on ``PATH`` is the real one, each command's arguments
    recorded first (a line each) in the returned file."""
    import shutil
    from pathlib import Path

    real = shutil.which("git")
    bindir, log = Path(tmp_path) / "recbin", Path(tmp_path) / "git-commands.log"
    bindir.mkdir()
    (bindir / "git").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec {real} "$@"\n')
    (bindir / "git").chmod(0o755)
    return {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}, log


def test_a_clone_writes_its_config_in_one_go_and_a_mount_leaves_it_alone(home, server, tmp_path, monkeypatch):
    """A `git clone` takes 0.1 s of git here, so the git processes avfs adds around it are
    the clone's cost (docs/scale.md): the new vault's config (reflogs, ``origin`` and its
    promisor settings, the worktree config a mount needs) is written with the vault, not by
    a `git config` a key; the lazy vault's promisor is read in one `git config`; and the
    first mount of a fork finds its worktree config set and writes nothing to the vault's,
    nor an index its daemon writes anew once it answers."""
    from avfs_git.ops import mounts

    from .test_fuse import require_fuse

    env, log = _recording_git(tmp_path)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    url = server.url("proj.git")
    os.makedirs(home.path, exist_ok=True)
    with open(os.path.join(home.path, "config.json"), "w", encoding="utf-8") as fh:
        fh.write('{"index_at_clone": true}\n')  # (the default is false: the index made here)
    proc = _avfs_without_pygit2(home.path, "--json", "vault", "clone", "--lazy", url, "p")
    assert proc.returncode == 0, proc.stderr
    commands = [line.split() for line in log.read_text().splitlines()]
    # the clone alone (`git clone` beside the vault, its packs and packed-refs moved in:
    # core/vaults/cloning.py): the repository made as `git init` makes it
    # (core/store/initbare.py), no `git config` writes, no `git remote add`; the branches
    # read from the files the clone wrote, the promisor known as the clone wrote it. Then
    # the index kept for the default fork's tip (mount/keptmake.py ``at_clone``): git's
    # read-tree of the tree into a scratch file, with the settings its reader needs, the
    # untracked cache's head (a status on an empty tree), the tree's .gitignore files
    # fetched; no config written
    kept = next((i for i, c in enumerate(commands) if "read-tree" in c or "status" in c), len(commands))
    verbs = [
        next(w for w in c if w in ("init", "clone", "fetch", "for-each-ref", "config", "remote"))
        for c in commands[:kept]
    ]
    assert verbs == ["clone"], commands
    assert not any("remote" in c and "add" in c for c in commands)
    made = commands[kept:]
    reads = [c for c in made if "read-tree" in c]
    assert len(reads) == 1 and "index.version=2" in reads[0], commands
    assert not any(w in ("config", "init", "remote") for c in made for w in c), commands
    from avfs_git.mount import keptindex

    tree = git("--git-dir", home.vault("p").path, "rev-parse", "main^{tree}").strip()
    assert keptindex.load(home.vault("p").state_dir, tree) is not None  # (made without libgit2)
    path = home.vault("p").path
    assert git("--git-dir", path, "config", "remote.origin.promisor").strip() == "true"
    assert git("--git-dir", path, "config", "remote.origin.partialclonefilter").strip() == "blob:none"
    assert git("--git-dir", path, "config", "core.repositoryformatversion").strip() == "1"
    assert git("--git-dir", path, "config", "--bool", "extensions.worktreeConfig").strip() == "true"
    assert home.vault("p").lazy
    require_fuse()
    config = os.path.join(path, "config")
    with open(config, "rb") as fh:
        before = fh.read(), os.stat(config).st_ino
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, home.vault("p"), "main", str(mp))
    try:
        assert (mp / "NOTES.md").read_bytes() == b"notes\n"
        git("-C", str(mp), "status", "--porcelain")
    finally:  # detached: the daemon may still be walking its lower layer (fuse/warm.py)
        mounts.unmount(home, home.vault("p"), "main", lazy=True)
    with open(config, "rb") as fh:  # git rewrites a config by a rename: a new inode
        assert (fh.read(), os.stat(config).st_ino) == before
    # nor does the mount `git read-tree` the worktree's index (O(files)) that its daemon
    # replaces once it answers (fuse/settle.py): git waited for that one; the one
    # read-tree is the daemon's own, into a scratch file, with the index's settings its
    # reader needs (mount/readtree.py), from which it makes the worktree's index
    trees = [c for c in log.read_text().splitlines()[len(commands) :] if "read-tree" in c.split()]
    assert len(trees) <= 1 and all("index.version=2" in c.split() for c in trees), trees


def test_a_url_git_must_read_quoted_is_kept_whole(home, server, tmp_path):
    """The clone writes ``origin``'s URL into the config itself: a URL with characters
    git's config syntax gives a meaning to (``#``, ``;``, a ``"``, spaces) reads back
    whole, as `git remote add` wrote it."""
    import shutil

    odd = server.base / 'odd #1; "x" .git'
    shutil.copytree(server.base / "proj.git", odd)
    url = server.url(odd.name)
    proc = _avfs_without_pygit2(home.path, "--json", "vault", "clone", "--lazy", url, "q")
    assert proc.returncode == 0, proc.stderr
    path = home.vault("q").path
    assert git("--git-dir", path, "config", "remote.origin.url").rstrip("\n") == url
    assert home.vault("q").store.promisor.remote() == ("origin", url)
    assert home.vault("q").workspace("main").read("NOTES.md") == b"notes\n"
    # in process, with credentials in the URL: the promisor the clone knows without reading
    # its config back is the one git reads there (the URL without them)
    port = url.split("://", 1)[1].split("/", 1)[0]
    v = home.clone_vault(url.replace(f"://{port}", f"://user:secret@{port}"), "r", lazy=True)
    assert v.lazy and v.store.promisor.remote() == ("origin", url)
    v.store.promisor.forget()
    assert v.store.promisor.remote() == ("origin", url)
    assert git("--git-dir", v.path, "config", "remote.origin.url").rstrip("\n") == url


def test_git_works_in_a_revisions_mount_once_the_worktree_config_is_on(home, server, tmp_path):
    """A clone turns the vault's worktree config on (as a fork's first mount did), and with
    it git would take the vault's ``core.bare = true`` for a linked worktree's own: a
    revision's read-only mount says otherwise for itself, as a fork's mount does, so git
    works in it whether it is the vault's first mount or not."""
    from avfs_git.ops import mounts

    from .test_fuse import require_fuse

    require_fuse()
    proc = _avfs_without_pygit2(home.path, "--json", "vault", "clone", "--lazy", server.url("proj.git"), "p")
    assert proc.returncode == 0, proc.stderr
    v = home.vault("p")
    tip = v.workspace("main").tip()
    for fork_first in (False, True):
        if fork_first:
            fmp = tmp_path / "fork"
            fmp.mkdir()
            mounts.mount(home, v, "main", str(fmp))
            git("-C", str(fmp), "status", "--porcelain")  # (waits for the mount's index)
            # detached: the daemon may still be walking its lower layer (fuse/warm.py)
            mounts.unmount(home, v, "main", lazy=True)
        mp = tmp_path / f"rev-{fork_first}"
        mp.mkdir()
        mounts.mount(home, v, "main", str(mp), revision=tip)
        try:
            out = git("-C", str(mp), "status", "--porcelain")
            assert out == "", out
            assert git("-C", str(mp), "rev-parse", "HEAD").strip() == tip
        finally:
            mounts.unmount(home, v, "main", revision=tip)


def test_a_clone_makes_the_overlay_template_its_first_mount_copies(home, server, monkeypatch):
    """With the layers file system off, a fork's state dir is in its vault, and the empty
    overlay database its first use copies is made by the clone, while its fetch waits on
    the server: that first use (a mount's daemon) makes no database of its own."""
    import sqlite3

    from avfs_git.core.workspace import overlayschema
    from avfs_git.core.workspace import sqlite as avfs_sqlite

    assert home.layers_mode == "off"
    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    template = overlayschema.template_path(os.path.join(v.path, "avfs"))
    conn = sqlite3.connect(template)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == overlayschema.VERSION
    finally:
        conn.close()

    def made(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a database was made: {args[0]}")

    monkeypatch.setattr(avfs_sqlite, "_create", made)
    ws = v.workspace("main")
    assert ws.read("NOTES.md") == b"notes\n"
    assert os.path.exists(ws.overlay.db_path)
