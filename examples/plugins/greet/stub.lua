---@meta greet
-- Example plugin `greet` (docs/plugins.md).

---@class greet
greet = {}

---Log a greeting and return it.
---@param name string
---@return string
function greet.hello(name) end
