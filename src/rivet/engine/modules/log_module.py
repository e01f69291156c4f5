"""``log.debug/info/warning/warn/error`` and ``print``."""

from __future__ import annotations

from collections.abc import Callable

from rivet.engine.context import JobContext
from rivet.engine.events import LEVEL_NAMES, Level
from rivet.lua.sandbox import Sandbox

__all__ = ["install"]


# Messages go through Lua's own tostring so numbers and booleans print as Lua prints
# them; the calls are tail calls so errors point at the pipeline's line.
_GLUE = """
local emit = ...
local tostring, select, concat, ipairs = tostring, select, table.concat, ipairs
local utf8_len, sub = utf8.len, string.sub

-- Log lines are text: invalid UTF-8 bytes become U+FFFD instead of failing.
local function valid(s)
  if utf8_len(s) then return s end
  local out, pos = {}, 1
  while true do
    local ok, bad = utf8_len(s, pos)
    if ok then
      out[#out + 1] = sub(s, pos)
      return concat(out)
    end
    out[#out + 1] = sub(s, pos, bad - 1)
    out[#out + 1] = "\\u{FFFD}"
    pos = bad + 1
  end
end

local function text(sep, ...)
  local n = select("#", ...)
  if n <= 1 then return valid(tostring((...))) end
  local parts = {}
  for i = 1, n do parts[i] = tostring((select(i, ...))) end
  return valid(concat(parts, sep))
end
local log = {}
for _, name in ipairs({ "debug", "info", "warning", "warn", "error" }) do
  local raw = emit[name]
  log[name] = function(...) return raw(text(" ", ...)) end
end
local raw_print = emit.info
local function print(...) return raw_print(text("\\t", ...)) end
return log, print
"""


def install(sandbox: Sandbox, ctx: JobContext) -> None:
    def emitter(name: str, level: Level) -> Callable[[str], None]:
        def emit(message: str) -> None:
            ctx.require_run_phase(f"log.{name}")
            ctx.log(level, message)

        return emit

    raw = sandbox.table(
        {
            name: sandbox.expose(emitter(name, level), f"log.{name}")
            for name, level in LEVEL_NAMES.items()
        }
    )
    log_table, print_fn = sandbox.eval_lua(_GLUE, raw)
    sandbox.env["log"] = log_table
    sandbox.env["print"] = print_fn
