"""``RunnerSettings``: what one runner process runs with, built once at start-up.

Its settings come through the one chain of :mod:`rivet.settings` (flag > environment
> the runner's file ``runner.toml`` > ``$RIVET_HOME/config`` > default): the server
URL (``client.server``), the ``runner.*`` settings (token, registration token, name,
tags, concurrency, the file itself) and the ``jobs.*`` ones (workspace root, default
image, policy file); ``rivet config show --runner`` lists them with their sources and
docs/runner.md has the table. On top of them:

- the token saved at registration in the runner's file, used only with the server it
  was issued by: pointing a runner at another server needs that server's
  registration token;
- the policy file, read once here; a bad one stops the runner with one line naming
  the file and key (see docs/runner-policy.md);
- the Lua limits (``lua.*``), and the runtime's fixed parts (plugins, poll timings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rivet.engine.plugins import Catalog, discover
from rivet.engine.policy import Policy
from rivet.lua.definition import KNOWN_PLUGINS
from rivet.lua.sandbox import Limits
from rivet.runner.config_file import saved_registration
from rivet.runner.logs import ShipperSettings
from rivet.settings import Flags, RunnerGroup, load_settings

__all__ = ["RunnerSettings", "resolve_settings"]


@dataclass(frozen=True)
class RunnerSettings:
    server: str
    token: str | None
    registration_token: str | None
    name: str
    tags: dict[str, str]
    concurrency: int
    workspace_root: Path
    default_image: str
    config_file: Path
    runner_id: str | None = None
    # Whether --tag, RIVET_RUNNER_TAGS or [tags] said anything: tags are registered
    # once; later the server's apply, and differing ones only earn a warning.
    tags_given: bool = False
    # What this runtime provides (built-ins and plugin_dirs, policy-denied ones
    # left out); the server hands out only jobs it can run.
    plugins: tuple[str, ...] = tuple(sorted(KNOWN_PLUGINS))
    plugin_dirs: tuple[Path, ...] = ()
    plugin_catalog: Catalog = field(default_factory=discover)
    claim_wait: float = 20.0
    heartbeat_interval: float = 3.0
    shipper: ShipperSettings = field(default_factory=ShipperSettings)
    policy: Policy = field(default_factory=Policy)
    policy_file: Path | None = None
    limits: Limits = field(default_factory=Limits)
    pool: str = "default"
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    log_format: str = "auto"
    log_level: str = "info"


def resolve_settings(
    flags: Flags | None = None, env: Mapping[str, str] | None = None
) -> RunnerSettings:
    """The runner's settings from ``flags`` (by setting), ``env`` (default: this
    process's environment), its files and the defaults. Raises
    :class:`~rivet.errors.ConfigError` naming the flag, variable or file and key."""
    settings = load_settings(flags, env, runner=True)
    runner, jobs = settings.runner, settings.jobs
    server = settings.client.server
    token = runner.token.get_secret_value() if runner.token is not None else None
    runner_id = None
    if not token:
        token, runner_id = saved_registration(runner.config, server)
    registration = runner.registration_token
    policy_file = jobs.policy
    policy = Policy.load(policy_file) if policy_file is not None else Policy()
    catalog = discover(jobs.plugin_dirs)
    offered = tuple(sorted(set(catalog.plugins) - set(policy.plugins.denied)))
    return RunnerSettings(
        server=server,
        token=token,
        registration_token=registration.get_secret_value() if registration else None,
        name=runner.name,
        tags=runner.tags,
        tags_given=settings.source(RunnerGroup.tags).origin != "default",
        concurrency=runner.concurrency,
        workspace_root=jobs.workspace_root,
        default_image=jobs.default_image,
        config_file=runner.config,
        runner_id=runner_id,
        policy=policy,
        plugins=offered,
        plugin_dirs=jobs.plugin_dirs,
        plugin_catalog=catalog,
        policy_file=policy_file,
        limits=Limits.from_settings(settings.lua),
        pool=runner.pool,
        metrics_port=runner.metrics_port,
        metrics_host=runner.metrics_host,
        log_format=runner.log_format,
        log_level=runner.log_level,
    )
