"""Runners and the one-time registration tokens they are created from.

Only token *hashes* reach this module; hashing and comparison policy live in the
orchestrator's auth module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, func, select, update
from sqlalchemy.engine import Connection

from rivet.domain import JobStatus
from rivet.errors import NotFoundError
from rivet.limits import scrub
from rivet.protocol import RegistrationTokenView, RunnerPoolView, RunnerView
from rivet.store.ids import new_id, resolve_prefix
from rivet.store.portable import utcnow
from rivet.store.tables import jobs, registration_tokens, runner_pools, runners

__all__ = [
    "RunnerRecord",
    "consume_registration_token",
    "create_registration_token",
    "create_runner",
    "delete_registration_token",
    "get_runner",
    "list_pools",
    "list_registration_tokens",
    "list_runners",
    "remove_runner",
    "runner_by_token",
    "set_pool",
    "touch_runner",
    "update_runner",
]


@dataclass(frozen=True)
class RunnerRecord:
    """An authenticated runner: who it is and what it offers."""

    id: str
    name: str
    tags: dict[str, str]
    plugins: list[str]
    last_seen: datetime | None = None
    removed_at: datetime | None = None
    pool: str = "default"


def create_registration_token(
    conn: Connection, token_hash: str, description: str | None
) -> RegistrationTokenView:
    token_id, now = new_id(), utcnow()
    conn.execute(
        registration_tokens.insert().values(
            id=token_id, token_hash=token_hash, description=description, created_at=now
        )
    )
    return RegistrationTokenView(id=token_id, description=description, created_at=now)


def list_registration_tokens(conn: Connection) -> list[RegistrationTokenView]:
    query = select(registration_tokens).order_by(registration_tokens.c.created_at)
    return [
        RegistrationTokenView(
            id=row.id,
            description=row.description,
            created_at=row.created_at,
            used=row.used_at is not None,
        )
        for row in conn.execute(query)
    ]


def delete_registration_token(conn: Connection, ref: str) -> str:
    """Delete the token ``ref`` (id or unique prefix); its id."""
    token_id = resolve_prefix(conn, registration_tokens, ref, "registration token")
    conn.execute(delete(registration_tokens).where(registration_tokens.c.id == token_id))
    return token_id


def consume_registration_token(conn: Connection, token_hash: str) -> str | None:
    """Mark an unused token used, atomically; its id, or None if unknown or used before."""
    tokens = registration_tokens.c
    statement = (
        update(registration_tokens)
        .where(tokens.token_hash == token_hash, tokens.used_at.is_(None))
        .values(used_at=utcnow())
        .returning(tokens.id)
    )
    return conn.execute(statement).scalar_one_or_none()


def create_runner(
    conn: Connection,
    name: str,
    token_hash: str,
    tags: Mapping[str, str],
    plugins: Sequence[str],
    registration_token_id: str | None = None,
    pool: str = "default",
) -> str:
    runner_id = new_id()
    conn.execute(
        runners.insert().values(
            id=runner_id,
            name=name,
            token_hash=token_hash,
            tags=dict(tags),
            plugins=sorted(set(plugins)),
            created_at=utcnow(),
            pool=pool,
        )
    )
    if registration_token_id is not None:
        conn.execute(
            update(registration_tokens)
            .where(registration_tokens.c.id == registration_token_id)
            .values(runner_id=runner_id)
        )
    return runner_id


def runner_by_token(conn: Connection, token_hash: str) -> RunnerRecord | None:
    row = conn.execute(_BY_TOKEN, {"token_hash": token_hash}).one_or_none()
    if row is None:
        return None
    return RunnerRecord(
        row.id,
        row.name,
        dict(row.tags),
        list(row.plugins),
        row.last_seen,
        row.removed_at,
        row.pool,
    )


_BY_TOKEN = select(
    runners.c.id,
    runners.c.name,
    runners.c.tags,
    runners.c.plugins,
    runners.c.last_seen,
    runners.c.removed_at,
    runners.c.pool,
).where(runners.c.token_hash == bindparam("token_hash"))


def update_runner(
    conn: Connection,
    ref: str,
    tags: Mapping[str, str] | None = None,
    plugins: Sequence[str] | None = None,
    pool: str | None = None,
) -> RunnerView:
    """Replace the stored tags, plugins and/or pool of a runner (id or unique prefix);
    the runner's claims are matched against these from its next claim on."""
    runner_id = resolve_prefix(conn, runners, ref, "runner")
    values: dict[str, Any] = {}
    if tags is not None:
        values["tags"] = dict(tags)
    if plugins is not None:
        values["plugins"] = sorted(set(plugins))
    if pool is not None:
        values["pool"] = pool
    if values:
        conn.execute(update(runners).where(runners.c.id == runner_id).values(**values))
    return get_runner(conn, runner_id)


def remove_runner(conn: Connection, runner_id: str, at: datetime) -> None:
    """Mark the runner removed at ``at`` (kept: the jobs it ran still name it); its
    token is refused from then on (the caller's rule, see ``runner_by_token``)."""
    conn.execute(update(runners).where(runners.c.id == runner_id).values(removed_at=at))


def touch_runner(conn: Connection, runner_id: str, at: datetime) -> None:
    conn.execute(update(runners).where(runners.c.id == runner_id).values(last_seen=at))


def _views(conn: Connection, rows: Sequence[Row[Any]]) -> list[RunnerView]:
    current: dict[str, list[str]] = {row.id: [] for row in rows}
    if current:
        query = (
            select(jobs.c.runner_id, jobs.c.id)
            .where(jobs.c.status == JobStatus.RUNNING.value, jobs.c.runner_id.in_(current))
            .order_by(jobs.c.started_at)
        )
        for job in conn.execute(query):
            current[job.runner_id].append(job.id)
    return [
        RunnerView(
            id=row.id,
            name=row.name,
            # scrub: rows stored by an older version may hold text no answer can carry.
            tags=scrub(row.tags),
            plugins=scrub(row.plugins),
            last_seen=row.last_seen,
            current_jobs=current[row.id],
            created_at=row.created_at,
            removed_at=row.removed_at,
            pool=row.pool,
        )
        for row in rows
    ]


def list_runners(conn: Connection, *, include_removed: bool = False) -> list[RunnerView]:
    """By name; removed runners only with ``include_removed``."""
    query = select(runners).order_by(runners.c.name, runners.c.created_at)
    if not include_removed:
        query = query.where(runners.c.removed_at.is_(None))
    return _views(conn, list(conn.execute(query)))


def set_pool(conn: Connection, name: str, exclusive: bool) -> RunnerPoolView:
    """Configure the pool ``name`` (it need not have runners yet)."""
    now = utcnow()
    conn.execute(delete(runner_pools).where(runner_pools.c.name == name))
    conn.execute(runner_pools.insert().values(name=name, exclusive=exclusive, updated_at=now))
    return next(view for view in list_pools(conn) if view.name == name)


def list_pools(conn: Connection) -> list[RunnerPoolView]:
    """Every pool that has runners or was configured, by name."""
    counts: dict[str, int] = {
        row.pool: int(row.n)
        for row in conn.execute(
            select(runners.c.pool, func.count().label("n")).group_by(runners.c.pool)
        )
    }
    exclusive = {row.name: row.exclusive for row in conn.execute(select(runner_pools))}
    return [
        RunnerPoolView(
            name=name, exclusive=bool(exclusive.get(name, False)), runners=counts.get(name, 0)
        )
        for name in sorted(set(counts) | set(exclusive))
    ]


def get_runner(conn: Connection, ref: str) -> RunnerView:
    runner_id = resolve_prefix(conn, runners, ref, "runner")
    rows = list(conn.execute(select(runners).where(runners.c.id == runner_id)))
    if not rows:
        raise NotFoundError(f"no runner with id {ref!r}")
    return _views(conn, rows)[0]
