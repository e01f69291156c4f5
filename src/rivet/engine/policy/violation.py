"""The error a policy refusal raises; callers prefix it with the Lua function name."""

from __future__ import annotations

from rivet.errors import RivetError

__all__ = ["PolicyViolation"]


class PolicyViolation(RivetError):
    """Pipeline code asked for something the runner policy forbids.

    ``rule`` is the dotted policy key (``process.denied_binaries``); the message names
    it too, so ``process.run: policy process.denied_binaries forbids 'curl'`` tells the
    pipeline author what was refused and the runner admin which key to change.
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
