"""Credentials out of URLs and text: the one place avfs strips and hides them.

A URL's userinfo (``scheme://USERINFO@host/...``) is a secret in every form a server
accepts one: ``user:password@``, a token as the user name (``https://TOKEN@host``, as
GitHub and GitLab take it), either percent-encoded. So:

- :func:`split_credentials` takes it out of a URL before the URL is stored (the vault's
  config), put on a command line (``/proc/*/cmdline`` is world-readable) or shown; the
  caller passes the pair to git through the environment credential helper
  (:func:`.transport.transport`);
- :func:`redact` hides it in any text (git's messages, errors, the audit log): every
  remote, error and audit path goes through it.

The one userinfo that is kept is an ssh login name (``ssh://git@host/x``, ``git@host:x``):
ssh authenticates with keys, the name is not a secret and the URL does not work without
it. A user name that looks like a token (``ghp_...``, long letters-and-digits) is taken
out even there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
# scheme://userinfo@ -- the userinfo runs to the last '@' before the host's '/' (a raw '@'
# in a password is taken as git takes it); never across quotes, spaces, '?' or '#'
_URL_CREDS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<cred>[^/\s\"'<>?#]*)@")
_SCP = re.compile(r"(?P<cred>[^@/:\s]+)@(?=[^/:\s]+:)")
_SCP_IN_TEXT = re.compile(r"(?<![\w/@:.%-])(?P<cred>[^@/:\s\"'<>]+)@(?=[^/:\s]+:)")
_SSH_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git"})
_LOGIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_TOKEN_PREFIX = re.compile(r"(gh[pousr]_|github_pat_|glpat-|glptt-|xox[abposr]-|sk-|hf_|npm_)", re.I)


def looks_like_token(user: str) -> bool:
    """A user name that is a credential: a known token prefix, or 20+ characters of
    letters and digits mixed (no login name looks like that)."""
    if _TOKEN_PREFIX.match(user):
        return True
    return len(user) >= 20 and any(c.isdigit() for c in user) and any(c.isalpha() for c in user)


def _keep(scheme: str, cred: str) -> bool:
    """Whether the userinfo ``cred`` of a ``scheme`` URL is an ssh login name to keep."""
    if scheme.lower() not in _SSH_SCHEMES or ":" in cred or "%" in cred:
        return False
    return bool(_LOGIN.fullmatch(cred)) and not looks_like_token(cred)


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """(``url`` without its secret userinfo, the (user, password) it held, decoded; the
    password is ``""`` for a user-only form). ``(url, None)`` when it holds none."""
    from urllib.parse import unquote  # (with ipaddress: what a remote's URL needs, not a vault's)

    m = _URL_CREDS.match(url)
    if m is None:
        s = _SCP.match(url)  # scp-like ssh: user@host:path; only a token is taken out
        if s is not None and looks_like_token(s.group("cred")):
            return url[s.end() :], (s.group("cred"), "")
        return url, None
    scheme = m.group("scheme")[:-3]
    cred = m.group("cred")
    if _keep(scheme, cred):
        return url, None
    user, _, password = cred.partition(":")
    if scheme.lower() in _SSH_SCHEMES and _keep(scheme, user):
        # ssh://login:password@: the login stays (ssh needs it), the password goes
        return url[: m.start("cred")] + user + "@" + url[m.end() :], (unquote(user), unquote(password))
    return url[: m.start("cred")] + url[m.end() :], (unquote(user), unquote(password))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the secret userinfo of every URL in it replaced by ``***``, and each
    of ``secrets`` (a token from the environment, a password) too."""

    def sub(m: re.Match[str]) -> str:
        if _keep(m.group("scheme")[:-3], m.group("cred")):
            return m.group(0)
        return f"{m.group('scheme')}{MASK}@"

    out = _URL_CREDS.sub(sub, text)
    out = _SCP_IN_TEXT.sub(lambda m: MASK + "@" if looks_like_token(m.group("cred")) else m.group(0), out)
    for s in secrets:
        if s and len(s) >= 4:  # (a 1-character "secret" would mask every such letter)
            out = out.replace(s, MASK)
    return out
