"""Every name of a hard-linked file in an overlay mount's upper layer, for the journal.

overlayfs keeps one overlay inode for a file linked under several names, and writes go
through the upper dentry of the name it first looked up: the kernel's ``inotify`` event for
a write through ``b.txt`` may name ``a.txt`` (found by review42: an agent's ``ln Makefile
cache.o`` in one run, a write to ``Makefile`` in the next; the kernel named the ignored
``cache.o``, so the run's record, ``avfs status`` and git's fsmonitor answer all missed the
changed ``Makefile``). :class:`LinkedNames` keeps, for each upper inode with more than one
link, the names it is known by; the journal records all of them when any one changes.

Names come from what the journal stats anyway (its walk of the upper layer, the ``lstat``
of each new name): a name linked later to a file seen with one link is found by one
listing of the upper layer (inode numbers from ``readdir``, no ``stat``), at most once per
inode and link count.

A name gone while its file keeps others makes those others *suspect* for the rest of the
mount (found by review44): overlayfs keeps the first upper dentry it looked up for the
overlay inode, unhashed once that name is removed, and names it in every later write
event; with the name removed whole (``rm -r`` of its directory) no event comes at all. So
nothing tells the journal of a write through a remaining name: it names them in every
answer (:meth:`LinkedNames.suspects`), and a status's mark keeps them from the offline
walk's vouching (core/workspace/upperjournal.py). A remount's fresh overlay inodes name
writes rightly again.
"""

from __future__ import annotations

import os
import stat

Key = tuple[int, int]  # (st_dev, st_ino)
MAX_KEPT = 100_000  # linked names kept; past it the journal gives up (answers "everything")
TOO_MANY = f"the mount's upper layer holds more than {MAX_KEPT} hard-linked names"


class LinkedNames:
    """The upper layer's linked files: inode -> names, name -> inode."""

    def __init__(self) -> None:
        # past MAX_KEPT names: the journal is given up, every answer "everything" until a
        # walk finds fewer (found by review43: the names were forgotten whole there, and a
        # write through one of a forgotten pair named the other alone, for good)
        self.full = False
        self._names: dict[Key, set[str]] = {}
        self._key: dict[str, Key] = {}
        self._searched: dict[Key, int] = {}  # the link count a listing was made for
        self._wanted: set[Key] = set()  # inodes with names not known yet
        # (inode, written) whose names were given in this read of events: a write's and a
        # chmod's apart (review43: a chmod of the link took them, and the write after it in
        # the same read named no other name)
        self._told: set[tuple[Key, bool]] = set()
        # inodes that lost a name while keeping others (review44): their names, followed
        # through renames, are named in every answer until the mount ends
        self._suspect: set[Key] = set()
        # (a walk after an overflow or a give-up: the names known before, :meth:`fresh`;
        # the inodes kept below two links only for that, :meth:`settle`)
        self._prior: dict[Key, set[str]] = {}
        self._via_prior: set[Key] = set()

    def fresh(self) -> LinkedNames:
        """A new instance for a walk of the whole upper layer (after a queue overflow, or a
        watch given up), knowing what this one knew: :meth:`settle` once the walk is done."""
        new = LinkedNames()
        new._suspect = set(self._suspect)
        new._prior = {k: set(v) for k, v in self._prior.items()}
        for k, names in self._names.items():
            new._prior.setdefault(k, set()).update(names)
        return new

    def settle(self) -> None:
        """After :meth:`fresh`'s walk: an inode known before that lost a name the walk did
        not find again (a removal in a lost event, or while nothing watched) makes its
        names found suspect; a suspect inode the walk found no name of gives the journal
        up (:attr:`full`), kept to be found by a later walk."""
        prior, self._prior = self._prior, {}
        for key, old in prior.items():
            now = self._names.get(key)
            if now and old - now:
                self._suspect.add(key)
        if any(not self._names.get(key) for key in self._suspect):
            # a suspect the walk did not find: removed, or renamed while it listed (a
            # command renaming it in a loop through an overflow), which the walk cannot
            # tell; forgotten, a later write through it was named nowhere (review45 B):
            # the journal gives up instead (every answer "everything") until a walk finds it
            self.full = True
        for key in self._via_prior - self._suspect:  # (known before, one link now)
            for path in self._names.pop(key, ()):
                self._key.pop(path, None)
        self._via_prior = set()
        if len(self._key) + len(self._suspect) >= MAX_KEPT:
            self.full = True

    def following(self) -> bool:
        """Whether a file of one link may be one to know (a suspect's, one known before)."""
        return bool(self._suspect or self._prior)

    def suspects(self) -> list[str]:
        """The names of the files that lost a name while they had others (see the
        module's docstring): changed, for all the journal can tell."""
        if not self._suspect:
            return []
        return sorted(n for k in self._suspect for n in self._names.get(k, ()))

    def with_suspects(self, paths: list[str]) -> list[str]:
        """``paths`` and the :meth:`suspects` not among them."""
        return list(dict.fromkeys([*paths, *more])) if (more := self.suspects()) else paths

    def found(self, path: str, st: os.stat_result | None) -> None:
        """``path`` holds ``st`` now (a walk's or an event's ``lstat``)."""
        key = None if st is None else (st.st_dev, st.st_ino)
        if key is None or self._key.get(path) != key:
            self.gone(path)  # (the same file found again, by a walk and an event: kept)
        if key is None or st is None or not stat.S_ISREG(st.st_mode):
            return  # (a whiteout is a device overlayfs links to one shared inode: never one)
        if st.st_nlink < 2:
            if key in self._suspect:
                pass  # (a suspect name renamed: followed)
            elif key in self._prior:
                self._via_prior.add(key)
            else:
                return
        else:
            self._via_prior.discard(key)
        if not self._keep(path):
            return
        self._names.setdefault(key, set()).add(path)
        self._key[path] = key
        if len(self._names[key]) < st.st_nlink and self._searched.get(key) != st.st_nlink:
            self._searched[key] = st.st_nlink
            self._wanted.add(key)

    def _keep(self, path: str) -> bool:
        if len(self._key) + len(self._suspect) >= MAX_KEPT and path not in self._key:
            self.full = True
        return not self.full

    def linked(self, path: str) -> bool:
        """Whether ``path`` is a name of a file known to have others (or to have had them:
        a suspect, h-fix44a)."""
        return path in self._key

    def gone(self, path: str, upper_dir: str | None = None, moved: bool = True) -> None:
        """No file at ``path`` any more (removed, renamed away, replaced). ``upper_dir``:
        an event's word, checked there: a name still holding the file it was known by is
        kept (the kernel queues a RENAME_EXCHANGE of ``a`` and ``b`` as four events read
        after both moves: ``b`` found holding ``a``'s file, then "``b`` moved away"; found
        by review43: the journal forgot the name the kernel then gave a write through
        ``Makefile`` by, and the run recorded nothing). ``moved``: the name may come back
        elsewhere (a suspect inode's is followed); else it was removed."""
        if upper_dir is not None and path in self._key:
            try:
                st = os.lstat(os.path.join(upper_dir, path))
            except OSError:
                pass
            else:
                if (st.st_dev, st.st_ino) == self._key[path]:
                    return
        key = self._key.pop(path, None)
        if key is not None:
            names = self._names.get(key)
            if names is not None:
                names.discard(path)
                if names:  # (its other names: a write through them may name this one)
                    self._suspect.add(key)
                    if len(self._key) + len(self._suspect) >= MAX_KEPT:
                        self.full = True
                elif key not in self._suspect or not moved:  # (a suspect one moved: followed)
                    self._suspect.discard(key)
                    del self._names[key]
                    self._searched.pop(key, None)

    def gone_below(self, prefix: str, upper_dir: str | None = None, moved: bool = True) -> None:
        """A directory ``prefix`` (ending in ``/``) removed or renamed away (``upper_dir``,
        ``moved``: as :meth:`gone`'s, each name checked)."""
        for path in [p for p in self._key if p.startswith(prefix)]:
            self.gone(path, upper_dir, moved)

    def others(self, path: str, written: bool = True) -> list[str]:
        """The other names of the file at ``path``, changed through it (``written``: its
        bytes, else its attributes): none when it has one, or when they were given already
        for such a change in this read of events (65,000 names of one file written in a
        loop: each read journals them once)."""
        key = self._key.get(path)
        if key is None or (key, written) in self._told:
            return []
        self._told.add((key, written))
        return [n for n in self._names.get(key, ()) if n != path]

    def search(self, upper_dir: str) -> list[str]:
        """Find the names of the inodes found with fewer names than links, by one listing
        of the upper layer (``readdir``'s inode numbers; a match is checked with
        ``lstat``); the names newly known (each a name of a file that changed). Ends a read
        of events."""
        self._told.clear()
        if not self._wanted:
            return []
        wanted, self._wanted = self._wanted, set()
        inos = {ino: (dev, ino) for dev, ino in wanted}
        new: list[str] = []
        stack = [""]
        while stack:
            rel = stack.pop()
            try:
                it = os.scandir(os.path.join(upper_dir, rel) if rel else upper_dir)
            except OSError:
                continue
            with it:
                for de in it:
                    path = f"{rel}/{de.name}" if rel else de.name
                    try:
                        if de.is_dir(follow_symlinks=False):
                            if path != ".git":
                                stack.append(path)
                            continue
                        key = inos.get(de.inode())
                        if key is None or path in self._key or not de.is_file(follow_symlinks=False):
                            continue
                        st = de.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if (st.st_dev, st.st_ino) == key and self._keep(path):
                        self._names.setdefault(key, set()).add(path)
                        self._key[path] = key
                        new.append(path)
        return new
