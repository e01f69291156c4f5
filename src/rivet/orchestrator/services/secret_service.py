"""Use cases for secrets: set, list, delete, grant and revoke (admin), and the
decrypted values a claimed job receives.

Values are encrypted with the key ring before they reach the store and decrypted
only for a runner's claim of a job whose pinned version is *covered* by a grant; no
answer of the admin API and no log message ever holds a value. Blocking; called
from worker threads.

Coverage. Grants are by pipeline name, and anyone may have pushed a version of a
pipeline before it was granted a secret, so a grant covers a version only when both
hold (:func:`withheld_reason`):

- the version was created at or after the grant (``version >= first_version``, the
  pipeline's latest version + 1 when the grant was made; a revoke deletes the grant,
  so a later grant starts again after the versions pushed in between), and
- it was created by an actor entitled to the secret (:func:`entitled`: the admin
  today; once users exist, whoever has permission on that secret).

A version a grant does not cover runs without that secret; the claim says why
(``JobAssignment.withheld``) and ``secret.get`` repeats it, and the launch answer
warns (``JobLaunched.warnings``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from rivet.domain.actors import ADMIN, describe
from rivet.domain.secret_rules import check_granted, check_name, check_pipeline, check_value
from rivet.errors import RivetError
from rivet.orchestrator.keyring import Keyring
from rivet.protocol import SecretSet, SecretView
from rivet.store import Database
from rivet.store import pipelines as pipeline_store
from rivet.store import sealed_secrets as store
from rivet.store.sealed_secrets import Grant, SecretRecord

__all__ = ["GrantedSecrets", "SecretService", "entitled", "withheld_reason"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GrantedSecrets:
    """What one job of a pinned version receives: decrypted values of the secrets
    whose grant covers it, and for every other secret granted to its pipeline why not."""

    values: dict[str, str] = field(default_factory=dict, repr=False)
    withheld: dict[str, str] = field(default_factory=dict)


def entitled(actor: str, secret: str) -> bool:
    """May code created by ``actor`` receive ``secret``? Only the admin's, until users
    and per-secret permissions exist (then: whoever may use ``secret``)."""
    del secret  # every secret has the same rule today
    return actor == ADMIN


def withheld_reason(grant: Grant, pipeline: str, version: int, created_by: str) -> str | None:
    """Why ``grant`` does not cover ``version`` of ``pipeline``; ``None`` when it does."""
    if version < grant.first_version:
        return (
            f"version {version} of pipeline '{pipeline}' predates its grant of secret "
            f"'{grant.secret}' (the grant covers version {grant.first_version} and later)"
        )
    if not entitled(created_by, grant.secret):
        return (
            f"version {version} of pipeline '{pipeline}' was pushed by {describe(created_by)}, "
            f"and secret '{grant.secret}' reaches only versions the admin pushed"
        )
    return None


def _view(record: SecretRecord) -> SecretView:
    return SecretView(
        name=record.name,
        created_at=record.created_at,
        updated_at=record.updated_at,
        grants=list(record.grants),
        covers=dict(record.covers),
    )


class SecretService:
    def __init__(self, db: Database, keyring: Keyring) -> None:
        self.db = db
        self.keyring = keyring

    def set(self, name: str, body: SecretSet) -> tuple[SecretView, bool]:
        """Create or replace a secret (and add ``body.grants``); True when created."""
        check_name(name, "path.name")
        value = check_value(name, body.value.get_secret_value(), "body.value")
        pipelines = [check_pipeline(p, f"body.grants[{i}]") for i, p in enumerate(body.grants)]
        sealed = self.keyring.encrypt(name, value)
        with self.db.write() as tx:
            created = store.upsert_secret(tx.conn, name, sealed, self.keyring.current_id)
            for pipeline in pipelines:
                store.add_grant(tx.conn, name, pipeline)
            record = store.get_secret(tx.conn, name)
        log.info("secret %s %s", name, "created" if created else "updated")
        return _view(record), created

    def list_all(self) -> list[SecretView]:
        with self.db.read() as conn:
            return [_view(r) for r in store.list_secrets(conn)]

    def show(self, name: str) -> SecretView:
        check_name(name, "path.name")
        with self.db.read() as conn:
            return _view(store.get_secret(conn, name))

    def delete(self, name: str) -> None:
        check_name(name, "path.name")
        with self.db.write() as tx:
            store.delete_secret(tx.conn, name)
        log.info("secret %s deleted", name)

    def grant(self, name: str, pipeline: str) -> SecretView:
        check_name(name, "path.name")
        pipeline = check_pipeline(pipeline, "path.pipeline")
        with self.db.write() as tx:
            store.add_grant(tx.conn, name, pipeline)
            return _view(store.get_secret(tx.conn, name))

    def revoke(self, name: str, pipeline: str) -> SecretView:
        """Any name a grant is stored under, even one the grant rule now refuses."""
        check_name(name, "path.name")
        pipeline = check_granted(pipeline, "path.pipeline")
        with self.db.write() as tx:
            store.remove_grant(tx.conn, name, pipeline)
            return _view(store.get_secret(tx.conn, name))

    def withheld(self, pipeline: str, version: int, created_by: str) -> dict[str, str]:
        """Name → reason for every secret granted to ``pipeline`` that ``version``
        (created by ``created_by``) would not receive; nothing is decrypted."""
        with self.db.read(primary=True) as conn:
            grants = store.grants_of_pipeline(conn, pipeline)
        return _withheld(grants, pipeline, version, created_by)

    def for_job(self, pipeline: str, pipeline_id: str, version: int) -> GrantedSecrets:
        """What a claimed job of ``version`` of ``pipeline`` receives (see the module).

        A covered value that does not decrypt (a key missing on this orchestrator) is
        left out and logged by name: the job then fails at ``secret.get`` with a clear
        error instead of the claim failing after the job was handed out."""
        with self.db.read(primary=True) as conn:
            created_by = pipeline_store.version_creator(conn, pipeline_id, version)
            grants = store.grants_of_pipeline(conn, pipeline)
        withheld = _withheld(grants, pipeline, version, created_by)
        values: dict[str, str] = {}
        for grant in grants:
            if grant.secret in withheld:
                continue
            try:
                values[grant.secret] = self.keyring.decrypt(grant.secret, grant.ciphertext)
            except RivetError as exc:
                log.error(
                    "secret %s not sent to a job of pipeline %s: %s", grant.secret, pipeline, exc
                )
        for name, reason in withheld.items():
            log.info("secret %s withheld from a job: %s", name, reason)
        return GrantedSecrets(values, withheld)

    def rotate(self) -> int:
        """Re-encrypt every value sealed with an older key of the ring with the current
        key; how many were re-encrypted. Run at start-up, so putting a new key first
        and restarting rotates every stored value."""
        with self.db.read(primary=True) as conn:
            stale = store.sealed_with_other_keys(conn, self.keyring.current_id)
        done = 0
        for name, old in stale.items():
            try:
                value = self.keyring.decrypt(name, old)
            except RivetError as exc:
                log.error("cannot re-encrypt secret %s: %s", name, exc)
                continue
            sealed = self.keyring.encrypt(name, value)
            with self.db.write() as tx:
                if store.replace_ciphertext(tx.conn, name, old, sealed, self.keyring.current_id):
                    done += 1
        if done:
            log.info("re-encrypted %d secret(s) with key %s", done, self.keyring.current_id)
        return done


def _withheld(grants: list[Grant], pipeline: str, version: int, created_by: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for grant in grants:
        reason = withheld_reason(grant, pipeline, version, created_by)
        if reason is not None:
            found[grant.secret] = reason
    return found
