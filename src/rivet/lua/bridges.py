"""What the Lua state holds of Python: the sandbox's bridges, and the functions the
budget hook and the memory cap's switch call (for ``bootstrap.lua``).

lupa keeps every Python object handed to Lua alive from the Lua state. Those
callables therefore hold only a :class:`Bridges` (and an index), never the sandbox or
a module directly: ``Sandbox.close`` empties it, which cuts every bridge at once and
breaks the reference cycle Lua state -> callable -> sandbox -> Lua state, so the
state is freed by reference counting, on the closing thread, and never later by
Python's cycle collector on whichever thread happens to collect.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rivet.lua.lua_values import type_name

if TYPE_CHECKING:
    from rivet.lua.memory import MemoryCap
    from rivet.lua.sandbox import Sandbox

__all__ = ["Bridges", "extra_argument_problem", "hook_functions", "positional_arity"]


class Bridges:
    """Everything the Python callables held by Lua reach, and nothing else."""

    __slots__ = ("functions", "memory", "sandbox")

    def __init__(self, sandbox: Sandbox, memory: MemoryCap) -> None:
        self.sandbox: Sandbox | None = sandbox
        self.memory: MemoryCap | None = memory
        self.functions: list[tuple[Callable[..., Any], str, int | None]] = []

    def cut(self) -> None:
        self.sandbox = None
        self.memory = None
        self.functions.clear()


def positional_arity(fn: Callable[..., Any]) -> int | None:
    """How many positional arguments ``fn`` takes, or None when it takes ``*args``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except ValueError:  # some builtins have no signature: pass arguments as they come
        return None
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return None
    return sum(
        p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for p in params
    )


_REFUSED_EXTRA = frozenset({"table", "string", "function"})


def extra_argument_problem(name: str, arity: int, args: tuple[Any, ...]) -> str | None:
    """Why a call of the Rivet function ``name`` (taking ``arity`` arguments) with
    ``args`` is refused, or None. Lua would drop extra arguments silently, which
    turns ``process.run({"make"}, {check = true})`` into a run without the check, so
    an extra table, string or function is refused. An extra nil, number or boolean
    is ignored as in Lua: ``string.gsub`` and friends return a count after their
    result, and ``output.set("v", text:gsub("%s+$", ""))`` is ordinary Lua. Worded
    like ``extra_argument`` in bootstrap.lua, which checks the Lua glue's functions."""
    for position, value in enumerate(args[arity:], start=arity + 1):
        kind = type_name(value)
        if kind not in _REFUSED_EXTRA:
            continue
        plural = "" if arity == 1 else "s"
        message = (
            f"{name} takes {arity} argument{plural}, but argument {position} is a "
            f"{kind} (Lua would ignore it)"
        )
        if kind == "table":
            message += "; options go inside the table the function takes"
        return message
    return None


def hook_functions(bridges: Bridges) -> tuple[Callable[..., Any], ...]:
    """``check_budget``, ``is_killed``, ``revoke_refund``, ``set_lifted`` and
    ``leave_python``, in the order ``bootstrap.lua`` takes them. A stop reason is
    answered with the memory cap lifted (the string is allocated as it reaches Lua;
    the Lua side puts the cap back before raising it). Once the bridges are cut they
    answer ``True`` ("the job has ended", a message Lua already holds) and switch
    nothing."""

    def check_budget() -> str | bool | None:
        sandbox = bridges.sandbox
        if sandbox is None:
            return True
        reason = sandbox._check_budget()
        if reason is not None:
            sandbox._memory.set_lifted(True)
        return reason

    def is_killed(reason: str | None = None) -> str | bool | None:
        sandbox = bridges.sandbox
        if sandbox is None:
            return True
        killed = sandbox._kill(reason)
        if killed is not None:
            sandbox._memory.set_lifted(True)
        return killed

    def revoke_refund() -> None:
        sandbox = bridges.sandbox
        if sandbox is not None:
            sandbox._revoke_refund()

    def set_lifted(lifted: bool) -> None:
        memory = bridges.memory
        if memory is not None:
            memory.set_lifted(lifted)

    def leave_python() -> str | None:
        sandbox = bridges.sandbox
        return None if sandbox is None else sandbox._leave()

    return check_budget, is_killed, revoke_refund, set_lifted, leave_python
