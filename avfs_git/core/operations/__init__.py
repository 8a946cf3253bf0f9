"""Operations over vaults: checkpoints, merges, history (log, diff, show), remotes, search.
The top tier of core; nothing in core imports it."""
