-- Example plugin (docs/plugins.md): `plugins = { "greet" }`, then greet.hello("you").
local M = {}

function M.hello(name)
  if type(name) ~= "string" then
    error("greet.hello: expected a name (a string)", 2)
  end
  log.info("greet: said hello to " .. name)
  return "hello, " .. name
end

return M
