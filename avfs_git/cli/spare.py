"""The resident server's spare: a child forked before the call comes, its memory its own.

A served call forked at once pays, on its way, for the fork (~1.3 ms for a ~40 MB server)
and then for copying, page by page, every page of the shared heap the command writes to:
CPython writes reference counts into every object it touches and malloc its headers into
freed chunks, so `avfs --json status` took ~1,850 copy-on-write faults, ~5 ms of its ~10
ms. So the server keeps one child forked ahead (between calls, never while a command
runs), which asks the kernel to copy the pages a call will write at once
(``madvise(MADV_POPULATE_WRITE)``, Linux 5.14) and then waits for a call: the server hands
it the caller's connection, standard streams and request over a socket pair, and it runs
the call as a freshly forked child would (:func:`.callproc.child`).

**Which pages**: the ones served calls wrote. A call's process, once its answer is out,
reads which of the pages it shares with the server at the fork it holds alone
(``/proc/self/pagemap``, "exclusively mapped": copied by a write, or populated), adds the
pages the server already knew and, when that adds any, sends the set back over the socket
pair; the server forks its next spares with it (:class:`Written`). A call touches about a
fifth of the server's private memory (~1,900 of ~8,200 pages here, the same few for every
command), so the copy costs ~5 ms of CPU after each call where copying all of it cost ~20
ms, on the same cores as the caller's next call, and the spare holds ~8 MB, not ~35. The
first spare of a server copies nothing (its call pays the faults and teaches the rest);
where ``pagemap`` cannot be read the spare copies all of its private memory, as before.
Measured: a checkpoint save's child in ~4.3 ms of CPU in such a spare, ~8.5 ms without.

**What the server keeps for it** (:class:`Layout`): its own private memory's runs
(``/proc/self/maps``, ~1.1 ms to read and parse, ~330 mappings here) and the known pages
clipped to them (~0.7 ms), made in the server and made again only when the written set
changes or the server's address space has grown or shrunk (``/proc/self/statm``): a child
starts with the server's mappings, so a spare needs neither work of its own (together
~1.8 ms of its ~8.5). And a call's process reports new pages only when they are more
than a little (:data:`NEW_MIN`): calls kept finding a few each (3-20: the server's own
allocations between calls), which kept every call looking (~2 ms of its CPU after its
answer; 0.2-0.4 ms when it does not look).

The known pages are the union of what calls reported, so a spare copies the pages of
every kind of command the server has served (~2,800 in a mixed sequence here, where a
`remote list` writes ~1,560 and a `checkpoint save` ~2,520), and the set only grows over
the server's life. A call cannot tell the pages it wrote from those its spare copied
(both are held alone; this kernel has no soft-dirty bit): copying only what most calls
write needs spares that copy nothing now and then, whose calls pay every copy on their
way (tried: docs/benchmarks.md, the fourteenth round).

A spare whose server goes away sees the socket pair close and exits.
"""

from __future__ import annotations

import marshal
import os
import signal
import socket
import struct
from array import array
from collections.abc import Callable, Iterator
from typing import Any

from ..ops.framed import recv_framed

MADV_POPULATE_WRITE = 23  # linux/mman.h (5.14)
STEP = 1 << 20  # bytes populated between looks for a call (~0.5 ms here)
MAX_IOV = 1024  # ranges in one process_madvise (UIO_MAXIOV)
PAGE = os.sysconf("SC_PAGE_SIZE")
REPORT_FD = 4  # where a call's process keeps its end of the pair (callproc.child)
MAX_REPORT = 4 << 20  # a written set larger than this is not taken
SCAN_EVERY = 8  # once calls find no new pages, one call in this many looks again
NEW_MIN = 32  # a call's new pages are news past 1/NEW_MIN of the known ones (~55 of ~1,800)
# pagemap's entry for a page: 64 bits, little-endian; bit 56 "exclusively mapped" is bit 0
# of its eighth byte. A byte with that bit set -> 1, else 0.
_EXCLUSIVE = bytes(b & 1 for b in range(256))

Run = tuple[int, int]  # [first, end) page numbers


class Written:
    """The pages served calls wrote, as sorted, disjoint runs of page numbers ([first,
    end)); ``runs`` None: unknown (``pagemap`` could not be read), so copy everything.
    ``scan``: whether the next call's process looks for pages beyond them (~1.5-3 ms of
    its CPU after its answer): while calls still find new ones, then one call in
    :data:`SCAN_EVERY`."""

    def __init__(self, runs: list[Run] | None, scan: bool = True) -> None:
        self.runs = runs
        self.scan = scan

    def pages(self) -> int | None:
        return None if self.runs is None else sum(b - a for a, b in self.runs)


class Spare:
    """A forked child waiting for a call (its pid, pidfd, and the server's end of the pair,
    kept once the call is handed: the call's process reports on it, :func:`read_report`)."""

    def __init__(self, pid: int, pidfd: int, ctl: socket.socket) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.ctl = ctl

    def hand(self, conn: socket.socket, req: dict[str, Any], fds: list[int]) -> bool:
        """Give this spare the call (the caller's connection, its fds 0-2, the request);
        False when it cannot take it (it died): the server forks as it would without."""
        data = marshal.dumps(req)
        try:
            self.ctl.sendmsg(
                [b"%08d" % len(data) + data],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("4i", conn.fileno(), *fds))],
            )
        except OSError:
            self.ctl.close()
            return False
        return True

    def discard(self) -> None:
        """End an unused spare (the server is leaving, or the spare could not be given a call)."""
        try:
            self.ctl.close()
        except OSError:
            pass
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.pidfd)


class Report:
    """In a call's process: what it tells its server once its answer is out (that it has
    answered, and the pages it wrote: :meth:`send`). ``known``: the server's
    :class:`Written` at the fork; ``regions``: the private writable memory it shared with
    the server then (read at :meth:`send` when not given)."""

    def __init__(self, ctl: socket.socket, known: Written, regions: list[Run] | None = None) -> None:
        self.ctl = ctl
        self.known = known
        self.regions = regions

    def keep(self) -> int:
        """Move this end of the pair to a descriptor above any the call's set-up moves
        (64 or more, close-on-exec); returns it. The socket object lets go of it."""
        import fcntl

        fd = fcntl.fcntl(self.ctl.fileno(), fcntl.F_DUPFD_CLOEXEC, 64)
        self.ctl.close()
        return fd

    def send(self, fd: int) -> None:
        """Tell the server on ``fd`` (the pair's end) that the call has answered, with the
        written set when it holds a page the server did not know; never blocks."""
        news: bytes | bool | None = False  # answered; nothing new
        if self.known.runs is not None and self.known.scan:
            runs = exclusive(self.regions if self.regions is not None else regions())
            if runs is None:
                news = None  # pagemap cannot be read: copy everything
            else:
                merged = union(runs, self.known.runs)
                if news_in(merged, self.known):
                    news = array("Q", [x for run in merged for x in run]).tobytes()
        msg = marshal.dumps(news)
        try:
            os.set_blocking(fd, False)
            os.write(fd, b"%08d" % len(msg) + msg)
        except OSError:
            pass


def news_in(merged: list[Run], known: Written) -> bool:
    """Whether ``merged`` (``known``'s runs with a call's) holds enough pages more than
    ``known`` to tell the server: any while it knows none, else more than 1/:data:`NEW_MIN`
    of them (a few pages a call finds are copied by its faults, as without a spare)."""
    had = known.pages() or 0
    more = sum(b - a for a, b in merged) - had
    return more > 0 and (had == 0 or more * NEW_MIN > had)


class Layout:
    """What a spare needs of the server's memory, kept in the server between forks: its
    private writable memory's runs (:func:`regions`) and ``known``'s pages clipped to
    them, made again (:meth:`of`) when ``known`` is another set or the server's address
    space changed size since (``/proc/self/statm``'s first field): a child starts with its
    parent's mappings. A mapping replaced by one of the same size is missed until then:
    the spare then populates a range that is gone (refused, nothing happens) or another
    private one, and misses the new range's pages (its call copies them as it writes)."""

    def __init__(self) -> None:
        self.size = -1
        self.known: Written | None = None
        self.mine: list[Run] = []
        self.runs: list[Run] | None = None

    def of(self, known: Written) -> Layout:
        size = _vm_pages()
        if size != self.size or size < 0:
            self.size, self.mine, self.known = size, regions(), None
        if known is not self.known:
            self.known = known
            self.runs = None if known.runs is None else clip(known.runs, self.mine)
        return self


def _vm_pages() -> int:
    """This process's address space's size in pages (``/proc/self/statm``); -1 unknown."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split(None, 1)[0])
    except (OSError, ValueError, IndexError):
        return -1


def read_report(ctl: socket.socket) -> Written | None:
    """What a call's process reported on ``ctl`` (:meth:`Report.send`): the pages calls
    write, as it now knows them, or None when nothing changed (or it sent nothing: it
    died). Never blocks (a process the call left may still hold the other end); closes
    ``ctl``."""
    try:
        ctl.setblocking(False)
        got = recv_framed(ctl, 0, MAX_REPORT)
    except OSError:
        got = None
    finally:
        ctl.close()
    if got is None:
        return None
    try:
        news = marshal.loads(got[0])
        if news is None:
            return Written(None)
        if not isinstance(news, bytes):
            return None
        flat = array("Q")
        flat.frombytes(news)
    except (ValueError, EOFError, TypeError):
        return None
    return Written(list(zip(flat[0::2], flat[1::2], strict=True)))


def exclusive(regions: list[Run]) -> list[Run] | None:
    """The pages of ``regions`` this process holds alone (``/proc/self/pagemap``); None
    when it cannot be read."""
    import re

    out: list[Run] = []
    try:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for lo, hi in regions:
            data = os.pread(fd, (hi - lo) * 8, lo * 8)
            if len(data) != (hi - lo) * 8:
                return None
            flags = data[7::8].translate(_EXCLUSIVE)
            out.extend((lo + m.start(), lo + m.end()) for m in re.finditer(b"\x01+", flags))
    except OSError:
        return None
    finally:
        os.close(fd)
    return out


def union(a: list[Run], b: list[Run]) -> list[Run]:
    """Two sorted lists of disjoint runs, merged (touching runs joined)."""
    out: list[list[int]] = []
    for lo, hi in sorted(a + b):
        if out and lo <= out[-1][1]:
            if hi > out[-1][1]:
                out[-1][1] = hi
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


def clip(runs: list[Run], regions: list[Run]) -> list[Run]:
    """The parts of ``runs`` inside ``regions`` (both sorted and disjoint)."""
    out: list[Run] = []
    i = 0
    for lo, hi in regions:
        while i < len(runs) and runs[i][1] <= lo:
            i += 1
        j = i
        while j < len(runs) and runs[j][0] < hi:
            a, b = max(runs[j][0], lo), min(runs[j][1], hi)
            if a < b:
                out.append((a, b))
            j += 1
    return out


def regions() -> list[Run]:
    """This process's private writable memory, as runs of page numbers: the heap, malloc's
    and Python's arenas, the libraries' data (not the stack, which grows as it needs, nor
    ``[vvar]`` and the like, which are not memory)."""
    out: list[Run] = []
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as fh:
            maps = fh.read().splitlines()
    except OSError:
        return out
    for line in maps:
        parts = line.split()
        if len(parts) < 5 or parts[1][:2] != "rw" or parts[1][3] != "p":
            continue
        name = parts[5] if len(parts) > 5 else ""
        if name.startswith("[") and name != "[heap]":
            continue
        lo, hi = (int(x, 16) // PAGE for x in parts[0].split("-"))
        out.append((lo, hi))
    out.sort()
    return out


def fork(
    run: Callable[[socket.socket, dict[str, Any], list[int], Report], None],
    blocked: tuple[int, ...],
    known: Written,
    layout: Layout | None = None,
) -> Spare | None:
    """Fork a spare that copies the pages in ``known`` (everything when unknown), waits
    for a call and runs it with ``run`` (which never returns); None when it cannot be
    forked. ``blocked``: the signals a call's process unblocks once its handlers are set
    (blocked from the fork on). ``layout``: the caller's kept :class:`Layout` (made
    again here when out of date); without it the spare reads its memory's runs itself."""
    kept = None if layout is None else layout.of(known)
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                parent.close()
                if kept is None:
                    mine = regions()
                    runs = None if known.runs is None else clip(known.runs, mine)
                else:
                    mine, runs = kept.mine, kept.runs
                populate(child, runs, mine)
                got = receive(child)
                if got is None:
                    code = 0  # the server went away: nothing to run
                else:
                    conn_fd, req, fds = got
                    run(socket.socket(fileno=conn_fd), req, fds, Report(child, known, mine))
            finally:
                os._exit(code)
    except OSError:
        parent.close()
        child.close()
        return None
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
    child.close()
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        parent.close()
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None
    return Spare(pid, pidfd, parent)


def receive(ctl: socket.socket) -> tuple[int, dict[str, Any], list[int]] | None:
    """The call the server hands over: (the caller's connection, the request, fds 0-2);
    None when the server closed the pair instead."""
    got = recv_framed(ctl, 4)
    if got is None or len(got[1]) != 4:
        return None
    fds = got[1]
    return fds[0], marshal.loads(got[0]), fds[1:]


def populate(ctl: socket.socket | None, runs: list[Run] | None, mine: list[Run]) -> None:
    """Copy the pages ``runs`` (every page of ``mine`` when None) of this process's
    private memory now (it shares them copy-on-write with the server). Nothing changes but
    who owns the pages; a kernel without ``MADV_POPULATE_WRITE`` leaves them shared (the
    call then copies them as it goes, as without a spare). In steps of :data:`STEP`, each
    one ``process_madvise`` of its runs (Linux 6.13 takes any advice for the caller itself;
    ~1 ms less than a ``madvise`` a run, of ~4.5) or a ``madvise`` a run: a call that
    comes meanwhile (``ctl`` readable) stops it, and the rest is copied as the call goes."""
    import select

    waiting = select.poll()
    if ctl is not None:
        waiting.register(ctl, select.POLLIN)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    except (OSError, AttributeError):
        return
    batch = _batch(ctypes, libc)
    for chunk in _steps(mine if runs is None else runs, STEP // PAGE):
        if ctl is not None and waiting.poll(0):
            return  # a call came: take it now
        if batch is not None and batch(chunk):
            continue
        for lo, hi in chunk:
            if madvise(lo * PAGE, (hi - lo) * PAGE, MADV_POPULATE_WRITE) != 0 and ctypes.get_errno() == 22:
                return  # EINVAL: this kernel has no MADV_POPULATE_WRITE


def _steps(runs: list[Run], pages: int) -> Iterator[list[Run]]:
    """``runs`` in steps of about ``pages`` pages (a longer run split), at most
    :data:`MAX_IOV` runs a step."""
    step: list[Run] = []
    size = 0
    for lo, hi in runs:
        while lo < hi:
            end = min(hi, lo + pages - size)
            step.append((lo, end))
            size += end - lo
            lo = end
            if size >= pages or len(step) >= MAX_IOV:
                yield step
                step, size = [], 0
    if step:
        yield step


def _batch(ctypes: Any, libc: Any) -> Callable[[list[Run]], bool] | None:
    """A function that populates a step's runs in one ``process_madvise`` of this process
    and says whether it did; None where libc has none (the caller falls back to
    ``madvise``). After a failure (an older kernel: ``EINVAL``) it says no at once."""
    try:
        call = libc.process_madvise
        pidfd = os.pidfd_open(os.getpid())
    except (AttributeError, OSError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_uint]
    call.restype = ctypes.c_ssize_t

    # struct iovec: (base, len) pairs, as an array of size_t
    iovec: Any = ctypes.c_size_t
    broken = [False]

    def run(step: list[Run]) -> bool:
        if broken[0]:
            return False
        iov = (iovec * (2 * len(step)))(*[x * PAGE for run in step for x in (run[0], run[1] - run[0])])
        want = sum(hi - lo for lo, hi in step) * PAGE
        if call(pidfd, ctypes.addressof(iov), len(step), MADV_POPULATE_WRITE, 0) == want:
            return True
        broken[0] = ctypes.get_errno() == 22  # (else one range failed: a madvise each, once)
        return False

    return run
