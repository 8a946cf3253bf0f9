"""What the set-aside of a planted repository's git state does when its names are taken
(the thirty-sixth round, attack28; docs/security.md, "The hand-made view, the CLI server,
socketcall and kernel interfaces"; ``proxy/plantedgit.py`` ``_aside``).

A planted ``config`` (or hook, ``commondir``, ``.git`` file) is renamed in place to a free
``NAME.avfs-planted[-N]``, N below 1,000. Found: a command that made all 999 of those
names itself left its planted file where it was (``_aside`` found none free and the file
was kept, unreported): ``git init sub``, its ``core.fsmonitor`` and a ``pre-commit`` hook,
and ``config.avfs-planted`` ... ``-999`` (and the hook's) beside them; the person's plain
``git status`` in ``MOUNT/sub`` ran the planted program on the host. Now a name past the
bound is a random one (the command has ended: nothing can take it before the rename).
From inside a real confined ``proxy exec`` in a real mount (overlay and pure FUSE)."""

from __future__ import annotations

import os

from .test_adv_mountfiles import Scene
from .test_adv_mountfiles import scene as scene  # a mounted fork, both backends, real bwrap
from .test_adv_planted import _envelope, _git, _person_in


def test_a_planted_config_whose_set_aside_names_are_all_taken_is_still_set_aside(scene: Scene) -> None:
    mark = scene.ran
    res = scene.attack(
        "mkdir sub && cd sub && git init -q && echo s > f && git add f && git commit -qm one\n"
        f"git config core.fsmonitor 'touch {mark}/sub-fsmonitor; false'\n"
        f"printf '#!/bin/sh\\ntouch {mark}/hook\\n' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit\n"
        "for n in $(seq 1 999); do s=.avfs-planted-$n; [ $n = 1 ] && s=.avfs-planted\n"
        "  : > .git/config$s; : > .git/hooks/pre-commit$s; done\n"
    )
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    _person_in(scene, "sub")
    _git(scene, "sub", "commit", "-qam", "the person commits in sub")
    assert sorted(os.listdir(scene.ran)) == [], "planted code ran on the host"
    aside = {p["path"]: p for p in _envelope(res)["planted_git_dirs"]}
    assert {"sub/.git/config", "sub/.git/hooks/pre-commit"} <= set(aside), sorted(aside)
    assert "core.fsmonitor" in aside["sub/.git/config"]["found"]
