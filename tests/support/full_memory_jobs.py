"""Run jobs whose pipelines fill their Lua memory to just under the cap and then call
a Rivet function, in *this* process, through the real executor: a script for
``tests/unit/lua/test_sandbox_memory_full.py``, which runs it in a subprocess with a
timeout, so that a hang (the failure this guards against froze the whole process)
fails the test instead of wedging pytest.

    python full_memory_jobs.py < spec.json

The spec is ``{"memory_mib": N, "jobs": [{"name": ..., "source": ..., "inputs": {...},
"secrets": {...}}, ...]}``. ``{url}`` in a source is replaced by the address of an
HTTP server on loopback that this script runs (``/text/N``: N bytes of text,
``/json/N``: a JSON array of N objects). For every job one JSON line goes to stdout:
``{"name", "status", "error", "outputs"}``; then one more, ``{"name": "after",
...}``, for a benign job run last, which shows the process still works. Progress goes
to stderr, so a test that times out can say which job hung.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.events import LogEvent, StageResult
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec
from rivet.engine.policy import Policy
from rivet.lua.sandbox import Limits

MiB = 1024 * 1024

AFTER = """
return pipeline.define({ name = "after", stages = { { name = "s", script = function()
  local t = {}
  for i = 1, 1000 do t[i] = string.rep("x", 100) .. i end
  output.set("n", #t)
  output.set("decoded", json.decode('{"a": [1, 2, 3]}').a[3])
end } } })
"""


# Fills the Lua state to within `margin` bytes of the cap (less what the last piece
# needs), halving the piece size down to `step`; the table holding the pieces is made
# big enough first, so it never grows while memory is nearly full.
FILL = """
local function fill(margin, step)
  local cap = CAP_BYTES
  local hold = {}
  for i = 1, 8192 do hold[i] = false end
  local n, size = 0, 1 << 20
  local rep, fmt, count = string.rep, string.format, collectgarbage
  while size >= step and n < 8192 do
    local need = (size > 512 and 2 * size or size) + 128
    if count("count") * 1024 + need <= cap - margin then
      n = n + 1
      if size >= 64 then hold[n] = rep("a", size) else hold[n] = fmt("%0" .. size .. "d", n) end
    else
      size = size // 2
    end
  end
  return hold
end
"""

# (margin, step): right at the cap with tiny and with big last pieces, then further off.
LEVELS = [(0, 16), (0, 1024), (200, 16), (4096, 16), (4096, 1024), (65536, 256), (1 << 20, 16)]
FEW_LEVELS = [(0, 16), (4096, 1024), (1 << 20, 16)]  # for the jobs that start containers


def fill_code(memory_mib: int) -> str:
    """The Lua function ``fill(margin, step)`` for a cap of ``memory_mib``."""
    return FILL.replace("CAP_BYTES", str(memory_mib * MiB))


def stage_job(memory_mib: int, setup: str, calls: str, margin: int, step: int) -> str:
    """A pipeline whose one stage runs ``setup``, fills memory, then runs ``calls``."""
    return (
        "return pipeline.define({ name = 'full', inputs = { big = { type = 'string', "
        "default = '' } }, stages = { { name = 's', script = function()\n"
        f"{fill_code(memory_mib)}\n{setup}\nKEEP = fill({margin}, {step})\n{calls}\n"
        "end } } })"
    )


def variant_pipeline(name: str, memory_mib: int, body: str, tag: str | None = None) -> str:
    """A pipeline ``name`` whose one stage runs ``body`` with ``fill`` in scope (on
    runners tagged ``t=<tag>`` when a tag is given)."""
    runner = f"runner = {{ {{ key = 't', value = '{tag}' }} }}, " if tag else ""
    return (
        f"return pipeline.define({{ name = '{name}', {runner}stages = {{ {{ name = 's',"
        f" script = function()\n{fill_code(memory_mib)}\n{body}\nend }} }} }})"
    )


def leveled_pipeline(name: str, memory_mib: int, setup: str, calls: str, tag: str) -> str:
    """The same as a stored pipeline ``name`` whose fill level comes from its inputs
    (``margin``, ``step``) and that runs on runners tagged ``t=<tag>``."""
    return (
        f"return pipeline.define({{ name = '{name}', runner = {{ {{ key = 't', value = '{tag}' }} }},"
        " inputs = { big = { type = 'string', default = '' }, margin = { type = 'number' },"
        " step = { type = 'number' } }, stages = { { name = 's', script = function()\n"
        f"{fill_code(memory_mib)}\n{setup}\n"
        "KEEP = fill(input.get('margin'), input.get('step'))\n"
        f"{calls}\nend }} }} }})"
    )


# name -> (setup before the fill, the calls after it: growing results, unprotected,
# and also through pcall, which a memory kill goes through anyway).
CALLS: dict[str, tuple[str, str]] = {
    "fs.read": (
        "local sizes = { 64, 4096, 65536, 524288, 2097152, 6291456 }\n"
        "for i, n in ipairs(sizes) do fs.write('f' .. i, string.rep('r', n)) end",
        "for i = 1, 6 do pcall(fs.read, 'f' .. i) end\nfor i = 1, 6 do fs.read('f' .. i) end",
    ),
    "fs.list and fs.glob": (
        "fs.mkdir('many')\nfor i = 1, 3000 do fs.write(string.format('many/%060d', i), 'x') end",
        "local a = fs.list('many')\nlocal b = fs.glob('many/*')\nlocal c = fs.list('many')\n"
        "local d = fs.stat('many')",
    ),
    "json.decode": (
        "TEXTS = {}\n"
        "for i, n in ipairs({ 10, 1000, 10000, 40000 }) do\n"
        "  local t = {} for j = 1, n do t[j] = { i = j, s = 'item ' .. j } end\n"
        "  TEXTS[i] = json.encode(t)\n"
        "end",
        "for i = 1, 4 do local v = json.decode(TEXTS[i]) end",
    ),
    "json.encode": (
        "VALUES = {}\n"
        "for i, n in ipairs({ 10, 1000, 20000, 60000 }) do\n"
        "  local t = {} for j = 1, n do t[j] = 'value number ' .. j end\n"
        "  VALUES[i] = t\n"
        "end",
        "for i = 1, 4 do local s = json.encode(VALUES[i]) end",
    ),
    "http": (
        "",
        "for _, n in ipairs({ 16, 65536, 1048576, 4194304 }) do\n"
        "  local r = http.get('{url}/text/' .. n)\n"
        "end\n"
        "for _, n in ipairs({ 10, 1000, 20000 }) do local r = http.get('{url}/json/' .. n) end",
    ),
    "input": (
        "",
        "local a = input.get('big')\nlocal b = input.all()\nlocal c = input.keys()\n"
        "local d = input.require('big')",
    ),
    "secret": (
        "local keep = {} for i = 1, 400 do keep[i] = false end",
        "for i = 1, 400 do keep[i] = secret.get('token') end\nlocal h = secret.has('token')",
    ),
    "output": (
        "for i = 1, 15 do output.set('o' .. i, string.rep(tostring(i % 10), 60000)) end",
        "for i = 1, 15 do local v = output.get('o' .. i) end\n"
        "local all = output.all()\nlocal keys = output.keys()",
    ),
    "log and print": (
        "local big = string.rep('l', 200000)",
        "log.info('short')\nlog.warn(string.rep('w', 100000))\nprint(1, true, {}, 'x')\n"
        "for i = 1, 20 do log.debug(string.rep('d', 20000) .. i) end",
    ),
    "stage function results": (
        "",
        "local t = {} for i = 1, 100 do t[i] = { x = string.rep('y', 1000) } end\n"
        "return t, string.rep('z', 100000)",
    ),
}

CONTAINER_CALLS: dict[str, tuple[str, str]] = {
    "process.run": (
        "process.run({ 'true' })",
        "for _, n in ipairs({ 1024, 262144, 2097152, 6291456 }) do\n"
        "  local r = process.run({ 'sh', '-c', 'head -c ' .. n .. ' /dev/zero | tr \"\\\\0\" x',"
        " capture_stdout = true, capture_stderr = true })\n"
        "end",
    ),
    "process.parallel and container.with": (
        "process.run({ 'true' })",
        "local r = process.parallel({ 1, 2, 3, 4 }, function(i)\n"
        "  return process.run({ 'sh', '-c', 'head -c 1048576 /dev/zero', capture_stdout = true })\n"
        "end)\n"
        "local v = container.with('alpine:latest', function()\n"
        "  return process.run({ 'sh', '-c', 'head -c 2097152 /dev/zero', capture_stdout = true })\n"
        "end)",
    ),
}

# Every other way a stage can run out of memory; each one must fail its job with the
# memory error (nothing here can succeed). name -> the stage's body, with `fill`
# (see FILL) in scope. Grouped by where the allocation that fails happens.
VARIANTS: dict[str, str] = {
    # pure Lua, caught or not
    "table bomb": "local t = {} while true do t[#t + 1] = string.rep('x', 1024) .. #t end",
    "string doubling after fill": "KEEP = fill(65536, 16) local s = 'x' while true do s = s .. s end",
    "pcall after pcall after the kill": "KEEP = fill(0, 16)\n"
    "for i = 1, 1000 do pcall(function() local t = {} while true do t[#t + 1] = {} end end) end\n"
    "output.set('survived', true)",
    # in a coroutine: the kill crosses resume, wrap and a pcall inside the coroutine
    "coroutine.wrap bomb": "coroutine.wrap(function() local t = {}\n"
    "  while true do t[#t + 1] = string.rep('x', 1024) .. #t end end)()",
    "coroutine bomb caught inside and outside": "local co = coroutine.create(function()\n"
    "  local t = {} while true do pcall(function() t[#t + 1] = string.rep('x', 1024) .. #t end) end\n"
    "end)\nlocal ok = coroutine.resume(co)\noutput.set('survived', tostring(ok))",
    "callback in a coroutine at the cap": "fs.write('f', string.rep('r', 3000000))\n"
    "coroutine.wrap(function() KEEP = fill(0, 16) for i = 1, 5 do local s = fs.read('f') end end)()",
    "json in a coroutine at the cap": "local text = json.encode({ string.rep('q', 100000) })\n"
    "local co = coroutine.create(function() KEEP = fill(0, 16)\n"
    "  for i = 1, 50 do HELD = { HELD, json.decode(text) } end end)\n"
    "local ok, err = coroutine.resume(co)\nerror(err, 0)",
    # building what a Rivet function is called with
    "a big string argument": "KEEP = fill(4096, 16) fs.write('x', string.rep('a', 8 << 20))",
    "a big table argument": "KEEP = fill(4096, 16) local t = {} for i = 1, 1e7 do t[i] = i end\n"
    "json.encode(t)",
    "many arguments": "KEEP = fill(0, 16) local t = {} for i = 1, 100000 do t[i] = 'a' end\n"
    "log.info(table.unpack(t))",
    # error handling itself allocating
    "a huge error message": "KEEP = fill(1 << 20, 16) error(string.rep('e', 4 << 20))",
    "an xpcall handler that allocates": "KEEP = fill(0, 16)\n"
    "xpcall(function() local t = {} while true do t[#t + 1] = {} end end,\n"
    "  function(e) return string.rep('h', 1 << 20) .. tostring(e) end)",
    "a __close that allocates": "do local x <close> = setmetatable({}, { __close = function()\n"
    "  local t = {} while true do t[#t + 1] = string.rep('c', 1000) .. #t end end }) end",
    "a __concat that allocates": "KEEP = fill(0, 16)\n"
    "local m = setmetatable({}, { __concat = function() return string.rep('z', 1 << 22) end })\n"
    "local s = m .. 'x'",
    # the standard library building big results
    "string.format": "KEEP = fill(0, 16)\n"
    "local s = string.format('%s%s', string.rep('f', 1 << 21), string.rep('g', 1 << 21))",
    "table.concat": "local t = {} for i = 1, 10000 do t[i] = string.rep('t', 1000) end\n"
    "KEEP = fill(0, 16) local s = table.concat(t)",
    "load": "KEEP = fill(0, 16) local f = load('return ' .. string.rep('1+', 100000) .. '1')",
    "coroutines": "local t = {} while true do t[#t + 1] = coroutine.create(function() end) end",
    # a stage's own result
    "a big stage result": "KEEP = fill(0, 16) return string.rep('r', 1 << 21)",
}

# The same in process.parallel's branches (they run in coroutines, and start commands).
CONTAINER_VARIANTS: dict[str, str] = {
    "pure Lua in every branch": "process.parallel({ 1, 2, 3, 4 }, function(i)\n"
    "  local t = {} while true do t[#t + 1] = string.rep('p', 1024) .. i .. #t end end)",
    "one branch fills, the others read output": "process.parallel({ 1, 2, 3 }, function(i)\n"
    "  if i == 2 then KEEP = fill(0, 16) end\n"
    "  local r = process.run({ 'sh', '-c', 'head -c 2000000 /dev/zero', capture_stdout = true })\n"
    "  HOLD = HOLD or {} HOLD[#HOLD + 1] = r.stdout end)",
    "a branch fails at the cap, the error is caught": "KEEP = fill(4096, 16)\n"
    "local ok = pcall(process.parallel, { 1, 2 }, function(i)\n"
    "  process.run({ 'true' }) local t = {} while true do t[#t + 1] = {} end end)\n"
    "output.set('survived', tostring(ok))",
}

DEFINITIONS = {
    # a definition that reads like the one of memdef3.lua: many stages once memory is full
    "define": "local s = {} for i = 1, 300 do s[i] = { name = 's' .. i, script = print } end\n"
    "return pipeline.define({ name = 'full', stages = s })",
    "builder": "local b = pipeline.builder():name('full')\n"
    "for i = 1, 300 do b:stage({ name = 's' .. i, script = print }) end\nreturn b:build()",
}


class Quiet:
    def log(self, event: LogEvent) -> None:
        pass

    def stage_started(self, stage: StageResult) -> None:
        pass

    def stage_finished(self, stage: StageResult) -> None:
        pass


class Handler(BaseHTTPRequestHandler):
    """Serves `/text/N` and `/json/N` (see the module docstring) on loopback."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        kind, _, size = self.path.strip("/").partition("/")
        count = int(size or "0")
        if kind == "json":
            body = json.dumps([{"i": i, "s": f"item {i}"} for i in range(count)]).encode()
            content_type = "application/json"
        else:
            body = (b"0123456789abcdef" * (count // 16 + 1))[:count]
            content_type = "text/plain; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    spec = json.load(sys.stdin)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    policy = Policy.model_validate(
        {"http": {"deny_private": False, "allowed_hosts": ["127.0.0.1"]}}
    )
    limits = Limits(
        memory_bytes=int(spec["memory_mib"]) * MiB,
        definition_cpu_seconds=120,
        stage_cpu_seconds=120,
    )
    with tempfile.TemporaryDirectory(prefix="rivet-full-memory-") as root:
        settings = ExecutorSettings(workspace_root=Path(root), limits=limits, policy=policy)
        executor = Executor(PodmanBackend(), settings)
        jobs = [*spec["jobs"], {"name": "after", "source": AFTER}]
        for job in jobs:
            print(f"running {job['name']}", file=sys.stderr, flush=True)
            result = executor.run(
                JobSpec(
                    job_id=f"full-memory-{uuid.uuid4().hex[:8]}",
                    source=job["source"].replace("{url}", url),
                    filename="full.lua",
                    inputs=job.get("inputs", {}),
                    secrets=job.get("secrets", {}),
                    local_secrets=True,
                ),
                Quiet(),
            )
            line = {
                "name": job["name"],
                "status": str(result.status),
                "error": result.error,
                "outputs": result.outputs,
            }
            print(json.dumps(line), flush=True)
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
