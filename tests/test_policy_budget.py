"""Classification costs work in proportion to the command line's length, and stops at a hard
budget of steps (not of time, so the verdict is the same on every machine): past it, a
command is too long or complex to analyse — ``require_approval`` for ``proxy exec``,
``deny`` for an agent hook.

Work is counted two ways, neither of them a clock: the classifier's own steps, and every
Python function call made while classifying (``sys.setprofile``), which also counts work the
classifier does not know it does (re-lexing, rules tried per wrapper)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from avfs_git.policy import Outcome, Policy
from avfs_git.policy.classify import Classifier
from avfs_git.policy.lexer import MAX_STEPS
from tests.test_hooks import pre

WS = "/work/ws"


def _work(command: str) -> tuple[int, int]:
    """(classifier steps, Python calls) to classify ``command``."""
    policy = Policy.default()
    calls = [0]

    def count(frame: Any, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            calls[0] += 1

    clf = Classifier(policy, WS, WS)
    sys.setprofile(count)
    try:
        parts = clf.script_text(command, clf.start_cwd, 0)
        clf.late(parts, command)
    finally:
        sys.setprofile(None)
    return clf.budget.spent, calls[0]


SHAPES: dict[str, Callable[[int], str]] = {
    "env chain": lambda n: "env " * n + "rm -rf /",
    "sudo chain": lambda n: "sudo -u x " * n + "ls",
    "nice with assignments": lambda n: "nice " + "X=1 " * n + "ls",
    "; chain": lambda n: "".join(f"echo {i}; " for i in range(n)) + "ls",
    "&& chain": lambda n: "".join(f"test -e f{i} && " for i in range(n)) + "ls",
    "pipeline": lambda n: "cat x" + " | grep y" * n,
    "sh -c of a long script": lambda n: "sh -c '" + "".join(f"echo {i};" for i in range(n)) + "'",
    "nested sh -c": lambda n: "sh -c 'sh -c \"sh -c ls\"' ; " * n + "ls",
    "deep parentheses": lambda n: "(" * min(n, 20) + "ls" + ")" * min(n, 20) + "; ls" * n,
    "command substitutions": lambda n: "echo " + "$(ls) " * n,
    "long here-document": lambda n: "cat <<EOF\n" + "a line $HOME of text\n" * n + "EOF\n",
    "here-document to sh": lambda n: "sh <<EOF\n" + "".join(f"echo {i}\n" for i in range(n)) + "EOF\n",
    "huge single word": lambda n: "echo " + "a" * (50 * n),
    "unterminated quote": lambda n: "echo 'x; " + "rm -rf b; " * n,
    "node one-liner": lambda n: 'node -e "' + "require('fs').writeFileSync('a', String(1));" * n + '"',
    "perl one-liner": lambda n: "perl -ne '" + 'print if /x/; s/a/b/g; unlink "f";' * n + "' f",
    "git options": lambda n: "git " + "-c user.name=a " * n + "ls-remote --upload-pack=x .",
    "sed clusters": lambda n: "sed " + "-nEs " * n + "-i s/a/b/ f",
}


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_work_grows_linearly(shape: str) -> None:
    make = SHAPES[shape]
    small = _work(make(300))
    big = _work(make(1200))
    for what, a, b in zip(("steps", "calls"), small, big, strict=True):
        # four times the length: at most about four times the work (plus a constant)
        assert b <= 4.6 * a + 2000, f"{shape}: {what} grew from {a} to {b} for 4x the input"


@pytest.mark.parametrize(
    "command",
    [
        "env " * 60000 + "rm -rf /",
        "sudo " * 100000 + "ls",
        "true; " * 120000,
        "echo " + "x " * 300000,
        "sh -c 'sh -c \"ls; " + "ls; " * 100000 + "\"'",
    ],
    ids=["env x60000", "sudo x100000", "true; x120000", "300000 words", "nested sh -c"],
)
def test_past_the_budget_a_person_decides(command: str) -> None:
    d = Policy.default().classify(command, WS, WS)
    assert d.action == Outcome.REQUIRE_APPROVAL, d.reason
    assert d.rule == "builtin:too-complex"
    assert "too long or complex to analyse" in d.reason
    assert f"more than {MAX_STEPS} steps" in d.reason
    assert len(d.reason) < 300  # the command itself is not echoed whole


def test_work_before_the_budget_stops_is_bounded() -> None:
    """The budget is checked as the work is done, not after it: a command ten times past it
    costs no more than one just past it."""
    just_past = _work_or_stop("env " * 70000 + "ls")
    ten_times = _work_or_stop("env " * 700000 + "ls")
    assert ten_times <= just_past * 1.2


def _work_or_stop(command: str) -> int:
    clf = Classifier(Policy.default(), WS, WS)
    calls = [0]

    def count(frame: Any, event: str, arg: Any) -> None:
        calls[0] += 1

    sys.setprofile(count)
    try:
        clf.script_text(command, clf.start_cwd, 0)
    except Exception as exc:  # the budget's own stop
        assert "steps" in str(exc)
    finally:
        sys.setprofile(None)
    return calls[0]


def test_too_long_text_needs_approval_without_reading_it() -> None:
    d = Policy.default().classify("ls " + "a" * 1_000_001, WS, WS)
    assert d.action == Outcome.REQUIRE_APPROVAL and d.rule == "builtin:too-complex"
    assert "longer than 1000000 characters" in d.reason


def test_a_stricter_unparsable_default_holds_past_the_budget() -> None:
    policy = Policy.from_text('version = 1\n[defaults]\nunparsable = "deny"\n')
    d = policy.classify("env " * 60000 + "ls", WS, WS)
    assert d.action == Outcome.DENY and d.rule == "builtin:too-complex"


def test_a_hook_denies_past_the_budget(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    _, out = pre("env " * 60000 + "rm -rf /", str(project), CLAUDE_PROJECT_DIR=str(project))
    assert out["permissionDecision"] == "deny", out
    assert "too long or complex to analyse" in out["permissionDecisionReason"]
    json.dumps(out)  # the answer is a small document, not the command echoed
    assert len(out["permissionDecisionReason"]) < 400
