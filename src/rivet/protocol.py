"""Wire models of the HTTP API, shared by the orchestrator, the runner and the CLI client.

The runner reaches the orchestrator only through these models and ``/api/runner/*``
endpoints, never by importing orchestrator code. Bump :data:`API_VERSION` on any
incompatible change; runners send it in the ``X-Rivet-Api`` header.

Runner endpoints (``Authorization: Bearer <runner token>``, 401 without a valid one):

- ``POST /api/runners/register`` ``RegisterRequest`` → ``RegisterResponse`` (uses a
  registration token instead of a runner token; the token is consumed)
- ``GET /api/runner/self`` → ``RunnerView``: the runner as the server knows it (the
  tags and plugins its claims are matched with)
- ``POST /api/runner/claim`` ``ClaimRequest`` → 200 ``JobAssignment`` or 204 after
  ``wait_seconds`` without work (long poll)
- ``POST /api/runner/jobs/{id}/logs`` ``LogBatch`` → ``Ack`` (idempotent by ``seq``)
- ``POST /api/runner/jobs/{id}/stages`` ``StageUpdate`` → ``Ack``
- ``POST /api/runner/jobs/{id}/heartbeat`` → ``Ack`` (``cancel_requested`` tells the
  runner to stop the job)
- ``POST /api/runner/jobs/{id}/complete`` ``JobCompletion`` → ``Ack`` (idempotent)
- ``POST /api/runner/restarted`` ``RestartReport`` → ``RestartAnswer``

Attempts, leases and restarts on these routes: see :mod:`rivet.protocol_attempts`;
permissions, pools and the audit trail: :mod:`rivet.protocol_access`; accounts,
sessions and API keys: :mod:`rivet.protocol_auth` (imported from there, not re-exported).

Request models carry the size caps of :mod:`rivet.limits` (422 naming the field and
the limit); answer models carry none, so rows stored before a cap existed still show.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, PlainSerializer, SecretStr, StringConstraints

from rivet import limits
from rivet.protocol_access import (
    AccessEntry,
    AuditEvent,
    PipelineAccessView,
    PipelinePools,
    RunnerPoolSet,
    RunnerPoolView,
    SecretAccessView,
    SecretSet,
    SecretView,
)
from rivet.protocol_artifacts import (
    ArtifactFileView,
    ArtifactList,
    ArtifactView,
    SourceInfo,
    SourceUploaded,
)
from rivet.protocol_attempts import AttemptView, Heartbeat, RestartAnswer, RestartReport
from rivet.protocol_logs import Level, LogBatch, LogLine, LogPage, Stream

__all__ = [
    "API_VERSION",
    "AccessEntry",
    "Ack",
    "ArtifactFileView",
    "ArtifactList",
    "ArtifactView",
    "AttemptView",
    "AuditEvent",
    "ClaimRequest",
    "ErrorBody",
    "ErrorResponse",
    "Heartbeat",
    "JobAssignment",
    "JobCompletion",
    "JobLaunch",
    "JobLaunched",
    "JobPage",
    "JobView",
    "JobWait",
    "Level",
    "LogBatch",
    "LogLine",
    "LogPage",
    "PipelineAccessView",
    "PipelineCreate",
    "PipelinePage",
    "PipelinePools",
    "PipelineView",
    "RegisterRequest",
    "RegisterResponse",
    "RegistrationTokenCreate",
    "RegistrationTokenView",
    "RestartAnswer",
    "RestartReport",
    "RunnerPoolSet",
    "RunnerPoolView",
    "RunnerUpdate",
    "RunnerView",
    "SecretAccessView",
    "SecretSet",
    "SecretView",
    "SourceInfo",
    "SourceUploaded",
    "StageUpdate",
    "StageView",
    "Stream",
]

API_VERSION = "1"

JobStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled", "timed_out"]
StageStatusName = Literal[
    "pending", "running", "succeeded", "failed", "skipped", "cancelled", "timed_out"
]
Scalar = str | int | float | bool


def _wire_value(value: Scalar) -> Scalar:
    """An input or output value a pipeline can hold exactly (see :mod:`rivet.limits`)."""
    if isinstance(value, str):
        if len(value) > limits.MAX_VALUE:
            raise ValueError(f"a string value may have at most {limits.MAX_VALUE} characters")
    elif not isinstance(value, bool) and (problem := limits.number_problem(value)) is not None:
        raise ValueError(problem)
    return value


def _source_size(source: str) -> str:
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > limits.MAX_SOURCE_BYTES:
        raise ValueError(
            f"the pipeline source is {size} bytes; at most {limits.MAX_SOURCE_BYTES} "
            f"({limits.MAX_SOURCE_BYTES // 1024} KiB) are accepted"
        )
    return source


Name = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_NAME)]
Description = Annotated[str, StringConstraints(max_length=limits.MAX_DESCRIPTION)]
ErrorText = Annotated[str, StringConstraints(max_length=limits.MAX_ERROR)]
WireScalar = Annotated[Scalar, AfterValidator(_wire_value)]
# A runner may offer a tag with an empty value (``--tag os=``); keys are never empty.
Tags = Annotated[
    dict[Name, Annotated[str, StringConstraints(max_length=limits.MAX_NAME)]],
    Field(max_length=limits.MAX_TAGS),
]
Plugins = Annotated[list[Name], Field(max_length=limits.MAX_PLUGINS)]


def _registered_name(name: str) -> str:
    """A runner's name, tag or plugin as given at registration (or by the admin): no
    control, format or bidi character (:func:`rivet.limits.name_problem`)."""
    if (problem := limits.name_problem(name)) is not None:
        raise ValueError(problem)
    return name


# What a runner is registered with, and what the admin sets: the name rule too. Claims
# keep the plain types, so a runner registered before the rule still claims.
RunnerName = Annotated[Name, AfterValidator(_registered_name)]
RunnerTagValue = Annotated[
    str, StringConstraints(max_length=limits.MAX_NAME), AfterValidator(_registered_name)
]
RunnerTags = Annotated[dict[RunnerName, RunnerTagValue], Field(max_length=limits.MAX_TAGS)]
RunnerPlugins = Annotated[list[RunnerName], Field(max_length=limits.MAX_PLUGINS)]


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {"code", "message", "details"}}``."""

    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The JSON envelope of every non-2xx answer."""

    error: ErrorBody


# --- pipelines -----------------------------------------------------------------------


class PipelineCreate(BaseModel):
    source: Annotated[str, AfterValidator(_source_size)] = Field(
        description=f"Lua source of the pipeline file (at most {limits.MAX_SOURCE_BYTES} "
        "bytes as UTF-8)"
    )
    filename: str = Field(
        default="pipeline.lua",
        min_length=1,
        max_length=limits.MAX_FILENAME,
        description="shown in error messages",
    )


class PipelineView(BaseModel):
    id: str
    name: str
    version: int
    description: str | None
    definition: dict[str, Any]
    source: str | None = None
    created_at: datetime
    created_by: str | None = Field(
        default=None,
        description="who pushed this version: admin, anonymous, or unknown (pushed before "
        "Rivet recorded it); "
        "only versions an admin pushed after a grant receive its secret",
    )
    versions: int = 1
    archived_at: datetime | None = Field(
        default=None,
        description="when `rivet pipeline delete` archived it: its versions and jobs stay "
        "readable, launches and new versions are refused until it is restored",
    )
    owner: str | None = Field(
        default=None, description="who created the pipeline; may push and change its access"
    )


class PipelinePage(BaseModel):
    """One page of ``GET /api/pipelines`` (by name); ``total`` counts every match, like
    :class:`JobPage`."""

    pipelines: list[PipelineView]
    total: int
    limit: int
    offset: int


# --- jobs ----------------------------------------------------------------------------


class JobLaunch(BaseModel):
    pipeline: Name = Field(description="pipeline name (or id)")
    version: int | None = Field(
        default=None, ge=1, le=limits.MAX_INT32, description="default: the latest version"
    )
    inputs: dict[Name, WireScalar] = Field(
        default_factory=dict,
        max_length=limits.MAX_INPUTS,
        description=f"numbers finite within ±2^53; strings at most {limits.MAX_VALUE} characters",
    )
    source_archive: SourceInfo | None = Field(
        default=None, description="the job's source (POST /api/sources), unpacked before stage 1"
    )


class StageView(BaseModel):
    name: str
    status: StageStatusName
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    error: str | None = None


class JobWait(BaseModel):
    """Why a queued job has no runner yet, from the runners the server knows."""

    message: str = Field(
        description="e.g. 'waiting for a runner with os=linux (none of the 2 online runners match)'"
    )
    reason: Literal["no_runner_online", "no_match", "all_busy", "free_runner"] = Field(
        description="no_runner_online: none seen lately; no_match: online runners lack "
        "the tags or plugins; all_busy: every matching runner is at work; free_runner: a "
        "matching runner is idle and should claim it at its next poll"
    )
    required_tags: dict[str, str] = Field(default_factory=dict)
    required_plugins: list[str] = Field(default_factory=list)
    online: int = Field(description="runners seen within the online window")
    matching: int = Field(description="online runners whose tags and plugins match")
    busy: int = Field(description="matching runners with at least one running job")


class JobView(BaseModel):
    id: str
    pipeline: str
    pipeline_id: str
    version: int
    status: JobStatusName
    inputs: dict[str, Scalar]
    outputs: dict[str, Scalar] = Field(default_factory=dict)
    error: str | None = None
    runner: str | None = Field(default=None, description="name of the runner that claimed it")
    runner_id: str | None = None
    cancel_requested: bool = False
    launched_by: str | None = Field(default=None, description="who launched it (an actor)")
    cancelled_by: str | None = Field(default=None, description="who asked to cancel it")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    stages: list[StageView] = Field(default_factory=list)
    attempt: int = Field(default=0, description="the attempt running or last run; 0: none yet")
    attempts: list[AttemptView] = Field(default_factory=list)
    lease_expires_at: datetime | None = None  # running: lost without a heartbeat by then
    not_before: datetime | None = None  # a retried job waits out its backoff until then
    stall_reason: str | None = None  # why the runner said it cannot deliver the log
    rerun_of: str | None = Field(
        default=None, description="the job this one reruns (`rivet job rerun`), if any"
    )
    source_archive: SourceInfo | None = Field(default=None, description="what --source uploaded")
    waiting: JobWait | None = Field(
        default=None,
        description="for a queued job in GET /api/jobs/{ref}: why no runner has taken it "
        "(see rivet.orchestrator.services.waiting.explain_wait)",
    )


class JobLaunched(JobView):
    """The answer to ``POST /api/jobs``: the new job, and what its launcher should know."""

    warnings: list[str] = Field(
        default_factory=list,
        description="e.g. a secret granted to the pipeline that this version does not "
        "receive, and why (the job runs without it)",
    )


class JobPage(BaseModel):
    """One page of ``GET /api/jobs`` (newest first); ``total`` counts every match."""

    jobs: list[JobView]
    total: int
    limit: int
    offset: int


# --- runners -------------------------------------------------------------------------


class RegistrationTokenCreate(BaseModel):
    description: Description | None = None


class RegistrationTokenView(BaseModel):
    id: str
    token: str | None = Field(default=None, description="shown once, at creation")
    description: str | None = None
    created_at: datetime
    used: bool = False


class RegisterRequest(BaseModel):
    registration_token: Annotated[str, StringConstraints(max_length=limits.MAX_TOKEN)]
    name: RunnerName
    tags: RunnerTags = Field(default_factory=dict)
    plugins: RunnerPlugins = Field(default_factory=list)
    pool: RunnerName = Field(default="default", description="the runner pool it joins")


class RegisterResponse(BaseModel):
    runner_id: str
    token: str = Field(description="the runner's permanent token; only its hash is stored")


class RunnerView(BaseModel):
    id: str
    name: str
    tags: dict[str, str]
    plugins: list[str]
    last_seen: datetime | None
    current_jobs: list[str]
    created_at: datetime
    removed_at: datetime | None = Field(
        default=None,
        description="when `rivet runner remove` removed it: its token is refused, the "
        "jobs it ran still name it",
    )
    pool: str = "default"


class RunnerUpdate(BaseModel):
    """Body of ``PATCH /api/runners/{ref}`` (admin): what to replace; omitted = kept."""

    tags: RunnerTags | None = Field(default=None, description="the runner's tags, all")
    plugins: RunnerPlugins | None = Field(default=None, description="the runner's plugins, all")
    pool: RunnerName | None = Field(default=None, description="the runner's pool")


class ClaimRequest(BaseModel):
    """A runner's tags and plugins are the ones stored at registration (changed only by
    an admin): a claim cannot widen what the runner is handed."""

    wait_seconds: float = Field(default=20.0, ge=0, le=60)
    tags: Tags | None = Field(
        default=None,
        description="ignored: jobs are matched against the tags stored for the runner "
        "(set at registration, changed by an admin with PATCH /api/runners/{ref})",
    )
    plugins: Plugins | None = Field(
        default=None,
        description="what this runner's runtime provides now; it can only narrow the "
        "registered plugins (a plugin the server has not recorded is not offered)",
    )


def _reveal(value: SecretStr) -> str:
    return value.get_secret_value()


# Masked in repr/str (so logging an assignment shows no value), plain in JSON.
WireSecret = Annotated[SecretStr, PlainSerializer(_reveal, return_type=str, when_used="json")]


class JobAssignment(BaseModel):
    job_id: str
    pipeline: str
    pipeline_id: str
    version: int
    filename: str
    source: str
    definition: dict[str, Any]
    inputs: dict[str, Scalar]
    next_seq: int = Field(default=1, description="first log sequence number to use")
    attempt: int = Field(default=1, description="send back as ?attempt= on every job route")
    lease_seconds: float = 30.0  # heartbeat well within this, or the job is lost
    timeout_seconds: float | None = None  # how long this attempt may run: then timed_out
    trace_parent: str | None = Field(
        default=None, description="W3C traceparent of the job's trace; null: not traced"
    )
    secrets: dict[str, WireSecret] = Field(
        default_factory=dict,
        description="name -> value of every secret whose grant covers the job's version "
        "(decrypted by the server; only over the runner's authenticated channel)",
    )
    withheld: dict[str, str] = Field(
        default_factory=dict,
        description="name -> why a secret granted to the job's pipeline is not sent to "
        "this version (it predates the grant, or was not pushed by the admin)",
    )
    source_archive: SourceInfo | None = Field(
        default=None, description="unpack GET /api/runner/jobs/{id}/source before stage 1"
    )


class StageUpdate(BaseModel):
    name: Name
    status: StageStatusName
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: ErrorText | None = None


def _output_value(value: Scalar) -> Scalar:
    if not isinstance(value, bool | str) and (problem := limits.number_problem(value)) is not None:
        raise ValueError(problem)
    return value


def _outputs_fit(outputs: dict[str, Scalar]) -> dict[str, Scalar]:
    if limits.outputs_size(outputs) > limits.MAX_OUTPUTS_BYTES:
        raise ValueError(
            f"names and values of all outputs may have at most {limits.MAX_OUTPUTS_BYTES} "
            "bytes together (UTF-8)"
        )
    return outputs


OutputName = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_OUTPUT_NAME)]


class JobCompletion(BaseModel):
    """Outputs have the caps ``output.set`` enforces (the same numbers)."""

    status: Literal["succeeded", "failed", "cancelled", "timed_out"]
    outputs: Annotated[
        dict[OutputName, Annotated[Scalar, AfterValidator(_output_value)]],
        AfterValidator(_outputs_fit),
    ] = Field(default_factory=dict, max_length=limits.MAX_OUTPUTS)
    error: ErrorText | None = None


class Ack(BaseModel):
    ok: bool = True
    cancel_requested: bool = False
    stored: int | None = None
