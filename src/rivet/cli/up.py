"""``rivet up``: a local Rivet in one command — a server on SQLite plus one runner.

Both run as child processes (``python -m rivet.cli.server`` and ``python -m
rivet.runner``), so a crash of either is seen at once: ``rivet up`` then stops the
other and exits 1, printing the end of the crashed one's log. Their output goes to
``$RIVET_HOME/logs/server.log`` and ``runner.log`` (appended), keeping this terminal
for the URL and the next steps. The children run in their own session, so Ctrl-C
reaches only ``rivet up``, which then stops them in order: the runner first (SIGTERM:
finish running jobs, then a second SIGTERM cancels them after a grace period), the
server last. SIGTERM and SIGHUP to ``rivet up`` do the same as Ctrl-C.

Each child gets an environment built from scratch (:func:`rivet.child_env.child_env`)
plus an explicit allow-list of this process's variables, never this environment
minus a deny-list: the server gets its own settings (``RIVET_ADMIN_TOKEN``,
``RIVET_SECRET_KEY``, …) and the runner gets none of them — only its settings, the
registration token made for it and ``PATH`` (to find podman). So no job can read a
server credential from the runner.

The runner registers with a registration token made through the admin API (with the
admin token the server writes to ``$RIVET_HOME/admin-token``) and saves its own token
in ``$RIVET_HOME/runner.toml``; the next ``rivet up`` on the same home reuses it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO, Annotated

import typer

from rivet.child_env import child_env
from rivet.cli.common import EXIT_FAILED, EXIT_OK, rivet_home
from rivet.cli.terminal import echo
from rivet.defaults import DEFAULT_PORT, LUA_LIMIT_VARIABLES
from rivet.errors import RivetError
from rivet.home import RivetHome, open_private_append, private_umask
from rivet.runner.config_file import read_runner_file
from rivet.stop_signals import handling_stop_signals

__all__ = ["up"]

START_TIMEOUT = 60.0
DRAIN_GRACE = 10.0
STOP_GRACE = 10.0
# The server's settings given as flags; its other settings pass from this environment.
_SERVER_FLAG_SETTINGS = frozenset({"home", "database_url", "host", "port"})
# What the runner may take from this environment: its own settings that `rivet up`
# does not set by flag, and PATH to find podman. Never its server, token or config
# file (they would point it at another server or identity), never a server setting.
RUNNER_PASSED_ENV = (
    "RIVET_RUNNER_NAME",
    "RIVET_RUNNER_TAGS",
    "RIVET_WORKSPACE_ROOT",
    "RIVET_DEFAULT_IMAGE",
    "RIVET_POLICY",
    *LUA_LIMIT_VARIABLES,
    "PATH",
)


class _Child:
    """A supervised child process whose output goes to a log file."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log_path: Path, umask: int = -1
    ) -> None:
        self.name = name
        self.log_path = log_path
        # 0600: a job's log lines (and the server's) are for this user only.
        self._log: IO[bytes] = os.fdopen(open_private_append(log_path), "ab")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=umask,
        )

    def exited(self) -> int | None:
        return self.proc.poll()

    def stop(self, grace: float, second_signal_after: float | None = None) -> None:
        """SIGTERM (again after ``second_signal_after`` s), SIGKILL after ``grace`` s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if second_signal_after is not None and not self._wait(second_signal_after):
                self.proc.send_signal(signal.SIGTERM)
            if not self._wait(grace):
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


class _Crashed(RivetError):
    def __init__(self, child: _Child) -> None:
        super().__init__(
            f"the {child.name} exited with status {child.exited()}; end of {child.log_path}:\n"
            + child.tail()
        )


def up(
    port: Annotated[
        int, typer.Option(envvar="RIVET_PORT", min=1, max=65535, help="port for the server")
    ] = DEFAULT_PORT,
    host: Annotated[
        str, typer.Option(envvar="RIVET_HOST", help="address the server listens on")
    ] = "127.0.0.1",
    home: Annotated[
        Path | None,
        typer.Option(
            envvar="RIVET_HOME",
            help="state: database, tokens, logs/ (default: ~/.rivet)",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            min=1, envvar="RIVET_RUNNER_CONCURRENCY", help="jobs the local runner runs at once"
        ),
    ] = 1,
    tags: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            help="runner tag KEY=VALUE, used when the runner first registers (repeatable; "
            "later: rivet runner set-tags)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start a local server (SQLite in RIVET_HOME) and one runner; Ctrl-C stops both.

    Server and runner are child processes; their output goes to
    $RIVET_HOME/logs/server.log and runner.log. If either dies, `rivet up` stops the
    other and exits 1 with the end of its log. SIGTERM and SIGHUP stop both like
    Ctrl-C. The runner gets none of the server's settings (admin token, secret key).

    Example: rivet up --port 8420
    """
    home = (home or rivet_home()).expanduser().resolve()
    paths = RivetHome(home)
    # This process and the server (which inherits it) write private files only; the
    # runner gets the umask we were started with (see rivet.home for why).
    outer_umask = private_umask()
    url = f"http://{_url_host(host)}:{port}"
    stop_requested = False

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    children: list[_Child] = []
    with handling_stop_signals(on_signal):
        try:
            paths.ensure()
            server_argv = [sys.executable, "-m", "rivet.cli.server", "--host", host]
            server_argv += ["--port", str(port), "--home", str(home)]
            server_argv += ["--database-url", paths.database_url]
            server = _Child("server", server_argv, server_env(home), paths.log_file("server"))
            children.append(server)
            _wait_until(lambda: _ready(url), server, lambda: stop_requested, "server to be ready")
            token = _registration_token(url, home)
            runner_argv = [sys.executable, "-m", "rivet.runner", "--server", url]
            runner_argv += ["--config", str(paths.runner_config)]
            runner_argv += ["--concurrency", str(concurrency)]
            for tag in tags or ():
                runner_argv += ["--tag", tag]
            since = datetime.now(UTC) - timedelta(seconds=1)
            runner = _Child(
                "runner",
                runner_argv,
                runner_env(home, token),
                paths.log_file("runner"),
                umask=outer_umask,
            )
            children.append(runner)
            _wait_until(
                lambda: _runner_checked_in(url, home, since),
                runner,
                lambda: stop_requested,
                "runner",
            )
            if not stop_requested:
                _banner(url, home, concurrency)
            while not stop_requested:
                for child in children:
                    if child.exited() is not None:
                        raise _Crashed(child)
                time.sleep(0.2)
            echo("stopping the runner and the server…", err=True)
        finally:
            # Runner first: its last logs and results still need the server.
            for child in reversed(children):
                if child.name == "runner":
                    child.stop(STOP_GRACE, second_signal_after=DRAIN_GRACE)
                else:
                    child.stop(STOP_GRACE)
            os.umask(outer_umask)
    raise typer.Exit(EXIT_OK if stop_requested else EXIT_FAILED)


def _passed(names: Iterable[str]) -> dict[str, str]:
    """The variables of this process named in ``names`` (an allow-list), if set."""
    return {name: os.environ[name] for name in names if name in os.environ}


def server_env(home: Path) -> dict[str, str]:
    """The server child's whole environment: the base, its ``RIVET_*`` settings that
    are not given as flags (admin token, secret key, log level…), the Lua limits."""
    from rivet.config import ServerSettings  # pydantic-settings: heavy for other commands

    settings = [
        f"RIVET_{field.upper()}"
        for field in ServerSettings.model_fields
        if field not in _SERVER_FLAG_SETTINGS
    ]
    passed = _passed([*settings, *LUA_LIMIT_VARIABLES])
    return child_env({**passed, "RIVET_HOME": str(home)}, where="rivet up (server)")


def runner_env(home: Path, registration_token: str | None) -> dict[str, str]:
    """The runner child's whole environment: the base, :data:`RUNNER_PASSED_ENV`, and
    the registration token made for it (none when its saved token is still good)."""
    explicit = {**_passed(RUNNER_PASSED_ENV), "RIVET_HOME": str(home)}
    if registration_token is not None:
        explicit["RIVET_REGISTRATION_TOKEN"] = registration_token
    return child_env(explicit, where="rivet up (runner)")


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _wait_until(
    check: Callable[[], bool], child: _Child, stopping: Callable[[], bool], what: str
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not stopping():
        if child.exited() is not None:
            raise _Crashed(child)
        if check():
            return
        if time.monotonic() > deadline:
            raise RivetError(f"timed out waiting for the {what}; see {child.log_path}")
        time.sleep(0.1)


def _ready(url: str) -> bool:
    import httpx  # loaded on use: it is heavy for the other commands

    try:
        return httpx.get(f"{url}/api/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _admin_headers(home: Path) -> dict[str, str]:
    token = os.environ.get("RIVET_ADMIN_TOKEN") or RivetHome(home).admin_token.read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def _saved_runner(home: Path, url: str) -> str | None:
    """The runner id saved for this server, if any."""
    saved = read_runner_file(RivetHome(home).runner_config)
    if saved.get("token") and saved.get("server") == url and saved.get("runner_id"):
        return str(saved["runner_id"])
    return None


def _registration_token(url: str, home: Path) -> str | None:
    """A fresh registration token, or None when the saved runner is still registered."""
    import httpx  # loaded on use: it is heavy for the other commands

    headers = _admin_headers(home)
    runner_id = _saved_runner(home, url)
    if runner_id is not None:
        known = httpx.get(f"{url}/api/runners", timeout=10).json()
        if any(r["id"] == runner_id for r in known):
            return None
    created = httpx.post(
        f"{url}/api/runner-tokens",
        json={"description": f"rivet up on {socket.gethostname()}"},
        headers=headers,
        timeout=10,
    )
    created.raise_for_status()
    return str(created.json()["token"])


def _runner_checked_in(url: str, home: Path, since: datetime) -> bool:
    """The runner has registered (or reused its token) and polled since ``since``."""
    import httpx  # loaded on use: it is heavy for the other commands

    runner_id = _saved_runner(home, url)
    if runner_id is None:
        return False
    try:
        answer = httpx.get(f"{url}/api/runners/{runner_id}", timeout=2)
    except httpx.TransportError:
        return False
    last_seen = answer.json().get("last_seen") if answer.status_code == 200 else None
    return last_seen is not None and datetime.fromisoformat(last_seen) >= since


def _banner(url: str, home: Path, concurrency: int) -> None:
    lines = [
        f"Rivet is up at {url}  (API docs: {url}/api/docs)",
        f"  server and one runner (concurrency {concurrency}); logs in {RivetHome(home).logs}",
        "",
        "Next, in another terminal:",
        *([] if url.endswith(f":{DEFAULT_PORT}") else [f"  export RIVET_SERVER={url}"]),
        "  rivet pipeline create examples/hello.lua",
        "  rivet job launch hello --input name=world --follow",
        "",
        "Press Ctrl-C to stop.",
    ]
    for line in lines:
        echo(line)
