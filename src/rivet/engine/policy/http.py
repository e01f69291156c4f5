"""``[http]`` policy for the ``http`` module: hosts, rate limit, sizes, redirects, timeouts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["HttpPolicy"]


class HttpPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
