"""``rivet job launch/list/show/cancel/logs`` against a real ``rivet server``, with a
runner played through the runner API so that jobs run, log and finish."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from rivet.cli import common

Cli = Callable[..., Result]
Exe = Callable[..., subprocess.CompletedProcess[str]]


def pipeline_source(name: str, lane: str) -> str:
    return f"""return pipeline.define({{
  name = "{name}",
  inputs = {{
    image = {{ type = "string", description = "image to test" }},
    jobs = {{ type = "number", default = 2, options = {{ 1, 2, 4 }} }},
    verbose = {{ type = "bool", default = false }},
  }},
  runner = {{ {{ key = "lane", value = "{lane}" }} }},
  stages = {{
    {{ name = "build", script = function() end }},
    {{ name = "unit-tests", script = function() end }},
  }},
}})
"""


@pytest.fixture
def pipeline(cli: Cli, tmp_path: Path) -> tuple[str, str]:
    """A fresh pipeline only a runner with its own ``lane`` tag can claim: (name, lane)."""
    name = f"jobs-{uuid.uuid4().hex[:8]}"
    lane = uuid.uuid4().hex
    path = tmp_path / f"{name}.lua"
    path.write_text(pipeline_source(name, lane))
    assert cli(["pipeline", "create", str(path)]).exit_code == 0
    return name, lane


def launched_id(result: Result) -> str:
    assert result.exit_code == 0, result.output
    match = re.search(r"launched job ([0-9a-f]{32})", result.stdout)
    assert match, result.stdout
    return match.group(1)


def test_launch_with_inputs_then_list_and_show_by_prefix(
    cli: Cli, pipeline: tuple[str, str]
) -> None:
    name, _ = pipeline
    job_id = launched_id(cli(["job", "launch", name, "-i", "image=alpine", "-i", "jobs=4"]))
    short = job_id[:6]

    listed = cli(["job", "list", "--pipeline", name])
    assert listed.exit_code == 0
    assert re.search(rf"^{job_id[:8]}\s+│ {name} v1\s+│ queued", listed.stdout, re.M)
    assert (
        cli(["job", "list", "--pipeline", name, "--status", "running"]).stdout == "no jobs match\n"
    )

    shown = cli(["job", "show", short])
    assert shown.exit_code == 0
    assert f"job {job_id}  queued" in shown.stdout
    assert re.search(r"image\s+│ alpine", shown.stdout)
    assert re.search(r"jobs\s+│ 4", shown.stdout) and re.search(r"verbose\s+│ false", shown.stdout)
    data = json.loads(cli(["job", "show", short, "--json"]).stdout)
    assert data["inputs"] == {"image": "alpine", "jobs": 4, "verbose": False}


def test_quiet_launch_prints_only_the_id(cli: Cli, pipeline: tuple[str, str]) -> None:
    result = cli(["job", "launch", pipeline[0], "-i", "image=x", "-q"])
    assert result.exit_code == 0
    assert re.fullmatch(r"[0-9a-f]{32}\n", result.stdout)


def test_bad_inputs_are_one_line_naming_every_one(cli: Cli, pipeline: tuple[str, str]) -> None:
    name, _ = pipeline
    result = cli(
        ["job", "launch", name, "-i", "jobs=3", "-i", "verbose=perhaps", "-i", "colour=red"]
    )
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("error: invalid inputs: ")
    for fragment in (
        "colour: unknown input",
        "image: required string input is missing",
        "jobs: 3 is not one of the options (1, 2, 4)",
        "verbose: expected a bool",
    ):
        assert fragment in line
    assert cli(["job", "list", "--pipeline", name]).stdout == "no jobs match\n"


def test_bad_inputs_from_the_console_script(rivet_exe: Exe, pipeline: tuple[str, str]) -> None:
    proc = rivet_exe(["job", "launch", pipeline[0], "--input", "jobs=x"])
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "image: required string input is missing" in proc.stderr
    assert "jobs: expected a number, got 'x'" in proc.stderr


def test_launch_prompts_for_missing_inputs_on_a_terminal(
    cli: Cli, pipeline: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "is_interactive", lambda: True)
    result = cli(["job", "launch", pipeline[0], "-i", "jobs=1"], input="\nbusybox\n")
    job_id = launched_id(result)
    assert "input image (string, required): image to test" in result.stderr
    assert "a value is required" in result.stderr
    assert "input jobs" not in result.stderr
    shown = json.loads(cli(["job", "show", job_id, "--json"]).stdout)
    assert shown["inputs"]["image"] == "busybox" and shown["inputs"]["jobs"] == 1


def test_cancel_a_queued_job(cli: Cli, pipeline: tuple[str, str]) -> None:
    job_id = launched_id(cli(["job", "launch", pipeline[0], "-i", "image=x"]))
    cancelled = cli(["job", "cancel", job_id[:5]])
    assert cancelled.exit_code == 0
    assert cancelled.stdout == f"job {job_id}: cancelled\n"
    again = cli(["job", "cancel", job_id[:5]])
    assert again.exit_code == 1
    assert again.stderr.startswith(f"error: job {job_id} has already")
    follow = cli(["job", "logs", job_id, "--follow"])
    assert follow.exit_code == 130
    assert "job cancelled" in follow.stdout


def test_unknown_job_ids(cli: Cli) -> None:
    result = cli(["job", "show", "ffffffffff"])
    assert result.exit_code == 1
    assert result.stderr == "error: no job with id 'ffffffffff'\n"
    short = cli(["job", "show", "ab"])
    assert short.exit_code == 1 and "give at least 4 characters" in short.stderr


# --- with a played runner (conftest.PlayedRunner) --------------------------------------


LOG_LINE = re.compile(r"^(?:\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\.\d{3} (\S+)\s+(\S+)\s+(.*)$")


def logged(text: str) -> list[tuple[str, str, str]]:
    found = []
    for line in text.splitlines():
        match = LOG_LINE.match(line)
        if match and match.group(2) != "--":
            found.append((match.group(1), match.group(2), match.group(3)))
    return found


def test_follow_streams_lines_and_exits_with_the_job_status(
    cli: Cli, played_runner: Any, pipeline: tuple[str, str]
) -> None:
    name, lane = pipeline
    runner = played_runner(lane)
    job_id = launched_id(cli(["job", "launch", name, "-i", "image=alpine"]))
    assert runner.claim()["job_id"] == job_id

    def play() -> None:
        time.sleep(0.5)  # the CLI is following by now
        runner.stage("build", "running")
        runner.log(1, "build", "compiling")
        runner.log(2, "build", "warning: deprecated", "warning")
        runner.stage("build", "succeeded")
        runner.stage("unit-tests", "running")
        runner.log(3, "unit-tests", "1 test failed", "error")
        runner.stage("unit-tests", "failed")
        runner.complete("failed", "stage 'unit-tests' failed: 1 test failed", coverage=81)

    player = threading.Thread(target=play)
    player.start()
    followed = cli(["job", "logs", job_id[:8], "--follow"])
    player.join()
    assert followed.exit_code == 1, followed.output
    assert logged(followed.stdout) == [
        ("build", "info", "compiling"),
        ("build", "warning", "warning: deprecated"),
        ("unit-tests", "error", "1 test failed"),
    ]
    assert re.search(r"build\s+-- succeeded", followed.stdout)
    assert re.search(r"unit-tests -- failed", followed.stdout)
    assert re.search(r"coverage │ 81", followed.stdout)
    assert followed.stdout.splitlines()[-1].startswith(
        "job failed in "
    ) and followed.stdout.rstrip().endswith("stage 'unit-tests' failed: 1 test failed")

    # afterwards: the stored log without --follow, and from a sequence number
    stored = cli(["job", "logs", job_id])
    assert stored.exit_code == 0
    assert [m for _, _, m in logged(stored.stdout)] == [
        "compiling",
        "warning: deprecated",
        "1 test failed",
    ]
    tail = cli(["job", "logs", job_id, "--after", "2"])
    assert [m for _, _, m in logged(tail.stdout)] == ["1 test failed"]
    again = cli(["job", "logs", job_id, "--follow"])
    assert again.exit_code == 1

    shown = cli(["job", "show", job_id])
    assert re.search(r"build\s+│ succeeded", shown.stdout)
    assert re.search(r"unit-tests │ failed", shown.stdout)
    assert "error: stage 'unit-tests' failed" in shown.stdout
    assert re.search(rf"{job_id[:8]}\s+│ {name} v1\s+│ failed", cli(["job", "list"]).stdout)


def _log_body(stdout: str) -> list[str]:
    """The lines and markers a follow printed: everything before the summary."""
    return stdout.split("\n\n", 1)[0].splitlines()


def test_follow_of_a_finished_job_prints_in_stored_order_with_one_column_width(
    cli: Cli, played_runner: Any, pipeline: tuple[str, str]
) -> None:
    name, lane = pipeline
    runner = played_runner(lane)
    job_id = launched_id(cli(["job", "launch", name, "-i", "image=alpine"]))
    runner.claim()
    runner.stage("build", "running")
    runner.log(1, "build", "compiling", stream="stdout")
    runner.log(2, "build", "progress 50%", stream="stderr")
    runner.stage("build", "succeeded")
    runner.stage("unit-tests", "running")
    runner.log(3, "unit-tests", "1 test failed", "error")
    runner.stage("unit-tests", "failed", "1 test failed")
    runner.log(4, None, "cleaning up")
    runner.complete("failed", "stage 'unit-tests' failed: 1 test failed")

    followed = cli(["job", "logs", job_id, "--follow"])
    assert followed.exit_code == 1, followed.output
    body = _log_body(followed.stdout)
    # without the time, and durations that depend on the machine
    shown = [re.sub(r"^(\d{4}-\d\d-\d\d )?\S+ | in \d+\.\d\ds", "", line) for line in body]
    assert shown == [
        "build      -- started",
        "build      info        compiling",
        "build      info    err progress 50%",
        "build      -- succeeded",
        "unit-tests -- started",
        "unit-tests error       1 test failed",
        "unit-tests -- failed: 1 test failed",
        "job        info        cleaning up",
    ], followed.stdout
    # every line has its time: markers too, and in the same column
    assert all(re.match(r"(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\.\d{3} ", line) for line in body)
    # following again prints the same, byte for byte
    again = cli(["job", "logs", job_id[:8], "--follow"])
    assert _log_body(again.stdout) == body
    # and without --follow the same lines (no markers)
    stored = cli(["job", "logs", job_id])
    assert stored.stdout.splitlines() == [line for line in body if " -- " not in line]


def test_launch_follow_exits_0_on_success_and_cancel_of_running_job(
    cli: Cli, played_runner: Any, pipeline: tuple[str, str]
) -> None:
    name, lane = pipeline
    runner = played_runner(lane)

    def play() -> None:
        runner.claim()
        runner.stage("build", "running")
        runner.log(1, "build", "done")
        runner.stage("build", "succeeded")
        runner.stage("unit-tests", "running")
        runner.stage("unit-tests", "succeeded")
        runner.complete("succeeded")

    player = threading.Thread(target=play)
    player.start()
    result = cli(["job", "launch", name, "-i", "image=alpine", "--follow"])
    player.join()
    assert result.exit_code == 0, result.output
    assert ("build", "info", "done") in logged(result.stdout)
    assert result.stdout.splitlines()[-1].startswith("job succeeded")

    # a running job: cancel only asks; the runner hears it and reports cancelled
    job_id = launched_id(cli(["job", "launch", name, "-i", "image=alpine"]))
    runner.claim()
    runner.stage("build", "running")
    asked = cli(["job", "cancel", job_id[:7]])
    assert asked.exit_code == 0
    assert asked.stdout.startswith(f"job {job_id}: cancel requested")
    assert "(cancelling)" in cli(["job", "show", job_id]).stdout
    beat = runner.http.post(f"/api/runner/jobs/{job_id}/heartbeat")
    assert beat.json()["cancel_requested"] is True
    runner.stage("build", "cancelled")
    runner.complete("cancelled", "cancelled by a user")
    assert cli(["job", "logs", job_id, "--follow"]).exit_code == 130


def test_times_carry_their_zone_and_old_log_lines_their_date(
    cli: Cli, played_runner: Any, pipeline: tuple[str, str]
) -> None:
    name, lane = pipeline
    runner = played_runner(lane)
    job_id = launched_id(cli(["job", "launch", name, "-i", "image=alpine"]))
    runner.claim()
    old = datetime.now(UTC) - timedelta(days=2)
    line = {"seq": 1, "ts": old.isoformat(), "stage": "build", "level": "info", "message": "old"}
    runner.post("logs", {"lines": [line]})
    runner.log(2, "build", "new")
    runner.complete("succeeded")

    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    listed = cli(["job", "list", "--utc"]).stdout
    assert re.search(rf"{job_id[:8]}\s+│ {name} v1\s+│ succeeded │ {stamp}Z ", listed)
    shown = cli(["job", "show", job_id]).stdout
    assert re.search(rf"created\s+{stamp}[+-]\d\d:\d\d\s*$", shown, re.M)  # local, with its offset
    assert re.search(rf"created\s+{stamp}Z\s*$", cli(["job", "show", job_id, "--utc"]).stdout, re.M)

    # a log that began two days ago: every line says its date (one column width)
    logs = cli(["job", "logs", job_id, "--utc"]).stdout.splitlines()
    assert logs[0].startswith(f"{old:%Y-%m-%d} {old:%H:%M:%S}.")
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z build", logs[1])
    assert logs[1].endswith(" new")
    followed = cli(["job", "logs", job_id, "--follow", "--utc"]).stdout
    assert followed.startswith(f"{old:%Y-%m-%d} {old:%H:%M:%S}.")


def test_a_dashed_uuid_or_its_start_names_a_job(cli: Cli, pipeline: tuple[str, str]) -> None:
    name, _ = pipeline
    job_id = launched_id(cli(["job", "launch", name, "-i", "image=alpine"]))
    dashed = str(uuid.UUID(hex=job_id))
    for ref in (dashed, dashed[:13]):
        shown = cli(["job", "show", ref])
        assert shown.exit_code == 0, shown.output
        assert shown.stdout.startswith(f"job {job_id}")
    wrong = cli(["job", "show", f"{job_id[:4]}-{job_id[4:8]}"])
    assert wrong.exit_code == 1
    assert "ids are hex" in wrong.stderr
