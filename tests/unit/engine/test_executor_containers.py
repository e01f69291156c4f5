"""The executor's container rules on the fake backend: which image a command runs
in (the default, a stage's container, container.with), one container per image and
options, image checks, process.parallel, secrets and refusals before any start."""

from __future__ import annotations

import threading
from pathlib import Path

from fake_jobs import DEFAULT, run_job, stage

from rivet.domain.status import JobStatus
from rivet.engine.backends.base import ContainerOptions, ExecRequest, RunningContainer
from rivet.engine.backends.fake import FakeBackend, FakeCommand

# --- the container stack ---------------------------------------------------------------


def test_commands_run_in_the_default_image_unless_a_stage_or_container_with_says_otherwise(
    tmp_path: Path,
) -> None:
    job = run_job(
        tmp_path,
        stage("plain", "process.run({ 'echo', '1' })"),
        stage(
            "built",
            """
            process.run({ 'echo', '2' })
            container.with('busybox:1', function()
              process.run({ 'echo', '3' })
              container.with('debian:12', function() process.run({ 'echo', '4' }) end)
              process.run({ 'echo', '5' })
            end)
            process.run({ 'echo', '6' })
            """,
            "container = 'golang:1.22',",
        ),
        stage("plain-again", "process.run({ 'echo', '7' })"),
    )
    assert job.result.status is JobStatus.SUCCEEDED, job.result.error
    assert job.images() == [
        (DEFAULT, ("echo", "1")),
        ("golang:1.22", ("echo", "2")),
        ("busybox:1", ("echo", "3")),
        ("debian:12", ("echo", "4")),
        ("busybox:1", ("echo", "5")),
        ("golang:1.22", ("echo", "6")),
        (DEFAULT, ("echo", "7")),
    ]


def test_the_stack_is_restored_when_the_function_of_container_with_fails(tmp_path: Path) -> None:
    job = run_job(
        tmp_path,
        stage(
            "s",
            """
            local ok, err = pcall(container.with, 'busybox:1', function()
              process.run({ 'echo', 'inside' })
              error('inner failure')
            end)
            assert(not ok and tostring(err):find('inner failure'))
            process.run({ 'echo', 'outside' })
            """,
        ),
    )
    assert job.result.status is JobStatus.SUCCEEDED, job.result.error
    assert job.images() == [("busybox:1", ("echo", "inside")), (DEFAULT, ("echo", "outside"))]


def test_one_container_is_started_per_image_and_options_and_reused(tmp_path: Path) -> None:
    job = run_job(
        tmp_path,
        stage("a", "for i = 1, 3 do process.run({ 'echo', tostring(i) }) end"),
        stage("b", "process.run({ 'echo', 'b' }); container.with('busybox:1', function() end)"),
        stage("c", "process.run({ 'echo', 'c' })", "readonly = true,"),
        stage("d", "process.run({ 'echo', 'd' })", "readonly = true,"),
    )
    assert job.result.status is JobStatus.SUCCEEDED, job.result.error
    started = [(s.image, s.options.readonly_workspace) for s in job.fake.specs]
    assert started == [(DEFAULT, False), (DEFAULT, True)]
    assert len({s.name for s in job.fake.specs}) == 2
    assert [c.id for c, _ in job.fake.requests].count(job.fake.requests[0][0].id) == 4


def test_container_with_checks_its_image_on_entry_and_a_missing_one_fails_there(
    tmp_path: Path,
) -> None:
    job = run_job(
        tmp_path,
        stage("s", "container.with('missing:1', function() end)\nprocess.run({ 'echo', 'x' })"),
        fake=FakeBackend(images={DEFAULT}),
    )
    assert job.result.status is JobStatus.FAILED
    assert "t.lua:3: container.with: image 'missing:1'" in (job.result.error or "")
    assert job.fake.specs == []
    assert job.fake.argvs == []


def test_an_image_is_checked_once_per_job(tmp_path: Path) -> None:
    job = run_job(
        tmp_path,
        stage("a", "container.with('busybox:1', function() end)"),
        stage("b", "container.with('busybox:1', function() end)"),
    )
    assert [c.subject for c in job.fake.calls if c.method == "check_image"] == ["busybox:1"]


def test_the_containers_of_a_job_with_a_private_user_namespace_share_its_range(
    tmp_path: Path,
) -> None:
    job = run_job(
        tmp_path,
        stage("a", "process.run({ 'echo', 'a' })"),
        stage("b", "container.with('busybox:1', function() process.run({ 'echo', 'b' }) end)"),
        policy={"container": {"userns": "auto"}},
    )
    first, second = job.fake.specs
    assert first.id_map is None
    assert second.id_map is not None
    assert [s.options.userns for s in job.fake.specs] == ["auto", "auto"]


# --- process.parallel ------------------------------------------------------------------


def gated(fake: FakeBackend, program: str) -> dict[str, threading.Event]:
    """``program N`` writes N and waits for its own gate (returned by N)."""
    gates: dict[str, threading.Event] = {}
    lock = threading.Lock()

    def does(_container: RunningContainer, request: ExecRequest) -> FakeCommand:
        with lock:
            gate = gates.setdefault(request.argv[1], threading.Event())
        return FakeCommand(stdout=request.argv[1] + "\n", gate=gate)

    fake.script(program, does)
    return gates


PARALLEL = """
local items = {}
for i = 1, %d do items[i] = i end
local waiting, most = 0, 0
local out = process.parallel(items, function(n)
  waiting = waiting + 1
  if waiting > most then most = waiting end
  local r = process.run({ 'work', tostring(n), capture_stdout = true, check = %s })
  waiting = waiting - 1
  return tonumber(r.stdout)
end, { max = %d })
output.set('results', table.concat(out, ','))
output.set('most', most)
"""


def test_parallel_returns_results_in_item_order_whatever_order_commands_finish_in(
    tmp_path: Path,
) -> None:
    fake = FakeBackend()
    gates = gated(fake, "work")

    def finish_backwards() -> None:
        fake.wait_for(lambda f: f.running == 4)
        for n in (4, 3, 2, 1):
            gates[str(n)].set()
            fake.wait_for(lambda f, left=n - 1: f.running == left)

    opener = threading.Thread(target=finish_backwards)
    opener.start()
    job = run_job(tmp_path, stage("s", PARALLEL % (4, "true", 4)), fake=fake)
    opener.join()
    assert job.result.outputs == {"results": "1,2,3,4", "most": 4}


def test_parallel_keeps_at_most_max_commands_in_flight(tmp_path: Path) -> None:
    fake = FakeBackend()
    fake.script("work", lambda _c, r: FakeCommand(stdout=r.argv[1] + "\n"))
    job = run_job(tmp_path, stage("s", PARALLEL % (7, "true", 2)), fake=fake)
    assert job.result.outputs == {"results": "1,2,3,4,5,6,7", "most": 2}
    assert fake.peak <= 2
    assert len(fake.argvs) == 7


def test_parallel_names_every_failed_call_by_its_index(tmp_path: Path) -> None:
    fake = FakeBackend()
    fake.script("work", lambda _c, r: FakeCommand(exit_code=int(r.argv[1]) % 2))
    job = run_job(tmp_path, stage("s", PARALLEL % (4, "true", 4)), fake=fake)
    assert job.result.status is JobStatus.FAILED
    error = job.result.error or ""
    assert "process.parallel: 2 of 4 calls failed: [1] " in error
    assert "; [3] " in error and "'work 3' exited with code 1" in error


# --- secrets and refusals --------------------------------------------------------------

TOKEN = "s3cret-Value-42"


def test_a_secret_reaches_its_command_only_through_the_secret_channels(tmp_path: Path) -> None:
    fake = FakeBackend()
    seen: dict[str, str] = {}

    def deploy(container: RunningContainer, request: ExecRequest) -> FakeCommand:
        spec = next(s for s in fake.specs if s.name == container.name)
        assert spec.secrets_dir is not None
        seen["file"] = (spec.secrets_dir / "token.txt").read_text()
        seen["dir"] = str(spec.secrets_dir)
        return FakeCommand(stdout=f"using {request.secret_env['TOKEN']}\n")

    fake.script("deploy", deploy)
    job = run_job(
        tmp_path,
        stage(
            "s",
            "process.run({ 'deploy', secrets = { TOKEN = 'DEPLOY_TOKEN' },"
            " secret_files = { ['token.txt'] = 'DEPLOY_TOKEN' } })",
        ),
        fake=fake,
        secrets={"DEPLOY_TOKEN": TOKEN},
    )
    assert job.result.status is JobStatus.SUCCEEDED, job.result.error
    _, request = fake.requests[0]
    assert request.secret_env == {"TOKEN": TOKEN}
    assert TOKEN not in " ".join(request.argv) + repr(dict(request.env))
    assert seen["file"] == TOKEN
    assert not Path(seen["dir"]).exists()
    assert "using ***" in job.events.messages("info")
    assert TOKEN not in job.events.text()


def test_a_denied_binary_is_refused_before_any_container_starts(tmp_path: Path) -> None:
    job = run_job(
        tmp_path,
        stage("s", "process.run({ 'curl', 'https://example.com' })"),
        policy={"process": {"denied_binaries": ["curl"]}},
    )
    assert job.result.status is JobStatus.FAILED
    assert "process.denied_binaries" in (job.result.error or "")
    assert job.fake.calls == []


def test_a_refused_network_is_refused_before_any_container_starts(tmp_path: Path) -> None:
    job = run_job(
        tmp_path,
        stage("s", "process.run({ 'echo', 'x' })", "network = 'bridge',"),
        policy={"container": {"network": "none", "allow_network_override": False}},
    )
    assert job.result.status is JobStatus.FAILED
    assert "container.allow_network_override" in (job.result.error or "")
    assert job.fake.calls == []


def test_the_policy_limits_reach_every_container_of_the_job(tmp_path: Path) -> None:
    job = run_job(
        tmp_path,
        stage(
            "s",
            "process.run({ 'echo', 'x' }); container.with('b:1', function() process.run({ 'true' }) end)",
        ),
        policy={"container": {"default_memory": "256m", "default_cpus": 0.5, "default_pids": 64}},
    )
    assert job.result.status is JobStatus.SUCCEEDED, job.result.error
    options = {s.options for s in job.fake.specs}
    assert len(options) == 1
    (only,) = options
    assert isinstance(only, ContainerOptions)
    assert (only.memory, only.cpus, only.pids) == ("256m", 0.5, 64)
