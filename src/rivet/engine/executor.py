"""Runs one job: evaluate the pinned source in a fresh sandbox, run the stages in
order, clean up. Used by ``rivet run`` and by the runner alike.

A stage whose condition returns false is ``skipped``; the first failing stage fails
the job and the stages after it are not run (they stay ``pending``). Containers and
the workspace are removed when the job ends, whatever the outcome.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rivet.defaults import DEFAULT_IMAGE
from rivet.domain.definition import StageDef
from rivet.domain.inputs import InputValue, resolve_inputs
from rivet.domain.status import JobStatus, StageStatus
from rivet.engine.artifacts import JobArtifacts, NoArtifacts
from rivet.engine.backends.base import LABEL_RUNNER, ContainerBackend
from rivet.engine.context import JobContext, Phase
from rivet.engine.events import CancelToken, JobEvents, JobResult, StageResult, utcnow
from rivet.engine.job_secrets import JobSecrets
from rivet.engine.job_trace import JobTrace, TracedEvents
from rivet.engine.limits import MAX_ERROR_CHARS, clip
from rivet.engine.modules import install_all
from rivet.engine.plugins import Catalog, PluginError, discover, load_plugins
from rivet.engine.plugins import prepare as prepare_plugins
from rivet.engine.policy import Policy
from rivet.engine.redaction import Redactor
from rivet.engine.workspaces import make_workspace, prepare_root, remove_tree
from rivet.errors import DefinitionError, InputError, LuaError, RivetError
from rivet.lua.definition import LoadedPipeline, StageCode, load_pipeline
from rivet.lua.lua_values import type_name
from rivet.lua.sandbox import Limits, Sandbox

__all__ = ["DEFAULT_IMAGE", "Executor", "ExecutorSettings", "JobSpec"]


@dataclass(frozen=True)
class ExecutorSettings:
    workspace_root: Path
    default_image: str = DEFAULT_IMAGE
    limits: Limits = field(default_factory=Limits.from_env)
    policy: Policy = field(default_factory=Policy)
    # Where per-job secret-file directories are made (default: /dev/shm or tmp).
    secrets_root: Path | None = None
    # The plugins jobs may list (built-ins and the runner's plugin directories).
    plugins: Catalog = field(default_factory=discover)


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    source: str
    filename: str
    inputs: dict[str, InputValue]
    first_seq: int = 1
    # Name -> value of the secrets the job may use (granted to its pipeline, or all
    # local ones under `rivet run`, where ``local_secrets`` words the refusals).
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    local_secrets: bool = False
    # Name -> why a secret granted to the pipeline is not given to this job's version.
    withheld_secrets: Mapping[str, str] = field(default_factory=dict)
    # Seconds the job may run (the server's terms); None: the definition's `timeout`.
    timeout: float | None = None
    # The runner running it (its id): labels its containers and names its secrets
    # directory, so that a restarted runner finds what a crash left behind.
    owner: str | None = None
    # Where artifact.upload/download go; None: not available to this job.
    artifacts: JobArtifacts | None = None
    # Fills the new workspace before the pipeline is evaluated (the job's source:
    # copied by rivet run, unpacked from the server's archive by the runner); a
    # RivetError fails the job with its message.
    fill_workspace: Callable[[Path], str | None] | None = None
    # The job's trace (rivet.observe.tracing): the claim's traceparent, and the attempt.
    trace_parent: str | None = None
    attempt: int | None = None


class Executor:
    """Stateless apart from its settings; ``run`` may be called from several threads
    at once for different jobs."""

    def __init__(self, backend: ContainerBackend, settings: ExecutorSettings) -> None:
        self.backend = backend
        self.settings = settings

    def run(self, job: JobSpec, events: JobEvents, cancel: CancelToken | None = None) -> JobResult:
        cancel = cancel or CancelToken()
        # Checked for every job: a root widened after the runner started is caught too.
        root_note = prepare_root(self.settings.workspace_root)
        workspace = make_workspace(self.settings.workspace_root, _safe_dir(job.job_id))
        sandbox = Sandbox(self.settings.limits)
        trace = JobTrace(job.job_id, job.trace_parent, job.attempt)
        if trace.enabled:
            events = TracedEvents(events, trace)
        redactor = Redactor()
        secrets = JobSecrets(
            job.secrets,
            redactor,
            local=job.local_secrets,
            root=self.settings.secrets_root,
            withheld=job.withheld_secrets,
            owner=job.owner,
        )
        ctx = JobContext(
            job_id=job.job_id,
            events=events,
            backend=self.backend,
            workspace=workspace,
            default_image=self.settings.default_image,
            inputs=dict(job.inputs),
            cancel=cancel,
            first_seq=job.first_seq,
            policy=self.settings.policy,
            redactor=redactor,
            secrets=secrets,
            labels={LABEL_RUNNER: job.owner} if job.owner else {},
            artifacts=job.artifacts or NoArtifacts(),
            trace=trace,
        )
        cancel.on_cancel(lambda reason: _on_cancel(ctx, sandbox, reason))
        if root_note is not None:
            ctx.log("warning", root_note, None)
        result: JobResult | None = None
        try:
            result = _redacted(self._run(job, ctx, sandbox), redactor)
            return result
        finally:
            # First, on this thread: no pipeline code may run once the job has ended
            # (the sandbox cuts its bridges to Python, then frees the Lua state).
            sandbox.close()
            for close in ctx.closers:
                close()
            try:
                ctx.remove_containers()
            except RivetError as exc:
                ctx.log("warning", f"could not remove the job's containers: {exc}", None)
            _cleanup(ctx, workspace)
            trace.finish(result)  # the span covers the clean-up too

    def _run(self, job: JobSpec, ctx: JobContext, sandbox: Sandbox) -> JobResult:
        if job.fill_workspace is not None:
            try:
                note = job.fill_workspace(ctx.workspace)
            except RivetError as exc:
                message = f"the job's source could not be placed in its workspace: {exc}"
                ctx.log("error", message, None)
                return JobResult(JobStatus.FAILED, error=_stored_error(ctx, message))
            if note:
                ctx.log("info", note, None)
        install_all(sandbox, ctx)
        compiler = prepare_plugins(sandbox)
        try:
            # Stored: a version accepted before runs under the name rules it passed.
            loaded = load_pipeline(job.source, job.filename, sandbox=sandbox, stored=True)
        except DefinitionError as exc:
            if ctx.cancel.cancelled:
                # The cancel stopped the file's evaluation: nothing is wrong with it.
                return JobResult(JobStatus.CANCELLED, error=ctx.cancel.reason)
            ctx.log("error", str(exc), None)
            return JobResult(JobStatus.FAILED, error=_stored_error(ctx, str(exc)))
        try:
            plugins = loaded.definition.plugins
            load_plugins(sandbox, ctx, compiler, plugins, self.settings.plugins, job.filename)
        except PluginError as exc:
            ctx.log("error", str(exc), None)
            return JobResult(JobStatus.FAILED, error=_stored_error(ctx, str(exc)))
        try:
            ctx.inputs = resolve_inputs(loaded.definition, job.inputs)
        except InputError as exc:
            ctx.log("error", str(exc), None)
            return JobResult(JobStatus.FAILED, error=_stored_error(ctx, str(exc)))
        timeout = job.timeout or loaded.definition.timeout
        if timeout is not None:
            ctx.closers.append(
                _timer(ctx, timeout, f"timed out: the job ran past its timeout of {timeout:g} s")
            )
        ctx.secrets.pipeline = loaded.definition.name
        for name in ctx.secrets.withheld_names():
            ctx.log("warning", ctx.secrets.missing(name), None)
        stages = [StageResult(s.name) for s in loaded.definition.stages]
        result = JobResult(JobStatus.RUNNING, stages=stages)
        ctx.phase = Phase.RUN
        for stage, code, state in zip(loaded.definition.stages, loaded.stages, stages, strict=True):
            if ctx.cancel.cancelled:
                break
            self._stage(loaded, stage, code, state, ctx)
            if state.status is StageStatus.FAILED:
                result.status = JobStatus.FAILED
                result.error = f"stage '{stage.name}' failed: {state.error}"
                break
        if ctx.cancel.cancelled:
            timed_out = ctx.cancel.timed_out
            for state in stages:
                if state.status is StageStatus.RUNNING:
                    state.status = StageStatus.TIMED_OUT if timed_out else StageStatus.CANCELLED
            result.status = JobStatus.TIMED_OUT if timed_out else JobStatus.CANCELLED
            result.error = ctx.cancel.reason
        elif result.status is JobStatus.RUNNING:
            result.status = JobStatus.SUCCEEDED
        result.outputs = dict(ctx.outputs)
        return result

    def _stage(
        self,
        loaded: LoadedPipeline,
        stage: StageDef,
        code: StageCode,
        state: StageResult,
        ctx: JobContext,
    ) -> None:
        sandbox = loaded.sandbox
        budget = self.settings.limits.stage_cpu_seconds
        name, image = stage.name, stage.container
        ctx.stage = name
        ctx.stage_def = stage
        state.status = StageStatus.RUNNING
        state.started_at = utcnow()
        ctx.events.stage_started(state)
        depth = len(ctx.stack)
        stop_timer = None
        if stage.timeout is not None:
            why = f"timed out: stage '{name}' ran past its timeout of {stage.timeout:g} s"
            stop_timer = _timer(ctx, stage.timeout, why)
        try:
            if code.condition is not None:
                verdict = sandbox.call(
                    code.condition, budget=budget, label=f"stage '{name}' condition"
                )
                if isinstance(verdict, tuple):
                    verdict = verdict[0] if verdict else None
                if not isinstance(verdict, bool):
                    got = type_name(verdict)
                    raise LuaError(f"stage '{name}': condition must return a boolean, got {got}")
                if not verdict:
                    state.status = StageStatus.SKIPPED
                    ctx.log("info", f"stage '{name}' skipped: its condition returned false")
                    return
            if image:
                ctx.stack.append(image)
            sandbox.call(code.script, budget=budget, label=f"stage '{name}'")
            state.status = StageStatus.SUCCEEDED
        except LuaError as exc:
            if ctx.cancel.cancelled:
                timed_out = ctx.cancel.timed_out
                state.status = StageStatus.TIMED_OUT if timed_out else StageStatus.CANCELLED
                state.error = ctx.cancel.reason
            else:
                state.status = StageStatus.FAILED
                # Reported to the server as it is: `error("token: " .. tok)` must not leak.
                state.error = _stored_error(ctx, str(exc))
                ctx.log("error", f"stage '{name}' failed: {exc}")
        finally:
            if stop_timer is not None:
                stop_timer()
            del ctx.stack[depth:]
            state.finished_at = utcnow()
            ctx.events.stage_finished(state)
            ctx.stage = None
            ctx.stage_def = None


def _timer(ctx: JobContext, seconds: float, reason: str) -> Callable[[], None]:
    """Cancel the job as timed out after ``seconds`` (which kills its processes and
    removes its containers, like any cancel); returns the function that disarms it."""
    timer = threading.Timer(seconds, lambda: ctx.cancel.cancel(reason, timed_out=True))
    timer.daemon = True
    timer.start()
    return timer.cancel


def _on_cancel(ctx: JobContext, sandbox: Sandbox, reason: str) -> None:
    """Runs on the cancelling thread: stop Lua at its next check and kill running
    commands by removing the job's containers (their ``podman exec`` calls then end)."""
    sandbox.cancel(reason)
    ctx.log("warning", f"cancelling: {reason}")
    try:
        ctx.remove_containers()
    except RivetError as exc:
        ctx.log("warning", f"could not remove the job's containers: {exc}")


def _stored_error(ctx: JobContext, message: str) -> str:
    """An error as stored on a stage or the job: redacted, then cut to
    MAX_ERROR_CHARS (the whole message is logged as well)."""
    return clip(ctx.redactor.redact(message), MAX_ERROR_CHARS, "in the job's log")


def _cleanup(ctx: JobContext, workspace: Path) -> None:
    """Remove the job's secrets and workspace; a failure is a warning in the job log,
    never an exception: the job's outcome is already decided."""
    try:
        ctx.secrets.cleanup()
    except OSError as exc:
        ctx.log("warning", f"could not remove the job's secret files: {exc}", None)
    problems = remove_tree(workspace)
    for problem in problems:
        ctx.log("warning", f"workspace cleanup: {problem}", None)
    if problems:
        ctx.log("warning", f"the job's workspace {workspace} was left behind", None)


def _redacted(result: JobResult, redactor: Redactor) -> JobResult:
    """Outputs and errors leave the runner too: mask secrets in them. A number or
    boolean whose text shows a secret becomes the string ``***``. (Errors were cut
    to MAX_ERROR_CHARS where they were made; masking never makes a text longer.)"""
    for key, value in result.outputs.items():
        text = value if isinstance(value, str) else str(value)
        masked = redactor.redact(text)
        if masked != text:
            result.outputs[key] = masked if isinstance(value, str) else "***"
    if result.error is not None:
        result.error = redactor.redact(result.error)
    for stage in result.stages:
        if stage.error is not None:
            stage.error = redactor.redact(stage.error)
    return result


def _safe_dir(job_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in job_id) or "job"
