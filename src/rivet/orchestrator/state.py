"""Where an orchestrator keeps its state, from its settings (:mod:`rivet.settings`):
the database (URLs and pool), and whether anything of it lives in ``$RIVET_HOME``."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from rivet.blobstore import BlobStore, FilesystemStore
from rivet.errors import ConfigError
from rivet.observe.logs import register_secret
from rivet.settings import RivetSettings
from rivet.store import Database

__all__ = [
    "database_url",
    "open_blobstore",
    "open_database",
    "register_settings_secrets",
    "uses_home",
]


def database_url(settings: RivetSettings) -> str:
    """``server.database_url``, or the embedded SQLite database in the home."""
    return settings.server.database_url or settings.paths.database_url


def uses_home(settings: RivetSettings) -> bool:
    """True when something of this server lives in the home (database, token, key)."""
    server = settings.server
    return server.database_url is None or server.admin_token is None or server.secret_key is None


def open_database(settings: RivetSettings) -> Database:
    """The :class:`~rivet.store.Database` of ``server.database_*``.

    ``ConfigError`` (naming the settings) for a read URL of another kind of database
    than the writer, and for a transaction-mode pooler without a notify URL: ``LISTEN``
    through it would be silently lost, and wake-ups between orchestrators with it."""
    server = settings.server
    transaction_pooler = server.database_pooler == "transaction"
    if transaction_pooler and server.database_notify_url is None:
        raise ConfigError(
            "RIVET_DATABASE_POOLER=transaction needs RIVET_DATABASE_NOTIFY_URL: a direct "
            "connection to PostgreSQL for LISTEN, which a transaction-mode pooler loses"
        )
    try:
        return Database(
            database_url(settings),
            read_url=server.database_read_url,
            notify_url=server.database_notify_url,
            pool_size=server.database_pool_size,
            max_overflow=server.database_max_overflow,
            pool_timeout=server.database_pool_timeout,
            prepared_statements=not transaction_pooler,
        )
    except ValueError as exc:
        raise ConfigError(f"RIVET_DATABASE_URL / RIVET_DATABASE_READ_URL: {exc}") from None


def register_settings_secrets(settings: RivetSettings) -> None:
    """The server's own secrets masked in its logs (:mod:`rivet.observe.logs`): the
    admin and metrics tokens, the secret keys and the databases' passwords."""
    server = settings.server
    for secret in (server.admin_token, server.metrics_token, server.secret_key):
        if secret is not None:
            for value in secret.get_secret_value().split(","):
                register_secret(value)
    for url in (server.database_url, server.database_read_url, server.database_notify_url):
        password = make_url(url).password if url is not None else None
        if password:
            register_secret(str(password))


def open_blobstore(settings: RivetSettings) -> BlobStore:
    """The artifact store of ``artifacts.*`` (docs/artifacts.md): ``ConfigError``
    naming the setting when the S3 store lacks its bucket."""
    artifacts = settings.artifacts
    if artifacts.store == "filesystem":
        return FilesystemStore(artifacts.path)
    from rivet.blobstore.s3 import S3Store

    if not artifacts.s3_bucket:
        raise ConfigError("RIVET_ARTIFACT_STORE=s3 needs RIVET_S3_BUCKET (artifacts.s3_bucket)")
    secret = artifacts.s3_secret_key
    if secret is not None:
        register_secret(secret.get_secret_value())
    return S3Store(
        artifacts.s3_bucket,
        endpoint_url=artifacts.s3_endpoint,
        region=artifacts.s3_region,
        access_key=artifacts.s3_access_key,
        secret_key=secret.get_secret_value() if secret is not None else None,
        prefix=artifacts.s3_prefix or "",
    )
