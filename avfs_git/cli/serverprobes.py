"""What the resident CLI server (:mod:`.resident`) asks once as it starts, before it is
there to find, so that the processes it forks find the answers made: bubblewrap's probe
(and the sandbox's seccomp filter and view of /etc) and the git version a mount's hooks depend on."""

from __future__ import annotations

import os


def probe_sandbox(home: str | None = None) -> None:
    """bubblewrap's probe (a sandbox of its own: ~15 ms of processes, 50-60 under load),
    made here once for this server's ``PATH``: the process of a call that plans a sandbox
    (the first ``proxy exec`` on a fork that is not mounted) is forked from this one and
    finds the answer made; one whose caller's ``PATH`` finds another ``bwrap`` (or none)
    looks for itself (:func:`..proxy.confine.bwrap_path`). The filter and the view are
    kept in ``home``'s ``run/`` (:func:`..proxy.sysview.keep_in`), made there only where
    no process made them before."""
    try:
        from ..proxy import confine, seccomp, sysview

        if home is not None:
            sysview.keep_in(os.path.join(home, "run"))
        confine.unavailable()
        seccomp.program()  # the sandbox's seccomp filter, made once too
        sysview.system_args()  # and what of /etc it hides (a walk of /etc)
    except Exception:
        pass  # the call's process probes, as without this


def probe_git(home: str | None = None) -> None:
    """The git on this server's ``PATH`` asked its version once (mount/hookscripts.py): a
    mount daemon forked from this server finds the answer and starts no ``git --version``
    on its way to the mount's answer. Kept in ``home``'s ``run/`` for the next server
    (the same git: its path and stamp)."""
    try:
        from ..mount import hookscripts

        hookscripts.git_trusts_fsmonitor_in_diff(os.path.join(home, "run") if home else None)
    except Exception:
        pass  # the daemon asks, as without this
