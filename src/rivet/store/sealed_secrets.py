"""Sealed secrets: secret rows and their grants. Only ciphertext reaches this module: encryption and
decryption belong to the orchestrator's secret service (``rivet.orchestrator.keyring``),
and so does deciding which versions a grant covers (this module records from which
version on it may)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection

from rivet.errors import NotFoundError
from rivet.store.ids import new_id
from rivet.store.portable import insert_ignoring_duplicates, utcnow
from rivet.store.tables import pipeline_versions, pipelines, secret_grants, secrets

__all__ = [
    "Grant",
    "SecretRecord",
    "add_grant",
    "delete_secret",
    "get_secret",
    "granted_names",
    "grants_of_pipeline",
    "list_secrets",
    "remove_grant",
    "replace_ciphertext",
    "sealed_with_other_keys",
    "upsert_secret",
]


@dataclass(frozen=True)
class SecretRecord:
    """What may be shown about a secret: never its value, not even encrypted."""

    name: str
    created_at: datetime
    updated_at: datetime
    grants: list[str] = field(default_factory=list)
    # Pipeline -> the first of its versions the grant covers.
    covers: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Grant:
    """One secret granted to a pipeline, with its sealed value."""

    secret: str
    ciphertext: str
    first_version: int


def _secret_id(conn: Connection, name: str) -> str:
    query = select(secrets.c.id).where(secrets.c.name == name)
    found: str | None = conn.execute(query).scalar_one_or_none()
    if found is None:
        raise NotFoundError(f"no secret named '{name}'")
    return found


def upsert_secret(conn: Connection, name: str, ciphertext: str, key_id: str) -> bool:
    """Create or replace the value of ``name``; True when it was created.

    Insert-or-ignore first, then update: one statement decides who creates the row
    when two writers race, on both databases."""
    now = utcnow()
    # RETURNING, not rowcount: the count of an ignored insert differs across drivers.
    inserted = conn.execute(
        insert_ignoring_duplicates(conn, secrets, "name")
        .values(
            id=new_id(),
            name=name,
            ciphertext=ciphertext,
            key_id=key_id,
            created_at=now,
            updated_at=now,
        )
        .returning(secrets.c.id)
    ).first()
    if inserted is not None:
        return True
    conn.execute(
        update(secrets)
        .where(secrets.c.name == name)
        .values(ciphertext=ciphertext, key_id=key_id, updated_at=now)
    )
    return False


def _grants_by_secret(conn: Connection, secret_ids: list[str]) -> dict[str, dict[str, int]]:
    """Secret id -> {pipeline: first covered version}, pipelines in name order."""
    found: dict[str, dict[str, int]] = {sid: {} for sid in secret_ids}
    if secret_ids:
        g = secret_grants.c
        query = (
            select(g.secret_id, g.pipeline, g.first_version)
            .where(g.secret_id.in_(secret_ids))
            .order_by(g.pipeline)
        )
        for row in conn.execute(query):
            found[row.secret_id][row.pipeline] = row.first_version
    return found


def _record(row: Any, covers: dict[str, int]) -> SecretRecord:
    return SecretRecord(row.name, row.created_at, row.updated_at, list(covers), dict(covers))


def list_secrets(conn: Connection) -> list[SecretRecord]:
    rows = list(
        conn.execute(
            select(
                secrets.c.id, secrets.c.name, secrets.c.created_at, secrets.c.updated_at
            ).order_by(secrets.c.name)
        )
    )
    grants = _grants_by_secret(conn, [row.id for row in rows])
    return [_record(r, grants[r.id]) for r in rows]


def get_secret(conn: Connection, name: str) -> SecretRecord:
    row = conn.execute(
        select(secrets.c.id, secrets.c.name, secrets.c.created_at, secrets.c.updated_at).where(
            secrets.c.name == name
        )
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no secret named '{name}'")
    return _record(row, _grants_by_secret(conn, [row.id])[row.id])


def delete_secret(conn: Connection, name: str) -> None:
    """Delete the secret and (by cascade) its grants."""
    secret_id = _secret_id(conn, name)
    conn.execute(delete(secret_grants).where(secret_grants.c.secret_id == secret_id))
    conn.execute(delete(secrets).where(secrets.c.id == secret_id))


def add_grant(conn: Connection, name: str, pipeline: str) -> bool:
    """Grant ``name`` to ``pipeline`` from its next version on; False when it was
    granted already (idempotent: the existing grant keeps its first version).

    The pipeline's row, when it exists, is locked first (as a version create locks
    it), so no version can be added between reading the latest number and the grant
    being written: the grant covers exactly the versions created after it."""
    secret_id = _secret_id(conn, name)
    pipeline_id = conn.execute(
        select(pipelines.c.id).where(pipelines.c.name == pipeline).with_for_update()
    ).scalar_one_or_none()
    latest = 0
    if pipeline_id is not None:
        latest = conn.execute(
            select(func.coalesce(func.max(pipeline_versions.c.version), 0)).where(
                pipeline_versions.c.pipeline_id == pipeline_id
            )
        ).scalar_one()
    statement = insert_ignoring_duplicates(conn, secret_grants, "secret_id", "pipeline")
    inserted = conn.execute(
        statement.values(
            secret_id=secret_id,
            pipeline=pipeline,
            created_at=utcnow(),
            first_version=int(latest) + 1,
        ).returning(secret_grants.c.pipeline)
    ).first()
    return inserted is not None


def remove_grant(conn: Connection, name: str, pipeline: str) -> None:
    secret_id = _secret_id(conn, name)
    removed = conn.execute(
        delete(secret_grants).where(
            secret_grants.c.secret_id == secret_id, secret_grants.c.pipeline == pipeline
        )
    ).rowcount
    if not removed:
        raise NotFoundError(f"secret '{name}' is not granted to pipeline '{pipeline}'")


def granted_names(conn: Connection, pipeline: str) -> list[str]:
    """Names of the secrets granted to ``pipeline``, sorted."""
    query = (
        select(secrets.c.name)
        .join(secret_grants, secret_grants.c.secret_id == secrets.c.id)
        .where(secret_grants.c.pipeline == pipeline)
        .order_by(secrets.c.name)
    )
    return [row.name for row in conn.execute(query)]


def grants_of_pipeline(conn: Connection, pipeline: str) -> list[Grant]:
    """Every secret granted to ``pipeline`` with the first version its grant covers,
    by secret name; the caller decides which of them a given version may receive."""
    query = (
        select(secrets.c.name, secrets.c.ciphertext, secret_grants.c.first_version)
        .join(secret_grants, secret_grants.c.secret_id == secrets.c.id)
        .where(secret_grants.c.pipeline == pipeline)
        .order_by(secrets.c.name)
    )
    return [Grant(r.name, r.ciphertext, r.first_version) for r in conn.execute(query)]


def sealed_with_other_keys(conn: Connection, key_id: str) -> dict[str, str]:
    """Name → ciphertext of the secrets not encrypted with ``key_id`` (to rotate)."""
    query = select(secrets.c.name, secrets.c.ciphertext).where(secrets.c.key_id != key_id)
    return {row.name: row.ciphertext for row in conn.execute(query)}


def replace_ciphertext(conn: Connection, name: str, old: str, ciphertext: str, key_id: str) -> bool:
    """Swap the stored value only if it is still ``old`` (a concurrent set wins)."""
    changed = conn.execute(
        update(secrets)
        .where(secrets.c.name == name, secrets.c.ciphertext == old)
        .values(ciphertext=ciphertext, key_id=key_id)
    ).rowcount
    return bool(changed)
