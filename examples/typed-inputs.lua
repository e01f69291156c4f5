-- Typed inputs (string, number, bool, enum options) and conditional stages.
--   rivet run examples/typed-inputs.lua --input environment=staging --input replicas=2
return pipeline.define({
  name = "typed-inputs",
  description = "Typed inputs drive which stages run",
  inputs = {
    environment = { type = "string", options = { "dev", "staging", "prod" }, default = "dev",
                    description = "where to deploy" },
    replicas = { type = "number", default = 1, description = "instances to start" },
    dry_run = { type = "bool", default = true, description = "only print what would happen" },
    ticket = { type = "string", required = false, description = "change ticket (prod only)" },
  },
  stages = {
    {
      name = "plan",
      script = function()
        local env, n = input.get("environment"), input.get("replicas")
        log.info(string.format("plan: %d replica(s) to %s", n, env))
        assert(math.type(n) == "integer", "replicas arrive as an integer")
        output.set("plan", env .. "x" .. n)
      end,
    },
    {
      name = "approve-prod",
      condition = function() return input.get("environment") == "prod" end,
      script = function()
        if not input.has("ticket") then
          error("deploying to prod needs --input ticket=...")
        end
        log.info("ticket " .. input.get("ticket"))
      end,
    },
    {
      name = "deploy",
      condition = function() return not input.get("dry_run") end,
      script = function()
        process.run({ "echo", "deploying " .. output.get("plan") })
      end,
    },
    {
      name = "dry-run",
      condition = function() return input.get("dry_run") end,
      script = function()
        log.warning("dry run: would deploy " .. output.get("plan"))
      end,
    },
  },
})
