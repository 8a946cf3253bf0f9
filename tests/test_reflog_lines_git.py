"""Two readings avfs does of git's files, against git on crafted input (changes2, the
thirty-fourth round): a reflog line (``refs.reflog_entry``, the change stream's
``ref_moved`` events) == ``git reflog show`` on each; ``core.eol`` (what the mount shows
for a text file) == what ``git checkout`` writes for each value."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pytest

from avfs_git.core.store import refs


def _git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", *args], capture_output=True, text=True, check=True, cwd=cwd, env=env
    ).stdout.strip()


def _whole(t: float) -> object:
    """A time as git prints it (on main a float: ``inf`` and ``nan`` were times too)."""
    return t if isinstance(t, int) or not math.isfinite(t) else int(t)


def _variants(a: str, b: str) -> dict[str, str]:
    """Each line's message names it (where git and avfs see one)."""
    who = "N <e@x>"
    return {
        "good": f"{a} {b} {who} 1700000000 +0100\tgood",
        "zone_one_digit": f"{a} {b} {who} 1700000001 +0x00\tzone_one_digit",
        "zone_three_digits": f"{a} {b} {who} 1700000002 +000\tzone_three_digits",
        "zone_five_digits": f"{a} {b} {who} 1700000003 +00000\tzone_five_digits",
        "zone_arabic_digits": f"{a} {b} {who} 1700000004 +\u0660\u0660\u0660\u0660\tzone_arabic",
        "zone_no_sign": f"{a} {b} {who} 1700000005 0000\tzone_no_sign",
        "no_tab": f"{a} {b} {who} 1700000006 -0700 no_tab",
        "time_zero": f"{a} {b} {who} 0 +0000\ttime_zero",
        "time_word": f"{a} {b} {who} abc +0000\ttime_word",
        "time_float": f"{a} {b} {who} 1e9 +0000\ttime_float",
        "time_inf": f"{a} {b} {who} inf +0000\ttime_inf",
        "time_negative": f"{a} {b} {who} -5 +0000\ttime_negative",
        "time_plus": f"{a} {b} {who} +1700000007 +0000\ttime_plus",
        "time_spaces": f"{a} {b} {who} \t 1700000008 +0000\ttime_spaces",
        "time_huge": f"{a} {b} {who} 99999999999999999999 +0000\ttime_huge",
        "time_max": f"{a} {b} {who} 18446744073709551615 +0000\ttime_max",
        "id_short": f"{a[:39]} {b} {who} 1700000009 +0000\tid_short",
        "id_not_hex": f"g{a[1:]} {b} {who} 1700000010 +0000\tid_not_hex",
        "id_upper": f"{a.upper()} {b.upper()} {who} 1700000011 +0000\tid_upper",
        "ids_empty": f"  {who} 1700000012 +0000\tids_empty",
        "no_space_after_gt": f"{a} {b} {who[:-1]}>1700000013 +0000\tno_space",
        "tab_in_name": f"{a} {b} N\tM <e@x> 1700000014 +0000\ttab_in_name",
        "two_gt": f"{a} {b} N <e@x> <f@x> 1700000015 +0000\ttwo_gt",
        "gt_in_message_only": f"{a} {b} N <e@x 1700000016 +0000\tgt_in_message_only>",
        "nul_in_message": f"{a} {b} {who} 1700000017 +0000\tnul\0in_message",
        "zero_ids": f"{'0' * 40} {b} {who} 1700000018 +0000\tzero_old",
    }


def test_a_crafted_reflog_line_is_an_entry_exactly_where_git_reflog_shows_one(tmp_path: Path) -> None:
    """Before: a zone's first digit alone was checked (``+0x00`` an entry), a time of 0, a
    word or a float's spelling was an entry (``1e9`` a time), and any id was read (two
    empty ones an entry): a line git calls corrupt was a ``ref_moved`` event."""
    repo = tmp_path / "r.git"
    _git("init", "-q", "--bare", str(repo))
    tree = _git("--git-dir", str(repo), "mktree", env={**os.environ})
    a = _git("--git-dir", str(repo), "commit-tree", "-m", "a", tree)
    b = _git("--git-dir", str(repo), "commit-tree", "-p", a, "-m", "b", tree)
    _git("--git-dir", str(repo), "update-ref", "refs/heads/x", b)
    lines = _variants(a, b)
    log = repo / "logs" / "refs" / "heads" / "x"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes("".join(line + "\n" for line in lines.values()).encode())
    show = ["reflog", "show", "--no-abbrev", "--date=unix", "--format=%H%x00%gD%x00%gs", "refs/heads/x"]
    proc = subprocess.run(["git", "--git-dir", str(repo), *show, "--"], capture_output=True, check=True)
    want = [tuple(r.decode().split("\0", 2)) for r in proc.stdout.splitlines()]
    got = [refs.reflog_entry(line) for line in lines.values()]
    mine = [(e[1], f"refs/heads/x@{{{_whole(e[2])}}}", e[3]) for e in reversed(got) if e is not None]
    assert mine == want
    entries = {name for name, e in zip(lines, got, strict=True) if e is not None}
    assert {"good", "no_tab", "time_negative", "time_huge", "id_upper", "tab_in_name"} <= entries
    assert not {"zone_one_digit", "time_zero", "time_word", "time_float", "ids_empty"} & entries


@pytest.mark.parametrize("where", ["vault", "global"])
def test_core_eol_converts_a_text_file_as_git_s_checkout_does(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``core.eol`` set to each value (the key alone, empty, a word, ``true``, each case of
    the three git knows) in the vault's config (libgit2 reads it) or in the file
    ``$GIT_CONFIG_GLOBAL`` names (asked of git, ``lineconfig``): the bytes avfs shows for a
    file ``* text`` names == `git checkout`'s. Before, the key alone, a word and ``true``
    showed CRLF where git writes LF."""
    from avfs_git.core.store.gitsmudge import Smudger

    vault = tmp_path / "v.git"
    _git("init", "-q", "--bare", str(vault))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    config = (vault / "config").read_text()
    wrong = []
    for value in (None, "", "bogus", "true", "crlf", "CRLF", "lf", "LF", "native", "Native"):
        line = "[core]\n\teol\n" if value is None else f"[core]\n\teol = {value}\n"
        if where == "vault":
            (vault / "config").write_text(config + line)
        else:
            (tmp_path / "global").write_text(line)
            monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "global"))
        work = tmp_path / f"w{len(wrong)}-{value}"
        work.mkdir()
        (work / ".gitattributes").write_text("* text\n")
        (work / "f").write_bytes(b"a\nb\n")
        git = ["git", "--git-dir", str(vault), "--work-tree", str(work)]
        subprocess.run([*git, "add", "-f", "f", ".gitattributes"], check=True, env=os.environ)
        (work / "f").unlink()
        subprocess.run([*git, "checkout", "--", "f"], check=True, env=os.environ)
        want = (work / "f").read_bytes()
        smudger = Smudger(str(vault))
        try:
            smudger.add_attributes("", b"* text\n")
            got = smudger.smudge("f", b"a\nb\n") or b"a\nb\n"
        finally:
            smudger.close()
        if got != want:
            wrong.append((value, got, want))
    assert not wrong, wrong
