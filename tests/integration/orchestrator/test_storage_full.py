"""A server whose database has no space left (SQLite's real SQLITE_FULL, reached with
``PRAGMA max_page_count``) answers 507 ``storage_full`` with the reason; the runner's
shipper shows it as what it is — the server answered, with an error — never as
"unreachable", keeps the lines and retries; its heartbeat tells the server why the log
stalled (``rivet job show`` prints it) until the lines go through again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from api_helpers import ADMIN, lua_pipeline, serving
from sqlalchemy import event, text

from rivet.engine.events import LogEvent
from rivet.orchestrator import create_app
from rivet.orchestrator.services import Services
from rivet.protocol import ClaimRequest, RegisterRequest
from rivet.runner.client import RunnerClient
from rivet.runner.logs import LogShipper, ShipperSettings
from rivet.settings import RivetSettings
from rivet.store.testing import empty_tables


@pytest.fixture
def sqlite_settings(settings: RivetSettings, database_url: str) -> RivetSettings:
    if not database_url.startswith("sqlite"):
        pytest.skip("the page cap is SQLite's; PostgreSQL's disk_full maps the same way")
    return settings


@pytest.fixture
def live(sqlite_settings: RivetSettings) -> Iterator[tuple[str, Services]]:
    application = create_app(sqlite_settings)
    with serving(application) as url:
        services: Services = application.state.services
        empty_tables(services.db)
        yield url, services


def cap_pages(services: Services, cap: bool) -> None:
    """Every new connection may grow the file by nothing (cap) or freely again."""
    engine = services.db.engine
    with engine.connect() as conn:
        pages = int(conn.execute(text("PRAGMA page_count")).scalar_one())

    def limit(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages if cap else 1073741823}")

    for listener in getattr(services, "_test_listeners", []):
        event.remove(engine, "connect", listener)
    event.listen(engine, "connect", limit)
    services._test_listeners = [limit]  # type: ignore[attr-defined]
    engine.dispose()


def test_a_full_database_is_told_as_such_and_the_log_stall_is_shown(
    live: tuple[str, Services], caplog: pytest.LogCaptureFixture
) -> None:
    url, services = live
    with httpx.Client(base_url=url) as http:
        assert http.post("/api/pipelines", json={"source": lua_pipeline("full")}).is_success
        job_id = http.post("/api/jobs", json={"pipeline": "full"}).json()["id"]
        token = http.post("/api/runner-tokens", headers=ADMIN, json={}).json()["token"]
        runner = RunnerClient(url)
        registered = runner.register(RegisterRequest(registration_token=token, name="r"))
        runner.token = registered.token
        assignment = runner.claim(ClaimRequest(wait_seconds=5))
        assert assignment is not None and assignment.job_id == job_id
        attempt = assignment.attempt

        cap_pages(services, cap=True)
        shipper = LogShipper(
            runner, job_id, ShipperSettings(retry_initial=0.05, retry_cap=0.2), attempt=attempt
        )
        try:
            with caplog.at_level(logging.DEBUG, logger="rivet.runner"):
                for seq in range(1, 201):
                    now = datetime.now(UTC)
                    shipper.log(LogEvent(seq, now, "hello", "info", f"{seq} " + "x" * 4000))
                deadline = time.monotonic() + 30
                while shipper.problem is None:
                    assert time.monotonic() < deadline, "no delivery failure seen"
                    time.sleep(0.05)
            problem = shipper.problem
            assert "HTTP 507" in problem and "no space left (disk full)" in problem, problem
            said = caplog.text
            assert "answers with errors" in said and "unreachable" not in said, said
            assert shipper.pending == 200  # nothing dropped

            beat = runner.heartbeat(job_id, attempt, problem)
            assert not beat.cancel_requested
            shown = http.get(f"/api/jobs/{job_id}").json()
            assert shown["stall_reason"] == problem

            cap_pages(services, cap=False)
            assert shipper.close(30), "every line delivered once space is back"
            assert shipper.problem is None
            runner.heartbeat(job_id, attempt, shipper.problem)
            shown = http.get(f"/api/jobs/{job_id}").json()
            assert shown["stall_reason"] is None
            lines = http.get(f"/api/jobs/{job_id}/logs", params={"limit": 500}).json()["lines"]
            assert [ln["seq"] for ln in lines] == list(range(1, 201))
        finally:
            shipper.close(5)
            runner.close()
