"""Use cases: registration tokens (admin), runner registration, authentication, listing."""

from __future__ import annotations

import logging

from rivet.errors import AuthenticationError
from rivet.orchestrator.auth import hash_token, new_token
from rivet.protocol import (
    RegisterRequest,
    RegisterResponse,
    RegistrationTokenCreate,
    RegistrationTokenView,
    RunnerUpdate,
    RunnerView,
)
from rivet.store import Database
from rivet.store import runners as store
from rivet.store.runners import RunnerRecord

__all__ = ["RunnerService"]

log = logging.getLogger(__name__)


def _tags(tags: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(tags.items())) or "none"


class RunnerService:
    """Blocking; called from worker threads. Only token hashes are ever stored."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create_token(self, request: RegistrationTokenCreate) -> RegistrationTokenView:
        """A one-time registration token; the secret is in this answer and nowhere else."""
        token = new_token("reg")
        with self.db.write() as tx:
            view = store.create_registration_token(tx.conn, hash_token(token), request.description)
        return view.model_copy(update={"token": token})

    def list_tokens(self) -> list[RegistrationTokenView]:
        with self.db.read() as conn:
            return store.list_registration_tokens(conn)

    def delete_token(self, ref: str) -> None:
        with self.db.write() as tx:
            store.delete_registration_token(tx.conn, ref)

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
                tx.conn, request.name, hash_token(token), request.tags, request.plugins, used
            )
        return RegisterResponse(runner_id=runner_id, token=token)

    def authenticate(self, token: str) -> RunnerRecord:
        # On the writer: a replica may not have a runner registered a moment ago yet.
        with self.db.read(primary=True) as conn:
            runner = store.runner_by_token(conn, hash_token(token))
        if runner is None:
            raise AuthenticationError("invalid runner token; register the runner again")
        return runner

    def list_all(self) -> list[RunnerView]:
        with self.db.read() as conn:
            return store.list_runners(conn)

    def show(self, ref: str) -> RunnerView:
        with self.db.read() as conn:
            return store.get_runner(conn, ref)

    def update(self, ref: str, request: RunnerUpdate) -> RunnerView:
        """Admin: replace a runner's tags and/or plugins (what its claims match). The
        only way they change after registration: a runner cannot set its own."""
        with self.db.write() as tx:
            view = store.update_runner(tx.conn, ref, request.tags, request.plugins)
        log.info(
            "runner %s (%s): tags %s, plugins %s set by the admin",
            view.name,
            view.id,
            _tags(view.tags),
            ",".join(view.plugins) or "none",
        )
        return view
