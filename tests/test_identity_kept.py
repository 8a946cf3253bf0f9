"""Who a cold commit is by, kept beside the vault for the next process
(``core/store/gitrun.py`` ``kept_config``, h-gitspawn1): a process without libgit2 took git's answer
from a ``git config`` of its own at every commit. Held to git's own answer after each kind
of change the key must see (the vault's config, a global file, a file one includes, the
environment's ``GIT_CONFIG_*``); not kept where an ``includeIf`` may make it the fork's;
a file that is not what avfs wrote is a miss. Each ``GitStore`` here is a new process's
view (its own cache empty), libgit2 taken for not loaded as in a cold CLI process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from avfs_git.core.store import gitrun, gitwrite, identity
from avfs_git.core.store.gitstore import GitStore


@pytest.fixture
def cold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A bare vault with avfs's ``avfs/`` directory; libgit2 taken for not loaded; a
    file's change kept at once (the test's files change within the same second)."""
    for k in identity._ENV.values():
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(gitwrite, "libgit2_loaded", lambda: False)
    monkeypatch.setattr(gitrun, "CONFIG_RECENT_NS", 0)
    vault = str(tmp_path / "v.git")
    subprocess.run(["git", "init", "-q", "--bare", vault], check=True)
    os.mkdir(os.path.join(vault, "avfs"))
    return vault


def _who(vault: str) -> tuple[str, str]:
    store = GitStore(vault)
    try:
        sig = store.signature()
    finally:
        store.close()
    return sig.author.name, sig.author.email


def _gits(vault: str) -> tuple[str, str]:
    def get(key: str) -> str:
        proc = subprocess.run(["git", "--git-dir", vault, "config", key], capture_output=True, text=True)
        return proc.stdout.strip()

    return get("user.name"), get("user.email")


def _replace(path: Path, text: str) -> None:
    """``path``'s text replaced by a rename (a new inode: its stamp moves whatever the size)."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_a_later_process_takes_the_kept_answer_and_every_change_asks_git_again(
    cold: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = Path(os.environ["HOME"])
    (home / ".gitconfig").write_text("[include]\n\tpath = more.cfg\n")
    more = home / "more.cfg"
    more.write_text("[user]\n\tname = Included\n\temail = inc@x.invalid\n")
    assert _who(cold) == _gits(cold) == ("Included", "inc@x.invalid")
    kept = Path(cold, "avfs", gitrun.IDENTITY_FILE)
    doc = json.loads(kept.read_bytes())
    assert doc["values"] == {"user.name": "Included", "user.email": "inc@x.invalid"}
    # what the file holds under the stamps of today's files is what a later process takes
    doc["values"]["user.name"] = "Kept"
    kept.write_text(json.dumps(doc))
    assert _who(cold) == ("Kept", "inc@x.invalid")
    # the included file changed: git is asked again
    _replace(more, "[user]\n\tname = Included again\n\temail = inc@x.invalid\n")
    assert _who(cold) == _gits(cold) == ("Included again", "inc@x.invalid")
    # the vault's own config
    subprocess.run(["git", "--git-dir", cold, "config", "user.name", "Vault"], check=True)
    assert _who(cold) == _gits(cold) == ("Vault", "inc@x.invalid")
    # the environment names another global file, then gives a setting (git -c)
    other = tmp_path / "other.cfg"
    other.write_text("[user]\n\temail = other@x.invalid\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(other))
    assert _who(cold) == _gits(cold) == ("Vault", "other@x.invalid")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "user.email")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "dash@x.invalid")
    assert _who(cold) == _gits(cold) == ("Vault", "dash@x.invalid")
    monkeypatch.delenv("GIT_CONFIG_COUNT")
    assert _who(cold) == ("Vault", "other@x.invalid")


def test_an_includeif_is_not_kept_and_a_foreign_file_is_a_miss(cold: str) -> None:
    home = Path(os.environ["HOME"])
    (home / ".gitconfig").write_text(f'[includeIf "gitdir:{cold}"]\n\tpath = v.cfg\n')
    (home / "v.cfg").write_text("[user]\n\tname = Only Here\n\temail = if@x.invalid\n")
    kept = Path(cold, "avfs", gitrun.IDENTITY_FILE)
    assert _who(cold) == _gits(cold) == ("Only Here", "if@x.invalid")
    assert not kept.exists()
    (home / ".gitconfig").write_text("[user]\n\tname = Plain\n\temail = p@x.invalid\n")
    for junk in (
        b"",
        b"not json",
        b'{"key": 1}',
        b"[]",
        json.dumps({"key": None, "values": {"a": 1}}).encode(),
    ):
        kept.write_bytes(junk)
        assert _who(cold) == _gits(cold) == ("Plain", "p@x.invalid")
    key = gitrun.config_stamps(cold)
    assert key is not None
    kept.write_text(json.dumps({"key": key, "values": {"user.name": 7}}))  # (not what avfs writes)
    assert _who(cold) == ("Plain", "p@x.invalid")


_COLD = """
import sys
from avfs_git.core.store import gitrun, vaultconfig
from avfs_git.core.store.gitstore import GitStore
gitrun.CONFIG_RECENT_NS = 0  # (the test's files change within the same second)
print(vaultconfig.worktree_config_enabled(GitStore(sys.argv[1])), "pygit2" in sys.modules)
"""


def _cold_enabled(vault: str) -> bool:
    """``worktree_config_enabled`` in a process of its own without libgit2 (a cold daemon's)."""
    out = subprocess.run(
        [sys.executable, "-c", _COLD, vault], capture_output=True, text=True, check=True
    ).stdout
    enabled, libgit2 = out.split()
    assert libgit2 == "False"
    return enabled == "True"


def test_a_cold_daemon_takes_the_kept_worktree_config_answer_until_a_config_changes(tmp_path: Path) -> None:
    """Whether the vault turns on ``extensions.worktreeConfig``, as a mount's daemon started
    cold asks it (h-gitspawn1: a ``git config`` at every mount before): kept by the config
    files' stamps; the vault's config or a global file changed, git is asked again."""
    vault = str(tmp_path / "v.git")
    subprocess.run(["git", "init", "-q", "--bare", vault], check=True)
    os.mkdir(os.path.join(vault, "avfs"))
    kept = Path(vault, "avfs", gitrun.WORKTREE_CONFIG_FILE)
    assert _cold_enabled(vault) is False
    for k, v in (("core.repositoryformatversion", "1"), ("extensions.worktreeConfig", "true")):
        subprocess.run(["git", "--git-dir", vault, "config", k, v], check=True)
    assert _cold_enabled(vault) is True
    doc = json.loads(kept.read_bytes())
    assert doc["values"] == {"core.repositoryformatversion": "1", "extensions.worktreeconfig": "true"}
    doc["values"]["extensions.worktreeconfig"] = "false"  # what a later process takes, as kept
    kept.write_text(json.dumps(doc))
    assert _cold_enabled(vault) is False
    subprocess.run(["git", "--git-dir", vault, "config", "extensions.worktreeConfig", "true"], check=True)
    assert _cold_enabled(vault) is True  # (the vault's config changed: asked)
    subprocess.run(["git", "--git-dir", vault, "config", "--unset", "extensions.worktreeConfig"], check=True)
    assert _cold_enabled(vault) is False
    gitconfig = Path(os.environ["HOME"]) / ".gitconfig"
    with gitconfig.open("a") as fh:  # (git's listing reads the global files too)
        fh.write("[extensions]\n\tworktreeConfig = true\n")
    assert _cold_enabled(vault) is True
    kept.unlink()
    assert _cold_enabled(vault) is True  # git's own answer, asked afresh


@pytest.mark.parametrize("form", ["parameters", "count"])
def test_an_include_the_environment_gives_is_not_kept(
    cold: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, form: str
) -> None:
    """``GIT_CONFIG_PARAMETERS`` (``git -c include.path=...``) or ``GIT_CONFIG_KEY_n`` giving
    an ``include.path``: the key held the variable's text, never the included file's
    stamp, and a change of that file kept the old identity (review39)."""
    inc = tmp_path / "inc.cfg"
    inc.write_text("[user]\n\tname = First\n\temail = first@x.invalid\n")
    if form == "parameters":
        monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'include.path'='{inc}'")
    else:
        monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
        monkeypatch.setenv("GIT_CONFIG_KEY_0", "include.path")
        monkeypatch.setenv("GIT_CONFIG_VALUE_0", str(inc))
    assert _who(cold) == _gits(cold) == ("First", "first@x.invalid")
    assert gitrun.config_stamps(cold) is None
    _replace(inc, "[user]\n\tname = Second\n\temail = second@x.invalid\n")
    assert _who(cold) == _gits(cold) == ("Second", "second@x.invalid")
