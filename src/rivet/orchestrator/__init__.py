"""The orchestrator: an ASGI app over the store and the queue (see :func:`create_app`)."""

from __future__ import annotations

from rivet.orchestrator.app import create_app

__all__ = ["create_app"]
