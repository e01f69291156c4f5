"""Pipeline owners and access lists, secret permissions, runner pools, the audit trail,
and who launched and cancelled each job.

Revision ID: 0006
Revises: 0004
Create Date: 2027-02-01

Issue 9 (authorization below the role level, see docs/security.md):

- ``pipelines.owner``: the actor who created the pipeline; existing pipelines get the
  creator of their first version (``unknown`` when none is recorded).
- ``pipeline_access``: the access list (subject -> view/launch/push); every existing
  pipeline gets the entries a new one starts with (``role:viewer`` view,
  ``role:user`` launch), so nobody loses what they could do before.
- ``pipeline_pools``: the runner pools a pipeline is restricted to (none: any pool
  that is not exclusive).
- ``runners.pool`` (existing runners: ``default``) and ``runner_pools``: pools an
  admin configured (``exclusive``: its runners run only pipelines assigned to it).
- ``secret_permissions``: per-secret use/grant/write entries, by secret name.
- ``audit_events``: who changed what, when.
- ``jobs.launched_by`` (existing jobs: ``unknown``) and ``jobs.cancelled_by``.

The new NOT NULL columns keep their server default (``unknown``, ``default``): on
SQLite dropping it would mean recreating the table, and with foreign keys on,
dropping the old table cascades to the rows that reference it. tables.py declares the
same defaults, so both databases agree.

Written against plain SQLAlchemy types, like 0001–0004, so it stays frozen.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSONB on PostgreSQL, JSON elsewhere, as in 0001.
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _when() -> sa.Column[datetime]:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("pipelines") as batch:
        batch.add_column(
            sa.Column("owner", sa.String(length=200), nullable=False, server_default="unknown")
        )
    op.execute(
        """
        UPDATE pipelines SET owner = COALESCE((
            SELECT pv.created_by FROM pipeline_versions pv
            WHERE pv.pipeline_id = pipelines.id AND pv.version = 1
        ), 'unknown')
        """
    )

    op.create_table(
        "pipeline_access",
        sa.Column("pipeline_id", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        _when(),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_pipeline_access_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pipeline_id", "subject", name=op.f("pk_pipeline_access")),
    )
    for subject, level in (("role:viewer", "view"), ("role:user", "launch")):
        op.execute(
            sa.text(
                "INSERT INTO pipeline_access (pipeline_id, subject, level, created_at) "
                "SELECT id, :subject, :level, created_at FROM pipelines"
            ).bindparams(subject=subject, level=level)
        )

    op.create_table(
        "pipeline_pools",
        sa.Column("pipeline_id", sa.String(length=32), nullable=False),
        sa.Column("pool", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_pipeline_pools_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pipeline_id", "pool", name=op.f("pk_pipeline_pools")),
    )

    with op.batch_alter_table("runners") as batch:
        batch.add_column(
            sa.Column("pool", sa.String(length=200), nullable=False, server_default="default")
        )
    op.create_table(
        "runner_pools",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("exclusive", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_runner_pools")),
    )

    op.create_table(
        "secret_permissions",
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        _when(),
        sa.PrimaryKeyConstraint("secret", "subject", name=op.f("pk_secret_permissions")),
    )

    op.create_table(
        "audit_events",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=300), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"], unique=False)

    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column(
                "launched_by", sa.String(length=200), nullable=False, server_default="unknown"
            )
        )
        batch.add_column(sa.Column("cancelled_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("cancelled_by")
        batch.drop_column("launched_by")
    op.drop_index(op.f("ix_audit_events_at"), table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_table("secret_permissions")
    op.drop_table("runner_pools")
    with op.batch_alter_table("runners") as batch:
        batch.drop_column("pool")
    op.drop_table("pipeline_pools")
    op.drop_table("pipeline_access")
    with op.batch_alter_table("pipelines") as batch:
        batch.drop_column("owner")
