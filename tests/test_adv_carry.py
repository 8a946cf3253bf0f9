"""What the carry-back reads of the sandbox's scratch is bounded by avfs, not by the command
(the thirteenth round's review, NAME=attack4): a confined command that fills the sandbox's
own ``packed-refs`` or its bisect refs makes neither a huge envelope nor a slow next run.

Each attack runs through a real confined `proxy exec` in a real mount (the CLI, served warm
by the mount's daemon), on the overlay backend and on pure FUSE, then the test acts as the
person (the next exec, `git status` in the mount) and checks the vault kept its refs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from avfs_git.mount.ownfiles import worktree_dir
from avfs_git.proxy import bisectrefs, landlock, seal, sealobjects

from . import packbomb
from .contract.test_proxy_exec_warm import _wait_for
from .test_adv_gitseal import _avfs, _exec, _git, _refs, _script
from .test_adv_gitseal import live as live  # the fixture: both backends
from .waitingexec import exec_argv, held_editor


def test_a_packed_refs_the_command_fills_makes_no_huge_envelope(live, vault):
    """The sandbox's ``packed-refs`` is the command's to rewrite, and every line it changes
    but the fork's own branch is reported, never applied. 20,000 new lines were 20,000
    ``refs_refused`` entries (64 MiB of lines: 10^6 entries, 1.2 GB in the daemon, and a
    served call's answer past 10^8 bytes that the CLI could not read); now the first
    :data:`.seal.MAX_LISTED` are listed and the rest counted in one entry, and a file grown
    past twice what avfs wrote plus :data:`.sealpack.MAX_GROWTH` is not read at all."""
    before = _refs(vault)
    _script(
        live,
        "fill.py",
        """import os, subprocess, sys
top = subprocess.check_output(['git', 'rev-parse', '--git-common-dir']).decode().strip()
n = int(sys.argv[1])
with open(os.path.join(top, 'packed-refs.new'), 'wb') as fh:
    fh.write(b'# pack-refs with: sorted \\n')
    for i in range(n):
        fh.write(b'%040x refs/heads/zz%09d\\n' % (i + 1, i))
os.rename(os.path.join(top, 'packed-refs.new'), os.path.join(top, 'packed-refs'))
print('FILLED', os.path.getsize(os.path.join(top, 'packed-refs')))
""",
    )
    for lines in (20_000, 400_000):  # 1.3 MB: read and counted; 26 MB: not read
        doc = _exec("python3", "fill.py", str(lines))
        assert doc["exit_code"] == 0 and "FILLED" in doc["result"]["stdout"], doc["result"]
        refused = doc["refs_refused"]
        if lines == 20_000:
            assert len(refused) == seal.MAX_LISTED + 1, len(refused)
            last = refused[-1]
            assert last["ref"] == "refs/" and "more ref changes, not listed: none kept" in last["reason"], (
                last
            )
        else:  # not read: as if the command had deleted every packed line (`other`, the tag)
            assert [(r["ref"], r["new"]) for r in refused] == [
                ("refs/heads/other", None),
                ("refs/tags/v1", None),
            ]
        assert all(r["ref"] != "refs/heads/main" for r in refused)
        assert _refs(vault) == before
        # the next run sees the vault's branches again, and reports nothing
        nxt = _exec("sh", "-c", "git rev-parse other; git branch --list 'zz*' | wc -l")
        assert nxt["result"]["stdout"].split() == [before["refs/heads/other"], "0"], nxt["result"]
        assert nxt["refs_refused"] == [], nxt["refs_refused"]


def test_more_bisect_refs_than_a_bisect_makes_are_not_carried(live, vault):
    """A bisect's refs go on from run to run (each copied into the next run's scratch and
    read back after it): 20,000 planted by one command made every later `proxy exec --
    true` take about a minute, until the person's `git bisect reset`. A scratch holding
    more than :data:`.bisectrefs.MAX_REFS` keeps none (one ``refs_refused`` entry); a real
    bisect's refs still go on (``test_bisect_refs_go_on_to_the_next_run_...``)."""
    n = bisectrefs.MAX_REFS + 1
    _script(
        live,
        "bisect.sh",
        f"""H=$(git rev-parse HEAD); D=$(git rev-parse --git-path refs/bisect); mkdir -p "$D"
i=0; while [ $i -lt {n} ]; do echo $H > "$D/skip-$i"; i=$((i+1)); done; echo PLANTED
""",
    )
    doc = _exec("sh", "bisect.sh")
    assert "PLANTED" in doc["result"]["stdout"], doc["result"]
    refused = [r for r in doc["refs_refused"] if r["ref"].startswith("refs/bisect/")]
    assert [r["reason"] for r in refused] == [f"more than {bisectrefs.MAX_REFS} bisect refs: none kept"]
    kept = Path(worktree_dir(vault, "main"), "refs", "bisect")
    assert not kept.exists() or os.listdir(kept) == []
    seen = _exec("sh", "-c", 'ls "$(git rev-parse --git-path refs/bisect)" 2>/dev/null | wc -l')
    assert seen["result"]["stdout"].strip() == "0", seen["result"]
    assert seen["refs_refused"] == [], seen["refs_refused"]
    _git("status", cwd=live.mountpoint)


_NESTED = """git init -q sub
git -C sub config core.fsmonitor 'echo ran >> {canary}; false'
echo inner > sub/f && git -C sub add f && git -C sub -c user.name=A -c user.email=a@x commit -qm inner
git add sub && git ls-files -s sub
"""


def _no_gitlink_runs(live: Any, doc: dict[str, Any], canary: Path) -> None:
    """The person's side: the gitlink the command staged is out of the index and its
    nested repository's fsmonitor runs nowhere on the host."""
    assert doc["result"]["stdout"].startswith("160000 "), doc["result"]  # git did stage one
    assert "160000" not in _git("ls-files", "-s", cwd=live.mountpoint)
    _git("status", cwd=live.mountpoint)
    assert not canary.exists(), "the nested repository's fsmonitor ran for the person"


def test_a_bisect_ref_of_another_hash_s_length_leaves_no_gitlink_for_the_person(live, vault, tmp_path):
    """A bisect ref holding 64 hex digits (a SHA-256 id, in a SHA-1 vault) made the vault's
    ``has_object`` raise in the carry-back, which then stopped before the gitlinks the
    command staged were dropped from the mount's index: the person's plain `git status`
    in the mount ran the nested repository's ``core.fsmonitor`` on the host (both
    backends). Now such an id is no object of the vault (reported, dropped), and the
    gitlinks go whatever became of the refs."""
    canary = tmp_path / "canary"
    plant = 'D=$(git rev-parse --git-path refs/bisect); mkdir -p "$D"; printf \'%064d\\n\' 0 > "$D/bad"\n'
    _script(live, "attack.sh", "set -e\n" + plant + _NESTED.format(canary=canary))
    doc = _exec("sh", "attack.sh")
    assert doc["error"] is None and doc["exit_code"] == 0, doc["error"]
    assert [r["reason"] for r in doc["refs_refused"] if r["ref"] == "refs/bisect/bad"] == [
        "it names no object of the vault"
    ], doc["refs_refused"]
    _no_gitlink_runs(live, doc, canary)


def test_a_pinned_file_the_command_makes_a_directory_is_put_back_and_drops_the_gitlink(live, vault, tmp_path):
    """When the person's ``git config --worktree`` ends the sandbox's read-only bind of
    ``config.worktree`` during a run, the command can put a directory there: the put-back
    (a rename) failed on it, the carry-back stopped there, the gitlink it staged stayed in
    the index and ``config.worktree`` a directory (the person's git then refused to run
    in the mount). Now the directory goes, the file is put back, the gitlink is dropped."""
    mp = live.mountpoint
    canary = tmp_path / "canary"
    _script(
        live,
        "attack.sh",
        _NESTED.format(canary=canary)
        + "G=$(git rev-parse --absolute-git-dir); : > started; i=0\n"
        + 'while [ $i -lt 400 ]; do rm -f "$G/config.worktree" 2>/dev/null && mkdir "$G/config.worktree" && echo MADE && break\n'
        + "  sleep 0.05; i=$((i+1)); done\ntrue\n",
    )
    cmd = [*exec_argv("--no-commit"), "--"]
    run = subprocess.Popen([*cmd, "sh", "attack.sh"], stdout=subprocess.PIPE)
    try:
        assert _wait_for(lambda: os.path.exists(os.path.join(mp, "started")), 60), "the command did not start"
        _git("config", "--worktree", "person.setting", "mine", cwd=mp)
    finally:
        out, _ = run.communicate(timeout=120)
    doc = json.loads(out)
    assert doc["error"] is None and doc["result"]["exit_code"] == 0, doc
    assert doc["result"]["stdout"].endswith("MADE\n"), doc["result"]  # (the bind went)
    assert "config.worktree" in [r["ref"] for r in doc["refs_refused"]], doc["refs_refused"]
    assert os.path.isfile(os.path.join(worktree_dir(vault, "main"), "config.worktree"))
    _no_gitlink_runs(live, doc, canary)


def test_an_index_lock_the_command_leaves_never_has_the_person_commit_the_old_base(live, vault):
    """A command that leaves git's ``index.lock`` (a `touch`, or a git killed at the
    timeout) kept avfs from writing the mount's index for the exec's commit and every
    checkpoint after it (each waited 10 s for the lock); on the overlay backend nothing
    wrote it later, and the person's `git commit`, once they removed the lock as git
    tells them to, committed the old base's index: the exec's file and the checkpoint's
    change undone on the fork's branch. Now the lock goes after the run (``refs_refused``
    says so): `git status` is clean, and the person's commit records only their change."""
    mp = live.mountpoint
    _script(live, "lock.sh", 'echo new > NEWFILE; : > "$(git rev-parse --git-dir)/index.lock"\n')
    doc = _exec("sh", "lock.sh")
    assert doc["exit_code"] == 0 and doc["commit"] is not None, doc
    assert "index.lock" in [r["ref"] for r in doc["refs_refused"]], doc["refs_refused"]
    assert not os.path.lexists(os.path.join(worktree_dir(vault, "main"), "index.lock"))
    assert _git("status", "--short", cwd=mp) == ""
    with open(os.path.join(mp, "README"), "a") as fh:
        fh.write("by the checkpoint\n")
    assert _avfs("checkpoint", "save").returncode == 0
    assert _git("status", "--short", cwd=mp) == ""
    with open(os.path.join(mp, "lib.py"), "a") as fh:
        fh.write("y = 2\n")
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qam", "the person's", cwd=mp)
    assert _git("show", "--format=", "--name-status", "HEAD", cwd=mp).split() == ["M", "lib.py"]
    tree = _git("--git-dir", vault.path, "ls-tree", "--name-only", "main")
    assert "NEWFILE" in tree.split() and b"by the checkpoint" in Path(mp, "README").read_bytes()
    assert "by the checkpoint" in _git("--git-dir", vault.path, "show", "main:README")


def test_lines_planted_in_the_sandbox_s_packed_refs_move_nothing_of_the_vault(live, vault):
    """What the command can write into its own ``packed-refs`` (read back as untrusted
    lines, reported, never applied): another fork's branch moved, with a peeled line; a tag
    moved; a name holding ``..`` that leads to the vault's ``HEAD``; a name one of the
    fork's own is a prefix of; a ``packed-refs.lock`` left; then a link and a FIFO in its
    place (Landlock refuses both). The vault's refs, its ``HEAD`` and the worktree's stay,
    the fork's branch moves only by its own commit, and the next run sees the vault's."""
    before = _refs(vault)
    vault_head = Path(vault.path, "HEAD").read_bytes()
    first = _git("--git-dir", vault.path, "rev-list", "--max-parents=0", "main").strip()
    _script(
        live,
        "lines.sh",
        f"""T=$(git rev-parse --git-common-dir); P=$T/packed-refs
{{ cat "$P"; echo "{first} refs/heads/other"; echo "^{first}"
  echo "{first} refs/tags/v1"; echo "{first} refs/heads/../../HEAD"; echo "{first} refs/heads/main-x"
  echo "{first} refs/heads/main/x"; }} > "$T/new" && mv "$T/new" "$P" && echo WRITTEN
: > "$T/packed-refs.lock"
""",
    )
    doc = _exec("sh", "lines.sh")
    assert "WRITTEN" in doc["result"]["stdout"], doc["result"]
    refused = {r["ref"] for r in doc["refs_refused"]}
    assert {"refs/heads/other", "refs/heads/main-x", "refs/heads/main/x"} <= refused, doc["refs_refused"]
    assert "refs/heads/main" not in refused and doc["branch_moved"] is None
    assert _refs(vault) == before and Path(vault.path, "HEAD").read_bytes() == vault_head
    assert not os.path.lexists(os.path.join(vault.path, "packed-refs.lock"))
    _script(live, "swap.sh", 'T=$(git rev-parse --git-common-dir); rm -f "$T/packed-refs"\n'
            'ln -s /etc/passwd "$T/packed-refs" 2>/dev/null && echo LINKED; mkfifo "$T/packed-refs" 2>/dev/null && echo FIFO\n'
            ': > "$T/packed-refs"\n')  # fmt: skip
    doc = _exec("sh", "swap.sh")
    if landlock.available():  # (without it they are made: read as no packed-refs, replaced)
        assert "LINKED" not in doc["result"]["stdout"] and "FIFO" not in doc["result"]["stdout"], doc[
            "result"
        ]
    assert _refs(vault) == before
    nxt = _exec("git", "rev-parse", "other", "v1")
    assert nxt["result"]["stdout"].split() == [before["refs/heads/other"], before["refs/tags/v1"]], nxt
    assert nxt["refs_refused"] == [], nxt["refs_refused"]
    _git("status", cwd=live.mountpoint)


def test_an_index_lock_the_person_s_git_commit_holds_past_a_run_stays(live, vault, tmp_path):
    """The person's `git commit` in the mount holds ``index.lock`` while its editor is open;
    one started during a run and still open after it is the person's, not the command's:
    left (removed, their commit could not write its index, and the next commit would
    have undone theirs). Their commit ends as it would without avfs."""
    mp = live.mountpoint
    _script(  # the run lasts until the person's git holds the lock
        live,
        "wait.sh",
        ': > started; G=$(git rev-parse --git-dir); i=0\nwhile [ ! -e "$G/index.lock" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n',
    )
    cmd = [*exec_argv("--no-commit"), "--"]
    run = subprocess.Popen([*cmd, "sh", "wait.sh"], stdout=subprocess.PIPE)
    person = None
    try:
        assert _wait_for(lambda: os.path.exists(os.path.join(mp, "started")), 60), "the command did not start"
        with open(os.path.join(mp, "lib.py"), "a") as fh:
            fh.write("y = 2\n")
        editor, release = held_editor(tmp_path, writes="by-the-person")  # open until the run ends
        env = {**os.environ, "GIT_EDITOR": editor}
        argv = ["git", "-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qa"]
        person = subprocess.Popen(argv, cwd=mp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lock = os.path.join(worktree_dir(vault, "main"), "index.lock")
        assert _wait_for(lambda: os.path.exists(lock), 10), "the person's git took no lock"
    finally:
        out, _ = run.communicate(timeout=120)
        if person is not None:
            release.touch()
            _out, err = person.communicate(timeout=60)
    doc = json.loads(out)
    assert doc["result"]["exit_code"] == 0, doc
    assert "index.lock" not in [r["ref"] for r in doc["refs_refused"]], doc["refs_refused"]
    assert person is not None and person.returncode == 0, err
    assert _git("log", "-1", "--format=%s", cwd=mp).strip() == "by-the-person"
    assert _git("show", "--format=", "--name-only", "HEAD", cwd=mp).split() == ["lib.py"]
    assert " M" not in _git("status", "--short", cwd=mp) and "M " not in _git("status", "--short", cwd=mp)


def test_lock_files_the_command_leaves_never_wedge_the_person_s_git(live, vault):
    """Found in the fourteenth round (NAME=attack5): git's other lock files the command can
    leave in the worktree's git dir, where git refuses to go on while one is there
    ("Another git process seems to be running"): a `HEAD.lock` failed every `git commit`
    of the person's in the mount, an `ORIG_HEAD.lock` every `git reset`, a
    `config.worktree.lock` every `git config --worktree`, until they found and removed
    each. Now each one made during the run goes after it, and ``refs_refused`` names it;
    the person's git works at once."""
    mp = live.mountpoint
    names = ["HEAD.lock", "ORIG_HEAD.lock", "config.worktree.lock", "AUTO_MERGE.lock", "x.lock"]
    made = "".join(f': > "$G/{n}" && echo MADE {n}\n' for n in names)
    _script(live, "locks.sh", f'G=$(git rev-parse --git-dir)\n{made}mkdir "$G/CHERRY_PICK_HEAD.lock"\n')
    doc = _exec("sh", "locks.sh")
    assert doc["result"]["stdout"].split().count("MADE") == len(names), doc["result"]
    refused = [r["ref"] for r in doc["refs_refused"]]
    assert sorted(n for n in refused if n.endswith(".lock")) == sorted([*names, "CHERRY_PICK_HEAD.lock"])
    wt = worktree_dir(vault, "main")
    assert not [n for n in os.listdir(wt) if n.endswith(".lock")], os.listdir(wt)
    with open(os.path.join(mp, "lib.py"), "a") as fh:
        fh.write("y = 2\n")
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qam", "the person's", cwd=mp)
    _git("reset", "-q", "HEAD~0", cwd=mp)
    assert _git("show", "--format=%s", "--name-only", "HEAD", cwd=mp).split() == ["the", "person's", "lib.py"]
    assert _git("status", "--short", cwd=mp) == ""


def test_a_pack_bomb_the_command_commits_is_not_inflated_on_the_host(live, vault):
    """Found in the fifteenth round (NAME=attack6): the objects of the command's commits
    came into the vault through ``git pack-objects`` and ``git index-pack --strict`` on
    the host, and neither bounds what an object inflates to. A pack of 154 bytes holding a
    blob of 256 MiB zeros as a delta (each byte of it copies 64 KiB) made each of them
    take 267 MB of memory on the host, and the blob then sat in the vault, in the fork's
    branch, for every later reader (the mount's daemon, the person's git) to inflate again;
    one of gigabytes fills the host's memory. Now the carry-back asks git each object's
    size (from the pack's headers, nothing inflated) before it packs anything, and takes
    none past :data:`.sealobjects.MAX_OBJECT_BYTES` (nor more than
    :data:`.sealobjects.MAX_TOTAL_BYTES` in all): the branch stays, the envelope says why,
    and the person's git in the mount knows nothing of the blob."""
    mp = live.mountpoint
    n = sealobjects.MAX_OBJECT_BYTES + (1 << 16)
    with open(os.path.join(mp, "packbomb.py"), "w") as fh:
        fh.write(Path(packbomb.__file__).read_text())
    before = _git("--git-dir", vault.path, "rev-parse", "main").strip()
    script = (
        'P="$(git rev-parse --git-path objects)/pack"\n'
        f'id=$(python3 packbomb.py {n} "$P") && echo "BOMB $id"\n'
        'git update-index --add --cacheinfo "100644,$id,big.bin"\n'
        "git -c user.name=A -c user.email=a@x commit -qm 'a small change' && echo COMMITTED\n"
    )
    _script(live, "bomb.sh", script)
    doc = _exec("sh", "bomb.sh")
    out = doc["result"]["stdout"]
    assert "COMMITTED" in out, doc["result"]
    big = out.split("BOMB ", 1)[1].split()[0]
    refused = {r["ref"]: r["reason"] for r in doc["refs_refused"]}
    assert "bigger than avfs takes" in refused.get("refs/heads/main", ""), doc["refs_refused"]
    # the index named it (the command's `git update-index`): put back, and said
    assert "bigger than avfs takes" in refused.get("index", "") and "big.bin" in refused["index"], refused
    assert subprocess.run(["git", "--git-dir", vault.path, "cat-file", "-e", big]).returncode != 0
    tree = _git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main").split()
    assert "big.bin" not in tree and "packbomb.py" in tree, tree
    assert _git("--git-dir", vault.path, "rev-list", f"{before}..main").strip() != ""  # the exec's commit
    # the person's git in the mount: nothing staged that the vault lacks, and it commits
    with open(os.path.join(mp, "lib.py"), "a") as fh:
        fh.write("y = 2\n")
    _git("add", "lib.py", cwd=mp)
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qm", "the person's", cwd=mp)
    assert "big.bin" not in _git("ls-files", cwd=mp)
    assert _git("status", "--short", cwd=mp) == ""


def test_what_the_command_stages_is_the_vault_s_or_put_back(live, vault):
    """Found in the fifteenth round (NAME=attack6): the mount's index the command left
    could name blobs the vault never got, and every `git commit` of the person's in the
    mount failed ("invalid object ... Error building trees") until they found the path: a
    blob staged that the command's `git repack` then packed (the staged blobs were looked
    for only among the quarantine's loose objects), and one staged with `git update-index
    --info-only`, of no object at all. Now the first comes into the vault and the second
    is taken out of the index, and said."""
    mp = live.mountpoint
    ghost = "1234567890" * 4
    _script(
        live,
        "stage.sh",
        "id=$(echo packed | git hash-object -w --stdin) && git repack -dlq\n"
        'git update-index --add --cacheinfo "100644,$id,packed.txt"\n'
        f"git update-index --add --info-only --cacheinfo 100644,{ghost},ghost.txt && echo STAGED\n",
    )
    doc = _exec("sh", "stage.sh")
    assert "STAGED" in doc["result"]["stdout"], doc["result"]
    refused = {r["ref"]: r["reason"] for r in doc["refs_refused"]}
    assert "ghost.txt" in refused.get("index", "") and "packed.txt" not in refused["index"], refused
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qm", "the person's", cwd=mp)
    assert _git("show", "HEAD:packed.txt", cwd=mp) == "packed\n"
    assert "ghost.txt" not in _git("ls-files", cwd=mp)


def test_a_name_that_is_not_utf8_never_wedges_the_fork(live, vault):
    """Found in the fifteenth round (NAME=attack6): on the overlay backend a confined
    command can name a file with bytes that are not UTF-8 in a directory it made (the
    mount refuses such a name, ``EINVAL``, where the lower layer is asked about it; a new
    directory's names never reach it; the pure-FUSE mount refuses it everywhere). The
    exec recorded it, and then the
    upper layer's cache of its files' ids was asked with that name (SQLite takes only
    UTF-8 text): every later `avfs status`, `avfs checkpoint` and `proxy exec` of the fork
    failed with ``internal`` (exit 70) until the person found the file. Now such a name
    is hashed each time instead of cached, and the fork works on."""
    _script(
        live,
        "odd.py",
        "import os\n"
        "try:\n"
        "    os.mkdir(b'odd')\n"
        "    open(b'odd/\\xff\\xfe.txt', 'wb').write(b'x')\n"
        "    print('MADE')\n"
        "except OSError as exc:\n"
        "    print('REFUSED', exc.errno)\n",
    )
    doc = _exec("python3", "odd.py")
    assert doc["exit_code"] == 0 and doc.get("error") is None, doc
    made = "MADE" in doc["result"]["stdout"]
    assert made == (live.backend == "overlay"), (doc["result"]["stdout"], doc["result"]["stderr"])
    for args in (("status",), ("checkpoint", "save", "-m", "after the odd name")):
        r = _avfs("--json", *args)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    with open(os.path.join(live.mountpoint, "lib.py"), "a") as fh:
        fh.write("y = 2\n")
    again = _exec("true")
    assert again["exit_code"] == 0 and again.get("error") is None, again
    tree = _git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert ('"odd/\\377\\376.txt"' in tree) == made, tree
    assert _git("--git-dir", vault.path, "show", "main:lib.py") == "x = 1\ny = 2\n"
    # the mount's daemon logged its change log written (a batch holding the name failed whole)
    with open(os.path.join(vault.state_dir, "mounts", "main.log"), encoding="utf-8", errors="replace") as fh:
        assert "UnicodeEncodeError" not in fh.read()
