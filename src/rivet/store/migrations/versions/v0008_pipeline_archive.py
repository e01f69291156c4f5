"""Archived pipelines, removed runners, and the job a job reruns.

Revision ID: 0008
Revises: 0006 (re-chained after 0006 when auth-perms met reliability; written after 0004)
Create Date: 2026-12-02

Issue 14's everyday commands keep history instead of deleting it:

- ``pipelines.archived_at``: set by ``rivet pipeline delete`` (archive), cleared by
  ``rivet pipeline restore``. An archived pipeline's versions and jobs stay readable;
  launches and new versions are refused.
- ``runners.removed_at``: set by ``rivet runner remove``; the runner's token is
  refused from then on, the jobs it ran still name it.
- ``jobs.rerun_of``: the job that ``rivet job rerun`` copied (same version, same
  inputs); no foreign key, so the record survives whatever happens to that job.

Existing rows get NULL: nothing was archived, removed or rerun before. Written against
plain SQLAlchemy types, like 0001 to 0004, so it stays frozen.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("pipelines") as batch:
        batch.add_column(sa.Column("archived_at", TS, nullable=True))
    with op.batch_alter_table("runners") as batch:
        batch.add_column(sa.Column("removed_at", TS, nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("rerun_of", sa.String(length=32), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("rerun_of")
    with op.batch_alter_table("runners") as batch:
        batch.drop_column("removed_at")
    with op.batch_alter_table("pipelines") as batch:
        batch.drop_column("archived_at")
