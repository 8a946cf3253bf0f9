"""bubblewrap's CPU for the first ``proxy exec``'s own command line, started from namespaces
of different mount tables, interleaved (first7; issue 31).

``python -m bench.bwrapnsab [--rounds N] [--extra N] [--out FILE]``

bubblewrap 0.8-0.11 reads the whole ``/proc/self/mountinfo`` after every bind it makes
(``bind_mount()`` in ``bind-mount.c``: ``--bind``, ``--ro-bind``, ``--remount-ro`` and each
node of ``--dev``), 49 times for a first call's sandbox, and the table it reads holds every
mount of the namespace it started in (under ``/oldroot``) plus its own. This measures what
that costs, and what two ways around it would save, on the very command line a call runs:

- it records that command line: a home of its own, a 50-file fork, one ``avfs --json proxy
  exec -- true`` with a ``bwrap`` first on ``PATH`` that writes its arguments down (the
  command is then ``true`` itself, the Landlock program left out: bubblewrap alone);
- each round runs it (sides rotating) in a cpuacct cgroup of each side's own
  (:class:`bench.spareab.Group`), from a namespace a holder process keeps:
  ``copy`` a private copy of this one (the control: bubblewrap as a call starts it, but for
  ``--extra``); ``pruned`` a copy with every mount detached that holds none of the
  command line's sources nor lies under one; ``prepared`` a copy holding ``/usr``,
  ``/etc`` (its secrets masked: the same ``/dev/null`` binds and tmpfs) and ``/opt`` ready
  made, read-only, ``nosuid``, ``nodev`` below a directory of its own, and the command line
  binding those three in place of the system's and their masks (so bubblewrap finds
  nothing to remount there, and makes 9 binds fewer); ``both`` the two together;
  ``wrapped`` bubblewrap run (``exec``) by a Perl program that first makes a pruned
  namespace of its own (each sandbox its own prune, nothing kept);
- and, apart, ``prune``: the CPU of making a pruned namespace (that Perl program alone:
  ``unshare``, the mount table read once, the detaches of the outermost mounts not needed),
  which a call would pay where nothing made it ahead.

``--extra N`` mounts N small tmpfs in every holder's namespace first (never the host's), as
a home with N/2 forks mounted (a FUSE view and an overlay each) would have. Needs root.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from . import abkit as ab
from .spareab import Group

SIDES = ("copy", "pruned", "prepared", "both", "wrapped")
SOURCES = ("--bind", "--ro-bind", "--ro-bind-try", "--dev-bind", "--dev-bind-try", "--bind-try")
DEV_NODES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")
SYSTEM = ("/usr", "/etc", "/opt")
CLONE_NEWNS = 0x00020000

# argv: OWN KEEP... [-- COMMAND...]; detaches every mount that holds none of KEEP nor lies
# under one (the outermost of them: what is under one goes with it), in a namespace of its
# own (OWN: made here, private) or the one it is in; then execs COMMAND, if any
PRUNE = r"""
my $own = shift @ARGV;
my @keep; while (@ARGV && $ARGV[0] ne "--") { push @keep, shift @ARGV } shift @ARGV;
if ($own) {
  my ($none, $root) = ("none", "/");
  syscall(272, 0x20000) == 0 or die "unshare: $!";
  syscall(165, $none, $root, 0, 0x4000 | 0x40000, 0) == 0 or die "private: $!";  # MS_REC|MS_PRIVATE
}
sub under { my ($p, $q) = @_; $q eq "/" || $p eq $q || index($p, "$q/") == 0 }
open(my $t, "<", "/proc/self/mountinfo") or die;
my @m = map { (split / /)[4] } <$t>;
close $t;
my (@gone, $n);
for my $m (sort { length($a) <=> length($b) } @m) {
  next if grep { under($_, $m) || under($m, $_) } @keep;
  next if grep { under($m, $_) } @gone;
  my $p = $m;
  if (syscall(166, $p, 2) == 0) { push @gone, $m; $n++ }  # umount2(MNT_DETACH)
}
exec { $ARGV[0] } @ARGV if @ARGV;
print "$n\n";
"""


def record_argv(tmp: Path) -> tuple[list[str], list[str], dict[str, str]]:
    """The bwrap command line of a first ``proxy exec -- true`` (its command: ``true``),
    and how to unmount the fork it leaves mounted (its warm mount: the line binds it)."""
    wrap = tmp / "bin"
    wrap.mkdir()
    (wrap / "bwrap").write_text(f'#!/bin/sh\nprintf "%s\\0" "$@" > {tmp}/argv.$$\nexec /usr/bin/bwrap "$@"\n')
    (wrap / "bwrap").chmod(0o755)
    src = ab.seed_tree(tmp / "src")
    env = {k: v for k, v in os.environ.items() if k not in ("AVFS_SERVER", "AVFS_VAULT")}
    env.update(AVFS_HOME=str(tmp / "home"), AVFS_PROGRESS="never", AVFS_SERVER="0")
    avfs = ab.avfs_bin(str(ab.ROOT))
    ab.run([avfs, "vault", "create", "v", "--from", src], env)
    ab.run([avfs, "vault", "fork", "v", "f"], env)
    env.update(PATH=f"{wrap}:{env['PATH']}", AVFS_VAULT="v:f")
    ab.run([avfs, "--json", "proxy", "exec", "--", "true"], env)
    longest = max(tmp.glob("argv.*"), key=lambda p: p.stat().st_size)  # (not the probe's)
    args = longest.read_bytes().split(b"\0")[:-1]
    out = ["/usr/bin/bwrap", *(a.decode() for a in args)]
    if "--json-status-fd" in out:
        i = out.index("--json-status-fd")
        del out[i : i + 2]
    c = out.index("--chdir")
    return [*out[:c], "--chdir", "/", "--", "/usr/bin/true"], [avfs, "unmount"], env


def sources(args: list[str]) -> list[str]:
    """What the command line binds from the namespace bubblewrap starts in."""
    out = ["/proc", *DEV_NODES]
    out += [os.path.realpath(args[i + 1]) for i, a in enumerate(args) if a in SOURCES]
    return sorted(set(out))


def prepared_argv(args: list[str], top: str) -> list[str]:
    """``args`` with ``/usr``, ``/etc``, ``/opt`` bound from ``top`` and ``/etc``'s masks left
    out (they are in ``top/etc`` already)."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--ro-bind" and args[i + 1] in SYSTEM and args[i + 2] == args[i + 1]:
            out += [a, top + args[i + 1], args[i + 2]]
            i += 3
        elif a == "--ro-bind" and args[i + 1] == "/dev/null" and args[i + 2].startswith("/etc/"):
            i += 3
        elif a == "--perms" and args[i + 2] == "--tmpfs" and args[i + 3].startswith("/etc/"):
            i += 4
        elif a == "--remount-ro" and args[i + 1].startswith("/etc/"):
            i += 2
        else:
            out.append(a)
            i += 1
    return out


def masks(args: list[str]) -> tuple[list[str], list[str]]:
    """The files and directories of /etc the command line masks."""
    files = [args[i + 2] for i, a in enumerate(args) if a == "--ro-bind" and args[i + 1] == "/dev/null"]
    dirs = [args[i + 1] for i, a in enumerate(args) if a == "--tmpfs" and args[i + 1].startswith("/etc/")]
    return files, dirs


def holder_script(tmp: Path, args: list[str], extra: int, prune: bool, prepare: bool) -> str:
    """The shell program a holder runs in a private copy of this namespace."""
    lines = ["set -e"]
    if extra:
        lines.append(f"mkdir -p {tmp}/extra")
        lines.append(
            f"for i in $(seq {extra}); do mkdir -p {tmp}/extra/$i; mount -t tmpfs -o size=4k x {tmp}/extra/$i; done"
        )
    if prepare:
        top = f"{tmp}/prep"
        files, dirs = masks(args)
        lines.append(
            f"mkdir -p {top} && mount -t tmpfs -o size=64k prep {top} && mkdir {top}/usr {top}/etc {top}/opt"
        )
        for d in SYSTEM:
            lines.append(f"mount --rbind {d} {top}{d}")
        for f in files:
            lines.append(f"mount --bind /dev/null {top}{f}")
        for d in dirs:
            lines.append(f"mount -t tmpfs -o size=4k,mode=0755 x {top}{d}")
        lines.append(
            f"awk '{{print $5}}' /proc/self/mountinfo | grep '^{top}/' | "
            'while read m; do mount -o remount,bind,ro,nosuid,nodev "$m"; done'
        )
    keep = sources(args)
    if prepare:
        keep.append(f"{tmp}/prep")
    if prune:
        lines.append("perl -e '" + PRUNE.replace("'", "'\\''") + "' 0 " + " ".join(keep) + " -- > /dev/null")
    lines.append("echo ready")
    lines.append("exec sleep 100000")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--extra", type=int, default=0)
    ap.add_argument("--name", default="first7")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    libc = ctypes.CDLL(None, use_errno=True)
    groups = {n: Group(f"ns-{n}") for n in (*SIDES, "prune")}
    holders: dict[str, subprocess.Popen[str]] = {}
    got: dict[str, list[float]] = {n: [] for n in (*SIDES, "prune")}
    loads: list[float] = []
    lines: dict[str, int] = {}
    try:
        with ab.scratch("avfs-bwrapnsab-") as tmp:
            call, unmount, env = record_argv(tmp)
            argvs = {
                n: prepared_argv(call, f"{tmp}/prep") if n in ("prepared", "both") else call for n in SIDES
            }
            for n in SIDES:
                if n == "wrapped":
                    continue  # (started from the copy's)
                script = holder_script(
                    tmp, call, args.extra, n in ("pruned", "both"), n in ("prepared", "both")
                )
                h = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                     stdout=subprocess.PIPE, text=True)  # fmt: skip
                assert h.stdout is not None and h.stdout.readline().strip() == "ready", n
                holders[n] = h
                with open(f"/proc/{h.pid}/mountinfo") as fh:
                    lines[n] = len(fh.readlines())
            fds = {n: os.open(f"/proc/{h.pid}/ns/mnt", os.O_RDONLY) for n, h in holders.items()}
            keep = sources(call)
            with tempfile.TemporaryDirectory() as d:
                Path(d, "prune.pl").write_text(PRUNE)

                def entered(n: str, grp: str) -> Any:
                    def enter() -> None:
                        groups[grp].enter()
                        if libc.setns(fds[n], CLONE_NEWNS) != 0:
                            os._exit(99)

                    return enter

                for i, n in ab.warm_rounds([*SIDES, "prune"], args.rounds, loads):  # round 0 untimed
                    u0 = groups[n].usage_ms()
                    if n == "prune":  # from the copy's namespace (--extra's size), a namespace of its own
                        subprocess.run(["perl", str(Path(d, "prune.pl")), "1", *keep, "--"], check=True,
                                       preexec_fn=entered("copy", n), stdout=subprocess.DEVNULL)  # fmt: skip
                    elif n == "wrapped":  # the same, then bubblewrap from there: each its own prune
                        subprocess.run(["perl", str(Path(d, "prune.pl")), "1", *keep, "--", *call], check=True,
                                       preexec_fn=entered("copy", n))  # fmt: skip
                    else:
                        subprocess.run(argvs[n], check=True, preexec_fn=entered(n, n))
                    if i:
                        got[n].append(groups[n].usage_ms() - u0)
            for fd in fds.values():
                os.close(fd)
            for h in holders.values():  # (each holds a copy of the fork's mount)
                h.kill()
                h.wait()
            ab.run(unmount, env)
    finally:
        for h in holders.values():
            h.kill()
            h.wait()
        for grp in groups.values():
            grp.close()
    summary = {n: {"median_ms": statistics.median(v), "min_ms": min(v)} for n, v in got.items() if v}
    for n, s in summary.items():
        print(f"{n:9} {s['median_ms']:6.2f} ms of CPU (min {s['min_ms']:5.2f})"
              f"{f'  mount table {lines[n]} lines' if n in lines else ''}")  # fmt: skip
    ab.print_loads(loads)
    out = args.out or ab.stamped(f"{args.name}-bwrapns-ab")
    doc = {"rounds": args.rounds, "extra": args.extra, "argv": call, "mountinfo_lines": lines,
           "cpu_ms": got, "summary": summary, "load_1min": loads}  # fmt: skip
    ab.write_json(out, doc, indent=1, announce=True)


if __name__ == "__main__":
    main()
