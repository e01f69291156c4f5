"""Defaults shared by the CLI and the server, kept free of heavy imports so that
commands like ``rivet check`` start fast (the home directory: :mod:`rivet.home`)."""

from __future__ import annotations

__all__ = ["DEFAULT_IMAGE", "DEFAULT_PORT", "LUA_LIMIT_VARIABLES"]

DEFAULT_PORT = 8420
# The image for commands run outside any container.with / stage container.
DEFAULT_IMAGE = "alpine:latest"
# The Lua sandbox limits (rivet.lua.sandbox.Limits.from_env): memory, definition and
# stage CPU budgets. Named here, without lupa, for `rivet up` to pass them on.
LUA_LIMIT_VARIABLES = (
    "RIVET_LUA_MEMORY_MIB",
    "RIVET_LUA_DEFINITION_SECONDS",
    "RIVET_LUA_STAGE_SECONDS",
)
