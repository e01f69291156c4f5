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

    def __init__(
        self,
        url: str,
        *,
        read_url: str | None = None,
        notify_url: str | None = None,
        pool_size: int = 10,
        max_overflow: int = 30,
        pool_timeout: float = 30.0,
        prepared_statements: bool = True,
    ) -> None:
        """``url`` is the writer. ``read_url`` (optional, same kind of database): where
        :meth:`read` goes, e.g. a streaming replica. ``notify_url``: a direct connection
        to the writer for ``LISTEN`` (default ``url``; needed when ``url`` is a pooler in
        transaction mode, where a session's ``LISTEN`` is lost). ``prepared_statements``
        off stops psycopg from preparing repeated statements on the server, which a
        transaction-mode pooler cannot keep (the next transaction may get another server
        connection). The pool settings apply to each engine."""
        self.url = url
        self.read_url = read_url
        self.notify_url = notify_url or url
        self._pool = {
            "pool_size": pool_size,
            "max_overflow": max_overflow,
            "pool_timeout": pool_timeout,
        }
        self._prepared_statements = prepared_statements
        self.dialect: Dialect
        self.engine, self.dialect = self._make_engine(url)
        self.read_engine = self.engine
        if read_url is not None:
            self.read_engine, read_dialect = self._make_engine(read_url)
            if read_dialect != self.dialect:
                self.close()
                raise ValueError(
                    f"the read database is {read_dialect} but the database is {self.dialect}"
                )
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None

    def _make_engine(self, url: str) -> tuple[Engine, Dialect]:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                # The file 0600 before SQLite opens it: its -wal/-shm copy that mode.
                prepare_sqlite_file(Path(parsed.database).expanduser())
            engine = create_engine(
                parsed,
                **self._pool,
                connect_args={"check_same_thread": False, "timeout": 30},
            )
            _configure_sqlite(engine)
            return engine, "sqlite"
        if parsed.get_backend_name() == "postgresql":
            connect_args: dict[str, Any] = {}
            if not self._prepared_statements:
                connect_args["prepare_threshold"] = None
            # pool_pre_ping: a connection that died with a restarted server is replaced
            # before use, so the first request after a restart does not fail.
            engine = create_engine(
                parsed, **self._pool, pool_pre_ping=True, connect_args=connect_args
            )
            return engine, "postgresql"
        raise ValueError(f"unsupported database {parsed.get_backend_name()!r}")

    def serialised(self) -> AbstractContextManager[object]:
        """The in-process writer lock on SQLite (for DDL); a no-op on PostgreSQL."""
        return self._write_lock if self._write_lock is not None else nullcontext()

    @contextmanager
    def read(self, *, primary: bool = False) -> Iterator[Connection]:
        """A read transaction (one consistent snapshot for several queries), on the read
        database when there is one. ``primary``: on the writer all the same, for reads
        that must see the latest writes (a replica may lag): authentication, the
        pipeline version a launch is checked against."""
        on_reader = self.read_url is not None and not primary
        engine = self.read_engine if on_reader else self.engine
        url = self.read_url if on_reader and self.read_url else self.url
        with self.unavailable_as_error(url), engine.connect() as conn, conn.begin():
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
        """One ``SELECT 1`` on the writer."""
        with self.unavailable_as_error(), self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def ping_reader(self) -> None:
        """One ``SELECT 1`` on the read database; nothing when there is none."""
        if self.read_url is not None:
            with self.unavailable_as_error(self.read_url), self.read_engine.connect() as conn:
                conn.execute(text("SELECT 1"))

    @contextmanager
    def unavailable_as_error(self, url: str | None = None) -> Iterator[None]:
        """Turn connection-level database failures into ``StorageUnavailable``; the reason
        names ``url`` (default: the writer's), password hidden."""
        try:
            yield
        except exc.SQLAlchemyError as error:
            if not _unavailable(error):
                raise
            cause = getattr(error, "orig", None) or error
            lines = str(cause).strip().splitlines()
            where = make_url(url or self.url).render_as_string(hide_password=True)
            reason = f"{where}: {lines[0] if lines else type(cause).__name__}"
            if _full(cause):
                raise StorageFull(self.dialect, reason) from error
            raise StorageUnavailable(self.dialect, reason) from error

    def close(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


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
