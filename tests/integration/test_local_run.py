"""The local-run service (``rivet.local.run``, what ``rivet run`` calls) on real Podman
with the local busybox image, without the CLI: inputs, secrets redacted, outputs, the
policy file, cancelling, and nothing left behind."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
from recording import EventLog

from rivet.engine.events import CancelToken
from rivet.local.run import LocalRun, LocalRunOptions, run_local

pytestmark = pytest.mark.podman

BUSYBOX = "localhost/rivet/busybox:latest"
SECRET = "local-run-s3cret-Zq81"

PIPELINE = """return pipeline.define({
  name = "local",
  inputs = { who = { type = "string" } },
  stages = {
    { name = "greet", script = function()
        process.run({ "sh", "-c", "echo hello " .. input.get("who") })
        process.run({ "sh", "-c", "echo token=$T", secrets = { T = "TOKEN" } })
        output.set("greeted", input.get("who"))
    end },
  },
})
"""


def containers_of(job_id: str) -> list[str]:
    out = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label=rivet.job={job_id}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.split()


def test_a_pipeline_runs_with_its_inputs_and_secrets_redacted(
    podman_available: str, tmp_path: Path
) -> None:
    path = tmp_path / "local.lua"
    path.write_text(PIPELINE)
    options = LocalRunOptions(workspace_root=tmp_path / "ws", default_image=BUSYBOX)
    events = EventLog()
    result = run_local(path, {"who": "me"}, options, events, secrets={"TOKEN": SECRET})
    assert str(result.status) == "succeeded", result.error
    assert dict(result.outputs) == {"greeted": "me"}
    messages = events.messages()
    assert "hello me" in messages
    assert "token=***" in messages
    assert not any(SECRET in m for m in messages)
    assert [s.name for s in events.stages] == ["greet"]
    assert list((tmp_path / "ws").iterdir()) == []  # the job's workspace is gone


def test_the_policy_file_applies(podman_available: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[process]\ndenied_binaries = ["sh"]\n')
    path = tmp_path / "local.lua"
    path.write_text(PIPELINE)
    options = LocalRunOptions(
        workspace_root=tmp_path / "ws", default_image=BUSYBOX, policy_file=policy
    )
    result = run_local(path, {"who": "me"}, options, EventLog())
    assert str(result.status) == "failed"
    assert "process.run: policy process.denied_binaries forbids 'sh'" in (result.error or "")


def test_cancelling_stops_the_job_and_removes_its_containers(
    podman_available: str, tmp_path: Path
) -> None:
    path = tmp_path / "slow.lua"
    path.write_text(
        """return pipeline.define({ name = "slow", stages = {
  { name = "wait", script = function() process.run({ "sleep", "60" }) end },
} })
"""
    )
    options = LocalRunOptions(workspace_root=tmp_path / "ws", default_image=BUSYBOX)
    prepared = LocalRun.load(path, options).prepare({})
    cancel = CancelToken()
    events = EventLog()
    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(prepared.run(events, cancel)))
    worker.start()
    try:
        # Cancel once the command is running: its container exists by then.
        deadline = threading.Event()
        for _ in range(600):
            if containers_of(prepared.job_id):
                break
            deadline.wait(0.1)
        cancel.cancel("test cancel")
        worker.join(120)
    finally:
        cancel.cancel("test teardown")
        worker.join(120)
    [result] = done
    assert str(result.status) == "cancelled"  # type: ignore[attr-defined]
    assert containers_of(prepared.job_id) == []
