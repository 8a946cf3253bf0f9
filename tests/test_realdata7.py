"""`avfs log` and `show` beside git on real histories (the thirty-second round, realdata7;
docs/testing.md, "git's and libgit2's fixtures through avfs's read paths"): libgit2
1.5.1's test repositories (``redundant.git``: 810 commits of libgit2's own history, 142
merges, 50 rebased or amended ones whose author's and committer's times differ;
``merge-recursive``: 27 merges, conflicts resolved by hand among them) and git 2.39.5's
``t/t4013`` repository with its expected outputs. What differed on main:

- `log` and `show` printed ``Date:`` as the committer's time, git the author's (t4013's
  amended merge: 00:05 for git's 00:04; 50 of redundant.git's commits); ``--json`` had
  no author's time.
- `show` of a merge printed its diff against its first parent, git its dense combined
  diff (``--cc``: nothing where the merge took each file from one side); `log -p` and
  `log --stat` of a walk through every parent (``--all``, ``A..B``) printed it too, git
  nothing (a fork's own first-parent log is git's ``--first-parent``: against the first
  parent, as before).
- a root commit's diff was printed whatever ``log.showroot`` says (t4013 sets it false:
  `git show initial` prints the header alone).
- ``bad_tag.git``'s ``packed-refs`` ends without its newline: git refuses every ref read
  there ("fatal: unexpected line"), avfs read its refs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from . import realdata
from .test_realdata6 import _expected, _patches, _t4013_repo

pytestmark = pytest.mark.slow


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "-c", "core.pager=cat", *args],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.decode("utf-8", "surrogateescape")


def _rfc3339(ts: str) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


def _fixture(name: str) -> Path:
    """The git directory of libgit2's test repository ``name`` (``merge-recursive``'s is
    its ``.gitted``)."""
    for git_dir in realdata.libgit2_resources():
        top = git_dir.parent if git_dir.name == ".gitted" else git_dir
        if top.name == name and top.parent.name == "resources":
            return git_dir
    raise AssertionError(name)


@pytest.fixture(scope="module")
def t4013(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _t4013_repo(tmp_path_factory.mktemp("t4013") / "t4013") / ".git"


def _clone(cli: Any, git_dir: Path, name: str) -> None:
    got = cli("vault", "clone", str(git_dir), name)
    assert got.code == 0, got.err


def _blocks(text: str) -> list[str]:
    """A log's text cut at each ``commit`` line (one block a commit)."""
    return ["commit " + b for b in ("\n" + text).split("\ncommit ")[1:]]


def _patch(block: str) -> str:
    """What a commit's block shows after its header and message: from its first ``diff``
    line (the message's lines are indented), or nothing."""
    at = block.find("\ndiff --")
    return "" if at < 0 else block[at + 1 :]


def test_log_and_show_print_the_author_s_date_and_json_has_both(t4013: Path, home: Any, cli: Any) -> None:
    """``Date:`` is the author's time, as git prints it (RFC 3339 in UTC, avfs's form),
    in `log` read by the pure reader (a fork's own line), by libgit2 (``--all``) and in
    `show`; ``--json``'s commits carry ``author_time`` beside ``time`` (the committer's).
    On main the committer's: 00:05 for t4013's merge, where git prints 00:04."""
    differ = 0
    for name, git_dir in (
        ("t4013", t4013),
        ("redundant", _fixture("redundant.git")),
        ("mres", _fixture("merge-resolve")),
        ("email", _fixture("diff_format_email")),
    ):
        _clone(cli, git_dir, name)
        dates = {}
        for line in _git(git_dir, "log", "--all", "--format=%H %at %ct").splitlines():
            oid, at, ct = line.split()
            dates[oid] = (_rfc3339(at), _rfc3339(ct))
        for args in (["log"], ["log", "--all"]):
            doc = cli("--json", "--vault", name, *args)
            assert doc.code == 0, doc.err
            commits = doc.json()["commits"]
            assert commits
            for c in commits:
                assert (c["author_time"], c["time"]) == dates[c["id"]], (name, c["id"])
            human = cli("--vault", name, *args)
            assert human.code == 0, human.err
            shown = [ln[len("Date:   ") :] for ln in human.out.splitlines() if ln.startswith("Date:   ")]
            assert shown == [c["author_time"] for c in commits], name
            if args == ["log", "--all"]:
                differ += sum(c["author_time"] != c["time"] for c in commits)
                moved = [c for c in commits if c["author_time"] != c["time"]][:3]
                for c in moved:
                    one = cli("--vault", name, "show", "--stat", c["id"])
                    assert one.code == 0, one.err
                    assert f"\nDate:   {c['author_time']}\n" in one.out
    assert differ >= 55, differ
    merge = cli("--vault", "t4013", "show", "master")
    assert "\nDate:   2006-06-26T00:04:00Z\n" in merge.out  # (git: Mon Jun 26 00:04:00 2006 +0000)


def test_show_of_a_merge_prints_git_s_combined_diff(t4013: Path, home: Any, cli: Any) -> None:
    """`show` of a merge prints what `git show` does (its ``--cc``), byte for byte: t4013's
    expected ``show master``, and every merge of ``merge-recursive`` and of
    ``redundant.git`` (the first 60 of its 142) beside `git show`, those whose result took
    each file from one side (git prints no diff) among them; `show --stat` of a merge
    counts against the first parent, as git's does. On main: the first-parent patch."""
    _clone(cli, t4013, "t4013")
    shown = cli("--vault", "t4013", "show", "master")
    assert shown.code == 0, shown.err
    want = _expected("show_master")
    assert _patch(shown.out) == _patch(want) != ""
    compared = cleanly = 0
    for name, git_dir, most in (
        ("mr", _fixture("merge-recursive"), 40),
        ("rd", _fixture("redundant.git"), 60),
        ("tw", _fixture("twowaymerge.git"), 40),
    ):
        _clone(cli, git_dir, name)
        merges = _git(git_dir, "rev-list", "--all", "--merges").split()[:most]
        for m in merges:
            want = _git(git_dir, "show", "--no-color", "--format=", m)
            got = cli("--vault", name, "show", m)
            assert got.code == 0, got.err
            assert _patch(got.out) == want.lstrip("\n"), (name, m)
            cleanly += want.strip() == ""
            compared += 1
        for m in merges[:5]:
            want = _git(git_dir, "show", "--no-color", "--stat", "--format=", m)
            got = cli("--vault", name, "show", "--stat", m)
            assert got.code == 0, got.err
            assert got.out.endswith(want.lstrip("\n")), (name, m)
    assert compared >= 89 and cleanly >= 60 and compared - cleanly >= 20, (compared, cleanly)


def test_log_patches_show_a_merge_as_git_log_does(home: Any, cli: Any) -> None:
    """`log -p` and `log --stat` through every parent (``--all``, ``A..B``) print no diff
    for a merge, as `git log -p` does; a fork's own log is git's ``--first-parent``, where
    git shows a merge against its first parent, and so does avfs. On main each merge of
    ``merge-recursive`` printed its first-parent patch under ``--all``."""
    git_dir = _fixture("merge-recursive")
    _clone(cli, git_dir, "mr")
    merges = set(_git(git_dir, "rev-list", "--all", "--merges").split())
    tip = _git(git_dir, "rev-parse", "HEAD").strip()
    for args in (["-p", "--all"], ["--stat", "--all"], ["-p", f"{tip}~5..{tip}"]):
        got = cli("--vault", "mr", "log", *args)
        assert got.code == 0, got.err
        seen = 0
        for block in _blocks(got.out):
            oid = block.split("\n", 1)[0].split()[1]
            if oid in merges:
                seen += 1
                assert _patch(block) == "" and " changed, " not in block, (args, oid)
        assert seen >= 1, args
    # the first-parent line: git's `log -p --first-parent`, merges against their first parent
    got = cli("--vault", "mr", "log", "-p", "-n", "12", tip)
    want = _git(git_dir, "log", "-p", "--first-parent", "--no-color", "-n", "12", tip)
    assert _patches(got.out) == _patches(want) != []
    assert any(b.split("\n", 1)[0].split()[1] in merges and _patch(b) for b in _blocks(got.out))


def test_a_root_commit_s_diff_follows_log_showroot(t4013: Path, home: Any, cli: Any) -> None:
    """A root commit's diff is shown while ``log.showroot`` is on (git's default: t4013's
    ``show --root initial``), and not when the vault's config sets it false (t4013's own
    setting: ``show initial`` prints the header alone, ``log -p --first-parent master``
    no patch for it). On main the root's whole tree whatever the setting."""
    _clone(cli, t4013, "t4013")
    shown = cli("--vault", "t4013", "show", "initial")
    assert shown.code == 0, shown.err
    assert _patch(shown.out) == _patch(_expected("show_--root_initial")) != ""
    vault = Path(home.path) / "vaults" / "t4013.git"
    subprocess.run(["git", "--git-dir", str(vault), "config", "log.showroot", "false"], check=True)
    for args in (["show", "initial"], ["show", "--stat", "initial"]):
        got = cli("--vault", "t4013", *args)
        assert got.code == 0, got.err
        assert got.out.endswith("\n    Initial\n\n") and _patch(got.out) == "", args
    logged = cli("--vault", "t4013", "log", "-p", "master")
    assert logged.code == 0, logged.err
    assert _patches(logged.out) == _patches(_expected("log_-p_--first-parent_master")) != []
    assert _blocks(logged.out)[-1].endswith("    Initial\n\n")


def _git_refuses_refs(git_dir: Path) -> str | None:
    """git's message where it refuses to list ``git_dir``'s refs for its ``packed-refs``."""
    p = subprocess.run(["git", "--git-dir", str(git_dir), "for-each-ref"], capture_output=True, timeout=60)
    err = p.stderr.decode(errors="replace")
    return err if p.returncode and "packed-refs" in err else None


def test_a_packed_refs_git_refuses_avfs_refuses(
    t4013: Path, home: Any, cli: Any, cli_proc: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libgit2's ``bad_tag.git`` (its ``packed-refs`` ends without a newline): git refuses
    every read of a packed ref there ("unexpected line", packed-backend.c
    ``verify_buffer_safe``), and so does avfs, naming the file and the record: its
    listings from the files, a ref's lookup, and where libgit2 reads the refs (which
    reads the file). A vault's file cut so: `log` (its fork's ref is packed) fails as
    ``corrupt_state``, one JSON document, cold and in a process with libgit2 loaded, the
    file and the refs as they were. On main avfs read the refs."""
    import pygit2

    from avfs_git.core.errors import CorruptStateError
    from avfs_git.core.store import packedrefs, refs
    from avfs_git.core.store.gitstore import GitStore

    refused = 0
    for git_dir in realdata.libgit2_resources():
        said = _git_refuses_refs(git_dir)
        if said is None:
            continue
        refused += 1
        assert "unexpected line" in said, said
        gd = str(git_dir)
        for read, arg in (
            (refs.read_refs_file, "refs/"),
            (refs.list_refs_file, "refs/"),
            (packedrefs.lookup, "refs/tags/hello"),
        ):
            with pytest.raises(CorruptStateError) as exc:
                read(gd, arg)
            assert "packed-refs" in str(exc.value) and "nothing was changed" in str(exc.value)
        assert (
            pygit2.Repository(str(git_dir)).references.get("refs/tags/hello") is not None
        )  # (libgit2 reads it)
        store = GitStore(str(git_dir))
        with pytest.raises(CorruptStateError):
            refs.ref_names(store, "refs/tags/")
        with pytest.raises(CorruptStateError):
            refs.read_ref(store, "refs/tags/hello")
    assert refused >= 1

    _clone(cli, t4013, "cut")
    vault = Path(home.path) / "vaults" / "cut.git"
    subprocess.run(["git", "--git-dir", str(vault), "pack-refs", "--all"], check=True)
    packed = vault / "packed-refs"
    packed.write_bytes(packed.read_bytes().rstrip(b"\n"))
    assert _git_refuses_refs(vault) is not None
    before = packed.read_bytes()
    listing = sorted(p.relative_to(vault).as_posix() for p in (vault / "refs").rglob("*"))
    monkeypatch.setenv("AVFS_HOME", home.path)
    monkeypatch.setenv("AVFS_SERVER", "off")
    for run in (cli, cli_proc):  # (in this process libgit2 is loaded; a cold one reads the files)
        got = run("--json", "--vault", "cut", "log")
        doc = json.loads(got.out)
        assert got.code != 0 and doc["error"]["code"] == "corrupt_state", got.out
        assert "packed-refs" in doc["error"]["message"]
    assert packed.read_bytes() == before
    assert sorted(p.relative_to(vault).as_posix() for p in (vault / "refs").rglob("*")) == listing
    packed.write_bytes(before + b"\n")  # (the newline back: read again, by git and avfs)
    assert _git_refuses_refs(vault) is None
    got = cli("--json", "--vault", "cut", "log")
    assert got.code == 0 and got.json()["commits"][0]["id"] == _git(t4013, "rev-parse", "master").strip()


def _t0022_repo(work: Path, script: bytes) -> Path:
    """git's ``t/t0022-crlf-rename.sh`` setup, replayed with plain git: the script itself
    committed as ``sample``, then its lines with CR added (test-lib's ``append_cr``) as
    ``elpmas`` and ``sample`` removed."""
    env = {**os.environ, "GIT_AUTHOR_DATE": "1112911993 -0700", "GIT_COMMITTER_DATE": "1112911993 -0700"}

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(work), *args], check=True, capture_output=True, env=env)

    git("init", "-q", "-b", "main")
    (work / "sample").write_bytes(script)
    git("add", "sample")
    git("commit", "-q", "-m", "Initial")
    (work / "elpmas").write_bytes(script.replace(b"\n", b"\r\n"))
    git("add", "elpmas")
    (work / "sample").unlink()
    git("commit", "-q", "-a", "-m", "Second")
    return work


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_git_s_t0022_crlf_rename_through_the_mount(backend: str, home: Any, cli: Any, tmp_path: Path) -> None:
    """git's ``t/t0022-crlf-rename.sh`` (a file renamed while each line gained a CR: git's
    similarity ignores the CR, ``R<score> sample elpmas``) done in a mount: the file
    written, checkpointed, the CRLF copy written and the file removed, checkpointed.
    The workspace's diff before the checkpoint, `avfs diff` of the two checkpoints and
    `git diff-tree -M` in the mount all say what git says of the script's own history,
    and the trees are its trees. Nothing differed; kept as a test."""
    from .gitmount import _git as git_in
    from .gitmount import _require

    _require(backend)
    script = realdata.git_source_file("t/t0022-crlf-rename.sh").read_bytes()
    (tmp_path / "plain").mkdir()
    plain = _t0022_repo(tmp_path / "plain", script)
    want = _git(plain / ".git", "diff-tree", "-M", "-r", "--name-status", "HEAD^", "HEAD")
    assert want.startswith("R") and want.endswith("\tsample\telpmas\n"), want  # (the script's expect)
    assert cli("vault", "create", "crlf").code == 0
    mp = tmp_path / "m"
    mp.mkdir()
    got = cli("--vault", "crlf", "mount", "--backend", backend, str(mp))
    assert got.code == 0, got.err
    try:
        (mp / "sample").write_bytes(script)
        assert cli("checkpoint", "save", "-m", "Initial", cwd=str(mp)).code == 0
        (mp / "elpmas").write_bytes(script.replace(b"\n", b"\r\n"))
        (mp / "sample").unlink()
        ws = cli("diff", "--name-status", cwd=str(mp))
        assert ws.code == 0, ws.err
        assert ws.out == want  # (the workspace as `git diff --cached` after `git add -A`)
        assert cli("checkpoint", "save", "-m", "Second", cwd=str(mp)).code == 0
        between = cli("diff", "--name-status", "HEAD~1", "HEAD", cwd=str(mp))
        assert between.code == 0, between.err
        assert between.out == want
        in_mount = git_in(mp, "diff-tree", "-M", "-r", "--name-status", "HEAD^", "HEAD")
        assert in_mount.stdout == want
        for rev in ("HEAD^", "HEAD"):
            tree = git_in(mp, "rev-parse", f"{rev}^{{tree}}").stdout
            assert tree == _git(plain / ".git", "rev-parse", f"{rev}^{{tree}}")
    finally:
        cli("--vault", "crlf", "unmount", str(mp))


def test_a_shallow_vault_fetches_a_moved_boundary_as_git_fetch_update_shallow(
    home: Any, cli: Any, tmp_path: Path
) -> None:
    """A vault cloned from a shallow repository (attrs' releases, the source cloned
    ``--depth 1`` at 23.2.0) is shallow, as git's clone is; the source then fetched
    24.2.0 ``--depth 1`` (a new shallow root: 24.1.0 is in neither). `git fetch` in a
    clone of the source refuses the branch with a warning and exits 0 ("shallow roots
    are not allowed to be updated"); with ``--update-shallow`` it takes it. avfs's vault
    is shallow already (its clone took the source's boundary), so its fetch takes it as
    ``--update-shallow`` does: the same remote-tracking ref and ``shallow`` file, `git
    fsck` clean (the fixture's teardown). On main `avfs fetch` said nothing had moved."""
    up = realdata.history("attrs", ["23.2.0", "24.1.0", "24.2.0"], tmp_path / "up", aggressive=False)
    src = tmp_path / "src.git"

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=120).stderr

    git("clone", "-q", "--bare", "--depth", "1", "--branch", "v23.2.0", f"file://{up}", str(src))
    git("--git-dir", str(src), "update-ref", "refs/heads/main", "HEAD")
    git("--git-dir", str(src), "symbolic-ref", "HEAD", "refs/heads/main")
    got = cli("vault", "clone", f"file://{src}", "sh")
    assert got.code == 0, got.err
    vault = Path(home.path) / "vaults" / "sh.git"
    refs_ = {}
    for name in ("plain", "updating"):
        refs_[name] = tmp_path / f"{name}.git"
        git("clone", "-q", "--bare", f"file://{src}", str(refs_[name]))
    assert (vault / "shallow").read_text() == (refs_["plain"] / "shallow").read_text()
    git(
        "--git-dir", str(src), "fetch", "-q", "--depth", "1", "--update-head-ok", f"file://{up}", "+main:main"
    )
    tip = _git(src, "rev-parse", "main").strip()
    spec = "+refs/heads/*:refs/remotes/origin/*"
    said = git("--git-dir", str(refs_["plain"]), "fetch", "origin", spec)
    assert "shallow roots are not allowed to be updated" in said  # (git's default: refused, exit 0)
    git("--git-dir", str(refs_["updating"]), "fetch", "--update-shallow", "origin", spec)
    want = _git(refs_["updating"], "rev-parse", "refs/remotes/origin/main").strip()
    assert want == tip
    got = cli("--json", "--vault", "sh", "fetch")
    assert got.code == 0, got.err
    assert [u["ref"] for u in got.json()["result"]["updates"]] == ["refs/remotes/origin/main"]
    assert _git(vault, "rev-parse", "refs/remotes/origin/main").strip() == tip
    shallow = sorted((vault / "shallow").read_text().split())
    assert shallow == sorted((refs_["updating"] / "shallow").read_text().split()) and len(shallow) == 2
    logged = cli("--json", "--vault", "sh", "log", "origin/main")
    assert logged.code == 0 and [c["id"] for c in logged.json()["commits"]] == [tip]
    # a vault that is not shallow (23.2.0's whole history) fetching from the shallow source:
    # git leaves the branch out with its warning, exit 0; avfs passes the warning on (on
    # main: nothing said), the vault stays whole
    early = tmp_path / "early.git"
    git("init", "-q", "--bare", str(early))
    git("--git-dir", str(early), "fetch", "-q", f"file://{up}", "v23.2.0:refs/heads/main")
    got = cli("vault", "clone", f"file://{early}", "whole")
    assert got.code == 0, got.err
    whole = Path(home.path) / "vaults" / "whole.git"
    assert cli("--vault", "whole", "remote", "add", "sh", f"file://{src}").code == 0
    said = git("--git-dir", str(early), "fetch", f"file://{src}", "+refs/heads/*:refs/remotes/sh/*")
    assert "rejected refs/remotes/sh/main because shallow roots are not allowed" in said
    got = cli("--json", "--vault", "whole", "fetch", "sh")
    assert got.code == 0, got.err
    result = got.json()["result"]
    refused = set(re.findall(r"rejected (\S+) because shallow roots", said))  # (its tag too: followed)
    assert result["updates"] == [] and "refs/remotes/sh/main" in refused, (result, said)
    assert {w.split(" ", 1)[0] for w in result["warnings"]} == refused, result
    assert all(" was not updated: the remote is shallow" in w for w in result["warnings"])
    assert not (whole / "shallow").exists()
    human = cli("--vault", "whole", "fetch", "sh")
    assert human.code == 0 and "refs/remotes/sh/main was not updated" in human.out + human.err


def test_a_merge_s_combined_diff_leaves_out_what_the_fork_hides(t4013: Path, home: Any, cli: Any) -> None:
    """The combined diff is git's, less the paths the fork hides (``[paths] hidden``): a
    path hidden now is hidden in every revision, `show` of a merge included (t4013's
    merge: ``dir/sub`` and ``file0`` both changed on both sides; ``file0`` hidden)."""
    _clone(cli, t4013, "hid")
    whole = _patch(cli("--vault", "hid", "show", "master").out)
    assert "diff --cc dir/sub\n" in whole and "diff --cc file0\n" in whole
    vault = Path(home.path) / "vaults" / "hid.git"
    (vault / "avfs" / "policy.toml").write_text('version = 1\n[paths]\nhidden = ["file0"]\n')
    shown = cli("--vault", "hid", "show", "master")
    assert shown.code == 0, shown.err
    assert _patch(shown.out) == whole[: whole.index("diff --cc file0\n")] != ""


def _tree(git_dir: Path, files: dict[str, str]) -> str:
    """A tree of ``files`` (path -> text) written into ``git_dir`` by git's plumbing, in one
    process a step (an index of its own)."""
    env = {**os.environ, "GIT_INDEX_FILE": str(git_dir / "tidy2-index")}
    blobs: dict[str, str] = {}
    texts = sorted(set(files.values()))
    for text in texts:
        blobs[text] = subprocess.run(
            ["git", "--git-dir", str(git_dir), "hash-object", "-w", "--stdin"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    info = "".join(f"100644 {blobs[t]}\t{p}\n" for p, t in files.items())
    subprocess.run(["git", "--git-dir", str(git_dir), "read-tree", "--empty"], env=env, check=True)
    subprocess.run(
        ["git", "--git-dir", str(git_dir), "update-index", "--index-info"],
        input=info,
        text=True,
        env=env,
        check=True,
    )
    tree = subprocess.run(
        ["git", "--git-dir", str(git_dir), "write-tree"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    os.unlink(env["GIT_INDEX_FILE"])
    return tree


def test_show_of_a_merge_bringing_in_100_000_hidden_files_is_git_s_less_them(
    tmp_path: Path, home: Any, cli: Any
) -> None:
    """`show` of a merge left each hidden path out of git's combined diff by a pathspec of
    its own: a merge that brought in 100,000 hidden files (``*.secret``, beside files the
    fork shows in each of their directories) needed ~3.5 MB of arguments, past ARG_MAX:
    exit 70, "Argument list too long" (tidy2, from the thirty-second round's review). Now
    what is shown is git's own combined diff of the paths the fork shows; a hidden
    ``node_modules`` is one pathspec, and a hidden file the merge changed from both sides
    (whose combined diff git prints) is not in it either."""
    git_dir = tmp_path / "big.git"
    subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True)
    base = {"README": "read me\n", "src/a.txt": "base\n", "node_modules/pkg/index.js": "base\n"}
    ours = {**base, "src/a.txt": "ours\n", "node_modules/pkg/index.js": "ours\n"}
    theirs = {**base, "src/a.txt": "theirs\n", "node_modules/pkg/index.js": "theirs\n"}
    for i in range(100_000):  # a directory a hundred hidden files, and one the fork shows
        theirs[f"d{i // 100}/f{i}.secret"] = "a secret\n"
        theirs[f"d{i // 100}/shown.txt"] = "shown\n"
    theirs["zz/last.secret"] = theirs["zz/shown.txt"] = "theirs\n"
    merged = {
        **theirs,
        "src/a.txt": "merged\n",
        "node_modules/pkg/index.js": "merged\n",
        "d7/shown.txt": "merged\n",
        "zz/last.secret": "merged, hidden\n",  # (past what the pathspecs leave out)
    }
    ids = {}
    for name, files, parents in (("base", base, []), ("ours", ours, ["base"]), ("theirs", theirs, ["base"])):
        argv = [x for p in parents for x in ("-p", ids[p])]
        ids[name] = _git(git_dir, "commit-tree", _tree(git_dir, files), *argv, "-m", name).strip()
    top = _tree(git_dir, merged)
    ids["merge"] = _git(
        git_dir, "commit-tree", top, "-p", ids["ours"], "-p", ids["theirs"], "-m", "merge"
    ).strip()
    _git(git_dir, "update-ref", "refs/heads/main", ids["merge"])
    _git(git_dir, "symbolic-ref", "HEAD", "refs/heads/main")
    _clone(cli, git_dir, "big")
    vault = Path(home.path) / "vaults" / "big.git"
    (vault / "avfs" / "policy.toml").write_text(
        'version = 1\n[paths]\nhidden = ["*.secret", "node_modules/"]\n'
    )
    shown = cli("--vault", "big", "show", "main")
    assert shown.code == 0, shown.err
    # git's own: the combined diff of the paths the fork shows, named one by one
    visible = ["README", "src/a.txt", "zz/shown.txt", *sorted({p for p in theirs if p.endswith("shown.txt")})]
    want = _git(vault, "diff-tree", "--cc", "-p", "--no-commit-id", ids["merge"], "--", *visible)
    assert "diff --cc src/a.txt\n" in want and "diff --cc d7/shown.txt\n" in want
    assert _patch(shown.out) == want
    whole = _git(vault, "diff-tree", "--cc", "-p", "--no-commit-id", ids["merge"])
    assert "diff --cc zz/last.secret\n" in whole and "diff --cc node_modules/pkg/index.js\n" in whole
