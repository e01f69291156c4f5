"""Who created each pipeline version, and the first version each secret grant covers.

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-15

A grant must only cover versions that someone entitled to the secret approved
(issue 7): ``pipeline_versions.created_by`` records the actor ("admin", "anonymous",
later a user or API key) and ``secret_grants.first_version`` the first version of the
pipeline the grant covers.

Existing rows: nobody recorded who created a stored version, so they get
``created_by = 'unknown'`` (entitled to no secret), and each existing grant covers only
versions pushed after this migration (``first_version`` = the pipeline's latest + 1).
After upgrading, push each granted pipeline again with the admin token.

Written against plain SQLAlchemy types, like 0001 and 0002, so it stays frozen.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    # Added with a server default so existing rows get a value, then the default is
    # dropped: the application always says who created a version.
    with op.batch_alter_table("pipeline_versions") as batch:
        batch.add_column(
            sa.Column("created_by", sa.String(length=200), nullable=False, server_default="unknown")
        )
    with op.batch_alter_table("pipeline_versions") as batch:
        batch.alter_column("created_by", server_default=None)

    with op.batch_alter_table("secret_grants") as batch:
        batch.add_column(sa.Column("first_version", sa.Integer(), nullable=True))
    op.execute(
        """
        UPDATE secret_grants SET first_version = 1 + COALESCE((
            SELECT MAX(pv.version) FROM pipeline_versions pv
            JOIN pipelines p ON p.id = pv.pipeline_id
            WHERE p.name = secret_grants.pipeline
        ), 0)
        """
    )
    with op.batch_alter_table("secret_grants") as batch:
        batch.alter_column("first_version", existing_type=sa.Integer(), nullable=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("secret_grants") as batch:
        batch.drop_column("first_version")
    with op.batch_alter_table("pipeline_versions") as batch:
        batch.drop_column("created_by")
