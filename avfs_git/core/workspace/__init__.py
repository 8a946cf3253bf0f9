"""The workspace: a fork's live state, its base commit plus the overlay (the upper layer, its
watch and journal, the merged view, writes, commits, status, ignore rules). Built on the store;
reaches a live mount only through what it is given, never by importing ``avfs_git.mount``."""
