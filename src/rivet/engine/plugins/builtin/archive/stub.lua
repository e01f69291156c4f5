---@meta archive
-- Rivet plugin `archive` (built in; `plugins = { "archive" }`): tar, tar.gz, tar.zst
-- and zip archives in the job workspace, through the fs jail. Extraction refuses
-- unsafe entries (.., absolute paths, links pointing out, devices, set-id bits,
-- bombs), naming the entry, before anything is written.

---@class rivet.archive
archive = {}

---@class rivet.archive.CreateOptions
---@field path string the archive to write (workspace path)
---@field from string|string[] files or directories to put in it (stored under these paths)
---@field format? "tar"|"tar.gz"|"tar.zst"|"zip" default: from the path's suffix, else "tar"

---Write an archive; returns its size in bytes.
---@param opts rivet.archive.CreateOptions
---@return integer
function archive.create(opts) end

---@class rivet.archive.ExtractOptions
---@field path string the archive (any supported format, detected from its content)
---@field to? string destination directory (created; default the workspace root)

---Unpack an archive safely; returns the names of its entries.
---@param opts rivet.archive.ExtractOptions
---@return string[]
function archive.extract(opts) end

---@class rivet.archive.Entry
---@field name string
---@field type "file"|"dir"|"symlink"|"hardlink"
---@field size integer
---@field mode integer
---@field target? string

---The entries of an archive, checked as extract checks them.
---@param path string
---@return rivet.archive.Entry[]
function archive.list(path) end

---The formats create can write.
---@type string[]
archive.formats = {}
