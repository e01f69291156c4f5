"""The exec agent at work, on real Podman: commands are children of one agent per
container, with the container's confinement, concurrently, each with its own
environment and cwd, exit codes and signals as podman exec reports them, timeouts
that kill the whole process group, back-pressure on a flooding command, and the
fallback to podman exec (said once in the job's log) when the agent cannot start."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_containers import BUSYBOX, Start, sh, starter, workspace_root
from exec_paths import agent_processes, assert_path
from recording import EventLog

from rivet.engine.backends.base import (
    ExecRequest,
    ExecResult,
    RunningContainer,
)
from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec

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
    yield starter(backend, root, jobs)
    for job in jobs:
        backend.remove_job(job)


def leftovers(podman: str, ctr: RunningContainer, needle: str) -> list[str]:
    import subprocess

    out = subprocess.run(
        [podman, "top", ctr.id, "args"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return [line for line in out.splitlines()[1:] if needle in line]


def test_commands_are_children_of_one_agent(
    backend: PodmanBackend, start: Start, podman_available: str
) -> None:
    ctr = start()
    parents = set()
    for _ in range(3):
        result = sh(backend, ctr, 'echo "$PPID $(tr "\\0" " " < /proc/$PPID/cmdline)"')
        assert result.exit_code == 0, result.stderr
        pid, cmdline = result.stdout.split(" ", 1)
        assert cmdline.strip() == "/.rivet-agent"
        parents.add(pid)
    assert len(parents) == 1
    agents = agent_processes(podman_available, ctr.id)
    assert [str(pid) for pid, _ in agents] == list(parents)
    assert backend.uses_agent(ctr)
    assert backend.exec_counts() == {"agent": 3, "fallback": 0, "podman exec": 0}


@pytest.mark.parametrize("userns", ["host", "auto"])
def test_commands_have_the_same_confinement_as_podman_exec(
    backend: PodmanBackend, start: Start, podman_available: str, userns: str
) -> None:
    """Capabilities, seccomp, no-new-privileges, cgroup, namespaces, user and ids: the
    same whether the agent or podman exec started the command, in the same container."""
    ctr = start(userns=userns)
    probe = (
        "grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp)' "
        "/proc/self/status; cat /proc/self/cgroup /proc/self/uid_map /proc/self/gid_map; "
        "for ns in mnt net pid ipc uts user cgroup; do readlink /proc/self/ns/$ns; done; "
        "ulimit -a; umask; env | grep -v -e RIVET_EXEC_ID -e PWD -e SHLVL | sort"
    )
    via_agent = sh(backend, ctr, probe)
    plain = PodmanBackend(podman_available, exec_agent=False)
    via_podman = sh(plain, ctr, probe)
    assert via_agent.exit_code == via_podman.exit_code == 0, via_agent.stderr + via_podman.stderr
    assert via_agent.stdout == via_podman.stdout
    assert "NoNewPrivs:\t1" in via_agent.stdout and "Seccomp:\t2" in via_agent.stdout
    assert_path(backend, True)


def test_parallel_of_eight_runs_concurrently_through_one_agent(
    backend: PodmanBackend, root: Path
) -> None:
    # Each command waits (up to 60 s) until all 8 have started: only commands that
    # really run at the same time print "together" (proven by the workspace).
    source = """
return pipeline.define({ name = "par", stages = { { name = "s", script = function()
  local results = process.parallel({ 1, 2, 3, 4, 5, 6, 7, 8 }, function(n)
    local script = 'touch /workspace/started-$N; i=0; ' ..
      'while [ $(ls /workspace | grep -c started-) -lt 8 ] && [ $i -lt 1200 ]; ' ..
      'do sleep 0.05; i=$((i+1)); done; ' ..
      '[ $(ls /workspace | grep -c started-) -ge 8 ] && printf together || printf alone; ' ..
      'printf " $PPID"'
    return process.run({ "sh", "-c", script, env = { N = tostring(n) }, capture_stdout = true }).stdout
  end)
  output.set("results", table.concat(results, ","))
end } } })
"""
    events = EventLog()
    result = Executor(backend, ExecutorSettings(workspace_root=root, default_image=BUSYBOX)).run(
        JobSpec(f"par-{uuid.uuid4().hex[:8]}", source, "par.lua", {}), events
    )
    assert result.status == "succeeded", (result.error, events.messages())
    outcomes = str(result.outputs["results"]).split(",")
    assert [o.split()[0] for o in outcomes] == ["together"] * 8
    assert len({o.split()[1] for o in outcomes}) == 1  # one parent: one agent
    assert backend.exec_counts()["agent"] == 8 and backend.exec_counts()["podman exec"] == 0


def test_each_command_has_its_own_environment_and_cwd(
    backend: PodmanBackend, start: Start, root: Path
) -> None:
    ctr = start()
    for n in range(6):
        (root / ctr.job_id / f"d{n}").mkdir()
    results: dict[int, ExecResult] = {}

    def one(n: int) -> None:
        results[n] = sh(
            backend,
            ctr,
            'sleep 0.3; printf "%s %s %s" "$N" "$(pwd)" "$SECRET"',
            env={"N": str(n), "PATH": "/bin"},
            secret_env={"SECRET": f"s{n}"},
            cwd=f"/workspace/d{n}",
        )

    threads = [threading.Thread(target=one, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {n: r.stdout for n, r in results.items()} == {
        n: f"{n} /workspace/d{n} s{n}" for n in range(6)
    }


def test_exit_codes_and_signals_match_podman_exec(
    podman_available: str, root: Path, exec_agent: bool
) -> None:
    backend = PodmanBackend(podman_available, exec_agent=exec_agent)
    jobs: list[str] = []
    try:
        ctr = starter(backend, root, jobs)()
        codes = [sh(backend, ctr, s).exit_code for s in ("exit 3", "kill -TERM $$", "kill -9 $$")]
        assert codes == [3, 143, 137]
        assert sh(backend, ctr, "cat; read x || printf eof").stdout == "eof"  # stdin is empty
    finally:
        for job in jobs:
            backend.remove_job(job)
    assert_path(backend, exec_agent)


def test_timeout_kills_the_whole_process_group(
    backend: PodmanBackend, start: Start, podman_available: str
) -> None:
    ctr = start()
    began = time.monotonic()
    result = sh(backend, ctr, "sleep 301 & sleep 302 | cat & (sleep 303; true) & wait", timeout=1)
    assert (result.exit_code, result.timed_out) == (124, True)
    assert time.monotonic() - began < 30
    assert leftovers(podman_available, ctr, "sleep 30") == []
    assert sh(backend, ctr, "echo usable").stdout == "usable\n"


def test_a_flooding_command_is_held_back_by_a_slow_reader(
    backend: PodmanBackend, start: Start, root: Path
) -> None:
    """While the log callback blocks, the command cannot finish writing: the agent
    stops reading its pipe once the runner's window is full."""
    ctr = start()
    done = root / ctr.job_id / "done"
    release = threading.Event()
    lines: list[str] = []

    def slow(line: str) -> None:
        if not lines:
            release.wait(120)
        lines.append(line)

    request = ExecRequest(
        argv=["sh", "-c", "yes 0123456789 | head -n 1000000; touch /workspace/done"],
        on_stdout=slow,
    )
    outcome: list[ExecResult] = []
    runner = threading.Thread(target=lambda: outcome.append(backend.exec(ctr, request)))
    runner.start()
    try:
        time.sleep(3)
        assert not done.exists(), "11 MB were taken in while nobody read them"
    finally:
        release.set()
        runner.join(240)
    assert outcome and outcome[0].exit_code == 0
    assert len(lines) == 1_000_000 and done.exists()


@pytest.mark.exec_fallback
def test_fallback_to_podman_exec_when_the_agent_cannot_start(
    podman_available: str, root: Path
) -> None:
    # busybox is static but no agent: it fails the handshake ("agent: applet not found").
    backend = PodmanBackend(podman_available, exec_agent=Path("/bin/busybox"))
    jobs: list[str] = []
    notes: list[str] = []
    try:
        ctr = starter(backend, root, jobs)()
        for _ in range(3):
            result = backend.exec(
                ctr, ExecRequest(argv=["echo", "ok"], capture_stdout=True, on_notice=notes.append)
            )
            assert (result.exit_code, result.stdout) == (0, "ok\n")
    finally:
        for job in jobs:
            backend.remove_job(job)
    assert len(notes) == 1, notes
    assert f"the exec agent could not start in container {ctr.name}" in notes[0]
    assert "podman exec" in notes[0] and "\n" not in notes[0]
    assert backend.exec_counts() == {"agent": 0, "fallback": 3, "podman exec": 3}


@pytest.mark.exec_fallback
def test_no_agent_binary_is_said_once_in_the_job_log(podman_available: str, root: Path) -> None:
    backend = PodmanBackend(podman_available, exec_agent=Path("/nonexistent/agent"))
    source = """
return pipeline.define({ name = "fb", stages = { { name = "s", script = function()
  for i = 1, 3 do process.run({ "true" }) end
  process.run({ "echo", "done" })
end } } })
"""
    events = EventLog()
    result = Executor(backend, ExecutorSettings(workspace_root=root, default_image=BUSYBOX)).run(
        JobSpec(f"fb-{uuid.uuid4().hex[:8]}", source, "fb.lua", {}), events
    )
    assert result.status == "succeeded", result.error
    notes = [m for m in events.messages("warning") if "exec agent" in m]
    assert len(notes) == 1, notes
    assert "is not available on this runner" in notes[0] and "/nonexistent/agent" in notes[0]
    assert "done" in events.messages()


def test_rivet_exec_agent_0_forces_podman_exec(
    podman_available: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RIVET_EXEC_AGENT", "0")
    backend = PodmanBackend(podman_available)
    jobs: list[str] = []
    try:
        ctr = starter(backend, root, jobs)()
        result = sh(backend, ctr, 'tr "\\0" " " < /proc/$PPID/cmdline 2>&1 || echo none')
        assert "/.rivet-agent" not in result.stdout
    finally:
        for job in jobs:
            backend.remove_job(job)
    assert backend.exec_counts() == {"agent": 0, "fallback": 0, "podman exec": 1}


@pytest.mark.parametrize("gone", ["rm", "stop"])
def test_a_container_gone_before_its_first_command_is_no_agent_failure(
    backend: PodmanBackend, start: Start, podman_available: str, gone: str
) -> None:
    """A cancel can remove a container while it is still starting, so that its first
    command finds it gone: that command fails as it did with podman exec, and the
    agent is neither disabled nor said to be (no "commands run with podman exec")."""
    import subprocess

    ctr = start()
    args = ["rm", "-f", "-t", "0"] if gone == "rm" else ["stop", "-t", "0"]
    subprocess.run([podman_available, *args, ctr.id], capture_output=True, timeout=120, check=True)
    notes: list[str] = []
    result = backend.exec(
        ctr, ExecRequest(argv=["true"], capture_stderr=True, on_notice=notes.append)
    )
    assert result.exit_code != 0 and result.stderr.strip(), result  # podman exec's error
    assert notes == []
    assert backend.exec_counts()["fallback"] == 0
