"""``open_database``: the ``server.database_*`` settings become the Database the
orchestrator uses (pool sizes, read and notify URLs), and combinations that cannot
work are refused at start with the settings named."""

from __future__ import annotations

from pathlib import Path

import pytest

from rivet.errors import ConfigError
from rivet.orchestrator.state import open_database
from rivet.settings import load_settings

PG = "postgresql+psycopg://rivet@127.0.0.1:6432/rivet"
DIRECT = "postgresql+psycopg://rivet@127.0.0.1:5432/rivet"


def test_pool_settings_reach_both_engines(tmp_path: Path) -> None:
    db = open_database(
        load_settings(
            {},
            env={
                "RIVET_HOME": str(tmp_path),
                "RIVET_DATABASE_URL": PG,
                "RIVET_DATABASE_READ_URL": DIRECT,
                "RIVET_DATABASE_POOL_SIZE": "3",
                "RIVET_DATABASE_MAX_OVERFLOW": "2",
                "RIVET_DATABASE_POOL_TIMEOUT": "4.5",
            },
        )
    )
    try:
        assert db.read_engine is not db.engine
        for engine in (db.engine, db.read_engine):
            pool = engine.pool
            assert pool.size() == 3  # type: ignore[attr-defined]
            assert pool._max_overflow == 2  # type: ignore[attr-defined]
            assert pool._timeout == 4.5  # type: ignore[attr-defined]
        assert db.notify_url == PG, "LISTEN goes to the database URL by default"
    finally:
        db.close()


def test_without_a_read_url_reads_use_the_writer(tmp_path: Path) -> None:
    db = open_database(load_settings({}, env={"RIVET_HOME": str(tmp_path)}))
    try:
        assert db.read_engine is db.engine and db.read_url is None
    finally:
        db.close()


def test_a_transaction_pooler_needs_a_notify_url(tmp_path: Path) -> None:
    env = {"RIVET_HOME": str(tmp_path), "RIVET_DATABASE_URL": PG}
    with pytest.raises(ConfigError, match="RIVET_DATABASE_NOTIFY_URL"):
        open_database(load_settings({}, env={**env, "RIVET_DATABASE_POOLER": "transaction"}))
    db = open_database(
        load_settings(
            {},
            env={
                **env,
                "RIVET_DATABASE_POOLER": "transaction",
                "RIVET_DATABASE_NOTIFY_URL": DIRECT,
            },
        )
    )
    try:
        assert db.notify_url == DIRECT and db.url == PG
    finally:
        db.close()


def test_a_read_database_of_another_kind_is_refused(tmp_path: Path) -> None:
    env = {
        "RIVET_HOME": str(tmp_path),
        "RIVET_DATABASE_URL": PG,
        "RIVET_DATABASE_READ_URL": f"sqlite:///{tmp_path / 'r.db'}",
    }
    with pytest.raises(ConfigError, match="RIVET_DATABASE_READ_URL: the read database is sqlite"):
        open_database(load_settings({}, env=env))
