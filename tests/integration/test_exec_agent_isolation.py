"""Hostile, on real Podman, continued from test_exec_agent_hostile.py: what a job can
do to an exec agent beyond its own container, to the real agent's input, and
through the runner policy.

- A job cannot reach the agent of another job's container: it cannot see it, signal
  it or disturb the commands it runs, even after killing everything it can reach.
- The real agent (the static C binary, run in a container as the runner runs it)
  given malformed, oversized, truncated or random frames ends with a FATAL frame
  naming the breach (exit 2) or, at the end of its input, cleanly (exit 0): never a
  crash (a signal), never a hang, never a command left running. A large but valid
  frame is served and the agent goes on.
- The runner policy is checked before a command reaches the agent: a refused
  command is never sent to it, on any spelling of the binary and through
  ``process.parallel``.
- A job that kills its agent in the middle of its commands fails with an error
  naming the agent and the container, in bounded time, not a hang.
"""

from __future__ import annotations

import random
import struct
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_containers import BUSYBOX, Start, container_processes, sh, starter, workspace_root
from exec_paths import agent_processes
from recording import EventLog

from rivet.child_env import child_env
from rivet.engine.agent import protocol as p
from rivet.engine.backends.base import (
    RunningContainer,
)
from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.backends.podman_agent import AGENT_ID_VAR, AGENT_IN_CONTAINER
from rivet.engine.events import JobResult
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec
from rivet.engine.policy import Policy, ProcessPolicy
from rivet.errors import ContainerError

pytestmark = pytest.mark.podman


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return workspace_root(tmp_path)


@pytest.fixture
def backend(podman_available: str) -> PodmanBackend:
    return PodmanBackend(podman_available, exec_agent=True)


@pytest.fixture
def start(backend: PodmanBackend, root: Path) -> Iterator[Start]:
    jobs: list[str] = []
    yield starter(backend, root, jobs, prefix="isolation")
    for job in jobs:
        backend.remove_job(job)


# -- one job against another job's agent ---------------------------------------------------


@pytest.mark.parametrize("userns", ["host", "auto"])
def test_a_job_cannot_reach_the_agent_of_another_jobs_container(
    backend: PodmanBackend, start: Start, podman_available: str, userns: str
) -> None:
    mine, theirs = start(userns=userns), start(userns=userns)
    assert sh(backend, theirs, "echo up").stdout == "up\n"
    their_agent = agent_processes(podman_available, theirs.id)
    assert len(their_agent) == 1
    their_host_pid = their_agent[0][1]
    # Everything that looks like an agent from inside "mine" is its own agent only.
    seen = sh(
        backend,
        mine,
        'for d in /proc/[0-9]*; do case "$(tr "\\0" " " < $d/cmdline 2>/dev/null)" in '
        f'"{AGENT_IN_CONTAINER} "*) echo "${{d#/proc/}}";; esac; done; echo "parent $PPID"',
    ).stdout.split("\n")
    agents = [line for line in seen if line and not line.startswith("parent")]
    assert agents == [seen[-2].split()[1]], seen  # one: the parent of this very command
    # The other container's agent, by its host pid, cannot be signalled or read.
    result = sh(backend, mine, f"kill -0 {their_host_pid}; cat /proc/{their_host_pid}/cmdline")
    assert result.exit_code != 0
    # Killing all that "mine" can kill (its own agent too) leaves "theirs" untouched.
    with pytest.raises(ContainerError, match="died"):
        sh(backend, mine, f"kill -9 {their_host_pid}; kill -9 -1; sleep 300")
    assert agent_processes(podman_available, theirs.id) == their_agent
    before = backend.exec_counts()["agent"]
    assert sh(backend, theirs, "echo still").stdout == "still\n"
    assert backend.exec_counts()["agent"] == before + 1
    assert agent_processes(podman_available, theirs.id) == their_agent  # not restarted
    assert backend.exec_counts()["fallback"] == 0


# -- the real agent against malformed input ------------------------------------------------


def start_frame(request_id: int, argv: list[str], env: list[str] | None = None) -> bytes:
    return p.encode_start(request_id, argv, env or [], "/")


def raw_start(request_id: int, window: int, argc: int, envc: int, strings: bytes) -> bytes:
    return p.frame(p.START, request_id, struct.pack(">III", window, argc, envc) + strings)


HELLO = p.hello()
MALFORMED = {
    "start-before-hello": (start_frame(1, ["true"]), "the first request must be HELLO"),
    "bad-magic": (p.frame(1, 0, b"NOTRIVET" + struct.pack(">I", 1)), "malformed HELLO"),
    "short-hello": (p.frame(1, 0, b"RIV"), "malformed HELLO"),
    "other-version": (
        p.frame(1, 0, p.MAGIC + struct.pack(">I", 9)),
        f"the runner speaks protocol 9, this agent {p.VERSION}",
    ),
    "second-hello": (HELLO + HELLO, "malformed HELLO"),
    "huge-length": (HELLO + p.HEADER.pack(0xFFFFFFFF, p.START, 0, 0, 1), "frame too large"),
    "just-over-limit": (
        HELLO + p.HEADER.pack(p.MAX_REQUEST_FRAME + 1, p.START, 0, 0, 1),
        "frame too large",
    ),
    "reserved-bytes": (HELLO + p.HEADER.pack(0, p.PING, 0, 7, 0), "reserved header bytes"),
    "unknown-type": (HELLO + p.frame(99, 1), "unknown request type"),
    "start-too-short": (HELLO + p.frame(p.START, 1, b"\0" * 5), "malformed START request"),
    "start-no-nul-end": (HELLO + raw_start(1, 4096, 1, 0, b"/\0true"), "malformed START"),
    "start-no-argv": (HELLO + raw_start(1, 4096, 0, 0, b"/\0"), "malformed START request (counts)"),
    "start-zero-window": (HELLO + raw_start(1, 0, 1, 0, b"/\0true\0"), "(counts)"),
    "start-huge-window": (HELLO + raw_start(1, 1 << 30, 1, 0, b"/\0true\0"), "(counts)"),
    "start-huge-argc": (HELLO + raw_start(1, 4096, 0xFFFFFFFF, 0, b"/\0true\0"), "(counts)"),
    "start-count-mismatch": (
        HELLO + raw_start(1, 4096, 3, 2, b"/\0true\0"),
        "malformed START request (strings)",
    ),
    "start-id-in-use": (
        HELLO + start_frame(5, ["sleep", "301"]) + start_frame(5, ["sleep", "302"]),
        "START with a request id already in use",
    ),
    "credit-bad-stream": (
        HELLO + start_frame(1, ["sleep", "303"]) + p.frame(p.CREDIT, 1, b"\0\0\0\1", 3),
        "malformed CREDIT",
    ),
    "credit-beyond-window": (
        HELLO + start_frame(1, ["sleep", "304"]) + p.credit(1, p.STDOUT, p.MAX_WINDOW),
        "CREDIT beyond the largest window",
    ),
    "kill-with-payload": (HELLO + p.frame(p.KILL, 1, b"x"), "malformed KILL"),
    "ping-with-payload": (HELLO + p.frame(p.PING, 1, b"x"), "malformed PING"),
}


def run_agent(podman: str, ctr: RunningContainer, data: bytes) -> tuple[int, bytes, bytes]:
    """The real agent, started exactly as the runner starts it, fed ``data`` and then
    the end of its input. Raises TimeoutExpired if it hangs."""
    marker = f"{AGENT_ID_VAR}={uuid.uuid4().hex}"
    argv = [podman, "exec", "-i", "--detach-keys", "", "--env", marker, ctr.id, AGENT_IN_CONTAINER]
    done = subprocess.run(
        argv, input=data, capture_output=True, timeout=120, env=child_env(where="podman")
    )
    return done.returncode, done.stdout, done.stderr


def frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """``(type, request id, payload)`` of each whole frame the agent sent."""
    found = []
    at = 0
    while len(data) - at >= p.HEADER.size:
        length, kind, _, _, request_id = p.HEADER.unpack_from(data, at)
        found.append((kind, request_id, data[at + p.HEADER.size : at + p.HEADER.size + length]))
        at += p.HEADER.size + length
    return found


def no_leftovers(podman: str, ctr: RunningContainer) -> None:
    deadline = time.monotonic() + 30
    while any("sleep 30" in c for c in container_processes(podman, ctr)):
        assert time.monotonic() < deadline, container_processes(podman, ctr)
        time.sleep(0.2)


@pytest.mark.parametrize(("data", "message"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_requests_end_the_agent_with_a_reason(
    backend: PodmanBackend, start: Start, podman_available: str, data: bytes, message: str
) -> None:
    ctr = start()
    code, out, err = run_agent(podman_available, ctr, data)
    assert code == 2, (code, out, err)  # a FATAL exit, not a signal (a crash is 128+n)
    fatal = [payload.decode() for kind, _, payload in frames(out) if kind == p.FATAL]
    assert len(fatal) == 1 and message in fatal[0], (fatal, out)
    assert message in err.decode()
    no_leftovers(podman_available, ctr)  # what it had started dies with it


def test_truncated_input_and_random_bytes_never_crash_or_hang_the_agent(
    backend: PodmanBackend, start: Start, podman_available: str
) -> None:
    ctr = start()
    ping = p.ping(3)
    # Cut short anywhere (header, payload): the end of input ends the agent cleanly.
    for cut in (1, 11, 13, 20):
        code, out, _ = run_agent(podman_available, ctr, HELLO + ping + start_frame(4, ["x"])[:cut])
        assert code == 0 and [k for k, _, _ in frames(out)] == [p.READY, p.PONG], out
    rng = random.Random(12)
    for size in (1, 12, 13, 100, 4096, 65536, 300_000):
        code, out, err = run_agent(podman_available, ctr, HELLO + rng.randbytes(size))
        assert code in (0, 2), (size, code, err)
        assert frames(out)[0][0] == p.READY
    no_leftovers(podman_available, ctr)
    assert sh(backend, ctr, "echo fine").stdout == "fine\n"


def test_a_large_valid_request_is_served_and_the_agent_goes_on(
    backend: PodmanBackend, start: Start, podman_available: str
) -> None:
    ctr = start()
    # Close to the largest frame: the kernel refuses the exec (E2BIG), the agent says so.
    huge = start_frame(1, ["true"], ["BIG=" + "x" * (p.MAX_REQUEST_FRAME - 40)])
    assert p.MAX_REQUEST_FRAME - 64 < len(huge) - p.HEADER.size <= p.MAX_REQUEST_FRAME
    code, out, err = run_agent(
        podman_available, ctr, HELLO + huge + start_frame(2, ["sleep", "305"]) + p.ping(9)
    )
    assert code == 0, (code, err)
    got = frames(out)
    kinds = [k for k, _, _ in got]
    assert kinds[0] == p.READY and (p.PONG, 9) in [(k, i) for k, i, _ in got], got
    assert p.FATAL not in kinds
    no_leftovers(podman_available, ctr)


# -- the policy comes first ----------------------------------------------------------------


def run_job(backend: PodmanBackend, root: Path, script: str, policy: Policy) -> JobResult:
    source = (
        "return pipeline.define({ name = 'p', stages = { { name = 's', script = function()\n"
        f"{script}\nend }} }} }})"
    )
    settings = ExecutorSettings(workspace_root=root, default_image=BUSYBOX, policy=policy)
    return Executor(backend, settings).run(
        JobSpec(f"pol-{uuid.uuid4().hex[:8]}", source, "p.lua", {}), EventLog()
    )


def test_a_command_the_policy_refuses_never_reaches_the_agent(
    backend: PodmanBackend, root: Path
) -> None:
    script = """
process.run({ "true" })  -- the agent runs from here on
local refused = {}
for _, argv in ipairs({ { "wget" }, { "/bin/wget" }, { "/usr/bin/../../bin/wget", "-q" } }) do
  local ok, err = pcall(process.run, argv)
  if not ok then refused[#refused + 1] = tostring(err) end
end
local ok, err = pcall(process.parallel, { 1, 2, 3 }, function(i)
  process.run({ i == 2 and "wget" or "true" })
end)
refused[#refused + 1] = tostring(err)
output.set("refused", table.concat(refused, "\\n"))
"""
    result = run_job(backend, root, script, Policy(process=ProcessPolicy(denied_binaries=["wget"])))
    assert result.status == "succeeded", result.error
    refused = str(result.outputs["refused"]).split("\n")
    assert len(refused) == 4, refused
    assert all("policy process.denied_binaries forbids" in r for r in refused), refused
    counts = backend.exec_counts()
    # The first true and at most the two allowed trues of the parallel call ran.
    assert 1 <= counts["agent"] <= 3 and counts["podman exec"] == 0, counts


def test_an_allow_list_is_checked_before_the_agent(backend: PodmanBackend, root: Path) -> None:
    script = """
process.run({ "true" })
local ok, err = pcall(process.run, { "sh", "-c", "echo never > /workspace/ran" })
output.set("error", tostring(err))
output.set("ran", fs.exists("ran"))
"""
    policy = Policy(process=ProcessPolicy(allowed_binaries=["true"]))
    result = run_job(backend, root, script, policy)
    assert result.status == "succeeded", result.error
    assert "policy process.allowed_binaries" in str(result.outputs["error"])
    assert result.outputs["ran"] is False
    assert backend.exec_counts()["agent"] == 1


# -- a job killing its agent mid-way -------------------------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        'process.run({ "sh", "-c", "kill -9 $PPID; sleep 300" })',
        # Eight commands in flight through one agent when one of them kills it.
        'process.parallel({ 1, 2, 3, 4, 5, 6, 7, 8 }, function(i)\n'
        '  process.run({ "sh", "-c", i == 5 and "sleep 0.5; kill -9 $PPID; sleep 300"'
        ' or "sleep 300" })\nend)',
    ],
    ids=["one", "parallel"],
)  # fmt: skip
def test_a_job_that_kills_its_agent_fails_clearly_not_hangs(
    backend: PodmanBackend, root: Path, script: str
) -> None:
    began = time.monotonic()
    result = run_job(backend, root, script, Policy())
    assert result.status == "failed"
    error = result.error or ""
    assert "p.lua:" in error and "process.run: the exec agent in container" in error, error
    assert "died" in error, error
    assert time.monotonic() - began < 200  # sleep 300 was never waited for
