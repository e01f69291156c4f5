---@meta json
-- Rivet: the `json` module: encode Lua values as JSON text and decode JSON text.
-- A table with keys exactly 1..n is an array, one with string keys an object, an
-- empty table `[]` unless marked with `json.object`. JSON null is `json.null`
-- (a unique constant, so arrays keep their length). Integers stay integers and
-- floats stay floats. NaN, infinity, cycles, sparse arrays, mixed or non-string
-- keys and nesting deeper than 200 levels are errors naming the place (`$.a[2]`).
-- Sizes are capped: encoded text up to 1/4 of the Lua memory limit (64 MiB), decoded
-- text up to 1/16 (16 MiB), and at most 1,000,000 items in one value.

---The JSON null value: a unique, read-only constant.
---@class rivet.json.null

---@class JsonEncodeOptions
---@field indent? integer Pretty-print with this many spaces per level (0 to 16); compact by default.

---@class rivet.json
---@field null rivet.json.null The JSON null value (decoded nulls are this value too).
json = {}

---JSON text for `value`: nil and `json.null` give null; object keys are sorted.
---@param value any
---@param opts? JsonEncodeOptions
---@return string
function json.encode(value, opts) end

---The Lua value for a JSON text; null is `json.null`; decoded arrays and objects
---remember their kind, so encoding them again gives the same JSON.
---Errors give the line and column.
---@param text string
---@return any
function json.decode(text) end

---Mark `t` (or a new empty table) to be encoded as a JSON array; returns it.
---@param t? table
---@return table
function json.array(t) end

---Mark `t` (or a new empty table) to be encoded as a JSON object, integer keys
---written as strings; returns it.
---@param t? table
---@return table
function json.object(t) end
