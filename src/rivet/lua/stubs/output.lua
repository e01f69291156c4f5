---@meta output
-- Rivet: the `output` module: values shared between the stages of one job and
-- reported with the job's result. Values are strings, numbers or booleans; at most
-- 1,000 outputs, names up to 256 characters, 1 MiB of names and values in all.

---@class rivet.output
output = {}

---Set an output value. Errors past the caps above, for a name or string holding a
---NUL, and for a number that is not finite or outside ±2^53.
---@param name string
---@param value string|number|boolean
function output.set(name, value) end

---An output's value, else `default`, else nil.
---@param name string
---@param default? string|number|boolean
---@return string|number|boolean|nil
function output.get(name, default) end

---An output's value, or an error naming it when it is not set.
---@param name string
---@return string|number|boolean
function output.require(name) end

---Whether the output is set.
---@param name string
---@return boolean
function output.has(name) end

---Every output: name -> value.
---@return table<string, string|number|boolean>
function output.all() end

---The names of the outputs that are set.
---@return string[]
function output.keys() end

---Remove one output.
---@param name string
function output.clear(name) end

---Remove every output.
function output.clear_all() end
