-- The second half of the python-project example: take the wheel an earlier job of
-- python-project uploaded, install it, use it.
--   rivet run examples/python-project/use-wheel.lua
--   rivet run examples/python-project/use-wheel.lua --input from=JOB_ID
-- A wheel is a zip meant to be unpacked onto sys.path (PEP 427); the image has no pip,
-- so the install is that unpacking, done by python3's zipfile.
local PYTHON = "localhost/rivet/debian-git:latest"

return pipeline.define({
  name = "python-project-consumer",
  description = "Install the wheel python-project built and run it",
  inputs = {
    from = { type = "string", default = "latest:python-project", description = "job id or latest:PIPELINE" },
  },
  stages = {
    {
      name = "fetch",
      script = function()
        local got = artifact.download("wheel", { job = input.get("from"), to = "deps" })
        log.info("downloaded " .. got.files[1].path .. " from job " .. got.job)
      end,
    },
    {
      name = "install",
      container = PYTHON,
      script = function()
        process.run({
          "sh", "-c", "python3 -m zipfile -e deps/dist/*.whl site && ls site", check = true,
        })
        local used = process.run({
          "python3", "-m", "democalc", "sum", "1", "2", "39",
          env = { PYTHONPATH = "/workspace/site" }, capture_stdout = true, check = true,
        })
        local said = used.stdout:gsub("%s+$", "")
        log.info("installed wheel says: " .. said)
        output.set("result", said)
      end,
    },
  },
})
