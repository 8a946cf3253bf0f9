"""Workflows over core: the mount lifecycle and registry (mounts), up/down/apply/export
(quickstart), stats/gc/prune/doctor (maintenance). Imports core and policy only; fuse,
proxy and the front ends build on it (docs/architecture.md)."""
