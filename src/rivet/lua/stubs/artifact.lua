---@meta artifact
-- Rivet: the `artifact` module: files a job keeps (wheels, binaries, reports) and
-- files it takes from an earlier job. Stored with the job on the server (or, under
-- `rivet run`, in $RIVET_HOME/local-artifacts); `rivet job artifacts ID` lists them,
-- `rivet artifact download ID NAME` fetches them. See docs/artifacts.md.

---@class rivet.ArtifactFile
---@field path string    relative to the workspace, as uploaded
---@field size integer
---@field sha256 string

---@class rivet.Artifact
---@field name string
---@field job string     the job the artifact belongs to
---@field size integer   bytes of all its files
---@field files rivet.ArtifactFile[]

---@class rivet.artifact
artifact = {}

---Store the files matching `files` (fs.glob patterns inside the workspace; a
---directory brings every file below it) as this job's artifact `name`; uploading to
---the same name again adds files (a path uploaded twice is replaced). Regular files
---only: a symlink, FIFO or device is an error naming it, and so is a pattern that
---matches nothing. Limits: artifacts.max_file_bytes per file, max_job_bytes per job.
---@param name string letters, digits, `.`, `_`, `-` (up to 100)
---@param files string|string[] e.g. { "dist/*.whl", "reports/" }
---@return rivet.Artifact
function artifact.upload(name, files) end

---Bring artifact `name` of an earlier job into the workspace, under `to` (default:
---the workspace root) with the paths it was uploaded with. `job` is a job id or
---`"latest:PIPELINE"` (the newest succeeded job of PIPELINE that has it). On a
---server the job's pipeline must be allowed to view that job's pipeline.
---@param name string
---@param opts { job: string, to?: string }
---@return rivet.Artifact
function artifact.download(name, opts) end
