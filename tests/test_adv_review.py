"""What a confined command plants in the fork, read by avfs's host side and the person's
git (issue 26, the review of the landed boundary; docs/security.md "Fork content").

Each test plants from inside a real confined ``proxy exec`` in a real overlay mount (or an
unmounted fork for ``apply``): links out of the fork, attribute drivers, ``.git`` files and
directories below the root, names git refuses, hard links to host files. Then the person
acts (plain ``git status``/``diff``/``commit`` in the mount, ``avfs cat``/``write``/
``diff``/``export``/``apply``, MCP ``read_file``/``write_file``, a checkpoint, the next
exec), and each test asserts that no host canary changed, no planted code ran (the canary
it would write stays absent) and the fork lost nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import AvfsError
from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import mounts
from avfs_git.ops import quickstart as q
from avfs_git.proxy.envelope import ExecRequest
from avfs_git.proxy.execute import execute

from .test_adv_mountfiles import IDENTITY, Scene, _need_bwrap
from .test_overlay import require_overlay

SECRET = "HOST-SECRET\n"


@pytest.fixture
def scene(home: Any, vault: Any, tmp_path: Path, cli: Any) -> Iterator[Scene]:
    require_overlay()
    _need_bwrap()
    ws = vault.workspace("main")
    ws.write("README", b"a project\n")
    ws.write("a.txt", b"the fork's a\n")
    checkpoint.save(vault, name="base")
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text(SECRET)
    (host / "a.txt").write_text("HOST-A\n")
    ran = tmp_path / "ran"
    ran.mkdir()
    mp = tmp_path / "mnt"
    mp.mkdir()
    info = mounts.mount(home, vault, "main", str(mp), backend="overlay")
    try:
        yield Scene(home, vault, mp, info.pid, host, ran, cli)
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def _tree(vault: Any, rev: str = "main") -> dict[str, str]:
    out = subprocess.run(
        ["git", "--git-dir", vault.path, "ls-tree", "-r", "--full-tree", rev],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {line.split("\t", 1)[1]: line.split()[0] for line in out.splitlines()}


def test_links_out_of_the_fork_are_never_followed_by_the_host_side(scene: Scene, tmp_path: Path) -> None:
    """Links to a host file, a host directory and /etc planted in the fork: ``avfs cat``,
    ``ls``, ``write``, ``diff``, MCP ``read_file``/``write_file`` refuse to follow them, a
    checkpoint records each as a link, ``export`` writes the link itself; no host file is
    read out or written."""
    from avfs_git.mcp.tools import AvfsTools

    before = scene.host_state()
    res = scene.attack(f"ln -s {scene.host}/secret lsecret\nln -s {scene.host} lhost\nln -s /etc letc\n")
    assert res.result is not None and res.result.exit_code == 0, res.result
    spec = ["--home", scene.home.path, "--vault", "v:main"]
    for args in (("cat", "lsecret"), ("cat", "lhost/secret"), ("cat", "letc/hostname"), ("ls", "lhost")):
        got = scene.cli(*spec, "--json", *args)
        assert got.code != 0 and "symlink_escape" in got.out and "HOST-SECRET" not in got.out, (args, got.out)
    got = scene.cli(*spec, "--json", "write", "lhost/pwn", "pwned\n")
    assert got.code != 0 and "symlink_escape" in got.out, got.out
    tools = AvfsTools(scene.home.path, "v:main")
    for tool, args in (
        ("read_file", {"path": "lhost/secret"}),
        ("read_file", {"path": "lsecret"}),
        ("write_file", {"path": "lhost/pwn2", "content": "pwned\n"}),
        ("write_file", {"path": "lsecret", "content": "pwned\n"}),
        ("list_files", {"path": "letc"}),
    ):
        with pytest.raises(AvfsError) as info:
            tools.call(tool, args)
        assert info.value.code == "symlink_escape", (tool, args, info.value)
    got = scene.cli(*spec, "diff", "base")  # the exec checkpointed its changes
    assert got.code == 0 and "HOST-SECRET" not in got.out and f"+{scene.host}/secret" in got.out, got.out
    scene.person_acts("links")
    tree = _tree(scene.vault)
    assert {tree[p] for p in ("lsecret", "lhost", "letc")} == {"120000"}, tree
    dest = tmp_path / "exported"
    got = scene.cli("--home", scene.home.path, "--json", "export", "v:main", str(dest))
    assert got.code == 0, got.out
    assert os.readlink(dest / "lsecret") == f"{scene.host}/secret" and os.readlink(dest / "letc") == "/etc"
    assert (dest / "a.txt").read_text() == "the fork's a\n"
    assert not (scene.host / "pwn").exists() and not (scene.host / "pwn2").exists()
    scene.check(before, {"README": b"a project\n", "a.txt": b"the fork's a\n"})


def test_attribute_drivers_planted_in_the_fork_run_nothing(scene: Scene) -> None:
    """``.gitattributes`` naming filter, diff, merge drivers, and every place the command
    might define one (the vault's config, ``config.worktree``, ``info/attributes``, a
    ``.gitconfig`` in the fork): none is defined for the person's git, so ``git status``,
    ``git diff``, ``git add``, ``git commit``, ``avfs diff`` and a checkpoint run nothing."""
    before = scene.host_state()
    canary = scene.ran / "driver-ran"
    cmd = f"touch {canary}; cat"
    res = scene.attack(
        "printf '* filter=evil diff=evil merge=evil\\n' > .gitattributes\n"
        f"git config filter.evil.clean '{cmd}' 2>/dev/null && echo CONFIG\n"
        f"git config --worktree filter.evil.smudge '{cmd}' 2>/dev/null && echo WORKTREE\n"
        f"git config --worktree diff.evil.textconv '{cmd}' 2>/dev/null && echo TEXTCONV\n"
        'G="$(git rev-parse --git-common-dir)"\n'
        f"(printf '* filter=lfs\\n' > \"$G/info/attributes\") 2>/dev/null && echo INFO\n"
        f"printf '[filter \"evil\"]\\n\\tclean = {cmd}\\n' > .gitconfig\n"
        "echo changed >> a.txt\n"
    )
    assert res.result is not None, res.to_dict()
    assert not {"CONFIG", "WORKTREE", "TEXTCONV", "INFO"} & set(res.result.stdout.split()), res.result
    (scene.mp / "a.txt").write_text("the person's a\n")
    scene.git("diff")
    scene.git("diff", "HEAD~1")
    scene.git("add", "a.txt")
    scene.git("commit", "-q", "-m", "the person commits")
    got = scene.cli("--home", scene.home.path, "--vault", "v:main", "diff", "base")
    assert got.code == 0, got.out
    scene.person_acts("drivers")
    assert not canary.exists()
    scene.check(before, {"a.txt": b"the person's a\n", "README": b"a project\n"})


def test_git_dirs_planted_below_the_root_reach_nothing(scene: Scene) -> None:
    """A ``sub/.git`` file pointing at a host directory, a nested repository with its own
    ``core.fsmonitor`` and hooks (never staged), ``.GIT`` and ``git~1`` directories with
    hooks in them: the person's plain git in the mount runs none of it, ``avfs status`` and
    ``avfs diff`` show them (the review sees them), a checkpoint leaves every one out, the
    host directory is untouched."""
    before = scene.host_state()
    canary = scene.ran / "nested"
    hook = f"#!/bin/sh\\ntouch {canary}-hook\\n"
    res = scene.attack(
        f"mkdir -p sub && printf 'gitdir: {scene.host}\\n' > sub/.git && echo s > sub/f\n"
        "mkdir nest && cd nest && git init -q && echo n > f\n"
        f"git config core.fsmonitor 'touch {canary}-fsmonitor; false'\n"
        f"printf '{hook}' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit && cd ..\n"
        f"mkdir -p d/.GIT/hooks && printf '{hook}' > d/.GIT/hooks/pre-commit && chmod +x d/.GIT/hooks/pre-commit\n"
        "mkdir -p e/git~1 && echo x > e/git~1/config\n"
    )
    assert res.result is not None and res.result.exit_code == 0, res.result
    spec = ["--home", scene.home.path, "--vault", "v:main"]
    status = json.loads(scene.cli(*spec, "--json", "status").out)
    shown = {c["path"] for c in status["changes"]}
    assert {"d/.GIT/hooks/pre-commit", "e/git~1/config"} <= shown, status
    got = scene.cli(*spec, "diff")  # failed on the '.GIT' path (invalid_path): no review at all
    assert got.code == 0 and "+++ b/d/.GIT/hooks/pre-commit" in got.out and "touch" in got.out, got.out
    scene.git("status", "--porcelain")
    scene.git("status", "--porcelain", "--untracked-files=all")
    scene.person_acts("nested")
    tree = _tree(scene.vault)
    assert not [p for p in tree if any(c.lower() in (".git", "git~1") for c in p.split("/"))], tree
    assert "nest" not in tree or tree["nest"] != "160000"
    assert sorted(os.listdir(scene.host)) == ["a.txt", "secret"]
    assert not list(scene.ran.iterdir())
    scene.check(before, {"README": b"a project\n", "a.txt": b"the fork's a\n"})


def test_a_host_file_cannot_be_hard_linked_into_the_fork(scene: Scene) -> None:
    """The overlay's upper layer is on the host, but the sandbox sees only the fork: a hard
    link of any file it can see (system files, the shown hook) into the fork fails, and a
    link made inside the fork is the fork's own file."""
    before = scene.host_state()
    res = scene.attack(
        "for f in /etc/hostname /usr/bin/env /etc/passwd; do ln $f hard-$(basename $f) 2>/dev/null && echo LINKED $f; done\n"
        "ln a.txt a-link && echo inside >> a-link\n"
    )
    assert res.result is not None, res.to_dict()
    assert "LINKED" not in res.result.stdout, res.result
    assert os.stat("/etc/passwd").st_nlink == 1 and os.stat("/usr/bin/env").st_nlink == 1
    scene.person_acts("hard")
    scene.check(before, {"README": b"a project\n"})


def test_apply_carries_no_git_dir_and_follows_no_link_into_the_persons_directory(tmp_path: Path) -> None:
    """An agent's unmounted fork of a person's git project plants ``.git`` names below the
    root, a ``.git/hooks`` path, and links out; ``avfs apply`` writes none of the ``.git``
    names, writes links as links (never through them), and the person's next ``git commit``
    runs no planted hook."""
    _need_bwrap()
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "a.txt").write_text("one\n")
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tmp_path))
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=p", "-c", "user.email=p@x", "commit", "-qm", "1"],
    ):
        subprocess.run(["git", *args], cwd=proj, env=env, check=True, capture_output=True)
    host = tmp_path / "host"
    host.mkdir()
    (host / "a.txt").write_text("HOST-A\n")
    ran = tmp_path / "ran"
    ran.mkdir()
    home = Home(str(tmp_path / "h"), mounts=MOUNT_SIDE)
    try:
        q.up(home, str(proj), agent="a1", mount=False)
        vault = home.vault("proj")
        hook = f"#!/bin/sh\\ntouch {ran}/hook\\n"
        script = (
            IDENTITY + "mkdir -p .GIT/hooks sub/.git/hooks x/.Git\n"
            f"printf '{hook}' > .GIT/hooks/pre-commit; printf '{hook}' > sub/.git/hooks/pre-commit\n"
            "chmod +x .GIT/hooks/pre-commit sub/.git/hooks/pre-commit\n"
            f"printf 'gitdir: {host}\\n' > x/.Git/x\n"
            f"ln -s {host} out; ln -s {host}/a.txt outa\n"
            "echo two >> a.txt\n"
        )
        vault.workspace("a1").write("attack.sh", script.encode())
        res = execute(home, vault, "a1", ExecRequest(shell="sh attack.sh"))
        assert res.result is not None and res.result.exit_code == 0, res.to_dict()
        done = q.apply(vault, "a1")
        applied = {c.path for c in done.changes}
        assert applied == {"a.txt", "attack.sh", "out", "outa"}, applied
        assert os.readlink(proj / "out") == str(host) and os.readlink(proj / "outa") == f"{host}/a.txt"
        assert not (proj / ".GIT").exists() and not (proj / "sub").exists() and not (proj / "x").exists()
        assert sorted(os.listdir(proj / ".git" / "hooks")) == sorted(
            p for p in os.listdir(proj / ".git" / "hooks") if p.endswith(".sample")
        )
        subprocess.run(
            ["git", "-c", "user.name=p", "-c", "user.email=p@x", "commit", "-qam", "applied"],
            cwd=proj, env=env, check=True, capture_output=True,
        )  # fmt: skip
        assert (proj / "a.txt").read_text() == "one\ntwo\n"
        assert (host / "a.txt").read_text() == "HOST-A\n" and sorted(os.listdir(host)) == ["a.txt"]
        assert not list(ran.iterdir())
    finally:
        home.close()


def test_a_search_hit_shows_planted_escape_sequences_escaped(scene: Scene) -> None:
    """A file the command wrote holding terminal escape sequences (set the window title,
    clear the screen, OSC 52 that writes the person's clipboard): ``avfs search``'s human
    output shows the hit's excerpt with each control character as a C escape, never raw
    (its excerpt is avfs's own rendering, not a file's bytes as ``avfs cat``/``grep``
    give them); ``--json`` keeps the text as it is."""
    before = scene.host_state()
    res = scene.attack(
        "printf 'needle \\033]0;PWNED\\007 \\033]52;c;cm0gLXJmIH4=\\007 \\033[2J tail\\n' > esc.txt\n"
    )
    assert res.result is not None and res.result.exit_code == 0, res.result
    spec = ["--home", scene.home.path, "--vault", "v:main"]
    got = scene.cli(*spec, "search", "needle")
    assert got.code == 0 and "esc.txt" in got.out, got.out
    assert "\x1b" not in got.out + got.err and "\x07" not in got.out + got.err, repr(got.out)
    assert "\\033]0;PWNED" in got.out and "\\033[2J" in got.out, repr(got.out)
    got = scene.cli(*spec, "--json", "search", "needle")
    hits = json.loads(got.out)["hits"]
    assert "\x1b]0;PWNED" in hits[0]["snippet"], hits
    scene.person_acts("escapes")
    scene.check(
        before,
        {
            "README": b"a project\n",
            "esc.txt": b"needle \x1b]0;PWNED\x07 \x1b]52;c;cm0gLXJmIH4=\x07 \x1b[2J tail\n",
        },
    )
