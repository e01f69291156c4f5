-- Runs once per Lua state, with the full standard library, before any pipeline code.
-- It builds the sandbox environment (docs/lua-reference.md, '3. The sandbox') and
-- returns the privileged helpers the Python side needs; none of them is reachable
-- from the sandbox.
local check_budget, is_killed, revoke_refund = ...

local debug_sethook, debug_getinfo = debug.sethook, debug.getinfo
local raw_pcall, raw_xpcall, raw_error, raw_load = pcall, xpcall, error, load
local co_create, co_resume, co_close = coroutine.create, coroutine.resume, coroutine.close
local pack, unpack, type = table.pack, table.unpack, type
local raw_setmetatable, rawget_ = setmetatable, rawget
local main_thread = coroutine.running()

-- string.dump would let code produce binary chunks; the string metatable's
-- __index is this very table, so removing it here removes it everywhere.
string.dump = nil

local MEMORY_ERROR = "not enough memory"

-- Once a limit is hit the state is "killed": every catch point re-raises, so
-- pcall/xpcall/coroutines cannot swallow the kill and keep running.
local function rethrow_if_killed(ok, ...)
  if not ok then
    local err = ...
    if err == MEMORY_ERROR then
      is_killed("memory")
    end
  end
  local reason = is_killed()
  if reason then
    raw_error(reason, 0)
  end
  return ok, ...
end

local function safe_pcall(f, ...)
  return rethrow_if_killed(raw_pcall(f, ...))
end

local function safe_xpcall(f, handler, ...)
  return rethrow_if_killed(raw_xpcall(f, handler, ...))
end

local env = {}

-- debug.sethook keeps the Lua hook function per coroutine, so every coroutine the
-- pipeline creates gets the budget hook installed explicitly.
--
-- The hook has two jobs. Every `count` instructions it checks the budget. And while
-- Python runs a Rivet function (a "bridge" call, below) it also counts call events:
-- any Lua that runs *inside* that Python call (a metamethod, say) starts with a call,
-- so the bridge sees it and has the call's CPU time charged to the budget instead of
-- refunded as Python time (see Sandbox._invoke).
local hook_fn, hook_count = nil, 0
local calls = 0

local function set_hook(count)
  hook_count = count
  hook_fn = function(event)
    if event ~= "count" then
      calls = calls + 1
      return
    end
    local reason = check_budget()
    if reason then
      raw_error(reason, 0)
    end
  end
  debug_sethook(hook_fn, "", count)
end

local function hooked_create(f)
  local co = co_create(f)
  if hook_fn then
    debug_sethook(co, hook_fn, "", hook_count)
  end
  return co
end

local safe_coroutine = {}
for k, v in pairs(coroutine) do
  safe_coroutine[k] = v
end
safe_coroutine.create = hooked_create
safe_coroutine.resume = function(co, ...)
  return rethrow_if_killed(co_resume(co, ...))
end
safe_coroutine.close = function(co)
  return rethrow_if_killed(co_close(co))
end
safe_coroutine.wrap = function(f)
  local co = hooked_create(f)
  return function(...)
    local r = pack(rethrow_if_killed(co_resume(co, ...)))
    if not r[1] then
      raw_error(r[2], 0)
    end
    return unpack(r, 2, r.n)
  end
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do
    c[k] = v
  end
  return c
end

local safe_load = function(chunk, chunkname, mode, chunk_env)
  if mode ~= nil and mode ~= "t" then
    return nil, "load: only text chunks are allowed (mode 't')"
  end
  if chunk_env == nil then
    chunk_env = env
  end
  return raw_load(chunk, chunkname, "t", chunk_env)
end

-- Finalizers are refused: a __gc metamethod runs whenever the collector gets to its
-- object, which can be after the job has ended, on another job's thread, or while
-- the Lua state is being closed -- never under the job's budget or control. Lua marks
-- an object for finalization only if its metatable has a __gc field (of any value,
-- looked up raw) when setmetatable is called, so refusing exactly that case means no
-- object of the pipeline is ever finalized, even if __gc is added to the metatable
-- later. __close (to-be-closed variables) runs only when its scope is left or its
-- coroutine is closed, on the job's thread, so it stays allowed.
local function safe_setmetatable(t, mt)
  if type(mt) == "table" and rawget_(mt, "__gc") ~= nil then
    raw_error("setmetatable: __gc metamethods (finalizers) are not allowed in pipelines: "
      .. "they would run at an unknown time, possibly after the job has ended", 2)
  end
  return raw_setmetatable(t, mt)
end

local safe_collectgarbage = function(opt)
  if opt == "count" then
    return collectgarbage("count")
  end
  raw_error("collectgarbage: only 'count' is allowed in pipelines", 2)
end

for _, name in ipairs({
  "assert", "error", "getmetatable", "ipairs", "next", "pairs", "rawequal", "rawget",
  "rawlen", "rawset", "select", "tonumber", "tostring", "type",
}) do
  env[name] = _G[name]
end
env.setmetatable = safe_setmetatable
env.pcall = safe_pcall
env.xpcall = safe_xpcall
env.load = safe_load
env.collectgarbage = safe_collectgarbage
env.string = string
env.table = copy(table)
env.math = copy(math)
env.utf8 = copy(utf8)
env.coroutine = safe_coroutine
env.os = { time = os.time, clock = os.clock, date = os.date }
env._VERSION = _VERSION
env._G = env

-- Wrap a Python callable so that Lua only ever sees a Lua function: the Python
-- object stays an upvalue (unreachable without the debug library). The callable
-- returns (true, results...) or (false, message); failures are raised at the
-- caller's line so messages read "file.lua:12: ...".
local utf8_len, select_ = utf8.len, select

-- Strings cross into Python as UTF-8 text; a binary string would otherwise fail
-- inside the bridge with a Python exception instead of a Lua error.
local function check_text(name, ...)
  for i = 1, select_("#", ...) do
    local v = select_(i, ...)
    if type(v) == "string" and not utf8_len(v) then
      raw_error(name .. ": argument " .. i .. " is not valid UTF-8 text", 3)
    end
  end
end

-- A bridge call arms the call hook on this thread and the main one (lupa runs Lua
-- called from Python on either), calls Python, and disarms once the outermost bridge
-- call returns. The Python side answers (depth, ok, results...): depth is how many
-- bridge calls are still running after this one, so a call that ended with an error
-- thrown through it cannot leave the hook armed for good. Between arming and
-- `finish`, a call that ran no Lua sees exactly two call events: Python's own call
-- and the tail call of `finish`; any more means Lua ran inside it.
local co_running = coroutine.running

local function finish(before, on_main, depth, ...)
  if calls - before > 2 then
    revoke_refund()
  end
  if depth == 0 then
    debug_sethook(hook_fn, "", hook_count)
    if not on_main then
      debug_sethook(main_thread, hook_fn, "", hook_count)
    end
  end
  return ...
end

local function bridge(pyfn)
  return function(...)
    local _, on_main = co_running()
    if not on_main then
      debug_sethook(main_thread, hook_fn, "c", hook_count)
    end
    debug_sethook(hook_fn, "c", hook_count)
    local before = calls
    return finish(before, on_main, pyfn(...))
  end
end

local function wrap(pyfn, name)
  local call = bridge(pyfn)
  return function(...)
    check_text(name, ...)
    local r = pack(call(...))
    if not r[1] then
      raw_error(r[2], 2)
    end
    return unpack(r, 2, r.n)
  end
end

-- Always two results, so the Python side always receives a (function, error) pair.
local function compile(source, chunkname)
  local fn, err = raw_load(source, chunkname, "t", env)
  return fn or false, err or false
end

-- Where a function was defined, for messages about stages.
local function line_of(f)
  if type(f) ~= "function" then
    return nil
  end
  local info = debug_getinfo(f, "S")
  return info and info.linedefined
end

-- The line of the pipeline file that called into the API right now.
local function caller_line(level)
  local info = debug_getinfo(level + 1, "Sl")
  while info do
    if info.what ~= "C" and info.currentline and info.currentline > 0 then
      return info.currentline
    end
    level = level + 1
    info = debug_getinfo(level + 1, "Sl")
  end
  return nil
end

return {
  env = env,
  wrap = wrap,
  bridge = bridge,
  compile = compile,
  set_hook = set_hook,
  line_of = line_of,
  caller_line = caller_line,
}
