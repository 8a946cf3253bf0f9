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
    of ``secrets`` (a token from the environment, a password) too.

    Linear in ``text``: what ``_URL_CREDS.sub`` and ``_SCP_IN_TEXT.sub`` would do, found
    from each ``://`` and ``@`` instead of from every character (the regular expressions'
    own search is quadratic in a long run of letters: 16 kB took 0.4-2.1 s of CPU, a 300 kB
    argument of one command held `proxy exec` for minutes). ``tests/test_redact_linear.py``
    holds the two to the same answers."""
    out = _sub_url_creds(text) if "://" in text else text
    out = _sub_scp_creds(out) if "@" in out else out
    for s in secrets:
        if s and len(s) >= 4:  # (a 1-character "secret" would mask every such letter)
            out = out.replace(s, MASK)
    return out


_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_NOT_CRED = re.compile(r"[/\s\"'<>?#]")  # what ends a URL's userinfo (``_URL_CREDS``)
_NOT_SCP_CRED = re.compile(r"[@/:\s\"'<>]")  # what ends an scp-like one (``_SCP_IN_TEXT``)
_BEFORE_SCP = re.compile(r"[\w/@:.%-]")  # what may not come just before it
_HOST_END = re.compile(r"[/:\s]")


def _sub_url_creds(text: str) -> str:
    parts: list[str] = []
    pos = 0
    for sep in re.finditer("://", text):
        i = sep.start()
        if i < pos:
            continue
        start = i  # the scheme: letters, digits, + . - back to pos, from its first letter
        while start > pos and text[start - 1] in _SCHEME_CHARS:
            start -= 1
        while start < i and not (text[start].isascii() and text[start].isalpha()):
            start += 1
        if start == i:
            continue
        stop = _NOT_CRED.search(text, i + 3)
        end = len(text) if stop is None else stop.start()
        at = text.rfind("@", i + 3, end)
        if at < 0:
            continue
        scheme, cred = text[start : i + 3], text[i + 3 : at]
        parts.append(text[pos:start])
        parts.append(text[start : at + 1] if _keep(scheme[:-3], cred) else f"{scheme}{MASK}@")
        pos = at + 1
    parts.append(text[pos:])
    return "".join(parts)


def _sub_scp_creds(text: str) -> str:
    parts: list[str] = []
    pos = 0
    host_end = -1  # where the last host scan stopped (no stop before it: reused)
    for sign in re.finditer("@", text):
        a = sign.start()
        if a < pos:
            continue
        start = a
        while start > pos and _NOT_SCP_CRED.match(text, start - 1) is None:
            start -= 1
        while start < a and start > 0 and _BEFORE_SCP.match(text, start - 1) is not None:
            start += 1  # the lookbehind: not just after a word character, / @ : . % -
        if start == a:
            continue
        if host_end <= a:
            stop = _HOST_END.search(text, a + 1)
            host_end = len(text) if stop is None else stop.start()
        if host_end == a + 1 or host_end >= len(text) or text[host_end] != ":":
            continue
        cred = text[start:a]
        parts.append(text[pos:start])
        parts.append(MASK + "@" if looks_like_token(cred) else text[start : a + 1])
        pos = a + 1
    parts.append(text[pos:])
    return "".join(parts)
