---@meta input
-- Rivet: the `input` module: the job's launch inputs, typed as declared
-- (string, number or boolean). Usable inside stage scripts and conditions.

---@class rivet.input
input = {}

---The input's typed value, else `default`, else nil.
---@param name string
---@param default? string|number|boolean
---@return string|number|boolean|nil
function input.get(name, default) end

---The input's value, or an error naming the input when it has none.
---@param name string
---@return string|number|boolean
function input.require(name) end

---Whether the input has a value.
---@param name string
---@return boolean
function input.has(name) end

---Every input that has a value: name -> value.
---@return table<string, string|number|boolean>
function input.all() end

---The names of the inputs that have a value.
---@return string[]
function input.keys() end
