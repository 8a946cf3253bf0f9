"""The overlay backend's kernel side (see :mod:`.daemon`): kernel overlayfs stacked on the
lower layer this daemon serves. Its mount options, the upper layer on the home's layers
file system tuned, the worktree's ``.git`` pinned immutable in the upper layer, what the
lower layer has under an upper path, the merged directories listed once before git's
first status, the upper layer's watch that answers git's fsmonitor hook, and a hand
``umount`` of the overlay followed by the lower layer's.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any


def _lower_kind(
    ws: Any, lower: Any, path: str, known: dict[str, str | None] | None = None, leaf: bool = False
) -> str | None:
    """What the lower layer (``lower``: the workspace without its upper layer) has where the
    upper layer's ``path`` is (redirected directories followed): None, "dir" or "other".
    ``known``: the lower paths the caller keeps (``lower_path``'s). ``leaf``: ``path`` is
    not a directory, whose own marks are none (a directory's alone carry a redirect or
    an opaque mark: ``metacopy=off``): its directory's lower path and its name, not a
    ``listxattr`` of it kept among the directories' (record5: one a created file, its
    entry then dropped at its next event)."""
    if leaf and "/" in path:
        parent, _, name = path.rpartition("/")
        lp = ws.overlay.lower_path(parent, known)
        lp = None if lp is None else f"{lp}/{name}" if lp else name
    else:
        lp = path if leaf else ws.overlay.lower_path(path, known)
    if lp is None:
        return None  # below an opaque directory: the lower layer is hidden there
    node = lower.node(lp)
    if node is None:
        return None
    return "dir" if node.is_dir else "other"


PRELIST_S = 0.5  # at most this long before the mount is announced ready


def _list_merged(
    upper: str, mountpoint: str, lower_kind: Callable[[str], str | None], budget_s: float = PRELIST_S
) -> list[str]:
    """List, through the overlay at ``mountpoint``, each directory where the upper layer
    merges with a lower one (a directory holding a change), for at most ``budget_s``;
    returns those listed (``""``: the root).

    git's first status after mounting lists exactly these (its fsmonitor hook names them),
    and overlayfs lists such a directory by looking each lower entry up in this daemon: cold,
    ~4 ms a directory, most of that status at 10k files (docs/benchmarks.md). Listed once
    here, the kernel keeps the entries (the lower's for good, the merged listing while the
    directory is unchanged). A directory new in the upper layer (``node_modules``) has no
    lower half: it is not listed, nor what is below it. Which ones is read from the upper
    layer and the lower's tree; the listing itself is another process's
    (:func:`list_apart`)."""
    t0 = time.monotonic()
    stack = [""]
    found: list[str] = []
    while stack and time.monotonic() - t0 < budget_s:
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(upper, rel)) as it:
                subdirs = [de.name for de in it if de.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        found.append(rel)
        for name in subdirs:
            child = f"{rel}/{name}" if rel else name
            if child != ".git" and lower_kind(child) == "dir":
                stack.append(child)
    if found:
        left = max(budget_s - (time.monotonic() - t0), 0.05)
        list_apart([os.path.join(mountpoint, rel) if rel else mountpoint for rel in found], left)
    return found


def list_apart(dirs: list[str], timeout_s: float | None = None) -> bool:
    """List ``dirs``, directories of this daemon's own mount (or of the overlay stacked on
    it), in a child process (``ls -f``: names only, nothing sorted or looked at), waited for
    at most ``timeout_s``; False when it could not run or was stopped at that time.

    Never in a thread of the daemon: a request of the daemon to its own mount that one of
    its FUSE threads has read, when the daemon is killed, waits for an answer only the dead
    threads could give (FUSE lets no signal interrupt it), and that thread keeps the
    process, and with it the mount's connection, from ever ending (docs/fuse.md "A killed
    daemon's connection"). A child's request ends with the connection, which ends with
    the daemon (the child holds no ``/dev/fuse``)."""
    import shutil
    import subprocess

    ls = shutil.which("ls")
    if ls is None:
        return False
    try:
        subprocess.run(
            [ls, "-f", "--", *dirs],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return True


def list_root(mountpoint: str, answers_now: Callable[[], bool]) -> None:
    """List the overlay's root once, through the overlay at ``mountpoint``, when that waits
    for nothing (``answers_now``: no file there whose size is still being asked): a lazy
    fork's mount does this before it answers. Its first ``ls`` then finds the kernel's
    entries (overlayfs keeps a merged directory's listing while it is unchanged, and the
    lower layer's entries for good) instead of asking this daemon for them while the
    settling (fuse/settle.py) holds its interpreter: 6-15 ms of that ``ls``'s
    ``getdents64`` on the 20,538-file monorepo, against 2-3 ms here. Only the root, and
    only then: the mount answers before its sizes (a file's size waits for the server).
    Nothing it meets stops the answer: a failure is logged, and ``ls`` asks the daemon.
    Listed by a child process (:func:`list_apart`)."""
    try:
        if answers_now():
            list_apart([mountpoint])
    except Exception:
        logging.getLogger("avfs.fuse").exception("listing the mount's root")


def _lower_mode(ws: Any, lower: Any, path: str, known: dict[str, str | None] | None = None) -> int | None:
    """The mode of what the lower layer has at the upper layer's ``path`` (None: nothing)."""
    lp = ws.overlay.lower_path(path, known)
    node = lower.node(lp) if lp is not None else None
    return None if node is None else int(node.mode)


def upper_watch(ws: Any, lower: Any, upper_dir: str, entry_paths: Any, view: Any) -> Any:
    """The watch of ``ws``'s upper layer (not started), asking ``lower`` what the lower
    layer has under each path. The lower paths it finds it keeps (``lower_paths``, forgotten
    as the upper layer's directories change): a directory made below another, found
    as it comes, is then one ``listxattr`` more, not one for each directory above it
    (found in the sixteenth round, NAME=suitetime: a confined command's ``mkdir`` 1,200
    levels deep, one level at a time, kept the watcher, and the exec's record that waits
    for it, busy for minutes: O(depth^2) ``listxattr`` calls on paths O(depth) long)."""
    from ..core.workspace import sidekey
    from ..core.workspace.upper import watch_budget
    from ..core.workspace.upperwatch import BUDGET_KEY, UpperWatch

    known: dict[str, str | None] = {}
    vault: Any = getattr(ws, "vault", None)  # (the watches it may hold: its config, else the home's)
    cfg = vault.fresh_config() if vault is not None else {}
    if BUDGET_KEY not in cfg and vault is not None and vault.home is not None:
        cfg = vault.home.config()
    budget = watch_budget(cfg.get(BUDGET_KEY))
    watch = UpperWatch(
        upper_dir, lambda p: _lower_kind(ws, lower, p, known), entry_paths, view, known, budget
    )
    watch.lower_mode = lambda p: _lower_mode(ws, lower, p, known)
    watch.lower_file_kind = lambda p: _lower_kind(ws, lower, p, known, leaf=True)
    # the key of avfs's side files (core/workspace/sidekey.py), made here at the mount: a
    # swap through it then only reads it (no file made and unlinked in its steps)
    try:
        watch.side_key = sidekey.load(upper_dir, make=True)
    except OSError:
        logging.getLogger("avfs.fuse").warning("no key for the side files of %s", upper_dir, exc_info=True)
    return watch


def _start_upper_watch(
    ws: Any, lower: Any, upper_dir: str, own: str, on_ask: Callable[[], None], changelog: Any = None
) -> Any:
    """Watch the upper layer (core/workspace/upperwatch.py) and answer git's fsmonitor hook from it
    (calling ``on_ask`` as each query comes in), its changes appended to ``changelog``; None
    when that cannot start (the hook then answers "everything": git looks at every file,
    slower but right)."""
    import stat as st

    from ..core.workspace.overlayentry import DELETED
    from ..mount.hooksocket import HookServer
    from ..mount.index import fsmonitor_token

    def entry_paths() -> list[tuple[str, bool]]:
        # the overlay's entries (the lower view's changes over the base): `lower` reads no
        # upper layer
        return [(e.path, e.kind != DELETED and not st.S_ISDIR(e.mode)) for e in lower.overlay.all()]

    def view() -> str:
        return ":".join(fsmonitor_token(ws).split(":")[1:3])

    try:
        watch = upper_watch(ws, lower, upper_dir, entry_paths, view)
        if changelog is not None:
            watch.on_events = changelog.append  # from the watcher's thread: no writer waits
        watch.start()
        server = HookServer(own, watch, on_ask)
        server.start()
        return server
    except Exception:
        logging.getLogger("avfs.fuse").exception("watching the upper layer for git's fsmonitor hook")
        return None


def _forget(ws: Any, lower: Any, path: str) -> None:
    """Drop the lower layer's entries below the upper layer's ``path`` (a tidy before the
    mount found the path hides them: see core/upper.tidy_for_mount)."""
    lp = ws.overlay.lower_path(path)
    if lp is None:
        return
    with lower.overlay.txn() as db:
        lower.overlay.remove_under(db, lp, "tidy")


def _upper_on(home_dir: str, upper: str) -> str:
    """Where an overlay mount's upper layer lives: ``layers`` (the home's layers file system)
    or ``host`` (a plain directory, ``layers = off`` or a state dir made before)."""
    from ..core.vaults import layers as layers_fs

    return "layers" if layers_fs.on_layers(home_dir, upper) else "host"


def _tune_layers(home_dir: str, layers: dict[str, str]) -> None:
    """Where the upper layer is on the home's layers file system: no copy-on-write for what
    the mount writes (a state dir made before avfs set it on new ones), and the loop device
    doing direct I/O (an image mounted before avfs set it) -- big files then go at about the
    host's speed (core/vaults/layertuning.py)."""
    from ..core.vaults import layers as layers_fs
    from ..core.vaults import layertuning

    if not layers_fs.on_layers(home_dir, layers["upper"]):
        return
    for name in ("upper", "work"):
        layertuning.set_nocow(layers[name])
    if layertuning.direct_io(layers_fs.mount_path(home_dir)) is False:
        layertuning.set_direct_io(layers_fs.mount_path(home_dir))


def _overlay_at(mountpoint: str) -> bool:
    from ..core.vaults.registry import resolved_mountpoint

    target = resolved_mountpoint(mountpoint)  # (no stat of it: a request to this daemon's own mount)
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as fh:
            return any(
                (parts := ln.split())[2:3] == ["overlay"] and parts[1].replace("\\040", " ") == target
                for ln in fh
            )
    except OSError:
        return True


def _watch_unmount(mountpoint: str, lower: str) -> None:
    """Run in the overlay thread once the overlay is mounted: when it goes (``umount`` by
    hand, not ``avfs unmount``), take the lower layer away too, which ends this daemon's
    FUSE loop and its teardown. The kernel flags /proc/self/mounts (POLLPRI) on every change
    of the mount table, anywhere on the machine: each wakes this thread, which asks the
    kernel about its own mount by its unique id (``statmount``, one system call) rather
    than reading and parsing the whole table (50 unrelated mounts and unmounts made it read
    the table 100 times); a kernel without those reads the table."""
    import select
    import subprocess

    from ..core.vaults.mounttable import mount_gone, mount_id
    from ..core.vaults.registry import resolved_mountpoint

    with open("/proc/self/mounts", "rb") as fh:  # opened first: a change after the look below marks it
        p = select.poll()
        p.register(fh, select.POLLPRI | select.POLLERR)
        mnt = mount_id(mountpoint) if _overlay_at(mountpoint) else 0
        if mnt is not None and mnt == mount_id(os.path.dirname(resolved_mountpoint(mountpoint))):
            mnt = 0  # (it went between the two looks: the id is of the mount below it)
        while mnt != 0:
            gone = mount_gone(mnt) if mnt is not None else None
            if gone if gone is not None else not _overlay_at(mountpoint):
                break
            p.poll()  # (the poll takes the mark: no read of the table is needed to clear it)
    # the private bind of the overlay (read-only path rules) holds it, and with it the lower
    # layer's FUSE connection, past the lazy unmount below: it goes first
    unprotect_at(os.path.dirname(lower))
    subprocess.run(["fusermount3", "-u", "-z", lower], capture_output=True, check=False)


def _pin_gitfile(upper: str, text: bytes | None) -> None:
    """Put the worktree's ``.git`` file in the upper layer, immutable (``chattr +i``: the
    flag set in process, upper.set_immutable): git in the mount finds its worktree, and
    nothing in the mount can delete or replace it (overlayfs would whiteout the lower
    layer's copy). ``None``: take it away."""
    from ..core.workspace.upper import set_immutable

    path = os.path.join(upper, ".git")
    if os.path.lexists(path):
        set_immutable(path, False)
        try:
            os.unlink(path)
        except IsADirectoryError:
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        except FileNotFoundError:
            pass
    if text is None:
        return
    with open(path, "wb") as fh:
        fh.write(text)
    os.chmod(path, 0o444)
    set_immutable(path, True)


def _escape(path: str) -> str:
    """A path as a mount option value (overlayfs splits on ',' and ':')."""
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


MS_NOSUID = 0x2  # <sys/mount.h>


def mount_overlay(source: str, target: str, options: str) -> str | None:
    """Mount overlayfs named ``source`` at ``target`` with ``options`` (overlayfs's own,
    comma-separated) and ``nosuid``, by mount(2) from this process, as ``mount -t overlay
    -o OPTIONS,nosuid SOURCE TARGET`` does it: the `mount` program was a process on the
    way to the mount's answer (2-2.5 ms idle, more on a loaded machine). None, or why the
    kernel refused (its log says more, as it does for `mount`)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    got = libc.mount(
        os.fsencode(source), os.fsencode(target), b"overlay", ctypes.c_ulong(MS_NOSUID), os.fsencode(options)
    )
    if got == 0:
        return None
    err = ctypes.get_errno()
    return f"mount(2) of overlay {source} on {target}: {os.strerror(err)} (errno {err})"


WRITES_DIR = "merged"  # <state dir>/merged: the overlay without its read-only binds (avfs's writes)


def protect_read_only(ws: Any, rules: Any, mountpoint: str) -> tuple[str | None, list[str]]:
    """The overlay backend's mechanism for ``read_only`` path rules (docs/policy.md, "What
    each backend guarantees"): kernel overlayfs writes never reach avfs, so each held
    directory (one whose every path a rule holds: ``migrations/**``, ``build/``) and each
    held file outside one, as the fork shows them now, gets a read-only bind mount of itself
    on the merged mount point (``**``: the mount point itself is made read-only). First a
    private bind of the overlay without them (``<state dir>/merged``) is made: avfs's own
    writes through the mount (a restore, a merge or rebase from outside the fork) go there,
    and are not refused.

    Returns (that directory, the paths bound); (None, []) when no rule is ``read_only``.
    """
    import subprocess

    if not any(r.kind == "read_only" for r in rules.rules):
        return None, []
    writes = os.path.join(ws.state_dir, WRITES_DIR)
    os.makedirs(writes, exist_ok=True)

    def run(*args: str) -> None:
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise OSError(f"{' '.join(args)}: {proc.stderr.strip()}")

    unprotect(ws)  # a bind a daemon killed outright left there
    run("mount", "--bind", mountpoint, writes)
    run("mount", "--make-private", writes)  # the binds below never show through it
    targets: list[str] = []

    def walk(path: str) -> None:
        if rules.covers(path, "read_only"):
            targets.append(path)
            return
        node = ws.view.lookup(path)
        for name, child in sorted(ws.view.children(node).items()):
            p = f"{path}/{name}" if path else name
            if p == ".git":
                continue
            if child.is_dir:
                if rules.reaches(p, "read_only"):
                    walk(p)
            else:
                m = rules.match(p)
                if m is not None and m.kind == "read_only":
                    targets.append(p)

    walk("")
    for rel in targets:
        target = os.path.join(mountpoint, rel) if rel else mountpoint
        if rel:
            run("mount", "--bind", target, target)
        run("mount", "-o", "remount,bind,ro", target)
    return writes, targets


def unprotect(ws: Any) -> None:
    """Take the private bind of :func:`protect_read_only` away (the read-only binds go with
    the overlay's lazy unmount)."""
    unprotect_at(ws.state_dir)


def unprotect_at(state_dir: str) -> None:
    """:func:`unprotect` of the workspace whose state directory is ``state_dir``. Asked of
    the kernel's table, not of the directory: once the overlay's lower layer is gone a stat
    of the bind fails, and ``os.path.ismount`` takes that for no mount (the bind then stayed,
    holding the overlay and its lower layer's FUSE connection, once per mount)."""
    import subprocess

    from ..core.vaults.registry import mounted_at

    writes = os.path.join(state_dir, WRITES_DIR)
    for _ in range(8):  # stacked binds: one per daemon that never took its own away
        if not mounted_at(writes):
            return
        subprocess.run(["umount", "-l", writes], capture_output=True, check=False)
