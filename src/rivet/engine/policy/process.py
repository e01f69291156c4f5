"""``[process]`` policy: which binaries ``process.run`` may start, and timeouts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["ProcessPolicy"]


class ProcessPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
