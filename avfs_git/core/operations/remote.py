"""Remotes: a vault's git remotes, and pushing and fetching forks through the git CLI.

Which refs go where (docs/remotes.md):

- a fork pushes as the branch of the same name (``refs/heads/<fork>``); named checkpoints
  optionally (``checkpoints=True``) under ``refs/avfs/checkpoints/<fork>/-/<name>``;
- a push never forces: a rejected (non-fast-forward) push is :class:`RemoteRejectedError`
  (exit 5) naming both commits, and nothing changes locally; every fork is pushed as a
  compare-and-swap on its remote-tracking ref (git's ``--force-with-lease=<ref>:<expected>``,
  after checking the fork contains ``<expected>``), or on the branch's absence where this
  vault never saw it there (``<ref>:``), which never makes a lazy vault fetch the remote's
  new commit only to refuse the push;
- a fetch updates ``refs/remotes/<remote>/<branch>`` (the usual remote-tracking refs);
  forks are never moved by a fetch;
- every push and fetch holds the vault's transfer lock (:mod:`..store.transferlock`),
  and takes back the ref lock files a killed one left under its remote's tracking refs.

Transport is the ``git`` CLI (:mod:`.transport`): it reads the user's credential helpers,
``~/.ssh`` and ``GIT_SSH_COMMAND`` like any git command, and speaks every protocol git does
(libgit2's transports need credentials wired through callbacks and have no credential helpers).
Credentials never land in the vault's config, on a command line, in an error message or a
JSON document: a URL given with a userinfo (``user:password@``, a token as the user name,
percent-encoded or not) is stored without it (the caller gets a warning), a URL found with
one in the config is cleaned before git sees it, and every message that quotes a URL or
git's output goes through :func:`.redact.redact`.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import TYPE_CHECKING, NoReturn

from ..errors import AvfsError, RemoteError, RemoteNotFoundError, RemoteRejectedError, UsageError
from ..records import dataclass
from ..store import names, refs, remotecause, transferlock
from ..store.gitlib import libgit2_loaded
from ..store.redact import redact, split_credentials
from ..store.remotecause import REFUSALS, lost_race, remote_failed
from ..store.transport import ProgressFn, anchored, transport
from ..store.vaultconfig import config_values, remotes

if TYPE_CHECKING:
    from ..vaults.vault import Vault

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def strip_credentials(url: str) -> tuple[str, bool]:
    """(url without its secret userinfo, whether something was removed): :func:`.redact.split_credentials`."""
    clean, creds = split_credentials(url)
    return clean, creds is not None


@dataclass(frozen=True, slots=True)
class RemoteInfo:
    name: str
    url: str


@dataclass(frozen=True, slots=True)
class RefUpdate:
    ref: str
    old: str | None
    new: str | None


@dataclass(frozen=True, slots=True)
class TransferResult:
    vault: str
    remote: str
    updates: tuple[RefUpdate, ...]  # what moved (remote refs for a push, tracking refs for a fetch)
    left_behind: tuple[dict[str, int], ...] = ()  # forks whose uncheckpointed changes were not pushed
    warnings: tuple[str, ...] = ()


def _check_name(name: str) -> str:
    if not _NAME.match(name) or name.endswith(".lock"):
        raise UsageError(f"invalid remote name {name!r}: letters, digits, '.', '_', '-'")
    return name


def _git(
    vault: Vault,
    *args: str,
    check: bool = True,
    progress: ProgressFn | None = None,
    credentials: tuple[str, str] | None = None,
    hold: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """git on the vault through :func:`.transport.transport`; ``hold``: the transfer lock's
    descriptor, for git (and what it starts) to hold while it runs (:mod:`.transferlock`)."""
    return transport(
        vault.path, *args, check=check, progress=progress, credentials=credentials, token=_token(vault),
        pass_fds=() if hold is None else (hold,),
    )  # fmt: skip


def _token(vault: Vault) -> str | None:
    """The git token of the home's settings (``AVFS_GIT_TOKEN``, read by the front end)."""
    return vault.home.settings.git_token if vault.home is not None else None


def _scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` without credentials: URLs' userinfo and ``secrets`` (a token among them)."""
    return redact(text, secrets)


def list_remotes(vault: Vault) -> list[RemoteInfo]:
    return [RemoteInfo(r.name, redact(r.url)) for r in sorted(remotes(vault.store), key=lambda r: r.name)]


def _require(vault: Vault, name: str) -> list[str]:
    """The remote's URLs (one, unless the config gives it several), in one read of the
    config (:func:`~..store.vaultconfig.config_values`: libgit2 in the warm CLI
    server, else one ``git config``)."""
    _check_name(name)
    urls = config_values(vault.store, f"remote.{name}.url")
    if urls:
        return urls
    _not_found(vault, name)


def _clean_stored(vault: Vault, name: str) -> tuple[tuple[str, str] | None, tuple[str, ...]]:
    """Make sure remote ``name``'s stored URLs hold no credentials before git reads them (git
    would put the URL on its remote helper's command line, world-readable in ``ps``): a
    URL stored with some (by git itself, or an older avfs) is rewritten without them, and
    they are used for this one call through the environment. Returns (credentials for this
    call, warnings)."""
    creds: tuple[str, str] | None = None
    urls = []
    for url in _require(vault, name):
        clean, found = split_credentials(url.strip())
        urls.append(clean)
        creds = creds or found
    if creds is None:
        return None, ()
    # only clean URLs on these command lines (never the old one, as `remote set-url` wants)
    key = f"remote.{name}.url"
    if len(urls) == 1:
        _git(vault, "config", key, urls[0])
    else:
        _git(vault, "config", "--unset-all", key)
        for u in urls:
            _git(vault, "config", "--add", key, u)
    return creds, (
        f"remote {name}'s URL held credentials: they were removed from the vault's config and used"
        " for this call only (use a git credential helper or AVFS_GIT_TOKEN from now on)",
    )


def _taken_back(taken: list[str]) -> tuple[str, ...]:
    """The warning for the lock files of a dead push or fetch removed first."""
    if not taken:
        return ()
    return (
        f"removed {', '.join(taken)}: git's lock file(s) left by a push or fetch that was killed"
        " (no push or fetch of this vault was running)",
    )


def _not_found(vault: Vault, name: str) -> NoReturn:
    raise RemoteNotFoundError(
        f"vault {vault.name} has no remote {name!r}",
        hint="`avfs remote list` shows them; `avfs remote add NAME URL` adds one",
        details={"remote": name},
    )


def add(vault: Vault, name: str, url: str) -> tuple[RemoteInfo, list[str]]:
    """Add a remote; returns it and warnings (credentials stripped from the URL)."""
    _check_name(name)
    if not url or any(c in url for c in "\0\n"):
        raise UsageError("invalid remote URL")
    if any(r.name == name for r in remotes(vault.store)):
        from ..errors import AlreadyExistsError

        raise AlreadyExistsError(
            f"vault {vault.name} already has a remote {name!r}", details={"remote": name}
        )
    clean, stripped = strip_credentials(url)
    clean = anchored(clean)  # (a relative path: from here, not from each later push's directory)
    _git(vault, "remote", "add", name, clean)
    warnings = [_NOT_STORED] if stripped else []
    return RemoteInfo(name, clean), warnings


_NOT_STORED = "the URL held credentials: they were not stored (use a git credential helper or AVFS_GIT_TOKEN)"


def remove(vault: Vault, name: str) -> None:
    _require(vault, name)
    _git(vault, "remote", "remove", name)


def set_url(vault: Vault, name: str, url: str) -> tuple[RemoteInfo, list[str]]:
    _require(vault, name)
    if not url or any(c in url for c in "\0\n"):
        raise UsageError("invalid remote URL")
    clean, stripped = strip_credentials(url)
    clean = anchored(clean)
    _git(vault, "remote", "set-url", name, clean)
    return RemoteInfo(name, clean), ([_NOT_STORED] if stripped else [])


def _ls_remote(
    vault: Vault, remote: str, creds: tuple[str, str] | None, quiet: bool = False
) -> dict[str, str]:
    """The remote's refs; a failure names the remote, its URL and why (:mod:`.remotecause`),
    or gives {} with ``quiet`` (after a refusal: the refusal is the error)."""
    proc = _git(vault, "ls-remote", remote, credentials=creds, check=False)
    if proc.returncode != 0 and not quiet:
        why = _scrub(proc.stderr.strip() or proc.stdout.strip(), (*(creds or ()), _token(vault) or ""))
        url, doing = redact(_require(vault, remote)[0]), f"reading the branches of {remote}"
        raise remote_failed(doing, url, why, proc.returncode, remote=remote, pushed=[])
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        oid, _, ref = line.partition("\t")
        if ref and not ref.endswith("^{}"):
            out[ref] = oid
    return out


def heads(vault: Vault, remote: str, timeout: float) -> dict[str, str]:
    """The remote's branches now (``refs/heads/<b>`` -> id), asked as :func:`fetch` asks
    (the same credentials, never a prompt), within ``timeout`` seconds: what a confined
    command's ``git fetch`` is checked against before its remote-tracking refs are kept."""
    creds, _warnings = _clean_stored(vault, remote)
    proc = transport(
        vault.path, "ls-remote", "--heads", remote, credentials=creds, token=_token(vault), timeout=timeout
    )
    return {ref: oid for oid, _, ref in (line.partition("\t") for line in proc.stdout.splitlines()) if ref}


def push(
    vault: Vault,
    remote: str,
    forks: list[str] | None = None,
    *,
    all_forks: bool = False,
    checkpoints: bool = False,
    tags: bool = False,
    checkpoint_first: bool = False,
    force_with_lease: bool = False,
    progress: ProgressFn | None = None,
) -> TransferResult:
    """Push forks (as branches); with ``checkpoints``, their named checkpoints (under
    ``refs/avfs/checkpoints/``, as tags ``avfs/<fork>/<name>`` with ``tags``); ``tags``:
    every tag of the vault too, as ``git push --tags`` (an imported history's).

    Uncheckpointed changes are not pushed: the result says which forks left some behind,
    or ``checkpoint_first`` checkpoints them first. Never forces: a non-fast-forward is
    :class:`RemoteRejectedError` naming both commits. ``force_with_lease`` overwrites a
    branch only where the remote still has what this vault last saw of it (its
    remote-tracking ref, from the last fetch or push; no such ref: the branch must not
    exist there), like ``git push --force-with-lease``."""
    creds, warnings = _clean_stored(vault, remote)
    names_ = vault.fork_names() if all_forks or not forks else list(forks)
    if forks and all_forks:
        raise UsageError("give forks or --all, not both")
    for f in names_:
        names.check_fork_name(f)
        vault.require_fork(f)
    left: list[dict[str, int]] = []
    for f in names_:
        ws = vault.workspace(f)
        if ws.is_dirty():
            if checkpoint_first:
                from . import checkpoint

                checkpoint.save(vault, f, message="checkpoint before push")
            else:
                left.append({"fork": f, "uncheckpointed_changes": len(ws.status())})  # type: ignore[dict-item]
    specs: list[str] = []
    leases: list[str] = []
    expected: dict[str, str] = {}  # ref -> the lease's expected value ("": must not exist)
    local: dict[str, str] = {}  # remote ref -> the commit pushed there
    implicit: set[str] = set()  # refs leased on the remote-tracking ref by default (the note above _contains)
    for f in names_:
        ref = refs.fork_ref(f)
        tip = refs.read_ref_file(vault.path, ref)
        if tip is None:
            continue
        local[ref] = tip
        specs.append(f"{ref}:{ref}")
        seen = refs.read_ref_file(vault.path, refs.tracking_ref(remote, f))
        if force_with_lease:
            expected[ref] = seen or ""
            leases.append(f"--force-with-lease={ref}:{expected[ref]}")
        else:
            # compare-and-swap on what this vault last saw there, or on the branch's absence
            # when it never saw it (see the note above _contains)
            if seen is not None and seen != tip and not _contains(vault, tip, seen):
                _behind(vault, remote, ref, tip, seen, creds)
            expected[ref] = seen or ""
            leases.append(f"--force-with-lease={ref}:{expected[ref]}")
            implicit.add(ref)
        if checkpoints:
            prefix = refs.checkpoint_prefix(f)
            for r in refs.list_refs_file(vault.path, prefix.rstrip("/")):
                if r.startswith(prefix) and (target := refs.read_ref_file(vault.path, r)) is not None:
                    dest = refs.checkpoint_tag_ref(f, r[len(prefix) :]) if tags else r
                    local[dest] = target
                    specs.append(f"{r}:{dest}")
    if tags:  # git's --tags (refused without --checkpoints before: trial1); never forced, as git's
        got = refs.read_refs_file(vault.path, refs.TAGS.rstrip("/"))
        specs += [f"{r}:{r}" for r in got if r not in local]
        local.update({r: t for r, t in got.items() if r not in local})
    with transferlock.holding(vault.path, vault.state_dir, remote) as (held, taken):
        warnings += _taken_back(taken)
        proc, atomic = _run_push(vault, remote, specs, leases, progress, creds, held)
        if proc.returncode != 0 and (caught_up := _caught_up(vault, remote, proc, local, implicit, creds)):
            # the remote moved only to commits this fork already contains (a push of ours whose
            # remote-tracking ref a kill kept from moving): the same compare-and-swap on them
            expected.update(caught_up)
            leases = [f"--force-with-lease={r}:{o}" for r, o in expected.items()]
            proc, atomic = _run_push(vault, remote, specs, leases, progress, creds, held)
    if proc.returncode == 0 and not any(line.startswith("!") for line in proc.stdout.splitlines()):
        # git moved refs/remotes/<remote>/<fork> to what was pushed (the remote's fetch
        # refspec): the next lease is checked against it
        updates = tuple(
            RefUpdate(ref, old, local[ref])
            for ref, old in sorted(_pushed(vault, proc.stdout, expected).items())
            if ref in local
        )
        _record(vault, "push", remote, updates, names_[0] if len(names_) == 1 else None)
        return TransferResult(vault.name, remote, updates, tuple(left), warnings)
    from ..store.unreadable import damaged_push  # (git could not read what it sends: named)

    damaged_push(vault.store, proc.stderr, local.values())
    _push_failed(vault, remote, proc, local, expected, atomic, creds, implicit)


def _run_push(
    vault: Vault,
    remote: str,
    specs: list[str],
    leases: list[str],
    progress: ProgressFn | None,
    creds: tuple[str, str] | None,
    held: int,
) -> tuple[subprocess.CompletedProcess[str], bool]:
    """``git push`` of ``specs`` (git holding the transfer lock ``held``); (its result,
    whether it was atomic)."""
    head = ["push", "--porcelain", *(["--progress"] if progress else []), *leases]

    def push(*atomic: str) -> subprocess.CompletedProcess[str]:
        return _git(vault, *head, *atomic, remote, *specs, check=False, progress=progress,
                    credentials=creds, hold=held)  # fmt: skip

    # all or nothing (git's --atomic): one refused ref must not leave the others half pushed
    proc = push("--atomic")
    if proc.returncode != 0 and "does not support --atomic" in proc.stderr:
        return push(), False  # an old server: each ref on its own
    return proc, True


def _caught_up(
    vault: Vault,
    remote: str,
    proc: subprocess.CompletedProcess[str],
    local: dict[str, str],
    implicit: set[str],
    creds: tuple[str, str] | None,
) -> dict[str, str]:
    """ref -> the remote's commit ("" where the branch is gone there), when every ref git
    refused was refused only because its default lease was stale and the remote's commit
    is one the fork already contains, or there is none any more (deleted there since this
    vault saw it: creating it again overwrites nothing): a plain push would have gone
    through; else nothing."""
    refused = [line.split("\t") for line in proc.stdout.splitlines() if line.startswith("!")]
    stale = [f[1].split(":")[-1] for f in refused if len(f) >= 3 and "stale info" in f[2]]
    others = [f for f in refused if len(f) < 3 or not ("stale info" in f[2] or "atomic push failed" in f[2])]
    if not stale or others or any(ref not in implicit for ref in stale):
        return {}
    there = _ls_remote(vault, remote, creds, quiet=True)
    out = {}
    for ref in stale:
        theirs = there.get(ref)
        if theirs is None:
            out[ref] = ""  # the lease is renewed on its absence
            continue
        # (libgit2 looks the commit up: git would fetch it from the promisor if missing)
        if not vault.store.has_object(theirs):
            return {}
        if theirs != local[ref] and not _contains(vault, local[ref], theirs):
            return {}
        out[ref] = theirs
    return out


# Why a plain push is a compare-and-swap on the remote-tracking ref: git's push
# decides "non-fast-forward" by looking the remote's new commit up in the vault, and in a
# lazy vault (a partial clone) a commit it does not hold is fetched on the spot (git's own
# lazy fetch: the commit and every tree of it, with no negotiation) only to refuse the
# push. With ``--force-with-lease=<ref>:<what this vault last saw>`` the server compares
# and swaps under its ref lock, a moved ref is refused before anything is looked up, and
# avfs checks the fast-forward itself (the fork must contain what it last saw): the same
# guarantee as a plain push, nothing fetched. A branch this vault never saw there is
# leased on its absence (``--force-with-lease=<ref>:``): two machines' first publish of
# one new branch is the same compare-and-swap, the second refused as non-fast-forward (or,
# where the remote has a commit the fork contains, renewed by _caught_up and pushed).


def _contains(vault: Vault, tip: str, seen: str) -> bool:
    """Whether ``tip`` contains ``seen`` (both local commits: a lazy vault holds every
    commit, so git walks no missing object). Through libgit2 where this process has it
    loaded already (the warm CLI server: no ``git merge-base`` process, ~5-15 ms of every
    push of a fork that moved since the last one), else ``git merge-base --is-ancestor`` (a
    cold push pays no pygit2 import); where libgit2 cannot tell, git answers."""
    if tip == seen:
        return True
    if libgit2_loaded():
        try:
            return vault.store.descendant_of(tip, seen)
        except AvfsError:
            pass  # (git says why, below)
    proc = _git(vault, "merge-base", "--is-ancestor", seen, tip, check=False)
    if proc.returncode not in (0, 1):
        raise RemoteError(f"cannot tell whether {tip} contains {seen}: {proc.stderr.strip()}")
    return proc.returncode == 0


def _behind(
    vault: Vault, remote: str, ref: str, tip: str, seen: str, creds: tuple[str, str] | None
) -> NoReturn:
    """Refuse, before anything is sent, a push whose fork lacks what the remote last had."""
    there = _ls_remote(vault, remote, creds).get(ref)
    raise RemoteRejectedError(
        f"{remote} has {ref} at {there or seen}, which {tip} does not contain (non-fast-forward):"
        f" this vault last saw it at {seen}; nothing was pushed",
        hint="fetch and merge (`avfs pull`), then push again",
        details={
            "ref": ref,
            "remote_commit": there,
            "local_commit": tip,
            "reason": "non_fast_forward",
            "git": None,
            "pushed": [],
        },
    )


def _push_failed(
    vault: Vault,
    remote: str,
    proc: subprocess.CompletedProcess[str],
    local: dict[str, str],
    expected: dict[str, str],
    atomic: bool,
    creds: tuple[str, str] | None = None,
    implicit: set[str] | frozenset[str] = frozenset(),
) -> NoReturn:
    """Raise the error for a push git did not complete: the first ref the server refused
    (not the ones --atomic refused along with it), why, and what to do."""
    secrets = (*(creds or ()), _token(vault) or "")
    detail = _scrub(proc.stderr.strip(), secrets)
    refused = [line.split("\t") for line in proc.stdout.splitlines() if line.startswith("!")]
    refused = [f for f in refused if len(f) >= 3 and f[1].split(":")[-1] in local]
    pushed = [] if atomic else sorted(_pushed(vault, proc.stdout, expected))
    cause = next((f for f in refused if "atomic push failed" not in f[2]), refused[0] if refused else None)
    if cause is None:
        url = redact(_require(vault, remote)[0])
        if (remotecause.failure_cause(detail) or ("",))[0] == "unreachable" and _answers(
            vault, remote, creds
        ):
            raise remotecause.push_dropped(
                f"push to {remote}", url, detail, proc.returncode, remote=remote, pushed=pushed
            )
        raise remote_failed(f"push to {remote}", url, detail, proc.returncode, remote=remote, pushed=pushed)
    # a server-side atomic transaction refuses every ref for the one that moved: name that one
    cause = next((f for f in refused if lost_race(detail, f[1].split(":")[-1])), cause)
    ref, summary = cause[1].split(":")[-1], cause[2]
    there = _ls_remote(vault, remote, creds, quiet=True).get(ref)  # (only on this path: one more round trip)
    reason, why, hint = "rejected", f"and refused it: {summary}", "see the server's message"
    for needle, r, w, h in REFUSALS:
        if needle in summary:
            reason, why, hint = r, w.format(local=local[ref]), h
            break
    if reason == "declined" and lost_race(detail, ref):
        reason = "stale_lease" if ref in expected and ref not in implicit else "non_fast_forward"
        why = f"moved while {local[ref]} was being pushed (another push won the race)"
        hint = "fetch and merge (`avfs pull`), then push again"
    if reason == "stale_lease" and ref in implicit:  # a plain push: the remote moved (above _contains)
        reason, why, hint = "non_fast_forward", REFUSALS[1][2].format(local=local[ref]), REFUSALS[1][3]
    if reason == "declined" and (full := remotecause.remote_full(detail)):  # not a hook: the server's disk
        reason, why, hint = (
            "remote_no_space",
            f"and the server has no space left to store it ({full})",
            remotecause.REMOTE_FULL_HINT,
        )
    elif reason == "declined":
        why += f" ({_scrub(summary, secrets)}{'; ' + detail if detail else ''})"
    moved = f"; {len(pushed)} other ref(s) were pushed" if pushed else "; nothing changed here or there"
    raise RemoteRejectedError(
        f"{remote} refused {ref}: it is at {there or '(nothing)'}, {why}{moved}",
        hint=hint,
        details={
            "ref": ref,
            "remote_commit": there,
            "local_commit": local[ref],
            "reason": reason,
            "git": _scrub(summary, secrets),
            "pushed": pushed,
        },
    )


def _answers(vault: Vault, remote: str, creds: tuple[str, str] | None) -> bool:
    """Whether ``remote`` answers `git ls-remote` now (asked only after a push whose
    connection was reset: "unreachable" is then the wrong word)."""
    return _git(vault, "ls-remote", "--heads", remote, credentials=creds, check=False).returncode == 0


def _pushed(vault: Vault, porcelain: str, expected: dict[str, str]) -> dict[str, str | None]:
    """remote ref -> what it was before, for each ref ``git push --porcelain`` moved (no
    ls-remote round trip before every push). git abbreviates the old id: a fast-forward's
    old commit is an ancestor of the new one, so it is here to expand (one `git rev-parse`
    for all); a forced update's is the lease's expected value."""
    out: dict[str, str | None] = {}
    short: dict[str, str] = {}
    for line in porcelain.splitlines():
        flag, _, rest = line.partition("\t")
        if flag not in ("*", " ", "+") or "\t" not in rest:
            continue
        spec, _, summary = rest.partition("\t")
        ref = spec.split(":")[-1]
        old = summary.split(".")[0]
        lease = expected.get(ref)
        if flag == "*":
            out[ref] = None
        elif lease and lease.startswith(old):
            out[ref] = lease
        elif re.fullmatch(r"[0-9a-f]{4,40}", old):  # (hex: never taken for an option)
            short[ref] = old
        else:
            raise RemoteError(f"cannot read git's report of the push: {line!r}")
    if short:
        proc = _git(vault, "rev-parse", *short.values(), check=False)
        full = proc.stdout.split()
        if proc.returncode != 0 or len(full) != len(short):
            raise RemoteError(f"the remote's old commits {sorted(short.values())} are not all in this vault")
        if any(not f.startswith(a) for a, f in zip(short.values(), full, strict=True)):
            raise RemoteError("a ref of this vault is named like one of the remote's old commits")
        out.update(zip(short, full, strict=True))
    return out


def _record(
    vault: Vault, kind: str, remote: str, updates: tuple[RefUpdate, ...], fork: str | None = None
) -> None:
    """The push or fetch in the op log, for the change stream's ``push``/``fetch`` events
    (never undone: :data:`~..vaults.oplog.RECORDED_ONLY`). A push's refs are the remote's
    (``details.remote`` names it), a fetch's the vault's remote-tracking refs."""
    moved = [{"ref": u.ref, "old": u.old, "new": u.new} for u in updates]
    vault.oplog.record(
        kind,
        f"{kind} {'to' if kind == 'push' else 'from'} {remote}: {len(moved)} ref(s) moved",
        fork=fork,
        refs=moved,  # type: ignore[arg-type]
        details={"remote": remote},
    )


def fetch(vault: Vault, remote: str, *, progress: ProgressFn | None = None) -> TransferResult:
    """Fetch the remote's branches into ``refs/remotes/<remote>/``; forks do not move."""
    creds, warnings = _clean_stored(vault, remote)
    prefix = refs.remote_prefix(remote)

    def tracking() -> dict[str, str]:  # (git's files, packed-refs read once: no pygit2)
        return refs.read_refs_file(vault.path, prefix)

    # a shallow vault takes the remote's new shallow roots, as its clone did (git: a warning, "rejected")
    extra = ["--progress"] * bool(progress) + ["--update-shallow"] * os.path.exists(f"{vault.path}/shallow")
    with transferlock.holding(vault.path, vault.state_dir, remote) as (held, taken):
        warnings += _taken_back(taken)
        before = tracking()
        done = _git(
            vault, "fetch", "--prune", *extra, remote, f"+{refs.HEADS}*:{prefix}*",
            progress=progress, credentials=creds, hold=held,
        )  # fmt: skip
    warnings += remotecause.shallow_rejected(done.stderr)  # (a full vault: a ref git left out)
    after = tracking()
    updates = tuple(
        RefUpdate(r, before.get(r), after.get(r))
        for r in sorted(set(before) | set(after))
        if before.get(r) != after.get(r)
    )
    _record(vault, "fetch", remote, updates)
    return TransferResult(vault.name, remote, updates, warnings=warnings)


def pull(
    vault: Vault,
    remote: str,
    fork: str | None = None,
    *,
    progress: ProgressFn | None = None,
    branch: str | None = None,
    **merge_options: object,
) -> tuple[TransferResult, object]:
    """Fetch, then merge ``<remote>/<branch>`` (default: the branch named as ``fork``) into
    ``fork`` (fast-forward or a merge commit; conflicts come back as data, as for ``avfs
    merge``). Returns (fetch result, MergeResult)."""
    from . import merge

    fork = fork or vault.default_fork
    vault.require_fork(fork)
    branch = names.check_fork_name(branch, "branch") if branch else fork
    fetched = fetch(vault, remote, progress=progress)
    ref = refs.tracking_ref(remote, branch)
    if refs.read_ref(vault.store, ref) is None:
        raise RemoteError(
            f"{remote} has no branch {branch}",
            hint=f"push it first (`avfs push {remote} {branch}`)",
            details={"remote": remote, "branch": branch},
        )
    result = merge.merge(vault, f"{remote}/{branch}", fork, source_ref=ref, **merge_options)  # type: ignore[arg-type]
    return fetched, result
