"""The container backend contract (``rivet.engine.backends.base``), checked the same
way on the fake and on real Podman: this is what shows that the fake's answers are
Podman's, so unit tests of the executor built on the fake test the real thing.

Each check runs a real command on Podman; on the fake the same argv is scripted
to write what the command writes (``program``), and everything the check asserts
then comes from the backend under test: lines, captures, exit codes, timeouts,
removal, refusals.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from rivet.engine.backends.base import (
    MAX_LINE_BYTES,
    CaptureBudget,
    ContainerBackend,
    ContainerOptions,
    ContainerSpec,
    ExecRequest,
    RunningContainer,
    container_name,
)
from rivet.engine.backends.fake import FakeBackend, FakeCommand
from rivet.engine.backends.podman import PodmanBackend
from rivet.errors import ContainerError

BUSYBOX = "localhost/rivet/busybox:latest"
MISSING = "localhost/rivet/no-such-image:latest"
WAIT = 120.0  # a bound for a loaded machine, never a measurement


@dataclass
class Subject:
    """The backend under test, and how to say what a command does on the fake."""

    kind: str
    backend: ContainerBackend
    workspace: Path
    job_id: str

    def program(self, argv: Sequence[str], does: FakeCommand) -> list[str]:
        """``argv``, scripted to do ``does`` on the fake (Podman runs it for real)."""
        if isinstance(self.backend, FakeBackend):
            self.backend.script(argv, does)
        return list(argv)

    def start(
        self, options: ContainerOptions | None = None, image: str = BUSYBOX
    ) -> RunningContainer:
        options = options or ContainerOptions()
        return self.backend.start(
            ContainerSpec(
                job_id=self.job_id,
                image=image,
                workspace=self.workspace,
                name=container_name(self.job_id, image, options),
                options=options,
            )
        )


@pytest.fixture(params=["fake", pytest.param("podman", marks=pytest.mark.podman)])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    backend: ContainerBackend
    if request.param == "podman":
        request.getfixturevalue("podman_available")
        backend = PodmanBackend()
    else:
        backend = FakeBackend(images={BUSYBOX})
    workspace = tmp_path / "ws"
    workspace.mkdir(mode=0o700)
    job_id = f"contract-{uuid.uuid4().hex[:10]}"
    yield Subject(request.param, backend, workspace, job_id)
    backend.remove_job(job_id)


def test_a_command_streams_its_lines_while_it_runs_and_returns_its_exit_code(
    subject: Subject,
) -> None:
    argv = subject.program(
        ["sh", "-c", "echo one; echo two; echo oops >&2; exit 3"],
        FakeCommand(exit_code=3, stdout="one\ntwo\n", stderr="oops\n"),
    )
    out: list[str] = []
    err: list[str] = []
    container = subject.start()
    result = subject.backend.exec(
        container, ExecRequest(argv=argv, on_stdout=out.append, on_stderr=err.append)
    )
    assert (result.exit_code, result.timed_out) == (3, False)
    assert (out, err) == (["one", "two"], ["oops"])
    assert (result.stdout, result.stderr, result.captured_bytes) == ("", "", 0)


def test_a_capture_is_returned_instead_of_streamed_and_holds_its_room(subject: Subject) -> None:
    argv = subject.program(["printf", "a\\nb\\r\\n"], FakeCommand(stdout="a\nb\r\n"))
    streamed: list[str] = []
    budget = CaptureBudget(1000)
    result = subject.backend.exec(
        subject.start(),
        ExecRequest(
            argv=argv, on_stdout=streamed.append, capture_stdout=True, capture_budget=budget
        ),
    )
    assert (result.exit_code, result.stdout, streamed) == (0, "a\nb\r\n", [])
    assert result.captured_bytes == budget.held == 5
    budget.give_back(result.captured_bytes)
    assert budget.held == 0


def test_a_line_longer_than_the_cap_arrives_in_pieces_and_a_last_line_without_newline_whole(
    subject: Subject,
) -> None:
    size = 2 * MAX_LINE_BYTES + 10
    argv = subject.program(
        ["sh", "-c", f"head -c {size} /dev/zero | tr '\\0' x; echo; printf 'end\\r\\nno newline'"],
        FakeCommand(stdout="x" * size + "\nend\r\nno newline"),
    )
    lines: list[str] = []
    result = subject.backend.exec(subject.start(), ExecRequest(argv=argv, on_stdout=lines.append))
    assert result.exit_code == 0
    assert [len(line) for line in lines[:3]] == [MAX_LINE_BYTES, MAX_LINE_BYTES, 10]
    assert set("".join(lines[:3])) == {"x"}
    assert lines[3:] == ["end", "no newline"]


@pytest.mark.parametrize("capture", [False, True])
def test_a_program_missing_from_the_image_is_not_found_with_exit_127(
    subject: Subject, capture: bool
) -> None:
    result = subject.backend.exec(
        subject.start(), ExecRequest(argv=["no-such-program", "x"], capture_stderr=capture)
    )
    assert (result.exit_code, result.start_failure) == (127, "not found")


def test_a_program_that_cannot_be_executed_is_not_executable_with_exit_126(
    subject: Subject,
) -> None:
    argv = subject.program(["/etc/passwd"], FakeCommand(start_failure="not executable"))
    result = subject.backend.exec(subject.start(), ExecRequest(argv=argv))
    assert (result.exit_code, result.start_failure) == (126, "not executable")


def test_a_command_that_exits_127_itself_did_start(subject: Subject) -> None:
    # The shell starts; the program it cannot find is its own affair (and it says so).
    argv = subject.program(
        ["sh", "-c", "no-such-program"],
        FakeCommand(exit_code=127, stderr="sh: no-such-program: not found\n"),
    )
    err: list[str] = []
    result = subject.backend.exec(subject.start(), ExecRequest(argv=argv, on_stderr=err.append))
    assert (result.exit_code, result.start_failure) == (127, None)
    assert err == ["sh: no-such-program: not found"]


def test_a_command_past_its_timeout_is_killed_with_exit_124(subject: Subject) -> None:
    result = subject.backend.exec(subject.start(), ExecRequest(argv=["sleep", "60"], timeout=0.5))
    assert (result.exit_code, result.timed_out) == (124, True)


def test_a_capture_past_the_budget_stops_the_command_and_holds_nothing(subject: Subject) -> None:
    argv = subject.program(
        ["sh", "-c", "while :; do echo yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy; done"],
        FakeCommand(stdout="y" * 37 + "\n" * 10_000),
    )
    budget = CaptureBudget(1000)
    result = subject.backend.exec(
        subject.start(), ExecRequest(argv=argv, capture_stdout=True, capture_budget=budget)
    )
    assert (result.capture_overflow, result.stdout, result.exit_code) == ("stdout", "", 137)
    assert result.captured_bytes == budget.held == 0


def test_removing_a_container_ends_its_running_command_as_failed(subject: Subject) -> None:
    argv = subject.program(
        ["sh", "-c", "echo started; sleep 600"],
        FakeCommand(stdout="started\n", gate=threading.Event()),  # a gate never opened
    )
    container = subject.start()
    started = threading.Event()
    results = []
    worker = threading.Thread(
        target=lambda: results.append(
            subject.backend.exec(
                container, ExecRequest(argv=argv, on_stdout=lambda _: started.set())
            )
        )
    )
    worker.start()
    assert started.wait(WAIT), "the command never started"
    subject.backend.remove(container)
    worker.join(WAIT)
    assert not worker.is_alive()
    # Podman answers 137 (killed) or, when it loses the race with the removal, 255.
    assert results[0].exit_code in (137, 255)


def test_a_removed_container_is_gone_and_removing_again_is_harmless(subject: Subject) -> None:
    container = subject.start()
    subject.backend.remove(container)
    subject.backend.remove(container)
    assert subject.backend.remove_job(subject.job_id) == 0
    err: list[str] = []
    result = subject.backend.exec(container, ExecRequest(argv=["true"], on_stderr=err.append))
    assert result.exit_code == 125
    assert any("no such container" in line for line in err), err


def test_remove_job_removes_every_container_of_the_job(subject: Subject) -> None:
    first = subject.start()
    second = subject.start(ContainerOptions(network="none"))
    assert first.name != second.name
    assert subject.backend.remove_job(subject.job_id) == 2
    assert subject.backend.remove_job(subject.job_id) == 0
    for container in (first, second):
        assert subject.backend.exec(container, ExecRequest(argv=["true"])).exit_code == 125


def test_a_present_image_passes_the_check_and_a_missing_one_is_refused_by_name(
    subject: Subject,
) -> None:
    for pull in ("never", "missing", None):
        subject.backend.check_image(BUSYBOX, pull)
    with pytest.raises(ContainerError, match="no-such-image") as refused:
        subject.backend.check_image(MISSING, "never")
    assert "container.pull = 'never'" in str(refused.value)
    with pytest.raises(ContainerError, match="is not available locally"):
        subject.start(ContainerOptions(pull="never"), image=MISSING)
    assert subject.backend.remove_job(subject.job_id) == 0


@pytest.mark.parametrize(
    ("env", "secret_env", "refusal"),
    [
        ({"A B": "x"}, {}, "invalid environment variable name"),
        ({"A": "x\0y"}, {}, "contains a NUL character"),
        ({}, {"-e": "x"}, "invalid secret environment variable name"),
        ({"TOKEN": "x"}, {"TOKEN": "y"}, "given both as a secret and in env"),
    ],
)
def test_bad_variables_are_refused_before_the_command_runs(
    subject: Subject, env: dict[str, str], secret_env: dict[str, str], refusal: str
) -> None:
    ran: list[str] = []
    argv = subject.program(["echo", "ran"], FakeCommand(stdout="ran\n"))
    with pytest.raises(ContainerError, match=refusal):
        subject.backend.exec(
            subject.start(),
            ExecRequest(argv=argv, env=env, secret_env=secret_env, on_stdout=ran.append),
        )
    assert ran == []


def test_a_callback_that_raises_fails_the_exec_once_the_command_has_ended(
    subject: Subject,
) -> None:
    argv = subject.program(["sh", "-c", "echo a; echo b"], FakeCommand(stdout="a\nb\n"))
    seen: list[str] = []

    def refuse(line: str) -> None:
        seen.append(line)
        raise RuntimeError("the sink is gone")

    with pytest.raises(RuntimeError, match="the sink is gone"):
        subject.backend.exec(subject.start(), ExecRequest(argv=argv, on_stdout=refuse))
    assert seen == ["a"]


def test_commands_run_side_by_side_in_one_container_each_with_its_own_output(
    subject: Subject,
) -> None:
    container = subject.start()
    argvs = [
        subject.program(
            ["sh", "-c", f"echo {n}; exit {n}"], FakeCommand(exit_code=n, stdout=f"{n}\n")
        )
        for n in range(4)
    ]
    results: dict[int, tuple[int, list[str]]] = {}

    def run(n: int) -> None:
        lines: list[str] = []
        result = subject.backend.exec(container, ExecRequest(argv=argvs[n], on_stdout=lines.append))
        results[n] = (result.exit_code, lines)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(WAIT)
    assert results == {n: (n, [str(n)]) for n in range(4)}


def test_the_containers_of_a_job_share_one_private_id_range(subject: Subject) -> None:
    auto = ContainerOptions(userns="auto")
    first = subject.start(auto)
    if subject.kind == "podman" and os.geteuid() != 0:
        # Rootless Podman: container root already is the runner's own account.
        assert first.id_map is None
        return
    assert first.id_map is not None and first.id_map.uid != 0
    spec = ContainerSpec(
        job_id=subject.job_id,
        image=BUSYBOX,
        workspace=subject.workspace,
        name=container_name(
            subject.job_id, BUSYBOX, ContainerOptions(userns="auto", network="none")
        ),
        options=ContainerOptions(userns="auto", network="none"),
        id_map=first.id_map,
    )
    second = subject.backend.start(spec)
    assert second.id_map == first.id_map
