"""The executor against real Podman and the local images (docs/lua-reference.md, '2. Runtime modules')."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from recording import EventLog

from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.events import CancelToken, JobResult
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec

pytestmark = pytest.mark.podman

DEBIAN = "localhost/rivet/debian-git:latest"
BUSYBOX = "localhost/rivet/busybox:latest"


def pipeline(*stages: str, inputs: str = "") -> str:
    body = ",\n".join(stages)
    return f"return pipeline.define({{ name = 't', inputs = {{ {inputs} }}, stages = {{\n{body}\n}} }})"


def stage(name: str, script: str, extra: str = "") -> str:
    return f"{{ name = '{name}', {extra} script = function()\n{script}\nend }}"


def containers_of(job_id: str) -> list[str]:
    out = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label=rivet.job={job_id}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


@pytest.fixture
def run(podman_available: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    job_ids: list[str] = []

    def go(
        source: str,
        inputs: dict[str, object] | None = None,
        cancel: CancelToken | None = None,
        default_image: str = "alpine:latest",
    ) -> tuple[JobResult, EventLog, str]:
        job_id = f"t-{uuid.uuid4().hex[:10]}"
        job_ids.append(job_id)
        executor = Executor(
            PodmanBackend(),
            ExecutorSettings(workspace_root=tmp_path / "ws", default_image=default_image),
        )
        events = EventLog()
        result = executor.run(JobSpec(job_id, source, "t.lua", dict(inputs or {})), events, cancel)  # type: ignore[arg-type]
        return result, events, job_id

    yield go
    for job_id in job_ids:
        assert containers_of(job_id) == [], f"containers of {job_id} left behind"
        subprocess.run(["bash", "scripts/podman-cleanup.sh", "--job", job_id], check=False)


def test_both_call_forms_capture_levels_env(run) -> None:  # type: ignore[no-untyped-def]
    result, events, _ = run(
        pipeline(
            stage(
                "s",
                """
        local a = process.run({ "echo", "positional" })
        local b = process.run({ cmd = "echo", args = { "named", 42 } })
        local c = process.run({ "sh", "-c", "echo out; echo err >&2", capture_stdout = true })
        output.set("captured", c.stdout)
        output.set("codes", a.exit_code .. b.exit_code .. c.exit_code)
        process.run({ "sh", "-c", "echo quiet; echo loud >&2", stdout_level = "debug", stderr_level = "warning" })
        local e = process.run({ "sh", "-c", "echo $GREETING-$RIVET_STAGE-$CI", env = { GREETING = "hi" }, capture_stdout = true })
        output.set("env", e.stdout)
        local x = process.run({ "sh", "-c", "exit 7" })
        output.set("exit", x.exit_code)
    """,
            )
        )
    )
    assert result.status == "succeeded", result.error
    assert result.outputs == {"captured": "out\n", "codes": "000", "env": "hi-s-true\n", "exit": 7}
    assert "positional" in events.messages("info")
    assert "named 42" in events.messages("info")
    # stderr at the normal level, each line tagged with its pipe
    assert ("info", "stderr") in [(e.level, e.stream) for e in events.lines if e.message == "err"]
    assert [e.stream for e in events.lines if e.message == "positional"] == ["stdout"]
    assert "err" not in events.messages("error")
    assert "out" not in events.messages("info")  # captured, not logged
    assert "quiet" in events.messages("debug")
    assert "loud" in events.messages("warning")
    seqs = [e.seq for e in events.lines]
    assert seqs == list(range(1, len(seqs) + 1))


def test_output_is_streamed_while_the_process_runs(run) -> None:  # type: ignore[no-untyped-def]
    result, events, _ = run(
        pipeline(
            stage(
                "s",
                """
        process.run({ "sh", "-c", "echo first; sleep 1.5; echo second" })
    """,
            )
        )
    )
    assert result.status == "succeeded", result.error
    times = {e.message: t for t, e in zip(events.arrivals, events.lines, strict=True)}
    assert times["second"] - times["first"] > 1.0


def test_check_timeout_and_missing_command(run) -> None:  # type: ignore[no-untyped-def]
    result, _events, _ = run(
        pipeline(
            stage(
                "timeout",
                """
            local started = os.time()
            local r = process.run({ "sleep", "30", timeout = 1 })
            output.set("timeout_code", r.exit_code)
            output.set("timed_out", r.timed_out)
            local missing = process.run({ "no-such-binary" })
            output.set("missing_code", missing.exit_code)
        """,
            ),
            stage("check", 'process.run({ "sh", "-c", "exit 3", check = true })'),
        )
    )
    assert result.outputs["timeout_code"] == 124 and result.outputs["timed_out"] is True
    assert result.outputs["missing_code"] == 127
    assert result.status == "failed"
    assert (
        result.error
        == "stage 'check' failed: t.lua:13: process.run: 'sh -c 'exit 3'' exited with code 3"
    )


def test_cwd_is_jailed_to_the_workspace(run) -> None:  # type: ignore[no-untyped-def]
    result, events, _ = run(
        pipeline(
            stage(
                "s",
                """
        process.run({ "mkdir", "-p", "sub/deeper" })
        process.run({ "ln", "-s", "/etc", "escape" })
        process.run({ "ln", "-s", "sub", "inside" })
        output.set("sub", process.run({ "pwd", cwd = "sub/deeper", capture_stdout = true }).stdout)
        output.set("abs", process.run({ "pwd", cwd = "/workspace/sub", capture_stdout = true }).stdout)
        output.set("link", process.run({ "pwd", cwd = "inside", capture_stdout = true }).stdout)
        for _, bad in ipairs({ "..", "../etc", "/etc", "/workspace/../etc", "sub/../../x", "escape", "missing" }) do
          local ok, err = pcall(function() local r = process.run({ "true", cwd = bad }); return r end)
          assert(not ok, "cwd " .. bad .. " was accepted")
          log.warning(err)
        end
    """,
            )
        )
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["sub"] == "/workspace/sub/deeper\n"
    assert result.outputs["abs"] == "/workspace/sub\n"
    assert result.outputs["link"] == "/workspace/sub\n"  # the symlink resolved inside
    warnings = events.messages("warning")
    assert sum("is outside the workspace" in w for w in warnings) == 5
    assert any("'escape' leads outside the workspace through a symlink" in w for w in warnings)
    assert any("'missing' does not exist in the workspace" in w for w in warnings)
    assert all(w.startswith("t.lua:") for w in warnings)


def test_bad_options_are_clear_errors(run) -> None:  # type: ignore[no-untyped-def]
    result, events, _ = run(
        pipeline(
            stage(
                "s",
                """
        for _, opts in ipairs({
          { "echo", capture = true },
          { cmd = "echo", "x" },
          {},
          { "echo", timeout = -1 },
          { "echo", stdout_level = "loud" },
          { "echo", env = { A = {} } },
        }) do
          local ok, err = pcall(function() local r = process.run(opts); return r end)
          assert(not ok)
          log.warning(err)
        end
    """,
            )
        )
    )
    assert result.status == "succeeded", result.error
    assert events.messages("warning") == [
        "t.lua:12: process.run: unknown option 'capture' (did you mean 'capture_stdout'?)",
        "t.lua:12: process.run: give either 'cmd' or a positional argv, not both",
        "t.lua:12: process.run: no command given (set 'cmd' or pass the argv positionally)",
        "t.lua:12: process.run: option 'timeout' must be a positive number of seconds, got -1",
        "t.lua:12: process.run: option 'stdout_level' must be one of debug, info, warning, error; got 'loud'",
        "t.lua:12: process.run: env.A must be a string, got table",
    ]


def test_container_stack_reuse_workspace_and_cleanup(run) -> None:  # type: ignore[no-untyped-def]
    result, _events, job_id = run(
        pipeline(
            stage(
                "one",
                f"""
            process.run({{ "sh", "-c", "echo shared > /workspace/note.txt" }})
            local outer = process.run({{ "hostname", capture_stdout = true }}).stdout
            container.with("{DEBIAN}", function()
              output.set("git", process.run({{ "git", "--version", capture_stdout = true }}).stdout)
              container.with("{BUSYBOX}", function()
                output.set("inner", process.run({{ "cat", "note.txt", capture_stdout = true }}).stdout)
              end)
              output.set("debian", process.run({{ "cat", "/etc/debian_version", capture_stdout = true }}).exit_code)
            end)
            output.set("same", process.run({{ "hostname", capture_stdout = true }}).stdout == outer)
        """,
            ),
            stage(
                "two",
                """
            output.set("stage_image", process.run({ "cat", "/etc/debian_version", capture_stdout = true }).exit_code)
            output.set("still_there", process.run({ "cat", "note.txt", capture_stdout = true }).stdout)
        """,
                extra=f'container = "{DEBIAN}",',
            ),
        )
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["git"].startswith("git version")
    assert result.outputs["inner"] == "shared\n"
    assert result.outputs["debian"] == 0
    assert result.outputs["same"] is True
    assert result.outputs["stage_image"] == 0
    assert result.outputs["still_there"] == "shared\n"
    assert containers_of(job_id) == []


def test_container_started_lazily_and_pop_after_error(run) -> None:  # type: ignore[no-untyped-def]
    result, events, _job_id = run(
        pipeline(
            stage(
                "s",
                f"""
        container.with("{DEBIAN}", function() log.info("no process here") end)
        local ok, err = pcall(container.with, "{DEBIAN}", function() error("inner failure") end)
        assert(not ok)
        log.warning(err)
        -- after the error the stack is back to the default image (busybox has no apt)
        output.set("apt", process.run({{ "sh", "-c", "command -v apt-get || echo none", capture_stdout = true }}).stdout)
    """,
            )
        )
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["apt"] == "none\n"
    assert any("inner failure" in w for w in events.messages("warning"))


def test_missing_image_is_a_catchable_error_naming_the_image(run) -> None:  # type: ignore[no-untyped-def]
    result, events, _job_id = run(
        pipeline(
            stage(
                "s",
                """
        local ok, err = pcall(container.with, "no-such-image:1.0", function()
          process.run({ "true" })
        end)
        assert(not ok)
        log.warning(err)
        container.with("no-such-image:1.0", function() process.run({ "true" }) end)
    """,
            )
        )
    )
    assert result.status == "failed"
    assert "image 'no-such-image:1.0'" in events.messages("warning")[0]
    assert "t.lua:9:" in (result.error or "") and "no-such-image:1.0" in (result.error or "")


def test_image_with_its_own_entrypoint(run, podman_image) -> None:  # type: ignore[no-untyped-def]
    image = podman_image("localhost/rivet/entrypoint-test:latest")
    result, _, _ = run(
        pipeline(
            stage(
                "s",
                f"""
        container.with("{image}", function()
          output.set("ok", process.run({{ "echo", "works", capture_stdout = true }}).stdout)
        end)
    """,
            )
        )
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["ok"] == "works\n"


def test_default_image_setting(run) -> None:  # type: ignore[no-untyped-def]
    result, _, _ = run(
        pipeline(
            stage("s", 'output.set("v", process.run({ "cat", "/etc/debian_version" }).exit_code)')
        ),
        default_image=DEBIAN,
    )
    assert result.outputs["v"] == 0


# Each item waits (up to 30 s) until all four have started: only commands that really
# run at the same time print "together". Proven by the workspace, not by the clock.
_BARRIER = (
    "touch /workspace/par-$0; i=0; "
    "while [ $(ls /workspace | grep -c ^par-) -lt 4 ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; "
    "[ $(ls /workspace | grep -c ^par-) -ge 4 ] && echo item-$0 together || echo item-$0 alone"
)
# Each item counts the items running with it; with max = 2 it never sees more than 2.
_COUNT = "mkdir -p /workspace/run; touch /workspace/run/$0; ls /workspace/run | wc -l > /workspace/seen-$0; sleep 0.3; rm /workspace/run/$0"


def test_parallel_runs_concurrently_in_order_and_collects_failures(run) -> None:  # type: ignore[no-untyped-def]
    result, _events, _ = run(
        pipeline(
            stage(
                "par",
                f"""
            local out = process.parallel({{ 3, 1, 2, 4 }}, function(n)
              local r = process.run({{ "sh", "-c", {_BARRIER!r}, n, capture_stdout = true }})
              return r.stdout
            end)
            output.set("order", table.concat(out, ""))
        """,
            ),
            stage(
                "limited",
                f"""
            process.parallel({{ 1, 2, 3, 4, 5, 6 }}, function(n)
              process.run({{ "sh", "-c", {_COUNT!r}, n, check = true }})
            end, {{ max = 2 }})
            local seen = {{}}
            for n = 1, 6 do seen[n] = fs.read("seen-" .. n):match("%d+") end
            output.set("seen", table.concat(seen, ","))
        """,
            ),
            stage(
                "fails",
                """
            process.parallel({ 1, 2, 3 }, function(n)
              process.run({ "sh", "-c", "exit " .. (n == 2 and 0 or n), check = true })
              if n == 2 then error("lua error " .. n) end
            end)
        """,
            ),
        )
    )
    assert result.outputs["order"] == (
        "item-3 together\nitem-1 together\nitem-2 together\nitem-4 together\n"
    )
    par, limited, fails = result.stages
    assert (par.status, limited.status) == ("succeeded", "succeeded")
    assert max(int(n) for n in str(result.outputs["seen"]).split(",")) <= 2, result.outputs
    assert fails.status == "failed"
    assert "process.parallel: 3 of 3 calls failed: [1] " in (fails.error or "")
    assert "exited with code 1" in (fails.error or "") and "lua error 2" in (fails.error or "")
    assert "exited with code 3" in (fails.error or "")


def test_conditions_skip_and_failures_stop_later_stages(run) -> None:  # type: ignore[no-untyped-def]
    result, events, _ = run(
        pipeline(
            stage(
                "skipped",
                "error('must not run')",
                extra="condition = function() return input.get('go') end,",
            ),
            stage(
                "runs",
                "log.info('ran')",
                extra="condition = function() return not input.get('go') end,",
            ),
            stage(
                "bad_condition", "log.info('x')", extra="condition = function() return 'yes' end,"
            ),
            stage("never", "log.info('never')"),
            inputs="go = { type = 'bool', default = false }",
        )
    )
    assert [s.status for s in result.stages] == ["skipped", "succeeded", "failed", "pending"]
    assert result.status == "failed"
    assert "condition must return a boolean, got string" in (result.error or "")
    assert "never" not in events.messages()


def test_cancel_stops_the_process_and_removes_containers(run) -> None:  # type: ignore[no-untyped-def]
    cancel = CancelToken()
    threading.Timer(2.0, cancel.cancel, args=("cancelled by test",)).start()
    started = time.monotonic()
    result, _events, job_id = run(
        pipeline(stage("s", 'process.run({ "sleep", "60" })'), stage("after", "log.info('after')")),
        cancel=cancel,
    )
    assert time.monotonic() - started < 15
    assert result.status == "cancelled"
    assert result.stages[0].status == "cancelled"
    assert result.stages[1].status == "pending"
    assert containers_of(job_id) == []


def test_cancel_stops_busy_lua(run) -> None:  # type: ignore[no-untyped-def]
    cancel = CancelToken()
    threading.Timer(0.5, cancel.cancel).start()
    result, _, _ = run(
        pipeline(stage("s", "while true do pcall(function() while true do end end) end")),
        cancel=cancel,
    )
    assert result.status == "cancelled"


def test_containers_removed_after_failure(run) -> None:  # type: ignore[no-untyped-def]
    result, _, job_id = run(pipeline(stage("s", 'process.run({ "true" })\nerror("boom")')))
    assert result.status == "failed" and "t.lua:4: boom" in (result.error or "")
    assert containers_of(job_id) == []


def test_workspace_is_per_job_and_removed(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result, _, _ = run(
        pipeline(stage("s", 'process.run({ "sh", "-c", "echo x > f; mkdir -p d/e; touch d/e/g" })'))
    )
    assert result.status == "succeeded"
    assert list((tmp_path / "ws").iterdir()) == []


def test_nul_byte_in_arguments_is_a_clear_error(run) -> None:  # type: ignore[no-untyped-def]
    result, _, _ = run(pipeline(stage("s", 'process.run({ "echo", "a\\0b" })')))
    assert result.status == "failed"
    assert "t.lua:3: process.run: argument 2 contains a NUL byte" in (result.error or "")


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ('output.set("nul", "a\\0b")', "value of 'nul' contains a NUL character"),
        ('output.set("k\\0", 1)', "the output name contains a NUL character"),
        ('output.set("n", 2^53 + 2)', "outside the range of numbers a pipeline can use exactly"),
        (
            'output.set("n", math.maxinteger)',
            "outside the range of numbers a pipeline can use exactly",
        ),
        ('output.set("n", 0/0)', "expected a finite number"),
    ],
)
def test_output_set_refuses_what_the_server_could_not_store(  # type: ignore[no-untyped-def]
    run, script: str, message: str
) -> None:
    """The stage fails at its line, so the job's result is never refused at the end."""
    result, _, _ = run(pipeline(stage("s", script)))
    assert result.status == "failed"
    assert message in (result.error or ""), result.error
    assert "t.lua:" in (result.error or "")


def test_output_set_accepts_numbers_up_to_2_to_the_53(run) -> None:  # type: ignore[no-untyped-def]
    result, _, _ = run(pipeline(stage("s", 'output.set("a", 2^53) output.set("b", -(2^53))')))
    assert result.status == "succeeded", result.error
    assert result.outputs == {"a": 2**53, "b": -(2**53)}
