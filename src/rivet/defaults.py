"""Defaults shared by the CLI and the server, kept free of heavy imports so that
commands like ``rivet check`` start fast (the home directory: :mod:`rivet.home`)."""

from __future__ import annotations

__all__ = ["DEFAULT_IMAGE", "DEFAULT_PORT"]

DEFAULT_PORT = 8420
# The image for commands run outside any container.with / stage container.
DEFAULT_IMAGE = "alpine:latest"
