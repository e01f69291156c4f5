"""Use cases of the orchestrator, one class per concern, wired together in :class:`Services`.

Services raise :class:`~rivet.errors.RivetError` subclasses and return protocol
models; they know nothing about HTTP (see ``http_errors``) and build no SQL (see
``rivet.store``). Blocking methods run in worker threads; ``async`` ones on the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from rivet.config import ServerSettings
from rivet.jobqueue import JobQueue, Signals, make_queue
from rivet.orchestrator.keyring import load_keyring
from rivet.orchestrator.services.jobs import JobService, JobSnapshot
from rivet.orchestrator.services.pipelines import PipelineService
from rivet.orchestrator.services.runners import RunnerService
from rivet.orchestrator.services.secret_service import SecretService
from rivet.orchestrator.services.work import WorkService
from rivet.store import Database

__all__ = [
    "JobService",
    "JobSnapshot",
    "PipelineService",
    "RunnerService",
    "SecretService",
    "Services",
    "WorkService",
]


@dataclass
class Services:
    settings: ServerSettings
    db: Database
    queue: JobQueue
    pipelines: PipelineService
    jobs: JobService
    runners: RunnerService
    work: WorkService
    secrets: SecretService

    @classmethod
    def build(cls, settings: ServerSettings) -> Services:
        if settings.uses_home:
            settings.rivet_home.ensure()  # 0700, or tightened (see rivet.home)
        db = Database(settings.resolved_database_url)
        queue = make_queue(db, Signals(), settings.poll_interval)
        env_key = settings.secret_key.get_secret_value() if settings.secret_key else None
        secrets = SecretService(db, load_keyring(env_key, settings.secret_key_file))
        return cls(
            settings=settings,
            db=db,
            queue=queue,
            pipelines=PipelineService(db),
            jobs=JobService(db, queue, secrets),
            runners=RunnerService(db),
            work=WorkService(db, queue, secrets),
            secrets=secrets,
        )

    @property
    def signals(self) -> Signals:
        return self.queue.signals
