"""One runner process, concurrency 2, many jobs whose pipelines try every way of
leaving code behind in their Lua state (``__gc`` finalizers, ``__close`` variables,
suspended coroutines, weak tables, objects kept in globals), interleaved with benign
jobs, while the garbage collector is forced to run all the time.

Before the fix, a job's Lua state was freed by Python's cycle collector on whichever
thread happened to collect: ``lua_close`` ran the job's finalizers there, they called
Rivet functions of a job that had ended, and the runner died with SIGSEGV (exit 139),
taking every job on it down. Now the state is closed on the job's own thread when the
job ends, its bridges to Python are cut first, and the sandbox refuses finalizers.

The forced collection comes from a ``sitecustomize`` on the runner's PYTHONPATH (a
collection every few allocations plus a thread calling ``gc.collect()``): the runner
itself is the real ``rivet runner`` console script.
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest
from live_rivet import wait_for
from rivet_processes import Processes, Rivet, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.podman]

GC_PRESSURE = """
import gc, threading, time
gc.set_threshold(100, 5, 5)

def _collect_forever():
    while True:
        time.sleep(0.01)
        gc.collect()

threading.Thread(target=_collect_forever, name="gc-pressure", daemon=True).start()
"""

# Every attempt is wrapped in pcall so that the job goes on to try the next one
# whatever the sandbox refuses; the finalizers call one Rivet function of each kind.
HOSTILE = r"""
local function payload(tag)
  return function()
    log.info("finalizer " .. tag)
    print("finalizer " .. tag)
    pcall(output.set, "leak", tag)
    pcall(input.get, "x")
    pcall(json.encode, { tag })
    pcall(fs.write, "leak.txt", tag)
    if not tag:find("garbage") then pcall(process.run, { "true" }) end
  end
end

local function attempts(where)
  local kept = {}
  -- a finalizer, directly and armed late (placeholder __gc replaced after setmetatable)
  kept[#kept + 1] = select(2, pcall(setmetatable, {}, { __gc = payload(where .. " gc") }))
  local late = { __gc = true }
  pcall(setmetatable, {}, late)
  late.__gc = payload(where .. " late gc")
  -- __gc reached through the metatable's own __index: Lua does not look there
  local inherited = setmetatable({}, { __index = { __gc = payload(where .. " inherited") } })
  kept[#kept + 1] = setmetatable({}, inherited)
  -- weak tables full of objects that die at the next collection
  local weak = setmetatable({}, { __mode = "kv" })
  for i = 1, 50 do weak[{}] = setmetatable({}, { __index = function() return i end }) end
  kept[#kept + 1] = weak
  -- a to-be-closed variable in a coroutine that is left suspended forever
  local co = coroutine.create(function()
    local guard <close> = setmetatable({}, { __close = payload(where .. " close") })
    coroutine.yield()
  end)
  coroutine.resume(co)
  kept[#kept + 1] = co
  return kept
end

KEPT_AT_DEFINITION = attempts("definition")

return pipeline.define({
  name = "hostile",
  runner = { { key = "t", value = "hostile" } },
  stages = {
    { name = "plant", script = function()
        KEPT_IN_STAGE = attempts("stage")
        for i = 1, 300 do attempts("garbage " .. i % 3) end
        log.info("planted")
      end },
  },
})
"""

BENIGN = r"""
return pipeline.define({
  name = "benign",
  runner = { { key = "t", value = "hostile" } },
  stages = {
    { name = "one", script = function()
        for i = 1, 3 do log.info("benign line " .. i) end
        output.set("answer", 42)
      end },
    { name = "two", script = function()
        local r = process.run({ "sh", "-c", "echo from-container", capture_stdout = true })
        output.set("echoed", (r.stdout:gsub("%s+$", "")))
      end },
  },
})
"""

ROUNDS = 8  # each round: two hostile and two benign jobs, so both slots see both kinds


def test_hostile_finalizers_cannot_crash_the_runner_or_touch_other_jobs(
    podman_available: str, rivet_server: Rivet, processes: Processes, tmp_path: Path
) -> None:
    api = rivet_server.api
    api.create_pipeline(HOSTILE, "hostile.lua")
    api.create_pipeline(BENIGN, "benign.lua")

    site = tmp_path / "gc-pressure"
    site.mkdir()
    (site / "sitecustomize.py").write_text(GC_PRESSURE)
    token = run_cli(["runner", "token", "create", "--quiet"], rivet_server.env)
    assert token.returncode == 0, token.stderr
    env = dict(
        rivet_server.env,
        RIVET_HOME=str(tmp_path / "runner-home"),
        RIVET_REGISTRATION_TOKEN=token.stdout.strip(),
        PYTHONPATH=str(site),
    )
    runner = processes.start(
        ["runner", "--name", "gc-runner", "--tag", "t=hostile", "--concurrency", "2"],
        env,
        "runner",
    )
    runner.wait_for_output("ready", timeout=90)

    hostile: list[str] = []
    benign: list[str] = []
    for _ in range(ROUNDS):
        hostile.append(api.launch("hostile"))
        benign.append(api.launch("benign"))
        benign.append(api.launch("benign"))
        hostile.append(api.launch("hostile"))

    def finished() -> dict[str, dict[str, object]] | None:
        assert runner.proc.poll() is None, (
            f"the runner died with exit code {runner.proc.returncode}:\n{runner.output[-3000:]}"
        )
        jobs = {j["id"]: j for j in api.jobs() if j["id"] in set(hostile + benign)}
        done = [j for j in jobs.values() if j["status"] not in ("queued", "running")]
        return jobs if len(done) == len(hostile) + len(benign) else None

    jobs = wait_for(finished, timeout=600, what="every job to finish")

    assert Counter(jobs[j]["status"] for j in benign) == {"succeeded": len(benign)}
    for job_id in benign:
        assert jobs[job_id]["outputs"] == {"answer": 42, "echoed": "from-container"}
        messages = [line["message"] for line in api.logs(job_id)]
        assert not [m for m in messages if "finalizer" in m or "leak" in m], messages

    for job_id in hostile:
        job = jobs[job_id]
        messages = [line["message"] for line in api.logs(job_id)]
        # The finalizers never ran: not during the job, and not after it.
        assert not [m for m in messages if "finalizer" in m], messages
        assert job["status"] == "succeeded", job
        assert "planted" in messages
        assert "leak" not in (job["outputs"] or {})

    # Still alive and still claiming: one more benign job after all of that.
    last = api.launch("benign")
    assert api.wait_finished(last, timeout=120)["status"] == "succeeded"
    assert runner.proc.poll() is None
    runner.signal(signal.SIGINT)
    assert runner.wait(60) == 0, runner.output[-3000:]
