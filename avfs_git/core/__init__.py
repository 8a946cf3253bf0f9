"""Core: vaults, workspaces, checkpoints. No click, rich or fuse here."""
