"""Names git refuses: the checker against git itself, and checkpoints that leave them out.

The differential half writes one tree per (name, mode) into a bare repository and asks
`git fsck --strict` (and `git read-tree` with NTFS and HFS+ protection, what a checkout
runs) about each; :func:`avfs_git.core.store.gitnames.refusal` must say the same, for a curated
list built from git's rules and for hypothesis-generated names.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pygit2
from hypothesis import given, settings
from hypothesis import strategies as st

from avfs_git.core.store import gitnames

from .conftest import git
from .test_fuse import require_fuse

MODES = (0o100644, 0o120000, 0o040000)
EMPTY_BLOB = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
# fsck's message ids -> the checker's kinds (other ids are not about names)
FSCK_KINDS = {
    "hasDotgit": gitnames.DOTGIT,
    "gitmodulesSymlink": gitnames.GITMODULES_SYMLINK,
    "gitattributesSymlink": gitnames.GIT_FILE_SYMLINK,
    "gitignoreSymlink": gitnames.GIT_FILE_SYMLINK,
    "mailmapSymlink": gitnames.GIT_FILE_SYMLINK,
    # reported on what the entry names (a tree): see _differential
    "gitmodulesBlob": gitnames.GITMODULES_DIRECTORY,
    "gitattributesBlob": gitnames.GITATTRIBUTES_DIRECTORY,
}
HFS_IGNORED = ["\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202e", "\u206a", "\u206f", "\ufeff"]


def _curated() -> list[bytes]:
    stems = [
        ".git", "git~1", ".gitmodules", ".gitignore", ".gitattributes", ".mailmap",
        "GITMOD~1", "gitmod~4", "gitmod~5", "gi7eba~1", "gi7eba~9", "gi7eba~12", "gi7eb~1",
        "gi250a~1", "gitign~1", "gi7d29~1", "gitatt~1", "maba30~1", "mailma~1", "mailma~7",
        "git~2", "git~11", ".gitx", ".git-foo", "a.git", "git", "gitmodules", ".gi", ".",
    ]  # fmt: skip
    out: set[bytes] = set()
    for s in stems:
        variants = {s, s.upper(), s.swapcase(), s.capitalize()}
        for v in list(variants):
            for suffix in ("", " ", ".", ". .", "  ", "::$INDEX_ALLOCATION", ":x", "x", " x", "\\y", "~"):
                out.add((v + suffix).encode())
            for prefix in ("x\\", "a\\b\\", "\\"):
                out.add((prefix + v).encode())
            for ch in HFS_IGNORED[:3]:
                for i in range(len(v) + 1):
                    out.add((v[:i] + ch + v[i:]).encode())
    out |= {
        b".git\xff", b".\xc1\xa7it", b".g\xe0\x80\xa9t", b".git\xed\xa0\x80", b".gi\xef\xbf\xbet",
        ".\u0147it".encode(), ".g\u0131t".encode(), "\ufeff.git".encode(), ".git\u200c".encode(),
        ".gitmodules\u200d".encode(), b"GIT~1\\x", b".git \\", b"x\\.GiT.", b"x\\gi7eba~1",
    }  # fmt: skip
    return sorted(n for n in out if n and b"/" not in n and b"\0" not in n and n not in (b".", b".."))


def _child(repo: pygit2.Repository, i: int) -> str:
    """The ``i``-th entry's own subtree: fsck reports a .gitmodules that is not a blob on
    the object the entry names, so each tree entry names a tree of its own."""
    blob = bytes.fromhex(EMPTY_BLOB)
    return str(repo.odb.write(pygit2.enums.ObjectType.TREE, b"100644 %d\0" % i + blob))


def _trees(repo: pygit2.Repository, entries: list[tuple[bytes, int]]) -> list[str]:
    """One tree holding each entry alone (raw bytes: no library check in the way)."""
    blob = bytes.fromhex(EMPTY_BLOB)
    repo.odb.write(pygit2.enums.ObjectType.BLOB, b"")
    out = []
    for i, (name, mode) in enumerate(entries):
        target = bytes.fromhex(_child(repo, i)) if mode == 0o040000 else blob
        data = b"%o %s\0" % (mode, name) + target
        out.append(str(repo.odb.write(pygit2.enums.ObjectType.TREE, data)))
    return out


def _fsck(git_dir: str) -> dict[str, set[str]]:
    """tree id -> the kinds fsck --strict reports for it (errors and warnings)."""
    proc = subprocess.run(
        ["git", "--git-dir", git_dir, "fsck", "--strict", "--no-dangling", "--no-progress"],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    found: dict[str, set[str]] = {}
    for m in re.finditer(r"(?:error|warning) in tree ([0-9a-f]{40}): (\w+):", proc.stdout + proc.stderr):
        kind = FSCK_KINDS.get(m.group(2))
        if kind is not None:
            found.setdefault(m.group(1), set()).add(kind)
    return found


def _differential(tmp_path: Path, names: list[bytes]) -> int:
    git_dir = str(tmp_path / f"d{len(list(tmp_path.iterdir()))}.git")
    repo = pygit2.init_repository(git_dir, bare=True)
    entries = [(n, m) for n in names for m in MODES]
    trees = _trees(repo, entries)
    fsck = _fsck(git_dir)
    wrong = []
    for i, ((name, mode), tree) in enumerate(zip(entries, trees, strict=True)):
        want = fsck.get(tree, set()) | (fsck.get(_child(repo, i), set()) if mode == 0o040000 else set())
        got = gitnames.refusal(name, mode)
        if (got is None) != (not want) or (got is not None and got[0] not in want):
            wrong.append((name, oct(mode), got, want))
    assert not wrong, f"{len(wrong)} disagreements with git fsck --strict, e.g. {wrong[:10]}"
    return len(entries)


def test_the_checker_agrees_with_git_fsck_on_git_s_own_rules(tmp_path):
    names = _curated()
    checked = _differential(tmp_path, names)
    assert checked > 3000
    # both verdicts are well represented, for every kind
    kinds = [(gitnames.refusal(n, m) or ("",))[0] for n in names for m in MODES]
    assert kinds.count(gitnames.DOTGIT) > 200 and kinds.count("") > 1000
    assert kinds.count(gitnames.GITMODULES_SYMLINK) > 30 and kinds.count(gitnames.GIT_FILE_SYMLINK) > 30
    assert (
        kinds.count(gitnames.GITMODULES_DIRECTORY) > 30 and kinds.count(gitnames.GITATTRIBUTES_DIRECTORY) > 30
    )


def _read_tree_refuses(git_dir: str, tree: str, index: str) -> bool:
    proc = subprocess.run(
        ["git", "-c", "core.protectNTFS=true", "-c", "core.protectHFS=true", "--git-dir", git_dir,
         "read-tree", tree],
        capture_output=True, text=True, errors="replace", env={**os.environ, "GIT_INDEX_FILE": index},
        check=False,
    )  # fmt: skip
    return proc.returncode != 0 and "invalid path" in proc.stderr


def test_what_a_checkout_refuses_is_what_the_checker_calls_dotgit_or_a_gitmodules_link(tmp_path):
    """verify_path (checkout, clone, read-tree) refuses the dotgit names and .gitmodules
    links (fsck a few more links); the other links are taken by git (left out by avfs)."""
    git_dir = str(tmp_path / "rt.git")
    repo = pygit2.init_repository(git_dir, bare=True)
    names = [*_curated()[::7], b"GIT~1", b".git ", b".git.", b".gitmodules", b".gitignore", b"ok"]
    entries = [(n, m) for n in names for m in (0o100644, 0o120000)]
    wrong = []
    for (name, mode), tree in zip(entries, _trees(repo, entries), strict=True):
        refused = _read_tree_refuses(git_dir, tree, str(tmp_path / "index"))
        got = gitnames.refusal(name, mode)
        kind = got[0] if got else None
        # a checkout refuses every dotgit name and .gitmodules link (fsck finds a few more
        # links, after a backslash: those it alone refuses); never anything else
        if (kind == gitnames.DOTGIT) != refused and not (refused and kind == gitnames.GITMODULES_SYMLINK):
            wrong.append((name, oct(mode), got, refused))
    assert not wrong, wrong[:10]


PIECES = [
    ".", ".", "g", "G", "i", "I", "t", "T", "~", "1", "4", "5", "9", "0", " ", ":", "\\", "$",
    "m", "o", "d", "u", "l", "e", "s", "a", "r", "b", "n", "c", "h", "p", "7", "2", "x", "_",
    "git", ".git", "GIT~1", "modules", "ignore", "attributes", "mailmap", "gi7eba", "maba30",
    *HFS_IGNORED, "é", "\u0131", "\u017f", "日本",
]  # fmt: skip
RAW = [b"\xff", b"\xc1\xa7", b"\xe0\x80\xae", b"\xed\xa0\x80", b"\xef\xbf\xbf", b"\xf4\x90\x80\x80"]
name_bytes = st.lists(
    st.one_of(st.sampled_from(PIECES).map(str.encode), st.sampled_from(RAW)), min_size=1, max_size=10
).map(b"".join)


@settings(max_examples=6, deadline=None)
@given(st.lists(name_bytes, min_size=150, max_size=250))
def test_generated_names_agree_with_git_fsck(tmp_path_factory, names):
    names = sorted({n for n in names if b"/" not in n and n not in (b".", b"..")})
    _differential(tmp_path_factory.mktemp("gen"), names)


def test_a_dotgit_name_after_any_component_makes_the_path_refused():
    assert gitnames.path_refusal("a/b/GIT~1/hooks/pre-commit", 0o100644) == gitnames.NotRecorded(
        "a/b/GIT~1",
        gitnames.DOTGIT,
        gitnames.refusal("GIT~1", 0o040000)[1],
    )
    assert gitnames.path_refusal("a/.gitmodules", 0o100644) is None
    assert gitnames.path_refusal("a/.gitmodules", 0o120000) is not None
    # a directory of that name (fsck: gitmodulesBlob, at any depth)
    assert gitnames.path_refusal("docs/.gitmodules/x", 0o100644) == gitnames.NotRecorded(
        "docs/.gitmodules",
        gitnames.GITMODULES_DIRECTORY,
        gitnames.refusal(".gitmodules", 0o040000)[1],
    )
    nr = gitnames.not_recorded([("s/GIT~1/a", 0o100644), ("s/GIT~1/b", 0o100644), ("ok", 0o100644)])
    assert [n.path for n in nr] == ["s/GIT~1"]


# -- checkpoints leave them out, through a real mount, and git agrees -----------------------


def _avfs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True, timeout=120
    )


def test_a_mount_s_refused_names_are_left_out_and_reported_and_git_clones_the_fork(tmp_path):
    require_fuse()
    assert _avfs("vault", "create", "v").returncode == 0
    assert _avfs("--vault", "v", "write", "README.md", "r\n").returncode == 0
    assert _avfs("--vault", "v", "checkpoint", "save").returncode == 0
    assert _avfs("--vault", "v", "vault", "fork", "work").returncode == 0
    mp = tmp_path / "mnt"
    mp.mkdir()
    assert _avfs("mount", "v:work", str(mp)).returncode == 0
    try:
        os.makedirs(mp / "sub3" / "GIT~1" / "hooks")
        (mp / "sub3" / "GIT~1" / "hooks" / "post-checkout").write_text("#!/bin/sh\necho pwned\n")
        (mp / "sub3" / "kept.txt").write_text("kept\n")
        os.makedirs(mp / "sub4" / ".git ")
        (mp / "sub4" / ".git " / "config").write_text("[core]\n")
        os.makedirs(mp / "sub5" / ".git.")
        (mp / "sub5" / ".git." / "HEAD").write_text("ref: x\n")
        os.symlink("/somewhere", mp / ".gitmodules")
        os.symlink("../README.md", mp / ".gitignore")
        (mp / "ok.txt").write_text("ok\n")
        r = _avfs("--json", "--vault", "v:work", "checkpoint", "save", "-m", "with bad names")
        assert r.returncode == 0, r.stdout + r.stderr
        doc = json.loads(r.stdout)
        assert doc["created"]
        assert doc["not_recorded"] == [
            {"path": ".gitignore", "kind": "git_file_symlink", "reason": gitnames.refusal(".gitignore", 0o120000)[1]},
            {"path": ".gitmodules", "kind": "gitmodules_symlink", "reason": gitnames.refusal(".gitmodules", 0o120000)[1]},
            {"path": "sub3/GIT~1", "kind": "dotgit", "reason": gitnames.refusal("GIT~1", 0o040000)[1]},
            {"path": "sub4/.git ", "kind": "dotgit", "reason": gitnames.refusal(".git ", 0o040000)[1]},
            {"path": "sub5/.git.", "kind": "dotgit", "reason": gitnames.refusal(".git.", 0o040000)[1]},
        ]  # fmt: skip
        # they stay in the live tree (uncheckpointed), and a second checkpoint says so again
        assert (mp / "sub3" / "GIT~1" / "hooks" / "post-checkout").read_text().endswith("pwned\n")
        assert os.readlink(mp / ".gitmodules") == "/somewhere"
        again = json.loads(_avfs("--json", "--vault", "v:work", "checkpoint", "save").stdout)
        assert not again["created"] and len(again["not_recorded"]) == 5
        # an exec that makes one: its envelope reports it, its commit leaves it out
        r = _avfs("--json", "--vault", "v:work", "proxy", "exec", "--", "sh", "-c",
                  "mkdir -p deep/GIT~1 && echo x > deep/GIT~1/y && echo z > z.txt")  # fmt: skip
        env = json.loads(r.stdout)
        assert env["commit"] and {"path": "deep/GIT~1", "kind": "dotgit", "reason": gitnames.refusal("GIT~1", 0o040000)[1]} in env["not_recorded"]  # type: ignore[index]  # fmt: skip
    finally:
        _avfs("unmount", "v:work")
    vault = os.path.join(os.environ["AVFS_HOME"], "vaults", "v.git")
    tree = git("--git-dir", vault, "ls-tree", "-r", "--name-only", "work").split()
    assert sorted(tree) == ["README.md", "ok.txt", "sub3/kept.txt", "z.txt"]
    fsck = subprocess.run(["git", "--git-dir", vault, "fsck", "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0 and "Symlink" not in fsck.stdout + fsck.stderr, fsck.stdout + fsck.stderr
    clone = tmp_path / "clone"
    proc = subprocess.run(
        ["git", "clone", "-q", "-b", "work", vault, str(clone)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert (clone / "ok.txt").read_text() == "ok\n" and not (clone / "sub3" / "GIT~1").exists()


def test_cli_writes_of_refused_names(cli, vault):
    """`.git` in any case is refused at once (invalid_path, nothing written); the other
    names git refuses are written to the live tree and left out of checkpoints."""
    r = cli("--json", "--vault", "v", "write", "a/.GIT/x", "x")
    assert r.code == 1 and r.json()["error"]["code"] == "invalid_path"
    assert not vault.workspace("main").exists("a")
    r = cli("--json", "--vault", "v", "write", "a/GIT~1/x", "x")
    assert r.code == 0
    r = cli("--json", "--vault", "v", "checkpoint", "save")
    doc = r.json()
    assert [n["path"] for n in doc["not_recorded"]] == ["a/GIT~1"]
    assert vault.workspace("main").read("a/GIT~1/x") == b"x"
    assert git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main").split() == []
