"""``[plugins]`` and ``[archive]`` policy: which plugins a runner refuses, and the
caps the archive plugin (and any unpacking of an untrusted archive) applies.

``plugins.denied`` names plugins a job may not load on this runner, whether built in
or from a plugin directory: a pipeline listing one fails before its first stage,
naming the rule. ``archive.*`` are :class:`rivet.engine.archives.ArchiveLimits`
(``0`` means no cap; sizes also in Podman's syntax, ``"1g"``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rivet.engine.archives import ArchiveLimits
from rivet.engine.policy.sizes import size_field

__all__ = ["ArchivePolicy", "PluginsPolicy"]


class PluginsPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    denied: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = ()


_DEFAULT = ArchiveLimits()


class ArchivePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_total_bytes: Annotated[int, Field(ge=0, strict=True)] = _DEFAULT.max_total_bytes
    max_ratio: Annotated[int, Field(ge=0, strict=True)] = _DEFAULT.max_ratio
    max_entries: Annotated[int, Field(ge=0, strict=True)] = _DEFAULT.max_entries

    @field_validator("max_total_bytes", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        return size_field(value)

    def limits(self) -> ArchiveLimits:
        return ArchiveLimits(self.max_total_bytes, self.max_ratio, self.max_entries)
