"""Process and container policy enforced by the executor on real Podman.

Refusals are checked to happen before any container starts (``RecordingPodman``,
the real backend remembering its ``start`` calls) and to leave no container
behind; limits and network modes are read back from inside the container.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from recording import EventLog, RecordingPodman
from typer.testing import CliRunner

from rivet.cli.main import app
from rivet.engine.events import JobResult
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec
from rivet.engine.policy import ContainerPolicy, Policy, ProcessPolicy

pytestmark = pytest.mark.podman

BUSYBOX = "localhost/rivet/busybox:latest"


def pipeline(script: str, extra: str = "") -> str:
    return (
        "return pipeline.define({ name = 't', stages = {\n"
        f"  {{ name = 's', {extra} script = function()\n{script}\nend }},\n"
        "} })"
    )


def containers_of(job_id: str) -> list[str]:
    out = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label=rivet.job={job_id}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


class Run:
    def __init__(self, result: JobResult, events: EventLog, backend: RecordingPodman) -> None:
        self.result = result
        self.events = events
        self.backend = backend

    @property
    def error(self) -> str:
        return self.result.error or ""

    def output(self, name: str) -> Any:
        return self.result.outputs[name]


RunFn = Callable[..., Run]


@pytest.fixture
def run(podman_available: str, tmp_path: Path) -> Iterator[RunFn]:
    job_ids: list[str] = []

    def go(source: str, policy: Policy, default_image: str = BUSYBOX) -> Run:
        job_id = f"pol-{uuid.uuid4().hex[:10]}"
        job_ids.append(job_id)
        backend = RecordingPodman()
        settings = ExecutorSettings(
            workspace_root=tmp_path / "ws", default_image=default_image, policy=policy
        )
        events = EventLog()
        result = Executor(backend, settings).run(JobSpec(job_id, source, "t.lua", {}), events)
        # Nothing is left behind, refused or not.
        assert containers_of(job_id) == []
        assert not any((tmp_path / "ws").iterdir())
        return Run(result, events, backend)

    yield go
    for job_id in job_ids:
        subprocess.run(
            ["podman", "rm", "-f", "--ignore", *containers_of(job_id)],
            capture_output=True,
            check=False,
        )


def process_policy(**kwargs: Any) -> Policy:
    return Policy(process=ProcessPolicy(**kwargs))


def container_policy(**kwargs: Any) -> Policy:
    return Policy(container=ContainerPolicy(**kwargs))


# --- process.* ------------------------------------------------------------------------


def test_hostile_denied_binary_is_refused_before_any_container_starts(run: RunFn) -> None:
    r = run(
        pipeline('process.run({ "wget", "-O-", "http://127.0.0.1:9/" })'),
        process_policy(denied_binaries=["wget", "curl"]),
    )
    assert r.result.status == "failed"
    assert "t.lua:3: process.run: policy process.denied_binaries forbids 'wget'" in r.error
    assert r.backend.started == []


def test_hostile_denied_binary_by_path_and_through_parallel(run: RunFn) -> None:
    r = run(
        pipeline(
            """
        local refused = {}
        for _, argv0 in ipairs({ "/bin/wget", "./wget", "/usr/bin/../../bin/wget" }) do
          local ok, err = pcall(process.run, { argv0 })
          refused[#refused + 1] = (not ok) and err or "RAN"
        end
        output.set("refused", table.concat(refused, "\\n"))
        local ok, err = pcall(process.parallel, { "echo", "wget", "true" }, function(b)
          return process.run({ b, "ran-" .. b, capture_stdout = true }).stdout
        end)
        output.set("parallel", err)
        """
        ),
        process_policy(denied_binaries=["wget"]),
    )
    assert r.result.status == "succeeded", r.error
    refused = r.output("refused").split("\n")
    assert len(refused) == 3
    for line, argv0 in zip(
        refused, ["/bin/wget", "./wget", "/usr/bin/../../bin/wget"], strict=True
    ):
        assert f"policy process.denied_binaries forbids '{argv0}'" in line
    parallel = r.output("parallel")
    assert "process.parallel: 1 of 3 calls failed: [2]" in parallel
    assert "policy process.denied_binaries forbids 'wget'" in parallel
    # The allowed items ran in a container; the refused one never reached podman.
    assert len(r.backend.started) == 1
    assert not any("ran-wget" in m for m in r.events.messages())


def test_hostile_binary_outside_the_allow_list_and_sh_c_needs_sh_denied(run: RunFn) -> None:
    r = run(
        pipeline(
            """
        output.set("echo", process.run({ "/bin/echo", "hi", capture_stdout = true }).stdout)
        local ok, err = pcall(process.run, { "cat", "/etc/hostname" })
        output.set("cat", err)
        -- With "sh" allowed, a shell can start anything: the documented limit.
        local r = process.run({ "sh", "-c", "cat /proc/self/comm", capture_stdout = true })
        output.set("via_sh", r.stdout)
        """
        ),
        process_policy(allowed_binaries=["echo", "sh"]),
    )
    assert r.result.status == "succeeded", r.error
    assert r.output("echo") == "hi\n"
    assert "policy process.allowed_binaries does not include 'cat' (allowed: echo, sh)" in (
        r.output("cat")
    )
    assert r.output("via_sh") == "cat\n"
    closed = run(
        pipeline('process.run({ "sh", "-c", "cat /etc/hostname" })'),
        process_policy(denied_binaries=["cat", "sh"]),
    )
    assert "process.run: policy process.denied_binaries forbids 'sh'" in closed.error
    assert closed.backend.started == []


def test_hostile_timeout_above_the_maximum_is_refused(run: RunFn) -> None:
    r = run(
        pipeline('process.run({ "sleep", "1", timeout = 7200 })'),
        process_policy(max_timeout=3600, default_timeout=60),
    )
    assert "t.lua:3: process.run: timeout 7200 s exceeds policy process.max_timeout (3600 s)" in (
        r.error
    )
    assert r.backend.started == []


def test_default_timeout_kills_a_command_that_sets_none(run: RunFn) -> None:
    started = time.monotonic()
    r = run(
        pipeline(
            """
        local r = process.run({ "sleep", "30" })
        output.set("code", r.exit_code)
        output.set("timed_out", r.timed_out)
        """
        ),
        process_policy(default_timeout=1),
    )
    assert r.result.status == "succeeded", r.error
    assert (r.output("code"), r.output("timed_out")) == (124, True)
    assert time.monotonic() - started < 25
    assert any("'sleep 30' timed out after 1 s" in m for m in r.events.messages("warning"))


# --- container images -----------------------------------------------------------------


def test_hostile_denied_image_as_stage_container(run: RunFn) -> None:
    # The image exists locally: the refusal is the policy's, not a missing image.
    r = run(
        pipeline('process.run({ "true" })', extra=f"container = '{BUSYBOX}',"),
        container_policy(denied_images=["localhost/rivet/*"]),
    )
    assert r.result.status == "failed"
    assert (
        f"t.lua:3: process.run: policy container.denied_images forbids image '{BUSYBOX}' "
        "(rule 'localhost/rivet/*')"
    ) in r.error
    assert r.backend.started == []


def test_hostile_denied_image_in_container_with(run: RunFn) -> None:
    r = run(
        pipeline(
            """
        log.info("before")
        container.with("docker.io/library/evil:1", function()
          log.info("inside")
          process.run({ "true" })
        end)
        """
        ),
        container_policy(denied_images=["docker.io/library/evil"]),
    )
    assert r.result.status == "failed"
    assert (
        "t.lua:5: container.with: policy container.denied_images forbids image "
        "'docker.io/library/evil:1' (rule 'docker.io/library/evil')"
    ) in r.error
    assert "inside" not in r.events.messages("info")
    assert r.backend.started == []


def test_hostile_denied_default_image(run: RunFn) -> None:
    r = run(
        pipeline('process.run({ "true" })'),
        container_policy(denied_images=["docker.io/library/alpine"]),
        default_image="alpine:latest",
    )
    assert (
        "process.run: policy container.denied_images forbids image "
        "'docker.io/library/alpine:latest'"
    ) in r.error
    assert r.backend.started == []


def test_hostile_registry_rules(run: RunFn) -> None:
    r = run(
        pipeline(
            f"""
        local ok, err = pcall(container.with, "{BUSYBOX}", function() end)
        output.set("localhost", err)
        local ok2, err2 = pcall(container.with, "ghcr.io/evil/x:1", function() end)
        output.set("ghcr", err2)
        -- A short name is checked, and run, as docker.io/library/...
        output.set("alpine", process.run({{ "echo", "ok", capture_stdout = true }}).stdout)
        """
        ),
        container_policy(allowed_registries=["docker.io"], denied_registries=["ghcr.io"]),
        default_image="alpine:latest",
    )
    assert r.result.status == "succeeded", r.error
    assert (
        "container.with: policy container.allowed_registries does not include registry "
        f"'localhost' of image '{BUSYBOX}' (allowed: docker.io)"
    ) in r.output("localhost")
    assert (
        "container.with: policy container.denied_registries forbids registry 'ghcr.io' of "
        "image 'ghcr.io/evil/x:1'"
    ) in r.output("ghcr")
    assert r.output("alpine") == "ok\n"
    assert [s.image for s in r.backend.started] == ["docker.io/library/alpine:latest"]


def test_hostile_transport_reference_cannot_load_an_image_from_the_host(
    run: RunFn, tmp_path: Path
) -> None:
    archive = tmp_path / "host-image.tar"
    subprocess.run(
        ["podman", "save", "--format", "oci-archive", "-o", str(archive), BUSYBOX],
        capture_output=True,
        check=True,
    )
    r = run(
        pipeline(
            f"""
        container.with("oci-archive:{archive}", function()
          process.run({{ "echo", "loaded from the host" }})
        end)
        """
        ),
        Policy(),
    )
    assert r.result.status == "failed"
    assert f"container.with: image 'oci-archive:{archive}' is not a valid image reference" in (
        r.error
    )
    assert "loaded from the host" not in r.events.messages()
    assert r.backend.started == []


def test_pull_never_with_a_missing_image_fails_fast_naming_the_policy(run: RunFn) -> None:
    started = time.monotonic()
    r = run(
        pipeline('process.run({ "true" })', extra="container = 'localhost/rivet/absent:1',"),
        container_policy(pull="never"),
    )
    assert time.monotonic() - started < 20
    assert r.result.status == "failed"
    assert "image 'localhost/rivet/absent:1'" in r.error
    assert "policy container.pull = 'never'" in r.error


# --- limits and network, read back from inside the container ---------------------------

_READ_LIMITS = """
local function read(paths)
  for _, p in ipairs(paths) do
    local r = process.run({ "cat", p, capture_stdout = true, capture_stderr = true })
    if r.exit_code == 0 then return (r.stdout:gsub("%s+$", "")) end
  end
  return "unreadable"
end
output.set("memory", read({ "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                            "/sys/fs/cgroup/memory.max" }))
output.set("pids", read({ "/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max" }))
output.set("cpu", read({ "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu.max" }))
-- 200 MB in one shell variable: more than memory plus the swap Podman adds (2x).
local hog = process.run({ "sh", "-c",
  "x=$(head -c 200000000 /dev/zero | tr '\\\\0' a); echo kept ${#x}",
  capture_stdout = true, timeout = 60 })
output.set("hog_code", hog.exit_code)
output.set("hog_out", hog.stdout)
output.set("after", process.run({ "echo", "alive", capture_stdout = true }).stdout)
local fork = process.run({ "sh", "-c",
  "for i in $(seq 100); do sleep 30 >/dev/null 2>&1 & done; echo all-forked",
  capture_stdout = true, capture_stderr = true, timeout = 20 })
output.set("fork_code", fork.exit_code)
output.set("fork_out", fork.stdout .. fork.stderr)
"""


def test_memory_cpu_and_pids_limits_really_apply(run: RunFn) -> None:
    r = run(
        pipeline(_READ_LIMITS),
        container_policy(default_memory="64m", default_cpus=0.5, default_pids=50),
    )
    assert r.result.status == "succeeded", r.error
    assert r.output("memory") == str(64 << 20)
    assert r.output("pids") == "50"
    assert r.output("cpu").split()[0] == "50000"
    # A fork loop hits the pids limit instead of exhausting the host.
    assert r.output("fork_code") != 0
    assert "all-forked" not in r.output("fork_out")
    assert "fork" in r.output("fork_out")
    assert r.output("after") == "alive\n"
    # A memory hog is killed by the kernel (SIGKILL: 137); the container stays usable.
    assert (r.output("hog_code"), r.output("hog_out")) == (137, "")


_NET = """
local r = process.run({ "cat", "/proc/net/dev", capture_stdout = true })
local names = {}
for name in r.stdout:gmatch("\\n%s*([%w_.-]+):") do names[#names + 1] = name end
table.sort(names)
output.set("ifaces", table.concat(names, ","))
"""


def test_network_none_leaves_only_loopback_and_a_stage_may_tighten(run: RunFn) -> None:
    closed = run(pipeline(_NET), container_policy(network="none"))
    assert closed.result.status == "succeeded", closed.error
    assert closed.output("ifaces") == "lo"
    tightened = run(pipeline(_NET, extra="network = 'none',"), Policy())
    assert tightened.output("ifaces") == "lo"
    opened = run(pipeline(_NET), Policy())
    assert "eth0" in opened.output("ifaces").split(",")


def test_hostile_stage_network_override_is_refused_when_the_policy_forbids_it(
    run: RunFn,
) -> None:
    allowed = run(pipeline(_NET, extra="network = 'bridge',"), container_policy(network="none"))
    assert "eth0" in allowed.output("ifaces").split(",")
    refused = run(
        pipeline(_NET, extra="network = 'bridge',"),
        container_policy(network="none", allow_network_override=False),
    )
    assert refused.result.status == "failed"
    assert (
        "process.run: network = 'bridge' is refused: policy container.allow_network_override "
        "is false and container.network is 'none'"
    ) in refused.error
    assert refused.backend.started == []


# --- the policy file through the CLI ---------------------------------------------------


def test_rivet_run_policy_file_is_enforced_and_a_bad_one_is_one_line(
    podman_available: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RIVET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RIVET_POLICY", raising=False)
    lua = tmp_path / "p.lua"
    lua.write_text(pipeline('process.run({ "echo", "hello" })\nprocess.run({ "wget", "x" })'))
    policy = tmp_path / "policy.toml"
    policy.write_text('[process]\ndenied_binaries = ["wget"]\n')
    runner = CliRunner()
    args = ["run", str(lua), "--default-image", BUSYBOX]
    result = runner.invoke(app, [*args, "--policy", str(policy)])
    assert result.exit_code == 1, result.output
    assert "hello" in result.output
    assert "policy process.denied_binaries forbids 'wget'" in result.output

    policy.write_text("[container]\ndefault_memory = 512\n")
    result = runner.invoke(app, args, env={"RIVET_POLICY": str(policy)})
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.strip()]
    assert errors == [f"error: {policy}: container.default_memory: must be a valid string, got 512"]
