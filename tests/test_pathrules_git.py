"""Path policies' patterns (``policy/pathrules.py``, pathspec with ``policy/gitglob.py``'s
bracket expressions) against ``git check-ignore --no-index`` on git's own wildmatch cases:
the ``match`` lines of git 2.39.5's ``t/t3070-wildmatch.sh`` (from Debian's archive,
``realdata.git_source_file``), each pattern asked with its text as a path, and every
character class and byte against git.

Found here (the twenty-seventh round, realdata2): 25 of the 169 cases that make a path
disagreed (no ``[[:class:]]``, ``\\`` in a set taken literally, a negated set matching
``/``, malformed sets matching), and ``x?`` held ``xé`` (git matches bytes: ``?`` is one);
``PathRules.reaches`` (which prunes the kernel's walk for ``hidden`` paths) read a segment
with fnmatch's sets, so ``[[:upper:]]*/...`` reached no directory git's pattern holds.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from avfs_git.policy.pathrules import PathRule, PathRules, pattern_problem

from . import realdata


def _wildmatch_cases() -> list[tuple[str, str]]:
    """(text, pattern) of each ``match`` line of git's t3070 (its last two words)."""
    script = realdata.git_source_file("t/t3070-wildmatch.sh")
    cases = []
    text = script.read_text(encoding="utf-8").replace("\\\n", "")  # the shell's continued lines
    for line in text.split("\n"):  # (not splitlines: a case holds \x0c)
        if line.startswith("match "):
            words = shlex.split(line)
            cases.append((words[-2], words[-1]))
    assert len(cases) > 180, len(cases)
    return cases


def _a_path(text: str) -> bool:
    """Whether ``text`` names a workspace path (relative, no empty, ``.`` or ``..``
    component, no NUL or line break): what a policy is asked about."""
    parts = text.split("/")
    return (
        bool(text) and "\0" not in text and "\n" not in text and all(p not in ("", ".", "..") for p in parts)
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wildmatch")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def _git_ignored(repo: Path, pattern: str, paths: list[str]) -> set[str]:
    """Which of ``paths`` git ignores by ``pattern`` alone (in ``info/exclude``)."""
    (repo / ".git" / "info" / "exclude").write_bytes(pattern.encode("utf-8", "surrogateescape") + b"\n")
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "-z", "--stdin"],
        cwd=repo,
        input=b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p in paths),
        capture_output=True,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return {p.decode("utf-8", "surrogateescape") for p in proc.stdout.split(b"\0") if p}


def test_git_s_own_wildmatch_cases_hold_what_git_check_ignore_holds(repo: Path) -> None:
    asked = held = refused = 0
    wrong = []
    for text, pattern in _wildmatch_cases():
        if not _a_path(text) or "\n" in pattern:
            continue
        asked += 1
        by_git = text in _git_ignored(repo, pattern, [text])
        if pattern_problem(pattern) is not None:
            refused += 1
            if by_git:  # a pattern refused as matching nothing must match nothing for git
                wrong.append((pattern, text, "refused", by_git))
            continue
        rules = PathRules([PathRule("hidden", pattern, "t3070")])
        ours = rules.match(text) is not None
        held += ours
        if ours != by_git:
            wrong.append((pattern, text, ours, by_git))
        # a path git holds is reached from each directory above it (the kernel's walk)
        parts = text.split("/")
        if by_git and not all(rules.reaches("/".join(parts[:i]), "hidden") for i in range(len(parts))):
            wrong.append((pattern, text, "not reached"))
    assert not wrong, wrong
    assert asked > 160 and held > 60 and refused < 20, (asked, held, refused)


CLASSES = (
    "alnum",
    "alpha",
    "blank",
    "cntrl",
    "digit",
    "graph",
    "lower",
    "print",
    "punct",
    "space",
    "upper",
    "xdigit",
)
# every set git's wildmatch knows, and the sets whose reading is easy to get wrong
SETS = [
    *(f"[[:{c}:]]" for c in CLASSES),
    *(f"[![:{c}:]]" for c in CLASSES),
    *("[a-]", "[]-a]", "[!]]", "[\\\\-^]", "[--0]", "[\\]]", "[é]", "[^é]", "?", "*", "[[]", "[[:x]"),
]
NAMES = [chr(c) for c in range(1, 128) if c not in (10, 47)] + ["é", "日", "\udcff"]


@pytest.mark.parametrize("where", ["x{}", "d{}/x"])
def test_every_set_holds_every_byte_as_git_does(repo: Path, where: str) -> None:
    """Each set after a fixed name (``x[...]``) or as a directory's last character
    (``d[...]/x``), against every ASCII character, a name that is not ASCII, and one that
    is not UTF-8."""
    wrong = []
    for s in SETS:
        pattern = where.format(s)
        paths = [where.format(ch) for ch in NAMES]
        by_git = _git_ignored(repo, pattern, paths)
        rules = PathRules([PathRule("read_only", pattern, "t")])
        ours = {p for p in paths if rules.match(p) is not None}
        if ours != by_git:
            wrong.append((pattern, sorted(ours - by_git), sorted(by_git - ours)))
        if "/" in where:
            reached = {p for p in paths if rules.reaches(p.split("/")[0], "read_only")}
            if by_git - reached:
                wrong.append((pattern, "not reached", sorted(by_git - reached)))
    assert not wrong, wrong
