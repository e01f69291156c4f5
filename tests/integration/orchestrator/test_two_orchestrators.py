"""Two orchestrator processes on one PostgreSQL serve the same runners and clients.

Both servers run with a 10 s polling fallback, so a wake-up well under that proves
LISTEN/NOTIFY carried it from one process to the other. Everything runs twice: with
the servers connected to PostgreSQL directly, and through a pgbouncer in transaction
mode (tests/support/pgbouncer.py) configured as docs/reliability.md says — the
database URL through the pooler, ``RIVET_DATABASE_POOLER=transaction``, and
``RIVET_DATABASE_NOTIFY_URL`` direct, which is what keeps the wake-ups working.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import ADMIN, ADMIN_TOKEN, log_lines, lua_pipeline, read_sse
from pgbouncer import pgbouncer_in_front

from rivet.store.testing import postgres_test_url, scratch_postgres

pytestmark = pytest.mark.postgres

POLL_FALLBACK = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module", params=["direct", "pgbouncer"])
def database_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """How the servers reach a fresh database: directly, or through pgbouncer."""
    base = postgres_test_url()
    if base is None:
        pytest.skip("RIVET_TEST_DATABASE_URL is not set")
    with scratch_postgres(base) as pg_url:
        if request.param == "direct":
            yield {"RIVET_DATABASE_URL": pg_url}
            return
        with pgbouncer_in_front(pg_url) as bouncer:
            yield {
                "RIVET_DATABASE_URL": bouncer.url_for(pg_url),
                "RIVET_DATABASE_POOLER": "transaction",
                "RIVET_DATABASE_NOTIFY_URL": pg_url,
            }


@pytest.fixture(scope="module")
def servers(
    database_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Base URLs of two `python -m rivet.cli.server` processes on one database."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RIVET_DATABASE_")},
        **database_env,
        "RIVET_ADMIN_TOKEN": ADMIN_TOKEN,
        "RIVET_POLL_INTERVAL": str(POLL_FALLBACK),
        "RIVET_LOG_LEVEL": "warning",
    }
    procs: list[subprocess.Popen[bytes]] = []
    urls = []
    logs = tmp_path_factory.mktemp("servers")
    try:
        for name in ("a", "b"):
            port = _free_port()
            log = (logs / f"{name}.log").open("wb")
            command = [sys.executable, "-m", "rivet.cli.server", "--port", str(port)]
            command += ["--home", str(logs / name)]
            procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
            log.close()
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs, strict=True):
            _wait_ready(url, proc, logs)
        yield urls
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], logs: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = "\n".join(p.read_text() for p in logs.glob("*.log"))
            pytest.fail(f"server exited with {proc.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}/api/ready", timeout=1).status_code == 200:
                return  # ready includes "notification listener connected"
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"{url} did not become ready")


def _create_pipeline(http: httpx.Client, name: str) -> None:
    assert http.post("/api/pipelines", json={"source": lua_pipeline(name)}).status_code == 201


def _runner(http: httpx.Client, name: str) -> dict[str, str]:
    token = http.post("/api/runner-tokens", headers=ADMIN, json={}).json()["token"]
    body = http.post(
        "/api/runners/register", json={"registration_token": token, "name": name}
    ).json()
    return {"Authorization": f"Bearer {body['token']}"}


def test_job_launched_on_b_wakes_runner_waiting_on_a(servers: list[str]) -> None:
    with (
        httpx.Client(base_url=servers[0], timeout=30) as a,
        httpx.Client(base_url=servers[1], timeout=30) as b,
    ):
        _create_pipeline(b, "wake")
        runner = _runner(a, "waiting-on-a")
        result: dict[str, Any] = {}

        def wait_for_work() -> None:
            response = a.post("/api/runner/claim", headers=runner, json={"wait_seconds": 8})
            result["claimed_at"] = time.monotonic()
            result["response"] = response

        waiter = threading.Thread(target=wait_for_work)
        waiter.start()
        time.sleep(0.5)  # the claim is parked on A
        launched_at = time.monotonic()
        job = b.post("/api/jobs", json={"pipeline": "wake"}).json()
        waiter.join(timeout=15)
        assert result["response"].status_code == 200
        assert result["response"].json()["job_id"] == job["id"]
        assert result["claimed_at"] - launched_at < 1.0  # the poll fallback is 10 s
        # State is shared: B sees what A did.
        assert b.get(f"/api/jobs/{job['id']}").json()["status"] == "running"
        names = [r["name"] for r in b.get("/api/runners").json()]
        assert "waiting-on-a" in names


def test_logs_posted_to_a_stream_from_b(servers: list[str]) -> None:
    with (
        httpx.Client(base_url=servers[0], timeout=30) as a,
        httpx.Client(base_url=servers[1], timeout=30) as b,
    ):
        _create_pipeline(a, "stream")
        runner = _runner(a, "streaming")
        job_id = a.post("/api/jobs", json={"pipeline": "stream"}).json()["id"]
        claimed = a.post("/api/runner/claim", headers=runner, json={"wait_seconds": 0})
        assert claimed.json()["job_id"] == job_id
        a.post(f"/api/runner/jobs/{job_id}/logs", headers=runner, json=log_lines(1, 2))
        posted: dict[str, float] = {}

        def run_on_a() -> None:
            time.sleep(0.5)
            posted["at"] = time.monotonic()
            a.post(f"/api/runner/jobs/{job_id}/logs", headers=runner, json=log_lines(3))
            time.sleep(0.3)
            a.post(
                f"/api/runner/jobs/{job_id}/complete", headers=runner, json={"status": "succeeded"}
            )

        worker = threading.Thread(target=run_on_a)
        worker.start()
        events = []
        with b.stream("GET", f"/api/jobs/{job_id}/logs/stream") as response:
            for event in read_sse(response.iter_lines()):
                events.append((time.monotonic(), event))
        worker.join()
        seqs = [int(e["id"]) for _, e in events if e["event"] == "message"]
        assert seqs == [1, 2, 3]
        line_3_at = next(t for t, e in events if e.get("id") == "3")
        assert line_3_at - posted["at"] < 1.0  # NOTIFY from A woke B's stream
        assert events[-1][1]["event"] == "end"
        assert json.loads(events[-1][1]["data"])["status"] == "succeeded"
