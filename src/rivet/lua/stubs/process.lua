---@meta process
-- Rivet: the `process` module: run commands inside the container on top of the
-- job's container stack (the default image when the stack is empty). Commands run
-- in /workspace (the job's workspace) and are never passed through a shell.

---@class ProcessRunOptions
---@field cmd? string Program to run (or give the argv positionally: `process.run({ "cargo", "build" })`).
---@field args? string[] Argument list (default `{}`); never passed through a shell.
---@field cwd? string Working directory relative to /workspace; must stay inside it (default: the workspace root).
---@field env? table<string, string> Extra environment variables; names must match [A-Za-z_][A-Za-z0-9_]* (default `{}`). Nothing of the runner's own environment reaches the command.
---@field capture_stdout? boolean Return stdout in the result instead of logging it (default false). Capped by the runner policy `process.max_capture_bytes` (default 64 MiB for all of the job's captures at once): past it the command is stopped and the call fails.
---@field capture_stderr? boolean Return stderr in the result instead of logging it (default false); capped like `capture_stdout`.
---@field stdout_level? rivet.LogLevel Log level for streamed stdout lines (default "info").
---@field stderr_level? rivet.LogLevel Log level for streamed stderr lines (default "info"; the lines are still marked as stderr).
---@field timeout? number Seconds; on expiry the process is killed and `exit_code` is 124. Default and maximum: the runner policy (3600 and 21600 unless changed).
---@field check? boolean Raise an error on a non-zero exit (default false).
---@field secrets? table<string, string> Environment variable ([A-Za-z_][A-Za-z0-9_]*, not reserved) -> secret name: sets each variable to that secret's value, which Lua never sees (default `{}`).
---@field secret_files? table<string, string> File name -> secret name: writes the value to /run/rivet/secrets/<file name> (read-only, removed when the job ends) and sets RIVET_SECRETS_DIR (default `{}`).
---@field capture_exit_code? boolean Deprecated no-op kept for pipelines of the earlier Rivet: the exit code is always returned; using it logs a warning once per job.
---@field [integer] string The argv, when given positionally.

---@class ProcessResult
---@field exit_code integer The command's exit status (124 after a timeout).
---@field stdout string Captured stdout ("" unless `capture_stdout`).
---@field stderr string Captured stderr ("" unless `capture_stderr`).
---@field timed_out boolean True when the command was killed by its timeout.

---@class ProcessParallelOptions
---@field max? integer At most this many `process.run` calls in flight at once (default 8; never more than 64).

---@class rivet.process
process = {}

---Run one command, streaming its output to the log line by line while it runs
---(lines longer than 64 KiB in pieces). A non-zero exit does not raise unless
---`check = true`. Arguments and environment: under 128 KiB each, 1 MiB together.
---@param opts ProcessRunOptions|string[]
---@return ProcessResult
function process.run(opts) end

---Call `fn(item)` for every item with up to `max` commands in flight; returns the
---results in item order, and raises after all finished if any call raised.
---@generic T
---@param items T[]
---@param fn fun(item: T): any
---@param opts? ProcessParallelOptions
---@return any[]
function process.parallel(items, fn, opts) end
