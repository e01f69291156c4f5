"""Caps on what pipeline code makes the runner hold (rivet.engine.limits), attacked
from Lua: log messages (split into bounded lines, never a forged line), outputs,
json, stage errors. Where a cap protects memory, the test measures the process's
peak RSS and asserts it stays within a generous factor of the cap."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from memory import MiB, PeakRss
from recording import EventLog

from rivet import limits
from rivet.engine.backends.fake import FakeBackend, FakeCommand
from rivet.engine.context import JobContext, Phase
from rivet.engine.events import CancelToken, log_lines
from rivet.engine.limits import (
    MAX_ERROR_CHARS,
    MAX_JSON_ITEMS,
    MAX_OUTPUT_NAME_CHARS,
    MAX_OUTPUTS,
    MAX_OUTPUTS_BYTES,
    MAX_PARALLEL,
)
from rivet.engine.modules import json_module, log_module, output_module, process_module
from rivet.engine.redaction import Redactor
from rivet.errors import LuaError
from rivet.lua.sandbox import Sandbox
from rivet.protocol import JobCompletion, LogBatch, LogLine, StageUpdate

SECRET = "s3cr3t-T0ken/with+chars=="
BREAKS = ["\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


class Lua:
    """A job's sandbox with the log, output and json modules (no container needed)."""

    def __init__(self, tmp_path: Path) -> None:
        self.sandbox = Sandbox()
        self.events = EventLog()
        self.ctx = JobContext(
            job_id="limits-test",
            events=self.events,
            backend=FakeBackend(),
            workspace=tmp_path,
            default_image="alpine:latest",
            inputs={},
            cancel=CancelToken(),
            redactor=Redactor([SECRET]),
        )
        for module in (log_module, output_module, json_module):
            module.install(self.sandbox, self.ctx)
        self.ctx.phase = Phase.RUN
        self.ctx.stage = "s"

    def run(self, code: str) -> Any:
        fn = self.sandbox.load(code, "t.lua")
        return self.sandbox.call(fn, budget=30, label="stage 's'")

    def error(self, code: str) -> str:
        with pytest.raises(LuaError) as caught:
            self.run(code)
        return str(caught.value)


@pytest.fixture
def lua(tmp_path: Path) -> Lua:
    return Lua(tmp_path)


def lua_str(text: str) -> str:
    return '"' + "".join(f"\\u{{{ord(c):X}}}" if not c.isalnum() else c for c in text) + '"'


# --- log lines ------------------------------------------------------------------------


@pytest.mark.parametrize("brk", BREAKS, ids=repr)
def test_log_lines_cut_at_every_line_break(brk: str) -> None:
    assert log_lines(f"one{brk}two{brk}") == ["one", "two"]
    assert log_lines(f"{brk}x") == ["", "x"]


def test_log_lines_cut_long_lines_and_keep_an_empty_message() -> None:
    assert log_lines("") == [""]
    assert log_lines("a\n\nb") == ["a", "", "b"]
    assert log_lines("x" * 10, limit=4) == ["xxxx", "xxxx", "xx"]
    assert log_lines("\x1b[31mred\x1b[0m\ttab") == ["\x1b[31mred\x1b[0m\ttab"]  # not breaks


@pytest.mark.parametrize("brk", BREAKS, ids=repr)
def test_a_message_with_a_line_break_cannot_forge_a_log_line(lua: Lua, brk: str) -> None:
    forged = "12:00:00 [deploy] ERROR stage 'deploy' succeeded"
    lua.run(f"log.warn({lua_str('real' + brk + forged)}); print('after')")
    events = lua.events.lines
    assert [e.message for e in events] == ["real", forged, "after"]
    assert [e.seq for e in events] == [1, 2, 3]
    assert {(e.stage, e.level) for e in events[:2]} == {("s", "warning")}
    assert all(not any(b in e.message for b in BREAKS) for e in events)


def test_a_secret_split_by_a_line_break_in_one_message_is_masked_on_both_lines(
    lua: Lua,
) -> None:
    lua.run(f"log.info({lua_str('key ' + SECRET[:9] + chr(13) + SECRET[9:] + ' end')})")
    assert lua.events.messages() == ["key ***", "*** end"]


def test_a_huge_log_message_becomes_bounded_consecutive_lines(lua: Lua) -> None:
    lua.run('log.info(string.rep("y", 1024 * 1024 + 5))')
    messages = lua.events.messages()
    assert max(len(m) for m in messages) == limits.MAX_LOG_MESSAGE
    assert "".join(messages) == "y" * (1024 * 1024 + 5)  # nothing lost
    assert [e.seq for e in lua.events.lines] == list(range(1, len(messages) + 1))
    # The runner's line cap is the server's own number, so every piece is a line the
    # server accepts as it is (the shipper has nothing left to cut).
    LogBatch(
        lines=[
            LogLine(seq=e.seq, ts=e.ts, stage=e.stage, level=e.level, message=e.message)
            for e in lua.events.lines
        ]
    )


# --- outputs --------------------------------------------------------------------------


def test_outputs_are_capped_in_number_name_and_total_size(lua: Lua) -> None:
    error = lua.error(f'output.set(string.rep("n", {MAX_OUTPUT_NAME_CHARS + 1}), 1)')
    assert f"over the limit of {MAX_OUTPUT_NAME_CHARS}" in error
    error = lua.error(f'for i = 1, {MAX_OUTPUTS + 1} do output.set("k" .. i, i) end')
    assert f"t.lua:1: output.set: cannot set 'k{MAX_OUTPUTS + 1}'" in error
    assert len(lua.ctx.outputs) == MAX_OUTPUTS
    lua.run("output.clear_all()")
    error = lua.error(
        'output.set("a", string.rep("x", 600 * 1024)); output.set("b", string.rep("x", 600 * 1024))'
    )
    assert "output.set: 'b' (614401 bytes) would bring the job's outputs to" in error
    assert "over the limit of 1 MiB" in error
    assert set(lua.ctx.outputs) == {"a"}  # the refused set changed nothing
    # Replacing a value counts its new size only; clearing gives the room back.
    lua.run('output.set("a", string.rep("z", 900 * 1024)); output.clear("a")')
    lua.run(f'output.set("b", string.rep("x", {MAX_OUTPUTS_BYTES - 1}))')
    assert len(str(lua.ctx.outputs["b"])) == MAX_OUTPUTS_BYTES - 1


# --- json -----------------------------------------------------------------------------


def test_json_encode_of_one_big_string_referenced_many_times_fails_early(lua: Lua) -> None:
    """1000 references to one 1 MiB Lua string: a few MiB in Lua, 1 GB of JSON. The
    cap (64 MiB at the default 256 MiB Lua memory) stops it while the table is read."""
    with PeakRss() as peak:
        error = lua.error(
            'local s = string.rep("x", 1024 * 1024); local t = {}\n'
            "for i = 1, 1000 do t[i] = s end\n"
            "return json.encode(t)"
        )
    assert "json.encode: the JSON text would be longer than 64 MiB" in error
    assert peak.growth < 4 * 64 * MiB, f"runner grew by {peak.growth / MiB:.0f} MiB"


def test_json_item_caps_refuse_before_the_runner_holds_the_items(lua: Lua) -> None:
    count = MAX_JSON_ITEMS + 10
    with PeakRss() as peak:
        error = lua.error(f'return json.decode("[" .. string.rep("[],", {count}) .. "[]]")')
    assert f"json.decode: the text has more than {MAX_JSON_ITEMS} items" in error
    assert peak.growth < 64 * MiB, f"runner grew by {peak.growth / MiB:.0f} MiB"
    error = lua.error(f"local t = {{}}; for i = 1, {count} do t[i] = i end; json.encode(t)")
    assert f"json.encode: the value has more than {MAX_JSON_ITEMS} items" in error
    # Commas inside strings are not items.
    assert lua.run(f'return #json.decode("[\\"" .. string.rep(",", {count}) .. "\\"]")[1]') == (
        count
    )


def test_json_decode_refuses_a_text_over_a_sixteenth_of_the_lua_memory(lua: Lua) -> None:
    error = lua.error('return json.decode("\\"" .. string.rep("x", 17 * 1024 * 1024) .. "\\"")')
    assert "json.decode: the text is 17825794 characters long, over the limit of 16 MiB" in error
    assert lua.run('return #json.decode("\\"" .. string.rep("x", 8 * 1024 * 1024) .. "\\"")') == (
        8 * MiB
    )


# --- process.parallel ------------------------------------------------------------------


def test_parallel_keeps_at_most_64_calls_in_flight_whatever_max_says(tmp_path: Path) -> None:
    lua = Lua(tmp_path)
    backend = lua.ctx.backend
    assert isinstance(backend, FakeBackend)
    # Every command waits until MAX_PARALLEL of them run at once, so the peak is
    # reached for sure, and would show if a 65th could start.
    gate = threading.Event()
    backend.script("work", lambda _c, r: FakeCommand(stdout=r.argv[1] + "\n", gate=gate))
    opener = threading.Thread(
        target=lambda: (backend.wait_for(lambda b: b.running == MAX_PARALLEL), gate.set())
    )
    opener.start()
    process_module.install(lua.sandbox, lua.ctx)
    try:
        result = lua.run(
            """
            local items, waiting, most = {}, 0, 0
            for i = 1, 150 do items[i] = i end
            local out = process.parallel(items, function(n)
              waiting = waiting + 1
              if waiting > most then most = waiting end
              local r = process.run({ "work", tostring(n), capture_stdout = true })
              waiting = waiting - 1
              return (r.stdout:gsub("\\n$", ""))
            end, { max = 1000000 })
            return most, table.concat(out, ",")
            """
        )
    finally:
        gate.set()
        opener.join()
        for close in lua.ctx.closers:
            close()
    most, joined = result
    assert most == MAX_PARALLEL
    assert joined == ",".join(str(i) for i in range(1, 151))
    assert backend.peak == MAX_PARALLEL


# --- stage errors ---------------------------------------------------------------------


def test_a_huge_stage_error_is_stored_cut_and_logged_whole(tmp_path: Path) -> None:
    from rivet.engine.executor import Executor, ExecutorSettings, JobSpec

    source = (
        "return pipeline.define({ name = 'p', stages = { { name = 's', script = function()\n"
        'error("boom " .. string.rep("e", 300000) .. " end")\nend } } })'
    )
    events = EventLog()
    executor = Executor(FakeBackend(), ExecutorSettings(workspace_root=tmp_path))
    result = executor.run(JobSpec("err-job", source, "t.lua", {}), events)
    stage = result.stages[0]
    assert stage.status == "failed" and stage.error is not None
    assert len(stage.error) < MAX_ERROR_CHARS + 200
    assert stage.error.endswith("more characters; the whole text is in the job's log]")
    assert result.error is not None and len(result.error) < MAX_ERROR_CHARS + 300
    # The cut errors, note included, are within the server's cap on an error.
    StageUpdate(name="s", status="failed", error=stage.error)
    JobCompletion(status="failed", error=result.error)
    assert MAX_ERROR_CHARS + 300 < limits.MAX_ERROR
    logged = "".join(events.messages())
    assert "e" * 300000 + " end" in logged
    assert max(len(m) for m in events.messages()) <= limits.MAX_LOG_MESSAGE
