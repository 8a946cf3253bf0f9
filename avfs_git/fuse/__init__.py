"""The FUSE adapter and the mount daemon (imports mfusepy; only front ends import this). The mount
lifecycle and registry are in :mod:`avfs_git.ops.mounts`; layers: docs/architecture.md."""
