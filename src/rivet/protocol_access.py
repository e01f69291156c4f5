"""Wire models of the secrets (admin), pipeline and secret permissions, runner pools
and the audit trail (issue 9), re-exported by :mod:`rivet.protocol`. Kept apart so
that ``protocol.py`` stays within the module size rule. Routes: ``/api/secrets``,
``/api/pipelines/{ref}/access`` and ``/pools``, ``/api/runner-pools``, ``/api/audit``
(see docs/security.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, SecretStr, StringConstraints

from rivet import limits

__all__ = [
    "AccessEntry",
    "AuditEvent",
    "PipelineAccessView",
    "PipelinePools",
    "RunnerPoolSet",
    "RunnerPoolView",
    "SecretAccessView",
    "SecretSet",
    "SecretView",
]

Name = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_NAME)]


def _registered_name(name: str) -> str:
    """A pool's name follows the runner name rule (:func:`rivet.limits.name_problem`)."""
    if (problem := limits.name_problem(name)) is not None:
        raise ValueError(problem)
    return name


PoolName = Annotated[Name, AfterValidator(_registered_name)]


class AccessEntry(BaseModel):
    """Body of ``PUT /api/pipelines/{ref}/access`` and ``PUT /api/secrets/{name}/access``:
    give ``subject`` (``user:<name>``, ``api-key:<name>``, for pipelines also
    ``role:<role>``) the ``level`` (pipelines: view, launch, push; secrets: use, grant,
    write)."""

    subject: Name
    level: Name


class PipelineAccessView(BaseModel):
    """Who may do what with a pipeline (see docs/security.md, "Pipeline permissions")."""

    pipeline: str
    owner: str
    entries: dict[str, str] = Field(description="subject -> view / launch / push")
    pools: list[str] = Field(
        default_factory=list, description="runner pools its jobs may run in (empty: any)"
    )
    you: str = Field(description="the level the requesting principal has")


class PipelinePools(BaseModel):
    """Body of ``PUT /api/pipelines/{ref}/pools`` (admin): all the pools, empty for none."""

    pools: list[PoolName] = Field(max_length=limits.MAX_TAGS)


class SecretAccessView(BaseModel):
    """Who besides the admins may use, grant or write a secret."""

    secret: str
    entries: dict[str, str] = Field(description="subject -> use / grant / write")


class AuditEvent(BaseModel):
    at: datetime
    actor: str = Field(description="who: admin, anonymous, user:<name>, api-key:<name>…")
    action: str = Field(description="what: pipeline.push, secret.grant, job.launch…")
    target: str
    details: dict[str, Any] = Field(default_factory=dict)


class RunnerPoolSet(BaseModel):
    """Body of ``PUT /api/runner-pools/{name}`` (admin)."""

    exclusive: bool = Field(
        description="its runners claim only jobs of pipelines restricted to this pool"
    )


class RunnerPoolView(BaseModel):
    name: str
    exclusive: bool
    runners: int = Field(description="runners registered in it")


class SecretSet(BaseModel):
    """Body of ``PUT /api/secrets/{name}``: the value, and grants to add with it."""

    value: SecretStr = Field(description="the secret value (never returned by the API)")
    grants: list[Name] = Field(
        default_factory=list, max_length=limits.MAX_GRANTS, description="pipeline names to grant"
    )


class SecretView(BaseModel):
    """What the API shows about a secret: its name and metadata, never the value."""

    name: str
    created_at: datetime
    updated_at: datetime
    grants: list[str] = Field(default_factory=list, description="pipelines it is granted to")
    covers: dict[str, int] = Field(
        default_factory=dict,
        description="pipeline -> the first version its grant covers (versions the admin "
        "pushes from then on; older ones run without the secret)",
    )
