"""`alembic upgrade head` on an empty database yields exactly the table metadata."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from rivet.store import Database, upgrade
from rivet.store.tables import metadata
from rivet.store.testing import postgres_test_url, scratch_postgres


def test_upgrade_head_matches_metadata(database_url: str) -> None:
    db = Database(database_url)
    try:
        upgrade(db)
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert version == "0007"
        upgrade(db)  # a second start changes nothing
        assert set(inspect(db.engine).get_table_names()) >= set(metadata.tables)
    finally:
        db.close()


def test_queued_jobs_index_is_partial(database_url: str) -> None:
    db = Database(database_url)
    try:
        upgrade(db)
        with db.engine.connect() as conn:
            if db.dialect == "postgresql":
                sql = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_jobs_queued'"
            else:
                sql = "SELECT sql FROM sqlite_master WHERE name = 'ix_jobs_queued'"
            definition = conn.execute(text(sql)).scalar_one()
        assert "WHERE" in definition.upper()
        assert "queued" in definition
    finally:
        db.close()


@contextmanager
def fresh_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same kind as ``database_url`` (which other tests of
    this module have already migrated)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    base = postgres_test_url()
    assert base is not None
    with scratch_postgres(base) as url:
        yield url


def test_0003_covers_no_version_stored_before_it(database_url: str, tmp_path: Path) -> None:
    """Rows from before 0003: nobody knows who pushed those versions, so they are
    'unknown' and every existing grant covers only versions pushed afterwards."""
    with fresh_database(database_url, tmp_path) as url:
        _check_0003_backfill(url)


def _check_0003_backfill(url: str) -> None:
    db = Database(url)
    try:
        upgrade(db, "0002")
        now = "2026-12-01 10:00:00"
        with db.engine.begin() as conn:
            conn.execute(text(f"INSERT INTO pipelines VALUES ('p1', 'deploy', '{now}')"))
            for n in (1, 2):
                conn.execute(
                    text(
                        "INSERT INTO pipeline_versions (id, pipeline_id, version, source, "
                        f"filename, definition, created_at) VALUES ('v{n}', 'p1', {n}, 'src', "
                        f"'deploy.lua', '{{}}', '{now}')"
                    )
                )
            conn.execute(
                text(f"INSERT INTO secrets VALUES ('s1', 'KEY', 'v1.x.y.z', 'k', '{now}', '{now}')")
            )
            for pipeline in ("deploy", "not-yet-created"):
                conn.execute(
                    text(f"INSERT INTO secret_grants VALUES ('s1', '{pipeline}', '{now}')")
                )
        upgrade(db)
        with db.engine.connect() as conn:
            creators = conn.execute(
                text("SELECT version, created_by FROM pipeline_versions ORDER BY version")
            ).all()
            grants = conn.execute(
                text("SELECT pipeline, first_version FROM secret_grants ORDER BY pipeline")
            ).all()
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
        assert [tuple(r) for r in creators] == [(1, "unknown"), (2, "unknown")]
        assert [tuple(r) for r in grants] == [("deploy", 3), ("not-yet-created", 1)]
    finally:
        db.close()
