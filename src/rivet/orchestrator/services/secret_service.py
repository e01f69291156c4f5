"""Use cases for secrets: set, list, delete, grant and revoke, who may do so (secret
permissions, :mod:`rivet.domain.permissions`), and the decrypted values a claimed job
receives.

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
- it was created by an actor entitled to the secret (:func:`entitled`: the admin, or
  whoever holds a permission on that secret, evaluated at claim time, so removing a
  user's permission also stops the versions they pushed from receiving it).

A version a grant does not cover runs without that secret; the claim says why
(``JobAssignment.withheld``) and ``secret.get`` repeats it, and the launch answer
warns (``JobLaunched.warnings``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from rivet.domain.actors import ADMIN, describe
from rivet.domain.permissions import PipelineLevel, SecretLevel, check_subject, secret_level
from rivet.domain.principals import Principal
from rivet.domain.secret_rules import check_granted, check_name, check_pipeline, check_value
from rivet.errors import InvalidRequest, NotFoundError, PermissionDeniedError, RivetError
from rivet.orchestrator.keyring import Keyring
from rivet.orchestrator.services.access import require_level
from rivet.protocol import AccessEntry, SecretAccessView, SecretSet, SecretView
from rivet.store import Database, audit
from rivet.store import access as access_store
from rivet.store import pipelines as pipeline_store
from rivet.store import sealed_secrets as store
from rivet.store.sealed_secrets import Grant, SecretRecord

__all__ = [
    "GrantedSecrets",
    "SecretService",
    "entitled",
    "unusable_secrets",
    "withheld_reason",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GrantedSecrets:
    """What one job of a pinned version receives: decrypted values of the secrets
    whose grant covers it, and for every other secret granted to its pipeline why not."""

    values: dict[str, str] = field(default_factory=dict, repr=False)
    withheld: dict[str, str] = field(default_factory=dict)


def entitled(actor: str, entries: Iterable[tuple[str, str]]) -> bool:
    """May code created by ``actor`` receive a secret whose permission entries are
    ``entries``? The admin's, and that of whoever may use the secret (any level)."""
    return actor == ADMIN or secret_level(actor, False, entries) is not None


def unusable_secrets(conn: Connection, principal: Principal, names: Sequence[str]) -> list[str]:
    """Which of the secrets ``names`` ``principal`` may not use (launch a pipeline
    granted them, push versions that receive them); sorted."""
    if principal.is_admin or not names:
        return []
    entries = access_store.secret_entries(conn, names)
    return sorted(
        name
        for name in names
        if secret_level(principal.actor, False, entries.get(name, [])) is None
    )


def withheld_reason(
    grant: Grant,
    pipeline: str,
    version: int,
    created_by: str,
    entries: Iterable[tuple[str, str]] = (),
) -> str | None:
    """Why ``grant`` does not cover ``version`` of ``pipeline`` (``entries``: the
    secret's permission entries); ``None`` when it does."""
    if version < grant.first_version:
        return (
            f"version {version} of pipeline '{pipeline}' predates its grant of secret "
            f"'{grant.secret}' (the grant covers version {grant.first_version} and later)"
        )
    if not entitled(created_by, entries):
        return (
            f"version {version} of pipeline '{pipeline}' was pushed by {describe(created_by)}, "
            f"and secret '{grant.secret}' reaches only versions pushed by an admin or by "
            "someone with a permission on it"
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

    def set(self, principal: Principal, name: str, body: SecretSet) -> tuple[SecretView, bool]:
        """Create or replace a secret (``write`` on it) and add ``body.grants`` (each as
        :meth:`grant` checks it); True when created."""
        check_name(name, "path.name")
        value = check_value(name, body.value.get_secret_value(), "body.value")
        pipelines = [check_pipeline(p, f"body.grants[{i}]") for i, p in enumerate(body.grants)]
        sealed = self.keyring.encrypt(name, value)
        with self.db.write() as tx:
            _require(tx.conn, principal, name, SecretLevel.WRITE, "set the value of")
            created = store.upsert_secret(tx.conn, name, sealed, self.keyring.current_id)
            action = "secret.create" if created else "secret.update"
            audit.record(tx.conn, principal.actor, action, name)
            for pipeline in pipelines:
                self._grant(tx.conn, principal, name, pipeline)
            record = store.get_secret(tx.conn, name)
        log.info("secret %s %s", name, "created" if created else "updated")
        return _view(record), created

    def list_all(self, principal: Principal) -> list[SecretView]:
        """Admins: every secret; others: those they hold a permission on."""
        with self.db.read() as conn:
            records = store.list_secrets(conn)
            if principal.is_admin:
                return [_view(r) for r in records]
            entries = access_store.secret_entries(conn, [r.name for r in records])
        return [
            _view(r)
            for r in records
            if secret_level(principal.actor, False, entries.get(r.name, [])) is not None
        ]

    def show(self, principal: Principal, name: str) -> SecretView:
        check_name(name, "path.name")
        with self.db.read() as conn:
            _require(conn, principal, name, SecretLevel.USE, "see")
            return _view(store.get_secret(conn, name))

    def delete(self, principal: Principal, name: str) -> None:
        check_name(name, "path.name")
        with self.db.write() as tx:
            _require(tx.conn, principal, name, SecretLevel.WRITE, "delete")
            store.delete_secret(tx.conn, name)
            audit.record(tx.conn, principal.actor, "secret.delete", name)
        log.info("secret %s deleted", name)

    def grant(self, principal: Principal, name: str, pipeline: str) -> SecretView:
        check_name(name, "path.name")
        pipeline = check_pipeline(pipeline, "path.pipeline")
        with self.db.write() as tx:
            self._grant(tx.conn, principal, name, pipeline)
            return _view(store.get_secret(tx.conn, name))

    def _grant(self, conn: Connection, principal: Principal, name: str, pipeline: str) -> None:
        """``grant`` on the secret, and ``push`` on the pipeline when it exists: granting
        a secret to someone else's pipeline would stop its owner pushing to it."""
        _require(conn, principal, name, SecretLevel.GRANT, "grant")
        try:
            pipeline_id = pipeline_store.resolve_pipeline(conn, pipeline)
        except NotFoundError:
            pipeline_id = None
        if pipeline_id is not None:
            require_level(conn, principal, pipeline_id, PipelineLevel.PUSH)
        store.add_grant(conn, name, pipeline)
        audit.record(conn, principal.actor, "secret.grant", name, {"pipeline": pipeline})

    def revoke(self, principal: Principal, name: str, pipeline: str) -> SecretView:
        """Any name a grant is stored under, even one the grant rule now refuses."""
        check_name(name, "path.name")
        pipeline = check_granted(pipeline, "path.pipeline")
        with self.db.write() as tx:
            _require(tx.conn, principal, name, SecretLevel.GRANT, "revoke")
            store.remove_grant(tx.conn, name, pipeline)
            audit.record(tx.conn, principal.actor, "secret.revoke", name, {"pipeline": pipeline})
            return _view(store.get_secret(tx.conn, name))

    def access(self, principal: Principal, name: str) -> SecretAccessView:
        """Who besides admins may use, grant or write ``name`` (admin, or a holder)."""
        check_name(name, "path.name")
        with self.db.read() as conn:
            _require(conn, principal, name, SecretLevel.USE, "see the permissions of")
            entries = access_store.secret_entries(conn, [name])[name]
        return SecretAccessView(secret=name, entries=dict(entries))

    def allow(self, principal: Principal, name: str, entry: AccessEntry) -> SecretAccessView:
        """Admin: give ``entry.subject`` the level ``entry.level`` on ``name`` (which
        need not exist yet: ``write`` then lets them create it)."""
        check_name(name, "path.name")
        subject = check_subject(entry.subject, "body.subject", roles=False)
        try:
            level = SecretLevel(entry.level)
        except ValueError:
            raise InvalidRequest(
                [("body.level", "not a secret level: use use, grant or write")]
            ) from None
        with self.db.write() as tx:
            _admin_only(principal, name)
            access_store.set_secret_entry(tx.conn, name, subject, level.value)
            details = {"subject": subject, "level": level.value}
            audit.record(tx.conn, principal.actor, "secret.allow", name, details)
        return self.access(principal, name)

    def disallow(self, principal: Principal, name: str, subject: str) -> SecretAccessView:
        check_name(name, "path.name")
        with self.db.write() as tx:
            _admin_only(principal, name)
            if not access_store.remove_secret_entry(tx.conn, name, subject):
                raise NotFoundError(f"secret '{name}' has no permission entry for {subject!r}")
            audit.record(tx.conn, principal.actor, "secret.disallow", name, {"subject": subject})
        return self.access(principal, name)

    def withheld(self, pipeline: str, version: int, created_by: str) -> dict[str, str]:
        """Name → reason for every secret granted to ``pipeline`` that ``version``
        (created by ``created_by``) would not receive; nothing is decrypted."""
        with self.db.read(primary=True) as conn:
            grants = store.grants_of_pipeline(conn, pipeline)
            return _withheld(conn, grants, pipeline, version, created_by)

    def for_job(self, pipeline: str, pipeline_id: str, version: int) -> GrantedSecrets:
        """What a claimed job of ``version`` of ``pipeline`` receives (see the module).

        A covered value that does not decrypt (a key missing on this orchestrator) is
        left out and logged by name: the job then fails at ``secret.get`` with a clear
        error instead of the claim failing after the job was handed out."""
        with self.db.read(primary=True) as conn:
            created_by = pipeline_store.version_creator(conn, pipeline_id, version)
            grants = store.grants_of_pipeline(conn, pipeline)
            withheld = _withheld(conn, grants, pipeline, version, created_by)
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


def _withheld(
    conn: Connection, grants: list[Grant], pipeline: str, version: int, created_by: str
) -> dict[str, str]:
    entries = access_store.secret_entries(conn, [g.secret for g in grants])
    found: dict[str, str] = {}
    for grant in grants:
        reason = withheld_reason(
            grant, pipeline, version, created_by, entries.get(grant.secret, [])
        )
        if reason is not None:
            found[grant.secret] = reason
    return found


def _require(
    conn: Connection, principal: Principal, name: str, wanted: SecretLevel, verb: str
) -> None:
    entries = access_store.secret_entries(conn, [name])[name]
    found = secret_level(principal.actor, principal.is_admin, entries)
    if found is None or not found.at_least(wanted):
        raise PermissionDeniedError(
            f"{principal.display} may not {verb} secret '{name}': that needs the "
            f"'{wanted.value}' permission on it; ask an admin (rivet secret allow)"
        )


def _admin_only(principal: Principal, name: str) -> None:
    if not principal.is_admin:
        raise PermissionDeniedError(
            f"{principal.display} may not change who may use secret '{name}': only an admin may"
        )
