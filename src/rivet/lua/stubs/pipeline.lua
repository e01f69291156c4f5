---@meta pipeline
-- Rivet: the pipeline definition API (`pipeline.define`, `pipeline.builder`, helpers).
-- A pipeline file returns a definition; stage scripts and conditions run later, on a
-- runner. Written by `rivet init lua`; do not edit (re-run it with --force to update).

---@alias rivet.InputType "string"|"number"|"bool"
---@alias rivet.InputValue string|number|boolean

---@class InputDefinition
---@field type rivet.InputType The value's type (required).
---@field description? string Shown in CLI prompts, the web form and `--help`.
---@field default? rivet.InputValue Must have the declared type and be one of `options` when both are given.
---@field options? rivet.InputValue[] The allowed values (an enum), each of the declared type.
---@field required? boolean An input without a default is required unless `required = false`.
---@field name? string Only in the list form of `inputs` (`{ pipeline.input{ name = ... } }`).

---@class RunnerTag
---@field key string Tag name a runner must have, e.g. "os".
---@field value string Value it must have, e.g. "linux".

---@class StageDefinition
---@field name string Unique within the pipeline, `[A-Za-z0-9_.-]+`.
---@field script fun() The stage's work, run by the runner.
---@field condition? fun(): boolean Returning false marks the stage `skipped`.
---@field container? string Image pushed on the container stack for the whole stage.
---@field readonly? boolean Mount the workspace read-only in this stage's containers (default false).
---@field network? "none"|"bridge" Network of this stage's containers ("none": no network).
---@field timeout? number Seconds the stage may run; past it its processes and containers are killed and the job ends `timed_out`.

---@alias rivet.RetryCause "lost"|"failed"|"timed_out"

---@class RetryPolicy
---@field max integer Retries after the first attempt (0 to 20).
---@field on? rivet.RetryCause[] Which endings are retried (default `{ "lost" }`; a cancelled job never is).
---@field backoff? number Seconds before the first retry (default 5), doubled for each next one, with jitter.

---@class PipelineDefinition
---@field name string Required, non-empty; a new create with the same name makes a new version.
---@field description? string Free text.
---@field inputs? table<string, InputDefinition>|InputDefinition[] Launch inputs by name.
---@field runner? RunnerTag[] Runner tag requirements (all must match).
---@field plugins? string[] Plugins the pipeline uses (the runner must provide them).
---@field lease? number Seconds a claimed job may go without a runner heartbeat before it is lost (default: the server's `jobs.lease_seconds`, 30).
---@field timeout? number Seconds one attempt may run (default: the server's `jobs.timeout_seconds`, 6 h); then it ends `timed_out`.
---@field retry? RetryPolicy What to do when an attempt is lost, fails or times out.
---@field stages StageDefinition[] Required, non-empty, run in order.

---The fluent form of a definition: every method returns the builder.
---@class PipelineBuilder
local PipelineBuilder = {} -- luacheck: ignore 241 (methods are declarations only)

---Set the pipeline's name (required).
---@param name string
---@return PipelineBuilder
function PipelineBuilder:name(name) end

---Set the pipeline's description.
---@param text string
---@return PipelineBuilder
function PipelineBuilder:description(text) end

---Declare a launch input.
---@param name string
---@param def InputDefinition
---@return PipelineBuilder
function PipelineBuilder:input(name, def) end

---Add a runner tag requirement: `:tag("os", "linux")` or `:tag({ key = "os", value = "linux" })`.
---@param key string|RunnerTag
---@param value? string
---@return PipelineBuilder
function PipelineBuilder:tag(key, value) end

---Require a plugin on the runner.
---@param name string
---@return PipelineBuilder
function PipelineBuilder:plugin(name) end

---Append a stage.
---@param def StageDefinition
---@return PipelineBuilder
function PipelineBuilder:stage(def) end

---Finish the definition (returning the builder itself works too).
---@return PipelineDefinition
function PipelineBuilder:build() end

---@class rivet.pipeline
pipeline = {}

---Declare a pipeline from one table; the file must `return` the result.
---@param spec PipelineDefinition
---@return PipelineDefinition
function pipeline.define(spec) end

---Start a fluent definition: `pipeline.builder():name("x"):stage{...}:build()`.
---@return PipelineBuilder
function pipeline.builder() end

---Check an input definition and return it unchanged.
---@param def InputDefinition
---@return InputDefinition
function pipeline.input(def) end

---Check a stage definition and return it unchanged.
---@param def StageDefinition
---@return StageDefinition
function pipeline.stage(def) end

---A runner tag requirement: returns `{ key = key, value = value }`.
---@param key string
---@param value string
---@return RunnerTag
function pipeline.tag(key, value) end
