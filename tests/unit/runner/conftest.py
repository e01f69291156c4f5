"""A real orchestrator (``create_app`` under uvicorn on a loopback port, SQLite) per
module, and a job claimed by a freshly registered runner per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from live_rivet import Api, ClaimedJob, claim_new_job, live_server, server_settings


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("server")
    with live_server(server_settings(home)) as url:
        yield url


@pytest.fixture
def api(server_url: str) -> Iterator[Api]:
    client = Api(server_url)
    yield client
    client.close()


@pytest.fixture
def claimed_job(api: Api) -> ClaimedJob:
    return claim_new_job(api)
