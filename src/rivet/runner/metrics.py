"""The runner's Prometheus metrics, served on ``--metrics-port`` (``GET /metrics``,
``127.0.0.1`` unless ``--metrics-host`` says otherwise; see docs/observability.md).

- slots busy and free, and the jobs this process ran by final status;
- container start and command (exec) latency, measured around the container backend
  (:class:`MeasuredBackend`), whatever path a command takes (exec agent or
  ``podman exec``);
- CPU and memory of the runner process (``process_*``, prometheus-client's process
  collector, from ``/proc``) and of each job container it runs now, from the
  container's cgroup (:mod:`rivet.observe.cgroups`), read at scrape time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from rivet.engine.backends.base import (
    ContainerBackend,
    ContainerSpec,
    ExecRequest,
    ExecResult,
    RunningContainer,
)
from rivet.observe.cgroups import container_usage

__all__ = ["MeasuredBackend", "MetricsServer", "RunnerMetrics"]

log = logging.getLogger("rivet.runner")

# No `_created` series beside each counter and histogram: Prometheus does not need them.
disable_created_metrics()  # type: ignore[no-untyped-call]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, float("inf"))


class RunnerMetrics:
    def __init__(self, slots: Callable[[], tuple[int, int]]) -> None:
        """``slots`` answers (busy, total) when scraped."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Counter(
            "rivet_runner_jobs", "Jobs this runner ran, by final status", ["status"], registry=r
        )
        self.container_start = Histogram(
            "rivet_runner_container_start_seconds",
            "Starting one job container",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.exec = Histogram(
            "rivet_runner_exec_seconds",
            "One command in a container, from request to exit (the command's run time included)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        ProcessCollector(registry=r)
        self.containers: dict[str, RunningContainer] = {}
        self.lock = threading.Lock()
        r.register(_ScrapeTime(self, slots))

    def job_finished(self, status: str) -> None:
        self.jobs.labels(status).inc()


class _ScrapeTime(Collector):
    def __init__(self, metrics: RunnerMetrics, slots: Callable[[], tuple[int, int]]) -> None:
        self.metrics = metrics
        self.slots = slots

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        busy, total = self.slots()
        family = GaugeMetricFamily("rivet_runner_slots", "Job slots", labels=["state"])
        family.add_metric(["busy"], busy)
        family.add_metric(["free"], max(0, total - busy))
        yield family
        with self.metrics.lock:
            containers = list(self.metrics.containers.values())
        running = GaugeMetricFamily("rivet_runner_containers", "Job containers running now")
        running.add_metric([], len(containers))
        yield running
        cpu = CounterMetricFamily(
            "rivet_runner_container_cpu_seconds",
            "CPU time of a running job container (its cgroup)",
            labels=["container", "job_id"],
        )
        memory = GaugeMetricFamily(
            "rivet_runner_container_memory_bytes",
            "Memory of a running job container (its cgroup)",
            labels=["container", "job_id"],
        )
        for container in containers:
            usage = container_usage(container.id)
            if usage is None:
                continue
            labels = [container.name, container.job_id]
            if usage.cpu_seconds is not None:
                cpu.add_metric(labels, usage.cpu_seconds)
            if usage.memory_bytes is not None:
                memory.add_metric(labels, usage.memory_bytes)
        yield cpu
        yield memory


class MeasuredBackend:
    """A container backend that times ``start`` and ``exec`` and knows the
    containers running now; everything else is the wrapped backend's."""

    def __init__(self, backend: ContainerBackend, metrics: RunnerMetrics) -> None:
        self.backend = backend
        self.metrics = metrics

    def check_image(self, image: str, pull: str | None) -> None:
        self.backend.check_image(image, pull)

    def start(self, spec: ContainerSpec) -> RunningContainer:
        began = time.perf_counter()
        container = self.backend.start(spec)
        self.metrics.container_start.observe(time.perf_counter() - began)
        with self.metrics.lock:
            self.metrics.containers[container.id] = container
        return container

    def exec(self, container: RunningContainer, request: ExecRequest) -> ExecResult:
        began = time.perf_counter()
        try:
            return self.backend.exec(container, request)
        finally:
            self.metrics.exec.observe(time.perf_counter() - began)

    def remove(self, container: RunningContainer) -> None:
        try:
            self.backend.remove(container)
        finally:
            with self.metrics.lock:
                self.metrics.containers.pop(container.id, None)

    def remove_job(self, job_id: str) -> int:
        try:
            return self.backend.remove_job(job_id)
        finally:
            with self.metrics.lock:
                for key in [k for k, c in self.metrics.containers.items() if c.job_id == job_id]:
                    del self.metrics.containers[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


class MetricsServer:
    """``GET /metrics`` of ``metrics`` on ``host:port`` (0: any free port), in a
    daemon thread, until :meth:`close`."""

    def __init__(self, metrics: RunnerMetrics, host: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, host, registry=metrics.registry)
        self.port: int = self._server.server_port
        log.info("metrics on http://%s:%d/metrics", _host(host), self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
