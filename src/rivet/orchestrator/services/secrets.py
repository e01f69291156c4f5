"""Use cases for secrets: set, list, delete, grant and revoke (admin), and the
decrypted values a claimed job receives.

Values are encrypted with the key ring before they reach the store and decrypted
only for a runner's claim of a job whose pipeline was granted them; no answer of
the admin API and no log message ever holds a value. Blocking; called from worker
threads.
"""

from __future__ import annotations

import logging

from rivet.errors import RivetError
from rivet.protocol import SecretSet, SecretView
from rivet.secrets.keyring import Keyring
from rivet.secrets.rules import check_name, check_pipeline, check_value
from rivet.store import Database
from rivet.store import secrets as store
from rivet.store.secrets import SecretRecord

__all__ = ["SecretService"]

log = logging.getLogger(__name__)


def _view(record: SecretRecord) -> SecretView:
    return SecretView(
        name=record.name,
        created_at=record.created_at,
        updated_at=record.updated_at,
        grants=list(record.grants),
    )


class SecretService:
    def __init__(self, db: Database, keyring: Keyring) -> None:
        self.db = db
        self.keyring = keyring

    def set(self, name: str, body: SecretSet) -> tuple[SecretView, bool]:
        """Create or replace a secret (and add ``body.grants``); True when created."""
        check_name(name)
        value = check_value(name, body.value.get_secret_value())
        pipelines = [check_pipeline(p) for p in body.grants]
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
        check_name(name)
        with self.db.read() as conn:
            return _view(store.get_secret(conn, name))

    def delete(self, name: str) -> None:
        check_name(name)
        with self.db.write() as tx:
            store.delete_secret(tx.conn, name)
        log.info("secret %s deleted", name)

    def grant(self, name: str, pipeline: str) -> SecretView:
        check_name(name)
        pipeline = check_pipeline(pipeline)
        with self.db.write() as tx:
            store.add_grant(tx.conn, name, pipeline)
            return _view(store.get_secret(tx.conn, name))

    def revoke(self, name: str, pipeline: str) -> SecretView:
        check_name(name)
        pipeline = check_pipeline(pipeline)
        with self.db.write() as tx:
            store.remove_grant(tx.conn, name, pipeline)
            return _view(store.get_secret(tx.conn, name))

    def for_pipeline(self, pipeline: str) -> dict[str, str]:
        """Name → value of the secrets granted to ``pipeline``, for a claimed job.

        A value that does not decrypt (a key missing on this orchestrator) is left
        out and logged by name: the job then fails at ``secret.get`` with a clear
        error instead of the claim failing after the job was handed out."""
        with self.db.read() as conn:
            sealed = store.granted_ciphertexts(conn, pipeline)
        values: dict[str, str] = {}
        for name, ciphertext in sealed.items():
            try:
                values[name] = self.keyring.decrypt(name, ciphertext)
            except RivetError as exc:
                log.error("secret %s not sent to a job of pipeline %s: %s", name, pipeline, exc)
        return values

    def rotate(self) -> int:
        """Re-encrypt every value sealed with an older key of the ring with the current
        key; how many were re-encrypted. Run at start-up, so putting a new key first
        and restarting rotates every stored value."""
        with self.db.read() as conn:
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
