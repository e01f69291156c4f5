"""A local Rivet — a server on SQLite plus one runner — as supervised children: what
``rivet up`` runs.

Both run as child processes (``python -m rivet.cli.server`` and ``python -m
rivet.runner``, so a local runner does not depend on the typer CLI), started in
order: the server, until ``/api/ready`` answers; then the runner, until it has
registered (or reused its saved token) and polled. Their output goes to
``$RIVET_HOME/logs/server.log`` and ``runner.log`` (appended). A crash of either
stops the other (:class:`~rivet.supervisor.process.Crashed`, with the end of its
log). Stopping goes runner first (SIGTERM: finish running jobs, then a second SIGTERM
cancels them after a grace period; its last logs and results still need the server),
the server last.

Each child gets an environment built from scratch (:func:`rivet.child_env.child_env`)
plus an explicit allow-list of this process's variables, never this environment
minus a deny-list, both derived from the settings model: the server gets its own
settings (``RIVET_ADMIN_TOKEN``, ``RIVET_SECRET_KEY``, …) and the Lua limits; the
runner gets none of them — only its settings that name it and shape its jobs, the
Lua limits, the registration token made for it and ``PATH`` (to find podman). So no
job can read a server credential from the runner.

The runner registers with a registration token made through the admin API (with the
admin token the server writes to ``$RIVET_HOME/admin-token``) and saves its own token
in ``$RIVET_HOME/runner.toml``; the next run on the same home reuses it.

This process and the server write private files only (umask 0o077); the runner gets
the umask the supervisor was started with (see :mod:`rivet.home` for why).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rivet.child_env import child_env
from rivet.home import RivetHome, private_umask
from rivet.observe.tracing import OTEL_VARIABLES
from rivet.runner.config_file import read_runner_file
from rivet.settings import (
    JOB_TERMS,
    CoreGroup,
    Flags,
    JobsGroup,
    LuaGroup,
    RivetSettings,
    RunnerGroup,
    ServerGroup,
    Setting,
    SettingError,
    load_settings,
)
from rivet.supervisor.process import ChildSpec, Supervisor

__all__ = [
    "RUNNER_PASSED",
    "RUNNER_PASSED_ENV",
    "SERVER_FLAGS_SET",
    "LocalPlan",
    "LocalRivet",
    "runner_env",
    "server_env",
]

# The server settings `rivet up` gives its server as flags; the server's other
# settings pass from this environment.
SERVER_FLAGS_SET: tuple[Setting[Any], ...] = (
    CoreGroup.home,
    ServerGroup.host,
    ServerGroup.port,
    ServerGroup.database_url,
)
# What the runner may take from this environment: the settings that name it and shape
# its jobs, and the Lua limits. Never its server, token or config file (they would
# point it at another server or identity), never a server setting.
RUNNER_PASSED: tuple[Setting[Any], ...] = (
    RunnerGroup.name,
    RunnerGroup.tags,
    *JobsGroup.settings(),
    *LuaGroup.settings(),
)
RUNNER_PASSED_ENV: tuple[str, ...] = (
    *(s.env for s in RUNNER_PASSED if s.env),
    "PATH",
)


def _env_names(settings: Iterable[Setting[Any]]) -> list[str]:
    return [s.env for s in settings if s.env]


def _variable(setting: Setting[Any]) -> str:
    assert setting.env is not None, setting
    return setting.env


def _passed(names: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``environ`` named in ``names`` (an allow-list), if set."""
    return {name: environ[name] for name in names if name in environ}


def server_env(home: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server child's whole environment: the base, its settings' variables that
    are not given as flags (admin token, secret key, log level…), the Lua limits."""
    environ = os.environ if environ is None else environ
    names = _env_names(s for s in ServerGroup.settings() if s not in SERVER_FLAGS_SET)
    names += _env_names((*LuaGroup.settings(), *JOB_TERMS))
    passed = _passed((*names, *OTEL_VARIABLES), environ)
    explicit = {**passed, _variable(CoreGroup.home): str(home)}
    return child_env(explicit, where="rivet up (server)")


def runner_env(
    home: Path, registration_token: str | None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The runner child's whole environment: the base, :data:`RUNNER_PASSED_ENV`, and
    the registration token made for it (none when its saved token is still good)."""
    environ = os.environ if environ is None else environ
    passed = _passed((*RUNNER_PASSED_ENV, *OTEL_VARIABLES), environ)
    explicit = {**passed, _variable(CoreGroup.home): str(home)}
    if registration_token is not None:
        explicit[_variable(RunnerGroup.registration_token)] = registration_token
    return child_env(explicit, where="rivet up (runner)")


@dataclass(frozen=True)
class LocalPlan:
    """What to start: resolved from the settings chain (flags, variables, the home's
    ``runner.toml`` and ``config``, defaults) like the children will."""

    settings: RivetSettings
    home: Path
    host: str
    port: int
    concurrency: int
    start_seconds: float  # up.start_seconds: the wait for each child to get ready
    drain_seconds: float  # up.drain_seconds: running jobs' time to finish on stop
    # Given to `rivet up` as flags, so handed on as flags (the rest the runner
    # resolves itself, from the same variables and files).
    tags: tuple[str, ...] = ()
    policy: Path | None = None

    @classmethod
    def from_flags(cls, flags: Flags, environ: Mapping[str, str] | None = None) -> LocalPlan:
        home = load_settings(flags, environ).home.expanduser().resolve()
        paths = RivetHome(home)
        settings = load_settings(
            {**flags, CoreGroup.home: home, RunnerGroup.config: paths.runner_config},
            environ,
            runner=True,
        )
        port = settings.server.port
        if port == 0:
            where = settings.source(ServerGroup.port).where
            raise SettingError(where, "rivet up needs a port between 1 and 65535, got 0")
        policy = settings.jobs.policy
        if policy is not None:
            from rivet.engine.policy import Policy  # pydantic: loaded on use

            Policy.load(policy)  # a bad file is one error before anything starts
        tags = flags.get(RunnerGroup.tags)
        return cls(
            settings=settings,
            home=home,
            host=settings.server.host,
            port=port,
            concurrency=settings.runner.concurrency,
            start_seconds=settings.up.start_seconds,
            drain_seconds=settings.up.drain_seconds,
            tags=tuple(tags) if isinstance(tags, list | tuple) else (),
            policy=policy.resolve() if policy and JobsGroup.policy in flags else None,
        )

    @property
    def paths(self) -> RivetHome:
        return RivetHome(self.home)

    @property
    def url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def server_argv(self) -> list[str]:
        argv = [sys.executable, "-m", "rivet.cli.server", "--host", self.host]
        argv += ["--port", str(self.port), "--home", str(self.home)]
        return [*argv, "--database-url", self.paths.database_url]

    def runner_argv(self) -> list[str]:
        argv = [sys.executable, "-m", "rivet.runner", "--server", self.url]
        argv += ["--config", str(self.paths.runner_config)]
        argv += ["--concurrency", str(self.concurrency)]
        for tag in self.tags:
            argv += ["--tag", tag]
        if self.policy is not None:
            argv += ["--policy", str(self.policy)]
        return argv


class LocalRivet:
    """Runs a :class:`LocalPlan` until ``stopping()``; see the module docstring."""

    def __init__(self, plan: LocalPlan, environ: Mapping[str, str] | None = None) -> None:
        self.plan = plan
        self.environ = os.environ if environ is None else environ

    def run(
        self,
        stopping: Callable[[], bool],
        *,
        on_ready: Callable[[], None] = lambda: None,
        on_stopping: Callable[[], None] = lambda: None,
    ) -> None:
        """Start both, call ``on_ready``, supervise until ``stopping()``
        (``on_stopping`` is called before the children are stopped); returns at once
        when a stop is asked for while they start. Raises
        :class:`~rivet.supervisor.process.Crashed` when a child dies, ``RivetError``
        when one does not get ready in time; the children are stopped either way."""
        plan, paths = self.plan, self.plan.paths
        outer_umask = private_umask()
        try:
            paths.ensure()
            with Supervisor(stopping, start_timeout=plan.start_seconds) as supervisor:
                server = ChildSpec(
                    "server",
                    plan.server_argv(),
                    server_env(plan.home, self.environ),
                    paths.log_file("server"),
                )
                if not supervisor.start(server, lambda: _ready(plan.url), "server to be ready"):
                    return
                token = self._registration_token()
                since = datetime.now(UTC) - timedelta(seconds=1)
                runner = ChildSpec(
                    "runner",
                    plan.runner_argv(),
                    runner_env(plan.home, token, self.environ),
                    paths.log_file("runner"),
                    umask=outer_umask,
                    second_signal_after=plan.drain_seconds,
                )
                checked_in = lambda: self._runner_checked_in(since)  # noqa: E731
                if not supervisor.start(runner, checked_in, "runner"):
                    return
                on_ready()
                supervisor.watch()
                on_stopping()
        finally:
            os.umask(outer_umask)

    def _admin_headers(self) -> dict[str, str]:
        configured = self.plan.settings.server.admin_token
        if configured is not None:
            token = configured.get_secret_value()
        else:
            token = self.plan.paths.admin_token.read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def _saved_runner(self) -> str | None:
        """The runner id saved for this server, if any."""
        saved = read_runner_file(self.plan.paths.runner_config)
        if saved.get("token") and saved.get("server") == self.plan.url and saved.get("runner_id"):
            return str(saved["runner_id"])
        return None

    def _registration_token(self) -> str | None:
        """A fresh registration token, or None when the saved runner is still registered."""
        import httpx  # loaded on use: it is heavy for the other commands

        url = self.plan.url
        runner_id = self._saved_runner()
        if runner_id is not None:
            known = httpx.get(f"{url}/api/runners", timeout=10).json()
            if any(r["id"] == runner_id for r in known):
                return None
        created = httpx.post(
            f"{url}/api/runner-tokens",
            json={"description": f"rivet up on {socket.gethostname()}"},
            headers=self._admin_headers(),
            timeout=10,
        )
        created.raise_for_status()
        return str(created.json()["token"])

    def _runner_checked_in(self, since: datetime) -> bool:
        """The runner has registered (or reused its token) and polled since ``since``."""
        import httpx

        runner_id = self._saved_runner()
        if runner_id is None:
            return False
        try:
            answer = httpx.get(f"{self.plan.url}/api/runners/{runner_id}", timeout=2)
        except httpx.TransportError:
            return False
        last_seen = answer.json().get("last_seen") if answer.status_code == 200 else None
        return last_seen is not None and datetime.fromisoformat(last_seen) >= since


def _ready(url: str) -> bool:
    import httpx  # loaded on use: it is heavy for the other commands

    try:
        return httpx.get(f"{url}/api/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
