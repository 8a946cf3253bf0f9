"""Why git could not use a server, in words a person reads at a glance: the credentials
refused, no repository at that URL, or the server not reached (docs/remotes.md, "When the
server cannot be used"). One table for every error that names a remote: a push's, a
fetch's, the ``git ls-remote`` a push asks, a lazy vault's fetch of a blob
(:mod:`.promisor`)."""

from __future__ import annotations

import re

from ..errors import RemoteError

# what git and ssh say when the server refused the credentials or none were given
REFUSED = (
    "Authentication failed for",  # HTTP: git's credential was refused (401)
    "could not read Username",  # HTTP: none given (GIT_TERMINAL_PROMPT=0)
    "could not read Password",
    "The requested URL returned error: 401",
    "The requested URL returned error: 403",
    "Permission denied (",  # ssh: "Permission denied (publickey)." and its kin
    "Permission denied, please try again",
)
# no repository there: a local path, git daemon (which says no more to a stranger), smart
# HTTP's 404, a hosting service over ssh
_NOT_A_REPOSITORY = re.compile(
    r"does not appear to be a git repository|not a git repository|repository not exported"
    r"|repository '[^']*' not found|Repository not found|The requested URL returned error: 404"
)
# the server not reached: no name, no route, nothing listening, cut off, timed out
_UNREACHABLE = re.compile(
    r"unable to connect|Could not resolve host|Could not resolve hostname|Connection refused"
    r"|Failed to connect|Connection timed out|No route to host|Connection reset|Connection closed"
    r"|the remote end hung up unexpectedly|Could not read from remote repository|timed out|unable to access"
)
# the server's own disk (or quota) full: git's receive-pack (or the unpack-objects or
# index-pack it runs) says so on its side band, which git prints as "remote: ..."; the
# line is quoted as it is (a local "No space left" carries no "remote: ")
_REMOTE_FULL = re.compile(r"^remote: .*(?:No space left on device|Disk quota exceeded).*$", re.MULTILINE)
REMOTE_FULL_HINT = (
    "free space on the server (its disk or quota is full), then push again; nothing changed here"
)
CREDENTIALS_HINT = (
    "give the credentials: for HTTP(S) AVFS_GIT_TOKEN (and AVFS_GIT_USERNAME) or a git credential"
    " helper, for ssh your ssh key (ssh-agent, ~/.ssh, GIT_SSH_COMMAND); then try again"
)


def refused_credentials(why: str) -> bool:
    """Whether git's error ``why`` says the server refused the credentials (or that none
    were given where it asked for them)."""
    return any(s in why for s in REFUSED)


def remote_full(why: str) -> str | None:
    """The server's own line saying its disk (or quota) is full, from git's error ``why``
    (the ``remote: ...`` git prints from the server's side band); None where there is none."""
    found = _REMOTE_FULL.search(why)
    return found.group(0).strip() if found else None


def failure_cause(why: str) -> tuple[str, str, str] | None:
    """(``details.reason``, the cause in words, a hint) for git's error ``why``, where it is
    one of the four a person can act on: ``remote_no_space``, ``auth_failed``,
    ``not_a_repository``, ``unreachable`` (tried in that order: a server that ran out of
    room drops the connection, and git adds "Could not read from remote repository" to the
    second and third as well); None for any other."""
    if remote_full(why):
        return "remote_no_space", "the server has no space left on its disk", REMOTE_FULL_HINT
    if refused_credentials(why):
        return "auth_failed", "the server refused the credentials", CREDENTIALS_HINT
    if _NOT_A_REPOSITORY.search(why):
        return (
            "not_a_repository",
            "there is no git repository at that URL",
            "check the remote's URL (`avfs remote list`, `avfs remote set-url NAME URL`)",
        )
    if _UNREACHABLE.search(why):
        return (
            "unreachable",
            "the server could not be reached",
            "check the network and that the server is up, then try again",
        )
    return None


def remote_failed(doing: str, url: str, why: str, exit_code: int, **details: object) -> RemoteError:
    """The error of git's ``doing`` (``"push to origin"``) that failed with ``why`` (already
    redacted), naming the remote's ``url`` (redacted) and the cause where it is one of
    :func:`failure_cause`'s (``details.reason``; None for another)."""
    reason, words, hint = failure_cause(why) or (None, "", "see git's message")
    return RemoteError(
        f"{doing} ({url}) failed{f' ({words})' if words else ''}: {why}",
        hint=hint,
        details={**details, "url": url, "reason": reason, "exit": exit_code},
    )


# what git's porcelain says of a refused ref -> (reason, why in words, hint)
REFUSALS = (
    ("stale info", "stale_lease", "not what this vault last fetched (the lease is stale)",
     "fetch (`avfs fetch`), look at what moved, then push again"),
    ("non-fast-forward", "non_fast_forward", "which {local} does not contain (non-fast-forward)",
     "fetch and merge (`avfs pull`), then push again"),
    ("fetch first", "non_fast_forward", "which {local} does not contain (non-fast-forward)",
     "fetch and merge (`avfs pull`), then push again"),
    ("already exists", "already_exists", "and a tag is never moved",
     "the tag exists there at another commit (a push never moves a tag, as git's): delete it there,"
     " or rename it here (a checkpoint pushed as a tag: rename the checkpoint)"),
    ("[remote rejected]", "declined", "and the server declined the update",
     "the server refused it (a hook or branch protection): see its message; pulling will not help"),
)  # fmt: skip


def lost_race(stderr: str, ref: str) -> bool:
    """Whether the server refused ``ref`` because it moved between its advertisement and
    the update (receive-pack's compare-and-swap under the ref lock: ``cannot lock ref
    '<ref>': is at X but expected Y``, or ``...: reference already exists`` for a branch
    that was absent): another push got there first."""
    return f"cannot lock ref '{ref}'" in stderr and ("but expected" in stderr or "already exists" in stderr)


def push_dropped(doing: str, url: str, why: str, exit_code: int, **details: object) -> RemoteError:
    """The error of a push whose connection the server reset (git's ``why`` says only
    "Connection reset"), where the server answers again at once: it was reached, then it
    dropped the push. A receive-pack that runs out of disk while the pack still streams in
    exits with unread data, and the kernel's reset discards its last words ("remote: ... No
    space left on device") before git reads them: what the server's log says is the cause."""
    return RemoteError(
        f"{doing} ({url}) failed (the server took the connection, then dropped it while receiving the"
        f" push: its disk may be full, or it crashed; its own log says which): {why}",
        hint="check the server's free space and its log, then push again; nothing changed here",
        details={**details, "url": url, "reason": "dropped", "exit": exit_code},
    )


_SHALLOW_REJECTED = re.compile(r"rejected (\S+) because shallow roots are not allowed to be updated")


def shallow_rejected(stderr: str) -> tuple[str, ...]:
    """git fetch's branches left out for a shallow remote (a warning; git exits 0): their
    history there starts at a shallow root the vault does not have. In avfs's words, one
    warning a ref, once (git says it more than once; a fetch said nothing had moved)."""
    return tuple(
        f"{ref} was not updated: the remote is shallow and its history there starts at a"
        " commit this vault does not have (git fetch refuses such a ref; `git --git-dir VAULT"
        " fetch --update-shallow REMOTE` would take it and make the vault shallow)"
        for ref in dict.fromkeys(m.group(1) for m in _SHALLOW_REJECTED.finditer(stderr))
    )
