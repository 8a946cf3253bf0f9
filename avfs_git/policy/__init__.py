"""The policy of ``avfs proxy exec``."""

from .classify import (
    DEFAULT_POLICY_PATH,
    Category,
    CommandInfo,
    Decision,
    Outcome,
    Policy,
    PolicyError,
    Rule,
    strictest,
)

__all__ = [
    "DEFAULT_POLICY_PATH",
    "Category",
    "CommandInfo",
    "Decision",
    "Outcome",
    "Policy",
    "PolicyError",
    "Rule",
    "strictest",
]
