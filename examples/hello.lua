-- The smallest useful pipeline: logging and inputs.
--   rivet run examples/hello.lua --input name=world
return pipeline.define({
  name = "hello",
  description = "Greets someone from inside a container",
  inputs = {
    name = { type = "string", description = "who to greet", default = "world" },
    times = { type = "number", description = "how many greetings", default = 1, options = { 1, 2, 3 } },
  },
  stages = {
    {
      name = "greet",
      script = function()
        local who = input.get("name")
        log.info("hello from Lua, " .. who)
        for i = 1, input.get("times") do
          process.run({ "echo", "hello from a container, " .. who .. " (" .. i .. ")" })
        end
        output.set("greeted", who)
      end,
    },
    {
      name = "report",
      script = function()
        log.debug("outputs so far: " .. table.concat(output.keys(), ", "))
        print("greeted", output.get("greeted"))
      end,
    },
  },
})
