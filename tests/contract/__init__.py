"""The contract: what a user relies on in a fork, written once and run against every backend
(as fsspec runs one suite against each of its file systems): the in-process workspace API,
the overlay mount (kernel overlayfs over avfs's lower view) and the pure-FUSE mount.

Each test drives the fork through its backend's own door (``Workspace`` methods, or plain
``os`` calls in a real mount; backends.py) and checks what every reader sees: the backend
itself, the workspace's status, the checkpoint's commit in git (views.py). The backend comes
from one fixture, ``backend`` (conftest.py); what only a mount has (a POSIX call, git run in
the mount, the mount's daemon) is marked ``backends(*MOUNTS)`` and runs on both mounts.
Files outside this package keep only what is specific to one backend or to an attacker
(docs/testing.md, "One contract for every backend").
"""
