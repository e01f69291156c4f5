"""Engine factory and transaction scopes for SQLite (embedded) and PostgreSQL.

All store and queue functions take a ``Connection`` from :meth:`Database.read` or
:meth:`Database.write`; the use case that opens the scope decides the transaction
boundary. Everything here is blocking: the async orchestrator calls it from worker
threads, never from the event loop.

Connection-level failures (server down or restarting, connection lost, pool exhausted,
SQLite file that cannot be opened or is not a database) leave every scope as
:class:`~rivet.errors.StorageUnavailable`, so callers above the store never see
SQLAlchemy; other database errors (a constraint, a bad value) stay what they are: bugs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import Connection, Engine, make_url

from rivet.errors import StorageFull, StorageUnavailable
from rivet.home import prepare_sqlite_file

__all__ = ["Database", "Dialect", "Transaction"]

log = logging.getLogger(__name__)

Dialect = Literal["sqlite", "postgresql"]


@dataclass
class Transaction:
    """An open write transaction; ``after_commit`` callbacks run once it has committed."""

    conn: Connection
    dialect: Dialect
    _after: list[Callable[[], None]] = field(default_factory=list)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after.append(callback)


class Database:
    """One engine per process; thread-safe.

    On SQLite every write transaction starts with ``BEGIN IMMEDIATE`` under a
    process-wide lock: SQLite allows one writer at a time and its busy handler starves
    competing connections (measured), so writers queue on the lock instead. Readers
    never take the lock (WAL lets them run beside the writer).
    """

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 30) -> None:
        parsed = make_url(url)
        self.url = url
        self.dialect: Dialect
        if parsed.get_backend_name() == "sqlite":
            self.dialect = "sqlite"
            if parsed.database and parsed.database != ":memory:":
                # The file 0600 before SQLite opens it: its -wal/-shm copy that mode.
                prepare_sqlite_file(Path(parsed.database).expanduser())
            self.engine = create_engine(
                parsed,
                pool_size=pool_size,
                max_overflow=max_overflow,
                connect_args={"check_same_thread": False, "timeout": 30},
            )
            _configure_sqlite(self.engine)
        elif parsed.get_backend_name() == "postgresql":
            self.dialect = "postgresql"
            self.engine = create_engine(
                parsed, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True
            )
        else:
            raise ValueError(f"unsupported database {parsed.get_backend_name()!r}")
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None

    def serialised(self) -> AbstractContextManager[object]:
        """The in-process writer lock on SQLite (for DDL); a no-op on PostgreSQL."""
        return self._write_lock if self._write_lock is not None else nullcontext()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (one consistent snapshot for several queries)."""
        with self.unavailable_as_error(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Transaction]:
        """A write transaction, committed on normal exit, rolled back on an exception."""
        with self.unavailable_as_error(), self.serialised(), self.engine.connect() as conn:
            conn = conn.execution_options(rivet_write=True)
            tx = Transaction(conn, self.dialect)
            with conn.begin():
                yield tx
        # Outside the lock and after COMMIT, so woken readers see the new rows.
        for callback in tx._after:
            try:
                callback()
            except Exception:  # a lost wake-up costs latency only; never fail the write
                log.exception("after-commit callback failed")

    def ping(self) -> None:
        with self.unavailable_as_error(), self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    @contextmanager
    def unavailable_as_error(self) -> Iterator[None]:
        """Turn connection-level database failures into ``StorageUnavailable``."""
        try:
            yield
        except exc.SQLAlchemyError as error:
            if not _unavailable(error):
                raise
            cause = getattr(error, "orig", None) or error
            lines = str(cause).strip().splitlines()
            where = make_url(self.url).render_as_string(hide_password=True)
            reason = f"{where}: {lines[0] if lines else type(cause).__name__}"
            if _full(cause):
                raise StorageFull(self.dialect, reason) from error
            raise StorageUnavailable(self.dialect, reason) from error

    def close(self) -> None:
        self.engine.dispose()


# SQLite's SQLITE_FULL, PostgreSQL's disk_full (SQLSTATE 53100) and the OS's ENOSPC.
_FULL = ("database or disk is full", "no space left on device", "could not extend file")


def _full(cause: BaseException) -> bool:
    if getattr(cause, "sqlstate", None) == "53100":
        return True
    text = str(cause).lower()
    return any(marker in text for marker in _FULL)


def _unavailable(error: exc.SQLAlchemyError) -> bool:
    """A failure of the database or the connection to it, not of the statement."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, exc.OperationalError | exc.InterfaceError | exc.TimeoutError):
        return True
    # SQLite: "file is not a database", "database disk image is malformed" arrive as
    # the bare DatabaseError (its subclasses — IntegrityError, DataError — are bugs).
    return type(error) is exc.DatabaseError


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit BEGIN is deferred and
        # only before DML, which breaks read snapshots and BEGIN IMMEDIATE).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("rivet_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
