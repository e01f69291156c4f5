-- Containers: the stack (nested container.with), a stage container, the shared
-- workspace, cwd, captured output, exit codes and a missing image caught with pcall.
--   rivet run examples/containers.lua
local DEBIAN = "localhost/rivet/debian-git:latest"

return pipeline.define({
  name = "containers",
  description = "Every command runs in a container; the workspace is shared",
  stages = {
    {
      name = "prepare",
      script = function()
        -- default image (alpine:latest, here a local busybox)
        process.run({ "mkdir", "-p", "src/app" })
        process.run({ "sh", "-c", "echo 'print(\"hi from python\")' > src/app/main.py" })
        local here = process.run({ "pwd", cwd = "src/app", capture_stdout = true })
        log.info("working directory: " .. here.stdout:gsub("%s+$", ""))
      end,
    },
    {
      name = "nested",
      script = function()
        container.with(DEBIAN, function()
          process.run({ "git", "--version" })
          container.with("alpine:latest", function()
            process.run({ "uname", "-s" }) -- innermost image
          end)
          local py = process.run({ "python3", "main.py", cwd = "src/app", capture_stdout = true })
          output.set("python_says", py.stdout:gsub("%s+$", ""))
        end)
      end,
    },
    {
      name = "exit-codes",
      script = function()
        local r = process.run({ "sh", "-c", "exit 3" })
        log.info("exit code " .. r.exit_code .. " does not fail the stage unless check = true")
        local ok, err = pcall(function()
          local checked = process.run({ "false", check = true })
          return checked
        end)
        log.info("with check = true it raises: " .. tostring(err))
        local ok2, missing = pcall(container.with, "no-such-image:latest", function()
          process.run({ "true" })
        end)
        assert(not ok2)
        log.warning("caught: " .. missing)
      end,
    },
    {
      name = "in-debian",
      container = DEBIAN,
      script = function()
        local files = process.run({ "git", "ls-files", "--others", capture_stdout = true, capture_stderr = true })
        log.info("git in the stage container exited " .. files.exit_code)
        process.run({ "cat", "src/app/main.py" })
      end,
    },
  },
})
