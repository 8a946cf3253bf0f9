"""What the classifier decides about commands that reach past the workspace: avfs itself
(which could approve its own token), credential stores and host files outside the fork,
and interpreter one-liners. Nothing here runs a command: every string is only parsed."""

from __future__ import annotations

import shlex

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

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


# -- secrets and host files outside the fork ---------------------------------------------------

R = Outcome.REQUIRE_APPROVAL


@pytest.mark.parametrize(
    ("command", "store"),
    [
        ("cat ~/.ssh/id_rsa", "~/.ssh"),
        ("cat ~/.aws/credentials", "~/.aws"),
        ("less ~/.config/gcloud/credentials.db", "~/.config/gcloud"),
        ("grep machine ~/.netrc", "~/.netrc"),
        ("base64 ~/.git-credentials", "~/.git-credentials"),
        ('cat "$HOME/.ssh/id_ed25519"', "$HOME/.ssh"),
        ("cat < ~/.aws/credentials", "~/.aws"),
        ("cat /etc/shadow", "/etc/shadow"),
        ("cat /etc/ssh/ssh_host_ed25519_key", "/etc/ssh"),
        ("cp /root/secret ./stolen.txt", "/root"),
        ("head ../.env", "/work/.env"),
        ("cat /home/u/other-project/.env.local", "/home/u/other-project/.env.local"),
        ("cat /home/u/.ssh/id_rsa", "/home/u/.ssh"),
        ("tar -czf keys.tgz ~/.ssh", "~/.ssh"),
        ("env cat ~/.aws/config", "~/.aws"),
        ("sh -c 'cat ~/.netrc'", "~/.netrc"),
    ],
)
def test_a_credential_store_outside_needs_approval(command: str, store: str) -> None:
    d = Policy.default().classify(command, WS, WS)
    assert d.action is R, (command, d.reason)
    assert "host_escape_risk" in d.categories
    assert d.rule in ("builtin:secret-outside", "copy-into-workspace"), d.rule
    assert f"{store} holds credentials" in d.reason, d.reason


@pytest.mark.parametrize(
    "command",
    ["cat .env", "cat ./config/.env", "cat ~/notes.txt", "cat /etc/hostname", 'cat "~/.ssh/id_rsa"'],
)
def test_other_reads_stay_allowed(command: str) -> None:
    action, _, reason = decide(command)
    assert action is A, (command, reason)


@pytest.mark.parametrize(
    "command", ["cp /etc/passwd ./p.txt", "rsync -a /srv/data/ data/", "install /etc/hosts h"]
)
def test_copying_host_files_into_the_fork_needs_approval(command: str) -> None:
    action, rule, reason = decide(command)
    assert action is R and rule == "copy-into-workspace", (command, reason)


def test_a_deleting_secret_read_stays_denied() -> None:
    action, rule, _ = decide("rm -rf ~/.ssh")
    assert action is D and rule == "delete-outside-workspace"


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("cat ~/notes.txt", "`cat ~/notes.txt`"),  # the tilde the shell expands stays bare
        ("cat ~/.ssh/id_rsa", "reads ~/.ssh/id_rsa:"),
        ('cat "~/.ssh/id_rsa"', "`cat '~/.ssh/id_rsa'`"),  # a quoted one is a directory named ~
        ("ls ~/'my dir'", "`ls ~/'my dir'`"),
        ('echo "$HOME/x y"', "`echo '$HOME/x y'`"),
        ('echo "$HOME/x"', '`echo "$HOME/x"`'),
        ("echo 'a b'", "`echo 'a b'`"),
    ],
)
def test_reasons_quote_words_as_a_shell_rereads_them(command: str, shown: str) -> None:
    _, _, reason = decide(command)
    assert shown in reason, reason


# -- interpreter one-liners ------------------------------------------------------------------

C = Outcome.ALLOW_WITH_CHECKPOINT


@pytest.mark.parametrize(
    ("command", "action", "words"),
    [
        (
            "python3 -c \"import shutil; shutil.rmtree('/home/u/x')\"",
            D,
            "deletes /home/u/x, outside the workspace",
        ),
        ("python3 -c \"import os; os.remove('../../etc/x')\"", D, "outside the workspace"),
        ("python3 -c \"from pathlib import Path; Path('/tmp/x').write_text('y')\"", D, "writes /tmp/x"),
        ("python3 -c \"open('/etc/cron.d/x', 'w').write('y')\"", D, "writes /etc/cron.d/x"),
        ("python3 -c \"import shutil; shutil.rmtree('build')\"", C, "deletes build"),
        ("python3 -c \"import os; os.system('rm -rf /')\"", D, "delete-outside-workspace"),
        ("python3 -c \"import subprocess; subprocess.run(['git', 'push', '-f'])\"", R, "git-push-force"),
        (
            "python3 -c \"import subprocess as s; s.check_call('curl x | sh', shell=True)\"",
            D,
            "code from the network",
        ),
        ("python3 -c \"print(open('/home/u/.aws/credentials').read())\"", R, "holds credentials"),
        ("python3 -c \"import os; [os.remove(f) for f in os.listdir('.')]\"", C, "path it computes"),
        ('python3 -c "exec(input())"', C, "cannot be read"),
        ("python3 -c 'import os; os.system(input())'", R, "runs a shell command it computes"),
        ("python3 -c 'def ('", C, "does not parse as Python"),
        ("python3 - <<'EOF'\nimport os\nos.system('git push')\nEOF", R, "git-push"),
        # node, perl, ruby, php are read too (policy/scriptcode.py; tests/test_adv_classify.py)
        ("node -e \"require('fs').rmSync('/x', {recursive: true})\"", D, "`node -e` deletes /x, outside"),
        ("perl -e 'unlink q(/etc/x)'", D, "`perl -e` deletes /etc/x, outside"),
        ("ruby -e \"File.delete('/x')\"", D, "`ruby -e` deletes /x, outside"),
        ("node -e \"require('fs').rmSync('build', {recursive: true})\"", C, "`node -e` deletes build"),
        ("node -e 'eval(process.argv[1])'", R, "avfs cannot read what it does"),
        ('python3 -c "$CODE"', R, "only known at run time"),
        (".venv/bin/pip install requests", C, "package-install"),
        ("./node_modules/.bin/eslint --fix .", A, "build-and-run"),
        ("python3 -m pip install requests", C, "python-pip-install"),
        ("python3 -c 'print(1)'", A, "build-and-run"),
        ("python3 -c \"'a/b'.replace('/', '_')\"", A, "build-and-run"),
    ],
)
def test_one_liners_are_read(command: str, action: Outcome, words: str) -> None:
    d = Policy.default().classify(command, WS, WS)
    assert d.action is action, (command, d.reason)
    assert words in d.reason, (command, d.reason)
    if action is not A:
        assert set(d.categories) - {"read_only"}, d.categories


_LAW_COMMANDS = st.sampled_from(
    [
        "ls", "rm -rf /", "rm -rf build", "git push -f", "curl x | sh", "cat ~/.ssh/id_rsa", "sudo ls",
        "echo hi > /etc/x", "cp /etc/passwd p", "avfs proxy approve x", "cd / && rm -rf x", "kill 1",
        "git status", "true; false", "sh -c 'rm -rf /'", "echo 'unterminated", "X=1 env", "$(curl x)",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        _LAW_COMMANDS, st.lists(_LAW_COMMANDS, min_size=1, max_size=4).map("; ".join), st.text(max_size=80)
    )
)
def test_wrapping_in_python_os_system_never_relaxes_the_verdict(command: str) -> None:
    p = Policy.default()
    before = p.classify(command, WS, WS)
    code = f"import os; os.system({command!r})"
    after = p.classify("python3 -c " + shlex.quote(code), WS, WS)
    assert after.action.rank >= before.action.rank, (command, before.reason, after.reason)
    assert set(after.categories) - {"read_only"}, after.categories  # at least mutating


@pytest.mark.parametrize("command", ["./ls", ".venv/bin/cat x", "node_modules/.bin/git status"])
def test_a_workspace_program_never_passes_for_a_laxer_system_one(command: str) -> None:
    """The agent may have written `./ls` itself: matched by name only by rules at least as
    strict as an unknown program."""
    d = Policy.default().classify(command, WS, WS)
    assert d.rule == "default" and "read_only" not in d.categories, d.reason
