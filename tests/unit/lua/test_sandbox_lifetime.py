"""The sandbox battery, part two: nothing of a pipeline runs after its job has ended,
or on a thread that is not running the job's Lua.

Layer one: pipeline code cannot create finalizers (``setmetatable`` refuses ``__gc``;
a ``__gc`` added later is never honoured by Lua). Layer two, tested here by planting
a finalizer with the real ``setmetatable`` behind the sandbox's back: when the job
ends its sandbox is closed on the job's thread, the bridges to Python are cut first,
and the Lua state is freed right there. ``__close`` and weak tables are checked too.

Some tests reach into the sandbox (``_lua``, a raw ``probe`` function that is not a
Rivet bridge) to observe what pipeline code cannot: whether a finalizer ran at all,
and on which thread.
"""

from __future__ import annotations

import gc
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lupa import lua54
from recording import EventLog

from rivet.engine.backends.fake import FakeBackend
from rivet.engine.context import JobContext, Phase
from rivet.engine.events import CancelToken
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec
from rivet.engine.modules import install_all
from rivet.errors import DefinitionError, LuaError
from rivet.lua.definition import load_definition
from rivet.lua.sandbox import JOB_ENDED, Limits, Sandbox

REFUSED = "setmetatable: __gc metamethods (finalizers) are not allowed in pipelines"


class Job:
    """A job's sandbox with every runtime module, in the run phase, plus ``probe``:
    a plain Python function (not a bridge) recording its argument and thread."""

    def __init__(self, tmp_path: Path, limits: Limits | None = None) -> None:
        self.events = EventLog()
        self.sandbox = Sandbox(limits or Limits())
        self.ctx = JobContext(
            job_id=f"life-{uuid.uuid4().hex[:8]}",
            events=self.events,
            backend=FakeBackend(),
            workspace=tmp_path,
            default_image="alpine:latest",
            inputs={},
            cancel=CancelToken(),
        )
        install_all(self.sandbox, self.ctx)
        self.ctx.phase = Phase.RUN
        self.probed: list[tuple[Any, int]] = []
        self.sandbox.env["probe"] = self.probe

    def probe(self, value: Any) -> None:
        self.probed.append((value, threading.get_ident()))

    def run(self, code: str, budget: float = 30) -> Any:
        return self.sandbox.call(self.sandbox.load(code, "t.lua"), budget=budget, label="stage")

    def close(self) -> None:
        self.sandbox.close()
        for close in self.ctx.closers:
            close()


@pytest.fixture
def job(tmp_path: Path) -> Iterator[Job]:
    j = Job(tmp_path)
    yield j
    j.close()


def run_stage(tmp_path: Path, body: str) -> tuple[Any, EventLog]:
    executor = Executor(FakeBackend(), ExecutorSettings(workspace_root=tmp_path))
    events = EventLog()
    source = (
        "return pipeline.define({ name = 'x', stages = { { name = 's', script = function()\n"
        + body
        + "\nend } } })"
    )
    return executor.run(
        JobSpec(f"life-{uuid.uuid4().hex[:8]}", source, "evil.lua", {}), events
    ), events


def lua_runtimes() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is lua54.LuaRuntime)


# --- layer one: no finalizers -----------------------------------------------------------

GC_VALUES = ["function() log.info('gc') end", "true", "false", "{}", "'later'", "print"]


@pytest.mark.parametrize("value", GC_VALUES)
def test_setmetatable_refuses_any_gc_field_in_a_stage(tmp_path: Path, value: str) -> None:
    result, _ = run_stage(tmp_path, f"\nsetmetatable({{}}, {{ __gc = {value} }})")
    assert result.status == "failed"
    assert f"evil.lua:3: {REFUSED}" in (result.error or ""), result.error


@pytest.mark.parametrize("value", GC_VALUES)
def test_setmetatable_refuses_any_gc_field_at_definition_time(value: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        load_definition(
            f"setmetatable({{}}, {{ __gc = {value} }})\n"
            "return pipeline.define({ name = 'x', stages = { { name = 's', script = print } } })",
            "evil.lua",
        )
    assert f"evil.lua:1: {REFUSED}" in str(caught.value)


def test_other_metatables_still_work(job: Job) -> None:
    assert job.run(
        "local v = setmetatable({}, { __index = function(_, k) return k .. '!' end,"
        " __tostring = function() return 'vec' end, __mode = 'k' })\n"
        "return v.x .. tostring(v)"
    ) == ("x!vec")


def test_gc_added_to_the_metatable_later_never_runs(job: Job) -> None:
    job.run(
        "local mt = {}\n"
        "KEEP = setmetatable({}, mt)\n"
        "for i = 1, 200 do setmetatable({}, mt) end\n"
        "mt.__gc = function(o) probe('late gc') end\n"
        "KEEP = nil\n"
        "for i = 1, 20000 do local _ = { i } end"
    )
    job.close()
    gc.collect()
    assert job.probed == []


def test_gc_inherited_through_the_metatables_index_is_not_a_finalizer(job: Job) -> None:
    job.run(
        "local mt = setmetatable({}, { __index = { __gc = function() probe('inherited') end } })\n"
        "for i = 1, 200 do setmetatable({}, mt) end\n"
        "KEEP = setmetatable({}, mt)"
    )
    job.close()
    gc.collect()
    assert job.probed == []


# --- layer two: the job's end cuts the bridges, then frees the state ------------------------


def plant_real_finalizer(job: Job, body: str) -> None:
    """A finalizer made with Lua's own setmetatable and pcall (the sandbox's pcall
    re-raises once the job has ended), as if one had got past the guard."""
    real = job.sandbox._lua.globals()
    planter = job.sandbox.load(
        "local setmetatable, pcall = ...\n"
        f"return function() KEEP = setmetatable({{}}, {{ __gc = function() {body} end }}) end",
        "plant.lua",
    )
    make = job.sandbox.invoke(planter, real.setmetatable, real.pcall)
    make()


def test_a_finalizer_left_behind_runs_at_close_on_the_closing_thread_and_reaches_nothing(
    job: Job,
) -> None:
    plant_real_finalizer(
        job,
        "probe(select(2, pcall(log.info, 'from a finalizer')))\n"
        "probe(select(2, pcall(output.set, 'leak', 1)))\n"
        "probe(select(2, pcall(process.run, { 'true' })))",
    )
    job.run("log.info('job line')")
    job.close()  # the Lua state is freed here: lua_close runs the finalizer now
    closer = threading.get_ident()
    messages = [str(m) for m, _ in job.probed]
    assert len(messages) == 3, messages
    for fn, message in zip(("log.info", "output.set", "process.run"), messages, strict=True):
        assert f"{fn}: {JOB_ENDED}" in message
    assert {thread for _, thread in job.probed} == {closer}
    assert job.events.messages() == ["job line"]
    assert job.ctx.outputs == {}


def test_close_cuts_every_bridge_even_for_functions_still_held(job: Job) -> None:
    script = job.sandbox.load("log.info('again')", "t.lua")
    job.close()
    with pytest.raises(LuaError, match="the Lua state is closed"):
        job.sandbox.call(script, budget=5, label="stage")
    with pytest.raises(lua54.LuaError, match=JOB_ENDED):
        script()  # straight through lupa: the bridge answers, nothing is logged
    assert job.events.messages() == []


def test_rivet_functions_refuse_outside_a_call_and_on_other_threads(job: Job) -> None:
    speak = job.sandbox.load("log.info('spoken')", "t.lua")
    with pytest.raises(lua54.LuaError, match=r"log\.info: not available here"):
        speak()  # no call() is running: as from a stray finalizer
    seen: dict[str, str] = {}

    def elsewhere() -> None:
        try:
            speak()
        except lua54.LuaError as exc:
            seen["error"] = str(exc)

    other = threading.Thread(target=elsewhere)

    def start_other() -> None:
        other.start()
        other.join(0.5)  # it waits for the job's lock, then finds it is not the job

    job.sandbox.env["start_other"] = job.sandbox.expose(start_other, "start_other")
    job.run("start_other() log.info('mine')")
    other.join(30)
    assert "log.info: not available here" in seen["error"]
    assert job.events.messages() == ["mine"]


def test_executor_frees_every_lua_state_when_its_job_ends(tmp_path: Path) -> None:
    """Without the cycle collector: each job's state is freed by its own end."""
    gc.collect()
    before = lua_runtimes()
    gc.disable()
    try:
        for body in (
            "KEEP = setmetatable({}, { __index = function() return 1 end }) log.info('ok')",
            "error('boom')",
            "KEEP = coroutine.create(function() coroutine.yield() end)",
            "json.decode('[1, {\"a\": 2}]')",
        ):
            result, _ = run_stage(tmp_path, body)
            assert result.status in ("succeeded", "failed")
            assert lua_runtimes() == before, body
        with pytest.raises(DefinitionError):
            load_definition("error('bad')", "bad.lua")
        load_definition(
            "return pipeline.define({ name = 'x', stages = { { name = 's', script = print } } })",
            "ok.lua",
        )
        assert lua_runtimes() == before
    finally:
        gc.enable()


# --- __close and weak tables ---------------------------------------------------------------


def test_close_variables_run_in_their_scope_on_the_job_thread(tmp_path: Path) -> None:
    result, events = run_stage(
        tmp_path,
        "do local guard <close> = setmetatable({}, { __close = function() log.info('closed') end })\n"
        "  log.info('inside') end\nlog.info('after')",
    )
    assert result.status == "succeeded", result.error
    assert events.messages() == ["inside", "closed", "after"]


def test_close_variable_of_a_suspended_coroutine_never_runs(job: Job) -> None:
    job.run(
        "KEEP = coroutine.create(function()\n"
        "  local guard <close> = setmetatable({}, { __close = function() probe('closed') end })\n"
        "  coroutine.yield()\n"
        "end)\n"
        "coroutine.resume(KEEP)"
    )
    job.close()
    gc.collect()
    assert job.probed == []


def test_close_variable_unwound_by_a_kill_cannot_call_rivet(tmp_path: Path) -> None:
    job = Job(tmp_path, Limits(stage_cpu_seconds=0.3))
    try:
        with pytest.raises(LuaError, match=r"CPU budget of 0\.3 s exceeded"):
            job.run(
                "local guard <close> = setmetatable({}, { __close = function()\n"
                "  probe('closing')\n"
                "  output.set('after', 'kill')\n"
                "  probe('still running')\n"
                "end })\n"
                "while true do end",
                budget=0.3,
            )
        assert [m for m, _ in job.probed] == ["closing"]  # it ran, and Rivet refused it
        assert job.ctx.outputs == {}
    finally:
        job.close()


def test_weak_tables_work_and_run_nothing(job: Job) -> None:
    assert (
        job.run(
            "local cache = setmetatable({}, { __mode = 'v' })\n"
            "local keys = setmetatable({}, { __mode = 'k' })\n"
            "for i = 1, 20000 do cache[i] = { i }; keys[{}] = i end\n"
            "local kept = {}\n"
            "for i = 1, 10 do kept[i] = {}; keys[kept[i]] = i end\n"
            "local n = 0\n"
            "for _, v in pairs(keys) do n = n + 1 end\n"
            "return n >= 10"
        )
        is True
    )
    job.close()
    gc.collect()
    assert job.probed == []
