"""A runner against a server with the smallest body limit it may have: what does not
fit is still reported, never left hanging (the job ends, the log has no holes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from live_rivet import Api, live_server, server_settings, tagged_pipeline

from rivet import limits
from rivet.runner.agent import Agent

StartAgent = Callable[..., Agent]

SMALL = limits.MAX_SOURCE_BYTES + 64 * 1024


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("server")
    with live_server(server_settings(home, poll_interval=5.0, max_body_bytes=SMALL)) as url:
        yield url


def test_a_result_too_large_for_the_server_fails_the_job_saying_why(
    api: Api, tag: str, start_agent: StartAgent
) -> None:
    """Five outputs of 50,000 control characters pass output.set (250 KB of 1 MiB) but
    JSON writes each as a 6-byte escape (1.5 MB), over this server's limit: the runner
    reports the job failed, naming the refusal, instead of leaving it running."""
    name = tagged_pipeline(
        api,
        tag,
        stages='{ name = "make", script = function() for i = 1, 5 do'
        ' output.set("o" .. i, string.rep("\\1", 50000)) end end }',
    )
    start_agent()
    job = api.wait_finished(api.launch(name), timeout=60)
    assert job["status"] == "failed", job["status"]
    assert job["outputs"] == {}
    assert "the server refused the job's result" in job["error"]
    assert f"at most {SMALL} bytes" in job["error"]


def test_log_lines_too_large_together_all_arrive(
    api: Api, tag: str, start_agent: StartAgent
) -> None:
    """Forty lines of 60,000 '€' (7 MB) reach the shipper as one batch by line count;
    the server refuses it (413) and the halves are sent until every line is stored."""
    name = tagged_pipeline(
        api,
        tag,
        stages='{ name = "talk", script = function() for i = 1, 40 do'
        ' log.info(i .. ":" .. string.rep("€", 60000)) end end }',
    )
    start_agent()
    job_id = api.launch(name)
    job = api.wait_finished(job_id, timeout=120)
    assert job["status"] == "succeeded", job
    lines = [line for line in api.logs(job_id) if ":" in line["message"]]
    assert [int(line["message"].split(":")[0]) for line in lines] == list(range(1, 41))
    assert all(len(line["message"]) == len(f"{i}:") + 60000 for i, line in enumerate(lines, 1))
