"""``create_app(settings)``: the orchestrator's ASGI application.

The process holds no job state: everything lives in the database, so any number of
orchestrators can serve the same runners and clients. Start-up migrates the schema
(``upgrade head``, serialised across processes), loads the admin token and starts
the queue's wake-up listener; shutdown stops it and closes the connection pool.

Every request passes the guards of :mod:`rivet.orchestrator.guard` first: a body size
limit and a check that every string it carries is storable text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import Depends, FastAPI

from rivet import __version__
from rivet.observe.logs import register_secret
from rivet.orchestrator.auth import hash_token, load_admin_token
from rivet.orchestrator.guard import STREAMED, BodyLimit, check_request_text
from rivet.orchestrator.http_errors import ERROR_RESPONSES, install_error_handlers
from rivet.orchestrator.request_context import RequestIds
from rivet.orchestrator.routes import (
    artifacts,
    audit,
    health,
    jobs,
    metrics,
    pipelines,
    runner_api,
    runner_artifacts,
    runners,
    secret_admin,
    stream,
)
from rivet.orchestrator.services import Services
from rivet.settings import RivetSettings, load_settings
from rivet.store import upgrade

__all__ = ["create_app"]

API_PREFIX = "/api"  # one of metrics.ROUTE_PREFIXES, so requests are labelled by route

log = logging.getLogger(__name__)


def create_app(settings: RivetSettings | None = None) -> FastAPI:
    """The app for ``settings`` (default: :func:`rivet.settings.load_settings` of this
    process)."""
    settings = settings if settings is not None else load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services.build(settings)
        try:
            await anyio.to_thread.run_sync(upgrade, services.db)
            admin_token = await anyio.to_thread.run_sync(load_admin_token, settings)
            app.state.admin_token_hash = hash_token(admin_token)
            register_secret(admin_token)
            await anyio.to_thread.run_sync(services.secrets.rotate)
            app.state.services = services
            app.state.http_metrics = services.metrics.http
            services.signals.bind(asyncio.get_running_loop())
            await services.queue.start()
            # Every orchestrator reaps: lost runners, deadlines, unclaimed jobs.
            stop_reaping = asyncio.Event()
            reaper = asyncio.create_task(services.reaper.run(stop_reaping), name="reaper")
            # And cleans up artifacts (safe on several at once: rivet.store.artifacts).
            cleaner = asyncio.create_task(
                services.artifacts.run(stop_reaping), name="artifact-cleanup"
            )
            log.info("orchestrator ready on %s", services.db.dialect)
            try:
                yield
            finally:
                stop_reaping.set()
                await reaper
                await cleaner
                await services.queue.stop()
        finally:
            services.db.close()

    app = FastAPI(
        title="Rivet",
        version=__version__,
        description="Rivet orchestrator API: pipelines, jobs, logs and runners.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
        dependencies=[Depends(check_request_text)],
    )
    install_error_handlers(app)
    # Raw uploads (artifact files, source archives) stream past it, under their own limits.
    app.add_middleware(BodyLimit, limit=settings.server.max_body_bytes, streamed=STREAMED)
    routers = (
        health,
        pipelines,
        jobs,
        stream,
        runners,
        runner_api,
        runner_artifacts,
        artifacts,
        secret_admin,
        audit,
    )
    for module in routers:
        app.include_router(module.router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    app.include_router(metrics.router)  # /metrics, where Prometheus looks by default
    # Outermost: every answer is counted and carries a request id, 413s included.
    app.add_middleware(RequestIds)
    return app
