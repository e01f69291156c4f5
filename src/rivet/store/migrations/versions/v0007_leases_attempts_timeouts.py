"""Leases, attempts and timeouts: every job ends, whatever dies under it (issue 10).

Revision ID: 0007
Revises: 0008 (re-chained after main's 0008 at the merge; written after 0004)
Create Date: 2026-12-02

- ``jobs``: ``attempt`` (the attempt running or last run; 0 before the first claim),
  ``lease_seconds``/``lease_expires_at`` (renewed by heartbeats; the reaper ends an
  attempt whose lease ran out as *lost*), ``deadline_at`` (the attempt's timeout),
  ``not_before`` (a retry's backoff) and ``stall_reason`` (why the runner could not
  deliver the log), with a partial index on running rows by lease.
- ``job_attempts``: one row per claim (runner, start, end, outcome, error).
- ``log_lines.attempt``: which attempt logged each line.

Existing rows: a job that was ever claimed gets attempt 1 and one attempt row built
from the job (its outcome is the job's status once finished); every stored log line
belongs to attempt 1. A job running at upgrade time gets no lease: it is given one
(now + 30 s) so that the reaper ends it if its runner is gone.

The new NOT NULL columns keep their server default (``jobs.attempt`` 0,
``log_lines.attempt`` 1), as in 0006: dropping it on SQLite recreates the table, and
with foreign keys on, dropping the old ``jobs`` cascades to its stages and log lines.
tables.py declares the same defaults, so both databases agree.

Written against plain SQLAlchemy types, like 0001 to 0004, so it stays frozen.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("lease_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", TS, nullable=True))
        batch.add_column(sa.Column("deadline_at", TS, nullable=True))
        batch.add_column(sa.Column("not_before", TS, nullable=True))
        batch.add_column(sa.Column("stall_reason", sa.Text(), nullable=True))
    op.execute("UPDATE jobs SET attempt = 1 WHERE started_at IS NOT NULL")
    op.create_index(
        "ix_jobs_running_lease",
        "jobs",
        ["lease_expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'running'"),
        sqlite_where=sa.text("status = 'running'"),
    )

    op.create_table(
        "job_attempts",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("runner_id", sa.String(length=32), nullable=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("ended_by", sa.String(length=8), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_job_attempts_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["runner_id"], ["runners.id"], name=op.f("fk_job_attempts_runner_id_runners")
        ),
        sa.PrimaryKeyConstraint("job_id", "number", name=op.f("pk_job_attempts")),
    )
    op.execute(
        """
        INSERT INTO job_attempts
            (job_id, number, runner_id, started_at, finished_at, outcome, ended_by, error)
        SELECT id, 1, runner_id, started_at, finished_at,
               CASE WHEN status IN ('succeeded', 'failed', 'cancelled') THEN status END,
               CASE WHEN status IN ('succeeded', 'failed', 'cancelled') THEN 'runner' END,
               error
        FROM jobs WHERE started_at IS NOT NULL
        """
    )
    # Running now: whoever runs it must heartbeat under the new protocol, or lose it.
    expires = datetime.now(UTC) + timedelta(seconds=30)
    if op.get_bind().dialect.name == "sqlite":  # naive UTC text there (store.portable)
        expires = expires.replace(tzinfo=None)
    op.execute(
        sa.text(
            "UPDATE jobs SET lease_seconds = 30, lease_expires_at = :at WHERE status = 'running'"
        ).bindparams(sa.bindparam("at", value=expires, type_=TS))
    )

    with op.batch_alter_table("log_lines") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("log_lines") as batch:
        batch.drop_column("attempt")
    op.drop_table("job_attempts")
    op.drop_index("ix_jobs_running_lease", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in (
            "stall_reason",
            "not_before",
            "deadline_at",
            "lease_expires_at",
            "lease_seconds",
            "attempt",
        ):
            batch.drop_column(column)
