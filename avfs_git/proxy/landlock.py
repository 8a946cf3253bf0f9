"""No links nor special files made by a confined command in the worktree's git dir.

The person's own git in a mount reads and writes the fork's worktree git dir while a
confined command runs there (its scrub comes only after the command: :mod:`.seal`). A link
the command planted as a file git writes through (``FETCH_HEAD``, ``COMMIT_EDITMSG``...) or
as a directory git makes files in (``rebase-merge``, ``sequencer``, ``modules``) would have
the person's ``git fetch``/``git commit`` write a host file; a FIFO planted there would
hang it. So the sandbox's command runs under a `Landlock
<https://docs.kernel.org/userspace-api/landlock.html>`_ domain that handles making links
and special files (``MAKE_SYM``, ``MAKE_FIFO``, ``MAKE_SOCK``, ``MAKE_CHAR``,
``MAKE_BLOCK``) and grants them only beneath the sandbox's other writable places (the
fork, ``/tmp``, ``/var/tmp``, ``/dev``, the private ``$HOME``, the caches: :func:`grants`;
told from the vault by device and inode, never by name: the ``$HOME`` is the request's):
not in the vault, so neither in the worktree's git dir nor in the seal's scratch bound over
the vault's ``refs/``, ``logs/`` and objects. ``REFER`` (moving a file from one directory to
another), which any domain denies unless granted, is granted everywhere.

bwrap cannot apply it (its own set-up makes links on a fresh tmpfs no rule can name), so
its command is a small Perl program (:data:`APPLY`; Perl as :mod:`.standby`'s waiter: ~2 ms
where Python takes ~8) that applies the domain inside the sandbox and ``exec``\\ s the
command (:data:`EXEC`); a ready sandbox's waiter is run by that same Perl once the domain
is applied (:func:`wrap`'s ``own``: one Perl start, not two), so the command it starts runs
under the domain too. Where the kernel has no Landlock of ABI 2 or later, or no Perl is
there, the command runs without it (docs/security.md says what is then open); where
Landlock is there but cannot be applied, the command does not run (exit 125)."""

from __future__ import annotations

import os
from typing import Protocol


class Sandbox(Protocol):
    """What of a :class:`.confine.Sandbox` the domain is made from (not imported: confine
    imports this module)."""

    @property
    def path(self) -> str: ...
    @property
    def keep(self) -> tuple[str, ...]: ...
    @property
    def writable(self) -> tuple[str, ...]: ...
    @property
    def sealed(self) -> tuple[tuple[str, str, bool], ...]: ...
    @property
    def caches(self) -> tuple[tuple[str, str], ...]: ...


PERL = "/usr/bin/perl"
# Landlock's filesystem access rights (linux/landlock.h)
MAKE_CHAR, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM, REFER = (
    1 << 6,
    1 << 9,
    1 << 10,
    1 << 11,
    1 << 12,
    1 << 13,
)
MADE = MAKE_CHAR | MAKE_SOCK | MAKE_FIFO | MAKE_BLOCK | MAKE_SYM
# what may be made in the fork: no FIFO (the twenty-eighth round, NAME=attack19): the
# person's git in the mount opens `.gitignore`, `.gitattributes`, `.mailmap` in every
# directory it reads and waits on a FIFO there for a writer, during the run too (the
# record stage removes one only after it, proxy/gitfifos.py); the pure-FUSE mount makes
# none either (its `mknod` answers EPERM)
FORK_MADE = MADE & ~MAKE_FIFO
# argv: MADE REFER ENV_FD GATE_FD OUTER_FD PPOLL FORK_MADE LIFE_FD KEPT... -- PROTECTED... --
# GRANT... -- FORK -- COMMAND... FORK (the fork's directory) is granted FORK_MADE|REFER the
# way a GRANT is MADE|REFER, and kept out of a GRANT that holds it (as a KEPT one is).
# OUTER_FD, PPOLL: see EXEC. ENV_FD (-1: none) holds the command's environment as bwrap's --args reads it (confine.env_args),
# applied after the domain: the program starts with bwrap's own (a loader or Perl variable
# asked for the command would run code in it before the domain). GATE_FD (-1: none): the
# command is ``exec``ed only once one byte is read from it (a first call's sandbox set up
# ahead, proxy/ahead.py: the domain applied while the call takes its record); the end of the
# file or an error there and it does not run (exit 125); closed before the command starts (a
# program of avfs's own, wrap's ``own``, has a gate of its own). REFER is granted on /;
# MADE|REFER on each GRANT directory, or, where a KEPT or PROTECTED directory (the vault;
# what of it is writable: the worktree's git dir, the seal's scratch) is at or beneath it, on
# each of its children that neither is nor holds one (their children, down to it: a rule
# covers all that is beneath its directory, and no rule can take a part of that back); never
# on one at or beneath a PROTECTED directory. Directories are told apart by what they are
# (device and inode, as Landlock's rules hold them), never by how they are named: a GRANT is
# a name the request chose (its $HOME: `<vault>/`, `<git dir>/.`, a link in the fork to the
# git dir all named the git dir), opened once, and everything after goes through that
# descriptor (/proc/self/fd/N, `..` of it: the directory above as the kernel walks it).
# landlock_create_ruleset 444, landlock_add_rule 445, landlock_restrict_self 446 (the same
# numbers on every architecture); bwrap has set no_new_privs already.
APPLY = r"""
my ($m, $r, $ef, $gf, $of, $pp, $mf, $lf) = map { 0 + shift } 1 .. 8; my (@k, @p, @g, @f);
while (@ARGV && $ARGV[0] ne "--") { push @k, shift @ARGV } shift @ARGV;
while (@ARGV && $ARGV[0] ne "--") { push @p, shift @ARGV } shift @ARGV;
while (@ARGV && $ARGV[0] ne "--") { push @g, shift @ARGV } shift @ARGV;
while (@ARGV && $ARGV[0] ne "--") { push @f, shift @ARGV } shift @ARGV;
sub fail { print STDERR "avfs: cannot apply Landlock: $_[0]\n"; exit 125 }
sub id { my @s = stat($_[0]); @s ? "$s[0]:$s[1]" : "" }
my ($rs, %at, %above, %inside, %clean);
for my $q (@p) { my $i = id($q); $inside{$i} = 1 if $i ne "" }
for my $q (@k, @p, @f) {  # (avfs's own paths: nothing of the command's has run yet)
  my $x = $q; my $i = id($x); my $p0 = $i;
  next if $i eq ""; $at{$i} = 1; my (@c, $top);
  for (1 .. 1000) { $x .= "/.."; my $u = id($x); last if $u eq "" || $u eq $i; $above{$u} = 1;
    if (exists $clean{$u}) { $top = $u; last } push @c, $u; $i = $u }
  my $in = defined $top ? !$clean{$top} : 0;
  for my $j (reverse(@c), $p0) { $in ||= $inside{$j}; $clean{$j} = $in ? 0 : 1 }
}
sub beneath { my ($x, $i) = @_;
  for (1 .. 1000) { return 1 if $inside{$i}; return !$clean{$i} if exists $clean{$i}; $x .= "/..";
    my $u = id($x); return 0 if $u eq "" || $u eq $i; $i = $u } 1 }
sub grant {
  my ($d, $mk, $own) = @_;
  sysopen(my $h, $d, 0) or return; my $x = "/proc/self/fd/" . fileno($h); my $i = id($x);
  return if $i eq "" || ($at{$i} && !$own) || beneath($x, $i);
  unless ($above{$i}) {
    syscall(445, $rs, 1, pack("Qi", $mk | $r, fileno($h)), 0) < 0 and fail("$d: $!");
    return;
  }
  opendir(my $dh, $x) or return;
  for my $c (readdir $dh) {
    next if $c eq "." || $c eq "..";
    grant("$x/$c", $mk) if -d "$x/$c" && ! -l "$x/$c";
  }
}
if (syscall(444, 0, 0, 1) >= 2) {
  $rs = syscall(444, pack("Q", $m | $r), 8, 0);
  fail($!) if $rs < 0;
  sysopen(my $root, "/", 0) or fail("/: $!");
  syscall(445, $rs, 1, pack("Qi", $r, fileno($root)), 0) < 0 and fail("/: $!");
  grant($_, $m) for @g;
  grant($_, $mf, 1) for @f;
  syscall(446, $rs, 0) < 0 and fail($!);
}
if ($ef >= 0) {
  open(my $in, "<&=", $ef) or fail("the environment: $!");
  binmode $in; my $d = do { local $/; <$in> }; close $in;
  my @f = split /\0/, $d, -1; pop @f; shift @f;
  %ENV = ();
  while (@f >= 3) { shift @f; my $k = shift @f; $ENV{$k} = shift @f }
}
"""
# what APPLY does next for a command of the caller's: wait at the gate (GATE_FD), make sure
# the bwrap outside the sandbox is still there (OUTER_FD), then exec the command (bwrap's
# messages when it cannot). OUTER_FD (-1: none) is a read end of the pipe whose write end
# only that bwrap holds (its --json-status-fd: its child closes it; docs/benchmarks.md,
# h-tidy2's section): no writer left (POLLHUP, asked with the ppoll syscall, number PPOLL
# for this machine) and it is gone, killed before the
# sandbox's init set --die-with-parent's signal (its set-up goes on without it, and
# nothing would end the command): the command does not run (exit 125). Asked once the
# init (pid 1 here) sleeps in its wait for children, which it starts only after that
# signal is set: gone then, it was gone before, and there after, its death ends the
# sandbox. The descriptor is closed before the command starts.
# LIFE_FD (-1: none): a pidfd of the process that started bwrap (it holds no end of any
# pipe of the sandbox's): asked at the same point, readable and that process has ended. It
# ended before the outer bwrap armed --die-with-parent's signal (the outer's parent was then
# PID 1 already: nothing would ever end the command, nor time it out), or after (the outer
# and the init die with it): either way the command does not run (exit 125). There at that
# point, it was there when the outer armed the signal (before it let the set-up go on), so
# its death ends the sandbox. Closed before the command starts.
# Like APPLY, it loads no module (`$!{EINTR}` loads Errno: 1 ms of CPU; see .standby.WAITER).
EXEC = r"""
if ($gf >= 0) {
  open(my $gh, "<&=", $gf) or fail("the gate: $!");
  my $n; do { $n = sysread($gh, my $x, 1) } while (!defined($n) && $! == 4);  # EINTR
  close $gh;
  exit 125 unless $n;
}
if ($of >= 0 && $pp > 0) {
  for (1 .. 2000) {  # (the init is at its wait within microseconds of starting the command)
    open(my $sh, "<", "/proc/1/stat") or last; my $st = <$sh>; close $sh;
    last unless defined $st && $st =~ /\) R /; select(undef, undef, undef, 0.001);
  }
  my ($fds, $now) = (pack("iss", $of, 1, 0), pack("qq", 0, 0));  # POLLIN; POLLHUP comes back
  my $rev = syscall($pp, $fds, 1, $now, 0, 8) >= 0 ? (unpack("iss", $fds))[2] : 0;
  if ($rev & 0x10) { print STDERR "avfs: the sandbox's bwrap is gone: the command does not run\n"; exit 125 }
}
if ($lf >= 0 && $pp > 0) {  # LIFE_FD: the process that started bwrap, ended (its pidfd readable)?
  my ($fds, $now) = (pack("iss", $lf, 1, 0), pack("qq", 0, 0));
  my $rev = syscall($pp, $fds, 1, $now, 0, 8) >= 0 ? (unpack("iss", $fds))[2] : 0;
  if ($rev & 0x11) { print STDERR "avfs: the process that started the sandbox is gone: the command does not run\n"; exit 125 }
}
if ($of >= 0) { open(my $oh, "<&=", $of) and close $oh }
if ($lf >= 0) { open(my $lh, "<&=", $lf) and close $lh }
exec { $ARGV[0] } @ARGV;
my $e = $! + 0; print STDERR "bwrap: execvp $ARGV[0]: $!\n"; exit($e == 2 || $e == 20 ? 127 : 126);
"""


# the ppoll system call's number on this machine's architecture (-1: not known here, and
# the check of EXEC is not made)
PPOLL = {"x86_64": 271, "aarch64": 73, "riscv64": 73, "loongarch64": 73}.get(os.uname().machine, -1)


def available() -> bool:
    return os.path.exists(PERL)


def grants(sb: Sandbox, home: str | None) -> list[str]:
    """Where, in ``sb``, links and special files may be made (in the fork, all but FIFOs:
    :data:`FORK_MADE`, granted on its own): the sandbox's own writable places (none of them holds the vault, nor is held by it: the caches are
    directories of their own below its masked state); ``home``: the sandbox's private
    ``$HOME``, when it has one (:func:`.confine.argv` decides)."""
    out = ["/tmp", "/var/tmp", "/dev"]
    if home is not None:
        out.append(home)
    out += [d for _, d in sb.caches]
    return out


def wrap(
    sb: Sandbox,
    command: list[str],
    env_fd: int = -1,
    home: str | None = None,
    gate_fd: int = -1,
    *,
    own: bool = False,
    outer_fd: int = -1,
    life_fd: int = -1,
) -> list[str]:
    """``command`` run under the domain, with the environment read from ``env_fd`` (as it
    is where no Perl is there); ``home``: the sandbox's private ``$HOME`` (:func:`grants`);
    ``gate_fd``: the command starts once a byte is read there; ``outer_fd``: the read end
    of the outer bwrap's status pipe, the command starts only while that bwrap is there
    (:data:`EXEC`); ``life_fd``: a pidfd of this process, the command starts only while it
    is there (:data:`EXEC`).
    ``own``: ``command`` may be a Perl program of avfs's own (``PERL -e CODE ARGS...``: a
    ready sandbox's waiter, :mod:`.standby`, which has its own gate), then run by the same
    Perl once the domain is applied, with ``ARGS`` as its ``@ARGV``, instead of a second
    Perl started by ``exec`` (~2 ms of CPU on every sandbox made ready); a command of the
    caller's never is (its Perl reads its own environment, ``PERL5OPT`` and ``@INC`` as it
    starts)."""
    if not available():
        return command
    protected = [*sb.writable, *(target for _, target, _ in sb.sealed)]
    program, args = APPLY + EXEC, command
    if own and len(command) >= 3 and command[:2] == [PERL, "-e"]:
        program, args = APPLY + "{\n" + command[2] + "\n}\n", command[3:]
    outer, life = (-1, -1) if own else (outer_fd, life_fd)
    head = [PERL, "-e", program, str(MADE), str(REFER), str(env_fd), str(gate_fd), str(outer), str(PPOLL)]
    head += [str(FORK_MADE), str(life)]
    return [*head, *sb.keep, "--", *protected, "--", *grants(sb, home), "--", sb.path, "--", *args]
