"""The suite's last resort for a test that outlives its timeout (tests/conftest.py registers it).

pytest-timeout's signal cannot end a system call waiting on a FUSE daemon that does not
answer (the kernel sends the daemon an INTERRUPT and goes on waiting), nor a wait for a
process stuck that way: a CI run sat at 99 % until CI's 90-minute limit, saying nothing of
where. A thread in each test process notes which test runs since when. When one has run
``GRACE_S`` past the timeout, it writes to the session's own stderr, and into the test's
report, every thread's Python stack, each process under this one (state, kernel wait
channel, kernel stack, command line) and the FUSE mounts under this process's temp dir;
then it ends what holds the test, one step at a time while the test still runs: the FUSE
connections of those mounts are aborted (every request waiting on them fails ``ENOTCONN``),
then the processes under this one are killed, and last this process exits, which xdist
reports as a crash of the test it ran. The test fails; the run goes on to its end.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

from avfs_git.core.store.locks import signal_process

GRACE_S = 45.0  # past pytest-timeout's own limit: a test it can end never gets here
STEP_S = 20.0  # between the steps that end what holds a test
POLL_S = 5.0
CONNECTIONS = "/sys/fs/fuse/connections"
DEFAULT_S = 300.0  # pytest-timeout's limit where none is given (pyproject.toml gives it)


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(64 * 1024).decode("utf-8", "replace")
    except OSError as exc:
        return f"<{exc.strerror}>"


def descendants(root: int, started: dict[int, int] | None = None) -> list[int]:
    """The processes under ``root`` (children first found by each one's parent in /proc);
    ``started``, when given, gets each one's start tick (field 22 of its stat: with its
    pid, what names it, for :func:`~avfs_git.core.store.locks.signal_process`)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _read(f"/proc/{entry}/stat")
        close = stat.rfind(")")
        fields = stat[close + 2 :].split()
        if len(fields) > 1 and fields[1].isdigit():
            parent[int(entry)] = int(fields[1])
            if started is not None and len(fields) > 19 and fields[19].isdigit():
                started[int(entry)] = int(fields[19])
    found: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        kids = [p for p, pp in parent.items() if pp == pid]
        found.extend(kids)
        todo.extend(kids)
    return found


def fuse_mounts_under(top: str) -> list[tuple[str, str]]:
    """(mount point, FUSE connection id) of the FUSE mounts at or under ``top``, from
    /proc/self/mountinfo (no stat of a mount point: it would wait on the daemon too)."""
    found = []
    for line in _read("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fields, fstype = left.split(), right.split()[:1]
        if len(fields) < 5 or not fstype or not fstype[0].startswith("fuse"):
            continue
        point = fields[4].replace("\\040", " ")
        if point == top or point.startswith(top.rstrip("/") + "/"):
            found.append((point, fields[2].split(":")[1]))
    return found


def describe(top: str) -> str:
    """Every thread's stack, the processes under this one and the FUSE mounts under ``top``."""
    with tempfile.TemporaryFile() as f:
        faulthandler.dump_traceback(f, all_threads=True)
        f.seek(0)
        stacks = f.read().decode("utf-8", "replace")
    lines = ["Python stacks of this process:", stacks]
    for pid in [os.getpid(), *descendants(os.getpid())]:
        cmd = _read(f"/proc/{pid}/cmdline").replace("\0", " ").strip()
        state = next((s for s in _read(f"/proc/{pid}/status").splitlines() if s.startswith("State:")), "")
        lines.append(f"pid {pid} {state} wchan={_read(f'/proc/{pid}/wchan')} cmd={cmd[:300]}")
        for task in sorted(os.listdir(f"/proc/{pid}/task")) if os.path.isdir(f"/proc/{pid}/task") else []:
            stack = _read(f"/proc/{pid}/task/{task}/stack").strip()
            if stack and "do_epoll_wait" not in stack:
                lines.append(f"  task {task}:\n    " + stack.replace("\n", "\n    "))
    lines.append(f"FUSE mounts under {top}: {fuse_mounts_under(top)}")
    return "\n".join(lines)


class HangWatch:
    def __init__(self, config: pytest.Config, top: str) -> None:
        self._config = config
        self._top = top
        self._lock = threading.Lock()
        self._running: tuple[str, float, float] | None = None
        self.found: dict[str, str] = {}
        threading.Thread(target=self._watch, name="avfs-hang-watch", daemon=True).start()

    def _limit(self, item: pytest.Item, phase: str) -> float:
        """pytest-timeout's limit for ``item`` (its marker, else the command line's, else the
        ini's), and the grace; with `timeout_func_only` its set-up and teardown have none
        from pytest-timeout: theirs is the default's."""
        func_only = self._config.getoption("timeout_func_only", None) or self._config.getini(
            "timeout_func_only"
        )
        if phase != "call" and func_only:
            return DEFAULT_S + GRACE_S
        marker = item.get_closest_marker("timeout")
        given = None
        if marker is not None:
            given = marker.args[0] if marker.args else marker.kwargs.get("timeout")
        if given is None:
            given = self._config.getoption("timeout", None)
        if given is None:
            given = self._config.getini("timeout") or DEFAULT_S
        return float(given or DEFAULT_S) + GRACE_S

    @contextlib.contextmanager
    def _phase(self, nodeid: str, limit: float) -> Iterator[None]:
        with self._lock:
            self._running = (nodeid, time.monotonic(), limit)
        try:
            yield
        finally:
            with self._lock:
                self._running = None

    # each phase timed on its own, as pytest-timeout does with `timeout_func_only`; without
    # it its one timer covers the three, so a phase past the limit is past it too
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Iterator[None]:
        with self._phase(item.nodeid, self._limit(item, "setup")):
            yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        with self._phase(item.nodeid, self._limit(item, "call")):
            yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Iterator[None]:
        with self._phase(item.nodeid, self._limit(item, "teardown")):
            yield

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_sessionfinish(self) -> Iterator[None]:
        """The session's end (its fixtures' teardown: unmounts, servers stopped) watched too."""
        with self._phase("<the session's end>", DEFAULT_S + GRACE_S):
            yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item) -> Iterator[None]:
        outcome = yield
        text = self.found.get(item.nodeid)
        if text is not None:
            outcome.get_result().sections.append(("hang watch", text))

    def _still(self, nodeid: str) -> bool:
        with self._lock:
            return self._running is not None and self._running[0] == nodeid

    def _say(self, text: str) -> None:
        """To the session's own stderr (an xdist worker's is its controller's), past capture."""
        capman = self._config.pluginmanager.getplugin("capturemanager")
        fd = 2
        with contextlib.suppress(AttributeError):
            fd = capman._global_capturing.err.targetfd_save  # type: ignore[union-attr]
        with contextlib.suppress(OSError):
            os.write(fd, f"\n[hang watch, pid {os.getpid()}] {text}\n".encode("utf-8", "replace"))

    def _watch(self) -> None:
        while True:
            time.sleep(POLL_S)
            with self._lock:
                running = self._running
            if running is None or time.monotonic() - running[1] < running[2]:
                continue
            self._end(running[0], running[2])
            while self._still(running[0]):  # ended by another hand meanwhile: said once
                time.sleep(POLL_S)

    def _end(self, nodeid: str, limit: float) -> None:
        text = f"{nodeid} still runs {limit:.0f} s after its phase started\n{describe(self._top)}"
        self.found[nodeid] = text
        self._say(text)
        mounts = fuse_mounts_under(self._top)
        if mounts and not os.path.ismount(CONNECTIONS):
            # the FUSE control file system (systemd mounts it; a container may not have)
            subprocess.run(
                ["mount", "-t", "fusectl", "fusectl", CONNECTIONS], check=False, capture_output=True
            )
        for point, conn in mounts:
            try:
                with open(f"{CONNECTIONS}/{conn}/abort", "w") as f:
                    f.write("1")
                self._say(f"aborted the FUSE connection {conn} of {point}")
            except OSError as exc:
                self._say(f"could not abort the FUSE connection {conn} of {point}: {exc}")
        time.sleep(STEP_S)
        if not self._still(nodeid):
            return
        started: dict[int, int] = {}
        for pid in descendants(os.getpid(), started):
            # (the process found: one that ended since may have its pid given to another)
            with contextlib.suppress(OSError):
                if signal_process(pid, signal.SIGKILL, ticks=started.get(pid, -1)):
                    self._say(f"killed {pid}")
        time.sleep(STEP_S)
        if not self._still(nodeid):
            return
        self._say(f"{nodeid} still holds this process: it exits\n{describe(self._top)}")
        sys.stderr.flush()
        os._exit(70)


def register(config: pytest.Config, top: str) -> None:
    """Watch this process's tests (in xdist's controller, which runs none, nothing)."""
    if config.pluginmanager.get_plugin("dsession") is not None:
        return
    config.pluginmanager.register(HangWatch(config, top), "avfs-hang-watch")
