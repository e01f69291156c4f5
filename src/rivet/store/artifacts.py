"""Artifacts, their files, job sources and the blobs they refer to: rows in, records out.

The bytes live in a blob store (:mod:`rivet.blobstore`), named by SHA-256; the
``artifact_blobs`` rows say which blobs exist and when each was last used, so that
several orchestrators can clean up safely (docs/artifacts.md, "Cleanup"):

1. An upload *touches* its blob (:func:`touch_blob`) before it stores the bytes and
   again, in the transaction that adds the file or source row, after it; a touch of a
   blob that a cleaner has marked for deletion fails with :class:`BlobBeingDeleted`
   (retry), so a blob is never re-used while its bytes are being removed.
2. Expired artifacts are deleted a batch at a time (:func:`expire_artifacts`), rows
   locked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so that cleaners running at
   once take different rows.
3. A cleaner *marks* blobs that no file or source refers to and that nobody used for
   ``grace`` (:func:`mark_unused_blobs`, a conditional ``UPDATE … RETURNING`` over
   rows it locks, skipping locked ones), deletes their bytes, then deletes each row
   only if it still carries its own mark (:func:`forget_blob`). A mark older than
   ``stale`` (a cleaner that died) may be taken over.

Both the touch's upsert and the mark lock the blob row, and adding a file row takes a
key-share lock on it (the foreign key), so on PostgreSQL a mark and a use of the same
blob are serialised; SQLite has one writer at a time anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from rivet.errors import StorageUnavailable
from rivet.store.ids import new_id
from rivet.store.tables import artifact_blobs, artifact_files, artifacts, job_sources, jobs

__all__ = [
    "ArtifactRecord",
    "BlobBeingDeleted",
    "FileRecord",
    "SourceRecord",
    "add_file",
    "artifacts_of",
    "expire_artifacts",
    "files_of",
    "forget_blob",
    "job_bytes",
    "latest_job_with",
    "mark_unused_blobs",
    "set_source",
    "source_of",
    "sources_of",
    "touch_blob",
    "use_blob",
]


class BlobBeingDeleted(StorageUnavailable):
    """The blob an upload would use is being deleted by an artifact cleanup right now:
    the same upload succeeds once it is gone (a moment later)."""

    def __init__(self, digest: str) -> None:
        super().__init__("artifact store", f"blob {digest} is being deleted")
        self.args = (
            f"the artifact store is removing an unused copy of this content ({digest[:12]}) "
            "right now; retry the upload in a moment",
        )


@dataclass(frozen=True)
class FileRecord:
    path: str
    size: int
    sha256: str
    mode: int


@dataclass(frozen=True)
class ArtifactRecord:
    id: str
    job_id: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    files: list[FileRecord] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class SourceRecord:
    sha256: str
    size: int
    files: int
    git_commit: str | None
    git_dirty: bool | None


def _insert(conn: Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def touch_blob(conn: Connection, digest: str, size: int, now: datetime) -> None:
    """Record that ``digest`` (``size`` bytes) is in use now; raises
    :class:`BlobBeingDeleted` when a cleaner has marked it."""
    b = artifact_blobs.c
    statement = (
        _insert(conn)(artifact_blobs)
        .values(sha256=digest, size=size, created_at=now, used_at=now, deleting_at=None)
        .on_conflict_do_update(
            index_elements=[b.sha256], set_={"used_at": now}, where=b.deleting_at.is_(None)
        )
        .returning(b.sha256)
    )
    if conn.execute(statement).first() is None:
        raise BlobBeingDeleted(digest)


def use_blob(conn: Connection, digest: str, now: datetime) -> int | None:
    """Touch the stored blob ``digest``; its size, or None when there is none (never
    uploaded, cleaned up, or being deleted)."""
    b = artifact_blobs.c
    found = conn.execute(
        update(artifact_blobs)
        .where(b.sha256 == digest, b.deleting_at.is_(None))
        .values(used_at=now)
        .returning(b.size)
    ).first()
    return None if found is None else int(found.size)


def add_file(
    conn: Connection,
    *,
    job_id: str,
    pipeline_id: str,
    name: str,
    file: FileRecord,
    now: datetime,
    expires_at: datetime | None,
) -> str:
    """Add ``file`` to the job's artifact ``name`` (created on its first file; a file
    with the same path is replaced); the artifact's id. The blob must be touched in
    the same transaction."""
    a = artifacts.c
    row = conn.execute(
        select(a.id).where(a.job_id == job_id, a.name == name).with_for_update()
    ).first()
    if row is None:
        artifact_id = new_id()
        conn.execute(
            artifacts.insert().values(
                id=artifact_id,
                job_id=job_id,
                pipeline_id=pipeline_id,
                name=name,
                created_at=now,
                expires_at=expires_at,
            )
        )
    else:
        artifact_id = row.id
    f = artifact_files.c
    conn.execute(delete(artifact_files).where(f.artifact_id == artifact_id, f.path == file.path))
    conn.execute(
        artifact_files.insert().values(
            artifact_id=artifact_id,
            path=file.path,
            size=file.size,
            sha256=file.sha256,
            mode=file.mode,
        )
    )
    return str(artifact_id)


def job_bytes(conn: Connection, job_id: str, *, except_path: tuple[str, str] | None = None) -> int:
    """Bytes of every artifact file of the job (but the file ``(name, path)``, which an
    upload is about to replace)."""
    f, a = artifact_files.c, artifacts.c
    query = (
        select(func.coalesce(func.sum(f.size), 0))
        .join_from(artifact_files, artifacts, f.artifact_id == a.id)
        .where(a.job_id == job_id)
    )
    if except_path is not None:
        name, path = except_path
        query = query.where(~((a.name == name) & (f.path == path)))
    return int(conn.execute(query).scalar_one())


def artifacts_of(conn: Connection, job_id: str, name: str | None = None) -> list[ArtifactRecord]:
    """The job's artifacts (or the one called ``name``) with their files, by name."""
    a, f = artifacts.c, artifact_files.c
    query = select(artifacts).where(a.job_id == job_id).order_by(a.name)
    if name is not None:
        query = query.where(a.name == name)
    found = list(conn.execute(query))
    if not found:
        return []
    files: dict[str, list[FileRecord]] = {row.id: [] for row in found}
    for row in conn.execute(
        select(artifact_files).where(f.artifact_id.in_(list(files))).order_by(f.path)
    ):
        files[row.artifact_id].append(FileRecord(row.path, int(row.size), row.sha256, row.mode))
    return [
        ArtifactRecord(r.id, r.job_id, r.name, r.created_at, r.expires_at, files[r.id])
        for r in found
    ]


def files_of(conn: Connection, job_id: str, name: str) -> list[FileRecord] | None:
    """The files of the job's artifact ``name``; None when it has none by that name."""
    found = artifacts_of(conn, job_id, name)
    return found[0].files if found else None


def latest_job_with(conn: Connection, pipeline_id: str, name: str, now: datetime) -> str | None:
    """The newest succeeded job of the pipeline that has an unexpired artifact ``name``."""
    a, j = artifacts.c, jobs.c
    query = (
        select(j.id)
        .join_from(artifacts, jobs, a.job_id == j.id)
        .where(a.pipeline_id == pipeline_id, a.name == name, j.status == "succeeded")
        .where((a.expires_at.is_(None)) | (a.expires_at > now))
        .order_by(j.created_at.desc(), j.id.desc())
        .limit(1)
    )
    return conn.execute(query).scalar()


def set_source(conn: Connection, job_id: str, source: SourceRecord) -> None:
    conn.execute(
        job_sources.insert().values(
            job_id=job_id,
            sha256=source.sha256,
            size=source.size,
            files=source.files,
            git_commit=source.git_commit,
            git_dirty=source.git_dirty,
        )
    )


def sources_of(conn: Connection, job_ids: Sequence[str]) -> dict[str, SourceRecord]:
    if not job_ids:
        return {}
    s = job_sources.c
    return {
        row.job_id: SourceRecord(
            row.sha256, int(row.size), row.files, row.git_commit, row.git_dirty
        )
        for row in conn.execute(select(job_sources).where(s.job_id.in_(list(job_ids))))
    }


def source_of(conn: Connection, job_id: str) -> SourceRecord | None:
    return sources_of(conn, [job_id]).get(job_id)


# --- cleanup ---------------------------------------------------------------------------


def expire_artifacts(conn: Connection, now: datetime, limit: int = 500) -> int:
    """Delete up to ``limit`` artifacts past their expiry (and their file rows); how many.
    Rows another cleaner holds are skipped, not waited for."""
    a = artifacts.c
    query = (
        select(a.id)
        .where(a.expires_at.is_not(None), a.expires_at < now)
        .order_by(a.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(conn.execute(query).scalars())
    if ids:
        conn.execute(delete(artifact_files).where(artifact_files.c.artifact_id.in_(ids)))
        conn.execute(delete(artifacts).where(a.id.in_(ids)))
    return len(ids)


def mark_unused_blobs(
    conn: Connection, now: datetime, grace: timedelta, stale: timedelta, limit: int = 500
) -> list[str]:
    """Mark (``deleting_at = now``) up to ``limit`` blobs nothing refers to and nobody
    used within ``grace`` (or whose mark is older than ``stale``); their digests."""
    b = artifact_blobs.c
    unreferenced = ~exists().where(artifact_files.c.sha256 == b.sha256) & ~exists().where(
        job_sources.c.sha256 == b.sha256
    )
    candidates = (
        select(b.sha256)
        .where(b.used_at < now - grace, unreferenced)
        .where(b.deleting_at.is_(None) | (b.deleting_at < now - stale))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    digests = list(conn.execute(candidates).scalars())
    if not digests:
        return []
    # Conditional again on the rows now locked: a use committed meanwhile wins.
    marked = conn.execute(
        update(artifact_blobs)
        .where(b.sha256.in_(digests), b.used_at < now - grace, unreferenced)
        .values(deleting_at=now)
        .returning(b.sha256)
    )
    return sorted(marked.scalars())


def forget_blob(conn: Connection, digest: str, marked_at: datetime) -> bool:
    """Delete the blob's row if it still carries the mark made at ``marked_at``."""
    b = artifact_blobs.c
    result = conn.execute(
        delete(artifact_blobs).where(b.sha256 == digest, b.deleting_at == marked_at)
    )
    return bool(result.rowcount)
