"""What avfs takes from its environment: one settings object, read in one place.

The front ends (the CLI and its fast path, the MCP server, the hooks, the mount daemon's
command line, and ``avfs_git.open_home``: the Python API's entry) read the process
environment here, :meth:`Settings.from_environ`, and hand the result down: a
:class:`~.home.Home` carries it (``home.settings``), and what is below takes its values
from there (``Vault.lock_wait_s``, the policy's cache, the git token for
remotes). No other module of core, ops, policy or proxy reads ``os.environ`` for one of
avfs's settings (``tests/test_layers.py`` holds the list of the reads that remain and why:
git's own variables, the environment a command or a git process is given; and the list of
the modules that call ``from_environ``). ``Settings(home)`` is the defaults: nothing read.

========================  =====================  ============================================
variable                  field                  meaning
========================  =====================  ============================================
``AVFS_HOME``             ``home``               the home when ``--home`` is not given
``AVFS_LOCK_WAIT``        ``lock_wait``          seconds to wait for a lock (default 10)
``XDG_CACHE_HOME``, ``~`` ``cache_dir``          where the parsed default policy is cached
``AVFS_GIT_TOKEN``        ``git_token``          an HTTP(S) password or token for remotes
``AVFS_LAYERS``           ``layers``             the layers file system: auto, on or off
``AVFS_NO_OVERLAY``       ``no_overlay``         (non-empty) mounts never use kernel overlayfs
``AVFS_FUSE_TRACE``       ``fuse_trace``         a file the mount daemon appends each FUSE call to
``AVFS_MOUNT_IDLE``       ``mount_idle``         idle seconds before a mount exec made is released
``AVFS_ZYGOTE``           ``zygote``             ``off``: no warm zygote; every daemon spawned
``AVFS_MOUNT_WALK``       ``mount_walk``         ``off``: no overlay mount walks its lower layer
========================  =====================  ============================================

A call served for another process (a mount's daemon running a ``proxy exec`` for a client,
which sends its environment with the request) waits for locks as the caller's
``AVFS_LOCK_WAIT`` says, not the daemon's: inside :class:`served_for` (this thread, this
context), :meth:`Settings.lock_wait_s` answers the caller's. The call waits as it would
have, run in the caller's own process (what happens when no daemon serves it).

A plain slotted class, not a dataclass or a named tuple: the hooks and ``proxy exec``'s fast
path load this module on every call, and ``dataclasses`` costs 7 ms to import, a named tuple
1 ms to define (``contextvars`` is a built-in module's re-export: a file of three lines).
"""

from __future__ import annotations

import contextvars
import os

TYPE_CHECKING = False  # not from typing: see avfs_git/__init__.py

if TYPE_CHECKING:  # (collections.abc costs ~1.5 ms to import: this module is on the fast path)
    from collections.abc import Mapping

__all__ = ["DEFAULT_LOCK_WAIT_S", "TOKEN_ENV", "Settings", "home_path", "served_for", "user_home"]

DEFAULT_LOCK_WAIT_S = 10.0
TOKEN_ENV = "AVFS_GIT_TOKEN"  # an HTTP(S) password or token for every remote

# the caller's $AVFS_LOCK_WAIT as given ("": its default) while a call is served for it
_served_lock_wait: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "avfs_served_lock_wait", default=None
)
_served_ignore_wait: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "avfs_served_ignore_wait", default=None
)
# how long git may take to say which paths are ignored (``$AVFS_IGNORE_WAIT``, seconds):
# its matcher can take hours over one `.gitignore` line (core/workspace/ignore.py)
DEFAULT_IGNORE_WAIT_S = 30.0


def user_home(environ: Mapping[str, str]) -> str:
    """The user's home directory, as ``~`` means it (``os.path.expanduser``'s rule):
    ``$HOME`` when it is set, else the password database; no trailing '/'."""
    if "HOME" in environ:
        home = environ["HOME"]
    else:
        import pwd

        try:
            home = pwd.getpwuid(os.getuid()).pw_dir
        except KeyError:
            home = "/"
    return home.rstrip("/")


def home_path(explicit: str | None, environ: Mapping[str, str]) -> str:
    """The avfs home: ``explicit`` (``--home``), else ``$AVFS_HOME``, else ``~/.avfs``;
    absolute."""
    return os.path.abspath(explicit or environ.get("AVFS_HOME") or user_home(environ) + "/.avfs")


class Settings:
    """avfs's settings from the environment (see the module's table).

    Attributes:
        home: the avfs home (absolute).
        lock_wait: ``$AVFS_LOCK_WAIT`` as given ("" for the default); checked when a lock
            is taken (:meth:`lock_wait_s`), so a bad value fails only what waits on a lock.
        cache_dir: avfs's cache directory (None: cache nothing).
        git_token: the password or token git gives every HTTP(S) remote (None: none).
    """

    __slots__ = (
        "cache_dir",
        "fuse_trace",
        "git_token",
        "home",
        "layers",
        "lock_wait",
        "mount_idle",
        "mount_walk",
        "no_overlay",
        "zygote",
    )

    def __init__(
        self,
        home: str,
        lock_wait: str = "",
        cache_dir: str | None = None,
        git_token: str | None = None,
        layers: str | None = None,
        no_overlay: bool = False,
        fuse_trace: str | None = None,
        mount_idle: str = "",
        zygote: bool = True,
        mount_walk: bool = True,
    ) -> None:
        self.home = home
        self.lock_wait = lock_wait
        self.cache_dir = cache_dir
        self.git_token = git_token
        self.layers = layers  # $AVFS_LAYERS: overrides the home's ``layers`` setting
        self.no_overlay = no_overlay  # $AVFS_NO_OVERLAY: the overlay backend's off switch
        self.fuse_trace = fuse_trace  # $AVFS_FUSE_TRACE: a debugging trace of FUSE calls
        # $AVFS_MOUNT_IDLE as given ("": the vault's or home's config, else the default);
        # checked where a mount is made for proxy exec (ops/mountidle.idle_timeout)
        self.mount_idle = mount_idle
        # $AVFS_ZYGOTE (``off``: False): whether this process's mount daemons may be forked
        # from its zygote once it has one (ops/warmstart.py); False: each is spawned
        self.zygote = zygote
        # $AVFS_MOUNT_WALK (``off``: False): whether an overlay mount's daemon walks its lower
        # layer in its quiet moments (fuse/warm.py): O(tree) CPU on every mount (10k files
        # ~0.45 s) that moves a later full walk's listings earlier (the first `grep -r` then
        # answered by the kernel: ~0.05 s against 2.5-3.2 s at 10k files); on by default, a
        # runtime with many mounts that nothing walks turns it off
        self.mount_walk = mount_walk

    def __repr__(self) -> str:  # never the token
        token = "set" if self.git_token else None
        return f"Settings(home={self.home!r}, lock_wait={self.lock_wait!r}, cache_dir={self.cache_dir!r}, git_token={token}, layers={self.layers!r}, no_overlay={self.no_overlay!r}, fuse_trace={self.fuse_trace!r}, mount_idle={self.mount_idle!r}, zygote={self.zygote!r}, mount_walk={self.mount_walk!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__
        )

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, home: str | None = None) -> Settings:
        """The settings from ``environ`` (None: this process's environment) and an explicit
        home (``--home``)."""
        env = os.environ if environ is None else environ
        cache = env.get("XDG_CACHE_HOME") or user_home(env) + "/.cache"
        return cls(
            home=home_path(home, env),
            lock_wait=env.get("AVFS_LOCK_WAIT", ""),
            cache_dir=os.path.join(cache, "avfs"),
            git_token=env.get(TOKEN_ENV) or None,
            layers=env.get("AVFS_LAYERS") or None,
            no_overlay=bool(env.get("AVFS_NO_OVERLAY")),
            fuse_trace=env.get("AVFS_FUSE_TRACE") or None,
            mount_idle=env.get("AVFS_MOUNT_IDLE", ""),
            zygote=env.get("AVFS_ZYGOTE", "") != "off",
            mount_walk=env.get("AVFS_MOUNT_WALK", "") != "off",
        )

    def lock_wait_s(self) -> float:
        """How long to wait for a lock before giving up (seconds).

        Raises:
            UsageError: ``$AVFS_LOCK_WAIT`` is not a number.
        """
        served = _served_lock_wait.get()
        given = self.lock_wait if served is None else served  # (a served call: its caller's)
        if not given:
            return DEFAULT_LOCK_WAIT_S
        try:
            return float(given)
        except ValueError:
            from .errors import UsageError

            raise UsageError(
                f"AVFS_LOCK_WAIT={given!r} is not a number of seconds", hint="e.g. AVFS_LOCK_WAIT=10"
            ) from None


def ignore_wait_s() -> float:
    """How long one git asked which paths are ignored may take (seconds): the caller's
    ``$AVFS_IGNORE_WAIT`` (a served call's, as :meth:`Settings.lock_wait_s`), else 30
    (core/workspace/ignore.py, docs/security.md).

    Raises:
        UsageError: it is not a positive number.
    """
    served = _served_ignore_wait.get()
    given = os.environ.get("AVFS_IGNORE_WAIT", "") if served is None else served
    if not given:
        return DEFAULT_IGNORE_WAIT_S
    try:
        wait = float(given)
    except ValueError:
        wait = -1.0
    if not wait > 0:
        from .errors import UsageError

        raise UsageError(
            f"AVFS_IGNORE_WAIT={given!r} is not a positive number of seconds", hint="e.g. AVFS_IGNORE_WAIT=30"
        )
    return wait


class served_for:  # noqa: N801 - a context manager, named as the functions that make one
    """In the ``with`` block, on this thread: the call is served for a process whose
    environment is ``environ`` (a ``proxy exec`` request's), and waits for locks as that
    environment's ``AVFS_LOCK_WAIT`` says (unset: the default), whatever this process's
    says. A class, not ``contextlib.contextmanager``: this module is on the fast path."""

    __slots__ = ("_ignore_token", "_ignore_wait", "_lock_wait", "_token")

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._lock_wait = environ.get("AVFS_LOCK_WAIT", "")
        self._ignore_wait = environ.get("AVFS_IGNORE_WAIT", "")
        self._token: contextvars.Token[str | None] | None = None
        self._ignore_token: contextvars.Token[str | None] | None = None

    def __enter__(self) -> None:
        self._token = _served_lock_wait.set(self._lock_wait)
        self._ignore_token = _served_ignore_wait.set(self._ignore_wait)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _served_lock_wait.reset(self._token)
            self._token = None
        if self._ignore_token is not None:
            _served_ignore_wait.reset(self._ignore_token)
            self._ignore_token = None
