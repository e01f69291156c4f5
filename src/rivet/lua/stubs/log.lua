---@meta log
-- Rivet: the `log` module (inside stage scripts and conditions). Every line carries
-- the job, the stage, a per-job sequence number, a timestamp and the level.
-- `print(...)` logs at info. Logging an error does not stop the stage; `error(...)` does.
-- A message with line breaks (\n, \r, \r\n, \v, \f, U+2028…) is stored as one log line
-- per line, so it cannot imitate another line; lines over 65,536 characters are split.

---@alias rivet.LogLevel "debug"|"info"|"warning"|"error"

---@class rivet.log
log = {}

---Log at debug level (non-strings are converted with `tostring`).
---@param msg any
function log.debug(msg) end

---Log at info level (non-strings are converted with `tostring`).
---@param msg any
function log.info(msg) end

---Log at warning level (non-strings are converted with `tostring`).
---@param msg any
function log.warning(msg) end

---Alias of `log.warning`.
---@param msg any
function log.warn(msg) end

---Log at error level; the stage goes on (use `error(...)` to stop it).
---@param msg any
function log.error(msg) end
