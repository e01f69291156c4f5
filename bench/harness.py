"""Shared pieces of the benchmarks: databases to run on, server and runner processes,
and percentile summaries. Run the benchmarks from the repository root with
``.venv/bin/python bench/<name>.py``."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))

from live_rivet import Api, ServerProcess, free_port, wait_for  # noqa: E402

from rivet.jobqueue import JobQueue, Offer  # noqa: E402
from rivet.store.testing import scratch_postgres  # noqa: E402

__all__ = ["Api", "RunnerProcess", "backends", "database", "server", "summary", "timed_claims"]


def postgres_base_url() -> str | None:
    """RIVET_TEST_DATABASE_URL, else the URL scripts/setup.sh --postgres wrote."""
    url = os.environ.get("RIVET_TEST_DATABASE_URL")
    if url:
        return url
    saved = REPO / ".venv" / ".rivet-pg-url"
    return saved.read_text().strip() if saved.exists() else None


def backends() -> list[str]:
    kinds = ["sqlite"]
    if postgres_base_url():
        kinds.append("postgresql")
    else:
        print(
            "note: no PostgreSQL URL (RIVET_TEST_DATABASE_URL or .venv/.rivet-pg-url): SQLite only"
        )
    return kinds


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A fresh, empty database URL of ``kind`` (dropped or deleted afterwards)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="rivet-bench-") as tmp:
            yield f"sqlite:///{tmp}/rivet.db"
        return
    base = postgres_base_url()
    assert base is not None
    with scratch_postgres(base) as url:
        yield url


def timed_claims(queue: JobQueue, runner_id: str) -> tuple[list[float], list[str]]:
    """Claim with ``queue.try_claim`` (an empty offer) until no job is left: the time
    in seconds of each successful claim and the claimed job ids, in order. The last,
    empty attempt is not counted: it costs a different amount (nothing to update)."""
    times: list[float] = []
    claimed: list[str] = []
    while True:
        start = time.perf_counter()
        job = queue.try_claim(runner_id, Offer())
        elapsed = time.perf_counter() - start
        if job is None:
            return times, claimed
        times.append(elapsed)
        claimed.append(job.job_id)


@contextmanager
def server(database_url: str) -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory(prefix="rivet-bench-home-") as home:
        process = ServerProcess(Path(home), free_port(), database_url)
        try:
            yield process.start()
        finally:
            process.stop()


class RunnerProcess:
    """``python -m rivet.runner`` registered against ``api``'s server."""

    def __init__(self, api: Api, name: str, concurrency: int = 1) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="rivet-bench-runner-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("RIVET_")}
        env.update(RIVET_HOME=str(self.home), RIVET_REGISTRATION_TOKEN=api.registration_token())
        argv = [sys.executable, "-m", "rivet.runner", "--server", api.url, "--name", name]
        argv += ["--concurrency", str(concurrency)]
        self.log = (self.home / "runner.log").open("wb")
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )

        def checked_in() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError((self.home / "runner.log").read_text())
            return any(r["name"] == name and r["last_seen"] for r in api.runners())

        wait_for(checked_in, timeout=60, what=f"runner {name}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        self.log.close()


def summary(values: Sequence[float], scale: float = 1.0, unit: str = "") -> str:
    """``median … p90 … min … max`` of ``values`` times ``scale``."""
    scaled = sorted(v * scale for v in values)
    p90 = (
        statistics.quantiles(scaled, n=10, method="inclusive")[-1] if len(scaled) > 1 else scaled[0]
    )
    return (
        f"median {statistics.median(scaled):8.2f}{unit}  p90 {p90:8.2f}{unit}  "
        f"min {scaled[0]:8.2f}{unit}  max {scaled[-1]:8.2f}{unit}  (n={len(scaled)})"
    )
