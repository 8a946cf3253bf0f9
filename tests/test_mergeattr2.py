"""A revert and a workspace's changes rebased onto its moved fork honour the trees'
``.gitattributes`` as `git revert` and `git rebase` do (the thirty-fourth round,
mergeattr2; docs/merge.md, "Attributes"): each case made as a git repository, the same
operation done by git in a plain checkout and by avfs in a vault cloned from it; the
resulting tree or the conflicted paths must be git's. On main both merged without any
attribute file (libgit2's merge in a bare vault): a ``merge=union`` file conflicted where
git merges it, a ``-merge``/``binary`` one merged where git reports a conflict.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import ConflictError
from avfs_git.core.operations import checkpoint as cp

from . import realdata

WHO = ["-c", "user.name=r", "-c", "user.email=r@example.org"]
LINES = b"".join(b"line %d\n" % i for i in range(1, 13))
Files = dict[str, bytes | None]


def _git(work: Path, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    proc = subprocess.run(["git", "-C", str(work), *WHO, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode in ok, proc.stdout + proc.stderr
    return proc.stdout


def _write(work: Path, files: Files) -> None:
    for path, data in files.items():
        p = work / path
        if data is None:
            p.unlink()
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _commit(work: Path, files: Files, message: str) -> str:
    _write(work, files)
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", message)
    return _git(work, "rev-parse", "HEAD").strip()


def _history(tmp_path: Path, *steps: Files) -> tuple[Path, list[str]]:
    """A git repository whose ``main`` is one commit a step; the commits."""
    work = tmp_path / "w"
    work.mkdir(parents=True)
    _git(work, "init", "-q", "-b", "main")
    return work, [_commit(work, files, f"step {i}") for i, files in enumerate(steps)]


def _git_result(clone: Path, code: int) -> tuple[str | None, set[str]]:
    """(the tree of HEAD, None where the command stopped on conflicts; the conflicted paths)."""
    if code == 0:
        return _git(clone, "rev-parse", "HEAD^{tree}").strip(), set()
    conflicted = set(_git(clone, "diff", "--name-only", "--diff-filter=U").split())
    assert conflicted
    return None, conflicted


def _git_revert(work: Path, tmp_path: Path, commit: str) -> tuple[str | None, set[str]]:
    clone = tmp_path / "c"
    subprocess.run(["git", "clone", "-q", str(work), str(clone)], check=True, timeout=120)
    proc = subprocess.run(["git", "-C", str(clone), *WHO, "revert", "--no-edit", commit], capture_output=True)
    return _git_result(clone, proc.returncode)


def _avfs_revert(vault: Any, commit: str) -> tuple[str | None, set[str]]:
    try:
        res = cp.revert(vault, "main", commit)
    except ConflictError as exc:
        return None, set(exc.details["paths"])
    return vault.store.commit_tree(res.checkpoint.commit), set()


def _revert_as_git(tmp_path: Path, home: Any, *steps: Files, revert: int = 1) -> tuple[str | None, set[str]]:
    """Steps as a history; the commit of step ``revert`` reverted on top by git and by avfs."""
    work, commits = _history(tmp_path, *steps)
    want = _git_revert(work, tmp_path, commits[revert])
    got = _avfs_revert(home.clone_vault(str(work / ".git"), "g"), commits[revert])
    assert got == want
    return got


def test_a_revert_merges_a_union_file_as_git_revert_does(tmp_path: Path, home: Any) -> None:
    """``u.txt merge=union``: a later commit appended after the line the reverted one added
    (a conflict as text, on main): union-merged, as `git revert`; beside it ``c.txt`` of a
    driver git's config does not define (the text merge, clean)."""
    base = {".gitattributes": b"u.txt merge=union\nc.txt merge=nosuch\n", "u.txt": b"a\n", "c.txt": LINES}
    reverted = {"u.txt": b"a\nx\n", "c.txt": LINES.replace(b"line 2\n", b"two\n")}
    later = {
        "u.txt": b"a\nx\ny\n",
        "c.txt": LINES.replace(b"line 2\n", b"two\n").replace(b"line 11\n", b"z\n"),
    }
    tree, conflicts = _revert_as_git(tmp_path, home, base, reverted, later)
    assert tree is not None and not conflicts


@pytest.mark.parametrize("rule", [b"n.txt -merge\n", b"n.txt binary\n", b"n.txt merge=binary\n"])
def test_a_revert_of_a_file_git_does_not_merge_conflicts_as_in_git(
    rule: bytes, tmp_path: Path, home: Any
) -> None:
    """A file git does not merge, a later commit changed apart from the reverted change:
    a conflict in `git revert` (clean as text: avfs on main reverted it)."""
    base = {".gitattributes": rule, "n.txt": LINES, "x.txt": b"x\n"}
    reverted = {"n.txt": LINES.replace(b"line 2\n", b"two\n")}
    later = {"n.txt": LINES.replace(b"line 2\n", b"two\n").replace(b"line 11\n", b"z\n"), "x.txt": b"y\n"}
    assert _revert_as_git(tmp_path, home, base, reverted, later) == (None, {"n.txt"})


def test_a_revert_follows_the_tip_s_attributes_not_the_reverted_commit_s(tmp_path: Path, home: Any) -> None:
    """The tip's ``.gitattributes`` count (git's checkout of it): a ``merge=union`` the
    tip has makes its revert clean; one the reverted commit had and a later one removed
    does not."""
    base = {"u.txt": b"a\n", "v.txt": b"a\n", ".gitattributes": b"v.txt merge=union\n"}
    reverted = {"u.txt": b"a\nx\n", "v.txt": b"a\nx\n"}
    later = {"u.txt": b"a\nx\ny\n", "v.txt": b"a\nx\ny\n", ".gitattributes": b"u.txt merge=union\n"}
    assert _revert_as_git(tmp_path, home, base, reverted, later) == (None, {"v.txt"})


def test_a_revert_leaves_a_file_of_a_defined_driver_a_conflict(tmp_path: Path, home: Any) -> None:
    """``merge=mine`` where the vault's config defines ``merge.mine.driver``: git would run
    it, avfs runs none and the revert stops on the path (on main: a silent text merge)."""
    ran = tmp_path / "ran"
    base = {".gitattributes": b"m.txt merge=mine\n", "m.txt": LINES}
    work, commits = _history(
        tmp_path,
        base,
        {"m.txt": LINES.replace(b"line 2\n", b"two\n")},
        {"m.txt": LINES.replace(b"line 2\n", b"two\n").replace(b"line 11\n", b"z\n")},
    )
    vault = home.clone_vault(str(work / ".git"), "g")
    driver = f"touch {ran} && true"
    subprocess.run(["git", "--git-dir", vault.store.path, "config", "merge.mine.driver", driver], check=True)
    assert _avfs_revert(vault, commits[1]) == (None, {"m.txt"})
    assert not ran.exists()


def _rebase_as_git(
    tmp_path: Path, home: Any, base: Files, moved: Files, mine: Files
) -> tuple[str | None, set[str]]:
    """``main`` at ``base``, the fork moved to a commit of ``moved`` under a workspace that
    wrote ``mine``: the checkpoint rebases them onto it; git commits ``mine`` on ``base``
    and rebases that onto the moved commit. The same tree, or the same conflicted paths."""
    work, commits = _history(tmp_path, base)
    _git(work, "checkout", "-q", "-b", "moved")
    tip = _commit(work, moved, "moved")
    _git(work, "checkout", "-q", "main")
    vault = home.clone_vault(str(work / ".git"), "h")
    ws = vault.workspace("main")
    for path, data in mine.items():
        assert data is not None
        ws.write(path, data)
    subprocess.run(["git", "--git-dir", vault.store.path, "update-ref", ws.ref, tip, commits[0]], check=True)
    try:
        res = cp.save(vault, "main", message="mine")
        got: tuple[str | None, set[str]] = (vault.store.commit_tree(res.checkpoint.commit), set())
        assert res.checkpoint.parent == tip
    except ConflictError as exc:
        got = (None, set(exc.details["paths"]))
    clone = tmp_path / "c"
    subprocess.run(["git", "clone", "-q", str(work), str(clone)], check=True, timeout=120)
    _commit(clone, mine, "mine")
    proc = subprocess.run(["git", "-C", str(clone), *WHO, "rebase", "origin/moved"], capture_output=True)
    assert got == _git_result(clone, proc.returncode)
    return got


def test_changes_rebased_onto_a_moved_fork_merge_a_union_file_as_git_rebase(
    tmp_path: Path, home: Any
) -> None:
    """The fork moved (another hand appended to ``u.txt``, ``merge=union``) under a
    workspace that appended too: rebased clean, both lines, as `git rebase` (on main: a
    conflict, the checkpoint refused)."""
    base = {".gitattributes": b"u.txt merge=union\n", "u.txt": b"a\n", "x.txt": b"x\n"}
    tree, conflicts = _rebase_as_git(tmp_path, home, base, {"u.txt": b"a\nmoved\n"}, {"u.txt": b"a\nmine\n"})
    assert tree is not None and not conflicts


def test_changes_rebased_onto_a_moved_fork_conflict_where_git_does_not_merge(
    tmp_path: Path, home: Any
) -> None:
    """``binary`` from the moved fork's own ``.gitattributes`` (git's rebase replays onto
    its checkout): changes apart in ``n.txt`` are a conflict, as in git (on main: merged)."""
    base = {"n.txt": LINES, "x.txt": b"x\n"}
    moved = {"n.txt": LINES.replace(b"line 11\n", b"z\n"), ".gitattributes": b"n.txt binary\n"}
    mine = {"n.txt": LINES.replace(b"line 2\n", b"two\n"), "x.txt": b"y\n"}
    assert _rebase_as_git(tmp_path, home, base, moved, mine) == (None, {"n.txt"})


@pytest.mark.slow
def test_git_s_own_binary_test_files_in_a_revert_and_a_rebase(tmp_path: Path, home: Any) -> None:
    """git 2.39.5's source (``realdata.git_source_dir``): ``t/t0110/url-1`` is a text file
    its ``t/.gitattributes`` marks ``binary``; a revert of a line added at its start, after
    a commit added one at its end, conflicts in git (clean as text, avfs on main); so does
    a rebase of the one change onto the other."""
    base: Files = {}
    src = tmp_path / "src"
    shutil.copytree(realdata.git_source_dir("t/t0110"), src / "t/t0110")
    for f in (".gitattributes", "t/.gitattributes"):
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(realdata.git_source_file(f), src / f)
    base = {str(p.relative_to(src)): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    old = base["t/t0110/url-1"]
    assert old is not None
    first, last = {"t/t0110/url-1": b"x://o/\n" + old}, {"t/t0110/url-1": b"x://o/\n" + old + b"x://t/\n"}
    assert _revert_as_git(tmp_path / "r", home, base, first, last) == (None, {"t/t0110/url-1"})
    got = _rebase_as_git(tmp_path / "b", home, base, {"t/t0110/url-1": old + b"x://t/\n"}, first)
    assert got == (None, {"t/t0110/url-1"})


def _brute(work: Path, commit: str) -> bool:
    """git's answer: a ``.gitattributes`` blob (a regular file) of the commit's tree holds
    ``merge`` or ``binary``."""
    for line in _git(work, "ls-tree", "-r", "--full-tree", commit).splitlines():
        meta, path = line.split("\t", 1)
        mode, _, oid = meta.split()
        if path.rsplit("/", 1)[-1] == ".gitattributes" and mode in ("100644", "100755"):
            data = subprocess.run(
                ["git", "-C", str(work), "cat-file", "blob", oid], capture_output=True
            ).stdout
            if b"merge" in data or b"binary" in data:
                return True
    return False


def test_the_answer_kept_per_tree_is_what_git_s_attribute_files_say(tmp_path: Path, home: Any) -> None:
    """:mod:`avfs_git.core.store.attrtrees` (a merge asks it before any walk) against git's
    own listing of each commit's ``.gitattributes`` blobs: deep files added, changed to
    ``text`` only, removed, a link named ``.gitattributes`` (git reads none through it), a
    macro, two directories of one tree id; and a fresh handle of the vault, reading the kept file (a torn record
    at its end skipped; records out of step start it over), answers the same."""
    from avfs_git.core.store import attrtrees
    from avfs_git.core.store.gitstore import GitStore
    from avfs_git.core.store.mergeattrs import WORDS

    work, commits = _history(
        tmp_path,
        {"a/b/c/x.txt": b"x\n", "y.txt": b"y\n", "l/t": b"x merge=union\n"},
        {"a/b/.gitattributes": b"*.txt text eol=lf\n"},
        {"a/b/c/.gitattributes": b"x.txt merge=union\n"},
        {"a/b/c/.gitattributes": None, "e/f/g/h/i.txt": b"i\n"},
        {"e/f/g/h/.gitattributes": b"[attr]k binary\ni.txt k\n"},
        {"e/f/g/h/.gitattributes": None},
    )
    (work / "l" / ".gitattributes").symlink_to("t")
    commits.append(_commit(work, {}, "a link"))
    same = {"x": b"x\n", ".gitattributes": b"x merge=union\n"}  # (two directories, one tree id)
    commits.append(_commit(work, {f"{d}/q/{k}": v for d in ("p", "r/s") for k, v in same.items()}, "twins"))
    want = [_brute(work, c) for c in commits]
    assert want == [False, False, True, False, True, False, False, True]
    vault = home.clone_vault(str(work / ".git"), "g")
    trees = [vault.store.commit_tree(c) for c in commits]
    assert [attrtrees.of_store(vault.store).names_merging(vault.store, t, WORDS) for t in trees] == want
    kept = Path(vault.path, "avfs", attrtrees.FILE)
    data = kept.read_bytes()
    records = {data[i : i + 20].hex(): data[i + 20 : i + 21] for i in range(0, len(data), 21)}
    assert len(data) == 21 * len(records) and set(records) >= set(trees)
    assert [records[t] == b"1" for t in trees] == want
    with open(kept, "ab") as fh:
        fh.write(b"torn")
    size = kept.stat().st_size
    fresh = GitStore(vault.path)  # (another process's handle: the kept file read, nothing walked)
    assert [attrtrees.of_store(fresh).names_merging(fresh, t, WORDS) for t in trees] == want
    assert kept.stat().st_size == size
    kept.write_bytes(b"x" * 20 + b"?" + data)  # (out of step: started over, answered anew)
    fresh = GitStore(vault.path)
    assert [attrtrees.of_store(fresh).names_merging(fresh, t, WORDS) for t in trees] == want
    assert len(kept.read_bytes()) < len(data) + 21


def test_a_lazy_vault_fetches_the_attribute_files_asked_in_one_batch(tmp_path: Path, home: Any) -> None:
    """A lazy vault (cloned over `git daemon` on 127.0.0.1 with a blob filter) holds none of
    the tree's ``.gitattributes`` blobs: the kept answer fetches the six it reads in one
    request, not one each (the walk reads every directory's)."""
    from avfs_git.core.store import attrtrees
    from avfs_git.core.store.mergeattrs import WORDS

    from .test_lazy import Server

    files: Files = {f"d{i}/.gitattributes": b"*.c text\n# %d\n" % i for i in range(6)}
    work, commits = _history(tmp_path, files | {f"d{i}/f.c": b"int x;\n" for i in range(6)})
    served = tmp_path / "served"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(served / "proj.git")], check=True)
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant"):
        _git(served / "proj.git", "config", key, "true")
    wanted = {_git(work, "rev-parse", f"HEAD:{p}").strip() for p in files}
    with Server.serving(served) as srv:
        vault = home.clone_vault(srv.url("proj.git"), "z", lazy=True)
        store = vault.store
        assert not any(store.is_local(o) for o in wanted)
        asked: list[set[str]] = []
        fetch = store.promisor.fetch

        def counted(oids: Any, **kw: Any) -> None:  # (a spy: the real fetch runs)
            oids = list(oids)
            asked.append(set(oids))
            fetch(oids, **kw)

        store.promisor.fetch = counted  # type: ignore[method-assign]
        assert not attrtrees.of_store(store).names_merging(store, store.commit_tree(commits[0]), WORDS)
    assert len(wanted) == 6 and asked == [wanted]
