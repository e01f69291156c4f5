"""``output.*``: values shared between the stages of one job and reported with its result.

``output.set`` enforces the API's caps (:mod:`rivet.limits`) where the pipeline can
see the error: at most ``MAX_OUTPUTS`` outputs, names of at most ``MAX_NAME``
characters, strings of at most ``MAX_VALUE`` characters without NUL, all of them
together at most ``MAX_OUTPUTS_TOTAL`` characters, numbers finite within ±2^53. A
result the server would refuse therefore fails the stage that made it, with the
line, instead of failing the report at the end."""

from __future__ import annotations

from typing import Any

from rivet.engine.context import JobContext
from rivet.limits import (
    MAX_NAME,
    MAX_OUTPUTS,
    MAX_OUTPUTS_TOTAL,
    MAX_VALUE,
    number_problem,
    outputs_size,
    text_problem,
)
from rivet.lua import lua_values as lv
from rivet.lua.sandbox import LuaCallError, Sandbox

__all__ = ["install"]


def _name(fn: str, name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise LuaCallError(f"output.{fn}: the output name must be a non-empty string")
    return name


def _check(key: str, value: str | int | float | bool, outputs: dict[str, Any]) -> None:
    if len(key) > MAX_NAME:
        raise LuaCallError(f"output.set: output names may have at most {MAX_NAME} characters")
    if (why := text_problem(key)) is not None:
        raise LuaCallError(f"output.set: the output name {why}")
    if key not in outputs and len(outputs) >= MAX_OUTPUTS:
        raise LuaCallError(f"output.set: a job may set at most {MAX_OUTPUTS} outputs")
    if isinstance(value, str):
        if len(value) > MAX_VALUE:
            raise LuaCallError(
                f"output.set: value of '{key}' has {len(value)} characters; "
                f"at most {MAX_VALUE} are allowed"
            )
        if (why := text_problem(value)) is not None:
            raise LuaCallError(f"output.set: value of '{key}' {why}")
    elif not isinstance(value, bool) and (why := number_problem(value)) is not None:
        raise LuaCallError(f"output.set: value of '{key}': {why}")
    if outputs_size({**outputs, key: value}) > MAX_OUTPUTS_TOTAL:
        raise LuaCallError(
            f"output.set: all outputs together may have at most {MAX_OUTPUTS_TOTAL} "
            "characters of names and string values"
        )


def install(sandbox: Sandbox, ctx: JobContext) -> None:
    def set_value(name: Any, value: Any) -> None:
        ctx.require_run_phase("output.set")
        key = _name("set", name)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str | int | float | bool):
            raise LuaCallError(
                f"output.set: value of '{key}' must be a string, number or boolean, "
                f"got {lv.type_name(value)}"
            )
        _check(key, value, ctx.outputs)
        ctx.outputs[key] = value

    def get(name: Any, default: Any = None) -> Any:
        ctx.require_run_phase("output.get")
        value = ctx.outputs.get(_name("get", name))
        return default if value is None else value

    def require(name: Any) -> Any:
        ctx.require_run_phase("output.require")
        key = _name("require", name)
        if key not in ctx.outputs:
            raise LuaCallError(f"output.require: output '{key}' has not been set")
        return ctx.outputs[key]

    def has(name: Any) -> bool:
        ctx.require_run_phase("output.has")
        return _name("has", name) in ctx.outputs

    def all_values() -> Any:
        ctx.require_run_phase("output.all")
        return sandbox.table(dict(ctx.outputs))

    def keys() -> Any:
        ctx.require_run_phase("output.keys")
        return sandbox.table(sorted(ctx.outputs))

    def clear(name: Any) -> None:
        ctx.require_run_phase("output.clear")
        ctx.outputs.pop(_name("clear", name), None)

    def clear_all() -> None:
        ctx.require_run_phase("output.clear_all")
        ctx.outputs.clear()

    sandbox.module(
        "output",
        {
            "set": set_value,
            "get": get,
            "require": require,
            "has": has,
            "all": all_values,
            "keys": keys,
            "clear": clear,
            "clear_all": clear_all,
        },
    )
