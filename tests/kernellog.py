"""The kernel log's crash lines, for tests that check no process of theirs crashed.

"No crashes" is checked where it shows: a process that faults leaves a line such as
``python[12921]: segfault at ... in libfuse3.so...`` or ``traps: python[1234] general
protection ...`` in the kernel log, even when every assertion of the test passed.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable

FAULT = re.compile(r"segfault|general protection|traps:", re.IGNORECASE)
WHO = re.compile(r"(\S+)\[(\d+)\]")  # the process a crash line names: "python[12921]"


def read() -> tuple[list[str] | None, str]:
    """The kernel log's lines, or (None, why) when it cannot be read (``dmesg`` needs root
    or ``kernel.dmesg_restrict=0``)."""
    try:
        proc = subprocess.run(["dmesg"], capture_output=True, text=True, check=False, timeout=30)
    except FileNotFoundError:
        return None, "dmesg is not installed (util-linux)"
    if proc.returncode != 0:
        return None, f"dmesg failed ({proc.stderr.strip()}): needs root or kernel.dmesg_restrict=0"
    return proc.stdout.splitlines(), ""


def new_faults(before: list[str], after: list[str]) -> list[str]:
    """The crash lines in ``after`` that ``before`` did not hold."""
    seen = set(before)
    return [line for line in after if line not in seen and FAULT.search(line)]


def of(lines: Iterable[str], pids: Iterable[int]) -> list[str]:
    """The lines that name one of ``pids``."""
    ours = set(pids)
    return [line for line in lines if any(int(m.group(2)) in ours for m in WHO.finditer(line))]
