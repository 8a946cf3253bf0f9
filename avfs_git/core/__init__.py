"""Core: vaults, workspaces, checkpoints, merge, history. Imports nothing above it: no ops,
fuse, proxy or front ends, and no click, rich or fuse (tests/test_layers.py)."""
