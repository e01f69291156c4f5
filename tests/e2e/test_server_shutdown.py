"""`rivet server` on SIGTERM: waiting long polls and log streams end at once and
cleanly (a claim answers 204, a stream just closes), so shutdown takes well under
uvicorn's forced-close grace period and the log holds no tracebacks. SIGHUP and
SIGINT stop it the same way (exit 0, nothing lost)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from live_rivet import ADMIN, ADMIN_TOKEN, Api, free_port, wait_for
from rivet_processes import Processes, rivet_env, wait_ready

from rivet.stop_signals import signal_name

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
    # uvicorn re-raises the signal once it has shut down cleanly; it lands in Rivet's
    # own handler (rivet.stop_signals), so the server exits 0
    assert server.wait(timeout=20) == 0
    took = time.monotonic() - started
    for thread in threads:
        thread.join(timeout=20)

    assert answers == {"claim": 204, "stream": 200, "stream_closed": True}
    # Not a speed check: the claim asked to wait 30 s, so ending well before that
    # proves shutdown woke the waiter instead of waiting it out (loose under load).
    assert took < 15, f"shutdown took {took:.1f} s: the 30 s claim was waited out"
    assert "Traceback" not in server.output


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT, signal.SIGTERM], ids=signal_name)
def test_every_stop_signal_stops_the_server_cleanly(
    tmp_path: Path, processes: Processes, sig: signal.Signals
) -> None:
    """SIGHUP (a closed terminal, a dropped SSH session) stops a standalone ``rivet
    server`` like SIGINT and SIGTERM: a waiting claim answers 204, the application
    shuts down (lifespan end, database closed), the process exits 0 rather than dying
    of the signal, and what it stored is there when it starts again."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = rivet_env(tmp_path / "home", RIVET_ADMIN_TOKEN=ADMIN_TOKEN)
    server = processes.start(["server", "--port", str(port)], env, f"server-{sig.name}")
    wait_ready(url, server)
    api = Api(url)
    token = api.registration_token()
    registered = httpx.post(
        f"{url}/api/runners/register",
        json={"registration_token": token, "name": f"stop-{sig.name}"},
        timeout=10,
    ).json()
    api.create_pipeline(
        'return pipeline.define({ name = "kept", stages = { { name = "s", script = function() end } } })'
    )
    api.close()

    answers: dict[str, int] = {}

    def claim() -> None:
        answers["claim"] = httpx.post(
            f"{url}/api/runner/claim",
            headers={"Authorization": f"Bearer {registered['token']}"},
            json={"wait_seconds": 30},
            timeout=40,
        ).status_code

    waiting = threading.Thread(target=claim)
    waiting.start()
    # The claim checks the runner in (last_seen) before it waits: once that shows, the
    # claim is inside the server.
    wait_for(
        lambda: (
            httpx.get(f"{url}/api/runners/{registered['runner_id']}", headers=ADMIN, timeout=5)
            .json()
            .get("last_seen")
            is not None
        ),
        30,
        "the claim to reach the server",
    )
    server.signal(sig)
    assert server.wait(timeout=30) == 0, server.output[-3000:]
    waiting.join(timeout=30)
    assert answers == {"claim": 204}  # answered (nothing to claim), not cut off
    assert "Application shutdown complete" in server.output, server.output[-3000:]
    assert "Traceback" not in server.output

    again = processes.start(["server", "--port", str(port)], env, f"server-{sig.name}-again")
    wait_ready(url, again)
    shown = httpx.get(f"{url}/api/pipelines/kept", timeout=10)
    assert shown.status_code == 200 and shown.json()["name"] == "kept", shown.text
    again.signal(signal.SIGHUP)
    assert again.wait(timeout=30) == 0, again.output[-3000:]
