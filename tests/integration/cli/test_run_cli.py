"""``rivet run`` end to end: the console script, real Podman, the local busybox image."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.podman

RIVET = Path(sys.executable).with_name("rivet")
ROOT = Path(__file__).resolve().parents[3]
BUSYBOX = "localhost/rivet/busybox:latest"
# TIME STAGE LEVEL STREAM MESSAGE: the level padded to 7, the stream "err" or blank.
LINE = re.compile(
    r"^(?:\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\.\d{3} (?P<stage>\S+) +(?P<level>\S+) {1,4}(?P<stream>err|   ) "
    r"(?P<message>.*)$"
)


def env(home: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RIVET_")}
    return base | {"RIVET_HOME": str(home), "RIVET_DEFAULT_IMAGE": BUSYBOX, "NO_COLOR": "1"}


def rivet_run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RIVET), "run", *args],
        capture_output=True,
        text=True,
        env=env(home),
        stdin=subprocess.DEVNULL,
        timeout=180,
        check=False,
    )


def logged(stdout: str) -> list[tuple[str, str, str]]:
    return [
        (m["stage"], m["level"], m["message"])
        for m in map(LINE.match, stdout.splitlines())
        if m and m["level"] != "--"
    ]


def from_stderr(stdout: str) -> list[str]:
    """The messages of the lines marked as a command's stderr."""
    return [
        m["message"] for m in map(LINE.match, stdout.splitlines()) if m and m["stream"] == "err"
    ]


def leftovers(podman: str, job_label: str) -> list[str]:
    out = subprocess.run(
        [podman, "ps", "-a", "--filter", f"label=rivet.job={job_label}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return out.split()


def test_hello_example(podman_available: str, tmp_path: Path) -> None:
    proc = rivet_run(
        tmp_path, str(ROOT / "examples" / "hello.lua"), "-i", "name=rivet", "-i", "times=2"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = logged(proc.stdout)
    assert ("greet", "info", "hello from Lua, rivet") in lines
    assert ("greet", "info", "hello from a container, rivet (1)") in lines
    assert ("greet", "info", "hello from a container, rivet (2)") in lines
    assert re.search(r"greet\s+│ succeeded", proc.stdout)
    assert re.search(r"greeted │ rivet", proc.stdout)
    assert proc.stdout.splitlines()[-1].startswith("job succeeded in ")
    assert "\x1b[" not in proc.stdout


def test_failing_stage_exits_1_and_stops_the_job(podman_available: str, tmp_path: Path) -> None:
    pipeline = tmp_path / "fail.lua"
    pipeline.write_text(
        """return pipeline.define({
  name = "fails",
  stages = {
    { name = "ok", script = function() process.run({ "echo", "fine" }) end },
    { name = "boom", script = function() process.run({ "sh", "-c", "echo bad >&2; exit 3", check = true }) end },
    { name = "never", script = function() log.info("not reached") end },
  },
})
"""
    )
    proc = rivet_run(tmp_path, str(pipeline))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = logged(proc.stdout)
    assert ("ok", "info", "fine") in lines
    assert ("boom", "info", "bad") in lines
    assert from_stderr(proc.stdout) == ["bad"]
    assert not any(stage == "never" for stage, _, _ in lines)
    assert re.search(r"boom\s+│ failed", proc.stdout)
    assert re.search(r"never\s+│ pending", proc.stdout)
    assert re.search(r"^job failed in .*: stage 'boom' failed", proc.stdout, re.M)


def test_missing_inputs_fail_before_anything_runs(podman_available: str, tmp_path: Path) -> None:
    pipeline = tmp_path / "inputs.lua"
    pipeline.write_text(
        """return pipeline.define({
  name = "needs",
  inputs = { a = { type = "string" }, b = { type = "number" } },
  stages = { { name = "s", script = function() process.run({ "true" }) end } },
})
"""
    )
    proc = rivet_run(tmp_path, str(pipeline))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: invalid inputs: a: required string input is missing; ")
    assert "b: required number input is missing" in proc.stderr


@pytest.mark.parametrize(
    ("sig", "shown"),
    [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM"), (signal.SIGHUP, "SIGHUP")],
)
def test_ctrl_c_sigterm_and_sighup_cancel_remove_containers_and_exit_130(
    podman_available: str, tmp_path: Path, sig: signal.Signals, shown: str
) -> None:
    pipeline = tmp_path / "sleep.lua"
    pipeline.write_text(
        """return pipeline.define({
  name = "sleepy",
  stages = {
    { name = "wait", script = function() log.info("sleeping"); process.run({ "sleep", "60" }) end },
    { name = "after", script = function() log.info("after") end },
  },
})
"""
    )
    out = tmp_path / "out.txt"
    with out.open("w") as stdout:
        proc = subprocess.Popen(
            [str(RIVET), "run", str(pipeline)],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=env(tmp_path),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "$ sleep 60" not in out.read_text():
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        time.sleep(0.3)
        if sig == signal.SIGTERM:
            os.kill(proc.pid, sig)  # what `kill` or systemd does
        else:
            # A terminal's Ctrl-C, or its hang-up: the whole foreground process group
            # (podman exec included) gets the signal.
            os.killpg(proc.pid, sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out.read_text()
    assert proc.returncode == 130, text + stderr
    assert f"interrupted ({shown}): cancelling the job and removing its containers" in stderr
    assert re.search(r"wait\s+│ cancelled", text)
    assert "job cancelled" in text and f"interrupted ({shown})" in text
    assert "after" not in [stage for stage, _, _ in logged(text)]
    job = re.search(r"running pipeline sleepy as job (local-[0-9a-f]{8})", stderr)
    assert job, stderr
    assert leftovers(podman_available, job.group(1)) == []
    assert not list((tmp_path / "workspaces").iterdir())


def test_a_command_missing_from_the_image_is_named_with_the_image(
    podman_available: str, tmp_path: Path
) -> None:
    pipeline = tmp_path / "missing.lua"
    pipeline.write_text(
        """return pipeline.define({
  name = "missing",
  stages = {
    { name = "soft", script = function()
        local r = process.run({ "no-such-tool", "--version" })
        log.info("exit " .. r.exit_code)
        local shell = process.run({ "sh", "-c", "no-such-tool" })
        log.info("shell exit " .. shell.exit_code)
        process.run({ "/etc/passwd" })
      end },
    { name = "hard", script = function()
        process.run({ "no-such-tool", "--version", check = true })
      end },
  },
})
"""
    )
    proc = rivet_run(tmp_path, str(pipeline))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = logged(proc.stdout)
    assert (
        "soft",
        "warning",
        f"command 'no-such-tool' not found in image {BUSYBOX} (exit code 127)",
    ) in lines
    assert ("soft", "info", "exit 127") in lines
    # sh started: its own 127 is only an exit code, and its words are its own.
    assert ("soft", "info", "shell exit 127") in lines
    assert not any("'sh' not found" in message for _, _, message in lines)
    assert (
        "soft",
        "warning",
        f"command '/etc/passwd' not executable in image {BUSYBOX} (exit code 126)",
    ) in lines
    failure = f"process.run: command 'no-such-tool' not found in image {BUSYBOX} (exit code 127)"
    assert failure in proc.stdout.splitlines()[-1]


def test_stderr_is_logged_at_the_normal_level_and_marked_as_stderr(
    podman_available: str, tmp_path: Path
) -> None:
    pipeline = tmp_path / "stderr.lua"
    pipeline.write_text(
        """return pipeline.define({
  name = "progress",
  stages = {
    { name = "clone", script = function()
        process.run({ "sh", "-c", "echo Cloning into repo... >&2; echo cloned" })
        process.run({ "sh", "-c", "echo still an error >&2", stderr_level = "error" })
        log.info("err is only a word here")
      end },
  },
})
"""
    )
    proc = rivet_run(tmp_path, str(pipeline))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = logged(proc.stdout)
    assert ("clone", "info", "Cloning into repo...") in lines
    assert ("clone", "info", "cloned") in lines
    assert ("clone", "error", "still an error") in lines
    assert ("clone", "info", "err is only a word here") in lines
    assert from_stderr(proc.stdout) == ["Cloning into repo...", "still an error"]
    assert re.search(r"^(\S+ )?\S+ clone info    err Cloning into repo\.\.\.$", proc.stdout, re.M)
    assert re.search(r"^(\S+ )?\S+ clone info        cloned$", proc.stdout, re.M)
