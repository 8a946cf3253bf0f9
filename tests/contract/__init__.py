"""The contract suite: what a user relies on in a fork, written once and run against every
backend (docs/testing.md, "One contract for every backend")."""
