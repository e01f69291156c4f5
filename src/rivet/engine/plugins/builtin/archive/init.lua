-- The archive plugin: archive.create, archive.extract, archive.list (docs/plugins.md).
-- The work is done by the runner (native, built-in only) through the fs jail.
local native, type_, error_ = native, type, error

local function opts(fname, t, known)
  if type_(t) ~= "table" then
    error_("archive." .. fname .. ": expected an options table", 3)
  end
  for k in pairs(t) do
    if not known[k] then
      error_("archive." .. fname .. ": unknown option '" .. tostring(k) .. "'", 3)
    end
  end
  return t
end

local M = {}

function M.create(t)
  t = opts("create", t, { path = true, from = true, format = true })
  local path = t.path
  if type_(path) ~= "string" then error_("archive.create: 'path' must be a string", 2) end
  local fmt = t.format
  if fmt == nil then
    fmt = path:match("%.tar%.gz$") and "tar.gz" or path:match("%.tgz$") and "tar.gz"
      or path:match("%.tar%.zst$") and "tar.zst" or path:match("%.zip$") and "zip" or "tar"
  end
  return native.create(path, t.from, fmt)
end

function M.extract(t)
  t = opts("extract", t, { path = true, to = true })
  if type_(t.path) ~= "string" then error_("archive.extract: 'path' must be a string", 2) end
  return native.extract(t.path, t.to)
end

function M.list(path)
  if type_(path) ~= "string" then error_("archive.list: expected the archive's path", 2) end
  return native.list(path)
end

M.formats = native.formats
return M
