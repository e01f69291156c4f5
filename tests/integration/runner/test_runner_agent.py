"""A runner agent against the real orchestrator: claim, logs, stages, outputs, cancel,
tags, concurrency and graceful stop — with real Podman where commands run."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import pytest
from live_rivet import Api, podman_containers, tagged_pipeline, wait_for

from rivet.runner.agent import Agent

StartAgent = Callable[..., Agent]

podman = pytest.mark.podman


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


@podman
def test_job_runs_in_podman_with_logs_stages_and_outputs(
    podman_available: str, api: Api, tag: str, start_agent: StartAgent
) -> None:
    name = tagged_pipeline(
        api,
        tag,
        inputs='who = { type = "string" }, loud = { type = "bool", default = false }',
        stages="""
        { name = "prepare", script = function() log.info("preparing for " .. input.get("who")) end },
        { name = "build", script = function()
            local r = process.run({ "sh", "-c", "echo hello $WHO; echo warn >&2; uname -s",
                                    env = { WHO = input.get("who") } })
            output.set("exit", r.exit_code)
            output.set("who", input.get("who"))
          end },
        { name = "shout", condition = function() return input.get("loud") end,
          script = function() log.info("HELLO") end },
        { name = "report", script = function() log.info("built for " .. output.get("who")) end },
        """,
    )
    start_agent()
    job_id = api.launch(name, who="rivet")
    job = api.wait_finished(job_id, timeout=60)
    assert job["status"] == "succeeded", job
    assert job["outputs"] == {"exit": 0, "who": "rivet"}
    assert [(s["name"], s["status"]) for s in job["stages"]] == [
        ("prepare", "succeeded"),
        ("build", "succeeded"),
        ("shout", "skipped"),
        ("report", "succeeded"),
    ]
    assert all(s["started_at"] and s["finished_at"] for s in job["stages"])
    lines = api.logs(job_id)
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    by_message = {line["message"]: line for line in lines}
    expected = ["preparing for rivet", "hello rivet", "Linux", "built for rivet"]
    positions = [next(i for i, ln in enumerate(lines) if ln["message"] == m) for m in expected]
    assert positions == sorted(positions)
    assert by_message["hello rivet"]["stage"] == "build"
    # stderr at the normal level, and the pipe each line came from kept (stored on
    # both databases and given back by the API)
    assert (by_message["warn"]["level"], by_message["warn"]["stream"]) == ("info", "stderr")
    assert (by_message["hello rivet"]["level"], by_message["hello rivet"]["stream"]) == (
        "info",
        "stdout",
    )
    assert by_message["preparing for rivet"]["stream"] is None
    assert podman_containers(job_id) == []


@podman
def test_cancel_stops_a_running_sleep_and_removes_its_containers(
    podman_available: str, api: Api, tag: str, start_agent: StartAgent
) -> None:
    name = tagged_pipeline(
        api,
        tag,
        stages='{ name = "nap", script = function() log.info("napping");'
        ' process.run({ "sleep", "30" }); log.info("woke up") end }',
    )
    start_agent()
    job_id = api.launch(name)
    wait_for(lambda: podman_containers(job_id), timeout=30, what="the job's container")
    wait_for(lambda: any(ln["message"] == "napping" for ln in api.logs(job_id)), what="first line")
    asked = time.monotonic()
    assert api.cancel(job_id)["cancel_requested"] is True
    job = api.wait_finished(job_id, timeout=20)
    took = time.monotonic() - asked
    assert job["status"] == "cancelled", job
    assert [s["status"] for s in job["stages"]] == ["cancelled"]
    assert took < 10, f"cancel took {took:.1f} s"
    assert "woke up" not in [ln["message"] for ln in api.logs(job_id)]
    assert podman_containers(job_id) == []


def test_idle_runner_starts_a_job_within_milliseconds(
    api: Api, tag: str, start_agent: StartAgent
) -> None:
    name = tagged_pipeline(
        api, tag, stages='{ name = "s", script = function() log.info("hi") end }'
    )
    agent = start_agent()
    wait_for(lambda: agent.runner_id, what="registration")
    time.sleep(0.3)  # the runner is now waiting in its long poll
    delays = []
    for _ in range(5):
        job = api.wait_finished(api.launch(name))
        assert job["status"] == "succeeded"
        delays.append(seconds_between(job["created_at"], job["started_at"]))
        time.sleep(0.1)
    # The server's fallback poll is 5 s: anything well below it came through the wake-up.
    assert max(delays) < 2.5, delays


def test_runner_takes_only_jobs_its_tags_satisfy(
    api: Api, tag: str, start_agent: StartAgent
) -> None:
    stages = '{ name = "s", script = function() log.info("ran") end }'
    linux = tagged_pipeline(api, tag, stages, extra_tags=', { key = "os", value = "linux" }')
    windows = tagged_pipeline(api, tag, stages, extra_tags=', { key = "os", value = "windows" }')
    start_agent(tags=(f"t={tag}", "os=linux"))
    other = api.launch(windows)
    mine = api.launch(linux)
    assert api.wait_finished(mine)["status"] == "succeeded"
    time.sleep(0.5)
    assert api.job(other)["status"] == "queued"
    api.cancel(other)


@podman
def test_concurrency_runs_jobs_side_by_side(
    podman_available: str, api: Api, tag: str, start_agent: StartAgent
) -> None:
    name = tagged_pipeline(
        api, tag, stages='{ name = "s", script = function() process.run({ "sleep", "1" }) end }'
    )
    start_agent(concurrency=3)
    job_ids = [api.launch(name) for _ in range(3)]
    jobs = [api.wait_finished(j, timeout=60) for j in job_ids]
    assert [j["status"] for j in jobs] == ["succeeded"] * 3
    last_start = max(j["started_at"] for j in jobs)
    first_end = min(j["finished_at"] for j in jobs)
    assert last_start < first_end, "all three should have been running at the same time"


@podman
def test_stop_finishes_the_running_job_and_claims_no_more(
    podman_available: str, api: Api, tag: str, start_agent: StartAgent
) -> None:
    name = tagged_pipeline(
        api,
        tag,
        stages='{ name = "s", script = function() process.run({ "sleep", "1" });'
        ' log.info("done") end }',
    )
    agent = start_agent()
    running = api.launch(name)
    wait_for(lambda: api.job(running)["status"] == "running", what="the job to start")
    agent.stop()
    later = api.launch(name)
    assert agent.wait(30), "the agent should end once its job is done"
    job = api.job(running)
    assert job["status"] == "succeeded"
    assert "done" in [ln["message"] for ln in api.logs(running)]
    assert api.job(later)["status"] == "queued"
    api.cancel(later)


@podman
def test_cancel_jobs_on_shutdown_reports_them_cancelled(
    podman_available: str, api: Api, tag: str, start_agent: StartAgent
) -> None:
    name = tagged_pipeline(
        api, tag, stages='{ name = "s", script = function() process.run({ "sleep", "30" }) end }'
    )
    agent = start_agent()
    job_id = api.launch(name)
    wait_for(lambda: podman_containers(job_id), timeout=30, what="the job's container")
    agent.cancel_jobs("the runner is shutting down")
    assert agent.wait(20)
    job = api.job(job_id)
    assert job["status"] == "cancelled" and "shutting down" in (job["error"] or "")
    assert podman_containers(job_id) == []
