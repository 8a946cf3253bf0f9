"""Config booleans as git reads them, at their edges. What a checkpoint stores of a CRLF
file under each form of ``core.autocrlf`` is what ``git add`` stores with the same config and the same history (the thirty-fourth round's
review): realdata9 read a bare ``autocrlf`` line (no ``=``) as true where the mount shows
files, but the checkpoint's cleaner read pygit2's None as the string "None", false: a
file whose CRLF the index already held was stored with LF, where git keeps CRLF (its
"safer autocrlf": a path whose indexed blob has CRLF is not converted)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home

FORMS = [None, "true", "2", "input", "false", "0"]  # (None: the key alone, no `=`)


def _line(value: str | None) -> str:
    return "[core]\n\tautocrlf\n" if value is None else f"[core]\n\tautocrlf = {value}\n"


def _git_stores(tmp_path: Path, value: str | None, first: bytes, second: bytes) -> tuple[bytes, bytes]:
    """What plain git stores of ``x.txt`` (written ``first``, committed with no setting;
    the setting added; written ``second``, added): both blobs' bytes."""
    repo = tmp_path / "plain"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    (repo / "x.txt").write_bytes(first)
    subprocess.run([*git, "add", "x.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "1"], check=True)
    with open(repo / ".git" / "config", "a", encoding="utf-8") as fh:
        fh.write(_line(value))
    (repo / "x.txt").write_bytes(second)
    subprocess.run([*git, "add", "x.txt"], check=True)
    blob = subprocess.run([*git, "rev-parse", ":x.txt"], check=True, capture_output=True, text=True).stdout
    old = subprocess.run([*git, "show", "HEAD:x.txt"], check=True, capture_output=True).stdout
    new = subprocess.run([*git, "cat-file", "blob", blob.strip()], check=True, capture_output=True).stdout
    return old, new


@pytest.mark.parametrize("value", FORMS, ids=lambda v: "bare" if v is None else v)
def test_a_checkpoint_stores_a_crlf_file_as_git_add_does_under_each_autocrlf(
    home: Home, tmp_path: Path, value: str | None
) -> None:
    first, second = b"a\r\nb\r\n", b"a\r\nc\r\n"
    want = _git_stores(tmp_path, value, first, second)
    vault = home.create_vault("u")
    ws = vault.workspace()
    ws.write("x.txt", first)
    checkpoint.save(vault, message="1")
    with open(Path(vault.path) / "config", "a", encoding="utf-8") as fh:
        fh.write(_line(value))
    vault = home.vault("u")
    ws = vault.workspace()
    ws.write("x.txt", second)
    checkpoint.save(vault, message="2")
    git = ["git", "-C", vault.path]
    got = tuple(
        subprocess.run(
            [*git, "show", f"refs/heads/{ws.fork}{at}:x.txt"], check=True, capture_output=True
        ).stdout
        for at in ("~1", "")
    )
    assert got == want, (value, got, want)  # (main, bare: the second stored with LF)


EDGES = ["2147483647", "-2147483647", "-2147483648", "2147483648", "2g", "-2g", "1g", "-1g", "0x7fffffff"]
EDGES += ["-0x80000000", "2097151k", "2097152k", "-2097152k", "017", "0", "-0", "+5", " 7", "1m", "08"]


def test_config_booleans_at_the_edges_of_git_s_int_are_git_s() -> None:
    """``configtext.git_bool`` at the edges of the C int git reads a number into: git's
    bound is ``-INT_MAX`` (``-2147483648`` and ``-2g`` refused), found by the review of
    realdata9's reader, which took them as true."""
    from avfs_git.core.store.configtext import git_bool

    wrong = []
    for value in EDGES:
        proc = subprocess.run(
            ["git", "-c", f"x.y={value}", "config", "--type=bool", "x.y"], capture_output=True, text=True
        )
        want = None if proc.returncode else proc.stdout.strip() == "true"
        if git_bool(value) != want:
            wrong.append((value, git_bool(value), want))
    assert not wrong, wrong


def test_a_core_eol_that_is_not_utf8_reads_as_unset_as_git_reads_it(home: Home) -> None:
    """``core.eol = \\xff`` in the vault's config: pygit2 raised `UnicodeDecodeError` from
    the attributes handle (the review of the thirty-fourth round); git reads it as unset."""
    from avfs_git.core.store.gitsmudge import attributes_handle

    vault = home.create_vault("u")
    with open(Path(vault.path) / "config", "ab") as fh:
        fh.write(b"[core]\n\teol = \xff\n")
    repo, scratch = attributes_handle(vault.path, {"": b"* text\n"})
    try:
        assert repo.workdir is not None
    finally:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
