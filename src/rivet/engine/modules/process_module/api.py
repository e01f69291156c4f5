"""``process.run`` and ``process.parallel``.

``process.run`` blocks the Lua thread while the command runs in the container on
top of the stack; its output is logged line by line from reader threads as it
arrives. ``process.parallel`` runs ``fn(item)`` in coroutines: a ``process.run``
inside one starts the command on a worker thread and yields, and the scheduler
(Lua, in ``_GLUE``) resumes whichever coroutine's command finishes first; at most
MAX_PARALLEL commands run at once, whatever ``max`` says.

Captured output is held under one :class:`CaptureBudget` per job
(``process.max_capture_bytes``): what all its commands captured and Lua has not
received yet. A command whose capture passes it is stopped and its call fails
naming the stream, the limit and the key; the room is given back as soon as the
text is in Lua (or the call failed).
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from rivet.engine.backends.base import (
    SECRETS_MOUNT,
    CaptureBudget,
    ContainerOptions,
    ExecRequest,
    ExecResult,
)
from rivet.engine.context import JobContext
from rivet.engine.events import Stream
from rivet.engine.limits import MAX_ARG_BYTES, MAX_COMMAND_BYTES, MAX_PARALLEL
from rivet.engine.modules.process_module.options import (
    DEPRECATED,
    RunOptions,
    base_env,
    parse_options,
)
from rivet.engine.policy.fs_policy import format_size
from rivet.engine.policy.violation import PolicyViolation
from rivet.errors import ContainerError
from rivet.lua.lua_values import array_values
from rivet.lua.sandbox import LuaCallError, Sandbox

__all__ = ["DEFAULT_PARALLEL", "install"]

DEFAULT_PARALLEL = 8

# Like all of Rivet's glue, it takes every standard function it uses as a local here,
# when the job is set up and before any pipeline code runs: the pipeline may replace
# the globals (table.remove, ipairs…) later, and must not change how this runs.
_GLUE = """
local run_sync, start, wait_any = ...
local co_create, co_resume, co_status, co_yield, co_running =
  coroutine.create, coroutine.resume, coroutine.status, coroutine.yield, coroutine.running
local type, error, next, tostring, concat = type, error, next, tostring, table.concat
local setmetatable, math_floor, rawget, rawlen = setmetatable, math.floor, rawget, rawlen
local remove, sort = table.remove, table.sort

local ours = setmetatable({}, { __mode = "k" })  -- coroutines made by process.parallel
local PENDING = {}

local process = {}

function process.run(opts)
  local co = co_running()
  if ours[co] then
    local started, handle = start(opts)
    if not started then error(handle, 2) end
    local ok, result = co_yield(PENDING, handle)
    if not ok then error(result, 2) end
    return result
  end
  return run_sync(opts)
end

function process.parallel(items, fn, opts)
  if type(items) ~= "table" then
    error("process.parallel: items must be a list, got " .. type(items), 2)
  end
  if type(fn) ~= "function" then
    error("process.parallel: fn must be a function, got " .. type(fn), 2)
  end
  local max = DEFAULT_MAX
  if opts ~= nil then
    if type(opts) ~= "table" then
      error("process.parallel: options must be a table like { max = 4 }", 2)
    end
    -- Read raw, like every table handed to Rivet: no __pairs, __index or __len.
    for k in next, opts do
      if k ~= "max" then
        local shown = (type(k) == "string" or type(k) == "number") and tostring(k) or type(k)
        error("process.parallel: unknown option '" .. shown .. "'", 2)
      end
    end
    local given = rawget(opts, "max")
    if given ~= nil then
      if type(given) ~= "number" or given < 1 or math_floor(given) ~= given then
        error("process.parallel: max must be a positive integer", 2)
      end
      max = given
    end
  end
  if max > MAX_PARALLEL then max = MAX_PARALLEL end

  local n = rawlen(items)
  local results, failures = {}, {}
  local waiting = {}     -- handle -> { index, coroutine }
  local handles = {}     -- handles in flight, for wait_any
  local in_flight, next_index = 0, 1

  local function step(index, co, ...)
    local ok, a, b = co_resume(co, ...)
    if not ok then
      failures[#failures + 1] = { index = index, message = tostring(a) }
    elseif co_status(co) == "dead" then
      results[index] = a
    elseif a == PENDING then
      waiting[b] = { index, co }
      handles[#handles + 1] = b
      in_flight = in_flight + 1
    else
      failures[#failures + 1] = { index = index,
        message = "fn yielded outside process.run (coroutine.yield is not supported here)" }
    end
  end

  while next_index <= n or in_flight > 0 do
    while next_index <= n and in_flight < max do
      local index = next_index
      next_index = next_index + 1
      local co = co_create(fn)
      ours[co] = true
      step(index, co, rawget(items, index))
    end
    if in_flight > 0 then
      local handle, ok, result = wait_any(handles)  -- raises only on a kill
      local entry = waiting[handle]
      waiting[handle] = nil
      for i = #handles, 1, -1 do
        if handles[i] == handle then remove(handles, i) end
      end
      in_flight = in_flight - 1
      step(entry[1], entry[2], ok, result)
    end
  end

  if #failures > 0 then
    sort(failures, function(x, y) return x.index < y.index end)
    local parts = {}
    for i = 1, #failures do
      local f = failures[i]
      parts[i] = "[" .. f.index .. "] " .. f.message
    end
    error("process.parallel: " .. #failures .. " of " .. n .. " calls failed: "
      .. concat(parts, "; "), 2)
  end
  return results
end

return process
"""


@dataclass(frozen=True)
class _Prepared:
    """Everything taken from the Lua thread's state when the call was made."""

    options: RunOptions
    image: str
    stage: str | None
    container: ContainerOptions
    secret_env: dict[str, str] = field(default_factory=dict, repr=False)


class _Runner:
    def __init__(self, sandbox: Sandbox, ctx: JobContext) -> None:
        self.sandbox = sandbox
        self.ctx = ctx
        self.capture = CaptureBudget(ctx.policy.process.capture_limit(sandbox.limits.memory_bytes))
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[int, Future[ExecResult | str]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._warned: set[str] = set()  # deprecated options already warned about

    # Runs on the Lua thread: parse everything there so option errors point at the
    # caller's line, then execute (here or on a worker).
    def prepare(self, opts: Any) -> _Prepared:
        ctx = self.ctx
        ctx.require_run_phase("process.run")
        if ctx.cancel.cancelled:
            raise LuaCallError(f"process.run: {ctx.cancel.reason}")
        options = parse_options(opts, ctx.workspace)
        for name in options.deprecated:
            if name not in self._warned:
                self._warned.add(name)
                ctx.log("warning", DEPRECATED[name])
        # Policy checks run here, on the Lua thread, so a refusal points at the
        # caller's line and no container is started for a command that is refused.
        try:
            ctx.policy.process.check_binary(options.argv[0])
            options.timeout = ctx.policy.process.timeout_for(options.timeout)
            image = ctx.policy.container.resolve_image(ctx.current_image)
            container = ctx.container_options(ctx.stage_def)
        except PolicyViolation as exc:
            raise LuaCallError(f"process.run: {exc}") from None
        # Values never pass through Lua: looked up here (refusing ungranted ones at
        # the caller's line) and registered for redaction by the lookup.
        secret_env = {
            var: ctx.secrets.get(name, f"process.run: secrets.{var}")
            for var, name in options.secret_env.items()
        }
        _check_command_size(options, secret_env)
        for file_name, name in options.secret_files.items():
            ctx.secrets.write_file(file_name, name, f"process.run: secret_files[{file_name!r}]")
        if options.secret_files:
            options.env.setdefault("RIVET_SECRETS_DIR", SECRETS_MOUNT)
        return _Prepared(options, image, ctx.stage, container, secret_env)

    def execute(self, prepared: _Prepared) -> ExecResult:
        """Run the command; the result holds room in the capture budget that the
        caller gives back (:meth:`handed_over`) once the text is in Lua."""
        ctx = self.ctx
        options, image, stage = prepared.options, prepared.image, prepared.stage
        try:
            container = ctx.container_for(image, prepared.container)
        except (ContainerError, PolicyViolation) as exc:
            raise LuaCallError(f"process.run: {exc}") from None
        # Masked before it is quoted: quoting cuts a secret with a quote, a space or a
        # backslash into pieces that no longer match (the message is redacted again).
        display = ctx.redactor.shell_join(options.argv)
        ctx.log("debug", f"$ {display}", stage)

        def line_logger(level: Any, pipe: Stream) -> Any:
            # One stream redactor per pipe: it sees consecutive lines, so a secret
            # split over two lines of output is masked on both.
            stream = ctx.redactor.stream()
            return lambda line: ctx.log(level, stream.line(line), stage, pipe)

        request = ExecRequest(
            argv=options.argv,
            env={**base_env(ctx.job_id, stage), **options.env},
            cwd=options.cwd,
            timeout=options.timeout,
            on_stdout=line_logger(options.stdout_level, "stdout"),
            on_stderr=line_logger(options.stderr_level, "stderr"),
            capture_stdout=options.capture_stdout,
            capture_stderr=options.capture_stderr,
            capture_budget=self.capture,
            secret_env=prepared.secret_env,
            on_notice=lambda note: ctx.log("warning", note, stage),
        )
        with ctx.trace.process(options.argv[0], image, stage) as span:
            try:
                result = ctx.backend.exec(container, request)
            except ContainerError as exc:
                raise LuaCallError(f"process.run: {exc}") from None
            if span is not None:
                span.set_attribute("process.exit_code", result.exit_code)
        try:
            self._check_result(options, display, result, stage, image)
        except BaseException:
            self.capture.give_back(result.captured_bytes)
            raise
        return result

    def _check_result(
        self, options: RunOptions, display: str, result: ExecResult, stage: str | None, image: str
    ) -> None:
        ctx = self.ctx
        if result.capture_overflow is not None:
            limit = self.capture.limit or 0
            raise LuaCallError(
                f"process.run: the captured {result.capture_overflow} of '{display}' "
                f"passed {format_size(limit)}, policy process.max_capture_bytes (captured "
                "output this job holds at once); the command was stopped. Let the stream "
                "be logged, or write it to a file in the workspace and read what you need"
            )
        if result.timed_out:
            assert options.timeout is not None
            ctx.log("warning", f"'{display}' timed out after {options.timeout:g} s", stage)
        if ctx.cancel.cancelled:
            raise LuaCallError(f"process.run: {ctx.cancel.reason}")
        if result.start_failure is not None:
            program = ctx.redactor.redact(options.argv[0])
            why = (
                f"command '{program}' {result.start_failure} in image {image} "
                f"(exit code {result.exit_code})"
            )
            if options.check:
                raise LuaCallError(f"process.run: {why}")
            ctx.log("warning", why, stage)
            return
        if options.check and result.exit_code != 0:
            raise LuaCallError(
                f"process.run: '{display}' exited with code {result.exit_code}"
                + (" (timed out)" if result.timed_out else "")
            )

    def handed_over(self, result: ExecResult) -> Any:
        """The result as a Lua table; its captured text is in Lua now, so its room in
        the capture budget is given back."""
        try:
            return self.to_table(result)
        finally:
            self.capture.give_back(result.captured_bytes)

    def to_table(self, result: ExecResult) -> Any:
        return self.sandbox.table(
            {
                "exit_code": result.exit_code,
                "stdout": result.stdout,
                "stderr": result.stderr,
                "timed_out": result.timed_out,
            }
        )

    def run_sync(self, opts: Any) -> Any:
        return self.handed_over(self.execute(self.prepare(opts)))

    def start(self, opts: Any) -> int:
        prepared = self.prepare(opts)
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=MAX_PARALLEL, thread_name_prefix="rivet-proc"
                )
            handle = next(self._ids)
            self._futures[handle] = self._pool.submit(self._execute_caught, prepared)
        return handle

    def _execute_caught(self, prepared: _Prepared) -> ExecResult | str:
        try:
            return self.execute(prepared)
        except LuaCallError as exc:
            return str(exc)

    def wait_any(self, handles: Any) -> tuple[int, bool, Any]:
        wanted = [int(h) for h in array_values(handles)]
        with self._lock:
            futures = {self._futures[h]: h for h in wanted}
        done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
        future = next(iter(done))
        handle = futures[future]
        with self._lock:
            del self._futures[handle]
        outcome = future.result()
        if isinstance(outcome, str):
            return handle, False, outcome
        return handle, True, self.handed_over(outcome)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def install(sandbox: Sandbox, ctx: JobContext) -> None:
    runner = _Runner(sandbox, ctx)
    ctx.closers.append(runner.close)
    glue = _GLUE.replace("DEFAULT_MAX", str(DEFAULT_PARALLEL))
    sandbox.env["process"] = sandbox.eval_lua(
        glue.replace("MAX_PARALLEL", str(MAX_PARALLEL)),
        sandbox.expose(runner.run_sync, "process.run"),
        sandbox.expose(runner.start, "process.run", raw=True),
        sandbox.expose(runner.wait_any, "process.parallel"),
    )


def _check_command_size(options: RunOptions, secret_env: dict[str, str]) -> None:
    """Refuse, at the caller's line, a command the kernel would refuse (E2BIG): one
    string over MAX_ARG_BYTES, or argv and environment over MAX_COMMAND_BYTES."""
    total = 0
    strings = [(f"argument {i}", arg) for i, arg in enumerate(options.argv, start=1)]
    strings += [(f"env.{name}", f"{name}={value}") for name, value in options.env.items()]
    strings += [(f"secrets.{name}", f"{name}={value}") for name, value in secret_env.items()]
    for what, text in strings:
        size = len(text.encode("utf-8", "surrogateescape")) + 1
        if size > MAX_ARG_BYTES + 1:
            raise LuaCallError(
                f"process.run: {what} is {size - 1} bytes, over the system's limit of "
                f"{MAX_ARG_BYTES} bytes for one argument or variable; pass big data "
                "through a file in the workspace"
            )
        total += size
    if total > MAX_COMMAND_BYTES:
        raise LuaCallError(
            f"process.run: the arguments and environment take {total} bytes, over the "
            f"limit of {format_size(MAX_COMMAND_BYTES)}; pass big data through a file "
            "in the workspace"
        )
