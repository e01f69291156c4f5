-- process.parallel: several commands in flight at once, results in item order.
--   rivet run examples/parallel.lua --input max=2
return pipeline.define({
  name = "parallel",
  description = "Fan out commands and collect their results",
  inputs = {
    max = { type = "number", default = 3, description = "commands in flight at once" },
  },
  stages = {
    {
      name = "fan-out",
      script = function()
        local targets = { "linux", "darwin", "windows", "freebsd" }
        local results = process.parallel(targets, function(target)
          local r = process.run({ "sh", "-c", "sleep 1; echo built-for-$T", env = { T = target },
                                  capture_stdout = true })
          return r.stdout:gsub("%s+$", "")
        end, { max = input.get("max") })
        for i, line in ipairs(results) do
          log.info(targets[i] .. " -> " .. line)
        end
        output.set("built", #results)
      end,
    },
  },
})
