"""The sandbox battery, part three: metamethods cannot run pipeline code inside
Rivet's Python.

Every table a Rivet function or the definition API reads is read raw: an option table
laden with metamethods (each one counts a hit and then loops forever) is read for
what it holds, and a proxy (an empty table whose ``__index`` makes up fields) reads
as empty. Where Rivet's Lua glue itself uses a metamethod (``log.info`` calls
``tostring``), it runs under the budget like any pipeline code. That Lua which does
run inside a Rivet call is charged to the budget is ``test_sandbox_budget.py``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from recording import EventLog

from rivet.engine.backends.fake import FakeBackend
from rivet.engine.context import JobContext, Phase
from rivet.engine.events import CancelToken
from rivet.engine.modules import install_all
from rivet.errors import DefinitionError, LuaError, ResourceLimitError
from rivet.lua.definition import load_definition
from rivet.lua.sandbox import Limits, Sandbox

TRAPS = """
HITS = 0
local function trap() HITS = HITS + 1; while true do end end
EVIL = { __name = "Evil" }
for _, event in ipairs({ "index", "newindex", "len", "pairs", "tostring", "eq", "lt", "le",
    "concat", "call", "unm", "add", "close" }) do
  EVIL["__" .. event] = trap
end
function evil(t) return setmetatable(t, EVIL) end
function proxy(fields) return setmetatable({}, { __index = fields }) end
"""


def job_sandbox(tmp_path: Path, stage_seconds: float = 5.0) -> tuple[Sandbox, JobContext]:
    sandbox = Sandbox(Limits(stage_cpu_seconds=stage_seconds))
    ctx = JobContext(
        job_id=f"meta-{uuid.uuid4().hex[:8]}",
        events=EventLog(),
        backend=FakeBackend(),  # no case gets as far as starting a container
        workspace=tmp_path,
        default_image="alpine:latest",
        inputs={},
        cancel=CancelToken(),
    )
    install_all(sandbox, ctx)
    ctx.phase = Phase.RUN
    return sandbox, ctx


def run(sandbox: Sandbox, code: str, budget: float = 5.0) -> Any:
    return sandbox.call(sandbox.load(TRAPS + code, "t.lua"), budget=budget, label="stage 's'")


# (call, what it must give: an error containing this text, or "ok")
CALLS = {
    "process.run options": ("process.run(evil({}))", "no command given"),
    "process.run argv": ("process.run(evil({ 'echo', cwd = '../x' }))", "outside the workspace"),
    "process.run env": (
        "process.run({ 'echo', env = evil({ A = '1' }), cwd = '../x' })",
        "outside the workspace",
    ),
    "process.run args": (
        "process.run({ cmd = 'echo', args = evil({ 'a' }), cwd = '../x' })",
        "outside the workspace",
    ),
    "process.run secrets": (
        "process.run({ 'echo', secrets = evil({ TOKEN = 't' }),"
        " secret_files = evil({ ['a.txt'] = 't' }), cwd = '../x' })",
        "outside the workspace",
    ),
    "process.run table key": ("process.run({ 'echo', [evil({})] = 1 })", "unknown option 'table'"),
    "process.run proxy": ("process.run(proxy({ cmd = 'echo' }))", "no command given"),
    "process.parallel": ("process.parallel(evil({}), function() end, evil({}))", "ok"),
    "process.parallel max": (
        "process.parallel({}, print, evil({ max = 0 }))",
        "max must be a positive integer",
    ),
    "process.parallel key": (
        "process.parallel({}, print, { [evil({})] = 1 })",
        "unknown option 'table'",
    ),
    "http.request": (
        "http.request(evil({ method = 'BOGUS', url = 'https://x.invalid/' }))",
        "option 'method' must be one of",
    ),
    "http.get options": (
        "http.get('https://x.invalid/', evil({ timeout = -1 }))",
        "option 'timeout' must be a positive number",
    ),
    "http.get headers and query": (
        "http.get('https://x.invalid/', { headers = evil({ ['X-A'] = '1' }),"
        " query = evil({ a = evil({ '1' }) }), timeout = -1 })",
        "option 'timeout' must be a positive number",
    ),
    "http.get json": (
        "http.get('https://x.invalid/', evil({ json = evil({}), body = 'x' }))",
        "give either 'body' or 'json'",
    ),
    "http.request proxy": (
        "http.request(proxy({ url = 'https://x.invalid/' }))",
        "the URL must be a non-empty string, got nil",
    ),
    "http.get table key": (
        "http.get('https://x.invalid/', { [evil({})] = 1 })",
        "unknown option 'table'",
    ),
    "json.encode": ("assert(json.encode(evil({ 1, 2 })) == '[1,2]')", "ok"),
    "json.encode options": (
        "assert(json.encode({ a = evil({}) }, evil({ indent = 2 })) == '{\\n  \"a\": []\\n}')",
        "ok",
    ),
    "json.encode proxy": ("assert(json.encode(proxy({ a = 1 })) == '[]')", "ok"),
    "json.encode table key": ("json.encode({ [evil({})] = 1 })", "has the key table"),
    "fs.mkdir options": ("fs.mkdir('made', evil({ parents = true }))", "ok"),
    "fs.remove options": ("fs.remove('nope', evil({ recursive = true }))", "does not exist"),
    "fs options key": ("fs.mkdir('m', { [evil({})] = true })", "unknown option table"),
    "fs path": ("fs.write(evil({}), 'x')", "path must be a string, got table"),
    "output.set value": ("output.set('k', evil({}))", "must be a string, number or boolean"),
    "output.set name": ("output.set(evil({}), 1)", "the output name must be a non-empty string"),
    "input.get": ("input.get(evil({}))", "the input name must be a string"),
    "secret.get": ("secret.get(evil({}))", "the secret name must be a non-empty string"),
    "container.with image": ("container.with(evil({}), print)", "image must be a non-empty string"),
    "container.with fn": (
        "container.with('alpine:latest', evil({}))",
        "fn must be a function, got table",
    ),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(CALLS))
def test_rivet_functions_read_tables_raw(tmp_path: Path, case: str) -> None:
    sandbox, ctx = job_sandbox(tmp_path)
    call, expected = CALLS[case]
    try:
        ok, message, hits = run(
            sandbox,
            f"local ok, err = pcall(function() return {call} end)\nreturn ok, tostring(err), HITS",
        )
    finally:
        sandbox.close()
        for close in ctx.closers:
            close()
    assert hits == 0
    if expected == "ok":
        assert ok is True, message
    else:
        assert ok is False and expected in message, message


@pytest.mark.parametrize("fn", ["log.info", "print"])
def test_tostring_in_rivets_lua_glue_runs_under_the_budget(tmp_path: Path, fn: str) -> None:
    sandbox, _ctx = job_sandbox(tmp_path, stage_seconds=0.5)
    with pytest.raises(ResourceLimitError, match=r"Lua CPU budget of 0\.5 s exceeded"):
        run(
            sandbox,
            f"{fn}(setmetatable({{}}, {{ __tostring = function() while true do end end }}))",
            0.5,
        )
    sandbox.close()


def test_error_object_with_tostring_is_not_converted_with_it(tmp_path: Path) -> None:
    sandbox, _ctx = job_sandbox(tmp_path, stage_seconds=0.5)
    with pytest.raises(LuaError, match="error object is not a string"):
        run(sandbox, "error(evil({}))", 0.5)
    sandbox.close()


# --- definition time: validation reads raw, so none of these traps is ever sprung ------------

STAGE = "{ name = 's', script = print }"
DEFINITIONS = {
    "every table evil": (
        "return pipeline.define(evil({ name = 'x', description = 'd',"
        " inputs = evil({ a = evil({ type = 'string', options = evil({ 'p', 'q' }) }) }),"
        " runner = evil({ evil({ key = 'os', value = 'linux' }) }),"
        " plugins = evil({ 'git' }), stages = evil({ evil(" + STAGE + ") }) }))",
        None,
    ),
    "builder with a metatable of its own": (
        "local b = pipeline.builder():name('x'):stage(" + STAGE + ")\nreturn setmetatable(b, EVIL)",
        None,
    ),
    "pipeline.input and pipeline.stage": (
        "return pipeline.define({ name = 'x',"
        " inputs = { pipeline.input(evil({ name = 'a', type = 'string' })) },"
        " stages = { pipeline.stage(evil(" + STAGE + ")) } })",
        None,
    ),
    "proxy spec": (
        "return pipeline.define(setmetatable({ stages = { " + STAGE + " } },"
        " { __index = { name = 'x' } }))",
        "name: is required",
    ),
    "proxy stage": (
        "return pipeline.define({ name = 'x', stages = { proxy(" + STAGE + ") } })",
        "stages[1].name: is required",
    ),
    "table as a field name": (
        "return pipeline.define({ name = 'x', stages = { " + STAGE + " }, [evil({})] = 1 })",
        "table: unknown field",
    ),
    "table as a stage field name": (
        "return pipeline.define({ name = 'x', stages = { { name = 's', script = print,"
        " [evil({})] = 1 } } })",
        "stages[1].table: unknown field",
    ),
    "table as an input name": (
        "return pipeline.define({ name = 'x', stages = { " + STAGE + " },"
        " inputs = { [evil({})] = { type = 'string' } } })",
        "inputs.table: input names must match",
    ),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(DEFINITIONS))
def test_definitions_are_read_raw(case: str) -> None:
    source, problem = DEFINITIONS[case]
    limits = Limits(definition_cpu_seconds=1.0)
    if problem is None:
        definition = load_definition(TRAPS + source, "evil.lua", limits=limits)
        assert definition.name == "x"
        return
    with pytest.raises(DefinitionError) as caught:
        load_definition(TRAPS + source, "evil.lua", limits=limits)
    assert problem in str(caught.value)
    assert "budget" not in str(caught.value)
