"""Close names for a vault or fork that was not found: a typo's fix, in the error.

Without click: the `proxy exec` fast path (:mod:`.execopts`) names them too."""

from __future__ import annotations

TYPE_CHECKING = False  # not from typing: the fast path imports this module (see .execopts)
if TYPE_CHECKING:
    from ..core.errors import AvfsError
    from ..core.vaults.home import Home


def with_suggestions(home: Home, err: AvfsError) -> AvfsError:
    """``err`` with the existing names close to the vault or fork it did not find, in its
    hint and in ``details.suggestions`` (any other error as it is)."""
    import difflib

    from ..core.errors import AvfsError, ForkNotFoundError, VaultNotFoundError

    if isinstance(err, VaultNotFoundError):
        try:
            vaults = home.list_vaults()
        except AvfsError as unusable:
            return unusable  # the home itself cannot be used (its vaults dir is a file...): say that
        name, known = str(err.details.get("vault", "")), [v.name for v in vaults]
    elif isinstance(err, ForkNotFoundError) and home.exists(str(err.details.get("vault", ""))):
        name, known = str(err.details.get("fork", "")), home.vault(str(err.details["vault"])).fork_names()
    else:
        return err
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if not close:
        return err
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " + (err.hint or "")
    details = {**err.details, "suggestions": close}
    return type(err)(err.message, hint=hint.strip(), details=details)
