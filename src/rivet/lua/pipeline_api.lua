-- The definition API (pipeline.define / builder / input / stage / tag), run in the
-- sandbox environment. It only records what the file declares; validation happens
-- in Python (definition.py) so that every problem is reported at once.
local record_define, check_input, check_stage, caller_line = ...
local setmetatable, type, error, tostring, rawget = setmetatable, type, error, tostring, rawget

-- definition table -> index of its record on the Python side
local defined = setmetatable({}, { __mode = "k" })

local function define(spec, line, input_order, lines)
  local index = record_define(spec, line, input_order, lines)
  if type(spec) == "table" then
    defined[spec] = index
  end
  return spec
end

local pipeline = {}
local Builder = {}
Builder.__index = Builder

local BUILDER = {}  -- marker key: a table carrying it is a builder

local function method(name, fn)
  Builder[name] = function(self, ...)
    if type(self) ~= "table" or rawget(self, BUILDER) == nil then
      error("builder:" .. name .. "(...) must be called with ':' (not '.')", 2)
    end
    fn(self, caller_line(2), ...)
    return self
  end
end

function pipeline.builder()
  local b = { [BUILDER] = true, spec = { inputs = {}, stages = {}, runner = {}, plugins = {} },
              input_order = {}, lines = { inputs = {}, stages = {} }, line = caller_line(2) }
  return setmetatable(b, Builder)
end

method("name", function(self, _, value) self.spec.name = value end)
method("description", function(self, _, value) self.spec.description = value end)
method("input", function(self, line, name, def)
  if self.spec.inputs[name] ~= nil then
    error("builder:input: input '" .. tostring(name) .. "' is declared twice", 3)
  end
  self.input_order[#self.input_order + 1] = name
  self.lines.inputs[#self.input_order] = line
  self.spec.inputs[name] = def == nil and {} or def
end)
method("stage", function(self, line, def)
  self.spec.stages[#self.spec.stages + 1] = def
  self.lines.stages[#self.spec.stages] = line
end)
method("tag", function(self, _, key, value)
  if type(key) == "table" and value == nil then
    self.spec.runner[#self.spec.runner + 1] = key
  else
    self.spec.runner[#self.spec.runner + 1] = { key = key, value = value }
  end
end)
method("plugin", function(self, _, name) self.spec.plugins[#self.spec.plugins + 1] = name end)

function Builder:build()
  if type(self) ~= "table" or rawget(self, BUILDER) == nil then
    error("builder:build() must be called with ':' (not '.')", 2)
  end
  return define(self.spec, self.line, self.input_order, self.lines)
end

function pipeline.define(spec)
  if type(spec) ~= "table" then
    error("pipeline.define expects a table { name = ..., stages = ... }, got " .. type(spec), 2)
  end
  return define(spec, caller_line(2))
end

-- check_input / check_stage return (ok, message) so the error lands on the caller.
function pipeline.input(def)
  local ok, err = check_input(def)
  if not ok then error(err, 2) end
  return def
end

function pipeline.stage(def)
  local ok, err = check_stage(def)
  if not ok then error(err, 2) end
  return def
end

function pipeline.tag(key, value)
  return { key = key, value = value }
end

-- What the file returned -> the index of its definition record, or nil. Read raw:
-- the file may have given the builder a metatable of its own.
local function resolve(value)
  if type(value) ~= "table" then
    return nil
  end
  if rawget(value, BUILDER) ~= nil then
    local spec = rawget(value, "spec")
    if defined[spec] == nil then
      define(spec, rawget(value, "line"), rawget(value, "input_order"), rawget(value, "lines"))
    end
    return defined[spec]
  end
  return defined[value]
end

return pipeline, resolve
