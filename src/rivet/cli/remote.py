"""Shared pieces of the commands that talk to a server: options, the client, and how
server answers are shown."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

from rich.text import Text

from rivet.cli.common import resolve_admin_token, resolve_server
from rivet.cli.flags import setting_option
from rivet.cli.terminal import safe
from rivet.cli.times import format_timestamp
from rivet.settings import ClientGroup

if TYPE_CHECKING:
    from rivet.client import RivetClient

__all__ = [
    "AdminTokenOption",
    "ServerOption",
    "admin_client_for",
    "ago",
    "client_for",
    "format_ts",
    "maybe",
]

ServerOption = Annotated[str | None, setting_option(ClientGroup.server)]
AdminTokenOption = Annotated[str | None, setting_option(ClientGroup.admin_token)]


def client_for(server: str | None, admin_token: str | None = None) -> RivetClient:
    """A client that sends ``admin_token``, else the one :func:`resolve_admin_token`
    finds (none: anonymous): what a request may do depends on who sends it."""
    from rivet.client import RivetClient  # httpx is heavy: load it on use

    token = admin_token if admin_token is not None else resolve_admin_token(None)
    return RivetClient(resolve_server(server), admin_token=token)


def admin_client_for(server: str | None, admin_token: str | None) -> RivetClient:
    return client_for(server, resolve_admin_token(admin_token))


def format_ts(ts: datetime | None, utc: bool = False) -> str:
    """A table's time with its zone (:func:`rivet.cli.times.format_timestamp`), or ``-``."""
    return format_timestamp(ts, utc=utc)


def ago(ts: datetime | None, now: datetime | None = None) -> str:
    """``12s ago``, ``5m ago``, ``3h ago``, ``2d ago`` or ``never``."""
    if ts is None:
        return "never"
    now = now or datetime.now(UTC)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    seconds = max(0, int((now - ts).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def maybe(value: object, style: str = "") -> Text:
    """A table cell of text from outside: ``-`` (dim) for None/empty, else
    :func:`~rivet.cli.terminal.safe` (one line, control characters shown escaped)."""
    if value is None or value == "" or value == [] or value == {}:
        return Text("-", style="dim")
    return safe(value, style)
