"""What a command's output can make the runner hold, against real Podman: captured
streams under ``process.max_capture_bytes`` (default derived from the Lua memory
limit), streamed lines of any length in bounded pieces, oversized command lines.
Memory caps are proven by the runner's measured peak RSS, not by timing."""

from __future__ import annotations

import subprocess
import threading
import uuid
from pathlib import Path

import pytest
from memory import MiB, PeakRss

from rivet.engine.backends.base import MAX_LINE_BYTES
from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.events import JobResult, LogEvent, StageResult
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec
from rivet.engine.policy import Policy, ProcessPolicy
from rivet.lua.sandbox import Limits

pytestmark = pytest.mark.podman

BUSYBOX = "localhost/rivet/busybox:latest"


class Lengths:
    """A sink that keeps only the size and first character of each line (so the test
    itself holds nothing of a huge output), plus short lines whole."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.short: list[str] = []
        self.lock = threading.Lock()

    def log(self, event: LogEvent) -> None:
        with self.lock:
            self.sizes.append(len(event.message))
            if len(event.message) < 2000:
                self.short.append(event.message)

    def stage_started(self, stage: StageResult) -> None:
        pass

    def stage_finished(self, stage: StageResult) -> None:
        pass


def job(script: str) -> str:
    return (
        "return pipeline.define({ name = 'caps', stages = { { name = 's', script = function()\n"
        f"{script}\nend }} }} }})"
    )


@pytest.fixture
def run(podman_available: str, podman_image, tmp_path: Path):  # type: ignore[no-untyped-def]
    podman_image(BUSYBOX)
    job_ids: list[str] = []

    def go(
        script: str, *, lua_mib: int = 256, policy: Policy | None = None
    ) -> tuple[JobResult, Lengths, int]:
        job_id = f"caps-{uuid.uuid4().hex[:10]}"
        job_ids.append(job_id)
        settings = ExecutorSettings(
            workspace_root=tmp_path / "ws",
            default_image=BUSYBOX,
            limits=Limits(memory_bytes=lua_mib * MiB, stage_cpu_seconds=120),
            policy=policy or Policy(),
        )
        events = Lengths()
        with PeakRss() as peak:
            result = Executor(PodmanBackend(), settings).run(
                JobSpec(job_id, job(script), "caps.lua", {}), events
            )
        return result, events, peak.growth

    yield go
    for job_id in job_ids:
        subprocess.run(["bash", "scripts/podman-cleanup.sh", "--job", job_id], check=False)


def test_capturing_300_mb_fails_naming_stream_limit_and_key_with_bounded_memory(run) -> None:  # type: ignore[no-untyped-def]
    """Lua memory 64 MiB → max_capture_bytes 16 MiB by default. The command is
    stopped (an endless ``yes`` returns), the room is given back afterwards, and the
    runner's peak RSS stays within a few times the cap (unbounded: ≥ 300 MB)."""
    result, events, growth = run(
        """
        local ok, err = pcall(function()
          local r = process.run({ "sh", "-c", "yes | head -c 314572800", capture_stdout = true })
        end)
        output.set("stdout_error", tostring(err))
        ok, err = pcall(function()
          local r = process.run({ "sh", "-c", "yes >&2", capture_stderr = true })
        end)
        output.set("stderr_error", tostring(err))
        local total = 0
        for i = 1, 6 do  -- 6 × 10 MiB, one at a time: each fits once the last is in Lua
          local r = process.run({ "sh", "-c", "head -c 10485760 /dev/zero", capture_stdout = true })
          total = total + #r.stdout
        end
        output.set("total", total)
        """,
        lua_mib=64,
    )
    assert result.status == "succeeded", (result.error, events.short[-5:])
    stdout_error = str(result.outputs["stdout_error"])
    assert stdout_error.startswith(
        "caps.lua:4: process.run: the captured stdout of "
        "'sh -c 'yes | head -c 314572800'' passed 16 MiB, policy "
        "process.max_capture_bytes (captured output this job holds at once); "
        "the command was stopped."
    ), stdout_error
    assert "the captured stderr of 'sh -c 'yes >&2'' passed 16 MiB" in str(
        result.outputs["stderr_error"]
    )
    assert result.outputs["total"] == 6 * 10 * MiB
    print(f"capture of 300 MB under a 16 MiB cap: runner peak RSS +{growth / MiB:.0f} MiB")
    assert growth < 10 * 16 * MiB, f"runner grew by {growth / MiB:.0f} MiB"


def test_the_policy_key_sets_the_capture_cap(run) -> None:  # type: ignore[no-untyped-def]
    policy = Policy(process=ProcessPolicy(max_capture_bytes=MiB))
    result, _events, _growth = run(
        """
        local r = process.run({ "sh", "-c", "head -c 1000000 /dev/zero", capture_stdout = true })
        output.set("fits", #r.stdout)
        process.run({ "sh", "-c", "head -c 2000000 /dev/zero", capture_stdout = true })
        """,
        policy=policy,
    )
    assert result.outputs == {"fits": 1000000}
    assert result.stages[0].error is not None
    assert "passed 1 MiB, policy process.max_capture_bytes" in result.stages[0].error


def test_a_256_mib_line_without_newline_is_logged_in_bounded_pieces(run) -> None:  # type: ignore[no-untyped-def]
    """The reader never buffers more than one piece: the runner's peak RSS does not
    grow with the line (unbounded: ≥ 256 MiB), and no byte is lost. (A 1 GiB line
    behaves the same, four times slower.)"""
    size = 256 << 20
    result, events, growth = run(
        f'process.run({{ "sh", "-c", "head -c {size} /dev/zero | tr \\"\\\\000\\" x; echo; echo after" }})'
    )
    assert result.status == "succeeded", result.error
    output_sizes = events.sizes[1:-1]  # the "$ …" debug line first, "after" last
    assert events.short[-1] == "after"
    assert sum(output_sizes) == size
    assert max(output_sizes) == MAX_LINE_BYTES
    print(f"256 MiB line streamed: runner peak RSS +{growth / MiB:.0f} MiB")
    assert growth < 100 * MiB, f"runner grew by {growth / MiB:.0f} MiB"


def test_a_command_line_over_the_system_limits_is_refused_at_the_callers_line(run) -> None:  # type: ignore[no-untyped-def]
    result, _events, _growth = run(
        """
        local ok, one = pcall(function() process.run({ "echo", string.rep("a", 200000) }) end)
        output.set("one", one)
        local args = {}
        for i = 1, 20 do args[i] = string.rep("b", 100000) end
        local ok2, all = pcall(function() process.run({ cmd = "echo", args = args }) end)
        output.set("all", all)
        local ok3, env = pcall(function()
          process.run({ "true", env = { BIG = string.rep("c", 200000) } })
        end)
        output.set("env", env)
        output.set("fine", process.run({ "sh", "-c", 'echo ${#0}', string.rep("d", 100000),
                                         capture_stdout = true }).stdout)
        """
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["one"] == (
        "caps.lua:3: process.run: argument 2 is 200000 bytes, over the system's limit of "
        "131071 bytes for one argument or variable; pass big data through a file in the workspace"
    )
    assert "process.run: the arguments and environment take 2000025 bytes, over the limit " in str(
        result.outputs["all"]
    )
    assert "process.run: env.BIG is 200004 bytes" in str(result.outputs["env"])
    assert result.outputs["fine"] == "100000\n"


def test_the_capture_cap_is_shared_by_commands_running_at_once(run) -> None:  # type: ignore[no-untyped-def]
    """Three commands of process.parallel each capture 10 MiB, and each holds its
    output until all three have printed (a workspace barrier, not a clock): a 16 MiB
    budget holds one of them at a time, so one call succeeds and two fail."""
    barrier = (
        "touch /workspace/started-$0; i=0; "
        "while [ $(ls /workspace | grep -c started-) -lt 3 ] && [ $i -lt 600 ]; "
        "do sleep 0.05; i=$((i+1)); done; "
        "head -c 10485760 /dev/zero; touch /workspace/printed-$0; i=0; "
        "while [ $(ls /workspace | grep -c printed-) -lt 3 ] && [ $i -lt 200 ]; "
        "do sleep 0.05; i=$((i+1)); done"
    )
    result, _events, growth = run(
        f"""
        local ok, err = pcall(process.parallel, {{ 1, 2, 3 }}, function(n)
          local r = process.run({{ "sh", "-c", {barrier!r}, n, capture_stdout = true }})
          return #r.stdout
        end)
        output.set("error", tostring(err))
        """,
        lua_mib=64,
    )
    assert result.status == "succeeded", result.error
    error = str(result.outputs["error"])
    assert "process.parallel: 2 of 3 calls failed" in error, error
    assert error.count("passed 16 MiB, policy process.max_capture_bytes") == 2
    assert growth < 10 * 16 * MiB, f"runner grew by {growth / MiB:.0f} MiB"
