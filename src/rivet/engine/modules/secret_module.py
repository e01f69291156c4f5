"""``secret.get`` and ``secret.has``: the secrets granted to the job's pipeline.

Every value handed to Lua is registered with the job's redactor first (all granted
values already are, from the job's start), so logging it, printing it from a
process or setting it as an output shows ``***``.
"""

from __future__ import annotations

from typing import Any

from rivet.engine.context import JobContext
from rivet.lua.lua_values import type_name
from rivet.lua.sandbox import LuaCallError, Sandbox

__all__ = ["install"]


def _name(fn: str, name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise LuaCallError(
            f"secret.{fn}: the secret name must be a non-empty string, got {type_name(name)}"
        )
    return name


def install(sandbox: Sandbox, ctx: JobContext) -> None:
    def get(name: Any) -> str:
        ctx.require_run_phase("secret.get")
        return ctx.secrets.get(_name("get", name), "secret.get")

    def has(name: Any) -> bool:
        ctx.require_run_phase("secret.has")
        return _name("has", name) in ctx.secrets.names()

    sandbox.module("secret", {"get": get, "has": has})
