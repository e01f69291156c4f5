"""``[container]`` policy: images, registries, pull policy, resource limits, network."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["ContainerPolicy"]


class ContainerPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
