"""Whole jobs on real Podman: what a job leaves behind (nothing, whatever it made),
private user namespaces, the image check of container.with, and the earlier Rivet's
``capture_exit_code``."""

from __future__ import annotations

import os
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from recording import EventLog, RecordingPodman

from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.events import JobResult, LogEvent
from rivet.engine.executor import Executor, ExecutorSettings, JobSpec
from rivet.engine.policy import Policy

pytestmark = pytest.mark.podman

DEBIAN = "localhost/rivet/debian-git:latest"
BUSYBOX = "localhost/rivet/busybox:latest"


def run_job(
    root: Path,
    script: str,
    policy: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    backend: PodmanBackend | None = None,
) -> tuple[JobResult, EventLog]:
    source = (
        "return pipeline.define({ name = 'iso', stages = {\n"
        f"{{ name = 's', script = function()\n{script}\nend }}\n}} }})"
    )
    executor = Executor(
        backend or PodmanBackend(),
        ExecutorSettings(
            workspace_root=root, default_image=BUSYBOX, policy=Policy.model_validate(policy or {})
        ),
    )
    events = EventLog()
    job = JobSpec(
        f"iso-{uuid.uuid4().hex[:8]}",
        source,
        "iso.lua",
        {},
        secrets=secrets or {},
        local_secrets=True,
    )
    return executor.run(job, events), events


@pytest.fixture
def root(podman_available: str, tmp_path: Path) -> Path:
    return tmp_path / "workspaces"


@pytest.fixture(params=["host", "auto"])
def userns(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"container": {"userns": request.param}}


def test_a_very_deep_tree_is_removed_and_the_job_stays_succeeded(
    root: Path, userns: dict[str, Any]
) -> None:
    # 5,005 levels: a path of ~10,000 bytes, past PATH_MAX and Python's recursion
    # limit. Shells track $PWD and cannot cd past PATH_MAX, so the chain is built in
    # segments of 1,000 levels, each moved to the bottom of the next one.
    script = """
    local r = process.run({ "sh", "-c", [[
      for k in 1 2 3 4 5; do
        mkdir y && cd y || exit 1
        for i in $(seq 1000); do mkdir d && cd d || exit 1; done
        if [ -d /workspace/x ]; then mv /workspace/x . || exit 1; else echo leaf > f; fi
        cd /workspace && mv y x || exit 1
      done
    ]], check = true })
    -- Count the levels the way the runner removes them: one descriptor at a time.
    local count = [[
import os
fd, n = os.open("x", os.O_RDONLY), 1
while True:
    with os.scandir(fd) as entries:
        names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    if not names: break
    child = os.open(names[0], os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd, n = child, n + 1
print(n)
]]
    container.with("DEBIAN", function()
      local r = process.run({ "python3", "-c", count, capture_stdout = true, check = true })
      output.set("levels", tonumber(r.stdout))
    end)
    """.replace("DEBIAN", DEBIAN)
    result, events = run_job(root, script, userns)
    assert result.status == "succeeded", result.error
    assert result.outputs["levels"] == 5 * 1001
    assert events.messages("warning") == []
    assert list(root.iterdir()) == []


def test_nothing_set_id_survives_the_job(root: Path, userns: dict[str, Any]) -> None:
    script = """
    process.run({ "sh", "-c", "cp /bin/busybox suid && chmod u+s,g+s suid && mkdir -p sg/x"
      .. " && chmod g+s sg && cp /bin/busybox sg/x/bin && chmod 6755 sg/x/bin"
      .. " && chmod 0 sg/x && mknod node c 1 3; ls -l", check = false })
    -- fs.copy drops set-id bits: the runner writes as itself (host root).
    fs.copy("suid", "copied")
    output.set("copied_mode", fs.stat("copied").mode)
    output.set("suid_mode", fs.stat("suid").mode)
    """
    result, _ = run_job(root, script, userns)
    assert result.status == "succeeded", result.error
    assert int(result.outputs["suid_mode"]) & (stat.S_ISUID | stat.S_ISGID)  # the job made one
    assert int(result.outputs["copied_mode"]) == 0o755
    assert list(root.iterdir()) == []  # the workspace, and every set-id file in it, are gone
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700


def test_a_private_user_namespace_shares_the_workspace_between_images_and_fs(
    root: Path,
) -> None:
    script = f"""
    fs.write("from-fs.txt", "fs\\n")
    fs.mkdir("made-by-fs")
    -- container root is not host root: its uid 0 maps to an unprivileged range
    local map = process.run({{ "cat", "/proc/self/uid_map", capture_stdout = true }}).stdout
    output.set("uid_map", map)
    process.run({{ "sh", "-c", "echo busybox >> from-fs.txt && echo x > made-by-fs/y"
      .. " && mkdir -p deep/er && echo b > deep/er/file && chmod 0 deep", check = true }})
    container.with("{DEBIAN}", function()
      process.run({{ "sh", "-c", "echo debian >> from-fs.txt && cat made-by-fs/y"
        .. " && cat $RIVET_SECRETS_DIR/token.txt > from-secret.txt",
        check = true, secret_files = {{ ["token.txt"] = "TOKEN" }} }})
      output.set("debian_map", process.run({{ "cat", "/proc/self/uid_map",
        capture_stdout = true }}).stdout)
    end)
    fs.write("later.txt", "later")
    process.run({{ "sh", "-c", "echo more >> later.txt && rm made-by-fs/y", check = true }})
    output.set("text", fs.read("from-fs.txt"))
    output.set("later", fs.read("later.txt"))
    output.set("secret_copy", fs.read("from-secret.txt") == "s3cret-value")
    """
    result, events = run_job(
        root, script, {"container": {"userns": "auto"}}, secrets={"TOKEN": "s3cret-value"}
    )
    assert result.status == "succeeded", result.error
    inside, host, size = (int(v) for v in str(result.outputs["uid_map"]).split())
    assert inside == 0 and host != 0 and size == 65536
    assert result.outputs["debian_map"] == result.outputs["uid_map"]  # one range per job
    assert result.outputs["text"] == "fs\nbusybox\ndebian\n"
    assert result.outputs["later"] == "latermore\n"
    assert result.outputs["secret_copy"] is True
    assert events.messages("warning") == []
    assert list(root.iterdir()) == []


def test_the_host_mode_keeps_container_root_as_the_runner(root: Path) -> None:
    script = 'output.set("map", process.run({ "cat", "/proc/self/uid_map", capture_stdout = true }).stdout)'
    result, _ = run_job(root, script, {"container": {"userns": "host"}})
    assert result.status == "succeeded", result.error
    assert str(result.outputs["map"]).split() == ["0", "0", "4294967295"]


# --- container.with checks its image on entry (the earlier Rivet's container_process.lua)


def test_container_with_a_missing_image_fails_even_without_a_command(root: Path) -> None:
    backend = RecordingPodman()
    script = """
    local ok, err = pcall(container.with, "no-such-image:1.0", function() end)
    output.set("caught", err)
    container.with("no-such-image:1.0", function()
      log.info("never here")
    end)
    """
    result, events = run_job(root, script, backend=backend)
    assert result.status == "failed"
    assert "no-such-image:1.0" in str(result.outputs["caught"])
    assert "not available locally and could not be pulled" in str(result.outputs["caught"])
    # At the caller's line (line 6 of the file: the second container.with).
    assert (result.error or "").startswith("stage 's' failed: iso.lua:6: container.with: image")
    assert "never here" not in " ".join(events.messages("info"))
    assert backend.started == []


def test_container_with_a_present_image_stays_lazy(root: Path) -> None:
    backend = RecordingPodman()
    script = f"""
    for i = 1, 3 do
      container.with("{DEBIAN}", function() log.info("no command " .. i) end)
    end
    """
    result, _ = run_job(root, script, backend=backend)
    assert result.status == "succeeded", result.error
    assert backend.started == []


def test_container_with_under_pull_never_names_the_policy(root: Path) -> None:
    script = 'container.with("localhost/rivet/absent:1", function() end)'
    result, _ = run_job(root, script, {"container": {"pull": "never"}})
    assert result.status == "failed"
    assert "container.pull = 'never'" in (result.error or "")
    assert "localhost/rivet/absent:1" in (result.error or "")


def test_capture_exit_code_is_accepted_with_one_deprecation_warning(root: Path) -> None:
    script = """
    local a = process.run({ "sh", "-c", "exit 3", capture_exit_code = true })
    local b = process.run({ cmd = "true", capture_exit_code = false })
    output.set("codes", a.exit_code .. "," .. b.exit_code)
    """
    result, events = run_job(root, script)
    assert result.status == "succeeded", result.error
    assert result.outputs["codes"] == "3,0"
    warnings = [m for m in events.messages("warning") if "capture_exit_code" in m]
    assert len(warnings) == 1 and "deprecated and ignored" in warnings[0]


def test_capture_exit_code_must_still_be_a_boolean(root: Path) -> None:
    result, _ = run_job(root, 'process.run({ "true", capture_exit_code = "yes" })')
    assert result.status == "failed"
    assert "option 'capture_exit_code' must be a boolean, got string" in (result.error or "")


class FreezeOnCue(EventLog):
    """Makes a workspace file immutable (chattr +i) when the job logs 'freeze':
    the leftover no removal can take away, as root or not."""

    def __init__(self, workspace: Path) -> None:
        super().__init__()
        self.frozen = workspace / "frozen.txt"

    def log(self, event: LogEvent) -> None:
        if event.message == "freeze":
            subprocess.run(["chattr", "+i", str(self.frozen)], check=True, timeout=30)
        super().log(event)


def test_a_workspace_that_cannot_be_removed_is_a_warning_not_a_failed_job(root: Path) -> None:
    job_id = f"iso-{uuid.uuid4().hex[:8]}"
    source = (
        "return pipeline.define({ name = 'iso', stages = {\n"
        "{ name = 's', script = function()\n"
        '  fs.write("frozen.txt", "x"); fs.write("other.txt", "y"); log.info("freeze")\n'
        "end } } })"
    )
    executor = Executor(PodmanBackend(), ExecutorSettings(workspace_root=root))
    events = FreezeOnCue(root / job_id)
    try:
        result = executor.run(JobSpec(job_id, source, "iso.lua", {}), events)
        assert result.status == "succeeded", result.error
        warnings = events.messages("warning")
        assert warnings == [
            f"workspace cleanup: could not remove {root}/{job_id}/frozen.txt: "
            "Operation not permitted",
            f"the job's workspace {root}/{job_id} was left behind",
        ]
        assert os.listdir(root / job_id) == ["frozen.txt"]
    finally:
        subprocess.run(["chattr", "-i", str(events.frozen)], check=False, timeout=30)
