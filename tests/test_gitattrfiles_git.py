"""git's global attribute files as avfs reads them (``core/store/gitattrfiles.py``, the
text handed to libgit2 by ``gitsmudge.attributes_handle``, which every checkout and clean
conversion asks), against ``git check-attr`` of the same vault: every attribute of every
path as git's own reader decides it, where the person's config names the file in each of
the places git looks (the XDG default, ``~/.gitconfig``, ``$GIT_CONFIG_GLOBAL``, a file
an ``[include]`` or ``[includeIf]`` names, ``git -c``, the vault's own config).

Real attribute rules: attrs 24.2.0's ``.gitattributes`` (``* text=auto eol=lf``,
``export-subst``) as the person's global file, beside crafted ones a checkout converts by.

Found in the nineteenth round (review8): a global file named through an ``[include]``
was not seen (avfs read the XDG default, git did not), and libgit2 read its own idea of
the global file beside avfs's text (the XDG default where ``$GIT_CONFIG_GLOBAL`` or
``git -c`` named another): files git leaves alone were shown converted.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from avfs_git.core.store import gitattrfiles
from avfs_git.core.store.gitclean import Cleaner
from avfs_git.core.store.gitsmudge import _dispose, attributes_handle

from . import realdata

NAMES = ("text", "eol", "ident", "diff", "export-subst", "working-tree-encoding")
PATHS = ("README.md", "src/a.c", "a.txt", "docs/b.txt", ".git_archival.txt", "w.ps1", "pic.png")
ROOT = b"*.c text\n*.png -text -diff\n"  # the tree's own .gitattributes
CRAFTED = b"*.txt eol=crlf\n*.md ident\n*.ps1 text eol=crlf working-tree-encoding=UTF-16LE\n"


@pytest.fixture(scope="module")
def real_rules(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    src = realdata.extract(realdata.pypi_sdist("attrs", "24.2.0"), tmp_path_factory.mktemp("attrs"))
    data = (src / ".gitattributes").read_bytes()
    assert b"text=auto" in data and b"export-subst" in data
    return data


def _quoted(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _git_says(vault: Path, tmp: Path) -> dict[tuple[str, str], str]:
    """``git check-attr`` of every name and path, in a work tree of the root's rules only."""
    wt = tmp / "worktree"
    wt.mkdir(exist_ok=True)
    (wt / ".gitattributes").write_bytes(ROOT)
    out = subprocess.run(
        ["git", "--git-dir", str(vault), "--work-tree", str(wt), "check-attr", *NAMES, "--", *PATHS],
        cwd=wt,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    said = {}
    for line in out.splitlines():
        path, name, value = line.rsplit(": ", 2)
        said[path, name] = value
    assert len(said) == len(NAMES) * len(PATHS), out
    return said


def _avfs_says(vault: Path) -> dict[tuple[str, str], str]:
    """The same asked of the handle every conversion of avfs asks, and of a cleaner's (it
    reads the vault's config before any attribute)."""
    repo, scratch = attributes_handle(str(vault), {"": ROOT})
    cleaner = Cleaner(str(vault), {"": ROOT}, {})
    try:
        said = {}
        for path in PATHS:
            for name in NAMES:
                v = repo.get_attr(path, name)
                said[path, name] = {True: "set", False: "unset", None: "unspecified"}.get(v, v)  # type: ignore[call-overload]
                assert cleaner._repo.get_attr(path, name) == v, (path, name)
        return said
    finally:
        _dispose(repo, scratch)
        cleaner.close()


def _differences(vault: Path, tmp: Path) -> list[tuple[str, str, str, str]]:
    git, avfs = _git_says(vault, tmp), _avfs_says(vault)
    return [(p, n, git[p, n], avfs[p, n]) for (p, n) in sorted(git) if git[p, n] != avfs[p, n]]


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    path = tmp_path / "vault.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


WHERE = ["xdg", "gitconfig", "config-global-env", "include", "include-if", "command-line", "vault-config"]


@pytest.mark.parametrize("where", WHERE)
def test_the_global_attribute_file_is_the_one_git_reads(
    where: str, vault: Path, tmp_path: Path, real_rules: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The XDG default holds attrs' real rules; where a config names another file
    (``CRAFTED``), git reads that one alone, and so must avfs."""
    home = Path(os.environ["HOME"])
    xdg = Path(os.environ["XDG_CONFIG_HOME"], "git", "attributes")
    xdg.parent.mkdir(parents=True, exist_ok=True)
    xdg.write_bytes(real_rules)
    named = tmp_path / "named-attributes"
    named.write_bytes(CRAFTED)
    naming = f"[core]\n\tattributesFile = {_quoted(named)}\n"
    gitconfig = home / ".gitconfig"
    if where == "gitconfig":
        with open(gitconfig, "a") as fh:
            fh.write(naming)
    elif where == "config-global-env":
        (tmp_path / "global-config").write_text(naming)
        monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "global-config"))
    elif where in ("include", "include-if"):
        (tmp_path / "included").write_text(naming)
        section = "[include]" if where == "include" else f'[includeIf "gitdir:{vault}"]'
        with open(gitconfig, "a") as fh:
            fh.write(f"{section}\n\tpath = {_quoted(tmp_path / 'included')}\n")
    elif where == "command-line":  # what `git -c core.attributesFile=...` hands on
        monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'core.attributesFile'='{named}'")
    elif where == "vault-config":
        with open(vault / "config", "a") as fh:
            fh.write(naming)
    git = _git_says(vault, tmp_path)
    assert git["a.txt", "eol"] == ("lf" if where == "xdg" else "crlf")  # (the case is what it says)
    assert _differences(vault, tmp_path) == []


def test_a_change_to_an_included_config_is_seen(
    vault: Path, tmp_path: Path, real_rules: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git config's answer is kept while the config files stay the same: a file one of
    them includes changing counts too (the rule that a file changed within the last
    second is never kept is set aside here: these were all just written)."""
    monkeypatch.setattr(gitattrfiles, "CONFIG_RECENT_NS", 0)
    xdg = Path(os.environ["XDG_CONFIG_HOME"], "git", "attributes")
    xdg.parent.mkdir(parents=True, exist_ok=True)
    xdg.write_bytes(real_rules)
    included = tmp_path / "included"
    included.write_text("")
    with open(Path(os.environ["HOME"], ".gitconfig"), "a") as fh:
        fh.write(f"[include]\n\tpath = {_quoted(included)}\n")
    assert _differences(vault, tmp_path) == []
    named = tmp_path / "named-attributes"
    named.write_bytes(CRAFTED)
    included.write_text(f"[core]\n\tattributesFile = {_quoted(named)}\n")
    assert gitattrfiles.global_file(str(vault)) == str(named)
    assert _differences(vault, tmp_path) == []


def test_a_config_rewritten_with_the_same_size_and_mtime_is_read_again(vault: Path, tmp_path: Path) -> None:
    """A config rewritten in place, its size the same and its mtime put back (``cp -p``,
    ``touch -r``, or two writes within one tick of the file system's clock): its ctime
    moved, and git config is asked again."""
    first, second = tmp_path / "attrs-1", tmp_path / "attrs-2"
    first.write_bytes(CRAFTED)
    second.write_bytes(b"*.md ident\n")
    config = Path(os.environ["HOME"], ".gitconfig")
    before = config.read_text()
    config.write_text(before + f"[core]\n\tattributesFile = {first}\n")
    st = config.stat()
    assert gitattrfiles.global_file(str(vault)) == str(first)
    config.write_text(before + f"[core]\n\tattributesFile = {second}\n")
    os.utime(config, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = config.stat()
    assert (now.st_ino, now.st_size, now.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    assert gitattrfiles.global_file(str(vault)) == str(second)


@pytest.mark.parametrize("where", ["gitconfig", "include"])
def test_core_autocrlf_from_an_included_config_is_seen(where: str, vault: Path, tmp_path: Path) -> None:
    """``core.autocrlf=true`` in a file the person's ``~/.gitconfig`` includes: git converts
    by it, and libgit2 reads it too, but avfs looked for the word in the top files only
    and took it for unset (the mount showed LF where git's checkout writes CRLF)."""
    from avfs_git.core.store.gitstore import GitStore
    from avfs_git.core.workspace.wsattrs import autocrlf, eol_crlf

    naming = "[core]\n\tautocrlf = true\n\teol = crlf\n"
    with open(Path(os.environ["HOME"], ".gitconfig"), "a") as fh:
        if where == "include":
            (tmp_path / "included").write_text(naming)
            fh.write(f"[include]\n\tpath = {_quoted(tmp_path / 'included')}\n")
        else:
            fh.write(naming)
    git = subprocess.run(
        ["git", "--git-dir", str(vault), "config", "core.autocrlf"], capture_output=True, text=True
    ).stdout.strip()
    assert git == "true"
    store = GitStore(str(vault))
    assert autocrlf(store) == "true"
    assert eol_crlf(store)
