-- The fluent builder form; returning the builder without :build() works too.
--   rivet run examples/builder.lua --input image_name=demo
return pipeline.builder()
  :name("builder-demo")
  :description("Shows the builder API")
  :input("image_name", { type = "string", required = true, description = "name of the image to 'build'" })
  :input("push", { type = "bool", default = false, description = "pretend to push it" })
  :stage({
    name = "build",
    script = function()
      local name = input.require("image_name")
      process.run({ "sh", "-c", "echo building $IMAGE > build.log", env = { IMAGE = name } })
      local log_file = process.run({ "cat", "build.log", capture_stdout = true })
      log.info("build log: " .. log_file.stdout:gsub("%s+$", ""))
      output.set("image", name .. ":latest")
    end,
  })
  :stage(pipeline.stage({
    name = "push",
    condition = function() return input.get("push") end,
    script = function()
      log.info("pushing " .. output.require("image"))
    end,
  }))
  :build()
