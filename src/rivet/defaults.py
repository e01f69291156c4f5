"""Defaults shared by the CLI and the server, kept free of heavy imports so that
commands like ``rivet check`` start fast."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_IMAGE", "DEFAULT_PORT", "default_home"]

DEFAULT_PORT = 8420
# The image for commands run outside any container.with / stage container.
DEFAULT_IMAGE = "alpine:latest"


def default_home() -> Path:
    """``~/.rivet``: where the embedded database, admin token and config live."""
    return Path("~/.rivet").expanduser()
