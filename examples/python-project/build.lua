-- The python-project example: test, build a wheel, archive the test report, and keep
-- both as artifacts. The code comes from --source (the git plugin will clone it
-- instead once it is merged; see README.md):
--   rivet run examples/python-project/build.lua --source examples/python-project
--   rivet job launch python-project --source examples/python-project
local PYTHON = "localhost/rivet/debian-git:latest"

return pipeline.define({
  name = "python-project",
  description = "Test democalc, build its wheel, keep the wheel and the test report",
  stages = {
    {
      name = "test",
      container = PYTHON,
      script = function()
        process.run({ "mkdir", "-p", "reports" })
        local run = process.run({
          "sh", "-c",
          "PYTHONPATH=src python3 -m unittest discover -s tests -v > reports/tests.txt 2>&1; "
            .. "status=$?; cat reports/tests.txt; exit $status",
        })
        if run.exit_code ~= 0 then
          error("the tests failed (exit " .. run.exit_code .. ")")
        end
      end,
    },
    {
      name = "wheel",
      container = PYTHON,
      script = function()
        process.run({ "python3", "tools/build_wheel.py", "dist", check = true })
        process.run({ "tar", "-czf", "reports/report.tar.gz", "reports/tests.txt", check = true })
      end,
    },
    {
      name = "publish",
      script = function()
        local wheel = artifact.upload("wheel", { "dist/*.whl" })
        for _, f in ipairs(wheel.files) do
          log.info("wheel: " .. f.path .. " " .. f.size .. " bytes sha256 " .. f.sha256)
        end
        local report = artifact.upload("report", { "reports/report.tar.gz", "reports/tests.txt" })
        log.info("report: " .. #report.files .. " files")
        output.set("wheel", wheel.files[1].path)
      end,
    },
  },
})
