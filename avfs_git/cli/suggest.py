"""Close names for a vault or fork that was not found: a typo's fix, in the error.

Without click: the `proxy exec` fast path (:mod:`.execopts`) names them too."""

from __future__ import annotations

TYPE_CHECKING = False  # not from typing: the fast path imports this module (see .execopts)
if TYPE_CHECKING:
    from ..core.errors import AvfsError
    from ..core.vaults.home import Home
    from ..core.workspace.workspace import Workspace


def with_suggestions(home: Home, err: AvfsError) -> AvfsError:
    """``err`` with the existing names close to the vault or fork it did not find, in its
    hint and in ``details.suggestions`` (any other error as it is)."""
    import difflib

    from ..core.errors import AvfsError, ForkNotFoundError, VaultNotFoundError

    if err.details.get("suggestions"):
        return err  # (named already: the vault's default fork for `main`, core/vaults/lostfork.py)
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


def with_near_paths(ws: Workspace, err: AvfsError) -> AvfsError:
    """``err``, a path the file commands did not find, with the close names in the deepest
    directory that exists (:func:`..core.workspace.nearby.near`) and the `ls` that lists it,
    in its hint and ``details.suggestions`` (any other error, or one with a hint, as it is)."""
    from ..core.errors import PathNotFoundError

    path = err.details.get("path")
    if not isinstance(err, PathNotFoundError) or err.hint or not isinstance(path, str):
        return err
    from ..core.workspace.nearby import near

    d, close = near(ws, path)
    said = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    listed = f"`avfs ls {d}` lists {d}" if d else "`avfs ls` lists the fork's root"
    details = {**err.details, "suggestions": close} if close else err.details
    return PathNotFoundError(err.message, hint=said + listed, details=details)
