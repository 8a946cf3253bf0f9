"""The code a shell or an interpreter is given to run, for the classifier: on its command
line (``python -c``, ``node -e``: read by :mod:`.pycode` and :mod:`.scriptcode`, never run),
in a here-document or here-string (``python - <<EOF``, ``sh <<<CMD``), or as a script file
or its standard input. ``Classifier`` builds on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .effects import Effects
from .interpreters import SHELLS, SOURCE, inline_code, script_language, shell_mode
from .lexer import Word
from .model import BUILTIN_INLINE_CODE, BUILTIN_UNPARSABLE, Category, Outcome, strictest
from .parser import Redir
from .parts import Finding, Part, shell_word
from .paths import literal_path, outside, path_key


class CodeInput(Effects):
    """The findings and parts of the code a command hands to a shell or an interpreter;
    ``Classifier`` adds the walk (:meth:`command_words`, :meth:`secrets`)."""

    def command_words(
        self,
        words: list[Word],
        by_word: dict[int, list[Part]],
        redirs: list[Redir],
        cwd: str | None,
        depth: int,
        assigns: Sequence[Word] = (),
    ) -> tuple[list[Part], Part | None, Any]:
        """The parts of one command run from within code (``Classifier`` judges it)."""
        raise NotImplementedError

    def secrets(self, part: Part, args: list[Word], redirs: list[Redir], cwd: str | None) -> None:
        """A credential store outside the workspace named or read (``Classifier`` finds it)."""
        raise NotImplementedError

    def interpreted(
        self, name: str, args: list[Word], redirs: list[Redir], part: Part, cwd: str | None, depth: int
    ) -> list[Part]:
        """Code given to an interpreter on its command line (``python -c``, ``node -e``...)
        or in a here-document (``python - <<EOF``). Python is read with ``ast``: the
        commands it runs are classified like any other, the paths it deletes or writes
        outside the workspace are a host escape, and what cannot be read is at least
        ``mutating`` with a checkpoint. Other languages are not read: a checkpoint first."""
        found = inline_code(name, args)
        if found is not None:
            flag, word = found
            code: str | None = None if word.dynamic or word.unknown else word.value
        else:
            flag, code = "-", None
            operands = [a for a in args if not a.value.startswith("-") or a.value == "-"]
            if not operands or operands[0].value == "-":
                for r in redirs:
                    if r.heredoc is not None:
                        code = r.heredoc.body if r.heredoc.quoted or not r.heredoc.subs else None
                    elif r.op == "<<<" and r.target is not None and not r.target.dynamic:
                        code = r.target.value
                if code is None:
                    return []
            else:
                return []
        who = f"`{name} {flag}`"
        if code is None:
            self.opaque(part, f"{who} runs code that is only known at run time")
            return []
        lang = script_language(name)
        if lang is None and name.rstrip("0123456789.") not in ("python", "pypy"):
            self.checkpointed(part, f"{who} runs {name} code that avfs does not read")
            return []
        self.budget.spend(len(code) // 16 + 1)
        if lang is not None:
            from .scriptcode import effects as script_effects  # only when such code is met

            found_effects = script_effects(code, lang)
        else:
            from .pycode import effects  # ast: only when Python code is met

            found_effects = effects(code)
        out: list[Part] = []
        for kind, detail in found_effects:
            self.budget.spend(1)
            if kind == "shell" and isinstance(detail, str):
                out.extend(self.script_text(detail, cwd, depth + 1))
            elif kind == "argv" and isinstance(detail, list):
                words = [Word.literal(str(a)) for a in detail]
                out.extend(self.command_words(words, {}, [], cwd, depth + 1)[0])
            elif kind == "dynamic":
                self.opaque(part, f"{who} {detail}")
            elif kind == "opaque":
                self.checkpointed(part, f"{who} {detail}: what it does cannot be read")
            elif kind == "unparsable":
                outcome = strictest([self.p.unparsable, self.p.outcome_for(self.p.unknown)])
                text = f"{who}: the {lang} code {detail}: avfs cannot read what it does"
                part.findings.append(Finding(BUILTIN_UNPARSABLE, self.p.unknown, text, outcome))
            elif isinstance(detail, str):
                w = literal_path(detail)
                if kind == "read":
                    self.secrets(part, [w], [], cwd)
                    continue
                cls = Category.DESTRUCTIVE if kind == "delete" else Category.MUTATING
                verb = "deletes" if kind == "delete" else "writes"
                if outside(w, cwd, self.root):
                    text = f"{who} {verb} {shell_word(w)}, outside the workspace"
                    part.findings.append(Finding(BUILTIN_INLINE_CODE, (cls, Category.HOST_ESCAPE_RISK), text))
                else:
                    part.findings.append(
                        Finding(BUILTIN_INLINE_CODE, (cls,), f"{who} {verb} {shell_word(w)}")
                    )
                    self.written.add(path_key(w, cwd))
        return out

    def checkpointed(self, part: Part, why: str) -> None:
        """At least ``mutating``, with a checkpoint first."""
        part.findings.append(
            Finding(BUILTIN_INLINE_CODE, (Category.MUTATING,), why, Outcome.ALLOW_WITH_CHECKPOINT)
        )

    def shell_input(
        self,
        name: str,
        args: list[Word],
        part: Part,
        redirs: list[Redir],
        cwd: str | None,
        via_xargs: bool,
    ) -> None:
        """A shell (or ``source``) running a script: from a file, or from its input."""
        if via_xargs:
            self.opaque(part, f"`{name}` runs shell code or a script that its input (xargs) names")
            return
        if part.stdin_code:
            self.opaque(part, f"`{name}` runs the shell code on its standard input")
            return
        script: Word | None = None
        if name in SOURCE:
            script = args[0] if args else None
        else:
            kind, script = shell_mode(args)
            if kind != "script":
                script = None
        if script is None:
            for r in redirs:
                if r.op == "<" and r.target is not None:
                    script = r.target
        if script is None:
            return
        if script.unknown or (script.dynamic and script.value.startswith(("<(", ">("))):
            self.opaque(part, f"`{name}` runs a script that another command produces")
            return
        self.runs.append((part, path_key(script, cwd), True))

    def stdin_script(self, name: str, redirs: list[Redir], cwd: str | None, depth: int) -> list[Part]:
        """A here-document or here-string given to a shell is a script: classify it."""
        if name not in SHELLS:
            return []
        out: list[Part] = []
        for r in redirs:
            if r.heredoc is not None:
                out.extend(self.script_text(r.heredoc.body, cwd, depth + 1))
            elif r.op == "<<<" and r.target is not None:
                out.extend(self.script_text(r.target.value, cwd, depth + 1))
        return out
