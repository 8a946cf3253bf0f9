"""What a simple command's words show besides its program, for the classifier: writes
(redirections, ``tee``, ``sort -o``, awk's ``print >``, sed's ``w``), code it runs that the
line does not show (the ``builtin:opaque`` finding), git working on a tree outside, and the
files the command line writes, touches and runs. ``Classifier`` builds on it.
"""

from __future__ import annotations

import posixpath
from typing import Final

from .gitruns import git_runs_code, git_shell_texts
from .lexer import Budget, Word
from .model import (
    BUILTIN_GIT_CODE,
    BUILTIN_OPAQUE,
    BUILTIN_REDIRECT,
    BUILTIN_REDIRECT_OUTSIDE,
    BUILTIN_REMOTE_CODE,
    BUILTIN_UNKNOWN_PATHS,
    DEFAULT_RULE,
    Category,
    Outcome,
    Rule,
    RuleSet,
    strictest,
)
from .parser import Redir
from .parts import Finding, Part, cwd_outside, show
from .paths import HARMLESS_PATHS, VIRTUAL_ROOT, literal_path, outside, path_key
from .programs import GLOBAL_VALUE_OPTS, WRITE_OPTS, option_values

_WRITE_REDIRS: Final = frozenset({">", ">>", ">|", "&>", "&>>", "<>", ">&"})
_AWKS: Final = frozenset({"awk", "gawk", "mawk", "nawk"})
_SEDS: Final = frozenset({"sed", "gsed"})


class Effects:
    """The state of one classification (the root, files written, touched and run, commands
    already judged) and the findings a command's words give; ``Classifier`` adds the walk."""

    def __init__(self, policy: RuleSet, root: str | None, cwd: str | None) -> None:
        self.p = policy
        if root is not None:
            root = posixpath.normpath(root) if root.startswith("/") else None
        if cwd is not None:
            cwd = posixpath.normpath(posixpath.join(root or VIRTUAL_ROOT, cwd))
        self.root = root or cwd or VIRTUAL_ROOT
        self.start_cwd: str | None = cwd or self.root
        self.count = 0
        # files whose content this command line writes (redirections, tee, sort -o...), and
        # the operands of every command that may change files
        self.written: set[str] = set()
        self.touched: set[str] = set()
        # (part, file, also_touched): scripts and programs run from a file
        self.runs: list[tuple[Part, str, bool]] = []
        # plain commands already judged, by directory and words: their parts and stdin reader
        self.seen: dict[tuple[str | None, tuple[str, ...]], tuple[list[Part], Part | None]] = {}
        self.total = 0  # simple commands, repeats included
        self.budget = Budget()  # the steps this classification may take

    def script_text(self, text: str, cwd: str | None, depth: int) -> list[Part]:
        """The parts of shell code run from within a command (``Classifier`` reads it)."""
        raise NotImplementedError

    @staticmethod
    def remote_code(part: Part, how: str) -> None:
        if not any(f.name == BUILTIN_REMOTE_CODE for f in part.findings):
            part.findings.append(
                Finding(
                    BUILTIN_REMOTE_CODE,
                    (Category.NETWORKED, Category.HOST_ESCAPE_RISK),
                    f"`{part.program}` {how}: code from the network",
                )
            )

    def redirect_findings(self, redirs: list[Redir], cwd: str | None) -> list[Finding]:
        out = []
        for r in redirs:
            if r.op not in _WRITE_REDIRS or r.target is None:
                continue
            value = r.target.value
            if r.op in (">&", "<&") and (value == "-" or value.isdigit()):
                continue  # 2>&1: a file descriptor, not a file
            self.written.add(path_key(r.target, cwd))
            if outside(r.target, cwd, self.root):
                out.append(
                    Finding(
                        BUILTIN_REDIRECT_OUTSIDE,
                        (Category.MUTATING, Category.HOST_ESCAPE_RISK),
                        f"writes to {value}, outside the workspace",
                    )
                )
            elif value not in HARMLESS_PATHS and not value.startswith(("/dev/fd/", "/proc/self/fd/")):
                out.append(Finding(BUILTIN_REDIRECT, (Category.MUTATING,), f"writes to {value}"))
        return out

    # -- what the command line does not show

    def opaque(self, part: Part, why: str) -> None:
        """``part`` runs code (or a program) the command line does not show: it is judged
        like text that cannot be parsed (``[defaults] unparsable``, at least approval)."""
        outcome = strictest([self.p.unparsable, self.p.outcome_for(self.p.unknown)])
        part.findings.append(
            Finding(BUILTIN_OPAQUE, self.p.unknown, why + ": what it runs cannot be read", outcome)
        )

    def unknown_paths(self, part: Part, rule: Rule) -> None:
        """A rule that needs a path outside could not decide: some paths come from the
        input (xargs). Approval, unless that rule itself is laxer."""
        outside = rule.outcome if rule.outcome is not None else self.p.outcome_for(rule.classes)
        outcome = outside if outside.rank < Outcome.REQUIRE_APPROVAL.rank else Outcome.REQUIRE_APPROVAL
        classes = tuple(c for c in rule.classes if c is not Category.HOST_ESCAPE_RISK) or self.p.unknown
        text = f"its paths come from its input and may lie outside the workspace (rule {rule.name!r})"
        part.findings.append(Finding(BUILTIN_UNKNOWN_PATHS, classes, text, outcome))

    def note_touched(self, a: Word, cwd: str | None, own: set[str]) -> None:
        v = a.value
        keys = []
        if "=" in v:  # of=FILE, --output=FILE
            keys.append(path_key(literal_path(v.split("=", 1)[1]), cwd))
        if not v.startswith("-"):
            keys.append(path_key(a, cwd))
        self.touched.update(k for k in keys if k not in own)

    # -- programs whose arguments hide writes or commands

    def effects(
        self, name: str, args: list[Word], part: Part, cwd: str | None, env: list[Word], depth: int
    ) -> list[Part]:
        """Writes and commands hidden in the arguments of programs otherwise read-only
        (``sort -o``, ``find -fprint``, ``less -o``, awk and sed programs), and git's
        ``--work-tree`` / ``--git-dir``. Returns the parts of the commands they run."""
        extra: list[Part] = []
        targets: list[Word] = []
        spec = WRITE_OPTS.get(name)
        if spec is not None:
            targets.extend(option_values(args, *spec))
        if name == "uniq":
            operands = [a for a in args if not a.value.startswith("-") or a.value == "-"]
            if len(operands) >= 2:
                targets.append(operands[1])
        elif name == "tee":
            for a in args:
                if not a.value.startswith("-"):
                    self.written.add(path_key(a, cwd))
        elif name == "dd":
            for a in args:
                if a.value.startswith("of="):
                    self.written.add(path_key(literal_path(a.value[3:]), cwd))
        elif name == "sort" and any(a.value.startswith("--compress-program") for a in args):
            self.opaque(part, "`sort --compress-program` runs a program")
        elif name in _AWKS:
            extra.extend(self.awk(args, part, cwd, depth, targets))
        elif name in _SEDS:
            extra.extend(self.sed(args, part, cwd, depth, targets))
        elif name == "git":
            self.git_targets(args, env, part, cwd)
            self.git_code(args, env, part)
            for text in git_shell_texts([a.value for a in args]):  # `git rebase -x CMD`
                extra.extend(self.script_text(text, cwd, depth + 1))
        if targets:
            part.findings.extend(self.redirect_findings([Redir(">", "", t, None) for t in targets], cwd))
        return extra

    def as_unknown(self, part: Part, why: str) -> None:
        """A program that runs code from a file (``awk -f``, ``sed -f``): ``[defaults] unknown``."""
        part.classes, part.outcome, part.name = self.p.unknown, None, DEFAULT_RULE
        part.text = f"`{show(part.argv)}` {why}; treated as unknown ({', '.join(self.p.unknown)})"

    def script_file(self, part: Part, w: Word, cwd: str | None, what: str) -> None:
        if w.value in ("-", "/dev/stdin", "/dev/fd/0") or w.unknown or w.dynamic:
            self.opaque(part, f"{what} comes from its input or from a command")
        else:
            self.as_unknown(part, f"runs {what} {w.value}")
            self.runs.append((part, path_key(w, cwd), True))

    def awk(
        self, args: list[Word], part: Part, cwd: str | None, depth: int, targets: list[Word]
    ) -> list[Part]:
        from .awk import awk_literals, awk_programs, awk_risk  # loaded for command lines with awk

        programs, files, loads = awk_programs(args)
        for f in files:
            self.script_file(part, f, cwd, "an awk program from")
        if loads:
            self.opaque(part, "awk loads an extension (compiled code)")
        extra: list[Part] = []
        for prog in programs:
            if prog.dynamic:
                self.opaque(part, "the awk program is only known at run time")
                continue
            risk = awk_risk(prog.value)
            if risk is None:
                continue
            self.opaque(part, f"the awk program {risk}")
            for kind, text in awk_literals(prog.value):
                if kind == "run":
                    extra.extend(self.script_text(text, cwd, depth + 1))
                else:
                    targets.append(literal_path(text))
        return extra

    def sed(
        self, args: list[Word], part: Part, cwd: str | None, depth: int, targets: list[Word]
    ) -> list[Part]:
        from .sed import sed_scan, sed_scripts  # loaded for command lines with sed

        scripts, files, sandbox, maybe = sed_scripts(args)
        if sandbox:
            return []
        for f in files:
            self.script_file(part, f, cwd, "a sed script from")
        extra: list[Part] = []
        for script in [*scripts, *maybe]:
            if script.dynamic and script not in maybe:
                self.opaque(part, "the sed script is only known at run time")
                continue
            if not any(ch in script.value for ch in "weW"):
                continue  # fast path: no command that writes or runs
            try:
                writes, commands, runs_text = sed_scan(script.value)
            except ValueError:
                if script not in maybe:
                    self.opaque(part, "the sed script cannot be read")
                continue
            targets.extend(literal_path(w) for w in writes)
            for cmd in commands:
                extra.extend(self.script_text(cmd, cwd, depth + 1))
            if runs_text:
                self.opaque(part, "the sed script runs text of its input as a command (`e`)")
        return extra

    def git_code(self, args: list[Word], env: list[Word], part: Part) -> None:
        """git told to run a program the command line chooses (``--upload-pack=CMD``,
        ``-c core.sshCommand=CMD``, ``ext::CMD``, ``GIT_SSH_COMMAND=CMD``...): whatever rule
        matched (``git-fetch`` gives the network), it is judged as running that program:
        ``mutating`` and ``host_escape_risk``, at least ``require_approval``, and it never
        gets a network (:data:`~.model.NO_NETWORK_RULES`)."""
        why = git_runs_code([a.value for a in args], [w.value for w in env])
        if why is None:
            return
        self.mark_git_code(part, f"`{show(part.argv, 60)}` {why}")

    def mark_git_code(self, part: Part, text: str) -> None:
        before = part.finish(self.p).action
        kept = [c for c in part.all_classes() if c not in (Category.NETWORKED, Category.READ_ONLY)]
        changes = Category.DESTRUCTIVE if Category.DESTRUCTIVE in kept else Category.MUTATING
        part.classes = tuple(sorted({*kept, changes, Category.HOST_ESCAPE_RISK}))
        part.outcome = strictest([before, Outcome.REQUIRE_APPROVAL])
        part.name = BUILTIN_GIT_CODE
        part.text = text + ": a program of the command line's choosing, run without a network"

    def git_targets(self, args: list[Word], env: list[Word], part: Part, cwd: str | None) -> None:
        """``git --work-tree=/``, ``--git-dir``, ``GIT_WORK_TREE=/``: git working on a tree
        or a repository outside the workspace is like running there."""
        if not ({Category.MUTATING, Category.DESTRUCTIVE} & set(part.classes)):
            return
        found: list[Word] = []
        values = [a.value for a in args]
        k = 0
        while k < len(values) and values[k].startswith("-"):
            v = values[k]
            key, eq, value = v.partition("=")
            if key in ("--work-tree", "--git-dir"):
                if not eq and k + 1 < len(args):
                    found.append(args[k + 1])
                    k += 1
                elif eq:
                    found.append(literal_path(value))
            elif v == "-c" and k + 1 < len(values):
                setting, _, value = values[k + 1].partition("=")
                if setting.lower() == "core.worktree":
                    found.append(literal_path(value))
                k += 1
            elif v in GLOBAL_VALUE_OPTS["git"]:
                k += 1
            k += 1
        for w in env:
            key, _, value = w.value.partition("=")
            if key in ("GIT_WORK_TREE", "GIT_DIR", "GIT_INDEX_FILE", "GIT_COMMON_DIR"):
                found.append(literal_path(value))
        for w in found:
            if outside(w, cwd, self.root):
                part.findings.append(cwd_outside(f"works on {w.value}"))
                return
