"""The trace a job belongs to.

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-02

``jobs.trace_parent``: the W3C ``traceparent`` of the orchestrator's ``job.launch``
span (``rivet.observe.tracing``), handed to the runner in the claim so that the
spans of the orchestrator and the runner join one trace. NULL when the server that
launched the job does not export traces, and for every job from before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("trace_parent", sa.String(length=64), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("trace_parent")
