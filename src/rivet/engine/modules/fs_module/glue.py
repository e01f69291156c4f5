"""The Lua side of the ``fs`` module: argument checks and the byte-string bridge.

Lua strings are byte strings, but lupa (with the sandbox's UTF-8 encoding) can only
hand valid UTF-8 to Python; anything else would fail to decode before the Python
function is even called. So each string argument that is not valid UTF-8 (checked
with ``utf8.len``, which is as strict as Python's decoder) travels as ``{ latin1 }``:
every byte >= 0x80 replaced by the UTF-8 form of the same code point (U+0080-U+00FF),
which the Python side encodes back to the original bytes with ``latin-1``. Contents
are measured against the write limits *before* that copy is built, so an oversized
binary write fails with the limit's message rather than the Lua memory cap.

Results come back as Python ``bytes`` stored in a Lua table (which lupa copies
verbatim); the glue returns the table's first slot for ``fs.read``.

Every function raises at its caller's line (``error(msg, 2)``; ``arg`` and
``content`` use level 3 since they run one call deeper), and none is a tail call,
which would shift those levels.
"""

from __future__ import annotations

__all__ = ["GLUE"]

GLUE = """
local impl = ...
local type, error, tostring = type, error, tostring
local utf8_len, utf8_char, gsub, char = utf8.len, utf8.char, string.gsub, string.char

local LATIN1 = {}
for b = 128, 255 do LATIN1[char(b)] = utf8_char(b) end

-- Valid UTF-8 crosses into Python as it is; other bytes travel as { latin1 }.
local function arg(fname, what, value)
  local kind = type(value)
  if kind ~= "string" then
    error("fs." .. fname .. ": " .. what .. " must be a string, got " .. kind, 3)
  end
  if utf8_len(value) then return value end
  return { (gsub(value, "[\\128-\\255]", LATIN1)) }
end

local function content(fname, path, value)
  local kind = type(value)
  if kind == "number" then return tostring(value) end
  if kind ~= "string" then
    error("fs." .. fname .. ": content must be a string, got " .. kind, 3)
  end
  if utf8_len(value) then return value end
  -- Refuse an oversized write before the transcoded copy is built.
  local ok, err = impl.precheck(fname, path, #value)
  if not ok then error(err, 3) end
  return { (gsub(value, "[\\128-\\255]", LATIN1)) }
end

local function opt_path(fname, value)
  if value == nil then return nil end
  return arg(fname, "path", value)
end

local fs = {}

function fs.read(path)
  local ok, r = impl.read(arg("read", "path", path))
  if not ok then error(r, 2) end
  return r[1]
end

function fs.write(path, data)
  local p = arg("write", "path", path)
  local ok, r = impl.write(p, content("write", p, data))
  if not ok then error(r, 2) end
end

function fs.append(path, data)
  local p = arg("append", "path", path)
  local ok, r = impl.append(p, content("append", p, data))
  if not ok then error(r, 2) end
end

function fs.exists(path)
  local ok, r = impl.exists(arg("exists", "path", path))
  if not ok then error(r, 2) end
  return r
end

function fs.list(path)
  local ok, r = impl.list(opt_path("list", path))
  if not ok then error(r, 2) end
  return r
end

function fs.mkdir(path, opts)
  local ok, r = impl.mkdir(arg("mkdir", "path", path), opts)
  if not ok then error(r, 2) end
end

function fs.remove(path, opts)
  local ok, r = impl.remove(arg("remove", "path", path), opts)
  if not ok then error(r, 2) end
end

function fs.copy(src, dst)
  local ok, r = impl.copy(arg("copy", "source", src), arg("copy", "destination", dst))
  if not ok then error(r, 2) end
end

function fs.move(src, dst)
  local ok, r = impl.move(arg("move", "source", src), arg("move", "destination", dst))
  if not ok then error(r, 2) end
end

function fs.stat(path)
  local ok, r = impl.stat(arg("stat", "path", path))
  if not ok then error(r, 2) end
  return r
end

function fs.glob(pattern)
  local ok, r = impl.glob(arg("glob", "pattern", pattern))
  if not ok then error(r, 2) end
  return r
end

return fs
"""
