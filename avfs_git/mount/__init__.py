"""What only a mount needs: the worktree git dir that makes a mounted directory a linked
worktree of its vault, the fsmonitor hook and its socket, the untracked cache. Above core,
below ops, fuse and proxy (tests/test_layers.py)."""
