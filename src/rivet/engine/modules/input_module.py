"""``input.get/require/has/all/keys``: the job's typed input values (read-only)."""

from __future__ import annotations

from typing import Any

from rivet.engine.context import JobContext
from rivet.lua.sandbox import LuaCallError, Sandbox

__all__ = ["install"]


def _name(fn: str, name: Any) -> str:
    if not isinstance(name, str):
        raise LuaCallError(f"input.{fn}: the input name must be a string")
    return name


def install(sandbox: Sandbox, ctx: JobContext) -> None:
    def get(name: Any, default: Any = None) -> Any:
        ctx.require_run_phase("input.get")
        value = ctx.inputs.get(_name("get", name))
        return default if value is None else value

    def require(name: Any) -> Any:
        ctx.require_run_phase("input.require")
        key = _name("require", name)
        if key not in ctx.inputs:
            known = ", ".join(sorted(ctx.inputs)) or "none"
            raise LuaCallError(
                f"input.require: input '{key}' has no value (inputs with values: {known})"
            )
        return ctx.inputs[key]

    def has(name: Any) -> bool:
        ctx.require_run_phase("input.has")
        return _name("has", name) in ctx.inputs

    def all_values() -> Any:
        ctx.require_run_phase("input.all")
        return sandbox.table(dict(ctx.inputs))

    def keys() -> Any:
        ctx.require_run_phase("input.keys")
        return sandbox.table(sorted(ctx.inputs))

    sandbox.module(
        "input", {"get": get, "require": require, "has": has, "all": all_values, "keys": keys}
    )
