"""The MCP tools as plain calls on one home (:class:`AvfsTools`); their input and output
schemas are :mod:`.toolspecs`; no MCP here (the protocol is :mod:`.server`).

Each tool calls one library function and answers with the very document the CLI's
``--json`` prints for that operation (built the same way, through
:func:`avfs_git.core.types.json_document`). Each tool declares an explicit input schema
(required arguments, types, no extra properties) and, as its output schema, the
``docs/schemas/<kind>.schema.json`` of that document, bundled into one self-contained schema
(MCP clients resolve no ``$ref`` across files).

Failures are data: bad arguments (schema errors), an unknown vault or fork, a path that
leaves the workspace, any :class:`AvfsError` are raised here and come back from the server
as a tool result with ``isError`` whose text is the avfs error document (``kind: "error"``:
code, message, hint, details). ``exec`` answers every request it can form with the
``proxy_exec_result`` envelope, a denial or an approval request included: a
``require_approval`` decision returns its token to the client and is never approved here
(see :mod:`avfs_git.proxy.approval`). A person approves it out of band, in a terminal
(``avfs proxy approve TOKEN``); then the client calls ``exec`` again with ``approve:
TOKEN``. The agent cannot approve its own request, unless the server was started with
``--client-approves`` (for clients whose own permission prompt is the human gate).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.errors import AvfsError, InvalidPathError, IsDirectoryError, PathNotFoundError, UsageError
from ..core.types import json_document
from .toolspecs import (
    TOOLS,
    TOOLS_BY_NAME,
    ToolSpec,
)

if TYPE_CHECKING:
    from ..core.settings import Settings
    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault


# The hints of the errors a tool meets most, in tools: the library's name CLI commands
# ("see `avfs --vault V vault info` for its forks"), which an agent that has only this
# server cannot run.
_TOOL_HINTS = {
    "fork_not_found": "the fork_list tool lists the vault's forks; the fork tool makes one",
    "vault_not_found": "the vault_list tool lists the vaults (this server makes none:"
    " `avfs vault create NAME --from DIR` in a terminal does)",
    "revision_not_found": "use a checkpoint name (FORK:NAME for another fork's), a fork name or a"
    " commit id: the checkpoint_list tool lists the checkpoints, log with `all: true` the commits",
}


# the argument names other tools and the CLI use, to the one a tool here takes (h-polish4's
# trial guessed each); else a name one begins, or difflib's close one
_ARGUMENT_NAMES = {
    "command": ("argv", "shell"),
    "cmd": ("argv", "shell"),
    "args": ("argv",),
    "text": ("content",),
    "data": ("content",),
    "from": ("source",),
    "branch": ("fork", "source"),
    "name": ("rev",),
    "revision": ("rev",),
    "checkpoint": ("rev",),
}


def _meant(given: str, takes: list[str]) -> str:
    """``did you mean ...? `` for an unknown argument ``given`` of a tool taking ``takes``."""
    import difflib

    close = [a for a in _ARGUMENT_NAMES.get(given, ()) if a in takes]
    close = close or [a for a in takes if given and a.startswith(given)]
    close = close or difflib.get_close_matches(given, takes, n=2, cutoff=0.6)
    return f"did you mean {' or '.join(f'`{c}`' for c in close)}? " if close else ""


# -- the tools (run on the avfs thread) -----------------------------------------------------
class AvfsTools:
    """The tools as plain calls on one home; no MCP here. :meth:`call` validates the
    arguments and returns the JSON document, or raises :class:`AvfsError`."""

    def __init__(
        self,
        home_path: str | None = None,
        default: str | None = None,
        *,
        client_approves: bool = False,
        settings: Settings | None = None,
    ) -> None:
        self.home_path = home_path
        self.settings = settings  # what the front end read from the environment (None: ours)
        self.default = default  # VAULT[:FORK] from --vault
        # --client-approves: exec accepts a token without `avfs proxy approve` (the client's
        # own permission prompt is the human gate)
        self.client_approves = client_approves
        self._home: Home | None = None
        self._validators: dict[str, Any] = {}

    def twin(self) -> AvfsTools:
        """Another instance on the same home, for another thread (its own :class:`Home`, as
        another avfs process would have)."""
        return AvfsTools(
            self.home_path, self.default, client_approves=self.client_approves, settings=self.settings
        )

    @property
    def home(self) -> Home:
        if self._home is None:
            from ..mount.side import open_home

            # what its tools write is labelled `mcp` in `avfs watch`
            self._home = open_home(self.home_path, settings=self.settings, writer="mcp")
        return self._home

    def call(self, name: str, arguments: dict[str, Any] | None, cancel: threading.Event | None = None) -> str:
        """Run tool ``name``; returns its JSON document's text."""
        spec = TOOLS_BY_NAME.get(name)
        if spec is None:
            import difflib

            # (`read`, `write`, `fork_create`: a name close to one, or a part of one, said
            # first; h-polish3's trial read the whole list for `read_file`)
            close = [
                t.name for t in TOOLS if name and (name in t.name.split("_") or t.name in name.split("_"))
            ]
            close = close or difflib.get_close_matches(name, [t.name for t in TOOLS], n=2, cutoff=0.6)
            said = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
            raise UsageError(
                f"unknown tool {name!r}",
                hint=said + "tools/list names the tools: " + ", ".join(t.name for t in TOOLS),
                details={"tool": name},
            )
        args = dict(arguments or {})
        self._validate(spec, args)
        handler: Callable[..., dict[str, Any]] = getattr(self, "_t_" + name)
        try:
            data = handler(args, cancel) if name == "exec" else handler(args)
        except AvfsError as err:
            named = err.details.get("suggestions") if err.code == "fork_not_found" else None
            err.hint = _TOOL_HINTS.get(err.code, err.hint)
            if "`avfs " in f"{err.hint}{err.message}":  # (a CLI command named: the tool's, h-polish5)
                from ..proxy.apidoor import fit_error

                fit_error(err, "mcp")
            if named:  # (`main` where the default fork is `master`: core/vaults/lostfork.py)
                err.hint = f"did you mean {' or '.join(repr(s) for s in named)}? {err.hint}"
            if name == "fork" and err.code == "already_exists" and err.hint is None:
                err.hint = "the fork exists: name it as `fork` to work in it, or give another `name`"
            raise
        return json_document(spec.kind, data)

    def _validate(self, spec: ToolSpec, args: dict[str, Any]) -> None:
        from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
        from jsonschema.exceptions import best_match  # type: ignore[import-untyped]

        validator = self._validators.get(spec.name)
        if validator is None:
            validator = Draft202012Validator(spec.input_schema())
            self._validators[spec.name] = validator
        err = best_match(validator.iter_errors(args))
        if err is not None:
            said = ""  # a did-you-mean, said before the hint
            where = "/".join(str(p) for p in err.absolute_path)
            at = f"{where}: " if where else ""  # where in the arguments (none: the whole)
            if err.validator == "oneOf" and not where and spec.one_of:
                err.message = "give exactly one of " + " or ".join(
                    " and ".join(f"`{a}`" for a in group) for group in spec.one_of
                )
            elif err.validator in ("additionalProperties", "required") and not where:
                # name the argument (details.argument was null for these two), and what the
                # tool takes: an agent's next call needs it
                takes = list(spec.input_schema().get("properties", {}))
                if err.validator == "required":
                    where = next((a for a in err.validator_value if a not in args), "")
                    err.message = f"missing required argument `{where}`"
                else:
                    where = next((a for a in args if a not in takes), "")
                    err.message = f"unknown argument `{where}`"
                    said = _meant(where, takes)
                err.message += "; it takes " + (", ".join(f"`{a}`" for a in takes) or "no arguments")
            elif where == "argv" and isinstance(args.get("argv"), str):  # (h-polish4's trial)
                said = f"`argv` is a list of words ({args['argv'].split()!r}), or give `shell`: {args['argv']!r}; "
            raise UsageError(
                f"invalid arguments for {spec.name}: {at}{err.message}",
                hint=said + "see the tool's input schema (tools/list)",
                details={"tool": spec.name, "argument": where or None, "schema_error": err.validator},
            )

    # -- resolving the fork ------------------------------------------------------------------
    def _target(self, args: dict[str, Any]) -> tuple[Vault, str]:
        """The vault and fork a call acts on: its ``vault`` (``VAULT`` or ``VAULT:FORK``) and
        ``fork``, else the server's ``--vault``, else the home's default vault. The
        ``--vault`` fork stays the default for that vault even when a call names it."""
        from ..core.store import names

        default_vault, default_fork = names.parse_address(self.default) if self.default else (None, None)
        vault_arg: str | None = args.get("vault")
        fork_arg: str | None = args.get("fork")
        if vault_arg is None:
            vault_name = default_vault or self.home.default_vault
            if vault_name is None:
                if not self.home.list_vaults():  # (a new home was told `vault use VAULT` of none)
                    raise UsageError(
                        f"no vault selected: {self.home.path} has no vaults yet",
                        hint="make one with the CLI (this server has no tool that makes vaults):"
                        " `avfs vault create NAME --from DIR`, then pass `vault`",
                    )
                raise UsageError(
                    "no vault selected",
                    hint="pass `vault`, start the server with --vault VAULT[:FORK], or run `avfs vault use VAULT`",
                )
            named_fork = None
        else:
            vault_name, named_fork = names.parse_address(vault_arg)
            if named_fork is not None and fork_arg is not None:
                raise UsageError("give the fork either as `fork` or in `vault` (VAULT:FORK), not both")
        fork = fork_arg or named_fork or (default_fork if vault_name == default_vault else None)
        return self.home.resolve(f"{vault_name}:{fork}" if fork else vault_name)

    def _workspace_ref(self, vault: Vault, fork: str) -> dict[str, Any]:
        return {"vault": vault.name, "fork": fork}

    # -- vaults and forks --------------------------------------------------------------------
    def _t_vault_list(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"home": self.home.path, "vaults": self.home.list_vaults()}

    def _t_fork_list(self, args: dict[str, Any]) -> dict[str, Any]:
        vault, _ = self._target({"vault": args.get("vault")})
        return {"vault": self.home.info(vault.name), "forks": vault.forks()}

    def _t_fork(self, args: dict[str, Any]) -> dict[str, Any]:
        vault, source = self._target(args)
        made = vault.fork(source, args["name"], ignored=args.get("ignored", True))
        return {"fork": made.fork, "source": source, "ignored": made.ignored}

    # -- files -------------------------------------------------------------------------------
    def _t_status(self, args: dict[str, Any]) -> dict[str, Any]:
        vault, fork = self._target(args)
        return {**self._workspace_ref(vault, fork), **vault.workspace(fork).status_report()}

    def _t_changes_since(self, args: dict[str, Any]) -> dict[str, Any]:
        from ..core.vaults.changes import changes_since

        vault, one = self._target(args)
        fork = None if args.get("all") else one
        got = changes_since(vault, fork, args.get("cursor"))
        return {
            "vault": vault.name,
            "fork": fork,
            "events": [e.to_dict() for e in got.events],
            "cursor": got.cursor,
            "more": got.more,
        }

    def _t_read_file(self, args: dict[str, Any]) -> dict[str, Any]:
        from ..core.store import names

        vault, fork = self._target(args)
        # a name git holds that is not UTF-8, as list_files gave it (a lone surrogate of
        # surrogateescape's, "\udce9"): read as the mounts read it (was invalid_path)
        path = names.norm_path(args["path"], text=False)
        blob: str | None
        if "rev" in args:
            from ..core.operations import history
            from ..core.store.gitstore import blob_id

            data = history.read_at(vault, fork, args["rev"], path)
            blob = blob_id(data)
        else:
            ws = vault.workspace(fork)
            ws.check_shown(path, "read_file")
            try:
                data = ws.read(path)
            except PathNotFoundError as err:
                from ..core.workspace.nearby import near

                d, close = near(ws, path)
                said = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
                where = f"`path: {d!r}`" if d else "no `path`, the root"
                err.hint = f"{said}the list_files tool with {where} lists what is there"
                raise
            except IsDirectoryError as err:
                err.hint = err.hint or f"a directory: the list_files tool with `path: {path!r}` lists it"
                raise
            blob = ws.blob_of(path)
        try:
            entry = {"path": path, "encoding": "utf-8", "content": data.decode("utf-8"), "size": len(data)}
        except UnicodeDecodeError:
            entry = {
                "path": path,
                "encoding": "base64",
                "content": base64.b64encode(data).decode(),
                "size": len(data),
            }
        entry["blob"] = blob
        return {**self._workspace_ref(vault, fork), "files": [entry]}

    def _t_write_file(self, args: dict[str, Any]) -> dict[str, Any]:
        vault, fork = self._target(args)
        content: str = args["content"]
        if args.get("encoding", "utf-8") == "base64":
            import binascii

            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise UsageError(f"`content` is not valid base64: {exc}") from None
        else:
            try:
                data = content.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError as exc:
                raise UsageError(
                    f"`content` is not valid Unicode text: it holds a lone surrogate"
                    f" ({content[exc.start : exc.end]!r} at character {exc.start})",
                    hint='send bytes that are not UTF-8 text with `encoding: "base64"`',
                    details={"tool": "write_file", "argument": "content"},
                ) from None
        executable: bool | None = args.get("executable")
        mode = None if executable is None else (0o100755 if executable else 0o100644)
        ws = vault.workspace(fork)
        st, blob = ws.write_blob(args["path"], data, mode=mode, expect=args.get("expect"))
        from ..core.store.names import git_state_name

        if any(git_state_name(c) is not None for c in st.path.split("/")):
            from ..mount.stagedplant import keep_shown  # (a staged file there: gitmodel29)

            keep_shown(ws, [st.path])
        return {**self._workspace_ref(vault, fork), "stat": st, "blob": blob}

    def _t_list_files(self, args: dict[str, Any]) -> dict[str, Any]:
        from ..core.store import names
        from ..core.types import DirEntry, NodeKind

        vault, fork = self._target(args)
        ws = vault.workspace(fork)
        path = args.get("path", "")
        ws.check_shown(path, "list_files")
        st = ws.stat(path, follow=True)
        if st.kind is not NodeKind.DIR:  # a file: list it alone, like `ls FILE`
            one = ws.stat(path, follow=False)
            entries = [DirEntry(names.basename(one.path), one.path, one.kind, one.mode, one.size)]
            shown = names.norm_path(path, text=False)
        else:
            entries = ws.listdir(path, sizes=True)
            if (visible := ws.visible_filter()) is not None:
                entries = [e for e in entries if visible(e.path, e.kind)]
            shown = st.path
        return {**self._workspace_ref(vault, fork), "path": shown, "entries": entries}

    def _t_hydrate(self, args: dict[str, Any]) -> dict[str, Any]:
        from ..core.operations.hydrate import hydrate

        vault, fork = self._target(args)
        return hydrate(vault, fork, list(args.get("paths") or [])).to_json()

    def _t_grep(self, args: dict[str, Any]) -> dict[str, Any]:
        from ..core.operations import search

        vault, fork = self._target(args)
        files_only = args.get("files_only", False)
        res = search.grep(
            vault.workspace(fork),
            args["pattern"],
            list(args.get("paths", [])),
            rev=args.get("rev"),
            ignore_case=args.get("ignore_case", False),
            fixed=args.get("fixed", False),
            files_only=files_only,
        )
        return {  # as `avfs --json grep`
            **self._workspace_ref(vault, fork),
            "rev": res.rev,
            "pattern": args["pattern"],
            "mode": "files" if files_only else "lines",
            "files": res.files,
            "matches": sum(f.count or 0 for f in res.files),
            "files_matched": len(res.files),
            "files_searched": res.files_searched,
            "binary_skipped": res.binary_skipped,
        }

    # -- checkpoints and history -------------------------------------------------------------
    def _t_checkpoint_save(self, args: dict[str, Any]) -> dict[str, Any]:
        from ..core.operations import checkpoint
        from ..mount.stagedplant import taken_for  # (what the index patch put back, review40)

        vault, fork = self._target(args)
        taken_for(vault, fork)  # (an earlier call's: not this one's)
        res = checkpoint.save(
            vault, fork, args.get("name"), args.get("message"), rebase=args.get("rebase", True)
        )
        return {
            "checkpoint": res.checkpoint,
            "created": res.created,
            "op_id": res.op_id,
            "not_recorded": res.not_recorded,
            "kept_open": res.kept_open,
            "index_put_back": taken_for(vault, fork),
        }

    def _t_checkpoint_list(self, args: dict[str, Any]) -> dict[str, Any]:
        from ..core.operations import checkpoint

        vault, fork = self._target(args)
        items = checkpoint.list_checkpoints(
            vault, fork, all_commits=args.get("all", False), limit=args.get("limit", 100)
        )
        return {**self._workspace_ref(vault, fork), "checkpoints": items}

    def _t_checkpoint_restore(self, args: dict[str, Any]) -> dict[str, Any]:
        from ..core.operations import checkpoint

        vault, fork = self._target(args)
        return {"restore": checkpoint.restore(vault, fork, args["rev"])}

    def _t_undo(self, args: dict[str, Any]) -> dict[str, Any]:
        from ..core.operations import checkpoint

        vault, _ = self._target({"vault": args.get("vault")})
        res = checkpoint.undo(vault, args.get("op_id"))
        return {
            "undone": res.undone,
            "op_id": res.op_id,
            "recovery_ref": res.recovery_ref,
            "kept_open": res.kept_open,
        }

    def _t_log(self, args: dict[str, Any]) -> dict[str, Any]:
        from ..core.operations import history

        vault, fork = self._target(args)
        all_forks = args.get("all", False)
        commits = history.log(vault, fork, all_forks=all_forks, limit=args.get("limit"), rev=args.get("rev"))
        return {**self._workspace_ref(vault, fork), "all": all_forks, "commits": commits}

    def _t_diff(self, args: dict[str, Any]) -> dict[str, Any]:
        from ..core.operations import history

        old, new = args.get("old"), args.get("new")
        if new is not None and old is None:
            raise UsageError("`new` needs `old`", hint="give `old` alone to compare it with the workspace")
        vault, fork = self._target(args)
        result = history.diff(vault, fork, old, new, list(args.get("paths", [])))
        data: dict[str, Any] = {
            **self._workspace_ref(vault, fork),
            "old": result.old,
            "new": result.new,
            "changes": result.changes,
        }
        fmt = args.get("format", "patch")
        if fmt == "stat":
            data["stat"] = [
                {"path": p, "insertions": i, "deletions": d, "binary": b}
                for p, i, d, b in history.diff_stat(vault, result, fork)
            ]
        elif fmt == "patch":
            data["patch"] = history.patch_text(vault, result, fork, args.get("context", 3))
        return data

    def _t_merge(self, args: dict[str, Any]) -> dict[str, Any]:
        from ..core.operations import merge
        from ..mount.stagedplant import taken_for

        vault, target = self._target(args)
        source: str = args["source"]  # a fork, or a fetched remote branch (merge.remote_branch)
        taken_for(vault, target)  # (an earlier call's: not this merge's)
        res = merge.merge(
            vault,
            source,
            target,
            no_ff=args.get("no_ff", False),
            dry_run=args.get("dry_run", False),
            favor=args.get("favor"),
            write_conflicts=args.get("write_conflicts", False),
            allow_unrelated=args.get("allow_unrelated", False),
            capture=args.get("capture", True),
            message=args.get("message"),
        )
        return {**self._merge_document(vault.name, target, res), "index_put_back": taken_for(vault, target)}

    def _t_merge_continue(self, args: dict[str, Any]) -> dict[str, Any]:
        from ..core.operations import merge

        vault, target = self._target(args)
        if args.get("abort", False):
            res = merge.merge_abort(vault, target)
        else:
            res = merge.merge_continue(vault, target, message=args.get("message"))
        return self._merge_document(vault.name, target, res)

    @staticmethod
    def _merge_document(vault: str, target: str, res: Any) -> dict[str, Any]:
        conflicted = res.status in ("conflicts", "conflicts_written", "would_conflict")
        return {"vault": vault, "target": target, "results": [res], "conflicted": conflicted, "error": None}

    # -- exec --------------------------------------------------------------------------------
    def _t_exec(self, args: dict[str, Any], cancel: threading.Event | None) -> dict[str, Any]:
        import contextlib
        import subprocess
        import tempfile

        from ..core.store import names
        from ..proxy.envelope import ExecRequest
        from ..proxy.execute import execute

        cwd: str = args.get("cwd", "")
        if cwd.startswith("/"):
            raise InvalidPathError(
                f"`cwd` {cwd!r} is absolute: give a directory relative to the workspace root",
                details={"cwd": cwd},
            )
        names.norm_path(cwd)  # refuses '..' before anything is decided
        vault, fork = self._target(args)
        with contextlib.ExitStack() as stack:
            feed: Any = subprocess.DEVNULL
            if "stdin" in args:
                feed = stack.enter_context(tempfile.TemporaryFile())
                feed.write(args["stdin"].encode("utf-8", "surrogateescape"))
                feed.seek(0)
            req = ExecRequest(
                argv=tuple(args["argv"]) if "argv" in args else None,
                shell=args.get("shell"),
                cwd=cwd,
                timeout_ms=args.get("timeout_ms"),
                max_output_bytes=args.get("max_output_bytes"),
                checkpoint=args.get("checkpoint", "auto"),
                commit=args.get("commit", True),
                mode=args.get("mode", "auto"),
                keep_mount=args.get("keep_mount", False),
                env=tuple(sorted(args.get("env", {}).items())),
                approve=args.get("approve"),
                stdin=feed,
                # the client (the agent) got the token itself: a person must have approved it
                # out of band (`avfs proxy approve TOKEN`), unless --client-approves
                require_person_approval=not self.client_approves,
            )
            # never approves on its own: `approve` is only ever what the client sent
            res = execute(self.home, vault, fork, req, cancel=cancel)
        return res.to_dict()


__all__ = ["AvfsTools"]
