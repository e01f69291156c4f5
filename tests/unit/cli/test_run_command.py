"""``rivet run`` without Podman: the executor is replaced by a scripted fake, so these
tests cover input handling, prompting, rendering, exit codes and Ctrl-C wiring."""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from rivet.cli import common
from rivet.cli.run import _run_with_ctrl_c
from rivet.domain.status import JobStatus, StageStatus
from rivet.engine.events import CancelToken, JobEvents, JobResult, LogEvent, StageResult
from rivet.stop_signals import STOP_SIGNALS

Invoke = Callable[..., Result]
LuaFile = Callable[[str, str], Path]

PIPELINE = """return pipeline.define({
  name = "prompted",
  inputs = {
    flag = { type = "bool", description = "turn it on?" },
    jobs = { type = "number", options = { 1, 2, 4 }, description = "parallelism" },
    name = { type = "string", description = "who to greet" },
    extra = { type = "string", default = "x" },
  },
  stages = {
    { name = "build", script = function() end },
    { name = "test-suite", script = function() end },
  },
})
"""

SIMPLE = """return pipeline.define({
  name = "simple",
  inputs = { who = { type = "string", default = "world" } },
  stages = {
    { name = "build", script = function() end },
    { name = "test-suite", script = function() end },
  },
})
"""

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@dataclass
class Script:
    """What the fake executor does: its log lines, stage outcomes and result."""

    status: JobStatus = JobStatus.SUCCEEDED
    stages: list[tuple[str, StageStatus]] = field(
        default_factory=lambda: [
            ("build", StageStatus.SUCCEEDED),
            ("test-suite", StageStatus.SKIPPED),
        ]
    )
    lines: list[tuple[str | None, str, str]] = field(
        default_factory=lambda: [("build", "info", "compiling [1/2]"), ("build", "error", "oops")]
    )
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    wait_for_cancel: bool = False
    calls: list[Any] = field(default_factory=list)


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Script:
    plan = Script()

    class FakeExecutor:
        def __init__(self, backend: object, settings: Any) -> None:
            self.settings = settings

        def run(self, job: Any, events: JobEvents, cancel: CancelToken) -> JobResult:
            plan.calls.append((job, self.settings))
            results = []
            seq = 0
            for index, (name, status) in enumerate(plan.stages):
                stage = StageResult(
                    name, StageStatus.RUNNING, started_at=T0 + timedelta(seconds=index)
                )
                events.stage_started(stage)
                for stage_name, level, message in plan.lines:
                    if stage_name == name:
                        seq += 1
                        events.log(LogEvent(seq, stage.started_at or T0, name, level, message))  # type: ignore[arg-type]
                if plan.wait_for_cancel and index == 0:
                    os.kill(os.getpid(), signal.SIGINT)
                    assert cancel.wait(10), "Ctrl-C did not cancel the job"
                    status = StageStatus.CANCELLED
                stage.status = status
                stage.finished_at = T0 + timedelta(seconds=index, milliseconds=250)
                events.stage_finished(stage)
                results.append(stage)
                if plan.wait_for_cancel:
                    return JobResult(JobStatus.CANCELLED, results, error=cancel.reason)
            return JobResult(plan.status, results, dict(plan.outputs), plan.error)

    monkeypatch.setattr("rivet.engine.executor.Executor", FakeExecutor)
    monkeypatch.setattr("rivet.engine.backends.podman.PodmanBackend", lambda: object())
    return plan


def interactive(monkeypatch: pytest.MonkeyPatch, value: bool = True) -> None:
    monkeypatch.setattr(common, "is_interactive", lambda: value)


# --- inputs ----------------------------------------------------------------------------


def test_missing_inputs_without_a_terminal_are_all_named(
    invoke: Invoke, lua_file: LuaFile, script: Script
) -> None:
    result = invoke(["run", str(lua_file("p.lua", PIPELINE))])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: invalid inputs: ")
    for name in ("flag", "jobs", "name"):
        assert f"{name}: required" in result.stderr
    assert "extra" not in result.stderr
    assert script.calls == []


def test_bad_inputs_are_named_in_one_line(
    invoke: Invoke, lua_file: LuaFile, script: Script
) -> None:
    path = lua_file("p.lua", PIPELINE)
    args = ["run", str(path), "-i", "flag=maybe", "-i", "jobs=3", "-i", "name=x", "-i", "typo=1"]
    result = invoke(args)
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert "flag: expected a bool" in line
    assert "jobs: 3 is not one of the options (1, 2, 4)" in line
    assert "typo: unknown input" in line
    assert script.calls == []


def test_input_without_equals_is_a_usage_error(
    invoke: Invoke, lua_file: LuaFile, script: Script
) -> None:
    result = invoke(["run", str(lua_file("s.lua", SIMPLE)), "--input", "who"])
    assert result.exit_code == 2
    assert result.stderr == "error: --input 'who': expected NAME=VALUE (e.g. --input branch=main)\n"


def test_input_given_twice_is_a_usage_error(
    invoke: Invoke, lua_file: LuaFile, script: Script
) -> None:
    result = invoke(["run", str(lua_file("s.lua", SIMPLE)), "-i", "who=a", "-i", "who=b"])
    assert result.exit_code == 2
    assert "--input who: given twice" in result.stderr


def test_values_are_typed_and_may_contain_equals(
    invoke: Invoke, lua_file: LuaFile, script: Script
) -> None:
    path = lua_file("p.lua", PIPELINE)
    result = invoke(["run", str(path), "-i", "flag=YES", "-i", "jobs=4", "-i", "name=a=b"])
    assert result.exit_code == 0, result.output
    job, _ = script.calls[0]
    assert job.inputs == {"flag": True, "jobs": 4, "name": "a=b", "extra": "x"}


def test_prompts_for_missing_inputs_and_re_asks(
    invoke: Invoke, lua_file: LuaFile, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    interactive(monkeypatch)
    path = lua_file("p.lua", PIPELINE)
    # flag: "maybe" is rejected, then "yes"; jobs: 7 is not an option, "x" not a
    # number, then 4; name: empty is re-asked, then a value with spaces.
    answers = "maybe\nyes\n7\nx\n4\n\nJane Doe\n"
    result = invoke(["run", str(path)], input=answers)
    assert result.exit_code == 0, result.output
    job, _ = script.calls[0]
    assert job.inputs == {"flag": True, "jobs": 4, "name": "Jane Doe", "extra": "x"}
    prompts = result.stderr
    assert "input flag (bool, required): turn it on?" in prompts
    assert "flag [yes/no]: " in prompts
    assert "input jobs (number, required): parallelism" in prompts
    assert "options: 1, 2, 4" in prompts
    assert "input name (string, required): who to greet" in prompts
    assert prompts.count("invalid:") == 3
    assert "7 is not one of the options (1, 2, 4)" in prompts
    assert "a value is required" in prompts
    # prompts follow the order of the definition, and nothing asks for `extra`
    assert prompts.index("input flag") < prompts.index("input jobs") < prompts.index("input name")
    assert "input extra" not in prompts


def test_prompting_only_asks_for_what_is_missing(
    invoke: Invoke, lua_file: LuaFile, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    interactive(monkeypatch)
    path = lua_file("p.lua", PIPELINE)
    result = invoke(["run", str(path), "-i", "flag=no", "-i", "jobs=1"], input="bob\n")
    assert result.exit_code == 0, result.output
    assert script.calls[0][0].inputs["name"] == "bob"
    assert "input flag" not in result.stderr


def test_bad_given_values_fail_before_any_prompt(
    invoke: Invoke, lua_file: LuaFile, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    interactive(monkeypatch)
    result = invoke(["run", str(lua_file("p.lua", PIPELINE)), "-i", "jobs=3"], input="yes\n")
    assert result.exit_code == 2
    assert "input flag (" not in result.stderr
    assert "jobs: 3 is not one of the options" in result.stderr


def test_end_of_input_while_prompting_is_an_input_error(
    invoke: Invoke, lua_file: LuaFile, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    interactive(monkeypatch)
    result = invoke(["run", str(lua_file("p.lua", PIPELINE))], input="yes\n")
    assert result.exit_code == 2
    assert "jobs: no value given (end of input)" in result.stderr


# --- output and exit codes ---------------------------------------------------------------

# TIME STAGE LEVEL STREAM MESSAGE (the stream "err" or blank, 3 wide)
LINE = re.compile(
    r"^(?:\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\.\d{3} (?P<stage>\S+ *) (?P<level>\S+ *) (?P<stream>err|   ) "
    r"(?P<message>.*)$"
)


def test_log_lines_stage_markers_and_summary(
    invoke: Invoke, lua_file: LuaFile, script: Script
) -> None:
    script.outputs = {"version": "1.2.3", "ok": True}
    result = invoke(["run", str(lua_file("s.lua", SIMPLE))])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    logged = [m for m in map(LINE.match, lines) if m and not m["level"].startswith("--")]
    assert [(m["stage"], m["level"], m["message"]) for m in logged] == [
        ("build     ", "info   ", "compiling [1/2]"),
        ("build     ", "error  ", "oops"),
    ]
    # the job's lines are of another day than today: each says its date
    day = f"{T0.astimezone():%Y-%m-%d} "
    assert all(line.startswith(day) for line in lines if LINE.match(line))
    assert any(re.match(r"^\S+ \S+ build      -- started$", line) for line in lines)
    assert any(re.match(r"^\S+ \S+ build      -- succeeded in 0\.25s$", line) for line in lines)
    assert any(re.match(r"^\S+ \S+ test-suite -- skipped in 0\.25s$", line) for line in lines)
    table = "\n".join(lines)
    assert re.search(r"build\s+│ succeeded │\s+0\.25s", table)
    assert re.search(r"test-suite │ skipped\s+│\s+0\.25s", table)
    assert re.search(r"ok\s+│ true", table) and re.search(r"version │ 1\.2\.3", table)
    assert lines[-1] == "job succeeded in 1.25s"
    assert "\x1b[" not in result.stdout  # no colour when not a terminal


def test_failed_job_exits_1_with_its_error(
    invoke: Invoke, lua_file: LuaFile, script: Script
) -> None:
    script.status = JobStatus.FAILED
    script.stages = [("build", StageStatus.FAILED)]
    script.error = "stage 'build' failed: boom"
    result = invoke(["run", str(lua_file("s.lua", SIMPLE))])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == "job failed in 0.25s: stage 'build' failed: boom"


def test_definition_errors_are_printed_like_check(
    invoke: Invoke, lua_file: LuaFile, script: Script
) -> None:
    path = lua_file("bad.lua", 'return pipeline.define({ name = "x", stages = {} })\n')
    result = invoke(["run", str(path)])
    assert result.exit_code == 1
    assert result.stderr == f"{path}:1: stages: expected a non-empty list of stages, got table\n"
    assert script.calls == []


def test_job_spec_and_settings(
    invoke: Invoke,
    lua_file: LuaFile,
    script: Script,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    path = lua_file("s.lua", SIMPLE)
    assert invoke(["run", str(path)]).exit_code == 0
    job, settings = script.calls[0]
    assert re.fullmatch(r"local-[0-9a-f]{8}", job.job_id)
    assert job.filename == str(path) and job.source == SIMPLE
    assert settings.workspace_root == isolated_env / "workspaces"
    assert settings.workspace_root.is_dir()
    assert settings.default_image == "alpine:latest"

    monkeypatch.setenv("RIVET_DEFAULT_IMAGE", "busybox:1")
    root = tmp_path / "ws"
    assert invoke(["run", str(path), "--workspace-root", str(root)]).exit_code == 0
    _, settings = script.calls[1]
    assert settings.default_image == "busybox:1"
    assert settings.workspace_root == root


def test_ctrl_c_cancels_and_exits_130(invoke: Invoke, lua_file: LuaFile, script: Script) -> None:
    script.wait_for_cancel = True
    result = invoke(["run", str(lua_file("s.lua", SIMPLE))])
    assert result.exit_code == 130
    assert "interrupted (Ctrl-C): cancelling the job" in result.stderr
    assert re.search(r"running pipeline simple as job local-[0-9a-f]{8}", result.stderr)
    assert "job cancelled" in result.stdout and "interrupted (Ctrl-C)" in result.stdout


@pytest.mark.parametrize(
    ("sig", "reason"),
    [
        (signal.SIGINT, "interrupted (Ctrl-C)"),
        (signal.SIGTERM, "interrupted (SIGTERM)"),
        (signal.SIGHUP, "interrupted (SIGHUP)"),
    ],
)
def test_stop_signals_cancel_and_the_wrapper_restores_the_handlers(
    sig: signal.Signals, reason: str
) -> None:
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    cancel = CancelToken()

    def work() -> JobResult:
        threading.Timer(0.05, os.kill, (os.getpid(), sig)).start()
        assert cancel.wait(10)
        return JobResult(JobStatus.CANCELLED)

    from rivet.cli.common import err_console

    result = _run_with_ctrl_c(work, cancel, err_console(), "local-test")
    assert result.status is JobStatus.CANCELLED
    assert cancel.reason == reason
    assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before


def test_executor_exceptions_reach_the_error_handler(
    invoke: Invoke, lua_file: LuaFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rivet.errors import ContainerError

    class Broken:
        def __init__(self, *args: object) -> None:
            pass

        def run(self, *args: object) -> JobResult:
            raise ContainerError("podman is not installed")

    monkeypatch.setattr("rivet.engine.executor.Executor", Broken)
    monkeypatch.setattr("rivet.engine.backends.podman.PodmanBackend", lambda: object())
    result = invoke(["run", str(lua_file("s.lua", SIMPLE))])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "error: podman is not installed"
    assert "Traceback" not in result.output
