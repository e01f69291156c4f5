-- Runs once per Lua state, with the full standard library, before any pipeline code.
-- It builds the sandbox environment (docs/lua-reference.md, '3. The sandbox') and
-- returns the privileged helpers the Python side needs; none of them is reachable
-- from the sandbox.
--
-- The memory cap holds for Lua code only (see rivet/lua/memory.py): while Python has
-- control it is lifted, because lupa allocates Lua memory from Python where a failed
-- allocation cannot be handled. `set_lifted(flag)` switches it; every change of hands
-- below (a Rivet call, a call from Python into Lua, a stop) does. A Python function
-- that stops Lua answers its reason with the cap lifted (the string is allocated on
-- its way in) and `stop` puts the cap back before raising it; `true` instead of a
-- reason means the job has ended (and nothing is lifted).
local check_budget, is_killed, revoke_refund, set_lifted, leave_python, JOB_ENDED = ...

-- Like all of Rivet's glue, it takes every global it uses here, at the top, and is
-- sealed once it has run (see `seal`): nothing below looks up a global later.
local debug_sethook, debug_getinfo, debug_setupvalue = debug.sethook, debug.getinfo, debug.setupvalue
local raw_pcall, raw_xpcall, raw_error, raw_load = pcall, xpcall, error, load
local coroutine_, string_, table_, math_, utf8_, os_ = coroutine, string, table, math, utf8, os
local debug_ = debug
local co_create, co_resume, co_close = coroutine.create, coroutine.resume, coroutine.close
local co_running = coroutine.running
local pack, unpack, type, tostring_ = table.pack, table.unpack, type, tostring
local raw_setmetatable, rawget_, pairs_, ipairs_ = setmetatable, rawget, pairs, ipairs
local raw_collectgarbage = collectgarbage
local utf8_len, select_ = utf8.len, select
local globals = _G
local main_thread = co_running()

-- string.dump would let code produce binary chunks; the string metatable's
-- __index is this very table, so removing it here removes it everywhere.
string_.dump = nil

-- lupa runs debug.traceback as the message handler of every call from Python. Rivet
-- keeps only the message (sandbox.clean_message), and building the traceback copies
-- the message -- by then the memory cap is lifted (see `invoke`), so a huge message
-- would be copied outside it. The handler hands the error on as it is.
debug_.traceback = function(message) return message end

local MEMORY_ERROR = "not enough memory"

local function stop(reason)
  if reason ~= true then
    set_lifted(false)
    raw_error(reason, 0)
  end
  raw_error(JOB_ENDED, 0)
end

-- Once a limit is hit the state is "killed": every catch point re-raises, so
-- pcall/xpcall/coroutines cannot swallow the kill and keep running.
local function rethrow_if_killed(ok, ...)
  local reason
  if not ok and ... == MEMORY_ERROR then
    reason = is_killed("memory")
  else
    reason = is_killed()
  end
  if reason then
    stop(reason)
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
      stop(reason)
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
for k, v in pairs_(coroutine_) do
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
  for k, v in pairs_(t) do
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
    return raw_collectgarbage("count")
  end
  raw_error("collectgarbage: only 'count' is allowed in pipelines", 2)
end

for _, name in ipairs_({
  "assert", "error", "getmetatable", "ipairs", "next", "pairs", "rawequal", "rawget",
  "rawlen", "rawset", "select", "tonumber", "tostring", "type",
}) do
  env[name] = globals[name]
end
env.setmetatable = safe_setmetatable
env.pcall = safe_pcall
env.xpcall = safe_xpcall
env.load = safe_load
env.collectgarbage = safe_collectgarbage
env.string = string_
env.table = copy(table_)
env.math = copy(math_)
env.utf8 = copy(utf8_)
env.coroutine = safe_coroutine
env.os = { time = os_.time, clock = os_.clock, date = os_.date }
env._VERSION = globals._VERSION
env._G = env

-- Wrap a Python callable so that Lua only ever sees a Lua function: the Python
-- object stays an upvalue (unreachable without the debug library). The callable
-- returns (true, results...) or (false, message); failures are raised at the
-- caller's line so messages read "file.lua:12: ...".

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
-- called from Python on either), calls Python in a protected call and disarms the
-- hook once the outermost bridge call returns: Python answers (depth, left, ok,
-- results...), depth being how many bridge calls are still running after this one,
-- so a call that failed cannot leave the hook armed for good. Between arming and
-- `finish`, a call that ran no Lua sees exactly three call events: the pcall,
-- Python's own call and the tail call of `finish`; any more means Lua ran inside it
-- (its CPU time then counts).
--
-- The memory cap is lifted for the call, since lupa converts the arguments and the
-- results with Python frames on the C stack. Arguments that are tables, functions or
-- coroutines make lupa allocate a reference for each, so the bridge lifts the cap
-- before the call; otherwise Python lifts it itself, first thing. Results that push
-- without allocating (nil, booleans, numbers, tables Python made) let Python put the
-- cap back before it returns (`left`); a string does not, and `leave_python` puts
-- the cap back once the string is in Lua -- and says when the results pushed the
-- state over its cap.
local REFERENCED = { table = true, ["function"] = true, thread = true, userdata = true }

local function needs_references(n, ...)
  if n == 1 then
    return REFERENCED[type((...))]
  end
  for i = 1, n do
    if REFERENCED[type((select_(i, ...)))] then
      return true
    end
  end
  return false
end

local function finish(name, before, on_main, called, depth, left, ok, ...)
  if not called then
    set_lifted(false)
    raw_error(depth, 0)  -- lupa's own failure (a Python exception), raised as it came
  end
  if calls - before > 3 then
    revoke_refund()
  end
  if depth == 0 then
    debug_sethook(hook_fn, "", hook_count)
    if not on_main then
      debug_sethook(main_thread, hook_fn, "", hook_count)
    end
  end
  if not left then
    local over = leave_python()
    if over then
      stop(over)
    end
  end
  if ok then
    return true, ...
  end
  return false, (...) or (name .. ": " .. JOB_ENDED)
end

local function bridge(pyfn, name)
  return function(...)
    local n = select_("#", ...)
    if n > 0 and needs_references(n, ...) then
      set_lifted(true)
    end
    local _, on_main = co_running()
    if not on_main then
      debug_sethook(main_thread, hook_fn, "c", hook_count)
    end
    debug_sethook(hook_fn, "c", hook_count)
    return finish(name, calls, on_main, raw_pcall(pyfn, ...))
  end
end

local function wrap(pyfn, name)
  local call = bridge(pyfn, name)
  return function(...)
    check_text(name, ...)
    local r = pack(call(...))
    if not r[1] then
      raw_error(r[2], 2)
    end
    return unpack(r, 2, r.n)
  end
end

-- Every call from Python into Lua goes through here: the cap is put on for the Lua
-- (the arguments were converted with it lifted) and lifted again before the results,
-- or the error, go back to Python. An error out of memory kills the state, as in
-- rethrow_if_killed; if even lifting fails for want of memory, the error that reaches
-- Python is Lua's preallocated "not enough memory" string, which needs no memory.
local function back_to_python(ok, ...)
  set_lifted(true)
  if ok then
    return ...
  end
  if ... == MEMORY_ERROR then
    is_killed("memory")
  end
  raw_error((...), 0)
end

local function invoke(fn, ...)
  set_lifted(false)
  return back_to_python(raw_pcall(fn, ...))
end

-- After a chunk of Rivet's glue has run (and taken what it needs as locals), its
-- global environment is swapped for one that refuses every access: glue never looks
-- up a global at run time, where the pipeline could have replaced it.
local sealed_mt = {}
local function refuse(_, key)
  raw_error("internal error in Rivet's Lua glue: it used the global '" .. tostring_(key)
    .. "' at run time (glue must take what it uses as locals when it is installed)", 2)
end
sealed_mt.__index = refuse
sealed_mt.__newindex = refuse
sealed_mt.__metatable = false
local SEALED = raw_setmetatable({}, sealed_mt)

local function seal(chunk)
  debug_setupvalue(chunk, 1, SEALED)
end

-- Rivet's functions refuse a table, string or function in a place they take no
-- argument. Lua drops extra arguments silently, so `process.run({"make"}, {check =
-- true})` would run without the check. An extra number or boolean is ignored, as in
-- Lua: functions such as string.gsub return one after their result, and
-- `output.set("v", text:gsub("%s+$", ""))` is ordinary Lua.
-- `strict` wraps the fixed-arity functions a module's Lua glue defines; functions
-- that go straight to Python are checked there, against the Python signature
-- (rivet/lua/bridges.py, `extra_argument_problem`, which words it the same way).
local REFUSED_EXTRA = { table = true, string = true, ["function"] = true }

local function extra_argument(name, nparams, count, ...)
  for i = nparams + 1, count do
    local kind = type(select_(i, ...))
    if REFUSED_EXTRA[kind] then
      local message = name .. " takes " .. nparams .. " argument" .. (nparams == 1 and "" or "s")
        .. ", but argument " .. i .. " is a " .. kind .. " (Lua would ignore it)"
      if kind == "table" then
        message = message .. "; options go inside the table the function takes"
      end
      return message
    end
  end
  return nil
end

local function strict(module_name, module)
  for key, f in pairs_(module) do
    if type(f) == "function" then
      local info = debug_getinfo(f, "Su")
      if info.what == "Lua" and not info.isvararg then
        local nparams, name = info.nparams, module_name .. "." .. tostring_(key)
        module[key] = function(...)
          local count = select_("#", ...)
          if count > nparams then
            local problem = extra_argument(name, nparams, count, ...)
            if problem then
              raw_error(problem, 2)
            end
          end
          return f(...)
        end
      end
    end
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

-- The line of the pipeline file that called into the API right now; nil when the
-- call came straight from Python (a tail call leaves no frame of the file).
local function caller_line(level)
  local info = debug_getinfo(level + 1, "Slf")
  while info and info.func ~= invoke do
    if info.what ~= "C" and info.currentline and info.currentline > 0 then
      return info.currentline
    end
    level = level + 1
    info = debug_getinfo(level + 1, "Slf")
  end
  return nil
end

return {
  env = env,
  wrap = wrap,
  bridge = bridge,
  invoke = invoke,
  seal = seal,
  strict = strict,
  compile = compile,
  set_hook = set_hook,
  line_of = line_of,
  caller_line = caller_line,
}
