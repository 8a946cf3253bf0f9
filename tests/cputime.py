"""Each test's CPU, all processes counted (opt-in: ``AVFS_TEST_CPU=FILE``; tests/conftest.py).

On two cores the suite is bound by the CPU its tests spend in all, and most of it is not
the test process's own: the ``avfs`` processes a test starts, the mount daemons and
servers it does not wait for, git. With ``AVFS_TEST_CPU`` naming an output file, each
process that runs tests (each xdist worker, or the one process of ``-n 0``) moves itself
into a cpuacct cgroup of its own as its session starts (a cgroup v1 ``cpuacct``
hierarchy, as root), so everything it starts is counted there, and reads the cgroup's
usage around each test's whole protocol (setup, call and teardown: what a module-scoped
fixture makes is in its module's first test, what it tears down in its last). Beside the
cgroup's figure each test gets the process's own CPU (``RUSAGE_SELF``) and that of the
children it waited for (``RUSAGE_CHILDREN``); the rest ("other") is what ran in the
cgroup without being waited for: mount daemons, servers, a daemon a test left that
spends after the test ended (then counted in the tests that follow, a leak to look at).

Each worker appends one JSON line a test to ``FILE.<worker>.jsonl``; the process that
ends the session (xdist's controller, or the one process) merges them into ``FILE`` (one
JSON document: tests and files ranked by CPU, the workers' totals) and a text table
beside it (``FILE.txt``). Off (nothing done, no cgroup) unless the variable is set.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import resource
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ENV = "AVFS_TEST_CPU"
ROOT = "/sys/fs/cgroup/cpuacct"
KINDS_ENV = "AVFS_TEST_CPU_KINDS"  # =1: each test's CPU also by kind of process (Kinds)
_TICK = os.sysconf("SC_CLK_TCK")


def kind_of(argv: list[bytes], comm: bytes) -> str:
    """The kind of a process of the suite by its command line and name: a mount daemon
    (exec'd, or forked from a warm CLI server and renamed), a resident CLI server, an
    ``avfs`` process (``proxy exec`` and ``mcp`` on their own), git, bubblewrap, or its name."""
    words = [a.decode("utf-8", "replace") for a in argv]
    name = comm.decode("utf-8", "replace")
    joined = " ".join(words)
    if name == "avfs-mountd" or "avfs_git.fuse.daemon" in joined:
        return "mount daemon"
    if "avfs_git.cli.resident" in joined:
        return "CLI server"
    base = os.path.basename(words[0]) if words else name
    script = (
        base.startswith("python") and len(words) > 1 and os.path.basename(words[1]) == "avfs"
    ) or base == "avfs"
    if (
        script
        or ("-m" in words and "avfs_git" in words)
        or ("avfs_git" in joined and base.startswith("python"))
    ):
        if "exec" in words and "proxy" in words:
            return "avfs proxy exec"
        if "mcp" in words:
            return "avfs mcp"
        if "mount" in words:
            return "avfs mount"
        if "unmount" in words:
            return "avfs unmount"
        return "avfs (other commands)"
    if base == "git" or base.startswith("git-") or name.startswith("git"):
        return "git"
    if base == "bwrap" or name == "bwrap":
        return "bwrap"
    return f"other: {name}"


def shape(argv: list[bytes], words: int = 6, width: int = 160) -> str:
    """A command line shortened to what its processes share: its first ``words`` words,
    each path by its last two parts (temporary directories differ test by test)."""
    out = []
    for a in argv[:words]:
        w = a.decode("utf-8", "replace")
        if w.startswith("/"):  # a test's own directory (pytest's tmp_path) as TMP
            head, _, tail = w.rpartition("/")
            w = (
                f"TMP/{tail}"
                if "/pytest-" in head or head.startswith("/tmp")
                else "/".join(w.rsplit("/", 2)[-2:])
            )
        out.append(w)
    return " ".join(out)[:width]


def reference_ms() -> float:
    """The CPU (ms) of a fixed piece of pure Python (arithmetic, a dict, a sort): how fast
    this machine runs the interpreter now. The same tests took more CPU in one fresh-clone
    run than in another with no change to them or to the code they run (ci45 against ci42:
    the 54 tests whose CPU is their process's own alone, >0.2 s, median 1.15x;
    test_policy_budget 1.29x, neither it nor avfs_git/policy changed; suitetime1): the
    report gives each run's figure, so that runs are compared at the same speed."""
    t = time.process_time()
    acc = 0
    for i in range(800_000):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    d = {str(i): i * acc % 97 for i in range(120_000)}
    sorted(d, key=d.__getitem__)
    return round((time.process_time() - t) * 1000, 1)


def _argv(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[:-1]
    except OSError:
        return None


class Kinds:
    """A thread that reads, every ``interval`` s, the CPU (``/proc/PID/stat``'s utime and
    stime, in clock ticks) of each process in the worker's cgroup but the worker itself,
    and adds what each spent since its last reading to its kind (:func:`kind_of`). What a
    process spent after its last reading, and processes that came and went between two
    (most ``git``), are not seen: the cgroup's figure less the worker's own and the seen
    is the test's "unseen". Each process is counted once, in the test during which it is
    first seen, or, a fork seen before its exec (its parent's command line), in the test
    during which it has exec'd or is gone."""

    def __init__(self, group: str, interval: float = 0.01) -> None:
        self.procs = os.path.join(group, "cgroup.procs")
        self.me = os.getpid()
        self.interval = interval
        self.last: dict[tuple[int, bytes], float] = {}
        self.kind: dict[tuple[int, bytes], str] = {}
        self.comm: dict[tuple[int, bytes], bytes] = {}
        self.argv: dict[str, list[bytes]] = {}  # a command line of each kind (to check the kinds)
        self.line: dict[tuple[int, bytes], str] = {}  # each process's command line, shortened (shape)
        self.lines: dict[tuple[str, str], list[float]] = {}  # (kind, shape): [CPU seen, processes]
        self.new: list[tuple[int, bytes]] = []  # processes first seen since the last take
        # forks that have not exec'd yet (their parent's command line: this process's, an
        # `avfs mcp` server's before its command runs): their kind is not known, so they are
        # counted once they have exec'd (or once they are gone)
        self.unexeced: set[tuple[int, bytes]] = set()
        self.cpu: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._run, name="avfs-test-cpu-kinds", daemon=True).start()

    def _run(self) -> None:
        while True:
            self.sample()
            time.sleep(self.interval)

    def sample(self) -> None:
        try:
            with open(self.procs) as f:
                pids = [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            return
        for pid in pids:
            if pid == self.me:
                continue
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    head, _, rest = f.read().rpartition(b")")
                fields = rest.split()
                key = (pid, fields[19])  # field 22: the start time (a pid used again is another process)
                used = (int(fields[11]) + int(fields[12])) / _TICK
                comm = head.split(b"(", 1)[1]
                # new, or its name changed (an exec: a fork runs its parent's code until then),
                # or a Python not yet known (a Python's exec of a Python keeps the name), or a
                # fork not yet exec'd
                if (
                    self.comm.get(key) != comm
                    or key in self.unexeced
                    or self.kind[key].startswith("other: python")
                ):
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv = f.read().split(b"\0")[:-1]
                    with self.lock:
                        self.comm[key], self.kind[key] = comm, kind_of(argv, comm)
                        self.argv.setdefault(self.kind[key], argv)
                        self.line[key] = shape(argv)
                        if argv == _argv(int(fields[1])):  # field 4: the parent
                            self.unexeced.add(key)
                        else:
                            self.unexeced.discard(key)
            except (OSError, IndexError, ValueError):
                continue
            with self.lock:
                k = self.kind[key]
                if key not in self.last:
                    self.new.append(key)
                spent = used - self.last.get(key, 0.0)
                self.cpu[k] = self.cpu.get(k, 0.0) + spent
                self.last[key] = used
                by_line = self.lines.setdefault((k, self.line[key]), [0.0, 0])
                by_line[0] += spent

    def count_calls(self) -> None:
        """Count, as kinds of their own, what the test process does in process: vaults
        made, homes opened, commands run (``conftest.run_in_process``), the vault and fork
        homes' copies (tests/vaulttemplate.py, tests/gitmount.py)."""
        import functools
        import importlib

        def wrap(modname: str, owner: str | None, name: str, kind: str) -> None:
            mod = importlib.import_module(modname)
            obj = getattr(mod, owner) if owner else mod
            real = getattr(obj, name)

            @functools.wraps(real)
            def counted(*a: object, **kw: object) -> object:
                with self.lock:
                    self.count[kind] = self.count.get(kind, 0) + 1
                return real(*a, **kw)

            setattr(obj, name, counted)

        wrap("avfs_git.core.vaults.home", "Home", "create_vault", "in process: vault created")
        wrap("avfs_git.core.vaults.home", "Home", "__init__", "in process: home opened")
        wrap("avfs_git.cli.execopts", None, "main", "in process: avfs command")
        wrap("tests.vaulttemplate", None, "copy_into", "in process: vault template copied")
        wrap("tests.gitmount", None, "copy_fork_home", "in process: fork home copied")

    def take(self) -> tuple[dict[str, float], dict[str, int]]:
        """What was added since the last take (one test's)."""
        self.sample()
        with self.lock:
            later = []
            for key in self.new:  # counted as what it is now (after its exec)
                if key in self.unexeced and os.path.exists(f"/proc/{key[0]}"):
                    later.append(key)  # (was 36 of 51 "other: python" in a sample: avfs mcp, ...)
                    continue
                self.unexeced.discard(key)
                self.count[self.kind[key]] = self.count.get(self.kind[key], 0) + 1
                self.lines.setdefault((self.kind[key], self.line[key]), [0.0, 0])[1] += 1
            cpu, count = self.cpu, self.count
            self.cpu, self.count, self.new = {}, {}, later
        return {k: round(v, 3) for k, v in cpu.items()}, count


def memory_mib() -> tuple[int, int]:
    """This process's resident memory and its high-water mark (``VmRSS``, ``VmHWM``), MiB:
    a child's ``ru_maxrss`` starts at the high-water mark of the process that forked it
    (docs/testing.md), so the report names the tests that raised a worker's."""
    got = {"VmRSS": 0, "VmHWM": 0}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in got:
                got[key] = int(value.split()[0]) // 1024
    return got["VmRSS"], got["VmHWM"]


def memory_rises(tests: list[dict[str, object]], top: int = 20) -> list[dict[str, object]]:
    """The tests (each worker's lines in their order) after which the worker's high-water
    mark stood highest above where it was before them, most first."""
    rises: list[dict[str, object]] = []
    last: dict[str, int] = {}
    for rec in tests:
        if "hwm_mib" not in rec:
            continue
        worker, hwm = str(rec["worker"]), int(rec["hwm_mib"])  # type: ignore[call-overload]
        if worker in last and hwm > last[worker]:
            rises.append(
                {
                    "test": rec["test"],
                    "worker": worker,
                    "rise_mib": hwm - last[worker],
                    "hwm_mib": hwm,
                    "rss_mib": rec["rss_mib"],
                }
            )
        last[worker] = max(hwm, last.get(worker, 0))
    rises.sort(key=lambda r: -int(r["rise_mib"]))  # type: ignore[call-overload]
    return rises[:top]


def _usage(group: str) -> float:
    with open(os.path.join(group, "cpuacct.usage")) as f:
        return int(f.read()) / 1e9


def _own_cgroup() -> str:
    """This process' cpuacct cgroup's path below the hierarchy's root."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if "cpuacct" in controllers.split(","):
                return path
    return "/"


class CpuRecorder:
    """The plugin of one test process: its cgroup, and a line per test."""

    def __init__(self, out: str, worker: str) -> None:
        self.out = out
        self.worker = worker
        self.lines = f"{out}.{worker}.jsonl"
        self.group = os.path.join(ROOT, f"avfs-test-cpu-{os.getpid()}")
        self.home = os.path.join(ROOT, _own_cgroup().lstrip("/"))
        os.makedirs(self.group, exist_ok=True)
        with open(os.path.join(self.group, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
        self.start = _usage(self.group)
        self.reference = [reference_ms()]  # (and again as the session ends)
        self.outcome: dict[str, str] = {}
        self.kinds = Kinds(self.group) if os.environ.get(KINDS_ENV) == "1" else None
        if self.kinds is not None:
            self.kinds.count_calls()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.outcome != "passed":
            old = self.outcome.get(report.nodeid)
            if old is None or old == "passed":
                self.outcome[report.nodeid] = f"{report.outcome}" + (
                    "" if report.when == "call" else f" ({report.when})"
                )

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        if self.kinds is not None:
            self.kinds.take()
        cg0 = _usage(self.group)
        me0 = resource.getrusage(resource.RUSAGE_SELF)
        ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        yield
        wall = time.monotonic() - t0
        cg = _usage(self.group) - cg0
        me1 = resource.getrusage(resource.RUSAGE_SELF)
        ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = (me1.ru_utime + me1.ru_stime) - (me0.ru_utime + me0.ru_stime)
        kids = (ch1.ru_utime + ch1.ru_stime) - (ch0.ru_utime + ch0.ru_stime)
        rec = {
            "test": item.nodeid,
            "file": item.nodeid.split("::")[0],
            "cpu": round(cg, 4),
            "own": round(own, 4),
            "waited": round(kids, 4),
            "other": round(max(cg - own - kids, 0.0), 4),
            "wall": round(wall, 3),
            "worker": self.worker,
            "outcome": self.outcome.pop(item.nodeid, "passed"),
        }
        rec["rss_mib"], rec["hwm_mib"] = memory_mib()
        if self.kinds is not None:
            rec["kinds"], rec["counts"] = self.kinds.take()
        with open(self.lines, "a") as f:
            f.write(json.dumps(rec) + "\n")

    @pytest.hookimpl(trylast=True)  # after the suite's own clean-up (tests/conftest.py)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        total = _usage(self.group) - self.start
        # back to where this process was; the cgroup goes if nothing is left in it (what a
        # test left running keeps it: named in the report)
        with contextlib.suppress(OSError), open(os.path.join(self.home, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
        left: list[str] = []
        with contextlib.suppress(OSError):
            with open(os.path.join(self.group, "cgroup.procs")) as f:
                pids = f.read().split()
            for pid in pids:
                with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
                    left.append(f"{pid} " + f.read().replace(b"\0", b" ").decode("utf-8", "replace")[:200])
            if not pids:
                os.rmdir(self.group)
        self.reference.append(reference_ms())
        rec = {
            "worker_total": round(total, 3),
            "worker": self.worker,
            "left": left,
            "reference_ms": self.reference,
        }
        if self.kinds is not None:
            rec["argv"] = {k: [a.decode("utf-8", "replace") for a in v] for k, v in self.kinds.argv.items()}
            with self.kinds.lock:
                rec["lines"] = [[k, line, round(c, 3), n] for (k, line), (c, n) in self.kinds.lines.items()]
        with open(self.lines, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self.worker == "main":  # no xdist: this process also ends the session
            write_report(self.out)


class CpuReport:
    """In the process that ends the session: the workers' lines merged and ranked."""

    def __init__(self, out: str) -> None:
        self.out = out

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        write_report(self.out)


def write_report(out: str, top: int = 60) -> dict[str, object]:
    """Merge ``OUT.*.jsonl`` into ``OUT`` (JSON) and ``OUT.txt`` (ranked tables)."""
    tests: list[dict[str, object]] = []
    workers: dict[str, float] = {}
    left: list[str] = []
    refs: list[float] = []  # reference_ms() of each worker's start and end
    argvs: dict[str, list[str]] = {}
    by_line: dict[tuple[str, str], list[float]] = {}
    for path in sorted(glob.glob(f"{glob.escape(out)}.*.jsonl")):
        for line in Path(path).read_text().splitlines():
            rec = json.loads(line)
            if "worker_total" in rec:
                workers[rec["worker"]] = workers.get(rec["worker"], 0.0) + rec["worker_total"]
                left += rec.get("left", [])
                refs += rec.get("reference_ms", [])
                argvs.update(rec.get("argv", {}))
                for k, line_, c, n in rec.get("lines", []):
                    acc = by_line.setdefault((k, line_), [0.0, 0])
                    acc[0] += c
                    acc[1] += n
            else:
                tests.append(rec)
    rises = memory_rises(tests)
    files: dict[str, dict[str, float]] = {}
    for rec in tests:
        f = files.setdefault(
            str(rec["file"]), {"cpu": 0.0, "own": 0.0, "waited": 0.0, "other": 0.0, "wall": 0.0, "tests": 0}
        )
        for k in ("cpu", "own", "waited", "other", "wall"):
            f[k] += float(rec[k])  # type: ignore[arg-type]
        f["tests"] += 1
    tests.sort(key=lambda r: -float(r["cpu"]))  # type: ignore[arg-type]
    ranked = sorted(
        ({"file": k, **{n: round(v, 3) for n, v in f.items()}} for k, f in files.items()),
        key=lambda r: -r["cpu"],
    )
    kinds: dict[str, dict[str, float]] = {}
    for rec in tests:
        if "kinds" not in rec:
            continue
        seen = 0.0
        for k, v in rec["kinds"].items():  # type: ignore[attr-defined]
            kinds.setdefault(k, {"cpu": 0.0, "count": 0})["cpu"] += v
            seen += v
        for k, n in rec["counts"].items():  # type: ignore[attr-defined]
            kinds.setdefault(k, {"cpu": 0.0, "count": 0})["count"] += n
        own = kinds.setdefault("the test process (own)", {"cpu": 0.0, "count": 0})
        own["cpu"] += float(rec["own"])  # type: ignore[arg-type]
        own["count"] += 1
        unseen = kinds.setdefault("unseen (short-lived: mostly git)", {"cpu": 0.0, "count": 0})
        unseen["cpu"] += max(float(rec["cpu"]) - float(rec["own"]) - seen, 0.0)  # type: ignore[arg-type]
    doc = {
        "kinds": {
            k: {"cpu": round(v["cpu"], 2), "count": int(v["count"])}
            for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]["cpu"])
        },
        "total_cpu": round(sum(float(r["cpu"]) for r in tests), 3),  # type: ignore[arg-type]
        "workers_cpu": workers,
        "reference_ms": sorted(refs)[len(refs) // 2] if refs else None,  # the median
        "left_running": left,
        "kind_examples": argvs,
        # each kind's command lines (shortened: tests.cputime.shape) by the CPU seen in them
        "command_lines": [
            {"kind": k, "line": line_, "cpu": round(c, 2), "count": int(n)}
            for (k, line_), (c, n) in sorted(by_line.items(), key=lambda kv: -kv[1][0])
        ],
        "tests": tests,
        "files": ranked,
        "memory_rises": rises,
    }
    Path(out).write_text(json.dumps(doc, indent=1) + "\n")
    lines = [f"total over tests {doc['total_cpu']:.1f} s of CPU; workers (collection included) {workers}"]
    lines.append(f"the machine's speed: reference_ms {doc['reference_ms']} (the workers' {sorted(refs)})")
    lines += [f"left running in a worker's cgroup at its end: {p}" for p in left] + [""]
    if kinds:
        lines.append(f"{'cpu':>8} {'count':>7} {'each ms':>8}  kind")
        for k, v in doc["kinds"].items():  # type: ignore[attr-defined]
            each = (
                f"{1000 * v['cpu'] / v['count']:8.1f}"
                if v["count"] and not k.startswith("the test")
                else " " * 8
            )
            lines.append(f"{v['cpu']:8.2f} {v['count']:7d} {each}  {k}")
        lines.append("")
        lines.append(f"{'cpu':>8} {'count':>7} {'each ms':>8}  kind: command line (the 40 costliest)")
        for c in doc["command_lines"][:40]:  # type: ignore[index]
            each = f"{1000 * c['cpu'] / c['count']:8.1f}" if c["count"] else " " * 8
            lines.append(f"{c['cpu']:8.2f} {c['count']:7d} {each}  {c['kind']}: {c['line']}")
        lines.append("")
    lines.append(f"{'cpu':>8} {'own':>7} {'waited':>7} {'other':>7} {'wall':>7} {'n':>4}  file")
    for r in ranked:
        lines.append(
            f"{r['cpu']:8.2f} {r['own']:7.2f} {r['waited']:7.2f} {r['other']:7.2f} {r['wall']:7.1f} {int(r['tests']):4d}  {r['file']}"
        )
    lines += [
        f"not passed: {r['test']}: {r['outcome']}" for r in tests if r.get("outcome", "passed") != "passed"
    ]
    if rises:
        lines += ["", "the tests that raised their worker's memory high-water mark most (MiB):"]
        lines += [
            f"{r['rise_mib']:6d} to {r['hwm_mib']:6d} (rss after {r['rss_mib']})  {r['worker']}  {r['test']}"
            for r in rises
        ]
    lines += ["", f"{'cpu':>8} {'own':>7} {'waited':>7} {'other':>7} {'wall':>7}  test"]
    for rec in tests[:top]:
        lines.append(
            f"{rec['cpu']:8.2f} {rec['own']:7.2f} {rec['waited']:7.2f} {rec['other']:7.2f} {rec['wall']:7.1f}  {rec['test']}"
        )
    Path(f"{out}.txt").write_text("\n".join(lines) + "\n")
    return doc


def register(config: pytest.Config) -> None:
    """From tests/conftest.py's ``pytest_configure``: nothing unless ``AVFS_TEST_CPU`` is set."""
    out = os.environ.get(ENV)
    if not out:
        return
    out = os.path.abspath(out)
    workerinput = getattr(config, "workerinput", None)
    is_controller = workerinput is None and bool(getattr(config.option, "numprocesses", None))
    if config.option.collectonly:
        return
    if not is_controller:
        worker = workerinput["workerid"] if workerinput else "main"
        try:
            recorder = CpuRecorder(out, worker)
        except OSError as exc:  # not root, or no cgroup v1 cpuacct hierarchy here
            raise pytest.UsageError(f"{ENV}: cannot make a cpuacct cgroup under {ROOT}: {exc}") from None
        config.pluginmanager.register(recorder, "avfs-test-cpu")
    if workerinput is None:
        for old in glob.glob(f"{glob.escape(out)}.*.jsonl"):
            os.unlink(old)
    if is_controller:
        config.pluginmanager.register(CpuReport(out), "avfs-test-cpu-report")
