"""Use cases of the orchestrator, one class per concern, wired together in :class:`Services`.

Services raise :class:`~rivet.errors.RivetError` subclasses and return protocol
models; they know nothing about HTTP (see ``http_errors``) and build no SQL (see
``rivet.store``). Blocking methods run in worker threads; ``async`` ones on the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from rivet.jobqueue import JobQueue, JobTerms, Signals, make_queue
from rivet.orchestrator.keyring import load_keyring
from rivet.orchestrator.metrics import ServerMetrics
from rivet.orchestrator.services.access import AccessService
from rivet.orchestrator.services.artifacts import ArtifactLimits, ArtifactService
from rivet.orchestrator.services.audit import AuditService
from rivet.orchestrator.services.jobs import JobService, JobSnapshot
from rivet.orchestrator.services.pipelines import PipelineService
from rivet.orchestrator.services.reaper import Reaper, ReaperTerms
from rivet.orchestrator.services.runners import RunnerService
from rivet.orchestrator.services.secret_service import SecretService
from rivet.orchestrator.services.work import WorkService
from rivet.orchestrator.state import open_blobstore, open_database, uses_home
from rivet.settings import RivetSettings
from rivet.store import Database

__all__ = [
    "AccessService",
    "ArtifactService",
    "AuditService",
    "JobService",
    "JobSnapshot",
    "PipelineService",
    "Reaper",
    "RunnerService",
    "SecretService",
    "Services",
    "WorkService",
]


@dataclass
class Services:
    settings: RivetSettings
    db: Database
    queue: JobQueue
    pipelines: PipelineService
    jobs: JobService
    runners: RunnerService
    work: WorkService
    secrets: SecretService
    reaper: Reaper
    access: AccessService
    audit: AuditService
    metrics: ServerMetrics
    artifacts: ArtifactService

    @classmethod
    def build(cls, settings: RivetSettings) -> Services:
        server = settings.server
        if uses_home(settings):
            settings.paths.ensure()  # 0700, or tightened (see rivet.home)
        db = open_database(settings)
        terms = settings.jobs
        queue = make_queue(
            db,
            Signals(),
            server.poll_interval,
            JobTerms(terms.lease_seconds, terms.timeout_seconds),
        )
        reaper = Reaper(
            db,
            queue,
            ReaperTerms(
                interval=min(server.poll_interval, 1.0),
                timeout_grace_seconds=terms.timeout_grace_seconds,
                queue_timeout_seconds=terms.queue_timeout_seconds,
            ),
        )
        env_key = server.secret_key.get_secret_value() if server.secret_key else None
        secrets = SecretService(db, load_keyring(env_key, settings.paths.secret_key))
        access = AccessService(db)
        metrics = ServerMetrics(db)
        work = WorkService(db, queue, secrets, metrics)
        a = settings.artifacts
        limits = ArtifactLimits(
            max_file_bytes=a.max_file_bytes,
            max_job_bytes=a.max_job_bytes,
            max_source_bytes=a.max_source_bytes,
            retention_days=a.retention_days,
            cleanup_interval=float(a.cleanup_interval),
        )
        return cls(
            settings=settings,
            db=db,
            queue=queue,
            pipelines=PipelineService(db, settings.lua, access),
            jobs=JobService(db, queue, secrets, access, metrics),
            runners=RunnerService(db, queue),
            work=work,
            secrets=secrets,
            reaper=reaper,
            access=access,
            audit=AuditService(db),
            metrics=metrics,
            artifacts=ArtifactService(db, open_blobstore(settings), work, limits),
        )

    @property
    def signals(self) -> Signals:
        return self.queue.signals
