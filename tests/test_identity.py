"""Commit identity follows git's order: GIT_* environment, then config, then avfs' default.

Checkpoints, merges, exec commits (in process and served by a mount's daemon) and a
`git commit` made inside the mount must all record the same author and committer as git.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avfs_git.core.errors import UsageError
from avfs_git.core.store import identity
from avfs_git.core.store.gitstore import GitStore
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE

from .test_fuse import require_fuse

ENV = {
    "GIT_AUTHOR_NAME": "Ann Author",
    "GIT_AUTHOR_EMAIL": "ann@author.invalid",
    "GIT_AUTHOR_DATE": "@1700000000 +0200",
    "GIT_COMMITTER_NAME": "Cid Committer",
    "GIT_COMMITTER_EMAIL": "cid@committer.invalid",
    "GIT_COMMITTER_DATE": "2024-01-02T03:04:05-05:30",
}
FMT = "%an|%ae|%ad|%cn|%ce|%cd"
EXPECTED = (
    "Ann Author|ann@author.invalid|1700000000 +0200|Cid Committer|cid@committer.invalid|1704184445 -0530"
)


def _avfs(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )
    assert proc.returncode == 0, f"avfs {args}: {proc.stdout}{proc.stderr}"
    return proc


def _log(git_dir: str, *revs: str) -> list[str]:
    out = subprocess.run(
        ["git", "--git-dir", git_dir, "log", f"--format={FMT}", "--date=raw", *revs],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()


def test_every_commit_takes_the_environment_like_git(tmp_path, monkeypatch):
    require_fuse()
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    home = os.environ["AVFS_HOME"]
    vault = os.path.join(home, "vaults", "v.git")
    _avfs("vault", "create", "v")
    # a checkpoint
    _avfs("--vault", "v", "write", "a.txt", "a\n")
    _avfs("--vault", "v", "checkpoint", "save", "-m", "cp")
    # a merge commit (both sides changed)
    _avfs("--vault", "v", "vault", "fork", "b")
    _avfs("--vault", "v:b", "write", "b.txt", "b\n")
    _avfs("--vault", "v:b", "checkpoint", "save")
    _avfs("--vault", "v:main", "write", "m.txt", "m\n")
    _avfs("--vault", "v:main", "checkpoint", "save")
    doc = json.loads(_avfs("--json", "--vault", "v:main", "merge", "b").stdout)
    assert doc["results"][0]["status"] == "merged", doc
    # an exec commit made in this process (materialized: no mount involved)
    doc = json.loads(
        _avfs("--json", "--vault", "v:main", "proxy", "exec", "--mode", "materialized", "--",
              "sh", "-c", "echo x > x.txt").stdout
    )  # fmt: skip
    assert doc["commit"], doc
    mp = tmp_path / "mnt"
    mp.mkdir()
    _avfs("mount", "v:main", str(mp))
    try:
        # an exec commit made by the mount's daemon for this client: the client's identity
        doc = json.loads(
            _avfs("--json", "--vault", "v:main", "proxy", "exec", "--", "sh", "-c", "echo y > y.txt").stdout
        )
        assert doc["mount"]["reused"] and doc["commit"], doc
        # git inside the command it ran sees the same people
        doc = json.loads(
            _avfs("--json", "--vault", "v:main", "proxy", "exec", "--", "sh", "-c",
                  "echo z > z.txt && git add z.txt && git commit -qm 'git in exec'").stdout
        )  # fmt: skip
        assert doc["exit_code"] == 0, doc
        # a `git commit` in the mount
        (mp / "g.txt").write_text("g\n")
        subprocess.run(["git", "add", "g.txt"], cwd=mp, check=True)
        subprocess.run(["git", "commit", "-qm", "git in the mount"], cwd=mp, check=True)
        _avfs("--vault", "v:main", "checkpoint", "save")
    finally:
        _avfs("unmount", "v:main")
    lines = _log(vault, "main")
    subjects = subprocess.run(
        ["git", "--git-dir", vault, "log", "--format=%s", "main"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert "git in the mount" in subjects and "git in exec" in subjects
    assert any(s.startswith("avfs proxy exec") for s in subjects)
    assert any(s.startswith("Merge") or "merge" in s.lower() for s in subjects), subjects
    assert len(lines) >= 8
    assert set(lines) == {EXPECTED}, "\n".join(
        f"{s}: {line}" for s, line in zip(subjects, lines, strict=True)
    )


def _commit_tree(git_dir: str) -> str:
    """Who `git commit-tree` in this vault says a new commit is by (git's own resolution)."""
    proc = subprocess.run(
        ["git", "--git-dir", git_dir, "commit-tree", "4b825dc642cb6eb9a060e54bf8d69288fbee4904", "-m", "x"],
        capture_output=True,
        text=True,
        check=True,
    )
    return _log(git_dir, "-1", proc.stdout.strip())[0]


def _who(line: str) -> tuple[str, ...]:
    an, ae, _ad, cn, ce, _cd = line.split("|")
    return an, ae, cn, ce


@pytest.mark.parametrize(
    ("env", "vault_config"),
    [
        ({}, {}),
        ({}, {"user.name": "Vault User", "user.email": "vault@user.invalid"}),
        ({}, {"committer.name": "Vault Committer"}),
        ({}, {"author.email": "vault-author@x.invalid", "user.name": "Vault User"}),
        ({"GIT_COMMITTER_NAME": "Env Committer"}, {"user.name": "Vault User"}),
        (
            {"GIT_AUTHOR_EMAIL": "env@a.invalid", "GIT_COMMITTER_EMAIL": ""},
            {"committer.email": "vc@x.invalid"},
        ),
    ],
)
def test_config_order_agrees_with_git(cli_proc, monkeypatch, env, vault_config):
    """Without or with part of the environment, the vault's config before the global one,
    author.*/committer.* before user.*: the same people as `git commit-tree` in the vault."""
    for k in identity._ENV.values():
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    r = cli_proc("vault", "create", "v")
    assert r.code == 0, r.err
    vault = os.path.join(os.environ["AVFS_HOME"], "vaults", "v.git")
    for k, v in vault_config.items():
        subprocess.run(["git", "--git-dir", vault, "config", k, v], check=True)
    assert cli_proc("--vault", "v", "write", "a.txt", "a").code == 0
    r = cli_proc("--vault", "v", "checkpoint", "save")
    assert r.code == 0, r.err
    assert _who(_log(vault, "-1", "main")[0]) == _who(_commit_tree(vault))


def test_default_when_nothing_is_configured(tmp_path, monkeypatch):
    """No environment, no config: avfs' default (where git would refuse to guess), or the
    home's own `identity`."""
    for k in identity._ENV.values():
        monkeypatch.delenv(k, raising=False)
    (Path(os.environ["HOME"]) / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    home = Home(str(tmp_path / "h"), identity=identity.from_environ(), mounts=MOUNT_SIDE)
    v = home.create_vault("v")
    sig = v.author()
    assert (sig.author.name, sig.author.email) == identity.DEFAULT
    home.set_config(identity={"name": "Home Person", "email": "home@p.invalid"})
    home2 = Home(str(tmp_path / "h"), identity=identity.from_environ(), mounts=MOUNT_SIDE)
    sig = home2.vault("v").author()
    assert (sig.committer.name, sig.committer.email) == ("Home Person", "home@p.invalid")
    home.close()
    home2.close()


DATES = [
    "@1700000000 +0000",
    "@1700000000 -0730",
    "1700000000 +0100",
    "Thu, 07 Apr 2005 22:13:13 +0200",
    "Mon, 3 Jul 2006 17:18:43 -0400",
    "2005-04-07T22:13:13+02:00",
    "2005-04-07T22:13:13Z",
    "2005-04-07 22:13:13 +0200",
    "2024-02-29T23:59:59-11:00",
]


def _git_date(tmp_path: Path, value: str) -> str:
    git_dir = str(tmp_path / "dates.git")
    if not os.path.isdir(git_dir):
        subprocess.run(["git", "init", "-q", "--bare", git_dir], check=True)
    env = dict(os.environ, GIT_AUTHOR_DATE=value, TZ="UTC")
    proc = subprocess.run(
        ["git", "--git-dir", git_dir, "commit-tree", "4b825dc642cb6eb9a060e54bf8d69288fbee4904", "-m", "d"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    raw = subprocess.run(
        ["git", "--git-dir", git_dir, "cat-file", "commit", proc.stdout.strip()],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    author = next(line for line in raw.splitlines() if line.startswith("author "))
    return " ".join(author.split()[-2:])


def _ours(value: str) -> str:
    when, off = identity.parse_date(value)
    return identity.Person("n", "e", when, off).line().split("> ", 1)[1]


@pytest.mark.parametrize("value", DATES)
def test_dates_agree_with_git(tmp_path, value):
    assert _ours(value) == _git_date(tmp_path, value)


@settings(max_examples=40, deadline=None)
@given(
    ts=st.integers(min_value=100_000_000, max_value=4_000_000_000),
    off=st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: m - m % 15),
    form=st.sampled_from(["raw", "at", "iso"]),
)
def test_generated_dates_agree_with_git(tmp_path_factory, ts, off, form):
    sign = "-" if off < 0 else "+"
    tz = f"{sign}{abs(off) // 60:02d}{abs(off) % 60:02d}"
    if form == "raw":
        value = f"{ts} {tz}"
    elif form == "at":
        value = f"@{ts} {tz}"
    else:
        import datetime

        d = datetime.datetime.fromtimestamp(ts, datetime.timezone(datetime.timedelta(minutes=off)))
        value = d.isoformat()
    assert _ours(value) == _git_date(tmp_path_factory.mktemp("d"), value)


def test_a_date_git_refuses_is_a_usage_error(cli_proc, monkeypatch):
    assert cli_proc("vault", "create", "v").code == 0
    assert cli_proc("--vault", "v", "write", "a.txt", "a").code == 0
    vault = os.path.join(os.environ["AVFS_HOME"], "vaults", "v.git")
    before = subprocess.run(["git", "--git-dir", vault, "rev-parse", "main"], capture_output=True, text=True)
    monkeypatch.setenv("GIT_AUTHOR_DATE", "not a date")
    r = cli_proc("--json", "--vault", "v", "checkpoint", "save")
    assert r.code == 2 and r.json()["error"]["code"] == "usage", r.out
    after = subprocess.run(["git", "--git-dir", vault, "rev-parse", "main"], capture_output=True, text=True)
    assert before.stdout == after.stdout
    with pytest.raises(UsageError):
        identity.parse_date("yesterday-ish")


def test_store_signature_reads_the_vaults_config(tmp_path):
    git_dir = str(tmp_path / "r.git")
    subprocess.run(["git", "init", "-q", "--bare", git_dir], check=True)
    subprocess.run(["git", "--git-dir", git_dir, "config", "user.name", "Cfg"], check=True)
    store = GitStore(git_dir)
    sig = store.signature(identity.Identity(committer_name="Env"))
    assert sig.author.name == "Cfg" and sig.committer.name == "Env"
    store.close()


# -- the identity through git and through libgit2 ---------------------------------------------
# GitStore reads the identity's config through libgit2 when the process has loaded it (an API
# caller, the mount daemon), else through `git config` (the CLI: no pygit2 import). Both are
# compared here with git's own answer (`git commit-tree` in the vault). Where libgit2 differs,
# git's answer is the right one: the vault is a git repository, and a `git commit` in the
# mount reads its config the way git does.
_INIT = "[init]\n\tdefaultBranch = main\n"
IDENTITY_CASES: list[tuple[str, dict[str, str], dict[str, str]]] = [
    # (case, files (vault: the vault's config, added; ~: relative to HOME), environment)
    ("vault config", {"vault": "[user]\n\tname = Vault U\n\temail = v@u.invalid\n"}, {}),
    ("~/.gitconfig", {"~/.gitconfig": _INIT + "[user]\n\tname = Global U\n\temail = g@u.invalid\n"}, {}),
    ("xdg", {"~/.config/git/config": "[user]\n\tname = Xdg U\n\temail = x@u.invalid\n"}, {}),
    (
        "~/.gitconfig over xdg",
        {
            "~/.config/git/config": "[user]\n\tname = Xdg U\n\temail = x@u.invalid\n",
            "~/.gitconfig": _INIT + "[user]\n\tname = Global U\n",
        },
        {},
    ),
    ("vault over global", {"vault": "[user]\n\temail = v@u.invalid\n", "~/.gitconfig": "[user]\n\tname = G\n\temail = g@x\n"}, {}),
    # (included paths relative to the including file: libgit2 expands "~/" with the HOME the
    # process started with, and this test changes HOME after that)
    (
        "include.path",
        {"~/.gitconfig": _INIT + "[include]\n\tpath = more.cfg\n", "~/more.cfg": "[user]\n\tname = Inc U\n\temail = i@u.invalid\n"},
        {},
    ),
    (
        "includeIf gitdir, the vaults' directory",
        {"~/.gitconfig": _INIT + '[includeIf "gitdir:VAULTS/"]\n\tpath = vault.cfg\n', "~/vault.cfg": "[user]\n\tname = IfU\n\temail = if@u.invalid\n"},
        {},
    ),
    (
        "includeIf gitdir, the vault",
        {"~/.gitconfig": _INIT + '[includeIf "gitdir:VAULTS/v.git"]\n\tpath = vault.cfg\n', "~/vault.cfg": "[user]\n\tname = IfU\n\temail = if@u.invalid\n"},
        {},
    ),
    (
        "includeIf not matching",
        {"~/.gitconfig": _INIT + '[user]\n\tname = G\n\temail = g@x\n[includeIf "gitdir:/elsewhere/"]\n\tpath = vault.cfg\n', "~/vault.cfg": "[user]\n\tname = IfU\n"},
        {},
    ),
    ("author.* over user.*", {"vault": "[user]\n\tname = U\n\temail = u@x\n[author]\n\tname = A\n[committer]\n\temail = c@x\n"}, {}),
    ("last value wins", {"vault": "[user]\n\tname = First\n\tname = Last\n\temail = e@x\n"}, {}),
    (
        "environment",
        {"vault": "[user]\n\tname = Vault U\n\temail = v@u.invalid\n"},
        {"GIT_AUTHOR_NAME": "Env A", "GIT_AUTHOR_EMAIL": "a@env.invalid", "GIT_COMMITTER_NAME": "Env C", "GIT_COMMITTER_EMAIL": "c@env.invalid"},
    ),
    ("none", {"~/.gitconfig": _INIT}, {}),
    # libgit2 reads neither of these: git's answer is the right one
    ("GIT_CONFIG_GLOBAL", {"~/other.cfg": "[user]\n\tname = Other\n\temail = o@u.invalid\n"}, {"GIT_CONFIG_GLOBAL": "~/other.cfg"}),
    ("git -c", {}, {"GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "user.name", "GIT_CONFIG_VALUE_0": "Dash C",
                    "GIT_CONFIG_KEY_1": "user.email", "GIT_CONFIG_VALUE_1": "c@dash.invalid"}),
]  # fmt: skip
LIBGIT2_DIFFERS = {"GIT_CONFIG_GLOBAL", "git -c"}


@pytest.mark.parametrize(("case", "files", "env"), IDENTITY_CASES, ids=[c[0] for c in IDENTITY_CASES])
def test_identity_through_git_and_libgit2(tmp_path, monkeypatch, case, files, env):
    from avfs_git.core.store import gitwrite

    for k in identity._ENV.values():
        monkeypatch.delenv(k, raising=False)
    user_home = Path(os.environ["HOME"])
    vault = str(tmp_path / "v.git")
    subprocess.run(["git", "init", "-q", "--bare", vault], check=True)
    (user_home / ".gitconfig").write_text(_INIT)
    for name, text in files.items():
        text = text.replace("VAULTS", str(tmp_path))
        if name == "vault":
            with open(os.path.join(vault, "config"), "a") as fh:
                fh.write(text)
        else:
            path = user_home / name.removeprefix("~/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for k, v in env.items():
        monkeypatch.setenv(k, v.replace("~", str(user_home)))

    def who(libgit2: bool) -> tuple[str, ...]:
        monkeypatch.setattr(gitwrite, "libgit2_loaded", lambda: libgit2)
        store = GitStore(vault)  # (its cache is its own)
        try:
            sig = store.signature(identity.from_environ())
        finally:
            store.close()
        return sig.author.name, sig.author.email, sig.committer.name, sig.committer.email

    through_git, through_libgit2 = who(False), who(True)
    if case == "none":  # git would guess from the system or refuse; avfs takes its default
        assert through_git == through_libgit2 == identity.DEFAULT * 2
        return
    gits = _who(_commit_tree(vault))
    assert through_git == gits
    # libgit2 does not read these: git's answer is the right one, and the store asks git
    # whenever they are set, even with libgit2 loaded
    store = GitStore(vault)
    try:
        assert (store._identity_libgit2() == store._identity_git()) == (case not in LIBGIT2_DIFFERS)
    finally:
        store.close()
    assert through_libgit2 == gits


def test_identity_through_git_follows_config_changes(tmp_path, monkeypatch):
    """The git path's cache: a changed file, or an environment naming another, is read again."""
    from avfs_git.core.store import gitwrite

    for k in identity._ENV.values():
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(gitwrite, "libgit2_loaded", lambda: False)
    vault = str(tmp_path / "v.git")
    subprocess.run(["git", "init", "-q", "--bare", vault], check=True)
    gitconfig = Path(os.environ["HOME"]) / ".gitconfig"
    gitconfig.write_text("[user]\n\tname = One\n\temail = one@x\n")
    store = GitStore(vault)
    assert store.signature().author.name == "One"
    gitconfig.write_text("[user]\n\tname = Two, longer\n\temail = two@x\n")
    assert store.signature().author.name == "Two, longer"
    other = tmp_path / "other.cfg"
    other.write_text("[user]\n\tname = Three\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(other))
    assert store.signature().author.name == "Three"
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "user.name")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "Dash C")
    assert store.signature().author.name == "Dash C"
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "Dash C, again")
    assert store.signature().author.name == "Dash C, again"
    monkeypatch.delenv("GIT_CONFIG_COUNT")
    subprocess.run(["git", "--git-dir", vault, "config", "user.name", "Four"], check=True)
    assert store.signature().author.name == "Four"
    store.close()
