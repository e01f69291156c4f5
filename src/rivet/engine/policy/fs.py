"""``[fs]`` policy for the ``fs`` module: per-file and per-job write limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["FsPolicy"]


class FsPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
