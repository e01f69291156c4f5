"""The validated, serialisable shape of a pipeline (what `rivet check --json` prints).

A definition holds only static facts; stage scripts and conditions stay in the Lua
source, which the runner re-evaluates from the pinned pipeline version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rivet.domain.inputs import InputValue
from rivet.domain.reliability import RetryPolicy

__all__ = ["InputDef", "InputType", "PipelineDefinition", "RunnerTag", "StageDef"]

InputType = Literal["string", "number", "bool"]
INPUT_TYPES: tuple[InputType, ...] = ("string", "number", "bool")


@dataclass(frozen=True)
class InputDef:
    name: str
    type: InputType
    description: str | None = None
    default: InputValue | None = None
    options: tuple[InputValue, ...] | None = None
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "description": self.description,
            "default": self.default,
            "options": list(self.options) if self.options is not None else None,
            "required": self.required,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputDef:
        options = data.get("options")
        return cls(
            name=data["name"],
            type=data["type"],
            description=data.get("description"),
            default=data.get("default"),
            options=tuple(options) if options is not None else None,
            required=bool(data.get("required", True)),
        )


@dataclass(frozen=True)
class RunnerTag:
    key: str
    value: str

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value}


@dataclass(frozen=True)
class StageDef:
    name: str
    container: str | None = None
    has_condition: bool = False
    line: int | None = None
    readonly: bool = False
    network: str | None = None
    # Seconds the stage may run; None: only the job's timeout applies.
    timeout: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "container": self.container,
            "has_condition": self.has_condition,
            "line": self.line,
            "readonly": self.readonly,
            "network": self.network,
            "timeout": self.timeout,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageDef:
        return cls(
            name=data["name"],
            container=data.get("container"),
            has_condition=bool(data.get("has_condition", False)),
            line=data.get("line"),
            readonly=bool(data.get("readonly", False)),
            network=data.get("network"),
            timeout=data.get("timeout"),
        )


@dataclass(frozen=True)
class PipelineDefinition:
    name: str
    stages: tuple[StageDef, ...]
    description: str | None = None
    inputs: tuple[InputDef, ...] = ()
    tags: tuple[RunnerTag, ...] = ()
    plugins: tuple[str, ...] = ()
    # Seconds; None: the server's setting (jobs.lease_seconds, jobs.timeout_seconds).
    lease: float | None = None
    timeout: float | None = None
    retry: RetryPolicy | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def input(self, name: str) -> InputDef | None:
        for item in self.inputs:
            if item.name == name:
                return item
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "inputs": [i.to_dict() for i in self.inputs],
            "tags": [t.to_dict() for t in self.tags],
            "plugins": list(self.plugins),
            "lease": self.lease,
            "timeout": self.timeout,
            "retry": self.retry.to_dict() if self.retry is not None else None,
            "stages": [s.to_dict() for s in self.stages],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineDefinition:
        return cls(
            name=data["name"],
            description=data.get("description"),
            inputs=tuple(InputDef.from_dict(i) for i in data.get("inputs", [])),
            tags=tuple(RunnerTag(t["key"], t["value"]) for t in data.get("tags", [])),
            plugins=tuple(data.get("plugins", [])),
            lease=data.get("lease"),
            timeout=data.get("timeout"),
            retry=RetryPolicy.from_dict(data.get("retry")),
            stages=tuple(StageDef.from_dict(s) for s in data["stages"]),
        )
