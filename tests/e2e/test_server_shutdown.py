"""`rivet server` on SIGTERM: waiting long polls and log streams end at once and
cleanly (a claim answers 204, a stream just closes), so shutdown takes well under
uvicorn's forced-close grace period and the log holds no tracebacks."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from live_rivet import ADMIN_TOKEN, Api, free_port
from rivet_processes import Processes, rivet_env, wait_ready

pytestmark = pytest.mark.e2e


def test_sigterm_drains_long_polls_and_streams(tmp_path: Path, processes: Processes) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = rivet_env(tmp_path / "home", RIVET_ADMIN_TOKEN=ADMIN_TOKEN)
    server = processes.start(["server", "--port", str(port)], env, "server")
    wait_ready(url, server)
    api = Api(url)
    token = api.registration_token()
    registered = httpx.post(
        f"{url}/api/runners/register",
        json={"registration_token": token, "name": "drain-test"},
        timeout=10,
    ).json()
    runner = {"Authorization": f"Bearer {registered['token']}"}
    # The job needs a tag the runner lacks: never claimed, so its log stream stays open.
    api.create_pipeline(
        'return pipeline.define({ name = "drain", runner = { { key = "os", value = "plan9" } },'
        ' stages = { { name = "s", script = function() end } } })'
    )
    queued = api.launch("drain")

    answers: dict[str, object] = {}

    def claim() -> None:
        answers["claim"] = httpx.post(
            f"{url}/api/runner/claim",
            headers=runner,
            json={"wait_seconds": 30},
            timeout=40,
        ).status_code

    def stream() -> None:
        with httpx.stream("GET", f"{url}/api/jobs/{queued}/logs/stream", timeout=40) as response:
            answers["stream"] = response.status_code
            for _ in response.iter_lines():
                pass
        answers["stream_closed"] = True

    threads = [threading.Thread(target=claim), threading.Thread(target=stream)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # both are now waiting inside the server

    api.close()
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    # uvicorn re-raises the signal once it has shut down cleanly
    assert server.wait(timeout=20) in (0, -signal.SIGTERM)
    took = time.monotonic() - started
    for thread in threads:
        thread.join(timeout=20)

    assert answers == {"claim": 204, "stream": 200, "stream_closed": True}
    assert took < 2.5, f"shutdown took {took:.1f} s"
    assert "Traceback" not in server.output
