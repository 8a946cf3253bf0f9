"""An exec's record of thousands of new files, sixth pass (record6, the thirty-ninth round):
the change log's rows held through a flood and written in one transaction, the capture's
trees kept parsed (not read back by the retire and the index written ahead), the recorded
blobs' sizes taken from the record's sink, no cyclic collection during a record.

What must not change, on both backends: an exec's commit holds the tree git's own ``add -A``
makes of the same files (executable bits, links to files and to nothing, a file the command
rewrote with as many bytes just before it ended); a person's rewrite of a recorded file with
as many bytes in the second of the record, and a file swapped again and again while the
record reads it, are seen by git in the mount and by ``avfs status`` as they are, and the
next checkpoint is again git's tree. And a flood's rows, held, are in the change log when
the exec's span closes: every one of them labelled the exec's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.store.gitformat import parse_tree, tree_bytes
from avfs_git.core.vaults.changes import changes_since
from avfs_git.core.workspace import upperwatch

from .conftest import git
from .test_confine import _need_bwrap
from .test_fuse import _mounted, require_fuse
from .test_overlay import require_overlay
from .test_watch_sides import journaled

# files of three levels, an executable, links to a file and to nothing, and a file the
# command rewrites with as many bytes as it ends (in the second of the record)
MAKE = (
    "mkdir -p new/a/b && i=0 && while [ $i -lt {n} ]; do printf 'file %05d\\n' $i > new/a/b/f$i.txt;"
    " i=$((i+1)); done && printf '#!/bin/sh\\necho hi\\n' > new/run.sh && chmod 755 new/run.sh"
    " && ln -s run.sh new/link && ln -s nowhere new/dangling && : > new/empty"
    " && printf 'first\\n' > new/racy.txt && printf 'again\\n' > new/racy.txt"
)
MORE = "mkdir -p more && i=0 && while [ $i -lt {n} ]; do echo $i > more/m$i.txt; i=$((i+1)); done"
SWAP = (b"A" * 100, b"B" * 200)


def _avfs(env: dict[str, str], *args: str) -> Any:
    r = subprocess.run(
        [sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True, timeout=600, env=env
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return json.loads(r.stdout) if args[0] == "--json" else r.stdout


def _git_tree(mp: str, tmp: Path) -> str:
    """git's own ``add -A`` tree of the mount's files (a repository of its own, the mount
    its work tree: git leaves the mount's ``.git`` out as it leaves any)."""
    gd = tmp / "plain.git"
    if not gd.exists():
        git("init", "-q", "--bare", str(gd))
    args = [f"--git-dir={gd}", f"--work-tree={mp}", "-c", "core.bare=false"]
    git(*args, "add", "-A")
    return git(*args, "write-tree").strip()


def _tree_of(vault_git: Path, commit: str) -> str:
    return git("rev-parse", f"{commit}^{{tree}}", cwd=vault_git).strip()


def _blob_at(vault_git: Path, commit: str, path: str, missing_ok: bool = False) -> bytes | None:
    r = subprocess.run(["git", "cat-file", "blob", f"{commit}:{path}"], cwd=vault_git, capture_output=True)
    if r.returncode != 0 and missing_ok:
        return None
    assert r.returncode == 0, r.stderr
    return r.stdout


def _git_changed(mp: str) -> set[str]:
    return {line[3:] for line in git("status", "--porcelain", "--untracked-files=all", cwd=mp).splitlines()}


def _avfs_changed(env: dict[str, str]) -> set[str]:
    return {c["path"] for c in _avfs(env, "--json", "--vault", "p:f1", "status")["changes"]}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_racy_rewrite_and_a_swap_during_the_record_are_what_git_sees(tmp_path: Path, backend: str) -> None:
    require_overlay() if backend == "overlay" else require_fuse()
    _need_bwrap()
    n = 300 if backend == "overlay" else 40
    src = tmp_path / "src"
    src.mkdir()
    (src / "swap.txt").write_bytes(b"base\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(AVFS_HOME=str(tmp_path / "home"), AVFS_SERVER="off", AVFS_PROGRESS="never")
    _avfs(env, "vault", "create", "p", "--from", str(src))
    _avfs(env, "vault", "fork", "p", "f1")
    mp = _avfs(env, "--json", "mount", "--backend", backend, "p:f1")["mount"]["mountpoint"]
    vault_git = tmp_path / "home" / "vaults" / "p.git"
    try:
        doc = _avfs(env, "--json", "--vault", "p:f1", "proxy", "exec", "--", "sh", "-c", MAKE.format(n=n))
        assert doc["success"] and doc["mount"]["backend"] == backend, doc["error"]
        commit = doc["commit"]["commit"]
        assert _tree_of(vault_git, commit) == _git_tree(mp, tmp_path)
        assert _blob_at(vault_git, commit, "new/racy.txt") == b"again\n"
        # a person's rewrite with as many bytes, in the second of the record: git in the
        # mount and avfs see it (the index written ahead holds the stat of the bytes recorded)
        racy = Path(mp, "new/a/b/f0.txt")
        racy.write_bytes(b"FILE 00000\n")
        assert _git_changed(mp) == {"new/a/b/f0.txt"}
        assert _avfs_changed(env) == {"new/a/b/f0.txt"}

        stop = threading.Event()

        def swapper() -> None:  # (a person's program in the mount, beside the exec's record)
            i = 0
            while not stop.is_set():
                tmp = Path(mp, f"swap-{i % 2}.tmp")
                tmp.write_bytes(SWAP[i % 2])
                os.replace(tmp, Path(mp, "swap.txt"))
                i += 1

        t = threading.Thread(target=swapper)
        t.start()
        try:
            doc = _avfs(env, "--json", "--vault", "p:f1", "proxy", "exec", "--", "sh", "-c", MORE.format(n=n))
        finally:
            stop.set()
            t.join()
        assert doc["success"], doc["error"]
        commit = doc["commit"]["commit"]
        assert _blob_at(vault_git, commit, "swap.txt") in SWAP  # (one version whole, never a mix)
        assert (
            _blob_at(vault_git, commit, "new/a/b/f0.txt") == b"FILE 00000\n"
        )  # (the person's, uncheckpointed)
        # what differs from the commit now: the swap's names whose bytes (or presence) the
        # record did not see last (a side file it recorded, gone since, is a deletion)
        want = set()
        for name in ("swap.txt", "swap-0.tmp", "swap-1.tmp"):
            now = Path(mp, name).read_bytes() if Path(mp, name).exists() else None
            if now != _blob_at(vault_git, commit, name, missing_ok=True):
                want.add(name)
        assert _git_changed(mp) == want
        assert _avfs_changed(env) == want
        cp = _avfs(env, "--json", "--vault", "p:f1", "checkpoint", "save", "-m", "after")
        assert _tree_of(vault_git, cp["checkpoint"]["commit"]) == _git_tree(mp, tmp_path)
        assert _git_changed(mp) == set() and _avfs_changed(env) == set()
        git("fsck", "--strict", "--no-dangling", cwd=vault_git)
    finally:
        subprocess.run(
            [sys.executable, "-m", "avfs_git", "unmount", "p:f1"], capture_output=True, timeout=120, env=env
        )


def test_a_flood_s_change_log_rows_wait_for_one_write_and_an_answer_writes_them(tmp_path: Path) -> None:
    """The watcher's own drain during a flood holds the rows (one transaction of the log for
    many reads of the kernel's queue); any answer (the exec's span, git's fsmonitor) writes
    them first; a few rows (a person's write) go at once. On main each read of the queue
    was one transaction (``_drain`` took no ``hold``)."""
    top = tmp_path / "upper"
    top.mkdir()
    batches: list[list[str]] = []
    w = upperwatch.UpperWatch(str(top), lambda p: None, lambda: [], lambda: "base:0")
    w.on_events = lambda batch: batches.append([p for _t, _k, p, _o in batch])
    w._rewatch()  # (watched, no thread: each drain is the test's)
    try:
        for i in range(100):
            (top / f"f{i}").write_bytes(b"x")
        w._drain(hold=True)
        assert batches == []  # held: a flood's first read
        for i in range(100, 150):
            (top / f"f{i}").write_bytes(b"x")
        w._drain(hold=True)
        assert batches == []
        w.changed_since(None)  # an answer: every row read is in the log before it
        assert [sorted(b) for b in batches] == [sorted(f"f{i}" for i in range(150))]
        (top / "one").write_bytes(b"x")
        w._drain(hold=True)
        assert batches[1:] == [["one"]]  # (a person's write: at once)
        for i in range(40):
            (top / f"g{i}").write_bytes(b"x")
        w._drain(hold=True)
        assert len(batches) == 2
    finally:
        w.close()  # (and what it held is written)
    assert sorted(batches[2]) == sorted(f"g{i}" for i in range(40))


def test_a_tree_kept_parsed_is_the_tree_git_reads_back(vault: Any) -> None:
    """What the capture keeps of each tree it wrote is what reading it back gives: its bytes
    are :func:`tree_bytes`' and its items :func:`parse_tree`'s, in git's order (a directory
    sorting as if its name ended in '/'), modes as git reads them, names not UTF-8 kept."""
    from avfs_git.core.store.gitformat import tree_parsed  # (record6's; on main: none)

    names = ["a", "a.b", "a-b", "a0", "ab", "b", "A", "_", "z.c", "é", "caf\udce9", "x" * 300]
    modes = [0o100644, 0o100755, 0o040000, 0o120000, 0o160000, 0o100664]
    oid = "ab" * 20
    for k in range(len(names) * len(modes)):
        items = {nm: (oid, modes[(k + j) % len(modes)]) for j, nm in enumerate(names[: 1 + k % len(names)])}
        data, parsed = tree_parsed(items)
        assert data == tree_bytes((nm, o, m) for nm, (o, m) in items.items())
        assert list(parsed.items()) == list(parse_tree(data).items())
    # and a real tree the store reads
    ws = vault.workspace("main")
    for p in ("d/x", "d.txt", "d-e/y", "run"):
        ws.write(p, b"x\n")
    from avfs_git.core.operations import checkpoint

    commit = checkpoint.save(vault, "main", message="t").checkpoint.commit
    root = vault.store.commit_tree(commit)
    raw = subprocess.run(
        ["git", "cat-file", "tree", root], cwd=vault.path, capture_output=True, check=True
    ).stdout
    items = parse_tree(raw)
    assert tree_parsed(items) == (raw, items)


@pytest.mark.slow
def test_an_exec_s_flood_is_labelled_the_exec_s(home: Any, vault: Any, tmp_path: Path) -> None:
    """A command writing a thousand files in an overlay mount: the rows the watcher held
    through the flood are in the change log when the exec's span closes, each labelled the
    exec's (a row written after the span would be the mount's)."""
    _need_bwrap()
    with _mounted(home, vault, tmp_path, "overlay") as (v, mp):
        c0 = changes_since(v, "main", None).cursor
        r = subprocess.run(
            [sys.executable, "-m", "avfs_git", "--json", "--vault", "v:main", "proxy", "exec", "--",
             "sh", "-c", MORE.format(n=1000)],
            capture_output=True, text=True, timeout=600, cwd=mp,
        )  # fmt: skip
        doc = json.loads(r.stdout)
        assert doc["success"], doc["error"]
        journaled(v, "main")
        evs = []
        cursor = c0
        while True:
            ch = changes_since(v, "main", cursor)
            evs += ch.events
            cursor = ch.cursor
            if not ch.more:
                break
        exec_ids = {e.exec_id for e in evs if e.kind == "exec"}
        assert len(exec_ids) == 1, exec_ids
        files = [e for e in evs if e.path is not None and e.path.startswith("more/")]
        assert len({e.path for e in files}) == 1000
        assert {(e.source, e.exec_id) for e in files} == {("exec", *exec_ids)}
