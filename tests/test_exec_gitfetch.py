"""`git fetch`, `git pull` and `git rebase origin/main` inside a confined `proxy exec`, and
`git fetch` by the person in a mount (docs/proxy.md "git in the sandbox", proxy/sealremotes.py).

Every test runs real git against a real server: a `git daemon` on 127.0.0.1 (the fixture of
tests/test_remotes.py) or a local `file://` repository, through a real mount and a real
confined `proxy exec` (the CLI). The adversarial ones check, after the command, that no ref
of the vault but what the rules keep moved and that the vault took no object (the conftest's
teardown runs `git fsck --strict` on every vault)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import remote
from avfs_git.core.settings import Settings
from avfs_git.proxy import sealremotes

from .test_adv_gitseal import _exec, _git
from .test_adv_gitseal import live as live  # the fixture: the mounted fork, both backends
from .test_remotes import git_daemon as git_daemon  # the fixture: a `git daemon` on 127.0.0.1
from .test_remotes import http_git as http_git  # the fixture: `git http-backend` behind Basic auth


def _upstream_commit(bare: Path, tmp_path: Path, name: str, data: bytes, msg: str) -> str:
    """A commit made by someone else on the server's ``main``: returns its id."""
    clone = tmp_path / f"clone-{name.replace('/', '-')}"
    if not clone.exists():
        _git("clone", "-q", str(bare), str(clone))
    _git("pull", "-q", "--ff-only", cwd=clone, check=False)
    (clone / name).parent.mkdir(parents=True, exist_ok=True)
    (clone / name).write_bytes(data)
    _git("add", name, cwd=clone)
    _git("-c", "user.name=U", "-c", "user.email=u@x", "commit", "-qm", msg, cwd=clone)
    _git("push", "-q", "origin", "HEAD:main", cwd=clone)
    return _git("rev-parse", "HEAD", cwd=clone).strip()


def _published(vault: Any, url: str) -> None:
    """The vault's main pushed to the server as its ``main``, the server its ``origin``."""
    remote.add(vault, "origin", url)
    remote.push(vault, "origin", ["main"])


def _all_refs(vault: Any) -> dict[str, str]:
    out = _git("--git-dir", vault.path, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ", 1) for line in out.splitlines())


def _objects(vault: Any) -> set[str]:
    """Every object id the vault holds (loose and packed)."""
    out = _git("--git-dir", vault.path, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    return set(out.split())


def _avfs_json(*args: str) -> dict[str, Any]:
    """``avfs --vault v:main --json ARGS`` as the person runs it: its one JSON document."""
    r = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--vault", "v:main", "--json", *args],
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def _person_commit(mp: str, name: str, text: str) -> str:
    with open(os.path.join(mp, name), "w") as fh:
        fh.write(text)
    _git("add", name, cwd=mp)
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qm", f"mine: {name}", cwd=mp)
    return _git("rev-parse", "HEAD", cwd=mp).strip()


def test_fetch_and_rebase_in_proxy_exec_then_the_person_s_git_and_avfs_log(live, vault, git_daemon, tmp_path):
    url, served = git_daemon
    _published(vault, url)
    up = _upstream_commit(served, tmp_path, "upstream.txt", b"from upstream\n", "upstream work")
    mp = live.mountpoint
    mine = _person_commit(mp, "mine.txt", "the fork's own\n")
    seen = _all_refs(vault)["refs/remotes/origin/main"]  # (the push moved it)
    other, tags = _all_refs(vault)["refs/heads/other"], _git("--git-dir", vault.path, "tag", "-l")
    doc = _exec("sh", "-c", "git fetch origin && git rebase origin/main")
    assert doc["exit_code"] == 0, doc["result"]
    assert doc["decision"]["categories"] == ["mutating", "networked"], doc["decision"]
    assert doc["refs_fetched"] == [{"ref": "refs/remotes/origin/main", "old": seen, "new": up}], doc
    assert doc["refs_refused"] == [], doc["refs_refused"]
    refs_now = _all_refs(vault)
    assert refs_now["refs/remotes/origin/main"] == up
    # the fork's branch: its own commit, rebased on what was fetched
    tip = refs_now["refs/heads/main"]
    assert tip != mine and _git("--git-dir", vault.path, "rev-parse", "main^").strip() == up
    assert refs_now["refs/heads/other"] == other and _git("--git-dir", vault.path, "tag", "-l") == tags
    # the person's git in the mount sees it all, as in a clone
    assert _git("rev-parse", "origin/main", cwd=mp).strip() == up
    assert _git("rev-parse", "HEAD", cwd=mp).strip() == tip
    assert _git("status", "--porcelain", cwd=mp).strip() == ""
    assert (Path(mp) / "upstream.txt").read_text() == "from upstream\n"
    assert "mine: mine.txt" in _git("log", "--format=%s", "origin/main..HEAD", cwd=mp)
    log = _avfs_json("log")
    ids = [c["id"] for c in log["commits"]]
    assert ids[:2] == [tip, up], ids
    # a second fetch with nothing new moves nothing and keeps nothing
    again = _exec("git", "fetch", "origin")
    assert again["exit_code"] == 0 and again["refs_fetched"] == [] and again["refs_refused"] == []
    # the human summary says what was fetched
    up2 = _upstream_commit(served, tmp_path, "upstream.txt", b"again\n", "more upstream work")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "avfs_git",
            "--vault",
            "v:main",
            "proxy",
            "exec",
            "--",
            "git",
            "fetch",
            "-q",
            "origin",
        ],
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0 and b"1 remote-tracking ref(s) fetched" in r.stderr, r.stderr
    assert _all_refs(vault)["refs/remotes/origin/main"] == up2


@pytest.mark.parametrize("form", ["file-url", "path"])
def test_git_pull_from_a_local_remote(live, vault, tmp_path, form):
    """A remote of a local path (`file://` URL or a plain path) is shown read-only to the
    sandbox that has a network (it was not there: "does not appear to be a git repository")."""
    bare = tmp_path / "up.git"
    _git("init", "-q", "--bare", str(bare))
    _published(vault, f"file://{bare}" if form == "file-url" else str(bare))
    up = _upstream_commit(bare, tmp_path, "lib/new.py", b"y = 2\n", "upstream lib")
    seen = _all_refs(vault)["refs/remotes/origin/main"]
    doc = _exec("git", "pull", "--rebase", "origin", "main")
    assert doc["exit_code"] == 0, doc["result"]
    assert doc["refs_fetched"] == [{"ref": "refs/remotes/origin/main", "old": seen, "new": up}], doc
    assert _all_refs(vault)["refs/remotes/origin/main"] == up
    assert _git("--git-dir", vault.path, "rev-parse", "main").strip() == up  # a fast-forward
    assert vault.workspace("main").read("lib/new.py") == b"y = 2\n"


def test_in_a_mount_the_person_s_fetch_and_rebase_are_kept_by_the_next_checkpoint(
    live, vault, git_daemon, tmp_path
):
    url, served = git_daemon
    _published(vault, url)
    up = _upstream_commit(served, tmp_path, "upstream.txt", b"u\n", "upstream work")
    mp = live.mountpoint
    _git("fetch", "origin", cwd=mp)
    _git("-c", "user.name=P", "-c", "user.email=p@x", "rebase", "origin/main", cwd=mp)
    with open(os.path.join(mp, "after.txt"), "w") as fh:
        fh.write("written after the rebase\n")
    cp = _avfs_json("checkpoint", "save", "-m", "after")["checkpoint"]["commit"]
    assert _git("--git-dir", vault.path, "rev-parse", "main").strip() == cp
    assert _git("--git-dir", vault.path, "rev-parse", "main^").strip() == up
    assert _all_refs(vault)["refs/remotes/origin/main"] == up
    assert vault.workspace("main").read("upstream.txt") == b"u\n"


def _refused(doc: dict[str, Any]) -> dict[str, str]:
    return {r["ref"]: r["reason"] for r in doc["refs_refused"]}


def test_a_hostile_fetch_moves_no_other_fork_plants_no_remote_ref_and_brings_no_object(
    live, vault, git_daemon, tmp_path
):
    url, served = git_daemon
    _published(vault, url)
    up = _upstream_commit(served, tmp_path, "upstream.txt", b"u\n", "upstream work")
    _git("--git-dir", str(served), "branch", "side", up)  # the server has a branch `side` too
    before, objects = _all_refs(vault), _objects(vault)
    # (the forged ref last: a fetch of main also moves origin/main, git's opportunistic update)
    script = f"""set -x
git fetch origin +refs/heads/main:refs/heads/other
git fetch origin +refs/heads/main:refs/remotes/origin/side2
git fetch origin +refs/heads/main:refs/remotes/evil/main
git fetch {url} +refs/heads/side:refs/remotes/origin/side
git symbolic-ref refs/remotes/origin/HEAD refs/heads/other
F=$(git -c user.name=E -c user.email=e@x commit-tree -m forged HEAD^{{tree}})
git update-ref refs/remotes/origin/main $F
exit 0
"""
    doc = _exec("sh", "-c", script)  # (no file written: the exec makes no commit)
    assert doc["exit_code"] == 0, doc["result"]
    refused = _refused(doc)
    # a forged remote-tracking ref: the remote names another commit
    assert "keeps what the remote says" in refused["refs/remotes/origin/main"], refused
    # a fetch into another fork's branch: never applied
    assert "only the fork's own branch" in refused["refs/heads/other"], refused
    # a branch the remote does not have, under the remote's name
    assert "has no branch side2" in refused["refs/remotes/origin/side2"], refused
    # a remote the vault does not have
    assert "has no remote 'evil'" in refused["refs/remotes/evil/main"], refused
    # a symbolic ref
    assert "symbolic" in refused["refs/remotes/origin/HEAD"], refused
    # what the server does hold, at the right name, is kept (the command had a network)
    assert doc["refs_fetched"] == [{"ref": "refs/remotes/origin/side", "old": None, "new": up}], doc
    after = _all_refs(vault)
    assert after.pop("refs/remotes/origin/side") == up
    assert after == before
    # the forged commit never reached the vault; the upstream one's objects did, with its ref
    brought = _git("--git-dir", str(served), "rev-list", "--objects", up, "--not", before["refs/heads/main"])
    assert _objects(vault) - objects == {line.split(" ")[0] for line in brought.splitlines()}


def test_without_a_network_a_remote_tracking_ref_is_not_kept_even_when_right(
    live, vault, git_daemon, tmp_path
):
    url, served = git_daemon
    _published(vault, url)
    _git("--git-dir", str(served), "branch", "side", "main")  # a commit the vault has
    before, objects = _all_refs(vault), _objects(vault)
    # no network client: the sandbox has no network, and the vault's remote-tracking refs
    # are the vault's own there, read-only
    doc = _exec("sh", "-c", "git update-ref refs/remotes/origin/side HEAD || echo REFUSED")
    assert doc["confinement"]["network"] == "none"
    assert "REFUSED" in doc["result"]["stdout"], doc["result"]
    assert doc["refs_fetched"] == [] and doc["refs_refused"] == []
    assert _all_refs(vault) == before and _objects(vault) == objects
    # what reaches the carry-back all the same from a run with no network (a line of the
    # sandbox's packed-refs, its own file) is refused whatever its value
    od = tmp_path / "quarantine"
    od.mkdir()
    side = ("refs/remotes/origin/side", None, (before["refs/heads/main"] + "\n").encode())
    kept, refused = sealremotes.carry(vault, str(od), [side], "none")
    assert kept == [] and "no network" in refused[0]["reason"], refused
    kept, refused = sealremotes.carry(vault, str(od), [side], "host")  # (with one: kept)
    assert kept == [{"ref": side[0], "old": None, "new": before["refs/heads/main"]}], refused
    assert _all_refs(vault) == {**before, side[0]: before["refs/heads/main"]}


def test_a_fetch_past_the_vault_s_quota_is_not_kept(live, vault, git_daemon, tmp_path):
    url, served = git_daemon
    _published(vault, url)
    _upstream_commit(served, tmp_path, "big.bin", os.urandom(3 << 20), "3 MiB that do not compress")
    use = vault.quota.recount()
    vault.set_quota(max_bytes=use.used_bytes + (1 << 20))
    before, objects = _all_refs(vault), _objects(vault)
    doc = _exec("git", "fetch", "origin")
    assert doc["exit_code"] == 0, doc["result"]  # git's fetch worked, in the sandbox
    assert doc["refs_fetched"] == []
    assert "past its quota" in _refused(doc)["refs/remotes/origin/main"], doc["refs_refused"]
    assert _all_refs(vault) == before and _objects(vault) == objects
    # the next run starts from the vault's refs: nothing of the refused fetch is left
    assert _exec("git", "rev-parse", "--verify", "-q", "origin/main")["result"][
        "stdout"
    ].strip() == before.get("refs/remotes/origin/main", "")


@pytest.mark.parametrize("n", [1100])
def test_more_remote_tracking_refs_than_the_bound_keeps_none(live, vault, git_daemon, tmp_path, n):
    url, _served = git_daemon
    _published(vault, url)
    before = _all_refs(vault)
    # a network for it: `git fetch` in the same command
    make = (
        f'for i in $(seq {n}); do echo "create refs/remotes/origin/b$i HEAD"; done | git update-ref --stdin'
    )
    doc = _exec("sh", "-c", f"git fetch origin; {make}")
    assert doc["exit_code"] == 0, doc["result"]
    assert doc["refs_fetched"] == []
    assert any("none kept" in r["reason"] for r in doc["refs_refused"]), doc["refs_refused"][:3]
    assert len(doc["refs_refused"]) <= 101
    assert _all_refs(vault) == before


@pytest.fixture
def http_token(http_git, monkeypatch, vault):
    """The HTTP server of tests/test_remotes.py (Basic auth), with its password as
    ``AVFS_GIT_TOKEN`` in the environment and the home's settings, as a front end reads
    them, before the mount's daemon starts (it is started with the home's): what ``avfs
    fetch`` uses, and the host-side check of a confined fetch too."""
    url, served, password = http_git
    monkeypatch.setenv("AVFS_GIT_USERNAME", "agent")
    monkeypatch.setenv("AVFS_GIT_TOKEN", password)
    vault.home.settings = Settings.from_environ(None, vault.home.path)
    return url, served, password


def test_a_remote_that_needs_credentials_is_checked_with_avfs_s_and_none_reaches_the_vault(
    http_token, live, vault, tmp_path
):
    url, served, password = http_token
    authed = url.replace("http://", f"http://agent:{password}@")
    remote.add(vault, "origin", url)  # (stored without credentials)
    _git("--git-dir", vault.path, "push", "-q", authed, "main")
    up = _upstream_commit(served, tmp_path, "upstream.txt", b"u\n", "upstream work")
    _git("-C", str(tmp_path / "clone-upstream.txt"), "remote", "set-url", "origin", "/nonexistent")
    before = _all_refs(vault)
    # the sandbox has no credentials: git cannot fetch (never a prompt), nothing is kept
    doc = _exec("git", "fetch", "origin")
    assert doc["exit_code"] != 0 and doc["refs_fetched"] == [], doc["result"]
    assert _all_refs(vault) == before
    # the command's own, on its command line: fetched; the host's check asks with avfs's
    # (git writes a pull's arguments into its reflog lines as given, the URL's secret too)
    doc = _exec(
        "sh", "-c", f"git fetch {authed} +refs/heads/main:refs/remotes/origin/main && git pull {authed} main"
    )
    assert doc["exit_code"] == 0, doc["result"]
    assert _git("--git-dir", vault.path, "rev-parse", "main").strip() == up  # (a fast-forward)
    assert doc["refs_fetched"] == [{"ref": "refs/remotes/origin/main", "old": None, "new": up}], doc[
        "refs_refused"
    ]
    # and the secret is in no file of the vault (its git dir and avfs's state in it)
    found = []
    for dirpath, _dirs, files in os.walk(vault.path):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as fh:
                    if password.encode() in fh.read():
                        found.append(p)
    assert found == []
    # (objects are compressed: every commit's message and every reflog read through git)
    said = _git("--git-dir", vault.path, "log", "--all", "--format=%B", "-g", "--no-abbrev")
    said += _git("--git-dir", vault.path, "log", "--all", "--format=%B")
    assert password not in said


def test_a_fetch_head_the_command_writes_names_only_what_the_remote_said(live, vault, git_daemon, tmp_path):
    """Found in the fifteenth round (NAME=attack6): the worktree's ``FETCH_HEAD`` stayed as
    the command left it, and it could name any commit the vault holds as the remote's
    branch: the command's own (carried back on the fork's branch) or another fork's, as
    "branch 'main' of <the remote's URL>". The person's `git log FETCH_HEAD` showed it as
    upstream's, and their `git merge FETCH_HEAD` merged it as "Merge branch 'main' of ...":
    the deception a remote-tracking ref is checked against (docs/security.md). Now one the
    run changed stays only when every id it names is one of the vault's remote-tracking
    refs after the carry-back (each of which the remote itself named); else it is removed,
    and said. A real `git fetch` in the sandbox keeps its own."""
    url, served = git_daemon
    _published(vault, url)
    up = _upstream_commit(served, tmp_path, "upstream.txt", b"u\n", "upstream work")
    mp = live.mountpoint
    other = _all_refs(vault)["refs/heads/other"]
    script = (
        'F="$(git rev-parse --git-path FETCH_HEAD)"\n'
        "echo planted > planted.txt && git add planted.txt\n"
        "git -c user.name=U -c user.email=u@x commit -qm 'upstream: security fix' && echo COMMITTED\n"
        f'printf \'%s\\t\\tbranch %s of {url}\\n\' "$(git rev-parse HEAD)" "\'main\'" > "$F"\n'
        f"printf '%s\\tnot-for-merge\\tbranch %s of {url}\\n' {other} \"'side'\" >> \"$F\"\n"
    )
    with open(os.path.join(mp, "plant.sh"), "w") as fh:
        fh.write(script)
    doc = _exec("sh", "plant.sh")
    assert "COMMITTED" in doc["result"]["stdout"], doc
    assert doc["confinement"]["network"] == "none"
    assert "FETCH_HEAD" in _refused(doc), doc["refs_refused"]
    # the person's git: no FETCH_HEAD to take for upstream's
    r = subprocess.run(["git", "rev-parse", "-q", "--verify", "FETCH_HEAD"], cwd=mp, capture_output=True)
    assert r.returncode != 0, r.stdout
    # a real fetch in the sandbox: its FETCH_HEAD is the remote's, and stays
    doc = _exec("git", "fetch", "origin")
    assert doc["exit_code"] == 0 and "FETCH_HEAD" not in _refused(doc), doc
    assert _git("rev-parse", "FETCH_HEAD", cwd=mp).strip() == up


@pytest.mark.parametrize(
    "text",
    [
        "branch 'main\033]0;owned\007\033[2J' of {url}",  # a terminal's title set, the screen cleared
        "branch 'side' of {url}",  # another branch's name for origin/main's id
        "branch 'main' of git://elsewhere.example/x",  # another URL than the remote's
    ],
    ids=["escapes", "another-branch", "another-url"],
)
def test_a_fetch_head_s_text_is_what_the_remote_s_fetch_writes(live, vault, git_daemon, tmp_path, text):
    """The sixteenth round (NAME=attack7): a ``FETCH_HEAD`` a command with no network wrote
    stayed when each id it named was a remote-tracking ref's, whatever its text: the
    person's `git merge FETCH_HEAD` made that text the merge commit's message ("Merge branch
    '...' of ..."), which their `git log` prints as it is (terminal escapes: a title set,
    the screen cleared), or named another branch or URL than the fetch's. Now each line's
    text must be what git's fetch of a remote of the vault writes for that id: the
    remote's URL, and a branch name whose remote-tracking ref holds the id."""
    url, served = git_daemon
    _published(vault, url)
    up = _upstream_commit(served, tmp_path, "upstream.txt", b"u\n", "upstream work")
    mp = live.mountpoint
    doc = _exec("git", "fetch", "origin")  # a real fetch: origin/main is upstream's
    assert doc["exit_code"] == 0 and _all_refs(vault)["refs/remotes/origin/main"] == up, doc
    line = f"{up}\t\t{text.format(url=url)}\n"
    with open(os.path.join(mp, "plant.py"), "w") as fh:
        fh.write(f"import subprocess\nF = subprocess.check_output(['git', 'rev-parse', '--git-path', 'FETCH_HEAD'], text=True).strip()\nopen(F, 'w').write({line!r})\n")  # fmt: skip
    doc = _exec("python3", "plant.py")
    assert doc["exit_code"] == 0 and doc["confinement"]["network"] == "none", doc
    # (and nothing else: the fetch's copies of the remote-tracking refs, left in the scratch
    # beneath the vault's read-only refs/remotes, were listed as new refs no fetch moved)
    assert list(_refused(doc)) == ["FETCH_HEAD"], doc["refs_refused"]
    r = subprocess.run(["git", "rev-parse", "-q", "--verify", "FETCH_HEAD"], cwd=mp, capture_output=True)
    assert r.returncode != 0, r.stdout
    # the person's own fetch and merge: the remote's text
    _git("fetch", "origin", "main", cwd=mp)
    _git("-c", "user.name=P", "-c", "user.email=p@x", "merge", "--no-ff", "--no-edit", "FETCH_HEAD", cwd=mp)
    said = _git("log", "-1", "--format=%B", cwd=mp)
    assert "\033" not in said and "\007" not in said and said.startswith("Merge branch 'main' of "), said
