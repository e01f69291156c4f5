"""Registration: a one-time token is exchanged once for a permanent token, saved with
mode 0600, and used by later starts without the registration token."""

from __future__ import annotations

import logging
import stat
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from live_rivet import ADMIN, Api, podman_containers, save_bogus_token, tagged_pipeline, wait_for

from rivet.runner.agent import Agent

StartAgent = Callable[..., Agent]
STAGES = '{ name = "s", script = function() log.info("ran") end }'


def test_token_is_saved_0600_and_reused_on_the_next_start(
    api: Api, tag: str, tmp_path: Path, start_agent: StartAgent
) -> None:
    name = tagged_pipeline(api, tag, STAGES)
    home = tmp_path / "home"
    first = start_agent(home=home)
    assert api.wait_finished(api.launch(name))["status"] == "succeeded"
    first.stop()
    assert first.wait(10) and first.exit_code == 0

    config = home / "runner.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    saved = tomllib.loads(config.read_text())
    assert saved["server"] == api.url and saved["token"].startswith("rivet_runner_")
    assert saved["runner_id"] == first.runner_id

    # No registration token this time: the saved one must be enough.
    second = start_agent(home=home, register=False)
    job = api.wait_finished(api.launch(name))
    assert job["status"] == "succeeded" and job["runner_id"] == first.runner_id
    assert second.runner_id == first.runner_id
    assert [r["id"] for r in api.runners()].count(first.runner_id) == 1


def test_a_used_registration_token_stops_the_runner_with_a_clear_error(
    api: Api, tmp_path: Path, start_agent: StartAgent, caplog: pytest.LogCaptureFixture
) -> None:
    token = api.registration_token()
    first = start_agent(home=tmp_path / "a", registration_token=token)
    wait_for(lambda: first.runner_id, what="registration")
    with caplog.at_level(logging.ERROR, logger="rivet.runner"):
        second = start_agent(home=tmp_path / "b", registration_token=token)
        assert second.wait(10)
    assert second.exit_code == 1
    assert "registration failed" in caplog.text and "already used" in caplog.text
    assert not (tmp_path / "b" / "runner.toml").exists()


def test_a_runner_without_any_token_refuses_to_start(
    tmp_path: Path, start_agent: StartAgent, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="rivet.runner"):
        agent = start_agent(home=tmp_path / "none", register=False)
        assert agent.wait(10)
    assert agent.exit_code == 1 and "--registration-token" in caplog.text


def test_a_rejected_saved_token_is_replaced_using_the_registration_token(
    api: Api, tag: str, tmp_path: Path, start_agent: StartAgent
) -> None:
    home = tmp_path / "stale"
    save_bogus_token(home / "runner.toml", api.url)
    agent = start_agent(home=home)
    name = tagged_pipeline(api, tag, STAGES)
    assert api.wait_finished(api.launch(name))["status"] == "succeeded"
    saved = tomllib.loads((home / "runner.toml").read_text())
    assert saved["runner_id"] == agent.runner_id and saved["token"] != "rivet_runner_stale"


@pytest.mark.podman
def test_a_runner_removed_with_force_cancels_its_job_and_stops(
    podman_available: str,
    api: Api,
    tag: str,
    start_agent: StartAgent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``rivet runner remove --force`` of a runner at work: the server fails the job at
    once; the runner, refused at its next heartbeat (401 runner_removed), cancels it,
    and at its next claim stops with one clear line instead of registering again
    (it still holds a registration token)."""
    stages = '{ name = "long", script = function() process.run({ "sleep", "120" }) end }'
    name = tagged_pipeline(api, tag, stages)
    with caplog.at_level(logging.INFO, logger="rivet.runner"):
        agent = start_agent()
        job_id = api.launch(name)

        def running() -> bool:
            stages = api.job(job_id)["stages"]
            return stages[0]["status"] == "running"

        wait_for(running, 120, "the job to run")
        removed = api.http.delete(
            f"/api/runners/{agent.runner_id}", params={"force": "true"}, headers=ADMIN
        )
        assert removed.status_code == 200, removed.text
        assert agent.wait(90), "the removed runner did not stop"
    assert agent.exit_code == 1
    job = api.job(job_id)
    assert job["status"] == "failed" and "was removed" in job["error"]
    assert "this runner was removed by an admin" in caplog.text  # its job was cancelled
    stop = [r for r in caplog.records if r.levelno == logging.ERROR and "stopping:" in r.message]
    assert len(stop) == 1 and "was removed by an admin" in stop[0].message
    assert "registering again" not in caplog.text
    wait_for(lambda: podman_containers(job_id) == [], 60, "the job's containers to go")
