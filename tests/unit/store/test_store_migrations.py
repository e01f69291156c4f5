"""`alembic upgrade head` on an empty database yields exactly the table metadata."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from rivet.store import Database, upgrade
from rivet.store.tables import metadata


def test_upgrade_head_matches_metadata(database_url: str) -> None:
    db = Database(database_url)
    try:
        upgrade(db)
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert version == "0002"
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
