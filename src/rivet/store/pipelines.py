"""Pipelines and their immutable versions."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row, and_, func, select, update
from sqlalchemy.engine import Connection

from rivet.domain import PipelineDefinition
from rivet.domain.permissions import DEFAULT_PIPELINE_ACCESS
from rivet.errors import NotFoundError
from rivet.limits import scrub
from rivet.protocol import PipelinePage, PipelineView
from rivet.store.access import add_entries
from rivet.store.ids import looks_like_id, new_id, resolve_prefix
from rivet.store.portable import insert_ignoring_duplicates, utcnow
from rivet.store.tables import pipeline_versions as pv
from rivet.store.tables import pipelines as p

__all__ = [
    "ArchivedFilter",
    "PipelineVersion",
    "add_version",
    "archived_at",
    "create_version",
    "get_pipeline",
    "get_version",
    "list_latest",
    "list_versions",
    "lock_pipeline",
    "resolve_pipeline",
    "set_archived",
    "version_creator",
]


@dataclass(frozen=True)
class PipelineVersion:
    """What a launch needs: the pinned version and its definition."""

    id: str
    pipeline_id: str
    name: str
    version: int
    definition: PipelineDefinition
    created_by: str
    archived_at: datetime | None = None


# Which pipelines a listing shows: the active ones, all, or only the archived ones.
ArchivedFilter = Literal["hide", "include", "only"]


def lock_pipeline(conn: Connection, name: str, owner: str) -> tuple[str, bool]:
    """The id of the pipeline ``name`` (created, without versions, owned by ``owner``
    and with the default access list, if missing), locked for the rest of the
    transaction; True when it was created now.

    FOR UPDATE serialises, on PostgreSQL, concurrent creates of one name (so version
    numbers never collide) and creates against grants, which lock the same row
    (SQLite writers are serialised anyway)."""
    # RETURNING, not rowcount: the row is returned only when it was inserted now.
    inserted = conn.execute(
        insert_ignoring_duplicates(conn, p, "name")
        .values(id=new_id(), name=name, created_at=utcnow(), owner=owner)
        .returning(p.c.id)
    ).scalar_one_or_none()
    pipeline_id: str = conn.execute(
        select(p.c.id).where(p.c.name == name).with_for_update()
    ).scalar_one()
    created = inserted is not None
    if created:
        add_entries(conn, pipeline_id, DEFAULT_PIPELINE_ACCESS)
    return pipeline_id, created


def create_version(
    conn: Connection,
    definition: PipelineDefinition,
    source: str,
    filename: str,
    *,
    created_by: str,
) -> PipelineView:
    """Store ``definition`` as the next version of the pipeline of that name (1, 2, 3 …),
    created by the actor ``created_by`` (:mod:`rivet.domain.actors`)."""
    pipeline_id, _ = lock_pipeline(conn, definition.name, created_by)
    return add_version(conn, pipeline_id, definition, source, filename, created_by=created_by)


def add_version(
    conn: Connection,
    pipeline_id: str,
    definition: PipelineDefinition,
    source: str,
    filename: str,
    *,
    created_by: str,
) -> PipelineView:
    """The next version of the pipeline ``pipeline_id``, locked by :func:`lock_pipeline`."""
    now = utcnow()
    current = conn.execute(
        select(func.coalesce(func.max(pv.c.version), 0)).where(pv.c.pipeline_id == pipeline_id)
    ).scalar_one()
    version = int(current) + 1
    conn.execute(
        pv.insert().values(
            id=new_id(),
            pipeline_id=pipeline_id,
            version=version,
            source=source,
            filename=filename,
            definition=definition.to_dict(),
            created_at=now,
            created_by=created_by,
        )
    )
    return PipelineView(
        id=pipeline_id,
        name=definition.name,
        version=version,
        description=definition.description,
        definition=definition.to_dict(),
        source=source,
        created_at=now,
        created_by=created_by,
        versions=version,
        owner=conn.execute(select(p.c.owner).where(p.c.id == pipeline_id)).scalar_one(),
    )


def resolve_pipeline(conn: Connection, ref: str) -> str:
    """Pipeline id from a name or a unique id prefix (the name wins)."""
    found: str | None = conn.execute(select(p.c.id).where(p.c.name == ref)).scalar_one_or_none()
    if found is not None:
        return found
    if not looks_like_id(ref):
        raise NotFoundError(f"no pipeline named {ref!r}")
    return resolve_prefix(conn, p, ref, "pipeline")


def _counts() -> Any:
    return (
        select(
            pv.c.pipeline_id,
            func.max(pv.c.version).label("latest"),
            func.count().label("versions"),
        )
        .group_by(pv.c.pipeline_id)
        .subquery()
    )


def _view(row: Row[Any]) -> PipelineView:
    # scrub: a definition stored by an older version may hold values no answer can
    # carry (an infinite default); new rows are validated before they are written.
    definition: dict[str, Any] = scrub(row.definition)
    source = getattr(row, "source", None)
    return PipelineView(
        id=row.id,
        name=row.name,
        version=row.version,
        description=definition.get("description"),
        definition=definition,
        source=source,
        created_at=row.created_at,
        created_by=row.created_by,
        versions=row.versions,
        archived_at=row.archived_at,
        owner=row.owner,
    )


def _select(counts: Any, *, with_source: bool) -> Any:
    # Listings never read the source: it can be a megabyte per version.
    columns = [
        p.c.id,
        p.c.name,
        p.c.archived_at,
        p.c.owner,
        pv.c.version,
        pv.c.definition,
        pv.c.created_at,
        pv.c.created_by,
    ]
    if with_source:
        columns.append(pv.c.source)
    return (
        select(*columns, counts.c.versions)
        .join(counts, counts.c.pipeline_id == p.c.id)
        .join(pv, pv.c.pipeline_id == p.c.id)
    )


def list_latest(
    conn: Connection,
    *,
    archived: ArchivedFilter = "hide",
    limit: int = 50,
    offset: int = 0,
    hidden: Collection[str] = (),
) -> PipelinePage:
    """The latest version of each pipeline, by name, one page (``limit`` from
    ``offset``, like :func:`rivet.store.jobs.list_jobs`); ``total`` counts every
    pipeline the filter keeps. Pipelines without a version yet, and the ids in
    ``hidden`` (those the asker may not view), are not listed."""
    counts = _counts()
    conditions = []
    if hidden:
        conditions.append(p.c.id.not_in(list(hidden)))
    if archived == "hide":
        conditions.append(p.c.archived_at.is_(None))
    elif archived == "only":
        conditions.append(p.c.archived_at.is_not(None))
    total = conn.execute(
        select(func.count())
        .select_from(p.join(counts, counts.c.pipeline_id == p.c.id))
        .where(*conditions)
    ).scalar_one()
    query = (
        _select(counts, with_source=False)
        .where(pv.c.version == counts.c.latest, *conditions)
        .order_by(p.c.name)
        .limit(limit)
        .offset(offset)
    )
    return PipelinePage(
        pipelines=[_view(row) for row in conn.execute(query)],
        total=int(total),
        limit=limit,
        offset=offset,
    )


def archived_at(conn: Connection, pipeline_id: str, *, share: bool = False) -> datetime | None:
    """When the pipeline was archived, or None while it is active. ``share`` (in a
    write transaction) holds a shared row lock on PostgreSQL, so an archive that
    commits meanwhile waits for this transaction rather than slipping past the check;
    concurrent launches do not wait for each other (SQLite serialises writers anyway)."""
    query = select(p.c.archived_at).where(p.c.id == pipeline_id)
    if share:
        query = query.with_for_update(read=True)
    found: datetime | None = conn.execute(query).scalar_one_or_none()
    return found


def set_archived(conn: Connection, pipeline_id: str, at: datetime | None) -> None:
    """Archive the pipeline (``at``: when) or restore it (``None``)."""
    conn.execute(update(p).where(p.c.id == pipeline_id).values(archived_at=at))


def get_pipeline(conn: Connection, ref: str, version: int | None = None) -> PipelineView:
    """One version (default: the latest) with its source."""
    pipeline_id = resolve_pipeline(conn, ref)
    counts = _counts()
    wanted = counts.c.latest if version is None else version
    query = _select(counts, with_source=True).where(p.c.id == pipeline_id, pv.c.version == wanted)
    row = conn.execute(query).one_or_none()
    if row is None:
        raise NotFoundError(f"pipeline {ref!r} has no version {version}")
    return _view(row)


def list_versions(conn: Connection, ref: str) -> list[PipelineView]:
    pipeline_id = resolve_pipeline(conn, ref)
    query = (
        _select(_counts(), with_source=False).where(p.c.id == pipeline_id).order_by(pv.c.version)
    )
    return [_view(row) for row in conn.execute(query)]


def get_version(conn: Connection, ref: str, version: int | None = None) -> PipelineVersion:
    """The version a launch pins (default: the latest)."""
    pipeline_id = resolve_pipeline(conn, ref)
    query = select(
        pv.c.id, pv.c.version, pv.c.definition, pv.c.created_by, p.c.name, p.c.archived_at
    ).join(p, p.c.id == pv.c.pipeline_id)
    query = query.where(pv.c.pipeline_id == pipeline_id)
    if version is None:
        query = query.order_by(pv.c.version.desc()).limit(1)
    else:
        query = query.where(and_(pv.c.version == version))
    row = conn.execute(query).one_or_none()
    if row is None:
        raise NotFoundError(f"pipeline {ref!r} has no version {version}")
    return PipelineVersion(
        id=row.id,
        pipeline_id=pipeline_id,
        name=row.name,
        version=row.version,
        definition=PipelineDefinition.from_dict(row.definition),
        created_by=row.created_by,
        archived_at=row.archived_at,
    )


def version_creator(conn: Connection, pipeline_id: str, version: int) -> str:
    """Who created version ``version`` of the pipeline ``pipeline_id``."""
    query = select(pv.c.created_by).where(pv.c.pipeline_id == pipeline_id, pv.c.version == version)
    found: str | None = conn.execute(query).scalar_one_or_none()
    if found is None:
        raise NotFoundError(f"pipeline {pipeline_id} has no version {version}")
    return found
