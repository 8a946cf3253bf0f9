"""Deltas that cost the host far more than their objects' sizes say (the twenty-eighth round,
NAME=attack19). The carry-back bounds what the objects it takes inflate to, asking git each
one's size from its header (the fifteenth round's pack bomb); but git reads a delta by
inflating every base of its chain first, and a delta's header names its own result only. So
a pack the command wrote into the run's object quarantine could hold a small blob whose
chain is thousands of whole copies of 16 MiB (a pack of ~25 bytes a delta: `git
pack-objects` on the host then copied gigabytes, for minutes), or a delta of 64 KiB whose
base is 512 MiB (inflated whole on the host).

Each from inside a real confined `proxy exec` in a real mount (overlay and pure FUSE): the
command writes the pack, stages the blob and commits; the envelope then refuses the fork's
branch and the staged blob, saying why; the vault never holds the blob and the person's git
in the mount commits."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from avfs_git.proxy import packcost, sealobjects

from . import deltachain
from .test_adv_gitseal import _exec, _git, _script
from .test_adv_gitseal import live as live  # the fixture: both backends


def _plant(live: Any, vault: Any, kind: str, size: int, depth: int) -> None:
    mp = live.mountpoint
    with open(os.path.join(mp, "deltachain.py"), "w") as fh:
        fh.write(Path(deltachain.__file__).read_text())
    before = _git("--git-dir", vault.path, "rev-parse", "main").strip()
    _script(
        live,
        "plant.sh",
        'P="$(git rev-parse --git-path objects)/pack"\n'
        f'id=$(python3 deltachain.py {kind} {size} {depth} "$P") && echo "PLANTED $id"\n'
        'git update-index --add --cacheinfo "100644,$id,chain.bin"\n'
        "git -c user.name=A -c user.email=a@x commit -qm 'a small change' && echo COMMITTED\n",
    )
    doc = _exec("sh", "plant.sh")
    out = doc["result"]["stdout"]
    assert "COMMITTED" in out, doc["result"]
    planted = out.split("PLANTED ", 1)[1].split()[0]
    refused = {r["ref"]: r["reason"] for r in doc["refs_refused"]}
    assert "inflate" in refused.get("refs/heads/main", ""), doc["refs_refused"]
    assert "inflate" in refused.get("index", "") and "chain.bin" in refused["index"], refused
    assert subprocess.run(["git", "--git-dir", vault.path, "cat-file", "-e", planted]).returncode != 0
    tree = _git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main").split()
    assert "chain.bin" not in tree and "deltachain.py" in tree, tree
    assert _git("--git-dir", vault.path, "rev-list", f"{before}..main").strip() != ""  # the exec's commit
    # the person's git in the mount: nothing staged that the vault lacks, and it commits
    with open(os.path.join(mp, "lib.py"), "a") as fh:
        fh.write("y = 2\n")
    _git("add", "lib.py", cwd=mp)
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qm", "the person's", cwd=mp)
    assert "chain.bin" not in _git("ls-files", cwd=mp)
    assert _git("status", "--short", cwd=mp) == ""


@pytest.mark.parametrize("kind", ["chain", "big_base"])
def test_a_delta_whose_chain_inflates_past_the_bound_is_never_read_on_the_host(live, vault, kind):
    """``chain``: a blob of 16 MiB behind enough whole-copy deltas that reading it copies
    more than :data:`.sealobjects.MAX_INFLATED` (each object of it 16 MiB, all it names 16
    MiB: the size checks took it, and `git pack-objects` made every copy); ``big_base``: a
    blob of 64 KiB, a delta of one past :data:`.sealobjects.MAX_OBJECT_BYTES` (which the
    carry-back inflated whole). Both refused now, before any git reads the quarantine."""
    n = 16 << 20
    if kind == "chain":
        _plant(live, vault, kind, n, sealobjects.MAX_INFLATED // n + 1)
    else:
        _plant(live, vault, kind, sealobjects.MAX_OBJECT_BYTES + (1 << 16), 0)


def test_a_loose_commit_past_the_bound_is_never_read_on_the_host(live, vault):
    """A loose commit of :data:`.sealobjects.MAX_OBJECT_BYTES` and 64 KiB (its message of
    ``a``: ~3 MB on the disk) as the fork's branch: the carry-back's `git rev-list` read it
    whole on the host before the size checks refused it (1 GiB of commit took that git to
    1,057 MB); now its header refuses it before any git reads it."""
    mp = live.mountpoint
    with open(os.path.join(mp, "deltachain.py"), "w") as fh:
        fh.write(Path(deltachain.__file__).read_text())
    before = _git("--git-dir", vault.path, "rev-parse", "main").strip()
    n = sealobjects.MAX_OBJECT_BYTES + (1 << 16)
    _script(
        live,
        "plant.sh",
        f'id=$(python3 deltachain.py loose_commit {n} 0 "$(git rev-parse --git-path objects)")\n'
        'printf "%s\\n" "$id" > "$(git rev-parse --git-path refs/heads/main)" && echo "PLANTED $id"\n',
    )
    doc = _exec("sh", "plant.sh")
    assert "PLANTED" in doc["result"]["stdout"], doc["result"]
    planted = doc["result"]["stdout"].split("PLANTED ", 1)[1].split()[0]
    refused = {r["ref"]: r["reason"] for r in doc["refs_refused"]}
    assert "before any git reads it" in refused.get("refs/heads/main", ""), doc["refs_refused"]
    assert subprocess.run(["git", "--git-dir", vault.path, "cat-file", "-e", planted]).returncode != 0
    assert _git("--git-dir", vault.path, "rev-parse", "main").strip() != planted
    assert before in _git("--git-dir", vault.path, "rev-list", "main")
    assert _git("status", "--short", cwd=mp) == ""  # (the exec committed its scripts)


@pytest.mark.parametrize("form", ["ofs", "ref", "v1"])
def test_the_packs_git_writes_are_walked_whole_and_taken(tmp_path, form):
    """What the walk reads of packs git wrote (a repack of 60 versions of a file, deltas
    50 deep: by offset, by id, with an index of version 1): taken within the bounds, and
    refused with a bound below what their chains inflate to (so the walk reads their deltas'
    sizes, not nothing)."""
    repo = tmp_path / "r"
    _git("init", "-q", str(repo))
    text = "".join(f"line {i}\n" for i in range(20_000))
    for i in range(60):
        (repo / "f.txt").write_text(text + f"version {i}\n" * (i + 1))
        _git("-C", str(repo), "add", "f.txt")
        # (fixed dates: the same ids each run, and so the same order in the pack's index,
        # which the walk follows: with the clock's, a delta sorted before every commit in
        # some runs and the small bound named it, not a commit: ci31)
        at = {
            "GIT_AUTHOR_DATE": f"@{1_700_000_000 + i} +0000",
            "GIT_COMMITTER_DATE": f"@{1_700_000_000 + i} +0000",
        }
        cmd = ["git", "-C", str(repo), "-c", "user.name=a", "-c", "user.email=a@x", "commit", "-qm", f"v{i}"]
        subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **at})
    opts = {"ofs": [], "ref": ["-c", "repack.useDeltaBaseOffset=false"], "v1": ["-c", "pack.indexVersion=1"]}
    _git("-C", str(repo), *opts[form], "repack", "-adfq", "--depth=50", "--window=60")
    od = str(repo / ".git" / "objects")
    assert len([p for p in os.listdir(os.path.join(od, "pack")) if p.endswith(".idx")]) == 1
    assert packcost.refusal(od, sealobjects.MAX_OBJECT_BYTES, sealobjects.MAX_INFLATED) is None
    why = packcost.refusal(od, sealobjects.MAX_OBJECT_BYTES, 20 * len(text))
    assert why is not None and "deltas inflate" in why, why
    small = packcost.refusal(od, 50, sealobjects.MAX_INFLATED)  # (a commit is read whole)
    assert small is not None and "a commit of" in small, small


# the command: a tree of 100,000 files, a commit P of it on the fork's, and the fork's next
# commit C: its own tree, with P as each of its 32 parents (git fsck takes that)
_OCTOPUS = """set -e
E=$(git hash-object -w -t blob /dev/null)
python3 -c "
import sys
e = bytes.fromhex(sys.argv[1])
sys.stdout.buffer.write(b''.join(b'100644 f%06d\\0' % i + e for i in range(100000)))
" $E > big.tree
T=$(git hash-object -w -t tree big.tree) && rm big.tree
P=$(printf 'tree %s\\nparent %s\\nauthor A <a@x> 1 +0000\\ncommitter A <a@x> 1 +0000\\n\\np\\n' $T $(git rev-parse HEAD) | git hash-object -t commit -w --stdin)
{ printf 'tree %s\\n' $(git rev-parse HEAD^{tree}); for i in $(seq 32); do printf 'parent %s\\n' $P; done
  printf 'author A <a@x> 1 +0000\\ncommitter A <a@x> 1 +0000\\n\\nocto\\n'; } > c.txt
C=$(git hash-object -t commit -w --stdin < c.txt) && rm c.txt
git update-ref refs/heads/main $C && echo "MADE $C"
"""


def test_commits_whose_diff_against_each_parent_is_huge_are_refused_unread(live, vault):
    """The carry-back looks for a gitlink or a refused name in what each new commit
    changes, `git diff-tree -m` (against each of its parents), and read it whole into the
    host's memory: a commit whose 32 parents each hold 100,000 files it does not (3 MB of
    objects) made 342 MB of it, 200 of them 2.1 GB (78 s of git at a load of 30); a few
    thousand, the host's memory. Now it is read as git writes it, at most
    :data:`.sealobjects.MAX_DIFF_BYTES`, and past that the branch is refused."""
    _script(live, "octo.sh", _OCTOPUS)
    before = _git("--git-dir", vault.path, "rev-parse", "main").strip()
    doc = _exec("sh", "octo.sh")
    assert "MADE" in doc["result"]["stdout"], doc["result"]
    refused = {r["ref"]: r["reason"] for r in doc["refs_refused"]}
    assert "more than avfs checks" in refused.get("refs/heads/main", ""), doc["refs_refused"]
    assert _git("--git-dir", vault.path, "rev-list", "--count", "--merges", f"{before}..main").strip() == "0"
    assert _git("status", "--short", cwd=live.mountpoint) == ""
