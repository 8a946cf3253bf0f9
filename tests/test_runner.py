"""proxy/runner.py on the host: both output pipes read by one poll loop while the command
runs (no threads), bounded; a pipe held by a process that left the group waited for at most
about a second; a timeout reads on while the group is stopped. Real processes."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from avfs_git.proxy import runner


def _run(script: str, **kw: object) -> runner.RunResult:
    args: dict[str, object] = {
        "cwd": "/",
        "env": dict(os.environ),
        "timeout_ms": 20_000,
        "max_output": 1 << 20,
    }
    args.update(kw)
    return runner.run([sys.executable, "-c", script], **args)  # type: ignore[arg-type]


def test_both_streams_interleaved_and_bounded():
    script = (
        "import os\n"
        "for i in range(64):\n"
        "    os.write(1, bytes([65 + i % 26]) * 65536)\n"
        "    os.write(2, bytes([97 + i % 26]) * 8192)\n"
    )
    res = _run(script, max_output=1 << 20)
    assert res.exit_code == 0 and not res.timed_out
    assert (res.stdout_bytes, res.stderr_bytes) == (64 * 65536, 64 * 8192)
    assert len(res.stdout) == 1 << 20 and res.stdout_truncated
    assert len(res.stderr) == 64 * 8192 and not res.stderr_truncated
    assert res.stdout[:65536] == b"A" * 65536 and res.stderr[8192 : 2 * 8192] == b"b" * 8192


def test_exit_code_signal_and_small_output():
    res = _run("import sys; print('out'); print('err', file=sys.stderr); sys.exit(5)")
    assert (res.exit_code, res.stdout, res.stderr, res.signal) == (5, b"out\n", b"err\n", None)
    res = _run("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert (res.exit_code, res.signal) == (128 + 9, "SIGKILL")


def test_a_pipe_held_past_the_command_is_waited_for_about_a_second():
    # a grandchild in a session of its own keeps stdout open for 30 s
    script = (
        "import os, subprocess\n"
        "subprocess.Popen(['sleep', '30'], start_new_session=True)\n"
        "print('parent done', flush=True)\n"
    )
    t0 = time.monotonic()
    res = _run(script)
    took = time.monotonic() - t0
    assert res.exit_code == 0 and res.stdout == b"parent done\n"
    assert took < 10, f"waited {took:.1f} s for a pipe the command's escaped child held"


def test_a_timeout_reads_on_while_the_group_is_stopped():
    # on SIGTERM the command writes 1 MiB (more than a pipe holds) before it exits
    script = (
        "import os, signal, sys, time\n"
        "def bye(*_):\n"
        "    os.write(1, b'x' * (1 << 20)); sys.exit(3)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    res = _run(script, timeout_ms=1500, kill_grace_ms=10_000, max_output=4 << 20)
    assert res.timed_out and res.exit_code == runner.EXIT_TIMEOUT
    assert res.stdout_bytes == len(b"ready\n") + (1 << 20), "the handler's output was not all read"


def test_cancel_stops_the_command():
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    t0 = time.monotonic()
    res = _run("import time; time.sleep(60)", cancel=cancel)
    assert time.monotonic() - t0 < 10 and not res.timed_out and res.exit_code == 128 + 15


@pytest.mark.parametrize("n", [0, 1, 65536, 65537])
def test_exact_sizes(n):
    res = _run(f"import os; os.write(1, b'z' * {n})", max_output=65536)
    assert res.stdout_bytes == n and len(res.stdout) == min(n, 65536) and res.stdout_truncated == (n > 65536)
