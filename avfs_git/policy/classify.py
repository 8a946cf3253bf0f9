"""The classifier: a command line (text or argv) to the simple commands it runs, each judged
by the policy's rules. It walks what ``parser`` read (pipelines, groups, substitutions,
here-documents), sees through wrappers, shells and ``eval`` to the commands they run, and
follows the working directory. Pure: no process is started, no file is read.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

from .codeinput import CodeInput
from .gitruns import git_env_runs
from .interpreters import (
    SHELLS,
    SOURCE,
    avfs_itself,
    interpreter,
    reads_stdin_code,
    shell_mode,
)
from .lexer import ParseError, Sub, Tok, TooComplex, Word
from .match import first_match
from .model import (
    BUILTIN_AVFS_ITSELF,
    BUILTIN_SECRET_OUTSIDE,
    BUILTIN_UNPARSABLE,
    DEFAULT_RULE,
    Category,
    Outcome,
    Rule,
    RuleSet,
    strictest,
)
from .parser import ASSIGN, Group, Parser, Pipeline, Redir, Simple, is_assignment, parse, salvage
from .parts import Finding, Part, cwd_outside, shell_word, show, show_words
from .paths import HOME_DIR, cd_target, path_key, secret_outside, within
from .programs import canonical_args, program_cwd
from .wrappers import WRAPPERS, find_execs, parallel_text, unwrap, with_input, xargs_replace

_MAX_PARTS: Final = 4000  # distinct commands (a command repeated in place is judged once)
# programs that change a file's metadata, not its content: running the file after them
# runs what was there before
_METADATA_ONLY: Final = frozenset({"chmod", "chown", "chgrp", "touch", "chattr", "setfacl", "stat", "ls"})
_EVAL_LIKE: Final = frozenset({"eval"})
_EXPORTS: Final = frozenset({"export", "declare", "typeset", "readonly", "local"})


def _program_name(value: str) -> str:
    """The name rules match: the file name of a path (``/usr/bin/rm``, and ``.venv/bin/pip``
    or ``./node_modules/.bin/eslint`` in the workspace, are ``rm``, ``pip``, ``eslint``)."""
    if "/" in value:
        return value.rsplit("/", 1)[1] or value
    return value


class Classifier(CodeInput):
    """Classifies one command line; ``Policy.classify`` makes one per call."""

    # -- scripts

    def script_text(self, text: str, cwd: str | None, depth: int) -> list[Part]:
        try:
            body = parse(text, depth, self.budget)
        except ParseError as exc:
            return self.salvage(text, None, exc, cwd, depth)
        return self.run_list(body, cwd, depth)[0]

    def script_tokens(self, sub: Sub, cwd: str | None, depth: int) -> list[Part]:
        src, toks = sub
        self.budget.spend(len(toks))
        try:
            body = Parser(toks, len(src)).parse()
        except ParseError as exc:
            return self.salvage(src, toks, exc, cwd, depth)
        return self.run_list(body, cwd, depth)[0]

    def salvage(
        self, text: str, toks: list[Tok] | None, exc: ParseError, cwd: str | None, depth: int
    ) -> list[Part]:
        """Text that does not parse: the unparsable verdict, and with it every command that
        can still be read in it, so a syntax error never hides ``rm -rf /``."""
        part = self.unparsable_part(self.p, text, f"{exc} (at character {exc.pos + 1})")
        best: list[Part] = []
        best_rank = -1
        seen = self.seen
        for body in salvage(text, toks, depth, self.budget):
            self.seen = dict(seen)  # each reading judges its own commands
            parts = self.run_list(body, cwd, depth)[0]
            rank = max((p.finish(self.p).action.rank for p in parts), default=-1)
            if rank > best_rank:
                best, best_rank = parts, rank
        return [part, *best]

    @staticmethod
    def unparsable_part(policy: RuleSet, text: str, why: str) -> Part:
        shown = text if len(text) <= 60 else text[:59] + "…"
        outcome = strictest([policy.unparsable, policy.outcome_for(policy.unknown)])
        return Part(
            (text,),
            "<unparsable>",
            policy.unknown,
            outcome,
            BUILTIN_UNPARSABLE,
            f"{shown!r} cannot be parsed as a shell command: {why}",
        )

    def run_list(self, body: list[Pipeline], cwd: str | None, depth: int) -> tuple[list[Part], str | None]:
        parts: list[Part] = []
        for pipeline in body:
            stage_parts: list[list[Part]] = []
            consumers: list[list[Part]] = []
            alone = len(pipeline.stages) == 1
            for stage in pipeline.stages:
                if isinstance(stage, Group):
                    targets = [r.target for r in stage.redirs if r.target is not None and r.heredoc is None]
                    got = self.subs_of(targets, cwd, depth)[0]
                    inner, inner_cwd = self.run_list(stage.body, cwd, depth + 1)
                    got += inner + self.redirect_parts(stage.redirs, cwd)
                    eaters = [p for p in inner if p.stdin_code]
                    if alone and not stage.subshell:
                        cwd = inner_cwd
                else:
                    key = _repeat_key(stage, cwd) if alone else None
                    cached = self.seen.get(key) if key is not None else None
                    if cached is not None:  # `ls; ls; ...`: the same command, judged once
                        self.total += 1
                        self.budget.spend(1)
                        got, eater, new_cwd = cached[0], cached[1], _SAME
                    else:
                        got, eater, new_cwd = self.simple(stage, cwd, depth)
                        if key is not None:
                            self.seen[key] = (got, eater)
                    eaters = [eater] if eater is not None else []
                    if alone and new_cwd is not _SAME:
                        cwd = new_cwd
                stage_parts.append(got)
                consumers.append(eaters)
            for i in range(1, len(stage_parts)):
                if consumers[i] and any(p.networked() for ps in stage_parts[:i] for p in ps):
                    for eater in consumers[i]:
                        self.remote_code(eater, "runs what a network download sends it")
                if any(p.program in SHELLS or p.program in SOURCE for p in consumers[i]):
                    fed = _literal_output(pipeline.stages[i - 1])  # `echo 'rm -rf /' | sh`
                    if fed:
                        stage_parts[i].extend(self.script_text(fed, cwd, depth + 1))
            for ps in stage_parts:
                parts.extend(ps)
        return parts, cwd

    # -- simple commands

    def subs_of(
        self, words: Iterable[Word], cwd: str | None, depth: int
    ) -> tuple[list[Part], dict[int, list[Part]]]:
        parts: list[Part] = []
        by_word: dict[int, list[Part]] = {}
        for w in words:
            for sub in w.subs:
                got = self.script_tokens(sub, cwd, depth + 1)
                by_word.setdefault(id(w), []).extend(got)
                parts.extend(got)
        return parts, by_word

    def simple(self, stage: Simple, cwd: str | None, depth: int) -> tuple[list[Part], Part | None, Any]:
        targets = [r.target for r in stage.redirs if r.target is not None and r.heredoc is None]
        parts, by_word = self.subs_of([*stage.assigns, *stage.words, *stage.data, *targets], cwd, depth)
        for r in stage.redirs:
            if r.heredoc is not None:
                for sub in r.heredoc.subs:
                    parts.extend(self.script_tokens(sub, cwd, depth + 1))
        if not stage.words:
            self.exported_git_code(stage.assigns, parts)
            return parts + self.redirect_parts(stage.redirs, cwd), None, _SAME
        got, eater, new_cwd = self.command_words(
            stage.words, by_word, stage.redirs, cwd, depth, assigns=stage.assigns
        )
        return parts + got, eater, new_cwd

    def redirect_parts(self, redirs: list[Redir], cwd: str | None) -> list[Part]:
        findings = self.redirect_findings(redirs, cwd)
        if not findings:
            return []
        self.tick()
        return [Part((), "", (), None, "", "", findings)]

    def tick(self) -> None:
        self.budget.spend(1)
        self.total += 1
        self.count += 1
        if self.count > _MAX_PARTS:
            raise TooComplex("the command holds too many commands to classify")

    def command_words(
        self,
        words: list[Word],
        by_word: dict[int, list[Part]],
        redirs: list[Redir],
        cwd: str | None,
        depth: int,
        assigns: Sequence[Word] = (),
    ) -> tuple[list[Part], Part | None, Any]:
        """Classify one command (its wrappers, then the program). Returns the parts, the
        part that reads the standard input as code (if any), and the new working
        directory when the command is ``cd`` (else ``_SAME``)."""
        self.tick()
        parts: list[Part] = []
        via_xargs = False
        env = list(assigns)  # NAME=VALUE the program gets (before it, or through env/sudo)
        # wrappers are peeled by moving ``at`` along ``words``, never copying what follows,
        # so a chain of them (`env env ... rm`) costs its length, not its length squared
        at = 0
        while True:
            self.budget.spend(1)
            w0 = words[at]
            if w0.dynamic or w0.unknown or _is_pattern(w0):
                return self.dynamic_program(words[at:], by_word, parts, redirs, cwd)
            name = _program_name(w0.value)
            wrap = WRAPPERS.get(name)
            if wrap is not None:
                unwrapped = unwrap(name, wrap, words, cwd, at + 1)
                if unwrapped is not None:
                    extra, nxt, wrapped_cwd = unwrapped
                    wrapper_argv = words[at:nxt]
                    self.budget.spend(len(wrapper_argv))
                    rule = first_match(self.p, name, wrapper_argv[1:], cwd, self.root)[0]
                    if rule is not None and rule.classes != (Category.READ_ONLY,):
                        parts.append(self.part_for(name, wrapper_argv, cwd, rule=rule))
                    env.extend(w for w in wrapper_argv[1:] if ASSIGN.match(w.value))
                    if extra or name == "xargs" or wrap.shell:  # a new list: its length is paid for
                        words, at = extra + words[nxt:], 0
                        self.budget.spend(len(words))
                    else:
                        at = nxt
                    if name == "xargs":
                        via_xargs = True
                        words = with_input(words, xargs_replace(wrapper_argv[1:]))
                    if wrap.shell:
                        return self.shell_wrapper(
                            name, wrapper_argv, words, parts, redirs, wrapped_cwd, depth
                        )
                    while len(words) - at > 1 and is_assignment(words[at]):
                        env.append(words[at])  # `nice X=1 cmd` fails; read as the environment
                        at += 1
                    cwd = wrapped_cwd
                    continue
            if at:
                words, at = words[at:], 0
            return self.program(name, words, by_word, parts, redirs, cwd, depth, env, via_xargs)

    def dynamic_program(
        self,
        words: list[Word],
        by_word: dict[int, list[Part]],
        parts: list[Part],
        redirs: list[Redir],
        cwd: str | None,
    ) -> tuple[list[Part], Part | None, Any]:
        """A command whose program is only known at run time (``$CMD``, ``$(which rm)``, a
        glob): an unknown program running code the line does not show."""
        w0 = words[0]
        part = self.part_for(w0.value, words, cwd, rule=None, dynamic=True)
        if any(p.networked() for p in by_word.get(id(w0), ())):
            self.remote_code(part, "is a program name computed from a download")
        self.opaque(part, f"the program `{show((w0.value,), 40)}` is only known at run time")
        return self.finish(parts, part, redirs, cwd)

    def program(
        self,
        name: str,
        words: list[Word],
        by_word: dict[int, list[Part]],
        parts: list[Part],
        redirs: list[Redir],
        cwd: str | None,
        depth: int,
        env: list[Word],
        via_xargs: bool,
    ) -> tuple[list[Part], Part | None, Any]:
        """The program of a command once its wrappers are peeled (``words[0]`` names it,
        ``env`` is its environment): the rule it matches and every finding of its words."""
        w0 = words[0]
        stdin_redirected = any(r.op in ("<", "<<", "<<-", "<<<", "<&", "<>") for r in redirs)
        args = canonical_args(name, words[1:])  # `sed -nEi`, `env --split-s`: as read
        if self.code_in_words(name, args, parts, cwd, depth):
            return parts + self.redirect_parts(redirs, cwd), None, _SAME
        eff_cwd = program_cwd(name, args, cwd)
        rule, skipped = first_match(self.p, name, args, eff_cwd, self.root)
        if (
            rule is not None
            and "/" in w0.value
            and (not w0.value.startswith(("/", "~")) or within(posixpath.normpath(w0.value), self.root))
        ):
            rule = self.workspace_program(rule)  # `./ls`, and `$PWD/ls` written out
        part = self.part_for(name, words, eff_cwd, rule=rule)
        self.secrets(part, args, redirs, eff_cwd)
        if name in _EXPORTS:
            self.exported_git_code(args, [part])
        if interpreter(name) is not None:
            parts.extend(self.interpreted(name, args, redirs, part, eff_cwd, depth))
        itself = avfs_itself(w0.value, args)
        if itself is not None:  # no rule relaxes it: it could approve its own token
            why = itself + "; a person runs avfs, in a terminal of their own"
            part.findings.append(
                Finding(BUILTIN_AVFS_ITSELF, (Category.HOST_ESCAPE_RISK,), why, Outcome.DENY)
            )
        if skipped is not None:
            self.unknown_paths(part, skipped)
        runs_before = len(self.runs)
        parts.extend(self.effects(name, args, part, eff_cwd, env, depth))
        shell = name in SHELLS or name in SOURCE
        executes = shell or interpreter(name) is not None
        if executes:
            if any(p.networked() for a in args for p in by_word.get(id(a), ())):
                self.remote_code(part, "runs a script produced by a download")
            part.stdin_code = via_xargs or (not stdin_redirected and reads_stdin_code(name, args))
            parts.extend(self.stdin_script(name, redirs, cwd, depth))
        if shell:
            self.shell_input(name, args, part, redirs, eff_cwd, via_xargs)
        elif "/" in w0.value:
            self.runs.append((part, path_key(w0, cwd), False))
        if name == "parallel":  # no command: it runs the lines of its input
            self.opaque(part, "runs the commands its input holds")
        if not shell and name not in _METADATA_ONLY and part.classes != (Category.READ_ONLY,):
            own = {key for _, key, _ in self.runs[runs_before:]}  # `awk -f F` does not write F
            for a in args:
                self.note_touched(a, eff_cwd, own)
        new_cwd: Any = _SAME
        if name in ("cd", "pushd", "popd") and not via_xargs:
            new_cwd = cd_target(name, args, cwd)
        got, eater, _ = self.finish(parts, part, redirs, eff_cwd)
        return got, eater, new_cwd

    def code_in_words(
        self, name: str, args: list[Word], parts: list[Part], cwd: str | None, depth: int
    ) -> bool:
        """Add to ``parts`` the code a command's words hold: ``trap CODE SIG``, ``alias
        n=CODE``, ``find -exec CMD``; True when that code is all the command runs (``sh -c
        CODE``, ``eval CODE``)."""
        if name in SHELLS:
            kind, script = shell_mode(args)
            if kind == "c" and script is not None and not script.unknown:
                parts.extend(self.script_text(script.value, cwd, depth + 1))
                return True
        if name in _EVAL_LIKE and args:
            parts.extend(self.script_text(" ".join(a.value for a in args), cwd, depth + 1))
            return True
        if name == "trap":
            operands = [a for a in args if not a.value.startswith("-")]
            if len(operands) >= 2:
                parts.extend(self.script_text(operands[0].value, cwd, depth + 1))
        if name == "alias":  # the value runs wherever the alias is used
            for a in args:
                if "=" in a.value:
                    parts.extend(self.script_text(a.value.split("=", 1)[1], cwd, depth + 1))
        if name == "find":
            for cmd in find_execs(args):
                parts.extend(self.command_words(cmd, {}, [], cwd, depth + 1)[0])
        return False

    def exported_git_code(self, words: Sequence[Word], parts: list[Part]) -> None:
        """``export GIT_SSH_COMMAND=CMD`` (or a bare assignment): every later git of the
        shell runs CMD; judged as git running it (:meth:`git_code`)."""
        for w in words:
            var = git_env_runs(w.value)
            if var is None:
                continue
            if not parts or parts[-1].program not in _EXPORTS:
                self.tick()
                parts.append(Part((w.value,), "", (), None, "", ""))
            self.mark_git_code(parts[-1], f"`{show((w.value,), 60)}` sets {var}, which git runs")
            return

    def secrets(self, part: Part, args: list[Word], redirs: list[Redir], cwd: str | None) -> None:
        """A credential store outside the workspace named by an argument (``cat ~/.ssh/id_rsa``,
        ``cp /root/x .``) or read by a redirection (``< ~/.aws/credentials``): whatever the
        program, its content may land in a commit or a push. A person decides."""
        words = [*args, *(r.target for r in redirs if r.target is not None and r.op in ("<", "<>"))]
        for w in words:
            store = secret_outside(w, cwd, self.root)
            if store is not None:
                why = f"reads {shell_word(w)}: {store} holds credentials, outside the workspace"
                part.findings.append(
                    Finding(
                        BUILTIN_SECRET_OUTSIDE, (Category.HOST_ESCAPE_RISK,), why, Outcome.REQUIRE_APPROVAL
                    )
                )
                return

    def workspace_program(self, rule: Rule) -> Rule | None:
        """A program of the workspace (``.venv/bin/pip``, ``./ls``) is matched by its file
        name, but only by a rule at least as strict as an unknown program: the agent may
        have written ``./ls`` itself, so it never passes for the read-only system one."""
        unknown = self.p.outcome_for(self.p.unknown)
        outcome = rule.outcome if rule.outcome is not None else self.p.outcome_for(rule.classes)
        if outcome.rank < unknown.rank or set(rule.classes) <= {Category.READ_ONLY}:
            return None
        return rule

    def shell_wrapper(
        self,
        name: str,
        wrapper_argv: list[Word],
        rest: list[Word],
        parts: list[Part],
        redirs: list[Redir],
        cwd: str | None,
        depth: int,
    ) -> tuple[list[Part], Part | None, Any]:
        """``watch`` and ``parallel`` join their command's words and run them with ``sh -c``."""
        values = [w.value for w in rest]
        text = " ".join(values)
        if name == "parallel":
            text = parallel_text(values)
            part = self.part_for(name, [*wrapper_argv, *rest], cwd, rule=None)
            self.opaque(
                part,
                "`parallel` runs its command once per input, with arguments that may come from its input",
            )
            parts.append(part)
        if text:
            parts.extend(self.script_text(text, cwd, depth + 1))
        return parts + self.redirect_parts(redirs, cwd), None, _SAME

    def late(self, parts: list[Part], text: str) -> None:
        """Findings that need the whole command line: a script run from a file that the
        same command line writes; more commands than a person would read."""
        if self.total > _MAX_PARTS:
            why = f"it holds {self.total} commands (more than {_MAX_PARTS})"
            parts.insert(0, self.unparsable_part(self.p, text, why))
        for part, key, any_change in self.runs:
            if key in self.written or (any_change and key in self.touched):
                shown = part.argv[1] if part.program in SOURCE and len(part.argv) > 1 else key
                self.opaque(part, f"`{part.program}` runs {shown}, which this command line writes")

    def finish(
        self,
        parts: list[Part],
        part: Part,
        redirs: list[Redir],
        cwd: str | None,
    ) -> tuple[list[Part], Part | None, Any]:
        part.findings.extend(self.redirect_findings(redirs, cwd))
        if (
            cwd is not None
            and not within(cwd, self.root)
            and ({Category.MUTATING, Category.DESTRUCTIVE} & set(part.classes))
        ):
            where = "~" if cwd.startswith(HOME_DIR) else cwd
            part.findings.append(cwd_outside(f"runs in {where}"))
        parts.append(part)
        return parts, (part if part.stdin_code else None), _SAME

    def part_for(
        self, name: str, words: list[Word], cwd: str | None, *, rule: Rule | None, dynamic: bool = False
    ) -> Part:
        argv = tuple(w.value for w in words)
        shown = show_words(words)
        if rule is not None:
            why = rule.description or ", ".join(rule.classes)
            return Part(
                argv,
                name,
                rule.classes,
                rule.outcome,
                rule.name,
                f"`{shown}` matches rule {rule.name!r} ({why})",
            )
        unknown = ", ".join(self.p.unknown)
        if dynamic:
            text = f"`{shown}`: the program is only known at run time; treated as unknown ({unknown})"
        else:
            text = f"`{shown}`: {name!r} matches no rule; unknown programs are {unknown}"
        return Part(argv, name, self.p.unknown, None, DEFAULT_RULE, text)


_SAME: Final[Any] = object()


def _repeat_key(stage: Simple, cwd: str | None) -> tuple[str | None, tuple[str, ...]] | None:
    """A plain command (literal words, no redirection, no assignment) that, run again in the
    same directory, is judged the same: its key. ``cd`` is not plain (it moves)."""
    if stage.redirs or stage.assigns or stage.data or not stage.words:
        return None
    for w in stage.words:
        if w.dynamic or w.subs or w.glob:
            return None
    values = tuple(w.value for w in stage.words)
    if values[0] in ("cd", "pushd", "popd"):
        return None
    return cwd, values


def _literal_output(stage: Simple | Group) -> str | None:
    """What ``echo``/``printf`` with literal arguments writes (roughly), else None."""
    if not isinstance(stage, Simple) or not stage.words or stage.words[0].value not in ("echo", "printf"):
        return None
    if any(w.dynamic for w in stage.words):
        return None
    values = [w.value for w in stage.words[1:]]
    if stage.words[0].value == "echo":
        while values and re.fullmatch(r"-[neE]+", values[0]):
            values.pop(0)
        return " ".join(values).replace("\\n", "\n")  # dash's echo reads escapes
    return "\n".join(v.replace("\\n", "\n") for v in values)


def _is_pattern(w: Word) -> bool:
    """A word with an unquoted glob that may match files (``/bin/r?``); a lone ``[`` is not."""
    if not w.glob or w.mask is None:
        return False
    opened = False
    for ch, unquoted in zip(w.value, w.mask, strict=True):
        if not unquoted:
            continue
        if ch in "*?" or (ch == "]" and opened):
            return True
        if ch == "[":
            opened = True
    return False
