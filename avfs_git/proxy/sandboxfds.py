"""The descriptors avfs hands to bubblewrap with a sandbox (moved out of :mod:`.confine`,
which re-exports them): the command's environment (``--args``), the seccomp filter
(``--seccomp``), the pipe of ``--json-status-fd``, and the two the Landlock program
watches to start the command only while its owners are there."""

from __future__ import annotations

import os
from collections.abc import Mapping


def env_args(env: Mapping[str, str]) -> bytes:
    """``env`` as bwrap arguments (``--clearenv``, then ``--setenv NAME VALUE`` for each),
    NUL-separated as ``--args FD`` reads them. A name bwrap could not set (empty, with ``=``
    or a NUL) or a value with a NUL (no environment can hold one) is left out."""
    parts = [b"--clearenv"]
    for k, v in env.items():
        if not k or "=" in k or "\0" in k or "\0" in v:
            continue
        parts += [b"--setenv", os.fsencode(k), os.fsencode(v)]
    return b"\0".join(parts) + b"\0"


def env_fd(env: Mapping[str, str]) -> int:
    """A descriptor (not inheritable; the caller passes it on and closes it) that bwrap's
    ``--args`` reads :func:`env_args` from: an anonymous file in memory, so the values are
    on no command line (``/proc/PID/cmdline`` is readable by every user) and in no file."""
    return _anonymous(env_args(env), "avfs-env")


def seccomp_fd() -> int:
    """A descriptor (as :func:`env_fd`'s) that bwrap's ``--seccomp`` reads the sandbox's
    filter from (:mod:`.seccomp`: the keyrings refused); -1 where there is none."""
    from .seccomp import program

    data = program()
    return -1 if data is None else _anonymous(data, "avfs-seccomp")


def _anonymous(data: bytes, name: str) -> int:
    try:
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
    except (AttributeError, OSError):  # no memfd here: an unlinked temporary file
        import tempfile

        with tempfile.TemporaryFile() as tmp:
            fd = os.dup(tmp.fileno())
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd


def status_pipe() -> tuple[int, int]:
    """The pipe of bwrap's ``--json-status-fd``: (its read end, kept here; the end bwrap
    writes its status to, that pipe opened anew for reading and writing).

    bwrap writes the sandbox's ``child-pid`` there after its clone and only then lets the
    sandbox's first process go on (bubblewrap.c: that process waits on an eventfd the
    outer bwrap alone writes). When the process that started bwrap was killed first, the
    pipe had no reader left: the write failed (``SIGPIPE``), the outer bwrap died, and
    the first process, not yet armed to die with it, waited for good (parent 1, holding a
    copy of the host's mounts, the fork's among them: the mount daemon's ready sandbox in
    ci41). Opened for reading too, bwrap's own end is a reader: the write goes into the
    pipe, bwrap goes on, and what ends the sandbox then (the waiter's or the gate's end of
    the file, the checks of :data:`.landlock.EXEC`) does. bwrap closes that end in the
    sandbox before anything runs there; it stays a writer, so the end of the file here
    still says bwrap has ended. Where the pipe cannot be opened so, a plain pipe, as
    before."""
    r, w = os.pipe()
    try:
        rw = os.open(f"/proc/self/fd/{w}", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return r, w
    os.close(w)
    return r, rw


def outer_fd(status_r: int) -> int:
    """``status_r``, the read end of the pipe of bwrap's ``--json-status-fd`` (whose write
    end only the outer bwrap keeps), to be passed into the sandbox: the Landlock program
    starts the command only while that bwrap is there (:data:`.landlock.EXEC`: one
    killed before the sandbox's init set ``--die-with-parent``'s signal would leave the
    command running, parent 1, with no timeout). -1 where no such program runs (the
    command itself would inherit the descriptor)."""
    from . import landlock

    return status_r if landlock.available() and landlock.PPOLL > 0 else -1


def life_fd() -> int:
    """A pidfd of this process, to be passed into the sandbox: the Landlock program starts
    the command only while this process is there (:data:`.landlock.EXEC`: killed before the
    outer bwrap armed ``--die-with-parent``'s signal, nothing would end the command nor time
    it out). -1 where no such program runs, or the kernel has no pidfds (the caller closes
    it once bwrap is started)."""
    from . import landlock

    if not (landlock.available() and landlock.PPOLL > 0):
        return -1
    try:
        return os.pidfd_open(os.getpid())
    except (AttributeError, OSError):
        return -1
