"""The Lua 5.4 sandbox every pipeline runs in (spec section 3).

One :class:`Sandbox` is one Lua state, used by one thread at a time: one per
``rivet check`` file, one per job on a runner. It enforces:

- the library surface: only the safe standard library is in the environment that
  pipeline chunks see (built by ``bootstrap.lua``); Python objects never reach Lua
  directly — callables are wrapped in Lua closures, values are converted to plain
  Lua values, and attribute access on any Python object is refused;
- a memory cap for the whole state (lupa's allocator limit);
- a CPU budget per :meth:`Sandbox.call`, counted in thread CPU time spent in Lua:
  time blocked in a callback (waiting for a process) does not count, and neither
  does CPU time of Python callbacks. A count hook checks the budget; once a limit is
  hit the state is killed, and every ``pcall``/``xpcall``/coroutine boundary
  re-raises, so pipeline code cannot swallow the kill.
"""

from __future__ import annotations

import inspect
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from lupa import lua54

from rivet.defaults import LUA_LIMIT_VARIABLES
from rivet.errors import ConfigError, LuaError, ResourceLimitError

__all__ = ["Limits", "LuaCallError", "Sandbox", "clean_message"]

MiB = 1024 * 1024
# Instructions between budget checks: small enough to stop a loop within
# milliseconds, large enough that the Python call it costs is noise.
HOOK_INSTRUCTIONS = 10_000


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 256 * MiB
    definition_cpu_seconds: float = 5.0
    stage_cpu_seconds: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """Limits from ``RIVET_LUA_MEMORY_MIB``, ``RIVET_LUA_DEFINITION_SECONDS`` and
        ``RIVET_LUA_STAGE_SECONDS``; unset variables keep the defaults."""
        env = os.environ if environ is None else environ
        default = cls()

        def number(name: str, fallback: float) -> float:
            raw = env.get(name)
            if raw is None or raw == "":
                return fallback
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
            if not value > 0:
                raise ConfigError(f"{name}: must be greater than 0, got {raw!r}")
            return value

        memory, definition, stage = LUA_LIMIT_VARIABLES
        return cls(
            memory_bytes=int(number(memory, default.memory_bytes / MiB) * MiB),
            definition_cpu_seconds=number(definition, default.definition_cpu_seconds),
            stage_cpu_seconds=number(stage, default.stage_cpu_seconds),
        )


class LuaCallError(Exception):
    """Raised by a Python callback to make the Lua caller see ``error(message)``."""


def _deny_attribute(obj: object, name: object, is_setting: bool) -> str:
    raise AttributeError("Python attributes are not accessible from pipelines")


def clean_message(raw: str) -> str:
    """Lupa appends a Lua traceback to messages; users get the first line(s) only."""
    head = raw.split("\nstack traceback:", 1)[0].strip()
    return head or "error raised without a message (error object is not a string)"


def _positional_arity(fn: Callable[..., Any]) -> int | None:
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


class Sandbox:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._lua = lua54.LuaRuntime(
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            attribute_filter=_deny_attribute,
            max_memory=self.limits.memory_bytes,
        )
        self._killed: str | None = None
        self._cancelled: str | None = None
        self._deadline: float | None = None
        self._budget_label = ""
        self._budget_seconds = 0.0
        self._callback_cpu = 0.0
        self._owner: int | None = None
        source = resources.files("rivet.lua").joinpath("bootstrap.lua").read_text("utf-8")
        boot = self._lua.execute(source, self._check_budget, self._kill)
        self._env = boot["env"]
        self._wrap = boot["wrap"]
        self._compile = boot["compile"]
        self._line_of = boot["line_of"]
        self._caller_line = boot["caller_line"]
        boot["set_hook"](HOOK_INSTRUCTIONS)
        # The real globals keep io, os, debug, python…; pipeline code never sees them,
        # but drop the python module anyway so a future leak of _G is less harmful.
        self._lua.globals()["python"] = None

    # --- limits -------------------------------------------------------------------

    def _check_budget(self) -> str | None:
        if self._killed:
            return self._killed
        if self._cancelled:
            self._killed = self._cancelled
            return self._killed
        if self._deadline is not None:
            used = time.thread_time() - self._callback_cpu
            if used > self._deadline:
                self._killed = (
                    f"{self._budget_label}: Lua CPU budget of {self._budget_seconds:g} s "
                    "exceeded (endless loop?)"
                )
                return self._killed
        return None

    def _kill(self, reason: str | None = None) -> str | None:
        if reason == "memory" and not self._killed:
            self._killed = (
                f"memory limit of {self.limits.memory_bytes // MiB} MiB exceeded by pipeline code"
            )
        return self._killed

    def cancel(self, reason: str = "job cancelled") -> None:
        """Stop Lua code at its next budget check (safe to call from another thread)."""
        self._cancelled = reason

    # --- values -------------------------------------------------------------------

    @property
    def env(self) -> Any:
        return self._env

    def table(self, items: Mapping[str, Any] | Iterable[Any] | None = None) -> Any:
        """A Lua table from a Python mapping or sequence, converted recursively."""
        if items is None:
            return self._lua.table()
        return self.to_lua(items)

    def to_lua(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if lua54.lua_type(value) is not None:
            return value
        if isinstance(value, Mapping):
            table = self._lua.table()
            for key, item in value.items():
                table[key] = self.to_lua(item)
            return table
        if isinstance(value, list | tuple):
            table = self._lua.table()
            for index, item in enumerate(value, start=1):
                table[index] = self.to_lua(item)
            return table
        raise TypeError(f"cannot hand {type(value).__name__} to Lua")

    def expose(self, fn: Callable[..., Any], name: str, *, raw: bool = False) -> Any:
        """A Lua function that calls ``fn``; ``LuaCallError`` becomes a Lua error at the
        caller's line, any other exception an internal error naming ``name``.

        With ``raw=True`` the result is the bare ``(ok, value...)`` callable, for
        trusted Lua glue that raises at the right level itself; never hand it to
        pipeline code, since it is a Python object."""

        arity = _positional_arity(fn)

        def call(*args: Any) -> tuple[Any, ...]:
            started = time.thread_time()
            if arity is not None:
                # Lua semantics: extra arguments are dropped, missing ones are nil.
                args = args[:arity] + (None,) * (arity - len(args))
            try:
                result = fn(*args)
            except LuaCallError as exc:
                return (False, str(exc))
            except (LuaError, ResourceLimitError) as exc:
                return (False, str(exc))
            except UnicodeDecodeError:  # a binary string inside a table argument
                return (False, f"{name}: text is not valid UTF-8")
            except Exception as exc:  # a bug in Rivet, not in the pipeline
                return (False, f"{name}: internal error: {type(exc).__name__}: {exc}")
            finally:
                self._callback_cpu += time.thread_time() - started
            if isinstance(result, tuple):
                return (True, *(self.to_lua(v) for v in result))
            return (True, self.to_lua(result))

        return call if raw else self._wrap(call, name)

    def module(self, name: str, functions: Mapping[str, Callable[..., Any]]) -> Any:
        """Install a global table ``name`` made of exposed Python functions."""
        table = self._lua.table()
        for fname, fn in functions.items():
            table[fname] = self.expose(fn, f"{name}.{fname}")
        self._env[name] = table
        return table

    def line_of(self, fn: Any) -> int | None:
        line = self._line_of(fn)
        return int(line) if line is not None and line > 0 else None

    @property
    def caller_line_function(self) -> Any:
        """The privileged Lua function ``caller_line(level)``, for trusted glue only."""
        return self._caller_line

    def eval_lua(self, code: str, *args: Any) -> Any:
        """Run trusted Rivet Lua code (module glue) in the sandbox environment with
        ``args`` as its ``...``; returns what the chunk returns."""
        fn, err = self._compile(code, "=rivet")
        if fn is False:
            raise RuntimeError(f"internal Lua glue failed to compile: {err}")
        return fn(*args)

    # --- running pipeline code -------------------------------------------------------

    def load(self, source: str, filename: str) -> Any:
        """Compile a pipeline chunk; syntax errors become ``LuaError`` with file:line."""
        fn, err = self._compile(source, f"={filename}")
        if fn is False:
            raise LuaError(clean_message(str(err)))
        return fn

    def call(self, fn: Any, *args: Any, budget: float, label: str) -> Any:
        """Call Lua ``fn`` under a CPU budget; Lua errors become ``LuaError`` /
        ``ResourceLimitError`` with clean messages."""
        me = threading.get_ident()
        if self._owner not in (None, me):
            raise RuntimeError("a Sandbox is used by one thread at a time")
        outer = self._deadline is None
        if outer:
            self._owner = me
            self._budget_label = label
            self._budget_seconds = budget
            self._callback_cpu = 0.0
            self._deadline = time.thread_time() + budget
        try:
            return fn(*args)
        except lua54.LuaMemoryError:
            self._kill("memory")
            raise ResourceLimitError(f"{label}: {self._killed}") from None
        except lua54.LuaError as exc:
            message = clean_message(str(exc))
            if self._killed:
                if self._killed == self._cancelled:
                    raise LuaError(self._killed) from None
                if self._killed.startswith(label):
                    raise ResourceLimitError(self._killed) from None
                raise ResourceLimitError(f"{label}: {self._killed}") from None
            raise LuaError(message) from None
        finally:
            if outer:
                self._deadline = None
                self._owner = None
