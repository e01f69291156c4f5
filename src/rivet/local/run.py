"""Running a pipeline file on this machine: the use case behind ``rivet run``.

Three steps, so that a caller can ask for inputs between them (the CLI prompts on a
terminal, a web form would ask its own way) and show what happens as it happens:

1. :meth:`LocalRun.load` reads the policy (first: a bad policy file is one error
   before anything else happens), reads and validates the pipeline file exactly as
   ``rivet check`` does, and refuses plugins this Rivet lacks. Warnings (unknown
   fields, deprecated calls) are in :attr:`LocalRun.warnings`.
2. :meth:`LocalRun.prepare` checks the inputs against the definition (an
   :class:`~rivet.errors.InputError` naming every bad one), readies the workspace
   root (0700, the runner's rules) and, with per-job user namespaces, the
   subordinate ids Podman needs; nothing has run yet.
3. :meth:`PreparedRun.run` runs the job with the executor and a container backend
   (Podman by default), sending log lines and stage changes to an events sink, and
   returns the :class:`~rivet.engine.events.JobResult`; a cancel token stops it.

Every secret given is granted (locally there is no server to grant them) and
redacted from every line and output. :func:`run_local` does all three for callers
that have every input already.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rivet.defaults import DEFAULT_IMAGE
from rivet.domain.definition import PipelineDefinition
from rivet.domain.inputs import resolve_inputs
from rivet.engine.artifacts import JobArtifacts
from rivet.engine.backends.base import ContainerBackend
from rivet.engine.events import CancelToken, JobEvents, JobResult
from rivet.engine.executor import ExecutorSettings, JobSpec
from rivet.engine.plugins import discover
from rivet.engine.policy import Policy
from rivet.errors import RivetError
from rivet.local.artifacts import LocalArtifacts
from rivet.local.source import read_pipeline_file
from rivet.local.sources import copy_into, list_source
from rivet.lua.definition import load_pipeline
from rivet.lua.sandbox import Limits
from rivet.settings import RivetSettings

__all__ = ["LocalRun", "LocalRunOptions", "PreparedRun", "run_local"]

Warn = Callable[[str], None]


def _ignore(_message: str) -> None:
    return None


@dataclass(frozen=True)
class LocalRunOptions:
    """Where and how a local job runs (the ``jobs.*`` and ``lua.*`` settings)."""

    workspace_root: Path
    default_image: str = DEFAULT_IMAGE
    policy_file: Path | None = None
    limits: Limits = field(default_factory=Limits)
    # Where artifact.upload keeps files (None: artifacts are not available) and the
    # artifacts.* limits, which also cap a --source copy (max_source_bytes × 8).
    artifacts_dir: Path | None = None
    max_file_bytes: int = 1 << 30
    max_job_bytes: int = 4 << 30
    max_source_bytes: int = 256 << 20
    plugin_dirs: tuple[Path, ...] = ()

    @classmethod
    def from_settings(cls, settings: RivetSettings) -> LocalRunOptions:
        jobs, artifacts = settings.jobs, settings.artifacts
        return cls(
            workspace_root=jobs.workspace_root,
            default_image=jobs.default_image,
            policy_file=jobs.policy,
            limits=Limits.from_settings(settings.lua),
            artifacts_dir=artifacts.local_dir,
            max_file_bytes=artifacts.max_file_bytes,
            max_job_bytes=artifacts.max_job_bytes,
            max_source_bytes=artifacts.max_source_bytes,
            plugin_dirs=jobs.plugin_dirs,
        )


class LocalRun:
    """A pipeline file loaded for a local run (step 1; see the module docstring)."""

    def __init__(
        self,
        filename: str,
        source: str,
        definition: PipelineDefinition,
        warnings: list[str],
        policy: Policy,
        options: LocalRunOptions,
        secrets: Mapping[str, str],
    ) -> None:
        self.filename = filename
        self.source = source
        self.definition = definition
        self.warnings = warnings
        self.policy = policy
        self.options = options
        self._secrets = dict(secrets)

    @classmethod
    def load(
        cls, file: Path, options: LocalRunOptions, *, secrets: Mapping[str, str] | None = None
    ) -> LocalRun:
        """Read the policy and the file, validate the pipeline. Raises
        :class:`~rivet.errors.ConfigError` (policy), ``DefinitionError`` (every problem
        of the file) or :class:`~rivet.errors.RivetError` (unreadable file, plugins)."""
        policy = Policy.load(options.policy_file) if options.policy_file is not None else Policy()
        name = str(file)
        source = read_pipeline_file(file)
        loaded = load_pipeline(source, name, limits=options.limits)
        definition = loaded.definition
        available = discover(options.plugin_dirs).plugins
        missing = [p for p in definition.plugins if p not in available]
        if missing:
            raise RivetError(
                f"{name}: plugins: {', '.join(missing)} not available in this Rivet; "
                "run the pipeline on a runner that provides "
                + ("it" if len(missing) == 1 else "them")
            )
        return cls(name, source, definition, list(loaded.warnings), policy, options, secrets or {})

    def prepare(
        self,
        inputs: Mapping[str, object],
        *,
        warn: Warn = _ignore,
        backend: ContainerBackend | None = None,
        source: Path | None = None,
    ) -> PreparedRun:
        """Check ``inputs`` (strings as typed, or typed values) and ready the workspace
        root; ``warn`` receives a note about the root (e.g. it was tightened).
        ``source``: a directory whose files (:mod:`rivet.local.sources`) are copied
        into the job's workspace before it starts."""
        # Imported on use, so that tests can stand in for Podman and the executor.
        from rivet.engine import executor as executor_module
        from rivet.engine.backends.userns import check_subids
        from rivet.engine.workspaces import prepare_root

        resolved = resolve_inputs(self.definition, dict(inputs))
        root = self.options.workspace_root
        note = prepare_root(root)  # a ConfigError names the root and what is wrong with it
        if self.policy.container.userns == "auto":
            check_subids()
        if note is not None:
            warn(note)
        if backend is None:
            from rivet.engine.backends import podman

            backend = podman.PodmanBackend()
        job_id = f"local-{uuid.uuid4().hex[:8]}"
        job = JobSpec(
            job_id=job_id,
            source=self.source,
            filename=self.filename,
            inputs=resolved,
            secrets=self._secrets,
            local_secrets=True,
            artifacts=self._artifacts(job_id),
            fill_workspace=self._filler(source),
        )
        settings = ExecutorSettings(
            workspace_root=root,
            default_image=self.options.default_image,
            limits=self.options.limits,
            policy=self.policy,
            plugins=discover(self.options.plugin_dirs),
        )
        return PreparedRun(job, executor_module.Executor(backend, settings))

    def _artifacts(self, job_id: str) -> JobArtifacts | None:
        options = self.options
        if options.artifacts_dir is None:
            return None
        return LocalArtifacts(
            options.artifacts_dir,
            job_id,
            self.definition.name,
            options.max_file_bytes,
            options.max_job_bytes,
        )

    def _filler(self, source: Path | None) -> Callable[[Path], str | None] | None:
        if source is None:
            return None
        tree = list_source(source)  # a bad directory fails before anything runs
        cap = self.options.max_source_bytes * 8
        return lambda workspace: copy_into(tree, workspace, cap)


class _Runs(Protocol):
    """What :class:`PreparedRun` needs of an executor (the real one, or a test's)."""

    def run(self, job: JobSpec, events: JobEvents, cancel: CancelToken) -> JobResult: ...


@dataclass(frozen=True)
class PreparedRun:
    """A job ready to run (step 2 done)."""

    job: JobSpec
    executor: _Runs

    @property
    def job_id(self) -> str:
        return self.job.job_id

    def run(self, events: JobEvents, cancel: CancelToken | None = None) -> JobResult:
        """Run the job to its end (or until ``cancel``); its containers and workspace
        are removed whatever the outcome."""
        return self.executor.run(self.job, events, cancel or CancelToken())


def run_local(
    file: Path,
    inputs: Mapping[str, object],
    options: LocalRunOptions,
    events: JobEvents,
    *,
    secrets: Mapping[str, str] | None = None,
    cancel: CancelToken | None = None,
    warn: Warn = _ignore,
    backend: ContainerBackend | None = None,
) -> JobResult:
    """Load, prepare and run ``file`` in one call; the pipeline's warnings and the
    workspace note go to ``warn``."""
    local = LocalRun.load(file, options, secrets=secrets)
    for warning in local.warnings:
        warn(warning)
    return local.prepare(inputs, warn=warn, backend=backend).run(events, cancel)
