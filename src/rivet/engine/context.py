"""Per-job state shared by the runtime modules: log sink, inputs, outputs, the
container stack and the job's running containers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rivet.domain.definition import StageDef
from rivet.domain.inputs import InputValue
from rivet.engine.artifacts import JobArtifacts, NoArtifacts
from rivet.engine.backends.base import (
    ContainerBackend,
    ContainerOptions,
    ContainerSpec,
    IdMap,
    RunningContainer,
    container_name,
)
from rivet.engine.events import (
    CancelToken,
    JobEvents,
    Level,
    LogEvent,
    Stream,
    log_lines,
    utcnow,
)
from rivet.engine.job_secrets import JobSecrets
from rivet.engine.job_trace import JobTrace
from rivet.engine.policy import Policy
from rivet.engine.redaction import Redactor
from rivet.errors import ContainerError
from rivet.lua.sandbox import LuaCallError

__all__ = ["JobContext", "Phase"]


class Phase:
    DEFINITION = "definition"
    RUN = "run"


@dataclass
class JobContext:
    job_id: str
    events: JobEvents
    backend: ContainerBackend
    workspace: Path
    default_image: str
    inputs: Mapping[str, InputValue]
    cancel: CancelToken
    outputs: dict[str, InputValue] = field(default_factory=dict)
    stack: list[str] = field(default_factory=list)
    phase: str = Phase.DEFINITION
    stage: str | None = None
    first_seq: int = 1
    policy: Policy = field(default_factory=Policy)
    redactor: Redactor = field(default_factory=Redactor)
    # The executor builds both with one Redactor (JobSecrets registers its values in it).
    secrets: JobSecrets = field(default_factory=JobSecrets)
    stage_def: StageDef | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    # Extra labels of every container of the job (the runner's id, for cleanup).
    labels: Mapping[str, str] = field(default_factory=dict)
    # Where artifact.upload/download go (a local directory, or the runner's server).
    artifacts: JobArtifacts = field(default_factory=NoArtifacts)
    # The job's spans (job_trace.py): process.run opens one per command when traced.
    trace: JobTrace = field(default_factory=JobTrace.off)
    _seq: int = 0
    _log_lock: threading.Lock = field(default_factory=threading.Lock)
    _containers: dict[str, RunningContainer] = field(default_factory=dict)
    _image_locks: dict[str, threading.Lock] = field(default_factory=dict)
    _containers_lock: threading.Lock = field(default_factory=threading.Lock)
    _started_any: bool = False
    # The user namespace range all the job's containers share (userns = "auto"), set
    # by the first start, which holds _first_start so that a parallel one waits for it.
    _id_map: IdMap | None = None
    _first_start: threading.Lock = field(default_factory=threading.Lock)
    _images_checked: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._seq = self.first_seq - 1

    # --- logging ----------------------------------------------------------------------

    def log(
        self, level: Level, message: str, stage: str | None = None, stream: Stream | None = None
    ) -> None:
        """Log ``message``, redacted, as one event per line (see
        :func:`~rivet.engine.events.log_lines`): a message with line breaks becomes
        consecutive events of the same stage and level, so it cannot forge a line.

        Thread-safe; sequence numbers are gap-free and a message's lines consecutive
        because they are taken under the same lock that hands them to the sink."""
        # Redacted whole, before it is cut: a secret split by a line break or by the
        # length cut is still found (the redactor reads the lines as one stream).
        lines = log_lines(self.redactor.redact(message))
        where = stage if stage is not None else self.stage
        with self._log_lock:
            now = utcnow()
            for line in lines:
                self._seq += 1
                self.events.log(LogEvent(self._seq, now, where, level, line, stream))

    # --- phases -----------------------------------------------------------------------

    def require_run_phase(self, what: str) -> None:
        if self.phase != Phase.RUN:
            raise LuaCallError(
                f"{what} can only be called inside a stage script or condition, "
                "not while the pipeline is being defined (top level of the file)"
            )

    # --- containers -------------------------------------------------------------------

    @property
    def current_image(self) -> str:
        return self.stack[-1] if self.stack else self.default_image

    def container_options(self, stage: StageDef | None) -> ContainerOptions:
        """Options for containers used by ``stage``: its read-only/network settings
        and the runner policy's limits, pull policy and network mode. Raises
        :class:`PolicyViolation` when the stage asks for a network the policy refuses."""
        if stage is None:
            return self.policy.container.options()
        return self.policy.container.options(readonly=stage.readonly, network=stage.network)

    def container_for(
        self, image: str, options: ContainerOptions | None = None
    ) -> RunningContainer:
        """The job's container for ``image`` and ``options``, started on first use and
        reused afterwards (one per image and options).

        The policy's image rules are checked here, before any Podman call, whatever
        asked for the image (a stage's container, container.with, the default image);
        a refusal raises :class:`PolicyViolation`."""
        image = self.policy.container.resolve_image(image)
        options = options or self.container_options(self.stage_def)
        key = image + "\0" + options.key()
        with self._containers_lock:
            existing = self._containers.get(key)
            if existing is not None:
                return existing
            lock = self._image_locks.setdefault(key, threading.Lock())
        with lock:
            with self._containers_lock:
                existing = self._containers.get(key)
            if existing is not None:
                return existing
            if self.cancel.cancelled:
                raise ContainerError(f"cannot start image '{image}': {self.cancel.reason}")
            self._started_any = True
            try:
                if options.userns == "auto":
                    with self._first_start:
                        started = self._start(image, options)
                        self._id_map = self._id_map or started.id_map
                else:
                    started = self._start(image, options)
            except ContainerError as exc:
                if options.pull == "never":
                    raise ContainerError(
                        f"{exc} (policy container.pull = 'never': only images already "
                        "on the runner can be used)"
                    ) from None
                raise
            with self._containers_lock:
                self._containers[key] = started
            return started

    def _start(self, image: str, options: ContainerOptions) -> RunningContainer:
        spec = ContainerSpec(
            job_id=self.job_id,
            image=image,
            workspace=self.workspace,
            name=container_name(self.job_id, image, options),
            options=options,
            secrets_dir=self.secrets.directory,
            id_map=self._id_map if options.userns == "auto" else None,
            labels=dict(self.labels),
        )
        return self.backend.start(spec)

    def check_image(self, image: str) -> str:
        """The policy's reference for ``image`` once it is known to be startable:
        present on the runner, or pulled now if the pull policy allows (checked once
        per image and job). Raises :class:`PolicyViolation` or :class:`ContainerError`;
        starts no container."""
        image = self.policy.container.resolve_image(image)
        with self._containers_lock:
            if image in self._images_checked:
                return image
        self.backend.check_image(image, self.policy.container.pull)
        with self._containers_lock:
            self._images_checked.add(image)
        return image

    def remove_containers(self) -> None:
        with self._containers_lock:
            containers = list(self._containers.values())
            self._containers.clear()
        for container in containers:
            self.backend.remove(container)
        # Also catches a container whose start was interrupted before we recorded it;
        # a job that never started one (a stage that only logs) never touches podman.
        if self._started_any:
            self.backend.remove_job(self.job_id)
