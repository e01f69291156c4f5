"""Pipeline owners, access lists and pool restrictions; per-secret permissions.

Rows in, plain values out: what the entries *mean* is :mod:`rivet.domain.permissions`,
who may change them is the orchestrator's access service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from rivet.store.portable import insert_ignoring_duplicates, utcnow
from rivet.store.tables import pipeline_access, pipeline_pools, pipelines, secret_permissions

__all__ = [
    "PipelineAccess",
    "add_entries",
    "all_access",
    "pipeline_access_of",
    "remove_entry",
    "remove_secret_entry",
    "secret_entries",
    "set_entry",
    "set_pools",
    "set_secret_entry",
]


@dataclass(frozen=True)
class PipelineAccess:
    """A pipeline's owner, access list (subject -> level) and pools (empty: any)."""

    pipeline_id: str
    name: str
    owner: str
    entries: dict[str, str]
    pools: list[str]


def _read(conn: Connection, rows: Sequence[tuple[str, str, str]]) -> list[PipelineAccess]:
    ids = [row[0] for row in rows]
    entries: dict[str, dict[str, str]] = {i: {} for i in ids}
    pools: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        query = select(pipeline_access).where(pipeline_access.c.pipeline_id.in_(ids))
        for entry in conn.execute(query.order_by(pipeline_access.c.subject)):
            entries[entry.pipeline_id][entry.subject] = entry.level
        query2 = select(pipeline_pools).where(pipeline_pools.c.pipeline_id.in_(ids))
        for pool in conn.execute(query2.order_by(pipeline_pools.c.pool)):
            pools[pool.pipeline_id].append(pool.pool)
    return [PipelineAccess(i, name, owner, entries[i], pools[i]) for i, name, owner in rows]


def pipeline_access_of(conn: Connection, pipeline_id: str) -> PipelineAccess:
    query = select(pipelines.c.id, pipelines.c.name, pipelines.c.owner)
    row = conn.execute(query.where(pipelines.c.id == pipeline_id)).one()
    return _read(conn, [(row.id, row.name, row.owner)])[0]


def all_access(conn: Connection) -> dict[str, PipelineAccess]:
    """Every pipeline's access, by name (for filtering listings)."""
    query = select(pipelines.c.id, pipelines.c.name, pipelines.c.owner)
    found = _read(conn, [(r.id, r.name, r.owner) for r in conn.execute(query)])
    return {access.name: access for access in found}


def add_entries(conn: Connection, pipeline_id: str, entries: Mapping[str, str]) -> None:
    """Add entries a pipeline does not have yet (existing ones are kept)."""
    now = utcnow()
    for subject, level in entries.items():
        conn.execute(
            insert_ignoring_duplicates(conn, pipeline_access, "pipeline_id", "subject").values(
                pipeline_id=pipeline_id, subject=subject, level=level, created_at=now
            )
        )


def set_entry(conn: Connection, pipeline_id: str, subject: str, level: str) -> None:
    remove_entry(conn, pipeline_id, subject)
    conn.execute(
        pipeline_access.insert().values(
            pipeline_id=pipeline_id, subject=subject, level=level, created_at=utcnow()
        )
    )


def remove_entry(conn: Connection, pipeline_id: str, subject: str) -> bool:
    """True when there was such an entry."""
    entry = pipeline_access.c
    result = conn.execute(
        delete(pipeline_access).where(entry.pipeline_id == pipeline_id, entry.subject == subject)
    )
    return bool(result.rowcount)


def set_pools(conn: Connection, pipeline_id: str, pools: Iterable[str]) -> None:
    """Replace the pools a pipeline is restricted to (empty: no restriction)."""
    conn.execute(delete(pipeline_pools).where(pipeline_pools.c.pipeline_id == pipeline_id))
    rows = [{"pipeline_id": pipeline_id, "pool": pool} for pool in sorted(set(pools))]
    if rows:
        conn.execute(pipeline_pools.insert(), rows)


def secret_entries(conn: Connection, names: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """Name -> its (subject, level) entries, for each of ``names``."""
    wanted = sorted(set(names))
    found: dict[str, list[tuple[str, str]]] = {name: [] for name in wanted}
    if wanted:
        sp = secret_permissions.c
        query = select(sp.secret, sp.subject, sp.level).where(sp.secret.in_(wanted))
        for row in conn.execute(query.order_by(sp.secret, sp.subject)):
            found[row.secret].append((row.subject, row.level))
    return found


def set_secret_entry(conn: Connection, secret: str, subject: str, level: str) -> None:
    remove_secret_entry(conn, secret, subject)
    conn.execute(
        secret_permissions.insert().values(
            secret=secret, subject=subject, level=level, created_at=utcnow()
        )
    )


def remove_secret_entry(conn: Connection, secret: str, subject: str) -> bool:
    sp = secret_permissions.c
    result = conn.execute(
        delete(secret_permissions).where(sp.secret == secret, sp.subject == subject)
    )
    return bool(result.rowcount)
