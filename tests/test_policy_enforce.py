"""What the classifier decides about commands that reach past the workspace: avfs itself
(which could approve its own token), credential stores and host files outside the fork,
and interpreter one-liners. Nothing here runs a command: every string is only parsed."""

from __future__ import annotations

import pytest

from avfs_git.policy import Outcome, Policy

WS = "/work/ws"

A = Outcome.ALLOW
D = Outcome.DENY


def decide(command: str) -> tuple[Outcome, str, str]:
    d = Policy.default().classify(command, WS, WS)
    return d.action, d.rule, d.reason


# -- avfs itself -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "env -u AVFS_WORKSPACE avfs --home H proxy approve --yes apv_0",
        "avfs proxy approve apv_0",
        "./.venv/bin/avfs --json proxy approve --yes apv_0",
        "/usr/local/bin/avfs mcp --client-approves",
        "nohup avfs push",
        "sh -c 'avfs hooks install'",
        'bash -c "env -i avfs proxy exec -- rm -rf /"',
        "timeout 5 python3 -m avfs_git proxy approve apv_0",
        "python3 -X importtime -m avfs_git.cli.main status",
        "python3 -I -mavfs_git proxy approve apv_0",
        "python3 -c 'from avfs_git.proxy import approval'",
        "uvx avfs proxy approve apv_0",
        "avfs",
        "avfs -- status",
        "avfs --home /x --vault v checkpoint",
        "ls && avfs undo",
    ],
)
def test_running_avfs_itself_is_denied(command: str) -> None:
    action, rule, reason = decide(command)
    assert action is D, (command, reason)
    assert rule == "builtin:avfs-itself", (command, rule, reason)
    assert "runs avfs itself" in reason or "imports avfs itself" in reason


@pytest.mark.parametrize(
    "command",
    [
        "avfs status",
        "avfs --json --home /h log -n 3",
        "avfs --vault=v:f diff --stat",
        "avfs cat a.txt",
        "avfs ls -l",
    ],
)
def test_avfs_that_only_reads_is_allowed(command: str) -> None:
    action, _, reason = decide(command)
    assert action is A, (command, reason)


@pytest.mark.parametrize(
    "command", ["python3 script.py", "python3 -m pytest", "python -c 'print(1)'", "avfsx status"]
)
def test_other_programs_are_not_avfs(command: str) -> None:
    _, rule, _ = decide(command)
    assert rule != "builtin:avfs-itself"
