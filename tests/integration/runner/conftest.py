"""Runner agents (in threads of the test process) against a real orchestrator.

The server is the real app under uvicorn (SQLite); its fallback poll interval is set
long, so a fast start proves the wake-up path rather than polling. Every pipeline a
test creates requires a tag unique to that test, so runners of different tests never
take each other's jobs. Agents are stopped, and their jobs' containers removed, even
when a test fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from live_rivet import Api, live_server, remove_job_containers, server_settings

from rivet.runner.agent import Agent
from rivet.runner.config import resolve_settings
from rivet.runner.logs import ShipperSettings
from rivet.settings import ClientGroup, JobsGroup, RunnerGroup, Setting

# start_agent(**options): the runner's flags by name.
FLAGS: dict[str, Setting[Any]] = {
    "server": ClientGroup.server,
    "token": RunnerGroup.token,
    "registration_token": RunnerGroup.registration_token,
    "name": RunnerGroup.name,
    "tags": RunnerGroup.tags,
    "concurrency": RunnerGroup.concurrency,
    "default_image": JobsGroup.default_image,
    "workspace_root": JobsGroup.workspace_root,
    "policy": JobsGroup.policy,
}

StartAgent = Callable[..., Agent]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("server")
    with live_server(server_settings(home, poll_interval=5.0)) as url:
        yield url


@pytest.fixture
def api(server_url: str) -> Iterator[Api]:
    client = Api(server_url)
    yield client
    client.close()


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def start_agent(api: Api, tmp_path: Path, tag: str) -> Iterator[StartAgent]:
    """``start_agent(**options)``: a registered, running agent offering ``t=<tag>``."""
    agents: list[Agent] = []

    def start(*, register: bool = True, home: Path | None = None, **options: Any) -> Agent:
        home = home or tmp_path / f"runner{len(agents)}"
        options.setdefault("tags", (f"t={tag}",))
        options.setdefault("server", api.url)
        if register:
            options.setdefault("registration_token", api.registration_token())
        flags = {FLAGS[name]: value for name, value in options.items()}
        settings = resolve_settings(flags, {"RIVET_HOME": str(home)})
        settings = replace(
            settings,
            heartbeat_interval=0.5,
            shipper=ShipperSettings(retry_initial=0.05, retry_cap=0.5),
        )
        agent = Agent(settings)
        agents.append(agent)
        agent.start()
        return agent

    yield start
    for agent in agents:
        agent.cancel_jobs("test teardown")
        agent.wait(30)
        agent.close()
        for job_id in agent.claimed:
            remove_job_containers(job_id)
