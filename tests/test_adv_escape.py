"""The boundary's regression suite, from the attacker's side: a few hundred commands that
try to reach outside the fork, run through a real confined `avfs proxy exec` (bubblewrap,
a warm overlay mount made by `avfs up`), then the person's host-side steps that could follow
what they planted (`git status`, `avfs status`, checkpoint, `avfs cat`, `export`, two
`apply`s, `down --keep`).

Each case is a shell snippet of one class (write, delete, chmod/chown, rename, hard link,
symlink-following toward a host path; /proc, /dev, namespaces, chroot, ptrace, signals,
setuid, sockets, network, self-approval, git's options that run programs, git's object and
ref writes). They run in batches, each as its own `sh` with a cwd of its own in the fork,
recording inside the fork what it printed, its exit status and what it wrote in the
sandbox's writable places, so a failure names the case. The host keeps canaries (files with
known bytes, modes and link counts; directory listings; a TCP and two Unix listeners'
hit counters; a live process; the vault's refs) that must be unchanged afterwards, and the
fork must have lost nothing. Each command text is also judged by `avfs policy check` in
process: one classed `read_only` must have written nothing, even inside the sandbox (the
agent hook lets a read-only command run unconfined in a plain project).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.vaults import layers
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import mounts

from .conftest import run_in_process
from .test_confine import _need_bwrap
from .test_overlay import require_overlay

pytestmark = pytest.mark.slow  # about 20 s: two mounts, ~300 attempts, the host-side steps

# what a classed-read-only command may leave behind and still have written nothing: none
KNOWN_READ_ONLY_WRITERS: dict[str, str] = {}


# -- the host's listeners ------------------------------------------------------------------


class Listener:
    """A socket the sandbox must not reach: counts every connection accepted."""

    def __init__(self, family: int, address: Any) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(address)
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.hits += 1
            with contextlib.suppress(OSError):
                conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nHIT\n")
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def _host_ip() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet: picks the interface a route would use
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


# -- snapshots of the host -----------------------------------------------------------------


def _entry(path: str) -> tuple[Any, ...] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    kind = stat.S_IFMT(st.st_mode)
    body: str = ""
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as fh:
            body = hashlib.sha256(fh.read()).hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        body = os.readlink(path)
    elif stat.S_ISDIR(st.st_mode):
        body = "\0".join(sorted(os.listdir(path)))
    return (
        kind,
        stat.S_IMODE(st.st_mode),
        st.st_uid,
        st.st_gid,
        st.st_nlink if kind != stat.S_IFDIR else 0,
        body,
    )


def snapshot(roots: list[str], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every path at and below each root (symlinks not followed): type, mode, owner, link
    count, content hash or link text or names."""
    out: dict[str, Any] = {}
    for root in roots:
        out[root] = _entry(root)
        if out[root] is None or not os.path.isdir(root) or os.path.islink(root):
            continue
        for d, dirs, files in os.walk(root):
            dirs[:] = [x for x in dirs if os.path.join(d, x) not in skip]
            for name in dirs + files:
                p = os.path.join(d, name)
                if p not in skip:
                    out[p] = _entry(p)
    return out


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


# -- the world -----------------------------------------------------------------------------


def _avfs(
    *args: str, env: dict[str, str] | None = None, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avfs_git", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        errors="replace",
    )


def _person(*args: str) -> subprocess.CompletedProcess[str]:
    """`avfs ARGS` as the person runs it, in the test's process (``run_in_process``: the
    same CLI, ~0.15 s of a cold process's CPU less a call, suitetime25): the host-side
    steps after the attempts (status, checkpoint, cat, export, apply, down). The attempts
    themselves, the long command line and the set-up (`up`, `vault create`: a vault the
    test's process made keeps its databases open, and their files change later, inside a
    directory the host's snapshot compares) run as processes of their own (:func:`_avfs`,
    :func:`_exec`)."""
    r = run_in_process(list(args))
    return subprocess.CompletedProcess(list(args), r.code, r.out, r.err)


def _exec(fork: str, *argv: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    r = _avfs("--vault", f"proj:{fork}", "--json", "proxy", "exec", "--", *argv, env=env)
    docs = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(docs) == 1, (r.stdout, r.stderr)
    doc: dict[str, Any] = json.loads(docs[0])
    assert doc["exit_code"] == r.returncode, doc
    return doc


def _git(cwd: str, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    require_overlay()
    _need_bwrap()
    tok = os.urandom(6).hex()
    secret = f"SECRET-{tok}"
    hh = os.environ["HOME"]
    ah = os.environ["AVFS_HOME"]
    # the person's project, imported by `avfs up` twice: the agent's fork and another one
    proj = tmp_path / "proj"
    (proj / "keep").mkdir(parents=True)
    for i in range(3):
        (proj / "keep" / f"f{i}.txt").write_text(f"keep {i}\n")
    (proj / "README.md").write_text("# proj\n")
    _git(str(proj), "init", "-q")
    _git(str(proj), "add", "-A")
    _git(str(proj), "commit", "-qm", "init")
    # the person's HOME and its dotfiles
    for name, body in ((".bashrc", "# bashrc\n"), (".profile", "# profile\n"), (".ssh/authorized_keys", "ssh-ed25519 AAAA person\n"), (".ssh/id_secret", secret + "\n")):  # fmt: skip
        p = Path(hh, name)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(body)
    created: list[str] = []
    system = {}
    for d in ("/etc", "/root", "/home", "/var", "/var/tmp", "/run", "/tmp", "/opt"):
        if not os.path.isdir(d):
            continue
        p = os.path.join(d, f".avfs-esc-{tok}")
        with contextlib.suppress(OSError):
            Path(p).write_text(secret + "\n")
            os.chmod(p, 0o600)
            created.append(p)
            system[d] = p
    tcp = Listener(socket.AF_INET, ("0.0.0.0", 0))
    port = tcp.sock.getsockname()[1]
    tcp6 = None
    with contextlib.suppress(OSError):
        tcp6 = Listener(socket.AF_INET6, ("::1", port))
    agent_sock = str(tmp_path / "agent.sock")
    ssh = Listener(socket.AF_UNIX, agent_sock)
    docker = None
    if not os.path.exists("/run/docker.sock"):
        with contextlib.suppress(OSError):
            docker = Listener(socket.AF_UNIX, "/run/docker.sock")
            created.append("/run/docker.sock")
    sleeper = subprocess.Popen(["sleep", "600"])
    sysctls = _sysctls()
    hostname = socket.gethostname()
    m1 = m2 = ""
    try:
        r = _avfs("--json", "up", str(proj), "--agent", "agent-1")
        assert r.returncode == 0, r.stderr
        m1 = json.loads(r.stdout)["mountpoint"]
        r = _avfs("--json", "up", str(proj), "--agent", "agent-2")
        assert r.returncode == 0, r.stderr
        m2 = json.loads(r.stdout)["mountpoint"]
        Path(m2, "secret.txt").write_text(secret + "\n")  # the other fork's uncheckpointed work
        r = _avfs("--json", "vault", "create", "other")
        assert r.returncode == 0, r.stdout + r.stderr
        vdir = os.path.join(ah, "vaults", "proj.git")
        reg = json.loads(Path(vdir, "avfs", "mounts", "agent-1.json").read_text())
        reg2 = json.loads(Path(vdir, "avfs", "mounts", "agent-2.json").read_text())
        yield {
            "T": tok, "SECRET": secret, "HH": hh, "AH": ah, "PROJ": str(proj), "M1": m1, "M2": m2,
            "V": vdir, "OV": os.path.join(ah, "vaults", "other.git"), "DPID": reg["pid"], "DPID2": reg2["pid"],
            "SOCK1": reg["exec_socket"], "SOCK2": reg2["exec_socket"], "PORT": port, "HOSTIP": _host_ip(),
            "SSHSOCK": agent_sock, "SLEEP": sleeper.pid, "system": system, "tcp": tcp, "tcp6": tcp6,
            "ssh": ssh, "docker": docker, "sleeper": sleeper, "sysctls": sysctls,
            "hostname": hostname, "tmp": str(tmp_path),
        }  # fmt: skip
    finally:
        for key, value in _sysctls().items():  # first: put back what an escape changed
            if value != sysctls[key]:
                with contextlib.suppress(OSError):
                    Path(key).write_text(sysctls[key])
        for m, fork in ((m1, "agent-1"), (m2, "agent-2")):
            if m and os.path.ismount(m):
                h = _home(ah)
                mounts.unmount(h, h.vault("proj"), fork, lazy=True)
                h.close()
        sleeper.kill()
        sleeper.wait()
        for lst in (tcp, tcp6, ssh, docker):
            if lst is not None:
                lst.close()
        for p in created:
            with contextlib.suppress(OSError):
                os.unlink(p)
        layers.unmount(ah)


# machine-wide kernel settings a root process could write through /proc/sys
SYSCTLS = (
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/modprobe",
    "/proc/sys/kernel/hostname",
    "/proc/sys/vm/overcommit_memory",
    "/proc/sys/fs/protected_symlinks",
    "/proc/sys/net/ipv4/ip_forward",
)


def _sysctls() -> dict[str, str]:
    out = {}
    for key in SYSCTLS:
        with contextlib.suppress(OSError):
            out[key] = Path(key).read_text()
    return out


def _home(path: str) -> Any:
    from avfs_git.core.vaults.home import Home

    return Home(path, mounts=MOUNT_SIDE)


# -- the cases -----------------------------------------------------------------------------

WRITE = [
    "echo PWNED > {f}",
    "printf PWNED >> {f}",
    "echo PWNED | tee -a {f}",
    "echo PWNED | dd of={f} conv=notrunc status=none",
    'python3 -c \'open("{f}", "a").write("PWNED")\'',
    "truncate -s 0 {f}",
    "sed -i s/^/PWNED/ {f}",
    "perl -pi -e s/^/PWNED/ {f}",
    "cp /etc/hostname {f}",
]
DELETE = [
    "rm -f {f}",
    "unlink {f}",
    "python3 -c 'import os; os.remove(\"{f}\")'",
    "rm -rf {d}",
    "find {d} -delete",
]
CHMOD = [
    "chmod 777 {f}",
    "chown 4242:4242 {f}",
    "python3 -c 'import os; os.chmod(\"{f}\", 0o666)'",
    "chmod -R a+w {d}",
    "chgrp -R 4242 {d}",
]
RENAME = [
    "mv {f} {f}.x",
    'python3 -c \'import os; os.rename("{f}", "{f}.x")\'',
    "mv {d} {d}.x",
    "ln -f {f} {f}.x && rm {f}",
]
HARDLINK = [
    "ln {f} hl",
    "ln {f} {d}/hl-{T}",
    'python3 -c \'import os; os.link("{f}", "hl2")\'',
    "cp -l {f} hl3",
]
SYMFOLLOW = [
    "ln -s {f} l && echo PWNED >> l",
    "ln -s {d} ld && echo PWNED > ld/new-{T}",
    'ln -sf {f} l2 && python3 -c \'open("l2", "w").write("PWNED")\'',
    "ln -s {d} ld2 && cp /etc/hostname ld2/new2-{T}",
]


def _targets(w: dict[str, Any]) -> dict[str, str]:
    """Host files a command tries to change, by name: each exists on the host."""
    t = {f"sys{d.replace('/', '-')}": p for d, p in w["system"].items()}
    v, ah, hh = w["V"], w["AH"], w["HH"]
    t.update(
        bashrc=f"{hh}/.bashrc", profile=f"{hh}/.profile", sshkeys=f"{hh}/.ssh/authorized_keys",
        gitconfig=f"{hh}/.gitconfig", ahconfig=f"{ah}/config.json", vconfig=f"{v}/config",
        vhead=f"{v}/HEAD", vexclude=f"{v}/info/exclude", vhook=f"{v}/hooks/pre-commit.sample",
        vstate=f"{v}/avfs/config.json", vreg=f"{v}/avfs/mounts/agent-2.json",
        vaudit=f"{v}/avfs/audit.ndjson", vmain=f"{v}/refs/heads/main", ovconfig=f"{w['OV']}/config",
        wt2=f"{v}/worktrees/avfs-agent-2/HEAD", m2=f"{w['M2']}/keep/f0.txt", proj=f"{w['PROJ']}/README.md",
    )  # fmt: skip
    return t


def cases(w: dict[str, Any]) -> dict[str, str]:
    """Every attempt, by case id. Paths are literal in the text (as the classifier sees them)."""
    c: dict[str, str] = {}
    tk, v, ah, hh, m2 = w["T"], w["V"], w["AH"], w["HH"], w["M2"]
    T = tk  # noqa: N806
    for n, (name, f) in enumerate(_targets(w).items()):
        d = os.path.dirname(f)
        for cls, forms, k in (("write", WRITE, 2), ("delete", DELETE, 1), ("chmod", CHMOD, 1), ("rename", RENAME, 1), ("hardlink", HARDLINK, 1), ("symlink", SYMFOLLOW, 1)):  # fmt: skip
            for j in range(k):
                form = forms[(n + j) % len(forms)]
                if name == "vmain" and "{d}" in form:
                    # the fork's own refs directory taken away, then a commit: see _late
                    continue
                c[f"{cls}-{name}-{j}"] = form.format(f=shlex.quote(f), d=shlex.quote(d), T=T)
    # new files where the person would find them
    for name, p in (("etc", "/etc"), ("root", "/root"), ("home", "/home"), ("hh", hh), ("hhssh", f"{hh}/.ssh"), ("ah", ah), ("approvals", f"{ah}/approvals"), ("vhooks", f"{v}/hooks"), ("vinfo", f"{v}/info"), ("vstate", f"{v}/avfs"), ("vmounts", f"{v}/avfs/mounts"), ("wt2", f"{v}/worktrees/avfs-agent-2"), ("m2", m2), ("ov", w["OV"]), ("vars", "/var/spool"), ("run", "/run"), ("vaults", f"{ah}/vaults")):  # fmt: skip
        c[f"create-{name}"] = f"mkdir -p {p} ; echo PWNED > {p}/new-{T}"
    c["create-hook"] = (
        f"printf '#!/bin/sh\\ntouch {hh}/ran-hook\\n' > {v}/hooks/post-checkout && chmod +x {v}/hooks/post-checkout"
    )
    c["create-packed-refs"] = (
        f"echo '0000000000000000000000000000000000000000 refs/heads/evil' >> {v}/packed-refs"
    )
    c["create-policy"] = f"printf 'version = 1\\n[outcomes]\\nnetworked = \"allow\"\\n' > {ah}/policy.toml"
    c["create-cron"] = f"echo '* * * * * root touch {hh}/ran-cron' > /etc/cron.d/avfs-{T}"
    c["create-ld-preload"] = "echo /tmp/x.so >> /etc/ld.so.preload"
    # /proc
    for i, pre in enumerate(("/proc/1/root", "/proc/self/root", f"/proc/{w['DPID']}/root", f"/proc/{w['DPID']}/cwd/../../..", "/proc/self/cwd/../../../../../..", "/proc/1/cwd/../../../..", "/proc/2/root")):  # fmt: skip
        c[f"proc-root-{i}"] = (
            f"echo PWNED > {pre}/etc/.avfs-esc-{T} ; echo PWNED > {pre}{hh}/.bashrc ; cat {pre}{hh}/.ssh/id_secret"
        )
    c["proc-daemon-cwd"] = f"ls /proc/{w['DPID']}/cwd/ ; echo PWNED > /proc/{w['DPID']}/cwd/new-{T}"
    c["proc-daemon-fd"] = (
        f"ls -l /proc/{w['DPID']}/fd/ ; for f in /proc/{w['DPID']}/fd/*; do echo PWNED > $f; done"
    )
    c["proc-fd-walk"] = (
        f"ls -l /proc/self/fd/ ; for f in /proc/self/fd/* /proc/1/fd/*; do echo PWNED > $f/../../new-{T} ; cat $f/{hh[1:]}/.ssh/id_secret ; done"
    )
    c["proc-fd-openat"] = (
        "python3 -c 'import os\nfor fd in range(3, 1024):\n"
        "  try: os.fstat(fd)\n  except OSError: continue\n"
        '  for rel in ("..", "../..", "../../.."):\n'
        f'    try: os.open(rel + "/new-{T}", os.O_CREAT | os.O_WRONLY, dir_fd=fd); print("wrote", fd, rel)\n'
        "    except OSError as e: print(fd, rel, e)'"
    )
    evil = f"{w['M1']}/esc/w/proc-core-pattern/evil.sh"
    c["proc-core-pattern"] = (
        f"printf '#!/bin/sh\\ntouch {hh}/ran-core\\n' > evil.sh && chmod +x evil.sh"
        f" && echo '|{evil}' > /proc/sys/kernel/core_pattern ; cat /proc/sys/kernel/core_pattern"
        " ; ulimit -c unlimited ; sh -c 'kill -SEGV $$' ; python3 -c 'import os; os.abort()'"
    )
    c["proc-modprobe"] = (
        f"echo {evil} > /proc/sys/kernel/modprobe ; printf '\\377\\377\\377\\377' > x && chmod +x x && ./x"
    )
    c["proc-sysctl"] = (
        "echo 1 > /proc/sys/vm/overcommit_memory ; echo 0 > /proc/sys/fs/protected_symlinks"
        " ; sysctl -w net.ipv4.ip_forward=1 ; sysctl -w kernel.hostname=pwned"
    )
    c["proc-hostname"] = f"echo pwned-{T} > /proc/sys/kernel/hostname ; hostname pwned-{T}"
    c["proc-sysrq-off"] = "echo 0 > /proc/sys/kernel/sysrq"
    c["proc-environ"] = f"cat /proc/{w['SLEEP']}/environ /proc/{w['DPID']}/environ"
    c["proc-mem"] = f'python3 -c \'open("/proc/{w["DPID"]}/mem", "r+b")\''
    c["proc-sys-binfmt"] = "echo ':x:E::x::/bin/sh:' > /proc/sys/fs/binfmt_misc/register"
    # /dev
    c["dev-mknod-block"] = "mknod sda b 8 0 && dd if=sda bs=512 count=1 | od | head -2"
    c["dev-mknod-mem"] = "mknod /tmp/mem c 1 1 && dd if=/tmp/mem bs=16 count=1 | od"
    c["dev-mknod-py"] = (
        'python3 -c \'import os; os.mknod("vda", 0o600 | 0o60000, os.makedev(253, 0)); print(open("vda","rb").read(16))\''
    )
    c["dev-raw-list"] = (
        "ls /dev/sd* /dev/vd* /dev/nvme* /dev/xvd* /dev/loop* /dev/mapper /dev/disk 2>&1; cat /proc/partitions"
    )
    c["dev-raw-read"] = (
        "for d in /dev/sda /dev/vda /dev/nvme0n1 /dev/xvda /dev/loop0 /dev/mem /dev/kmem /dev/port; do dd if=$d bs=512 count=1 2>&1 | head -c 80; done"
    )
    c["dev-kmsg"] = f"echo avfs-esc-{T} > /dev/kmsg"
    c["dev-fuse"] = "ls -l /dev/fuse && exec 3<>/dev/fuse"
    # namespaces, mounts, chroot
    c["ns-mount-tmpfs"] = f"mount -t tmpfs none {v}"
    c["ns-mount-bind"] = f"mount --bind . /etc && echo PWNED > /etc/new-{T}"
    c["ns-remount-rw"] = f"mount -o remount,rw,bind {v} && echo PWNED >> {v}/config"
    c["ns-umount-vault"] = f"umount {v}/hooks ; umount -l {v} ; echo PWNED > {v}/hooks/new-{T} ; ls {v}"
    c["ns-umount-fork"] = f"umount -l {w['M1']} ; ls {w['M1']}"
    c["ns-unshare-user"] = (
        f"unshare -Urm sh -c 'mount -o remount,rw,bind {v} ; mount --bind / /mnt ; echo PWNED >> {v}/config ; mount -t tmpfs x /etc && echo PWNED > /etc/new-{T}'"
    )
    c["ns-unshare-net"] = (
        f"unshare -Urn sh -c 'ip link set lo up; exec 3<>/dev/tcp/127.0.0.1/{w['PORT']}' ; bash -c 'exec 3<>/dev/tcp/127.0.0.1/{w['PORT']}'"
    )
    c["ns-nsenter-1"] = f"nsenter -t 1 -m -u -n -i -p sh -c 'echo PWNED > /etc/new-{T}'"
    c["ns-nsenter-daemon"] = f"nsenter -t {w['DPID']} -a sh -c 'echo PWNED > /etc/new-{T}'"
    c["ns-nsenter-file"] = (
        f"nsenter --mount=/proc/1/ns/mnt --net=/proc/1/ns/net sh -c 'echo PWNED > /etc/new-{T}'"
    )
    c["ns-setns-py"] = (
        'python3 -c \'import os\nfor p in ("1", "self"):\n'
        '  try: os.setns(os.open(f"/proc/{p}/ns/mnt", os.O_RDONLY), 0); print("setns", p)\n'
        "  except (OSError, AttributeError) as e: print(e)'"
    )
    c["ns-pivot-root"] = "mkdir -p old && pivot_root . old ; ls old"
    c["ns-chroot"] = f"chroot /proc/1/root sh -c 'echo PWNED > /etc/new-{T}'"
    c["ns-chroot-break"] = (
        'python3 -c \'import os\nos.makedirs("cj", exist_ok=True)\nfd = os.open(".", os.O_RDONLY)\nos.chroot("cj")\n'
        'os.fchdir(fd)\nfor _ in range(30): os.chdir("..")\nos.chroot(".")\nprint(os.listdir("/"))\n'
        f'open("/etc/new-{T}", "w").write("PWNED")\''
    )
    c["ns-mount-proc"] = (
        "mkdir -p pp && mount -t proc proc pp && ls pp/1/root ; mount -t sysfs s pp ; mount -t devtmpfs d pp && ls pp"
    )
    # processes: ptrace, signals
    c["ptrace-daemon"] = (
        "python3 -c 'import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        f"for pid in ({w['DPID']}, {w['SLEEP']}):\n  r = libc.ptrace(16, pid, 0, 0); print(pid, r, ctypes.get_errno())'"
    )
    c["ptrace-gdb"] = (
        f"gdb -p {w['SLEEP']} -batch -ex 'call (int)system(\"touch {hh}/ran-gdb\")' ; strace -p {w['SLEEP']}"
    )
    c["signal-kill"] = f"kill -9 {w['SLEEP']} ; kill -9 {w['DPID']} ; kill -STOP {w['DPID2']}"
    c["signal-py"] = f"python3 -c 'import os; os.kill({w['SLEEP']}, 9)'"
    c["signal-pkill"] = "pkill -9 sleep ; pkill -9 -f avfs_git ; killall -9 sleep"
    # setuid, capabilities
    c["setuid-copy"] = "cp /bin/sh rootsh && chmod 4755 rootsh && ls -l rootsh"
    c["setuid-caps"] = (
        "capsh --print ; setpriv --inh-caps=+sys_admin --ambient-caps=+sys_admin true ; cat /proc/self/status | grep Cap"
    )
    c["setuid-setcap"] = "cp /bin/sh capsh2 && setcap cap_sys_admin+ep capsh2"
    c["setuid-sudo"] = f"sudo -n sh -c 'echo PWNED > /etc/new-{T}' ; su -c 'echo PWNED > /etc/new-{T}'"
    # sockets
    for name, key in (("own", "SOCK1"), ("other", "SOCK2")):
        c[f"sock-abstract-{name}"] = (
            "python3 -c 'import socket\ns = socket.socket(socket.AF_UNIX)\n"
            f's.connect("\\0{w[key]}")\nbody = b"x" * 10\ns.sendall(b"%08d" % len(body) + body)\nprint(s.recv(100))\''
        )
    c["sock-abstract-scan"] = "cat /proc/net/unix | grep '@' | head ; ss -xl 2>&1 | head"
    c["sock-docker"] = (
        "curl -s --unix-socket /var/run/docker.sock http://x/containers/json ; curl -s --unix-socket /run/docker.sock http://x/info"
    )
    c["sock-docker-py"] = (
        "python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect(\"/run/docker.sock\"); print(s.recv(9))'"
    )
    c["sock-ssh-agent"] = (
        f"echo $SSH_AUTH_SOCK ; SSH_AUTH_SOCK={w['SSHSOCK']} ssh-add -l ; python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.connect(\"{w['SSHSOCK']}\")'"
    )
    # the network
    port, ip = w["PORT"], w["HOSTIP"]
    for i, url in enumerate((f"http://127.0.0.1:{port}/", f"http://{ip}:{port}/", f"http://[::1]:{port}/", f"http://localhost:{port}/")):  # fmt: skip
        c[f"net-curl-{i}"] = f"curl -s -m 3 {url} ; wget -q -T 3 -O - {url}"
    c["net-py"] = f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 3)'"
    c["net-bash"] = (
        f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}; echo hi >&3' ; bash -c 'exec 3<>/dev/tcp/{ip}/{port}'"
    )
    c["net-git"] = f"git ls-remote http://127.0.0.1:{port}/x ; git fetch http://{ip}:{port}/x"
    c["net-nc"] = f"nc -w 3 127.0.0.1 {port} </dev/null ; nc -w 3 {ip} {port} </dev/null"
    c["net-udp-dns"] = "python3 -c 'import socket; print(socket.getaddrinfo(\"example.com\", 80))'"
    # self-approval
    tok = w.get("APPROVAL", "apv_0")
    c["approve-cli"] = (
        f"avfs proxy approve {tok} ; python3 -m avfs_git proxy approve {tok} ; {sys.executable} -m avfs_git proxy approve {tok}"
    )
    c["approve-file"] = (
        f'mkdir -p {ah}/approvals && printf \'{{"approved_by": "person", "uid": 0}}\' > {ah}/approvals/{tok}.approved'
    )
    c["approve-edit"] = f"sed -i s/pending/approved/ {ah}/approvals/{tok}.json ; ls -la {ah}/approvals"
    # git's options that run programs (they may run, inside: HOSTMARKs are host paths)
    mk = f"{hh}/ran"
    c["git-sshcommand"] = (
        f"git -c core.sshCommand='sh -c \"touch {mk}-ssh ran-ssh\"' fetch ssh://example.invalid/x"
    )
    c["git-upload-pack"] = f"git fetch --upload-pack='touch {mk}-up ran-up; false' {v}"
    c["git-upload-pack-u"] = (
        f"git ls-remote -u 'touch {mk}-up2 ran-up2; false' {v} ; git clone -u 'touch {mk}-up3; false' {v} cl"
    )
    c["git-ext"] = f"git -c protocol.ext.allow=always fetch 'ext::sh -c touch% {mk}-ext% ran-ext'"
    c["git-fsmonitor-nested"] = (
        f"git init -q nest && git -C nest config core.fsmonitor 'touch {mk}-fsm; echo' && touch nest/a && git -C nest status"
    )
    c["git-fsmonitor-fork"] = (
        f"git config core.fsmonitor 'touch {mk}-fsm2; echo' ; git config --worktree core.fsmonitor 'touch {mk}-fsm3; echo' ; git status"
    )
    c["git-alias"] = f"git -c alias.x='!touch {mk}-alias ran-alias' x"
    c["git-pager"] = f"git -c core.pager='touch {mk}-pager' -p log -1"
    c["git-hookspath"] = (
        f"mkdir -p hk && printf '#!/bin/sh\\ntouch {mk}-hook\\n' > hk/pre-commit && chmod +x hk/pre-commit && git -c core.hooksPath=$PWD/hk commit --allow-empty -qm x"
    )
    c["git-credential"] = f"git -c credential.helper='!touch {mk}-cred' fetch http://127.0.0.1:{port}/x"
    c["git-difftool"] = (
        f"echo a > dt && git -c diff.external='touch {mk}-diff' diff --no-index dt /etc/hostname"
    )
    # git's object and ref writes
    c["ref-main"] = (
        "git update-ref refs/heads/main HEAD~0 ; git update-ref refs/heads/main $(git commit-tree -m evil HEAD^{tree})"
    )
    c["ref-agent2"] = (
        "git update-ref refs/heads/agent-2 $(git commit-tree -m evil HEAD^{tree}) ; git branch -f agent-2 HEAD"
    )
    c["ref-delete"] = "git update-ref -d refs/heads/main ; git branch -D agent-2 ; git tag -d $(git tag)"
    c["ref-tag-replace-notes"] = (
        "git tag evil-tag ; git replace -f HEAD $(git commit-tree -m evil HEAD^{tree}) ; git notes add -m evil"
    )
    c["ref-push-self"] = (
        f"git push -f {v} HEAD:refs/heads/main ; git push -f {v} HEAD:refs/heads/agent-2 ; git push {v} HEAD:refs/heads/new-{T}"
    )
    c["ref-direct"] = (
        f"git rev-parse HEAD > {v}/refs/heads/main ; echo 0000 > {v}/refs/heads/agent-2 ; mkdir -p {v}/refs/replace"
    )
    c["ref-pack"] = "git pack-refs --all ; git reflog expire --expire=now --all ; git gc --prune=now -q"
    c["obj-delete"] = f"rm -rf {v}/objects/pack {v}/objects/?? ; chmod -R a+w {v}/objects"
    c["obj-corrupt"] = f"for f in {v}/objects/pack/*.pack; do echo x >> $f; done"
    c["git-config"] = (
        f"git config core.hooksPath /tmp ; git config --file {v}/config core.fsmonitor true ; git config --global core.pager evil"
    )
    c["git-worktree"] = (
        f"git worktree add -q ../wt-{T} ; git worktree remove --force {m2} ; git worktree prune ; rm -rf {v}/worktrees/avfs-agent-2"
    )
    c["git-info"] = (
        f"echo '*' >> {v}/info/exclude ; echo {v}/../other.git/objects > {v}/objects/info/alternates"
    )
    # planted symlinks, followed later by the person's avfs (checkpoint, cat, export, apply)
    c["plant-links"] = (
        f"mkdir -p links && ln -s {hh}/.ssh/id_secret links/secret && ln -s /etc/.avfs-esc-{T} links/etc "
        f"&& ln -s {hh} links/home && ln -s / links/root && ln -s ../../../../../../../../{hh[1:]}/.bashrc links/rel"
    )
    c["plant-stage1"] = f"ln -s {hh}/.bashrc bashrc && ln -s {hh} dothome"
    return c


RUNNER = """\
# each case: its own sh, its own cwd in the fork; what it printed, its status, what it wrote
E="$1"; FORK="$2"; VAULT="$3"; shift 3
mkdir -p "$E/res" "$E/w"
for id in "$@"; do
  mkdir -p "$E/w/$id"
  : > "$E/res/$id.stamp"
  (cd "$E/w/$id" && exec timeout -s KILL 5 sh "$E/cases/$id.sh") > "$E/res/$id.out" 2>&1 < /dev/null
  echo $? > "$E/res/$id.rc"
  find /tmp /var/tmp /dev/shm "$HOME" "$FORK" "$VAULT/refs" "$VAULT/objects" "$VAULT/logs" "$VAULT/worktrees" \\
    -path "$E/res" -prune -o -cnewer "$E/res/$id.stamp" -print 2>/dev/null | head -20 > "$E/res/$id.wrote"
done
"""

# run in a sandbox of their own, after the others: they take the sandbox's own view apart
# (unmount the fork or the vault there, signal processes, remove its objects or refs)
LATE = ("ns-umount", "signal-", "obj-", "ref-", "git-worktree")


def _late(case: str) -> bool:
    # and those that take the vault's directory apart in the sandbox's view (its refs with
    # it): a git commit after them makes an empty root commit the fork's base (docs/security.md)
    return case.startswith(LATE) or any(f"-{t}-" in case for t in ("vmain", "vhead", "vconfig"))


def _run_batch(w: dict[str, Any], ids: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    doc = _exec("agent-1", "sh", "esc/run.sh", f"{w['M1']}/esc", w["M1"], w["V"], *ids, env=env)
    assert doc["confinement"]["kind"] == "bwrap", doc
    assert doc["confinement"]["network"] == "none", doc["confinement"]
    return doc


def _results(w: dict[str, Any], ids: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    res = Path(w["M1"], "esc", "res")
    for i in ids:
        rc = res / f"{i}.rc"
        assert rc.exists(), f"case {i} did not run (the batch stopped before it)"
        out[i] = {
            "rc": int(rc.read_text()),
            "out": (res / f"{i}.out").read_text(errors="replace"),
            "wrote": [p for p in (res / f"{i}.wrote").read_text().splitlines() if p],
        }
    return out


def _policy(text: str) -> dict[str, Any]:
    r = run_in_process(["--vault", "proj:agent-1", "--json", "policy", "check", "--shell", text], b"")
    doc: dict[str, Any] = json.loads(r.out)
    return dict(doc["decision"])


def _host_roots(w: dict[str, Any]) -> tuple[list[str], tuple[str, ...]]:
    v, ah = w["V"], w["AH"]
    roots = [
        w["HH"], w["PROJ"], w["OV"], w["M2"], f"{ah}/config.json", f"{ah}/approvals", f"{ah}/policy.toml",
        f"{v}/config", f"{v}/HEAD", f"{v}/description", f"{v}/hooks", f"{v}/info", f"{v}/packed-refs",
        f"{v}/objects/info", f"{v}/refs/heads/main", f"{v}/refs/heads/agent-2", f"{v}/refs/tags",
        f"{v}/refs/replace", f"{v}/refs/notes", f"{v}/worktrees/avfs-agent-2", f"{v}/avfs/config.json",
        f"{v}/avfs/mounts/agent-2.json", f"{v}/avfs/mounts/agent-2.d", "/run/docker.sock",
        *w["system"].values(),
    ]  # fmt: skip
    # git's own bookkeeping of the other fork's idle worktree may move (its index refreshed
    # by avfs's status): the rest of that directory is compared
    skip = (f"{v}/worktrees/avfs-agent-2/index", f"{v}/worktrees/avfs-agent-2/logs")
    return roots, skip


def _listings(w: dict[str, Any]) -> dict[str, list[str]]:
    """Names with the token in the host's system directories: only the canaries."""
    out = {}
    for d in (
        "/",
        "/etc",
        "/etc/cron.d",
        "/root",
        "/home",
        "/var",
        "/var/tmp",
        "/var/spool",
        "/run",
        "/tmp",
        "/opt",
    ):
        with contextlib.suppress(OSError):
            out[d] = sorted(n for n in os.listdir(d) if w["T"] in n)
    return out


def _heads(w: dict[str, Any]) -> dict[str, str]:
    refs = _git(w["V"], "for-each-ref", "--format=%(refname) %(objectname)")
    # the agent's own branch and avfs's records are the exec's to move
    return {
        line.split()[0]: line.split()[1]
        for line in refs.splitlines()
        if not line.startswith(("refs/heads/agent-1 ", "refs/avfs/"))
    }


def _outside_state(w: dict[str, Any]) -> dict[str, Any]:
    roots, skip = _host_roots(w)
    return {
        "files": snapshot(roots, skip),
        "listings": _listings(w),
        "heads": _heads(w),
        "sysctls": _sysctls(),
        "hostname": socket.gethostname(),
    }


def _same_outside(
    before: dict[str, Any], w: dict[str, Any], c: dict[str, str], when: str, mine: tuple[str, ...] = ()
) -> None:
    """Nothing outside changed; `mine`: paths the person's own step changes (apply's DIR)."""
    after = _outside_state(w)
    changed = [p for p in diff(before["files"], after["files"]) if not p.startswith(mine)]
    culprits = {
        p: sorted(i for i, text in c.items() if os.path.basename(p) in text or p in text) for p in changed
    }
    assert not changed, f"{when}: host paths changed: {json.dumps(culprits, indent=1)}"
    for key in ("listings", "heads", "sysctls", "hostname"):
        assert after[key] == before[key], (when, key, before[key], after[key])
    assert w["tcp"].hits == 0 and (w["tcp6"] is None or w["tcp6"].hits == 0), (
        f"{when}: the host's TCP listener was reached"
    )
    assert w["ssh"].hits == 0, f"{when}: the ssh agent's socket was reached"
    assert w["docker"] is None or w["docker"].hits == 0, f"{when}: /run/docker.sock was reached"
    assert w["sleeper"].poll() is None, f"{when}: a host process was killed"
    for m in (w["M2"],):
        assert os.path.ismount(m), f"{when}: {m} is no longer mounted"
    ran = sorted(n for n in os.listdir(w["HH"]) if n.startswith("ran"))
    assert ran == [], f"{when}: planted code ran on the host: {ran}"


def _fork_intact(w: dict[str, Any], base: dict[str, Any]) -> None:
    """The fork lost nothing: its files, and every checkpoint it had."""
    for rel, body in base["files"].items():
        assert Path(w["M1"], rel).read_bytes() == body, rel
    for commit in base["commits"]:
        _git(w["V"], "cat-file", "-e", f"{commit}^{{commit}}")


def _write_cases(w: dict[str, Any], c: dict[str, str]) -> None:
    e = Path(w["M1"], "esc")
    (e / "cases").mkdir(parents=True, exist_ok=True)
    (e / "run.sh").write_text(RUNNER)
    for i, text in c.items():
        (e / "cases" / f"{i}.sh").write_text(text + "\n")


def test_no_command_reaches_outside_the_fork(world: dict[str, Any]) -> None:
    w = world
    t0 = time.monotonic()
    base = {
        "files": {p.relative_to(w["M1"]).as_posix(): p.read_bytes() for p in Path(w["M1"], "keep").iterdir()},
        "commits": _git(w["V"], "rev-list", "agent-1", "agent-2", "main").split(),
    }
    # a network-classed command, held for the person's approval: the agent tries to approve it
    held = _exec("agent-1", "curl", "-s", f"http://127.0.0.1:{w['PORT']}/")
    assert held["exit_code"] == 126 and held["approval"]["token"], held
    w["APPROVAL"] = held["approval"]["token"]
    # the host as avfs's first confined run leaves it (the vault's empty packed-refs, which
    # the sandbox's read-only one covers: proxy/sealpack.py); the cases' writes come after
    assert _exec("agent-1", "true")["exit_code"] == 0
    before = _outside_state(w)
    c = cases(w)
    _write_cases(w, c)
    late = sorted((i for i in c if _late(i)), key=lambda i: i.startswith("ns-umount"))
    early = [i for i in c if not _late(i)]
    env = dict(os.environ, SSH_AUTH_SOCK=w["SSHSOCK"])
    early_doc = _run_batch(w, early, env=env)
    assert Path(w["M1"], "esc", "run.sh").exists(), json.dumps(early_doc)[-4000:]
    late_doc = _run_batch(w, late, env=env)
    assert late_doc["exit_code"] == 0, json.dumps({k: late_doc[k] for k in ("result", "error", "decision")})[
        -3000:
    ]
    res = _results(w, list(c))
    t_batch = time.monotonic() - t0
    _same_outside(before, w, c, "after the batch")
    _fork_intact(w, base)
    # what the cases saw inside: nothing of the host's secrets, no raw device, no socket
    leaked = sorted(i for i, r in res.items() if w["SECRET"] in r["out"])
    assert leaked == [], f"cases read a host secret: {leaked}"
    must_fail = [
        i
        for i in c
        if i.startswith(
            ("dev-mknod", "sock-abstract-o", "sock-docker", "sock-ssh", "ns-nsenter", "ptrace-daemon")
        )
    ]
    succeeded = sorted(i for i in must_fail if res[i]["rc"] == 0 and "ptrace" not in i)
    assert succeeded == [], {i: res[i]["out"][-300:] for i in succeeded}
    ptrace_ok = [line for line in res["ptrace-daemon"]["out"].splitlines() if line.split()[1:2] == ["0"]]
    assert ptrace_ok == [], res["ptrace-daemon"]["out"]
    # the held request stays held: neither approval nor its file made by the agent counts
    again = _exec("agent-1", "curl", "-s", f"http://127.0.0.1:{w['PORT']}/")
    assert again["exit_code"] == 126, again
    approvals = Path(w["AH"], "approvals")
    assert not list(approvals.glob("*.approved")), "an approval marker the person did not write"
    # what this call recorded there is avfs's own: the later steps compare against it
    before["files"].update(snapshot([str(approvals)]))
    # every command text through the classifier: one classed read-only wrote nothing
    decisions = {i: _policy(text) for i, text in c.items()}
    read_only_writers = {
        i: res[i]["wrote"]
        for i, d in decisions.items()
        if d["categories"] == ["read_only"] and res[i]["wrote"]
    }
    assert sorted(read_only_writers) == sorted(KNOWN_READ_ONLY_WRITERS), read_only_writers
    # a very long command line (240 KB of arguments) with the same attempts in it
    pad = ["A" * 1000] * 240
    Path(w["M1"], "esc", "long.sh").write_text(
        f"echo PWNED > {w['system'].get('/etc', '/etc/x')} ; echo PWNED >> {w['HH']}/.bashrc ; echo $# > esc/long\n"
    )
    long = _exec("agent-1", "sh", "esc/long.sh", *pad)
    assert long["confinement"]["kind"] == "bwrap", long
    assert Path(w["M1"], "esc", "long").read_text() == "240\n", long["result"]
    _same_outside(before, w, c, "after the long command line")
    counts = {k: sum(1 for i in c if i.startswith(k)) for k in sorted({i.split("-")[0] for i in c})}
    print(f"escape suite: {len(c)} cases {counts}; batch {t_batch:.1f}s", file=sys.stderr)
    print(
        json.dumps({i: [decisions[i]["action"], decisions[i]["categories"], res[i]["rc"]] for i in c}),
        file=sys.stderr,
    )
    _host_side(w, c, before)
    print(f"escape suite: total {time.monotonic() - t0:.1f}s", file=sys.stderr)


def _host_side(w: dict[str, Any], c: dict[str, str], before: dict[str, Any]) -> None:
    """The person's steps after the agent planted symlinks toward host paths."""
    m1, secret = w["M1"], w["SECRET"]
    vf = ["--vault", "proj:agent-1"]
    # plain git and avfs in the mount; a checkpoint keeps links as links
    subprocess.run(["git", "status", "--porcelain"], cwd=m1, capture_output=True, check=True)
    # the setuid copy the agent made (case setuid-copy) runs with nobody's rights: the overlay
    # mount is nosuid (its upper directory lives on the host, where another user could run it)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        opts = [ln.split()[5] for ln in fh if ln.split()[4] == os.path.realpath(m1)]
    assert opts and "nosuid" in opts[-1].split(","), opts
    for args in (["status"], ["checkpoint", "save", "-m", "after the agent"]):
        r = _person(*vf, "--json", *args)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    links = "esc/w/plant-links/links"
    for name in ("secret", "etc", "rel"):
        blob = _git(w["V"], "cat-file", "-p", f"agent-1:{links}/{name}")
        assert secret not in blob and blob.startswith(("/", "../")), (name, blob)
        r = _person(*vf, "cat", f"{links}/{name}")
        assert secret not in r.stdout, f"avfs cat {links}/{name} printed a host file"
        r = _person(*vf, "cat", f"{links}/home/.ssh/id_secret")
        assert secret not in r.stdout, "avfs cat followed a planted directory link"
    _same_outside(before, w, c, "after checkpoint and cat")
    # export into a new directory, then into the person's project: links stay links
    out = Path(w["tmp"], "export")
    r = _person("--json", "export", "proj:agent-1", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    for p in out.rglob("*"):
        if p.is_file() and not p.is_symlink():
            assert secret.encode() not in p.read_bytes(), p
    assert os.path.islink(out / links / "secret")
    _same_outside(before, w, c, "after export")
    # apply, twice: first the links land in the project, then the agent turns them into a
    # file and a directory whose content would go through them
    r = _person("--json", "apply", "proj:agent-1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.path.islink(Path(w["PROJ"], "esc/w/plant-stage1/bashrc"))
    stage2 = "rm bashrc dothome && echo PWNED > bashrc && mkdir -p dothome/.ssh && echo PWNED > dothome/.bashrc && echo PWNED > dothome/.ssh/authorized_keys"
    doc = _exec("agent-1", "sh", "-c", f"cd esc/w/plant-stage1 && {stage2}")
    assert doc["exit_code"] == 0, doc
    r = _person("--json", "apply", "proj:agent-1")
    assert r.returncode in (0, 3), r.stdout + r.stderr
    _same_outside(before, w, c, "after apply", mine=(w["PROJ"],))
    # down --keep merges into the default fork; nothing else changes
    r = _person("--json", "down", "--fork", "proj:agent-1", "--keep", "-y")
    assert r.returncode == 0, r.stdout + r.stderr
    before["heads"].pop("refs/heads/main", None)
    after_heads = _heads(w)
    after_heads.pop("refs/heads/main", None)
    assert after_heads == before["heads"]
    before_files = dict(before["files"])
    before_files.pop(f"{w['V']}/refs/heads/main", None)
    _same_outside(
        {**before, "files": before_files, "heads": _heads(w)},
        w,
        c,
        "after down --keep",
        mine=(w["PROJ"], f"{w['V']}/refs/heads/main"),
    )
