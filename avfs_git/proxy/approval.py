"""Approval tokens: a ``require_approval`` decision is answered with a token bound to the
exact request; ``proxy exec --approve TOKEN`` runs that request once.

A token is ``apv_`` + 32 random hex digits. Its record, ``<home>/approvals/<token>.json``,
holds the request hash (sha256 over every key of the bound request: vault, fork, argv or
shell string, cwd, timeout, checkpoint, commit, mode, env, inherit_env, the sha256 of stdin,
isolate; and the policy hash), the request itself (for people deciding) and the expiry.
Environment values (``--env NAME=VALUE``: often a secret) are never written: the record
holds each one's salted sha256 (:func:`_sealed`), which is all binding needs, since the
request made again with the token carries the values themselves. The directory is 0700 and
its files 0600. Use
consumes it by renaming the record (atomic: of two racing uses, one wins). Refused, with a
clear error: an unknown token, one used already, one expired, one for a different request
(another command, cwd, fork, option, stdin, or a policy changed since).

The token is a capability: whoever holds it can run that one request. ``avfs proxy exec
--approve TOKEN`` is typed by a person. The MCP server's ``exec`` returns the token to its
client (the agent), so there it is not enough: a person approves it out of band with
``avfs proxy approve TOKEN`` (:func:`approve`: a marker ``<token>.approved``), and only
then does ``exec`` accept it (unless the server runs with ``--client-approves``). The
marker is a file of your user's: it keeps a model from approving itself by echoing the token,
not a command that runs arbitrary code as your user from writing one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from typing import Any

from ..core.errors import ApprovalError

DEFAULT_TTL_S = 15 * 60
_TOKEN = re.compile(r"^apv_[0-9a-f]{32}$")


def request_hash(request: dict[str, Any], policy_hash: str) -> str:
    """sha256 over every key of the bound request (see ``admission.bound_request``: vault, fork,
    argv or shell, cwd, timeout, checkpoint, commit, mode, env, inherit_env, the sha256 of
    stdin, isolate) and the policy's hash: a key added there is bound without a change here."""
    keyed = {**request, "policy": policy_hash}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def _dir(home_path: str) -> str:
    return os.path.join(home_path, "approvals")


def _private_dir(home_path: str) -> str:
    d = _dir(home_path)
    os.makedirs(d, mode=0o700, exist_ok=True)
    if os.stat(d).st_mode & 0o077:
        os.chmod(d, 0o700)  # made by an older avfs
    return d


def _write_private(path: str, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` (a temporary name, replaced into place), mode 0600."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, ensure_ascii=True)
    os.replace(tmp, path)


def _sealed(request: dict[str, Any], salt: str) -> dict[str, Any]:
    """``request`` with each environment value replaced by its salted sha256: what the
    record keeps and what the request hash is taken over."""
    env = request.get("env")
    if not env:
        return request
    sealed = [[k, "sha256:" + hashlib.sha256(f"{salt}\0{k}\0{v}".encode()).hexdigest()] for k, v in env]
    return {**request, "env": sealed}


def issue(
    home_path: str, request: dict[str, Any], policy_hash: str, ttl_s: int = DEFAULT_TTL_S
) -> dict[str, Any]:
    """Create a token for ``request``; returns {token, expires_at, request_hash}."""
    d = _private_dir(home_path)
    _expire(home_path)
    token = "apv_" + os.urandom(16).hex()
    salt = os.urandom(16).hex()
    sealed = _sealed(request, salt)
    now = time.time()
    rec = {
        "token": token,
        "request_hash": request_hash(sealed, policy_hash),
        "request": sealed,
        "salt": salt,
        "created": now,
        "expires": now + ttl_s,
    }
    _write_private(os.path.join(d, token + ".json"), rec)
    return {"token": token, "expires_at": _iso(now + ttl_s), "request_hash": rec["request_hash"]}


def load(home_path: str, token: str) -> dict[str, Any]:
    """The live record of ``token`` (with ``expires_at``, and ``approved``: the person's
    approval or None);
    raises :class:`ApprovalError` for a malformed, unknown, used or expired token."""
    if not _TOKEN.match(token):
        raise ApprovalError("not an approval token", hint="tokens look like apv_ followed by 32 hex digits")
    live = os.path.join(_dir(home_path), token + ".json")
    used = os.path.join(_dir(home_path), token + ".used")
    try:
        with open(live) as fh:
            rec: dict[str, Any] = json.load(fh)
    except FileNotFoundError:
        if os.path.exists(used):
            raise ApprovalError("this approval token was used already", details={"token": token}) from None
        raise ApprovalError("unknown approval token", details={"token": token}) from None
    except ValueError as exc:
        raise ApprovalError("unreadable approval token record", details={"token": token}) from exc
    if time.time() > float(rec.get("expires", 0)):
        raise ApprovalError(
            "this approval token has expired",
            hint="run the command again without --approve for a new token",
            details={"token": token, "expired_at": _iso(float(rec.get("expires", 0)))},
        )
    rec["expires_at"] = _iso(float(rec["expires"]))
    rec["approved"] = _approved_by_person(home_path, token)
    return rec


def _approved_by_person(home_path: str, token: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(_dir(home_path), token + ".approved")) as fh:
            mark = json.load(fh)
    except (OSError, ValueError):
        return None
    return mark if isinstance(mark, dict) else None


def approve(home_path: str, token: str) -> dict[str, Any]:
    """Record that a person approved ``token`` (``avfs proxy approve``): a marker
    ``<token>.approved`` beside its record, which is left as it is (so a use racing with
    this cannot bring a used record back). Returns the record, ``approved`` set."""
    rec = load(home_path, token)
    if rec["approved"] is None:
        now = time.time()
        mark = {"approved_by": "person", "approved_at": _iso(now), "uid": os.getuid()}
        _write_private(os.path.join(_private_dir(home_path), token + ".approved"), mark)
        rec["approved"] = mark
    return rec


def consume(
    home_path: str, token: str, request: dict[str, Any], policy_hash: str, *, require_person: bool = False
) -> None:
    """Use ``token`` for ``request`` (once); raises :class:`ApprovalError` otherwise. With
    ``require_person`` (the MCP server's ``exec``), only a token a person approved with
    ``avfs proxy approve`` is accepted; one not approved yet is refused and stays valid."""
    rec = load(home_path, token)
    if rec.get("request_hash") != request_hash(_sealed(request, str(rec.get("salt", ""))), policy_hash):
        raise ApprovalError(
            "this approval token is for a different request",
            hint="a token approves one exact request: command, cwd, fork, options, stdin and policy",
            details={"token": token, "approved_request": rec.get("request")},
        )
    if require_person and rec["approved"] is None:
        raise ApprovalError(
            "this approval token has not been approved by a person",
            hint=f"a person runs `avfs proxy approve {token}` in a terminal; then call again with the token",
            details={"token": token, "request": rec.get("request")},
        )
    live = os.path.join(_dir(home_path), token + ".json")
    used = os.path.join(_dir(home_path), token + ".used")
    try:
        os.rename(live, used)  # single use: of two racing uses only one rename succeeds
    except FileNotFoundError:
        raise ApprovalError("this approval token was used already", details={"token": token}) from None


def _expire(home_path: str, keep_s: float = 86400) -> None:
    """Remove records (used or not) older than a day."""
    now = time.time()
    try:
        names = os.listdir(_dir(home_path))
    except FileNotFoundError:
        return
    for n in names:
        p = os.path.join(_dir(home_path), n)
        try:
            if now - os.stat(p).st_mtime > keep_s:
                os.unlink(p)
        except OSError:
            pass


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
