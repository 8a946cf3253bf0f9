"""The ``--json`` contract: every document the CLI prints is one JSON document on stdout,
has ``schema_version`` and ``kind``, and validates against ``docs/schemas/<kind>.schema.json``.

Documents come from real CLI runs (in process through the ``cli`` fixture, and a few as a
real process through ``cli_proc``). Every schema file is exercised: ``test_kind`` is
parametrized over the schema files themselves, and fails unless its scenario produced a
document of that kind.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from avfs_git.core.errors import AvfsError
from avfs_git.core.vaults import layers

from .conftest import CliResult

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "docs" / "schemas"
CLI_DIR = ROOT / "avfs_git" / "cli"
COMMON = "common"

Json = dict[str, Any]


# -- schemas ---------------------------------------------------------------------------------


def _schema_files() -> dict[str, Path]:
    return {p.name.removesuffix(".schema.json"): p for p in sorted(SCHEMA_DIR.glob("*.schema.json"))}


SCHEMA_KINDS = sorted(k for k in _schema_files() if k != COMMON)


@functools.cache
def _registry() -> Registry[Any]:
    """Every schema file under its file:// URI, so relative $refs resolve locally (no network)."""
    resources = []
    for path in _schema_files().values():
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((path.as_uri(), Resource.from_contents(contents, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


@functools.cache
def _validator(kind: str) -> Draft202012Validator:
    uri = (SCHEMA_DIR / f"{kind}.schema.json").as_uri()
    return Draft202012Validator(
        {"$ref": uri}, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def _exit_codes() -> dict[str, int]:
    """error code -> exit status, from the AvfsError hierarchy itself."""
    out: dict[str, int] = {}
    todo: list[type[AvfsError]] = [AvfsError]
    while todo:
        cls = todo.pop()
        out[cls.code] = cls.exit_code
        todo.extend(cls.__subclasses__())
    return out


# -- running the CLI -------------------------------------------------------------------------


def single_document(res: CliResult) -> Json:
    """stdout holds exactly one JSON document, on one line, and nothing else."""
    try:
        text = res.out_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:  # pragma: no cover - failure message only
        raise AssertionError(f"stdout is not UTF-8: {res.out_bytes!r}") from exc
    assert text, f"nothing on stdout (exit {res.code}); stderr: {res.err!r}"
    assert text.endswith("\n") and text.count("\n") == 1, f"expected one line on stdout, got {text!r}"
    try:
        doc, end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"stdout is not a JSON document: {text!r}") from exc
    assert text[end:] == "\n", f"trailing output after the JSON document: {text[end:]!r}"
    assert isinstance(doc, dict), f"the document is not an object: {doc!r}"
    return doc


def validate(doc: Json) -> str:
    assert doc.get("schema_version") == 1, doc
    kind = doc.get("kind")
    assert isinstance(kind, str), doc
    assert kind in SCHEMA_KINDS, f"kind {kind!r} has no schema in docs/schemas/"
    errors = sorted(_validator(kind).iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, (
        f"{kind} document does not match its schema:\n"
        + "\n".join(f"  at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)
        + f"\ndocument: {json.dumps(doc)[:2000]}"
    )
    return kind


def check(res: CliResult) -> Json:
    """One document on stdout, valid against its kind's schema, exit status agreeing with it."""
    doc = single_document(res)
    kind = validate(doc)
    if kind == "error":
        code = doc["error"]["code"]
        assert res.code == _exit_codes()[code], f"{code} exits {res.code}: {doc}"
    elif kind == "merge" and doc.get("error"):
        assert res.code == _exit_codes()[doc["error"]["code"]], f"merge stopped by an error exits {res.code}"
    elif kind in ("merge", "pull") and doc["conflicted"]:
        assert res.code == 3, f"a merge with conflicts exits {res.code}: {doc}"
    elif kind == "proxy_exec_result":
        assert res.code == doc["exit_code"], f"proxy exec exits {res.code}: {doc}"
    else:
        assert res.code == 0, f"{kind} with exit {res.code}: {doc}; stderr: {res.err!r}"
    return doc


class Session:
    """Runs ``avfs --json ...`` in process and validates every document it gets back."""

    def __init__(self, cli: Callable[..., CliResult], tmp: Path) -> None:
        self._cli = cli
        self.tmp = tmp
        self.kinds: list[str] = []

    def __call__(self, *args: str, stdin: bytes = b"", kind: str | None = None) -> Json:
        doc = check(self._cli("--json", *args, stdin=stdin))
        self.kinds.append(doc["kind"])
        if kind is not None:
            assert doc["kind"] == kind, doc
        return doc

    def raw(self, *args: str) -> CliResult:
        return self._cli("--json", *args)

    def error(self, *args: str, code: str) -> Json:
        doc = self(*args, kind="error")
        assert doc["error"]["code"] == code, doc
        return doc


_TEMPLATE: list[Path] = []  # the fixture's avfs home, built once (in the first test's hermetic env)


@pytest.fixture
def s(cli: Callable[..., CliResult], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Session:
    """A vault `v` (the default) whose fork main has a checkpoint `base` holding
    a.txt, sub/b.txt, link -> a.txt.

    The home is built through the CLI once, then copied for each test (a copy costs a few
    ms, building it ~150 ms); the home holds no absolute paths. A home with a layers file
    system is built for each test.
    """
    sess = Session(cli, tmp_path)
    home = Path(os.environ["AVFS_HOME"])
    if _TEMPLATE:
        shutil.copytree(_TEMPLATE[0], home)
    else:
        sess("vault", "create", "v", "--use", kind="vault_create")
        sess("write", "a.txt", "hello\n", kind="file_write")
        sess("write", "sub/b.txt", "b\n", kind="file_write")
        sess("ln", "-s", "a.txt", "link", kind="file_op")
        sess("checkpoint", "save", "base", kind="checkpoint")
        if (home / layers.IMAGE).exists():
            # its state dirs are subvolumes of the home's layers file system (core/vaults/layers.py),
            # which a copy of the directory does not carry: each test builds its own
            sess.kinds.clear()
            return sess
        needle = str(home).encode()
        assert not [f for f in home.rglob("*") if f.is_file() and needle in f.read_bytes()], (
            "the avfs home names its own path: it cannot be copied"
        )
        template = tmp_path_factory.mktemp("json-schemas") / "avfs-home"
        shutil.copytree(home, template)
        _TEMPLATE.append(template)
        sess.kinds.clear()
    return sess


# -- one scenario per kind -------------------------------------------------------------------


def _vault_create(s: Session) -> None:
    src = s.tmp / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "x.txt").write_text("x\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    doc = s("vault", "create", "imported", "--from", str(src), kind="vault_create")
    assert doc["vault"]["name"] == "imported" and doc["dirty"] is False
    s("vault", "create", "empty", kind="vault_create")


def _vault_list(s: Session) -> None:
    s("vault", "create", "other", kind="vault_create")
    doc = s("vault", "list", kind="vault_list")
    assert [v["name"] for v in doc["vaults"]] == ["other", "v"]
    s("--home", str(s.tmp / "fresh-home"), "vault", "list", kind="vault_list")


def _vault_info(s: Session) -> None:
    s("write", "dirty.txt", "x", kind="file_write")
    s("vault", "fork", "v:main", "f1", kind="fork_create")
    doc = s("vault", "info", kind="vault_info")
    assert {f["name"]: f["dirty"] for f in doc["forks"]} == {"main": True, "f1": True}
    s("vault", "info", "v", kind="vault_info")


def _vault_use(s: Session) -> None:
    s("vault", "fork", "v:main", "f1", kind="fork_create")
    assert s("vault", "use", "v:f1", kind="vault_use")["fork"] == "f1"
    s("vault", "fork", "v:f1", "f2", kind="fork_create")
    assert s("vault", "use", "v", kind="vault_use")["fork"] == "f1"  # `use v:f1` made f1 v's default


def _vault_path(s: Session) -> None:
    assert s("vault", "path", kind="vault_path")["path"].startswith(os.environ["AVFS_HOME"] + os.sep)
    s("vault", "path", "v", kind="vault_path")


def _vault_delete(s: Session) -> None:
    s("vault", "fork", "v:main", "gone", kind="fork_create")
    doc = s("vault", "delete", "v:gone", "--force", kind="vault_delete")
    assert doc["fork"] == "gone" and isinstance(doc["op_id"], int)
    doc = s("vault", "delete", "v", "--force", kind="vault_delete")
    assert doc["fork"] is None and doc["trash"]


def _vault_restore(s: Session) -> None:
    s("vault", "delete", "v", "--force", kind="vault_delete")
    assert s("vault", "restore", "v", kind="vault_restore")["vault"]["name"] == "v"


def _fork_create(s: Session) -> None:
    s("vault", "fork", "v:main", "feature/one", kind="fork_create")
    s("write", "a.txt", "changed", kind="file_write")
    doc = s("--vault", "v:main", "vault", "fork", "two", kind="fork_create")
    assert doc["fork"]["dirty"] is True and doc["source"] == "main"


def _quota(s: Session) -> None:
    s("quota", "show", kind="quota")
    assert s("quota", "set", "5M", kind="quota")["quota_bytes"] == 5 * 1024 * 1024
    doc = s("quota", "set", "--bytes", "none", "--files", "100", kind="quota")
    assert doc["quota_bytes"] is None and doc["quota_files"] == 100 and doc["forks"]
    assert s("quota", "set", "--bytes", "1K", kind="quota")["over"] == ["bytes"]  # below use
    s("quota", "set", "--bytes", "1G", "--files", "none", kind="quota")


def _dir_listing(s: Session) -> None:
    s("mkdir", "empty", kind="file_op")
    assert [e["name"] for e in s("ls", kind="dir_listing")["entries"]] == ["a.txt", "empty", "link", "sub"]
    s("ls", "-l", "sub", kind="dir_listing")
    s("ls", "a.txt", kind="dir_listing")
    s("ls", "link", kind="dir_listing")
    assert s("ls", "empty", kind="dir_listing")["entries"] == []


def _tree(s: Session) -> None:
    s("tree", kind="tree")
    s("tree", "sub", kind="tree")
    s("tree", "-L", "1", kind="tree")


def _stat(s: Session) -> None:
    s("write", "new.txt", "n", kind="file_write")
    for args in (["a.txt"], ["sub"], ["link"], ["-L", "link"], ["new.txt"]):
        s("stat", *args, kind="stat")


def _file_write(s: Session) -> None:
    local = s.tmp / "local.bin"
    local.write_bytes(b"\x00\x01")
    s("write", "t.txt", "text", kind="file_write")
    s("write", "bin.dat", "--stdin", stdin=b"\xff\xfe\x00", kind="file_write")
    s("write", "run.sh", "#!/bin/sh\n", "--mode", "755", kind="file_write")
    s("write", "deep/er/f.bin", "--file", str(local), kind="file_write")
    s("write", "empty.txt", "", kind="file_write")


def _file_content(s: Session) -> None:
    s("write", "bin.dat", "--stdin", stdin=b"\xff\x00", kind="file_write")
    s("write", "empty.txt", "", kind="file_write")
    doc = s("cat", "a.txt", "bin.dat", "empty.txt", "link", kind="file_content")
    assert [f["encoding"] for f in doc["files"]] == ["utf-8", "base64", "utf-8", "utf-8"]


def _file_op(s: Session) -> None:
    s("cp", "a.txt", "copy.txt", kind="file_op")
    s("cp", "-r", "sub", "sub2", kind="file_op")
    s("mv", "copy.txt", "sub", kind="file_op")
    s("mkdir", "-p", "x/y", kind="file_op")
    s("ln", "-s", "sub", "dirlink", kind="file_op")
    s("chmod", "+x", "a.txt", kind="file_op")
    s("chmod", "--", "-x", "a.txt", kind="file_op")
    s("chmod", "644", "a.txt", kind="file_op")
    s("rm", "-r", "sub2", kind="file_op")
    assert s("rm", "-f", "missing.txt", kind="file_op")["paths"] == []


def _status(s: Session) -> None:
    assert s("status", kind="status")["clean"] is True
    s("write", "a.txt", "modified\n", kind="file_write")
    s("mv", "sub/b.txt", "moved.txt", kind="file_op")
    s("rm", "link", kind="file_op")
    s("write", "link", "now a file", kind="file_write")
    s("write", "new.txt", "new\n", kind="file_write")
    doc = s("status", kind="status")
    assert {c["status"] for c in doc["changes"]} == {"modified", "renamed", "type_changed", "added"}
    s("checkpoint", "save", kind="checkpoint")
    s("rm", "new.txt", kind="file_op")
    assert s("status", kind="status")["changes"] == [{"path": "new.txt", "status": "deleted"}]


def _log(s: Session) -> None:
    s("write", "c.txt", "c", kind="file_write")
    s("checkpoint", "save", "second", kind="checkpoint")
    s("vault", "fork", "v:main", "f1", kind="fork_create")
    s("--vault", "v:f1", "checkpoint", "save", "on-f1", kind="checkpoint")
    doc = s("log", kind="log")
    assert doc["commits"][0]["checkpoints"] == ["second"]
    labels = {c for commit in s("log", "--all", kind="log")["commits"] for c in commit["checkpoints"]}
    assert labels == {"main:base", "main:second", "f1:on-f1"}
    s("log", "-n", "1", "--oneline", kind="log")
    s("log", "base", kind="log")


def _diff(s: Session) -> None:
    s("write", "a.txt", "changed\n", kind="file_write")
    s("write", "bin.dat", "--stdin", stdin=b"\x00\xff", kind="file_write")
    s("mv", "sub/b.txt", "moved.txt", kind="file_op")
    s("rm", "link", kind="file_op")
    s("write", "link", "file", kind="file_write")
    s("chmod", "+x", "a.txt", kind="file_op")
    assert "patch" in s("diff", kind="diff")
    assert "stat" in s("diff", "--stat", kind="diff")
    doc = s("diff", "--name-status", kind="diff")
    assert "patch" not in doc and "stat" not in doc
    s("checkpoint", "save", "two", kind="checkpoint")
    s("rm", "bin.dat", kind="file_op")
    s("diff", "base", "two", kind="diff")
    s("diff", "base", kind="diff")
    s("diff", "HEAD~1", "HEAD", "--path", "sub", "-U", "0", kind="diff")


def _operation(s: Session) -> None:
    s("write", "a.txt", "changed\n", kind="file_write")
    doc = s("checkout", "a.txt", "--from", "base", kind="operation")
    assert doc["operation"]["kind"] == "checkout"
    doc = s("checkpoint", "delete", "base", kind="operation")
    assert doc["operation"]["kind"] == "checkpoint_delete"


def _checkpoint(s: Session) -> None:
    doc = s("checkpoint", "save", kind="checkpoint")
    assert doc["created"] is False and doc["op_id"] is None
    s("write", "a.txt", "changed\n", kind="file_write")
    doc = s("checkpoint", "save", "named", "-m", "a message", kind="checkpoint")
    assert doc["created"] is True and doc["checkpoint"]["name"] == "named"
    s("revert", "HEAD", kind="checkpoint")
    s("checkpoint", "save", "alias", kind="checkpoint")  # nothing changed, a name only


def _checkpoint_list(s: Session) -> None:
    s("checkpoint", "list", kind="checkpoint_list")
    s("checkpoint", "list", "--all", "-n", "5", kind="checkpoint_list")
    s("vault", "fork", "v:main", "f1", kind="fork_create")
    assert s("--vault", "v:f1", "checkpoint", "list", kind="checkpoint_list")["checkpoints"] == []


def _restore(s: Session) -> None:
    s("write", "c.txt", "c", kind="file_write")
    s("checkpoint", "save", "second", kind="checkpoint")
    assert s("checkpoint", "restore", "base", kind="restore")["restore"]["recovery_ref"] is None
    s("write", "uncheckpointed.txt", "u", kind="file_write")
    assert s("checkpoint", "restore", "second", kind="restore")["restore"]["recovery_ref"]


def _op_log(s: Session) -> None:
    s("checkpoint", "delete", "base", kind="operation")
    s("undo", kind="undo")
    doc = s("op", "log", kind="op_log")
    assert [o["kind"] for o in doc["operations"]][:2] == ["undo", "checkpoint_delete"]
    s("op", "log", "-n", "1", kind="op_log")


def _undo(s: Session) -> None:
    s("write", "u.txt", "u", kind="file_write")
    s("checkpoint", "restore", "base", kind="restore")
    assert s("undo", kind="undo")["undone"]["kind"] == "restore"
    s("write", "c.txt", "c", kind="file_write")
    op = s("checkpoint", "save", "named", kind="checkpoint")["op_id"]
    s("write", "later.txt", "l", kind="file_write")
    assert s("undo", "--op", str(op), kind="undo")["undone"]["id"] == op
    s("undo", kind="undo")  # each undo walks one operation further back


def _error(s: Session) -> None:
    s.error("--vault", "nope", "status", code="vault_not_found")
    s.error("cat", "../x", code="invalid_path")
    s.error("cat", code="usage")
    s.error("nonsense-command", code="usage")


def _help(s: Session) -> None:
    s("--help", kind="help")
    s("vault", "create", "--help", kind="help")


def _version(s: Session) -> None:
    s("--version", kind="version")


def _mounting(s: Session) -> None:
    from avfs_git.ops.mounts import fuse_available

    from .conftest import IN_CI

    if fuse_available() is not None:
        if IN_CI:
            pytest.fail(f"FUSE must be available in CI: {fuse_available()}")
        pytest.skip(f"requires FUSE: {fuse_available()}")
    s("mount", kind="mount")
    try:
        s("mount", kind="mount")  # reused
        s("mount", "--list", kind="mount_list")
    finally:
        s("unmount", kind="unmount")
    s("unmount", kind="unmount")  # nothing mounted: mount is null


def _proxy(s: Session) -> None:
    ran = s(
        "proxy",
        "exec",
        "--mode",
        "materialized",
        "--",
        "sh",
        "-c",
        "echo hi > new.txt",
        kind="proxy_exec_result",
    )
    assert ran["success"] and ran["changes"] == [{"path": "new.txt", "status": "added"}] and ran["commit"]
    denied = s("proxy", "exec", "--", "rm", "-rf", "/", kind="proxy_exec_result")
    assert denied["exit_code"] == 126 and denied["result"] is None
    asked = s("proxy", "exec", "--", "curl", "https://example.com", kind="proxy_exec_result")
    assert asked["exit_code"] == 126 and asked["approval"]["token"].startswith("apv_")
    failed = s("proxy", "exec", "--mode", "materialized", "--", "false", kind="proxy_exec_result")
    assert failed["exit_code"] == 1 and not failed["success"]
    missing = s(
        "proxy", "exec", "--mode", "materialized", "--", "no-such-program-x", kind="proxy_exec_result"
    )
    assert missing["exit_code"] == 127 and missing["result"]["spawn_error"]
    slow = s(
        "proxy",
        "exec",
        "--mode",
        "materialized",
        "--timeout-ms",
        "200",
        "--",
        "sleep",
        "5",
        kind="proxy_exec_result",
    )
    assert slow["exit_code"] == 124 and slow["result"]["timed_out"]
    bad = s("proxy", "exec", "--cwd", "../x", "--", "true", kind="proxy_exec_result")
    assert bad["exit_code"] == 125 and bad["error"]["code"] == "invalid_path"


def _policy(s: Session) -> None:
    doc = s("policy", "check", "--", "git", "push", "--force", kind="policy_check")
    assert doc["decision"]["action"] == "require_approval"
    s("policy", "check", "--shell", "ls | wc -l", kind="policy_check")
    s("policy", "show", kind="policy")
    s("policy", "validate", kind="policy_validate")
    paths = s.tmp / "paths.toml"
    paths.write_text(
        'version = 1\n[paths]\nhidden = [".env"]\n[forks."review-*".paths]\nread_only = ["**"]\n'
    )
    s("policy", "validate", str(paths), kind="policy_validate")
    doc = s("policy", "check", "--path", "a/.env", "--path", "src/x.py", kind="policy_path_check")
    assert [p["kind"] for p in doc["paths"]] == ["writable", "writable"]  # no rule in this home
    bad = s.tmp / "bad.toml"
    bad.write_text("version = 1\n[[rules]]\nname = 'x'\nprogram = 'y'\nclasses = ['nonsense']\n")
    err = s.error("policy", "validate", str(bad), code="policy_invalid")
    assert str(bad) in err["error"]["message"]


def _audit(s: Session) -> None:
    s("proxy", "exec", "--mode", "materialized", "--", "true", kind="proxy_exec_result")
    doc = s("audit", kind="audit")
    assert doc["records"] and doc["records"][-1]["request"]["argv"] == ["true"]


def _merge(s: Session) -> None:
    s("vault", "fork", "v", "other", kind="fork_create")
    s("--vault", "v:other", "write", "a.txt", "changed on other\n", kind="file_write")
    s("--vault", "v:other", "checkpoint", "save", kind="checkpoint")
    s("write", "a.txt", "changed on main\n", kind="file_write")
    doc = s("merge", "other", "--dry-run", kind="merge")
    assert doc["results"][0]["status"] == "would_conflict" and doc["conflicted"]
    assert doc["results"][0]["conflicts"][0]["kind"] == "content"
    s("merge", "other", "--theirs", kind="merge")
    s("merge", "other", kind="merge")  # up to date


def _remotes(s: Session) -> None:
    import subprocess

    bare = s.tmp / "server.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    s("remote", "add", "origin", str(bare), kind="remote")
    s("remote", "list", kind="remote_list")
    doc = s("push", kind="transfer")
    assert doc["result"]["updates"][0]["ref"] == "refs/heads/main"
    s("fetch", kind="transfer")
    s("remote", "set-url", "origin", str(bare), kind="remote")
    s.error("push", "nope", code="remote_not_found")
    doc = s("pull", kind="pull")
    assert doc["merge"]["status"] == "up_to_date" and not doc["conflicted"]
    s("remote", "remove", "origin", kind="remote")


def _maintenance(s: Session) -> None:
    s("stats", kind="stats")
    s("gc", "--dry-run", kind="gc")
    s("gc", "--grace", "0", kind="gc")
    s("prune", "--dry-run", kind="prune")
    s("vault", "fork", "v", "other", kind="fork_create")
    s("prune", kind="prune")
    assert s("doctor", kind="doctor")["ok"]


def _server(s: Session) -> None:
    assert not s("server", "status", kind="server")["running"]
    assert s("server", "start", kind="server")["running"]
    assert not s("server", "stop", kind="server")["running"]


def _grep(s: Session) -> None:
    assert s("grep", "hello", kind="grep")["files"][0]["path"] == "a.txt"
    s("grep", "-l", "-i", "HELLO", "--rev", "base", kind="grep")
    s("grep", "-c", "b", "sub", kind="grep")


def _find(s: Session) -> None:
    s("find", kind="find")
    s("find", "sub", "--type", "f", "--size", "-1k", kind="find")
    s("write", "new.txt", "n", kind="file_write")
    assert [e["path"] for e in s("find", "--newer", "base", kind="find")["entries"]] == ["new.txt"]


def _search(s: Session) -> None:
    assert s("search", "hello", kind="search")["hits"][0]["path"] == "a.txt"
    s("search", "--rebuild", kind="search")


def _hooks_install(s: Session) -> None:
    proj = s.tmp / "proj"
    proj.mkdir()
    s(
        "hooks",
        "install",
        "--for",
        "claude",
        "--project",
        str(proj),
        "--command",
        "avfs",
        kind="hooks_install",
    )
    s("hooks", "uninstall", "--for", "claude", "--project", str(proj), kind="hooks_install")
    s("hooks", "install", "--for", "git", "--vault", "v", kind="hooks_install")


def _quickstart(s: Session) -> None:
    from avfs_git.ops.mounts import fuse_available

    from .conftest import IN_CI

    if fuse_available() is not None:
        if IN_CI:
            pytest.fail(f"FUSE must be available in CI: {fuse_available()}")
        pytest.skip(f"requires FUSE: {fuse_available()}")
    src = s.tmp / "proj"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    up = s("up", str(src), "--agent", "a1", kind="up")
    try:
        (Path(up["mountpoint"]) / "new.txt").write_text("new\n")
        s("export", "proj:a1", str(s.tmp / "out"), kind="export")
    finally:
        down = s("down", "--fork", "proj:a1", "--keep", kind="down")
    assert down["merge"]["status"] == "fast_forward" and down["fork_deleted"]
    doc = s("apply", "proj:main", kind="apply")
    assert (src / "new.txt").read_text() == "new\n" and doc["changes"][0]["applied"]


KIND_CASES: dict[str, Callable[[Session], None]] = {
    "stats": _maintenance,
    "server": _server,
    "gc": _maintenance,
    "prune": _maintenance,
    "doctor": _maintenance,
    "remote": _remotes,
    "remote_list": _remotes,
    "transfer": _remotes,
    "pull": _remotes,
    "merge": _merge,
    "proxy_exec_result": _proxy,
    "policy_check": _policy,
    "policy_path_check": _policy,
    "policy": _policy,
    "policy_validate": _policy,
    "audit": _audit,
    "help": _help,
    "version": _version,
    "mount": _mounting,
    "mount_list": _mounting,
    "unmount": _mounting,
    "checkpoint": _checkpoint,
    "checkpoint_list": _checkpoint_list,
    "diff": _diff,
    "dir_listing": _dir_listing,
    "error": _error,
    "file_content": _file_content,
    "file_op": _file_op,
    "file_write": _file_write,
    "fork_create": _fork_create,
    "log": _log,
    "op_log": _op_log,
    "operation": _operation,
    "quota": _quota,
    "restore": _restore,
    "stat": _stat,
    "status": _status,
    "tree": _tree,
    "undo": _undo,
    "vault_create": _vault_create,
    "vault_delete": _vault_delete,
    "vault_info": _vault_info,
    "vault_list": _vault_list,
    "vault_path": _vault_path,
    "vault_restore": _vault_restore,
    "vault_use": _vault_use,
    "grep": _grep,
    "find": _find,
    "search": _search,
    "hooks_install": _hooks_install,
    "up": _quickstart,
    "down": _quickstart,
    "export": _quickstart,
    "apply": _quickstart,
}


def _proxy_approval(s: Session) -> None:
    asked = s("proxy", "exec", "--", "curl", "https://example.com", kind="proxy_exec_result")
    token = asked["approval"]["token"]
    doc = s("proxy", "approve", token, "--yes", kind="proxy_approval")
    assert doc["approved"] and doc["request"]["argv"] == ["curl", "https://example.com"]
    assert doc["request_hash"] == asked["approval"]["request_hash"] and doc["request"]["stdin"] is None
    s.error("proxy", "approve", "apv_" + "0" * 32, "--yes", code="approval_refused")


KIND_CASES["proxy_approval"] = _proxy_approval


def _hydrate(s: Session) -> None:
    """A whole vault: nothing to fetch (tests/test_lazy_hydrate.py checks lazy ones against
    a real server)."""
    doc = s("vault", "hydrate", kind="hydrate")
    assert doc["lazy"] is False and doc["fetched_blobs"] == 0


KIND_CASES["hydrate"] = _hydrate


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_kind(kind: str, s: Session) -> None:
    """A real document of every kind that has a schema validates against it."""
    assert kind in KIND_CASES, f"docs/schemas/{kind}.schema.json has no scenario in KIND_CASES"
    KIND_CASES[kind](s)
    assert kind in s.kinds, f"the scenario for {kind!r} produced only {sorted(set(s.kinds))}"


# -- errors ----------------------------------------------------------------------------------

ERROR_CASES: list[tuple[str, list[str], str]] = [
    # missing vault, fork, path, revision
    ("missing-vault", ["--vault", "nope", "status"], "vault_not_found"),
    ("missing-vault-info", ["vault", "info", "nope"], "vault_not_found"),
    ("missing-fork", ["--vault", "v:nofork", "status"], "fork_not_found"),
    ("missing-file", ["cat", "missing.txt"], "path_not_found"),
    ("missing-dir", ["ls", "nope"], "path_not_found"),
    ("missing-revision", ["diff", "nosuch"], "revision_not_found"),
    ("missing-restore-target", ["checkpoint", "restore", "nosuch"], "revision_not_found"),
    ("nothing-to-undo", ["undo", "--op", "9999"], "nothing_to_undo"),
    # bad paths and names
    ("path-dotdot", ["cat", "../x"], "invalid_path"),
    ("path-dotdot-write", ["write", "a/../../x", "y"], "invalid_path"),
    ("path-absolute", ["write", "/etc/x", "y"], "invalid_path"),
    ("path-dotgit", ["write", ".git/config", "y"], "invalid_path"),
    ("fork-name-dotdot", ["vault", "fork", "v:main", "bad..name"], "invalid_name"),
    ("fork-name-lock", ["vault", "fork", "v:main", "x.lock"], "invalid_name"),
    ("fork-name-in-spec", ["--vault", "v:-x", "status"], "invalid_name"),
    ("fork-name-empty", ["--vault", "v:", "status"], "invalid_name"),
    ("vault-name-slash", ["vault", "create", "bad/name"], "invalid_name"),
    ("checkpoint-name-slash", ["checkpoint", "save", "a/b"], "usage"),
    # file system semantics
    ("cat-directory", ["cat", "sub"], "is_a_directory"),
    ("ls-through-file", ["ls", "a.txt/x"], "not_a_directory"),
    ("rm-nonempty-dir", ["rm", "sub"], "directory_not_empty"),
    ("mkdir-exists", ["mkdir", "a.txt"], "already_exists"),
    ("vault-exists", ["vault", "create", "v"], "already_exists"),
    ("checkpoint-exists", ["checkpoint", "save", "base"], "already_exists"),
    # usage errors from click
    ("no-command", [], "usage"),
    ("unknown-command", ["nonsense-command"], "usage"),
    ("unknown-subcommand", ["vault", "nonsense"], "usage"),
    ("group-without-subcommand", ["checkpoint"], "usage"),
    ("missing-argument-cat", ["cat"], "usage"),
    ("missing-argument-vault-use", ["vault", "use"], "usage"),
    ("missing-option-value", ["checkpoint", "save", "-m"], "usage"),
    ("missing-required-option", ["ln", "a.txt", "b"], "usage"),
    ("unknown-option", ["status", "--bogus"], "usage"),
    ("json-after-command", ["status", "--json"], "usage"),
    ("bad-integer", ["log", "-n", "abc"], "usage"),
    ("missing-local-file", ["write", "x", "--file", "/nonexistent/file"], "usage"),
    # usage errors from avfs
    ("write-no-content", ["write", "x"], "usage"),
    ("write-bad-mode", ["write", "x", "y", "--mode", "777"], "usage"),
    ("diff-three-revs", ["diff", "a", "b", "c"], "usage"),
    ("delete-without-force", ["vault", "delete", "v"], "usage"),
    ("fork-too-many-args", ["vault", "fork", "a", "b", "c"], "usage"),
    ("quota-bad-size", ["quota", "set", "abc"], "usage"),
    ("chmod-bad-mode", ["chmod", "777", "a.txt"], "usage"),
]


@pytest.mark.parametrize(("args", "code"), [pytest.param(a, c, id=i) for i, a, c in ERROR_CASES])
def test_error(s: Session, args: list[str], code: str) -> None:
    doc = s.error(*args, code=code)
    assert doc["error"]["message"]


def test_error_no_vault_selected(s: Session) -> None:
    s.error("--home", str(s.tmp / "no-vaults"), "status", code="usage")


def test_error_dirty_workspace(s: Session) -> None:
    s("write", "a.txt", "dirty", kind="file_write")
    s.error("revert", "HEAD", code="dirty_workspace")


def test_error_symlink_escape(s: Session) -> None:
    s("ln", "-s", "../../etc/passwd", "esc", kind="file_op")
    s("ln", "-s", "/etc/passwd", "abs", kind="file_op")
    s.error("cat", "esc", code="symlink_escape")
    s.error("cat", "abs", code="symlink_escape")


def test_error_codes_in_schema_match_the_error_hierarchy() -> None:
    # every code lives in core/errors.py: a fresh process that imports only that module
    # sees them all
    code = (
        "import json, avfs_git.core.errors as e\n"
        "todo, out = [e.AvfsError], {}\n"
        "while todo:\n"
        "    c = todo.pop(); todo.extend(c.__subclasses__())\n"
        "    if 'code' in c.__dict__: out[c.code] = issubclass(c, e.EnvelopeError)\n"
        "print(json.dumps(out))"
    )
    import subprocess
    import sys

    codes = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout)
    assert set(codes) == set(_exit_codes())
    common = json.loads((SCHEMA_DIR / "common.schema.json").read_text())
    assert set(common["$defs"]["error_code"]["enum"]) == {c for c, env in codes.items() if not env}
    # the envelope's own codes: proxy_exec_result's `error.code` adds exactly these
    envelope = json.loads((SCHEMA_DIR / "proxy_exec_result.schema.json").read_text())
    extra: set[str] = set()
    todo: list[Any] = [envelope]
    while todo:
        x = todo.pop()
        if isinstance(x, dict):
            alts = x.get("anyOf", [])
            if {"$ref": "common.schema.json#/$defs/error_code"} in alts:
                extra.update(v for alt in alts for v in alt.get("enum", []))
            todo.extend(x.values())
        elif isinstance(x, list):
            todo.extend(x)
    assert extra == {c for c, env in codes.items() if env}


def test_no_error_code_is_defined_outside_core_errors() -> None:
    import ast

    pkg = Path(__file__).resolve().parent.parent / "avfs_git"
    found = []
    for path in sorted(pkg.rglob("*.py")):
        if path == pkg / "core" / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    targets = stmt.targets if isinstance(stmt, ast.Assign) else []
                    if any(isinstance(t, ast.Name) and t.id == "code" for t in targets):
                        found.append(f"{path.relative_to(pkg)}:{node.name}")
    assert found == []


# -- real processes --------------------------------------------------------------------------


REAL_PROCESS_CASES: list[tuple[str, list[str], bytes, str, str | None]] = [
    ("cat-missing-file", ["cat", "missing.txt"], b"", "error", "path_not_found"),
    ("unknown-command", ["nonsense-command"], b"", "error", "usage"),
    ("no-command", [], b"", "error", "usage"),
    ("bad-path", ["cat", "../x"], b"", "error", "invalid_path"),
    ("missing-vault", ["--vault", "nope", "ls"], b"", "error", "vault_not_found"),
    ("write-binary-stdin", ["write", "bin.dat", "--stdin"], b"\xff\x00\n", "file_write", None),
    ("cat", ["cat", "a.txt", "sub/b.txt"], b"", "file_content", None),
    ("status", ["status"], b"", "status", None),
]


@pytest.mark.parametrize(
    ("args", "stdin", "kind", "code"), [pytest.param(*c[1:], id=c[0]) for c in REAL_PROCESS_CASES]
)
def test_real_process(
    cli_proc: Callable[..., CliResult], s: Session, args: list[str], stdin: bytes, kind: str, code: str | None
) -> None:
    """`python -m avfs_git --json ...` as a real process: its stdout holds one document."""
    res = cli_proc("--json", *args, stdin=stdin)
    assert "Traceback" not in res.err, res.err
    doc = check(res)
    assert doc["kind"] == kind, doc
    if code is not None:
        assert doc["error"]["code"] == code, doc


# -- regressions (each was a bug found by this file) ----------------------------------------


def test_json_help_is_one_document(cli: Callable[..., CliResult]) -> None:
    doc = check(cli("--json", "--help"))
    assert doc["kind"] == "help" and "Usage:" in doc["text"]
    doc = check(cli("--json", "checkpoint", "save", "--help"))
    assert doc["kind"] == "help" and "checkpoint save" in doc["text"]


def test_json_version_is_one_document(cli: Callable[..., CliResult]) -> None:
    doc = check(cli("--json", "--version"))
    assert doc["kind"] == "version" and doc["version"]


def test_interrupt_prints_an_error_document(s: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    from avfs_git.core.operations import history

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(history, "log", interrupted)
    res = s.raw("log")
    assert res.code == 130
    doc = check(res)
    assert doc["error"]["code"] == "interrupted"


def test_chmod_minus_x(s: Session) -> None:
    s("chmod", "+x", "a.txt", kind="file_op")
    assert s("chmod", "-x", "a.txt", kind="file_op")["executable"] is False


def test_non_utf8_path_is_invalid_path(s: Session) -> None:
    # how Python hands `avfs write $'\xff.txt' x` to the CLI (argv is decoded with surrogateescape)
    doc = s.error("write", "\udcff.txt", "x", code="invalid_path")
    assert "UTF-8" in doc["error"]["message"]


@pytest.mark.parametrize("args", [["vault", "list"], ["vault", "create", "x"]], ids=["list", "create"])
def test_home_not_a_directory_is_a_user_error(s: Session, args: list[str]) -> None:
    s.error("--home", "/dev/null", *args, code="unusable_path")


def test_log_n_zero(s: Session) -> None:
    assert s("log", "-n", "0", kind="log")["commits"] == []


def test_patch_keeps_file_modes(s: Session) -> None:
    s("write", "run.sh", "#!/bin/sh\n", "--mode", "755", kind="file_write")
    s("ln", "-s", "run.sh", "l2", kind="file_op")
    patch = s("diff", kind="diff")["patch"]
    assert "new file mode 100755" in patch
    assert "new file mode 120000" in patch


# -- the schemas themselves ------------------------------------------------------------------


def _emitted_kinds() -> set[str]:
    """Kinds named in Output.result(...) / Output.document(...) calls of the CLI's source,
    in the NDJSON lines `avfs watch` writes (``_doc(...)``), and the MCP tools' kinds."""
    from avfs_git.mcp.toolspecs import TOOLS

    pattern = re.compile(r"(?:\.(?:result|document)|\b_doc)\(\s*\"([a-z_]+)\"")
    kinds: set[str] = {t.kind for t in TOOLS}
    for path in CLI_DIR.glob("*.py"):
        kinds |= set(pattern.findall(path.read_text(encoding="utf-8")))
    return kinds


def test_every_emitted_kind_has_a_schema() -> None:
    emitted = _emitted_kinds()
    assert "error" in emitted and "status" in emitted  # the scan itself works
    assert emitted == set(SCHEMA_KINDS), (
        f"kinds without a schema: {sorted(emitted - set(SCHEMA_KINDS))}; "
        f"schemas for no kind: {sorted(set(SCHEMA_KINDS) - emitted)}"
    )


def test_every_schema_has_a_scenario() -> None:
    assert set(KIND_CASES) == set(SCHEMA_KINDS)


@pytest.mark.parametrize("name", sorted(_schema_files()))
def test_schema_is_valid_and_refs_resolve(name: str) -> None:
    path = _schema_files()[name]
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    if name != COMMON:
        assert schema["additionalProperties"] is False
        assert schema["properties"]["kind"] == {"const": name}
        assert {"schema_version", "kind"} <= set(schema["required"])
    resolver = _registry().resolver(base_uri=path.as_uri())

    def walk(node: object) -> None:
        if isinstance(node, dict):
            target = node.get("$ref")
            if isinstance(target, str):
                resolver.lookup(target)  # raises Unresolvable
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)


def _status_doc() -> Json:
    c = "0" * 40
    return {
        "schema_version": 1,
        "kind": "status",
        "vault": "v",
        "fork": "main",
        "base": c,
        "head": c,
        "stale": False,
        "merge": None,
        "clean": False,
        "changes": [{"path": "b", "status": "renamed", "old_path": "a"}],
        "ignored": 0,
        "not_recorded": [],
    }


MUTATIONS: list[tuple[str, Callable[[Json], None]]] = [
    ("extra-top-level-key", lambda d: d.update(extra=1)),
    ("missing-key", lambda d: d.pop("stale")),
    ("wrong-schema-version", lambda d: d.update(schema_version=2)),
    ("short-commit-id", lambda d: d.update(base="abc123")),
    ("uppercase-commit-id", lambda d: d.update(base="A" * 40)),
    ("unknown-status", lambda d: d["changes"][0].update(status="copied")),
    ("rename-without-old-path", lambda d: d["changes"][0].pop("old_path")),
    ("old-path-on-add", lambda d: d["changes"][0].update(status="added")),
    ("absolute-path", lambda d: d["changes"][0].update(path="/b")),
    ("dotdot-path", lambda d: d["changes"][0].update(path="x/../b")),
    ("clean-with-changes", lambda d: d.update(clean=True)),
    ("extra-key-in-change", lambda d: d["changes"][0].update(oid=None)),
]


def test_schemas_accept_a_known_good_document() -> None:
    validate(_status_doc())


@pytest.mark.parametrize("mutate", [pytest.param(m, id=i) for i, m in MUTATIONS])
def test_schemas_reject_wrong_documents(mutate: Callable[[Json], None]) -> None:
    doc = _status_doc()
    mutate(doc)
    with pytest.raises(ValidationError):
        _validator("status").validate(doc)


def test_schemas_reject_wrong_node_kind_and_error_shape() -> None:
    stat = {
        "schema_version": 1,
        "kind": "stat",
        "vault": "v",
        "fork": "main",
        "stat": {
            "path": "a",
            "kind": "file",
            "mode": 33188,
            "size": 1,
            "oid": None,
            "materialized": True,
            "target": None,
        },
    }
    validate(stat)
    for bad in ({"kind": "fifo"}, {"kind": "dir"}, {"kind": "symlink"}, {"oid": "0" * 40}, {"mode": 0o644}):
        doc = json.loads(json.dumps(stat))
        doc["stat"].update(bad)
        with pytest.raises(ValidationError):
            _validator("stat").validate(doc)
    err = {
        "schema_version": 1,
        "kind": "error",
        "error": {"code": "usage", "message": "m", "hint": None, "details": {}},
    }
    validate(err)
    for bad in ({"code": "nope"}, {"hint": 1}, {"details": []}, {"message": ""}):
        doc = json.loads(json.dumps(err))
        doc["error"].update(bad)
        with pytest.raises(ValidationError):
            _validator("error").validate(doc)
    doc = json.loads(json.dumps(err))
    del doc["error"]["hint"]
    with pytest.raises(ValidationError):
        _validator("error").validate(doc)


def _watch(s: Session) -> None:
    """`avfs watch --once`: NDJSON, every line a document of its own kind; and MCP
    `changes_since`, the same events in one `changes` document."""
    from avfs_git.mcp.tools import AvfsTools

    def lines(*args: str) -> list[Json]:
        r = s.raw("watch", "--once", *args)
        assert r.code == 0, r.out
        docs = [json.loads(line) for line in r.out.splitlines()]
        for doc in docs:
            s.kinds.append(validate(doc))
        return docs

    start = lines()[-1]["cursor"]
    s("write", "w.txt", "x", kind="file_write")
    s("mv", "w.txt", "w2.txt")
    s("checkpoint", "save", "w", kind="checkpoint")
    docs = lines("--since", start)
    assert [d["kind"] for d in docs] == ["watch_event"] * 4 + ["watch_cursor"]
    assert lines("--vault", "v")[-1]["fork"] is None
    tools = AvfsTools(None)
    doc = json.loads(tools.call("changes_since", {"vault": "v", "cursor": start}))
    s.kinds.append(validate(doc))
    assert [e["kind"] for e in doc["events"]] == [d["event"]["kind"] for d in docs[:-1]]
    assert doc["cursor"] == docs[-1]["cursor"] and doc["more"] is False


KIND_CASES["watch_event"] = _watch
KIND_CASES["watch_cursor"] = _watch
KIND_CASES["changes"] = _watch
