"""``output.*``: values shared between the stages of one job and reported with its result.

Outputs travel with the job's completion and are stored on the job, so they are
capped (:mod:`rivet.engine.limits`): at most MAX_OUTPUTS names of at most
MAX_OUTPUT_NAME_CHARS characters, and MAX_OUTPUTS_BYTES for all names and values
together. Values must also be storable and exact (:mod:`rivet.limits`): no NUL in
names or strings, numbers finite within ±2^53. A refused ``output.set`` changes
nothing, and fails the stage at its line instead of the job's report at the end.
"""

from __future__ import annotations

from typing import Any

from rivet.engine.context import JobContext
from rivet.engine.limits import MAX_OUTPUT_NAME_CHARS, MAX_OUTPUTS, MAX_OUTPUTS_BYTES
from rivet.engine.policy.fs_policy import format_size
from rivet.limits import number_problem, output_size, text_problem
from rivet.lua.lua_values import type_name
from rivet.lua.sandbox import LuaCallError, Sandbox

__all__ = ["install"]


def _name(fn: str, name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise LuaCallError(f"output.{fn}: the output name must be a non-empty string")
    return name


def _storable(key: str, value: str | int | float | bool) -> None:
    """What the server could not store or a pipeline could not read back exactly."""
    if (why := text_problem(key)) is not None:
        raise LuaCallError(f"output.set: the output name {why}")
    if isinstance(value, str):
        if (why := text_problem(value)) is not None:
            raise LuaCallError(f"output.set: value of '{key}' {why}")
    elif not isinstance(value, bool) and (why := number_problem(value)) is not None:
        raise LuaCallError(f"output.set: value of '{key}': {why}")


def install(sandbox: Sandbox, ctx: JobContext) -> None:
    sizes: dict[str, int] = {}  # bytes of each output, kept with ctx.outputs

    def check_room(key: str, value: str | int | float | bool) -> int:
        if len(key) > MAX_OUTPUT_NAME_CHARS:
            raise LuaCallError(
                f"output.set: the output name is {len(key)} characters long, over the "
                f"limit of {MAX_OUTPUT_NAME_CHARS}"
            )
        if key not in ctx.outputs and len(ctx.outputs) >= MAX_OUTPUTS:
            raise LuaCallError(
                f"output.set: cannot set '{key}': the job already has {len(ctx.outputs)} "
                f"outputs, the limit (clear some with output.clear)"
            )
        size = output_size(key, value)
        total = sum(sizes.values()) - sizes.get(key, 0) + size
        if total > MAX_OUTPUTS_BYTES:
            raise LuaCallError(
                f"output.set: '{key}' ({size} bytes) would bring the job's outputs to "
                f"{total} bytes, over the limit of {format_size(MAX_OUTPUTS_BYTES)}; outputs "
                "are for small values (versions, ids, paths): write bigger data to a file"
            )
        return size

    def set_value(name: Any, value: Any) -> None:
        ctx.require_run_phase("output.set")
        key = _name("set", name)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str | int | float | bool):
            raise LuaCallError(
                f"output.set: value of '{key}' must be a string, number or boolean, "
                f"got {type_name(value)}"
            )
        _storable(key, value)
        sizes[key] = check_room(key, value)
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
        key = _name("clear", name)
        ctx.outputs.pop(key, None)
        sizes.pop(key, None)

    def clear_all() -> None:
        ctx.require_run_phase("output.clear_all")
        ctx.outputs.clear()
        sizes.clear()

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
