"""Reaching a git server: the git CLI with the user's ways of reaching it, never a prompt.

git reads the user's credential helpers, ``~/.ssh`` and ``GIT_SSH_COMMAND`` like any git
command, and speaks every protocol git does. Credentials avfs holds (a URL's
``user:password@``, the settings' ``AVFS_GIT_TOKEN``) reach git through the environment of
one process and a credential helper that answers from it (:data:`_ENV_HELPER`): never on a
command line, in a file or in git's output (errors go through :func:`.redact.redact`).

Used by :mod:`.remote` (push, fetch) and :mod:`.importer` (a vault cloned from a URL).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

from ..errors import RemoteError, UsageError
from ..settings import TOKEN_ENV
from .gitrun import git_env, run, spawn
from .redact import redact
from .remotecause import failure_cause

USER_ENV = "AVFS_GIT_USERNAME"  # its user name (default: avfs; GitHub ignores it)
# a credential helper that answers from the environment: the secret itself is never on a
# command line, in a config file or in git's output. The per-call pair (``transport``'s
# ``credentials``: a URL's user:password@) comes first, then AVFS_GIT_TOKEN. printf, not
# echo: sh's echo may expand backslashes in a password.
_CALL_USER_ENV = "AVFS_GIT_CALL_USERNAME"  # set by transport() for one git process only
_CALL_PASS_ENV = "AVFS_GIT_CALL_PASSWORD"
_ENV_HELPER = (
    f'!f() {{ test "$1" = get || exit 0; if test -n "${_CALL_USER_ENV}${_CALL_PASS_ENV}"; then'
    f' printf "username=%s\\npassword=%s\\n" "${_CALL_USER_ENV}" "${_CALL_PASS_ENV}";'
    f' elif test -n "${TOKEN_ENV}"; then'
    f' printf "username=%s\\npassword=%s\\n" "${{{USER_ENV}:-avfs}}" "${TOKEN_ENV}"; fi; }}; f'
)

ProgressFn = Callable[[str, int, int], None]  # (phase, done, total), e.g. ("Writing objects", 3, 10)
# a URL git reads as one (transport.c is_url: a scheme, then "://"), not as a local path
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def anchored(url: str) -> str:
    """``url`` as a remote's URL is stored: a relative local path made absolute from this
    process's working directory (as `git clone` stores its source), anything else as it is.
    A local path is what git takes for one (transport.c ``url_is_local_not_ssh``): no
    scheme, and no ``:`` before the first ``/`` (``host:path`` is ssh). Stored relative, the
    path was read against the directory of each later push and fetch: run from inside a
    mount, a repository a confined command wrote there received the push and ran its hooks
    on the host (twenty-first round, NAME=attack12; docs/security.md)."""
    colon, slash = url.find(":"), url.find("/")
    local = not _URL.match(url) and (colon < 0 or 0 <= slash < colon)
    if not local or url.startswith(("/", "~")):
        return url
    import os

    return os.path.normpath(os.path.join(os.getcwd(), url))


_PROGRESS = re.compile(r"^(?:remote: )?(?P<phase>[A-Z][A-Za-z ]+):\s+\d+% \((?P<done>\d+)/(?P<total>\d+)\)")


def transport(
    git_dir: str,
    *args: str,
    check: bool = True,
    progress: ProgressFn | None = None,
    credentials: tuple[str, str] | None = None,
    token: str | None = None,
    config: tuple[str, ...] = (),
    input: str | None = None,
    timeout: float | None = None,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run a git command that may reach a server, with the user's ways of reaching it (ssh
    settings, credential helpers, ``token``: the settings' ``AVFS_GIT_TOKEN``) and never a
    prompt. With ``progress``,
    git reports progress (``--progress`` must be among ``args``) and each line of it goes to
    the callback instead of into the error text.

    ``credentials``: a (username, password) for this command only (a URL's ``user:pass@``,
    taken out of the URL by the caller). They reach git through the environment of this
    one process and the credential helper :data:`_ENV_HELPER`, the only helper asked then:
    never on a command line (``/proc/*/cmdline`` is world-readable) or in a file.

    ``pass_fds``: descriptors git inherits (the vault's transfer lock, :mod:`.transferlock`)."""
    argv, env = transport_argv(git_dir, args, credentials=credentials, token=token, config=config)
    # in the vault, as git run in a bare repository: a relative URL (one an older avfs stored)
    # is read against the vault, never the caller's directory (a mount: see :func:`anchored`)
    if progress is None:
        try:
            proc = run(
                argv,
                env=env,
                check=False,
                text=True,
                input=input,
                timeout=timeout,
                pass_fds=pass_fds,
                cwd=git_dir,
            )
        except subprocess.TimeoutExpired:
            raise RemoteError(
                f"git {args[0]} timed out after {timeout:g} s", details={"timeout_s": timeout}
            ) from None
    else:
        proc = _run_with_progress(argv, env, progress, pass_fds, git_dir)
    if check and proc.returncode != 0:
        text = redact(proc.stderr.strip() or proc.stdout.strip(), (*(credentials or ()), token or ""))
        cause = failure_cause(text)
        raise RemoteError(
            f"git {args[0]} failed{f' ({cause[1]})' if cause else ''}: {text}",
            hint=cause[2] if cause else None,
            details={"exit": proc.returncode, "reason": cause[0] if cause else None},
        )
    return proc


def transport_argv(
    git_dir: str,
    args: tuple[str, ...],
    *,
    credentials: tuple[str, str] | None = None,
    token: str | None = None,
    config: tuple[str, ...] = (),
) -> tuple[list[str], dict[str, str]]:
    """The git arguments and environment :func:`transport` runs ``args`` with (for a
    caller that talks to the git process as it runs: :mod:`.objectinfo`)."""
    import os

    env = {**git_env(), "GIT_TERMINAL_PROMPT": "0"}
    for k in (_CALL_USER_ENV, _CALL_PASS_ENV, TOKEN_ENV):
        env.pop(k, None)  # only ever this call's
    if token:
        env[TOKEN_ENV] = token  # what the helper answers with (the front end read it)
    extra: list[str] = []
    if credentials is not None:
        user, password = credentials
        if not (user or password) or any(c in user + password for c in "\0\n\r"):
            raise UsageError("invalid credentials in the URL: empty, or a line break")
        env[_CALL_USER_ENV], env[_CALL_PASS_ENV] = user, password
        extra = ["-c", "credential.helper=", "-c", f"credential.helper={_ENV_HELPER}"]
    elif token:
        extra = ["-c", f"credential.helper={_ENV_HELPER}"]
    # git_env() drops the caller's GIT_* variables (vault work must not see them), but how
    # to reach a server is the user's to say: keep their ssh settings
    for k in ("GIT_SSH_COMMAND", "GIT_SSH", "GIT_SSH_VARIANT"):
        if k in os.environ:
            env[k] = os.environ[k]
    for setting in config:
        extra += ["-c", setting]
    return [*extra, "--git-dir", git_dir, *args], env


def _run_with_progress(
    argv: list[str],
    env: dict[str, str],
    progress: ProgressFn,
    pass_fds: tuple[int, ...] = (),
    cwd: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run git with ``argv``, handing its progress lines (split on CR and LF) to ``progress``
    as they come; the other stderr lines are kept for the error text."""
    import os
    import threading

    kept: list[str] = []
    out: list[bytes] = []
    with spawn(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=pass_fds, cwd=cwd
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        stdout = proc.stdout
        reader = threading.Thread(target=lambda: out.append(stdout.read()), daemon=True)
        reader.start()
        pending = b""
        try:
            while chunk := os.read(proc.stderr.fileno(), 65536):
                pending += chunk
                *lines, pending = re.split(rb"[\r\n]", pending)
                for raw in lines:
                    line = raw.decode("utf-8", "replace")
                    m = _PROGRESS.match(line)
                    if m:
                        progress(m["phase"], int(m["done"]), int(m["total"]))
                    elif line.strip():
                        kept.append(line)
            if pending.strip():
                kept.append(pending.decode("utf-8", "replace"))
        except BaseException:
            proc.kill()
            raise
        finally:
            code = proc.wait()
            reader.join()
    return subprocess.CompletedProcess(
        ["git", *argv], code, b"".join(out).decode("utf-8", "replace"), "\n".join(kept)
    )
