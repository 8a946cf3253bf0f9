"""More of the docs run as written (tests/test_docs.py has getting-started, api.md's example,
agents.md's Python steps and the README's Python block): the README's shell blocks, the
Python of mcp.md, watch.md's three commands. A newcomer ran each of these (the
twenty-eighth round); these keep them true. The twenty-ninth round's newcomer added the
Python of proxy.md and policy.md."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from .test_docs import ROOT, _blocks, _run_sh_blocks


def _readme_sh(marker: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [m.group(1) for m in re.finditer(r"^```sh\n(.*?)^```", text, re.M | re.S)]
    return next(b for b in blocks if marker in b)


def _project(tmp_path: Path) -> Path:
    """./proj with what the README's lines run: `make` (its default target), `make test`,
    and `make` in src/."""
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "Makefile").write_text("all:\n\techo built > built.txt\ntest:\n\techo testing\n")
    (proj / "src" / "Makefile").write_text("all:\n\techo src > src.txt\n")
    (proj / ".gitignore").write_text("built.txt\nsrc.txt\n")
    return proj


def _failed(ran: list[tuple[str, str, str, int]], allowed: dict[str, int]) -> list[tuple[str, int, str]]:
    return [(ln, rc, err) for ln, _, err, rc in ran if rc != allowed.get(ln, 0)]


def test_readme_taste_runs_as_written(tmp_path: Path) -> None:
    """The README's "A taste", every line in order in one shell, from a fresh home: each
    exits 0 (the watch, which follows until Ctrl-C, ended by `timeout`: 124), prints what
    its comment says, and `--json` lines print one document."""
    _project(tmp_path)
    block = _readme_sh("avfs vault create proj --from ./proj")
    watch = "avfs --json watch proj:agent1"
    lines = []
    for ln in block.splitlines():
        if ln.startswith(watch + " "):  # (it follows for ever)
            ln = "timeout 5 " + ln
        lines.append(ln)
    block = "\n".join(lines) + "\navfs unmount proj:agent1\n"  # (proxy exec's mount, kept warm)
    ran = _run_sh_blocks([block], tmp_path, tmp_path)
    by = {ln.split("#")[0].strip(): (out, err, rc) for ln, out, err, rc in ran}
    timed = next(k for k in by if k.startswith("timeout 5 " + watch))
    assert _failed(ran, {next(ln for ln, *_ in ran if ln.startswith("timeout 5")): 124}) == []
    assert json.loads(by[timed][0].splitlines()[0])["kind"] == "watch_cursor"
    for line in (
        "avfs --json --vault proj:agent1 log",
        "avfs --json --vault proj:agent1 proxy exec -- make test",
    ):
        doc = json.loads(by[line][0])  # exactly one document
        assert doc["kind"] in ("log", "proxy_exec_result"), doc
    assert json.loads(by["avfs --json --vault proj:agent1 proxy exec -- make test"][0])["exit_code"] == 0
    assert "A notes.md" in by["avfs --vault proj:agent1 status"][0]
    assert by["avfs --vault proj:agent1 policy check -- rm -rf /"][0].startswith("denied: ")
    assert "writable" in by["avfs --vault proj:agent1 policy check --path secrets/key.pem"][0]
    # inside the mount, avfs acts on that fork and runs where you are (src/'s Makefile)
    inside = by['(cd "$MNT/src" && avfs status && avfs proxy exec -- make)']
    assert inside[0].startswith("on proj:agent1 ") and "exit 0" in inside[1], inside
    assert (tmp_path / "copy" / "notes.md").read_text() == "plan"  # merged, cloned: just git
    assert (tmp_path / "copy" / "src" / "Makefile").exists()
    import avfs_git
    from avfs_git.ops import mounts

    assert mounts.list_mounts(avfs_git.open_home()) == []


def test_readme_agent_block_runs_as_written(tmp_path: Path) -> None:
    """The README's "For an agent, in one command": up, the agent in its fork (here a
    shell line in place of `claude`), down --keep, apply: the agent's file is in ./proj."""
    _project(tmp_path)
    block = _readme_sh("avfs up ./proj --agent claude")
    assert '(cd "$MNT" && claude)' in block
    block = block.replace('(cd "$MNT" && claude)', '(cd "$MNT" && echo work > agent.txt)')
    ran = _run_sh_blocks([block], tmp_path, tmp_path)
    assert _failed(ran, {}) == []
    assert (tmp_path / "proj" / "agent.txt").read_text() == "work\n"
    import avfs_git
    from avfs_git.ops import mounts

    assert mounts.list_mounts(avfs_git.open_home()) == []


def test_mcp_python_block_runs_and_fails_as_it_says(tmp_path: Path) -> None:
    """mcp.md's Python block (its `serve` aside: it serves until stdin closes) on a home
    with proj:agent1, and its word on failures: `call` raises the AvfsError whose code is
    the error document's."""
    import avfs_git
    from avfs_git.core.errors import VaultNotFoundError

    home_path = str(tmp_path / "mcp-home")
    home = avfs_git.open_home(home_path)
    home.create_vault("proj").create_fork("main", "agent1")
    block = next(body for lang, body in _blocks("mcp.md") if lang == "python")
    assert 'serve("/home/me/.avfs", "proj:agent1")' in block
    block = block.replace('serve("/home/me/.avfs", "proj:agent1")', "pass").replace(
        "/home/me/.avfs", home_path
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "mcp.md", "exec"), {})
    doc = json.loads(out.getvalue())
    assert (doc["kind"], doc["vault"], doc["fork"]) == ("status", "proj", "agent1")
    from avfs_git.mcp import AvfsTools

    with pytest.raises(VaultNotFoundError) as exc:
        AvfsTools(home_path, "proj:agent1").call("status", {"vault": "nope"})
    assert exc.value.code == "vault_not_found"


def test_watch_commands_run_as_written(tmp_path: Path) -> None:
    """watch.md's three commands: a fork followed, the vault followed (both until Ctrl-C:
    here `timeout`), and `--once --since "$CURSOR"` giving what came after the cursor."""
    _project(tmp_path)
    block = next(body for lang, body in _blocks("watch.md") if lang == "sh")
    follow = [ln for ln in block.splitlines() if "--once" not in ln]
    once = next(ln for ln in block.splitlines() if "--once" in ln)
    setup = (
        "avfs vault create proj --from ./proj\navfs vault fork proj agent1\n"
        "CURSOR=$(avfs --json watch proj:agent1 --once | tail -n 1 | python3 -c "
        "'import json,sys; print(json.load(sys.stdin)[\"cursor\"])')\n"
        "avfs --vault proj:agent1 write w.txt hello\n"
    )
    ran = _run_sh_blocks([setup, *("timeout 5 " + ln for ln in follow), once], tmp_path, tmp_path)
    assert _failed(ran, {"timeout 5 " + ln: 124 for ln in follow}) == []
    for _, out, _, _ in ran[-3:-1]:
        assert json.loads(out.splitlines()[0])["kind"] == "watch_cursor"
    docs = [json.loads(ln) for ln in ran[-1][1].splitlines()]
    assert [d["kind"] for d in docs] == ["watch_event", "watch_cursor"], docs
    assert (docs[0]["event"]["kind"], docs[0]["event"]["path"]) == ("created", "w.txt")


def _home_with_proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """$AVFS_HOME (what `open_home()` in the docs' blocks opens) holding proj:agent1."""
    import avfs_git

    home_path = str(tmp_path / "docs-home")
    monkeypatch.setenv("AVFS_HOME", home_path)
    home = avfs_git.open_home(home_path)
    home.create_vault("proj").create_fork("main", "agent1")
    home.close()
    return home_path


def test_proxy_python_block_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """proxy.md's Python: `exec_in(ws, ["pytest", "-q"])` on proj:agent1. Run by a newcomer,
    whose pytest was the one in avfs's own .venv (outside what the sandbox shows): exit
    127, "No such file or directory", no word why; now `spawn_error` says where it is."""
    import shutil

    import avfs_git
    from avfs_git.ops import mounts

    home_path = _home_with_proj(tmp_path, monkeypatch)
    block = next(body for lang, body in _blocks("proxy.md") if lang == "python" and "exec_in" in body)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(block, "proxy.md", "exec"), {})
    finally:
        home = avfs_git.open_home(home_path)
        for m in mounts.list_mounts(home):
            mounts.unmount(home, home.vault(m.vault), m.fork, lazy=True)
        home.close()
    lines = out.getvalue().splitlines()
    doc = eval(lines[-1], {})  # print(res.to_dict()): the envelope, as a dict's repr
    assert doc["request"]["argv"] == ["pytest", "-q"] and doc["decision"]["action"] == "allow"
    result = doc["result"]
    where = shutil.which("pytest")
    if result["exit_code"] == 127:  # not in the sandbox: then said why, when the host has one
        shown = where is None or where.startswith(("/usr/", "/bin/", "/opt/"))
        assert shown or f"on the host it is {where}" in result["spawn_error"], result
    else:  # ran: pytest's own code (5: no tests collected in the empty fork)
        assert result["spawn_error"] is None and result["exit_code"] in (0, 5), result


def test_policy_python_block_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """policy.md's Python named `home_dir, vault_dir`, defined nowhere (a NameError as
    written); it opens the home and its vault now, and says what it classified."""
    _home_with_proj(tmp_path, monkeypatch)
    block = next(body for lang, body in _blocks("policy.md") if lang == "python")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "policy.md", "exec"), {})
    first, second, third = out.getvalue().splitlines()
    assert first.startswith("True ") and "git" in second and third.split()[0]
