"""Persistence: tables, the engine factory, migrations and repository functions.

Repository modules (``pipelines``, ``jobs``, ``logs``, ``runners``) are plain functions
taking a ``Connection`` from :meth:`Database.read` / :meth:`Database.write`, so the
use case that calls them owns the transaction boundary.
"""

from __future__ import annotations

from rivet.store.database import Database, Dialect, Transaction
from rivet.store.ids import new_id
from rivet.store.migrate import upgrade

__all__ = ["Database", "Dialect", "Transaction", "new_id", "upgrade"]
