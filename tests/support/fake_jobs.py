"""Whole jobs through the real executor on the fake backend, for the executor's unit
tests: ``run_job(tmp_path, stage("s", "..."))`` gives the result, the events, the
fake (with its record of every call) and the workspace root."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recording import EventLog

from rivet.engine.backends.fake import FakeBackend
from rivet.engine.events import CancelToken, JobResult
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec
from rivet.engine.policy import Policy

__all__ = ["DEFAULT", "FakeJob", "pipeline", "run_job", "stage"]

DEFAULT = "alpine:latest"


def stage(name: str, body: str, extra: str = "") -> str:
    """A stage table: ``extra`` holds more fields (``container = 'x',``)."""
    return f"{{ name = '{name}', {extra} script = function()\n{body}\nend }}"


def pipeline(*stages: str) -> str:
    body = ",\n".join(stages)
    return f"return pipeline.define({{ name = 't', stages = {{\n{body}\n}} }})"


@dataclass
class FakeJob:
    result: JobResult
    events: EventLog
    fake: FakeBackend
    root: Path
    job_id: str

    def statuses(self) -> list[str]:
        return [str(s.status) for s in self.result.stages]

    def images(self) -> list[tuple[str, tuple[str, ...]]]:
        """(image of the container, argv) of every command, in order."""
        return [(c.image, tuple(r.argv)) for c, r in self.fake.requests]


def run_job(
    tmp_path: Path,
    *stages: str,
    fake: FakeBackend | None = None,
    cancel: CancelToken | None = None,
    policy: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    first_seq: int = 1,
    artifacts: Any = None,
    fill_workspace: Any = None,
) -> FakeJob:
    """Run a pipeline of ``stages`` to its end; the fake defaults to one where every
    image is present."""
    fake = fake or FakeBackend()
    root = tmp_path / "workspaces"
    settings = ExecutorSettings(
        workspace_root=root,
        default_image=DEFAULT,
        policy=Policy.model_validate(dict(policy or {})),
        secrets_root=tmp_path / "secrets",
    )
    (tmp_path / "secrets").mkdir(exist_ok=True)
    job_id = f"unit-{uuid.uuid4().hex[:8]}"
    spec = JobSpec(
        job_id,
        pipeline(*stages),
        "t.lua",
        {},
        first_seq=first_seq,
        secrets=dict(secrets or {}),
        local_secrets=True,
        artifacts=artifacts,
        fill_workspace=fill_workspace,
    )
    events = EventLog()
    result = Executor(fake, settings).run(spec, events, cancel)
    return FakeJob(result, events, fake, root, job_id)
