---@meta container
-- Rivet: the `container` module: the job's container stack. A container starts
-- lazily at the first `process.run` that needs it, is reused for later uses of the
-- same image in the job, and is removed when the job ends. Every container of a job
-- mounts the job's workspace at /workspace.

---@class rivet.container
container = {}

---Push `image` on the container stack, call `fn`, pop it again (also when `fn`
---raises; the error propagates). Nesting is allowed: `process.run` uses the innermost
---image. Returns what `fn` returns. An image that cannot be started raises a
---catchable error naming it.
---@param image string
---@param fn fun(): any
---@return any ...
function container.with(image, fn) end
