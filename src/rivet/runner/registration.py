"""Exchanging a one-time registration token for the runner's permanent token.

The exchange is retried while the server is unreachable (a runner may start before
its server), and the answer is saved at once in the runner config file (mode 0600,
see :mod:`rivet.runner.config_file`) so that later starts need no registration token.
A refused registration token (unknown, revoked or already used) is final.
"""

from __future__ import annotations

import logging
import threading

from rivet.errors import RivetError
from rivet.protocol import RegisterRequest
from rivet.runner.client import RequestRejected, RunnerClient, TokenRejected, deliver
from rivet.runner.config import RunnerSettings
from rivet.runner.config_file import save_registration
from rivet.runner.retry import Backoff

__all__ = ["RegistrationFailed", "register_runner"]

log = logging.getLogger("rivet.runner")


class RegistrationFailed(RivetError):
    """The server refused the registration token or the request."""


def register_runner(
    client: RunnerClient, settings: RunnerSettings, stop: threading.Event
) -> str | None:
    """Register, set ``client.token`` and save it; the runner id, or None if stopped."""
    if not settings.registration_token:
        raise RegistrationFailed(
            "this runner has no token: pass --registration-token (or set "
            "RIVET_REGISTRATION_TOKEN) once to register it, or --token"
        )
    request = RegisterRequest(
        registration_token=settings.registration_token,
        name=settings.name,
        tags=settings.tags,
        plugins=list(settings.plugins),
        pool=settings.pool,
    )
    try:
        answer = deliver(lambda: client.register(request), Backoff(0.5, 10.0), stop)
    except (TokenRejected, RequestRejected) as exc:
        raise RegistrationFailed(f"registration failed: {exc}") from None
    if answer is None:
        return None
    client.token = answer.token
    path = settings.config_file
    try:
        save_registration(
            path,
            server=settings.server,
            runner_id=answer.runner_id,
            token=answer.token,
            name=settings.name,
        )
        log.info("registered as runner %s; token saved in %s", answer.runner_id, path)
    except OSError as exc:
        # Not fatal: this process has its token; only a restart would lack it.
        log.error(
            "registered as runner %s but could not save its token in %s (%s): "
            "a restart will need a new registration token",
            answer.runner_id,
            path,
            exc,
        )
    return answer.runner_id
