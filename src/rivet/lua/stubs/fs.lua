---@meta fs
-- Rivet: the `fs` module: files in the job's workspace (the directory containers
-- see as /workspace). Every path is relative to the workspace (`/workspace/x` is
-- accepted too) and jailed there: `..` above the root, other absolute paths and
-- symlinks leading out (also ones a container created) are errors naming the path.
-- Writes are atomic (a temporary file renamed into place) and limited by the
-- runner policy (`fs.max_file_bytes`, default 64 MiB; `fs.max_job_bytes`, default
-- 1 GiB); a refused write leaves nothing behind. In a stage with `readonly = true`
-- every call that changes the workspace fails. Contents are byte strings: binary
-- data round-trips unchanged.

---@class FsMkdirOptions
---@field parents? boolean Create missing parent directories; an existing directory is not an error (default false).

---@class FsRemoveOptions
---@field recursive? boolean Remove a directory with everything in it; symlinks inside are removed, never followed (default false).

---@class FsStat
---@field type "file"|"dir"|"symlink"|"fifo"|"socket"|"device"|"other" What the entry is; a symlink is reported as itself, not followed.
---@field size integer Size in bytes.
---@field mtime integer Last modification, in seconds since the epoch.
---@field mode integer Permission bits (e.g. 420 = 0644).
---@field target? string Where a symlink points (symlinks only).

---@class rivet.fs
fs = {}

---The whole content of a file (a byte string). Refused for directories, FIFOs,
---devices and files over the policy's `fs.max_read_bytes` (default 64 MiB).
---@param path string
---@return string
function fs.read(path) end

---Create or replace a file with `content` (a string; numbers are converted).
---An existing file keeps its permission bits.
---@param path string
---@param content string|number
function fs.write(path, content) end

---Append `content` to a file, creating it when missing.
---@param path string
---@param content string|number
function fs.append(path, content) end

---Whether the path exists (a symlink is followed, inside the workspace only:
---one leading out is an error, not false).
---@param path string
---@return boolean
function fs.exists(path) end

---The names in a directory (the workspace root by default), sorted; a directory of
---more than 100,000 entries is an error.
---@param path? string
---@return string[]
function fs.list(path) end

---Create a directory; with `{ parents = true }` also its missing parents.
---@param path string
---@param opts? FsMkdirOptions
function fs.mkdir(path, opts) end

---Remove a file, a symlink (never its target) or an empty directory; a non-empty
---directory needs `{ recursive = true }`.
---@param path string
---@param opts? FsRemoveOptions
function fs.remove(path, opts) end

---Copy a file or a directory tree (symlinks inside are copied as symlinks). When
---`dst` is an existing directory the copy goes inside it, like `cp`.
---@param src string
---@param dst string
function fs.copy(src, dst) end

---Move or rename a file, directory or symlink. When `dst` is an existing directory
---the entry goes inside it, like `mv`.
---@param src string
---@param dst string
function fs.move(src, dst) end

---Information about an entry, or nil when it does not exist. A symlink is
---reported as itself (`type = "symlink"`, with its `target`).
---@param path string
---@return FsStat|nil
function fs.stat(path) end

---Workspace-relative paths matching `pattern`, sorted: `*`, `?` and `[abc]` match
---within a name, `**` any number of directories; names starting with `.` only
---match a pattern that starts with `.`; a trailing `/` keeps directories only.
---Symlinked directories are never descended into. More than 100,000 matches (or a
---directory of more than 100,000 entries on the way) is an error.
---@param pattern string
---@return string[]
function fs.glob(pattern) end
