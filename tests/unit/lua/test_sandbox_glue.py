"""Rivet's own Lua glue (``bootstrap.lua``, ``pipeline_api.lua`` and every runtime
module's glue) cannot be steered by the pipeline through the standard library.

The glue runs in the pipeline's environment, so a global it looked up at run time
(``table.remove``, ``ipairs``…) would be whatever the pipeline had put there:
``process.parallel`` used to do exactly that. Now every piece of glue takes what it
uses as locals when it is installed, before any pipeline code runs, and is sealed
once it has run (a global looked up later is an internal error, not the pipeline's
function). Checked three ways: statically (luacheck lists every global a chunk
reads; all must be read in its header, before its first function), by the seal
itself, and by a hostile pipeline that replaces every standard function with a spy
and then uses every module.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from recording import EventLog

from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.context import JobContext
from rivet.engine.events import CancelToken, JobResult
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec
from rivet.engine.modules import install_all
from rivet.lua.definition import load_pipeline
from rivet.lua.sandbox import Sandbox

BOOTSTRAP = Path(__file__).resolve().parents[3] / "src" / "rivet" / "lua" / "bootstrap.lua"
TINY = "return pipeline.define({ name = 'x', stages = { { name = 's', script = print } } })"


def installed_glue(tmp_path: Path) -> dict[str, str]:
    """Every chunk of glue a job installs, as it is installed (the definition API
    and every runtime module), captured from ``Sandbox.eval_lua``."""
    chunks: dict[str, str] = {"bootstrap.lua": BOOTSTRAP.read_text()}
    real = Sandbox.eval_lua

    def spy(self: Sandbox, code: str, *args: Any, chunkname: str = "=rivet") -> Any:
        chunks[f"glue {len(chunks)} ({chunkname}: {code.strip().splitlines()[0][:40]})"] = code
        return real(self, code, *args, chunkname=chunkname)

    sandbox = Sandbox()
    ctx = JobContext(
        job_id="glue",
        events=EventLog(),
        backend=PodmanBackend(),
        workspace=tmp_path,
        default_image="alpine:latest",
        inputs={},
        cancel=CancelToken(),
    )
    Sandbox.eval_lua = spy  # type: ignore[method-assign]
    try:
        install_all(sandbox, ctx)
        load_pipeline(TINY, "tiny.lua", sandbox=sandbox)
    finally:
        Sandbox.eval_lua = real  # type: ignore[method-assign]
        sandbox.close()
    return chunks


GLOBAL = re.compile(r":(\d+):\d+: \(W11[123]\) \w+ .*?variable '?(\w+)'?")


def test_glue_reads_globals_only_in_its_header(tmp_path: Path) -> None:
    luacheck = shutil.which("luacheck")
    if luacheck is None:
        pytest.skip("luacheck is not installed (Debian package lua-check)")
    chunks = installed_glue(tmp_path)
    # bootstrap, the definition API and the nine runtime modules' glue (log's, fs's…)
    assert len(chunks) >= 8, sorted(chunks)
    late: list[str] = []
    for name, code in chunks.items():
        path = tmp_path / "chunk.lua"
        path.write_text(code)
        proc = subprocess.run(
            [
                luacheck,
                "--std",
                "none",
                "--no-unused",
                "--no-redefined",
                "--codes",
                "--formatter",
                "plain",
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        lines = code.splitlines()
        first_function = next(
            i
            for i, line in enumerate(lines, start=1)
            if re.search(r"\bfunction\b", line) and not line.lstrip().startswith("--")
        )
        accesses = [(int(m.group(1)), m.group(2)) for m in GLOBAL.finditer(proc.stdout)]
        assert accesses or name != "bootstrap.lua", proc.stdout + proc.stderr
        late += [f"{name}:{line}: {var}" for line, var in accesses if line >= first_function]
    assert late == [], "globals read after the header (at run time): " + ", ".join(late)


def test_a_sealed_chunk_refuses_globals_at_run_time() -> None:
    sandbox = Sandbox()
    leaky = sandbox.eval_lua("return function() return table.concat({ 'a', 'b' }) end")
    from lupa import lua54

    with pytest.raises(
        lua54.LuaError,
        match="internal error in Rivet's Lua glue: it used the global 'table' at run time",
    ):
        sandbox.invoke(leaky)
    sandbox.close()


def run(tmp_path: Path, source: str) -> tuple[JobResult, EventLog]:
    executor = Executor(PodmanBackend(), ExecutorSettings(workspace_root=tmp_path / "ws"))
    events = EventLog()
    job = JobSpec(f"glue-{uuid.uuid4().hex[:8]}", source, "glue.lua", {})
    return executor.run(job, events), events


# Every standard function, and every function of the standard tables, is replaced by a
# spy that records its name and then does what the original does; pipeline code of
# its own uses only what it took as locals first. Done at the top of the file, so the
# definition API runs with the spies too, and again in the stage.
HOSTILE = r"""
local pairs_, type_, concat_, sort_, rawset_ = pairs, type, table.concat, table.sort, rawset
local pcall_, error_, tostring_, print_ = pcall, error, tostring, print
local called = {}
local function spy_on(t, prefix)
  local names = {}
  for k, v in pairs_(t) do
    if type_(v) == "function" then names[#names + 1] = k end
  end
  for i = 1, #names do
    local k = names[i]
    local original = t[k]
    rawset_(t, k, function(...) called[prefix .. k] = true return original(...) end)
  end
end
local function spy_everywhere()
  for _, lib in pairs_({ "table", "string", "math", "utf8", "coroutine", "os" }) do
    spy_on(_G[lib], lib .. ".")
  end
  spy_on(_G, "")
end
local function spied()
  local names = {}
  for k in pairs_(called) do names[#names + 1] = k end
  sort_(names)
  return concat_(names, " ")
end
spy_everywhere()

local b = pipeline.builder():name("glue")
b:input("who", pipeline.input({ type = "string", default = "me" }))
b:tag("t", "glue")
b:stage(pipeline.stage({ name = "all", script = function()
  local out = {}
  local function note(k, v) out[#out + 1] = k .. "=" .. tostring_(v) end
  -- process and container
  note("run", process.run({ "echo", "hi", capture_stdout = true }).stdout)
  local ok, err = pcall_(process.parallel, { 1, 2, 3 }, function(i)
    if i ~= 2 then error_("item " .. i .. " fails", 0) end
    return process.run({ "echo", i, capture_stdout = true }).stdout
  end)
  note("parallel", err)
  local r = process.parallel({ 1, 2 }, function(i)
    return process.run({ "echo", i, capture_stdout = true }).stdout
  end, { max = 2 })
  note("parallel ok", r[1] .. r[2])
  note("with", container.with("alpine:latest", function() return "inside" end))
  -- fs, with a binary string both ways
  fs.write("a.txt", "one\255two")
  fs.append("a.txt", "!")
  note("read", #fs.read("a.txt"))
  note("list", #fs.list("."))
  note("glob", #fs.glob("*.txt"))
  note("stat", fs.stat("a.txt").size)
  note("exists", fs.exists("a.txt"))
  -- json
  note("json", json.encode({ a = json.array({}), b = json.object({}), n = json.null, l = { 1, 2 } }))
  note("decode", json.decode('{"x": [1, {"y": null}]}').x[1])
  ok, err = pcall_(json.encode, { 1, nil, 3 })
  note("encode error", err)
  -- log, print, input, output, secret
  log.info("info", 1, true)
  log.warn("warn")
  print_("printed", {} ~= nil)
  note("input", input.get("who"))
  note("inputs", #input.keys())
  output.set("x", 1)
  note("output", output.get("x"))
  note("secret", secret.has("nope"))
  ok, err = pcall_(secret.get, "nope")
  note("secret error", err)
  spy_everywhere()  -- again, in the stage
  note("after", #fs.list("."))
  note("again", process.run({ "echo", "x", capture_stdout = true }).stdout)
  output.set("notes", concat_(out, "|"))
  output.set("called", spied())
end }))
return b:build()
"""


@pytest.mark.podman
def test_glue_never_calls_the_pipelines_standard_functions(
    podman_available: str, tmp_path: Path
) -> None:
    result, events = run(tmp_path, HOSTILE)
    assert result.status == "succeeded", result.error
    assert result.outputs["called"] == "", result.outputs["called"]
    notes = dict(part.split("=", 1) for part in str(result.outputs["notes"]).split("|"))
    assert notes["run"] == "hi\n"
    assert notes["parallel"].startswith(
        "process.parallel: 2 of 3 calls failed: [1] item 1 fails; [3] item 3 fails"
    ), notes["parallel"]
    assert notes["parallel ok"] == "1\n2\n"
    assert notes["with"] == "inside"
    assert notes["read"] == "8" and notes["stat"] == "8" and notes["exists"] == "true"
    assert json.loads(notes["json"]) == {"a": [], "b": {}, "n": None, "l": [1, 2]}
    assert notes["decode"] == "1"
    assert "json.encode" in notes["encode error"]
    assert notes["input"] == "me" and notes["inputs"] == "1"
    assert notes["output"] == "1" and notes["secret"] == "false"
    assert "'nope'" in notes["secret error"]
    assert notes["again"] == "x\n"
    messages = events.messages()
    assert "info 1 true" in messages and "warn" in messages and "printed\ttrue" in messages


# What a pipeline could do before: process.parallel looked up table.remove, table.sort
# and ipairs when it ran. Now replacing the standard library changes nothing in how
# Rivet's functions behave.
HIJACKED = r"""
table.remove = function() end
table.sort = function() error("hijacked sort", 0) end
table.concat = function() return "hijacked concat" end
table.unpack = function() return "hijacked" end
table.pack = function() return { n = 0 } end
ipairs = function() return function() return nil end end
pairs = ipairs
next = function() return nil end
tostring = function() return "hijacked tostring" end
type = function() return "hijacked" end
error = function() end
pcall = function() return true end
select = function() return 0 end
rawget, rawlen, rawset = function() end, function() return 0 end, function() end
setmetatable = function(t) return t end
string.format, string.gsub, string.sub = tostring, tostring, tostring
utf8.len, utf8.char = function() return false end, tostring
coroutine.create = function() return nil end
coroutine.resume = function() return false, "hijacked resume" end
coroutine.yield = function() end
coroutine.running = function() return nil, true end
math.floor = function() return 0.5 end
return pipeline.define({ name = "x", stages = { { name = "s", script = function()
  local r = process.parallel({ 1, 2, 3 }, function(i)
    return process.run({ "echo", "item" .. i, capture_stdout = true }).stdout
  end, { max = 2 })
  output.set("parallel", r[1] .. r[2] .. r[3])
  log.info("a", 2, "c")
  output.set("json", json.encode({ k = { 1, 2 } }))
  output.set("decoded", json.decode("[7, 8]")[2])
  fs.write("b.bin", "x\200y")
  output.set("read", fs.read("b.bin") == "x\200y")
  output.set("with", container.with("alpine:latest", function() return "w" end))
end } } })
"""


@pytest.mark.podman
def test_replacing_standard_functions_does_not_change_rivets_functions(
    podman_available: str, tmp_path: Path
) -> None:
    result, events = run(tmp_path, HIJACKED)
    assert result.status == "succeeded", result.error
    assert result.outputs == {
        "parallel": "item1\nitem2\nitem3\n",
        "json": '{"k":[1,2]}',
        "decoded": 8,
        "read": True,
        "with": "w",
    }
    assert "a 2 c" in events.messages()
