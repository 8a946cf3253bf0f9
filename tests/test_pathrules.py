"""Path policies, the model: ``[paths]`` and ``[forks."PAT".paths]`` parsed and layered,
bad patterns refused with one clear error, ``avfs policy show`` / ``check --path``
explaining the rule, and the matching checked against git's own on a real project."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from avfs_git.core.errors import PolicyError
from avfs_git.policy import Policy
from avfs_git.policy.pathrules import PathRule, PathRules

from . import realdata

POLICY = """version = 1
[paths]
read_only   = ["migrations/**", ".github/workflows/**"]
hidden      = [".env", "secrets/**"]
append_only = ["logs/*.log"]

[forks."review-*".paths]
read_only = ["**"]
"""


def test_kinds_and_the_rule_that_matched() -> None:
    pol = Policy.from_text(POLICY, "vault.toml")
    agent = pol.path_rules("agent-1")
    m = agent.match("migrations/0001_init.sql")
    assert m is not None and (m.kind, m.pattern, m.source) == ("read_only", "migrations/**", "vault.toml")
    assert agent.match("deep/down/.env").kind == "hidden"  # type: ignore[union-attr]
    assert agent.match("secrets/key.pem").kind == "hidden"  # type: ignore[union-attr]
    assert agent.match("logs/app.log").kind == "append_only"  # type: ignore[union-attr]
    assert agent.match("logs/sub/app.log") is None  # `*` does not cross a slash
    assert agent.match("src/main.py") is None
    assert agent.match("") is None and agent.match(".git") is None
    # a review fork gets the extra rule; a hidden path stays hidden (the strictest kind wins)
    review = pol.path_rules("review-7")
    m = review.match("src/main.py")
    assert m is not None and (m.kind, m.fork_pattern) == ("read_only", "review-*")
    assert review.match(".env").kind == "hidden"  # type: ignore[union-attr]
    assert pol.path_rules(None).match("src/main.py") is None


def test_home_and_vault_files_layer_as_one_list(tmp_path: Path) -> None:
    home = tmp_path / "home"
    vault = tmp_path / "v.git"
    (vault / "avfs").mkdir(parents=True)
    (home).mkdir()
    (home / "policy.toml").write_text('version = 1\n[paths]\nread_only = ["docs/**"]\n')
    # the vault's file comes after the home's: its `!` re-includes what the home's holds
    (vault / "avfs" / "policy.toml").write_text('version = 1\n[paths]\nread_only = ["!docs/notes.md"]\n')
    rules = Policy.load(str(home), str(vault)).path_rules("main")
    assert rules.match("docs/index.md").kind == "read_only"  # type: ignore[union-attr]
    assert rules.match("docs/notes.md") is None
    shown = Policy.load(str(home), str(vault)).to_dict()
    assert [(r["pattern"], r["source"]) for r in shown["paths"]] == [
        ("docs/**", str(home / "policy.toml")),
        ("!docs/notes.md", str(vault / "avfs" / "policy.toml")),
    ]


def test_a_policy_without_path_rules_keeps_its_hash() -> None:
    plain = Policy.from_text("version = 1\n")
    assert plain.hash == Policy.default().hash
    assert Policy.from_text(POLICY).hash != plain.hash


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('[paths]\nhidden = ["#secret"]', "matches nothing"),
        ('[paths]\nread_only = ["src/\\\\"]', "is not a git pattern"),
        ('[paths]\nread_only = ["!"]', "is not a git pattern"),
        ('[paths]\nread_only = [""]', "is not a pattern"),
        ('[paths]\nread_only = ["a\\u0000b"]', "NUL"),
        ('[paths]\nhidden = ["["]', "matches nothing"),
        ('[paths]\nwritable = ["x"]', "unknown key 'writable'"),
        ("[paths]\nhidden = 3", "must be a list"),
        ('[paths]\nhidden = ["*"]', "hides the whole tree"),
        ('[paths]\nhidden = ["**"]', "hides the whole tree"),
        ('[paths]\nhidden = ["/*"]', "hides the whole tree"),
        ('[forks."r-*".paths]\nhidden = ["**/*"]', "hides the whole tree"),
        ('[forks."r-*"]\nread_only = ["x"]', "unknown key 'read_only'"),
        ("forks = 1", "'forks' must be a table"),
    ],
)
def test_bad_path_rules_are_one_clear_error(body: str, says: str) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_text("version = 1\n" + body + "\n", "p.toml")
    assert says in info.value.message
    assert info.value.details["file"] == "p.toml" and info.value.details["line"] is not None


def test_rules_that_together_hide_everything_are_refused() -> None:
    pol = Policy.from_text(
        'version = 1\n[paths]\nhidden = ["[a-z]*", "_*", "A*"]\n[forks."r-*".paths]\nhidden = [".*"]\n'
    )
    assert pol.path_rules("main").match("a") is not None  # alone, each table leaves something
    with pytest.raises(PolicyError, match="hide the whole tree"):
        pol.path_rules("r-1")


# -- the CLI ---------------------------------------------------------------------------------
def _vault_policy(cli, text: str) -> Path:  # type: ignore[no-untyped-def]
    r = cli("--json", "vault", "path", "proj")
    assert r.code == 0, r.out
    vault_dir = Path(r.json()["path"])
    (vault_dir / "avfs" / "policy.toml").write_text(text)
    return vault_dir


def test_policy_check_path_and_show(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("vault", "create", "proj").code == 0
    vault_dir = _vault_policy(cli, POLICY)
    r = cli(
        "--json", "--vault", "proj:main", "policy", "check", "--path", "secrets/key.pem", "--path", "src/a.py"
    )
    assert r.code == 0, r.out + r.err
    doc = r.json()
    assert doc["kind"] == "policy_path_check" and doc["fork"] == "main"
    assert doc["paths"][0] == {
        "path": "secrets/key.pem",
        "kind": "hidden",
        "rule": {
            "kind": "hidden",
            "pattern": "secrets/**",
            "source": str(vault_dir / "avfs" / "policy.toml"),
            "fork_pattern": None,
        },
    }
    assert doc["paths"][1] == {"path": "src/a.py", "kind": "writable", "rule": None}
    assert cli("--vault", "proj", "vault", "fork", "review-1").code == 0
    human = cli("--vault", "proj:review-1", "policy", "check", "--path", "src/a.py")
    assert human.code == 0
    assert "read_only by '**' ([forks.\"review-*\".paths]" in human.out
    shown = cli("--json", "--vault", "proj", "policy", "show").json()["policy"]
    assert [r["pattern"] for r in shown["paths"]] == [
        "migrations/**",
        ".github/workflows/**",
        ".env",
        "secrets/**",
        "logs/*.log",
    ]
    assert shown["forks"][0]["pattern"] == "review-*"


def test_policy_check_refuses_a_bad_pattern_clearly(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("vault", "create", "proj").code == 0
    vault_dir = _vault_policy(cli, 'version = 1\n[paths]\nread_only = ["ok/**", "bad\\\\"]\n')
    before = (vault_dir / "avfs" / "policy.toml").read_bytes()
    r = cli("--json", "--vault", "proj", "policy", "check", "--path", "ok/x")
    assert r.code == 2
    err = r.json()["error"]
    assert err["code"] == "policy_invalid"
    assert "read_only: 'bad\\\\' is not a git pattern" in err["message"] and err["details"]["line"] == 3
    assert (vault_dir / "avfs" / "policy.toml").read_bytes() == before  # nothing touched
    r = cli("--json", "--vault", "proj", "policy", "check", "--path", "x", "--", "ls")
    assert r.code == 2 and r.json()["error"]["code"] == "usage"


# -- against git itself --------------------------------------------------------------------------
PATTERN_SETS = [
    ["*.py"],
    ["/src", "!src/attr/__init__.py"],
    ["src/**/test_*.py", "tests/**"],
    ["**/conftest.py", "docs/"],
    ["*.toml", "!pyproject.toml"],
    ["changelog.d/*.md", "[a-c]*"],
    ["src/attr/*.pyi", "**/_*"],
    ["tests/", "!tests/test_init.py"],  # a directory's match cannot be undone below it
    ["a?trs/", "src/*/", "!src/attrs/"],
    ["docs/**/*.rst", "*.cfg", "\\#*", "/README*"],
    ["*/", "!src/"],
    ["**/*.md", "!**/CHANGELOG.md", "tests/typing_*.py"],
    ["src/**", "!src/attr/_*.py", "!src/*.py"],  # src/** holds src/attr itself: no way back in
    ["**/attr", "!src/attr/", "src/attr/_*"],
    ["*", "!*/", "!*.md"],
]


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = realdata.extract(realdata.pypi_sdist("attrs", "24.2.0"), tmp_path_factory.mktemp("attrs"))
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    files = sorted(
        os.path.relpath(os.path.join(d, f), root)
        for d, dirs, fs in os.walk(root)
        for f in fs
        if ".git" not in Path(d).relative_to(root).parts
    )
    assert len(files) > 100
    return root, files


@pytest.mark.parametrize("patterns", PATTERN_SETS, ids=[" ".join(p) for p in PATTERN_SETS])
def test_matching_agrees_with_git(real_tree: tuple[Path, list[str]], patterns: list[str]) -> None:
    """Every file of attrs' sdist: held by the rules exactly when git's ignore machinery
    (``git ls-files -o -i``, which applies a directory's exclusion to what is below it)
    and ``git check-ignore --no-index`` say the path is ignored."""
    root, files = real_tree
    exclude = root / ".git" / "info" / "exclude"
    exclude.write_text("".join(p + "\n" for p in patterns))
    listed = subprocess.run(
        ["git", "ls-files", "-o", "-i", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    git_ignored = {p for p in listed.split("\0") if p}
    rules = PathRules([PathRule("read_only", p, "t") for p in patterns])
    ours = {f for f in files if rules.match(f) is not None}
    assert ours == git_ignored, (sorted(ours - git_ignored)[:5], sorted(git_ignored - ours)[:5])
    # check-ignore answers path by path, for the files a pattern names directly
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "-z", "--stdin"],
        cwd=root,
        input="\0".join(files).encode(),
        capture_output=True,
        check=False,
    )
    checked = {p for p in proc.stdout.decode().split("\0") if p}
    assert checked <= git_ignored  # (a file below an excluded directory it does not name)
    assert {f for f in checked if rules.match(f) is None} == set()


def test_policy_show_json_schema_lists_paths(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("vault", "create", "proj").code == 0
    _vault_policy(cli, POLICY)
    doc = cli("--json", "--vault", "proj", "policy", "show").json()
    assert json.dumps(doc["policy"]["paths"]).count("hidden") == 2
