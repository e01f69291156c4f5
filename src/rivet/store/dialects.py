"""The few statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

__all__ = ["insert_ignoring_duplicates"]


def insert_ignoring_duplicates(conn: Connection, table: Table, *key: str) -> Insert:
    """``INSERT … ON CONFLICT (key) DO NOTHING``: the basis of idempotent writes."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(key))
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(key))
