"""Secrets (encrypted values) and their grants to pipelines.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Written against plain SQLAlchemy types, like 0001, so it stays frozen.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "secrets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets")),
        sa.UniqueConstraint("name", name=op.f("uq_secrets_name")),
    )
    op.create_table(
        "secret_grants",
        sa.Column("secret_id", sa.String(length=32), nullable=False),
        sa.Column("pipeline", sa.String(length=200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets.id"],
            name=op.f("fk_secret_grants_secret_id_secrets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("secret_id", "pipeline", name=op.f("pk_secret_grants")),
    )
    op.create_index("ix_secret_grants_pipeline", "secret_grants", ["pipeline"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_secret_grants_pipeline", table_name="secret_grants")
    op.drop_table("secret_grants")
    op.drop_table("secrets")
