"""The ``.gitmodules`` checker's config parser (``core/store/gitmodules.py``, a port of git
2.39's ``config.c``) against git on real config files: every config and ``.gitmodules``
of libgit2's own test repositories and its config test files (``tests/resources/config``:
include chains, odd quoting, continuation lines, an out-of-memory case:
``realdata.libgit2_resources``), each parsed here and by ``git config --file F --list -z``,
and checked here and by ``git fsck --strict`` as a ``.gitmodules`` blob.

Found here (the twenty-seventh round, realdata2): libgit2's ``config-oom`` (654 KB: one
section named by 494 KB, then 40,000 keys), which ``git fsck`` takes in 0.07 s, took the
checker 56 s: every key's whole name was copied (section and key, five times over), and a
refused submodule name was checked and shown once per key. A confined command that wrote
such a ``.gitmodules`` held the host side's checkpoint that long.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from avfs_git.core.store import gitmodules

from . import realdata
from .test_gitmodules import _differential


@pytest.fixture(scope="module")
def configs() -> list[Path]:
    """Every config file of libgit2's test resources: the repositories' own, their
    ``.gitmodules`` and the config test files."""
    resources = realdata.libgit2_resources()[0]
    while resources.name != "resources":
        resources = resources.parent
    found = sorted(
        p
        for p in resources.rglob("*")
        if p.is_file()
        and "objects" not in p.parts
        and (p.name in ("config", ".gitmodules", "gitmodules") or p.parent.name == "config")
    )
    assert len(found) > 100, len(found)
    return found


def _git_config(path: Path) -> tuple[bool, list[tuple[bytes, bytes | None]]]:
    proc = subprocess.run(
        ["git", "config", "--file", str(path), "--list", "-z"], capture_output=True, check=False
    )
    entries = []
    for item in proc.stdout.split(b"\0")[:-1]:
        key, nl, value = item.partition(b"\n")
        entries.append((key, value if nl else None))
    return proc.returncode == 0, entries


def test_every_real_config_file_parses_as_git_config_lists_it(configs: list[Path]) -> None:
    wrong = []
    compared = entries = 0
    for path in configs:
        if path.name == "config-oom":
            continue  # git would list 40,000 names of 494 KB each (20 GB): the next test's
        got: list[tuple[bytes, bytes | None]] = []
        ok = gitmodules.parse(path.read_bytes(), lambda k, v, got=got: got.append((k, v)))
        git_ok, want = _git_config(path)
        if ok != git_ok or (ok and got != want):
            wrong.append((str(path), ok, git_ok, got[:5], want[:5]))
        compared += 1
        entries += len(want)
    assert not wrong, wrong
    assert compared > 100 and entries > 600, (compared, entries)


def test_every_real_config_file_as_a_gitmodules_is_judged_as_git_fsck_does(
    configs: list[Path], tmp_path: Path
) -> None:
    # (config-oom made a refused submodule's section is left to the next test: git fsck
    # prints its 494 KB name for each of its 40,000 keys, minutes of output)
    assert _differential(tmp_path, [p.read_bytes() for p in configs]) > 80  # (distinct contents)


def test_a_long_section_s_name_is_read_once_not_once_a_key(
    configs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """libgit2's ``config-oom`` and the same with a submodule's refused name: the checker's
    work on the section's name is once per section (the bytes ``bad_name`` and ``_show``,
    where ``problems`` looks them up, are given), not once per key, and its verdict is
    git's (the test above)."""
    oom = next(p for p in configs if p.name == "config-oom").read_bytes()
    head = oom.index(b"]")
    keys = oom.count(b"\n") - 1
    given: list[int] = []
    limit = [0]  # twice the blob's size: stop at once past it (the base took minutes)
    real_bad_name, real_show = gitmodules.bad_name, gitmodules._show

    def bad_name(name: bytes) -> bool:
        given.append(len(name))
        assert sum(given) <= limit[0], (len(given), sum(given), limit[0])
        return real_bad_name(name)

    def show(b: bytes) -> str:
        given.append(len(b))
        assert sum(given) <= limit[0], (len(given), sum(given), limit[0])
        return real_show(b)

    monkeypatch.setattr(gitmodules, "bad_name", bad_name)
    monkeypatch.setattr(gitmodules, "_show", show)
    for data in (
        b'[submodule "' + oom[1:head] + b'"' + oom[head:],
        b'[submodule "../' + oom[1:head] + b'"' + oom[head:],
    ):
        del given[:]
        limit[0] = 2 * len(data)
        found = gitmodules.problems(data)
        assert keys > 30_000 and given, (keys, given)
        assert sum(given) <= 2 * len(data), (len(given), sum(given), len(data))
    assert len(found) == keys and {i for i, _ in found} == {"gitmodulesName"}, found[:2]
