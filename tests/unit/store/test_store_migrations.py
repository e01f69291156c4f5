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
        assert version == "0012"
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


def test_0006_keeps_what_everyone_could_do_and_every_row(database_url: str, tmp_path: Path) -> None:
    """Rows from before 0006: a pipeline's owner is its first version's creator, it gets
    the default access entries (everyone views, every user launches), runners join the
    pool 'default', jobs were launched by 'unknown'; no row is lost (on SQLite, adding
    the columns must not recreate the tables, which would cascade)."""
    with fresh_database(database_url, tmp_path) as url:
        db = Database(url)
        try:
            upgrade(db, "0004")
            now = "2026-12-01 10:00:00"
            with db.engine.begin() as conn:
                conn.execute(text(f"INSERT INTO pipelines VALUES ('p1', 'deploy', '{now}')"))
                for n, who in ((1, "admin"), (2, "anonymous")):
                    conn.execute(
                        text(
                            "INSERT INTO pipeline_versions (id, pipeline_id, version, source, "
                            f"filename, definition, created_at, created_by) VALUES ('v{n}', "
                            f"'p1', {n}, 'src', 'deploy.lua', '{{}}', '{now}', '{who}')"
                        )
                    )
                conn.execute(
                    text(
                        "INSERT INTO runners (id, name, token_hash, tags, plugins, created_at) "
                        f"VALUES ('r1', 'box', 'h', '{{}}', '[]', '{now}')"
                    )
                )
                conn.execute(
                    text(
                        "INSERT INTO jobs (id, pipeline_version_id, pipeline_id, status, inputs, "
                        "outputs, cancel_requested, required_tags, required_plugins, created_at) "
                        f"VALUES ('j1', 'v1', 'p1', 'queued', '{{}}', '{{}}', false, '{{}}', "
                        f"'[]', '{now}')"
                    )
                )
                conn.execute(
                    text(
                        "INSERT INTO job_stages (job_id, idx, name, status) "
                        "VALUES ('j1', 0, 's', 'pending')"
                    )
                )
            upgrade(db)
            with db.engine.connect() as conn:
                owner = conn.execute(text("SELECT owner FROM pipelines")).scalar_one()
                entries = conn.execute(
                    text("SELECT subject, level FROM pipeline_access ORDER BY subject")
                ).all()
                pool = conn.execute(text("SELECT pool FROM runners")).scalar_one()
                job = conn.execute(text("SELECT launched_by, cancelled_by FROM jobs")).one()
                versions = conn.execute(text("SELECT count(*) FROM pipeline_versions")).scalar()
                stages = conn.execute(text("SELECT count(*) FROM job_stages")).scalar()
            assert owner == "admin"
            assert [tuple(e) for e in entries] == [("role:user", "launch"), ("role:viewer", "view")]
            assert pool == "default" and tuple(job) == ("unknown", None)
            assert (versions, stages) == (2, 1)
        finally:
            db.close()


def test_0007_numbers_earlier_runs_attempt_1_and_loses_no_row(
    database_url: str, tmp_path: Path
) -> None:
    """Rows from before 0007: a job that ran gets attempt 1 and one attempt row, a
    queued one attempt 0, every log line attempt 1; its stages and log lines survive
    (on SQLite the columns must be added without recreating ``jobs``, whose drop would
    cascade to them)."""
    with fresh_database(database_url, tmp_path) as url:
        db = Database(url)
        try:
            upgrade(db, "0008")
            now = "2026-12-01 10:00:00"
            with db.engine.begin() as conn:
                conn.execute(
                    text(
                        f"INSERT INTO pipelines (id, name, created_at) VALUES ('p1', 'deploy', '{now}')"
                    )
                )
                conn.execute(
                    text(
                        "INSERT INTO pipeline_versions (id, pipeline_id, version, source, "
                        f"filename, definition, created_at, created_by) VALUES ('v1', "
                        f"'p1', 1, 'src', 'deploy.lua', '{{}}', '{now}', 'admin')"
                    )
                )
                for job, status, started in (
                    ("j1", "succeeded", f"'{now}'"),
                    ("j2", "queued", "NULL"),
                ):
                    conn.execute(
                        text(
                            "INSERT INTO jobs (id, pipeline_version_id, pipeline_id, status, "
                            "inputs, outputs, cancel_requested, required_tags, "
                            "required_plugins, created_at, started_at) VALUES "
                            f"('{job}', 'v1', 'p1', '{status}', '{{}}', '{{}}', false, '{{}}', "
                            f"'[]', '{now}', {started})"
                        )
                    )
                conn.execute(
                    text(
                        "INSERT INTO job_stages (job_id, idx, name, status) "
                        "VALUES ('j1', 0, 's', 'succeeded')"
                    )
                )
                conn.execute(
                    text(
                        "INSERT INTO log_lines (job_id, seq, ts, level, message) "
                        f"VALUES ('j1', 1, '{now}', 'info', 'hello')"
                    )
                )
            upgrade(db)
            with db.engine.connect() as conn:
                jobs = conn.execute(text("SELECT id, attempt FROM jobs ORDER BY id")).all()
                attempts = conn.execute(
                    text("SELECT job_id, number, outcome FROM job_attempts")
                ).all()
                stages = conn.execute(text("SELECT count(*) FROM job_stages")).scalar()
                lines = conn.execute(text("SELECT attempt, message FROM log_lines")).all()
            assert [tuple(j) for j in jobs] == [("j1", 1), ("j2", 0)]
            assert [tuple(a) for a in attempts] == [("j1", 1, "succeeded")]
            assert stages == 1
            assert [tuple(line) for line in lines] == [(1, "hello")]
        finally:
            db.close()
