"""Artifacts and job sources (issue 11).

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-02

- ``artifact_blobs``: the content-addressed blobs of the artifact store, with when
  each was last used and a mark while the cleanup deletes one.
- ``artifacts`` and ``artifact_files``: what a job uploaded with ``artifact.upload``
  (name, expiry; per file its path, size, SHA-256 and mode).
- ``job_sources``: the source archive a job was launched with, and its git commit
  and dirty flag.

New tables only; written against plain SQLAlchemy types so it stays frozen.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
ID = 32


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "artifact_blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=False),
        sa.Column("deleting_at", TS, nullable=True),
    )
    op.create_index("ix_artifact_blobs_used_at", "artifact_blobs", ["used_at"])
    op.create_table(
        "artifacts",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column(
            "job_id", sa.String(ID), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("pipeline_id", sa.String(ID), sa.ForeignKey("pipelines.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.UniqueConstraint("job_id", "name", name="uq_artifacts_job_name"),
    )
    op.create_index("ix_artifacts_expires_at", "artifacts", ["expires_at"])
    op.create_index("ix_artifacts_pipeline_name", "artifacts", ["pipeline_id", "name"])
    op.create_table(
        "artifact_files",
        sa.Column(
            "artifact_id",
            sa.String(ID),
            sa.ForeignKey("artifacts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), sa.ForeignKey("artifact_blobs.sha256"), nullable=False),
        sa.Column("mode", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("artifact_id", "path"),
    )
    op.create_index("ix_artifact_files_sha256", "artifact_files", ["sha256"])
    op.create_table(
        "job_sources",
        sa.Column(
            "job_id",
            sa.String(ID),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("sha256", sa.String(64), sa.ForeignKey("artifact_blobs.sha256"), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("git_dirty", sa.Boolean(), nullable=True),
    )
    op.create_index("ix_job_sources_sha256", "job_sources", ["sha256"])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("job_sources")
    op.drop_table("artifact_files")
    op.drop_table("artifacts")
    op.drop_table("artifact_blobs")
