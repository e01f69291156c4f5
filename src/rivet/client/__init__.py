"""Typed HTTP client for the Rivet API (used by the CLI)."""

from __future__ import annotations

from rivet.client.api import (
    JobUpdate,
    RivetClient,
    ServerUnreachableError,
    StreamItem,
    api_error,
    error_body,
)
from rivet.client.sse import SseEvent, parse_sse

__all__ = [
    "JobUpdate",
    "RivetClient",
    "ServerUnreachableError",
    "SseEvent",
    "StreamItem",
    "api_error",
    "error_body",
    "parse_sse",
]
