"""Use cases: registration tokens (admin), runner registration, authentication, listing,
runner pools. Every change is recorded in the audit trail."""

from __future__ import annotations

import logging

from rivet.domain import JobStatus
from rivet.domain.principals import Principal
from rivet.errors import AuthenticationError, ConflictError, PermissionDeniedError
from rivet.jobqueue import JobQueue, job_topic
from rivet.orchestrator.auth import hash_token, new_token
from rivet.protocol import (
    RegisterRequest,
    RegisterResponse,
    RegistrationTokenCreate,
    RegistrationTokenView,
    RunnerPoolView,
    RunnerUpdate,
    RunnerView,
)
from rivet.store import Database, audit
from rivet.store import jobs as job_store
from rivet.store import runners as store
from rivet.store.portable import utcnow
from rivet.store.runners import RunnerRecord

__all__ = ["RunnerRemoved", "RunnerService"]

log = logging.getLogger(__name__)


class RunnerRemoved(AuthenticationError):
    """The token is a removed runner's (``rivet runner remove``): 401 with its own code
    (``runner_removed``), so the runner stops instead of registering again."""


def _tags(tags: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(tags.items())) or "none"


class RunnerService:
    """Blocking; called from worker threads. Only token hashes are ever stored."""

    def __init__(self, db: Database, queue: JobQueue) -> None:
        self.db = db
        self.queue = queue  # to wake the followers of jobs a forced removal fails

    def create_token(self, request: RegistrationTokenCreate, actor: str) -> RegistrationTokenView:
        """A one-time registration token; the secret is in this answer and nowhere else."""
        token = new_token("reg")
        with self.db.write() as tx:
            view = store.create_registration_token(tx.conn, hash_token(token), request.description)
            details = {"description": request.description}
            audit.record(tx.conn, actor, "runner-token.create", view.id, details)
        return view.model_copy(update={"token": token})

    def list_tokens(self) -> list[RegistrationTokenView]:
        with self.db.read() as conn:
            return store.list_registration_tokens(conn)

    def delete_token(self, ref: str, actor: str) -> None:
        with self.db.write() as tx:
            token_id = store.delete_registration_token(tx.conn, ref)
            audit.record(tx.conn, actor, "runner-token.revoke", token_id)

    def register(self, request: RegisterRequest) -> RegisterResponse:
        """Exchange a registration token (consumed atomically) for a permanent runner token."""
        token = new_token("runner")
        with self.db.write() as tx:
            used = store.consume_registration_token(tx.conn, hash_token(request.registration_token))
            if used is None:
                raise AuthenticationError(
                    "registration token is unknown or already used; "
                    "create a new one with `rivet runner token create`"
                )
            runner_id = store.create_runner(
                tx.conn,
                request.name,
                hash_token(token),
                request.tags,
                request.plugins,
                used,
                pool=request.pool,
            )
            # The actor is the registration token an admin issued for it.
            audit.record(
                tx.conn,
                f"registration-token:{used}",
                "runner.register",
                runner_id,
                {"name": request.name, "pool": request.pool, "tags": dict(request.tags)},
            )
        return RegisterResponse(runner_id=runner_id, token=token)

    def authenticate(self, token: str) -> RunnerRecord:
        # On the writer: a replica may not have a runner registered a moment ago yet.
        with self.db.read(primary=True) as conn:
            runner = store.runner_by_token(conn, hash_token(token))
        if runner is None:
            raise AuthenticationError("invalid runner token; register the runner again")
        if runner.removed_at is not None:
            raise RunnerRemoved(
                f"runner '{runner.name}' ({runner.id[:8]}) was removed by an admin "
                f"(rivet runner remove) at {runner.removed_at:%Y-%m-%d %H:%M:%S}Z; its token "
                "is revoked: stop this runner, or register it again with a new registration "
                "token (rivet runner token create)"
            )
        return runner

    def list_all(self, include_removed: bool = False) -> list[RunnerView]:
        with self.db.read() as conn:
            return store.list_runners(conn, include_removed=include_removed)

    def remove(self, ref: str, actor: str, *, force: bool = False) -> RunnerView:
        """Admin: revoke a runner's token and hide it from listings; the row stays, so
        the jobs it ran keep its name. Removing a removed runner changes nothing.

        A runner running jobs is refused (``ConflictError`` naming them) unless
        ``force``: then those jobs are marked failed now, saying why, and the runner,
        whose next request is refused, stops them."""
        with self.db.write() as tx:
            view = store.get_runner(tx.conn, ref)
            if view.removed_at is not None:
                return view
            running = job_store.running_jobs_of(tx.conn, view.id)
            if running and not force:
                ids = ", ".join(job_id[:8] for job_id in running)
                raise ConflictError(
                    f"runner '{view.name}' ({view.id[:8]}) is running job(s) {ids}: wait for "
                    "them, cancel them (rivet job cancel ID), or remove it with --force "
                    "(they are marked failed and the runner stops them)"
                )
            for job_id in running:
                job_store.finish_job(
                    tx.conn,
                    job_id,
                    JobStatus.FAILED,
                    error=f"runner '{view.name}' was removed (rivet runner remove --force) "
                    "while running this job",
                )
                self.queue.announce(tx, job_topic(job_id))
            store.remove_runner(tx.conn, view.id, utcnow())
            removed = store.get_runner(tx.conn, view.id)
            audit.record(
                tx.conn, actor, "runner.remove", view.id, {"name": view.name, "failed": running}
            )
        log.info("runner %s (%s) removed by %s", removed.name, removed.id, actor)
        return removed

    def show(self, ref: str) -> RunnerView:
        with self.db.read() as conn:
            return store.get_runner(conn, ref)

    def update(self, ref: str, request: RunnerUpdate, actor: str) -> RunnerView:
        """Admin: replace a runner's tags, plugins and/or pool (what its claims match).
        The only way they change after registration: a runner cannot set its own."""
        with self.db.write() as tx:
            view = store.update_runner(tx.conn, ref, request.tags, request.plugins, request.pool)
            changed = request.model_dump(exclude_none=True)
            audit.record(tx.conn, actor, "runner.update", view.id, changed)
        log.info(
            "runner %s (%s): tags %s, plugins %s, pool %s set by %s",
            view.name,
            view.id,
            _tags(view.tags),
            ",".join(view.plugins) or "none",
            view.pool,
            actor,
        )
        return view

    def pools(self) -> list[RunnerPoolView]:
        with self.db.read() as conn:
            return store.list_pools(conn)

    def set_pool(self, principal: Principal, name: str, exclusive: bool) -> RunnerPoolView:
        """Admin: make the pool ``name`` exclusive (its runners run only pipelines
        restricted to it) or shared. Applies from the next claim attempt on."""
        if not principal.is_admin:
            raise PermissionDeniedError(
                f"{principal.display} may not configure runner pool '{name}': only an admin may"
            )
        with self.db.write() as tx:
            view = store.set_pool(tx.conn, name, exclusive)
            audit.record(tx.conn, principal.actor, "pool.set", name, {"exclusive": exclusive})
        return view
