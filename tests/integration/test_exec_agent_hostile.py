"""Hostile, on real Podman: the exec agent lives in the job's trust domain, so a job
can kill it, stop it, flood it or try to reach or replace it, and a broken agent can
send anything. Whatever it does, the runner never hangs or grows without bound, the
command in flight fails with an error naming the container, its processes are
killed, and later commands run (agent restarted, or podman exec after too many
deaths).

Fake agents (``sh`` scripts writing bytes, started exactly as the agent is, through
``podman exec -i``) stand in for an agent that sends malformed frames."""

from __future__ import annotations

import re
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_containers import BUSYBOX, Start, container_processes, sh, starter, workspace_root
from exec_paths import agent_processes
from recording import EventLog

from rivet.child_env import child_env
from rivet.engine.agent import client
from rivet.engine.agent import protocol as p
from rivet.engine.backends.base import (
    CaptureBudget,
    ExecRequest,
    RunningContainer,
)
from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec
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
    yield starter(backend, root, jobs, prefix="hostile")
    for job in jobs:
        backend.remove_job(job)


def agent_died(backend: PodmanBackend, ctr: RunningContainer, script: str, what: str) -> None:
    began = time.monotonic()
    with pytest.raises(ContainerError) as info:
        sh(backend, ctr, script)
    message = str(info.value)
    assert f"the exec agent in container {ctr.name} {what}" in message, message
    assert "result is lost" in message and "\n" not in message
    assert time.monotonic() - began < 60


# -- a job against its agent ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kill",
    ["kill -9 $PPID", "kill -9 -1", "for p in /proc/[0-9]*; do case $(cat $p/cmdline) in "
     "/.rivet-agent*) kill -9 ${p#/proc/};; esac; done"],
    ids=["parent", "everything", "found-in-proc"],
)  # fmt: skip
def test_a_job_that_kills_the_agent(
    backend: PodmanBackend, start: Start, podman_available: str, kill: str
) -> None:
    ctr = start()
    before = agent_processes(podman_available, ctr.id)
    agent_died(backend, ctr, f"{kill}; sleep 0.2; sleep 300", "died")
    # The command in flight is killed too: nothing of it runs on, orphaned.
    assert [c for c in container_processes(podman_available, ctr) if "sleep 300" in c] == []
    result = sh(backend, ctr, 'tr "\\0" " " < /proc/$PPID/cmdline')
    assert (result.exit_code, result.stdout.strip()) == (0, "/.rivet-agent")
    after = agent_processes(podman_available, ctr.id)
    assert len(after) == 1 and after != before  # a new agent
    assert backend.exec_counts()["fallback"] == 0


def test_a_killed_agent_is_said_in_the_job_log_and_the_job_goes_on(
    backend: PodmanBackend, root: Path
) -> None:
    source = """
return pipeline.define({ name = "k", stages = { { name = "s", script = function()
  local ok, err = pcall(process.run, { "sh", "-c", "kill -9 $PPID; sleep 300" })
  output.set("error", tostring(err))
  output.set("after", process.run({ "echo", "still here", capture_stdout = true }).stdout)
end } } })
"""
    events = EventLog()
    result = Executor(backend, ExecutorSettings(workspace_root=root, default_image=BUSYBOX)).run(
        JobSpec(f"k-{uuid.uuid4().hex[:8]}", source, "k.lua", {}), events
    )
    assert result.status == "succeeded", result.error
    assert "process.run: the exec agent in container" in str(result.outputs["error"])
    assert "died" in str(result.outputs["error"])
    assert result.outputs["after"] == "still here\n"
    restarted = [m for m in events.messages("warning") if "restarted it" in m]
    assert len(restarted) == 1, events.messages()


@pytest.mark.exec_fallback
def test_restarts_are_bounded_then_podman_exec_takes_over(
    backend: PodmanBackend, start: Start
) -> None:
    ctr = start()
    for _ in range(4):
        agent_died(backend, ctr, "kill -9 $PPID; sleep 300", "died")
    notes: list[str] = []
    for _ in range(2):
        result = backend.exec(
            ctr, ExecRequest(argv=["echo", "ok"], capture_stdout=True, on_notice=notes.append)
        )
        assert result.stdout == "ok\n"
    assert len(notes) == 1 and "died 4 times" in notes[0] and "podman exec" in notes[0]
    assert backend.exec_counts()["fallback"] == 2


@pytest.mark.parametrize("userns", ["host", "auto"])
def test_the_agent_cannot_be_replaced_nor_its_pipes_or_memory_reached(
    backend: PodmanBackend, start: Start, userns: str
) -> None:
    ctr = start(userns=userns)
    attempts = {
        "replace": "cp /bin/busybox /.rivet-agent",
        "remove": "rm -f /.rivet-agent",
        "move aside": "mv /.rivet-agent /.old",
        "remount": "mount -o remount,rw /.rivet-agent",
        "write its output": "echo forged > /proc/$PPID/fd/1",
        "read its input": "head -c 1 /proc/$PPID/fd/0",
        "follow its descriptors": "cat /proc/$PPID/fdinfo/1; readlink /proc/$PPID/fd/1",
        "read its environment": "cat /proc/$PPID/environ",
        "read its memory": "head -c 1 /proc/$PPID/mem",
        "trace it": "cat /proc/$PPID/stack",
    }
    for what, script in attempts.items():
        result = sh(backend, ctr, script)
        assert result.exit_code != 0, f"{what}: {result}"
        assert any(
            reason in result.stderr.lower()
            for reason in (
                "read-only file system",
                "permission denied",
                "not permitted",
                "resource busy",  # a mount point
            )
        ), f"{what}: {result.stderr}"
    assert sh(backend, ctr, "echo fine").stdout == "fine\n"
    assert backend.uses_agent(ctr)


def test_a_planted_agent_is_never_started(
    backend: PodmanBackend, start: Start, podman_available: str
) -> None:
    """The job makes everything it can look like an agent path, then kills the agent:
    the restarted one is the runner's (it speaks the protocol; a planted sh would not)."""
    ctr = start()
    plant = (
        "printf '#!/bin/sh\\necho planted > /workspace/planted\\n' > /planted; chmod +x /planted; "
        "mv /.rivet /.moved; mkdir -p /.rivet; cp /planted /.rivet/agent; cp /planted /.rivet-agent.new; "
        "mv /.rivet-agent.new /.rivet-agent; kill -9 $PPID; sleep 300"
    )
    agent_died(backend, ctr, plant, "died")
    result = sh(backend, ctr, 'tr "\\0" " " < /proc/$PPID/cmdline; ls /workspace')
    assert result.stdout.split() == ["/.rivet-agent"]  # the real one; nothing planted ran
    assert backend.exec_counts()["fallback"] == 0


def test_a_stopped_agent_fails_its_command_and_is_replaced(
    backend: PodmanBackend, start: Start, podman_available: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "WEDGE_TIMEOUT", 3.0)
    monkeypatch.setattr(client, "PING_INTERVAL", 0.5)
    ctr = start()
    agent_died(backend, ctr, "kill -STOP $PPID; sleep 300", "stopped answering for 3 s")
    assert [c for c in container_processes(podman_available, ctr) if "sleep 300" in c] == []
    assert sh(backend, ctr, "echo fine").stdout == "fine\n"
    assert len(agent_processes(podman_available, ctr.id)) == 1  # the stopped one is gone


def test_a_flood_is_bounded_with_capture_off_and_on(backend: PodmanBackend, start: Start) -> None:
    ctr = start()
    count = 0

    def counted(line: str) -> None:
        nonlocal count
        count += 1

    flood = ExecRequest(argv=["sh", "-c", "yes flood"], on_stdout=counted, timeout=3)
    result = backend.exec(ctr, flood)
    assert (result.exit_code, result.timed_out) == (124, True) and count > 0
    budget = CaptureBudget(1 << 20)
    captured = backend.exec(
        ctr,
        ExecRequest(
            argv=["sh", "-c", "yes flood & yes flood >&2"],
            capture_stdout=True,
            capture_stderr=True,
            capture_budget=budget,
            timeout=120,
        ),
    )
    assert captured.capture_overflow in ("stdout", "stderr") and not captured.timed_out
    assert captured.stdout == "" or captured.stderr == ""
    budget.give_back(captured.captured_bytes)
    assert budget.held == 0
    assert sh(backend, ctr, "echo fine").stdout == "fine\n"
    assert backend.uses_agent(ctr)


def test_more_commands_at_once_than_the_agent_runs_wait_their_turn(
    backend: PodmanBackend, start: Start, podman_available: str
) -> None:
    ctr = start()
    n = p.MAX_COMMANDS + 44
    results: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        code = backend.exec(ctr, ExecRequest(argv=["sleep", "0.5"])).exit_code
        with lock:
            results.append(code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert results == [0] * n
    assert len(agent_processes(podman_available, ctr.id)) == 1
    assert backend.exec_counts()["agent"] == n


def test_a_daemon_keeping_the_output_open_does_not_hold_the_result(
    backend: PodmanBackend, start: Start, podman_available: str
) -> None:
    ctr = start()
    began = time.monotonic()
    result = sh(backend, ctr, "setsid sleep 311 & sleep 312 & echo started")
    assert (result.exit_code, result.stdout) == (0, "started\n")
    assert time.monotonic() - began < 60
    # Left running, as with podman exec (a job may start a service for later steps)...
    running = container_processes(podman_available, ctr)
    assert any("sleep 311" in c for c in running) and any("sleep 312" in c for c in running)
    # ...but a timeout kills the group and, from the host, what left it (setsid).
    result = sh(backend, ctr, "setsid sleep 313 & sleep 314 & sleep 315", timeout=1)
    assert result.timed_out
    running = container_processes(podman_available, ctr)
    assert [c for c in running if any(f"sleep 31{d}" in c for d in (3, 4, 5))] == []


def test_a_command_that_closes_its_stdout_early(backend: PodmanBackend, start: Start) -> None:
    ctr = start()
    result = sh(backend, ctr, "echo before; exec 1>&-; echo e1 >&2; sleep 0.5; echo e2 >&2")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "before\n", "e1\ne2\n")


# -- an agent that breaks the protocol -----------------------------------------------------


def printf(data: bytes) -> str:
    return "printf '" + "".join(f"\\{b:03o}" for b in data) + "'"


READY = p.frame(
    p.READY,
    0,
    struct.pack(">8sIIIII", p.MAGIC, p.VERSION, 7, p.MAX_COMMANDS, p.MAX_REQUEST_FRAME, p.MAX_DATA),
)
HELLO_BYTES = len(p.hello())
AFTER_START = f"head -c {HELLO_BYTES} >/dev/null; {printf(READY)}; head -c 12 >/dev/null; "
CHUNK = "head -c 65536 /dev/zero"
DATA_HEADER = printf(p.HEADER.pack(p.MAX_DATA, p.DATA, p.STDOUT, 0, 1))


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("printf 'GARBAGE!GARBAGE!'", "sent an invalid frame (reserved header bytes"),
        ("cat /dev/urandom", "sent an invalid frame"),
        (
            printf(p.frame(p.READY, 0, struct.pack(">8sIIIII", p.MAGIC, 2, 7, 256, 1, 1))),
            "the agent speaks protocol 2, this runner 1",
        ),
        (printf(p.frame(p.DATA, 1, b"x", p.STDOUT)), "frame type 65 before READY"),
        (printf(p.frame(p.FATAL, 0, b"no\x1bway\n")), "gave up: no way"),
        ("exit 3", "died (its podman exec ended with exit code 3)"),
        # (podman exec -i may drop what arrives right at the exit: hence the sleep)
        ("echo 'evil' >&2; sleep 0.5; exit 9", "exit code 9): evil"),
    ],
    ids=["garbage", "noise", "version", "data-first", "fatal", "exits", "stderr"],
)
def test_a_broken_agent_fails_the_handshake(
    start: Start, podman_available: str, script: str, message: str
) -> None:
    ctr = start()
    with pytest.raises(client.AgentGone, match=re.escape(message)):
        fake_agent(podman_available, ctr, script + "; sleep 300")
    assert not any("sleep 300" in c for c in container_processes(podman_available, ctr))


def test_a_silent_agent_fails_the_handshake_in_time(
    start: Start, podman_available: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "HANDSHAKE_TIMEOUT", 2.0)
    ctr = start()
    with pytest.raises(client.AgentGone, match="did not answer within 2 s"):
        fake_agent(podman_available, ctr, "sleep 300")
    assert not any("sleep 300" in c for c in container_processes(podman_available, ctr))


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (
            AFTER_START + "; ".join([f"{DATA_HEADER}; {CHUNK}"] * 3),
            "more output than the runner made room for",
        ),
        (AFTER_START + printf(p.frame(p.DATA, 99, b"x", p.STDOUT)), "request 99, which is not"),
        (AFTER_START + printf(p.frame(p.EXIT, 1, bytes(8))), "EXIT before the end"),
        (
            AFTER_START + printf(p.frame(p.EOF, 1, b"", p.STDOUT) * 2),
            "stream 1 ended twice",
        ),
        (AFTER_START + printf(p.frame(p.READY, 0, bytes(28))), "a second READY"),
        (AFTER_START + printf(p.HEADER.pack(1 << 30, p.DATA, 1, 0, 1)), "at most 65536"),
    ],
    ids=["beyond-credit", "unknown-id", "early-exit", "eof-twice", "ready-twice", "huge"],
)
def test_a_broken_agent_fails_the_command_in_flight(
    start: Start, podman_available: str, script: str, message: str
) -> None:
    ctr = start()
    conn = fake_agent(podman_available, ctr, script + "; sleep 300")
    command = conn.submit(["true"], ["RIVET_EXEC_ID=x"], "/")
    assert command.wait(60), "the command was never failed"
    assert command.error is not None and message in command.error, command.error
    assert "and was stopped" in command.error and not conn.alive
    with pytest.raises(client.AgentGone):
        conn.submit(["true"], [], "/")
    deadline = time.monotonic() + 30
    while any("sleep 300" in c for c in container_processes(podman_available, ctr)):
        assert time.monotonic() < deadline, "the broken agent was left running"
        time.sleep(0.2)


def fake_agent(podman: str, ctr: RunningContainer, script: str) -> client.AgentConnection:
    marker = f"RIVET_AGENT_ID={uuid.uuid4().hex}"
    argv = [podman, "exec", "-i", "--detach-keys", "", "--env", marker, ctr.id, "sh", "-c", script]
    return client.AgentConnection.start(argv, child_env(where="podman"), "/", marker)
