"""What ends a process's sandboxes once it has ended: a keeper, and the mark it looks for.

bubblewrap ties a sandbox to the process that started it (``--die-with-parent``) in three
steps, and one process can be stranded between each (bubblewrap.c, 0.8 to 0.11.1): the
outer ``bwrap`` arms its signal after its clone, then writes the sandbox's ``child-pid`` to
its status pipe, and only then lets its child (the sandbox's first process, waiting on an
eventfd only the outer writes) go on; that child arms its own only once the sandbox is
set up. An owner killed between the outer's arming and its go-ahead has the outer killed
by that signal, and the child waits for good (parent 1, a copy of the host's mounts held:
the fork's among them); where the child waits on ``--block-fd`` (a first call's sandbox set
up ahead without Perl, :mod:`.ahead`) it waits there for good too; and where no Perl
checks the outer (:data:`.landlock.EXEC`), an owner killed before the outer armed its
signal left the command running to its own end. None of those processes runs anything of
avfs's, and the owner, the one process that knew them, is gone.

So every ``bwrap`` avfs starts carries, in its environment (which its children inherit up
to the command, whose own environment is set anew: ``--clearenv``), a mark naming the
process that started it (``AVFS_SANDBOX_OWNER=<pid>.<start time>.<token>.``), and that process
keeps one small keeper (``/bin/sh``, started once, in a session of its own, holding the
read end of a pipe whose write end only the owner holds): at the end of that pipe (the
owner has ended, however) it kills every process whose environment holds the owner's mark,
and looks again until none is left (a ``bwrap`` killed as it cloned may leave a child the
first look missed). An owner that ends normally has none left: one ``grep`` over
``/proc/*/environ`` (a few ms, in the keeper, after the owner has ended). Where there is
no ``/bin/sh``, no keeper is started and bwrap gets no mark (as before); where the keeper
cannot read another process's environment (a user's own keeper reads only its user's), it
kills nothing of it.

A forked child (the resident server's calls, a zygote's daemon) has a keeper of its own
once it starts a sandbox: it closes its copy of its parent's pipe, whose end would
otherwise wait for it too."""

from __future__ import annotations

import os
import threading

from ..core.store import locks

NAME = "AVFS_SANDBOX_OWNER"
# the keeper: wait for the end of the owner's pipe on stdin, then kill every process whose
# environment holds the mark ($1) until a look finds none (the kill of a process that is
# already gone, or a zombie's empty environment: nothing)
SCRIPT = r"""cd / || exit 1
while IFS= read -r _; do :; done
n=0
while [ "$n" -lt 50 ]; do
  found=$(grep -l -s -a -F -e "$1" /proc/[0-9]*/environ)
  [ -n "$found" ] || exit 0
  for f in $found; do p=${f#/proc/}; kill -KILL "${p%/environ}" 2>/dev/null; done
  n=$((n + 1))
done
"""
SH = "/bin/sh"

_lock = threading.Lock()
_kept: tuple[int, int, int, str] | None = None  # (owner's pid, keeper's pid, write end, mark)


def bwrap_env(base: dict[str, str]) -> dict[str, str]:
    """``base`` (bwrap's environment, :data:`.confine.BWRAP_ENV`) with this process's mark,
    its keeper started if it has none running; ``base`` alone where none can be started."""
    mark = _ensure()
    return base if mark is None else {**base, NAME: mark}


def mark_of(pid: int) -> str | None:
    """The mark of process ``pid``'s sandboxes (None: it is gone): its pid, its start time
    and a token of its keeper's own. A process that ``exec``s keeps its pid and start
    time but not its keeper's pipe (the old keeper then looks for its mark while the new
    program may start sandboxes of its own): the token keeps those out of the old keeper's
    looks (the review of the thirty-fifth round, review37)."""
    ticks = locks.start_ticks(pid)
    return None if ticks is None else f"{pid}.{ticks}.{os.urandom(6).hex()}."


def _ensure() -> str | None:
    global _kept
    me = os.getpid()
    with _lock:
        if _kept is not None and _kept[0] == me and _running(_kept[1]):
            return _kept[3]
        if _kept is not None and _kept[0] == me:
            os.close(_kept[2])  # (its keeper ended: killed; a new one)
        _kept = None
        mark = mark_of(me)
        if mark is None or not os.path.exists(SH):
            return None
        try:
            pid, w = _start(f"{NAME}={mark}")  # (what grep looks for: the name too)
        except OSError:
            return None
        _kept = (me, pid, w, mark)
        return mark


def _running(pid: int) -> bool:
    """Whether our keeper ``pid`` still runs (collected here once it has ended)."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == 0
    except ChildProcessError:
        return False


def _start(mark: str) -> tuple[int, int]:
    """The keeper started for ``mark``: (its pid, the write end of its pipe, kept here and
    never passed on: not inheritable)."""
    import signal

    r, w = os.pipe()
    try:
        pid = os.posix_spawn(
            SH,
            [SH, "-c", SCRIPT, "avfs-keeper", mark],
            {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"},
            file_actions=[
                (os.POSIX_SPAWN_DUP2, r, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            ],
            setsid=True,  # (no terminal's or group's signal meant for the owner reaches it)
            setsigmask=(),
            setsigdef=signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP},
        )
    except BaseException:
        os.close(w)
        raise
    finally:
        os.close(r)
    return pid, w


def _forget_in_child() -> None:
    # a forked child: its parent's keeper is not its own (its copy of the pipe closed, so
    # that keeper sees its owner end); it starts one of its own if it starts a sandbox
    # (the lock made anew: a thread of the parent may have held it as it forked)
    global _kept, _lock
    _lock = threading.Lock()
    if _kept is not None:
        try:
            os.close(_kept[2])
        except OSError:
            pass
    _kept = None


os.register_at_fork(after_in_child=_forget_in_child)
