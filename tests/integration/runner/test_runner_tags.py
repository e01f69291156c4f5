"""A runner's tags are the ones the server stored at registration: a restart without
``--tag`` keeps them, and a restart with other tags warns that the server's apply
(real agents against a real server)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from live_rivet import ADMIN, Api, tagged_pipeline, wait_for

from rivet.runner.agent import Agent

StartAgent = Callable[..., Agent]
STAGES = '{ name = "s", script = function() log.info("ran") end }'


def registered(api: Api, tag: str, start_agent: StartAgent, home: Path) -> Agent:
    """A runner registered with ``t=<tag>`` that ran one job, then stopped."""
    first = start_agent(home=home)
    assert api.wait_finished(api.launch(tagged_pipeline(api, tag, STAGES)))["status"] == (
        "succeeded"
    )
    first.stop()
    assert first.wait(10) and first.exit_code == 0
    return first


def test_a_restarted_runner_without_tags_keeps_its_registered_tags(
    api: Api,
    tag: str,
    tmp_path: Path,
    start_agent: StartAgent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    home = tmp_path / "home"
    first = registered(api, tag, start_agent, home)
    with caplog.at_level(logging.INFO, logger="rivet.runner"):
        second = start_agent(home=home, register=False, tags=())  # no --tag this time
        job = api.wait_finished(api.launch(tagged_pipeline(api, tag, STAGES)))
    assert job["status"] == "succeeded" and job["runner_id"] == first.runner_id
    assert second.runner_id == first.runner_id
    assert f"tags t={tag} (as stored by the server)" in caplog.text
    assert "the server's tags apply" not in caplog.text  # nothing was configured


def test_a_runner_restarted_with_other_tags_warns_and_the_servers_tags_apply(
    api: Api,
    tag: str,
    tmp_path: Path,
    start_agent: StartAgent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    home = tmp_path / "home"
    first = registered(api, tag, start_agent, home)
    other = f"{tag}-other"
    # Queued first: FIFO claiming would hand it out first if the new tags applied.
    wanted_by_flag = api.launch(tagged_pipeline(api, other, STAGES))
    with caplog.at_level(logging.INFO, logger="rivet.runner"):
        start_agent(home=home, register=False, tags=(f"t={other}",))
        job = api.wait_finished(api.launch(tagged_pipeline(api, tag, STAGES)))
    assert job["status"] == "succeeded" and job["runner_id"] == first.runner_id
    assert api.job(wanted_by_flag)["status"] == "queued"
    api.cancel(wanted_by_flag)
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert warning.getMessage() == (
        f"this runner was started with tags t={other}, but the server has t={tag} for it "
        "and the server's tags apply (tags are fixed at registration); an admin changes "
        f"them with: rivet runner set-tags {first.runner_id[:8]} t={other}"
    )
    runners = {r["id"]: r for r in api.runners()}
    assert runners[first.runner_id]["tags"] == {"t": tag}


def test_tags_set_by_the_admin_reach_a_restarted_runner(
    api: Api, tag: str, tmp_path: Path, start_agent: StartAgent
) -> None:
    home = tmp_path / "home"
    first = registered(api, tag, start_agent, home)
    moved = f"{tag}-moved"
    changed = httpx.patch(
        f"{api.url}/api/runners/{first.runner_id}",
        json={"tags": {"t": moved}},
        headers=ADMIN,
        timeout=10,
    )
    assert changed.status_code == 200, changed.text
    agent = start_agent(home=home, register=False, tags=())
    wait_for(lambda: agent.runner_id, what="the runner to start")
    job = api.wait_finished(api.launch(tagged_pipeline(api, moved, STAGES)))
    assert job["status"] == "succeeded" and job["runner_id"] == first.runner_id
