"""``avfs doctor``: check a home (``git fsck``, overlays against their journals, what a
crashed mount daemon leaves (:mod:`.leftovers`), orphan workspace state dirs, stale locks,
the layers file system (:mod:`.layerscheck`)) and, asked to, repair what is safe to repair.
Each finding has a ``code`` (docs/maintenance.md lists them). It never discards an overlay:
an orphan one with changes is moved to ``<vault>/avfs/lost+found/``.

By default the objects are checked as ``git fsck --connectivity-only`` checks them: every
object a ref reaches is there, commits and trees read, blobs not (O(commits + trees)).
``full`` (``avfs doctor --full``) reads every object twice, as ``git fsck --strict`` and
through avfs' own read path (contents hashed against their ids): what finds a corrupt blob
or a format git's strict rules refuse, O(every object's bytes). The default took 14-18 s on
five small vaults with a committed node_modules when it was the full check (trial1)."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ...core.errors import CorruptStateError, ObjectUnreadableError
from ...core.records import dataclass
from ...core.store import packwriter, refs
from ...core.store.gitformat import TREE_ENTRY
from ...core.types import to_json
from ...core.vaults import forkspare, layers
from .collect import clear_keep_refs
from .common import KEEP, ORPHAN_FILE_S, git, open_overlay_db, overlay_usage, unlink_quiet, ws_dirs
from .findings import CHECKS, Finding, finding
from .layerscheck import check_layers
from .leftovers import mount_leftovers, mount_owners, stale_kernel_mounts
from .oplogcheck import check_oplog
from .pruning import is_avfs_lock, remove_lock, stale_locks

if TYPE_CHECKING:
    from ...core.vaults.home import Home
    from ...core.vaults.vault import Vault

MAX_OBJECT_FINDINGS = 50  # unreadable objects named one by one; the rest as a count


@dataclass(frozen=True, slots=True)
class DoctorResult:
    home: str
    repair: bool
    full: bool  # every object read (``--full``), or the connectivity of the refs' objects only
    vaults: list[str]
    checks: list[str]
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        """True when nothing is left to fix (warnings are not to fix)."""
        return all(f.repaired or f.severity == "warning" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        data = dict(to_json(self))
        data["ok"] = self.ok
        return data


def doctor(home: Home, *, repair: bool = False, full: bool = False, now: float | None = None) -> DoctorResult:
    """Check every vault of ``home``; with ``repair``, fix what is safe to fix; with
    ``full``, read every object (see the module's note)."""
    now = time.time() if now is None else now
    findings: list[Finding] = []
    names = []
    vaults: list[Vault] = []
    for info in home.list_vaults():
        vaults.append(home.vault(info.name))
    # read before anything is repaired: a dead mount point is known as this home's by the
    # registry entry and worktree that the repair of its vault removes
    owners = mount_owners(vaults, now)
    for vault in vaults:
        names.append(vault.name)
        findings.extend(_doctor_vault(vault, repair, now, full))
    findings.extend(stale_kernel_mounts(home, vaults, owners, repair))
    findings.extend(check_layers(home, repair, now))
    return DoctorResult(
        home=home.path, repair=repair, full=full, vaults=names, checks=list(CHECKS), findings=findings
    )


def mount_findings(home: Home, *, repair: bool = False, now: float | None = None) -> list[Finding]:
    """Only the ``mounts`` check of :func:`doctor`: what dead mount daemons left in the
    home's vaults and in the kernel's mount table (cheap: no git; objects read only for a
    held base ref a killed daemon left, whether its fork's branch holds it)."""
    now = time.time() if now is None else now
    vaults = [home.vault(info.name) for info in home.list_vaults()]
    owners = mount_owners(vaults, now)
    findings = [f for v in vaults for f in mount_leftovers(v, repair, now)]
    findings.extend(stale_kernel_mounts(home, vaults, owners, repair))
    return findings


def _doctor_vault(vault: Vault, repair: bool, now: float, full: bool) -> Iterable[Finding]:
    if full:
        # git's read of every object in its own process while this one reads them through
        # avfs' path: the two reads overlap (each was ~half of a full doctor's time)
        got: list[subprocess.CompletedProcess[str] | BaseException] = []

        def strict() -> None:
            try:
                got.append(git(vault.path, "fsck", "--strict", "--no-dangling", "--no-progress", check=False))
            except BaseException as exc:  # (raised here, in the caller's thread, below)
                got.append(exc)

        runner = threading.Thread(target=strict, name="avfs-doctor-fsck")
        runner.start()
        try:
            objects = list(_check_objects(vault, repair, now))
        finally:
            runner.join()
        if isinstance(got[0], BaseException):
            raise got[0]
        proc = got[0]
    else:
        proc = git(vault.path, "fsck", "--connectivity-only", "--no-dangling", "--no-progress", check=False)
        objects = list(_stale_temp_packs(vault, repair, now))
    if proc.returncode != 0 or proc.stdout.strip():
        yield _fsck_finding(vault, (proc.stdout + proc.stderr).strip(), full)
    yield from _damaged_refs(vault)
    yield from objects
    forks = set(vault.fork_names())
    for fork, ws_dir in ws_dirs(vault).items():
        if fork not in forks:
            yield _orphan_state_dir(vault, fork, ws_dir, repair, now)
            continue
        yield from _check_overlay(vault, fork, ws_dir, repair, now)
        yield from _adoption_sides(vault, fork, ws_dir, repair)
    for fork, sub in forkspare.spares(vault).items():
        if fork not in forks:  # (a fork deleted with plain git, or killed while deleted)
            yield finding(
                vault,
                "state_dirs",
                "stale_spare",
                f"the spare snapshot of fork {fork!r}, which does not exist",
                sub,
                fix=lambda f=fork: forkspare.drop(vault, f),  # type: ignore[misc]
                repair=repair,
            )
    yield from check_oplog(vault, repair, now)
    yield from _relative_remotes(vault)
    yield from mount_leftovers(vault, repair, now)
    for path, reason in stale_locks(vault, now=now):
        code = "orphan_fork_lock" if is_avfs_lock(path) else "stale_git_lock"
        yield finding(vault, "locks", code, reason, path, fix=lambda p=path: remove_lock(p), repair=repair)  # type: ignore[misc]
    keep = refs.list_refs_file(vault.path, KEEP + "/")
    if refs.read_ref_file(vault.path, KEEP) is not None:
        keep.append(KEEP)
    if keep:
        yield finding(
            vault,
            "locks",
            "gc_keep_ref",
            f"the temporary ref {KEEP} left by an interrupted gc",
            os.path.join(vault.path, KEEP),
            fix=lambda: clear_keep_refs(vault),
            repair=repair,
        )


def _damaged_refs(vault: Vault) -> Iterable[Finding]:
    """Each ref whose file holds no commit id (junk, emptied, a FIFO): it stopped the whole
    doctor (`corrupt_state`, exit 70) where it is the finding to name."""
    for name in refs.list_refs_file(vault.path, refs.REFS):
        try:
            refs.read_ref_file(vault.path, name)
        except CorruptStateError as exc:
            yield finding(vault, "fsck", "damaged_ref", exc.message, exc.details.get("path"), hint=exc.hint)


def _relative_remotes(vault: Vault) -> Iterable[Finding]:
    """A remote whose URL is a relative local path (stored by an avfs before the
    twenty-first round, or by hand): avfs reads it against the vault now, but the person's
    plain git in a mount reads it against the mount's top, where a confined command can
    write a repository whose hooks a push there runs (docs/security.md). Not repairable:
    the directory it was relative to is not known."""
    from ...core.store.transport import anchored
    from ...core.store.vaultconfig import remotes

    for r in remotes(vault.store):
        if r.url and anchored(r.url) != r.url:
            yield finding(
                vault,
                "remotes",
                "relative_remote_url",
                f"remote {r.name}'s URL {r.url} is a relative path: git in a mount reads it there",
                os.path.join(vault.path, "config"),
                hint=f"avfs --vault {vault.name} remote set-url {r.name} /the/repository/s/absolute/path",
            )


# `error in commit 1234...: badTimezone: invalid author/committer line - bad time zone`:
# git's fsck message ids name the format of an object it holds whole (a bad date or
# time zone, a zero-padded mode, a missing email): nothing is missing or corrupt
_FORMAT_LINE = re.compile(
    r"^(?:error|warning) in (commit|tree|tag|blob) ([0-9a-f]{40,64}): ([a-z][A-Za-z]+): "
)


def _fsck_finding(vault: Vault, text: str, full: bool) -> Finding:
    """What `git fsck --strict` said, as a finding: a problem (objects missing or corrupt:
    restore them), or a warning when every line is one git accepts without ``--strict``
    (plain `git fsck` passes) or names the format of a whole object of the history (an
    upstream commit's bad time zone, which git keeps, clones and serves, and which avfs
    never writes)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("notice:")]
    formats = [m for m in (_FORMAT_LINE.match(ln) for ln in lines) if m is not None]
    if not full:  # (--connectivity-only: objects missing, or a commit or tree unreadable)
        return finding(
            vault,
            "fsck",
            "fsck_error",
            f"git fsck --connectivity-only: {text[:2000]}",
            vault.path,
            hint="restore the named objects from a clone or remote (`avfs pull`); `avfs doctor --full`"
            " reads every object and names each one that is damaged",
        )
    plain = git(vault.path, "fsck", "--no-dangling", "--no-progress", check=False)
    plain_ok = plain.returncode == 0 and not plain.stdout.strip()
    if lines and (plain_ok or len(formats) == len(lines)):
        named = sorted({f"{m.group(1)} {m.group(2)[:12]} ({m.group(3)})" for m in formats})
        shown = ", ".join(named[:10]) + (f" and {len(named) - 10} more" if len(named) > 10 else "")
        return finding(
            vault,
            "fsck",
            "fsck_upstream_format",
            "objects of the history the vault came from break git's stricter format rules"
            + (f": {shown}" if shown else f": {text[:500]}")
            + ("; plain `git fsck` accepts them" if plain_ok else "; nothing is missing or corrupt"),
            vault.path,
            hint="nothing to repair: git keeps, clones and pushes them (a server with"
            " transfer.fsckObjects may refuse a push of them)",
            severity="warning",
        )
    return finding(
        vault,
        "fsck",
        "fsck_error",
        f"git fsck --strict: {text[:2000]}",
        vault.path,
        hint="restore the named objects from a clone or remote (`avfs pull`), or ask for help",
    )


def unreadable_objects(vault: Vault) -> tuple[int, list[tuple[str, str]]]:
    """Read every object reachable from the vault's refs through avfs' own read path
    (:meth:`.GitStore.check_object`: the pure reader, then libgit2; contents checked
    against the id). Returns (objects read, [(oid, why)] of those that cannot be read).

    In a lazy vault (docs/lazy.md) a blob that is not local is promised by its remote, not
    damage: it is not read (nothing is fetched) and not reported."""
    store = vault.store
    lazy = vault.lazy
    named_blobs: set[str] = set()  # what trees name as files (a lazy vault may lack them)
    todo: list[str] = []
    for name in refs.list_refs_file(vault.path, refs.REFS):
        try:
            oid = refs.read_ref_file(vault.path, name)
        except CorruptStateError:
            continue  # (a damaged ref: its own finding, :func:`_damaged_refs`)
        if oid and len(oid) == 40:
            todo.append(oid)
    seen: set[str] = set()
    bad: list[tuple[str, str]] = []
    while todo:
        oid = todo.pop()
        if oid in seen:
            continue
        seen.add(oid)
        if lazy and oid in named_blobs and not store.is_local(oid):
            continue  # promised
        try:
            kind, data = store.check_object(oid)
        except ObjectUnreadableError as exc:
            bad.append((oid, exc.message))
            continue
        if data is None or kind == "blob":
            continue
        if kind == "tree":
            for mode, _name, raw in TREE_ENTRY.findall(data):
                if mode != b"160000":
                    todo.append(raw.hex())
                    if lazy and mode != b"40000":
                        named_blobs.add(raw.hex())
            continue
        for line in data.split(b"\n"):  # a commit's or tag's header lines
            if not line:
                break
            key, _, value = line.partition(b" ")
            if key in (b"tree", b"parent", b"object") and len(value) == 40:
                todo.append(value.decode("ascii", "replace"))
    return len(seen), bad


def _check_objects(vault: Vault, repair: bool, now: float) -> Iterable[Finding]:
    _count, bad = unreadable_objects(vault)
    for _oid, why in bad[:MAX_OBJECT_FINDINGS]:  # why names the object
        yield finding(
            vault,
            "objects",
            "object_unreadable",
            why,
            vault.path,
            hint="restore the object from a clone or remote of the vault (`git fetch` into it), or ask for help",
        )
    if len(bad) > MAX_OBJECT_FINDINGS:
        yield finding(
            vault,
            "objects",
            "object_unreadable",
            f"{len(bad) - MAX_OBJECT_FINDINGS} more objects cannot be read",
            vault.path,
            hint="`avfs --json doctor --full` names the first ones; a truncated or corrupt pack is the usual cause",
        )
    yield from _stale_temp_packs(vault, repair, now)


def _stale_temp_packs(vault: Vault, repair: bool, now: float) -> Iterable[Finding]:
    """A pack writer's temporary files nobody is writing (cheap: a listing of the packs)."""
    for path, size, why in packwriter.stale_temp_files(vault.path, now=now):
        yield finding(
            vault,
            "objects",
            "stale_temp_pack",
            f"{why}: {size} bytes",
            path,
            fix=lambda p=path: _remove_temp_file(vault.path, p, now),  # type: ignore[misc]
            repair=repair,
        )


def _remove_temp_file(git_dir: str, path: str, now: float) -> None:
    if packwriter.stale_reason(path, now) is not None:  # re-checked: still nobody's
        unlink_quiet(path)
        for hook in packwriter.FINISH_HOOKS:
            hook(os.path.dirname(path))


def _orphan_state_dir(vault: Vault, fork: str, ws_dir: str, repair: bool, now: float) -> Finding:
    n, _size, _ts = overlay_usage(ws_dir)
    link = vault.ws_link(fork)  # the state dir's name (a link into the layers fs, or itself)
    if n == 0:
        return finding(
            vault,
            "state_dirs",
            "orphan_state_dir",
            f"workspace state dir of fork {fork!r}, which does not exist (no changes in it)",
            ws_dir,
            fix=lambda: layers.remove_state_dir(vault.home_dir, link),
            repair=repair,
        )
    dest = os.path.join(
        vault.state_dir,
        "lost+found",
        f"{os.path.basename(link)}.{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}",
    )

    def keep() -> None:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.rename(link, dest)  # a link keeps naming its subvolume (same depth)

    return finding(
        vault,
        "state_dirs",
        "orphan_state_dir_with_changes",
        f"workspace state dir of fork {fork!r}, which does not exist, holds {n} uncheckpointed changes",
        ws_dir,
        fix=keep,
        repair=repair,
        hint=f"--repair moves it to {os.path.dirname(dest)}/ (nothing is deleted)",
    )


def _adoption_sides(vault: Vault, fork: str, ws_dir: str, repair: bool) -> Iterable[Finding]:
    """An adoption's swaps a killed process left unsettled in the fork's overlay mount
    (core/workspace/swapleft.py, livewrite2): its side files put right through the mount
    by the repair; while the fork is not mounted, the next mount does it."""
    from ...core.workspace import swapleft

    mark = swapleft.pending(ws_dir)
    if mark is None:
        return
    n = len(mark.get("sides") or ())

    def fix() -> None:
        with vault.lock(fork):
            ws = vault.workspace(fork)
            if swapleft.pending(ws.state_dir) is not None:  # (opening it may have done it)
                swapleft.recover(ws)

    from ...core.vaults import registry  # (not the workspace: opening it adopts, which puts them right)

    mounted = bool(registry.live_mountpoints(vault.state_dir, fork))
    yield finding(
        vault,
        "overlays",
        "adoption_side_files",
        f"an adoption into fork {fork!r} was killed during its swaps: up to {n} side file(s)"
        " (.avfs-adopt-*) may be left in its mount",
        os.path.join(ws_dir, swapleft.MARK),
        fix=fix if mounted else None,
        repair=repair,
        hint=None if mounted else f"mount fork {fork!r} (its next mount puts them right)",
    )


def _check_overlay(vault: Vault, fork: str, ws_dir: str, repair: bool, now: float) -> Iterable[Finding]:
    conn = open_overlay_db(ws_dir)
    if conn is None:
        return
    try:
        try:
            rows = conn.execute("SELECT path, fileid, size FROM entries WHERE kind = 1").fetchall()
            max_seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0]
            ahead = conn.execute("SELECT COUNT(*) FROM entries WHERE seq > ?", (max_seq,)).fetchone()[0]
            total = conn.execute("SELECT file_bytes FROM totals WHERE id = 1").fetchone()
        except sqlite3.Error as exc:
            yield finding(
                vault,
                "overlays",
                "overlay_unreadable",
                f"overlay of fork {fork!r} is unreadable: {exc}",
                ws_dir,
            )
            return
    finally:
        conn.close()
    files_dir = os.path.join(ws_dir, "files")
    used = set()
    total_size = 0
    for path, fileid, size in rows:
        used.add(str(fileid))
        total_size += int(size)
        if not os.path.exists(os.path.join(files_dir, str(fileid))):
            yield finding(
                vault,
                "overlays",
                "overlay_file_missing",
                f"{fork}: {path}: its overlay file {fileid} is missing",
                os.path.join(files_dir, str(fileid)),
                hint=f"`avfs --vault {vault.name}:{fork} checkout {path} --from HEAD` (or rm it)",
            )
    if ahead:
        yield finding(
            vault,
            "overlays",
            "overlay_journal_ahead",
            f"{fork}: {ahead} overlay entries have a journal position past the journal's end",
            os.path.join(ws_dir, "overlay.db"),
            hint="checkpoint the fork: a new checkpoint retires those entries",
        )
    if total is not None and int(total[0]) != total_size:

        def fix_totals() -> None:
            db = sqlite3.connect(os.path.join(ws_dir, "overlay.db"), timeout=5.0)
            try:
                with db:
                    db.execute(
                        "UPDATE totals SET file_bytes = (SELECT COALESCE(SUM(size), 0) FROM entries"
                        " WHERE kind = 1) WHERE id = 1"
                    )
            finally:
                db.close()

        yield finding(
            vault,
            "overlays",
            "overlay_total_wrong",
            f"{fork}: the overlay's byte total ({total[0]}) differs from its files ({total_size})",
            os.path.join(ws_dir, "overlay.db"),
            fix=fix_totals,
            repair=repair,
        )
    try:
        present = os.listdir(files_dir)
    except FileNotFoundError:
        present = []
    orphans = []
    for fn in present:
        p = os.path.join(files_dir, fn)
        if fn not in used:
            try:
                if now - os.stat(p).st_mtime > ORPHAN_FILE_S:
                    orphans.append(p)
            except FileNotFoundError:
                continue
    if orphans:

        def drop_orphans() -> None:
            for p in orphans:
                unlink_quiet(p)

        yield finding(
            vault,
            "overlays",
            "overlay_orphan_files",
            f"{fork}: {len(orphans)} overlay files no entry names (left by a killed writer)",
            files_dir,
            fix=drop_orphans,
            repair=repair,
        )
