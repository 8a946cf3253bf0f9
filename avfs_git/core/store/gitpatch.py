"""Patches of two blobs' bytes, by libgit2: the unified diff git prints, and its line counts
(`avfs diff`, `log -p`, `show`, `--stat`).
"""

from __future__ import annotations


def blob_patch(old: bytes | None, new: bytes | None, old_path: str, new_path: str, context: int = 3) -> str:
    """The unified diff (git's format, libgit2's) of two blobs' contents (None: absent),
    labelled with the two paths; binary contents are named, not shown. Empty when equal."""
    import pygit2

    return pygit2.Patch.create_from(old, new, old_path, new_path, context_lines=context).text or ""


def blob_line_stats(
    old: bytes | None, new: bytes | None, old_label: str, new_label: str
) -> tuple[int, int, bool]:
    """(insertions, deletions, binary) of the diff of two blobs' contents (labels: valid
    UTF-8)."""
    import pygit2

    patch = pygit2.Patch.create_from(old, new, old_label, new_label)
    _, ins, dels = patch.line_stats
    return ins, dels, bool(patch.delta.is_binary)
