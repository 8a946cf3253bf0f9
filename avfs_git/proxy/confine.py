"""Confinement: every ``proxy exec`` command runs in a bubblewrap sandbox by default.

`bubblewrap <https://github.com/containers/bubblewrap>`_ (``bwrap``, the Debian package
``bubblewrap``; Flatpak's sandbox) builds the view; this module only says what goes in it
(:func:`plan`) and turns that into ``bwrap`` arguments (:func:`argv`). What the command sees:

- the fork (its mount, or its materialized copy) read-write at ``path``: where the fork is
  mounted, or the project's own path (``--isolate --at PATH``);
- ``/usr``, ``/etc``, ``/bin``, ``/sbin``, ``/lib*``, ``/opt`` read-only (symlinks stay
  symlinks), with the secrets of ``/etc`` (:mod:`.sysview`: shadow files, SSH host keys,
  sudoers, TLS private keys...) replaced by empty ones;
- a fresh ``/proc`` of a PID namespace of its own, a minimal ``/dev``, a private ``/tmp``
  and a private, empty ``$HOME``;
- the vault, read-only (its entries bound into a private directory at its path, where git can
  take ``packed-refs.lock`` and rewrite the sandbox's own ``packed-refs`` to delete a ref:
  :func:`_kept`) but for what ``git`` needs to
  commit in the fork: the fork's
  worktree git dir (its index, locks; what git runs or trusts in it pinned read-only) and
  scratch copies of ``refs/``, ``logs/`` and an object quarantine bound over the vault's
  own (:mod:`.seal`: only the fork's branch is carried back, validated), with avfs's own
  state in it (``<vault>/avfs``: other forks' overlays, the mount registry and its exec
  sockets' names, the audit log) replaced by an empty directory, but for the fork's mount's
  fsmonitor hook and the daemon's socket it asks (both in the mount's own directory
  ``<vault>/avfs/mounts/<key>.d``) and the vault's objects (the quarantine's alternate),
  shown read-only;
- per vault caches (``<vault>/avfs/caches/pip``...) read-write where the policy names them
  (``[defaults] caches``), with ``PIP_CACHE_DIR``, ``npm_config_cache``, ``CARGO_HOME``
  pointing at them.

Nothing else of the host is there: ``/root``, ``/home``, the avfs home (other vaults,
approvals), other mounts, ``/run`` (the docker socket, ``SSH_AUTH_SOCK``, whose variable is
dropped too). IPC and UTS namespaces of its own; a network namespace of its own (no network
at all, and none of the host's abstract Unix sockets, avfs's exec sockets among them)
unless the policy gives the command the host's network (:func:`network_for`); a
``filtered`` network keeps that namespace and reaches only the policy's hosts, through
the forwarder and filtering proxy of :mod:`.netproxy`. ``--die-with-parent``
(the sandbox goes when avfs does) and ``--new-session`` (no ``TIOCSTI`` into a terminal);
a seccomp filter (:mod:`.seccomp`, ``--seccomp``) refuses the kernel's keyrings and audit
socket, which no namespace separates (the person's keys were readable; the host's audit
log took records).
A command running as root keeps only :data:`KEPT_CAPS` (no ``CAP_SYS_ADMIN``: it cannot
remount its way out; with the host's network, no ``CAP_NET_RAW`` either: it would read the
host's traffic; nor ``CAP_NET_BIND_SERVICE``: the host's ports below 1024). The command runs under a Landlock domain (:mod:`.landlock`, applied
inside by bwrap's command) that lets it make links and special files only beneath the fork
and the sandbox's own writable places: never in the vault (the worktree's git dir, which
the person's git in the mount uses while the command runs, and the seal's scratch).

bwrap itself runs on the host, as the caller's user (root, often), before anything is
confined: so it is started with an environment avfs builds (:data:`BWRAP_ENV`), never the
command's. The command's environment (the caller's ``--env``, MCP's ``env``, the API's) is
written as ``--clearenv`` and ``--setenv NAME VALUE`` to a descriptor (:func:`env_fd`: not on
a command line the host's ``/proc`` shows) that the program applying the Landlock domain
inside reads, applying it only after the domain, as it starts the command (where no Perl
is there, bwrap reads it as ``--args FD`` and applies it as it starts the command): an
``LD_PRELOAD`` (or any loader variable) given for the command never loads into bwrap, nor
into what runs before the domain.

Where ``bwrap`` cannot run (:func:`unavailable` says why: not installed, or user namespaces
refused), ``proxy exec`` refuses to run a confined command (one envelope, exit 125, naming
what is missing and how to install it), unless the policy says ``confine = "namespace"``
(``[defaults]``): then :mod:`.isolate`'s hand-made hidden view, weaker (the host's
network), runs it, and the envelope's ``confinement`` says so, and why.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import types
from typing import Final

from ..core.errors import SandboxUnavailableError
from ..core.records import dataclass
from .sandboxfds import env_args as env_args  # re-exported: the descriptors handed to bwrap
from .sandboxfds import env_fd as env_fd
from .sandboxfds import life_fd as life_fd
from .sandboxfds import outer_fd as outer_fd
from .sandboxfds import seccomp_fd as seccomp_fd
from .sandboxfds import status_pipe as status_pipe
from .sysview import PROC_HOST_WIDE, SYSTEM_DIRS, system_args

# what a root command keeps (:data:`.isolate.KEPT_CAPS` and NET_RAW: Docker's default
# without MKNOD, SETFCAP and AUDIT_WRITE, which wrote the host's audit log: :mod:`.seccomp`)
KEPT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT",
)  # fmt: skip
# dropped too where the command shares the host's network: raw and packet sockets there
# read every frame of the host's interfaces, its loopback's too (the thirty-third round,
# NAME=attack24: a root command sniffed a token another process sent to 127.0.0.1); a port
# below 1024 there is the host's (a root command took a free one, its service's name to
# clients, for its run: the thirty-fourth round, NAME=plant2)
HOST_NETWORK_DROPS = frozenset(("CAP_NET_RAW", "CAP_NET_BIND_SERVICE"))
# files of the new /proc shown empty: `/proc/keys` lists the description of every key the
# user may view (its session's, its user keyring's: a Kerberos cache's principal, a tool's
# token's name), `/proc/key-users` their counts; the keyctl calls are refused (:mod:`.seccomp`)
PROC_MASKED = ("/proc/keys", "/proc/key-users")
# variables never passed into the sandbox: what they point at is not there, and a path
# they name is a way out (an agent socket)
DROPPED_ENV = ("SSH_AUTH_SOCK", "SSH_AGENT_PID", "GPG_AGENT_INFO", "DBUS_SESSION_BUS_ADDRESS", "DOCKER_HOST",
               "XDG_RUNTIME_DIR", "DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY")  # fmt: skip
# the caches a policy may name, and the variables that point a tool at one
CACHES = {"pip": ("PIP_CACHE_DIR",), "npm": ("npm_config_cache",), "cargo": ("CARGO_HOME",)}
NETWORKS = ("none", "host", "filtered")
# credential stores in a home: never shown by the policy's `readable` (nor what holds them)
HOME_SECRETS = (".ssh", ".aws", ".gnupg", ".netrc", ".git-credentials", ".docker", ".kube",
                ".config/gcloud", ".config/gh", ".azure", ".npmrc", ".pypirc", ".cargo/credentials.toml",
                ".cargo/credentials", ".avfs")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Sandbox:
    """What one command sees: ``source`` (the fork's mount or copy) at ``path``."""

    source: str
    path: str
    cwd: str  # absolute, at or under path
    network: str  # none | host | filtered
    home: str | None = None  # a private, empty $HOME here
    keep: tuple[str, ...] = ()  # host directories shown read-only (the vault)
    writable: tuple[str, ...] = ()  # in them: what stays writable (what git needs)
    pinned: tuple[tuple[str, str], ...] = ()  # in those: (file shown read-only, from where)
    # the vault's refs/, logs/, objects/ as the sandbox gets them (.seal): (source, target,
    # writable), bound in order over the vault's own
    sealed: tuple[tuple[str, str, bool], ...] = ()
    masked: tuple[str, ...] = ()  # in keep: directories shown empty (avfs's state)
    shown: tuple[tuple[str, str], ...] = ()  # in masked: (path, host source) shown read-only
    caches: tuple[tuple[str, str], ...] = ()  # (name, directory), read-write
    readable: tuple[str, ...] = ()  # host paths shown read-only (the policy's `readable`)
    root: bool = False  # running as root: drop capabilities
    proxy_socket: str | None = None  # network "filtered": the filtering proxy's socket (host side)
    aliases: tuple[str, ...] = ()  # paths shown as symlinks to ``path`` (the fork's mount point)
    # (a path of keep, a host directory): shown writable as that path's top directory in
    # place of a tmpfs (.seal's, holding the packed-refs avfs wrote: see _kept)
    top: tuple[str, str] | None = None


# where every fork of a vault appears in the sandbox (see :func:`stable_path`)
STABLE_ROOT = "/avfs"


def stable_path(vault: str) -> str:
    """Where the sandbox shows any fork of vault ``vault``: one path for all of them, so
    that the absolute paths tools write into their outputs (a venv's shebangs and its
    editable ``.pth``, npm's and cmake's caches, cargo's fingerprints) name the same
    place in a fork of that fork, which shares those outputs. A path no host has
    (``/avfs/<vault>``): a copy of such an output run outside the sandbox fails at once,
    rather than silently running another checkout's files (a project's own directory,
    the other choice, is one)."""
    return f"{STABLE_ROOT}/{vault}"


# what bwrap itself is started with: nothing of the caller's (no loader variable can reach
# it); the command's own environment goes in through --args (see env_fd)
BWRAP_ENV: Final = types.MappingProxyType({"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"})
NOT_INSTALLED: Final = "bubblewrap is not installed (the `bwrap` program; Debian package `bubblewrap`)"
INSTALL_HINT: Final = "install bubblewrap (`apt-get install bubblewrap`; `dnf install bubblewrap`)"
# no filter of the kernel's keyrings and audit socket (:mod:`.seccomp`) can be made: refused
# as where bwrap is missing (it ran unfiltered, silently, until the thirty-fourth round)
NO_SECCOMP: Final = (
    "libseccomp is not installed (`libseccomp.so.2`; Debian package `libseccomp2`): the sandbox's"
    " filter of the kernel's keyrings and audit socket cannot be made"
)
SECCOMP_HINT: Final = "install libseccomp (`apt-get install libseccomp2`; `dnf install libseccomp`)"


def no_sandbox(why: str) -> SandboxUnavailableError:
    """The error of a confined command refused because no sandbox can be made (fail closed):
    what is missing and how to install it, or the weaker view a policy may accept instead."""
    missing = why.startswith(NOT_INSTALLED)
    no_filter = why.startswith(NO_SECCOMP)
    how = (
        INSTALL_HINT
        if missing
        else SECCOMP_HINT
        if no_filter
        else "let bubblewrap make user namespaces here (see docs/proxy.md, Confinement)"
    )
    return SandboxUnavailableError(
        f"{why}: a confined command cannot run here; the command did not run",
        hint=(
            f'{how}; or accept a weaker hand-made view with confine = "namespace" under [defaults]'
            " in the policy (docs/policy.md), or run it unconfined with --host writable"
        ),
        details={
            "missing": "bwrap" if missing else "libseccomp" if no_filter else None,
            "package": "libseccomp2" if no_filter else "bubblewrap",
            "reason": why,
        },
    )


def bwrap_path() -> str | None:
    """Where ``bwrap`` is on this process's ``PATH`` now (looked up once per ``PATH``: the
    resident CLI server's calls each run with their caller's)."""
    return _which(os.environ.get("PATH"))


@functools.cache
def _which(path: str | None) -> str | None:
    return shutil.which("bwrap", path=path)


def _probe() -> str | None:
    bwrap = bwrap_path()
    return NOT_INSTALLED if bwrap is None else _probe_at(bwrap)


@functools.cache
def _probe_at(bwrap: str) -> str | None:
    """Whether ``bwrap`` makes a sandbox here: run once per process and program (a process
    forked after it, a served call's, has the answer: :func:`avfs_git.cli.resident.main`)."""
    true = "/bin/true" if os.path.exists("/bin/true") else "/usr/bin/true"
    args = [bwrap, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-pid", "--unshare-net",
            "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session", "--", true]  # fmt: skip
    try:
        proc = subprocess.run(args, capture_output=True, timeout=10, check=False, env=dict(BWRAP_ENV))
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot run bwrap: {exc}"
    if proc.returncode == 0:
        return None
    why = proc.stderr.decode(errors="replace").strip() or f"exit {proc.returncode}"
    return f"bwrap cannot make a sandbox here ({why})"


def unavailable() -> str | None:
    """Why no bwrap sandbox can be made here (None: it can). Probed once per process and
    ``bwrap`` found on the ``PATH``; and no sandbox without its seccomp filter
    (:data:`NO_SECCOMP`: the kernel's keyrings and audit socket would be the command's)."""
    if bwrap_path() is None:
        return NOT_INSTALLED
    why = _probe()
    if why is None:
        from .seccomp import program

        if program() is None:
            return NO_SECCOMP
    return why


def can_alias(sb: Sandbox, alias: str) -> bool:
    """Whether ``alias`` can be shown in ``sb`` as a symlink to its fork: an absolute path
    that is not the fork's, not in a system directory, and not where something of the host
    is shown (the vault, the caches, ``readable`` paths; bwrap could not make it there)."""
    shown = (sb.path, *sb.keep, *sb.readable, *(d for _, d in sb.caches))
    return os.path.isabs(alias) and check_path(alias) is None and not any(_overlaps(alias, x) for x in shown)


def check_path(path: str) -> str | None:
    """Why ``path`` cannot be where the fork appears in a sandbox (None: it can)."""
    if not os.path.isabs(path):
        return f"--at {path!r} must be an absolute path"
    p = os.path.normpath(path)
    if p == "/":
        return "--at / would hide the whole system: give the project's directory"
    if any(p == d or p.startswith(d + "/") for d in ("/proc", "/dev", *SYSTEM_DIRS)):
        return f"--at {path!r} is inside a system directory the sandbox keeps read-only"
    return None


def network_for(
    categories: list[str],
    action: str,
    policy_network: str,
    allow: tuple[str, ...] = (),
    rules: tuple[str, ...] = (),
) -> str:
    """The network a command gets: none when one of its commands was judged by a rule of
    ``NO_NETWORK_RULES`` (``rules``: the rule of each command; git told to run a program
    of the command line's choosing, ``--upload-pack=CMD``); the host's when the policy's
    ``[defaults] network`` is ``host``; when it is classified ``networked`` and the policy
    lets it run (allowed, or approved), the host's, or ``filtered`` (only the hosts of
    ``network_allow``) when that list names any; ``filtered`` too when ``[defaults]
    network`` says so; else none (a network namespace of its own)."""
    from ..policy.model import NO_NETWORK_RULES

    if NO_NETWORK_RULES.intersection(rules):
        return "none"
    if policy_network == "host":
        return "host"
    if "networked" in categories and action in ("allow", "allow_with_checkpoint", "require_approval"):
        # require_approval: it runs only with a person's approval
        return "filtered" if allow or policy_network == "filtered" else "host"
    return "filtered" if policy_network == "filtered" else "none"


def readable_paths(
    paths: tuple[str, ...], home: str | None, avfs_home: str, also_never: str | None = None
) -> tuple[str, ...]:
    """The policy's ``readable`` paths, ``~/`` expanded against ``home`` (the caller's
    ``$HOME``; dropped without one), normalized; left out: ``/``, those in a system
    directory (shown anyway), and the avfs home, what is in it and what holds it (the
    approvals are never shown); the credential stores of ``home`` and of ``also_never``
    (the ``$HOME`` the command asked for), and what holds them, neither."""
    never = [os.path.normpath(avfs_home)]
    for one in (home, also_never):
        if one and os.path.isabs(one):
            h = os.path.normpath(one)
            never += [h + "/" + c for c in HOME_SECRETS]
            never.append(h + "/")  # the home itself (and what holds it), not what is in it
    out = []
    for p in paths:
        if p.startswith("~/"):
            if not home or not os.path.isabs(home):
                continue
            p = os.path.join(home, p[2:])
        p = os.path.normpath(p)
        if p == "/" or check_path(p) is not None or any(_overlaps(p, x) for x in never):
            continue
        out.append(p)
    return tuple(dict.fromkeys(out))


def _overlaps(p: str, x: str) -> bool:
    """Whether showing ``p`` would show ``x`` or a part of it (``x`` ending in ``/``: only
    ``x`` itself and what holds it count)."""
    if x.endswith("/"):
        x = x[:-1]
        return p == x or x.startswith(p + "/")
    return p == x or p.startswith(x + "/") or x.startswith(p + "/")


def cache_dirs(state_dir: str, names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(name, directory) of the vault's caches the policy names, made if missing."""
    out = []
    for name in names:
        d = os.path.join(state_dir, "caches", name)
        os.makedirs(d, mode=0o700, exist_ok=True)
        out.append((name, d))
    return tuple(out)


def environment(env: dict[str, str], sb: Sandbox) -> dict[str, str]:
    """``env`` as the command gets it in ``sb``: agent sockets dropped, caches set, a
    ``TMPDIR`` outside ``/tmp`` (not in the sandbox) pointed at its private ``/tmp``."""
    out = {k: v for k, v in env.items() if k not in DROPPED_ENV}
    if "TMPDIR" in out and not (out["TMPDIR"] == "/tmp" or out["TMPDIR"].startswith("/tmp/")):
        out["TMPDIR"] = "/tmp"  # the caller's is not in the sandbox; its /tmp is private
    for name, d in sb.caches:
        for var in CACHES[name]:
            out[var] = d
    if sb.network == "filtered":
        from . import netproxy

        out = netproxy.environment(out)
    return out


def _resolver() -> list[str]:
    """Where ``/etc/resolv.conf`` is a symlink out of ``/etc`` (systemd-resolved's stub in
    ``/run``, which the sandbox does not show), the file it names, read-only: so names
    resolve for a command given the host's network."""
    try:
        if not os.path.islink("/etc/resolv.conf"):
            return []
        target = os.path.realpath("/etc/resolv.conf")
    except OSError:
        return []
    if not os.path.isfile(target) or any(target.startswith(d + "/") for d in SYSTEM_DIRS):
        return []
    return ["--ro-bind", target, target]


def _kept(path: str, covered: frozenset[str] = frozenset(), top: str | None = None) -> list[str]:
    """``path`` (the vault) read-only, as bwrap arguments: each of its entries bound
    read-only into a private, writable directory at ``path``, not the directory itself.

    git takes ``<vault>/packed-refs.lock`` for every ref it deletes (git 2.39's files
    backend locks the common directory's packed refs for each deletion, a worktree's own
    refs included), and what it deletes in bulk (``git bisect start``/``reset``, ``git
    branch -D``, ``git tag -d``, ``git stash clear``) it deletes by writing a new
    ``packed-refs`` and renaming it over the old one. So in a read-only vault all of them
    failed (EROFS), and with a read-only ``packed-refs`` shown in a tmpfs, the bulk ones
    still did (EBUSY: a mount point is not renamed over). The lock, and whatever else the
    command makes at the vault's top, lands in a directory of the sandbox's own: ``top``
    (the seal's, on the host: :mod:`.seal`), else a tmpfs that goes with it; nothing
    reaches the vault, and the entries stay read-only mount points (neither removed nor
    renamed over). In ``top``, ``packed-refs`` is avfs's own regular file, which git may
    rewrite there (read back and reported after the run, written anew before the next:
    :mod:`.sealpack`), not the vault's. An entry at one of ``covered`` (what the sandbox
    mounts over it later: the seal's scratch ``refs/``, ``logs/``, ``objects/``, the masked
    state) is not bound first: each mount is set-up time (bwrap made the point for it)."""
    args = ["--perms", "0755", "--tmpfs", path] if top is None else ["--bind", top, path]
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError:
        return ["--ro-bind", path, path]
    for e in entries:
        if e.path in covered or (top is not None and e.name == "packed-refs"):
            continue
        if e.is_symlink():
            args += ["--symlink", os.readlink(e.path), e.path]
        elif e.is_dir(follow_symlinks=False) or e.is_file(follow_symlinks=False):
            args += ["--ro-bind-try", e.path, e.path]  # (one gone since: not an error)
    return args


def kept_files(keep: tuple[str, ...]) -> tuple[str, ...]:
    """Which files :func:`_kept` binds, by inode: a sandbox made ready before its command
    (:mod:`.standby`) holds the very files it bound, so one replaced since (git writes
    ``config`` and ``HEAD`` by a rename over them) must make its key differ."""
    out = []
    for k in keep:
        try:
            with os.scandir(k) as it:
                for e in it:
                    if e.is_file(follow_symlinks=False):
                        st = e.stat(follow_symlinks=False)
                        out.append(f"{e.path}:{st.st_dev}:{st.st_ino}")
        except OSError:
            continue
    return tuple(sorted(out))


def bound_in_writable(sb: Sandbox) -> tuple[str, ...]:
    """What is bound read-only over a path of a directory the sandbox writes (the
    worktree's ``config.worktree``, ``commondir``, ``gitdir``, the person's git state: a
    host file or directory is the mount point), by inode. The person's git replacing one
    on the host (``git config --worktree`` writes ``config.worktree`` by a rename; a
    rebase they finish removes ``rebase-merge/``) drops that bind in every sandbox made
    before, where the path then names the new, writable one: a sandbox made ready before
    must not be taken (:func:`.standby._key`; found in the twelfth round)."""
    inside = tuple(w.rstrip("/") + "/" for w in sb.writable)
    targets = [t for t, _ in sb.pinned] + [t for _, t, rw in sb.sealed if not rw]
    out = []
    for t in targets:
        if t.startswith(inside):
            try:
                st = os.lstat(t)
            except OSError:
                continue
            out.append(f"{t}:{st.st_dev}:{st.st_ino}")
    return tuple(out)


def argv(
    sb: Sandbox,
    command: list[str],
    bwrap: str | None = None,
    env_from: int = -1,
    block_fd: int = -1,
    *,
    own: bool = False,
    outer_fd: int = -1,
    seccomp_from: int = -1,
    life_fd: int = -1,
) -> list[str]:
    """The ``bwrap`` command line that runs ``command`` in ``sb``, with the environment
    read from ``env_from`` (:func:`env_fd`; -1: bwrap's own, as a ready sandbox's waiter
    starts). Order matters: bwrap mounts in argument order, so what is shown inside a
    masked directory comes after it. ``block_fd`` (-1: none): the command waits for one
    byte there before it is ``exec``\\ ed (a first call's sandbox, :mod:`.ahead`): in the
    Landlock program once it has applied the domain (:mod:`.landlock`), so that its start
    is done by then too; where there is none, bubblewrap's ``--block-fd``. ``own``:
    ``command`` is a Perl program of avfs's own, run by the Perl that applies the Landlock
    domain (:func:`.landlock.wrap`). ``outer_fd``: :func:`outer_fd`'s; ``life_fd``:
    :func:`life_fd`'s. ``seccomp_from``:
    :func:`seccomp_fd`'s (-1: none; left out of a ready sandbox's key, the same filter)."""
    args = [bwrap or bwrap_path() or "bwrap"]
    args += ["--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    if seccomp_from >= 0:
        args += ["--seccomp", str(seccomp_from)]
    if sb.network != "host":
        args.append("--unshare-net")
    if sb.root:
        args += ["--cap-drop", "ALL"]
        for cap in KEPT_CAPS:
            if sb.network != "host" or cap not in HOST_NETWORK_DROPS:
                args += ["--cap-add", cap]
    args += system_args()
    args += ["--proc", "/proc"]
    for d in PROC_HOST_WIDE:  # after --proc: what it would show writable, read-only
        args += ["--ro-bind-try", d, d]
    for f in PROC_MASKED:  # the user's keys by name (docker masks them so)
        args += ["--ro-bind-try", "/dev/null", f]
    args += ["--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
    args += ["--perms", "1777", "--tmpfs", "/var/tmp"]
    if sb.network == "host":
        args += _resolver()
    private_home = (
        sb.home
        if sb.home and os.path.isabs(sb.home) and check_path(sb.home) is None and sb.home != "/tmp"
        else None
    )
    if private_home is not None:
        args += ["--perms", "0700", "--tmpfs", private_home]
    for r in sb.readable:
        if os.path.exists(r):
            args += ["--ro-bind", r, r]
    covered = frozenset((*(t for _s, t, _w in sb.sealed), *sb.masked))
    for k in sb.keep:
        if os.path.isdir(k):
            args += _kept(k, covered, sb.top[1] if sb.top is not None and sb.top[0] == k else None)
    masked = [m for m in sb.masked if os.path.isdir(m)]
    for m in masked:
        args += ["--perms", "0700", "--tmpfs", m]
    for _, d in sb.caches:  # under the masked state directory: bound before it is read-only
        args += ["--bind", d, d]
    for target, source in sb.shown:  # the mount's fsmonitor hook and socket, the vault's objects
        if os.path.exists(source) and any(target.startswith(m.rstrip("/") + "/") for m in masked):
            args += ["--ro-bind", source, target]
    for m in masked:
        args += ["--remount-ro", m]
    for w in sb.writable:
        if os.path.isdir(w) and not os.path.islink(w):
            args += ["--bind", w, w]
    for source, target, rw in sb.sealed:
        args += ["--bind" if rw else "--ro-bind", source, target]
    for target, source in sb.pinned:
        if os.path.isfile(source) and os.path.isfile(target) and not os.path.islink(target):
            args += ["--ro-bind", source, target]
    if sb.network == "filtered":
        from . import netproxy

        if sb.proxy_socket is None:
            raise ValueError("a filtered network needs the filtering proxy's socket")
        args += ["--ro-bind", sb.proxy_socket, netproxy.SOCKET_IN_SANDBOX]
        command = netproxy.wrap(command)
    from . import landlock

    # no link nor special file made in the vault
    wrapped = landlock.wrap(
        sb, command, env_from, private_home, block_fd, own=own, outer_fd=outer_fd, life_fd=life_fd
    )
    if env_from >= 0 and wrapped is command:  # (no Perl: bwrap applies the environment)
        args[1:1] = ["--args", str(env_from)]
    if block_fd >= 0 and wrapped is command:  # (no Perl: bwrap waits, before it execs the command)
        args[1:1] = ["--block-fd", str(block_fd)]
    command = wrapped
    args += ["--bind", sb.source, sb.path]
    for alias in sb.aliases:
        if can_alias(sb, alias):
            args += ["--symlink", sb.path, alias]
    args += ["--chdir", sb.cwd, "--", *command]
    return args
