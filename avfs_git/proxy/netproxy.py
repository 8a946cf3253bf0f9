"""Filtered network for confined commands: the hosts a policy names, by host name.

A command given the ``filtered`` network (:func:`.confine.network_for`) still runs in a
network namespace of its own (no route out, its own loopback). Inside it, before the
command, a small forwarder (:data:`FORWARDER`, run by the system's Python) listens on
``127.0.0.1:`` :data:`PORT` and relays each connection to a Unix socket bound into the
sandbox (:data:`SOCKET_IN_SANDBOX`); the command's environment points ``HTTP_PROXY``,
``HTTPS_PROXY``, ``ALL_PROXY`` (and npm's variables) at that port. On the host side,
:class:`FilterProxy` serves that socket for as long as the command runs: an HTTP proxy
(``CONNECT host:port`` tunnels, and plain ``GET http://host/...`` requests) that connects
only to the hosts of the policy's ``network_allow`` (:func:`allowed`) and answers
``403`` to the others, recording them (:attr:`FilterProxy.refused`, the envelope's
``confinement.network_refused``). Nothing is bound on the host's network.

A program that ignores the proxy variables gets nothing: it has no route out of its
namespace. Only the Python standard library; the proxy runs one asyncio loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import threading
import time
from typing import Any, Final, TypeAlias

from ..policy.hostpattern import host_pattern
from . import netdir

log = logging.getLogger("avfs.proxy.network")

PORT: Final = 3128  # in the sandbox's own network namespace: nothing else uses it
SOCKET_IN_SANDBOX: Final = "/run/avfs-net/proxy.sock"
PYTHON: Final = "/usr/bin/python3"  # runs the forwarder in the sandbox (which shows /usr)
MAX_HEAD: Final = 64 * 1024  # bytes of a request's line and headers
CHUNK: Final = 64 * 1024  # bytes read at once (and buffered per direction)
MAX_CLIENTS: Final = 256  # connections served at once; more are answered 503
MAX_REFUSED: Final = 100  # distinct refused destinations recorded
HEAD_TIMEOUT_S: Final = 30.0
CONNECT_TIMEOUT_S: Final = 15.0

# The forwarder, run in the sandbox as ``python3 -S -I -c FORWARDER SOCKET PORT CMD...``: it
# listens first (so the command never finds the port closed), then a grandchild (adopted by
# the sandbox's init, so no program of the command's ever waits on it) relays each connection
# to the socket while the process itself becomes the command. The relay ends when that process
# ends (a pidfd of it, opened while it waits for the middle child: it cannot have ended yet;
# where the kernel has none, asked each second): bubblewrap's init lives while any process of
# the sandbox does, and an init whose outer bwrap was killed before it set ``--die-with-parent``'s
# signal (that bwrap's set-up, ``--block-fd``) would otherwise live on, parent 1, with the relay.
FORWARDER: Final = r"""
import os, select, socket, sys, threading
path, port, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
lsn = socket.socket()
lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsn.bind(("127.0.0.1", port))
lsn.listen(128)
pid = os.fork()
if pid:
    lsn.close()
    os.waitpid(pid, 0)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        sys.stderr.write("%s: %s\n" % (cmd[0], e.strerror))
        sys.stderr.flush()
        os._exit(127 if e.errno == 2 else 126)
cmd_pid = os.getppid()
try:
    watch = [os.pidfd_open(cmd_pid)]
except (AttributeError, OSError):
    watch = []
if os.fork():
    os._exit(0)
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
def serve(c):
    u = socket.socket(socket.AF_UNIX)
    try:
        u.connect(path)
    except OSError:
        c.close()
        u.close()
        return
    t = threading.Thread(target=pipe, args=(u, c), daemon=True)
    t.start()
    pipe(c, u)
    t.join()
    c.close()
    u.close()
def gone():
    try:
        os.kill(cmd_pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        pass
    return False
while True:
    try:
        ready = select.select([lsn, *watch], [], [], None if watch else 1.0)[0]
    except InterruptedError:
        continue
    if (watch and watch[0] in ready) or (not watch and gone()):
        os._exit(0)
    if lsn not in ready:
        continue
    try:
        c, _ = lsn.accept()
    except OSError:
        continue
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def available() -> str | None:
    """Why a filtered network cannot be given here (None: it can)."""
    if not os.path.isfile(PYTHON):
        return f"{PYTHON} (which runs the forwarder in the sandbox) is missing"
    return None


def wrap(command: list[str]) -> list[str]:
    """``command`` preceded by the forwarder (what runs inside the sandbox)."""
    return [PYTHON, "-S", "-I", "-c", FORWARDER, SOCKET_IN_SANDBOX, str(PORT), *command]


def environment(env: dict[str, str]) -> dict[str, str]:
    """``env`` with every proxy variable pointing at the forwarder (and no exceptions: a
    host the caller's ``NO_PROXY`` names would be tried directly, and find no route)."""
    url = f"http://127.0.0.1:{PORT}"
    out = {k: v for k, v in env.items() if k.lower() != "no_proxy"}
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                "npm_config_proxy", "npm_config_https_proxy"):  # fmt: skip
        out[var] = url
    return out


def _split(target: str, default_port: int | None) -> tuple[str, int] | None:
    """``host[:port]`` (``[v6]:port`` too) as (host lowercased, port); None when malformed."""
    host, port = target, None
    if target.startswith("["):
        end = target.find("]")
        if end < 0:
            return None
        host, rest = target[1:end], target[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
    elif ":" in target:
        host, _, port = target.rpartition(":")
    if port is None:
        if default_port is None:
            return None
        return host.lower().rstrip("."), default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None
    host = host.lower().rstrip(".")
    if not host or any(c.isspace() or c in "/@\\" for c in host):
        return None
    return host, int(port)


def allowed(patterns: tuple[str, ...], host: str, port: int) -> bool:
    """Whether ``host:port`` is one of ``patterns`` (the policy's ``network_allow``: a host
    name or address, ``*.domain`` for the names under a domain (not the domain itself), each
    with ``:port`` or, without one, any port)."""
    host = host.lower().rstrip(".")
    for p in patterns:
        name, want = host_pattern(p)
        if want is not None and want != port:
            continue
        if name.startswith("*."):
            if host.endswith(name[1:]) and len(host) > len(name) - 1:
                return True
        elif host == name:
            return True
    return False


class FilterProxy:
    """The host side: a filtering HTTP proxy on a Unix socket in a private directory, for
    the length of one command. ``with FilterProxy(allow) as p:`` binds (before the command
    starts) and serves; leaving stops it and closes every connection."""

    def __init__(self, allow: tuple[str, ...]) -> None:
        self.allow = tuple(allow)
        self._own = OwnAddresses()  # this host's addresses, refused unless allowed
        self.refused: list[str] = []
        self.dir = ""
        self.path = ""
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._held = -1  # its directory, open and locked (proxy/netdir.py)

    def __enter__(self) -> FilterProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        # a private directory (proxy/netdir.py: held locked, so that one a killed call
        # left is swept by the next start)
        self.dir, self._held = netdir.make(netdir.base_dir())
        self.path = os.path.join(self.dir, netdir.SOCKET)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
            sock.listen(128)
        except OSError:
            sock.close()
            netdir.release(self.dir, self._held)
            self.dir, self._held = "", -1
            raise
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="avfs-netproxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        """Stop serving: close the listening socket and every connection (bounded wait)."""
        loop, ev = self._loop, self._stop
        if loop is not None and ev is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(ev.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.dir:
            netdir.release(self.dir, self._held)
            self.dir, self._held = "", -1

    # -- the loop

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:  # never take the command's process down with it
            log.exception("the filtering proxy failed")
            if self._sock is not None:
                self._sock.close()  # a client is refused at once, not left waiting
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()
        slots = asyncio.Semaphore(MAX_CLIENTS)

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                tasks.add(task)
            try:
                if slots.locked():
                    await _answer(writer, 503, "too many connections through the proxy")
                    return
                async with slots:
                    await self._serve(reader, writer)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                pass
            finally:
                writer.close()
                if task is not None:
                    tasks.discard(task)

        assert self._sock is not None
        server = await asyncio.start_unix_server(client, sock=self._sock, limit=CHUNK)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for t in list(tasks):
                t.cancel()
            if tasks:
                await asyncio.wait(list(tasks), timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(_read_head(reader), HEAD_TIMEOUT_S)
        except ValueError as exc:
            await _answer(writer, 400, str(exc))
            return
        if head is None:
            return
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            await _answer(writer, 400, "not an HTTP request line")
            return
        method, target, version = (p.decode("latin-1") for p in parts)
        rest = b""
        if method == "CONNECT":
            dest = _split(target, None)
        else:
            if not target.lower().startswith("http://"):
                await _answer(
                    writer, 400, "a proxy request needs an absolute http:// URL (https: use CONNECT)"
                )
                return
            cut = min((i for i in (target.find(c, 7) for c in "/?#") if i >= 0), default=len(target))
            authority, path = target[7:cut], target[cut:]
            if not path.startswith("/"):
                path = "/" + path
            authority = authority.rpartition("@")[2]  # no credentials in the way
            dest = _split(authority, 80)
            kept = [
                line
                for line in lines[1:]
                if line
                and line.split(b":", 1)[0].strip().lower()
                not in (b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization")
            ]
            # one request per connection: a second one (to another host) never rides on this one
            rest = b"\r\n".join([f"{method} {path} {version}".encode("latin-1"), *kept,
                                 b"Connection: close", b"", b""])  # fmt: skip
        if dest is None:
            await _answer(writer, 400, f"not a host[:port]: {target[:200]!r}")
            return
        host, port = dest
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if not allowed(self.allow, host, port):
            self._refuse(where)
            await _answer(writer, 403, f"{where} is not in the policy's network_allow (docs/policy.md)")
            return
        try:
            up_r, up_w = await asyncio.wait_for(
                _connect(host, port, self.allow, self._own), CONNECT_TIMEOUT_S
            )
        except _Local as exc:
            self._refuse(where)
            await _answer(
                writer,
                403,
                f"{where} resolves to {exc}: only an address the policy's network_allow names reaches one",
            )
            return
        except (OSError, TimeoutError) as exc:
            await _answer(writer, 502, f"cannot reach {where}: {exc}")
            return
        try:
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                up_w.write(rest)
                await up_w.drain()
            await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))
        finally:
            up_w.close()

    def _refuse(self, where: str) -> None:
        log.info("network: refused %s (not in the policy's network_allow)", where)
        with self._lock:
            if where not in self.refused and len(self.refused) < MAX_REFUSED:
                self.refused.append(where)


class _Local(Exception):
    """A host name that resolves to a local or private address the policy does not name
    (:func:`local_reason`); its message is the address and why."""


# addresses that embed an IPv4 address a connection may end up at (NAT64's well-known prefix;
# IPv4-mapped, 6to4 and Teredo are read by ipaddress itself)
IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_OWN_TTL_S: Final = 2.0  # how long the host's interface addresses are trusted once read


def _embedded(ip: IPAddress) -> list[IPAddress]:
    """What a connection to ``ip`` may reach: the IPv4 address an IPv4-mapped
    (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``) or NAT64 address stands for;
    else ``ip``, and the IPv4 address a 6to4 or Teredo address carries."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return [ip]
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _NAT64 or (int(ip) >> 32 == 0 and int(ip) > 1):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    out: list[IPAddress] = [ip]
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out.append(ip.teredo[1])
    return out


class OwnAddresses:
    """The addresses of this host's own interfaces, as one filtering proxy knows them: read
    at most every :data:`_OWN_TTL_S` seconds (an interface's address may come and go)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read: tuple[float, frozenset[IPAddress]] = (0.0, frozenset())

    def get(self) -> frozenset[IPAddress]:
        with self._lock:
            t, addrs = self._read
            now = time.monotonic()
            if not addrs or now - t >= _OWN_TTL_S:
                self._read = (now, own_addresses())
            return self._read[1]


def own_addresses() -> frozenset[IPAddress]:
    """The addresses of this host's own interfaces (where the filtering proxy runs): the
    kernel's ``LOCAL`` routes (``/proc/net/fib_trie``) and ``/proc/net/if_inet6``, read now."""
    found: set[IPAddress] = set()
    try:
        with open("/proc/net/fib_trie", encoding="ascii", errors="replace") as fh:
            last = ""
            for line in fh:
                text = line.strip()
                if text.startswith("|-- "):
                    last = text[4:]
                elif text.endswith("host LOCAL") and last:
                    with contextlib.suppress(ValueError):
                        found.add(ipaddress.IPv4Address(last))
    except OSError:
        pass
    try:
        with open("/proc/net/if_inet6", encoding="ascii", errors="replace") as fh:
            for line in fh:
                field = line.split(" ", 1)[0]
                with contextlib.suppress(ValueError):
                    found.add(ipaddress.IPv6Address(int(field, 16)))
    except OSError:
        pass
    return frozenset(found)


def _is_own(ip: IPAddress, known: OwnAddresses | None) -> bool:
    """Whether ``ip`` is an address of this host: one of its interfaces' (``known``'s, else
    read now), or (where ``/proc`` says nothing) one a socket can be bound to."""
    own = known.get() if known is not None else own_addresses()
    if own:
        return ip in own
    family = socket.AF_INET6 if isinstance(ip, ipaddress.IPv6Address) else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((str(ip), 0))
        except OSError:
            return False
    return True


def local_reason(ip: IPAddress, own: OwnAddresses | None = None) -> str | None:
    """Why a connection to ``ip`` would reach the host or a private network (None: it
    would not): loopback, unspecified (``0.0.0.0``, ``::``: this host), link-local (a cloud's
    metadata service), private (RFC 1918, shared, unique-local), reserved, multicast, or an
    address of this host's own interfaces, itself or carried in an IPv6 form."""
    for a in _embedded(ip):
        if a.is_loopback or a.is_unspecified:
            return f"{a}, a loopback or unspecified address (this host)"
        if a.is_link_local:
            return f"{a}, a link-local address"
        if a.is_multicast or a.is_reserved or not a.is_global or getattr(a, "is_site_local", False):
            return f"{a}, a private or reserved address"
        if _is_own(a, own):
            return f"{a}, an address of this host"
    return None


def _address_named(patterns: tuple[str, ...], ip: IPAddress, port: int) -> bool:
    """Whether the policy names ``ip`` itself (in any spelling), on ``port`` or any port."""
    for p in patterns:
        name, want = host_pattern(p)
        if want is not None and want != port:
            continue
        try:
            named = ipaddress.ip_address(name)
        except ValueError:
            continue
        if named == ip or set(_embedded(named)) & set(_embedded(ip)):
            return True
    return False


async def _connect(
    host: str, port: int, allow: tuple[str, ...] = (), own: OwnAddresses | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to ``host:port``, resolved here once: every address is checked, and only
    the addresses checked are connected to (no second lookup: a name cannot resolve to one
    address for the check and another for the connection). A name (or an address) that
    resolves to a local or private address (:func:`local_reason`) is refused
    (:class:`_Local`) unless that address itself is in ``allow`` (the policy's
    ``network_allow``): an allowed domain's DNS must not lead to the host's own services, a
    private network or a cloud's metadata service."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    checked: list[tuple[int, Any]] = []  # (family, the address as getaddrinfo gave it)
    for family, *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        why = local_reason(ip, own)
        if why is not None and not _address_named(allow, ip, port):
            raise _Local(why)
        checked.append((family, sockaddr))
    err: OSError = OSError(f"no address for {host}")
    for fam, where in checked:
        try:
            sock = socket.socket(fam, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, where)
            except BaseException:
                sock.close()
                raise
            return await asyncio.open_connection(sock=sock, limit=CHUNK)
        except OSError as exc:
            err = exc
    raise err


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The request line and headers (without the blank line); None at a closed connection."""
    try:
        data = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError:
        raise ValueError(f"request headers longer than {MAX_HEAD} bytes") from None
    if len(data) > MAX_HEAD:
        raise ValueError(f"request headers longer than {MAX_HEAD} bytes")
    return data[:-4]


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until end of file, a chunk at a time (drain: never more than a chunk or two
    buffered), then half-close ``dst``."""
    try:
        while True:
            data = await src.read(CHUNK)
            if not data:
                break
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except OSError:
        dst.close()


async def _answer(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway", 503: "Service Unavailable"}[status]
    body = f"avfs: {message}\n".encode()
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(OSError):
        await writer.drain()
