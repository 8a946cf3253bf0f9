"""The Python API given what a demanding caller passes by mistake, as tests/test_badinput_sweep
gives the CLI: every public function of `avfs_git.__all__`'s modules and every public method
of `Home`, `Vault` and `Workspace` (listed from the package itself, so a new one is swept
without touching this file), each text argument in turn given a control character, a
terminal escape, markup, a lone surrogate, a slash, `..`, a NUL, an empty and a huge
string, and a value of the wrong type.

Each call returns, or raises an `AvfsError` with a code other than `internal` (never a bare
KeyError, TypeError, a pygit2 or a sqlite3 error); one that raised left the home as it was
(files by content, SQLite rows, git refs).
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import avfs_git
from avfs_git import checkpoint, history
from avfs_git.core.errors import AvfsError
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault

from .test_json_everypath import _changed, _home_state

BAD: dict[str, Any] = {
    "control": "a\x01b",
    "escape": "a\x1b[31mb",
    "markup": "[bold]x[/]",
    "not-utf8": "a\udcffb",
    "slash": "a/b",
    "dotdot": "..",
    "nul": "a\x00b",
    "empty": "",
    "huge": "x" * 100_000,
}
BAD_INT: dict[str, Any] = {"huge": 2**70, "negative": -1}
# what a call needs to get as far as the argument under test, by the parameter's name
GOOD: dict[str, Any] = {
    "fork": "main",
    "source": "main",
    "name": "n1",
    "new": "n2",
    "path": "f.txt",
    "src": "f.txt",
    "dst": "g.txt",
    "target": "f.txt",
    "rev": "c1",
    "old": "c1",
    "data": b"x",
    "content": b"x",
    "paths": ["f.txt"],
    "cursor": None,
    "argv": ["true"],
    "pattern": "hi",
    "message": "m",
}
# found by this sweep and left open (each a failure the sweep would report): none
OPEN: set[tuple[str, str]] = set()
# what cannot be swept in a test process: it serves, mounts, or ends the home
# (exec_in mounts the fork and leaves its daemon: swept over the wire by test_mcp_badinput)
NOT_HERE = {"close", "serve", "mount", "unmount", "shutdown", "watch", "exec_in"}


def _surface() -> Iterator[tuple[str, Callable[..., Any]]]:
    """(name, callable) of the public API: each public function of `avfs_git.__all__`'s
    modules and functions, and each public method of its classes."""
    for name in avfs_git.__all__:
        obj = getattr(avfs_git, name)
        if isinstance(obj, types.ModuleType):
            for fname, f in vars(obj).items():
                if not fname.startswith("_") and inspect.isfunction(f) and f.__module__ == obj.__name__:
                    yield f"{name}.{fname}", f
        elif (
            inspect.isclass(obj)
            and obj.__module__.startswith("avfs_git")
            and not issubclass(obj, BaseException)
        ):
            for mname, m in inspect.getmembers(obj, inspect.isfunction):
                if not mname.startswith("_"):
                    yield f"{name}.{mname}", m
        elif inspect.isfunction(obj) and name != "open_home":
            yield name, obj


def _documented() -> set[str]:
    """The names docs/api.md calls (`name(` in its text and examples): the documented API,
    not the helpers the mounts and the CLI share with it."""
    text = (Path(__file__).parents[1] / "docs" / "api.md").read_text()
    return set(re.findall(r"\b([a-z_][a-z0-9_]*)\(", text))


SURFACE = sorted((n, f) for n, f in _surface() if n.rsplit(".", 1)[-1] in _documented() - NOT_HERE)


# a path on the host (a clone's source, an import's directory, a file to copy, a destination):
# a str or what `open()` also takes, an `os.PathLike` (a `pathlib.Path`), as its str
HOST_PATH = "str | os.PathLike[str]"


def _kind(p: inspect.Parameter) -> str | None:
    """What a parameter takes, as far as the sweep varies it: "str", "path" (a path on the
    host), "int", or None."""
    ann = str(p.annotation)
    if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
        return None
    return {
        "str": "str",
        "str | None": "str",
        "int": "int",
        "int | None": "int",
        HOST_PATH: "path",
        f"{HOST_PATH} | None": "path",
    }.get(ann)


def _args(fn: Callable[..., Any], owner: str, home: Home, vault: Vault) -> dict[str, Any] | None:
    """Good values for every required parameter (None: one the sweep cannot fill)."""
    args: dict[str, Any] = {}
    for p in list(inspect.signature(fn).parameters.values()):
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        ann = str(p.annotation)
        if p.name == "vault" and ("Vault" in ann or owner not in ("Home",)) and "str" not in ann:
            args[p.name] = vault
        elif p.name in ("ws", "workspace") or "Workspace" in ann:
            args[p.name] = vault.workspace("main")
        elif p.name == "vault":
            args[p.name] = "v"
        elif p.name in GOOD:
            args[p.name] = GOOD[p.name]
        elif p.name in ("url", "src"):  # a repository to clone, a local file to copy
            args[p.name] = vault.path if p.name == "url" else str(Path(home.path, "avfs.toml"))
        elif p.name == "spec":
            args[p.name] = "v"
        elif p.name == "executable":
            args[p.name] = True
        elif p.name == "dest":
            args[p.name] = str(Path(home.path).parent / "materialized")
        elif "DiffResult" in ann:
            args[p.name] = history.diff(vault, "main", "c1")
        elif p.default is not p.empty:
            continue
        else:
            return None
    return args


def _target(name: str, home: Home, vault: Vault) -> Any:
    owner = name.split(".")[0]
    return {"Home": home, "Vault": vault, "Workspace": vault.workspace("main")}.get(owner)


@pytest.fixture
def swept(home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Vault:
    monkeypatch.chdir(tmp_path)  # a relative name lands here
    Path(home.path).mkdir(parents=True, exist_ok=True)
    Path(home.path, "avfs.toml").write_text("")
    vault = home.create_vault("v")
    vault.workspace("main").write("f.txt", b"hi\n")
    checkpoint.save(vault, "main", name="c1")
    return vault


def _drain(result: Any) -> None:
    """Run a generator a call returned (`walk`): its errors are the call's."""
    if isinstance(result, types.GeneratorType):
        list(result)


@pytest.mark.parametrize(("name", "fn"), SURFACE, ids=[n for n, _ in SURFACE])
def test_every_public_call_refuses_bad_arguments_clearly(
    home: Home, swept: Vault, name: str, fn: Callable[..., Any]
) -> None:
    owner = name.split(".")[0]
    base = _args(fn, owner, home, swept)
    if base is None:
        pytest.fail(f"{name}: a required parameter the sweep cannot fill; add it to GOOD")
    params = inspect.signature(fn).parameters
    tried = 0
    for pname, p in params.items():
        kind = None if (name, pname) in OPEN else _kind(p)
        values = BAD if kind in ("str", "path") else BAD_INT if kind == "int" else {}
        for what, value in values.items():
            target = _target(name, home, swept)
            call = getattr(target, fn.__name__) if target is not None else fn
            before = _home_state(home.path)
            try:
                _drain(call(**{**base, pname: value}))
            except AvfsError as err:
                assert err.code != "internal", f"{name}({pname}={what}): {err.message}"
                changed = _changed(before, _home_state(home.path))
                assert changed == [], f"{name}({pname}={what}) failed and changed {changed[:5]}"
            except Exception as exc:
                raise AssertionError(f"{name}({pname}={what}): {type(exc).__name__}: {exc}"[:600]) from exc
            tried += 1
    assert tried or not any(_kind(p) and (name, n) not in OPEN for n, p in params.items()), name


# a value of the wrong type for a text argument: what a caller passes by mistake
WRONG_TYPE: dict[str, Any] = {
    "none": None,
    "bytes": b"f.txt",
    "path": Path("f.txt"),
    "int": 7,
    "list": ["f.txt"],
}


@pytest.mark.parametrize(("name", "fn"), SURFACE, ids=[n for n, _ in SURFACE])
def test_every_public_call_names_a_text_argument_of_the_wrong_type(
    home: Home, swept: Vault, name: str, fn: Callable[..., Any]
) -> None:
    """None (where the argument is not optional), bytes, a Path, an int or a list for a `str`
    (each but the Path for a path on the host): a TypeError naming the argument (or an
    AvfsError), nothing changed. No argument is left open."""
    base = _args(fn, name.split(".")[0], home, swept)
    assert base is not None, name
    for pname, p in inspect.signature(fn).parameters.items():
        if _kind(p) not in ("str", "path"):
            continue
        for what, value in WRONG_TYPE.items():
            if value is None and "None" in str(p.annotation):
                continue
            if what == "path" and _kind(p) == "path":
                continue  # taken as its str: test_a_host_path_may_be_a_path
            target = _target(name, home, swept)
            call = getattr(target, fn.__name__) if target is not None else fn
            before = _home_state(home.path)
            try:
                _drain(call(**{**base, pname: value}))
            except AvfsError as err:
                assert err.code != "internal", f"{name}({pname}={what}): {err.message}"
            except TypeError as exc:
                assert str(exc).startswith(f"{pname} must be a str"), f"{name}({pname}={what}): {exc}"
            except Exception as exc:
                raise AssertionError(f"{name}({pname}={what}): {type(exc).__name__}: {exc}"[:600]) from exc
            else:
                raise AssertionError(f"{name}({pname}={what}) was taken")
            changed = _changed(before, _home_state(home.path))
            assert changed == [], f"{name}({pname}={what}) failed and changed {changed[:5]}"


def test_every_host_path_is_swept() -> None:
    """The paths on the host the API takes: each annotated as one (so both sweeps reach it)."""
    swept = {
        (n, pname)
        for n, f in SURFACE
        for pname, p in inspect.signature(f).parameters.items()
        if _kind(p) == "path"
    }
    assert swept == {
        ("Home.clone_vault", "url"),
        ("Home.create_vault", "from_dir"),
        ("Workspace.materialize_to", "dest"),
        ("Workspace.write_from_file", "src"),
    }


def test_a_host_path_may_be_a_path(home: Home, swept: Vault, tmp_path: Path) -> None:
    """Each path on the host taken as a `pathlib.Path` does what its str does."""
    ws = swept.workspace("main")
    src = tmp_path / "src.txt"
    src.write_bytes(b"from a Path\n")
    ws.write_from_file("g.txt", src)
    assert ws.read("g.txt") == b"from a Path\n"
    assert ws.materialize_to(tmp_path / "out") == 2
    assert (tmp_path / "out" / "g.txt").read_bytes() == b"from a Path\n"
    imported = home.create_vault("imported", from_dir=tmp_path / "out")
    assert imported.workspace("main").read("f.txt") == b"hi\n"
    cloned = home.clone_vault(Path(swept.path), "cloned")
    assert cloned.workspace("main").read("f.txt") == b"hi\n"
