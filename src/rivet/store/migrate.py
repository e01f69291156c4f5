"""Run Alembic migrations programmatically (``upgrade head`` at server start)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from rivet.store.database import Database

__all__ = ["alembic_config", "upgrade"]

# Any constant: serialises concurrent `upgrade head` of orchestrators starting together.
_MIGRATION_LOCK = 7_341_590_215


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "rivet.store:migrations")
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to call from several processes at once."""
    cfg = alembic_config()
    with db.serialised(), db.engine.connect() as conn, conn.begin():
        if db.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
