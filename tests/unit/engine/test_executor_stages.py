"""The executor's rules for stages, failures, cancels, timeouts and cleanup, on the
fake backend (no Podman: the fake is checked against Podman in
tests/integration/test_backend_contract.py, and the same rules run on real
containers in tests/integration/engine/test_executor.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fake_jobs import FakeJob, run_job, stage

from rivet.domain.status import JobStatus, StageStatus
from rivet.engine.backends.fake import FakeBackend, FakeCommand
from rivet.engine.events import CancelToken

RUNNING, SUCCEEDED = StageStatus.RUNNING, StageStatus.SUCCEEDED


def assert_nothing_left(job: FakeJob) -> None:
    """No container lives on, the job's containers were removed by label last, and
    the workspace is gone."""
    assert job.fake.live == []
    if job.fake.specs:
        assert job.fake.calls[-1].method == "remove_job"
        assert job.fake.calls[-1].subject == job.job_id
    assert list(job.root.iterdir()) == []


# --- order and status ------------------------------------------------------------------


def test_stages_run_in_order_each_reporting_its_start_and_end(tmp_path: Path) -> None:
    job = run_job(tmp_path, *(stage(n, f"process.run({{ 'echo', '{n}' }})") for n in "abc"))
    assert job.result.status is JobStatus.SUCCEEDED
    assert job.events.transitions == [
        ("a", RUNNING),
        ("a", SUCCEEDED),
        ("b", RUNNING),
        ("b", SUCCEEDED),
        ("c", RUNNING),
        ("c", SUCCEEDED),
    ]
    assert job.fake.argvs == [("echo", "a"), ("echo", "b"), ("echo", "c")]
    assert [m for m in job.events.messages("info")] == ["a", "b", "c"]
    assert_nothing_left(job)


def test_a_stage_whose_condition_is_false_is_skipped_and_the_next_one_runs(tmp_path: Path) -> None:
    job = run_job(
        tmp_path,
        stage(
            "never", "process.run({ 'echo', 'never' })", "condition = function() return false end,"
        ),
        stage(
            "after", "process.run({ 'echo', 'after' })", "condition = function() return true end,"
        ),
    )
    assert job.statuses() == ["skipped", "succeeded"]
    assert job.fake.argvs == [("echo", "after")]
    assert "stage 'never' skipped: its condition returned false" in job.events.messages("info")


def test_a_condition_that_returns_no_boolean_fails_its_stage(tmp_path: Path) -> None:
    job = run_job(tmp_path, stage("s", "", "condition = function() return 'yes' end,"))
    assert job.result.status is JobStatus.FAILED
    assert "condition must return a boolean, got string" in (job.result.stages[0].error or "")


def test_the_first_failing_stage_fails_the_job_and_the_later_ones_never_run(
    tmp_path: Path,
) -> None:
    job = run_job(
        tmp_path,
        stage("a", "process.run({ 'echo', 'a' })"),
        stage("b", "error('boom')"),
        stage("c", "process.run({ 'echo', 'c' })"),
    )
    assert job.result.status is JobStatus.FAILED
    assert job.statuses() == ["succeeded", "failed", "pending"]
    assert job.result.error == "stage 'b' failed: t.lua:6: boom"
    assert ("echo", "c") not in job.fake.argvs
    assert_nothing_left(job)


def test_a_failing_command_returns_its_code_and_with_check_fails_the_stage(
    tmp_path: Path,
) -> None:
    fake = FakeBackend()
    fake.script("make", FakeCommand(exit_code=2, stderr="make: *** no rule\n"))
    job = run_job(
        tmp_path,
        stage(
            "s",
            "output.set('code', process.run({ 'make' }).exit_code)\n"
            "process.run({ 'make', check = true })\n"
            "output.set('after', true)",
        ),
        fake=fake,
    )
    assert job.result.outputs == {"code": 2}
    assert "'make' exited with code 2" in (job.result.stages[0].error or "")
    # a command's stderr: the normal level, marked as stderr (error is Rivet's own)
    stderr = [(e.level, e.message) for e in job.events.lines if e.stream == "stderr"]
    assert stderr[0] == ("info", "make: *** no rule")
    assert "make: *** no rule" not in job.events.messages("error")


def test_log_lines_are_numbered_from_the_first_sequence_number_without_gaps(
    tmp_path: Path,
) -> None:
    fake = FakeBackend()
    fake.script("chatty", FakeCommand(stdout="1\n2\n3\n", stderr="e\n"))
    job = run_job(
        tmp_path,
        stage("a", "log.info('x\\ny'); process.run({ 'chatty' })"),
        stage("b", "print('z')"),
        fake=fake,
        first_seq=41,
    )
    seqs = [e.seq for e in job.events.lines]
    assert seqs == list(range(41, 41 + len(seqs)))
    assert {"x", "y", "1", "2", "3", "e", "z"} <= set(job.events.messages())


def test_a_job_that_starts_no_container_never_calls_the_backend(tmp_path: Path) -> None:
    job = run_job(tmp_path, stage("s", "log.info('only a log line')"))
    assert job.result.status is JobStatus.SUCCEEDED
    assert job.fake.calls == []
    assert_nothing_left(job)


# --- cleanup ---------------------------------------------------------------------------

OUTCOMES = {
    "success": ("process.run({ 'echo', 'x' })", JobStatus.SUCCEEDED),
    "failed command": ("process.run({ 'false', check = true })", JobStatus.FAILED),
    "Lua error": ("process.run({ 'echo', 'x' }); error('boom')", JobStatus.FAILED),
    "refused option": (
        "process.run({ 'echo', 'x' }); process.run({ 'echo', cwd = '/etc' })",
        JobStatus.FAILED,
    ),
}


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_containers_and_the_workspace_are_removed_whatever_the_outcome(
    tmp_path: Path, outcome: str
) -> None:
    body, status = OUTCOMES[outcome]
    job = run_job(
        tmp_path,
        stage("s", "fs.write('made.txt', 'x')\n" + body),
        stage("t", "container.with('other:1', function() process.run({ 'true' }) end)"),
    )
    assert job.result.status is status
    assert len(job.fake.specs) == (2 if status is JobStatus.SUCCEEDED else 1)
    removed = {c.subject for c in job.fake.calls if c.method == "remove"}
    assert removed == {s.name for s in job.fake.specs}
    assert_nothing_left(job)


# --- cancel ----------------------------------------------------------------------------


def test_a_cancel_during_a_command_stops_the_job_and_removes_everything(tmp_path: Path) -> None:
    fake = FakeBackend()
    fake.script("build", FakeCommand(stdout="building\n", gate=threading.Event()))
    cancel = CancelToken()
    canceller = threading.Thread(
        target=lambda: (fake.wait_for(lambda f: f.running == 1), cancel.cancel("stop, please"))
    )
    canceller.start()
    job = run_job(
        tmp_path,
        stage("a", "process.run({ 'build' })\nprocess.run({ 'echo', 'after' })"),
        stage("b", "process.run({ 'echo', 'b' })"),
        fake=fake,
        cancel=cancel,
    )
    canceller.join()
    assert job.result.status is JobStatus.CANCELLED
    assert job.result.error == "stop, please"
    assert job.statuses() == ["cancelled", "pending"]
    assert job.fake.argvs == [("build",)]
    assert "cancelling: stop, please" in job.events.messages("warning")
    assert_nothing_left(job)


def test_a_job_cancelled_before_it_starts_is_cancelled_and_runs_nothing(tmp_path: Path) -> None:
    # The cancel stops the evaluation of the file (the sandbox is cancelled at once):
    # that is no error in the file, so the job is cancelled, not failed.
    cancel = CancelToken()
    cancel.cancel("runner shutting down")
    job = run_job(tmp_path, stage("a", "process.run({ 'echo', 'a' })"), cancel=cancel)
    assert job.result.status is JobStatus.CANCELLED
    assert job.result.error == "runner shutting down"
    assert job.fake.calls == []
    assert_nothing_left(job)


# --- timeouts --------------------------------------------------------------------------


def test_a_command_past_its_timeout_ends_with_124_and_a_warning(tmp_path: Path) -> None:
    job = run_job(
        tmp_path,
        stage(
            "s",
            "local r = process.run({ 'sleep', '30', timeout = 1 })\n"
            "output.set('code', r.exit_code); output.set('timed_out', r.timed_out)",
        ),
    )
    assert job.result.outputs == {"code": 124, "timed_out": True}
    assert "'sleep 30' timed out after 1 s" in job.events.messages("warning")


def test_a_timed_out_command_with_check_fails_its_stage_saying_so(tmp_path: Path) -> None:
    job = run_job(tmp_path, stage("s", "process.run({ 'sleep', '30', timeout = 1, check = true })"))
    assert job.result.status is JobStatus.FAILED
    assert "'sleep 30' exited with code 124 (timed out)" in (job.result.error or "")


def test_the_policy_default_timeout_applies_to_a_command_without_one(tmp_path: Path) -> None:
    job = run_job(
        tmp_path,
        stage("s", "output.set('code', process.run({ 'sleep', '30' }).exit_code)"),
        policy={"process": {"default_timeout": 2}},
    )
    assert job.result.outputs == {"code": 124}
    assert job.fake.requests[0][1].timeout == 2
