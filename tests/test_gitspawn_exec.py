"""The git processes a confined ``proxy exec`` no longer starts (h-gitspawn1), held by what
they were for: a run that records a commit on a mounted fork rewrites the mount's index
itself (it follows the fork's new commit, keeping what the person staged), and that
write is no reason to look at the index again for a staged half of a planted repository
(``git diff-index --cached HEAD``, ``proxy/recording.py`` ``_staged_over``). What the look
finds stays found where the run itself staged something (tests/test_adv_plantreach.py:
one half staged by the run, the other left in the work tree; the halves from two runs);
here, what must not change: the person's staged change survives the record as staged,
nothing is refused, and the person's next plain ``git commit`` records it."""

from __future__ import annotations

from .test_adv_mountfiles import Scene
from .test_adv_mountfiles import scene as scene  # a mounted fork, both backends, real bwrap


def test_a_recorded_run_keeps_the_persons_staged_change_and_refuses_nothing(scene: Scene) -> None:
    """The person stages a new version of ``a.txt`` and puts the work tree's back as it
    was; an agent's run writes ``w.txt`` and its record commits it (the index rewritten to
    follow the new commit). The index afterwards still stages the person's version, the
    envelope refuses nothing, and the person's ``git commit`` records the staged one."""
    (scene.mp / "a.txt").write_text("staged by the person\n")
    scene.git("add", "a.txt")
    (scene.mp / "a.txt").write_text("the fork's a\n")
    before = scene.git("rev-parse", "HEAD").stdout
    res = scene.attack("echo written > w.txt\n")
    doc = res.to_dict()
    assert res.success and doc["commit"] is not None, doc
    assert not doc.get("refs_refused"), doc
    assert scene.git("rev-parse", "HEAD").stdout != before
    assert scene.git("show", "HEAD:a.txt").stdout == "the fork's a\n"
    assert scene.git("show", "HEAD:w.txt").stdout == "written\n"
    assert scene.git("diff", "--cached", "--name-only").stdout.split() == ["a.txt"]
    assert scene.git("show", ":a.txt").stdout == "staged by the person\n"
    scene.git("commit", "-q", "-m", "the person's staged version")
    assert scene.git("show", "HEAD:a.txt").stdout == "staged by the person\n"
    scene.hook_answers()
