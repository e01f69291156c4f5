---@meta secret
-- Rivet: the `secret` module: secrets granted to this pipeline (`rivet secret grant
-- NAME PIPELINE`), or given locally to `rivet run` (RIVET_SECRET_<NAME>,
-- --secret-file). Every value is replaced by `***` in logs, outputs and errors,
-- also base64-, hex-, URL- or JSON-encoded and split over two lines. To hand a
-- secret to a command without Lua seeing it, use `process.run`'s `secrets`
-- (environment variables) or `secret_files` (files in /run/rivet/secrets).

---@class rivet.secret
secret = {}

---The secret's value; an error when it is not granted to this pipeline, when its
---grant does not cover this version (older than the grant, or not pushed by the
---admin; the error says which), or, under `rivet run`, when it is not given.
---@param name string
---@return string
function secret.get(name) end

---Whether the secret is available to this job (granted, or given locally).
---@param name string
---@return boolean
function secret.has(name) end
