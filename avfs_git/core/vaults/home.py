"""The avfs home: config, vaults, and the trash of deleted vaults.

Layout::

    <home>/config.json              default vault, identity
    <home>/vaults/<name>.git        the vaults (bare git repositories)
    <home>/trash/<name>.<ts>.git    deleted vaults, until ``gc`` (``vault restore`` brings one back)

Nothing here reads the environment or ``~``: the front ends (and ``avfs_git.open_home``,
the Python API's entry) read them into a :class:`.settings.Settings` and pass it.
"""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import (
    AlreadyExistsError,
    AvfsError,
    CorruptStateError,
    NoSpaceError,
    UnusablePathError,
    UsageError,
    VaultNotFoundError,
    from_oserror,
    no_space,
    want_path,
)
from ..settings import Settings
from ..store import names, refs
from ..store.gitrun import git_env, run_git
from ..store.gitstore import EMPTY_TREE, GitStore
from ..store.identity import Identity
from ..store.locks import FileLocks, mount_gate_path
from ..store.safeopen import read_settings
from ..types import VaultInfo
from .layers import Attempts
from .vault import Vault

if TYPE_CHECKING:
    from ..store.transport import ProgressFn
    from ..workspace.pathguard import GuardSource
    from ..workspace.workspace import MountSide

Progress = Callable[[int, int | None, str], None]


def _dir_stamp(path: str) -> tuple[int, int] | None:
    """(device, inode) of directory ``path``; None when it is not there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


KEEP_OPEN = 64  # vault handles a home keeps open when nothing else holds them


class Home:
    """An avfs home directory. Cheap to create; one shared handle per vault.

    Handles: :meth:`vault` returns the same :class:`Vault` for a name for as long as
    anything holds it (a weak map), and keeps the ``keep_open`` most recently used ones
    alive itself, so that ``home.vault(name)`` in a loop does not reopen a vault each
    time. A handle neither held nor recent is freed with its git and SQLite handles by the
    garbage collector; :meth:`close` (or leaving a ``with`` block) releases every vault's
    handles at once. Thread-safe.
    """

    def __init__(
        self,
        path: str,
        *,
        mounts: MountSide,
        author: tuple[str, str] | None = None,
        keep_open: int = KEEP_OPEN,
        identity: Identity | None = None,
        layers: str | None = None,
        settings: Settings | None = None,
        paths: GuardSource | None = None,
        writer: str | None = None,
    ) -> None:
        """``mounts``: what reaches a live mount of a fork, given to every vault and
        workspace of this home (avfs's is ``avfs_git.mount.side.MOUNT_SIDE``: core never
        imports the mount side). ``layers``: where new workspaces keep their state
        (``auto``: in the home's layers file system where it can be made, :mod:`.layers`;
        ``off``: plain directories); None: the home's ``layers`` setting, else
        ``layers.DEFAULT_MODE``. ``settings``: what the front end read from the environment
        (:meth:`.Settings.from_environ`); None: the defaults, nothing read. ``paths``:
        where forks' path rules come from (avfs's front ends pass
        ``avfs_git.policy.pathsource.POLICY_PATHS``); None: no path rules. ``writer``: who
        writes through this home's workspaces when not the CLI or the API (``mcp``: the MCP
        server), kept with each change they journal (`avfs watch`'s ``source``)."""
        self.path = os.path.abspath(path)
        self.mounts = mounts
        # where forks' path rules come from (avfs's front ends give the policy's
        # POLICY_PATHS; core never imports the policy package); None: no path rules
        self._paths = paths
        self.writer = writer
        self._layers = layers
        # what the front end read from the environment (lock wait, caches, the git token);
        # none given: avfs's defaults (this module never reads the environment itself)
        self.settings = settings if settings is not None else Settings(self.path)
        self.vaults_dir = os.path.join(self.path, "vaults")
        self.trash_dir = os.path.join(self.path, "trash")
        self._vaults: weakref.WeakValueDictionary[str, Vault[Home]] = weakref.WeakValueDictionary()
        self._recent: OrderedDict[str, Vault[Home]] = OrderedDict()
        self._opened_on: dict[str, tuple[int, int] | None] = {}  # each vault's directory (drop_replaced)
        self._keep_open = keep_open
        self._lock = threading.Lock()
        self._author = author
        self.identity = identity  # GIT_AUTHOR_* and friends (see :mod:`.identity`)
        self.layers_attempts = Attempts()  # a failed mount of the layers file system (see layers.py)
        self._on_close: list[Callable[[Home], None]] = []  # (:meth:`on_close`)

    def __enter__(self) -> Home:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the git and SQLite handles of every open vault (see :meth:`Vault.close`;
        a vault still held stays usable and reopens what it needs on next use)."""
        with self._lock:
            vaults, closing, self._on_close = list(self._vaults.values()), self._on_close, []
            self._recent.clear()
        for v in vaults:
            v.close()
        for fn in closing:
            fn(self)

    def on_close(self, fn: Callable[[Home], None]) -> None:
        """Have ``fn(home)`` called at the next :meth:`close` (ops: a process's zygote)."""
        with self._lock:
            self._on_close.append(fn)

    def __repr__(self) -> str:
        return f"Home({self.path!r})"

    @property
    def paths(self) -> GuardSource | None:
        """Where this home's forks get their path rules (``Home(paths=...)``)."""
        return self._paths

    # -- config ---------------------------------------------------------------------------
    @property
    def config_path(self) -> str:
        return os.path.join(self.path, "config.json")

    def config(self) -> dict[str, Any]:
        # (a FIFO there held every command for ever: read without waiting on one)
        data = read_settings(self.config_path)
        if data is None:
            return {}
        try:
            got = json.loads(data)
        except (ValueError, RecursionError) as exc:  # (nested past the stack: was exit 70)
            raise UsageError(
                f"cannot read {self.config_path}: {exc}",
                hint="fix the file, or remove it (it holds the default vault and identity)",
            ) from exc
        if not isinstance(got, dict):  # (a list was exit 70: dict() of it, TypeError)
            raise UsageError(
                f"cannot read {self.config_path}: it holds a JSON {type(got).__name__}, not an object of settings",
                hint="fix the file, or remove it (it holds the default vault and identity)",
            )
        return got

    def set_config(self, **values: Any) -> None:
        cfg = self.config()
        cfg.update(values)
        try:
            os.makedirs(self.path, exist_ok=True)
            tmp = self.config_path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(cfg, fh, indent=2, sort_keys=True)
            os.replace(tmp, self.config_path)
        except OSError as exc:
            raise from_oserror(exc, self.config_path) from exc

    @property
    def layers_mode(self) -> str:
        """``auto`` or ``off``: see the constructor."""
        from . import layers

        if self._layers is not None:
            return self._layers
        given = self.settings.layers  # $AVFS_LAYERS
        if given is not None:
            if given not in layers.MODES:
                raise UsageError(f"AVFS_LAYERS={given!r} is not one of {', '.join(layers.MODES)}")
            return given
        mode = self.config().get("layers")
        return mode if mode in layers.MODES else layers.DEFAULT_MODE

    @property
    def default_vault(self) -> str | None:
        v = self.config().get("default_vault")
        return str(v) if v else None

    def use(self, spec: str) -> tuple[str, str | None]:
        """Make ``VAULT[:FORK]`` the default for commands without ``--vault``."""
        vault_name, fork = names.parse_address(spec)
        vault = self.vault(vault_name)
        if fork is not None:
            vault.set_default_fork(fork)
        self.set_config(default_vault=vault_name)
        return vault_name, fork

    def author(self) -> tuple[str, str] | None:
        if self._author is not None:
            return self._author
        ident = self.config().get("identity")
        if isinstance(ident, dict) and ident.get("name") and ident.get("email"):
            return str(ident["name"]), str(ident["email"])
        return None

    # -- vaults ---------------------------------------------------------------------------
    def vault_path(self, name: str) -> str:
        return os.path.join(self.vaults_dir, names.check_vault_name(name) + ".git")

    def exists(self, name: str) -> bool:
        return os.path.isdir(os.path.join(self.vault_path(name), "objects"))

    def vault(self, name: str) -> Vault[Home]:
        """The handle on vault ``name``: the same object while anything holds it (see
        :class:`Home` for how long handles stay open)."""
        path = self.vault_path(name)
        with self._lock:
            v = self._vaults.get(name)
            if v is None or not os.path.isdir(path):
                if not os.path.isdir(os.path.join(path, "objects")):
                    raise VaultNotFoundError(
                        f"no vault named {name!r} in {self.path}",
                        hint="`avfs vault list` shows the vaults; `avfs vault create NAME` makes one",
                        details={"vault": name, "home": self.path},
                    )
                v = Vault(
                    name,
                    path,
                    mounts=self.mounts,
                    author=self._author,
                    home=self,
                    identity=self.identity,
                    fallback_author=self.author(),
                )
                self._vaults[name] = v
                self._opened_on[name] = _dir_stamp(path)
            recent = self._recent
            recent[name] = v
            recent.move_to_end(name)
            while len(recent) > self._keep_open:
                recent.popitem(last=False)
            return v

    def open_vaults(self) -> list[Vault[Home]]:
        """The vault handles open now (held by a caller, or among the recent ones)."""
        with self._lock:
            return list(self._vaults.values())

    def drop_replaced(self) -> list[str]:
        """Close and forget each open vault handle whose directory is no longer the one it
        was opened on (another process deleted the vault, or deleted it and made one of
        the same name), or whose op log is not the file there now (another vault's files
        moved into its directory; or one made anew in a directory given the old one's inode
        number, which ext4 does): the next :meth:`vault` opens the one there now. A home kept open
        from one call to the next (cli/homekeep.py) asks before each. Returns their names."""
        with self._lock:
            gone = [
                (n, v)
                for n, v in self._vaults.items()
                if _dir_stamp(v.path) != self._opened_on.get(n) or v.oplog.replaced()
            ]
            for n, _ in gone:
                self._vaults.pop(n, None)
                self._recent.pop(n, None)
                self._opened_on.pop(n, None)
        for _, v in gone:
            v.close()
        return [n for n, _ in gone]

    def resolve(self, spec: str | None) -> tuple[Vault[Home], str]:
        """``VAULT[:FORK]`` (or the default vault) -> (vault, fork)."""
        if not spec:
            spec = self.default_vault
            if not spec:
                try:
                    none = not any(n.endswith(".git") for n in os.listdir(self.vaults_dir))
                except OSError as exc:
                    none = isinstance(exc, FileNotFoundError)
                raise UsageError(  # (a first call in a new home was told `vault use VAULT`)
                    "no vault selected" + (f": {self.path} has no vaults yet" if none else ""),
                    hint="make one: `avfs vault create NAME --from DIR`, or `avfs up DIR`"
                    if none
                    else "pass --vault VAULT[:FORK], set AVFS_VAULT, or run `avfs vault use VAULT`",
                )
        vault_name, fork = names.parse_address(spec)
        vault = self.vault(vault_name)
        fork = fork or vault.default_fork
        vault.require_fork(fork)
        return vault, fork

    def list_vaults(self) -> list[VaultInfo]:
        out = []
        try:
            entries = sorted(os.listdir(self.vaults_dir))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise from_oserror(exc, self.vaults_dir) from exc
        default = self.default_vault
        for fn in entries:
            if not fn.endswith(".git") or fn.startswith("."):
                continue
            name = fn[:-4]
            try:
                out.append(self.info(name, default))
            except VaultNotFoundError:
                continue
            except AvfsError as exc:
                # one vault that cannot be read (its default branch's file of junk, its
                # config a FIFO) failed the whole listing: now it is listed with its error,
                # the others around it, as git lists refs around a broken one
                out.append(self._unreadable_vault(name, default, exc))
        return out

    def _unreadable_vault(self, name: str, default: str | None, exc: AvfsError) -> VaultInfo:
        """A listing's entry for vault ``name``, which :meth:`info` could not read: what can
        be read of it without what failed, and the error."""
        path = self.vault_path(name)
        forks: list[str] = []
        default_fork = "main"
        quota = 0
        try:
            v = self.vault(name)
            default_fork, quota = v.default_fork, v.quota_bytes
            forks = v.fork_names()
        except AvfsError:
            pass
        return VaultInfo(
            name=name,
            path=path,
            forks=forks,
            default_fork=default_fork,
            head=None,
            quota_bytes=quota,
            is_default=name == (default if default is not None else self.default_vault),
            error=exc.to_dict(),
        )

    def info(self, name: str, default: str | None = None) -> VaultInfo:
        v = self.vault(name)
        forks = v.fork_names()
        error = None
        try:
            head = refs.read_ref(v.store, refs.fork_ref(v.default_fork))
        except CorruptStateError as exc:
            # the default branch's file of junk failed `vault info` whole (corrupt_state):
            # the rest is listed, the head null with the error, as `vault list` lists it
            head, error = None, exc.to_dict()
        return VaultInfo(
            name=name,
            path=v.path,
            forks=forks,
            default_fork=v.default_fork,
            head=head,  # type: ignore[arg-type]
            quota_bytes=v.quota_bytes,
            is_default=name == (default if default is not None else self.default_vault),
            error=error,
        )

    def _new_vault_dir(self, name: str) -> tuple[str, str]:
        final = self.vault_path(name)
        if os.path.exists(final):
            raise AlreadyExistsError(
                f"vault {name!r} already exists at {final}",
                hint=f"use it (`--vault {name}`; the API's home.vault({name!r})), give another name, or"
                f" `avfs vault delete {name} --force` first (it goes to the trash: `avfs vault restore {name}`)",
                details={"vault": name},
            )
        try:
            os.makedirs(self.vaults_dir, exist_ok=True)
        except FileExistsError as exc:  # (a link to nowhere, a file: was exit 70, "File exists")
            what = (
                f"a link to {os.readlink(self.vaults_dir)}, which does not exist"
                if os.path.islink(self.vaults_dir)
                else "not a directory"
            )
            raise UnusablePathError(
                f"the home's vaults directory {self.vaults_dir} is {what}; nothing was changed",
                hint="make it a directory (or a link to one), or point AVFS_HOME elsewhere",
                details={"path": self.vaults_dir},
            ) from exc
        except OSError as exc:
            raise from_oserror(exc, self.vaults_dir) from exc
        tmp = os.path.join(self.vaults_dir, f".tmp-{name}-{os.getpid()}-{time.monotonic_ns()}")
        return tmp, final

    def clone_vault(
        self,
        url: str | os.PathLike[str],
        name: str,
        *,
        progress: ProgressFn | None = None,
        lazy: bool = False,
        warnings: list[str] | None = None,
    ) -> Vault[Home]:
        """A new vault ``name`` from the git repository at ``url`` (any URL git accepts):
        its branches become forks, its tags and named checkpoints come along, and it gets
        ``origin`` (without credentials) to push and pull. Nothing is kept on failure.

        ``lazy``: a partial clone, commits and trees only; blobs come from ``origin`` as
        they are read (docs/lazy.md). A server that cannot filter gives a whole vault and
        a sentence in ``warnings``."""
        from ..store.redact import redact, split_credentials
        from ..store.transport import anchored
        from . import cloning, importer

        url = anchored(want_path(url, "url"))  # a local repository may be a Path; stored absolute
        names.check_vault_name(name)
        if any(ord(c) < 32 for c in url) or cloning.not_text(url):
            raise UsageError(f"{url!r} is no URL: it holds a control character or is not UTF-8 text")
        tmp, final = self._new_vault_dir(name)

        def first_commit() -> None:  # (an empty repository: fork main's, as a new vault's)
            ident = Identity.of(*self._author) if self._author is not None else self.identity
            importer.initial_commit(tmp, name, GitStore(tmp).signature(ident, self.author()))

        lazily = cloning.fill_vault(
            tmp, final, url, name, progress=progress, lazy=lazy, warnings=warnings,
            token=self.settings.git_token, home_path=self.path, template_ahead=self.layers_mode == "off",
            first_commit=first_commit,
        )  # fmt: skip
        vault = self.vault(name)
        if lazily:  # (its promisor as the clone wrote it: no git process to read it back)
            vault.store.promisor.configured("origin", split_credentials(url)[0])
        # no sizes asked here: they grow with the files, and a mount asks them once it
        # answers (fuse/settle.py; docs/lazy.md)
        summary = f"clone vault {name} {'lazily ' if lazily else ''}from {redact(url)}"
        try:  # (all or nothing: this record is what prune dates the clone's branches by)
            vault.oplog.record("vault_create", summary, fork=vault.default_fork)
        except NoSpaceError:
            from ..store.deeptree import rmtree

            self._vaults.pop(name, None)
            vault.close()
            os.rename(final, tmp)
            rmtree(tmp, ignore_errors=True)
            raise no_space(self.path) from None
        if self.default_vault is None:
            self.set_config(default_vault=name)
        return vault

    def create_vault(
        self,
        name: str,
        *,
        from_dir: str | os.PathLike[str] | None = None,
        progress: Progress | None = None,
        use_gitignore: bool = True,
    ) -> Vault[Home]:
        """Create vault ``name``: empty (fork ``main`` with an initial commit), or imported
        from a directory (a git checkout brings its history and uncommitted changes)."""
        names.check_vault_name(name)
        if from_dir is not None:
            from_dir = want_path(from_dir, "from_dir")
        from . import importer

        if from_dir is not None:
            importer.check_not_holding_home(self.path, from_dir)
        tmp, final = self._new_vault_dir(name)

        try:
            os.makedirs(tmp)
            importer.init_vault(tmp)
            # the identity the vault's commits will have (git's order, see :mod:`.identity`)
            ident = Identity.of(*self._author) if self._author is not None else self.identity
            author = GitStore(tmp).signature(ident, self.author())
            if from_dir is None:
                importer.initial_commit(tmp, name, author)
                pending = None
            else:
                pending = importer.import_dir(
                    tmp, from_dir, author, progress=progress, use_gitignore=use_gitignore
                )
            importer.move_into_place(tmp, final, name)
        except OSError as exc:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise from_oserror(exc, tmp) from exc
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise
        vault = self.vault(name)
        if pending is not None:
            fork, items = pending
            importer.apply_worktree_changes(vault.workspace(fork), from_dir or "", items)
        tip = refs.read_ref(vault.store, refs.fork_ref(vault.default_fork))
        if from_dir is not None:  # the directory and commit `avfs up DIR` adopts (ops/origin.py)
            vault.set_config(imported={"dir": os.path.realpath(from_dir), "commit": tip})
        vault.oplog.record(
            "vault_create",
            f"create vault {name}" + (f" from {from_dir}" if from_dir else ""),
            fork=vault.default_fork,
            refs=[{"ref": refs.fork_ref(vault.default_fork), "old": None, "new": tip}],
        )
        if self.default_vault is None:
            self.set_config(default_vault=name)
        return vault

    def delete_vault(self, name: str, *, force: bool = False) -> str:
        """Move a vault to the home's trash (:meth:`restore_vault` brings it back)."""
        path = self.vault_path(name)
        if not self.exists(name):  # (as every other command says it: the home, a hint)
            self.vault(name)
        if not force:
            raise UsageError(
                f"refusing to delete vault {name!r} without --force",
                hint=f"`avfs vault delete {name} --force` (`avfs vault restore {name}` brings it back)",
            )
        vault = self.vault(name)
        vault.refuse_if_mounted()  # (mounts kept warm asked to go: before any lock, as a fork's delete)
        self._refuse_other_file_system(name, path)
        # the vault's mount gate, which every mount's start holds (shared) until its daemon
        # is recorded, and the check again under it: a mount started since the first check
        # is refused here, one starting later waits and then finds no vault (the gate goes
        # to the trash with it: ops/mounts.py). Found in the thirty-fourth round: the check
        # ran with no lock, and a mount whose start was under way (its daemon not yet
        # recorded) came up on a vault moved to the trash beneath it
        os.makedirs(os.path.join(vault.state_dir, "locks"), exist_ok=True)
        gate = ((mount_gate_path(vault.state_dir), f"the mounts of vault {name}"),)
        with FileLocks(gate, vault.lock_wait_s):
            vault.refuse_if_mounted(release=False)
            with self._lock:
                v = self._vaults.pop(name, None)
                self._recent.pop(name, None)
            if v is not None:
                v.close()
            try:
                os.makedirs(self.trash_dir, exist_ok=True)
                dest = os.path.join(
                    self.trash_dir,
                    f"{name}.{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.{time.monotonic_ns() % 10**6:06d}.git",
                )
                os.rename(path, dest)
            except OSError as exc:
                raise from_oserror(exc, path) from exc
        if self.default_vault == name:
            self.set_config(default_vault=None)
        return dest

    def _refuse_other_file_system(self, name: str, path: str) -> None:
        """A delete moves the vault into the home's trash by a rename, which cannot cross
        file systems: a home whose ``vaults/`` is a link to another one (a bigger disk)
        failed exit 70 ("Invalid cross-device link") after making the trash. Refused
        before anything is made, in words."""
        try:
            other = os.stat(path).st_dev != os.stat(self.path).st_dev
        except OSError:
            return  # (the rename says what is wrong)
        if other:
            raise UnusablePathError(
                f"vault {name!r} ({os.path.realpath(path)}) is on another file system than the home's"
                f" trash {self.trash_dir}: a delete moves the vault there, which cannot cross file"
                " systems; nothing was changed",
                hint=f"link the whole home to the other disk rather than its vaults/ ({self.vaults_dir}),"
                " or move the vault's directory away yourself",
                details={"vault": name, "path": path, "trash": self.trash_dir},
            )

    def deleted_vaults(self) -> list[tuple[str, str]]:
        """(name, trash path) of deleted vaults, newest first."""
        try:
            entries = os.listdir(self.trash_dir)
        except FileNotFoundError:
            return []
        out = []
        for fn in entries:
            if fn.endswith(".git") and fn.count(".") >= 3:
                out.append((fn.split(".", 1)[0], os.path.join(self.trash_dir, fn)))
        out.sort(key=lambda x: x[1], reverse=True)
        return out

    def restore_vault(self, name: str) -> Vault[Home]:
        names.check_vault_name(name)
        if self.exists(name):
            raise AlreadyExistsError(f"vault {name!r} exists; delete or rename it first")
        for n, path in self.deleted_vaults():
            if n == name:
                try:
                    os.makedirs(self.vaults_dir, exist_ok=True)
                    os.rename(path, self.vault_path(name))
                except OSError as exc:
                    raise from_oserror(exc, path) from exc
                return self.vault(name)
        raise VaultNotFoundError(f"no deleted vault named {name!r} in the trash", details={"vault": name})


__all__ = ["EMPTY_TREE", "Home", "git_env", "run_git"]
