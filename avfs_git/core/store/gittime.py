"""git's timestamps as avfs shows them."""

from __future__ import annotations

import time


def rfc3339(ts: int, offset_min: int = 0) -> str:
    """A git timestamp as RFC 3339 in UTC; one past the platform's time (a commit's 2^63-1,
    which `git fsck` takes) as git shows it, the epoch (docs/security.md, attack19)."""
    del offset_min
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    except (OverflowError, OSError, ValueError):
        return "1970-01-01T00:00:00Z"
