-- Trusted glue, run when the job's modules are installed (before any pipeline code):
-- it takes the sandbox's safe globals and the core module tables as they are then,
-- so a pipeline that later replaces `fs` or `string` changes nothing a plugin sees.
-- make_env(modules, native) builds one plugin's private environment: the safe
-- standard library, the core modules its manifest names, its native helpers
-- (built-ins only) and nothing else -- no pipeline globals, no other plugin.
local globals_list, modules_list = ...
local pairs_, type_, load_, error_ = pairs, type, load, error
local snapshot = {}
for i = 1, #globals_list do
  local name = globals_list[i]
  snapshot[name] = _G[name]
end
local core = {}
for i = 1, #modules_list do
  local name = modules_list[i]
  core[name] = _G[name]
end

local function make_env(wanted, native)
  local env = {}
  for name, value in pairs_(snapshot) do
    env[name] = value
  end
  for i = 1, #wanted do
    env[wanted[i]] = core[wanted[i]]
  end
  if native ~= nil then
    env.native = native
  end
  env._G = env
  return env
end

local function compile(source, chunkname, wanted, native)
  local fn, err = load_(source, chunkname, "t", make_env(wanted, native))
  if not fn then
    error_(err, 0)
  end
  return fn
end

return compile
