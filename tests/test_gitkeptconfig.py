"""The person's worktree-local settings a remount keeps (mount/gitkeptconfig.py): read from
a ``config.worktree`` as git reads it, only the sections git runs no code from, written
back so git reads the same values (quotes, a backslash, a newline, a subsection)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from avfs_git.mount import gitkeptconfig

PLANTED = """[core]
\tbare = false
\tpager = touch /tmp/pwned-pager
\tfsmonitor = /tmp/hook
[alias]
\tst = !touch /tmp/pwned-alias
[diff]
\texternal = /tmp/pwned-diff
[include]
\tpath = /tmp/elsewhere
[user]
\temail = person@example.invalid
\tsigningKey = /tmp/key
[color "branch"]
\tcurrent = "red \\"bold\\"\\\\ x"
[advice]
\tdetachedHead = false
[i18n]
\tcommitEncoding = "line one\\nline two"
"""


def _get(path: Path, key: str) -> str:
    got = subprocess.run(["git", "config", "--file", str(path), "--get", key], capture_output=True, text=True)
    return got.stdout


def test_only_settings_of_sections_git_runs_no_code_from_are_kept(tmp_path: Path) -> None:
    git_dir = tmp_path / "wt"
    git_dir.mkdir()
    (git_dir / "config.worktree").write_text(PLANTED)
    kept = gitkeptconfig.kept(str(git_dir))
    assert sorted(k for k, _v in kept) == [
        "advice.detachedhead",
        "color.branch.current",
        "i18n.commitencoding",
        "user.email",
    ]
    back = tmp_path / "back"
    back.write_text("[core]\n\tbare = false\n" + gitkeptconfig.text(kept))
    for key in ("user.email", "color.branch.current", "advice.detachedHead", "i18n.commitEncoding"):
        assert _get(back, key) == _get(git_dir / "config.worktree", key) != ""
    for key in ("core.pager", "alias.st", "diff.external", "include.path", "user.signingKey"):
        assert _get(back, key) == ""


def test_what_kept_json_says_is_checked_again(tmp_path: Path) -> None:
    """``kept.json`` names pairs as untrusted data: a section not kept, a key that is no
    name, a value with a NUL, anything not a pair of strings, are left out."""
    text = gitkeptconfig.text(
        [["core.pager", "x"], ["user.na]me", "x"], ["user.name", "a\0b"], "user.email", ["user.email", 1]]
    )
    assert text == ""
    assert gitkeptconfig.text("not a list") == ""
    assert gitkeptconfig.text([["user.name", "Some One"]]) == "[user]\n\tname = Some One\n"


def test_an_unmount_with_avfs_s_own_lines_alone_runs_no_git(tmp_path: Path) -> None:
    git_dir = tmp_path / "wt"
    git_dir.mkdir()
    (git_dir / "config.worktree").write_text("[core]\n\tbare = false\n\tfsmonitor = /x\n")
    assert gitkeptconfig.kept(str(git_dir)) == []
    assert gitkeptconfig.kept(str(tmp_path / "absent")) == []
