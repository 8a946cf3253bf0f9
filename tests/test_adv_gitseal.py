"""The vault's git dir, seen from inside a confined `proxy exec`: nothing the command writes
there (refs, objects, hooks, config, the index, nested repositories) reaches the host.

Every attack runs as a script in the fork through a real confined `proxy exec` (the CLI,
which a live mount's daemon serves warm, in a sandbox it made ready), on the overlay
backend and on pure FUSE; then the test acts as the person would (plain `git status`,
`git commit` in the mount, `git diff`/`cat-file` in the vault, `avfs merge`, the next
`proxy exec`) and checks that no planted code ran (a canary file it would make stays
absent), that no ref outside the fork moved, and that the fork lost nothing. The conftest's
teardown runs `git fsck --strict` on every vault a test leaves."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.mount.ownfiles import worktree_dir
from avfs_git.ops import mounts
from avfs_git.proxy import seal, sealpack, standby

from .conftest import run_in_process
from .contract.test_proxy_exec_warm import _wait_for, _waiters
from .test_confine import _need_bwrap
from .test_fuse import require_fuse
from .test_json_schemas import validate
from .test_overlay import require_overlay
from .waitingexec import exec_argv, running

BACKENDS = ["overlay", "fuse"]


def _avfs(*args: str) -> subprocess.CompletedProcess[bytes]:
    """`avfs --vault v:main ARGS` in this process: the exec is the mount daemon's, in its
    sandbox, either way (a real CLI process: `test_what_the_command_stages_the_person_commits`,
    the tests that act while one runs, `waitingexec`)."""
    r = run_in_process(["--vault", "v:main", *args])
    return subprocess.CompletedProcess(args, r.code, r.out_bytes, r.err.encode())


def _avfs_proc(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "avfs_git", "--vault", "v:main", *args], capture_output=True, timeout=120
    )


def _exec(*argv: str) -> dict[str, Any]:
    r = _avfs("--json", "proxy", "exec", "--", *argv)
    doc = json.loads(r.stdout)
    assert r.returncode == doc["exit_code"], (r.returncode, doc)
    assert doc["confinement"]["kind"] == "bwrap", doc["confinement"]
    return dict(doc)


def _git(*args: str, cwd: str | Path | None = None, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check:
        assert proc.returncode == 0, (args, proc.stderr)
    return proc.stdout + proc.stderr


def _refs(vault: Any) -> dict[str, str]:
    """The vault's refs but the fork's own branch (its exec's commits move it) and what
    avfs holds of its overlay for git's gc (``refs/avfs/held/main/``: written by avfs on the
    host as the commit moves the base, never by the command)."""
    out = _git("--git-dir", vault.path, "for-each-ref", "--format=%(refname) %(objectname)")
    own = ("refs/heads/main ", "refs/avfs/held/main/")
    return dict(line.split(" ", 1) for line in out.splitlines() if not line.startswith(own))


def _files(d: str) -> dict[str, str]:
    """Every file under ``d``: its sha256 (what the sandbox must not have changed)."""
    out = {}
    for dirpath, _dirs, files in os.walk(d):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, d)] = hashlib.sha256(fh.read()).hexdigest()
    return out


@pytest.fixture(params=BACKENDS)
def live(request: Any, home: Any, vault: Any, tmp_path: Path) -> Any:
    if request.param == "overlay":
        require_overlay()
    else:
        require_fuse()
    _need_bwrap()
    w = vault.workspace("main")
    w.write("README", b"the original\n")
    w.write("lib.py", b"x = 1\n")
    checkpoint.save(vault, name="base")
    vault.fork("main", "other")
    _git("--git-dir", vault.path, "tag", "v1", "main")
    info = mounts.mount(home, vault, "main", None, backend=request.param)
    assert info.backend == request.param
    try:
        yield info
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def _script(live: Any, name: str, text: str) -> None:
    with open(os.path.join(live.mountpoint, name), "w") as fh:
        fh.write(text)


def _heredoc(path: str, text: str) -> str:
    """Shell lines that write ``text`` (lines, no quote in them) to ``path``."""
    return f"cat > {path} <<'EOF'\n{text}EOF\n"


def _person_git(live: Any, canary: Path) -> None:
    """What a person does in the mount afterwards: plain git, nothing planted runs."""
    mp = live.mountpoint
    _git("status", cwd=mp)
    _git("diff", cwd=mp)
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qam", "by the person", cwd=mp, check=False)
    _git("log", "-1", cwd=mp)
    assert not canary.exists(), f"planted code ran on the host: {canary.read_text()}"


def test_a_nested_repository_s_fsmonitor_never_runs_for_the_person(live, vault, tmp_path):
    """Reproduction 4: a gitlink added to the mount's index, and one left untracked."""
    canary = tmp_path / "canary-nested"
    _script(
        live,
        "attack.sh",
        f"""set -e
for s in sub loose; do
  git init -q $s
  git -C $s config core.fsmonitor 'echo ran $s >> {canary}; false'
  echo inner > $s/f
  git -C $s add f
  git -C $s -c user.name=A -c user.email=a@x commit -qm inner
done
git add sub
git ls-files -s sub
""",
    )
    doc = _exec("sh", "attack.sh")
    assert doc["exit_code"] == 0, doc["result"]
    assert doc["result"]["stdout"].startswith("160000 "), doc["result"]  # git did add a gitlink
    kinds = {(n["path"], n["kind"]) for n in doc["not_recorded"]}
    assert ("sub", "gitlink") in kinds, doc["not_recorded"]
    mp = live.mountpoint
    assert "160000" not in _git("ls-files", "-s", cwd=mp)  # dropped from the index
    tree = _git("--git-dir", vault.path, "ls-tree", "-r", "main")
    assert "160000" not in tree and "sub/.git" not in tree and "sub/f" in tree  # never committed
    _person_git(live, canary)
    # the fork lost nothing: the nested repositories' files are the fork's files
    ws = vault.workspace("main")
    assert ws.read("sub/f") == b"inner\n" and ws.read("loose/f") == b"inner\n"
    # the next proxy exec's git status does not run it either (git in the sandbox)
    assert _exec("git", "status", "--short")["exit_code"] == 0
    assert not canary.exists()


def test_refs_outside_the_fork_never_move_and_replace_refs_stay_inside(live, vault, home, tmp_path):
    """Reproduction 11 (refs/replace), another fork's branch, a checkpoint ref, a tag."""
    other = vault.workspace("other")
    other.write("lib.py", b"x = 2  # the reviewed change\n")
    checkpoint.save(vault, "other", message="reviewed")
    before = _refs(vault)
    reviewed = _git("--git-dir", vault.path, "rev-parse", "other:lib.py").strip()
    _script(
        live,
        "attack.sh",
        f"""M=$(printf 'import os; os.system("evil")\\n' | git hash-object -w --stdin)
git update-ref refs/replace/{reviewed} $M && echo REPLACED
git update-ref refs/heads/other HEAD~1 && echo MOVED-OTHER
git update-ref -d refs/avfs/checkpoints/main/-/base && echo DELETED-CHECKPOINT
git update-ref refs/tags/v1 $M && echo MOVED-TAG
git update-ref refs/heads/new HEAD && echo NEW-BRANCH
git update-ref refs/stash HEAD && echo STASH
exit 0
""",
    )
    for i in range(2):  # the first in a sandbox set up for it, the second in one made ready
        if i == 1 and standby.available():
            assert _wait_for(lambda: _waiters(live.pid)), "no sandbox made ready after the first command"
        doc = _exec("sh", "attack.sh")
        assert doc["exit_code"] == 0, doc["result"]
        assert _refs(vault) == before
        refused = {r["ref"] for r in doc["refs_refused"]}
        # what git could write (in the sandbox's scratch) is reported, and not applied
        said = doc["result"]["stdout"]
        assert "REPLACED" in said and f"refs/replace/{reviewed}" in refused, (said, refused)
        assert "MOVED-OTHER" in said and "refs/heads/other" in refused
        assert "refs/heads/new" in refused and "refs/stash" in refused
        # a tag is the vault's copy in there (git tag works), reported, never applied
        assert "MOVED-TAG" in said and "refs/tags/v1" in refused
        # the vault's own refs/avfs are read-only in there
        assert "DELETED-CHECKPOINT" not in said
    # the person reviews `other` against main and merges it: what was reviewed is merged
    assert _git("--git-dir", vault.path, "replace", "-l").strip() == ""
    diff = _git("--git-dir", vault.path, "diff", "main", "other", "--", "lib.py")
    assert "the reviewed change" in diff and "evil" not in diff
    from avfs_git.core.operations import merge

    merge.merge(vault, "other", "main")
    assert vault.workspace("main").read("lib.py") == b"x = 2  # the reviewed change\n"
    assert _git("--git-dir", vault.path, "cat-file", "-p", "main:lib.py") == "x = 2  # the reviewed change\n"


def test_existing_objects_and_packs_cannot_be_overwritten_as_root(live, vault, tmp_path):
    loose = _git("--git-dir", vault.path, "hash-object", "-w", "--stdin", check=True)  # the empty blob
    assert loose
    objects = os.path.join(vault.path, "objects")
    packs = [p for p in os.listdir(os.path.join(objects, "pack")) if p.endswith(".pack")]
    assert packs, "the test needs a pack in the vault"
    snap = _files(objects)
    _script(
        live,
        "attack.sh",
        f"""for base in {objects} {seal.seal_dir(vault, "main")}/vault-objects; do
  for f in $(find $base -type f); do
    chmod u+w $f 2>/dev/null
    if printf 'garbage' > $f 2>/dev/null; then echo "WROTE $f"; fi
    if printf 'garbage' >> $f 2>/dev/null; then echo "APPENDED $f"; fi
    rm -f $f 2>/dev/null && echo "REMOVED $f"
  done
done
exit 0
""",
    )
    doc = _exec("sh", "attack.sh")
    assert doc["exit_code"] == 0, doc["result"]
    # writes into the sandbox's object quarantine may succeed; not one reached the vault
    # (the exec's own commit adds a pack: only what was there is compared)
    after = _files(objects)
    assert {k: after.get(k) for k in snap} == snap
    assert "WROTE" in doc["result"]["stdout"]  # the script did reach files to write
    _git("--git-dir", vault.path, "fsck", "--strict", "--no-dangling")
    assert _git("cat-file", "-p", "HEAD:README", cwd=live.mountpoint) == "the original\n"


def test_hooks_config_attributes_and_the_worktree_s_files_are_read_only(live, vault, tmp_path):
    canary = tmp_path / "canary-gitdir"
    wt = worktree_dir(vault, "main")
    planted = f"touch {canary}"
    targets = {
        "hooks/pre-commit": f"#!/bin/sh\n{planted}\n",
        "hooks/post-commit": f"#!/bin/sh\n{planted}\n",
        "config": f"[core]\n\tfsmonitor = {planted}\n\thooksPath = /tmp\n",
        "info/attributes": "* filter=evil diff=evil\n",
    }
    wt_targets = {
        "config.worktree": f"[core]\n\tfsmonitor = {planted}\n",
        "config": f"[core]\n\tfsmonitor = {planted}\n",
        "commondir": "/tmp\n",
        "gitdir": "/tmp/x\n",
        "HEAD": "ref: refs/heads/other\n",
        "hooks/pre-commit": f"#!/bin/sh\n{planted}\n",
    }
    lines = []
    for rel, text in targets.items():
        lines.append(
            f"mkdir -p $(dirname {vault.path}/{rel}) 2>/dev/null; printf %s {json.dumps(text)} > {vault.path}/{rel} 2>/dev/null && echo WROTE {rel}"
        )
    for rel, text in wt_targets.items():
        lines.append(f"mkdir -p $(dirname {wt}/{rel}) 2>/dev/null; printf %s {json.dumps(text)} > {wt}/{rel} 2>/dev/null && echo WROTE-WT {rel}")  # fmt: skip
    # the packed-refs there is the sandbox's own (proxy/sealpack.py): emptied in there (every
    # other fork's branch gone, in there only: reported), never the vault's
    lines.append(f"printf '' > {vault.path}/packed-refs && echo EMPTIED packed-refs")
    _script(live, "attack.sh", "\n".join(lines) + "\nexit 0\n")
    _exec("true")  # (the vault as avfs leaves it: an empty packed-refs for a --isolate view to cover)
    keep = {rel: _files(vault.path).get(rel) for rel in (*targets, "packed-refs")}
    keep_wt = {rel: _files(wt).get(rel) for rel in ("config.worktree", "commondir", "gitdir", "HEAD")}
    doc = _exec("sh", "attack.sh")
    said = doc["result"]["stdout"]
    assert "WROTE " not in said, said
    for rel in ("config.worktree", "commondir", "gitdir"):
        assert f"WROTE-WT {rel}\n" not in said, said
    assert {rel: _files(vault.path).get(rel) for rel in (*targets, "packed-refs")} == keep
    assert "EMPTIED packed-refs" in said, said
    assert [(r["ref"], r["new"]) for r in doc["refs_refused"] if r["ref"].startswith("refs/heads/")] == [
        ("refs/heads/other", None)
    ], doc["refs_refused"]
    # HEAD is git's to move in there (a rebase detaches it): one naming another branch is
    # put back after the run, and said
    assert {rel: _files(wt).get(rel) for rel in keep_wt} == keep_wt
    assert [r for r in doc["refs_refused"] if r["ref"] == "HEAD"], doc["refs_refused"]
    _person_git(live, canary)
    assert _exec("git", "-c", "user.name=A", "-c", "user.email=a@x", "commit", "--allow-empty", "-qm", "x")["exit_code"] == 0  # fmt: skip
    assert not canary.exists()


def test_a_gitmodules_directory_is_never_committed(live, vault):
    """Reproduction 13: a directory named .gitmodules below the root; by the exec's commit
    and by the command's own `git commit` (git takes it into its index)."""
    _script(live, "attack.sh", "mkdir -p a/.gitmodules && echo x > a/.gitmodules/f && echo y > a/keep\n")
    doc = _exec("sh", "attack.sh")
    assert doc["exit_code"] == 0 and doc["commit"] is not None, doc
    assert {"path": "a/.gitmodules", "kind": "gitmodules_directory"}.items() <= doc["not_recorded"][0].items()
    assert "a/.gitmodules" not in _git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main")
    tip = _git("--git-dir", vault.path, "rev-parse", "main").strip()
    _script(
        live,
        "commit.sh",
        "git add -f a/.gitmodules/f && git -c user.name=A -c user.email=a@x commit -qm sneak; exit 0\n",
    )
    doc = _exec("sh", "commit.sh")
    fork_refs = [r for r in doc["refs_refused"] if r["ref"] == "refs/heads/main"]
    assert fork_refs and "gitmodules" in fork_refs[0]["reason"], doc["refs_refused"]
    assert "a/.gitmodules" not in _git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main")
    assert _git("--git-dir", vault.path, "merge-base", "--is-ancestor", tip, "main") == ""
    assert vault.workspace("main").read("a/.gitmodules/f") == b"x\n"  # still in the fork
    _git("--git-dir", vault.path, "fsck", "--strict", "--no-dangling")


def test_a_commit_of_names_avfs_cannot_hold_is_not_carried(live, vault):
    """A name that is not UTF-8 text (found in the twentieth round, NAME=attack11): a
    command's `git update-index --cacheinfo` of `bad\\xffname.txt`, then `git commit`, was
    carried onto the fork's branch, and every later `avfs status`, checkpoint and `proxy
    exec` of the fork failed (exit 70, `UnicodeEncodeError`), the agent's own included.
    Now such a commit (and one of a name with a control character, which no workspace
    path holds) is not carried; the person's avfs and the next exec go on."""
    tip = _git("--git-dir", vault.path, "rev-parse", "main").strip()
    _script(
        live,
        "names.sh",
        "oid=$(printf 'x\\n' | git hash-object -w --stdin)\n"
        "for n in \"$(printf 'bad\\377name.txt')\" \"$(printf 'e\\033[2Jz.txt')\"; do\n"
        '  git update-index --add --cacheinfo "100644,$oid,$n" || exit 1\n'
        "  git -c user.name=A -c user.email=a@x commit -qm sneak || exit 1\n"
        "done; echo committed\n",
    )
    doc = _exec("sh", "names.sh")
    assert doc["result"]["stdout"] == "committed\n", doc["result"]
    assert doc["error"] is None, doc["error"]
    fork_refs = [r for r in doc["refs_refused"] if r["ref"] == "refs/heads/main"]
    assert fork_refs and "UTF-8" in fork_refs[0]["reason"], doc["refs_refused"]
    assert _git("--git-dir", vault.path, "merge-base", "--is-ancestor", tip, "main") == ""
    assert "sneak" not in _git("--git-dir", vault.path, "log", "--format=%s", "main")
    for args in (("status",), ("checkpoint", "save", "-m", "after")):
        r = _avfs("--json", *args)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    assert _exec("true")["error"] is None


def test_a_gitmodules_git_fsck_refuses_is_never_committed_nor_lost(live, vault, tmp_path):
    """A .gitmodules *file* whose contents git fsck refuses (`update = !cmd`, a url and a
    path starting with '-', a name with '..'), at the root and below it: the exec's commit
    leaves both out and its envelope says so; they stay in the mount; the vault passes
    `git fsck --strict` and a remote with receive.fsckObjects takes a push; the command's
    own `git commit` of one is not carried back; the next exec records the fixed files."""
    root = '[submodule "lib"]\n\tpath = lib\n\turl = ./lib\n\tupdate = !sh -c false\n'
    deep = '[submodule "../../modules/evil"]\n\tpath = -evil\n\turl = --upload-pack=false\n'
    _script(live, "attack.sh", f"mkdir -p d && echo y > d/keep\n{_heredoc('.gitmodules', root)}{_heredoc('d/.gitmodules', deep)}")  # fmt: skip
    doc = _exec("sh", "attack.sh")
    assert doc["exit_code"] == 0 and doc["commit"] is not None, doc
    validate(doc)
    said = {n["path"]: n for n in doc["not_recorded"]}
    assert sorted(said) == [".gitmodules", "d/.gitmodules"], doc["not_recorded"]
    assert {n["kind"] for n in said.values()} == {"gitmodules_content"}
    assert "gitmodulesUpdate" in said[".gitmodules"]["reason"]
    assert all(
        i in said["d/.gitmodules"]["reason"] for i in ("gitmodulesName", "gitmodulesPath", "gitmodulesUrl")
    )
    names = _git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main").split()
    assert "d/keep" in names and ".gitmodules" not in names and "d/.gitmodules" not in names
    # nothing lost: the mount and the workspace still hold them, as written
    mp = Path(live.mountpoint)
    assert (mp / ".gitmodules").read_text() == root and (mp / "d" / ".gitmodules").read_text() == deep
    assert vault.workspace("main").read("d/.gitmodules") == deep.encode()
    remote = _fsck_push_and_own_commit_refused(vault, live, mp, tmp_path, _exec, ".gitmodules")
    # fixed: the next exec records both, and reports nothing
    good = '[submodule "lib"]\n\tpath = lib\n\turl = ./lib\n\tupdate = rebase\n'
    _script(live, "fix.sh", _heredoc(".gitmodules", good) + _heredoc("d/.gitmodules", good))
    doc = _exec("sh", "fix.sh")
    assert doc["exit_code"] == 0 and doc["commit"] is not None and doc["not_recorded"] == [], doc
    for path in (".gitmodules", "d/.gitmodules"):
        assert _git("--git-dir", vault.path, "cat-file", "blob", f"main:{path}") == good
    assert (mp / ".gitmodules").read_text() == good
    _git("--git-dir", vault.path, "fsck", "--strict", "--no-dangling")
    _git("--git-dir", vault.path, "push", "-q", str(remote), "main")


def test_a_gitattributes_git_fsck_refuses_is_never_committed_nor_lost(live, vault, tmp_path):
    """A .gitattributes git fsck refuses: a file with a line of 2048 bytes (at the root), one
    of 2047 bytes and a \r under a case variant (below it), a directory of that name; and a
    link, which fsck only notes. The exec's commit leaves them out and its envelope says
    so; they stay in the mount; the vault passes `git fsck --strict` and a remote with
    receive.fsckObjects takes a push; the command's own `git commit` of one is not carried
    back; the next exec records the fixed files."""
    attack = (
        "mkdir -p d/e x/.gitattributes && echo y > d/keep && echo z > x/.gitattributes/f\n"
        "printf '*.c %2044s\\n' text > .gitattributes\n"  # 4 + 2044 = 2048 bytes
        "printf '*.c %2043s\\r\\n' text > d/e/.GitAttributes\n"  # 2047 bytes and a \r
        "printf '*.c %2043s\\n' text > d/.gitattributes\n"  # 2047 bytes: taken
        "ln -s ../README d/e/.gitattributes\n"
    )
    _script(live, "attack.sh", attack)
    doc = _exec("sh", "attack.sh")
    assert doc["exit_code"] == 0 and doc["commit"] is not None, doc
    validate(doc)
    said = {n["path"]: n["kind"] for n in doc["not_recorded"]}
    assert said == {
        ".gitattributes": "gitattributes_content",
        "d/e/.GitAttributes": "gitattributes_content",
        "d/e/.gitattributes": "git_file_symlink",
        "x/.gitattributes": "gitattributes_directory",
    }, doc["not_recorded"]
    reasons = {n["path"]: n["reason"] for n in doc["not_recorded"]}
    assert "gitattributesLineLength" in reasons[".gitattributes"]
    assert "gitattributesBlob" in reasons["x/.gitattributes"]
    names = _git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main").split()
    assert "d/keep" in names and "d/.gitattributes" in names
    assert not {".gitattributes", "d/e/.GitAttributes", "d/e/.gitattributes", "x/.gitattributes/f"} & set(
        names
    )
    # nothing lost: the mount and the workspace still hold them, as written
    mp = Path(live.mountpoint)
    assert len((mp / ".gitattributes").read_bytes()) == 2049
    assert (mp / "d" / "e" / ".GitAttributes").read_bytes().endswith(b"text\r\n")
    assert (mp / "x" / ".gitattributes" / "f").read_text() == "z\n"
    assert os.readlink(mp / "d" / "e" / ".gitattributes") == "../README"
    assert vault.workspace("main").read(".gitattributes") == (mp / ".gitattributes").read_bytes()
    remote = _fsck_push_and_own_commit_refused(vault, live, mp, tmp_path, _exec, ".gitattributes")
    # fixed: the next exec records them, and reports nothing
    good = "*.c text eol=lf\n"
    fix = (
        "rm -rf x/.gitattributes d/e/.gitattributes\n"
        + _heredoc(".gitattributes", good)
        + _heredoc("d/e/.GitAttributes", good)
    )
    _script(live, "fix.sh", fix)
    doc = _exec("sh", "fix.sh")
    assert doc["exit_code"] == 0 and doc["commit"] is not None and doc["not_recorded"] == [], doc
    for path in (".gitattributes", "d/e/.GitAttributes"):
        assert _git("--git-dir", vault.path, "cat-file", "blob", f"main:{path}") == good
    assert (mp / ".gitattributes").read_text() == good
    _git("--git-dir", vault.path, "fsck", "--strict", "--no-dangling")
    _git("--git-dir", vault.path, "push", "-q", str(remote), "main")


def test_git_commit_in_the_sandbox_is_the_fork_s_next_commit(live, vault):
    """The positive path: the command's own commits move the fork, one after the other
    (the second in a sandbox made ready before it came)."""
    for i in range(2):
        tip = _git("--git-dir", vault.path, "rev-parse", "main").strip()
        doc = _exec(
            "sh", "-c",
            f"echo more{i} >> README && git -c user.name=A -c user.email=a@x commit -qam 'agent commit {i}'",
        )  # fmt: skip
        assert doc["exit_code"] == 0, doc["result"]
        assert doc["refs_refused"] == [], doc["refs_refused"]
        log = _git("--git-dir", vault.path, "log", "--format=%s", f"{tip}..main")
        assert f"agent commit {i}" in log.splitlines(), log
        assert _git("--git-dir", vault.path, "show", "main:README").endswith(f"more{i}\n")
    _git("status", cwd=live.mountpoint)
    assert vault.workspace("main").read("README").endswith(b"more0\nmore1\n")
    # one history: the second commit's parent line holds the first (the scratch was current)
    subjects = _git("--git-dir", vault.path, "log", "--first-parent", "--format=%s", "main").splitlines()
    assert subjects.index("agent commit 1") < subjects.index("agent commit 0"), subjects


def test_a_stash_lives_as_long_as_its_run(live, vault):
    """`git stash` in one exec and `git stash pop` in the next: the stash ref is the
    run's own (reported in refs_refused, its commit kept in the vault), so the next run
    finds no stash but brings it back with `git stash apply ID`."""
    _script(
        live,
        "stash.sh",
        "echo wip >> README && git -c user.name=A -c user.email=a@x stash -q && cat README\n",
    )
    doc = _exec("sh", "stash.sh")
    assert doc["exit_code"] == 0 and doc["result"]["stdout"] == "the original\n", doc["result"]
    stash = [r for r in doc["refs_refused"] if r["ref"] == "refs/stash"]
    assert stash and stash[0]["new"], doc["refs_refused"]
    assert "refs/stash" not in _refs(vault)
    pop = _exec("git", "stash", "pop")
    assert pop["exit_code"] != 0 and "No stash entries" in pop["result"]["stderr"], pop["result"]
    back = _exec("git", "stash", "apply", stash[0]["new"])
    assert back["exit_code"] == 0, back["result"]
    assert vault.workspace("main").read("README") == b"the original\nwip\n"


def test_the_mount_s_git_file_cannot_point_git_elsewhere(live, vault, tmp_path):
    """The `.git` file at the mount's root names the vault's worktree; a command that
    rewrites it (pointing git at a repository it made, with a `core.fsmonitor`) would run
    code at the person's next `git status`."""
    canary = tmp_path / "canary-gitfile"
    _script(
        live,
        "attack.sh",
        f"""git init -q x && mv x/.git evil && rmdir x
git --git-dir=evil config core.fsmonitor 'touch {canary}; false'
printf 'gitdir: evil\\n' > .git 2>/dev/null && echo WROTE-GITFILE
rm -f .git 2>/dev/null && echo REMOVED-GITFILE
mv evil .git 2>/dev/null && echo REPLACED-GITFILE
exit 0
""",
    )
    doc = _exec("sh", "attack.sh")
    assert doc["exit_code"] == 0, doc["result"]
    with open(os.path.join(live.mountpoint, ".git")) as fh:
        assert fh.read() == f"gitdir: {worktree_dir(vault, 'main')}\n", doc["result"]
    _person_git(live, canary)


def test_a_hand_written_rebase_todo_is_removed_before_the_person_continues_it(live, vault, tmp_path):
    """An interactive rebase's todo list runs its `exec` lines on `git rebase --continue`;
    HEAD is read-only in the sandbox, so one found there afterwards was written by hand."""
    canary = tmp_path / "canary-rebase"
    wt = worktree_dir(vault, "main")
    tip = _git("--git-dir", vault.path, "rev-parse", "main").strip()
    files = {
        "git-rebase-todo": f"exec touch {canary}\n",
        "head-name": "refs/heads/main\n",
        "onto": f"{tip}\n",
        "orig-head": f"{tip}\n",
        "interactive": "",
    }
    _script(
        live,
        "attack.sh",
        f"mkdir -p {wt}/rebase-merge\n"
        + "".join(f"printf %s {json.dumps(t)} > {wt}/rebase-merge/{n}\n" for n, t in files.items()),
    )
    doc = _exec("sh", "attack.sh")
    assert doc["exit_code"] == 0, doc["result"]
    assert any(r["ref"] == "rebase-merge" for r in doc["refs_refused"]), doc["refs_refused"]
    assert not os.path.lexists(os.path.join(wt, "rebase-merge"))
    assert "rebase" not in _git("status", cwd=live.mountpoint)
    _git("rebase", "--continue", cwd=live.mountpoint, check=False)
    _person_git(live, canary)


def test_a_hand_written_cherry_pick_is_removed_before_the_person_continues_it(live, vault, tmp_path):
    """A cherry-pick's `sequencer/opts` names its merge strategy, and git runs `git
    merge-<strategy>` for each pick left: `d/x` runs the work tree's `git-merge-d/x` on the
    person's `git cherry-pick --continue` (found in the eleventh round: it ran on the host)."""
    canary = tmp_path / "canary-sequencer"
    wt = worktree_dir(vault, "main")
    _script(
        live,
        "attack.sh",
        f"mkdir -p git-merge-d && printf '#!/bin/sh\\ntouch {canary}\\nexit 1\\n' > git-merge-d/x\n"
        "chmod +x git-merge-d/x\n"
        f"T=$(git rev-parse HEAD) && mkdir -p {wt}/sequencer && echo $T > {wt}/sequencer/head\n"
        f"printf 'pick %s a\\npick %s b\\n' $T $T > {wt}/sequencer/todo\n"
        f"printf '[options]\\n\\tstrategy = d/x\\n' > {wt}/sequencer/opts\n",
    )
    doc = _exec("sh", "attack.sh")
    assert doc["exit_code"] == 0, doc["result"]
    assert any(r["ref"] == "sequencer" for r in doc["refs_refused"]), doc["refs_refused"]
    assert not os.path.lexists(os.path.join(wt, "sequencer"))
    assert "cherry-pick" not in _git("status", cwd=live.mountpoint)
    _git(
        "-c",
        "user.name=P",
        "-c",
        "user.email=p@x",
        "cherry-pick",
        "--continue",
        cwd=live.mountpoint,
        check=False,
    )
    _git(
        "-c", "user.name=P", "-c", "user.email=p@x", "cherry-pick", "--skip", cwd=live.mountpoint, check=False
    )
    _person_git(live, canary)
    assert os.access(os.path.join(live.mountpoint, "git-merge-d", "x"), os.X_OK)  # the fork keeps its files


def test_a_git_am_the_command_left_is_removed_before_the_person_continues_it(live, vault, tmp_path):
    """`git am` keeps the options it passes to `git apply` in `rebase-apply/apply-opt`:
    `--build-fake-ancestor=FILE` made the person's `git am --skip` write an index file
    over a host file (found in the eleventh round). A genuine `git am` stopped on a
    conflict, in a scratch repository of the sandbox, its state copied into the mount's."""
    canary = tmp_path / "canary-am"
    wt = worktree_dir(vault, "main")
    commits = "".join(
        f"{change} && git commit -qm {name}\n"
        for change, name in (
            ("echo a > f && git add f", "base"),
            ("echo b > f && git add f", "b"),
            ("echo c > f && git add f", "c"),
            ("echo g > g && git add g", "g"),
        )
    )
    _script(
        live,
        "attack.sh",
        "here=$PWD && git init -q /tmp/am && cd /tmp/am\n"
        + commits
        + "git format-patch -q -2 -o /tmp/p HEAD && git reset -q --hard HEAD~3\n"
        "git am /tmp/p/* >/dev/null 2>&1; cd $here\n"
        f"cp -r /tmp/am/.git/rebase-apply {wt}/rebase-apply\n"
        f"printf %s \"'--build-fake-ancestor={canary}'\" > {wt}/rebase-apply/apply-opt\n",
    )
    doc = _exec("sh", "attack.sh")
    assert doc["exit_code"] == 0, doc["result"]
    assert any(r["ref"] == "rebase-apply" for r in doc["refs_refused"]), doc["refs_refused"]
    assert not os.path.lexists(os.path.join(wt, "rebase-apply"))
    person = ("-c", "user.name=P", "-c", "user.email=p@x")
    for resume in (("am", "--skip"), ("am", "--continue"), ("rebase", "--continue")):
        _git(*person, *resume, cwd=live.mountpoint, check=False)
    _person_git(live, canary)


def test_a_readonly_view_carries_back_only_the_fork_s_branch(live, vault, home, tmp_path):
    """`--isolate readonly` (the hand-made namespaces, where bwrap cannot run) binds the
    same scratch refs and quarantine: git commits there, and nothing else moves."""
    from avfs_git.proxy.envelope import ExecRequest
    from avfs_git.proxy.execute import execute

    before = _refs(vault)
    proj = tmp_path / "proj"
    proj.mkdir()
    script = (
        "git update-ref refs/heads/other HEAD~1; git update-ref refs/replace/$(git rev-parse HEAD:README) HEAD;"
        " echo more >> README && git -c user.name=A -c user.email=a@x commit -qam 'in the view'"
    )
    res = execute(home, vault, "main", ExecRequest(shell=script, isolate="readonly", isolate_at=str(proj)))
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    assert res.confinement is not None and res.confinement.kind == "namespace"
    assert _refs(vault) == before
    assert {"refs/heads/other"} <= {r.ref for r in res.refs_refused}
    assert "in the view" in _git("--git-dir", vault.path, "log", "--format=%s", "main")
    # the other forks' branches, as the read-only packed-refs shows them (a file bound too)
    other = _git("--git-dir", vault.path, "rev-parse", "other").strip()
    packed = os.path.join(vault.path, "packed-refs")
    _script(live, "w.sh", f"git rev-parse other; (echo x >> {packed}) 2>/dev/null || echo REFUSED\n")
    seen = execute(
        home, vault, "main", ExecRequest(argv=("sh", "w.sh"), isolate="readonly", isolate_at=str(proj))
    )
    assert seen.result is not None and seen.result.stdout.split() == [other, "REFUSED"], seen.to_dict()
    assert Path(packed).read_bytes() == b""


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("commit", [False, True])
def test_a_repository_made_at_a_submodule_s_path_never_runs_for_the_person(
    home, vault, tmp_path, backend, commit
):
    """A gitlink of the fork's own commit (an imported project's submodule): the command
    makes a repository at its path, with a `core.fsmonitor`; git would run `git status`
    in it on the person's plain `git status` (with `--no-commit`, the gitlink stays)."""
    require_overlay() if backend == "overlay" else require_fuse()
    _need_bwrap()
    vault.workspace("main").write("README", b"x\n")
    checkpoint.save(vault, name="base")
    clone = tmp_path / "clone"
    _git("clone", "-q", vault.path, str(clone))
    tip = _git("rev-parse", "HEAD", cwd=clone).strip()
    _git("update-index", "--add", "--cacheinfo", f"160000,{tip},lib/sub", cwd=clone)
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qm", "a submodule", cwd=clone)
    _git("push", "-q", "origin", "HEAD:main", cwd=clone)
    canary = tmp_path / "canary-submodule"
    info = mounts.mount(home, vault, "main", None, backend=backend)
    try:
        _script(
            info,
            "attack.sh",
            f"rm -rf lib/sub && git init -q lib/sub && git -C lib/sub config core.fsmonitor 'touch {canary}; false'\n",
        )
        r = _avfs("--json", "proxy", "exec", *([] if commit else ["--no-commit"]), "--", "sh", "attack.sh")
        doc = json.loads(r.stdout)
        assert doc["exit_code"] == 0, json.dumps(doc)[:3000]
        if not commit:
            assert ("lib/sub", "gitlink") in {(n["path"], n["kind"]) for n in doc["not_recorded"]}, doc
            assert not os.path.lexists(os.path.join(info.mountpoint, "lib", "sub", ".git"))
        _person_git(info, canary)
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_submodule_git_dir_the_command_plants_never_runs_for_the_person(home, vault, tmp_path, backend):
    """git keeps a linked worktree's submodule git dirs in its own git dir (`modules/`, not
    the vault's), which the sandbox writes: a repository planted at `modules/<name>` with a
    `post-checkout` hook and a `core.fsmonitor` is what the person's `git submodule update`
    takes for the submodule's, and it ran both on the host (found in the eleventh round)."""
    require_overlay() if backend == "overlay" else require_fuse()
    _need_bwrap()
    vault.workspace("main").write("README", b"x\n")
    checkpoint.save(vault, name="base")
    clone = tmp_path / "clone"
    _git("clone", "-q", vault.path, str(clone))
    tip = _git("rev-parse", "HEAD", cwd=clone).strip()
    (clone / ".gitmodules").write_text(f'[submodule "sub"]\n\tpath = lib/sub\n\turl = {vault.path}\n')
    _git("add", ".gitmodules", cwd=clone)
    _git("update-index", "--add", "--cacheinfo", f"160000,{tip},lib/sub", cwd=clone)
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qm", "a submodule", cwd=clone)
    _git("push", "-q", "origin", "HEAD:main", cwd=clone)
    canary = tmp_path / "canary-modules"
    info = mounts.mount(home, vault, "main", None, backend=backend)
    try:
        wt = worktree_dir(vault, "main")
        hook = f"#!/bin/sh\\ntouch {canary}-hook\\n"
        _script(
            info,
            "attack.sh",
            f"git init -q /tmp/m && mkdir -p {wt}/modules && mv /tmp/m/.git {wt}/modules/sub\n"
            f"echo {vault.path}/objects > {wt}/modules/sub/objects/info/alternates\n"
            f"git config -f {wt}/modules/sub/config core.fsmonitor 'touch {canary}-fsmonitor; false'\n"
            f"printf '{hook}' > {wt}/modules/sub/hooks/post-checkout && chmod +x {wt}/modules/sub/hooks/post-checkout\n",
        )
        doc = json.loads(_avfs("--json", "proxy", "exec", "--", "sh", "attack.sh").stdout)
        assert doc["exit_code"] == 0, json.dumps(doc)[:3000]
        assert any(r["ref"] == "modules" for r in doc["refs_refused"]), doc["refs_refused"]
        assert not os.path.lexists(os.path.join(wt, "modules"))
        mp = info.mountpoint
        _git("-c", "protocol.file.allow=always", "submodule", "update", "--init", cwd=mp, check=False)
        _git("status", cwd=mp)
        _person_git(info, Path(f"{canary}-hook"))
        assert not Path(f"{canary}-fsmonitor").exists()
        # the person's own submodule git dir (cloned by their `git submodule update`; pure
        # FUSE cannot check it out: its gitlink's path is no directory there): read-only inside
        assert os.path.isfile(os.path.join(wt, "modules", "sub", "config"))
        if backend == "overlay":
            assert (Path(mp) / "lib" / "sub" / "README").read_text() == "x\n"
        _script(info, "again.sh", f"(echo x >> {wt}/modules/sub/config) 2>/dev/null || echo REFUSED\n")
        doc = json.loads(_avfs("--json", "proxy", "exec", "--", "sh", "again.sh").stdout)
        assert doc["result"]["stdout"] == "REFUSED\n", doc["result"]
        assert os.path.isdir(os.path.join(wt, "modules", "sub"))
        _git("submodule", "status", cwd=mp)
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def test_what_the_command_stages_the_person_commits(live, vault):
    """`git add` in the sandbox writes blobs into its quarantine; those the mount's index
    names go into the vault, so the person's `git commit` in the mount finds them."""
    r = _avfs_proc(
        "proxy", "exec", "--no-commit", "--", "sh", "-c", "echo staged > new.txt && git add new.txt"
    )
    assert r.returncode == 0, r.stderr
    mp = live.mountpoint
    assert _git("diff", "--cached", "--name-only", cwd=mp) == "new.txt\n"
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qm", "the person's", cwd=mp)
    assert _git("--git-dir", vault.path, "show", "main:new.txt") == "staged\n"
    # and the human summary says what the command's git did that was not kept
    r = _avfs_proc("proxy", "exec", "--", "git", "branch", "elsewhere")
    assert r.returncode == 0 and b"ref change(s) not kept: refs/heads/elsewhere" in r.stderr, r.stderr


def test_links_and_junk_in_the_scratch_are_never_followed(live, vault, tmp_path):
    """The scratch refs and quarantine are the command's: links to host files, a branch
    that is a link or a symbolic ref, an `info/alternates` naming another store, junk
    names. avfs reads none through a link, moves nothing, and the next run starts clean."""
    host = tmp_path / "host-file"
    host.write_text("host data\n")
    other = tmp_path / "other.git"
    _git("init", "-q", "--bare", str(other))
    secret = subprocess.run(
        ["git", "--git-dir", str(other), "hash-object", "-w", "--stdin"], input=b"another store's secret\n",
        capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    objects = os.path.join(vault.path, "objects")
    refs = os.path.join(vault.path, "refs")
    tip = _git("--git-dir", vault.path, "rev-parse", "main").strip()
    _script(
        live,
        "attack.sh",
        f"""ln -sf {host} {refs}/heads/linked && echo MADE-LINK
ln -sfn {tmp_path} {refs}/heads/dirlink
echo 'ref: refs/heads/other' > {refs}/heads/main
echo {other}/objects > {objects}/info/alternates
mkdir -p {objects}/zz && ln -sf {host} {objects}/zz/junk
ln -sfn {tmp_path} {objects}/pack2
git cat-file -e {secret.strip()} && echo SEES-OTHER-STORE
exit 0
""",
    )
    doc = _exec("sh", "attack.sh")
    assert doc["exit_code"] == 0, doc["result"]
    refused = {r["ref"]: r for r in doc["refs_refused"]}
    assert "not a full commit id" in refused["refs/heads/main"]["reason"], refused
    if "MADE-LINK" in doc["result"]["stdout"]:  # (no Landlock: the links were made, and refused)
        assert {"refs/heads/linked", "refs/heads/dirlink"} <= set(refused)
    else:  # Landlock: no link can be made in the scratch (docs/security.md)
        assert not {"refs/heads/linked", "refs/heads/dirlink"} & set(refused), refused
        assert "Permission denied" in doc["result"]["stderr"], doc["result"]
    assert host.read_text() == "host data\n" and os.listdir(tmp_path)
    # the fork did not move to what the command wrote (its own commit records attack.sh)
    assert _git("--git-dir", vault.path, "merge-base", "--is-ancestor", tip, "main") == ""
    missing = subprocess.run(["git", "--git-dir", vault.path, "cat-file", "-e", secret.strip()], check=False)
    assert missing.returncode != 0  # the other store's object never came into the vault
    # the next run starts from a clean scratch: the vault's refs, no planted alternates
    doc = _exec(
        "sh",
        "-c",
        f"git symbolic-ref -q HEAD; cat {objects}/info/alternates; ls {objects}; git branch --list",
    )
    out = doc["result"]["stdout"]
    assert "refs/heads/main" in out and str(other) not in out and "linked" not in out and "zz" not in out, out


def test_a_fork_whose_name_holds_a_slash_is_carried_back(home, vault):
    """The carry-back on its own (no mount): a fork `team/a`, its branch moved in the
    scratch as git would (a lock, a rename), to a commit the vault has; then to one it does
    not (refused); the real branch follows only the first."""
    w = vault.workspace("main")
    w.write("f", b"1\n")
    first = checkpoint.save(vault, name="one").checkpoint.commit
    w.write("f", b"2\n")
    second = checkpoint.save(vault).checkpoint.commit
    vault.fork("main", "team/a")
    _git("--git-dir", vault.path, "update-ref", "refs/heads/team/a", first)
    sealed = seal.prepare(vault, "team/a", None)
    ref = os.path.join(sealed.dir, "refs", "heads", "team", "a")
    assert Path(ref).read_text().strip() == first
    with open(ref + ".lock", "w") as fh:
        fh.write(second + "\n")
    os.replace(ref + ".lock", ref)
    carried = seal.carry_back(vault, sealed)
    assert carried.moved == (first, second) and carried.refused == []
    assert _git("--git-dir", vault.path, "rev-parse", "team/a").strip() == second
    sealed = seal.prepare(vault, "team/a", None)
    with open(ref, "w") as fh:
        fh.write("1" * 40 + "\n")
    carried = seal.carry_back(vault, sealed)
    assert carried.moved is None and "not all there" in carried.refused[0]["reason"], carried
    assert _git("--git-dir", vault.path, "rev-parse", "team/a").strip() == second


def test_a_command_that_takes_its_git_dir_apart_then_commits_loses_no_file(live, vault):
    """Found by the escape suite: `rm -rf` of what the sandbox may write of the vault (its
    scratch refs, the worktree's index), then a commit: git makes an empty root commit,
    which is carried back as the fork's branch. As git in the mount would, that keeps the
    files the mount shows (plain git leaves them untracked): the move is logged in the
    mount's HEAD reflog, so the workspace takes it as git's and keeps its view, and the
    exec's own commit records them again on top. Nothing outside the fork moves."""

    def outside() -> dict[str, str]:  # the exec's own record of the fork before it is avfs's
        return {k: v for k, v in _refs(vault).items() if k != "refs/heads/main" and "/recovery/" not in k}

    before = outside()
    _script(
        live,
        "attack.sh",
        'rm -rf "$(git rev-parse --git-common-dir)" 2>/dev/null; rm -f "$(git rev-parse --git-dir)/index"\n'
        "git -c user.name=A -c user.email=a@x commit -q --allow-empty -m emptied\nexit 0\n",
    )
    doc = _exec("sh", "attack.sh")
    assert doc["result"] is not None, doc["error"]
    mp = live.mountpoint
    assert (
        Path(mp, "README").read_bytes() == b"the original\n" and Path(mp, "lib.py").read_bytes() == b"x = 1\n"
    )
    ws = vault.workspace("main")
    assert ws.read("README") == b"the original\n" and ws.read("lib.py") == b"x = 1\n"
    tree = _git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main").split()
    assert {"README", "lib.py", "attack.sh"} <= set(tree), tree
    assert outside() == before


def _fsck_push_and_own_commit_refused(
    vault: Any, live: Any, mp: Path, tmp_path: Path, run: Any, name: str
) -> None:
    """The vault passes `git fsck --strict` and a push to a remote that checks objects; the
    command's own `git commit` of ``name`` is refused by the carry-back (index-pack
    --strict), the fork's branch stays, and the person's index is put back. Returns the
    checking remote (a later push goes there too)."""
    _git("--git-dir", vault.path, "fsck", "--strict", "--no-dangling")
    remote = tmp_path / f"remote-{name.strip('.')}.git"
    _git("init", "-q", "--bare", str(remote))
    _git("--git-dir", str(remote), "config", "receive.fsckObjects", "true")
    _git("--git-dir", vault.path, "push", "-q", str(remote), "main")
    tip = _git("--git-dir", vault.path, "rev-parse", "main").strip()
    _script(
        live,
        "commit.sh",
        f"git add {name} && git -c user.name=A -c user.email=a@x commit -qm sneak; exit 0\n",
    )
    doc = run("sh", "commit.sh")
    fork_refs = [r for r in doc["refs_refused"] if r["ref"] == "refs/heads/main"]
    assert fork_refs and name.strip(".") in fork_refs[0]["reason"], doc["refs_refused"]
    assert _git("--git-dir", vault.path, "merge-base", "--is-ancestor", tip, "main") == ""
    assert name not in _git("--git-dir", vault.path, "ls-tree", "--name-only", "main").split()
    _git("reset", "-q", cwd=mp)  # (the person's index: what the command staged is not theirs)
    return remote


def _rewrite_in_place(path: str, data: str) -> None:
    """Write a ref file in place (same inode, same size) and put its mtime back: only its
    ctime, which no process can set, says it changed."""
    st = os.lstat(path)
    with open(path, "r+") as fh:
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.lstat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)


def test_scratch_refs_read_only_what_changed_and_miss_no_change(home, vault, monkeypatch):
    """The scratch refs with 40 forks (no mount): the scratch holds the fork's own branch
    only, the others are lines of the read-only packed-refs (proxy/sealpack.py); once the
    manifest of what the vault's branches held is written (proxy/sealcache.py), a run that
    changed nothing reads no ref file again; and a branch rewritten in place with the same
    size and its mtime put back by the person in the vault is seen all the same (the next
    snapshot holds it); the command's own branch rewritten so in the scratch is carried
    back, and another fork's branch it writes there refused."""
    from avfs_git.proxy import sealcache, sealpack

    w = vault.workspace("main")
    w.write("f", b"1\n")
    first = checkpoint.save(vault, name="one").checkpoint.commit
    w.write("f", b"2\n")
    second = checkpoint.save(vault).checkpoint.commit
    for i in range(40):
        vault.fork("main", f"f{i}")
    _git("--git-dir", vault.path, "update-ref", "refs/heads/f7", first)
    reads: list[str] = []

    def counted(path: str, *args: Any, **kw: Any) -> bytes | None:
        reads.append(path)
        return real(path, *args, **kw)

    real = seal.read_file
    monkeypatch.setattr(seal, "read_file", counted)
    monkeypatch.setattr(sealcache, "read_file", counted)
    for _ in range(2):  # the vault's ref files, then the scratch's, once not racily clean
        time.sleep(2 * sealcache.RACY_NS / 1e9)
        sealed = seal.prepare(vault, "f3", None)
        assert seal.carry_back(vault, sealed) == seal.Carried(moved=None, refused=[])
    reads.clear()
    sealed = seal.prepare(vault, "f3", None)
    assert seal.carry_back(vault, sealed) == seal.Carried(moved=None, refused=[])
    assert [r for r in reads if "/refs/heads/" in r and "/logs/" not in r] == [], reads
    scratch = os.path.join(sealed.dir, "refs", "heads")
    assert os.listdir(scratch) == ["f3"] and set(sealed.copied) == {"refs/heads/f3"}
    shown = sealpack.parse(Path(sealed.top, sealpack.NAME).read_bytes())
    assert shown["refs/heads/f7"] == (first.encode(), None) and "refs/heads/f3" not in shown
    assert len([n for n in shown if n.startswith("refs/heads/")]) == 40  # main and 39 forks
    # the person rewrites fork f7's branch in place: the next snapshot holds the new value
    _rewrite_in_place(os.path.join(vault.path, "refs", "heads", "f7"), second + "\n")
    sealed = seal.prepare(vault, "f3", None)
    assert sealed.packed["refs/heads/f7"] == (second + "\n").encode()
    shown = sealpack.parse(Path(sealed.top, sealpack.NAME).read_bytes())
    assert shown["refs/heads/f7"] == (second.encode(), None)
    # the command rewrites its own branch in place, mtime put back, and writes another
    # fork's branch as a loose file over its packed line
    _rewrite_in_place(os.path.join(scratch, "f3"), first + "\n")
    Path(scratch, "f9").write_text(first + "\n")
    Path(scratch, "f10").write_text(second + "\n")  # the value it has: nothing moved
    carried = seal.carry_back(vault, sealed)
    assert carried.moved == (second, first), carried
    assert [(r["ref"], r["old"], r["new"]) for r in carried.refused] == [("refs/heads/f9", second, first)]
    assert _git("--git-dir", vault.path, "rev-parse", "f3", "f9").split() == [first, second]
    # the next scratch holds the fork's own branch again, and nothing else
    sealed = seal.prepare(vault, "f3", None)
    assert os.listdir(scratch) == ["f3"] and Path(scratch, "f3").read_text() == first + "\n"


def test_the_other_forks_branches_in_the_sandbox_are_its_own_and_current(live, vault, tmp_path):
    """The other forks' branches reach the sandbox as lines of one packed-refs that avfs
    writes for each run, the sandbox's own file (proxy/sealpack.py), never the vault's: git
    deletes refs in bulk by renaming a new one over it. A command that writes it (in place,
    through a shared mmap, by a rename over it) changes it in there only: the vault's
    branches and its packed-refs stay as they are, the change is reported in
    ``refs_refused``, and git in the next run (in a sandbox made ready before the person
    moved a branch) sees every branch at the vault's value, no value a command planted."""
    _exec("sh", "-c", "echo more >> README")  # main moves on: `other` stays behind
    tip = _git("--git-dir", vault.path, "rev-parse", "main").strip()
    other = _git("--git-dir", vault.path, "rev-parse", "other").strip()
    assert tip != other
    packed = os.path.join(vault.path, "packed-refs")
    vault_packed = Path(packed).read_bytes()
    _script(
        live,
        "attack.py",
        f"""import mmap, os, subprocess
p = {packed!r}
line = ("{tip} refs/heads/other\\n").encode()
for how in ("write", "mmap", "rename", "umount"):
    try:
        if how == "write":
            with open(p, "r+b") as fh:
                fh.write(line)
        elif how == "mmap":
            with open(p, "r+b") as fh:
                m = mmap.mmap(fh.fileno(), 0)
                m[: len(line)] = line
                m.flush()
        elif how == "rename":
            with open(p + ".new", "wb") as fh:
                fh.write(line)
            os.rename(p + ".new", p)
        else:
            subprocess.run(["umount", p], check=True, capture_output=True)
        print("WROTE", how)
    except (OSError, ValueError, subprocess.CalledProcessError) as exc:
        print("REFUSED", how, type(exc).__name__)
print("SEES", subprocess.run(["git", "rev-parse", "other"], capture_output=True, text=True).stdout.strip())
""",
    )
    for i in range(2):  # the first in a sandbox set up for it, the second in one made ready
        if i == 1 and standby.available():
            assert _wait_for(lambda: _waiters(live.pid)), "no sandbox made ready after the first command"
            # the person moves `other` while that sandbox waits: its command sees the move
            vault.workspace("other").write("lib.py", b"x = 3\n")
            other = checkpoint.save(vault, "other", message="moved").checkpoint.commit
            assert other != tip
        doc = _exec("python3", "attack.py")
        out = doc["result"]["stdout"]
        assert doc["exit_code"] == 0, doc["result"]
        assert out.count("WROTE") == 3 and "REFUSED umount" in out, out
        assert f"SEES {tip}" in out, out  # (the sandbox's own file: its own run sees it)
        assert _git("--git-dir", vault.path, "rev-parse", "other").strip() == other
        assert Path(packed).read_bytes() == vault_packed
        said = [(r["ref"], r["old"], r["new"]) for r in doc["refs_refused"]]
        # (the file it wrote holds no tag: the vault's, a line of it, gone in there)
        v1 = _git("--git-dir", vault.path, "rev-parse", "refs/tags/v1").strip()
        assert said == [("refs/heads/other", other, tip), ("refs/tags/v1", v1, None)], doc["refs_refused"]
        listed = _exec("git", "branch", "--list", "--format=%(refname:short) %(objectname)")
        main = _git("--git-dir", vault.path, "rev-parse", "main").strip()
        assert listed["result"]["stdout"].splitlines() == [f"main {main}", f"other {other}"], listed["result"]
        assert listed["refs_refused"] == []


def test_git_tag_in_the_sandbox_works_there_and_is_reported_never_applied(live, vault):
    """`git tag X`, `git tag -a`, `git tag -f` and `git tag -d` of the vault's tag in
    `proxy exec`: they failed with git's "Read-only file system" (refs/tags was the
    vault's, bound read-only). A tag is the vault's, every fork's (a release name a push
    carries, what `git describe` and a reviewer read), not the fork's own as its branch
    is: so they work in the sandbox's copy, live as long as the run, and each is listed in
    `refs_refused` with why; the vault and the next run keep the vault's tags."""
    before = _refs(vault)
    v1 = before["refs/tags/v1"]
    _script(
        live,
        "tags.sh",
        """set -e
git tag made && git tag -a -m note annotated && git tag -f moved HEAD && echo MADE
git tag -d v1 >/dev/null && echo DELETED
git tag --list | tr '\\n' ' '
""",
    )
    doc = _exec("sh", "tags.sh")
    out = doc["result"]["stdout"]
    assert doc["exit_code"] == 0, doc["result"]
    assert "MADE" in out and "DELETED" in out and "annotated made moved" in out, out
    refused = {r["ref"]: r for r in doc["refs_refused"]}
    assert sorted(refused) == ["refs/tags/annotated", "refs/tags/made", "refs/tags/moved", "refs/tags/v1"]
    assert refused["refs/tags/v1"]["old"] == v1 and refused["refs/tags/v1"]["new"] is None
    assert refused["refs/tags/made"]["old"] is None and refused["refs/tags/made"]["new"]
    assert all("every fork" in r["reason"] for r in refused.values()), refused
    assert _refs(vault) == before
    again = _exec("sh", "-c", "git tag --list")
    assert again["result"]["stdout"].split() == ["v1"] and again["refs_refused"] == [], again


def test_git_deletes_refs_in_bulk_in_the_sandbox_and_the_vault_keeps_its_own(live, vault):
    """git deletes refs in bulk by renaming a new packed-refs over the old one (``git
    branch -D``, ``git tag -d``, ``git stash clear``, ``git bisect start``): over the
    read-only one the sandbox showed, every one failed (EBUSY), the run's own refs too.
    In the sandbox's own packed-refs they work; another fork's branch and a tag of the
    vault deleted so are gone in there only (reported in ``refs_refused``, ``new: null``):
    the vault, its packed-refs and the next run (in a sandbox made ready) keep them. ``git
    pack-refs --all`` in there (a copy of every ref it reads) reports nothing."""
    _git("--git-dir", vault.path, "pack-refs", "--all")  # `other` and `v1` as the vault's packed lines
    before = _refs(vault)
    packed = Path(vault.path, "packed-refs")
    vault_packed = packed.read_bytes()
    other, v1 = before["refs/heads/other"], before["refs/tags/v1"]
    _script(
        live,
        "bulk.sh",
        """set -e
git branch run-own && git branch -D run-own 2>/dev/null && echo OWN-BRANCH-DELETED
echo wip >> README && git -c user.name=A -c user.email=a@x stash -q && git stash clear
test -z "$(git stash list)" && echo STASH-CLEARED
git bisect start HEAD HEAD~1 >/dev/null && echo BISECT-STARTED
git bisect reset HEAD >/dev/null 2>&1  # (its first bad commit found at once: HEAD stayed on main)
git pack-refs --all 2>/dev/null || true
git branch -D other 2>/dev/null && echo OTHER-DELETED
git tag -d v1 >/dev/null && echo TAG-DELETED
git branch --list --format='%(refname:short)' && git tag --list
""",
    )
    for i in range(2):  # the first in a sandbox set up for it, the second in one made ready
        if i == 1 and standby.available():
            assert _wait_for(lambda: _waiters(live.pid)), "no sandbox made ready after the first command"
        doc = _exec("sh", "bulk.sh")
        out = doc["result"]["stdout"]
        assert doc["exit_code"] == 0, doc["result"]
        for said in ("OWN-BRANCH-DELETED", "STASH-CLEARED", "BISECT-STARTED", "OTHER-DELETED", "TAG-DELETED"):
            assert said in out, (said, doc["result"])
        assert out.endswith("main\n"), out  # (no other branch, no tag, in there)
        refused = sorted((r["ref"], r["old"], r["new"]) for r in doc["refs_refused"])
        assert refused == [("refs/heads/other", other, None), ("refs/tags/v1", v1, None)], doc["refs_refused"]
        assert _refs(vault) == before and packed.read_bytes() == vault_packed
        listed = _exec("sh", "-c", "git rev-parse other v1; git stash list")
        assert listed["result"]["stdout"].split() == [other, v1], listed["result"]
        assert listed["refs_refused"] == [], listed["refs_refused"]
    assert _refs(vault) == before


def test_what_a_command_leaves_at_the_vault_s_top_is_gone_at_the_next_run(live, vault):
    """The vault's top directory in the sandbox is the seal's own (``<seal>/top``, kept on
    the host between runs, proxy/confine.py ``_kept``): a file, a lock and a directory the
    command makes there never reach the vault and are gone at the next run, also where
    the vault has since made an entry of that name (a directory there, left, would have
    kept the sandbox's bind of the vault's file from being made: no command would run)."""
    top = vault.path
    made = f"mkdir {top}/ORIG_HEAD {top}/junk-dir && echo x > {top}/junk && echo x > {top}/packed-refs.lock && echo MADE"
    _script(live, "junk.sh", made + "\n")
    for i in range(2):  # the first in a sandbox set up for it, the second in one made ready
        if i == 1 and standby.available():
            assert _wait_for(lambda: _waiters(live.pid)), "no sandbox made ready after the first command"
        doc = _exec("sh", "junk.sh")
        assert "MADE" in doc["result"]["stdout"], doc["result"]
        for name in ("ORIG_HEAD", "junk-dir", "junk", "packed-refs.lock"):
            assert not os.path.lexists(os.path.join(top, name)), name
        Path(top, "ORIG_HEAD").write_text(_git("--git-dir", top, "rev-parse", "main"))  # the person's git
        seen = _exec("sh", "-c", f"ls -a {top}; git rev-parse ORIG_HEAD; git branch -D other >/dev/null")
        out = seen["result"]["stdout"]
        assert seen["exit_code"] == 0 and "junk" not in out and "packed-refs.lock" not in out, seen["result"]
        os.unlink(os.path.join(top, "ORIG_HEAD"))


def test_bisect_refs_go_on_to_the_next_run_only_when_they_name_the_vault_s_objects(live, vault):
    """A bisect's refs (``refs/bisect/*``, the worktree's own) are kept from one run to the
    next (``git bisect good`` in the next exec goes on with the bisect), in the worktree's
    git dir where the person's git in the mount finds them too; one that names an object
    the vault does not hold (the quarantine's, dropped with it: ``git fsck`` of the vault
    would fail on it) or no object id is reported and dropped, as everything in there but
    the fork's branch is."""
    first = _git("--git-dir", vault.path, "rev-parse", "main").strip()
    _exec("sh", "-c", "echo more >> README")  # a second commit: bad; the first: good
    bad = _git("--git-dir", vault.path, "rev-parse", "main").strip()
    assert bad != first
    _script(
        live,
        "plant.sh",
        """git bisect start >/dev/null && git bisect bad HEAD >/dev/null && echo STARTED
B=$(echo only-in-the-quarantine | git hash-object -w --stdin)
git update-ref refs/bisect/skip-planted $B && echo PLANTED
printf 'not an id\\n' > "$(git rev-parse --git-path refs/bisect/junk)"
""",
    )
    doc = _exec("sh", "plant.sh")
    assert "STARTED" in doc["result"]["stdout"] and "PLANTED" in doc["result"]["stdout"], doc["result"]
    refused = {r["ref"]: r["reason"] for r in doc["refs_refused"]}
    assert set(refused) == {"refs/bisect/skip-planted", "refs/bisect/junk"}, doc["refs_refused"]
    kept = Path(worktree_dir(vault, "main"), "refs", "bisect")
    assert sorted(os.listdir(kept)) == ["bad"] and (kept / "bad").read_text() == bad + "\n"
    # the person's git in the mount sees the bisect; the next exec goes on with it
    assert "You are currently bisecting" in _git("status", cwd=live.mountpoint)
    step = _exec("git", "bisect", "good", first)
    assert step["exit_code"] == 0 and f"{bad} is the first bad commit" in step["result"]["stdout"], step[
        "result"
    ]
    assert step["refs_refused"] == [], step["refs_refused"]
    assert sorted(os.listdir(kept)) == ["bad", f"good-{first}"]


def test_a_sandbox_made_ready_sees_the_vault_s_config_as_it_is_now(live, vault):
    """The vault's top directory is a private tmpfs in the sandbox, its entries bound in one
    by one (so git can take ``packed-refs.lock`` there: proxy/confine.py ``_kept``). A
    sandbox made ready before its command holds the files it bound: one git replaced since
    (``git config`` writes ``config`` by a rename) is not the one to show."""
    _exec("true")
    if standby.available():
        assert _wait_for(lambda: _waiters(live.pid)), "no sandbox made ready after the first command"
    for value in ("one", "two"):
        _git("--git-dir", vault.path, "config", "avfstest.value", value)
        doc = _exec("git", "config", "--get", "avfstest.value")
        assert doc["exit_code"] == 0 and doc["result"]["stdout"] == f"{value}\n", doc["result"]
        if standby.available():
            assert _wait_for(lambda: _waiters(live.pid)), "no sandbox made ready after the command"


def test_a_daemon_s_watch_reads_only_the_branches_that_changed_and_misses_no_change(home, vault, monkeypatch):
    """The vault's branches as a mount's daemon keeps them (proxy/refwatch.py, inotify):
    with 40 forks, a call after one that changed nothing walks nothing and reads no ref
    file; a branch rewritten in place with its size and mtime kept, a branch made under a
    new directory, one deleted, are each in the next scratch's packed-refs; the fork's own
    branch is read from its file every time, whatever the watch holds."""
    from avfs_git.proxy import refwatch, sealpack

    w = vault.workspace("main")
    w.write("f", b"1\n")
    first = checkpoint.save(vault, name="one").checkpoint.commit
    w.write("f", b"2\n")
    second = checkpoint.save(vault).checkpoint.commit
    for i in range(40):
        vault.fork("main", f"f{i}")
    monkeypatch.setattr(refwatch, "MAX_TRUST_S", 3600.0)
    watch = refwatch.start(vault.path)
    assert watch is not None and refwatch.live(vault.path) is watch
    try:

        def shown() -> dict[str, bytes]:
            sealed = seal.prepare(vault, "f3", None)
            assert seal.carry_back(vault, sealed) == seal.Carried(moved=None, refused=[])
            return {n: v[0] for n, v in sealpack.parse(Path(sealed.top, sealpack.NAME).read_bytes()).items()}

        assert len(shown()) == 40 and watch.walks == 1
        reads = watch.reads
        made: list[str] = []
        real_split = sealpack.split
        monkeypatch.setattr(sealpack, "split", lambda *a: made.append(a[1]) or real_split(*a))
        assert shown()["refs/heads/f7"] == second.encode()
        assert (watch.walks, watch.reads, made) == (1, reads, [])  # nothing walked, read, or made again
        _rewrite_in_place(os.path.join(vault.path, "refs", "heads", "f7"), first + "\n")
        assert shown()["refs/heads/f7"] == first.encode()
        assert (watch.walks, watch.reads, made) == (1, reads + 1, ["refs/heads/f3"])
        vault.fork("main", "team/a")
        _git("--git-dir", vault.path, "update-ref", "-d", "refs/heads/f9")
        got = shown()
        assert got["refs/heads/team/a"] == second.encode() and "refs/heads/f9" not in got
        # the fork's own branch: its file, not the watch (held stale here on purpose)
        _git("--git-dir", vault.path, "update-ref", "refs/heads/f3", first)
        monkeypatch.setattr(watch, "heads", lambda: {"refs/heads/f3": second.encode() + b"\n"})
        sealed = seal.prepare(vault, "f3", None)
        assert sealed.copied["refs/heads/f3"] == (first + "\n").encode() and sealed.before == first
    finally:
        watch.close()
    assert refwatch.live(vault.path) is None


def test_a_daemon_s_watch_of_the_vault_s_tags_reads_none_again_until_one_changes(home, vault, monkeypatch):
    """The vault's loose tags are lines of the sandbox's packed-refs (`git tag` works on
    its scratch and that file): every call `lstat`ed each of them in the vault (300 tags,
    300 calls of `lstat` a run). A mount's daemon watches `refs/tags` as it watches the
    branches (proxy/refwatch.py): a call after one that changed nothing looks at no tag of
    the vault's; a tag made, deleted, or rewritten in place with its size and mtime kept,
    is in the next packed-refs all the same, and the scratch holds no copy of any."""
    from avfs_git.proxy import refwatch

    w = vault.workspace("main")
    w.write("f", b"1\n")
    first = checkpoint.save(vault).checkpoint.commit
    w.write("f", b"2\n")
    second = checkpoint.save(vault).checkpoint.commit
    for i in range(300):
        _git("--git-dir", vault.path, "update-ref", f"refs/tags/v{i}", second)
    monkeypatch.setattr(refwatch, "MAX_TRUST_S", 3600.0)
    tags_dir = os.path.join(vault.path, "refs", "tags", "")
    looked: list[str] = []
    real_lstat = os.lstat

    def counting_lstat(path: Any, *a: Any, **kw: Any) -> os.stat_result:
        if str(path).startswith(tags_dir):
            looked.append(str(path))
        return real_lstat(path, *a, **kw)

    def copied() -> dict[str, bytes]:
        sealed = seal.prepare(vault, "main", None)
        assert seal.carry_back(vault, sealed) == seal.Carried(moved=None, refused=[])
        assert not [n for n in sealed.copied if n.startswith("refs/tags/")]
        assert not os.listdir(os.path.join(sealed.dir, "refs", "tags"))  # no copy of any
        shown = sealpack.parse(Path(sealed.dir, seal.TOP, sealpack.NAME).read_bytes())
        tags = {n: v for n, v in sealed.packed.items() if n.startswith("refs/tags/")}
        assert tags == {n: i + b"\n" for n, (i, _) in shown.items() if n.startswith("refs/tags/")}
        return tags

    monkeypatch.setattr(os, "lstat", counting_lstat)
    assert len(copied()) == 300 and len(looked) >= 300  # without a watch: each, every call
    watch = refwatch.start(vault.path, "tags")
    assert watch is not None and refwatch.live(vault.path, "tags") is watch
    try:
        assert len(copied()) == 300 and watch.walks == 1
        reads, looked[:] = watch.reads, []
        assert copied()["refs/tags/v7"] == (second + "\n").encode()
        assert (watch.walks, watch.reads, looked) == (1, reads, [])  # no tag looked at again
        _rewrite_in_place(os.path.join(vault.path, "refs", "tags", "v7"), first + "\n")
        _git("--git-dir", vault.path, "update-ref", "refs/tags/rc/1", first)
        _git("--git-dir", vault.path, "update-ref", "-d", "refs/tags/v9")
        got = copied()
        assert got["refs/tags/v7"] == got["refs/tags/rc/1"] == (first + "\n").encode()
        assert "refs/tags/v9" not in got and len(got) == 300
    finally:
        watch.close()
    assert refwatch.live(vault.path, "tags") is None


def test_kept_fan_out_directories_are_listed_only_when_changed_and_miss_no_object(home, vault, monkeypatch):
    """The quarantine's fan-out directories (`objects/xx`, kept between runs) with 40 of
    them (no mount): once found empty and unchanged, a run that wrote nothing lists none of
    them (proxy/sealcache.py); an object the command leaves in one, with the directory's
    mtime put back, is removed all the same, after the run and before the next."""
    from avfs_git.proxy import sealcache

    checkpoint.save(vault, name="one")
    sealed = seal.prepare(vault, "main", None)
    od = os.path.join(sealed.dir, "objects")
    for i in range(40):
        os.makedirs(os.path.join(od, f"{i:02x}"), exist_ok=True)
    listed: list[str] = []
    real = seal._empty

    def counted(d: str, *a: Any) -> None:
        listed.append(d)
        real(d, *a)

    monkeypatch.setattr(seal, "_empty", counted)
    for _ in range(2):  # found empty, then found so again once not racily clean
        time.sleep(2 * sealcache.RACY_NS / 1e9)
        seal.carry_back(vault, sealed)
        sealed = seal.prepare(vault, "main", None)
    time.sleep(2 * sealcache.RACY_NS / 1e9)
    listed.clear()
    seal.carry_back(vault, sealed)
    sealed = seal.prepare(vault, "main", None)
    assert [d for d in listed if os.path.dirname(d) == od and d != os.path.join(od, "info")] == [], listed

    def plant(name: str) -> str:
        """An object written in a kept fan-out directory, the directory's mtime put back."""
        d = os.path.join(od, name[:2])
        st = os.lstat(d)
        path = os.path.join(d, name[2:])
        Path(path).write_bytes(b"planted")
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert os.lstat(d).st_mtime_ns == st.st_mtime_ns
        return path

    during = plant("07" + "a" * 38)  # by the command, during its run
    seal.carry_back(vault, sealed)
    assert not os.path.exists(during)
    time.sleep(2 * sealcache.RACY_NS / 1e9)
    after = plant("0b" + "b" * 38)  # by a process left after it
    seal.prepare(vault, "main", None)
    assert not os.path.exists(after)


def test_a_gitlink_path_out_of_the_mount_in_the_index_reaches_nothing_of_the_host(live, vault, tmp_path):
    """The mount's index is the command's to write: a gitlink there whose path climbs out of
    the mount (``../..``, which git itself never writes, nor can take out again: `git
    update-index --force-remove` refuses a path outside the repository) names a directory
    of the host. The host side looks at gitlinks' directories after the run (a ``.git``
    the command made there is removed): never at one out of the mount, here a person's
    repository whose git is busy while the command runs."""
    import threading

    victim = tmp_path / "persons-project"
    (victim / ".git").mkdir(parents=True)
    (victim / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    rel = os.path.relpath(victim, live.mountpoint)
    assert rel.startswith("../")
    _script(
        live,
        "attack.py",
        f"""import hashlib, subprocess
def git(*a):
    return subprocess.run(["git", *a], check=True, capture_output=True, text=True).stdout.strip()
sha = git("rev-parse", "HEAD")
git("update-index", "--add", "--cacheinfo", "160000," + sha + ",{"A" * len(rel)}")
index = git("rev-parse", "--git-path", "index")
data = open(index, "rb").read()[:-20].replace(b"{"A" * len(rel)}", {os.fsencode(rel)!r})
open(index, "wb").write(data + hashlib.sha1(data).digest())
print(git("ls-files", "-s"))
open("touched.txt", "w").write("x")
""",
    )
    stop = threading.Event()

    def persons_git() -> None:  # (the directory's ctime moves on, as a person's git moves it)
        lock = victim / ".git" / "index.lock"
        while not stop.is_set():
            try:
                lock.write_text("")
                lock.unlink()
            except FileNotFoundError:
                return  # (its .git removed)
            stop.wait(0.01)

    t = threading.Thread(target=persons_git)
    t.start()
    try:
        doc = _exec("sh", "-c", "python3 attack.py && sleep 0.3")
    finally:
        stop.set()
        t.join()
    assert doc["exit_code"] == 0, doc["result"]
    assert rel in doc["result"]["stdout"], doc["result"]  # the index did hold it
    assert (victim / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"


def test_an_index_path_git_refuses_is_never_left_for_the_person_s_git(live, vault, tmp_path):
    """Paths git never writes into an index, written there by the command: a file at
    ``../outside/evil.txt`` (the person's `git checkout -- .` in the mount would write it
    out of the mount, wherever the person may write) and a gitlink at ``../x`` (git cannot
    take it out: `update-index --force-remove` dies on it, and on every gitlink after it
    with it, here a nested repository whose fsmonitor would run on the person's `git
    status`). The index is made again from the fork's commit."""
    outside = tmp_path / "outside"
    outside.mkdir()
    canary = tmp_path / "canary-index"
    evil = os.path.relpath(outside / "evil.txt", live.mountpoint)
    _script(
        live,
        "attack.py",
        f"""import hashlib, subprocess
def git(*a, cwd=None):
    return subprocess.run(["git", *a], check=True, capture_output=True, text=True, cwd=cwd).stdout.strip()
git("init", "-q", "sub")
git("config", "core.fsmonitor", "echo ran >> {canary}; false", cwd="sub")
open("sub/f", "w").write("inner")
git("add", "f", cwd="sub")
git("-c", "user.name=A", "-c", "user.email=a@x", "commit", "-qm", "inner", cwd="sub")
git("add", "sub")
blob = git("rev-parse", "HEAD:README")
git("update-index", "--add", "--cacheinfo", "100644," + blob + ",{"B" * len(evil)}")
git("update-index", "--add", "--cacheinfo", "160000," + git("rev-parse", "HEAD") + ",CCCC")
index = git("rev-parse", "--git-path", "index")
data = open(index, "rb").read()[:-20]
data = data.replace(b"{"B" * len(evil)}", {os.fsencode(evil)!r}).replace(b"CCCC", b"../x")
open(index, "wb").write(data + hashlib.sha1(data).digest())
print(git("ls-files", "-s"))
""",
    )
    doc = _exec("python3", "attack.py")
    assert doc["exit_code"] == 0, doc["result"]
    assert evil in doc["result"]["stdout"] and "../x" in doc["result"]["stdout"], doc["result"]
    mp = live.mountpoint
    listed = _git("ls-files", "-s", cwd=mp)
    assert ".." not in listed and "160000" not in listed, listed
    _person_git(live, canary)
    _git("checkout", "--", ".", cwd=mp, check=False)
    assert not (outside / "evil.txt").exists()
    assert vault.workspace("main").read("sub/f") == b"inner"  # the fork lost nothing


def test_a_split_index_hides_no_gitlink_from_the_host(live, vault, tmp_path):
    """`git update-index --split-index` moves the index's entries into a shared index file
    beside it: a nested repository's gitlink there is one all the same, and is dropped."""
    canary = tmp_path / "canary-split"
    _script(
        live,
        "attack.sh",
        f"""set -e
git init -q sub
git -C sub config core.fsmonitor 'echo ran >> {canary}; false'
echo inner > sub/f
git -C sub add f
git -C sub -c user.name=A -c user.email=a@x commit -qm inner
git add sub
git update-index --split-index
git ls-files -s sub
""",
    )
    r = _avfs("--json", "proxy", "exec", "--no-commit", "--", "sh", "attack.sh")
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == 0, doc["result"]
    assert doc["result"]["stdout"].startswith("160000 "), doc["result"]  # git did add a gitlink
    mp = live.mountpoint
    assert "160000" not in _git("ls-files", "-s", cwd=mp)
    _person_git(live, canary)


def test_a_rebase_the_person_starts_while_a_command_runs_is_kept_and_reported(live, vault, tmp_path):
    """The person's own git state made in the mount while a confined command ran looks to
    the carry-back like the command's, and is taken out of the worktree's git dir: kept
    in the vault's avfs state, where the next command cannot write (before, it was
    destroyed), and the envelope says where even when the record stage then fails (the
    rebase detached HEAD, so the run's commit refuses: before, ``refs_refused`` was empty)."""
    mp = live.mountpoint
    wt = worktree_dir(vault, "main")
    started = Path(mp) / "started"  # the sandbox's /tmp is its own
    # the command runs until the person's rebase has stopped at its break (a file written
    # after it; at most 120 s), not for a fixed 3 s: under load (6 busy loops beside -n 2)
    # the rebase took longer, the run's record stage moved the branch first, and git's
    # rebase could not detach HEAD ("cannot lock ref 'HEAD'", 2 of 2 backends, flaky3)
    wait = "touch started; i=0; while [ ! -e rebased ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done"
    with running([*exec_argv("--"), "sh", "-c", wait], started) as run:
        env = dict(os.environ, GIT_SEQUENCE_EDITOR="sed -i 1ibreak")
        try:
            proc = subprocess.run(
                ["git", "rebase", "-i", "HEAD"], cwd=mp, env=env, capture_output=True, text=True
            )
        finally:
            (Path(mp) / "rebased").touch()
        assert os.path.isdir(os.path.join(wt, "rebase-merge")), proc.stderr
        with open(os.path.join(wt, "rebase-merge", "git-rebase-todo")) as fh:
            todo = fh.read()
        out, _ = run.communicate(timeout=120)
    doc = json.loads(out)
    validate(doc)
    assert doc["result"]["exit_code"] == 0 and doc["error"]["code"] == "git_in_progress", doc
    assert [r["ref"] for r in doc["refs_refused"]] == ["rebase-merge"], doc["refs_refused"]
    assert not os.path.lexists(os.path.join(wt, "rebase-merge"))  # nothing the person's git resumes
    (kept,) = glob.glob(os.path.join(vault.state_dir, "gitstate", "main", "rebase-merge-*"))
    assert kept in doc["refs_refused"][0]["reason"], doc["refs_refused"]
    with open(os.path.join(kept, "git-rebase-todo")) as fh:
        assert fh.read() == todo  # the person's, kept
    # the fork's commits go on once HEAD is back on its branch (the vault's HEAD names
    # main too, so git asks for --ignore-other-worktrees)
    _git("switch", "--ignore-other-worktrees", "main", cwd=mp)
    _script(live, "attack.sh", f"echo 'exec touch x' >> {kept}/git-rebase-todo || echo REFUSED\n")
    doc = _exec("sh", "attack.sh")
    assert doc["result"] is not None, doc["error"]
    assert doc["result"]["stdout"].endswith("REFUSED\n") and doc["error"] is None, doc
    with open(os.path.join(kept, "git-rebase-todo")) as fh:
        assert fh.read() == todo


def test_state_taken_out_is_kept_for_the_last_runs_only(tmp_path):
    """Each run's state is kept under its own name, the last :data:`gitstate.KEEP` of a
    kind (a command leaving a large `modules/` each run does not fill the disk); a link is
    unlinked, and the person's own (``before``) stays."""
    from avfs_git.proxy import gitstate

    git_dir, keep = tmp_path / "wt", tmp_path / "keep"
    git_dir.mkdir()
    for i in range(gitstate.KEEP + 2):
        (git_dir / "modules").mkdir(exist_ok=True)
        before = gitstate.kept(str(git_dir))  # the person's modules/, before the run
        (git_dir / "sequencer" / "inner").mkdir(parents=True)
        (git_dir / "sequencer" / "todo").write_text(f"run {i}\n")
        (git_dir / "sequencer" / "inner").chmod(0o555)  # as a command may leave it
        os.symlink("/", git_dir / "rebase-apply")
        got = gitstate.remove_made(str(git_dir), before, str(keep))
        assert [r["ref"] for r in got] == ["rebase-apply", "sequencer"], got
        assert sorted(os.listdir(git_dir)) == ["modules"]
    kept = sorted(os.listdir(keep))
    assert len(kept) == gitstate.KEEP and all(k.startswith("sequencer-") for k in kept)
    assert [(keep / k / "todo").read_text() for k in kept] == [
        f"run {i}\n" for i in range(2, gitstate.KEEP + 2)
    ]


def test_a_person_s_rebase_finished_while_a_command_runs_cannot_be_planted_again(live, vault, tmp_path):
    """The person's own rebase from before the run is read-only in the sandbox, and the
    carry-back leaves it where it is. Found in the twelfth round (NAME=attack3): when the
    person finished it in the mount while the command ran, their git removed the directory
    (the kernel then drops the sandbox's read-only bind of it), the command made its own
    ``rebase-merge/`` at once (a todo list with an ``exec`` line), and as the name was
    there before the run, the carry-back left it: the person's ``git rebase --continue``
    after git said a rebase was in progress ran the line on the host. A directory of that
    name that is not the one from before the run is the command's, and is taken out."""
    mp = live.mountpoint
    wt = worktree_dir(vault, "main")
    canary = tmp_path / "canary-rebase"
    env = dict(os.environ, GIT_SEQUENCE_EDITOR="sed -i 1ibreak", GIT_EDITOR="true")
    proc = subprocess.run(["git", "rebase", "-i", "HEAD"], cwd=mp, env=env, capture_output=True, text=True)
    assert os.path.isdir(os.path.join(wt, "rebase-merge")), proc.stderr
    _script(
        live,
        "attack.sh",
        'G=$(git rev-parse --absolute-git-dir); cp -r "$G/rebase-merge" /tmp/rm; : > started\n'
        'i=0; while [ -e "$G/rebase-merge" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\n'
        f'cp -r /tmp/rm "$G/rebase-merge" && echo "exec touch {canary}" > "$G/rebase-merge/git-rebase-todo"'
        " && echo PLANTED\n",
    )
    with running([*exec_argv("--no-commit", "--"), "sh", "attack.sh"], os.path.join(mp, "started")) as run:
        done = subprocess.run(
            ["git", "rebase", "--continue"], cwd=mp, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr  # the person's rebase is over
        out, _ = run.communicate(timeout=120)
    doc = json.loads(out)
    assert doc["result"]["exit_code"] == 0, doc
    # what the person does when git says a rebase is in progress
    status = _git("status", cwd=mp)
    if "rebas" in status:  # ("You are currently editing a commit while rebasing...")
        subprocess.run(["git", "rebase", "--continue"], cwd=mp, env=env, capture_output=True, text=True)
    assert not canary.exists(), f"the command's todo list ran on the host ({doc['result']['stdout']!r})"
    if doc["result"]["stdout"] == "PLANTED\n":  # (planted: taken out, and said)
        assert "rebase-merge" in [r["ref"] for r in doc["refs_refused"]], doc["refs_refused"]
    assert not os.path.lexists(os.path.join(wt, "rebase-merge"))


def test_a_ready_sandbox_made_before_the_person_rewrote_a_pinned_file_is_not_used(live, vault, tmp_path):
    """``config.worktree`` (which names git's fsmonitor hook) is bound read-only over
    itself in the sandbox. Found in the twelfth round (NAME=attack3): the person's ``git
    config --worktree`` in the mount writes it by a rename, which drops that bind in a
    sandbox made ready before it; the sandbox was still taken for the agent's next command
    (its key named the file by path only), which then wrote a ``core.fsmonitor`` there that
    the person's next ``git status`` ran on the host."""
    mp = live.mountpoint
    canary = tmp_path / "canary-config"
    _script(live, "first.sh", "true\n")
    assert _exec("sh", "first.sh")["exit_code"] == 0
    assert _wait_for(lambda: _waiters(live.pid), 60), "no sandbox made ready"
    _git("config", "--worktree", "person.setting", "mine", cwd=mp)
    _script(
        live,
        "attack.sh",
        "G=$(git rev-parse --absolute-git-dir)\n"
        f'printf \'[core]\\n\\tfsmonitor = "touch {canary}; false"\\n\' >> "$G/config.worktree"'
        " 2>/dev/null && echo WROTE\ntrue\n",
    )
    doc = _exec("sh", "attack.sh")
    assert doc["result"]["exit_code"] == 0, doc["result"]
    _git("status", cwd=mp)
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-q", "--allow-empty", "-m", "p", cwd=mp)
    assert not canary.exists(), "the command's fsmonitor ran for the person"
    assert doc["result"]["stdout"] == "", doc["result"]  # the file stayed read-only
    assert _git("config", "--worktree", "person.setting", cwd=mp).strip() == "mine"


def test_a_pinned_file_the_person_rewrites_while_a_command_runs_is_put_back(live, vault, tmp_path):
    """The same as the person's ``git config --worktree`` during the run: the bind goes
    then too, and the command writes the new ``config.worktree``; after the run it is put
    back as it was before (``refs_refused`` says so), so nothing the command wrote there
    runs for the person (found in the twelfth round, NAME=attack3)."""
    mp = live.mountpoint
    canary = tmp_path / "canary-config-live"
    _script(
        live,
        "attack.sh",
        "G=$(git rev-parse --absolute-git-dir); : > started; i=0\n"
        f"line='[core]\\n\\tfsmonitor = \"touch {canary}; false\"\\n'\n"
        'while [ $i -lt 400 ]; do printf "$line" >> "$G/config.worktree" 2>/dev/null && echo WROTE && break\n'
        "  sleep 0.05; i=$((i+1)); done\ntrue\n",
    )
    with running([*exec_argv("--no-commit", "--"), "sh", "attack.sh"], os.path.join(mp, "started")) as run:
        _git("config", "--worktree", "person.setting", "mine", cwd=mp)
        out, _ = run.communicate(timeout=120)
    doc = json.loads(out)
    assert doc["result"]["exit_code"] == 0, doc
    _git("status", cwd=mp)
    assert not canary.exists(), "the command's fsmonitor ran for the person"
    if doc["result"]["stdout"] == "WROTE\n":  # (the bind went: what it wrote was put back)
        assert "config.worktree" in [r["ref"] for r in doc["refs_refused"]], doc["refs_refused"]
    _git("status", cwd=mp)  # git works in the mount as before
