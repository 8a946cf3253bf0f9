"""Approval tokens: a ``require_approval`` decision is answered with a token bound to the
exact request; ``proxy exec --approve TOKEN`` runs that request once.

A token is ``apv_`` + 32 random hex digits. Its record, ``<home>/approvals/<token>.json``,
holds the request hash (sha256 over vault, fork, argv or shell string, cwd and the policy
hash), the request itself (for people deciding) and the expiry. Use consumes it by renaming
the record (atomic: of two racing uses, one wins). Refused, with a clear error: an unknown
token, one used already, one expired, one for a different request (another command, cwd,
fork, or a policy changed since).

The token is a capability: whoever holds it can run that one request. Runtimes show it to a
person and pass it back; an agent should not be able to approve for itself (the MCP server
returns it to the client and never approves).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from typing import Any

from ..core.errors import AvfsError

DEFAULT_TTL_S = 15 * 60
_TOKEN = re.compile(r"^apv_[0-9a-f]{32}$")


class ApprovalError(AvfsError):
    code = "approval_refused"
    exit_code = 4
    errno = 1  # EPERM


def request_hash(request: dict[str, Any], policy_hash: str) -> str:
    keyed = {
        "vault": request["vault"],
        "fork": request["fork"],
        "argv": request.get("argv"),
        "shell": request.get("shell"),
        "cwd": request.get("cwd", ""),
        "env": request.get("env", []),
        "inherit_env": request.get("inherit_env", False),
        "stdin": request.get("stdin", False),
        "policy": policy_hash,
    }
    return hashlib.sha256(json.dumps(keyed, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def _dir(home_path: str) -> str:
    return os.path.join(home_path, "approvals")


def issue(
    home_path: str, request: dict[str, Any], policy_hash: str, ttl_s: int = DEFAULT_TTL_S
) -> dict[str, Any]:
    """Create a token for ``request``; returns {token, expires_at, request_hash}."""
    os.makedirs(_dir(home_path), exist_ok=True)
    _expire(home_path)
    token = "apv_" + os.urandom(16).hex()
    now = time.time()
    rec = {
        "token": token,
        "request_hash": request_hash(request, policy_hash),
        "request": request,
        "created": now,
        "expires": now + ttl_s,
    }
    tmp = os.path.join(_dir(home_path), f".{token}.tmp")
    with open(tmp, "w") as fh:
        json.dump(rec, fh, ensure_ascii=True)
    os.replace(tmp, os.path.join(_dir(home_path), token + ".json"))
    return {"token": token, "expires_at": _iso(now + ttl_s), "request_hash": rec["request_hash"]}


def consume(home_path: str, token: str, request: dict[str, Any], policy_hash: str) -> None:
    """Use ``token`` for ``request`` (once); raises :class:`ApprovalError` otherwise."""
    if not _TOKEN.match(token):
        raise ApprovalError("not an approval token", hint="tokens look like apv_ followed by 32 hex digits")
    live = os.path.join(_dir(home_path), token + ".json")
    used = os.path.join(_dir(home_path), token + ".used")
    try:
        with open(live) as fh:
            rec = json.load(fh)
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
    if rec.get("request_hash") != request_hash(request, policy_hash):
        raise ApprovalError(
            "this approval token is for a different request",
            hint="a token approves one exact command, cwd, fork and policy",
            details={"token": token, "approved_request": rec.get("request")},
        )
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
