"""Frozen value types shared by every part of Rivet (no I/O, no Lua, no SQL)."""

from __future__ import annotations

from rivet.domain.definition import InputDef, PipelineDefinition, RunnerTag, StageDef
from rivet.domain.inputs import InputValue, coerce_value, resolve_inputs
from rivet.domain.status import JobStatus, StageStatus

__all__ = [
    "InputDef",
    "InputValue",
    "JobStatus",
    "PipelineDefinition",
    "RunnerTag",
    "StageDef",
    "StageStatus",
    "coerce_value",
    "resolve_inputs",
]
