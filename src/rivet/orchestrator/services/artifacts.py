"""Use cases of artifacts and job sources: uploads and downloads by runners (for the job
they hold), listings and downloads by users, source archives, and the cleanup.

Bytes stream through (:mod:`.spool`, the blob store's chunked reads); rows follow the
protocol of :mod:`rivet.store.artifacts` (touch, store, touch and refer), so that
cleanups on several orchestrators never delete a blob that is in use.

Who may do what:

- a runner only for the attempt it holds, still current (409 ``attempt_ended``
  otherwise, like its other job routes, checked before the body is read and again
  before the file is recorded);
- a job downloading another job's artifact: the downloading job's pipeline must be
  allowed to ``view`` the source job's pipeline, judged as the principal
  ``pipeline:<name>`` with the viewer role (:func:`pipeline_principal`): the default
  entry ``role:viewer`` lets every pipeline read; an owner who removes it grants
  ``pipeline:<name>`` view explicitly. A pipeline always reads its own jobs';
- a user: ``view`` on the job's pipeline to list or download, and the user role to
  upload a source archive (anyone who may launch).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
from sqlalchemy.engine import Connection

from rivet.blobstore import BlobStore
from rivet.domain.artifact_rules import artifact_name_problem, artifact_path_problem
from rivet.domain.permissions import PipelineLevel
from rivet.domain.principals import Principal, Role
from rivet.errors import InvalidRequest, NotFoundError, PermissionDeniedError, RequestTooLarge
from rivet.orchestrator.services.access import require_level
from rivet.orchestrator.services.spool import Spooled, spool
from rivet.orchestrator.services.work import WorkService
from rivet.protocol import ArtifactFileView, ArtifactList, ArtifactView, SourceInfo, SourceUploaded
from rivet.store import Database
from rivet.store import access as access_store
from rivet.store import artifacts as store
from rivet.store import jobs as job_store
from rivet.store import pipelines as pipeline_store
from rivet.store.portable import utcnow
from rivet.store.runners import RunnerRecord

__all__ = ["ArtifactLimits", "ArtifactService", "attach_source", "pipeline_principal"]

log = logging.getLogger(__name__)

# A blob nobody refers to is kept this long after its last use: an upload's bytes are
# stored before its row refers to them, and a source archive waits for its launch.
GRACE = timedelta(hours=1)
# A cleaner's mark older than this is taken over (the cleaner died half-way).
STALE = timedelta(hours=1)


@dataclass(frozen=True)
class ArtifactLimits:
    max_file_bytes: int
    max_job_bytes: int
    max_source_bytes: int
    retention_days: int
    cleanup_interval: float


def pipeline_principal(name: str) -> Principal:
    """Who a job of pipeline ``name`` is when it reads another pipeline's artifacts."""
    return Principal(actor=f"pipeline:{name}", display=f"pipeline '{name}'", role=Role.VIEWER)


def _view(record: store.ArtifactRecord) -> ArtifactView:
    return ArtifactView(
        job_id=record.job_id,
        name=record.name,
        created_at=record.created_at,
        expires_at=record.expires_at,
        size=record.size,
        files=[
            ArtifactFileView(path=f.path, size=f.size, sha256=f.sha256, mode=f.mode)
            for f in record.files
        ],
    )


def _checked_name(name: str, field: str) -> str:
    if (problem := artifact_name_problem(name)) is not None:
        raise InvalidRequest([(field, problem)])
    return name


def _checked_path(path: str, field: str) -> str:
    if (problem := artifact_path_problem(path)) is not None:
        raise InvalidRequest([(field, problem)])
    return path


def attach_source(conn: Connection, job_id: str, source: SourceInfo) -> None:
    """Record ``source`` as the job's (in the launch's transaction): the archive must
    have been uploaded (``POST /api/sources``) and still be stored."""
    size = store.use_blob(conn, source.sha256, utcnow())
    if size is None or size != source.size:
        raise NotFoundError(
            f"source archive {source.sha256[:12]} is not on the server (upload it with "
            "POST /api/sources first; unused uploads are removed after an hour)"
        )
    store.set_source(
        conn,
        job_id,
        store.SourceRecord(source.sha256, size, source.files, source.git_commit, source.git_dirty),
    )


class ArtifactService:
    def __init__(
        self, db: Database, blobs: BlobStore, work: WorkService, limits: ArtifactLimits
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.work = work
        self.limits = limits

    # --- storing ----------------------------------------------------------------------

    def _keep(self, spooled: Spooled) -> None:
        """Steps 1 and 2 of the upload protocol: touch the blob, store the bytes."""
        with self.db.write() as tx:
            store.touch_blob(tx.conn, spooled.sha256, spooled.size, utcnow())
        self.blobs.put(spooled.sha256, spooled.path)

    async def upload_source(
        self, principal: Principal, chunks: AsyncIterator[bytes]
    ) -> SourceUploaded:
        if not principal.role.at_least(Role.USER):
            raise PermissionDeniedError(f"{principal.display} may not upload sources")
        limit = self.limits.max_source_bytes
        spooled = await spool(chunks, limit, "RIVET_MAX_SOURCE_BYTES")
        try:
            await anyio.to_thread.run_sync(self._keep, spooled)
        finally:
            spooled.remove()
        return SourceUploaded(sha256=spooled.sha256, size=spooled.size)

    async def runner_upload(
        self,
        runner: RunnerRecord,
        job_id: str,
        attempt: int | None,
        name: str,
        path: str,
        mode: int,
        chunks: AsyncIterator[bytes],
    ) -> ArtifactFileView:
        """Add one file to the job's artifact ``name`` (a path uploaded again replaces it)."""
        name = _checked_name(name, "path.name")
        path = _checked_path(path, "query.path")
        job = await anyio.to_thread.run_sync(self.work.current, runner, job_id, attempt)
        used = await anyio.to_thread.run_sync(self._job_bytes, job.id, name, path)
        room = self.limits.max_job_bytes - used
        limit, setting = self.limits.max_file_bytes, "RIVET_ARTIFACT_MAX_FILE_BYTES"
        if room < limit:
            limit, setting = max(room, 0), "RIVET_ARTIFACT_MAX_JOB_BYTES"
        spooled = await spool(chunks, limit, setting)
        try:
            await anyio.to_thread.run_sync(self._keep, spooled)
            record = store.FileRecord(path, spooled.size, spooled.sha256, mode & 0o777)
            await anyio.to_thread.run_sync(self._record, runner, job_id, attempt, name, record)
        finally:
            spooled.remove()
        return ArtifactFileView(path=path, size=record.size, sha256=record.sha256, mode=record.mode)

    def _job_bytes(self, job_id: str, name: str, path: str) -> int:
        with self.db.read(primary=True) as conn:
            return store.job_bytes(conn, job_id, except_path=(name, path))

    def _record(
        self,
        runner: RunnerRecord,
        job_id: str,
        attempt: int | None,
        name: str,
        record: store.FileRecord,
    ) -> None:
        """Step 3: refer to the blob, if the attempt is still current and the job's
        artifacts stay within their limit."""
        job = self.work.current(runner, job_id, attempt)
        now = utcnow()
        days = self.limits.retention_days
        with self.db.write() as tx:
            store.touch_blob(tx.conn, record.sha256, record.size, now)
            used = store.job_bytes(tx.conn, job.id, except_path=(name, record.path))
            if used + record.size > self.limits.max_job_bytes:
                raise RequestTooLarge(self.limits.max_job_bytes, "RIVET_ARTIFACT_MAX_JOB_BYTES")
            store.add_file(
                tx.conn,
                job_id=job.id,
                pipeline_id=job_store.pipeline_of(tx.conn, job.id),
                name=name,
                file=record,
                now=now,
                expires_at=now + timedelta(days=days) if days else None,
            )

    # --- reading ----------------------------------------------------------------------

    def runner_lookup(
        self, runner: RunnerRecord, job_id: str, attempt: int | None, name: str, ref: str
    ) -> ArtifactList:
        """The artifact ``name`` of job ``ref`` (an id, or ``latest:PIPELINE``) for the
        job this runner holds, permission-checked (module docstring)."""
        name = _checked_name(name, "query.name")
        job = self.work.current(runner, job_id, attempt)
        with self.db.read(primary=True) as conn:
            reader = job_store.pipeline_of(conn, job.id)
            if ref.startswith("latest:"):
                pipeline = ref.removeprefix("latest:")
                pipeline_id = pipeline_store.resolve_pipeline(conn, pipeline)
                self._may_read(conn, reader, pipeline_id)
                found = store.latest_job_with(conn, pipeline_id, name, utcnow())
                if found is None:
                    raise NotFoundError(
                        f"no succeeded job of pipeline '{pipeline}' has an artifact '{name}'"
                    )
                source = found
            else:
                source = job_store.resolve_job(conn, ref)
                self._may_read(conn, reader, job_store.pipeline_of(conn, source))
            records = store.artifacts_of(conn, source, name)
        if not records:
            raise NotFoundError(f"job {source} has no artifact '{name}'")
        return ArtifactList(job_id=source, artifacts=[_view(r) for r in records])

    def _may_read(self, conn: Connection, reader_id: str, source_id: str) -> None:
        if reader_id == source_id:
            return
        reader = access_store.pipeline_access_of(conn, reader_id).name
        require_level(conn, pipeline_principal(reader), source_id, PipelineLevel.VIEW)

    def runner_file(
        self,
        runner: RunnerRecord,
        job_id: str,
        attempt: int | None,
        source_job: str,
        name: str,
        path: str,
    ) -> store.FileRecord:
        """One file of an artifact the runner's job may read (see :meth:`runner_lookup`)."""
        name = _checked_name(name, "query.name")
        job = self.work.current(runner, job_id, attempt)
        with self.db.read(primary=True) as conn:
            source = job_store.resolve_job(conn, source_job)
            self._may_read(
                conn, job_store.pipeline_of(conn, job.id), job_store.pipeline_of(conn, source)
            )
            return self._file(conn, source, name, path)

    def runner_source(
        self, runner: RunnerRecord, job_id: str, attempt: int | None
    ) -> store.SourceRecord:
        job = self.work.current(runner, job_id, attempt)
        with self.db.read(primary=True) as conn:
            source = store.source_of(conn, job.id)
        if source is None:
            raise NotFoundError(f"job {job.id} was launched without a source")
        return source

    def _file(self, conn: Connection, job_id: str, name: str, path: str) -> store.FileRecord:
        files = store.files_of(conn, job_id, name)
        if files is None:
            raise NotFoundError(f"job {job_id} has no artifact '{name}'")
        for file in files:
            if file.path == path:
                return file
        raise NotFoundError(f"artifact '{name}' of job {job_id} has no file {path!r}")

    def list_for(self, principal: Principal, ref: str) -> ArtifactList:
        with self.db.read() as conn:
            job_id = job_store.resolve_job(conn, ref)
            require_level(conn, principal, job_store.pipeline_of(conn, job_id), PipelineLevel.VIEW)
            records = store.artifacts_of(conn, job_id)
        return ArtifactList(job_id=job_id, artifacts=[_view(r) for r in records])

    def file_for(self, principal: Principal, ref: str, name: str, path: str) -> store.FileRecord:
        name = _checked_name(name, "path.name")
        with self.db.read() as conn:
            job_id = job_store.resolve_job(conn, ref)
            require_level(conn, principal, job_store.pipeline_of(conn, job_id), PipelineLevel.VIEW)
            return self._file(conn, job_id, name, path)

    def read(self, digest: str, start: int, end: int | None) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of a blob a caller above was allowed to see."""
        try:
            return self.blobs.read(digest, start, end)
        except FileNotFoundError:
            raise NotFoundError(
                f"the bytes of {digest[:12]} are missing from the {self.blobs.description}"
            ) from None

    # --- cleanup ----------------------------------------------------------------------

    def cleanup(self, now: datetime | None = None) -> tuple[int, int]:
        """Delete expired artifacts, then unused blobs (module docstring of
        :mod:`rivet.store.artifacts`); (artifacts, blobs) removed. Safe to run on
        several orchestrators at once."""
        now = now or utcnow()
        expired = 0
        while True:
            with self.db.write() as tx:
                count = store.expire_artifacts(tx.conn, now)
            expired += count
            if count < 500:
                break
        removed = 0
        while True:
            with self.db.write() as tx:
                marked = store.mark_unused_blobs(tx.conn, now, GRACE, STALE)
            for digest in marked:
                self.blobs.delete(digest)
                with self.db.write() as tx:
                    removed += store.forget_blob(tx.conn, digest, now)
            if len(marked) < 500:
                break
        return expired, removed

    async def run(self, stop: asyncio.Event) -> None:
        """Clean up every ``artifacts.cleanup_interval`` seconds until ``stop``."""
        while not stop.is_set():
            try:
                expired, removed = await anyio.to_thread.run_sync(self.cleanup)
                if expired or removed:
                    log.info(
                        "artifact cleanup: %d expired artifacts, %d blobs removed", expired, removed
                    )
            except Exception as exc:  # a store or database outage: try again next time
                log.warning("artifact cleanup failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.limits.cleanup_interval)
