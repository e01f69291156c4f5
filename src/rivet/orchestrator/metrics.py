"""The orchestrator's Prometheus metrics (``GET /metrics``, see docs/observability.md).

Counters and histograms are this process's own (several orchestrators behind a load
balancer: scrape each, and sum in queries). The queue gauges and the database pool
are read at scrape time (:class:`_ScrapeTime`): the queue from the database (one
aggregate over the partial index of queued jobs, so the same global figure from every
orchestrator), the pool from this process's SQLAlchemy engine.

Labels stay bounded: HTTP requests are labelled by route *template*
(``/api/jobs/{ref}``, never the raw path) and unmatched paths share one label;
pipelines and stages by name, as many as there are pipeline definitions.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import Scope

from rivet.errors import AuthenticationError, PermissionDeniedError
from rivet.protocol import JobView
from rivet.store import Database
from rivet.store import jobs as job_store
from rivet.store.portable import utcnow

__all__ = [
    "ROUTE_PREFIXES",
    "UNMATCHED_ROUTE",
    "HttpMetrics",
    "ServerMetrics",
    "check_metrics_access",
]

log = logging.getLogger(__name__)

# No `_created` series beside each counter and histogram: Prometheus does not need them.
disable_created_metrics()  # type: ignore[no-untyped-call]

UNMATCHED_ROUTE = "<unmatched>"
# Jobs and stages run from seconds to hours.
_DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, float("inf"))
# A claim is answered within milliseconds of a launch when a runner waits.
_LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    3600,
    float("inf"),
)


class ServerMetrics:
    """One registry per app (so several apps in one test process do not clash)."""

    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs_finished = Counter(
            "rivet_jobs_finished",
            "Jobs that reached a final status",
            ["pipeline", "status"],
            registry=r,
        )
        self.job_duration = Histogram(
            "rivet_job_duration_seconds",
            "From claim to final status",
            ["pipeline", "status"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.stage_duration = Histogram(
            "rivet_stage_duration_seconds",
            "From a stage's start to its end",
            ["pipeline", "stage", "status"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.claim_latency = Histogram(
            "rivet_job_claim_latency_seconds",
            "From launch (queued) to claim by a runner",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.sse_streams = Gauge(
            "rivet_sse_streams_active", "Log streams (SSE) open now", registry=r
        )
        self.http = HttpMetrics(r)
        r.register(_ScrapeTime(db))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def job_claimed(self, created_at: datetime, claimed_at: datetime | None) -> None:
        self.claim_latency.observe(
            max(0.0, ((claimed_at or utcnow()) - created_at).total_seconds())
        )

    def job_finished(self, job: JobView) -> None:
        """Count a job that has just reached its final status, with its stages."""
        self.jobs_finished.labels(job.pipeline, job.status).inc()
        if job.started_at is not None and job.finished_at is not None:
            seconds = (job.finished_at - job.started_at).total_seconds()
            self.job_duration.labels(job.pipeline, job.status).observe(max(0.0, seconds))
        for stage in job.stages:
            if stage.started_at is not None and stage.finished_at is not None:
                seconds = (stage.finished_at - stage.started_at).total_seconds()
                self.stage_duration.labels(job.pipeline, stage.name, stage.status).observe(
                    max(0.0, seconds)
                )


class HttpMetrics:
    """Request counts and latency by method, route template and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "rivet_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "rivet_http_request_duration_seconds",
            "From request to the end of the answer (long polls and log streams included)",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        """One answered request; ``scope`` after routing (the router stores the
        matched route in it)."""
        template = _template(scope)
        method = scope["method"] if template != UNMATCHED_ROUTE else "other"
        self.requests.labels(method, template, str(status)).inc()
        self.duration.labels(method, template).observe(seconds)


# The prefixes the app mounts routers under (app.py): an included route knows only its
# own part of the path, so the prefix is found again here, from this fixed list.
ROUTE_PREFIXES = ("/api", "")


def _template(scope: Scope) -> str:
    route = scope.get("route")
    own = getattr(route, "path", None)
    regex = getattr(route, "path_regex", None)
    path = scope.get("path", "")
    if not isinstance(own, str) or regex is None:
        return UNMATCHED_ROUTE
    for prefix in ROUTE_PREFIXES:
        if path.startswith(prefix) and regex.match(path[len(prefix) :]):
            return prefix + own
    return UNMATCHED_ROUTE


class _ScrapeTime(Collector):
    """The queue (from the database) and the connection pool, read when scraped."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def describe(self) -> list[Metric]:
        return []  # collected lazily: registering must not query the database

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("rivet_queue_depth", "Jobs queued now (all orchestrators)")
        oldest = GaugeMetricFamily(
            "rivet_queue_oldest_age_seconds", "Age of the oldest queued job (0: none queued)"
        )
        try:
            with self.db.read() as conn:
                count, first = job_store.queue_summary(conn)
        except Exception as exc:  # a scrape must answer even when the database does not
            log.warning("metrics: cannot read the queue: %s", exc)
        else:
            depth.add_metric([], count)
            age = (utcnow() - first).total_seconds() if first is not None else 0.0
            oldest.add_metric([], max(0.0, age))
            yield depth
            yield oldest
        yield from _pool(self.db)


def _pool(db: Database) -> Iterator[Metric]:
    """SQLAlchemy's queue pool: ``size`` kept open, ``in_use`` checked out now,
    ``idle`` open and waiting, ``overflow`` opened beyond ``size`` now."""
    pool = db.engine.pool
    readings = {
        name: getattr(pool, attribute, None)
        for name, attribute in (
            ("size", "size"),
            ("in_use", "checkedout"),
            ("idle", "checkedin"),
            ("overflow", "overflow"),
        )
    }
    family = GaugeMetricFamily(
        "rivet_db_pool_connections",
        "This process's database connection pool, by state",
        labels=["state"],
    )
    for state, read in readings.items():
        if callable(read):
            # SQLAlchemy counts overflow from -size up: below 0 means none in use.
            family.add_metric([state], max(0.0, float(read())))
    yield family


def check_metrics_access(
    client_host: str | None, token: str | None, allow: tuple[str, ...], expected: str | None
) -> None:
    """Whether a scrape may read the metrics: the client's address is in ``allow``
    (``server.metrics_allow``, loopback by default) or it presents the metrics token
    (``server.metrics_token``). A wrong token is refused whatever the address.

    Raises ``AuthenticationError`` (401) for a wrong token, ``PermissionDeniedError``
    (403) for an address outside the list without a token."""
    if token:
        if expected is not None and hmac.compare_digest(token.encode(), expected.encode()):
            return
        raise AuthenticationError("invalid metrics token")
    if client_host is not None and _in_networks(client_host, allow):
        return
    raise PermissionDeniedError(
        f"metrics are open to {','.join(allow) or 'no address'} and to the metrics token "
        "(RIVET_METRICS_ALLOW, RIVET_METRICS_TOKEN; see docs/observability.md)"
    )


def _in_networks(host: str, allow: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(network) for network in allow)
