"""Hand-written readers of git's config and object store against git, on real data (the
thirty-fourth round, realdata9; docs/testing.md, "Hand-written stand-ins, each against the
real thing"): every value of libgit2 1.5.1's own config files (``tests/resources``: its
repositories' configs and its config test files, ``realdata.libgit2_resources``) read as a
boolean by avfs's readers and by ``git config --type=bool``, and every one of its
repositories' object counts beside ``git count-objects -v``.

What differed on main: avfs read a boolean as true only when it was ``true``, ``yes``,
``on`` or ``1``, where git reads any integer but 0 as true (``config.c``
``git_config_bool``: C's ``strtoimax`` base 0, a ``k``/``m``/``g`` unit): 15 of the 114
distinct values of libgit2's files (``2``, ``-1``, ``42``, ``1k``, ``1G``...) were false to
avfs. Read so were ``core.quotePath`` (`avfs diff --stat`'s names), ``log.showroot``,
``diff.indentHeuristic``, ``extensions.worktreeConfig``, a remote's ``promisor``,
``core.autocrlf`` (what the mount shows and a checkpoint stores) and
``$GIT_ATTR_NOSYSTEM``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.store import configtext, gitrun
from avfs_git.core.store.gitstore import GitStore
from avfs_git.core.workspace.wsattrs import autocrlf
from avfs_git.ops.maintenance.objcounts import object_totals

from . import realdata


@pytest.fixture(scope="module")
def resources() -> list[Path]:
    return realdata.libgit2_resources()


def _config_files(resources: list[Path]) -> list[Path]:
    top = resources[0]
    while top.name != "resources":
        top = top.parent
    return sorted(
        p
        for p in top.rglob("*")
        if p.is_file()
        and "objects" not in p.parts
        and p.name != "config-oom"  # (40,000 keys named by 494 KB: test_gitmodules_real.py's)
        and (p.name in ("config", ".gitconfig", ".gitmodules") or p.parent.name == "config")
    )


@pytest.fixture(scope="module")
def values(resources: list[Path]) -> dict[str | None, str]:
    """Every distinct value of libgit2's config files (None: a key without ``=``), each
    with where it was found, as ``git config --list`` gives them."""
    found: dict[str | None, str] = {}
    files = _config_files(resources)
    assert len(files) > 100, len(files)
    for path in files:
        proc = subprocess.run(
            ["git", "config", "--file", str(path), "-z", "--list"],
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        if proc.returncode == 0:
            for key, value in configtext.parse_listing(proc.stdout.decode("utf-8", "replace")):
                found.setdefault(value, f"{path.name}: {key}")
    assert len(found) > 100, len(found)
    return found


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _git_bool(value: str | None, scratch: Path) -> bool | None:
    """``value`` as git reads a boolean (None: git refuses it, "bad boolean config value")."""
    body = "\tb\n" if value is None else f"\tb = {_quoted(value)}\n"
    (scratch / "cfg").write_text("[a]\n" + body, encoding="utf-8")
    proc = subprocess.run(
        ["git", "config", "--file", str(scratch / "cfg"), "--type=bool", "--get", "a.b"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        assert "bad boolean config value" in proc.stderr, proc.stderr
        return None
    assert proc.stdout.strip() in ("true", "false"), proc.stdout
    return proc.stdout.strip() == "true"


def test_every_real_config_value_is_the_boolean_git_reads(
    values: dict[str | None, str], tmp_path: Path
) -> None:
    """``configtext.is_true`` (``core.quotePath``, ``log.showroot``, a remote's
    ``promisor``...) and ``$GIT_ATTR_NOSYSTEM`` == ``git config --type=bool`` (and git's
    ``git_env_bool``) for every value git takes as a boolean; before, ``2``, ``-1``,
    ``1k``... were false."""
    wrong = []
    booleans = 0
    env_was = os.environ.get("GIT_ATTR_NOSYSTEM")
    try:
        for value, where in values.items():
            want = _git_bool(value, tmp_path)
            if want is None:
                continue
            booleans += 1
            if configtext.is_true(value) != want:
                wrong.append((value, where, "is_true", want))
            if value is not None and "\0" not in value:
                os.environ["GIT_ATTR_NOSYSTEM"] = value
                if gitrun.git_attr_nosystem() != want:
                    wrong.append((value, where, "GIT_ATTR_NOSYSTEM", want))
    finally:
        if env_was is None:
            os.environ.pop("GIT_ATTR_NOSYSTEM", None)
        else:
            os.environ["GIT_ATTR_NOSYSTEM"] = env_was
    assert not wrong, wrong
    assert booleans > 20, booleans  # (the numbers, true, false, yes, no, on, off, empty...)


def _vaults_set_to(values: dict[str | None, str], tmp_path: Path, key: str) -> list[tuple[str | None, Path]]:
    """A bare repository for each value of libgit2's files git takes as a boolean (None:
    the key written without ``=``), its config setting ``core.<key>`` to it."""
    template = tmp_path / "template.git"
    if not template.exists():
        subprocess.run(["git", "init", "-q", "--bare", str(template)], check=True)
    config = (template / "config").read_text(encoding="utf-8")
    out = []
    for n, value in enumerate([*values, "input", "INPUT"]):
        if value is not None and ("\0" in value or "\n" in value):
            continue
        if _git_bool(value, tmp_path) is None and value not in ("input", "INPUT"):
            continue
        vault = tmp_path / f"{key}{n}.git"
        shutil.copytree(template, vault)
        line = f"\t{key}\n" if value is None else f"\t{key} = {_quoted(value)}\n"
        (vault / "config").write_text(config + line, encoding="utf-8")
        out.append((value, vault))
    return out


def test_autocrlf_of_every_real_boolean_value_is_git_s(
    values: dict[str | None, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``core.autocrlf`` set to each value of libgit2's files git takes as a boolean (and
    ``input``; and written without ``=``), read by avfs (``wsattrs.autocrlf``: whether the
    mount shows and a checkpoint stores CRLF-converted files) as git reads it: ``input``,
    else its boolean; through libgit2, and through git where the environment names a
    config file (``lineconfig``). Before, ``2``, ``1k``... and the key alone were false."""
    wrong = []
    vaults = _vaults_set_to(values, tmp_path, "autocrlf")
    for via in ("libgit2", "git"):
        if via == "git":
            (tmp_path / "global").write_text("")
            monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "global"))
        for value, vault in vaults:
            is_bool = _git_bool(value, tmp_path)
            want = "input" if value in ("input", "INPUT") else ("true" if is_bool else None)
            got = autocrlf(GitStore(str(vault)))
            if got != want:
                wrong.append((via, value, values.get(value), got, want))
    assert not wrong, wrong
    assert len(vaults) > 20, len(vaults)


def test_every_real_boolean_value_of_a_diff_setting_is_git_s(
    values: dict[str | None, str], tmp_path: Path
) -> None:
    """``log.showroot``, ``core.quotePath`` and ``diff.indentHeuristic`` (on unless set
    false) set to each value of libgit2's files git takes as a boolean, or written
    without ``=``: avfs's reading (``vaultconfig.config_bool``) == git's. Before, the key
    alone was false (read as ``""`` through git, ``"None"`` through libgit2) where git
    reads it true, and so were ``2``, ``1k``..."""
    from avfs_git.core.operations.patchheads import path_quoting
    from avfs_git.core.operations.showdiff import show_root
    from avfs_git.core.store.gitpatch import indent_heuristic

    wrong = []
    readers = {
        "showroot": show_root,
        "quotepath": lambda store: path_quoting(store)("\u53d7") != "\u53d7",
        "indentheuristic": indent_heuristic,
    }
    for key, reader in readers.items():
        for value, vault in _vaults_set_to(values, tmp_path, key):
            want = _git_bool(value, tmp_path)
            if want is None:
                continue
            section = {"showroot": "log", "quotepath": "core", "indentheuristic": "diff"}[key]
            text = (vault / "config").read_text(encoding="utf-8")
            (vault / "config").write_text(text.replace(f"\t{key}", f"[{section}]\n\t{key}"), encoding="utf-8")
            got = reader(GitStore(str(vault)))
            if got != want:
                wrong.append((key, value, got, want))
    assert not wrong, wrong


def test_every_real_repository_s_object_totals_are_git_count_objects(resources: list[Path]) -> None:
    """gc's in-process totals (``objcounts.object_totals``: loose files by their blocks,
    each pack's index count and sizes) == ``git count-objects -v`` of every repository of
    libgit2's resources (index v1 and v2, duplicate packs, loose and packed, empty ones).
    Nothing found: kept as the test of a hand-written reader that had only generated vaults."""
    wrong = []
    compared = 0
    for gitdir in resources:
        proc = subprocess.run(
            ["git", "--git-dir", str(gitdir), "count-objects", "-v"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            continue  # (a submodule's git directory whose core.worktree is not there)
        kv = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
        want = (
            int(kv["count"]) + int(kv["in-pack"]),
            (int(kv["size"]) + int(kv["size-pack"])) * 1024,
        )
        compared += 1
        if object_totals(str(gitdir)) != want:
            wrong.append((str(gitdir), object_totals(str(gitdir)), want))
    assert not wrong, wrong
    assert compared > 70, compared


_VALUES = {"set": True, "unset": False, "unspecified": None}


def _check_attr(work: Path, paths: list[str], attrs: list[str]) -> dict[tuple[str, str], object]:
    """``git check-attr`` of every path and attribute (True set, False unset, None
    unspecified, else the value)."""
    out = subprocess.run(
        ["git", "-C", str(work), "check-attr", "-z", "--stdin", *attrs],
        input=b"".join(p.encode() + b"\0" for p in paths),
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.decode()
    fields = out.split("\0")
    return {
        (fields[i], fields[i + 1]): _VALUES.get(fields[i + 2], fields[i + 2])
        for i in range(0, len(fields) - 1, 3)
    }


def _view_attrs(work: Path, paths: list[str], attrs: list[str]) -> dict[tuple[str, str], object]:
    """The same asked of avfs (``viewattrs.ViewAttributes``: grep's ``diff``, a merge's
    ``conflict-marker-size``) over the committed tree, as `avfs grep --rev` reads it."""
    from avfs_git.core.workspace.viewattrs import ViewAttributes
    from avfs_git.core.workspace.wsview import View

    store = GitStore(str(work / ".git"))
    head = subprocess.run(
        ["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    va = ViewAttributes(store.path, View.of_commit(store, head.stdout.strip()), [a.encode() for a in attrs])
    try:
        return {(p, a): va.get(p, a) for p in paths for a in attrs}
    finally:
        va.close()


def _commit_all(work: Path) -> list[str]:
    def git(*args: str) -> bytes:
        return subprocess.run(
            ["git", "-C", str(work), *args], capture_output=True, check=True, timeout=120
        ).stdout

    git("init", "-q", "-b", "main")
    git("add", "-A", "-f")
    git("-c", "user.name=r", "-c", "user.email=r@example.org", "commit", "-qm", "as released")
    return [p.decode() for p in git("ls-files", "-z").split(b"\0")[:-1]]


def _differences(
    want: dict[tuple[str, str], object], got: dict[tuple[str, str], object]
) -> set[tuple[str, str]]:
    return {
        k
        for k, v in want.items()
        if got[k] != v
        # libgit2's `binary` macro is `-diff -merge -text -crlf`, git's has no -crlf: the same
        # conversions (-text); and check-attr prints a value "unspecified" as unspecified
        and not (k[1] == "crlf" and v is None and got[k] is False)
        and not (v is None and got[k] == "unspecified")
    }


GIT_ATTRS = [
    "diff",
    "eol",
    "text",
    "binary",
    "whitespace",
    "conflict-marker-size",
    "merge",
    "crlf",
    "export-ignore",
]


def test_git_s_own_source_tree_s_attributes_are_git_check_attr_s(tmp_path: Path) -> None:
    """Every file of git 2.39.5's source (4,334, 16 ``.gitattributes``: ``*.bat
    eol=crlf``, ``/t0110/url-* binary``, ``t/t5100``'s ``-whitespace``, cvsroots' ``-crlf``
    ...) and every attribute they name: avfs == ``git check-attr``."""
    work = realdata.owned_copy(realdata.debian_orig(*realdata._GIT_ORIG), tmp_path / "git")
    paths = _commit_all(work)
    assert len(paths) > 4000, len(paths)
    want = _check_attr(work, paths, GIT_ATTRS)
    assert _differences(want, _view_attrs(work, paths, GIT_ATTRS)) == set()
    assert sum(v is not None for v in want.values()) > 3000  # (the case: attributes set)


# what libgit2 reads otherwise than git in its own fixture, left as it is (docs/testing.md):
# `pat8\ with\ spaces attr8` (git: no escape, the pattern is `pat8\`), `empty=` (git: the
# empty string; libgit2: set), and a macro that names itself through two others
LEFT = {
    ("a1/pat8 with spaces", "attr8"),
    ("a2/pat5", "empty"),
    ("a2/pat8", "again"),
    ("macro_bad", "firstmacro"),
    ("sub/macro_bad", "firstmacro"),
    ("deep/macro_bad", "firstmacro"),
}


def test_libgit2_s_attribute_fixtures_are_read_as_git_check_attr_reads_them(
    resources: list[Path], tmp_path: Path
) -> None:
    """libgit2's ``attr`` repository (its root ``gitattributes``, ``sub/``, ``sub/sub/``,
    ``info/attributes``: macros, ``!attr``, ``-attr``, values) and its attribute test
    files ``attr0``..``attr4`` each as a directory's ``.gitattributes``, asked of every path
    its patterns name (and below them) and every attribute they set: avfs == ``git
    check-attr`` but :data:`LEFT`. Before, ``!pat1 attr1`` (a negative pattern, which git
    ignores) set ``attr1`` on every other path of its directory."""
    fixture = next(p for p in resources if p.parent.name == "attr").parent
    work = tmp_path / "attr"
    shutil.copytree(fixture, work, ignore=shutil.ignore_patterns(".gitted"))
    (work / "gitattributes").rename(work / ".gitattributes")
    for n in range(5):
        (work / f"a{n}").mkdir()
        shutil.copy(work / f"attr{n}", work / f"a{n}" / ".gitattributes")
    files = _commit_all(work)
    (work / ".git" / "info").mkdir(exist_ok=True)
    shutil.copy(fixture / ".gitted" / "info" / "attributes", work / ".git" / "info" / "attributes")
    rules = [(f.rpartition("/")[0], (work / f).read_text()) for f in files if f.endswith(".gitattributes")]
    rules.append(("", (work / ".git/info/attributes").read_text()))
    paths, attrs = set(files), set()
    for d, text in rules:
        for line in text.splitlines():
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            for w in words[1:]:
                if w.startswith("#"):
                    break
                attrs.add(w.lstrip("-!").partition("=")[0])
            if words[0].startswith("[attr]"):
                attrs.add(words[0][6:])
                continue
            name = line.strip().partition(" attr")[0] if "\\ " in line else words[0]
            name = (
                re.sub(r"\[[^]]*\]", "a", name.lstrip("!").replace("\\", ""))
                .replace("*", "x")
                .replace("?", "q")
            )
            for top in {d, "sub", "deep", ""}:
                at = f"{top}/{name.strip('/')}".lstrip("/")
                paths |= {at, f"{at}/file"}
    attr_names = sorted(a for a in attrs if re.fullmatch(r"[A-Za-z0-9_.][-A-Za-z0-9_.]*", a))
    asked = sorted(p for p in paths if p and not p.startswith(".git/"))
    want = _check_attr(work, asked, attr_names)
    assert _differences(want, _view_attrs(work, asked, attr_names)) == LEFT
    assert len(asked) > 150 and len(attr_names) > 40, (len(asked), len(attr_names))


def test_git_s_listing_of_every_real_tree_is_the_store_s_walk(resources: list[Path]) -> None:
    """``treelist.list_tree`` (git's ``ls-tree -r -t -z`` read: a lazy mount's sizes and
    index) and its ``blob_ids`` == the store's own walk (``walk_tree`` over
    ``GitStore.tree_items``) for the tree of every ref of every repository of libgit2's
    resources: a 2005 tree's modes, submodules, names of control bytes and quotes, a
    shallow clone's. Its test held generated trees only."""
    from avfs_git.core.store import treelist

    trees = entries = 0
    wrong = []
    for gitdir in resources:
        proc = subprocess.run(
            ["git", "--git-dir", str(gitdir), "for-each-ref", "--format=%(objectname)^{tree}"],
            capture_output=True,
            text=True,
            check=False,
        )
        tips = sorted(set(proc.stdout.split())) if proc.returncode == 0 else []
        if not tips:
            continue
        peeled = subprocess.run(
            ["git", "--git-dir", str(gitdir), "rev-parse", *tips], capture_output=True, text=True, check=False
        )
        store = GitStore(str(gitdir))
        for tree in sorted(set(peeled.stdout.split())):
            out = treelist.git_listing(str(gitdir), tree)
            if out is None:
                continue  # (git cannot read it: a tree whose objects the fixture lacks)
            try:
                walked = treelist.walk_tree(tree, store.tree_items)
            except Exception as exc:  # (a tree the store cannot read is a difference)
                wrong.append((str(gitdir), tree, repr(exc)))
                continue
            listed = treelist.list_tree(str(gitdir), tree, store.tree_items, out)
            blobs = [oid for _, mode, oid in walked if mode not in (0o040000, 0o160000)]
            if listed != walked or treelist.blob_ids(out) != blobs:
                wrong.append((str(gitdir), tree, [x for x in listed if x not in walked][:3]))
            trees += 1
            entries += len(listed)
    assert not wrong, wrong
    assert trees > 200 and entries > 1500, (trees, entries)


def test_every_real_reflog_line_reads_as_git_reads_it(resources: list[Path]) -> None:
    """``refs.reflog_entry`` (the change stream's ``ref_moved`` events) == ``git reflog``
    (new id, time, message) for every line of every reflog of libgit2's resources."""
    from avfs_git.core.store import refs

    lines = 0
    wrong = []
    for gitdir in resources:
        for log in sorted((gitdir / "logs").rglob("*")) if (gitdir / "logs").is_dir() else []:
            if not log.is_file():
                continue
            name = log.relative_to(gitdir / "logs").as_posix()
            argv = ["git", "--git-dir", str(gitdir), "reflog", "show", "--no-abbrev", "--date=unix", name]
            proc = subprocess.run(
                [*argv, "--format=%H%x00%gD%x00%gs", "--"],
                capture_output=True,
                check=False,
            )
            if proc.returncode != 0:
                continue  # (a ref git does not resolve: a reflog of a ref since deleted)
            want = [r.decode("utf-8", "replace").split("\0") for r in proc.stdout.splitlines()]
            got = [refs.reflog_entry(x.decode("utf-8", "replace")) for x in log.read_bytes().splitlines()]
            mine = [(e[1], f"{name}@{{{int(e[2])}}}", e[3]) for e in reversed(got) if e is not None]
            have = subprocess.run(  # (git's walk leaves out an entry whose commit is missing)
                ["git", "--git-dir", str(gitdir), "cat-file", "--batch-check=%(objectname)"],
                input="".join(m[0] + "\n" for m in mine),
                capture_output=True,
                text=True,
                check=True,
            ).stdout.splitlines()
            mine = [m for m in mine if m[0] in have]  # ("<id> missing" is not an id)
            if [tuple(w) for w in want] != mine:
                wrong.append(
                    (
                        str(log),
                        [x for x in want if tuple(x) not in mine][:2],
                        [x for x in mine if list(x) not in want][:2],
                    )
                )
            lines += len(want)
    assert not wrong, wrong
    assert lines > 200, lines


def test_a_move_by_a_committer_git_names_with_a_tab_is_in_the_change_stream(vault: Any) -> None:
    """git writes a committer's name as it is given, a tab within it too (``fmt_ident``
    trims only its ends): a move of the fork's branch by such a person's `git update-ref`
    is a ``ref_moved`` event with git's message. Before, the line was split at that tab,
    read as no entry, and the move was missing from `avfs watch`."""
    from avfs_git.core.vaults.changes import changes_since

    cursor = changes_since(vault, "main", None).cursor
    tip = subprocess.run(
        ["git", "--git-dir", vault.path, "rev-parse", "refs/heads/main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = subprocess.run(
        ["git", "--git-dir", vault.path, "rev-parse", f"{tip}^{{tree}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env = {**os.environ, "GIT_COMMITTER_NAME": "Ada\tLovelace", "GIT_AUTHOR_NAME": "Ada\tLovelace"}
    new = subprocess.run(
        ["git", "--git-dir", vault.path, "commit-tree", tree, "-p", tip, "-m", "by hand"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.strip()
    subprocess.run(
        ["git", "--git-dir", vault.path, "update-ref", "-m", "moved by git", "refs/heads/main", new, tip],
        check=True,
        env=env,
    )
    log = (Path(vault.path) / "logs" / "refs" / "heads" / "main").read_bytes()
    assert b"Ada\tLovelace <" in log.splitlines()[-1]  # (the case: git kept the tab)
    moved = [e for e in changes_since(vault, "main", cursor).events if e.kind == "ref_moved"]
    assert [(e.old, e.new, e.summary, e.source) for e in moved] == [(tip, new, "moved by git", "git")]


def test_every_real_config_s_filemode_is_the_one_git_reads(resources: list[Path], tmp_path: Path) -> None:
    """``filemode.trusts_exec_bit`` (whether a checkpoint and the mount's index take the
    exec bit: avfs reads ``core.fileMode`` itself where it can, asks git where it
    cannot) == ``git config --type=bool core.fileMode`` (true where unset), each of
    libgit2's config files as a vault's config; the files git refuses (``config7``: text
    after a section's closing quote) are left out, as git reads nothing of them. Nothing
    found: kept as the reader's test on real files."""
    from avfs_git.core.store.filemode import trusts_exec_bit

    template = tmp_path / "template.git"
    subprocess.run(["git", "init", "-q", "--bare", str(template)], check=True)
    wrong = []
    compared = 0
    for n, path in enumerate(_config_files(resources)):
        vault = tmp_path / f"v{n}.git"
        shutil.copytree(template, vault)
        shutil.copy(path, vault / "config")
        proc = subprocess.run(
            ["git", "--git-dir", str(vault), "config", "--type=bool", "--get", "core.filemode"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode not in (0, 1):
            continue  # (git refuses the file, or its value)
        want = proc.returncode == 1 or proc.stdout.strip() == "true"
        compared += 1
        if trusts_exec_bit(str(vault)) != want:
            wrong.append((str(path), want))
    assert not wrong, wrong
    assert compared > 80, compared


def test_every_real_config_s_includes_are_among_those_avfs_follows(resources: list[Path]) -> None:
    """``gitrun.config_includes`` (the files a config includes, a superset of what git
    reads, followed where avfs looks for ``core.autocrlf`` itself) holds every file ``git
    config --list --show-origin --includes`` took a value from, or says it cannot read the
    file (None: libgit2 or git decide), for each of libgit2's config files
    (``config-include`` includes ``config-included``). Nothing found."""
    from avfs_git.core.store.gitrun import config_includes

    wrong = []
    included = 0
    for path in _config_files(resources):
        proc = subprocess.run(
            ["git", "config", "--file", str(path), "--list", "--show-origin", "--includes", "-z"],
            capture_output=True,
            check=False,
            cwd=path.parent,
        )
        if proc.returncode != 0:
            continue
        items = proc.stdout.split(b"\0")
        origins = {os.path.realpath(items[i].decode()[5:]) for i in range(0, len(items) - 1, 2)}  # (absolute)
        origins.discard(os.path.realpath(path))
        got = config_includes(str(path))
        if got is not None and not origins <= {os.path.realpath(g) for g in got}:
            wrong.append((str(path), origins, got))
        included += len(origins)
    assert not wrong, wrong
    assert included >= 1, included


def _tree_names(gitdir: Path) -> set[bytes]:
    """Every name of every tree stored in ``gitdir`` (git's ``cat-file --batch``)."""
    listed = subprocess.run(
        [
            "git",
            "--git-dir",
            str(gitdir),
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objectname) %(objecttype)",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    trees = "".join(line.split()[0] + "\n" for line in listed if line.endswith(" tree"))
    out = subprocess.run(
        ["git", "--git-dir", str(gitdir), "cat-file", "--batch"],
        input=trees.encode(),
        capture_output=True,
        check=False,
    ).stdout
    names: set[bytes] = set()
    i = 0
    while i < len(out):
        nl = out.index(b"\n", i)
        size = int(out[i:nl].split()[2])
        body, i = out[nl + 1 : nl + 1 + size], nl + 2 + size
        j = 0
        while j < len(body):
            zero = body.index(b"\0", j)
            names.add(body[body.index(b" ", j) + 1 : zero])
            j = zero + 21
    return names


def test_every_real_tree_entry_name_is_refused_as_git_fsck_refuses_it(
    resources: list[Path], tmp_path: Path
) -> None:
    """``gitnames.refusal`` (what a checkpoint leaves out: ``.git`` and its NTFS and HFS+
    synonyms, ``.gitmodules`` links...) == ``git fsck --strict`` for every name of every
    tree of libgit2's resources (899: ``nasty``'s ``.git``, ``.GIT``, ``git~1``...), each
    as a file, a link and a directory (``test_gitnames._differential``). Its test held
    git's rules and generated names. Nothing found."""
    from .test_gitnames import _differential

    names = set().union(*(_tree_names(g) for g in resources))
    names -= {b"", b".", b".."}
    assert len(names) > 800 and b".git" in {n.lower() for n in names}, len(names)
    assert _differential(tmp_path, sorted(n for n in names if b"/" not in n)) > 2400
