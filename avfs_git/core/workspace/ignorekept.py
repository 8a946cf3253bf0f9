"""git's ignore answers kept on disk, per vault, so that a new process does not ask again
what an earlier one asked (:class:`.ignore.IgnoreRules` asks here before it starts git).

A merge into a fork holding an installed ``node_modules`` asked ``git check-ignore``
twice in every process (once per side's check for changes to capture, ~17 ms each at load
7-10): the same question, "is ``node_modules/`` ignored under this ``.gitignore``?", whose
answer cannot change while nothing it depends on does. An answer is kept under a key made
of everything git's answer depends on, so that a change to any of it is a new question:

- the ``git`` that answered (its path on ``PATH`` and that file's inode, size and times);
- the config files git reads (the vault's, the system's, the user's: :func:`.gitrun.config_text`),
  which hold ``core.ignoreCase`` and ``core.excludesFile``; a config that includes another
  file is never kept (its includes are not followed here);
- the vault's ``info/exclude`` and the user's excludes file (their bytes and path: the key
  :meth:`.ignore.IgnoreRules._globals` makes);
- each ``.gitignore`` on the path's directories, by directory and by its bytes (a blob's id,
  or the hash of the overlay file's bytes);
- the path, and whether it was asked as a directory.

The file is ``<vault>/avfs/ignored-answers``: avfs's state, which a confined command cannot
see or write (the sandbox masks ``<vault>/avfs``). One line per answer, ``\\n<key> <0|1>``,
each batch appended in one ``write``; a torn or foreign line matches no key. An answer is
looked up as a substring (no parse: ~0.1 ms in a 1 MiB file); past :data:`KEPT_MAX_BYTES`
the file starts again empty. Losing it loses nothing but the next process's time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping

from ..store.digests import sha1
from ..store.gitrun import config_text, git_config_files, git_identity

NAME = "ignored-answers"
KEPT_MAX_BYTES = 4 << 20
_HEX = frozenset("0123456789abcdef")


def question_base(git_dir: str, env: dict[str, str], globals_key: str) -> bytes | None:
    """The digest of what every question of this call shares (git, its config, the
    exclude files); None when answers must not be kept (no git; a config with includes)."""
    ident = git_identity(env)
    if ident is None:
        return None
    digest, included = config_key(git_dir, env)
    if included:
        return None
    h = sha1(b"avfs-ignore-1\0")
    h.update(ident + b"\0")
    h.update(digest)
    h.update(globals_key.encode() + b"\0")
    return h.digest()


def config_key(git_dir: str, env: Mapping[str, str]) -> tuple[bytes, bool]:
    """(a digest of the config files git reads when run with ``env``: the vault's, the
    system's, the user's, each by path and bytes; whether one includes another file, which
    the digest does not hold). ``env`` is the one ``git check-ignore`` runs with, without the
    caller's GIT_*: git then reads /etc/gitconfig and the HOME files, whatever
    ``$GIT_CONFIG_SYSTEM`` or ``$GIT_CONFIG_GLOBAL`` say here (before, review10: the files
    those named were in the key instead, and a change to /etc/gitconfig kept old answers).
    Also the in-process answers' key (:meth:`.ignore.IgnoreRules._globals`)."""
    h = sha1()
    included = False
    for f in (os.path.join(git_dir, "config"), *git_config_files(env)):
        text = config_text(f)
        if text is not None and b"include" in text:
            included = True
        h.update(f.encode("utf-8", "surrogateescape") + b"\0")
        h.update(b"-" if text is None else sha1(text).digest())
    return h.digest(), included


def question_key(base: bytes, chain: Iterable[str], path: str, is_dir: bool) -> str:
    """The key of one question: ``base`` (:func:`question_base`), the ``.gitignore`` files
    on the path's directories (directory, :func:`content_key`, ...), the path, and
    whether it is asked as a directory."""
    h = sha1(base)
    for part in chain:
        h.update(part.encode("utf-8", "surrogateescape") + b"\0")
    h.update(b"\1" + path.encode("utf-8", "surrogateescape") + (b"\0d" if is_dir else b"\0f"))
    return h.hexdigest()


def content_key(key: str, load: Callable[[], bytes]) -> str:
    """A ``.gitignore``'s key by its bytes: a blob's id as it is, an overlay file's
    (``f:<fileid>:<size>:<mtime>``, which names a file, not bytes) the hash of its bytes."""
    if len(key) in (40, 64) and _HEX.issuperset(key):
        return key
    return "h:" + sha1(load()).hexdigest()


class KeptAnswers:
    """The answers kept in one vault's file (see the module's text)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _data(self) -> bytes:
        try:
            with open(self.path, "rb") as fh:
                return fh.read()
        except OSError:
            return b""

    def lookup(self, keys: Iterable[str]) -> dict[str, bool]:
        """The kept answers of ``keys`` (those found)."""
        data = self._data()
        out: dict[str, bool] = {}
        if not data:
            return out
        for k in keys:
            needle = b"\n" + k.encode() + b" "
            i = data.find(needle)
            if i < 0:
                continue
            j = i + len(needle)
            value = data[j : j + 1]
            after = data[j + 1 : j + 2]
            if value in (b"0", b"1") and after in (b"", b"\n"):
                out[k] = value == b"1"
        return out

    def keep(self, answers: dict[str, bool]) -> None:
        """Append ``answers`` in one write (the file started again past its bound)."""
        if not answers:
            return
        record = b"".join(b"\n" + k.encode() + (b" 1" if v else b" 0") for k, v in answers.items())
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError:
            return  # (a vault whose state directory is gone or read-only: nothing kept)
        try:
            if os.fstat(fd).st_size + len(record) > KEPT_MAX_BYTES:
                os.ftruncate(fd, 0)
            os.write(fd, record)
        except OSError:
            pass
        finally:
            os.close(fd)
