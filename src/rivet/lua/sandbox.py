"""The Lua 5.4 sandbox every pipeline runs in (docs/lua-reference.md, '3. The sandbox').

One :class:`Sandbox` is one Lua state, used by one thread at a time: one per
``rivet check`` file, one per job on a runner. It enforces:

- the library surface: only the safe standard library is in the environment that
  pipeline chunks see (built by ``bootstrap.lua``); Python objects never reach Lua
  directly — callables are wrapped in Lua closures, values are converted to plain
  Lua values, and attribute access on any Python object is refused;
- a memory cap for the whole state (lupa's allocator limit), which holds for Lua
  code and is lifted while Python has control, so that lupa's own allocations from
  Python can never fail; what Rivet hands to Lua is measured against the cap instead
  (see :mod:`rivet.lua.memory` for why: a failed allocation there froze the process);
- a CPU budget per :meth:`Sandbox.call` (or :meth:`Sandbox.budget` window), counted in
  thread CPU time: time blocked in a callback (waiting for a process) does not count,
  and neither does the CPU time of Rivet's Python in a callback — unless Lua ran
  inside that callback (a metamethod, say), in which case the whole callback counts.
  A count hook checks the budget, and so does every callback; once a limit is hit the
  state is killed, every ``pcall``/``xpcall``/coroutine boundary re-raises, so
  pipeline code cannot swallow the kill, and every Rivet function refuses to run;
- the job's lifetime: :meth:`Sandbox.close` (the executor calls it on the job's thread
  when the job ends, whatever the outcome) first cuts every bridge to Python — a call
  then fails with "job has ended" — and then frees the Lua state there and then.
  Pipeline code cannot leave anything to run later: ``setmetatable`` refuses ``__gc``
  finalizers (see ``bootstrap.lua``), and Rivet functions only answer on the thread
  that is running the job's Lua, while it runs it.

Reading tables that come from pipeline code is done raw (:mod:`rivet.lua.lua_values`),
so no metamethod of the pipeline runs inside Rivet's Python in the first place, and
Python calls Lua only through :meth:`Sandbox.invoke` (or :meth:`call`,
:meth:`eval_lua`, :meth:`load`), which puts the memory cap on for the Lua it runs.
Rivet's Lua glue (``bootstrap.lua``, ``pipeline_api.lua``, the modules' glue) takes
every standard function it uses as a local when it is installed, before any pipeline
code runs, and is then sealed: a global looked up at run time, which the pipeline
could have replaced, is an internal error instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from lupa import lua54

from rivet.errors import LuaError, ResourceLimitError
from rivet.lua.bridges import Bridges, extra_argument_problem, hook_functions, positional_arity
from rivet.lua.memory import MemoryCap, lua_size, pushes_freely
from rivet.settings import LuaGroup, load_settings
from rivet.settings.model import LUA_DEFINITION_SECONDS, LUA_MEMORY_MIB, LUA_STAGE_SECONDS

__all__ = ["JOB_ENDED", "Limits", "LuaCallError", "Sandbox", "clean_message"]

MiB = 1024 * 1024
# Instructions between budget checks: small enough to stop a loop within
# milliseconds, large enough that the Python call it costs is noise.
HOOK_INSTRUCTIONS = 10_000


@dataclass(frozen=True)
class Limits:
    """The sandbox's caps; the settings ``lua.*`` (:class:`rivet.settings.LuaGroup`)
    declare them, their variables and their defaults."""

    memory_bytes: int = int(LUA_MEMORY_MIB * MiB)
    definition_cpu_seconds: float = LUA_DEFINITION_SECONDS
    stage_cpu_seconds: float = LUA_STAGE_SECONDS

    @classmethod
    def from_settings(cls, lua: LuaGroup) -> Limits:
        return cls(
            memory_bytes=int(lua.memory_mib * MiB),
            definition_cpu_seconds=lua.definition_seconds,
            stage_cpu_seconds=lua.stage_seconds,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The limits through the settings chain, for a caller that has no settings of
        its own: ``RIVET_LUA_MEMORY_MIB``, ``RIVET_LUA_DEFINITION_SECONDS`` and
        ``RIVET_LUA_STAGE_SECONDS`` in ``environ`` (default: this process's), else
        ``[lua]`` in ``$RIVET_HOME/config``, else the defaults."""
        return cls.from_settings(load_settings(env=environ).lua)


JOB_ENDED = "job has ended"


class LuaCallError(Exception):
    """Raised by a Python callback to make the Lua caller see ``error(message)``."""


def _deny_attribute(obj: object, name: object, is_setting: bool) -> str:
    raise AttributeError("Python attributes are not accessible from pipelines")


def clean_message(raw: str) -> str:
    """Lupa appends a Lua traceback to messages; users get the first line(s) only."""
    head = raw.split("\nstack traceback:", 1)[0].strip()
    return head or "error raised without a message (error object is not a string)"


class Sandbox:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._lua: Any = lua54.LuaRuntime(
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            attribute_filter=_deny_attribute,
            max_memory=self.limits.memory_bytes,
        )
        self._memory = MemoryCap(self._lua, self.limits.memory_bytes)
        self._bridges = Bridges(self, self._memory)
        self._closed = False
        self._killed: str | None = None
        self._cancelled: str | None = None
        self._deadline: float | None = None
        self._budget_label = ""
        self._budget_seconds = 0.0
        # CPU time of callbacks that ran no Lua (refunded), the last one refunded (the
        # bridge takes it back if Lua ran inside), and how many callbacks are running.
        self._callback_cpu = 0.0
        self._last_refund = 0.0
        self._depth = 0
        self._calling = "Rivet"  # the Rivet function running (or last run), for messages
        self._owner: int | None = None
        source = resources.files("rivet.lua").joinpath("bootstrap.lua").read_text("utf-8")
        chunk = self._lua.compile(source)
        boot = chunk(*hook_functions(self._bridges), JOB_ENDED)
        self._env: Any = boot["env"]
        self._wrap: Any = boot["wrap"]
        self._bridge: Any = boot["bridge"]
        self._run_lua: Any = boot["invoke"]
        self._seal: Any = boot["seal"]
        self._strict: Any = boot["strict"]
        self._compile: Any = boot["compile"]
        self._line_of: Any = boot["line_of"]
        self._caller_line: Any = boot["caller_line"]
        boot["set_hook"](HOOK_INSTRUCTIONS)
        self._seal(chunk)
        # The real globals keep io, os, debug, python…; pipeline code never sees them,
        # but drop the python module anyway so a future leak of _G is less harmful.
        self._lua.globals()["python"] = None
        self._memory.set_lifted(True)  # Python has control from here on

    # --- limits -------------------------------------------------------------------

    def _check_budget(self) -> str | None:
        """Called by the hook every HOOK_INSTRUCTIONS instructions: the reason to
        stop, or None."""
        return self._stop_reason(time.thread_time())

    def _stop_reason(self, now: float) -> str | None:
        """Why Lua must stop at thread CPU time ``now`` (also checked by every
        callback: a bridge call resets the hook's instruction count)."""
        if self._killed:
            return self._killed
        if self._cancelled:
            self._killed = self._cancelled
            return self._killed
        if self._deadline is not None:
            if threading.get_ident() != self._owner:
                self._killed = "pipeline code ran on a thread that is not running the job"
                return self._killed
            if now - self._callback_cpu > self._deadline:
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

    def _revoke_refund(self) -> None:
        """Lua ran inside the callback that just returned: its CPU time counts."""
        self._callback_cpu -= self._last_refund
        self._last_refund = 0.0

    def cancel(self, reason: str = "job cancelled") -> None:
        """Stop Lua code at its next budget check (safe to call from another thread)."""
        self._cancelled = reason

    # --- memory -------------------------------------------------------------------

    def reserve(self, size: int, what: str | None = None) -> None:
        """Make sure ``size`` more bytes of Lua memory fit under the cap before Rivet
        builds a value of that size in Lua (:func:`rivet.lua.memory.lua_size` measures
        Python data); otherwise the state is killed and ``ResourceLimitError`` says
        that ``what`` (by default the Rivet function running) did not fit."""
        used = self._room(size)
        if used is not None:
            raise ResourceLimitError(self._kill_for_memory(what, size, used))

    def _room(self, size: int) -> int | None:
        """None when ``size`` more bytes fit; otherwise the bytes in use. A full
        collection it needed is charged to the Lua CPU budget, not refunded."""
        memory = self._memory
        if memory.used() + size <= memory.limit:
            return None
        started = time.thread_time()
        used = memory.shortfall(size)
        self._callback_cpu -= time.thread_time() - started
        return used

    def _kill_for_memory(self, what: str | None, size: int, used: int) -> str:
        if not self._killed:
            self._killed = self._memory.exceeded(what or self._calling, size, used)
        return self._killed

    def _leave(self) -> str | None:
        """A Rivet call's results are in Lua, pushed with the cap lifted: put the cap
        back, or, if they took the state over it, kill it and answer why (the cap
        stays lifted until the Lua side has the message, see ``bootstrap.lua``)."""
        used = self._room(0)
        if used is not None:
            return self._kill_for_memory(None, 0, used)
        self._memory.set_lifted(False)
        return None

    # --- lifetime -----------------------------------------------------------------

    def close(self) -> None:
        """End the job's Lua: cut every bridge to Python, then free the Lua state.

        Call it on the thread that ran the job, once no :meth:`call` is running (the
        executor does, in ``finally``). Idempotent. Afterwards every Rivet function
        answers a Lua error "job has ended", the hook stops any Lua that still runs,
        and :meth:`call` raises. The state itself is freed (``lua_close``) as soon as
        the last Lua object Python holds goes — here, unless the caller still holds
        stage functions or tables of it; nothing of the pipeline runs then, since it
        cannot have finalizers and every bridge is cut. Whatever Lua still runs after
        this runs with the memory cap on.
        """
        if self._closed:
            return
        if self._owner not in (None, threading.get_ident()):
            raise RuntimeError("a Sandbox is closed by the thread that runs it")
        self._closed = True
        self._killed = self._killed or JOB_ENDED
        self._memory.detach()
        self._bridges.cut()
        self._env = self._wrap = self._bridge = self._compile = self._run_lua = None
        self._seal = self._strict = self._line_of = self._caller_line = None
        self._lua = None  # the LuaRuntime goes with its last reference: lua_close

    # --- values -------------------------------------------------------------------

    @property
    def env(self) -> Any:
        return self._open()._env

    def _open(self) -> Sandbox:
        if self._closed:
            raise RuntimeError("the sandbox is closed (its job has ended)")
        return self

    def table(
        self, items: Mapping[str, Any] | Iterable[Any] | None = None, what: str | None = None
    ) -> Any:
        """A Lua table from a Python mapping or sequence, converted recursively
        (measured against the memory cap first, see :meth:`to_lua`)."""
        if items is None:
            return self._open()._lua.table()
        return self.to_lua(items, what)

    def to_lua(self, value: Any, what: str | None = None) -> Any:
        """``value`` as Lua data: tables for mappings and sequences, strings, bytes
        (kept byte for byte) and scalars as they are. Refused with the memory-limit
        error naming ``what`` (see :meth:`reserve`) when it would not fit under the
        cap."""
        self.reserve(lua_size(value), what)
        return self._convert(value)

    def _convert(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float | str | bytes):
            return value
        if lua54.lua_type(value) is not None:
            return value
        if isinstance(value, Mapping):
            table = self._open()._lua.table()
            for key, item in value.items():
                table[key] = self._convert(item)
            return table
        if isinstance(value, list | tuple):
            table = self._open()._lua.table()
            for index, item in enumerate(value, start=1):
                table[index] = self._convert(item)
            return table
        raise TypeError(f"cannot hand {type(value).__name__} to Lua")

    def expose(self, fn: Callable[..., Any], name: str, *, raw: bool = False) -> Any:
        """A Lua function that calls ``fn``; ``LuaCallError`` becomes a Lua error at the
        caller's line, any other exception an internal error naming ``name``.

        With ``raw=True`` the Lua function returns ``(ok, value...)`` instead of
        raising, for trusted Lua glue that raises at the right level itself.

        ``fn`` runs only while this sandbox runs the job's Lua (inside :meth:`call`),
        on that thread, and not once the state is killed or closed: otherwise the
        call fails without running it. What it returns is measured against the
        memory cap before it is converted (see :meth:`reserve`)."""
        bridges = self._open()._bridges
        index = len(bridges.functions)
        bridges.functions.append((fn, name, positional_arity(fn)))

        def call(*args: Any) -> tuple[Any, ...]:
            sandbox = bridges.sandbox
            if sandbox is None:
                return (0, True, False, None)  # Lua says "<name>: job has ended"
            return sandbox._answer(index, args)

        return self.invoke(self._bridge if raw else self._wrap, call, name)

    def _answer(self, index: int, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """One callback, for the bridge in bootstrap.lua: ``(depth, left, ok,
        results...)``, depth being how many callbacks are still running. The memory
        cap is lifted while it runs; ``left`` says it is already back on, which it can
        be when nothing in the answer allocates as lupa pushes it (see bootstrap.lua)."""
        memory = self._memory
        if not memory.lifted:
            memory.set_lifted(True)
        answer = self._invoke(index, args)
        if pushes_freely(answer) and memory.cap_if_under():
            return (self._depth, True, *answer)
        return (self._depth, False, *answer)

    def _invoke(self, index: int, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """Run the callback: ``(ok, results...)``, results converted for Lua."""
        fn, name, arity = self._bridges.functions[index]
        self._last_refund = 0.0
        if threading.get_ident() != self._owner:
            # No call() is running on this thread: a finalizer, another thread…
            return (
                False,
                f"{name}: not available here: Rivet functions "
                "only run while the job's Lua runs, on its thread",
            )
        started = time.thread_time()
        deadline = self._deadline  # set: this thread owns the open budget window
        if (
            self._killed is not None
            or self._cancelled is not None
            or deadline is None
            or started - self._callback_cpu > deadline
        ):
            return (False, self._stop_reason(started) or f"{name}: no Lua call is running")
        if arity is not None:
            # Missing arguments are nil, as in Lua; extra ones are refused, not dropped.
            problem = extra_argument_problem(name, arity, args)
            if problem is not None:
                return (False, problem)
            args = args[:arity] + (None,) * (arity - len(args))
        depth = self._depth
        self._depth = depth + 1
        calling, self._calling = self._calling, name
        answer: tuple[Any, ...]
        try:
            result = fn(*args)
            results = result if isinstance(result, tuple) else (result,)
            size = 0
            for value in results:
                if value is not None:
                    size += lua_size(value)
            if size:
                self.reserve(size)
            answer = (True, *[self._convert(v) for v in results])
        except LuaCallError as exc:
            answer = (False, str(exc))
        except (LuaError, ResourceLimitError) as exc:
            answer = (False, str(exc))
        except lua54.LuaError as exc:  # Lua that Rivet called (see invoke) failed
            answer = (False, self._killed or f"{name}: {clean_message(str(exc))}")
        except UnicodeDecodeError:  # a binary string inside a table argument
            answer = (False, f"{name}: text is not valid UTF-8")
        except Exception as exc:  # a bug in Rivet, not in the pipeline
            answer = (False, f"{name}: internal error: {type(exc).__name__}: {exc}")
        finally:
            self._depth = depth
            self._calling = calling
            self._last_refund = time.thread_time() - started
            self._callback_cpu += self._last_refund
        return answer

    def module(self, name: str, functions: Mapping[str, Callable[..., Any]]) -> Any:
        """Install a global table ``name`` made of exposed Python functions."""
        table = self.table()
        for fname, fn in functions.items():
            table[fname] = self.expose(fn, f"{name}.{fname}")
        self.env[name] = table
        return table

    def line_of(self, fn: Any) -> int | None:
        line = self.invoke(self._open()._line_of, fn)
        return int(line) if line is not None and line > 0 else None

    @property
    def caller_line_function(self) -> Any:
        """The privileged Lua function ``caller_line(level)``, for trusted glue only."""
        return self._open()._caller_line

    # --- running Lua ------------------------------------------------------------------

    def invoke(self, fn: Any, *args: Any) -> Any:
        """Call the Lua function ``fn`` from Python — the only way Rivet's Python runs
        Lua: the memory cap is on while it runs and lifted again before its results
        (or its error, as ``lupa.LuaError``) come back. Pipeline code must be called
        inside a :meth:`budget` window (:meth:`call` opens one)."""
        run = self._open()._run_lua
        try:
            return run(fn, *args)
        finally:
            self._memory.set_lifted(True)

    def eval_lua(self, code: str, *args: Any, chunkname: str = "=rivet") -> Any:
        """Run trusted Rivet Lua code (module glue) in the sandbox environment with
        ``args`` as its ``...``; returns what the chunk returns. The chunk is sealed
        once it has run: its functions may no longer look up globals (see module
        docstring), so glue takes what it uses as locals at the top."""
        fn, err = self.invoke(self._open()._compile, code, chunkname)
        if fn is False:
            raise RuntimeError(f"internal Lua glue failed to compile: {err}")
        try:
            return self.invoke(fn, *args)
        finally:
            self.invoke(self._seal, fn)

    def refuse_extra_arguments(self, module: str) -> None:
        """Make the fixed-arity Lua functions of the module table ``module`` (a global
        of the sandbox) refuse arguments they do not take (see bootstrap.lua)."""
        self.invoke(self._open()._strict, module, self._env[module])

    # --- running pipeline code -------------------------------------------------------

    def load(self, source: str, filename: str) -> Any:
        """Compile a pipeline chunk; syntax errors become ``LuaError`` with file:line."""
        fn, err = self.invoke(self._open()._compile, source, f"={filename}")
        if fn is False:
            raise LuaError(clean_message(str(err)))
        return fn

    @contextmanager
    def budget(self, seconds: float, label: str) -> Iterator[None]:
        """A window in which this thread runs the job's Lua under one CPU budget;
        :meth:`call` opens one itself unless one is open. Lua errors inside become
        ``LuaError`` / ``ResourceLimitError`` with clean messages."""
        me = threading.get_ident()
        if self._closed:
            raise LuaError(f"{label}: the Lua state is closed ({JOB_ENDED})")
        if self._owner not in (None, me):
            raise RuntimeError("a Sandbox is used by one thread at a time")
        outer = self._deadline is None
        if outer:
            self._owner = me
            self._budget_label = label
            self._budget_seconds = seconds
            self._callback_cpu = 0.0
            self._deadline = time.thread_time() + seconds
        try:
            yield
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

    def call(self, fn: Any, *args: Any, budget: float, label: str) -> Any:
        """Call Lua ``fn`` under a CPU budget (see :meth:`budget`)."""
        with self.budget(budget, label):
            return self.invoke(fn, *args)
