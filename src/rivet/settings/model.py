"""Every setting of Rivet, declared once, in groups: the root (``home``), ``client``
(the CLI), ``server`` (``rivet server``), ``runner``, ``jobs`` (what runs jobs: the
runner and ``rivet run``), ``lua`` (the sandbox limits, everywhere Lua runs) and
``up`` (``rivet up``'s supervisor).

Adding a setting is one declaration here (kind, default, variable, flags, help); the
resolver, the command lines that list it, ``rivet config show`` and the config file
layout follow from it. See docs/development.md, "Adding a setting".
"""

from __future__ import annotations

from rivet.defaults import DEFAULT_IMAGE, DEFAULT_PORT
from rivet.limits import DEFAULT_MAX_BODY_BYTES, MAX_SOURCE_BYTES
from rivet.settings.artifact_settings import ArtifactsGroup
from rivet.settings.kinds import (
    DatabaseUrl,
    FilePath,
    LogLevelSpec,
    Networks,
    Number,
    Optional,
    PathList,
    RunnerName,
    Secret,
    ServerUrl,
    Tags,
    Text,
    Whole,
)
from rivet.settings.spec import Computed, Group, Setting

__all__ = [
    "DEFAULT_SERVER",
    "GROUPS",
    "JOB_TERMS",
    "LUA_DEFINITION_SECONDS",
    "LUA_MEMORY_MIB",
    "LUA_STAGE_SECONDS",
    "UP_DRAIN_SECONDS",
    "UP_START_SECONDS",
    "ArtifactsGroup",
    "ClientGroup",
    "CoreGroup",
    "JobsGroup",
    "LuaGroup",
    "RunnerGroup",
    "ServerGroup",
    "UpGroup",
]

LOG_FORMATS = ("auto", "json", "text")
DEFAULT_SERVER = f"http://127.0.0.1:{DEFAULT_PORT}"
# The Lua defaults, also the defaults of rivet.lua.sandbox.Limits (declared here once).
LUA_MEMORY_MIB = 256.0
LUA_DEFINITION_SECONDS = 5.0
LUA_STAGE_SECONDS = 60.0
# The up defaults, also those of rivet.supervisor.process.Supervisor (declared here once).
UP_START_SECONDS = 60.0
UP_DRAIN_SECONDS = 10.0


def _host_name() -> str:
    import socket  # on use: every command imports this module

    return socket.gethostname()


class CoreGroup(Group, section=""):
    home = Setting(
        FilePath(),
        Computed(lambda home: home.root, "~/.rivet"),
        env="RIVET_HOME",
        flags=("--home",),
        file=False,  # the config file is in it
        help="state directory: database, tokens, runner.toml, logs/, workspaces/",
    )


class ClientGroup(Group, section="client"):
    """What the CLI needs to reach a server. The runner's server URL is this one too."""

    server = Setting(
        ServerUrl(),
        DEFAULT_SERVER,
        env="RIVET_SERVER",
        flags=("--server", "-s"),
        help="server URL",
        default_text=f"`server` in $RIVET_HOME/config, else {DEFAULT_SERVER}",
    )
    admin_token = Setting(
        Optional(Secret()),
        None,
        env="RIVET_ADMIN_TOKEN",
        flags=("--admin-token",),
        help="the server's admin token",
        default_text="$RIVET_HOME/admin-token of a local server",
    )


class ServerGroup(Group, section="server"):
    """One orchestrator process (``rivet server``)."""

    host = Setting(
        Text(), "127.0.0.1", env="RIVET_HOST", flags=("--host",), help="address to listen on"
    )
    port = Setting(
        Whole(0, 65535), DEFAULT_PORT, env="RIVET_PORT", flags=("--port",), help="port to listen on"
    )
    database_url = Setting(
        Optional(DatabaseUrl()),
        None,
        env="RIVET_DATABASE_URL",
        flags=("--database-url",),
        help="SQLAlchemy URL, e.g. postgresql+psycopg://...",
        default_text="SQLite in RIVET_HOME",
    )
    database_read_url = Setting(
        Optional(DatabaseUrl()),
        None,
        env="RIVET_DATABASE_READ_URL",
        help="a read-only copy of the database (e.g. a streaming replica) for listings, "
        "views and log pages; writes, claims, authentication and live log streams stay on "
        "the database URL",
        default_text="the database URL",
    )
    database_notify_url = Setting(
        Optional(DatabaseUrl()),
        None,
        env="RIVET_DATABASE_NOTIFY_URL",
        help="a direct PostgreSQL connection for the LISTEN of wake-ups; set it when the "
        "database URL goes through a pooler in transaction mode (pgbouncer)",
        default_text="the database URL",
    )
    database_pool_size = Setting(
        Whole(minimum=1),
        10,
        env="RIVET_DATABASE_POOL_SIZE",
        help="database connections each pool keeps open (one pool for the database URL, "
        "one for the read URL)",
    )
    database_max_overflow = Setting(
        Whole(minimum=0),
        30,
        env="RIVET_DATABASE_MAX_OVERFLOW",
        help="connections a pool may open beyond its size under load (closed when returned)",
    )
    database_pool_timeout = Setting(
        Number(greater_than=0),
        30.0,
        env="RIVET_DATABASE_POOL_TIMEOUT",
        help="how long a request waits for a free connection before it is answered 503 (s)",
    )
    database_pooler = Setting(
        Text(choices=("none", "session", "transaction")),
        "none",
        env="RIVET_DATABASE_POOLER",
        help="the connection pooler the database URL goes through, by its pool mode: "
        "'transaction' (pgbouncer pool_mode = transaction) turns psycopg's server-side "
        "prepared statements off and needs the notify URL; 'session' and 'none' change "
        "nothing",
    )
    admin_token = Setting(
        Optional(Secret()),
        None,
        env="RIVET_ADMIN_TOKEN",
        help="admin bearer token",
        default_text="generated into $RIVET_HOME/admin-token",
    )
    secret_key = Setting(
        Optional(Secret()),
        None,
        env="RIVET_SECRET_KEY",
        help="key(s) encrypting stored secrets (URL-safe base64 of 32 bytes; several "
        "separated by commas, the first encrypts)",
        default_text="$RIVET_HOME/secret-key",
    )
    poll_interval = Setting(
        Number(greater_than=0),
        1.0,
        env="RIVET_POLL_INTERVAL",
        help="fallback polling period (s) for waiting claims and log streams; wake-up "
        "signals make the common case immediate",
    )
    sse_keepalive = Setting(
        Number(greater_than=0), 15.0, env="RIVET_SSE_KEEPALIVE", help="SSE comment interval (s)"
    )
    max_body_bytes = Setting(
        # Below this a pipeline of the largest allowed size could not be sent at all.
        Whole(minimum=MAX_SOURCE_BYTES + 64 * 1024),
        DEFAULT_MAX_BODY_BYTES,
        env="RIVET_MAX_BODY_BYTES",
        help="largest request body accepted (bytes); larger ones are answered 413 before "
        "they are read whole",
    )
    log_level = Setting(
        LogLevelSpec(),
        "info",
        env="RIVET_LOG_LEVEL",
        help="log level of the server, and per component: info,rivet.jobqueue=debug",
    )
    log_format = Setting(
        Text(choices=LOG_FORMATS),
        "auto",
        env="RIVET_LOG_FORMAT",
        flags=("--log-format",),
        help="log lines as json or text; auto: text on a terminal, json otherwise",
    )
    metrics_token = Setting(
        Optional(Secret()),
        None,
        env="RIVET_METRICS_TOKEN",
        help="bearer token that may read GET /metrics from any address (docs/observability.md)",
        default_text="none: only metrics_allow addresses",
    )
    metrics_allow = Setting(
        Networks(),
        ("127.0.0.0/8", "::1/128"),
        env="RIVET_METRICS_ALLOW",
        help="client addresses or networks that may read GET /metrics without the token; "
        "none for no address",
        default_text="loopback: 127.0.0.0/8,::1",
    )


class RunnerGroup(Group, section="runner"):
    """One runner process. Its config file (``config``) also holds the token saved at
    registration, read by :mod:`rivet.runner.config_file`, not as a setting."""

    token = Setting(
        Optional(Secret()),
        None,
        env="RIVET_RUNNER_TOKEN",
        flags=("--token", "-t"),
        file=False,
        help="this runner's own token",
        default_text="the one saved at registration",
    )
    registration_token = Setting(
        Optional(Secret()),
        None,
        env="RIVET_REGISTRATION_TOKEN",
        flags=("--registration-token",),
        file=False,
        help="a one-time token from 'rivet runner token create', to register",
    )
    name = Setting(
        RunnerName(),
        Computed(lambda _home: _host_name(), "the host name"),
        env="RIVET_RUNNER_NAME",
        flags=("--name",),
        help="runner name",
    )
    tags = Setting(
        Tags(),
        {},
        env="RIVET_RUNNER_TAGS",
        flags=("--tag",),
        help="a tag KEY=VALUE jobs can require, sent when the runner registers; later the "
        "server's tags apply (an admin changes them with 'rivet runner set-tags'); "
        "repeatable; the variable takes k=v,k=v",
        default_text="none",
    )
    pool = Setting(
        RunnerName(),
        "default",
        env="RIVET_RUNNER_POOL",
        flags=("--pool",),
        help="the runner pool it joins, sent when the runner registers; later the "
        "server's pool applies (an admin changes it with 'rivet runner set-pool')",
    )
    concurrency = Setting(
        Whole(minimum=1),
        1,
        env="RIVET_RUNNER_CONCURRENCY",
        flags=("--concurrency",),
        help="jobs run at once",
    )
    metrics_port = Setting(
        Optional(Whole(0, 65535)),
        None,
        env="RIVET_RUNNER_METRICS_PORT",
        flags=("--metrics-port",),
        help="serve Prometheus metrics on this port (GET /metrics); 0: any free port",
        default_text="no metrics endpoint",
    )
    metrics_host = Setting(
        Text(),
        "127.0.0.1",
        env="RIVET_RUNNER_METRICS_HOST",
        flags=("--metrics-host",),
        help="address the metrics endpoint listens on",
    )
    log_level = Setting(
        LogLevelSpec(),
        "info",
        env="RIVET_LOG_LEVEL",
        help="log level of the runner, and per component: info,rivet.runner=debug",
    )
    log_format = Setting(
        Text(choices=LOG_FORMATS),
        "auto",
        env="RIVET_LOG_FORMAT",
        flags=("--log-format",),
        help="log lines as json or text; auto: text on a terminal, json otherwise",
    )
    config = Setting(
        FilePath(),
        Computed(lambda home: home.runner_config, "$RIVET_HOME/runner.toml"),
        env="RIVET_RUNNER_CONFIG",
        flags=("--config",),
        file=False,  # it names the file
        help="runner config file",
    )


class JobsGroup(Group, section="jobs"):
    """Where and how jobs run on this machine: the runner and ``rivet run``."""

    workspace_root = Setting(
        FilePath(),
        Computed(lambda home: home.workspaces, "$RIVET_HOME/workspaces"),
        env="RIVET_WORKSPACE_ROOT",
        flags=("--workspace-root",),
        help="where job workspaces are created",
    )
    default_image = Setting(
        Text(),
        DEFAULT_IMAGE,
        env="RIVET_DEFAULT_IMAGE",
        flags=("--default-image",),
        help="image for commands outside containers",
    )
    policy = Setting(
        Optional(FilePath(what="the path of a policy file", relative_to_file=True)),
        None,
        env="RIVET_POLICY",
        flags=("--policy",),
        help="runner policy file: allowed binaries, images, limits (docs/runner-policy.md; "
        "in a config file, relative to that file)",
        default_text="the built-in policy",
    )
    plugin_dirs = Setting(
        PathList(),
        (),
        env="RIVET_PLUGIN_PATH",
        help="directories of third-party plugins (each a plugin, or holding plugins; "
        "docs/plugins.md); the variable takes dir:dir",
        default_text="none (built-in plugins only)",
    )
    # The server's terms for every job (a definition's `lease`/`timeout` override the
    # first two): read by the orchestrator and its reaper (docs/reliability.md).
    lease_seconds = Setting(
        Number(greater_than=0),
        30.0,
        env="RIVET_LEASE_SECONDS",
        help="how long a claimed job may go without a heartbeat before it is lost (s; "
        "server, unless the pipeline sets `lease`)",
    )
    timeout_seconds = Setting(
        Number(greater_than=0),
        6 * 3600.0,
        env="RIVET_JOB_TIMEOUT_SECONDS",
        help="how long one attempt of a job may run (s; server, unless the pipeline "
        "sets `timeout`)",
    )
    timeout_grace_seconds = Setting(
        Number(greater_than=0),
        60.0,
        env="RIVET_JOB_TIMEOUT_GRACE_SECONDS",
        help="how long past its timeout the server waits for the runner's report "
        "before it ends the job itself (s; server)",
    )
    queue_timeout_seconds = Setting(
        Number(greater_than=0),
        24 * 3600.0,
        env="RIVET_QUEUE_TIMEOUT_SECONDS",
        help="how long a job may wait for a runner before it fails (s; server)",
    )


# The jobs.* settings the orchestrator reads (rivet up passes them to its server).
JOB_TERMS = (
    JobsGroup.lease_seconds,
    JobsGroup.timeout_seconds,
    JobsGroup.timeout_grace_seconds,
    JobsGroup.queue_timeout_seconds,
)


class LuaGroup(Group, section="lua"):
    """The Lua sandbox's limits (:class:`rivet.lua.sandbox.Limits`), wherever Lua runs:
    ``rivet check``, the server validating a pipeline, the runner, ``rivet run``."""

    memory_mib = Setting(
        Number(greater_than=0),
        LUA_MEMORY_MIB,
        env="RIVET_LUA_MEMORY_MIB",
        help="memory cap of a job's Lua state (MiB)",
    )
    definition_seconds = Setting(
        Number(greater_than=0),
        LUA_DEFINITION_SECONDS,
        env="RIVET_LUA_DEFINITION_SECONDS",
        help="CPU budget for evaluating a pipeline file (s)",
    )
    stage_seconds = Setting(
        Number(greater_than=0),
        LUA_STAGE_SECONDS,
        env="RIVET_LUA_STAGE_SECONDS",
        help="CPU budget of one stage's Lua (s)",
    )


class UpGroup(Group, section="up"):
    """``rivet up`` itself, the supervisor of a local server and runner; what they run
    with is the ``server``, ``runner``, ``jobs`` and ``lua`` groups."""

    start_seconds = Setting(
        Number(greater_than=0),
        UP_START_SECONDS,
        env="RIVET_UP_START_SECONDS",
        help="how long rivet up waits for its server to be ready, then for its runner to "
        "check in, before it gives up (s)",
    )
    drain_seconds = Setting(
        Number(greater_than=0),
        UP_DRAIN_SECONDS,
        env="RIVET_UP_DRAIN_SECONDS",
        help="on stop, how long the runner's running jobs may go on before rivet up "
        "cancels them (s)",
    )


GROUPS: tuple[type[Group], ...] = (
    CoreGroup,
    ClientGroup,
    ServerGroup,
    RunnerGroup,
    JobsGroup,
    LuaGroup,
    UpGroup,
    ArtifactsGroup,
)
