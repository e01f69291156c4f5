"""Which pipe of a command each log line came from.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

A command's stderr is logged at the normal level now (issue 14: tools write progress
there), so the stream is kept beside the level: ``log_lines.stream`` is ``stdout``,
``stderr`` or NULL (a line Rivet or the pipeline's Lua logged). Existing rows get
NULL: which pipe they came from was not recorded.

Written against plain SQLAlchemy types, like 0001 to 0003, so it stays frozen.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("log_lines") as batch:
        batch.add_column(sa.Column("stream", sa.String(length=6), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("log_lines") as batch:
        batch.drop_column("stream")
