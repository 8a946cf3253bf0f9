"""The scripts git runs in a mount: the fsmonitor hook (Perl where the mount found ``perl``,
else Python; it relays git's token to the daemon's socket, :mod:`.hooksocket`) and the git
hooks directory a mount's ``core.hooksPath`` names (avfs's ``post-checkout`` guard, the
person's own hooks linked beside it). mount/worktree.py's docstring gives the whole picture.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from ..core.store.gitrun import git_env, git_identity, keep_file, run

if TYPE_CHECKING:
    pass
from .ownfiles import HOOK_FILE, MOVED_FILE, MountedVault, write_file
from .personhooks import GATES, GATES_DIR, PERSONS_FILE, PERSONS_LINK, QUESTION, point

# git's fsmonitor hook of a fork's mount: it relays git's token to the mount's daemon over a
# Unix socket in the mount's own directory and prints the answer (mount/hooksocket.py), which the
# daemon makes from what it alone holds: the kernel's record of an overlay mount's upper
# layer (core/workspace/upperwatch.py), a pure-FUSE mount's journal (mount/journalhook.py).
_SOCKET_HOOK = """#!{python} -IS
# git's fsmonitor hook (protocol v2) for an avfs mount: the mount daemon answers over a Unix
# socket in this directory (from the kernel's record of an overlay mount's upper layer, or
# from a pure-FUSE mount's journal). No answer (the daemon is gone), or half of one: "/",
# everything may differ.
import _socket, os, sys

HOME = {files!r}
SOCKET = {socket!r}
ONLY_STATUS = {only_status!r}  # a git whose diff misreads fsmonitor (hookscripts.FIXED_GIT)
TAKES_VALUE = (b"-c", b"-C", b"--git-dir", b"--work-tree", b"--namespace", b"--config-env", b"--super-prefix")


def git_command():
    # the git command that runs this hook (its parent, or the parent of the shell git ran it
    # with): b"" where it cannot be read, None where no git runs it (a person, a test)
    pid = os.getppid()
    for _ in range(2):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as fh:
                argv = fh.read().split(b"\\0")
        except OSError:
            return b""
        name = os.path.basename(argv[0])
        if name.startswith(b"git-"):
            return name[4:]
        if name == b"git":
            i = 1
            while i < len(argv):
                if argv[i] in TAKES_VALUE:
                    i += 2
                elif argv[i].startswith(b"-"):
                    i += 1
                else:
                    return argv[i]
            return b""
        if name not in (b"sh", b"dash", b"bash") or argv[1:2] != [b"-c"]:
            return None
        try:
            with open("/proc/%d/stat" % pid, "rb") as fh:
                pid = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return b""
    return None


def main():
    token = sys.argv[2] if len(sys.argv) > 2 else ""
    try:
        os.chdir(HOME)  # a socket's address holds 107 bytes: connect by a relative name
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        s.settimeout({timeout_s})
        s.connect(SOCKET)
        s.sendall(token.encode("utf-8", "surrogateescape") + b"\\n")
        chunks = []
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            chunks.append(b)
        head, _, body = b"".join(chunks).partition(b"\\n")
        if not head.isdigit() or int(head) != len(body) or not body.endswith(b"\\0"):
            raise OSError("a partial answer")
    except OSError:
        body = b"avfs-ovl:none\\0/\\0"
    if ONLY_STATUS and git_command() not in (None, b"status"):
        body = body.split(b"\\0", 1)[0] + b"\\0/\\0"  # the daemon's token, everything may differ
    sys.stdout.buffer.write(body)


main()
"""

# The same hook in Perl, which starts in ~2 ms where Python takes ~10 ms: the hook runs on
# every `git status`, and its start-up was most of a warm one. Core built-ins only (`use
# Socket` alone costs ~9 ms): the socket's constants are this machine's, written in by
# socket_hook(), and its address is packed by hand (sa_family_t, then the path, relative).
# -T: taint mode ignores PERL5OPT and PERL5LIB and keeps "." off @INC (as Python's -I ignores
# PYTHON* and keeps the script's directory off sys.path).
_SOCKET_HOOK_PERL = r"""#!@PERL@ -T
# git's fsmonitor hook (protocol v2) for an avfs mount: the mount daemon answers over a Unix
# socket in this directory (from the kernel's record of an overlay mount's upper layer, or
# from a pure-FUSE mount's journal). No answer (the daemon is gone), or half of one: "/",
# everything may differ.
my $token = defined $ARGV[1] ? $ARGV[1] : "";
my $only_status = @ONLY_STATUS@;  # a git whose diff misreads fsmonitor (hookscripts.FIXED_GIT)

# the git command that runs this hook (its parent, or the parent of the shell git ran it
# with): "" where it cannot be read, undef where no git runs it (a person, a test)
sub git_command {
    my $pid = getppid();
    for (1 .. 2) {
        open(my $fh, "<", "/proc/$pid/cmdline") or return "";
        local $/;
        my $line = <$fh>;
        close $fh;
        return "" unless defined $line;
        my @argv = split /\0/, $line;
        my $name = shift @argv;
        return "" unless defined $name;
        $name =~ s{\A.*/}{};
        return substr($name, 4) if $name =~ /\Agit-/;
        if ($name eq "git") {
            while (@argv) {
                my $arg = shift @argv;
                if ($arg =~ /\A(?:-c|-C|--git-dir|--work-tree|--namespace|--config-env|--super-prefix)\z/) {
                    shift @argv;
                    next;
                }
                next if $arg =~ /\A-/;
                return $arg;
            }
            return "";
        }
        return undef unless $name =~ /\A(?:sh|dash|bash)\z/ && @argv && $argv[0] eq "-c";
        open(my $st, "<", "/proc/$pid/stat") or return "";
        my $stat = <$st>;
        close $st;
        return "" unless defined $stat && $stat =~ /.*\)\s+\S+\s+([0-9]+)/s;
        $pid = $1;
    }
    return undef;
}

my $body = eval {
    local $SIG{ALRM} = sub { die "timed out\n" };
    local $SIG{PIPE} = "IGNORE";  # a daemon that hung up: an error, not the end of the hook
    alarm @TIMEOUT_S@;
    # a socket's address holds 107 bytes: connect by a relative name
    chdir @HOME@ or die "chdir: $!\n";
    socket(my $s, @AF_UNIX@, @SOCK_STREAM@, 0) or die "socket: $!\n";
    connect($s, pack("S a*", @AF_UNIX@, @SOCKET@)) or die "connect: $!\n";
    my $out = "$token\n";
    while (length $out) {
        my $n = syswrite($s, $out);
        die "write: $!\n" unless $n;
        substr($out, 0, $n) = "";
    }
    my $in = "";
    while (1) {
        my $n = sysread($s, $in, 65536, length $in);
        die "read: $!\n" unless defined $n;
        last unless $n;
    }
    alarm 0;
    $in =~ /\A([0-9]+)\n/ or die "a partial answer\n";
    my $got = substr($in, length($1) + 1);
    die "a partial answer\n" unless $1 == length($got) && $got =~ /\0\z/;
    $got;
};
alarm 0;
$body = "avfs-ovl:none\0/\0" unless defined $body;
# the daemon's token, everything may differ
if ($only_status) {
    my $command = git_command();
    $body =~ s/\0.*\z/\0\/\0/s if defined $command && $command ne "status";
}
binmode STDOUT;
print $body;
"""


def _perl_str(text: str) -> str:
    """``text`` as a Perl single-quoted string (only ``\\`` and ``'`` are special in one)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# the first git whose diff-index and diff-files lstat an entry that fsmonitor says is unchanged
# (git's 6a044a2048, "diff-lib: fix check_removed when fsmonitor is on", in 2.42.1 and 2.43)
FIXED_GIT = (2, 42, 1)


# what git_trusts_fsmonitor_in_diff found, by the git binary's identity (its real path and
# stat data): a mount's daemon asks at each mount, a daemon forked from the warm CLI server
# (cli/warmdaemon.py) finds the server's answer (asked once as it starts) and starts no
# `git --version` on its way to the mount's answer
_FOUND: dict[bytes, bool] = {}
# the file (in the ``keep`` directory a caller names: a vault's avfs/, a home's run/) that
# keeps the answer for the next process: the identity, a newline, "1" or "0"
KEPT_FILE = "git-fsmonitor-in-diff"


def git_trusts_fsmonitor_in_diff(keep: str | None = None) -> bool:
    """Whether the git on this machine's PATH is :data:`FIXED_GIT` or later. An older git's
    ``check_removed`` skips the ``lstat`` of an entry fsmonitor marked valid and then reads
    the ``struct stat`` it never filled: where that stack garbage looks like a directory
    (about one run in five, with ASLR) ``git diff REV`` (diff-index) takes every such file
    for a deleted one, shows the whole tree removed, and in a lazy mount reads (so fetches)
    every blob of REV. False also where git's version cannot be read. Asked of a git binary
    once per process (a changed or another binary is asked again); ``keep``: a directory
    no sandbox can write (the vault's ``avfs/``) where the answer is kept for the next
    process by the same identity (:data:`KEPT_FILE`: a mount's daemon started cold asked
    git at every mount, h-gitspawn1)."""
    env = git_env()
    key = git_identity(env)
    if key is not None and key in _FOUND:
        return _FOUND[key]
    kept = _kept(keep, key)
    if kept is not None and key is not None:
        _FOUND[key] = kept
        return kept
    try:
        out = run(["--version"], env=env, check=False, text=True).stdout
    except Exception:  # no git at all: the mount's hook is never run by one
        return False
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    found = m is not None and (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) >= FIXED_GIT
    if key is not None:
        _FOUND[key] = found
        if keep is not None and m is not None:
            _keep(keep, key, found)
    return found


def _kept(keep: str | None, key: bytes | None) -> bool | None:
    """The answer :func:`_keep` kept in ``keep`` for the git ``key`` names, or None."""
    if keep is None or key is None:
        return None
    try:
        with open(os.path.join(keep, KEPT_FILE), "rb") as fh:
            ident, _, answer = fh.read(len(key) + 8).rpartition(b"\n")
    except OSError:
        return None
    if ident != key or answer not in (b"0", b"1"):
        return None
    return answer == b"1"


def _keep(keep: str, key: bytes, found: bool) -> None:
    """Keep ``found`` for the git ``key`` names in ``keep`` (replaced whole by a rename;
    nothing where ``keep`` is not there)."""
    keep_file(keep, KEPT_FILE, key + b"\n" + (b"1" if found else b"0"))


def socket_hook(files: str, perl: str | None, timeout_s: int = 60, *, only_status: bool = False) -> str:
    """The fsmonitor hook of the fork's mount whose own directory is ``files`` (either
    backend: its daemon answers over the socket there): in Perl run by ``perl`` (an
    absolute path), or, without one, in Python (this interpreter, isolated: ``-I``). A
    daemon that has not answered within ``timeout_s`` seconds is taken for gone ("/").

    ``only_status`` (a git older than :data:`FIXED_GIT`): the daemon's answer goes only to a
    ``git status`` (read from the command line of the hook's parent, git, or of the parent
    of the shell git ran it with), which refreshes the index before it diffs and so never
    reaches git's bug; any other git command gets the daemon's token with ``/`` (everything
    may differ): it ``lstat``s every file, as git without fsmonitor does, and reads none
    whose stat data the index holds. A hook run by no git (by hand) prints the answer."""
    import socket
    import sys

    from ..core.workspace.hookwire import SOCKET_NAME

    if perl is None:
        return _SOCKET_HOOK.format(
            python=sys.executable,
            files=files,
            socket=SOCKET_NAME,
            timeout_s=timeout_s,
            only_status=only_status,
        )
    subs = {
        "@PERL@": perl,
        "@HOME@": _perl_str(files),
        "@SOCKET@": _perl_str(SOCKET_NAME),
        "@AF_UNIX@": str(int(socket.AF_UNIX)),
        "@SOCK_STREAM@": str(int(socket.SOCK_STREAM)),
        "@TIMEOUT_S@": str(int(timeout_s)),
        "@ONLY_STATUS@": "1" if only_status else "0",
    }
    return re.sub("|".join(subs), lambda m: subs[m.group(0)], _SOCKET_HOOK_PERL)


HOOKS_DIR = "hooks"  # in the mount's own directory: git's hooks there (core.hooksPath)

# every hook name git runs (githooks(5), git 2.39): each is the person's own, reached through
# a link, but post-checkout and reference-transaction, which are avfs's guards and then the
# person's
GIT_HOOKS = (
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-merge",
    "pre-push",
    "pre-receive",
    "update",
    "proc-receive",
    "post-receive",
    "post-update",
    "reference-transaction",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "sendemail-validate",
    "fsmonitor-watchman",
    "p4-changelist",
    "p4-prepare-changelist",
    "p4-post-changelist",
    "p4-pre-submit",
    "post-index-change",
)

# git's post-checkout hook of a fork's mount: a branch switch there (`git switch X`,
# `git checkout -b X`) is switched back at once, since the mount is the fork's (its state,
# its daemon, its registry record), and said why; a detached HEAD and file checkouts pass
_GUARD = """#!/bin/sh
# avfs: the post-checkout hook of the mount of fork {fork_q} (vault {vault_q}); made by
# every mount, in the mount's own directory (a confined command cannot write it)
fork={fork_sh}
# only for this mount's worktree (`git worktree add` runs this hook in the new one)
if [ "$3" = 1 ] && [ "$(git rev-parse --absolute-git-dir 2>/dev/null)" = {git_dir_sh} ]; then
    head=$(git symbolic-ref -q HEAD 2>/dev/null)
    if [ -n "$head" ] && [ "$head" != "refs/heads/$fork" ]; then
        echo "avfs: this mount is fork $fork of vault "{vault_sh}": switching back to $fork" \\
            "(a mount does not follow a switch to ${{head#refs/heads/}})" >&2
        if git -c core.hooksPath=/dev/null checkout -q --ignore-other-worktrees "$fork" -- 2>&1 >/dev/null | sed 's/^/avfs: /' >&2 &&
            [ "$(git symbolic-ref -q HEAD 2>/dev/null)" = "refs/heads/$fork" ]; then
            echo "avfs: to work on ${{head#refs/heads/}}: avfs mount "{vault_sh}":${{head#refs/heads/}} DIR" >&2
        else
            echo "avfs: could not switch back; run: git switch $fork" >&2
        fi
        exit 1
    fi
fi
{persons}persons_hooks
hook=$chain/post-checkout
if [ -f "$hook" ] && [ -x "$hook" ]; then
    exec "$hook" "$@"
fi
exit 0
"""


# git's reference-transaction hook of a fork's mount: the fork's branch is not deleted (nor
# renamed away: `git branch -m`, which deletes the old name) by git there, as git itself
# refuses `git branch -D` of a worktree's checked-out branch; the mount is the fork's (its
# workspace, its daemon) whatever git's HEAD names. Nor is HEAD (`git update-ref -d HEAD`
# of a detached HEAD: its file gone, git no longer takes the mount for a repository). Only
# the "prepared" state can refuse (git then aborts the transaction and dies: "ref updates
# aborted by hook"). git's rename has moved the branch's reflog aside before it deletes
# the old name and does not move it back when it dies: the "aborted" run of a refused
# deletion puts it back. The lines are read by the shell itself (no process a transaction
# but the shell: this hook runs at every ref update in the mount, twice for a `git
# commit`; a deletion of the branch reads the command line of git, its parent, with one
# `tr`), and handed to the person's own hook, which runs after, as git would run it.
# Nor are avfs's held refs (refs/avfs/held/: core/store/heldref.py) moved or deleted by git
# there (but by its pack-refs, which only packs them): a `git update-ref -d` of one, then
# `git gc`, pruned what the mounted view stands on (gitgc2, gitgc3).
# It also writes the last move of the branch made by git in this mount's worktree, once
# committed, in the mount's own directory (ownfiles.MOVED_FILE, by the shell's redirection):
# how avfs tells git's move in the mount from another hand's (mount/live.py) where the
# worktree's HEAD log no longer says (`git reflog expire` empties it). Only git whose
# $GIT_DIR is this worktree's: a linked worktree made from the mount copies its config, so
# runs this hook too, and its moves are another hand's (gitgc2 took them for the mount's).
_REF_GUARD = """#!/bin/sh
# avfs: the reference-transaction hook of the mount of fork {fork_q} (vault {vault_q}); made
# by every mount, in the mount's own directory (a confined command cannot write it)
fork={fork_sh}
input=
hit=
held=
moved=
while read -r old new ref; do
    input="$input$old $new $ref
"
    if [ "$ref" = "refs/heads/$fork" ] || [ "$ref" = HEAD ]; then
        case $new in *[!0]*) ;; *) hit=1 ;; esac
    fi
    if [ "$ref" = "refs/heads/$fork" ]; then
        case $new in *[!0]*) moved="$old $new" ;; esac
    fi
    case $ref in refs/avfs/held/*) held=1 ;; esac
done
if [ -n "$moved" ] && [ "$1" = committed ]; then
    case $GIT_DIR in
    {git_dir_sh}|{git_dir_real_sh}) here=1 ;;
    "") here= ;;
    *) here=$(cd -P -- "$GIT_DIR" 2>/dev/null && pwd -P) && [ "$here" = {git_dir_real_sh} ] || here= ;;
    esac
    if [ -n "$here" ]; then
        {{ printf '%s\n' "$moved" > {moved_sh}; }} 2>/dev/null
    fi
fi
# git's pack-refs (run by `git gc`, `git maintenance`) deletes each loose ref it packed: the
# ref stays (in packed-refs), so its git, this hook's parent, passes
pack_refs() {{
    set -f
    set -- $(tr '\\0' ' ' < "/proc/$PPID/cmdline" 2>/dev/null)
    case ${{1##*/}} in git-pack-refs) return 0 ;; git) shift ;; *) return 1 ;; esac
    while [ $# -gt 0 ]; do
        case $1 in
        -c|-C|--git-dir|--work-tree|--namespace|--config-env) shift; [ $# -gt 0 ] && shift ;;
        -*) shift ;;
        pack-refs) return 0 ;;
        *) return 1 ;;
        esac
    done
    return 1
}}
if [ -n "$hit$held" ] && pack_refs; then
    hit=
    held=
fi
if [ -n "$held" ] && [ "$1" = prepared ]; then
    echo "avfs: refs/avfs/held/ is avfs's own: it keeps the commits and files the mounted" \
        "forks' views stand on from git's gc; git does not move or delete it here" >&2
    echo "avfs: it goes with its fork (avfs vault delete "{vault_sh}":FORK --force), and names" \
        "nothing once the fork's changes are checkpointed and it is unmounted" >&2
    exit 1
fi
if [ -n "$hit" ] && [ "$1" = prepared ]; then
    echo "avfs: refs/heads/$fork is fork $fork of vault "{vault_sh}", mounted here:" \\
        "git does not delete or rename it (nor HEAD) here, as it keeps a checked-out branch" >&2
    echo "avfs: to delete the fork: avfs vault delete "{vault_sh}":$fork --force (undoable);" \\
        "to keep its commit under another name: git branch NAME $fork" >&2
    exit 1
fi
if [ -n "$hit" ] && [ "$1" = aborted ]; then
    logs={logs_sh}
    if [ -f "$logs/.tmp-renamed-log" ] && ! [ -e "$logs/heads/$fork" ]; then
        mkdir -p "$(dirname "$logs/heads/$fork")" 2>/dev/null
        mv "$logs/.tmp-renamed-log" "$logs/heads/$fork" 2>/dev/null
    fi
fi
{persons}persons_hooks
hook=$chain/reference-transaction
if [ -f "$hook" ] && [ -x "$hook" ]; then
    printf %s "$input" | "$hook" "$@"
    exit
fi
exit 0
"""

# the person's own hooks directory, as the guards and gates chain to it: the one
# mount/personhooks.py last pointed the link at (its file's first line), while that file is
# newer than each config file git reads it from and those they include (its lines after the
# fourth: personhooks.watched), by the shell's own tests, no process; else the daemon is
# asked to point it again (the fsmonitor hook with personhooks.QUESTION: where git's
# fsmonitor is off for the worktree nothing else asks), and looked up here only where that
# did not make it current (the daemon gone; a config file only this git's environment names)
_PERSONS = """persons_read() {{
    n=0
    for f in {vault_config_sh} "${{GIT_CONFIG_GLOBAL:-$HOME/.gitconfig}}" \\
        "${{XDG_CONFIG_HOME:-$HOME/.config}}/git/config" "${{GIT_CONFIG_SYSTEM:-/etc/gitconfig}}"; do
        if [ -e "$f" ] && ! [ {stamp_sh} -nt "$f" ]; then
            return 1
        fi
    done
    while IFS= read -r line; do
        n=$((n + 1))
        case $n in
        1) chain=$line ;;
        2|3|4) ;;
        *)
            case $line in
            "*") return 1 ;;
            +*) if ! [ -e "${{line#+}}" ] || ! [ {stamp_sh} -nt "${{line#+}}" ]; then return 1; fi ;;
            -*) if [ -e "${{line#-}}" ]; then return 1; fi ;;
            esac
            ;;
        esac
    done 2>/dev/null < {stamp_sh}
    [ -n "$chain" ]
}}
persons_hooks() {{
    chain=
    if ! persons_read; then
        chain=
        if [ -x {ask_sh} ]; then
            {ask_sh} 2 {question_sh} >/dev/null 2>&1
        fi
        persons_read || chain=
    fi
    if [ -z "$chain" ]; then
        # (as git in this worktree reads it, its own config.worktree, avfs's value, left out)
        while IFS='	' read -r scope value; do
            case $scope in worktree|command) ;; *) chain=$value ;; esac
        done <<EOF
$(GIT_DIR={git_dir_sh} git config --get-all --show-scope --path core.hooksPath 2>/dev/null)
EOF
        case $chain in
        "") chain={vault_hooks_sh} ;;
        /*) ;;
        *) chain={mountpoint_sh}/$chain ;;
        esac
    fi
    # (a mount's own hooks directory named as the person's: the guard chained to itself,
    # a fork bomb; avfs's directories are never the person's hooks: the vault's are)
    case $chain in
    {vault_sh}/avfs/*) chain={vault_hooks_sh} ;;
    esac
    if [ "$chain" -ef "${{0%/*}}" ]; then chain={vault_hooks_sh}; fi
}}
"""

# the hooks that start a command's chain (personhooks.GATES) while git's fsmonitor is off for
# the worktree: the person's hook of that name, run once the link to the person's hooks
# directory is current (the rest of the chain, a link each, follows it)
_GATE = """#!/bin/sh
# avfs: the {name} hook of the mount of fork {fork_q} (vault {vault_q}): the person's own,
# once the link to the person's hooks directory is current; made by every mount, in the
# mount's own directory (a confined command cannot write it)
{persons}persons_hooks
hook=$chain/{name}
if [ -f "$hook" ] && [ -x "$hook" ]; then
    exec "$hook" "$@"
fi
exit 0
"""


def _sh(text: str) -> str:
    import shlex

    return shlex.quote(text)


def make_hooks(vault: MountedVault, own: str, git_dir: str, mountpoint: str, fork: str) -> str:
    """Make the mount's hooks directory in its own directory ``own`` (its
    ``core.hooksPath``): the branch-switch guard as ``post-checkout``, the fork's branch
    kept from deletion as ``reference-transaction``, and a link to the person's hook of
    every other name. Returns its path."""
    d = os.path.join(own, HOOKS_DIR)
    os.makedirs(d, mode=0o755)
    persons = _PERSONS.format(
        stamp_sh=_sh(os.path.join(d, PERSONS_FILE)),
        vault_config_sh=_sh(os.path.join(vault.path, "config")),
        vault_sh=_sh(vault.path),
        vault_hooks_sh=_sh(os.path.join(vault.path, "hooks")),
        mountpoint_sh=_sh(mountpoint),
        git_dir_sh=_sh(git_dir),
        ask_sh=_sh(os.path.join(own, HOOK_FILE)),
        question_sh=_sh(QUESTION),
    )
    point(d, vault.path, mountpoint, git_dir)
    gates = os.path.join(own, GATES_DIR)
    os.makedirs(gates, mode=0o755)
    for name in GATES:
        text = _GATE.format(name=name, fork_q=fork, vault_q=vault.name, persons=persons)
        write_file(gates, name, text.encode(), mode=0o755)
    for name in GIT_HOOKS:  # (the gates' links pointed by the daemon: mount/hooksocket.py)
        if name not in ("post-checkout", "reference-transaction"):
            os.symlink(os.path.join(PERSONS_LINK, name), os.path.join(d, name))
    guard = _GUARD.format(
        fork_q=fork,
        vault_q=vault.name,
        fork_sh=_sh(fork),
        vault_sh=_sh(vault.name),
        persons=persons,
        git_dir_sh=_sh(os.path.realpath(git_dir)),
    )
    write_file(d, "post-checkout", guard.encode(), mode=0o755)
    ref_guard = _REF_GUARD.format(
        fork_q=fork,
        vault_q=vault.name,
        fork_sh=_sh(fork),
        vault_sh=_sh(vault.name),
        persons=persons,
        logs_sh=_sh(os.path.join(vault.path, "logs", "refs")),
        git_dir_sh=_sh(git_dir),
        git_dir_real_sh=_sh(os.path.realpath(git_dir)),
        moved_sh=_sh(os.path.join(own, MOVED_FILE)),
    )
    write_file(d, "reference-transaction", ref_guard.encode(), mode=0o755)
    return d


# a path the shell reads as one word as it is (git runs core.fsmonitor through `sh -c` when
# the command holds any of its metacharacters: a space, a quote, `=`, `#`, ...)
_SHELL_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./,:@+-")


def shell_word(path: str) -> str:
    """``path`` as one shell word: as it is when plain, else single-quoted (git runs
    ``core.fsmonitor`` through the shell: a home under ``/home/J Doe`` would split it;
    mount/worktree.py, mount/untracked.py)."""
    if path and all(c in _SHELL_PLAIN for c in path):
        return path
    return "'" + path.replace("'", "'\\''") + "'"
