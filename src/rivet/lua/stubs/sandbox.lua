---@meta sandbox
-- Rivet: what the pipeline sandbox keeps of the Lua 5.4 standard library.
--
-- Available: string (without string.dump), table, math, utf8, coroutine, os.time,
-- os.clock, os.date, pairs, ipairs, next, select, type, tostring, tonumber, pcall,
-- xpcall, error, assert, setmetatable, getmetatable, rawget, rawset, rawequal,
-- rawlen, print (logs at info level), collectgarbage("count") only, and load for
-- text chunks only (no binary chunks; the environment defaults to the sandbox).
--
-- Not available: io, debug, package, require (plugins come through the runner: plugins = { ... }),
-- dofile, loadfile, string.dump, and the rest of os (execute, exit, getenv, remove,
-- rename, tmpname…). `.luarc.json` disables the io, os, debug and package libraries
-- of the language server; the reduced `os` below replaces the standard one.
--
-- setmetatable refuses metatables with a __gc field (finalizers); tables handed to
-- Rivet functions are read raw (their metatables are ignored). A Rivet function
-- refuses a table, string or function passed where it takes no argument
-- (`process.run({ "make" }, { check = true })` is an error: options go inside the
-- first table); an extra nil, number or boolean is ignored, as in Lua.
--
-- Limits: each job has a memory cap and each stage a Lua CPU budget; runaway code
-- ends the stage with a clear error.

---@class rivet.osdate
---@field year integer
---@field month integer 1-12
---@field day integer 1-31
---@field hour integer 0-23
---@field min integer 0-59
---@field sec integer 0-61
---@field wday integer weekday, 1 is Sunday
---@field yday integer day of the year, 1 is January 1st
---@field isdst boolean daylight saving flag

---@class rivet.osdateparam
---@field year integer
---@field month integer
---@field day integer
---@field hour? integer
---@field min? integer
---@field sec? integer
---@field isdst? boolean

---The sandbox's `os`: only `time`, `clock` and `date`.
---@class rivet.os
os = {}

---CPU time used by the Lua state, in seconds.
---@return number
function os.clock() end

---Format a time (default: now) with a strftime-like format; `"*t"`/`"!*t"` returns a table.
---@param format? string
---@param time? integer
---@return string|rivet.osdate
function os.date(format, time) end

---The current time as a number, or the time described by a date table.
---@param date? rivet.osdateparam
---@return integer
function os.time(date) end
